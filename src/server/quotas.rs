//! Connection limits, after Kafka's ConnectionQuotas (SocketServer.scala): `max.connections` for
//! the broker, `max.connections.per.ip` (with per-address overrides), and the connection creation
//! rates of KIP-612.
//!
//! As in Kafka, a connection over its address's limit is closed as soon as it is accepted, while
//! the broker-wide limit stops accepting (new connections wait in the kernel's backlog) until a
//! connection closes. A `ConnectionPermit` is held for the life of each connection and gives its
//! slot back when dropped, however the connection ends.
//!
//! The connection creation rates are measured as the client quotas' rates are (`rate`:
//! `quota.window.num` windows of `quota.window.size.seconds`) and do two different things, as in
//! Kafka:
//! - `max.connection.creation.rate` (broker-wide) and
//!   `listener.name.<l>.max.connection.creation.rate` (one listener's) throttle the acceptor: a
//!   connection that takes a rate over its limit waits for the time that brings the rate back
//!   before it is taken on, and the connections behind it wait in the backlog
//!   (waitForConnectionSlot). The inter-broker listener is exempt from the broker-wide rate while
//!   the broker has other listeners (protectedListener), not from its own.
//! - an address's `connection_creation_rate` quota (`kafka-configs --entity-type ips`, kept in
//!   the metadata image: the quota of the entity naming the address, else the default ip
//!   entity's) throttles that address: a connection over it is accepted, never read, and closed
//!   once its throttle time has passed (recordIpConnectionMaybeThrottle, and the acceptor's
//!   DelayedCloseSocket); it is taken back from every rate, as it is never served. Its client
//!   sees the connection closed and reconnects after its backoff. Loopback is not exempt, as in
//!   Kafka.
//!
//! Either throttle is at most one window (`quota.window.size.seconds`, Kafka's
//! maxThrottleTimeMs).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::client_quotas::CONNECTION_CREATION_RATE;
use super::clock::Clock;
use super::rate::{Rate, RateWindow};
use crate::metadata::image::MetadataImage;
use crate::metrics::AcceptThrottles;

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

pub struct ConnectionQuotas {
    max_total: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    counts: Mutex<Counts>,
    freed: Notify,
    rates: Option<ConnectionRates>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections from {ip} (max.connections.per.ip is {limit})")]
pub struct TooManyConnections {
    pub ip: IpAddr,
    pub limit: usize,
}

/// Why a listener did not take a connection on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    TooMany(#[from] TooManyConnections),
    /// Over its address's connection_creation_rate: closed once `throttle_ms` have passed.
    #[error("{ip} is over its connection_creation_rate quota: throttled for {throttle_ms} ms")]
    Throttled { ip: IpAddr, throttle_ms: i64 },
}

/// An address's connection_creation_rate quota as the acceptor reads it (from the metadata image,
/// `ip_connection_rate`).
pub type IpQuotas = Box<dyn Fn(IpAddr) -> Option<f64> + Send + Sync>;

/// Kafka's value for "no limit" of every connection rate setting and quota (Int.MaxValue).
fn limited(rate: f64) -> Option<f64> {
    (rate < f64::from(i32::MAX)).then_some(rate)
}

/// An address's connection_creation_rate in the metadata image (connectionRateForIp): the quota
/// of the ip entity naming it, else the default ip entity's; `None` without one (or at Kafka's
/// Int.MaxValue, which means none).
pub fn ip_connection_rate(image: &MetadataImage, ip: IpAddr) -> Option<f64> {
    let mut default = None;
    for ((entity, key), value) in image.client_quotas.iter() {
        if key != CONNECTION_CREATION_RATE || entity.len() != 1 {
            continue;
        }
        match entity.get("ip") {
            // Names were checked to be addresses when set; parsing compares them as Kafka's
            // InetAddress does (`::1` and `0:0:0:0:0:0:0:1` are one address).
            Some(Some(name)) if name.parse::<IpAddr>().is_ok_and(|a| a.to_canonical() == ip) => {
                return limited(*value)
            }
            Some(None) => default = Some(*value),
            _ => {}
        }
    }
    default.and_then(limited)
}

