//! The metadata image: the cluster's metadata as of one offset of the metadata log, immutable,
//! built only by replaying metadata records (Kafka's MetadataImage / MetadataDelta).
//!
//! Sans-IO: a `MetadataDelta` starts from an image, takes records one by one (`replay`), and
//! `apply` makes the next image; the delta also says what changed (topics created, deleted,
//! partitions changed), which is what publishers (the log manager, the coordinators) react to.
//! Images share their unchanged parts (`Arc`), so a new image costs what changed plus the topic
//! index. `MetadataImage::records` writes an image back as records, in the order Kafka's
//! snapshots use, so that a snapshot replayed and then the log after it give the same image as
//! the whole log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::records::{
    AccessControlEntryRecord, BrokerEndpoint, ClientQuotaRecord, ConfigRecord, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord,
    UserScramCredentialRecord, METADATA_VERSION_FEATURE, NO_LEADER_CHANGE,
};
use crate::security::authorizer::{
    AclOperation, AclPermissionType, PatternType, ResourceType, StandardAcl,
};
use crate::security::scram::{ScramCredential, ScramMechanism};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplayError {
    #[error("no topic with id {0}")]
    UnknownTopic(Uuid),
    #[error("no partition {1} in topic {0}")]
    UnknownPartition(Uuid, i32),
    #[error("no broker {0}")]
    UnknownBroker(i32),
    #[error("no SCRAM credential of mechanism {1} for user {0}")]
    UnknownScramCredential(String, i8),
    #[error("unknown SCRAM mechanism {0}")]
    UnknownScramMechanism(i8),
    #[error("no ACL with id {0}")]
    UnknownAcl(Uuid),
}

/// A user's SCRAM credential key in the image: (user name, mechanism).
pub type ScramKey = (String, ScramMechanism);

/// Where an image stands in the metadata log: the offset and epoch of the last record in it
/// (Kafka's MetadataProvenance); -1 before any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provenance {
    pub last_offset: i64,
    pub last_epoch: i32,
    pub last_timestamp: i64,
}

impl Default for Provenance {
    fn default() -> Self {
        Provenance {
            last_offset: -1,
            last_epoch: 0,
            last_timestamp: -1,
        }
    }
}

/// A broker as the cluster knows it (Kafka's BrokerRegistration).
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub features: Vec<super::records::BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistration {
    fn from_record(r: &RegisterBrokerRecord) -> Self {
        BrokerRegistration {
            id: r.broker_id,
            epoch: r.broker_epoch,
            incarnation_id: r.incarnation_id,
            endpoints: r.endpoints.clone(),
            features: r.features.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
            in_controlled_shutdown: r.in_controlled_shutdown,
            log_dirs: r.log_dirs.clone(),
        }
    }

    pub fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.id,
            is_migrating_zk_broker: false,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.epoch,
            endpoints: self.endpoints.clone(),
            features: self.features.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
            in_controlled_shutdown: self.in_controlled_shutdown,
            log_dirs: self.log_dirs.clone(),
        }
    }
}

/// One partition's replicas, ISR, leader and epochs (Kafka's PartitionRegistration).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub directories: Vec<Uuid>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    pub leader_recovery_state: i8,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub eligible_leader_replicas: Option<Vec<i32>>,
    pub last_known_elr: Option<Vec<i32>>,
}

impl PartitionRegistration {
    fn from_record(r: &PartitionRecord) -> Self {
        PartitionRegistration {
            replicas: r.replicas.clone(),
            directories: r.directories.clone(),
            isr: r.isr.clone(),
            removing_replicas: r.removing_replicas.clone(),
            adding_replicas: r.adding_replicas.clone(),
            leader: r.leader,
            leader_recovery_state: r.leader_recovery_state,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            eligible_leader_replicas: r.eligible_leader_replicas.clone(),
            last_known_elr: r.last_known_elr.clone(),
        }
    }

    pub fn to_record(&self, topic_id: Uuid, partition_id: i32) -> PartitionRecord {
        PartitionRecord {
            partition_id,
            topic_id,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            removing_replicas: self.removing_replicas.clone(),
            adding_replicas: self.adding_replicas.clone(),
            leader: self.leader,
            leader_recovery_state: self.leader_recovery_state,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            directories: self.directories.clone(),
            eligible_leader_replicas: self.eligible_leader_replicas.clone(),
            last_known_elr: self.last_known_elr.clone(),
        }
    }

