//! Leader elections and ISR changes, as Kafka's controller makes them (the part of
//! `PartitionChangeBuilder` and of `ReplicationControlManager`'s broker handlers that gregor
//! needs; no eligible leader replicas). Sans-IO: each function reads an image and returns the
//! metadata records to commit; the catalog commits them and replays them. Every change goes
//! through `build_change`, which also completes a partition reassignment (`reassignment`) once
//! its new replicas are in sync.
//!
//! - A broker that stops is fenced (`broker_fenced`): it leaves every ISR, and each partition it
//!   led elects the first replica (in replica order) that is in the new ISR and on a live broker,
//!   or has no leader (-1, offline) when there is none; the ISR of such a partition keeps its last
//!   member, as Kafka keeps it, so that the partition comes back clean with that broker.
//! - A broker that comes back (`broker_unfenced`) leads the leaderless partitions it is in the
//!   ISR of; then every live replica of a partition that has a leader is back in its ISR (at
//!   once: one copy of the data serves every replica, so a replica is caught up as soon as it is
//!   up; Kafka's leader adds it by AlterPartition once it has fetched up to the high watermark),
//!   and, under auto.leader.rebalance.enable, the preferred
//!   replica (the first) takes the lead back where it is in sync (Kafka's controller does that
//!   every leader.imbalance.check.interval.seconds; gregor at once, so tests need not wait).
//! - unclean.leader.election.enable lets a live replica outside the ISR lead an offline
//!   partition; its ISR becomes that replica alone.
//! - ElectLeaders (`elect_leader`) runs a preferred or an unclean election of one partition.
//!
//! A new leader bumps the leader epoch (`PartitionRegistration::merge`); ISR changes alone do not
//! at metadata.version 3.6-IV2 (Kafka bumps on shrinks only before 3.6, KAFKA-15021).

use std::sync::Arc;

use uuid::Uuid;

use super::image::{replay_all, MetadataImage, PartitionRegistration, ReplayError, TopicImage};
use super::records::{
    MetadataRecord, PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE, RESOURCE_TOPIC,
};

/// The topic config (and broker default) that allows unclean elections.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// Kafka's PartitionChangeBuilder.Election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// Keep a valid leader, else the first valid replica.
    Online,
    /// The first replica when valid, else as `Online`.
    Preferred,
    /// As `Online`, then any live replica even outside the ISR.
    Unclean,
}

/// The broker settings elections follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionPolicy {
    /// auto.leader.rebalance.enable (Kafka's default: true).
    pub auto_leader_rebalance: bool,
    /// unclean.leader.election.enable, the broker default a topic config overrides (false).
    pub unclean_default: bool,
    /// The partitions' data is replicated between processes (a quorum): a replica rejoins an
    /// ISR only through its leader's AlterPartition once it has caught up, never because its
    /// broker came back. Without it (one copy of the data under every broker of one process) a
    /// live replica is in sync at once (`rejoin_isrs`).
    pub isr_by_leaders: bool,
}

impl Default for ElectionPolicy {
    fn default() -> Self {
        ElectionPolicy {
            auto_leader_rebalance: true,
            unclean_default: false,
            isr_by_leaders: false,
        }
    }
}

impl ElectionPolicy {
    /// Unclean elections are allowed for this topic (its override, else the broker default).
    pub fn unclean(&self, image: &MetadataImage, topic: &str) -> bool {
        image
            .configs
            .get(&(RESOURCE_TOPIC, topic.to_string()))
            .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION_ENABLE))
            .map_or(self.unclean_default, |v| v.eq_ignore_ascii_case("true"))
    }

    fn election_for(&self, image: &MetadataImage, topic: &str) -> Election {
        match self.unclean(image, topic) {
            true => Election::Unclean,
            false => Election::Online,
        }
    }
}

/// A broker that may lead: registered, unfenced and not shutting down (Kafka's
/// ClusterControlManager.isActive).
pub fn is_active(image: &MetadataImage, id: i32) -> bool {
    image
        .brokers
        .get(&id)
        .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
}

