//! Cluster metadata of this single node: topics, their ids, partitions and configs.
//!
//! On disk (all under the data directory):
//! - `meta.properties`: Kafka's `version=1`, `cluster.id=…`, `node.id=…` (the cluster id persists);
//! - `gregor-metadata/topics/<topic id>.properties`: one file per topic, Java properties text with
//!   `name`, `topic.id` (Kafka's base64 form), `partitions`, and `config.<name>` per topic config;
//!   written to a temporary file and renamed, so it exists whole or not at all;
//! - `<topic>-<partition>/partition.metadata`: Kafka's `version: 0` / `topic_id: …` file, so that
//!   Kafka's tools recognise the partition directories.
//!
//! The topic file is written last when a topic is created: a crash half-way leaves only partition
//! directories that no topic file names, which start-up ignores and a later create reuses.

pub mod topic;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::{topic_log_config, ConfigError};
use crate::log::partition::{Partition, PartitionLog};
use crate::log::LogConfig;
pub use topic::{is_internal_name, validate_topic_name, Topic};

const TOPICS_DIR: &str = "gregor-metadata/topics";

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
    #[error("Replication factor: {0} larger than available brokers: 1.")]
    InvalidReplicationFactor(i16),
    #[error("{0}")]
    InvalidConfig(#[from] ConfigError),
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
}

pub struct Catalog {
    data_dir: PathBuf,
    broker_log: LogConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Topic id to name, for the APIs that name topics by id (Produce v13, Fetch v13+).
    ids: RwLock<HashMap<Uuid, String>>,
    /// Serialises creations so two racing auto-creates of one topic make one topic.
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
        let dir = data_dir.join(TOPICS_DIR);
        fs::create_dir_all(&dir)?;
        let mut topics = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "properties") {
                continue;
            }
            let text = fs::read_to_string(&path)?;
            let Some(desc) = topic::TopicFile::parse(&text) else {
                tracing::warn!(file = %path.display(), "skipping an unreadable topic file");
                continue;
            };
            let name = desc.name.clone();
            let log_config = topic_log_config(&broker_log, &desc.configs).unwrap_or_else(|e| {
                tracing::warn!(topic = %name, error = %e, "ignoring invalid stored topic configs");
                broker_log.clone()
            });
            let topic = open_topic(data_dir, &name, desc, &log_config, clean, now_ms)?;
            topics.insert(name, Arc::new(topic));
        }
        let ids = topics
            .iter()
            .map(|(name, t)| (t.topic_id, name.clone()))
            .collect();
        Ok(Catalog {
            data_dir: data_dir.to_path_buf(),
            broker_log,
            topics: RwLock::new(topics),
            ids: RwLock::new(ids),
            create_lock: Mutex::new(()),
        })
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
        validate_topic_name(name).map_err(CreateTopicError::InvalidName)?;
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
        if partitions <= 0 {
            return Err(CreateTopicError::InvalidPartitions);
        }
        if replication_factor != 1 {
            return Err(CreateTopicError::InvalidReplicationFactor(
                replication_factor,
            ));
        }
        Ok(topic_log_config(&self.broker_log, configs)?)
    }

    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        let _guard = self.create_lock.lock();
        let log_config = self.validate(name, partitions, replication_factor, &configs)?;
        let desc = topic::TopicFile {
            name: name.to_string(),
            topic_id: new_topic_id(),
            partitions,
            configs,
        };
        let topic = open_topic(
            &self.data_dir,
            name,
            desc.clone(),
            &log_config,
            true,
            now_ms,
        )?;
        let file = format!("{}.properties", topic::kafka_uuid_string(desc.topic_id));
        write_atomically(&self.data_dir.join(TOPICS_DIR).join(file), &desc.render())?;
        let topic = Arc::new(topic);
        self.ids.write().insert(topic.topic_id, name.to_string());
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
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
        match self.create(name, partitions, 1, BTreeMap::new(), now_ms) {
            Err(CreateTopicError::AlreadyExists(_)) => {
                self.get(name).ok_or(CreateTopicError::InvalidPartitions)
            }
            other => other,
        }
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

fn open_topic(
    data_dir: &Path,
    name: &str,
    desc: topic::TopicFile,
    log_config: &LogConfig,
    clean: bool,
    now_ms: i64,
) -> io::Result<Topic> {
    let mut partitions = Vec::with_capacity(desc.partitions as usize);
    for p in 0..desc.partitions {
        let dir = data_dir.join(format!("{name}-{p}"));
        fs::create_dir_all(&dir)?;
        let meta = dir.join("partition.metadata");
        if !meta.exists() {
            let text = format!(
                "version: 0\ntopic_id: {}\n",
                topic::kafka_uuid_string(desc.topic_id)
            );
            write_atomically(&meta, &text)?;
        }
        let log = PartitionLog::open(&dir, log_config.clone(), clean, now_ms)?;
        partitions.push(Arc::new(Partition::new(name.to_string(), p, log)));
    }
    Ok(Topic {
        name: name.to_string(),
        topic_id: desc.topic_id,
        partitions,
        configs: desc.configs,
    })
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
            Err(CreateTopicError::InvalidReplicationFactor(3))
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
}
