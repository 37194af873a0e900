//! The log manager (Kafka's LogManager, as BrokerMetadataPublisher drives it): the local
//! partition logs follow the metadata image. Nothing else creates, opens or deletes a log.
//!
//! - At start-up (`startup`) the image is replayed against the data directory: `*-delete`
//!   directories a crash left behind are removed, stray logs are removed (a partition directory
//!   that no partition of the image owns: its topic's removal was committed but the crash came
//!   before the directory went, or its creation never committed), and the log of every
//!   partition in the image is opened, created when missing (its records were committed but the
//!   crash came before the directory was made).
//! - Each committed batch of metadata records reaches `on_metadata_update` as a delta: logs of
//!   removed topics are marked deleted (no more writes, no more background work), renamed to
//!   Kafka's `<topic>-<partition>.<id>-delete` and removed; logs of new partitions are installed;
//!   topic config changes and leader epochs reach the logs.
//!
//! Kafka's controller commits a new topic whatever the brokers' disks say, and a broker that
//! cannot make the log takes its directory offline. Here the controller and the only copy of the
//! data are one process, so a change that makes new logs is `prepare`d first: the logs are made
//! before the records are appended, and a failure (no descriptors or space left) refuses the
//! change with nothing left behind, the topic created whole or not at all.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::topic_log_config;
use crate::log::checkpoint::{RecoveryPoints, REPLICATION_CHECKPOINT};
use crate::log::partition::{Partition, PartitionLog};
use crate::log::storage::Storage;
use crate::log::LogConfig;
use crate::metadata::image::{MetadataDelta, MetadataImage, PartitionRegistration, TopicImage};
use crate::metadata::metadata_log::METADATA_TOPIC;
use crate::metadata::publisher::MetadataPublisher;
use crate::metadata::records::RESOURCE_TOPIC;
use crate::metadata::topic::{self, Topic};
use crate::metadata::{write_atomically, Catalog};

/// The one gate of a data directory's writes: every change to it (an append, a roll, a
/// truncation, retention, DeleteRecords, a cleaning's swap, a log made or deleted, a metadata
/// change) passes it shared (`enter`), by way of the partition lock (`Partition::lock`) or a
/// metadata commit; a broker snapshot (`admin::snapshot`) closes it (`close`), so that it finds
/// every log at one instant with nothing half-written: a state a crash could have left, which
/// recovery at start-up reads as it reads a crash's. Requests waiting in purgatory do not hold
/// it, only the change itself.
///
/// Entries are recursive (parking_lot's `RecursiveRwLock`): a thread in the gate may enter again
/// (a metadata commit deletes logs, a coordinator appends to two partitions) even while a
/// snapshot waits, which a writer-first lock would deadlock on. The price is that a snapshot
/// waits for a moment with no change under way.
#[derive(Default)]
pub struct WriteGate(parking_lot::RecursiveRwLock<()>);

/// Held while a change is made.
pub type GateEntry<'a> = parking_lot::RecursiveRwLockReadGuard<'a, ()>;

impl WriteGate {
    /// A change passes (blocks only while a snapshot holds the gate closed).
    pub fn enter(&self) -> GateEntry<'_> {
        self.0.read()
    }

    /// No change passes until the guard is dropped; waits for those under way.
    pub fn close(&self) -> parking_lot::RecursiveRwLockWriteGuard<'_, ()> {
        self.0.write()
    }

    /// `close`, unless a change is under way.
    pub fn try_close(&self) -> Option<parking_lot::RecursiveRwLockWriteGuard<'_, ()>> {
        self.0.try_write()
    }
}

pub struct LogManager {
    data_dir: PathBuf,
    /// Every write to the data directory passes it (see `WriteGate`).
    gate: Arc<WriteGate>,
    /// Where segment files are opened (the file system; a faulty one in tests).
    storage: Arc<dyn Storage>,
    /// Broker-wide log defaults (static and dynamic broker configs); topic configs overlay them.
    broker_log: RwLock<LogConfig>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Topic id to name, for the APIs that name topics by id (Produce v13, Fetch v13+).
    ids: RwLock<HashMap<Uuid, String>>,
    /// Logs made for a change not yet committed (`prepare`), installed when it is published.
    prepared: Mutex<HashMap<(Uuid, i32), Arc<Partition>>>,
}

