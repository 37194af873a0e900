//! Kafka's checkpoint files (server-common's `CheckpointFile`): the text format of
//! `leader-epoch-checkpoint` in each partition directory and of the offset checkpoints
//! (`recovery-point-offset-checkpoint`, ...) in the log directory. UTF-8, every line ending in
//! '\n':
//!
//! ```text
//! 0          the format version, always 0
//! N          how many entries follow
//! <entry>    N lines, their fields separated by a space
//! ```
//!
//! Written to `<file>.tmp`, fsynced and renamed over the file (`Storage::write_atomically`), so a
//! reader sees the old or the new content, never a mix. As Kafka's `CheckpointReadBuffer`, a
//! reader takes an empty file (or one without a count line) as no entries, and refuses an unknown
//! version, a malformed line or a count that does not match the lines.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::partition::Recovery;
use super::storage::Storage;

/// The log directory's checkpoint of each partition's recovery point (LogManager's
/// RecoveryPointCheckpointFile): every offset below it was fsynced, so after a crash only the
/// segments from it on are verified.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";

/// The log directory's checkpoint of each replicated partition's high watermark (ReplicaManager's
/// highWatermarkCheckpoints): written periodically and at a clean shutdown, read at start-up, so
/// that a restarted replica does not take records it held but that were never committed for
/// committed ones.
pub const REPLICATION_CHECKPOINT: &str = "replication-offset-checkpoint";

/// The only version Kafka writes and reads (CURRENT_VERSION of every checkpoint file).
pub const VERSION: i32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("unrecognised checkpoint version {0}, expected {VERSION}")]
    Version(String),
    #[error("malformed line in checkpoint file: {0:?}")]
    Malformed(String),
    #[error("expected {expected} entries in checkpoint file, but found {found}")]
    Count { expected: usize, found: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The file's text for `entries`, each already formatted as its line (without the newline).
pub fn encode(entries: &[String]) -> String {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        out.push_str(e);
        out.push('\n');
    }
    out
}

/// The entries of a checkpoint's `text`, each line's fields handed to `entry`, which returns
/// `None` for a malformed one.
pub fn parse<T>(
    text: &str,
    entry: impl Fn(&[&str]) -> Option<T>,
) -> Result<Vec<T>, CheckpointError> {
    let mut lines = text.lines();
    let Some(version) = lines.next() else {
        return Ok(Vec::new());
    };
    if version.parse::<i32>().ok() != Some(VERSION) {
        return Err(CheckpointError::Version(version.to_string()));
    }
    let Some(count) = lines.next() else {
        return Ok(Vec::new());
    };
    let expected: usize = count
        .parse()
        .map_err(|_| CheckpointError::Malformed(count.to_string()))?;
    // Bounded by the file's own lines, not by the count it claims.
    let entries = lines
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            entry(&fields).ok_or_else(|| CheckpointError::Malformed(line.to_string()))
        })
        .collect::<Result<Vec<T>, _>>()?;
    if entries.len() != expected {
        return Err(CheckpointError::Count {
            expected,
            found: entries.len(),
        });
    }
    Ok(entries)
}

/// Reads and parses the checkpoint at `path`; `None` when there is no such file.
pub fn read<T>(
    path: &Path,
    entry: impl Fn(&[&str]) -> Option<T>,
) -> Result<Option<Vec<T>>, CheckpointError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, entry).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The text of an offset checkpoint (OffsetCheckpointFile): `<topic> <partition> <offset>` lines.
pub fn encode_offsets(entries: &[(String, i32, i64)]) -> String {
    let lines: Vec<String> = entries
        .iter()
        .map(|(topic, partition, offset)| format!("{topic} {partition} {offset}"))
        .collect();
    encode(&lines)
}

fn parse_offset(fields: &[&str]) -> Option<((String, i32), i64)> {
    match fields {
        [topic, partition, offset] => Some((
            (topic.to_string(), partition.parse().ok()?),
            offset.parse().ok()?,
        )),
        _ => None,
    }
}

/// Writes the recovery points of `dir`'s logs, unless the file already says exactly that (the
/// housekeeping tick calls this every second; Kafka writes every
/// log.flush.offset.checkpoint.interval.ms, and gregor only when something moved).
pub fn write_recovery_points(
    storage: &dyn Storage,
    dir: &Path,
    entries: Vec<(String, i32, i64)>,
) -> io::Result<()> {
    write_offsets(storage, &dir.join(RECOVERY_POINT_CHECKPOINT), entries)
}

