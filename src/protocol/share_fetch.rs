//! ShareFetch (key 78, KIP-932): a share consumer acknowledges what it acquired before
//! (piggy-backed acknowledgements) and acquires the next records of the partitions of its share
//! session, each record locked for it until it acknowledges it or the lock
//! (`group.share.record.lock.duration.ms`) runs out.
//!
//! - The share session (`share::session`): epoch 0 opens it (no acknowledgements allowed), the
//!   next epochs add and forget partitions, -1 only acknowledges and closes it (releasing what
//!   the member still holds).
//! - Acknowledgements go first, each partition's outcome in its AcknowledgeErrorCode.
//! - Acquisition reads whole batches from where the share-partition's next available record
//!   is, up to `max_records` records (a soft limit ending on a batch boundary, as Kafka) and
//!   `max_bytes`; the answer carries those batches and the acquired ranges, and the client
//!   delivers only the records inside them.
//! - Nothing acquired: the request waits in the purgatory on its partitions, up to `max_wait_ms`,
//!   for an append, a release or an expired lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords as WireAcquired, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::share_acknowledge::{acknowledge_partition, batch, check_share_request, leader_of};
use super::{errors, resolve_authorized_topic, RequestContext};
use crate::log::batch::BatchHeader;
use crate::log::FetchIsolation;
use crate::metadata::Topic;
use crate::security::authorizer::AclOperation;
use crate::share::manager::AutoOffsetReset;
use crate::share::partition::AcquiredRecords;
use crate::share::session::{ShareFetchContext, TopicIdPartition};

/// Upper bound on one long poll, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(300);

/// One partition's answer as it is built.
#[derive(Default)]
struct Answer {
    error_code: i16,
    acknowledge: Option<(i16, Option<String>)>,
    records: Option<Bytes>,
    acquired: Vec<AcquiredRecords>,
}

pub async fn handle(ctx: &RequestContext<'_>, req: ShareFetchRequest) -> ShareFetchResponse {
    let (group_id, member_id) = match check_share_request(ctx, &req.group_id, &req.member_id) {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let fetch: Vec<TopicIdPartition> = (req.topics.iter())
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id, p.partition_index))
        })
        .collect();
    let forget: Vec<TopicIdPartition> = (req.forgotten_topics_data.iter())
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let has_acks = (req.topics.iter())
        .flat_map(|t| &t.partitions)
        .any(|p| !p.acknowledgement_batches.is_empty());
    let shares = &ctx.broker.shares;
    let epoch = req.share_session_epoch;
    let (catalog, now) = (&ctx.broker.catalog, ctx.broker.clock.now_ms());
    let context = shares.with_sessions(catalog, (&group_id, &member_id), now, |s| {
        match s.new_context(
            &group_id,
            &member_id,
            epoch,
            &fetch,
            &forget,
            has_acks,
            ctx.connection_id,
        ) {
            Ok((context, replaced)) => (Ok(context), replaced),
            Err(code) => (Err(code), None),
        }
    });
    let context = match context {
        Ok(c) => c,
        Err(code) => return ShareFetchResponse::default().with_error_code(code),
    };
    let limits = req_limits(&req);
    let mut answers: Vec<(TopicIdPartition, Answer)> = Vec::new();
    for t in req.topics {
        for p in t.partitions {
            if p.acknowledgement_batches.is_empty() {
                continue;
            }
            let batches = (p.acknowledgement_batches.into_iter())
                .map(|b| batch(b.first_offset, b.last_offset, b.acknowledge_types))
                .collect();
            let tp = (t.topic_id, p.partition_index);
            let outcome = acknowledge_partition(ctx, (&group_id, &member_id), tp, batches);
            let answer = Answer {
                acknowledge: Some(outcome),
                ..Answer::default()
            };
            answers.push(((t.topic_id, p.partition_index), answer));
        }
    }
    let partitions = match context {
        ShareFetchContext::Final => {
            shares.close_session(catalog, &group_id, &member_id, now);
            Vec::new()
        }
        ShareFetchContext::Session(partitions) => partitions,
    };
    let fetched = acquire_or_wait(ctx, &limits, &group_id, &member_id, &partitions).await;
    for (tp, a) in fetched {
        match answers.iter_mut().find(|(k, _)| *k == tp) {
            Some((_, existing)) => {
                existing.error_code = a.error_code;
                existing.records = a.records;
                existing.acquired = a.acquired;
            }
            None => answers.push((tp, a)),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(
            i32::try_from(shares.record_lock_duration_ms()).unwrap_or(i32::MAX),
        )
        .with_responses(by_topic(ctx, answers))
}

struct Limits {
    max_wait: Duration,
    max_bytes: usize,
    max_records: i64,
}

fn req_limits(req: &ShareFetchRequest) -> Limits {
    Limits {
        max_wait: Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0))
            .min(MAX_WAIT_CAP),
        max_bytes: usize::try_from(req.max_bytes).unwrap_or(0),
        max_records: i64::from(req.max_records),
    }
}

