//! The network edge, and the only place that uses tokio's IO: the listener and one task per
//! connection (see `connection.rs`), and the purgatory where long-polling requests wait.

pub mod clock;
pub mod connection;
pub mod memory_pool;
pub mod nodes;
pub mod purgatory;
pub mod quotas;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use quotas::ConnectionQuotas;

/// Accepts connections to broker `node_id` until `cancel` fires, within that broker's connection
/// limits (see `quotas`). When it returns, the listener and every connection it accepted are
/// closed (a broker stopped through the admin listener goes away as in a crash).
pub async fn accept_loop(
    listener: TcpListener,
    node_id: i32,
    broker: Arc<Broker>,
    cancel: CancellationToken,
) {
    let c = &broker.config;
    let quotas = ConnectionQuotas::new(
        c.max_connections,
        c.max_connections_per_ip,
        c.max_connections_per_ip_overrides.clone(),
    );
    let pool = memory_pool::MemoryPool::new(c.queued_max_request_bytes);
    accept_until(listener, quotas, cancel, |stream, peer| {
        connection::serve(
            stream,
            peer,
            node_id,
            Arc::clone(&broker),
            Arc::clone(&pool),
        )
    })
    .await
}

/// Accepts connections on `listener` within `quotas` until `cancel` fires, each served by
/// `serve` on a task of its own. When it returns, the listener and every connection it accepted
/// are closed.
pub async fn accept_until<F, Fut>(
    listener: TcpListener,
    quotas: Arc<ConnectionQuotas>,
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
            Ok((stream, peer)) => match quotas.acquire(peer.ip()) {
                Ok(permit) => {
                    let served = serve(stream, peer);
                    connections.spawn(async move {
                        let _permit = permit;
                        served.await;
                    });
                }
                Err(e) => tracing::info!(%peer, error = %e, "refusing a connection"),
            },
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
