//! The group coordinator of this node (Kafka's GroupCoordinatorService): routes each request to
//! the shard of the group's `__consumer_offsets` partition and runs it there as an operation of
//! the coordinator runtime (`coordinator::runtime`; the shard and its `replay` are in
//! `shard.rs`). Each shard has its own lock, held only for in-memory work and the append of a few
//! records, never across an await; waiting JoinGroup/SyncGroup requests wait on oneshot
//! receivers outside it.

use bytes::Bytes;

use super::classic::{GroupState, JoinParams, JoinResult, Reply, SyncResult};
use super::consumer::{
    ConsumerGroup, ConsumerGroupConfig, HeartbeatParams, HeartbeatResult, TopicSource,
};
use super::offsets_topic::{self, CommittedOffset};
use super::shard::{GroupResult, GroupShard};
use super::share::{ShareGroup, ShareHeartbeat, ShareHeartbeatResult};
use super::streams::{StreamsGroup, StreamsGroupConfig, StreamsHeartbeat, StreamsHeartbeatResult};
use super::GroupConfig;
use crate::coordinator::runtime::{CoordinatorRuntime, ProducerIdAndEpoch};
use crate::coordinator::FollowsLeadership;
use crate::metadata::image::{MetadataDelta, MetadataImage};
use crate::metadata::publisher::MetadataPublisher;
use crate::metadata::records::RESOURCE_GROUP;
use crate::metadata::Catalog;
use crate::protocol::errors;
use crate::server::clock::Now;
use crate::txn::TxnMarker;
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One partition of an OffsetFetch answer: its committed offset (`None`: no commit), or the
/// partition's error.
pub type FetchedOffset = (String, i32, Result<Option<CommittedOffset>, i16>);

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
    runtime: CoordinatorRuntime<GroupShard>,
}

impl GroupCoordinator {
    pub fn new(cfg: GroupConfig) -> GroupCoordinator {
        let runtime = CoordinatorRuntime::new(
            OFFSETS_TOPIC,
            cfg.offsets_topic_partitions,
            GroupShard::default,
        );
        GroupCoordinator { cfg, runtime }
    }

    /// Loads every shard by replaying its `__consumer_offsets` partition at start-up; the loaded
    /// members' sessions start at `now` (its monotonic reading).
    pub fn load(&self, catalog: &Catalog, now: Now) -> std::io::Result<usize> {
        let cfg = self.consumer_cfg();
        let (share_cfg, streams_cfg) = (self.cfg.share, self.cfg.streams);
        let applied = self.runtime.load_all(catalog, |s| {
            s.on_loaded(catalog, now.monotonic_ms, &cfg, &share_cfg, &streams_cfg)
        })?;
        self.remove_offsets_of_unknown_topics(catalog, now.wall_ms);
        Ok(applied)
    }

    /// From now on shards are served only where this broker leads their partition (a cluster of
    /// processes; see `coordinator::PartitionLeadershipListener`).
    pub fn follow_leadership(&self) {
        self.runtime.follow_leadership();
    }

    /// Offsets of topics deleted while their tombstones could not be written (a crash between
    /// the two, or a shard led elsewhere then) are dropped from the loaded shards.
    fn remove_offsets_of_unknown_topics(&self, catalog: &Catalog, now: i64) {
        let mut unknown = std::collections::BTreeSet::new();
        for p in 0..self.runtime.partitions() {
            self.runtime.read(p, |s| {
                unknown.extend(
                    s.offset_topics()
                        .filter(|t| catalog.get(t).is_none())
                        .cloned(),
                )
            });
        }
        if !unknown.is_empty() {
            let unknown: Vec<String> = unknown.into_iter().collect();
            self.remove_offsets_of_topics(catalog, &unknown, now);
        }
    }

    /// The `__consumer_offsets` partition of a group (GroupCoordinator.partitionFor).
    pub fn partition_of(&self, group_id: &str) -> i32 {
        offsets_topic::partition_for(group_id, self.runtime.partitions())
    }

    /// Runs a write operation on the group's shard.
    fn write<T>(
        &self,
        catalog: &Catalog,
        group_id: &str,
        now: i64,
        op: impl FnOnce(&mut GroupShard) -> GroupResult<T>,
    ) -> Result<T, i16> {
        self.runtime
            .write(catalog, self.partition_of(group_id), now, op)
    }

    /// Looks at the group's shard.
    fn read<R>(&self, group_id: &str, f: impl FnOnce(&GroupShard) -> R) -> Option<R> {
        self.runtime.read(self.partition_of(group_id), f)
    }

    /// Runs a write operation on every shard; the answers of those that succeeded.
    fn write_all<T>(
        &self,
        catalog: &Catalog,
        now: i64,
        op: impl Fn(&mut GroupShard) -> GroupResult<T>,
    ) -> Vec<T> {
        (0..self.runtime.partitions())
            .filter_map(|p| self.runtime.write(catalog, p, now, &op).ok())
            .collect()
    }

    /// Runs `f` on a classic group (creating it when `create`), writing its group record when
    /// the group became Stable or Empty; None when there is no such group. `f` sets deadlines
    /// on `now.monotonic_ms`; the record is stamped with `now.wall_ms`.
    fn with_group<R>(
        &self,
        catalog: &Catalog,
        group_id: &str,
        create: bool,
        now: Now,
        f: impl FnOnce(&mut super::classic::ClassicGroup) -> R,
    ) -> Result<Option<R>, i16> {
        let cfg = &self.cfg;
        self.write(catalog, group_id, now.wall_ms, |s| {
            s.classic_op(group_id, create, now, cfg, f)
        })
    }

    pub fn join(
        &self,
        catalog: &Catalog,
        group_id: &str,
        p: JoinParams,
        now: Now,
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
        // GroupMetadataManager.classicGroupJoin: a share or streams group's id is no classic
        // group's.
        if self.with_share_group(group_id, |_| ()).is_some()
            || self.with_streams_group(group_id, |_| ()).is_some()
        {
            return Reply::Now(JoinResult {
                error_code: errors::INCONSISTENT_GROUP_PROTOCOL,
                generation_id: -1,
                ..JoinResult::default()
            });
        }
        let create = p.member_id.is_empty();
        let cfg = self.cfg.clone();
        match self.with_group(catalog, group_id, create, now, |g| {
            g.join(p, now.monotonic_ms, &cfg)
        }) {
            Ok(Some(reply)) => reply,
            Ok(None) => fail(errors::UNKNOWN_MEMBER_ID),
            Err(code) => fail(code),
        }
    }

