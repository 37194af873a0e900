//! One shard of the group coordinator (Kafka's GroupCoordinatorShard, with the parts of its
//! GroupMetadataManager and OffsetMetadataManager we have): the groups and committed offsets of
//! one `__consumer_offsets` partition, the write operations on them, and `replay`, which loading
//! and every write share (see `coordinator::runtime`).
//!
//! - Committed offsets and deletions (offset and group tombstones) change only through `replay`.
//! - Offsets committed inside a transaction (TxnOffsetCommit) are written as the producer's
//!   transactional batch and kept aside by producer id (Kafka's OffsetMetadataManager
//!   pendingTransactionalOffsets / openTransactionsByGroup) until the transaction's marker is
//!   replayed: on commit they become the committed offsets (a later plain commit of the same
//!   partition wins over them), on abort they vanish. OffsetFetch never shows them; with
//!   require_stable a partition that has some answers UNSTABLE_OFFSET_COMMIT.
//! - Classic groups are live state machines (members parked in JoinGroup/SyncGroup): an
//!   operation drives the `ClassicGroup` and returns its group record already applied, as Kafka
//!   does (`replayRecords = false`); `replay` of a group record rebuilds the group at load.
//!   A SyncGroup whose record cannot be written answers its members only in `on_append`.
//! - KIP-848 groups likewise: an operation changes the `ConsumerGroup` and writes the records
//!   that differ; when the append fails `on_append` puts the group back as it was (Kafka reverts
//!   the shard to its last written offset). `replay` collects their records at load and
//!   `on_loaded` turns them into groups; a live group's epoch tombstone deletes it.
//! - Share groups (KIP-932) the same way, with their ShareGroup* records (`share_records`), and
//!   streams groups (KIP-1071) with their StreamsGroup* records (`streams_records`). A group id
//!   is of one type: classic, consumer, share or streams.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::classic::{ClassicGroup, GroupState};
use super::consumer::{ConsumerGroup, ConsumerGroupConfig, HeartbeatParams, HeartbeatResult};
use super::consumer_records::{self, StoredConsumerGroup};
use super::consumer_records::{GroupRecord as KeyedGroupRecord, StoredGroup};
use super::coordinator::{MemberRef, OffsetCommit};
use super::offsets_topic::{self, CommittedOffset, GroupRecord, MemberRecord, OffsetsRecord};
use super::share::{ShareGroup, ShareGroupConfig, ShareHeartbeat, ShareHeartbeatResult};
use super::share_records::{self, StoredShareGroup};
use super::streams::{StreamsGroup, StreamsGroupConfig, StreamsHeartbeat, StreamsHeartbeatResult};
use super::streams_records::{self, StoredStreamsGroup};
use super::GroupConfig;
use crate::coordinator::runtime::{
    CoordinatorRecord, CoordinatorResult, CoordinatorShard, RecordContext, NO_PRODUCER_ID,
};
use crate::metadata::Catalog;
use crate::protocol::errors;
use crate::server::clock::Now;
use crate::txn::TxnMarker;

pub type GroupResult<T> = CoordinatorResult<GroupShard, T>;

/// A group's committed offsets by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

#[derive(Default)]
pub struct GroupShard {
    pub classic: HashMap<String, ClassicGroup>,
    /// KIP-848 groups. A group id is either classic or consumer, never both.
    pub consumer: HashMap<String, ConsumerGroup>,
    pub offsets: HashMap<String, GroupOffsets>,
    /// Offsets committed inside transactions not yet ended: producer id → group → offsets
    /// (Kafka's pendingTransactionalOffsets).
    pub pending_offsets: HashMap<i64, HashMap<String, GroupOffsets>>,
    /// The producers with pending offsets in each group (Kafka's openTransactionsByGroup).
    pub open_transactions: HashMap<String, BTreeSet<i64>>,
    /// ConsumerGroup* records replayed while loading, made into groups by `on_loaded`.
    restoring: HashMap<String, StoredConsumerGroup>,
    /// KIP-932 share groups.
    pub share: HashMap<String, ShareGroup>,
    /// ShareGroup* records replayed while loading, made into groups by `on_loaded`.
    restoring_share: HashMap<String, StoredShareGroup>,
    /// KIP-1071 streams groups.
    pub streams: HashMap<String, StreamsGroup>,
    /// StreamsGroup* records replayed while loading, made into groups by `on_loaded`.
    restoring_streams: HashMap<String, StoredStreamsGroup>,
}

impl CoordinatorShard for GroupShard {
    fn replay(&mut self, at: RecordContext, record: &CoordinatorRecord) {
        let value = record.value.as_deref();
        if let Some(rec) = offsets_topic::decode(&record.key, value) {
            self.replay_offsets(at, rec);
        } else if let Some((group, rec)) = consumer_records::decode(&record.key, value) {
            if replay_group_record(&self.consumer, &mut self.restoring, &group, rec) {
                self.consumer.remove(&group);
            }
        } else if let Some((group, rec)) = share_records::decode(&record.key, value) {
            if replay_group_record(&self.share, &mut self.restoring_share, &group, rec) {
                self.share.remove(&group);
            }
        } else if let Some(rec) = streams_records::decode_key(&record.key, value) {
            self.replay_streams(&rec);
        }
    }

    fn on_unloaded(&mut self) {
        self.classic.values_mut().for_each(|g| g.on_unloaded());
    }

    /// Kafka's OffsetMetadataManager.replayEndTransactionMarker.
    fn replay_end_transaction(&mut self, marker: &TxnMarker) {
        let Some(pending) = self.pending_offsets.remove(&marker.producer_id) else {
            return;
        };
        for group in pending.keys() {
            if let Some(open) = self.open_transactions.get_mut(group) {
                open.remove(&marker.producer_id);
                if open.is_empty() {
                    self.open_transactions.remove(group);
                }
            }
        }
        if !marker.commit {
            return;
        }
        for (group, offsets) in pending.into_iter().filter(|(_, o)| !o.is_empty()) {
            let committed = self.offsets.entry(group).or_default();
            for (partition, o) in offsets {
                // The later record of a plain and a transactional commit wins, whatever order
                // they end in (and whatever compaction of this topic kept).
                if committed
                    .get(&partition)
                    .is_none_or(|c| o.record_offset > c.record_offset)
                {
                    committed.insert(partition, o);
                }
            }
        }
    }
}

