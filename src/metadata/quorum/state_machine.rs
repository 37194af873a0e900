//! The quorum's state machine: the metadata image, replayed from committed entries by the shared
//! replay (`metadata_log::replay_batch`), and how far the committed log reaches in Kafka offsets
//! (what `MetadataLog::read` may return, and what a waiting reader is woken on).
//!
//! It lives in memory, and starts from the newest snapshot (`snapshots`): openraft applies the
//! committed log after it again. openraft's snapshots are the checkpoint files: built from the
//! image as of its last data batch, installed from the leader's file (then the image is the
//! snapshot's, and the log starts over after it: `QuorumLogStore::restart_at`).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::log_store::{blocking_io, QuorumLogStore};
use super::snapshots::{self, Position};
use super::{batch_bytes, NodeId, Outcome, QuorumNode, TypeConfig};
use crate::config::MetadataLogSettings;
use crate::metadata::image::MetadataImage;
use crate::metadata::metadata_log::{
    batch_delta, encode_snapshot, image_of_snapshot, read_snapshot, MetadataBatch,
    MetadataLogError, MetadataSnapshot, SnapshotId,
};

/// What the applied log holds, shared with the `MetadataLog` facade.
pub struct Applied {
    state: Mutex<AppliedState>,
    /// The Kafka offset after the last applied entry (readers wait on it).
    end_offset: watch::Sender<i64>,
}

struct AppliedState {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, QuorumNode>,
    next_offset: i64,
    /// The entry of the image's last data batch and the membership then: where a snapshot of
    /// the image ends (None: no data yet).
    data_position: Option<Position>,
    /// The bytes of records applied since the last snapshot, and when it was taken (when this
    /// node started, before any): what makes the next one due.
    bytes_since_snapshot: u64,
    last_snapshot: Instant,
}

impl Applied {
    pub fn new() -> Arc<Applied> {
        Arc::new(Applied {
            state: Mutex::new(AppliedState {
                image: Arc::new(MetadataImage::empty()),
                last_applied: None,
                membership: StoredMembership::default(),
                next_offset: 0,
                data_position: None,
                bytes_since_snapshot: 0,
                last_snapshot: Instant::now(),
            }),
            end_offset: watch::channel(0).0,
        })
    }

    /// The state a snapshot holds (at start-up, or installed from the leader).
    pub(super) fn load(
        &self,
        snapshot: &MetadataSnapshot,
        position: Position,
    ) -> Result<(), MetadataLogError> {
        let image = image_of_snapshot(snapshot)?;
        let end = snapshot.id.end_offset;
        let mut s = self.state.lock();
        s.image = Arc::new(image);
        s.last_applied = Some(position.last_log_id);
        s.membership = position.last_membership.clone();
        s.next_offset = end;
        s.data_position = Some(position);
        s.bytes_since_snapshot = 0;
        s.last_snapshot = Instant::now();
        drop(s);
        self.end_offset.send_replace(end);
        Ok(())
    }

    /// Whether a snapshot is due (see `snapshots::due`).
    pub fn snapshot_due(&self, settings: &MetadataLogSettings, now: Instant) -> bool {
        let s = self.state.lock();
        let since = now.saturating_duration_since(s.last_snapshot);
        snapshots::due(settings, s.bytes_since_snapshot, since)
    }

    /// The image of the applied log.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.state.lock().image)
    }

    /// The Kafka offset after the last applied entry: everything before it is committed.
    pub fn end_offset(&self) -> i64 {
        *self.end_offset.borrow()
    }

    /// Notified as the applied end offset moves.
    pub fn watch_end_offset(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }
}

/// The state machine openraft drives (a handle on the shared `Applied`), with the log store
/// whose directory holds the snapshots.
#[derive(Clone)]
pub struct QuorumStateMachine {
    pub(super) applied: Arc<Applied>,
    pub(super) store: QuorumLogStore,
}

fn snapshot_err(
    meta: Option<&SnapshotMeta<NodeId, QuorumNode>>,
    e: impl std::fmt::Display,
) -> StorageError<NodeId> {
    snapshot_io_err(ErrorVerb::Read, meta, e)
}

fn write_snapshot_err(
    meta: Option<&SnapshotMeta<NodeId, QuorumNode>>,
    e: impl std::fmt::Display,
) -> StorageError<NodeId> {
    snapshot_io_err(ErrorVerb::Write, meta, e)
}

fn snapshot_io_err(
    verb: ErrorVerb,
    meta: Option<&SnapshotMeta<NodeId, QuorumNode>>,
    e: impl std::fmt::Display,
) -> StorageError<NodeId> {
    let subject = ErrorSubject::Snapshot(meta.map(|m| m.signature()));
    StorageIOError::new(subject, verb, &std::io::Error::other(e.to_string())).into()
}

