//! The metadata quorum: Kafka's KRaft metadata log as a Raft group on openraft. Its entries are
//! batches of Kafka's metadata records and its state machine is the `MetadataImage`; it is
//! another implementation of `MetadataLog` (`RaftMetadataLog`), not a second metadata path: the
//! catalog, the replay, and the publishers stay the shared ones.
//!
//! - `log_store`: openraft's log as Kafka's `__cluster_metadata-0` (one record batch per entry,
//!   the partition leader epoch the Raft term) and its vote as Kafka's `quorum-state` file;
//! - `state_machine`: the image the committed entries replay to, and the committed end offset;
//! - `Quorum`: one node of the group (async, on any tokio runtime), over any network
//!   (`openraft::RaftNetworkFactory`: an in-memory one in the simulation test).
//!
//! Not yet: snapshots of the quorum (the log is kept whole and replayed at start-up),
//! membership changes (the voters are fixed when the quorum is first formed).

pub mod log_store;
#[cfg(test)]
mod simulation;
pub mod state_machine;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, RaftNetworkFactory, SnapshotPolicy};

use self::log_store::QuorumLogStore;
use self::state_machine::{Applied, QuorumStateMachine};
use super::image::MetadataImage;
use super::metadata_log::{
    MetadataBatch, MetadataLog, MetadataLogError, MetadataSnapshot, SnapshotId,
};
use super::records::MetadataRecord;

/// A node id of the quorum (Kafka's `node.id`).
pub type NodeId = u64;

/// A normal entry: metadata records appended together, stamped with the proposer's clock so
/// that every node's log and image agree on the batch's time.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataEntry {
    pub records: Vec<MetadataRecord>,
    pub append_time_ms: i64,
}

/// Where a voter listens (its endpoint on the controller listener).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumNode {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for QuorumNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

openraft::declare_raft_types!(
    /// The quorum's types: entries of metadata records, answered with their last offset.
    pub TypeConfig:
        D = MetadataEntry,
        R = i64,
        NodeId = NodeId,
        Node = QuorumNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// Kafka's controller.quorum.election.timeout.ms (1 s) as the shortest election timeout; a
/// leader's heartbeat well inside it. openraft checks the election timeout on a tick of 1.5
/// heartbeats: a short heartbeat keeps the tick fine against the timeouts' random spread, so
/// that two nodes rarely stand for election on the same tick.
fn raft_config() -> Result<Arc<Config>, MetadataLogError> {
    let config = Config {
        cluster_name: "gregor".into(),
        heartbeat_interval: 100,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        // No snapshots of the quorum yet: the log is kept whole, and a follower behind is
        // always sent entries, never a snapshot.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        ..Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| MetadataLogError::Quorum(e.to_string()))
}

/// One node of the metadata quorum.
#[derive(Clone)]
pub struct Quorum {
    pub id: NodeId,
    pub raft: Raft<TypeConfig>,
    pub store: QuorumLogStore,
    pub applied: Arc<Applied>,
}

impl Quorum {
    /// Starts the node over its opened log; `network` reaches the other voters.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        store: QuorumLogStore,
        network: N,
    ) -> Result<Quorum, MetadataLogError> {
        let applied = Applied::new();
        let sm = QuorumStateMachine {
            applied: Arc::clone(&applied),
        };
        let raft = Raft::new(id, raft_config()?, network, store.clone(), sm)
            .await
            .map_err(|e| MetadataLogError::Quorum(e.to_string()))?;
        Ok(Quorum {
            id,
            raft,
            store,
            applied,
        })
    }

    /// Forms the quorum of `voters` if this node has never been part of one (every voter is
    /// started with the same list, Kafka's `controller.quorum.voters`; a node that already
    /// holds a log or a vote keeps what it has).
    pub async fn bootstrap(
        &self,
        voters: BTreeMap<NodeId, QuorumNode>,
    ) -> Result<(), MetadataLogError> {
        if self.store.is_used() {
            return Ok(());
        }
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(MetadataLogError::Quorum(e.to_string())),
        }
    }

    /// Appends `records` as one entry and returns the offset of the last once it is committed
    /// and applied here. Only the leader takes writes: elsewhere the error names the leader.
    pub async fn append(
        &self,
        records: Vec<MetadataRecord>,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        let entry = MetadataEntry {
            records,
            append_time_ms: now_ms,
        };
        match self.raft.client_write(entry).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(MetadataLogError::Quorum(match f.leader_id {
                    Some(l) => format!("node {} does not lead the quorum; node {l} does", self.id),
                    None => format!(
                        "node {} does not lead the quorum; no leader is known",
                        self.id
                    ),
                }))
            }
            Err(e) => Err(MetadataLogError::Quorum(e.to_string())),
        }
    }

    /// The committed batches from the one holding `from_offset` on.
    pub fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError> {
        let until = self.applied.end_offset();
        let batches = self.store.read_batches(from_offset, until)?;
        Ok(batches.into_iter().filter_map(|b| b.data).collect())
    }

    /// The image of the committed log.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.image()
    }
}

/// How long an append waits for the quorum to commit it before giving up (Kafka's
/// request.timeout.ms), so that a caller never hangs on a quorum without a leader.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `MetadataLog` over a quorum node, for the broker's synchronous callers: the node runs on a
/// runtime of its own, and a call waits on it without blocking that runtime.
pub struct RaftMetadataLog {
    quorum: Quorum,
    runtime: tokio::runtime::Runtime,
}

