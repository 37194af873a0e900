//! One consumer group under the KIP-848 consumer protocol (ConsumerGroupHeartbeat): the broker
//! computes the assignment and every member converges to it through heartbeats.
//!
//! - The group epoch grows whenever membership, subscriptions or subscribed topics change; the
//!   target assignment is recomputed for it with the chosen server assignor (`uniform`, the
//!   default, or `range`).
//! - Reconciliation: a member first gives up partitions it owns that the target assigns elsewhere
//!   (its answer keeps only current ∩ target until it reports them released), then receives its
//!   new partitions as soon as no other member still holds them, and takes the target epoch.
//! - Members expire after group.consumer.session.timeout.ms without a heartbeat.
//! - A member may subscribe by regular expression (KIP-848's SubscribedTopicRegex, RE2 syntax,
//!   matching whole topic names, internal topics excluded); the group resolves it against the
//!   cluster's topics at every heartbeat, so topics created later join the subscription.
//! - The whole group state is expressible as Kafka's ConsumerGroup* records (`records`), which
//!   the coordinator writes to `__consumer_offsets` and replays into `restore` at start-up.
//!
//! Plain state: every method takes `now` and the topic metadata it needs, nothing blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indexmap::IndexMap;
use uuid::Uuid;

use super::consumer_records::{
    self as rec, StoredConsumerGroup, StoredConsumerMember, StoredCurrentAssignment,
};
use crate::protocol::errors;

/// (topic id, partition)
pub type TopicPartition = (Uuid, i32);
pub type Assignment = BTreeSet<TopicPartition>;

/// An assignment's partitions by topic id, in topic id order (as the responses list them), each
/// topic made into a response's entry by `make`.
pub fn partitions_by_topic<T>(
    a: &Assignment,
    make: impl FnMut((uuid::Uuid, Vec<i32>)) -> T,
) -> Vec<T> {
    let mut out: Vec<(uuid::Uuid, Vec<i32>)> = Vec::new();
    for &(topic_id, p) in a {
        match out.last_mut() {
            Some((id, ps)) if *id == topic_id => ps.push(p),
            _ => out.push((topic_id, vec![p])),
        }
    }
    out.into_iter().map(make).collect()
}

