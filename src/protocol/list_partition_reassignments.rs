//! ListPartitionReassignments (key 46, KIP-455): the reassignments in progress, of the topics and
//! partitions asked for or of every topic (null topics), with their replicas and the replicas
//! being added and removed (`metadata::reassignment::list`). Topics and partitions that do not
//! exist or are not reassigning are left out, as Kafka's controller leaves them.
//! `kafka-reassign-partitions.sh --list` and `--verify` send it.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::metadata::reassignment::list;
use crate::security::authorizer::AclOperation;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !ctx.authorize_cluster(AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(super::errors::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
    }
    let asked: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let image = ctx.broker.catalog.image();
    let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
    let topics = list(&image, asked.as_deref())
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .iter()
                .map(|o| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(o.partition)
                        .with_replicas(ids(&o.replicas))
                        .with_adding_replicas(ids(&o.adding))
                        .with_removing_replicas(ids(&o.removing))
                })
                .collect();
            OngoingTopicReassignment::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    // A null top-level message, as Kafka answers (the crate's default is an empty one).
    ListPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_topics(topics)
}
