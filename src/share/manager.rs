//! The share-partitions and share sessions of this broker, after Kafka's
//! `SharePartitionManager`: ShareFetch and ShareAcknowledge reach the share-partition state
//! (`partition`) through it, and so do the events that release acquired records without a
//! request: a member leaving its group or its session expiring, its connection closing, and
//! acquisition locks running out (`expire_locks`, driven by the broker's timer on its clock).
//!
//! A share-partition is created the first time a member fetches from it, starting where
//! `share.auto.offset.reset` says (`latest` by default: the high watermark; `earliest`: the log
//! start). Whatever changes a share-partition's state so that records may be acquired again wakes
//! the ShareFetch requests parked on that partition in the purgatory.
//!
//! Locks: the map of share-partitions, then one share-partition's own lock (held across the log
//! read of a fetch, as Kafka's per-partition fetch lock, so two members never acquire the same
//! records); never the other way round.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use super::partition::{
    AcknowledgementBatch, AcquiredRecords, ShareError, SharePartition, SharePartitionConfig,
};
use super::session::{ShareSession, ShareSessionCache};
use super::state_records::SharePartitionKey;
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

/// What one acquisition from a share-partition gave a member.
#[derive(Debug, Default)]
pub struct Acquired {
    pub records: Vec<AcquiredRecords>,
}

impl SharePartitionManager {
    pub fn new(cfg: SharePartitionConfig, purgatory: Arc<Purgatory>) -> SharePartitionManager {
        SharePartitionManager {
            cfg,
            purgatory,
            sessions: Mutex::new(ShareSessionCache::new(MAX_SHARE_SESSIONS)),
            partitions: Mutex::new(HashMap::new()),
        }
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
        group_id: &str,
        member_id: &str,
        f: impl FnOnce(&mut ShareSessionCache) -> (R, Option<ShareSession>),
    ) -> R {
        let (r, replaced) = f(&mut self.sessions.lock());
        if replaced.is_some() {
            self.release_member(group_id, member_id);
        }
        r
    }

    /// Ends a member's share session (its final request, or it left the group) and releases
    /// what it holds.
    pub fn close_session(&self, group_id: &str, member_id: &str) {
        self.sessions.lock().close(group_id, member_id);
        self.release_member(group_id, member_id);
    }

    /// A member left its group (or its session timed out): as `close_session`.
    pub fn member_left(&self, group_id: &str, member_id: &str) {
        self.close_session(group_id, member_id);
    }

    /// A connection closed: the share sessions it opened end, and their members' records are
    /// released (Kafka 4.1+ ties a share session to its connection).
    pub fn connection_closed(&self, connection_id: u64) {
        let closed: Vec<(String, String, ShareSession)> =
            self.sessions.lock().close_connection(connection_id);
        for (group_id, member_id, _) in closed {
            self.release_member(&group_id, &member_id);
        }
    }

    /// Acquires records of one share-partition for `member_id`. `init` gives the start of a
    /// share-partition seen for the first time; `read` reads the log from an offset and returns
    /// the fetched batches' (base offset, last offset) and what it read, or an error code.
    #[allow(clippy::too_many_arguments)] // one fetch's parameters, as SharePartition.acquire's
    pub fn acquire<R>(
        &self,
        key: &SharePartitionKey,
        topic: &str,
        member_id: &str,
        max_records: i64,
        log_start: i64,
        now: i64,
        init: impl FnOnce() -> i64,
        read: impl FnOnce(i64) -> Result<(Vec<(i64, i64)>, R), i16>,
    ) -> Result<(Acquired, Option<R>), i16> {
        let entry = self.entry(key, topic, init);
        let mut sp = entry.state.lock();
        // Records below the log start (retention, DeleteRecords) can never be delivered.
        sp.update_log_start_offset(log_start);
        if !sp.can_acquire_records() {
            return Ok((Acquired::default(), None));
        }
        let (batches, data) = read(sp.next_fetch_offset())?;
        let records = sp.acquire(member_id, max_records, &batches, now);
        if records.is_empty() {
            return Ok((Acquired::default(), None));
        }
        Ok((Acquired { records }, Some(data)))
    }

    /// A member's acknowledgements of one share-partition, all or nothing. Released records wake
    /// the fetches parked on the partition.
    pub fn acknowledge(
        &self,
        key: &SharePartitionKey,
        member_id: &str,
        batches: &[AcknowledgementBatch],
    ) -> Result<(), ShareError> {
        let Some(entry) = self.partitions.lock().get(key).cloned() else {
            return Err(ShareError::InvalidRecordState(
                "Batch record not found. The request batch offsets are not found in the cache.",
            ));
        };
        entry.state.lock().acknowledge(member_id, batches)?;
        self.purgatory.check_and_complete(&entry.topic, key.2);
        Ok(())
    }

