//! Offline consistency check of partition logs (the `gregor-check` binary; used by the crash
//! torture in `scripts/torture`). Opens files read-only and never repairs anything.
//!
//! For every segment of a partition directory it asserts:
//! - every batch is whole, has magic 2 and a valid CRC-32C, and the scan reaches the end of the
//!   file (a torn tail is tolerated only in the last segment, and only when asked: right after a
//!   crash, before the broker's own recovery has run);
//! - offsets are dense: a segment's first batch starts at the segment's base offset, each batch
//!   starts right after the previous one (also across segments), and each batch holds
//!   `last_offset_delta + 1` records. Compacted logs (`cleanup.policy` with `compact` in the
//!   topic's configs in the metadata log, or in its file under `gregor-metadata/topics/` in a
//!   directory from before that log; or `sparse_offsets`) keep their offsets but
//!   lose records: there offsets only have to increase, and a batch may hold fewer records;
//! - the `.index` is strictly increasing and each entry points at the byte position of a batch whose
//!   last offset is the entry's offset (Kafka's LogSegment.append indexes the batch's last offset);
//! - the `.timeindex` is strictly increasing and each entry names a batch's last offset and the
//!   largest batch timestamp of the segment up to and including that batch;
//! - the `.txnindex` holds exactly the aborted transactions whose abort markers are in the
//!   segment, in marker order, each with the first offset of its producer's transaction, the
//!   marker's offset and the last stable offset after it, as replaying the producers' state
//!   from the first segment finds them (the broker's own replay, `partition::update_producers`).
//!   Where that replay cannot know a transaction's start (compacted logs, a log whose first
//!   segments were deleted), each entry must still name an abort marker of its producer in the
//!   segment. Right after a crash every segment's file may lag the log (a prefix): the broker
//!   rebuilds all of them after an unclean shutdown, and a crash during that rebuild leaves
//!   them short.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::batch::{crc_is_valid, BatchHeader};
use super::control::parse_txn_marker;
use super::index::{parse_offset_entries, parse_time_entries, parse_txn_entries, AbortedTxn};
use super::partition::update_producers;
use super::segment::{file_name, parse_log_file_name, scan};
use crate::txn::producer_state::ProducerStateTable;

/// What the check tolerates and what it reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Accept an incomplete or corrupt tail in the last segment (the state right after a crash).
    pub allow_torn_tail: bool,
    /// Keep the list of batches in the report.
    pub list_batches: bool,
    /// Accept gaps between batches and batches with fewer records than offsets (compaction).
    pub sparse_offsets: bool,
}

/// One batch as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub segment_base: i64,
    pub position: u64,
    pub size: u64,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// The result for one partition directory. `problems` empty means the log is consistent.
/// `log_start_offset` is the first segment's base offset: the files' view, before any DeleteRecords
/// moved the logical start inside that segment.
#[derive(Debug, Default)]
pub struct PartitionReport {
    pub dir: PathBuf,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    pub torn_tail_bytes: u64,
    pub problems: Vec<String>,
    pub batch_list: Vec<BatchInfo>,
}

/// Checks every partition directory (a directory holding `.log` files) under `data_dir`, sorted by
/// name.
pub fn check_data_dir(data_dir: &Path, opts: CheckOptions) -> io::Result<Vec<PartitionReport>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(data_dir)? {
        let path = entry?.path();
        if path.is_dir() && !log_bases(&path)?.is_empty() {
            dirs.push(path);
        }
    }
    dirs.sort();
    let compacted = compacted_topics(data_dir);
    dirs.iter()
        .map(|d| {
            let topic = d
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once('-'))
                .map_or("", |(t, _)| t);
            let sparse_offsets = opts.sparse_offsets || compacted.iter().any(|c| c == topic);
            check_partition(
                d,
                CheckOptions {
                    sparse_offsets,
                    ..opts
                },
            )
        })
        .collect()
}

/// Names of the topics whose stored configs make them compacted: as the metadata log says, or
/// the topic files of a directory from before that log.
fn compacted_topics(data_dir: &Path) -> Vec<String> {
    compacted_in_metadata_log(data_dir).unwrap_or_else(|| compacted_in_topic_files(data_dir))
}

