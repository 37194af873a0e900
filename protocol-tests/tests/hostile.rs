//! Hostile inputs: tiny frames that claim huge element counts must give an error or a closed
//! connection, never a huge allocation (which aborts the process, taking this test binary with it).
//! After each, the broker must still serve new connections.

mod common;

use anyhow::{ensure, Result};
use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

/// Sends one frame and expects either a close or an answer; then checks the broker still serves.
async fn survive(b: &TestBroker, body: &[u8], what: &str) -> Result<Option<Bytes>> {
    let mut c = b.client().await?;
    c.send_frame(body).await?;
    let answer = c
        .read_frame()
        .await
        .map_err(|e| anyhow::anyhow!("{what}: neither an answer nor a close: {e}"))?;
    assert_serves(b)
        .await
        .map_err(|e| anyhow::anyhow!("after {what}: {e}"))?;
    Ok(answer)
}

#[tokio::test]
async fn huge_array_counts_in_requests() -> Result<()> {
    let b = start_broker().await?;
    // Metadata v1: topics array claiming i32::MAX entries, 4 bytes of body.
    let mut m1 = header_v1(3, 1);
    m1.extend_from_slice(&i32::MAX.to_be_bytes());
    let r = survive(&b, &m1, "Metadata v1 topics=i32::MAX").await?;
    ensure!(r.is_none(), "expected a close, got an answer");
    // Metadata v9 (flexible): compact array with a huge varint count.
    let mut m9 = header_v2(3, 9);
    uvarint(u32::MAX as u64, &mut m9);
    let r = survive(&b, &m9, "Metadata v9 compact topics=u32::MAX").await?;
    ensure!(r.is_none(), "expected a close, got an answer");
    // Produce v9: topic_data claiming i32::MAX topics.
    let mut p = header_v2(0, 9);
    p.push(0); // null transactional id (compact nullable string)
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&1000i32.to_be_bytes());
    uvarint(i32::MAX as u64, &mut p);
    survive(&b, &p, "Produce v9 topics=i32::MAX").await?;
    // Produce v3 (non-flexible): one topic whose partition array claims i32::MAX entries.
    let mut p = header_v1(0, 3);
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&1000i32.to_be_bytes());
    p.extend_from_slice(&1i32.to_be_bytes());
    p.extend_from_slice(&1i16.to_be_bytes());
    p.push(b't');
    p.extend_from_slice(&i32::MAX.to_be_bytes());
    survive(&b, &p, "Produce v3 partitions=i32::MAX").await?;
    // Produce v3: a records field claiming i32::MAX bytes.
    let mut p = header_v1(0, 3);
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&1000i32.to_be_bytes());
    p.extend_from_slice(&1i32.to_be_bytes());
    p.extend_from_slice(&1i16.to_be_bytes());
    p.push(b't');
    p.extend_from_slice(&1i32.to_be_bytes());
    p.extend_from_slice(&0i32.to_be_bytes());
    p.extend_from_slice(&i32::MAX.to_be_bytes());
    survive(&b, &p, "Produce v3 records=i32::MAX bytes").await?;
    // Fetch v4: topics claiming i32::MAX.
    let mut f = header_v1(1, 4);
    f.extend_from_slice(&(-1i32).to_be_bytes());
    f.extend_from_slice(&0i32.to_be_bytes());
    f.extend_from_slice(&0i32.to_be_bytes());
    f.extend_from_slice(&1000i32.to_be_bytes());
    f.push(0);
    f.extend_from_slice(&i32::MAX.to_be_bytes());
    survive(&b, &f, "Fetch v4 topics=i32::MAX").await?;
    // CreateTopics v5 (flexible): one topic whose configs claim u32::MAX entries.
    let mut ct = header_v2(19, 5);
    uvarint(2, &mut ct); // one topic
    uvarint(2, &mut ct);
    ct.push(b'x');
    ct.extend_from_slice(&1i32.to_be_bytes());
    ct.extend_from_slice(&1i16.to_be_bytes());
    uvarint(1, &mut ct); // no assignments
    uvarint(u32::MAX as u64, &mut ct);
    survive(&b, &ct, "CreateTopics v5 configs=u32::MAX").await?;
    // ListOffsets v1: topics claiming i32::MAX.
    let mut lo = header_v1(2, 1);
    lo.extend_from_slice(&(-1i32).to_be_bytes());
    lo.extend_from_slice(&i32::MAX.to_be_bytes());
    survive(&b, &lo, "ListOffsets v1 topics=i32::MAX").await?;
    // Strings and bytes claiming more than the frame holds.
    let mut s = header_v1(3, 1);
    s.extend_from_slice(&1i32.to_be_bytes());
    s.extend_from_slice(&i16::MAX.to_be_bytes());
    survive(&b, &s, "Metadata v1 name length i16::MAX").await?;
    Ok(())
}

/// A one-record batch whose header claims `count` records (CRC fixed up).
fn claims(count: i32, consistent_delta: bool, codec: Compression) -> Bytes {
    let one = build_batch(codec, &[Rec::value("only one")], None);
    let mut b = one.to_vec();
    put_i32_at(&mut b, header::RECORD_COUNT, count);
    if consistent_delta {
        put_i32_at(&mut b, header::LAST_OFFSET_DELTA, count - 1);
    }
    fix_crc(&mut b);
    Bytes::from(b)
}

