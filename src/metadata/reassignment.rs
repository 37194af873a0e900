//! Partition reassignments, as Kafka's controller runs them (ReplicationControlManager
//! alterPartitionReassignments / listPartitionReassignments, PartitionReassignmentReplicas,
//! PartitionReassignmentRevert). Sans-IO: each function reads an image and returns records.
//!
//! A reassignment to a target replica list is one PartitionChangeRecord: the replicas become the
//! target followed by the replicas it removes, `adding_replicas` the new ones and
//! `removing_replicas` the old ones. It completes (a second change: the replicas become the
//! target, the removed ones leave the ISR, both lists empty; a leader that is no longer a
//! replica hands over to the first in-sync target replica, and a replica list that lost a
//! replica bumps the leader epoch) once every target replica is in the ISR; a reassignment that
//! only removes or reorders replicas completes in its first record. Kafka's new replicas join
//! the ISR once they have fetched up to the leader; here one copy of the data serves every
//! replica, so a new replica on a live broker is in sync at once (`election::rejoin_isrs`) and
//! such a reassignment completes in the same commit. A new replica on a stopped broker joins
//! the ISR when the broker starts, and until then the reassignment is in progress: listed by
//! ListPartitionReassignments, and cancellable (null replicas), which reverts to the original
//! replicas.
//!
//! Across processes (`ElectionPolicy::isr_by_leaders`) a new replica has no data: its broker
//! creates nothing new (every process keeps a log of every partition) but starts following the
//! leader, whose AlterPartition adds it to the ISR once it has caught up
//! (`metadata::alter_partition`, through the same `build_change`), and that change completes the
//! reassignment; until then it is in progress as above. The removed replicas' brokers then stop
//! fetching and delete their copy (`log::manager`, `server::replica_manager`).

use super::election::{
    self, build_change, is_active, without, ChangeTarget, Election, ElectionPolicy, Pending,
};
use super::image::{MetadataImage, PartitionRegistration, ReplayError, TopicImage};
use super::records::{MetadataRecord, PartitionChangeRecord};

/// Why a partition's reassignment is refused, with Kafka's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("Unable to find a topic named {0}.")]
    UnknownTopic(String),
    #[error("Unable to find partition {0}:{1}.")]
    UnknownPartition(String, i32),
    /// Errors.NO_REASSIGNMENT_IN_PROGRESS's message, which the controller throws as is.
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidAssignment(String),
    /// INVALID_REPLICATION_FACTOR (AlterPartitionReassignments v1 with
    /// allow_replication_factor_change false, KIP-860).
    #[error("The replication factor is changed from {0} to {1}")]
    ReplicationFactorChanged(usize, usize),
}

/// A partition's reassignment in progress (both lists non-empty or either).
pub fn in_progress(reg: &PartitionRegistration) -> bool {
    !reg.adding_replicas.is_empty() || !reg.removing_replicas.is_empty()
}

/// AlterPartitionReassignments for one partition: the change that starts (and, when its target
/// is in sync already, completes) a reassignment to `target`, or with `None` the change that
/// cancels the one in progress. `Ok(None)` when the partition is already as asked.
pub fn alter(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
    policy: &ElectionPolicy,
) -> Result<Option<PartitionChangeRecord>, ReassignError> {
    let t = image
        .topics
        .get_by_name(topic)
        .ok_or_else(|| ReassignError::UnknownTopic(topic.to_string()))?;
    let reg = t
        .partitions
        .get(&partition)
        .ok_or_else(|| ReassignError::UnknownPartition(topic.to_string(), partition))?;
    match target {
        None => cancel(image, t, partition, reg, policy),
        Some(target) => {
            validate_assignment(image, target)?;
            if !allow_replication_factor_change {
                let current = replication_factor(reg);
                if current != target.len() {
                    return Err(ReassignError::ReplicationFactorChanged(
                        current,
                        target.len(),
                    ));
                }
            }
            Ok(change(image, t, partition, reg, target))
        }
    }
}

