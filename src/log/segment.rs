//! One segment of a partition log: `<20-digit base offset>.log` holding record batches exactly as
//! they are on the wire (with the broker-assigned base offsets), plus its `.index` and
//! `.timeindex` (see `index.rs`). The layout is Kafka's, so `kafka-dump-log` reads our files.
//!
//! Appends go straight to the file with `write(2)` (no user-space buffering), so an appended batch
//! is in the OS page cache, and survives a killed process, before the produce is acknowledged.
//! Readers use positional reads on a shared handle and never take the partition lock while reading.

use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{crc_is_valid, BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_TIMESTAMP};
use super::index::{AbortedTxn, OffsetIndex, TimeIndex, TxnIndex};
use super::open_files::LogFile;
use super::storage::{ReadAt, SegmentFile, Storage};

/// How much of a segment one positional read fetches while scanning headers.
const SCAN_CHUNK: usize = 64 * 1024;
/// How much one read fetches while verifying whole batches at recovery.
const RECOVERY_CHUNK: usize = 4 * 1024 * 1024;

pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses `00000000000000000042.log` into 42.
pub fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// What the scanner hands to its visitor for each batch.
pub struct ScannedBatch<'a> {
    pub position: u64,
    pub header: BatchHeader,
    /// The whole batch; present only when the scan was asked for bodies.
    pub bytes: Option<&'a [u8]>,
}

/// Visits the whole batches in `[from, end)` of `file` in order until `visit` returns false.
/// Returns the position where scanning stopped: the end of the last accepted batch, or the start of
/// the batch `visit` refused, or of the first batch that is incomplete or whose header is nonsense.
pub fn scan<F: ReadAt + ?Sized>(
    file: &F,
    from: u64,
    end: u64,
    with_bodies: bool,
    mut visit: impl FnMut(ScannedBatch<'_>) -> bool,
) -> io::Result<u64> {
    let chunk = if with_bodies {
        RECOVERY_CHUNK
    } else {
        SCAN_CHUNK
    };
    let mut buf = Vec::new();
    let mut buf_start = from;
    let mut pos = from;
    while pos < end {
        let in_buf = (pos - buf_start) as usize;
        let header = BatchHeader::parse(buf.get(in_buf..).unwrap_or(&[]));
        let need = match header {
            Some(_) if !with_bodies => Some(HEADER_LEN),
            Some(h) => Some(h.total_size().max(HEADER_LEN)),
            None => None,
        };
        let have = buf.len().saturating_sub(in_buf);
        if header.is_none() || need.is_some_and(|n| n > have) {
            // Refill the buffer at `pos` with at least what the next batch needs.
            let need = need.unwrap_or(HEADER_LEN);
            if ((end - pos) as usize) < need {
                // The file ends inside this batch: a torn tail.
                return Ok(pos);
            }
            let len = (need.max(chunk) as u64).min(end - pos) as usize;
            buf.resize(len, 0);
            file.pread_exact(&mut buf, pos)?;
            buf_start = pos;
            continue;
        }
        let Some(h) = header else { return Ok(pos) };
        let size = h.total_size() as u64;
        if h.length < (HEADER_LEN - LOG_OVERHEAD) as i32 || h.magic != MAGIC_V2 || pos + size > end
        {
            return Ok(pos);
        }
        let bytes = with_bodies.then(|| &buf[in_buf..in_buf + size as usize]);
        if !visit(ScannedBatch {
            position: pos,
            header: h,
            bytes,
        }) {
            return Ok(pos);
        }
        pos += size;
    }
    Ok(pos)
}

/// How a segment is opened at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// After a clean shutdown: trust the file, load the indexes (rebuilding them if unusable).
    Trust,
    /// After a crash: verify every batch's CRC and offsets, cut a torn or corrupt tail, and rebuild
    /// the indexes.
    Recover,
}

pub struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    log: LogFile,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TxnIndex,
    /// The `.txnindex` was found sane at opening (else the partition rebuilds it from the log).
    txn_index_loaded: bool,
    bytes_since_index_entry: u64,
    /// When this segment took its first batch (for segment.ms rolling).
    pub first_append_ms: Option<i64>,
    /// A failed append left bytes past `size` that could not be cut yet.
    partial_tail: bool,
}

impl Segment {
    /// A new, active segment.
    pub fn create(storage: &Arc<dyn Storage>, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log = LogFile::open(storage, &dir.join(file_name(base_offset, "log")), true)?;
        let txn_index = TxnIndex::create(&dir.join(file_name(base_offset, "txnindex")))?;
        Self::empty(dir, base_offset, log, txn_index)
    }

