//! A simulation of the active controller over the faulted quorum (issue 15): three nodes, each
//! with its broker (combined processes), on `simulation`'s in-memory network (messages lost,
//! delayed and reordered, the quorum's leader crashed and restarted) and tokio's paused clock.
//!
//! The brokers register (a write forwarded to the leader, decided on their own node's image),
//! heartbeat to the node they believe leads, stop for a while (their session expires and the
//! controller fences them) and come back (a heartbeat unfences them); the partitions' leaders
//! ask the controller to shrink and expand their ISRs, with the epochs they know (stale when an
//! answer was lost or their image lags) and, now and then, a request of theirs delivered late;
//! topics of three replicas are created through any node. The controller is whichever node
//! leads when a request arrives: it decides on its own applied image with the broker's own
//! functions (`broker_heartbeat::decide`, `BrokerHeartbeatManager::expired`,
//! `broker_heartbeat::fence_expired`, `alter_partition::alter_partition`, the catalog's
//! placement), one decision at a time per node as the catalog's lock has it, and appends with
//! the offset it decided on (`Quorum::append_here`, the compare-and-append); a refused decision
//! is decided again on the caught-up image, as `Catalog::decide` does.
//!
//! Every decision carries a unique append time, its id in the simulation's journal, so that the
//! checker finds it in the log. After quiescence every node holds the same log and image, and
//! replaying that log batch by batch: every acknowledged decision is there, each was applied on
//! the very image it was decided on, and the controller's invariants hold after every batch
//! (`check_batch`). A calm end (no faults, every broker back) checks that the cluster heals
//! (every broker unfenced, every partition led with its whole ISR), that a broker silent there
//! is fenced as its session expires, and that the cluster heals again once it is back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::{quiesce, sim_dir, Rng, Sim};
use crate::metadata::alter_partition::{alter_partition, AlterPartitionRequest};
use crate::metadata::broker_heartbeat::{
    self, BrokerHeartbeat, BrokerHeartbeatManager, HeartbeatReply,
};
use crate::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::metadata::election::ElectionPolicy;
use crate::metadata::image::{MetadataImage, ReplayError};
use crate::metadata::metadata_log::{replay_batch, MetadataBatch, MetadataLogError};
use crate::metadata::quorum::{MetadataEntry, NodeId, Quorum};
use crate::metadata::records::{MetadataRecord, RegisterBrokerRecord, NO_LEADER};
use crate::metadata::topic::TopicFile;
use crate::metadata::{place, topic_records, Assignment, MAX_DECISIONS};
use crate::protocol::errors;

/// broker.session.timeout.ms and broker.heartbeat.interval.ms, a third of Kafka's (9000 and
/// 2000), so that more sessions pass per simulated minute.
const SESSION_TIMEOUT_MS: i64 = 3000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(700);
/// How often the active controller looks for expired sessions (`lib.rs`'s LIVENESS_CHECK).
const LIVENESS_CHECK: Duration = Duration::from_millis(250);
/// How long a write waits for the quorum before its writer gives up (its outcome unknown).
const APPEND_WAIT: Duration = Duration::from_secs(5);
/// Steps of the fault schedule, and how long the calm that follows may take to heal the cluster
/// (simulated time: a few sessions, elections and ISR expansions).
const STEPS: usize = 250;
const CALM: Duration = Duration::from_secs(60);
/// Topics are created with this many partitions of three replicas.
const PARTITIONS: i32 = 3;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a decision was about.
#[derive(Debug, Clone)]
enum Kind {
    /// Broker `id` registered (forwarded from its node).
    Register(i32),
    Heartbeat(BrokerHeartbeat),
    /// The controller fenced a broker whose session expired at this epoch.
    Expired(i32, i64),
    AlterPartition(AlterPartitionRequest),
    /// Forwarded from a node.
    CreateTopic(String),
}

/// A decision as it was appended: on which image, and what the quorum answered.
#[derive(Debug)]
struct Decision {
    kind: Kind,
    records: Vec<MetadataRecord>,
    decided_on: i64,
    /// The offset of its last record, once acknowledged.
    acked: Option<i64>,
}