    pub fn sync(
        &self,
        catalog: &Catalog,
        who: MemberRef<'_>,
        assignments: Vec<(String, Bytes)>,
        now: Now,
    ) -> Reply<SyncResult> {
        let result = self.with_group(catalog, who.group_id, false, now, |g| {
            g.sync(
                who.member_id,
                who.instance_id,
                who.generation_id,
                assignments,
                now.monotonic_ms,
            )
        });
        let code = match result {
            Ok(Some(reply)) => return reply,
            Ok(None) => errors::UNKNOWN_MEMBER_ID,
            Err(code) => code,
        };
        Reply::Now(SyncResult {
            error_code: code,
            ..SyncResult::default()
        })
    }

    pub fn heartbeat(&self, catalog: &Catalog, who: MemberRef<'_>, now: Now) -> i16 {
        let result = self.with_group(catalog, who.group_id, false, now, |g| {
            g.heartbeat(
                who.member_id,
                who.instance_id,
                who.generation_id,
                now.monotonic_ms,
            )
        });
        result
            .and_then(|r| r.ok_or(errors::UNKNOWN_MEMBER_ID))
            .unwrap_or_else(|code| code)
    }

    /// Removes members; the error of each, or the group's error.
    pub fn leave(
        &self,
        catalog: &Catalog,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: Now,
    ) -> Result<Vec<i16>, i16> {
        let cfg = self.cfg.clone();
        self.with_group(catalog, group_id, false, now, |g| {
            members
                .iter()
                .map(|(id, instance)| g.leave(id, instance.as_deref(), now.monotonic_ms, &cfg))
                .collect()
        })?
        .ok_or(errors::UNKNOWN_MEMBER_ID)
    }

    /// ConsumerGroupHeartbeat (KIP-848). Every change of the group is written as Kafka's
    /// ConsumerGroup* records, so members carry on across a broker restart.
    pub fn consumer_heartbeat(
        &self,
        catalog: &Catalog,
        group_id: &str,
        p: HeartbeatParams,
        now: Now,
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
        let cfg = self.consumer_cfg_of(catalog, group_id);
        let params = p.clone();
        self.write(catalog, group_id, now.wall_ms, |s| {
            s.consumer_heartbeat(group_id, params, catalog, now.monotonic_ms, &cfg)
        })
        .unwrap_or_else(|code| fail(code, "the group's records could not be written".into()))
    }

    /// ShareGroupHeartbeat (KIP-932): the group's changes are written as Kafka's ShareGroup*
    /// records, so members carry on across a broker restart.
    pub fn share_heartbeat(
        &self,
        catalog: &Catalog,
        group_id: &str,
        hb: ShareHeartbeat,
        now: Now,
    ) -> ShareHeartbeatResult {
        let cfg = self.cfg.share;
        self.write(catalog, group_id, now.wall_ms, |s| {
            s.share_heartbeat(group_id, hb, catalog, now.monotonic_ms, &cfg)
        })
        .unwrap_or_else(|code| {
            ShareHeartbeatResult::error(code, "the group's records could not be written")
        })
    }

    /// AlterShareGroupOffsets' and DeleteShareGroupOffsets' check of their group (see
    /// `GroupShard::empty_share_group`): the error code and message when it fails.
    pub fn empty_share_group(
        &self,
        catalog: &Catalog,
        group_id: &str,
        create: bool,
        now: i64,
    ) -> Result<(), (i16, String)> {
        if group_id.is_empty() {
            let code = errors::INVALID_GROUP_ID;
            return Err((code, errors::message(code).unwrap_or_default().to_string()));
        }
        self.write(catalog, group_id, now, |s| {
            s.empty_share_group(group_id, create)
        })
        .unwrap_or_else(|code| Err((code, errors::message(code).unwrap_or_default().to_string())))
    }

    /// StreamsGroupHeartbeat (KIP-1071): the group's changes are written as Kafka's
    /// StreamsGroup* records, so the topology and members carry on across a broker restart.
    pub fn streams_heartbeat(
        &self,
        catalog: &Catalog,
        group_id: &str,
        hb: StreamsHeartbeat,
        now: Now,
    ) -> StreamsHeartbeatResult {
        let cfg = self.streams_cfg_of(catalog, group_id);
        self.write(catalog, group_id, now.wall_ms, |s| {
            s.streams_heartbeat(group_id, hb, catalog, now.monotonic_ms, &cfg)
        })
        .unwrap_or_else(|code| {
            StreamsHeartbeatResult::error(code, "the group's records could not be written")
        })
    }

