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
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let found = groups.fetch_offsets(g.group_id.as_str(), wanted, stable);
                let topics = by_topic(found)
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
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = by_topic(groups.fetch_offsets(req.group_id.as_str(), wanted, stable))
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
