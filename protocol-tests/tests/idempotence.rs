//! Idempotent producers: producer ids, duplicate batches, sequence and epoch checks, and that the
//! state survives clean restarts and crashes.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::records::Compression;

async fn hw(c: &mut Client, topic: &str) -> Result<i64> {
    Ok(list_offset(c, topic, 0, -1).await?.offset)
}

#[tokio::test]
async fn init_producer_id_gives_distinct_ids() -> Result<()> {
    let b = start_broker().await?;
    let mut c1 = b.client().await?;
    let mut c2 = b.client().await?;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(init_producer_id(&mut c1).await?);
        ids.push(init_producer_id(&mut c2).await?);
    }
    ensure!(
        ids.iter().all(|(id, epoch)| *id >= 0 && *epoch == 0),
        "{ids:?}"
    );
    let mut sorted: Vec<i64> = ids.iter().map(|i| i.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    ensure!(sorted.len() == ids.len(), "duplicate producer ids: {ids:?}");
    Ok(())
}

#[tokio::test]
async fn producer_ids_are_not_reused_after_restart() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    let (before, _) = init_producer_id(&mut c).await?;
    b.restart_clean().await?;
    let mut c = b.client().await?;
    let (after_clean, _) = init_producer_id(&mut c).await?;
    ensure!(
        after_clean != before,
        "{before} reused after a clean restart"
    );
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    let (after_crash, _) = init_producer_id(&mut c).await?;
    ensure!(
        after_crash != before && after_crash != after_clean,
        "ids {before}, {after_clean}, {after_crash}"
    );
    Ok(())
}

#[tokio::test]
async fn retried_batch_returns_the_original_offset() -> Result<()> {
    let (_b, mut c) = broker_with_topic("dup", 1).await?;
    produce_ok(&mut c, "dup", 0, values_batch(&["plain"])).await?;
    let (pid, epoch) = init_producer_id(&mut c).await?;
    let b0 = idempotent_batch(&["a", "b"], pid, epoch, 0);
    let b1 = idempotent_batch(&["c"], pid, epoch, 2);
    ensure!(produce_ok(&mut c, "dup", 0, b0.clone()).await? == 1);
    ensure!(produce_ok(&mut c, "dup", 0, b1.clone()).await? == 3);
    // Retries of either of the last batches: success, original offset, nothing appended.
    ensure!(produce_ok(&mut c, "dup", 0, b1.clone()).await? == 3);
    ensure!(produce_ok(&mut c, "dup", 0, b0.clone()).await? == 1);
    ensure!(hw(&mut c, "dup").await? == 4);
    let got = fetch_all(&mut c, "dup", 0).await?;
    let vals: Vec<_> = got
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    ensure!(
        vals == vec![
            bytes_of("plain"),
            bytes_of("a"),
            bytes_of("b"),
            bytes_of("c")
        ],
        "{got:?}"
    );
    // The next sequence continues normally.
    ensure!(produce_ok(&mut c, "dup", 0, idempotent_batch(&["d"], pid, epoch, 3)).await? == 4);
    Ok(())
}

#[tokio::test]
async fn duplicates_of_compressed_batches() -> Result<()> {
    let (_b, mut c) = broker_with_topic("dupz", 1).await?;
    let (pid, epoch) = init_producer_id(&mut c).await?;
    let mut seq = 0;
    let mut sent = Vec::new();
    for codec in ALL_CODECS {
        let recs = vec![
            Rec::value(format!("{codec:?}-1")),
            Rec::value(format!("{codec:?}-2")),
        ];
        let b = build_batch(codec, &recs, Some((pid, epoch, seq)));
        let base = produce_ok(&mut c, "dupz", 0, b.clone()).await?;
        ensure!(base == seq as i64);
        sent.push((b, base));
        seq += 2;
    }
    // Kafka keeps the last five batches per producer: all five are still recognised.
    for (b, base) in &sent {
        ensure!(produce_ok(&mut c, "dupz", 0, b.clone()).await? == *base);
    }
    ensure!(hw(&mut c, "dupz").await? == 10);
    Ok(())
}

#[tokio::test]
async fn sequence_gap_is_out_of_order() -> Result<()> {
    let (_b, mut c) = broker_with_topic("gap", 1).await?;
    let (pid, epoch) = init_producer_id(&mut c).await?;
    produce_ok(
        &mut c,
        "gap",
        0,
        idempotent_batch(&["a", "b"], pid, epoch, 0),
    )
    .await?;
    for bad_seq in [3, 5, 1] {
        let p = produce(
            &mut c,
            "gap",
            0,
            idempotent_batch(&["x"], pid, epoch, bad_seq),
        )
        .await?;
        ensure!(
            p.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER,
            "seq {bad_seq}: {p:?}"
        );
    }
    ensure!(hw(&mut c, "gap").await? == 2);
    ensure!(produce_ok(&mut c, "gap", 0, idempotent_batch(&["c"], pid, epoch, 2)).await? == 2);
    Ok(())
}

