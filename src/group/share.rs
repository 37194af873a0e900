//! One share group (KIP-932) under the ShareGroupHeartbeat protocol, after Kafka's `ShareGroup`
//! and the share parts of its `GroupMetadataManager`.
//!
//! - A member joins with epoch 0 and its subscribed topics (its member id is its own, a UUID the
//!   client makes), leaves with epoch -1, and otherwise heartbeats with its current epoch (or the
//!   previous one, when an answer was lost); other epochs are fenced (FENCED_MEMBER_EPOCH), and
//!   an unknown member gets UNKNOWN_MEMBER_ID.
//! - The group epoch moves whenever membership, a subscription or a subscribed topic's partition
//!   count changes. Partitions are shared, never revoked, so a member takes the new assignment
//!   and the group epoch at once: there is no reconciliation, and the group is Empty or Stable.
//! - The assignment gives every member every partition of the topics it subscribes to. Kafka's
//!   `SimpleAssignor` spreads partitions across members when there are more partitions than
//!   members; giving each member all of them serves the same records (the share-partitions lock
//!   each record for one member), at the cost of more fetches.
//! - Members expire after group.share.session.timeout.ms without a heartbeat.
//!
//! Plain state: every method takes `now` and the topic metadata it needs, nothing blocks.

use std::collections::BTreeMap;

use bytes::Bytes;
use indexmap::IndexMap;

use super::consumer::{topics_metadata, Assignment, TopicSource, TopicsMetadata};
use super::consumer_records as rec;
use super::share_records::{self as srec, StoredShareCurrent, StoredShareGroup, StoredShareMember};
use crate::protocol::errors;

/// The epoch a member leaves with.
pub const LEAVE_EPOCH: i32 = -1;

/// The share-group broker settings, under Kafka's names.
#[derive(Debug, Clone, Copy)]
pub struct ShareGroupConfig {
    /// group.share.session.timeout.ms
    pub session_timeout_ms: i64,
    /// group.share.heartbeat.interval.ms
    pub heartbeat_interval_ms: i32,
    /// group.share.max.size
    pub max_size: usize,
}

impl Default for ShareGroupConfig {
    /// Kafka 4.4's defaults.
    fn default() -> Self {
        ShareGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
        }
    }
}

/// One ShareGroupHeartbeat request, as the group needs it.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareHeartbeatResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None` when the answer leaves the member's assignment as it was.
    pub assignment: Option<Assignment>,
}

impl ShareHeartbeatResult {
    pub fn error(code: i16, message: impl Into<String>) -> ShareHeartbeatResult {
        ShareHeartbeatResult {
            error_code: code,
            error_message: Some(message.into()),
            ..ShareHeartbeatResult::default()
        }
    }
}

/// GroupCoordinatorService.throwIfShareGroupHeartbeatRequestIsInvalid: the checks made before
/// the group is looked at, with Kafka's INVALID_REQUEST messages.
pub fn validate_heartbeat(group_id: &str, hb: &ShareHeartbeat) -> Result<(), &'static str> {
    if hb.member_id.trim().is_empty() {
        return Err("MemberId can't be empty.");
    }
    if group_id.trim().is_empty() {
        return Err("GroupId can't be empty.");
    }
    if hb.rack_id.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err("RackId can't be empty.");
    }
    if hb.member_epoch == 0 {
        if hb
            .subscribed_topic_names
            .as_ref()
            .is_none_or(|t| t.is_empty())
        {
            return Err("SubscribedTopicNames must be set in first request.");
        }
    } else if hb.member_epoch < LEAVE_EPOCH {
        return Err("MemberEpoch is invalid.");
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShareMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assignment: Assignment,
    /// When the session expires without a heartbeat.
    pub deadline_ms: i64,
}

#[derive(Debug, Clone)]
pub struct ShareGroup {
    pub group_id: String,
    pub group_epoch: i32,
    /// The group epoch the assignment was last computed for.
    pub assignment_epoch: i32,
    pub members: IndexMap<String, ShareMember>,
    /// The subscribed topics' metadata the assignment was computed from.
    topics: TopicsMetadata,
}

