//! The state of one share-partition (a topic partition as one share group consumes it), after
//! Kafka's `SharePartition` (KIP-932). Sans IO: each operation takes `now_ms` from the caller's
//! clock and returns the state changes to persist (`StateBatch`, the rows of Kafka's
//! `ShareUpdate`/`ShareSnapshot` records), so acquisition-lock expiry is tested by moving a number.
//!
//! The share-partition start offset (SPSO, `start_offset`) is the first offset not yet in a
//! terminal state; everything below it was acknowledged or archived. The in-flight records run
//! from the SPSO to the share-partition end offset (SPEO, `end_offset`, the last offset ever
//! acquired). Each in-flight record is in one state:
//!
//! - AVAILABLE (0): may be acquired (again);
//! - ACQUIRED (1): delivered to one member, locked for it until `group.share.record.lock.duration.ms`
//!   passes or it acknowledges;
//! - ACKNOWLEDGED (2): accepted, terminal;
//! - ARCHIVED (4): rejected, a gap, past the delivery-count limit or below the log start, terminal.
//!
//! Every acquisition counts a delivery; a record released (by RELEASE, a lock expiry, or its
//! member leaving) once it was delivered `group.share.delivery.count.limit` times is archived
//! instead of made available, so a poison record stops coming back.
//!
//! Kafka keeps a state per fetched batch and splits a batch into per-offset states when a
//! request covers part of it. Here the in-flight records are runs of consecutive offsets in the
//! same state (same delivery count, member and lock), keyed by their first offset: a whole fetched
//! batch is one run, and a run is split exactly where an acquisition or acknowledgement boundary
//! falls inside it, which is the same thing without two code paths. The number of runs is bounded
//! by the in-flight records, which `group.share.partition.max.record.locks` bounds.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Kafka's `RecordState`; `id` is what the share-group state records persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    const IDS: [(RecordState, i8); 4] = [
        (RecordState::Available, 0),
        (RecordState::Acquired, 1),
        (RecordState::Acknowledged, 2),
        (RecordState::Archived, 4),
    ];

    pub fn id(self) -> i8 {
        Self::IDS
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(0, |&(_, id)| id)
    }

    pub fn from_id(id: i8) -> Option<RecordState> {
        Self::IDS.iter().find(|&&(_, i)| i == id).map(|&(s, _)| s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// The acknowledgement types of ShareFetch/ShareAcknowledge v1, as on the wire (Kafka's
/// `AcknowledgeType`, plus the GAP a client sends for offsets it found no record at).
pub mod acknowledge_type {
    pub const GAP: i8 = 0;
    pub const ACCEPT: i8 = 1;
    pub const RELEASE: i8 = 2;
    pub const REJECT: i8 = 3;
}

/// The state an acknowledgement type asks for (a RELEASE past the delivery-count limit archives
/// instead); None for a type Kafka does not know.
fn acknowledged_state(acknowledge_type: i8) -> Option<RecordState> {
    use acknowledge_type::*;
    match acknowledge_type {
        ACCEPT => Some(RecordState::Acknowledged),
        RELEASE => Some(RecordState::Available),
        REJECT | GAP => Some(RecordState::Archived),
        _ => None,
    }
}

/// The limits of one share-partition, under Kafka's names (broker `group.share.*`, overridable
/// per group as `share.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePartitionConfig {
    /// group.share.record.lock.duration.ms
    pub record_lock_duration_ms: i64,
    /// group.share.delivery.count.limit
    pub delivery_count_limit: i16,
    /// group.share.partition.max.record.locks: in-flight records (SPSO to SPEO) at most; past it
    /// no new records are acquired until the SPSO moves.
    pub max_record_locks: i64,
}

impl Default for SharePartitionConfig {
    /// Kafka 4.4's defaults (ShareGroupConfig).
    fn default() -> Self {
        SharePartitionConfig {
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            max_record_locks: 2_000,
        }
    }
}

/// One range handed to a member: ShareFetchResponse's AcquiredRecords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRecords {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// One acknowledgement batch of a ShareFetch or ShareAcknowledge request: one type for the whole
/// range, or one per offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgementBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub acknowledge_types: Vec<i8>,
}

/// A changed range to persist (Kafka's `PersisterStateBatch`: first and last offset, the
/// delivery state id and the delivery count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_state: i8,
    pub delivery_count: i16,
}

/// Why an acknowledgement was refused, with Kafka's messages; nothing of the request is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// INVALID_REQUEST
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// INVALID_RECORD_STATE
    #[error("{0}")]
    InvalidRecordState(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    last_offset: i64,
    state: RecordState,
    delivery_count: i16,
    /// The member holding the records while ACQUIRED.
    member_id: Option<Arc<str>>,
    /// When the acquisition lock expires, while ACQUIRED.
    lock_deadline_ms: i64,
}