    /// A segment over `log` with fresh, empty offset and time indexes and no batches tracked yet.
    fn empty(
        dir: &Path,
        base_offset: i64,
        log: LogFile,
        txn_index: TxnIndex,
    ) -> io::Result<Segment> {
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log,
            size: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            index: OffsetIndex::create(&dir.join(file_name(base_offset, "index")))?,
            time_index: TimeIndex::create(&dir.join(file_name(base_offset, "timeindex")))?,
            txn_index,
            txn_index_loaded: false,
            bytes_since_index_entry: 0,
            first_append_ms: None,
            partial_tail: false,
        })
    }

    /// Opens an existing segment. Returns the segment and how many bytes were cut from its tail.
    pub fn open(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base_offset: i64,
        mode: OpenMode,
        index_interval: u64,
    ) -> io::Result<(Segment, u64)> {
        Self::open_with(storage, dir, base_offset, mode, index_interval, || Ok(()))
    }

    /// `open`, calling `before_cut` once a bad tail is found and before the file is cut. The
    /// partition log deletes the later segments there: were the cut made first, a crash before
    /// those deletions would leave a clean, shorter segment followed by segments that start past
    /// its end, and the next start-up would keep them behind a gap in the offsets.
    pub fn open_with(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base_offset: i64,
        mode: OpenMode,
        index_interval: u64,
        before_cut: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<(Segment, u64)> {
        let log = LogFile::open(storage, &dir.join(file_name(base_offset, "log")), false)?;
        let file = log.handle()?;
        let size = file.size()?;
        // The transaction index is loaded whatever happens to the others: only the partition can
        // rebuild it (it needs the producers' state), and does when it is missing or insane.
        let txn_path = dir.join(file_name(base_offset, "txnindex"));
        let (txn_index, txn_index_loaded) = match TxnIndex::load(&txn_path, base_offset)? {
            Some(t) => (t, true),
            None => (TxnIndex::create(&txn_path)?, false),
        };
        let txn_index = match mode {
            OpenMode::Trust => {
                match Self::open_trusted(dir, base_offset, &log, &*file, size, txn_index)? {
                    Ok(mut seg) => {
                        seg.txn_index_loaded = txn_index_loaded;
                        return Ok((seg, 0));
                    }
                    Err(txn_index) => txn_index,
                }
            }
            OpenMode::Recover => txn_index,
        };
        // Rebuild: scan every batch, verify it in Recover mode, re-create both indexes.
        let mut seg = Self::empty(dir, base_offset, log, txn_index)?;
        seg.txn_index_loaded = txn_index_loaded;
        let verify = mode == OpenMode::Recover;
        let valid_end = scan(&*file, 0, size, verify, |b| {
            if verify && !b.bytes.is_some_and(crc_is_valid) {
                return false;
            }
            if b.header.base_offset < seg.next_offset
                || b.header.last_offset_delta < 0
                || !b.header.offsets_fit(base_offset)
            {
                return false;
            }
            seg.track_batch(b.position, &b.header, index_interval);
            seg.size = b.position + b.header.total_size() as u64;
            true
        })?;
        let cut = size - valid_end;
        if cut > 0 {
            before_cut()?;
            file.truncate(valid_end)?;
        }
        seg.size = valid_end;
        seg.write_indexes();
        Ok((seg, cut))
    }

    /// Loads the indexes of a cleanly closed segment and scans only the batches after the last
    /// index entry, to learn the next offset and newest timestamp. Hands `txn_index` back if an
    /// index is unusable.
    fn open_trusted(
        dir: &Path,
        base_offset: i64,
        log: &LogFile,
        file: &dyn SegmentFile,
        size: u64,
        txn_index: TxnIndex,
    ) -> io::Result<Result<Segment, TxnIndex>> {
        let Some(index) = OffsetIndex::load(&dir.join(file_name(base_offset, "index")), size)?
        else {
            return Ok(Err(txn_index));
        };
        let Some(time_index) = TimeIndex::load(&dir.join(file_name(base_offset, "timeindex")))?
        else {
            return Ok(Err(txn_index));
        };
        let (mut next_offset, tail_from) = match index.last() {
            Some(e) => (
                base_offset + i64::from(e.relative_offset) + 1,
                u64::from(e.position),
            ),
            None => (base_offset, 0),
        };
        let mut max_timestamp = time_index.last().map_or(NO_TIMESTAMP, |e| e.timestamp);
        let end = scan(file, tail_from, size, false, |b| {
            next_offset = next_offset.max(b.header.next_offset());
            max_timestamp = max_timestamp.max(b.header.max_timestamp);
            true
        })?;
        if end != size {
            return Ok(Err(txn_index));
        }
        Ok(Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: log.clone(),
            size,
            next_offset,
            max_timestamp,
            index,
            time_index,
            txn_index,
            txn_index_loaded: false,
            bytes_since_index_entry: 0,
            first_append_ms: None,
            partial_tail: false,
        }))
    }

    /// Updates the in-memory state and the indexes for a batch written at `position`.
    fn track_batch(&mut self, position: u64, h: &BatchHeader, index_interval: u64) {
        let size = h.total_size() as u64;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
        }
        self.next_offset = h.next_offset();
        self.bytes_since_index_entry += size;
        if self.bytes_since_index_entry > index_interval {
            let rel = self.relative(h.last_offset());
            // Positions and relative offsets fit in 32 bits: segments are capped below 2 GiB.
            self.index.append(rel, position as u32);
            self.time_index.maybe_append(self.max_timestamp, rel);
            self.bytes_since_index_entry = 0;
        }
    }

    fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Appends one batch given as its rewritten header and the untouched rest of its bytes.
    pub fn append(
        &mut self,
        header: &[u8; HEADER_LEN],
        rest: &[u8],
        h: &BatchHeader,
        index_interval: u64,
        now_ms: i64,
    ) -> io::Result<()> {
        let position = self.size;
        let file = self.log.handle()?;
        if self.partial_tail {
            // An earlier write failed and its part could not be cut then: cut it now, or refuse.
            file.truncate(position)?;
            self.partial_tail = false;
        }
        if let Err(e) = file.append(&[IoSlice::new(header), IoSlice::new(rest)]) {
            // A failed write (a full disk) may have left part of the batch: cut it off, so the
            // file never holds half a batch; if even that fails, before the next append.
            self.partial_tail = file.truncate(position).is_err();
            return Err(e);
        }
        self.size += (HEADER_LEN + rest.len()) as u64;
        self.first_append_ms.get_or_insert(now_ms);
        self.track_batch(position, h, index_interval);
        Ok(())
    }

    /// Position of the first batch whose last offset is `>= offset`, or `None` past the end.
    pub fn find_position(&self, offset: i64) -> io::Result<Option<u64>> {
        self.reader().find_position(self.index_hint(offset), offset)
    }

    /// A position at or before the batch holding `offset`, from the in-memory sparse index.
    pub fn index_hint(&self, offset: i64) -> u64 {
        u64::from(self.index.lookup(self.relative(offset)))
    }

    /// Offset of the first batch whose max timestamp is `>= target`, with that batch's position.
    pub fn find_timestamp(&self, target: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let from_offset = self
            .time_index
            .lookup(target)
            .map_or(self.base_offset, |rel| self.base_offset + i64::from(rel));
        let start = u64::from(self.index.lookup(self.relative(from_offset)));
        let mut found = None;
        scan(&*self.log.handle()?, start, self.size, false, |b| {
            if b.header.max_timestamp >= target {
                found = Some((b.position, b.header));
                return false;
            }
            true
        })?;
        Ok(found)
    }

    /// A handle for reading outside the partition lock.
    pub fn reader(&self) -> SegmentReader {
        SegmentReader {
            file: self.log.clone(),
            size: self.size,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// What time-based retention and compaction lags judge the segment by (Kafka's
    /// LogSegment.largestTimestamp): its largest record timestamp, or, when no record carries one
    /// (all NO_TIMESTAMP), the `.log` file's modification time, so that such segments still
    /// expire instead of holding back every later one. `None` when that time cannot be read.
    pub fn largest_timestamp(&self) -> Option<i64> {
        if self.max_timestamp >= 0 {
            return Some(self.max_timestamp);
        }
        let modified = std::fs::metadata(self.dir.join(file_name(self.base_offset, "log")))
            .and_then(|m| m.modified())
            .ok()?;
        let ms = modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis();
        i64::try_from(ms).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The aborted transactions whose markers are in this segment.
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }

    /// Records an aborted transaction whose marker was appended to (or replayed from) this
    /// segment (Kafka's LogSegment.updateTxnIndex).
    pub fn add_aborted_txn(&mut self, txn: AbortedTxn) {
        self.txn_index.append(txn);
    }

    /// Whether the `.txnindex` was loaded sane at opening; if not the partition rebuilds it.
    pub fn txn_index_loaded(&self) -> bool {
        self.txn_index_loaded
    }

    /// Empties the transaction index, for a rebuild from the log.
    pub fn reset_txn_index(&mut self) -> io::Result<()> {
        let path = self.txn_index.path().to_path_buf();
        self.txn_index = TxnIndex::create(&path)?;
        Ok(())
    }

    /// Takes over `other`'s transaction index (a cleaned copy of the same segment: the cleaner
    /// keeps the markers' entries as they are).
    pub fn adopt_txn_index(&mut self, other: &mut Segment) {
        std::mem::swap(&mut self.txn_index, &mut other.txn_index);
        if let Err(e) = self.txn_index.write() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "transaction index entries not written yet");
        }
    }

    /// Whether an index reached segment.index.bytes (`max_index_bytes`).
    pub fn index_is_full(&self, max_index_bytes: u64) -> bool {
        self.index.is_full(max_index_bytes) || self.time_index.is_full(max_index_bytes)
    }

    /// The `.log` file, for an fsync outside the partition lock (see `partition::FlushJob`).
    pub fn log_file(&self) -> LogFile {
        self.log.clone()
    }

    /// Writes and fsyncs the indexes (clean shutdown).
    pub fn flush_indexes(&mut self) -> io::Result<()> {
        self.index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// Writes the index entries not in the files yet; best effort (the in-memory index is whole,
    /// and the files are written again at the next roll or clean shutdown).
    pub fn write_indexes(&mut self) {
        let written = self.index.write();
        let written = written.and_then(|()| self.time_index.write());
        if let Err(e) = written.and_then(|()| self.txn_index.write()) {
            tracing::warn!(dir = %self.dir.display(), base_offset = self.base_offset, error = %e, "index entries not written yet");
        }
    }

    /// The segment is no longer the active one (it rolled, or is an older one at start-up): its
    /// index entries go to the files and its `.log` file may be closed when unused.
    pub fn deactivate(&mut self) {
        self.write_indexes();
        self.log.deactivate();
    }

    /// The log's directory was renamed (its topic deleted): every later path names the new place.
    pub fn moved_to(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
        self.log.moved_to(dir);
        self.index.moved_to(dir);
        self.time_index.moved_to(dir);
        self.txn_index.moved_to(dir);
    }

    /// Removes the segment's files (retention).
    pub fn delete(self) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(file_name(self.base_offset, "log")))?;
        let _ = std::fs::remove_file(self.index.path());
        let _ = std::fs::remove_file(self.time_index.path());
        let _ = std::fs::remove_file(self.txn_index.path());
        Ok(())
    }
}

