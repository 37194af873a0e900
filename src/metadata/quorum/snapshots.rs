//! Snapshots of the metadata quorum, taken and kept as KRaft does (Kafka's SnapshotGenerator,
//! KafkaMetadataLog's snapshots and cleaning), and openraft's snapshots being the same files:
//!
//! - a snapshot is Kafka's checkpoint file, `<end offset>-<epoch>.checkpoint` beside the log
//!   (`metadata_log::SnapshotFiles`): the applied image as metadata records between a
//!   SnapshotHeader and a SnapshotFooter. It is taken at the image's last data batch, so that
//!   its end offset is where the next data batch starts (what a conditional write is decided
//!   on, `log_store`), and its epoch is that batch's. openraft needs to know which Raft entry it
//!   ends at and the membership as of it (its SnapshotMeta); Kafka's format has no room for
//!   them but a tagged field of the header, which Kafka's readers pass over (`Position`,
//!   `metadata_log::QUORUM_POSITION_TAG`). openraft's snapshot data is the file's bytes, sent
//!   as they are to a voter behind (install_snapshot over `transport`), which writes them as
//!   its own checkpoint (Kafka's FetchSnapshot copies the leader's file likewise);
//! - taken (`generate_and_clean`) once `metadata.log.max.record.bytes.between.snapshots` of
//!   records were applied since the last one, or `metadata.log.max.snapshot.interval.ms` passed
//!   since it with some applied, checked as each batch is applied (SnapshotGenerator checks as
//!   each batch is published);
//! - kept as `metadata.max.retention.bytes` and `metadata.max.retention.ms` say (Kafka's
//!   maybeClean): while the log and the snapshots together are larger, or the oldest snapshot's
//!   last record is older, the oldest snapshot goes and the log starts at the next one's end,
//!   the newest always kept. The log is cut through openraft (`Raft::trigger().purge_log` of the
//!   entry that snapshot ends at), which purges only what a snapshot holds and only once its
//!   replication no longer reads it, and then calls `QuorumLogStore::purge`. openraft's own
//!   purge after a snapshot is off (`max_in_snapshot_log_to_keep`): a voter behind gets the
//!   log's entries while the log has them, and the snapshot once it does not, as Kafka's
//!   followers fetch the log and the snapshot only below the log start.
//!
//! Retention weighs the log's size as it is before the cut (Kafka's weighs it after each
//! snapshot's cut): the log shrinks only as openraft purges, later.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use openraft::storage::{Snapshot, SnapshotMeta};
use openraft::{LogId, StoredMembership};

use super::{NodeId, Quorum, QuorumNode, TypeConfig};
use crate::config::MetadataLogSettings;
use crate::metadata::metadata_log::{
    parse_snapshot_name, snapshot_name, MetadataLogError, MetadataSnapshot, SnapshotFiles,
    SnapshotId,
};

/// Where a snapshot ends in the Raft log: openraft's SnapshotMeta but its id (the file's name).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub last_log_id: LogId<NodeId>,
    pub last_membership: StoredMembership<NodeId, QuorumNode>,
}

impl Position {
    pub fn encode(&self) -> Result<Bytes, MetadataLogError> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        Ok(Bytes::from(json))
    }

    pub fn decode(bytes: &[u8]) -> Option<Position> {
        serde_json::from_slice(bytes).ok()
    }

    /// The position a snapshot file says it ends at (None: not a quorum's snapshot).
    pub fn of(s: &MetadataSnapshot) -> Option<Position> {
        Position::decode(s.quorum_position.as_deref()?)
    }

    /// openraft's meta of the snapshot `id` ending here.
    pub fn meta(&self, id: SnapshotId) -> SnapshotMeta<NodeId, QuorumNode> {
        SnapshotMeta {
            last_log_id: Some(self.last_log_id),
            last_membership: self.last_membership.clone(),
            snapshot_id: snapshot_name(id),
        }
    }
}

/// openraft's snapshot: the meta, and the checkpoint file's bytes.
pub fn raft_snapshot(id: SnapshotId, p: &Position, bytes: Vec<u8>) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: p.meta(id),
        snapshot: Box::new(io::Cursor::new(bytes)),
    }
}

/// The snapshot id openraft's meta names (the file's name).
pub fn id_of(meta: &SnapshotMeta<NodeId, QuorumNode>) -> Option<SnapshotId> {
    parse_snapshot_name(&meta.snapshot_id)
}

/// The newest complete snapshot of the quorum, with where it ends (files without a position
/// are passed over: not written by a quorum).
pub fn latest(files: &SnapshotFiles) -> io::Result<Option<(MetadataSnapshot, Position)>> {
    for id in files.ids()?.into_iter().rev() {
        match files.read(id) {
            Ok(s) => match Position::of(&s) {
                Some(p) => return Ok(Some((s, p))),
                None => tracing::warn!(?id, "a metadata snapshot without its Raft position: passed over"),
            },
            Err(e) => tracing::warn!(?id, error = %e, "skipping an unreadable metadata snapshot"),
        }
    }
    Ok(None)
}

/// The snapshot that says which Raft entry the log's first one is: the one ending at the log
/// start `start` (the log is cut only there), else the newest one.
pub fn anchor(
    files: &SnapshotFiles,
    start: i64,
    newest: Option<&(MetadataSnapshot, Position)>,
) -> Result<Option<(i64, Position)>, MetadataLogError> {
    let at_start = files.ids()?.into_iter().find(|id| id.end_offset == start);
    let at_start = at_start.and_then(|id| Some((id.end_offset, Position::of(&files.read(id).ok()?)?)));
    Ok(at_start.or_else(|| newest.map(|(s, p)| (s.id.end_offset, p.clone()))))
}

