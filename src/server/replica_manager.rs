//! The replica manager of a process of a quorum (Kafka's ReplicaManager.applyDelta, as
//! BrokerMetadataPublisher drives it): each committed metadata change makes this broker the
//! leader or a follower of the partitions it hosts (those whose replicas name it).
//!
//! - Leader (`Partition::become_leader`): a new leader epoch starts a fresh view of the
//!   followers (the log manager has moved the log to the epoch first, so that appends are
//!   stamped with it); the same epoch with a new partition epoch takes the committed ISR.
//! - Follower (`Partition::make_follower`): the partition stops tracking followers and is
//!   fetched from its leader by that leader's replica fetcher (`server::replica_fetcher`); its
//!   log takes epochs and the high watermark from the leader's answers only.
//! - A partition no longer hosted, or without a leader, is fetched by no one.
//!
//! - The coordinators of the internal topics (`__consumer_offsets`, `__transaction_state`)
//!   follow: leading such a partition schedules the load of its shard, no longer leading it
//!   unloads the shard (`coordinator::PartitionLeadershipListener`, Kafka's
//!   BrokerMetadataPublisher calling onElection / onResignation). A shard is unloaded before the
//!   partition becomes a follower, so no coordinator write reaches a follower's log; it is
//!   loaded after the partition leads, so its replay reads the leader's log.
//!
//! What the fetchers must fetch is kept here, by leader: the fetchers read it before each
//! fetch, and `changed` tells their supervisor (`replica_fetchers` in lib.rs) when a leader gains
//! or loses partitions. An old leader is fenced by the image: once a change names another
//! leader, its Produce and Fetch answer NOT_LEADER_OR_FOLLOWER, or FENCED_LEADER_EPOCH to a
//! request naming the old epoch (`protocol::cluster::check_leader`).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::ReplicationSettings;
use crate::coordinator::PartitionLeadershipListener;
use crate::metadata::image::{MetadataDelta, MetadataImage, PartitionRegistration, TopicImage};
use crate::metadata::publisher::MetadataPublisher;
use crate::metadata::Catalog;
use crate::security::channel::ClientChannel;
use crate::server::clock::Clock;
use crate::server::purgatory::Purgatory;

/// A partition this broker follows: what its fetcher needs besides the local log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedPartition {
    pub topic: String,
    /// The leader epoch the image names (the fetch's current_leader_epoch).
    pub leader_epoch: i32,
}

/// The followed partitions of one leader, by (topic id, partition).
pub type Followed = BTreeMap<(Uuid, i32), FollowedPartition>;

pub struct ReplicaManager {
    /// This process's broker.
    broker_id: i32,
    pub settings: ReplicationSettings,
    /// How this broker connects to the others' inter-broker listener (see
    /// `server::inter_broker`); `None` in a process that is no broker.
    pub channel: Option<ClientChannel>,
    clock: Arc<Clock>,
    purgatory: Arc<Purgatory>,
    /// Leader broker -> what this broker fetches from it.
    followed: Mutex<BTreeMap<i32, Followed>>,
    /// Bumped whenever `followed` changes.
    changed: watch::Sender<u64>,
    /// Wakes the ISR updates (`isr_updates` in lib.rs) before their next tick: a follower
    /// caught up and may join an ISR.
    pub isr_check: tokio::sync::Notify,
    /// The coordinators following their internal topics' partitions.
    coordinators: RwLock<Vec<Arc<dyn PartitionLeadershipListener>>>,
    /// Wakes `coordinator_loads` (lib.rs): an election scheduled a shard's load.
    pub loads_scheduled: tokio::sync::Notify,
}

impl ReplicaManager {
    pub fn new(
        broker_id: i32,
        settings: ReplicationSettings,
        channel: Option<ClientChannel>,
        clock: Arc<Clock>,
        purgatory: Arc<Purgatory>,
    ) -> ReplicaManager {
        ReplicaManager {
            broker_id,
            settings,
            channel,
            clock,
            purgatory,
            followed: Mutex::new(BTreeMap::new()),
            changed: watch::Sender::new(0),
            isr_check: tokio::sync::Notify::new(),
            coordinators: RwLock::new(Vec::new()),
            loads_scheduled: tokio::sync::Notify::new(),
        }
    }

    /// Registers a coordinator whose shards follow the leadership of its topic's partitions
    /// (before `apply_image`, which elects it where this broker leads).
    pub fn add_coordinator(&self, coordinator: Arc<dyn PartitionLeadershipListener>) {
        self.coordinators.write().push(coordinator);
    }

    /// Runs the shard loads elections scheduled (`coordinator_loads` in lib.rs, on a blocking
    /// thread). Returns how many shards were loaded.
    pub fn run_coordinator_loads(&self, catalog: &Catalog) -> usize {
        let now = self.clock.now();
        let coordinators = self.coordinators.read().clone();
        coordinators
            .iter()
            .map(|c| c.run_scheduled_loads(catalog, now))
            .sum()
    }