impl GroupShard {
    /// A streams-group record: collected while loading; of a live group (which wrote it), only
    /// the deletion (the metadata tombstone) matters.
    #[allow(clippy::collapsible_match)] // apply() mutates: not a pattern guard
    fn replay_streams(&mut self, rec: &streams_records::StreamsRecord<'_>) {
        let group = &rec.group;
        if self.streams.contains_key(group) {
            if rec.kind == streams_records::GROUP_METADATA_KEY && rec.value.is_none() {
                self.streams.remove(group);
            }
            return;
        }
        match self.restoring_streams.get_mut(group) {
            Some(g) => {
                if !g.apply(rec) {
                    self.restoring_streams.remove(group);
                }
            }
            None if rec.value.is_some() => {
                let mut g = StoredStreamsGroup::default();
                if g.apply(rec) {
                    self.restoring_streams.insert(group.clone(), g);
                }
            }
            None => {}
        }
    }

    fn replay_offsets(&mut self, at: RecordContext, rec: OffsetsRecord) {
        match rec {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value: Some(mut v),
            } => {
                // Offsets without a group record belong to a "simple" group (Kafka creates an
                // empty classic group for them), unless a KIP-848 group holds them.
                if !self.consumer.contains_key(&group) && !self.streams.contains_key(&group) {
                    self.classic
                        .entry(group.clone())
                        .or_insert_with(|| ClassicGroup::new(&group));
                }
                v.record_offset = at.offset;
                if at.producer_id == NO_PRODUCER_ID {
                    self.offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), v);
                } else {
                    self.pending_offsets
                        .entry(at.producer_id)
                        .or_default()
                        .entry(group.clone())
                        .or_default()
                        .insert((topic, partition), v);
                    self.open_transactions
                        .entry(group)
                        .or_default()
                        .insert(at.producer_id);
                }
            }
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value: None,
            } => {
                let key = (topic, partition);
                if let Some(m) = self.offsets.get_mut(&group) {
                    m.remove(&key);
                }
                // The tombstone removes the partition's pending offsets too (Kafka's replay).
                for producer_id in self.open_transactions.get(&group).into_iter().flatten() {
                    if let Some(m) = self
                        .pending_offsets
                        .get_mut(producer_id)
                        .and_then(|p| p.get_mut(&group))
                    {
                        m.remove(&key);
                    }
                }
            }
            OffsetsRecord::Group {
                group,
                value: Some(stored),
            } => {
                let restored = ClassicGroup::restore(&group, stored);
                self.classic.insert(group, restored);
            }
            OffsetsRecord::Group { group, value: None } => {
                self.classic.remove(&group);
                self.offsets.remove(&group);
            }
        }
    }

    /// After the partition's replay: KIP-848 groups from their records. A group id is either
    /// classic or consumer; the consumer group's records are the newer (an empty classic group
    /// is converted when a KIP-848 member joins). Every loaded member's session starts at `now`
    /// (the monotonic reading: Kafka's onLoaded schedules their session timers).
    pub fn on_loaded(
        &mut self,
        catalog: &Catalog,
        now: i64,
        cfg: &ConsumerGroupConfig,
        share_cfg: &ShareGroupConfig,
        streams_cfg: &StreamsGroupConfig,
    ) {
        self.classic
            .values_mut()
            .for_each(|g| g.start_sessions(now));
        for (id, stored) in std::mem::take(&mut self.restoring) {
            self.classic.remove(&id);
            let g = ConsumerGroup::restore(&id, stored, catalog, now, cfg);
            self.consumer.insert(id, g);
        }
        for (id, stored) in std::mem::take(&mut self.restoring_share) {
            self.classic.remove(&id);
            let g = ShareGroup::restore(&id, stored, catalog, now, share_cfg);
            self.share.insert(id, g);
        }
        for (id, stored) in std::mem::take(&mut self.restoring_streams) {
            // A group whose metadata record was never read (compacted away with the rest) is
            // not restored from stray member records.
            if stored.metadata.is_none() {
                continue;
            }
            self.classic.remove(&id);
            let g = StreamsGroup::restore(&id, stored, catalog, now, streams_cfg);
            self.streams.insert(id, g);
        }
    }

    /// Topics this shard holds offsets of, committed or pending.
    pub fn offset_topics(&self) -> impl Iterator<Item = &String> {
        let pending = self.pending_offsets.values().flat_map(HashMap::values);
        self.offsets
            .values()
            .chain(pending)
            .flat_map(|m| m.keys().map(|(t, _)| t))
    }

    /// The partitions of a group with offsets pending in open transactions.
    fn pending_partitions<'a>(
        &'a self,
        group_id: &'a str,
    ) -> impl Iterator<Item = &'a (String, i32)> {
        self.open_transactions
            .get(group_id)
            .into_iter()
            .flatten()
            .filter_map(move |p| self.pending_offsets.get(p)?.get(group_id))
            .flat_map(BTreeMap::keys)
    }

    /// Whether an open transaction holds an offset of the group's partition (Kafka's
    /// hasPendingTransactionalOffsets).
    pub fn has_pending_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending_partitions(group_id)
            .any(|(t, p)| t == topic && *p == partition)
    }

    /// OffsetCommit, or TxnOffsetCommit when `transactional` (the runtime then writes the records
    /// as the producer's): the group's checks, then one offset record per accepted partition;
    /// per-partition errors in request order.
    pub fn commit_offsets(
        &self,
        who: MemberRef<'_>,
        commits: Vec<OffsetCommit>,
        transactional: bool,
        catalog: &Catalog,
        cfg: &GroupConfig,
        now: i64,
    ) -> GroupResult<Result<Vec<i16>, i16>> {
        let check = self.validate_offset_commit(who, transactional);
        if check != errors::NONE {
            return CoordinatorResult::response(Err(check));
        }
        let mut codes = Vec::with_capacity(commits.len());
        let mut records = Vec::new();
        for c in commits {
            let known = catalog
                .get(&c.topic)
                .is_some_and(|t| t.partition(c.partition).is_some());
            let metadata = c.metadata.unwrap_or_default();
            let code = if !known {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > cfg.offset_metadata_max_bytes {
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
                    record_offset: -1,
                };
                records.push(CoordinatorRecord::new(
                    offsets_topic::offset_key(who.group_id, &c.topic, c.partition),
                    Some(offsets_topic::offset_value(&value)),
                ));
            }
        }
        CoordinatorResult::new(records, Ok(codes))
    }

    fn validate_offset_commit(&self, who: MemberRef<'_>, transactional: bool) -> i16 {
        let MemberRef {
            group_id,
            member_id,
            instance_id,
            generation_id,
        } = who;
        if let Some(g) = self.streams.get(group_id) {
            return match g.validate_offset_commit(member_id, generation_id) {
                errors::STALE_MEMBER_EPOCH if transactional => errors::ILLEGAL_GENERATION,
                code => code,
            };
        }
        if let Some(g) = self.consumer.get(group_id) {
            return match g.validate_offset_commit(member_id, generation_id) {
                // Kafka's validateTransactionalOffsetCommit: a stale epoch is a generation error.
                errors::STALE_MEMBER_EPOCH if transactional => errors::ILLEGAL_GENERATION,
                code => code,
            };
        }
        match self.classic.get(group_id) {
            Some(g) => {
                g.validate_offset_commit(member_id, instance_id, generation_id, transactional)
            }
            // Commits from outside any generation create a group to hold them (a "simple"
            // group): replaying the first offset record does.
            None if generation_id < 0 => errors::NONE,
            None => errors::ILLEGAL_GENERATION,
        }
    }

    /// Tombstones for the given offsets of a group.
    fn offset_tombstones<'a>(
        group_id: &'a str,
        partitions: impl IntoIterator<Item = &'a (String, i32)> + 'a,
    ) -> impl Iterator<Item = CoordinatorRecord> + 'a {
        partitions.into_iter().map(move |(t, p)| {
            CoordinatorRecord::new(offsets_topic::offset_key(group_id, t, *p), None)
        })
    }

    /// DeleteGroups: only empty groups; their offsets (and a KIP-848 or share group's records)
    /// go too.
    pub fn delete_group(&self, group_id: &str) -> GroupResult<i16> {
        let mut records = Vec::new();
        let kept = (self.consumer.get(group_id))
            .map(|g| (g.members.is_empty(), g.records()))
            .or_else(|| (self.share.get(group_id)).map(|g| (g.members.is_empty(), g.records())))
            .or_else(|| (self.streams.get(group_id)).map(|g| (g.members.is_empty(), g.records())));
        if let Some((empty, group_records)) = kept {
            if !empty {
                return CoordinatorResult::response(errors::NON_EMPTY_GROUP);
            }
            records.extend(
                group_records
                    .into_keys()
                    .map(|k| CoordinatorRecord::new(k, None)),
            );
        } else {
            let Some(g) = self.classic.get(group_id) else {
                return CoordinatorResult::response(errors::GROUP_ID_NOT_FOUND);
            };
            if !g.is_empty() || g.state != GroupState::Empty {
                return CoordinatorResult::response(errors::NON_EMPTY_GROUP);
            }
        }
        // Its committed offsets, and those pending in open transactions (Kafka's
        // deleteAllOffsets: one tombstone per partition).
        let committed = self.offsets.get(group_id);
        let partitions: BTreeSet<&(String, i32)> = committed
            .into_iter()
            .flat_map(BTreeMap::keys)
            .chain(self.pending_partitions(group_id))
            .collect();
        records.extend(Self::offset_tombstones(group_id, partitions));
        records.push(CoordinatorRecord::new(
            offsets_topic::group_key(group_id),
            None,
        ));
        CoordinatorResult::new(records, errors::NONE)
    }

    /// OffsetDelete (Kafka's OffsetMetadataManager.deleteOffsets, after the checks of
    /// KafkaApis): the group type's check, then per partition UNKNOWN_TOPIC_OR_PARTITION for one
    /// that does not exist, GROUP_SUBSCRIBED_TO_TOPIC for a topic the group consumes, else NONE
    /// with a tombstone when the partition has a committed or pending offset.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
        catalog: &Catalog,
    ) -> GroupResult<Result<Vec<i16>, i16>> {
        let subscribed = match self.offset_delete_subscriptions(group_id) {
            Ok(subscribed) => subscribed,
            Err(code) => return CoordinatorResult::response(Err(code)),
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut deleted = Vec::new();
        for (t, p) in partitions {
            let exists = (catalog.get(t)).is_some_and(|topic| topic.partition(*p).is_some());
            let code = if !exists {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            } else if subscribed.as_ref().is_none_or(|s| s.contains(t)) {
                errors::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                let committed =
                    (self.offsets.get(group_id)).is_some_and(|o| o.contains_key(&(t.clone(), *p)));
                if committed || self.has_pending_offset(group_id, t, *p) {
                    deleted.push((t.clone(), *p));
                }
                errors::NONE
            };
            codes.push(code);
        }
        let records = Self::offset_tombstones(group_id, &deleted).collect();
        CoordinatorResult::new(records, Ok(codes))
    }

    /// The topics whose offsets OffsetDelete keeps, by group type (Kafka 4.4's
    /// validateOffsetDelete and isSubscribedToTopic of each): a KIP-848 group's members'
    /// subscriptions (names and what their regexes matched), a streams group's source topics
    /// while it has members, a classic group's as `ClassicGroup::subscribed_topics` says (`None`:
    /// every topic). Share groups are not consumer groups: GROUP_ID_NOT_FOUND, as for no group.
    fn offset_delete_subscriptions(&self, group_id: &str) -> Result<Option<BTreeSet<String>>, i16> {
        if let Some(g) = self.consumer.get(group_id) {
            return Ok(Some(g.subscribed_topics()));
        }
        if let Some(g) = self.streams.get(group_id) {
            return Ok(Some(g.subscribed_topics()));
        }
        let g = self
            .classic
            .get(group_id)
            .ok_or(errors::GROUP_ID_NOT_FOUND)?;
        g.validate_offset_delete()?;
        Ok(g.subscribed_topics())
    }

    /// Expires committed offsets of empty classic groups older than offsets.retention.minutes
    /// (Kafka's offset expiration for groups without members), and deletes groups left with
    /// nothing. Answers the number of offsets removed.
    pub fn expire_offsets(&self, now: i64, retention_ms: i64) -> GroupResult<usize> {
        let mut records = Vec::new();
        let mut removed = 0;
        for g in self.classic.values() {
            if g.state != GroupState::Empty || !g.is_empty() {
                continue;
            }
            let id = g.group_id.as_str();
            let offsets = self.offsets.get(id);
            // An offset with a pending transactional offset does not expire yet, nor does a
            // group with open transactions go (Kafka's cleanupExpiredOffsets).
            let expired: Vec<&(String, i32)> = offsets
                .into_iter()
                .flatten()
                .filter(|((t, p), c)| {
                    now - c.commit_timestamp > retention_ms && !self.has_pending_offset(id, t, *p)
                })
                .map(|(k, _)| k)
                .collect();
            removed += expired.len();
            let left = offsets.map_or(0, BTreeMap::len) - expired.len();
            records.extend(Self::offset_tombstones(id, expired));
            if left == 0 && !self.open_transactions.contains_key(id) {
                records.push(CoordinatorRecord::new(offsets_topic::group_key(id), None));
            }
        }
        CoordinatorResult::new(records, removed)
    }

    /// Tombstones for every group's committed offsets of deleted topics (Kafka's
    /// GroupCoordinator.onPartitionsDeleted); answers how many offsets go.
    pub fn remove_offsets_of_topics(&self, topics: &[String]) -> GroupResult<usize> {
        // Committed and pending offsets alike (Kafka's onPartitionsDeleted), one tombstone each.
        let pending = self
            .pending_offsets
            .values()
            .flat_map(|groups| groups.iter());
        let gone: BTreeSet<(&String, &(String, i32))> = self
            .offsets
            .iter()
            .chain(pending)
            .flat_map(|(group, m)| m.keys().map(move |k| (group, k)))
            .filter(|(_, (t, _))| topics.contains(t))
            .collect();
        let mut records = Vec::new();
        for (group, partition) in gone {
            records.extend(Self::offset_tombstones(group, [partition]));
        }
        let removed = records.len();
        CoordinatorResult::new(records, removed)
    }

    /// Runs `f` on a classic group (creating it when `create`); when its generation or state
    /// changed to Stable or Empty, its group record is written (GroupMetadataManager writes it at
    /// the end of a join phase that leaves the group empty and on the leader's SyncGroup).
    pub fn classic_op<R>(
        &mut self,
        group_id: &str,
        create: bool,
        now: Now,
        cfg: &GroupConfig,
        f: impl FnOnce(&mut ClassicGroup) -> R,
    ) -> GroupResult<Option<R>> {
        if create && !self.classic.contains_key(group_id) {
            self.classic
                .insert(group_id.to_string(), ClassicGroup::new(group_id));
        }
        let Some(group) = self.classic.get_mut(group_id) else {
            return CoordinatorResult::response(None);
        };
        let before = (group.state, group.generation_id);
        let result = f(group);
        if before == (group.state, group.generation_id)
            || !matches!(group.state, GroupState::Stable | GroupState::Empty)
        {
            return CoordinatorResult::response(Some(result));
        }
        let record = CoordinatorRecord::new(
            offsets_topic::group_key(group_id),
            Some(group_record(group, now.wall_ms)),
        );
        // The leader's SyncGroup: its members learn the outcome of this write.
        let synced =
            before.0 == GroupState::CompletingRebalance && group.state == GroupState::Stable;
        let (id, cfg) = (group_id.to_string(), cfg.clone());
        CoordinatorResult::applied(
            vec![record],
            Some(result),
            move |s: &mut GroupShard, stored| {
                if let Err(code) = stored {
                    tracing::warn!(group = id, code, "group metadata not persisted");
                }
                if let Some(g) = s.classic.get_mut(&id).filter(|_| synced) {
                    // The runtime recorded this write in the leader's request just before.
                    g.assignment_stored(
                        stored,
                        &crate::coordinator::commit::recorded(),
                        now.monotonic_ms,
                        &cfg,
                    );
                }
            },
        )
    }

    /// ConsumerGroupHeartbeat (KIP-848): the group's change is written as Kafka's ConsumerGroup*
    /// records, so members carry on across a broker restart.
    pub fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        p: HeartbeatParams,
        catalog: &Catalog,
        now: i64,
        cfg: &ConsumerGroupConfig,
    ) -> GroupResult<HeartbeatResult> {
        let fail = |code: i16, msg: String| {
            CoordinatorResult::response(HeartbeatResult {
                error_code: code,
                error_message: Some(msg),
                member_id: p.member_id.clone(),
                member_epoch: -1,
                assignment: None,
            })
        };
        if self.classic.get(group_id).is_some_and(|g| !g.is_empty())
            || self.share.contains_key(group_id)
            || self.streams.contains_key(group_id)
        {
            return fail(
                errors::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a consumer group."),
            );
        }
        if !self.consumer.contains_key(group_id) && p.member_epoch != 0 {
            let msg = format!("Member {} is not in group {group_id}.", p.member_id);
            return fail(errors::UNKNOWN_MEMBER_ID, msg);
        }
        self.consumer_op(group_id, true, |g| g.heartbeat(p, catalog, now, cfg))
            .map(Option::unwrap_or_default)
    }

    /// Runs `f` on a KIP-848 group (creating it when `create`: an empty classic group, offsets
    /// only, becomes a consumer group and its offsets stay) and writes the records that changed,
    /// tombstones for those it no longer has. A failed append puts the group back as it was.
    pub fn consumer_op<R>(
        &mut self,
        group_id: &str,
        create: bool,
        f: impl FnOnce(&mut ConsumerGroup) -> R,
    ) -> GroupResult<Option<R>> {
        let before = self.consumer.get(group_id).cloned();
        let mut replaced = None;
        if before.is_none() {
            if !create {
                return CoordinatorResult::response(None);
            }
            replaced = self.classic.remove(group_id);
            self.consumer
                .insert(group_id.to_string(), ConsumerGroup::new(group_id));
        }
        let Some(group) = self.consumer.get_mut(group_id) else {
            return CoordinatorResult::response(None);
        };
        let result = f(group);
        let old = before
            .as_ref()
            .map(ConsumerGroup::records)
            .unwrap_or_default();
        let records = changed_records(old, &group.records());
        let id = group_id.to_string();
        CoordinatorResult::applied(records, Some(result), move |s: &mut GroupShard, stored| {
            if let Err(code) = stored {
                tracing::warn!(group = id, code, "consumer group records not persisted");
                match before {
                    Some(g) => s.consumer.insert(id.clone(), g),
                    None => s.consumer.remove(&id),
                };
                if let Some(g) = replaced {
                    s.classic.insert(id, g);
                }
            }
        })
    }

    /// ShareGroupHeartbeat (KIP-932): joins, stays in or leaves a share group; every change is
    /// written as Kafka's ShareGroup* records. A group id of another type is refused as Kafka
    /// refuses it (GROUP_ID_NOT_FOUND, "is not a share group").
    pub fn share_heartbeat(
        &mut self,
        group_id: &str,
        hb: ShareHeartbeat,
        catalog: &Catalog,
        now: i64,
        cfg: &ShareGroupConfig,
    ) -> GroupResult<ShareHeartbeatResult> {
        if self.classic.contains_key(group_id)
            || self.consumer.contains_key(group_id)
            || self.streams.contains_key(group_id)
        {
            return CoordinatorResult::response(ShareHeartbeatResult::error(
                errors::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a share group."),
            ));
        }
        let leaving = hb.member_epoch == super::share::LEAVE_EPOCH;
        if !self.share.contains_key(group_id) && hb.member_epoch != 0 {
            return CoordinatorResult::response(ShareHeartbeatResult::error(
                errors::UNKNOWN_MEMBER_ID,
                format!(
                    "Member {} is not a member of group {group_id}.",
                    hb.member_id
                ),
            ));
        }
        self.share_op(group_id, true, |g| match leaving {
            true => g.leave(&hb.member_id),
            false => g.heartbeat(hb, catalog, now, cfg),
        })
        .map(Option::unwrap_or_default)
    }

    /// The check AlterShareGroupOffsets and DeleteShareGroupOffsets make of their group: a share
    /// group without members (GROUP_ID_NOT_FOUND for another type or, unless `create`, none;
    /// NON_EMPTY_GROUP with members), with Kafka's messages. Alter creates a missing one, empty,
    /// as GroupMetadataManager.alterShareGroupOffsets does.
    pub fn empty_share_group(
        &mut self,
        group_id: &str,
        create: bool,
    ) -> GroupResult<Result<(), (i16, String)>> {
        if self.classic.contains_key(group_id)
            || self.consumer.contains_key(group_id)
            || self.streams.contains_key(group_id)
        {
            let msg = format!("Group {group_id} is not a share group.");
            return CoordinatorResult::response(Err((errors::GROUP_ID_NOT_FOUND, msg)));
        }
        match self.share.get(group_id) {
            Some(g) if !g.members.is_empty() => {
                let code = errors::NON_EMPTY_GROUP;
                let msg = errors::message(code).unwrap_or_default().to_string();
                CoordinatorResult::response(Err((code, msg)))
            }
            Some(_) => CoordinatorResult::response(Ok(())),
            None if !create => {
                let msg = format!("Group {group_id} not found.");
                CoordinatorResult::response(Err((errors::GROUP_ID_NOT_FOUND, msg)))
            }
            None => self.share_op(group_id, true, |_| ()).map(|_| Ok(())),
        }
    }

    /// Runs `f` on a share group (creating it when `create`) and writes the records that
    /// changed; a failed append puts the group back as it was.
    pub fn share_op<R>(
        &mut self,
        group_id: &str,
        create: bool,
        f: impl FnOnce(&mut ShareGroup) -> R,
    ) -> GroupResult<Option<R>> {
        let before = self.share.get(group_id).cloned();
        if before.is_none() && !create {
            return CoordinatorResult::response(None);
        }
        let group = self
            .share
            .entry(group_id.to_string())
            .or_insert_with(|| ShareGroup::new(group_id));
        let result = f(group);
        let old = before.as_ref().map(ShareGroup::records).unwrap_or_default();
        let records = changed_records(old, &group.records());
        let id = group_id.to_string();
        CoordinatorResult::applied(records, Some(result), move |s: &mut GroupShard, stored| {
            if let Err(code) = stored {
                tracing::warn!(group = id, code, "share group records not persisted");
                match before {
                    Some(g) => s.share.insert(id, g),
                    None => s.share.remove(&id),
                };
            }
        })
    }
}

