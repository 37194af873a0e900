//! The share-partitions and share sessions of this broker, after Kafka's
//! `SharePartitionManager`: ShareFetch and ShareAcknowledge reach the share-partition state
//! (`partition`) through it, and so do the events that release acquired records without a
//! request: a member leaving its group or its session expiring, its connection closing, and
//! acquisition locks running out (`expire_locks`, driven by the broker's timer on its clock).
//!
//! A share-partition is made the first time a member fetches from it: from its persisted state
//! in `__share_group_state` (the share coordinator, `coordinator.rs`; records that were acquired
//! when the broker stopped are available again), or else starting where
//! `share.auto.offset.reset` says (`latest` by default: the high watermark; `earliest`: the log
//! start), which is persisted at once (Kafka's InitializeShareGroupState). Every change of a
//! record's state but an acquisition is written before it counts (Kafka's WriteShareGroupState):
//! an acknowledgement that cannot be written is undone and answered with the write's error, so
//! what a member was told is accepted is never delivered again after a restart. Whatever changes
//! a share-partition's state so that records may be acquired again wakes the ShareFetch requests
//! parked on that partition in the purgatory.
//!
//! Locks: the map of share-partitions, then one share-partition's own lock (held across the log
//! read of a fetch, as Kafka's per-partition fetch lock, so two members never acquire the same
//! records); never the other way round.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use super::coordinator::ShareCoordinator;
use super::partition::{
    AcknowledgementBatch, AcquiredRecords, ShareError, SharePartition, SharePartitionConfig,
    StateBatch,
};
use super::session::{ShareSession, ShareSessionCache};
use super::state_records::{ShareGroupOffset, SharePartitionKey};
use crate::metadata::Catalog;
use crate::server::clock::Now;
use crate::server::purgatory::Purgatory;

/// group.share.max.share.sessions's default (Kafka 4.4).
pub const MAX_SHARE_SESSIONS: usize = 2000;

/// One share-partition and the topic name the purgatory knows its partition by.
struct Entry {
    topic: String,
    state: Mutex<SharePartition>,
}

pub struct SharePartitionManager {
    cfg: SharePartitionConfig,
    purgatory: Arc<Purgatory>,
    coordinator: ShareCoordinator,
    sessions: Mutex<ShareSessionCache>,
    partitions: Mutex<HashMap<SharePartitionKey, Arc<Entry>>>,
}

/// Where a new share-partition starts (the `share.auto.offset.reset` group config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Earliest,
    Latest,
}

impl AutoOffsetReset {
    /// The group config's value; Kafka's default is `latest`.
    pub fn parse(value: Option<&str>) -> AutoOffsetReset {
        match value {
            Some(v) if v.eq_ignore_ascii_case("earliest") => AutoOffsetReset::Earliest,
            _ => AutoOffsetReset::Latest,
        }
    }
}

/// Why acknowledgements were not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcknowledgeError {
    /// Refused by the share-partition (INVALID_REQUEST, INVALID_RECORD_STATE).
    Refused(ShareError),
    /// Their state could not be written: the error code of the write.
    NotPersisted(i16),
}

/// What one acquisition from a share-partition gave a member.
#[derive(Debug, Default)]
pub struct Acquired {
    pub records: Vec<AcquiredRecords>,
}

