//! One streams group (KIP-1071) under the StreamsGroupHeartbeat protocol, after Kafka 4.4's
//! `StreamsGroup`, the streams parts of its `GroupMetadataManager`, its `InternalTopicManager`
//! (with `RepartitionTopics`, `ChangelogTopics` and the copartitioning check), its
//! `CurrentAssignmentBuilder` and its sticky task assignor.
//!
//! - The first member to join sends the application's topology: its subtopologies with their
//!   source topics, repartition topics (written by one subtopology, read by another) and state
//!   changelog topics. The group keeps it (a topology record) and configures it against the
//!   cluster's topics: source topics must exist (MISSING_SOURCE_TOPICS), repartition topics get
//!   the partition count of the subtopology writing them (or the one the topology fixes),
//!   copartitioned topics must agree (INCORRECTLY_PARTITIONED_TOPICS), changelog topics get the
//!   count of their subtopology's tasks; internal topics that do not exist yet are for the broker
//!   to create (MISSING_INTERNAL_TOPICS until they do). A subtopology has one task per partition
//!   of its (largest) source topic.
//! - Member epochs as in KIP-848: a member joins with epoch 0, leaves with -1 (or -2, a static
//!   member's temporary leave, taken as a leave here), and otherwise heartbeats with its current
//!   epoch (or the previous one, owning only assigned tasks); other epochs are fenced. The group
//!   epoch moves when a member joins, leaves or changes its metadata, when the topics the
//!   topology reads or writes change, and when the topology becomes (or stops being) ready.
//! - The target assignment (per group epoch) spreads the active tasks evenly over the members,
//!   keeping each task where it was when that stays balanced (Kafka's sticky assignor). A member
//!   reconciles towards its target: it first revokes the tasks it must give up (its epoch stays
//!   until it reports them gone, or the rebalance timeout fences it), and receives a task only
//!   once no other member owns it.
//! - Members expire after group.streams.session.timeout.ms without a heartbeat.
//!
//! Not there: standby and warm-up tasks (Kafka's default `group.streams.num.standby.replicas` is
//! 0; warm-ups need standbys or task lags), the initial rebalance delay, source topic regexes
//! (refused as Kafka 4.4 refuses them), topology updates by a later member, static membership
//! beyond keeping the instance id, rack-aware assignment and the topology description plugin.
//!
//! Plain state: every method takes `now` and the topic metadata it needs, nothing blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;

use super::consumer::TopicSource;
use super::streams_records::{
    self as rec, values, CurrentValue, MemberValue, MetadataValue, StoredStreamsGroup, Tasks,
    TopologyValue,
};
use crate::protocol::errors;

/// The epoch a member leaves with, and a static member's temporary leave.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// StreamsGroupHeartbeatResponse.Status codes.
pub const STALE_TOPOLOGY: i8 = 0;
pub const MISSING_SOURCE_TOPICS: i8 = 1;
pub const INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
pub const MISSING_INTERNAL_TOPICS: i8 = 3;
pub const SHUTDOWN_APPLICATION: i8 = 4;

/// Kafka's streams MemberState values.
const STABLE: i8 = 0;
const UNREVOKED_TASKS: i8 = 1;
const UNRELEASED_TASKS: i8 = 2;

/// The streams-group broker settings, under Kafka's names.
#[derive(Debug, Clone, Copy)]
pub struct StreamsGroupConfig {
    /// group.streams.session.timeout.ms
    pub session_timeout_ms: i64,
    /// group.streams.heartbeat.interval.ms
    pub heartbeat_interval_ms: i32,
    /// group.streams.max.size
    pub max_size: usize,
    /// group.streams.task.offset.interval.ms
    pub task_offset_interval_ms: i32,
}

impl Default for StreamsGroupConfig {
    /// Kafka 4.4's defaults.
    fn default() -> Self {
        StreamsGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            task_offset_interval_ms: 60_000,
        }
    }
}

/// A user endpoint for interactive queries (host, port).
pub type Endpoint = (String, u16);

/// One StreamsGroupHeartbeat request, as the group needs it (`None`: unchanged since the last
/// heartbeat).
#[derive(Debug, Clone, Default)]
pub struct StreamsHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topology: Option<TopologyValue>,
    pub owned_active: Option<Tasks>,
    pub owned_standby: Option<Tasks>,
    pub owned_warmup: Option<Tasks>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Option<BTreeMap<String, String>>,
    pub shutdown_application: bool,
    pub endpoint_information_epoch: i32,
    pub client_id: String,
    pub client_host: String,
}

/// An internal topic the broker must create for the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: String,
    pub partitions: i32,
    /// 0: the broker's default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// The source partitions of one member's tasks, for interactive queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPartitions {
    pub endpoint: Endpoint,
    /// (topic, partitions) of the active tasks.
    pub active: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamsHeartbeatResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub task_offset_interval_ms: i32,
    /// (status code, detail).
    pub status: Vec<(i8, String)>,
    /// The member's active tasks, when they changed (or it joined).
    pub active_tasks: Option<Tasks>,
    pub endpoint_information_epoch: i32,
    pub partitions_by_user_endpoint: Option<Vec<EndpointPartitions>>,
    /// Internal topics missing: the broker creates them.
    pub topics_to_create: Vec<InternalTopic>,
}

impl StreamsHeartbeatResult {
    pub fn error(code: i16, message: impl Into<String>) -> StreamsHeartbeatResult {
        StreamsHeartbeatResult {
            error_code: code,
            error_message: Some(message.into()),
            ..StreamsHeartbeatResult::default()
        }
    }
}

/// GroupCoordinatorService.throwIfStreamsGroupHeartbeatRequestIsInvalid (and the unsupported
/// features check after it): the checks made before the group is looked at, with Kafka's
/// INVALID_REQUEST messages.
pub fn validate_heartbeat(group_id: &str, hb: &StreamsHeartbeat) -> Result<(), String> {
    let empty = |s: &Option<String>| s.as_deref().is_some_and(|s| s.trim().is_empty());
    if hb.member_id.trim().is_empty() {
        return Err("MemberId can't be empty.".into());
    }
    if group_id.trim().is_empty() {
        return Err("GroupId can't be empty.".into());
    }
    if empty(&hb.instance_id) {
        return Err("InstanceId can't be empty.".into());
    }
    if empty(&hb.rack_id) {
        return Err("RackId can't be empty.".into());
    }
    let owned = [&hb.owned_active, &hb.owned_standby, &hb.owned_warmup];
    if hb.member_epoch == 0 {
        if hb.rebalance_timeout_ms == -1 {
            return Err("RebalanceTimeoutMs must be provided in first request.".into());
        }
        for (tasks, name) in owned
            .iter()
            .zip(["ActiveTasks", "StandbyTasks", "WarmupTasks"])
        {
            if tasks.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(format!("{name} must be empty when (re-)joining."));
            }
        }
        let Some(topology) = &hb.topology else {
            return Err("Topology must be non-null when (re-)joining.".into());
        };
        validate_topology(topology)?;
    } else if hb.member_epoch == STATIC_LEAVE_EPOCH {
        if hb.instance_id.is_none() {
            return Err("InstanceId can't be null.".into());
        }
    } else if hb.member_epoch < STATIC_LEAVE_EPOCH {
        return Err(format!(
            "MemberEpoch is {}, but must be greater than or equal to -2.",
            hb.member_epoch
        ));
    }
    if owned.iter().any(|t| t.is_some()) && owned.iter().any(|t| t.is_none()) {
        return Err("If one task-type is non-null, all must be non-null.".into());
    }
    if hb.member_epoch != 0 && hb.topology.is_some() {
        return Err("Topology can only be provided when (re-)joining.".into());
    }
    if let Some(t) = &hb.topology {
        if t.subtopologies
            .iter()
            .any(|s| !s.source_topic_regex.is_empty())
        {
            return Err("Regular expressions for source topics are not supported yet.".into());
        }
    }
    Ok(())
}

