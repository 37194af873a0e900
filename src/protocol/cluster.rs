//! What the metadata image says about brokers, replicas and leaders, in the shape requests need
//! it (Kafka's KRaftMetadataCache): the live brokers and their endpoints, a partition's
//! registration, and the leadership check of the partition APIs.

use uuid::Uuid;

use super::errors;
use super::RequestContext;
use crate::coordinator::FollowsLeadership;
use crate::log::partition::Partition;
use crate::metadata::image::{MetadataImage, PartitionRegistration};
use crate::metadata::Topic;
use std::sync::Arc;

/// A broker as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The registered, unfenced brokers (what Metadata and DescribeCluster list), by id, as reached
/// on `listener` (KRaftMetadataCache.getAliveBrokerNodes: a broker without that listener is
/// left out).
pub fn live_nodes(image: &MetadataImage, listener: &str) -> Vec<Node> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.name == listener)?;
            Some(Node {
                id: b.id,
                host: e.host.clone(),
                port: i32::from(e.port),
                rack: b.rack.clone(),
            })
        })
        .collect()
}

/// One live broker on `listener`, or `None` when it is unknown or fenced.
pub fn live_node(image: &MetadataImage, id: i32, listener: &str) -> Option<Node> {
    live_nodes(image, listener).into_iter().find(|n| n.id == id)
}

/// The broker KRaft brokers name as the controller to clients: one of the live brokers (Kafka
/// picks one at random; gregor the lowest id, so that answers are stable). The connection's own
/// broker when none is registered.
pub fn controller_id(ctx: &RequestContext<'_>, image: &MetadataImage) -> i32 {
    live_nodes(image, ctx.listener.name())
        .first()
        .map_or(ctx.node_id, |n| n.id)
}

/// A partition's replicas, ISR and leader.
pub fn partition(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
) -> Option<&PartitionRegistration> {
    image.topics.get(topic_id)?.partitions.get(&partition)
}

/// No current leader epoch in a request (KIP-320: the check is skipped).
pub const NO_LEADER_EPOCH: i32 = -1;

/// Produce, Fetch, ListOffsets, DeleteRecords and OffsetForLeaderEpoch are served by the
/// partition's leader only, checked in Kafka's order (Partition.getLocalLog): a follower first
/// compares the request's current leader epoch (KIP-320; `NO_LEADER_EPOCH` skips it) with the
/// partition's, an older one FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH, then answers
/// NOT_LEADER_OR_FOLLOWER; a broker with no replica answers NOT_LEADER_OR_FOLLOWER at once
/// (ReplicaManager.getPartitionOrError). The client refreshes its metadata and follows. The
/// leader's own epoch check is its log's (`PartitionLog::check_current_leader_epoch`).
pub fn check_leader(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    topic_id: Uuid,
    p: i32,
    current_leader_epoch: i32,
) -> Result<(), i16> {
    let Some(reg) = partition(image, topic_id, p) else {
        return Ok(());
    };
    if reg.leader == ctx.node_id {
        return Ok(());
    }
    if reg.replicas.contains(&ctx.node_id) && current_leader_epoch != NO_LEADER_EPOCH {
        if current_leader_epoch < reg.leader_epoch {
            return Err(errors::FENCED_LEADER_EPOCH);
        }
        if current_leader_epoch > reg.leader_epoch {
            return Err(errors::UNKNOWN_LEADER_EPOCH);
        }
    }
    Err(errors::NOT_LEADER_OR_FOLLOWER)
}

/// The local log of a partition this broker leads: UNKNOWN_TOPIC_OR_PARTITION for an unknown
/// topic or partition, else as `check_leader`.
pub fn led_partition<'t>(
    ctx: &RequestContext<'_>,
    image: &MetadataImage,
    topic: Option<&'t Arc<Topic>>,
    p: i32,
    current_leader_epoch: i32,
) -> Result<&'t Arc<Partition>, i16> {
    let topic = topic.ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    let partition = topic
        .partition(p)
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    check_leader(ctx, image, topic.topic_id, p, current_leader_epoch)?;
    Ok(partition)
}

/// A partition as Metadata and DescribeTopicPartitions show it (KRaftMetadataCache
/// .getPartitionMetadata): its registration's replicas, ISR and leader epoch; without a live
/// leader, leader -1 (and LEADER_NOT_AVAILABLE in Metadata); replicas on fenced or unregistered
/// brokers listed offline.
pub struct PartitionView<'a> {
    image: &'a MetadataImage,
    pub reg: &'a PartitionRegistration,
}

impl<'a> PartitionView<'a> {
    pub fn new(image: &'a MetadataImage, reg: &'a PartitionRegistration) -> Self {
        PartitionView { image, reg }
    }

