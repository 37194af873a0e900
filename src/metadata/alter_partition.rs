//! AlterPartition on the controller (ReplicationControlManager.alterPartition): a partition's
//! leader asks to change its ISR (shrink after `replica.lag.time.max.ms`, expand once a follower
//! caught up); the controller checks the request against the partition as the image has it, and
//! commits the change as a PartitionChangeRecord through the shared `election::build_change`
//! (which also completes a reassignment the change finishes). Sans-IO: the image in, the records
//! and the answer out.
//!
//! Checks, in Kafka's order, with its error codes: the requesting broker's epoch
//! (STALE_BROKER_EPOCH, for the whole request); an unknown topic or partition; a request with a
//! newer leader or partition epoch than the image (NOT_CONTROLLER: this controller is behind,
//! the leader looks for the new one); an older leader epoch (FENCED_LEADER_EPOCH); a broker that
//! does not lead (INVALID_REQUEST); an older partition epoch (INVALID_UPDATE_VERSION); an ISR
//! that is not a subset of the replicas or lacks the leader (INVALID_REQUEST); an ISR member
//! unregistered, fenced, shutting down or at another broker epoch (INELIGIBLE_REPLICA). A change
//! that completes a reassignment and moves the leadership is committed and answered
//! NEW_LEADER_ELECTED.

use uuid::Uuid;

use super::election::{self, ChangeTarget, Election, ElectionPolicy};
use super::image::MetadataImage;
use super::records::{MetadataRecord, NO_LEADER_CHANGE};
use crate::protocol::errors;

/// One partition of an AlterPartition request (v3: the new ISR with each member's broker epoch,
/// -1 skipping the check).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<(i32, i64)>,
}

/// The partition as the controller left it, or why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionResponse {
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl AlterPartitionResponse {
    /// A refusal with `code` (and nothing of the partition).
    pub fn refused(code: i16) -> Self {
        Self::error(code)
    }

    fn error(code: i16) -> Self {
        AlterPartitionResponse {
            error_code: code,
            leader: -1,
            leader_epoch: -1,
            isr: vec![],
            partition_epoch: -1,
        }
    }
}