fn is_compacted(configs: &std::collections::BTreeMap<String, String>) -> bool {
    configs
        .get("cleanup.policy")
        .is_some_and(|p| p.split(',').any(|v| v.trim() == "compact"))
}

/// The compacted topics of the image `__cluster_metadata-0` holds, read from a copy of it in a
/// temporary directory: opening a log may repair its files, and the checker changes nothing.
/// `None` when the directory has no metadata log or it cannot be read.
fn compacted_in_metadata_log(data_dir: &Path) -> Option<Vec<String>> {
    use crate::metadata::metadata_log::{load_image, LocalMetadataLog, METADATA_DIR};
    let src = data_dir.join(METADATA_DIR);
    if !src.is_dir() {
        return None;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let copy = std::env::temp_dir().join(format!("gregor-check-{}-{nanos}", std::process::id()));
    let read = || -> Option<Vec<String>> {
        let dst = copy.join(METADATA_DIR);
        fs::create_dir_all(&dst).ok()?;
        for entry in fs::read_dir(&src).ok()? {
            let entry = entry.ok()?;
            if entry.file_type().ok()?.is_file() {
                fs::copy(entry.path(), dst.join(entry.file_name())).ok()?;
            }
        }
        let storage = std::sync::Arc::new(crate::log::storage::FileStorage);
        let log = LocalMetadataLog::open(storage, &copy, false, 0).ok()?;
        let image = load_image(&log).ok()?;
        Some(
            image
                .topics
                .iter()
                .filter(|t| {
                    is_compacted(
                        &image.configs_of(crate::metadata::records::RESOURCE_TOPIC, &t.name),
                    )
                })
                .map(|t| t.name.clone())
                .collect(),
        )
    };
    let compacted = read();
    let _ = fs::remove_dir_all(&copy);
    compacted
}

fn compacted_in_topic_files(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(data_dir.join("gregor-metadata/topics")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|text| crate::metadata::topic::TopicFile::parse(&text))
        .filter(|t| is_compacted(&t.configs))
        .map(|t| t.name)
        .collect()
}

fn log_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases: Vec<i64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_log_file_name(&e.file_name().to_string_lossy()))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Checks the segments of one partition directory.
pub fn check_partition(dir: &Path, opts: CheckOptions) -> io::Result<PartitionReport> {
    let bases = log_bases(dir)?;
    let mut report = PartitionReport {
        dir: dir.to_path_buf(),
        segments: bases.len(),
        ..PartitionReport::default()
    };
    let mut expected_next: Option<i64> = None;
    // The replay knows every transaction's start only from offset 0 and without compaction.
    let mut txns = TxnReplay {
        producers: ProducerStateTable::default(),
        exact: !opts.sparse_offsets && bases.first().is_none_or(|&b| b == 0),
    };
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        if i == 0 {
            report.log_start_offset = base;
        }
        if let Some(next) = expected_next {
            if base != next && !(opts.sparse_offsets && base > next) {
                report.problems.push(format!(
                    "segment {base}: base offset is not the previous segment's end {next}"
                ));
            }
        }
        let batches = check_segment(dir, base, last, opts, &mut txns, &mut report)?;
        expected_next = Some(batches.last().map_or(base, |b| b.last_offset + 1));
        if opts.list_batches {
            report.batch_list.extend(batches);
        }
    }
    report.log_end_offset = expected_next.unwrap_or(0);
    Ok(report)
}

/// The producers' state replayed over the partition's batches, for the `.txnindex` check.
struct TxnReplay {
    producers: ProducerStateTable,
    /// Whether the replay saw every transaction from its start (see the module comment).
    exact: bool,
}

/// A segment's abort markers: the aborted transactions they complete (as the replay found them)
/// and each marker's (producer id, offset).
#[derive(Default)]
struct Aborts {
    expected: Vec<AbortedTxn>,
    markers: Vec<(i64, i64)>,
}

/// A batch with what the index checks need.
struct Found {
    info: BatchInfo,
    /// Largest batch max timestamp of the segment up to and including this batch.
    running_max_timestamp: i64,
}

