//! One shard of the transaction coordinator (Kafka's TransactionStateManager cache entry for one
//! `__transaction_state` partition, with the checks of its TransactionCoordinator): the
//! transactional ids of the partition, the write operations on them, and `replay`, which loading
//! and every write share (see `coordinator::runtime`).
//!
//! - A transactional id's metadata changes only through `replay` of its record; an operation
//!   computes the next metadata with `metadata`'s transitions and returns it as a record.
//! - In memory only, as in Kafka: the last producer epoch (KIP-360 retries; set after the write
//!   by `on_append`), and, while its markers are written, the partitions still without one
//!   (TransactionMetadata.removePartition) and a claim that one caller is writing them
//!   (`sending`), so EndTxn and the retry timer never write the same markers at once.

use std::collections::{HashMap, HashSet};

use super::metadata::{TransactionMetadata, TransactionState};
use super::transaction_log;
use super::TxnMarker;
use crate::coordinator::runtime::{
    CoordinatorRecord, CoordinatorResult, CoordinatorShard, RecordContext,
};
use crate::protocol::errors;

pub type TxnResult<T> = CoordinatorResult<TxnShard, T>;

/// Markers the caller writes, outside the shard's lock, once the prepare record is written
/// (Kafka's TransactionMarkerChannelManager.addTxnMarkersToSend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMarkers {
    pub transactional_id: String,
    pub marker: TxnMarker,
    pub partitions: Vec<(String, i32)>,
}

/// What InitProducerId leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer id and epoch to hand out.
    Ready {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// An ongoing transaction of the previous producer is being aborted: write these markers,
    /// then answer CONCURRENT_TRANSACTIONS so the client retries.
    Fencing(PendingMarkers),
}

/// A new producer id, or the error to answer when none can be had.
pub type NewProducerId<'a> = &'a dyn Fn() -> Result<i64, i16>;

/// The single node is the only coordinator its `__transaction_state` partitions ever had.
const COORDINATOR_EPOCH: i32 = 0;

#[derive(Default)]
pub struct TxnShard {
    pub txns: HashMap<String, TransactionMetadata>,
    /// Transactional ids whose markers a caller is writing.
    sending: HashSet<String>,
}

impl CoordinatorShard for TxnShard {
    fn replay(&mut self, _at: RecordContext, record: &CoordinatorRecord, _now: i64) {
        let Some(r) = transaction_log::decode(&record.key, record.value.as_deref()) else {
            return;
        };
        let id = r.transactional_id;
        let Some(value) = r.value else {
            self.txns.remove(&id);
            self.sending.remove(&id);
            return;
        };
        let Some(mut m) = TransactionMetadata::from_log_value(&id, &value) else {
            tracing::warn!(transactional_id = %id, status = value.transaction_status,
                "skipping a transaction record with an unknown state");
            return;
        };
        if let Some(old) = self.txns.get(&id) {
            m.last_producer_epoch = old.last_producer_epoch;
        }
        self.txns.insert(id, m);
    }
}

fn record_of(m: &TransactionMetadata) -> CoordinatorRecord {
    CoordinatorRecord::new(
        transaction_log::key(&m.transactional_id),
        Some(transaction_log::value(&m.to_log_value())),
    )
}

/// The markers a prepared transaction owes its partitions.
fn pending_markers(m: &TransactionMetadata) -> PendingMarkers {
    PendingMarkers {
        transactional_id: m.transactional_id.clone(),
        marker: TxnMarker {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: COORDINATOR_EPOCH,
            commit: m.state == TransactionState::PrepareCommit,
        },
        partitions: m.topic_partitions.iter().cloned().collect(),
    }
}

/// Writes `next` and, once written, keeps its in-memory last epoch and (for a prepare) claims
/// the sending of its markers.
fn write_transition<T: Send + 'static>(next: TransactionMetadata, response: T) -> TxnResult<T> {
    let id = next.transactional_id.clone();
    let last_epoch = next.last_producer_epoch;
    let prepared = matches!(
        next.state,
        TransactionState::PrepareCommit | TransactionState::PrepareAbort
    );
    let mut result = CoordinatorResult::new(vec![record_of(&next)], response);
    result.on_append = Some(Box::new(move |s: &mut TxnShard, outcome| {
        if outcome.is_ok() {
            if let Some(m) = s.txns.get_mut(&id) {
                m.last_producer_epoch = last_epoch;
            }
            if prepared {
                s.sending.insert(id);
            }
        }
    }));
    result
}