impl RaftMetadataLog {
    /// Runs `start` (which starts the node) on a runtime of its own.
    pub fn new<F>(start: F) -> Result<RaftMetadataLog, MetadataLogError>
    where
        F: std::future::Future<Output = Result<Quorum, MetadataLogError>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("metadata-quorum")
            .enable_all()
            .build()?;
        let quorum = wait_on(&runtime, start)??;
        Ok(RaftMetadataLog { quorum, runtime })
    }

    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }
}

/// Runs `f` on `runtime` and waits for it from a thread that may itself be a runtime's.
fn wait_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, MetadataLogError> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv()
        .map_err(|_| MetadataLogError::Quorum("the metadata quorum stopped".into()))
}

impl MetadataLog for RaftMetadataLog {
    fn append(&self, records: &[MetadataRecord], now_ms: i64) -> Result<i64, MetadataLogError> {
        if records.is_empty() {
            return Ok(self.quorum.applied.end_offset() - 1);
        }
        let quorum = self.quorum.clone();
        let records = records.to_vec();
        let append = async move {
            tokio::time::timeout(APPEND_TIMEOUT, quorum.append(records, now_ms))
                .await
                .unwrap_or_else(|_| {
                    Err(MetadataLogError::Quorum(
                        "the metadata quorum did not commit the append in time".into(),
                    ))
                })
        };
        wait_on(&self.runtime, append)?
    }

    fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError> {
        self.quorum.read(from_offset)
    }

    fn latest_snapshot(&self) -> Result<Option<MetadataSnapshot>, MetadataLogError> {
        Ok(None)
    }

    fn create_snapshot(
        &self,
        _image: &MetadataImage,
        _now_ms: i64,
    ) -> Result<SnapshotId, MetadataLogError> {
        Err(MetadataLogError::Quorum(
            "snapshots of the metadata quorum are not supported yet".into(),
        ))
    }

    fn committed(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        Some(self.quorum.applied.watch_end_offset())
    }

    fn close(&self, now_ms: i64) -> Result<(), MetadataLogError> {
        let raft = self.quorum.raft.clone();
        wait_on(&self.runtime, async move { raft.shutdown().await })?
            .map_err(|e| MetadataLogError::Quorum(e.to_string()))?;
        self.quorum.store.close(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::FileStorage;
    use crate::metadata::metadata_log::load_image;
    use crate::metadata::records::tests::samples;
    use openraft::error::{InstallSnapshotError, RPCError, Unreachable};
    use openraft::network::RPCOption;
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::RaftNetwork;

    /// A single voter's network: there is no one to reach.
    struct Alone;

    fn alone<E: std::error::Error>() -> RPCError<NodeId, QuorumNode, E> {
        RPCError::Unreachable(Unreachable::new(&std::io::Error::other("a single voter")))
    }

    impl RaftNetworkFactory<TypeConfig> for Alone {
        type Network = Alone;
        async fn new_client(&mut self, _target: NodeId, _node: &QuorumNode) -> Alone {
            Alone
        }
    }

    impl RaftNetwork<TypeConfig> for Alone {
        async fn append_entries(
            &mut self,
            _rpc: AppendEntriesRequest<TypeConfig>,
            _option: RPCOption,
        ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
        {
            Err(alone())
        }

        async fn install_snapshot(
            &mut self,
            _rpc: InstallSnapshotRequest<TypeConfig>,
            _option: RPCOption,
        ) -> Result<
            InstallSnapshotResponse<NodeId>,
            RPCError<NodeId, QuorumNode, RaftError<NodeId, InstallSnapshotError>>,
        > {
            Err(alone())
        }

        async fn vote(
            &mut self,
            _rpc: VoteRequest<NodeId>,
            _option: RPCOption,
        ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
            Err(alone())
        }
    }

    fn start(dir: &std::path::Path) -> RaftMetadataLog {
        let store = QuorumLogStore::open(Arc::new(FileStorage), dir, false, 0).unwrap();
        RaftMetadataLog::new(async move {
            let q = Quorum::start(1, store, Alone).await?;
            let node = QuorumNode {
                host: "127.0.0.1".into(),
                port: 9093,
            };
            q.bootstrap(BTreeMap::from([(1, node)])).await?;
            Ok(q)
        })
        .unwrap()
    }

    /// The `MetadataLog` contract over a one-voter quorum, called from plain threads: an append
    /// returns its last offset once committed, a read gives the committed batches (Raft's own
    /// control batches left out), and a restart replays the log to the same image.
    #[test]
    fn a_single_voter_quorum_is_a_metadata_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = start(dir.path());
        let s = samples();
        let first = log.append(&s[..1], 10).unwrap();
        let second = log.append(&s[2..5], 20).unwrap();
        // Offsets 0 and 1 are the VotersRecord and the leader's LeaderChangeMessage.
        assert_eq!((first, second), (2, 5));
        let read = log.read(0).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].base_offset, 3);
        assert_eq!(read[1].records, s[2..5].to_vec());
        assert_eq!(read[1].append_time_ms, 20);
        assert!(read[1].epoch >= 1, "the batch carries the term");
        assert_eq!(log.read(4).unwrap().len(), 1);
        let image = load_image(&log).unwrap();
        assert_eq!(image, *log.quorum().image());
        log.close(0).unwrap();
        drop(log);

        let log = start(dir.path());
        // The restarted voter leads again and replays the committed log.
        let third = log.append(&s[5..6], 30).unwrap();
        assert!(third > second);
        let read = log.read(0).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(
            read[..2]
                .iter()
                .map(|b| b.records.clone())
                .collect::<Vec<_>>(),
            vec![s[..1].to_vec(), s[2..5].to_vec()]
        );
        let json =
            std::fs::read_to_string(dir.path().join("__cluster_metadata-0/quorum-state")).unwrap();
        assert!(json.contains("\"leaderId\":1"), "{json}");
        log.close(0).unwrap();
    }
}
