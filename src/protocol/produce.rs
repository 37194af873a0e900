//! Produce (key 0): validate each partition's single record batch (header, CRC, records), append
//! it, and answer per partition. acks=0 requests get no response; if one of their partitions
//! fails, the connection is closed instead, as Kafka does, so the producer refreshes metadata.
//! acks=all (-1) on a replicated leader (a quorum of processes) needs min.insync.replicas in
//! the ISR before the append (NOT_ENOUGH_REPLICAS), then waits in the purgatory until the high
//! watermark passes the batch (Kafka's DelayedProduce): NOT_ENOUGH_REPLICAS_AFTER_APPEND when
//! the ISR shrank below it meanwhile, NOT_LEADER_OR_FOLLOWER when leadership moved,
//! REQUEST_TIMED_OUT after the request's timeout.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{self, CurrentLeaders};
use super::errors;
use super::{resolve_authorized_topic, respond, Reply, RequestContext};
use crate::log::batch::{BatchError, BatchHeader};
use crate::log::partition::{keyless_record_message, AcksAll, FlushJob, LogError, Partition};
use crate::log::record_validator::TimestampError;
use crate::log::AppendOrigin;
use crate::metadata::image::MetadataImage;
use crate::metadata::Topic;
use crate::security::authorizer::AclOperation;
use crate::server::client_quotas::QuotaType;
use crate::txn::metadata::TV_2;
use crate::txn::producer_state::VerificationGuard;
use crate::txn::remote;

/// First Produce version that names topics by id.
const TOPIC_ID_VERSION: i16 = 13;
/// First Produce version of TV2 (KIP-890 part 2): a transactional batch adds its partition to
/// the transaction (AddPartitionsToTxnManager.produceRequestVersionToTransactionSupportedOperation:
/// ADD_PARTITION above v11).
const ADD_PARTITION_VERSION: i16 = 12;

pub async fn serve(ctx: &RequestContext<'_>, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    if acks == 0 {
        // No answer to carry a throttle time: Kafka does not enforce the request quota then.
        ctx.exempt_from_request_quota();
    }
    // The producer byte rate counts the records sent, served or not (Kafka records the request).
    let bytes: usize = (req.topic_data.iter())
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let mut resp = handle(ctx, req).await;
    resp.throttle_time_ms = ctx.record_quota(QuotaType::Produce, bytes);
    if acks != 0 {
        return respond(ctx, resp);
    }
    let failed = resp
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .find(|p| p.error_code != errors::NONE);
    match failed {
        Some(p) => Reply::Close(format!("acks=0 produce failed with error {}", p.error_code)),
        None => Reply::Nothing,
    }
}