    /// PartitionRegistration.merge: the fields the change names are replaced; a new leader
    /// (even the same broker again) bumps the leader epoch, and every change bumps the
    /// partition epoch.
    pub fn merge(&self, c: &PartitionChangeRecord) -> Self {
        let pick = |new: &Option<Vec<i32>>, old: &Vec<i32>| new.clone().unwrap_or(old.clone());
        let (leader, leader_epoch) = if c.leader == NO_LEADER_CHANGE {
            (self.leader, self.leader_epoch)
        } else {
            (c.leader, self.leader_epoch + 1)
        };
        PartitionRegistration {
            replicas: pick(&c.replicas, &self.replicas),
            directories: c.directories.clone().unwrap_or(self.directories.clone()),
            isr: pick(&c.isr, &self.isr),
            removing_replicas: pick(&c.removing_replicas, &self.removing_replicas),
            adding_replicas: pick(&c.adding_replicas, &self.adding_replicas),
            leader,
            leader_recovery_state: if c.leader_recovery_state == -1 {
                self.leader_recovery_state
            } else {
                c.leader_recovery_state
            },
            leader_epoch,
            partition_epoch: self.partition_epoch + 1,
            eligible_leader_replicas: c
                .eligible_leader_replicas
                .clone()
                .or(self.eligible_leader_replicas.clone()),
            last_known_elr: c.last_known_elr.clone().or(self.last_known_elr.clone()),
        }
    }
}

/// A topic: its name, id and partitions (Kafka's TopicImage).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Every topic, by id and by name (Kafka's TopicsImage).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicsImage {
    by_id: HashMap<Uuid, Arc<TopicImage>>,
    by_name: HashMap<String, Uuid>,
}

impl TopicsImage {
    pub fn get(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.by_id.get(&id)
    }

    pub fn get_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every topic, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        let mut names: Vec<_> = self.by_name.iter().collect();
        names.sort();
        names.into_iter().filter_map(|(_, id)| self.by_id.get(id))
    }
}

/// A resource configs belong to (Kafka's ConfigResource): a ConfigRecord resource type and name.
pub type ConfigResource = (i8, String);

/// The whole image (Kafka's MetadataImage); every part is shared with the images it came from
/// when it did not change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    pub provenance: Provenance,
    /// Finalized feature levels (FeatureLevelRecord), e.g. metadata.version.
    pub features: Arc<BTreeMap<String, i16>>,
    /// Registered brokers by id (Kafka's ClusterImage).
    pub brokers: Arc<BTreeMap<i32, BrokerRegistration>>,
    pub topics: Arc<TopicsImage>,
    /// Config overrides per resource (Kafka's ConfigurationsImage); no empty maps.
    pub configs: Arc<BTreeMap<ConfigResource, BTreeMap<String, String>>>,
    /// The next producer id block starts here (Kafka's ProducerIdsImage); -1 before any block.
    pub next_producer_id: i64,
    /// SCRAM credentials by user and mechanism (Kafka's ScramImage).
    pub scram: Arc<BTreeMap<ScramKey, ScramCredential>>,
    /// ACLs by id (Kafka's AclsImage), what the authorizer decides by.
    pub acls: Arc<BTreeMap<Uuid, StandardAcl>>,
    /// Client quotas by entity and key (Kafka's ClientQuotasImage).
    pub client_quotas: Arc<BTreeMap<(QuotaEntity, String), f64>>,
}

/// A client quota's entity: entity type (`user`, `client-id`, `ip`) → name, `None` for the
/// type's default (ClientQuotaEntity).
pub type QuotaEntity = BTreeMap<String, Option<String>>;

impl MetadataImage {
    pub fn empty() -> Self {
        MetadataImage {
            next_producer_id: -1,
            ..Default::default()
        }
    }

    /// The config overrides of a resource (empty when none).
    pub fn configs_of(&self, resource_type: i8, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&(resource_type, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// A user's credential for one SCRAM mechanism.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(&(user.to_string(), mechanism))
    }

    /// The image as records, in the order of Kafka's snapshots (MetadataImage.write): features
    /// (metadata.version first, which a reader needs before anything else), brokers, topics
    /// with their partitions, configs, producer ids.
    pub fn records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        let mv = self.features.get_key_value(METADATA_VERSION_FEATURE);
        let others = self
            .features
            .iter()
            .filter(|(n, _)| n.as_str() != METADATA_VERSION_FEATURE);
        for (name, level) in mv.into_iter().chain(others) {
            out.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                feature_level: *level,
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(b.to_record()));
        }
        for t in self.topics.iter() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            for (&p, reg) in &t.partitions {
                out.push(MetadataRecord::Partition(reg.to_record(t.id, p)));
            }
        }
        for ((resource_type, resource_name), configs) in self.configs.iter() {
            for (name, value) in configs {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        for ((name, mechanism), c) in self.scram.iter() {
            out.push(MetadataRecord::UserScramCredential(
                UserScramCredentialRecord {
                    name: name.clone(),
                    mechanism: mechanism.type_id(),
                    salt: c.salt.clone(),
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                    iterations: c.iterations,
                },
            ));
        }
        for (id, acl) in self.acls.iter() {
            out.push(MetadataRecord::AccessControlEntry(acl_record(*id, acl)));
        }
        for ((entity, key), value) in self.client_quotas.iter() {
            out.push(MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: entity.iter().map(|(t, n)| (t.clone(), n.clone())).collect(),
                key: key.clone(),
                value: *value,
                remove: false,
            }));
        }
        if self.next_producer_id >= 0 {
            out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        out
    }
}

