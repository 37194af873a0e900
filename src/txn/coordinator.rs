//! The transaction coordinator of this node (Kafka's TransactionCoordinator with its
//! TransactionStateManager): routes each transactional id to the shard of its
//! `__transaction_state` partition and runs requests there as operations of the coordinator
//! runtime (`coordinator::runtime`; the shard and its `replay` are in `shard.rs`).
//!
//! Ending a transaction is two writes with the markers between them, as in Kafka: the prepare
//! record (PrepareCommit / PrepareAbort) under the shard's lock, then the markers written to every
//! partition of the transaction through a `TxnMarkerWriter` with no shard lock held (a marker to
//! `__consumer_offsets` takes the group coordinator's locks), then the completion record under
//! the lock again. Meanwhile the transaction is in a Prepare state, which requests for the id
//! answer with CONCURRENT_TRANSACTIONS. Markers that could not be written are retried by
//! `complete_prepared` (on a timer), which also completes the transactions a restart found
//! prepared.

use super::markers::{outcome, MarkerOutcome, TxnMarkerWriter};
use super::metadata::TransactionState;
use super::shard::{EndOutcome, InitOutcome, NewProducerId, PendingMarkers, TxnResult, TxnShard};
use super::TransactionConfig;
use crate::coordinator::runtime::CoordinatorRuntime;
use crate::coordinator::FollowsLeadership;
use crate::group::offsets_topic::partition_for;
use crate::metadata::Catalog;
use crate::protocol::errors;
use crate::server::clock::Now;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The most tombstones one write of the expiration timer carries.
const EXPIRATION_BATCH: usize = 1000;

/// What DescribeTransactions shows of a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub state: TransactionState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub txn_start_timestamp: i64,
    pub topic_partitions: Vec<(String, i32)>,
}

/// What ListTransactions shows of a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TransactionState,
}

/// ListTransactions' filters; empty lists and a negative duration filter nothing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: Vec<TransactionState>,
    pub producer_ids: Vec<i64>,
    /// Only transactions running for longer than this (v1).
    pub min_duration_ms: i64,
}

/// What the coordinator needs from the broker around it.
pub struct TxnContext<'a> {
    pub catalog: &'a Catalog,
    pub markers: &'a dyn TxnMarkerWriter,
    pub new_producer_id: NewProducerId<'a>,
}

pub struct TransactionCoordinator {
    pub cfg: TransactionConfig,
    runtime: CoordinatorRuntime<TxnShard>,
}

impl TransactionCoordinator {
    pub fn new(cfg: TransactionConfig) -> TransactionCoordinator {
        let runtime = CoordinatorRuntime::new(
            TRANSACTION_STATE_TOPIC,
            cfg.state_log_num_partitions,
            TxnShard::default,
        );
        TransactionCoordinator { cfg, runtime }
    }

    /// Loads every shard by replaying its `__transaction_state` partition at start-up; prepared
    /// transactions are completed by the next `complete_prepared` (Kafka resends their markers after
    /// a load).
    pub fn load(&self, catalog: &Catalog) -> std::io::Result<usize> {
        self.runtime.load_all(catalog, |_| {})
    }

    /// From now on shards are served only where this broker leads their partition (a cluster of
    /// processes; see `coordinator::PartitionLeadershipListener`).
    pub fn follow_leadership(&self) {
        self.runtime.follow_leadership();
    }