impl LogManager {
    /// Opens the logs of every partition of `image`, after removing what no partition of it owns
    /// (see the module comment).
    pub fn startup(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        broker_log: LogConfig,
        image: &MetadataImage,
        recovery: &RecoveryPoints,
        now_ms: i64,
    ) -> io::Result<LogManager> {
        remove_deleted_dirs(data_dir);
        remove_stray_logs(data_dir, image);
        let manager = LogManager {
            data_dir: data_dir.to_path_buf(),
            gate: Arc::default(),
            storage,
            broker_log: RwLock::new(broker_log),
            topics: RwLock::new(HashMap::new()),
            ids: RwLock::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
        };
        for t in image.topics.iter() {
            let config = manager.log_config_of(image, &t.name);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for &p in t.partitions.keys() {
                partitions.push(Arc::new(manager.open(t, p, &config, recovery, now_ms)?));
            }
            manager.install(image, t, partitions);
        }
        Ok(manager)
    }

    /// The data directory's write gate (see `WriteGate`).
    pub fn gate(&self) -> &WriteGate {
        &self.gate
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let name = self.ids.read().get(&id).cloned()?;
        self.get(&name)
    }

    pub fn name_of(&self, id: Uuid) -> Option<String> {
        self.ids.read().get(&id).cloned()
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every partition of every topic, for background work (flush, retention, shutdown).
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    pub fn broker_log(&self) -> LogConfig {
        self.broker_log.read().clone()
    }

    /// New broker-wide log defaults (dynamic broker configs): every topic's partitions get their
    /// topic overrides laid over them, at once.
    pub fn set_broker_log(&self, log: LogConfig) {
        *self.broker_log.write() = log.clone();
        for t in self.all() {
            let effective = topic_log_config(&log, &t.configs).unwrap_or_else(|_| log.clone());
            for p in &t.partitions {
                p.with_log(|l| l.set_config(effective.clone()));
            }
        }
    }

    /// Writes every log's recovery point to the data directory's
    /// `recovery-point-offset-checkpoint` (LogManager.checkpointLogRecoveryOffsets), so that a
    /// restart after a crash verifies only what was not flushed.
    pub fn checkpoint_recovery_points(&self) -> io::Result<()> {
        let entries = self
            .partitions()
            .iter()
            .map(|p| (p.topic.clone(), p.index, p.with_log(|l| l.recovery_point())))
            .collect();
        crate::log::checkpoint::write_recovery_points(&*self.storage, &self.data_dir, entries)
    }

    /// Writes the high watermark of every replicated log (those that keep one apart from their
    /// log end) to the data directory's `replication-offset-checkpoint`
    /// (ReplicaManager.checkpointHighWatermarks).
    pub fn checkpoint_high_watermarks(&self) -> io::Result<()> {
        let entries = self
            .partitions()
            .iter()
            .filter_map(|p| {
                p.with_log(|l| l.tracks_high_watermark().then(|| l.high_watermark()))
                    .map(|hw| (p.topic.clone(), p.index, hw))
            })
            .collect();
        let path = self.data_dir.join(REPLICATION_CHECKPOINT);
        crate::log::checkpoint::write_offsets(&*self.storage, &path, entries)
    }

    /// Gives each log the high watermark `replication-offset-checkpoint` names for it (start-up
    /// of a replica, before it leads or follows): records past it were not known committed.
    pub fn restore_high_watermarks(&self) {
        let path = self.data_dir.join(REPLICATION_CHECKPOINT);
        let saved = match crate::log::checkpoint::read_offsets(&path) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable high watermark checkpoint");
                return;
            }
        };
        for p in self.partitions() {
            if let Some(&hw) = saved.get(&(p.topic.clone(), p.index)) {
                p.with_log(|l| l.set_high_watermark(hw));
            }
        }
    }

    /// Makes the logs of the partitions `delta` creates, before its records are committed
    /// (`next` is the image it leads to). On failure nothing it made is left, and the change
    /// must not be committed.
    pub fn prepare(
        &self,
        delta: &MetadataDelta,
        next: &MetadataImage,
        now_ms: i64,
    ) -> io::Result<()> {
        let made = self.new_partitions(delta).try_for_each(|(t, p)| {
            // The directory of a topic of this name that still has logs is that topic's, until
            // its removal is published: never make a new log in it.
            if self.get(&t.name).is_some_and(|x| x.topic_id != t.id) {
                return Err(io::Error::other(format!(
                    "topic {} still has the logs of its previous id",
                    t.name
                )));
            }
            // A directory of this name that no partition owns is a left-over of a crash (or a
            // stray a failed removal kept): never let its records show up in the new partition.
            remove_dir(&self.data_dir, &t.name, p)?;
            let config = self.log_config_of(next, &t.name);
            let partition = self
                .open(t, p, &config, &RecoveryPoints::clean(), now_ms)
                .inspect_err(|_| {
                    let _ = remove_dir(&self.data_dir, &t.name, p);
                })?;
            self.prepared.lock().insert((t.id, p), Arc::new(partition));
            Ok(())
        });
        made.inspect_err(|_| self.abort())
    }

    /// Forgets the logs of a change that was not committed, and removes their directories.
    pub fn abort(&self) {
        let prepared = std::mem::take(&mut *self.prepared.lock());
        for partition in prepared.into_values() {
            let (name, p) = (partition.topic.clone(), partition.index);
            drop(partition);
            if let Err(e) = remove_dir(&self.data_dir, &name, p) {
                tracing::warn!(topic = name, partition = p, error = %e, "could not remove the directory of a failed creation");
            }
        }
    }

    /// The partitions `delta` adds that have no local log yet.
    fn new_partitions<'a>(
        &self,
        delta: &'a MetadataDelta,
    ) -> impl Iterator<Item = (&'a TopicImage, i32)> + 'a {
        let local: HashMap<Uuid, usize> = self
            .topics
            .read()
            .values()
            .map(|t| (t.topic_id, t.partitions.len()))
            .collect();
        delta
            .topics()
            .changed_partitions()
            .flat_map(move |(t, ps)| {
                let have = local.get(&t.id).copied().unwrap_or(0);
                ps.iter()
                    .copied()
                    .filter(move |p| usize::try_from(*p).is_ok_and(|p| p >= have))
                    .map(move |p| (t, p))
            })
    }

    /// Removed topics' logs go; new partitions' logs (prepared, or made now for a change that
    /// was not prepared) are installed; configs and leader epochs reach the logs; the copy of a
    /// partition that no broker of this process hosts any more is deleted. `holds_data_of`
    /// says whether a broker's replicas are this process's (`Catalog::holds_data_of`).
    fn publish(
        &self,
        delta: &MetadataDelta,
        image: &MetadataImage,
        holds_data_of: impl Fn(i32) -> bool,
    ) {
        for t in delta.topics().deleted() {
            self.delete(t);
        }
        let mut grown: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (t, p) in self.new_partitions(delta) {
            grown.entry(t.id).or_default().push(p);
        }
        for (id, ps) in grown {
            if let Some(t) = image.topics.get(id) {
                self.grow(image, t, &ps);
            }
        }
        for (resource_type, name) in delta.changed_configs() {
            if *resource_type == RESOURCE_TOPIC {
                self.apply_topic_configs(image, name);
            }
        }
        let hosted = |reg: &PartitionRegistration| reg.replicas.iter().any(|&b| holds_data_of(b));
        for (t, ps) in delta.topics().changed_partitions() {
            for &p in ps {
                let Some(reg) = t.partitions.get(&p) else {
                    continue;
                };
                let before = delta.image().topics.get(t.id);
                let hosted_before = before
                    .and_then(|b| b.partitions.get(&p))
                    .is_some_and(hosted);
                if hosted_before && !hosted(reg) {
                    self.delete_replica(image, t, p);
                } else if holds_data_of(reg.leader) {
                    // Only a leader stamps its epoch; a follower's log takes its leader's (see
                    // `Catalog::holds_data_of`).
                    self.sync_leader_epoch(t.id, p, reg.leader_epoch)
                }
            }
        }
    }

    /// Deletes the copies with records of the partitions of `image` no broker of this process
    /// hosts (see `Catalog::delete_unhosted_copies`); empty logs stay, as every process keeps
    /// one for each partition it does not host.
    pub fn delete_unhosted(&self, image: &MetadataImage, holds_data_of: impl Fn(i32) -> bool) {
        for t in image.topics.iter() {
            for (&p, reg) in &t.partitions {
                if reg.replicas.iter().any(|&b| holds_data_of(b)) {
                    continue;
                }
                let holds_records = self
                    .get_by_id(t.id)
                    .and_then(|x| x.partition(p).cloned())
                    .is_some_and(|x| x.with_log(|l| l.log_end_offset() > 0));
                if holds_records {
                    self.delete_replica(image, t, p);
                }
            }
        }
    }

    /// This process no longer hosts partition `p` of `t` (a reassignment removed its broker's
    /// replica): its copy is deleted, as Kafka's broker stops a replica the image no longer
    /// names and deletes its log (ReplicaManager.applyDelta, stopPartitions with
    /// deleteLocalLog), the directory renamed to its `-delete` name and removed. An empty log
    /// takes its place, as every process keeps one for each partition it does not host; were
    /// the broker a replica again, it would fetch the partition from its leader from the start.
    fn delete_replica(&self, image: &MetadataImage, t: &TopicImage, p: i32) {
        let Some(local) = self.get_by_id(t.id) else {
            return;
        };
        let Some(old) = local.partition(p).cloned() else {
            return;
        };
        // It leads no more: requests parked on this log (acks=all) answer NOT_LEADER_OR_FOLLOWER
        // rather than wait on a log that is going.
        old.make_follower();
        let doomed = self
            .data_dir
            .join(delete_dir_name(&t.name, p, Uuid::new_v4()));
        if let Err(e) = old
            .with_log(|l| l.mark_deleted(&doomed))
            .and_then(|_| fs::remove_dir_all(&doomed))
        {
            tracing::warn!(topic = %t.name, partition = p, error = %e, "could not delete a replica no longer hosted");
        }
        let config = self.log_config_of(image, &t.name);
        let empty = match self.open(t, p, &config, &RecoveryPoints::clean(), image_now(image)) {
            Ok(log) => Arc::new(log),
            Err(e) => {
                // As for a log that cannot be made: unserved here until a restart makes it.
                tracing::error!(topic = %t.name, partition = p, error = %e, "could not make an empty log for a replica no longer hosted");
                return;
            }
        };
        let mut partitions = local.partitions.clone();
        if let Some(slot) = partitions.get_mut(p as usize) {
            *slot = empty;
        }
        self.install(image, t, partitions);
        tracing::info!(topic = %t.name, partition = p, "deleted the log of a replica no longer hosted");
    }

    /// Adds the logs of partitions `ps` (ascending) to topic `t`.
    fn grow(&self, image: &MetadataImage, t: &TopicImage, ps: &[i32]) {
        let mut partitions = self
            .get_by_id(t.id)
            .map_or(Vec::new(), |x| x.partitions.clone());
        let config = self.log_config_of(image, &t.name);
        for &p in ps {
            let prepared = self.prepared.lock().remove(&(t.id, p));
            let opened = match prepared {
                Some(log) => log,
                None => {
                    match self.open(t, p, &config, &RecoveryPoints::clean(), image_now(image)) {
                        Ok(log) => Arc::new(log),
                        Err(e) => {
                            // Kafka takes the log directory offline; here the partition stays
                            // unserved (and those after it) until a restart makes its log.
                            tracing::error!(topic = %t.name, partition = p, error = %e, "could not make a partition's log");
                            break;
                        }
                    }
                }
            };
            partitions.push(opened);
        }
        self.install(image, t, partitions);
    }

    /// Puts topic `t` with these partition logs where requests find it.
    fn install(&self, image: &MetadataImage, t: &TopicImage, partitions: Vec<Arc<Partition>>) {
        let topic = Arc::new(Topic {
            name: t.name.clone(),
            topic_id: t.id,
            partitions,
            configs: image.configs_of(RESOURCE_TOPIC, &t.name),
        });
        self.ids.write().insert(t.id, t.name.clone());
        self.topics.write().insert(t.name.clone(), topic);
    }

    /// A topic's config overrides changed: every partition log gets them at once.
    fn apply_topic_configs(&self, image: &MetadataImage, name: &str) {
        let (Some(t), Some(local)) = (image.topics.get_by_name(name), self.get(name)) else {
            return;
        };
        let config = self.log_config_of(image, name);
        for p in &local.partitions {
            p.with_log(|l| l.set_config(config.clone()));
        }
        self.install(image, t, local.partitions.clone());
    }

    /// Moves a partition log up to the image's leader epoch, which it stamps on the batches it
    /// appends from then on (Kafka's Partition.makeLeader).
    pub fn sync_leader_epoch(&self, topic_id: Uuid, p: i32, epoch: i32) {
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

    /// A removed topic's logs: gone from lookups at once, then each renamed to its `-delete`
    /// name under its partition lock (so no background work of the old log, cleaning or
    /// retention, can write into a directory of the same name created after this) and removed.
    /// A failure leaves files but no topic: start-up or a later create removes them.
    fn delete(&self, t: &TopicImage) {
        let removed = {
            let mut topics = self.topics.write();
            let is_this = topics.get(&t.name).is_some_and(|x| x.topic_id == t.id);
            is_this.then(|| topics.remove(&t.name)).flatten()
        };
        self.ids.write().remove(&t.id);
        let Some(topic) = removed else {
            return;
        };
        for p in &topic.partitions {
            let doomed = self
                .data_dir
                .join(delete_dir_name(&t.name, p.index, Uuid::new_v4()));
            if let Err(e) = p
                .with_log(|l| l.mark_deleted(&doomed))
                .and_then(|_| fs::remove_dir_all(&doomed))
            {
                tracing::warn!(topic = %t.name, partition = p.index, error = %e, "could not remove a deleted partition");
            }
        }
        tracing::info!(topic = %t.name, "deleted topic's logs");
    }

    /// The broker defaults with the topic's overrides in `image` laid over them.
    fn log_config_of(&self, image: &MetadataImage, name: &str) -> LogConfig {
        let broker_log = self.broker_log.read();
        let configs = image.configs_of(RESOURCE_TOPIC, name);
        topic_log_config(&broker_log, &configs).unwrap_or_else(|e| {
            tracing::warn!(topic = %name, error = %e, "ignoring invalid stored topic configs");
            broker_log.clone()
        })
    }

    /// Opens (making it when missing) the log of partition `p` of `t`, with Kafka's
    /// `partition.metadata` naming its topic id.
    fn open(
        &self,
        t: &TopicImage,
        p: i32,
        config: &LogConfig,
        recovery: &RecoveryPoints,
        now_ms: i64,
    ) -> io::Result<Partition> {
        let dir = self.data_dir.join(format!("{}-{p}", t.name));
        fs::create_dir_all(&dir)?;
        let meta = dir.join("partition.metadata");
        if !meta.exists() {
            let text = format!("version: 0\ntopic_id: {}\n", topic::kafka_uuid_string(t.id));
            write_atomically(&meta, &text)?;
        }
        let recovery = recovery.for_partition(&t.name, p);
        let log = PartitionLog::open_on(
            Arc::clone(&self.storage),
            &dir,
            config.clone(),
            recovery,
            now_ms,
        )?;
        Ok(Partition::behind(
            t.name.clone(),
            p,
            log,
            Arc::clone(&self.gate),
        ))
    }
}

impl MetadataPublisher for LogManager {
    fn name(&self) -> &'static str {
        "LogManager"
    }

    fn on_metadata_update(&self, catalog: &Catalog, delta: &MetadataDelta, image: &MetadataImage) {
        self.publish(delta, image, |leader| catalog.holds_data_of(leader));
    }
}