impl Run {
    fn acquired_by(&self, member_id: &str) -> bool {
        self.state == RecordState::Acquired && self.member_id.as_deref() == Some(member_id)
    }
}

#[derive(Debug, Clone)]
pub struct SharePartition {
    config: SharePartitionConfig,
    start_offset: i64,
    /// The first offset never acquired: where new records start.
    fetch_end: i64,
    /// In-flight runs by first offset, covering `start_offset..fetch_end` at most (runs wholly
    /// below the SPSO are dropped).
    runs: BTreeMap<i64, Run>,
}

impl SharePartition {
    /// A share-partition with nothing in flight, starting at `start_offset` (from
    /// `share.auto.offset.reset`, or the persisted SPSO).
    pub fn new(config: SharePartitionConfig, start_offset: i64) -> SharePartition {
        SharePartition {
            config,
            start_offset,
            fetch_end: start_offset,
            runs: BTreeMap::new(),
        }
    }

    /// A share-partition rebuilt from persisted state (ReadShareGroupState: the SPSO and the
    /// in-flight batches). Records persisted as ACQUIRED lost their lock with the process that
    /// held it, so they are available again (or archived past the delivery-count limit).
    pub fn from_state(
        config: SharePartitionConfig,
        start_offset: i64,
        batches: &[StateBatch],
    ) -> SharePartition {
        let mut sp = SharePartition::new(config, start_offset);
        for b in batches {
            let first = b.first_offset.max(start_offset);
            if b.last_offset < first || first < sp.fetch_end {
                continue; // below the SPSO, or overlapping an earlier batch: ignored
            }
            let mut state =
                RecordState::from_id(b.delivery_state).unwrap_or(RecordState::Available);
            if state == RecordState::Acquired {
                state = sp.released_state(b.delivery_count);
            }
            if first > sp.fetch_end {
                // Offsets between persisted batches were never delivered: they are available.
                sp.insert(sp.fetch_end, first - 1, RecordState::Available, 0);
            }
            sp.insert(first, b.last_offset, state, b.delivery_count);
            sp.fetch_end = b.last_offset + 1;
        }
        sp.advance_start_offset();
        sp
    }

    fn insert(&mut self, first: i64, last: i64, state: RecordState, delivery_count: i16) {
        self.runs.insert(
            first,
            Run {
                last_offset: last,
                state,
                delivery_count,
                member_id: None,
                lock_deadline_ms: 0,
            },
        );
    }

    pub fn config(&self) -> &SharePartitionConfig {
        &self.config
    }

    /// The SPSO.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The SPEO as Kafka reports it: the last in-flight offset, or the SPSO when nothing is in
    /// flight.
    pub fn end_offset(&self) -> i64 {
        if self.runs.is_empty() {
            self.start_offset
        } else {
            self.fetch_end - 1
        }
    }

    /// Records between the SPSO and the SPEO (Kafka's `numInFlightRecords`).
    pub fn in_flight_records(&self) -> i64 {
        if self.runs.is_empty() {
            0
        } else {
            self.fetch_end - self.start_offset
        }
    }

    /// Where the next fetch from the log starts: the first AVAILABLE record, or past the SPEO.
    pub fn next_fetch_offset(&self) -> i64 {
        self.runs
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map_or(self.fetch_end, |(&first, _)| first.max(self.start_offset))
    }

    /// Kafka's `canAcquireRecords`: something is available again, or the in-flight records are
    /// below `group.share.partition.max.record.locks`.
    pub fn can_acquire_records(&self) -> bool {
        self.next_fetch_offset() < self.fetch_end
            || self.in_flight_records() < self.config.max_record_locks
    }

    /// The state of one offset (tests and describe): None outside the in-flight records.
    pub fn record_state(&self, offset: i64) -> Option<(RecordState, i16)> {
        if offset < self.start_offset {
            return None;
        }
        let (_, run) = self.runs.range(..=offset).next_back()?;
        (run.last_offset >= offset).then_some((run.state, run.delivery_count))
    }

