//! Persistence: everything acknowledged is there after a clean restart and after a crash, offsets
//! continue where they were, and a torn tail is cut on recovery.

mod common;

use std::io::Write;

use anyhow::{ensure, Context, Result};
use common::*;

const TOPIC: &str = "durable";

/// Produces a mix of codecs to two partitions; returns what each partition should hold.
async fn produce_mix(c: &mut Client, round: usize) -> Result<Vec<Vec<Rec>>> {
    let mut expected = vec![Vec::new(), Vec::new()];
    for (i, codec) in ALL_CODECS.iter().enumerate() {
        for p in 0..2 {
            let recs: Vec<Rec> = (0..3)
                .map(|j| {
                    Rec::kv(
                        format!("r{round}-k{i}{j}"),
                        format!("r{round} {codec:?} p{p} #{j}"),
                    )
                    .with_timestamp(now_ms() - 1000 + j as i64)
                    .with_header("round", Some(format!("{round}").as_bytes()))
                })
                .collect();
            produce_ok(c, TOPIC, p, build_batch(*codec, &recs, None)).await?;
            expected[p as usize].extend(recs);
        }
    }
    Ok(expected)
}

async fn check_all(c: &mut Client, expected: &[Vec<Rec>]) -> Result<()> {
    for (p, want) in expected.iter().enumerate() {
        let got = fetch_all(c, TOPIC, p as i32).await?;
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        ensure!(
            offsets == (0..want.len() as i64).collect::<Vec<_>>(),
            "p{p}: offsets {offsets:?}"
        );
        let got: Vec<Rec> = got.iter().map(Fetched::as_rec).collect();
        ensure!(&got == want, "p{p}: content differs after restart");
        let hw = list_offset(c, TOPIC, p as i32, -1).await?.offset;
        ensure!(hw == want.len() as i64, "p{p}: high watermark {hw}");
    }
    Ok(())
}

async fn survives(crash: bool) -> Result<()> {
    let (mut b, mut c) = broker_with_topic(TOPIC, 2).await?;
    let id = topic_id(&mut c, TOPIC).await?;
    let mut expected = produce_mix(&mut c, 0).await?;
    if crash {
        b.restart_after_crash().await?;
    } else {
        b.restart_clean().await?;
    }
    let mut c = b.client().await?;
    ensure!(topic_id(&mut c, TOPIC).await? == id, "topic id changed");
    check_all(&mut c, &expected).await?;
    // Offsets continue densely after the restart.
    let more = produce_mix(&mut c, 1).await?;
    for p in 0..2 {
        expected[p].extend(more[p].clone());
    }
    if crash {
        b.restart_after_crash().await?;
    } else {
        b.restart_clean().await?;
    }
    let mut c = b.client().await?;
    check_all(&mut c, &expected).await
}

#[tokio::test]
async fn everything_is_there_after_a_clean_restart() -> Result<()> {
    survives(false).await
}

#[tokio::test]
async fn everything_is_there_after_a_crash() -> Result<()> {
    survives(true).await
}

#[tokio::test]
async fn rolled_segments_survive_and_serve_every_offset() -> Result<()> {
    let mut b = start_broker_with(|c| c.log.segment_bytes = 2048).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, TOPIC, 1).await?;
    let mut values = Vec::new();
    for i in 0..40 {
        let v = format!("{i:03}-{}", "x".repeat(200));
        produce_ok(&mut c, TOPIC, 0, values_batch(&[&v])).await?;
        values.push(v);
    }
    let segments = std::fs::read_dir(b.data_dir().join(format!("{TOPIC}-0")))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count();
    ensure!(segments > 2, "expected several segments, found {segments}");
    for crash in [false, true] {
        if crash {
            b.restart_after_crash().await?;
        } else {
            b.restart_clean().await?;
        }
        let mut c = b.client().await?;
        for offset in [0i64, 7, 8, 9, 20, 39] {
            let p = fetch_one(&mut c, TOPIC, 0, offset, 1).await?;
            let recs = decode_records(&p.records.clone().unwrap_or_default())?;
            ensure!(
                recs.first().and_then(|r| r.value.clone())
                    == Some(bytes_of(&values[offset as usize])),
                "crash={crash} @{offset}: {recs:?}"
            );
        }
        let all = fetch_all(&mut c, TOPIC, 0).await?;
        ensure!(all.len() == 40, "crash={crash}: {} records", all.len());
    }
    Ok(())
}

