//! Log compaction for `cleanup.policy=compact`, after Kafka's LogCleaner: only the newest record
//! of each key survives, at its original offset.
//!
//! - Cleanable range: every segment but the active one, up to the first segment holding a
//!   record newer than `min.compaction.lag.ms`. A partition is cleaned when the bytes written
//!   since its last cleaning are at least `min.cleanable.dirty.ratio` of that range, or when its
//!   oldest uncleaned record is older than `max.compaction.lag.ms`.
//! - An offset map (key → newest offset) is built over the cleanable range; each segment is
//!   then rewritten to `<base>.log.cleaned` without the records a newer one of the same key
//!   replaces, and swapped in by rename (`PartitionLog::install_cleaned`), with indexes rebuilt.
//! - A partly kept batch keeps its header (base offset, last offset delta, producer id, epoch,
//!   base sequence, timestamps): offsets stay sparse and a producer's sequence numbers stay
//!   what they were. Only the record count, length and CRC change; the kept records are copied
//!   byte for byte (recompressed with the batch's codec when it had one).
//! - The last batch of each idempotent producer is kept even when none of its records is, as an
//!   empty batch (Kafka's RETAIN_EMPTY), so the producer state can still be rebuilt from the log.
//! - Tombstones (null values) stay while they are the newest record of their key and their
//!   batch is younger than `delete.retention.ms` (by its max timestamp: Kafka before KIP-534
//!   kept them by segment age; KIP-534's delete-horizon field is not written). Records without a
//!   key are dropped, as Kafka's cleaner does.
//!
//! The heavy work (`clean`) runs without the partition lock; only planning, opening each output
//! file and the swap take it. Output files are opened through the log (`CleanedFiles`), never by
//! a path captured in the plan: a topic deleted (and perhaps re-created under the same name)
//! while its partition is being cleaned aborts the cleaning, and nothing of it can land in the
//! new topic's directory (Kafka aborts a partition's cleaning before deleting its log).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::batch::{
    compute_crc, BatchError, BatchHeader, ATTR_COMPRESSION_MASK, HEADER_LEN, LOG_OVERHEAD,
    OFF_ATTRIBUTES, OFF_CRC, OFF_LENGTH, OFF_RECORD_COUNT,
};
use super::records::{recompress, uncompressed_records, walk_records};
use super::segment::{scan, SegmentReader};
use super::LogConfig;

/// Suffix of a segment's rewritten file until it is swapped in.
pub const CLEANED_SUFFIX: &str = "log.cleaned";

/// One segment to clean, captured under the partition lock (segments other than the active one
/// never change, so reading them afterwards is safe).
pub struct CleanSource {
    pub base_offset: i64,
    pub reader: SegmentReader,
}

/// What `PartitionLog::clean_plan` hands to `clean`.
pub struct CleanPlan {
    /// Set when the partition is deleted: the cleaning stops at the next batch.
    pub aborted: Arc<AtomicBool>,
    pub config: LogConfig,
    pub sources: Vec<CleanSource>,
    /// Producer id → last offset of its last batch (kept, see the module comment).
    pub producer_last_offsets: HashMap<i64, i64>,
}

/// Where the rewritten segments go: `<base>.log.cleaned` in the directory of the log that made
/// the plan, opened (and removed again) by that log, which refuses once it is deleted.
pub trait CleanedFiles {
    fn create(&self, base_offset: i64) -> io::Result<File>;
    fn discard(&self, base_offset: i64);
}

/// A rewritten segment (`<base>.log.cleaned` in the log's directory), ready to be swapped in.
#[derive(Debug)]
pub struct CleanedSegment {
    pub base_offset: i64,
    /// The size of the segment it replaces (to check it was not touched meanwhile).
    pub source_size: u64,
    pub size: u64,
    pub records_removed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("io: {0}")]
    Io(#[from] io::Error),
    #[error("batch at offset {0}: {1}")]
    Batch(i64, BatchError),
    #[error("the partition was deleted")]
    Aborted,
}