#[derive(Default)]
struct Journal {
    /// By id (the batch's append time).
    decisions: BTreeMap<i64, Decision>,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    acked: u64,
    /// Decisions the quorum refused as decided on a stale image.
    stale: u64,
    /// Appends that failed or timed out (outcome unknown).
    failed: u64,
    crashes: u64,
    pauses: u64,
    late_requests: u64,
    /// The controller's AlterPartition answers by error code.
    alter: BTreeMap<i16, u64>,
    /// Heartbeat answers by error code.
    heartbeats: BTreeMap<i16, u64>,
    /// From the log: brokers fenced as their session expired, brokers unfenced, leaders
    /// elected.
    expired: u64,
    unfences: u64,
    elections: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.acked += o.acked;
        self.stale += o.stale;
        self.failed += o.failed;
        self.crashes += o.crashes;
        self.pauses += o.pauses;
        self.late_requests += o.late_requests;
        self.expired += o.expired;
        self.unfences += o.unfences;
        self.elections += o.elections;
        for (k, v) in &o.alter {
            *self.alter.entry(*k).or_default() += v;
        }
        for (k, v) in &o.heartbeats {
            *self.heartbeats.entry(*k).or_default() += v;
        }
    }
}

/// One node's controller: what `Broker` keeps for it (the heartbeat manager, whose lock
/// `Broker` holds across each liveness event: here `events`, as the manager's own lock may not
/// be held across an await) and the catalog's lock (one decision at a time).
struct Controller {
    quorum: Quorum,
    liveness: Mutex<BrokerHeartbeatManager>,
    events: tokio::sync::Mutex<()>,
    deciding: tokio::sync::Mutex<()>,
}

/// A broker as the simulation drives it.
struct BrokerState {
    incarnation: Uuid,
    /// Its registration in this incarnation is acknowledged: it heartbeats.
    registered: bool,
    /// It sends nothing until then (a process paused).
    paused_until: Instant,
    /// Per partition it leads, the (leader epoch, partition epoch, ISR) the controller last
    /// answered (`Partition::on_alter_partition_answer`).
    answers: BTreeMap<(Uuid, i32), (i32, i32, Vec<i32>)>,
    /// The last AlterPartition it sent, which the fault schedule delivers again late.
    last_alter: Option<AlterPartitionRequest>,
}

struct World {
    sim: Sim,
    start: Instant,
    policy: ElectionPolicy,
    controllers: Mutex<BTreeMap<NodeId, Arc<Controller>>>,
    brokers: Mutex<BTreeMap<i32, BrokerState>>,
    journal: Mutex<Journal>,
    stats: Mutex<Stats>,
    stopping: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    incarnations: Mutex<u128>,
}

