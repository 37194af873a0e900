//! Storage faults over the wire, injected through the storage trait: a partition whose disk
//! fails answers KAFKA_STORAGE_ERROR without keeping half a batch, every other partition keeps
//! working, and nothing acknowledged is lost.

mod common;

use std::sync::Arc;

use anyhow::{ensure, Result};
use common::*;
use gregor::log::storage::{Fault, FaultyStorage};
use kafka_protocol::records::Compression;

const KAFKA_STORAGE_ERROR: i16 = 56;

/// A full disk (ENOSPC) fails only the produce that hit it: gregor deliberately does better than
/// Kafka, which answers KAFKA_STORAGE_ERROR and takes the whole log directory offline until a
/// restart. Once there is room again the same partition takes produces, without a restart.
#[tokio::test]
async fn a_full_disk_fails_only_its_writes_and_recovers_without_a_restart() -> Result<()> {
    let storage = FaultyStorage::new();
    let b = TestBroker::start_on(Arc::new(Arc::clone(&storage)), |_| {}).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "full", 2).await?;
    for p in [0, 1] {
        produce_ok(&mut c, "full", p, values_batch(&["before"])).await?;
    }
    storage.inject("full-0", Fault::WriteFailsAfter(30));
    let r = produce(&mut c, "full", 0, values_batch(&["lost"])).await?;
    ensure!(r.error_code == KAFKA_STORAGE_ERROR, "{r:?}");
    // Everything else carries on, on the same connection.
    ensure!(produce_ok(&mut c, "full", 1, values_batch(&["after"])).await? == 1);
    // Room again: the partition takes the next produce at the next offset.
    storage.inject("", Fault::None);
    ensure!(produce_ok(&mut c, "full", 0, values_batch(&["after"])).await? == 1);
    let got = fetch_all(&mut c, "full", 0).await?;
    let values: Vec<_> = got.iter().map(|r| r.value.clone()).collect();
    ensure!(
        values == [Some(bytes_of("before")), Some(bytes_of("after"))],
        "{got:?}"
    );
    Ok(())
}

/// A failing device (EIO) takes only its partition offline, as Kafka takes the log directory
/// offline; a restart checks the files and brings it back.
#[tokio::test]
async fn a_failing_disk_takes_only_its_partition_offline() -> Result<()> {
    let storage = FaultyStorage::new();
    let mut b = TestBroker::start_on(Arc::new(Arc::clone(&storage)), |_| {}).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "sick", 2).await?;
    create_topic(&mut c, "well", 1).await?;
    for (topic, p) in [("sick", 0), ("sick", 1), ("well", 0)] {
        produce_ok(&mut c, topic, p, values_batch(&["before"])).await?;
    }
    storage.inject("sick-0", Fault::WriteFailsWithEio);
    let r = produce(&mut c, "sick", 0, values_batch(&["lost"])).await?;
    ensure!(r.error_code == KAFKA_STORAGE_ERROR, "{r:?}");
    // The device works again, but the partition stays offline until a restart checks its files.
    storage.inject("", Fault::None);
    let r = produce(&mut c, "sick", 0, values_batch(&["still refused"])).await?;
    ensure!(r.error_code == KAFKA_STORAGE_ERROR, "{r:?}");
    // Everything else carries on, on the same connection.
    let batch = build_batch(Compression::Zstd, &[Rec::value("after")], None);
    ensure!(produce_ok(&mut c, "sick", 1, batch).await? == 1);
    ensure!(produce_ok(&mut c, "well", 0, values_batch(&["after"])).await? == 1);
    let got = fetch_all(&mut c, "sick", 0).await?;
    ensure!(
        got.len() == 1,
        "the acknowledged record is readable: {got:?}"
    );

    drop(c);
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    let got = fetch_all(&mut c, "sick", 0).await?;
    ensure!(
        got.len() == 1 && got[0].value.as_deref() == Some(&b"before"[..]),
        "after the restart: {got:?}"
    );
    ensure!(produce_ok(&mut c, "sick", 0, values_batch(&["healed"])).await? == 1);
    Ok(())
}