    /// Runs `f` on a streams group, if there is one of that id.
    pub fn with_streams_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&StreamsGroup) -> R,
    ) -> Option<R> {
        self.read_group(group_id, |s| s.streams.get(group_id), f)
    }

    pub fn consumer_cfg(&self) -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout_ms: self.cfg.consumer_session_timeout_ms,
            heartbeat_interval_ms: self.cfg.consumer_heartbeat_interval_ms,
        }
    }

    /// The consumer-group settings of `group_id`: the broker's, with the group's own
    /// `consumer.*` configs over them (`group_config`).
    pub fn consumer_cfg_of(&self, catalog: &Catalog, group_id: &str) -> ConsumerGroupConfig {
        use super::group_config::{
            int_override, CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS,
        };
        let mut cfg = self.consumer_cfg();
        let own = catalog.image().configs_of(RESOURCE_GROUP, group_id);
        if let Some(v) = int_override(&own, CONSUMER_SESSION_TIMEOUT_MS) {
            cfg.session_timeout_ms = i64::from(v);
        }
        if let Some(v) = int_override(&own, CONSUMER_HEARTBEAT_INTERVAL_MS) {
            cfg.heartbeat_interval_ms = v;
        }
        cfg
    }

    /// The streams-group settings of `group_id`, with its own `streams.*` configs.
    pub fn streams_cfg_of(&self, catalog: &Catalog, group_id: &str) -> StreamsGroupConfig {
        use super::group_config::{
            int_override, STREAMS_HEARTBEAT_INTERVAL_MS, STREAMS_SESSION_TIMEOUT_MS,
        };
        let mut cfg = self.cfg.streams;
        let own = catalog.image().configs_of(RESOURCE_GROUP, group_id);
        if let Some(v) = int_override(&own, STREAMS_SESSION_TIMEOUT_MS) {
            cfg.session_timeout_ms = i64::from(v);
        }
        if let Some(v) = int_override(&own, STREAMS_HEARTBEAT_INTERVAL_MS) {
            cfg.heartbeat_interval_ms = v;
        }
        cfg
    }

    /// Runs `f` on a consumer group, if there is one of that id.
    pub fn with_consumer_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> R,
    ) -> Option<R> {
        self.read_group(group_id, |s| s.consumer.get(group_id), f)
    }

    /// Runs `f` on a share group, if there is one of that id.
    pub fn with_share_group<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ShareGroup) -> R,
    ) -> Option<R> {
        self.read_group(group_id, |s| s.share.get(group_id), f)
    }

    /// Runs `f` on the group `pick` finds in the group's shard.
    fn read_group<G, R>(
        &self,
        group_id: &str,
        pick: impl FnOnce(&GroupShard) -> Option<&G>,
        f: impl FnOnce(&G) -> R,
    ) -> Option<R> {
        self.read(group_id, |s| pick(s).map(f)).flatten()
    }

    /// Stores commits after the group's checks; per-partition errors in request order.
    pub fn commit_offsets(
        &self,
        catalog: &Catalog,
        who: MemberRef<'_>,
        commits: Vec<OffsetCommit>,
        now: i64,
    ) -> Result<Vec<i16>, i16> {
        if who.group_id.is_empty() {
            return Err(errors::INVALID_GROUP_ID);
        }
        let cfg = &self.cfg;
        self.write(catalog, who.group_id, now, |s| {
            s.commit_offsets(who, commits, false, catalog, cfg, now)
        })?
    }

    /// TxnOffsetCommit (sendOffsetsToTransaction): the group's checks as OffsetCommit's, the
    /// offsets written as one transactional batch of the producer (the log fences an old epoch:
    /// INVALID_PRODUCER_EPOCH) and held pending until the transaction's marker reaches
    /// `complete_transaction`. Per-partition errors in request order, or the request's error.
    pub fn commit_transactional_offsets(
        &self,
        catalog: &Catalog,
        who: MemberRef<'_>,
        producer: ProducerIdAndEpoch,
        commits: Vec<OffsetCommit>,
        now: i64,
    ) -> Result<Vec<i16>, i16> {
        if who.group_id.is_empty() {
            return Err(errors::INVALID_GROUP_ID);
        }
        // No transaction can hold offsets without a producer id; Kafka's verification with the
        // transaction coordinator answers such a request INVALID_PRODUCER_ID_MAPPING.
        if producer.producer_id < 0 {
            return Err(errors::INVALID_PRODUCER_ID_MAPPING);
        }
        let (cfg, partition) = (&self.cfg, self.partition_of(who.group_id));
        self.runtime
            .write_transactional(catalog, partition, now, producer, |s| {
                s.commit_offsets(who, commits, true, catalog, cfg, now)
            })?
    }

    /// Ends a transaction on one `__consumer_offsets` partition: the entry the transaction
    /// coordinator's marker dispatch calls (Kafka's GroupCoordinatorService.completeTransaction,
    /// reached through WriteTxnMarkers) for each offsets partition of a transaction that sent
    /// offsets. Writes the marker, then the producer's pending offsets become the committed ones
    /// (`marker.commit`) or vanish. Errors: NOT_COORDINATOR (the partition is not loaded here),
    /// COORDINATOR_NOT_AVAILABLE, or the log's (e.g. TRANSACTION_COORDINATOR_FENCED); the
    /// coordinator retries them.
    pub fn complete_transaction(
        &self,
        catalog: &Catalog,
        offsets_partition: i32,
        marker: TxnMarker,
        now: i64,
    ) -> Result<(), i16> {
        self.runtime
            .complete_transaction(catalog, offsets_partition, marker, now)
    }

    /// Committed offsets of a group: of the given (topic, partitions), or all when `None`.
    /// Offsets pending in open transactions are never shown; with `require_stable` (OffsetFetch
    /// v7+, a read_committed consumer) a partition that has some answers UNSTABLE_OFFSET_COMMIT,
    /// for the consumer to retry once the transaction ended (Kafka's OffsetMetadataManager
    /// fetchOffsets / fetchAllOffsets).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, i16> {
        let read = self.runtime.try_read(self.partition_of(group_id), |s| {
            let committed = s.offsets.get(group_id);
            let fetched = |t: &str, p: i32, c: Option<&CommittedOffset>| {
                if require_stable && s.has_pending_offset(group_id, t, p) {
                    Err(errors::UNSTABLE_OFFSET_COMMIT)
                } else {
                    Ok(c.cloned())
                }
            };
            match wanted {
                Some(topics) => topics
                    .into_iter()
                    .flat_map(|(t, ps)| {
                        ps.into_iter().map(move |p| {
                            let c = committed.and_then(|m| m.get(&(t.clone(), p)));
                            (t.clone(), p, fetched(&t, p, c))
                        })
                    })
                    .collect(),
                None => committed
                    .into_iter()
                    .flatten()
                    .map(|((t, p), c)| (t.clone(), *p, fetched(t, *p, Some(c))))
                    .collect(),
            }
        })?;
        Ok(read.unwrap_or_default())
    }

    /// Every committed offset: (group, topic, partition, offset), sorted (the metrics' lag).
    pub fn all_committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut v = Vec::new();
        for p in 0..self.runtime.partitions() {
            self.runtime.read(p, |s| {
                for (group, offsets) in &s.offsets {
                    v.extend(
                        (offsets.iter())
                            .map(|((t, p), c)| (group.clone(), t.clone(), *p, c.offset)),
                    );
                }
            });
        }
        v.sort();
        v
    }

    /// (group id, state, protocol type) of every group.
    pub fn list_groups(&self) -> Vec<ListedGroup> {
        let mut v = Vec::new();
        for p in 0..self.runtime.partitions() {
            self.runtime.read(p, |s| {
                v.extend(s.classic.values().map(|g| ListedGroup {
                    group_id: g.group_id.clone(),
                    state: g.state.name(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    group_type: "classic",
                }));
                v.extend(s.consumer.values().map(|g| ListedGroup {
                    group_id: g.group_id.clone(),
                    state: g.state(),
                    protocol_type: "consumer".into(),
                    group_type: "consumer",
                }));
                v.extend(s.share.values().map(|g| ListedGroup {
                    group_id: g.group_id.clone(),
                    state: g.state(),
                    protocol_type: "share".into(),
                    group_type: "share",
                }));
                v.extend(s.streams.values().map(|g| ListedGroup {
                    group_id: g.group_id.clone(),
                    state: g.state(),
                    protocol_type: "streams".into(),
                    group_type: "streams",
                }));
            });
        }
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.read(group_id, |s| {
            let g = s.classic.get(group_id)?;
            let protocol = g.protocol_name.clone().unwrap_or_default();
            // Kafka shows member metadata and assignments only once the group is stable.
            let stable = g.state == GroupState::Stable;
            let shown = |b: Bytes| if stable { b } else { Bytes::new() };
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
                        metadata: shown(m.metadata(&protocol)),
                        assignment: shown(m.assignment.clone()),
                    })
                    .collect(),
            })
        })
        .flatten()
    }

    /// DeleteGroups: only empty groups; their offsets go too.
    pub fn delete_group(&self, catalog: &Catalog, group_id: &str, now: i64) -> i16 {
        self.write(catalog, group_id, now, |s| s.delete_group(group_id))
            .unwrap_or_else(|code| code)
    }

    /// OffsetDelete: removes offsets of topics the group's members do not subscribe to.
    pub fn delete_offsets(
        &self,
        catalog: &Catalog,
        group_id: &str,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<Vec<i16>, i16> {
        self.write(catalog, group_id, now, |s| {
            s.delete_offsets(group_id, partitions, catalog)
        })?
    }

    /// Expires committed offsets of empty groups older than offsets.retention.minutes, and
    /// removes groups left with nothing. Returns the number of offsets removed.
    pub fn expire_offsets(&self, catalog: &Catalog, now: i64) -> usize {
        let retention = self.cfg.offsets_retention_ms;
        self.write_all(catalog, now, |s| s.expire_offsets(now, retention))
            .into_iter()
            .sum()
    }

    /// Removes every group's committed offsets of deleted topics, with tombstones (Kafka's
    /// GroupCoordinator.onPartitionsDeleted); returns how many offsets went. A shard whose
    /// tombstones cannot be written keeps them until the next start-up purges them.
    pub fn remove_offsets_of_topics(
        &self,
        catalog: &Catalog,
        topics: &[String],
        now: i64,
    ) -> usize {
        self.write_all(catalog, now, |s| s.remove_offsets_of_topics(topics))
            .into_iter()
            .sum()
    }

    /// Applies session, join and sync timeouts of every group, each as an operation of its
    /// shard, so what they change is written like any request's change. Returns the share-group
    /// members whose session expired (group, member): what they hold must be released.
    /// Deadlines are compared with `now.monotonic_ms` (Kafka's timer wheel), so a step of the
    /// wall clock neither expires every session nor keeps a dead member in.
    pub fn tick(&self, catalog: &Catalog, now: Now) -> Vec<(String, String)> {
        let cfg = &self.cfg;
        let wall = now.wall_ms;
        let at = now.monotonic_ms;
        let mut gone = Vec::new();
        for p in 0..self.runtime.partitions() {
            let Some((classic, consumer, share, streams)) = self.runtime.read(p, |s| {
                let expired = s.consumer.values().filter(|g| g.has_expired(at));
                let share = s.share.values().filter(|g| g.has_expired(at));
                let streams = s.streams.values().filter(|g| g.has_expired(at));
                (
                    s.classic.keys().cloned().collect::<Vec<_>>(),
                    expired.map(|g| g.group_id.clone()).collect::<Vec<_>>(),
                    share.map(|g| g.group_id.clone()).collect::<Vec<_>>(),
                    streams.map(|g| g.group_id.clone()).collect::<Vec<_>>(),
                )
            }) else {
                continue;
            };
            for id in streams {
                let done = self.runtime.write(catalog, p, wall, |s| {
                    s.streams_op(&id, false, |g| g.expire(at))
                });
                if let Err(code) = done {
                    tracing::warn!(group = id, code, "streams group expiry not written");
                }
            }
            for id in consumer {
                let done = self.runtime.write(catalog, p, wall, |s| {
                    s.consumer_op(&id, false, |g| g.expire(at))
                });
                if let Err(code) = done {
                    tracing::warn!(group = id, code, "consumer group expiry not written");
                }
            }
            for id in share {
                let done = self.runtime.write(catalog, p, wall, |s| {
                    s.share_op(&id, false, |g| g.expire(at))
                });
                match done {
                    Ok(members) => {
                        gone.extend(members.into_iter().flatten().map(|m| (id.clone(), m)))
                    }
                    Err(code) => tracing::warn!(group = id, code, "share group expiry not written"),
                }
            }
            for id in classic {
                let done = self.runtime.write(catalog, p, wall, |s| {
                    s.classic_op(&id, false, now, cfg, |g| g.tick(at, cfg))
                });
                if let Err(code) = done {
                    tracing::warn!(group = id, code, "classic group timeout not written");
                }
            }
        }
        gone
    }
}