fn check_segment(
    dir: &Path,
    base: i64,
    last: bool,
    opts: CheckOptions,
    txns: &mut TxnReplay,
    report: &mut PartitionReport,
) -> io::Result<Vec<BatchInfo>> {
    let file = File::open(dir.join(file_name(base, "log")))?;
    let mut aborts = Aborts::default();
    let size = file.metadata()?.len();
    let mut found: Vec<Found> = Vec::new();
    let mut problems = Vec::new();
    let mut next = base;
    let mut running_max = i64::MIN;
    let end = scan(&file, 0, size, true, |b| {
        if !b.bytes.is_some_and(crc_is_valid) {
            problems.push(format!(
                "segment {base} position {}: CRC mismatch",
                b.position
            ));
            return false;
        }
        let h: BatchHeader = b.header;
        if h.base_offset != next && !(opts.sparse_offsets && h.base_offset > next) {
            problems.push(format!(
                "segment {base} position {}: batch starts at offset {} but {next} was expected",
                b.position, h.base_offset
            ));
        }
        let records_ok = if opts.sparse_offsets {
            (0..=i64::from(h.last_offset_delta) + 1).contains(&i64::from(h.record_count))
        } else {
            i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1
        };
        if h.last_offset_delta < 0 || !records_ok {
            problems.push(format!(
                "segment {base} position {}: {} records for offset delta {}",
                b.position, h.record_count, h.last_offset_delta
            ));
        }
        running_max = running_max.max(h.max_timestamp);
        report.records += u64::try_from(h.record_count).unwrap_or(0);
        if h.has_producer_id() {
            // The CRC held, so the batch is as the broker wrote it; a marker it cannot read is
            // one the broker's replay would not have understood either.
            let marker = match (h.is_control(), b.bytes) {
                (true, Some(bytes)) => parse_txn_marker(bytes, &h, usize::MAX).ok().flatten(),
                _ => None,
            };
            if marker.is_some_and(|m| !m.commit) {
                aborts.markers.push((h.producer_id, h.base_offset));
            }
            if let Some(txn) = update_producers(&mut txns.producers, &h, marker.as_ref()) {
                aborts.expected.push(txn);
            }
        }
        next = h.next_offset();
        found.push(Found {
            info: BatchInfo {
                segment_base: base,
                position: b.position,
                size: h.total_size() as u64,
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
            },
            running_max_timestamp: running_max,
        });
        true
    })?;
    report.batches += found.len() as u64;
    if end != size {
        if last && opts.allow_torn_tail {
            report.torn_tail_bytes = size - end;
            problems.retain(|p| !p.ends_with("CRC mismatch"));
        } else {
            problems.push(format!(
                "segment {base}: {} bytes after the last whole valid batch at {end}",
                size - end
            ));
        }
    }
    report.problems.append(&mut problems);
    let missing_ok = last && opts.allow_torn_tail;
    check_offset_index(dir, base, &found, missing_ok, report);
    check_time_index(dir, base, &found, missing_ok, report);
    check_txn_index(dir, base, &aborts, txns.exact, opts.allow_torn_tail, report);
    Ok(found.into_iter().map(|f| f.info).collect())
}

/// Reads an index file; a missing file is a problem unless a crash may have come between creating
/// a new segment's `.log` and its indexes.
fn read_index(path: &Path, missing_ok: bool, report: &mut PartitionReport) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            if !(missing_ok && e.kind() == io::ErrorKind::NotFound) {
                report
                    .problems
                    .push(format!("{}: cannot read: {e}", path.display()));
            }
            None
        }
    }
}

/// The batch whose last offset is `base + relative`, by binary search.
fn batch_ending_at(found: &[Found], base: i64, relative: u32) -> Option<&Found> {
    let offset = base + i64::from(relative);
    let i = found.partition_point(|f| f.info.last_offset < offset);
    found.get(i).filter(|f| f.info.last_offset == offset)
}

