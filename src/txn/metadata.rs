//! A transactional id's state machine (Kafka's TransactionState and TransactionMetadata).
//!
//! The `prepare_*` functions compute the metadata a transition leads to, after checking that the
//! transition is allowed from the current state (Kafka's `validPreviousStates`); they never
//! change the current metadata. The coordinator writes the result as a `__transaction_state`
//! record, and the shard's replay of that record is what changes the state (see `shard`).
//!
//! Kafka's `pendingState` has no equivalent: an operation and its write run under the shard's
//! lock, so no other request sees a transition half-done. PrepareEpochFence is a state no
//! transition of this coordinator enters: with `transaction.version` 2 finalized, Kafka's fence
//! (InitProducerId or a timeout aborting an ongoing transaction) is dropped again before the
//! abort, which bumps the epoch once itself (TransactionCoordinator.endTransaction under TV2).
//!
//! Transaction versions (KIP-890 part 2) are Kafka's `transaction.version` feature levels: 0 for
//! the original protocol, 2 for a client that ends its transactions with EndTxn v5 and adds its
//! partitions implicitly (Produce v12+, TxnOffsetCommit v5+). A transaction remembers the version
//! of the request that last changed it (`client_transaction_version`); under TV2 every end bumps
//! the epoch (`prepare_abort_or_commit`), and at an exhausted epoch the end allocates the next
//! producer id, which the completion switches to (`prepare_complete`).

use std::collections::BTreeSet;

use super::transaction_log::{TopicPartitions, TransactionLogValue};
use crate::protocol::errors;

/// Kafka's RecordBatch.NO_PRODUCER_ID / NO_PRODUCER_EPOCH.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// `transaction.version` feature levels (Kafka's TransactionVersion): TV_0, the original protocol,
/// and TV_2, the epoch bump on every end (TransactionVersion.supportsEpochBump).
pub const TV_0: i16 = 0;
pub const TV_2: i16 = 2;

/// TransactionVersion.supportsEpochBump.
pub fn supports_epoch_bump(transaction_version: i16) -> bool {
    transaction_version >= TV_2
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    /// No transaction yet, or the producer was (re)initialized.
    Empty,
    /// Partitions were added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) was written; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a fence or a timeout was written; markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// The transactional id expired and is being removed.
    Dead,
    /// The epoch is being bumped to fence a producer before its transaction is aborted.
    PrepareEpochFence,
}

use TransactionState::*;

impl TransactionState {
    const ALL: [TransactionState; 8] = [
        Empty,
        Ongoing,
        PrepareCommit,
        PrepareAbort,
        CompleteCommit,
        CompleteAbort,
        Dead,
        PrepareEpochFence,
    ];

