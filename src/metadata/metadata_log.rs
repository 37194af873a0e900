//! The metadata log: where metadata records are appended and read back from, with snapshots
//! (Kafka's RaftClient as the metadata layer sees it). `MetadataLog` is the narrow interface the
//! broker uses; `LocalMetadataLog` is the single-node implementation, and a replicated quorum
//! is another implementation of the same trait.
//!
//! `LocalMetadataLog` writes Kafka's `__cluster_metadata-0` partition in the data directory, so
//! that `kafka-dump-log --cluster-metadata-decoder` and `kafka-metadata-shell` read it:
//! - `__cluster_metadata-0/<offset>.log` (and indexes): the log, a partition log like any other
//!   (Kafka's KafkaMetadataLog wraps a UnifiedLog). Each append is one record batch of metadata
//!   records (key null, value `records::MetadataRecord::encode`), CreateTime, uncompressed, no
//!   producer; it is fsynced before `append` returns (a quorum commits only what is on disk);
//! - `__cluster_metadata-0/partition.metadata`: the metadata topic's fixed id
//!   (Uuid.METADATA_TOPIC_ID, `AAAAAAAAAAAAAAAAAAAAAQ`);
//! - `__cluster_metadata-0/<end offset, 20 digits>-<epoch, 10 digits>.checkpoint`: a snapshot
//!   (Kafka's Snapshots / RecordsSnapshotWriter): the image as of `end offset` (exclusive) as
//!   record batches whose offsets start at 0 and whose partition leader epoch is the snapshot's
//!   epoch: a control batch holding a SnapshotHeaderRecord (control type 3), the records, and a
//!   control batch holding a SnapshotFooterRecord (type 4). A file without the footer is a
//!   snapshot cut short and is not used. Written to `<name>.checkpoint.part`, fsynced, renamed
//!   (a start-up deletes `.part` files, as Kafka's KafkaMetadataLog does); see `SnapshotFiles`.
//!   A quorum's snapshot also says which Raft entry it ends at, in a tagged field of its header
//!   (`QUORUM_POSITION_TAG`), which Kafka's readers pass over as an unknown tag.
//!
//! The single node's log is never subject to retention: records before the newest snapshot stay.
//! The quorum's log is (see `quorum::snapshots`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{SnapshotFooterRecord, SnapshotHeaderRecord};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;

use super::controller::{ControllerDuties, ControllerRequest, ControllerResponse};
use super::image::{replay_all, MetadataDelta, MetadataImage, Provenance, ReplayError};
use super::records::{MetadataRecord, RecordError};
use crate::log::partition::{LogError, PartitionLog};
use crate::log::storage::Storage;
use crate::log::LogConfig;

/// Kafka's metadata topic and its directory (Topic.CLUSTER_METADATA_TOPIC_PARTITION).
pub const METADATA_TOPIC: &str = "__cluster_metadata";
pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// Uuid.METADATA_TOPIC_ID in Kafka's text form.
const METADATA_TOPIC_ID: &str = "AAAAAAAAAAAAAAAAAAAAAQ";
const SNAPSHOT_SUFFIX: &str = ".checkpoint";
/// What a snapshot being written is called until it is complete (Snapshots.PARTIAL_SUFFIX).
const PARTIAL_SUFFIX: &str = ".part";
/// The tag, in a snapshot's SnapshotHeaderRecord, of the Raft position a quorum's snapshot ends
/// at (`quorum::snapshots`: openraft's snapshot meta as JSON). Kafka defines no tagged field
/// in that record, so its readers keep this one as unknown and otherwise pass over it.
pub const QUORUM_POSITION_TAG: i32 = 10_000;
/// ControlRecordType ids of the snapshot's first and last records.
const SNAPSHOT_HEADER: i16 = 3;
const SNAPSHOT_FOOTER: i16 = 4;
/// KafkaRaftClient.MAX_BATCH_SIZE_BYTES: the largest batch the metadata log takes.
const MAX_BATCH_SIZE_BYTES: usize = 8 * 1024 * 1024;
/// How much of the log one read takes at a time while loading.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("metadata log I/O: {0}")]
    Io(#[from] io::Error),
    #[error("metadata log append: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("metadata replay: {0}")]
    Replay(#[from] ReplayError),
    #[error("metadata log {0}: {1}")]
    Corrupt(PathBuf, String),
    /// The metadata quorum could not commit the append (this node does not lead, the quorum
    /// lost its leader, or the quorum is shutting down).
    #[error("metadata quorum: {0}")]
    Quorum(String),
    /// A conditional append (`MetadataLog::append_decided`) refused: data batches were
    /// committed after the image it was decided on. This node has applied the log up to this
    /// end offset, so the catalog, caught up, decides again on what they changed.
    #[error(
        "metadata quorum: the write was decided on a stale image (the log has moved to offset {0})"
    )]
    StaleImage(i64),
    /// This node does not lead the metadata quorum (any more): a write it was to take as the
    /// leader (the active controller's decision, a write forwarded to it) was not taken, or was
    /// taken before it stopped leading and may or may not be committed by a later leader
    /// (`quorum::check_quorum`). The active controller's callers are answered NOT_CONTROLLER.
    #[error("metadata quorum: {0}")]
    NotController(String),
}