impl TxnShard {
    /// InitProducerId with a transactional id (TransactionCoordinator.handleInitProducerId and
    /// prepareInitProducerIdTransit). `expected` is the KIP-360 producer id and epoch.
    pub fn init_producer_id(
        &self,
        id: &str,
        txn_timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: NewProducerId<'_>,
        now: i64,
    ) -> TxnResult<Result<InitOutcome, i16>> {
        let fail = |code| CoordinatorResult::response(Err(code));
        let m = match self.txns.get(id) {
            Some(m) => m.clone(),
            None => match new_producer_id() {
                Ok(pid) => TransactionMetadata::new(id, pid, txn_timeout_ms, now),
                Err(code) => return fail(code),
            },
        };
        // Fence a request whose producer is neither this one, nor a just-created id (a producer
        // recovering from UNKNOWN_PRODUCER_ID), nor a retry of a rotation it never heard of.
        let valid_producer = |(pid, epoch): (i64, i16)| {
            m.producer_epoch == super::metadata::NO_PRODUCER_EPOCH
                || pid == m.producer_id
                || (pid == m.previous_producer_id && super::metadata::is_epoch_exhausted(epoch))
        };
        if !expected.is_none_or(valid_producer) {
            return fail(errors::PRODUCER_FENCED);
        }
        use TransactionState::*;
        let next = match m.state {
            PrepareAbort | PrepareCommit => return fail(errors::CONCURRENT_TRANSACTIONS),
            Empty | CompleteAbort | CompleteCommit => {
                if m.is_producer_epoch_exhausted()
                    && expected.is_none_or(|(_, e)| e == m.producer_epoch)
                {
                    new_producer_id().and_then(|pid| {
                        m.prepare_producer_id_rotation(pid, txn_timeout_ms, now, expected.is_some())
                    })
                } else {
                    m.prepare_increment_producer_epoch(
                        txn_timeout_ms,
                        expected.map(|(_, e)| e),
                        now,
                    )
                }
            }
            // The epoch bumped here is never handed out: the client gets CONCURRENT_TRANSACTIONS
            // and its retry bumps again (rotating the id if this bump exhausted the epochs).
            Ongoing => return self.fence_and_abort(&m, now, InitOutcome::Fencing),
            Dead | PrepareEpochFence => {
                tracing::error!(transactional_id = id, state = ?m.state, "unexpected stored state");
                return fail(errors::UNKNOWN_SERVER_ERROR);
            }
        };
        match next {
            Ok(next) => {
                let ready = InitOutcome::Ready {
                    producer_id: next.producer_id,
                    producer_epoch: next.producer_epoch,
                };
                write_transition(next, Ok(ready))
            }
            Err(code) => fail(code),
        }
    }

