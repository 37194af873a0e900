//! The share coordinator's shard (Kafka's `ShareCoordinatorShard`): the persisted state of the
//! share-partitions whose key falls in one `__share_group_state` partition, kept as records on
//! the coordinator runtime (`crate::coordinator::runtime`), so what was acknowledged is never
//! delivered again after a restart.
//!
//! - `initialize_state` writes a share-partition's first snapshot (its start offset, nothing in
//!   flight; Kafka's InitializeShareGroupState);
//! - `write_state` writes what a share-partition changed (Kafka's WriteShareGroupState): a
//!   ShareUpdate with the changed ranges, or, once
//!   `share.coordinator.snapshot.update.records.per.snapshot` updates follow the last snapshot,
//!   a new ShareSnapshot of the whole state, so replay stays short;
//! - `read_state` answers what replay rebuilt (ReadShareGroupState);
//! - `delete_state` writes the tombstone.
//!
//! Every change goes through `replay`, at load and after each write.

use std::collections::HashMap;

use bytes::Bytes;

use super::partition::StateBatch;
use super::state_records::{
    self as srec, ShareGroupOffset, SharePartitionKey, ShareSnapshot, ShareStateRecord,
    ShareUpdate, SHARE_SNAPSHOT_KEY, SHARE_UPDATE_KEY,
};
use crate::coordinator::runtime::{
    CoordinatorRecord, CoordinatorResult, CoordinatorRuntime, CoordinatorShard, RecordContext,
};
use crate::group::offsets_topic::partition_for;
use crate::metadata::topic::kafka_uuid_string;
use crate::metadata::Catalog;

/// The internal topic (Kafka's `Topic.SHARE_GROUP_STATE_TOPIC_NAME`).
pub const SHARE_GROUP_STATE_TOPIC: &str = "__share_group_state";

/// share.coordinator.snapshot.update.records.per.snapshot's default.
pub const UPDATES_PER_SNAPSHOT: usize = 500;

/// The `__share_group_state` partition of a share-partition: Kafka hashes
/// `SharePartitionKey.asCoordinatorKey()`, "group:topicId:partition" with the topic id in
/// Kafka's base64 form, as a group id is hashed.
pub fn partition_for_key(
    (group_id, topic_id, partition): &SharePartitionKey,
    partitions: i32,
) -> i32 {
    let key = format!("{group_id}:{}:{partition}", kafka_uuid_string(*topic_id));
    partition_for(&key, partitions)
}

pub type ShareStateResult<T> = CoordinatorResult<ShareCoordinatorShard, T>;

/// share.coordinator.state.topic.num.partitions's default.
pub const STATE_TOPIC_PARTITIONS: i32 = 50;

/// The share coordinator of this node (Kafka's ShareCoordinatorService, with the persister the
/// share-partitions call, which in Kafka speaks Read/WriteShareGroupState to it): the shards of
/// `__share_group_state` on the coordinator runtime.
pub struct ShareCoordinator {
    runtime: CoordinatorRuntime<ShareCoordinatorShard>,
}

impl ShareCoordinator {
    pub fn new(partitions: i32) -> ShareCoordinator {
        ShareCoordinator {
            runtime: CoordinatorRuntime::new(
                SHARE_GROUP_STATE_TOPIC,
                partitions,
                ShareCoordinatorShard::default,
            ),
        }
    }

    /// Replays every `__share_group_state` partition at start-up.
    pub fn load(&self, catalog: &Catalog) -> std::io::Result<usize> {
        self.runtime.load_all(catalog, |_| {})
    }

    fn partition_of(&self, key: &SharePartitionKey) -> i32 {
        partition_for_key(key, self.runtime.partitions())
    }

    /// ReadShareGroupState: the persisted state of a share-partition, if it has one.
    pub fn read_state(&self, key: &SharePartitionKey) -> Option<ShareGroupOffset> {
        (self.runtime)
            .read(self.partition_of(key), |s| s.read_state(key).cloned())
            .flatten()
    }

    /// Every share-partition of a group that has a state (Kafka's group coordinator keeps them
    /// as the group's initialized topics; here the states themselves say it).
    pub fn keys_of_group(&self, group_id: &str) -> Vec<SharePartitionKey> {
        let mut keys: Vec<SharePartitionKey> = (0..self.runtime.partitions())
            .filter_map(|p| self.runtime.read(p, |s| s.keys_of_group(group_id)))
            .flatten()
            .collect();
        keys.sort_unstable();
        keys
    }

