//! Log compaction for `cleanup.policy=compact`, after Kafka's LogCleaner: only the newest record
//! of each key survives, at its original offset.
//!
//! - Cleanable range: every segment but the active one, up to the first segment holding a
//!   record newer than `min.compaction.lag.ms`. A partition is cleaned when the bytes written
//!   since its last cleaning are at least `min.cleanable.dirty.ratio` of that range, or when its
//!   oldest uncleaned record is older than `max.compaction.lag.ms`.
//! - An offset map (key hash → newest offset, `OffsetMap`) is built over the dirty part of the
//!   range (from the first offset no earlier cleaning covered) until it is full; every segment
//!   from the log start up to the last mapped offset is then rewritten to `<base>.log.cleaned`
//!   without the records a newer one of the same key replaces, and swapped in by rename
//!   (`PartitionLog::install_cleaned`), with indexes rebuilt. The map's memory is bounded by
//!   `log.cleaner.dedupe.buffer.size`: a dirty part with more keys is cleaned in several passes,
//!   each continuing where the last one's map ended, as Kafka's cleaner does. Records past the
//!   mapped range are kept as they are; records before it whose key is not in the map were
//!   deduplicated by an earlier pass and are kept too.
//! - A partly kept batch keeps its header (base offset, last offset delta, producer id, epoch,
//!   base sequence, timestamps): offsets stay sparse and a producer's sequence numbers stay
//!   what they were. Only the record count, length and CRC change; the kept records are copied
//!   byte for byte (recompressed with the batch's codec when it had one).
//! - The last batch of each idempotent producer is kept even when none of its records is, as an
//!   empty batch (Kafka's RETAIN_EMPTY), so the producer state can still be rebuilt from the log.
//! - Transactions (Kafka's LogCleaner with transactional data): nothing at or past the last
//!   stable offset is cleaned; the records of aborted transactions are removed and never
//!   shadow a key; markers are kept (Kafka drops them after delete.retention.ms once their
//!   transaction's records are gone: not done yet).
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
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::batch::{
    compute_crc, BatchError, BatchHeader, ATTR_COMPRESSION_MASK, HEADER_LEN, LOG_OVERHEAD,
    OFF_ATTRIBUTES, OFF_CRC, OFF_LENGTH, OFF_RECORD_COUNT,
};
use super::index::AbortedTxn;
use super::records::{recompress, uncompressed_records, walk_records};
use super::segment::{scan, SegmentReader};
use super::LogConfig;

/// Suffix of a segment's rewritten file until it is swapped in.
pub const CLEANED_SUFFIX: &str = "log.cleaned";

/// One segment to clean, captured under the partition lock (segments other than the active one
/// never change, so reading them afterwards is safe).
pub struct CleanSource {
    pub base_offset: i64,
    /// One past the segment's last offset.
    pub next_offset: i64,
    pub reader: SegmentReader,
}

/// What `PartitionLog::clean_plan` hands to `clean`.
pub struct CleanPlan {
    /// Set when the partition is deleted: the cleaning stops at the next batch.
    pub aborted: Arc<AtomicBool>,
    pub config: LogConfig,
    pub sources: Vec<CleanSource>,
    /// Where the dirty part starts: earlier offsets were deduplicated by an earlier cleaning.
    pub first_dirty_offset: i64,
    /// Producer id → last offset of its last batch (kept, see the module comment).
    pub producer_last_offsets: HashMap<i64, i64>,
    /// The aborted transactions of the cleanable range: their records go.
    pub aborted_txns: AbortedRanges,
}

