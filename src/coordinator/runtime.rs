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
//! - A **transactional write** (Kafka's scheduleTransactionalWriteOperation: TxnOffsetCommit)
//!   carries the producer id and epoch of the transaction: its records are appended as one
//!   transactional batch of that producer (the log checks the epoch: a fenced producer gets
//!   INVALID_PRODUCER_EPOCH) and replayed as belonging to it. The shard keeps them aside until
//!   **`complete_transaction`** (Kafka's scheduleTransactionCompletion) writes the commit or
//!   abort marker that the transaction coordinator sends, and replays the end of the
//!   transaction: on commit the producer's records take effect, on abort they are dropped.
//! - **Loading** replays the partition as Kafka's CoordinatorLoaderImpl does: each record with
//!   its offset and its batch's producer id, and each control batch (a transaction marker) as
//!   the end of that producer's transaction, never as a record of the coordinator. It reads to
//!   the log end: a new leader's log holds everything committed, and what it holds past the high
//!   watermark becomes committed under it.
//! - **Following leadership** (a cluster of processes, Kafka's CoordinatorRuntime.
//!   scheduleLoadOperation / scheduleUnloadOperation, driven by the replica manager through
//!   [`super::PartitionLeadershipListener`]): a shard is served only while this broker leads its
//!   partition. An election marks it loading (requests get COORDINATOR_LOAD_IN_PROGRESS) and
//!   schedules the replay, which `run_scheduled_loads` runs off the metadata path; a resignation
//!   drops it (NOT_COORDINATOR). In one process every shard is loaded at start-up instead
//!   (`load_all`) and stays loaded.
//! - A write to a shard that follows leadership is answered once the high watermark passes it
//!   (Kafka's runtime completes a write's deferred event then): the runtime records where it
//!   wrote (`super::commit`) and the request waits for it before its answer leaves.
//! - Timers (session expiry, rebalance timeouts, offset expiry) are write operations too.
//! - The `now` the runtime takes is the wall clock (`Clock::now_ms`): it stamps the batches it
//!   writes, as Kafka's runtime stamps them with `time.milliseconds()`. Deadlines are the
//!   shards' own, on the monotonic reading their operations capture; a replay takes no time at
//!   all, so a shard sets the deadlines of what it loaded in its `on_loaded` (Kafka's onLoaded
//!   schedules the session timers of the loaded members).
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

use crate::log::control::{CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT};
use crate::log::{AppendOrigin, FetchIsolation};
use crate::metadata::Catalog;
use crate::protocol::cluster::NO_LEADER_EPOCH;
use crate::protocol::errors;
use crate::txn::TxnMarker;

/// The producer id of a batch written outside any transaction (Kafka's NO_PRODUCER_ID).
pub const NO_PRODUCER_ID: i64 = -1;

/// The producer a transactional write belongs to (Kafka's ProducerIdAndEpoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Where a replayed record sits in the log and which producer's batch holds it (the arguments
/// of Kafka's CoordinatorPlayback.replay besides the record): `producer_id` is
/// [`NO_PRODUCER_ID`] unless the record belongs to a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordContext {
    pub offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

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

/// A coordinator's state for one partition of its internal topic (Kafka's CoordinatorShard and
/// CoordinatorPlayback).
pub trait CoordinatorShard: Send {
    /// Applies one record of the partition: at load, and after every write whose result asks for
    /// it. Records the shard does not know are skipped (a newer broker may have written them).
    /// A record of a transaction (`at.producer_id` set) is held for that producer until
    /// `replay_end_transaction`.
    fn replay(&mut self, at: RecordContext, record: &CoordinatorRecord);

    /// Applies a transaction marker: the producer's records replayed since its last marker take
    /// effect (commit) or are dropped (abort). A shard without transactional state ignores it.
    fn replay_end_transaction(&mut self, _marker: &TxnMarker) {}

    /// The shard serves from this coordinator epoch: its partition's leader epoch when it was
    /// elected, 0 where shards do not follow leadership (one process has always led them).
    /// Kafka's transaction coordinator stamps it on the markers it writes.
    fn loaded_at(&mut self, _coordinator_epoch: i32) {}

    /// The shard is dropped, its partition led elsewhere now (Kafka's CoordinatorShard.
    /// onUnloaded): whatever waits on it is answered.
    fn on_unloaded(&mut self) {}
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