    /// The id stored in TransactionLogValue.TransactionStatus.
    pub fn id(self) -> i8 {
        match self {
            Empty => 0,
            Ongoing => 1,
            PrepareCommit => 2,
            PrepareAbort => 3,
            CompleteCommit => 4,
            CompleteAbort => 5,
            Dead => 6,
            PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TransactionState> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name DescribeTransactions and ListTransactions show (and filter by).
    pub fn name(self) -> &'static str {
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TransactionState> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The states this one may be entered from (Kafka's validPreviousStates).
    pub fn valid_previous_states(self) -> &'static [TransactionState] {
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            // TV2 aborts a transaction with no partitions too (KIP-890 part 2).
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether an idle transactional id in this state may expire (transactional.id.expiration.ms).
    pub fn is_expiration_allowed(self) -> bool {
        matches!(self, Empty | CompleteCommit | CompleteAbort)
    }
}

/// A transactional id's metadata (Kafka's TransactionMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last transition (Kafka's prevProducerId: every transition
    /// records the id it came from; it differs from `producer_id` right after a rotation).
    /// Written only by flexible values.
    pub previous_producer_id: i64,
    /// The producer id a TV2 end allocated because the epochs are exhausted; the completion
    /// switches to it with epoch 0. Written only by flexible values.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId, for KIP-360 retries; kept in memory only (as
    /// Kafka's lastProducerEpoch, which the v0 record does not hold), -1 after a load.
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TransactionState,
    pub topic_partitions: BTreeSet<(String, i32)>,
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
    /// The `transaction.version` of the request that last changed the transaction (Kafka's
    /// clientTransactionVersion): TV_2 once a TV2 client added partitions or ended it.
    pub client_transaction_version: i16,
}

/// Kafka does not hand out an epoch equal to i16::MAX, so that the coordinator can always fence
/// the current producer with a bump (TransactionMetadata.isEpochExhausted).
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl TransactionMetadata {
    /// The metadata a new transactional id starts from (Kafka creates it in the cache with the
    /// new producer id and no epoch; the first InitProducerId then bumps the epoch to 0).
    pub fn new(transactional_id: &str, producer_id: i64, txn_timeout_ms: i32, now: i64) -> Self {
        TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: Empty,
            topic_partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now,
            client_transaction_version: TV_0,
        }
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// Ongoing, PrepareCommit or PrepareAbort: markers are (or will be) owed to partitions.
    pub fn has_pending_transaction(&self) -> bool {
        matches!(self.state, Ongoing | PrepareAbort | PrepareCommit)
    }

    /// A copy in `to`, if `to` may follow the current state; Kafka throws IllegalStateException
    /// otherwise, which a client sees as UNKNOWN_SERVER_ERROR.
    fn transition_to(&self, to: TransactionState, now: i64) -> Result<Self, i16> {
        if !to.valid_previous_states().contains(&self.state) {
            tracing::error!(transactional_id = %self.transactional_id, from = ?self.state, ?to,
                "illegal transaction state transition");
            return Err(errors::UNKNOWN_SERVER_ERROR);
        }
        let mut next = self.clone();
        next.state = to;
        next.txn_last_update_timestamp = now;
        // TransactionMetadata.prepareTransitionTo: the transit's prevProducerId is the id the
        // transaction had before it.
        next.previous_producer_id = self.producer_id;
        Ok(next)
    }

    /// InitProducerId on an idle transactional id: the next epoch, or the current one for a
    /// KIP-360 retry of a bump that succeeded, or PRODUCER_FENCED for a producer whose epoch
    /// is neither (prepareIncrementProducerEpoch).
    pub fn prepare_increment_producer_epoch(
        &self,
        txn_timeout_ms: i32,
        expected_epoch: Option<i16>,
        now: i64,
    ) -> Result<Self, i16> {
        if self.is_producer_epoch_exhausted() {
            tracing::error!(transactional_id = %self.transactional_id, "producer epochs exhausted");
            return Err(errors::UNKNOWN_SERVER_ERROR);
        }
        let bumped = self.producer_epoch + 1;
        let (epoch, last_epoch) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                (bumped, self.producer_epoch)
            }
            Some(e) if e == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(errors::PRODUCER_FENCED),
        };
        let mut next = self.transition_to(Empty, now)?;
        next.producer_epoch = epoch;
        next.last_producer_epoch = last_epoch;
        next.txn_timeout_ms = txn_timeout_ms;
        next.topic_partitions.clear();
        next.txn_start_timestamp = -1;
        Ok(next)
    }