/// GroupCoordinatorService.throwIfInvalidTopology: changelog topics leave their partition count
/// to the broker; answered STREAMS_INVALID_TOPOLOGY.
pub fn invalid_topology(hb: &StreamsHeartbeat) -> Option<String> {
    let t = hb.topology.as_ref().filter(|_| hb.member_epoch == 0)?;
    let subs = t.subtopologies.iter();
    let fixed = subs
        .flat_map(|s| s.state_changelog_topics.iter())
        .find(|c| c.partitions != 0)?;
    Some(format!(
        "Changelog topic {} must have an undefined partition count, but it is set to {}.",
        fixed.name, fixed.partitions
    ))
}

/// The topology's own consistency, which Kafka assumes: subtopology ids are unique and the
/// copartition groups' indexes point into their subtopology's lists (INVALID_REQUEST otherwise,
/// where Kafka would fail the request with an internal error).
fn validate_topology(t: &TopologyValue) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    for s in &t.subtopologies {
        if !ids.insert(s.subtopology_id.as_str()) {
            return Err(format!("Duplicate subtopology id {}.", s.subtopology_id));
        }
        for g in &s.copartition_groups {
            let bad = |idx: &[i16], len: usize| idx.iter().any(|&i| i < 0 || i as usize >= len);
            if bad(&g.source_topics, s.source_topics.len())
                || bad(
                    &g.repartition_source_topics,
                    s.repartition_source_topics.len(),
                )
                || bad(&g.source_topic_regex, s.source_topic_regex.len())
            {
                return Err(format!(
                    "Copartition group of subtopology {} refers to a topic that does not exist.",
                    s.subtopology_id
                ));
            }
        }
    }
    Ok(())
}

/// A subtopology configured against the cluster's topics.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredSubtopology {
    pub number_of_tasks: i32,
    /// Source topics, then repartition source topics: the topics of each task's partition.
    pub source_topics: Vec<String>,
    pub repartition_source_topics: Vec<(String, i32)>,
    pub changelog_topics: Vec<(String, i32)>,
}

/// The topology configured against the cluster's topics (Kafka's ConfiguredTopology).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfiguredTopology {
    pub epoch: i32,
    /// `None` when the topology cannot be configured (missing or mispartitioned topics).
    pub subtopologies: Option<BTreeMap<String, ConfiguredSubtopology>>,
    /// Why the topology is not ready: (status code, detail).
    pub status: Option<(i8, String)>,
    pub topics_to_create: Vec<InternalTopic>,
    /// The topology cannot be configured whatever the topics (Kafka's
    /// StreamsInvalidTopologyException): why.
    pub invalid: Option<String>,
}

impl ConfiguredTopology {
    pub fn is_ready(&self) -> bool {
        self.status.is_none() && self.invalid.is_none() && self.subtopologies.is_some()
    }

    /// Every task of the topology, by subtopology.
    fn all_tasks(&self) -> Vec<(String, i32)> {
        let subs = self.subtopologies.iter().flatten();
        subs.flat_map(|(id, s)| (0..s.number_of_tasks).map(move |p| (id.clone(), p)))
            .collect()
    }
}

/// InternalTopicManager.summarizeTopics.
fn summarize<'a>(topics: impl IntoIterator<Item = &'a String>) -> String {
    let all: Vec<&String> = topics.into_iter().collect();
    if all.is_empty() {
        return "<none>".into();
    }
    let shown: Vec<&str> = all.iter().take(3).map(|s| s.as_str()).collect();
    let mut s = shown.join(", ");
    if all.len() > 3 {
        s.push_str(&format!(" and {} additional topics", all.len() - 3));
    }
    s
}