impl GroupShard {
    /// StreamsGroupHeartbeat (KIP-1071): joins, stays in or leaves a streams group; every change
    /// is written as Kafka's StreamsGroup* records. A group id of another type is refused as
    /// Kafka refuses it (GROUP_ID_NOT_FOUND, "is not a streams group"); an empty classic group
    /// (offsets only) becomes the streams group, its offsets kept.
    pub fn streams_heartbeat(
        &mut self,
        group_id: &str,
        hb: StreamsHeartbeat,
        catalog: &Catalog,
        now: i64,
        cfg: &StreamsGroupConfig,
    ) -> GroupResult<StreamsHeartbeatResult> {
        let other_type = self.classic.get(group_id).is_some_and(|g| !g.is_empty())
            || self.consumer.contains_key(group_id)
            || self.share.contains_key(group_id);
        if other_type {
            return CoordinatorResult::response(StreamsHeartbeatResult::error(
                errors::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a streams group."),
            ));
        }
        let joining = hb.member_epoch == 0;
        if !self.streams.contains_key(group_id) && !joining {
            return CoordinatorResult::response(StreamsHeartbeatResult::error(
                errors::GROUP_ID_NOT_FOUND,
                format!("Streams group {group_id} not found."),
            ));
        }
        let epoch = hb.member_epoch;
        let leaving =
            epoch == super::streams::LEAVE_EPOCH || epoch == super::streams::STATIC_LEAVE_EPOCH;
        self.streams_op(group_id, joining, |g| match leaving {
            true => g.leave(&hb.member_id, epoch, hb.shutdown_application),
            false => g.heartbeat(hb, catalog, now, cfg),
        })
        .map(Option::unwrap_or_default)
    }