    /// The same records and append handling, with the response mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> CoordinatorResult<S, U> {
        CoordinatorResult {
            records: self.records,
            response: f(self.response),
            replay_records: self.replay_records,
            on_append: self.on_append,
        }
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

/// Where a shard stands (Kafka's CoordinatorRuntime.CoordinatorState).
enum ShardState<S> {
    /// This broker does not lead the partition: NOT_COORDINATOR.
    Unloaded,
    /// Elected at this leader epoch, its replay scheduled or running: COORDINATOR_LOAD_IN_PROGRESS.
    Loading(i32),
    /// Serving, loaded at this leader epoch ([`NOT_FOLLOWING`] where shards do not follow
    /// leadership).
    Loaded(i32, S),
}

/// The epoch of a shard loaded at start-up in one process (it never moves).
const NOT_FOLLOWING: i32 = -1;

/// The coordinator epoch of a shard loaded at `leader_epoch` (see `CoordinatorShard::loaded_at`).
fn coordinator_epoch(leader_epoch: i32) -> i32 {
    leader_epoch.max(0)
}

impl<S> ShardState<S> {
    /// The shard and the epoch it was loaded at, or the error a request gets.
    fn loaded(&mut self) -> Result<(i32, &mut S), i16> {
        match self {
            ShardState::Loaded(epoch, shard) => Ok((*epoch, shard)),
            ShardState::Loading(_) => Err(errors::COORDINATOR_LOAD_IN_PROGRESS),
            ShardState::Unloaded => Err(errors::NOT_COORDINATOR),
        }
    }

