//! Log compaction over the wire: a `cleanup.policy=compact` topic keeps the newest value of each
//! key at its original offset, and `__consumer_offsets` is created compacted.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

fn keyed(pairs: &[(&str, Option<&str>)]) -> Vec<Rec> {
    pairs
        .iter()
        .map(|(k, v)| Rec {
            key: Some(bytes_of(k)),
            value: v.map(bytes_of),
            headers: Vec::new(),
            timestamp: now_ms(),
        })
        .collect()
}

#[tokio::test]
async fn a_compacted_topic_keeps_the_newest_value_per_key_at_its_offset() -> Result<()> {
    let b = start_broker_with(|c| c.log_cleaner_backoff_ms = 100).await?;
    let mut c = b.client().await?;
    // Segments roll every 100 ms of wall time; any dirty share is worth a cleaning.
    let topic = with_config(
        with_config(
            with_config(creatable("compacted", 1), "cleanup.policy", "compact"),
            "segment.ms",
            "100",
        ),
        "min.cleanable.dirty.ratio",
        "0.01",
    );
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![topic], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    let writes: [&[(&str, Option<&str>)]; 4] = [
        &[("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1"))],
        &[("a", Some("a2")), ("c", None)],
        &[("b", Some("b2")), ("d", Some("d1"))],
        &[("e", Some("e1"))], // lands in the active segment, which is never cleaned
    ];
    for (i, w) in writes.iter().enumerate() {
        let codec = if i % 2 == 0 {
            Compression::None
        } else {
            Compression::Lz4
        };
        produce_ok(&mut c, "compacted", 0, build_batch(codec, &keyed(w), None)).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let want: Vec<(i64, &str, Option<&str>)> = vec![
        (3, "a", Some("a2")),
        (4, "c", None), // a tombstone stays for delete.retention.ms (1 day)
        (5, "b", Some("b2")),
        (6, "d", Some("d1")),
        (7, "e", Some("e1")),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = fetch_all(&mut c, "compacted", 0).await?;
        let got: Vec<(i64, String, Option<String>)> = got
            .iter()
            .map(|r| {
                let text = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
                (
                    r.offset,
                    r.key.as_ref().map(text).unwrap_or_default(),
                    r.value.as_ref().map(text),
                )
            })
            .collect();
        let matches = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.0 == w.0 && g.1 == w.1 && g.2.as_deref() == w.2);
        if matches {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not compacted within 10 s: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Offsets keep counting from where they were; records without a key are refused.
    let next = produce_ok(
        &mut c,
        "compacted",
        0,
        build_batch(Compression::None, &keyed(&[("f", Some("f1"))]), None),
    )
    .await?;
    ensure!(next == 8, "next offset {next}");
    let keyless = produce(
        &mut c,
        "compacted",
        0,
        build_batch(Compression::None, &[Rec::value("x")], None),
    )
    .await?;
    ensure!(keyless.error_code == INVALID_RECORD, "{keyless:?}");
    Ok(())
}

#[tokio::test]
async fn the_offsets_topic_is_created_compacted() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("t", 1).await?;
    commit_ok(&mut c, "g", "", -1, &[("t", 0, 1, "")]).await?;
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("__consumer_offsets"))
            .with_configuration_keys(Some(vec![s("cleanup.policy")])),
    ]);
    let r = c.request(4, req).await?;
    let entry = &r.results[0].configs[0];
    ensure!(
        entry.value.as_ref().map(|v| v.as_str()) == Some("compact"),
        "{r:?}"
    );
    Ok(())
}