#[tokio::test]
async fn older_epoch_is_fenced() -> Result<()> {
    let (_b, mut c) = broker_with_topic("epoch", 1).await?;
    let (pid, _) = init_producer_id(&mut c).await?;
    produce_ok(&mut c, "epoch", 0, idempotent_batch(&["e0"], pid, 0, 0)).await?;
    // A bumped epoch starts again at sequence 0.
    produce_ok(&mut c, "epoch", 0, idempotent_batch(&["e1"], pid, 1, 0)).await?;
    let p = produce(&mut c, "epoch", 0, idempotent_batch(&["old"], pid, 0, 1)).await?;
    ensure!(p.error_code == INVALID_PRODUCER_EPOCH, "{p:?}");
    // A newer epoch must start at sequence 0.
    let p = produce(&mut c, "epoch", 0, idempotent_batch(&["e2"], pid, 2, 5)).await?;
    ensure!(p.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, "{p:?}");
    ensure!(hw(&mut c, "epoch").await? == 2);
    Ok(())
}

#[tokio::test]
async fn unknown_producer_may_start_anywhere() -> Result<()> {
    // Kafka 4.1 accepts any first sequence from a producer the partition has no state for.
    let (_b, mut c) = broker_with_topic("fresh", 1).await?;
    let (pid, epoch) = init_producer_id(&mut c).await?;
    ensure!(produce_ok(&mut c, "fresh", 0, idempotent_batch(&["x"], pid, epoch, 42)).await? == 0);
    ensure!(produce_ok(&mut c, "fresh", 0, idempotent_batch(&["y"], pid, epoch, 43)).await? == 1);
    Ok(())
}

async fn duplicates_survive(crash: bool) -> Result<()> {
    let (mut b, mut c) = broker_with_topic("durable", 2).await?;
    let (pid, epoch) = init_producer_id(&mut c).await?;
    let b0 = idempotent_batch(&["a", "b", "c"], pid, epoch, 0);
    let b1 = build_batch(Compression::Lz4, &[Rec::value("d")], Some((pid, epoch, 3)));
    produce_ok(&mut c, "durable", 1, b0.clone()).await?;
    produce_ok(&mut c, "durable", 1, b1.clone()).await?;
    if crash {
        b.restart_after_crash().await?;
    } else {
        b.restart_clean().await?;
    }
    let mut c = b.client().await?;
    ensure!(
        produce_ok(&mut c, "durable", 1, b1).await? == 3,
        "retry after restart"
    );
    ensure!(
        produce_ok(&mut c, "durable", 1, b0).await? == 0,
        "older retry after restart"
    );
    ensure!(list_offset(&mut c, "durable", 1, -1).await?.offset == 4);
    let p = produce(
        &mut c,
        "durable",
        1,
        idempotent_batch(&["gap"], pid, epoch, 9),
    )
    .await?;
    ensure!(p.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, "{p:?}");
    ensure!(
        produce_ok(
            &mut c,
            "durable",
            1,
            idempotent_batch(&["e"], pid, epoch, 4)
        )
        .await?
            == 4
    );
    // And a second restart with more state on top.
    if crash {
        b.restart_after_crash().await?;
    } else {
        b.restart_clean().await?;
    }
    let mut c = b.client().await?;
    ensure!(
        produce_ok(
            &mut c,
            "durable",
            1,
            idempotent_batch(&["e"], pid, epoch, 4)
        )
        .await?
            == 4
    );
    ensure!(list_offset(&mut c, "durable", 1, -1).await?.offset == 5);
    Ok(())
}

#[tokio::test]
async fn duplicates_detected_after_clean_restart() -> Result<()> {
    duplicates_survive(false).await
}

#[tokio::test]
async fn duplicates_detected_after_crash() -> Result<()> {
    duplicates_survive(true).await
}

#[tokio::test]
async fn producer_id_not_handed_out_is_refused() -> Result<()> {
    // Kafka allocates producer ids from its own counter only (ProducerIdControlManager), never
    // from ids clients wrote. gregor refuses a batch naming an id it never handed out with
    // UNKNOWN_PRODUCER_ID (no producer state for it), so one crafted batch can neither push the
    // allocator to i64::MAX and negative ids after a restart (issue 11, item 4) nor squat on an
    // id a real producer gets later.
    let (mut b, mut c) = broker_with_topic("squat", 1).await?;
    for pid in [i64::MAX - 1, i64::MAX, 0] {
        let p = produce(&mut c, "squat", 0, idempotent_batch(&["x"], pid, 0, 0)).await?;
        ensure!(p.error_code == UNKNOWN_PRODUCER_ID, "pid {pid}: {p:?}");
    }
    ensure!(hw(&mut c, "squat").await? == 0);
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    let mut last = -1;
    for _ in 0..3 {
        let (pid, epoch) = init_producer_id(&mut c).await?;
        ensure!(
            pid > last && pid < 1_000_000 && epoch == 0,
            "pid {pid} after {last}"
        );
        last = pid;
    }
    // The ids it did hand out keep working, across a restart too.
    ensure!(produce_ok(&mut c, "squat", 0, idempotent_batch(&["a"], last, 0, 0)).await? == 0);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(produce_ok(&mut c, "squat", 0, idempotent_batch(&["b"], last, 0, 1)).await? == 1);
    Ok(())
}