/// The controller's decision on one partition: the record to commit (if any) and the answer.
pub fn alter_partition(
    image: &MetadataImage,
    req: &AlterPartitionRequest,
    policy: &ElectionPolicy,
) -> (Vec<MetadataRecord>, AlterPartitionResponse) {
    let refuse = |code| (vec![], AlterPartitionResponse::error(code));
    let requester = image.brokers.get(&req.broker_id);
    if requester.is_none_or(|b| b.epoch != req.broker_epoch) {
        return refuse(errors::STALE_BROKER_EPOCH);
    }
    let Some(topic) = image.topics.get(req.topic_id) else {
        return refuse(errors::UNKNOWN_TOPIC_ID);
    };
    let Some(reg) = topic.partitions.get(&req.partition) else {
        return refuse(errors::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let new_isr: Vec<i32> = req.new_isr.iter().map(|&(id, _)| id).collect();
    let error = if req.leader_epoch > reg.leader_epoch || req.partition_epoch > reg.partition_epoch
    {
        errors::NOT_CONTROLLER
    } else if req.leader_epoch < reg.leader_epoch {
        errors::FENCED_LEADER_EPOCH
    } else if req.broker_id != reg.leader {
        errors::INVALID_REQUEST
    } else if req.partition_epoch < reg.partition_epoch {
        errors::INVALID_UPDATE_VERSION
    } else if !valid_isr(&reg.replicas, &new_isr) || !new_isr.contains(&reg.leader) {
        errors::INVALID_REQUEST
    } else if req.new_isr.iter().any(|&m| !eligible(image, m)) {
        errors::INELIGIBLE_REPLICA
    } else {
        errors::NONE
    };
    if error != errors::NONE {
        return refuse(error);
    }
    let election = match policy.unclean(image, &topic.name) {
        true => Election::Unclean,
        false => Election::Online,
    };
    let target = ChangeTarget {
        isr: new_isr,
        election,
        ..ChangeTarget::of(reg)
    };
    let acceptable = |r: i32| election::is_active(image, r);
    let change = election::build_change((topic.id, req.partition), reg, target, &acceptable);
    let after = change
        .as_ref()
        .map_or_else(|| reg.clone(), |c| reg.merge(c));
    let moved = change
        .as_ref()
        .is_some_and(|c| c.leader != NO_LEADER_CHANGE && c.leader != req.broker_id);
    let records = change
        .into_iter()
        .map(MetadataRecord::PartitionChange)
        .collect();
    let answer = match moved {
        // The change completed a reassignment that took the leadership away: committed, and
        // the old leader told to learn the new metadata.
        true => AlterPartitionResponse::error(errors::NEW_LEADER_ELECTED),
        false => AlterPartitionResponse {
            error_code: errors::NONE,
            leader: after.leader,
            leader_epoch: after.leader_epoch,
            isr: after.isr,
            partition_epoch: after.partition_epoch,
        },
    };
    (records, answer)
}

/// Replicas.validateIsr: no duplicates, every member a replica.
fn valid_isr(replicas: &[i32], isr: &[i32]) -> bool {
    isr.iter()
        .enumerate()
        .all(|(i, r)| replicas.contains(r) && !isr[..i].contains(r))
}

/// A new ISR member must be registered, unfenced, not shutting down, and at the broker epoch the
/// leader names (-1: unchecked).
fn eligible(image: &MetadataImage, (id, epoch): (i32, i64)) -> bool {
    image.brokers.get(&id).is_some_and(|b| {
        !b.fenced && !b.in_controlled_shutdown && (epoch == -1 || epoch == b.epoch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::replay_all;
    use crate::metadata::records::{PartitionRecord, RegisterBrokerRecord};
    use std::sync::Arc;

    const TOPIC: Uuid = Uuid::from_u128(0x71);

    fn register(id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord::bare(id, 10 * id as i64, fenced))
    }

    /// Brokers 1, 2, 3 (epochs 10, 20, 30) and 4 (fenced); partition 0 on 1, 2, 3 led by 1, ISR
    /// 1, 2, 3; partition 1 on 1 and 4.
    fn image() -> MetadataImage {
        let records = vec![
            register(1, false),
            register(2, false),
            register(3, false),
            register(4, true),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: TOPIC,
            },
            MetadataRecord::Partition(PartitionRecord::new_in_sync(TOPIC, 0, vec![1, 2, 3])),
            MetadataRecord::Partition(PartitionRecord::new_in_sync(TOPIC, 1, vec![1, 4])),
        ];
        replay_all(Arc::new(MetadataImage::default()), &records).unwrap()
    }

    fn shrink_to(isr: &[i32]) -> AlterPartitionRequest {
        AlterPartitionRequest {
            broker_id: 1,
            broker_epoch: 10,
            topic_id: TOPIC,
            partition: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: isr.iter().map(|&id| (id, -1)).collect(),
        }
    }

    fn code(image: &MetadataImage, req: &AlterPartitionRequest) -> i16 {
        alter_partition(image, req, &ElectionPolicy::default())
            .1
            .error_code
    }

    /// A shrink, then an expansion: each a PartitionChangeRecord at the next partition epoch,
    /// the leader epoch unchanged; a repeated request at the old partition epoch is refused.
    #[test]
    fn the_leader_shrinks_and_expands_its_isr() {
        let image = image();
        let (records, answer) =
            alter_partition(&image, &shrink_to(&[1, 2]), &ElectionPolicy::default());
        assert_eq!(records.len(), 1);
        assert_eq!(answer.isr, vec![1, 2]);
        assert_eq!((answer.leader, answer.leader_epoch), (1, 0));
        assert_eq!(answer.partition_epoch, 1);
        let shrunk = replay_all(Arc::new(image.clone()), &records).unwrap();
        let reg = &shrunk.topics.get(TOPIC).unwrap().partitions[&0];
        assert_eq!((reg.isr.clone(), reg.partition_epoch), (vec![1, 2], 1));
        assert_eq!(
            code(&shrunk, &shrink_to(&[1, 2, 3])),
            errors::INVALID_UPDATE_VERSION
        );
        let mut expand = shrink_to(&[1, 2, 3]);
        expand.partition_epoch = 1;
        expand.new_isr[2].1 = 30;
        let (records, answer) = alter_partition(&shrunk, &expand, &ElectionPolicy::default());
        assert_eq!((records.len(), answer.isr), (1, vec![1, 2, 3]));
        // Asking for the ISR it has changes nothing and answers the partition as it is.
        let (records, answer) =
            alter_partition(&image, &shrink_to(&[1, 2, 3]), &Default::default());
        assert!(records.is_empty());
        assert_eq!(
            (answer.error_code, answer.partition_epoch),
            (errors::NONE, 0)
        );
    }

    /// A reassignment from 1, 2 to 2, 3 in progress (replicas 2, 3, 1 adding 3, removing 1, led
    /// by 1): the expansion that brings 3 in completes it, 1 leaves and 2 leads; the change is
    /// committed and the old leader answered NEW_LEADER_ELECTED.
    #[test]
    fn an_expansion_that_completes_a_reassignment_elects_a_new_leader() {
        let mut record = PartitionRecord::new_in_sync(TOPIC, 0, vec![2, 3, 1]);
        record.isr = vec![1, 2];
        record.leader = 1;
        record.adding_replicas = vec![3];
        record.removing_replicas = vec![1];
        let image = replay_all(Arc::new(image()), &[MetadataRecord::Partition(record)]).unwrap();
        let (records, answer) =
            alter_partition(&image, &shrink_to(&[1, 2, 3]), &ElectionPolicy::default());
        assert_eq!(answer.error_code, errors::NEW_LEADER_ELECTED);
        let after = replay_all(Arc::new(image), &records).unwrap();
        let reg = &after.topics.get(TOPIC).unwrap().partitions[&0];
        assert_eq!((reg.leader, reg.replicas.clone()), (2, vec![2, 3]));
        assert!(reg.adding_replicas.is_empty() && reg.removing_replicas.is_empty());
    }

    /// Kafka's checks and their error codes.
    #[test]
    fn bad_requests_get_kafkas_errors() {
        let image = image();
        let with = |f: &dyn Fn(&mut AlterPartitionRequest)| {
            let mut r = shrink_to(&[1, 2]);
            f(&mut r);
            code(&image, &r)
        };
        assert_eq!(with(&|r| r.broker_epoch = 9), errors::STALE_BROKER_EPOCH);
        assert_eq!(with(&|r| r.broker_id = 7), errors::STALE_BROKER_EPOCH);
        assert_eq!(
            with(&|r| r.topic_id = Uuid::from_u128(9)),
            errors::UNKNOWN_TOPIC_ID
        );
        assert_eq!(
            with(&|r| r.partition = 2),
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(with(&|r| r.leader_epoch = 1), errors::NOT_CONTROLLER);
        assert_eq!(with(&|r| r.partition_epoch = 1), errors::NOT_CONTROLLER);
        assert_eq!(
            with(&|r| {
                r.broker_id = 2;
                r.broker_epoch = 20;
            }),
            errors::INVALID_REQUEST
        );
        assert_eq!(
            with(&|r| r.new_isr = vec![(2, -1)]),
            errors::INVALID_REQUEST
        );
        assert_eq!(
            with(&|r| r.new_isr = vec![(1, -1), (1, -1)]),
            errors::INVALID_REQUEST
        );
        assert_eq!(
            with(&|r| r.new_isr = vec![(1, -1), (5, -1)]),
            errors::INVALID_REQUEST
        );
        assert_eq!(with(&|r| r.new_isr[1].1 = 21), errors::INELIGIBLE_REPLICA);
        assert_eq!(with(&|r| r.new_isr[1].1 = 20), errors::NONE);
        // A fenced replica cannot be in the ISR (partition 1: replicas 1 and 4).
        assert_eq!(
            with(&|r| {
                r.partition = 1;
                r.new_isr = vec![(1, -1), (4, -1)];
            }),
            errors::INELIGIBLE_REPLICA
        );
    }
}
