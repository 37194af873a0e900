//! The broker's clock, after Kafka's `Time` (`SystemTime` in production, `MockTime` in its
//! tests): request handlers, the group and transaction coordinators and their timers read `now`
//! from it, never from the system directly, so a test can move time instead of waiting for it
//! (a session timeout, a transaction timeout, offset retention), and a runtime with paused time
//! (the fuzz targets) drives it.
//!
//! The log layer keeps the wall clock: segment file times, retention by file age and the
//! flush scheduler compare against what the file system records.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Clock {
    source: Source,
    /// How far `advance` has moved the clock ahead of its source.
    offset_ms: AtomicI64,
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
}

impl Clock {
    pub fn system() -> Clock {
        Clock {
            source: Source::System,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// A clock that starts at the system time and then moves with tokio's clock (call it inside
    /// the runtime it should follow).
    pub fn tokio() -> Clock {
        Clock {
            source: Source::Tokio {
                base_ms: system_ms(),
                base: tokio::time::Instant::now(),
            },
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Milliseconds since the epoch, as this broker sees them.
    pub fn now_ms(&self) -> i64 {
        let source = match &self.source {
            Source::System => system_ms(),
            Source::Tokio { base_ms, base } => {
                base_ms + i64::try_from(base.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
            }
        };
        source.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `ms` (negative values are ignored: the coordinators' deadlines
    /// assume time never runs backwards). Timers see the new time at their next tick.
    pub fn advance(&self, ms: i64) {
        if ms > 0 {
            self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        }
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
