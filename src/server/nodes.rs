//! The brokers this process serves (`--brokers N`), each on its own listeners, stopped and
//! started at run time (the admin listener's `POST /v1/brokers/{id}/stop` and `/start`).
//!
//! A stop is a crash as clients see it: the broker's listener closes (new connections are
//! refused) and every connection it accepted is closed, then the metadata image fences it (it
//! leaves the ISRs, its partitions get new leaders; `metadata::election`). A start listens on the
//! same address again, then the broker registers anew and is unfenced. One stop or start runs at a
//! time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::security::Listener;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no broker {0} in this process")]
    Unknown(i32),
    #[error("broker {0} is already stopped")]
    AlreadyStopped(i32),
    #[error("broker {0} is already running")]
    AlreadyRunning(i32),
    #[error("broker {id} cannot listen on {addr} again: {source}")]
    Bind {
        id: i32,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the metadata change failed: {0}")]
    Metadata(std::io::Error),
}

/// A broker as the admin listener shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: i32,
    /// Where clients reach it (Metadata's broker list).
    pub host: String,
    pub port: u16,
    /// Where it listens (its first listener).
    pub listen: SocketAddr,
    pub running: bool,
}

struct Slot {
    /// Each listener and where it listens.
    listens: Vec<(Arc<Listener>, SocketAddr)>,
    /// The accept loop and what stops it, while the broker runs.
    serving: Option<(CancellationToken, JoinHandle<()>)>,
}

pub struct Nodes {
    broker: Arc<Broker>,
    /// The process's: cancelling it stops every broker.
    cancel: CancellationToken,
    slots: Mutex<BTreeMap<i32, Slot>>,
}

impl Nodes {
    /// Serves each broker's bound listeners as the broker of the same position in
    /// `broker.endpoints`.
    pub fn serve(
        broker: Arc<Broker>,
        listeners: Vec<Vec<(Arc<Listener>, TcpListener)>>,
        cancel: CancellationToken,
    ) -> std::io::Result<Nodes> {
        let mut slots = BTreeMap::new();
        for (bound, (id, _)) in listeners.into_iter().zip(broker.endpoints.clone()) {
            let listens = bound
                .iter()
                .map(|(l, tcp)| Ok((Arc::clone(l), tcp.local_addr()?)))
                .collect::<std::io::Result<Vec<_>>>()?;
            let serving = Some(spawn(bound, id, &broker, &cancel));
            slots.insert(id, Slot { listens, serving });
        }
        Ok(Nodes {
            broker,
            cancel,
            slots: Mutex::new(slots),
        })
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub async fn status(&self) -> Vec<NodeStatus> {
        let slots = self.slots.lock().await;
        self.broker
            .endpoints
            .iter()
            .filter_map(|(id, e)| {
                let slot = slots.get(id)?;
                let (e, (_, listen)) = (e.first()?, slot.listens.first()?);
                Some(NodeStatus {
                    id: *id,
                    host: e.host.clone(),
                    port: e.port,
                    listen: *listen,
                    running: slot.serving.is_some(),
                })
            })
            .collect()
    }

    /// Stops broker `id`: its listener and connections close, then it is fenced.
    pub async fn stop(&self, id: i32) -> Result<(), NodeError> {
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(&id).ok_or(NodeError::Unknown(id))?;
        let (cancel, task) = slot.serving.take().ok_or(NodeError::AlreadyStopped(id))?;
        cancel.cancel();
        let _ = task.await;
        tracing::info!(broker = id, "broker stopped");
        let broker = Arc::clone(&self.broker);
        blocking(move || broker.fence_broker(id)).await
    }

    /// Starts broker `id` again on the addresses it listened on, then registers and unfences it.
    pub async fn start(&self, id: i32) -> Result<(), NodeError> {
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(&id).ok_or(NodeError::Unknown(id))?;
        if slot.serving.is_some() {
            return Err(NodeError::AlreadyRunning(id));
        }
        let mut bound = Vec::new();
        for (listener, addr) in &slot.listens {
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind {
                    id,
                    addr: *addr,
                    source,
                })?;
            bound.push((Arc::clone(listener), tcp));
        }
        slot.serving = Some(spawn(bound, id, &self.broker, &self.cancel));
        tracing::info!(broker = id, listen = ?slot.listens.iter().map(|(_, a)| *a).collect::<Vec<_>>(), "broker started");
        let broker = Arc::clone(&self.broker);
        blocking(move || broker.restart_broker(id)).await
    }

    /// Waits until every broker's listener and connections are closed (after the process's
    /// cancellation).
    pub async fn closed(&self) {
        let mut slots = self.slots.lock().await;
        for slot in slots.values_mut() {
            if let Some((cancel, task)) = slot.serving.take() {
                cancel.cancel();
                let _ = task.await;
            }
        }
    }
}

fn spawn(
    listeners: Vec<(Arc<Listener>, TcpListener)>,
    id: i32,
    broker: &Arc<Broker>,
    cancel: &CancellationToken,
) -> (CancellationToken, JoinHandle<()>) {
    let cancel = cancel.child_token();
    let task = super::background::spawn(super::accept_loop(
        listeners,
        id,
        Arc::clone(broker),
        cancel.clone(),
    ));
    (cancel, task)
}

/// A metadata change (it appends to the metadata log, with fsync) off the async workers.
async fn blocking(
    f: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<(), NodeError> {
    match super::background::spawn_blocking(f).await {
        Ok(r) => r.map_err(NodeError::Metadata),
        Err(e) => Err(NodeError::Metadata(std::io::Error::other(e))),
    }
}