    fn live(&self, id: i32) -> bool {
        self.image.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    pub fn leader(&self) -> i32 {
        match self.live(self.reg.leader) {
            true => self.reg.leader,
            false => crate::metadata::records::NO_LEADER,
        }
    }

    /// Metadata's partition error.
    pub fn error_code(&self) -> i16 {
        match self.live(self.reg.leader) {
            true => errors::NONE,
            false => errors::LEADER_NOT_AVAILABLE,
        }
    }

    pub fn offline_replicas(&self) -> Vec<i32> {
        let replicas = self.reg.replicas.iter().copied();
        replicas.filter(|&r| !self.live(r)).collect()
    }
}

/// The errors that make Produce (v10+) and Fetch (v16+) answer the partition's current leader
/// (KIP-951).
pub const KIP_951_ERRORS: [i16; 2] = [errors::NOT_LEADER_OR_FOLLOWER, errors::FENCED_LEADER_EPOCH];

/// KIP-951: the endpoints of the leaders a Produce or Fetch answer names (`CurrentLeaders`);
/// each response has its own `NodeEndpoint` type, hence a macro.
macro_rules! node_endpoints {
    ($leaders:expr, $endpoint:ty) => {
        $leaders
            .nodes()
            .map(|n| {
                <$endpoint>::default()
                    .with_node_id(kafka_protocol::messages::BrokerId(n.id))
                    .with_host(kafka_protocol::protocol::StrBytes::from_string(
                        n.host.clone(),
                    ))
                    .with_port(n.port)
                    .with_rack(
                        n.rack
                            .clone()
                            .map(kafka_protocol::protocol::StrBytes::from_string),
                    )
            })
            .collect()
    };
}
pub(crate) use node_endpoints;

/// KIP-951's `current_leader` of the partitions of one response, and the `node_endpoints` of
/// those leaders, each once.
#[derive(Default)]
pub struct CurrentLeaders {
    nodes: std::collections::BTreeMap<i32, Node>,
}

impl CurrentLeaders {
    /// The current leader of a partition and its leader epoch (the image's, which the leader's
    /// log follows), remembering the leader's endpoint.
    pub fn add(
        &mut self,
        ctx: &RequestContext<'_>,
        image: &MetadataImage,
        topic: &Topic,
        p: i32,
    ) -> Option<(i32, i32)> {
        let reg = partition(image, topic.topic_id, p)?;
        if let Some(n) = live_node(image, reg.leader, ctx.listener.name()) {
            self.nodes.insert(n.id, n);
        }
        Some((reg.leader, reg.leader_epoch))
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }
}

/// Group requests are served by the group's coordinator only, the leader of its
/// `__consumer_offsets` partition: another broker answers NOT_COORDINATOR, so the client finds
/// the coordinator again (GroupCoordinatorService: the shard is not loaded there), and the leader
/// answers COORDINATOR_LOAD_IN_PROGRESS until its shard has replayed the partition. Before the
/// topic exists the first write creates it, so any broker may take the group.
pub fn check_group_coordinator(ctx: &RequestContext<'_>, group_id: &str) -> Result<(), i16> {
    let groups = ctx.broker.groups.as_ref();
    check_coordinator_ready(ctx, groups, groups.partition_of(group_id))
}

/// The same for a transactional id and its `__transaction_state` partition
/// (TransactionStateManager.getTransactionState: NOT_COORDINATOR where the partition is not
/// owned).
pub fn check_txn_coordinator(ctx: &RequestContext<'_>, transactional_id: &str) -> Result<(), i16> {
    let txns = ctx.broker.txns.as_ref();
    check_coordinator_ready(ctx, txns, txns.partition_for(transactional_id))
}

/// NOT_COORDINATOR unless this broker leads `partition` of the coordinator's internal topic,
/// then the readiness of its shard there (the runtime's, one mechanism for every coordinator).
fn check_coordinator_ready<C: FollowsLeadership>(
    ctx: &RequestContext<'_>,
    coordinator: &C,
    partition: i32,
) -> Result<(), i16> {
    let runtime = coordinator.runtime();
    check_coordinator(ctx, runtime.topic(), partition)?;
    runtime.readiness(partition)
}

/// NOT_COORDINATOR unless this broker leads `partition` of the internal topic (or the topic does
/// not exist yet).
fn check_coordinator(
    ctx: &RequestContext<'_>,
    topic: &str,
    partition_index: i32,
) -> Result<(), i16> {
    let b = ctx.broker;
    let Some(topic) = b.catalog.get(topic) else {
        return Ok(());
    };
    let image = b.catalog.image();
    match partition(&image, topic.topic_id, partition_index) {
        Some(reg) if reg.leader != ctx.node_id => Err(errors::NOT_COORDINATOR),
        _ => Ok(()),
    }
}

/// The broker leading the transactional id's `__transaction_state` partition when it is another
/// process's (a cluster of processes; -1 when it has no leader now), else `None`.
pub fn txn_coordinator_elsewhere(ctx: &RequestContext<'_>, transactional_id: &str) -> Option<i32> {
    ctx.broker.replicas.as_ref()?;
    let topic = ctx
        .broker
        .catalog
        .get(crate::txn::coordinator::TRANSACTION_STATE_TOPIC)?;
    let p = ctx.broker.txns.partition_for(transactional_id);
    let image = ctx.broker.catalog.image();
    let leader = partition(&image, topic.topic_id, p)?.leader;
    (leader != ctx.node_id).then_some(leader)
}
