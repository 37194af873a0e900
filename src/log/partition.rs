//! The log of one partition: its segments, offsets, producer state and flush bookkeeping.
//!
//! Directory `DATA_DIR/<topic>-<partition>/` holds Kafka's files (`<base>.log`, `.index`,
//! `.timeindex`, `.txnindex`, `partition.metadata`, `leader-epoch-checkpoint`: see
//! `leader_epoch`) plus `producer-state.gregor` (see `txn/producer_state.rs`), written at clean
//! shutdown and removed once loaded.
//!
//! `PartitionLog` is plain state behind `Partition`'s mutex; reads take the lock only to locate the
//! bytes and then read the file without it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::batch::{
    assign_offsets, compute_crc, validate_batch, BatchError, BatchHeader, MaxTimestamp,
    TimestampBounds, HEADER_LEN, MAGIC_V2, NO_TIMESTAMP,
};
use super::cleaner::{self, CleanPlan, CleanSource, CleanedFiles, CleanedSegment};
use super::control::{end_txn_marker_batch, parse_txn_marker};
use super::index::AbortedTxn;
use super::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH};
use super::open_files::{is_resource_exhaustion, LogFile};
use super::replication::{LeaderState, PendingIsr};
use super::segment::{parse_log_file_name, scan, FileRange, OpenMode, Segment, SegmentReader};
use super::storage::{FileStorage, Storage};
use super::{AppendOrigin, FetchIsolation, LogConfig, TimestampType};
use crate::metadata::image::PartitionRegistration;
use crate::txn::producer_state::{
    ProducerInfo, ProducerStateTable, SequenceCheck, VerificationGuard,
};
use crate::txn::TxnMarker;

const PRODUCER_SNAPSHOT: &str = "producer-state.gregor";
/// The Produce version the broker's own appends are validated as: the newest (only zstd depends on
/// it, Produce v7+).
const INTERNAL_PRODUCE_VERSION: i16 = i16::MAX;
/// The log start offset when DeleteRecords moved it past the first segment's base offset (Kafka
/// keeps the same number in the log directory's `log-start-offset-checkpoint`): one decimal line,
/// written to a temporary file and renamed.
const LOG_START_OFFSET_FILE: &str = "log-start-offset.gregor";
/// A request's current leader epoch when it names none (RecordBatch.NO_PARTITION_LEADER_EPOCH).
const NO_PARTITION_LEADER_EPOCH: i32 = UNDEFINED_EPOCH;

/// How the previous run left a log: shut down cleanly (every file is trusted), or crashed, when
/// the segments from the recovery point on are verified (Kafka's LogLoader.recoverLog); a crash
/// without a known recovery point (0) verifies them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Clean,
    Crashed { recovery_point: i64 },
}

impl From<bool> for Recovery {
    /// `true`: a clean shutdown; `false`: a crash with every segment verified.
    fn from(clean: bool) -> Recovery {
        match clean {
            true => Recovery::Clean,
            false => Recovery::Crashed { recovery_point: 0 },
        }
    }
}

/// Why an append or read failed; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("producer epoch is older than the partition's")]
    InvalidProducerEpoch,
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    #[error("producer id {0} was not handed out by this broker")]
    UnknownProducerId(i64),
    #[error("batch is larger than segment.bytes")]
    RecordListTooLarge,
    #[error("offset {offset} is outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
    #[error("the log is offline after an earlier storage error")]
    Offline,
    #[error("Cannot increment the log start offset to {offset} since it is larger than the high watermark {high_watermark}")]
    DeletePastHighWatermark { offset: i64, high_watermark: i64 },
    #[error("Records can not be deleted due to the configured policy")]
    DeleteNotAllowedByPolicy,
    /// A follower was handed batches that do not continue its log: their first offset is below
    /// its log end, or their offsets go backwards (UnexpectedAppendOffsetException,
    /// OffsetsOutOfOrderException). The replica fetcher treats it as a divergence.
    #[error("replicated batches starting at {first_offset} do not continue the log ending at {log_end_offset}")]
    UnexpectedAppendOffset {
        first_offset: i64,
        log_end_offset: i64,
    },
    /// Records without a key for a compacted topic: their indices in the batch, each a KIP-467
    /// record error (LogValidator.validateKey, then processRecordErrors' summary as the message).
    #[error("One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]", .records.len(), keyless_summary(.partition, .records))]
    NoKeyOnCompactedTopic {
        partition: String,
        records: Vec<i32>,
    },
    /// A non-transactional batch from a producer inside a transaction (ProducerAppendInfo).
    #[error("Expected transactional write from the producer: its transaction is ongoing")]
    InvalidTxnState,
    /// A transaction marker from an older coordinator epoch than the producer's last marker.
    #[error("Invalid coordinator epoch: older than the producer's last transaction marker")]
    TransactionCoordinatorFenced,
    /// KIP-320: the request's current leader epoch is older than the partition's.
    #[error("leader epoch {requested} is older than the current leader epoch {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// KIP-320: the request's current leader epoch is newer than the partition's.
    #[error("leader epoch {requested} is newer than the current leader epoch {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retried duplicate and was not written again.
    pub duplicate: bool,
    /// Records written (0 for a duplicate): the messages-in metric counts them.
    pub records: u32,
    /// The batch's last offset (a duplicate's: the original's); acks=all waits until the high
    /// watermark passes it.
    pub last_offset: i64,
}

/// Where a read may start, taken under the partition lock: the segments that can hold the fetch
/// offset, each with its sparse-index hint, the last one bounded at the isolation's upper offset.
/// `locate` then scans batch headers without the lock.
pub struct ReadCandidates {
    offset: i64,
    segments: Vec<Candidate>,
    /// The isolation's bound: reads stop before it (the high watermark, or the last stable offset
    /// for read_committed).
    max_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// read_committed: the aborted transactions from the fetch offset up to `max_offset`;
    /// `locate` keeps those overlapping the segment read.
    aborted: Option<Vec<AbortedTxn>>,
}

struct Candidate {
    reader: SegmentReader,
    base_offset: i64,
    hint: u64,
    /// The segment holds `max_offset`: the index hint for it, where the read must stop.
    bound_hint: Option<u64>,
}

impl ReadCandidates {
    /// Finds the batch holding the offset (disk reads happen here, outside the lock).
    pub fn locate(self) -> io::Result<ReadPlan> {
        let mut reader = None;
        let mut upper_bound = self.max_offset;
        let mut candidates = self.segments.into_iter().peekable();
        while let Some(c) = candidates.next() {
            let mut r = c.reader;
            if let Some(hint) = c.bound_hint {
                // `max_offset` starts a batch (the first of a transaction, or the end).
                let end = r.find_position(hint, self.max_offset)?.unwrap_or(r.size());
                r = r.up_to(end);
            }
            if let Some(pos) = r.find_position(c.hint, self.offset)? {
                // A read never crosses a segment: the next one's base bounds the records read
                // (LocalLog.addAbortedTransactions' fallback bound).
                if let Some(next) = candidates.peek() {
                    upper_bound = upper_bound.min(next.base_offset);
                }
                reader = Some((r, pos));
                break;
            }
        }
        let aborted = self.aborted.map(|mut txns| {
            txns.retain(|t| t.first_offset < upper_bound);
            txns
        });
        Ok(ReadPlan {
            reader,
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset,
            log_start_offset: self.log_start_offset,
            aborted_transactions: aborted,
            diverging_epoch: None,
        })
    }
}

/// Where a read starts, served without the partition lock.
pub struct ReadPlan {
    reader: Option<(SegmentReader, u64)>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// read_committed: the aborted transactions overlapping the records read (Fetch's
    /// `aborted_transactions`); `None` for read_uncommitted.
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
    /// KIP-279: the fetcher's log diverged from this one; nothing is read and the answer names
    /// this log's (epoch, end offset) for the fetcher's last epoch.
    pub diverging_epoch: Option<(i32, i64)>,
}

impl ReadPlan {
    /// The record bytes: whole batches from the fetch position, at most `max_bytes` unless
    /// `min_one` lets the first batch through whole.
    pub fn read(&self, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        match &self.reader {
            Some((r, pos)) => r.read(*pos, max_bytes, min_one),
            None => Ok(Bytes::new()),
        }
    }

    /// What a Fetch sends (see `SegmentReader::range`); `None` when there is nothing to read.
    pub fn range(&self, max_bytes: usize, min_one: bool) -> io::Result<Option<FileRange>> {
        match &self.reader {
            Some((r, pos)) => r.range(*pos, max_bytes, min_one).map(Some),
            None => Ok(None),
        }
    }

    /// Bytes available to read, an upper bound used for `min_bytes` decisions.
    pub fn available(&self) -> u64 {
        self.reader
            .as_ref()
            .map_or(0, |(r, pos)| r.size().saturating_sub(*pos))
    }
}

/// An fsync taken from a log under its lock and run without it (UnifiedLog.flush fsyncs the
/// segments outside the log lock and takes the lock only to move the recovery point), so that
/// appends and reads of the partition go on meanwhile and the caller can run it on a blocking
/// thread. Only `.log` files: indexes are rebuilt from the log after any unclean shutdown, so
/// fsyncing them before the clean one buys nothing.
#[must_use]
pub struct FlushJob {
    upto: i64,
    files: Vec<LogFile>,
}

/// Why a `FlushJob` failed: a file could not be opened (perhaps for want of a descriptor; see
/// `storage_error`), or an fsync failed, which always takes the log offline: after a failed
/// fsync the kernel may have dropped the dirty pages, and only a restart's recovery can tell what
/// is on disk.
pub enum FlushError {
    Open(io::Error),
    Sync(io::Error),
}

impl FlushJob {
    pub fn run(&self) -> Result<(), FlushError> {
        for f in &self.files {
            let file = match f.handle() {
                Ok(file) => file,
                // The cache had closed an inactive segment that is gone since the job was made:
                // deleted (retention, DeleteRecords: nothing of it is left to keep) or replaced
                // by a cleaning (whose output the cleaner fsynced before the swap). Not a device
                // failure, and taking the log offline for it would stop a healthy partition.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(FlushError::Open(e)),
            };
            file.sync_data().map_err(FlushError::Sync)?;
        }
        Ok(())
    }
}