/// The changes to topics one delta makes (Kafka's TopicsDelta).
#[derive(Debug, Clone, Default)]
pub struct TopicsDelta {
    /// Topics created or changed, as they are after the delta.
    changed: HashMap<Uuid, TopicImage>,
    /// Of `changed`, those a TopicRecord created in this delta.
    created: BTreeSet<Uuid>,
    /// Removed topics, as they were before (a publisher needs their names and partitions).
    deleted: HashMap<Uuid, Arc<TopicImage>>,
    /// Per changed topic, the partitions created or changed in this delta.
    changed_partitions: HashMap<Uuid, BTreeSet<i32>>,
}

impl TopicsDelta {
    /// Topics created in this delta (and still there at its end).
    pub fn created(&self) -> impl Iterator<Item = &TopicImage> {
        self.created.iter().filter_map(|id| self.changed.get(id))
    }

    /// Topics that existed before this delta and were removed in it.
    pub fn deleted(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.deleted.values()
    }

    /// Each topic with partitions created or changed, with those partition ids.
    pub fn changed_partitions(&self) -> impl Iterator<Item = (&TopicImage, &BTreeSet<i32>)> {
        self.changed_partitions
            .iter()
            .filter_map(|(id, ps)| Some((self.changed.get(id)?, ps)))
    }
}

/// Replayed records on top of an image, not yet a new image (Kafka's MetadataDelta).
#[derive(Debug, Clone)]
pub struct MetadataDelta {
    base: Arc<MetadataImage>,
    provenance: Provenance,
    features: BTreeMap<String, Option<i16>>,
    brokers: BTreeMap<i32, Option<BrokerRegistration>>,
    topics: TopicsDelta,
    /// Per resource, each key's new value (`None` removes it).
    configs: BTreeMap<ConfigResource, BTreeMap<String, Option<String>>>,
    /// Resources whose every config goes (their topic was removed) before `configs` apply.
    cleared_configs: BTreeSet<ConfigResource>,
    next_producer_id: Option<i64>,
    scram: BTreeMap<ScramKey, Option<ScramCredential>>,
    acls: BTreeMap<Uuid, Option<StandardAcl>>,
    client_quotas: BTreeMap<(QuotaEntity, String), Option<f64>>,
}

/// The record of an ACL (StandardAclWithId.toRecord).
pub fn acl_record(id: Uuid, acl: &StandardAcl) -> AccessControlEntryRecord {
    AccessControlEntryRecord {
        id,
        resource_type: acl.resource_type.code(),
        resource_name: acl.resource_name.clone(),
        pattern_type: acl.pattern_type.code(),
        principal: acl.principal.clone(),
        host: acl.host.clone(),
        operation: acl.operation.code(),
        permission_type: acl.permission_type.code(),
    }
}

fn acl_of(r: &AccessControlEntryRecord) -> StandardAcl {
    StandardAcl {
        resource_type: ResourceType::from_code(r.resource_type),
        resource_name: r.resource_name.clone(),
        pattern_type: PatternType::from_code(r.pattern_type),
        principal: r.principal.clone(),
        host: r.host.clone(),
        operation: AclOperation::from_code(r.operation),
        permission_type: AclPermissionType::from_code(r.permission_type),
    }
}