/// Takes a snapshot as it falls due and cuts the log as retention says, until the node stops.
pub(super) async fn generate_and_clean(q: Quorum, settings: MetadataLogSettings) {
    let mut applied = q.applied.watch_end_offset();
    let mut metrics = q.raft.metrics();
    let mut seen = metrics.borrow().snapshot;
    clean(&q, &settings).await;
    loop {
        tokio::select! {
            changed = applied.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = tokio::time::Instant::now();
                if q.applied.snapshot_due(&settings, now) && q.raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                let snapshot = metrics.borrow().snapshot;
                if snapshot != seen {
                    seen = snapshot;
                    clean(&q, &settings).await;
                }
            }
        }
    }
}

/// Whether a snapshot is due: `bytes` of records applied since the last one, `since` it.
pub fn due(settings: &MetadataLogSettings, bytes: u64, since: Duration) -> bool {
    let interval = Duration::from_millis(settings.max_snapshot_interval_ms);
    bytes >= settings.max_bytes_between_snapshots
        || (bytes > 0 && !interval.is_zero() && since >= interval)
}

/// Kafka's KafkaMetadataLog.maybeClean: see the module comment.
async fn clean(q: &Quorum, settings: &MetadataLogSettings) {
    let files = q.store.snapshot_files();
    let now_ms = crate::broker::now_ms();
    let log_bytes = q.store.size_bytes();
    let cut = match files.ids() {
        Ok(ids) => retained_from(&ids, settings, log_bytes, now_ms, |id| {
            (files.size(id), files.last_contained_log_timestamp(id))
        }),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the metadata snapshots");
            None
        }
    };
    let Some(cut) = cut else {
        return;
    };
    let Some(index) = q.store.index_ending_at(cut.end_offset) else {
        return;
    };
    tracing::info!(
        log_start = cut.end_offset,
        index,
        "metadata log retention: dropping the log and snapshots before a snapshot"
    );
    let _ = q.raft.trigger().purge_log(index).await;
}

/// The snapshot the log is to start at under retention (None: nothing to cut), given each
/// snapshot's size and last record's time: the oldest goes while the log and the snapshots
/// exceed `metadata.max.retention.bytes`, or while it is older than `metadata.max.retention.ms`;
/// the newest stays.
pub fn retained_from(
    ids: &[SnapshotId],
    settings: &MetadataLogSettings,
    log_bytes: u64,
    now_ms: i64,
    size_and_time: impl Fn(SnapshotId) -> (u64, Option<i64>),
) -> Option<SnapshotId> {
    let facts: Vec<(u64, Option<i64>)> = ids.iter().map(|&id| size_and_time(id)).collect();
    let mut cut = 0;
    if settings.retention_bytes >= 0 {
        let limit = settings.retention_bytes as u64;
        let mut total: u64 = facts.iter().map(|f| f.0).sum();
        while cut + 1 < ids.len() && log_bytes + total > limit {
            total -= facts[cut].0;
            cut += 1;
        }
    }
    if settings.retention_ms >= 0 {
        let expired = |t: Option<i64>| t.is_some_and(|t| now_ms - t > settings.retention_ms);
        while cut + 1 < ids.len() && expired(facts[cut].1) {
            cut += 1;
        }
    }
    (cut > 0).then(|| ids[cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(end_offset: i64) -> SnapshotId {
        SnapshotId {
            end_offset,
            epoch: 1,
        }
    }

    /// Kafka's cleaning: by size, the oldest snapshots go while log + snapshots exceed the
    /// limit; by time, while the oldest is too old; the newest always stays.
    #[test]
    fn retention_cuts_to_a_snapshot_and_keeps_the_newest() {
        let ids = [id(10), id(20), id(30)];
        let settings = |bytes: i64, ms: i64| MetadataLogSettings {
            retention_bytes: bytes,
            retention_ms: ms,
            ..MetadataLogSettings::default()
        };
        let facts = |i: SnapshotId| (100, Some(i.end_offset * 1000));
        // 3 snapshots of 100 bytes and a log of 50: 350.
        assert_eq!(retained_from(&ids, &settings(350, -1), 50, 0, facts), None);
        assert_eq!(retained_from(&ids, &settings(349, -1), 50, 0, facts), Some(id(20)));
        assert_eq!(retained_from(&ids, &settings(0, -1), 50, 0, facts), Some(id(30)));
        // Times 10 s, 20 s, 30 s: at 35 s with a 10 s retention, the first two are too old.
        assert_eq!(retained_from(&ids, &settings(-1, 10_000), 0, 35_000, facts), Some(id(30)));
        assert_eq!(retained_from(&ids, &settings(-1, 20_000), 0, 35_000, facts), Some(id(20)));
        assert_eq!(retained_from(&ids, &settings(-1, -1), 1 << 40, 1 << 40, facts), None);
        assert_eq!(retained_from(&ids[..1], &settings(0, 0), 50, 1 << 40, facts), None);
    }

    #[test]
    fn a_snapshot_falls_due_by_bytes_or_by_time_with_records() {
        let s = MetadataLogSettings {
            max_bytes_between_snapshots: 100,
            max_snapshot_interval_ms: 1000,
            ..MetadataLogSettings::default()
        };
        assert!(due(&s, 100, Duration::ZERO));
        assert!(!due(&s, 99, Duration::from_millis(999)));
        assert!(due(&s, 1, Duration::from_millis(1000)));
        assert!(!due(&s, 0, Duration::from_secs(3600)), "nothing new");
        let never_by_time = MetadataLogSettings {
            max_snapshot_interval_ms: 0,
            ..s
        };
        assert!(!due(&never_by_time, 1, Duration::from_secs(3600)));
    }
}
