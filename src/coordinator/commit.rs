//! Coordinator writes answered once committed (Kafka's CoordinatorRuntime: a write operation's
//! response is a deferred event completed when the high watermark passes the offset of its
//! records; GroupMetadataManager and TransactionStateManager in older Kafka appended with
//! acks=all for the same reason). In a cluster of processes the internal partitions are
//! replicated, and an answer given before the ISR has the records could be lost with the
//! leader: a committed offset that vanishes, a transaction whose prepare record a new
//! coordinator never sees.
//!
//! The runtime records where each write of a shard that follows leadership ended
//! ([`record`]) in the request being served ([`collect`], a task-local scope around the
//! request's handler: the coordinator APIs stay plain functions); the request then waits
//! ([`committed`]) until the high watermark of each partition passes its write, while this
//! broker still leads the partition in the same leader epoch the shard was loaded at. A moved
//! leader is NOT_COORDINATOR, a write not committed within `offsets.commit.timeout.ms`
//! COORDINATOR_NOT_AVAILABLE (Kafka's CoordinatorOperationExceptionHelper maps
//! NOT_LEADER_OR_FOLLOWER and REQUEST_TIMED_OUT so). Shards loaded once in one process record
//! nothing: their partitions have one replica, committed at the append.
//!
//! Kafka also keeps the shard's state at the last committed offset for reads (timeline data
//! structures); gregor's reads see the latest written state, which a moved leader drops with
//! the shard.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use crate::log::partition::AcksAll;
use crate::metadata::Catalog;
use crate::protocol::errors;
use crate::server::purgatory::Purgatory;

/// offsets.commit.timeout.ms's default: how long a coordinator write may wait to be committed.
pub const COMMIT_TIMEOUT_MS: u64 = 5000;

/// Where a coordinator write ended in its partition, and the leader epoch it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    pub topic: &'static str,
    pub partition: i32,
    pub leader_epoch: i32,
    /// The offset after the write's last record: committed once the high watermark reaches it.
    pub end_offset: i64,
}

tokio::task_local! {
    static WRITES: RefCell<Vec<CommitPoint>>;
}

/// Records a write of the request being served (nothing outside [`collect`]: timers and loads
/// answer no one).
pub fn record(point: CommitPoint) {
    let _ = WRITES.try_with(|w| {
        let mut w = w.borrow_mut();
        // One point per partition and epoch, the furthest: a later write covers an earlier one.
        match w.iter_mut().find(|p| {
            (p.topic, p.partition, p.leader_epoch)
                == (point.topic, point.partition, point.leader_epoch)
        }) {
            Some(p) => p.end_offset = p.end_offset.max(point.end_offset),
            None => w.push(point),
        }
    });
}

/// The writes recorded so far in the request being served (none outside [`collect`]): for an
/// answer to another request that rests on them (see `group::classic::SyncResult::commit`).
pub fn recorded() -> Vec<CommitPoint> {
    WRITES.try_with(|w| w.borrow().clone()).unwrap_or_default()
}

/// Runs a request's handler, returning its output and the coordinator writes it made.
pub async fn collect<F: Future>(f: F) -> (F::Output, Vec<CommitPoint>) {
    WRITES
        .scope(RefCell::new(Vec::new()), async {
            let out = f.await;
            (out, WRITES.with(|w| std::mem::take(&mut *w.borrow_mut())))
        })
        .await
}

/// [`collect`] for a handler run on a blocking thread; the caller records the points again in
/// its own scope ([`record`]).
pub fn collect_sync<R>(f: impl FnOnce() -> R) -> (R, Vec<CommitPoint>) {
    WRITES.sync_scope(RefCell::new(Vec::new()), || {
        let out = f();
        (out, WRITES.with(|w| std::mem::take(&mut *w.borrow_mut())))
    })
}

/// Waits until every write in `points` is committed: NONE, NOT_COORDINATOR when this broker
/// stopped leading a partition (or leads it in another epoch), COORDINATOR_NOT_AVAILABLE after
/// `timeout`.
pub async fn committed(
    catalog: &Catalog,
    purgatory: &Purgatory,
    points: &[CommitPoint],
    timeout: Duration,
) -> i16 {
    let deadline = tokio::time::Instant::now() + timeout;
    for point in points {
        let code = one_committed(catalog, purgatory, point, deadline).await;
        if code != errors::NONE {
            tracing::debug!(?point, code, "a coordinator write was not committed");
            return code;
        }
    }
    errors::NONE
}

async fn one_committed(
    catalog: &Catalog,
    purgatory: &Purgatory,
    point: &CommitPoint,
    deadline: tokio::time::Instant,
) -> i16 {
    let Some(partition) = catalog
        .get(point.topic)
        .and_then(|t| t.partition(point.partition).cloned())
    else {
        return errors::NOT_COORDINATOR;
    };
    let check = || match partition.committed_in_epoch(point.leader_epoch, point.end_offset) {
        AcksAll::Waiting => None,
        AcksAll::NotLeader => Some(errors::NOT_COORDINATOR),
        AcksAll::Replicated | AcksAll::NotEnoughReplicas => Some(errors::NONE),
    };
    if let Some(code) = check() {
        return code;
    }
    // The purgatory's check-watch-check: a move between the first check and the watch is seen
    // by the second.
    let watch = purgatory.watch([(point.topic, point.partition)]);
    loop {
        if let Some(code) = check() {
            return code;
        }
        if tokio::time::timeout_at(deadline, watch.woken())
            .await
            .is_err()
        {
            return check().unwrap_or(errors::COORDINATOR_NOT_AVAILABLE);
        }
    }
}
