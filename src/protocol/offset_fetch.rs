//! OffsetFetch (key 9): committed offsets of one group (v1-7) or of several (v8+, KIP-709);
//! a partition without a commit answers offset -1. Offsets pending in an open transaction are
//! never shown; with require_stable (v7+: a read_committed consumer) such a partition answers
//! UNSTABLE_OFFSET_COMMIT and the consumer retries.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::group::coordinator::FetchedOffset;
use crate::group::offsets_topic::CommittedOffset;
use crate::protocol::errors;
use crate::security::authorizer::AclOperation;

const BATCH_VERSION: i16 = 8;

type Fetched = Result<Option<CommittedOffset>, i16>;
type TopicOffsets = (String, Vec<(i32, Fetched)>);

/// Groups the flat (topic, partition, offset) list by topic, keeping order.
fn by_topic(found: Vec<FetchedOffset>) -> Vec<TopicOffsets> {
    let mut out: Vec<TopicOffsets> = Vec::new();
    for (t, p, c) in found {
        match out.last_mut() {
            Some((last, ps)) if *last == t => ps.push((p, c)),
            _ => out.push((t, vec![(p, c)])),
        }
    }
    out
}

/// The topics the session may DESCRIBE (KafkaApis.handleOffsetFetchRequest): when the request
/// named none (`all`), the others are left out; when it named them, their partitions are
/// TOPIC_AUTHORIZATION_FAILED.
fn describable(
    ctx: &RequestContext<'_>,
    topics: Vec<TopicOffsets>,
    all: bool,
) -> Vec<TopicOffsets> {
    topics
        .into_iter()
        .filter_map(|(t, ps)| {
            if ctx.authorize_topic(AclOperation::Describe, &t) {
                return Some((t, ps));
            }
            let refused = ps
                .into_iter()
                .map(|(p, _)| (p, Err(errors::TOPIC_AUTHORIZATION_FAILED)))
                .collect();
            (!all).then_some((t, refused))
        })
        .collect()
}

/// (error, offset, leader epoch, metadata) of one partition; an error comes with offset -1.
fn fields(c: Fetched) -> (i16, i64, i32, StrBytes) {
    match c {
        Ok(Some(c)) => (
            errors::NONE,
            c.offset,
            c.leader_epoch,
            StrBytes::from_string(c.metadata),
        ),
        Ok(None) => (errors::NONE, -1, -1, StrBytes::default()),
        Err(code) => (code, -1, -1, StrBytes::default()),
    }
}

pub fn handle(ctx: &RequestContext<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = &ctx.broker.groups;
    // The field exists from v7; older versions decode it as false.
    let stable = req.require_stable;
    if ctx.api_version >= BATCH_VERSION {
        let results = req
            .groups
            .into_iter()
            .map(|g| {
                let checked = if ctx.authorize_group(AclOperation::Describe, g.group_id.as_str()) {
                    super::cluster::check_group_coordinator(ctx, g.group_id.as_str())
                } else {
                    Err(errors::GROUP_AUTHORIZATION_FAILED)
                };
                if let Err(code) = checked {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code);
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let all = wanted.is_none();
                let found = match groups.fetch_offsets(g.group_id.as_str(), wanted, stable) {
                    Ok(found) => found,
                    Err(code) => {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(code)
                    }
                };
                let topics = describable(ctx, by_topic(found), all)
                    .into_iter()
                    .map(|(t, ps)| {
                        let partitions = ps
                            .into_iter()
                            .map(|(p, c)| {
                                let (code, offset, epoch, meta) = fields(c);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_error_code(code)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(meta))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0))
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(results);
    }
    if !ctx.authorize_group(AclOperation::Describe, req.group_id.as_str()) {
        return not_coordinator(ctx.api_version, req, errors::GROUP_AUTHORIZATION_FAILED);
    }
    if let Err(code) = super::cluster::check_group_coordinator(ctx, req.group_id.as_str()) {
        return not_coordinator(ctx.api_version, req, code);
    }
    // Cloned: a shard that cannot answer is refused per requested partition before v2.
    let wanted = req.topics.clone().map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let all = wanted.is_none();
    let found = match groups.fetch_offsets(req.group_id.as_str(), wanted, stable) {
        Ok(found) => by_topic(found),
        Err(code) => return not_coordinator(ctx.api_version, req, code),
    };
    let topics = describable(ctx, found, all)
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, c)| {
                    let (code, offset, epoch, meta) = fields(c);
                    let mut r = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                        .with_committed_offset(offset)
                        .with_metadata(Some(meta));
                    if ctx.api_version >= 5 {
                        r.committed_leader_epoch = epoch;
                    }
                    r
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(t)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// OffsetFetch below v8 refused as a whole (not the coordinator, no DESCRIBE on the group): the error at the
/// top level (v2+), or on each requested partition before v2, where there is no top level.
fn not_coordinator(v: i16, req: OffsetFetchRequest, code: i16) -> OffsetFetchResponse {
    if v >= 2 {
        return OffsetFetchResponse::default().with_error_code(code);
    }
    let topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                        .with_committed_offset(-1)
                        .with_metadata(Some(StrBytes::default()))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}
