//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment, in Kafka's
//! on-disk format so that Kafka's own tools (kafka-dump-log) read them.
//!
//! `.index`: 8-byte entries, big-endian: relative offset (int32, offset - segment base offset) of
//! the last record of a batch, then the batch's byte position in the `.log` file (int32).
//! `.timeindex`: 12-byte entries, big-endian: a timestamp (int64), then the relative offset
//! (int32) of the record that carries the largest timestamp seen up to that point.
//!
//! `.txnindex`: Kafka's TransactionIndex, 34-byte entries (AbortedTxn), big-endian: version
//! (int16 = 0), producer id (int64), first offset (int64), last offset (int64: the abort
//! marker's), last stable offset (int64: when the marker was written), one per aborted
//! transaction whose marker is in the segment, in marker order.
//!
//! One entry of `.index` and `.timeindex` is written about every `index.interval.bytes` of
//! appended log (Kafka's LogSegment.append). Both are kept in memory, and the files are written in batches without
//! being held open (see `IndexFile`); indexes are derived data: when a file is missing or does not
//! make sense, the segment rebuilds it from the log.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::open_files::{open_retrying, OPEN_FILES};

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;
/// AbortedTxn.TOTAL_SIZE.
const TXN_ENTRY: usize = 34;

/// How many bytes of new entries are gathered before they are written to the file.
const WRITE_BATCH: usize = 4096;

/// An index file that is not held open: the entries live in memory (they are the index the broker
/// uses) and are written to the file in batches of `WRITE_BATCH` bytes, when the segment rolls
/// and at clean shutdown, each time opening and closing the file, so that a segment costs no
/// descriptor for its indexes. After a crash the file may lag the log by a batch: recovery
/// rebuilds the indexes from the log anyway, and a prefix of the entries is a consistent index.
struct IndexFile {
    path: PathBuf,
    /// Bytes of the file holding entries already written; the next write goes there (not at the
    /// file's end, so a write that failed half-way is overwritten by the retry).
    written: u64,
    /// Encoded entries not yet written.
    pending: Vec<u8>,
    /// Written since the last fsync.
    dirty: bool,
}