    /// The coordinator of `topic`'s shards, if it is an internal topic one follows.
    fn coordinator_of(&self, topic: &str) -> Option<Arc<dyn PartitionLeadershipListener>> {
        let coordinators = self.coordinators.read();
        coordinators.iter().find(|c| c.topic() == topic).cloned()
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// Every partition of `image` (start-up: the image the catalog opened with).
    pub fn apply_image(&self, catalog: &Catalog, image: &MetadataImage) {
        for t in image.topics.iter() {
            for (&p, reg) in &t.partitions {
                self.apply_partition(catalog, t, p, Some(reg));
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The partitions a committed change touched.
    pub fn apply_delta(&self, catalog: &Catalog, delta: &MetadataDelta, image: &MetadataImage) {
        let mut touched = false;
        for t in delta.topics().deleted() {
            if let Some(c) = self.coordinator_of(&t.name) {
                t.partitions.keys().for_each(|&p| c.on_resignation(p));
            }
            let mut followed = self.followed.lock();
            for parts in followed.values_mut() {
                parts.retain(|(id, _), _| *id != t.id);
            }
            touched = true;
        }
        for (t, ps) in delta.topics().changed_partitions() {
            let Some(t) = image.topics.get(t.id) else {
                continue;
            };
            for &p in ps {
                self.apply_partition(catalog, t, p, t.partitions.get(&p));
                touched = true;
            }
        }
        if touched {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Makes this broker the leader or a follower of partition `p` of `t` as `reg` says.
    fn apply_partition(
        &self,
        catalog: &Catalog,
        t: &TopicImage,
        p: i32,
        reg: Option<&PartitionRegistration>,
    ) {
        let mut followed = self.followed.lock();
        for parts in followed.values_mut() {
            parts.remove(&(t.id, p));
        }
        followed.retain(|_, parts| !parts.is_empty());
        let Some(partition) = catalog
            .get_by_id(t.id)
            .and_then(|x| x.partition(p).cloned())
        else {
            return;
        };
        let hosted = reg.filter(|r| r.replicas.contains(&self.broker_id));
        let coordinator = self.coordinator_of(&t.name);
        let leads = hosted.is_some_and(|r| r.leader == self.broker_id);
        if let (Some(c), false) = (&coordinator, leads) {
            // Before the log follows: no coordinator write lands in a follower's log.
            c.on_resignation(p);
        }
        match hosted {
            Some(reg) if reg.leader == self.broker_id => {
                let now = self.clock.now_ms();
                if partition.become_leader(reg, self.settings.lag_time_max_ms, now) {
                    tracing::info!(topic = %t.name, partition = p, epoch = reg.leader_epoch, "leading the partition");
                }
                let partitions = t.partitions.len() as i32;
                if let Some(c) = &coordinator {
                    if c.on_election(p, reg.leader_epoch, partitions) {
                        self.loads_scheduled.notify_one();
                    }
                }
            }
            Some(reg) => {
                if partition.is_replicated_leader() {
                    tracing::info!(topic = %t.name, partition = p, leader = reg.leader, epoch = reg.leader_epoch, "following the partition's new leader");
                }
                partition.make_follower();
                if reg.leader >= 0 {
                    let state = FollowedPartition {
                        topic: t.name.clone(),
                        leader_epoch: reg.leader_epoch,
                    };
                    followed
                        .entry(reg.leader)
                        .or_default()
                        .insert((t.id, p), state);
                }
            }
            // Not a replica here (any more): nothing to lead or fetch.
            None => partition.make_follower(),
        }
        drop(followed);
        // Parked requests on it look again (the high watermark, or who leads, moved).
        self.purgatory.check_and_complete(&t.name, p);
    }

    /// The partitions to fetch from `leader` now.
    pub fn followed_from(&self, leader: i32) -> Followed {
        self.followed
            .lock()
            .get(&leader)
            .cloned()
            .unwrap_or_default()
    }

    /// The leaders this broker fetches from.
    pub fn leaders(&self) -> Vec<i32> {
        self.followed.lock().keys().copied().collect()
    }

    /// Whether `(topic id, p)` is still followed from `leader` at `leader_epoch` (a fetch
    /// answer for an older leadership is dropped).
    pub fn still_follows(&self, leader: i32, key: (Uuid, i32), leader_epoch: i32) -> bool {
        self.followed
            .lock()
            .get(&leader)
            .and_then(|parts| parts.get(&key))
            .is_some_and(|f| f.leader_epoch == leader_epoch)
    }

    /// Changes of who is fetched from whom.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl MetadataPublisher for ReplicaManager {
    fn name(&self) -> &'static str {
        "ReplicaManager"
    }

    fn on_metadata_update(&self, catalog: &Catalog, delta: &MetadataDelta, image: &MetadataImage) {
        self.apply_delta(catalog, delta, image);
    }
}
