//! Fetch (key 1): serve stored batches byte for byte, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes.
//!
//! Size rules (KIP-74), as Kafka's LogSegment.read applies them: at most `partition_max_bytes` per
//! partition and `max_bytes` (capped by the broker's fetch.max.bytes) per response, cut wherever
//! the limit falls (clients drop a trailing partial batch and fetch it again), except that the
//! first batch of the first partition with data is returned whole even when larger, so consumers
//! always progress. The record bytes are not read: they go from the segment file to the socket
//! (`response::Splices`).
//! isolation_level 1 (read_committed) reads only below the last stable offset and lists the
//! aborted transactions of the records read (UnifiedLog.read with FetchIsolation.TXN_COMMITTED);
//! every answer carries the last stable offset.
//! Incremental fetch sessions (KIP-227, `fetch_session`) decide which partitions a fetch reads (the
//! request's, or its whole session's) and which of them the answer carries (an incremental one
//! only those with news); a parked fetch of a session waits on all of the session's partitions.
//! The current_leader_epoch (v9+) is checked first (KIP-320: FENCED_LEADER_EPOCH /
//! UNKNOWN_LEADER_EPOCH), then a broker that does not lead a partition answers
//! NOT_LEADER_OR_FOLLOWER for it (`cluster::check_leader`); at v16+ NOT_LEADER_OR_FOLLOWER and
//! FENCED_LEADER_EPOCH carry the current leader, its epoch and its endpoint (KIP-951).
//! A fetch naming the epoch of its last batch (v12+, KIP-320) whose log diverged from this one
//! gets no records but DivergingEpoch, this log's end of that epoch (KIP-279), at once.
//! A follower's fetch (a replica id; ReplicaState from v15) reads to the log end, needs
//! CLUSTER_ACTION, and is that follower's position at the leader (`record_follower_fetch`),
//! which moves the high watermark.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::cluster::{self, CurrentLeaders, KIP_951_ERRORS};
use super::errors;
use super::fetch_session::{
    FetchContext, FetchMetadata, FetchPartitionData, PartitionKey, TopicKey,
};
use super::response::Splices;
use super::{resolve_authorized_topic, resolve_topic, RequestContext};
use crate::log::index::AbortedTxn;
use crate::log::partition::{LogError, ReadPlan};
use crate::log::FetchIsolation;
use crate::metadata::image::MetadataImage;
use crate::metadata::Topic;
use crate::security::authorizer::AclOperation;
use crate::server::client_quotas::QuotaType;

/// First Fetch version that names topics by id.
pub const TOPIC_ID_VERSION: i16 = 13;
/// Upper bound on one long poll, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(300);

