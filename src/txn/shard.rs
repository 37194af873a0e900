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

use super::metadata::{supports_epoch_bump, TransactionMetadata, TransactionState, NO_PRODUCER_ID};
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

/// What EndTxn leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndOutcome {
    /// The markers to write, for an end that wrote its prepare record; None for a retry of an
    /// end that already completed.
    pub markers: Option<PendingMarkers>,
    /// The producer id and epoch EndTxn v5 answers: once the markers are written, the
    /// transaction's (after a TV2 end: the bumped epoch, or the next producer id with epoch 0).
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// A new producer id, or the error to answer when none can be had.
pub type NewProducerId<'a> = &'a dyn Fn() -> Result<i64, i16>;

/// The `transaction.version` this coordinator runs its own aborts under (InitProducerId fencing
/// an ongoing transaction, timeouts): the finalized level, as Kafka's
/// `txnManager.transactionVersionLevel()`.
const SERVER_TRANSACTION_VERSION: i16 = super::FINALIZED_TRANSACTION_VERSION;

#[derive(Default)]
pub struct TxnShard {
    pub txns: HashMap<String, TransactionMetadata>,
    /// Transactional ids whose markers a caller is writing.
    sending: HashSet<String>,
    /// The coordinator epoch the markers carry (Kafka's TxnMetadataCacheEntry.coordinatorEpoch):
    /// the leader epoch of the `__transaction_state` partition this shard was loaded at, so a
    /// partition leader refuses the markers of a coordinator that lost the partition since
    /// (TRANSACTION_COORDINATOR_FENCED, see `producer_state`).
    coordinator_epoch: i32,
}

impl CoordinatorShard for TxnShard {
    fn loaded_at(&mut self, coordinator_epoch: i32) {
        self.coordinator_epoch = coordinator_epoch;
    }