/// Kafka's GroupCoordinatorService.onElection / onResignation. A resignation drops the shard's
/// groups: members parked in JoinGroup and SyncGroup get NOT_COORDINATOR (`on_unloaded`) and
/// ask the new coordinator.
impl FollowsLeadership for GroupCoordinator {
    type Shard = GroupShard;

    fn runtime(&self) -> &CoordinatorRuntime<GroupShard> {
        &self.runtime
    }

    fn run_scheduled_loads(&self, catalog: &Catalog, now: Now) -> usize {
        let cfg = self.consumer_cfg();
        let (share_cfg, streams_cfg) = (self.cfg.share, self.cfg.streams);
        let loaded = self.runtime.run_scheduled_loads(catalog, |s| {
            s.on_loaded(catalog, now.monotonic_ms, &cfg, &share_cfg, &streams_cfg)
        });
        if loaded > 0 {
            self.remove_offsets_of_unknown_topics(catalog, now.wall_ms);
        }
        loaded
    }
}

/// Topic deletion reaches the group coordinator as committed metadata (Kafka's
/// GroupCoordinator.onPartitionsDeleted, called from BrokerMetadataPublisher): every group's
/// offsets of the removed topics go, with tombstones written when the change was committed.
impl MetadataPublisher for GroupCoordinator {
    fn name(&self) -> &'static str {
        "GroupCoordinator"
    }

    fn on_metadata_update(&self, catalog: &Catalog, delta: &MetadataDelta, image: &MetadataImage) {
        let deleted: Vec<String> = delta.topics().deleted().map(|t| t.name.clone()).collect();
        // Without `__consumer_offsets` there is no offset to remove, and no write may make it:
        // publishers run under the lock a creation takes.
        if deleted.is_empty() || catalog.get(OFFSETS_TOPIC).is_none() {
            return;
        }
        let now = image.provenance.last_timestamp;
        let removed = self.remove_offsets_of_topics(catalog, &deleted, now);
        tracing::info!(topics = ?deleted, offsets = removed, "offsets of deleted topics removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::shard::tests::marker;
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
        assert!(c.load(&catalog, Now::at(0)).unwrap() >= 4);
        let g1 = c.fetch_offsets("g1", None, false).unwrap();
        assert_eq!(g1.len(), 1);
        assert_eq!(
            g1[0].2.as_ref().map(|o| o.as_ref().map(|o| o.offset)),
            Ok(Some(6))
        );
        assert!(c.fetch_offsets("g2", None, false).unwrap().is_empty());
        let groups: Vec<String> = c.list_groups().into_iter().map(|g| g.group_id).collect();
        assert_eq!(groups, vec!["g1".to_string()]);
        // An uncommitted partition reads as "no offset".
        let one = c
            .fetch_offsets("g1", Some(vec![("t".into(), vec![1])]), false)
            .unwrap();
        assert_eq!(one[0].2, Ok(None));
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

    fn producer(producer_id: i64) -> ProducerIdAndEpoch {
        ProducerIdAndEpoch {
            producer_id,
            producer_epoch: 0,
        }
    }

    /// (error, offset) of each partition of topic "t" asked for, or of all when `None`.
    fn offsets(
        c: &GroupCoordinator,
        partitions: Option<Vec<i32>>,
        stable: bool,
    ) -> Vec<Result<i64, i16>> {
        let wanted = partitions.map(|ps| vec![("t".to_string(), ps)]);
        c.fetch_offsets("g", wanted, stable)
            .unwrap()
            .into_iter()
            .map(|(_, _, r)| r.map(|o| o.map_or(-1, |o| o.offset)))
            .collect()
    }

    #[test]
    fn transactional_offsets_are_hidden_until_committed_and_survive_a_restart() {
        // Kafka's OffsetMetadataManager: TxnOffsetCommit's offsets are pending; OffsetFetch
        // never returns them, and with require_stable answers UNSTABLE_OFFSET_COMMIT for their
        // partitions; the commit marker makes them the committed offsets, the abort marker drops
        // them; loading rebuilds both, an open transaction still pending.
        let dir = tempfile::tempdir().unwrap();
        let cfg = GroupConfig {
            offsets_topic_partitions: 3,
            ..GroupConfig::default()
        };
        let p = offsets_topic::partition_for("g", 3);
        {
            let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
            catalog.create("t", 3, 1, Default::default(), 0).unwrap();
            let c = GroupCoordinator::new(cfg.clone());
            c.commit_offsets(&catalog, who("g", "", -1), vec![commit("t", 0, 5)], 1)
                .unwrap();
            let txn = |pid, commits| {
                c.commit_transactional_offsets(
                    &catalog,
                    who("g", "", -1),
                    producer(pid),
                    commits,
                    2,
                )
            };
            assert_eq!(
                txn(7, vec![commit("t", 0, 9), commit("t", 1, 9)]),
                Ok(vec![0, 0])
            );
            assert_eq!(txn(8, vec![commit("t", 2, 8)]), Ok(vec![0]));
            let unstable = Err(errors::UNSTABLE_OFFSET_COMMIT);
            assert_eq!(offsets(&c, Some(vec![0, 1]), false), vec![Ok(5), Ok(-1)]);
            assert_eq!(
                offsets(&c, Some(vec![0, 1]), true),
                vec![unstable, unstable]
            );
            assert_eq!(offsets(&c, None, false), vec![Ok(5)]);
            assert_eq!(offsets(&c, None, true), vec![unstable]);
            c.complete_transaction(&catalog, p, marker(7, true), 3)
                .unwrap();
            c.complete_transaction(&catalog, p, marker(8, false), 3)
                .unwrap();
            let all = Some(vec![0, 1, 2]);
            assert_eq!(offsets(&c, all.clone(), true), vec![Ok(9), Ok(9), Ok(-1)]);
            // An open transaction at the time of the crash.
            assert_eq!(txn(9, vec![commit("t", 2, 7)]), Ok(vec![0]));
            assert_eq!(offsets(&c, all, true), vec![Ok(9), Ok(9), unstable]);
            assert_eq!(
                c.commit_transactional_offsets(&catalog, who("", "", -1), producer(9), vec![], 4),
                Err(errors::INVALID_GROUP_ID)
            );
        }
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(cfg);
        c.load(&catalog, Now::at(5)).unwrap();
        let unstable = Err(errors::UNSTABLE_OFFSET_COMMIT);
        assert_eq!(
            offsets(&c, Some(vec![0, 1, 2]), true),
            vec![Ok(9), Ok(9), unstable]
        );
        c.complete_transaction(&catalog, p, marker(9, true), 6)
            .unwrap();
        assert_eq!(offsets(&c, Some(vec![2]), true), vec![Ok(7)]);
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
            let a = c.consumer_heartbeat(&catalog, "g", consumer_join("a", &["t"]), Now::at(1));
            assert_eq!(a.error_code, errors::NONE);
            let gone =
                c.consumer_heartbeat(&catalog, "g", consumer_join("gone", &["t"]), Now::at(2));
            let leave = HeartbeatParams {
                member_id: "gone".into(),
                member_epoch: super::super::consumer::LEAVE_EPOCH,
                ..HeartbeatParams::default()
            };
            assert_eq!(gone.error_code, errors::NONE);
            assert_eq!(
                c.consumer_heartbeat(&catalog, "g", leave, Now::at(3))
                    .error_code,
                0
            );
            let again = HeartbeatParams {
                member_id: "a".into(),
                member_epoch: a.member_epoch,
                owned: a.assignment.clone(),
                ..HeartbeatParams::default()
            };
            let a = c.consumer_heartbeat(&catalog, "g", again, Now::at(4));
            assert_eq!(a.error_code, errors::NONE);
            // A second group, emptied and deleted: nothing of it may come back.
            c.consumer_heartbeat(&catalog, "d", consumer_join("x", &["t"]), Now::at(5));
            let leave_d = HeartbeatParams {
                member_id: "x".into(),
                member_epoch: super::super::consumer::LEAVE_EPOCH,
                ..HeartbeatParams::default()
            };
            c.consumer_heartbeat(&catalog, "d", leave_d, Now::at(6));
            assert_eq!(c.delete_group(&catalog, "d", 7), errors::NONE);
            let assigned = c.with_consumer_group("g", |g| g.target_of("a")).unwrap();
            (a.member_epoch, assigned)
        };
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(cfg);
        c.load(&catalog, Now::at(1_000)).unwrap();
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
        let r = c.consumer_heartbeat(&catalog, "g", beat, Now::at(1_001));
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
            let c = std::sync::Arc::new(GroupCoordinator::new(cfg.clone()));
            for g in ["g1", "g2"] {
                let commits = vec![
                    commit("t", 0, 1),
                    commit("gone", 1, 2),
                    commit("crashed", 0, 3),
                ];
                c.commit_offsets(&catalog, who(g, "", -1), commits, 1)
                    .unwrap();
            }
            // The coordinator hears of the deletion as a publisher of committed metadata.
            catalog.subscribe(std::sync::Arc::clone(&c) as _);
            catalog.delete("gone").unwrap();
            for g in ["g1", "g2"] {
                let left: Vec<String> = c
                    .fetch_offsets(g, None, false)
                    .unwrap()
                    .into_iter()
                    .map(|o| o.0)
                    .collect();
                assert_eq!(left, vec!["crashed".to_string(), "t".to_string()], "{g}");
            }
            assert_eq!(c.remove_offsets_of_topics(&catalog, &["gone".into()], 2), 0);
            let crashed = catalog.get("crashed").unwrap().topic_id;
            drop((catalog, c));
            // Deleted without the coordinator hearing of it (the broker died in between).
            crate::metadata::append_unpublished(
                dir.path(),
                &[crate::metadata::records::MetadataRecord::RemoveTopic { topic_id: crashed }],
            );
        }
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(cfg);
        c.load(&catalog, Now::at(3)).unwrap();
        for g in ["g1", "g2"] {
            let left: Vec<(String, i32)> = c
                .fetch_offsets(g, None, false)
                .unwrap()
                .into_iter()
                .map(|o| (o.0, o.1))
                .collect();
            assert_eq!(left, vec![("t".to_string(), 0)], "{g}");
        }
    }
}

