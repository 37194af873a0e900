//! One consumer group under the classic protocol (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup): Kafka's state machine Empty → PreparingRebalance → CompletingRebalance → Stable,
//! with generations, protocol selection, the KIP-394 MEMBER_ID_REQUIRED round trip, static
//! membership (KIP-345), session and rebalance timeouts and the initial rebalance delay.
//!
//! The group is plain state: every method takes `now` (ms) and never blocks. A JoinGroup or
//! SyncGroup that must wait for the rest of the group gets a oneshot receiver; the group completes
//! it when the rebalance step finishes (or fails it when the member is removed). `tick` applies
//! the timeouts, so tests drive time by hand.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;
use tokio::sync::oneshot;

use super::GroupConfig;
use crate::coordinator::commit::CommitPoint;
use crate::protocol::errors;

/// How long a new member may wait in JoinGroup before it is removed (Kafka's
/// GroupCoordinatorConfig.CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS, a constant there too; KAFKA-7610).
/// Unknown members are bounded as in Kafka: member ids handed out with MEMBER_ID_REQUIRED expire
/// after the session timeout, new members after this, and group.max.size caps both.
const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, as the group needs it.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ must learn its member id first (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Only for the leader: (member id, group instance id, metadata of the chosen protocol).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(code: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error_code: code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
    /// The coordinator write this answer rests on (the leader's group record): a member answered
    /// by another member's SyncGroup is answered only once that write is committed, as the
    /// leader is (Kafka completes the waiting members from the write's append future).
    pub commit: Vec<CommitPoint>,
}

impl SyncResult {
    fn error(code: i16) -> SyncResult {
        SyncResult {
            error_code: code,
            ..SyncResult::default()
        }
    }
}

/// An answer now, or later through the receiver.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// The session expires at this time unless a heartbeat (or join/sync) comes first.
    deadline_ms: i64,
    /// Joined without a member id and not yet through a completed join: expires at
    /// NEW_MEMBER_JOIN_TIMEOUT_MS even while its JoinGroup waits.
    is_new: bool,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }
}

#[derive(Debug)]
pub struct ClassicGroup {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member becomes leader when there is none.
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending: HashMap<String, i64>,
    /// group.instance.id → member id of static members.
    static_members: HashMap<String, String>,
    /// PreparingRebalance completes by this time at the latest.
    rebalance_deadline_ms: i64,
    /// While the first rebalance of an empty group is delayed: (current deadline, hard limit).
    initial_delay: Option<(i64, i64)>,
    /// CompletingRebalance gives up waiting for the leader's SyncGroup at this time.
    sync_deadline_ms: i64,
}