impl MetadataDelta {
    pub fn new(base: Arc<MetadataImage>) -> Self {
        MetadataDelta {
            provenance: base.provenance,
            base,
            features: BTreeMap::new(),
            brokers: BTreeMap::new(),
            topics: TopicsDelta::default(),
            configs: BTreeMap::new(),
            cleared_configs: BTreeSet::new(),
            next_producer_id: None,
            scram: BTreeMap::new(),
            acls: BTreeMap::new(),
            client_quotas: BTreeMap::new(),
        }
    }

    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.base
    }

    pub fn topics(&self) -> &TopicsDelta {
        &self.topics
    }

    /// Config resources (type, name) whose overrides changed in this delta.
    pub fn changed_configs(&self) -> impl Iterator<Item = &ConfigResource> {
        self.configs.keys().chain(self.cleared_configs.iter())
    }

    /// Records that the delta now reaches `offset` (epoch, append time) of the metadata log.
    pub fn set_provenance(&mut self, provenance: Provenance) {
        self.provenance = provenance;
    }

    /// The topic as this delta sees it so far.
    fn topic(&self, id: Uuid) -> Option<&TopicImage> {
        if self.topics.deleted.contains_key(&id) {
            return None;
        }
        self.topics
            .changed
            .get(&id)
            .or_else(|| self.base.topics.get(id).map(|t| t.as_ref()))
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage, ReplayError> {
        if !self.topics.changed.contains_key(&id) {
            let base = self
                .topic(id)
                .cloned()
                .ok_or(ReplayError::UnknownTopic(id))?;
            self.topics.changed.insert(id, base);
        }
        self.topics
            .changed
            .get_mut(&id)
            .ok_or(ReplayError::UnknownTopic(id))
    }

    fn broker_mut(&mut self, id: i32) -> Result<&mut BrokerRegistration, ReplayError> {
        if !self.brokers.contains_key(&id) {
            let b = self.base.brokers.get(&id).cloned();
            self.brokers.insert(id, b);
        }
        self.brokers
            .get_mut(&id)
            .and_then(|b| b.as_mut())
            .ok_or(ReplayError::UnknownBroker(id))
    }

    /// Applies one record (MetadataDelta.replay). A record naming a topic, partition or broker
    /// that does not exist is an error, as in Kafka's replay.
    pub fn replay(&mut self, record: &MetadataRecord) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::FeatureLevel {
                name,
                feature_level,
            } => {
                // Level 0 removes the feature (FeaturesDelta.replay).
                let level = (*feature_level != 0).then_some(*feature_level);
                self.features.insert(name.clone(), level);
            }
            MetadataRecord::RegisterBroker(r) => {
                let b = BrokerRegistration::from_record(r);
                self.brokers.insert(r.broker_id, Some(b));
            }
            MetadataRecord::UnregisterBroker { broker_id, .. } => {
                self.broker_mut(*broker_id)?;
                self.brokers.insert(*broker_id, None);
            }
            MetadataRecord::FenceBroker { id, .. } => self.broker_mut(*id)?.fenced = true,
            MetadataRecord::UnfenceBroker { id, .. } => self.broker_mut(*id)?.fenced = false,
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                fenced,
                in_controlled_shutdown,
                ..
            } => {
                let b = self.broker_mut(*broker_id)?;
                match fenced {
                    1 => b.fenced = true,
                    -1 => b.fenced = false,
                    _ => {}
                }
                if *in_controlled_shutdown == 1 {
                    b.in_controlled_shutdown = true;
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                let topic = TopicImage {
                    name: name.clone(),
                    id: *topic_id,
                    partitions: BTreeMap::new(),
                };
                self.topics.changed.insert(*topic_id, topic);
                self.topics.created.insert(*topic_id);
            }
            MetadataRecord::Partition(p) => {
                let reg = PartitionRegistration::from_record(p);
                self.topic_mut(p.topic_id)?
                    .partitions
                    .insert(p.partition_id, reg);
                self.mark_partition(p.topic_id, p.partition_id);
            }
            MetadataRecord::PartitionChange(c) => {
                let topic = self.topic_mut(c.topic_id)?;
                let p = topic
                    .partitions
                    .get_mut(&c.partition_id)
                    .ok_or(ReplayError::UnknownPartition(c.topic_id, c.partition_id))?;
                *p = p.merge(c);
                self.mark_partition(c.topic_id, c.partition_id);
            }
            MetadataRecord::RemoveTopic { topic_id } => self.remove_topic(*topic_id)?,
            MetadataRecord::Config(c) => {
                let resource = (c.resource_type, c.resource_name.clone());
                self.configs
                    .entry(resource)
                    .or_default()
                    .insert(c.name.clone(), c.value.clone());
            }
            MetadataRecord::ProducerIds(p) => self.next_producer_id = Some(p.next_producer_id),
            MetadataRecord::UserScramCredential(c) => {
                let mechanism = ScramMechanism::from_type(c.mechanism)
                    .ok_or(ReplayError::UnknownScramMechanism(c.mechanism))?;
                let credential = ScramCredential {
                    salt: c.salt.clone(),
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                    iterations: c.iterations,
                };
                self.scram
                    .insert((c.name.clone(), mechanism), Some(credential));
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                let m = ScramMechanism::from_type(*mechanism)
                    .ok_or(ReplayError::UnknownScramMechanism(*mechanism))?;
                let key = (name.clone(), m);
                let exists = match self.scram.get(&key) {
                    Some(c) => c.is_some(),
                    None => self.base.scram.contains_key(&key),
                };
                if !exists {
                    return Err(ReplayError::UnknownScramCredential(
                        name.clone(),
                        *mechanism,
                    ));
                }
                self.scram.insert(key, None);
            }
            MetadataRecord::AccessControlEntry(a) => {
                self.acls.insert(a.id, Some(acl_of(a)));
            }
            MetadataRecord::ClientQuota(q) => {
                let entity = q.entity.iter().cloned().collect();
                let value = (!q.remove).then_some(q.value);
                self.client_quotas.insert((entity, q.key.clone()), value);
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                let exists = match self.acls.get(id) {
                    Some(a) => a.is_some(),
                    None => self.base.acls.contains_key(id),
                };
                if !exists {
                    return Err(ReplayError::UnknownAcl(*id));
                }
                self.acls.insert(*id, None);
            }
            MetadataRecord::NoOp => {}
        }
        Ok(())
    }

    fn mark_partition(&mut self, topic_id: Uuid, partition: i32) {
        self.topics
            .changed_partitions
            .entry(topic_id)
            .or_default()
            .insert(partition);
    }

    /// RemoveTopicRecord: the topic and its partitions go, and so do its configs (Kafka's
    /// MetadataDelta replays the removal into the configurations delta too).
    fn remove_topic(&mut self, id: Uuid) -> Result<(), ReplayError> {
        let name = self
            .topic(id)
            .map(|t| t.name.clone())
            .ok_or(ReplayError::UnknownTopic(id))?;
        self.topics.changed.remove(&id);
        self.topics.changed_partitions.remove(&id);
        if !self.topics.created.remove(&id) {
            if let Some(old) = self.base.topics.get(id) {
                self.topics.deleted.insert(id, Arc::clone(old));
            }
        }
        let resource = (super::records::RESOURCE_TOPIC, name);
        self.configs.remove(&resource);
        if self.base.configs.contains_key(&resource) {
            self.cleared_configs.insert(resource);
        }
        Ok(())
    }

    /// Ends the replay of a snapshot's records onto the image (Kafka's
    /// MetadataDelta.finishSnapshot): whatever the image holds that the snapshot does not is
    /// removed (a node behind the log start takes the snapshot in place of what it missed),
    /// and a topic the image had is changed by it, not created.
    pub fn finish_snapshot(&mut self) {
        let base = Arc::clone(&self.base);
        for name in base.features.keys() {
            self.features.entry(name.clone()).or_insert(None);
        }
        for id in base.brokers.keys() {
            self.brokers.entry(*id).or_insert(None);
        }
        let gone: Vec<Uuid> = (base.topics.iter())
            .map(|t| t.id)
            .filter(|id| !self.topics.changed.contains_key(id))
            .collect();
        for id in gone {
            // Known to the base image, it is removed without error.
            let _ = self.remove_topic(id);
        }
        self.topics
            .created
            .retain(|id| base.topics.get(*id).is_none());
        // Every override goes, and the snapshot's are laid over (`apply_configs`).
        self.cleared_configs.extend(base.configs.keys().cloned());
        for key in base.scram.keys() {
            self.scram.entry(key.clone()).or_insert(None);
        }
        for id in base.acls.keys() {
            self.acls.entry(*id).or_insert(None);
        }
        for key in base.client_quotas.keys() {
            self.client_quotas.entry(key.clone()).or_insert(None);
        }
        // A snapshot without a ProducerIdsRecord has handed out none.
        self.next_producer_id
            .get_or_insert(MetadataImage::empty().next_producer_id);
    }

    /// The image after every replayed record (MetadataDelta.apply).
    pub fn apply(&self) -> MetadataImage {
        let base = &self.base;
        MetadataImage {
            provenance: self.provenance,
            features: apply_map(&base.features, &self.features),
            brokers: apply_map(&base.brokers, &self.brokers),
            topics: self.apply_topics(),
            configs: self.apply_configs(),
            next_producer_id: self.next_producer_id.unwrap_or(base.next_producer_id),
            scram: apply_map(&base.scram, &self.scram),
            acls: apply_map(&base.acls, &self.acls),
            client_quotas: apply_map(&base.client_quotas, &self.client_quotas),
        }
    }

    fn apply_topics(&self) -> Arc<TopicsImage> {
        let t = &self.topics;
        if t.changed.is_empty() && t.deleted.is_empty() {
            return Arc::clone(&self.base.topics);
        }
        let mut by_id = self.base.topics.by_id.clone();
        for id in t.deleted.keys() {
            by_id.remove(id);
        }
        for (id, topic) in &t.changed {
            by_id.insert(*id, Arc::new(topic.clone()));
        }
        let by_name = by_id.values().map(|t| (t.name.clone(), t.id)).collect();
        Arc::new(TopicsImage { by_id, by_name })
    }

    fn apply_configs(&self) -> Arc<BTreeMap<ConfigResource, BTreeMap<String, String>>> {
        if self.configs.is_empty() && self.cleared_configs.is_empty() {
            return Arc::clone(&self.base.configs);
        }
        let mut all = (*self.base.configs).clone();
        for resource in &self.cleared_configs {
            all.remove(resource);
        }
        for (resource, changes) in &self.configs {
            let configs = all.entry(resource.clone()).or_default();
            for (name, value) in changes {
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
            }
            if configs.is_empty() {
                all.remove(resource);
            }
        }
        Arc::new(all)
    }
}