    /// A new producer id with epoch 0 once the epochs of the current one are exhausted
    /// (prepareProducerIdRotation).
    pub fn prepare_producer_id_rotation(
        &self,
        new_producer_id: i64,
        txn_timeout_ms: i32,
        now: i64,
        record_last_epoch: bool,
    ) -> Result<Self, i16> {
        if self.has_pending_transaction() {
            tracing::error!(transactional_id = %self.transactional_id,
                "cannot rotate producer ids while a transaction is pending");
            return Err(errors::UNKNOWN_SERVER_ERROR);
        }
        let mut next = self.transition_to(Empty, now)?;
        next.producer_id = new_producer_id;
        next.producer_epoch = 0;
        next.last_producer_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        next.txn_timeout_ms = txn_timeout_ms;
        next.topic_partitions.clear();
        next.txn_start_timestamp = -1;
        Ok(next)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn / a TV2 implicit add: the transaction starts (or
    /// goes on) with these partitions too, under the request's transaction version
    /// (prepareAddPartitions).
    pub fn prepare_add_partitions(
        &self,
        added: impl IntoIterator<Item = (String, i32)>,
        transaction_version: i16,
        now: i64,
    ) -> Result<Self, i16> {
        let mut next = self.transition_to(Ongoing, now)?;
        if matches!(self.state, Empty | CompleteAbort | CompleteCommit) {
            next.txn_start_timestamp = now;
        }
        next.topic_partitions.extend(added);
        next.client_transaction_version = transaction_version;
        Ok(next)
    }

    /// EndTxn (or the coordinator's own abort): PrepareCommit or PrepareAbort with the same
    /// partitions (prepareAbortOrCommit). TV1 keeps the epoch; TV2 bumps it (not past i16::MAX)
    /// and remembers the old one as the last epoch, records `next_producer_id` (allocated when
    /// the epochs are exhausted, else NO_PRODUCER_ID), and, for an abort of a transaction that
    /// added no partition, starts the transaction now.
    pub fn prepare_abort_or_commit(
        &self,
        commit: bool,
        transaction_version: i16,
        next_producer_id: i64,
        now: i64,
        no_partition_added: bool,
    ) -> Result<Self, i16> {
        let mut next =
            self.transition_to(if commit { PrepareCommit } else { PrepareAbort }, now)?;
        if supports_epoch_bump(transaction_version) {
            if self.producer_epoch == i16::MAX && !commit {
                tracing::error!(transactional_id = %self.transactional_id,
                    "aborting a producer whose epoch is i16::MAX");
            } else {
                next.producer_epoch = self.producer_epoch.saturating_add(1);
            }
            next.last_producer_epoch = self.producer_epoch;
        }
        if no_partition_added {
            next.txn_start_timestamp = now;
        }
        next.next_producer_id = next_producer_id;
        next.client_transaction_version = transaction_version;
        Ok(next)
    }

    /// Every partition has its marker: CompleteCommit or CompleteAbort, no partitions
    /// (prepareComplete). A TV2 end that allocated the next producer id switches to it, with
    /// epoch 0.
    pub fn prepare_complete(&self, now: i64) -> Result<Self, i16> {
        let to = if self.state == PrepareCommit {
            CompleteCommit
        } else {
            CompleteAbort
        };
        let mut next = self.transition_to(to, now)?;
        if supports_epoch_bump(self.client_transaction_version)
            && self.next_producer_id != NO_PRODUCER_ID
        {
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
        }
        next.next_producer_id = NO_PRODUCER_ID;
        next.topic_partitions.clear();
        Ok(next)
    }

    /// The producer id and epoch the transaction will have once its markers are written: what
    /// EndTxn v5 answers (the completion's, TransactionCoordinator's newPreSendMetadata).
    pub fn completed_producer(&self) -> (i64, i16) {
        if supports_epoch_bump(self.client_transaction_version)
            && self.next_producer_id != NO_PRODUCER_ID
        {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }

    /// The transactional id expired; it is removed with a tombstone (prepareDead).
    pub fn prepare_dead(&self) -> Result<Self, i16> {
        let mut next = self.transition_to(Dead, self.txn_last_update_timestamp)?;
        next.topic_partitions.clear();
        Ok(next)
    }

    /// The record value of this metadata (TransactionLog.valueToBytes: an Empty transaction
    /// has null partitions, the others theirs grouped by topic).
    pub fn to_log_value(&self) -> TransactionLogValue {
        let partitions = (self.state != Empty).then(|| {
            let mut topics: Vec<TopicPartitions> = Vec::new();
            for (topic, partition) in &self.topic_partitions {
                match topics.last_mut() {
                    Some(t) if &t.topic == topic => t.partition_ids.push(*partition),
                    _ => topics.push(TopicPartitions {
                        topic: topic.clone(),
                        partition_ids: vec![*partition],
                    }),
                }
            }
            topics
        });
        TransactionLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.txn_timeout_ms,
            transaction_status: self.state.id(),
            transaction_partitions: partitions,
            last_update_timestamp_ms: self.txn_last_update_timestamp,
            start_timestamp_ms: self.txn_start_timestamp,
            client_transaction_version: self.client_transaction_version,
        }
    }

    /// The metadata a record describes (TransactionLog.readTxnRecordValue); None for an unknown
    /// state id. The in-memory last epoch is unknown after a load.
    pub fn from_log_value(transactional_id: &str, v: &TransactionLogValue) -> Option<Self> {
        let state = TransactionState::from_id(v.transaction_status)?;
        let topic_partitions = match (state, &v.transaction_partitions) {
            (Empty, _) | (_, None) => BTreeSet::new(),
            (_, Some(topics)) => topics
                .iter()
                .flat_map(|t| t.partition_ids.iter().map(|p| (t.topic.clone(), *p)))
                .collect(),
        };
        Some(TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: v.transaction_timeout_ms,
            state,
            topic_partitions,
            txn_start_timestamp: v.start_timestamp_ms,
            txn_last_update_timestamp: v.last_update_timestamp_ms,
            client_transaction_version: v.client_transaction_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    fn initialized() -> TransactionMetadata {
        TransactionMetadata::new("tx", 5, 60_000, 0)
            .prepare_increment_producer_epoch(60_000, None, 1)
            .unwrap()
    }

    #[test]
    fn the_allowed_transitions_are_kafkas() {
        // TransactionState.validPreviousStates, state by state.
        for to in TransactionState::ALL {
            for from in TransactionState::ALL {
                let allowed = to.valid_previous_states().contains(&from);
                let mut m = initialized();
                m.state = from;
                assert_eq!(
                    m.transition_to(to, 9).is_ok(),
                    allowed,
                    "{from:?} -> {to:?}"
                );
            }
        }
        assert_eq!(
            PrepareAbort.valid_previous_states(),
            &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort
            ]
        );
        assert!(!CompleteCommit.valid_previous_states().contains(&Ongoing));
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::from_id(s.id()), Some(s));
            assert_eq!(TransactionState::from_name(s.name()), Some(s));
        }
        assert_eq!(TransactionState::from_id(8), None);
    }

    /// A TV1 end: PrepareCommit / PrepareAbort, no next producer id.
    fn end_v1(m: &TransactionMetadata, commit: bool, now: i64) -> Result<TransactionMetadata, i16> {
        m.prepare_abort_or_commit(commit, TV_0, NO_PRODUCER_ID, now, false)
    }

    #[test]
    fn a_transaction_goes_through_its_states() {
        let m = initialized();
        assert_eq!(
            (m.state, m.producer_epoch, m.last_producer_epoch),
            (Empty, 0, -1)
        );
        let on = m.prepare_add_partitions([tp("a", 0)], TV_0, 10).unwrap();
        assert_eq!((on.state, on.txn_start_timestamp), (Ongoing, 10));
        let on = on.prepare_add_partitions([tp("b", 1)], TV_0, 20).unwrap();
        assert_eq!(on.txn_start_timestamp, 10, "adding more keeps the start");
        assert_eq!(on.topic_partitions.len(), 2);
        let prep = end_v1(&on, true, 30).unwrap();
        assert_eq!(
            (prep.state, prep.producer_epoch),
            (PrepareCommit, 0),
            "TV1 keeps the epoch"
        );
        assert_eq!(prep.topic_partitions, on.topic_partitions);
        assert_eq!(prep.completed_producer(), (5, 0));
        let done = prep.prepare_complete(40).unwrap();
        assert_eq!(done.state, CompleteCommit);
        assert!(done.topic_partitions.is_empty());
        // The next transaction starts afresh.
        let next = done.prepare_add_partitions([tp("a", 0)], TV_0, 50).unwrap();
        assert_eq!(next.txn_start_timestamp, 50);
        // Completion without a prepare, and a commit from Empty, are refused.
        assert!(on.prepare_complete(60).is_err());
        assert!(end_v1(&m, true, 60).is_err());
        assert!(
            on.prepare_dead().is_err(),
            "an open transaction never expires"
        );
        assert_eq!(done.prepare_dead().unwrap().state, Dead);
    }

    #[test]
    fn a_tv2_end_bumps_the_epoch_and_records_the_version() {
        // prepareAbortOrCommit under TV2: epoch + 1, the old one as the last epoch, the
        // client's transaction version recorded; the completion keeps the bumped epoch.
        let on = initialized()
            .prepare_add_partitions([tp("a", 0)], TV_2, 10)
            .unwrap();
        assert_eq!(on.client_transaction_version, TV_2);
        let prep = on
            .prepare_abort_or_commit(true, TV_2, NO_PRODUCER_ID, 20, false)
            .unwrap();
        assert_eq!(
            (prep.state, prep.producer_epoch, prep.last_producer_epoch),
            (PrepareCommit, 1, 0)
        );
        assert_eq!(prep.txn_start_timestamp, 10);
        assert_eq!(prep.completed_producer(), (5, 1));
        let done = prep.prepare_complete(30).unwrap();
        assert_eq!(
            (done.state, done.producer_id, done.producer_epoch),
            (CompleteCommit, 5, 1)
        );
        assert_eq!(
            done.previous_producer_id, 5,
            "every transit records the id it left"
        );
        // An abort with no transaction open: allowed from Empty and Complete*, starts now.
        let empty_abort = done
            .prepare_abort_or_commit(false, TV_2, NO_PRODUCER_ID, 40, true)
            .unwrap();
        assert_eq!(
            (
                empty_abort.state,
                empty_abort.producer_epoch,
                empty_abort.txn_start_timestamp
            ),
            (PrepareAbort, 2, 40)
        );
        assert!(empty_abort.topic_partitions.is_empty());
        assert!(initialized()
            .prepare_abort_or_commit(false, TV_2, NO_PRODUCER_ID, 40, true)
            .is_ok());
        // A commit of nothing is no transition.
        assert!(done
            .prepare_abort_or_commit(true, TV_2, NO_PRODUCER_ID, 40, true)
            .is_err());
    }

    #[test]
    fn a_tv2_end_at_exhausted_epochs_rotates_the_producer_id() {
        // The end at epoch i16::MAX - 1 writes its markers with i16::MAX and allocates the next
        // producer id; the completion moves to it with epoch 0, and remembers the old id.
        let mut on = initialized()
            .prepare_add_partitions([tp("a", 0)], TV_2, 10)
            .unwrap();
        on.producer_epoch = i16::MAX - 1;
        assert!(on.is_producer_epoch_exhausted());
        let prep = on
            .prepare_abort_or_commit(false, TV_2, 77, 20, false)
            .unwrap();
        assert_eq!((prep.producer_id, prep.producer_epoch), (5, i16::MAX));
        assert_eq!(prep.next_producer_id, 77);
        assert_eq!(prep.completed_producer(), (77, 0));
        let done = prep.prepare_complete(30).unwrap();
        assert_eq!(
            (done.producer_id, done.producer_epoch, done.next_producer_id),
            (77, 0, NO_PRODUCER_ID)
        );
        assert_eq!(done.previous_producer_id, 5);
        assert_eq!(done.last_producer_epoch, i16::MAX - 1);
        // An abort never bumps past i16::MAX.
        let mut max = on.clone();
        max.producer_epoch = i16::MAX;
        let aborted = max
            .prepare_abort_or_commit(false, TV_2, 78, 20, false)
            .unwrap();
        assert_eq!(aborted.producer_epoch, i16::MAX);
        // Under TV1 a next producer id is never switched to.
        let mut tv1 = prep.clone();
        tv1.client_transaction_version = TV_0;
        assert_eq!(tv1.prepare_complete(30).unwrap().producer_id, 5);
    }

    #[test]
    fn init_producer_id_epochs_follow_kip_360() {
        // prepareIncrementProducerEpoch: no expected epoch bumps and forgets the last one; the
        // current epoch bumps and remembers it; the last epoch is a retry (no bump); any other
        // is fenced.
        let m = initialized()
            .prepare_increment_producer_epoch(1_000, None, 2)
            .unwrap();
        assert_eq!(
            (m.producer_epoch, m.last_producer_epoch, m.txn_timeout_ms),
            (1, -1, 1_000)
        );
        let m = m
            .prepare_increment_producer_epoch(1_000, Some(1), 3)
            .unwrap();
        assert_eq!((m.producer_epoch, m.last_producer_epoch), (2, 1));
        let retry = m
            .prepare_increment_producer_epoch(1_000, Some(1), 4)
            .unwrap();
        assert_eq!((retry.producer_epoch, retry.last_producer_epoch), (2, 1));
        assert_eq!(
            m.prepare_increment_producer_epoch(1_000, Some(0), 4),
            Err(errors::PRODUCER_FENCED)
        );
        let fresh = TransactionMetadata::new("tx", 9, 1, 0);
        let r = fresh
            .prepare_increment_producer_epoch(1, Some(7), 1)
            .unwrap();
        assert_eq!(r.producer_epoch, 0, "a new id accepts any expected epoch");
        let mut spent = m.clone();
        spent.producer_epoch = i16::MAX - 1;
        assert!(spent.is_producer_epoch_exhausted());
        let rotated = spent.prepare_producer_id_rotation(77, 1, 5, true).unwrap();
        assert_eq!((rotated.producer_id, rotated.producer_epoch), (77, 0));
        assert_eq!(rotated.last_producer_epoch, i16::MAX - 1);
        assert_eq!(rotated.previous_producer_id, m.producer_id);
    }

    #[test]
    fn log_values_round_trip() {
        let on = initialized()
            .prepare_add_partitions([tp("b", 1), tp("a", 2), tp("a", 0)], TV_2, 10)
            .unwrap();
        let v = on.to_log_value();
        let parts = v.transaction_partitions.clone().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].partition_ids, vec![0, 2]);
        let back = TransactionMetadata::from_log_value("tx", &v).unwrap();
        assert_eq!(back, on);
        // The TV2 fields travel through the record (TransactionLogValue's tagged fields).
        let mut rotating = on
            .prepare_abort_or_commit(true, TV_2, 77, 20, false)
            .unwrap();
        rotating.last_producer_epoch = NO_PRODUCER_EPOCH; // in memory only
        let bytes = crate::txn::transaction_log::value(&rotating.to_log_value());
        let read = crate::txn::transaction_log::decode(&[0, 0, 0, 2, b't', b'x'], Some(&bytes))
            .unwrap()
            .value
            .unwrap();
        let back = TransactionMetadata::from_log_value("tx", &read).unwrap();
        assert_eq!(back, rotating);
        assert_eq!(
            (
                back.next_producer_id,
                back.previous_producer_id,
                back.client_transaction_version
            ),
            (77, 5, TV_2)
        );
        assert_eq!(initialized().to_log_value().transaction_partitions, None);
    }
}
