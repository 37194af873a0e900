//! Broker snapshots (issue 16): `POST /v1/snapshot {"name": N}` records the whole state of the
//! broker at one instant, `POST /v1/restore {"name": N}` brings it back (see
//! `server::process`), `GET /v1/snapshots` lists them, `DELETE /v1/snapshots/{name}` removes one.
//!
//! Every durable thing a broker knows is in its logs: the partition logs, `__consumer_offsets`
//! (groups and committed offsets), `__transaction_state`, `__share_group_state`, and the
//! metadata log (topics, configs, ACLs, SCRAM users), beside checkpoint files that recovery can
//! do without. A snapshot closes the data directory's write gate (`log::manager::WriteGate`),
//! so that no append, roll, truncation, retention, DeleteRecords, cleaning swap, log creation
//! or deletion or metadata change is half-way, and captures the directory as it is: a state a
//! crash at that instant could have left. Restoring it is starting on it as after that crash:
//! recovery (transaction completion, group loading, producer state rebuilt from the logs)
//! brings back exactly the offsets, groups and transactions of the instant.
//!
//! On disk, `<data dir>/.snapshots/<name>/` (inside the data directory, so that hard links
//! never cross a file system and the snapshots travel with the data; every scan of the data
//! directory passes over it: it is neither a partition directory nor a `-delete` one):
//! - each closed segment's `.log` (every `.log` of a directory but the newest, the active
//!   one) is a hard link: nothing rewrites a closed segment in place (retention and the
//!   cleaner delete or replace it by unlink and rename, which leave a linked inode alone;
//!   truncation in place is a Raft or replica follower's, and snapshots refuse a quorum);
//! - everything else is copied: active segments, indexes, checkpoints, the metadata log's
//!   active segment and snapshots, `meta.properties`, modification times kept (retention
//!   judges a segment without timestamps by it);
//! - left out: `.lock`, the snapshots themselves, `-delete` directories, temporary files
//!   (`.tmp`) and a cleaning's unfinished `.cleaned` files, which a restart removes anyway;
//! - `snapshot.json`, written last: its name, when it was taken, what it holds. A directory
//!   without it is an interrupted snapshot and is neither listed nor restored.
//!
//! A snapshot is built under `.<name>.partial` and renamed into place, replacing one of the
//! same name. A restore makes the data directory again the same way from the snapshot (links
//! for the closed segments, copies of everything that will be written), so the snapshot stays
//! as it was for the next restore. Names: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a
//! dot.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use crate::log::manager::WriteGate;
use crate::log::segment::parse_log_file_name;

/// Under the data directory.
pub const SNAPSHOTS_DIR: &str = ".snapshots";
/// Written last into a snapshot: it is complete.
const MANIFEST: &str = "snapshot.json";
const PARTIAL_SUFFIX: &str = ".partial";
/// What the data directory keeps through a restore (the process's lock, the snapshots).
const LOCK_FILE: &str = ".lock";
const MAX_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// 400.
    #[error("{0}")]
    BadName(String),
    /// 404.
    #[error("no snapshot '{0}'")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Unsupported(String),
    /// 500.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What a capture or a restore did with the files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Files in the result.
    pub files: u64,
    /// Of those, hard links (closed segments).
    pub linked: u64,
    /// Bytes copied for the others.
    pub copied_bytes: u64,
}

/// `<data dir>/.snapshots`.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOTS_DIR)
}

/// A snapshot's name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with a dot (so never `..`, nor
/// the name of a partial one).
pub fn check_name(name: &str) -> Result<(), SnapshotError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.chars().all(allowed)
        && !name.starts_with('.');
    match ok {
        true => Ok(()),
        false => Err(SnapshotError::BadName(format!(
            "a snapshot name is 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . _ - and does not start with a dot: '{name}'"
        ))),
    }
}

/// Captures `data_dir` as snapshot `name` with `gate` closed, replacing a snapshot of that
/// name. `created_ms` is the broker's clock. Returns the answer of `POST /v1/snapshot`.
pub fn capture(
    data_dir: &Path,
    gate: &WriteGate,
    name: &str,
    created_ms: i64,
) -> Result<Value, SnapshotError> {
    check_name(name)?;
    let started = Instant::now();
    let root = snapshots_dir(data_dir);
    fs::create_dir_all(&root)?;
    let partial = root.join(format!(".{name}{PARTIAL_SUFFIX}"));
    remove_if_there(&partial)?;
    fs::create_dir(&partial)?;
    let copied = {
        let _closed = gate.close();
        replicate(data_dir, &partial, true)
    };
    let copied = copied.inspect_err(|_| {
        let _ = fs::remove_dir_all(&partial);
    })?;
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answer = json!({
        "name": name,
        "created_ms": created_ms,
        "took_ms": took_ms,
        "files": copied.files,
        "linked": copied.linked,
        "copied_bytes": copied.copied_bytes,
    });
    fs::write(partial.join(MANIFEST), answer.to_string())?;
    let target = root.join(name);
    remove_if_there(&target)?;
    fs::rename(&partial, &target)?;
    tracing::info!(
        name,
        took_ms,
        files = copied.files,
        linked = copied.linked,
        copied_bytes = copied.copied_bytes,
        "snapshot taken"
    );
    Ok(answer)
}