/// A map with changes laid over it (`None` removes), shared when nothing changed.
fn apply_map<K: Ord + Clone, V: Clone>(
    base: &Arc<BTreeMap<K, V>>,
    changes: &BTreeMap<K, Option<V>>,
) -> Arc<BTreeMap<K, V>> {
    if changes.is_empty() {
        return Arc::clone(base);
    }
    let mut out = (**base).clone();
    for (k, v) in changes {
        match v {
            Some(v) => out.insert(k.clone(), v.clone()),
            None => out.remove(k),
        };
    }
    Arc::new(out)
}

/// Replays `records` onto `image` in one delta (a snapshot, or one committed batch).
pub fn replay_all<'a>(
    image: Arc<MetadataImage>,
    records: impl IntoIterator<Item = &'a MetadataRecord>,
) -> Result<MetadataImage, ReplayError> {
    let mut delta = MetadataDelta::new(image);
    for r in records {
        delta.replay(r)?;
    }
    Ok(delta.apply())
}

#[cfg(test)]
mod tests {
    use super::super::records::tests::samples;
    use super::super::records::*;
    use super::*;

    fn replay(records: &[MetadataRecord]) -> MetadataImage {
        replay_all(Arc::new(MetadataImage::empty()), records).unwrap()
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: Uuid::from_u128(id),
        }
    }

    fn partition(id: u128, p: i32, replicas: &[i32]) -> MetadataRecord {
        let record = PartitionRecord::new_in_sync(Uuid::from_u128(id), p, replicas.to_vec());
        MetadataRecord::Partition(record)
    }

    fn config(resource: &str, name: &str, value: Option<&str>) -> MetadataRecord {
        MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: resource.into(),
            name: name.into(),
            value: value.map(str::to_string),
        })
    }

    /// A history touching every record type: brokers come, are fenced and go, topics are
    /// created, grown, changed, configured and removed, producer id blocks are handed out.
    fn history() -> Vec<MetadataRecord> {
        let mut h = samples();
        // samples() fences, unfences and unregisters broker 2: register it first.
        let MetadataRecord::RegisterBroker(mut b2) = h[1].clone() else {
            unreachable!()
        };
        b2.broker_id = 2;
        h.insert(1, MetadataRecord::RegisterBroker(b2));
        // samples() removes its topic at the end; more on top of that.
        h.extend([
            topic("a", 10),
            partition(10, 0, &[1]),
            partition(10, 1, &[1]),
            config("a", "retention.ms", Some("5")),
            config("a", "cleanup.policy", Some("compact")),
            topic("b", 11),
            partition(11, 0, &[1]),
            config("b", "segment.bytes", Some("1024")),
            partition(10, 2, &[1]),
            config("a", "retention.ms", None),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                leader: 1,
                ..PartitionChangeRecord::new(Uuid::from_u128(10), 1)
            }),
            MetadataRecord::RemoveTopic {
                topic_id: Uuid::from_u128(11),
            },
            topic("b", 12),
            partition(12, 0, &[1]),
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: 3,
                next_producer_id: 3000,
            }),
            MetadataRecord::FenceBroker { id: 1, epoch: 3 },
            MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                id: Uuid::from_u128(0xac2),
                resource_type: 3,
                resource_name: "*".into(),
                pattern_type: 3,
                principal: "User:bob".into(),
                host: "*".into(),
                operation: 3,
                permission_type: 2,
            }),
        ]);
        h
    }

    #[test]
    fn replay_of_every_record_type() {
        let image = replay(&history());
        assert_eq!(image.features[METADATA_VERSION_FEATURE], METADATA_VERSION);
        // Broker 1 registered then fenced; broker 2 registered, fenced, unfenced, unregistered.
        assert_eq!(image.brokers.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(image.brokers[&1].fenced && image.brokers[&1].in_controlled_shutdown);
        assert_eq!(image.next_producer_id, 3000);
        // "orders" was removed, with its configs; "b" was removed and created again.
        assert!(image.topics.get_by_name("orders").is_none());
        let a = image.topics.get_by_name("a").unwrap();
        assert_eq!(a.partitions.len(), 3);
        // A new leader (even the same broker) bumps the leader and partition epochs.
        assert_eq!(
            (
                a.partitions[&1].leader_epoch,
                a.partitions[&1].partition_epoch
            ),
            (1, 1)
        );
        assert_eq!(a.partitions[&0].leader_epoch, 0);
        let b = image.topics.get_by_name("b").unwrap();
        assert_eq!(b.id, Uuid::from_u128(12));
        assert!(image.topics.get(Uuid::from_u128(11)).is_none());
        assert_eq!(
            image.configs_of(RESOURCE_TOPIC, "a"),
            BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())])
        );
        assert!(image.configs_of(RESOURCE_TOPIC, "b").is_empty());
        assert!(image.configs_of(RESOURCE_TOPIC, "orders").is_empty());
        // alice's SCRAM-SHA-512 credential stays; bob's was removed.
        assert_eq!(image.scram.len(), 1);
        let alice = image
            .scram_credential("alice", ScramMechanism::Sha512)
            .unwrap();
        assert_eq!(
            (alice.iterations, alice.salt.as_slice()),
            (8192, &[1u8, 2, 3][..])
        );
        assert!(image
            .scram_credential("bob", ScramMechanism::Sha256)
            .is_none());
        // Removing a credential that is not there fails the replay, as in Kafka.
        let again = MetadataRecord::RemoveUserScramCredential {
            name: "bob".into(),
            mechanism: 1,
        };
        assert!(replay_all(Arc::new(image.clone()), [&again]).is_err());
        // samples() added an ACL and removed it again; the history's other one stays.
        assert_eq!(
            image.acls.values().collect::<Vec<_>>(),
            vec![&StandardAcl {
                resource_type: ResourceType::Group,
                resource_name: "*".into(),
                pattern_type: PatternType::Literal,
                principal: "User:bob".into(),
                host: "*".into(),
                operation: AclOperation::Read,
                permission_type: AclPermissionType::Deny,
            }]
        );
        let gone = MetadataRecord::RemoveAccessControlEntry {
            id: Uuid::from_u128(0xac1),
        };
        assert_eq!(
            replay_all(Arc::new(image), [&gone]),
            Err(ReplayError::UnknownAcl(Uuid::from_u128(0xac1)))
        );
    }

    /// PartitionChangeRecord fields Kafka's PartitionRegistration.merge applies.
    #[test]
    fn partition_change_merges_as_kafka() {
        let id = Uuid::from_u128(1);
        let base = replay(&[topic("t", 1), partition(1, 0, &[1, 2, 3])]);
        let change = MetadataRecord::PartitionChange(PartitionChangeRecord {
            isr: Some(vec![1, 3]),
            ..PartitionChangeRecord::new(id, 0)
        });
        let image = replay_all(Arc::new(base), [&change]).unwrap();
        let p = &image.topics.get(id).unwrap().partitions[&0];
        assert_eq!(p.isr, vec![1, 3]);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
        let elect = MetadataRecord::PartitionChange(PartitionChangeRecord {
            leader: 3,
            replicas: Some(vec![3, 1]),
            ..PartitionChangeRecord::new(id, 0)
        });
        let image = replay_all(Arc::new(image), [&elect]).unwrap();
        let p = &image.topics.get(id).unwrap().partitions[&0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (3, 1, 2));
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![3, 1], vec![1, 3])
        );
    }

    #[test]
    fn records_naming_unknown_things_fail_replay() {
        let id = Uuid::from_u128(5);
        let mut d = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        assert_eq!(
            d.replay(&partition(5, 0, &[1])),
            Err(ReplayError::UnknownTopic(id))
        );
        assert_eq!(
            d.replay(&MetadataRecord::RemoveTopic { topic_id: id }),
            Err(ReplayError::UnknownTopic(id))
        );
        d.replay(&topic("t", 5)).unwrap();
        assert_eq!(
            d.replay(&MetadataRecord::PartitionChange(
                PartitionChangeRecord::new(id, 0)
            )),
            Err(ReplayError::UnknownPartition(id, 0))
        );
        assert_eq!(
            d.replay(&MetadataRecord::FenceBroker { id: 4, epoch: 0 }),
            Err(ReplayError::UnknownBroker(4))
        );
    }

    /// Kafka's snapshot contract: the image written as records at any offset, replayed, then
    /// the records after that offset replayed, equals the replay of the whole log.
    #[test]
    fn snapshot_plus_tail_equals_the_full_replay() {
        let h = history();
        let full = replay(&h);
        for cut in 0..=h.len() {
            let snapshot = replay(&h[..cut]).records();
            let from_snapshot = replay(&snapshot);
            let image = replay_all(Arc::new(from_snapshot), &h[cut..]).unwrap();
            assert_eq!(image, full, "snapshot at {cut}");
        }
    }

    /// A snapshot replayed onto any earlier image (a node behind the log start) gives the
    /// snapshot's image: what the earlier one had that the snapshot has not is gone, and the
    /// delta tells the publishers so.
    #[test]
    fn a_snapshot_over_an_older_image_is_the_snapshots_image() {
        let h = history();
        let full = replay(&h);
        for cut in 0..=h.len() {
            let older = Arc::new(replay(&h[..cut]));
            let mut d = MetadataDelta::new(Arc::clone(&older));
            for r in full.records() {
                d.replay(&r).unwrap();
            }
            d.finish_snapshot();
            let mut image = d.apply();
            image.provenance = full.provenance;
            assert_eq!(image, full, "over the image at {cut}");
            for t in d.topics().created() {
                assert!(older.topics.get(t.id).is_none(), "{} is not new", t.name);
            }
            for t in d.topics().deleted() {
                assert!(full.topics.get(t.id).is_none(), "{} is not gone", t.name);
            }
        }
        // Over an image that has more than the snapshot (a topic the snapshot predates).
        let mut d = MetadataDelta::new(Arc::new(full.clone()));
        for r in replay(&[]).records() {
            d.replay(&r).unwrap();
        }
        d.finish_snapshot();
        assert_eq!(d.apply(), MetadataImage::empty());
        assert_eq!(d.topics().deleted().count(), full.topics.len());
    }

    /// One record per delta (as the log is committed batch by batch) gives the same image as one
    /// delta for everything; the delta reports what a publisher reacts to.
    #[test]
    fn deltas_report_created_deleted_and_changed_topics() {
        let h = history();
        let mut image = Arc::new(MetadataImage::empty());
        for r in &h {
            image = Arc::new(replay_all(image, [r]).unwrap());
        }
        assert_eq!(*image, replay(&h));
        let base = replay(&[topic("x", 1), partition(1, 0, &[1]), topic("y", 2)]);
        let mut d = MetadataDelta::new(Arc::new(base));
        d.replay(&partition(1, 1, &[1])).unwrap();
        d.replay(&MetadataRecord::RemoveTopic {
            topic_id: Uuid::from_u128(2),
        })
        .unwrap();
        d.replay(&topic("z", 3)).unwrap();
        d.replay(&topic("gone", 4)).unwrap();
        d.replay(&MetadataRecord::RemoveTopic {
            topic_id: Uuid::from_u128(4),
        })
        .unwrap();
        let created: Vec<_> = d.topics().created().map(|t| t.name.clone()).collect();
        let deleted: Vec<_> = d.topics().deleted().map(|t| t.name.clone()).collect();
        let changed: Vec<_> = d
            .topics()
            .changed_partitions()
            .map(|(t, ps)| (t.name.clone(), ps.iter().copied().collect::<Vec<_>>()))
            .collect();
        assert_eq!(created, vec!["z"]);
        assert_eq!(deleted, vec!["y"]);
        assert_eq!(changed, vec![("x".to_string(), vec![1])]);
        let next = d.apply();
        let names: Vec<_> = next.topics.iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, vec!["x", "z"]);
        // An untouched part of the image is shared, not copied.
        assert!(Arc::ptr_eq(&next.configs, &d.image().configs));
        assert!(Arc::ptr_eq(&next.brokers, &d.image().brokers));
    }
}
