//! Idempotent-producer state of one partition: for each producer id its epoch and the metadata of
//! its last five batches (Kafka's ProducerStateEntry, NUM_BATCHES_TO_RETAIN = 5), used to reject
//! out-of-order and fenced writes and to answer a retried batch with its original offset instead of
//! appending it twice.
//!
//! The state is rebuilt from batch headers at start-up (and saved at clean shutdown, see
//! `partition.rs`), so duplicate detection survives restarts and crashes.
//!
//! Snapshot file format (`producer-state.gregor` in the partition directory), big-endian:
//! `version int16 = 1 | covers_up_to_offset int64 | entry_count int32 | entries`, each entry
//! `producer_id int64 | epoch int16 | batch_count int8 | batches`, each batch
//! `first_seq int32 | last_seq int32 | first_offset int64 | last_offset int64 | timestamp int64`,
//! followed by a CRC-32C of everything before it (uint32).

use std::collections::{HashMap, VecDeque};

use crate::log::batch::{increment_sequence, BatchHeader};

pub const BATCHES_TO_RETAIN: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
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
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// Kafka's checks in the order of ProducerAppendInfo.checkProducerEpoch/checkSequence, after
    /// UnifiedLog's duplicate lookup. A producer with no state here may start at any sequence.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::InvalidProducerEpoch;
        }
        if h.producer_epoch != entry.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrderSequence
            };
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if increment_sequence(last.last_seq, 1) != h.base_sequence => {
                SequenceCheck::OutOfOrderSequence
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended (or, at recovery, replayed) batch of an idempotent producer.
    pub fn record(&mut self, h: &BatchHeader, timestamp: i64) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if entry.epoch != h.producer_epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
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

    /// Forgets every producer whose last batch's timestamp is `expiration_ms` or more before
    /// `now_ms` (Kafka's ProducerStateManager.removeExpiredProducers, producer.id.expiration.ms):
    /// the state of producers that went away stops costing memory, and a batch from one of them
    /// later is taken as from a producer without state. Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.batches
                .back()
                .is_some_and(|b| now_ms.saturating_sub(b.timestamp) < expiration_ms)
        });
        if self.producers.capacity() > 2 * self.producers.len() + 64 {
            self.producers.shrink_to_fit();
        }
        before - self.producers.len()
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
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&covers_up_to.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (pid, e) in &self.producers {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
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
        if r.i16()? != 1 {
            return None;
        }
        let covers = r.i64()?;
        let count = r.i32()?;
        let mut table = ProducerStateTable::default();
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = r.i16()?;
            let n = r.u8()?;
            let mut batches = VecDeque::with_capacity(usize::from(n).min(BATCHES_TO_RETAIN));
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            table
                .producers
                .insert(pid, ProducerEntry { epoch, batches });
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
        assert_eq!(t.check(&header(1, 0, 42, 3, 0)), SequenceCheck::Append);
    }

    #[test]
    fn in_order_duplicate_gap_and_fencing() {
        let mut t = ProducerStateTable::default();
        let first = header(1, 0, 0, 3, 0);
        t.record(&first, 10);
        assert_eq!(t.check(&header(1, 0, 3, 2, 0)), SequenceCheck::Append);
        match t.check(&header(1, 0, 0, 3, 0)) {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.check(&header(1, 0, 5, 1, 0)),
            SequenceCheck::OutOfOrderSequence
        );
        // A bumped epoch must restart at 0; an older epoch is fenced.
        assert_eq!(
            t.check(&header(1, 1, 3, 1, 0)),
            SequenceCheck::OutOfOrderSequence
        );
        assert_eq!(t.check(&header(1, 1, 0, 1, 0)), SequenceCheck::Append);
        t.record(&header(1, 1, 0, 1, 3), 11);
        assert_eq!(
            t.check(&header(1, 0, 3, 1, 0)),
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
            t.check(&header(9, 0, 1, 1, 0)),
            SequenceCheck::OutOfOrderSequence
        );
        assert!(matches!(
            t.check(&header(9, 0, 2, 1, 0)),
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
        assert_eq!(t.check(&header(1, 0, 7, 1, 0)), SequenceCheck::Append);
        assert_eq!(
            t.check(&header(2, 0, 7, 1, 0)),
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
            back.check(&header(5, 2, 10, 4, 0)),
            SequenceCheck::Duplicate(_)
        ));
        let mut bad = snap.clone();
        bad[5] ^= 1;
        assert!(ProducerStateTable::decode_snapshot(&bad).is_none());
        assert!(ProducerStateTable::decode_snapshot(&snap[..3]).is_none());
    }
}
