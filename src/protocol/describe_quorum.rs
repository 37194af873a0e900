//! DescribeQuorum (key 55): `kafka-metadata-quorum.sh describe --status / --replication`.
//!
//! gregor's metadata log (`__cluster_metadata-0`) is written by this process alone, so the quorum
//! it shows is a combined node's as Kafka shows it: the first node is the only voter and the
//! leader, at the log's end offset and epoch, caught up now (KafkaRaftClient's leader describes
//! itself so); the other nodes of `--brokers N` share that log and appear as observers at the
//! same offset, as a Kafka broker that is not a voter would. Directory ids are zero (kraft.version
//! 0, a static quorum) and no node lists controller endpoints: gregor has no controller listener.
//! A request for any other partition gets Kafka's top-level UNKNOWN_TOPIC_OR_PARTITION
//! (KafkaRaftClient.handleDescribeQuorumRequest).

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;

const METADATA_TOPIC: &str = "__cluster_metadata";

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
    if let Some(q) = ctx.broker.catalog.quorum_state() {
        return resp.with_topics(vec![TopicData::default()
            .with_topic_name(req.topics[0].topic_name.clone())
            .with_partitions(vec![quorum_partition(&q)])]);
    }
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
    resp.with_topics(vec![TopicData::default()
        .with_topic_name(req.topics[0].topic_name.clone())
        .with_partitions(vec![partition])])
}

/// A quorum of processes: the raft state this node knows (the leader knows every voter's log
/// end; elsewhere only its own is known, the others -1), and the observers (broker-only
/// processes) that fetch from the leader, at the offset they last fetched from; a broker-only
/// process answers with the view of the voter it fetches from, the leader's once it knows it.
/// Fetch times are not tracked: -1, as Kafka answers for a replica it has not heard from.
fn quorum_partition(q: &crate::metadata::metadata_log::QuorumState) -> PartitionData {
    let replica = |&(id, end): &(i32, i64)| {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(end)
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    };
    let voters = q.voters.iter().map(replica).collect();
    let observers = q.observers.iter().map(replica).collect();
    PartitionData::default()
        .with_error_message(None)
        .with_leader_id(BrokerId(q.leader_id))
        .with_leader_epoch(q.leader_epoch)
        .with_high_watermark(q.high_watermark)
        .with_current_voters(voters)
        .with_observers(observers)
}
