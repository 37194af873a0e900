//! Cluster metadata of this single node: topics, their ids, partitions and configs.
//!
//! On disk (all under the data directory):
//! - `meta.properties`: Kafka's `version=1`, `cluster.id=…`, `node.id=…` (the cluster id persists);
//! - `__cluster_metadata-0/`: the metadata log (`metadata_log`), Kafka's metadata records; topics,
//!   their ids, partitions and configs are what replaying it gives (`image::MetadataImage`);
//! - `<topic>-<partition>/partition.metadata`: Kafka's `version: 0` / `topic_id: …` file, so that
//!   Kafka's tools recognise the partition directories.
//!
//! A change is decided on the image (under the catalog lock, `Catalog::decide`) and committed by
//! appending its records to the metadata log, conditional on the image it was decided on (in a
//! quorum another node may have committed since: the write is then decided again on the
//! caught-up image), then replayed into the image; the publishers (`publisher`) are then given what changed: first the log manager
//! (`crate::log::manager`), which makes, opens and deletes the partition logs, then the
//! coordinators that subscribed (the group coordinator drops the offsets of removed topics).
//! A change that makes logs has them made before its records are appended, so a failure leaves
//! nothing. A crash between the records and the local change is repaired at start-up, when the
//! log manager replays the image against the data directory.
//!
//! Earlier releases kept one file per topic, `gregor-metadata/topics/<topic id>.properties`
//! (`topic::TopicFile`); start-up migrates each into the metadata log (same name, id, partition
//! count and configs) and removes the file once its records are committed.

pub mod alter_partition;
pub mod broker_heartbeat;
pub mod controller;
pub mod election;
pub mod features;
pub mod image;
pub mod metadata_log;
pub mod placement;
pub mod publisher;
pub mod quorum;
pub mod reassignment;
pub mod records;
pub mod topic;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::{topic_log_config, ConfigError};
use crate::log::checkpoint::RecoveryPoints;
use crate::log::manager::LogManager;
use crate::log::partition::Partition;
use crate::log::storage::{FileStorage, Storage};
use crate::log::LogConfig;
use broker_heartbeat::{BrokerHeartbeat, HeartbeatReply};
use controller::{ControllerDuties, ControllerRequest, ControllerResponse};
use election::ElectionPolicy;
use image::{BrokerRegistration, MetadataDelta, MetadataImage, Provenance};
use metadata_log::{
    batch_delta, load_image, replay_batch, LocalMetadataLog, MetadataBatch, MetadataLog, Writer,
};
use placement::PlacementError;
use publisher::MetadataPublisher;
use records::{
    ConfigRecord, MetadataRecord, PartitionRecord, RegisterBrokerRecord, RESOURCE_GROUP,
    RESOURCE_TOPIC,
};
pub use topic::{is_internal_name, validate_topic_name, Topic};

const TOPICS_DIR: &str = "gregor-metadata/topics";

/// Kafka's controller refuses an operation that would write more than 10000 metadata records
/// (QuorumController.MAX_RECORDS_PER_USER_OP) with POLICY_VIOLATION; one record per partition, so
/// this bounds the partitions one CreateTopics or CreatePartitions entry can create (and the
/// directories and files a single request can make gregor open).
pub const MAX_NEW_PARTITIONS: i32 = 10_000;
/// QuorumController.MAX_RECORDS_PER_USER_OP: the metadata records one operation may write (a
/// BoundedList that fails the whole operation with POLICY_VIOLATION and `EXCESSIVE`).
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;
/// ReplicationControlManager.MAX_PARTITIONS_PER_BATCH (Kafka 4.0, KAFKA-17870): the partitions
/// one CreateTopics may ask for across all its topics.
pub const MAX_PARTITIONS_PER_BATCH: i64 = 10_000;
pub const EXCESSIVE: &str = "Unable to perform excessively large batch operation.";
pub const EXCESSIVE_PARTITIONS: &str = "Excessively large number of partitions per request.";

