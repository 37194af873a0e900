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
    files.latest_with(Position::of)
}

/// The snapshot that says which Raft entry the log's first one is: the one ending at the log
/// start `start` (the log is cut only there), else the newest one.
pub fn anchor(
    files: &SnapshotFiles,
    start: i64,
    newest: Option<&(MetadataSnapshot, Position)>,
) -> Result<Option<(i64, Position)>, MetadataLogError> {
    let at_start = files.ids()?.into_iter().find(|id| id.end_offset == start);
    let at_start =
        at_start.and_then(|id| Some((id.end_offset, Position::of(&files.read(id).ok()?)?)));
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
    // Each snapshot's size and header are read from the disk: off the quorum's async workers.
    let ids = super::log_store::blocking_io(|| {
        let ids = files.ids()?;
        let facts: Vec<_> = (ids.iter())
            .map(|&id| (files.size(id), files.last_contained_log_timestamp(id)))
            .collect();
        io::Result::Ok((ids, facts))
    });
    let cut = match ids {
        Ok((ids, facts)) => retained_from(&ids, &facts, settings, log_bytes, now_ms),
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
/// snapshot's size and last record's time (`facts`, one per id): the oldest goes while the log
/// and the snapshots exceed `metadata.max.retention.bytes`, or while it is older than
/// `metadata.max.retention.ms`; the newest stays.
pub fn retained_from(
    ids: &[SnapshotId],
    facts: &[(u64, Option<i64>)],
    settings: &MetadataLogSettings,
    log_bytes: u64,
    now_ms: i64,
) -> Option<SnapshotId> {
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
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, Membership, RaftSnapshotBuilder};

    use crate::log::storage::FileStorage;
    use crate::metadata::metadata_log::{decode_batches, read_snapshot};
    use crate::metadata::quorum::log_store::QuorumLogStore;
    use crate::metadata::quorum::state_machine::{Applied, QuorumStateMachine};
    use crate::metadata::quorum::MetadataEntry;
    use crate::metadata::records::MetadataRecord;

    fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload,
        }
    }

    fn topic(n: u128) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(MetadataEntry {
            records: vec![MetadataRecord::Topic {
                name: format!("t{n}"),
                topic_id: uuid::Uuid::from_u128(n),
            }],
            append_time_ms: 1000 + n as i64,
            decided_on: None,
        })
    }

    fn open(dir: &std::path::Path) -> QuorumLogStore {
        let settings = MetadataLogSettings {
            segment_bytes: 200,
            ..MetadataLogSettings::default()
        };
        QuorumLogStore::open_with(Arc::new(FileStorage), dir, settings, false, 0).unwrap()
    }

    fn machine(store: &QuorumLogStore) -> QuorumStateMachine {
        let applied = Applied::new();
        if let Some((s, p)) = store.take_loaded() {
            applied.load(&s, p).unwrap();
        }
        QuorumStateMachine {
            applied,
            store: store.clone(),
        }
    }

    /// The snapshot is Kafka's checkpoint file (name, header, records, footer, the epoch of its
    /// last batch), taken at the last data batch with the Raft position in the header; the log
    /// cut behind it, a reopened store starts after it and the state machine from it; a torn
    /// newer file and a `.part` are passed over and deleted.
    #[test]
    fn a_snapshot_is_a_checkpoint_file_and_the_log_restarts_after_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let voters: BTreeMap<NodeId, QuorumNode> = [(1, QuorumNode::default())].into();
        let membership = Membership::new(vec![voters.keys().copied().collect()], voters);
        let mut written = vec![
            entry(0, 0, EntryPayload::Membership(membership)),
            entry(1, 1, EntryPayload::Blank),
        ];
        written.extend((2..8).map(|i| entry(1, i, topic(i as u128))));
        written.push(entry(2, 8, EntryPayload::Blank));
        store.append_entries(written.clone()).unwrap().unwrap();
        let mut sm = machine(&store);
        rt.block_on(sm.apply(written.clone())).unwrap();
        let snapshot = rt.block_on(sm.build_snapshot()).unwrap();
        // Offsets: 0 voters, 1 leader change, 2..=7 topics, 8 leader change: the image ends at
        // offset 7, in epoch 1; the snapshot holds entries up to 7.
        let name = "00000000000000000008-0000000001.checkpoint";
        assert_eq!(snapshot.meta.snapshot_id, name);
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(7));
        let files = store.snapshot_files();
        let bytes = std::fs::read(dir.path().join("__cluster_metadata-0").join(name)).unwrap();
        assert_eq!(snapshot.snapshot.get_ref(), &bytes);
        let batches = decode_batches(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(
            batches[0].control.first().map(|c| c.0),
            Some(3),
            "SnapshotHeader"
        );
        assert_eq!(
            batches.last().unwrap().control.last().map(|c| c.0),
            Some(4),
            "footer"
        );
        assert!(batches.iter().all(|b| b.epoch == 1));
        assert_eq!(batches[0].base_offset, 0);
        let id = files.ids().unwrap()[0];
        let read = read_snapshot(&bytes, id).unwrap();
        assert_eq!(read.records.len(), 6);
        assert_eq!(read.last_contained_log_timestamp, 1007);
        assert_eq!(Position::of(&read).unwrap().last_log_id.index, 7);
        assert_eq!(files.last_contained_log_timestamp(id), Some(1007));

        // openraft purges what the snapshot holds: the log starts at its end.
        let more: Vec<_> = (9..12).map(|i| entry(2, i, topic(i as u128))).collect();
        store.append_entries(more.clone()).unwrap().unwrap();
        rt.block_on(sm.apply(more.clone())).unwrap();
        rt.block_on(store.purge(snapshot.meta.last_log_id.unwrap()))
            .unwrap();
        assert_eq!(store.start_offset(), 8);
        let state = rt.block_on(store.get_log_state()).unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(7));
        assert_eq!(
            rt.block_on(store.try_get_log_entries(8..)).unwrap(),
            [&written[8..], &more[..]].concat()
        );
        let image = sm.applied.image();
        store.close(0).unwrap();
        drop((store, sm));

        // A torn newer snapshot and a half-written one.
        let torn = files.path(SnapshotId {
            end_offset: 11,
            epoch: 2,
        });
        std::fs::write(&torn, &bytes[..bytes.len() - 10]).unwrap();
        let mut part = torn.as_os_str().to_owned();
        part.push(".part");
        std::fs::write(&part, &bytes).unwrap();
        let mut store = open(dir.path());
        assert!(
            !std::path::Path::new(&part).exists(),
            "a .part is deleted at start-up"
        );
        let state = rt.block_on(store.get_log_state()).unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(7));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(11));
        let mut sm = machine(&store);
        let (applied, _) = rt.block_on(sm.applied_state()).unwrap();
        assert_eq!(
            applied.map(|l| l.index),
            Some(7),
            "from the snapshot, not the torn one"
        );
        assert_eq!(sm.applied.end_offset(), 8);
        let tail = rt.block_on(store.try_get_log_entries(8..)).unwrap();
        rt.block_on(sm.apply(tail)).unwrap();
        assert_eq!(*sm.applied.image(), *image);
        // Appends go on after the log's last entry.
        let next = vec![entry(3, 12, topic(12))];
        store.append_entries(next).unwrap().unwrap();
        assert_eq!(store.end_offset(), 13);
    }

    /// A snapshot installed from the leader past this node's log: the log starts over at its
    /// end, the image is the snapshot's, and the file is the leader's bytes.
    #[test]
    fn an_installed_snapshot_restarts_the_log_at_its_end() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = open(leader_dir.path());
        let written: Vec<_> = (0..20).map(|i| entry(1, i, topic(i as u128))).collect();
        leader.append_entries(written.clone()).unwrap().unwrap();
        let mut leader_sm = machine(&leader);
        rt.block_on(leader_sm.apply(written.clone())).unwrap();
        let snapshot = rt.block_on(leader_sm.build_snapshot()).unwrap();

        let mut store = open(dir.path());
        store
            .append_entries(written[..3].to_vec())
            .unwrap()
            .unwrap();
        let mut sm = machine(&store);
        rt.block_on(sm.apply(written[..3].to_vec())).unwrap();
        let data = snapshot.snapshot.get_ref().clone();
        rt.block_on(sm.install_snapshot(&snapshot.meta, Box::new(io::Cursor::new(data.clone()))))
            .unwrap();
        rt.block_on(store.purge(snapshot.meta.last_log_id.unwrap()))
            .unwrap();
        assert_eq!(store.start_offset(), 20);
        assert_eq!(store.end_offset(), 20);
        assert_eq!(*sm.applied.image(), *leader_sm.applied.image());
        let id = id_of(&snapshot.meta).unwrap();
        assert_eq!(
            std::fs::read(store.snapshot_files().path(id)).unwrap(),
            data
        );
        let next = vec![entry(2, 20, topic(20))];
        store.append_entries(next).unwrap().unwrap();
        store.close(0).unwrap();
        drop((store, sm));
        let mut store = open(dir.path());
        let state = rt.block_on(store.get_log_state()).unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(19));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(20));
    }

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
        let facts: Vec<_> = (ids.iter())
            .map(|i| (100, Some(i.end_offset * 1000)))
            .collect();
        // 3 snapshots of 100 bytes and a log of 50: 350.
        assert_eq!(retained_from(&ids, &facts, &settings(350, -1), 50, 0), None);
        assert_eq!(
            retained_from(&ids, &facts, &settings(349, -1), 50, 0),
            Some(id(20))
        );
        assert_eq!(
            retained_from(&ids, &facts, &settings(0, -1), 50, 0),
            Some(id(30))
        );
        // Times 10 s, 20 s, 30 s: at 35 s with a 10 s retention, the first two are too old.
        assert_eq!(
            retained_from(&ids, &facts, &settings(-1, 10_000), 0, 35_000),
            Some(id(30))
        );
        assert_eq!(
            retained_from(&ids, &facts, &settings(-1, 20_000), 0, 35_000),
            Some(id(20))
        );
        assert_eq!(
            retained_from(&ids, &facts, &settings(-1, -1), 1 << 40, 1 << 40),
            None
        );
        assert_eq!(
            retained_from(&ids[..1], &facts[..1], &settings(0, 0), 50, 1 << 40),
            None
        );
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