    /// The `__transaction_state` partition of a transactional id (TransactionStateManager.
    /// partitionFor: the same hash as groups').
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.runtime.partitions())
    }

    fn write<T>(
        &self,
        catalog: &Catalog,
        id: &str,
        now: i64,
        op: impl FnOnce(&mut TxnShard) -> TxnResult<T>,
    ) -> Result<T, i16> {
        self.runtime.write(catalog, self.partition_for(id), now, op)
    }

    /// InitProducerId with a transactional id: the producer id and epoch, or the error.
    pub fn init_producer_id(
        &self,
        ctx: &TxnContext<'_>,
        id: &str,
        txn_timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
    ) -> Result<(i64, i16), i16> {
        if id.is_empty() {
            return Err(errors::INVALID_REQUEST);
        }
        if txn_timeout_ms <= 0 || txn_timeout_ms > self.cfg.max_timeout_ms {
            return Err(errors::INVALID_TRANSACTION_TIMEOUT);
        }
        let new_id = ctx.new_producer_id;
        match self.write(ctx.catalog, id, now, |s| {
            s.init_producer_id(id, txn_timeout_ms, expected, new_id, now)
        })?? {
            InitOutcome::Ready {
                producer_id,
                producer_epoch,
            } => Ok((producer_id, producer_epoch)),
            InitOutcome::Fencing(markers) => {
                self.send_markers(ctx, &markers, now);
                Err(errors::CONCURRENT_TRANSACTIONS)
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's offsets partition, and the
    /// implicit adds of TV2's Produce v12+ and TxnOffsetCommit v5+), under the request's
    /// `transaction.version` (metadata::TV_0 or TV_2).
    pub fn add_partitions(
        &self,
        catalog: &Catalog,
        id: &str,
        producer: (i64, i16),
        partitions: &[(String, i32)],
        transaction_version: i16,
        now: i64,
    ) -> i16 {
        if id.is_empty() {
            return errors::INVALID_REQUEST;
        }
        let (producer_id, epoch) = producer;
        self.write(catalog, id, now, |s| {
            s.add_partitions(id, producer_id, epoch, partitions, transaction_version, now)
        })
        .unwrap_or_else(|code| code)
    }

    /// AddPartitionsToTxn v4+ verify_only: each partition's error, or the transaction's.
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        if id.is_empty() {
            return Err(errors::INVALID_REQUEST);
        }
        self.runtime
            .read(self.partition_for(id), |s| {
                s.verify_partitions(id, producer_id, epoch, partitions)
            })
            .unwrap_or(Err(errors::NOT_COORDINATOR))
    }

    /// EndTxn: writes the prepare record, then the markers, then the completion. Answers the
    /// producer id and epoch the producer goes on with (EndTxn v5, TV2), or the error.
    pub fn end_txn(
        &self,
        ctx: &TxnContext<'_>,
        id: &str,
        producer: (i64, i16),
        commit: bool,
        transaction_version: i16,
        now: i64,
    ) -> Result<(i64, i16), i16> {
        if id.is_empty() {
            return Err(errors::INVALID_REQUEST);
        }
        let (producer_id, epoch) = producer;
        let new_id = ctx.new_producer_id;
        let result: Result<EndOutcome, i16> = self
            .write(ctx.catalog, id, now, |s| {
                s.end_txn(id, producer, commit, transaction_version, new_id, now)
            })
            .and_then(|r| r);
        // The answer: (producer id, epoch, whether it was a retry), or the error code.
        let answer = result
            .as_ref()
            .map(|o| (o.producer_id, o.producer_epoch, o.markers.is_none()));
        tracing::debug!(
            transactional_id = id,
            producer_id,
            epoch,
            commit,
            transaction_version,
            ?answer,
            "EndTxn"
        );
        let outcome = result?;
        if let Some(markers) = &outcome.markers {
            // The prepare record is written, so the outcome is decided and the answer is NONE
            // whatever the markers do (failures are retried by `complete_prepared`). Kafka
            // answers before writing them; writing them first spares the producer
            // CONCURRENT_TRANSACTIONS retries when it begins its next transaction.
            self.send_markers(ctx, markers, now);
        }
        Ok((outcome.producer_id, outcome.producer_epoch))
    }

    /// Writes a prepared transaction's markers (no shard lock held), then records which
    /// partitions have them, writing the completion once all do.
    fn send_markers(&self, ctx: &TxnContext<'_>, sent: &PendingMarkers, now: i64) {
        let codes = if sent.partitions.is_empty() {
            Vec::new()
        } else {
            ctx.markers
                .write_markers(sent.marker, &sent.partitions, now)
        };
        let mut done = Vec::with_capacity(sent.partitions.len());
        for (i, p) in sent.partitions.iter().enumerate() {
            let code = codes
                .get(i)
                .copied()
                .unwrap_or(errors::UNKNOWN_SERVER_ERROR);
            let exists = ctx.catalog.get(&p.0).is_some();
            match outcome(code, exists) {
                MarkerOutcome::Done => done.push(p.clone()),
                MarkerOutcome::Retry => tracing::debug!(
                    transactional_id = %sent.transactional_id, topic = %p.0, partition = p.1,
                    code, "transaction marker not written; retrying later"),
            }
        }
        let id = &sent.transactional_id;
        if let Err(code) = self.write(ctx.catalog, id, now, |s| {
            s.markers_written(sent, &done, now)
        }) {
            tracing::warn!(transactional_id = %id, code,
                "could not write the transaction's completion; retrying later");
        }
    }

    /// Retries markers of prepared transactions nobody is writing (after failures, or found
    /// prepared at start-up).
    pub fn complete_prepared(&self, ctx: &TxnContext<'_>, now: i64) {
        for p in 0..self.runtime.partitions() {
            let unsent = self
                .runtime
                .write(ctx.catalog, p, now, |s| {
                    crate::coordinator::runtime::CoordinatorResult::response(s.claim_unsent())
                })
                .unwrap_or_default();
            for markers in unsent {
                self.send_markers(ctx, &markers, now);
            }
        }
    }

    /// Aborts the transactions open for longer than their timeout, bumping their producers'
    /// epoch so that a zombie is fenced (abortTimedOutTransactions). Returns how many.
    ///
    /// `now` is the wall clock, unlike the group coordinators' deadlines: Kafka compares
    /// `txnStartTimestamp + txnTimeoutMs` with `time.milliseconds()`
    /// (TransactionStateManager.timedOutTransactions), the start being a wall timestamp written
    /// to `__transaction_state` that a new coordinator reads back; a monotonic reading would
    /// not survive that. So a wall step forward by more than a transaction's timeout aborts it,
    /// in Kafka as here.
    pub fn abort_timed_out(&self, ctx: &TxnContext<'_>, now: i64) -> usize {
        let mut aborted = 0;
        for p in 0..self.runtime.partitions() {
            let ids = self
                .runtime
                .read(p, |s| s.timed_out(now))
                .unwrap_or_default();
            for id in ids {
                let new_id = ctx.new_producer_id;
                let result = self.runtime.write(ctx.catalog, p, now, |s| {
                    s.abort_if_timed_out(&id, new_id, now)
                });
                match result {
                    Ok(Ok(Some(markers))) => {
                        tracing::info!(transactional_id = %id, "aborting a timed-out transaction");
                        aborted += 1;
                        self.send_markers(ctx, &markers, now);
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(code)) | Err(code) => {
                        tracing::warn!(transactional_id = %id, code, "could not abort a timed-out transaction")
                    }
                }
            }
        }
        aborted
    }

    /// Removes transactional ids idle for transactional.id.expiration.ms. Returns how many.
    pub fn expire_transactional_ids(&self, catalog: &Catalog, now: i64) -> usize {
        let expiration_ms = self.cfg.transactional_id_expiration_ms;
        let mut removed = 0;
        for p in 0..self.runtime.partitions() {
            loop {
                let n = self
                    .runtime
                    .write(catalog, p, now, |s| {
                        s.expire_transactional_ids(now, expiration_ms, EXPIRATION_BATCH)
                    })
                    .unwrap_or(0);
                removed += n;
                if n < EXPIRATION_BATCH {
                    break;
                }
            }
        }
        removed
    }

    /// DescribeTransactions of one id.
    pub fn describe(&self, id: &str) -> Result<TxnDescription, i16> {
        if id.is_empty() {
            return Err(errors::INVALID_REQUEST);
        }
        self.runtime
            .read(self.partition_for(id), |s| {
                let m = s
                    .txns
                    .get(id)
                    .filter(|m| m.state != TransactionState::Dead)
                    .ok_or(errors::TRANSACTIONAL_ID_NOT_FOUND)?;
                Ok(TxnDescription {
                    state: m.state,
                    producer_id: m.producer_id,
                    producer_epoch: m.producer_epoch,
                    txn_timeout_ms: m.txn_timeout_ms,
                    txn_start_timestamp: m.txn_start_timestamp,
                    topic_partitions: m.topic_partitions.iter().cloned().collect(),
                })
            })
            .unwrap_or(Err(errors::NOT_COORDINATOR))
    }

    /// ListTransactions (TransactionStateManager.listTransactionStates).
    pub fn list(&self, filter: &ListFilter, now: i64) -> Vec<ListedTxn> {
        let mut out = Vec::new();
        for p in 0..self.runtime.partitions() {
            self.runtime.read(p, |s| {
                out.extend(
                    s.txns
                        .values()
                        .filter(|m| {
                            m.state != TransactionState::Dead
                                && (filter.producer_ids.is_empty()
                                    || filter.producer_ids.contains(&m.producer_id))
                                && (filter.states.is_empty() || filter.states.contains(&m.state))
                                && (filter.min_duration_ms < 0
                                    || now - m.txn_start_timestamp > filter.min_duration_ms)
                        })
                        .map(|m| ListedTxn {
                            transactional_id: m.transactional_id.clone(),
                            producer_id: m.producer_id,
                            state: m.state,
                        }),
                )
            });
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

/// Kafka's TransactionStateManager.loadTransactionsForTxnTopicPartition on election (and
/// removeTransactionsForTxnTopicPartition on resignation): a loaded shard's prepared
/// transactions are completed by the next `complete_prepared`, which resends their markers, and
/// its open ones time out as anywhere else (their producer may be gone with the old
/// coordinator).
impl FollowsLeadership for TransactionCoordinator {
    type Shard = TxnShard;

    fn runtime(&self) -> &CoordinatorRuntime<TxnShard> {
        &self.runtime
    }

    /// Nothing here runs on a deadline set at load: transaction timeouts compare the wall clock
    /// with the start timestamps the records hold (see `txn::coordinator`).
    fn run_scheduled_loads(&self, catalog: &Catalog, _now: Now) -> usize {
        self.runtime.run_scheduled_loads(catalog, |_| {})
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, Ordering};

    use parking_lot::Mutex;

    use super::*;
    use crate::log::LogConfig;
    use crate::txn::metadata::{TV_0, TV_2};
    use crate::txn::TxnMarker;

    /// Markers land in a list; a partition may be told to fail.
    #[derive(Default)]
    struct Markers {
        written: Mutex<Vec<(TxnMarker, (String, i32))>>,
        failing: Mutex<HashMap<(String, i32), i16>>,
    }

    impl TxnMarkerWriter for Markers {
        fn write_markers(&self, m: TxnMarker, parts: &[(String, i32)], _now: i64) -> Vec<i16> {
            parts
                .iter()
                .map(|p| match self.failing.lock().get(p) {
                    Some(code) => *code,
                    None => {
                        self.written.lock().push((m, p.clone()));
                        errors::NONE
                    }
                })
                .collect()
        }
    }

    struct Env {
        _dir: tempfile::TempDir,
        catalog: Catalog,
        markers: Markers,
        next_pid: AtomicI64,
    }

    impl Env {
        fn new() -> Env {
            let dir = tempfile::tempdir().unwrap();
            let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
            catalog.create("t", 3, 1, Default::default(), 0).unwrap();
            Env {
                _dir: dir,
                catalog,
                markers: Markers::default(),
                next_pid: AtomicI64::new(100),
            }
        }

        fn reopen(self) -> Env {
            let catalog = Catalog::open(self._dir.path(), LogConfig::default(), false, 0).unwrap();
            Env { catalog, ..self }
        }

        fn ctx<R>(&self, f: impl FnOnce(&TxnContext<'_>) -> R) -> R {
            let new_pid = || Ok(self.next_pid.fetch_add(1, Ordering::SeqCst));
            f(&TxnContext {
                catalog: &self.catalog,
                markers: &self.markers,
                new_producer_id: &new_pid,
            })
        }
    }

    fn coordinator() -> TransactionCoordinator {
        TransactionCoordinator::new(TransactionConfig {
            state_log_num_partitions: 3,
            ..TransactionConfig::default()
        })
    }

    fn tp(p: i32) -> (String, i32) {
        ("t".to_string(), p)
    }

    fn init(c: &TransactionCoordinator, env: &Env, id: &str, now: i64) -> Result<(i64, i16), i16> {
        env.ctx(|ctx| c.init_producer_id(ctx, id, 60_000, None, now))
    }

    /// A TV1 EndTxn's error code.
    fn end(c: &TransactionCoordinator, env: &Env, id: &str, pe: (i64, i16), commit: bool) -> i16 {
        env.ctx(|ctx| c.end_txn(ctx, id, pe, commit, TV_0, 50))
            .err()
            .unwrap_or(errors::NONE)
    }

    /// A TV2 EndTxn (v5): the producer id and epoch to go on with, or the error.
    fn end_v2(
        c: &TransactionCoordinator,
        env: &Env,
        id: &str,
        pe: (i64, i16),
        commit: bool,
        now: i64,
    ) -> Result<(i64, i16), i16> {
        env.ctx(|ctx| c.end_txn(ctx, id, pe, commit, TV_2, now))
    }

    fn state(c: &TransactionCoordinator, id: &str) -> TransactionState {
        c.describe(id).unwrap().state
    }

    #[test]
    fn a_commit_writes_prepare_markers_then_complete_and_survives_a_restart() {
        // TransactionCoordinator.handleEndTransaction: PrepareCommit is written, markers go to
        // every partition with the producer's id and epoch, then CompleteCommit.
        let env = Env::new();
        let c = coordinator();
        let pe = init(&c, &env, "tx", 1).unwrap();
        assert_eq!(pe, (100, 0));
        assert_eq!(
            c.add_partitions(&env.catalog, "tx", (pe.0, pe.1), &[tp(0), tp(2)], TV_0, 10),
            0
        );
        let d = c.describe("tx").unwrap();
        assert_eq!(
            (d.state, d.txn_start_timestamp),
            (TransactionState::Ongoing, 10)
        );
        assert_eq!(end(&c, &env, "tx", pe, true), errors::NONE);
        let written = env.markers.written.lock().clone();
        assert_eq!(written.len(), 2);
        assert!(written
            .iter()
            .all(|(m, _)| m.commit && m.producer_id == 100 && m.producer_epoch == 0));
        assert_eq!(state(&c, "tx"), TransactionState::CompleteCommit);
        // A retried EndTxn of the same outcome is fine; the other outcome is not.
        assert_eq!(end(&c, &env, "tx", pe, true), errors::NONE);
        assert_eq!(end(&c, &env, "tx", pe, false), errors::INVALID_TXN_STATE);
        let before = c.describe("tx").unwrap();
        let env = env.reopen();
        let c = coordinator();
        c.load(&env.catalog).unwrap();
        assert_eq!(c.describe("tx").unwrap(), before);
        // The next InitProducerId bumps the epoch of the same producer id.
        assert_eq!(init(&c, &env, "tx", 70).unwrap(), (100, 1));
    }

    #[test]
    fn out_of_order_requests_get_kafkas_errors() {
        let env = Env::new();
        let c = coordinator();
        let cx = &env.catalog;
        // InitProducerId: transaction.max.timeout.ms, and an empty id.
        let too_long = env.ctx(|ctx| c.init_producer_id(ctx, "tx", 900_001, None, 1));
        assert_eq!(too_long, Err(errors::INVALID_TRANSACTION_TIMEOUT));
        assert_eq!(
            env.ctx(|ctx| c.init_producer_id(ctx, "", 1, None, 1)),
            Err(errors::INVALID_REQUEST)
        );
        // Unknown transactional id.
        assert_eq!(
            c.add_partitions(cx, "nope", (1, 0), &[tp(0)], TV_0, 1),
            errors::INVALID_PRODUCER_ID_MAPPING
        );
        assert_eq!(
            end(&c, &env, "nope", (1, 0), true),
            errors::INVALID_PRODUCER_ID_MAPPING
        );
        assert_eq!(c.describe("nope"), Err(errors::TRANSACTIONAL_ID_NOT_FOUND));
        let (pid, epoch) = init(&c, &env, "tx", 1).unwrap();
        // EndTxn without a transaction.
        assert_eq!(
            end(&c, &env, "tx", (pid, epoch), true),
            errors::INVALID_TXN_STATE
        );
        // Wrong producer id, wrong epoch.
        assert_eq!(
            c.add_partitions(cx, "tx", (pid + 1, epoch), &[tp(0)], TV_0, 1),
            errors::INVALID_PRODUCER_ID_MAPPING
        );
        assert_eq!(
            c.add_partitions(cx, "tx", (pid, epoch + 1), &[tp(0)], TV_0, 1),
            errors::PRODUCER_FENCED
        );
        assert_eq!(
            end(&c, &env, "tx", (pid, epoch + 1), false),
            errors::PRODUCER_FENCED
        );
        // Nothing of that was written.
        assert_eq!(state(&c, "tx"), TransactionState::Empty);
    }

    #[test]
    fn markers_that_fail_are_retried_and_requests_wait_meanwhile() {
        // Kafka answers CONCURRENT_TRANSACTIONS while a transaction is PrepareCommit and its
        // marker channel retries retriable errors until every partition has its marker.
        let env = Env::new();
        let c = coordinator();
        let pe = init(&c, &env, "tx", 1).unwrap();
        c.add_partitions(&env.catalog, "tx", (pe.0, pe.1), &[tp(0), tp(1)], TV_0, 2);
        env.markers
            .failing
            .lock()
            .insert(tp(1), errors::KAFKA_STORAGE_ERROR);
        assert_eq!(end(&c, &env, "tx", pe, true), errors::NONE);
        assert_eq!(state(&c, "tx"), TransactionState::PrepareCommit);
        assert_eq!(c.describe("tx").unwrap().topic_partitions, vec![tp(1)]);
        assert_eq!(
            c.add_partitions(&env.catalog, "tx", (pe.0, pe.1), &[tp(0)], TV_0, 3),
            errors::CONCURRENT_TRANSACTIONS
        );
        assert_eq!(
            init(&c, &env, "tx", 3),
            Err(errors::CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(
            end(&c, &env, "tx", pe, true),
            errors::CONCURRENT_TRANSACTIONS
        );
        assert_eq!(end(&c, &env, "tx", pe, false), errors::INVALID_TXN_STATE);
        env.ctx(|ctx| c.complete_prepared(ctx, 4));
        assert_eq!(state(&c, "tx"), TransactionState::PrepareCommit);
        env.markers.failing.lock().clear();
        env.ctx(|ctx| c.complete_prepared(ctx, 5));
        assert_eq!(state(&c, "tx"), TransactionState::CompleteCommit);
        let written: Vec<_> = env
            .markers
            .written
            .lock()
            .iter()
            .map(|w| w.1.clone())
            .collect();
        assert_eq!(
            written,
            vec![tp(0), tp(1)],
            "each partition gets its marker once"
        );
    }

    #[test]
    fn a_restart_completes_a_prepared_transaction() {
        // TransactionStateManager.loadTransactionsForTxnTopicPartition hands prepared
        // transactions to the marker channel.
        let env = Env::new();
        let c = coordinator();
        let pe = init(&c, &env, "tx", 1).unwrap();
        c.add_partitions(&env.catalog, "tx", (pe.0, pe.1), &[tp(2)], TV_0, 2);
        env.markers
            .failing
            .lock()
            .insert(tp(2), errors::NOT_COORDINATOR);
        end(&c, &env, "tx", pe, false);
        assert_eq!(state(&c, "tx"), TransactionState::PrepareAbort);
        let env = env.reopen();
        env.markers.failing.lock().clear();
        let c = coordinator();
        c.load(&env.catalog).unwrap();
        assert_eq!(state(&c, "tx"), TransactionState::PrepareAbort);
        env.ctx(|ctx| c.complete_prepared(ctx, 11));
        assert_eq!(state(&c, "tx"), TransactionState::CompleteAbort);
        let written = env.markers.written.lock().clone();
        assert_eq!(written.len(), 1);
        assert!(!written[0].0.commit);
    }

    #[test]
    fn a_new_producer_fences_the_ongoing_transaction_of_the_old_one() {
        // prepareInitProducerIdTransit on Ongoing: bump the epoch, abort with it, answer
        // CONCURRENT_TRANSACTIONS; the retry bumps again. The old producer is fenced.
        let env = Env::new();
        let c = coordinator();
        let old = init(&c, &env, "tx", 1).unwrap();
        c.add_partitions(&env.catalog, "tx", (old.0, old.1), &[tp(0)], TV_0, 2);
        assert_eq!(
            init(&c, &env, "tx", 3),
            Err(errors::CONCURRENT_TRANSACTIONS)
        );
        let written = env.markers.written.lock().clone();
        assert_eq!(written.len(), 1);
        assert!(
            !written[0].0.commit && written[0].0.producer_epoch == 1,
            "{written:?}"
        );
        assert_eq!(state(&c, "tx"), TransactionState::CompleteAbort);
        assert_eq!(init(&c, &env, "tx", 4).unwrap(), (old.0, 2));
        assert_eq!(end(&c, &env, "tx", old, true), errors::PRODUCER_FENCED);
        assert_eq!(
            c.add_partitions(&env.catalog, "tx", (old.0, old.1), &[tp(0)], TV_0, 5),
            errors::PRODUCER_FENCED
        );
    }

    #[test]
    fn kip_360_retries_and_epoch_exhaustion() {
        let env = Env::new();
        let c = coordinator();
        let first = init(&c, &env, "tx", 1).unwrap();
        let init_with = |expected, now| {
            env.ctx(|ctx| c.init_producer_id(ctx, "tx", 60_000, Some(expected), now))
        };
        // Bump from the current epoch; a retry with the same (now last) epoch gets the same.
        let bumped = init_with(first, 2).unwrap();
        assert_eq!(bumped, (first.0, 1));
        assert_eq!(init_with(first, 3).unwrap(), bumped);
        // A producer id that is not this id's is fenced.
        assert_eq!(
            init_with((first.0 + 50, 1), 4),
            Err(errors::PRODUCER_FENCED)
        );
        // Exhausted epochs rotate to a new producer id with epoch 0.
        let mut pe = bumped;
        let p = c.partition_for("tx");
        c.runtime
            .write(&env.catalog, p, 5, |s| {
                let mut m = s.txns["tx"].clone();
                m.producer_epoch = i16::MAX - 1;
                let r = crate::coordinator::runtime::CoordinatorRecord::new(
                    crate::txn::transaction_log::key("tx"),
                    Some(crate::txn::transaction_log::value(&m.to_log_value())),
                );
                crate::coordinator::runtime::CoordinatorResult::new(vec![r], ())
            })
            .unwrap();
        pe.1 = i16::MAX - 1;
        let rotated = init_with(pe, 6).unwrap();
        assert_ne!(rotated.0, first.0);
        assert_eq!(rotated.1, 0);
    }

    /// "slow", with a 1 s transaction timeout, opened at 100 under `transaction_version`.
    fn open_slow(transaction_version: i16) -> (Env, TransactionCoordinator, (i64, i16)) {
        let env = Env::new();
        let c = coordinator();
        let pe = env
            .ctx(|ctx| c.init_producer_id(ctx, "slow", 1_000, None, 0))
            .unwrap();
        let cx = &env.catalog;
        c.add_partitions(cx, "slow", pe, &[tp(0)], transaction_version, 100);
        (env, c, pe)
    }

    #[test]
    fn timed_out_transactions_are_aborted_and_idle_ids_expire() {
        // abortTimedOutTransactions fences the producer (epoch bump) and aborts;
        // removeExpiredTransactionalIds writes tombstones for ids idle past
        // transactional.id.expiration.ms, never for an open transaction.
        let (env, c, pe) = open_slow(TV_0);
        let idle = init(&c, &env, "idle", 0).unwrap();
        assert_eq!(env.ctx(|ctx| c.abort_timed_out(ctx, 1_100)), 0);
        assert_eq!(env.ctx(|ctx| c.abort_timed_out(ctx, 1_101)), 1);
        let d = c.describe("slow").unwrap();
        assert_eq!(
            (d.state, d.producer_epoch),
            (TransactionState::CompleteAbort, pe.1 + 1)
        );
        assert_eq!(
            c.add_partitions(&env.catalog, "slow", (pe.0, pe.1), &[tp(0)], TV_0, 1_200),
            errors::PRODUCER_FENCED
        );
        let week = c.cfg.transactional_id_expiration_ms;
        assert_eq!(c.expire_transactional_ids(&env.catalog, week - 1), 0);
        assert_eq!(c.expire_transactional_ids(&env.catalog, week), 1);
        assert_eq!(c.describe("idle"), Err(errors::TRANSACTIONAL_ID_NOT_FOUND));
        assert_ne!(init(&c, &env, "idle", week + 1).unwrap().0, idle.0);
        let listed = c.list(
            &ListFilter {
                min_duration_ms: -1,
                ..ListFilter::default()
            },
            week,
        );
        assert_eq!(listed.len(), 2);
        let ongoing = ListFilter {
            states: vec![TransactionState::Ongoing],
            min_duration_ms: -1,
            ..ListFilter::default()
        };
        assert!(c.list(&ongoing, week).is_empty());
        let by_pid = ListFilter {
            producer_ids: vec![pe.0],
            min_duration_ms: -1,
            ..ListFilter::default()
        };
        assert_eq!(c.list(&by_pid, week)[0].transactional_id, "slow");
        let env2 = env.reopen();
        let c2 = coordinator();
        c2.load(&env2.catalog).unwrap();
        assert_eq!(
            c2.describe("idle").unwrap().producer_epoch,
            0,
            "the tombstone is replayed"
        );
    }

    /// Sets a transactional id's stored epoch (a record written as a transition would).
    fn set_epoch(c: &TransactionCoordinator, env: &Env, id: &str, epoch: i16) {
        c.runtime
            .write(&env.catalog, c.partition_for(id), 5, |s| {
                let mut m = s.txns[id].clone();
                m.producer_epoch = epoch;
                let r = crate::coordinator::runtime::CoordinatorRecord::new(
                    crate::txn::transaction_log::key(id),
                    Some(crate::txn::transaction_log::value(&m.to_log_value())),
                );
                crate::coordinator::runtime::CoordinatorResult::new(vec![r], ())
            })
            .unwrap();
    }

    fn stored(c: &TransactionCoordinator, id: &str) -> crate::txn::metadata::TransactionMetadata {
        c.runtime
            .read(c.partition_for(id), |s| s.txns[id].clone())
            .unwrap()
    }

    /// A coordinator with `id` initialized at 1: its producer id and epoch.
    fn initialized(id: &str) -> (Env, TransactionCoordinator, (i64, i16)) {
        let env = Env::new();
        let c = coordinator();
        let pe = init(&c, &env, id, 1).unwrap();
        (env, c, pe)
    }

    #[test]
    fn tv2_ends_bump_the_epoch_and_retries_get_the_current_one() {
        // TransactionCoordinator.endTransaction under TV2: every end bumps the epoch, the
        // markers carry the bumped one, the answer is the completion's id and epoch; a retry
        // (the epoch before the bump) is answered with the current ones and writes nothing.
        let (env, c, pe) = initialized("tx");
        assert_eq!(pe, (100, 0));
        let cx = &env.catalog;
        assert_eq!(c.add_partitions(cx, "tx", pe, &[tp(0)], TV_2, 10), 0);
        assert_eq!(stored(&c, "tx").client_transaction_version, TV_2);
        assert_eq!(end_v2(&c, &env, "tx", pe, true, 20), Ok((100, 1)));
        let written = env.markers.written.lock().clone();
        assert_eq!(written.len(), 1);
        assert!(written[0].0.commit && written[0].0.producer_epoch == 1);
        let d = c.describe("tx").unwrap();
        assert_eq!(
            (d.state, d.producer_epoch),
            (TransactionState::CompleteCommit, 1)
        );
        // Retries of the end just done, with the pre-bump epoch.
        assert_eq!(end_v2(&c, &env, "tx", pe, true, 21), Ok((100, 1)));
        assert_eq!(
            end_v2(&c, &env, "tx", pe, false, 21),
            Err(errors::INVALID_TXN_STATE)
        );
        // The current epoch is the next end: a commit of nothing is refused, an abort of
        // nothing bumps the epoch and writes no marker.
        let now = (100, 1);
        assert_eq!(
            end_v2(&c, &env, "tx", now, true, 22),
            Err(errors::INVALID_TXN_STATE)
        );
        assert_eq!(end_v2(&c, &env, "tx", now, false, 23), Ok((100, 2)));
        assert_eq!(env.markers.written.lock().len(), 1);
        assert_eq!(state(&c, "tx"), TransactionState::CompleteAbort);
        // An epoch two behind is a zombie.
        assert_eq!(
            end_v2(&c, &env, "tx", pe, false, 24),
            Err(errors::PRODUCER_FENCED)
        );
        assert_eq!(
            c.add_partitions(cx, "tx", pe, &[tp(0)], TV_2, 24),
            errors::PRODUCER_FENCED
        );
        // The next transaction at the bumped epoch, after a restart: the TV2 state is replayed,
        // and a retry of the last end is still recognised.
        let before = stored(&c, "tx");
        let env = env.reopen();
        let c = coordinator();
        c.load(&env.catalog).unwrap();
        let after = stored(&c, "tx");
        assert_eq!(after.client_transaction_version, TV_2);
        assert_eq!(
            (
                after.state,
                after.producer_epoch,
                after.previous_producer_id
            ),
            (
                before.state,
                before.producer_epoch,
                before.previous_producer_id
            )
        );
        assert_eq!(end_v2(&c, &env, "tx", now, false, 31), Ok((100, 2)));
        let cx = &env.catalog;
        assert_eq!(c.add_partitions(cx, "tx", (100, 2), &[tp(1)], TV_2, 32), 0);
        assert_eq!(end_v2(&c, &env, "tx", (100, 2), false, 33), Ok((100, 3)));
    }

    #[test]
    fn a_tv1_end_keeps_the_epoch_even_after_tv2_ends() {
        // EndTxn v0-4 (endTransactionWithTV1): strict epoch equality, no bump.
        let (env, c, pe) = initialized("tx");
        c.add_partitions(&env.catalog, "tx", pe, &[tp(0)], TV_0, 2);
        assert_eq!(
            env.ctx(|ctx| c.end_txn(ctx, "tx", pe, true, TV_0, 3)),
            Ok(pe)
        );
        assert_eq!(stored(&c, "tx").producer_epoch, pe.1);
        assert_eq!(stored(&c, "tx").client_transaction_version, TV_0);
        let written = env.markers.written.lock().clone();
        assert_eq!(written[0].0.producer_epoch, pe.1);
    }

    #[test]
    fn a_tv2_end_at_exhausted_epochs_moves_to_the_next_producer_id() {
        // At epoch i16::MAX - 1 the end allocates the next producer id: the markers carry the
        // old id with i16::MAX, the answer the new id with epoch 0; a retry from the old id and
        // epoch is recognised (retryOnOverflow), also after a restart.
        let (env, c, first) = initialized("tx");
        set_epoch(&c, &env, "tx", i16::MAX - 1);
        let old = (first.0, i16::MAX - 1);
        assert_eq!(
            c.add_partitions(&env.catalog, "tx", old, &[tp(0)], TV_2, 10),
            0
        );
        let rotated = end_v2(&c, &env, "tx", old, true, 20).unwrap();
        assert_ne!(rotated.0, first.0);
        assert_eq!(rotated.1, 0);
        let written = env.markers.written.lock().clone();
        assert_eq!(
            (written[0].0.producer_id, written[0].0.producer_epoch),
            (first.0, i16::MAX)
        );
        let d = c.describe("tx").unwrap();
        assert_eq!((d.producer_id, d.producer_epoch), rotated);
        assert_eq!(stored(&c, "tx").previous_producer_id, first.0);
        assert_eq!(end_v2(&c, &env, "tx", old, true, 21), Ok(rotated));
        let env = env.reopen();
        let c = coordinator();
        c.load(&env.catalog).unwrap();
        assert_eq!(end_v2(&c, &env, "tx", old, true, 31), Ok(rotated));
        // The new producer id goes on from epoch 0.
        assert_eq!(
            c.add_partitions(&env.catalog, "tx", rotated, &[tp(1)], TV_2, 32),
            0
        );
        assert_eq!(
            end_v2(&c, &env, "tx", rotated, false, 33),
            Ok((rotated.0, 1))
        );
    }

    #[test]
    fn a_timed_out_tv2_transaction_is_aborted_with_one_bump() {
        // abortTimedOutTransactions under TV2: the abort's own bump fences the producer (one
        // bump, not a fence and then a bump); its late EndTxn abort with the old epoch is a
        // retry of that abort. At exhausted epochs the abort moves to the next producer id.
        let (env, c, pe) = open_slow(TV_2);
        assert_eq!(env.ctx(|ctx| c.abort_timed_out(ctx, 1_101)), 1);
        let written = env.markers.written.lock().clone();
        assert!(!written[0].0.commit && written[0].0.producer_epoch == pe.1 + 1);
        let d = c.describe("slow").unwrap();
        assert_eq!(
            (d.state, d.producer_epoch),
            (TransactionState::CompleteAbort, pe.1 + 1)
        );
        assert_eq!(
            end_v2(&c, &env, "slow", pe, false, 1_200),
            Ok((pe.0, pe.1 + 1))
        );
        assert_eq!(
            end_v2(&c, &env, "slow", pe, true, 1_200),
            Err(errors::INVALID_TXN_STATE)
        );
        // Timed out at an exhausted epoch.
        set_epoch(&c, &env, "slow", i16::MAX - 1);
        let old = (pe.0, i16::MAX - 1);
        c.add_partitions(&env.catalog, "slow", old, &[tp(1)], TV_2, 2_000);
        assert_eq!(env.ctx(|ctx| c.abort_timed_out(ctx, 3_001)), 1);
        let d = c.describe("slow").unwrap();
        assert_ne!(d.producer_id, pe.0);
        assert_eq!(d.producer_epoch, 0);
        assert_eq!(
            end_v2(&c, &env, "slow", old, false, 3_100),
            Ok((d.producer_id, 0))
        );
    }
}