    fn replay(&mut self, _at: RecordContext, record: &CoordinatorRecord) {
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

/// The markers a prepared transaction owes its partitions, from a coordinator of this epoch.
fn pending_markers(m: &TransactionMetadata, coordinator_epoch: i32) -> PendingMarkers {
    PendingMarkers {
        transactional_id: m.transactional_id.clone(),
        marker: TxnMarker {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch,
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
            Ongoing => return self.fence_and_abort(&m, new_producer_id, now, InitOutcome::Fencing),
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
    /// coordinator's own abort (InitProducerId of a new producer, a transaction timeout). Kafka
    /// fences (PrepareEpochFence) and then aborts under the finalized transaction version; under
    /// TV2 the abort's own bump is the fence (one bump, the next producer id allocated when that
    /// exhausts the epochs), which is what this writes.
    fn fence_and_abort<T: Send + 'static>(
        &self,
        m: &TransactionMetadata,
        new_producer_id: NewProducerId<'_>,
        now: i64,
        respond: impl FnOnce(PendingMarkers) -> T,
    ) -> TxnResult<Result<T, i16>> {
        let next =
            next_producer_id(m, SERVER_TRANSACTION_VERSION, new_producer_id).and_then(|next_pid| {
                m.prepare_abort_or_commit(false, SERVER_TRANSACTION_VERSION, next_pid, now, false)
            });
        match next {
            Ok(next) => {
                let markers = pending_markers(&next, self.coordinator_epoch);
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

    /// AddPartitionsToTxn / AddOffsetsToTxn / a TV2 implicit add (handleAddPartitionsToTransaction):
    /// partitions already in the ongoing transaction are answered without a write.
    pub fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        transaction_version: i16,
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
        match m.prepare_add_partitions(partitions.iter().cloned(), transaction_version, now) {
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

    /// EndTxn (TransactionCoordinator.handleEndTransaction): v0-4 are TV1 (`end_txn_v1`), v5 TV2
    /// (`end_txn_v2`). An end that is written returns its markers.
    pub fn end_txn(
        &self,
        id: &str,
        (producer_id, epoch): (i64, i16),
        commit: bool,
        transaction_version: i16,
        new_producer_id: NewProducerId<'_>,
        now: i64,
    ) -> TxnResult<Result<EndOutcome, i16>> {
        let Some(m) = self.txns.get(id) else {
            return CoordinatorResult::response(Err(errors::INVALID_PRODUCER_ID_MAPPING));
        };
        let decision = if supports_epoch_bump(transaction_version) {
            end_txn_v2(m, producer_id, epoch, commit)
        } else {
            end_txn_v1(m, producer_id, epoch, commit)
        };
        let no_partition_added = match decision {
            Ok(EndDecision::Retried) => {
                return CoordinatorResult::response(Ok(EndOutcome {
                    markers: None,
                    producer_id: m.producer_id,
                    producer_epoch: m.producer_epoch,
                }))
            }
            Ok(EndDecision::Prepare { no_partition_added }) => no_partition_added,
            Err(code) => return CoordinatorResult::response(Err(code)),
        };
        let next = next_producer_id(m, transaction_version, new_producer_id).and_then(|next_pid| {
            m.prepare_abort_or_commit(
                commit,
                transaction_version,
                next_pid,
                now,
                no_partition_added,
            )
        });
        match next {
            Ok(next) => {
                let (producer_id, producer_epoch) = next.completed_producer();
                let markers = Some(pending_markers(&next, self.coordinator_epoch));
                let outcome = EndOutcome {
                    markers,
                    producer_id,
                    producer_epoch,
                };
                write_transition(next, Ok(outcome))
            }
            Err(code) => CoordinatorResult::response(Err(code)),
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
            .map(|m| pending_markers(m, self.coordinator_epoch))
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
        new_producer_id: NewProducerId<'_>,
        now: i64,
    ) -> TxnResult<Result<Option<PendingMarkers>, i16>> {
        match self.txns.get(id) {
            Some(m) if is_timed_out(m, now) && !self.sending.contains(id) => {
                self.fence_and_abort(m, new_producer_id, now, Some)
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

/// What an EndTxn does, once its checks passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndDecision {
    /// Write PrepareCommit / PrepareAbort.
    Prepare { no_partition_added: bool },
    /// A retry of an end that completed: answer NONE with the current producer id and epoch.
    Retried,
}

/// A TV1 client's EndTxn (TransactionCoordinator.endTransactionWithTV1): its epoch must be the
/// current one; a retry of a completed end is answered without a write.
fn end_txn_v1(
    m: &TransactionMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<EndDecision, i16> {
    if m.producer_id != producer_id {
        return Err(errors::INVALID_PRODUCER_ID_MAPPING);
    }
    if epoch != m.producer_epoch {
        return Err(errors::PRODUCER_FENCED);
    }
    use TransactionState::*;
    match (m.state, commit) {
        (Ongoing, _) => Ok(EndDecision::Prepare {
            no_partition_added: false,
        }),
        (CompleteCommit, true) | (CompleteAbort, false) => Ok(EndDecision::Retried),
        (PrepareCommit, true) | (PrepareAbort, false) => Err(errors::CONCURRENT_TRANSACTIONS),
        (Dead | PrepareEpochFence, _) => unexpected_state(m),
        _ => Err(errors::INVALID_TXN_STATE),
    }
}

/// A TV2 client's EndTxn (TransactionCoordinator.endTransaction). The same epoch as the
/// transaction's means the next end, not a retry: a retry carries the epoch before the bump it
/// caused (or, after a rotation, the exhausted epoch of the previous producer id). An abort with
/// no transaction open still bumps the epoch (the producer may have sent batches that never
/// added a partition); a commit of nothing is INVALID_TXN_STATE.
fn end_txn_v2(
    m: &TransactionMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<EndDecision, i16> {
    use TransactionState::*;
    let retry_on_overflow =
        m.previous_producer_id == producer_id && epoch == i16::MAX - 1 && m.producer_epoch == 0;
    let retry_on_epoch_bump = i32::from(m.producer_epoch) == i32::from(epoch) + 1;
    let valid_epoch = match m.state {
        Ongoing | Empty | Dead | PrepareEpochFence => epoch == m.producer_epoch,
        PrepareCommit | PrepareAbort => retry_on_epoch_bump,
        CompleteCommit | CompleteAbort => {
            retry_on_epoch_bump || retry_on_overflow || epoch == m.producer_epoch
        }
    };
    let is_retry = retry_on_epoch_bump || retry_on_overflow;
    if m.producer_id != producer_id && !retry_on_overflow {
        return Err(errors::INVALID_PRODUCER_ID_MAPPING);
    }
    if !valid_epoch {
        return Err(errors::PRODUCER_FENCED);
    }
    let empty_abort = Ok(EndDecision::Prepare {
        no_partition_added: true,
    });
    match (m.state, commit) {
        (Ongoing, _) => Ok(EndDecision::Prepare {
            no_partition_added: false,
        }),
        (CompleteCommit, true) | (CompleteAbort, false) if is_retry => Ok(EndDecision::Retried),
        (CompleteCommit, false) if is_retry => Err(errors::INVALID_TXN_STATE),
        (CompleteCommit | CompleteAbort | Empty, false) => empty_abort,
        (PrepareCommit, true) | (PrepareAbort, false) => Err(errors::CONCURRENT_TRANSACTIONS),
        (Dead | PrepareEpochFence, _) => unexpected_state(m),
        _ => Err(errors::INVALID_TXN_STATE),
    }
}

fn unexpected_state<T>(m: &TransactionMetadata) -> Result<T, i16> {
    tracing::error!(transactional_id = %m.transactional_id, state = ?m.state, "unexpected stored state");
    Err(errors::UNKNOWN_SERVER_ERROR)
}

/// The producer id a TV2 end moves to when it exhausts the epochs (Kafka allocates it with the
/// prepare record, and the completion switches to it); NO_PRODUCER_ID otherwise.
fn next_producer_id(
    m: &TransactionMetadata,
    transaction_version: i16,
    new_producer_id: NewProducerId<'_>,
) -> Result<i64, i16> {
    if supports_epoch_bump(transaction_version) && m.is_producer_epoch_exhausted() {
        new_producer_id()
    } else {
        Ok(NO_PRODUCER_ID)
    }
}

fn is_timed_out(m: &TransactionMetadata, now: i64) -> bool {
    m.state == TransactionState::Ongoing
        && m.txn_start_timestamp
            .saturating_add(i64::from(m.txn_timeout_ms))
            < now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_carry_the_epoch_the_shard_was_loaded_at() {
        let prepared = |id: &str| {
            let mut m = TransactionMetadata::new(id, 7, 60_000, 0);
            m.producer_epoch = 2;
            m.state = TransactionState::PrepareCommit;
            m.topic_partitions.insert(("t".to_string(), 0));
            m
        };
        let mut shard = TxnShard::default();
        shard.txns.insert("a".into(), prepared("a"));
        let unsent = shard.claim_unsent();
        assert_eq!(
            unsent[0].marker.coordinator_epoch, 0,
            "one process: epoch 0"
        );

        // Loaded as the new leader of its partition at leader epoch 5: an older coordinator's
        // markers (epoch 0) are fenced by the partition leaders that saw these.
        let mut shard = TxnShard::default();
        shard.loaded_at(5);
        shard.txns.insert("a".into(), prepared("a"));
        let unsent = shard.claim_unsent();
        assert_eq!(unsent.len(), 1);
        assert_eq!(unsent[0].marker.coordinator_epoch, 5);
        assert!(unsent[0].marker.commit);
    }
}
