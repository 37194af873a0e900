//! openraft's log and vote on disk, kept as Kafka's KRaft keeps them, so that Kafka's tools read
//! them:
//! - the log is `__cluster_metadata-0`, a partition log of record batches, one batch per Raft
//!   entry, its partition leader epoch the entry's term (one leader per term, as in Kafka). A
//!   normal entry is a batch of metadata records (as `LocalMetadataLog` writes them); the entry a
//!   new leader commits first (openraft's blank entry) is a control batch holding a
//!   LeaderChangeMessage (control type 2); a membership entry is a control batch holding a
//!   VotersRecord (type 6). An entry therefore spans as many offsets as it has records; the
//!   Raft index of an entry is its position among the batches, counted from the first batch
//!   the log ever held: where the log starts later (below it, snapshots: `snapshots`), the
//!   snapshot that ends where the log starts says which index that is (`first_index`);
//! - the vote is `__cluster_metadata-0/quorum-state`, Kafka's FileQuorumStateStore JSON
//!   (`leaderEpoch` the term, `votedId` the node voted for, `leaderId` once the vote is
//!   committed), replaced atomically and fsynced before openraft is told it is saved.
//!
//! Appends are fsynced before openraft hears they are written (Raft's durability); a conflicting
//! uncommitted suffix is cut with `PartitionLog::truncate_to`. openraft's purge moves the log
//! start up (`PartitionLog::increment_log_start_offset`, whole segments below it deleted) to the
//! end of a snapshot (see `snapshots`: it purges only what a snapshot holds), and a snapshot
//! installed from the leader past this log's end starts the log over at the snapshot's end
//! (`restart_at`, Kafka's truncateToLatestSnapshot).
//!
//! openraft awaits the store's writes (appends, truncations, the vote) on its core task, on the
//! quorum's runtime, which also serves the controller listener: the other voters' RPCs, the
//! writes forwarded to this node and the brokers' heartbeats and AlterPartitions to the active
//! controller, and this process's own heartbeats. The writes wait on the disk, so each runs in
//! `blocking_io`: its worker hands the runtime's other tasks to another thread while it waits
//! (`tokio::task::block_in_place`), as Kafka's KafkaRaftClient appends and flushes its log on its
//! own thread while the network threads go on. On a slow disk (100 ms a write or fsync) they
//! otherwise waited behind every append of a busy log, and a broker's heartbeats through that
//! runtime arrived after its session. The core task itself waits for the disk, as Kafka's raft
//! thread does. (openraft's `LogFlushed` callback would let `append` return before the fsync,
//! the entries readable at once and the callback called from another thread once they are
//! durable; it is called inline here, the core's wait holding up nothing else.)
//!
//! A conditional entry (`MetadataEntry::decided_on`, a write decided on an image of the log) is
//! checked here, where the leader's appends are serialized and each entry's place is final: it is
//! written as its records only if the last data batch before it ends at `decided_on`, and
//! otherwise as a no-op, a LeaderChangeMessage repeating the epoch's leader (openraft's blank
//! entry; Kafka's readers pass over control batches). The check looks at the leader's whole
//! log, uncommitted entries too: if the entry commits, so does everything before it (Kafka's
//! `KafkaRaftClient` checks a required base offset against its log end likewise). Followers get
//! the entry as the leader wrote it, so every log holds the same batches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::voters_record::{Endpoint, Voter, VotersRecord};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::LeaderChangeMessage;
use kafka_protocol::protocol::{Decodable, StrBytes};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, Membership, StorageError,
    StorageIOError, Vote,
};
use parking_lot::Mutex;

use super::snapshots::{self, Position};
use super::{MetadataEntry, NodeId, QuorumNode, TypeConfig};
use crate::config::MetadataLogSettings;
use crate::log::partition::PartitionLog;
use crate::log::storage::Storage;
use crate::log::AppendOrigin;
use crate::metadata::metadata_log::{
    batch_record, control_key, encode_batch, encode_message, encode_records, metadata_log_config,
    open_metadata_partition_with, read_batches, MetadataLogError, MetadataSnapshot, ReadBatch,
    SnapshotFiles,
};
use crate::metadata::records::MetadataRecord;