/// One listener's own connection creation rate and where its throttles are counted.
struct ListenerRate {
    /// listener.name.<l>.max.connection.creation.rate; `None`: no limit.
    limit: Option<f64>,
    throttles: Arc<AcceptThrottles>,
}

/// The rates measured so far: only those with a limit are kept.
#[derive(Default)]
struct Meters {
    broker: Rate,
    listeners: HashMap<String, Rate>,
    ips: HashMap<IpAddr, Rate>,
}

/// KIP-612's limits on the rate of new connections (see the module comment).
pub struct ConnectionRates {
    window: RateWindow,
    clock: Arc<Clock>,
    /// max.connection.creation.rate; `None`: no limit (Kafka's default).
    broker_limit: Option<f64>,
    listeners: HashMap<String, ListenerRate>,
    /// The inter-broker listener, exempt from the broker-wide rate while there are others.
    inter_broker_listener: Option<String>,
    ip_quotas: IpQuotas,
    meters: Mutex<Meters>,
}

impl ConnectionRates {
    /// Rates measured over `window` on `clock`; `broker_limit` is max.connection.creation.rate
    /// (i32::MAX, Kafka's default: none).
    pub fn new(
        window: RateWindow,
        clock: Arc<Clock>,
        broker_limit: i32,
        inter_broker_listener: Option<String>,
        ip_quotas: IpQuotas,
    ) -> ConnectionRates {
        ConnectionRates {
            window,
            clock,
            broker_limit: limited(f64::from(broker_limit)),
            listeners: HashMap::new(),
            inter_broker_listener,
            ip_quotas,
            meters: Mutex::default(),
        }
    }

    /// Adds a listener of the broker, with its own limit (i32::MAX: none) and where its
    /// throttles are counted.
    pub fn listener(mut self, name: &str, limit: i32, throttles: Arc<AcceptThrottles>) -> Self {
        let limit = limited(f64::from(limit));
        if limit.is_some() {
            self.meters
                .get_mut()
                .listeners
                .insert(name.into(), Rate::default());
        }
        self.listeners
            .insert(name.into(), ListenerRate { limit, throttles });
        self
    }

    /// protectedListener: the inter-broker listener of a broker with more than one.
    fn counts_for_broker(&self, listener: &str) -> bool {
        self.broker_limit.is_some()
            && !(self.inter_broker_listener.as_deref() == Some(listener)
                && self.listeners.len() > 1)
    }

    /// Counts a new connection on `listener` against the broker-wide rate and the listener's,
    /// and answers how long the acceptor waits before it takes the connection on: the longer of
    /// the two throttles (recordConnectionAndGetThrottleTimeMs).
    fn record_connection(&self, listener: &str) -> i64 {
        let (now, w) = (self.clock.now_ms(), self.window);
        let mut meters = self.meters.lock();
        let mut throttle = 0;
        if let (true, Some(limit)) = (self.counts_for_broker(listener), self.broker_limit) {
            throttle = meters.broker.record_and_throttle(1.0, limit, now, w);
        }
        let own = self.listeners.get(listener);
        let own_limit = own.and_then(|l| l.limit);
        if let (Some(rate), Some(limit)) = (meters.listeners.get_mut(listener), own_limit) {
            throttle = throttle.max(rate.record_and_throttle(1.0, limit, now, w));
        }
        drop(meters);
        let throttle = throttle.min(w.window_ms());
        if let (true, Some(l)) = (throttle > 0, own) {
            l.throttles.delayed.fetch_add(1, Relaxed);
            l.throttles.last_delay_ms.store(throttle, Relaxed);
        }
        throttle
    }

