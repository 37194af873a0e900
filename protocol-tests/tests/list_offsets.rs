//! ListOffsets: earliest, latest, by timestamp (the exact record inside a batch), max timestamp,
//! and unknown partitions.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const T0: i64 = 1_700_000_000_000;

/// Offsets 0..=2 (none) at T0+0,10,20; 3..=5 (gzip) at T0+30,40,50 with an out-of-order record;
/// 6..=7 (zstd) at T0+100, T0+60.
async fn seeded() -> Result<(TestBroker, Client)> {
    let (b, mut c) = broker_with_topic("lo", 2).await?;
    let batch = |codec, ts: &[i64]| {
        let recs: Vec<Rec> = ts
            .iter()
            .map(|t| Rec::value(format!("at {t}")).with_timestamp(T0 + t))
            .collect();
        build_batch(codec, &recs, None)
    };
    produce_ok(&mut c, "lo", 0, batch(Compression::None, &[0, 10, 20])).await?;
    produce_ok(&mut c, "lo", 0, batch(Compression::Gzip, &[30, 45, 40])).await?;
    produce_ok(&mut c, "lo", 0, batch(Compression::Zstd, &[100, 60])).await?;
    Ok((b, c))
}

#[tokio::test]
async fn earliest_and_latest() -> Result<()> {
    let (_b, mut c) = seeded().await?;
    for v in 1..=9 {
        let e = list_offset_at(&mut c, v, "lo", 0, -2).await?;
        ensure!(
            e.error_code == NONE && e.offset == 0 && e.timestamp == -1,
            "v{v}: {e:?}"
        );
        let l = list_offset_at(&mut c, v, "lo", 0, -1).await?;
        ensure!(
            l.error_code == NONE && l.offset == 8 && l.timestamp == -1,
            "v{v}: {l:?}"
        );
        // An empty partition: both are 0.
        let e = list_offset_at(&mut c, v, "lo", 1, -2).await?;
        let l = list_offset_at(&mut c, v, "lo", 1, -1).await?;
        ensure!(e.offset == 0 && l.offset == 0, "v{v}: {e:?} {l:?}");
    }
    Ok(())
}

#[tokio::test]
async fn by_timestamp_finds_the_record_inside_the_batch() -> Result<()> {
    let (_b, mut c) = seeded().await?;
    // (target, expected offset, expected timestamp)
    let cases = [
        (0, 0, T0),
        (T0 - 5, 0, T0),
        (T0, 0, T0),
        (T0 + 1, 1, T0 + 10),
        (T0 + 20, 2, T0 + 20),
        (T0 + 21, 3, T0 + 30),
        // Inside the gzip batch: the first record at or after the target, in offset order.
        (T0 + 41, 4, T0 + 45),
        (T0 + 40, 4, T0 + 45),
        (T0 + 46, 6, T0 + 100),
        (T0 + 61, 6, T0 + 100),
        (T0 + 100, 6, T0 + 100),
    ];
    for (target, offset, ts) in cases {
        let p = list_offset(&mut c, "lo", 0, target).await?;
        ensure!(
            p.error_code == NONE && (p.offset, p.timestamp) == (offset, ts),
            "target {target}: got ({}, {}), want ({offset}, {ts})",
            p.offset,
            p.timestamp
        );
    }
    // Beyond every record: no offset, no error.
    let p = list_offset(&mut c, "lo", 0, T0 + 101).await?;
    ensure!(
        p.error_code == NONE && p.offset == -1 && p.timestamp == -1,
        "{p:?}"
    );
    // Empty partition likewise.
    let p = list_offset(&mut c, "lo", 1, T0).await?;
    ensure!(p.error_code == NONE && p.offset == -1, "{p:?}");
    Ok(())
}

