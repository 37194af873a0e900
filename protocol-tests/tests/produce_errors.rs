//! Produce error paths: each bad partition gets Kafka's error code, the good partitions of the
//! same request still succeed, and nothing of a refused batch is stored.

mod common;

use anyhow::{ensure, Result};
use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

fn edited(batch: &Bytes, f: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut b = batch.to_vec();
    f(&mut b);
    Bytes::from(b)
}

async fn hw(c: &mut Client, topic: &str, partition: i32) -> Result<i64> {
    Ok(list_offset(c, topic, partition, -1).await?.offset)
}

#[tokio::test]
async fn bad_crc_fails_only_its_partition() -> Result<()> {
    let (_b, mut c) = broker_with_topic("crc", 3).await?;
    let good = values_batch(&["ok-1", "ok-2"]);
    let bad = edited(&good, |b| {
        let last = b.len() - 1;
        b[last] ^= 0x55;
    });
    let r = c
        .request(
            PRODUCE_V,
            produce_request(
                -1,
                vec![topic_data(
                    "crc",
                    vec![(0, good.clone()), (1, bad), (2, good.clone())],
                )],
            ),
        )
        .await?;
    let ps = &r.responses[0].partition_responses;
    ensure!(ps.len() == 3, "{r:?}");
    ensure!(
        ps[0].index == 0 && ps[0].error_code == NONE && ps[0].base_offset == 0,
        "{ps:?}"
    );
    ensure!(
        ps[1].index == 1 && ps[1].error_code == CORRUPT_MESSAGE,
        "{ps:?}"
    );
    ensure!(
        ps[2].index == 2 && ps[2].error_code == NONE && ps[2].base_offset == 0,
        "{ps:?}"
    );
    ensure!(hw(&mut c, "crc", 1).await? == 0);
    ensure!(hw(&mut c, "crc", 0).await? == 2);
    // A corrupted compressed payload is caught by the CRC as well.
    let gz = build_batch(Compression::Gzip, &vec![Rec::value("zip"); 3], None);
    let bad_gz = edited(&gz, |b| b[header::LEN + 3] ^= 1);
    ensure!(produce(&mut c, "crc", 1, bad_gz).await?.error_code == CORRUPT_MESSAGE);
    ensure!(produce(&mut c, "crc", 1, gz).await?.error_code == NONE);
    Ok(())
}

#[tokio::test]
async fn batch_above_max_message_bytes() -> Result<()> {
    let b = start_broker_with(|c| c.log.max_message_bytes = 2000).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "big", 1).await?;
    let big = build_batch(Compression::None, &[Rec::value(noise(3000, 1))], None);
    let p = produce(&mut c, "big", 0, big).await?;
    ensure!(p.error_code == MESSAGE_TOO_LARGE, "{p:?}");
    let fits = build_batch(Compression::None, &[Rec::value(noise(1500, 2))], None);
    ensure!(produce(&mut c, "big", 0, fits).await?.error_code == NONE);
    // The topic-level max.message.bytes overrides the broker's.
    let t = with_config(creatable("bigger", 1), "max.message.bytes", "10000");
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    let big = build_batch(Compression::None, &[Rec::value(noise(3000, 3))], None);
    let p = produce(&mut c, "bigger", 0, big).await?;
    ensure!(p.error_code == NONE, "{p:?}");
    Ok(())
}

#[tokio::test]
async fn invalid_batches_get_invalid_record() -> Result<()> {
    let (_b, mut c) = broker_with_topic("invalid", 1).await?;
    let good = values_batch(&["a", "b", "c"]);
    let cases: Vec<(&str, Bytes)> = vec![
        (
            "base offset 5",
            edited(&good, |b| put_i64_at(b, header::BASE_OFFSET, 5)),
        ),
        (
            "record count 4 with last offset delta 2",
            edited(&good, |b| {
                put_i32_at(b, header::RECORD_COUNT, 4);
                fix_crc(b);
            }),
        ),
        (
            "last offset delta 5 with record count 3",
            edited(&good, |b| {
                put_i32_at(b, header::LAST_OFFSET_DELTA, 5);
                fix_crc(b);
            }),
        ),
        (
            "record count 0",
            edited(&good, |b| {
                put_i32_at(b, header::RECORD_COUNT, 0);
                put_i32_at(b, header::LAST_OFFSET_DELTA, -1);
                fix_crc(b);
            }),
        ),
        ("two batches", {
            let mut two = BytesMut::from(&good[..]);
            two.extend_from_slice(&values_batch(&["d"]));
            two.freeze()
        }),
        ("magic 1", edited(&good, |b| b[header::MAGIC] = 1)),
        (
            "control batch",
            edited(&good, |b| {
                b[header::ATTRIBUTES + 1] |= 0x20;
                fix_crc(b);
            }),
        ),
        (
            "producer id without a sequence",
            edited(&good, |b| {
                put_i64_at(b, header::PRODUCER_ID, 77);
                fix_crc(b);
            }),
        ),
        ("no records at all", Bytes::new()),
        ("a truncated batch", good.slice(..good.len() - 4)),
    ];
    for (what, batch) in cases {
        let p = produce(&mut c, "invalid", 0, batch).await?;
        ensure!(p.error_code == INVALID_RECORD, "{what}: {p:?}");
    }
    ensure!(
        hw(&mut c, "invalid", 0).await? == 0,
        "a refused batch was stored"
    );
    ensure!(produce(&mut c, "invalid", 0, good).await?.error_code == NONE);
    Ok(())
}

