//! A transactional id's state machine (Kafka's TransactionState and TransactionMetadata).
//!
//! The `prepare_*` functions compute the metadata a transition leads to, after checking that the
//! transition is allowed from the current state (Kafka's `validPreviousStates`); they never
//! change the current metadata. The coordinator writes the result as a `__transaction_state`
//! record, and the shard's replay of that record is what changes the state (see `shard`).
//!
//! Kafka's `pendingState` has no equivalent: an operation and its write run under the shard's
//! lock, so no other request sees a transition half-done. PrepareEpochFence is still a state a
//! transition passes through (InitProducerId or a timeout fencing an ongoing transaction bumps
//! the epoch, then aborts), but it is never written, as in Kafka.

use std::collections::BTreeSet;

use super::transaction_log::{TopicPartitions, TransactionLogValue};
use crate::protocol::errors;

/// Kafka's RecordBatch.NO_PRODUCER_ID / NO_PRODUCER_EPOCH.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

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
            PrepareAbort => &[Ongoing, PrepareEpochFence],
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
    /// The producer id before the last rotation (written only by flexible values).
    pub previous_producer_id: i64,
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
        Ok(next)
    }

    /// Bumps the epoch so that the current producer is fenced, before its transaction is
    /// aborted (prepareFenceProducerEpoch). The last-update time is unchanged.
    pub fn prepare_fence_producer_epoch(&self) -> Result<Self, i16> {
        if self.producer_epoch == i16::MAX {
            tracing::error!(transactional_id = %self.transactional_id,
                "cannot fence a producer whose epoch is i16::MAX");
            return Err(errors::UNKNOWN_SERVER_ERROR);
        }
        let mut next = self.transition_to(PrepareEpochFence, self.txn_last_update_timestamp)?;
        next.producer_epoch = self.producer_epoch + 1;
        next.last_producer_epoch = NO_PRODUCER_EPOCH;
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
        next.previous_producer_id = self.producer_id;
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

    /// AddPartitionsToTxn / AddOffsetsToTxn: the transaction starts (or goes on) with these
    /// partitions too (prepareAddPartitions).
    pub fn prepare_add_partitions(
        &self,
        added: impl IntoIterator<Item = (String, i32)>,
        now: i64,
    ) -> Result<Self, i16> {
        let mut next = self.transition_to(Ongoing, now)?;
        if matches!(self.state, Empty | CompleteAbort | CompleteCommit) {
            next.txn_start_timestamp = now;
        }
        next.topic_partitions.extend(added);
        Ok(next)
    }

    /// EndTxn: PrepareCommit or PrepareAbort with the same partitions (prepareAbortOrCommit;
    /// TV1 keeps the epoch).
    pub fn prepare_abort_or_commit(&self, commit: bool, now: i64) -> Result<Self, i16> {
        self.transition_to(if commit { PrepareCommit } else { PrepareAbort }, now)
    }

    /// Every partition has its marker: CompleteCommit or CompleteAbort, no partitions
    /// (prepareComplete).
    pub fn prepare_complete(&self, now: i64) -> Result<Self, i16> {
        let to = if self.state == PrepareCommit {
            CompleteCommit
        } else {
            CompleteAbort
        };
        let mut next = self.transition_to(to, now)?;
        next.topic_partitions.clear();
        Ok(next)
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
            client_transaction_version: 0,
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
            &[Ongoing, PrepareEpochFence]
        );
        assert!(!CompleteCommit.valid_previous_states().contains(&Ongoing));
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::from_id(s.id()), Some(s));
            assert_eq!(TransactionState::from_name(s.name()), Some(s));
        }
        assert_eq!(TransactionState::from_id(8), None);
    }

    #[test]
    fn a_transaction_goes_through_its_states() {
        let m = initialized();
        assert_eq!(
            (m.state, m.producer_epoch, m.last_producer_epoch),
            (Empty, 0, -1)
        );
        let on = m.prepare_add_partitions([tp("a", 0)], 10).unwrap();
        assert_eq!((on.state, on.txn_start_timestamp), (Ongoing, 10));
        let on = on.prepare_add_partitions([tp("b", 1)], 20).unwrap();
        assert_eq!(on.txn_start_timestamp, 10, "adding more keeps the start");
        assert_eq!(on.topic_partitions.len(), 2);
        let prep = on.prepare_abort_or_commit(true, 30).unwrap();
        assert_eq!(
            (prep.state, prep.producer_epoch),
            (PrepareCommit, 0),
            "TV1 keeps the epoch"
        );
        assert_eq!(prep.topic_partitions, on.topic_partitions);
        let done = prep.prepare_complete(40).unwrap();
        assert_eq!(done.state, CompleteCommit);
        assert!(done.topic_partitions.is_empty());
        // The next transaction starts afresh.
        let next = done.prepare_add_partitions([tp("a", 0)], 50).unwrap();
        assert_eq!(next.txn_start_timestamp, 50);
        // Completion without a prepare, and a commit from Empty, are refused.
        assert!(on.prepare_complete(60).is_err());
        assert!(m.prepare_abort_or_commit(true, 60).is_err());
        assert!(
            on.prepare_dead().is_err(),
            "an open transaction never expires"
        );
        assert_eq!(done.prepare_dead().unwrap().state, Dead);
    }

    #[test]
    fn fencing_bumps_the_epoch_then_aborts() {
        let on = initialized()
            .prepare_add_partitions([tp("a", 0)], 10)
            .unwrap();
        let fenced = on.prepare_fence_producer_epoch().unwrap();
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (PrepareEpochFence, 1)
        );
        assert_eq!(fenced.txn_last_update_timestamp, 10);
        let abort = fenced.prepare_abort_or_commit(false, 20).unwrap();
        assert_eq!((abort.state, abort.producer_epoch), (PrepareAbort, 1));
        assert!(
            fenced.prepare_abort_or_commit(true, 20).is_err(),
            "a fence only aborts"
        );
        let mut max = on.clone();
        max.producer_epoch = i16::MAX;
        assert!(max.prepare_fence_producer_epoch().is_err());
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
            .prepare_add_partitions([tp("b", 1), tp("a", 2), tp("a", 0)], 10)
            .unwrap();
        let v = on.to_log_value();
        let parts = v.transaction_partitions.clone().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].partition_ids, vec![0, 2]);
        let back = TransactionMetadata::from_log_value("tx", &v).unwrap();
        assert_eq!(back, on);
        assert_eq!(initialized().to_log_value().transaction_partitions, None);
    }
}
