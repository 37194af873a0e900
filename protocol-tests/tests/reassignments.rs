//! AlterPartitionReassignments and ListPartitionReassignments among the brokers of one process,
//! at every advertised version, as Kafka's controller answers them: a move to live brokers
//! completes at once (one copy of the data: new replicas are in sync), the leader handing over
//! with a bumped epoch when it is no longer a replica; a move to a stopped broker stays in
//! progress (listed, cancellable) until the broker starts; each refusal with its error.

mod common;

use anyhow::{ensure, Result};
use common::reassignments::{alter, list, Asked};
use common::*;

use kafka_protocol::messages::*;

/// Three brokers with the admin listener, auto.leader.rebalance.enable off (leaders stay where
/// the reassignment puts them), and topic `ra` with partitions on [1, 2] and [2, 3].
async fn three_brokers() -> Result<TestBroker> {
    let b = TestBroker::start_with(|c| {
        c.brokers = 3;
        c.admin_listen = Some("127.0.0.1:0".into());
        c.elections.auto_leader_rebalance = false;
    })
    .await?;
    let mut c = b.client().await?;
    let assignment = |p: i32, ids: &[i32]| {
        create_topics_request::CreatableReplicaAssignment::default()
            .with_partition_index(p)
            .with_broker_ids(ids.iter().map(|&i| BrokerId(i)).collect())
    };
    let t = creatable("ra", -1)
        .with_replication_factor(-1)
        .with_assignments(vec![assignment(0, &[1, 2]), assignment(1, &[2, 3])]);
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    Ok(b)
}

/// (leader, leader epoch, replicas, ISR) of a partition of `ra`, as Metadata shows it.
async fn layout(c: &mut Client, p: usize) -> Result<(i32, i32, Vec<i32>, Vec<i32>)> {
    let m = metadata(c, METADATA_V, metadata_topics(&["ra"]), false).await?;
    let part = &m.topics[0].partitions[p];
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok((
        part.leader_id.0,
        part.leader_epoch,
        ids(&part.replica_nodes),
        ids(&part.isr_nodes),
    ))
}

/// One partition moved: NONE.
async fn moved(c: &mut Client, v: i16, p: i32, target: &[i32]) -> Result<()> {
    let got = alter(c, v, true, &[("ra", p, Some(target))]).await?;
    ensure!(got == vec![("ra".into(), p, NONE, None)], "v{v}: {got:?}");
    Ok(())
}

async fn admin_ok(b: &TestBroker, method: &str, path: &str) -> Result<()> {
    let (status, body) = b.admin(method, path).await?;
    ensure!(status == 200, "{method} {path}: {status} {body}");
    Ok(())
}

/// Both APIs are advertised at the versions Kafka 4.4 serves.
#[tokio::test]
async fn reassignment_apis_are_advertised() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let r = c.request(3, ApiVersionsRequest::default()).await?;
    let range = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    ensure!(
        range(ApiKey::AlterPartitionReassignments) == Some((0, 1)),
        "{r:?}"
    );
    ensure!(
        range(ApiKey::ListPartitionReassignments) == Some((0, 0)),
        "{r:?}"
    );
    Ok(())
}