fn check_offset_index(
    dir: &Path,
    base: i64,
    found: &[Found],
    missing_ok: bool,
    report: &mut PartitionReport,
) {
    let path = dir.join(file_name(base, "index"));
    let Some(bytes) = read_index(&path, missing_ok, report) else {
        return;
    };
    let Some(entries) = parse_offset_entries(&bytes) else {
        report
            .problems
            .push(format!("segment {base}: .index ends inside an entry"));
        return;
    };
    for (i, e) in entries.iter().enumerate() {
        if i > 0
            && (entries[i - 1].relative_offset >= e.relative_offset
                || entries[i - 1].position >= e.position)
        {
            report.problems.push(format!(
                "segment {base}: .index entry {i} is not increasing"
            ));
        }
        match batch_ending_at(found, base, e.relative_offset) {
            Some(f) if f.info.position == u64::from(e.position) => {}
            _ => report.problems.push(format!(
                "segment {base}: .index entry {i} (offset {}, position {}) does not point at the batch ending at that offset",
                base + i64::from(e.relative_offset),
                e.position
            )),
        }
    }
}

fn check_time_index(
    dir: &Path,
    base: i64,
    found: &[Found],
    missing_ok: bool,
    report: &mut PartitionReport,
) {
    let path = dir.join(file_name(base, "timeindex"));
    let Some(bytes) = read_index(&path, missing_ok, report) else {
        return;
    };
    let Some(entries) = parse_time_entries(&bytes) else {
        report
            .problems
            .push(format!("segment {base}: .timeindex ends inside an entry"));
        return;
    };
    for (i, e) in entries.iter().enumerate() {
        if i > 0
            && (entries[i - 1].relative_offset >= e.relative_offset
                || entries[i - 1].timestamp >= e.timestamp)
        {
            report.problems.push(format!(
                "segment {base}: .timeindex entry {i} is not increasing"
            ));
        }
        match batch_ending_at(found, base, e.relative_offset) {
            Some(f) if f.running_max_timestamp == e.timestamp => {}
            _ => report.problems.push(format!(
                "segment {base}: .timeindex entry {i} (timestamp {}, offset {}) does not match the log",
                e.timestamp,
                base + i64::from(e.relative_offset)
            )),
        }
    }
}

