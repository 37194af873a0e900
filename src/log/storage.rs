//! The storage under the logs: every segment data file is opened through a `Storage` and used
//! through a `SegmentFile`, so that tests can inject the faults a real disk has (a full disk, a
//! failing write or fsync) and check that the affected log goes offline with
//! KAFKA_STORAGE_ERROR, without half-written batches, while every other log keeps serving.
//!
//! `FileStorage` is the real thing (positional reads, `write(2)` appends on an O_APPEND file,
//! fsync). `FaultyStorage` wraps it for tests: it fails writes or syncs of the files whose path
//! contains a given text, optionally after writing part of the data first (as a full disk does),
//! or makes them slow (`Fault::Delay`). With the admin listener on, every broker's storage goes
//! through one too, which asks the control plane's storage rules (`StorageFaultRules`,
//! `admin::faults`) for each write and fsync of a partition's segment files: a slow disk armed in
//! a running process (scripts/cluster-faults' `slow-disk`).
//! Index files are small, rebuilt from the log when unusable, and stay plain files.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::open_files::{OpenFiles, OPEN_FILES};

/// Positional reads (all a scan needs).
pub trait ReadAt {
    fn pread_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn pread_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }
}

/// A segment's data file.
pub trait SegmentFile: ReadAt + Send + Sync {
    /// Appends all of `bufs` at the end of the file.
    fn append(&self, bufs: &[IoSlice<'_>]) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes and syncs it.
    fn truncate(&self, len: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
    /// (device, inode): tells a reopened file from another one at the same path.
    fn identity(&self) -> io::Result<(u64, u64)>;
    /// The descriptor to send ranges of the file to a socket from (sendfile, as Kafka's
    /// FileRecords.writeTo does); `None` makes Fetch copy the bytes through `pread_exact`.
    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl SegmentFile for File {
    fn append(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        write_all_vectored(self, bufs)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_all()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn identity(&self) -> io::Result<(u64, u64)> {
        super::open_files::identity_of(self)
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(AsFd::as_fd(self))
    }
}

/// `write_all` for several slices with as few syscalls as the kernel allows.
fn write_all_vectored(mut file: &File, bufs: &[IoSlice<'_>]) -> io::Result<()> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut written = file.write_vectored(bufs)?;
    if written == total {
        return Ok(());
    }
    // Rare short write: finish slice by slice from where the kernel stopped.
    for b in bufs {
        if written >= b.len() {
            written -= b.len();
            continue;
        }
        file.write_all(&b[written..])?;
        written = 0;
    }
    Ok(())
}

/// Where segment files come from.
pub trait Storage: Send + Sync {
    /// Opens a segment's data file for reading and appending; `create` makes it (empty).
    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>>;
    /// The cache that bounds the open inactive segment files (see `open_files`).
    fn open_files(&self) -> &OpenFiles {
        &OPEN_FILES
    }

    /// Replaces the small file at `path` with `bytes` so that a crash leaves the old or the new
    /// contents, never a mix (a temporary file, fsynced, renamed over it, the directory fsynced).
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        self.write_atomically_via(Path::new(&tmp), path, bytes)
    }

    /// `write_atomically` through the temporary file `tmp` (a metadata snapshot is written as
    /// Kafka's `<name>.checkpoint.part`, which a start-up deletes as a write cut short).
    fn write_atomically_via(&self, tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(tmp, bytes)?;
        File::open(tmp)?.sync_all()?;
        std::fs::rename(tmp, path)?;
        match path.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }
}

/// Files on the local file system.
pub struct FileStorage;

impl FileStorage {
    pub fn shared() -> Arc<dyn Storage> {
        Arc::new(FileStorage)
    }
}

impl Storage for FileStorage {
    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .create(create)
            .read(true)
            .append(true)
            .open(path)?;
        if create {
            // O_APPEND cannot be combined with O_TRUNC; a leftover file of that name is emptied.
            file.set_len(0)?;
        }
        Ok(Arc::new(file))
    }
}

/// What `FaultyStorage` does to the files it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Writes fail with ENOSPC after writing this many bytes of the data (a full disk).
    WriteFailsAfter(usize),
    /// Writes fail with EIO (a failing device).
    WriteFailsWithEio,
    /// fsync fails with EIO.
    SyncFails,
    /// Opening fails with EMFILE (the process is out of descriptors).
    OpenFails,
    /// Writes and fsyncs take this long more, then succeed (a slow disk).
    Delay(Duration),
}

/// An operation on a segment file, as storage fault rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageOp {
    /// An append (`write(2)`).
    Write,
    /// An fsync (fdatasync).
    Sync,
}

/// Faults decided outside the storage: the control plane's storage rules (`admin::faults`),
/// asked for each write and fsync of a segment file of partition `partition` of `topic`.
pub trait StorageFaultRules: Send + Sync {
    fn fault(&self, op: StorageOp, topic: &str, partition: i32) -> Fault;

    /// Whether any rule could fire: when not, `fault` is not asked at all, so that a broker
    /// with the admin listener on pays one atomic load per segment write and fsync, not a
    /// lock and a parse of the partition from the path.
    fn armed(&self) -> bool {
        true
    }
}

/// Test storage: real files, with a fault injected into those whose path contains `target`,
/// or decided by storage fault rules. It also counts the fsyncs of each file.
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    state: Mutex<(String, Fault)>,
    /// Whether `state` holds a fault (`inject`): read before taking its lock.
    injected: AtomicBool,
    /// Asked when nothing is injected (`ruled`).
    rules: Option<Arc<dyn StorageFaultRules>>,
    syncs: Mutex<std::collections::HashMap<String, usize>>,
    /// Its own cache, so that a test can set a small capacity (`None`: the inner storage's).
    open_files: Option<OpenFiles>,
}

impl FaultyStorage {
    /// Over the local file system, with faults injected by `inject`.
    pub fn new() -> Arc<FaultyStorage> {
        Arc::new(FaultyStorage {
            inner: FileStorage::shared(),
            state: Mutex::new((String::new(), Fault::None)),
            injected: AtomicBool::new(false),
            rules: None,
            syncs: Mutex::default(),
            open_files: Some(OpenFiles::new(OPEN_FILES.capacity())),
        })
    }