    /// Bumps the epoch of an ongoing transaction's producer and writes PrepareAbort: the
    /// coordinator's own abort (InitProducerId of a new producer, a transaction timeout).
    fn fence_and_abort<T: Send + 'static>(
        &self,
        m: &TransactionMetadata,
        now: i64,
        respond: impl FnOnce(PendingMarkers) -> T,
    ) -> TxnResult<Result<T, i16>> {
        let next = m
            .prepare_fence_producer_epoch()
            .and_then(|fenced| fenced.prepare_abort_or_commit(false, now));
        match next {
            Ok(next) => {
                let markers = pending_markers(&next);
                write_transition(next, Ok(respond(markers)))
            }
            Err(code) => CoordinatorResult::response(Err(code)),
        }
    }

    /// The checks AddPartitionsToTxn and EndTxn share: the id is known, its producer id and
    /// epoch are the request's (handleAddPartitionsToTransaction).
    fn current(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&TransactionMetadata, i16> {
        let m = self
            .txns
            .get(id)
            .ok_or(errors::INVALID_PRODUCER_ID_MAPPING)?;
        if m.producer_id != producer_id {
            return Err(errors::INVALID_PRODUCER_ID_MAPPING);
        }
        if m.producer_epoch != epoch {
            return Err(errors::PRODUCER_FENCED);
        }
        if matches!(
            m.state,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        ) {
            return Err(errors::CONCURRENT_TRANSACTIONS);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (handleAddPartitionsToTransaction): partitions
    /// already in the ongoing transaction are answered without a write.
    pub fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now: i64,
    ) -> TxnResult<i16> {
        let m = match self.current(id, producer_id, epoch) {
            Ok(m) => m,
            Err(code) => return CoordinatorResult::response(code),
        };
        if m.state == TransactionState::Ongoing
            && partitions.iter().all(|p| m.topic_partitions.contains(p))
        {
            return CoordinatorResult::response(errors::NONE);
        }
        match m.prepare_add_partitions(partitions.iter().cloned(), now) {
            Ok(next) => write_transition(next, errors::NONE),
            Err(code) => CoordinatorResult::response(code),
        }
    }

    /// AddPartitionsToTxn v4+ with verify_only (handleVerifyPartitionsInTransaction): whether
    /// each partition is in the ongoing transaction, without changing it.
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let m = self.current(id, producer_id, epoch)?;
        Ok(partitions
            .iter()
            .map(|p| {
                if m.topic_partitions.contains(p) {
                    errors::NONE
                } else {
                    errors::TRANSACTION_ABORTABLE
                }
            })
            .collect())
    }

    /// EndTxn from a TV1 client (TransactionCoordinator.endTransaction): PrepareCommit or
    /// PrepareAbort is written and its markers are returned; a retry of a completed end is
    /// answered NONE without markers.
    pub fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> TxnResult<Result<Option<PendingMarkers>, i16>> {
        let fail = |code| CoordinatorResult::response(Err(code));
        let Some(m) = self.txns.get(id) else {
            return fail(errors::INVALID_PRODUCER_ID_MAPPING);
        };
        if m.producer_id != producer_id {
            return fail(errors::INVALID_PRODUCER_ID_MAPPING);
        }
        // TV1: a client's epoch must be the current one.
        if epoch != m.producer_epoch {
            return fail(errors::PRODUCER_FENCED);
        }
        use TransactionState::*;
        match (m.state, commit) {
            (Ongoing, _) => match m.prepare_abort_or_commit(commit, now) {
                Ok(next) => {
                    let markers = pending_markers(&next);
                    write_transition(next, Ok(Some(markers)))
                }
                Err(code) => fail(code),
            },
            (CompleteCommit, true) | (CompleteAbort, false) => {
                CoordinatorResult::response(Ok(None))
            }
            (PrepareCommit, true) | (PrepareAbort, false) => fail(errors::CONCURRENT_TRANSACTIONS),
            (Dead | PrepareEpochFence, _) => {
                tracing::error!(transactional_id = id, state = ?m.state, "unexpected stored state");
                fail(errors::UNKNOWN_SERVER_ERROR)
            }
            _ => fail(errors::INVALID_TXN_STATE),
        }
    }

    /// Markers were written to `done` (the rest failed and will be retried): those partitions
    /// leave the transaction, and once none is left the completion is written
    /// (TransactionMarkerChannelManager.maybeWriteTxnCompletion). Releases the claim either way.
    pub fn markers_written(
        &mut self,
        sent: &PendingMarkers,
        done: &[(String, i32)],
        now: i64,
    ) -> TxnResult<()> {
        self.sending.remove(&sent.transactional_id);
        let Some(m) = self.txns.get_mut(&sent.transactional_id) else {
            return CoordinatorResult::response(());
        };
        let expected_state = if sent.marker.commit {
            TransactionState::PrepareCommit
        } else {
            TransactionState::PrepareAbort
        };
        if m.producer_id != sent.marker.producer_id
            || m.producer_epoch != sent.marker.producer_epoch
            || m.state != expected_state
        {
            return CoordinatorResult::response(());
        }
        for p in done {
            m.topic_partitions.remove(p);
        }
        if !m.topic_partitions.is_empty() {
            return CoordinatorResult::response(());
        }
        match m.prepare_complete(now) {
            Ok(next) => CoordinatorResult::new(vec![record_of(&next)], ()),
            Err(_) => CoordinatorResult::response(()),
        }
    }

    /// Claims the prepared transactions nobody is writing markers for (loaded at start-up, or
    /// whose last attempt left partitions without one).
    pub fn claim_unsent(&mut self) -> Vec<PendingMarkers> {
        let unsent: Vec<PendingMarkers> = self
            .txns
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TransactionState::PrepareCommit | TransactionState::PrepareAbort
                ) && !self.sending.contains(&m.transactional_id)
            })
            .map(pending_markers)
            .collect();
        self.sending
            .extend(unsent.iter().map(|p| p.transactional_id.clone()));
        unsent
    }

    /// Aborts one transaction open for longer than its timeout, fencing its producer
    /// (TransactionCoordinator.abortTimedOutTransactions); None when it no longer is.
    pub fn abort_if_timed_out(
        &self,
        id: &str,
        now: i64,
    ) -> TxnResult<Result<Option<PendingMarkers>, i16>> {
        match self.txns.get(id) {
            Some(m) if is_timed_out(m, now) && !self.sending.contains(id) => {
                self.fence_and_abort(m, now, Some)
            }
            _ => CoordinatorResult::response(Ok(None)),
        }
    }

    /// The ongoing transactions open for longer than their timeout
    /// (TransactionStateManager.timedOutTransactions).
    pub fn timed_out(&self, now: i64) -> Vec<String> {
        self.txns
            .values()
            .filter(|m| is_timed_out(m, now))
            .map(|m| m.transactional_id.clone())
            .collect()
    }

    /// Tombstones for idle transactional ids (TransactionStateManager.removeExpiredTransactionalIds),
    /// at most `max` per write so that the batch stays small.
    pub fn expire_transactional_ids(
        &self,
        now: i64,
        expiration_ms: i64,
        max: usize,
    ) -> TxnResult<usize> {
        let records: Vec<CoordinatorRecord> = self
            .txns
            .values()
            .filter(|m| {
                m.state.is_expiration_allowed()
                    && m.txn_last_update_timestamp <= now.saturating_sub(expiration_ms)
                    && m.prepare_dead().is_ok()
            })
            .take(max)
            .map(|m| CoordinatorRecord::new(transaction_log::key(&m.transactional_id), None))
            .collect();
        let n = records.len();
        CoordinatorResult::new(records, n)
    }
}

fn is_timed_out(m: &TransactionMetadata, now: i64) -> bool {
    m.state == TransactionState::Ongoing
        && m.txn_start_timestamp
            .saturating_add(i64::from(m.txn_timeout_ms))
            < now
}