    /// The leader epoch it is loading or loaded at.
    fn epoch(&self) -> Option<i32> {
        match self {
            ShardState::Loaded(epoch, _) | ShardState::Loading(epoch) => Some(*epoch),
            ShardState::Unloaded => None,
        }
    }
}

/// A shard behind its lock.
type ShardSlot<S> = Arc<Mutex<ShardState<S>>>;

pub struct CoordinatorRuntime<S> {
    /// The internal topic, created on the first write with `default_partitions` partitions.
    topic: &'static str,
    default_partitions: i32,
    new_shard: fn() -> S,
    shards: RwLock<Vec<ShardSlot<S>>>,
    /// Loads elections scheduled, (partition, leader epoch), for `run_scheduled_loads`.
    scheduled: Mutex<Vec<(i32, i32)>>,
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
                    .map(|_| Arc::new(Mutex::new(ShardState::Loaded(NOT_FOLLOWING, new_shard()))))
                    .collect(),
            ),
            scheduled: Mutex::new(Vec::new()),
        }
    }

    /// The internal topic whose partitions are this runtime's shards.
    pub fn topic(&self) -> &'static str {
        self.topic
    }

    /// From now on a shard is served only where this broker leads its partition (a cluster of
    /// processes): every shard is unloaded until an election loads it (`schedule_load`).
    pub fn follow_leadership(&self) {
        for slot in self.shards.read().iter() {
            *slot.lock() = ShardState::Unloaded;
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
        on_loaded: impl Fn(&mut S),
    ) -> std::io::Result<usize> {
        let partitions = catalog
            .get(self.topic)
            .map_or(self.default_partitions, |t| t.partitions.len() as i32);
        let mut replayed = 0;
        let mut shards = Vec::new();
        for p in 0..partitions {
            let (shard, n) = self.replay_partition(catalog, p)?;
            let mut shard = shard;
            shard.loaded_at(coordinator_epoch(NOT_FOLLOWING));
            on_loaded(&mut shard);
            replayed += n;
            let state = ShardState::Loaded(NOT_FOLLOWING, shard);
            shards.push(Arc::new(Mutex::new(state)));
        }
        *self.shards.write() = shards;
        Ok(replayed)
    }

    /// Rebuilds one shard by replaying its partition, then serves it.
    pub fn load(&self, catalog: &Catalog, partition: i32) -> std::io::Result<usize> {
        let (mut shard, n) = self.replay_partition(catalog, partition)?;
        shard.loaded_at(coordinator_epoch(NOT_FOLLOWING));
        if let Some(slot) = self.slot(partition) {
            *slot.lock() = ShardState::Loaded(NOT_FOLLOWING, shard);
        }
        Ok(n)
    }

    /// This broker leads `partition` (of `partitions`, the topic's count) from `leader_epoch`
    /// (Kafka's onElection → scheduleLoadOperation): the shard answers
    /// COORDINATOR_LOAD_IN_PROGRESS until `run_scheduled_loads` has replayed it. An election the
    /// shard is already loading or loaded at changes nothing (an ISR change keeps the epoch).
    /// Returns whether a load was scheduled.
    pub fn schedule_load(&self, partition: i32, leader_epoch: i32, partitions: i32) -> bool {
        let Ok(index) = usize::try_from(partition) else {
            return false;
        };
        {
            // The topic's partition count wins over the configured one (partitionFor).
            let mut shards = self.shards.write();
            let wanted = usize::try_from(partitions).unwrap_or(0).max(index + 1);
            while shards.len() < wanted {
                shards.push(Arc::new(Mutex::new(ShardState::Unloaded)));
            }
        }
        let Some(slot) = self.slot(partition) else {
            return false;
        };
        let mut state = slot.lock();
        if state.epoch().is_some_and(|e| e >= leader_epoch) {
            return false;
        }
        *state = ShardState::Loading(leader_epoch);
        self.scheduled.lock().push((partition, leader_epoch));
        true
    }

    /// Replays the shards elections scheduled, each from its partition's local log, and serves
    /// those still elected at the same epoch once replayed (a resignation or a newer election
    /// meanwhile wins); `on_loaded` runs on each before requests see it. Returns how many were
    /// loaded. A shard whose log cannot be read stays loading and is tried again at the next
    /// election (Kafka's load failure leaves the shard failed until then).
    pub fn run_scheduled_loads(&self, catalog: &Catalog, on_loaded: impl Fn(&mut S)) -> usize {
        let scheduled = std::mem::take(&mut *self.scheduled.lock());
        let mut loaded = 0;
        for (partition, epoch) in scheduled {
            let Some(slot) = self.slot(partition) else {
                continue;
            };
            let still_elected =
                |state: &ShardState<S>| matches!(state, ShardState::Loading(e) if *e == epoch);
            if !still_elected(&slot.lock()) {
                continue;
            }
            // The replay runs without the shard's lock: requests meanwhile answer
            // COORDINATOR_LOAD_IN_PROGRESS rather than wait.
            let (mut shard, records) = match self.replay_partition(catalog, partition) {
                Ok(replayed) => replayed,
                Err(e) => {
                    tracing::error!(topic = self.topic, partition, error = %e, "cannot load the coordinator shard");
                    continue;
                }
            };
            let mut state = slot.lock();
            if still_elected(&state) {
                shard.loaded_at(coordinator_epoch(epoch));
                on_loaded(&mut shard);
                *state = ShardState::Loaded(epoch, shard);
                loaded += 1;
                tracing::info!(
                    topic = self.topic,
                    partition,
                    epoch,
                    records,
                    "loaded the coordinator shard"
                );
            }
        }
        loaded
    }

    /// Stops serving a shard and drops its state (Kafka's onResignation →
    /// scheduleUnloadOperation); its operations answer NOT_COORDINATOR.
    pub fn unload(&self, partition: i32) {
        if let Some(slot) = self.slot(partition) {
            let mut state = slot.lock();
            if let ShardState::Loaded(epoch, shard) = &mut *state {
                shard.on_unloaded();
                tracing::info!(
                    topic = self.topic,
                    partition,
                    epoch = *epoch,
                    "unloaded the coordinator shard"
                );
            }
            *state = ShardState::Unloaded;
        }
    }

    /// A fresh shard with every record of the partition replayed, and how many there were.
    fn replay_partition(&self, catalog: &Catalog, partition: i32) -> std::io::Result<(S, usize)> {
        let mut shard = (self.new_shard)();
        let Some(p) = catalog
            .get(self.topic)
            .and_then(|t| t.partition(partition).cloned())
        else {
            return Ok((shard, 0));
        };
        let mut replayed = 0;
        let (mut offset, _) = p.offsets();
        let end = p.with_log(|l| l.log_end_offset());
        while offset < end {
            let plan = p
                .plan_fetch(offset, FetchIsolation::LogEnd, NO_LEADER_EPOCH)
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
            replayed += replay_batches(&mut shard, &mut bytes);
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
        self.run_write(catalog, partition, now, None, op)
    }

    /// A write operation inside a producer's transaction (Kafka's
    /// scheduleTransactionalWriteOperation): its records are appended as one transactional batch
    /// of `producer` and replayed as that producer's, pending until `complete_transaction`.
    pub fn write_transactional<T>(
        &self,
        catalog: &Catalog,
        partition: i32,
        now: i64,
        producer: ProducerIdAndEpoch,
        op: impl FnOnce(&mut S) -> CoordinatorResult<S, T>,
    ) -> Result<T, i16> {
        self.run_write(catalog, partition, now, Some(producer), op)
    }

    fn run_write<T>(
        &self,
        catalog: &Catalog,
        partition: i32,
        now: i64,
        producer: Option<ProducerIdAndEpoch>,
        op: impl FnOnce(&mut S) -> CoordinatorResult<S, T>,
    ) -> Result<T, i16> {
        let slot = self.slot(partition).ok_or(errors::NOT_COORDINATOR)?;
        let mut guard = slot.lock();
        let (epoch, shard) = guard.loaded()?;
        let result = op(shard);
        let outcome = if result.records.is_empty() {
            // An operation that writes nothing may still answer from earlier writes not yet
            // committed (a member's assignment from a group record): Kafka's runtime answers it
            // once the shard's last written offset is committed, and so does this.
            if epoch != NOT_FOLLOWING {
                if let Some(end) = self.log_end(catalog, partition) {
                    self.written(partition, epoch, end);
                }
            }
            Ok(None)
        } else {
            let batch = Batch::Records(&result.records, producer);
            let appended = self.append(catalog, partition, batch, now);
            if let Ok(base_offset) = appended {
                let end_offset = base_offset + result.records.len() as i64;
                self.written(partition, epoch, end_offset);
            }
            appended.map(Some).map_err(operation_error)
        };
        if let (Ok(Some(base_offset)), true) = (outcome, result.replay_records) {
            let (producer_id, producer_epoch) =
                producer.map_or((NO_PRODUCER_ID, -1), |p| (p.producer_id, p.producer_epoch));
            for (offset, record) in (base_offset..).zip(&result.records) {
                let at = RecordContext {
                    offset,
                    producer_id,
                    producer_epoch,
                };
                shard.replay(at, record);
            }
        }
        let outcome = outcome.map(|_| ());
        if let Some(on_append) = result.on_append {
            on_append(shard, outcome);
        }
        outcome.map(|()| result.response)
    }

    /// Ends a producer's transaction on a shard (Kafka's scheduleTransactionCompletion, which the
    /// transaction coordinator's markers reach through WriteTxnMarkers): writes the marker to the
    /// partition, then replays it, so that the producer's pending records take effect (commit) or
    /// vanish (abort). A marker that cannot be written changes nothing and answers the mapped
    /// error (the log's: e.g. TRANSACTION_COORDINATOR_FENCED, INVALID_PRODUCER_EPOCH), for the
    /// coordinator to retry.
    pub fn complete_transaction(
        &self,
        catalog: &Catalog,
        partition: i32,
        marker: TxnMarker,
        now: i64,
    ) -> Result<(), i16> {
        let slot = self.slot(partition).ok_or(errors::NOT_COORDINATOR)?;
        let mut guard = slot.lock();
        let (epoch, shard) = guard.loaded()?;
        let offset = self
            .append(catalog, partition, Batch::Marker(&marker), now)
            .map_err(operation_error)?;
        self.written(partition, epoch, offset + 1);
        shard.replay_end_transaction(&marker);
        Ok(())
    }

    /// The end of the shard's partition: where its last write ended.
    fn log_end(&self, catalog: &Catalog, partition: i32) -> Option<i64> {
        let log = catalog.get(self.topic)?.partition(partition).cloned()?;
        Some(log.with_log(|l| l.log_end_offset()))
    }

    /// A write of a shard that follows leadership is committed once the high watermark passes
    /// `end_offset`: the request being served waits for that before it answers.
    fn written(&self, partition: i32, epoch: i32, end_offset: i64) {
        if epoch != NOT_FOLLOWING {
            super::commit::record(super::commit::CommitPoint {
                topic: self.topic,
                partition,
                leader_epoch: epoch,
                end_offset,
            });
        }
    }

    /// Runs `f` on a loaded shard without changing it.
    pub fn read<R>(&self, partition: i32, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.try_read(partition, f).ok().flatten()
    }

    /// `read` as Kafka's scheduleReadOperation answers it: COORDINATOR_LOAD_IN_PROGRESS while the
    /// shard loads and NOT_COORDINATOR where it is not loaded here, so that a request is never
    /// answered from a shard that has not replayed its partition yet (an OffsetFetch on a new
    /// coordinator answered "no offsets" while it loaded). `Ok(None)` where the partition has no
    /// shard at all (a single broker before the internal topic's first write): nothing stored.
    pub fn try_read<R>(&self, partition: i32, f: impl FnOnce(&S) -> R) -> Result<Option<R>, i16> {
        let Some(slot) = self.slot(partition) else {
            return Ok(None);
        };
        let mut guard = slot.lock();
        let (_, shard) = guard.loaded()?;
        Ok(Some(f(shard)))
    }

    /// Whether requests for `partition` can be served here now (`try_read`'s errors).
    pub fn readiness(&self, partition: i32) -> Result<(), i16> {
        self.try_read(partition, |_| ()).map(|_| ())
    }

    /// The one place a coordinator's writes reach its partition's log (Kafka's
    /// PartitionWriter.append, origin COORDINATOR): creates the internal topic on the first
    /// write, appends the batch, and answers its base offset, or the append's Kafka error code.
    fn append(
        &self,
        catalog: &Catalog,
        partition: i32,
        batch: Batch<'_>,
        now: i64,
    ) -> Result<i64, i16> {
        let topic = catalog
            .get_or_create(self.topic, self.partitions(), now)
            .map_err(|_| errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let log = topic
            .partition(partition)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let appended = match batch {
            Batch::Records(records, producer) => {
                let buf = encode_batch(records, producer, now)?;
                log.append_with_origin(&buf, AppendOrigin::Coordinator, now)
                    .map(|info| info.base_offset)
            }
            Batch::Marker(marker) => log.append_txn_marker(marker, now),
        };
        appended.map_err(|e| {
            tracing::error!(topic = self.topic, partition, error = %e, "coordinator append failed");
            errors::log_error_code(&e)
        })
    }
}

/// What the runtime appends to a shard's partition.
enum Batch<'a> {
    /// An operation's records: one batch, transactional when a producer is given.
    Records(&'a [CoordinatorRecord], Option<ProducerIdAndEpoch>),
    /// A transaction's commit or abort marker (a control batch).
    Marker(&'a TxnMarker),
}

/// One batch of records as Kafka's runtime builds it (CoordinatorRuntime.maybeAllocateNewBatch):
/// CreateTime, uncompressed, and for a transaction that producer's id and epoch with the
/// transactional flag and base sequence 0 (the log does not check a coordinator's sequences).
fn encode_batch(
    records: &[CoordinatorRecord],
    producer: Option<ProducerIdAndEpoch>,
    now: i64,
) -> Result<BytesMut, i16> {
    let (producer_id, producer_epoch) =
        producer.map_or((NO_PRODUCER_ID, -1), |p| (p.producer_id, p.producer_epoch));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder batches records whose offset - sequence agree.
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
    Ok(buf)
}

/// Replays every batch in `bytes` into `shard`, as Kafka's CoordinatorLoaderImpl: a control
/// batch ends its producer's transaction (a COMMIT or ABORT marker; other control records are
/// skipped), any other batch's records are replayed with their offset and the batch's producer.
/// A batch that does not decode ends the read. Returns the number of records replayed.
fn replay_batches<S: CoordinatorShard>(shard: &mut S, bytes: &mut Bytes) -> usize {
    let mut replayed = 0;
    while !bytes.is_empty() {
        let Ok(set) = RecordBatchDecoder::decode(bytes) else {
            break;
        };
        for r in set.records {
            if r.control {
                if let Some(commit) = r.key.as_deref().and_then(marker_type) {
                    let coordinator_epoch = r.value.as_deref().map_or(-1, marker_epoch);
                    shard.replay_end_transaction(&TxnMarker {
                        producer_id: r.producer_id,
                        producer_epoch: r.producer_epoch,
                        coordinator_epoch,
                        commit,
                    });
                }
                continue;
            }
            let Some(key) = r.key else { continue };
            let at = RecordContext {
                offset: r.offset,
                producer_id: r.producer_id,
                producer_epoch: r.producer_epoch,
            };
            shard.replay(at, &CoordinatorRecord::new(key, r.value));
            replayed += 1;
        }
    }
    replayed
}

/// The type of a control record's key (Kafka's ControlRecordType: `version int16 | type int16`,
/// 0 ABORT, 1 COMMIT): whether it is a commit, or `None` for other control records.
fn marker_type(key: &[u8]) -> Option<bool> {
    match key {
        [_, _, a, b, ..] => match i16::from_be_bytes([*a, *b]) {
            CONTROL_TYPE_COMMIT => Some(true),
            CONTROL_TYPE_ABORT => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The coordinator epoch of an EndTransactionMarker value (`version int16 | coordinator_epoch
/// int32`), -1 when it is cut short.
fn marker_epoch(value: &[u8]) -> i32 {
    match value {
        [_, _, a, b, c, d, ..] => i32::from_be_bytes([*a, *b, *c, *d]),
        _ => -1,
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

    /// A toy coordinator: a map of key → value, changed only by replay; a transaction's records
    /// wait by producer id for its marker.
    #[derive(Default, Debug, PartialEq)]
    struct Kv(
        std::collections::BTreeMap<Bytes, Bytes>,
        std::collections::BTreeMap<i64, Vec<CoordinatorRecord>>,
    );

    impl Kv {
        fn apply(&mut self, r: &CoordinatorRecord) {
            match &r.value {
                Some(v) => self.0.insert(r.key.clone(), v.clone()),
                None => self.0.remove(&r.key),
            };
        }
    }

    impl CoordinatorShard for Kv {
        fn replay(&mut self, at: RecordContext, r: &CoordinatorRecord) {
            if at.producer_id == NO_PRODUCER_ID {
                self.apply(r);
            } else {
                self.1.entry(at.producer_id).or_default().push(r.clone());
            }
        }

        fn replay_end_transaction(&mut self, marker: &TxnMarker) {
            let pending = self.1.remove(&marker.producer_id).unwrap_or_default();
            if marker.commit {
                pending.iter().for_each(|r| self.apply(r));
            }
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
        assert_eq!(rt.load_all(&catalog, |_| {}).unwrap(), 4);
        assert_eq!(rt.partitions(), 3, "the topic's partition count wins");
        assert_eq!(rt.read(2, |s| s.0.clone()).unwrap(), live);
        assert!(rt.read(0, |s| s.0.is_empty()).unwrap());
        rt.unload(2);
        assert_eq!(
            rt.write(&catalog, 2, 10, |_| CoordinatorResult::response(())),
            Err(errors::NOT_COORDINATOR)
        );
        rt.load(&catalog, 2).unwrap();
        assert_eq!(rt.read(2, |s| s.0.clone()).unwrap(), live);
    }

    #[test]
    fn elections_load_shards_from_the_log_end_and_resignations_unload_them() {
        // Kafka's CoordinatorRuntime.scheduleLoadOperation / scheduleUnloadOperation: a shard
        // that follows leadership is NOT_COORDINATOR until elected, LOAD_IN_PROGRESS until
        // replayed, then served; a resignation drops it; an election overtaken by a resignation
        // or a newer election loads nothing stale.
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path(), 1 << 20, true);
        let writer = CoordinatorRuntime::new("__kv", 3, Kv::default);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            let r = put(k, Some(vec![i as u8]));
            writer
                .write(&catalog, 1, i as i64, |_| {
                    CoordinatorResult::new(vec![r], ())
                })
                .unwrap();
        }
        let live = writer.read(1, |s| s.0.clone()).unwrap();
        // A new leader's high watermark may lag its log end: the load reads to the end.
        let log = catalog.get("__kv").unwrap().partition(1).cloned().unwrap();
        log.with_log(|l| l.set_high_watermark(1));
        let nothing = |_: &mut Kv| CoordinatorResult::response(());

        let rt = CoordinatorRuntime::new("__kv", 2, Kv::default);
        rt.follow_leadership();
        assert_eq!(
            rt.write(&catalog, 1, 5, nothing),
            Err(errors::NOT_COORDINATOR)
        );
        assert!(rt.read(1, |_| ()).is_none());
        assert!(rt.schedule_load(1, 4, 3));
        assert_eq!(rt.partitions(), 3, "the topic's partition count");
        assert!(!rt.schedule_load(1, 4, 3), "an ISR change keeps the epoch");
        assert_eq!(
            rt.write(&catalog, 1, 5, nothing),
            Err(errors::COORDINATOR_LOAD_IN_PROGRESS)
        );
        // Reads answer as writes do: a loading shard is not an empty one.
        assert_eq!(
            rt.try_read(1, |s| s.0.len()),
            Err(errors::COORDINATOR_LOAD_IN_PROGRESS)
        );
        assert_eq!(rt.readiness(0), Err(errors::NOT_COORDINATOR));
        let seen = std::cell::Cell::new(0);
        assert_eq!(
            rt.run_scheduled_loads(&catalog, |_| seen.set(seen.get() + 1)),
            1
        );
        assert_eq!(seen.get(), 1, "on_loaded runs once");
        assert_eq!(rt.read(1, |s| s.0.clone()).unwrap(), live);
        assert_eq!(rt.readiness(1), Ok(()));
        assert_eq!(
            rt.write(&catalog, 0, 6, nothing),
            Err(errors::NOT_COORDINATOR)
        );

        rt.unload(1);
        assert_eq!(
            rt.write(&catalog, 1, 7, nothing),
            Err(errors::NOT_COORDINATOR)
        );
        // Elected, then resigned before the load ran: nothing is loaded.
        assert!(rt.schedule_load(1, 5, 3));
        rt.unload(1);
        assert_eq!(rt.run_scheduled_loads(&catalog, |_| {}), 0);
        assert_eq!(
            rt.write(&catalog, 1, 8, nothing),
            Err(errors::NOT_COORDINATOR)
        );
        // Two elections before the load: the newer one's load serves it.
        assert!(rt.schedule_load(1, 6, 3));
        assert!(rt.schedule_load(1, 7, 3));
        assert!(!rt.schedule_load(1, 6, 3), "an older election is stale");
        assert_eq!(rt.run_scheduled_loads(&catalog, |_| {}), 1);
        assert_eq!(rt.read(1, |s| s.0.clone()).unwrap(), live);
    }

    #[test]
    fn writes_of_a_shard_that_follows_leadership_are_recorded_for_their_commit() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path(), 1 << 20, true);
        let one = |k: &str| {
            let r = put(k, Some(vec![1]));
            move |_: &mut Kv| CoordinatorResult::new(vec![r.clone(), r], ())
        };
        // Loaded once in one process: a partition of one replica, nothing to wait for.
        let single = CoordinatorRuntime::new("__kv", 1, Kv::default);
        let ((), points) = super::super::commit::collect_sync(|| {
            single.write(&catalog, 0, 1, one("a")).unwrap();
        });
        assert!(points.is_empty(), "{points:?}");
        let rt = CoordinatorRuntime::new("__kv", 1, Kv::default);
        rt.follow_leadership();
        rt.schedule_load(0, 3, 1);
        rt.run_scheduled_loads(&catalog, |_| {});
        let ((), points) = super::super::commit::collect_sync(|| {
            rt.write(&catalog, 0, 3, one("b")).unwrap();
            rt.write(&catalog, 0, 3, one("c")).unwrap();
            rt.complete_transaction(&catalog, 0, end(9, 0, true), 3)
                .unwrap();
        });
        let end_offset = 2 + 2 + 2 + 1;
        let expected = super::super::commit::CommitPoint {
            topic: "__kv",
            partition: 0,
            leader_epoch: 3,
            end_offset,
        };
        assert_eq!(points, vec![expected], "one point, the furthest write");
        // An operation that writes nothing waits for the writes before it (it may answer from
        // them), and what a request recorded can be handed to another (`commit::recorded`).
        let nothing = |_: &mut Kv| CoordinatorResult::response(());
        let ((), points) = super::super::commit::collect_sync(|| {
            assert!(super::super::commit::recorded().is_empty());
            rt.write(&catalog, 0, 3, nothing).unwrap();
            assert_eq!(super::super::commit::recorded(), vec![expected]);
        });
        assert_eq!(
            points,
            vec![expected],
            "an empty write waits for the log end"
        );
        let ((), points) = super::super::commit::collect_sync(|| {
            single.write(&catalog, 0, 3, nothing).unwrap();
        });
        assert!(points.is_empty(), "one process: {points:?}");
        // Outside a request nothing is recorded (and nothing fails).
        rt.write(&catalog, 0, 4, one("d")).unwrap();
        assert!(super::super::commit::recorded().is_empty());
    }

    /// A batch as it sits in the log: `records` of `producer` (transactional when given) from
    /// `base_offset`.
    fn log_batch(
        base_offset: i64,
        records: &[CoordinatorRecord],
        producer: Option<ProducerIdAndEpoch>,
    ) -> Vec<u8> {
        let mut b = encode_batch(records, producer, 1).unwrap().to_vec();
        b[..8].copy_from_slice(&base_offset.to_be_bytes());
        b
    }

    /// A transaction marker as the log writes it (EndTransactionMarker), at `base_offset`.
    fn marker_batch(base_offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
        let marker = TxnMarker {
            producer_id,
            producer_epoch: 3,
            coordinator_epoch: 5,
            commit,
        };
        let mut b = crate::log::control::end_txn_marker_batch(&marker, 1);
        b[..8].copy_from_slice(&base_offset.to_be_bytes());
        b
    }

    fn txn(producer_id: i64) -> Option<ProducerIdAndEpoch> {
        Some(ProducerIdAndEpoch {
            producer_id,
            producer_epoch: 3,
        })
    }

    #[test]
    fn loading_replays_transactions_as_their_markers_end_them() {
        // Kafka's CoordinatorLoaderImpl: records of a transactional batch are replayed with the
        // batch's producer id; a control batch is replayed as the end of that producer's
        // transaction (commit: its records take effect; abort: they are dropped), never as a
        // record of the coordinator (the marker's key would otherwise read as one).
        let mut log = Vec::new();
        log.extend(log_batch(0, &[put("a", Some(vec![1]))], None));
        log.extend(log_batch(
            1,
            &[put("b", Some(vec![2])), put("a", None)],
            txn(7),
        ));
        log.extend(log_batch(3, &[put("c", Some(vec![3]))], txn(8)));
        log.extend(marker_batch(4, 7, true));
        log.extend(marker_batch(5, 8, false));
        log.extend(log_batch(6, &[put("d", Some(vec![4]))], txn(9)));
        let mut shard = Kv::default();
        let replayed = replay_batches(&mut shard, &mut Bytes::from(log));
        assert_eq!(replayed, 5, "markers are not records");
        let map: Vec<_> = shard.0.keys().cloned().collect();
        assert_eq!(map, vec![Bytes::from("b")], "{shard:?}");
        let open: Vec<_> = shard.1.keys().copied().collect();
        assert_eq!(open, vec![9], "an unfinished transaction stays pending");
    }

    #[test]
    fn replayed_records_carry_their_offsets_and_producer() {
        struct Seen(Vec<(RecordContext, Bytes)>, Vec<TxnMarker>);
        impl CoordinatorShard for Seen {
            fn replay(&mut self, at: RecordContext, r: &CoordinatorRecord) {
                self.0.push((at, r.key.clone()));
            }
            fn replay_end_transaction(&mut self, marker: &TxnMarker) {
                self.1.push(*marker);
            }
        }
        let mut log = log_batch(10, &[put("x", None), put("y", None)], txn(4));
        log.extend(marker_batch(12, 4, true));
        let mut seen = Seen(Vec::new(), Vec::new());
        replay_batches(&mut seen, &mut Bytes::from(log));
        let at = |offset| RecordContext {
            offset,
            producer_id: 4,
            producer_epoch: 3,
        };
        assert_eq!(
            seen.0,
            vec![(at(10), Bytes::from("x")), (at(11), Bytes::from("y"))]
        );
        let marker = TxnMarker {
            producer_id: 4,
            producer_epoch: 3,
            coordinator_epoch: 5,
            commit: true,
        };
        assert_eq!(seen.1, vec![marker]);
    }

    fn end(producer_id: i64, producer_epoch: i16, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id,
            producer_epoch,
            coordinator_epoch: 0,
            commit,
        }
    }

    #[test]
    fn transactional_writes_take_effect_with_their_marker_live_and_after_a_restart() {
        // Kafka's scheduleTransactionalWriteOperation / scheduleTransactionCompletion: the
        // records are the producer's transactional batch, replayed as its; the marker written
        // through the log makes them take effect (commit) or drops them (abort); loading the
        // partition rebuilds the same state, an open transaction still pending.
        let dir = tempfile::tempdir().unwrap();
        let producer = |producer_id, producer_epoch| ProducerIdAndEpoch {
            producer_id,
            producer_epoch,
        };
        let write = |rt: &CoordinatorRuntime<Kv>, catalog, p: Option<ProducerIdAndEpoch>, r| {
            let op = |_: &mut Kv| CoordinatorResult::new(vec![r], ());
            match p {
                Some(p) => rt.write_transactional(catalog, 0, 1, p, op),
                None => rt.write(catalog, 0, 1, op),
            }
        };
        let live = {
            let catalog = catalog(dir.path(), 1 << 20, true);
            let rt = CoordinatorRuntime::new("__kv", 1, Kv::default);
            write(&rt, &catalog, None, put("a", Some(vec![1]))).unwrap();
            write(&rt, &catalog, Some(producer(7, 0)), put("b", Some(vec![2]))).unwrap();
            write(&rt, &catalog, Some(producer(8, 0)), put("c", Some(vec![3]))).unwrap();
            let pending: Vec<i64> = rt.read(0, |s| s.1.keys().copied().collect()).unwrap();
            assert_eq!(pending, vec![7, 8]);
            assert_eq!(rt.read(0, |s| s.0.len()).unwrap(), 1);
            rt.complete_transaction(&catalog, 0, end(7, 0, true), 2)
                .unwrap();
            rt.complete_transaction(&catalog, 0, end(8, 0, false), 2)
                .unwrap();
            let keys: Vec<Bytes> = rt.read(0, |s| s.0.keys().cloned().collect()).unwrap();
            assert_eq!(keys, vec![Bytes::from("a"), Bytes::from("b")]);
            // The same producer's next transaction (same size: not a duplicate), at a new epoch;
            // its old epoch is then fenced by the log and changes nothing.
            write(&rt, &catalog, Some(producer(7, 1)), put("d", Some(vec![4]))).unwrap();
            let fenced = write(&rt, &catalog, Some(producer(7, 0)), put("e", Some(vec![5])));
            assert_eq!(fenced, Err(errors::INVALID_PRODUCER_EPOCH));
            assert_eq!(
                rt.complete_transaction(&catalog, 0, end(7, 0, true), 3),
                Err(errors::INVALID_PRODUCER_EPOCH)
            );
            rt.read(0, |s| format!("{s:?}")).unwrap()
        };
        assert!(
            live.contains("7: [CoordinatorRecord { key: b\"d\""),
            "{live}"
        );
        let catalog = catalog(dir.path(), 1 << 20, false);
        let rt = CoordinatorRuntime::new("__kv", 1, Kv::default);
        rt.load_all(&catalog, |_| {}).unwrap();
        assert_eq!(rt.read(0, |s| format!("{s:?}")).unwrap(), live);
        rt.unload(0);
        assert_eq!(
            rt.complete_transaction(&catalog, 0, end(7, 1, true), 10),
            Err(errors::NOT_COORDINATOR)
        );
    }
}
