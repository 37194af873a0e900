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
//! Incremental fetch sessions (KIP-227) are declined by answering session id 0, which clients treat
//! as "send full requests".
//! The current_leader_epoch (v9+) is checked first (KIP-320: FENCED_LEADER_EPOCH /
//! UNKNOWN_LEADER_EPOCH), then a broker that does not lead a partition answers
//! NOT_LEADER_OR_FOLLOWER for it (`cluster::check_leader`); at v16+ NOT_LEADER_OR_FOLLOWER and
//! FENCED_LEADER_EPOCH carry the current leader, its epoch and its endpoint (KIP-951).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};

use super::cluster::{self, CurrentLeaders, KIP_951_ERRORS};
use super::errors;
use super::response::Splices;
use super::{resolve_authorized_topic, resolve_topic, RequestContext};
use crate::log::index::AbortedTxn;
use crate::log::partition::{LogError, ReadPlan};
use crate::log::FetchIsolation;
use crate::metadata::image::MetadataImage;
use crate::metadata::Topic;
use crate::security::authorizer::AclOperation;

/// First Fetch version that names topics by id.
const TOPIC_ID_VERSION: i16 = 13;
/// Upper bound on one long poll, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(300);

pub async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> (FetchResponse, Splices) {
    if req.session_id != 0 {
        // gregor never creates sessions (it answers session id 0), so no other id can exist.
        let resp = FetchResponse::default().with_error_code(errors::FETCH_SESSION_ID_NOT_FOUND);
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
    // (KafkaApis.handleFetchRequest).
    let from_follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
    let follower_allowed = from_follower && ctx.authorize_cluster(AclOperation::ClusterAction);
    let topics: Vec<(&FetchTopic, Result<Arc<Topic>, i16>)> = req
        .topics
        .iter()
        .map(|t| {
            let topic = match (from_follower, follower_allowed) {
                (false, _) => resolve(ctx, t),
                (true, true) => resolve_topic(
                    ctx,
                    t.topic.as_str(),
                    t.topic_id,
                    ctx.api_version >= TOPIC_ID_VERSION,
                ),
                (true, false) => Err(errors::TOPIC_AUTHORIZATION_FAILED),
            };
            (t, topic)
        })
        .collect();
    // Kafka's FetchIsolation from the request's isolation_level (1: read_committed).
    let isolation = match req.isolation_level {
        1 => FetchIsolation::TxnCommitted,
        _ => FetchIsolation::HighWatermark,
    };
    let mut watch = None;
    loop {
        // Leadership as of this look: a parked fetch sees a leader change on its next wake.
        let image = ctx.broker.catalog.image();
        let plans = plan(ctx, &image, &topics, isolation);
        // Kafka answers at once when nothing is asked for (a closing consumer sends such a
        // request), when any partition has an error, or when enough bytes are there.
        let ready = plans.iter().all(Vec::is_empty)
            || plans.iter().flatten().any(|p| p.1.is_err())
            || plans
                .iter()
                .flatten()
                .map(|p| p.1.as_ref().map_or(0, ReadPlan::available))
                .sum::<u64>()
                >= min_bytes
            || tokio::time::Instant::now() >= deadline;
        if ready {
            return respond(ctx, &image, &req, &topics, plans);
        }
        let Some(w) = &watch else {
            // Park in the purgatory on the fetched partitions, then look once more before
            // waiting (Kafka's tryCompleteElseWatch): an append in between is not missed.
            watch = Some(ctx.broker.purgatory.watch(watched_partitions(&topics)));
            continue;
        };
        tokio::select! {
            _ = w.woken() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The partitions a parked fetch waits on (resolved topics only: an unknown one answers at once).
fn watched_partitions<'a>(
    topics: &'a [(&FetchTopic, Result<Arc<Topic>, i16>)],
) -> impl Iterator<Item = (&'a str, i32)> {
    topics
        .iter()
        .filter_map(|(ft, topic)| Some((ft, topic.as_ref().ok()?)))
        .flat_map(|(ft, t)| {
            ft.partitions
                .iter()
                .map(|fp| (t.name.as_str(), fp.partition))
        })
}

/// The response's byte limit: the request's max_bytes, capped by fetch.max.bytes.
fn response_limit(ctx: &RequestContext<'_>, req: &FetchRequest) -> usize {
    usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(ctx.broker.config.fetch_max_bytes)
}

type PartitionPlan<'a> = (&'a FetchPartition, Result<ReadPlan, i16>);

/// Locates every requested partition's data (or its error) without reading it. A read_committed
/// plan ends at the last stable offset, so a parked fetch counts only the bytes below it.
fn plan<'a>(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    topics: &[(&'a FetchTopic, Result<Arc<Topic>, i16>)],
    isolation: FetchIsolation,
) -> Vec<Vec<PartitionPlan<'a>>> {
    topics
        .iter()
        .map(|(ft, topic)| {
            ft.partitions
                .iter()
                .map(|fp| {
                    let plan = match topic {
                        Err(code) => Err(*code),
                        Ok(t) => match t.partition(fp.partition) {
                            None => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                            Some(p) => cluster::check_leader(
                                ctx,
                                image,
                                t.topic_id,
                                p.index,
                                fp.current_leader_epoch,
                            )
                            .and_then(|()| {
                                p.plan_fetch(fp.fetch_offset, isolation, fp.current_leader_epoch)
                                    .map_err(|e| errors::log_error_code(&e))
                            }),
                        },
                    };
                    (fp, plan)
                })
                .collect()
        })
        .collect()
}