/// A snapshot's identity (Kafka's OffsetAndEpoch): it holds everything before `end_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

/// Records appended together, as read back (offset of the first, the batch's epoch and time).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataBatch {
    pub base_offset: i64,
    pub epoch: i32,
    pub append_time_ms: i64,
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.records.len() as i64 - 1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetadataSnapshot {
    pub id: SnapshotId,
    pub last_contained_log_timestamp: i64,
    pub records: Vec<MetadataRecord>,
    /// A quorum's snapshot: the Raft position it ends at (`QUORUM_POSITION_TAG`).
    pub quorum_position: Option<Bytes>,
}

/// Who appends a decision (`MetadataLog::append_decided`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Anything the catalog writes: a node that does not lead forwards it to the leader.
    Any,
    /// The active controller's own decision: committed only while this node leads, never
    /// forwarded to another leader. The decision was made on this node's image; a node deposed
    /// meanwhile (cut off from the quorum, it kept deciding on what it had) must not have it
    /// committed over what the new leader decided since, as Kafka's controller appends at its
    /// own epoch and an append at a stale epoch fails.
    Controller,
}

/// Where metadata records are kept (Kafka's RaftClient, as far as the broker uses it).
pub trait MetadataLog: Send + Sync {
    /// Appends `records` as one batch, all or nothing, and returns the offset of the last one
    /// once it is committed (durable).
    fn append(&self, records: &[MetadataRecord], now_ms: i64) -> Result<i64, MetadataLogError>;
    /// `append` of records decided on the image of this log up to `decided_on` (the image's
    /// provenance: the last offset of its last data batch, -1 for none): committed only if no
    /// data batch was committed after it, else `StaleImage` (decide again on the caught-up
    /// image). Kafka forwards a write to its controller, which decides on its latest state;
    /// here any node decides and the quorum's leader checks, as Kafka's raft client takes an
    /// append only at a required base offset. `writer` says whether it may be forwarded (see
    /// `Writer`). A single node's log has one writer, the catalog, whose image is the log's,
    /// and is always its controller's: no check.
    fn append_decided(
        &self,
        records: &[MetadataRecord],
        _decided_on: i64,
        _writer: Writer,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        self.append(records, now_ms)
    }
    /// The committed batches holding `from_offset` and everything after it, in order.
    fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError>;
    /// The newest complete snapshot, if any (none by default: a log that keeps none).
    fn latest_snapshot(&self) -> Result<Option<MetadataSnapshot>, MetadataLogError> {
        Ok(None)
    }
    /// Writes `image` as a snapshot (it must be the replay of this log up to its provenance).
    /// Refused by default: a quorum's voters take theirs by Kafka's thresholds
    /// (`quorum::snapshots`), and its observers fetch them.
    fn create_snapshot(
        &self,
        _image: &MetadataImage,
        _now_ms: i64,
    ) -> Result<SnapshotId, MetadataLogError> {
        Err(MetadataLogError::Quorum(
            "this metadata log takes its snapshots itself".into(),
        ))
    }
    /// Flushes what is written (clean shutdown).
    fn close(&self, now_ms: i64) -> Result<(), MetadataLogError>;
    /// The first offset `read` returns (what is before it is in the newest snapshot only).
    fn log_start_offset(&self) -> i64 {
        0
    }
    /// Where other nodes append too (a quorum), the committed end offset as it moves: the
    /// catalog replays and publishes what it did not write itself (`Catalog::follow`). `None`
    /// where this process is the only writer.
    fn committed(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }
    /// A quorum's state as this node knows it; `None` for a single node's log.
    fn quorum_state(&self) -> Option<QuorumState> {
        None
    }
    /// The quorum as its leader sees it (DescribeQuorum on a broker, which Kafka forwards to
    /// the active controller): asked of the leader this node knows, or of the voters in turn
    /// (a voter that does not lead refuses, naming the leader it knows), for a bounded time;
    /// an error where no leader answered in it. `None` for a single node's log.
    fn describe_quorum(&self) -> Result<Option<QuorumState>, MetadataLogError> {
        Ok(None)
    }
    /// Sends a broker's request to the active controller and returns its answer (a quorum:
    /// see `controller`); a single node's log has no controller to send it to.
    fn send_to_controller(
        &self,
        _request: ControllerRequest,
    ) -> Result<ControllerResponse, MetadataLogError> {
        Err(MetadataLogError::Quorum(
            "no metadata quorum to send to".into(),
        ))
    }
    /// Where this node is the active controller (a quorum's leader), `duties` answers the
    /// brokers' requests. A single node's log has no brokers in other processes.
    fn serve_controller(&self, _duties: std::sync::Weak<dyn ControllerDuties>) {}
}

