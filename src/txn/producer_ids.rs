//! Hands out producer ids for InitProducerId, never reusing one across restarts or crashes.
//!
//! Like Kafka's controller-side ProducerIdControlManager, ids are reserved in blocks: before the
//! first id of a block is handed out, the end of the block is written to
//! `DATA_DIR/producer-id-block` (decimal text, replaced atomically). After a crash the next block
//! starts past the saved end, so at most one block of ids is skipped and none is reused.
//!
//! The counter is driven only by InitProducerId, never by producer ids clients wrote into batches
//! (Kafka allocates from its own counter alone): the produce path refuses a producer id this
//! allocator has not handed out (`issued_end`), so a crafted batch can neither move the counter
//! towards i64::MAX nor claim an id that a real producer will be given later.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE.
const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-id-block";

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("cannot reserve producer ids: {0}")]
    Storage(#[from] io::Error),
    /// Kafka's controller refuses a block whose end would pass the int64 range
    /// (ProducerIdControlManager.generateNextProducerId).
    #[error("all producer ids are exhausted")]
    Exhausted,
}

pub struct ProducerIdAllocator {
    path: PathBuf,
    state: Mutex<(i64, i64)>, // (next id, end of the reserved block, exclusive)
}

impl ProducerIdAllocator {
    /// `floor` is one past the largest producer id found in any log, used only when the block file
    /// is missing or unreadable (a data directory whose file was lost); when the file is there it
    /// alone decides, so ids that clients wrote cannot move the counter.
    pub fn open(data_dir: &Path, floor: i64) -> io::Result<ProducerIdAllocator> {
        let path = data_dir.join(FILE_NAME);
        let saved = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let next = saved.unwrap_or(floor).max(0);
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new((next, next)),
        })
    }

    pub fn next_id(&self) -> Result<i64, ProducerIdError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state
                .0
                .checked_add(BLOCK_SIZE)
                .ok_or(ProducerIdError::Exhausted)?;
            let tmp = self.path.with_extension("tmp");
            fs::write(&tmp, end.to_string())?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }

    /// The ids this broker may have handed out are `0..issued_end()`: every id below the next one
    /// (after a restart that includes the unused rest of the last reserved block).
    pub fn issued_end(&self) -> i64 {
        self.state.lock().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path(), 0).unwrap();
        assert_eq!(a.next_id().unwrap(), 0);
        assert_eq!(a.next_id().unwrap(), 1);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path(), 0).unwrap();
        assert_eq!(b.next_id().unwrap(), BLOCK_SIZE);
        assert_eq!(b.issued_end(), BLOCK_SIZE + 1);
    }

    #[test]
    fn the_block_file_decides_over_ids_found_in_logs() {
        // Kafka allocates from its own counter only: a huge producer id in a log (written by a
        // client) must not move it once the block file exists.
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path(), 0).unwrap();
        assert_eq!(a.next_id().unwrap(), 0);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path(), i64::MAX).unwrap();
        assert_eq!(b.next_id().unwrap(), BLOCK_SIZE);
        // Without the file, the logs' floor guards against reusing ids.
        let empty = tempfile::tempdir().unwrap();
        let c = ProducerIdAllocator::open(empty.path(), 50_000).unwrap();
        assert_eq!(c.next_id().unwrap(), 50_000);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_negative_id() {
        // ProducerIdControlManager: "Exhausted all producerIds" instead of wrapping around.
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path(), i64::MAX - 1).unwrap();
        assert!(matches!(a.next_id(), Err(ProducerIdError::Exhausted)));
        assert_eq!(a.issued_end(), i64::MAX - 1);
    }
}