pub async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> (FetchResponse, Splices) {
    let by_id = ctx.api_version >= TOPIC_ID_VERSION;
    let sessions = &ctx.broker.fetch_sessions;
    let from_follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
    if from_follower {
        // Replication is not a client's request (Kafka exempts it from the request quota).
        ctx.exempt_from_request_quota();
    }
    let meta = FetchMetadata {
        version: ctx.api_version,
        session_id: req.session_id,
        epoch: req.session_epoch,
        is_from_follower: from_follower,
    };
    let (context, targets) = sessions.new_context(
        meta,
        fetch_data(ctx, &req, by_id),
        &forgotten(&req, by_id),
        |id| ctx.broker.catalog.get_by_id(id).map(|t| t.name.clone()),
        ctx.broker.clock.now_ms(),
    );
    if let FetchContext::SessionError(code) = context {
        let resp = FetchResponse::default().with_error_code(code);
        return (resp, Splices::default());
    }
    let max_wait =
        Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP);
    let deadline = tokio::time::Instant::now() + max_wait;
    // Kafka (KafkaApis.handleFetchRequest) caps min_bytes at the response limit: a fetch asking
    // for more than it may receive answers once the limit is available.
    let min_bytes = u64::try_from(req.min_bytes)
        .unwrap_or(0)
        .min(response_limit(ctx, &req) as u64);
    // A follower's fetch (a replica id) needs CLUSTER_ACTION, a consumer's READ on each topic
    // (KafkaApis.handleFetchRequest), checked on every fetch of a session too.
    let follower_allowed = from_follower && ctx.authorize_cluster(AclOperation::ClusterAction);
    let targets: Vec<Target> = targets
        .into_iter()
        .map(|t| {
            let topic = match (from_follower, follower_allowed) {
                (false, _) => resolve(ctx, &t, by_id),
                (true, true) => {
                    resolve_topic(ctx, t.topic.as_deref().unwrap_or(""), t.topic_id, by_id)
                }
                (true, false) => Err(errors::TOPIC_AUTHORIZATION_FAILED),
            };
            (t, topic)
        })
        .collect();
    // Kafka's FetchIsolation: a follower reads to the log end, a consumer to the high
    // watermark or, read_committed (isolation_level 1), the last stable offset.
    let isolation = match (from_follower, req.isolation_level) {
        (true, _) => FetchIsolation::LogEnd,
        (false, 1) => FetchIsolation::TxnCommitted,
        (false, _) => FetchIsolation::HighWatermark,
    };
    // The follower (ReplicaState from v15, replica_id before) whose fetch moves its position.
    let replica_id = match req.replica_state.replica_id.0 {
        id if id >= 0 => id,
        _ => req.replica_id.0,
    };
    let follower = from_follower.then_some(replica_id);
    let mut watch = None;
    loop {
        // Leadership as of this look: a parked fetch sees a leader change on its next wake.
        let image = ctx.broker.catalog.image();
        let plans = plan(ctx, &image, &targets, isolation, follower);
        // Kafka answers at once when nothing is asked for (a closing consumer sends such a
        // request), when any partition has an error, or when enough bytes are there.
        let ready = plans.is_empty()
            || plans
                .iter()
                .any(|p| p.as_ref().map_or(true, |p| p.diverging_epoch.is_some()))
            || plans
                .iter()
                .map(|p| p.as_ref().map_or(0, ReadPlan::available))
                .sum::<u64>()
                >= min_bytes
            || tokio::time::Instant::now() >= deadline;
        if ready {
            let (partitions, splices, leaders, reads) = respond(ctx, &image, &req, &targets, plans);
            let now = ctx.broker.clock.now_ms();
            let (error_code, session_id, partitions) =
                sessions.update_and_generate(&context, now, partitions);
            let mut resp = FetchResponse::default()
                .with_error_code(error_code)
                .with_session_id(session_id)
                .with_responses(by_topic(partitions, by_id));
            resp.node_endpoints = super::cluster::node_endpoints!(leaders, NodeEndpoint);
            let (resp, splices, sent) = match from_follower {
                true => (resp, splices, true),
                false => throttled(ctx, resp, splices),
            };
            // Bytes out are the bytes sent: none of a throttled answer's.
            for (stats, read) in reads {
                let bytes = read.map(|b| if sent { b } else { 0 });
                ctx.broker.metrics.fetched(stats, bytes);
            }
            return (resp, splices);
        }
        let Some(w) = &watch else {
            // Park in the purgatory on the fetched partitions (for an incremental fetch, all of
            // its session's), then look once more before waiting (Kafka's
            // tryCompleteElseWatch): an append in between is not missed.
            watch = Some(ctx.broker.purgatory.watch(watched_partitions(&targets)));
            continue;
        };
        tokio::select! {
            _ = w.woken() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// A partition to read, with its topic (or the error that answers it).
type Target = (FetchPartitionData, Result<Arc<Topic>, i16>);

/// The request's partitions, in order, a repeated one once (Kafka's LinkedHashMap: the last
/// occurrence's parameters at the first one's place). From v13 topics are named by id; one this
/// broker does not know keeps no name.
fn fetch_data(
    ctx: &RequestContext<'_>,
    req: &FetchRequest,
    by_id: bool,
) -> IndexMap<PartitionKey, FetchPartitionData> {
    let mut data = IndexMap::new();
    for ft in &req.topics {
        let topic = if by_id {
            ctx.broker
                .catalog
                .get_by_id(ft.topic_id)
                .map(|t| t.name.clone())
        } else {
            Some(ft.topic.to_string())
        };
        for fp in &ft.partitions {
            let p = FetchPartitionData {
                topic_id: if by_id { ft.topic_id } else { Uuid::nil() },
                topic: topic.clone(),
                partition: fp.partition,
                fetch_offset: fp.fetch_offset,
                current_leader_epoch: fp.current_leader_epoch,
                partition_max_bytes: fp.partition_max_bytes,
                log_start_offset: fp.log_start_offset,
                last_fetched_epoch: fp.last_fetched_epoch,
            };
            data.insert(p.key(by_id), p);
        }
    }
    data
}

/// The partitions an incremental fetch drops from its session (v7+).
fn forgotten(req: &FetchRequest, by_id: bool) -> Vec<PartitionKey> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|ft| {
            let topic = if by_id {
                TopicKey::Id(ft.topic_id)
            } else {
                TopicKey::Name(ft.topic.to_string())
            };
            ft.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect()
}

/// The partitions a parked fetch waits on (resolved topics only: an unknown one answers at once).
fn watched_partitions(targets: &[Target]) -> impl Iterator<Item = (&str, i32)> {
    targets
        .iter()
        .filter_map(|(fp, topic)| Some((topic.as_ref().ok()?.name.as_str(), fp.partition)))
}

/// The response's byte limit: the request's max_bytes, capped by fetch.max.bytes.
fn response_limit(ctx: &RequestContext<'_>, req: &FetchRequest) -> usize {
    let limit = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(ctx.broker.config.fetch_max_bytes);
    // A consumer with a byte-rate quota gets at most a quota window's worth (v3+, which has
    // max_bytes), as KafkaApis.handleFetchRequest bounds it.
    let from_follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
    if from_follower || ctx.api_version <= 2 {
        return limit;
    }
    let image = ctx.broker.catalog.image();
    let quotas = &ctx.broker.client_quotas;
    (quotas.max_in_window(&image, ctx.quota_client(QuotaType::Fetch)))
        .map_or(limit, |window| limit.min(window))
}

/// Locates every partition's data (or its error) without reading it. A read_committed plan ends
/// at the last stable offset, so a parked fetch counts only the bytes below it. A follower's
/// fetch that finds its offset in the log is that follower's position from now
/// (Partition.fetchRecords: updateFollowerFetchState after the read); when that moves the high
/// watermark, the requests parked on the partition look again.
fn plan(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    targets: &[Target],
    isolation: FetchIsolation,
    follower: Option<i32>,
) -> Vec<Result<ReadPlan, i16>> {
    targets
        .iter()
        .map(|(fp, topic)| {
            let t = topic.as_ref().map_err(|code| *code)?;
            let p = t
                .partition(fp.partition)
                .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
            cluster::check_leader(ctx, image, t.topic_id, p.index, fp.current_leader_epoch)?;
            let plan = p
                .plan_fetch_after(
                    fp.fetch_offset,
                    isolation,
                    fp.current_leader_epoch,
                    fp.last_fetched_epoch,
                )
                .map_err(|e| errors::log_error_code(&e))?;
            if let Some(id) = follower.filter(|_| plan.diverging_epoch.is_none()) {
                let now = ctx.broker.clock.now_ms();
                // A broker that is no replica of the epoch the fetch names is not one yet
                // (a reassignment adding it): UNKNOWN_LEADER_EPOCH makes it retry
                // (Partition.followerReplicaOrThrow).
                let not_a_replica = match fp.current_leader_epoch {
                    cluster::NO_LEADER_EPOCH => errors::NOT_LEADER_OR_FOLLOWER,
                    _ => errors::UNKNOWN_LEADER_EPOCH,
                };
                let moved = p
                    .record_follower_fetch(id, fp.fetch_offset, now)
                    .map_err(|_| not_a_replica)?;
                if moved.is_some() {
                    ctx.broker.purgatory.check_and_complete(&t.name, p.index);
                }
                if p.may_expand_isr() {
                    if let Some(replicas) = &ctx.broker.replicas {
                        replicas.isr_check.notify_one();
                    }
                }
            }
            Ok(plan)
        })
        .collect()
}

/// A consumer's fetch counted against its byte-rate quota and its request quota. Over either,
/// the answer carries the longer throttle time and no data, and its bytes are taken back
/// (Kafka's getThrottledResponse and unrecordQuotaSensor); the session keeps what it learned, so
/// the next fetch sends the data. The flag says whether the data goes out.
fn throttled(
    ctx: &RequestContext<'_>,
    resp: FetchResponse,
    splices: Splices,
) -> (FetchResponse, Splices, bool) {
    let bytes: usize = (resp.responses.iter())
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let request_throttle = ctx.request_throttle();
    let throttle = ctx
        .record_quota(QuotaType::Fetch, bytes)
        .max(request_throttle);
    if throttle == 0 {
        return (resp, splices, true);
    }
    let b = ctx.broker;
    let client = ctx.quota_client(QuotaType::Fetch);
    (b.client_quotas).unrecord(&b.catalog.image(), client, bytes, b.clock.now_ms());
    let resp = FetchResponse::default()
        .with_throttle_time_ms(throttle)
        .with_error_code(resp.error_code)
        .with_session_id(resp.session_id);
    (resp, Splices::default(), false)
}

/// A partition read, for the metrics: its counters and the bytes read (`None`: it failed).
type Read<'t> = (&'t crate::metrics::PartitionStats, Option<u64>);

/// Reads the planned data: each partition's answer, in the order of `targets`, and what was
/// read of each existing partition.
fn respond<'t>(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    req: &FetchRequest,
    targets: &'t [Target],
    plans: Vec<Result<ReadPlan, i16>>,
) -> (
    Vec<(FetchPartitionData, PartitionData)>,
    Splices,
    CurrentLeaders,
    Vec<Read<'t>>,
) {
    let mut reads = Vec::new();
    let mut budget = response_limit(ctx, req);
    let mut sent_any = false;
    let read_committed = req.isolation_level == 1;
    let mut splices = Splices::default();
    let mut leaders = CurrentLeaders::default();
    let partitions = targets
        .iter()
        .zip(plans)
        .map(|((fp, topic), plan)| {
            let mut pd = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_aborted_transactions(read_committed.then(Vec::new));
            let stats = (topic.as_ref().ok())
                .and_then(|t| t.partition(fp.partition))
                .map(|p| &p.stats);
            match plan {
                Err(code) => {
                    if let Some(stats) = stats {
                        reads.push((stats, None));
                    }
                    pd.error_code = code;
                    pd.high_watermark = -1;
                    pd.records = Some(Bytes::new());
                    if KIP_951_ERRORS.contains(&code) && ctx.api_version >= 16 {
                        // KIP-951: the client learns the current leader and its epoch at once
                        // (KafkaApis.handleFetchRequest, v16+).
                        if let Ok(t) = topic.as_ref() {
                            if let Some((id, epoch)) = leaders.add(ctx, image, t, fp.partition) {
                                pd.current_leader = LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(id))
                                    .with_leader_epoch(epoch);
                            }
                        }
                    }
                    if code == errors::OFFSET_OUT_OF_RANGE {
                        // The client needs the bounds to reset its position.
                        if let Some(p) = topic.as_ref().ok().and_then(|t| t.partition(fp.partition)) {
                            let (start, hw) = p.offsets();
                            // No last stable offset, as Kafka's handleOffsetOutOfRangeError.
                            pd.high_watermark = hw;
                            pd.last_stable_offset = -1;
                            pd.log_start_offset = start;
                        }
                    }
                }
                Ok(plan) => {
                    let max = usize::try_from(fp.partition_max_bytes).unwrap_or(0).min(budget);
                    let records = plan
                        .range(max, !sent_any)
                        .and_then(|r| r.map_or(Ok(Bytes::new()), |r| splices.add(r)));
                    if let Some(stats) = stats {
                        reads.push((stats, records.as_ref().ok().map(|r| r.len() as u64)));
                    }
                    match records {
                        Ok(records) => {
                            budget = budget.saturating_sub(records.len());
                            sent_any |= !records.is_empty();
                            pd.records = Some(records);
                        }
                        Err(e) => {
                            tracing::error!(topic = ?fp.topic, partition = fp.partition, error = %e, "fetch read failed");
                            pd.error_code = errors::log_error_code(&LogError::Storage(e));
                            pd.records = Some(Bytes::new());
                        }
                    }
                    pd.high_watermark = plan.high_watermark;
                    pd.last_stable_offset = plan.last_stable_offset;
                    pd.log_start_offset = plan.log_start_offset;
                    if let Some((epoch, end_offset)) = plan.diverging_epoch {
                        pd.diverging_epoch = EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset);
                    }
                    if let Some(aborted) = &plan.aborted_transactions {
                        pd.aborted_transactions =
                            Some(aborted.iter().map(aborted_transaction).collect());
                    }
                }
            }
            (fp.clone(), pd)
        })
        .collect();
    (partitions, splices, leaders, reads)
}

