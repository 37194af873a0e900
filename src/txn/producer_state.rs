//! Idempotent-producer state of one partition: for each producer id its epoch and the metadata of
//! its last five batches (Kafka's ProducerStateEntry, NUM_BATCHES_TO_RETAIN = 5), used to reject
//! out-of-order and fenced writes and to answer a retried batch with its original offset instead of
//! appending it twice; and its transactions (Kafka's ProducerStateManager): the first offset of
//! its ongoing transaction, which a marker ends, and the coordinator epoch of its last marker.
//! The oldest ongoing transaction bounds the last stable offset.
//!
//! A client's transactional batch that would start a transaction here needs a verification guard
//! (Kafka's VerificationGuard, KIP-890 part 1): Produce takes one from the table before it asks
//! the transaction coordinator whether the partition is in the producer's ongoing transaction,
//! and appends with it; any transactional batch or marker of the producer clears it. So a batch
//! verified before an abort marker but appended after it is refused, instead of opening a
//! transaction on the partition that no coordinator will ever end (a hanging transaction).
//!
//! The state is rebuilt from batch headers at start-up (and saved at clean shutdown, see
//! `partition.rs`), so duplicate detection survives restarts and crashes.
//!
//! Snapshot file format (`producer-state.gregor` in the partition directory), big-endian:
//! `version int16 = 2 | covers_up_to_offset int64 | entry_count int32 | entries`, each entry
//! `producer_id int64 | epoch int16 | coordinator_epoch int32 | last_timestamp int64 |
//! current_txn_first_offset int64 (-1: none) | batch_count int8 | batches` (version 1 has no
//! coordinator epoch, last timestamp or transaction), each batch
//! `first_seq int32 | last_seq int32 | first_offset int64 | last_offset int64 | timestamp int64`,
//! followed by a CRC-32C of everything before it (uint32).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::log::batch::{increment_sequence, BatchHeader, NO_TIMESTAMP};
use crate::log::AppendOrigin;
use crate::txn::TxnMarker;

pub const BATCHES_TO_RETAIN: usize = 5;

/// The snapshot format written; version 1 (before transactions) still loads.
const SNAPSHOT_VERSION: i16 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// RecordBatch.NO_PRODUCER_EPOCH: the epoch of a producer the partition has no batch of.
const NO_PRODUCER_EPOCH: i16 = -1;

/// A token of one transaction verification of one producer in one partition (Kafka's
/// VerificationGuard): unique in the process, so a verification that an abort marker overtook
/// cannot be mistaken for a later one (the ABA case: verified, aborted, a new transaction begun
/// elsewhere, the stale batch appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationGuard(u64);

impl VerificationGuard {
    /// VerificationGuard.SENTINEL: no verification; it verifies nothing.
    pub const SENTINEL: VerificationGuard = VerificationGuard(0);

    fn new() -> VerificationGuard {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        VerificationGuard(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// VerificationGuard.verify: `presented` is this (real) guard.
    fn verify(self, presented: VerificationGuard) -> bool {
        presented != Self::SENTINEL && presented == self
    }
}

/// A verification in flight (Kafka's VerificationStateEntry): its guard, and when it began, for
/// expiry with the producers.
#[derive(Debug, Clone, Copy)]
struct VerificationEntry {
    guard: VerificationGuard,
    timestamp: i64,
}

/// One producer's state (Kafka's ProducerStateEntry).
#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// The coordinator epoch of the producer's last transaction marker (-1 before any): a marker
    /// from an older coordinator epoch is fenced.
    coordinator_epoch: i32,
    /// The timestamp of the producer's last batch or marker, which idle expiry judges by.
    last_timestamp: i64,
    /// The first offset of the producer's ongoing transaction: of its first transactional batch
    /// since its last marker.
    current_txn_first_offset: Option<i64>,
}

impl Default for ProducerEntry {
    /// ProducerStateEntry.empty.
    fn default() -> Self {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            last_timestamp: NO_TIMESTAMP,
            current_txn_first_offset: None,
        }
    }
}