    /// DeleteShareGroupState for every share-partition of a deleted group; the first write error,
    /// if any.
    pub fn delete_group(&self, catalog: &Catalog, group_id: &str, now: i64) -> Result<(), i16> {
        let keys = self.keys_of_group(group_id);
        self.delete_states(catalog, &keys, now)
    }

    /// DeleteShareGroupState of share-partitions; the first write error, if any.
    pub fn delete_states(
        &self,
        catalog: &Catalog,
        keys: &[SharePartitionKey],
        now: i64,
    ) -> Result<(), i16> {
        let mut outcome = Ok(());
        for key in keys {
            let deleted = (self.runtime).write(catalog, self.partition_of(key), now, |s| {
                s.delete_state(key)
            });
            outcome = outcome.and(deleted.map(|_| ()));
        }
        outcome
    }

    /// InitializeShareGroupState: a share-partition starts over at `start_offset` (-1: where
    /// `share.auto.offset.reset` says, at its next fetch), nothing in flight, its state epoch
    /// bumped (AlterShareGroupOffsets).
    pub fn initialize_state(
        &self,
        catalog: &Catalog,
        key: &SharePartitionKey,
        start_offset: i64,
        now: i64,
    ) -> Result<(), i16> {
        let partition = self.partition_of(key);
        (self.runtime).write(catalog, partition, now, |s| {
            s.initialize_state(key, start_offset, now)
        })
    }

    /// WriteShareGroupState: a share-partition's start offset and changed ranges (the first
    /// write of a share-partition is its initial snapshot).
    pub fn write_state(
        &self,
        catalog: &Catalog,
        key: &SharePartitionKey,
        start_offset: i64,
        batches: &[StateBatch],
        now: i64,
    ) -> Result<(), i16> {
        let partition = self.partition_of(key);
        (self.runtime).write(catalog, partition, now, |s| {
            s.write_state(key, start_offset, batches, now)
        })
    }
}

pub struct ShareCoordinatorShard {
    updates_per_snapshot: usize,
    state: HashMap<SharePartitionKey, ShareGroupOffset>,
    /// Updates replayed since each share-partition's last snapshot.
    updates_since_snapshot: HashMap<SharePartitionKey, usize>,
}

impl Default for ShareCoordinatorShard {
    fn default() -> Self {
        ShareCoordinatorShard::new(UPDATES_PER_SNAPSHOT)
    }
}

impl CoordinatorShard for ShareCoordinatorShard {
    fn replay(&mut self, _at: RecordContext, record: &CoordinatorRecord) {
        let Some((key, rec)) = srec::decode(&record.key, record.value.as_deref()) else {
            return;
        };
        match rec {
            ShareStateRecord::Snapshot(Some(s)) => {
                self.state
                    .insert(key.clone(), ShareGroupOffset::from_snapshot(s));
                self.updates_since_snapshot.insert(key, 0);
            }
            ShareStateRecord::Update(Some(u)) => {
                // An update without a snapshot before it has nothing to apply to (Kafka skips it).
                if let Some(state) = self.state.get_mut(&key) {
                    state.apply_update(&u);
                    *self.updates_since_snapshot.entry(key).or_default() += 1;
                }
            }
            ShareStateRecord::Snapshot(None) | ShareStateRecord::Update(None) => {
                self.state.remove(&key);
                self.updates_since_snapshot.remove(&key);
            }
        }
    }
}

impl ShareCoordinatorShard {
    pub fn new(updates_per_snapshot: usize) -> ShareCoordinatorShard {
        ShareCoordinatorShard {
            updates_per_snapshot: updates_per_snapshot.max(1),
            state: HashMap::new(),
            updates_since_snapshot: HashMap::new(),
        }
    }

    /// The persisted state of a share-partition: its start offset and in-flight batches.
    pub fn read_state(&self, key: &SharePartitionKey) -> Option<&ShareGroupOffset> {
        self.state.get(key)
    }