impl World {
    fn now_ms(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn node(&self, id: NodeId) -> Option<Quorum> {
        self.sim.net.0.lock().up.get(&id).cloned()
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.lock().push(tokio::spawn(task));
    }

    /// The network's weather for one exchange: whether the request and the answer are lost,
    /// and how long each takes.
    fn weather(&self) -> (bool, bool, Duration, Duration) {
        let mut s = self.sim.net.0.lock();
        let (loss, max) = (s.loss, s.max_delay_ms);
        let lose = (s.rng.chance(loss), s.rng.chance(loss));
        (
            lose.0,
            lose.1,
            ms(s.rng.below(max + 1)),
            ms(s.rng.below(max + 1)),
        )
    }

    fn new_incarnation(&self) -> Uuid {
        let mut n = self.incarnations.lock();
        *n += 1;
        Uuid::from_u128(0x1_0000 + *n)
    }

    /// Starts node `id` (as after a crash) with a controller of its own, and its broker as a
    /// new incarnation that has yet to register.
    async fn start_node(self: &Arc<Self>, id: NodeId) {
        let quorum = self.sim.start(id).await;
        let controller = Arc::new(Controller {
            quorum,
            liveness: Mutex::new(BrokerHeartbeatManager::new(SESSION_TIMEOUT_MS)),
            events: tokio::sync::Mutex::new(()),
            deciding: tokio::sync::Mutex::new(()),
        });
        self.controllers.lock().insert(id, Arc::clone(&controller));
        let broker = BrokerState {
            incarnation: self.new_incarnation(),
            registered: false,
            paused_until: Instant::now(),
            answers: BTreeMap::new(),
            last_alter: None,
        };
        self.brokers.lock().insert(id as i32, broker);
        let world = Arc::clone(self);
        self.spawn(async move { controller_task(world, controller).await });
    }

    async fn crash(&self, id: NodeId) {
        self.controllers.lock().remove(&id);
        self.sim.crash(id).await;
        self.stats.lock().crashes += 1;
    }

    fn set_paused_until(&self, id: i32, until: Instant) {
        if let Some(b) = self.brokers.lock().get_mut(&id) {
            b.paused_until = until;
        }
    }

    /// A broker's replica is behind (its leader would see it lag): its node is down, it has not
    /// registered since it started, or it is paused.
    fn lagging(&self, id: i32) -> bool {
        let up = self.node(id as NodeId).is_some();
        let brokers = self.brokers.lock();
        let b = &brokers[&id];
        !up || !b.registered || b.paused_until > Instant::now()
    }

    /// Appends a decision made on `image` through `via` (which must lead), conditional on that
    /// image; journaled first, so that the checker knows every batch the log may hold.
    async fn commit(
        &self,
        via: &Quorum,
        kind: Kind,
        records: Vec<MetadataRecord>,
        image: &MetadataImage,
    ) -> Result<i64, MetadataLogError> {
        let decided_on = image.provenance.last_offset;
        let id = {
            let mut journal = self.journal.lock();
            let id = journal.decisions.len() as i64 + 1;
            let decision = Decision {
                kind,
                records: records.clone(),
                decided_on,
                acked: None,
            };
            journal.decisions.insert(id, decision);
            id
        };
        let entry = MetadataEntry {
            records,
            append_time_ms: id,
            decided_on: Some(decided_on),
        };
        let appended = tokio::time::timeout(APPEND_WAIT, via.append_here(entry))
            .await
            .unwrap_or_else(|_| Err(MetadataLogError::Quorum("timed out".into())));
        let mut stats = self.stats.lock();
        match &appended {
            Ok(last) => {
                stats.acked += 1;
                let mut journal = self.journal.lock();
                if let Some(d) = journal.decisions.get_mut(&id) {
                    d.acked = Some(*last);
                }
            }
            Err(MetadataLogError::StaleImage(_)) => stats.stale += 1,
            Err(_) => stats.failed += 1,
        }
        appended
    }

    /// A write of node `origin`'s catalog (not the controller's): decided on that node's image
    /// and forwarded to the leader it knows of, whose log takes it as its own decisions
    /// (`transport::serve` calls `append_here`); refused as stale, the node waits to have
    /// applied what made it so and decides again (`Quorum::append`, `Catalog::decide`).
    /// `None` when the outcome is unknown or the decision is to write nothing.
    async fn forward<R>(
        &self,
        origin: NodeId,
        kind: Kind,
        mut decide: impl FnMut(&MetadataImage) -> Option<(Vec<MetadataRecord>, R)>,
    ) -> Option<R> {
        for _ in 0..MAX_DECISIONS {
            let node = self.node(origin)?;
            let image = node.image();
            let (records, answer) = decide(&image)?;
            let leader = node.raft.metrics().borrow().current_leader;
            let Some(leader) = leader.and_then(|l| self.node(l)) else {
                tokio::time::sleep(ms(200)).await;
                continue;
            };
            let (lose_request, lose_answer, there, back) = self.weather();
            tokio::time::sleep(there).await;
            if lose_request {
                return None;
            }
            let appended = self.commit(&leader, kind.clone(), records, &image).await;
            tokio::time::sleep(back).await;
            if lose_answer {
                return None;
            }
            let until = match appended {
                Ok(last) => last + 1,
                Err(MetadataLogError::StaleImage(end)) => end,
                Err(_) => return None,
            };
            let mut applied = node.applied.watch_end_offset();
            let caught_up = applied.wait_for(|&e| e >= until);
            if !matches!(
                tokio::time::timeout(APPEND_WAIT, caught_up).await,
                Ok(Ok(_))
            ) {
                return None;
            }
            if appended.is_ok() {
                return Some(answer);
            }
        }
        None
    }

    /// A broker's request to the active controller: sent to the node its own node believes
    /// leads, delayed and maybe lost either way; that node answers NOT_CONTROLLER unless it
    /// leads (`Quorum::answer_controller_request`). `None`: no answer came back.
    async fn to_controller(
        &self,
        from: NodeId,
        request: ControllerRequest,
    ) -> Option<ControllerResponse> {
        let leader = self.node(from)?.raft.metrics().borrow().current_leader?;
        let (lose_request, lose_answer, there, back) = self.weather();
        tokio::time::sleep(there).await;
        let controller = self.controllers.lock().get(&leader).cloned();
        if lose_request || controller.is_none() {
            return None;
        }
        let answer = controller?.handle(self, request).await;
        tokio::time::sleep(back).await;
        if lose_answer || self.node(from).is_none() {
            return None;
        }
        Some(answer)
    }
}

impl Controller {
    fn id(&self) -> NodeId {
        self.quorum.id
    }

    /// `Broker::handle` (as `ControllerDuties`) on a node that leads.
    async fn handle(&self, world: &World, request: ControllerRequest) -> ControllerResponse {
        let leads = self.quorum.raft.metrics().borrow().current_leader == Some(self.id());
        if !leads {
            return ControllerResponse::Error(errors::NOT_CONTROLLER);
        }
        match request {
            ControllerRequest::BrokerHeartbeat(hb) => {
                ControllerResponse::BrokerHeartbeat(self.heartbeat(world, hb).await)
            }
            ControllerRequest::AlterPartition(r) => {
                let kind = Kind::AlterPartition(r.clone());
                let decide = |image: &MetadataImage| Ok(alter_partition(image, &r, &world.policy));
                match self.decide(world, kind, decide).await {
                    Some(answer) => ControllerResponse::AlterPartition(answer),
                    None => ControllerResponse::Error(errors::UNKNOWN_SERVER_ERROR),
                }
            }
        }
    }

