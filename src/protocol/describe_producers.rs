//! DescribeProducers (key 61, v0; kafka-transactions.sh describe-producers and find-hanging):
//! per partition, the producers its log has state for: id, epoch, last sequence, last batch
//! timestamp, the coordinator epoch of their last marker and the first offset of their open
//! transaction (-1 without one), read from the partition's producer state table as Kafka's
//! Partition.activeProducerState. An invalid topic name is INVALID_TOPIC_EXCEPTION and an
//! unknown topic UNKNOWN_TOPIC_OR_PARTITION, both with Kafka's message, for each partition asked;
//! a partition the topic does not have is UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::{errors, RequestContext};
use crate::metadata::validate_topic_name;
use crate::security::authorizer::AclOperation;

/// Kafka's message for UNKNOWN_TOPIC_OR_PARTITION (Errors.message(), as ApiError sets it).
const UNKNOWN_TOPIC_MESSAGE: &str = "This server does not host this topic-partition.";

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            // READ on the topic before anything about it (KafkaApis).
            let readable = ctx.authorize_topic(AclOperation::Read, t.name.as_str());
            let topic = match validate_topic_name(t.name.as_str()) {
                _ if !readable => Err((
                    errors::TOPIC_AUTHORIZATION_FAILED,
                    "Topic authorization failed.".to_string(),
                )),
                Err(message) => Err((errors::INVALID_TOPIC_EXCEPTION, message)),
                Ok(()) => ctx.broker.catalog.get(t.name.as_str()).ok_or((
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    UNKNOWN_TOPIC_MESSAGE.to_string(),
                )),
            };
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let r = PartitionResponse::default().with_partition_index(index);
                    match &topic {
                        Err((code, message)) => r
                            .with_error_code(*code)
                            .with_error_message(Some(StrBytes::from_string(message.clone()))),
                        Ok(topic) => match topic.partition(index) {
                            None => r.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                            Some(p) => r.with_active_producers(active_producers(p)),
                        },
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn active_producers(p: &crate::log::partition::Partition) -> Vec<ProducerState> {
    p.active_producers()
        .into_iter()
        .map(|s| {
            ProducerState::default()
                .with_producer_id(ProducerId(s.producer_id))
                .with_producer_epoch(i32::from(s.producer_epoch))
                .with_last_sequence(s.last_sequence)
                .with_last_timestamp(s.last_timestamp)
                .with_coordinator_epoch(s.coordinator_epoch)
                .with_current_txn_start_offset(s.current_txn_start_offset)
        })
        .collect()
}
