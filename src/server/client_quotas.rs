//! Client quotas (Kafka's ClientQuotaManager for the produce and fetch byte rates, and its
//! ControllerMutationQuotaManager): how many bytes a client may produce or fetch per second, how
//! many partitions it may create or delete per second, and for how long a client over its quota
//! is throttled.
//!
//! Quotas are set with AlterClientQuotas (`kafka-configs --entity-type users/clients`) and live
//! in the metadata image (`client_quotas`, from ClientQuotaRecords). A request's quota is the
//! most specific one set for its principal's user name and client id, in Kafka's order
//! (DefaultQuotaCallback): user + client id, user + default client, user alone, default user +
//! client id, default user + default client, default user, client id alone, default client. The
//! entity that matched decides who shares a rate: a quota on a user alone is shared by all that
//! user's clients, one on `clients/<default>` is had by each client id separately.
//!
//! A rate is measured as Kafka's Rate over a SampledStat (`rate`): `quota.window.num` samples of
//! `quota.window.size.seconds` each; the bytes in the samples still in the window, over the time
//! they cover but never less than `quota.window.num - 1` windows (so a client's first second
//! cannot already be over). A request that takes the rate over the quota is still served; the
//! client is throttled for `(rate - quota) / quota * window` milliseconds: the response says so
//! in `throttle_time_ms` and the connection reads nothing more from the client for that long
//! (KIP-219). A throttled fetch is answered without its data, as Kafka's
//! `getThrottledResponse` answers (its bytes are not counted).

use std::collections::HashMap;

use parking_lot::Mutex;

use super::rate::{Rate, RateWindow};
use crate::metadata::image::{MetadataImage, QuotaEntity};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// An ip entity's quota (KIP-612), enforced when connections are accepted (`quotas`).
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// Which quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    Produce,
    Fetch,
    /// Partitions created or deleted per second (KIP-599; see `ClientQuotaManager::mutate`).
    ControllerMutation,
    /// The share of one thread's time a client's requests keep the broker busy, in percent
    /// (ClientRequestQuotaManager; measured by `protocol::request_time`).
    Request,
}

impl QuotaType {
    fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => PRODUCER_BYTE_RATE,
            QuotaType::Fetch => CONSUMER_BYTE_RATE,
            QuotaType::ControllerMutation => CONTROLLER_MUTATION_RATE,
            QuotaType::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// Kafka's TokenBucket, the controller mutation quota's measure: it holds up to a burst of
/// `(quota.window.num - 1) * quota.window.size.seconds * quota` permits, starts full, refills at
/// the quota per second, and goes below zero when a mutation takes more than it holds.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    updated_ms: i64,
}

impl TokenBucket {
    fn new(burst: f64, now: i64) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            updated_ms: now,
        }
    }

    fn refill(&mut self, quota: f64, burst: f64, now: i64) {
        let elapsed = (now - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = burst.min(self.tokens + quota * elapsed);
        self.updated_ms = now;
    }
}

/// What a controller mutation may do under its client's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Done; the client is throttled this long (a permissive quota's overdraft), or 0.
    Allowed { throttle_ms: i32 },
    /// Refused with THROTTLING_QUOTA_EXCEEDED: the client's bucket is empty until then.
    Refused { throttle_ms: i32 },
}

/// Who shares one rate: Kafka's quota metric tags (user, client id), either empty when the
/// matching quota does not name it.
type SensorKey = (QuotaType, String, String);

/// One client's rate (Kafka's quota sensor).
#[derive(Debug, Default)]
struct Sensor {
    rate: Rate,
    /// The last throttle time given (Kafka's throttle-time metric).
    last_throttle_ms: i32,
}

/// A rate as the metrics show it: (quota type, user, client id, bytes per second, last throttle
/// time in ms).
pub type RateSnapshot = (QuotaType, String, String, f64, i32);

/// Who a request is counted for: which rate, and the principal's user name and client id.
#[derive(Debug, Clone, Copy)]
pub struct QuotaClient<'a> {
    pub quota: QuotaType,
    pub user: &'a str,
    pub client_id: &'a str,
}

impl QuotaClient<'_> {
    /// The quota that applies, and the sensor its bytes go to.
    fn find(&self, image: &MetadataImage) -> Option<(f64, SensorKey)> {
        let (bound, u, c) = find_quota(image, self.quota, self.user, self.client_id)?;
        Some((bound, (self.quota, u, c)))
    }
}

pub struct ClientQuotaManager {
    window: RateWindow,
    sensors: Mutex<HashMap<SensorKey, Sensor>>,
    buckets: Mutex<HashMap<SensorKey, TokenBucket>>,
}