#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("Topic '{0}' collides with existing topics: {1}")]
    Collision(String, String),
    #[error("Number of partitions must be larger than 0.")]
    InvalidPartitions,
    /// INVALID_REPLICATION_FACTOR or INVALID_REPLICA_ASSIGNMENT (see `placement`).
    #[error("{0}")]
    Placement(#[from] PlacementError),
    /// KafkaApis.createTopics: the metadata topic is never created by a client.
    #[error("Creation of internal topic __cluster_metadata is prohibited.")]
    MetadataTopic,
    #[error("{EXCESSIVE}")]
    TooManyPartitions,
    #[error("{0}")]
    InvalidConfig(#[from] ConfigError),
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum TopicAdminError {
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    #[error("Topic already has {0} partition(s).")]
    SamePartitionCount(i32),
    #[error("The topic {name} currently has {current} partition(s); {requested} would not be an increase.")]
    FewerPartitions {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    Placement(#[from] PlacementError),
    #[error("{EXCESSIVE}")]
    TooManyPartitions,
    #[error("gregor does not delete or grow the internal topic {0}: its group coordinator depends on its layout.")]
    InternalTopic(String),
    #[error("{0}")]
    InvalidConfig(#[from] ConfigError),
    /// A config change refused before validation (IncrementalAlterConfigs' own checks).
    #[error("{0:?}")]
    Alter(crate::config::alter::AlterError),
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
}

/// The node id a catalog opened without one names as every partition's replica and leader.
pub const DEFAULT_NODE_ID: i32 = 1;
/// offsets.topic.replication.factor and transaction.state.log.replication.factor (Kafka's default
/// for both); in one process capped at the brokers there are, so that one broker serves as it
/// always has (see `Catalog::internal_replication_factor`).
pub const INTERNAL_TOPIC_REPLICATION_FACTOR: i16 = 3;

/// How the replicas of new partitions are chosen (CreateTopics, CreatePartitions).
#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// The striped placer puts `replication_factor` replicas on the registered brokers.
    Placed {
        partitions: i32,
        replication_factor: i16,
    },
    /// The client's replica list per new partition, in order.
    Manual(Vec<Vec<i32>>),
}

/// One new partition's replicas and in-sync replicas (the first replica leads).
type Placed = Vec<(Vec<i32>, Vec<i32>)>;

/// How many times a write is decided (see `Catalog::decide`): a refusal means another write was
/// committed meanwhile, so a few rounds outlast any burst of concurrent writes.
const MAX_DECISIONS: usize = 10;

/// Whether an error is a commit the quorum refused as decided on a stale image
/// (`MetadataLogError::StaleImage`): the write is decided again.
pub fn is_stale_image(e: &io::Error) -> bool {
    metadata_log_error(e)
        .is_some_and(|e| matches!(e, metadata_log::MetadataLogError::StaleImage(_)))
}

/// Whether a write failed because the metadata quorum did not commit it (no leader reachable,
/// leadership lost on the way, the quorum stopping, or refused as decided on a stale image each
/// time), not because a disk failed: Kafka's broker forwards such a write to the active
/// controller until the request times out, so its client is told REQUEST_TIMED_OUT and retries.
pub fn is_uncommitted(e: &io::Error) -> bool {
    metadata_log_error(e).is_some_and(|e| {
        matches!(
            e,
            metadata_log::MetadataLogError::StaleImage(_)
                | metadata_log::MetadataLogError::Quorum(_)
                | metadata_log::MetadataLogError::NotController(_)
        )
    })
}

fn metadata_log_error(e: &io::Error) -> Option<&metadata_log::MetadataLogError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<metadata_log::MetadataLogError>())
}

/// Whether an error is a write this node was to take as the leader of the metadata quorum, which
/// it does not lead (any more: `MetadataLogError::NotController`): a request to the active
/// controller that fails so is answered NOT_CONTROLLER.
pub fn is_not_controller(e: &io::Error) -> bool {
    metadata_log_error(e)
        .is_some_and(|e| matches!(e, metadata_log::MetadataLogError::NotController(_)))
}

/// The errors of a catalog write that may carry a stale image's refusal.
trait MaybeStale {
    fn is_stale(&self) -> bool;
}

impl MaybeStale for io::Error {
    fn is_stale(&self) -> bool {
        is_stale_image(self)
    }
}

impl MaybeStale for CreateTopicError {
    fn is_stale(&self) -> bool {
        matches!(self, CreateTopicError::Storage(e) if is_stale_image(e))
    }
}

impl MaybeStale for TopicAdminError {
    fn is_stale(&self) -> bool {
        matches!(self, TopicAdminError::Storage(e) if is_stale_image(e))
    }
}

pub struct Catalog {
    data_dir: PathBuf,
    /// The replica and leader of every partition while no broker is registered (unit tests, and
    /// the topics an earlier release's files migrate).
    node_id: i32,
    /// default.replication.factor, for topics created on first use.
    default_replication_factor: i16,
    /// Where topic changes are committed (see the module comment).
    metadata_log: Box<dyn MetadataLog>,
    /// The metadata log replayed.
    image: RwLock<Arc<MetadataImage>>,
    /// The local logs of the image's partitions.
    logs: Arc<LogManager>,
    /// What each committed change is published to, the log manager first.
    publishers: RwLock<Vec<Arc<dyn MetadataPublisher>>>,
    /// Serialises creations, deletions and changes of topics, so two racing auto-creates of one
    /// topic make one topic and a topic being deleted is not recreated half-way.
    create_lock: Mutex<()>,
    /// The brokers whose logs this process holds (`with_data_brokers`); `None`: all.
    data_brokers: Option<std::collections::BTreeSet<i32>>,
    /// offsets.topic.replication.factor and transaction.state.log.replication.factor (see
    /// `internal_replication_factor`).
    internal_replication: (i16, i16),
}

impl Catalog {
    /// Loads every topic named by a topic file and opens its partition logs.
    pub fn open(
        data_dir: &Path,
        broker_log: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> io::Result<Catalog> {
        Self::open_on(Arc::new(FileStorage), data_dir, broker_log, clean, now_ms)
    }

    /// `open`, with every segment file going through `storage`.
    pub fn open_on(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        broker_log: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> io::Result<Catalog> {
        Self::open_node(
            storage,
            data_dir,
            DEFAULT_NODE_ID,
            broker_log,
            clean,
            now_ms,
        )
    }

    /// Opens the metadata log (migrating an earlier release's topic files into it), replays it,
    /// and opens the partition logs of every topic in the image.
    pub fn open_node(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        node_id: i32,
        broker_log: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> io::Result<Catalog> {
        let log = LocalMetadataLog::open(Arc::clone(&storage), data_dir, clean, now_ms)
            .map_err(io::Error::other)?;
        Self::open_with_log(
            storage,
            Box::new(log),
            data_dir,
            node_id,
            broker_log,
            clean,
            now_ms,
        )
    }

    /// `open_node` over any metadata log (a quorum's: `quorum::RaftMetadataLog`).
    pub fn open_with_log(
        storage: Arc<dyn Storage>,
        log: Box<dyn MetadataLog>,
        data_dir: &Path,
        node_id: i32,
        broker_log: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> io::Result<Catalog> {
        let recovery = match clean {
            true => RecoveryPoints::clean(),
            false => RecoveryPoints::after_crash(data_dir),
        };
        let mut image = load_image(&*log).map_err(io::Error::other)?;
        // A new metadata log starts with its finalized features, metadata.version first
        // (Kafka's bootstrap records); an older one gains those it lacks. In a quorum every
        // node starting decides so: the first one's records make the others' stale, and they
        // find the features there once caught up.
        for decision in 1.. {
            let bootstrap = features::bootstrap_records(&image);
            match commit_to(&*log, image, &bootstrap, now_ms) {
                Ok(committed) => {
                    image = committed;
                    break;
                }
                Err(e) if is_stale_image(&e) && decision < MAX_DECISIONS => {
                    image = load_image(&*log).map_err(io::Error::other)?;
                }
                Err(e) => return Err(e),
            }
        }
        image = migrate_topic_files(&*log, data_dir, image, node_id, now_ms)?;
        if log.committed().is_some() {
            // Other nodes may have committed between this node's appends: the log says all.
            image = load_image(&*log).map_err(io::Error::other)?;
        }
        let quorum = log.quorum_state().is_some();
        let logs = Arc::new(LogManager::startup(
            storage, data_dir, broker_log, &image, &recovery, now_ms,
        )?);
        let catalog = Catalog {
            data_dir: data_dir.to_path_buf(),
            node_id,
            default_replication_factor: 1,
            metadata_log: log,
            image: RwLock::new(Arc::new(image)),
            publishers: RwLock::new(vec![Arc::clone(&logs) as Arc<dyn MetadataPublisher>]),
            logs,
            create_lock: Mutex::new(()),
            // A process of a quorum holds the data of its own broker only; its logs of
            // partitions other brokers lead are followers' (see `holds_data_of`).
            data_brokers: quorum.then(|| [node_id].into()),
            internal_replication: (
                INTERNAL_TOPIC_REPLICATION_FACTOR,
                INTERNAL_TOPIC_REPLICATION_FACTOR,
            ),
        };
        catalog.reconcile_leader_epochs()?;
        Ok(catalog)
    }

    /// At start-up, the image and the logs agree on each partition's leader epoch, the image's
    /// being the one clients are told: a log behind the image (an earlier run elected leaders
    /// after its last batch) moves up to it; a log ahead of it (its leader-epoch-checkpoint knows
    /// epochs the metadata log does not, as in a data directory from elsewhere) has its
    /// partition restated at the log's epoch (a PartitionRecord, as the controller writes one).
    fn reconcile_leader_epochs(&self) -> io::Result<()> {
        self.decide(|| self.reconcile_leader_epochs_locked())
    }

    fn reconcile_leader_epochs_locked(&self) -> io::Result<()> {
        let image = self.image();
        let mut restated = Vec::new();
        for t in image.topics.iter() {
            for (&p, reg) in &t.partitions {
                let Some(log_epoch) = self
                    .get_by_id(t.id)
                    .and_then(|x| Some(x.partition(p)?.leader_epoch()))
                else {
                    continue;
                };
                // A follower's log learns epochs from its leader's batches only (Kafka's
                // followers never assign one): only the logs this process leads move.
                if !self.holds_data_of(reg.leader) {
                    continue;
                }
                if log_epoch > reg.leader_epoch {
                    let mut record = reg.to_record(t.id, p);
                    record.leader_epoch = log_epoch;
                    record.partition_epoch += 1;
                    restated.push(MetadataRecord::Partition(record));
                } else {
                    self.logs.sync_leader_epoch(t.id, p, reg.leader_epoch);
                }
            }
        }
        self.commit(&restated)
    }

    /// Adds a publisher of committed changes, after those there are (see `publisher`).
    pub fn subscribe(&self, publisher: Arc<dyn MetadataPublisher>) {
        self.publishers.write().push(publisher);
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.logs.get(name)
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.logs.get_by_id(id)
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.logs.all()
    }

    /// Checks a creation without performing it (CreateTopics validate_only, and before creating).
    pub fn validate(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, CreateTopicError> {
        let assignment = Assignment::Placed {
            partitions,
            replication_factor,
        };
        self.validate_assigned(name, &assignment, configs)
            .map(|(config, _)| config)
    }

    /// `validate` for any assignment; answers the topic's log config and where each of its
    /// partitions goes.
    pub fn validate_assigned(
        &self,
        name: &str,
        assignment: &Assignment,
        configs: &BTreeMap<String, String>,
    ) -> Result<(LogConfig, Placed), CreateTopicError> {
        validate_topic_name(name).map_err(CreateTopicError::InvalidName)?;
        if name == metadata_log::METADATA_TOPIC {
            return Err(CreateTopicError::MetadataTopic);
        }
        if self.get(name).is_some() {
            return Err(CreateTopicError::AlreadyExists(name.to_string()));
        }
        let clash: Vec<String> = self
            .image()
            .topics
            .iter()
            .filter(|t| topic::collides(name, &t.name))
            .map(|t| t.name.clone())
            .collect();
        if !clash.is_empty() {
            return Err(CreateTopicError::Collision(
                name.to_string(),
                clash.join(", "),
            ));
        }
        let partitions = match assignment {
            Assignment::Placed { partitions, .. } => *partitions,
            Assignment::Manual(lists) => i32::try_from(lists.len()).unwrap_or(i32::MAX),
        };
        if partitions <= 0 {
            return Err(CreateTopicError::InvalidPartitions);
        }
        let replication_factor = match assignment {
            Assignment::Placed {
                replication_factor, ..
            } => usize::try_from(*replication_factor).unwrap_or(0),
            Assignment::Manual(lists) => lists.iter().map(Vec::len).max().unwrap_or(0),
        };
        let brokers = self.placement_brokers(name, replication_factor);
        if let Assignment::Placed {
            replication_factor, ..
        } = assignment
        {
            // The factor is checked before the partition count, as it always was.
            placement::place(&brokers, 0, *replication_factor, 0)?;
        }
        if partitions > MAX_NEW_PARTITIONS {
            return Err(CreateTopicError::TooManyPartitions);
        }
        let placed = place(&brokers, assignment, 0)?;
        Ok((topic_log_config(&self.logs.broker_log(), configs)?, placed))
    }

    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        let assignment = Assignment::Placed {
            partitions,
            replication_factor,
        };
        self.create_assigned(name, &assignment, configs, now_ms)
    }

    /// Creates a topic whose partitions' replicas are placed or given by `assignment`, written
    /// as PartitionRecords (every replica in sync: one copy of the data serves them all).
    pub fn create_assigned(
        &self,
        name: &str,
        assignment: &Assignment,
        configs: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        self.decide(|| {
            let (_, placed) = self.validate_assigned(name, assignment, &configs)?;
            let partitions = placed.len() as i32;
            let desc = topic::TopicFile {
                name: name.to_string(),
                topic_id: new_topic_id(),
                partitions,
                configs: configs.clone(),
            };
            // The log manager makes the logs before the records are committed: a creation
            // that fails half-way (no descriptors or space left) leaves nothing behind, as
            // Kafka's controller creates a topic whole or not at all.
            self.commit_at(&topic_records(&desc, 0, &placed), now_ms)?;
            let topic = self.get(name).ok_or_else(|| missing_log(name))?;
            tracing::info!(topic = name, partitions, "created topic");
            Ok(topic)
        })
    }

    /// Where new partitions of topic `name` with `replication_factor` replicas may go: every
    /// registered broker in one process. In a quorum of processes, a replicated topic's
    /// (replication factor above 1) on every registered broker, whose followers fetch from
    /// their leader, `__consumer_offsets` and `__transaction_state` included (their
    /// coordinators follow their partitions' leaders); a topic of one replica, as before data
    /// replication, and `__share_group_state` (its share-partitions call their coordinator in
    /// this process: there is no Read/WriteShareGroupState between processes yet), on this
    /// process's broker.
    fn placement_brokers(
        &self,
        name: &str,
        replication_factor: usize,
    ) -> BTreeMap<i32, BrokerRegistration> {
        let mut brokers = self.brokers();
        let local_only = name == crate::share::coordinator::SHARE_GROUP_STATE_TOPIC;
        if replication_factor <= 1 || local_only {
            brokers.retain(|id, _| self.holds_data_of(*id));
        }
        brokers
    }

    /// offsets.topic.replication.factor and transaction.state.log.replication.factor (Kafka's
    /// default 3 for both when not given).
    pub fn with_internal_replication_factors(mut self, offsets: i16, transactions: i16) -> Self {
        self.internal_replication = (offsets, transactions);
        self
    }

    /// The replication factor an internal topic is created with on first use. In a quorum of
    /// processes Kafka's: `offsets.topic.replication.factor` for `__consumer_offsets`,
    /// `transaction.state.log.replication.factor` for `__transaction_state`, and a creation
    /// with fewer registered brokers is refused (INVALID_REPLICATION_FACTOR, which
    /// FindCoordinator answers as COORDINATOR_NOT_AVAILABLE until enough brokers registered, as
    /// Kafka's auto topic creation does). In one process, 3 capped at the live brokers there
    /// are, so that a single node serves groups and transactions out of the box (a Kafka node
    /// needs the factor set to 1 for that); the same for `__share_group_state` everywhere.
    fn internal_replication_factor(&self, name: &str) -> i16 {
        let configured = match name {
            "__consumer_offsets" => Some(self.internal_replication.0),
            "__transaction_state" => Some(self.internal_replication.1),
            _ => None,
        };
        if let (Some(rf), Some(_)) = (configured, &self.data_brokers) {
            return rf;
        }
        let live = self
            .placement_brokers(name, 1)
            .values()
            .filter(|b| !b.fenced)
            .count();
        INTERNAL_TOPIC_REPLICATION_FACTOR.min(i16::try_from(live).unwrap_or(i16::MAX).max(1))
    }

    /// Whether this process holds the logs of broker `id`'s replicas (in one process every
    /// broker's; in a quorum of processes only its own: the others' come from their leaders).
    pub fn holds_data_of(&self, id: i32) -> bool {
        self.data_brokers
            .as_ref()
            .is_none_or(|ids| ids.contains(&id))
    }

    /// Deletes the copy of every partition that holds records here but that no broker of this
    /// process hosts (Kafka's broker finds such stray logs as it loads its first metadata
    /// image): a reassignment removed the replica while the process was stopped. Changes
    /// published later delete them as they come (`log::manager`).
    pub fn delete_unhosted_copies(&self) {
        if self.data_brokers.is_none() {
            return;
        }
        let image = self.image();
        self.logs.delete_unhosted(&image, |b| self.holds_data_of(b));
    }

    /// Only the brokers `ids` hold their data here (a process of a quorum: its own broker; the
    /// others' replicas fetch from their leaders in their own processes).
    pub fn with_data_brokers(mut self, ids: impl IntoIterator<Item = i32>) -> Self {
        self.data_brokers = Some(ids.into_iter().collect());
        self
    }

    /// The registered brokers (Kafka's ClusterImage); a catalog no broker registered with (unit
    /// tests) has its own node as the one unfenced broker.
    pub fn brokers(&self) -> BTreeMap<i32, BrokerRegistration> {
        let image = self.image();
        if !image.brokers.is_empty() {
            return (*image.brokers).clone();
        }
        let local = BrokerRegistration {
            id: self.node_id,
            epoch: 0,
            incarnation_id: Uuid::nil(),
            endpoints: vec![],
            features: vec![],
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
            log_dirs: vec![],
        };
        BTreeMap::from([(self.node_id, local)])
    }

    /// Registers the brokers this process serves, as each Kafka broker registers with its
    /// controller at start-up (RegisterBrokerRecord; the broker epoch is the record's offset).
    /// Brokers an earlier run registered that are not started now are fenced (they leave the
    /// ISRs, their partitions elect other leaders); those started lead again what they may
    /// (`election::broker_unfenced`: an earlier run may have stopped them).
    pub fn register_brokers(
        &self,
        mut brokers: Vec<RegisterBrokerRecord>,
        policy: &ElectionPolicy,
    ) -> io::Result<()> {
        self.change_partitions(|image| {
            let next_offset = image.provenance.last_offset + 1;
            let mut out = election::Pending::new(image);
            for (i, b) in brokers.iter_mut().enumerate() {
                b.broker_epoch = next_offset + i as i64;
            }
            let records = brokers.iter().cloned().map(MetadataRecord::RegisterBroker);
            out.push(records.collect())?;
            // Brokers of this process not started now (in a quorum of processes, the others'
            // brokers are theirs to register).
            let gone: Vec<i32> = image
                .brokers
                .keys()
                .copied()
                .filter(|id| !brokers.iter().any(|n| n.broker_id == *id))
                .filter(|id| self.holds_data_of(*id))
                .collect();
            for id in gone {
                let fenced = election::broker_fenced(&out.image, id, policy);
                out.push(fenced)?;
            }
            for b in &brokers {
                let back = election::broker_unfenced(&out.image, b.broker_id, policy)?;
                out.push(back)?;
            }
            Ok(out.records)
        })
    }

    /// Registers the broker of this process in a quorum of processes, fenced, its earlier
    /// incarnation's leaderships ended (`broker_heartbeat::register_fenced`). Whatever follows
    /// is the active controller's to decide on its own image, as Kafka's controller does: the
    /// broker's first heartbeat that shows it caught up unfences it
    /// (`broker_heartbeat::decide`), and a broker that stops heartbeating is fenced.
    pub fn register_fenced(
        &self,
        broker: RegisterBrokerRecord,
        policy: &ElectionPolicy,
    ) -> io::Result<()> {
        self.change_partitions(|image| {
            Ok(broker_heartbeat::register_fenced(
                image,
                broker.clone(),
                policy,
            ))
        })
    }

    /// A broker of this process stops (`election::broker_fenced`).
    pub fn fence_broker(&self, id: i32, policy: &ElectionPolicy) -> io::Result<()> {
        self.change_partitions(|image| Ok(election::broker_fenced(image, id, policy)))
    }

    /// A decision of the active controller: `decide` reads the image with everything committed
    /// replayed (this node leads: all of it is applied here) and returns the records to commit
    /// and its answer, given back once they are committed (as Kafka's QuorumController runs
    /// each operation on its latest state).
    pub fn decide_as_controller<R>(
        &self,
        mut decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), image::ReplayError>,
    ) -> io::Result<R> {
        self.decide(|| {
            self.catch_up_locked()?;
            let (records, answer) = decide(&self.image()).map_err(io::Error::other)?;
            self.commit_with(&records, crate::broker::now_ms(), Writer::Controller)?;
            Ok(answer)
        })
    }

    /// The active controller fences broker `id` whose session expired at `epoch`
    /// (`broker_heartbeat`), unless it registered again or was fenced in the meantime; returns
    /// whether it did.
    pub fn fence_expired_broker(
        &self,
        id: i32,
        epoch: i64,
        policy: &ElectionPolicy,
    ) -> io::Result<bool> {
        self.decide_as_controller(|image| {
            Ok(broker_heartbeat::fence_expired(image, id, epoch, policy))
        })
    }

    /// The active controller's answer to a broker's heartbeat (`broker_heartbeat::decide`), with
    /// what `progress` says of its controlled shutdown on the image decided on.
    pub fn broker_heartbeat(
        &self,
        heartbeat: &BrokerHeartbeat,
        policy: &ElectionPolicy,
        progress: impl Fn(&MetadataImage) -> broker_heartbeat::ShutdownProgress,
    ) -> io::Result<HeartbeatReply> {
        self.decide_as_controller(|image| {
            broker_heartbeat::decide(image, heartbeat, policy, progress(image))
        })
    }

    /// The active controller's answer to a partition leader's AlterPartition
    /// (`alter_partition::alter_partition`).
    pub fn alter_partition(
        &self,
        request: &alter_partition::AlterPartitionRequest,
        policy: &ElectionPolicy,
    ) -> io::Result<alter_partition::AlterPartitionResponse> {
        self.decide_as_controller(|image| {
            Ok(alter_partition::alter_partition(image, request, policy))
        })
    }

    /// Sends a request of this node's broker to the active controller (a quorum of processes).
    pub fn send_to_controller(&self, request: ControllerRequest) -> io::Result<ControllerResponse> {
        self.metadata_log
            .send_to_controller(request)
            .map_err(io::Error::other)
    }

    /// Where this node comes to lead the metadata quorum, `duties` answer the brokers' requests.
    pub fn serve_controller(&self, duties: std::sync::Weak<dyn ControllerDuties>) {
        self.metadata_log.serve_controller(duties);
    }

    /// A stopped broker of this process starts again (`election::broker_restarted`).
    pub fn restart_broker(&self, id: i32, policy: &ElectionPolicy) -> io::Result<()> {
        self.change_partitions(|image| {
            election::broker_restarted(image, id, Uuid::new_v4(), policy)
        })
    }

    /// Commits the records `f` computes from the image (under the catalog lock, so no other
    /// change comes in between). The publishers hear of it: the log manager moves every
    /// partition log whose leader changed to its new leader epoch, the purgatory completes the
    /// requests parked on them.
    pub fn change_partitions(
        &self,
        mut f: impl FnMut(&MetadataImage) -> Result<Vec<MetadataRecord>, image::ReplayError>,
    ) -> io::Result<()> {
        self.decide(|| {
            let records = f(&self.image()).map_err(io::Error::other)?;
            self.commit(&records)
        })
    }

    /// default.replication.factor, for topics created on first use (Metadata auto-creation).
    pub fn with_default_replication_factor(mut self, replication_factor: i16) -> Self {
        self.default_replication_factor = replication_factor;
        self
    }

    /// Returns the topic, creating it with the broker defaults when it does not exist.
    pub fn get_or_create(
        &self,
        name: &str,
        partitions: i32,
        now_ms: i64,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        if let Some(t) = self.get(name) {
            return Ok(t);
        }
        let replication_factor = if is_internal_name(name) {
            self.internal_replication_factor(name)
        } else {
            self.default_replication_factor
        };
        let configs = internal_topic_configs(name);
        match self.create(name, partitions, replication_factor, configs, now_ms) {
            Err(CreateTopicError::AlreadyExists(_)) => {
                self.get(name).ok_or(CreateTopicError::InvalidPartitions)
            }
            other => other,
        }
    }

    /// Deletes a topic: its RemoveTopicRecord is the point of no return; the log manager then
    /// takes it away from lookups, its partition logs refuse further writes and background work,
    /// and its files are removed. Returns the topic.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicAdminError> {
        self.decide(|| {
            let topic = self.get(name).ok_or(TopicAdminError::UnknownTopic)?;
            if topic.is_internal() {
                return Err(TopicAdminError::InternalTopic(name.to_string()));
            }
            self.commit(&[MetadataRecord::RemoveTopic {
                topic_id: topic.topic_id,
            }])?;
            tracing::info!(topic = name, "deleted topic");
            Ok(topic)
        })
    }

    /// The name of the topic with this id, or UNKNOWN_TOPIC_ID.
    pub fn name_of(&self, id: Uuid) -> Result<String, TopicAdminError> {
        self.logs.name_of(id).ok_or(TopicAdminError::UnknownTopicId)
    }

    /// CreatePartitions: grows a topic to `count` partitions (Kafka never shrinks one).
    /// `assignments`, when given, must name one replica list per new partition.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<Arc<Topic>, TopicAdminError> {
        self.decide(|| {
            let assignments = assignments.clone();
        let topic = self.get(name).ok_or(TopicAdminError::UnknownTopic)?;
        let current = topic.partitions.len() as i32;
        if count == current {
            return Err(TopicAdminError::SamePartitionCount(current));
        }
        if count < current {
            return Err(TopicAdminError::FewerPartitions {
                name: name.to_string(),
                current,
                requested: count,
            });
        }
        let additional = count - current;
        if additional > MAX_NEW_PARTITIONS {
            return Err(TopicAdminError::TooManyPartitions);
        }
        if let Some(lists) = &assignments {
            let n = lists.len();
            if n != additional as usize {
                return Err(TopicAdminError::InvalidReplicaAssignment(format!(
                    "Attempted to add {additional} additional partition(s), but only {n} assignment(s) were specified."
                )));
            }
        }
        // New partitions have as many replicas as the topic's first (Kafka's createPartitions).
        let image = self.image();
        let replication_factor = image
            .topics
            .get(topic.topic_id)
            .and_then(|t| t.partitions.get(&0))
            .map_or(1, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX));
        let assignment = match assignments {
            Some(lists) => Assignment::Manual(lists),
            None => Assignment::Placed {
                partitions: additional,
                replication_factor,
            },
        };
        let placed = place(
            &self.placement_brokers(&topic.name, replication_factor as usize),
            &assignment,
            replication_factor as usize,
        )?;
        if validate_only {
            return Ok(topic);
        }
        let desc = topic::TopicFile {
            name: topic.name.clone(),
            topic_id: topic.topic_id,
            partitions: count,
            configs: BTreeMap::new(),
        };
        let records = topic_records(&desc, current, &placed);
        // Only the partition records: the topic and its configs are there already. The log
        // manager makes the new logs first, so a failure leaves nothing behind.
        self.commit_at(&records[1..], now_ms)?;
            self.get(name).ok_or_else(|| missing_log(name).into())
        })
    }

    /// Replaces a topic's config overrides (AlterConfigs / IncrementalAlterConfigs): validated
    /// against Kafka's rules, persisted in the topic file, then applied to every partition log
    /// at once, without a restart.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicAdminError> {
        self.update_topic_configs(name, |_| Ok(configs.clone()), validate_only)
    }

    /// As `set_topic_configs`, with the new overrides computed from the current ones under the
    /// catalog lock, so concurrent incremental changes cannot lose each other's updates.
    pub fn update_topic_configs(
        &self,
        name: &str,
        mut change: impl FnMut(
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, TopicAdminError>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicAdminError> {
        self.decide(|| {
            let topic = self.get(name).ok_or(TopicAdminError::UnknownTopic)?;
            let configs = change(&topic.configs)?;
            topic_log_config(&self.logs.broker_log(), &configs)?;
            if validate_only {
                return Ok(topic);
            }
            // The log manager applies the committed overrides to every partition log.
            self.commit(&config_changes(
                RESOURCE_TOPIC,
                name,
                &topic.configs,
                &configs,
            ))?;
            self.get(name).ok_or_else(|| missing_log(name).into())
        })
    }

    /// A group's config overrides (Kafka's GROUP config resource: `share.auto.offset.reset`),
    /// computed from the current ones under the catalog lock and committed as ConfigRecords.
    pub fn update_group_configs<E>(
        &self,
        group_id: &str,
        mut change: impl FnMut(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, E>,
        validate_only: bool,
    ) -> Result<Result<(), E>, io::Error> {
        self.decide(|| {
            let current = self.image().configs_of(RESOURCE_GROUP, group_id);
            let configs = match change(&current) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            if !validate_only {
                self.commit(&config_changes(
                    RESOURCE_GROUP,
                    group_id,
                    &current,
                    &configs,
                ))?;
            }
            Ok(Ok(()))
        })
    }

    /// New broker-wide log defaults (dynamic broker configs): every topic's partitions get their
    /// topic overrides laid over them, at once.
    pub fn set_broker_log(&self, log: LogConfig) {
        let _guard = self.create_lock.lock();
        self.logs.set_broker_log(log);
    }

    /// Appends `records` to the metadata log as one batch, replays them into the image and
    /// publishes the change (create_lock held, so the image and the publishers follow the log's
    /// order). The logs the change makes are made first (`LogManager::prepare`).
    fn commit(&self, records: &[MetadataRecord]) -> io::Result<()> {
        self.commit_at(records, crate::broker::now_ms())
    }

    /// `commit`, the logs it makes starting at `logs_now_ms` (the broker's clock; the metadata
    /// log's append time is the wall clock's).
    fn commit_at(&self, records: &[MetadataRecord], logs_now_ms: i64) -> io::Result<()> {
        self.commit_with(records, logs_now_ms, Writer::Any)
    }

    fn commit_with(
        &self,
        records: &[MetadataRecord],
        logs_now_ms: i64,
        writer: Writer,
    ) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // The logs made, the records appended and the logs deleted are one change for a snapshot.
        let _change = self.logs.gate().enter();
        let base = self.image();
        let mut delta = MetadataDelta::new(Arc::clone(&base));
        for r in records {
            // Records the catalog validated always replay; a failure here is a bug.
            delta.replay(r).map_err(io::Error::other)?;
        }
        self.logs.prepare(&delta, &delta.apply(), logs_now_ms)?;
        let now_ms = crate::broker::now_ms();
        // Decided on `base`: a quorum commits it only if nothing came after (`append_decided`).
        let decided_on = base.provenance.last_offset;
        let appended = self
            .metadata_log
            .append_decided(records, decided_on, writer, now_ms);
        let last = match appended {
            Ok(last) => last,
            // Refused as decided on a stale image, or failed: nothing of it is committed.
            Err(e) => {
                self.logs.abort();
                return Err(io::Error::other(e));
            }
        };
        if last + 1 - records.len() as i64 != base.provenance.last_offset + 1 {
            // Other batches came between the image and this one (a quorum's other writers, a
            // new leader's control batch): the log has them all, in order, this one too.
            let caught_up = self.catch_up_locked();
            self.logs.abort();
            return caught_up;
        }
        delta.set_provenance(Provenance {
            last_offset: last,
            last_epoch: base.provenance.last_epoch,
            last_timestamp: now_ms,
        });
        let image = Arc::new(delta.apply());
        *self.image.write() = Arc::clone(&image);
        self.publish(&delta, &image);
        Ok(())
    }

    /// Replays and publishes the committed batches after the image, one change each, as
    /// `commit` does its own (create_lock held).
    fn catch_up_locked(&self) -> io::Result<()> {
        let _change = self.logs.gate().enter();
        let mut image = self.image();
        let mut from = image.provenance.last_offset + 1;
        // Behind the log start (a voter that installed the leader's snapshot, an observer that
        // fetched one): the newest snapshot in place of the log it missed.
        if from < self.metadata_log.log_start_offset() {
            let log = &self.metadata_log;
            if let Some(s) = log.latest_snapshot().map_err(io::Error::other)? {
                let delta = metadata_log::snapshot_delta(Arc::clone(&image), &s)
                    .map_err(io::Error::other)?;
                image = Arc::new(delta.apply());
                *self.image.write() = Arc::clone(&image);
                self.publish(&delta, &image);
                from = s.id.end_offset;
            }
        }
        for batch in self.metadata_log.read(from).map_err(io::Error::other)? {
            let delta = batch_delta(Arc::clone(&image), &batch, from);
            image = Arc::new(delta.apply());
            *self.image.write() = Arc::clone(&image);
            self.publish(&delta, &image);
        }
        Ok(())
    }

    /// Where other nodes append to the metadata log too (see `MetadataLog::committed`), the
    /// committed end offset as it moves: `catch_up` on each move (see `follow_metadata` in lib.rs).
    pub fn committed(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        self.metadata_log.committed()
    }

    /// The metadata quorum as this node sees it; `None` for a single node's local log.
    pub fn quorum_state(&self) -> Option<metadata_log::QuorumState> {
        self.metadata_log.quorum_state()
    }

    /// The metadata quorum as its leader sees it, asked of the leader (see
    /// `MetadataLog::describe_quorum`); `None` for a single node's local log.
    pub fn describe_quorum(&self) -> io::Result<Option<metadata_log::QuorumState>> {
        self.metadata_log
            .describe_quorum()
            .map_err(io::Error::other)
    }

    /// Replays and publishes the batches other nodes committed since the image.
    pub fn catch_up(&self) -> io::Result<()> {
        let _guard = self.create_lock.lock();
        self.catch_up_locked()
    }

    /// Gives a committed change to every publisher, in order.
    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
        let publishers = self.publishers.read().clone();
        for p in publishers {
            tracing::trace!(publisher = p.name(), "publishing a metadata change");
            p.on_metadata_update(self, delta, image);
        }
    }

    /// A change of the image alone (no log to create or delete), decided on the image it
    /// applies to: `decide` returns the records to commit and its answer; the records are
    /// appended and replayed before the answer is given back (SCRAM credentials).
    pub fn change_image<R>(
        &self,
        mut decide: impl FnMut(&MetadataImage) -> (Vec<MetadataRecord>, R),
    ) -> io::Result<R> {
        self.decide(|| {
            let (records, answer) = decide(&self.image());
            self.commit(&records)?;
            Ok(answer)
        })
    }

    /// Runs `attempt` (decide on the image, then commit) under the catalog lock, so that two
    /// writes of this process never decide on the same image. In a quorum another node may
    /// have committed after the image (a write through another process, the active
    /// controller's own decisions): the quorum then refuses the commit (`StaleImage`, see
    /// `MetadataLog::append_decided`) and `attempt` runs again on the caught-up image, as
    /// Kafka's controller decides each write on its latest state. After `MAX_DECISIONS` the
    /// write fails with the stale image's error (REQUEST_TIMED_OUT: the log kept moving).
    fn decide<R, E: MaybeStale + From<io::Error>>(
        &self,
        mut attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, E> {
        let _guard = self.create_lock.lock();
        let mut decision = 1;
        loop {
            match attempt() {
                Err(e) if e.is_stale() && decision < MAX_DECISIONS => {
                    tracing::debug!(
                        decision,
                        "a metadata write decided on a stale image; deciding again"
                    );
                    self.catch_up_locked()?;
                    decision += 1;
                }
                r => return r,
            }
        }
    }

    /// The metadata image: topics, their partitions' replicas and leaders, configs.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.read())
    }

    /// Flushes the metadata log (clean shutdown).
    pub fn close_metadata_log(&self, now_ms: i64) -> io::Result<()> {
        self.metadata_log.close(now_ms).map_err(io::Error::other)
    }

    /// The data directory's write gate (see `log::manager::WriteGate`).
    pub fn write_gate(&self) -> &crate::log::manager::WriteGate {
        self.logs.gate()
    }

    /// The data directory (DescribeLogDirs).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Writes every log's recovery point to the data directory's
    /// `recovery-point-offset-checkpoint` (Kafka's LogManager.checkpointLogRecoveryOffsets), so
    /// that a restart after a crash verifies only what was not flushed.
    pub fn checkpoint_recovery_points(&self) -> io::Result<()> {
        self.logs.checkpoint_recovery_points()
    }

    /// Every partition of every topic, for background work (flush, retention, shutdown).
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.logs.partitions()
    }

    /// See `LogManager::checkpoint_high_watermarks`.
    pub fn checkpoint_high_watermarks(&self) -> io::Result<()> {
        self.logs.checkpoint_high_watermarks()
    }

    /// See `LogManager::restore_high_watermarks`.
    pub fn restore_high_watermarks(&self) {
        self.logs.restore_high_watermarks()
    }
}

/// A committed topic or partition whose log the log manager could not make (it says why).
fn missing_log(name: &str) -> io::Error {
    io::Error::other(format!("the log of topic {name} could not be made"))
}

/// Appends `records`, decided on `image`, to `log` as one batch and returns `image` with them
/// replayed.
fn commit_to(
    log: &dyn MetadataLog,
    image: impl Into<Arc<MetadataImage>>,
    records: &[MetadataRecord],
    now_ms: i64,
) -> io::Result<MetadataImage> {
    let image = image.into();
    if records.is_empty() {
        return Ok((*image).clone());
    }
    let last = log
        .append_decided(records, image.provenance.last_offset, Writer::Any, now_ms)
        .map_err(io::Error::other)?;
    let batch = MetadataBatch {
        base_offset: last + 1 - records.len() as i64,
        epoch: image.provenance.last_epoch,
        append_time_ms: now_ms,
        records: records.to_vec(),
    };
    // Records the catalog validated always replay; a failure here is a bug, and the log, not
    // the image, is what the next start-up believes.
    replay_batch(image, &batch, 0).map_err(io::Error::other)
}

/// Where the partitions of `assignment` go on `brokers`: placed by the striped placer from a
/// random start, or the client's lists checked as Kafka's controller checks them (a manual list
/// must have `replication_factor` replicas when that is not 0). The first replica leads.
fn place(
    brokers: &BTreeMap<i32, BrokerRegistration>,
    assignment: &Assignment,
    replication_factor: usize,
) -> Result<Placed, PlacementError> {
    match assignment {
        Assignment::Placed {
            partitions,
            replication_factor,
        } => {
            let start = (Uuid::new_v4().as_u128() % brokers.len().max(1) as u128) as usize;
            let lists = placement::place(brokers, *partitions, *replication_factor, start)?;
            // Kafka's createTopic: the ISR is the placed replicas on active brokers. A fenced
            // one (registered, not yet unfenced) only makes up the numbers, and joins through
            // its leader's AlterPartition once it fetches (or at once in one process).
            lists
                .into_iter()
                .map(|r| Ok((r.clone(), placement::placed_in_sync(brokers, &r)?)))
                .collect()
        }
        Assignment::Manual(lists) => {
            let rf = match replication_factor {
                0 => lists.first().map(Vec::len),
                n => Some(n),
            };
            let mut out = Vec::with_capacity(lists.len());
            for (i, replicas) in lists.iter().enumerate() {
                placement::validate_manual(brokers, replicas, rf)?;
                let isr = placement::active_replicas(brokers, replicas, i as i32)?;
                out.push((replicas.clone(), isr));
            }
            Ok(out)
        }
    }
}

/// The records that create `desc`'s partitions from `first` on (a whole topic when `first` is
/// 0: its TopicRecord, every PartitionRecord, a ConfigRecord per override), the partitions'
/// replicas and ISR from `placed` (one entry per new partition), led by their first in-sync
/// replica at epoch 0, as Kafka's controller writes a new partition.
fn topic_records(desc: &topic::TopicFile, first: i32, placed: &Placed) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::Topic {
        name: desc.name.clone(),
        topic_id: desc.topic_id,
    }];
    for (p, (replicas, isr)) in (first..desc.partitions).zip(placed) {
        let mut record = PartitionRecord::new_in_sync(desc.topic_id, p, replicas.clone());
        record.leader = isr.first().copied().unwrap_or(records::NO_LEADER);
        record.isr = isr.clone();
        out.push(MetadataRecord::Partition(record));
    }
    let empty = BTreeMap::new();
    out.extend(config_changes(
        RESOURCE_TOPIC,
        &desc.name,
        &empty,
        &desc.configs,
    ));
    out
}