    /// Runs `f` on a streams group (creating it when `create`: an empty classic group, offsets
    /// only, becomes it) and writes the records that changed; a failed append puts the group
    /// back as it was. A group left without members and never given a topology is not kept
    /// (a first heartbeat that failed its checks creates nothing).
    pub fn streams_op<R>(
        &mut self,
        group_id: &str,
        create: bool,
        f: impl FnOnce(&mut StreamsGroup) -> R,
    ) -> GroupResult<Option<R>> {
        let before = self.streams.get(group_id).cloned();
        if before.is_none() && !create {
            return CoordinatorResult::response(None);
        }
        let replaced = match before {
            None => self.classic.remove(group_id),
            Some(_) => None,
        };
        let group = self
            .streams
            .entry(group_id.to_string())
            .or_insert_with(|| StreamsGroup::new(group_id));
        let result = f(group);
        let old = before
            .as_ref()
            .map(StreamsGroup::records)
            .unwrap_or_default();
        let records = if before.is_none() && group.members.is_empty() {
            // Nothing was made: leave no trace.
            self.streams.remove(group_id);
            if let Some(g) = replaced {
                self.classic.insert(group_id.to_string(), g);
            }
            return CoordinatorResult::response(Some(result));
        } else {
            changed_records(old, &group.records())
        };
        let id = group_id.to_string();
        CoordinatorResult::applied(records, Some(result), move |s: &mut GroupShard, stored| {
            if let Err(code) = stored {
                tracing::warn!(group = id, code, "streams group records not persisted");
                match before {
                    Some(g) => s.streams.insert(id.clone(), g),
                    None => s.streams.remove(&id),
                };
                if let Some(g) = replaced {
                    s.classic.insert(id, g);
                }
            }
        })
    }
}