/// What a change of one partition aims for (the targets of Kafka's PartitionChangeBuilder);
/// `ChangeTarget::of` starts from the partition as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeTarget {
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
    pub removing: Vec<i32>,
    pub adding: Vec<i32>,
    pub election: Election,
}

impl ChangeTarget {
    /// The partition's own replicas, ISR and reassignment, with an online election.
    pub fn of(reg: &PartitionRegistration) -> Self {
        ChangeTarget {
            isr: reg.isr.clone(),
            replicas: reg.replicas.clone(),
            removing: reg.removing_replicas.clone(),
            adding: reg.adding_replicas.clone(),
            election: Election::Online,
        }
    }

    /// PartitionReassignmentReplicas.maybeCompleteReassignment: a reassignment whose target
    /// replicas are all in the ISR (and that keeps some ISR member) ends; the replicas it
    /// removes leave both lists.
    fn complete_reassignment(&mut self) {
        if self.removing.is_empty() && self.adding.is_empty() {
            return;
        }
        let (isr, replicas) = (
            without(&self.isr, &self.removing),
            without(&self.replicas, &self.removing),
        );
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return;
        }
        self.isr = isr;
        self.replicas = replicas;
        self.removing.clear();
        self.adding.clear();
    }
}

/// `list` in order, less the brokers in `gone`.
pub fn without(list: &[i32], gone: &[i32]) -> Vec<i32> {
    list.iter().copied().filter(|r| !gone.contains(r)).collect()
}

/// The change one partition needs to reach `target_isr` with a leader chosen by `election`
/// among the replicas `acceptable` allows; `None` when nothing changes.
pub fn partition_change(
    id: (Uuid, i32),
    reg: &PartitionRegistration,
    target_isr: Vec<i32>,
    election: Election,
    acceptable: &dyn Fn(i32) -> bool,
) -> Option<PartitionChangeRecord> {
    let target = ChangeTarget {
        isr: target_isr,
        election,
        ..ChangeTarget::of(reg)
    };
    build_change(id, reg, target, acceptable)
}

/// The record that takes one partition to `target` (PartitionChangeBuilder.build): a
/// reassignment whose new replicas are all in sync completes first, then the leader is elected
/// among the target replicas; a replica list that loses a replica bumps the leader epoch even
/// when the leader stays; only what differs from the partition is set. `None` when nothing does.
pub fn build_change(
    (topic_id, partition): (Uuid, i32),
    reg: &PartitionRegistration,
    mut target: ChangeTarget,
    acceptable: &dyn Fn(i32) -> bool,
) -> Option<PartitionChangeRecord> {
    target.complete_reassignment();
    let mut change = PartitionChangeRecord::new(topic_id, partition);
    let (leader, unclean) = elect(reg, &target, acceptable);
    if leader != reg.leader {
        change.leader = leader;
        if unclean {
            // An unclean leader is the whole ISR (Kafka: "This can result in data loss!"; here
            // it cannot, one copy of the data serves every replica).
            change.isr = Some(vec![leader]);
        }
    }
    // triggerLeaderEpochBumpForReplicaReassignmentIfNeeded: a replica that leaves must not
    // be able to act on the old epoch, so the leader is "elected" again.
    if change.leader == NO_LEADER_CHANGE
        && !reg.replicas.iter().all(|r| target.replicas.contains(r))
    {
        change.leader = reg.leader;
    }
    // Without eligible leader replicas the ISR never becomes empty: its last member stays.
    if change.isr.is_none() && !target.isr.is_empty() && target.isr != reg.isr {
        change.isr = Some(target.isr);
    }
    if !target.replicas.is_empty() && target.replicas != reg.replicas {
        change.replicas = Some(target.replicas);
    }
    if target.removing != reg.removing_replicas {
        change.removing_replicas = Some(target.removing);
    }
    if target.adding != reg.adding_replicas {
        change.adding_replicas = Some(target.adding);
    }
    let unchanged = change == PartitionChangeRecord::new(topic_id, partition);
    (!unchanged).then_some(change)
}

