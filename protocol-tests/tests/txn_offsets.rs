//! Transactional offset commits (TxnOffsetCommit, a producer's sendOffsetsToTransaction), how
//! OffsetFetch shows them while their transaction is open, and DescribeProducers, at every
//! advertised version. Kafka's behaviour (OffsetMetadataManager, KafkaApis): the offsets are
//! pending until the transaction's marker; OffsetFetch never returns them, and with
//! require_stable (v7+) answers UNSTABLE_OFFSET_COMMIT for their partitions.

mod common;

use anyhow::{ensure, Context, Result};
use common::*;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::PartitionResponse;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;

const TOPIC: &str = "txn-offsets";
const TXN_COMMIT_V: i16 = 4;
const INVALID_GROUP_ID: i16 = 24;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_ABORTABLE: i16 = 120;

/// The transactional id whose transactions commit offsets for `group` here.
fn txn_of(group: &str) -> String {
    format!("txn-{group}")
}

/// A transaction of `txn_of(group)` that holds the group's offsets partition (InitProducerId,
/// AddOffsetsToTxn, as a producer's sendOffsetsToTransaction does): its producer id and epoch.
/// Kafka writes the offsets of a TxnOffsetCommit up to v4 only inside such a transaction.
async fn open_txn(c: &mut Client, group: &str) -> Result<(i64, i16)> {
    let producer = init_transactional(c, &txn_of(group)).await?;
    let code = add_offsets(c, 3, &txn_of(group), producer, group).await?;
    ensure!(code == NONE, "AddOffsetsToTxn {group}: {code}");
    Ok(producer)
}

/// A TxnOffsetCommit of `offsets` (partition, offset) of TOPIC; member and generation (v3+)
/// when given.
fn txn_commit(
    v: i16,
    group: &str,
    producer: (i64, i16),
    member: Option<(&str, i32)>,
    offsets: &[(&str, i32, i64)],
) -> TxnOffsetCommitRequest {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(s("m")));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let mut req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&txn_of(group))))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_topics(topics);
    if let Some((member_id, generation)) = member.filter(|_| v >= 3) {
        req = req
            .with_member_id(s(member_id))
            .with_generation_id(generation);
    }
    req
}

/// The error of each partition of a TxnOffsetCommit, in response order.
async fn txn_commit_codes(c: &mut Client, v: i16, req: TxnOffsetCommitRequest) -> Result<Vec<i16>> {
    let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
    Ok(r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect())
}

/// OffsetFetch v7 (one group) of TOPIC's `partition`: (error, offset).
async fn fetch_at_v7(
    c: &mut Client,
    group: &str,
    partition: i32,
    stable: bool,
) -> Result<(i16, i64)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![partition])]))
        .with_require_stable(stable);
    let r = c.request(7, req).await?;
    let p = &r.topics[0].partitions[0];
    Ok((p.error_code, p.committed_offset))
}

