//! The broker's clock, after Kafka's `Time` (`SystemTime` in production, `MockTime` in its
//! tests): request handlers, the group and transaction coordinators and their timers read `now`
//! from it, never from the system directly, so a test can move time instead of waiting for it
//! (a session timeout, a transaction timeout, offset retention), and a runtime with paused time
//! (the fuzz targets) drives it.
//!
//! `--clock manual` (the test control plane, `POST /v1/clock/advance`) starts the clock at the
//! wall clock and moves it only when advanced. An advance wakes the broker's timers
//! (`subscribe`), so what became due happens at once, not at their next tick.
//!
//! The log layer keeps the wall clock for what the file system records (segment file times, the
//! flush scheduler, recovery); retention and compaction lag compare record timestamps against the
//! `now` the housekeeping and cleaner timers take from this clock, so they follow it.
//!
//! Two readings, as Kafka's `Time` has two: `now_ms` is the wall clock (`time.milliseconds()`,
//! `System.currentTimeMillis`), which an operator or NTP may step either way; `monotonic_ms` only
//! moves forward (`time.nanoseconds()` / `hiResClockMs()`, `System.nanoTime`, CLOCK_MONOTONIC
//! here) from an arbitrary origin, for the durations Kafka measures on it: the controller's
//! broker sessions (BrokerHeartbeatTracker's contact times) and the intervals of the periodic
//! jobs (Kafka's scheduler and timer wheel). What Kafka measures on the wall clock stays on
//! `now_ms`: timestamps that are written or compared with written ones, the ISR lag
//! (Replica.lastCaughtUpTimeMs), transaction timeouts and producer-id expiry. An advance moves
//! both readings; `step_wall` moves the wall reading alone, as a clock step does.
//!
//! The group coordinators' deadlines (classic session, rebalance, join and sync timeouts, the
//! initial rebalance delay; KIP-848, share and streams sessions and streams revocation timeouts)
//! and share-partition acquisition locks are on `monotonic_ms`, as Kafka schedules them on its
//! timer wheel (SystemTimer, `hiResClockMs`); what those coordinators write (commit timestamps,
//! group and share-state record timestamps, the batches' timestamps) keeps `now_ms`. An operation
//! that does both takes one [`Now`], both readings taken together.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub struct Clock {
    source: Source,
    /// How far `advance` has moved the clock ahead of its source.
    offset_ms: AtomicI64,
    /// How far `step_wall` has moved the wall reading beside that (either way).
    wall_step_ms: AtomicI64,
    /// Counts advances; timers wait on it beside their ticks.
    advances: watch::Sender<u64>,
}

enum Source {
    /// Milliseconds since the epoch; the monotonic reading counts from `origin`.
    System { origin: std::time::Instant },
    /// Follows tokio's clock from `base` (which was `base_ms`): with a paused runtime, time
    /// passes only when the runtime advances it.
    Tokio {
        base_ms: i64,
        base: tokio::time::Instant,
    },
    /// Stands at `base_ms` (the wall clock when made; monotonic 0) until advanced.
    Manual { base_ms: i64 },
}

impl Clock {
    fn with(source: Source) -> Clock {
        Clock {
            source,
            offset_ms: AtomicI64::new(0),
            wall_step_ms: AtomicI64::new(0),
            advances: watch::Sender::new(0),
        }
    }

    pub fn system() -> Clock {
        Self::with(Source::System {
            origin: std::time::Instant::now(),
        })
    }

    /// A clock that starts at the wall clock and moves only when advanced (`--clock manual`).
    pub fn manual() -> Clock {
        Self::with(Source::Manual {
            base_ms: system_ms(),
        })
    }

    pub fn is_manual(&self) -> bool {
        matches!(self.source, Source::Manual { .. })
    }

    /// A clock that starts at the system time and then moves with tokio's clock (call it inside
    /// the runtime it should follow).
    pub fn tokio() -> Clock {
        Self::with(Source::Tokio {
            base_ms: system_ms(),
            base: tokio::time::Instant::now(),
        })
    }

    /// Milliseconds since the epoch, as this broker sees them (the wall clock: it may step).
    pub fn now_ms(&self) -> i64 {
        let source = match &self.source {
            Source::System { .. } => system_ms(),
            Source::Tokio { base_ms, base } => base_ms + millis(base.elapsed()),
            Source::Manual { base_ms } => *base_ms,
        };
        let moved = (self.offset_ms.load(Ordering::Relaxed))
            .saturating_add(self.wall_step_ms.load(Ordering::Relaxed));
        source.saturating_add(moved)
    }

    /// Milliseconds from an arbitrary origin on a clock that never runs backwards and does not
    /// follow steps of the wall clock: what durations are measured on (see the module comment).
    pub fn monotonic_ms(&self) -> i64 {
        let source = match &self.source {
            Source::System { origin } => millis(origin.elapsed()),
            Source::Tokio { base, .. } => millis(base.elapsed()),
            Source::Manual { .. } => 0,
        };
        source.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Both readings at once, for an operation that sets deadlines and writes timestamps.
    pub fn now(&self) -> Now {
        Now {
            wall_ms: self.now_ms(),
            monotonic_ms: self.monotonic_ms(),
        }
    }

    /// Moves the clock forward by `ms` (negative values are ignored: the coordinators' deadlines
    /// assume time never runs backwards), both readings, and wakes the timers waiting on
    /// `subscribe`.
    pub fn advance(&self, ms: i64) {
        if ms > 0 {
            self.offset_ms.fetch_add(ms, Ordering::Relaxed);
            self.advances.send_modify(|n| *n += 1);
        }
    }

    /// Steps the wall reading alone by `ms`, forward or back, as an operator or NTP steps a
    /// host's clock (tests of what must not follow such a step); the monotonic reading stays.
    pub fn step_wall(&self, ms: i64) {
        self.wall_step_ms.fetch_add(ms, Ordering::Relaxed);
        self.advances.send_modify(|n| *n += 1);
    }

    /// Changes each time the clock is advanced: a timer selects on it beside its tick.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.advances.subscribe()
    }