impl IndexFile {
    /// Creates the file empty (a leftover of the same name is emptied).
    fn create(path: &Path) -> io::Result<IndexFile> {
        open_retrying(&OPEN_FILES, || {
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(path)
        })?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            written: 0,
            pending: Vec::new(),
            dirty: true,
        })
    }

    /// A file that holds `len` bytes of entries already.
    fn loaded(path: &Path, len: usize) -> IndexFile {
        IndexFile {
            path: path.to_path_buf(),
            written: len as u64,
            pending: Vec::new(),
            dirty: false,
        }
    }

    fn read_all(path: &Path) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Adds an encoded entry, writing the gathered ones once there are `WRITE_BATCH` bytes. A
    /// failed write (a full disk, no descriptor left) keeps them for the next attempt: the
    /// in-memory index is complete, so the append goes on.
    fn push(&mut self, entry: &[u8]) {
        self.pending.extend_from_slice(entry);
        // Retry a failed write only each time another batch has gathered.
        if self.pending.len() % WRITE_BATCH < entry.len() {
            if let Err(e) = self.write() {
                tracing::warn!(path = %self.path.display(), error = %e, "index entries not written yet");
            }
        }
    }

    /// Writes the gathered entries.
    fn write(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = open_retrying(&OPEN_FILES, || {
            OpenOptions::new().write(true).open(&self.path)
        })?;
        file.write_all_at(&self.pending, self.written)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        self.dirty = true;
        Ok(())
    }

    /// The directory holding the file was renamed.
    fn moved_to(&mut self, dir: &Path) {
        if let Some(name) = self.path.file_name() {
            self.path = dir.join(name);
        }
    }

    /// Writes the gathered entries and fsyncs the file if anything was written since the last time.
    fn sync(&mut self) -> io::Result<()> {
        self.write()?;
        if self.dirty {
            open_retrying(&OPEN_FILES, || File::open(&self.path))?.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// The file methods every index has, over its `file: IndexFile`.
macro_rules! index_file_methods {
    () => {
        /// Writes the entries not in the file yet.
        pub fn write(&mut self) -> io::Result<()> {
            self.file.write()
        }

        /// Writes and fsyncs (clean shutdown).
        pub fn sync(&mut self) -> io::Result<()> {
            self.file.sync()
        }

        pub fn path(&self) -> &Path {
            &self.file.path
        }

        /// The directory holding the file was renamed.
        pub fn moved_to(&mut self, dir: &Path) {
            self.file.moved_to(dir);
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Sparse map from offsets to file positions of one segment.
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
    file: IndexFile,
}

impl OffsetIndex {
    pub fn create(path: &Path) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            entries: Vec::new(),
            file: IndexFile::create(path)?,
        })
    }

    /// Loads an existing index; `None` when it is missing or inconsistent with a log of `log_size`
    /// bytes (then the caller rebuilds it).
    pub fn load(path: &Path, log_size: u64) -> io::Result<Option<OffsetIndex>> {
        let Ok(bytes) = IndexFile::read_all(path) else {
            return Ok(None);
        };
        let Some(entries) = parse_offset_entries(&bytes) else {
            return Ok(None);
        };
        let mut prev: Option<&OffsetEntry> = None;
        for entry in &entries {
            let ordered = prev.is_none_or(|p| {
                p.relative_offset < entry.relative_offset && p.position < entry.position
            });
            if !ordered || u64::from(entry.position) >= log_size {
                return Ok(None);
            }
            prev = Some(entry);
        }
        Ok(Some(OffsetIndex {
            file: IndexFile::loaded(path, entries.len() * OFFSET_ENTRY),
            entries,
        }))
    }

    pub fn append(&mut self, relative_offset: u32, position: u32) {
        if self
            .entries
            .last()
            .is_some_and(|l| l.relative_offset >= relative_offset)
        {
            return;
        }
        let mut e = [0u8; OFFSET_ENTRY];
        e[..4].copy_from_slice(&relative_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&e);
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    /// Position of a batch at or before the one holding `relative_offset`: the entry with the
    /// largest batch-last-offset `<=` the target (its batch ends at or before the target), else 0.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Kafka's AbstractIndex.isFull for an index of at most `max_bytes`.
    pub fn is_full(&self, max_bytes: u64) -> bool {
        self.entries.len() as u64 >= max_bytes / OFFSET_ENTRY as u64
    }

    index_file_methods!();
}

/// An aborted transaction (Kafka's AbortedTxn): what read_committed consumers need to drop its
/// records, `first_offset..=last_offset` of `producer_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
    /// The last stable offset once the marker was written: a search for the aborted
    /// transactions of a fetch can stop at the first entry at or past the fetch's end.
    pub last_stable_offset: i64,
}

/// The aborted transactions whose markers are in one segment (Kafka's TransactionIndex), in
/// marker order; kept in memory as the other indexes are, and written with them.
pub struct TxnIndex {
    entries: Vec<AbortedTxn>,
    file: IndexFile,
}

impl TxnIndex {
    pub fn create(path: &Path) -> io::Result<TxnIndex> {
        Ok(TxnIndex {
            entries: Vec::new(),
            file: IndexFile::create(path)?,
        })
    }

    /// Loads an existing index; `None` when missing or not sane for a segment starting at
    /// `base_offset` (TransactionIndex.sanityCheck: no entry ends before the segment; entries in
    /// increasing last offsets, version 0): the partition then rebuilds it from the log.
    pub fn load(path: &Path, base_offset: i64) -> io::Result<Option<TxnIndex>> {
        let Ok(bytes) = IndexFile::read_all(path) else {
            return Ok(None);
        };
        let Some(parsed) = parse_txn_entries(&bytes) else {
            return Ok(None);
        };
        let mut entries: Vec<AbortedTxn> = Vec::with_capacity(parsed.len());
        for (version, txn) in parsed {
            let increasing = entries
                .last()
                .is_none_or(|l| l.last_offset < txn.last_offset);
            if version != 0 || txn.last_offset < base_offset || !increasing {
                return Ok(None);
            }
            entries.push(txn);
        }
        Ok(Some(TxnIndex {
            file: IndexFile::loaded(path, bytes.len()),
            entries,
        }))
    }

    /// Adds an aborted transaction; ignored unless its marker is past the last entry's (a
    /// replay after a snapshot may meet markers the index already has).
    pub fn append(&mut self, txn: AbortedTxn) {
        if self
            .entries
            .last()
            .is_some_and(|l| l.last_offset >= txn.last_offset)
        {
            return;
        }
        let mut e = [0u8; TXN_ENTRY];
        // e[0..2]: version 0.
        e[2..10].copy_from_slice(&txn.producer_id.to_be_bytes());
        e[10..18].copy_from_slice(&txn.first_offset.to_be_bytes());
        e[18..26].copy_from_slice(&txn.last_offset.to_be_bytes());
        e[26..34].copy_from_slice(&txn.last_stable_offset.to_be_bytes());
        self.file.push(&e);
        self.entries.push(txn);
    }

    /// The aborted transactions overlapping a fetch of `[fetch_offset, upper_bound)`, and whether
    /// the search is complete (an entry's last stable offset reached the bound), else it goes on
    /// in the next segment (TransactionIndex.collectAbortedTxns).
    pub fn collect(&self, fetch_offset: i64, upper_bound: i64, out: &mut Vec<AbortedTxn>) -> bool {
        for t in &self.entries {
            if t.last_offset >= fetch_offset && t.first_offset < upper_bound {
                out.push(*t);
            }
            if t.last_stable_offset >= upper_bound {
                return true;
            }
        }
        false
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    index_file_methods!();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Sparse map from timestamps to offsets of one segment.
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
    file: IndexFile,
}

impl TimeIndex {
    pub fn create(path: &Path) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            entries: Vec::new(),
            file: IndexFile::create(path)?,
        })
    }

    /// Loads an existing time index; `None` when missing or not monotonic.
    pub fn load(path: &Path) -> io::Result<Option<TimeIndex>> {
        let Ok(bytes) = IndexFile::read_all(path) else {
            return Ok(None);
        };
        let Some(entries) = parse_time_entries(&bytes) else {
            return Ok(None);
        };
        let ordered = entries.windows(2).all(|w| {
            w[0].timestamp < w[1].timestamp && w[0].relative_offset < w[1].relative_offset
        });
        if !ordered {
            return Ok(None);
        }
        Ok(Some(TimeIndex {
            file: IndexFile::loaded(path, entries.len() * TIME_ENTRY),
            entries,
        }))
    }

    /// Adds an entry when the timestamp grew since the last one (Kafka's TimeIndex.maybeAppend).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        if self
            .entries
            .last()
            .is_some_and(|l| l.timestamp >= timestamp || l.relative_offset >= relative_offset)
        {
            return;
        }
        let mut e = [0u8; TIME_ENTRY];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.file.push(&e);
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
    }

    /// An offset from which to scan for the first record with timestamp `>= target`: the entry
    /// with the largest timestamp strictly below the target (all records up to it are older).
    pub fn lookup(&self, target: i64) -> Option<u32> {
        let i = self.entries.partition_point(|e| e.timestamp < target);
        (i > 0).then(|| self.entries[i - 1].relative_offset)
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Kafka's AbstractIndex.isFull for an index of at most `max_bytes`.
    pub fn is_full(&self, max_bytes: u64) -> bool {
        self.entries.len() as u64 >= max_bytes / TIME_ENTRY as u64
    }

    index_file_methods!();
}

