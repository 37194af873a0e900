//! Cluster metadata of this single node: topics, their ids, partitions and configs.
//!
//! On disk (all under the data directory):
//! - `meta.properties`: Kafka's `version=1`, `cluster.id=…`, `node.id=…` (the cluster id persists);
//! - `__cluster_metadata-0/`: the metadata log (`metadata_log`), Kafka's metadata records; topics,
//!   their ids, partitions and configs are what replaying it gives (`image::MetadataImage`);
//! - `<topic>-<partition>/partition.metadata`: Kafka's `version: 0` / `topic_id: …` file, so that
//!   Kafka's tools recognise the partition directories.
//!
//! A change is committed by appending its records to the metadata log, then replayed into the
//! image. A topic's records are appended last when it is created: a crash half-way leaves only
//! partition directories no topic owns, which start-up ignores and a later create wipes before
//! use. Deleting a topic appends its RemoveTopicRecord first (the point of no return), then
//! renames each partition directory to `<topic>-<partition>.<id>-delete` (Kafka's naming) and
//! removes it; start-up removes any such directory a crash left behind.
//!
//! Earlier releases kept one file per topic, `gregor-metadata/topics/<topic id>.properties`
//! (`topic::TopicFile`); start-up migrates each into the metadata log (same name, id, partition
//! count and configs) and removes the file once its records are committed.