/// See the module comment. A missing `.txnindex` is an empty one (Kafka creates it only for the
/// first aborted transaction of a segment).
fn check_txn_index(
    dir: &Path,
    base: i64,
    aborts: &Aborts,
    exact: bool,
    may_lag: bool,
    report: &mut PartitionReport,
) {
    let bytes = match fs::read(dir.join(file_name(base, "txnindex"))) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            report
                .problems
                .push(format!("segment {base}: .txnindex cannot be read: {e}"));
            return;
        }
    };
    let Some(entries) = parse_txn_entries(&bytes) else {
        if !may_lag {
            report
                .problems
                .push(format!("segment {base}: .txnindex ends inside an entry"));
        }
        return;
    };
    for (i, (version, e)) in entries.iter().enumerate() {
        if *version != 0 {
            report.problems.push(format!(
                "segment {base}: .txnindex entry {i} has version {version}"
            ));
        }
        let marker = (e.producer_id, e.last_offset);
        if !aborts.markers.contains(&marker) {
            report.problems.push(format!(
                "segment {base}: .txnindex entry {i} (producer {}, offsets {}..={}) names no abort marker of its producer in the segment",
                e.producer_id, e.first_offset, e.last_offset
            ));
        } else if exact && aborts.expected.get(i) != Some(e) {
            report.problems.push(format!(
                "segment {base}: .txnindex entry {i} is {e:?}, the log says {:?}",
                aborts.expected.get(i)
            ));
        }
    }
    // Only aborts that completed a transaction here get an entry: a marker for a producer
    // without data in the partition completes nothing (ProducerAppendInfo.appendEndTxnMarker).
    if exact && entries.len() < aborts.expected.len() && !may_lag {
        let missing = &aborts.expected[entries.len()..];
        report.problems.push(format!(
            "segment {base}: .txnindex lacks {} aborted transactions, the first {:?}",
            missing.len(),
            missing[0]
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::partition::PartitionLog;
    use crate::log::LogConfig;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 2000,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    fn write_log(dir: &Path, batches: i64) {
        let mut log = PartitionLog::open(dir, config(), true, 0).unwrap();
        for i in 0..batches {
            let b = make_batch(&[b"aaaaaaaaaa", b"bbbbbbbbbb"], 1000 + i, None);
            log.append(&b, 9, 0).unwrap();
        }
        // Index entries reach their files in batches; a clean close writes them all.
        log.close(0).unwrap();
    }

    fn strict() -> CheckOptions {
        CheckOptions {
            list_batches: true,
            ..CheckOptions::default()
        }
    }

    #[test]
    fn a_written_log_passes() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 100);
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!((r.log_start_offset, r.log_end_offset), (0, 200));
        assert_eq!((r.batches, r.records), (100, 200));
        assert!(r.segments > 3);
        assert_eq!(r.batch_list.len(), 100);
    }

    #[test]
    fn the_txnindex_must_hold_exactly_the_aborted_transactions_of_the_segment() {
        // Kafka's TransactionIndex: one AbortedTxn per abort marker that completed a
        // transaction in the partition, with its first offset, the marker's offset and the LSO.
        use crate::log::batch::tests::make_txn_batch;
        use crate::log::AppendOrigin;
        use crate::txn::TxnMarker;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).unwrap();
        let coord = AppendOrigin::Coordinator;
        let end = |producer_id, commit| TxnMarker {
            producer_id,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        };
        for (pid, commit) in [(7, false), (8, true), (7, false), (9, false)] {
            log.append_from(&make_txn_batch(&[b"a", b"b"], 1, (pid, 0, -1)), 9, 0, coord)
                .unwrap();
            log.append_txn_marker(&end(pid, commit), 0).unwrap();
        }
        // An abort of a producer without data here completes nothing: no entry.
        log.append_txn_marker(&end(10, false), 0).unwrap();
        log.close(0).unwrap();
        drop(log);
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let path = dir.path().join(file_name(0, "txnindex"));
        let good = fs::read(&path).unwrap();
        assert_eq!(good.len(), 3 * 34);
        // An entry dropped, then one whose first offset is wrong, then one without a marker.
        fs::write(&path, &good[..68]).unwrap();
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("lacks 1")),
            "{:?}",
            r.problems
        );
        let mut bad = good.clone();
        bad[17] ^= 1;
        fs::write(&path, &bad).unwrap();
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("the log says")),
            "{:?}",
            r.problems
        );
        let mut bad = good.clone();
        bad[9] ^= 1; // producer id 7 -> 6: no abort marker of producer 6
        fs::write(&path, &bad).unwrap();
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("names no abort marker")),
            "{:?}",
            r.problems
        );
        // Right after a crash the files may lag: a prefix passes.
        fs::write(&path, &good[..34]).unwrap();
        let lenient = CheckOptions {
            allow_torn_tail: true,
            ..strict()
        };
        let r = check_partition(dir.path(), lenient).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    #[test]
    fn torn_tail_only_passes_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 100);
        let r = check_partition(dir.path(), strict()).unwrap();
        let last = r.batch_list.last().unwrap();
        let path = dir.path().join(file_name(last.segment_base, "log"));
        // A killed write(2) leaves the start of a batch; its index entries were never written.
        let f = fs::OpenOptions::new().append(true).open(path).unwrap();
        (&f).write_all(&[0u8; 7]).unwrap();
        assert!(!check_partition(dir.path(), strict())
            .unwrap()
            .problems
            .is_empty());
        let lenient = CheckOptions {
            allow_torn_tail: true,
            ..strict()
        };
        let r = check_partition(dir.path(), lenient).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!((r.torn_tail_bytes, r.log_end_offset), (7, 200));
    }

    #[test]
    fn index_pointing_elsewhere_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10);
        let index = dir.path().join(file_name(0, "index"));
        let bytes = fs::read(&index).unwrap();
        assert!(bytes.len() >= 16, "the test needs two index entries");
        // Shift the second entry's position by one byte.
        let f = fs::OpenOptions::new().write(true).open(&index).unwrap();
        f.write_all_at(&[bytes[15].wrapping_add(1)], 15).unwrap();
        let r = check_partition(dir.path(), strict()).unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains(".index entry 1"));
    }

    #[test]
    fn corrupt_batch_and_gap_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10);
        let r = check_partition(dir.path(), strict()).unwrap();
        let b = r.batch_list[3];
        let log = dir.path().join(file_name(0, "log"));
        let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
        // Base offset 7 instead of 6: a gap (the base offset is outside the CRC).
        f.write_all_at(&7i64.to_be_bytes(), b.position).unwrap();
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("7 but 6")),
            "{:?}",
            r.problems
        );
        // A flipped byte in the records.
        f.write_all_at(&[0xff], b.position + b.size - 2).unwrap();
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("CRC")),
            "{:?}",
            r.problems
        );
    }

    /// A tiny deterministic generator, so that the damage points are varied but reproducible.
    fn next_random(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// Crash recovery keeps exactly the batches wholly before the first damaged byte (and drops
    /// later segments), rebuilds indexes that agree with the log, and appends densely after it.
    #[test]
    fn recovery_keeps_exactly_the_prefix_before_damage() {
        for seed in 0..40u64 {
            let mut rng = seed + 1;
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), 60);
            let before = check_partition(dir.path(), strict()).unwrap().batch_list;
            let segs: Vec<i64> = before.iter().map(|b| b.segment_base).collect();
            let seg = segs[next_random(&mut rng) as usize % segs.len()];
            let in_seg: Vec<&BatchInfo> = before.iter().filter(|b| b.segment_base == seg).collect();
            let size = in_seg.last().map_or(0, |b| b.position + b.size);
            let at = next_random(&mut rng) % size;
            let path = dir.path().join(file_name(seg, "log"));
            let original = fs::read(&path).unwrap();
            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            match seed % 3 {
                0 => f.set_len(at).unwrap(),
                1 => f
                    .write_all_at(&vec![0u8; (size - at) as usize], at)
                    .unwrap(),
                _ => {
                    // One byte the CRC covers (not the base offset or leader epoch).
                    let b = in_seg[next_random(&mut rng) as usize % in_seg.len()];
                    let at = b.position + 21 + next_random(&mut rng) % (b.size - 21);
                    f.write_all_at(&[original[at as usize] ^ 0x5a], at).unwrap();
                }
            }
            drop(f);
            // The first byte that changed (zeros written over zeros change nothing).
            let damaged = fs::read(&path).unwrap();
            let changed = (0..original.len())
                .find(|&i| damaged.get(i) != Some(&original[i]))
                .unwrap_or(original.len()) as u64;
            let damaged_at = match in_seg.iter().find(|b| b.position + b.size > changed) {
                Some(b) => b.base_offset,
                None => before.last().unwrap().last_offset + 1,
            };
            let mut log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
            assert_eq!(log.high_watermark(), damaged_at, "seed {seed}");
            // Appends continue densely after the recovered end.
            let b = make_batch(&[b"after"], 5000, None);
            assert_eq!(log.append(&b, 9, 0).unwrap().base_offset, damaged_at);
            log.close(0).unwrap();
            drop(log);
            let r = check_partition(dir.path(), strict()).unwrap();
            assert!(r.problems.is_empty(), "seed {seed}: {:?}", r.problems);
            assert_eq!(r.log_end_offset, damaged_at + 1);
            let kept: Vec<&BatchInfo> = before
                .iter()
                .filter(|b| b.last_offset < damaged_at)
                .collect();
            assert_eq!(
                &r.batch_list[..kept.len()],
                &kept.into_iter().copied().collect::<Vec<_>>()[..]
            );
        }
    }

    /// Deleted or corrupt index files are rebuilt, after a crash and after a clean shutdown.
    #[test]
    fn missing_or_torn_indexes_are_rebuilt() {
        for clean in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), 60);
            let before = check_partition(dir.path(), strict()).unwrap();
            fs::remove_file(dir.path().join(file_name(0, "index"))).unwrap();
            let last = before.batch_list.last().unwrap().segment_base;
            let torn = dir.path().join(file_name(last, "timeindex"));
            let len = fs::metadata(&torn).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(&torn)
                .unwrap()
                .set_len(len.saturating_sub(5))
                .unwrap();
            let mut log = PartitionLog::open(dir.path(), config(), clean, 0).unwrap();
            assert_eq!(log.high_watermark(), before.log_end_offset);
            log.close(0).unwrap();
            drop(log);
            let r = check_partition(dir.path(), strict()).unwrap();
            assert!(r.problems.is_empty(), "clean {clean}: {:?}", r.problems);
            assert_eq!(r.batch_list, before.batch_list);
        }
    }

    /// Recovery deletes the segments after a damaged one newest first and only then cuts the
    /// damaged one; a crash half-way leaves the damage, so the next start-up finishes the job.
    #[test]
    fn a_crash_while_dropping_later_segments_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 60);
        let before = check_partition(dir.path(), strict()).unwrap();
        let mut bases: Vec<i64> = before.batch_list.iter().map(|b| b.segment_base).collect();
        bases.dedup();
        assert!(bases.len() >= 3, "the test needs three segments");
        // Damage a batch of the first segment where the CRC covers it.
        let hit = before.batch_list[2];
        let log = dir.path().join(file_name(0, "log"));
        let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.write_all_at(&[0xee], hit.position + 40).unwrap();
        // The state a crash leaves after the newest segment's files were deleted.
        let newest = bases[bases.len() - 1];
        for suffix in ["index", "timeindex", "log"] {
            fs::remove_file(dir.path().join(file_name(newest, suffix))).unwrap();
        }
        let mut log = PartitionLog::open(dir.path(), config(), false, 0).unwrap();
        assert_eq!(log.high_watermark(), hit.base_offset);
        assert_eq!(log.segment_count(), 1);
        for &b in &bases[1..] {
            assert!(!dir.path().join(file_name(b, "log")).exists());
        }
        log.close(0).unwrap();
        drop(log);
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.log_end_offset, hit.base_offset);
    }

    /// A segment of four two-record batches at offsets 0, 2, 10 and 12: a compacted log's gaps.
    fn write_gapped_log(dir: &Path) {
        use crate::log::batch::{assign_offsets, HEADER_LEN};
        use crate::log::segment::Segment;
        use crate::log::storage::FileStorage;
        fs::create_dir_all(dir).unwrap();
        let mut seg = Segment::create(&FileStorage::shared(), dir, 0).unwrap();
        for (i, base) in [0i64, 2, 10, 12].into_iter().enumerate() {
            let b = make_batch(&[b"k1", b"k2"], 1000 + i as i64, None);
            let h = assign_offsets(&b, base, 0, None);
            let parsed = BatchHeader::parse(&h).unwrap();
            seg.append(&h, &b[HEADER_LEN..], &parsed, 100, 0).unwrap();
        }
    }

    #[test]
    fn compacted_topics_are_known_from_the_metadata_log() {
        use crate::metadata::metadata_log::{LocalMetadataLog, MetadataLog, METADATA_DIR};
        use crate::metadata::records::{ConfigRecord, MetadataRecord, RESOURCE_TOPIC};
        let dir = tempfile::tempdir().unwrap();
        let storage = std::sync::Arc::new(crate::log::storage::FileStorage);
        let log = LocalMetadataLog::open(storage, dir.path(), true, 0).unwrap();
        let topic = |name: &str| MetadataRecord::Topic {
            name: name.to_string(),
            topic_id: uuid::Uuid::new_v4(),
        };
        let compact = MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: "kept".to_string(),
            name: "cleanup.policy".to_string(),
            value: Some("compact,delete".to_string()),
        });
        log.append(&[topic("kept"), compact, topic("dense")], 0)
            .unwrap();
        log.close(0).unwrap();
        drop(log);
        write_gapped_log(&dir.path().join("kept-0"));
        write_gapped_log(&dir.path().join("dense-0"));
        let listing = |d: &Path| {
            let mut names: Vec<_> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing(&dir.path().join(METADATA_DIR));
        let reports = check_data_dir(dir.path(), strict()).unwrap();
        let problems = |name: &str| {
            let r = reports.iter().find(|r| r.dir.ends_with(name)).unwrap();
            r.problems.clone()
        };
        // The compacted topic's gaps are allowed, the other topic's are not.
        assert!(problems("kept-0").is_empty(), "{:?}", problems("kept-0"));
        assert!(!problems("dense-0").is_empty());
        // The metadata log itself was read from a copy: its files are as they were.
        assert_eq!(listing(&dir.path().join(METADATA_DIR)), before);
    }

    #[test]
    fn compacted_logs_may_have_gaps() {
        let dir = tempfile::tempdir().unwrap();
        write_gapped_log(dir.path());
        let r = check_partition(dir.path(), strict()).unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("offset 10 but 4")),
            "{:?}",
            r.problems
        );
        let sparse = CheckOptions {
            sparse_offsets: true,
            ..strict()
        };
        let r = check_partition(dir.path(), sparse).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.log_end_offset, 14);
    }
}