impl ProducerEntry {
    /// A new epoch forgets the batches of the old one (ProducerStateEntry.maybeUpdateProducerEpoch).
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// A transaction a marker ended (Kafka's CompletedTxn): `first_offset` of its first batch in this
/// partition, `last_offset` the marker's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

/// The verdict on a produced batch from an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already in the log: answer success with the original batch's offsets.
    Duplicate(BatchMetadata),
    /// INVALID_PRODUCER_EPOCH (47): an older epoch than the partition has seen.
    InvalidProducerEpoch,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    OutOfOrderSequence,
    /// INVALID_TXN_STATE (48): a non-transactional batch while the producer's transaction is
    /// ongoing (ProducerAppendInfo.appendDataBatch), or a client's transactional batch that
    /// would start a transaction without the guard of its verification (UnifiedLog
    /// .analyzeAndValidateProducerState: "Record was not part of an ongoing transaction").
    InvalidTxnState,
    /// TRANSACTION_COORDINATOR_FENCED (52): a marker from an older coordinator epoch than the
    /// producer's last marker (ProducerAppendInfo.checkCoordinatorEpoch).
    CoordinatorFenced,
}

/// A producer's state as DescribeProducers shows it (Kafka's ReplicaManager.activeProducerState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The last sequence of its last batch; -1 without one.
    pub last_sequence: i32,
    /// Of its last batch or marker; -1 without one.
    pub last_timestamp: i64,
    /// Of its last marker; -1 before any.
    pub coordinator_epoch: i32,
    /// The first offset of its ongoing transaction; -1 without one.
    pub current_txn_start_offset: i64,
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// The ongoing transactions: first offset → producer id (Kafka's ongoingTxns), so that the
    /// first unstable offset is the first key.
    ongoing: BTreeMap<i64, i64>,
    /// Transaction verifications in flight, by producer id (Kafka's verificationStates). Not
    /// in the snapshot: a verification does not outlive the process that began it.
    verifications: HashMap<i64, VerificationEntry>,
}

