//! DescribeQuorum (key 55): `kafka-metadata-quorum.sh describe --status / --replication`.
//!
//! In a quorum of processes the answer is the leader's whichever node is asked, as Kafka's: a
//! broker forwards DescribeQuorum to the active controller (KafkaApis forwardToControllerOrFail)
//! and a controller answers it only while it leads the quorum, NOT_LEADER_OR_FOLLOWER otherwise
//! (KafkaRaftClient.handleDescribeQuorumRequest). Here a broker-role node asks the leader over
//! the controller listener (`Catalog::describe_quorum`); when no leader answers within the
//! broker's wait, the answer is Kafka's for a forwarded request that timed out: a top-level
//! REQUEST_TIMED_OUT (ForwardingManager.onTimeout), which the admin client retries. A
//! controller-only node (which gregor serves no client listener on yet) answers from its own
//! raft state, as Kafka's controller does. The leader's answer holds every voter's and recent
//! observer's log end offset and its last fetch and caught-up times (the leader itself fetched
//! and caught up now), and at v2 each voter's endpoint on the controller listener, from
//! controller.quorum.voters: the quorum is static (kraft.version 0), so directory ids are zero,
//! as Kafka answers for a static quorum.
//!
//! A single process (`--brokers N`, no quorum) writes its metadata log alone: the first node is
//! the only voter and the leader, at the log's end offset and epoch, caught up now; the other
//! nodes share that log and appear as observers at the same offset, as a Kafka broker that is
//! not a voter would.
//!
//! A request for any other partition gets a top-level UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::config::{ProcessRoles, QuorumSettings};
use crate::metadata::metadata_log::{self, QuorumState};
use crate::security::authorizer::AclOperation;

const METADATA_TOPIC: &str = "__cluster_metadata";
/// Errors.message() of the two errors answered here (kept here rather than in
/// `errors::message`, which other handlers answer with: theirs are calibrated without them).
const NOT_LEADER_OR_FOLLOWER_MESSAGE: &str = "For requests intended only for the leader, this \
    error indicates that the broker is not the current leader. For requests intended for any \
    replica, this error indicates that the broker is not a replica of the topic partition.";
const REQUEST_TIMED_OUT_MESSAGE: &str = "The request timed out.";

pub fn handle(ctx: &RequestContext<'_>, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let resp = DescribeQuorumResponse::default().with_error_message(None);
    // DESCRIBE on the cluster (KafkaApis.handleDescribeQuorumRequest).
    if !ctx.authorize_cluster(AclOperation::Describe) {
        return resp.with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let asks_metadata_partition = matches!(
        req.topics.as_slice(),
        [t] if t.topic_name.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0)
    );
    if !asks_metadata_partition {
        return resp.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let topic = TopicData::default().with_topic_name(req.topics[0].topic_name.clone());
    let catalog = &ctx.broker.catalog;
    let Some(settings) = &ctx.broker.config.quorum else {
        return single_process(ctx, resp, topic);
    };
    let described = match settings.roles {
        ProcessRoles::Controller => match catalog.quorum_state() {
            Some(q) if q.leader_id == ctx.broker.node_id => Ok(Some(q)),
            _ => {
                let code = errors::NOT_LEADER_OR_FOLLOWER;
                let partition = PartitionData::default()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_static_str(
                        NOT_LEADER_OR_FOLLOWER_MESSAGE,
                    )))
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(-1)
                    .with_high_watermark(-1);
                return resp.with_topics(vec![topic.with_partitions(vec![partition])]);
            }
        },
        ProcessRoles::Broker | ProcessRoles::Combined => catalog.describe_quorum(),
    };
    match described {
        Ok(Some(q)) => {
            let now = ctx.broker.clock.now_ms();
            resp.with_topics(vec![topic.with_partitions(vec![leaders_view(&q, now)])])
                .with_nodes(voter_nodes(settings))
        }
        Ok(None) => single_process(ctx, resp, topic),
        Err(e) => {
            tracing::debug!(error = %e, "DescribeQuorum: no leader of the metadata quorum answered");
            let code = errors::REQUEST_TIMED_OUT;
            resp.with_error_code(code)
                .with_error_message(Some(StrBytes::from_static_str(REQUEST_TIMED_OUT_MESSAGE)))
        }
    }
}

/// The quorum of a single process (see the module comment).
fn single_process(
    ctx: &RequestContext<'_>,
    resp: DescribeQuorumResponse,
    topic: TopicData,
) -> DescribeQuorumResponse {
    let image = ctx.broker.catalog.image();
    let log_end_offset = image.provenance.last_offset + 1;
    let now = ctx.broker.clock.now_ms();
    let replica = |id: i32| {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(log_end_offset)
            .with_last_fetch_timestamp(now)
            .with_last_caught_up_timestamp(now)
    };
    let leader = ctx.broker.node_id;
    let observers = ctx
        .broker
        .endpoints
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| *id != leader)
        .map(replica)
        .collect();
    let partition = PartitionData::default()
        .with_error_message(None)
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(image.provenance.last_epoch)
        .with_high_watermark(log_end_offset)
        .with_current_voters(vec![replica(leader)])
        .with_observers(observers);
    resp.with_topics(vec![topic.with_partitions(vec![partition])])
}

/// The leader's view of the quorum, its replicas' ages (see `metadata_log::ReplicaState`) as
/// timestamps on this broker's clock at `now_ms`; -1 for a replica not heard from (Kafka's).
fn leaders_view(q: &QuorumState, now_ms: i64) -> PartitionData {
    let at = |ago: Option<u64>| ago.map_or(-1, |ms| now_ms.saturating_sub(ms as i64));
    let replica = |r: &metadata_log::ReplicaState| {
        ReplicaState::default()
            .with_replica_id(BrokerId(r.id))
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(at(r.last_fetch_ms_ago))
            .with_last_caught_up_timestamp(at(r.last_caught_up_ms_ago))
    };
    PartitionData::default()
        .with_error_message(None)
        .with_leader_id(BrokerId(q.leader_id))
        .with_leader_epoch(q.leader_epoch)
        .with_high_watermark(q.high_watermark)
        .with_current_voters(q.voters.iter().map(replica).collect())
        .with_observers(q.observers.iter().map(replica).collect())
}

/// Each voter's endpoint (v2's nodes): controller.quorum.voters on the controller listener's
/// name, as Kafka's leader lists a static quorum's voters.
fn voter_nodes(settings: &QuorumSettings) -> Vec<Node> {
    let name = StrBytes::from_string(settings.controller_listener.name.clone());
    (settings.voters.iter())
        .map(|(&id, (host, port))| {
            let listener = Listener::default()
                .with_name(name.clone())
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(*port);
            Node::default()
                .with_node_id(BrokerId(id))
                .with_listeners(vec![listener])
        })
        .collect()
}