    /// Releases acquisitions whose lock expired by `now`, waking the fetches parked on their
    /// partitions.
    pub fn expire_locks(&self, now: i64) {
        for ((_, _, partition), entry) in self.entries() {
            let released = {
                let mut sp = entry.state.lock();
                match sp.next_lock_deadline() {
                    Some(d) if d <= now => !sp.expire_acquisition_locks(now).is_empty(),
                    _ => false,
                }
            };
            if released {
                self.purgatory.check_and_complete(&entry.topic, partition);
            }
        }
    }

    /// Whether a share-partition exists (tests and describe).
    pub fn state_of<R>(
        &self,
        key: &SharePartitionKey,
        f: impl FnOnce(&SharePartition) -> R,
    ) -> Option<R> {
        let entry = self.partitions.lock().get(key).cloned()?;
        let sp = entry.state.lock();
        Some(f(&sp))
    }

    /// The share-partitions of a topic deleted go with it.
    pub fn topic_deleted(&self, topic_id: Uuid) {
        self.partitions.lock().retain(|(_, t, _), _| *t != topic_id);
    }

    fn release_member(&self, group_id: &str, member_id: &str) {
        for ((group, _, partition), entry) in self.entries() {
            if group != group_id {
                continue;
            }
            let released = !entry
                .state
                .lock()
                .release_acquired_records(member_id)
                .is_empty();
            if released {
                self.purgatory.check_and_complete(&entry.topic, partition);
            }
        }
    }

    fn entries(&self) -> Vec<(SharePartitionKey, Arc<Entry>)> {
        let map = self.partitions.lock();
        map.iter()
            .map(|(k, e)| (k.clone(), Arc::clone(e)))
            .collect()
    }

    fn entry(
        &self,
        key: &SharePartitionKey,
        topic: &str,
        init: impl FnOnce() -> i64,
    ) -> Arc<Entry> {
        let mut map = self.partitions.lock();
        Arc::clone(map.entry(key.clone()).or_insert_with(|| {
            Arc::new(Entry {
                topic: topic.to_string(),
                state: Mutex::new(SharePartition::new(self.cfg, init())),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::partition::acknowledge_type::{ACCEPT, RELEASE};

    const T: Uuid = Uuid::from_u128(7);

    fn key() -> SharePartitionKey {
        ("g".to_string(), T, 0)
    }

    fn manager() -> SharePartitionManager {
        SharePartitionManager::new(SharePartitionConfig::default(), Arc::new(Purgatory::new()))
    }

    fn fetch(m: &SharePartitionManager, member: &str, now: i64) -> Vec<AcquiredRecords> {
        let read = |from: i64| Ok::<_, i16>((vec![(from.max(0), 9)], ()));
        m.acquire(&key(), "t", member, 100, 0, now, || 0, read)
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

    #[test]
    fn members_never_share_an_acquisition() {
        let m = manager();
        let a = fetch(&m, "a", 0);
        assert_eq!((a[0].first_offset, a[0].last_offset), (0, 9));
        assert!(fetch(&m, "b", 0).is_empty());
        // b may not acknowledge a's records.
        assert!(m.acknowledge(&key(), "b", &ack(0, 9, ACCEPT)).is_err());
        m.acknowledge(&key(), "a", &ack(5, 9, RELEASE)).unwrap();
        let b = fetch(&m, "b", 0);
        assert_eq!(
            (b[0].first_offset, b[0].last_offset, b[0].delivery_count),
            (5, 9, 2)
        );
    }

    #[test]
    fn leaving_closing_and_expiry_release() {
        let m = manager();
        m.with_sessions("g", "a", |s| {
            (s.new_context("g", "a", 0, &[(T, 0)], &[], false, 1))
                .map_or((None, None), |(c, replaced)| (Some(c), replaced))
        });
        fetch(&m, "a", 0);
        m.connection_closed(1);
        assert_eq!(fetch(&m, "b", 0)[0].first_offset, 0);
        m.member_left("g", "b");
        assert_eq!(fetch(&m, "c", 10)[0].delivery_count, 3);
        m.expire_locks(10 + 29_999);
        assert!(fetch(&m, "d", 10 + 29_999).is_empty());
        m.expire_locks(10 + 30_000);
        assert_eq!(fetch(&m, "d", 10 + 30_000)[0].delivery_count, 4);
    }
}
