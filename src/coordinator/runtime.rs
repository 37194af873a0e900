//! The coordinator runtime, after Kafka's `CoordinatorRuntime` / `CoordinatorResult` /
//! `CoordinatorShard` (coordinator-common): how a coordinator's state lives in, and only changes
//! through, the records of its internal topic.
//!
//! - A coordinator's state is split into **shards**, one per partition of its internal topic
//!   (`__consumer_offsets` for groups), each behind its own lock, so requests for groups on
//!   different partitions never wait for each other.
//! - A **write operation** takes the shard (and `now`, captured by the caller's closure) and
//!   returns a [`CoordinatorResult`]: the records to write and the response. The runtime appends
//!   the records to the shard's partition through the log API, then **replays** them into the
//!   shard with [`CoordinatorShard::replay`], the same function that rebuilds the shard when it is
//!   **loaded** at start-up, and only then hands back the response. A failed append leaves the
//!   shard as it was and answers the error Kafka answers (`operation_error`).
//! - An operation whose state machine is live (a classic group's members parked in JoinGroup,
//!   a KIP-848 group's session deadlines) applies its change itself and returns its records with
//!   `replay_records = false`, as Kafka's GroupMetadataManager does for classic groups
//!   (`new CoordinatorResult<>(records, appendFuture, false)`); such an operation undoes or
//!   completes what depends on the write in its `on_append` hook (Kafka's appendFuture), which
//!   the runtime runs with the append's outcome before it answers. A deferred answer (SyncGroup's
//!   waiting members) is therefore only sent once the write is decided.
//! - Timers (session expiry, rebalance timeouts, offset expiry) are write operations too.
//! - Reads take the shard's lock and look; they never change it.
//!
//! The lock is held across the append, as Kafka's runtime runs one event of a shard at a time;
//! it is never held across an await.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, RwLock};

use crate::metadata::Catalog;
use crate::protocol::errors;

/// One record of an internal topic as it is stored: its key and its value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

impl CoordinatorRecord {
    pub fn new(key: Bytes, value: Option<Bytes>) -> CoordinatorRecord {
        CoordinatorRecord { key, value }
    }
}

/// A coordinator's state for one partition of its internal topic.
pub trait CoordinatorShard: Send {
    /// Applies one record of the partition: at load, and after every write whose result asks for
    /// it. Records the shard does not know are skipped (a newer broker may have written them).
    fn replay(&mut self, record: &CoordinatorRecord, now: i64);
}

/// Runs once the append is decided, with its outcome (the mapped error on failure), under the
/// shard's lock (Kafka's CoordinatorResult.appendFuture).
pub type OnAppend<S> = Box<dyn FnOnce(&mut S, Result<(), i16>) + Send>;

/// What a write operation returns (Kafka's CoordinatorResult).
pub struct CoordinatorResult<S, T> {
    pub records: Vec<CoordinatorRecord>,
    pub response: T,
    /// False when the operation already applied its records to a live state machine.
    pub replay_records: bool,
    pub on_append: Option<OnAppend<S>>,
}

impl<S, T> CoordinatorResult<S, T> {
    /// Records to write and replay, and the response to give once they are written.
    pub fn new(records: Vec<CoordinatorRecord>, response: T) -> CoordinatorResult<S, T> {
        CoordinatorResult {
            records,
            response,
            replay_records: true,
            on_append: None,
        }
    }

    /// A response that writes nothing.
    pub fn response(response: T) -> CoordinatorResult<S, T> {
        CoordinatorResult::new(Vec::new(), response)
    }

    /// Records the operation already applied to its live state; `on_append` completes or undoes
    /// that state once the append is decided.
    pub fn applied(
        records: Vec<CoordinatorRecord>,
        response: T,
        on_append: impl FnOnce(&mut S, Result<(), i16>) + Send + 'static,
    ) -> CoordinatorResult<S, T> {
        CoordinatorResult {
            records,
            response,
            replay_records: false,
            on_append: Some(Box::new(on_append)),
        }
    }
}