    /// `Broker::answer_heartbeat`: the sessions that passed by its arrival end first, then it
    /// is decided and committed, and the broker's session starts again; one liveness event at
    /// a time (`events`).
    async fn heartbeat(&self, world: &World, hb: BrokerHeartbeat) -> HeartbeatReply {
        let _one_at_a_time = self.events.lock().await;
        let now = world.now_ms();
        self.fence_expired_at(world, now).await;
        let (id, epoch) = (hb.broker_id, hb.broker_epoch);
        let decide = |image: &MetadataImage| {
            let progress = self.liveness.lock().shutdown_progress(image, id, epoch);
            broker_heartbeat::decide(image, &hb, &world.policy, progress)
        };
        let reply = self
            .decide(world, Kind::Heartbeat(hb.clone()), decide)
            .await;
        let reply = reply.unwrap_or(HeartbeatReply::error(errors::UNKNOWN_SERVER_ERROR));
        let end = self.quorum.image().provenance.last_offset;
        self.liveness.lock().answered(&hb, &reply, now, end);
        reply
    }

    /// `Broker::fence_expired_brokers`, one liveness event at a time.
    async fn fence_expired_brokers(&self, world: &World) {
        let _one_at_a_time = self.events.lock().await;
        self.fence_expired_at(world, world.now_ms()).await;
    }

    /// `Broker::fence_expired_at` with `Catalog::fence_expired_broker`.
    async fn fence_expired_at(&self, world: &World, now: i64) {
        let state = self.quorum.quorum_state();
        let expired = {
            let mut liveness = self.liveness.lock();
            match state.leader_id == self.id() as i32 {
                true => liveness.activate(state.leader_epoch),
                false => liveness.deactivate(),
            }
            liveness.expired(&self.quorum.image(), now)
        };
        for (id, epoch) in expired {
            let decide = |image: &MetadataImage| {
                Ok(broker_heartbeat::fence_expired(
                    image,
                    id,
                    epoch,
                    &world.policy,
                ))
            };
            self.decide(world, Kind::Expired(id, epoch), decide).await;
        }
    }