/// The metadata quorum as one node sees it (Kafka's DescribeQuorum partition data).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuorumState {
    /// -1 while no leader is known.
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The committed end offset this node knows.
    pub high_watermark: i64,
    /// Each voter: its log end offset known for every voter on the leader, for itself
    /// elsewhere (-1 when unknown).
    pub voters: Vec<ReplicaState>,
    /// The observers (broker-only processes) that fetched from the leader lately, with the
    /// offset they fetched from: known on the leader only.
    pub observers: Vec<ReplicaState>,
}

/// One replica of the metadata log as the leader tracks it (Kafka's LeaderState.ReplicaState).
/// The times are ages, in milliseconds before the answer, measured on the leader's monotonic
/// clock: the node that answers a client turns them into timestamps on its own clock (Kafka's
/// leader stamps them with its clock; the two agree but for the processes' clock offset, and
/// an age does not depend on the wall clocks of two processes agreeing). `None`: not heard of.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaState {
    pub id: i32,
    /// -1 when unknown.
    pub log_end_offset: i64,
    /// Since the replica last fetched from the leader (a voter: since it last acknowledged
    /// the leader's AppendEntries; the leader itself: 0).
    pub last_fetch_ms_ago: Option<u64>,
    /// Since the replica was last known to hold everything the leader had (Kafka's
    /// lastCaughtUpTimestamp; the leader itself: 0).
    pub last_caught_up_ms_ago: Option<u64>,
}

impl ReplicaState {
    /// A replica whose log end offset alone is known (-1 when not even that).
    pub fn at(id: i32, log_end_offset: i64) -> ReplicaState {
        ReplicaState {
            id,
            log_end_offset,
            last_fetch_ms_ago: None,
            last_caught_up_ms_ago: None,
        }
    }
}

/// Builds the image a log holds: its newest snapshot, then every batch after it, one delta per
/// batch (Kafka's MetadataLoader).
pub fn load_image(log: &dyn MetadataLog) -> Result<MetadataImage, MetadataLogError> {
    let mut image = MetadataImage::empty();
    let mut from = 0;
    if let Some(s) = log.latest_snapshot()? {
        image = image_of_snapshot(&s)?;
        from = s.id.end_offset;
    }
    for batch in log.read(from)? {
        image = replay_batch(Arc::new(image), &batch, from)?;
    }
    Ok(image)
}

/// The image a snapshot holds, as of its last offset.
pub fn image_of_snapshot(s: &MetadataSnapshot) -> Result<MetadataImage, ReplayError> {
    let mut image = replay_all(Arc::new(MetadataImage::empty()), &s.records)?;
    image.provenance = snapshot_provenance(s);
    Ok(image)
}

/// The change from `image` to the image a snapshot holds (a reader behind the log start takes
/// the snapshot in place of the log it missed: Kafka's MetadataLoader).
pub fn snapshot_delta(
    image: Arc<MetadataImage>,
    s: &MetadataSnapshot,
) -> Result<MetadataDelta, ReplayError> {
    let mut delta = MetadataDelta::new(image);
    for r in &s.records {
        delta.replay(r)?;
    }
    delta.finish_snapshot();
    delta.set_provenance(snapshot_provenance(s));
    Ok(delta)
}

/// Where a snapshot stands in the log (its last offset, epoch and time).
pub fn snapshot_provenance(s: &MetadataSnapshot) -> Provenance {
    Provenance {
        last_offset: s.id.end_offset - 1,
        last_epoch: s.id.epoch,
        last_timestamp: s.last_contained_log_timestamp,
    }
}