/// A shard behind its lock; `None` while it is not loaded (the partition is not ours).
type ShardSlot<S> = Arc<Mutex<Option<S>>>;

pub struct CoordinatorRuntime<S> {
    /// The internal topic, created on the first write with `default_partitions` partitions.
    topic: &'static str,
    default_partitions: i32,
    new_shard: fn() -> S,
    shards: RwLock<Vec<ShardSlot<S>>>,
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// A runtime whose shards are loaded and empty, as for a topic not yet created.
    pub fn new(topic: &'static str, partitions: i32, new_shard: fn() -> S) -> Self {
        let partitions = partitions.max(1);
        CoordinatorRuntime {
            topic,
            default_partitions: partitions,
            new_shard,
            shards: RwLock::new(
                (0..partitions)
                    .map(|_| Arc::new(Mutex::new(Some(new_shard()))))
                    .collect(),
            ),
        }
    }

    /// How many shards (partitions of the internal topic) there are.
    pub fn partitions(&self) -> i32 {
        self.shards.read().len() as i32
    }

    fn slot(&self, partition: i32) -> Option<ShardSlot<S>> {
        let index = usize::try_from(partition).ok()?;
        self.shards.read().get(index).cloned()
    }

    /// Loads every partition of the internal topic (its partition count wins over the configured
    /// one, as Kafka's partitionFor uses the topic's). `on_loaded` runs on each shard after its
    /// replay, before requests see it (Kafka's CoordinatorShard.onLoaded). Returns the number of
    /// records replayed.
    pub fn load_all(
        &self,
        catalog: &Catalog,
        now: i64,
        on_loaded: impl Fn(&mut S),
    ) -> std::io::Result<usize> {
        let partitions = catalog
            .get(self.topic)
            .map_or(self.default_partitions, |t| t.partitions.len() as i32);
        let mut replayed = 0;
        let mut shards = Vec::new();
        for p in 0..partitions {
            let (shard, n) = self.replay_partition(catalog, p, now)?;
            let mut shard = shard;
            on_loaded(&mut shard);
            replayed += n;
            shards.push(Arc::new(Mutex::new(Some(shard))));
        }
        *self.shards.write() = shards;
        Ok(replayed)
    }

    /// Rebuilds one shard by replaying its partition, then serves it.
    pub fn load(&self, catalog: &Catalog, partition: i32, now: i64) -> std::io::Result<usize> {
        let (shard, n) = self.replay_partition(catalog, partition, now)?;
        if let Some(slot) = self.slot(partition) {
            *slot.lock() = Some(shard);
        }
        Ok(n)
    }

    /// Stops serving a shard and drops its state; its operations answer NOT_COORDINATOR.
    pub fn unload(&self, partition: i32) {
        if let Some(slot) = self.slot(partition) {
            *slot.lock() = None;
        }
    }