/// A read-only view of a segment's file up to the size it had when the view was taken.
#[derive(Clone)]
pub struct SegmentReader {
    file: LogFile,
    size: u64,
}

impl SegmentReader {
    /// The open file (opened again if the cache of open files closed it).
    pub fn file(&self) -> io::Result<Arc<dyn SegmentFile>> {
        self.file.handle()
    }

    /// The segment's size when this view was taken.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The view cut at `size` (a read bound that falls inside the segment).
    pub fn up_to(self, size: u64) -> SegmentReader {
        SegmentReader {
            size: size.min(self.size),
            ..self
        }
    }

    /// Whole batches from `position`, at most `max_bytes` of them, except that the first batch is
    /// returned whole even if larger when `min_one` is set (KIP-74: consumers always progress).
    pub fn read(&self, position: u64, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        let available = self.size.saturating_sub(position);
        let mut want = (max_bytes as u64).min(available) as usize;
        if min_one && want < HEADER_LEN.min(available as usize) {
            want = HEADER_LEN.min(available as usize);
        }
        if want == 0 {
            return Ok(Bytes::new());
        }
        let file = self.file.handle()?;
        let mut buf = vec![0u8; want];
        file.pread_exact(&mut buf, position)?;
        let mut whole = {
            let mut it = super::batch::BatchIter::new(&buf);
            it.by_ref().for_each(drop);
            it.valid_len()
        };
        if whole == 0 && min_one {
            if let Some(h) = BatchHeader::parse(&buf) {
                let size = (h.total_size() as u64).min(available) as usize;
                buf.resize(size, 0);
                file.pread_exact(&mut buf, position)?;
                whole = size;
            }
        }
        buf.truncate(whole);
        Ok(Bytes::from(buf))
    }