pub async fn handle(ctx: &RequestContext<'_>, req: ProduceRequest) -> ProduceResponse {
    let now = ctx.broker.clock.now_ms();
    let valid_acks = matches!(req.acks, -1..=1);
    let transactional_id = req.transactional_id.as_ref().map(|id| id.to_string());
    // KafkaApis.handleProduceRequest: transactional records need a transactional id and WRITE
    // on it; without them the whole request is refused.
    let refused = has_transactional_records(&req)
        && !transactional_id
            .as_deref()
            .is_some_and(|id| ctx.authorize_transactional_id(AclOperation::Write, id));
    let verification = Verification {
        transactional_id: transactional_id.as_deref(),
        elsewhere: match (&transactional_id, refused) {
            (Some(id), false) if has_transactional_records(&req) => {
                verify_elsewhere(ctx, &req, id, now).await
            }
            _ => HashMap::new(),
        },
    };
    let mut flushes = Vec::new();
    let mut appended: Vec<(Slot, std::sync::Arc<Topic>, i32)> = Vec::new();
    // acks=all appends to replicated leaders, until the ISR has them.
    let mut replicating: Vec<AcksAllWait> = Vec::new();
    let acks = req.acks;
    let timeout_ms = req.timeout_ms;
    let image = ctx.broker.catalog.image();
    let mut leaders = CurrentLeaders::default();
    let mut responses: Vec<TopicProduceResponse> = req
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(ti, topic_data)| {
            let topic = resolve(ctx, &topic_data);
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(pi, pd)| {
                    let index = pd.index;
                    let r = match (&topic, valid_acks) {
                        _ if refused => failed(
                            pd.index,
                            errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                            None,
                        ),
                        (Err(code @ errors::TOPIC_AUTHORIZATION_FAILED), _) => {
                            failed(pd.index, *code, None)
                        }
                        (_, false) => failed(pd.index, errors::INVALID_REQUIRED_ACKS, None),
                        (Err(code), _) => failed(pd.index, *code, None),
                        (Ok(t), true) => {
                            let tx = &verification;
                            let (r, flush, wait) = append(ctx, &image, t, pd, tx, acks, now);
                            if let Some((partition, job)) = flush {
                                flushes.push(((ti, pi), partition, job));
                            }
                            if let Some(wait) = wait {
                                replicating.push(AcksAllWait {
                                    slot: (ti, pi),
                                    ..wait
                                });
                            }
                            r
                        }
                    };
                    if let (Ok(t), errors::NONE) = (&topic, r.error_code) {
                        appended.push(((ti, pi), std::sync::Arc::clone(t), index));
                    }
                    match &topic {
                        // KIP-951 (v10+): the producer learns the new leader without a Metadata
                        // round trip (KafkaApis.handleProduceRequest).
                        Ok(t)
                            if r.error_code == errors::NOT_LEADER_OR_FOLLOWER
                                && ctx.api_version >= 10 =>
                        {
                            let mut r = r;
                            if let Some((id, epoch)) = leaders.add(ctx, &image, t, index) {
                                r.current_leader = LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(id))
                                    .with_leader_epoch(epoch);
                            }
                            r
                        }
                        _ => r,
                    }
                })
                .collect();
            let mut t =
                TopicProduceResponse::default().with_partition_responses(partition_responses);
            if ctx.api_version >= TOPIC_ID_VERSION {
                t.topic_id = topic_data.topic_id;
            } else {
                t.name = topic_data.name;
            }
            t
        })
        .collect();
    let flush_failures = run_flushes(flushes, now).await;
    // As Kafka's ReplicaManager after an append (its flush included): complete the delayed
    // fetches of each appended partition, and no other, once what flush.messages asked for is on
    // disk, so a parked fetch is not answered with records whose fsync then fails.
    for (slot, topic, index) in &appended {
        if !flush_failures.iter().any(|(s, _)| s == slot) {
            ctx.broker.purgatory.check_and_complete(&topic.name, *index);
        }
    }
    for ((ti, pi), e) in flush_failures {
        if let Some(r) = responses
            .get_mut(ti)
            .and_then(|t| t.partition_responses.get_mut(pi))
        {
            *r = failed(r.index, errors::log_error_code(&e), Some(e.to_string()));
        }
    }
    replicating.retain(|w| {
        let slot = responses
            .get(w.slot.0)
            .and_then(|t| t.partition_responses.get(w.slot.1));
        slot.is_some_and(|r| r.error_code == errors::NONE)
    });
    for (slot, code) in wait_for_replicas(ctx, replicating, timeout_ms).await {
        if let Some(r) = responses
            .get_mut(slot.0)
            .and_then(|t| t.partition_responses.get_mut(slot.1))
        {
            r.error_code = code;
        }
    }
    let node_endpoints = super::cluster::node_endpoints!(leaders, NodeEndpoint);
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(node_endpoints)
}

/// Where a partition's answer sits in the response: (topic index, partition index).
type Slot = (usize, usize);

/// A partition's answer, the fsync to run before it is given, and the ISR to wait for.
type Appended = (
    PartitionProduceResponse,
    Option<(Arc<Partition>, FlushJob)>,
    Option<AcksAllWait>,
);

/// An acks=all append waiting for the ISR (Kafka's ProducePartitionStatus).
struct AcksAllWait {
    slot: Slot,
    partition: Arc<Partition>,
    /// The offset after the batch: the high watermark must reach it.
    required_offset: i64,
    min_isr: usize,
}