/// ReplicationControlManager.validateManualPartitionAssignment: not empty, every broker
/// registered (fenced ones too: a reassignment may wait for a broker to start), none twice;
/// brokers in ascending order, so the smallest offender is named.
fn validate_assignment(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignError> {
    if target.is_empty() {
        return Err(ReassignError::InvalidAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for (i, id) in sorted.iter().enumerate() {
        if !image.brokers.contains_key(id) {
            return Err(ReassignError::InvalidAssignment(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if i > 0 && sorted[i - 1] == *id {
            return Err(ReassignError::InvalidAssignment(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
    }
    Ok(())
}

/// The replication factor a reassignment is compared with: during a reassignment, the replicas
/// it ends with (validatePartitionReplicationFactorUnchanged).
fn replication_factor(reg: &PartitionRegistration) -> usize {
    if !in_progress(reg) {
        return reg.replicas.len();
    }
    let mut ending: Vec<i32> = reg.replicas.clone();
    ending.extend(&reg.adding_replicas);
    ending.sort_unstable();
    ending.dedup();
    ending.retain(|r| !reg.removing_replicas.contains(r));
    ending.len()
}

/// changePartitionReassignment: the replicas become the target followed by those it removes
/// (PartitionReassignmentReplicas), the leader kept where it may still lead.
fn change(
    image: &MetadataImage,
    t: &TopicImage,
    partition: i32,
    reg: &PartitionRegistration,
    target: &[i32],
) -> Option<PartitionChangeRecord> {
    let removing: Vec<i32> = sorted_difference(&reg.replicas, target);
    let adding: Vec<i32> = sorted_difference(target, &reg.replicas);
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    let mut goal = ChangeTarget::of(reg);
    if replicas != reg.replicas {
        goal.replicas = replicas;
    }
    if !removing.is_empty() {
        goal.removing = removing;
    }
    if !adding.is_empty() {
        goal.adding = adding;
    }
    let acceptable = |r: i32| is_active(image, r);
    build_change((t.id, partition), reg, goal, &acceptable)
}

/// The brokers of `a` not in `b`, ascending (Kafka's TreeSet difference).
fn sorted_difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out = without(a, b);
    out.sort_unstable();
    out.dedup();
    out
}

/// cancelPartitionReassignment: back to the original replicas (those the reassignment was not
/// adding), the added ones out of the ISR; when only added replicas were in sync, the first
/// original replica becomes the ISR, which is an unclean election and needs
/// unclean.leader.election.enable (PartitionReassignmentRevert).
fn cancel(
    image: &MetadataImage,
    t: &TopicImage,
    partition: i32,
    reg: &PartitionRegistration,
    policy: &ElectionPolicy,
) -> Result<Option<PartitionChangeRecord>, ReassignError> {
    if !in_progress(reg) {
        return Err(ReassignError::NoReassignmentInProgress);
    }
    let replicas = without(&reg.replicas, &reg.adding_replicas);
    let mut isr = without(&reg.isr, &reg.adding_replicas);
    let unclean_allowed = policy.unclean(image, &t.name);
    if isr.is_empty() {
        let Some(&first) = replicas.first() else {
            return Err(ReassignError::InvalidAssignment(
                "Invalid replica assignment: addingReplicas contains all replicas.".into(),
            ));
        };
        if !unclean_allowed {
            return Err(ReassignError::InvalidAssignment(format!(
                "Unable to revert partition assignment for {}:{partition} because it would require an unclean leader election.",
                t.name
            )));
        }
        isr.push(first);
    }
    let goal = ChangeTarget {
        isr,
        replicas,
        removing: vec![],
        adding: vec![],
        election: match unclean_allowed {
            true => Election::Unclean,
            false => Election::Online,
        },
    };
    let acceptable = |r: i32| is_active(image, r);
    Ok(build_change((t.id, partition), reg, goal, &acceptable))
}

/// The changes that follow committed reassignment records at once (see the module comment): in
/// one process, new replicas on live brokers join the ISRs, which completes their reassignments
/// (across processes, `isr_by_leaders`, they join through their leader's AlterPartition once
/// caught up, and the controller completes the reassignment there), then, under
/// auto.leader.rebalance.enable, preferred replicas lead (Kafka's periodic rebalance; gregor's
/// at once, as after a broker starts).
pub fn settle(
    image: &MetadataImage,
    policy: &ElectionPolicy,
) -> Result<Vec<MetadataRecord>, ReplayError> {
    let mut out = Pending::new(image);
    if !policy.isr_by_leaders {
        let rejoined = election::rejoin_isrs(&out.image);
        out.push(rejoined)?;
    }
    if policy.auto_leader_rebalance {
        let preferred = election::preferred_leaders(&out.image);
        out.push(preferred)?;
    }
    Ok(out.records)
}

/// One partition's reassignment in progress, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// ListPartitionReassignments: the reassignments in progress of the topics and partitions
/// asked for (topics that do not exist and partitions not reassigning are left out, and so is a
/// topic with none), or of every topic when `asked` is `None`; topics by name, partitions in
/// the order asked (ascending for all).
pub fn list(
    image: &MetadataImage,
    asked: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, Vec<Ongoing>)> {
    let ongoing = |t: &TopicImage, p: i32| {
        let reg = t.partitions.get(&p).filter(|r| in_progress(r))?;
        Some(Ongoing {
            partition: p,
            replicas: reg.replicas.clone(),
            adding: reg.adding_replicas.clone(),
            removing: reg.removing_replicas.clone(),
        })
    };
    let wanted: Vec<(&TopicImage, Vec<i32>)> = match asked {
        None => image
            .topics
            .iter()
            .map(|t| (t.as_ref(), t.partitions.keys().copied().collect()))
            .collect(),
        Some(asked) => asked
            .iter()
            .filter_map(|(name, ps)| Some((image.topics.get_by_name(name)?.as_ref(), ps.clone())))
            .collect(),
    };
    wanted
        .into_iter()
        .filter_map(|(t, ps)| {
            let partitions: Vec<_> = ps.into_iter().filter_map(|p| ongoing(t, p)).collect();
            (!partitions.is_empty()).then(|| (t.name.clone(), partitions))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::super::election::tests::apply;
    use super::super::records::{ConfigRecord, NO_LEADER, RESOURCE_TOPIC};
    use super::*;

    const T: Uuid = Uuid::from_u128(9);

    /// Brokers 1-4 (those in `fenced` fenced, out of every ISR) and topic "t" with one
    /// partition per replica list, the first replica leading.
    fn image(lists: &[&[i32]], fenced: &[i32]) -> MetadataImage {
        election::tests::image_of(&[1, 2, 3, 4], fenced, T, lists)
    }

    fn reg(image: &MetadataImage, p: i32) -> PartitionRegistration {
        image.topics.get(T).unwrap().partitions[&p].clone()
    }

    /// (replicas, ISR, leader, leader epoch, adding, removing).
    fn layout(image: &MetadataImage, p: i32) -> (Vec<i32>, Vec<i32>, i32, i32, Vec<i32>, Vec<i32>) {
        let r = reg(image, p);
        let (a, rm) = (r.adding_replicas, r.removing_replicas);
        (r.replicas, r.isr, r.leader, r.leader_epoch, a, rm)
    }

    fn policy(auto_leader_rebalance: bool) -> ElectionPolicy {
        ElectionPolicy {
            auto_leader_rebalance,
            ..ElectionPolicy::default()
        }
    }

    /// alter, then settle, as AlterPartitionReassignments commits them.
    fn reassign(
        image: &MetadataImage,
        p: i32,
        target: Option<&[i32]>,
    ) -> (Vec<MetadataRecord>, MetadataImage) {
        let pol = policy(false);
        let mut out = Pending::new(image);
        let change = alter(image, "t", p, target, true, &pol).unwrap();
        out.push(
            change
                .into_iter()
                .map(MetadataRecord::PartitionChange)
                .collect(),
        )
        .unwrap();
        let settled = settle(&out.image, &pol).unwrap();
        out.push(settled).unwrap();
        (out.records, out.image)
    }

    fn change_of(r: &MetadataRecord) -> &PartitionChangeRecord {
        match r {
            MetadataRecord::PartitionChange(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// A move to a live broker: Kafka's first record (target then removed replicas, adding and
    /// removing set, ISR unchanged), then the completing one (the new replica in sync, the old
    /// one gone, the leader it was handed over with a new epoch).
    #[test]
    fn a_move_to_a_live_broker_writes_kafkas_two_records_and_completes() {
        let before = image(&[&[1, 2, 3]], &[]);
        let (records, after) = reassign(&before, 0, Some(&[4, 2, 3]));
        assert_eq!(records.len(), 2);
        let start = change_of(&records[0]);
        assert_eq!(start.replicas, Some(vec![4, 2, 3, 1]));
        assert_eq!(start.adding_replicas, Some(vec![4]));
        assert_eq!(start.removing_replicas, Some(vec![1]));
        assert_eq!((start.isr.clone(), start.leader), (None, -2));
        let done = change_of(&records[1]);
        assert_eq!(done.replicas, Some(vec![4, 2, 3]));
        assert_eq!(
            (done.adding_replicas.clone(), done.removing_replicas.clone()),
            (Some(vec![]), Some(vec![]))
        );
        // The ISR gains 4 (appended) and loses 1; 1 led, so the first in-sync target replica does.
        assert_eq!(done.isr, Some(vec![2, 3, 4]));
        assert_eq!(done.leader, 4);
        assert_eq!(
            layout(&after, 0),
            (vec![4, 2, 3], vec![2, 3, 4], 4, 1, vec![], vec![])
        );
        assert!(list(&after, None).is_empty());
    }

    /// Removing a follower or reordering completes in the first record; a replica that leaves
    /// bumps the leader epoch though the leader stays, a reorder bumps nothing.
    #[test]
    fn shrinks_and_reorders_complete_at_once() {
        let before = image(&[&[1, 2, 3], &[1, 2, 3]], &[]);
        let (records, after) = reassign(&before, 0, Some(&[1, 2]));
        assert_eq!(records.len(), 1);
        let c = change_of(&records[0]);
        assert_eq!(
            (c.leader, c.replicas.clone(), c.isr.clone()),
            (1, Some(vec![1, 2]), Some(vec![1, 2]))
        );
        assert_eq!(
            (c.adding_replicas.clone(), c.removing_replicas.clone()),
            (None, None)
        );
        assert_eq!(
            layout(&after, 0),
            (vec![1, 2], vec![1, 2], 1, 1, vec![], vec![])
        );
        let (records, after) = reassign(&after, 1, Some(&[3, 1, 2]));
        assert_eq!(records.len(), 1);
        assert_eq!(
            layout(&after, 1),
            (vec![3, 1, 2], vec![1, 2, 3], 1, 0, vec![], vec![])
        );
        // The same assignment again changes nothing.
        assert_eq!(
            alter(&after, "t", 1, Some(&[3, 1, 2]), true, &policy(false)),
            Ok(None)
        );
        // Under auto.leader.rebalance.enable the preferred replica takes over at once.
        let rebalanced = apply(&after, &settle(&after, &policy(true)).unwrap());
        assert_eq!(layout(&rebalanced, 1).2, 3);
    }

    /// A new replica on a stopped broker: in progress (listed) until the broker starts, then
    /// complete; the leader, removed, hands over with a bumped epoch.
    #[test]
    fn a_reassignment_to_a_stopped_broker_waits_for_it() {
        let before = image(&[&[1, 2], &[2, 3]], &[4]);
        let (_, waiting) = reassign(&before, 0, Some(&[4, 2]));
        assert_eq!(
            layout(&waiting, 0),
            (vec![4, 2, 1], vec![1, 2], 1, 0, vec![4], vec![1])
        );
        let listed = list(&waiting, None);
        let want = Ongoing {
            partition: 0,
            replicas: vec![4, 2, 1],
            adding: vec![4],
            removing: vec![1],
        };
        assert_eq!(listed, vec![("t".to_string(), vec![want.clone()])]);
        let asked = [
            ("t".to_string(), vec![1, 0, 7]),
            ("nope".to_string(), vec![0]),
        ];
        assert_eq!(list(&waiting, Some(&asked)), listed);
        assert!(list(&waiting, Some(&[("t".to_string(), vec![1])])).is_empty());
        // Broker 1 stopping changes the leader, not the reassignment.
        let pol = policy(false);
        let fenced = apply(&waiting, &election::broker_fenced(&waiting, 1, &pol));
        assert_eq!(
            layout(&fenced, 0),
            (vec![4, 2, 1], vec![2], 2, 1, vec![4], vec![1])
        );
        // Broker 4 starts: it joins the ISR, which completes the reassignment.
        let back = election::broker_unfenced(&fenced, 4, &pol).unwrap();
        let back = apply(&fenced, &back);
        assert_eq!(
            layout(&back, 0),
            (vec![4, 2], vec![2, 4], 2, 2, vec![], vec![])
        );
        assert!(list(&back, None).is_empty());
        // Had broker 1 stayed, its leadership would have moved to the first in-sync target.
        let back = apply(
            &waiting,
            &election::broker_unfenced(&waiting, 4, &pol).unwrap(),
        );
        assert_eq!(
            layout(&back, 0),
            (vec![4, 2], vec![2, 4], 4, 1, vec![], vec![])
        );
    }

    /// Across processes a new replica on a live broker is not in sync until its leader says so
    /// (AlterPartition): the reassignment stays in progress, then that ISR change completes it.
    #[test]
    fn across_processes_a_new_replica_joins_through_its_leader() {
        let before = image(&[&[1, 2]], &[]);
        let pol = ElectionPolicy {
            isr_by_leaders: true,
            ..policy(false)
        };
        let change = alter(&before, "t", 0, Some(&[2, 3]), true, &pol).unwrap();
        let started = apply(&before, &[MetadataRecord::PartitionChange(change.unwrap())]);
        assert!(settle(&started, &pol).unwrap().is_empty());
        assert_eq!(
            layout(&started, 0),
            (vec![2, 3, 1], vec![1, 2], 1, 0, vec![3], vec![1])
        );
        // The leader adds 3 once it caught up: the same change completes the reassignment and
        // hands the leadership to the first in-sync target replica.
        let t = started.topics.get(T).unwrap();
        let target = ChangeTarget {
            isr: vec![1, 2, 3],
            ..ChangeTarget::of(&reg(&started, 0))
        };
        let acceptable = |r: i32| is_active(&started, r);
        let done = build_change((t.id, 0), &reg(&started, 0), target, &acceptable).unwrap();
        let done = apply(&started, &[MetadataRecord::PartitionChange(done)]);
        assert_eq!(
            layout(&done, 0),
            (vec![2, 3], vec![2, 3], 2, 1, vec![], vec![])
        );
    }

    /// Cancelling reverts to the original replicas; with none in progress it is refused.
    #[test]
    fn cancel_reverts_and_needs_a_reassignment() {
        let before = image(&[&[1, 2]], &[4]);
        assert_eq!(
            alter(&before, "t", 0, None, true, &policy(false)),
            Err(ReassignError::NoReassignmentInProgress)
        );
        let (_, waiting) = reassign(&before, 0, Some(&[4, 2]));
        let (records, reverted) = reassign(&waiting, 0, None);
        assert_eq!(records.len(), 1);
        assert_eq!(
            layout(&reverted, 0),
            (vec![2, 1], vec![1, 2], 1, 1, vec![], vec![])
        );
        // A new target while one is in progress replaces it (the added replica not kept).
        let (_, waiting) = reassign(&before, 0, Some(&[4, 2]));
        let (_, other) = reassign(&waiting, 0, Some(&[3, 2]));
        assert_eq!(layout(&other, 0).0, vec![3, 2]);
    }

    /// A revert that would leave only added replicas in sync needs an unclean election.
    #[test]
    fn a_revert_to_replicas_out_of_sync_needs_unclean_elections() {
        // [1] -> [2, 3] with 3 stopped: 2 joins the ISR, 3 cannot; then 1 stops, 2 leads.
        let before = image(&[&[1]], &[3]);
        let pol = policy(false);
        let (_, waiting) = reassign(&before, 0, Some(&[2, 3]));
        assert_eq!(
            layout(&waiting, 0),
            (vec![2, 3, 1], vec![1, 2], 1, 0, vec![2, 3], vec![1])
        );
        let waiting = apply(&waiting, &election::broker_fenced(&waiting, 1, &pol));
        assert_eq!(layout(&waiting, 0).1, vec![2]);
        assert_eq!(
            alter(&waiting, "t", 0, None, true, &pol),
            Err(ReassignError::InvalidAssignment(
                "Unable to revert partition assignment for t:0 because it would require an unclean leader election.".into()
            ))
        );
        let unclean = MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: election::UNCLEAN_LEADER_ELECTION_ENABLE.into(),
            value: Some("true".into()),
        });
        let waiting = apply(&waiting, &[unclean]);
        let c = alter(&waiting, "t", 0, None, true, &pol).unwrap().unwrap();
        // Broker 1 is stopped: no leader until it returns, the ISR it alone.
        assert_eq!(
            (c.replicas.clone(), c.isr.clone(), c.leader),
            (Some(vec![1]), Some(vec![1]), NO_LEADER)
        );
    }

    /// Kafka's refusals, each with its message.
    #[test]
    fn refusals_as_the_controller_words_them() {
        let before = image(&[&[1, 2]], &[]);
        let pol = policy(false);
        let refused = [
            ("u", 0, Some(&[1][..]), true, ReassignError::UnknownTopic("u".into())),
            ("t", 3, Some(&[1][..]), true, ReassignError::UnknownPartition("t".into(), 3)),
            ("t", 0, Some(&[][..]), true, ReassignError::InvalidAssignment("The manual partition assignment includes an empty replica list.".into())),
            ("t", 0, Some(&[9, 1][..]), true, ReassignError::InvalidAssignment("The manual partition assignment includes broker 9, but no such broker is registered.".into())),
            ("t", 0, Some(&[2, 1, 2][..]), true, ReassignError::InvalidAssignment("The manual partition assignment includes the broker 2 more than once.".into())),
            ("t", 0, Some(&[1, 2, 3][..]), false, ReassignError::ReplicationFactorChanged(2, 3)),
        ];
        for (topic, p, target, allow, want) in refused {
            assert_eq!(
                alter(&before, topic, p, target, allow, &pol),
                Err(want.clone()),
                "{want}"
            );
        }
        assert_eq!(
            ReassignError::ReplicationFactorChanged(2, 3).to_string(),
            "The replication factor is changed from 2 to 3"
        );
        // The same factor passes without the change allowed; in progress, the factor is the
        // one the reassignment ends with.
        assert!(alter(&before, "t", 0, Some(&[3, 4]), false, &pol).is_ok());
        let fenced = image(&[&[1, 2]], &[4]);
        let (_, waiting) = reassign(&fenced, 0, Some(&[4, 2, 1]));
        assert_eq!(layout(&waiting, 0).0, vec![4, 2, 1]);
        assert_eq!(
            alter(&waiting, "t", 0, Some(&[3, 2]), false, &pol),
            Err(ReassignError::ReplicationFactorChanged(3, 2))
        );
    }
}