/// InternalTopicManager.configureTopics.
pub fn configure(t: &TopologyValue, topics: &dyn TopicSource) -> ConfiguredTopology {
    let mut out = ConfiguredTopology {
        epoch: t.epoch,
        ..ConfiguredTopology::default()
    };
    let fail = |mut out: ConfiguredTopology, code: i8, detail: String| {
        out.status = Some((code, detail));
        out
    };
    // Kafka's StreamsInvalidTopologyException: the heartbeat fails (STREAMS_INVALID_TOPOLOGY).
    let invalid = |mut out: ConfiguredTopology, detail: String| {
        out.invalid = Some(detail);
        out
    };
    let existing = |name: &str| topics.lookup(name).map(|(_, n)| n);
    let missing: BTreeSet<String> = (t.subtopologies.iter())
        .flat_map(|s| s.source_topics.iter())
        .filter(|n| existing(n).is_none())
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        let detail = format!("Source topics {} are missing.", summarize(&missing));
        return fail(out, MISSING_SOURCE_TOPICS, detail);
    }
    // RepartitionTopics: fixed counts first, then each sink from the subtopology writing it.
    let mut decided: BTreeMap<String, i32> = BTreeMap::new();
    for s in &t.subtopologies {
        for r in s
            .repartition_source_topics
            .iter()
            .filter(|r| r.partitions != 0)
        {
            decided.insert(r.name.to_string(), r.partitions);
        }
    }
    let count = |decided: &BTreeMap<String, i32>, name: &str| {
        existing(name).or_else(|| decided.get(name).copied())
    };
    loop {
        let (mut needed, mut progress) = (false, false);
        for s in &t.subtopologies {
            for sink in &s.repartition_sink_topics {
                if decided.contains_key(sink.as_str()) {
                    continue;
                }
                let from_repartition = (s.repartition_source_topics.iter())
                    .filter_map(|r| decided.get(r.name.as_str()).copied());
                let from_sources = s.source_topics.iter().filter_map(|n| existing(n));
                match from_repartition.chain(from_sources).max() {
                    Some(n) => {
                        decided.insert(sink.to_string(), n);
                        progress = true;
                    }
                    None => needed = true,
                }
            }
        }
        if !needed {
            break;
        }
        if !progress {
            let detail = "Failed to compute number of partitions for all repartition topics. \
                          There may be loops in the topology that cannot be resolved.";
            return invalid(out, detail.into());
        }
    }
    for s in &t.subtopologies {
        // Decided by the topology alone (RepartitionTopics.setup), an existing topic or not.
        let undecided = |r: &&rec::values::TopicInfo| !decided.contains_key(r.name.as_str());
        if let Some(r) = s.repartition_source_topics.iter().find(undecided) {
            let detail = format!(
                "Failed to compute number of partitions for all repartition topics, because a \
                 repartition source topic ({}) is never used as a sink topic.",
                r.name
            );
            return invalid(out, detail);
        }
    }
    // CopartitionedTopicsEnforcer: the group's topics agree; flexible repartition topics follow.
    for s in &t.subtopologies {
        for g in &s.copartition_groups {
            let sources = g
                .source_topics
                .iter()
                .map(|&i| &s.source_topics[i as usize]);
            let repartition = (g.repartition_source_topics.iter())
                .map(|&i| &s.repartition_source_topics[i as usize]);
            let external: BTreeMap<String, i32> = sources
                .filter_map(|n| Some((n.to_string(), existing(n)?)))
                .collect();
            let counts: BTreeSet<i32> = external.values().copied().collect();
            if counts.len() > 1 {
                let detail = format!(
                    "Following topics do not have the same number of partitions: [{}]",
                    external
                        .iter()
                        .map(|(n, c)| format!("{n}={c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return fail(out, INCORRECTLY_PARTITIONED_TOPICS, detail);
            }
            let repartition: Vec<_> = repartition.collect();
            let fixed = repartition.iter().filter(|r| r.partitions != 0);
            let target = counts
                .first()
                .copied()
                .or_else(|| fixed.clone().map(|r| r.partitions).max())
                .or_else(|| {
                    repartition
                        .iter()
                        .filter_map(|r| decided.get(r.name.as_str()).copied())
                        .max()
                });
            let Some(target) = target else { continue };
            if let Some(r) = fixed.clone().find(|r| r.partitions != target) {
                let detail = format!(
                    "Number of partitions [{}] of repartition topic [{}] doesn't match number of \
                     partitions [{target}] of the source topic.",
                    r.partitions, r.name
                );
                return fail(out, INCORRECTLY_PARTITIONED_TOPICS, detail);
            }
            for r in repartition.iter().filter(|r| r.partitions == 0) {
                decided.insert(r.name.to_string(), target);
            }
        }
    }
    // ChangelogTopics, and the number of tasks: the largest source of the subtopology.
    let mut subtopologies = BTreeMap::new();
    let mut wanted: Vec<(InternalTopic, Option<i32>)> = Vec::new();
    for s in &t.subtopologies {
        let names = (s.source_topics.iter().map(|n| n.as_str()))
            .chain(s.repartition_source_topics.iter().map(|r| r.name.as_str()));
        let Some(tasks) = names.filter_map(|n| count(&decided, n)).max() else {
            let detail = format!(
                "No source topics found for subtopology {}",
                s.subtopology_id
            );
            return invalid(out, detail);
        };
        let internal = |info: &rec::values::TopicInfo, partitions: i32| InternalTopic {
            name: info.name.to_string(),
            partitions,
            replication_factor: info.replication_factor,
            configs: (info.topic_configs.iter())
                .map(|c| (c.key.to_string(), c.value.to_string()))
                .collect(),
        };
        let mut repartition = Vec::new();
        for r in &s.repartition_source_topics {
            // The count the topology decided (InternalTopicManager.fromPersistedTopicInfo), which
            // an existing topic must have.
            let n = match r.partitions {
                0 => decided.get(r.name.as_str()).copied().unwrap_or(tasks),
                n => n,
            };
            repartition.push((r.name.to_string(), n));
            wanted.push((internal(r, n), existing(&r.name)));
        }
        let mut changelogs = Vec::new();
        for c in &s.state_changelog_topics {
            changelogs.push((c.name.to_string(), tasks));
            wanted.push((internal(c, tasks), existing(&c.name)));
        }
        subtopologies.insert(
            s.subtopology_id.to_string(),
            ConfiguredSubtopology {
                number_of_tasks: tasks,
                source_topics: s.source_topics.iter().map(|n| n.to_string()).collect(),
                repartition_source_topics: repartition,
                changelog_topics: changelogs,
            },
        );
    }
    // Internal topics: those that exist must have the expected count; the others are created.
    let mut to_create = BTreeMap::new();
    for (topic, found) in wanted {
        match found {
            Some(n) if n != topic.partitions => {
                let detail = format!(
                    "Existing topic {} has different number of partitions: expected {}, found {n}",
                    topic.name, topic.partitions
                );
                return fail(out, INCORRECTLY_PARTITIONED_TOPICS, detail);
            }
            Some(_) => {}
            None => {
                to_create.insert(topic.name.clone(), topic);
            }
        }
    }
    out.subtopologies = Some(subtopologies);
    if !to_create.is_empty() {
        let detail = format!(
            "Internal topics are missing: {}",
            summarize(to_create.keys())
        );
        out.status = Some((MISSING_INTERNAL_TOPICS, detail));
        out.topics_to_create = to_create.into_values().collect();
    }
    out
}

/// A hash of what the topology's topics are in the cluster (Kafka's metadata hash): id and
/// partition count of each that exists. A change reconfigures the topology.
fn metadata_hash(t: &TopologyValue, topics: &dyn TopicSource) -> i64 {
    let mut names = BTreeSet::new();
    for s in &t.subtopologies {
        names.extend(s.source_topics.iter().map(|n| n.as_str()));
        names.extend(s.repartition_sink_topics.iter().map(|n| n.as_str()));
        names.extend(s.repartition_source_topics.iter().map(|r| r.name.as_str()));
        names.extend(s.state_changelog_topics.iter().map(|r| r.name.as_str()));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for n in names {
        if let Some((id, partitions)) = topics.lookup(n) {
            (n, id, partitions).hash(&mut h);
        }
    }
    h.finish() as i64
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamsMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: BTreeMap<String, String>,
    /// Active tasks assigned (the member owns or receives them).
    pub assigned: Tasks,
    /// Active tasks the member must give up before its epoch moves.
    pub pending_revocation: Tasks,
    /// When the session expires without a heartbeat.
    pub deadline_ms: i64,
    /// While tasks are pending revocation: when the member is fenced if it has not revoked them.
    pub revocation_deadline_ms: Option<i64>,
}

impl StreamsMember {
    fn new(member_id: &str) -> StreamsMember {
        StreamsMember {
            member_id: member_id.to_string(),
            member_epoch: 0,
            previous_member_epoch: -1,
            state: STABLE,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: -1,
            topology_epoch: -1,
            process_id: String::new(),
            user_endpoint: None,
            client_tags: BTreeMap::new(),
            assigned: Tasks::new(),
            pending_revocation: Tasks::new(),
            deadline_ms: 0,
            revocation_deadline_ms: None,
        }
    }

    /// What the member-metadata record holds (a change bumps the group epoch).
    fn metadata(&self) -> MemberValue {
        let client_tags = (self.client_tags.iter())
            .map(|(k, val)| {
                values::KeyValue::default()
                    .with_key(StrBytes::from_string(k.clone()))
                    .with_value(StrBytes::from_string(val.clone()))
            })
            .collect();
        MemberValue {
            instance_id: self.instance_id.clone().map(StrBytes::from_string),
            rack_id: self.rack_id.clone().map(StrBytes::from_string),
            client_id: StrBytes::from_string(self.client_id.clone()),
            client_host: StrBytes::from_string(self.client_host.clone()),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            topology_epoch: self.topology_epoch,
            process_id: StrBytes::from_string(self.process_id.clone()),
            user_endpoint: self.user_endpoint.as_ref().map(|(h, p)| {
                values::Endpoint::default()
                    .with_host(StrBytes::from_string(h.clone()))
                    .with_port(*p)
            }),
            client_tags,
            ..MemberValue::default()
        }
    }

    /// The metadata that moves the group epoch when it changes (Kafka's
    /// hasStreamsMemberMetadataChanged compares the whole record but the client address).
    fn assignment_metadata(&self) -> impl PartialEq + use<'_> {
        (
            &self.instance_id,
            &self.rack_id,
            self.topology_epoch,
            &self.process_id,
            &self.user_endpoint,
            &self.client_tags,
        )
    }

    fn current_value(&self) -> CurrentValue {
        let ids = |t: &Tasks| {
            rec::task_ids(t, |s, p| {
                values::TaskIds::default()
                    .with_subtopology_id(s)
                    .with_partitions(p)
            })
        };
        CurrentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state,
            active_tasks: ids(&self.assigned),
            active_tasks_pending_revocation: ids(&self.pending_revocation),
            ..CurrentValue::default()
        }
    }
}

fn contains(tasks: &Tasks, s: &str, p: i32) -> bool {
    tasks.get(s).is_some_and(|ps| ps.contains(&p))
}

fn add(tasks: &mut Tasks, s: &str, p: i32) {
    tasks.entry(s.to_string()).or_default().insert(p);
}

fn intersects(a: &Tasks, b: &Tasks) -> bool {
    a.iter()
        .any(|(s, ps)| ps.iter().any(|p| contains(b, s, *p)))
}

fn is_subset(a: &Tasks, b: &Tasks) -> bool {
    a.iter()
        .all(|(s, ps)| ps.iter().all(|p| contains(b, s, *p)))
}

#[derive(Debug, Clone)]
pub struct StreamsGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub metadata_hash: i64,
    pub topology: Option<TopologyValue>,
    pub configured: Option<ConfiguredTopology>,
    /// The topology epoch the current configuration was found ready for (-1: none).
    validated_topology_epoch: i32,
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: i32,
    pub target: BTreeMap<String, Tasks>,
    pub members: IndexMap<String, StreamsMember>,
    pub endpoint_information_epoch: i32,
    pub shutdown_requested_by: Option<String>,
}

