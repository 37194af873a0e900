//! The request quota's measure (`request_percentage`, Kafka's ClientRequestQuotaManager): the
//! time a request kept the broker busy, as Kafka's `requestThreadTimeNanos` is the time a
//! request handler thread spent on it.
//!
//! gregor's handlers are futures on a few worker threads, and a request that waits (a long-poll
//! Fetch in purgatory, a JoinGroup for the other members, an fsync off the workers) costs no
//! thread while it waits, as a parked request costs Kafka none. So the time measured is the time
//! spent inside the handler future's `poll`: `Timed` adds up each poll's duration. It is read
//! while the handler still runs (the response is built inside the last poll, and its throttle
//! time must be in it), so the poll in progress is counted up to the moment of reading.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use kafka_protocol::messages::ApiKey;

/// A request's busy time, and the request quota's throttle once it was counted.
#[derive(Default)]
pub struct RequestTime {
    pub thread: ThreadTime,
    /// Set by the first `RequestContext::request_throttle` (or to 0 for an exempt request).
    pub throttle: OnceLock<i32>,
}

/// The APIs Kafka answers with `sendResponseExemptThrottle`: what brokers and controllers ask
/// of each other (a follower's Fetch is exempted where it is told apart, in `fetch`).
pub fn exempt(api: ApiKey) -> bool {
    use ApiKey::*;
    matches!(
        api,
        WriteTxnMarkers
            | AlterPartition
            | BrokerRegistration
            | BrokerHeartbeat
            | AllocateProducerIds
            | ControllerRegistration
            | AssignReplicasToDirs
            | UnregisterBroker
            | Vote
            | BeginQuorumEpoch
            | EndQuorumEpoch
            | FetchSnapshot
            | Envelope
    )
}

/// Busy time of one request, shared between the future that measures it and the handler that
/// reads it.
pub struct ThreadTime {
    /// When measuring started: the origin of `poll_started`.
    origin: Instant,
    /// Nanoseconds spent in polls that have ended.
    spent: AtomicU64,
    /// When the poll in progress started (nanoseconds after `origin`, plus one), 0 between polls.
    poll_started: AtomicU64,
}

impl Default for ThreadTime {
    fn default() -> Self {
        ThreadTime {
            origin: Instant::now(),
            spent: AtomicU64::new(0),
            poll_started: AtomicU64::new(0),
        }
    }
}

impl ThreadTime {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The busy time so far, in nanoseconds, the poll in progress included.
    pub fn nanos(&self) -> u64 {
        let running = match self.poll_started.load(Relaxed) {
            0 => 0,
            started => self.now().saturating_sub(started - 1),
        };
        self.spent.load(Relaxed).saturating_add(running)
    }

    /// `future`, with the time spent polling it added to this.
    pub fn measure<F: Future>(&self, future: F) -> Timed<'_, F> {
        Timed { time: self, future }
    }
}

pin_project_lite::pin_project! {
    /// A future whose polls are timed into a `ThreadTime`.
    pub struct Timed<'a, F> {
        time: &'a ThreadTime,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let started = this.time.now();
        this.time.poll_started.store(started + 1, Relaxed);
        let out = this.future.poll(cx);
        let ended = this.time.now();
        this.time.poll_started.store(0, Relaxed);
        this.time
            .spent
            .fetch_add(ended.saturating_sub(started), Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiting_is_not_counted_and_work_is() {
        let time = ThreadTime::default();
        time.measure(async {
            // Busy for 20 ms inside a poll (the time is read while the poll runs).
            std::thread::sleep(Duration::from_millis(20));
            assert!(time.nanos() >= 20_000_000);
            // Parked for 200 ms: no poll runs, nothing is counted.
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .await;
        let n = time.nanos();
        assert!(n >= 20_000_000, "{n}");
        assert!(n < 200_000_000, "{n}: the wait was counted");
    }
}