#[tokio::test]
async fn record_count_i32_max_does_not_abort() -> Result<()> {
    // Whatever the broker answers, the process must survive, including the paths that decode
    // stored batches (ListOffsets by timestamp) and a consumer fetching them.
    let (b, mut c) = broker_with_topic("hostile", 1).await?;
    for codec in [Compression::None, Compression::Gzip] {
        for consistent in [false, true] {
            let p = c
                .request(
                    PRODUCE_V,
                    produce_request(
                        -1,
                        vec![topic_data(
                            "hostile",
                            vec![(0, claims(i32::MAX, consistent, codec))],
                        )],
                    ),
                )
                .await;
            if p.is_err() {
                c = b.client().await?; // closed: fine
            }
        }
    }
    let _ = list_offset(&mut c, "hostile", 0, 0).await;
    let _ = list_offset(&mut c, "hostile", 0, -3).await;
    let _ = fetch_one(&mut c, "hostile", 0, 0, 1 << 20).await;
    assert_serves(&b).await?;
    // Header counts in a record: a record claiming i32::MAX headers, stored then decoded.
    // attributes, timestamp delta, offset delta, key length -1, value length -1 (zigzag varints)
    let mut rec = vec![0u8, 0, 0, 1, 1];
    uvarint(((i32::MAX as u64) << 1) & 0xffff_ffff, &mut rec); // header count (zigzag, huge)
    let mut records = Vec::new();
    uvarint((rec.len() as u64) << 1, &mut records);
    records.extend_from_slice(&rec);
    let mut batch = claims(1, true, Compression::None).to_vec();
    batch.truncate(header::LEN);
    batch.extend_from_slice(&records);
    let len = (batch.len() - 12) as i32;
    put_i32_at(&mut batch, header::LENGTH, len);
    put_i64_at(&mut batch, header::BASE_TIMESTAMP, now_ms());
    put_i64_at(&mut batch, header::MAX_TIMESTAMP, now_ms());
    fix_crc(&mut batch);
    let _ = produce(&mut c, "hostile", 0, Bytes::from(batch)).await;
    let mut c = b.client().await?;
    let _ = list_offset(&mut c, "hostile", 0, now_ms() - 10_000).await;
    assert_serves(&b).await
}

#[tokio::test]
async fn record_count_i32_max_is_refused() -> Result<()> {
    record_count_i32_max_is_refused_for(Compression::None).await
}

#[tokio::test]
async fn compressed_record_count_i32_max_is_refused() -> Result<()> {
    record_count_i32_max_is_refused_for(Compression::Zstd).await
}

async fn record_count_i32_max_is_refused_for(codec: Compression) -> Result<()> {
    // Kafka iterates the records of every produced batch: a header claiming i32::MAX records with
    // one record inside is INVALID_RECORD (or, at worst, a closed connection), never stored.
    let (b, mut c) = broker_with_topic("hostile2", 1).await?;
    {
        for consistent in [false, true] {
            let what = format!("{codec:?} consistent={consistent}");
            match produce(&mut c, "hostile2", 0, claims(i32::MAX, consistent, codec)).await {
                Ok(p) => ensure!(p.error_code == INVALID_RECORD, "{what}: {p:?}"),
                Err(_) => c = b.client().await?,
            }
        }
    }
    let hw = list_offset(&mut c, "hostile2", 0, -1).await?.offset;
    ensure!(hw == 0, "high watermark {hw}: a hostile batch was stored");
    assert_serves(&b).await
}

#[tokio::test]
async fn many_connections_with_garbage_then_normal_service() -> Result<()> {
    let b = start_broker().await?;
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await?;
            c.send_raw(&noise(200 + i as usize * 13, i)).await?;
            // Either closed or still waiting for more bytes: never an answer to garbage that
            // could not be a request... unless it happened to parse, which noise won't.
            let _ = c
                .try_read_frame(std::time::Duration::from_millis(300))
                .await;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut c = b.client().await?;
    create_topic(&mut c, "after-garbage", 1).await?;
    produce_ok(&mut c, "after-garbage", 0, values_batch(&["ok"])).await?;
    assert_serves(&b).await
}

#[tokio::test]
async fn slow_partial_frames_are_assembled() -> Result<()> {
    // A request delivered a few bytes at a time is still one request.
    let (b, _c) = broker_with_topic("slow", 1).await?;
    let mut c = b.client().await?;
    let req = MetadataRequest::default().with_topics(metadata_topics(&["slow"]));
    let frame = c.encode_request(METADATA_V, 5, &req)?;
    for chunk in frame.chunks(3) {
        c.send_raw(chunk).await?;
        sleep_ms(2).await;
    }
    let r =
        decode_response::<MetadataRequest>(c.read_frame().await?.expect("answer"), METADATA_V, 5)?;
    ensure!(r.topics[0].error_code == NONE, "{r:?}");
    Ok(())
}