/// Makes `data_dir` what snapshot `name` holds: everything in it but its lock and the snapshots
/// goes, then the snapshot is laid out again (links and copies). The broker must be stopped.
pub fn lay_out(data_dir: &Path, name: &str) -> Result<Copied, SnapshotError> {
    let snapshot = complete(data_dir, name)?;
    for e in fs::read_dir(data_dir)? {
        let e = e?;
        let file_name = e.file_name();
        if file_name == LOCK_FILE || file_name == SNAPSHOTS_DIR {
            continue;
        }
        remove_if_there(&e.path())?;
    }
    Ok(replicate(&snapshot, data_dir, true)?)
}

/// The directory of complete snapshot `name`.
pub fn complete(data_dir: &Path, name: &str) -> Result<PathBuf, SnapshotError> {
    check_name(name)?;
    let dir = snapshots_dir(data_dir).join(name);
    match dir.join(MANIFEST).is_file() {
        true => Ok(dir),
        false => Err(SnapshotError::NotFound(name.to_string())),
    }
}

/// `GET /v1/snapshots`: each complete snapshot's name, creation time (the broker's clock), and
/// the bytes of its files (linked ones too), by name.
pub fn list(data_dir: &Path) -> io::Result<Value> {
    let root = snapshots_dir(data_dir);
    let mut found = Vec::new();
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(json!({"snapshots": []})),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if check_name(&name).is_err() {
            continue;
        }
        let Ok(manifest) = fs::read(e.path().join(MANIFEST)) else {
            continue;
        };
        let manifest: Value = serde_json::from_slice(&manifest).unwrap_or_default();
        found.push(json!({
            "name": name,
            "created_ms": manifest.get("created_ms").cloned().unwrap_or(Value::Null),
            "bytes": bytes_under(&e.path())?,
        }));
    }
    found.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({ "snapshots": found }))
}

/// `DELETE /v1/snapshots/{name}`.
pub fn delete(data_dir: &Path, name: &str) -> Result<(), SnapshotError> {
    let dir = complete(data_dir, name)?;
    fs::remove_dir_all(dir)?;
    Ok(())
}

fn bytes_under(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        total += match meta.is_dir() {
            true => bytes_under(&e.path())?,
            false => meta.len(),
        };
    }
    Ok(total)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether a file or directory of a data directory (or a snapshot) stays out of a copy of it.
fn left_out(name: &str, top: bool, is_dir: bool) -> bool {
    let top_only = top && (name == LOCK_FILE || name == SNAPSHOTS_DIR || name == MANIFEST);
    let doomed = is_dir && name.ends_with("-delete");
    let temporary =
        !is_dir && (name.ends_with(".tmp") || name.ends_with(crate::log::cleaner::CLEANED_SUFFIX));
    top_only || doomed || temporary
}

/// Lays out `src` in `dst` (an existing directory): closed segments' `.log` files hard-linked,
/// everything else copied (see the module comment). `top` is the data directory's own level.
fn replicate(src: &Path, dst: &Path, top: bool) -> io::Result<Copied> {
    let mut entries = Vec::new();
    for e in fs::read_dir(src)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = e.file_type()?;
        if (kind.is_dir() || kind.is_file()) && !left_out(&name, top, kind.is_dir()) {
            entries.push((name, kind.is_dir()));
        }
    }
    // The newest `.log` is the active segment, appended to: copied; the others are closed.
    let active = entries
        .iter()
        .filter(|(_, dir)| !dir)
        .filter_map(|(name, _)| parse_log_file_name(name))
        .max();
    let mut copied = Copied::default();
    for (name, is_dir) in entries {
        let (from, to) = (src.join(&name), dst.join(&name));
        if is_dir {
            fs::create_dir(&to)?;
            let inner = replicate(&from, &to, false)?;
            copied.files += inner.files;
            copied.linked += inner.linked;
            copied.copied_bytes += inner.copied_bytes;
            continue;
        }
        let closed = parse_log_file_name(&name).is_some_and(|base| Some(base) < active);
        if closed {
            fs::hard_link(&from, &to)?;
            copied.linked += 1;
        } else {
            copied.copied_bytes += copy_file(&from, &to)?;
        }
        copied.files += 1;
    }
    Ok(copied)
}