/// The leader the target's election picks among its replicas, and whether the pick is unclean
/// (electPreferredLeader / electAnyLeader).
fn elect(
    reg: &PartitionRegistration,
    target: &ChangeTarget,
    acceptable: &dyn Fn(i32) -> bool,
) -> (i32, bool) {
    let valid = |r: i32| target.isr.contains(&r) && acceptable(r);
    if target.election == Election::Preferred {
        if let Some(&preferred) = target.replicas.first().filter(|&&r| valid(r)) {
            return (preferred, false);
        }
    }
    if valid(reg.leader) {
        return (reg.leader, false);
    }
    if let Some(&r) = target.replicas.iter().find(|&&r| valid(r)) {
        return (r, false);
    }
    if target.election == Election::Unclean {
        if let Some(&r) = target.replicas.iter().find(|&&r| acceptable(r)) {
            return (r, true);
        }
    }
    (NO_LEADER, false)
}

/// Every partition of the image, topics by name, partitions in order.
fn partitions(
    image: &MetadataImage,
) -> impl Iterator<Item = (&TopicImage, i32, &PartitionRegistration)> {
    image.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |(&p, reg)| (t.as_ref(), p, reg))
    })
}

/// `f`'s change of every partition it names, as records.
fn changes(
    image: &MetadataImage,
    mut f: impl FnMut(&TopicImage, i32, &PartitionRegistration) -> Option<PartitionChangeRecord>,
) -> Vec<MetadataRecord> {
    partitions(image)
        .filter_map(|(t, p, reg)| f(t, p, reg))
        .map(MetadataRecord::PartitionChange)
        .collect()
}

/// Broker `id` leaves the ISR of every partition it is in, and leaders are elected where it led
/// (ReplicationControlManager.generateLeaderAndIsrUpdates with it as brokerToRemove): the
/// changes of a fence and of a controlled shutdown alike. A partition whose only ISR member it
/// is keeps that member and has no leader (it may not lead), as in Kafka.
fn leave_isrs(image: &MetadataImage, id: i32, policy: &ElectionPolicy) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != id && is_active(image, r);
    changes(image, |t, p, reg| {
        if !reg.isr.contains(&id) {
            return None;
        }
        let target: Vec<i32> = reg.isr.iter().copied().filter(|&r| r != id).collect();
        let election = policy.election_for(image, &t.name);
        partition_change((t.id, p), reg, target, election, &acceptable)
    })
}

/// Whether broker `id` leads some partition (BrokersToIsrs.hasLeaderships): a broker in
/// controlled shutdown may stop once it leads nothing.
pub fn has_leaderships(image: &MetadataImage, id: i32) -> bool {
    partitions(image).any(|(_, _, reg)| reg.leader == id)
}

/// ReplicationControlManager.handleBrokerInControlledShutdown: the BrokerRegistrationChangeRecord
/// that puts broker `id` in controlled shutdown (unless it is already), then its leaderships and
/// ISR memberships end as a fence ends them (`leave_isrs`), while it still serves: its clients
/// move to the new leaders before it stops.
pub fn broker_in_controlled_shutdown(
    image: &MetadataImage,
    id: i32,
    policy: &ElectionPolicy,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    if let Some(b) = image.brokers.get(&id).filter(|b| !b.in_controlled_shutdown) {
        out.push(registration_change(b, 0, 1));
    }
    out.extend(leave_isrs(image, id, policy));
    out
}

/// ReplicationControlManager.handleBrokerFenced: broker `id` leaves the ISR of every partition
/// it is in, leaders are elected where it led (`leave_isrs`), then the
/// BrokerRegistrationChangeRecord that fences it (Kafka's record for it from 3.3-IV2 on).
pub fn broker_fenced(
    image: &MetadataImage,
    id: i32,
    policy: &ElectionPolicy,
) -> Vec<MetadataRecord> {
    let mut out = leave_isrs(image, id, policy);
    if let Some(b) = image.brokers.get(&id).filter(|b| !b.fenced) {
        out.push(registration_change(b, 1, 0));
    }
    out
}