impl SharePartitionManager {
    pub fn new(
        cfg: SharePartitionConfig,
        purgatory: Arc<Purgatory>,
        coordinator: ShareCoordinator,
    ) -> SharePartitionManager {
        SharePartitionManager {
            cfg,
            purgatory,
            coordinator,
            sessions: Mutex::new(ShareSessionCache::new(MAX_SHARE_SESSIONS)),
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// Replays the persisted share-partition state at start-up.
    pub fn load(&self, catalog: &Catalog) -> std::io::Result<usize> {
        self.coordinator.load(catalog)
    }

    /// The record lock duration the members are told (ShareFetchResponse's
    /// AcquisitionLockTimeoutMs).
    pub fn record_lock_duration_ms(&self) -> i64 {
        self.cfg.record_lock_duration_ms
    }

    /// Runs `f` on the share sessions (SharePartitionManager.newContext and
    /// acknowledgeSessionUpdate); a session `f` replaced has its acquisitions released.
    pub fn with_sessions<R>(
        &self,
        catalog: &Catalog,
        (group_id, member_id): (&str, &str),
        now: i64,
        f: impl FnOnce(&mut ShareSessionCache) -> (R, Option<ShareSession>),
    ) -> R {
        let (r, replaced) = f(&mut self.sessions.lock());
        if replaced.is_some() {
            self.release_member(catalog, group_id, member_id, now);
        }
        r
    }

    /// Ends a member's share session (its final request, it left the group, or its group
    /// session expired) and releases what it holds.
    pub fn close_session(&self, catalog: &Catalog, group_id: &str, member_id: &str, now: i64) {
        self.sessions.lock().close(group_id, member_id);
        self.release_member(catalog, group_id, member_id, now);
    }

    /// A connection closed: the share sessions it opened end, and their members' records are
    /// released (Kafka 4.1+ ties a share session to its connection).
    pub fn connection_closed(&self, catalog: &Catalog, connection_id: u64, now: i64) {
        let closed: Vec<(String, String, ShareSession)> =
            self.sessions.lock().close_connection(connection_id);
        for (group_id, member_id, _) in closed {
            self.release_member(catalog, &group_id, &member_id, now);
        }
    }

    /// Acquires records of one share-partition for `member_id`. `init` gives the start of a
    /// share-partition seen for the first time and never persisted; `read` reads the log from
    /// an offset and returns the fetched batches' (base offset, last offset) and what it read,
    /// or an error code.
    #[allow(clippy::too_many_arguments)] // one fetch's parameters, as SharePartition.acquire's
    pub fn acquire<R>(
        &self,
        catalog: &Catalog,
        (key, topic): (&SharePartitionKey, &str),
        member_id: &str,
        max_records: i64,
        log_start: i64,
        now: Now,
        init: impl FnOnce() -> i64,
        read: impl FnOnce(i64) -> Result<(Vec<(i64, i64)>, R), i16>,
    ) -> Result<(Acquired, Option<R>), i16> {
        let entry = self.entry(catalog, key, topic, now.wall_ms, init)?;
        let mut sp = entry.state.lock();
        // Records below the log start (retention, DeleteRecords) can never be delivered.
        let archived = sp.update_log_start_offset(log_start);
        self.persist(catalog, key, &sp, &archived, now.wall_ms);
        if !sp.can_acquire_records() {
            return Ok((Acquired::default(), None));
        }
        let (batches, data) = read(sp.next_fetch_offset())?;
        // The acquisition locks run on the monotonic reading (Kafka's AcquisitionLockTimerTask
        // on hiResClockMs): a wall-clock step neither releases nor prolongs them.
        let records = sp.acquire(member_id, max_records, &batches, now.monotonic_ms);
        if records.is_empty() {
            return Ok((Acquired::default(), None));
        }
        Ok((Acquired { records }, Some(data)))
    }

    /// A member's acknowledgements of one share-partition, all or nothing, written before they
    /// count. Released records wake the fetches parked on the partition.
    pub fn acknowledge(
        &self,
        catalog: &Catalog,
        key: &SharePartitionKey,
        member_id: &str,
        batches: &[AcknowledgementBatch],
        now: i64,
    ) -> Result<(), AcknowledgeError> {
        let Some(entry) = self.partitions.lock().get(key).cloned() else {
            return Err(AcknowledgeError::Refused(ShareError::InvalidRecordState(
                "Batch record not found. The request batch offsets are not found in the cache.",
            )));
        };
        {
            let mut sp = entry.state.lock();
            let before = sp.clone();
            let changes = sp
                .acknowledge(member_id, batches)
                .map_err(AcknowledgeError::Refused)?;
            let start = sp.start_offset();
            if let Err(code) = self.write(catalog, key, start, &changes, now) {
                *sp = before;
                return Err(AcknowledgeError::NotPersisted(code));
            }
        }
        self.purgatory.check_and_complete(&entry.topic, key.2);
        Ok(())
    }

    /// Releases acquisitions whose lock expired by `now` (its monotonic reading; the state
    /// written is stamped with its wall reading), waking the fetches parked on their partitions.
    pub fn expire_locks(&self, catalog: &Catalog, now: Now) {
        for (key, entry) in self.entries() {
            let released = {
                let mut sp = entry.state.lock();
                if sp.next_lock_deadline().is_none_or(|d| d > now.monotonic_ms) {
                    continue;
                }
                let changes = sp.expire_acquisition_locks(now.monotonic_ms);
                self.persist(catalog, &key, &sp, &changes, now.wall_ms);
                !changes.is_empty()
            };
            if released {
                self.purgatory.check_and_complete(&entry.topic, key.2);
            }
        }
    }

    /// A share group was deleted: its share-partitions go, in memory and persisted.
    pub fn group_deleted(&self, catalog: &Catalog, group_id: &str, now: i64) -> Result<(), i16> {
        self.partitions.lock().retain(|k, _| k.0 != group_id);
        self.coordinator.delete_group(catalog, group_id, now)
    }

    /// The share-partitions of a group that have a state, in key order.
    pub fn partitions_of_group(&self, group_id: &str) -> Vec<SharePartitionKey> {
        self.coordinator.keys_of_group(group_id)
    }

    /// A share-partition's persisted state (ReadShareGroupStateSummary reads the same): every
    /// change but an acquisition is written before it counts, so it is what the share-partition
    /// holds.
    pub fn persisted_state(&self, key: &SharePartitionKey) -> Option<ShareGroupOffset> {
        self.coordinator.read_state(key)
    }

    /// AlterShareGroupOffsets of one share-partition (its group is empty): it starts over at
    /// `start_offset` (-1: as `share.auto.offset.reset` says), and the copy in memory goes, so
    /// the next fetch loads the new state.
    pub fn reset_start_offset(
        &self,
        catalog: &Catalog,
        (key, start_offset): (&SharePartitionKey, i64),
        now: i64,
    ) -> Result<(), i16> {
        let mut map = self.partitions.lock();
        self.coordinator
            .initialize_state(catalog, key, start_offset, now)?;
        map.remove(key);
        Ok(())
    }

    /// DeleteShareGroupOffsets of one topic: the group's share-partitions of it go, in memory
    /// and persisted, so a later fetch starts them afresh; `Ok(false)` when it had none.
    pub fn delete_topic_state(
        &self,
        catalog: &Catalog,
        (group_id, topic_id): (&str, Uuid),
        now: i64,
    ) -> Result<bool, i16> {
        let keys: Vec<SharePartitionKey> = (self.partitions_of_group(group_id).into_iter())
            .filter(|k| k.1 == topic_id)
            .collect();
        if keys.is_empty() {
            return Ok(false);
        }
        let mut map = self.partitions.lock();
        map.retain(|k, _| k.0 != group_id || k.1 != topic_id);
        self.coordinator.delete_states(catalog, &keys, now)?;
        Ok(true)
    }

    /// Runs `f` on a share-partition, if it exists (tests and describe).
    pub fn state_of<R>(
        &self,
        key: &SharePartitionKey,
        f: impl FnOnce(&SharePartition) -> R,
    ) -> Option<R> {
        let entry = self.partitions.lock().get(key).cloned()?;
        let sp = entry.state.lock();
        Some(f(&sp))
    }

    fn release_member(&self, catalog: &Catalog, group_id: &str, member_id: &str, now: i64) {
        for (key, entry) in self.entries() {
            if key.0 != group_id {
                continue;
            }
            let released = {
                let mut sp = entry.state.lock();
                let changes = sp.release_acquired_records(member_id);
                self.persist(catalog, &key, &sp, &changes, now);
                !changes.is_empty()
            };
            if released {
                self.purgatory.check_and_complete(&entry.topic, key.2);
            }
        }
    }

    /// Writes a change the broker made by itself (a release, an expiry, the log start moving):
    /// one that cannot be written stays in memory, as the records it made available or archived
    /// are what a restart would make of them anyway, or close to it.
    fn persist(
        &self,
        catalog: &Catalog,
        key: &SharePartitionKey,
        sp: &SharePartition,
        changes: &[StateBatch],
        now: i64,
    ) {
        if let Err(code) = self.write(catalog, key, sp.start_offset(), changes, now) {
            tracing::warn!(group = %key.0, topic_id = %key.1, partition = key.2, code, "share-partition state not written");
        }
    }

    fn write(
        &self,
        catalog: &Catalog,
        key: &SharePartitionKey,
        start_offset: i64,
        changes: &[StateBatch],
        now: i64,
    ) -> Result<(), i16> {
        if changes.is_empty() {
            return Ok(());
        }
        (self.coordinator).write_state(catalog, key, start_offset, changes, now)
    }

    fn entries(&self) -> Vec<(SharePartitionKey, Arc<Entry>)> {
        let map = self.partitions.lock();
        map.iter()
            .map(|(k, e)| (k.clone(), Arc::clone(e)))
            .collect()
    }

    /// The share-partition, made from its persisted state or `init` when it is new here (its
    /// start then written first).
    fn entry(
        &self,
        catalog: &Catalog,
        key: &SharePartitionKey,
        topic: &str,
        now: i64,
        init: impl FnOnce() -> i64,
    ) -> Result<Arc<Entry>, i16> {
        let mut map = self.partitions.lock();
        if let Some(e) = map.get(key) {
            return Ok(Arc::clone(e));
        }
        // A state without a start offset (reset to -1 by AlterShareGroupOffsets) starts where
        // `init` says, as a new one.
        let sp = match self.coordinator.read_state(key) {
            Some(state) if state.start_offset >= 0 => {
                SharePartition::from_state(self.cfg, state.start_offset, &state.state_batches)
            }
            _ => {
                let start = init();
                self.coordinator
                    .write_state(catalog, key, start, &[], now)?;
                SharePartition::new(self.cfg, start)
            }
        };
        let entry = Arc::new(Entry {
            topic: topic.to_string(),
            state: Mutex::new(sp),
        });
        map.insert(key.clone(), Arc::clone(&entry));
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;
    use crate::share::partition::acknowledge_type::{ACCEPT, REJECT, RELEASE};
    use uuid::Uuid;

    const T: Uuid = Uuid::from_u128(7);

    fn key() -> SharePartitionKey {
        ("g".to_string(), T, 0)
    }

    fn catalog(dir: &std::path::Path, create: bool) -> Catalog {
        Catalog::open(dir, LogConfig::default(), create, 0).unwrap()
    }

    fn manager(c: &Catalog) -> SharePartitionManager {
        let m = SharePartitionManager::new(
            SharePartitionConfig::default(),
            Arc::new(Purgatory::new()),
            ShareCoordinator::new(3),
        );
        m.load(c).unwrap();
        m
    }

    /// A fetch of offsets 0 to 9 (one batch), the share-partition starting at 0.
    fn fetch(
        c: &Catalog,
        m: &SharePartitionManager,
        member: &str,
        now: i64,
    ) -> Vec<AcquiredRecords> {
        let read = |from: i64| Ok::<_, i16>((vec![(from.max(0), 9)], ()));
        m.acquire(c, (&key(), "t"), member, 100, 0, Now::at(now), || 0, read)
            .unwrap()
            .0
            .records
    }

    fn ack(first: i64, last: i64, t: i8) -> Vec<AcknowledgementBatch> {
        vec![AcknowledgementBatch {
            first_offset: first,
            last_offset: last,
            acknowledge_types: vec![t],
        }]
    }

    fn ranges(r: &[AcquiredRecords]) -> Vec<(i64, i64, i16)> {
        r.iter()
            .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
            .collect()
    }

    #[test]
    fn members_never_share_an_acquisition() {
        let dir = tempfile::tempdir().unwrap();
        let c = catalog(dir.path(), true);
        let m = manager(&c);
        assert_eq!(ranges(&fetch(&c, &m, "a", 0)), vec![(0, 9, 1)]);
        assert!(fetch(&c, &m, "b", 0).is_empty());
        // b may not acknowledge a's records.
        assert!(m
            .acknowledge(&c, &key(), "b", &ack(0, 9, ACCEPT), 0)
            .is_err());
        m.acknowledge(&c, &key(), "a", &ack(5, 9, RELEASE), 0)
            .unwrap();
        assert_eq!(ranges(&fetch(&c, &m, "b", 0)), vec![(5, 9, 2)]);
    }

    /// Acquisition locks run on the monotonic reading (Kafka's AcquisitionLockTimerTask on
    /// hiResClockMs): a step of the wall clock either way releases nothing; the monotonic
    /// reading past the lock duration (30 s by default) does.
    #[test]
    fn acquisition_locks_follow_the_monotonic_clock_not_the_wall() {
        let dir = tempfile::tempdir().unwrap();
        let c = catalog(dir.path(), true);
        let m = manager(&c);
        let at = Now {
            wall_ms: 1_700_000_000_000,
            monotonic_ms: 5_000,
        };
        let read = |from: i64| Ok::<_, i16>((vec![(from.max(0), 9)], ()));
        let acquire = |member: &str, now: Now| {
            (m.acquire(&c, (&key(), "t"), member, 100, 0, now, || 0, read))
                .unwrap()
                .0
                .records
        };
        assert_eq!(acquire("a", at).len(), 1);
        let hour = 3_600_000;
        for step in [hour, -hour] {
            m.expire_locks(&c, at.wall_stepped(step));
            assert!(
                acquire("b", at.wall_stepped(step)).is_empty(),
                "step {step}"
            );
        }
        let back = at.wall_stepped(-hour);
        m.expire_locks(&c, back.later(29_999));
        assert!(acquire("b", back.later(29_999)).is_empty());
        m.expire_locks(&c, back.later(30_000));
        let again = acquire("b", back.later(30_000));
        assert_eq!((again[0].first_offset, again[0].delivery_count), (0, 2));
    }

    #[test]
    fn leaving_closing_and_expiry_release() {
        let dir = tempfile::tempdir().unwrap();
        let c = catalog(dir.path(), true);
        let m = manager(&c);
        m.with_sessions(&c, ("g", "a"), 0, |s| {
            (s.new_context("g", "a", 0, &[(T, 0)], &[], false, 1))
                .map_or((None, None), |(c, replaced)| (Some(c), replaced))
        });
        fetch(&c, &m, "a", 0);
        m.connection_closed(&c, 1, 0);
        assert_eq!(fetch(&c, &m, "b", 0)[0].first_offset, 0);
        m.close_session(&c, "g", "b", 0);
        assert_eq!(fetch(&c, &m, "c", 10)[0].delivery_count, 3);
        m.expire_locks(&c, Now::at(10 + 29_999));
        assert!(fetch(&c, &m, "d", 10 + 29_999).is_empty());
        m.expire_locks(&c, Now::at(10 + 30_000));
        assert_eq!(fetch(&c, &m, "d", 10 + 30_000)[0].delivery_count, 4);
    }

    /// AlterShareGroupOffsets moves a share-partition's start, -1 hands it back to `init`;
    /// DeleteShareGroupOffsets forgets it. Each survives a restart, and describe reads it back.
    #[test]
    fn reset_and_delete_start_the_share_partition_over() {
        let dir = tempfile::tempdir().unwrap();
        let read = |from: i64| Ok::<_, i16>((vec![(from.max(0), 9)], ()));
        {
            let c = catalog(dir.path(), true);
            let m = manager(&c);
            fetch(&c, &m, "a", 0);
            m.acknowledge(&c, &key(), "a", &ack(0, 9, ACCEPT), 0)
                .unwrap();
            assert_eq!(m.persisted_state(&key()).unwrap().start_offset, 10);
            m.reset_start_offset(&c, (&key(), 4), 1).unwrap();
            let state = m.persisted_state(&key()).unwrap();
            assert_eq!((state.start_offset, state.state_epoch), (4, 1));
            assert_eq!(m.partitions_of_group("g"), vec![key()]);
            assert!(m.partitions_of_group("other").is_empty());
        }
        let c = catalog(dir.path(), false);
        let m = manager(&c);
        let (got, _) = m
            .acquire(&c, (&key(), "t"), "b", 100, 0, Now::at(2), || 20, read)
            .unwrap();
        assert_eq!(ranges(&got.records), vec![(4, 9, 1)]);
        m.close_session(&c, "g", "b", 3);
        // -1: the next fetch starts where `init` says.
        m.reset_start_offset(&c, (&key(), -1), 4).unwrap();
        let (got, _) = m
            .acquire(&c, (&key(), "t"), "b", 100, 0, Now::at(5), || 7, read)
            .unwrap();
        assert_eq!(ranges(&got.records), vec![(7, 9, 1)]);
        assert_eq!(m.delete_topic_state(&c, ("g", T), 6), Ok(true));
        assert_eq!(m.delete_topic_state(&c, ("g", T), 6), Ok(false));
        assert!(m.persisted_state(&key()).is_none());
        assert!(m.partitions_of_group("g").is_empty());
        let (got, _) = m
            .acquire(&c, (&key(), "t"), "b", 100, 0, Now::at(7), || 2, read)
            .unwrap();
        assert_eq!(ranges(&got.records), vec![(2, 9, 1)]);
    }

    /// What was acknowledged stays done after a restart; what was acquired comes back.
    #[test]
    fn the_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = catalog(dir.path(), true);
            let m = manager(&c);
            fetch(&c, &m, "a", 0);
            let acks = vec![AcknowledgementBatch {
                first_offset: 0,
                last_offset: 5,
                acknowledge_types: vec![ACCEPT, ACCEPT, REJECT, RELEASE, ACCEPT, ACCEPT],
            }];
            m.acknowledge(&c, &key(), "a", &acks, 0).unwrap();
            // 3 is available again and acquired by b; 6 to 9 stay a's.
            assert_eq!(ranges(&fetch(&c, &m, "b", 0)), vec![(3, 3, 2)]);
        }
        let c = catalog(dir.path(), false);
        let m = manager(&c);
        // 0-2 and 4-5 were done; 3 (b's) and 6-9 (a's) were acquired: available again. A new
        // share-partition here would start at `init` (20): the persisted start wins.
        let read = |from: i64| Ok::<_, i16>((vec![(from.max(0), 9)], ()));
        let (got, _) = m
            .acquire(&c, (&key(), "t"), "c", 100, 0, Now::at(0), || 20, read)
            .unwrap();
        assert_eq!(ranges(&got.records), vec![(3, 3, 2), (6, 9, 1)]);
    }
}