/// ConfigRecords that turn a topic's overrides `old` into `new` (a null value removes one).
fn config_changes(
    resource_type: i8,
    resource: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &str, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type,
            resource_name: resource.to_string(),
            name: name.to_string(),
            value: value.cloned(),
        })
    };
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| record(k, None));
    let set = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| record(k, Some(v)));
    removed.chain(set).collect()
}

/// Moves an earlier release's topic files (`gregor-metadata/topics/*.properties`) into the
/// metadata log: each topic the image lacks gets its records, then the file goes. A crash
/// between the two leaves a file whose topic is already in the image, which is just removed.
fn migrate_topic_files(
    log: &dyn MetadataLog,
    data_dir: &Path,
    mut image: MetadataImage,
    node_id: i32,
    now_ms: i64,
) -> io::Result<MetadataImage> {
    let dir = data_dir.join(TOPICS_DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(image);
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "properties") {
            continue;
        }
        let text = fs::read_to_string(&path)?;
        let Some(desc) = topic::TopicFile::parse(&text) else {
            tracing::warn!(file = %path.display(), "leaving an unreadable topic file alone");
            continue;
        };
        let clash = image.topics.get_by_name(&desc.name).map(|t| t.id);
        if image.topics.get(desc.topic_id).is_none() && clash.is_none() {
            let placed = vec![(vec![node_id], vec![node_id]); desc.partitions as usize];
            let records = topic_records(&desc, 0, &placed);
            image = commit_to(log, image, &records, now_ms)?;
            tracing::info!(topic = %desc.name, "migrated a topic into the metadata log");
        }
        fs::remove_file(&path)?;
    }
    fs::File::open(&dir)?.sync_all()?;
    Ok(image)
}