/// How an entity's name for one type matches a request: the request's own name, the type's
/// default, or the entity does not name the type.
#[derive(Clone, Copy, PartialEq)]
enum Names {
    Own,
    Default,
    Absent,
}

/// Where an entity stands in Kafka's order of precedence for (user, client id) (lower wins), or
/// `None` when it does not apply to them.
fn precedence(entity: &QuotaEntity, user: &str, client_id: &str) -> Option<u8> {
    let names = |t: &str, own: &str| match entity.get(t) {
        None => Some(Names::Absent),
        Some(None) => Some(Names::Default),
        Some(Some(n)) if n == own => Some(Names::Own),
        Some(Some(_)) => None,
    };
    if entity.keys().any(|t| t != "user" && t != "client-id") {
        return None;
    }
    use Names::*;
    Some(
        match (names("user", user)?, names("client-id", client_id)?) {
            (Own, Own) => 0,
            (Own, Default) => 1,
            (Own, Absent) => 2,
            (Default, Own) => 3,
            (Default, Default) => 4,
            (Default, Absent) => 5,
            (Absent, Own) => 6,
            (Absent, Default) => 7,
            (Absent, Absent) => return None,
        },
    )
}

/// The quota that applies to (user, client id), and whose rate it is (the sensor's tags: the
/// user when the entity names users, the client id when it names clients). One pass over the
/// quotas set, without allocating unless one applies.
pub fn find_quota(
    image: &MetadataImage,
    quota: QuotaType,
    user: &str,
    client_id: &str,
) -> Option<(f64, String, String)> {
    let ((entity, _), bound) = (image.client_quotas.iter())
        .filter(|((_, key), _)| key == quota.key())
        .filter_map(|(k, v)| Some((precedence(&k.0, user, client_id)?, (k, v))))
        .min_by_key(|(rank, _)| *rank)?
        .1;
    let tag = |t: &str, v: &str| match entity.contains_key(t) {
        true => v.to_string(),
        false => String::new(),
    };
    Some((*bound, tag("user", user), tag("client-id", client_id)))
}

impl ClientQuotaManager {
    /// `quota.window.size.seconds` and `quota.window.num`.
    pub fn new(window_seconds: u32, windows: u32) -> ClientQuotaManager {
        ClientQuotaManager {
            window: RateWindow::new(window_seconds, windows),
            sensors: Mutex::default(),
            buckets: Mutex::default(),
        }
    }

    /// Records `value` (bytes, or for the request quota percent-seconds of busy time) for the
    /// client and returns how long it is throttled (0 when within its quota or without one).
    /// Nothing is kept for a client without a quota.
    pub fn record(
        &self,
        image: &MetadataImage,
        client: QuotaClient<'_>,
        value: f64,
        now: i64,
    ) -> i32 {
        let Some((bound, key)) = client.find(image) else {
            return 0;
        };
        let w = self.window;
        let mut sensors = self.sensors.lock();
        if sensors.len() > 10_000 {
            // Forget clients idle for a whole window (Kafka expires sensors after an hour).
            sensors.retain(|_, s| !s.rate.is_idle(now, w));
        }
        let sensor = sensors.entry(key).or_default();
        let mut throttle = sensor.rate.record_and_throttle(value, bound, now, w);
        if client.quota == QuotaType::Request {
            // A request quota throttles for one window at most (its maxThrottleTimeMs).
            throttle = throttle.min(w.window_ms());
        }
        let throttle = i32::try_from(throttle).unwrap_or(i32::MAX);
        sensor.last_throttle_ms = throttle;
        throttle
    }

    /// Every client's rate now (`kafka_server_{produce,fetch}_byte_rate`,
    /// `kafka_server_request_request_time` and their `_throttle_time`).
    pub fn snapshot(&self, now: i64) -> Vec<RateSnapshot> {
        let w = self.window;
        let mut sensors = self.sensors.lock();
        let mut out: Vec<RateSnapshot> = (sensors.iter_mut())
            .map(|((q, u, c), s)| {
                (
                    *q,
                    u.clone(),
                    c.clone(),
                    s.rate.measure(now, w).0,
                    s.last_throttle_ms,
                )
            })
            .collect();
        out.sort_by(|a, b| (a.1.as_str(), a.2.as_str()).cmp(&(b.1.as_str(), b.2.as_str())));
        out
    }

