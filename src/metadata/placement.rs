//! Where a new partition's replicas go (Kafka's `StripedReplicaPlacer`), and the checks Kafka's
//! controller makes on a replica assignment a client gives (`validateManualPartitionAssignment`).
//!
//! Without racks (gregor's brokers have none) Kafka's placer stripes: the brokers sorted by id,
//! a random start, and partition `k` gets the `replication_factor` brokers from
//! `start + k` on, unfenced brokers first, so leaders and followers spread evenly. Kafka also
//! reshuffles the broker order after every round of as many partitions as there are brokers;
//! gregor keeps the order (every replica holds the same single copy of the data, so only where
//! leaders are matters to a client, and that is the same spread).

use std::collections::BTreeMap;

use super::image::BrokerRegistration;

/// Why a placement or an assignment is refused; the message is Kafka's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    ReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    Assignment(String),
}

/// Places `partitions` partitions of `replication_factor` replicas on `brokers`, starting the
/// stripe at `start` (Kafka draws it at random).
pub fn place(
    brokers: &BTreeMap<i32, BrokerRegistration>,
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 {
        return Err(PlacementError::ReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        ));
    }
    // Unfenced brokers lead; fenced ones only make up the numbers (Rack.next).
    let unfenced: Vec<i32> = brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.id)
        .collect();
    let fenced: Vec<i32> = brokers
        .values()
        .filter(|b| b.fenced)
        .map(|b| b.id)
        .collect();
    if rf > brokers.len() {
        // AdminUtils' wording, which gregor's single node has always answered.
        return Err(PlacementError::ReplicationFactor(format!(
            "Replication factor: {replication_factor} larger than available brokers: {}.",
            brokers.len()
        )));
    }
    if unfenced.is_empty() {
        return Err(PlacementError::ReplicationFactor(
            "All brokers are currently fenced.".into(),
        ));
    }
    let n = unfenced.len();
    Ok((0..usize::try_from(partitions).unwrap_or(0))
        .map(|k| {
            let mut replicas: Vec<i32> = (0..rf.min(n))
                .map(|j| unfenced[(start + k + j) % n])
                .collect();
            replicas.extend(fenced.iter().take(rf - replicas.len()));
            replicas
        })
        .collect())
}