/// When the change was committed: new logs' first segment times start there.
fn image_now(image: &MetadataImage) -> i64 {
    image.provenance.last_timestamp
}

/// Removes partition `p` of topic `name`'s directory, if there is one.
fn remove_dir(data_dir: &Path, name: &str, p: i32) -> io::Result<()> {
    let dir = data_dir.join(format!("{name}-{p}"));
    if dir.exists() {
        tracing::warn!(dir = %dir.display(), "removing a partition directory no partition owns");
        fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Removes the partition directories no partition of `image` owns (Kafka's
/// LogManager.isStrayKraftReplica): a name and index the image does not have, or a
/// `partition.metadata` naming another topic id (the topic was removed and one of the same name
/// created while its directory was still there). One without the file is kept and adopted, as an
/// earlier release's may be. Kafka moves strays aside as `-stray` because in a cluster one may
/// be the last copy of data reassigned away; here the metadata log beside them is the one
/// authority, and a stray is the log of a removal it committed or of a creation it never did.
fn remove_stray_logs(data_dir: &Path, image: &MetadataImage) {
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((topic, p)) = parse_partition_dir(&name) else {
            continue;
        };
        if topic == METADATA_TOPIC || !path.is_dir() {
            continue;
        }
        let owner = image
            .topics
            .get_by_name(topic)
            .filter(|t| t.partitions.contains_key(&p))
            .map(|t| t.id);
        let recorded = fs::read_to_string(path.join("partition.metadata"))
            .ok()
            .and_then(|text| topic_id_of(&text));
        if owner.is_some() && recorded.is_none_or(|id| Some(id) == owner) {
            continue;
        }
        tracing::warn!(dir = %path.display(), "removing a stray log: no partition of the metadata image owns it");
        if let Err(err) = fs::remove_dir_all(&path) {
            tracing::warn!(dir = %path.display(), error = %err, "could not remove a stray log");
        }
    }
}

/// `topic_id` of a `partition.metadata` file.
fn topic_id_of(text: &str) -> Option<Uuid> {
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(topic::parse_kafka_uuid)
}

/// `<topic>-<partition>` (Kafka's log directory name), when `name` is one.
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, p) = name.rsplit_once('-')?;
    let p: i32 = p.parse().ok().filter(|p| *p >= 0)?;
    topic::validate_topic_name(topic).ok()?;
    Some((topic, p))
}