/// The configs Kafka gives its internal topics when it creates them: `__consumer_offsets` is
/// compacted (only the newest offset and group record per key matter) with
/// offsets.topic.segment.bytes segments, as is `__transaction_state`, which is also
/// uncompressed (TransactionStateManager.transactionTopicConfigs). `__share_group_state` is kept
/// whole instead (ShareCoordinatorService: delete policy, no retention): its snapshots make old
/// updates redundant, not later records with the same key.
fn internal_topic_configs(name: &str) -> BTreeMap<String, String> {
    if !is_internal_name(name) {
        return BTreeMap::new();
    }
    if name == crate::share::coordinator::SHARE_GROUP_STATE_TOPIC {
        return [
            ("cleanup.policy", "delete"),
            ("retention.ms", "-1"),
            ("segment.bytes", "104857600"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    }
    let mut configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if name == crate::txn::coordinator::TRANSACTION_STATE_TOPIC {
        configs.insert("compression.type".into(), "uncompressed".into());
    }
    configs
}

/// Appends `records` to the metadata log of a closed data directory, as a run that died between
/// committing them and publishing them would leave it.
#[cfg(test)]
pub(crate) fn append_unpublished(data_dir: &Path, records: &[MetadataRecord]) {
    let log = LocalMetadataLog::open(Arc::new(FileStorage), data_dir, false, 0).unwrap();
    log.append(records, 0).unwrap();
    log.close(0).unwrap();
}

/// A random topic id, avoiding the values Kafka reserves (zero, the metadata topic's id) and ids
/// whose text form starts with '-' (Kafka's Uuid.randomUuid does the same, for CLI parsing).
fn new_topic_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if id.as_u128() > 1 && !topic::kafka_uuid_string(id).starts_with('-') {
            return id;
        }
    }
}