/// The image after one batch (records before `from`, already in the image, skipped).
pub fn replay_batch(
    image: Arc<MetadataImage>,
    batch: &MetadataBatch,
    from: i64,
) -> Result<MetadataImage, ReplayError> {
    let mut delta = MetadataDelta::new(image);
    let skip = (from - batch.base_offset).max(0) as usize;
    for r in batch.records.iter().skip(skip) {
        delta.replay(r)?;
    }
    delta.set_provenance(Provenance {
        last_offset: batch.last_offset(),
        last_epoch: batch.epoch,
        last_timestamp: batch.append_time_ms,
    });
    Ok(delta.apply())
}

/// The change one committed batch makes to `image` (records before `from`, already in it,
/// skipped). A batch that does not replay was committed all the same, and the log is what every
/// node holds alike: it is logged and passed over (its offsets counted), as on every node.
pub fn batch_delta(image: Arc<MetadataImage>, batch: &MetadataBatch, from: i64) -> MetadataDelta {
    let provenance = Provenance {
        last_offset: batch.last_offset(),
        last_epoch: batch.epoch,
        last_timestamp: batch.append_time_ms,
    };
    let mut delta = MetadataDelta::new(Arc::clone(&image));
    let skip = (from - batch.base_offset).max(0) as usize;
    let replayed = batch
        .records
        .iter()
        .skip(skip)
        .try_for_each(|r| delta.replay(r));
    if let Err(e) = replayed {
        tracing::error!(offset = batch.base_offset, error = %e, "a committed metadata batch does not replay; passing over it");
        delta = MetadataDelta::new(image);
    }
    delta.set_provenance(provenance);
    delta
}

/// The single-node metadata log in `<data dir>/__cluster_metadata-0`.
pub struct LocalMetadataLog {
    dir: PathBuf,
    snapshots: SnapshotFiles,
    log: Mutex<PartitionLog>,
}