#[tokio::test]
async fn txn_offset_commit_every_version_stays_pending() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    for v in 0..=TXN_COMMIT_V {
        let group = format!("pending-v{v}");
        commit_ok(&mut c, &group, "", -1, &[(TOPIC, 1, 5, "")]).await?;
        let producer = open_txn(&mut c, &group).await?;
        let req = txn_commit(v, &group, producer, None, &[(TOPIC, 0, 10), (TOPIC, 1, 11)]);
        ensure!(
            txn_commit_codes(&mut c, v, req).await? == vec![NONE, NONE],
            "v{v}"
        );
        // Invisible without require_stable: partition 0 has no commit, 1 keeps its plain one.
        ensure!(
            fetch_at_v7(&mut c, &group, 0, false).await? == (NONE, -1),
            "v{v}"
        );
        ensure!(
            fetch_at_v7(&mut c, &group, 1, false).await? == (NONE, 5),
            "v{v}"
        );
        for p in 0..2 {
            let got = fetch_at_v7(&mut c, &group, p, true).await?;
            ensure!(got == (UNSTABLE_OFFSET_COMMIT, -1), "v{v} p{p}: {got:?}");
        }
        // OffsetFetch v8+ (groups) answers the same per partition.
        let (code, parts) = fetch_offsets(&mut c, 9, &group, Some(&[(TOPIC, &[0, 1])])).await?;
        ensure!(code == NONE, "v{v}: {parts:?}");
        ensure!(
            parts
                .iter()
                .all(|p| p.error_code == UNSTABLE_OFFSET_COMMIT && p.offset == -1),
            "v{v}: {parts:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn txn_offset_commit_errors_as_kafka() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic(TOPIC, 1).await?;
    let v = TXN_COMMIT_V;
    // Epoch 1 of the transactional id, so that epoch 0 is a fenced one.
    init_transactional(&mut c, &txn_of("errors")).await?;
    let producer = open_txn(&mut c, "errors").await?;
    ensure!(producer.1 == 1, "{producer:?}");
    // KafkaApis: an unknown topic or partition is answered per partition, the rest committed.
    let req = txn_commit(
        v,
        "errors",
        producer,
        None,
        &[(TOPIC, 0, 1), (TOPIC, 7, 1), ("nope", 0, 1)],
    );
    let codes = txn_commit_codes(&mut c, v, req).await?;
    ensure!(
        codes == vec![NONE, UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_OR_PARTITION],
        "{codes:?}"
    );
    // GroupCoordinatorService: an empty group id is INVALID_GROUP_ID.
    let req = txn_commit(v, "", producer, None, &[(TOPIC, 0, 1)]);
    ensure!(txn_commit_codes(&mut c, v, req).await? == vec![INVALID_GROUP_ID]);
    // KIP-890 part 1: offsets of a transaction that does not hold the group's offsets partition
    // (no AddOffsetsToTxn) are refused: TRANSACTION_ABORTABLE from v4, INVALID_TXN_STATE for
    // the clients before it; nothing is written.
    let bare = init_transactional(&mut c, &txn_of("bare")).await?;
    for (v, want) in [
        (0, INVALID_TXN_STATE),
        (3, INVALID_TXN_STATE),
        (4, TRANSACTION_ABORTABLE),
    ] {
        let req = txn_commit(v, "bare", bare, None, &[(TOPIC, 0, 1)]);
        let codes = txn_commit_codes(&mut c, v, req).await?;
        ensure!(codes == vec![want], "v{v}: {codes:?}");
    }
    ensure!(fetch_at_v7(&mut c, "bare", 0, true).await? == (NONE, -1));
    // offset.metadata.max.bytes: OFFSET_METADATA_TOO_LARGE for that partition.
    let mut req = txn_commit(v, "errors", producer, None, &[(TOPIC, 0, 1)]);
    req.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(5000)));
    ensure!(txn_commit_codes(&mut c, v, req).await? == vec![OFFSET_METADATA_TOO_LARGE]);
    // An older epoch of the producer is fenced (the coordinator's PRODUCER_FENCED, as
    // INVALID_PRODUCER_EPOCH).
    let req = txn_commit(v, "errors", (producer.0, 0), None, &[(TOPIC, 0, 2)]);
    ensure!(txn_commit_codes(&mut c, v, req).await? == vec![INVALID_PRODUCER_EPOCH]);
    // v3+ (KIP-447): a generation of a group that does not exist is ILLEGAL_GENERATION ...
    let producer = open_txn(&mut c, "no-such-group").await?;
    let req = txn_commit(
        v,
        "no-such-group",
        producer,
        Some(("m", 3)),
        &[(TOPIC, 0, 1)],
    );
    ensure!(txn_commit_codes(&mut c, v, req).await? == vec![ILLEGAL_GENERATION]);
    // ... and a stable group checks the member and its generation.
    let spec = JoinSpec::consumer("members", &[TOPIC]);
    let joined = stable_member(&mut c, &spec, b"").await?;
    let id = joined.member_id.as_str();
    let producer = open_txn(&mut c, "members").await?;
    for (member, generation, want) in [
        (id, joined.generation, NONE),
        (id, joined.generation + 1, ILLEGAL_GENERATION),
        ("stranger", joined.generation, UNKNOWN_MEMBER_ID),
    ] {
        let req = txn_commit(
            v,
            "members",
            producer,
            Some((member, generation)),
            &[(TOPIC, 0, 1)],
        );
        let codes = txn_commit_codes(&mut c, v, req).await?;
        ensure!(codes == vec![want], "{member} {generation}: {codes:?}");
    }
    // v0-2 carry no member: accepted while the group has members (Kafka's
    // ClassicGroup.validateOffsetCommit for transactional commits).
    let req = txn_commit(2, "members", producer, None, &[(TOPIC, 0, 1)]);
    ensure!(txn_commit_codes(&mut c, 2, req).await? == vec![NONE]);
    Ok(())
}