/// Decodes the entries of an `.index` file as they are, without judging them (the offline checker
/// and `OffsetIndex::load` judge). `None` when the file ends inside an entry.
pub fn parse_offset_entries(bytes: &[u8]) -> Option<Vec<OffsetEntry>> {
    if !bytes.len().is_multiple_of(OFFSET_ENTRY) {
        return None;
    }
    let entries = bytes
        .chunks_exact(OFFSET_ENTRY)
        .map(|e| OffsetEntry {
            relative_offset: u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            position: u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        })
        .collect();
    Some(entries)
}

/// Decodes the entries of a `.txnindex` file as they are: (version, aborted transaction). `None`
/// when the file ends inside an entry.
pub fn parse_txn_entries(bytes: &[u8]) -> Option<Vec<(i16, AbortedTxn)>> {
    if !bytes.len().is_multiple_of(TXN_ENTRY) {
        return None;
    }
    let entries = bytes
        .chunks_exact(TXN_ENTRY)
        .map(|e| {
            let at = |i: usize| {
                let mut v = [0u8; 8];
                v.copy_from_slice(&e[i..i + 8]);
                i64::from_be_bytes(v)
            };
            let txn = AbortedTxn {
                producer_id: at(2),
                first_offset: at(10),
                last_offset: at(18),
                last_stable_offset: at(26),
            };
            (i16::from_be_bytes([e[0], e[1]]), txn)
        })
        .collect();
    Some(entries)
}