    /// Over `inner`, each write and fsync of a partition's segment files meeting the fault
    /// `rules` decide (the admin listener's storage rules).
    pub fn ruled(inner: Arc<dyn Storage>, rules: Arc<dyn StorageFaultRules>) -> Arc<FaultyStorage> {
        Arc::new(FaultyStorage {
            inner,
            state: Mutex::new((String::new(), Fault::None)),
            injected: AtomicBool::new(false),
            rules: Some(rules),
            syncs: Mutex::default(),
            open_files: None,
        })
    }

    /// How many times files whose path contains `target` were fsynced (not counted under
    /// `ruled`).
    pub fn sync_count(&self, target: &str) -> usize {
        let syncs = self.syncs.lock();
        syncs
            .iter()
            .filter(|(path, _)| path.contains(target))
            .map(|(_, n)| n)
            .sum()
    }

    /// From now on, files whose path contains `target` suffer `fault` (`Fault::None` heals).
    pub fn inject(&self, target: &str, fault: Fault) {
        let mut state = self.state.lock();
        *state = (target.to_string(), fault);
        let injected = !target.is_empty() && fault != Fault::None;
        self.injected.store(injected, Ordering::Relaxed);
    }

    fn fault_for(&self, path: &str) -> Fault {
        if !self.injected.load(Ordering::Relaxed) {
            return Fault::None;
        }
        let s = self.state.lock();
        if !s.0.is_empty() && path.contains(&s.0) {
            s.1
        } else {
            Fault::None
        }
    }

