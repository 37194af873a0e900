//! File descriptors of segment files, bounded.
//!
//! Kafka holds one descriptor per segment (its indexes are memory-mapped and opened lazily), so
//! the number of segments a broker can hold is bounded by the descriptor limit. gregor holds the
//! active segment's `.log` file open (appends go there) and no index file at all (see
//! `index.rs`); the `.log` file of an inactive segment is opened when it is read and stays in a
//! process-wide cache of open inactive files (`OpenFiles`, a CLOCK approximation of LRU) until
//! the cache needs the room. A reader holds its own reference to the open file, so evicting a
//! file from the cache never pulls it from under a read or a sendfile in flight; the descriptor
//! closes when the last reader is done.
//!
//! Running out of descriptors (EMFILE, ENFILE) is a resource error, not a failed device: the
//! cache gives back every descriptor it holds and the open is tried once more; if it still fails,
//! only the one operation fails, and the log stays online.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;

use super::storage::{SegmentFile, Storage};

/// The cache of open inactive segment files all logs of the process share (the descriptor limit
/// is per process): a quarter of the soft RLIMIT_NOFILE, leaving the rest to the active segments
/// (one per partition), connections and everything else.
pub static OPEN_FILES: LazyLock<OpenFiles> = LazyLock::new(|| OpenFiles::new(default_capacity()));

fn default_capacity() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 4)
        .unwrap_or(usize::MAX)
        .clamp(16, 65_536)
}

/// Whether `e` says the process or system ran out of a resource that comes back (descriptors,
/// disk space, quota), as opposed to a failed device: the operation fails, the log stays online.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        e.raw_os_error(),
        Some(ENOMEM | ENFILE | EMFILE | ENOSPC | EDQUOT)
    )
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Runs `open`; when the process is out of descriptors, closes every cached inactive file of
/// `cache` and tries once more.
pub fn open_retrying<T>(cache: &OpenFiles, open: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match open() {
        Err(e) if is_out_of_descriptors(&e) => {
            let closed = cache.shed();
            tracing::warn!(error = %e, closed, "out of file descriptors: closed the cached segment files");
            open()
        }
        r => r,
    }
}

/// Open inactive segment files, at most `capacity` of them.
pub struct OpenFiles {
    capacity: AtomicUsize,
    ring: Mutex<VecDeque<Weak<LogFileInner>>>,
}

impl OpenFiles {
    pub fn new(capacity: usize) -> OpenFiles {
        OpenFiles {
            capacity: AtomicUsize::new(capacity.max(1)),
            ring: Mutex::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
    }

    /// Takes a just opened inactive file into the cache, closing others beyond the capacity.
    fn admit(&self, file: &Arc<LogFileInner>) {
        let mut ring = self.ring.lock();
        ring.push_back(Arc::downgrade(file));
        let capacity = self.capacity.load(Ordering::Relaxed);
        // Each round either drops an entry or clears one reference bit, so this ends.
        while ring.len() > capacity {
            let Some(entry) = ring.pop_front() else { break };
            let Some(f) = entry.upgrade() else { continue };
            if f.referenced.swap(false, Ordering::Relaxed) {
                ring.push_back(entry);
            } else {
                f.close();
            }
        }
    }

    /// Closes every cached file (their readers keep theirs); returns how many were open.
    pub fn shed(&self) -> usize {
        let drained: Vec<_> = self.ring.lock().drain(..).collect();
        drained
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|f| f.close())
            .count()
    }

    /// How many inactive files are open through this cache now.
    pub fn open_count(&self) -> usize {
        let ring = self.ring.lock();
        ring.iter()
            .filter_map(Weak::upgrade)
            .filter(|f| f.state.lock().open.is_some())
            .count()
    }
}

/// A segment's `.log` file, open while the segment is active, opened on demand otherwise.
#[derive(Clone)]
pub struct LogFile(Arc<LogFileInner>);

struct LogFileInner {
    storage: Arc<dyn Storage>,
    state: Mutex<FileState>,
    /// Read since the cache last looked (CLOCK's reference bit).
    referenced: AtomicBool,
}