impl LocalMetadataLog {
    pub fn open(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        clean: bool,
        now_ms: i64,
    ) -> Result<LocalMetadataLog, MetadataLogError> {
        let (dir, log) = open_metadata_partition(&storage, data_dir, clean, now_ms)?;
        let snapshots = SnapshotFiles::new(&dir, storage);
        snapshots.delete_partial()?;
        Ok(LocalMetadataLog {
            dir,
            snapshots,
            log: Mutex::new(log),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> i64 {
        self.log.lock().log_end_offset()
    }

    #[cfg(test)]
    fn snapshot_path(&self, id: SnapshotId) -> PathBuf {
        self.snapshots.path(id)
    }
}

/// The snapshot files of a metadata log's directory (Kafka's Snapshots and the snapshot half of
/// KafkaMetadataLog): named by their id, written whole or not at all, read back only complete.
#[derive(Clone)]
pub struct SnapshotFiles {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
}

impl SnapshotFiles {
    pub fn new(dir: &Path, storage: Arc<dyn Storage>) -> SnapshotFiles {
        SnapshotFiles {
            dir: dir.to_path_buf(),
            storage,
        }
    }

    /// The ids of the snapshot files, oldest first.
    pub fn ids(&self) -> io::Result<Vec<SnapshotId>> {
        let mut ids: Vec<SnapshotId> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_snapshot_name(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    pub fn path(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(snapshot_name(id))
    }

    /// Writes a snapshot file as `<name>.part`, fsynced, then renamed to its name (Kafka's
    /// FileRawSnapshotWriter.freeze), so that its name is only ever on a complete file.
    pub fn write(&self, id: SnapshotId, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(id);
        let mut part = path.as_os_str().to_owned();
        part.push(PARTIAL_SUFFIX);
        self.storage
            .write_atomically_via(Path::new(&part), &path, bytes)
    }

    /// The snapshot file `id`, checked whole (header and footer).
    pub fn read(&self, id: SnapshotId) -> Result<MetadataSnapshot, String> {
        let bytes = fs::read(self.path(id)).map_err(|e| e.to_string())?;
        read_snapshot(&bytes, id)
    }

    /// The newest complete snapshot (one cut short, or unreadable, is passed over).
    pub fn latest(&self) -> io::Result<Option<MetadataSnapshot>> {
        Ok(self.latest_with(|_| Some(()))?.map(|(s, ())| s))
    }

    /// The newest complete snapshot that `accept` takes, with what it made of it (a quorum
    /// takes only those that say where they end in the Raft log); the others are passed over.
    pub fn latest_with<T>(
        &self,
        accept: impl Fn(&MetadataSnapshot) -> Option<T>,
    ) -> io::Result<Option<(MetadataSnapshot, T)>> {
        for id in self.ids()?.into_iter().rev() {
            let file = self.path(id);
            match self.read(id) {
                Ok(s) => match accept(&s) {
                    Some(t) => return Ok(Some((s, t))),
                    None => {
                        tracing::warn!(file = %file.display(), "passing over a metadata snapshot this log cannot use")
                    }
                },
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "skipping an unreadable metadata snapshot")
                }
            }
        }
        Ok(None)
    }

    /// Deletes the snapshots a crash left half written (KafkaMetadataLog.recoverSnapshots).
    pub fn delete_partial(&self) -> io::Result<()> {
        let suffix = format!("{SNAPSHOT_SUFFIX}{PARTIAL_SUFFIX}");
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(&suffix) {
                tracing::info!(file = %entry.path().display(), "deleting a metadata snapshot cut short");
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Deletes the snapshots older than `end_offset` (the log start: nothing needs them).
    pub fn delete_before(&self, end_offset: i64) -> io::Result<()> {
        for id in self
            .ids()?
            .into_iter()
            .filter(|i| i.end_offset < end_offset)
        {
            fs::remove_file(self.path(id))?;
        }
        Ok(())
    }

    /// A snapshot file's size in bytes (0 if it is gone).
    pub fn size(&self, id: SnapshotId) -> u64 {
        fs::metadata(self.path(id)).map_or(0, |m| m.len())
    }

    /// The append time of the last record a snapshot holds (its header's; Kafka's
    /// Snapshots.lastContainedLogTimestamp), read from its first batch alone.
    pub fn last_contained_log_timestamp(&self, id: SnapshotId) -> Option<i64> {
        use std::io::Read;
        let mut head = Vec::new();
        let file = fs::File::open(self.path(id)).ok()?;
        file.take(READ_CHUNK_BYTES as u64)
            .read_to_end(&mut head)
            .ok()?;
        let batches = decode_batches(Bytes::from(head)).ok()?;
        let (SNAPSHOT_HEADER, header) = batches.first()?.control.first()? else {
            return None;
        };
        let header = SnapshotHeaderRecord::decode(&mut header.clone(), 0).ok()?;
        Some(header.last_contained_log_timestamp)
    }
}

/// Opens (or creates) `<data dir>/__cluster_metadata-0` as a partition log, with its fixed topic id.
pub(super) fn open_metadata_partition(
    storage: &Arc<dyn Storage>,
    data_dir: &Path,
    clean: bool,
    now_ms: i64,
) -> Result<(PathBuf, PartitionLog), MetadataLogError> {
    open_metadata_partition_with(storage, data_dir, metadata_log_config(), clean, now_ms)
}

/// `open_metadata_partition` with its log's settings (the quorum's segment size).
pub(super) fn open_metadata_partition_with(
    storage: &Arc<dyn Storage>,
    data_dir: &Path,
    config: LogConfig,
    clean: bool,
    now_ms: i64,
) -> Result<(PathBuf, PartitionLog), MetadataLogError> {
    let dir = data_dir.join(METADATA_DIR);
    fs::create_dir_all(&dir)?;
    let meta = dir.join("partition.metadata");
    if !meta.exists() {
        let text = format!("version: 0\ntopic_id: {METADATA_TOPIC_ID}\n");
        storage.write_atomically(&meta, text.as_bytes())?;
    }
    let log = PartitionLog::open_on(Arc::clone(storage), &dir, config, clean, now_ms)?;
    Ok((dir, log))
}

/// Every batch, data and control, from the one holding `from_offset` up to (not including)
/// `until`, `candidates` giving the log's read candidates at an offset.
pub(super) fn read_batches(
    candidates: impl Fn(i64) -> Result<crate::log::partition::ReadCandidates, LogError>,
    from_offset: i64,
    until: i64,
) -> Result<Vec<ReadBatch>, MetadataLogError> {
    let mut batches = Vec::new();
    let mut offset = from_offset;
    while offset < until {
        let bytes = candidates(offset)?.locate()?.read(READ_CHUNK_BYTES, true)?;
        if bytes.is_empty() {
            break;
        }
        let read = decode_batches(bytes).map_err(MetadataLogError::Quorum)?;
        let Some(last) = read.last() else {
            break;
        };
        offset = last.next_offset;
        batches.extend(read.into_iter().filter(|b| b.base_offset < until));
    }
    Ok(batches)
}

/// The metadata log keeps everything (no retention, no compaction) and takes Kafka's largest
/// metadata batch.
pub(super) fn metadata_log_config() -> LogConfig {
    LogConfig {
        retention_ms: -1,
        retention_bytes: -1,
        cleanup_delete: false,
        cleanup_compact: false,
        max_message_bytes: MAX_BATCH_SIZE_BYTES,
        ..LogConfig::default()
    }
}

impl MetadataLog for LocalMetadataLog {
    fn append(&self, records: &[MetadataRecord], now_ms: i64) -> Result<i64, MetadataLogError> {
        if records.is_empty() {
            return Ok(self.end_offset() - 1);
        }
        let batch = encode_batch(records.iter().map(MetadataRecord::encode), 0, -1, now_ms)?;
        let mut log = self.log.lock();
        let info = log.append(&batch, i16::MAX, now_ms)?;
        log.flush(now_ms)?;
        Ok(info.base_offset + records.len() as i64 - 1)
    }

    fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError> {
        let read = read_batches(
            |o| self.log.lock().read_candidates(o),
            from_offset,
            i64::MAX,
        );
        let read = read.map_err(|e| match e {
            MetadataLogError::Quorum(why) => self.corrupt(&why),
            e => e,
        })?;
        Ok(read.into_iter().filter_map(|b| b.data).collect())
    }

    fn latest_snapshot(&self) -> Result<Option<MetadataSnapshot>, MetadataLogError> {
        Ok(self.snapshots.latest()?)
    }

    fn create_snapshot(
        &self,
        image: &MetadataImage,
        now_ms: i64,
    ) -> Result<SnapshotId, MetadataLogError> {
        let p = image.provenance;
        let id = SnapshotId {
            end_offset: p.last_offset + 1,
            epoch: p.last_epoch,
        };
        let bytes = encode_snapshot(image, id, now_ms, None)?;
        self.snapshots.write(id, &bytes)?;
        Ok(id)
    }

    fn close(&self, now_ms: i64) -> Result<(), MetadataLogError> {
        Ok(self.log.lock().close(now_ms)?)
    }
}

impl LocalMetadataLog {
    fn corrupt(&self, why: &str) -> MetadataLogError {
        MetadataLogError::Corrupt(self.dir.clone(), why.to_string())
    }
}

/// `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint` (Snapshots.filenameFromSnapshotId).
pub fn snapshot_name(id: SnapshotId) -> String {
    format!("{:020}-{:010}{SNAPSHOT_SUFFIX}", id.end_offset, id.epoch)
}

pub fn parse_snapshot_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    let (offset, epoch) = stem.split_once('-')?;
    if offset.len() != 20 || epoch.len() != 10 {
        return None;
    }
    Some(SnapshotId {
        end_offset: offset.parse().ok()?,
        epoch: epoch.parse().ok()?,
    })
}

/// One record batch of `values` (Kafka's BatchAccumulator: CreateTime, uncompressed, no
/// producer), offsets from `base_offset`.
pub(super) fn encode_batch(
    values: impl Iterator<Item = Bytes>,
    base_offset: i64,
    epoch: i32,
    now_ms: i64,
) -> Result<BytesMut, MetadataLogError> {
    let records: Vec<Record> = values
        .enumerate()
        .map(|(i, value)| {
            let mut r = batch_record(base_offset + i as i64, epoch, now_ms, None, value);
            // The encoder keeps records in one batch while offset - sequence agree, and writes
            // the first one's as the base sequence, which must be -1 (RecordBatch.NO_SEQUENCE).
            r.sequence = i as i32 - 1;
            r
        })
        .collect();
    encode_records(&records)
}

pub(super) fn batch_record(
    offset: i64,
    epoch: i32,
    now_ms: i64,
    key: Option<Bytes>,
    value: Bytes,
) -> Record {
    Record {
        transactional: false,
        control: key.is_some(),
        delete_horizon: false,
        partition_leader_epoch: epoch,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: now_ms,
        key,
        value: Some(value),
        headers: Default::default(),
    }
}

pub(super) fn encode_records(records: &[Record]) -> Result<BytesMut, MetadataLogError> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buf)
}

/// A control record's key: `version int16 = 0 | type int16` (ControlRecordType.recordKey).
pub(super) fn control_key(control_type: i16) -> Bytes {
    let mut k = Vec::with_capacity(4);
    k.extend_from_slice(&0i16.to_be_bytes());
    k.extend_from_slice(&control_type.to_be_bytes());
    Bytes::from(k)
}

pub(super) fn encode_message(m: &impl Encodable) -> Result<Bytes, MetadataLogError> {
    let mut b = BytesMut::new();
    m.encode(&mut b, 0)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(b.freeze())
}

/// A snapshot file (RecordsSnapshotWriter): header batch, the image's records in batches of at
/// most 1024 records, footer batch, offsets from 0, every batch stamped with the snapshot epoch.
/// `quorum_position`: see `QUORUM_POSITION_TAG`.
pub(super) fn encode_snapshot(
    image: &MetadataImage,
    id: SnapshotId,
    now_ms: i64,
    quorum_position: Option<Bytes>,
) -> Result<BytesMut, MetadataLogError> {
    const RECORDS_PER_BATCH: usize = 1024;
    let mut header = SnapshotHeaderRecord::default()
        .with_version(0)
        .with_last_contained_log_timestamp(image.provenance.last_timestamp.max(0));
    if let Some(position) = quorum_position {
        header = header.with_unknown_tagged_field(QUORUM_POSITION_TAG, position);
    }
    let key = Some(control_key(SNAPSHOT_HEADER));
    let header = batch_record(0, id.epoch, now_ms, key, encode_message(&header)?);
    let mut out = encode_records(&[header])?;
    let records = image.records();
    let mut offset = 1;
    for chunk in records.chunks(RECORDS_PER_BATCH) {
        let values = chunk.iter().map(MetadataRecord::encode);
        out.extend_from_slice(&encode_batch(values, offset, id.epoch, now_ms)?);
        offset += chunk.len() as i64;
    }
    let footer = SnapshotFooterRecord::default().with_version(0);
    let key = Some(control_key(SNAPSHOT_FOOTER));
    let footer = batch_record(offset, id.epoch, now_ms, key, encode_message(&footer)?);
    out.extend_from_slice(&encode_records(&[footer])?);
    Ok(out)
}

/// A batch as read: where the next one starts, its metadata records (`None` for a control
/// batch), and its control records' (type, value).
pub(super) struct ReadBatch {
    pub base_offset: i64,
    pub next_offset: i64,
    /// The partition leader epoch (the Raft term, in the quorum's log).
    pub epoch: i32,
    pub data: Option<MetadataBatch>,
    pub control: Vec<(i16, Bytes)>,
}

/// Decodes whole record batches (a partial one at the end of a read is left for the next).
pub(super) fn decode_batches(mut bytes: Bytes) -> Result<Vec<ReadBatch>, String> {
    let mut out = Vec::new();
    while bytes.len() >= crate::log::batch::HEADER_LEN {
        let Some(header) = crate::log::batch::BatchHeader::parse(&bytes) else {
            return Err("unreadable batch header".into());
        };
        if header.total_size() > bytes.len() {
            break;
        }
        let mut one = bytes.split_to(header.total_size());
        let set = RecordBatchDecoder::decode(&mut one).map_err(|e| e.to_string())?;
        let mut control = Vec::new();
        let mut records = Vec::new();
        for r in set.records {
            if r.control {
                let kind = r.key.as_deref().and_then(|k| k.get(2..4));
                let kind = kind.map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
                control.push((kind, r.value.unwrap_or_default()));
            } else {
                let value = r.value.ok_or("a metadata record without a value")?;
                records.push(MetadataRecord::decode(&value).map_err(|e| e.to_string())?);
            }
        }
        out.push(ReadBatch {
            base_offset: header.base_offset,
            next_offset: header.next_offset(),
            epoch: header.partition_leader_epoch,
            data: (!header.is_control()).then_some(MetadataBatch {
                base_offset: header.base_offset,
                epoch: header.partition_leader_epoch,
                append_time_ms: header.max_timestamp,
                records,
            }),
            control,
        });
    }
    Ok(out)
}

/// Reads a snapshot file: it must start with a header and end with a footer (Kafka's
/// RecordsSnapshotReader checks both).
pub(super) fn read_snapshot(bytes: &[u8], id: SnapshotId) -> Result<MetadataSnapshot, String> {
    let batches = decode_batches(Bytes::copy_from_slice(bytes))?;
    let first = batches.first().and_then(|b| b.control.first());
    let Some((SNAPSHOT_HEADER, header)) = first else {
        return Err("no snapshot header".into());
    };
    let header = SnapshotHeaderRecord::decode(&mut header.clone(), 0).map_err(|e| e.to_string())?;
    let last = batches.last().and_then(|b| b.control.last());
    if !matches!(last, Some((SNAPSHOT_FOOTER, _))) {
        return Err("no snapshot footer: the snapshot was cut short".into());
    }
    let records = batches
        .into_iter()
        .filter_map(|b| b.data)
        .flat_map(|b| b.records)
        .collect();
    let quorum_position = header.unknown_tagged_fields.get(&QUORUM_POSITION_TAG);
    Ok(MetadataSnapshot {
        id,
        last_contained_log_timestamp: header.last_contained_log_timestamp,
        records,
        quorum_position: quorum_position.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::records::tests::samples;
    use super::*;
    use crate::log::storage::FileStorage;

    fn open(dir: &Path) -> LocalMetadataLog {
        LocalMetadataLog::open(Arc::new(FileStorage), dir, true, 0).unwrap()
    }

    /// A history every record of which replays (samples() fences broker 2: register it).
    fn history() -> Vec<Vec<MetadataRecord>> {
        let s = samples();
        let MetadataRecord::RegisterBroker(mut b2) = s[1].clone() else {
            unreachable!()
        };
        b2.broker_id = 2;
        vec![
            s[..2].to_vec(),
            vec![MetadataRecord::RegisterBroker(b2)],
            s[2..5].to_vec(),
            s[5..9].to_vec(),
            s[9..].to_vec(),
        ]
    }

    #[test]
    fn appended_batches_read_back_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let h = history();
        let mut last = -1;
        for (i, batch) in h.iter().enumerate() {
            let end = log.append(batch, 1000 + i as i64).unwrap();
            assert_eq!(end, last + batch.len() as i64);
            last = end;
        }
        log.close(0).unwrap();
        drop(log);
        let log = open(dir.path());
        let read = log.read(0).unwrap();
        assert_eq!(read.len(), h.len());
        for (got, want) in read.iter().zip(&h) {
            assert_eq!(&got.records, want);
        }
        assert_eq!(read[1].base_offset, 2);
        assert_eq!(read[1].append_time_ms, 1001);
        // A read from the middle of a batch returns that whole batch.
        assert_eq!(log.read(4).unwrap()[0].base_offset, 3);
        let image = load_image(&log).unwrap();
        assert_eq!(image.provenance.last_offset, last);
        assert!(dir
            .path()
            .join("__cluster_metadata-0/partition.metadata")
            .exists());
    }

    /// The loader's contract: the newest snapshot plus the log after it gives the image of the
    /// whole log; a snapshot cut short is passed over for an older one.
    #[test]
    fn snapshot_plus_tail_loads_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let h = history();
        for batch in &h[..3] {
            log.append(batch, 5).unwrap();
        }
        let at_three = load_image(&log).unwrap();
        let id = log.create_snapshot(&at_three, 9).unwrap();
        assert_eq!(id.end_offset, at_three.provenance.last_offset + 1);
        assert!(log.snapshot_path(id).exists());
        for batch in &h[3..] {
            log.append(batch, 6).unwrap();
        }
        let full = load_image(&log).unwrap();
        let snapshot = log.latest_snapshot().unwrap().unwrap();
        assert_eq!(snapshot.records, at_three.records());
        assert_eq!(snapshot.last_contained_log_timestamp, 5);
        // Loading starts at the snapshot: removing the log before it changes nothing.
        let replayed = replay_all(Arc::new(MetadataImage::empty()), h.iter().flatten()).unwrap();
        assert_eq!(full.topics, replayed.topics);
        assert_eq!(full.brokers, replayed.brokers);
        assert_eq!(full.features, replayed.features);
        assert_eq!(full.next_producer_id, replayed.next_producer_id);
        // A newer snapshot without its footer (a crash while writing) is not used.
        let newer = SnapshotId {
            end_offset: id.end_offset + 1,
            epoch: id.epoch,
        };
        let bytes = encode_snapshot(&full, newer, 0, None).unwrap();
        let footer_len = encode_records(&[batch_record(
            0,
            0,
            0,
            Some(control_key(4)),
            encode_message(&SnapshotFooterRecord::default()).unwrap(),
        )])
        .unwrap()
        .len();
        fs::write(log.snapshot_path(newer), &bytes[..bytes.len() - footer_len]).unwrap();
        assert_eq!(log.latest_snapshot().unwrap().unwrap().id, id);
        assert_eq!(load_image(&log).unwrap(), full);
    }

    #[test]
    fn snapshot_names_are_kafkas() {
        let id = SnapshotId {
            end_offset: 42,
            epoch: 3,
        };
        assert_eq!(
            snapshot_name(id),
            "00000000000000000042-0000000003.checkpoint"
        );
        assert_eq!(parse_snapshot_name(&snapshot_name(id)), Some(id));
        assert_eq!(parse_snapshot_name("00000000000000000042.log"), None);
    }
}