    /// The first snapshot of a share-partition (or a new one replacing its state, with the next
    /// snapshot epoch), starting at `start_offset` with nothing in flight.
    pub fn initialize_state(
        &self,
        key: &SharePartitionKey,
        start_offset: i64,
        now: i64,
    ) -> ShareStateResult<()> {
        let (snapshot_epoch, state_epoch) = self
            .state
            .get(key)
            .map_or((0, 0), |s| (s.snapshot_epoch + 1, s.state_epoch + 1));
        let snapshot = ShareSnapshot {
            snapshot_epoch,
            state_epoch,
            leader_epoch: -1,
            start_offset,
            create_timestamp: now,
            write_timestamp: now,
            state_batches: Vec::new(),
        };
        let value = srec::snapshot_value(&snapshot);
        CoordinatorResult::new(vec![record(SHARE_SNAPSHOT_KEY, key, Some(value))], ())
    }

    /// The changes of a share-partition: a ShareUpdate, or a ShareSnapshot when enough updates
    /// followed the last one. A share-partition never initialized is initialized by it.
    pub fn write_state(
        &self,
        key: &SharePartitionKey,
        start_offset: i64,
        batches: &[StateBatch],
        now: i64,
    ) -> ShareStateResult<()> {
        let Some(current) = self.state.get(key) else {
            let snapshot = ShareSnapshot {
                snapshot_epoch: 0,
                state_epoch: 0,
                leader_epoch: -1,
                start_offset,
                create_timestamp: now,
                write_timestamp: now,
                state_batches: batches.to_vec(),
            };
            let value = srec::snapshot_value(&snapshot);
            return CoordinatorResult::new(vec![record(SHARE_SNAPSHOT_KEY, key, Some(value))], ());
        };
        let start_offset = start_offset.max(current.start_offset);
        let updates = self.updates_since_snapshot.get(key).copied().unwrap_or(0);
        let rec = if updates >= self.updates_per_snapshot {
            let mut merged = current.clone();
            merged.apply_update(&ShareUpdate {
                snapshot_epoch: current.snapshot_epoch,
                leader_epoch: -1,
                start_offset,
                state_batches: batches.to_vec(),
            });
            let snapshot = ShareSnapshot {
                snapshot_epoch: current.snapshot_epoch + 1,
                state_epoch: current.state_epoch,
                leader_epoch: current.leader_epoch,
                start_offset,
                create_timestamp: now,
                write_timestamp: now,
                state_batches: merged.state_batches,
            };
            record(
                SHARE_SNAPSHOT_KEY,
                key,
                Some(srec::snapshot_value(&snapshot)),
            )
        } else {
            let update = ShareUpdate {
                snapshot_epoch: current.snapshot_epoch,
                leader_epoch: current.leader_epoch,
                start_offset,
                state_batches: batches.to_vec(),
            };
            record(SHARE_UPDATE_KEY, key, Some(srec::update_value(&update)))
        };
        CoordinatorResult::new(vec![rec], ())
    }

    /// The share-partitions of a group that have a state here.
    pub fn keys_of_group(&self, group_id: &str) -> Vec<SharePartitionKey> {
        (self.state.keys())
            .filter(|k| k.0 == group_id)
            .cloned()
            .collect()
    }

    /// Deletes a share-partition's state (its group was deleted).
    pub fn delete_state(&self, key: &SharePartitionKey) -> ShareStateResult<bool> {
        if !self.state.contains_key(key) {
            return CoordinatorResult::response(false);
        }
        CoordinatorResult::new(vec![record(SHARE_SNAPSHOT_KEY, key, None)], true)
    }
}

