//! AlterShareGroupOffsets (key 91, KIP-932): moves where share-partitions of an empty share group
//! start, as `kafka-share-groups --reset-offsets --execute` and Admin.alterShareGroupOffsets do
//! (Kafka's KafkaApis.handleAlterShareGroupOffsetsRequest, GroupMetadataManager
//! .alterShareGroupOffsets, then InitializeShareGroupState of each share-partition).
//!
//! READ on the group (GROUP_AUTHORIZATION_FAILED for the whole request) and on each topic
//! (TOPIC_AUTHORIZATION_FAILED for its partitions); an unknown topic or partition is
//! UNKNOWN_TOPIC_OR_PARTITION. The group must be a share group without members (NON_EMPTY_GROUP,
//! GROUP_ID_NOT_FOUND for a group of another type, as a top-level error); a missing one is
//! created, empty, as Kafka does. Each share-partition then starts over at the offset given,
//! nothing in flight: what was acknowledged past it is delivered again.

use indexmap::IndexMap;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as ResponsePartition,
    AlterShareGroupOffsetsResponseTopic as ResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{errors, RequestContext};
use crate::security::authorizer::AclOperation;

/// The whole request failed: a top-level code with Kafka's message for it.
fn failed(code: i16, message: Option<String>) -> AlterShareGroupOffsetsResponse {
    let message = message.or_else(|| errors::message(code).map(str::to_string));
    AlterShareGroupOffsetsResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

fn partition(index: i32, code: i16) -> ResponsePartition {
    ResponsePartition::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_error_message(errors::message(code).map(StrBytes::from_static_str))
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    if !super::share_groups_enabled(ctx) {
        return failed(errors::UNSUPPORTED_VERSION, None);
    }
    let group_id = req.group_id.as_str();
    if !ctx.authorize_group(AclOperation::Read, group_id) {
        return failed(errors::GROUP_AUTHORIZATION_FAILED, None);
    }
    let catalog = &ctx.broker.catalog;
    // Topics refused or unknown are answered first (KafkaApis' response builder), the others
    // after the group coordinator's checks.
    let mut answered = Topics::new();
    let mut accepted = Vec::new();
    for t in req.topics {
        let name = t.topic_name.as_str();
        let code = if !ctx.authorize_topic(AclOperation::Read, name) {
            errors::TOPIC_AUTHORIZATION_FAILED
        } else if catalog.get(name).is_none() {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        } else {
            accepted.push(t);
            continue;
        };
        let topic_id = catalog.get(name).map_or(Uuid::nil(), |t| t.topic_id);
        let partitions = t
            .partitions
            .iter()
            .map(|p| partition(p.partition_index, code));
        topic_entry(&mut answered, t.topic_name, topic_id).extend(partitions);
    }
    let now = ctx.broker.clock.now_ms();
    if let Err(code) = super::cluster::check_group_coordinator(ctx, group_id) {
        return failed(code, None);
    }
    if let Err((code, message)) =
        (ctx.broker.groups).empty_share_group(catalog, group_id, true, now)
    {
        return failed(code, Some(message));
    }
    for t in accepted {
        // Looked up again: the topic may have gone meanwhile.
        let topic = catalog.get(t.topic_name.as_str());
        let topic_id = topic.as_ref().map_or(Uuid::nil(), |t| t.topic_id);
        let count = topic.as_ref().map_or(0, |t| t.partitions.len());
        let partitions: Vec<ResponsePartition> = (t.partitions.iter())
            .map(|p| {
                let index = p.partition_index;
                if usize::try_from(index).map_or(true, |i| i >= count) {
                    return partition(index, errors::UNKNOWN_TOPIC_OR_PARTITION);
                }
                let key = (group_id.to_string(), topic_id, index);
                let reset =
                    (ctx.broker.shares).reset_start_offset(catalog, (&key, p.start_offset), now);
                match reset {
                    Ok(()) => ResponsePartition::default().with_partition_index(index),
                    Err(code) => partition(index, code),
                }
            })
            .collect();
        topic_entry(&mut answered, t.topic_name, topic_id).extend(partitions);
    }
    AlterShareGroupOffsetsResponse::default().with_responses(answered.into_values().collect())
}

/// The response's topics by name: a topic named twice is one entry, as in Kafka's response
/// collection keyed by name.
type Topics = IndexMap<String, ResponseTopic>;

/// The partitions of a topic's entry, made on first use.
fn topic_entry(
    topics: &mut Topics,
    name: TopicName,
    topic_id: Uuid,
) -> &mut Vec<ResponsePartition> {
    let entry = topics.entry(name.as_str().to_string()).or_insert_with(|| {
        ResponseTopic::default()
            .with_topic_name(name)
            .with_topic_id(topic_id)
    });
    &mut entry.partitions
}