    /// The fault `op` on the segment file at `path` meets: the injected one, else the rules'
    /// for the partition whose directory holds it.
    fn fault_of(&self, op: StorageOp, path: &str) -> Fault {
        let injected = self.fault_for(path);
        let Some(rules) = self.rules.as_ref().filter(|_| injected == Fault::None) else {
            return injected;
        };
        // Checked before the path is parsed: the unarmed path of every write and fsync.
        if !rules.armed() {
            return Fault::None;
        }
        let partition = Path::new(path)
            .parent()
            .and_then(|d| d.file_name()?.to_str()?.rsplit_once('-'))
            .and_then(|(topic, p)| Some((topic, p.parse::<i32>().ok()?)));
        match partition {
            Some((topic, p)) => rules.fault(op, topic, p),
            None => Fault::None,
        }
    }
}

impl Storage for Arc<FaultyStorage> {
    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        if self.fault_for(&path.to_string_lossy()) == Fault::OpenFails {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        let inner = self.inner.open_segment(path, create)?;
        Ok(Arc::new(FaultyFile {
            inner,
            path: path.to_string_lossy().into_owned(),
            storage: Arc::clone(self),
        }))
    }

    fn open_files(&self) -> &OpenFiles {
        self.open_files
            .as_ref()
            .unwrap_or_else(|| self.inner.open_files())
    }

    fn write_atomically_via(&self, tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self.fault_for(&path.to_string_lossy()) {
            Fault::WriteFailsAfter(_) => Err(io::Error::from_raw_os_error(28)), // ENOSPC
            Fault::WriteFailsWithEio => Err(io::Error::from_raw_os_error(5)),
            _ => self.inner.write_atomically_via(tmp, path, bytes),
        }
    }
}

struct FaultyFile {
    inner: Arc<dyn SegmentFile>,
    path: String,
    storage: Arc<FaultyStorage>,
}

impl ReadAt for FaultyFile {
    fn pread_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.inner.pread_exact(buf, pos)
    }
}