/// The name a deleted partition's directory is renamed to before it is removed:
/// `<topic>-<partition>.<unique id>-delete`, Kafka's form, with the topic cut short so that the
/// whole name stays within the 255 bytes a file name may have (LocalLog.logDeleteDirName;
/// topic names are ASCII, up to 249 characters). Start-up removes what a crash leaves of it.
///
/// Callers pass a fresh random id for each deletion, as Kafka does: one partition of one topic
/// id may be deleted more than once (a reassignment removes the replica, adds it back, removes
/// it again), and a name left by an earlier deletion whose removal failed would make the rename
/// fail, leaving the records where the next log of the partition opens.
pub fn delete_dir_name(topic: &str, partition: i32, unique_id: Uuid) -> String {
    const MAX_FILE_NAME: usize = 255;
    let suffix = format!("-{partition}.{}-delete", unique_id.simple());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::storage::FileStorage;
    use crate::metadata::records::{MetadataRecord, PartitionChangeRecord, PartitionRecord};

    /// The delta of `records` over `image`, and the image it leads to.
    fn change(image: &MetadataImage, records: &[MetadataRecord]) -> (MetadataDelta, MetadataImage) {
        let mut delta = MetadataDelta::new(Arc::new(image.clone()));
        for r in records {
            delta.replay(r).unwrap();
        }
        let next = delta.apply();
        (delta, next)
    }

    /// A reassignment of partition 0 of `topic_id` to `replicas` completed.
    fn reassigned(topic_id: Uuid, replicas: &[i32]) -> MetadataRecord {
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: 0,
            topic_id,
            isr: Some(replicas.to_vec()),
            leader: replicas[0],
            replicas: Some(replicas.to_vec()),
            removing_replicas: Some(vec![]),
            adding_replicas: Some(vec![]),
            leader_recovery_state: -1,
            eligible_leader_replicas: None,
            last_known_elr: None,
            directories: None,
        })
    }

    /// A replica removed, added back and removed again, where the first removal could not
    /// remove its renamed directory: the second removal still deletes the records (its
    /// `-delete` name is its own, as Kafka's are), and the partition's log here is empty.
    #[test]
    fn a_replica_removed_twice_is_deleted_whatever_an_earlier_removal_left() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let created = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            MetadataRecord::Partition(PartitionRecord::new_in_sync(id, 0, vec![1])),
        ];
        let (_, image) = change(&MetadataImage::empty(), &created);
        let storage = FileStorage::shared();
        let clean = RecoveryPoints::clean();
        let config = LogConfig::default();
        let manager = LogManager::startup(storage, dir.path(), config, &image, &clean, 0).unwrap();
        let log = || manager.get("t").unwrap().partition(0).cloned().unwrap();
        let hosted_here = |broker: i32| broker == 1;
        // What a first removal of this partition left when its directory could not be removed
        // (named as it was before each deletion had its own name).
        let left = dir.path().join(format!("t-0.{}-delete", id.simple()));
        fs::create_dir_all(&left).unwrap();
        fs::write(left.join("00000000000000000000.log"), b"left").unwrap();
        let mut image = image;
        for _ in 0..2 {
            log().append(&make_batch(&[b"r"], 1, None), 9, 0).unwrap();
            assert_eq!(log().with_log(|l| l.log_end_offset()), 1);
            let (delta, away) = change(&image, &[reassigned(id, &[2])]);
            manager.publish(&delta, &away, hosted_here);
            assert_eq!(log().with_log(|l| l.log_end_offset()), 0);
            let (delta, back) = change(&away, &[reassigned(id, &[1])]);
            manager.publish(&delta, &back, hosted_here);
            image = back;
        }
        let doomed: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with("-delete"))
            .collect();
        assert_eq!(doomed, [left.file_name().unwrap().to_string_lossy()]);
    }
}