/// Waits in the purgatory until each append is committed or fails (DelayedProduce), at most the
/// request's `timeout_ms`; returns the error of each that did not succeed.
async fn wait_for_replicas(
    ctx: &RequestContext<'_>,
    mut waits: Vec<AcksAllWait>,
    timeout_ms: i32,
) -> Vec<(Slot, i16)> {
    let mut failed = Vec::new();
    let timeout = std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut watch = None;
    loop {
        waits.retain(|w| {
            let code = match w.partition.acks_all(w.required_offset, w.min_isr) {
                AcksAll::Waiting => return true,
                AcksAll::Replicated => return false,
                AcksAll::NotEnoughReplicas => errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                AcksAll::NotLeader => errors::NOT_LEADER_OR_FOLLOWER,
            };
            failed.push((w.slot, code));
            false
        });
        if waits.is_empty() {
            return failed;
        }
        if tokio::time::Instant::now() >= deadline {
            failed.extend(waits.iter().map(|w| (w.slot, errors::REQUEST_TIMED_OUT)));
            return failed;
        }
        let Some(w) = &watch else {
            // Registered, then checked again before waiting (see `purgatory`).
            let keys = waits
                .iter()
                .map(|w| (w.partition.topic.as_str(), w.partition.index));
            watch = Some(ctx.broker.purgatory.watch(keys));
            continue;
        };
        tokio::select! {
            _ = w.woken() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The topic's min.insync.replicas (its config, else the broker's, else Kafka's default 1).
fn min_insync_replicas(ctx: &RequestContext<'_>, topic: &Topic) -> usize {
    const KEY: &str = "min.insync.replicas";
    let configured = topic
        .configs
        .get(KEY)
        .or(ctx.broker.config.explicit.get(KEY));
    configured.and_then(|v| v.trim().parse().ok()).unwrap_or(1)
}

/// The fsyncs flush.messages asked for, run on a blocking thread so that a slow disk stalls only
/// this produce, not every connection served by the same tokio worker; the produce is answered
/// once they are done, as Kafka answers after UnifiedLog.append's flush. Returns the failures.
async fn run_flushes(
    flushes: Vec<(Slot, Arc<Partition>, FlushJob)>,
    now: i64,
) -> Vec<(Slot, LogError)> {
    if flushes.is_empty() {
        return Vec::new();
    }
    let slots: Vec<Slot> = flushes.iter().map(|f| f.0).collect();
    let run = tokio::task::spawn_blocking(move || {
        flushes
            .into_iter()
            .filter_map(|(slot, p, job)| p.run_flush(job, now).err().map(|e| (slot, e)))
            .collect()
    });
    match run.await {
        Ok(failures) => failures,
        Err(e) => slots
            .into_iter()
            .map(|slot| {
                (
                    slot,
                    LogError::Storage(std::io::Error::other(e.to_string())),
                )
            })
            .collect(),
    }
}

/// The topic, with WRITE on it.
fn resolve(ctx: &RequestContext<'_>, t: &TopicProduceData) -> Result<std::sync::Arc<Topic>, i16> {
    resolve_authorized_topic(
        ctx,
        t.name.as_str(),
        t.topic_id,
        ctx.api_version >= TOPIC_ID_VERSION,
        AclOperation::Write,
    )
}

fn has_transactional_records(req: &ProduceRequest) -> bool {
    req.topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|pd| pd.records.as_deref().and_then(BatchHeader::parse))
        .any(|h| h.is_transactional())
}

/// KIP-890 part 1 (ReplicaManager.appendRecordsWithTransactionVerification): a transactional
/// batch is appended only if its partition was added to the producer's ongoing transaction, so
/// a late write of a zombie, or a write after the transaction ended, cannot leave a transaction
/// open on the partition that no coordinator will ever end. From v12 on (TV2, KIP-890 part 2)
/// the check is the coordinator's add itself, with its epoch checks: the producer sends no
/// AddPartitionsToTxn. The coordinator's answers are translated as Kafka does for producers.
fn verify_transaction(
    ctx: &RequestContext<'_>,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    header: &BatchHeader,
    now: i64,
) -> Result<(), i16> {
    let partitions = [(topic.to_string(), partition)];
    let producer = (header.producer_id, header.producer_epoch);
    let code = if ctx.api_version >= ADD_PARTITION_VERSION {
        let catalog = &ctx.broker.catalog;
        let txns = &ctx.broker.txns;
        txns.add_partitions(catalog, transactional_id, producer, &partitions, TV_2, now)
    } else {
        match ctx.broker.txns.verify_partitions(
            transactional_id,
            producer.0,
            producer.1,
            &partitions,
        ) {
            Ok(codes) => codes.first().copied().unwrap_or(errors::NONE),
            Err(code) => code,
        }
    };
    verification_outcome(ctx, code)
}

/// The coordinator's answer to a verification as the producer learns it.
fn verification_outcome(ctx: &RequestContext<'_>, code: i16) -> Result<(), i16> {
    Err(match code {
        errors::NONE => return Ok(()),
        errors::PRODUCER_FENCED => errors::INVALID_PRODUCER_EPOCH,
        // Produce v11+ clients know TRANSACTION_ABORTABLE; older ones abort on INVALID_TXN_STATE.
        errors::TRANSACTION_ABORTABLE if ctx.api_version <= 10 => errors::INVALID_TXN_STATE,
        // Retriable for every client, and no metadata refresh.
        errors::CONCURRENT_TRANSACTIONS
        | errors::COORDINATOR_LOAD_IN_PROGRESS
        | errors::COORDINATOR_NOT_AVAILABLE
        | errors::NOT_COORDINATOR => errors::NOT_ENOUGH_REPLICAS,
        other => other,
    })
}

/// How a request's transactional batches are verified (KIP-890): by this broker's transaction
/// coordinator, or, where the transactional id's coordinator is another process's, by its
/// answers, asked before the appends (`verify_elsewhere`).
struct Verification<'a> {
    transactional_id: Option<&'a str>,
    /// (topic, partition) → the other coordinator's answer, and the guard taken before asking.
    elsewhere: HashMap<(String, i32), (i16, VerificationGuard)>,
}

/// KIP-890 with a coordinator in another process (Kafka's AddPartitionsToTxnManager): the
/// transactional batches' partitions this broker leads are verified (Produce before v12) or
/// added (v12+) there with one AddPartitionsToTxn, each partition's guard taken before asking.
/// A coordinator that cannot be asked answers COORDINATOR_NOT_AVAILABLE (retriable for the
/// producer). Empty when the coordinator is this broker's.
async fn verify_elsewhere(
    ctx: &RequestContext<'_>,
    req: &ProduceRequest,
    transactional_id: &str,
    now: i64,
) -> HashMap<(String, i32), (i16, VerificationGuard)> {
    let mut out = HashMap::new();
    let Some(coordinator) = cluster::txn_coordinator_elsewhere(ctx, transactional_id) else {
        return out;
    };
    let mut producer = None;
    let mut guards = Vec::new();
    for t in &req.topic_data {
        let Ok(topic) = resolve(ctx, t) else { continue };
        for pd in &t.partition_data {
            let header = pd.records.as_deref().and_then(BatchHeader::parse);
            let (Some(header), Some(partition)) = (header, topic.partition(pd.index)) else {
                continue;
            };
            if header.is_transactional() {
                producer.get_or_insert((header.producer_id, header.producer_epoch));
                let guard = partition.maybe_start_transaction_verification(header.producer_id, now);
                guards.push(((topic.name.clone(), pd.index), guard));
            }
        }
    }
    let Some(producer) = producer.filter(|_| coordinator >= 0) else {
        out.extend(
            guards
                .into_iter()
                .map(|(k, g)| (k, (errors::COORDINATOR_NOT_AVAILABLE, g))),
        );
        return out;
    };
    let partitions: Vec<(String, i32)> = guards.iter().map(|(k, _)| k.clone()).collect();
    let verify_only = ctx.api_version < ADD_PARTITION_VERSION;
    let broker = ctx.broker;
    let asked = remote::verify_partitions(
        broker,
        coordinator,
        transactional_id,
        producer,
        &partitions,
        verify_only,
    )
    .await
    .unwrap_or_else(|e| {
        tracing::debug!(coordinator, error = %e, "cannot verify the transaction with its coordinator");
        vec![errors::COORDINATOR_NOT_AVAILABLE; partitions.len()]
    });
    out.extend(
        guards
            .into_iter()
            .zip(asked)
            .map(|((k, g), code)| (k, (code, g))),
    );
    out
}

/// Appends one partition's batch; hands back the fsync flush.messages asks for, if any.
fn append(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    topic: &Topic,
    pd: PartitionProduceData,
    verification: &Verification<'_>,
    acks: i16,
    now: i64,
) -> Appended {
    if topic.is_internal() {
        let msg = format!("Cannot append to internal topic {}", topic.name);
        return (
            failed(pd.index, errors::INVALID_TOPIC_EXCEPTION, Some(msg)),
            None,
            None,
        );
    }
    let Some(partition) = topic.partition(pd.index) else {
        return (
            failed(pd.index, errors::UNKNOWN_TOPIC_OR_PARTITION, None),
            None,
            None,
        );
    };
    if let Err(code) = cluster::check_leader(
        ctx,
        image,
        topic.topic_id,
        pd.index,
        cluster::NO_LEADER_EPOCH,
    ) {
        return (failed(pd.index, code, None), None, None);
    }
    // acks=all on a replicated leader: enough replicas in sync first
    // (Partition.appendRecordsToLeader).
    let min_isr = min_insync_replicas(ctx, topic);
    let replicated = (acks == -1).then(|| partition.isr_size()).flatten();
    if replicated.is_some_and(|isr| isr < min_isr) {
        let msg = format!(
            "The size of the current ISR {} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {}-{}",
            replicated.unwrap_or(0),
            topic.name,
            pd.index
        );
        return (
            failed(pd.index, errors::NOT_ENOUGH_REPLICAS, Some(msg)),
            None,
            None,
        );
    }
    let records = pd.records.unwrap_or_default();
    let mut verification_guard = VerificationGuard::SENTINEL;
    let id = verification.transactional_id;
    if let (Some(id), Some(header)) = (id, BatchHeader::parse(&records)) {
        if header.is_transactional() {
            // The guard is taken before the coordinator is asked, so a marker written between
            // its answer and the append (an abort of the transaction) voids it.
            let key = (topic.name.clone(), pd.index);
            let verified = match verification.elsewhere.get(&key) {
                Some(&(code, guard)) => {
                    verification_guard = guard;
                    verification_outcome(ctx, code)
                }
                None => {
                    verification_guard =
                        partition.maybe_start_transaction_verification(header.producer_id, now);
                    verify_transaction(ctx, id, &topic.name, pd.index, &header, now)
                }
            };
            if let Err(code) = verified {
                return (failed(pd.index, code, None), None, None);
            }
        }
    }
    let origin = AppendOrigin::Client {
        producer_ids_issued: ctx.broker.producer_ids_issued(),
        verification_guard,
    };
    let appended = partition.append_unflushed(&records, ctx.api_version, now, origin);
    let written = appended.as_ref().ok().map(|(info, _)| {
        let bytes = if info.duplicate {
            0
        } else {
            records.len() as u64
        };
        (bytes, u64::from(info.records))
    });
    ctx.broker.metrics.produced(&partition.stats, written);
    match appended {
        Ok((info, flush)) => (
            PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset),
            flush.map(|job| (Arc::clone(partition), job)),
            replicated.map(|_| AcksAllWait {
                slot: (0, 0),
                partition: Arc::clone(partition),
                required_offset: info.last_offset + 1,
                min_isr,
            }),
        ),
        Err(e) => {
            tracing::debug!(topic = %topic.name, partition = pd.index, error = %e, "produce rejected");
            let resp = failed(pd.index, errors::log_error_code(&e), Some(e.to_string()));
            let resp = match e {
                // KIP-467 (Produce v8+): name the offending records so the producer fails only them.
                LogError::Batch(BatchError::RecordTimestamps(bad)) if ctx.api_version >= 8 => {
                    resp.with_record_errors(bad.iter().map(record_error).collect())
                }
                LogError::NoKeyOnCompactedTopic { partition, records } if ctx.api_version >= 8 => {
                    let message = keyless_record_message(&partition);
                    resp.with_record_errors(
                        records
                            .iter()
                            .map(|&i| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(i)
                                    .with_batch_index_error_message(Some(StrBytes::from_string(
                                        message.clone(),
                                    )))
                            })
                            .collect(),
                    )
                }
                _ => resp,
            };
            (resp, None, None)
        }
    }
}

fn record_error(e: &TimestampError) -> BatchIndexAndErrorMessage {
    // Kafka's wording (LogValidator.validateTimestamp); before offsets are assigned a record's
    // offset is its index in the batch.
    let msg = format!(
        "Timestamp {} of message with offset {} is out of range",
        e.timestamp, e.batch_index
    );
    BatchIndexAndErrorMessage::default()
        .with_batch_index(e.batch_index)
        .with_batch_index_error_message(Some(StrBytes::from_string(msg)))
}

fn failed(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}
