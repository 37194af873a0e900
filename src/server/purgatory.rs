//! The purgatory: requests parked until a condition on a partition holds (Kafka's
//! `DelayedOperationPurgatory`, in its `server.purgatory` package, hence `server/purgatory.rs`).
//!
//! A parked request (today a long-polling Fetch; later acks=all produces and follower fetches)
//! watches the partitions whose state decides it, keyed by topic-partition as Kafka's
//! `TopicPartitionOperationKey`. Whoever changes a partition (an append) calls
//! `check_and_complete` for that partition, which wakes only the requests watching it; each woken
//! request re-checks its own condition (Kafka's `tryComplete`) and answers or waits again. So an
//! append costs in proportion to the requests waiting on that partition, not to every parked
//! request of the broker.
//!
//! As in Kafka's `tryCompleteElseWatch`, a request checks once, registers (`watch`), then checks
//! again before it waits: a change between the first check and the registration is seen by the
//! second check, and a change after the registration leaves a wake-up stored in the watcher, so
//! none is missed. Dropping the `Watch` (answered, timed out, or the connection closed)
//! unregisters it, so the purgatory holds nothing for requests that are gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::metadata::image::{MetadataDelta, MetadataImage};
use crate::metadata::publisher::MetadataPublisher;
use crate::metadata::Catalog;

/// Watchers of one partition, by watch id.
type Watchers = HashMap<u64, Arc<Notify>>;

#[derive(Default)]
pub struct Purgatory {
    /// topic -> partition -> watchers. Nested so that a lookup borrows the topic name.
    watchers: Mutex<HashMap<String, HashMap<i32, Watchers>>>,
    next_id: AtomicU64,
}

impl Purgatory {
    pub fn new() -> Purgatory {
        Purgatory::default()
    }

    /// Registers one parked request on every `(topic, partition)` it waits on.
    pub fn watch<'k>(&self, keys: impl IntoIterator<Item = (&'k str, i32)>) -> Watch<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut keys: Vec<(String, i32)> =
            keys.into_iter().map(|(t, p)| (t.to_string(), p)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut watchers = self.watchers.lock();
        for (topic, partition) in &keys {
            watchers
                .entry(topic.clone())
                .or_default()
                .entry(*partition)
                .or_default()
                .insert(id, Arc::clone(&notify));
        }
        Watch {
            purgatory: self,
            id,
            keys,
            notify,
        }
    }

    /// The partition changed (records appended): wake the requests that watch it, and only those.
    pub fn check_and_complete(&self, topic: &str, partition: i32) {
        let watchers = self.watchers.lock();
        if let Some(w) = watchers.get(topic).and_then(|t| t.get(&partition)) {
            // notify_one stores a wake-up when the request is between checks, so it is not lost.
            w.values().for_each(|n| n.notify_one());
        }
    }

    /// How many parked requests watch the partition (Kafka's purgatory size, per key).
    pub fn watched(&self, topic: &str, partition: i32) -> usize {
        let watchers = self.watchers.lock();
        watchers
            .get(topic)
            .and_then(|t| t.get(&partition))
            .map_or(0, HashMap::len)
    }

    fn unwatch(&self, id: u64, keys: &[(String, i32)]) {
        let mut watchers = self.watchers.lock();
        for (topic, partition) in keys {
            let Some(by_partition) = watchers.get_mut(topic.as_str()) else {
                continue;
            };
            if let Some(w) = by_partition.get_mut(partition) {
                w.remove(&id);
                if w.is_empty() {
                    by_partition.remove(partition);
                }
            }
            if by_partition.is_empty() {
                watchers.remove(topic.as_str());
            }
        }
    }
}

/// A partition whose leader moved completes the requests parked on it (Kafka's DelayedFetch
/// completes when "this broker is no longer the leader" of a partition it waits on): they
/// answer now, with the error that sends the client to the new leader.
impl MetadataPublisher for Purgatory {
    fn name(&self) -> &'static str {
        "Purgatory"
    }

    fn on_metadata_update(&self, _: &Catalog, delta: &MetadataDelta, _: &MetadataImage) {
        let before = delta.image();
        let mut moved = 0;
        for (t, partitions) in delta.topics().changed_partitions() {
            for p in partitions {
                let leader = |topics: &crate::metadata::image::TopicImage| {
                    topics.partitions.get(p).map(|r| (r.leader, r.leader_epoch))
                };
                let old = before.topics.get(t.id).and_then(|x| leader(x));
                if old.is_some() && old != leader(t) {
                    self.check_and_complete(&t.name, *p);
                    moved += 1;
                }
            }
        }
        if moved > 0 {
            tracing::info!(partitions = moved, "partition leaders moved");
        }
    }
}

/// One parked request's registration; unregisters when dropped.
pub struct Watch<'p> {
    purgatory: &'p Purgatory,
    id: u64,
    keys: Vec<(String, i32)>,
    notify: Arc<Notify>,
}

impl Watch<'_> {
    /// Resolves once a watched partition changed since the last wake-up (or the registration).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.purgatory.unwatch(self.id, &self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn is_woken(w: &Watch<'_>) -> bool {
        let fut = pin!(w.woken());
        matches!(
            fut.poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(())
        )
    }

    // Kafka's checkAndComplete(TopicPartitionOperationKey) tries only the operations watching that
    // key: an append on partition A leaves a fetch parked on B alone.
    #[test]
    fn a_change_wakes_only_the_watchers_of_that_partition() {
        let p = Purgatory::new();
        let on_b = p.watch([("t", 1)]);
        let on_a = p.watch([("t", 0), ("u", 0)]);
        p.check_and_complete("t", 0);
        assert!(
            !is_woken(&on_b),
            "a waiter on t-1 was woken by an append on t-0"
        );
        assert!(is_woken(&on_a));
        p.check_and_complete("u", 1);
        p.check_and_complete("v", 0);
        assert!(!is_woken(&on_a) && !is_woken(&on_b));
        p.check_and_complete("t", 1);
        assert!(is_woken(&on_b));
    }

    // tryCompleteElseWatch: a change after registration but before the wait is not missed.
    #[test]
    fn a_change_before_the_wait_is_kept() {
        let p = Purgatory::new();
        let w = p.watch([("t", 0)]);
        p.check_and_complete("t", 0);
        p.check_and_complete("t", 0);
        assert!(is_woken(&w));
        assert!(
            !is_woken(&w),
            "one stored wake-up, consumed by the first wait"
        );
    }

    #[test]
    fn dropped_watches_leave_nothing_behind() {
        let p = Purgatory::new();
        let a = p.watch([("t", 0), ("t", 0), ("t", 1)]);
        let b = p.watch([("t", 0)]);
        assert_eq!((p.watched("t", 0), p.watched("t", 1)), (2, 1));
        drop(a);
        assert_eq!((p.watched("t", 0), p.watched("t", 1)), (1, 0));
        drop(b);
        assert!(p.watchers.lock().is_empty());
    }
}