    /// The bytes a Fetch sends from `position`, as Kafka's LogSegment.read chooses them: up to
    /// `max_bytes`, ending wherever that falls (clients drop a trailing partial batch), except
    /// that a first batch larger than `max_bytes` is sent whole when `min_one` is set (KIP-74)
    /// and not at all otherwise. Reads at most the first batch's length field; the bytes
    /// themselves go to the socket straight from the file.
    pub fn range(&self, position: u64, max_bytes: usize, min_one: bool) -> io::Result<FileRange> {
        let file = self.file.handle()?;
        let available = self.size.saturating_sub(position);
        let mut len = (max_bytes as u64).min(available);
        if len < available {
            let mut head = [0u8; LOG_OVERHEAD];
            let first = if available >= LOG_OVERHEAD as u64 {
                file.pread_exact(&mut head, position)?;
                let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                (LOG_OVERHEAD as u64 + u64::try_from(length).unwrap_or(0)).min(available)
            } else {
                available
            };
            if first > len {
                len = if min_one { first } else { 0 };
            }
        }
        Ok(FileRange {
            file,
            position,
            len: len as usize,
        })
    }

    /// Position of the first batch at or after `start` whose last offset is `>= offset`, or
    /// `None` past the end. Reads only batch headers.
    pub fn find_position(&self, start: u64, offset: i64) -> io::Result<Option<u64>> {
        let mut found = None;
        scan(&*self.file.handle()?, start, self.size, false, |b| {
            if b.header.last_offset() >= offset {
                found = Some(b.position);
                return false;
            }
            true
        })?;
        Ok(found)
    }

