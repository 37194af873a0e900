//! The group coordinator of this node: every classic group, every group's committed offsets,
//! and their persistence in `__consumer_offsets` (see `offsets_topic.rs`).
//!
//! One mutex guards all groups; it is held only for in-memory work and the append of a few
//! records, never across an await, so a slow or misbehaving member never blocks other groups'
//! requests for long. Waiting JoinGroup/SyncGroup requests wait on oneshot receivers outside it.

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;

use super::classic::{ClassicGroup, GroupState, JoinParams, JoinResult, Reply, SyncResult};
use super::consumer::{
    ConsumerGroup, ConsumerGroupConfig, HeartbeatParams, HeartbeatResult, TopicSource,
};
use super::consumer_records::{self, ConsumerGroupRecord, StoredConsumerGroup};
use super::offsets_topic::{self, CommittedOffset, GroupRecord, MemberRecord, OffsetsRecord};
use super::GroupConfig;
use crate::metadata::Catalog;
use crate::protocol::errors;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One partition's commit in an OffsetCommit request.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A request's claim to be a member of a group at a generation.
#[derive(Debug, Clone, Copy)]
pub struct MemberRef<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation_id: i32,
}

/// What ListGroups shows of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

/// What DescribeGroups shows of a member.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Default)]
struct Groups {
    groups: HashMap<String, ClassicGroup>,
    /// KIP-848 groups. A group id is either classic or consumer, never both.
    consumer: HashMap<String, ConsumerGroup>,
    offsets: HashMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    /// The ConsumerGroup* records last written for each KIP-848 group (key → value), so that
    /// a change writes only what differs and a removed member gets tombstones.
    consumer_persisted: HashMap<String, BTreeMap<Bytes, Bytes>>,
}

/// The catalog as KIP-848 groups see it.
impl TopicSource for Catalog {
    fn lookup(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.get(name)
            .map(|t| (t.topic_id, t.partitions.len() as i32))
    }
    fn names(&self) -> Vec<String> {
        self.all()
            .iter()
            .filter(|t| !t.is_internal())
            .map(|t| t.name.clone())
            .collect()
    }
}

pub struct GroupCoordinator {
    pub cfg: GroupConfig,
    inner: Mutex<Groups>,
}

type OffsetsWrite = Vec<(Bytes, Option<Bytes>)>;