    /// The most a client may take in one quota window (getMaxValueInQuotaWindow): a consumer's
    /// fetch is bounded by it, so one answer never holds more than the quota lets through.
    pub fn max_in_window(&self, image: &MetadataImage, client: QuotaClient<'_>) -> Option<usize> {
        let (bound, _) = client.find(image)?;
        let window_s = self.window.window_ms() as f64 / 1000.0;
        let windows = (self.window.windows() - 1) as f64;
        Some((bound * windows * window_s).min(usize::MAX as f64) as usize)
    }

    /// A controller mutation of `permits` partitions (created, added or deleted) by the client,
    /// as Kafka's ControllerMutationQuotaManager decides it. A strict quota (the request versions
    /// that know THROTTLING_QUOTA_EXCEEDED) refuses a mutation while the bucket is below zero and
    /// otherwise takes the permits, even into overdraft, without throttling; a permissive one
    /// (older versions) always takes them and throttles for an overdraft. A throttle is the time
    /// the bucket needs to refill to zero.
    pub fn mutate(
        &self,
        image: &MetadataImage,
        client: QuotaClient<'_>,
        permits: usize,
        strict: bool,
        now: i64,
    ) -> Mutation {
        let Some((bound, key)) = client.find(image) else {
            return Mutation::Allowed { throttle_ms: 0 };
        };
        let w = self.window;
        let burst = (w.windows() - 1) as f64 * (w.window_ms() as f64 / 1000.0) * bound;
        let mut buckets = self.buckets.lock();
        if buckets.len() > 10_000 {
            // Forget full buckets: a new one starts full too.
            buckets.retain(|_, b| {
                b.refill(bound, burst, now);
                b.tokens < burst
            });
        }
        let bucket = (buckets.entry(key)).or_insert_with(|| TokenBucket::new(burst, now));
        bucket.refill(bound, burst, now);
        let throttle = |tokens: f64| (-tokens / bound * 1000.0).round().min(i32::MAX as f64) as i32;
        if strict && bucket.tokens < 0.0 {
            return Mutation::Refused {
                throttle_ms: throttle(bucket.tokens),
            };
        }
        bucket.tokens = burst.min(bucket.tokens - permits as f64);
        match (strict, bucket.tokens < 0.0) {
            (false, true) => Mutation::Allowed {
                throttle_ms: throttle(bucket.tokens),
            },
            _ => Mutation::Allowed { throttle_ms: 0 },
        }
    }