/// A move to live brokers completes in the request: the removed leader hands over to the first
/// in-sync target replica with a bumped epoch, nothing stays listed; the refusals, at every
/// version (KIP-860's INVALID_REPLICATION_FACTOR from v1).
#[tokio::test]
async fn alter_partition_reassignments_every_version() -> Result<()> {
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    ensure!(layout(&mut c, 0).await? == (1, 0, vec![1, 2], vec![1, 2]));
    let mut epoch = 0;
    for v in 0..=1 {
        // Away from broker 1, the leader: 3 joins, 1 leaves, 3 leads (the first in sync).
        moved(&mut c, v, 0, &[3, 2]).await?;
        epoch += 1;
        let got = layout(&mut c, 0).await?;
        ensure!(got == (3, epoch, vec![3, 2], vec![2, 3]), "v{v}: {got:?}");
        ensure!(list(&mut c, None).await?.is_empty(), "v{v}");
        // A reorder keeps the leader and its epoch; the same assignment again changes nothing.
        moved(&mut c, v, 0, &[2, 3]).await?;
        moved(&mut c, v, 0, &[2, 3]).await?;
        let got = layout(&mut c, 0).await?;
        ensure!(got == (3, epoch, vec![2, 3], vec![2, 3]), "v{v}: {got:?}");
        // Back to [1, 2]: 3 leaves again and leadership moves to 1, the first in sync.
        moved(&mut c, v, 0, &[1, 2]).await?;
        epoch += 1;
        let got = layout(&mut c, 0).await?;
        ensure!(got == (1, epoch, vec![1, 2], vec![2, 1]), "v{v}: {got:?}");

        let asked: &[Asked<'_>] = &[
            ("ra", 0, Some(&[1, 1])),
            ("ra", 0, Some(&[7, 1])),
            ("ra", 0, Some(&[])),
            ("ra", 0, None),
            ("ra", 9, Some(&[1])),
            ("nope", 0, Some(&[1])),
        ];
        let got = alter(&mut c, v, true, asked).await?;
        let want = [
            (
                INVALID_REPLICA_ASSIGNMENT,
                "The manual partition assignment includes the broker 1 more than once.",
            ),
            (
                INVALID_REPLICA_ASSIGNMENT,
                "The manual partition assignment includes broker 7, but no such broker is registered.",
            ),
            (
                INVALID_REPLICA_ASSIGNMENT,
                "The manual partition assignment includes an empty replica list.",
            ),
            (
                NO_REASSIGNMENT_IN_PROGRESS,
                "No partition reassignment is in progress.",
            ),
            (UNKNOWN_TOPIC_OR_PARTITION, "Unable to find partition ra:9."),
            (UNKNOWN_TOPIC_OR_PARTITION, "Unable to find a topic named nope."),
        ];
        ensure!(got.len() == want.len(), "v{v}: {got:?}");
        for ((_, _, code, message), (want_code, want_message)) in got.iter().zip(want) {
            ensure!(
                *code == want_code && message.as_deref() == Some(want_message),
                "v{v}: {got:?}"
            );
        }
        ensure!(layout(&mut c, 0).await?.2 == vec![1, 2], "v{v}");
    }
    // v1 can forbid a change of the replication factor (KIP-860); v0 always allows it.
    let got = alter(&mut c, 1, false, &[("ra", 0, Some(&[1, 2, 3]))]).await?;
    let want = "The replication factor is changed from 2 to 3";
    ensure!(
        got == vec![(
            "ra".into(),
            0,
            INVALID_REPLICATION_FACTOR,
            Some(want.into())
        )],
        "{got:?}"
    );
    let got = alter(&mut c, 1, false, &[("ra", 0, Some(&[3, 1]))]).await?;
    ensure!(got[0].2 == NONE, "{got:?}");
    moved(&mut c, 0, 1, &[1, 2, 3]).await?;
    let got = layout(&mut c, 1).await?;
    ensure!(got == (2, 0, vec![1, 2, 3], vec![2, 3, 1]), "{got:?}");
    Ok(())
}

/// A new replica on a stopped broker: in progress until the broker starts, listed (every topic,
/// or the partitions asked for), cancellable back to the original replicas; once the broker
/// starts, the reassignment completes and its removed leader hands over.
#[tokio::test]
async fn list_partition_reassignments_every_version() -> Result<()> {
    let b = three_brokers().await?;
    let mut c = b.client_of(3).await?;
    admin_ok(&b, "POST", "/v1/brokers/1/stop").await?;
    // Partition 1 ([2, 3], 2 leading) to [1, 3]: 1 cannot join the ISR yet.
    moved(&mut c, 0, 1, &[1, 3]).await?;
    let waiting = vec![("ra".to_string(), 1, vec![1, 3, 2], vec![1], vec![2])];
    ensure!(list(&mut c, None).await? == waiting);
    let asked: &[(&str, &[i32])] = &[("ra", &[0, 1, 5]), ("nope", &[0])];
    ensure!(list(&mut c, Some(asked)).await? == waiting);
    ensure!(list(&mut c, Some(&[("ra", &[0])])).await?.is_empty());
    let got = layout(&mut c, 1).await?;
    ensure!(got == (2, 0, vec![1, 3, 2], vec![2, 3]), "{got:?}");

    // Cancelled: back to the original replicas (in the order the reassignment kept them).
    for v in 0..=1 {
        let got = alter(&mut c, v, true, &[("ra", 1, None)]).await?;
        ensure!(got == vec![("ra".into(), 1, NONE, None)], "v{v}: {got:?}");
        ensure!(list(&mut c, None).await?.is_empty(), "v{v}");
        let got = layout(&mut c, 1).await?;
        ensure!(got.2 == vec![3, 2] && got.0 == 2, "v{v}: {got:?}");
        let got = alter(&mut c, v, true, &[("ra", 1, None)]).await?;
        ensure!(got[0].2 == NO_REASSIGNMENT_IN_PROGRESS, "v{v}: {got:?}");
        moved(&mut c, v, 1, &[1, 3]).await?;
    }

    // Broker 1 starts: it joins the ISR, the reassignment completes, 2 (removed) hands over.
    let before = layout(&mut c, 1).await?;
    admin_ok(&b, "POST", "/v1/brokers/1/start").await?;
    ensure!(list(&mut c, None).await?.is_empty());
    let got = layout(&mut c, 1).await?;
    ensure!(
        got == (1, before.1 + 1, vec![1, 3], vec![3, 1]),
        "{before:?} then {got:?}"
    );
    Ok(())
}