    /// The whole batch at `position`.
    pub fn read_batch(&self, position: u64, header: &BatchHeader) -> io::Result<Bytes> {
        self.read_exact(position, header.total_size())
    }

    /// Exactly `len` bytes from `position`.
    fn read_exact(&self, position: u64, len: usize) -> io::Result<Bytes> {
        read_exact(&*self.file.handle()?, position, len)
    }
}

/// Bytes `position..position + len` of a segment file, taken below the size the segment had when
/// the read was planned (so only complete, acknowledged appends), sent to the client as they are.
/// The open file keeps the bytes readable even if retention deletes the segment meanwhile.
#[derive(Clone)]
pub struct FileRange {
    /// The open file: holding it keeps the descriptor open while the bytes are sent, even if
    /// the cache of open files lets go of it meanwhile.
    file: Arc<dyn SegmentFile>,
    position: u64,
    len: usize,
}

impl FileRange {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// The file to send from, if the storage has a descriptor for it.
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.file.as_fd()
    }

    /// The bytes, copied into memory (when they cannot be sent from the file).
    pub fn read(&self) -> io::Result<Bytes> {
        read_exact(&*self.file, self.position, self.len)
    }
}

/// Exactly `len` bytes of `file` from `position`.
fn read_exact(file: &dyn SegmentFile, position: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    file.pread_exact(&mut buf, position)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assign_offsets, tests::make_batch};
    use crate::log::storage::FileStorage;
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    fn append_n(seg: &mut Segment, n: usize, start: i64) {
        for i in 0..n {
            let b = make_batch(&[b"value-1", b"value-2"], 1000 + i as i64, None);
            let base = start + 2 * i as i64;
            let h = assign_offsets(&b, base, 0, None);
            let parsed = BatchHeader::parse(&h).unwrap();
            seg.append(&h, &b[HEADER_LEN..], &parsed, 100, 0).unwrap();
        }
    }

    /// Fetch ranges follow Kafka's LogSegment.read: cut at the limit (a partial last batch), the
    /// first batch whole when larger than the limit only if `min_one`.
    #[test]
    fn fetch_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(&FileStorage::shared(), dir.path(), 0).unwrap();
        append_n(&mut seg, 10, 0);
        let r = seg.reader();
        let batch = BatchHeader::parse(&r.read(0, 1 << 20, true).unwrap())
            .unwrap()
            .total_size();
        let size = r.size() as usize;
        assert_eq!(r.range(0, usize::MAX, false).unwrap().len(), size);
        let cut = r.range(0, batch + 5, false).unwrap();
        assert_eq!((cut.position(), cut.len()), (0, batch + 5));
        assert_eq!(r.range(0, 10, true).unwrap().len(), batch);
        assert!(r.range(0, 10, false).unwrap().is_empty());
        let tail = r.range(batch as u64, usize::MAX, true).unwrap();
        assert_eq!((tail.position(), tail.len()), (batch as u64, size - batch));
        assert_eq!(
            &tail.read().unwrap()[..],
            &r.read(batch as u64, size, true).unwrap()[..]
        );
        assert!(r.range(size as u64, 100, true).unwrap().is_empty());
        // A view taken earlier never reaches bytes appended after it.
        append_n(&mut seg, 1, 20);
        assert_eq!(r.range(0, usize::MAX, true).unwrap().len(), size);
    }

    #[test]
    fn append_find_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(&FileStorage::shared(), dir.path(), 0).unwrap();
        append_n(&mut seg, 50, 0);
        assert_eq!(seg.next_offset(), 100);
        let pos = seg.find_position(51).unwrap().unwrap();
        let data = seg.reader().read(pos, 1 << 20, true).unwrap();
        let first = BatchHeader::parse(&data).unwrap();
        assert_eq!(first.base_offset, 50);
        assert!(seg.find_position(100).unwrap().is_none());
        // A limit smaller than one batch still returns that batch whole.
        let one = seg.reader().read(pos, 10, true).unwrap();
        assert_eq!(one.len(), first.total_size());
        assert_eq!(seg.reader().read(pos, 10, false).unwrap().len(), 0);
    }

    #[test]
    fn reopen_trusted_and_recover_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(&FileStorage::shared(), dir.path(), 0).unwrap();
        append_n(&mut seg, 30, 0);
        let size = seg.size();
        drop(seg);
        let (seg, cut) =
            Segment::open(&FileStorage::shared(), dir.path(), 0, OpenMode::Trust, 100).unwrap();
        assert_eq!((seg.next_offset(), cut), (60, 0));
        drop(seg);

        // Tear the last batch and flip a byte in the one before it.
        let path = dir.path().join(file_name(0, "log"));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.set_len(size - 5).unwrap();
        let (seg, cut) = Segment::open(
            &FileStorage::shared(),
            dir.path(),
            0,
            OpenMode::Recover,
            100,
        )
        .unwrap();
        assert_eq!(seg.next_offset(), 58);
        assert!(cut > 0);
        let pos = seg.find_position(56).unwrap().unwrap();
        let mut byte = [0u8; 1];
        f.read_exact_at(&mut byte, pos + 70).unwrap();
        f.write_all_at(&[byte[0] ^ 0xff], pos + 70).unwrap();
        drop(seg);
        let (seg, _) = Segment::open(
            &FileStorage::shared(),
            dir.path(),
            0,
            OpenMode::Recover,
            100,
        )
        .unwrap();
        assert_eq!(seg.next_offset(), 56);
    }

    #[test]
    fn before_cut_runs_while_the_damage_is_still_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(&FileStorage::shared(), dir.path(), 0).unwrap();
        append_n(&mut seg, 30, 0);
        let torn = seg.size() - 5;
        drop(seg);
        let path = dir.path().join(file_name(0, "log"));
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(torn)
            .unwrap();
        // A crash inside the hook (here: an error) must leave the tail uncut for the next start.
        let crashed = Segment::open_with(
            &FileStorage::shared(),
            dir.path(),
            0,
            OpenMode::Recover,
            100,
            || {
                assert_eq!(std::fs::metadata(&path)?.len(), torn);
                Err(io::Error::other("crash"))
            },
        );
        assert!(crashed.is_err());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), torn);
        let mut called = false;
        let (seg, cut) = Segment::open_with(
            &FileStorage::shared(),
            dir.path(),
            0,
            OpenMode::Recover,
            100,
            || {
                called = true;
                Ok(())
            },
        )
        .unwrap();
        assert!(called && cut > 0);
        assert_eq!(seg.next_offset(), 58);
        // No damage, no call.
        drop(seg);
        let (_, cut) = Segment::open_with(
            &FileStorage::shared(),
            dir.path(),
            0,
            OpenMode::Recover,
            100,
            || panic!("no cut, no call"),
        )
        .unwrap();
        assert_eq!(cut, 0);
    }

    #[test]
    fn find_timestamp_finds_first_newer_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(&FileStorage::shared(), dir.path(), 0).unwrap();
        append_n(&mut seg, 40, 0);
        let (_, h) = seg.find_timestamp(1020).unwrap().unwrap();
        assert_eq!(h.base_offset, 40);
        assert!(seg.find_timestamp(5000).unwrap().is_none());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_log_file_name(&file_name(42, "log")), Some(42));
        assert_eq!(parse_log_file_name("42.log"), None);
    }
}