#[cfg(test)]
mod runtime_tests {
    //! The group coordinator on the coordinator runtime: writes before state, replay shared
    //! with loading.
    use std::collections::BTreeMap;

    use super::*;
    use crate::log::LogConfig;

    fn catalog(dir: &std::path::Path, create: bool, max_message_bytes: usize) -> Catalog {
        let cfg = LogConfig {
            max_message_bytes,
            ..LogConfig::default()
        };
        Catalog::open(dir, cfg, create, 0).unwrap()
    }

    fn outside(group_id: &str) -> MemberRef<'_> {
        MemberRef {
            group_id,
            member_id: "",
            instance_id: None,
            generation_id: -1,
        }
    }

    fn commits(topic: &str, partitions: std::ops::Range<i32>, offset: i64) -> Vec<OffsetCommit> {
        partitions
            .map(|partition| OffsetCommit {
                topic: topic.into(),
                partition,
                offset,
                leader_epoch: -1,
                metadata: Some("m".into()),
            })
            .collect()
    }

    fn consumer_join(member: &str, topic: &str) -> HeartbeatParams {
        HeartbeatParams {
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec![topic.into()]),
            owned: Some(Default::default()),
            ..HeartbeatParams::default()
        }
    }

    pub(super) fn classic_join(member_id: &str) -> JoinParams {
        JoinParams {
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: false,
        }
    }

    pub(super) fn now<T>(r: Reply<T>) -> T {
        match r {
            Reply::Now(t) => t,
            Reply::Later(mut rx) => rx.try_recv().expect("answered once the write is decided"),
        }
    }

    /// Everything a restart must bring back, per shard: committed offsets, classic groups'
    /// persisted fields, KIP-848 groups' records.
    fn image(c: &GroupCoordinator) -> BTreeMap<i32, String> {
        (0..c.runtime.partitions())
            .filter_map(|p| {
                c.runtime.read(p, |s| {
                    let offsets: BTreeMap<_, _> = s.offsets.iter().collect();
                    let classic: BTreeMap<_, _> = s
                        .classic
                        .values()
                        .map(|g| {
                            let members: Vec<_> = g
                                .members
                                .values()
                                .map(|m| (&m.member_id, &m.assignment))
                                .collect();
                            let fields = (g.state, g.generation_id, &g.protocol_name, &g.leader);
                            (&g.group_id, format!("{fields:?} {members:?}"))
                        })
                        .collect();
                    let consumer: BTreeMap<_, _> = s
                        .consumer
                        .values()
                        .map(|g| (&g.group_id, g.records()))
                        .collect();
                    (p, format!("{offsets:?}\n{classic:?}\n{consumer:?}"))
                })
            })
            .collect()
    }

    #[test]
    fn a_failed_append_leaves_groups_and_offsets_unchanged_and_answers_the_mapped_error() {
        // Kafka's runtime writes an operation's records before its state changes are visible and
        // reverts the shard when the append fails; the request gets handleOperationException's
        // mapping (a batch over max.message.bytes: UNKNOWN_SERVER_ERROR).
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path(), true, 600);
        catalog.create("t", 200, 1, Default::default(), 0).unwrap();
        let c = GroupCoordinator::new(GroupConfig::default());
        assert_eq!(
            c.commit_offsets(&catalog, outside("g"), commits("t", 0..1, 5), 1),
            Ok(vec![errors::NONE])
        );
        let before = image(&c);
        // Too many offsets for one batch: none of them is committed, the first keeps its value.
        assert_eq!(
            c.commit_offsets(&catalog, outside("g"), commits("t", 0..50, 9), 2),
            Err(errors::UNKNOWN_SERVER_ERROR)
        );
        assert_eq!(c.fetch_offsets("g", None, false).unwrap().len(), 1);
        // A KIP-848 member whose assignment (200 partitions) cannot be written: the empty
        // classic group "g" stays classic with its offsets, and no group "c" appears.
        for group in ["g", "c"] {
            let r = c.consumer_heartbeat(&catalog, group, consumer_join("m", "t"), Now::at(3));
            assert_eq!(r.error_code, errors::UNKNOWN_SERVER_ERROR, "{group}");
            assert!(c.with_consumer_group(group, |_| ()).is_none(), "{group}");
        }
        assert_eq!(image(&c), before);
        let listed: Vec<_> = c
            .list_groups()
            .into_iter()
            .map(|g| (g.group_id, g.group_type))
            .collect();
        assert_eq!(listed, vec![("g".to_string(), "classic")]);
    }

    #[test]
    fn live_operations_and_a_restart_replay_build_the_same_state() {
        // Kafka loads a shard by replaying its partition with the same replay its writes use.
        let dir = tempfile::tempdir().unwrap();
        let cfg = GroupConfig {
            offsets_topic_partitions: 4,
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        };
        let live = {
            let catalog = catalog(dir.path(), true, 1 << 20);
            catalog.create("t", 4, 1, Default::default(), 0).unwrap();
            let c = GroupCoordinator::new(cfg.clone());
            for g in ["a", "b", "c", "d", "e"] {
                c.commit_offsets(&catalog, outside(g), commits("t", 0..3, 7), 1)
                    .unwrap();
            }
            c.delete_offsets(&catalog, "b", &[("t".into(), 1)], 2)
                .unwrap();
            assert_eq!(c.delete_group(&catalog, "c", 3), errors::NONE);
            // A classic group through a rebalance to Stable, then a commit in its generation.
            let j = now(c.join(&catalog, "classic", classic_join(""), Now::at(4)));
            assert_eq!(j.error_code, errors::NONE);
            let assignment = vec![(j.member_id.clone(), Bytes::from_static(b"parts"))];
            let who = MemberRef {
                group_id: "classic",
                member_id: &j.member_id,
                instance_id: None,
                generation_id: j.generation_id,
            };
            assert_eq!(
                now(c.sync(&catalog, who, assignment, Now::at(5))).error_code,
                errors::NONE
            );
            c.commit_offsets(&catalog, who, commits("t", 0..4, 3), 6)
                .unwrap();
            // A KIP-848 group, with a member that leaves, over the offsets of group "d".
            let r = c.consumer_heartbeat(&catalog, "d", consumer_join("x", "t"), Now::at(7));
            assert_eq!(r.error_code, errors::NONE);
            c.consumer_heartbeat(&catalog, "d", consumer_join("y", "t"), Now::at(8));
            let leave = HeartbeatParams {
                member_id: "y".into(),
                member_epoch: super::super::consumer::LEAVE_EPOCH,
                ..HeartbeatParams::default()
            };
            c.consumer_heartbeat(&catalog, "d", leave, Now::at(9));
            image(&c)
        };
        let catalog = catalog(dir.path(), false, 1 << 20);
        let c = GroupCoordinator::new(cfg);
        c.load(&catalog, Now::at(10)).unwrap();
        assert_eq!(image(&c), live);
        assert!(live.values().any(|s| s.contains("Stable")), "{live:?}");
    }
}