/// Calls `f` with each batch (header, bytes) of a source; stops at the first error, or when the
/// partition is deleted meanwhile.
fn for_each_batch(
    plan: &CleanPlan,
    src: &CleanSource,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), CleanError>,
) -> Result<(), CleanError> {
    let mut failed = None;
    scan(&*src.reader.file()?, 0, src.reader.size(), true, |b| {
        let Some(bytes) = b.bytes else { return false };
        if plan.aborted.load(Ordering::Acquire) {
            failed = Some(CleanError::Aborted);
            return false;
        }
        match f(&b.header, bytes) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// Key → offset of its newest record over the whole cleanable range.
fn offset_map(plan: &CleanPlan) -> Result<HashMap<Vec<u8>, i64>, CleanError> {
    let mut latest = HashMap::new();
    for src in &plan.sources {
        for_each_batch(plan, src, |h, bytes| {
            if h.is_control() {
                return Ok(());
            }
            let area = uncompressed_records(bytes, h, plan.config.max_message_bytes)
                .map_err(|e| CleanError::Batch(h.base_offset, e))?;
            let records = walk_records(&area).map_err(|e| CleanError::Batch(h.base_offset, e))?;
            for r in records {
                if let Some(k) = r.key {
                    latest.insert(k.to_vec(), h.base_offset + r.offset_delta);
                }
            }
            Ok(())
        })?;
    }
    Ok(latest)
}

/// The batch with only `kept` records (their raw bytes), its header otherwise unchanged.
fn rebuild(batch: &[u8], h: &BatchHeader, kept: &[&[u8]]) -> Result<Vec<u8>, BatchError> {
    let area: Vec<u8> = kept.concat();
    let codec = if kept.is_empty() { 0 } else { h.compression() };
    let mut out = if codec == 0 {
        let mut out = Vec::with_capacity(HEADER_LEN + area.len());
        out.extend_from_slice(&batch[..HEADER_LEN]);
        out.extend_from_slice(&area);
        let attrs = h.attributes & !ATTR_COMPRESSION_MASK;
        out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        let length = (out.len() - LOG_OVERHEAD) as i32;
        out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        out
    } else {
        recompress(batch, h, &area, codec)?
    };
    out[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = compute_crc(&out);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Rewrites every source segment of the plan into files opened through `files`; the results are
/// swapped in by `PartitionLog::install_cleaned`.
pub fn clean(
    plan: &CleanPlan,
    now_ms: i64,
    files: &dyn CleanedFiles,
) -> Result<Vec<CleanedSegment>, CleanError> {
    let latest = offset_map(plan)?;
    let mut out = Vec::with_capacity(plan.sources.len());
    for src in &plan.sources {
        let cleaned = files
            .create(src.base_offset)
            .map_err(CleanError::from)
            .and_then(|file| clean_segment(plan, src, &latest, file, now_ms));
        match cleaned {
            Ok(cleaned) => out.push(cleaned),
            Err(e) => {
                for base in out.iter().map(|c| c.base_offset).chain([src.base_offset]) {
                    files.discard(base);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn clean_segment(
    plan: &CleanPlan,
    src: &CleanSource,
    latest: &HashMap<Vec<u8>, i64>,
    mut file: File,
    now_ms: i64,
) -> Result<CleanedSegment, CleanError> {
    let mut size = 0u64;
    let mut removed = 0u64;
    let tombstones_expired = |h: &BatchHeader| {
        h.max_timestamp
            .saturating_add(plan.config.delete_retention_ms)
            < now_ms
    };
    for_each_batch(plan, src, |h, bytes| {
        let bad = |e| CleanError::Batch(h.base_offset, e);
        if h.is_control() {
            size += bytes.len() as u64;
            return Ok(file.write_all(bytes)?);
        }
        let area = uncompressed_records(bytes, h, plan.config.max_message_bytes).map_err(bad)?;
        let records = walk_records(&area).map_err(bad)?;
        let kept: Vec<&[u8]> = records
            .iter()
            .filter(|r| {
                let offset = h.base_offset + r.offset_delta;
                r.key.is_some_and(|k| latest.get(k) == Some(&offset))
                    && !(r.tombstone && tombstones_expired(h))
            })
            .map(|r| r.raw)
            .collect();
        removed += (records.len() - kept.len()) as u64;
        let producer_last = h.has_producer_id()
            && plan.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
        let write: Option<Vec<u8>> = if kept.len() == records.len() {
            None // unchanged: copied as it is
        } else if kept.is_empty() && !producer_last {
            return Ok(());
        } else {
            Some(rebuild(bytes, h, &kept).map_err(bad)?)
        };
        let bytes = write.as_deref().unwrap_or(bytes);
        size += bytes.len() as u64;
        Ok(file.write_all(bytes)?)
    })?;
    file.sync_all()?;
    Ok(CleanedSegment {
        base_offset: src.base_offset,
        source_size: src.reader.size(),
        size,
        records_removed: removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::log::partition::PartitionLog;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    use proptest::prelude::*;

    type Write = (u8, Option<u8>); // key, value (None: tombstone)

    /// One produced batch of `writes` (offsets assigned by the log), optionally idempotent.
    fn batch(
        writes: &[Write],
        ts: i64,
        codec: Compression,
        producer: Option<(i64, i32)>,
    ) -> Vec<u8> {
        let records: Vec<Record> = writes
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.map_or(-1, |p| p.0),
                producer_epoch: if producer.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: producer.map_or(i as i32, |p| p.1 + i as i32),
                timestamp: ts,
                key: Some(bytes::Bytes::from(vec![b'k', *k])),
                value: v.map(|v| bytes::Bytes::from(vec![b'v'; 1 + v as usize])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    /// Every record of the log as (offset, key, value), read the way Fetch serves it.
    fn read_log(log: &PartitionLog) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.high_watermark() {
            let bytes = log
                .plan_read(offset)
                .unwrap()
                .read(usize::MAX, true)
                .unwrap();
            if bytes.is_empty() {
                break;
            }
            // Continue after the last batch read (an emptied batch has no records to count).
            for (_, h) in crate::log::batch::BatchIter::new(&bytes) {
                offset = h.next_offset();
            }
            let mut bytes = bytes;
            while !bytes.is_empty() {
                let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
                for r in set.records {
                    out.push((
                        r.offset,
                        r.key.unwrap().to_vec(),
                        r.value.map(|v| v.to_vec()),
                    ));
                }
            }
        }
        out
    }

    fn compact_config() -> LogConfig {
        LogConfig {
            segment_bytes: 400,
            index_interval_bytes: 64,
            cleanup_compact: true,
            cleanup_delete: false,
            min_cleanable_dirty_ratio: 0.0,
            ..LogConfig::default()
        }
    }

    /// Runs one cleaning at `now` the way the broker does.
    fn clean_now(log: &mut PartitionLog, now: i64) -> usize {
        let Some(plan) = log.clean_plan(now) else {
            return 0;
        };
        let cleaned = clean(&plan, now, &*log).unwrap();
        log.install_cleaned(cleaned).unwrap()
    }

    const CODECS: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// For any sequence of writes: after cleaning, every surviving record is the one written
        /// at its offset; the cleaned part holds exactly the newest record of each key in it
        /// (tombstones kept: delete.retention.ms is far away); nothing after it changed; and a
        /// crash-recovery reopen reads the same.
        #[test]
        fn compaction_keeps_the_newest_record_of_each_key_at_its_offset(
            batches in prop::collection::vec(
                (prop::collection::vec((0u8..6, prop::option::weighted(0.85, 0u8..40)), 1..5), 0usize..3),
                1..40,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = PartitionLog::open(dir.path(), compact_config(), true, 0).unwrap();
            let mut written: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for (writes, codec) in &batches {
                let base = log.append(&batch(writes, 1_000, CODECS[*codec], None), 9, 1_000).unwrap().base_offset;
                for (i, (k, v)) in writes.iter().enumerate() {
                    written.push((base + i as i64, vec![b'k', *k], v.map(|v| vec![b'v'; 1 + v as usize])));
                }
            }
            let hw = log.high_watermark();
            let before = read_log(&log);
            prop_assert_eq!(&before, &written);
            let active_base = log.active_base_offset();
            clean_now(&mut log, 10_000);
            let after = read_log(&log);
            prop_assert_eq!(log.high_watermark(), hw);
            let newest_in_cleaned: std::collections::HashMap<Vec<u8>, i64> = written
                .iter()
                .filter(|w| w.0 < active_base)
                .map(|w| (w.1.clone(), w.0))
                .collect();
            let expected: Vec<_> = written
                .iter()
                .filter(|w| w.0 >= active_base || newest_in_cleaned.get(&w.1) == Some(&w.0))
                .cloned()
                .collect();
            prop_assert_eq!(&after, &expected);
            // A second cleaning finds nothing new to do; a reopen after a crash reads the same.
            prop_assert_eq!(clean_now(&mut log, 10_000), 0);
            drop(log);
            let log = PartitionLog::open(dir.path(), compact_config(), false, 20_000).unwrap();
            prop_assert_eq!(read_log(&log), expected);
            prop_assert_eq!(log.high_watermark(), hw);
        }
    }

    #[test]
    fn tombstones_go_after_delete_retention_and_young_segments_wait() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            delete_retention_ms: 1_000,
            min_compaction_lag_ms: 5_000,
            ..compact_config()
        };
        let mut log = PartitionLog::open(dir.path(), config, true, 0).unwrap();
        for i in 0..30u8 {
            let w: Vec<Write> = vec![(i % 3, Some(i)), (i % 3, None)];
            // Timestamps 0..29_000: later segments are younger than the compaction lag.
            log.append(
                &batch(&w, i64::from(i) * 1_000, Compression::None, None),
                9,
                0,
            )
            .unwrap();
        }
        let all = read_log(&log);
        assert!(clean_now(&mut log, 20_000) > 0);
        let after = read_log(&log);
        // Records newer than 20_000 - 5_000 (offsets from 32 on) sit in segments that were not
        // cleaned.
        let young: Vec<_> = all.iter().filter(|r| r.0 >= 32).cloned().collect();
        assert!(after.ends_with(&young), "young records untouched");
        // In the cleaned part only tombstones younger than delete.retention.ms could remain,
        // and at 20_000 those are all expired.
        assert!(
            after.iter().all(|r| r.0 >= 32 || r.2.is_some()),
            "{after:?}"
        );
        assert!(after.len() < all.len());
    }

    #[test]
    fn the_last_batch_of_a_producer_stays_even_when_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), compact_config(), true, 0).unwrap();
        // The producer's only batch writes k0, then a non-idempotent writer overwrites k0.
        log.append(
            &batch(&[(0, Some(1))], 1, Compression::None, Some((7, 0))),
            9,
            1,
        )
        .unwrap();
        for i in 0..20u8 {
            log.append(&batch(&[(0, Some(i))], 1, Compression::None, None), 9, 1)
                .unwrap();
        }
        assert!(clean_now(&mut log, 1_000) > 0);
        let first = log.plan_read(0).unwrap().read(usize::MAX, true).unwrap();
        let (_, h) = crate::log::batch::BatchIter::new(&first).next().unwrap();
        assert_eq!((h.base_offset, h.producer_id, h.record_count), (0, 7, 0));
        // A reopen rebuilds the producer's state from it: a retry of that batch is a duplicate.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), compact_config(), false, 2).unwrap();
        let retry = log
            .append(
                &batch(&[(0, Some(1))], 1, Compression::None, Some((7, 0))),
                9,
                3,
            )
            .unwrap();
        assert!(retry.duplicate);
    }
}