fn respond(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    req: &FetchRequest,
    topics: &[(&FetchTopic, Result<Arc<Topic>, i16>)],
    plans: Vec<Vec<PartitionPlan<'_>>>,
) -> (FetchResponse, Splices) {
    let mut budget = response_limit(ctx, req);
    let mut sent_any = false;
    let read_committed = req.isolation_level == 1;
    let mut splices = Splices::default();
    let mut leaders = CurrentLeaders::default();
    let responses = topics
        .iter()
        .zip(plans)
        .map(|((ft, topic), partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(fp, plan)| {
                    let mut pd = PartitionData::default()
                        .with_partition_index(fp.partition)
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    match plan {
                        Err(code) => {
                            pd.error_code = code;
                            pd.high_watermark = -1;
                            pd.records = Some(Bytes::new());
                            if KIP_951_ERRORS.contains(&code) && ctx.api_version >= 16 {
                                // KIP-951: the client learns the current leader and its epoch
                                // at once (KafkaApis.handleFetchRequest, v16+).
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
                                if let Ok(t) = topic {
                                    if let Some(p) = t.partition(fp.partition) {
                                        let (start, hw) = p.offsets();
                                        // No last stable offset, as Kafka's
                                        // handleOffsetOutOfRangeError.
                                        pd.high_watermark = hw;
                                        pd.last_stable_offset = -1;
                                        pd.log_start_offset = start;
                                    }
                                }
                            }
                        }
                        Ok(plan) => {
                            let max = usize::try_from(fp.partition_max_bytes).unwrap_or(0).min(budget);
                            let records = plan
                                .range(max, !sent_any)
                                .and_then(|r| r.map_or(Ok(Bytes::new()), |r| splices.add(r)));
                            match records {
                                Ok(records) => {
                                    budget = budget.saturating_sub(records.len());
                                    sent_any |= !records.is_empty();
                                    pd.records = Some(records);
                                }
                                Err(e) => {
                                    tracing::error!(topic = %ft.topic.as_str(), partition = fp.partition, error = %e, "fetch read failed");
                                    pd.error_code = errors::log_error_code(&LogError::Storage(e));
                                    pd.records = Some(Bytes::new());
                                }
                            }
                            pd.high_watermark = plan.high_watermark;
                            pd.last_stable_offset = plan.last_stable_offset;
                            pd.log_start_offset = plan.log_start_offset;
                            if let Some(aborted) = &plan.aborted_transactions {
                                pd.aborted_transactions =
                                    Some(aborted.iter().map(aborted_transaction).collect());
                            }
                        }
                    }
                    pd
                })
                .collect();
            let mut t = FetchableTopicResponse::default().with_partitions(partitions);
            if ctx.api_version >= TOPIC_ID_VERSION {
                t.topic_id = ft.topic_id;
            } else {
                t.topic = ft.topic.clone();
            }
            t
        })
        .collect();
    let mut resp = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    resp.node_endpoints = super::cluster::node_endpoints!(leaders, NodeEndpoint);
    (resp, splices)
}

fn aborted_transaction(t: &AbortedTxn) -> AbortedTransaction {
    AbortedTransaction::default()
        .with_producer_id(ProducerId(t.producer_id))
        .with_first_offset(t.first_offset)
}

/// A consumer's topic, with READ on it.
fn resolve(ctx: &RequestContext<'_>, t: &FetchTopic) -> Result<Arc<Topic>, i16> {
    resolve_authorized_topic(
        ctx,
        t.topic.as_str(),
        t.topic_id,
        ctx.api_version >= TOPIC_ID_VERSION,
        AclOperation::Read,
    )
}