    /// Acquires for `member_id` what a log read returned: `batches` are the fetched record
    /// batches' (base offset, last offset), in order. AVAILABLE in-flight records among them are
    /// acquired again (their delivery count goes up); records past the SPEO are acquired for the
    /// first time. `max_records` is a soft limit, as in Kafka: new records end on a batch
    /// boundary. Records in other states, or below the SPSO, are not acquired.
    pub fn acquire(
        &mut self,
        member_id: &str,
        max_records: i64,
        batches: &[(i64, i64)],
        now_ms: i64,
    ) -> Vec<AcquiredRecords> {
        let (Some(&(fetch_first, _)), Some(&(_, fetch_last))) = (batches.first(), batches.last())
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if max_records <= 0 {
            return out;
        }
        let member: Arc<str> = member_id.into();
        let deadline = now_ms.saturating_add(self.config.record_lock_duration_ms);
        let mut acquired = 0i64;

        // Redelivery: available in-flight records within the fetched range.
        let lo = fetch_first.max(self.start_offset);
        let hi = fetch_last.min(self.fetch_end - 1);
        if lo <= hi {
            let available: Vec<i64> = self
                .runs
                .range(..=hi)
                .filter(|(_, r)| r.last_offset >= lo && r.state == RecordState::Available)
                .map(|(&first, _)| first)
                .collect();
            for first in available {
                if acquired >= max_records {
                    break;
                }
                let Some(run) = self.runs.get(&first) else {
                    continue;
                };
                let (a, b) = (first.max(lo), run.last_offset.min(hi));
                self.split_at(a);
                self.split_at(b + 1);
                if let Some(run) = self.runs.get_mut(&a) {
                    run.state = RecordState::Acquired;
                    run.delivery_count = run.delivery_count.saturating_add(1);
                    run.member_id = Some(member.clone());
                    run.lock_deadline_ms = deadline;
                    push_merged(&mut out, a, b, run.delivery_count);
                    acquired += b - a + 1;
                }
            }
        }

        // New records past the SPEO, within max_records and the in-flight limit.
        let first = fetch_first.max(self.fetch_end);
        let room =
            (max_records - acquired).min(self.config.max_record_locks - self.in_flight_records());
        if first <= fetch_last && room > 0 {
            let mut last = fetch_last;
            if first.saturating_add(room - 1) < fetch_last {
                // The batch holding the last record within the limit is delivered whole.
                let want = first + room - 1;
                last = batches
                    .iter()
                    .find(|&&(base, last)| base <= want && want <= last)
                    .map_or(want, |&(_, last)| last);
            }
            if self.runs.is_empty() {
                self.start_offset = first;
            }
            self.runs.insert(
                first,
                Run {
                    last_offset: last,
                    state: RecordState::Acquired,
                    delivery_count: 1,
                    member_id: Some(member),
                    lock_deadline_ms: deadline,
                },
            );
            self.fetch_end = last + 1;
            push_merged(&mut out, first, last, 1);
        }
        out
    }

    /// Applies a member's acknowledgements, all or nothing (Kafka rolls back every change of a
    /// request when one batch fails). Offsets below the SPSO are skipped (already archived).
    pub fn acknowledge(
        &mut self,
        member_id: &str,
        batches: &[AcknowledgementBatch],
    ) -> Result<Vec<StateBatch>, ShareError> {
        // Validate everything first, so a failure leaves no change behind.
        let mut ranges: Vec<(i64, i64)> = Vec::with_capacity(batches.len());
        for batch in batches {
            self.validate_acknowledgement(member_id, batch)?;
            ranges.push((batch.first_offset, batch.last_offset));
        }
        // Two batches naming one offset: the second would find it no longer acquired.
        ranges.sort_unstable();
        if ranges.windows(2).any(|w| w[1].0 <= w[0].1) {
            return Err(ShareError::InvalidRecordState(
                "The batch cannot be acknowledged. The batch is not in the acquired state.",
            ));
        }
        let mut changes = Vec::new();
        for batch in batches {
            let start = batch.first_offset.max(self.start_offset);
            if batch.last_offset < start {
                continue;
            }
            let whole = batch.acknowledge_types.len() == 1;
            // Consecutive offsets with the same type change as one range.
            let mut offset = start;
            while offset <= batch.last_offset {
                let type_at = |o: i64| {
                    let i = if whole {
                        0
                    } else {
                        (o - batch.first_offset) as usize
                    };
                    batch.acknowledge_types[i]
                };
                let t = type_at(offset);
                let mut end = if whole { batch.last_offset } else { offset };
                while end < batch.last_offset && type_at(end + 1) == t {
                    end += 1;
                }
                let to = acknowledged_state(t).unwrap_or(RecordState::Available);
                self.transition(offset, end, to, &mut changes);
                offset = end + 1;
            }
        }
        self.advance_start_offset();
        Ok(changes)
    }

