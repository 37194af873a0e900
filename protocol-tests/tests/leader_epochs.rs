//! Leader epochs (KIP-101, KIP-320): batches stamped with the partition's leader epoch, the
//! epoch cache kept in `leader-epoch-checkpoint`, OffsetForLeaderEpoch at every advertised
//! version, and the FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH checks.
//!
//! A single node leads in epoch 0 until the metadata image moves leaders; the tests that need a
//! later epoch restart the broker on a data directory whose checkpoint names one (the partition
//! leads in the newest epoch its cache knows).

mod common;

use anyhow::{ensure, Context, Result};
use common::*;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::*;

const TOPIC: &str = "epochs";
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// The newest OffsetForLeaderEpoch version (flexible).
const OFFSET_FOR_LEADER_EPOCH_V: i16 = 4;

fn offset_for_leader_epoch_request(
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest::default()
        // A consumer's replica id (v3+).
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])])
}

async fn end_offset_at(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<EpochEndOffset> {
    let req = offset_for_leader_epoch_request(topic, partition, current_leader_epoch, leader_epoch);
    let r = c
        .request(version, req)
        .await
        .with_context(|| format!("OffsetForLeaderEpoch v{version}"))?;
    ensure!(r.topics.len() == 1, "v{version}: {r:?}");
    ensure!(r.topics[0].topic.as_str() == topic, "v{version}: {r:?}");
    ensure!(r.topics[0].partitions.len() == 1, "v{version}: {r:?}");
    let p = r.topics[0].partitions[0].clone();
    ensure!(p.partition == partition, "v{version}: {p:?}");
    Ok(p)
}

async fn end_offset(c: &mut Client, current: i32, epoch: i32) -> Result<(i16, i32, i64)> {
    let p = end_offset_at(c, OFFSET_FOR_LEADER_EPOCH_V, TOPIC, 0, current, epoch).await?;
    Ok((p.error_code, p.leader_epoch, p.end_offset))
}

/// The partition leader epoch field of every batch fetched from offset 0 (bytes 12..16 of a
/// batch, outside its CRC).
async fn batch_epochs(c: &mut Client) -> Result<Vec<(i64, i32)>> {
    let p = fetch_one(c, TOPIC, 0, 0, 1 << 20).await?;
    let bytes = p.records.unwrap_or_default();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 61 <= bytes.len() {
        let len = i32_at(&bytes, at + 8) as usize;
        out.push((i64_at(&bytes, at), i32_at(&bytes, at + 12)));
        at += 12 + len;
    }
    Ok(out)
}

/// Kafka 4.4 advertises OffsetForLeaderEpoch v2-4 (KIP-896 removed v0-1). At each: the latest
/// epoch ends at the log end (LeaderEpochFileCache.endOffsetFor), an epoch newer than any and
/// no epoch are (-1, -1), an unknown partition or topic is UNKNOWN_TOPIC_OR_PARTITION, and a
/// current leader epoch newer than the partition's is UNKNOWN_LEADER_EPOCH (KIP-320).
#[tokio::test]
async fn offset_for_leader_epoch_every_version() -> Result<()> {
    let (_b, mut c) = broker_with_topic(TOPIC, 2).await?;
    for i in 0..3 {
        produce_ok(&mut c, TOPIC, 0, values_batch(&[&format!("v{i}"), "x"])).await?;
    }
    let advertised = c
        .request(3, ApiVersionsRequest::default())
        .await?
        .api_keys
        .into_iter()
        .find(|k| k.api_key == ApiKey::OffsetForLeaderEpoch as i16)
        .context("OffsetForLeaderEpoch is not advertised")?;
    ensure!(
        (advertised.min_version, advertised.max_version) == (2, 4),
        "{advertised:?}"
    );
    for v in 2..=4 {
        let ok = |p: &EpochEndOffset, epoch: i32, end: i64| {
            p.error_code == NONE && p.leader_epoch == epoch && p.end_offset == end
        };
        let p = end_offset_at(&mut c, v, TOPIC, 0, -1, 0).await?;
        ensure!(ok(&p, 0, 6), "v{v} epoch 0: {p:?}");
        let p = end_offset_at(&mut c, v, TOPIC, 0, 0, 0).await?;
        ensure!(ok(&p, 0, 6), "v{v} current 0: {p:?}");
        let p = end_offset_at(&mut c, v, TOPIC, 1, -1, 0).await?;
        ensure!(ok(&p, 0, 0), "v{v} empty partition: {p:?}");
        let p = end_offset_at(&mut c, v, TOPIC, 0, -1, 1).await?;
        ensure!(ok(&p, -1, -1), "v{v} newer epoch: {p:?}");
        let p = end_offset_at(&mut c, v, TOPIC, 0, -1, -1).await?;
        ensure!(ok(&p, -1, -1), "v{v} no epoch: {p:?}");
        let p = end_offset_at(&mut c, v, TOPIC, 0, 1, 0).await?;
        ensure!(
            p.error_code == UNKNOWN_LEADER_EPOCH && (p.leader_epoch, p.end_offset) == (-1, -1),
            "v{v} current epoch from the future: {p:?}"
        );
        let p = end_offset_at(&mut c, v, TOPIC, 2, -1, 0).await?;
        ensure!(
            p.error_code == UNKNOWN_TOPIC_OR_PARTITION,
            "v{v} partition 2: {p:?}"
        );
        let p = end_offset_at(&mut c, v, "nope", 0, -1, 0).await?;
        ensure!(
            p.error_code == UNKNOWN_TOPIC_OR_PARTITION,
            "v{v} nope: {p:?}"
        );
    }
    Ok(())
}

/// Batches carry the partition's leader epoch; after a restart the partition leads in the
/// newest epoch of its `leader-epoch-checkpoint` (Kafka's file format), new batches carry it,
/// and OffsetForLeaderEpoch answers from the cache: an older epoch ends where the next begins,
/// an unknown epoch between two answers the one below (LeaderEpochFileCache.endOffsetFor). A
/// current epoch older than the partition's is FENCED_LEADER_EPOCH, a newer one
/// UNKNOWN_LEADER_EPOCH (Partition.checkCurrentLeaderEpoch).
#[tokio::test]
async fn epochs_from_the_checkpoint_are_stamped_answered_and_fence() -> Result<()> {
    let (mut b, mut c) = broker_with_topic(TOPIC, 1).await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["a", "b"])).await?;
    let checkpoint = b
        .data_dir()
        .join(format!("{TOPIC}-0/leader-epoch-checkpoint"));
    ensure!(std::fs::read_to_string(&checkpoint)? == "0\n1\n0 0\n");
    ensure!(batch_epochs(&mut c).await? == vec![(0, 0)]);
    b.shutdown().await?;
    // Epoch 3 began at the log end (as Partition.makeLeader records a new leader's epoch).
    std::fs::write(&checkpoint, "0\n2\n0 0\n3 2\n")?;
    b.start_again().await?;
    let mut c = b.client().await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["c"])).await?;
    ensure!(batch_epochs(&mut c).await? == vec![(0, 0), (2, 3)]);
    ensure!(end_offset(&mut c, -1, 0).await? == (NONE, 0, 2));
    ensure!(end_offset(&mut c, 3, 3).await? == (NONE, 3, 3));
    ensure!(end_offset(&mut c, -1, 2).await? == (NONE, 0, 2));
    ensure!(end_offset(&mut c, -1, 4).await? == (NONE, -1, -1));
    ensure!(end_offset(&mut c, 2, 0).await? == (FENCED_LEADER_EPOCH, -1, -1));
    ensure!(end_offset(&mut c, 4, 0).await? == (UNKNOWN_LEADER_EPOCH, -1, -1));
    // The file is unchanged: epoch 3 has a batch now, but it started at 2 already.
    ensure!(std::fs::read_to_string(&checkpoint)? == "0\n2\n0 0\n3 2\n");
    // And a crash keeps all of it.
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    ensure!(end_offset(&mut c, 3, 0).await? == (NONE, 0, 2));
    ensure!(std::fs::read_to_string(&checkpoint)? == "0\n2\n0 0\n3 2\n");
    Ok(())
}