/// A client's replica list for one partition, checked as Kafka's controller does: not empty,
/// only registered brokers, none twice, and as many replicas as the other partitions have.
pub fn validate_manual(
    brokers: &BTreeMap<i32, BrokerRegistration>,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), PlacementError> {
    let fail = |m: String| Err(PlacementError::Assignment(m));
    if replicas.is_empty() {
        return fail("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    for (i, b) in sorted.iter().enumerate() {
        if !brokers.contains_key(b) {
            return fail(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
        if i > 0 && sorted[i - 1] == *b {
            return fail(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
    }
    match replication_factor {
        Some(rf) if rf != sorted.len() => fail(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
            sorted.len()
        )),
        _ => Ok(()),
    }
}

/// The replicas on active brokers, in order (registered, unfenced and not in controlled
/// shutdown: Kafka's `ClusterControlManager.isActive`): a new partition's ISR, placed or
/// assigned, as Kafka's `ReplicationControlManager.createTopic` makes it.
pub fn in_sync(brokers: &BTreeMap<i32, BrokerRegistration>, replicas: &[i32]) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| (brokers.get(b)).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown))
        .collect()
}

/// The in-sync replicas of a placed partition (`in_sync`); none (every broker fenced or in
/// controlled shutdown) is INVALID_REPLICATION_FACTOR, Kafka's message.
pub fn placed_in_sync(
    brokers: &BTreeMap<i32, BrokerRegistration>,
    replicas: &[i32],
) -> Result<Vec<i32>, PlacementError> {
    let isr = in_sync(brokers, replicas);
    if isr.is_empty() {
        return Err(PlacementError::ReplicationFactor(format!(
            "Unable to replicate the partition {} time(s): All brokers are currently fenced or in controlled shutdown.",
            replicas.len()
        )));
    }
    Ok(isr)
}

/// The in-sync replicas of a manual assignment (`in_sync`); none is
/// INVALID_REPLICA_ASSIGNMENT.
pub fn active_replicas(
    brokers: &BTreeMap<i32, BrokerRegistration>,
    replicas: &[i32],
    partition: i32,
) -> Result<Vec<i32>, PlacementError> {
    let isr = in_sync(brokers, replicas);
    if isr.is_empty() {
        return Err(PlacementError::Assignment(format!(
            "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
        )));
    }
    Ok(isr)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn brokers(ids: &[i32], fenced: &[i32]) -> BTreeMap<i32, BrokerRegistration> {
        ids.iter()
            .map(|&id| {
                let b = BrokerRegistration {
                    id,
                    epoch: 0,
                    incarnation_id: uuid::Uuid::nil(),
                    endpoints: vec![],
                    features: vec![],
                    rack: None,
                    fenced: fenced.contains(&id),
                    in_controlled_shutdown: false,
                    log_dirs: vec![],
                };
                (id, b)
            })
            .collect()
    }

    /// StripedReplicaPlacer without racks: consecutive partitions start one broker further, so
    /// every broker leads as many partitions and no partition has a broker twice.
    #[test]
    fn stripes_leaders_and_followers_over_the_brokers() {
        let b = brokers(&[1, 2, 3], &[]);
        let placed = place(&b, 6, 3, 1).unwrap();
        assert_eq!(placed[0], vec![2, 3, 1]);
        assert_eq!(placed[1], vec![3, 1, 2]);
        assert_eq!(placed[2], vec![1, 2, 3]);
        let mut leaders = [0; 4];
        for r in &placed {
            leaders[r[0] as usize] += 1;
        }
        assert_eq!(leaders, [0, 2, 2, 2]);
        assert_eq!(place(&b, 2, 1, 0).unwrap(), vec![vec![1], vec![2]]);
    }

    #[test]
    fn fenced_brokers_only_follow_and_the_factor_is_bounded() {
        let b = brokers(&[1, 2, 3], &[2]);
        for r in place(&b, 4, 3, 0).unwrap() {
            assert_ne!(r[0], 2);
            assert_eq!(r[2], 2);
        }
        assert!(matches!(
            place(&b, 1, 4, 0),
            Err(PlacementError::ReplicationFactor(_))
        ));
        assert!(matches!(
            place(&b, 1, 0, 0),
            Err(PlacementError::ReplicationFactor(_))
        ));
        let all_fenced = brokers(&[1], &[1]);
        assert!(place(&all_fenced, 1, 1, 0).is_err());
    }

    /// ReplicationControlManager.validateManualPartitionAssignment's checks.
    #[test]
    fn manual_assignments_are_checked_as_kafka_does() {
        let b = brokers(&[1, 2, 3], &[3]);
        assert!(validate_manual(&b, &[2, 1], Some(2)).is_ok());
        for (bad, rf) in [
            (&[][..], None),
            (&[4][..], None),
            (&[1, 1][..], None),
            (&[1][..], Some(2)),
        ] {
            assert!(
                matches!(
                    validate_manual(&b, bad, rf),
                    Err(PlacementError::Assignment(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(active_replicas(&b, &[3, 1], 0).unwrap(), vec![1]);
        assert!(active_replicas(&b, &[3], 0).is_err());
    }

    /// A placed partition's ISR is its replicas on active brokers, as Kafka's createTopic has
    /// it: a fenced broker (say, registered and not yet heartbeating) only makes up the
    /// numbers; a broker in controlled shutdown is not in sync either.
    #[test]
    fn a_placed_partition_is_in_sync_on_active_brokers_only() {
        let mut b = brokers(&[1, 2, 3], &[3]);
        for r in place(&b, 3, 3, 0).unwrap() {
            assert_eq!(placed_in_sync(&b, &r).unwrap(), r[..2].to_vec());
        }
        b.get_mut(&1).unwrap().in_controlled_shutdown = true;
        assert_eq!(in_sync(&b, &[1, 2, 3]), vec![2]);
        b.get_mut(&2).unwrap().in_controlled_shutdown = true;
        assert!(matches!(
            placed_in_sync(&b, &[1, 2, 3]),
            Err(PlacementError::ReplicationFactor(_))
        ));
    }
}