    /// The checks of Kafka's `acknowledge`, in its order and with its errors.
    fn validate_acknowledgement(
        &self,
        member_id: &str,
        batch: &AcknowledgementBatch,
    ) -> Result<(), ShareError> {
        let n = batch.acknowledge_types.len() as i64;
        let span = batch
            .last_offset
            .checked_sub(batch.first_offset)
            .and_then(|d| d.checked_add(1));
        if batch.last_offset < batch.first_offset || (n != 1 && Some(n) != span) || n == 0 {
            return Err(ShareError::InvalidRequest(
                "Invalid acknowledge type list for the batch.",
            ));
        }
        if batch
            .acknowledge_types
            .iter()
            .any(|&t| acknowledged_state(t).is_none())
        {
            return Err(ShareError::InvalidRequest("Invalid acknowledge type."));
        }
        let first = batch.first_offset.max(self.start_offset);
        if batch.last_offset < first {
            return Ok(()); // all of it is already archived
        }
        if self.runs.range(..=first).next_back().is_none() {
            return Err(ShareError::InvalidRecordState(
                "Batch record not found. The request batch offsets are not found in the cache.",
            ));
        }
        if first >= self.fetch_end {
            return Err(ShareError::InvalidRequest(
                "Batch record not found. The first offset in request is past acquired records.",
            ));
        }
        if batch.last_offset >= self.fetch_end {
            return Err(ShareError::InvalidRequest(
                "Batch record not found. The last offset in request is past acquired records.",
            ));
        }
        let from = self
            .runs
            .range(..=first)
            .next_back()
            .map_or(first, |(&k, _)| k);
        for (_, run) in self.runs.range(from..=batch.last_offset) {
            if run.last_offset < first {
                continue;
            }
            if run.state != RecordState::Acquired {
                return Err(ShareError::InvalidRecordState(
                    "The batch cannot be acknowledged. The batch is not in the acquired state.",
                ));
            }
            if !run.acquired_by(member_id) {
                return Err(ShareError::InvalidRecordState(
                    "Member is not the owner of batch record",
                ));
            }
        }
        Ok(())
    }

    /// Releases everything `member_id` holds (its share session closed or it left the group):
    /// available again, or archived past the delivery-count limit.
    pub fn release_acquired_records(&mut self, member_id: &str) -> Vec<StateBatch> {
        let held: Vec<(i64, i64)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.acquired_by(member_id))
            .map(|(&first, r)| (first, r.last_offset))
            .collect();
        self.release(held)
    }

    /// Releases the acquisitions whose lock expired by `now_ms`.
    pub fn expire_acquisition_locks(&mut self, now_ms: i64) -> Vec<StateBatch> {
        let expired: Vec<(i64, i64)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.state == RecordState::Acquired && r.lock_deadline_ms <= now_ms)
            .map(|(&first, r)| (first, r.last_offset))
            .collect();
        self.release(expired)
    }

    /// When the next acquisition lock expires, if any is held.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.runs
            .values()
            .filter(|r| r.state == RecordState::Acquired)
            .map(|r| r.lock_deadline_ms)
            .min()
    }

    fn release(&mut self, ranges: Vec<(i64, i64)>) -> Vec<StateBatch> {
        let mut changes = Vec::new();
        for (first, last) in ranges {
            // Below the SPSO (the log start passed them) they can never be delivered again.
            let below = last.min(self.start_offset - 1);
            if first <= below {
                self.transition(first, below, RecordState::Archived, &mut changes);
            }
            let first = first.max(self.start_offset);
            if first <= last {
                self.transition(first, last, RecordState::Available, &mut changes);
            }
        }
        self.advance_start_offset();
        changes
    }

    /// The log start moved to `log_start_offset` (retention, DeleteRecords): records below it
    /// can never be delivered, so the SPSO moves up to it, archiving what was not yet delivered
    /// (Kafka's `updateCacheAndOffsets`). Acquired records below it keep their lock until it
    /// expires or their member leaves, and are then archived; acknowledgements of them are
    /// skipped as Kafka skips them.
    pub fn update_log_start_offset(&mut self, log_start_offset: i64) -> Vec<StateBatch> {
        let mut changes = Vec::new();
        if log_start_offset <= self.start_offset {
            return changes;
        }
        let last = (log_start_offset - 1).min(self.fetch_end - 1);
        let available: Vec<(i64, i64)> = self
            .runs
            .range(..=last)
            .filter(|(_, r)| r.state == RecordState::Available)
            .map(|(&first, r)| (first.max(self.start_offset), r.last_offset.min(last)))
            .collect();
        for (first, last) in available {
            self.transition(first, last, RecordState::Archived, &mut changes);
        }
        self.start_offset = log_start_offset;
        self.fetch_end = self.fetch_end.max(log_start_offset);
        self.advance_start_offset();
        changes
    }

    /// The state to persist for a snapshot (ShareSnapshot): the SPSO and the in-flight runs.
    pub fn state_batches(&self) -> Vec<StateBatch> {
        self.runs
            .iter()
            .map(|(&first, r)| StateBatch {
                first_offset: first.max(self.start_offset),
                last_offset: r.last_offset,
                delivery_state: r.state.id(),
                delivery_count: r.delivery_count,
            })
            .collect()
    }

    /// What a release does to a record delivered `delivery_count` times.
    fn released_state(&self, delivery_count: i16) -> RecordState {
        if delivery_count >= self.config.delivery_count_limit {
            RecordState::Archived
        } else {
            RecordState::Available
        }
    }

    /// Moves `first..=last` (in flight, every run in it ACQUIRED) to `to`, clearing the member
    /// and lock; AVAILABLE past the delivery-count limit becomes ARCHIVED.
    fn transition(
        &mut self,
        first: i64,
        last: i64,
        to: RecordState,
        changes: &mut Vec<StateBatch>,
    ) {
        self.split_at(first);
        self.split_at(last + 1);
        let limit = self.config.delivery_count_limit;
        for (&start, run) in self.runs.range_mut(first..=last) {
            run.state = if to == RecordState::Available && run.delivery_count >= limit {
                RecordState::Archived
            } else {
                to
            };
            run.member_id = None;
            run.lock_deadline_ms = 0;
            changes.push(StateBatch {
                first_offset: start,
                last_offset: run.last_offset,
                delivery_state: run.state.id(),
                delivery_count: run.delivery_count,
            });
        }
    }

    /// Makes a run start at `offset` when `offset` falls inside one.
    fn split_at(&mut self, offset: i64) {
        let Some((&first, run)) = self.runs.range_mut(..offset).next_back() else {
            return;
        };
        if run.last_offset < offset {
            return;
        }
        let mut tail = run.clone();
        run.last_offset = offset - 1;
        tail.last_offset = tail.last_offset.max(offset);
        debug_assert!(first < offset);
        self.runs.insert(offset, tail);
    }

    /// Moves the SPSO past the terminal records at the front and drops them. Records still
    /// ACQUIRED below the SPSO (the log start passed them) stay until released, then archived.
    fn advance_start_offset(&mut self) {
        let mut done = Vec::new();
        for (&first, run) in &self.runs {
            if run.state.is_terminal() {
                if first <= self.start_offset {
                    self.start_offset = self.start_offset.max(run.last_offset + 1);
                    done.push(first);
                    continue;
                }
                if run.last_offset < self.start_offset {
                    done.push(first);
                    continue;
                }
            }
            if run.last_offset >= self.start_offset {
                break;
            }
        }
        for first in done {
            self.runs.remove(&first);
        }
        if self.runs.is_empty() {
            self.start_offset = self.start_offset.max(self.fetch_end);
        }
    }
}

