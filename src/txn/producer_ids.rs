//! Hands out producer ids for InitProducerId, never reusing one across restarts or crashes.
//!
//! Like Kafka's controller-side ProducerIdManager, ids are reserved in blocks: before the first id
//! of a block is handed out, the end of the block is written to `DATA_DIR/producer-id-block`
//! (decimal text, replaced atomically). After a crash the next block starts past the saved end, so
//! at most one block of ids is skipped and none is reused.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-id-block";

pub struct ProducerIdAllocator {
    path: PathBuf,
    state: Mutex<(i64, i64)>, // (next id, end of the reserved block, exclusive)
}

impl ProducerIdAllocator {
    /// `floor` is one past the largest producer id found in any log, a guard for data directories
    /// whose block file was lost.
    pub fn open(data_dir: &Path, floor: i64) -> io::Result<ProducerIdAllocator> {
        let path = data_dir.join(FILE_NAME);
        let saved = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let next = saved.max(floor).max(0);
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new((next, next)),
        })
    }

    pub fn next_id(&self) -> io::Result<i64> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state.0 + BLOCK_SIZE;
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
        let c = ProducerIdAllocator::open(dir.path(), 50_000).unwrap();
        assert_eq!(c.next_id().unwrap(), 50_000);
    }
}
