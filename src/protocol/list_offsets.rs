//! ListOffsets (key 2): earliest, latest, by timestamp, and max timestamp (KIP-734).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::errors;
use super::RequestContext;
use crate::log::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(ctx: &RequestContext<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.catalog.get(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        None => resp.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(part) => lookup(part, p.timestamp, resp, ctx.api_version),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// With no transactions the last stable offset is the high watermark, so read_committed and
/// read_uncommitted agree on LATEST.
fn lookup(
    part: &Partition,
    timestamp: i64,
    resp: ListOffsetsPartitionResponse,
    v: i16,
) -> ListOffsetsPartitionResponse {
    let found = part.with_log(|log| -> Result<Option<(i64, i64)>, _> {
        Ok(match timestamp {
            LATEST => Some((-1, log.high_watermark())),
            EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset())),
            MAX_TIMESTAMP => log.offset_of_max_timestamp()?,
            LATEST_TIERED => None,
            t if t >= 0 => log.offset_for_timestamp(t)?,
            _ => None,
        })
    });
    // leader_epoch exists from v4; setting it on older versions fails to encode.
    let epoch = if v >= 4 {
        part.with_log(|l| l.leader_epoch())
    } else {
        -1
    };
    match found {
        Ok(Some((ts, offset))) => resp
            .with_timestamp(ts)
            .with_offset(offset)
            .with_leader_epoch(epoch),
        Ok(None) => resp.with_timestamp(-1).with_offset(-1),
        Err(e) => resp.with_error_code(errors::log_error_code(&e)),
    }
}