#[cfg(test)]
mod clock_tests {
    //! Every deadline family of the group coordinator runs on the monotonic reading of the
    //! clock (Kafka's timer wheel): a step of the wall clock alone, forward or back, expires
    //! nothing; the monotonic reading past the deadline expires it.
    use super::runtime_tests::{classic_join, now as answered};
    use super::*;
    use crate::group::share::ShareHeartbeat;
    use crate::group::streams::StreamsHeartbeat;
    use crate::log::LogConfig;

    /// An hour: far past every timeout the tests use.
    const STEP: i64 = 3_600_000;

    fn setup(initial_rebalance_delay_ms: i64) -> (tempfile::TempDir, Catalog, GroupCoordinator) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        catalog.create("t", 2, 1, Default::default(), 0).unwrap();
        let c = GroupCoordinator::new(GroupConfig {
            offsets_topic_partitions: 1,
            initial_rebalance_delay_ms,
            ..GroupConfig::default()
        });
        (dir, catalog, c)
    }

    /// Where the two readings part: the wall reading far from the monotonic one, as on a host
    /// whose monotonic clock counts from boot.
    fn start() -> Now {
        Now {
            wall_ms: 1_700_000_000_000,
            monotonic_ms: 5_000,
        }
    }

    /// Ticks with the wall reading stepped forward, then back, by an hour: `alive` must hold;
    /// then with the monotonic reading `timeout` + 1 ms past `at` (and the wall one still an
    /// hour back, so a step back keeps no one in): it must not.
    fn wall_steps_expire_nothing_monotonic_time_does(
        c: &GroupCoordinator,
        catalog: &Catalog,
        at: Now,
        timeout: i64,
        alive: impl Fn() -> bool,
    ) {
        assert!(alive(), "alive before any tick");
        for step in [STEP, -STEP] {
            c.tick(catalog, at.wall_stepped(step));
            assert!(alive(), "a wall step of {step} ms expired it");
        }
        c.tick(catalog, at.wall_stepped(-STEP).later(timeout - 1));
        assert!(alive(), "expired before its deadline");
        c.tick(catalog, at.wall_stepped(-STEP).later(timeout + 1));
        assert!(!alive(), "the monotonic reading passed the deadline");
    }

    /// A classic group, Stable with one member (session 10 s), joined and synced at `at`.
    fn stable_classic(c: &GroupCoordinator, catalog: &Catalog, at: Now) -> String {
        let j = answered(c.join(catalog, "g", classic_join(""), at));
        assert_eq!(j.error_code, errors::NONE);
        let who = MemberRef {
            group_id: "g",
            member_id: &j.member_id,
            instance_id: None,
            generation_id: j.generation_id,
        };
        let assignment = vec![(j.member_id.clone(), Bytes::from_static(b"p"))];
        let s = answered(c.sync(catalog, who, assignment, at));
        assert_eq!(s.error_code, errors::NONE);
        j.member_id
    }

    fn classic_members(c: &GroupCoordinator) -> usize {
        c.describe("g").map_or(0, |d| d.members.len())
    }

    #[test]
    fn classic_sessions() {
        let (_dir, catalog, c) = setup(0);
        stable_classic(&c, &catalog, start());
        wall_steps_expire_nothing_monotonic_time_does(&c, &catalog, start(), 10_000, || {
            classic_members(&c) == 1
        });
    }

    /// A member's heartbeat renews its session from the monotonic reading, whatever the wall.
    #[test]
    fn classic_heartbeats_renew_on_the_monotonic_reading() {
        let (_dir, catalog, c) = setup(0);
        let member = stable_classic(&c, &catalog, start());
        // A heartbeat 8 s later while the wall reads an hour back.
        let beat = start().wall_stepped(-STEP).later(8_000);
        let who = MemberRef {
            group_id: "g",
            member_id: &member,
            instance_id: None,
            generation_id: 1,
        };
        assert_eq!(c.heartbeat(&catalog, who, beat), errors::NONE);
        wall_steps_expire_nothing_monotonic_time_does(&c, &catalog, beat, 10_000, || {
            classic_members(&c) == 1
        });
    }

    /// The first join of an empty group waits group.initial.rebalance.delay.ms, on the
    /// monotonic reading; then the leader's SyncGroup is awaited for the rebalance timeout.
    #[test]
    fn classic_initial_delay_and_sync_deadline() {
        let (_dir, catalog, c) = setup(3_000);
        let Reply::Later(mut rx) = c.join(&catalog, "g", classic_join(""), start()) else {
            panic!("the initial delay parks the join");
        };
        let state = || c.describe("g").map(|d| d.state);
        c.tick(&catalog, start().wall_stepped(STEP));
        assert!(
            rx.try_recv().is_err(),
            "a wall step ended the initial delay"
        );
        c.tick(&catalog, start().wall_stepped(STEP).later(3_001));
        let joined = rx
            .try_recv()
            .expect("the delay passed on the monotonic reading");
        assert_eq!(joined.error_code, errors::NONE);
        assert_eq!(state(), Some("CompletingRebalance"));
        // The leader never syncs: its rebalance timeout (10 s) on the monotonic reading sends
        // the group back to rebalancing.
        let joined_at = start().later(3_001);
        for step in [STEP, -STEP] {
            c.tick(&catalog, joined_at.wall_stepped(step));
            assert_eq!(state(), Some("CompletingRebalance"), "wall step {step}");
        }
        c.tick(&catalog, joined_at.wall_stepped(-STEP).later(10_001));
        assert_ne!(state(), Some("CompletingRebalance"));
    }

    /// Members loaded at start-up get their sessions from the load's monotonic reading.
    #[test]
    fn loaded_classic_sessions() {
        let (dir, catalog, c) = setup(0);
        stable_classic(&c, &catalog, start());
        drop((c, catalog));
        let catalog = Catalog::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        let c = GroupCoordinator::new(GroupConfig {
            offsets_topic_partitions: 1,
            ..GroupConfig::default()
        });
        // The restarted process: a new monotonic origin, the wall clock an hour ahead.
        let loaded = Now {
            wall_ms: start().wall_ms + STEP,
            monotonic_ms: 0,
        };
        c.load(&catalog, loaded).unwrap();
        wall_steps_expire_nothing_monotonic_time_does(&c, &catalog, loaded, 10_000, || {
            classic_members(&c) == 1
        });
    }

    #[test]
    fn consumer_group_sessions() {
        let (_dir, catalog, c) = setup(0);
        let join = HeartbeatParams {
            member_id: "a".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Default::default()),
            ..HeartbeatParams::default()
        };
        let r = c.consumer_heartbeat(&catalog, "g", join, start());
        assert_eq!(r.error_code, errors::NONE);
        let session = c.cfg.consumer_session_timeout_ms;
        wall_steps_expire_nothing_monotonic_time_does(&c, &catalog, start(), session, || {
            c.with_consumer_group("g", |g| g.members.contains_key("a"))
                .unwrap_or(false)
        });
    }

    #[test]
    fn share_group_sessions() {
        let (_dir, catalog, c) = setup(0);
        let join = ShareHeartbeat {
            member_id: "a".into(),
            member_epoch: 0,
            subscribed_topic_names: Some(vec!["t".into()]),
            client_id: "c".into(),
            client_host: "/h".into(),
            ..ShareHeartbeat::default()
        };
        let r = c.share_heartbeat(&catalog, "g", join, start());
        assert_eq!(r.error_code, errors::NONE);
        let session = c.cfg.share.session_timeout_ms;
        wall_steps_expire_nothing_monotonic_time_does(&c, &catalog, start(), session, || {
            c.with_share_group("g", |g| g.members.contains_key("a"))
                .unwrap_or(false)
        });
    }

    #[test]
    fn streams_group_sessions() {
        let (_dir, catalog, c) = setup(0);
        let join = StreamsHeartbeat {
            member_id: "a".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 300_000,
            topology: Some(Default::default()),
            process_id: Some("p".into()),
            client_id: "c".into(),
            client_host: "/h".into(),
            ..StreamsHeartbeat::default()
        };
        let r = c.streams_heartbeat(&catalog, "g", join, start());
        assert_eq!(r.error_code, errors::NONE, "{:?}", r.error_message);
        let session = c.streams_cfg_of(&catalog, "g").session_timeout_ms;
        wall_steps_expire_nothing_monotonic_time_does(&c, &catalog, start(), session, || {
            c.with_streams_group("g", |g| g.members.contains_key("a"))
                .unwrap_or(false)
        });
    }
}