/// Acquires from the session's partitions; while nothing was acquired and no partition has an
/// error, parks on them until `max_wait` passes (Kafka's DelayedShareFetch).
async fn acquire_or_wait(
    ctx: &RequestContext<'_>,
    limits: &Limits,
    group_id: &str,
    member_id: &str,
    partitions: &[TopicIdPartition],
) -> Vec<(TopicIdPartition, Answer)> {
    if partitions.is_empty() {
        return Vec::new();
    }
    let deadline = tokio::time::Instant::now() + limits.max_wait;
    let targets: Vec<(TopicIdPartition, Result<Arc<Topic>, i16>)> = partitions
        .iter()
        .map(|&(id, p)| {
            let topic = resolve_authorized_topic(ctx, "", id, true, AclOperation::Read).and_then(
                |t| match t.partition(p) {
                    Some(_) => Ok(t),
                    None => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                },
            );
            ((id, p), topic)
        })
        .collect();
    let mut watch = None;
    loop {
        let answers = acquire(ctx, limits, group_id, member_id, &targets);
        let done = answers
            .iter()
            .any(|(_, a)| a.error_code != errors::NONE || !a.acquired.is_empty())
            || tokio::time::Instant::now() >= deadline;
        if done {
            return answers
                .into_iter()
                .filter(|(_, a)| a.error_code != errors::NONE || !a.acquired.is_empty())
                .collect();
        }
        let Some(w) = &watch else {
            let keys = targets
                .iter()
                .filter_map(|((_, p), t)| Some((t.as_ref().ok()?.name.as_str(), *p)));
            watch = Some(ctx.broker.purgatory.watch(keys));
            continue;
        };
        tokio::select! {
            _ = w.woken() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One round of acquisition over the partitions, within the request's record and byte limits.
fn acquire(
    ctx: &RequestContext<'_>,
    limits: &Limits,
    group_id: &str,
    member_id: &str,
    targets: &[(TopicIdPartition, Result<Arc<Topic>, i16>)],
) -> Vec<(TopicIdPartition, Answer)> {
    let image = ctx.broker.catalog.image();
    let now = ctx.broker.clock.now();
    let reset = AutoOffsetReset::parse(
        image
            .configs
            .get(&(
                crate::metadata::records::RESOURCE_GROUP,
                group_id.to_string(),
            ))
            .and_then(|c| c.get("share.auto.offset.reset"))
            .map(String::as_str),
    );
    let (mut records_left, mut bytes_left) = (limits.max_records, limits.max_bytes);
    let mut answers = Vec::new();
    for &((topic_id, p), ref topic) in targets {
        let mut answer = Answer::default();
        let topic = match topic {
            Ok(t) => t,
            Err(code) => {
                answer.error_code = *code;
                answers.push(((topic_id, p), answer));
                continue;
            }
        };
        if let Err(code) = super::cluster::check_leader(ctx, &image, topic_id, p, -1) {
            answer.error_code = code;
            answers.push(((topic_id, p), answer));
            continue;
        }
        if records_left <= 0 || bytes_left == 0 {
            continue;
        }
        let Some(partition) = topic.partition(p) else {
            continue;
        };
        let (log_start, high_watermark) = partition.offsets();
        let init = || match reset {
            AutoOffsetReset::Earliest => log_start,
            AutoOffsetReset::Latest => high_watermark,
        };
        let first_batch = answers
            .iter()
            .all(|(_, a): &(_, Answer)| a.records.is_none());
        let read = |offset: i64| {
            let plan = partition
                .plan_fetch(offset, FetchIsolation::HighWatermark, -1)
                .map_err(|e| errors::log_error_code(&e))?;
            let bytes = plan
                .read(bytes_left, first_batch)
                .map_err(|_| errors::KAFKA_STORAGE_ERROR)?;
            Ok((batch_ranges(&bytes), bytes))
        };
        let key = (group_id.to_string(), topic_id, p);
        match ctx.broker.shares.acquire(
            &ctx.broker.catalog,
            (&key, &topic.name),
            member_id,
            records_left,
            log_start,
            now,
            init,
            read,
        ) {
            Ok((acquired, Some(bytes))) => {
                let last = acquired.records.last().map_or(-1, |r| r.last_offset);
                let bytes = cut_after(bytes, last);
                records_left -= acquired
                    .records
                    .iter()
                    .map(|r| r.last_offset - r.first_offset + 1)
                    .sum::<i64>();
                bytes_left = bytes_left.saturating_sub(bytes.len());
                answer.records = Some(bytes);
                answer.acquired = acquired.records;
            }
            Ok((_, None)) => {}
            Err(code) => answer.error_code = code,
        }
        answers.push(((topic_id, p), answer));
    }
    answers
}

/// The (base offset, last offset) of each whole batch in `bytes`.
fn batch_ranges(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(h) = BatchHeader::parse(&bytes[at..]) {
        let size = h.total_size();
        if size == 0 || at + size > bytes.len() {
            break;
        }
        out.push((h.base_offset, h.last_offset()));
        at += size;
    }
    out
}

/// The batches of `bytes` up to the one holding `last` (the rest was not acquired).
fn cut_after(bytes: Bytes, last: i64) -> Bytes {
    let mut at = 0;
    while let Some(h) = BatchHeader::parse(&bytes[at..]) {
        let size = h.total_size();
        if size == 0 || at + size > bytes.len() || h.base_offset > last {
            break;
        }
        at += size;
    }
    bytes.slice(..at)
}

fn by_topic(
    ctx: &RequestContext<'_>,
    answers: Vec<(TopicIdPartition, Answer)>,
) -> Vec<ShareFetchableTopicResponse> {
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for ((topic_id, p), a) in answers {
        let (leader_id, leader_epoch) = leader_of(ctx, topic_id, p);
        let (ack_code, ack_message) = a.acknowledge.unwrap_or_default();
        let pd = PartitionData::default()
            .with_partition_index(p)
            .with_error_code(a.error_code)
            .with_acknowledge_error_code(ack_code)
            .with_acknowledge_error_message(ack_message.map(StrBytes::from_string))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(leader_id)
                    .with_leader_epoch(leader_epoch),
            )
            .with_records(Some(a.records.unwrap_or_default()))
            .with_acquired_records(
                a.acquired
                    .iter()
                    .map(|r| {
                        WireAcquired::default()
                            .with_first_offset(r.first_offset)
                            .with_last_offset(r.last_offset)
                            .with_delivery_count(r.delivery_count)
                    })
                    .collect(),
            );
        let i = *index.entry(topic_id).or_insert_with(|| {
            topics.push(ShareFetchableTopicResponse::default().with_topic_id(topic_id));
            topics.len() - 1
        });
        topics[i].partitions.push(pd);
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, records: i32) -> Vec<u8> {
        // A 61-byte v2 header with the fields these functions read; no records.
        let mut b = vec![0u8; 61];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&49i32.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        b
    }

    #[test]
    fn batches_are_found_and_cut_on_their_boundaries() {
        let mut bytes = batch(0, 3);
        bytes.extend(batch(3, 2));
        bytes.extend(batch(5, 1));
        bytes.extend(&batch(6, 1)[..30]); // a partial batch at the end
        let bytes = Bytes::from(bytes);
        assert_eq!(batch_ranges(&bytes), vec![(0, 2), (3, 4), (5, 5)]);
        assert_eq!(cut_after(bytes.clone(), 3).len(), 122);
        assert_eq!(cut_after(bytes.clone(), 5).len(), 183);
        assert_eq!(cut_after(bytes, -1).len(), 0);
    }
}