impl ClassicGroup {
    pub fn new(group_id: &str) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay: None,
            sync_deadline_ms: 0,
        }
    }

    /// Rebuilds a group from its last group record at start-up (GroupMetadataManager's load);
    /// `start_sessions` then gives its members fresh sessions, so they keep their assignment if
    /// they heartbeat within their session timeout, and are expired otherwise.
    pub fn restore(group_id: &str, stored: super::offsets_topic::StoredGroup) -> ClassicGroup {
        let mut g = ClassicGroup::new(group_id);
        g.generation_id = stored.generation;
        g.protocol_type = Some(stored.protocol_type).filter(|t| !t.is_empty());
        g.protocol_name = stored.protocol.clone();
        g.leader = stored.leader;
        let protocol = stored.protocol.unwrap_or_default();
        for m in stored.members {
            if let Some(instance) = &m.group_instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                // Set by `start_sessions` once the shard is loaded.
                deadline_ms: 0,
                is_new: false,
            };
            g.members.insert(m.member_id, member);
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Does this group accept a member with these protocols (same type, one protocol in common)?
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Checks that `member_id` may act for `instance_id` (static membership fencing).
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Err(errors::FENCED_INSTANCE_ID),
                None if !self.members.contains_key(member_id) => {
                    return Err(errors::UNKNOWN_MEMBER_ID)
                }
                _ => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(errors::UNKNOWN_MEMBER_ID)
        }
    }

    pub fn join(&mut self, p: JoinParams, now: i64, cfg: &GroupConfig) -> Reply<JoinResult> {
        let fail = |code: i16| Reply::Now(JoinResult::error(code, &p.member_id));
        if p.session_timeout_ms < cfg.min_session_timeout_ms
            || p.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return fail(errors::INVALID_SESSION_TIMEOUT);
        }
        if self.state == GroupState::Dead {
            return fail(errors::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.supports(&p.protocol_type, &p.protocols) {
            return fail(errors::INCONSISTENT_GROUP_PROTOCOL);
        }
        if p.member_id.is_empty() {
            return self.join_unknown(p, now, cfg);
        }
        if self.pending.remove(&p.member_id).is_some() {
            return self.add_and_rebalance(p.member_id.clone(), p, now, cfg);
        }
        if let Err(code) = self.check_member(&p.member_id, p.group_instance_id.as_deref()) {
            return fail(code);
        }
        let id = p.member_id.clone();
        match self.state {
            GroupState::PreparingRebalance => {
                let reply = self.update_and_wait(&id, p, now);
                self.maybe_complete_join(now);
                reply
            }
            GroupState::CompletingRebalance if self.same_protocols(&id, &p.protocols) => {
                Reply::Now(self.join_result_for(&id))
            }
            GroupState::Stable
                if self.leader.as_deref() != Some(&id)
                    && self.same_protocols(&id, &p.protocols) =>
            {
                Reply::Now(self.join_result_for(&id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let reply = self.update_and_wait(&id, p, now);
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
                reply
            }
            GroupState::Empty | GroupState::Dead => fail(errors::UNKNOWN_MEMBER_ID),
        }
    }

    fn join_unknown(&mut self, p: JoinParams, now: i64, cfg: &GroupConfig) -> Reply<JoinResult> {
        if self.members.len() + self.pending.len() >= cfg.max_size {
            return Reply::Now(JoinResult::error(errors::GROUP_MAX_SIZE_REACHED, ""));
        }
        let new_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = p.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old_id, new_id, p, now, cfg);
            }
            self.static_members.insert(instance, new_id.clone());
            return self.add_and_rebalance(new_id, p, now, cfg);
        }
        if p.require_known_member_id {
            // KIP-394: hand out the id first, so a client that gives up mid-join leaves no member.
            self.pending
                .insert(new_id.clone(), now + i64::from(p.session_timeout_ms));
            return Reply::Now(JoinResult::error(errors::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_and_rebalance(new_id, p, now, cfg)
    }

    /// A static member came back with a new member id (restart): it takes over the old entry and
    /// its assignment. In a stable group with unchanged protocols nobody else rebalances.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        p: JoinParams,
        now: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResult> {
        let Some(mut member) = self.members.shift_remove(old_id) else {
            return self.add_and_rebalance(new_id, p, now, cfg);
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(errors::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(errors::FENCED_INSTANCE_ID));
        }
        member.member_id = new_id.clone();
        member.protocols = p.protocols.clone();
        member.deadline_ms = now + i64::from(p.session_timeout_ms);
        if let Some(instance) = &p.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        // Kafka rebalances a stable group for a returning static member only if its protocols
        // would change the group's protocol (GroupCoordinator.updateStaticMemberAndRebalance):
        // its metadata (owned partitions, generation) naturally differs after a restart.
        let same_protocol = self.select_protocol() == self.protocol_name;
        match self.state {
            GroupState::Stable if same_protocol => {
                let mut r = self.join_result_for(&new_id);
                // The group keeps its assignment: a returning leader must not compute a new one.
                r.skip_assignment = self.leader.as_deref() == Some(new_id.as_str());
                Reply::Now(r)
            }
            GroupState::PreparingRebalance => {
                let reply = self.update_and_wait(&new_id, p, now);
                self.maybe_complete_join(now);
                reply
            }
            _ => {
                let reply = self.update_and_wait(&new_id, p, now);
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
                reply
            }
        }
    }

    fn same_protocols(&self, id: &str, protocols: &[(String, Bytes)]) -> bool {
        self.members
            .get(id)
            .is_some_and(|m| m.protocols == protocols)
    }

    fn add_and_rebalance(
        &mut self,
        id: String,
        p: JoinParams,
        now: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResult> {
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        let member = Member {
            member_id: id.clone(),
            group_instance_id: p.group_instance_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            session_timeout_ms: p.session_timeout_ms,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            protocols: p.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            // Kafka's new-member join timeout: a new member cannot heartbeat and its disconnect
            // goes unseen while its JoinGroup is parked, so retrying clients would otherwise pile
            // up defunct members (and their client ids) for the whole rebalance timeout.
            deadline_ms: now + NEW_MEMBER_JOIN_TIMEOUT_MS,
            is_new: true,
        };
        self.members.insert(id.clone(), member);
        let reply = self.update_and_wait(&id, p, now);
        match self.state {
            GroupState::PreparingRebalance => {
                // A new member during the initial delay pushes it back, up to the hard limit.
                if let Some((deadline, limit)) = self.initial_delay {
                    let pushed = (now + cfg.initial_rebalance_delay_ms).min(limit);
                    self.initial_delay = Some((deadline.max(pushed), limit));
                }
            }
            _ => self.prepare_rebalance(now, cfg),
        }
        self.maybe_complete_join(now);
        reply
    }

    /// Records a member's (re)join and parks it until the rebalance completes.
    fn update_and_wait(&mut self, id: &str, p: JoinParams, now: i64) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            if let Some(old) = m.join_waiter.replace(tx) {
                let _ = old.send(JoinResult::error(errors::REBALANCE_IN_PROGRESS, id));
            }
            m.protocols = p.protocols;
            m.session_timeout_ms = p.session_timeout_ms;
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            m.client_id = p.client_id;
            m.client_host = p.client_host;
            if !m.is_new {
                m.deadline_ms = now + i64::from(m.session_timeout_ms);
            }
        }
        Reply::Later(rx)
    }

    /// A rebalance step may take as long as the most patient member allows.
    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig) {
        // Members waiting for a SyncGroup answer must rejoin.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(errors::REBALANCE_IN_PROGRESS));
            }
        }
        let timeout = self.max_rebalance_timeout_ms();
        self.rebalance_deadline_ms = now + timeout;
        self.initial_delay =
            (self.state == GroupState::Empty && cfg.initial_rebalance_delay_ms > 0).then(|| {
                (
                    now + cfg.initial_rebalance_delay_ms.min(timeout),
                    now + timeout,
                )
            });
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every member has rejoined and no member id is pending (and
    /// the initial delay, if any, is over).
    fn maybe_complete_join(&mut self, now: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self
            .initial_delay
            .is_some_and(|(deadline, _)| now < deadline)
        {
            return;
        }
        if self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some()) {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: i64) {
        self.initial_delay = None;
        // Members that did not rejoin in time leave the group.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.generation_id += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let timeout = self.max_rebalance_timeout_ms();
        self.sync_deadline_ms = now + timeout;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.deadline_ms = now + i64::from(m.session_timeout_ms);
                m.is_new = false;
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(result);
                }
            }
        }
    }

    /// The protocol every member supports that most members prefer (ClassicGroup.selectProtocol).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes
            .iter()
            .find(|(_, n)| *n == best)
            .map(|(c, _)| (*c).clone())
    }

    fn join_result_for(&self, id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if leader == id {
            self.members
                .values()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.group_instance_id.clone(),
                        m.metadata(&protocol),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error_code: errors::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: id.to_string(),
            skip_assignment: false,
            members,
        }
    }

    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Reply<SyncResult> {
        if let Err(code) = self.check_member(member_id, instance_id) {
            return Reply::Now(SyncResult::error(code));
        }
        if generation_id != self.generation_id {
            return Reply::Now(SyncResult::error(errors::ILLEGAL_GENERATION));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(errors::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(errors::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => Reply::Now(self.sync_result_for(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.deadline_ms = now + i64::from(m.session_timeout_ms);
                }
                if self.leader.as_deref() == Some(member_id) {
                    // Stable with the leader's assignment; the waiting members are answered by
                    // `assignment_stored` once the coordinator has written the group record.
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                }
                Reply::Later(rx)
            }
        }
    }

    /// Answers the members waiting for SyncGroup after the leader's SyncGroup made the group
    /// Stable and the coordinator tried to write the group record. When the write failed, Kafka
    /// (GroupMetadataManager.classicGroupSyncToLeader) resets every assignment, fails the waiting
    /// SyncGroups with the error and starts a new rebalance, so no member works from an
    /// assignment a restart would not know.
    pub fn assignment_stored(
        &mut self,
        stored: Result<(), i16>,
        commit: &[CommitPoint],
        now: i64,
        cfg: &GroupConfig,
    ) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = match stored {
                Ok(()) => SyncResult {
                    commit: commit.to_vec(),
                    ..self.sync_result_for(&id)
                },
                Err(code) => SyncResult::error(code),
            };
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if stored.is_err() {
                m.assignment = Bytes::new();
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(result);
            }
        }
        if stored.is_err() {
            self.state = GroupState::CompletingRebalance;
            self.prepare_rebalance(now, cfg);
        }
    }

    fn sync_result_for(&self, id: &str) -> SyncResult {
        SyncResult {
            error_code: errors::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
            commit: Vec::new(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: i64,
    ) -> i16 {
        if let Err(code) = self.check_member(member_id, instance_id) {
            return code;
        }
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return errors::UNKNOWN_MEMBER_ID;
        }
        if generation_id != self.generation_id {
            return errors::ILLEGAL_GENERATION;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline_ms = now + i64::from(m.session_timeout_ms);
        }
        if self.state == GroupState::PreparingRebalance {
            errors::REBALANCE_IN_PROGRESS
        } else {
            errors::NONE
        }
    }

    /// A member leaves (LeaveGroup); with `member_id` empty a static member is named by instance.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
        cfg: &GroupConfig,
    ) -> i16 {
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return errors::UNKNOWN_MEMBER_ID,
            },
            _ => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.maybe_complete_join(now);
            return errors::NONE;
        }
        if let Err(code) = self.check_member(&id, instance_id) {
            return code;
        }
        self.remove_member(&id);
        self.after_removal(now, cfg);
        errors::NONE
    }

    /// The shard holding this group was loaded at `now` (monotonic): each member's session
    /// starts then (GroupMetadataManager.onLoaded reschedules every member's heartbeat).
    pub fn start_sessions(&mut self, now: i64) {
        for m in self.members.values_mut() {
            m.deadline_ms = now.saturating_add(i64::from(m.session_timeout_ms));
        }
    }

    /// The group's shard is unloaded (its partition led elsewhere now): members parked in
    /// JoinGroup or SyncGroup get NOT_COORDINATOR and find the new coordinator
    /// (GroupMetadataManager.onUnloaded).
    pub fn on_unloaded(&mut self) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(errors::NOT_COORDINATOR, &m.member_id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(errors::NOT_COORDINATOR));
            }
        }
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.shift_remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(errors::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(errors::UNKNOWN_MEMBER_ID));
            }
            if let Some(instance) = &m.group_instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    fn after_removal(&mut self, now: i64, cfg: &GroupConfig) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Applies every timeout due at `now`: pending member ids, sessions, the initial delay, the
    /// rebalance timeout and the wait for the leader's SyncGroup.
    pub fn tick(&mut self, now: i64, cfg: &GroupConfig) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| (m.is_new || !m.awaiting()) && m.deadline_ms <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "member session expired");
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.after_removal(now, cfg);
        } else if before != self.pending.len() {
            self.maybe_complete_join(now);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                if self.rebalance_deadline_ms <= now {
                    self.complete_join(now);
                } else {
                    self.maybe_complete_join(now);
                }
            }
            GroupState::CompletingRebalance if self.sync_deadline_ms <= now => {
                // The leader never sent the assignment: drop members that did not sync, start over.
                let silent: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in &silent {
                    self.remove_member(id);
                }
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
            }
            _ => {}
        }
    }

    /// Commits name a member and generation unless they come from outside the group (admin tools
    /// and manually assigned consumers use generation -1 with no member), which only an empty
    /// group accepts (ClassicGroup.validateOffsetCommit). A transactional commit (TxnOffsetCommit)
    /// without member and generation is accepted in any state: its versions before 3 carry
    /// neither; nor does the group's state matter to it (no REBALANCE_IN_PROGRESS).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        transactional: bool,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return errors::COORDINATOR_NOT_AVAILABLE;
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return errors::NONE;
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Err(code) = self.check_member(member_id, instance_id) {
                return code;
            }
            if generation_id != self.generation_id {
                return errors::ILLEGAL_GENERATION;
            }
        } else if !transactional {
            return errors::UNKNOWN_MEMBER_ID;
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return errors::REBALANCE_IN_PROGRESS;
        }
        errors::NONE
    }

    /// Whether the group runs the consumer protocol (protocol type `consumer`; Kafka's
    /// usesConsumerGroupProtocol), as opposed to Connect's or another client's.
    fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some("consumer")
    }

    /// OffsetDelete's check of the group (Kafka's ClassicGroup.validateOffsetDelete): a group of
    /// another protocol type keeps its offsets while it has members (NON_EMPTY_GROUP), as the
    /// broker cannot tell what they use.
    pub fn validate_offset_delete(&self) -> Result<(), i16> {
        match self.state {
            GroupState::Dead => Err(errors::GROUP_ID_NOT_FOUND),
            GroupState::Empty => Ok(()),
            _ if self.uses_consumer_protocol() => Ok(()),
            _ => Err(errors::NON_EMPTY_GROUP),
        }
    }

    /// The topics OffsetDelete keeps the offsets of (Kafka's ClassicGroup.isSubscribedToTopic):
    /// those of the members' ConsumerProtocolSubscription metadata; none when the group is empty
    /// or not a consumer group; `None` (every topic) when a consumer group's subscriptions cannot
    /// be read, as Kafka keeps everything when it does not know them.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.state == GroupState::Empty || !self.uses_consumer_protocol() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_ref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let mut meta = m.metadata(protocol);
            if meta.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            bytes::Buf::advance(&mut meta, 2);
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        }
    }

    fn params(member_id: &str, protocols: &[&str]) -> JoinParams {
        JoinParams {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"meta")))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn now_result<T>(r: Reply<T>) -> T {
        match r {
            Reply::Now(t) => t,
            Reply::Later(_) => panic!("expected an immediate answer"),
        }
    }

    /// SyncGroup as the coordinator runs it: the group record written (`stored`) when the leader's
    /// assignment made the group Stable.
    fn sync_storing(
        g: &mut ClassicGroup,
        stored: Result<(), i16>,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Reply<SyncResult> {
        let before = g.state;
        let reply = g.sync(member_id, instance_id, generation_id, assignments, now);
        if before == GroupState::CompletingRebalance && g.state == GroupState::Stable {
            g.assignment_stored(stored, &[], now, &cfg());
        }
        reply
    }

    fn sync(
        g: &mut ClassicGroup,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Reply<SyncResult> {
        sync_storing(
            g,
            Ok(()),
            member_id,
            instance_id,
            generation_id,
            assignments,
            now,
        )
    }

    fn later<T>(r: Reply<T>) -> oneshot::Receiver<T> {
        match r {
            Reply::Later(rx) => rx,
            Reply::Now(_) => panic!("expected to wait"),
        }
    }

    /// Joins a new member through the MEMBER_ID_REQUIRED round trip; returns its id and receiver.
    fn join_new(g: &mut ClassicGroup, now: i64) -> (String, oneshot::Receiver<JoinResult>) {
        let first = now_result(g.join(params("", &["range"]), now, &cfg()));
        assert_eq!(first.error_code, errors::MEMBER_ID_REQUIRED);
        let rx = later(g.join(params(&first.member_id, &["range"]), now, &cfg()));
        (first.member_id, rx)
    }

    #[test]
    fn single_member_joins_syncs_and_is_stable() {
        let mut g = ClassicGroup::new("g");
        let (id, mut rx) = join_new(&mut g, 0);
        let j = rx.try_recv().unwrap();
        assert_eq!(
            (j.error_code, j.generation_id, j.leader.as_str()),
            (0, 1, id.as_str())
        );
        assert_eq!(j.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let mut s = later(sync(
            &mut g,
            &id,
            None,
            1,
            vec![(id.clone(), Bytes::from_static(b"a"))],
            0,
        ));
        assert_eq!(s.try_recv().unwrap().assignment, Bytes::from_static(b"a"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 1, 1), errors::NONE);
        assert_eq!(g.heartbeat(&id, None, 0, 1), errors::ILLEGAL_GENERATION);
        assert_eq!(g.heartbeat("nobody", None, 1, 1), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn sync_fails_when_the_group_record_cannot_be_written() {
        // Kafka's classicGroupSyncToLeader: a failed write of the group record resets the
        // assignments, fails every waiting SyncGroup with the mapped error and rebalances
        // (issue 11, item 5).
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        let (b, mut rb) = join_new(&mut g, 10);
        let mut ra = later(g.join(params(&a, &["range"]), 12, &cfg()));
        ra.try_recv().unwrap();
        rb.try_recv().unwrap();
        let mut sb = later(sync(&mut g, &b, None, 2, vec![], 13));
        let assignments = vec![(a.clone(), Bytes::from_static(b"A"))];
        let failed = Err(errors::UNKNOWN_SERVER_ERROR);
        let mut sa = later(sync_storing(&mut g, failed, &a, None, 2, assignments, 14));
        assert_eq!(
            sa.try_recv().unwrap().error_code,
            errors::UNKNOWN_SERVER_ERROR
        );
        assert_eq!(
            sb.try_recv().unwrap().error_code,
            errors::UNKNOWN_SERVER_ERROR
        );
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(g.members.values().all(|m| m.assignment.is_empty()));
        assert_eq!(g.heartbeat(&a, None, 2, 15), errors::REBALANCE_IN_PROGRESS);
    }

    #[test]
    fn rebalance_with_two_members() {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        assert_eq!(ra.try_recv().unwrap().generation_id, 1);
        let mut sa = later(sync(&mut g, &a, None, 1, vec![], 0));
        sa.try_recv().unwrap();
        // b joins: a learns of the rebalance through its heartbeat and rejoins.
        let (b, mut rb) = join_new(&mut g, 10);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat(&a, None, 1, 11), errors::REBALANCE_IN_PROGRESS);
        assert!(rb.try_recv().is_err(), "b waits for a");
        let mut ra = later(g.join(params(&a, &["range"]), 12, &cfg()));
        let (ja, jb) = (ra.try_recv().unwrap(), rb.try_recv().unwrap());
        assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
        assert_eq!(ja.leader, a);
        assert_eq!((ja.members.len(), jb.members.len()), (2, 0));
        // Followers wait for the leader's assignment.
        let mut sb = later(sync(&mut g, &b, None, 2, vec![], 13));
        assert!(sb.try_recv().is_err());
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        let mut sa = later(sync(&mut g, &a, None, 2, assignments, 14));
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
        assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from_static(b"B"));
        assert_eq!(g.state, GroupState::Stable);
    }

    #[test]
    fn session_expiry_removes_member_and_rebalances() {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        later(sync(&mut g, &a, None, 1, vec![], 0))
            .try_recv()
            .unwrap();
        g.tick(9_999, &cfg());
        assert_eq!(g.state, GroupState::Stable);
        g.tick(10_001, &cfg());
        assert_eq!(g.state, GroupState::Empty);
        assert!(g.members.is_empty());
        assert_eq!(g.generation_id, 2);
    }

    #[test]
    fn member_that_does_not_rejoin_is_dropped_at_rebalance_timeout() {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        later(sync(&mut g, &a, None, 1, vec![], 0))
            .try_recv()
            .unwrap();
        let (b, mut rb) = join_new(&mut g, 100);
        // a keeps heartbeating but never rejoins; the rebalance completes without it.
        for t in (1000..30_000).step_by(1000) {
            g.heartbeat(&a, None, 1, t);
            g.tick(t, &cfg());
        }
        g.tick(30_101, &cfg());
        let jb = rb.try_recv().unwrap();
        assert_eq!((jb.generation_id, jb.leader.as_str()), (2, b.as_str()));
        assert!(!g.members.contains_key(&a));
    }

    // Kafka (KAFKA-7610): a new member parked in JoinGroup is removed after the new-member join
    // timeout (5 min), not held for the rebalance timeout its client chose.
    #[test]
    fn a_new_member_parked_in_join_expires_after_the_new_member_timeout() {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        later(sync(&mut g, &a, None, 1, vec![], 0))
            .try_recv()
            .unwrap();
        // A JoinGroup v3 (no KIP-394 round trip) with a day-long rebalance timeout; a heartbeats
        // on but never rejoins, so the rebalance would wait the whole day.
        let mut p = params("", &["range"]);
        p.require_known_member_id = false;
        p.rebalance_timeout_ms = 86_400_000;
        let mut rb = later(g.join(p, 100, &cfg()));
        let b = g.members.keys().find(|id| **id != a).unwrap().clone();
        let mut t = 100;
        while t < 100 + NEW_MEMBER_JOIN_TIMEOUT_MS {
            t += 5_000;
            g.heartbeat(&a, None, 1, t);
            g.tick(t, &cfg());
        }
        assert!(!g.members.contains_key(&b), "the new member is still held");
        assert_eq!(rb.try_recv().unwrap().error_code, errors::UNKNOWN_MEMBER_ID);
        assert!(g.members.contains_key(&a));
    }

    #[test]
    fn initial_delay_waits_for_more_members() {
        let cfg = GroupConfig {
            initial_rebalance_delay_ms: 3000,
            ..GroupConfig::default()
        };
        let mut g = ClassicGroup::new("g");
        let first = now_result(g.join(params("", &["range"]), 0, &cfg));
        let mut ra = later(g.join(params(&first.member_id, &["range"]), 0, &cfg));
        g.tick(2000, &cfg);
        assert!(ra.try_recv().is_err());
        let second = now_result(g.join(params("", &["range"]), 2500, &cfg));
        let mut rb = later(g.join(params(&second.member_id, &["range"]), 2500, &cfg));
        g.tick(3100, &cfg);
        assert!(
            ra.try_recv().is_err(),
            "the delay was pushed back by the second member"
        );
        g.tick(5600, &cfg);
        assert_eq!(ra.try_recv().unwrap().generation_id, 1);
        assert_eq!(rb.try_recv().unwrap().generation_id, 1);
    }

    #[test]
    fn protocol_errors() {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        let mut other = params("", &["roundrobin"]);
        assert_eq!(
            now_result(g.join(other.clone(), 1, &cfg())).error_code,
            errors::INCONSISTENT_GROUP_PROTOCOL
        );
        other.protocols = vec![("range".into(), Bytes::new())];
        other.protocol_type = "connect".into();
        assert_eq!(
            now_result(g.join(other, 1, &cfg())).error_code,
            errors::INCONSISTENT_GROUP_PROTOCOL
        );
        let mut short = params("", &["range"]);
        short.session_timeout_ms = 10;
        assert_eq!(
            now_result(g.join(short, 1, &cfg())).error_code,
            errors::INVALID_SESSION_TIMEOUT
        );
        assert_eq!(
            now_result(g.join(params("ghost", &["range"]), 1, &cfg())).error_code,
            errors::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            now_result(sync(&mut g, &a, None, 7, vec![], 1)).error_code,
            errors::ILLEGAL_GENERATION
        );
        let full = GroupConfig {
            max_size: 1,
            ..cfg()
        };
        assert_eq!(
            now_result(g.join(params("", &["range"]), 1, &full)).error_code,
            errors::GROUP_MAX_SIZE_REACHED
        );
    }

    #[test]
    fn protocol_selection_prefers_the_common_favourite() {
        let mut g = ClassicGroup::new("g");
        let a = now_result(g.join(params("", &["cooperative-sticky", "range"]), 0, &cfg()));
        let _ra = later(g.join(
            params(&a.member_id, &["cooperative-sticky", "range"]),
            0,
            &cfg(),
        ));
        assert_eq!(g.protocol_name.as_deref(), Some("cooperative-sticky"));
    }

    #[test]
    fn leave_empties_the_group() {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        later(sync(&mut g, &a, None, 1, vec![], 0))
            .try_recv()
            .unwrap();
        assert_eq!(g.leave(&a, None, 5, &cfg()), errors::NONE);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.leave(&a, None, 5, &cfg()), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn static_member_returns_without_rebalance_and_old_id_is_fenced() {
        let mut g = ClassicGroup::new("g");
        let mut p = params("", &["range"]);
        p.group_instance_id = Some("i1".into());
        let mut r1 = later(g.join(p.clone(), 0, &cfg()));
        let j1 = r1.try_recv().unwrap();
        let old = j1.member_id.clone();
        later(sync(
            &mut g,
            &old,
            Some("i1"),
            1,
            vec![(old.clone(), Bytes::from_static(b"A"))],
            0,
        ))
        .try_recv()
        .unwrap();
        // Restart: same instance id, no member id.
        let j2 = now_result(g.join(p, 100, &cfg()));
        assert_eq!((j2.error_code, j2.generation_id), (errors::NONE, 1));
        assert_ne!(j2.member_id, old);
        assert_eq!(g.state, GroupState::Stable);
        let s = now_result(sync(&mut g, &j2.member_id, Some("i1"), 1, vec![], 101));
        assert_eq!(s.assignment, Bytes::from_static(b"A"));
        assert_eq!(
            g.heartbeat(&old, Some("i1"), 1, 102),
            errors::FENCED_INSTANCE_ID
        );
    }

    #[test]
    fn offset_commit_validation() {
        let mut g = ClassicGroup::new("g");
        assert_eq!(g.validate_offset_commit("", None, -1, false), errors::NONE);
        let (a, mut ra) = join_new(&mut g, 0);
        ra.try_recv().unwrap();
        assert_eq!(
            g.validate_offset_commit(&a, None, 1, false),
            errors::REBALANCE_IN_PROGRESS
        );
        // Kafka's ClassicGroup.validateOffsetCommit: the group's state does not matter to a
        // transactional commit.
        assert_eq!(g.validate_offset_commit(&a, None, 1, true), errors::NONE);
        later(sync(&mut g, &a, None, 1, vec![], 0))
            .try_recv()
            .unwrap();
        assert_eq!(g.validate_offset_commit(&a, None, 1, false), errors::NONE);
        for transactional in [false, true] {
            assert_eq!(
                g.validate_offset_commit(&a, None, 0, transactional),
                errors::ILLEGAL_GENERATION
            );
            assert_eq!(
                g.validate_offset_commit("nope", None, 1, transactional),
                errors::UNKNOWN_MEMBER_ID
            );
        }
        assert_eq!(
            g.validate_offset_commit("", None, -1, false),
            errors::UNKNOWN_MEMBER_ID
        );
        // TxnOffsetCommit v0-2 carries no member: accepted while the group has members.
        assert_eq!(g.validate_offset_commit("", None, -1, true), errors::NONE);
    }
}
