//! The network edge, and the only place that uses tokio's IO: one accept loop per listener, one
//! task per connection (see `connection.rs`; TLS listeners finish the TLS handshake first), and
//! the purgatory where long-polling requests wait.

pub mod background;
pub mod broker_lifecycle;
pub mod client_quotas;
pub mod clock;
pub mod connection;
pub mod inter_broker;
pub mod memory_pool;
pub mod nodes;
pub mod process;
pub mod purgatory;
pub mod quotas;
pub mod rate;
pub mod replica_fetcher;
pub mod replica_manager;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::protocol::Session;
use crate::security::{self, Listener};
use quotas::{ConnectionQuotas, ConnectionRates, ListenerQuotas, Refusal};

/// Accepts connections to broker `node_id` on each of its listeners, one accept loop per
/// listener, until `cancel` fires, within that broker's connection limits and connection
/// creation rates (see `quotas`, shared by its listeners as Kafka's are). When it returns, the
/// listeners and every connection they accepted are closed (a broker stopped through the admin
/// listener goes away as in a crash).
pub async fn accept_loop(
    listeners: Vec<(Arc<Listener>, TcpListener)>,
    node_id: i32,
    broker: Arc<Broker>,
    cancel: CancellationToken,
) {
    let c = &broker.config;
    let image_of = Arc::clone(&broker);
    let mut rates = ConnectionRates::new(
        rate::RateWindow::new(c.quota_window_size_seconds, c.quota_window_num),
        Arc::clone(&broker.clock),
        c.max_connection_creation_rate,
        c.inter_broker_listener.clone(),
        Box::new(move |ip| quotas::ip_connection_rate(&image_of.catalog.image(), ip)),
    );
    for (listener, _) in &listeners {
        let name = listener.name();
        let limit = c.listener_max_connection_creation_rate.get(name).copied();
        let throttles = broker.metrics.accept_throttles(node_id, name);
        rates = rates.listener(name, limit.unwrap_or(i32::MAX), throttles);
    }
    let quotas = ConnectionQuotas::with_rates(
        c.max_connections,
        c.max_connections_per_ip,
        c.max_connections_per_ip_overrides.clone(),
        rates,
    );
    let pool = memory_pool::MemoryPool::new(c.queued_max_request_bytes);
    let mut loops = JoinSet::new();
    for (listener, tcp) in listeners {
        let quotas = quotas.listener(listener.name());
        let (broker, pool) = (Arc::clone(&broker), Arc::clone(&pool));
        let serve = move |stream: TcpStream, peer: SocketAddr| {
            serve_connection(
                stream,
                peer,
                node_id,
                Arc::clone(&listener),
                Arc::clone(&broker),
                Arc::clone(&pool),
            )
        };
        loops.spawn(accept_until(tcp, quotas, cancel.clone(), serve));
    }
    while loops.join_next().await.is_some() {}
}

/// One accepted connection: the TLS handshake on a TLS listener (bounded by
/// connections.max.idle.ms; plaintext bytes there fail it and close the connection), then the
/// requests.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    node_id: i32,
    listener: Arc<Listener>,
    broker: Arc<Broker>,
    pool: Arc<memory_pool::MemoryPool>,
) {
    let _ = stream.set_nodelay(true);
    let _open = broker.metrics.connection_opened(node_id, listener.name());
    let Some(tls) = &listener.tls else {
        let session = Session::new(node_id, peer, listener, Arc::from(security::ANONYMOUS));
        return connection::serve(stream, session, broker, pool).await;
    };
    let idle = std::time::Duration::from_millis(broker.config.connections_max_idle_ms);
    let (stream, principal) = match tls.accept(stream, idle).await {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::info!(%peer, listener = %listener.name(), error = %e, "TLS connection refused");
            return;
        }
    };
    let session = Session::new(node_id, peer, listener, Arc::from(principal));
    connection::serve(stream, session, broker, pool).await
}

/// Accepts connections on `listener` within `quotas` until `cancel` fires, each served by
/// `serve` on a task of its own. When it returns, the listener and every connection it accepted
/// are closed.
pub async fn accept_until<F, Fut>(
    listener: TcpListener,
    quotas: ListenerQuotas,
    cancel: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            // Reaps finished connections, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = async {
                quotas.wait_for_slot().await;
                listener.accept().await
            } => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Over max.connection.creation.rate this acceptor waits before taking the
                // connection on, and the ones behind it wait in the backlog (KIP-612).
                let delay = quotas.accept_delay();
                if !delay.is_zero() {
                    tracing::debug!(%peer, ?delay, "connection creation rate: delaying the acceptor");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = quotas.throttle(delay) => {}
                    }
                }
                match quotas.admit(peer.ip()) {
                    Ok(permit) => {
                        let served = serve(stream, peer);
                        connections.spawn(async move {
                            let _permit = permit;
                            served.await;
                        });
                    }
                    Err(Refusal::Throttled { throttle_ms, .. }) => {
                        // Kafka's acceptor keeps such a connection unread until its throttle
                        // time has passed and then closes it, so that its client does not
                        // reconnect at once. It is not counted as open.
                        tracing::debug!(%peer, throttle_ms, "connection creation rate quota: closing the connection after its throttle time");
                        let hold = Duration::from_millis(throttle_ms.max(0).unsigned_abs());
                        let held = quotas.throttle(hold);
                        connections.spawn(async move {
                            held.await;
                            drop(stream);
                        });
                    }
                    Err(e) => tracing::info!(%peer, error = %e, "refusing a connection"),
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// A listener's bind failure naming the address ("Address already in use" alone does not say
/// which of a node's listeners it was).
pub fn cannot_listen(addr: impl std::fmt::Display, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}
