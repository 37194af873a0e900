//! read_committed over the wire (Fetch isolation_level 1, ListOffsets isolation_level 1) against
//! transactional data and markers written through the log API while the broker was stopped (no
//! transaction coordinator writes them yet): Kafka's UnifiedLog.read with TXN_COMMITTED stops at
//! the last stable offset and lists the aborted transactions; every Fetch answer carries the last
//! stable offset; ListOffsets LATEST for read_committed is the last stable offset.

mod common;

use anyhow::{ensure, Result};
use bytes::Bytes;
use common::*;
use gregor::log::batch::{
    compute_crc, BatchHeader, BatchIter, ATTR_TRANSACTIONAL, OFF_ATTRIBUTES, OFF_CRC,
};
use gregor::log::partition::PartitionLog;
use gregor::log::{AppendOrigin, LogConfig};
use gregor::txn::TxnMarker;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::records::Compression;

const TOPIC: &str = "rc";

/// A transactional batch of `pid` as a producer writes it (here without sequences, as a
/// coordinator's, since the log API takes it from a coordinator).
fn txn_batch(pid: i64, value: &str) -> Bytes {
    let b = build_batch(Compression::None, &[Rec::value(value)], Some((pid, 0, -1)));
    let mut b = b.to_vec();
    b[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&ATTR_TRANSACTIONAL.to_be_bytes());
    let crc = compute_crc(&b);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Offsets: 0 plain; 1 producer 7 (aborted at 3); 2 producer 8 (still open). LSO 2, HW 4.
async fn seeded() -> Result<(TestBroker, Client)> {
    let (mut b, mut c) = broker_with_topic(TOPIC, 1).await?;
    produce_ok(
        &mut c,
        TOPIC,
        0,
        build_batch(Compression::None, &[Rec::value("plain")], None),
    )
    .await?;
    b.shutdown().await?;
    let now = now_ms();
    let mut log = PartitionLog::open(&b.data_dir().join("rc-0"), LogConfig::default(), true, now)?;
    for pid in [7, 8] {
        log.append_from(&txn_batch(pid, "txn"), 9, now, AppendOrigin::Coordinator)?;
    }
    let abort = TxnMarker {
        producer_id: 7,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit: false,
    };
    ensure!(log.append_txn_marker(&abort, now)? == 3);
    log.close(now)?;
    drop(log);
    b.start_again().await?;
    let c = b.client().await?;
    Ok((b, c))
}

async fn fetch_at(
    c: &mut Client,
    offset: i64,
    isolation: i8,
    min_bytes: i32,
) -> Result<PartitionData> {
    let req = fetch_request(
        vec![fetch_topic(
            TOPIC,
            vec![fetch_partition(0, offset, 1 << 20)],
        )],
        if min_bytes > 0 { 100 } else { 0 },
        min_bytes,
    )
    .with_isolation_level(isolation);
    let resp = c.request(FETCH_V, req).await?;
    Ok(resp.responses[0].partitions[0].clone())
}

fn headers(p: &PartitionData) -> Vec<BatchHeader> {
    let records = p.records.clone().unwrap_or_default();
    BatchIter::new(&records).map(|(_, h)| h).collect()
}

#[tokio::test]
async fn read_committed_fetch_stops_at_the_last_stable_offset() -> Result<()> {
    let (_b, mut c) = seeded().await?;
    let p = fetch_at(&mut c, 0, 1, 0).await?;
    let offsets: Vec<i64> = headers(&p).iter().map(|h| h.base_offset).collect();
    ensure!(p.error_code == NONE && offsets == vec![0, 1], "{p:?}");
    ensure!((p.high_watermark, p.last_stable_offset) == (4, 2), "{p:?}");
    let aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|t| (t.producer_id.0, t.first_offset))
        .collect();
    ensure!(aborted == vec![(7, 1)], "{p:?}");
    // read_uncommitted: up to the high watermark, the marker (a control batch) included, and
    // no aborted_transactions (null), with the same last stable offset.
    let p = fetch_at(&mut c, 0, 0, 0).await?;
    let all = headers(&p);
    ensure!(all.len() == 4 && all[3].is_control(), "{all:?}");
    ensure!(
        p.aborted_transactions.is_none() && p.last_stable_offset == 2,
        "{p:?}"
    );
    // A parked read_committed fetch counts only bytes below the LSO: it waits out max_wait.
    let p = fetch_at(&mut c, 2, 1, 1).await?;
    ensure!(p.error_code == NONE && headers(&p).is_empty(), "{p:?}");
    // Out of range: no last stable offset (ReplicaManager.handleOffsetOutOfRangeError).
    let p = fetch_at(&mut c, 99, 1, 0).await?;
    ensure!(
        p.error_code == OFFSET_OUT_OF_RANGE && p.last_stable_offset == -1,
        "{p:?}"
    );
    Ok(())
}

#[tokio::test]
async fn list_offsets_latest_for_read_committed_is_the_last_stable_offset() -> Result<()> {
    let (_b, mut c) = seeded().await?;
    for (isolation, want) in [(0, 4), (1, 2)] {
        let req = list_offsets_request(TOPIC, 0, -1).with_isolation_level(isolation);
        let resp = c.request(LIST_OFFSETS_V, req).await?;
        let p = &resp.topics[0].partitions[0];
        ensure!(
            p.error_code == NONE && p.offset == want,
            "isolation {isolation}: {p:?}"
        );
    }
    Ok(())
}