    /// Waits until `d` has passed on the monotonic reading, as Kafka's throttles (client quotas,
    /// connection creation rates) wait on its `Time`, the clock their rates are measured on:
    /// see `sleep_until`.
    pub async fn sleep(&self, d: std::time::Duration) {
        self.sleep_until(self.monotonic_ms().saturating_add(millis(d)))
            .await
    }

    /// Waits until the monotonic reading reaches `monotonic_ms`: as time passes or the clock is
    /// advanced, whichever gets there first (a manual clock only as it is advanced).
    pub async fn sleep_until(&self, monotonic_ms: i64) {
        let mut advanced = self.subscribe();
        loop {
            let left = monotonic_ms.saturating_sub(self.monotonic_ms());
            if left <= 0 {
                return;
            }
            let passing = async {
                if self.is_manual() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(left.unsigned_abs())).await
                }
            };
            tokio::select! {
                _ = passing => {}
                changed = advanced.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// The two readings of a [`Clock`] at one instant: `wall_ms` for what is written or compared
/// with written timestamps, `monotonic_ms` for deadlines (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall_ms: i64,
    pub monotonic_ms: i64,
}

impl Now {
    /// Both readings at `ms` (tests, where the two clocks start together).
    pub fn at(ms: i64) -> Now {
        Now {
            wall_ms: ms,
            monotonic_ms: ms,
        }
    }

    /// Both readings `ms` later (what an advance of the clock by `ms` would read).
    pub fn later(self, ms: i64) -> Now {
        Now {
            wall_ms: self.wall_ms.saturating_add(ms),
            monotonic_ms: self.monotonic_ms.saturating_add(ms),
        }
    }

    /// The wall reading alone moved by `ms`, either way (what a step of the host's clock reads).
    pub fn wall_stepped(self, ms: i64) -> Now {
        Now {
            wall_ms: self.wall_ms.saturating_add(ms),
            ..self
        }
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_the_clock_forward_only() {
        let c = Clock::system();
        let before = c.now_ms();
        c.advance(60_000);
        let after = c.now_ms();
        assert!(after >= before + 60_000, "{before} -> {after}");
        c.advance(-120_000);
        assert!(c.now_ms() >= after);
    }

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_advanced_and_wakes_subscribers() {
        let c = Clock::manual();
        let start = c.now_ms();
        assert!(
            (start - system_ms()).abs() < 60_000,
            "starts at the wall clock"
        );
        let mut woken = c.subscribe();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now_ms(), start, "real time does not move it");
        c.advance(46_000);
        assert_eq!(c.now_ms(), start + 46_000);
        woken.changed().await.unwrap();
        assert!(c.is_manual() && !Clock::system().is_manual());
    }

    /// A wall step moves `now_ms` alone, either way; an advance moves both readings.
    #[test]
    fn a_wall_step_leaves_the_monotonic_reading() {
        let c = Clock::manual();
        let (wall, mono) = (c.now_ms(), c.monotonic_ms());
        c.step_wall(60_000);
        assert_eq!((c.now_ms(), c.monotonic_ms()), (wall + 60_000, mono));
        c.step_wall(-90_000);
        assert_eq!((c.now_ms(), c.monotonic_ms()), (wall - 30_000, mono));
        c.advance(1_000);
        assert_eq!(
            (c.now_ms(), c.monotonic_ms()),
            (wall - 29_000, mono + 1_000)
        );
        let s = Clock::system();
        let m = s.monotonic_ms();
        s.step_wall(-3_600_000);
        assert!(s.monotonic_ms() >= m && s.now_ms() < system_ms() - 3_000_000);
    }

    /// A throttle on a manual clock lasts until the clock is advanced past it, not real time.
    #[tokio::test]
    async fn a_sleep_on_a_manual_clock_ends_when_advanced_past_it() {
        let c = std::sync::Arc::new(Clock::manual());
        let sleeper = tokio::spawn({
            let c = std::sync::Arc::clone(&c);
            async move { c.sleep(std::time::Duration::from_millis(1_000)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c.advance(999);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "999 of 1000 ms advanced");
        c.advance(1);
        tokio::time::timeout(std::time::Duration::from_secs(10), sleeper)
            .await
            .expect("the advance ends the sleep")
            .expect("no panic");
        // On the system clock a sleep ends as real time passes, or at once when advanced.
        let s = Clock::system();
        let started = std::time::Instant::now();
        s.sleep(std::time::Duration::from_millis(5)).await;
        assert!(started.elapsed() >= std::time::Duration::from_millis(4));
    }

    #[tokio::test]
    async fn a_tokio_clock_follows_the_runtime_and_advances() {
        let c = Clock::tokio();
        let start = c.now_ms();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        c.advance(1_000);
        // At least what the runtime slept plus the advance (the fuzz target pauses the runtime,
        // so there time moves only as the runtime advances it).
        assert!(c.now_ms() - start >= 1_050);
    }
}