/// The aborted transactions of a range, by producer: (first offset, marker offset), in order
/// (Kafka's CleanedTransactionMetadata, asked per batch instead of walked along).
#[derive(Debug, Default)]
pub struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    pub fn new(txns: Vec<AbortedTxn>) -> AbortedRanges {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_unstable();
        }
        AbortedRanges(by_producer)
    }

    /// Whether `h` is a data batch of an aborted transaction.
    fn contains(&self, h: &BatchHeader) -> bool {
        if !h.is_transactional() || h.is_control() {
            return false;
        }
        let Some(ranges) = self.0.get(&h.producer_id) else {
            return false;
        };
        let i = ranges.partition_point(|r| r.0 <= h.base_offset);
        i > 0 && h.base_offset <= ranges[i - 1].1
    }
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
    /// Offsets below this are deduplicated once it is installed (the log's next first dirty
    /// offset): the segment's end, or less when the offset map filled up inside it.
    pub cleaned_up_to: i64,
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

/// Calls `f` with each batch (header, bytes) of a source until it breaks; stops at the first
/// error, or when the partition is deleted meanwhile.
fn for_each_batch(
    plan: &CleanPlan,
    src: &CleanSource,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<ControlFlow<()>, CleanError>,
) -> Result<(), CleanError> {
    let mut failed = None;
    scan(&*src.reader.file()?, 0, src.reader.size(), true, |b| {
        let Some(bytes) = b.bytes else { return false };
        if plan.aborted.load(Ordering::Acquire) {
            failed = Some(CleanError::Aborted);
            return false;
        }
        match f(&b.header, bytes) {
            Ok(flow) => flow.is_continue(),
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// Kafka's log.cleaner.io.buffer.load.factor: the offset map counts as full at this load.
const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;
/// Bytes per slot: a 128-bit key hash and an offset (Kafka's SkimpyOffsetMap: MD5 and offset).
const OFFSET_MAP_SLOT_BYTES: usize = 24;
/// Slots a map starts with; it doubles as keys arrive, within its budget.
const OFFSET_MAP_INITIAL_SLOTS: usize = 1024;

/// Key → newest offset for part of a log, in at most `log.cleaner.dedupe.buffer.size` bytes (Kafka's
/// SkimpyOffsetMap): keys are held as 128-bit hashes, so the memory does not depend on their
/// size. The hash is keyed with a random key, so clients cannot choose two keys that collide
/// (which would make the cleaner drop the older one's record). Open addressing with linear
/// probing; the table starts small and grows while the old and new tables together stay within
/// the budget, so a log with few keys takes little memory.
pub struct OffsetMap {
    hasher: (RandomState, RandomState),
    hashes: Vec<[u64; 2]>,
    /// Offset + 1 per slot; 0 marks an empty slot.
    offsets: Vec<i64>,
    len: usize,
    budget_slots: usize,
}

impl OffsetMap {
    pub fn new(dedupe_buffer_size: usize) -> OffsetMap {
        let budget_slots = (dedupe_buffer_size / OFFSET_MAP_SLOT_BYTES).max(2);
        let slots = OFFSET_MAP_INITIAL_SLOTS.min(budget_slots);
        OffsetMap {
            hasher: (RandomState::new(), RandomState::new()),
            hashes: vec![[0; 2]; slots],
            offsets: vec![0; slots],
            len: 0,
            budget_slots,
        }
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        [self.hasher.0.hash_one(key), self.hasher.1.hash_one(key)]
    }

    /// The slot holding `hash`, or the empty slot where it goes.
    fn slot(hashes: &[[u64; 2]], offsets: &[i64], hash: [u64; 2]) -> usize {
        let n = hashes.len();
        let mut i = ((u128::from(hash[0]) * n as u128) >> 64) as usize;
        while offsets[i] != 0 && hashes[i] != hash {
            i = (i + 1) % n;
        }
        i
    }

    fn max_len(slots: usize) -> usize {
        ((slots as f64 * OFFSET_MAP_LOAD_FACTOR) as usize).clamp(1, slots - 1)
    }

    /// Records `offset` as the newest of `key`. False when the map is full: nothing is stored.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        let mut i = Self::slot(&self.hashes, &self.offsets, hash);
        if self.offsets[i] == 0 {
            if self.len >= Self::max_len(self.hashes.len()) {
                if !self.grow() {
                    return false;
                }
                i = Self::slot(&self.hashes, &self.offsets, hash);
            }
            self.len += 1;
            self.hashes[i] = hash;
        }
        self.offsets[i] = offset + 1;
        true
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let i = Self::slot(&self.hashes, &self.offsets, self.hash(key));
        (self.offsets[i] != 0).then(|| self.offsets[i] - 1)
    }

    /// Doubles the table, or grows it as far as the budget allows (old and new tables exist
    /// together while entries move). False when it cannot grow.
    fn grow(&mut self) -> bool {
        let old_slots = self.hashes.len();
        let slots = (old_slots * 2).min(self.budget_slots.saturating_sub(old_slots));
        if slots <= old_slots {
            return false;
        }
        let mut hashes = vec![[0; 2]; slots];
        let mut offsets = vec![0; slots];
        for (h, o) in self.hashes.iter().zip(&self.offsets) {
            if *o != 0 {
                let i = Self::slot(&hashes, &offsets, *h);
                hashes[i] = *h;
                offsets[i] = *o;
            }
        }
        self.hashes = hashes;
        self.offsets = offsets;
        true
    }

    /// Bytes the table holds.
    pub fn memory_bytes(&self) -> usize {
        self.hashes.len() * OFFSET_MAP_SLOT_BYTES
    }
}

/// Fills `map` from the plan's dirty part (Kafka's buildOffsetMap) until it is full or the
/// cleanable range ends. Returns the last offset mapped: every record up to it is accounted for
/// (below `first_dirty_offset` only if nothing was dirty).
fn build_offset_map(plan: &CleanPlan, map: &mut OffsetMap) -> Result<i64, CleanError> {
    let start = plan.first_dirty_offset;
    let mut mapped_through = start - 1;
    for src in plan.sources.iter().filter(|s| s.next_offset > start) {
        let mut full = false;
        for_each_batch(plan, src, |h, bytes| {
            if h.last_offset() < start {
                return Ok(ControlFlow::Continue(()));
            }
            // Markers and aborted records never shadow a key (Kafka's buildOffsetMap skips
            // both).
            if !h.is_control() && !plan.aborted_txns.contains(h) {
                let area = uncompressed_records(bytes, h, plan.config.max_message_bytes)
                    .map_err(|e| CleanError::Batch(h.base_offset, e))?;
                let records =
                    walk_records(&area).map_err(|e| CleanError::Batch(h.base_offset, e))?;
                for r in records {
                    let offset = h.base_offset + r.offset_delta;
                    if let Some(k) = r.key.filter(|_| offset >= start) {
                        if !map.put(k, offset) {
                            full = true;
                            mapped_through = mapped_through.max(offset - 1);
                            return Ok(ControlFlow::Break(()));
                        }
                    }
                }
            }
            mapped_through = h.last_offset();
            Ok(ControlFlow::Continue(()))
        })?;
        if full {
            return Ok(mapped_through);
        }
        // A whole segment is mapped, offset gaps at its end included.
        mapped_through = src.next_offset - 1;
    }
    Ok(mapped_through)
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

/// Rewrites the source segments of the plan, up to where an offset map of at most
/// `dedupe_buffer_size` bytes reaches, into files opened through `files`; the results are swapped
/// in by `PartitionLog::install_cleaned`, and a later cleaning continues from there.
pub fn clean(
    plan: &CleanPlan,
    dedupe_buffer_size: usize,
    now_ms: i64,
    files: &dyn CleanedFiles,
) -> Result<Vec<CleanedSegment>, CleanError> {
    let mut map = OffsetMap::new(dedupe_buffer_size);
    let mapped_through = build_offset_map(plan, &mut map)?;
    let latest = Mapped {
        map,
        through: mapped_through,
    };
    let mut out = Vec::with_capacity(plan.sources.len());
    for src in plan
        .sources
        .iter()
        .take_while(|s| s.base_offset <= mapped_through)
    {
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

/// An offset map and the last offset it covers.
struct Mapped {
    map: OffsetMap,
    through: i64,
}

impl Mapped {
    /// Kafka's shouldRetainRecord: records past the map are kept; before it, a keyed record is
    /// kept when no newer record of its key is mapped (a tombstone only until
    /// delete.retention.ms); records without a key go.
    fn retains(&self, offset: i64, key: Option<&[u8]>, tombstone: bool, expired: bool) -> bool {
        if offset > self.through {
            return true;
        }
        key.is_some_and(|k| self.map.get(k).is_none_or(|newest| offset >= newest))
            && !(tombstone && expired)
    }
}

fn clean_segment(
    plan: &CleanPlan,
    src: &CleanSource,
    latest: &Mapped,
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
            file.write_all(bytes)?;
            return Ok(ControlFlow::Continue(()));
        }
        let area = uncompressed_records(bytes, h, plan.config.max_message_bytes).map_err(bad)?;
        let records = walk_records(&area).map_err(bad)?;
        // An aborted transaction's records all go (LogCleaner's discardBatchRecords).
        let aborted = plan.aborted_txns.contains(h);
        let kept: Vec<&[u8]> = records
            .iter()
            .filter(|_| !aborted)
            .filter(|r| {
                let offset = h.base_offset + r.offset_delta;
                latest.retains(offset, r.key, r.tombstone, tombstones_expired(h))
            })
            .map(|r| r.raw)
            .collect();
        removed += (records.len() - kept.len()) as u64;
        let producer_last = h.has_producer_id()
            && plan.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
        let write: Option<Vec<u8>> = if kept.len() == records.len() {
            None // unchanged: copied as it is
        } else if kept.is_empty() && !producer_last {
            return Ok(ControlFlow::Continue(()));
        } else {
            Some(rebuild(bytes, h, &kept).map_err(bad)?)
        };
        let bytes = write.as_deref().unwrap_or(bytes);
        size += bytes.len() as u64;
        file.write_all(bytes)?;
        Ok(ControlFlow::Continue(()))
    })?;
    file.sync_all()?;
    Ok(CleanedSegment {
        base_offset: src.base_offset,
        source_size: src.reader.size(),
        cleaned_up_to: src.next_offset.min(latest.through + 1),
        size,
        records_removed: removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::log::partition::PartitionLog;
    use crate::log::AppendOrigin;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    use proptest::prelude::*;
    use std::fs;

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

    /// Kafka's default log.cleaner.dedupe.buffer.size.
    const DEDUPE_BUFFER: usize = 128 << 20;

    /// Runs one cleaning at `now` the way the broker does.
    fn clean_now(log: &mut PartitionLog, now: i64) -> usize {
        clean_with(log, DEDUPE_BUFFER, now)
    }

    fn clean_with(log: &mut PartitionLog, dedupe_buffer_size: usize, now: i64) -> usize {
        let Some(plan) = log.clean_plan(now) else {
            return 0;
        };
        let cleaned = clean(&plan, dedupe_buffer_size, now, &*log).unwrap();
        log.install_cleaned(cleaned).unwrap()
    }

    const CODECS: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

    #[test]
    fn a_cleaned_segment_keeps_the_source_files_modification_time() {
        // Kafka's cleanSegments carries the source's last-modified time over: records without a
        // timestamp are judged by it (LogSegment.largestTimestamp), so a cleaning must not make
        // an old segment young again, or a compact,delete topic of such records never expires.
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), compact_config(), true, 0).unwrap();
        // Key 9 is written once, so the first segment keeps a record and survives the cleaning.
        log.append(&batch(&[(9, Some(1))], -1, Compression::None, None), 9, 0)
            .unwrap();
        for round in 0..40u8 {
            let b = batch(&[(round % 3, Some(round))], -1, Compression::None, None);
            log.append(&b, 9, 0).unwrap();
        }
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        let first = dir.path().join(crate::log::segment::file_name(0, "log"));
        fs::File::options()
            .write(true)
            .open(&first)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
        assert!(
            clean_now(&mut log, crate::broker::now_ms()) > 0,
            "nothing was cleaned"
        );
        let modified = fs::metadata(&first).unwrap().modified().unwrap();
        assert_eq!(modified, day_ago);
    }

    /// For `batches` of writes: cleaning (in as many passes as an offset map of
    /// `dedupe_buffer_size` bytes needs) leaves every surviving record at the offset it was
    /// written at; the cleaned part holds exactly the newest record of each key in it (tombstones
    /// kept: delete.retention.ms is far away); nothing after it changed; and a crash-recovery
    /// reopen reads the same.
    fn compaction_case(
        batches: &[(Vec<Write>, usize)],
        dedupe_buffer_size: usize,
    ) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), compact_config(), true, 0).unwrap();
        let mut written: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for (writes, codec) in batches {
            let base = log
                .append(&batch(writes, 1_000, CODECS[*codec], None), 9, 1_000)
                .unwrap()
                .base_offset;
            for (i, (k, v)) in writes.iter().enumerate() {
                written.push((
                    base + i as i64,
                    vec![b'k', *k],
                    v.map(|v| vec![b'v'; 1 + v as usize]),
                ));
            }
        }
        let hw = log.high_watermark();
        let before = read_log(&log);
        prop_assert_eq!(&before, &written);
        let active_base = log.active_base_offset();
        let mut passes = 0;
        while clean_with(&mut log, dedupe_buffer_size, 10_000) > 0 {
            passes += 1;
            prop_assert!(passes <= written.len(), "cleaning never finishes");
        }
        let after = read_log(&log);
        prop_assert_eq!(log.high_watermark(), hw);
        let keys: std::collections::HashSet<&Vec<u8>> = written
            .iter()
            .filter(|w| w.0 < active_base)
            .map(|w| &w.1)
            .collect();
        let map_keys = OffsetMap::new(dedupe_buffer_size).budget_slots * 9 / 10;
        prop_assert!(
            keys.len() <= map_keys.max(1) || passes > 1,
            "{} keys in one pass",
            keys.len()
        );
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
        // Once done, a cleaning finds nothing new to do; a reopen after a crash reads the same.
        prop_assert_eq!(clean_now(&mut log, 10_000), 0);
        drop(log);
        let log = PartitionLog::open(dir.path(), compact_config(), false, 20_000).unwrap();
        prop_assert_eq!(read_log(&log), expected);
        prop_assert_eq!(log.high_watermark(), hw);
        Ok(())
    }

    fn writes() -> impl Strategy<Value = Vec<(Vec<Write>, usize)>> {
        prop::collection::vec(
            (
                prop::collection::vec((0u8..6, prop::option::weighted(0.85, 0u8..40)), 1..5),
                0usize..3,
            ),
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn compaction_keeps_the_newest_record_of_each_key_at_its_offset(batches in writes()) {
            compaction_case(&batches, DEDUPE_BUFFER)?;
        }

        /// Kafka's cleaner with a full offset map: each pass cleans up to where its map reached
        /// and the next continues from there; the end result is the same (issue 11, item 12).
        #[test]
        fn compaction_in_passes_with_an_offset_map_of_two_keys(batches in writes()) {
            compaction_case(&batches, 3 * OFFSET_MAP_SLOT_BYTES)?;
        }
    }

    #[test]
    fn the_offset_map_stays_within_its_buffer() {
        // Kafka bounds its offset map by log.cleaner.dedupe.buffer.size (SkimpyOffsetMap) and
        // reports it full instead of growing (issue 11, item 12).
        let budget = 100_000;
        let mut map = OffsetMap::new(budget);
        let mut stored = 0i64;
        while map.put(&stored.to_be_bytes(), stored) {
            assert!(map.memory_bytes() <= budget);
            stored += 1;
            assert!(stored < 10_000, "never full");
        }
        assert!(stored > 1_000, "{stored} keys in {budget} bytes");
        // Full: a new key is refused, a known one still moves to its newer offset.
        assert!(!map.put(b"new key", 1));
        assert_eq!(map.get(b"new key"), None);
        assert!(map.put(&5i64.to_be_bytes(), 50_000));
        assert_eq!(map.get(&5i64.to_be_bytes()), Some(50_000));
        assert_eq!(map.get(&7i64.to_be_bytes()), Some(7));
        // A map for a few keys stays small.
        let mut small = OffsetMap::new(128 << 20);
        for i in 0..10i64 {
            assert!(small.put(&i.to_be_bytes(), i));
        }
        assert!(small.memory_bytes() <= 1024 * OFFSET_MAP_SLOT_BYTES);
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
        log.append_from(
            &batch(&[(0, Some(1))], 1, Compression::None, Some((7, 0))),
            9,
            1,
            AppendOrigin::TEST_CLIENT,
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
            .append_from(
                &batch(&[(0, Some(1))], 1, Compression::None, Some((7, 0))),
                9,
                3,
                AppendOrigin::TEST_CLIENT,
            )
            .unwrap();
        assert!(retry.duplicate);
    }

    #[test]
    fn aborted_records_go_markers_stay_and_open_transactions_are_not_cleaned() {
        // Kafka's LogCleaner with transactional data: aborted records are discarded and never
        // shadow an older value of their key; control batches are not deduplicated; nothing at
        // or past the first unstable offset is cleanable (LogCleanerManager).
        use crate::txn::TxnMarker;
        let txn = |k: u8, v: u8, pid: i64| {
            let mut b = batch(&[(k, Some(v))], 1, Compression::None, Some((pid, -1)));
            let h = BatchHeader::parse(&b).unwrap();
            let attrs = h.attributes | crate::log::batch::ATTR_TRANSACTIONAL;
            b[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
            let crc = compute_crc(&b);
            b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
            b
        };
        let end = |pid, commit| TxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        };
        let coord = AppendOrigin::Coordinator;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), compact_config(), true, 0).unwrap();
        log.append_from(&txn(0, 1, 7), 9, 1, coord).unwrap(); // 0
        log.append_txn_marker(&end(7, true), 1).unwrap(); // 1
        log.append_from(&txn(0, 2, 8), 9, 1, coord).unwrap(); // 2
        log.append_txn_marker(&end(8, false), 1).unwrap(); // 3
        while log.segment_count() < 2 {
            log.append(&batch(&[(2, Some(0))], 1, Compression::None, None), 9, 1)
                .unwrap();
        }
        let open_at = log
            .append_from(&txn(1, 3, 9), 9, 1, coord)
            .unwrap()
            .base_offset;
        let segments = log.segment_count();
        let mut k3_written = 0;
        while log.segment_count() < segments + 2 {
            log.append(&batch(&[(3, Some(0))], 1, Compression::None, None), 9, 1)
                .unwrap();
            k3_written += 1;
        }
        assert_eq!(log.last_stable_offset(), open_at);
        assert!(clean_now(&mut log, 1_000) > 0);
        let all = read_log(&log);
        let k0: Vec<_> = all.iter().filter(|r| r.1 == b"k\0").collect();
        assert_eq!(k0.len(), 1);
        assert_eq!((k0[0].0, k0[0].2.as_deref()), (0, Some(&b"vv"[..])));
        // Both markers are still there (control records: key version 0, type 0/1).
        let markers: Vec<i64> = all.iter().filter(|r| r.1.len() == 4).map(|r| r.0).collect();
        assert_eq!(markers, vec![1, 3]);
        // The open transaction's record, and every duplicate of k3 after it, stay.
        assert!(all.iter().any(|r| r.0 == open_at));
        let k3 = all.iter().filter(|r| r.1 == b"k\x03").count();
        assert_eq!(k3, k3_written);
    }
}
