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
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::*;

const TOPIC: &str = "epochs";
/// The newest OffsetForLeaderEpoch version (flexible).
const OFFSET_FOR_LEADER_EPOCH_V: i16 = 4;

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

/// A broker whose partition `TOPIC`-0 leads in epoch 3 since offset 2: offsets 0-1 written in
/// epoch 0, offset 2 in epoch 3. Epoch 3 comes from the checkpoint file, written while the
/// broker is stopped as Partition.makeLeader would have recorded a new leader's epoch.
async fn broker_in_epoch_3() -> Result<(TestBroker, Client)> {
    let (mut b, mut c) = broker_with_topic(TOPIC, 1).await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["a", "b"])).await?;
    let checkpoint = b
        .data_dir()
        .join(format!("{TOPIC}-0/leader-epoch-checkpoint"));
    ensure!(std::fs::read_to_string(&checkpoint)? == "0\n1\n0 0\n");
    ensure!(batch_epochs(&mut c).await? == vec![(0, 0)]);
    b.shutdown().await?;
    std::fs::write(&checkpoint, "0\n2\n0 0\n3 2\n")?;
    b.start_again().await?;
    let mut c = b.client().await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["c"])).await?;
    Ok((b, c))
}

/// Batches carry the partition's leader epoch; after a restart the partition leads in the
/// newest epoch of its `leader-epoch-checkpoint` (Kafka's file format), new batches carry it,
/// and OffsetForLeaderEpoch answers from the cache: an older epoch ends where the next begins,
/// an unknown epoch between two answers the one below (LeaderEpochFileCache.endOffsetFor). A
/// current epoch older than the partition's is FENCED_LEADER_EPOCH, a newer one
/// UNKNOWN_LEADER_EPOCH (Partition.checkCurrentLeaderEpoch).
#[tokio::test]
async fn epochs_from_the_checkpoint_are_stamped_answered_and_fence() -> Result<()> {
    let (mut b, mut c) = broker_in_epoch_3().await?;
    let checkpoint = b
        .data_dir()
        .join(format!("{TOPIC}-0/leader-epoch-checkpoint"));
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

/// Metadata and DescribeTopicPartitions report the partition's real leader epoch; Fetch (v9+)
/// and ListOffsets (v4+) check the request's current leader epoch as Kafka's
/// Partition.checkCurrentLeaderEpoch: older is FENCED_LEADER_EPOCH (at Fetch v16+ with the
/// current leader and its endpoint, KIP-951), newer UNKNOWN_LEADER_EPOCH, equal or -1 reads.
/// ListOffsets answers the epoch of the offset it finds (UnifiedLog.fetchOffsetByTimestamp).
#[tokio::test]
async fn fetch_and_list_offsets_check_the_current_leader_epoch() -> Result<()> {
    let (b, mut c) = broker_in_epoch_3().await?;
    let m = metadata(&mut c, METADATA_V, metadata_topics(&[TOPIC]), false).await?;
    let p = &m.topics[0].partitions[0];
    ensure!(p.error_code == NONE && p.leader_epoch == 3, "{p:?}");
    let node_id = m.brokers[0].node_id;

    for v in 9..=17 {
        for (current, want) in [
            (-1, NONE),
            (3, NONE),
            (2, FENCED_LEADER_EPOCH),
            (0, FENCED_LEADER_EPOCH),
            (4, UNKNOWN_LEADER_EPOCH),
        ] {
            let mut fp = fetch_partition(0, 0, 1 << 20);
            fp.current_leader_epoch = current;
            let topic = if v >= 13 {
                fetch_topic_by_id(topic_id(&mut c, TOPIC).await?, vec![fp])
            } else {
                fetch_topic(TOPIC, vec![fp])
            };
            let r = c.request(v, fetch_request(vec![topic], 0, 0)).await?;
            let pd = &r.responses[0].partitions[0];
            ensure!(
                pd.error_code == want,
                "Fetch v{v} current {current}: {pd:?}"
            );
            if want == NONE {
                ensure!(pd.high_watermark == 3, "Fetch v{v}: {pd:?}");
                continue;
            }
            ensure!(pd.high_watermark == -1, "Fetch v{v}: {pd:?}");
            let told = (
                pd.current_leader.leader_id.0,
                pd.current_leader.leader_epoch,
            );
            if want == FENCED_LEADER_EPOCH && v >= 16 {
                ensure!(told == (node_id.0, 3), "Fetch v{v}: {pd:?}");
                ensure!(
                    r.node_endpoints.len() == 1 && r.node_endpoints[0].node_id == node_id,
                    "Fetch v{v}: {:?}",
                    r.node_endpoints
                );
            } else {
                ensure!(told == (-1, -1), "Fetch v{v}: {pd:?}");
                ensure!(r.node_endpoints.is_empty(), "Fetch v{v}: {r:?}");
            }
        }
    }

    for v in 4..=9 {
        let list = |current: i32, timestamp: i64| {
            let mut req = list_offsets_request(TOPIC, 0, timestamp);
            req.topics[0].partitions[0].current_leader_epoch = current;
            req
        };
        for (current, want) in [
            (-1, NONE),
            (3, NONE),
            (2, FENCED_LEADER_EPOCH),
            (4, UNKNOWN_LEADER_EPOCH),
        ] {
            let r = c.request(v, list(current, -1)).await?;
            let p = &r.topics[0].partitions[0];
            ensure!(
                p.error_code == want,
                "ListOffsets v{v} current {current}: {p:?}"
            );
            if want == NONE {
                ensure!((p.offset, p.leader_epoch) == (3, 3), "v{v}: {p:?}");
            } else {
                ensure!((p.offset, p.leader_epoch) == (-1, -1), "v{v}: {p:?}");
            }
        }
        // Earliest and by timestamp: the epoch that wrote the offset found.
        let r = c.request(v, list(3, -2)).await?;
        let p = &r.topics[0].partitions[0];
        ensure!((p.offset, p.leader_epoch) == (0, 0), "earliest v{v}: {p:?}");
        let r = c.request(v, list(-1, 0)).await?;
        let p = &r.topics[0].partitions[0];
        ensure!(
            (p.offset, p.leader_epoch) == (0, 0),
            "timestamp 0 v{v}: {p:?}"
        );
    }
    drop(b);
    Ok(())
}

/// The data directory keeps Kafka's `recovery-point-offset-checkpoint` (OffsetCheckpointFile:
/// version, count, `<topic> <partition> <offset>` lines): written as the recovery points move
/// and at shutdown, when every log is flushed to its end.
#[tokio::test]
async fn recovery_points_are_checkpointed_in_kafkas_format() -> Result<()> {
    let (mut b, mut c) = broker_with_topic(TOPIC, 2).await?;
    produce_ok(&mut c, TOPIC, 1, values_batch(&["a", "b", "c"])).await?;
    b.shutdown().await?;
    let text = std::fs::read_to_string(b.data_dir().join("recovery-point-offset-checkpoint"))?;
    let mut lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() >= 4 && lines[0] == "0", "{text}");
    ensure!(lines[1].parse::<usize>()? == lines.len() - 2, "{text}");
    lines.drain(..2);
    ensure!(lines.contains(&"epochs 0 0"), "{text}");
    ensure!(lines.contains(&"epochs 1 3"), "{text}");
    Ok(())
}