#[tokio::test]
async fn max_timestamp() -> Result<()> {
    let (_b, mut c) = seeded().await?;
    for v in 7..=9 {
        let p = list_offset_at(&mut c, v, "lo", 0, -3).await?;
        ensure!(
            p.error_code == NONE && (p.offset, p.timestamp) == (6, T0 + 100),
            "v{v}: {p:?}"
        );
        let p = list_offset_at(&mut c, v, "lo", 1, -3).await?;
        ensure!(
            p.error_code == NONE && p.offset == -1 && p.timestamp == -1,
            "v{v} empty: {p:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn special_timestamps_need_their_version() -> Result<()> {
    // ReplicaManager.isListOffsetsTimestampUnsupported: MAX_TIMESTAMP (-3) needs v7,
    // EARLIEST_LOCAL (-4) v8, LATEST_TIERED (-5) v9; other negative timestamps never work.
    let (_b, mut c) = seeded().await?;
    for (ts, since) in [(-3, 7), (-4, 8), (-5, 9)] {
        for v in 1..since {
            let p = list_offset_at(&mut c, v, "lo", 0, ts).await?;
            ensure!(p.error_code == UNSUPPORTED_VERSION, "{ts} at v{v}: {p:?}");
        }
        let p = list_offset_at(&mut c, since, "lo", 0, ts).await?;
        ensure!(p.error_code == NONE, "{ts} at v{since}: {p:?}");
    }
    let p = list_offset(&mut c, "lo", 0, -6).await?;
    ensure!(p.error_code == UNSUPPORTED_VERSION, "{p:?}");
    Ok(())
}

#[tokio::test]
async fn a_partition_named_twice_is_an_invalid_request() -> Result<()> {
    // ReplicaManager.fetchOffset answers a partition the request names more than once with
    // INVALID_REQUEST (once); the other partitions are answered as usual.
    let (_b, mut c) = seeded().await?;
    let part = |i: i32| {
        ListOffsetsPartition::default()
            .with_partition_index(i)
            .with_timestamp(-1)
    };
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("lo"))
            .with_partitions(vec![part(0), part(1), part(0)])]);
    let r = c.request(LIST_OFFSETS_V, req).await?;
    let ps = &r.topics[0].partitions;
    ensure!(ps.len() == 2, "{ps:?}");
    ensure!(
        ps[0].partition_index == 0 && ps[0].error_code == INVALID_REQUEST,
        "{ps:?}"
    );
    ensure!(
        ps[1].partition_index == 1 && ps[1].error_code == NONE,
        "{ps:?}"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_topic_and_partition() -> Result<()> {
    let (_b, mut c) = seeded().await?;
    let p = list_offset(&mut c, "lo", 5, -1).await?;
    ensure!(
        p.error_code == UNKNOWN_TOPIC_OR_PARTITION && p.partition_index == 5,
        "{p:?}"
    );
    let p = list_offset(&mut c, "no-such-topic", 0, -2).await?;
    ensure!(p.error_code == UNKNOWN_TOPIC_OR_PARTITION, "{p:?}");
    // Mixed in one request: the known partitions still answer.
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name("lo"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                    ListOffsetsPartition::default()
                        .with_partition_index(9)
                        .with_timestamp(-1),
                ]),
            ListOffsetsTopic::default()
                .with_name(name("ghost"))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
        ]);
    let r = c.request(LIST_OFFSETS_V, req).await?;
    ensure!(r.topics.len() == 2, "{r:?}");
    let lo = &r.topics[0].partitions;
    ensure!(lo[0].error_code == NONE && lo[0].offset == 8, "{lo:?}");
    ensure!(lo[1].error_code == UNKNOWN_TOPIC_OR_PARTITION, "{lo:?}");
    ensure!(
        r.topics[1].partitions[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn log_append_time_topic() -> Result<()> {
    // With message.timestamp.type=LogAppendTime the broker's clock decides: every record of a batch
    // carries the append time, in Fetch and in ListOffsets.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let t = with_config(
        creatable("lat", 1),
        "message.timestamp.type",
        "LogAppendTime",
    );
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    let before = now_ms();
    let recs = vec![
        Rec::value("a").with_timestamp(5),
        Rec::value("b").with_timestamp(6),
    ];
    let p = produce(
        &mut c,
        "lat",
        0,
        build_batch(Compression::Snappy, &recs, None),
    )
    .await?;
    let after = now_ms();
    ensure!(p.error_code == NONE, "{p:?}");
    ensure!(
        (before..=after).contains(&p.log_append_time_ms),
        "log_append_time_ms {} not in [{before}, {after}]",
        p.log_append_time_ms
    );
    let got = fetch_all(&mut c, "lat", 0).await?;
    ensure!(
        got.len() == 2 && got.iter().all(|r| r.timestamp == p.log_append_time_ms),
        "{got:?}"
    );
    let o = list_offset(&mut c, "lat", 0, before).await?;
    ensure!(
        o.offset == 0 && o.timestamp == p.log_append_time_ms,
        "{o:?}"
    );
    let o = list_offset(&mut c, "lat", 0, -3).await?;
    ensure!(
        o.offset == 0 && o.timestamp == p.log_append_time_ms,
        "{o:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_claimed_max_timestamp_is_replaced_by_the_records_one() -> Result<()> {
    // Kafka's LogValidator recomputes MaxTimestamp from the records and rewrites the header (and
    // its CRC) when the producer's value differs; the time index and ListOffsets follow the
    // recomputed value (issue 11, item 2).
    let (_b, mut c) = broker_with_topic("claims", 1).await?;
    let century = 100 * 365 * 86_400_000;
    for (ts, claimed) in [([0, 10], 0), ([20, 30], T0 + century)] {
        let recs: Vec<Rec> = ts
            .iter()
            .map(|t| Rec::value("v").with_timestamp(T0 + t))
            .collect();
        let mut b = build_batch(Compression::None, &recs, None).to_vec();
        put_i64_at(&mut b, header::MAX_TIMESTAMP, claimed);
        fix_crc(&mut b);
        produce_ok(&mut c, "claims", 0, b.into()).await?;
    }
    // (target, expected offset, expected timestamp)
    for (target, offset, ts) in [
        (T0 + 5, 1, T0 + 10),
        (T0 + 25, 3, T0 + 30),
        (T0 + 31, -1, -1),
        (-3, 3, T0 + 30),
    ] {
        let p = list_offset(&mut c, "claims", 0, target).await?;
        ensure!(
            p.error_code == NONE && (p.offset, p.timestamp) == (offset, ts),
            "target {target}: {p:?}"
        );
    }
    let p = fetch_one(&mut c, "claims", 0, 0, 1 << 20).await?;
    let records = p.records.unwrap_or_default();
    let maxes: Vec<i64> = batches(&records)
        .iter()
        .scan(0, |at, info| {
            let max = i64_at(&records[*at..], header::MAX_TIMESTAMP);
            *at += info.size;
            Some(max)
        })
        .collect();
    ensure!(
        maxes == vec![T0 + 10, T0 + 30],
        "stored max timestamps {maxes:?}"
    );
    // The rewritten headers carry valid CRCs: the records decode.
    ensure!(decode_records(&records)?.len() == 4);
    Ok(())
}
