//! ListOffsets (key 2): earliest, latest, by timestamp, and max timestamp (KIP-734).
//!
//! As Kafka's ReplicaManager.fetchOffset: a partition named more than once gets INVALID_REQUEST
//! (once), and a special timestamp older than the version that introduced it UNSUPPORTED_VERSION.

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::collections::HashSet;

use super::cluster;
use super::errors;
use super::RequestContext;
use crate::log::partition::Partition;
use crate::security::authorizer::AclOperation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The first version that knows each special timestamp (ReplicaManager's
/// timestampMinSupportedVersion); any other negative timestamp is unsupported at every version.
fn min_version(timestamp: i64) -> Option<i16> {
    match timestamp {
        LATEST | EARLIEST => Some(1),
        MAX_TIMESTAMP => Some(7),
        EARLIEST_LOCAL => Some(8),
        LATEST_TIERED => Some(9),
        _ => None,
    }
}

fn unsupported(timestamp: i64, version: i16) -> bool {
    timestamp < 0 && min_version(timestamp).is_none_or(|v| version < v)
}

pub fn handle(ctx: &RequestContext<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let duplicates = duplicate_partitions(&req);
    let image = ctx.broker.catalog.image();
    let mut answered = HashSet::new();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = ctx.broker.catalog.get(t.name.as_str());
            // DESCRIBE on the topic, before anything else (KafkaApis.handleListOffsetRequest).
            let denied = !ctx.authorize_topic(AclOperation::Describe, t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .filter_map(|p| {
                    let key = (t.name.as_str(), p.partition_index);
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    if denied {
                        return Some(resp.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED));
                    }
                    if duplicates.contains(&key) {
                        // Kafka answers a duplicated partition once.
                        return answered
                            .insert(key)
                            .then(|| resp.with_error_code(errors::INVALID_REQUEST));
                    }
                    if unsupported(p.timestamp, ctx.api_version) {
                        return Some(resp.with_error_code(errors::UNSUPPORTED_VERSION));
                    }
                    let led = cluster::led_partition(
                        ctx,
                        &image,
                        topic.as_ref(),
                        p.partition_index,
                        p.current_leader_epoch,
                    );
                    Some(match led {
                        Err(code) => resp.with_error_code(code),
                        Ok(part) => lookup(part, p, req.isolation_level, resp, ctx.api_version),
                    })
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (topic, partition) pairs the request names more than once.
fn duplicate_partitions(req: &ListOffsetsRequest) -> HashSet<(&str, i32)> {
    let mut seen = HashSet::new();
    req.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.as_str(), p.partition_index))
        })
        .filter(|key| !seen.insert(*key))
        .collect()
}

/// As Kafka's Partition.fetchOffsetForTimestamp: the request's current leader epoch is checked
/// first (KIP-320), the last fetchable offset is the last stable offset for read_committed
/// (isolation_level 1), else the high watermark; LATEST answers it, and a timestamp lookup that
/// lands at or past it finds nothing (ReplicaManager.fetchOffset). The epoch answered (v4+) is
/// the partition's for LATEST, else the one that wrote the offset found (UnifiedLog
/// .fetchOffsetByTimestamp: the earliest epoch entry, or the found batch's epoch).
fn lookup(
    part: &Partition,
    p: &ListOffsetsPartition,
    isolation_level: i8,
    resp: ListOffsetsPartitionResponse,
    v: i16,
) -> ListOffsetsPartitionResponse {
    let timestamp = p.timestamp;
    let found = part.with_log(|log| -> Result<Option<(i64, i64, i32)>, _> {
        log.check_current_leader_epoch(p.current_leader_epoch)?;
        let last_fetchable = match isolation_level {
            1 => log.last_stable_offset(),
            _ => log.high_watermark(),
        };
        let by_timestamp = |found: Option<(i64, i64)>| found.filter(|f| f.1 < last_fetchable);
        let found = match timestamp {
            LATEST => Some((-1, last_fetchable)),
            EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset())),
            MAX_TIMESTAMP => by_timestamp(log.offset_of_max_timestamp()?),
            LATEST_TIERED => None,
            t if t >= 0 => by_timestamp(log.offset_for_timestamp(t)?),
            _ => None,
        };
        let epoch_of = |offset| match timestamp {
            LATEST => log.leader_epoch(),
            _ => log.leader_epochs().epoch_for_offset(offset).unwrap_or(-1),
        };
        Ok(found.map(|(ts, offset)| (ts, offset, epoch_of(offset))))
    });
    match found {
        Ok(Some((ts, offset, epoch))) => resp
            .with_timestamp(ts)
            .with_offset(offset)
            // leader_epoch exists from v4; setting it on older versions fails to encode.
            .with_leader_epoch(if v >= 4 { epoch } else { -1 }),
        Ok(None) => resp.with_timestamp(-1).with_offset(-1),
        Err(e) => resp.with_error_code(errors::log_error_code(&e)),
    }
}