impl ShareGroup {
    pub fn new(group_id: &str) -> ShareGroup {
        ShareGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: IndexMap::new(),
            topics: TopicsMetadata::new(),
        }
    }

    /// Kafka's ShareGroupState as ListGroups and ShareGroupDescribe name it.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> std::collections::BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().cloned())
            .collect()
    }

    /// One heartbeat (not a leave: see `leave`). The caller checked `validate_heartbeat`.
    pub fn heartbeat(
        &mut self,
        hb: ShareHeartbeat,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &ShareGroupConfig,
    ) -> ShareHeartbeatResult {
        let joining = hb.member_epoch == 0;
        if !self.members.contains_key(&hb.member_id) {
            if !joining {
                return ShareHeartbeatResult::error(
                    errors::UNKNOWN_MEMBER_ID,
                    format!(
                        "Member {} is not a member of group {}.",
                        hb.member_id, self.group_id
                    ),
                );
            }
            if self.members.len() >= cfg.max_size {
                return ShareHeartbeatResult::error(
                    errors::GROUP_MAX_SIZE_REACHED,
                    format!(
                        "The share group has reached its maximum capacity of {} members.",
                        cfg.max_size
                    ),
                );
            }
        }
        if let Some(m) = self.members.get(&hb.member_id) {
            if let Err(message) = check_epoch(m, hb.member_epoch) {
                return ShareHeartbeatResult::error(errors::FENCED_MEMBER_EPOCH, message);
            }
        }
        let full_request = hb.subscribed_topic_names.is_some();
        let member = self
            .members
            .entry(hb.member_id.clone())
            .or_insert_with(|| ShareMember {
                member_id: hb.member_id.clone(),
                member_epoch: 0,
                previous_member_epoch: 0,
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                subscribed_topic_names: Vec::new(),
                assignment: Assignment::new(),
                deadline_ms: 0,
            });
        member.client_id = hb.client_id;
        member.client_host = hb.client_host;
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id;
        }
        member.deadline_ms = now.saturating_add(cfg.session_timeout_ms);
        let mut bump = joining && member.member_epoch == 0;
        if let Some(mut names) = hb.subscribed_topic_names {
            names.sort_unstable();
            names.dedup();
            if names != member.subscribed_topic_names {
                member.subscribed_topic_names = names;
                bump = true;
            }
        }
        let before = member.assignment.clone();
        if self.refresh_topics(topics) {
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
        }
        if self.assignment_epoch < self.group_epoch {
            self.assign();
        }
        let epoch = self.assignment_epoch;
        let interval = cfg.heartbeat_interval_ms;
        let Some(m) = self.members.get_mut(&hb.member_id) else {
            return ShareHeartbeatResult::error(errors::UNKNOWN_SERVER_ERROR, "member vanished");
        };
        if m.member_epoch != epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = epoch;
        }
        let changed = m.assignment != before;
        ShareHeartbeatResult {
            error_code: errors::NONE,
            error_message: None,
            member_id: m.member_id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: (joining || full_request || changed).then(|| m.assignment.clone()),
        }
    }

    /// A member leaves (epoch -1): UNKNOWN_MEMBER_ID if it is not one.
    pub fn leave(&mut self, member_id: &str) -> ShareHeartbeatResult {
        if self.members.shift_remove(member_id).is_none() {
            return ShareHeartbeatResult::error(
                errors::UNKNOWN_MEMBER_ID,
                format!(
                    "Member {member_id} is not a member of group {}.",
                    self.group_id
                ),
            );
        }
        self.group_epoch += 1;
        self.assign();
        ShareHeartbeatResult {
            member_id: member_id.to_string(),
            member_epoch: LEAVE_EPOCH,
            ..ShareHeartbeatResult::default()
        }
    }

    /// Whether some member's session expired by `now`.
    pub fn has_expired(&self, now: i64) -> bool {
        self.members.values().any(|m| m.deadline_ms <= now)
    }

    /// Removes the members whose session expired by `now`; their ids, so their share sessions
    /// can release what they hold.
    pub fn expire(&mut self, now: i64) -> Vec<String> {
        let expired = super::expired_members(&self.members, now, |m| m.deadline_ms);
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "share group member session expired");
            self.leave(id);
        }
        expired
    }

    /// The whole group as Kafka's share-group records (`share_records`), by key; the shard
    /// writes those that differ from what it wrote last.
    pub fn records(&self) -> BTreeMap<Bytes, Bytes> {
        let g = &self.group_id;
        let mut out = BTreeMap::new();
        out.insert(
            rec::group_key(srec::LAYOUT.group_metadata, g),
            srec::group_metadata_value(self.group_epoch),
        );
        out.insert(
            rec::group_key(srec::LAYOUT.target_metadata, g),
            srec::target_metadata_value(self.assignment_epoch),
        );
        for m in self.members.values() {
            let id = &m.member_id;
            let stored = StoredShareMember {
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.clone(),
            };
            out.insert(
                rec::member_key(srec::LAYOUT.member_metadata, g, id),
                srec::member_value(&stored),
            );
            out.insert(
                rec::member_key(srec::LAYOUT.target_member, g, id),
                rec::target_member_value(&m.assignment),
            );
            let current = StoredShareCurrent {
                member_epoch: m.member_epoch,
                previous_member_epoch: m.previous_member_epoch,
                assigned: m.assignment.clone(),
            };
            out.insert(
                rec::member_key(srec::LAYOUT.current_assignment, g, id),
                srec::current_assignment_value(&current),
            );
        }
        out
    }

    /// Rebuilds a group from its replayed records; members get a fresh session from `now`, as
    /// Kafka arms session timers when it loads a group.
    pub fn restore(
        group_id: &str,
        stored: StoredShareGroup,
        topics: &dyn TopicSource,
        now: i64,
        cfg: &ShareGroupConfig,
    ) -> ShareGroup {
        let mut g = ShareGroup::new(group_id);
        g.group_epoch = stored.group_epoch;
        g.assignment_epoch = stored.target_epoch;
        for (id, m) in stored.members {
            let cur = stored.current.get(&id).cloned().unwrap_or_default();
            let member = ShareMember {
                member_id: id.clone(),
                member_epoch: cur.member_epoch,
                previous_member_epoch: cur.previous_member_epoch,
                rack_id: m.rack_id,
                client_id: m.client_id,
                client_host: m.client_host,
                subscribed_topic_names: m.subscribed_topic_names,
                assignment: cur.assigned,
                deadline_ms: now.saturating_add(cfg.session_timeout_ms),
            };
            g.members.insert(id, member);
        }
        // The assignment was computed from these topics; resolving them does not move the epoch.
        g.refresh_topics(topics);
        g
    }

    /// The subscribed topics' metadata, fresh from the cluster; true if it changed.
    fn refresh_topics(&mut self, topics: &dyn TopicSource) -> bool {
        let fresh = topics_metadata(self.subscribed_topics(), topics);
        let changed = fresh != self.topics;
        self.topics = fresh;
        changed
    }

    /// Every member gets every partition of the topics it subscribes to.
    fn assign(&mut self) {
        for m in self.members.values_mut() {
            m.assignment = m
                .subscribed_topic_names
                .iter()
                .filter_map(|n| self.topics.get(n))
                .flat_map(|&(id, partitions)| (0..partitions).map(move |p| (id, p)))
                .collect();
        }
        self.assignment_epoch = self.group_epoch;
    }
}

