//! A simulation of the metadata quorum: three nodes in one test over an in-memory network the
//! test controls (messages lost, delayed and so reordered, nodes crashed and restarted), on
//! tokio's paused clock so that hours of timeouts pass in moments. The faults come from a seeded
//! generator, so a failing seed replays the same schedule of faults (openraft's own election
//! timeouts are random). After quiescence every node's image is the same, and every append that
//! was acknowledged is in it.

mod controller;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use parking_lot::Mutex;
use uuid::Uuid;

use super::log_store::QuorumLogStore;
use super::{NodeId, Quorum, QuorumNode, TypeConfig};
use crate::config::MetadataLogSettings;
use crate::log::storage::FileStorage;
use crate::metadata::records::MetadataRecord;

/// splitmix64: a small seeded generator, so the fault schedule of a seed is always the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct NetState {
    rng: Rng,
    /// The nodes that are up, by id.
    up: HashMap<NodeId, Quorum>,
    /// Chance (percent) that a request, and separately its answer, is lost.
    loss: u64,
    /// Each delivery waits up to this long (so messages overtake one another).
    max_delay_ms: u64,
    delivered: u64,
    lost: u64,
}

/// The in-memory network: every node's factory is a handle on the same state.
#[derive(Clone)]
struct Net(Arc<Mutex<NetState>>);

struct Client {
    from: NodeId,
    to: NodeId,
    net: Net,
}

/// A node's factory, which stamps the sender on its clients.
struct NodeNet {
    from: NodeId,
    net: Net,
}

impl RaftNetworkFactory<TypeConfig> for NodeNet {
    type Network = Client;

    async fn new_client(&mut self, target: NodeId, _node: &QuorumNode) -> Client {
        Client {
            from: self.from,
            to: target,
            net: self.net.clone(),
        }
    }
}

fn unreachable<E: std::error::Error>(why: &str) -> RPCError<NodeId, QuorumNode, E> {
    RPCError::Unreachable(Unreachable::new(&io::Error::other(why.to_string())))
}

