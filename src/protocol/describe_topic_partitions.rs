//! DescribeTopicPartitions (key 75, KIP-966): the topics' partitions, paginated by a cursor, which
//! the Java AdminClient (3.8+) uses for describeTopics. Topics are served in name order from the
//! cursor; at most `response_partition_limit` partitions (capped at Kafka's default
//! max.request.partition.size.limit, 2000) per response, with `next_cursor` pointing at the
//! first partition left out. An empty topic list means every topic.

use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::authorized::TOPIC_OPERATIONS;
use super::cluster;
use super::errors;
use super::RequestContext;
use crate::metadata::image::MetadataImage;
use crate::metadata::{validate_topic_name, Topic};
use crate::security::authorizer::{AclOperation, ResourceType};

/// Kafka's max.request.partition.size.limit default.
const PARTITION_LIMIT: i32 = 2000;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let catalog = &ctx.broker.catalog;
    let image = catalog.image();
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (c.topic_name.to_string(), c.partition_index.max(0)),
        None => (String::new(), 0),
    };
    let all = req.topics.is_empty();
    let mut names: Vec<String> = if all {
        catalog.all().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    names.retain(|n| *n >= cursor_topic);
    let mut budget = req.response_partition_limit.clamp(1, PARTITION_LIMIT);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        let first = if name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        // DESCRIBE on the topic: a listing leaves the others out, a named one is refused.
        if !ctx.authorize_topic(AclOperation::Describe, &name) {
            if !all {
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                        .with_name(Some(TopicName(StrBytes::from_string(name))))
                        .with_topic_authorized_operations(i32::MIN),
                );
            }
            continue;
        }
        let Some(topic) = catalog.get(&name) else {
            let code = if validate_topic_name(&name).is_err() {
                errors::INVALID_TOPIC_EXCEPTION
            } else {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            };
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(code)
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_topic_authorized_operations(i32::MIN),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(cursor(&name, first));
            break;
        }
        let total = topic.partitions.len() as i32;
        let last = total.min(first.saturating_add(budget));
        budget -= last - first.min(last);
        let ops = ctx.authorized_operations(TOPIC_OPERATIONS, ResourceType::Topic, &name);
        topics.push(describe(&image, &topic, first..last).with_topic_authorized_operations(ops));
        if last < total {
            next_cursor = Some(cursor(&name, last));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}

fn describe(
    image: &MetadataImage,
    topic: &Arc<Topic>,
    range: std::ops::Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = range
        .filter_map(|i| topic.partition(i))
        .map(|p| {
            let resp = DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p.index)
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()));
            let Some(reg) = cluster::partition(image, topic.topic_id, p.index) else {
                return resp
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(p.leader_epoch());
            };
            // No error code here, unlike Metadata (KRaftMetadataCache
            // .getPartitionMetadataForDescribeTopicResponse).
            let view = cluster::PartitionView::new(image, reg);
            resp.with_leader_id(BrokerId(view.leader()))
                .with_leader_epoch(reg.leader_epoch)
                .with_replica_nodes(ids(&reg.replicas))
                .with_isr_nodes(ids(&reg.isr))
                .with_offline_replicas(ids(&view.offline_replicas()))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}