    /// A fresh shard with every record of the partition replayed, and how many there were.
    fn replay_partition(
        &self,
        catalog: &Catalog,
        partition: i32,
        now: i64,
    ) -> std::io::Result<(S, usize)> {
        let mut shard = (self.new_shard)();
        let Some(p) = catalog
            .get(self.topic)
            .and_then(|t| t.partition(partition).cloned())
        else {
            return Ok((shard, 0));
        };
        let mut replayed = 0;
        let (mut offset, hw) = p.offsets();
        while offset < hw {
            let plan = p
                .plan_read(offset)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut bytes = plan.read(16 << 20, true)?;
            // Continue after the last batch read, whatever its records: compaction may leave
            // batches with gaps or none, and one that does not decode must not stop progress.
            let next = crate::log::batch::BatchIter::new(&bytes)
                .last()
                .map_or(offset, |(_, h)| h.next_offset());
            if bytes.is_empty() || next <= offset {
                break;
            }
            offset = next;
            while !bytes.is_empty() {
                let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
                    break;
                };
                for r in set.records {
                    let Some(key) = r.key else { continue };
                    shard.replay(&CoordinatorRecord::new(key, r.value), now);
                    replayed += 1;
                }
            }
        }
        Ok((shard, replayed))
    }

    /// Runs a write operation on a shard: appends its records, replays them, runs its
    /// `on_append`, and answers its response, or the mapped error when the append failed (the
    /// shard then is as the operation left it before the append: unchanged, unless it applied
    /// its records itself and undoes them in `on_append`).
    pub fn write<T>(
        &self,
        catalog: &Catalog,
        partition: i32,
        now: i64,
        op: impl FnOnce(&mut S) -> CoordinatorResult<S, T>,
    ) -> Result<T, i16> {
        let slot = self.slot(partition).ok_or(errors::NOT_COORDINATOR)?;
        let mut guard = slot.lock();
        let shard = guard.as_mut().ok_or(errors::NOT_COORDINATOR)?;
        let result = op(shard);
        let outcome = if result.records.is_empty() {
            Ok(())
        } else {
            self.append(catalog, partition, &result.records, now)
                .map_err(operation_error)
        };
        if outcome.is_ok() && result.replay_records {
            for record in &result.records {
                shard.replay(record, now);
            }
        }
        if let Some(on_append) = result.on_append {
            on_append(shard, outcome);
        }
        outcome.map(|()| result.response)
    }

    /// Runs `f` on a loaded shard without changing it.
    pub fn read<R>(&self, partition: i32, f: impl FnOnce(&S) -> R) -> Option<R> {
        let slot = self.slot(partition)?;
        let guard = slot.lock();
        guard.as_ref().map(f)
    }

    /// Appends records as one batch to the partition; the error is the append's Kafka error code.
    fn append(
        &self,
        catalog: &Catalog,
        partition: i32,
        records: &[CoordinatorRecord],
        now: i64,
    ) -> Result<(), i16> {
        let topic = catalog
            .get_or_create(self.topic, self.partitions(), now)
            .map_err(|_| errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let log = topic
            .partition(partition)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder batches records whose offset - sequence agree; no producer id, so
                // the sequence has no other meaning here.
                sequence: i as i32,
                timestamp: now,
                key: Some(r.key.clone()),
                value: r.value.clone(),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options)
            .map_err(|_| errors::UNKNOWN_SERVER_ERROR)?;
        log.append(&buf, 9, now).map(|_| ()).map_err(|e| {
            tracing::error!(topic = self.topic, partition, error = %e, "coordinator append failed");
            errors::log_error_code(&e)
        })
    }
}