/// ReplicationControlManager.handleBrokerUncleanShutdown: a new incarnation of broker `id`
/// registers, so its earlier one stopped without a word; that one's leaderships and ISR
/// memberships end (`leave_isrs`) in the registration's batch. Kafka's controller adds these
/// records from the metadata.version with eligible leader replicas on, and before that refuses
/// a new incarnation while the earlier one's session lasts (DuplicateBrokerRegistration), so
/// that the earlier one is fenced first; gregor's registration is a metadata write of the
/// broker's own process, which cannot see the controller's sessions, so it always ends them:
/// a registered broker that never heartbeats would otherwise lead, fenced, for ever (a fenced
/// broker has no session to expire).
pub fn broker_unclean_shutdown(
    image: &MetadataImage,
    id: i32,
    policy: &ElectionPolicy,
) -> Vec<MetadataRecord> {
    leave_isrs(image, id, policy)
}

/// The BrokerRegistrationChangeRecord of broker `b` at its epoch: `fenced` and
/// `in_controlled_shutdown` 1 to set, -1 to clear, 0 to leave as they are.
fn registration_change(
    b: &super::image::BrokerRegistration,
    fenced: i8,
    in_controlled_shutdown: i8,
) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange {
        broker_id: b.id,
        broker_epoch: b.epoch,
        fenced,
        in_controlled_shutdown,
    }
}

/// Broker `id` comes back unfenced: the BrokerRegistrationChangeRecord that unfences it (when it
/// was fenced) and the
/// leaderless partitions it may lead (handleBrokerUnfenced), then the return of live replicas
/// to the ISRs (its own, and others' of a partition that was offline) and,
/// under auto.leader.rebalance.enable, preferred leaders (see the module comment). Each step
/// reads the image the previous one made.
pub fn broker_unfenced(
    image: &MetadataImage,
    id: i32,
    policy: &ElectionPolicy,
) -> Result<Vec<MetadataRecord>, ReplayError> {
    let mut out = Pending::new(image);
    if let Some(b) = image.brokers.get(&id).filter(|b| b.fenced) {
        out.push(vec![registration_change(b, -1, 0)])?;
    }
    let leaderless = {
        let image = &out.image;
        let acceptable = |r: i32| r == id || is_active(image, r);
        changes(image, |t, p, reg| {
            let leaderless = reg.leader == NO_LEADER && reg.replicas.contains(&id);
            let election = policy.election_for(image, &t.name);
            leaderless
                .then(|| partition_change((t.id, p), reg, reg.isr.clone(), election, &acceptable))?
        })
    };
    out.push(leaderless)?;
    if !policy.isr_by_leaders {
        let rejoined = rejoin_isrs(&out.image);
        out.push(rejoined)?;
    }
    if policy.auto_leader_rebalance {
        let preferred = preferred_leaders(&out.image);
        out.push(preferred)?;
    }
    Ok(out.records)
}

/// Broker `id` starts again: it registers anew (a new incarnation; the broker epoch is the
/// offset of its RegisterBrokerRecord, the first of the batch) and is unfenced at once, there
/// being nothing to catch up (`broker_unfenced`).
pub fn broker_restarted(
    image: &MetadataImage,
    id: i32,
    incarnation_id: Uuid,
    policy: &ElectionPolicy,
) -> Result<Vec<MetadataRecord>, ReplayError> {
    let b = image
        .brokers
        .get(&id)
        .ok_or(ReplayError::UnknownBroker(id))?;
    let mut registration = b.to_record();
    registration.incarnation_id = incarnation_id;
    registration.broker_epoch = image.provenance.last_offset + 1;
    registration.fenced = true;
    let mut out = Pending::new(image);
    out.push(vec![MetadataRecord::RegisterBroker(registration)])?;
    let unfenced = broker_unfenced(&out.image, id, policy)?;
    out.push(unfenced)?;
    Ok(out.records)
}

/// Why ElectLeaders elects no leader for a partition (ReplicationControlManager.electLeader).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectError {
    #[error("No such topic as {0}")]
    UnknownTopic(String),
    #[error("No such partition as {0}-{1}")]
    UnknownPartition(String, i32),
    /// The preferred replica leads already (preferred), or a leader exists (unclean).
    #[error("Leader election not needed for topic partition.")]
    NotNeeded,
    #[error("The preferred leader was not available.")]
    PreferredNotAvailable,
    #[error("Eligible topic partition leaders are not available.")]
    EligibleNotAvailable,
}