    /// Counts a new connection from `ip` against its address's quota. Over it, the connection is
    /// taken back from every rate (it will not be served) and the answer is how long it is held
    /// before it is closed (recordIpConnectionMaybeThrottle).
    fn record_ip(&self, listener: &str, ip: IpAddr) -> Result<(), i64> {
        let Some(limit) = (self.ip_quotas)(ip) else {
            return Ok(());
        };
        let (now, w) = (self.clock.now_ms(), self.window);
        let mut meters = self.meters.lock();
        if meters.ips.len() > 10_000 && !meters.ips.contains_key(&ip) {
            // Forget addresses idle for the whole window (Kafka expires them after an hour).
            meters.ips.retain(|_, r| !r.is_idle(now, w));
        }
        let rate = meters.ips.entry(ip).or_default();
        let throttle = rate
            .record_and_throttle(1.0, limit, now, w)
            .min(w.window_ms());
        if throttle == 0 {
            return Ok(());
        }
        rate.record(-1.0, now, w);
        if self.counts_for_broker(listener) {
            meters.broker.record(-1.0, now, w);
        }
        if let Some(rate) = meters.listeners.get_mut(listener) {
            rate.record(-1.0, now, w);
        }
        drop(meters);
        if let Some(l) = self.listeners.get(listener) {
            l.throttles.ip_throttled.fetch_add(1, Relaxed);
            l.throttles.last_ip_throttle_ms.store(throttle, Relaxed);
        }
        Err(throttle)
    }
}

impl ConnectionQuotas {
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
    ) -> Arc<ConnectionQuotas> {
        Self::build(max_total, max_per_ip, overrides, None)
    }

    /// A broker's quotas: the connection limits and the connection creation rates.
    pub fn with_rates(
        max_total: usize,
        max_per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
        rates: ConnectionRates,
    ) -> Arc<ConnectionQuotas> {
        Self::build(max_total, max_per_ip, overrides, Some(rates))
    }

    fn build(
        max_total: usize,
        max_per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
        rates: Option<ConnectionRates>,
    ) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            max_total,
            max_per_ip,
            overrides,
            counts: Mutex::new(Counts::default()),
            freed: Notify::new(),
            rates,
        })
    }

    /// What the acceptor of listener `name` asks.
    pub fn listener(self: &Arc<Self>, name: &str) -> ListenerQuotas {
        ListenerQuotas {
            quotas: Arc::clone(self),
            listener: Arc::from(name),
        }
    }

    /// Waits until the listener is below max.connections.
    pub async fn wait_for_slot(&self) {
        loop {
            let notified = self.freed.notified();
            if self.counts.lock().total < self.max_total {
                return;
            }
            notified.await;
        }
    }

    /// Counts a new connection from `ip`, or refuses it when its address is at its limit.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, TooManyConnections> {
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let mut counts = self.counts.lock();
        let n = counts.per_ip.entry(ip).or_default();
        if *n >= limit {
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
            return Err(TooManyConnections { ip, limit });
        }
        *n += 1;
        counts.total += 1;
        Ok(ConnectionPermit {
            quotas: Arc::clone(self),
            ip,
        })
    }

    pub fn connections(&self) -> usize {
        self.counts.lock().total
    }
}

/// One listener's view of its broker's connection quotas: what its acceptor asks of each
/// connection, in Kafka's order (ConnectionQuotas.inc): the broker-wide and listener rates, then
/// the address's rate, then the connection counts.
#[derive(Clone)]
pub struct ListenerQuotas {
    quotas: Arc<ConnectionQuotas>,
    listener: Arc<str>,
}

impl ListenerQuotas {
    /// Waits until the broker is below max.connections.
    pub async fn wait_for_slot(&self) {
        self.quotas.wait_for_slot().await
    }

    /// Counts a connection just accepted against max.connection.creation.rate (broker-wide and
    /// this listener's): how long the acceptor waits before taking it on (zero within them).
    pub fn accept_delay(&self) -> Duration {
        let ms = (self.quotas.rates.as_ref()).map_or(0, |r| r.record_connection(&self.listener));
        Duration::from_millis(ms.max(0).unsigned_abs())
    }

    /// Waits `d` on the clock the connection rates are measured on (the broker's: under
    /// `--clock manual` a throttle lasts until the clock is advanced past it, as Kafka's
    /// acceptor waits on its `Time`).
    pub fn throttle(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
        let clock = self.quotas.rates.as_ref().map(|r| Arc::clone(&r.clock));
        async move {
            match clock {
                Some(clock) => clock.sleep(d).await,
                None => tokio::time::sleep(d).await,
            }
        }
    }