    /// Takes back bytes recorded for a request that was not served after all (a throttled fetch
    /// sends no data).
    pub fn unrecord(&self, image: &MetadataImage, client: QuotaClient<'_>, bytes: usize, now: i64) {
        let Some((_, key)) = client.find(image) else {
            return;
        };
        if let Some(s) = self.sensors.lock().get_mut(&key) {
            s.rate.record(-(bytes as f64), now, self.window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// (entity as (type, name) pairs, key, value)
    type Quota<'a> = (&'a [(&'a str, Option<&'a str>)], &'a str, f64);

    fn qc<'a>(quota: QuotaType, user: &'a str, client_id: &'a str) -> QuotaClient<'a> {
        QuotaClient {
            quota,
            user,
            client_id,
        }
    }

    fn image(quotas: &[Quota<'_>]) -> MetadataImage {
        let mut image = MetadataImage::empty();
        let mut map = std::collections::BTreeMap::new();
        for (entity, key, value) in quotas {
            let e: QuotaEntity = entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect();
            map.insert((e, key.to_string()), *value);
        }
        image.client_quotas = Arc::new(map);
        image
    }

    #[test]
    fn the_most_specific_quota_wins_and_decides_who_shares_it() {
        let img = image(&[
            (&[("user", Some("alice"))], PRODUCER_BYTE_RATE, 100.0),
            (
                &[("user", Some("alice")), ("client-id", None)],
                PRODUCER_BYTE_RATE,
                200.0,
            ),
            (&[("client-id", None)], PRODUCER_BYTE_RATE, 300.0),
            (&[("client-id", Some("c1"))], CONSUMER_BYTE_RATE, 400.0),
        ]);
        let q = |u, c| find_quota(&img, QuotaType::Produce, u, c);
        assert_eq!(q("alice", "c1"), Some((200.0, "alice".into(), "c1".into())));
        assert_eq!(q("bob", "c1"), Some((300.0, String::new(), "c1".into())));
        let f = find_quota(&img, QuotaType::Fetch, "bob", "c1");
        assert_eq!(f, Some((400.0, String::new(), "c1".into())));
        assert_eq!(find_quota(&img, QuotaType::Fetch, "bob", "c2"), None);
        let only_user = image(&[(&[("user", Some("alice"))], PRODUCER_BYTE_RATE, 100.0)]);
        let a = find_quota(&only_user, QuotaType::Produce, "alice", "any");
        assert_eq!(a, Some((100.0, "alice".into(), String::new())));
    }

    #[test]
    fn over_the_rate_is_throttled_in_proportion() {
        let img = image(&[(&[("client-id", Some("c"))], PRODUCER_BYTE_RATE, 1000.0)]);
        let m = ClientQuotaManager::new(1, 11);
        // 10 s of 1000 B/s fits: the rate is measured over at least 10 windows.
        assert_eq!(
            m.record(&img, qc(QuotaType::Produce, "u", "c"), 10_000.0, 0),
            0
        );
        // 10 kB more in the same instant: 20 kB over 10 s is 2000 B/s, twice the quota, so the
        // client waits one more window size: (2000 - 1000) / 1000 * 10 s.
        assert_eq!(
            m.record(&img, qc(QuotaType::Produce, "u", "c"), 10_000.0, 0),
            10_000
        );
        // Another client id has no quota.
        assert_eq!(m.record(&img, qc(QuotaType::Produce, "u", "d"), 1e9, 0), 0);
        // Unrecorded bytes no longer count.
        m.unrecord(&img, qc(QuotaType::Produce, "u", "c"), 10_000, 0);
        assert_eq!(m.record(&img, qc(QuotaType::Produce, "u", "c"), 0.0, 0), 0);
    }

    #[test]
    fn mutations_draw_on_a_token_bucket() {
        use Mutation::*;
        // 2 partitions per second; 11 windows of 1 s: a burst of 20.
        let img = image(&[(&[("user", Some("u"))], CONTROLLER_MUTATION_RATE, 2.0)]);
        let m = ClientQuotaManager::new(1, 11);
        let client = qc(QuotaType::ControllerMutation, "u", "c");
        let other = qc(QuotaType::ControllerMutation, "v", "c");
        let allowed = Allowed { throttle_ms: 0 };
        // The burst, then one more mutation that overdraws it: strict quotas let it through.
        assert_eq!(m.mutate(&img, client, 15, true, 0), allowed);
        assert_eq!(m.mutate(&img, client, 9, true, 0), allowed);
        // 4 permits short at 2 per second: refused for 2 s, and less as time passes.
        assert_eq!(
            m.mutate(&img, client, 1, true, 0),
            Refused { throttle_ms: 2000 }
        );
        assert_eq!(
            m.mutate(&img, client, 1, true, 500),
            Refused { throttle_ms: 1500 }
        );
        // Back to zero after 2 s: allowed again.
        assert_eq!(m.mutate(&img, client, 1, true, 2000), allowed);
        // A permissive quota never refuses; it throttles for the overdraft.
        assert_eq!(
            m.mutate(&img, client, 3, false, 2000),
            Allowed { throttle_ms: 2000 }
        );
        // Without a quota, or for another user, nothing is counted.
        assert_eq!(m.mutate(&img, other, 1000, true, 2000), allowed);
        let none = ClientQuotaManager::new(1, 11);
        assert_eq!(none.mutate(&image(&[]), client, 1000, true, 0), allowed);
    }

    #[test]
    fn a_request_quota_throttles_one_window_at_most() {
        // 10 % of a thread: 1 percent-second per 10 s window is the quota's worth.
        let img = image(&[(&[("client-id", Some("c"))], REQUEST_PERCENTAGE, 10.0)]);
        let m = ClientQuotaManager::new(1, 11);
        let client = qc(QuotaType::Request, "u", "c");
        assert_eq!(m.record(&img, client, 100.0, 0), 0);
        // 200 percent-seconds over 10 s is 20 %: twice the quota, 10 s of throttle by the
        // byte-rate formula, bounded to one window (1 s).
        assert_eq!(m.record(&img, client, 100.0, 0), 1000);
        // The byte rates are not bounded so.
        let produce = image(&[(&[("client-id", Some("c"))], PRODUCER_BYTE_RATE, 10.0)]);
        let p = qc(QuotaType::Produce, "u", "c");
        assert_eq!(m.record(&produce, p, 200.0, 0), 10_000);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let img = image(&[(&[("client-id", None)], CONSUMER_BYTE_RATE, 1000.0)]);
        let m = ClientQuotaManager::new(1, 11);
        assert!(m.record(&img, qc(QuotaType::Fetch, "u", "c"), 50_000.0, 0) > 0);
        // 11 windows later the burst is forgotten.
        assert_eq!(
            m.record(&img, qc(QuotaType::Fetch, "u", "c"), 100.0, 11_000),
            0
        );
    }
}