/// Kafka's quorum state file (FileQuorumStateStore.DEFAULT_FILE_NAME).
pub const QUORUM_STATE_FILE: &str = "quorum-state";
/// ControlRecordType ids of Raft's own batches.
const LEADER_CHANGE: i16 = 2;
const KRAFT_VOTERS: i16 = 6;
/// The listener name a voter's endpoint is recorded under.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The log and vote store openraft drives (a cheap handle: the reader openraft asks for shares it).
#[derive(Clone)]
pub struct QuorumLogStore {
    inner: Arc<Mutex<LogInner>>,
}

pub(super) struct LogInner {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    log: PartitionLog,
    /// The snapshot files beside the log.
    files: SnapshotFiles,
    settings: MetadataLogSettings,
    /// The newest snapshot found at start-up and where it ends in the Raft log: what the state
    /// machine starts from (taken by `Quorum::start`).
    loaded: Option<(MetadataSnapshot, Position)>,
    /// The Raft index of the first entry the log holds (the one at `starts[0]`).
    first_index: u64,
    /// The Kafka offset each entry starts at, by Raft index from `first_index`.
    starts: Vec<i64>,
    /// Each entry's term, likewise.
    terms: Vec<u64>,
    /// Likewise, the last offset of the last data batch up to and including the entry: what a
    /// conditional entry after it must have been decided on.
    data_ends: Vec<i64>,
    /// That offset before the first entry held (-1 before any; a snapshot's last offset).
    base_data_end: i64,
    vote: Option<Vote<NodeId>>,
    /// openraft's purge point: the entry before `first_index` (None: nothing purged).
    purged: Option<LogId<NodeId>>,
}

impl LogInner {
    /// Where entry `index` is in `starts` (None: purged or not written).
    fn slot(&self, index: u64) -> Option<usize> {
        let slot = usize::try_from(index.checked_sub(self.first_index)?).ok()?;
        (slot < self.starts.len()).then_some(slot)
    }

    /// The Raft index after the last entry held.
    fn next_index(&self) -> u64 {
        self.first_index + self.starts.len() as u64
    }

    fn data_end(&self) -> i64 {
        self.data_ends.last().copied().unwrap_or(self.base_data_end)
    }
}

impl QuorumLogStore {
    /// Opens the log in `<data_dir>/__cluster_metadata-0` and learns where each entry starts.
    pub fn open(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        clean: bool,
        now_ms: i64,
    ) -> Result<QuorumLogStore, MetadataLogError> {
        let settings = MetadataLogSettings::default();
        QuorumLogStore::open_with(storage, data_dir, settings, clean, now_ms)
    }