/// The error a request gets when its operation's append failed (Kafka's
/// CoordinatorOperationExceptionHelper.handleOperationException, the same table as
/// GroupMetadataManager.appendGroupMetadataErrorToResponseError): the internal partition missing
/// is COORDINATOR_NOT_AVAILABLE (retry), a storage failure NOT_COORDINATOR (find the coordinator
/// again), a batch over max.message.bytes UNKNOWN_SERVER_ERROR.
pub fn operation_error(append_error: i16) -> i16 {
    match append_error {
        errors::UNKNOWN_TOPIC_OR_PARTITION => errors::COORDINATOR_NOT_AVAILABLE,
        errors::KAFKA_STORAGE_ERROR => errors::NOT_COORDINATOR,
        errors::MESSAGE_TOO_LARGE | errors::RECORD_LIST_TOO_LARGE => errors::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;

    /// A toy coordinator: a map of key → value, changed only by replay.
    #[derive(Default, Debug, PartialEq)]
    struct Kv(std::collections::BTreeMap<Bytes, Bytes>);

    impl CoordinatorShard for Kv {
        fn replay(&mut self, r: &CoordinatorRecord, _now: i64) {
            match &r.value {
                Some(v) => self.0.insert(r.key.clone(), v.clone()),
                None => self.0.remove(&r.key),
            };
        }
    }

    fn put(key: &str, value: Option<Vec<u8>>) -> CoordinatorRecord {
        CoordinatorRecord::new(Bytes::from(key.to_string()), value.map(Bytes::from))
    }

    fn catalog(dir: &std::path::Path, max_message_bytes: usize, create: bool) -> Catalog {
        let cfg = LogConfig {
            max_message_bytes,
            ..LogConfig::default()
        };
        Catalog::open(dir, cfg, create, 0).unwrap()
    }

    #[test]
    fn a_failed_append_changes_nothing_and_answers_the_mapped_error() {
        // Kafka: the runtime reverts the shard to its last written offset when the append fails,
        // and the request gets handleOperationException's mapping (RECORD_LIST_TOO_LARGE →
        // UNKNOWN_SERVER_ERROR).
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path(), 1_000, true);
        let rt = CoordinatorRuntime::new("__kv", 2, Kv::default);
        let ok = rt.write(&catalog, 1, 1, |_| {
            CoordinatorResult::new(vec![put("a", Some(vec![1]))], "done")
        });
        assert_eq!(ok, Ok("done"));
        let failed = rt.write(&catalog, 1, 2, |_| {
            CoordinatorResult::new(vec![put("a", None), put("b", Some(vec![0; 2_000]))], "x")
        });
        assert_eq!(failed, Err(errors::UNKNOWN_SERVER_ERROR));
        let state = rt.read(1, |s| s.0.clone()).unwrap();
        assert_eq!(state.len(), 1, "{state:?}");
        assert_eq!(state[&Bytes::from("a")], Bytes::from(vec![1]));
        // An operation that applied its change itself undoes it in on_append.
        let failed = rt.write(&catalog, 1, 3, |s| {
            s.0.insert("c".into(), "live".into());
            CoordinatorResult::applied(vec![put("c", Some(vec![0; 2_000]))], (), |s: &mut Kv, r| {
                assert_eq!(r, Err(errors::UNKNOWN_SERVER_ERROR));
                s.0.remove(&Bytes::from("c"));
            })
        });
        assert_eq!(failed, Err(errors::UNKNOWN_SERVER_ERROR));
        assert!(rt
            .read(1, |s| !s.0.contains_key(&Bytes::from("c")))
            .unwrap());
    }

    #[test]
    fn load_replays_what_live_writes_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let live = {
            let catalog = catalog(dir.path(), 1 << 20, true);
            let rt = CoordinatorRuntime::new("__kv", 3, Kv::default);
            for (i, (k, v)) in [("a", Some(1)), ("b", Some(2)), ("a", None), ("c", Some(3))]
                .into_iter()
                .enumerate()
            {
                let r = put(k, v.map(|v| vec![v]));
                rt.write(&catalog, 2, i as i64, |_| {
                    CoordinatorResult::new(vec![r], ())
                })
                .unwrap();
            }
            rt.read(2, |s| s.0.clone()).unwrap()
        };
        let catalog = catalog(dir.path(), 1 << 20, false);
        let rt = CoordinatorRuntime::new("__kv", 1, Kv::default);
        assert_eq!(rt.load_all(&catalog, 9, |_| {}).unwrap(), 4);
        assert_eq!(rt.partitions(), 3, "the topic's partition count wins");
        assert_eq!(rt.read(2, |s| s.0.clone()).unwrap(), live);
        assert!(rt.read(0, |s| s.0.is_empty()).unwrap());
        rt.unload(2);
        assert_eq!(
            rt.write(&catalog, 2, 10, |_| CoordinatorResult::response(())),
            Err(errors::NOT_COORDINATOR)
        );
        rt.load(&catalog, 2, 11).unwrap();
        assert_eq!(rt.read(2, |s| s.0.clone()).unwrap(), live);
    }
}