struct FileState {
    path: PathBuf,
    open: Option<Arc<dyn SegmentFile>>,
    /// Not in the cache: the active segment's file stays open.
    active: bool,
    /// (device, inode) of the file when first opened: a reopen that finds another file at the
    /// path (the segment was replaced by a cleaning, or its topic deleted and re-created) fails
    /// instead of reading someone else's bytes.
    identity: (u64, u64),
}

impl LogFileInner {
    /// Returns whether the file was open.
    fn close(&self) -> bool {
        let mut state = self.state.lock();
        !state.active && state.open.take().is_some()
    }
}

impl LogFile {
    /// Opens (or with `create`, creates empty) the file at `path` as an active segment's file.
    pub fn open(storage: &Arc<dyn Storage>, path: &Path, create: bool) -> io::Result<LogFile> {
        let cache = storage.open_files();
        let file = open_retrying(cache, || storage.open_segment(path, create))?;
        let identity = file.identity()?;
        Ok(LogFile(Arc::new(LogFileInner {
            storage: Arc::clone(storage),
            state: Mutex::new(FileState {
                path: path.to_path_buf(),
                open: Some(file),
                active: true,
                identity,
            }),
            referenced: AtomicBool::new(false),
        })))
    }

    /// The open file, opening it again if the cache closed it.
    pub fn handle(&self) -> io::Result<Arc<dyn SegmentFile>> {
        let inner = &self.0;
        let mut state = inner.state.lock();
        if let Some(f) = &state.open {
            inner.referenced.store(true, Ordering::Relaxed);
            return Ok(Arc::clone(f));
        }
        let cache = inner.storage.open_files();
        let file = open_retrying(cache, || inner.storage.open_segment(&state.path, false))?;
        if file.identity()? != state.identity {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} was replaced", state.path.display()),
            ));
        }
        state.open = Some(Arc::clone(&file));
        let active = state.active;
        drop(state);
        if !active {
            cache.admit(inner);
        }
        Ok(file)
    }

    /// The segment stopped being the active one (rolled, or an older segment at start-up): its
    /// file may be closed from now on.
    pub fn deactivate(&self) {
        let inner = &self.0;
        let mut state = inner.state.lock();
        if !state.active {
            return;
        }
        state.active = false;
        let open = state.open.is_some();
        drop(state);
        if open {
            inner.storage.open_files().admit(inner);
        }
    }

    /// The segment's directory was renamed (its topic deleted): later opens use the new path.
    pub fn moved_to(&self, dir: &Path) {
        let mut state = self.0.state.lock();
        if let Some(name) = state.path.file_name().map(|n| n.to_os_string()) {
            state.path = dir.join(name);
        }
    }
}

/// (device, inode) of an open file.
pub fn identity_of(file: &std::fs::File) -> io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::FaultyStorage;

    fn inactive_file(storage: &Arc<dyn Storage>, dir: &Path, name: &str) -> LogFile {
        let f = LogFile::open(storage, &dir.join(name), true).unwrap();
        f.deactivate();
        f
    }

    #[test]
    fn inactive_files_are_bounded_and_reopen_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyStorage::new();
        faulty.open_files().set_capacity(3);
        let storage: Arc<dyn Storage> = Arc::new(Arc::clone(&faulty));
        let files: Vec<LogFile> = (0..10)
            .map(|i| inactive_file(&storage, dir.path(), &format!("{i}.log")))
            .collect();
        assert_eq!(faulty.open_files().open_count(), 3);
        for f in &files {
            f.handle()
                .unwrap()
                .append(&[io::IoSlice::new(b"x")])
                .unwrap();
            assert!(faulty.open_files().open_count() <= 3);
        }
        // A reader's handle outlives its eviction.
        let held = files[0].handle().unwrap();
        assert_eq!(faulty.open_files().shed(), 3);
        let mut b = [0u8; 1];
        held.pread_exact(&mut b, 0).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn a_replaced_file_is_not_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(Arc::clone(&faulty));
        let f = inactive_file(&storage, dir.path(), "0.log");
        faulty.open_files().shed();
        let old = dir.path().join("0.log");
        std::fs::rename(&old, dir.path().join("old.log")).unwrap();
        std::fs::write(&old, b"another").unwrap();
        assert!(f.handle().is_err());
    }
}