#[tokio::test]
async fn records_that_disagree_with_the_header_are_refused() -> Result<()> {
    records_that_disagree_with_the_header_are_refused_for(Compression::None).await
}

#[tokio::test]
async fn compressed_records_that_disagree_with_the_header_are_refused() -> Result<()> {
    records_that_disagree_with_the_header_are_refused_for(Compression::Gzip).await
}

async fn records_that_disagree_with_the_header_are_refused_for(codec: Compression) -> Result<()> {
    // Kafka iterates the records of every produced batch (LogValidator): a header that claims more
    // records than the batch holds is INVALID_RECORD, even with a consistent header and CRC.
    let (_b, mut c) = broker_with_topic("count", 1).await?;
    {
        let two = build_batch(codec, &[Rec::value("x"), Rec::value("y")], None);
        let claims_three = edited(&two, |b| {
            put_i32_at(b, header::RECORD_COUNT, 3);
            put_i32_at(b, header::LAST_OFFSET_DELTA, 2);
            fix_crc(b);
        });
        let p = produce(&mut c, "count", 0, claims_three).await?;
        ensure!(p.error_code == INVALID_RECORD, "{codec:?}: {p:?}");
    }
    ensure!(
        hw(&mut c, "count", 0).await? == 0,
        "a refused batch was stored"
    );
    Ok(())
}

#[tokio::test]
async fn log_append_time_bit_from_a_client_is_refused() -> Result<()> {
    let (_b, mut c) = broker_with_topic("lat", 1).await?;
    let b = edited(&values_batch(&["a"]), |b| {
        b[header::ATTRIBUTES + 1] |= 0x08;
        fix_crc(b);
    });
    let p = produce(&mut c, "lat", 0, b).await?;
    ensure!(p.error_code == 32, "INVALID_TIMESTAMP expected: {p:?}");
    Ok(())
}

#[tokio::test]
async fn zstd_needs_produce_v7() -> Result<()> {
    let (_b, mut c) = broker_with_topic("zstd", 1).await?;
    let z = build_batch(Compression::Zstd, &[Rec::value("z")], None);
    for v in 3..=6 {
        let p = produce_at(&mut c, v, "zstd", 0, z.clone()).await?;
        ensure!(p.error_code == UNSUPPORTED_COMPRESSION_TYPE, "v{v}: {p:?}");
    }
    let p = produce_at(&mut c, 7, "zstd", 0, z).await?;
    ensure!(p.error_code == NONE && p.base_offset == 0, "{p:?}");
    Ok(())
}