    /// `Catalog::decide_as_controller`: decided on this node's applied image (everything it
    /// committed is applied here), committed on that image's condition, decided again while the
    /// quorum refuses it as stale. `None` when it could not be committed.
    async fn decide<R>(
        &self,
        world: &World,
        kind: Kind,
        mut decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), ReplayError>,
    ) -> Option<R> {
        let _one_at_a_time = self.deciding.lock().await;
        for _ in 0..MAX_DECISIONS {
            let image = self.quorum.image();
            let (records, answer) = decide(&image).expect("a decision replays on its image");
            if records.is_empty() {
                return Some(answer);
            }
            match world
                .commit(&self.quorum, kind.clone(), records, &image)
                .await
            {
                Ok(_) => return Some(answer),
                Err(MetadataLogError::StaleImage(_)) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

/// The controller of one node (while it is up): looks for expired sessions.
async fn controller_task(world: Arc<World>, controller: Arc<Controller>) {
    while !world.stopping() {
        tokio::time::sleep(LIVENESS_CHECK).await;
        let current = world.controllers.lock().get(&controller.id()).cloned();
        if !current.is_some_and(|c| Arc::ptr_eq(&c, &controller)) {
            return;
        }
        controller.fence_expired_brokers(&world).await;
    }
}

/// Broker `id`: registers once its node is up, then heartbeats and asks for its partitions' ISR
/// changes every heartbeat interval (unless paused).
async fn broker_task(world: Arc<World>, id: i32) {
    while !world.stopping() {
        tokio::time::sleep(HEARTBEAT_INTERVAL).await;
        if world.node(id as NodeId).is_none() {
            continue;
        }
        let (incarnation, registered, paused) = {
            let brokers = world.brokers.lock();
            let b = &brokers[&id];
            (b.incarnation, b.registered, b.paused_until > Instant::now())
        };
        if paused {
            continue;
        }
        if !registered {
            register(&world, id, incarnation).await;
            continue;
        }
        heartbeat(&world, id).await;
        update_isrs(&world, id).await;
    }
}

/// `Catalog::register_fenced` through the broker's node.
async fn register(world: &World, id: i32, incarnation: Uuid) {
    let mut record = RegisterBrokerRecord::bare(id, 0, true);
    record.incarnation_id = incarnation;
    let decide = |image: &MetadataImage| {
        let records = broker_heartbeat::register_fenced(image, record.clone(), &world.policy);
        Some((records, ()))
    };
    let registered = world
        .forward(id as NodeId, Kind::Register(id), decide)
        .await;
    let mut brokers = world.brokers.lock();
    let b = brokers.get_mut(&id).expect("every broker has a state");
    if b.incarnation == incarnation {
        match registered {
            Some(()) => b.registered = true,
            // A process whose registration fails stops; it starts again as a new incarnation.
            None => b.incarnation = world.new_incarnation(),
        }
    }
}

/// `Broker::send_heartbeat`: the broker's epoch and applied offset as its node's image has them.
async fn heartbeat(world: &World, id: i32) {
    let Some(node) = world.node(id as NodeId) else {
        return;
    };
    let image = node.image();
    let Some(reg) = image.brokers.get(&id) else {
        return;
    };
    let hb = BrokerHeartbeat {
        broker_id: id,
        broker_epoch: reg.epoch,
        current_metadata_offset: image.provenance.last_offset,
        want_shut_down: false,
    };
    let request = ControllerRequest::BrokerHeartbeat(hb);
    if let Some(answer) = world.to_controller(id as NodeId, request).await {
        *world
            .stats
            .lock()
            .heartbeats
            .entry(answer.error_code())
            .or_default() += 1;
    }
}

/// `Broker::update_isrs` with `Partition::propose_isr_change`: for each partition the broker
/// leads (as its node's image, or a later answer of the controller, has it), the replicas that
/// lag leave the ISR, else one that caught up and is eligible joins.
async fn update_isrs(world: &World, id: i32) {
    let Some(node) = world.node(id as NodeId) else {
        return;
    };
    let image = node.image();
    let led: Vec<_> = image
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |(&p, reg)| (t.id, p, reg)))
        .filter(|(_, _, reg)| reg.leader == id)
        .collect();
    for (topic_id, partition, reg) in led {
        let answered = world.brokers.lock()[&id]
            .answers
            .get(&(topic_id, partition))
            .filter(|(le, pe, _)| *le == reg.leader_epoch && *pe > reg.partition_epoch)
            .cloned();
        let (leader_epoch, partition_epoch, isr) =
            answered.unwrap_or((reg.leader_epoch, reg.partition_epoch, reg.isr.clone()));
        let eligible = |r: i32| {
            (image.brokers.get(&r)).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
        };
        let lagging: Vec<i32> = (isr.iter().copied())
            .filter(|&r| r != id && world.lagging(r))
            .collect();
        let joining = (reg.replicas.iter().copied())
            .find(|&r| !isr.contains(&r) && !world.lagging(r) && eligible(r));
        let new_isr: Vec<i32> = match (lagging.is_empty(), joining) {
            (false, _) => isr
                .iter()
                .copied()
                .filter(|r| !lagging.contains(r))
                .collect(),
            (true, Some(r)) => isr.iter().copied().chain([r]).collect(),
            (true, None) => continue,
        };
        let epoch_of = |r: i32| image.brokers.get(&r).map_or(-1, |b| b.epoch);
        let request = AlterPartitionRequest {
            broker_id: id,
            broker_epoch: epoch_of(id),
            topic_id,
            partition,
            leader_epoch,
            partition_epoch,
            new_isr: new_isr.iter().map(|&r| (r, epoch_of(r))).collect(),
        };
        if let Some(b) = world.brokers.lock().get_mut(&id) {
            b.last_alter = Some(request.clone());
        }
        send_alter_partition(world, request).await;
    }
}

/// Sends an AlterPartition and gives the answer to the broker's partition state.
async fn send_alter_partition(world: &World, request: AlterPartitionRequest) {
    let id = request.broker_id;
    let sent = ControllerRequest::AlterPartition(request.clone());
    let Some(answer) = world.to_controller(id as NodeId, sent).await else {
        return;
    };
    *world
        .stats
        .lock()
        .alter
        .entry(answer.error_code())
        .or_default() += 1;
    let ControllerResponse::AlterPartition(a) = answer else {
        return;
    };
    let newer =
        a.leader_epoch == request.leader_epoch && a.partition_epoch > request.partition_epoch;
    if a.error_code == errors::NONE && newer {
        let key = (request.topic_id, request.partition);
        if let Some(b) = world.brokers.lock().get_mut(&id) {
            b.answers
                .insert(key, (a.leader_epoch, a.partition_epoch, a.isr.clone()));
        }
    }
}

/// `Catalog::create` of topic `name` through node `origin`: placed on the registered brokers
/// (every one, a replicated topic in a quorum of processes), TOPIC_ALREADY_EXISTS or
/// INVALID_REPLICATION_FACTOR writing nothing.
async fn create_topic(world: &World, origin: NodeId, n: u128) {
    let name = format!("t{n}");
    let decide = |image: &MetadataImage| {
        if image.topics.get_by_name(&name).is_some() {
            return None;
        }
        let assignment = Assignment::Placed {
            partitions: PARTITIONS,
            replication_factor: 3,
        };
        let placed = place(&image.brokers, &assignment, 0).ok()?;
        let desc = TopicFile {
            name: name.clone(),
            topic_id: Uuid::from_u128(0x7000 + n),
            partitions: PARTITIONS,
            configs: BTreeMap::new(),
        };
        Some((topic_records(&desc, 0, &placed), ()))
    };
    world
        .forward(origin, Kind::CreateTopic(name.clone()), decide)
        .await;
}

/// One seeded run; returns what happened.
async fn run(seed: u64) -> Stats {
    let root = sim_dir();
    let world = Arc::new(World {
        sim: Sim::new(seed, root.path()),
        start: Instant::now(),
        policy: ElectionPolicy {
            // A quorum of processes: followers rejoin ISRs through their leaders.
            isr_by_leaders: true,
            ..ElectionPolicy::default()
        },
        controllers: Mutex::default(),
        brokers: Mutex::default(),
        journal: Mutex::default(),
        stats: Mutex::default(),
        stopping: AtomicBool::new(false),
        tasks: Mutex::default(),
        incarnations: Mutex::new(0),
    });
    for id in 1..=3 {
        world.start_node(id).await;
    }
    for id in 1..=3 {
        let w = Arc::clone(&world);
        world.spawn(async move { broker_task(w, id).await });
    }
    // The fault schedule has a generator of its own: the same seed, the same faults.
    let mut plan = Rng(seed ^ 0x5EED_C0A7_0001);
    let mut down: Option<NodeId> = None;
    let mut topics = 0u128;
    for _ in 0..STEPS {
        tokio::time::sleep(ms(100 + plan.below(400))).await;
        match plan.below(16) {
            0 => world.sim.set_faults(plan.below(26), plan.below(300)),
            1 if down.is_none() => {
                if let Some(leader) = world.sim.leader() {
                    world.crash(leader.id).await;
                    down = Some(leader.id);
                }
            }
            2 | 3 => {
                if let Some(id) = down.take() {
                    world.start_node(id).await;
                }
            }
            4 => {
                // A broker stops for a while: past its session (fenced) or not.
                let id = 1 + plan.below(3) as i32;
                let pause = plan.below(2 * SESSION_TIMEOUT_MS as u64) + 1000;
                world.set_paused_until(id, Instant::now() + ms(pause));
                world.stats.lock().pauses += 1;
            }
            5..=7 => {
                topics += 1;
                let origin = 1 + plan.below(3);
                let w = Arc::clone(&world);
                world.spawn(async move { create_topic(&w, origin, topics).await });
            }
            8 => {
                // A request of a partition's leader delivered again, late.
                let id = 1 + plan.below(3) as i32;
                let late = world.brokers.lock()[&id].last_alter.clone();
                if let Some(request) = late {
                    world.stats.lock().late_requests += 1;
                    let w = Arc::clone(&world);
                    world.spawn(async move { send_alter_partition(&w, request).await });
                }
            }
            _ => {}
        }
    }
    // Calm: no faults, every node and broker back; the cluster heals.
    world.sim.set_faults(0, 0);
    if let Some(id) = down.take() {
        world.start_node(id).await;
    }
    for id in 1..=3 {
        world.set_paused_until(id, Instant::now());
    }
    heal(&world, seed).await;
    // In the calm, one broker stops for good: its session expires at a controller that stays,
    // which fences it; it comes back, is unfenced, and the cluster heals again. (In the faulted
    // schedule a leader crash may give every paused broker a new session first.)
    let stopped = 1 + plan.below(3) as i32;
    world.set_paused_until(stopped, Instant::now() + Duration::from_secs(3600));
    let fenced = |q: &Quorum| q.image().brokers.get(&stopped).is_some_and(|b| b.fenced);
    until(&world, seed, "a silent broker fenced", fenced).await;
    world.set_paused_until(stopped, Instant::now());
    heal(&world, seed).await;
    world.stopping.store(true, Ordering::Relaxed);
    loop {
        let tasks: Vec<_> = world.tasks.lock().drain(..).collect();
        if tasks.is_empty() {
            break;
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    quiesce(&world.sim).await;
    let stats = check(seed, &world);
    for q in world.sim.up() {
        q.raft.shutdown().await.unwrap();
    }
    stats
}

/// Waits (on the paused clock, at most CALM) until the leader's image is `what`.
async fn until(world: &World, seed: u64, what: &str, done: impl Fn(&Quorum) -> bool) {
    let wait = async {
        loop {
            tokio::time::sleep(ms(500)).await;
            if world.sim.leader().is_some_and(|q| done(&q)) {
                break;
            }
        }
    };
    if tokio::time::timeout(CALM, wait).await.is_err() {
        let image = world.sim.leader().map(|q| q.image());
        let healed = image.map(|i| healed(&i));
        panic!("seed {seed}: not {what} after {CALM:?} of calm: {healed:?}");
    }
}

/// Waits until the cluster is `healed`.
async fn heal(world: &World, seed: u64) {
    until(world, seed, "healed", |q| healed(&q.image()).is_ok()).await;
}

/// The checks after quiescence (see the module comment); returns the run's figures.
fn check(seed: u64, world: &World) -> Stats {
    let up = world.sim.up();
    assert_eq!(up.len(), 3, "seed {seed}");
    let batches = up[0].read(0).unwrap();
    for q in &up[1..] {
        assert_eq!(*q.image(), *up[0].image(), "seed {seed}: node {}", q.id);
        assert_eq!(
            q.read(0).unwrap(),
            batches,
            "seed {seed}: node {}'s log",
            q.id
        );
    }
    let journal = world.journal.lock();
    let mut stats = world.stats.lock().clone();
    let mut image = Arc::new(MetadataImage::empty());
    let mut applied = BTreeMap::new();
    for batch in &batches {
        let after = Arc::new(replay_batch(Arc::clone(&image), batch, 0).unwrap());
        // The barriers of `quiesce` are the only writes that are not decisions.
        let decision = match batch.append_time_ms {
            0 => None,
            id => {
                let d = journal.decisions.get(&id);
                let d = d.unwrap_or_else(|| panic!("seed {seed}: batch {batch:?} not decided"));
                assert!(
                    applied.insert(id, batch.last_offset()).is_none(),
                    "seed {seed}: decision {id} applied twice"
                );
                assert_eq!(batch.records, d.records, "seed {seed}: decision {id}");
                // The compare-and-append held: applied on the image it was decided on.
                assert_eq!(
                    image.provenance.last_offset, d.decided_on,
                    "seed {seed}: decision {id} ({:?}) decided on offset {} but applied after {}",
                    d.kind, d.decided_on, image.provenance.last_offset
                );
                Some(d)
            }
        };
        check_batch(seed, &image, &after, batch, decision, &mut stats);
        image = after;
    }
    assert_eq!(
        *image,
        *up[0].image(),
        "seed {seed}: the log replays to the image"
    );
    for (id, d) in &journal.decisions {
        if let Some(last) = d.acked {
            assert_eq!(
                applied.get(id),
                Some(&last),
                "seed {seed}: acknowledged decision {id} ({:?}) is not in the log",
                d.kind
            );
        }
    }
    // The calm healed the cluster, and it stays healed.
    if let Err(why) = healed(&image) {
        panic!("seed {seed}: {why}");
    }
    stats
}

/// Every broker registered and unfenced, every partition led with its whole ISR.
fn healed(image: &MetadataImage) -> Result<(), String> {
    if image.brokers.len() != 3 {
        return Err(format!("brokers {:?}", image.brokers.keys()));
    }
    if let Some(b) = image.brokers.values().find(|b| b.fenced) {
        return Err(format!("broker {} fenced", b.id));
    }
    for t in image.topics.iter() {
        for (p, reg) in &t.partitions {
            let mut isr = reg.isr.clone();
            isr.sort_unstable();
            let mut replicas = reg.replicas.clone();
            replicas.sort_unstable();
            if reg.leader == NO_LEADER || isr != replicas {
                return Err(format!("{}-{p}: {reg:?}", t.name));
            }
        }
    }
    Ok(())
}

/// The controller's invariants across one batch of the log, `before` to `after`.
fn check_batch(
    seed: u64,
    before: &MetadataImage,
    after: &MetadataImage,
    batch: &MetadataBatch,
    decision: Option<&Decision>,
    stats: &mut Stats,
) {
    let at = batch.base_offset;
    let kind = decision.map(|d| &d.kind);
    match kind {
        // Accepted only on the partition as its leader knew it.
        Some(Kind::AlterPartition(r)) => {
            let reg = &before.topics.get(r.topic_id).unwrap().partitions[&r.partition];
            assert_eq!(
                (reg.leader, reg.leader_epoch, reg.partition_epoch),
                (r.broker_id, r.leader_epoch, r.partition_epoch),
                "seed {seed}: AlterPartition at {at} accepted on another partition state"
            );
        }
        Some(Kind::Expired(id, epoch)) => {
            let b = &before.brokers[id];
            assert!(
                !b.fenced && b.epoch == *epoch,
                "seed {seed}: {id} fenced at {at} for a session it no longer had"
            );
        }
        Some(Kind::CreateTopic(name)) => {
            assert!(
                before.topics.get_by_name(name).is_none(),
                "seed {seed}: {name} created twice"
            );
        }
        _ => {}
    }
    for (id, b) in after.brokers.iter() {
        // Registered only by the broker itself, fenced.
        let registered = matches!(kind, Some(Kind::Register(r)) if r == id);
        let Some(old) = before.brokers.get(id) else {
            assert!(registered && b.fenced, "seed {seed}: broker {id} at {at}");
            continue;
        };
        assert!(
            b.epoch >= old.epoch,
            "seed {seed}: broker {id}'s epoch went back at {at}"
        );
        if b.incarnation_id != old.incarnation_id || b.epoch != old.epoch {
            assert!(
                registered && b.epoch > old.epoch && b.fenced,
                "seed {seed}: broker {id} registered again at {at} by {kind:?}"
            );
        }
        if b.fenced && !old.fenced && matches!(kind, Some(Kind::Expired(..))) {
            stats.expired += 1;
        }
        if old.fenced && !b.fenced {
            // Unfenced only by a heartbeat of that broker, at its epoch, caught up with its
            // registration.
            stats.unfences += 1;
            let by_heartbeat = matches!(kind, Some(Kind::Heartbeat(hb))
                if hb.broker_id == *id
                    && hb.broker_epoch == b.epoch
                    && hb.current_metadata_offset >= b.epoch);
            assert!(
                by_heartbeat,
                "seed {seed}: broker {id} unfenced at {at} by {kind:?}"
            );
        }
    }
    for t in after.topics.iter() {
        for (p, reg) in &t.partitions {
            let name = format!("{}-{p} at {at} (by {kind:?})", t.name);
            let mut seen = reg.isr.clone();
            seen.sort_unstable();
            seen.dedup();
            assert!(
                !reg.isr.is_empty() && seen.len() == reg.isr.len(),
                "seed {seed}: {name}: ISR {:?}",
                reg.isr
            );
            assert!(
                reg.isr.iter().all(|r| reg.replicas.contains(r)),
                "seed {seed}: {name}: ISR {:?} not within replicas {:?}",
                reg.isr,
                reg.replicas
            );
            if reg.leader != NO_LEADER {
                assert!(
                    reg.isr.contains(&reg.leader),
                    "seed {seed}: {name}: leader {} outside ISR {:?}",
                    reg.leader,
                    reg.isr
                );
            }
            // A fenced broker leads nothing and is in no ISR, but for the last member of an
            // ISR, kept with no leader (the partition comes back clean with it; no ELR).
            for &r in &reg.isr {
                let fenced = after.brokers.get(&r).is_none_or(|b| b.fenced);
                assert!(
                    !fenced || (reg.leader == NO_LEADER && reg.isr == [r]),
                    "seed {seed}: {name}: fenced broker {r} in {reg:?}"
                );
            }
            let Some(old) = before.topics.get(t.id).and_then(|o| o.partitions.get(p)) else {
                continue;
            };
            if reg != old {
                assert!(
                    reg.partition_epoch > old.partition_epoch,
                    "seed {seed}: {name}: changed without a new partition epoch"
                );
            }
            assert!(
                reg.leader_epoch >= old.leader_epoch,
                "seed {seed}: {name}: leader epoch went back"
            );
            if reg.leader != old.leader {
                stats.elections += 1;
                assert!(
                    reg.leader_epoch > old.leader_epoch,
                    "seed {seed}: {name}: new leader {} at the same epoch",
                    reg.leader
                );
            }
        }
    }
}

#[test]
fn the_controller_decides_on_its_image_through_loss_delay_and_leader_crashes() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (1..=8).collect(),
    };
    let mut total = Stats::default();
    for &seed in &seeds {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let stats = rt.block_on(run(seed));
        eprintln!("seed {seed}: {stats:?}");
        // Brokers were fenced as their sessions expired (and, healed, came back).
        assert!(
            stats.acked > 0 && stats.expired > 0 && stats.elections > 0,
            "seed {seed}: nothing happened: {stats:?}"
        );
        total.add(&stats);
    }
    eprintln!("all seeds: {total:?}");
    // The schedule reaches what the checks are about: sessions expire, decisions go stale,
    // leaders ask with stale epochs.
    if seeds.len() > 1 {
        let answered = |code| total.alter.get(&code).is_some_and(|&n| n > 0);
        assert!(
            total.expired > 0
                && total.stale > 0
                && answered(errors::INVALID_UPDATE_VERSION)
                && answered(errors::FENCED_LEADER_EPOCH),
            "{total:?}"
        );
    }
}