/// Writes an offset checkpoint at `path` (sorted), unless it already says exactly that.
pub fn write_offsets(
    storage: &dyn Storage,
    path: &Path,
    mut entries: Vec<(String, i32, i64)>,
) -> io::Result<()> {
    entries.sort();
    let text = encode_offsets(&entries);
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    storage.write_atomically(path, text.as_bytes())
}

/// The offsets of the checkpoint at `path`, by (topic, partition); none when it is missing.
pub fn read_offsets(path: &Path) -> Result<HashMap<(String, i32), i64>, CheckpointError> {
    Ok(read(path, parse_offset)?
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// How the logs of a log directory open: after a clean shutdown every segment is trusted; after
/// a crash each log verifies the segments from its checkpointed recovery point on (all of them
/// when the checkpoint does not name it), as Kafka's LogLoader.recoverLog.
pub struct RecoveryPoints {
    clean: bool,
    points: HashMap<(String, i32), i64>,
}

impl RecoveryPoints {
    /// After a clean shutdown, or for logs created now.
    pub fn clean() -> RecoveryPoints {
        RecoveryPoints {
            clean: true,
            points: HashMap::new(),
        }
    }

    /// After a crash: the recovery points checkpointed in `dir` (none when the file is missing or
    /// unreadable, so every segment is verified).
    pub fn after_crash(dir: &Path) -> RecoveryPoints {
        let path = dir.join(RECOVERY_POINT_CHECKPOINT);
        let points = match read_offsets(&path) {
            Ok(points) => points,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable recovery point checkpoint: verifying every segment");
                HashMap::new()
            }
        };
        RecoveryPoints {
            clean: false,
            points,
        }
    }

    pub fn for_partition(&self, topic: &str, partition: i32) -> Recovery {
        if self.clean {
            return Recovery::Clean;
        }
        let recovery_point = self
            .points
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0);
        Recovery::Crashed { recovery_point }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(f: &[&str]) -> Option<(i32, i64)> {
        match f {
            [a, b] => Some((a.parse().ok()?, b.parse().ok()?)),
            _ => None,
        }
    }

    /// The layout of Kafka's CheckpointWriteBuffer: version line, count line, one line an entry.
    #[test]
    fn writes_and_reads_kafkas_layout() {
        let text = encode(&["0 0".into(), "3 120".into()]);
        assert_eq!(text, "0\n2\n0 0\n3 120\n");
        assert_eq!(parse(&text, pair).unwrap(), vec![(0, 0), (3, 120)]);
        assert_eq!(encode(&[]), "0\n0\n");
        assert!(parse("0\n0\n", pair).unwrap().is_empty());
    }

    /// CheckpointReadBuffer.read: empty file or no count line is no entries; anything else that
    /// is off is an error.
    #[test]
    fn refuses_what_kafka_refuses() {
        assert!(parse("", pair).unwrap().is_empty());
        assert!(parse("0\n", pair).unwrap().is_empty());
        assert!(matches!(
            parse("1\n0\n", pair),
            Err(CheckpointError::Version(_))
        ));
        assert!(matches!(
            parse("0\nx\n", pair),
            Err(CheckpointError::Malformed(_))
        ));
        assert!(matches!(
            parse("0\n1\n0 0 0\n", pair),
            Err(CheckpointError::Malformed(_))
        ));
        assert!(matches!(
            parse("0\n2\n0 0\n", pair),
            Err(CheckpointError::Count {
                expected: 2,
                found: 1
            })
        ));
        // A huge claimed count allocates nothing: only the lines present are read.
        assert!(matches!(
            parse("0\n4000000000\n", pair),
            Err(CheckpointError::Count { .. })
        ));
    }

    /// Offset checkpoints round-trip in Kafka's `<topic> <partition> <offset>` lines, sorted.
    #[test]
    fn offset_checkpoints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLICATION_CHECKPOINT);
        let storage = crate::log::storage::FileStorage;
        let entries = vec![("b".to_string(), 0, 7), ("a".to_string(), 1, 3)];
        write_offsets(&storage, &path, entries).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n2\na 1 3\nb 0 7\n");
        let read = read_offsets(&path).unwrap();
        assert_eq!(read.get(&("b".to_string(), 0)), Some(&7));
        assert_eq!(read.len(), 2);
        assert!(read_offsets(&dir.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("nope"), pair).unwrap().is_none());
    }
}