pub struct PartitionLog {
    /// The log's own directory; it moves with the log when the topic is deleted (see
    /// `mark_deleted`), so a path built from it never names another log's directory.
    dir: PathBuf,
    config: LogConfig,
    /// Oldest first; never empty; the last is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    /// The high watermark once the partition is replicated (see `set_high_watermark`): records
    /// from it on are not committed yet and consumers do not see them. `None` for a partition
    /// with a single replica, where every appended record is committed at once and the high
    /// watermark is the log end offset.
    high_watermark: Option<i64>,
    producers: ProducerStateTable,
    /// Kafka's recovery point: every offset below it is fsynced. Segments that end at or below it
    /// are never fsynced again (UnifiedLog.flush flushes only from the recovery point on).
    recovery_point: i64,
    last_flush_ms: i64,
    /// The epoch the partition leads in: every appended batch is stamped with it (see
    /// `set_leader_epoch`).
    leader_epoch: i32,
    /// Where each leader epoch's batches start, kept in `leader-epoch-checkpoint`.
    leader_epochs: LeaderEpochCache,
    offline: bool,
    /// Log compaction: offsets from here on were written since the last cleaning (everything
    /// is dirty after a restart, which costs at most one extra cleaning).
    first_dirty_offset: i64,
    storage: Arc<dyn Storage>,
    /// Set once the topic is deleted; shared with a cleaning in progress, which checks it as it
    /// goes and stops (Kafka's LogCleanerManager.abortCleaning / LogCleaner.checkDone).
    deleted: Arc<AtomicBool>,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir` on the local file system. `clean` says whether the
    /// previous run shut down cleanly; if not, every segment is verified and a torn tail is cut.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery: impl Into<Recovery>,
        now_ms: i64,
    ) -> io::Result<PartitionLog> {
        Self::open_on(Arc::new(FileStorage), dir, config, recovery, now_ms)
    }

    /// `open`, with segment files going through `storage`.
    pub fn open_on(
        storage: Arc<dyn Storage>,
        dir: &Path,
        config: LogConfig,
        recovery: impl Into<Recovery>,
        now_ms: i64,
    ) -> io::Result<PartitionLog> {
        let recovery = recovery.into();
        let clean = recovery == Recovery::Clean;
        fs::create_dir_all(dir)?;
        remove_unfinished_cleanings(dir)?;
        let mut bases: Vec<i64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_log_file_name(&e.file_name().to_string_lossy()))
            .collect();
        bases.sort_unstable();
        // After a crash, a segment wholly below the recovery point (the next one starts at or
        // below it) was fsynced: it is trusted as after a clean shutdown, its indexes sanity
        // checked (Kafka recovers `segments.values(recoveryPoint, MAX)` only).
        let mode_of = |i: usize| match recovery {
            Recovery::Clean => OpenMode::Trust,
            Recovery::Crashed { recovery_point } => match bases.get(i + 1) {
                Some(&next) if next <= recovery_point => OpenMode::Trust,
                _ => OpenMode::Recover,
            },
        };
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            // Everything after a damaged segment is unreachable: Kafka deletes it too. Newest
            // first, and before the damaged segment is cut, so that a crash half-way leaves the
            // damage in place for the next start-up to find again (see `Segment::open_with`).
            let later = &bases[i + 1..];
            let delete_later = || {
                for &b in later.iter().rev() {
                    remove_segment_files(dir, b)?;
                }
                Ok(())
            };
            let (seg, cut) = Segment::open_with(
                &storage,
                dir,
                base,
                mode_of(i),
                config.index_interval_bytes,
                delete_later,
            )?;
            // Only the last segment stays active (its file open); the others' files are closed
            // as the cache of open files needs the room, so that start-up over many segments
            // never holds a descriptor for each.
            if let Some(previous) = segments.last_mut() {
                previous.deactivate();
            }
            if cut > 0 {
                tracing::warn!(dir = %dir.display(), base_offset = base, bytes = cut, deleted_segments = later.len(), "cut a torn or corrupt log tail");
                segments.push(seg);
                break;
            }
            if seg.is_empty() && i + 1 < bases.len() {
                // An empty segment in the middle holds nothing; keep the sequence tidy.
                drop(seg);
                remove_segment_files(dir, base)?;
                continue;
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(&storage, dir, 0)?);
        }
        let log_start_offset = stored_log_start_offset(dir)
            .filter(|&o| {
                o > segments[0].base_offset && o <= segments[segments.len() - 1].next_offset()
            })
            .unwrap_or(segments[0].base_offset);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            high_watermark: None,
            producers: ProducerStateTable::default(),
            // Set once the segments are known (below): what was on disk at start-up counts as
            // flushed, as before a restart.
            recovery_point: 0,
            last_flush_ms: now_ms,
            leader_epoch: 0,
            leader_epochs: LeaderEpochCache::default(),
            offline: false,
            first_dirty_offset: 0,
            storage,
            deleted: Arc::new(AtomicBool::new(false)),
        };
        // After a crash the verified segments are not known to be fsynced: the recovery point
        // stays where it was (LogLoader: min(recovery point, log end)) and they are flushed later.
        log.recovery_point = match recovery {
            Recovery::Clean => log.log_end_offset(),
            Recovery::Crashed { recovery_point } => recovery_point.clamp(
                log.log_start_offset.min(log.log_end_offset()),
                log.log_end_offset(),
            ),
        };
        log.load_producer_state(clean)?;
        log.load_leader_epochs(recovery)?;
        Ok(log)
    }

    /// Loads the leader epoch cache and brings it in line with the log, as Kafka's LogLoader
    /// does: after a crash the recovered batches add the epochs they start
    /// (LogSegment.recover: an epoch newer than the latest known), then entries past the log end
    /// or before the log start go. Without a usable file (a data directory from before gregor kept
    /// one, or a damaged file) every batch header is read for it.
    ///
    /// The partition then leads in the newest epoch it knew, which starts at the log end unless
    /// it has batches (Partition.makeLeader's maybeAssignEpochStartOffset; Kafka takes that epoch
    /// from the metadata, which here is the cache until the metadata image drives it), so that an
    /// epoch never goes back across a restart. The file is written if it changed.
    fn load_leader_epochs(&mut self, recovery: Recovery) -> io::Result<()> {
        let recovered_from = match recovery {
            Recovery::Clean => None,
            Recovery::Crashed { .. } => Some(self.recovery_point.max(self.log_start_offset)),
        };
        let (loaded, rebuild_from) = match LeaderEpochCache::read(&self.dir) {
            Ok(Some(cache)) => (Some(cache), recovered_from),
            Ok(None) => (None, Some(self.log_start_offset)),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "rebuilding an unreadable leader epoch checkpoint");
                (None, Some(self.log_start_offset))
            }
        };
        let mut cache = loaded.clone().unwrap_or_default();
        if let Some(from) = rebuild_from {
            self.scan_leader_epochs(from, &mut cache)?;
        }
        self.leader_epoch = cache.latest_epoch().unwrap_or(0);
        cache.truncate_from_end(self.log_end_offset());
        cache.truncate_from_start(self.log_start_offset);
        cache.assign(self.leader_epoch, self.log_end_offset());
        self.leader_epochs = cache;
        if loaded.as_ref() != Some(&self.leader_epochs) {
            self.write_leader_epochs()?;
        }
        Ok(())
    }

    /// Adds to `cache` the epochs the batches from `from` on start (only headers are read).
    fn scan_leader_epochs(&self, from: i64, cache: &mut LeaderEpochCache) -> io::Result<()> {
        for seg in self.segments.iter().filter(|s| s.next_offset() > from) {
            let start = seg.find_position(from)?.unwrap_or(0);
            scan(&*seg.reader().file()?, start, seg.size(), false, |b| {
                let epoch = b.header.partition_leader_epoch;
                if cache.latest_epoch().is_none_or(|latest| epoch > latest) {
                    cache.assign(epoch, b.header.base_offset);
                }
                true
            })?;
        }
        Ok(())
    }

    fn write_leader_epochs(&self) -> io::Result<()> {
        let text = self.leader_epochs.to_checkpoint();
        self.storage
            .write_atomically(&self.dir.join(LEADER_EPOCH_CHECKPOINT), text.as_bytes())
    }

    /// Applies `change` to the leader epoch cache and writes the file if it changed; a failed
    /// write leaves the cache as it was, so that it never holds what the file lacks.
    fn update_leader_epochs(
        &mut self,
        change: impl FnOnce(&mut LeaderEpochCache) -> bool,
    ) -> Result<(), LogError> {
        let before = self.leader_epochs.clone();
        if !change(&mut self.leader_epochs) {
            return Ok(());
        }
        if let Err(e) = self.write_leader_epochs() {
            self.leader_epochs = before;
            return Err(self.storage_error(e));
        }
        Ok(())
    }

    /// Loads the clean-shutdown snapshot when it is still valid and replays batch headers after
    /// it; without one, replays the whole log. The snapshot is removed once read so that a later
    /// crash never trusts it against a log that changed.
    ///
    /// The replay also rebuilds the transaction indexes (Kafka's LogSegment.recover): all of
    /// them, from the log start and without the snapshot, after a crash (their entries are
    /// written lazily, as the other indexes') or when a segment's `.txnindex` is missing or
    /// insane; else only the aborts after the snapshot are added.
    fn load_producer_state(&mut self, clean: bool) -> io::Result<()> {
        let path = self.dir.join(PRODUCER_SNAPSHOT);
        let mut from = self.log_start_offset;
        let max_message_bytes = self.config.max_message_bytes;
        let rebuild_txn_indexes = !clean || self.segments.iter().any(|s| !s.txn_index_loaded());
        if rebuild_txn_indexes {
            for seg in &mut self.segments {
                seg.reset_txn_index()?;
            }
        }
        if let Ok(bytes) = fs::read(&path) {
            match ProducerStateTable::decode_snapshot(&bytes) {
                Some((table, covers))
                    if covers <= self.log_end_offset() && !rebuild_txn_indexes =>
                {
                    self.producers = table;
                    from = covers;
                }
                Some(_) if rebuild_txn_indexes => {}
                _ => {
                    tracing::warn!(dir = %self.dir.display(), "ignoring an unusable producer state snapshot")
                }
            }
            fs::remove_file(&path)?;
        }
        for seg in &mut self.segments {
            if seg.next_offset() <= from {
                continue;
            }
            let start = seg.find_position(from)?.unwrap_or(seg.size());
            let producers = &mut self.producers;
            let reader = seg.reader();
            let mut failed = None;
            let mut aborted = Vec::new();
            scan(&*reader.file()?, start, seg.size(), false, |b| {
                if b.header.base_offset < from {
                    return true;
                }
                // Markers end transactions: only their record says commit or abort.
                // (A control batch without a producer, as the metadata quorum's Raft batches,
                // is no marker.)
                let marker = match b.header.is_control() && b.header.has_producer_id() {
                    false => None,
                    true => match reader.read_batch(b.position, &b.header) {
                        Ok(bytes) => parse_txn_marker(&bytes, &b.header, max_message_bytes)
                            .unwrap_or_else(|e| {
                                tracing::warn!(offset = b.header.base_offset, error = %e, "skipping an unreadable control batch");
                                None
                            }),
                        Err(e) => {
                            failed = Some(e);
                            return false;
                        }
                    },
                };
                aborted.extend(update_producers(producers, &b.header, marker.as_ref()));
                true
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            for txn in aborted {
                seg.add_aborted_txn(txn);
            }
        }
        // The segments before the active one were deactivated (their entries written) before
        // the replay added theirs: write those now, as a roll would have, so that a crash before
        // the next clean shutdown does not leave their `.txnindex` files empty or short.
        let inactive = self.segments.len().saturating_sub(1);
        for seg in &mut self.segments[..inactive] {
            seg.write_indexes();
        }
        Ok(())
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Below it every record is committed: reads for consumers stop here. With a single
    /// replica that is every appended record.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.unwrap_or_else(|| self.log_end_offset())
    }

    /// The partition is replicated and `offset` is its high watermark from now on: the leader's
    /// from its view of the ISR, a follower's from the leader's fetch answers. It is kept within
    /// [log start, log end] as Kafka's UnifiedLog.updateHighWatermark does (a follower may learn
    /// a high watermark past what it has fetched yet). Returns the high watermark set.
    pub fn set_high_watermark(&mut self, offset: i64) -> i64 {
        let hw = offset.clamp(self.log_start_offset, self.log_end_offset());
        self.high_watermark = Some(hw);
        hw
    }

    /// Whether the high watermark is kept apart from the log end (see `set_high_watermark`).
    pub fn tracks_high_watermark(&self) -> bool {
        self.high_watermark.is_some()
    }

    /// Keeps a tracked high watermark within the log after its start or end moved
    /// (UnifiedLog.maybeIncrementLogStartOffset and truncateTo).
    fn bound_high_watermark(&mut self) {
        if let Some(hw) = self.high_watermark {
            self.high_watermark = Some(hw.clamp(self.log_start_offset, self.log_end_offset()));
        }
    }

    /// Kafka's last stable offset: below it every transaction is decided, so read_committed
    /// reads stop here. The first offset of the oldest ongoing transaction, or the high
    /// watermark without one (UnifiedLog.lastStableOffset); never below the log start offset
    /// (DeleteRecords may pass an open transaction: UnifiedLog.maybeIncrementFirstUnstableOffset).
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        let first_unstable = self.producers.first_unstable_offset();
        first_unstable.map_or(hw, |o| o.clamp(self.log_start_offset.min(hw), hw))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Every offset below it is fsynced (see `complete_flush`).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The partition leads in `epoch` from now on (the metadata layer sets it from the partition's
    /// PartitionRecord / PartitionChangeRecord): appended batches are stamped with it, and it starts
    /// at the log end (Partition.makeLeader: maybeAssignEpochStartOffset(leaderEpoch, LEO)). An
    /// epoch older than the current one is a stale update and changes nothing.
    pub fn set_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        if epoch <= self.leader_epoch {
            return Ok(());
        }
        let leo = self.log_end_offset();
        self.update_leader_epochs(|c| c.assign(epoch, leo))?;
        self.leader_epoch = epoch;
        Ok(())
    }

    /// The leader epoch cache (see `leader_epoch`).
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }

    /// KIP-320's fencing of a request that names the leader epoch it believes current (Fetch,
    /// ListOffsets, OffsetForLeaderEpoch; -1 names none and passes), as Kafka's
    /// Partition.checkCurrentLeaderEpoch: an older epoch than the partition's is
    /// FENCED_LEADER_EPOCH (the client's metadata is stale), a newer one UNKNOWN_LEADER_EPOCH
    /// (this broker has not learnt of it yet).
    pub fn check_current_leader_epoch(&self, requested: i32) -> Result<(), LogError> {
        let current = self.leader_epoch;
        match requested {
            NO_PARTITION_LEADER_EPOCH => Ok(()),
            r if r < current => Err(LogError::FencedLeaderEpoch { requested, current }),
            r if r > current => Err(LogError::UnknownLeaderEpoch { requested, current }),
            _ => Ok(()),
        }
    }

    /// OffsetForLeaderEpoch: the (epoch, end offset) of `epoch` (UnifiedLog.endOffsetForEpoch,
    /// answered from the log end for the latest epoch), once the request's current leader epoch
    /// passes the fencing check (Partition.lastOffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        self.check_current_leader_epoch(current_leader_epoch)?;
        Ok(self
            .leader_epochs
            .end_offset_for(epoch, self.log_end_offset()))
    }

    /// KIP-279's check of a fetch at `offset` whose last fetched batch was of
    /// `last_fetched_epoch` (Partition.readRecords): this log's end of that epoch, when the
    /// fetcher's log diverged from it. An epoch whose end this log cannot tell, or an offset
    /// below the log start, is out of range.
    pub fn diverging_epoch(
        &self,
        offset: i64,
        last_fetched_epoch: i32,
    ) -> Result<Option<(i32, i64)>, LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        let out_of_range = LogError::OffsetOutOfRange {
            offset,
            log_start_offset: start,
            log_end_offset: end,
        };
        let leader_end = self.leader_epochs.end_offset_for(last_fetched_epoch, end);
        if leader_end.0 < 0 || leader_end.1 < 0 || offset < start {
            return Err(out_of_range);
        }
        Ok(super::replication::diverging_epoch(
            offset,
            last_fetched_epoch,
            leader_end,
        ))
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn producers(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// See `ProducerStateTable::remove_expired`.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Where the active segment (never cleaned, never deleted by retention) starts.
    pub fn active_base_offset(&self) -> i64 {
        self.active().base_offset
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: open() and roll() guarantee an active segment.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Validates and appends the broker's own `records` (exactly one batch), as `append_from`
    /// with the coordinator's origin.
    pub fn append(
        &mut self,
        records: &[u8],
        produce_version: i16,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_from(records, produce_version, now_ms, AppendOrigin::Coordinator)
    }

    /// Writes a transaction marker (a control batch: see `control`) for `marker`'s producer and
    /// returns its offset. Kafka's checks for markers apply (ProducerAppendInfo.appendEndTxnMarker):
    /// an older producer epoch than the partition's is INVALID_PRODUCER_EPOCH, an older
    /// coordinator epoch than the producer's last marker TRANSACTION_COORDINATOR_FENCED.
    pub fn append_txn_marker(&mut self, marker: &TxnMarker, now_ms: i64) -> Result<i64, LogError> {
        let batch = end_txn_marker_batch(marker, now_ms);
        let origin = AppendOrigin::Coordinator;
        Ok(self
            .append_from(&batch, INTERNAL_PRODUCE_VERSION, now_ms, origin)?
            .base_offset)
    }

    /// Validates and appends the `records` of one produced partition (exactly one batch).
    pub fn append_from(
        &mut self,
        records: &[u8],
        produce_version: i16,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo, LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        let bounds =
            (self.config.timestamp_type == TimestampType::CreateTime).then_some(TimestampBounds {
                now_ms,
                before_max_ms: self.config.timestamp_before_max_ms,
                after_max_ms: self.config.timestamp_after_max_ms,
            });
        let header = validate_batch(
            records,
            self.config.max_message_bytes,
            produce_version,
            bounds,
            origin,
        )?;
        // A control batch (only a coordinator's: see `validate_batch`) is a transaction marker,
        // checked as one; it is stored as written (LogValidator never recompresses one).
        let marker = if header.is_control() && origin != AppendOrigin::RaftLeader {
            parse_txn_marker(records, &header, self.config.max_message_bytes)?
        } else {
            None
        };
        let converted = match header.is_control() {
            true => None,
            false => self.convert_records(records, &header)?,
        };
        let (records, header) = match &converted {
            // Recompression keeps the producer's header fields; the validated ones stand.
            Some((bytes, h)) => (
                bytes.as_slice(),
                BatchHeader {
                    max_timestamp: header.max_timestamp,
                    ..*h
                },
            ),
            None => (records, header),
        };
        if header.has_producer_id() {
            // A producer id the broker never handed out has no state anywhere: refuse it
            // (UNKNOWN_PRODUCER_ID) rather than let it claim an id a real producer gets later,
            // where its remembered batches would turn the real producer's first writes into
            // "duplicates" that are acknowledged and never written.
            if let AppendOrigin::Client {
                producer_ids_issued,
                ..
            } = origin
            {
                if header.producer_id >= producer_ids_issued {
                    return Err(LogError::UnknownProducerId(header.producer_id));
                }
            }
            let verdict = match &marker {
                Some(m) => self.producers.check_marker(m),
                None => self.producers.check(&header, origin),
            };
            match verdict {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(m) => {
                    let log_append_time = match self.config.timestamp_type {
                        TimestampType::LogAppendTime => m.timestamp,
                        TimestampType::CreateTime => NO_TIMESTAMP,
                    };
                    return Ok(AppendInfo {
                        base_offset: m.first_offset,
                        log_append_time,
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                        records: 0,
                        last_offset: m.last_offset,
                    });
                }
                SequenceCheck::InvalidProducerEpoch => return Err(LogError::InvalidProducerEpoch),
                SequenceCheck::OutOfOrderSequence => return Err(LogError::OutOfOrderSequence),
                SequenceCheck::InvalidTxnState => return Err(LogError::InvalidTxnState),
                SequenceCheck::CoordinatorFenced => {
                    return Err(LogError::TransactionCoordinatorFenced)
                }
            }
        }
        if records.len() as u64 > self.config.segment_bytes {
            return Err(LogError::RecordListTooLarge);
        }
        self.maybe_roll(records.len() as u64, now_ms)?;
        let base_offset = self.log_end_offset();
        let append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let max_timestamp = match append_time {
            Some(now) => MaxTimestamp::LogAppendTime(now),
            None => MaxTimestamp::CreateTime(header.max_timestamp),
        };
        let new_header =
            assign_offsets(records, base_offset, self.leader_epoch, Some(max_timestamp));
        let parsed = BatchHeader::parse(&new_header)
            .ok_or(LogError::Batch(BatchError::Corrupt("header")))?;
        // The cache learns the batch's epoch before the batch is written (UnifiedLog.append), so
        // the file never lacks the epoch of a batch in the log. Nearly every batch is in the
        // latest epoch already: that is checked without touching the cache.
        let epoch = parsed.partition_leader_epoch;
        if self.leader_epochs.latest_epoch() != Some(epoch) {
            self.update_leader_epochs(|c| c.assign(epoch, base_offset))?;
        }
        let interval = self.config.index_interval_bytes;
        if let Err(e) = self.active_mut().append(
            &new_header,
            &records[HEADER_LEN..],
            &parsed,
            interval,
            now_ms,
        ) {
            return Err(self.storage_error(e));
        }
        if let Some(txn) = update_producers(&mut self.producers, &parsed, marker.as_ref()) {
            self.active_mut().add_aborted_txn(txn);
        }
        Ok(AppendInfo {
            base_offset,
            log_append_time: append_time.unwrap_or(NO_TIMESTAMP),
            log_start_offset: self.log_start_offset,
            duplicate: false,
            records: u32::try_from(parsed.record_count).unwrap_or(0),
            last_offset: parsed.last_offset(),
        })
    }

    /// A follower's append of the batches its leader sent (UnifiedLog.appendAsFollower, origin
    /// REPLICATION): stored byte for byte with the leader's offsets, epochs and timestamps.
    /// Each batch must be whole, magic 2 and pass its CRC (a damaged fetch response must not
    /// reach the log), and the offsets must continue the log; a compacted leader's gaps are
    /// kept. The epochs the batches start go into the leader epoch cache, and the producers'
    /// state is rebuilt from them as at recovery, without a leader's sequence checks. Returns
    /// the new log end offset; at most the leading whole batches are taken when an error stops
    /// the append half-way.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<i64, LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        // Checked before anything is written, so that a bad response leaves the log as it was.
        let mut batches = Vec::new();
        let mut next = self.log_end_offset();
        let mut it = crate::log::batch::BatchIter::new(records);
        for (at, h) in it.by_ref() {
            let batch = &records[at..at + h.total_size()];
            if h.magic != MAGIC_V2 {
                return Err(LogError::Batch(BatchError::Corrupt("not a magic 2 batch")));
            }
            if compute_crc(batch) != h.crc {
                return Err(LogError::Batch(BatchError::Corrupt("CRC-32C mismatch")));
            }
            if h.base_offset < next || h.last_offset() < h.base_offset {
                return Err(LogError::UnexpectedAppendOffset {
                    first_offset: h.base_offset,
                    log_end_offset: next,
                });
            }
            if batch.len() as u64 > self.config.segment_bytes {
                return Err(LogError::RecordListTooLarge);
            }
            next = h.last_offset() + 1;
            batches.push((batch, h));
        }
        // A fetch response may end with a partial batch (it was cut at the size limit, maybe
        // inside the header): it comes again in the next fetch. Anything else left over is not
        // batches.
        if !it.rest_is_partial() {
            return Err(LogError::Batch(BatchError::Corrupt("not a record batch")));
        }
        for (batch, h) in batches {
            let marker = match h.is_control() {
                true => parse_txn_marker(batch, &h, self.config.max_message_bytes)?,
                false => None,
            };
            self.maybe_roll(batch.len() as u64, now_ms)?;
            // A segment's offsets are 32-bit relative to its base: a compacted leader's gap
            // past that starts a segment at the batch (LogSegment.canConvertToRelativeOffset).
            if h.last_offset() - self.active().base_offset > i64::from(i32::MAX) {
                self.roll_at(h.base_offset)?;
            }
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && self.leader_epochs.latest_epoch().is_none_or(|l| epoch > l) {
                self.update_leader_epochs(|c| c.assign(epoch, h.base_offset))?;
            }
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&batch[..HEADER_LEN]);
            let interval = self.config.index_interval_bytes;
            if let Err(e) =
                self.active_mut()
                    .append(&header, &batch[HEADER_LEN..], &h, interval, now_ms)
            {
                return Err(self.storage_error(e));
            }
            if let Some(txn) = update_producers(&mut self.producers, &h, marker.as_ref()) {
                self.active_mut().add_aborted_txn(txn);
            }
        }
        Ok(self.log_end_offset())
    }

    /// The record-level work some topic configs need (LogValidator): every record keyed on a
    /// compacted topic, and the batch recompressed when compression.type names another codec.
    /// Returns the batch to store when it changed.
    fn convert_records(
        &self,
        records: &[u8],
        header: &BatchHeader,
    ) -> Result<Option<(Vec<u8>, BatchHeader)>, LogError> {
        let target = self
            .config
            .compression
            .filter(|&c| c != header.compression());
        if !self.config.cleanup_compact && target.is_none() {
            return Ok(None);
        }
        let raw =
            super::records::uncompressed_records(records, header, self.config.max_message_bytes)?;
        let keyless = match self.config.cleanup_compact {
            true => super::records::keyless_records(&raw)?,
            false => Vec::new(),
        };
        if !keyless.is_empty() {
            let partition = self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(LogError::NoKeyOnCompactedTopic {
                partition,
                records: keyless,
            });
        }
        let Some(codec) = target else {
            return Ok(None);
        };
        let out = super::records::recompress(records, header, &raw, codec)?;
        let h = BatchHeader::parse(&out).ok_or(LogError::Batch(BatchError::Corrupt("header")))?;
        Ok(Some((out, h)))
    }

    /// A storage error of an operation. Running out of something that comes back (descriptors,
    /// disk space, quota: see `open_files::is_resource_exhaustion`) fails only that operation:
    /// whatever it wrote half-way is cut off first (see `Segment::append`), and the log goes on
    /// once the resource is back. Anything else is a failed device: the log goes offline.
    fn storage_error(&mut self, e: io::Error) -> LogError {
        if is_resource_exhaustion(&e) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "storage operation failed for want of a resource; the log stays online");
            return LogError::Storage(e);
        }
        self.go_offline(e)
    }

    /// A write or fsync failure leaves the file in an unknown state: stop writing to this log
    /// (KAFKA_STORAGE_ERROR) instead of appending after garbage.
    fn go_offline(&mut self, e: io::Error) -> LogError {
        tracing::error!(dir = %self.dir.display(), error = %e, "storage error; taking the log offline");
        self.offline = true;
        LogError::Storage(e)
    }

    /// Starts a new segment when the active one would exceed segment.bytes, is older than
    /// segment.ms, or has an index at segment.index.bytes (LogSegment.shouldRoll).
    fn maybe_roll(&mut self, incoming: u64, now_ms: i64) -> Result<(), LogError> {
        let active = self.active();
        let full = active.size() + incoming > self.config.segment_bytes
            || active.index_is_full(self.config.segment_index_bytes);
        let old = active
            .first_append_ms
            .is_some_and(|t| now_ms - t >= self.config.segment_ms);
        if active.is_empty() || !(full || old) {
            return Ok(());
        }
        self.roll()
    }

    fn roll(&mut self) -> Result<(), LogError> {
        self.roll_at(self.log_end_offset())
    }

    /// Starts a new active segment at `base` (at or past the log end).
    fn roll_at(&mut self, base: i64) -> Result<(), LogError> {
        match Segment::create(&self.storage, &self.dir, base) {
            Ok(seg) => {
                self.active_mut().deactivate();
                self.segments.push(seg);
                Ok(())
            }
            Err(e) => Err(self.storage_error(e)),
        }
    }

    /// Kafka's unflushedMessages: offsets appended since the recovery point.
    fn unflushed_messages(&self) -> u64 {
        u64::try_from(self.log_end_offset() - self.recovery_point).unwrap_or(0)
    }

    /// The fsync that flush.messages asks for after an append (UnifiedLog.append flushes once
    /// `unflushedMessages >= flush.messages`), if due.
    pub fn flush_due_after_append(&self) -> Option<FlushJob> {
        if self.unflushed_messages() >= self.config.flush_messages.max(1) {
            return self.flush_job(self.log_end_offset());
        }
        None
    }

    /// The fsync the background flusher owes this log, if any: everything when flush.ms has
    /// passed since the last flush (LogManager.flushDirtyLogs), else the segments rolled since the
    /// last flush (Kafka's roll schedules `flushUptoOffsetExclusive(new segment base)`), so that
    /// a rolled segment is fsynced once and never again.
    pub fn flush_due_in_background(&self, now_ms: i64) -> Option<FlushJob> {
        if self.unflushed_messages() > 0 && now_ms - self.last_flush_ms >= self.config.flush_ms {
            return self.flush_job(self.log_end_offset());
        }
        self.flush_job(self.active().base_offset)
    }

    /// The files holding offsets `[recovery point, upto)`: the segments not yet fsynced, usually
    /// just the active one. `None` when everything below `upto` is already flushed.
    pub fn flush_job(&self, upto: i64) -> Option<FlushJob> {
        if upto <= self.recovery_point {
            return None;
        }
        let files = self
            .segments
            .iter()
            .filter(|s| s.next_offset() > self.recovery_point && s.base_offset < upto)
            .map(Segment::log_file)
            .collect();
        Some(FlushJob { upto, files })
    }

    /// Records the outcome of a `FlushJob`: the recovery point moves up (never down: jobs may
    /// finish out of order), or the job failed (see `FlushError`).
    pub fn complete_flush(
        &mut self,
        upto: i64,
        outcome: Result<(), FlushError>,
        now_ms: i64,
    ) -> Result<(), LogError> {
        match outcome {
            Ok(()) => {}
            Err(FlushError::Open(e)) => return Err(self.storage_error(e)),
            Err(FlushError::Sync(e)) => return Err(self.go_offline(e)),
        }
        self.recovery_point = self.recovery_point.max(upto);
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// fsync everything written so far, under the lock (clean shutdown); the indexes too.
    pub fn flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        let upto = self.log_end_offset();
        if let Some(job) = self.flush_job(upto) {
            let outcome = job.run();
            self.complete_flush(upto, outcome, now_ms)?;
        }
        let written: io::Result<()> = self
            .segments
            .iter_mut()
            .try_for_each(Segment::flush_indexes);
        written.map_err(|e| self.storage_error(e))
    }

    /// The segments that may hold `offset`, for a read up to the high watermark; see
    /// `ReadCandidates`.
    pub fn read_candidates(&self, offset: i64) -> Result<ReadCandidates, LogError> {
        self.fetch_candidates(offset, FetchIsolation::HighWatermark)
    }

    /// The segments that may hold `offset`, for a fetch with `isolation` (UnifiedLog.read): an
    /// offset past the log end is out of range; reads stop at the high watermark, or at the last
    /// stable offset for read_committed, which also learns the aborted transactions.
    pub fn fetch_candidates(
        &self,
        offset: i64,
        isolation: FetchIsolation,
    ) -> Result<ReadCandidates, LogError> {
        let (hw, start, end) = (
            self.high_watermark(),
            self.log_start_offset,
            self.log_end_offset(),
        );
        // Past the log end is out of range; between the high watermark and the log end a
        // consumer gets nothing yet (LocalLog.read checks against the log end).
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let lso = self.last_stable_offset();
        let max_offset = match isolation {
            FetchIsolation::HighWatermark => hw,
            FetchIsolation::TxnCommitted => lso,
            FetchIsolation::LogEnd => end,
        };
        let segments = if offset >= max_offset {
            Vec::new()
        } else {
            // From the segment holding `offset` (the first whose end is past it) onwards, up to
            // the one holding `max_offset`.
            let i = self.segments.partition_point(|s| s.next_offset() <= offset);
            self.segments[i..]
                .iter()
                .take_while(|seg| seg.base_offset < max_offset)
                .map(|seg| Candidate {
                    reader: seg.reader(),
                    base_offset: seg.base_offset,
                    hint: seg.index_hint(offset),
                    bound_hint: (seg.next_offset() > max_offset)
                        .then(|| seg.index_hint(max_offset)),
                })
                .collect()
        };
        let aborted = (isolation == FetchIsolation::TxnCommitted).then(|| {
            if segments.is_empty() {
                Vec::new()
            } else {
                self.collect_aborted_txns(offset, max_offset)
            }
        });
        Ok(ReadCandidates {
            offset,
            segments,
            max_offset,
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: start,
            aborted,
        })
    }

    /// The aborted transactions a read_committed fetch of `[fetch_offset, upper_bound)` must
    /// be told of: from the segment holding the fetch offset on, until an entry's last stable
    /// offset reaches the bound (LocalLog.collectAbortedTransactions).
    pub fn collect_aborted_txns(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        let first = self
            .segments
            .partition_point(|s| s.next_offset() <= fetch_offset);
        for seg in &self.segments[first..] {
            if seg.txn_index().collect(fetch_offset, upper_bound, &mut out) {
                break;
            }
        }
        out
    }

    /// Locates the bytes for a fetch at `offset` (callers holding no lock; see `Partition`).
    pub fn plan_read(&self, offset: i64) -> Result<ReadPlan, LogError> {
        Ok(self.read_candidates(offset)?.locate()?)
    }

    /// The first batch holding a record with timestamp `>= target`, and its bytes.
    pub fn find_timestamp(&self, target: i64) -> Result<Option<(BatchHeader, Bytes)>, LogError> {
        for seg in &self.segments {
            if seg.max_timestamp() < target {
                continue;
            }
            if let Some((pos, h)) = seg.find_timestamp(target)? {
                return Ok(Some((h, seg.reader().read_batch(pos, &h)?)));
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp in the log (the first such batch), and its bytes.
    pub fn find_max_timestamp(&self) -> Result<Option<(BatchHeader, Bytes)>, LogError> {
        let max = self
            .segments
            .iter()
            .map(Segment::max_timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        if max == NO_TIMESTAMP {
            return Ok(None);
        }
        self.find_timestamp(max)
    }

    /// Kafka's ListOffsets by timestamp: the first record with timestamp `>= target`, as
    /// (timestamp, offset). Only the one batch found through the time index is decoded.
    pub fn offset_for_timestamp(&self, target: i64) -> Result<Option<(i64, i64)>, LogError> {
        // Records below the log start offset (DeleteRecords) are gone even if their batch is not.
        let start = self.log_start_offset;
        match self.find_timestamp(target)? {
            Some((h, bytes)) => Ok(record_at(&h, bytes, |ts| ts >= target)?
                .map(|(ts, offset)| (ts, offset.max(start)))),
            None => Ok(None),
        }
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the first record carrying the largest timestamp.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        match self.find_max_timestamp()? {
            Some((h, bytes)) => record_at(&h, bytes, |ts| ts >= h.max_timestamp),
            None => Ok(None),
        }
    }

    /// Deletes whole old segments past retention.ms or beyond retention.bytes and advances the log
    /// start offset (Kafka's deleteRetentionMsBreachedSegments / deleteRetentionSizeBreachedSegments).
    /// Returns the number of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let c = &self.config;
        // Only cleanup.policy=delete expires old segments (compaction is a separate cleaner);
        // a deleted log does no more work of any kind.
        if !c.cleanup_delete || self.is_deleted() {
            return Ok(0);
        }
        let mut total = self.size_bytes() as i64;
        let mut deletable = 0;
        let hw = self.high_watermark();
        for seg in &self.segments {
            // Only committed segments expire: the next one starts at or below the high
            // watermark (UnifiedLog.deletableSegments), so a replicated log never loses records
            // its followers may still need to see committed.
            if seg.is_empty() || seg.next_offset() > hw {
                break;
            }
            let by_time = c.retention_ms >= 0
                && seg
                    .largest_timestamp()
                    .is_some_and(|ts| now_ms.saturating_sub(ts) > c.retention_ms);
            let by_size = c.retention_bytes >= 0 && total - seg.size() as i64 >= c.retention_bytes;
            if !(by_time || by_size) {
                break;
            }
            total -= seg.size() as i64;
            deletable += 1;
        }
        if deletable == 0 {
            return Ok(0);
        }
        if deletable == self.segments.len() {
            // Even the active segment expired: roll an empty one so the log keeps its end offset.
            self.roll()?;
        }
        let removed: Vec<Segment> = self.segments.drain(..deletable).collect();
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        self.bound_high_watermark();
        for seg in removed {
            if let Err(e) = seg.delete() {
                tracing::warn!(error = %e, "could not delete an expired segment");
            }
        }
        let start = self.log_start_offset;
        self.update_leader_epochs(|c| c.truncate_from_start(start))?;
        Ok(deletable)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 means the high watermark) and
    /// deletes the whole segments below it, as Kafka's UnifiedLog.deleteRecordsOnLeader /
    /// maybeIncrementLogStartOffset do. Returns the new start.
    ///
    /// The segments wholly below the target go first and the new start is persisted after, so
    /// that DeleteRecords can reclaim space on a full disk (persisting needs a block); a restart
    /// still never shows records the client was told are deleted, since it is told only once the
    /// start is persisted.
    pub fn delete_records(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        if !self.config.cleanup_delete {
            return Err(LogError::DeleteNotAllowedByPolicy);
        }
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(LogError::DeletePastHighWatermark {
                offset: target,
                high_watermark: hw,
            });
        }
        self.increment_log_start_offset(target)
    }

    /// Moves the log start offset up to `target` (at most the log end) and deletes the whole
    /// segments below it (UnifiedLog.maybeIncrementLogStartOffset and deleteOldSegments):
    /// DeleteRecords, and the metadata quorum's log once a snapshot covers what it drops.
    /// Returns the new start.
    pub fn increment_log_start_offset(&mut self, target: i64) -> Result<i64, LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        let target = target.min(self.log_end_offset());
        if target <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        let wholly_below = |s: &Segment| s.next_offset() <= target && !s.is_empty();
        let inactive = self.segments.len() - 1;
        let below = self.segments[..inactive]
            .iter()
            .take_while(|s| wholly_below(s))
            .count();
        self.delete_oldest_segments(below);
        if below == inactive && wholly_below(self.active()) {
            self.roll()?;
            self.delete_oldest_segments(1);
        }
        self.persist_log_start(target)?;
        self.update_leader_epochs(|c| c.truncate_from_start(target))?;
        Ok(target)
    }

    /// Removes every batch from `offset` on (a Raft follower's log conflicting with its leader's;
    /// Kafka's UnifiedLog.truncateTo): later segments are deleted, the one holding `offset` is cut
    /// there and its indexes rebuilt, and the leader epochs after it are forgotten. `offset` must
    /// start a batch; at or past the log end nothing changes.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset {
            return Err(LogError::Storage(io::Error::other(format!(
                "cannot truncate to {offset}, before the log start {}",
                self.log_start_offset
            ))));
        }
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            if let Some(seg) = self.segments.pop() {
                if let Err(e) = seg.delete() {
                    return Err(self.storage_error(e));
                }
            }
        }
        let active = self.active();
        let base = active.base_offset;
        let position = match active.find_position(offset) {
            Ok(p) => p.unwrap_or(active.size()),
            Err(e) => return Err(self.storage_error(e)),
        };
        let cut = active.reader().file().and_then(|f| f.truncate(position));
        if let Err(e) = cut {
            return Err(self.storage_error(e));
        }
        // Reopened as after a crash: the indexes are rebuilt from what is left of the file.
        let interval = self.config.index_interval_bytes;
        let reopened = Segment::open(&self.storage, &self.dir, base, OpenMode::Recover, interval);
        match reopened {
            Ok((seg, _)) => *self.active_mut() = seg,
            Err(e) => return Err(self.storage_error(e)),
        }
        let end = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(end);
        self.bound_high_watermark();
        self.update_leader_epochs(|c| c.truncate_from_end(end))?;
        self.leader_epoch = self.leader_epochs.latest_epoch().unwrap_or(0);
        // The producers' state forgets the batches cut off (UnifiedLog.truncateTo reloads it),
        // so that a producer's retry of one is appended again, not taken for a duplicate; the
        // replay rebuilds the transaction indexes with it.
        self.producers = ProducerStateTable::default();
        if let Err(e) = self.load_producer_state(false) {
            return Err(self.storage_error(e));
        }
        Ok(())
    }

    /// A follower whose log ends below its leader's log start (the leader answered
    /// OFFSET_OUT_OF_RANGE) starts over there (UnifiedLog.truncateFullyAndStartAt): every
    /// segment goes, an empty one starts at `offset`, which becomes the log start; the epochs
    /// and the producers' state are forgotten. An offset not past the log end changes nothing.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        if offset <= self.log_end_offset() {
            return Ok(());
        }
        self.roll_at(offset)?;
        self.delete_oldest_segments(self.segments.len() - 1);
        self.persist_log_start(offset)?;
        self.recovery_point = offset;
        self.producers = ProducerStateTable::default();
        self.update_leader_epochs(|c| c.truncate_from_end(0))
    }

    /// The log starts at `offset` from now on, written to its log-start-offset file first (so
    /// that a restart keeps it), the high watermark kept inside the log.
    fn persist_log_start(&mut self, offset: i64) -> Result<(), LogError> {
        let persisted = self.storage.write_atomically(
            &self.dir.join(LOG_START_OFFSET_FILE),
            format!("{offset}\n").as_bytes(),
        );
        if let Err(e) = persisted {
            return Err(self.storage_error(e));
        }
        self.log_start_offset = offset;
        self.bound_high_watermark();
        Ok(())
    }

    /// Drops the `n` oldest segments and their files; the log start moves to the next one.
    fn delete_oldest_segments(&mut self, n: usize) {
        for seg in self.segments.drain(..n).collect::<Vec<_>>() {
            if let Err(e) = seg.delete() {
                tracing::warn!(error = %e, "could not delete a segment below the log start offset");
            }
        }
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        self.bound_high_watermark();
    }

    /// What a cleaning would rewrite now, if this compacted log is due one (see `cleaner`).
    pub fn clean_plan(&self, now_ms: i64) -> Option<CleanPlan> {
        if !self.config.cleanup_compact || self.offline {
            return None;
        }
        let active = self.segments.len() - 1;
        // Records newer than min.compaction.lag.ms, and everything after them, stay uncleaned.
        let lag_limit = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        // Nor is anything at or past the last stable offset: whether an open transaction's
        // records stay is not known yet (LogCleanerManager's firstUncleanableOffset).
        let lso = self.last_stable_offset();
        let cleanable: Vec<&Segment> = self.segments[..active]
            .iter()
            .take_while(|s| s.largest_timestamp().is_some_and(|ts| ts <= lag_limit))
            .take_while(|s| s.next_offset() <= lso)
            .collect();
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let dirty: Vec<&&Segment> = cleanable
            .iter()
            .filter(|s| s.next_offset() > self.first_dirty_offset)
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
        if dirty_bytes == 0 {
            return None;
        }
        let ratio = dirty_bytes as f64 / total as f64;
        // max.compaction.lag.ms: the oldest dirty segment may wait no longer than this (judged by
        // its newest record, so at most one segment's span later than Kafka, which uses the oldest).
        let overdue = dirty.first().is_some_and(|s| {
            s.largest_timestamp()
                .is_some_and(|ts| ts < now_ms.saturating_sub(self.config.max_compaction_lag_ms))
        });
        if ratio < self.config.min_cleanable_dirty_ratio && !overdue {
            return None;
        }
        Some(CleanPlan {
            aborted: Arc::clone(&self.deleted),
            config: self.config.clone(),
            sources: cleanable
                .iter()
                .map(|s| CleanSource {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset(),
                    reader: s.reader(),
                })
                .collect(),
            first_dirty_offset: self.first_dirty_offset,
            producer_last_offsets: self.producers.last_batch_offsets(),
            aborted_txns: cleaner::AbortedRanges::new(self.collect_aborted_txns(
                self.log_start_offset,
                cleanable.last().map_or(0, |s| s.next_offset()),
            )),
        })
    }

    /// Swaps rewritten segments in (rename over the `.log`, indexes rebuilt); a segment that
    /// went away or changed meanwhile (retention, DeleteRecords) keeps its old file and the
    /// rewrite is dropped. Returns how many segments were replaced.
    pub fn install_cleaned(&mut self, cleaned: Vec<CleanedSegment>) -> io::Result<usize> {
        if self.is_deleted() {
            // The rewritten files went with the log's directory.
            return Ok(0);
        }
        let mut replaced = 0;
        for c in cleaned {
            let active = self.segments.len() - 1;
            let at = self.segments[..active]
                .iter()
                .position(|s| s.base_offset == c.base_offset && s.size() == c.source_size);
            let Some(i) = at else {
                CleanedFiles::discard(self, c.base_offset);
                continue;
            };
            let log = self
                .dir
                .join(super::segment::file_name(c.base_offset, "log"));
            // The cleaned segment keeps the source's modification time (Kafka's cleanSegments
            // does the same): retention and the compaction lags judge a segment whose records
            // carry no timestamp by that time, and a cleaning must not make it young again.
            let cleaned_path = self.cleaned_path(c.base_offset);
            if let Ok(modified) = fs::metadata(&log).and_then(|m| m.modified()) {
                fs::File::options()
                    .write(true)
                    .open(&cleaned_path)
                    .and_then(|f| f.set_modified(modified))?;
            }
            fs::rename(&cleaned_path, &log)?;
            // The transaction index stays: the cleaned segment adopts it below.
            for suffix in ["index", "timeindex"] {
                let _ = fs::remove_file(
                    self.dir
                        .join(super::segment::file_name(c.base_offset, suffix)),
                );
            }
            let (mut seg, _) = Segment::open(
                &self.storage,
                &self.dir,
                c.base_offset,
                OpenMode::Recover,
                self.config.index_interval_bytes,
            )?;
            seg.adopt_txn_index(&mut self.segments[i]);
            seg.deactivate();
            self.first_dirty_offset = self.first_dirty_offset.max(c.cleaned_up_to);
            if seg.is_empty() {
                // Nothing of it survived: the segment goes (readers skip to the next one).
                seg.delete()?;
                self.segments.remove(i);
            } else {
                self.segments[i] = seg;
            }
            replaced += 1;
        }
        Ok(replaced)
    }

    /// The topic was deleted: from now on the log refuses every write and does no background
    /// work, a cleaning in progress stops, and the directory is renamed to `renamed_to` under the
    /// partition lock, the log's `dir` with it (Kafka's UnifiedLog.renameDir in
    /// LogManager.asyncDelete). A path this log builds later names only its own doomed directory,
    /// never that of a topic re-created under the same name.
    pub fn mark_deleted(&mut self, renamed_to: &Path) -> io::Result<()> {
        self.deleted.store(true, Ordering::Release);
        self.offline = true;
        // Segment files are reopened by path when the cache of open files closed them: point
        // them at the new place first, so that no reopen ever finds a re-created topic's file.
        for seg in &mut self.segments {
            seg.moved_to(renamed_to);
        }
        if let Err(e) = fs::rename(&self.dir, renamed_to) {
            for seg in &mut self.segments {
                seg.moved_to(&self.dir);
            }
            return Err(e);
        }
        self.dir = renamed_to.to_path_buf();
        Ok(())
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    fn cleaned_path(&self, base_offset: i64) -> PathBuf {
        self.dir.join(super::segment::file_name(
            base_offset,
            cleaner::CLEANED_SUFFIX,
        ))
    }

    /// Clean shutdown: fsync and save the producer state so the next start need not replay.
    pub fn close(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.is_deleted() {
            return Ok(());
        }
        self.flush(now_ms)?;
        let snapshot = self.producers.encode_snapshot(self.log_end_offset());
        let tmp = self.dir.join(format!("{PRODUCER_SNAPSHOT}.tmp"));
        fs::write(&tmp, snapshot)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, self.dir.join(PRODUCER_SNAPSHOT))?;
        Ok(())
    }
}

/// A cleaning writes its rewritten segments through the log that planned it, which opens them in
/// its own directory and refuses once the log is deleted: the file is then written through its
/// descriptor, wherever the directory went, and never lands in another log's directory.
impl CleanedFiles for PartitionLog {
    fn create(&self, base_offset: i64) -> io::Result<fs::File> {
        if self.is_deleted() {
            return Err(io::Error::other("the log was deleted"));
        }
        fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.cleaned_path(base_offset))
    }

    fn discard(&self, base_offset: i64) {
        if !self.is_deleted() {
            let _ = fs::remove_file(self.cleaned_path(base_offset));
        }
    }
}

/// The same, taking the partition lock for each file (the cleaning itself runs without it).
impl CleanedFiles for Partition {
    fn create(&self, base_offset: i64) -> io::Result<fs::File> {
        self.lock().create(base_offset)
    }

    fn discard(&self, base_offset: i64) {
        self.lock().discard(base_offset)
    }
}

/// The (timestamp, offset) of the first record of a stored batch whose timestamp satisfies
/// `wanted`. LogAppendTime batches carry one timestamp for all records: their first record.
fn record_at(
    h: &BatchHeader,
    mut bytes: Bytes,
    wanted: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>, LogError> {
    if h.is_log_append_time() {
        return Ok(Some((h.max_timestamp, h.base_offset)));
    }
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).map_err(|e| {
        LogError::Storage(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    })?;
    Ok(set
        .records
        .iter()
        .find(|r| wanted(r.timestamp))
        .map(|r| (r.timestamp, r.offset)))
}

/// Applies an appended or replayed batch to the producers' state; returns the aborted
/// transaction it completed, for the transaction index of the segment holding its marker, with
/// the last stable offset once it is complete (UnifiedLog.append: ProducerStateManager
/// .lastStableOffset(completedTxn), the oldest other ongoing transaction or past the marker).
pub(super) fn update_producers(
    producers: &mut ProducerStateTable,
    h: &BatchHeader,
    marker: Option<&TxnMarker>,
) -> Option<AbortedTxn> {
    let done = producers.update(h, marker)?;
    done.aborted.then(|| AbortedTxn {
        producer_id: done.producer_id,
        first_offset: done.first_offset,
        last_offset: done.last_offset,
        last_stable_offset: producers
            .first_unstable_offset()
            .unwrap_or(done.last_offset + 1),
    })
}

fn stored_log_start_offset(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join(LOG_START_OFFSET_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Rewritten segments of a cleaning the broker did not live to swap in.
fn remove_unfinished_cleanings(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        if e.file_name()
            .to_string_lossy()
            .ends_with(cleaner::CLEANED_SUFFIX)
        {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// Deletes a segment's files, the `.log` last: a segment whose `.log` is still there after a crash
/// is a whole segment again at the next start-up (its indexes are rebuilt).
fn remove_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    for suffix in ["index", "timeindex", "txnindex", "log"] {
        match fs::remove_file(dir.join(super::segment::file_name(base, suffix))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A partition: its identity and its log behind a mutex that is never held across an await or
/// while reading record bytes.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    /// Entered (shared) before `log` is locked, always: a broker snapshot closes it to find every
    /// log of the data directory at rest (see `manager::WriteGate`).
    gate: Arc<super::manager::WriteGate>,
    log: Mutex<PartitionLog>,
    /// The leader's view of its followers while this broker leads a replicated partition (see
    /// `make_leader`). Locked after `log`, never before it, so that the high watermark moves
    /// with the log end it is computed from.
    leader: Mutex<Option<LeaderState>>,
    /// Bytes and messages in and out, for the metrics (counted without the log's lock).
    pub stats: crate::metrics::PartitionStats,
}

/// Where an acks=all append stands (Partition.checkEnoughReplicasReachOffset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAll {
    /// The high watermark has not passed it yet.
    Waiting,
    /// Committed, with the ISR at least min.insync.replicas.
    Replicated,
    /// Committed, but the ISR shrank below min.insync.replicas meanwhile
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    NotEnoughReplicas,
    /// This broker leads the partition no more (NOT_LEADER_OR_FOLLOWER).
    NotLeader,
}

/// A fetch from a broker that is not a follower of this leader (Kafka answers it
/// NOT_LEADER_OR_FOLLOWER): this broker does not lead the replicated partition, or the broker is
/// not one of its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAFollower;

impl Partition {
    /// A partition behind a gate of its own (tests, tools); the log manager's share one.
    pub fn new(topic: String, index: i32, log: PartitionLog) -> Partition {
        Self::behind(topic, index, log, Arc::default())
    }

    /// A partition whose every change passes `gate`.
    pub fn behind(
        topic: String,
        index: i32,
        log: PartitionLog,
        gate: Arc<super::manager::WriteGate>,
    ) -> Partition {
        Partition {
            topic,
            index,
            gate,
            log: Mutex::new(log),
            leader: Mutex::new(None),
            stats: Default::default(),
        }
    }

    pub fn with_log<R>(&self, f: impl FnOnce(&mut PartitionLog) -> R) -> R {
        f(&mut self.lock())
    }

    /// The log, locked, the gate entered first (the one way to it: see `gate`).
    fn lock(&self) -> LockedLog<'_> {
        let gate = self.gate.enter();
        LockedLog {
            log: self.log.lock(),
            _gate: gate,
        }
    }

    /// The broker's own records (see `PartitionLog::append`). When flush.messages asks for it,
    /// fsyncs before returning (without the lock).
    pub fn append(
        &self,
        records: &[u8],
        produce_version: i16,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.write_and_flush(now_ms, |log| log.append(records, produce_version, now_ms))
    }

    /// Appends one batch from `origin` (a coordinator's: `AppendOrigin::Coordinator`, which may be
    /// transactional with producer id and epoch and sequence -1), flushing as `append` does.
    pub fn append_with_origin(
        &self,
        batch: &[u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.write_and_flush(now_ms, |log| {
            log.append_from(batch, INTERNAL_PRODUCE_VERSION, now_ms, origin)
        })
    }

    /// Writes a transaction marker (see `PartitionLog::append_txn_marker`) and returns its
    /// offset, flushing as `append` does.
    pub fn append_txn_marker(&self, marker: &TxnMarker, now_ms: i64) -> Result<i64, LogError> {
        self.write_and_flush(now_ms, |log| log.append_txn_marker(marker, now_ms))
    }

    /// Runs a write under the lock, then the fsync flush.messages asks for without it.
    fn write_and_flush<R>(
        &self,
        now_ms: i64,
        write: impl FnOnce(&mut PartitionLog) -> Result<R, LogError>,
    ) -> Result<R, LogError> {
        let (out, flush) = {
            let mut log = self.lock();
            let out = write(&mut log)?;
            self.after_leader_append(&mut log);
            (out, log.flush_due_after_append())
        };
        if let Some(job) = flush {
            self.run_flush(job, now_ms)?;
        }
        Ok(out)
    }

    /// Appends records from `origin` (a Produce request: `AppendOrigin::Client`) and hands back
    /// the fsync flush.messages asks for, for the caller to run (Produce runs it on a blocking
    /// thread and answers once it is done).
    pub fn append_unflushed(
        &self,
        records: &[u8],
        produce_version: i16,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<(AppendInfo, Option<FlushJob>), LogError> {
        let mut log = self.lock();
        let info = log.append_from(records, produce_version, now_ms, origin)?;
        self.after_leader_append(&mut log);
        Ok((info, log.flush_due_after_append()))
    }

    /// A leader whose ISR is itself alone commits what it appends at once
    /// (Partition.appendRecordsToLeader: maybeIncrementLeaderHW).
    fn after_leader_append(&self, log: &mut PartitionLog) {
        if let Some(state) = self.leader.lock().as_mut() {
            if let Some(hw) = state.on_leader_append(log.log_end_offset()) {
                log.set_high_watermark(hw);
            }
        }
    }

    /// This broker leads the replicated partition `reg` registers from now on
    /// (Partition.makeLeader): its followers are tracked from `now_ms`, each given
    /// `max_lag_ms` (replica.lag.time.max.ms) to catch up, and the high watermark is kept
    /// apart from the log end, starting where the log had it.
    pub fn make_leader(&self, reg: &PartitionRegistration, max_lag_ms: i64, now_ms: i64) {
        self.make_follower();
        self.become_leader(reg, max_lag_ms, now_ms);
    }

    /// The image names this broker the leader of `reg` (ReplicaManager.applyLocalLeadersDelta
    /// into Partition.makeLeader): a new leader epoch makes it leader afresh (`make_leader`);
    /// the epoch it already leads in only takes the committed ISR, partition epoch and replicas
    /// (an ISR change, a reassignment), keeping what it knows of the followers that stay, and
    /// the high watermark moves when the ISR shrank. Returns whether it took up a new leader epoch.
    pub fn become_leader(&self, reg: &PartitionRegistration, max_lag_ms: i64, now_ms: i64) -> bool {
        let mut log = self.lock();
        let mut leader = self.leader.lock();
        match leader.as_mut() {
            Some(state) if state.leader_epoch == reg.leader_epoch => {
                if reg.partition_epoch > state.partition_epoch {
                    state.on_isr_committed(reg.isr.clone(), reg.partition_epoch);
                }
                // A reassignment may add or remove followers within the epoch (even when an
                // AlterPartition answer brought its partition epoch first).
                state.update_assignment(&reg.replicas);
                if let Some(hw) = state.maybe_increment_high_watermark(log.log_end_offset()) {
                    log.set_high_watermark(hw);
                }
                false
            }
            _ => {
                let (leo, hw) = (log.log_end_offset(), log.high_watermark());
                let mut state = LeaderState::new(reg, leo, hw, max_lag_ms, now_ms);
                // An ISR of the leader alone commits its whole log at once (makeLeader ends
                // with maybeIncrementLeaderHW).
                state.maybe_increment_high_watermark(leo);
                log.set_high_watermark(state.high_watermark());
                *leader = Some(state);
                true
            }
        }
    }

    /// The ISR change this leader should ask the controller for now, if any, marked in flight
    /// (Partition.maybeShrinkIsr and maybeExpandIsr): without the ISR members not caught up for
    /// `replica.lag.time.max.ms`, else with one replica that caught up. Returns (leader epoch,
    /// partition epoch, new ISR); nothing while a change is in flight. Only a replica
    /// `isr_eligible` allows may join (Partition.isReplicaIsrEligible: not fenced, not in
    /// controlled shutdown), so that a broker shutting down, which still fetches, is not asked
    /// back in.
    pub fn propose_isr_change(
        &self,
        now_ms: i64,
        isr_eligible: &dyn Fn(i32) -> bool,
    ) -> Option<(i32, i32, Vec<i32>)> {
        let log = self.lock();
        let mut leader = self.leader.lock();
        let state = leader.as_mut()?;
        let out = state.out_of_sync(now_ms, log.log_end_offset());
        let (pending, isr) = if !out.is_empty() {
            let isr: Vec<i32> = state
                .isr
                .iter()
                .copied()
                .filter(|r| !out.contains(r))
                .collect();
            (PendingIsr::Shrink(isr.clone()), isr)
        } else {
            let joining = state.joinable().find(|&r| isr_eligible(r))?;
            let mut isr = state.isr.clone();
            isr.push(joining);
            (PendingIsr::Expand(joining), isr)
        };
        state.pending = Some(pending);
        Some((state.leader_epoch, state.partition_epoch, isr))
    }

    /// The controller's answer to this leader's AlterPartition: a committed ISR of this epoch is
    /// taken at once (the image brings it too); a refusal ends the change in flight, so that the
    /// next check asks again from what the image says (a stale partition epoch, a fenced epoch,
    /// an ineligible replica: Partition.handleAlterPartitionError).
    pub fn on_alter_partition_answer(
        &self,
        error_code: i16,
        leader_epoch: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
    ) {
        let mut log = self.lock();
        let mut leader = self.leader.lock();
        let Some(state) = leader.as_mut() else {
            return;
        };
        if error_code != 0 {
            state.pending = None;
            return;
        }
        if leader_epoch == state.leader_epoch && partition_epoch > state.partition_epoch {
            state.on_isr_committed(isr, partition_epoch);
            if let Some(hw) = state.maybe_increment_high_watermark(log.log_end_offset()) {
                log.set_high_watermark(hw);
            }
        } else if partition_epoch <= state.partition_epoch {
            state.pending = None;
        }
    }

    /// How many replicas the committed ISR of this replicated leader has (`None` when it does
    /// not lead a replicated partition): acks=all needs min.insync.replicas of them before the
    /// append (Partition.appendRecordsToLeader's NOT_ENOUGH_REPLICAS).
    pub fn isr_size(&self) -> Option<usize> {
        let leader = self.leader.lock();
        leader.as_ref().map(|s| s.isr.len())
    }

    /// Whether the records below `required_offset` are committed, for an acks=all produce
    /// (Partition.checkEnoughReplicasReachOffset).
    pub fn acks_all(&self, required_offset: i64, min_isr: usize) -> AcksAll {
        let log = self.lock();
        let leader = self.leader.lock();
        let Some(state) = leader.as_ref() else {
            return AcksAll::NotLeader;
        };
        if log.high_watermark() < required_offset {
            AcksAll::Waiting
        } else if state.isr.len() < min_isr {
            AcksAll::NotEnoughReplicas
        } else {
            AcksAll::Replicated
        }
    }

    /// Whether the records below `offset` are committed by this leader in `leader_epoch`, for a
    /// coordinator's write (`coordinator::commit`): `NotLeader` once it leads no more, or leads
    /// in another epoch (what it wrote may have been truncated meanwhile).
    pub fn committed_in_epoch(&self, leader_epoch: i32, offset: i64) -> AcksAll {
        let log = self.lock();
        let leader = self.leader.lock();
        match leader.as_ref() {
            Some(state) if state.leader_epoch == leader_epoch => {
                if log.high_watermark() < offset {
                    AcksAll::Waiting
                } else {
                    AcksAll::Replicated
                }
            }
            _ => AcksAll::NotLeader,
        }
    }

    /// Whether a replica of this replicated leader may join its ISR now.
    pub fn may_expand_isr(&self) -> bool {
        let leader = self.leader.lock();
        leader
            .as_ref()
            .is_some_and(|s| s.joinable().next().is_some())
    }

    /// The ISR of this replicated leader, with the leader epoch (`None` when it does not lead).
    pub fn leader_isr(&self) -> Option<(i32, Vec<i32>)> {
        let leader = self.leader.lock();
        leader.as_ref().map(|s| (s.leader_epoch, s.isr.clone()))
    }

    /// This broker follows the replicated partition from now on (Partition.makeFollower): it
    /// no longer tracks followers, and its high watermark comes from its leader's answers.
    pub fn make_follower(&self) {
        let mut log = self.lock();
        *self.leader.lock() = None;
        let hw = log.high_watermark();
        log.set_high_watermark(hw);
    }

    /// Whether this broker leads the partition as a replicated one (see `make_leader`).
    pub fn is_replicated_leader(&self) -> bool {
        self.leader.lock().is_some()
    }

    /// A follower `replica_id` fetched at `fetch_offset` (its log end) at `now_ms`
    /// (Partition.updateFollowerFetchState): its state moves, and the high watermark with it.
    /// Returns the new high watermark when it moved (parked fetches and acks=all produces wait
    /// on it).
    pub fn record_follower_fetch(
        &self,
        replica_id: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<Option<i64>, NotAFollower> {
        let mut log = self.lock();
        let mut leader = self.leader.lock();
        let state = leader.as_mut().ok_or(NotAFollower)?;
        if state.follower(replica_id).is_none() {
            return Err(NotAFollower);
        }
        let leo = log.log_end_offset();
        Ok(state
            .on_follower_fetch(replica_id, fetch_offset, now_ms, leo)
            .map(|hw| log.set_high_watermark(hw)))
    }

    /// A follower's append of what its leader sent (see `PartitionLog::append_as_follower`),
    /// and the leader's high watermark from the same answer, which the follower takes as far
    /// as its own log goes (ReplicaFetcherThread.processPartitionData). Returns the log end.
    ///
    /// `fetched_in` is the leader epoch the fetch was sent in. An answer that arrives after
    /// this broker took the lead itself (its log moved to a newer epoch, which the log manager
    /// does before the replica manager stops the fetch) is refused (FencedLeaderEpoch) under
    /// the partition lock: appended, the old leader's batch would land past the new epoch's
    /// start, and the new leader's epoch cache would say the old epoch ended before a batch of
    /// it, so that every follower fetching after it diverges there for ever. Kafka's fetcher
    /// cannot get there: the replica manager removes a partition from its fetcher (under the
    /// fetcher's lock, which the processing of an answer holds) before it makes it a leader.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
        now_ms: i64,
        fetched_in: i32,
    ) -> Result<i64, LogError> {
        let mut log = self.lock();
        let current = log.leader_epoch();
        if current > fetched_in || self.leader.lock().is_some() {
            return Err(LogError::FencedLeaderEpoch {
                requested: fetched_in,
                current,
            });
        }
        let leo = log.append_as_follower(records, now_ms)?;
        // It only moves forward (UnifiedLog.maybeUpdateHighWatermark).
        let current = log.tracks_high_watermark().then(|| log.high_watermark());
        if current.is_none_or(|hw| leader_high_watermark > hw) {
            log.set_high_watermark(leader_high_watermark);
        }
        Ok(leo)
    }

    /// Runs `job` without the partition lock, then records its outcome under it.
    pub fn run_flush(&self, job: FlushJob, now_ms: i64) -> Result<(), LogError> {
        let outcome = job.run();
        self.lock().complete_flush(job.upto, outcome, now_ms)
    }

    /// The background flush (flush.ms, and segments rolled since the last flush).
    pub fn flush_in_background(&self, now_ms: i64) -> Result<(), LogError> {
        let job = self.lock().flush_due_in_background(now_ms);
        match job {
            Some(job) => self.run_flush(job, now_ms),
            None => Ok(()),
        }
    }

    /// The lock is held only to pick candidate segments; the header scan runs without it.
    pub fn plan_read(&self, offset: i64) -> Result<ReadPlan, LogError> {
        self.plan_fetch(
            offset,
            FetchIsolation::HighWatermark,
            NO_PARTITION_LEADER_EPOCH,
        )
    }

    /// `plan_read` with a fetch isolation (read_committed: `FetchIsolation::TxnCommitted`), for
    /// a fetch naming the leader epoch it believes current (Kafka's Partition.fetchRecords checks
    /// it before the offset: see `PartitionLog::check_current_leader_epoch`).
    pub fn plan_fetch(
        &self,
        offset: i64,
        isolation: FetchIsolation,
        current_leader_epoch: i32,
    ) -> Result<ReadPlan, LogError> {
        let no_epoch = NO_PARTITION_LEADER_EPOCH;
        self.plan_fetch_after(offset, isolation, current_leader_epoch, no_epoch)
    }

    /// `plan_fetch` for a fetch that names the epoch of the last batch it has (Fetch v12+,
    /// -1 for none): where that fetcher's log diverged from this one, the plan reads nothing
    /// and names this log's end of that epoch (`PartitionLog::diverging_epoch`).
    pub fn plan_fetch_after(
        &self,
        offset: i64,
        isolation: FetchIsolation,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
    ) -> Result<ReadPlan, LogError> {
        let candidates = {
            let log = self.lock();
            log.check_current_leader_epoch(current_leader_epoch)?;
            if last_fetched_epoch >= 0 {
                if let Some(d) = log.diverging_epoch(offset, last_fetched_epoch)? {
                    return Ok(ReadPlan {
                        reader: None,
                        high_watermark: log.high_watermark(),
                        last_stable_offset: log.last_stable_offset(),
                        log_start_offset: log.log_start_offset(),
                        aborted_transactions: None,
                        diverging_epoch: Some(d),
                    });
                }
            }
            log.fetch_candidates(offset, isolation)?
        };
        Ok(candidates.locate()?)
    }

    /// A follower's truncation on the leader's DivergingEpoch `(epoch, end offset)`
    /// (AbstractFetcherThread.truncateOnFetchResponse): to where both logs agree
    /// (`replication::truncation_offset`), the high watermark kept within the log. Returns the
    /// new log end.
    pub fn truncate_on_divergence(&self, leader: (i32, i64)) -> Result<i64, LogError> {
        let mut log = self.lock();
        let leo = log.log_end_offset();
        let local = log.leader_epochs().end_offset_for(leader.0, leo);
        let t = super::replication::truncation_offset(leader, local, leo, log.high_watermark());
        log.truncate_to(t.offset)?;
        // An epoch this broker started at its log end while it led, and wrote nothing in, goes
        // too (truncate_to keeps a log it does not shorten as it is): else the next fetch names
        // it again and the leader finds the same divergence for ever.
        log.update_leader_epochs(|c| c.truncate_from_end(t.offset))?;
        Ok(log.log_end_offset())
    }

    /// Begins (or joins) the verification of a producer's transactional batch, under the
    /// partition lock (UnifiedLog.maybeStartTransactionVerification): the guard to append with
    /// once the coordinator said yes (see `txn::producer_state::VerificationGuard`).
    pub fn maybe_start_transaction_verification(
        &self,
        producer_id: i64,
        now_ms: i64,
    ) -> VerificationGuard {
        self.lock()
            .producers
            .maybe_start_verification(producer_id, now_ms)
    }

    /// See `PartitionLog::last_stable_offset`.
    pub fn last_stable_offset(&self) -> i64 {
        self.lock().last_stable_offset()
    }

    /// Every producer's state, for DescribeProducers.
    pub fn active_producers(&self) -> Vec<ProducerInfo> {
        self.lock().producers().active_producers()
    }

    /// See `PartitionLog::set_leader_epoch`.
    pub fn set_leader_epoch(&self, epoch: i32) -> Result<(), LogError> {
        self.lock().set_leader_epoch(epoch)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.lock().leader_epoch()
    }

    /// (log start offset, high watermark)
    pub fn offsets(&self) -> (i64, i64) {
        let log = self.lock();
        (log.log_start_offset(), log.high_watermark())
    }
}

/// A partition's log under its lock, with the write gate entered; the log's lock goes first.
struct LockedLog<'a> {
    log: parking_lot::MutexGuard<'a, PartitionLog>,
    _gate: super::manager::GateEntry<'a>,
}

impl std::ops::Deref for LockedLog<'_> {
    type Target = PartitionLog;
    fn deref(&self) -> &PartitionLog {
        &self.log
    }
}

impl std::ops::DerefMut for LockedLog<'_> {
    fn deref_mut(&mut self) -> &mut PartitionLog {
        &mut self.log
    }
}

/// Kafka's message for a keyless record sent to a compacted topic (LogValidator.validateKey).
pub fn keyless_record_message(partition: &str) -> String {
    format!("Compacted topic cannot accept message without key in topic partition {partition}.")
}

/// The first three record errors as Java prints a list of RecordError.
fn keyless_summary(partition: &str, records: &[i32]) -> String {
    let message = keyless_record_message(partition);
    records
        .iter()
        .take(3)
        .map(|i| format!("RecordError(batchIndex={i}, message='{message}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::replication::tests::registration;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 2000,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    fn read_all(log: &PartitionLog, from: i64) -> Vec<BatchHeader> {
        let plan = log.plan_read(from).unwrap();
        let bytes = plan.read(usize::MAX, true).unwrap();
        let mut it = crate::log::batch::BatchIter::new(&bytes);
        it.by_ref().map(|(_, h)| h).collect()
    }

    #[test]
    fn appends_roll_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for i in 0..100 {
            let b = make_batch(&[b"aaaaaaaaaa", b"bbbbbbbbbb"], 1000 + i, None);
            assert_eq!(log.append(&b, 9, 0).unwrap().base_offset, 2 * i);
        }
        assert!(log.segment_count() > 3);
        assert_eq!(log.high_watermark(), 200);
        // Reads start at the batch holding the offset, in any segment.
        assert_eq!(read_all(&log, 77)[0].base_offset, 76);
        log.close(0).unwrap();
        drop(log);
        for clean in [true, false] {
            let log = PartitionLog::open(dir.path(), config(), clean, 0).unwrap();
            assert_eq!(log.high_watermark(), 200);
            assert_eq!(read_all(&log, 199)[0].base_offset, 198);
        }
    }

    /// UnifiedLog.truncateTo: the suffix from a batch boundary goes, across segments, the
    /// epochs it started are forgotten, appends continue at the cut, and a reopen agrees.
    #[test]
    fn truncation_removes_a_suffix_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for i in 0..100 {
            if i == 80 {
                log.set_leader_epoch(2).unwrap();
            }
            let b = make_batch(&[b"aaaaaaaaaa", b"bbbbbbbbbb"], 1000 + i, None);
            log.append(&b, 9, 0).unwrap();
        }
        let segments = log.segment_count();
        assert!(segments > 3);
        log.truncate_to(150).unwrap();
        assert_eq!(log.log_end_offset(), 150);
        assert!(log.segment_count() < segments);
        assert_eq!(log.leader_epoch(), 0);
        assert_eq!(log.leader_epochs().latest_epoch(), Some(0));
        assert_eq!(read_all(&log, 147).last().unwrap().base_offset, 148);
        // Past the end: nothing changes.
        log.truncate_to(190).unwrap();
        assert_eq!(log.log_end_offset(), 150);
        log.set_leader_epoch(3).unwrap();
        let b = make_batch(&[b"c"], 7, None);
        assert_eq!(log.append(&b, 9, 0).unwrap().base_offset, 150);
        log.close(0).unwrap();
        drop(log);
        let log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert_eq!(log.log_end_offset(), 151);
        let last = *read_all(&log, 149).last().unwrap();
        assert_eq!((last.base_offset, last.partition_leader_epoch), (150, 3));
    }

    /// Kafka bounds each index by segment.index.bytes and rolls the segment when one is full
    /// (LogSegment.shouldRoll: offsetIndex.isFull || timeIndex.isFull), so that index entries
    /// for every batch (index.interval.bytes=0) cannot grow without bound.
    #[test]
    fn a_full_index_rolls_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            index_interval_bytes: 0,
            segment_index_bytes: 80,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        for i in 0..100 {
            log.append(&make_batch(&[b"x"], 1000 + i, None), 9, 0)
                .unwrap();
        }
        assert!(log.segment_count() >= 10, "{}", log.segment_count());
        log.close(0).unwrap();
        for e in fs::read_dir(dir.path()).unwrap() {
            let path = e.unwrap().path();
            if path
                .extension()
                .is_some_and(|x| x == "index" || x == "timeindex")
            {
                assert!(
                    fs::metadata(&path).unwrap().len() <= 80,
                    "{}",
                    path.display()
                );
            }
        }
        assert_eq!(read_all(&log, 99)[0].base_offset, 99);
    }

    #[test]
    fn out_of_range_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        log.append(&make_batch(&[b"x"], 1, None), 9, 0).unwrap();
        assert!(matches!(
            log.plan_read(2),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            log.plan_read(-1),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.plan_read(1).unwrap().available(), 0);
    }

    /// A log of `n` one-record batches (offsets 0..n), in a directory of its own.
    fn log_of_batches(n: i64) -> (tempfile::TempDir, PartitionLog) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for i in 0..n {
            log.append(&make_batch(&[b"x"], i, None), 9, 0).unwrap();
        }
        (dir, log)
    }

    /// A replicated partition's high watermark is apart from its log end: consumers read to it
    /// and get nothing (not OFFSET_OUT_OF_RANGE) between it and the log end, a follower's read
    /// (LogEnd) gets everything, and truncation and a moved log start keep it inside the log.
    #[test]
    fn a_tracked_high_watermark_bounds_consumer_reads() {
        let (_dir, mut log) = log_of_batches(10);
        assert!(!log.tracks_high_watermark());
        assert_eq!(log.high_watermark(), 10);
        assert_eq!(log.set_high_watermark(4), 4);
        assert!(log.tracks_high_watermark());
        let last = |isolation| {
            let plan = log
                .fetch_candidates(0, isolation)
                .unwrap()
                .locate()
                .unwrap();
            let bytes = plan.read(usize::MAX, true).unwrap();
            crate::log::batch::BatchIter::new(&bytes)
                .map(|(_, h)| h.base_offset)
                .last()
        };
        assert_eq!(last(FetchIsolation::HighWatermark), Some(3));
        assert_eq!(last(FetchIsolation::TxnCommitted), Some(3));
        assert_eq!(last(FetchIsolation::LogEnd), Some(9));
        assert_eq!(log.plan_read(7).unwrap().available(), 0);
        assert_eq!(log.plan_read(7).unwrap().high_watermark, 4);
        assert!(matches!(
            log.plan_read(11),
            Err(LogError::OffsetOutOfRange {
                log_end_offset: 10,
                ..
            })
        ));
        // Appends do not move it; a high watermark past the log end is cut to it.
        log.append(&make_batch(&[b"y"], 10, None), 9, 0).unwrap();
        assert_eq!(log.high_watermark(), 4);
        assert_eq!(log.set_high_watermark(50), 11);
        log.truncate_to(6).unwrap();
        assert_eq!(log.high_watermark(), 6);
        // DeleteRecords stops at it.
        assert!(matches!(
            log.delete_records(7),
            Err(LogError::DeletePastHighWatermark { .. })
        ));
        assert_eq!(log.delete_records(6).unwrap(), 6);
        assert_eq!(log.high_watermark(), 6);
    }

    /// Retention deletes only committed segments: one whose records are past the high watermark
    /// waits for its followers (UnifiedLog.deletableSegments).
    #[test]
    fn retention_keeps_segments_past_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = sixty_batches_expiring_after_1s(&dir);
        log.set_high_watermark(0);
        assert_eq!(log.apply_retention(10_000).unwrap(), 0);
        log.set_high_watermark(30);
        assert!(log.apply_retention(10_000).unwrap() > 0);
        assert!(log.log_start_offset() > 0 && log.log_start_offset() <= 30);
        assert_eq!(log.high_watermark(), 30);
        log.set_high_watermark(60);
        log.apply_retention(10_000).unwrap();
        assert_eq!((log.log_start_offset(), log.high_watermark()), (60, 60));
    }

    /// What a follower reads from its leader: everything to the log end, as stored.
    fn read_to_log_end(log: &PartitionLog, from: i64) -> Bytes {
        let plan = log.fetch_candidates(from, FetchIsolation::LogEnd).unwrap();
        plan.locate().unwrap().read(usize::MAX, true).unwrap()
    }

    /// UnifiedLog.appendAsFollower: the leader's batches land byte for byte with its offsets and
    /// epochs; the follower's epoch cache, aborted transactions and producer state match the
    /// leader's, also after a crash, so that the follower can take over as leader (a retry of an
    /// acknowledged batch is still a duplicate there).
    #[test]
    fn a_follower_appends_the_leaders_batches_as_they_are() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = PartitionLog::open(ldir.path(), config(), true, 0).unwrap();
        let coord = AppendOrigin::Coordinator;
        let b0 = make_batch(&[b"a", b"b"], 1, Some((7, 0, 0)));
        leader.append_from(&b0, 9, 0, CLIENT).unwrap();
        leader.set_leader_epoch(3).unwrap();
        let txn = crate::log::batch::tests::make_txn_batch(&[b"t"], 2, (8, 0, 0));
        leader.append_from(&txn, 9, 0, coord).unwrap();
        let abort = TxnMarker {
            producer_id: 8,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit: false,
        };
        leader.append_txn_marker(&abort, 0).unwrap();
        let b1 = make_batch(&[b"c"], 3, Some((7, 0, 2)));
        leader.append_from(&b1, 9, 0, CLIENT).unwrap();
        let end = leader.log_end_offset();

        let mut follower = PartitionLog::open(fdir.path(), config(), true, 0).unwrap();
        follower.set_high_watermark(0);
        let fetched = read_to_log_end(&leader, 0);
        assert_eq!(follower.append_as_follower(&fetched, 0).unwrap(), end);
        let same = |f: &PartitionLog| {
            assert_eq!(read_to_log_end(f, 0), fetched);
            assert_eq!(
                f.leader_epochs().to_checkpoint(),
                leader.leader_epochs().to_checkpoint()
            );
            assert_eq!(
                f.collect_aborted_txns(0, end),
                leader.collect_aborted_txns(0, end)
            );
            assert_eq!(
                f.producers().last_batch_offsets(),
                leader.producers().last_batch_offsets()
            );
        };
        same(&follower);
        // Consumers of the follower see only what the leader said is committed.
        assert_eq!(follower.high_watermark(), 0);
        assert_eq!(follower.set_high_watermark(end), end);
        assert_eq!(follower.last_stable_offset(), end);
        drop(follower); // no close(): as after kill -9
        let mut follower = PartitionLog::open(fdir.path(), config(), false, 0).unwrap();
        same(&follower);
        assert!(follower.append_from(&b1, 9, 0, CLIENT).unwrap().duplicate);

        // The same batches again do not continue the log: refused, nothing written.
        assert!(matches!(
            follower.append_as_follower(&fetched, 0),
            Err(LogError::UnexpectedAppendOffset { first_offset: 0, log_end_offset })
                if log_end_offset == end
        ));
        assert_eq!(follower.log_end_offset(), end);
    }

    /// A damaged response never reaches the follower's log; a batch cut at the response's size
    /// limit waits for the next fetch.
    #[test]
    fn a_follower_refuses_damaged_batches_and_keeps_whole_ones() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = PartitionLog::open(ldir.path(), config(), true, 0).unwrap();
        for i in 0..3 {
            leader
                .append(&make_batch(&[b"xyz"], i, None), 9, 0)
                .unwrap();
        }
        let fetched = read_to_log_end(&leader, 0);
        let mut follower = PartitionLog::open(fdir.path(), config(), true, 0).unwrap();
        let mut damaged = fetched.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            follower.append_as_follower(&damaged, 0),
            Err(LogError::Batch(BatchError::Corrupt(_)))
        ));
        assert_eq!(follower.log_end_offset(), 0);
        assert!(matches!(
            follower.append_as_follower(&[0u8; 70], 0),
            Err(LogError::Batch(BatchError::Corrupt(_)))
        ));
        let cut = &fetched[..fetched.len() - 2];
        assert_eq!(follower.append_as_follower(cut, 0).unwrap(), 2);
        let rest = read_to_log_end(&leader, 2);
        // Cut inside the batch's header, or inside its offset and length: partial too.
        for keep in [30, 5] {
            assert_eq!(
                follower.append_as_follower(&rest[..keep], 0).unwrap(),
                2,
                "{keep}"
            );
        }
        assert_eq!(follower.append_as_follower(&rest, 0).unwrap(), 3);
        assert_eq!(read_to_log_end(&follower, 0), fetched);
    }

    /// A follower behind its leader's log start starts over there: its old segments go, the
    /// leader's batches from that offset on append, and the new start survives a reopen.
    #[test]
    fn a_follower_behind_the_leaders_start_starts_over_there() {
        let (dir, mut log) = log_of_batches(5);
        log.truncate_fully_and_start_at(3).unwrap();
        assert_eq!(log.log_end_offset(), 5, "not past the log end: nothing");
        log.truncate_fully_and_start_at(20).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.leader_epochs().latest_epoch(), None);
        let mut batch = make_batch(&[b"z"], 0, None);
        batch[..8].copy_from_slice(&20i64.to_be_bytes());
        assert_eq!(log.append_as_follower(&batch, 0).unwrap(), 21);
        drop(log);
        let log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 21));
    }

    /// A truncation forgets the producers' batches it cut off: a retry of one is appended
    /// again rather than answered as a duplicate of records that are gone.
    #[test]
    fn a_truncation_forgets_the_producer_state_it_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let batch = |seq| make_batch(&[b"x"], 0, Some((7, 0, seq)));
        let mut append = |seq| log.append_from(&batch(seq), 9, 0, CLIENT).unwrap();
        assert_eq!(append(0).base_offset, 0);
        assert_eq!(append(1).base_offset, 1);
        assert!(append(1).duplicate);
        log.truncate_to(1).unwrap();
        let mut append = |seq| log.append_from(&batch(seq), 9, 0, CLIENT).unwrap();
        let again = append(1);
        assert_eq!((again.base_offset, again.duplicate), (1, false));
        assert!(append(1).duplicate);
    }

    /// KIP-279 on the leader's log: a fetch whose last epoch ended here before its offset, or
    /// that names an epoch this log never had after its own, diverges; one at the log start or
    /// with an epoch this log cannot place is out of range.
    #[test]
    fn a_fetch_from_a_diverged_log_learns_where_its_epoch_ended() {
        let (_dir, mut log) = log_of_batches(3);
        log.set_leader_epoch(2).unwrap();
        log.append(&make_batch(&[b"y"], 3, None), 9, 0).unwrap();
        assert_eq!(log.diverging_epoch(3, 0).unwrap(), None);
        assert_eq!(log.diverging_epoch(5, 0).unwrap(), Some((0, 3)));
        assert_eq!(log.diverging_epoch(4, 2).unwrap(), None);
        assert_eq!(log.diverging_epoch(4, 1).unwrap(), Some((0, 3)));
        assert!(matches!(
            log.diverging_epoch(4, 9),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    /// The image naming this broker leader again in the same epoch (an ISR change) keeps what
    /// it knows of its followers, and a shrink commits what the remaining members have; a new
    /// epoch starts afresh, the high watermark never going back.
    #[test]
    fn an_isr_change_in_the_same_epoch_keeps_the_followers() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let leader = Partition::new("t".into(), 0, log);
        assert!(leader.become_leader(&registration(vec![1, 2, 3]), 30_000, 0));
        for i in 0..5 {
            let b = make_batch(&[b"x"], i, None);
            leader.append_with_origin(&b, CLIENT, 0).unwrap();
        }
        assert_eq!(leader.record_follower_fetch(2, 5, 1), Ok(None));
        assert_eq!(leader.offsets(), (0, 0), "3 has not fetched");
        let mut shrunk = registration(vec![1, 2]);
        shrunk.partition_epoch += 1;
        assert!(!leader.become_leader(&shrunk, 30_000, 2));
        assert_eq!(leader.offsets(), (0, 5), "2 had fetched it all");
        let mut next = registration(vec![1, 2]);
        next.leader_epoch += 1;
        next.partition_epoch += 2;
        assert!(leader.become_leader(&next, 30_000, 3));
        assert_eq!(leader.offsets(), (0, 5));
        assert_eq!(leader.record_follower_fetch(2, 5, 4), Ok(None));
    }

    /// A replicated leader commits a record once every ISR member has fetched past it; its
    /// consumers see nothing before. A follower partition replicating from it shows its
    /// consumers what the leader said is committed, and never less than before.
    #[test]
    fn the_high_watermark_follows_the_isrs_fetches() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let open = |d: &tempfile::TempDir| PartitionLog::open(d.path(), config(), true, 0);
        let leader = Partition::new("t".into(), 0, open(&ldir).unwrap());
        let follower = Partition::new("t".into(), 0, open(&fdir).unwrap());
        leader.make_leader(&registration(vec![1, 2, 3]), 30_000, 0);
        follower.make_follower();
        for i in 0..5 {
            let b = make_batch(&[b"x"], i, None);
            leader.append_with_origin(&b, CLIENT, 0).unwrap();
        }
        assert_eq!(leader.offsets(), (0, 0));
        assert_eq!(leader.plan_read(0).unwrap().available(), 0);
        assert_eq!(leader.record_follower_fetch(9, 5, 1), Err(NotAFollower));
        assert_eq!(leader.record_follower_fetch(1, 5, 1), Err(NotAFollower));
        assert_eq!(leader.record_follower_fetch(2, 5, 1), Ok(None));
        assert_eq!(leader.record_follower_fetch(3, 3, 1), Ok(Some(3)));
        assert_eq!(leader.offsets(), (0, 3));

        // Replica 3 replicates what the leader has and learns its high watermark.
        let fetched = leader.with_log(|l| read_to_log_end(l, 0));
        assert_eq!(follower.append_as_follower(&fetched, 3, 1, 5).unwrap(), 5);
        assert_eq!(follower.offsets(), (0, 3));
        assert_eq!(leader.record_follower_fetch(3, 5, 2), Ok(Some(5)));
        assert_eq!(follower.append_as_follower(&[], 5, 2, 5).unwrap(), 5);
        assert_eq!(follower.offsets(), (0, 5));
        assert_eq!(follower.append_as_follower(&[], 4, 3, 5).unwrap(), 5);
        assert_eq!(follower.offsets(), (0, 5), "never goes back");
        // The follower is made leader in epoch 6 (its log first) while a fetch of epoch 5 is
        // out: its answer is not appended, and the new epoch starts where the log ended.
        follower.set_leader_epoch(6).unwrap();
        let b = make_batch(&[b"late"], 5, None);
        let late = follower.append_as_follower(&b, 5, 4, 5);
        assert!(
            matches!(
                late,
                Err(LogError::FencedLeaderEpoch {
                    requested: 5,
                    current: 6
                })
            ),
            "{late:?}"
        );
        assert_eq!(follower.with_log(|l| l.log_end_offset()), 5);
        assert_eq!(
            follower
                .with_log(|l| l.leader_epochs().end_offset_for(5, 5))
                .1,
            5
        );

        // An ISR of the leader alone commits appends at once; a follower no longer counts.
        leader.make_leader(&registration(vec![1]), 30_000, 3);
        let b = make_batch(&[b"y"], 5, None);
        leader.append_with_origin(&b, CLIENT, 3).unwrap();
        assert_eq!(leader.offsets(), (0, 6));
        // Leading no more: no follower's fetch is recorded.
        leader.make_follower();
        assert!(!leader.is_replicated_leader());
        assert_eq!(leader.record_follower_fetch(2, 6, 4), Err(NotAFollower));
        assert_eq!(leader.offsets(), (0, 6));
    }

    #[test]
    fn idempotent_retry_is_not_appended_twice_even_after_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let b0 = make_batch(&[b"a", b"b"], 1, Some((7, 0, 0)));
        let b1 = make_batch(&[b"c"], 1, Some((7, 0, 2)));
        assert_eq!(log.append_from(&b0, 9, 0, CLIENT).unwrap().base_offset, 0);
        assert_eq!(log.append_from(&b1, 9, 0, CLIENT).unwrap().base_offset, 2);
        let dup = log.append_from(&b0, 9, 0, CLIENT).unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, 0);
        assert_eq!(log.high_watermark(), 3);
        drop(log); // no close(): as after kill -9
        let mut log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert!(log.append_from(&b1, 9, 0, CLIENT).unwrap().duplicate);
        let gap = make_batch(&[b"d"], 1, Some((7, 0, 9)));
        assert!(matches!(
            log.append_from(&gap, 9, 0, CLIENT),
            Err(LogError::OutOfOrderSequence)
        ));
    }

    #[test]
    fn log_append_time_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        let info = log
            .append(&make_batch(&[b"x"], 1, None), 9, 123_456)
            .unwrap();
        assert_eq!(info.log_append_time, 123_456);
        let h = read_all(&log, 0)[0];
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 123_456);
    }

    /// 60 one-record batches over several segments, stamped 0..60 ms, with retention.ms=1000.
    fn sixty_batches_expiring_after_1s(dir: &tempfile::TempDir) -> PartitionLog {
        let cfg = LogConfig {
            retention_ms: 1000,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        for i in 0..60 {
            log.append(&make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], i, None), 9, 0)
                .unwrap();
        }
        log
    }

    #[test]
    fn retention_deletes_old_segments_and_moves_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = sixty_batches_expiring_after_1s(&dir);
        let deleted = log.apply_retention(10_000).unwrap();
        assert!(deleted > 0);
        assert_eq!(log.log_start_offset(), 60);
        assert_eq!(log.high_watermark(), 60);
        let info = log
            .append(&make_batch(&[b"new"], 20_000, None), 9, 0)
            .unwrap();
        assert_eq!(info.base_offset, 60);
    }

    #[test]
    fn retention_follows_the_records_not_the_claimed_max_timestamp() {
        // Kafka's LogValidator recomputes a batch's max timestamp from its records, so a header
        // claiming 0 does not expire records written now, and one claiming the far future does
        // not keep old records (issue 11, item 2).
        use crate::log::batch::{compute_crc, OFF_CRC, OFF_MAX_TIMESTAMP};
        let claiming = |ts: i64, claimed: i64| {
            let mut b = make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], ts, None);
            b[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&claimed.to_be_bytes());
            let crc = compute_crc(&b);
            b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
            b
        };
        let now = 1_000_000_000;
        let year = 365 * 86_400_000;
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_ms: 600_000,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg.clone(), true, 0).unwrap();
        for _ in 0..60 {
            log.append(&claiming(now, 0), 9, now).unwrap();
        }
        assert!(log.segment_count() > 2);
        assert_eq!(log.apply_retention(now + 1_000).unwrap(), 0);
        // Old records under a header from 100 years ahead expire on time.
        let old = now + 1_000 - 700_000;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        for _ in 0..60 {
            log.append(&claiming(old, now + 100 * year), 9, now)
                .unwrap();
        }
        assert!(read_all(&log, 0).iter().all(|h| h.max_timestamp == old));
        let segments = log.segment_count();
        assert_eq!(log.apply_retention(now + 1_000).unwrap(), segments);
        assert_eq!(log.log_start_offset(), 60);
    }

    #[test]
    fn records_without_timestamps_expire_by_the_segment_file_time() {
        // Kafka's LogSegment.largestTimestamp falls back to the file's modification time when no
        // record has a timestamp, so such segments expire (issue 11, item 3).
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_ms: 600_000,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        for _ in 0..60 {
            log.append(
                &make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], NO_TIMESTAMP, None),
                9,
                0,
            )
            .unwrap();
        }
        let rolled = log.segment_count() - 1;
        assert!(rolled >= 2);
        let now = crate::broker::now_ms();
        // Freshly written: kept.
        assert_eq!(log.apply_retention(now).unwrap(), 0);
        // The rolled segments' files were last written an hour ago; the active one just now.
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for seg in &log.segments[..rolled] {
            let path = dir
                .path()
                .join(super::super::segment::file_name(seg.base_offset, "log"));
            fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        assert_eq!(log.apply_retention(now).unwrap(), rolled);
        assert_eq!(log.log_start_offset(), log.active_base_offset());
    }

    #[test]
    fn a_flush_skips_a_segment_deleted_while_it_waited() {
        // A flush job waits on the blocking pool while retention, DeleteRecords or a cleaning
        // removes one of its segments, whose file the open-file cache had closed: there is
        // nothing left to fsync, and the healthy log must stay online (Kafka's flush walks only
        // the segments the log still has).
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for _ in 0..60 {
            log.append(&make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], 1, None), 9, 0)
                .unwrap();
        }
        assert!(log.segment_count() >= 2);
        let upto = log.log_end_offset();
        let job = log.flush_job(upto).unwrap();
        assert!(
            log.storage.open_files().shed() > 0,
            "no inactive file was cached"
        );
        let first = dir.path().join(super::super::segment::file_name(
            log.segments[0].base_offset,
            "log",
        ));
        fs::remove_file(first).unwrap();
        let outcome = job.run();
        log.complete_flush(upto, outcome, 0).unwrap();
        assert!(!log.offline);
    }

    #[test]
    fn size_retention_keeps_the_newest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: 4000,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        for i in 0..100 {
            log.append(&make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], i, None), 9, 0)
                .unwrap();
        }
        log.apply_retention(0).unwrap();
        assert!(log.size_bytes() <= 4000 + 2000);
        assert!(log.size_bytes() >= 4000);
        assert!(log.log_start_offset() > 0);
    }

    #[test]
    fn delete_records_moves_the_start_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for i in 0..60 {
            log.append(&make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], i, None), 9, 0)
                .unwrap();
        }
        let segments = log.segment_count();
        assert!(matches!(
            log.delete_records(61),
            Err(LogError::DeletePastHighWatermark { .. })
        ));
        assert_eq!(log.delete_records(45).unwrap(), 45);
        assert!(log.segment_count() < segments);
        assert_eq!(log.log_start_offset(), 45);
        assert!(matches!(
            log.plan_read(44),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(read_all(&log, 45)[0].base_offset, 45);
        // Never backwards.
        assert_eq!(log.delete_records(10).unwrap(), 45);
        // By timestamp: records below the start are not answered.
        assert_eq!(log.offset_for_timestamp(0).unwrap().map(|x| x.1), Some(45));
        drop(log);
        for clean in [true, false] {
            let log = PartitionLog::open(dir.path(), config(), clean, 0).unwrap();
            assert_eq!((log.log_start_offset(), log.high_watermark()), (45, 60));
        }
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        assert_eq!(log.delete_records(-1).unwrap(), 60);
        assert_eq!(
            log.append(&make_batch(&[b"n"], 1, None), 9, 0)
                .unwrap()
                .base_offset,
            60
        );
        let compacted = LogConfig {
            cleanup_delete: false,
            cleanup_compact: true,
            ..config()
        };
        log.set_config(compacted);
        assert!(matches!(
            log.delete_records(61),
            Err(LogError::DeleteNotAllowedByPolicy)
        ));
    }

    const CLIENT: AppendOrigin = AppendOrigin::TEST_CLIENT;

    fn epoch_checkpoint(dir: &Path) -> String {
        fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap()
    }

    /// Kafka stamps every batch a leader appends with its leader epoch (LogValidator sets
    /// partitionLeaderEpoch) and records where each epoch starts in `leader-epoch-checkpoint`
    /// (LeaderEpochFileCache.assign, written at once); a new partition's leader starts epoch 0 at
    /// offset 0 (Partition.makeLeader). A clean restart reads the file back and leads in the
    /// latest epoch.
    #[test]
    fn batches_are_stamped_with_the_leader_epoch_and_the_checkpoint_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        assert_eq!(epoch_checkpoint(dir.path()), "0\n1\n0 0\n");
        for i in 0..3 {
            log.append(&make_batch(&[b"a"], i, None), 9, 0).unwrap();
        }
        log.set_leader_epoch(3).unwrap();
        assert_eq!(log.leader_epoch(), 3);
        assert_eq!(epoch_checkpoint(dir.path()), "0\n2\n0 0\n3 3\n");
        for i in 0..2 {
            log.append(&make_batch(&[b"b"], i, None), 9, 0).unwrap();
        }
        // A stale epoch changes nothing.
        log.set_leader_epoch(2).unwrap();
        assert_eq!(log.leader_epoch(), 3);
        let epochs: Vec<(i64, i32)> = read_all(&log, 0)
            .iter()
            .map(|h| (h.base_offset, h.partition_leader_epoch))
            .collect();
        assert_eq!(epochs, vec![(0, 0), (1, 0), (2, 0), (3, 3), (4, 3)]);
        assert_eq!(log.leader_epochs().end_offset_for(0, 5), (0, 3));
        assert_eq!(log.leader_epochs().end_offset_for(3, 5), (3, 5));
        log.close(0).unwrap();
        drop(log);
        let log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        assert_eq!(log.leader_epoch(), 3);
        assert_eq!(epoch_checkpoint(dir.path()), "0\n2\n0 0\n3 3\n");
    }

    /// LogLoader after a crash: the recovered batches restore epochs the file lacks, entries past
    /// the recovered log end go (truncateFromEnd), and a missing or unreadable file is rebuilt
    /// from the batches.
    #[test]
    fn the_epoch_cache_is_rebuilt_and_truncated_at_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        log.append(&make_batch(&[b"a"], 0, None), 9, 0).unwrap();
        log.set_leader_epoch(2).unwrap();
        for i in 0..2 {
            log.append(&make_batch(&[b"b"], i, None), 9, 0).unwrap();
        }
        log.set_leader_epoch(5).unwrap();
        drop(log);
        // Entries past the log end (3) go; the partition still leads in the newest epoch it knew,
        // from the log end.
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        fs::write(&path, "0\n4\n0 0\n2 1\n4 5\n5 7\n").unwrap();
        let log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert_eq!(epoch_checkpoint(dir.path()), "0\n3\n0 0\n2 1\n5 3\n");
        assert_eq!(log.leader_epoch(), 5);
        drop(log);
        // Without the file, the batches tell (epoch 5 wrote none).
        let expected = "0\n2\n0 0\n2 1\n";
        for damaged in [None, Some("0\n9\n0 0\n"), Some("garbage")] {
            match damaged {
                None => fs::remove_file(&path).unwrap(),
                Some(text) => fs::write(&path, text).unwrap(),
            }
            for clean in [true, false] {
                let log = PartitionLog::open(dir.path(), config(), clean, 0).unwrap();
                assert_eq!(
                    epoch_checkpoint(dir.path()),
                    expected,
                    "{damaged:?} {clean}"
                );
                assert_eq!(log.leader_epoch(), 2);
            }
        }
        // A torn tail cut at recovery takes the epochs it started with it; the partition
        // still leads in the newest.
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let torn_at = log.active().size() + 1;
        log.set_leader_epoch(7).unwrap();
        log.append(&make_batch(&[b"c"], 0, None), 9, 0).unwrap();
        log.set_leader_epoch(8).unwrap();
        log.append(&make_batch(&[b"d"], 0, None), 9, 0).unwrap();
        assert_eq!(epoch_checkpoint(dir.path()), "0\n4\n0 0\n2 1\n7 3\n8 4\n");
        drop(log);
        let seg = dir.path().join(crate::log::segment::file_name(0, "log"));
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(torn_at)
            .unwrap();
        let log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(epoch_checkpoint(dir.path()), "0\n3\n0 0\n2 1\n8 3\n");
        assert_eq!(log.leader_epoch(), 8);
    }

    /// After a crash only the segments from the recovery point on are verified (Kafka's
    /// LogLoader.recoverLog over `segments.values(recoveryPoint, MAX)`): damage in a flushed
    /// segment goes unread, damage after it is cut; the recovery point stays where it was.
    #[test]
    fn a_crash_verifies_only_the_segments_from_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for i in 0..40 {
            log.append(&make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], i, None), 9, 0)
                .unwrap();
        }
        log.flush(0).unwrap();
        assert_eq!(log.recovery_point(), 40);
        let flushed_segments = log.segment_count();
        assert!(flushed_segments >= 2);
        for i in 0..20 {
            log.append(&make_batch(&[b"bbbbbbbbbbbbbbbbbbbb"], i, None), 9, 0)
                .unwrap();
        }
        let last_base = log.active_base_offset();
        assert!(last_base > 40);
        drop(log);
        // A flipped byte in a record of the first segment and of the last one.
        let flip = |base: i64| {
            let path = dir.path().join(crate::log::segment::file_name(base, "log"));
            let mut bytes = fs::read(&path).unwrap();
            let at = bytes.len() - 3;
            bytes[at] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        };
        flip(0);
        flip(last_base);
        let crashed = Recovery::Crashed { recovery_point: 40 };
        let log = PartitionLog::open(dir.path(), config(), crashed, 0).unwrap();
        // The last batch was cut; the first segment was trusted.
        assert_eq!(log.log_end_offset(), 59);
        assert_eq!(log.recovery_point(), 40);
        drop(log);
        // Without a recovery point every segment is verified.
        let log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert!(log.log_end_offset() < 40);
    }

    /// The log start moving (retention, DeleteRecords) moves the first epoch's start with it
    /// (UnifiedLog.maybeIncrementLogStartOffset: truncateFromStart).
    #[test]
    fn the_epoch_cache_follows_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        for i in 0..40 {
            if i == 20 {
                log.set_leader_epoch(1).unwrap();
            }
            log.append(&make_batch(&[b"aaaaaaaaaaaaaaaaaaaa"], i, None), 9, 0)
                .unwrap();
        }
        assert_eq!(log.delete_records(10).unwrap(), 10);
        assert_eq!(epoch_checkpoint(dir.path()), "0\n2\n0 10\n1 20\n");
        assert_eq!(log.delete_records(25).unwrap(), 25);
        assert_eq!(epoch_checkpoint(dir.path()), "0\n1\n1 25\n");
        // Retention by time: every segment expires, the log starts at its end.
        log.set_config(LogConfig {
            retention_ms: 0,
            ..config()
        });
        assert!(log.apply_retention(1_000_000).unwrap() > 0);
        assert_eq!(log.log_start_offset(), 40);
        assert_eq!(epoch_checkpoint(dir.path()), "0\n1\n1 40\n");
    }

    fn marker(producer_epoch: i16, coordinator_epoch: i32, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id: 7,
            producer_epoch,
            coordinator_epoch,
            commit,
        }
    }

    #[test]
    fn a_coordinator_writes_transactional_batches_without_sequences() {
        // Kafka's LogValidator.validateBatch checks sequences (and refuses control batches) only
        // for AppendOrigin.CLIENT; ProducerAppendInfo checks a coordinator's epoch, not its
        // sequence: TxnOffsetCommit records carry producer id and epoch with NO_SEQUENCE.
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let offsets = make_txn_batch(&[b"offset commit"], 1, (7, 2, -1));
        let origin = AppendOrigin::Coordinator;
        assert_eq!(
            log.append_from(&offsets, 9, 0, origin).unwrap().base_offset,
            0
        );
        assert_eq!(
            log.append_from(&offsets, 9, 0, origin).unwrap().base_offset,
            1
        );
        // An older epoch is fenced for the coordinator too.
        let stale = make_txn_batch(&[b"zombie"], 1, (7, 1, -1));
        assert!(matches!(
            log.append_from(&stale, 9, 0, origin),
            Err(LogError::InvalidProducerEpoch)
        ));
        // A client's batch without a sequence, or a control batch, is INVALID_RECORD.
        assert!(matches!(
            log.append_from(&offsets, 9, 0, CLIENT),
            Err(LogError::Batch(BatchError::InvalidRecord(_)))
        ));
        let control = end_txn_marker_batch(&marker(2, 0, true), 1);
        assert!(matches!(
            log.append_from(&control, 9, 0, CLIENT),
            Err(LogError::Batch(BatchError::InvalidRecord(_)))
        ));
        assert_eq!(log.log_end_offset(), 2);
    }

    #[test]
    fn a_transactional_batch_verified_before_an_abort_marker_is_refused_after_it() {
        // KIP-890 part 1, Kafka's VerificationGuard (UnifiedLog.maybeStartTransactionVerification
        // and analyzeAndValidateProducerState): Produce takes a guard, asks the coordinator, then
        // appends with the guard; a marker written in between (the coordinator aborted the
        // transaction) clears it, so the late batch gets INVALID_TXN_STATE instead of opening a
        // transaction that no coordinator will end (a hanging transaction: the LSO stuck).
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let client = |verification_guard| AppendOrigin::Client {
            producer_ids_issued: i64::MAX,
            verification_guard,
        };
        let batch = |seq| make_txn_batch(&[b"x"], 1, (7, 0, seq));
        let sentinel = VerificationGuard::SENTINEL;
        let abort = marker(0, 0, false);
        // Without a verification, no transaction starts (a new producer included).
        assert!(matches!(
            log.append_from(&batch(0), 9, 0, client(sentinel)),
            Err(LogError::InvalidTxnState)
        ));
        // Verified: the first batch starts the transaction; the next ones need no guard.
        let guard = log.producers.maybe_start_verification(7, 0);
        assert_ne!(guard, sentinel);
        log.append_from(&batch(0), 9, 0, client(guard)).unwrap();
        assert_eq!(log.producers.maybe_start_verification(7, 0), sentinel);
        log.append_from(&batch(1), 9, 0, client(sentinel)).unwrap();
        // Verified inside the transaction, aborted, appended: refused.
        let late = log.producers.maybe_start_verification(7, 0);
        assert_eq!(log.append_txn_marker(&abort, 0).unwrap(), 2);
        assert!(matches!(
            log.append_from(&batch(2), 9, 0, client(late)),
            Err(LogError::InvalidTxnState)
        ));
        // The same for the first batch of the next transaction, with a real guard.
        let stale = log.producers.maybe_start_verification(7, 0);
        log.append_txn_marker(&abort, 0).unwrap();
        assert!(matches!(
            log.append_from(&batch(2), 9, 0, client(stale)),
            Err(LogError::InvalidTxnState)
        ));
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        // The producer's retry verifies again and gets a new guard; the stale one stays void.
        let fresh = log.producers.maybe_start_verification(7, 0);
        assert_ne!(fresh, stale);
        assert!(matches!(
            log.append_from(&batch(2), 9, 0, client(stale)),
            Err(LogError::InvalidTxnState)
        ));
        assert_eq!(
            log.append_from(&batch(2), 9, 0, client(fresh))
                .unwrap()
                .base_offset,
            4
        );
        assert_eq!(log.last_stable_offset(), 4);
    }

    #[test]
    fn markers_are_control_batches_checked_as_kafka_checks_them() {
        // ProducerAppendInfo.appendEndTxnMarker: an older producer epoch is
        // InvalidProducerEpochException, an older coordinator epoch than the producer's last
        // marker TransactionCoordinatorFencedException; both survive a crash (replayed).
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        // Transactional data (as a coordinator writes it: Produce does not take it from clients
        // before the transaction coordinator can verify it).
        let data = make_txn_batch(&[b"a", b"b"], 1, (7, 3, -1));
        log.append_from(&data, 9, 0, AppendOrigin::Coordinator)
            .unwrap();
        assert_eq!(log.append_txn_marker(&marker(3, 5, true), 100).unwrap(), 2);
        let stored = read_all(&log, 2)[0];
        assert!(stored.is_control() && stored.is_transactional());
        assert_eq!((stored.producer_id, stored.producer_epoch), (7, 3));
        assert!(matches!(
            log.append_txn_marker(&marker(2, 5, false), 100),
            Err(LogError::InvalidProducerEpoch)
        ));
        assert!(matches!(
            log.append_txn_marker(&marker(3, 4, false), 100),
            Err(LogError::TransactionCoordinatorFenced)
        ));
        drop(log); // as after kill -9
        let mut log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert!(matches!(
            log.append_txn_marker(&marker(3, 4, false), 100),
            Err(LogError::TransactionCoordinatorFenced)
        ));
        // A newer epoch (of the producer or the coordinator) is accepted.
        assert_eq!(log.append_txn_marker(&marker(4, 5, false), 100).unwrap(), 3);
    }

    #[test]
    fn the_last_stable_offset_stops_at_the_oldest_open_transaction_across_restarts() {
        // UnifiedLog.lastStableOffset: the first offset of the oldest ongoing transaction, else
        // the high watermark; the producer snapshot (clean shutdown) and the replay of the log
        // (after a crash, markers included) both bring it back.
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let coord = AppendOrigin::Coordinator;
        log.append(&make_batch(&[b"plain"], 1, None), 9, 0).unwrap();
        assert_eq!(log.last_stable_offset(), 1);
        log.append_from(&make_txn_batch(&[b"a"], 1, (7, 0, -1)), 9, 0, coord)
            .unwrap();
        log.append_from(&make_txn_batch(&[b"b"], 1, (8, 0, -1)), 9, 0, coord)
            .unwrap();
        log.append_from(&make_txn_batch(&[b"c"], 1, (7, 0, -1)), 9, 0, coord)
            .unwrap();
        assert_eq!((log.last_stable_offset(), log.high_watermark()), (1, 4));
        let first = TxnMarker {
            producer_id: 7,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit: true,
        };
        assert_eq!(log.append_txn_marker(&first, 0).unwrap(), 4);
        assert_eq!(log.last_stable_offset(), 2);
        log.close(0).unwrap();
        drop(log);
        for clean in [true, false] {
            let log = PartitionLog::open(dir.path(), config(), clean, 0).unwrap();
            assert_eq!(log.last_stable_offset(), 2, "clean: {clean}");
            let open: Vec<_> = log
                .producers()
                .active_producers()
                .into_iter()
                .filter(|p| p.current_txn_start_offset >= 0)
                .map(|p| (p.producer_id, p.current_txn_start_offset))
                .collect();
            assert_eq!(open, vec![(8, 2)]);
        }
        let mut log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        let second = TxnMarker {
            producer_id: 8,
            commit: false,
            ..first
        };
        log.append_txn_marker(&second, 0).unwrap();
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        // Idle expiry never forgets a producer inside a transaction (isProducerExpired).
        log.append_from(&make_txn_batch(&[b"d"], 1, (9, 0, -1)), 9, 0, coord)
            .unwrap();
        log.remove_expired_producers(i64::MAX, 1);
        assert_eq!(log.last_stable_offset(), 6);
        // DeleteRecords past the open transaction: the LSO is the new log start.
        log.delete_records(7).unwrap();
        assert_eq!(log.last_stable_offset(), 7);
    }

    #[test]
    fn aborts_go_to_the_txnindex_of_the_markers_segment_and_are_rebuilt() {
        // UnifiedLog.append / LogSegment.updateTxnIndex: an abort marker adds an AbortedTxn
        // (producer, first offset, marker offset, last stable offset) to the segment it lands
        // in; LogSegment.recover rebuilds the index after a crash; it goes with its segment.
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: 0,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg.clone(), true, 0).unwrap();
        let coord = AppendOrigin::Coordinator;
        let abort = |pid| TxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit: false,
        };
        log.append_from(&make_txn_batch(&[b"a"], 1, (7, 0, -1)), 9, 0, coord)
            .unwrap();
        log.append_from(&make_txn_batch(&[b"b"], 1, (8, 0, -1)), 9, 0, coord)
            .unwrap();
        // Enough plain data for the markers to land in a later segment than the data.
        while log.segment_count() < 2 {
            log.append(&make_batch(&[b"xxxxxxxxxxxxxxxxxxxx"], 1, None), 9, 0)
                .unwrap();
        }
        let m7 = log.append_txn_marker(&abort(7), 0).unwrap();
        let m8 = log.append_txn_marker(&abort(8), 0).unwrap();
        let expected = vec![
            // Producer 8's transaction (from offset 1) was still open: the LSO stayed there.
            AbortedTxn {
                producer_id: 7,
                first_offset: 0,
                last_offset: m7,
                last_stable_offset: 1,
            },
            AbortedTxn {
                producer_id: 8,
                first_offset: 1,
                last_offset: m8,
                last_stable_offset: m8 + 1,
            },
        ];
        assert!(log.segments[0].txn_index().entries().is_empty());
        assert_eq!(
            log.segments.last().unwrap().txn_index().entries(),
            &expected[..]
        );
        assert_eq!(log.collect_aborted_txns(0, 1), expected[..1].to_vec());
        assert_eq!(log.collect_aborted_txns(0, m7), expected);
        assert_eq!(log.collect_aborted_txns(m8 + 1, m8 + 1), vec![]);
        let marker_segment = log.active_base_offset();
        let txnindex = dir
            .path()
            .join(super::super::segment::file_name(marker_segment, "txnindex"));
        drop(log); // as after kill -9: the entries were not written yet
        let mut log = PartitionLog::open(dir.path(), cfg.clone(), false, 0).unwrap();
        assert_eq!(log.collect_aborted_txns(0, m8 + 1), expected);
        log.close(0).unwrap();
        drop(log);
        assert_eq!(fs::metadata(&txnindex).unwrap().len(), 2 * 34);
        // A lost .txnindex is rebuilt even after a clean shutdown.
        fs::remove_file(&txnindex).unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).unwrap();
        assert_eq!(log.collect_aborted_txns(0, m8 + 1), expected);
        // Retention takes the .txnindex files with their segments.
        assert!(log.apply_retention(0).unwrap() > 0);
        assert!(!txnindex.exists());
    }

    #[test]
    fn txnindexes_rebuilt_after_a_crash_reach_their_files_before_the_next_one() {
        // LogSegment.recover rebuilds a segment's transaction index and writes it with the
        // segment: a second crash before any clean shutdown must find the rebuilt entries of
        // the segments that are no longer active in their files (gregor-check after a crash).
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        log.append_from(
            &make_txn_batch(&[b"a"], 1, (7, 0, -1)),
            9,
            0,
            AppendOrigin::Coordinator,
        )
        .unwrap();
        log.append_txn_marker(&marker(0, 0, false), 0).unwrap();
        while log.segment_count() < 2 {
            log.append(&make_batch(&[b"xxxxxxxxxxxxxxxxxxxx"], 1, None), 9, 0)
                .unwrap();
        }
        let txnindex = dir
            .path()
            .join(super::super::segment::file_name(0, "txnindex"));
        drop(log); // kill -9
        let log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert_eq!(log.collect_aborted_txns(0, 2).len(), 1);
        drop(log); // kill -9 again, before any clean shutdown
        assert_eq!(fs::metadata(&txnindex).unwrap().len(), 34);
    }

    #[test]
    fn read_committed_stops_at_the_last_stable_offset_and_names_the_aborted() {
        // UnifiedLog.read with FetchIsolation.TXN_COMMITTED: nothing at or past the LSO, and the
        // aborted transactions overlapping the records read (LocalLog.addAbortedTransactions);
        // read_uncommitted reads to the high watermark, markers (control batches) included.
        use crate::log::batch::tests::make_txn_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let coord = AppendOrigin::Coordinator;
        let end = |pid, commit| TxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        };
        let committed = |log: &PartitionLog, from| {
            let plan = log
                .fetch_candidates(from, FetchIsolation::TxnCommitted)
                .unwrap()
                .locate()
                .unwrap();
            let bytes = plan.read(usize::MAX, true).unwrap();
            let offsets: Vec<i64> = crate::log::batch::BatchIter::new(&bytes)
                .map(|(_, h)| h.base_offset)
                .collect();
            let aborted: Vec<(i64, i64)> = plan
                .aborted_transactions
                .as_ref()
                .unwrap()
                .iter()
                .map(|t| (t.producer_id, t.first_offset))
                .collect();
            (offsets, aborted, plan.last_stable_offset, plan.available())
        };
        log.append(&make_batch(&[b"plain"], 1, None), 9, 0).unwrap(); // 0
        log.append_from(&make_txn_batch(&[b"a"], 1, (7, 0, -1)), 9, 0, coord)
            .unwrap(); // 1
        log.append_from(&make_txn_batch(&[b"b"], 1, (8, 0, -1)), 9, 0, coord)
            .unwrap(); // 2
        log.append(&make_batch(&[b"plain"], 1, None), 9, 0).unwrap(); // 3
        let (offsets, aborted, lso, available) = committed(&log, 0);
        assert_eq!((offsets, aborted, lso), (vec![0], vec![], 1));
        assert!(available > 0);
        // A parked read_committed fetch at the LSO has nothing to count.
        assert_eq!(committed(&log, 1).3, 0);
        assert_eq!(committed(&log, 1).0, Vec::<i64>::new());
        assert_eq!(log.append_txn_marker(&end(7, false), 0).unwrap(), 4);
        let (offsets, aborted, lso, _) = committed(&log, 0);
        assert_eq!((offsets, aborted, lso), (vec![0, 1], vec![(7, 1)], 2));
        assert_eq!(log.append_txn_marker(&end(8, true), 0).unwrap(), 5);
        let (offsets, aborted, lso, _) = committed(&log, 0);
        assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!((aborted, lso), (vec![(7, 1)], 6));
        // Past the aborted transaction's marker, it is no longer listed.
        assert_eq!(committed(&log, 5).1, vec![]);
        // read_uncommitted: everything up to the high watermark, markers included.
        let all = read_all(&log, 0);
        assert_eq!(all.len(), 6);
        assert!(all[4].is_control() && all[5].is_control());
    }
}
