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
//!
//! Plain state: every method takes `now` and the topic metadata it needs, nothing blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indexmap::IndexMap;
use uuid::Uuid;

use crate::protocol::errors;

/// (topic id, partition)
pub type TopicPartition = (Uuid, i32);
pub type Assignment = BTreeSet<TopicPartition>;

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

#[derive(Debug)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub target_epoch: i32,
    pub members: IndexMap<String, ConsumerMember>,
    target: HashMap<String, Assignment>,
    /// The subscribed topics' metadata the target was computed from.
    topics: TopicsMetadata,
    static_members: HashMap<String, String>,
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

    /// The topics any member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        metadata: &dyn Fn(&BTreeSet<String>) -> TopicsMetadata,
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
        if p.member_epoch == LEAVE_EPOCH || p.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&p.member_id, p.instance_id.as_deref(), p.member_epoch);
        }
        let member_id = if p.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            p.member_id.clone()
        };
        if p.member_epoch == 0 {
            if p.subscribed_topic_names.is_none() {
                return HeartbeatResult::error(
                    errors::INVALID_REQUEST,
                    "SubscribedTopicNames must be set when joining",
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
        if p.server_assignor.is_some() && p.server_assignor != m.assignor {
            m.assignor = p.server_assignor;
            changed = true;
        }
        if changed {
            self.group_epoch += 1;
        }
        let fresh = metadata(&self.subscribed_topics());
        if fresh != self.topics {
            self.topics = fresh;
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
            .map(|m| (m.member_id.clone(), m.subscribed.clone()))
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

    /// Removes members whose session expired; true if any was.
    pub fn expire(&mut self, now: i64) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline_ms <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "consumer group member session expired");
            let instance = self.members.get(id).and_then(|m| m.instance_id.clone());
            self.leave(id, instance.as_deref(), LEAVE_EPOCH);
        }
        !expired.is_empty()
    }

    /// OffsetCommit/OffsetFetch checks for this protocol: a known member at its current epoch
    /// (STALE_MEMBER_EPOCH otherwise), or an outside commit (no member, epoch -1) to an empty group.
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> i16 {
        if member_id.is_empty() && member_epoch < 0 {
            return if self.members.is_empty() {
                errors::NONE
            } else {
                errors::UNKNOWN_MEMBER_ID
            };
        }
        match self.members.get(member_id) {
            None => errors::UNKNOWN_MEMBER_ID,
            Some(m) if m.member_epoch != member_epoch => errors::STALE_MEMBER_EPOCH,
            Some(_) => errors::NONE,
        }
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

    fn meta(partitions: i32) -> impl Fn(&BTreeSet<String>) -> TopicsMetadata {
        move |names: &BTreeSet<String>| {
            names
                .iter()
                .filter(|n| *n == "t")
                .map(|n| (n.clone(), (topic_id(), partitions)))
                .collect()
        }
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
}
