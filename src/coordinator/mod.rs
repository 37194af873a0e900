//! What every coordinator of this broker shares (Kafka's coordinator-common): the runtime that
//! runs a coordinator's operations against its internal topic (`runtime`), how a request waits
//! until the coordinator writes it made are committed (`commit`), and how coordinators follow
//! the leadership of their internal partitions ([`PartitionLeadershipListener`]). The group,
//! transaction and share coordinators run on the runtime.

pub mod commit;
pub mod runtime;

use crate::metadata::Catalog;
use crate::server::clock::Now;

/// A coordinator whose shards follow the leadership of its internal topic's partitions in a
/// cluster of processes (Kafka's GroupCoordinatorService.onElection / onResignation, which
/// BrokerMetadataPublisher calls for `__consumer_offsets`, and the same for
/// `__transaction_state`): the replica manager calls it whenever a metadata change makes this
/// broker the leader of one of them, or takes that leadership away.
pub trait PartitionLeadershipListener: Send + Sync {
    /// The internal topic it follows.
    fn topic(&self) -> &'static str;

    /// This broker leads `partition` (of `partitions`) from `leader_epoch`: schedule its load.
    /// Returns whether a load was scheduled. Runs on the metadata path: no log reads here.
    fn on_election(&self, partition: i32, leader_epoch: i32, partitions: i32) -> bool;

    /// This broker no longer leads `partition` (it follows, the partition went offline, or it
    /// was deleted): unload its shard.
    fn on_resignation(&self, partition: i32);

    /// Runs the loads scheduled by elections (off the metadata path, on a blocking thread);
    /// the loaded shards' deadlines start at `now`.
    fn run_scheduled_loads(&self, catalog: &Catalog, now: Now) -> usize;
}

/// A coordinator on the runtime whose shards follow leadership: it names its runtime and how it
/// loads scheduled shards (its `on_loaded`); the listener's other duties are the runtime's.
pub trait FollowsLeadership: Send + Sync {
    type Shard: runtime::CoordinatorShard;

    fn runtime(&self) -> &runtime::CoordinatorRuntime<Self::Shard>;

    /// Runs the loads elections scheduled (see `PartitionLeadershipListener`).
    fn run_scheduled_loads(&self, catalog: &Catalog, now: Now) -> usize;
}

impl<C: FollowsLeadership> PartitionLeadershipListener for C {
    fn topic(&self) -> &'static str {
        self.runtime().topic()
    }

    fn on_election(&self, partition: i32, leader_epoch: i32, partitions: i32) -> bool {
        self.runtime()
            .schedule_load(partition, leader_epoch, partitions)
    }

    fn on_resignation(&self, partition: i32) {
        self.runtime().unload(partition);
    }

    fn run_scheduled_loads(&self, catalog: &Catalog, now: Now) -> usize {
        FollowsLeadership::run_scheduled_loads(self, catalog, now)
    }
}
