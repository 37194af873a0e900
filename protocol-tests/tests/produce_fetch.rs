//! Produce and Fetch round trips: content per codec, offsets, size limits (KIP-74), long polls,
//! out-of-range offsets, and topic ids.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

fn rich_records(tag: &str, n: usize, base_ts: i64) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let mut r = Rec {
                key: (i % 3 != 2).then(|| bytes_of(&format!("{tag}-key-{i}"))),
                value: (i % 4 != 3).then(|| Bytes::from(format!("{tag} value {i} ").repeat(i + 1))),
                headers: Vec::new(),
                timestamp: base_ts + (i as i64) * 7,
            };
            if i % 2 == 0 {
                r = r
                    .with_header("trace-id", Some(format!("{tag}{i}").as_bytes()))
                    .with_header("empty", Some(b""))
                    .with_header("null", None);
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn round_trip_every_codec() -> Result<()> {
    let (_b, mut c) = broker_with_topic("codecs", 1).await?;
    let base_ts = now_ms() - 60_000;
    let mut expected: Vec<Rec> = Vec::new();
    let mut next = 0;
    for (i, codec) in ALL_CODECS.iter().enumerate() {
        let recs = rich_records(&format!("{codec:?}"), 4 + i, base_ts + 1000 * i as i64);
        let base = produce_ok(&mut c, "codecs", 0, build_batch(*codec, &recs, None)).await?;
        ensure!(
            base == next,
            "{codec:?}: base offset {base}, expected {next}"
        );
        next += recs.len() as i64;
        expected.extend(recs);
    }
    let got = fetch_all(&mut c, "codecs", 0).await?;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    ensure!(
        offsets == (0..next).collect::<Vec<_>>(),
        "offsets not dense: {offsets:?}"
    );
    let got: Vec<Rec> = got.iter().map(Fetched::as_rec).collect();
    ensure!(
        got == expected,
        "content differs:\n got {got:?}\nwant {expected:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fetched_batches_are_the_produced_bytes() -> Result<()> {
    // Records are bytes: apart from base offset and leader epoch (outside the CRC), a stored batch
    // is served as it arrived, compressed payload included.
    let (_b, mut c) = broker_with_topic("bytes", 1).await?;
    let mut produced = Vec::new();
    for codec in ALL_CODECS {
        let batch = build_batch(codec, &rich_records("b", 5, now_ms()), None);
        produce_ok(&mut c, "bytes", 0, batch.clone()).await?;
        produced.push(batch);
    }
    let p = fetch_one(&mut c, "bytes", 0, 0, 10 << 20).await?;
    let records = p.records.unwrap_or_default();
    let mut at = 0;
    let mut next_offset = 0;
    for (i, sent) in produced.iter().enumerate() {
        let got = &records[at..at + sent.len()];
        ensure!(i64_at(got, 0) == next_offset, "batch {i}: base offset");
        ensure!(
            got[16..] == sent[16..],
            "batch {i}: bytes after the leader epoch differ"
        );
        ensure!(got[8..12] == sent[8..12], "batch {i}: length differs");
        at += sent.len();
        next_offset += 5;
    }
    ensure!(at == records.len(), "{} extra bytes", records.len() - at);
    Ok(())
}

#[tokio::test]
async fn fetch_inside_a_batch_returns_that_batch() -> Result<()> {
    let (_b, mut c) = broker_with_topic("inside", 1).await?;
    for n in 0..3 {
        let vals: Vec<String> = (0..5).map(|i| format!("b{n}r{i}")).collect();
        let vals: Vec<&str> = vals.iter().map(String::as_str).collect();
        produce_ok(
            &mut c,
            "inside",
            0,
            build_batch(
                Compression::Gzip,
                &vals.iter().map(Rec::value).collect::<Vec<_>>(),
                None,
            ),
        )
        .await?;
    }
    for (offset, first_base) in [(0, 0), (2, 0), (4, 0), (5, 5), (7, 5), (13, 10), (14, 10)] {
        let p = fetch_one(&mut c, "inside", 0, offset, 1 << 20).await?;
        ensure!(
            p.error_code == NONE && p.high_watermark == 15,
            "@{offset}: {p:?}"
        );
        let records = p.records.unwrap_or_default();
        let bs = batches(&records);
        ensure!(
            bs.first().map(|b| b.base_offset) == Some(first_base),
            "@{offset}: batches {bs:?}"
        );
        let recs = decode_records(&records)?;
        ensure!(
            recs.iter().any(|r| r.offset == offset
                && r.value.as_deref()
                    == Some(format!("b{}r{}", offset / 5, offset % 5).as_bytes())),
            "@{offset}: record missing"
        );
    }
    // At the high watermark: no error, no records.
    let p = fetch_one(&mut c, "inside", 0, 15, 1 << 20).await?;
    ensure!(p.error_code == NONE, "{p:?}");
    ensure!(p.records.as_ref().is_none_or(|r| r.is_empty()), "{p:?}");
    Ok(())
}

/// Three batches of ~1 KiB of incompressible values.
async fn three_big_batches(c: &mut Client, topic: &str, partition: i32) -> Result<Vec<usize>> {
    let mut sizes = Vec::new();
    for i in 0..3 {
        let v = noise(1000, i + partition as u64 * 10);
        let batch = build_batch(Compression::None, &[Rec::value(&v)], None);
        sizes.push(batch.len());
        produce_ok(c, topic, partition, batch).await?;
    }
    Ok(sizes)
}

#[tokio::test]
async fn partition_max_bytes_returns_whole_batches_and_at_least_one() -> Result<()> {
    let (_b, mut c) = broker_with_topic("limits", 1).await?;
    let sizes = three_big_batches(&mut c, "limits", 0).await?;
    // Smaller than one batch: the first batch still comes back whole (KIP-74).
    let p = fetch_one(&mut c, "limits", 0, 0, 100).await?;
    let r = p.records.unwrap_or_default();
    let bs = batches(&r);
    ensure!(bs.len() == 1 && bs[0].base_offset == 0, "{bs:?}");
    ensure!(
        r.len() == sizes[0],
        "one whole batch expected, got {} bytes",
        r.len()
    );
    // Two and a half batches: two whole batches (a partial third may follow, and is ignored).
    let limit = sizes[0] + sizes[1] + sizes[2] / 2;
    let p = fetch_one(&mut c, "limits", 0, 0, limit as i32).await?;
    let r = p.records.unwrap_or_default();
    ensure!(
        r.len() <= limit,
        "{} bytes above partition_max_bytes {limit}",
        r.len()
    );
    let bs: Vec<i64> = batches(&r).iter().map(|b| b.base_offset).collect();
    ensure!(bs == vec![0, 1], "{bs:?}");
    // From the middle.
    let p = fetch_one(&mut c, "limits", 0, 1, 10).await?;
    let bs: Vec<i64> = batches(&p.records.unwrap_or_default())
        .iter()
        .map(|b| b.base_offset)
        .collect();
    ensure!(bs == vec![1], "{bs:?}");
    Ok(())
}

#[tokio::test]
async fn response_max_bytes_spans_partitions_and_keeps_the_first_batch() -> Result<()> {
    let (_b, mut c) = broker_with_topic("maxbytes", 2).await?;
    let s0 = three_big_batches(&mut c, "maxbytes", 0).await?;
    three_big_batches(&mut c, "maxbytes", 1).await?;
    let fetch = |max_bytes: i32| {
        let mut req = fetch_request(
            vec![fetch_topic(
                "maxbytes",
                vec![
                    fetch_partition(0, 0, 1 << 20),
                    fetch_partition(1, 0, 1 << 20),
                ],
            )],
            0,
            0,
        );
        req.max_bytes = max_bytes;
        req
    };
    // max_bytes below one batch: partition 0's first batch only, partition 1 nothing.
    let r = c.request(FETCH_V, fetch(10)).await?;
    let parts = &r.responses[0].partitions;
    let p0 = batches(parts[0].records.as_deref().unwrap_or_default());
    let p1 = batches(parts[1].records.as_deref().unwrap_or_default());
    ensure!(p0.len() == 1 && p0[0].base_offset == 0, "{p0:?}");
    ensure!(p1.is_empty(), "partition 1 got {p1:?}");
    ensure!(parts
        .iter()
        .all(|p| p.error_code == NONE && p.high_watermark == 3));
    // Enough for partition 0 and one batch of partition 1.
    let limit = s0.iter().sum::<usize>() + s0[0] + 10;
    let r = c.request(FETCH_V, fetch(limit as i32)).await?;
    let parts = &r.responses[0].partitions;
    let total: usize = parts
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .sum();
    ensure!(total <= limit, "{total} bytes above max_bytes {limit}");
    let p0 = batches(parts[0].records.as_deref().unwrap_or_default());
    let p1 = batches(parts[1].records.as_deref().unwrap_or_default());
    ensure!(p0.len() == 3, "{p0:?}");
    ensure!(p1.len() == 1 && p1[0].base_offset == 0, "{p1:?}");
    Ok(())
}

#[tokio::test]
async fn long_poll_wakes_up_on_produce() -> Result<()> {
    let (b, mut c) = broker_with_topic("poll", 1).await?;
    produce_ok(&mut c, "poll", 0, values_batch(&["before"])).await?;
    let mut consumer = b.client().await?;
    let req = fetch_request(
        vec![fetch_topic("poll", vec![fetch_partition(0, 1, 1 << 20)])],
        10_000,
        1,
    );
    let started = Instant::now();
    let id = consumer.send_request(FETCH_V, &req).await?;
    sleep_ms(300).await;
    produce_ok(&mut c, "poll", 0, values_batch(&["wake", "up"])).await?;
    let resp = consumer.read_response::<FetchRequest>(FETCH_V, id).await?;
    let waited = started.elapsed();
    ensure!(
        waited < Duration::from_secs(3),
        "long poll returned after {waited:?}"
    );
    let p = &resp.responses[0].partitions[0];
    let recs = decode_records(&p.records.clone().unwrap_or_default())?;
    let vals: Vec<_> = recs
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    ensure!(vals == vec![bytes_of("wake"), bytes_of("up")], "{recs:?}");
    ensure!(p.high_watermark == 3, "{p:?}");
    Ok(())
}

#[tokio::test]
async fn long_poll_on_another_partition_is_not_fooled() -> Result<()> {
    // A produce to a partition the fetch does not ask for must not end the wait early with nothing;
    // the later produce to the right partition does.
    let (b, mut c) = broker_with_topic("poll2", 2).await?;
    let mut consumer = b.client().await?;
    let req = fetch_request(
        vec![fetch_topic("poll2", vec![fetch_partition(0, 0, 1 << 20)])],
        10_000,
        1,
    );
    let started = Instant::now();
    let id = consumer.send_request(FETCH_V, &req).await?;
    sleep_ms(200).await;
    produce_ok(&mut c, "poll2", 1, values_batch(&["elsewhere"])).await?;
    sleep_ms(300).await;
    produce_ok(&mut c, "poll2", 0, values_batch(&["here"])).await?;
    let resp = consumer.read_response::<FetchRequest>(FETCH_V, id).await?;
    ensure!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let recs = decode_records(
        &resp.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
    )?;
    ensure!(
        recs.len() == 1 && recs[0].value == Some(bytes_of("here")),
        "{recs:?}"
    );
    Ok(())
}

#[tokio::test]
async fn long_poll_by_topic_id_wakes_on_its_partition_among_many() -> Result<()> {
    // Kafka parks a fetch in the purgatory under each partition it reads
    // (TopicPartitionOperationKey); an append to any one of them completes it, whether the
    // produce and the fetch name the topic by name or by id.
    let (b, mut c) = broker_with_topic("park-a", 3).await?;
    create_topic(&mut c, "park-b", 2).await?;
    let id_a = topic_id(&mut c, "park-a").await?;
    let id_b = topic_id(&mut c, "park-b").await?;
    let mut consumer = b.client().await?;
    let all = |n: i32| (0..n).map(|p| fetch_partition(p, 0, 1 << 20)).collect();
    let req = fetch_request(
        vec![
            fetch_topic_by_id(id_a, all(3)),
            fetch_topic_by_id(id_b, all(2)),
        ],
        60_000,
        1,
    );
    let id = consumer.send_request(13, &req).await?;
    sleep_ms(200).await;
    let r = c
        .request(
            13,
            produce_request(
                -1,
                vec![topic_data_by_id(id_b, vec![(1, values_batch(&["parked"]))])],
            ),
        )
        .await?;
    ensure!(
        r.responses[0].partition_responses[0].error_code == NONE,
        "{r:?}"
    );
    // Answered long before max_wait (the read would time out otherwise).
    let resp = consumer.read_response::<FetchRequest>(13, id).await?;
    let p = &resp.responses[1].partitions[1];
    let recs = decode_records(&p.records.clone().unwrap_or_default())?;
    ensure!(
        recs.len() == 1 && recs[0].value == Some(bytes_of("parked")),
        "{resp:?}"
    );
    Ok(())
}

#[tokio::test]
async fn min_bytes_above_max_bytes_answers_once_max_bytes_are_there() -> Result<()> {
    // KafkaApis caps min_bytes at the response limit (max_bytes, fetch.max.bytes): a fetch whose
    // min_bytes could never fit answers as soon as max_bytes are available, not at max_wait.
    let (_b, mut c) = broker_with_topic("minmax", 1).await?;
    let value = "x".repeat(500);
    produce_ok(&mut c, "minmax", 0, values_batch(&[&value])).await?;
    let mut req = fetch_request(
        vec![fetch_topic("minmax", vec![fetch_partition(0, 0, 1 << 20)])],
        300_000,
        1 << 20,
    );
    req.max_bytes = 100;
    // Answered long before max_wait (the read would time out otherwise), with the first batch.
    let resp = c.request(FETCH_V, req).await?;
    let recs = decode_records(
        &resp.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
    )?;
    ensure!(recs.len() == 1, "{recs:?}");
    Ok(())
}

#[tokio::test]
async fn min_bytes_not_reached_returns_after_max_wait_with_what_there_is() -> Result<()> {
    let (_b, mut c) = broker_with_topic("minbytes", 1).await?;
    produce_ok(&mut c, "minbytes", 0, values_batch(&["small"])).await?;
    let req = fetch_request(
        vec![fetch_topic(
            "minbytes",
            vec![fetch_partition(0, 0, 1 << 20)],
        )],
        1000,
        1 << 20,
    );
    let started = Instant::now();
    let resp = c.request(FETCH_V, req).await?;
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(700),
        "returned after {waited:?}, before max_wait"
    );
    ensure!(waited < Duration::from_secs(8), "returned after {waited:?}");
    let recs = decode_records(
        &resp.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
    )?;
    ensure!(recs.len() == 1, "{recs:?}");
    // And an empty partition with min_bytes 1 waits, then answers empty.
    let req = fetch_request(
        vec![fetch_topic(
            "minbytes",
            vec![fetch_partition(0, 1, 1 << 20)],
        )],
        500,
        1,
    );
    let started = Instant::now();
    let resp = c.request(FETCH_V, req).await?;
    ensure!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    let p = &resp.responses[0].partitions[0];
    ensure!(
        p.error_code == NONE && p.records.as_ref().is_none_or(|r| r.is_empty()),
        "{p:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fetch_out_of_range() -> Result<()> {
    let (_b, mut c) = broker_with_topic("oor", 2).await?;
    produce_ok(&mut c, "oor", 0, values_batch(&["a", "b", "c"])).await?;
    for offset in [4, 1000, -5] {
        let p = fetch_one(&mut c, "oor", 0, offset, 1 << 20).await?;
        ensure!(p.error_code == OFFSET_OUT_OF_RANGE, "@{offset}: {p:?}");
        ensure!(
            p.records.as_ref().is_none_or(|r| r.is_empty()),
            "@{offset}: {p:?}"
        );
        // Kafka 4.1 answers -1 for both (LogReadResult(Errors)); the real bounds are harmless too.
        ensure!(
            (p.high_watermark, p.log_start_offset) == (-1, -1)
                || (p.high_watermark, p.log_start_offset) == (3, 0),
            "@{offset}: hw {} log start {}",
            p.high_watermark,
            p.log_start_offset
        );
    }
    // An out-of-range partition does not stop the others in the same request, nor a long poll.
    produce_ok(&mut c, "oor", 1, values_batch(&["d"])).await?;
    let req = fetch_request(
        vec![fetch_topic(
            "oor",
            vec![
                fetch_partition(0, 1000, 1 << 20),
                fetch_partition(1, 0, 1 << 20),
            ],
        )],
        5000,
        1 << 20,
    );
    let started = std::time::Instant::now();
    let r = c.request(FETCH_V, req).await?;
    ensure!(
        started.elapsed() < Duration::from_secs(3),
        "an error should answer at once"
    );
    let ps = &r.responses[0].partitions;
    ensure!(ps[0].error_code == OFFSET_OUT_OF_RANGE, "{ps:?}");
    ensure!(
        ps[1].error_code == NONE && batch_count(ps[1].records.as_deref().unwrap_or_default()) == 1,
        "{ps:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fetch_unknown_topic_and_partition() -> Result<()> {
    let (_b, mut c) = broker_with_topic("known", 1).await?;
    produce_ok(&mut c, "known", 0, values_batch(&["x"])).await?;
    let req = fetch_request(
        vec![
            fetch_topic("nope", vec![fetch_partition(0, 0, 1 << 20)]),
            fetch_topic(
                "known",
                vec![
                    fetch_partition(7, 0, 1 << 20),
                    fetch_partition(0, 0, 1 << 20),
                ],
            ),
        ],
        0,
        0,
    );
    let r = c.request(FETCH_V, req).await?;
    ensure!(r.responses.len() == 2, "{r:?}");
    ensure!(
        r.responses[0].partitions[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{r:?}"
    );
    let known = &r.responses[1].partitions;
    ensure!(known[0].partition_index == 7 && known[0].error_code == UNKNOWN_TOPIC_OR_PARTITION);
    ensure!(
        known[1].error_code == NONE
            && batch_count(known[1].records.as_deref().unwrap_or_default()) == 1
    );
    Ok(())
}

#[tokio::test]
async fn fetch_and_produce_by_topic_id() -> Result<()> {
    let (_b, mut c) = broker_with_topic("byid", 2).await?;
    let id = topic_id(&mut c, "byid").await?;
    ensure!(!id.is_nil());
    // Produce v13 names topics by id.
    let r = c
        .request(
            13,
            produce_request(
                -1,
                vec![topic_data_by_id(id, vec![(1, values_batch(&["p13"]))])],
            ),
        )
        .await?;
    ensure!(r.responses[0].topic_id == id, "{r:?}");
    ensure!(
        r.responses[0].partition_responses[0].error_code == NONE,
        "{r:?}"
    );
    for v in 13..=17 {
        let req = fetch_request(
            vec![fetch_topic_by_id(id, vec![fetch_partition(1, 0, 1 << 20)])],
            0,
            0,
        );
        let r = c.request(v, req).await?;
        let t = &r.responses[0];
        ensure!(t.topic_id == id, "v{v}: {t:?}");
        let recs = decode_records(&t.partitions[0].records.clone().unwrap_or_default())?;
        ensure!(
            recs.len() == 1 && recs[0].value == Some(bytes_of("p13")),
            "v{v}: {recs:?}"
        );
    }
    // Unknown topic id: UNKNOWN_TOPIC_ID, echoing the id; known ones in the same request work.
    let unknown = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let req = fetch_request(
        vec![
            fetch_topic_by_id(unknown, vec![fetch_partition(0, 0, 1 << 20)]),
            fetch_topic_by_id(id, vec![fetch_partition(1, 0, 1 << 20)]),
        ],
        0,
        0,
    );
    let r = c.request(13, req).await?;
    ensure!(r.responses.len() == 2, "{r:?}");
    let u = &r.responses[0];
    ensure!(u.topic_id == unknown, "{u:?}");
    ensure!(u.partitions[0].error_code == UNKNOWN_TOPIC_ID, "{u:?}");
    ensure!(r.responses[1].partitions[0].error_code == NONE, "{r:?}");
    // Produce v13 with an unknown id.
    let r = c
        .request(
            13,
            produce_request(
                -1,
                vec![topic_data_by_id(unknown, vec![(0, values_batch(&["x"]))])],
            ),
        )
        .await?;
    ensure!(
        r.responses[0].partition_responses[0].error_code == UNKNOWN_TOPIC_ID,
        "{r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn many_partitions_in_one_produce() -> Result<()> {
    let (_b, mut c) = broker_with_topic("multi", 4).await?;
    let parts: Vec<(i32, Bytes)> = (0..4)
        .map(|p| (p, values_batch(&[&format!("p{p}-a"), &format!("p{p}-b")])))
        .collect();
    let r = c
        .request(
            PRODUCE_V,
            produce_request(-1, vec![topic_data("multi", parts)]),
        )
        .await?;
    let ps = &r.responses[0].partition_responses;
    ensure!(ps.len() == 4, "{r:?}");
    for (i, p) in ps.iter().enumerate() {
        ensure!(
            p.index == i as i32 && p.error_code == NONE && p.base_offset == 0,
            "{p:?}"
        );
    }
    for p in 0..4 {
        let got = fetch_all(&mut c, "multi", p).await?;
        ensure!(got.len() == 2 && got[0].value == Some(bytes_of(&format!("p{p}-a"))));
    }
    Ok(())
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_around_a_long_poll() -> Result<()> {
    let (_b, mut c) = broker_with_topic("order", 1).await?;
    // Many produces in flight on one connection: answered in order, offsets dense.
    let mut ids = Vec::new();
    for i in 0..50 {
        let req = produce_request(
            -1,
            vec![topic_data(
                "order",
                vec![(0, values_batch(&[&format!("m{i}")]))],
            )],
        );
        ids.push(c.send_request(PRODUCE_V, &req).await?);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let r = c.read_response::<ProduceRequest>(PRODUCE_V, id).await?;
        let p = &r.responses[0].partition_responses[0];
        ensure!(
            p.error_code == NONE && p.base_offset == i as i64,
            "#{i}: {p:?}"
        );
    }
    // A long-polling fetch, then an ApiVersions: the fetch answers first.
    let fetch = fetch_request(
        vec![fetch_topic("order", vec![fetch_partition(0, 50, 1 << 20)])],
        400,
        1,
    );
    let f_id = c.send_request(FETCH_V, &fetch).await?;
    let a_id = c.send_request(0, &ApiVersionsRequest::default()).await?;
    let first = c.read_frame().await?.expect("response");
    decode_response::<FetchRequest>(first, FETCH_V, f_id)?;
    let second = c.read_frame().await?.expect("response");
    decode_response::<ApiVersionsRequest>(second, 0, a_id)?;
    Ok(())
}