/// Leaving for good (-1) or, for a static member, for a moment (-2).
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Debug, Clone, Default)]
pub struct HeartbeatParams {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None`: unchanged; an empty string clears the regular expression.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member says it owns; `None`: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    /// `None` when the member's assignment did not change since the last answer.
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    fn error(code: i16, message: &str, member_id: &str) -> HeartbeatResult {
        HeartbeatResult {
            error_code: code,
            error_message: Some(message.to_string()),
            member_id: member_id.to_string(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub assignor: Option<String>,
    pub member_epoch: i32,
    previous_epoch: i32,
    /// What the member was last told it owns.
    pub current: Assignment,
    last_sent: Option<Assignment>,
    deadline_ms: i64,
}

/// Topic metadata for assignment: name → (topic id, partition count).
pub type TopicsMetadata = BTreeMap<String, (Uuid, i32)>;

/// What a group needs to know of the cluster's topics.
pub trait TopicSource {
    /// (topic id, partition count) of a topic, if it exists.
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic a regular expression may match (internal topics excluded).
    fn names(&self) -> Vec<String>;
}

/// Topics by name, (id, partition count): what the unit tests of the group types look topics up
/// in.
#[cfg(test)]
impl TopicSource for std::collections::BTreeMap<String, (Uuid, i32)> {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        self.get(name).copied()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// The metadata of those of `names` that exist.
pub fn topics_metadata(
    names: impl IntoIterator<Item = String>,
    topics: &dyn TopicSource,
) -> TopicsMetadata {
    names
        .into_iter()
        .filter_map(|n| topics.lookup(&n).map(|m| (n, m)))
        .collect()
}

/// Upper bound on a compiled subscription regex, so a hostile pattern cannot take memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a subscription regex as Kafka (RE2J `matches()`) applies it: to the whole name.
/// regex-lite: RE2J's syntax on topic names (ASCII by Kafka's rule) without the regex crate's
/// Unicode tables and lazy DFA; subscriptions are matched when metadata changes, not per record.
fn compile_regex(pattern: &str) -> Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub target_epoch: i32,
    pub members: IndexMap<String, ConsumerMember>,
    target: HashMap<String, Assignment>,
    /// The subscribed topics' metadata the target was computed from.
    topics: TopicsMetadata,
    static_members: HashMap<String, String>,
    /// Each subscription regex in use → the topics it matched at the last heartbeat.
    regex_matches: BTreeMap<String, Vec<String>>,
}

/// The assignors a client may pick (group.consumer.assignors).
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i32,
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            target_epoch: 0,
            members: IndexMap::new(),
            target: HashMap::new(),
            topics: TopicsMetadata::new(),
            static_members: HashMap::new(),
            regex_matches: BTreeMap::new(),
        }
    }

    /// Kafka's consumer group states: Empty, Assigning (target behind the group epoch),
    /// Reconciling (members not yet at the target), Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.target_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.target_epoch)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    /// A member's topics: those it names plus those its regex matched.
    pub fn subscription_of(&self, m: &ConsumerMember) -> Vec<String> {
        let matched = m
            .subscribed_regex
            .as_ref()
            .and_then(|r| self.regex_matches.get(r));
        match matched {
            None => m.subscribed.clone(),
            Some(extra) => {
                let all: BTreeSet<&String> = m.subscribed.iter().chain(extra).collect();
                all.into_iter().cloned().collect()
            }
        }
    }

    /// The topics any member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.subscription_of(m))
            .collect()
    }

    /// Resolves the members' regexes and the subscribed topics' metadata against the cluster;
    /// true if either changed (the subscription changed, so the group epoch must move).
    fn refresh_topics(&mut self, topics: &dyn TopicSource) -> bool {
        let regexes: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref())
            .collect();
        let mut matches = BTreeMap::new();
        if !regexes.is_empty() {
            let names = topics.names();
            for r in regexes {
                // Validated when the member sent it; a pattern that no longer compiles matches nothing.
                let Ok(re) = compile_regex(r) else { continue };
                let hit = names.iter().filter(|n| re.is_match(n)).cloned().collect();
                matches.insert(r.clone(), hit);
            }
        }
        let regex_changed = matches != self.regex_matches;
        self.regex_matches = matches;
        let fresh = topics_metadata(self.subscribed_topics(), topics);
        let topics_changed = fresh != self.topics;
        self.topics = fresh;
        regex_changed || topics_changed
    }

    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &ConsumerGroupConfig,
    ) -> HeartbeatResult {
        if let Some(a) = &p.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return HeartbeatResult::error(
                    errors::UNSUPPORTED_ASSIGNOR,
                    "unknown server assignor",
                    &p.member_id,
                );
            }
        }
        if let Some(r) = p
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            if let Err(e) = compile_regex(r) {
                let msg =
                    format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}");
                return HeartbeatResult::error(
                    errors::INVALID_REGULAR_EXPRESSION,
                    &msg,
                    &p.member_id,
                );
            }
        }
        if p.member_epoch == LEAVE_EPOCH || p.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&p.member_id, p.instance_id.as_deref(), p.member_epoch);
        }
        let member_id = if p.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            p.member_id.clone()
        };
        if p.member_epoch == 0 {
            if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
                return HeartbeatResult::error(
                    errors::INVALID_REQUEST,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    &member_id,
                );
            }
            self.join(&member_id, &p, now);
        } else {
            let Some(m) = self.members.get(&member_id) else {
                return HeartbeatResult::error(
                    errors::UNKNOWN_MEMBER_ID,
                    "unknown member",
                    &member_id,
                );
            };
            if p.member_epoch != m.member_epoch && p.member_epoch != m.previous_epoch {
                return HeartbeatResult::error(
                    errors::FENCED_MEMBER_EPOCH,
                    "the member epoch is fenced",
                    &member_id,
                );
            }
        }
        let Some(m) = self.members.get_mut(&member_id) else {
            return HeartbeatResult::error(errors::UNKNOWN_MEMBER_ID, "unknown member", &member_id);
        };
        m.deadline_ms = now + cfg.session_timeout_ms;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms.max(m.rebalance_timeout_ms);
        let mut changed = false;
        if let Some(topics) = p.subscribed_topic_names {
            let mut topics = topics;
            topics.sort();
            topics.dedup();
            changed |= m.subscribed != topics;
            m.subscribed = topics;
        }
        if let Some(r) = p.subscribed_topic_regex {
            let r = Some(r).filter(|r| !r.is_empty());
            changed |= m.subscribed_regex != r;
            m.subscribed_regex = r;
        }
        if p.server_assignor.is_some() && p.server_assignor != m.assignor {
            m.assignor = p.server_assignor;
            changed = true;
        }
        if self.refresh_topics(topics) || changed {
            self.group_epoch += 1;
        }
        if self.target_epoch < self.group_epoch {
            self.compute_target();
        }
        self.reconcile(&member_id, p.owned)
    }

    fn join(&mut self, member_id: &str, p: &HeartbeatParams, now: i64) {
        // A static member coming back takes over its previous entry and assignment.
        let mut inherited = None;
        if let Some(instance) = &p.instance_id {
            if let Some(old) = self
                .static_members
                .insert(instance.clone(), member_id.to_string())
            {
                if old != member_id {
                    inherited = self.members.shift_remove(&old);
                    if let Some(t) = self.target.remove(&old) {
                        self.target.insert(member_id.to_string(), t);
                    }
                }
            }
        }
        let member = match inherited {
            Some(mut m) => {
                m.member_id = member_id.to_string();
                m.last_sent = None;
                m
            }
            None => {
                self.group_epoch += 1;
                ConsumerMember {
                    member_id: member_id.to_string(),
                    instance_id: p.instance_id.clone(),
                    client_id: p.client_id.clone(),
                    client_host: p.client_host.clone(),
                    rebalance_timeout_ms: p.rebalance_timeout_ms,
                    subscribed: Vec::new(),
                    subscribed_regex: None,
                    assignor: None,
                    member_epoch: 0,
                    previous_epoch: -1,
                    current: Assignment::new(),
                    last_sent: None,
                    deadline_ms: now,
                }
            }
        };
        // A member rejoining with epoch 0 (after being fenced) starts over.
        if let Some(old) = self.members.insert(member_id.to_string(), member) {
            if old.member_epoch != 0 {
                self.group_epoch += 1;
            }
        }
    }

    fn leave(&mut self, member_id: &str, instance_id: Option<&str>, epoch: i32) -> HeartbeatResult {
        let id = match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(id) if member_id.is_empty() => id.clone(),
            _ => member_id.to_string(),
        };
        if self.members.shift_remove(&id).is_none() {
            return HeartbeatResult::error(errors::UNKNOWN_MEMBER_ID, "unknown member", &id);
        }
        self.target.remove(&id);
        if let Some(i) = instance_id {
            self.static_members.remove(i);
        }
        self.group_epoch += 1;
        HeartbeatResult {
            member_id: id,
            member_epoch: epoch,
            ..HeartbeatResult::default()
        }
    }

    /// Recomputes the target assignment for the current group epoch.
    fn compute_target(&mut self) {
        let assignor = self
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| "uniform".into());
        let members: Vec<(String, Vec<String>)> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), self.subscription_of(m)))
            .collect();
        self.target = if assignor == "range" {
            assign_range(&members, &self.topics)
        } else {
            assign_uniform(&members, &self.topics, &self.target)
        };
        self.target_epoch = self.group_epoch;
    }

    fn reconcile(&mut self, member_id: &str, owned: Option<Assignment>) -> HeartbeatResult {
        let desired = self.target_of(member_id);
        let held_by_others: Assignment = self
            .members
            .values()
            .filter(|m| m.member_id != member_id)
            .flat_map(|m| m.current.iter().copied())
            .collect();
        let target_epoch = self.target_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return HeartbeatResult::error(errors::UNKNOWN_MEMBER_ID, "unknown member", member_id);
        };
        let revoking: Assignment = m.current.difference(&desired).copied().collect();
        if !revoking.is_empty() {
            let released = owned.as_ref().is_some_and(|o| o.is_disjoint(&revoking));
            if released {
                m.current = m.current.intersection(&desired).copied().collect();
            } else {
                // Keep only what stays; the member answers once it has let the rest go.
                let keep: Assignment = m.current.intersection(&desired).copied().collect();
                return respond(m, Some(keep));
            }
        }
        let free: Assignment = desired
            .difference(&m.current)
            .filter(|tp| !held_by_others.contains(tp))
            .copied()
            .collect();
        m.current.extend(free);
        if m.member_epoch != target_epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = target_epoch;
        }
        let current = m.current.clone();
        respond(m, Some(current))
    }

    /// Has a member's session expired?
    pub fn has_expired(&self, now: i64) -> bool {
        self.members.values().any(|m| m.deadline_ms <= now)
    }

    /// Removes members whose session expired; true if any was.
    pub fn expire(&mut self, now: i64) -> bool {
        let expired = super::expired_members(&self.members, now, |m| m.deadline_ms);
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "consumer group member session expired");
            let instance = self.members.get(id).and_then(|m| m.instance_id.clone());
            self.leave(id, instance.as_deref(), LEAVE_EPOCH);
        }
        !expired.is_empty()
    }

    /// OffsetCommit/TxnOffsetCommit checks for this protocol (ConsumerGroup.validateOffsetCommit):
    /// an outside commit (epoch -1) to a group without members, or a known member at its current
    /// epoch (STALE_MEMBER_EPOCH otherwise).
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> i16 {
        if member_epoch < 0 && self.members.is_empty() {
            return errors::NONE;
        }
        match self.members.get(member_id) {
            None => errors::UNKNOWN_MEMBER_ID,
            Some(m) if m.member_epoch != member_epoch => errors::STALE_MEMBER_EPOCH,
            Some(_) => errors::NONE,
        }
    }

    /// The group as Kafka's ConsumerGroup* records (key → value), for `__consumer_offsets`.
    /// The coordinator writes what changed since the last call and tombstones what vanished.
    pub fn records(&self) -> BTreeMap<bytes::Bytes, bytes::Bytes> {
        let g = &self.group_id;
        let mut out = BTreeMap::new();
        out.insert(
            rec::group_key(rec::GROUP_METADATA_KEY, g),
            rec::epoch_value(self.group_epoch),
        );
        out.insert(
            rec::group_key(rec::TARGET_METADATA_KEY, g),
            rec::epoch_value(self.target_epoch),
        );
        for m in self.members.values() {
            let id = &m.member_id;
            let stored = StoredConsumerMember {
                instance_id: m.instance_id.clone(),
                rack_id: None,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed.clone(),
                subscribed_topic_regex: m.subscribed_regex.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: m.assignor.clone(),
            };
            out.insert(
                rec::member_key(rec::MEMBER_METADATA_KEY, g, id),
                rec::member_value(&stored),
            );
            let target = self.target_of(id);
            out.insert(
                rec::member_key(rec::TARGET_MEMBER_KEY, g, id),
                rec::target_member_value(&target),
            );
            out.insert(
                rec::member_key(rec::CURRENT_ASSIGNMENT_KEY, g, id),
                rec::current_assignment_value(&current_record(m, &target)),
            );
        }
        out
    }

    /// Rebuilds a group from its replayed records; members get a fresh session from `now`
    /// (as Kafka schedules session timers when it loads a group) and are sent their full
    /// assignment at their next heartbeat.
    pub fn restore(
        group_id: &str,
        stored: StoredConsumerGroup,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &ConsumerGroupConfig,
    ) -> ConsumerGroup {
        let mut g = ConsumerGroup::new(group_id);
        g.group_epoch = stored.group_epoch;
        g.target_epoch = stored.target_epoch;
        for (id, m) in stored.members {
            let cur = stored.current.get(&id).cloned().unwrap_or_default();
            if let Some(instance) = &m.instance_id {
                g.static_members.insert(instance.clone(), id.clone());
            }
            if let Some(t) = stored.targets.get(&id) {
                g.target.insert(id.clone(), t.clone());
            }
            let member = ConsumerMember {
                member_id: id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                subscribed: m.subscribed_topic_names,
                subscribed_regex: m.subscribed_topic_regex,
                assignor: m.server_assignor,
                member_epoch: cur.member_epoch,
                previous_epoch: cur.previous_member_epoch,
                current: cur
                    .assigned
                    .union(&cur.pending_revocation)
                    .copied()
                    .collect(),
                last_sent: None,
                deadline_ms: now + cfg.session_timeout_ms,
            };
            g.members.insert(id, member);
        }
        // The target was computed from these topics; resolving them now does not move the epoch.
        g.refresh_topics(topics);
        g
    }
}

/// Kafka's current-assignment record of a member: what it keeps of its target, what it must
/// still revoke, and its MemberState.
fn current_record(m: &ConsumerMember, target: &Assignment) -> StoredCurrentAssignment {
    let assigned: Assignment = m.current.intersection(target).copied().collect();
    let pending_revocation: Assignment = m.current.difference(target).copied().collect();
    let state = if !pending_revocation.is_empty() {
        rec::MEMBER_STATE_UNREVOKED_PARTITIONS
    } else if assigned != *target {
        rec::MEMBER_STATE_UNRELEASED_PARTITIONS
    } else {
        rec::MEMBER_STATE_STABLE
    };
    StoredCurrentAssignment {
        member_epoch: m.member_epoch,
        previous_member_epoch: m.previous_epoch,
        state,
        assigned,
        pending_revocation,
    }
}

/// Sends the assignment only when it differs from the last one the member was given.
fn respond(m: &mut ConsumerMember, assignment: Option<Assignment>) -> HeartbeatResult {
    let send = assignment.filter(|a| m.last_sent.as_ref() != Some(a));
    if let Some(a) = &send {
        m.last_sent = Some(a.clone());
    }
    HeartbeatResult {
        error_code: errors::NONE,
        error_message: None,
        member_id: m.member_id.clone(),
        member_epoch: m.member_epoch,
        assignment: send,
    }
}

/// Every (topic id, partition) of the topics, in name order.
fn partitions_of<'a>(
    topics: &'a TopicsMetadata,
    names: &'a [String],
) -> impl Iterator<Item = TopicPartition> + 'a {
    names
        .iter()
        .filter_map(|n| topics.get(n))
        .flat_map(|(id, count)| (0..*count).map(move |p| (*id, p)))
}

/// The uniform assignor: spreads partitions evenly over the members subscribed to them, keeping
/// partitions where they were when that does not unbalance the group.
pub fn assign_uniform(
    members: &[(String, Vec<String>)],
    topics: &TopicsMetadata,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> = members
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    let all: BTreeSet<String> = members
        .iter()
        .flat_map(|(_, s)| s.iter().cloned())
        .collect();
    let all: Vec<String> = all.into_iter().collect();
    let partitions: Vec<TopicPartition> = partitions_of(topics, &all).collect();
    if members.is_empty() {
        return result;
    }
    let topic_of: HashMap<Uuid, &String> = topics.iter().map(|(n, (id, _))| (*id, n)).collect();
    let eligible = |tp: &TopicPartition| -> Vec<&String> {
        let name = topic_of.get(&tp.0);
        members
            .iter()
            .filter(|(_, s)| name.is_some_and(|n| s.contains(n)))
            .map(|(m, _)| m)
            .collect()
    };
    let quota = partitions.len().div_ceil(members.len());
    let mut unassigned = Vec::new();
    // Sticky pass: a partition stays with its previous owner while that owner is under quota.
    for tp in &partitions {
        let owner = previous
            .iter()
            .find(|(_, a)| a.contains(tp))
            .map(|(m, _)| m);
        match owner {
            Some(o)
                if eligible(tp).contains(&o) && result.get(o).is_some_and(|a| a.len() < quota) =>
            {
                if let Some(a) = result.get_mut(o) {
                    a.insert(*tp);
                }
            }
            _ => unassigned.push(*tp),
        }
    }
    for tp in unassigned {
        let least = eligible(&tp)
            .into_iter()
            .min_by_key(|m| result.get(*m).map_or(0, BTreeSet::len))
            .cloned();
        if let Some(m) = least {
            if let Some(a) = result.get_mut(&m) {
                a.insert(tp);
            }
        }
    }
    result
}

/// The range assignor: per topic, contiguous ranges of partitions to the subscribed members in
/// member-id order, the first ones getting one more when it does not divide evenly.
pub fn assign_range(
    members: &[(String, Vec<String>)],
    topics: &TopicsMetadata,
) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> = members
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    for (name, (id, count)) in topics {
        let mut subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.contains(name))
            .map(|(m, _)| m)
            .collect();
        subs.sort();
        if subs.is_empty() {
            continue;
        }
        let n = subs.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if let Some(a) = result.get_mut(*m) {
                a.extend((next..next + take).map(|p| (*id, p)));
            }
            next += take;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: ConsumerGroupConfig = ConsumerGroupConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
    };

    fn topic_id() -> Uuid {
        Uuid::from_u128(7)
    }

    /// Topics "t" (`partitions` partitions) and, for regex tests, "t2" and "other" (2 each).
    struct Topics(i32);

    impl TopicSource for Topics {
        fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
            match name {
                "t" => Some((topic_id(), self.0)),
                "t2" => Some((Uuid::from_u128(8), 2)),
                "other" => Some((Uuid::from_u128(9), 2)),
                _ => None,
            }
        }
        fn names(&self) -> Vec<String> {
            vec!["t".into(), "t2".into(), "other".into()]
        }
    }

    fn meta(partitions: i32) -> Topics {
        Topics(partitions)
    }

    fn join(g: &mut ConsumerGroup, id: &str, now: i64) -> HeartbeatResult {
        let p = HeartbeatParams {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..HeartbeatParams::default()
        };
        g.heartbeat(p, &meta(6), now, &CFG)
    }

    fn beat(
        g: &mut ConsumerGroup,
        id: &str,
        epoch: i32,
        owned: Option<Assignment>,
        now: i64,
    ) -> HeartbeatResult {
        let p = HeartbeatParams {
            member_id: id.into(),
            member_epoch: epoch,
            owned,
            ..HeartbeatParams::default()
        };
        g.heartbeat(p, &meta(6), now, &CFG)
    }

    #[test]
    fn first_member_gets_everything() {
        let mut g = ConsumerGroup::new("g");
        let r = join(&mut g, "a", 0);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.member_epoch, g.group_epoch);
        assert_eq!(r.assignment.unwrap().len(), 6);
        assert_eq!(g.state(), "Stable");
        // Nothing changed: no assignment in the answer.
        let again = beat(&mut g, "a", r.member_epoch, None, 1);
        assert!(again.assignment.is_none());
    }

    #[test]
    fn second_member_waits_for_revocation_then_splits_evenly() {
        let mut g = ConsumerGroup::new("g");
        let a = join(&mut g, "a", 0);
        let owned_a = a.assignment.clone().unwrap();
        let b = join(&mut g, "b", 1);
        // b's target partitions are still held by a: b gets nothing yet.
        assert_eq!(b.assignment.unwrap_or_default().len(), 0);
        assert_eq!(g.state(), "Reconciling");
        // a is told to keep only its half, with its old epoch.
        let a2 = beat(&mut g, "a", a.member_epoch, Some(owned_a.clone()), 2);
        let keep = a2.assignment.unwrap();
        assert_eq!(keep.len(), 3);
        assert_eq!(a2.member_epoch, a.member_epoch);
        // a reports the revocation done and takes the new epoch.
        let a3 = beat(&mut g, "a", a.member_epoch, Some(keep.clone()), 3);
        assert_eq!(a3.member_epoch, g.target_epoch);
        let b2 = beat(&mut g, "b", b.member_epoch, Some(Assignment::new()), 4);
        let got = b2.assignment.unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.is_disjoint(&keep));
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn errors_and_leave() {
        let mut g = ConsumerGroup::new("g");
        let a = join(&mut g, "a", 0);
        assert_eq!(
            beat(&mut g, "ghost", 3, None, 1).error_code,
            errors::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            beat(&mut g, "a", a.member_epoch + 5, None, 1).error_code,
            errors::FENCED_MEMBER_EPOCH
        );
        let left = beat(&mut g, "a", LEAVE_EPOCH, None, 2);
        assert_eq!((left.error_code, left.member_epoch), (0, LEAVE_EPOCH));
        assert_eq!(g.state(), "Empty");
        let mut bad = HeartbeatParams {
            member_id: "x".into(),
            member_epoch: 0,
            ..HeartbeatParams::default()
        };
        assert_eq!(
            g.heartbeat(bad.clone(), &meta(1), 3, &CFG).error_code,
            errors::INVALID_REQUEST
        );
        bad.subscribed_topic_names = Some(vec!["t".into()]);
        bad.server_assignor = Some("fancy".into());
        assert_eq!(
            g.heartbeat(bad, &meta(1), 3, &CFG).error_code,
            errors::UNSUPPORTED_ASSIGNOR
        );
    }

    #[test]
    fn expired_member_frees_its_partitions() {
        let mut g = ConsumerGroup::new("g");
        join(&mut g, "a", 0);
        let b = join(&mut g, "b", 0);
        assert!(g.expire(45_001));
        assert!(g.members.is_empty());
        let _ = b;
    }

    #[test]
    fn offset_commit_checks_the_epoch() {
        let mut g = ConsumerGroup::new("g");
        // Kafka: epoch -1 commits to a group without members, whatever the member id.
        assert_eq!(g.validate_offset_commit("x", -1), errors::NONE);
        let a = join(&mut g, "a", 0);
        assert_eq!(g.validate_offset_commit("a", a.member_epoch), errors::NONE);
        assert_eq!(
            g.validate_offset_commit("a", a.member_epoch - 1),
            errors::STALE_MEMBER_EPOCH
        );
        assert_eq!(g.validate_offset_commit("z", 1), errors::UNKNOWN_MEMBER_ID);
        assert_eq!(g.validate_offset_commit("", -1), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn assignors_balance() {
        let topics: TopicsMetadata = [("t".to_string(), (topic_id(), 7))].into_iter().collect();
        let members: Vec<(String, Vec<String>)> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), vec!["t".to_string()]))
            .collect();
        for result in [
            assign_range(&members, &topics),
            assign_uniform(&members, &topics, &HashMap::new()),
        ] {
            let sizes: Vec<usize> = ["a", "b", "c"].iter().map(|m| result[*m].len()).collect();
            assert_eq!(sizes.iter().sum::<usize>(), 7);
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
        }
        let range = assign_range(&members, &topics);
        assert_eq!(range["a"], (0..3).map(|p| (topic_id(), p)).collect());
    }

    #[test]
    fn regex_subscriptions_match_whole_names_and_refuse_bad_patterns() {
        let mut g = ConsumerGroup::new("g");
        let p = HeartbeatParams {
            member_id: "a".into(),
            member_epoch: 0,
            subscribed_topic_regex: Some("t.*".into()),
            owned: Some(Assignment::new()),
            ..HeartbeatParams::default()
        };
        let r = g.heartbeat(p, &meta(6), 0, &CFG);
        assert_eq!(r.error_code, errors::NONE);
        // "t" (6) and "t2" (2), not "other": the regex must match the whole name.
        assert_eq!(r.assignment.map(|a| a.len()), Some(8));
        let bad = HeartbeatParams {
            member_id: "b".into(),
            member_epoch: 0,
            subscribed_topic_regex: Some("t(".into()),
            ..HeartbeatParams::default()
        };
        let r = g.heartbeat(bad, &meta(6), 0, &CFG);
        assert_eq!(r.error_code, errors::INVALID_REGULAR_EXPRESSION);
        assert!(
            !g.members.contains_key("b"),
            "a refused member is not added"
        );
        // Clearing the regex (empty string) drops the topics it matched.
        let clear = HeartbeatParams {
            member_id: "a".into(),
            member_epoch: g.members["a"].member_epoch,
            subscribed_topic_regex: Some(String::new()),
            subscribed_topic_names: Some(vec!["other".into()]),
            ..HeartbeatParams::default()
        };
        let r = g.heartbeat(clear, &meta(6), 1, &CFG);
        assert_eq!(r.error_code, errors::NONE);
        assert_eq!(g.target_of("a").len(), 2);
    }

    /// Replays a group's records the way the coordinator does at start-up.
    fn replayed(g: &ConsumerGroup, now: i64) -> ConsumerGroup {
        let mut stored = StoredConsumerGroup::default();
        for (k, v) in g.records() {
            let (group, r) = rec::decode(&k, Some(&v)).unwrap();
            assert_eq!(group, "g");
            assert!(stored.apply(r));
        }
        ConsumerGroup::restore("g", stored, &meta(6), now, &CFG)
    }

    #[test]
    fn a_restored_group_carries_on_mid_reconciliation() {
        let mut g = ConsumerGroup::new("g");
        let a = join(&mut g, "a", 0);
        let owned_by_a = a.assignment.clone();
        let b = join(&mut g, "b", 1);
        // b waits for a to revoke; a is told to keep only its half.
        assert_eq!(b.assignment.as_ref().map(|x| x.len()), Some(0));
        let a2 = beat(&mut g, "a", a.member_epoch, owned_by_a, 2);
        assert_eq!(a2.assignment.as_ref().map(|x| x.len()), Some(3));
        let restored = replayed(&g, 100);
        assert_eq!(restored.records(), g.records());
        assert_eq!(restored.state(), g.state());
        let mut g = restored;
        // a reports the revocation at its epoch and moves on; b then gets its half.
        let a3 = beat(&mut g, "a", a.member_epoch, a2.assignment, 101);
        assert_eq!(a3.error_code, errors::NONE);
        assert_eq!(a3.member_epoch, g.target_epoch);
        let b2 = beat(&mut g, "b", b.member_epoch, Some(Assignment::new()), 102);
        assert_eq!(b2.error_code, errors::NONE);
        assert_eq!(b2.assignment.map(|x| x.len()), Some(3));
        assert_eq!(g.state(), "Stable");
        // Restored members got a fresh session from the load time.
        assert!(!g.expire(100 + CFG.session_timeout_ms - 1));
    }
}