/// Copies a file with its modification time.
fn copy_file(from: &Path, to: &Path) -> io::Result<u64> {
    let bytes = fs::copy(from, to)?;
    let modified = fs::metadata(from)?.modified()?;
    fs::File::options()
        .write(true)
        .open(to)?
        .set_modified(modified)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;

    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::partition::{Partition, PartitionLog};
    use crate::log::LogConfig;

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        }
    }

    fn partition(data: &Path, gate: &Arc<WriteGate>) -> Partition {
        let log = PartitionLog::open(&data.join("t-0"), small_segments(), true, 0).unwrap();
        Partition::behind("t".into(), 0, log, Arc::clone(gate))
    }

    #[test]
    fn names() {
        for good in ["a", "before-test_1.2", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "ä",
            &"x".repeat(65),
            "../x",
        ] {
            assert!(
                matches!(check_name(bad), Err(SnapshotError::BadName(_))),
                "{bad}"
            );
        }
    }

    /// Closed segments are links to the live files, everything else copies; a later append
    /// and retention of the live log change nothing in the snapshot.
    #[test]
    fn closed_segments_are_linked_and_the_rest_copied() {
        let data = tempfile::tempdir().unwrap();
        let gate = Arc::new(WriteGate::default());
        let p = partition(data.path(), &gate);
        for i in 0..12 {
            p.append(&make_batch(&[b"some value"], i, None), 9, 0)
                .unwrap();
        }
        fs::write(data.path().join(LOCK_FILE), "").unwrap();
        fs::write(data.path().join("meta.properties"), "version=1\n").unwrap();
        let segments = p.with_log(|l| l.segment_count()) as u64;
        assert!(segments >= 3, "{segments}");
        let active = p.with_log(|l| l.active_base_offset());

        let answer = capture(data.path(), &gate, "s1", 7).unwrap();
        assert_eq!(answer["linked"], segments - 1);
        let snap = snapshots_dir(data.path()).join("s1");
        assert!(!snap.join(LOCK_FILE).exists());
        assert!(snap.join("meta.properties").is_file());
        let live = data.path().join("t-0");
        for e in fs::read_dir(snap.join("t-0")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let inode = |p: &Path| fs::metadata(p).unwrap().ino();
            let same = inode(&e.path()) == inode(&live.join(&name));
            let closed = parse_log_file_name(&name).is_some_and(|b| b < active);
            assert_eq!(same, closed, "{name}");
        }
        let copied_active = snap
            .join("t-0")
            .join(crate::log::segment::file_name(active, "log"));
        let size = fs::metadata(&copied_active).unwrap().len();

        // The live log goes on: appends to the active segment, the oldest segments deleted.
        for i in 12..20 {
            p.append(&make_batch(&[b"some value"], i, None), 9, 0)
                .unwrap();
        }
        p.with_log(|l| l.delete_records(10)).unwrap();
        assert_eq!(fs::metadata(&copied_active).unwrap().len(), size);
        let listed = list(data.path()).unwrap();
        assert_eq!(listed["snapshots"][0]["name"], "s1");
        assert_eq!(listed["snapshots"][0]["created_ms"], 7);

        // Laid out again: the log as it was at the capture.
        drop(p);
        let copied = lay_out(data.path(), "s1").unwrap();
        assert_eq!(copied.linked, segments - 1);
        assert!(data.path().join(LOCK_FILE).exists(), "the lock stays");
        let log = PartitionLog::open(&live, small_segments(), false, 0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 12));
        assert!(complete(data.path(), "s1").is_ok(), "reusable");
        delete(data.path(), "s1").unwrap();
        assert!(matches!(
            lay_out(data.path(), "s1"),
            Err(SnapshotError::NotFound(_))
        ));
    }

    /// Every change of a log holds the gate: a snapshot cannot close it while one is under way.
    #[test]
    fn the_gate_excludes_a_change_under_way() {
        let data = tempfile::tempdir().unwrap();
        let gate = Arc::new(WriteGate::default());
        let p = partition(data.path(), &gate);
        p.with_log(|_| assert!(gate.try_close().is_none(), "a change holds the gate"));
        assert!(gate.try_close().is_some(), "and lets go of it");
        // A thread's append waits while the gate is closed, and goes on once it opens.
        let p = Arc::new(p);
        let (tx, rx) = std::sync::mpsc::channel();
        let appended = {
            let closed = gate.close();
            let p = Arc::clone(&p);
            let t = std::thread::spawn(move || {
                p.append(&make_batch(&[b"v"], 0, None), 9, 0).unwrap();
                tx.send(()).unwrap();
            });
            let early = rx.try_recv().is_ok();
            drop(closed);
            t.join().unwrap();
            early
        };
        assert!(!appended, "the append waited for the gate");
        assert_eq!(p.with_log(|l| l.log_end_offset()), 1);
    }

    /// Snapshots taken while another thread appends all the time are whole: every one opens
    /// after a crash without a torn tail to cut.
    #[test]
    fn snapshots_under_appends_are_whole() {
        let data = tempfile::tempdir().unwrap();
        let gate = Arc::new(WriteGate::default());
        let p = Arc::new(partition(data.path(), &gate));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (p, stop) = (Arc::clone(&p), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    p.append(&make_batch(&[b"some value"], i, None), 9, 0)
                        .unwrap();
                    i += 1;
                }
            })
        };
        for n in 0..20 {
            capture(data.path(), &gate, &format!("s{n}"), 0).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        for n in 0..20 {
            let dir = snapshots_dir(data.path()).join(format!("s{n}")).join("t-0");
            let report = crate::log::check::check_partition(&dir, Default::default()).unwrap();
            assert_eq!(report.torn_tail_bytes, 0, "s{n}");
            assert!(report.problems.is_empty(), "s{n}: {:?}", report.problems);
        }
    }
}