impl StreamsGroup {
    pub fn new(group_id: &str) -> StreamsGroup {
        StreamsGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            metadata_hash: 0,
            topology: None,
            configured: None,
            validated_topology_epoch: -1,
            assignment_epoch: 0,
            target: BTreeMap::new(),
            members: IndexMap::new(),
            endpoint_information_epoch: 0,
            shutdown_requested_by: None,
        }
    }

    /// Kafka's StreamsGroupState as ListGroups and StreamsGroupDescribe name it.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if !self.configured.as_ref().is_some_and(|c| c.is_ready()) {
            "NotReady"
        } else if self.assignment_epoch != self.group_epoch {
            "Assigning"
        } else if (self.members.values())
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != STABLE)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The topics OffsetDelete keeps the group's offsets of (Kafka 4.4's
    /// StreamsGroup.isSubscribedToTopic): while the group has members, the topology's source and
    /// repartition source topics (not those a source regex matches); none once it is empty.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        let topology = self.topology.as_ref().filter(|_| !self.members.is_empty());
        let subtopologies = topology.into_iter().flat_map(|t| &t.subtopologies);
        subtopologies
            .flat_map(|s| {
                let repartition = s.repartition_source_topics.iter().map(|r| &r.name);
                s.source_topics.iter().chain(repartition)
            })
            .map(|n| n.to_string())
            .collect()
    }

    /// One heartbeat (not a leave: see `leave`). The caller checked `validate_heartbeat`. A
    /// heartbeat that fails changes nothing (Kafka writes the records of a successful one only).
    pub fn heartbeat(
        &mut self,
        hb: StreamsHeartbeat,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &StreamsGroupConfig,
    ) -> StreamsHeartbeatResult {
        let saved = self.clone();
        let r = self.try_heartbeat(hb, topics, now, cfg);
        if r.error_code != errors::NONE {
            *self = saved;
        }
        r
    }

    fn try_heartbeat(
        &mut self,
        hb: StreamsHeartbeat,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &StreamsGroupConfig,
    ) -> StreamsHeartbeatResult {
        let joining = hb.member_epoch == 0;
        let before = match self.members.get(&hb.member_id) {
            Some(m) => Some(m.clone()),
            None if !joining => {
                return StreamsHeartbeatResult::error(
                    errors::UNKNOWN_MEMBER_ID,
                    format!(
                        "Member {} is not a member of group {}.",
                        hb.member_id, self.group_id
                    ),
                )
            }
            None => {
                if self.members.len() >= cfg.max_size {
                    return StreamsHeartbeatResult::error(
                        errors::GROUP_MAX_SIZE_REACHED,
                        format!(
                            "The streams group has reached its maximum capacity of {} members.",
                            cfg.max_size
                        ),
                    );
                }
                None
            }
        };
        if let Some(m) = &before {
            if let Err(message) = check_epoch(m, hb.member_epoch, hb.owned_active.as_ref()) {
                return StreamsHeartbeatResult::error(errors::FENCED_MEMBER_EPOCH, message);
            }
        }
        let mut member = before
            .clone()
            .unwrap_or_else(|| StreamsMember::new(&hb.member_id));
        if hb.instance_id.is_some() {
            member.instance_id = hb.instance_id.clone();
        }
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id.clone();
        }
        if hb.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if let Some(t) = &hb.topology {
            member.topology_epoch = t.epoch;
        }
        member.client_id = hb.client_id.clone();
        member.client_host = hb.client_host.clone();
        if let Some(p) = &hb.process_id {
            member.process_id = p.clone();
        }
        if joining || hb.user_endpoint.is_some() {
            member.user_endpoint = hb.user_endpoint.clone();
        }
        if let Some(tags) = &hb.client_tags {
            member.client_tags = tags.clone();
        }
        member.deadline_ms = now.saturating_add(cfg.session_timeout_ms);
        let mut bump = before
            .as_ref()
            .is_none_or(|b| b.assignment_metadata() != member.assignment_metadata());
        self.members.insert(hb.member_id.clone(), member);

        // The topology: the first member's, kept; a member behind it is told so.
        let mut reconfigure = false;
        if let (Some(t), Some(kept)) = (&hb.topology, &self.topology) {
            // GroupMetadataManager.maybeUpdateTopology: an older epoch is stale (told below), the
            // same or a newer one must be the group's topology.
            if t.epoch >= kept.epoch && !same_topology(t, kept) {
                let msg = "Topology updates are not supported yet.";
                return StreamsHeartbeatResult::error(errors::INVALID_REQUEST, msg);
            }
        }
        if let (Some(t), None) = (&hb.topology, &self.topology) {
            tracing::info!(group = %self.group_id, member = %hb.member_id, epoch = t.epoch,
                "member initialized the streams topology");
            self.topology = Some(t.clone());
            reconfigure = true;
        }
        let mut status = Vec::new();
        let topology_epoch = self.topology.as_ref().map_or(-1, |t| t.epoch);
        if self.topology.is_some() {
            let m_epoch = self.members[&hb.member_id].topology_epoch;
            if m_epoch < topology_epoch {
                status.push((
                    STALE_TOPOLOGY,
                    format!(
                        "The member's topology epoch {m_epoch} is behind the group's topology \
                         epoch {topology_epoch}."
                    ),
                ));
            }
        }
        if let Some(t) = &self.topology {
            let hash = metadata_hash(t, topics);
            if hash != self.metadata_hash {
                self.metadata_hash = hash;
                bump = true;
                reconfigure = true;
            }
            if reconfigure || self.configured.is_none() {
                self.configured = Some(configure(t, topics));
            }
        }
        if let Some(msg) = self.configured.as_ref().and_then(|c| c.invalid.clone()) {
            return StreamsHeartbeatResult::error(errors::STREAMS_INVALID_TOPOLOGY, msg);
        }
        let ready = self.configured.as_ref().filter(|c| c.is_ready());
        let validated = ready.map_or(-1, |c| c.epoch);
        if let Some(c) = ready {
            for owned in [&hb.owned_active, &hb.owned_standby, &hb.owned_warmup] {
                if let Err(msg) = check_tasks(c, owned.as_ref()) {
                    return StreamsHeartbeatResult::error(errors::INVALID_REQUEST, msg);
                }
            }
        }
        if validated != self.validated_topology_epoch {
            self.validated_topology_epoch = validated;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
        }
        if self.assignment_epoch < self.group_epoch {
            self.assign();
        }
        self.reconcile(&hb.member_id, hb.owned_active.as_ref(), now);
        if hb.shutdown_application {
            self.shutdown_requested_by = Some(hb.member_id.clone());
        }
        let Some(m) = self.members.get(&hb.member_id) else {
            return StreamsHeartbeatResult::error(errors::UNKNOWN_SERVER_ERROR, "member vanished");
        };
        let tasks_changed = before.as_ref().is_none_or(|b| b.assigned != m.assigned);
        let endpoint_changed = before.as_ref().map(|b| &b.user_endpoint) != Some(&m.user_endpoint)
            && (before.is_some() || m.user_endpoint.is_some());
        if endpoint_changed || (tasks_changed && m.user_endpoint.is_some()) {
            self.endpoint_information_epoch += 1;
        }
        let mut r = StreamsHeartbeatResult {
            member_id: m.member_id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            task_offset_interval_ms: cfg.task_offset_interval_ms,
            active_tasks: (joining || tasks_changed).then(|| m.assigned.clone()),
            endpoint_information_epoch: self.endpoint_information_epoch,
            ..StreamsHeartbeatResult::default()
        };
        if hb.endpoint_information_epoch != self.endpoint_information_epoch {
            r.partitions_by_user_endpoint = Some(self.endpoint_to_partitions());
        }
        if let Some(c) = &self.configured {
            if let Some(s) = &c.status {
                status.push(s.clone());
                r.topics_to_create = c.topics_to_create.clone();
            }
        }
        if let Some(by) = &self.shutdown_requested_by {
            status.push((
                SHUTDOWN_APPLICATION,
                format!(
                    "Streams group member {by} encountered a fatal error and requested a \
                     shutdown for the entire application."
                ),
            ));
        }
        r.status = status;
        r
    }

    /// A member leaves (epoch -1, or -2 for a static member): UNKNOWN_MEMBER_ID if it is not
    /// one. The answer carries the epoch it left with.
    pub fn leave(&mut self, member_id: &str, epoch: i32, shutdown: bool) -> StreamsHeartbeatResult {
        if !self.members.contains_key(member_id) {
            return StreamsHeartbeatResult::error(
                errors::UNKNOWN_MEMBER_ID,
                format!(
                    "Member {member_id} is not a member of group {}.",
                    self.group_id
                ),
            );
        }
        if shutdown {
            self.shutdown_requested_by = Some(member_id.to_string());
        }
        self.fence(member_id);
        StreamsHeartbeatResult {
            member_id: member_id.to_string(),
            member_epoch: epoch,
            ..StreamsHeartbeatResult::default()
        }
    }

    /// Removes a member; its tasks go to the others (streamsGroupFenceMember).
    fn fence(&mut self, member_id: &str) {
        if let Some(m) = self.members.shift_remove(member_id) {
            if m.user_endpoint.is_some() {
                self.endpoint_information_epoch += 1;
            }
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.shutdown_requested_by = None;
        }
        self.assign();
    }

    /// Whether some member's session (or revocation) expired by `now`.
    pub fn has_expired(&self, now: i64) -> bool {
        self.members.values().any(|m| expired(m, now))
    }

    /// Removes the members whose session expired, or who did not revoke tasks within their
    /// rebalance timeout, by `now`.
    pub fn expire(&mut self, now: i64) -> Vec<String> {
        let gone: Vec<String> = (self.members.values())
            .filter(|m| expired(m, now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %self.group_id, member = %id, "streams group member expired");
            self.fence(id);
        }
        gone
    }

    /// Kafka's sticky task assignor, for active tasks: an even spread over the members (each has
    /// ⌊n/m⌋ or ⌈n/m⌉ tasks), keeping tasks where they were as far as that allows.
    fn assign(&mut self) {
        let tasks = match &self.configured {
            Some(c) if c.is_ready() => c.all_tasks(),
            _ => Vec::new(),
        };
        let mut ids: Vec<String> = self.members.keys().cloned().collect();
        ids.sort();
        let mut target: BTreeMap<String, Tasks> =
            ids.iter().map(|id| (id.clone(), Tasks::new())).collect();
        if !ids.is_empty() {
            let (base, extra) = (tasks.len() / ids.len(), tasks.len() % ids.len());
            let mut above_base = 0;
            let mut taken = BTreeSet::new();
            let previous = |id: &str| {
                let m = &self.members[id];
                let mut prev = self.target.get(id).cloned().unwrap_or_default();
                for (s, ps) in &m.assigned {
                    prev.entry(s.clone()).or_default().extend(ps);
                }
                prev
            };
            // Sticky: each member keeps what it had, up to its share.
            for id in &ids {
                let mut kept = 0;
                for (s, ps) in previous(id) {
                    for p in ps {
                        let t = (s.clone(), p);
                        let room = kept < base || (kept == base && above_base < extra);
                        if tasks.contains(&t) && !taken.contains(&t) && room {
                            if kept == base {
                                above_base += 1;
                            }
                            kept += 1;
                            add(target.entry(id.clone()).or_default(), &s, p);
                            taken.insert(t);
                        }
                    }
                }
            }
            // The rest to the least loaded.
            for t in tasks.iter().filter(|t| !taken.contains(*t)) {
                let load = |id: &String| target[id].values().map(BTreeSet::len).sum::<usize>();
                if let Some(id) = ids.iter().min_by_key(|id| (load(id), *id)).cloned() {
                    add(target.entry(id).or_default(), &t.0, t.1);
                }
            }
        }
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    /// Whether a member other than `member_id` owns the task (assigned or pending revocation).
    fn owned_by_other(&self, member_id: &str, s: &str, p: i32) -> bool {
        (self.members.values()).any(|m| {
            m.member_id != member_id
                && (contains(&m.assigned, s, p) || contains(&m.pending_revocation, s, p))
        })
    }

    /// CurrentAssignmentBuilder, for active tasks: moves the member towards its target.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Tasks>, now: i64) {
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        let target_epoch = self.assignment_epoch;
        let not_released = |pending: &Tasks| owned.is_none_or(|o| intersects(o, pending));
        let next = match m.state {
            STABLE if m.member_epoch == target_epoch => return,
            STABLE | UNRELEASED_TASKS => self.next_assignment(m, m.member_epoch, owned),
            UNREVOKED_TASKS if not_released(&m.pending_revocation) => return,
            _ => self.next_assignment(m, m.member_epoch + 1, owned),
        };
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        let (epoch, state, assigned, pending) = next;
        if epoch != m.member_epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = epoch;
        }
        m.state = state;
        m.assigned = assigned;
        m.pending_revocation = pending;
        m.revocation_deadline_ms = (state == UNREVOKED_TASKS)
            .then(|| now.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))));
    }

    /// computeNextAssignment + buildNewMember: (epoch, state, assigned, pending revocation).
    fn next_assignment(
        &self,
        m: &StreamsMember,
        member_epoch: i32,
        owned: Option<&Tasks>,
    ) -> (i32, i8, Tasks, Tasks) {
        let empty = Tasks::new();
        let target = self.target.get(&m.member_id).unwrap_or(&empty);
        let (mut kept, mut granted, mut revoke) = (Tasks::new(), Tasks::new(), Tasks::new());
        let mut unreleased = false;
        for (s, ps) in target {
            for &p in ps {
                if contains(&m.assigned, s, p) {
                    add(&mut kept, s, p);
                } else if self.owned_by_other(&m.member_id, s, p) {
                    unreleased = true;
                } else {
                    add(&mut granted, s, p);
                }
            }
        }
        for (s, ps) in &m.assigned {
            for &p in ps.iter().filter(|p| !contains(target, s, **p)) {
                add(&mut revoke, s, p);
            }
        }
        let not_released = owned.is_none_or(|o| intersects(o, &revoke));
        if !revoke.is_empty() && not_released {
            return (member_epoch, UNREVOKED_TASKS, kept, revoke);
        }
        for (s, ps) in granted {
            kept.entry(s).or_default().extend(ps);
        }
        let state = if unreleased { UNRELEASED_TASKS } else { STABLE };
        (self.assignment_epoch, state, kept, Tasks::new())
    }

    /// EndpointToPartitionsManager: for every member with an endpoint, the source partitions
    /// of its active tasks.
    fn endpoint_to_partitions(&self) -> Vec<EndpointPartitions> {
        let subs = self
            .configured
            .as_ref()
            .and_then(|c| c.subtopologies.as_ref());
        let mut out = Vec::new();
        for m in self.members.values() {
            let Some(endpoint) = &m.user_endpoint else {
                continue;
            };
            let mut by_topic: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
            for (s, ps) in &m.assigned {
                let Some(sub) = subs.and_then(|subs| subs.get(s)) else {
                    continue;
                };
                let topics = (sub.source_topics.iter().map(|t| t.as_str())).chain(
                    sub.repartition_source_topics
                        .iter()
                        .map(|(t, _)| t.as_str()),
                );
                for t in topics {
                    by_topic.entry(t.to_string()).or_default().extend(ps);
                }
            }
            out.push(EndpointPartitions {
                endpoint: endpoint.clone(),
                active: (by_topic.into_iter())
                    .map(|(t, ps)| (t, ps.into_iter().collect()))
                    .collect(),
            });
        }
        out
    }

    /// Offsets a member commits: Kafka's StreamsGroup.validateOffsetCommit (an empty group takes
    /// commits from outside, as admin tools make them).
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> i16 {
        if member_epoch < 0 && member_id.is_empty() && self.members.is_empty() {
            return errors::NONE;
        }
        match self.members.get(member_id) {
            None => errors::UNKNOWN_MEMBER_ID,
            Some(m) if m.member_epoch != member_epoch => errors::STALE_MEMBER_EPOCH,
            Some(_) => errors::NONE,
        }
    }

    /// The whole group as Kafka's streams-group records, by key; the shard writes those that
    /// differ from what it wrote last.
    pub fn records(&self) -> BTreeMap<Bytes, Bytes> {
        let g = &self.group_id;
        let mut out = BTreeMap::new();
        let meta = MetadataValue {
            epoch: self.group_epoch,
            metadata_hash: self.metadata_hash,
            ..MetadataValue::default()
        };
        out.insert(rec::metadata_key(g), rec::value(&meta));
        if let Some(t) = &self.topology {
            out.insert(rec::topology_key(g), rec::value(t));
        }
        out.insert(
            rec::target_metadata_key(g),
            rec::target_metadata_value(self.assignment_epoch),
        );
        for m in self.members.values() {
            let id = &m.member_id;
            out.insert(rec::member_metadata_key(g, id), rec::value(&m.metadata()));
            let target = self.target.get(id).cloned().unwrap_or_default();
            out.insert(
                rec::target_member_key(g, id),
                rec::target_member_value(&target),
            );
            out.insert(
                rec::current_assignment_key(g, id),
                rec::value(&m.current_value()),
            );
        }
        out
    }

    /// Rebuilds a group from its replayed records; members get a fresh session from `now`, as
    /// Kafka arms session timers when it loads a group.
    pub fn restore(
        group_id: &str,
        stored: StoredStreamsGroup,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &StreamsGroupConfig,
    ) -> StreamsGroup {
        let mut g = StreamsGroup::new(group_id);
        if let Some(meta) = &stored.metadata {
            g.group_epoch = meta.epoch;
            g.metadata_hash = meta.metadata_hash;
        }
        g.assignment_epoch = stored.target_epoch;
        g.target = stored.targets;
        g.topology = stored.topology;
        for (id, v) in stored.members {
            let mut m = StreamsMember::new(&id);
            m.instance_id = v.instance_id.map(|s| s.to_string());
            m.rack_id = v.rack_id.map(|s| s.to_string());
            m.client_id = v.client_id.to_string();
            m.client_host = v.client_host.to_string();
            m.rebalance_timeout_ms = v.rebalance_timeout_ms;
            m.topology_epoch = v.topology_epoch;
            m.process_id = v.process_id.to_string();
            m.user_endpoint = v.user_endpoint.map(|e| (e.host.to_string(), e.port));
            m.client_tags = (v.client_tags.into_iter())
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect();
            if let Some(c) = stored.current.get(&id) {
                let tasks = |l: &[values::TaskIds]| {
                    rec::tasks_of(
                        l.iter()
                            .map(|t| (&t.subtopology_id, t.partitions.as_slice())),
                    )
                };
                m.member_epoch = c.member_epoch;
                m.previous_member_epoch = c.previous_member_epoch;
                m.state = c.state;
                m.assigned = tasks(&c.active_tasks);
                m.pending_revocation = tasks(&c.active_tasks_pending_revocation);
            }
            m.deadline_ms = now.saturating_add(cfg.session_timeout_ms);
            if m.state == UNREVOKED_TASKS {
                let timeout = i64::from(m.rebalance_timeout_ms.max(0));
                m.revocation_deadline_ms = Some(now.saturating_add(timeout));
            }
            g.members.insert(id, m);
        }
        // The configuration comes from the topics as they are now; the hash is the stored one,
        // so the next heartbeat rebalances only if they changed meanwhile.
        if let Some(t) = &g.topology {
            let c = configure(t, topics);
            g.validated_topology_epoch = if c.is_ready() { c.epoch } else { -1 };
            g.configured = Some(c);
        }
        g
    }
}