#[tokio::test]
async fn unknown_topic_and_partition() -> Result<()> {
    let b = start_broker().await?; // auto-create on: Produce never creates topics
    let mut c = b.client().await?;
    create_topic(&mut c, "one", 1).await?;
    let r = c
        .request(
            PRODUCE_V,
            produce_request(
                -1,
                vec![
                    topic_data("nope", vec![(0, values_batch(&["x"]))]),
                    topic_data(
                        "one",
                        vec![
                            (1, values_batch(&["x"])),
                            (-1, values_batch(&["x"])),
                            (0, values_batch(&["ok"])),
                        ],
                    ),
                ],
            ),
        )
        .await?;
    ensure!(r.responses.len() == 2, "{r:?}");
    ensure!(r.responses[0].name.as_str() == "nope");
    ensure!(
        r.responses[0].partition_responses[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{r:?}"
    );
    let ps = &r.responses[1].partition_responses;
    ensure!(
        ps[0].index == 1 && ps[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{ps:?}"
    );
    ensure!(
        ps[1].index == -1 && ps[1].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{ps:?}"
    );
    ensure!(ps[2].index == 0 && ps[2].error_code == NONE, "{ps:?}");
    // Still unknown afterwards: produce did not auto-create it.
    let m = metadata(&mut c, METADATA_V, metadata_topics(&["nope"]), false).await?;
    ensure!(
        m.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{m:?}"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_acks() -> Result<()> {
    let (_b, mut c) = broker_with_topic("acks", 1).await?;
    for acks in [2i16, -2, 5] {
        let r = c
            .request(
                PRODUCE_V,
                produce_request(
                    acks,
                    vec![topic_data("acks", vec![(0, values_batch(&["x"]))])],
                ),
            )
            .await?;
        let p = &r.responses[0].partition_responses[0];
        ensure!(p.error_code == INVALID_REQUIRED_ACKS, "acks {acks}: {p:?}");
    }
    ensure!(
        hw(&mut c, "acks", 0).await? == 0,
        "stored despite invalid acks"
    );
    Ok(())
}

#[tokio::test]
async fn acks_zero_gets_no_response() -> Result<()> {
    let (_b, mut c) = broker_with_topic("acks0", 1).await?;
    let produce_id = c
        .send_request(
            PRODUCE_V,
            &produce_request(
                0,
                vec![topic_data(
                    "acks0",
                    vec![(0, values_batch(&["fire", "forget"]))],
                )],
            ),
        )
        .await?;
    // The next request's response is the next frame on the wire.
    let m_id = c
        .send_request(
            METADATA_V,
            &MetadataRequest::default().with_topics(metadata_topics(&["acks0"])),
        )
        .await?;
    ensure!(m_id != produce_id);
    let m = c.read_response::<MetadataRequest>(METADATA_V, m_id).await?;
    ensure!(m.topics[0].error_code == NONE);
    let got = fetch_all(&mut c, "acks0", 0).await?;
    let vals: Vec<_> = got
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    ensure!(
        vals == vec![bytes_of("fire"), bytes_of("forget")],
        "{got:?}"
    );
    Ok(())
}

#[tokio::test]
async fn acks_zero_failure_closes_the_connection() -> Result<()> {
    // Kafka closes the connection when an acks=0 produce fails, so the producer notices.
    let (b, mut c) = broker_with_topic("acks0err", 1).await?;
    let bad = edited(&values_batch(&["x"]), |b| {
        let l = b.len() - 1;
        b[l] ^= 1
    });
    c.send_request(
        PRODUCE_V,
        &produce_request(0, vec![topic_data("acks0err", vec![(0, bad)])]),
    )
    .await?;
    c.expect_closed().await?;
    assert_serves(&b).await
}

#[tokio::test]
async fn timestamps_outside_the_topic_bounds() -> Result<()> {
    // Kafka 4 defaults: message.timestamp.after.max.ms = 1 hour, before = unlimited (KIP-1030).
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "ts", 1).await?;
    let t = with_config(
        creatable("ts-strict", 1),
        "message.timestamp.before.max.ms",
        "3600000",
    );
    ensure!(create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?[0].error_code == NONE);
    let now = now_ms();
    let future = build_batch(
        Compression::None,
        &[
            Rec::value("a").with_timestamp(now),
            Rec::value("b").with_timestamp(now + 2 * 3_600_000),
        ],
        None,
    );
    let p = produce(&mut c, "ts", 0, future.clone()).await?;
    ensure!(p.error_code == 32, "INVALID_TIMESTAMP expected: {p:?}");
    // Ancient timestamps are fine by default, refused with before.max.ms.
    let old = build_batch(
        Compression::Lz4,
        &[Rec::value("old").with_timestamp(now - 10 * 3_600_000)],
        None,
    );
    ensure!(produce(&mut c, "ts", 0, old.clone()).await?.error_code == NONE);
    let p = produce(&mut c, "ts-strict", 0, old).await?;
    ensure!(p.error_code == 32, "INVALID_TIMESTAMP expected: {p:?}");
    // -1 (no timestamp) is always accepted.
    let none = build_batch(
        Compression::None,
        &[Rec::value("none").with_timestamp(-1)],
        None,
    );
    ensure!(produce(&mut c, "ts-strict", 0, none).await?.error_code == NONE);
    Ok(())
}

#[tokio::test]
async fn invalid_timestamp_names_the_records_in_record_errors() -> Result<()> {
    // Since Produce v8 (KIP-467) Kafka lists the offending records by index in record_errors, so
    // the producer fails only those.
    let (_b, mut c) = broker_with_topic("ts-errors", 1).await?;
    let now = now_ms();
    let batch = build_batch(
        Compression::None,
        &[
            Rec::value("ok").with_timestamp(now),
            Rec::value("late").with_timestamp(now + 2 * 3_600_000),
        ],
        None,
    );
    let p = produce_at(&mut c, 9, "ts-errors", 0, batch).await?;
    ensure!(p.error_code == 32, "{p:?}");
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    ensure!(indexes == vec![1], "record_errors {:?}", p.record_errors);
    Ok(())
}

#[tokio::test]
async fn compacted_topic_needs_keys() -> Result<()> {
    // LogValidator: "Compacted topic cannot accept message without key" (INVALID_RECORD).
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let t = with_config(creatable("compacted", 1), "cleanup.policy", "compact");
    ensure!(create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?[0].error_code == NONE);
    for codec in [Compression::None, Compression::Snappy] {
        let batch = build_batch(codec, &[Rec::kv("k", "keyed"), Rec::value("no key")], None);
        let p = produce(&mut c, "compacted", 0, batch).await?;
        ensure!(p.error_code == INVALID_RECORD, "{codec:?}: {p:?}");
    }
    let keyed = build_batch(Compression::None, &[Rec::kv("k", "v")], None);
    ensure!(produce(&mut c, "compacted", 0, keyed).await?.error_code == NONE);
    ensure!(hw(&mut c, "compacted", 0).await? == 1);
    Ok(())
}
