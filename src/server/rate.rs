//! The rate every quota is measured with: Kafka's `Rate` over a `SampledStat`
//! (org.apache.kafka.common.metrics.stats), configured as its quota sensors are
//! (`quota.window.num` samples of `quota.window.size.seconds` each), and the throttle time of
//! Kafka's `QuotaUtils.throttleTime`.
//!
//! The value is the sum of the samples still in the window over the time they cover, but never
//! less than `quota.window.num - 1` windows, so a first burst is measured over the whole window
//! and not over the instant it took. Client quotas (`client_quotas`: bytes, request time) and
//! connection creation rates (`quotas`, KIP-612: connections) both count on it.

use std::collections::VecDeque;

/// `quota.window.size.seconds` and `quota.window.num`: what a quota's rate is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    window_ms: i64,
    windows: usize,
}

impl RateWindow {
    pub fn new(window_seconds: u32, windows: u32) -> RateWindow {
        RateWindow {
            window_ms: i64::from(window_seconds.max(1)) * 1000,
            windows: windows.max(1) as usize,
        }
    }

    /// One sample's span (quota.window.size.seconds), ms: also the longest a connection is
    /// throttled (ConnectionQuotas.maxThrottleTimeMs) and a request quota's longest throttle.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// How many samples the rate keeps (quota.window.num).
    pub fn windows(&self) -> usize {
        self.windows
    }
}

/// Values recorded per sample window, oldest first.
#[derive(Debug, Default)]
pub struct Rate {
    /// (window start ms, sum of the values recorded in it)
    samples: VecDeque<(i64, f64)>,
}

impl Rate {
    /// Forgets the samples that left the window (SampledStat.purgeObsoleteSamples).
    fn purge(&mut self, now: i64, w: RateWindow) {
        let expire = w.window_ms * w.windows as i64;
        while (self.samples.front()).is_some_and(|(start, _)| now - start >= expire) {
            self.samples.pop_front();
        }
    }

    /// Adds `value` (negative to take back what was recorded) to the current sample, starting a
    /// new one when the current sample's window is over.
    pub fn record(&mut self, value: f64, now: i64, w: RateWindow) {
        self.purge(now, w);
        match self.samples.back_mut() {
            Some((start, total)) if now < *start + w.window_ms => *total += value,
            _ => {
                self.samples.push_back((now, value));
                if self.samples.len() > w.windows {
                    self.samples.pop_front();
                }
            }
        }
    }

    /// Whether nothing recorded is left in the window (the rate may be forgotten: a new one
    /// measures the same).
    pub fn is_idle(&mut self, now: i64, w: RateWindow) -> bool {
        self.purge(now, w);
        self.samples.is_empty()
    }

    /// The time the rate is measured over (Rate.windowSize).
    fn window_size(&self, now: i64, w: RateWindow) -> i64 {
        let oldest = self.samples.front().map_or(now, |(start, _)| *start);
        let mut elapsed = now - oldest;
        let full = elapsed / w.window_ms;
        let min_full = w.windows as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * w.window_ms;
        }
        elapsed.max(1)
    }

    /// The rate now, per second, and the window size it was measured over.
    pub fn measure(&mut self, now: i64, w: RateWindow) -> (f64, i64) {
        self.purge(now, w);
        let size = self.window_size(now, w);
        let total: f64 = self.samples.iter().map(|(_, v)| v).sum();
        (total / (size as f64 / 1000.0), size)
    }

    /// Records `value` and answers how long its recorder is throttled, in ms: 0 while the rate
    /// is within `bound`, else the time that brings it back to the bound,
    /// `round((rate - bound) / bound * window size)` (Sensor.record's quota check and
    /// QuotaUtils.throttleTime). A bound of 0 throttles without end (callers cap it).
    pub fn record_and_throttle(&mut self, value: f64, bound: f64, now: i64, w: RateWindow) -> i64 {
        self.record(value, now, w);
        let (rate, window) = self.measure(now, w);
        if rate <= bound {
            return 0;
        }
        // An infinite quotient (a bound of 0) saturates.
        ((rate - bound) / bound * window as f64).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_measured_over_at_least_all_but_one_window() {
        let w = RateWindow::new(1, 11);
        let mut r = Rate::default();
        // 100 at once is 10 per second: the first instant counts as ten windows.
        r.record(100.0, 0, w);
        assert_eq!(r.measure(0, w), (10.0, 10_000));
        // Once the oldest sample is more than ten windows old, the rate is over its age.
        assert_eq!(r.measure(10_500, w).1, 10_500);
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_bound() {
        let w = RateWindow::new(1, 11);
        let mut r = Rate::default();
        // 10 per second over 10 s fits a bound of 1 per second exactly ...
        for _ in 0..10 {
            assert_eq!(r.record_and_throttle(1.0, 1.0, 0, w), 0);
        }
        // ... an 11th is 1.1 per second: a tenth over, a tenth of the 10 s window.
        assert_eq!(r.record_and_throttle(1.0, 1.0, 0, w), 1_000);
        // Taken back, the rate is within the bound again.
        r.record(-1.0, 0, w);
        assert_eq!(r.measure(0, w).0, 1.0);
        // Kafka rounds the throttle time: 2 over a bound of 3 over 1 s is 666.67 ms.
        let short = RateWindow::new(1, 2);
        let mut r = Rate::default();
        assert_eq!(r.record_and_throttle(5.0, 3.0, 0, short), 667);
        // A bound of 0 throttles without end.
        assert_eq!(
            Rate::default().record_and_throttle(1.0, 0.0, 0, w),
            i64::MAX
        );
    }

    #[test]
    fn old_samples_leave_the_window() {
        let w = RateWindow::new(1, 11);
        let mut r = Rate::default();
        r.record(1e6, 0, w);
        assert!(!r.is_idle(10_999, w));
        assert!(r.is_idle(11_000, w), "11 windows later it is forgotten");
        assert_eq!(r.measure(11_000, w).0, 0.0);
    }
}