/// ShareGroup's member epoch check: the current epoch, or the previous one (its answer may have
/// been lost); anything else is fenced, with Kafka's messages.
fn check_epoch(m: &ShareMember, received: i32) -> Result<(), String> {
    if received == 0 {
        return Ok(());
    }
    if received > m.member_epoch {
        return Err(format!(
            "The share group member has a greater member epoch ({received}) than the one known \
             by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
            m.member_epoch
        ));
    }
    if received < m.member_epoch && received != m.previous_member_epoch {
        return Err(format!(
            "The share group member has a smaller member epoch ({received}) than the one known \
             by the group coordinator ({}), and it does not match the previous member epoch ({}). \
             The member must abandon all its partitions and rejoin.",
            m.member_epoch, m.previous_member_epoch
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    /// Topics by name: (id, partition count); see the map's TopicSource in `consumer`.
    type Topics = BTreeMap<String, (Uuid, i32)>;

    const T1: Uuid = Uuid::from_u128(1);
    const T2: Uuid = Uuid::from_u128(2);

    fn topics(t1_partitions: i32) -> Topics {
        BTreeMap::from([
            ("t1".to_string(), (T1, t1_partitions)),
            ("t2".to_string(), (T2, 1)),
        ])
    }

    fn hb(member: &str, epoch: i32, subscribed: Option<&[&str]>) -> ShareHeartbeat {
        ShareHeartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            subscribed_topic_names: subscribed.map(|s| s.iter().map(|t| t.to_string()).collect()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..ShareHeartbeat::default()
        }
    }

    const CFG: ShareGroupConfig = ShareGroupConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        max_size: 2,
    };

    fn parts(list: &[(Uuid, i32)]) -> Option<Assignment> {
        Some(list.iter().copied().collect())
    }

    #[test]
    fn members_share_every_subscribed_partition() {
        let mut g = ShareGroup::new("g");
        let t = topics(2);
        let a = g.heartbeat(hb("a", 0, Some(&["t1"])), &t, 0, &CFG);
        assert_eq!((a.error_code, a.member_epoch), (0, 1));
        assert_eq!(a.heartbeat_interval_ms, 5_000);
        assert_eq!(a.assignment, parts(&[(T1, 0), (T1, 1)]));
        assert_eq!(g.state(), "Stable");
        let b = g.heartbeat(hb("b", 0, Some(&["t1", "t2"])), &t, 0, &CFG);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(b.assignment, parts(&[(T1, 0), (T1, 1), (T2, 0)]));
        // a's next heartbeat: same partitions (nothing sent), the new epoch.
        let a = g.heartbeat(hb("a", 1, None), &t, 1, &CFG);
        assert_eq!((a.member_epoch, a.assignment), (2, None));
        // A new partition reaches both.
        let a = g.heartbeat(hb("a", 2, None), &topics(3), 2, &CFG);
        assert_eq!(a.member_epoch, 3);
        assert_eq!(a.assignment, parts(&[(T1, 0), (T1, 1), (T1, 2)]));
    }

    #[test]
    fn epochs_are_checked_as_kafka_does() {
        let mut g = ShareGroup::new("g");
        let t = topics(1);
        g.heartbeat(hb("a", 0, Some(&["t1"])), &t, 0, &CFG);
        g.heartbeat(hb("b", 0, Some(&["t1"])), &t, 0, &CFG);
        g.heartbeat(hb("a", 1, None), &t, 0, &CFG); // a: epoch 2, previous 1
        let unknown = g.heartbeat(hb("ghost", 3, None), &t, 0, &CFG);
        assert_eq!(unknown.error_code, errors::UNKNOWN_MEMBER_ID);
        let ahead = g.heartbeat(hb("a", 7, None), &t, 0, &CFG);
        assert_eq!(ahead.error_code, errors::FENCED_MEMBER_EPOCH);
        assert!(ahead
            .error_message
            .unwrap()
            .contains("greater member epoch (7)"));
        // The previous epoch is accepted (a lost answer), an older one is fenced.
        assert_eq!(g.heartbeat(hb("a", 1, None), &t, 0, &CFG).error_code, 0);
        // b joined at epoch 2, after epoch 1: it never had epoch 1.
        assert_eq!(
            g.heartbeat(hb("b", 1, None), &t, 0, &CFG).error_code,
            errors::FENCED_MEMBER_EPOCH
        );
        g.leave("b");
        assert_eq!(
            g.heartbeat(hb("a", 1, None), &t, 0, &CFG).error_code,
            errors::NONE
        );
        g.heartbeat(hb("a", 2, None), &t, 0, &CFG); // a: epoch 3, previous 2
        assert_eq!(
            g.heartbeat(hb("a", 1, None), &t, 0, &CFG).error_code,
            errors::FENCED_MEMBER_EPOCH
        );
        // Full group.
        g.heartbeat(hb("b", 0, Some(&["t1"])), &t, 0, &CFG);
        let c = g.heartbeat(hb("c", 0, Some(&["t1"])), &t, 0, &CFG);
        assert_eq!(c.error_code, errors::GROUP_MAX_SIZE_REACHED);
    }

    #[test]
    fn leaving_and_expiring_remove_the_member() {
        let mut g = ShareGroup::new("g");
        let t = topics(1);
        g.heartbeat(hb("a", 0, Some(&["t1"])), &t, 0, &CFG);
        g.heartbeat(hb("b", 0, Some(&["t1"])), &t, 40_000, &CFG);
        let left = g.leave("a");
        assert_eq!((left.error_code, left.member_epoch), (0, LEAVE_EPOCH));
        assert_eq!(g.leave("a").error_code, errors::UNKNOWN_MEMBER_ID);
        assert_eq!(g.group_epoch, 3);
        assert!(g.expire(84_999).is_empty());
        assert_eq!(g.expire(85_000), vec!["b".to_string()]);
        assert_eq!(g.state(), "Empty");
    }

    #[test]
    fn the_group_comes_back_from_its_records() {
        let mut g = ShareGroup::new("g");
        let t = topics(2);
        g.heartbeat(hb("a", 0, Some(&["t1"])), &t, 0, &CFG);
        let mut b = hb("b", 0, Some(&["t2", "t1"]));
        b.rack_id = Some("r1".into());
        g.heartbeat(b, &t, 0, &CFG);
        g.heartbeat(hb("a", 1, None), &t, 0, &CFG);
        // Replay every record as the shard would at load.
        let mut stored = StoredShareGroup::default();
        for (k, v) in g.records() {
            let (group, r) = srec::decode(&k, Some(&v)).unwrap();
            assert_eq!(group, "g");
            assert!(stored.apply(r));
        }
        let back = ShareGroup::restore("g", stored, &t, 100, &CFG);
        assert_eq!((back.group_epoch, back.assignment_epoch), (2, 2));
        assert_eq!(back.members.len(), 2);
        for (id, m) in &g.members {
            let r = &back.members[id];
            assert_eq!(
                (&r.subscribed_topic_names, &r.assignment, r.member_epoch),
                (&m.subscribed_topic_names, &m.assignment, m.member_epoch)
            );
            assert_eq!(r.previous_member_epoch, m.previous_member_epoch);
            assert_eq!(r.rack_id, m.rack_id);
            assert_eq!(r.deadline_ms, 100 + CFG.session_timeout_ms);
        }
        // Loading does not move the epoch: the next heartbeat finds nothing changed.
        let mut back = back;
        let a = back.heartbeat(hb("a", 2, None), &t, 200, &CFG);
        assert_eq!((a.error_code, a.member_epoch, a.assignment), (0, 2, None));
        assert_eq!(back.records(), g.records());
    }

    #[test]
    fn bad_heartbeats_are_invalid_requests() {
        let ok = hb("a", 0, Some(&["t1"]));
        assert_eq!(validate_heartbeat("g", &ok), Ok(()));
        assert!(validate_heartbeat("", &ok).is_err());
        assert!(validate_heartbeat("g", &hb("", 0, Some(&["t1"]))).is_err());
        assert_eq!(
            validate_heartbeat("g", &hb("a", 0, None)),
            Err("SubscribedTopicNames must be set in first request.")
        );
        assert!(validate_heartbeat("g", &hb("a", 0, Some(&[]))).is_err());
        assert_eq!(
            validate_heartbeat("g", &hb("a", -2, None)),
            Err("MemberEpoch is invalid.")
        );
        let mut rack = hb("a", 3, None);
        rack.rack_id = Some(" ".into());
        assert!(validate_heartbeat("g", &rack).is_err());
        assert_eq!(validate_heartbeat("g", &hb("a", -1, None)), Ok(()));
    }
}
