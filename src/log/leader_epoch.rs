//! The leader epoch cache of a partition (Kafka's `LeaderEpochFileCache`): for each leader epoch
//! that wrote to the log, the offset of its first batch. OffsetForLeaderEpoch answers from it
//! (KIP-101, KIP-320: a consumer detects a log truncated under it), and it is kept in the
//! partition directory as `leader-epoch-checkpoint`, in Kafka's checkpoint format (see
//! `checkpoint`), one `<epoch> <start offset>` line an entry, oldest first:
//!
//! ```text
//! 0
//! 2
//! 0 0
//! 3 1200
//! ```
//!
//! The entries grow in both epoch and start offset. The log writes the file whenever an entry is
//! assigned (a new epoch), and when the log is cut at either end (retention and DeleteRecords at
//! the start, recovery at the end); a restart rebuilds what the file lacks from the batches'
//! `partition_leader_epoch` (see `PartitionLog::open_on`).

use std::path::Path;

use super::checkpoint::{self, CheckpointError};

/// The file's name in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// No epoch (RecordBatch.NO_PARTITION_LEADER_EPOCH, OffsetForLeaderEpoch's UNDEFINED_EPOCH).
pub const UNDEFINED_EPOCH: i32 = -1;
/// No offset (UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The entries, oldest first; both epochs and start offsets strictly increase.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// The cache in a checkpoint's text. Entries are assigned in order, as Kafka's constructor
    /// does, so a file that breaks the ordering keeps only a consistent tail of it.
    pub fn parse(text: &str) -> Result<LeaderEpochCache, CheckpointError> {
        Ok(Self::from_entries(checkpoint::parse(text, parse_entry)?))
    }

    /// The cache kept in `dir`; `None` when the directory has no checkpoint file.
    pub fn read(dir: &Path) -> Result<Option<LeaderEpochCache>, CheckpointError> {
        let entries = checkpoint::read(&dir.join(LEADER_EPOCH_CHECKPOINT), parse_entry)?;
        Ok(entries.map(Self::from_entries))
    }

    fn from_entries(entries: Vec<EpochEntry>) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for e in entries {
            cache.assign(e.epoch, e.start_offset);
        }
        cache
    }

    /// The checkpoint file's text.
    pub fn to_checkpoint(&self) -> String {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        checkpoint::encode(&lines)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`; returns whether the cache changed. The same
    /// epoch at a later offset changes nothing; entries that a new one contradicts (an epoch as
    /// new or newer, or starting at or after it) are dropped first (LeaderEpochFileCache.assign,
    /// maybeTruncateNonMonotonicEntries). Negative values are not epochs (Kafka refuses them) and
    /// are ignored: a batch written without an epoch has none to record.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && start_offset >= last.start_offset {
                return false;
            }
        }
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The end offset of `requested` (LeaderEpochFileCache.endOffsetFor) as (epoch, end offset):
    /// the largest known epoch at or below the requested one, and the start of the next epoch
    /// after it, or `log_end_offset` for the latest epoch. An epoch older than every entry (its
    /// records are gone) ends where the first known epoch starts. No epoch, or one newer than any
    /// known, is (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// The epoch that wrote `offset` (LeaderEpochFileCache.epochForOffset): the newest entry
    /// starting at or before it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// The log now ends at `end_offset`: entries starting at or after it go
    /// (truncateFromEnd). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = end_offset >= 0 && keep < self.entries.len();
        if changed {
            self.entries.truncate(keep);
        }
        changed
    }

    /// The log now starts at `start_offset`: entries wholly before it go, and the epoch holding
    /// it starts there (truncateFromStart). Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let before = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(holding) = before.checked_sub(1).map(|i| self.entries[i]) else {
            return false;
        };
        if before == 1 && holding.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..before);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: holding.epoch,
                start_offset,
            },
        );
        true
    }
}

/// One line of the file: `<epoch> <start offset>`.
fn parse_entry(fields: &[&str]) -> Option<EpochEntry> {
    match fields {
        [epoch, offset] => Some(EpochEntry {
            epoch: epoch.parse().ok()?,
            start_offset: offset.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// LeaderEpochFileCacheTest: the same epoch again is no change; a new epoch appends; an entry
    /// that breaks monotonicity drops the entries it contradicts.
    #[test]
    fn assign_keeps_the_entries_monotonic() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15));
        assert!(c.assign(3, 20));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 20)]);
        // An epoch starting before the latest entries' start: those go.
        assert!(c.assign(4, 12));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (4, 12)]);
        // An older epoch: every entry as new or newer goes.
        assert!(c.assign(1, 30));
        assert_eq!(pairs(&c), vec![(0, 0), (1, 30)]);
        // The same epoch at an earlier offset moves its start back.
        assert!(c.assign(1, 25));
        assert_eq!(pairs(&c), vec![(0, 0), (1, 25)]);
        assert!(!c.assign(-1, 40));
        assert!(!c.assign(5, -1));
    }

    /// LeaderEpochFileCache.endOffsetFor, case by case.
    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 5), (3, 10), (6, 20)]);
        let leo = 30;
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, leo), (6, 30));
        // A known epoch ends where the next begins.
        assert_eq!(c.end_offset_for(3, leo), (3, 20));
        // An unknown epoch between two known: the one below, ending where the next begins.
        assert_eq!(c.end_offset_for(4, leo), (3, 20));
        assert_eq!(c.end_offset_for(2, leo), (1, 10));
        // Older than every entry: the requested epoch, ending where the first begins.
        assert_eq!(c.end_offset_for(0, leo), (0, 5));
        // Newer than any, and no epoch at all: undefined.
        assert_eq!(c.end_offset_for(7, leo), (-1, -1));
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, leo), (-1, -1));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, leo), (-1, -1));
    }

    #[test]
    fn epoch_for_offset() {
        let c = cache(&[(1, 5), (3, 10)]);
        assert_eq!(c.epoch_for_offset(4), None);
        assert_eq!(c.epoch_for_offset(5), Some(1));
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.epoch_for_offset(1000), Some(3));
    }

    /// truncateFromEnd drops entries starting at or after the new end; truncateFromStart drops
    /// those wholly before the new start and moves the holding epoch's start up (exclusive: an
    /// entry starting exactly there stays).
    #[test]
    fn truncation_at_both_ends() {
        let mut c = cache(&[(1, 5), (3, 10), (6, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(1, 5), (3, 10)]);
        assert!(!c.truncate_from_start(5));
        assert!(!c.truncate_from_start(2));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), vec![(3, 12)]);
        let mut c = cache(&[(1, 5), (3, 10)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(pairs(&c), vec![(3, 10)]);
        assert!(c.truncate_from_end(0));
        assert!(c.entries().is_empty());
    }

    /// The file is Kafka's: `kafka-dump-log`-era tools and a Kafka broker read it as theirs.
    #[test]
    fn checkpoint_text_round_trips() {
        let c = cache(&[(0, 0), (3, 1200)]);
        assert_eq!(c.to_checkpoint(), "0\n2\n0 0\n3 1200\n");
        assert_eq!(LeaderEpochCache::parse(&c.to_checkpoint()).unwrap(), c);
        // Out-of-order entries keep a monotonic tail, as Kafka's constructor assigns each.
        let c = LeaderEpochCache::parse("0\n3\n0 0\n5 10\n2 20\n").unwrap();
        assert_eq!(pairs(&c), vec![(0, 0), (2, 20)]);
        assert!(LeaderEpochCache::parse("0\n1\n0\n").is_err());
    }
}