    /// Takes on a connection from `ip`, or refuses it: over its address's
    /// connection_creation_rate, or at its address's max.connections.per.ip. An IPv4 address
    /// mapped into IPv6 (a dual-stack listener's) counts as the IPv4 address, as Java's
    /// InetAddress makes it.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let ip = ip.to_canonical();
        if let Some(rates) = &self.quotas.rates {
            rates
                .record_ip(&self.listener, ip)
                .map_err(|throttle_ms| Refusal::Throttled { ip, throttle_ms })?;
        }
        Ok(self.quotas.acquire(ip)?)
    }
}

/// One connection's slot.
pub struct ConnectionPermit {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.quotas.counts.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
        drop(counts);
        self.quotas.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limits_and_overrides() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let q = ConnectionQuotas::new(10, 2, [(b, 0)].into_iter().collect());
        let p1 = q.acquire(a).unwrap();
        let _p2 = q.acquire(a).unwrap();
        assert_eq!(
            q.acquire(a).err(),
            Some(TooManyConnections { ip: a, limit: 2 })
        );
        assert!(
            q.acquire(b).is_err(),
            "an override of 0 refuses every connection"
        );
        drop(p1);
        assert!(q.acquire(a).is_ok(), "a closed connection frees its slot");
        assert_eq!(
            q.connections(),
            1,
            "the permit of the last acquire was dropped at once"
        );
    }

    #[tokio::test]
    async fn the_listener_waits_for_a_free_slot() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let q = ConnectionQuotas::new(1, 5, HashMap::new());
        let held = q.acquire(ip).unwrap();
        let waiter = {
            let q = Arc::clone(&q);
            tokio::spawn(async move { q.wait_for_slot().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "at max.connections the listener waits"
        );
        drop(held);
        waiter.await.unwrap();
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Rates over windows of 1 s, measured over at least one (quota.window.num 2), on a manual
    /// clock; `ip_quotas` the addresses' quotas.
    fn rates(broker_limit: i32, ip_quotas: &[(&str, f64)]) -> (ConnectionRates, Arc<Clock>) {
        let clock = Arc::new(Clock::manual());
        let quotas: HashMap<IpAddr, f64> = ip_quotas.iter().map(|(a, r)| (ip(a), *r)).collect();
        let window = RateWindow::new(1, 2);
        let lookup: IpQuotas = Box::new(move |a| quotas.get(&a).copied());
        let rates = ConnectionRates::new(window, Arc::clone(&clock), broker_limit, None, lookup);
        (rates, clock)
    }

    fn throttles() -> Arc<AcceptThrottles> {
        Arc::new(AcceptThrottles::default())
    }

    #[test]
    fn connections_over_an_address_rate_are_throttled_and_not_counted() {
        let (rates, clock) = rates(i32::MAX, &[("10.0.0.1", 2.0)]);
        let stats = throttles();
        let rates = rates.listener("PLAINTEXT", i32::MAX, Arc::clone(&stats));
        let q = ConnectionQuotas::with_rates(100, 100, HashMap::new(), rates);
        let l = q.listener("PLAINTEXT");
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let held: Vec<_> = (0..2).map(|_| l.admit(a).unwrap()).collect();
        // A third within the second is 3 per second: half over, so half the 1 s window.
        let over = Refusal::Throttled {
            ip: a,
            throttle_ms: 500,
        };
        assert_eq!(l.admit(a).err(), Some(over));
        // It was taken back: the next one is throttled the same, not longer.
        assert_eq!(l.admit(a).err(), Some(over));
        assert_eq!(q.connections(), 2, "throttled connections are not counted");
        assert_eq!(stats.ip_throttled.load(Relaxed), 2);
        assert_eq!(stats.last_ip_throttle_ms.load(Relaxed), 500);
        // Another address has no quota; the rate, not the open connections, is what counts.
        assert!((0..10).all(|_| l.admit(b).is_ok()));
        drop(held);
        assert!(l.admit(a).is_err());
        // Once the window has passed, the address may connect again.
        clock.advance(2_000);
        assert!(l.admit(a).is_ok());
        // An IPv4 address mapped into IPv6 is that address.
        assert!(l.admit(ip("::ffff:10.0.0.1")).is_ok());
        assert!(l.admit(ip("::ffff:10.0.0.1")).is_err());
    }

    #[test]
    fn broker_and_listener_rates_delay_the_acceptor() {
        let (rates, clock) = rates(2, &[]);
        let (client, replication) = (throttles(), throttles());
        let rates = ConnectionRates {
            inter_broker_listener: Some("REPLICATION".into()),
            ..rates
        }
        .listener("CLIENT", i32::MAX, Arc::clone(&client))
        .listener("REPLICATION", 1, Arc::clone(&replication));
        let q = ConnectionQuotas::with_rates(100, 100, HashMap::new(), rates);
        let (c, r) = (q.listener("CLIENT"), q.listener("REPLICATION"));
        let ms = Duration::from_millis;
        assert_eq!(c.accept_delay(), ms(0));
        assert_eq!(c.accept_delay(), ms(0));
        // A third connection in the second: the broker-wide 2 per second is half over.
        assert_eq!(c.accept_delay(), ms(500));
        assert_eq!(client.delayed.load(Relaxed), 1);
        assert_eq!(client.last_delay_ms.load(Relaxed), 500);
        // The inter-broker listener is exempt from the broker-wide rate, not from its own (a
        // second connection at 1 per second: a whole window over, capped at one window).
        assert_eq!(r.accept_delay(), ms(0));
        assert_eq!(r.accept_delay(), ms(1_000));
        assert_eq!(replication.delayed.load(Relaxed), 1);
        clock.advance(2_000);
        assert_eq!(c.accept_delay(), ms(0));
    }

    #[test]
    fn an_inter_broker_listener_alone_is_not_exempt() {
        let (rates, _clock) = rates(1, &[]);
        let rates = ConnectionRates {
            inter_broker_listener: Some("PLAINTEXT".into()),
            ..rates
        }
        .listener("PLAINTEXT", i32::MAX, throttles());
        let q = ConnectionQuotas::with_rates(100, 100, HashMap::new(), rates);
        let l = q.listener("PLAINTEXT");
        assert_eq!(l.accept_delay(), Duration::ZERO);
        assert_eq!(l.accept_delay(), Duration::from_secs(1));
    }

    #[test]
    fn a_throttled_address_is_taken_back_from_the_broker_rate() {
        let (rates, _clock) = rates(2, &[("10.0.0.1", 1.0)]);
        let rates = rates.listener("PLAINTEXT", i32::MAX, throttles());
        let q = ConnectionQuotas::with_rates(100, 100, HashMap::new(), rates);
        let l = q.listener("PLAINTEXT");
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert_eq!(l.accept_delay(), Duration::ZERO);
        let _first = l.admit(a).unwrap();
        assert_eq!(l.accept_delay(), Duration::ZERO);
        assert!(l.admit(a).is_err());
        // Two connections reached the acceptor, but one was never served: a third is within
        // the broker's 2 per second.
        assert_eq!(l.accept_delay(), Duration::ZERO);
        assert!(l.admit(b).is_ok());
    }

    #[test]
    fn an_address_quota_is_its_own_or_the_default() {
        use crate::metadata::image::QuotaEntity;
        let mut image = MetadataImage::empty();
        let entity = |name: Option<&str>| -> QuotaEntity {
            [("ip".to_string(), name.map(str::to_string))].into()
        };
        let key = CONNECTION_CREATION_RATE.to_string();
        let quotas = [
            ((entity(Some("0:0:0:0:0:0:0:1")), key.clone()), 5.0),
            ((entity(Some("10.0.0.1")), key.clone()), f64::from(i32::MAX)),
            ((entity(None), key.clone()), 7.0),
            ((entity(Some("10.0.0.2")), "other".to_string()), 9.0),
        ];
        image.client_quotas = Arc::new(quotas.into_iter().collect());
        assert_eq!(ip_connection_rate(&image, ip("::1")), Some(5.0));
        assert_eq!(
            ip_connection_rate(&image, ip("10.0.0.1")),
            None,
            "Int.MaxValue is no limit, and overrides the default"
        );
        assert_eq!(ip_connection_rate(&image, ip("10.0.0.2")), Some(7.0));
        assert_eq!(ip_connection_rate(&MetadataImage::empty(), ip("::1")), None);
    }
}