/// ElectLeaders for one partition (`Election::Preferred` or `Election::Unclean`): the change
/// that elects its leader among the live replicas, as ReplicationControlManager.electLeader.
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    election: Election,
) -> Result<PartitionChangeRecord, ElectError> {
    let t = image
        .topics
        .get_by_name(topic)
        .ok_or_else(|| ElectError::UnknownTopic(topic.to_string()))?;
    let reg = t
        .partitions
        .get(&partition)
        .ok_or_else(|| ElectError::UnknownPartition(topic.to_string(), partition))?;
    let not_needed = match election {
        Election::Unclean => reg.leader != NO_LEADER,
        _ => reg.replicas.first() == Some(&reg.leader),
    };
    if not_needed {
        return Err(ElectError::NotNeeded);
    }
    let acceptable = |r: i32| is_active(image, r);
    partition_change(
        (t.id, partition),
        reg,
        reg.isr.clone(),
        election,
        &acceptable,
    )
    .ok_or(match election {
        Election::Unclean => ElectError::EligibleNotAvailable,
        _ => ElectError::PreferredNotAvailable,
    })
}

/// Records to commit in one batch, and the image they make so far (each step of a change reads
/// what the steps before it did, as the controller's successive operations would).
pub struct Pending {
    pub image: MetadataImage,
    pub records: Vec<MetadataRecord>,
}

impl Pending {
    pub fn new(image: &MetadataImage) -> Self {
        Pending {
            image: image.clone(),
            records: Vec::new(),
        }
    }

    pub fn push(&mut self, records: Vec<MetadataRecord>) -> Result<(), ReplayError> {
        if !records.is_empty() {
            self.image = replay_all(Arc::new(self.image.clone()), &records)?;
            self.records.extend(records);
        }
        Ok(())
    }
}

/// Every live replica back in the ISR of its partition where the partition has a leader (the
/// leader's AlterPartition once the replica caught up, which with one copy of the data is at
/// once; appended last, in replica order, as Kafka's Partition.expandIsr appends). A
/// reassignment whose new replicas are then all in sync completes in the same change, as the
/// controller completes it on that AlterPartition.
pub fn rejoin_isrs(image: &MetadataImage) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| is_active(image, r);
    changes(image, |t, p, reg| {
        if reg.leader == NO_LEADER {
            return None;
        }
        let behind = reg
            .replicas
            .iter()
            .filter(|r| !reg.isr.contains(r) && is_active(image, **r));
        let isr: Vec<i32> = reg.isr.iter().chain(behind).copied().collect();
        if isr.len() == reg.isr.len() {
            return None;
        }
        let target = ChangeTarget {
            isr,
            ..ChangeTarget::of(reg)
        };
        build_change((t.id, p), reg, target, &acceptable)
    })
}