impl SegmentFile for FaultyFile {
    fn append(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        match self.storage.fault_of(StorageOp::Write, &self.path) {
            Fault::WriteFailsAfter(n) => {
                let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                let part = &all[..n.min(all.len())];
                if !part.is_empty() {
                    self.inner.append(&[IoSlice::new(part)])?;
                }
                Err(io::Error::from_raw_os_error(28)) // ENOSPC
            }
            Fault::WriteFailsWithEio => Err(io::Error::from_raw_os_error(5)),
            Fault::Delay(d) => {
                // The caller's thread waits, as on a slow device.
                std::thread::sleep(d);
                self.inner.append(bufs)
            }
            _ => self.inner.append(bufs),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        // Counted for tests; a ruled storage serves a broker for as long as it runs, and would
        // keep a count for every segment it ever synced.
        if self.storage.rules.is_none() {
            *self
                .storage
                .syncs
                .lock()
                .entry(self.path.clone())
                .or_default() += 1;
        }
        match self.storage.fault_of(StorageOp::Sync, &self.path) {
            Fault::SyncFails => Err(io::Error::from_raw_os_error(5)), // EIO
            Fault::Delay(d) => {
                std::thread::sleep(d);
                self.inner.sync_data()
            }
            _ => self.inner.sync_data(),
        }
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn identity(&self) -> io::Result<(u64, u64)> {
        self.inner.identity()
    }

    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log at `path` whose files go through `storage`, where faults are injected by name.
    fn faulty_log(storage: &Arc<FaultyStorage>, path: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open_on(Arc::new(Arc::clone(storage)), path, config, true, 0).unwrap()
    }
    use crate::log::batch::tests::make_batch;
    use crate::log::partition::{LogError, Partition, PartitionLog};
    use crate::log::LogConfig;

    fn values(log: &PartitionLog) -> u64 {
        let bytes = log.plan_read(0).unwrap().read(usize::MAX, true).unwrap();
        crate::log::batch::BatchIter::new(&bytes)
            .map(|(_, h)| h.record_count as u64)
            .sum()
    }

    /// A full disk is not a failed device (gregor does better than Kafka here, which takes the
    /// log directory offline until a restart): the write that failed is cut off, the log stays
    /// online, DeleteRecords can reclaim its space, and appends go on once there is room.
    #[test]
    fn a_full_disk_fails_only_the_writes_and_the_log_recovers_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let config = LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        };
        let open = |name: &str| faulty_log(&storage, &dir.path().join(name), config.clone());
        let (mut sick, mut well) = (open("sick-0"), open("well-0"));
        for log in [&mut sick, &mut well] {
            for i in 0..10 {
                log.append(&make_batch(&[b"acknowledged"], i, None), 9, 0)
                    .unwrap();
            }
        }
        let active = dir.path().join(format!(
            "sick-0/{}",
            crate::log::segment::file_name(sick.active_base_offset(), "log")
        ));
        let size = std::fs::metadata(&active).unwrap().len();
        // The disk fills up 20 bytes into the next batch.
        storage.inject("sick-0", Fault::WriteFailsAfter(20));
        for _ in 0..2 {
            let err = sick
                .append(&make_batch(&[b"lost"], 9, None), 9, 0)
                .unwrap_err();
            assert!(matches!(err, LogError::Storage(_)), "{err:?}");
            let after = std::fs::metadata(&active).unwrap().len();
            assert_eq!(after, size, "the partial batch was cut off");
        }
        // DeleteRecords frees the segments below the new start even while the disk is full.
        let segments = sick.segment_count();
        assert!(
            sick.delete_records(6).is_err(),
            "the new start cannot be persisted yet"
        );
        assert!(sick.segment_count() < segments, "segments were deleted");
        // Room again: no restart needed.
        storage.inject("", Fault::None);
        let info = sick
            .append(&make_batch(&[b"later"], 9, None), 9, 0)
            .unwrap();
        assert_eq!(info.base_offset, 10);
        assert_eq!(sick.delete_records(6).unwrap(), 6);
        // The other log never noticed.
        well.append(&make_batch(&[b"more"], 9, None), 9, 0).unwrap();
        // After a crash and restart every acknowledged record is there, nothing of the failed ones.
        drop(sick);
        let sick = open("sick-0");
        assert_eq!((sick.log_start_offset(), sick.high_watermark()), (6, 11));
        let report =
            crate::log::check::check_partition(&dir.path().join("sick-0"), Default::default())
                .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// A write that fails with EIO is a failed device: the log goes offline (KAFKA_STORAGE_ERROR)
    /// until a restart has checked its files, as Kafka takes its log directory offline.
    #[test]
    fn a_failing_device_takes_only_that_log_offline() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let mut log = faulty_log(&storage, &dir.path().join("t-0"), LogConfig::default());
        log.append(&make_batch(&[b"acknowledged"], 1, None), 9, 0)
            .unwrap();
        storage.inject("t-0", Fault::WriteFailsWithEio);
        let err = log
            .append(&make_batch(&[b"lost"], 9, None), 9, 0)
            .unwrap_err();
        assert!(matches!(err, LogError::Storage(_)), "{err:?}");
        storage.inject("", Fault::None);
        assert!(matches!(
            log.append(&make_batch(&[b"later"], 9, None), 9, 0),
            Err(LogError::Offline)
        ));
        assert_eq!(values(&log), 1, "reads still work");
    }

