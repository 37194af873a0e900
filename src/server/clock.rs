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

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub struct Clock {
    source: Source,
    /// How far `advance` has moved the clock ahead of its source.
    offset_ms: AtomicI64,
    /// Counts advances; timers wait on it beside their ticks.
    advances: watch::Sender<u64>,
}

enum Source {
    /// Milliseconds since the epoch.
    System,
    /// Follows tokio's clock from `base` (which was `base_ms`): with a paused runtime, time
    /// passes only when the runtime advances it.
    Tokio {
        base_ms: i64,
        base: tokio::time::Instant,
    },
    /// Stands at `base_ms` (the wall clock when made) until advanced.
    Manual { base_ms: i64 },
}

impl Clock {
    fn with(source: Source) -> Clock {
        Clock {
            source,
            offset_ms: AtomicI64::new(0),
            advances: watch::Sender::new(0),
        }
    }

    pub fn system() -> Clock {
        Self::with(Source::System)
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

    /// Milliseconds since the epoch, as this broker sees them.
    pub fn now_ms(&self) -> i64 {
        let source = match &self.source {
            Source::System => system_ms(),
            Source::Tokio { base_ms, base } => {
                base_ms + i64::try_from(base.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
            }
            Source::Manual { base_ms } => *base_ms,
        };
        source.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `ms` (negative values are ignored: the coordinators' deadlines
    /// assume time never runs backwards) and wakes the timers waiting on `subscribe`.
    pub fn advance(&self, ms: i64) {
        if ms > 0 {
            self.offset_ms.fetch_add(ms, Ordering::Relaxed);
            self.advances.send_modify(|n| *n += 1);
        }
    }

    /// Changes each time the clock is advanced: a timer selects on it beside its tick.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.advances.subscribe()
    }
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