/// A preferred election for every partition not led by its first replica (Kafka's
/// maybeBalancePartitionLeaders over its imbalanced partitions).
pub fn preferred_leaders(image: &MetadataImage) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| is_active(image, r);
    changes(image, |t, p, reg| {
        let imbalanced = reg.replicas.first().is_some_and(|&r| r != reg.leader);
        imbalanced.then(|| {
            partition_change(
                (t.id, p),
                reg,
                reg.isr.clone(),
                Election::Preferred,
                &acceptable,
            )
        })?
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::records::{ConfigRecord, PartitionRecord};
    use super::*;

    const T: Uuid = Uuid::from_u128(7);

    /// Brokers 1-3 and topic "t" with one partition per replica list (every replica in sync,
    /// the first leading).
    fn image(lists: &[&[i32]]) -> MetadataImage {
        image_of(&[1, 2, 3], &[], T, lists)
    }

    /// Brokers `ids` (those in `fenced` fenced, out of every ISR) and topic "t" (id `topic_id`)
    /// with one partition per replica list, the first replica leading.
    pub(crate) fn image_of(
        ids: &[i32],
        fenced: &[i32],
        topic_id: Uuid,
        lists: &[&[i32]],
    ) -> MetadataImage {
        let brokers = super::super::placement::tests::brokers(ids, fenced);
        let mut records: Vec<MetadataRecord> = brokers
            .values()
            .map(|b| MetadataRecord::RegisterBroker(b.to_record()))
            .collect();
        records.push(MetadataRecord::Topic {
            name: "t".into(),
            topic_id,
        });
        for (p, r) in lists.iter().enumerate() {
            let mut record = PartitionRecord::new_in_sync(topic_id, p as i32, r.to_vec());
            record.isr.retain(|b| !fenced.contains(b));
            records.push(MetadataRecord::Partition(record));
        }
        replay_all(Arc::new(MetadataImage::empty()), &records).unwrap()
    }

    pub(crate) fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        replay_all(Arc::new(image.clone()), records).unwrap()
    }

    /// (replicas' leader, ISR, leader epoch) of each partition.
    fn layout(image: &MetadataImage) -> Vec<(i32, Vec<i32>, i32)> {
        image
            .topics
            .get(T)
            .unwrap()
            .partitions
            .values()
            .map(|r| (r.leader, r.isr.clone(), r.leader_epoch))
            .collect()
    }

    #[test]
    fn a_fenced_broker_leaves_every_isr_and_its_partitions_move_to_the_next_in_sync_replica() {
        let before = image(&[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[2, 3]]);
        let records = broker_fenced(&before, 2, &ElectionPolicy::default());
        // One change per partition with 2 in its ISR, then the fence record.
        assert_eq!(records.len(), 5);
        assert_eq!(
            records[4],
            MetadataRecord::BrokerRegistrationChange {
                broker_id: 2,
                broker_epoch: 0,
                fenced: 1,
                in_controlled_shutdown: 0,
            }
        );
        let after = apply(&before, &records);
        assert!(after.brokers[&2].fenced);
        assert_eq!(
            layout(&after),
            vec![
                (1, vec![1, 3], 0),
                (3, vec![3, 1], 1),
                (3, vec![3, 1], 0),
                (3, vec![3], 1),
            ]
        );
        // A second fence changes nothing.
        assert!(broker_fenced(&after, 2, &ElectionPolicy::default()).is_empty());
    }

    #[test]
    fn a_partition_without_a_live_in_sync_replica_goes_offline_and_keeps_its_last_isr_member() {
        let before = image(&[&[1], &[1, 2]]);
        let policy = ElectionPolicy::default();
        let after = apply(&before, &broker_fenced(&before, 2, &policy));
        let after = apply(&after, &broker_fenced(&after, 1, &policy));
        assert_eq!(
            layout(&after),
            vec![(NO_LEADER, vec![1], 1), (NO_LEADER, vec![1], 1)]
        );
        // Broker 2 is not in the ISR: coming back it cannot lead cleanly; broker 1 can.
        let back2 = apply(&after, &broker_unfenced(&after, 2, &policy).unwrap());
        assert_eq!(layout(&back2), layout(&after));
        let back1 = apply(&back2, &broker_unfenced(&back2, 1, &policy).unwrap());
        assert_eq!(layout(&back1), vec![(1, vec![1], 2), (1, vec![1, 2], 2)]);
    }

    #[test]
    fn unclean_election_lets_a_live_replica_outside_the_isr_lead() {
        let mut before = image(&[&[1, 2]]);
        let policy = ElectionPolicy::default();
        before = apply(&before, &broker_fenced(&before, 2, &policy));
        before = apply(&before, &broker_fenced(&before, 1, &policy));
        let unclean = MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
            value: Some("true".into()),
        });
        let before = apply(&before, &[unclean]);
        let after = apply(&before, &broker_unfenced(&before, 2, &policy).unwrap());
        assert_eq!(layout(&after), vec![(2, vec![2], 2)]);
    }

    #[test]
    fn a_returning_broker_rejoins_the_isrs_and_its_preferred_leadership_returns() {
        let before = image(&[&[1, 2, 3], &[2, 3, 1], &[3, 1]]);
        let policy = ElectionPolicy::default();
        let stopped = apply(&before, &broker_fenced(&before, 1, &policy));
        assert_eq!(
            layout(&stopped),
            vec![(2, vec![2, 3], 1), (2, vec![2, 3], 0), (3, vec![3], 0)]
        );
        let back = apply(&stopped, &broker_unfenced(&stopped, 1, &policy).unwrap());
        assert!(!back.brokers[&1].fenced);
        assert_eq!(
            layout(&back),
            vec![
                (1, vec![2, 3, 1], 2),
                (2, vec![2, 3, 1], 0),
                (3, vec![3, 1], 0)
            ]
        );
        // With the data replicated between processes, the broker coming back is in no ISR
        // until its leader says it caught up, so it leads nothing yet.
        let replicated = ElectionPolicy {
            isr_by_leaders: true,
            ..policy
        };
        let back = apply(
            &stopped,
            &broker_unfenced(&stopped, 1, &replicated).unwrap(),
        );
        assert_eq!(layout(&back)[0], (2, vec![2, 3], 1));
        // Without auto.leader.rebalance.enable the leader stays where it moved.
        let manual = ElectionPolicy {
            auto_leader_rebalance: false,
            ..policy
        };
        let back = apply(&stopped, &broker_unfenced(&stopped, 1, &manual).unwrap());
        assert_eq!(layout(&back)[0], (2, vec![2, 3, 1], 1));
        assert!(preferred_leaders(&back).len() == 1);
    }

    #[test]
    fn elections_choose_as_kafka_does() {
        let reg = PartitionRegistration {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 2,
            ..image(&[&[1]]).topics.get(T).unwrap().partitions[&0].clone()
        };
        let all = |_: i32| true;
        let isr = vec![1, 2, 3];
        // Online keeps a valid leader; preferred moves to the first replica.
        assert_eq!(
            partition_change((T, 0), &reg, isr.clone(), Election::Online, &all),
            None
        );
        let c = partition_change((T, 0), &reg, isr.clone(), Election::Preferred, &all).unwrap();
        assert_eq!((c.leader, c.isr), (1, None));
        // Preferred with the first replica out of the ISR keeps the leader.
        let c = partition_change((T, 0), &reg, vec![2, 3], Election::Preferred, &all).unwrap();
        assert_eq!((c.leader, c.isr), (NO_LEADER_CHANGE, Some(vec![2, 3])));
        // A leader that may no longer lead is replaced by the first valid replica in order.
        let not2 = |r: i32| r != 2;
        let c = partition_change((T, 0), &reg, vec![3, 1], Election::Online, &not2).unwrap();
        assert_eq!((c.leader, c.isr), (1, Some(vec![3, 1])));
    }

    /// ReplicationControlManager.electLeader's answers.
    #[test]
    fn elect_leaders_as_the_controller_does() {
        let policy = ElectionPolicy {
            auto_leader_rebalance: false,
            ..ElectionPolicy::default()
        };
        let before = image(&[&[1, 2], &[3]]);
        let stopped = apply(&before, &broker_fenced(&before, 1, &policy));
        let stopped = apply(&stopped, &broker_fenced(&stopped, 3, &policy));
        let back = apply(&stopped, &broker_unfenced(&stopped, 1, &policy).unwrap());
        // Partition 0 is led by 2, its preferred replica 1 back in sync; 1 has no live replica.
        assert_eq!(layout(&back)[0], (2, vec![2, 1], 1));
        let c = elect_leader(&back, "t", 0, Election::Preferred).unwrap();
        assert_eq!(c.leader, 1);
        let elected = apply(&back, &[MetadataRecord::PartitionChange(c)]);
        let refused = [
            (&elected, "t", 0, Election::Preferred, ElectError::NotNeeded),
            (&back, "t", 0, Election::Unclean, ElectError::NotNeeded),
            (
                &back,
                "t",
                1,
                Election::Preferred,
                ElectError::PreferredNotAvailable,
            ),
            (
                &back,
                "t",
                1,
                Election::Unclean,
                ElectError::EligibleNotAvailable,
            ),
            (
                &back,
                "t",
                2,
                Election::Preferred,
                ElectError::UnknownPartition("t".into(), 2),
            ),
            (
                &back,
                "u",
                0,
                Election::Preferred,
                ElectError::UnknownTopic("u".into()),
            ),
        ];
        for (image, topic, p, election, error) in refused {
            let got = elect_leader(image, topic, p, election);
            assert_eq!(got, Err(error), "{topic}-{p} {election:?}");
        }
    }
}