/// The records a change of a group kept as records (KIP-848 and share groups) writes: those that
/// differ from what it wrote last (`old`), and tombstones for those it no longer has.
fn changed_records(
    old: BTreeMap<Bytes, Bytes>,
    new: &BTreeMap<Bytes, Bytes>,
) -> Vec<CoordinatorRecord> {
    let mut records: Vec<CoordinatorRecord> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| CoordinatorRecord::new(k.clone(), Some(v.clone())))
        .collect();
    records.extend(
        old.into_keys()
            .filter(|k| !new.contains_key(k))
            .map(|k| CoordinatorRecord::new(k, None)),
    );
    records
}

/// Replays one record of a group kept as records. A live group wrote its own records, so only its
/// deletion (the group epoch's tombstone) concerns it: true when the live group must go.
/// Otherwise the records are being loaded into `restoring`; a tombstone for a group not (or no
/// longer) known creates nothing.
#[allow(clippy::collapsible_match)] // apply() mutates: not a pattern guard
fn replay_group_record<G, M, C>(
    live: &HashMap<String, G>,
    restoring: &mut HashMap<String, StoredGroup<M, C>>,
    group: &str,
    rec: KeyedGroupRecord<M, C>,
) -> bool {
    if live.contains_key(group) {
        return matches!(rec, KeyedGroupRecord::GroupEpoch(None));
    }
    match restoring.get_mut(group) {
        Some(g) => {
            if !g.apply(rec) {
                restoring.remove(group);
            }
        }
        None if !rec.is_tombstone() => {
            let mut g = StoredGroup::default();
            g.apply(rec);
            restoring.insert(group.to_string(), g);
        }
        None => {}
    }
    false
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

#[cfg(test)]
pub(super) mod tests {
    //! Transactional offsets in a shard (Kafka's OffsetMetadataManager and its tests).
    use super::*;
    use crate::log::LogConfig;

    fn at(offset: i64, producer_id: i64) -> RecordContext {
        RecordContext {
            offset,
            producer_id,
            producer_epoch: if producer_id == NO_PRODUCER_ID { -1 } else { 0 },
        }
    }

    fn offset_record(group: &str, partition: i32, offset: i64) -> CoordinatorRecord {
        let value = CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            record_offset: -1,
        };
        CoordinatorRecord::new(
            offsets_topic::offset_key(group, "t", partition),
            Some(offsets_topic::offset_value(&value)),
        )
    }

    pub(crate) fn marker(producer_id: i64, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        }
    }

    fn committed(s: &GroupShard, group: &str) -> Vec<(i32, i64)> {
        s.offsets
            .get(group)
            .into_iter()
            .flatten()
            .map(|((_, p), c)| (*p, c.offset))
            .collect()
    }

    #[test]
    fn transactional_offsets_wait_for_their_marker() {
        // Kafka's OffsetMetadataManager.replay / replayEndTransactionMarker: a transactional
        // commit is pending for its producer; commit makes it the committed offset, abort drops
        // it; a simple group is created for it as for a plain commit.
        let mut s = GroupShard::default();
        s.replay(at(0, NO_PRODUCER_ID), &offset_record("g", 0, 1));
        s.replay(at(1, 7), &offset_record("g", 0, 10));
        s.replay(at(2, 7), &offset_record("g", 1, 11));
        s.replay(at(3, 8), &offset_record("g", 2, 12));
        assert!(s.classic.contains_key("g"));
        assert_eq!(committed(&s, "g"), vec![(0, 1)]);
        assert!(s.has_pending_offset("g", "t", 0) && s.has_pending_offset("g", "t", 2));
        assert!(!s.has_pending_offset("g", "t", 3) && !s.has_pending_offset("h", "t", 0));
        s.replay_end_transaction(&marker(8, false));
        assert!(!s.has_pending_offset("g", "t", 2));
        assert_eq!(committed(&s, "g"), vec![(0, 1)]);
        s.replay_end_transaction(&marker(7, true));
        assert_eq!(committed(&s, "g"), vec![(0, 10), (1, 11)]);
        assert!(s.open_transactions.is_empty() && s.pending_offsets.is_empty());
        // A marker of a producer without pending offsets changes nothing.
        s.replay_end_transaction(&marker(9, true));
        assert_eq!(committed(&s, "g"), vec![(0, 10), (1, 11)]);
    }

    #[test]
    fn the_later_record_wins_when_a_transaction_commits() {
        // Kafka keeps the most recent committed offset when plain and transactional commits mix
        // (OffsetAndMetadata.recordOffset).
        let mut s = GroupShard::default();
        s.replay(at(5, 7), &offset_record("g", 0, 50));
        s.replay(at(6, NO_PRODUCER_ID), &offset_record("g", 0, 60));
        s.replay(at(7, NO_PRODUCER_ID), &offset_record("g", 1, 70));
        s.replay(at(8, 7), &offset_record("g", 1, 80));
        s.replay_end_transaction(&marker(7, true));
        assert_eq!(committed(&s, "g"), vec![(0, 60), (1, 80)]);
    }

    #[test]
    fn a_tombstone_removes_pending_offsets_too() {
        let mut s = GroupShard::default();
        s.replay(at(0, 7), &offset_record("g", 0, 1));
        let tombstone = CoordinatorRecord::new(offsets_topic::offset_key("g", "t", 0), None);
        s.replay(at(1, NO_PRODUCER_ID), &tombstone);
        assert!(!s.has_pending_offset("g", "t", 0));
        s.replay_end_transaction(&marker(7, true));
        assert!(committed(&s, "g").is_empty());
    }

    fn tombstoned(r: &GroupResult<impl Sized>) -> Vec<Option<OffsetsRecord>> {
        r.records
            .iter()
            .filter(|r| r.value.is_none())
            .map(|r| offsets_topic::decode(&r.key, None))
            .collect()
    }

    fn offset_tombstone(group: &str, partition: i32) -> Option<OffsetsRecord> {
        Some(OffsetsRecord::Offset {
            group: group.into(),
            topic: "t".into(),
            partition,
            value: None,
        })
    }

    #[test]
    fn deletion_and_expiry_account_for_pending_offsets() {
        // Kafka: deleteAllOffsets tombstones pending partitions too, once each;
        // cleanupExpiredOffsets keeps an offset with a pending one and a group with open
        // transactions; onPartitionsDeleted covers pending offsets.
        let mut s = GroupShard::default();
        s.replay(at(0, NO_PRODUCER_ID), &offset_record("g", 0, 1));
        s.replay(at(1, NO_PRODUCER_ID), &offset_record("g", 1, 1));
        s.replay(at(2, 7), &offset_record("g", 1, 2));
        s.replay(at(3, 7), &offset_record("g", 2, 2));
        let deleted = s.delete_group("g");
        assert_eq!(deleted.response, errors::NONE);
        let mut expected: Vec<_> = (0..3).map(|p| offset_tombstone("g", p)).collect();
        expected.push(Some(OffsetsRecord::Group {
            group: "g".into(),
            value: None,
        }));
        assert_eq!(tombstoned(&deleted), expected);
        let expired = s.expire_offsets(10_000, 1);
        assert_eq!(expired.response, 1, "partition 1 has a pending offset");
        assert_eq!(tombstoned(&expired), vec![offset_tombstone("g", 0)]);
        let gone = s.remove_offsets_of_topics(&["t".into()]);
        assert_eq!(gone.response, 3);
        // Once the transaction ended, the group's offsets expire and the group goes.
        s.replay_end_transaction(&marker(7, false));
        let expired = s.expire_offsets(10_000, 1);
        assert_eq!(expired.response, 2);
        assert!(tombstoned(&expired).contains(&Some(OffsetsRecord::Group {
            group: "g".into(),
            value: None
        })));
    }

    const CONSUMER_CFG: ConsumerGroupConfig = ConsumerGroupConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
    };

    /// Member "m" joins KIP-848 group "g", subscribed to topic "t"; answers its epoch.
    fn join_consumer_group(s: &mut GroupShard, catalog: &Catalog) -> i32 {
        let join = HeartbeatParams {
            member_id: "m".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Default::default()),
            ..HeartbeatParams::default()
        };
        let r = s.consumer_heartbeat("g", join, catalog, 0, &CONSUMER_CFG);
        assert_eq!(r.response.error_code, errors::NONE);
        assert!(r.response.member_epoch > 0);
        r.response.member_epoch
    }

    #[test]
    fn transactional_commits_validate_as_kafka() {
        // Kafka's validateOffsetCommit / validateTransactionalOffsetCommit: a generation-less
        // commit to an unknown group creates a simple group, whatever its member id; one with a
        // generation is ILLEGAL_GENERATION.
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        catalog.create("t", 1, 1, Default::default(), 0).unwrap();
        let s = GroupShard::default();
        let cfg = GroupConfig::default();
        let commit = || {
            vec![OffsetCommit {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: None,
            }]
        };
        let who = |member_id, generation_id| MemberRef {
            group_id: "g",
            member_id,
            instance_id: None,
            generation_id,
        };
        let r = s.commit_offsets(who("m", -1), commit(), true, &catalog, &cfg, 0);
        assert_eq!(r.response, Ok(vec![errors::NONE]));
        let r = s.commit_offsets(who("m", -1), commit(), false, &catalog, &cfg, 0);
        assert_eq!(r.response, Ok(vec![errors::NONE]));
        let r = s.commit_offsets(who("m", 2), commit(), false, &catalog, &cfg, 0);
        assert_eq!(r.response, Err(errors::ILLEGAL_GENERATION));
        let r = s.commit_offsets(who("m", 2), commit(), true, &catalog, &cfg, 0);
        assert_eq!(r.response, Err(errors::ILLEGAL_GENERATION));
        // A KIP-848 member's stale epoch: STALE_MEMBER_EPOCH for OffsetCommit, but
        // ILLEGAL_GENERATION for TxnOffsetCommit (GroupCoordinatorShard maps it).
        let mut s = GroupShard::default();
        let epoch = join_consumer_group(&mut s, &catalog);
        for (transactional, want) in [
            (false, errors::STALE_MEMBER_EPOCH),
            (true, errors::ILLEGAL_GENERATION),
        ] {
            let r = s.commit_offsets(
                who("m", epoch - 1),
                commit(),
                transactional,
                &catalog,
                &cfg,
                0,
            );
            assert_eq!(r.response, Err(want), "transactional: {transactional}");
        }
        let r = s.commit_offsets(who("m", epoch), commit(), true, &catalog, &cfg, 0);
        assert_eq!(r.response, Ok(vec![errors::NONE]));
    }

    #[test]
    fn offset_delete_follows_each_group_types_rules() {
        // Kafka 4.4's deleteOffsets: a KIP-848 group keeps the offsets of the topics its members
        // subscribe to (GROUP_SUBSCRIBED_TO_TOPIC), deletes the others (a tombstone only where an
        // offset exists) and all once empty; share groups are GROUP_ID_NOT_FOUND; a classic group
        // of another protocol type than consumer is NON_EMPTY_GROUP while it has members.
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        catalog.create("t", 1, 1, Default::default(), 0).unwrap();
        catalog.create("u", 2, 1, Default::default(), 0).unwrap();
        let mut s = GroupShard::default();
        join_consumer_group(&mut s, &catalog);
        for (i, (topic, partition)) in [("t", 0), ("u", 0)].into_iter().enumerate() {
            let value = offsets_topic::offset_value(&CommittedOffset {
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
                record_offset: -1,
            });
            let key = offsets_topic::offset_key("g", topic, partition);
            s.replay(
                at(i as i64, NO_PRODUCER_ID),
                &CoordinatorRecord::new(key, Some(value)),
            );
        }
        let asked: Vec<(String, i32)> = [("t", 0), ("u", 0), ("u", 1), ("u", 2), ("gone", 0)]
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        let r = s.delete_offsets("g", &asked, &catalog);
        let (subscribed, unknown) = (
            errors::GROUP_SUBSCRIBED_TO_TOPIC,
            errors::UNKNOWN_TOPIC_OR_PARTITION,
        );
        assert_eq!(r.response, Ok(vec![subscribed, 0, 0, unknown, unknown]));
        let deleted: Vec<_> = r
            .records
            .iter()
            .map(|r| offsets_topic::decode(&r.key, None))
            .collect();
        let u0 = Some(OffsetsRecord::Offset {
            group: "g".into(),
            topic: "u".into(),
            partition: 0,
            value: None,
        });
        assert_eq!(deleted, vec![u0]);
        // The member leaves: nothing is subscribed any more.
        let leave = HeartbeatParams {
            member_id: "m".into(),
            member_epoch: super::super::consumer::LEAVE_EPOCH,
            ..HeartbeatParams::default()
        };
        s.consumer_heartbeat("g", leave, &catalog, 1, &CONSUMER_CFG);
        let r = s.delete_offsets("g", &asked[..1], &catalog);
        assert_eq!(tombstoned(&r), vec![offset_tombstone("g", 0)]);
        assert_eq!(r.response, Ok(vec![0]));

        let share = ShareHeartbeat {
            member_id: "s".into(),
            subscribed_topic_names: Some(vec!["t".into()]),
            ..ShareHeartbeat::default()
        };
        let r = s.share_heartbeat("sh", share, &catalog, 0, &ShareGroupConfig::default());
        assert_eq!(r.response.error_code, errors::NONE);
        let r = s.delete_offsets("sh", &asked[1..2], &catalog);
        assert_eq!(r.response, Err(errors::GROUP_ID_NOT_FOUND));

        let mut connect = ClassicGroup::new("connect");
        connect.protocol_type = Some("connect".into());
        connect.state = GroupState::Stable;
        s.classic.insert("connect".into(), connect);
        let r = s.delete_offsets("connect", &asked[1..2], &catalog);
        assert_eq!(r.response, Err(errors::NON_EMPTY_GROUP));
    }
}
