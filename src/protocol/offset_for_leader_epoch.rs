//! OffsetForLeaderEpoch (key 23): where a leader epoch's records end (KIP-101). Consumers ask it
//! after a leader change, to learn whether the log was truncated under their position (KIP-320's
//! offset validation: `SubscriptionState.maybeCompleteValidation`).
//!
//! As Kafka's ReplicaManager.lastOffsetForLeaderEpoch: each partition answers from its leader
//! epoch cache (`LeaderEpochCache::end_offset_for`) after the KIP-320 check of the request's
//! current leader epoch (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH); an unknown partition is
//! UNKNOWN_TOPIC_OR_PARTITION and an offline log KAFKA_STORAGE_ERROR. The replica id (v3+) does
//! not matter on a single node, which leads every partition. No authorizer: Kafka's
//! CLUSTER_ACTION / DESCRIBE checks pass.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::cluster;
use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = ctx.broker.catalog.image();
    // A replica may ask about every topic (CLUSTER_ACTION), a client about those it may
    // DESCRIBE (KafkaApis.handleOffsetForLeaderEpochRequest).
    let replica = ctx.authorize_cluster(AclOperation::ClusterAction);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.catalog.get(t.topic.as_str());
            let denied = !replica && !ctx.authorize_topic(AclOperation::Describe, t.topic.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    // Defaults: leader epoch and end offset -1 (UNDEFINED_EPOCH[_OFFSET]).
                    let resp = EpochEndOffset::default().with_partition(p.partition);
                    if denied {
                        return resp.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let led = cluster::led_partition(
                        ctx,
                        &image,
                        topic.as_ref(),
                        p.partition,
                        p.current_leader_epoch,
                    );
                    let part = match led {
                        Ok(part) => part,
                        Err(code) => return resp.with_error_code(code),
                    };
                    let found = part.with_log(|l| {
                        l.end_offset_for_epoch(p.current_leader_epoch, p.leader_epoch)
                    });
                    match found {
                        Ok((epoch, end_offset)) => {
                            resp.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(e) => resp.with_error_code(errors::log_error_code(&e)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