/// StreamsTopology's equality: the epoch, and the subtopologies by id.
fn same_topology(a: &TopologyValue, b: &TopologyValue) -> bool {
    fn by_id(t: &TopologyValue) -> Vec<&rec::values::Subtopology> {
        let mut subs: Vec<_> = t.subtopologies.iter().collect();
        subs.sort_by(|x, y| x.subtopology_id.cmp(&y.subtopology_id));
        subs
    }
    a.epoch == b.epoch && by_id(a) == by_id(b)
}

fn expired(m: &StreamsMember, now: i64) -> bool {
    m.deadline_ms <= now || m.revocation_deadline_ms.is_some_and(|d| d <= now)
}

/// throwIfStreamsGroupMemberEpochIsInvalid: the current epoch, or the previous one when the
/// member owns only tasks it is assigned (its answer may have been lost).
fn check_epoch(m: &StreamsMember, received: i32, owned: Option<&Tasks>) -> Result<(), String> {
    if received == 0 {
        return Ok(());
    }
    if received > m.member_epoch {
        return Err(format!(
            "The streams group member has a greater member epoch ({received}) than the one \
             known by the group coordinator ({}). The member must abandon all its partitions \
             and rejoin.",
            m.member_epoch
        ));
    }
    let previous_ok =
        received == m.previous_member_epoch && owned.is_some_and(|o| is_subset(o, &m.assigned));
    if received < m.member_epoch && !previous_ok {
        return Err(format!(
            "The streams group member has a smaller member epoch ({received}) than the one \
             known by the group coordinator ({}). The member must abandon all its partitions \
             and rejoin.",
            m.member_epoch
        ));
    }
    Ok(())
}