impl Client {
    /// Delivers one request to the target (if both ends are up and the dice allow), after a
    /// random delay, and its answer back after another.
    async fn deliver<T, E, F, Fut>(&self, call: F) -> Result<T, RPCError<NodeId, QuorumNode, E>>
    where
        E: std::error::Error,
        F: FnOnce(Quorum) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (target, lose_request, lose_answer, d1, d2) = {
            let mut s = self.net.0.lock();
            let target = match s.up.contains_key(&self.from) {
                true => s.up.get(&self.to).cloned(),
                false => None,
            };
            let (loss, max) = (s.loss, s.max_delay_ms);
            let lose_request = s.rng.chance(loss);
            let lose_answer = s.rng.chance(loss);
            let d1 = s.rng.below(max + 1);
            let d2 = s.rng.below(max + 1);
            (target, lose_request, lose_answer, d1, d2)
        };
        tokio::time::sleep(Duration::from_millis(d1)).await;
        let Some(target) = target else {
            return Err(unreachable("the node is down"));
        };
        if lose_request {
            self.net.0.lock().lost += 1;
            return Err(unreachable("request lost"));
        }
        let answer = call(target).await;
        tokio::time::sleep(Duration::from_millis(d2)).await;
        let mut s = self.net.0.lock();
        if lose_answer || !s.up.contains_key(&self.from) {
            s.lost += 1;
            return Err(RPCError::Network(NetworkError::new(&io::Error::other(
                "answer lost",
            ))));
        }
        s.delivered += 1;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<TypeConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
    {
        self.deliver(|q| async move { q.raft.append_entries(rpc).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> super::transport::SnapshotRpc {
        self.deliver(|q| async move { q.raft.install_snapshot(rpc).await })
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
        self.deliver(|q| async move { q.raft.vote(rpc).await })
            .await
    }
}

struct Sim {
    net: Net,
    dirs: BTreeMap<NodeId, PathBuf>,
    voters: BTreeMap<NodeId, QuorumNode>,
    /// Each node's metadata log settings (when it snapshots, what it keeps).
    settings: MetadataLogSettings,
}

impl Sim {
    fn new(seed: u64, root: &Path) -> Sim {
        let ids = [1, 2, 3];
        let dirs = ids
            .iter()
            .map(|&i| (i, root.join(format!("node-{i}"))))
            .collect();
        let voters = ids
            .iter()
            .map(|&i| {
                let node = QuorumNode {
                    host: "127.0.0.1".into(),
                    port: 9093 + i as u16,
                };
                (i, node)
            })
            .collect();
        let net = Net(Arc::new(Mutex::new(NetState {
            rng: Rng(seed),
            up: HashMap::new(),
            loss: 0,
            max_delay_ms: 0,
            delivered: 0,
            lost: 0,
        })));
        Sim {
            net,
            dirs,
            voters,
            settings: MetadataLogSettings::default(),
        }
    }

    /// Opens node `id`'s log (as after a crash) and starts it.
    async fn start(&self, id: NodeId) -> Quorum {
        // Nodes start at different moments, as processes do: openraft checks its (per-node
        // random) election timeout on a periodic tick, and nodes whose ticks fall together on
        // the paused clock would all stand for election at once, every time.
        let stagger = self.roll(1000);
        tokio::time::sleep(Duration::from_millis(stagger)).await;
        let settings = self.settings.clone();
        let dir = &self.dirs[&id];
        let store = QuorumLogStore::open_with(Arc::new(FileStorage), dir, settings, false, 0);
        let store = store.unwrap();
        let factory = NodeNet {
            from: id,
            net: self.net.clone(),
        };
        let q = Quorum::start(id, store, factory).await.unwrap();
        self.net.0.lock().up.insert(id, q.clone());
        q.bootstrap(self.voters.clone()).await.unwrap();
        q
    }

    /// Stops node `id` at once: it is off the network and its Raft stops (its log is what it
    /// fsynced).
    async fn crash(&self, id: NodeId) {
        let q = self.net.0.lock().up.remove(&id);
        if let Some(q) = q {
            q.raft.shutdown().await.unwrap();
        }
    }

    fn up(&self) -> Vec<Quorum> {
        let mut up: Vec<Quorum> = self.net.0.lock().up.values().cloned().collect();
        up.sort_by_key(|q| q.id);
        up
    }

    /// The node every up node agrees leads, if any.
    fn leader(&self) -> Option<Quorum> {
        let up = self.up();
        up.iter()
            .find(|q| {
                let m = q.raft.metrics().borrow().clone();
                m.current_leader == Some(q.id) && m.state == openraft::ServerState::Leader
            })
            .cloned()
    }

    fn set_faults(&self, loss: u64, max_delay_ms: u64) {
        let mut s = self.net.0.lock();
        s.loss = loss;
        s.max_delay_ms = max_delay_ms;
    }

    fn roll(&self, n: u64) -> u64 {
        self.net.0.lock().rng.below(n)
    }
}

fn topic(name: &str, n: u128) -> Vec<MetadataRecord> {
    vec![MetadataRecord::Topic {
        name: name.to_string(),
        topic_id: Uuid::from_u128(n + 1),
    }]
}

/// Waits (on the paused clock) for a node to lead, appending a barrier through it until one
/// is committed; then waits for every node to have applied it.
async fn quiesce(sim: &Sim) -> i64 {
    let barrier = async {
        loop {
            if let Some(leader) = sim.leader() {
                let records = topic("barrier", 1_000_000);
                if let Ok(offset) = leader.append(records, None, 0).await {
                    return offset;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let Ok(offset) = tokio::time::timeout(Duration::from_secs(600), barrier).await else {
        let states: Vec<String> = sim
            .up()
            .iter()
            .map(|q| format!("{:?}", q.raft.metrics().borrow()))
            .collect();
        panic!("the quorum never committed the barrier: {states:#?}");
    };
    for q in sim.up() {
        let mut end = q.applied.watch_end_offset();
        let caught_up = end.wait_for(|&e| e > offset);
        tokio::time::timeout(Duration::from_secs(600), caught_up)
            .await
            .expect("a node never applied the barrier")
            .unwrap();
    }
    offset
}

/// Where a run keeps its nodes' logs: in memory (/dev/shm) where the machine has it. A run
/// waits on little but fsync otherwise, and a simulated crash keeps what the OS holds either way.
fn sim_dir() -> tempfile::TempDir {
    let shm = tempfile::Builder::new()
        .prefix("gregor-sim")
        .tempdir_in("/dev/shm");
    shm.or_else(|_| tempfile::tempdir()).unwrap()
}

/// One seeded run: appends interleaved with message loss and delay and crashes of the leader.
async fn run(seed: u64, settings: MetadataLogSettings) {
    let root = sim_dir();
    let mut sim = Sim::new(seed, root.path());
    sim.settings = settings;
    for id in 1..=3 {
        sim.start(id).await;
    }
    let mut acked = BTreeSet::new();
    let mut down: Vec<NodeId> = Vec::new();
    let mut n = 0u128;
    let mut crashes = 0;
    for _ in 0..150 {
        match sim.roll(10) {
            // Weather: from a calm network to a quarter of all messages lost.
            0 => sim.set_faults(sim.roll(26), sim.roll(300)),
            // The leader crashes (one node down at most: a majority stays).
            1 if down.is_empty() => {
                if let Some(leader) = sim.leader() {
                    sim.crash(leader.id).await;
                    down.push(leader.id);
                    crashes += 1;
                }
            }
            2 => {
                if let Some(id) = down.pop() {
                    sim.start(id).await;
                }
            }
            _ => {
                let Some(leader) = sim.leader() else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                n += 1;
                let name = format!("t{n}");
                let append = leader.append(topic(&name, n), None, n as i64);
                // An append that fails or times out may or may not be committed; one that
                // returns is.
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), append).await {
                    acked.insert(name);
                }
            }
        }
    }
    sim.set_faults(0, 0);
    for id in down.drain(..) {
        sim.start(id).await;
    }
    let offset = quiesce(&sim).await;
    // A node crashed and restarted now replays its log to the same image.
    let restarted = sim.up()[0].id;
    sim.crash(restarted).await;
    sim.start(restarted).await;
    quiesce(&sim).await;
    let up = sim.up();
    assert_eq!(up.len(), 3);
    let image = up[0].image();
    // The logs compared from where every node still holds them (snapshots cut them).
    let from = up.iter().map(|q| q.store.start_offset()).max().unwrap_or(0);
    for q in &up[1..] {
        assert_eq!(
            *q.image(),
            *image,
            "seed {seed}: node {} differs from node {}",
            q.id,
            up[0].id
        );
        let read: Vec<_> = q.read(from).unwrap();
        assert_eq!(
            read,
            up[0].read(from).unwrap(),
            "seed {seed}: node {}'s log",
            q.id
        );
    }
    for name in &acked {
        assert!(
            image.topics.get_by_name(name).is_some(),
            "seed {seed}: acknowledged {name} lost"
        );
    }
    assert!(image.provenance.last_offset >= offset);
    let (delivered, lost) = {
        let s = sim.net.0.lock();
        (s.delivered, s.lost)
    };
    assert!(
        !acked.is_empty() && delivered > 0,
        "seed {seed}: nothing happened"
    );
    eprintln!(
        "seed {seed}: crashes {crashes} acked {} delivered {delivered} lost {lost} image end {}",
        acked.len(),
        image.provenance.last_offset
    );
    for q in sim.up() {
        q.raft.shutdown().await.unwrap();
    }
}

/// Logs what `SIM_LOG` asks for (a tracing filter) to the test's output.
fn sim_log() {
    let filter: tracing_subscriber::filter::Targets = std::env::var("SIM_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(
        tracing_subscriber::layer::SubscriberExt::with(
            // The fmt subscriber's own filter passes everything: SIM_LOG's directives are the
            // filter (its default, INFO, hid every debug and trace line SIM_LOG asked for).
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_test_writer()
                .finish(),
            filter,
        ),
    );
}

/// `run` of seeds 1 to `seeds` (or of `SIM_SEED` alone), each on a paused clock.
fn run_seeds(seeds: u64, settings: MetadataLogSettings) {
    sim_log();
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (1..=seeds).collect(),
    };
    for seed in seeds {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(seed, settings.clone()));
    }
}

#[test]
fn three_nodes_agree_through_loss_delay_and_leader_crashes() {
    run_seeds(8, MetadataLogSettings::default());
}

/// The same runs with a snapshot after every write and the logs cut behind them: nodes crashed
/// and restarted start from their snapshots, and those behind are sent the leader's.
#[test]
fn three_nodes_agree_with_snapshots_through_loss_delay_and_leader_crashes() {
    run_seeds(4, snapshot_often());
}

/// Waits (on the paused clock) until `done`, checking every 100 ms.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .is_err()
    {
        panic!("never: {what}");
    }
}

/// Settings that snapshot after every write and keep only the newest snapshot and the log
/// after it, in small segments (so that whole segments go).
fn snapshot_often() -> MetadataLogSettings {
    MetadataLogSettings {
        max_bytes_between_snapshots: 1,
        max_snapshot_interval_ms: 0,
        retention_bytes: 0,
        retention_ms: -1,
        segment_bytes: 1024,
    }
}

/// KRaft's snapshots in a quorum: a node down while the others snapshot and drop their logs
/// before the snapshots comes back behind their log start; the leader sends it its snapshot
/// (its checkpoint file, byte for byte), and it goes on from there to the others' image. A
/// node restarted then starts from its newest snapshot (its log no longer starts at 0).
#[test]
fn a_node_behind_the_log_start_catches_up_from_a_snapshot() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let root = sim_dir();
        let mut sim = Sim::new(11, root.path());
        sim.settings = snapshot_often();
        for id in 1..=3 {
            sim.start(id).await;
        }
        quiesce(&sim).await;
        let leader = sim.leader().expect("a leader after quiescence");
        let down = sim.up().into_iter().find(|q| q.id != leader.id).unwrap();
        let behind = down.store.end_offset();
        sim.crash(down.id).await;
        for n in 0..100u128 {
            let name = format!("t{n}");
            leader
                .append(topic(&name, n), None, n as i64)
                .await
                .unwrap();
        }
        until("the others' logs start past the down node's end", || {
            sim.up().iter().all(|q| q.store.start_offset() > behind)
        })
        .await;
        let dir = sim.dirs[&leader.id].join("__cluster_metadata-0");
        let segments = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
            .count();
        assert!(
            segments < 10,
            "whole segments below the log start deleted: {segments} left"
        );

        sim.start(down.id).await;
        quiesce(&sim).await;
        let up = sim.up();
        let back = up.iter().find(|q| q.id == down.id).unwrap();
        assert_eq!(*back.image(), *leader.image());
        assert!(back.image().topics.get_by_name("t99").is_some());
        // Its log starts where the snapshot it was sent ends, and that file is the leader's.
        let start = back.store.start_offset();
        assert!(start > behind, "{start} > {behind}");
        let files = back.store.snapshot_files();
        let ids = files.ids().unwrap();
        assert!(
            ids.iter().any(|id| id.end_offset == start),
            "{ids:?} {start}"
        );
        let sent = ids.iter().find(|id| id.end_offset == start).unwrap();
        let leaders = leader.store.snapshot_files().path(*sent);
        if leaders.exists() {
            assert_eq!(
                std::fs::read(files.path(*sent)).unwrap(),
                std::fs::read(leaders).unwrap()
            );
        }

        // Every node restarted starts from its newest snapshot, to the same image.
        for id in 1..=3 {
            sim.crash(id).await;
            let q = sim.start(id).await;
            assert!(q.store.start_offset() > 0);
        }
        quiesce(&sim).await;
        let up = sim.up();
        for q in &up[1..] {
            assert_eq!(*q.image(), *up[0].image(), "node {} after a restart", q.id);
        }
        for q in sim.up() {
            q.raft.shutdown().await.unwrap();
        }
    });
}