#[tokio::test]
async fn torn_tail_is_cut_on_recovery() -> Result<()> {
    let (mut b, mut c) = broker_with_topic(TOPIC, 1).await?;
    let vals = ["one", "two", "three"];
    for v in vals {
        produce_ok(&mut c, TOPIC, 0, values_batch(&[v])).await?;
    }
    b.crash().await;
    // Half a batch at the end of the active segment, as a crash mid-write would leave.
    let log = b
        .data_dir()
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.log");
    let torn = values_batch(&["torn"]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .with_context(|| format!("open {}", log.display()))?;
    f.write_all(&torn[..torn.len() / 2])?;
    f.sync_all()?;
    drop(f);
    b.start_again().await?;
    let mut c = b.client().await?;
    let got = fetch_all(&mut c, TOPIC, 0).await?;
    let got: Vec<_> = got
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    ensure!(
        got == vals.iter().map(|v| bytes_of(v)).collect::<Vec<_>>(),
        "{got:?}"
    );
    ensure!(produce_ok(&mut c, TOPIC, 0, values_batch(&["four"])).await? == 3);
    let all = fetch_all(&mut c, TOPIC, 0).await?;
    ensure!(
        all.len() == 4 && all[3].value == Some(bytes_of("four")),
        "{all:?}"
    );
    Ok(())
}

#[tokio::test]
async fn corrupt_tail_batch_is_cut_on_recovery() -> Result<()> {
    // A whole last batch whose CRC does not match (a torn page) is cut, not served.
    let (mut b, mut c) = broker_with_topic(TOPIC, 1).await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["good"])).await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["damaged"])).await?;
    b.crash().await;
    let log = b
        .data_dir()
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&log)?;
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    std::fs::write(&log, &bytes)?;
    b.start_again().await?;
    let mut c = b.client().await?;
    let got = fetch_all(&mut c, TOPIC, 0).await?;
    ensure!(
        got.len() == 1 && got[0].value == Some(bytes_of("good")),
        "{got:?}"
    );
    ensure!(produce_ok(&mut c, TOPIC, 0, values_batch(&["again"])).await? == 1);
    Ok(())
}

#[tokio::test]
async fn dropping_the_running_broker_then_starting_again() -> Result<()> {
    // The library's contract: dropping a RunningBroker without shutdown, then starting again on
    // the same data directory, behaves like a crash and a restart (no "directory in use").
    let dir = tempfile::tempdir()?;
    let config = gregor::Config::for_tests(dir.path().to_path_buf());
    let running = gregor::start(config.clone()).await?;
    let mut c = connect(running.local_addr).await?;
    create_topic(&mut c, TOPIC, 1).await?;
    produce_ok(&mut c, TOPIC, 0, values_batch(&["kept"])).await?;
    drop(c);
    drop(running);
    let mut restarted = None;
    for _ in 0..50 {
        match gregor::start(config.clone()).await {
            Ok(r) => {
                restarted = Some(r);
                break;
            }
            Err(_) => sleep_ms(100).await,
        }
    }
    let running = restarted.context("could not start again on the data directory after a drop")?;
    let mut c = connect(running.local_addr).await?;
    let got = fetch_all(&mut c, TOPIC, 0).await?;
    ensure!(
        got.len() == 1 && got[0].value == Some(bytes_of("kept")),
        "{got:?}"
    );
    running.shutdown().await?;
    Ok(())
}
