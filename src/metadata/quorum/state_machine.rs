//! The quorum's state machine: the metadata image, replayed from committed entries by the shared
//! replay (`metadata_log::replay_batch`), and how far the committed log reaches in Kafka offsets
//! (what `MetadataLog::read` may return, and what a waiting reader is woken on).
//!
//! It lives in memory: after a restart openraft applies the committed log again from the start
//! (snapshots of the quorum, Kafka's checkpoint files, are the next step).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{NodeId, Outcome, QuorumNode, TypeConfig};
use crate::metadata::image::MetadataImage;
use crate::metadata::metadata_log::{batch_delta, MetadataBatch};

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
}

impl Applied {
    pub fn new() -> Arc<Applied> {
        Arc::new(Applied {
            state: Mutex::new(AppliedState {
                image: Arc::new(MetadataImage::empty()),
                last_applied: None,
                membership: StoredMembership::default(),
                next_offset: 0,
            }),
            end_offset: watch::channel(0).0,
        })
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

/// The state machine openraft drives (a handle on the shared `Applied`).
#[derive(Clone)]
pub struct QuorumStateMachine {
    pub(super) applied: Arc<Applied>,
}

fn unsupported(what: &str) -> StorageError<NodeId> {
    let e = std::io::Error::other(format!(
        "{what}: snapshots of the metadata quorum are not supported yet"
    ));
    StorageIOError::read_snapshot(None, &e).into()
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
        Err(unsupported("receiving a snapshot"))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, QuorumNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        Err(unsupported("installing a snapshot"))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(None)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for QuorumStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        Err(unsupported("building a snapshot"))
    }
}