/// Decodes the entries of a `.timeindex` file as they are. `None` when the file ends inside an
/// entry.
pub fn parse_time_entries(bytes: &[u8]) -> Option<Vec<TimeEntry>> {
    if !bytes.len().is_multiple_of(TIME_ENTRY) {
        return None;
    }
    let entries = bytes
        .chunks_exact(TIME_ENTRY)
        .map(|e| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([e[8], e[9], e[10], e[11]]),
            }
        })
        .collect();
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_round_trips_and_looks_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let mut idx = OffsetIndex::create(&p).unwrap();
        idx.append(9, 4100);
        idx.append(19, 8300);
        idx.append(19, 9000); // ignored: not increasing
        assert_eq!(idx.lookup(5), 0);
        assert_eq!(idx.lookup(9), 4100);
        assert_eq!(idx.lookup(18), 4100);
        assert_eq!(idx.lookup(25), 8300);
        idx.write().unwrap();
        drop(idx);
        let idx = OffsetIndex::load(&p, 10_000).unwrap().unwrap();
        assert_eq!(
            idx.last(),
            Some(OffsetEntry {
                relative_offset: 19,
                position: 8300
            })
        );
        assert!(
            OffsetIndex::load(&p, 8000).unwrap().is_none(),
            "position past the log end"
        );
        std::fs::write(&p, [0u8; 5]).unwrap();
        assert!(
            OffsetIndex::load(&p, 10_000).unwrap().is_none(),
            "torn entry"
        );
    }

    #[test]
    fn time_index_lookup_is_strictly_below() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::create(&p).unwrap();
        idx.maybe_append(100, 3);
        idx.maybe_append(100, 5); // ignored: timestamp did not grow
        idx.maybe_append(200, 8);
        assert_eq!(idx.lookup(50), None);
        assert_eq!(idx.lookup(100), None);
        assert_eq!(idx.lookup(101), Some(3));
        assert_eq!(idx.lookup(1000), Some(8));
        idx.sync().unwrap();
        drop(idx);
        assert_eq!(
            TimeIndex::load(&p)
                .unwrap()
                .unwrap()
                .last()
                .unwrap()
                .timestamp,
            200
        );
    }

    #[test]
    fn txn_index_is_kafkas_format_and_collects_a_fetch_range() {
        // TransactionIndex / AbortedTxn: 34-byte entries, version 0; collectAbortedTxns keeps the
        // entries with last_offset >= fetch offset and first_offset < upper bound, and is complete
        // once an entry's last stable offset reaches the bound.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("00000000000000000100.txnindex");
        let mut idx = TxnIndex::create(&p).unwrap();
        let txn = |pid, first, last, lso| AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        };
        idx.append(txn(1, 100, 110, 105));
        idx.append(txn(2, 105, 120, 121));
        idx.append(txn(3, 90, 120, 121)); // ignored: not after the last marker
        idx.append(txn(4, 130, 140, 141));
        idx.sync().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 3 * 34);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(
            i64::from_be_bytes(bytes[34 + 2..34 + 10].try_into().unwrap()),
            2
        );
        let idx = TxnIndex::load(&p, 100).unwrap().unwrap();
        let mut out = Vec::new();
        assert!(idx.collect(111, 125, &mut out));
        assert_eq!(out, vec![txn(2, 105, 120, 121)]);
        out.clear();
        assert!(!idx.collect(100, 200, &mut out));
        assert_eq!(out.len(), 3);
        // Insane: an entry ending before the segment, or a torn entry.
        assert!(TxnIndex::load(&p, 115).unwrap().is_none());
        std::fs::write(&p, &bytes[..40]).unwrap();
        assert!(TxnIndex::load(&p, 100).unwrap().is_none());
        assert!(TxnIndex::load(&dir.path().join("missing"), 0)
            .unwrap()
            .is_none());
    }
}