impl RaftStateMachine<TypeConfig> for QuorumStateMachine {
    type SnapshotBuilder = QuorumStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, QuorumNode>), StorageError<NodeId>>
    {
        let s = self.applied.state.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    /// Replays each entry; the answer to a normal entry is the Kafka offset of its last record,
    /// to any other the offset of its no-op (what a conditional write its leader's log refused
    /// became: see `log_store`).
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut answers = Vec::new();
        let mut s = self.applied.state.lock();
        for entry in entries {
            let base = s.next_offset;
            let mut outcome = Outcome::NoOp(base);
            let records = match entry.payload {
                EntryPayload::Blank => 1,
                EntryPayload::Membership(m) => {
                    s.membership = StoredMembership::new(Some(entry.log_id), m);
                    1
                }
                EntryPayload::Normal(e) => {
                    let batch = MetadataBatch {
                        base_offset: base,
                        epoch: entry.log_id.leader_id.term as i32,
                        append_time_ms: e.append_time_ms,
                        records: e.records,
                    };
                    s.image = Arc::new(batch_delta(Arc::clone(&s.image), &batch, base).apply());
                    s.data_position = Some(Position {
                        last_log_id: entry.log_id,
                        last_membership: s.membership.clone(),
                    });
                    s.bytes_since_snapshot += batch_bytes(&batch.records) as u64;
                    outcome = Outcome::Appended(batch.last_offset());
                    batch.records.len() as i64
                }
            };
            s.next_offset = base + records;
            s.last_applied = Some(entry.log_id);
            answers.push(outcome);
        }
        let end = s.next_offset;
        drop(s);
        self.applied.end_offset.send_replace(end);
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// The leader's checkpoint file: written as this node's (Kafka's FetchSnapshot copies the
    /// leader's bytes), the image its records, the log kept only after it.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, QuorumNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bad = |why: &str| snapshot_err(Some(meta), why);
        let id = snapshots::id_of(meta).ok_or_else(|| bad("not a checkpoint file's name"))?;
        let last_log_id = meta.last_log_id.ok_or_else(|| bad("no last log id"))?;
        let bytes = snapshot.into_inner();
        let read = read_snapshot(&bytes, id).map_err(|e| bad(&e))?;
        let position = Position {
            last_log_id,
            last_membership: meta.last_membership.clone(),
        };
        let files = self.store.snapshot_files();
        let write = || -> Result<(), MetadataLogError> {
            files.write(id, &bytes)?;
            self.store.restart_at(last_log_id, id.end_offset)
        };
        blocking_io(write).map_err(|e| write_snapshot_err(Some(meta), e))?;
        self.applied
            .load(&read, position)
            .map_err(|e| bad(&e.to_string()))?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed a metadata snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let files = self.store.snapshot_files();
        let latest = snapshots::latest(&files).map_err(|e| snapshot_err(None, e))?;
        let Some((s, position)) = latest else {
            return Ok(None);
        };
        let bytes = std::fs::read(files.path(s.id)).map_err(|e| snapshot_err(None, e))?;
        Ok(Some(snapshots::raft_snapshot(s.id, &position, bytes)))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for QuorumStateMachine {
    /// A checkpoint file of the applied image, as of its last data batch (see `snapshots`).
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (image, position) = {
            let mut s = self.applied.state.lock();
            s.bytes_since_snapshot = 0;
            s.last_snapshot = Instant::now();
            (Arc::clone(&s.image), s.data_position.clone())
        };
        let Some(position) = position else {
            return Err(snapshot_err(None, "no metadata records to snapshot yet"));
        };
        let p = image.provenance;
        let id = SnapshotId {
            end_offset: p.last_offset + 1,
            epoch: p.last_epoch,
        };
        let files = self.store.snapshot_files();
        let path = files.path(id);
        if path.exists() {
            // Nothing applied since that one: the same file.
            let bytes = std::fs::read(&path).map_err(|e| snapshot_err(None, e))?;
            return Ok(snapshots::raft_snapshot(id, &position, bytes));
        }
        let meta = position.meta(id);
        let written = || -> Result<Vec<u8>, MetadataLogError> {
            let now_ms = crate::broker::now_ms();
            let bytes = encode_snapshot(&image, id, now_ms, Some(position.encode()?))?;
            files.write(id, &bytes)?;
            Ok(bytes.to_vec())
        };
        let bytes = blocking_io(written).map_err(|e| write_snapshot_err(Some(&meta), e))?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = bytes.len(), "wrote a metadata snapshot");
        Ok(snapshots::raft_snapshot(id, &position, bytes))
    }
}