/// Catalogs over two nodes of a quorum, each `MetadataLog` a `RaftMetadataLog` on its own
/// runtime (real time): a topic the leader's catalog creates is replayed and published on the
/// follower's (its image and its partition logs), and a write on the follower fails, not hangs.
#[test]
fn a_follower_catalog_replays_what_the_leader_commits() {
    use crate::log::LogConfig;
    use crate::metadata::metadata_log::MetadataLog;
    use crate::metadata::quorum::RaftMetadataLog;
    use crate::metadata::Catalog;

    let root = tempfile::tempdir().unwrap();
    let sim = Sim::new(7, root.path());
    let mut logs = Vec::new();
    for id in 1..=3u64 {
        let store = QuorumLogStore::open(Arc::new(FileStorage), &sim.dirs[&id], true, 0).unwrap();
        let (net, voters) = (sim.net.clone(), sim.voters.clone());
        let log = RaftMetadataLog::new(async move {
            let factory = NodeNet {
                from: id,
                net: net.clone(),
            };
            let q = Quorum::start(id, store, factory).await?;
            net.0.lock().up.insert(id, q.clone());
            q.bootstrap(voters).await?;
            Ok(q)
        })
        .unwrap();
        logs.push(log);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = logs[0].quorum().raft.clone();
    let wait = first.wait(Some(Duration::from_secs(60)));
    let leader = rt
        .block_on(wait.metrics(|m| m.current_leader.is_some(), "a leader"))
        .unwrap()
        .current_leader
        .unwrap();
    let follower = if leader == 1 { 2 } else { 1 };
    let take = |logs: &mut Vec<RaftMetadataLog>, id: u64| {
        let at = logs.iter().position(|l| l.quorum().id == id).unwrap();
        logs.remove(at)
    };
    let open = |log: RaftMetadataLog, id: u64| {
        let dir = &sim.dirs[&id];
        let storage = Arc::new(FileStorage);
        let log = Box::new(log);
        Catalog::open_with_log(storage, log, dir, id as i32, LogConfig::default(), true, 0).unwrap()
    };
    let (leader_log, follower_log) = (take(&mut logs, leader), take(&mut logs, follower));
    let follower_q = follower_log.quorum().clone();
    let leader_catalog = open(leader_log, leader);
    // The follower's catalog opens on what it has applied of the leader's start-up records.
    let end = leader_catalog.committed().unwrap().borrow().to_owned();
    let mut applied = follower_q.applied.watch_end_offset();
    rt.block_on(applied.wait_for(|&e| e >= end)).unwrap();
    let follower_catalog = open(follower_log, follower);
    assert_eq!(follower_catalog.image(), leader_catalog.image());

    leader_catalog
        .create("orders", 3, 1, Default::default(), 0)
        .unwrap();
    let end = leader_catalog.committed().unwrap().borrow().to_owned();
    rt.block_on(applied.wait_for(|&e| e >= end)).unwrap();
    follower_catalog.catch_up().unwrap();
    let orders = follower_catalog
        .get("orders")
        .expect("the follower has the topic");
    assert_eq!(orders.partitions.len(), 3);
    assert!(sim.dirs[&follower].join("orders-2").is_dir());
    assert_eq!(follower_catalog.image(), leader_catalog.image());
    // Only the leader takes writes (forwarding comes with the controller listener).
    let refused = follower_catalog.create("other", 1, 1, Default::default(), 0);
    assert!(refused.is_err());
    assert!(follower_catalog.get("other").is_none());
    leader_catalog.close_metadata_log(0).unwrap();
    follower_catalog.close_metadata_log(0).unwrap();
    for log in logs {
        log.close(0).unwrap();
    }
}
