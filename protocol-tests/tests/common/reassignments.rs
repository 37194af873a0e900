//! AlterPartitionReassignments and ListPartitionReassignments in one call each.

use anyhow::{ensure, Result};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::*;
use protocol_tests::client::*;

use super::{name, NONE};

/// One reassignment asked: (topic, partition, target replicas or None to cancel).
pub type Asked<'a> = (&'a str, i32, Option<&'a [i32]>);

/// AlterPartitionReassignments at version `v`: (topic, partition, error, message) per partition.
pub async fn alter(
    c: &mut Client,
    v: i16,
    allow_rf_change: bool,
    asked: &[Asked<'_>],
) -> Result<Vec<(String, i32, i16, Option<String>)>> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, p, target) in asked {
        let partition = ReassignablePartition::default()
            .with_partition_index(*p)
            .with_replicas(target.map(|t| t.iter().map(|&b| BrokerId(b)).collect()));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                ReassignableTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(topics);
    let r = c.request(v, req).await?;
    ensure!(
        r.error_code == NONE && r.error_message.is_none(),
        "v{v}: {r:?}"
    );
    if v >= 1 {
        ensure!(
            r.allow_replication_factor_change == allow_rf_change,
            "{r:?}"
        );
    }
    Ok(r.responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let message = p.error_message.as_ref().map(|m| m.to_string());
                (t.name.to_string(), p.partition_index, p.error_code, message)
            })
        })
        .collect())
}

/// ListPartitionReassignments (of `asked`, or every topic): (topic, partition, replicas,
/// adding, removing).
pub async fn list(
    c: &mut Client,
    asked: Option<&[(&str, &[i32])]>,
) -> Result<Vec<(String, i32, Vec<i32>, Vec<i32>, Vec<i32>)>> {
    let topics = asked.map(|a| {
        a.iter()
            .map(|(t, ps)| {
                ListPartitionReassignmentsTopics::default()
                    .with_name(name(t))
                    .with_partition_indexes(ps.to_vec())
            })
            .collect()
    });
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    let r = c.request(0, req).await?;
    ensure!(r.error_code == NONE && r.error_message.is_none(), "{r:?}");
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let (r, a, rm) = (&p.replicas, &p.adding_replicas, &p.removing_replicas);
                (
                    t.name.to_string(),
                    p.partition_index,
                    ids(r),
                    ids(a),
                    ids(rm),
                )
            })
        })
        .collect())
}