fn record(record_type: i16, key: &SharePartitionKey, value: Option<Bytes>) -> CoordinatorRecord {
    CoordinatorRecord::new(srec::key(record_type, key), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::partition::{
        acknowledge_type::*, AcknowledgementBatch, SharePartition, SharePartitionConfig,
    };
    use uuid::Uuid;

    fn key() -> SharePartitionKey {
        ("g".into(), Uuid::from_u128(7), 0)
    }

    fn at(offset: i64) -> RecordContext {
        RecordContext {
            offset,
            producer_id: crate::coordinator::runtime::NO_PRODUCER_ID,
            producer_epoch: -1,
        }
    }

    /// Runs a write as the runtime does: its records replayed into the shard.
    fn run(shard: &mut ShareCoordinatorShard, result: ShareStateResult<()>) -> usize {
        let n = result.records.len();
        for (i, r) in result.records.iter().enumerate() {
            shard.replay(at(i as i64), r);
        }
        n
    }

    #[test]
    fn acknowledged_records_survive_a_reload_and_acquired_ones_come_back() {
        let mut shard = ShareCoordinatorShard::new(3);
        let mut log: Vec<CoordinatorRecord> = Vec::new();
        let mut write = |shard: &mut ShareCoordinatorShard, r: ShareStateResult<()>| {
            log.extend(r.records.iter().cloned());
            run(shard, r);
        };
        let r = shard.initialize_state(&key(), 0, 1);
        write(&mut shard, r);
        // A member takes 0-9, accepts 0-3 and rejects 5; 4 and 6-9 stay acquired.
        let mut sp = SharePartition::new(SharePartitionConfig::default(), 0);
        sp.acquire("m", 500, &[(0, 9)], 0);
        let r = shard.write_state(&key(), 0, &sp.state_batches(), 2);
        write(&mut shard, r);
        let ack = |first, last, t: i8| AcknowledgementBatch {
            first_offset: first,
            last_offset: last,
            acknowledge_types: vec![t],
        };
        let changes = sp
            .acknowledge("m", &[ack(0, 3, ACCEPT), ack(5, 5, REJECT)])
            .unwrap();
        let r = shard.write_state(&key(), sp.start_offset(), &changes, 3);
        write(&mut shard, r);
        // A new shard replaying the same records (a restart) has the same state.
        let mut reloaded = ShareCoordinatorShard::new(3);
        for (i, r) in log.iter().enumerate() {
            reloaded.replay(at(i as i64), r);
        }
        let state = reloaded.read_state(&key()).unwrap().clone();
        assert_eq!(state, shard.read_state(&key()).unwrap().clone());
        assert_eq!(state.start_offset, 4);
        let back = SharePartition::from_state(
            SharePartitionConfig::default(),
            state.start_offset,
            &state.state_batches,
        );
        // 0-3 are never delivered again; 4 and 6-9 are available, 5 stays archived.
        assert_eq!(back.start_offset(), 4);
        let mut back = back;
        let again = back.acquire("m2", 500, &[(0, 9)], 10);
        let offsets: Vec<(i64, i64)> = again
            .iter()
            .map(|a| (a.first_offset, a.last_offset))
            .collect();
        assert_eq!(offsets, vec![(4, 4), (6, 9)]);
    }

    #[test]
    fn a_snapshot_follows_every_n_updates() {
        let mut shard = ShareCoordinatorShard::new(2);
        let r = shard.initialize_state(&key(), 0, 0);
        run(&mut shard, r);
        let batch = |o: i64| StateBatch {
            first_offset: o,
            last_offset: o,
            delivery_state: 2,
            delivery_count: 1,
        };
        let kinds: Vec<i16> = (0..5)
            .map(|i| {
                let r = shard.write_state(&key(), 0, &[batch(i)], 0);
                let kind = i16::from_be_bytes([r.records[0].key[0], r.records[0].key[1]]);
                run(&mut shard, r);
                kind
            })
            .collect();
        assert_eq!(
            kinds,
            [
                SHARE_UPDATE_KEY,
                SHARE_UPDATE_KEY,
                SHARE_SNAPSHOT_KEY,
                SHARE_UPDATE_KEY,
                SHARE_UPDATE_KEY
            ]
        );
        let state = shard.read_state(&key()).unwrap();
        assert_eq!(state.snapshot_epoch, 1);
        assert_eq!(state.state_batches.len(), 1, "{state:?}");
        assert_eq!(state.state_batches[0].last_offset, 4);
        // Deleting writes the tombstone; replayed, the state is gone.
        let del = shard.delete_state(&key());
        assert!(del.response);
        let records = del.records;
        for r in &records {
            shard.replay(at(0), r);
        }
        assert!(shard.read_state(&key()).is_none());
        assert!(!shard.delete_state(&key()).response);
    }

    #[test]
    fn the_state_partition_hashes_kafkas_coordinator_key() {
        // "g:AAAAAAAAAAAAAAAAAAAABw:0" hashed as Java hashes it.
        let k = key();
        let s = format!("g:{}:0", kafka_uuid_string(k.1));
        assert_eq!(s, "g:AAAAAAAAAAAAAAAAAAAABw:0");
        assert_eq!(partition_for_key(&k, 50), partition_for(&s, 50));
        assert!((0..50).contains(&partition_for_key(&k, 50)));
    }
}