/// throwIfRequestContainsInvalidTasks.
fn check_tasks(c: &ConfiguredTopology, tasks: Option<&Tasks>) -> Result<(), String> {
    let subs = c.subtopologies.iter().flatten().collect::<BTreeMap<_, _>>();
    for (s, ps) in tasks.into_iter().flatten() {
        let Some(sub) = subs.get(s) else {
            return Err(format!("Subtopology {s} does not exist in the topology."));
        };
        if let Some(p) = ps.iter().find(|p| **p < 0 || **p >= sub.number_of_tasks) {
            return Err(format!(
                "Task {p} for subtopology {s} is invalid. Number of tasks for this subtopology: {}",
                sub.number_of_tasks
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rec::values::{Subtopology, TopicInfo};
    use uuid::Uuid;

    /// Topics by name: (id, partition count); see the map's TopicSource in `consumer`.
    type Topics = BTreeMap<String, (Uuid, i32)>;

    fn topics(list: &[(&str, i32)]) -> Topics {
        list.iter()
            .enumerate()
            .map(|(i, (n, p))| (n.to_string(), (Uuid::from_u128(i as u128 + 1), *p)))
            .collect()
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn info(name: &str, partitions: i32) -> TopicInfo {
        TopicInfo::default()
            .with_name(s(name))
            .with_partitions(partitions)
    }

    /// A word count: subtopology 0 reads `input` and writes `rep`; 1 reads `rep` and keeps a
    /// store with changelog `log`.
    fn word_count() -> TopologyValue {
        TopologyValue::default().with_subtopologies(vec![
            Subtopology::default()
                .with_subtopology_id(s("0"))
                .with_source_topics(vec![s("input")])
                .with_repartition_sink_topics(vec![s("rep")]),
            Subtopology::default()
                .with_subtopology_id(s("1"))
                .with_repartition_source_topics(vec![info("rep", 0)])
                .with_state_changelog_topics(vec![info("log", 0)]),
        ])
    }

    const CFG: StreamsGroupConfig = StreamsGroupConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        max_size: 3,
        task_offset_interval_ms: 60_000,
    };

    fn join(member: &str) -> StreamsHeartbeat {
        StreamsHeartbeat {
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 300_000,
            topology: Some(word_count()),
            process_id: Some(format!("p-{member}")),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..StreamsHeartbeat::default()
        }
    }

    fn hb(member: &str, epoch: i32, owned: Option<&Tasks>) -> StreamsHeartbeat {
        StreamsHeartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned_active: owned.cloned(),
            owned_standby: owned.map(|_| Tasks::new()),
            owned_warmup: owned.map(|_| Tasks::new()),
            ..StreamsHeartbeat::default()
        }
    }

    fn count(t: &Tasks) -> usize {
        t.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn configuring_reports_missing_and_internal_topics() {
        let c = configure(&word_count(), &topics(&[]));
        assert_eq!(c.status.as_ref().unwrap().0, MISSING_SOURCE_TOPICS);
        assert_eq!(c.status.unwrap().1, "Source topics input are missing.");
        let c = configure(&word_count(), &topics(&[("input", 3)]));
        assert_eq!(c.status.as_ref().unwrap().0, MISSING_INTERNAL_TOPICS);
        let made: Vec<_> = c
            .topics_to_create
            .iter()
            .map(|t| (t.name.as_str(), t.partitions))
            .collect();
        assert_eq!(made, vec![("log", 3), ("rep", 3)]);
        let c = configure(
            &word_count(),
            &topics(&[("input", 3), ("rep", 3), ("log", 3)]),
        );
        assert!(c.is_ready());
        assert_eq!(c.all_tasks().len(), 6);
        let c = configure(
            &word_count(),
            &topics(&[("input", 3), ("rep", 2), ("log", 3)]),
        );
        assert_eq!(c.status.unwrap().0, INCORRECTLY_PARTITIONED_TOPICS);
    }

    #[test]
    fn offset_delete_keeps_the_source_topics_while_the_group_has_members() {
        // Kafka 4.4's StreamsGroup.isSubscribedToTopic: source and repartition source topics of
        // the topology, not changelogs or sinks; nothing once the group is empty.
        let t = topics(&[("input", 1), ("rep", 1), ("log", 1)]);
        let mut g = StreamsGroup::new("g");
        assert!(g.subscribed_topics().is_empty());
        let a = g.heartbeat(join("a"), &t, 0, &CFG);
        assert_eq!(a.error_code, 0);
        let want: BTreeSet<String> = ["input".into(), "rep".into()].into();
        assert_eq!(g.subscribed_topics(), want);
        g.leave("a", LEAVE_EPOCH, false);
        assert!(g.topology.is_some() && g.subscribed_topics().is_empty());
    }

    #[test]
    fn tasks_move_only_once_released() {
        let t = topics(&[("input", 2), ("rep", 2), ("log", 2)]);
        let mut g = StreamsGroup::new("g");
        let a = g.heartbeat(join("a"), &t, 0, &CFG);
        assert_eq!((a.error_code, a.member_epoch), (0, 1));
        let a_tasks = a.active_tasks.unwrap();
        assert_eq!(count(&a_tasks), 4);
        assert_eq!(g.state(), "Stable");
        // b joins: the target splits the tasks, but a still owns them, so b waits.
        let b = g.heartbeat(join("b"), &t, 1, &CFG);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(count(&b.active_tasks.unwrap()), 0);
        assert_eq!(g.state(), "Reconciling");
        // a is told to keep two; its epoch stays until it reports the others gone.
        let a = g.heartbeat(hb("a", 1, Some(&a_tasks)), &t, 2, &CFG);
        assert_eq!(a.member_epoch, 1);
        let kept = a.active_tasks.unwrap();
        assert_eq!(count(&kept), 2);
        let a = g.heartbeat(hb("a", 1, Some(&kept)), &t, 3, &CFG);
        assert_eq!((a.member_epoch, a.active_tasks), (2, None));
        // Now b gets the released tasks.
        let b = g.heartbeat(hb("b", 2, Some(&Tasks::new())), &t, 4, &CFG);
        let b_tasks = b.active_tasks.unwrap();
        assert_eq!(count(&b_tasks), 2);
        assert!(!intersects(&b_tasks, &kept));
        assert_eq!(g.state(), "Stable");
        // a leaves: b gets everything at once.
        let left = g.leave("a", LEAVE_EPOCH, false);
        assert_eq!((left.error_code, left.member_epoch), (0, -1));
        let b = g.heartbeat(hb("b", 2, Some(&b_tasks)), &t, 5, &CFG);
        assert_eq!(b.member_epoch, 3);
        assert_eq!(count(&b.active_tasks.unwrap()), 4);
    }

    #[test]
    fn epochs_and_bad_tasks_are_refused_as_kafka_does() {
        let t = topics(&[("input", 1), ("rep", 1), ("log", 1)]);
        let mut g = StreamsGroup::new("g");
        g.heartbeat(join("a"), &t, 0, &CFG);
        let unknown = g.heartbeat(hb("ghost", 1, None), &t, 0, &CFG);
        assert_eq!(unknown.error_code, errors::UNKNOWN_MEMBER_ID);
        let ahead = g.heartbeat(hb("a", 5, None), &t, 0, &CFG);
        assert_eq!(ahead.error_code, errors::FENCED_MEMBER_EPOCH);
        let mut bad = Tasks::new();
        add(&mut bad, "0", 7);
        let r = g.heartbeat(hb("a", 1, Some(&bad)), &t, 0, &CFG);
        assert_eq!(r.error_code, errors::INVALID_REQUEST);
        assert!(r
            .error_message
            .unwrap()
            .contains("Task 7 for subtopology 0 is invalid"));
        g.heartbeat(join("b"), &t, 0, &CFG);
        g.heartbeat(join("c"), &t, 0, &CFG);
        let full = g.heartbeat(join("d"), &t, 0, &CFG);
        assert_eq!(full.error_code, errors::GROUP_MAX_SIZE_REACHED);
    }

    #[test]
    fn missing_topics_are_reported_and_nothing_assigned() {
        let mut g = StreamsGroup::new("g");
        let r = g.heartbeat(join("a"), &topics(&[]), 0, &CFG);
        assert_eq!(r.status[0].0, MISSING_SOURCE_TOPICS);
        assert_eq!(count(&r.active_tasks.unwrap()), 0);
        assert_eq!(g.state(), "NotReady");
        let t = topics(&[("input", 2)]);
        let r = g.heartbeat(hb("a", 1, None), &t, 1, &CFG);
        assert_eq!(r.status[0].0, MISSING_INTERNAL_TOPICS);
        assert_eq!(r.topics_to_create.len(), 2);
        let t = topics(&[("input", 2), ("rep", 2), ("log", 2)]);
        let r = g.heartbeat(hb("a", r.member_epoch, None), &t, 2, &CFG);
        assert!(r.status.is_empty());
        assert_eq!(count(&r.active_tasks.unwrap()), 4);
    }

    #[test]
    fn the_group_comes_back_from_its_records() {
        let t = topics(&[("input", 2), ("rep", 2), ("log", 2)]);
        let mut g = StreamsGroup::new("g");
        let mut a = join("a");
        a.user_endpoint = Some(("localhost".into(), 8080));
        let a = g.heartbeat(a, &t, 0, &CFG);
        g.heartbeat(join("b"), &t, 0, &CFG);
        g.heartbeat(hb("a", 1, a.active_tasks.as_ref()), &t, 0, &CFG);
        let mut stored = StoredStreamsGroup::default();
        for (k, v) in g.records() {
            let r = rec::decode_key(&k, Some(&v)).unwrap();
            assert_eq!(r.group, "g");
            assert!(stored.apply(&r));
        }
        let back = StreamsGroup::restore("g", stored, &t, 100, &CFG);
        assert_eq!(back.records(), g.records());
        assert_eq!(back.state(), g.state());
        for (id, m) in &g.members {
            let r = &back.members[id];
            assert_eq!(
                (&r.assigned, &r.pending_revocation),
                (&m.assigned, &m.pending_revocation)
            );
            assert_eq!((r.member_epoch, r.state), (m.member_epoch, m.state));
            assert_eq!(r.user_endpoint, m.user_endpoint);
        }
        // Loading does not move the epoch.
        let mut back = back;
        let epoch = back.group_epoch;
        let b = back.heartbeat(hb("b", 2, None), &t, 200, &CFG);
        assert_eq!(b.error_code, 0);
        assert_eq!(back.group_epoch, epoch);
    }

    #[test]
    fn sessions_and_revocations_expire() {
        let t = topics(&[("input", 2), ("rep", 2), ("log", 2)]);
        let mut g = StreamsGroup::new("g");
        let a = g.heartbeat(join("a"), &t, 0, &CFG);
        g.heartbeat(join("b"), &t, 0, &CFG);
        // a is asked to revoke tasks, then heartbeats no more: its session ends.
        g.heartbeat(hb("a", 1, a.active_tasks.as_ref()), &t, 1_000, &CFG);
        g.heartbeat(hb("b", 2, None), &t, 40_000, &CFG);
        assert!(!g.has_expired(45_999));
        assert_eq!(g.expire(46_000), vec!["a".to_string()]);
        assert_eq!(g.expire(85_000), vec!["b".to_string()]);
        assert_eq!(g.state(), "Empty");
    }

    #[test]
    fn an_invalid_topology_fails_the_heartbeat_and_changes_nothing() {
        // A repartition topic nobody writes: STREAMS_INVALID_TOPOLOGY, no member, no group.
        let mut j = join("a");
        let t = j.topology.as_mut().unwrap();
        t.subtopologies[0].repartition_sink_topics.clear();
        let mut g = StreamsGroup::new("g");
        let r = g.heartbeat(j, &topics(&[("input", 1)]), 0, &CFG);
        assert_eq!(r.error_code, errors::STREAMS_INVALID_TOPOLOGY);
        assert!(r
            .error_message
            .unwrap()
            .contains("never used as a sink topic"));
        assert!(g.members.is_empty() && g.topology.is_none());
        assert_eq!(g.group_epoch, 0);
        // A changelog topic with a partition count is refused before the group is looked at.
        let mut j = join("a");
        j.topology.as_mut().unwrap().subtopologies[1].state_changelog_topics[0].partitions = 3;
        assert_eq!(
            invalid_topology(&j).unwrap(),
            "Changelog topic log must have an undefined partition count, but it is set to 3."
        );
        assert_eq!(invalid_topology(&join("a")), None);
    }

    #[test]
    fn a_different_topology_is_refused_an_older_one_is_stale() {
        let t = topics(&[("input", 1), ("rep", 1), ("log", 1)]);
        let mut g = StreamsGroup::new("g");
        g.heartbeat(join("a"), &t, 0, &CFG);
        let mut changed = join("b");
        changed.topology.as_mut().unwrap().subtopologies[0]
            .source_topics
            .clear();
        let r = g.heartbeat(changed, &t, 0, &CFG);
        assert_eq!(r.error_code, errors::INVALID_REQUEST);
        assert_eq!(
            r.error_message.unwrap(),
            "Topology updates are not supported yet."
        );
        assert_eq!(g.members.len(), 1);
        // The same topology, its subtopologies in another order, joins.
        let mut same = join("b");
        same.topology.as_mut().unwrap().subtopologies.reverse();
        assert_eq!(g.heartbeat(same, &t, 0, &CFG).error_code, errors::NONE);
    }

    #[test]
    fn bad_heartbeats_are_invalid_requests() {
        assert_eq!(validate_heartbeat("g", &join("a")), Ok(()));
        assert!(validate_heartbeat("", &join("a")).is_err());
        let mut no_topology = join("a");
        no_topology.topology = None;
        assert_eq!(
            validate_heartbeat("g", &no_topology).unwrap_err(),
            "Topology must be non-null when (re-)joining."
        );
        let mut late = hb("a", 3, None);
        late.topology = Some(word_count());
        assert!(validate_heartbeat("g", &late).is_err());
        assert!(validate_heartbeat("g", &hb("a", -3, None)).is_err());
        assert!(validate_heartbeat("g", &hb("a", -2, None)).is_err());
        let mut partial = hb("a", 3, Some(&Tasks::new()));
        partial.owned_warmup = None;
        assert!(validate_heartbeat("g", &partial).is_err());
        let mut regex = join("a");
        regex.topology.as_mut().unwrap().subtopologies[0].source_topic_regex = vec![s("in.*")];
        assert!(validate_heartbeat("g", &regex).is_err());
    }
}