/// Appends a range to the acquired list, joining it to the previous one when they touch and
/// share a delivery count.
fn push_merged(out: &mut Vec<AcquiredRecords>, first: i64, last: i64, delivery_count: i16) {
    if let Some(prev) = out.last_mut() {
        if prev.last_offset + 1 == first && prev.delivery_count == delivery_count {
            prev.last_offset = last;
            return;
        }
    }
    out.push(AcquiredRecords {
        first_offset: first,
        last_offset: last,
        delivery_count,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use acknowledge_type::*;
    use RecordState::*;

    const LOCK: i64 = 30_000;

    fn sp() -> SharePartition {
        SharePartition::new(SharePartitionConfig::default(), 0)
    }

    /// A share-partition at 0 with one limit changed.
    fn sp_with(change: impl FnOnce(&mut SharePartitionConfig)) -> SharePartition {
        let mut config = SharePartitionConfig::default();
        change(&mut config);
        SharePartition::new(config, 0)
    }

    fn acq(first: i64, last: i64, delivery_count: i16) -> AcquiredRecords {
        AcquiredRecords {
            first_offset: first,
            last_offset: last,
            delivery_count,
        }
    }

    fn ack(first: i64, last: i64, types: &[i8]) -> AcknowledgementBatch {
        AcknowledgementBatch {
            first_offset: first,
            last_offset: last,
            acknowledge_types: types.to_vec(),
        }
    }

    fn state(sp: &SharePartition, offset: i64) -> Option<RecordState> {
        sp.record_state(offset).map(|(s, _)| s)
    }

    #[test]
    fn acquire_takes_new_records_and_moves_the_end_offset() {
        let mut sp = sp();
        assert_eq!(sp.next_fetch_offset(), 0);
        let got = sp.acquire("m1", 500, &[(0, 4), (5, 9)], 0);
        assert_eq!(got, vec![acq(0, 9, 1)]);
        assert_eq!((sp.start_offset(), sp.end_offset()), (0, 9));
        assert_eq!(sp.next_fetch_offset(), 10);
        assert_eq!(sp.record_state(3), Some((Acquired, 1)));
        // The same records fetched again by another member are not acquired twice.
        assert!(sp.acquire("m2", 500, &[(0, 4), (5, 9)], 1).is_empty());
        assert_eq!(
            sp.acquire("m2", 500, &[(5, 9), (10, 12)], 1),
            vec![acq(10, 12, 1)]
        );
        assert!(sp.acquire("m2", 500, &[], 1).is_empty());
        assert!(sp.acquire("m2", 0, &[(13, 14)], 1).is_empty());
    }

    #[test]
    fn max_records_is_a_soft_limit_ending_on_a_batch_boundary() {
        let mut sp = sp();
        let got = sp.acquire("m", 3, &[(0, 1), (2, 5), (6, 9)], 0);
        assert_eq!(got, vec![acq(0, 5, 1)]);
        assert_eq!(sp.next_fetch_offset(), 6);
        // A fetch starting inside a batch the SPSO already passed acquires from the SPEO on.
        let mut later = SharePartition::new(SharePartitionConfig::default(), 7);
        assert_eq!(later.acquire("m", 10, &[(5, 9)], 0), vec![acq(7, 9, 1)]);
        assert_eq!(later.start_offset(), 7);
    }

    #[test]
    fn accept_and_reject_are_terminal_and_move_the_start_offset() {
        let mut sp = sp();
        sp.acquire("m", 500, &[(0, 9)], 0);
        let changes = sp.acknowledge("m", &[ack(0, 4, &[ACCEPT])]).unwrap();
        assert_eq!(
            changes,
            vec![StateBatch {
                first_offset: 0,
                last_offset: 4,
                delivery_state: 2,
                delivery_count: 1
            }]
        );
        assert_eq!(sp.start_offset(), 5);
        assert_eq!(state(&sp, 4), None);
        sp.acknowledge("m", &[ack(5, 9, &[REJECT])]).unwrap();
        assert_eq!((sp.start_offset(), sp.end_offset()), (10, 10));
        assert_eq!(sp.in_flight_records(), 0);
        // Acknowledged records are never acquired again, even when fetched again.
        assert!(sp.acquire("m", 500, &[(0, 9)], 1).is_empty());
    }

    #[test]
    fn per_offset_acknowledgements_split_the_batch() {
        let mut sp = sp();
        sp.acquire("m", 500, &[(0, 4)], 0);
        sp.acknowledge("m", &[ack(0, 4, &[ACCEPT, RELEASE, GAP, REJECT, ACCEPT])])
            .unwrap();
        // 0 accepted: SPSO moves past it; 1 is available again and holds the SPSO.
        assert_eq!(sp.start_offset(), 1);
        assert_eq!(sp.record_state(1), Some((Available, 1)));
        assert_eq!(state(&sp, 2), Some(Archived));
        assert_eq!(state(&sp, 3), Some(Archived));
        assert_eq!(state(&sp, 4), Some(Acknowledged));
        assert_eq!(sp.next_fetch_offset(), 1);
        // Refetching from 1 redelivers only offset 1, with its delivery count raised.
        assert_eq!(sp.acquire("m2", 500, &[(0, 4)], 5), vec![acq(1, 1, 2)]);
        sp.acknowledge("m2", &[ack(1, 1, &[ACCEPT])]).unwrap();
        assert_eq!((sp.start_offset(), sp.in_flight_records()), (5, 0));
    }

    #[test]
    fn release_makes_records_available_for_redelivery() {
        let mut sp = sp();
        sp.acquire("m1", 500, &[(0, 9)], 0);
        sp.acknowledge("m1", &[ack(2, 3, &[RELEASE])]).unwrap();
        assert_eq!(sp.next_fetch_offset(), 2);
        assert!(sp.can_acquire_records());
        // A fetch from offset 2 returns the batch 0-9: only 2-3 are acquired again.
        assert_eq!(sp.acquire("m2", 500, &[(0, 9)], 1), vec![acq(2, 3, 2)]);
        assert_eq!(sp.next_fetch_offset(), 10);
        // m1 still holds 0-1 and 4-9; m2 cannot acknowledge them.
        assert_eq!(
            sp.acknowledge("m2", &[ack(4, 4, &[ACCEPT])]),
            Err(ShareError::InvalidRecordState(
                "Member is not the owner of batch record"
            ))
        );
    }

    #[test]
    fn an_expired_lock_releases_the_records() {
        let mut sp = sp();
        sp.acquire("m1", 500, &[(0, 4)], 1_000);
        assert_eq!(sp.next_lock_deadline(), Some(1_000 + LOCK));
        assert!(sp.expire_acquisition_locks(1_000 + LOCK - 1).is_empty());
        assert_eq!(state(&sp, 0), Some(Acquired));
        let changes = sp.expire_acquisition_locks(1_000 + LOCK);
        assert_eq!(
            changes,
            vec![StateBatch {
                first_offset: 0,
                last_offset: 4,
                delivery_state: 0,
                delivery_count: 1
            }]
        );
        assert_eq!(sp.next_lock_deadline(), None);
        assert_eq!(sp.next_fetch_offset(), 0);
        // The late acknowledgement of the old holder is refused: the records are not acquired.
        assert_eq!(
            sp.acknowledge("m1", &[ack(0, 4, &[ACCEPT])]),
            Err(ShareError::InvalidRecordState(
                "The batch cannot be acknowledged. The batch is not in the acquired state."
            ))
        );
        assert_eq!(sp.acquire("m2", 500, &[(0, 4)], 40_000), vec![acq(0, 4, 2)]);
    }

    #[test]
    fn the_delivery_count_limit_archives_a_poison_record() {
        let mut sp = sp_with(|c| c.delivery_count_limit = 3);
        let mut now = 0;
        for delivery in 1..=3 {
            assert_eq!(
                sp.acquire("m", 500, &[(0, 0), (1, 1)], now),
                vec![acq(0, 1, delivery)]
            );
            if delivery < 3 {
                // One release, one timeout: both count.
                if delivery == 1 {
                    sp.acknowledge("m", &[ack(0, 1, &[RELEASE])]).unwrap();
                } else {
                    now += LOCK;
                    sp.expire_acquisition_locks(now);
                }
                assert_eq!(state(&sp, 0), Some(Available));
            }
        }
        // The third delivery is the last: released again, both are archived and the SPSO moves.
        let changes = sp.release_acquired_records("m");
        assert_eq!(changes[0].delivery_state, 4, "ARCHIVED's persisted id");
        assert_eq!(changes[0].delivery_count, 3);
        assert_eq!((sp.start_offset(), sp.in_flight_records()), (2, 0));
        assert!(sp.acquire("m", 500, &[(0, 0), (1, 1)], now).is_empty());
    }

    #[test]
    fn releasing_a_member_leaves_other_members_records_alone() {
        let mut sp = sp();
        sp.acquire("m1", 500, &[(0, 4)], 0);
        sp.acquire("m2", 500, &[(5, 9)], 0);
        sp.release_acquired_records("m1");
        assert_eq!(state(&sp, 0), Some(Available));
        assert_eq!(state(&sp, 5), Some(Acquired));
        assert!(sp.release_acquired_records("nobody").is_empty());
    }

    #[test]
    fn bad_acknowledgements_get_kafkas_errors_and_change_nothing() {
        let mut sp = sp();
        sp.acquire("m", 500, &[(10, 19)], 0);
        let invalid_request = |e| matches!(e, Err(ShareError::InvalidRequest(_)));
        let invalid_state = |e| matches!(e, Err(ShareError::InvalidRecordState(_)));
        // Below the SPSO: nothing to do (Kafka skips it); past the last acquired record: refused.
        assert_eq!(sp.acknowledge("m", &[ack(0, 5, &[ACCEPT])]), Ok(vec![]));
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(20, 25, &[ACCEPT])])
        ));
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(15, 25, &[ACCEPT])])
        ));
        // Malformed: an unknown type, a type list that does not match the range, last < first.
        assert!(invalid_request(sp.acknowledge(
            "m",
            &[AcknowledgementBatch {
                first_offset: 10,
                last_offset: 10,
                acknowledge_types: vec![9]
            }]
        )));
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(10, 12, &[ACCEPT, ACCEPT])])
        ));
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(12, 10, &[ACCEPT])])
        ));
        assert!(invalid_request(sp.acknowledge("m", &[ack(10, 12, &[])])));
        // Ranges at the ends of i64 are refused, not overflowed.
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(0, i64::MAX, &[ACCEPT, ACCEPT])])
        ));
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(i64::MIN, i64::MAX, &[ACCEPT])])
        ));
        // Another member's records.
        assert!(invalid_state(
            sp.acknowledge("x", &[ack(10, 19, &[ACCEPT])])
        ));
        // Overlapping batches in one request.
        assert!(invalid_state(sp.acknowledge(
            "m",
            &[ack(10, 14, &[ACCEPT]), ack(14, 15, &[REJECT])]
        )));
        // A good batch with a bad one: neither applies.
        assert!(invalid_request(sp.acknowledge(
            "m",
            &[ack(10, 11, &[ACCEPT]), ack(18, 25, &[ACCEPT])]
        )));
        for offset in 10..=19 {
            assert_eq!(state(&sp, offset), Some(Acquired), "offset {offset}");
        }
        assert_eq!(sp.start_offset(), 10);
        // Acknowledging twice: the second finds them no longer acquired.
        sp.acknowledge("m", &[ack(10, 11, &[ACCEPT])]).unwrap();
        assert!(sp.acknowledge("m", &[ack(12, 12, &[ACCEPT])]).is_ok());
        assert!(invalid_request(
            sp.acknowledge("m", &[ack(9, 30, &[ACCEPT])])
        ));
        // Below the SPSO: already done, skipped.
        assert_eq!(sp.acknowledge("m", &[ack(10, 12, &[REJECT])]), Ok(vec![]));
    }

    #[test]
    fn max_record_locks_bounds_the_in_flight_records() {
        let mut sp = sp_with(|c| c.max_record_locks = 10);
        assert_eq!(sp.acquire("m", 500, &[(0, 5)], 0), vec![acq(0, 5, 1)]);
        // Room for 4 more: the batch holding the 4th is delivered whole (soft limit).
        assert_eq!(
            sp.acquire("m", 500, &[(6, 7), (8, 11), (12, 20)], 0),
            vec![acq(6, 11, 1)]
        );
        assert_eq!(sp.in_flight_records(), 12);
        assert!(!sp.can_acquire_records());
        assert!(sp.acquire("m", 500, &[(12, 20)], 0).is_empty());
        // Acknowledging the front frees room.
        sp.acknowledge("m", &[ack(0, 5, &[ACCEPT])]).unwrap();
        assert!(sp.can_acquire_records());
        assert_eq!(
            sp.acquire("m", 500, &[(12, 13), (14, 15), (16, 20)], 0),
            vec![acq(12, 15, 1)]
        );
        // A released record inside the window can be acquired while at the limit.
        sp.acknowledge("m", &[ack(6, 6, &[RELEASE])]).unwrap();
        assert_eq!(sp.in_flight_records(), 10);
        assert!(sp.can_acquire_records());
        assert_eq!(
            sp.acquire("m", 500, &[(6, 7), (16, 20)], 0),
            vec![acq(6, 6, 2)]
        );
        assert!(!sp.can_acquire_records());
    }

    #[test]
    fn the_log_start_moving_archives_what_was_not_delivered() {
        let mut sp = sp();
        sp.acquire("m1", 500, &[(0, 4)], 0);
        sp.acquire("m2", 500, &[(5, 9)], 0);
        sp.acknowledge("m2", &[ack(5, 9, &[RELEASE])]).unwrap();
        // Retention deleted up to 7: 5-6 were available and are archived; 0-4 stay with m1.
        let changes = sp.update_log_start_offset(7);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].first_offset, changes[0].last_offset), (5, 6));
        assert_eq!(sp.start_offset(), 7);
        assert_eq!(sp.next_fetch_offset(), 7);
        // m1's acknowledgement of records below the SPSO is skipped; its expiry archives them.
        assert_eq!(sp.acknowledge("m1", &[ack(0, 4, &[ACCEPT])]), Ok(vec![]));
        let expired = sp.expire_acquisition_locks(LOCK);
        assert_eq!(expired[0].delivery_state, Archived.id());
        assert_eq!(sp.acquire("m2", 500, &[(7, 9)], LOCK), vec![acq(7, 9, 2)]);
        // Past everything in flight: the share-partition starts again at the log start.
        sp.acknowledge("m2", &[ack(7, 9, &[ACCEPT])]).unwrap();
        sp.update_log_start_offset(50);
        assert_eq!((sp.start_offset(), sp.next_fetch_offset()), (50, 50));
        assert_eq!(sp.acquire("m", 500, &[(40, 55)], 0), vec![acq(50, 55, 1)]);
    }

    #[test]
    fn record_state_ids_are_kafkas() {
        let ids: Vec<i8> = [Available, Acquired, Acknowledged, Archived]
            .iter()
            .map(|s| s.id())
            .collect();
        assert_eq!(ids, [0, 1, 2, 4]);
        assert_eq!(RecordState::from_id(4), Some(Archived));
        assert_eq!(RecordState::from_id(3), None);
    }

    #[test]
    fn persisted_state_comes_back_with_acquired_records_available() {
        let mut sp = sp();
        sp.acquire("m", 500, &[(0, 9)], 0);
        sp.acknowledge("m", &[ack(0, 2, &[ACCEPT]), ack(4, 4, &[REJECT])])
            .unwrap();
        let start = sp.start_offset();
        let batches = sp.state_batches();
        assert_eq!(start, 3);
        let back = SharePartition::from_state(SharePartitionConfig::default(), start, &batches);
        assert_eq!(back.start_offset(), 3);
        assert_eq!(back.end_offset(), 9);
        // 3 and 5-9 were acquired by a member the restart lost: available, delivered once.
        assert_eq!(back.record_state(3), Some((Available, 1)));
        assert_eq!(state(&back, 4), Some(Archived));
        assert_eq!(back.record_state(7), Some((Available, 1)));
        assert_eq!(back.next_fetch_offset(), 3);
        // A gap between persisted batches is available, never delivered.
        let gappy = [
            StateBatch {
                first_offset: 0,
                last_offset: 1,
                delivery_state: Acknowledged.id(),
                delivery_count: 1,
            },
            StateBatch {
                first_offset: 5,
                last_offset: 6,
                delivery_state: Available.id(),
                delivery_count: 2,
            },
        ];
        let mut back = SharePartition::from_state(SharePartitionConfig::default(), 0, &gappy);
        assert_eq!(back.start_offset(), 2);
        assert_eq!(back.record_state(3), Some((Available, 0)));
        assert_eq!(
            back.acquire("m", 500, &[(0, 9)], 0),
            vec![acq(2, 4, 1), acq(5, 6, 3), acq(7, 9, 1)]
        );
    }
}
