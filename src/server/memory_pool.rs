//! The memory pool of request frames, after Kafka's `MemoryPool` / `SimpleMemoryPool` as its
//! SocketServer uses it: `queued.max.request.bytes` bounds the bytes of requests being read or
//! waiting to be handled, across all connections (default -1: no bound, Kafka's `MemoryPool.NONE`).
//!
//! As in Kafka, a frame takes its claimed size from the pool when its size prefix has been read,
//! and gives it back once its request was handled. The pool is not strict: an allocation succeeds
//! whenever any memory is left, even if it takes the pool below zero, so a frame up to
//! socket.request.max.bytes always fits eventually and the total stays under
//! `queued.max.request.bytes + socket.request.max.bytes`. When nothing is left, a connection stops
//! reading (Kafka mutes the channel) until memory comes back: nothing is refused or dropped.
//! gregor's buffers still grow only as bytes arrive; the pool bounds what clients may claim.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

pub struct MemoryPool {
    /// Bytes left; `None` for an unbounded pool.
    available: Option<Mutex<i64>>,
    released: Notify,
}

impl MemoryPool {
    /// A pool of `queued_max_request_bytes`; zero or less means unbounded, as in Kafka.
    pub fn new(queued_max_request_bytes: i64) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            available: (queued_max_request_bytes > 0).then(|| Mutex::new(queued_max_request_bytes)),
            released: Notify::new(),
        })
    }

    /// Takes `bytes` when any memory is left (Kafka's non-strict `tryAllocate`).
    pub fn try_allocate(self: &Arc<Self>, bytes: usize) -> Option<Allocation> {
        let Some(available) = &self.available else {
            return Some(Allocation { pool: None, bytes });
        };
        let mut available = available.lock();
        if *available <= 0 {
            return None;
        }
        *available -= i64::try_from(bytes).unwrap_or(i64::MAX);
        Some(Allocation {
            pool: Some(Arc::clone(self)),
            bytes,
        })
    }

    /// Takes `bytes`, waiting while the pool is exhausted.
    pub async fn allocate(self: &Arc<Self>, bytes: usize) -> Allocation {
        loop {
            // Created before the check: a release between the check and the wait still wakes us.
            let released = self.released.notified();
            if let Some(a) = self.try_allocate(bytes) {
                return a;
            }
            released.await;
        }
    }

    /// Bytes left (may be negative); `None` when unbounded.
    pub fn available(&self) -> Option<i64> {
        self.available.as_ref().map(|a| *a.lock())
    }
}

/// Bytes taken from the pool; given back when dropped.
pub struct Allocation {
    pool: Option<Arc<MemoryPool>>,
    bytes: usize,
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let Some(pool) = &self.pool else {
            return;
        };
        if let Some(available) = &pool.available {
            *available.lock() += i64::try_from(self.bytes).unwrap_or(i64::MAX);
        }
        pool.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_by_default() {
        let pool = MemoryPool::new(-1);
        let held: Vec<_> = (0..10)
            .map(|_| pool.try_allocate(100 << 20).unwrap())
            .collect();
        assert_eq!(pool.available(), None);
        drop(held);
    }

    // SimpleMemoryPool(strict = false): any memory left admits an allocation of any size; an
    // exhausted pool admits none until something is released.
    #[test]
    fn not_strict_then_exhausted_until_released() {
        let pool = MemoryPool::new(1000);
        let small = pool.try_allocate(10).unwrap();
        let big = pool.try_allocate(5000).unwrap();
        assert_eq!(pool.available(), Some(-4010));
        assert!(pool.try_allocate(1).is_none());
        drop(small);
        assert!(pool.try_allocate(1).is_none(), "still below zero");
        drop(big);
        assert_eq!(pool.available(), Some(1000));
        assert!(pool.try_allocate(1).is_some());
    }

    #[tokio::test]
    async fn a_waiting_allocation_proceeds_on_release() {
        let pool = MemoryPool::new(100);
        let held = pool.try_allocate(100).unwrap();
        let waiter = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.allocate(50).await.bytes })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap(), 50);
        assert_eq!(
            pool.available(),
            Some(100),
            "the waiter's allocation was dropped"
        );
    }
}