#[tokio::test]
async fn pending_offsets_are_still_pending_after_a_restart() -> Result<()> {
    // Kafka's CoordinatorLoaderImpl replays the transactional batch as the producer's: after a
    // restart the offsets are still pending, not committed.
    let (mut b, mut c) = group_broker_with_topic(TOPIC, 1).await?;
    let producer = open_txn(&mut c, "restart").await?;
    let req = txn_commit(TXN_COMMIT_V, "restart", producer, None, &[(TOPIC, 0, 42)]);
    ensure!(txn_commit_codes(&mut c, TXN_COMMIT_V, req).await? == vec![NONE]);
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    ensure!(fetch_at_v7(&mut c, "restart", 0, false).await? == (NONE, -1));
    ensure!(fetch_at_v7(&mut c, "restart", 0, true).await? == (UNSTABLE_OFFSET_COMMIT, -1));
    Ok(())
}

async fn describe_producers(
    c: &mut Client,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<Vec<PartitionResponse>> {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(topic))
        .with_partition_indexes(partitions)]);
    let r = c.request(0, req).await?;
    ensure!(
        r.topics.len() == 1 && r.topics[0].name.as_str() == topic,
        "{r:?}"
    );
    Ok(r.topics[0].partitions.clone())
}

#[tokio::test]
async fn describe_producers_v0_shows_each_partitions_producers() -> Result<()> {
    // Kafka's Partition.activeProducerState: the producer state table of the partition's log,
    // with the first offset of an open transaction (here the offsets partition of a pending
    // TxnOffsetCommit); unknown topics and partitions as KafkaApis.handleDescribeProducersRequest.
    let (_b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let producer = open_txn(&mut c, "described").await?;
    let req = txn_commit(TXN_COMMIT_V, "described", producer, None, &[(TOPIC, 0, 1)]);
    ensure!(txn_commit_codes(&mut c, TXN_COMMIT_V, req).await? == vec![NONE]);
    let all: Vec<i32> = (0..50).collect();
    let parts = describe_producers(&mut c, "__consumer_offsets", all).await?;
    let with_producer: Vec<_> = parts
        .iter()
        .filter(|p| p.error_code == NONE && !p.active_producers.is_empty())
        .collect();
    ensure!(with_producer.len() == 1, "{parts:?}");
    let state = &with_producer[0].active_producers[0];
    ensure!(
        (state.producer_id.0, state.producer_epoch) == (producer.0, i32::from(producer.1))
            && state.last_sequence == 0
            && state.last_timestamp > 0
            && state.current_txn_start_offset >= 0,
        "{state:?}"
    );
    // A topic partition without producers, one it does not have, and unknown or invalid topics.
    let parts = describe_producers(&mut c, TOPIC, vec![1, 5]).await?;
    ensure!(
        parts[0].error_code == NONE && parts[0].active_producers.is_empty(),
        "{parts:?}"
    );
    ensure!(
        parts[1].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{parts:?}"
    );
    let parts = describe_producers(&mut c, "nope", vec![0, 1]).await?;
    ensure!(
        parts
            .iter()
            .all(|p| p.error_code == UNKNOWN_TOPIC_OR_PARTITION && p.error_message.is_some()),
        "{parts:?}"
    );
    let parts = describe_producers(&mut c, "bad name!", vec![0]).await?;
    ensure!(parts[0].error_code == INVALID_TOPIC_EXCEPTION, "{parts:?}");
    Ok(())
}