impl ProducerStateTable {
    /// Kafka's checks of a data batch in the order of UnifiedLog.analyzeAndValidateProducerState
    /// and ProducerAppendInfo.appendDataBatch: the duplicate lookup, then the epoch, then (only
    /// for client batches: a coordinator's transactional writes carry no sequence) the
    /// sequence, then the transaction state. A producer with no state may start anywhere.
    pub fn check(&self, h: &BatchHeader, origin: AppendOrigin) -> SequenceCheck {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return self.check_verification(h, origin);
        };
        let client = matches!(origin, AppendOrigin::Client { .. });
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::InvalidProducerEpoch;
        }
        if client {
            if let Some(verdict) = Self::check_sequence(entry, h) {
                return verdict;
            }
        }
        if entry.current_txn_first_offset.is_some() && !h.is_transactional() {
            return SequenceCheck::InvalidTxnState;
        }
        self.check_verification(h, origin)
    }

    /// A client's transactional batch outside an ongoing transaction of its producer must
    /// present the guard of a verification still in flight (UnifiedLog
    /// .batchMissingRequiredVerification); markers and a coordinator's own writes need none.
    fn check_verification(&self, h: &BatchHeader, origin: AppendOrigin) -> SequenceCheck {
        let AppendOrigin::Client {
            verification_guard, ..
        } = origin
        else {
            return SequenceCheck::Append;
        };
        if !h.is_transactional() || h.is_control() || self.has_ongoing_transaction(h.producer_id) {
            return SequenceCheck::Append;
        }
        let stored = self
            .verifications
            .get(&h.producer_id)
            .map_or(VerificationGuard::SENTINEL, |v| v.guard);
        match stored.verify(verification_guard) {
            true => SequenceCheck::Append,
            false => SequenceCheck::InvalidTxnState,
        }
    }

    /// UnifiedLog.hasOngoingTransaction.
    fn has_ongoing_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    /// UnifiedLog.maybeStartTransactionVerification: before Produce asks the coordinator whether
    /// a transactional batch belongs to an ongoing transaction. A producer already inside a
    /// transaction here needs no guard (SENTINEL: the marker that ends it makes the append fail);
    /// otherwise the guard of its verification in flight, begun now if there is none.
    pub fn maybe_start_verification(&mut self, producer_id: i64, now_ms: i64) -> VerificationGuard {
        if self.has_ongoing_transaction(producer_id) {
            return VerificationGuard::SENTINEL;
        }
        self.verifications
            .entry(producer_id)
            .or_insert_with(|| VerificationEntry {
                guard: VerificationGuard::new(),
                timestamp: now_ms,
            })
            .guard
    }

    /// ProducerStateEntry.findDuplicateBatch and ProducerAppendInfo.checkSequence.
    fn check_sequence(entry: &ProducerEntry, h: &BatchHeader) -> Option<SequenceCheck> {
        if h.producer_epoch != entry.epoch {
            return (h.base_sequence != 0).then_some(SequenceCheck::OutOfOrderSequence);
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Some(SequenceCheck::Duplicate(*dup));
        }
        // An entry without batches (its epoch came with a marker) expects sequence 0.
        let expected = entry
            .batches
            .back()
            .map_or(0, |last| increment_sequence(last.last_seq, 1));
        (expected != h.base_sequence).then_some(SequenceCheck::OutOfOrderSequence)
    }

    /// Kafka's checks of a transaction marker (ProducerAppendInfo.appendEndTxnMarker): an older
    /// producer epoch is INVALID_PRODUCER_EPOCH, an older coordinator epoch is fenced.
    pub fn check_marker(&self, marker: &TxnMarker) -> SequenceCheck {
        let Some(entry) = self.producers.get(&marker.producer_id) else {
            return SequenceCheck::Append;
        };
        if marker.producer_epoch < entry.epoch {
            SequenceCheck::InvalidProducerEpoch
        } else if marker.coordinator_epoch < entry.coordinator_epoch {
            SequenceCheck::CoordinatorFenced
        } else {
            SequenceCheck::Append
        }
    }

    /// Records an appended (or replayed) marker at `offset`: the producer's ongoing transaction,
    /// if it had one, is complete (ProducerAppendInfo.appendEndTxnMarker: a marker of a producer
    /// without data in the partition completes nothing).
    pub fn record_marker(
        &mut self,
        marker: &TxnMarker,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        // A marker ends the transaction a verification in flight was about: its batch, appended
        // after the marker, must not open a new one (UnifiedLog.updateProducers).
        self.verifications.remove(&marker.producer_id);
        let entry = self.producers.entry(marker.producer_id).or_default();
        let completed = entry.current_txn_first_offset.take().map(|first_offset| {
            self.ongoing.remove(&first_offset);
            CompletedTxn {
                producer_id: marker.producer_id,
                first_offset,
                last_offset: offset,
                aborted: !marker.commit,
            }
        });
        entry.set_epoch(marker.producer_epoch);
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = timestamp;
        completed
    }

    /// Records an appended (or, at recovery, replayed) data batch of an idempotent or
    /// transactional producer; its first transactional batch since a marker starts a transaction.
    pub fn record(&mut self, h: &BatchHeader, timestamp: i64) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        entry.set_epoch(h.producer_epoch);
        entry.last_timestamp = timestamp;
        if h.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
        if h.is_transactional() {
            // The transaction is ongoing here now, which guards the next batches.
            self.verifications.remove(&h.producer_id);
        }
        if entry.batches.len() == BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp,
        });
    }

    /// Records an appended or replayed batch: a data batch (`record`), or a control batch with
    /// the marker it carries (`record_marker`; an empty control batch changes nothing). The one
    /// path for appends and for rebuilding the state from the log at start-up.
    pub fn update(&mut self, h: &BatchHeader, marker: Option<&TxnMarker>) -> Option<CompletedTxn> {
        match marker {
            Some(m) => self.record_marker(m, h.base_offset, h.max_timestamp),
            None if h.is_control() => None,
            None => {
                self.record(h, h.max_timestamp);
                None
            }
        }
    }

    /// Forgets every producer whose last batch's (or marker's) timestamp is `expiration_ms` or more before
    /// `now_ms` (Kafka's ProducerStateManager.removeExpiredProducers, producer.id.expiration.ms):
    /// the state of producers that went away stops costing memory, and a batch from one of them
    /// later is taken as from a producer without state. Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        // Kafka's isProducerExpired: a producer inside a transaction is never expired, or its
        // transaction would be forgotten and the last stable offset would pass it.
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        if self.producers.capacity() > 2 * self.producers.len() + 64 {
            self.producers.shrink_to_fit();
        }
        // Verifications whose batch never came (ProducerStateManager.removeExpiredProducers).
        self.verifications
            .retain(|_, v| now_ms.saturating_sub(v.timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The first offset of the oldest ongoing transaction (Kafka's firstUnstableOffset): the
    /// last stable offset is this, or the high watermark when lower or without one.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Every producer's state, for DescribeProducers (Kafka's ProducerStateManager.activeProducers).
    pub fn active_producers(&self) -> Vec<ProducerInfo> {
        self.producers
            .iter()
            .map(|(&producer_id, e)| ProducerInfo {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Each producer's last batch: producer id → its last offset. Log compaction keeps these
    /// batches (empty if need be) so that the state can be rebuilt from the log.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, e)| e.batches.back().map(|b| (*id, b.last_offset)))
            .collect()
    }

    /// The highest producer id seen, so that new ids never reuse one.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }

    pub fn encode_snapshot(&self, covers_up_to: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.producers.len() * 64);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&covers_up_to.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (pid, e) in &self.producers {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot; `None` if it is damaged in any way (then the log is replayed instead).
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(ProducerStateTable, i64)> {
        let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = Reader(body);
        // Version 1 (before transactions) has no coordinator epoch, last timestamp or
        // transaction: its producers had none, and their last batch's timestamp stands in.
        let version = r.i16()?;
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return None;
        }
        let covers = r.i64()?;
        let count = r.i32()?;
        let mut table = ProducerStateTable::default();
        for _ in 0..count {
            let pid = r.i64()?;
            let mut entry = ProducerEntry {
                epoch: r.i16()?,
                ..ProducerEntry::default()
            };
            if version >= 2 {
                entry.coordinator_epoch = r.i32()?;
                entry.last_timestamp = r.i64()?;
                entry.current_txn_first_offset = Some(r.i64()?).filter(|&o| o >= 0);
                if let Some(first) = entry.current_txn_first_offset {
                    table.ongoing.insert(first, pid);
                }
            }
            let n = r.u8()?;
            for _ in 0..n {
                entry.batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            if version == 1 {
                entry.last_timestamp = entry.batches.back().map_or(NO_TIMESTAMP, |b| b.timestamp);
            }
            table.producers.insert(pid, entry);
        }
        r.0.is_empty().then_some((table, covers))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: AppendOrigin = AppendOrigin::TEST_CLIENT;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn new_producer_accepts_any_sequence() {
        let t = ProducerStateTable::default();
        assert_eq!(
            t.check(&header(1, 0, 42, 3, 0), CLIENT),
            SequenceCheck::Append
        );
    }

    #[test]
    fn in_order_duplicate_gap_and_fencing() {
        let mut t = ProducerStateTable::default();
        let first = header(1, 0, 0, 3, 0);
        t.record(&first, 10);
        assert_eq!(
            t.check(&header(1, 0, 3, 2, 0), CLIENT),
            SequenceCheck::Append
        );
        match t.check(&header(1, 0, 0, 3, 0), CLIENT) {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.check(&header(1, 0, 5, 1, 0), CLIENT),
            SequenceCheck::OutOfOrderSequence
        );
        // A bumped epoch must restart at 0; an older epoch is fenced.
        assert_eq!(
            t.check(&header(1, 1, 3, 1, 0), CLIENT),
            SequenceCheck::OutOfOrderSequence
        );
        assert_eq!(
            t.check(&header(1, 1, 0, 1, 0), CLIENT),
            SequenceCheck::Append
        );
        t.record(&header(1, 1, 0, 1, 3), 11);
        assert_eq!(
            t.check(&header(1, 0, 3, 1, 0), CLIENT),
            SequenceCheck::InvalidProducerEpoch
        );
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record(&header(9, 0, i, 1, i64::from(i)), 0);
        }
        assert_eq!(
            t.check(&header(9, 0, 1, 1, 0), CLIENT),
            SequenceCheck::OutOfOrderSequence
        );
        assert!(matches!(
            t.check(&header(9, 0, 2, 1, 0), CLIENT),
            SequenceCheck::Duplicate(_)
        ));
    }

    #[test]
    fn idle_producers_expire() {
        // Kafka's isProducerExpired: currentTimeMs - lastTimestamp >= producer.id.expiration.ms,
        // judged by the producer's last batch (issue 11, item 13).
        let mut t = ProducerStateTable::default();
        t.record(&header(1, 0, 0, 1, 0), 1_000);
        t.record(&header(2, 0, 0, 1, 1), 1_000);
        t.record(&header(2, 0, 1, 1, 2), 5_000);
        assert_eq!(t.remove_expired(10_999, 10_000), 0);
        assert_eq!(t.remove_expired(11_000, 10_000), 1);
        assert_eq!(t.len(), 1);
        // The forgotten producer may start again anywhere; the other keeps its checks.
        assert_eq!(
            t.check(&header(1, 0, 7, 1, 0), CLIENT),
            SequenceCheck::Append
        );
        assert_eq!(
            t.check(&header(2, 0, 7, 1, 0), CLIENT),
            SequenceCheck::OutOfOrderSequence
        );
        assert_eq!(t.remove_expired(15_000, 10_000), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let mut t = ProducerStateTable::default();
        t.record(&header(5, 2, 10, 4, 100), 77);
        t.record(&header(6, 0, 0, 1, 104), 78);
        let snap = t.encode_snapshot(105);
        let (back, covers) = ProducerStateTable::decode_snapshot(&snap).unwrap();
        assert_eq!(covers, 105);
        assert_eq!(back.len(), 2);
        assert!(matches!(
            back.check(&header(5, 2, 10, 4, 0), CLIENT),
            SequenceCheck::Duplicate(_)
        ));
        let mut bad = snap.clone();
        bad[5] ^= 1;
        assert!(ProducerStateTable::decode_snapshot(&bad).is_none());
        assert!(ProducerStateTable::decode_snapshot(&snap[..3]).is_none());
    }

    fn txn_header(pid: i64, epoch: i16, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: crate::log::batch::ATTR_TRANSACTIONAL,
            base_sequence: -1,
            ..header(pid, epoch, 0, count, base_offset)
        }
    }

    fn marker(pid: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id: pid,
            producer_epoch: epoch,
            coordinator_epoch,
            commit,
        }
    }

    #[test]
    fn tv2_markers_bump_the_epoch_and_the_next_transaction_starts_at_sequence_0() {
        // KIP-890 part 2: the coordinator ends a TV2 transaction with markers at the bumped
        // epoch (ProducerAppendInfo.appendEndTxnMarker accepts an epoch above the producer's),
        // and the producer's next transaction comes at that epoch from sequence 0.
        let mut t = ProducerStateTable::default();
        let batch = |epoch, seq, count, offset| BatchHeader {
            attributes: crate::log::batch::ATTR_TRANSACTIONAL,
            ..header(1, epoch, seq, count, offset)
        };
        let verified = |t: &mut ProducerStateTable| AppendOrigin::Client {
            producer_ids_issued: i64::MAX,
            verification_guard: t.maybe_start_verification(1, 0),
        };
        let origin = verified(&mut t);
        assert_eq!(t.check(&batch(0, 0, 3, 0), origin), SequenceCheck::Append);
        t.record(&batch(0, 0, 3, 0), 1);
        let bumped = marker(1, 1, 0, true);
        assert_eq!(t.check_marker(&bumped), SequenceCheck::Append);
        assert!(t.record_marker(&bumped, 3, 2).is_some());
        assert_eq!(t.first_unstable_offset(), None);
        let origin = verified(&mut t);
        assert_eq!(
            t.check(&batch(1, 3, 1, 0), origin),
            SequenceCheck::OutOfOrderSequence,
            "the old epoch's sequence does not go on"
        );
        assert_eq!(t.check(&batch(1, 0, 2, 0), origin), SequenceCheck::Append);
        t.record(&batch(1, 0, 2, 4), 3);
        assert_eq!(t.first_unstable_offset(), Some(4));
        // The zombie at the old epoch is fenced, data and marker alike.
        assert_eq!(
            t.check(&batch(0, 3, 1, 0), CLIENT),
            SequenceCheck::InvalidProducerEpoch
        );
        assert_eq!(
            t.check_marker(&marker(1, 0, 0, false)),
            SequenceCheck::InvalidProducerEpoch
        );
        // The next end's marker, bumped again, ends it.
        assert!(t.record_marker(&marker(1, 2, 0, false), 6, 4).is_some());
        assert_eq!(t.first_unstable_offset(), None);
    }

    #[test]
    fn transactions_start_with_a_transactional_batch_and_end_with_a_marker() {
        // ProducerAppendInfo.appendDataBatch / appendEndTxnMarker and ProducerStateManager's
        // firstUnstableOffset: the oldest ongoing transaction's first offset.
        let mut t = ProducerStateTable::default();
        t.record(&header(9, 0, 0, 1, 0), 1); // idempotent, no transaction
        t.record(&txn_header(1, 0, 2, 1), 1);
        t.record(&txn_header(2, 0, 1, 3), 1);
        t.record(&txn_header(1, 0, 1, 4), 1);
        assert_eq!(t.first_unstable_offset(), Some(1));
        // A non-transactional batch inside a transaction is INVALID_TXN_STATE.
        assert_eq!(
            t.check(&header(1, 0, 3, 1, 0), AppendOrigin::Coordinator),
            SequenceCheck::InvalidTxnState
        );
        let done = t.record_marker(&marker(1, 0, 0, false), 5, 2);
        assert_eq!(
            done,
            Some(CompletedTxn {
                producer_id: 1,
                first_offset: 1,
                last_offset: 5,
                aborted: true
            })
        );
        assert_eq!(t.first_unstable_offset(), Some(3));
        // A marker of a producer without a transaction here completes nothing.
        assert_eq!(t.record_marker(&marker(9, 0, 0, true), 6, 2), None);
        assert!(t.record_marker(&marker(2, 0, 0, true), 7, 2).is_some());
        assert_eq!(t.first_unstable_offset(), None);
        let info = t
            .active_producers()
            .into_iter()
            .find(|p| p.producer_id == 1)
            .unwrap();
        assert_eq!(
            (
                info.producer_epoch,
                info.coordinator_epoch,
                info.current_txn_start_offset
            ),
            (0, 0, -1)
        );
    }

    #[test]
    fn a_producer_inside_a_transaction_never_expires() {
        // Kafka's ProducerStateManager.isProducerExpired: only producers without an ongoing
        // transaction expire, judged by the last timestamp (of a batch or a marker).
        let mut t = ProducerStateTable::default();
        t.record(&txn_header(1, 0, 1, 0), 1_000);
        t.record(&header(2, 0, 0, 1, 1), 1_000);
        assert_eq!(t.remove_expired(100_000, 10_000), 1);
        assert_eq!(t.first_unstable_offset(), Some(0));
        t.record_marker(&marker(1, 0, 0, true), 2, 95_000);
        assert_eq!(t.remove_expired(100_000, 10_000), 0);
        assert_eq!(t.remove_expired(105_000, 10_000), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn the_snapshot_keeps_transactions_and_old_snapshots_still_load() {
        let mut t = ProducerStateTable::default();
        t.record(&txn_header(1, 3, 2, 10), 50);
        t.record_marker(&marker(2, 0, 4, true), 12, 60);
        let (back, covers) = ProducerStateTable::decode_snapshot(&t.encode_snapshot(13)).unwrap();
        assert_eq!(covers, 13);
        assert_eq!(back.first_unstable_offset(), Some(10));
        let mut infos = back.active_producers();
        infos.sort_by_key(|p| p.producer_id);
        assert_eq!(
            infos,
            vec![
                ProducerInfo {
                    producer_id: 1,
                    producer_epoch: 3,
                    // Written without sequences (RecordBatch.NO_SEQUENCE), as a coordinator does.
                    last_sequence: -1,
                    last_timestamp: 50,
                    coordinator_epoch: -1,
                    current_txn_start_offset: 10
                },
                ProducerInfo {
                    producer_id: 2,
                    producer_epoch: 0,
                    last_sequence: -1,
                    last_timestamp: 60,
                    coordinator_epoch: 4,
                    current_txn_start_offset: -1
                }
            ]
        );
        assert_eq!(
            back.check_marker(&marker(2, 0, 3, false)),
            SequenceCheck::CoordinatorFenced
        );
        // Version 1, as written before transactions: producer 5, epoch 2, one batch.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1i16.to_be_bytes());
        v1.extend_from_slice(&8i64.to_be_bytes());
        v1.extend_from_slice(&1i32.to_be_bytes());
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&2i16.to_be_bytes());
        v1.push(1);
        for v in [0i32, 3] {
            v1.extend_from_slice(&v.to_be_bytes());
        }
        for v in [4i64, 7, 77] {
            v1.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        let (old, covers) = ProducerStateTable::decode_snapshot(&v1).unwrap();
        assert_eq!(covers, 8);
        assert!(matches!(
            old.check(&header(5, 2, 0, 4, 0), CLIENT),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(old.active_producers()[0].last_timestamp, 77);
        assert_eq!(old.first_unstable_offset(), None);
    }
}