impl GroupCoordinator {
    pub fn new(cfg: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            cfg,
            inner: Mutex::new(Groups::default()),
        }
    }

    /// Rebuilds committed offsets and known groups from `__consumer_offsets` at start-up.
    pub fn load(&self, catalog: &Catalog, now: i64) -> std::io::Result<usize> {
        let Some(topic) = catalog.get(OFFSETS_TOPIC) else {
            return Ok(0);
        };
        let mut inner = self.inner.lock();
        let mut applied = 0;
        let mut consumer: HashMap<String, StoredConsumerGroup> = HashMap::new();
        for p in &topic.partitions {
            let (mut offset, hw) = p.offsets();
            while offset < hw {
                let plan = p
                    .plan_read(offset)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut bytes = plan.read(16 << 20, true)?;
                // Continue after the last batch read, whatever its records: compaction may leave
                // batches with gaps or none, and one that does not decode must not stop progress.
                let next = crate::log::batch::BatchIter::new(&bytes)
                    .last()
                    .map_or(offset, |(_, h)| h.next_offset());
                if bytes.is_empty() || next <= offset {
                    break;
                }
                offset = next;
                while !bytes.is_empty() {
                    let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
                        break;
                    };
                    for r in &set.records {
                        let Some(key) = &r.key else { continue };
                        if let Some(rec) = offsets_topic::decode(key, r.value.as_deref()) {
                            apply(&mut inner, rec, now);
                            applied += 1;
                        } else if let Some((group, rec)) =
                            consumer_records::decode(key, r.value.as_deref())
                        {
                            apply_consumer(&mut consumer, group, rec);
                            applied += 1;
                        }
                    }
                }
            }
        }
        // Offsets of topics deleted while their tombstones could not be written (a crash
        // between the two) are dropped now.
        let unknown: std::collections::BTreeSet<String> = inner
            .offsets
            .values()
            .flat_map(|m| m.keys().map(|(t, _)| t.clone()))
            .filter(|t| catalog.get(t).is_none())
            .collect();
        let cfg = self.consumer_cfg();
        for (id, stored) in consumer {
            // A group id is either classic or consumer; the consumer group's records are the
            // newer (an empty classic group is converted when a KIP-848 member joins).
            inner.groups.remove(&id);
            let g = ConsumerGroup::restore(&id, stored, catalog, now, &cfg);
            inner.consumer_persisted.insert(id.clone(), g.records());
            inner.consumer.insert(id, g);
        }
        drop(inner);
        if !unknown.is_empty() {
            let unknown: Vec<String> = unknown.into_iter().collect();
            self.remove_offsets_of_topics(catalog, &unknown, now);
        }
        Ok(applied)
    }

    /// Writes a KIP-848 group's changed records (and tombstones for what it no longer has, all
    /// of it when the group is gone) to `__consumer_offsets`.
    fn persist_consumer_group(&self, inner: &mut Groups, catalog: &Catalog, group: &str, now: i64) {
        let new = inner
            .consumer
            .get(group)
            .map(ConsumerGroup::records)
            .unwrap_or_default();
        let old = inner.consumer_persisted.remove(group).unwrap_or_default();
        let mut writes: OffsetsWrite = new
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        writes.extend(
            old.keys()
                .filter(|k| !new.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        let kept = match self.persist(catalog, group, writes, now) {
            Ok(()) => new,
            Err(code) => {
                // Retried with the next change: the diff is taken against what was written.
                tracing::warn!(group, code, "consumer group records not persisted");
                old
            }
        };
        if !kept.is_empty() {
            inner.consumer_persisted.insert(group.to_string(), kept);
        }
    }

    /// `append`, with every failure answered as COORDINATOR_NOT_AVAILABLE.
    fn persist(
        &self,
        catalog: &Catalog,
        group: &str,
        writes: OffsetsWrite,
        now: i64,
    ) -> Result<(), i16> {
        self.append(catalog, group, writes, now)
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)
    }

    /// Writes records to the group's `__consumer_offsets` partition; the error is the append's
    /// Kafka error code.
    fn append(
        &self,
        catalog: &Catalog,
        group: &str,
        writes: OffsetsWrite,
        now: i64,
    ) -> Result<(), i16> {
        if writes.is_empty() {
            return Ok(());
        }
        let topic = catalog
            .get_or_create(OFFSETS_TOPIC, self.cfg.offsets_topic_partitions, now)
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        let index = offsets_topic::partition_for(group, topic.partitions.len() as i32);
        let partition = topic
            .partition(index)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let records: Vec<Record> = writes
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder batches records whose offset - sequence agree; no producer id, so
                // the sequence has no other meaning here.
                sequence: i as i32,
                timestamp: now,
                key: Some(key),
                value,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options)
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        partition.append(&buf, 9, now).map(|_| ()).map_err(|e| {
            tracing::error!(group, error = %e, "cannot write to __consumer_offsets");
            errors::log_error_code(&e)
        })
    }

    /// Runs `f` on the group (creating it when `create`), then persists the group record if its
    /// generation or state changed.
    fn with_group<R>(
        &self,
        catalog: &Catalog,
        group_id: &str,
        create: bool,
        now: i64,
        f: impl FnOnce(&mut ClassicGroup) -> R,
    ) -> Option<R> {
        let mut inner = self.inner.lock();
        if create && !inner.groups.contains_key(group_id) {
            inner
                .groups
                .insert(group_id.to_string(), ClassicGroup::new(group_id));
        }
        let group = inner.groups.get_mut(group_id)?;
        let before = (group.state, group.generation_id);
        let result = f(group);
        if before != (group.state, group.generation_id)
            && matches!(group.state, GroupState::Stable | GroupState::Empty)
        {
            let write = vec![(
                offsets_topic::group_key(group_id),
                Some(group_record(group, now)),
            )];
            let stored = self
                .append(catalog, group_id, write, now)
                .map_err(group_metadata_error);
            if let Err(code) = stored {
                tracing::warn!(group = group_id, code, "group metadata not persisted");
            }
            // The leader's SyncGroup: its members learn the outcome of this write.
            if before.0 == GroupState::CompletingRebalance && group.state == GroupState::Stable {
                group.assignment_stored(stored, now, &self.cfg);
            }
        }
        Some(result)
    }

    pub fn join(
        &self,
        catalog: &Catalog,
        group_id: &str,
        p: JoinParams,
        now: i64,
    ) -> Reply<JoinResult> {
        let member_id = p.member_id.clone();
        let fail = |code| {
            Reply::Now(JoinResult {
                error_code: code,
                generation_id: -1,
                member_id: member_id.clone(),
                ..JoinResult::default()
            })
        };
        if group_id.is_empty() {
            return fail(errors::INVALID_GROUP_ID);
        }
        let create = p.member_id.is_empty();
        let cfg = self.cfg.clone();
        self.with_group(catalog, group_id, create, now, |g| g.join(p, now, &cfg))
            .unwrap_or_else(|| fail(errors::UNKNOWN_MEMBER_ID))
    }

    pub fn sync(
        &self,
        catalog: &Catalog,
        who: MemberRef<'_>,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Reply<SyncResult> {
        self.with_group(catalog, who.group_id, false, now, |g| {
            g.sync(
                who.member_id,
                who.instance_id,
                who.generation_id,
                assignments,
                now,
            )
        })
        .unwrap_or_else(|| {
            Reply::Now(SyncResult {
                error_code: errors::UNKNOWN_MEMBER_ID,
                ..SyncResult::default()
            })
        })
    }

    pub fn heartbeat(&self, catalog: &Catalog, who: MemberRef<'_>, now: i64) -> i16 {
        self.with_group(catalog, who.group_id, false, now, |g| {
            g.heartbeat(who.member_id, who.instance_id, who.generation_id, now)
        })
        .unwrap_or(errors::UNKNOWN_MEMBER_ID)
    }

    /// Removes members; the error of each, or the group's error.
    pub fn leave(
        &self,
        catalog: &Catalog,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: i64,
    ) -> Result<Vec<i16>, i16> {
        let cfg = self.cfg.clone();
        self.with_group(catalog, group_id, false, now, |g| {
            members
                .iter()
                .map(|(id, instance)| g.leave(id, instance.as_deref(), now, &cfg))
                .collect()
        })
        .ok_or(errors::UNKNOWN_MEMBER_ID)
    }

    /// ConsumerGroupHeartbeat (KIP-848). Every change of the group is written as Kafka's
    /// ConsumerGroup* records, so members carry on across a broker restart.
    pub fn consumer_heartbeat(
        &self,
        catalog: &Catalog,
        group_id: &str,
        p: HeartbeatParams,
        now: i64,
    ) -> HeartbeatResult {
        let fail = |code: i16, msg: String| HeartbeatResult {
            error_code: code,
            error_message: Some(msg),
            member_id: p.member_id.clone(),
            member_epoch: -1,
            assignment: None,
        };
        if group_id.is_empty() {
            return fail(errors::INVALID_GROUP_ID, "the group id is empty".into());
        }
        let mut inner = self.inner.lock();
        if inner.groups.get(group_id).is_some_and(|g| !g.is_empty()) {
            return fail(
                errors::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a consumer group."),
            );
        }
        if !inner.consumer.contains_key(group_id) {
            if p.member_epoch != 0 {
                let msg = format!("Member {} is not in group {group_id}.", p.member_id);
                return fail(errors::UNKNOWN_MEMBER_ID, msg);
            }
            // An empty classic group (offsets only) becomes a consumer group; its offsets stay.
            inner.groups.remove(group_id);
            inner
                .consumer
                .insert(group_id.to_string(), ConsumerGroup::new(group_id));
        }
        let cfg = self.consumer_cfg();
        let result = match inner.consumer.get_mut(group_id) {
            Some(g) => g.heartbeat(p, catalog, now, &cfg),
            None => fail(
                errors::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} not found."),
            ),
        };
        self.persist_consumer_group(&mut inner, catalog, group_id, now);
        result
    }

    pub fn consumer_cfg(&self) -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout_ms: self.cfg.consumer_session_timeout_ms,
            heartbeat_interval_ms: self.cfg.consumer_heartbeat_interval_ms,
        }
    }

    /// Runs `f` on a consumer group, if there is one of that id.
    pub fn with_consumer_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> R,
    ) -> Option<R> {
        self.inner.lock().consumer.get(group_id).map(f)
    }

    /// Stores commits after the group's checks; per-partition errors in request order.
    pub fn commit_offsets(
        &self,
        catalog: &Catalog,
        who: MemberRef<'_>,
        commits: Vec<OffsetCommit>,
        now: i64,
    ) -> Result<Vec<i16>, i16> {
        let MemberRef {
            group_id,
            member_id,
            instance_id,
            generation_id,
        } = who;
        if group_id.is_empty() {
            return Err(errors::INVALID_GROUP_ID);
        }
        let mut inner = self.inner.lock();
        if let Some(g) = inner.consumer.get(group_id) {
            let check = g.validate_offset_commit(member_id, generation_id);
            if check != errors::NONE {
                return Err(check);
            }
        }
        // Commits from outside any generation create a group to hold them (a "simple" group).
        let simple = member_id.is_empty() && generation_id < 0;
        if !inner.groups.contains_key(group_id) && !inner.consumer.contains_key(group_id) {
            if !simple {
                return Err(errors::ILLEGAL_GENERATION);
            }
            inner
                .groups
                .insert(group_id.to_string(), ClassicGroup::new(group_id));
        }
        let check = inner.groups.get(group_id).map_or(errors::NONE, |g| {
            g.validate_offset_commit(member_id, instance_id, generation_id)
        });
        if check != errors::NONE {
            return Err(check);
        }
        let mut codes = Vec::with_capacity(commits.len());
        let mut writes = Vec::new();
        let mut accepted = Vec::new();
        for c in commits {
            let known = catalog
                .get(&c.topic)
                .is_some_and(|t| t.partition(c.partition).is_some());
            let metadata = c.metadata.unwrap_or_default();
            let code = if !known {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > self.cfg.offset_metadata_max_bytes {
                errors::OFFSET_METADATA_TOO_LARGE
            } else {
                errors::NONE
            };
            codes.push(code);
            if code == errors::NONE {
                let value = CommittedOffset {
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                };
                writes.push((
                    offsets_topic::offset_key(group_id, &c.topic, c.partition),
                    Some(offsets_topic::offset_value(&value)),
                ));
                accepted.push(((c.topic, c.partition), value));
            }
        }
        self.persist(catalog, group_id, writes, now)?;
        inner
            .offsets
            .entry(group_id.to_string())
            .or_default()
            .extend(accepted);
        Ok(codes)
    }

    /// Committed offsets of a group: of the given (topic, partitions), or all when `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let inner = self.inner.lock();
        let committed = inner.offsets.get(group_id);
        match wanted {
            Some(topics) => topics
                .into_iter()
                .flat_map(|(t, ps)| {
                    ps.into_iter().map(move |p| {
                        let c = committed.and_then(|m| m.get(&(t.clone(), p))).cloned();
                        (t.clone(), p, c)
                    })
                })
                .collect(),
            None => committed
                .map(|m| {
                    m.iter()
                        .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// (group id, state, protocol type) of every group.
    pub fn list_groups(&self) -> Vec<ListedGroup> {
        let inner = self.inner.lock();
        let classic = inner.groups.values().map(|g| ListedGroup {
            group_id: g.group_id.clone(),
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            group_type: "classic",
        });
        let consumer = inner.consumer.values().map(|g| ListedGroup {
            group_id: g.group_id.clone(),
            state: g.state(),
            protocol_type: "consumer".into(),
            group_type: "consumer",
        });
        let mut v: Vec<ListedGroup> = classic.chain(consumer).collect();
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let inner = self.inner.lock();
        let g = inner.groups.get(group_id)?;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        // Kafka shows member metadata and assignments only once the group is stable.
        let stable = g.state == GroupState::Stable;
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups: only empty groups; their offsets go too.
    pub fn delete_group(&self, catalog: &Catalog, group_id: &str, now: i64) -> i16 {
        let mut inner = self.inner.lock();
        if let Some(g) = inner.consumer.get(group_id) {
            if !g.members.is_empty() {
                return errors::NON_EMPTY_GROUP;
            }
            // An empty consumer group is deleted like an empty classic one, offsets included;
            // its own records get tombstones.
            inner.consumer.remove(group_id);
            self.persist_consumer_group(&mut inner, catalog, group_id, now);
            inner
                .groups
                .insert(group_id.to_string(), ClassicGroup::new(group_id));
        }
        let Some(g) = inner.groups.get(group_id) else {
            return errors::GROUP_ID_NOT_FOUND;
        };
        if !g.is_empty() || g.state != GroupState::Empty {
            return errors::NON_EMPTY_GROUP;
        }
        let mut writes: OffsetsWrite = inner
            .offsets
            .get(group_id)
            .map(|m| {
                m.keys()
                    .map(|(t, p)| (offsets_topic::offset_key(group_id, t, *p), None))
                    .collect()
            })
            .unwrap_or_default();
        writes.push((offsets_topic::group_key(group_id), None));
        if let Err(code) = self.persist(catalog, group_id, writes, now) {
            return code;
        }
        inner.groups.remove(group_id);
        inner.offsets.remove(group_id);
        errors::NONE
    }

    /// OffsetDelete: removes offsets of topics the group's members do not subscribe to.
    pub fn delete_offsets(
        &self,
        catalog: &Catalog,
        group_id: &str,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<Vec<i16>, i16> {
        let mut inner = self.inner.lock();
        let Some(g) = inner.groups.get(group_id) else {
            return Err(errors::GROUP_ID_NOT_FOUND);
        };
        let subscribed = if g.state == GroupState::Empty {
            Vec::new()
        } else {
            g.subscribed_topics()
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut writes = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(t) {
                codes.push(errors::GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            let known = catalog
                .get(t)
                .is_some_and(|topic| topic.partition(*p).is_some());
            codes.push(if known {
                errors::NONE
            } else {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            });
            if known {
                writes.push((offsets_topic::offset_key(group_id, t, *p), None));
            }
        }
        self.persist(catalog, group_id, writes, now)?;
        if let Some(m) = inner.offsets.get_mut(group_id) {
            for ((t, p), code) in partitions.iter().zip(&codes) {
                if *code == errors::NONE {
                    m.remove(&(t.clone(), *p));
                }
            }
        }
        Ok(codes)
    }

    /// Expires committed offsets of empty groups older than offsets.retention.minutes (Kafka's
    /// offset expiration for groups without members), and removes groups left with nothing.
    /// Returns the number of offsets removed.
    pub fn expire_offsets(&self, catalog: &Catalog, now: i64) -> usize {
        let mut inner = self.inner.lock();
        let retention = self.cfg.offsets_retention_ms;
        let empty: Vec<String> = inner
            .groups
            .values()
            .filter(|g| g.state == GroupState::Empty && g.is_empty())
            .map(|g| g.group_id.clone())
            .collect();
        let mut removed = 0;
        for id in empty {
            let expired: Vec<(String, i32)> = inner
                .offsets
                .get(&id)
                .map(|m| {
                    m.iter()
                        .filter(|(_, c)| now - c.commit_timestamp > retention)
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let left = inner.offsets.get(&id).map_or(0, BTreeMap::len) - expired.len();
            let mut writes: OffsetsWrite = expired
                .iter()
                .map(|(t, p)| (offsets_topic::offset_key(&id, t, *p), None))
                .collect();
            if left == 0 {
                writes.push((offsets_topic::group_key(&id), None));
            }
            if self.persist(catalog, &id, writes, now).is_err() {
                continue;
            }
            removed += expired.len();
            if let Some(m) = inner.offsets.get_mut(&id) {
                for k in &expired {
                    m.remove(k);
                }
            }
            if left == 0 {
                inner.offsets.remove(&id);
                inner.groups.remove(&id);
            }
        }
        removed
    }

    /// Removes every group's committed offsets of deleted topics, with tombstones (Kafka's
    /// GroupCoordinator.onPartitionsDeleted); returns how many offsets went.
    pub fn remove_offsets_of_topics(
        &self,
        catalog: &Catalog,
        topics: &[String],
        now: i64,
    ) -> usize {
        let mut inner = self.inner.lock();
        let mut removed = 0;
        let groups: Vec<String> = inner.offsets.keys().cloned().collect();
        for group in groups {
            let gone: Vec<(String, i32)> = inner.offsets[&group]
                .keys()
                .filter(|(t, _)| topics.contains(t))
                .cloned()
                .collect();
            if gone.is_empty() {
                continue;
            }
            let writes = gone
                .iter()
                .map(|(t, p)| (offsets_topic::offset_key(&group, t, *p), None))
                .collect();
            if let Err(code) = self.persist(catalog, &group, writes, now) {
                // Still dropped from memory: the topic is gone; a restart purges them again.
                tracing::warn!(
                    group,
                    code,
                    "tombstones for a deleted topic's offsets not written"
                );
            }
            if let Some(m) = inner.offsets.get_mut(&group) {
                for k in &gone {
                    m.remove(k);
                }
            }
            removed += gone.len();
        }
        removed
    }

    /// Applies session, join and sync timeouts of every group.
    pub fn tick(&self, catalog: &Catalog, now: i64) {
        {
            let mut inner = self.inner.lock();
            let expired: Vec<String> = inner
                .consumer
                .values_mut()
                .filter_map(|g| g.expire(now).then(|| g.group_id.clone()))
                .collect();
            for id in expired {
                self.persist_consumer_group(&mut inner, catalog, &id, now);
            }
        }
        let ids: Vec<String> = self.inner.lock().groups.keys().cloned().collect();
        let cfg = self.cfg.clone();
        for id in ids {
            self.with_group(catalog, &id, false, now, |g| g.tick(now, &cfg));
        }
    }
}

/// The answer to a request whose group record could not be written (Kafka's
/// GroupMetadataManager.appendGroupMetadataErrorToResponseError): a record over the offsets
/// topic's max.message.bytes is UNKNOWN_SERVER_ERROR, a storage failure NOT_COORDINATOR.
fn group_metadata_error(append_error: i16) -> i16 {
    match append_error {
        errors::UNKNOWN_TOPIC_OR_PARTITION => errors::COORDINATOR_NOT_AVAILABLE,
        errors::KAFKA_STORAGE_ERROR => errors::NOT_COORDINATOR,
        errors::MESSAGE_TOO_LARGE | errors::RECORD_LIST_TOO_LARGE => errors::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

fn group_record(g: &ClassicGroup, now: i64) -> Bytes {
    let protocol = g.protocol_name.clone().unwrap_or_default();
    let metadata: Vec<Bytes> = g.members.values().map(|m| m.metadata(&protocol)).collect();
    let members = g
        .members
        .values()
        .zip(&metadata)
        .map(|(m, meta)| MemberRecord {
            member_id: &m.member_id,
            group_instance_id: m.group_instance_id.as_deref(),
            client_id: &m.client_id,
            client_host: &m.client_host,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            subscription: meta,
            assignment: &m.assignment,
        })
        .collect();
    offsets_topic::group_value(&GroupRecord {
        protocol_type: g.protocol_type.as_deref().unwrap_or(""),
        generation: g.generation_id,
        protocol: g.protocol_name.as_deref(),
        leader: g.leader.as_deref(),
        timestamp: now,
        members,
    })
}

/// Replays one ConsumerGroup* record; a tombstone for a group not (or no longer) known creates
/// nothing, and the group epoch's tombstone deletes the group.
#[allow(clippy::collapsible_match)] // apply() mutates: not a pattern guard
fn apply_consumer(
    groups: &mut HashMap<String, StoredConsumerGroup>,
    group: String,
    rec: ConsumerGroupRecord,
) {
    match groups.get_mut(&group) {
        Some(g) => {
            if !g.apply(rec) {
                groups.remove(&group);
            }
        }
        None if !rec.is_tombstone() => {
            let mut g = StoredConsumerGroup::default();
            g.apply(rec);
            groups.insert(group, g);
        }
        None => {}
    }
}

fn apply(inner: &mut Groups, rec: OffsetsRecord, now: i64) {
    match rec {
        OffsetsRecord::Offset {
            group,
            topic,
            partition,
            value: Some(v),
        } => {
            inner
                .groups
                .entry(group.clone())
                .or_insert_with(|| ClassicGroup::new(&group));
            inner
                .offsets
                .entry(group)
                .or_default()
                .insert((topic, partition), v);
        }
        OffsetsRecord::Offset {
            group,
            topic,
            partition,
            value: None,
        } => {
            if let Some(m) = inner.offsets.get_mut(&group) {
                m.remove(&(topic, partition));
            }
        }
        OffsetsRecord::Group {
            group,
            value: Some(stored),
        } => {
            let restored = ClassicGroup::restore(&group, stored, now);
            inner.groups.insert(group, restored);
        }
        OffsetsRecord::Group { group, value: None } => {
            inner.groups.remove(&group);
            inner.offsets.remove(&group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;

    fn who<'a>(group_id: &'a str, member_id: &'a str, generation_id: i32) -> MemberRef<'a> {
        MemberRef {
            group_id,
            member_id,
            instance_id: None,
            generation_id,
        }
    }

    fn commit(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
        OffsetCommit {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
        }
    }

    #[test]
    fn offsets_persist_and_tombstones_remove_them() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GroupConfig {
            offsets_topic_partitions: 3,
            ..GroupConfig::default()
        };
        {
            let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
            catalog.create("t", 2, 1, Default::default(), 0).unwrap();
            let c = GroupCoordinator::new(cfg.clone());
            let codes = c
                .commit_offsets(
                    &catalog,
                    who("g1", "", -1),
                    vec![commit("t", 0, 5), commit("t", 9, 1)],
                    1,
                )
                .unwrap();
            assert_eq!(
                codes,
                vec![errors::NONE, errors::UNKNOWN_TOPIC_OR_PARTITION]
            );
            c.commit_offsets(&catalog, who("g2", "", -1), vec![commit("t", 1, 7)], 2)
                .unwrap();
            c.commit_offsets(&catalog, who("g1", "", -1), vec![commit("t", 0, 6)], 3)
                .unwrap();
            assert_eq!(c.delete_group(&catalog, "g2", 4), errors::NONE);
            assert_eq!(
                c.delete_group(&catalog, "g2", 4),
                errors::GROUP_ID_NOT_FOUND
            );
        }
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(cfg);
        assert!(c.load(&catalog, 0).unwrap() >= 4);
        let g1 = c.fetch_offsets("g1", None);
        assert_eq!(g1.len(), 1);
        assert_eq!(g1[0].2.as_ref().map(|o| o.offset), Some(6));
        assert!(c.fetch_offsets("g2", None).is_empty());
        let groups: Vec<String> = c.list_groups().into_iter().map(|g| g.group_id).collect();
        assert_eq!(groups, vec!["g1".to_string()]);
        // An uncommitted partition reads as "no offset".
        let one = c.fetch_offsets("g1", Some(vec![("t".into(), vec![1])]));
        assert!(one[0].2.is_none());
    }

    #[test]
    fn offsets_of_empty_groups_expire() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        catalog.create("t", 1, 1, Default::default(), 0).unwrap();
        let cfg = GroupConfig {
            offsets_retention_ms: 1000,
            offsets_topic_partitions: 1,
            ..GroupConfig::default()
        };
        let c = GroupCoordinator::new(cfg);
        c.commit_offsets(&catalog, who("g", "", -1), vec![commit("t", 0, 1)], 0)
            .unwrap();
        assert_eq!(c.expire_offsets(&catalog, 500), 0);
        assert_eq!(c.expire_offsets(&catalog, 1500), 1);
        assert!(c.list_groups().is_empty());
    }

    #[test]
    fn generation_commits_need_a_known_group() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let c = GroupCoordinator::new(GroupConfig::default());
        assert_eq!(
            c.commit_offsets(&catalog, who("nope", "m", 3), vec![], 0),
            Err(errors::ILLEGAL_GENERATION)
        );
        assert_eq!(
            c.commit_offsets(&catalog, who("", "", -1), vec![], 0),
            Err(errors::INVALID_GROUP_ID)
        );
    }

    fn consumer_join(member: &str, topics: &[&str]) -> HeartbeatParams {
        HeartbeatParams {
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
            owned: Some(Default::default()),
            ..HeartbeatParams::default()
        }
    }

    #[test]
    fn consumer_groups_survive_a_restart_and_deletion_tombstones_them() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GroupConfig {
            offsets_topic_partitions: 2,
            ..GroupConfig::default()
        };
        let (epoch, assigned) = {
            let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
            catalog.create("t", 4, 1, Default::default(), 0).unwrap();
            let c = GroupCoordinator::new(cfg.clone());
            let a = c.consumer_heartbeat(&catalog, "g", consumer_join("a", &["t"]), 1);
            assert_eq!(a.error_code, errors::NONE);
            let gone = c.consumer_heartbeat(&catalog, "g", consumer_join("gone", &["t"]), 2);
            let leave = HeartbeatParams {
                member_id: "gone".into(),
                member_epoch: super::super::consumer::LEAVE_EPOCH,
                ..HeartbeatParams::default()
            };
            assert_eq!(gone.error_code, errors::NONE);
            assert_eq!(c.consumer_heartbeat(&catalog, "g", leave, 3).error_code, 0);
            let again = HeartbeatParams {
                member_id: "a".into(),
                member_epoch: a.member_epoch,
                owned: a.assignment.clone(),
                ..HeartbeatParams::default()
            };
            let a = c.consumer_heartbeat(&catalog, "g", again, 4);
            assert_eq!(a.error_code, errors::NONE);
            // A second group, emptied and deleted: nothing of it may come back.
            c.consumer_heartbeat(&catalog, "d", consumer_join("x", &["t"]), 5);
            let leave_d = HeartbeatParams {
                member_id: "x".into(),
                member_epoch: super::super::consumer::LEAVE_EPOCH,
                ..HeartbeatParams::default()
            };
            c.consumer_heartbeat(&catalog, "d", leave_d, 6);
            assert_eq!(c.delete_group(&catalog, "d", 7), errors::NONE);
            let assigned = c.with_consumer_group("g", |g| g.target_of("a")).unwrap();
            (a.member_epoch, assigned)
        };
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(cfg);
        c.load(&catalog, 1_000).unwrap();
        let listed: Vec<(String, &str)> = c
            .list_groups()
            .into_iter()
            .map(|g| (g.group_id, g.group_type))
            .collect();
        assert_eq!(listed, vec![("g".to_string(), "consumer")]);
        let (members, target) = c
            .with_consumer_group("g", |g| {
                (
                    g.members.keys().cloned().collect::<Vec<_>>(),
                    g.target_of("a"),
                )
            })
            .unwrap();
        assert_eq!(members, vec!["a".to_string()]);
        assert_eq!(target, assigned);
        // The member carries on at its epoch, without rejoining.
        let beat = HeartbeatParams {
            member_id: "a".into(),
            member_epoch: epoch,
            ..HeartbeatParams::default()
        };
        let r = c.consumer_heartbeat(&catalog, "g", beat, 1_001);
        assert_eq!((r.error_code, r.member_epoch), (errors::NONE, epoch));
        assert_eq!(
            r.assignment,
            Some(assigned),
            "the full assignment is resent once"
        );
    }

    #[test]
    fn offsets_of_deleted_topics_are_removed_and_stay_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GroupConfig {
            offsets_topic_partitions: 2,
            ..GroupConfig::default()
        };
        {
            let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
            for t in ["t", "gone", "crashed"] {
                catalog.create(t, 2, 1, Default::default(), 0).unwrap();
            }
            let c = GroupCoordinator::new(cfg.clone());
            for g in ["g1", "g2"] {
                let commits = vec![
                    commit("t", 0, 1),
                    commit("gone", 1, 2),
                    commit("crashed", 0, 3),
                ];
                c.commit_offsets(&catalog, who(g, "", -1), commits, 1)
                    .unwrap();
            }
            catalog.delete("gone").unwrap();
            assert_eq!(c.remove_offsets_of_topics(&catalog, &["gone".into()], 2), 2);
            let left: Vec<String> = c
                .fetch_offsets("g1", None)
                .into_iter()
                .map(|o| o.0)
                .collect();
            assert_eq!(left, vec!["crashed".to_string(), "t".to_string()]);
            // Deleted without the coordinator hearing of it (as if the broker died in between).
            catalog.delete("crashed").unwrap();
        }
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(cfg);
        c.load(&catalog, 3).unwrap();
        for g in ["g1", "g2"] {
            let left: Vec<(String, i32)> = c
                .fetch_offsets(g, None)
                .into_iter()
                .map(|o| (o.0, o.1))
                .collect();
            assert_eq!(left, vec![("t".to_string(), 0)], "{g}");
        }
    }
}
