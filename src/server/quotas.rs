//! Connection limits, after Kafka's ConnectionQuotas: `max.connections` for the listener and
//! `max.connections.per.ip` (with per-address overrides).
//!
//! As in Kafka, a connection over its address's limit is closed as soon as it is accepted, while
//! the listener-wide limit stops accepting (new connections wait in the kernel's backlog) until a
//! connection closes. A `ConnectionPermit` is held for the life of each connection and gives its
//! slot back when dropped, however the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

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
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections from {ip} (max.connections.per.ip is {limit})")]
pub struct TooManyConnections {
    pub ip: IpAddr,
    pub limit: usize,
}

impl ConnectionQuotas {
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
    ) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            max_total,
            max_per_ip,
            overrides,
            counts: Mutex::new(Counts::default()),
            freed: Notify::new(),
        })
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
}