    /// `open` with the metadata log's settings (its segment size, when it snapshots, what it
    /// keeps). Loads the newest complete snapshot (for the state machine) after deleting those
    /// cut short and those older than the log start (Kafka's KafkaMetadataLog.recoverSnapshots).
    pub fn open_with(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        settings: MetadataLogSettings,
        clean: bool,
        now_ms: i64,
    ) -> Result<QuorumLogStore, MetadataLogError> {
        let config = crate::log::LogConfig {
            segment_bytes: settings.segment_bytes,
            ..metadata_log_config()
        };
        let (dir, mut log) =
            open_metadata_partition_with(&storage, data_dir, config, clean, now_ms)?;
        let files = SnapshotFiles::new(&dir, Arc::clone(&storage));
        files.delete_partial()?;
        let newest = snapshots::latest(&files)?;
        // A snapshot past the log's end (installed from the leader, the crash before the log
        // started over): the log starts over at its end.
        if let Some((s, _)) = &newest {
            if log.log_end_offset() < s.id.end_offset {
                log.truncate_fully_and_start_at(s.id.end_offset)?;
            }
        }
        files.delete_before(log.log_start_offset())?;
        let mut starts = Vec::new();
        let mut terms = Vec::new();
        let mut data_ends: Vec<i64> = Vec::new();
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        while offset < end {
            let bytes = log.read_candidates(offset)?.locate()?.read(1 << 20, true)?;
            let mut next = offset;
            for (_, h) in crate::log::batch::BatchIter::new(&bytes) {
                starts.push(h.base_offset);
                terms.push(h.partition_leader_epoch.max(0) as u64);
                let before = data_ends.last().copied().unwrap_or(i64::MIN);
                data_ends.push(if h.is_control() {
                    before
                } else {
                    h.last_offset()
                });
                next = h.next_offset();
            }
            if next == offset {
                break;
            }
            offset = next;
        }
        let vote = read_quorum_state(&dir.join(QUORUM_STATE_FILE))?;
        let start = log.log_start_offset();
        let anchor = snapshots::anchor(&files, start, newest.as_ref())?;
        let (first_index, purged, base_data_end) = match anchor {
            None if start > 0 => {
                return Err(MetadataLogError::Corrupt(
                    dir,
                    format!("the log starts at {start} and no snapshot ends there"),
                ))
            }
            None => (0, None, -1),
            Some((end_offset, position)) => {
                // The entries held before the snapshot's end are the last ones it holds.
                let before = starts.partition_point(|&o| o < end_offset);
                let first = (position.last_log_id.index + 1).checked_sub(before as u64);
                let purged = match first {
                    Some(0) => None,
                    _ if before == 0 => Some(position.last_log_id),
                    // Entries below a snapshot that ends inside the log (the log starts at 0):
                    // counted as purged, as openraft holds them (the term before is unknown).
                    _ => {
                        starts.drain(..before);
                        terms.drain(..before);
                        data_ends.drain(..before);
                        Some(position.last_log_id)
                    }
                };
                match purged {
                    Some(p) => (p.index + 1, purged, end_offset - 1),
                    None => (0, None, -1),
                }
            }
        };
        // Each data end, now that the one before the first entry held is known.
        let mut before = base_data_end;
        for end in data_ends.iter_mut() {
            if *end == i64::MIN {
                *end = before;
            }
            before = *end;
        }
        Ok(QuorumLogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir,
                storage,
                log,
                files,
                settings,
                loaded: newest,
                first_index,
                starts,
                terms,
                data_ends,
                base_data_end,
                vote,
                purged,
            })),
        })
    }

    /// The snapshot files beside the log.
    pub fn snapshot_files(&self) -> SnapshotFiles {
        self.inner.lock().files.clone()
    }

    pub fn settings(&self) -> MetadataLogSettings {
        self.inner.lock().settings.clone()
    }

    /// The newest snapshot found at start-up, for the state machine to start from (once).
    pub(super) fn take_loaded(&self) -> Option<(MetadataSnapshot, Position)> {
        self.inner.lock().loaded.take()
    }

    /// The offset the log starts at (the end of a snapshot, once a snapshot is taken and the
    /// log before it dropped).
    pub fn start_offset(&self) -> i64 {
        self.inner.lock().log.log_start_offset()
    }

    /// The bytes of the log's segments (retention weighs them with the snapshots').
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().log.size_bytes()
    }

    /// The Raft index of the entry that ends at `end_offset`, if the log holds it.
    pub fn index_ending_at(&self, end_offset: i64) -> Option<u64> {
        let inner = self.inner.lock();
        let at = inner.starts.partition_point(|&s| s < end_offset);
        let next = inner
            .starts
            .get(at)
            .copied()
            .unwrap_or(inner.log.log_end_offset());
        (at > 0 && next == end_offset).then(|| inner.first_index + at as u64 - 1)
    }

    /// Every batch, data and control, from the one holding `from_offset` to before `until`.
    pub(super) fn read_batches(
        &self,
        from_offset: i64,
        until: i64,
    ) -> Result<Vec<ReadBatch>, MetadataLogError> {
        read_batches(
            |o| self.inner.lock().log.read_candidates(o),
            from_offset,
            until,
        )
    }

    /// The Kafka offset after the entry at `index` (its batch's end; the log start for an
    /// entry purged).
    pub fn end_offset_after(&self, index: u64) -> i64 {
        let inner = self.inner.lock();
        if index < inner.first_index {
            return inner.log.log_start_offset();
        }
        let next = inner.slot(index + 1).map(|i| inner.starts[i]);
        next.unwrap_or_else(|| inner.log.log_end_offset())
    }

    /// The Kafka offset after the `n` entries from the one holding `offset` (the log end
    /// offset when fewer follow).
    pub fn end_of_entries_from(&self, offset: i64, n: usize) -> i64 {
        let inner = self.inner.lock();
        let holding = inner
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let end = holding.saturating_add(n);
        let after = inner.starts.get(end).copied();
        after.unwrap_or_else(|| inner.log.log_end_offset())
    }

    /// Whether this node has taken part in a quorum (it holds a log entry or a vote).
    pub fn is_used(&self) -> bool {
        let inner = self.inner.lock();
        !inner.starts.is_empty() || inner.vote.is_some() || inner.purged.is_some()
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> i64 {
        self.inner.lock().log.log_end_offset()
    }

    /// Flushes what is written (clean shutdown).
    pub fn close(&self, now_ms: i64) -> Result<(), MetadataLogError> {
        Ok(self.inner.lock().log.close(now_ms)?)
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry<TypeConfig>>, MetadataLogError> {
        let (start, until, count) = {
            let inner = self.inner.lock();
            let to = to.min(inner.next_index());
            if from >= to {
                return Ok(Vec::new());
            }
            // Purged (openraft's contract: entries not found are left out): a replication
            // task of a leader just deposed may still read what a snapshot installed from the
            // new leader dropped; it gets nothing, as a heartbeat, and stops.
            let Some(first) = inner.slot(from) else {
                return Ok(Vec::new());
            };
            let until = (inner.slot(to).map(|i| inner.starts[i]))
                .unwrap_or_else(|| inner.log.log_end_offset());
            (inner.starts[first], until, (to - from) as usize)
        };
        let batches = self.read_batches(start, until);
        // Purged while it was read (the lock is not held meanwhile): nothing, as above.
        if self.inner.lock().first_index > from {
            return Ok(Vec::new());
        }
        let batches = batches?;
        if batches.len() != count {
            return Err(MetadataLogError::Quorum(format!(
                "read {} batches of the metadata quorum's log where {count} entries are",
                batches.len()
            )));
        }
        batches
            .into_iter()
            .zip(from..)
            .map(|(b, index)| entry_of(b, index))
            .collect()
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for QuorumLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        self.entries(from, to).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for QuorumLogStore {
    type LogReader = QuorumLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = (inner.terms.last())
            .map(|&term| LogId::new(CommittedLeaderId::new(term, 0), inner.next_index() - 1));
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or(inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        let path = inner.dir.join(QUORUM_STATE_FILE);
        let text = quorum_state_json(vote);
        blocking_io(|| inner.storage.write_atomically(&path, text.as_bytes()))
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let flushed = blocking_io(|| self.append_entries(entries)).map_err(write_err)?;
        callback.log_io_completed(flushed.map_err(io::Error::other));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        blocking_io(|| self.truncate_from(log_id.index)).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        blocking_io(|| self.purge_upto(log_id, None)).map_err(write_err)
    }
}

/// Runs `io`, a write of the log or the vote that waits on the disk, from an async task of the
/// quorum's runtime without keeping that runtime's other tasks waiting (see the module comment).
/// On a current-thread runtime (the simulation's, some tests') there is no other worker to hand
/// them to: `io` runs as it is.
pub(super) fn blocking_io<T>(io: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let flavor = Handle::try_current().map(|h| h.runtime_flavor());
    match flavor {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(io),
        _ => io(),
    }
}

impl QuorumLogStore {
    /// Writes `entries` (each a batch stamped with its term) and fsyncs them: the outer error is
    /// a write that failed, the inner one the fsync.
    pub(super) fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<Result<(), crate::log::partition::LogError>, MetadataLogError> {
        let mut inner = self.inner.lock();
        let leader = inner.vote.and_then(|v| v.leader_id().voted_for());
        for entry in entries {
            let index = entry.log_id.index;
            if index != inner.next_index() {
                return Err(MetadataLogError::Quorum(format!(
                    "entry {index} appended where entry {} is due",
                    inner.next_index()
                )));
            }
            let term = entry.log_id.leader_id.term;
            let epoch = i32::try_from(term)
                .map_err(|_| MetadataLogError::Quorum(format!("term {term} is past an epoch")))?;
            let data_end = inner.data_end();
            let payload = match &entry.payload {
                EntryPayload::Normal(e) if e.decided_on.is_some_and(|d| d != data_end) => {
                    tracing::debug!(
                        index,
                        decided_on = e.decided_on,
                        data_end,
                        "a metadata write decided on a stale image: written as a no-op"
                    );
                    &EntryPayload::Blank
                }
                p => p,
            };
            let batch = encode_entry(payload, epoch, leader)?;
            inner.log.set_leader_epoch(epoch)?;
            let now = crate::broker::now_ms();
            let info = inner
                .log
                .append_from(&batch, i16::MAX, now, AppendOrigin::RaftLeader)?;
            inner.starts.push(info.base_offset);
            inner.terms.push(term);
            let data_end = match payload {
                EntryPayload::Normal(_) => info.last_offset,
                _ => data_end,
            };
            inner.data_ends.push(data_end);
        }
        // Raft counts an entry once it is durable: fsynced before openraft hears of it.
        Ok(inner.log.flush(crate::broker::now_ms()))
    }

    /// Removes the entries from `index` on (a suffix that conflicts with the leader's log).
    fn truncate_from(&self, index: u64) -> Result<(), MetadataLogError> {
        let mut inner = self.inner.lock();
        if let Some(slot) = inner.slot(index) {
            let offset = inner.starts[slot];
            inner.log.truncate_to(offset)?;
            inner.starts.truncate(slot);
            inner.terms.truncate(slot);
            inner.data_ends.truncate(slot);
        }
        Ok(())
    }

    /// Drops the entries up to `log_id` (openraft purges only what a snapshot holds): the log
    /// starts after it, the whole segments below deleted, and the snapshots older than the new
    /// start with them. Past the log's end (a snapshot from the leader, this log behind it)
    /// nothing of the log is kept; `restart` (the installed snapshot's end offset) then starts
    /// the log over there. (openraft purges on its own task, the state machine installs on
    /// another: whichever comes first, the log ends up starting at the snapshot's end.)
    pub(super) fn purge_upto(
        &self,
        log_id: LogId<NodeId>,
        restart: Option<i64>,
    ) -> Result<(), MetadataLogError> {
        let mut inner = self.inner.lock();
        let next = log_id.index + 1;
        if next > inner.first_index {
            let keep_from = (next - inner.first_index) as usize;
            if keep_from <= inner.starts.len() {
                let start = (inner.starts.get(keep_from).copied())
                    .unwrap_or_else(|| inner.log.log_end_offset());
                inner.base_data_end = inner.data_ends[keep_from - 1];
                inner.starts.drain(..keep_from);
                inner.terms.drain(..keep_from);
                inner.data_ends.drain(..keep_from);
                inner.log.increment_log_start_offset(start)?;
            } else {
                inner.starts.clear();
                inner.terms.clear();
                inner.data_ends.clear();
            }
            inner.first_index = next;
        }
        if inner.purged < Some(log_id) {
            inner.purged = Some(log_id);
        }
        if let Some(end) = restart.filter(|_| inner.starts.is_empty()) {
            // The snapshot ends its last data batch (see `snapshots`).
            inner.base_data_end = end - 1;
            if inner.log.log_end_offset() < end {
                inner.log.truncate_fully_and_start_at(end)?;
            } else {
                inner.log.increment_log_start_offset(end)?;
            }
        }
        let start = inner.log.log_start_offset();
        inner.files.delete_before(start)?;
        Ok(())
    }

    /// A snapshot installed from the leader, holding entries up to `log_id` and ending at
    /// `end_offset`: the log keeps only what follows it.
    pub(super) fn restart_at(
        &self,
        log_id: LogId<NodeId>,
        end_offset: i64,
    ) -> Result<(), MetadataLogError> {
        self.purge_upto(log_id, Some(end_offset))
    }
}

/// An entry as its batch: see the module comment.
fn encode_entry(
    payload: &EntryPayload<TypeConfig>,
    epoch: i32,
    leader: Option<NodeId>,
) -> Result<bytes::BytesMut, MetadataLogError> {
    match payload {
        EntryPayload::Normal(e) => {
            if e.records.is_empty() {
                return Err(MetadataLogError::Quorum("an empty metadata entry".into()));
            }
            encode_batch(
                e.records.iter().map(MetadataRecord::encode),
                0,
                epoch,
                e.append_time_ms,
            )
        }
        EntryPayload::Blank => {
            let leader = leader.map_or(-1, |l| l as i32);
            let message = LeaderChangeMessage::default()
                .with_version(0)
                .with_leader_id(BrokerId(leader));
            control_batch(LEADER_CHANGE, encode_message(&message)?, epoch)
        }
        EntryPayload::Membership(m) => {
            let record = voters_record(m)?;
            control_batch(KRAFT_VOTERS, encode_message(&record)?, epoch)
        }
    }
}

/// A control batch of one record. Its time is 0: Raft's own batches are the same on every node.
fn control_batch(kind: i16, value: Bytes, epoch: i32) -> Result<bytes::BytesMut, MetadataLogError> {
    let mut r = batch_record(0, epoch, 0, Some(control_key(kind)), value);
    r.sequence = -1;
    encode_records(&[r])
}

/// A uniform membership as Kafka's VotersRecord (each voter's address as its CONTROLLER endpoint).
/// A joint membership (a change in progress) has no Kafka form: the quorum's voters are fixed by
/// `controller.quorum.voters` and never changed yet.
fn voters_record(m: &Membership<NodeId, QuorumNode>) -> Result<VotersRecord, MetadataLogError> {
    let configs = m.get_joint_config();
    let [voters] = configs.as_slice() else {
        return Err(MetadataLogError::Quorum(
            "a joint membership cannot be written as a VotersRecord".into(),
        ));
    };
    let mut out = Vec::new();
    for id in voters {
        let node = m.get_node(id).cloned().unwrap_or_default();
        let endpoint = Endpoint::default()
            .with_name(StrBytes::from_static_str(CONTROLLER_LISTENER))
            .with_host(StrBytes::from_string(node.host))
            .with_port(node.port);
        out.push(
            Voter::default()
                .with_voter_id(BrokerId(*id as i32))
                .with_endpoints(vec![endpoint]),
        );
    }
    Ok(VotersRecord::default().with_version(0).with_voters(out))
}

/// A batch read back as the entry at `index`.
fn entry_of(b: ReadBatch, index: u64) -> Result<Entry<TypeConfig>, MetadataLogError> {
    let log_id = LogId::new(CommittedLeaderId::new(b.epoch.max(0) as u64, 0), index);
    let payload = match (b.data, b.control.first()) {
        // Taken where it was first written: no condition left to check.
        (Some(batch), _) => EntryPayload::Normal(MetadataEntry {
            records: batch.records,
            append_time_ms: batch.append_time_ms,
            decided_on: None,
        }),
        (None, Some((LEADER_CHANGE, _))) => EntryPayload::Blank,
        (None, Some((KRAFT_VOTERS, value))) => {
            let record = VotersRecord::decode(&mut value.clone(), 0)
                .map_err(|e| MetadataLogError::Quorum(format!("a VotersRecord: {e}")))?;
            let mut ids = BTreeSet::new();
            let mut nodes = BTreeMap::new();
            for v in record.voters {
                let id = v.voter_id.0 as NodeId;
                let node = v
                    .endpoints
                    .first()
                    .map_or_else(QuorumNode::default, |e| QuorumNode {
                        host: e.host.to_string(),
                        port: e.port,
                    });
                ids.insert(id);
                nodes.insert(id, node);
            }
            EntryPayload::Membership(Membership::new(vec![ids], nodes))
        }
        (None, other) => {
            return Err(MetadataLogError::Quorum(format!(
                "an unknown control batch (type {:?}) at offset {}",
                other.map(|c| c.0),
                b.base_offset
            )))
        }
    };
    Ok(Entry { log_id, payload })
}

/// Kafka's quorum-state (FileQuorumStateStore, data_version 1).
fn quorum_state_json(vote: &Vote<NodeId>) -> String {
    let voted = vote.leader_id().voted_for().map_or(-1, |v| v as i64);
    let leader = if vote.is_committed() { voted } else { -1 };
    serde_json::json!({
        "leaderId": leader,
        "leaderEpoch": vote.leader_id().get_term(),
        "votedId": voted,
        "votedDirectoryId": "AAAAAAAAAAAAAAAAAAAAAA",
        "data_version": 1,
    })
    .to_string()
}

fn read_quorum_state(path: &Path) -> Result<Option<Vote<NodeId>>, MetadataLogError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |why: &str| MetadataLogError::Corrupt(path.to_path_buf(), why.to_string());
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&e.to_string()))?;
    let field = |name: &str| json.get(name).and_then(serde_json::Value::as_i64);
    let term = field("leaderEpoch").ok_or_else(|| corrupt("no leaderEpoch"))?;
    let term = u64::try_from(term).map_err(|_| corrupt("a negative leaderEpoch"))?;
    let leader = field("leaderId").filter(|&l| l >= 0);
    let voted = field("votedId").filter(|&v| v >= 0);
    Ok(Some(match (leader, voted) {
        (Some(l), _) => Vote::new_committed(term, l as NodeId),
        (None, Some(v)) => Vote::new(term, v as NodeId),
        (None, None) => Vote {
            leader_id: LeaderId {
                term,
                voted_for: None,
            },
            committed: false,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::FileStorage;
    use crate::metadata::records::tests::samples;

    fn open(dir: &Path) -> QuorumLogStore {
        QuorumLogStore::open(Arc::new(FileStorage), dir, false, 0).unwrap()
    }

    fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload,
        }
    }

    fn voters() -> Membership<NodeId, QuorumNode> {
        let nodes: BTreeMap<NodeId, QuorumNode> = (1..=3)
            .map(|i| {
                let node = QuorumNode {
                    host: format!("h{i}"),
                    port: 9090 + i as u16,
                };
                (i, node)
            })
            .collect();
        Membership::new(vec![nodes.keys().copied().collect()], nodes)
    }

    fn normal(records: Vec<MetadataRecord>, at: i64) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(MetadataEntry {
            records,
            append_time_ms: at,
            decided_on: None,
        })
    }

    fn read_all(store: &mut QuorumLogStore) -> Vec<Entry<TypeConfig>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.try_get_log_entries(0..)).unwrap()
    }

    /// Every kind of entry is a Kafka batch (offsets per record, epoch = term) and reads back
    /// as itself, after a reopen too; a conflicting suffix is cut and the log goes on from there.
    #[test]
    fn entries_are_kafka_batches_and_a_suffix_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let s = samples();
        let written = vec![
            entry(0, 0, EntryPayload::Membership(voters())),
            entry(1, 1, EntryPayload::Blank),
            entry(1, 2, normal(s[..3].to_vec(), 100)),
            entry(2, 3, EntryPayload::Blank),
            entry(2, 4, normal(s[3..5].to_vec(), 200)),
        ];
        store.append_entries(written.clone()).unwrap().unwrap();
        assert_eq!(store.end_offset(), 1 + 1 + 3 + 1 + 2);
        // Out of order: refused.
        let gap = entry(2, 9, EntryPayload::Blank);
        assert!(store.append_entries(vec![gap]).is_err());
        let batches = store.read_batches(0, i64::MAX).unwrap();
        let shape: Vec<(i64, i32, Option<i16>)> = batches
            .iter()
            .map(|b| (b.base_offset, b.epoch, b.control.first().map(|c| c.0)))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 0, Some(KRAFT_VOTERS)),
                (1, 1, Some(LEADER_CHANGE)),
                (2, 1, None),
                (5, 2, Some(LEADER_CHANGE)),
                (6, 2, None)
            ]
        );
        assert_eq!(read_all(&mut store), written);
        store.close(0).unwrap();
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(read_all(&mut store), written);
        store.truncate_from(3).unwrap();
        assert_eq!(store.end_offset(), 5);
        let replacement = vec![entry(3, 3, normal(s[5..6].to_vec(), 300))];
        store.append_entries(replacement.clone()).unwrap().unwrap();
        let mut want = written[..3].to_vec();
        want.extend(replacement);
        assert_eq!(read_all(&mut store), want);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let state = rt.block_on(store.get_log_state()).unwrap();
        assert_eq!(
            state.last_log_id.map(|l| (l.leader_id.term, l.index)),
            Some((3, 3))
        );
        // The metadata log's epochs follow the terms (leader-epoch-checkpoint: epoch 2 is gone).
        let epochs = std::fs::read_to_string(
            dir.path()
                .join("__cluster_metadata-0/leader-epoch-checkpoint"),
        )
        .unwrap();
        assert_eq!(epochs, "0\n3\n0 0\n1 1\n3 5\n");
    }

    fn decided(records: Vec<MetadataRecord>, on: i64) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(MetadataEntry {
            records,
            append_time_ms: 7,
            decided_on: Some(on),
        })
    }

    /// A conditional entry is written as its records only where the last data batch before it
    /// ends at the offset it was decided on (control batches in between do not count), and as
    /// a no-op (a LeaderChangeMessage, read back as a blank entry) otherwise; after a reopen and
    /// after a truncation the store knows the same data end.
    #[test]
    fn a_conditional_entry_is_taken_only_on_the_image_it_was_decided_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let s = samples();
        store
            .append_entries(vec![
                entry(1, 0, EntryPayload::Blank),
                entry(1, 1, decided(s[..2].to_vec(), -1)),
                entry(1, 2, EntryPayload::Blank),
                // Decided on the image ending at offset 2 (the batch at 1-2): taken.
                entry(1, 3, decided(s[2..3].to_vec(), 2)),
                // Decided on the same image: a batch came after it, so a no-op.
                entry(1, 4, decided(s[3..4].to_vec(), 2)),
            ])
            .unwrap()
            .unwrap();
        let kinds = |store: &mut QuorumLogStore| -> Vec<&'static str> {
            read_all(store)
                .iter()
                .map(|e| match &e.payload {
                    EntryPayload::Normal(e) => {
                        assert_eq!(e.decided_on, None, "read back as taken");
                        "data"
                    }
                    EntryPayload::Blank => "no-op",
                    EntryPayload::Membership(_) => "voters",
                })
                .collect()
        };
        assert_eq!(
            kinds(&mut store),
            ["no-op", "data", "no-op", "data", "no-op"]
        );
        assert_eq!(store.end_offset(), 6);
        let batches = store.read_batches(0, i64::MAX).unwrap();
        assert_eq!(batches[4].control.first().map(|c| c.0), Some(LEADER_CHANGE));
        store.close(0).unwrap();
        drop(store);

        let mut store = open(dir.path());
        let next = vec![
            entry(2, 5, decided(s[4..5].to_vec(), 2)),
            entry(2, 6, decided(s[4..5].to_vec(), 4)),
        ];
        store.append_entries(next).unwrap().unwrap();
        assert_eq!(kinds(&mut store)[5..], ["no-op", "data"]);
        // Cut back to before the batch at 3: the data end is 2 again.
        store.truncate_from(3).unwrap();
        let again = vec![entry(3, 3, decided(s[5..6].to_vec(), 2))];
        store.append_entries(again).unwrap().unwrap();
        assert_eq!(kinds(&mut store), ["no-op", "data", "no-op", "data"]);
    }

    /// The vote is Kafka's quorum-state file, and survives a reopen.
    #[test]
    fn the_vote_is_kafkas_quorum_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(store.read_vote()).unwrap(), None);
        assert!(!store.is_used());
        for vote in [Vote::new(4, 2), Vote::new_committed(5, 3)] {
            rt.block_on(store.save_vote(&vote)).unwrap();
            let mut reopened = open(dir.path());
            assert_eq!(rt.block_on(reopened.read_vote()).unwrap(), Some(vote));
            assert!(reopened.is_used());
        }
        let path = dir.path().join("__cluster_metadata-0/quorum-state");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(json["leaderId"], 3);
        assert_eq!(json["leaderEpoch"], 5);
        assert_eq!(json["votedId"], 3);
        assert_eq!(json["data_version"], 1);
    }
}
