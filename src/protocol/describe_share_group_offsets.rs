//! DescribeShareGroupOffsets (key 90, KIP-932): where each share-partition of a share group
//! starts and how far it lags, as `kafka-share-groups --describe` and
//! Admin.listShareGroupOffsets read them (Kafka's KafkaApis.handleDescribeShareGroupOffsetsRequest
//! and GroupCoordinatorService.describeShareGroupOffsets).
//!
//! - Topics null: every share-partition of the group that has a state (Kafka's initialized
//!   topics), those of topics the session may not DESCRIBE left out; a group without any (or no
//!   group at all) has no topics, without an error.
//! - Topics listed: each in turn; a topic the session may not DESCRIBE comes last, its partitions
//!   TOPIC_AUTHORIZATION_FAILED; an unknown topic has the nil topic id and start offset -1.
//! - A share-partition without a state has start offset -1, leader epoch 0 and lag -1. Otherwise
//!   the lag (v1) is the records from the start offset to the high watermark that are not yet
//!   acknowledged or archived.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup as RequestGroup,
    DescribeShareGroupOffsetsRequestTopic as RequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as ResponseGroup,
    DescribeShareGroupOffsetsResponsePartition as ResponsePartition,
    DescribeShareGroupOffsetsResponseTopic as ResponseTopic,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{errors, RequestContext};
use crate::metadata::topic::Topic;
use crate::security::authorizer::AclOperation;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let enabled = super::share_groups_enabled(ctx);
    let groups = req
        .groups
        .into_iter()
        .map(|g| describe_group(ctx, enabled, g))
        .collect();
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

fn describe_group(ctx: &RequestContext<'_>, enabled: bool, g: RequestGroup) -> ResponseGroup {
    let group_id = g.group_id.as_str().to_string();
    let answer = ResponseGroup::default().with_group_id(g.group_id);
    // Kafka sets the code alone for these two.
    if !enabled {
        return answer.with_error_code(errors::UNSUPPORTED_VERSION);
    }
    if !ctx.authorize_group(AclOperation::Describe, &group_id) {
        return answer.with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let topics = match g.topics {
        None => {
            // The group coordinator knows the group's share-partitions: it must be this one.
            if let Err(code) = super::cluster::check_group_coordinator(ctx, &group_id) {
                let msg = errors::message(code).map(StrBytes::from_static_str);
                return answer.with_error_code(code).with_error_message(msg);
            }
            all_topics(ctx, &group_id)
        }
        Some(topics) => listed_topics(ctx, &group_id, topics),
    };
    answer.with_topics(topics)
}

/// Every share-partition of the group with a state, by topic, those of topics the session may
/// not describe left out (KafkaApis.describeShareGroupAllOffsetsForGroup).
fn all_topics(ctx: &RequestContext<'_>, group_id: &str) -> Vec<ResponseTopic> {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (_, topic_id, partition) in ctx.broker.shares.partitions_of_group(group_id) {
        by_topic.entry(topic_id).or_default().push(partition);
    }
    by_topic
        .into_iter()
        .filter_map(|(id, partitions)| {
            let topic = ctx.broker.catalog.get_by_id(id)?;
            ctx.authorize_topic(AclOperation::Describe, &topic.name)
                .then(|| known_topic(ctx, group_id, &topic, &partitions))
        })
        .collect()
}

/// The listed topics: known ones in request order, then unknown ones, then those the session
/// may not describe (GroupCoordinatorService.describeShareGroupOffsets, then KafkaApis).
fn listed_topics(
    ctx: &RequestContext<'_>,
    group_id: &str,
    topics: Vec<RequestTopic>,
) -> Vec<ResponseTopic> {
    let (mut known, mut unknown, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for t in topics {
        let name = t.topic_name.as_str();
        if !ctx.authorize_topic(AclOperation::Describe, name) {
            let code = errors::TOPIC_AUTHORIZATION_FAILED;
            let failed = |p: &i32| {
                ResponsePartition::default()
                    .with_partition_index(*p)
                    .with_start_offset(-1)
                    .with_error_code(code)
                    .with_error_message(errors::message(code).map(StrBytes::from_static_str))
            };
            let partitions = t.partitions.iter().map(failed).collect();
            refused.push(nameless_topic(t.topic_name, partitions));
            continue;
        }
        match ctx.broker.catalog.get(name) {
            Some(topic) => known.push(known_topic(ctx, group_id, &topic, &t.partitions)),
            None => {
                let no_state = |p: &i32| {
                    ResponsePartition::default()
                        .with_partition_index(*p)
                        .with_start_offset(-1)
                };
                let partitions = t.partitions.iter().map(no_state).collect();
                unknown.push(nameless_topic(t.topic_name, partitions));
            }
        }
    }
    known.append(&mut unknown);
    known.append(&mut refused);
    known
}

/// A topic answered with the nil topic id.
fn nameless_topic(name: TopicName, partitions: Vec<ResponsePartition>) -> ResponseTopic {
    ResponseTopic::default()
        .with_topic_name(name)
        .with_topic_id(Uuid::nil())
        .with_partitions(partitions)
}

/// The share-partitions of one existing topic, from their persisted states.
fn known_topic(
    ctx: &RequestContext<'_>,
    group_id: &str,
    topic: &Topic,
    partitions: &[i32],
) -> ResponseTopic {
    let partitions = partitions
        .iter()
        .map(|&p| {
            let key = (group_id.to_string(), topic.topic_id, p);
            let answer = ResponsePartition::default().with_partition_index(p);
            // ReadShareGroupStateSummary of a share-partition without a state: start -1, leader
            // epoch 0, delivery-complete count -1, so no lag.
            let Some(state) = ctx.broker.shares.persisted_state(&key) else {
                return answer.with_start_offset(-1);
            };
            let log = topic.partition(p);
            // Kafka's share-partition writes the leader epoch it was loaded at; gregor's records
            // leave it at -1: the partition's own is that one unless leadership moved since.
            let leader_epoch = match state.leader_epoch {
                e if e >= 0 => e,
                _ => log.map_or(0, |l| l.leader_epoch()),
            };
            let answer = answer
                .with_start_offset(state.start_offset)
                .with_leader_epoch(leader_epoch);
            if state.start_offset < 0 {
                return answer;
            }
            let Some(log) = log else {
                let code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                let msg = errors::message(code).map(StrBytes::from_static_str);
                return ResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code)
                    .with_error_message(msg);
            };
            let (_, high_watermark) = log.offsets();
            let lag = high_watermark - state.start_offset - state.delivery_complete_count();
            answer.with_lag(lag)
        })
        .collect();
    ResponseTopic::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.name.clone())))
        .with_topic_id(topic.topic_id)
        .with_partitions(partitions)
}