pub mod election;
pub mod features;
pub mod image;
pub mod metadata_log;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod topic;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::{topic_log_config, ConfigError};
use crate::log::checkpoint::RecoveryPoints;
use crate::log::partition::{Partition, PartitionLog};
use crate::log::storage::{FileStorage, Storage};
use crate::log::LogConfig;
use election::ElectionPolicy;
use image::{BrokerRegistration, MetadataImage};
use metadata_log::{load_image, replay_batch, LocalMetadataLog, MetadataBatch, MetadataLog};
use placement::PlacementError;
use records::{
    ConfigRecord, MetadataRecord, PartitionRecord, RegisterBrokerRecord, RESOURCE_TOPIC,
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
/// for both), capped at the brokers there are, so that one broker serves as it always has.
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

pub struct Catalog {
    data_dir: PathBuf,
    /// The replica and leader of every partition while no broker is registered (unit tests, and
    /// the topics an earlier release's files migrate).
    node_id: i32,
    /// default.replication.factor, for topics created on first use.
    default_replication_factor: i16,
    /// Where topic changes are committed (see the module comment).
    metadata_log: Box<dyn MetadataLog>,
    /// The metadata log replayed; `topics` and `ids` hold the local logs of its topics.
    image: RwLock<Arc<MetadataImage>>,
    /// Where segment files are opened (the file system; a faulty one in tests).
    storage: Arc<dyn Storage>,
    /// Broker-wide log defaults (static and dynamic broker configs); topic configs overlay them.
    broker_log: RwLock<LogConfig>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Topic id to name, for the APIs that name topics by id (Produce v13, Fetch v13+).
    ids: RwLock<HashMap<Uuid, String>>,
    /// Serialises creations, deletions and changes of topics, so two racing auto-creates of one
    /// topic make one topic and a topic being deleted is not recreated half-way.
    create_lock: Mutex<()>,
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
        remove_deleted_dirs(data_dir);
        let recovery = match clean {
            true => RecoveryPoints::clean(),
            false => RecoveryPoints::after_crash(data_dir),
        };
        let log = LocalMetadataLog::open(Arc::clone(&storage), data_dir, clean, now_ms)
            .map_err(io::Error::other)?;
        let mut image = load_image(&log).map_err(io::Error::other)?;
        // A new metadata log starts with its finalized features, metadata.version first
        // (Kafka's bootstrap records); an older one gains those it lacks.
        let bootstrap = features::bootstrap_records(&image);
        if !bootstrap.is_empty() {
            image = commit_to(&log, image, &bootstrap, now_ms)?;
        }
        image = migrate_topic_files(&log, data_dir, image, node_id, now_ms)?;
        let mut topics = HashMap::new();
        for t in image.topics.iter() {
            let desc = topic::TopicFile {
                name: t.name.clone(),
                topic_id: t.id,
                partitions: t.partitions.len() as i32,
                configs: image.configs_of(RESOURCE_TOPIC, &t.name),
            };
            let name = desc.name.clone();
            let log_config = topic_log_config(&broker_log, &desc.configs).unwrap_or_else(|e| {
                tracing::warn!(topic = %name, error = %e, "ignoring invalid stored topic configs");
                broker_log.clone()
            });
            let topic = open_topic(
                data_dir,
                &storage,
                &name,
                desc,
                &log_config,
                &recovery,
                now_ms,
            )?;
            topics.insert(name, Arc::new(topic));
        }
        let ids = topics
            .iter()
            .map(|(name, t)| (t.topic_id, name.clone()))
            .collect();
        let catalog = Catalog {
            data_dir: data_dir.to_path_buf(),
            node_id,
            default_replication_factor: 1,
            metadata_log: Box::new(log),
            image: RwLock::new(Arc::new(image)),
            storage,
            broker_log: RwLock::new(broker_log),
            topics: RwLock::new(topics),
            ids: RwLock::new(ids),
            create_lock: Mutex::new(()),
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
                if log_epoch > reg.leader_epoch {
                    let mut record = reg.to_record(t.id, p);
                    record.leader_epoch = log_epoch;
                    record.partition_epoch += 1;
                    restated.push(MetadataRecord::Partition(record));
                } else {
                    self.sync_leader_epoch(&image, t.id, p);
                }
            }
        }
        if !restated.is_empty() {
            let _guard = self.create_lock.lock();
            self.commit(&restated)?;
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let name = self.ids.read().get(&id).cloned()?;
        self.get(&name)
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
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
            .topics
            .read()
            .keys()
            .filter(|t| topic::collides(name, t))
            .cloned()
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
        let brokers = self.brokers();
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
        Ok((topic_log_config(&self.broker_log.read(), configs)?, placed))
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
        let _guard = self.create_lock.lock();
        let (log_config, placed) = self.validate_assigned(name, assignment, &configs)?;
        let partitions = placed.len() as i32;
        let desc = topic::TopicFile {
            name: name.to_string(),
            topic_id: new_topic_id(),
            partitions,
            configs,
        };
        // Directories of this name that no topic owns are left-overs of a crash; never let their
        // records show up in the new topic.
        for p in 0..partitions {
            remove_stale_dir(&self.data_dir, name, p)?;
        }
        let created = open_topic(
            &self.data_dir,
            &self.storage,
            name,
            desc.clone(),
            &log_config,
            &RecoveryPoints::clean(),
            now_ms,
        )
        .and_then(|topic| {
            self.commit(&topic_records(&desc, 0, &placed))?;
            Ok(topic)
        });
        // A creation that failed half-way (no descriptors or space left) leaves nothing behind:
        // Kafka's controller creates a topic whole or not at all.
        let topic = created.inspect_err(|_| self.remove_partition_dirs(name, 0..partitions))?;
        let topic = Arc::new(topic);
        self.ids.write().insert(topic.topic_id, name.to_string());
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
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
            let gone: Vec<i32> = image
                .brokers
                .keys()
                .copied()
                .filter(|id| !brokers.iter().any(|n| n.broker_id == *id))
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
        .map(drop)
    }

    /// A broker of this process stops (`election::broker_fenced`); answers the partitions whose
    /// leader changed.
    pub fn fence_broker(&self, id: i32, policy: &ElectionPolicy) -> io::Result<Vec<(String, i32)>> {
        self.change_partitions(|image| Ok(election::broker_fenced(image, id, policy)))
    }

    /// A stopped broker of this process starts again (`election::broker_restarted`); answers
    /// the partitions whose leader changed.
    pub fn restart_broker(
        &self,
        id: i32,
        policy: &ElectionPolicy,
    ) -> io::Result<Vec<(String, i32)>> {
        self.change_partitions(|image| {
            election::broker_restarted(image, id, Uuid::new_v4(), policy)
        })
    }

    /// Commits the records `f` computes from the image (under the catalog lock, so no other
    /// change comes in between), then moves every partition log whose leader changed to its new
    /// leader epoch, which it stamps on the batches it appends from then on (Kafka's
    /// Partition.makeLeader). Answers those partitions (topic name, index).
    pub fn change_partitions(
        &self,
        f: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, image::ReplayError>,
    ) -> io::Result<Vec<(String, i32)>> {
        let _guard = self.create_lock.lock();
        let records = f(&self.image()).map_err(io::Error::other)?;
        self.commit(&records)?;
        let image = self.image();
        let mut moved = Vec::new();
        for r in &records {
            if let MetadataRecord::PartitionChange(c) = r {
                if c.leader != records::NO_LEADER_CHANGE {
                    self.sync_leader_epoch(&image, c.topic_id, c.partition_id);
                    if let Some(t) = image.topics.get(c.topic_id) {
                        moved.push((t.name.clone(), c.partition_id));
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Brings a partition log's leader epoch up to the image's.
    fn sync_leader_epoch(&self, image: &MetadataImage, topic_id: Uuid, p: i32) {
        let Some(epoch) = image
            .topics
            .get(topic_id)
            .and_then(|t| t.partitions.get(&p))
            .map(|r| r.leader_epoch)
        else {
            return;
        };
        let Some(partition) = self
            .get_by_id(topic_id)
            .and_then(|t| t.partition(p).cloned())
        else {
            return;
        };
        if let Err(e) = partition.set_leader_epoch(epoch) {
            tracing::error!(topic = %partition.topic, partition = p, error = %e, "could not move the log to its new leader epoch");
        }
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
            let live = self.brokers().values().filter(|b| !b.fenced).count();
            INTERNAL_TOPIC_REPLICATION_FACTOR.min(i16::try_from(live).unwrap_or(i16::MAX).max(1))
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

    /// Deletes a topic: it disappears from the catalog at once (so no request finds it), its
    /// partition logs refuse further writes, and its files are removed. Returns the topic.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicAdminError> {
        let _guard = self.create_lock.lock();
        let topic = self.get(name).ok_or(TopicAdminError::UnknownTopic)?;
        if topic.is_internal() {
            return Err(TopicAdminError::InternalTopic(name.to_string()));
        }
        self.commit(&[MetadataRecord::RemoveTopic {
            topic_id: topic.topic_id,
        }])?;
        self.topics.write().remove(name);
        self.ids.write().remove(&topic.topic_id);
        for p in &topic.partitions {
            let dir = self.data_dir.join(format!("{name}-{}", p.index));
            let doomed = self
                .data_dir
                .join(delete_dir_name(name, p.index, topic.topic_id));
            // Renamed under the partition lock, so no background work of the old log (cleaning,
            // retention) can write into a directory of the same name created after this.
            // A failure leaves files but no topic: start-up or a later create cleans up.
            if let Err(e) = p
                .with_log(|l| l.mark_deleted(&doomed))
                .and_then(|_| fs::remove_dir_all(&doomed))
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// The name of the topic with this id, or UNKNOWN_TOPIC_ID.
    pub fn name_of(&self, id: Uuid) -> Result<String, TopicAdminError> {
        self.ids
            .read()
            .get(&id)
            .cloned()
            .ok_or(TopicAdminError::UnknownTopicId)
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
        let _guard = self.create_lock.lock();
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
        let placed = place(&self.brokers(), &assignment, replication_factor as usize)?;
        if validate_only {
            return Ok(topic);
        }
        let log_config = topic_log_config(&self.broker_log.read(), &topic.configs)?;
        let mut partitions = topic.partitions.clone();
        let grown = (current..count)
            .try_for_each(|p| {
                remove_stale_dir(&self.data_dir, name, p)?;
                partitions.push(Arc::new(open_partition(
                    &self.data_dir,
                    &self.storage,
                    name,
                    topic.topic_id,
                    p,
                    &log_config,
                    &RecoveryPoints::clean(),
                    now_ms,
                )?));
                Ok::<_, io::Error>(())
            })
            .map_err(TopicAdminError::from)
            .and_then(|()| {
                let desc = topic::TopicFile {
                    name: topic.name.clone(),
                    topic_id: topic.topic_id,
                    partitions: count,
                    configs: BTreeMap::new(),
                };
                let records = topic_records(&desc, current, &placed);
                // Only the partition records: the topic and its configs are there already.
                self.replace(
                    Topic {
                        name: topic.name.clone(),
                        topic_id: topic.topic_id,
                        partitions,
                        configs: topic.configs.clone(),
                    },
                    &records[1..],
                )
            });
        grown.inspect_err(|_| self.remove_partition_dirs(name, current..count))
    }

    /// Removes what a failed creation of these partitions made (their logs are closed by then).
    fn remove_partition_dirs(&self, name: &str, partitions: std::ops::Range<i32>) {
        for p in partitions {
            if let Err(e) = remove_stale_dir(&self.data_dir, name, p) {
                tracing::warn!(topic = name, partition = p, error = %e, "could not remove the directory of a failed creation");
            }
        }
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
        self.update_topic_configs(name, |_| Ok(configs), validate_only)
    }

    /// As `set_topic_configs`, with the new overrides computed from the current ones under the
    /// catalog lock, so concurrent incremental changes cannot lose each other's updates.
    pub fn update_topic_configs(
        &self,
        name: &str,
        change: impl FnOnce(
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, TopicAdminError>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicAdminError> {
        let _guard = self.create_lock.lock();
        let topic = self.get(name).ok_or(TopicAdminError::UnknownTopic)?;
        let configs = change(&topic.configs)?;
        let log_config = topic_log_config(&self.broker_log.read(), &configs)?;
        if validate_only {
            return Ok(topic);
        }
        let records = config_changes(name, &topic.configs, &configs);
        let changed = Topic {
            name: topic.name.clone(),
            topic_id: topic.topic_id,
            partitions: topic.partitions.clone(),
            configs,
        };
        let changed = self.replace(changed, &records)?;
        for p in &changed.partitions {
            p.with_log(|l| l.set_config(log_config.clone()));
        }
        Ok(changed)
    }

    /// New broker-wide log defaults (dynamic broker configs): every topic's partitions get their
    /// topic overrides laid over them, at once.
    pub fn set_broker_log(&self, log: LogConfig) {
        let _guard = self.create_lock.lock();
        *self.broker_log.write() = log.clone();
        for t in self.all() {
            let effective = topic_log_config(&log, &t.configs).unwrap_or_else(|_| log.clone());
            for p in &t.partitions {
                p.with_log(|l| l.set_config(effective.clone()));
            }
        }
    }

    /// Commits the `records` that change `topic` and swaps it into the catalog (create_lock
    /// held).
    fn replace(
        &self,
        topic: Topic,
        records: &[MetadataRecord],
    ) -> Result<Arc<Topic>, TopicAdminError> {
        self.commit(records)?;
        let topic = Arc::new(topic);
        self.topics
            .write()
            .insert(topic.name.clone(), Arc::clone(&topic));
        Ok(topic)
    }

    /// Appends `records` to the metadata log as one batch and replays them into the image
    /// (create_lock held, so the image follows the log's order).
    fn commit(&self, records: &[MetadataRecord]) -> io::Result<()> {
        let image = Arc::clone(&self.image.read());
        let next = commit_to(&*self.metadata_log, image, records, crate::broker::now_ms())?;
        *self.image.write() = Arc::new(next);
        Ok(())
    }

    /// A change of the image alone (no log to create or delete), decided on the image it
    /// applies to: `decide` returns the records to commit and its answer; the records are
    /// appended and replayed before the answer is given back (SCRAM credentials).
    pub fn change_image<R>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, R),
    ) -> io::Result<R> {
        let _guard = self.create_lock.lock();
        let (records, answer) = decide(&self.image());
        if !records.is_empty() {
            self.commit(&records)?;
        }
        Ok(answer)
    }

    /// The metadata image: topics, their partitions' replicas and leaders, configs.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.read())
    }

    /// Flushes the metadata log (clean shutdown).
    pub fn close_metadata_log(&self, now_ms: i64) -> io::Result<()> {
        self.metadata_log.close(now_ms).map_err(io::Error::other)
    }

    /// The data directory (DescribeLogDirs).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Writes every log's recovery point to the data directory's
    /// `recovery-point-offset-checkpoint` (Kafka's LogManager.checkpointLogRecoveryOffsets), so
    /// that a restart after a crash verifies only what was not flushed.
    pub fn checkpoint_recovery_points(&self) -> io::Result<()> {
        let entries = self
            .partitions()
            .iter()
            .map(|p| (p.topic.clone(), p.index, p.with_log(|l| l.recovery_point())))
            .collect();
        crate::log::checkpoint::write_recovery_points(&*self.storage, &self.data_dir, entries)
    }

    /// Every partition of every topic, for background work (flush, retention, shutdown).
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }
}

/// Appends `records` to `log` as one batch and returns `image` with them replayed.
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
    let last = log.append(records, now_ms).map_err(io::Error::other)?;
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
            Ok(lists.into_iter().map(|r| (r.clone(), r)).collect())
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
    out.extend(config_changes(&desc.name, &empty, &desc.configs));
    out
}

/// ConfigRecords that turn a topic's overrides `old` into `new` (a null value removes one).
fn config_changes(
    topic: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &str, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: topic.to_string(),
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
/// uncompressed (TransactionStateManager.transactionTopicConfigs).
fn internal_topic_configs(name: &str) -> BTreeMap<String, String> {
    if !is_internal_name(name) {
        return BTreeMap::new();
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

fn open_topic(
    data_dir: &Path,
    storage: &Arc<dyn Storage>,
    name: &str,
    desc: topic::TopicFile,
    log_config: &LogConfig,
    recovery: &RecoveryPoints,
    now_ms: i64,
) -> io::Result<Topic> {
    let mut partitions = Vec::with_capacity(desc.partitions as usize);
    for p in 0..desc.partitions {
        partitions.push(Arc::new(open_partition(
            data_dir,
            storage,
            name,
            desc.topic_id,
            p,
            log_config,
            recovery,
            now_ms,
        )?));
    }
    Ok(Topic {
        name: name.to_string(),
        topic_id: desc.topic_id,
        partitions,
        configs: desc.configs,
    })
}

#[allow(clippy::too_many_arguments)] // the identity of a partition and how to open it
fn open_partition(
    data_dir: &Path,
    storage: &Arc<dyn Storage>,
    name: &str,
    topic_id: Uuid,
    p: i32,
    log_config: &LogConfig,
    recovery: &RecoveryPoints,
    now_ms: i64,
) -> io::Result<Partition> {
    let dir = data_dir.join(format!("{name}-{p}"));
    fs::create_dir_all(&dir)?;
    let meta = dir.join("partition.metadata");
    if !meta.exists() {
        let text = format!(
            "version: 0\ntopic_id: {}\n",
            topic::kafka_uuid_string(topic_id)
        );
        write_atomically(&meta, &text)?;
    }
    let recovery = recovery.for_partition(name, p);
    let log = PartitionLog::open_on(
        Arc::clone(storage),
        &dir,
        log_config.clone(),
        recovery,
        now_ms,
    )?;
    Ok(Partition::new(name.to_string(), p, log))
}

/// Removes the directory of a partition that no topic owns (a crash during create or delete).
fn remove_stale_dir(data_dir: &Path, name: &str, p: i32) -> io::Result<()> {
    let dir = data_dir.join(format!("{name}-{p}"));
    if dir.exists() {
        tracing::warn!(dir = %dir.display(), "removing a partition directory no topic owns");
        fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// The name a deleted partition's directory is renamed to before it is removed:
/// `<topic>-<partition>.<topic id>-delete`, Kafka's form, with the topic cut short so that the
/// whole name stays within the 255 bytes a file name may have (UnifiedLog.logDeleteDirName;
/// topic names are ASCII, up to 249 characters). Start-up removes what a crash leaves of it.
fn delete_dir_name(topic: &str, partition: i32, topic_id: Uuid) -> String {
    const MAX_FILE_NAME: usize = 255;
    let suffix = format!("-{partition}.{}-delete", topic_id.simple());
    let keep = MAX_FILE_NAME.saturating_sub(suffix.len());
    let prefix: String = topic.chars().take(keep).collect();
    format!("{prefix}{suffix}")
}

/// Removes `*-delete` directories a crash left behind during a topic deletion.
fn remove_deleted_dirs(data_dir: &Path) {
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let path = e.path();
        let doomed = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("-delete"));
        if doomed && path.is_dir() {
            if let Err(err) = fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), error = %err, "could not remove a deleted partition");
            }
        }
    }
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

    #[test]
    fn stale_directories_never_leak_into_a_new_topic() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let t = cat.create("t", 1, 1, BTreeMap::new(), 0).unwrap();
        let batch = crate::log::batch::tests::make_batch(&[b"x"], 1, None);
        t.partitions[0].append(&batch, 9, 0).unwrap();
        // As after a crash between committing the removal and removing the directories.
        let _guard = cat.create_lock.lock();
        cat.commit(&[MetadataRecord::RemoveTopic {
            topic_id: t.topic_id,
        }])
        .unwrap();
        drop(_guard);
        fs::create_dir_all(dir.path().join("t-0.abc-delete")).unwrap();
        drop((cat, t));
        let cat = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        assert!(!dir.path().join("t-0.abc-delete").exists());
        let t = cat.create("t", 2, 1, BTreeMap::new(), 0).unwrap();
        assert_eq!(t.partitions[0].offsets(), (0, 0));
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