/// Groups the answered partitions into topics, a run of the same topic into one entry
/// (FetchResponse.toMessage), named by id from v13, by name before.
fn by_topic(
    partitions: Vec<(FetchPartitionData, PartitionData)>,
    by_id: bool,
) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut last: Option<PartitionKey> = None;
    for (fp, pd) in partitions {
        let key = fp.key(by_id);
        let same = last.as_ref().is_some_and(|k| k.0 == key.0);
        match topics.last_mut() {
            Some(t) if same => t.partitions.push(pd),
            _ => {
                let mut t = FetchableTopicResponse::default().with_partitions(vec![pd]);
                if by_id {
                    t.topic_id = fp.topic_id;
                } else {
                    t.topic = TopicName(StrBytes::from_string(fp.topic.unwrap_or_default()));
                }
                topics.push(t);
            }
        }
        last = Some(key);
    }
    topics
}

fn aborted_transaction(t: &AbortedTxn) -> AbortedTransaction {
    AbortedTransaction::default()
        .with_producer_id(ProducerId(t.producer_id))
        .with_first_offset(t.first_offset)
}

/// A consumer's topic, with READ on it: by id from v13 (UNKNOWN_TOPIC_ID), by name before.
fn resolve(
    ctx: &RequestContext<'_>,
    t: &FetchPartitionData,
    by_id: bool,
) -> Result<Arc<Topic>, i16> {
    resolve_authorized_topic(
        ctx,
        t.topic.as_deref().unwrap_or(""),
        t.topic_id,
        by_id,
        AclOperation::Read,
    )
}