    #[test]
    fn a_failed_fsync_is_not_acknowledged_and_takes_the_log_offline() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let config = LogConfig {
            flush_messages: 1,
            ..LogConfig::default()
        };
        let log = faulty_log(&storage, &dir.path().join("t-0"), config);
        let log = Partition::new("t".into(), 0, log);
        log.append(&make_batch(&[b"synced"], 1, None), 9, 0)
            .unwrap();
        storage.inject("t-0", Fault::SyncFails);
        let err = log
            .append(&make_batch(&[b"unsynced"], 2, None), 9, 0)
            .unwrap_err();
        assert!(matches!(err, LogError::Storage(_)), "{err:?}");
        assert!(matches!(
            log.append(&make_batch(&[b"after"], 3, None), 9, 0),
            Err(LogError::Offline)
        ));
    }

    /// Storage rules that slow partition `slow-0` and note what they were asked; unarmed
    /// when `disarmed` is set.
    #[derive(Default)]
    struct SlowRules {
        asked: Mutex<Vec<(StorageOp, String, i32)>>,
        disarmed: AtomicBool,
    }

    impl StorageFaultRules for SlowRules {
        fn fault(&self, op: StorageOp, topic: &str, partition: i32) -> Fault {
            self.asked.lock().push((op, topic.to_string(), partition));
            match (topic, partition) {
                ("slow", 0) => Fault::Delay(std::time::Duration::from_millis(1)),
                _ => Fault::None,
            }
        }

        fn armed(&self) -> bool {
            !self.disarmed.load(Ordering::Relaxed)
        }
    }

    /// Unarmed rules are not asked at all (the one atomic load of the unarmed path), and
    /// a fault injected by name still applies to a ruled storage.
    #[test]
    fn unarmed_rules_are_not_asked_and_an_injected_fault_still_applies() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Arc::new(SlowRules::default());
        rules.disarmed.store(true, Ordering::Relaxed);
        let storage = FaultyStorage::ruled(FileStorage::shared(), Arc::clone(&rules) as _);
        let config = LogConfig {
            flush_messages: 1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open_on(
            Arc::new(Arc::clone(&storage)),
            &dir.path().join("slow-0"),
            config,
            true,
            0,
        )
        .unwrap();
        let log = Partition::new("slow".into(), 0, log);
        log.append(&make_batch(&[b"kept"], 1, None), 9, 0).unwrap();
        assert!(rules.asked.lock().is_empty());
        storage.inject("slow-0", Fault::WriteFailsWithEio);
        assert!(log.append(&make_batch(&[b"lost"], 1, None), 9, 0).is_err());
        assert!(rules.asked.lock().is_empty());
    }

    /// A ruled storage asks its rules for each write and fsync of a segment file by the
    /// partition whose directory holds it; a delayed operation still succeeds.
    #[test]
    fn a_ruled_storage_asks_for_each_write_and_fsync_by_partition() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Arc::new(SlowRules::default());
        let storage = FaultyStorage::ruled(FileStorage::shared(), Arc::clone(&rules) as _);
        let config = LogConfig {
            flush_messages: 1,
            ..LogConfig::default()
        };
        for name in ["slow-0", "fast-1"] {
            let log = PartitionLog::open_on(
                Arc::new(Arc::clone(&storage)),
                &dir.path().join(name),
                config.clone(),
                true,
                0,
            )
            .unwrap();
            let log = Partition::new(name.into(), 0, log);
            log.append(&make_batch(&[b"kept"], 1, None), 9, 0).unwrap();
            assert_eq!(log.with_log(|l| values(l)), 1);
        }
        let asked = rules.asked.lock().clone();
        for (topic, p) in [("slow", 0), ("fast", 1)] {
            for op in [StorageOp::Write, StorageOp::Sync] {
                assert!(
                    asked.contains(&(op, topic.into(), p)),
                    "{op:?} {topic}: {asked:?}"
                );
            }
        }
    }

    /// Kafka's UnifiedLog.flush fsyncs only the segments from the recovery point on, and a
    /// rolled segment is flushed once (the roll schedules `flushUptoOffsetExclusive`): with
    /// flush.messages=1 an append fsyncs the active segment, never the older ones again.
    #[test]
    fn flush_messages_fsyncs_only_the_unflushed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let config = LogConfig {
            flush_messages: 1,
            segment_bytes: 500,
            ..LogConfig::default()
        };
        let log = faulty_log(&storage, &dir.path().join("t-0"), config);
        let log = Partition::new("t".into(), 0, log);
        let append = |n: i64| {
            for i in 0..n {
                log.append(&make_batch(&[b"some value"], i, None), 9, 0)
                    .unwrap();
            }
        };
        append(20);
        let segments = log.with_log(|l| l.segment_count());
        assert!(segments > 3, "{segments}");
        let first = "00000000000000000000.log";
        let synced = storage.sync_count(first);
        assert!(synced >= 1, "the first segment was flushed");
        append(20);
        assert_eq!(storage.sync_count(first), synced, "flushed once only");
        // The background flusher owes nothing: every rolled segment is flushed already.
        let before = storage.sync_count(".log");
        log.flush_in_background(i64::MAX).unwrap();
        assert_eq!(storage.sync_count(".log"), before);
    }

    /// Without flush.messages, a rolled segment is still fsynced once, in the background
    /// (Kafka's roll schedules a flush up to the new segment's base offset), and flush.ms
    /// flushes the active segment.
    #[test]
    fn rolled_segments_are_flushed_once_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let config = LogConfig {
            segment_bytes: 500,
            flush_ms: 1000,
            ..LogConfig::default()
        };
        let log = faulty_log(&storage, &dir.path().join("t-0"), config);
        let log = Partition::new("t".into(), 0, log);
        for i in 0..20 {
            log.append(&make_batch(&[b"some value"], i, None), 9, 0)
                .unwrap();
        }
        assert_eq!(
            storage.sync_count(".log"),
            0,
            "nothing fsynced on the append path"
        );
        let rolled = log.with_log(|l| l.segment_count()) - 1;
        log.flush_in_background(1).unwrap();
        assert_eq!(
            storage.sync_count(".log"),
            rolled,
            "each rolled segment once"
        );
        log.flush_in_background(2).unwrap();
        assert_eq!(storage.sync_count(".log"), rolled);
        log.flush_in_background(1001).unwrap();
        assert_eq!(
            storage.sync_count(".log"),
            rolled + 1,
            "flush.ms: the active one"
        );
    }

    /// Descriptors this process holds on files under `dir`.
    fn open_descriptors_under(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// Kafka holds one descriptor per segment (indexes memory-mapped, opened lazily); gregor
    /// holds the active segment's and a bounded number of inactive ones, reopened on read.
    #[test]
    fn descriptors_are_bounded_whatever_the_number_of_segments() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        storage.open_files().set_capacity(2);
        let config = LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 0,
            ..LogConfig::default()
        };
        let path = dir.path().join("t-0");
        let log = faulty_log(&storage, &path, config.clone());
        let log = Partition::new("t".into(), 0, log);
        for i in 0..40 {
            log.append(&make_batch(&[b"some value"], i, None), 9, 0)
                .unwrap();
        }
        let segments = log.with_log(|l| l.segment_count());
        assert!(segments >= 10, "{segments}");
        assert!(
            open_descriptors_under(&path) <= 3,
            "the active one and two cached"
        );
        // Every segment reads back, through reopened files.
        for offset in 0..40 {
            let plan = log.plan_read(offset).unwrap();
            let bytes = plan.read(usize::MAX, true).unwrap();
            let first = crate::log::batch::BatchIter::new(&bytes).next().unwrap().1;
            assert_eq!(first.base_offset, offset);
            assert!(open_descriptors_under(&path) <= 3);
        }
        // A fetch's file range keeps its descriptor (for sendfile) while the cache lets go.
        let range = log
            .plan_read(0)
            .unwrap()
            .range(1 << 20, true)
            .unwrap()
            .unwrap();
        storage.open_files().shed();
        assert!(range.fd().is_some());
        assert!(!range.read().unwrap().is_empty());
        drop(range);
        // After a clean shutdown the indexes are whole and trusted.
        log.with_log(|l| l.close(0)).unwrap();
        drop(log);
        let log = faulty_log(&storage, &path, config);
        assert_eq!(log.segment_count(), segments);
        assert!(open_descriptors_under(&path) <= 3);
        let report = crate::log::check::check_partition(&path, Default::default()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// Running out of descriptors is not a failed device: the one operation fails (a produce
    /// that needed a new segment), the log stays online and goes on once descriptors are back.
    #[test]
    fn out_of_descriptors_fails_one_append_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let config = LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        };
        let log = faulty_log(&storage, &dir.path().join("t-0"), config);
        let log = Partition::new("t".into(), 0, log);
        storage.inject("t-0", Fault::OpenFails);
        let mut failed = 0;
        for i in 0..10 {
            match log.append(&make_batch(&[b"some value"], i, None), 9, 0) {
                Ok(_) => {}
                Err(LogError::Storage(_)) => failed += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(failed > 0, "a roll needed a descriptor");
        storage.inject("", Fault::None);
        let info = log.append(&make_batch(&[b"later"], 9, None), 9, 0).unwrap();
        assert_eq!(info.base_offset, 10 - failed);
        assert_eq!(log.with_log(|l| l.log_end_offset()), 11 - failed);
    }
}