/// Writes `text` to `path` via a temporary file, fsync and rename.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::manager::delete_dir_name;
    use crate::log::partition::PartitionLog;

    /// The internal topics' replication factor on first use: in one process capped at its
    /// brokers; in a cluster of processes Kafka's settings, refused with fewer brokers
    /// (FindCoordinator's COORDINATOR_NOT_AVAILABLE), `__share_group_state` kept local.
    #[test]
    fn internal_topics_take_their_replication_factor_setting_in_a_cluster_of_processes() {
        let dir = tempfile::tempdir().unwrap();
        let one = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let offsets = one.get_or_create("__consumer_offsets", 2, 0).unwrap();
        let image = one.image();
        let reg = &image.topics.get(offsets.topic_id).unwrap().partitions[&0];
        assert_eq!(reg.replicas.len(), 1, "capped at the one broker");
        drop((offsets, image, one));

        let dir = tempfile::tempdir().unwrap();
        let cluster = Catalog::open(dir.path(), LogConfig::default(), true, 0)
            .unwrap()
            .with_data_brokers([DEFAULT_NODE_ID])
            .with_internal_replication_factors(3, 2);
        for topic in ["__consumer_offsets", "__transaction_state"] {
            let refused = cluster.get_or_create(topic, 2, 0).err();
            assert!(
                matches!(refused, Some(CreateTopicError::Placement(_))),
                "{topic}: {refused:?}"
            );
        }
        let cluster = cluster.with_internal_replication_factors(1, 1);
        assert!(cluster.get_or_create("__transaction_state", 2, 0).is_ok());
        assert!(cluster.get_or_create("__share_group_state", 2, 0).is_ok());
    }

    /// A replicated log's high watermark is checkpointed (`replication-offset-checkpoint`, in
    /// Kafka's format) and given back at start-up; a log that keeps none is not in the file and
    /// keeps its log end.
    #[test]
    fn high_watermarks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.create("orders", 2, 1, BTreeMap::new(), 0).unwrap();
        for p in &t.partitions {
            for _ in 0..5 {
                let batch = crate::log::batch::tests::make_batch(&[b"x"], 1, None);
                p.append(&batch, 9, 0).unwrap();
            }
        }
        t.partitions[0].with_log(|l| l.set_high_watermark(3));
        cat.checkpoint_high_watermarks().unwrap();
        let file = dir
            .path()
            .join(crate::log::checkpoint::REPLICATION_CHECKPOINT);
        assert_eq!(fs::read_to_string(&file).unwrap(), "0\n1\norders 0 3\n");
        drop((t, cat));
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.get("orders").unwrap();
        assert_eq!(
            t.partitions[0].offsets(),
            (0, 5),
            "not before it is asked for"
        );
        cat.restore_high_watermarks();
        assert_eq!(t.partitions[0].offsets(), (0, 3));
        assert_eq!(t.partitions[1].offsets(), (0, 5));
    }

    #[test]
    fn create_reopen_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.create("orders", 3, 1, BTreeMap::new(), 0).unwrap();
        assert_eq!(t.partitions.len(), 3);
        assert!(matches!(
            cat.create("orders", 1, 1, BTreeMap::new(), 0),
            Err(CreateTopicError::AlreadyExists(_))
        ));
        assert!(matches!(
            cat.create("bad name", 1, 1, BTreeMap::new(), 0),
            Err(CreateTopicError::InvalidName(_))
        ));
        assert!(matches!(
            cat.create("x", 0, 1, BTreeMap::new(), 0),
            Err(CreateTopicError::InvalidPartitions)
        ));
        assert!(matches!(
            cat.create("x", 1, 3, BTreeMap::new(), 0),
            Err(CreateTopicError::Placement(
                PlacementError::ReplicationFactor(_)
            ))
        ));
        let mut bad = BTreeMap::new();
        bad.insert("retention.mss".to_string(), "1".to_string());
        assert!(matches!(
            cat.create("x", 1, 1, bad, 0),
            Err(CreateTopicError::InvalidConfig(_))
        ));
        let id = t.topic_id;
        drop(cat);
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.get("orders").unwrap();
        assert_eq!((t.topic_id, t.partitions.len()), (id, 3));
        assert_eq!(cat.get_by_id(id).unwrap().name, "orders");
        assert!(dir.path().join("orders-2/partition.metadata").exists());
    }

    /// The active controller's decisions commit to the metadata log: an AlterPartition from a
    /// partition's leader shrinks its ISR (and a stale repeat is refused), a broker whose
    /// session expired is fenced once (its partitions elect another leader), and the image after
    /// a restart has both.
    #[test]
    fn controller_decisions_are_committed() {
        use crate::metadata::alter_partition::AlterPartitionRequest;
        let dir = tempfile::tempdir().unwrap();
        let policy = ElectionPolicy::default();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let brokers = (1..=3)
            .map(|id| RegisterBrokerRecord::bare(id, 0, false))
            .collect();
        cat.register_brokers(brokers, &policy).unwrap();
        let t = cat.create("t", 1, 3, BTreeMap::new(), 0).unwrap();
        let image = cat.image();
        let reg = image.topics.get(t.topic_id).unwrap().partitions[&0].clone();
        let follower = reg
            .replicas
            .iter()
            .copied()
            .find(|&r| r != reg.leader)
            .unwrap();
        let request = AlterPartitionRequest {
            broker_id: reg.leader,
            broker_epoch: image.brokers[&reg.leader].epoch,
            topic_id: t.topic_id,
            partition: 0,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            new_isr: vec![(reg.leader, -1), (follower, -1)],
        };
        let answer = cat.alter_partition(&request, &policy).unwrap();
        assert_eq!(answer.error_code, crate::protocol::errors::NONE);
        let isr = |cat: &Catalog| {
            cat.image().topics.get(t.topic_id).unwrap().partitions[&0]
                .isr
                .clone()
        };
        assert_eq!(isr(&cat), vec![reg.leader, follower]);
        let again = cat.alter_partition(&request, &policy).unwrap();
        assert_eq!(
            again.error_code,
            crate::protocol::errors::INVALID_UPDATE_VERSION
        );
        let epoch = cat.image().brokers[&reg.leader].epoch;
        assert!(cat
            .fence_expired_broker(reg.leader, epoch, &policy)
            .unwrap());
        assert!(!cat
            .fence_expired_broker(reg.leader, epoch, &policy)
            .unwrap());
        drop(cat);
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let after = cat.image().topics.get(t.topic_id).unwrap().partitions[&0].clone();
        assert_eq!((after.leader, after.isr), (follower, vec![follower]));
        assert!(cat.image().brokers[&reg.leader].fenced);
    }

    #[test]
    fn delete_removes_files_and_a_recreate_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.create("gone", 2, 1, BTreeMap::new(), 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"x"], 1, None);
        t.partitions[0].append(&batch, 9, 0).unwrap();
        let keep = cat.create("kept", 1, 1, BTreeMap::new(), 0).unwrap();
        keep.partitions[0].append(&batch, 9, 0).unwrap();
        let id = t.topic_id;
        cat.delete("gone").unwrap();
        assert!(cat.get("gone").is_none() && cat.get_by_id(id).is_none());
        assert!(!dir.path().join("gone-0").exists() && !dir.path().join("gone-1").exists());
        // The old partition refuses writes; the other topic is untouched.
        assert!(t.partitions[0].append(&batch, 9, 0).is_err());
        assert_eq!(keep.partitions[0].offsets(), (0, 1));
        assert!(matches!(
            cat.delete("gone"),
            Err(TopicAdminError::UnknownTopic)
        ));
        let again = cat.create("gone", 1, 1, BTreeMap::new(), 0).unwrap();
        assert_ne!(again.topic_id, id);
        assert_eq!(again.partitions[0].offsets(), (0, 0));
        drop((cat, t, again, keep));
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        assert_eq!(cat.all().len(), 2);
        assert_eq!(cat.get("kept").unwrap().partitions[0].offsets(), (0, 1));
    }

    fn files_of(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A crash between a topic's RemoveTopicRecord and the removal of its logs (the record is
    /// committed, the publishers never ran): start-up removes the stray logs and what a rename
    /// left, and a topic created again under the name starts empty.
    #[test]
    fn a_removal_committed_before_a_crash_is_finished_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.create("t", 2, 1, BTreeMap::new(), 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"x"], 1, None);
        t.partitions[0].append(&batch, 9, 0).unwrap();
        let id = t.topic_id;
        drop((cat, t));
        append_unpublished(dir.path(), &[MetadataRecord::RemoveTopic { topic_id: id }]);
        fs::create_dir_all(dir.path().join("t-0.abc-delete")).unwrap();
        // A directory no creation committed (a crash while a CreatePartitions made it).
        fs::create_dir_all(dir.path().join("kept-1")).unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        assert!(cat.get("t").is_none() && cat.get_by_id(id).is_none());
        let left: Vec<String> = files_of(dir.path())
            .into_iter()
            .filter(|n| n.starts_with("t-") || n.starts_with("kept"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let t = cat.create("t", 2, 1, BTreeMap::new(), 0).unwrap();
        assert_ne!(t.topic_id, id);
        assert_eq!(t.partitions[0].offsets(), (0, 0));
    }

    /// A crash between a topic's records and its logs: start-up makes the logs of every
    /// partition the image has.
    #[test]
    fn a_creation_committed_before_a_crash_gets_its_logs_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        cat.create("grown", 1, 1, BTreeMap::new(), 0).unwrap();
        let grown = cat.get("grown").unwrap().topic_id;
        drop(cat);
        let made = topic::TopicFile {
            name: "made".into(),
            topic_id: new_topic_id(),
            partitions: 2,
            configs: BTreeMap::from([("retention.ms".to_string(), "5000".to_string())]),
        };
        let placed = vec![(vec![DEFAULT_NODE_ID], vec![DEFAULT_NODE_ID]); 2];
        let more = topic::TopicFile {
            name: "grown".into(),
            topic_id: grown,
            partitions: 3,
            configs: BTreeMap::new(),
        };
        let mut records = topic_records(&made, 0, &placed);
        records.extend(topic_records(&more, 1, &placed).into_iter().skip(1));
        append_unpublished(dir.path(), &records);
        let cat = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let t = cat.get("made").unwrap();
        assert_eq!((t.topic_id, t.partitions.len()), (made.topic_id, 2));
        assert_eq!(t.partitions[1].with_log(|l| l.config().retention_ms), 5000);
        let meta = fs::read_to_string(dir.path().join("made-1/partition.metadata")).unwrap();
        assert!(meta.contains(&topic::kafka_uuid_string(made.topic_id)));
        assert_eq!(cat.get("grown").unwrap().partitions.len(), 3);
        assert!(dir.path().join("grown-2").is_dir());
    }

    /// A topic removed and created again under its name while the old directory stayed (a crash
    /// before the removal reached the disk): the old log names the old topic id in its
    /// `partition.metadata`, so it is a stray, and its records never show in the new topic.
    #[test]
    fn an_old_log_never_shows_in_a_topic_recreated_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let old = cat.create("s", 1, 1, BTreeMap::new(), 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"old"], 1, None);
        old.partitions[0].append(&batch, 9, 0).unwrap();
        let old_id = old.topic_id;
        drop((cat, old));
        let new = topic::TopicFile {
            name: "s".into(),
            topic_id: new_topic_id(),
            partitions: 1,
            configs: BTreeMap::new(),
        };
        let placed = vec![(vec![DEFAULT_NODE_ID], vec![DEFAULT_NODE_ID])];
        let mut records = vec![MetadataRecord::RemoveTopic { topic_id: old_id }];
        records.extend(topic_records(&new, 0, &placed));
        append_unpublished(dir.path(), &records);
        let cat = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let t = cat.get("s").unwrap();
        assert_eq!(t.topic_id, new.topic_id);
        assert_eq!(t.partitions[0].offsets(), (0, 0));
        let meta = fs::read_to_string(dir.path().join("s-0/partition.metadata")).unwrap();
        assert!(meta.contains(&topic::kafka_uuid_string(new.topic_id)));
    }

    /// A removal and a creation under the same name in one batch (gregor commits them apart;
    /// another writer of the metadata might not): the new topic's logs are never made in the
    /// directories the old topic's logs still hold, so the change is refused.
    #[test]
    fn a_batch_reusing_a_name_never_touches_the_old_logs() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let old = cat.create("r", 1, 1, BTreeMap::new(), 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"old"], 1, None);
        old.partitions[0].append(&batch, 9, 0).unwrap();
        let new = topic::TopicFile {
            name: "r".into(),
            topic_id: new_topic_id(),
            partitions: 1,
            configs: BTreeMap::new(),
        };
        let placed = vec![(vec![DEFAULT_NODE_ID], vec![DEFAULT_NODE_ID])];
        let mut records = vec![MetadataRecord::RemoveTopic {
            topic_id: old.topic_id,
        }];
        records.extend(topic_records(&new, 0, &placed));
        let guard = cat.create_lock.lock();
        assert!(cat.commit(&records).is_err());
        drop(guard);
        assert_eq!(cat.get("r").unwrap().topic_id, old.topic_id);
        assert_eq!(old.partitions[0].offsets(), (0, 1));
        assert!(old.partitions[0].append(&batch, 9, 0).is_ok());
    }

    /// A change whose logs cannot be made is not committed: the metadata log, the image and
    /// the data directory are as before it.
    #[test]
    fn a_change_whose_logs_cannot_be_made_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        cat.create("g", 1, 1, BTreeMap::new(), 0).unwrap();
        // A file where the third partition's directory must go.
        fs::write(dir.path().join("g-2"), b"in the way").unwrap();
        let before = cat.image();
        assert!(matches!(
            cat.add_partitions("g", 4, None, false, 0),
            Err(TopicAdminError::Storage(_))
        ));
        assert_eq!(*cat.image(), *before);
        assert_eq!(cat.get("g").unwrap().partitions.len(), 1);
        assert!(!dir.path().join("g-1").exists());
        drop(cat);
        let cat = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        assert_eq!(
            cat.image()
                .topics
                .get_by_name("g")
                .unwrap()
                .partitions
                .len(),
            1
        );
    }

    /// Kafka's log object never outlives its deletion: LogManager.asyncDelete renames the
    /// directory (UnifiedLog.renameDir) and the deleted log is never scheduled again. Here
    /// retention still runs on a deleted partition a background pass was holding while a topic of
    /// the same name was created: it must not touch the new topic's files.
    #[test]
    fn a_deleted_partitions_retention_never_touches_a_recreated_topic() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let expiring = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let old = cat.create("r", 1, 1, expiring.clone(), 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"old"], 1, None);
        old.partitions[0].append(&batch, 9, 0).unwrap();
        cat.delete("r").unwrap();
        let new = cat.create("r", 1, 1, expiring, 0).unwrap();
        let fresh = crate::log::batch::tests::make_batch(&[b"new"], 1_000_000, None);
        new.partitions[0].append(&fresh, 9, 0).unwrap();
        // The old partition's records are long expired.
        let deleted = old.partitions[0].with_log(|l| l.apply_retention(1_000_500).unwrap());
        assert_eq!(deleted, 0, "a deleted log does no more work");
        let files: Vec<String> = fs::read_dir(dir.path().join("r-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".log"))
            .collect();
        assert_eq!(files, vec!["00000000000000000000.log".to_string()]);
        drop((cat, old, new));
        let cat = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        assert_eq!(cat.get("r").unwrap().partitions[0].offsets(), (0, 1));
    }

    /// UnifiedLog.logDeleteDirName: the topic part is cut so the name fits in 255 bytes; start-up
    /// removes such a directory a crash left behind.
    #[test]
    fn delete_dir_names_fit_in_a_file_name_and_are_cleaned_at_start_up() {
        let id = new_topic_id();
        assert_eq!(
            delete_dir_name("short", 3, id),
            format!("short-3.{}-delete", id.simple())
        );
        let long = delete_dir_name(&"t".repeat(249), 12_345, id);
        assert_eq!(long.len(), 255);
        assert!(
            long.starts_with("ttt") && long.ends_with(&format!("-12345.{}-delete", id.simple()))
        );
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(&long)).unwrap();
        fs::write(
            dir.path().join(&long).join("00000000000000000000.log"),
            b"x",
        )
        .unwrap();
        let _cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        assert!(!dir.path().join(&long).exists());
    }

    #[test]
    fn partitions_grow_only_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        cat.create("g", 2, 1, BTreeMap::new(), 0).unwrap();
        assert!(matches!(
            cat.add_partitions("g", 2, None, false, 0),
            Err(TopicAdminError::SamePartitionCount(2))
        ));
        assert!(matches!(
            cat.add_partitions("g", 1, None, false, 0),
            Err(TopicAdminError::FewerPartitions { .. })
        ));
        assert!(matches!(
            cat.add_partitions("g", 4, Some(vec![vec![1]]), false, 0),
            Err(TopicAdminError::InvalidReplicaAssignment(_))
        ));
        cat.add_partitions("g", 5, None, true, 0).unwrap();
        assert_eq!(cat.get("g").unwrap().partitions.len(), 2);
        cat.add_partitions("g", 5, None, false, 0).unwrap();
        assert_eq!(cat.get("g").unwrap().partitions.len(), 5);
        drop(cat);
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        assert_eq!(cat.get("g").unwrap().partitions.len(), 5);
    }

    #[test]
    fn topic_configs_apply_live_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        cat.create("c", 1, 1, BTreeMap::new(), 0).unwrap();
        let bad = BTreeMap::from([("retention.ms".to_string(), "x".to_string())]);
        assert!(matches!(
            cat.set_topic_configs("c", bad, false),
            Err(TopicAdminError::InvalidConfig(_))
        ));
        let small = BTreeMap::from([("max.message.bytes".to_string(), "10".to_string())]);
        cat.set_topic_configs("c", small.clone(), true).unwrap();
        assert!(cat.get("c").unwrap().configs.is_empty());
        cat.set_topic_configs("c", small, false).unwrap();
        let t = cat.get("c").unwrap();
        assert_eq!(t.configs["max.message.bytes"], "10");
        let batch = crate::log::batch::tests::make_batch(&[b"too big for ten bytes"], 1, None);
        assert!(t.partitions[0].append(&batch, 9, 0).is_err());
        drop((cat, t));
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.get("c").unwrap();
        assert_eq!(t.configs["max.message.bytes"], "10");
        assert_eq!(
            t.partitions[0].with_log(|l| l.config().max_message_bytes),
            10
        );
    }

    /// A data directory as the previous release wrote it (one topic file per topic, with its
    /// id, partition count and configs) opens with every topic, id, config and record kept, now
    /// held by the metadata log, which Kafka's tools read (the file is gone once migrated).
    #[test]
    fn a_previous_release_data_directory_migrates_into_the_metadata_log() {
        let dir = tempfile::tempdir().unwrap();
        let topics = dir.path().join(TOPICS_DIR);
        fs::create_dir_all(&topics).unwrap();
        let old = topic::TopicFile {
            name: "legacy".into(),
            topic_id: new_topic_id(),
            partitions: 2,
            configs: BTreeMap::from([("retention.ms".to_string(), "86400000".to_string())]),
        };
        let internal = topic::TopicFile {
            name: "__consumer_offsets".into(),
            topic_id: new_topic_id(),
            partitions: 1,
            configs: internal_topic_configs("__consumer_offsets"),
        };
        for f in [&old, &internal] {
            let path = topics.join(format!(
                "{}.properties",
                topic::kafka_uuid_string(f.topic_id)
            ));
            fs::write(path, f.render()).unwrap();
        }
        // The records of a partition written by the previous release.
        let log_dir = dir.path().join("legacy-1");
        let mut log = PartitionLog::open(&log_dir, LogConfig::default(), true, 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"kept"], 1, None);
        log.append(&batch, 9, 0).unwrap();
        log.close(0).unwrap();
        drop(log);
        for _ in 0..2 {
            let cat = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
            let t = cat.get("legacy").unwrap();
            assert_eq!((t.topic_id, t.partitions.len()), (old.topic_id, 2));
            assert_eq!(t.configs, old.configs);
            assert_eq!(
                t.partitions[0].with_log(|l| l.config().retention_ms),
                86_400_000
            );
            assert_eq!(t.partitions[1].offsets(), (0, 1));
            assert_eq!(
                cat.get_by_id(internal.topic_id).unwrap().configs,
                internal.configs
            );
            assert_eq!(fs::read_dir(&topics).unwrap().count(), 0);
            let image = cat.image();
            let legacy = image.topics.get_by_name("legacy").unwrap();
            assert_eq!(legacy.id, old.topic_id);
            assert_eq!(legacy.partitions[&1].replicas, vec![DEFAULT_NODE_ID]);
            assert_eq!(image.configs_of(RESOURCE_TOPIC, "legacy"), old.configs);
            cat.close_metadata_log(0).unwrap();
        }
        let log = LocalMetadataLog::open(Arc::new(FileStorage), dir.path(), true, 0).unwrap();
        assert_eq!(load_image(&log).unwrap().topics.len(), 2);
    }

    /// Every change a topic goes through is a metadata record: a replay of the metadata log
    /// alone gives the catalog's topics, partitions and configs.
    #[test]
    fn topic_changes_are_metadata_records() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        cat.create("a", 1, 1, configs, 0).unwrap();
        cat.create("b", 1, 1, BTreeMap::new(), 0).unwrap();
        cat.add_partitions("a", 3, None, false, 0).unwrap();
        let retention = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        cat.set_topic_configs("a", retention.clone(), false)
            .unwrap();
        cat.delete("b").unwrap();
        assert!(matches!(
            cat.create("__cluster_metadata", 1, 1, BTreeMap::new(), 0),
            Err(CreateTopicError::MetadataTopic)
        ));
        let log = LocalMetadataLog::open(Arc::new(FileStorage), dir.path(), true, 0).unwrap();
        let image = load_image(&log).unwrap();
        assert_eq!(image, *cat.image());
        let names: Vec<_> = image.topics.iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, vec!["a"]);
        assert_eq!(image.topics.get_by_name("a").unwrap().partitions.len(), 3);
        assert_eq!(image.configs_of(RESOURCE_TOPIC, "a"), retention);
        assert!(image.configs_of(RESOURCE_TOPIC, "b").is_empty());
    }
}
