//! The process around a broker: which broker serves now, and its restart onto a snapshot.
//!
//! A restore (`POST /v1/restore`, see `admin::snapshot`) is a restart: the broker stops as
//! `RunningBroker::shutdown` stops it (listeners and every connection closed, background work
//! stopped, every log flushed and closed), the data directory is laid out again from the
//! snapshot, and a new broker starts on it with the same configuration (the seed is not applied
//! again) on the same listener addresses, ports the OS chose at the first start included. What
//! outlives a restart is here: the admin listener asks for the current broker on each request
//! (`current`), and a request that comes during a restart waits for its end. Clients see what
//! they see when a broker restarts: their connections close, they reconnect and find the
//! snapshot's state. A manual clock (`--clock manual`) keeps its time across it; fault rules
//! and the request journal start empty.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::snapshot::{self, Copied, SnapshotError};
use crate::broker::{Broker, Endpoint};
use crate::config::Config;
use crate::log::storage::Storage;
use crate::security::Listener;
use crate::server::broker_lifecycle::BrokerLifecycle;
use crate::server::nodes::Nodes;

/// Each broker's listeners, bound.
pub type Bound = Vec<Vec<(Arc<Listener>, TcpListener)>>;

/// One life of the broker, from its start to its stop.
pub struct Life {
    pub broker: Arc<Broker>,
    pub nodes: Arc<Nodes>,
    /// Stops this life's work (a child of the process's token).
    pub cancel: CancellationToken,
    pub tasks: Vec<JoinHandle<()>>,
    /// In a quorum of processes with controlled.shutdown.enable, the broker's lifecycle with the
    /// active controller: a stop is a controlled shutdown first.
    pub lifecycle: Option<BrokerLifecycle>,
}

impl Life {
    /// Stops serving and background work, then flushes and closes every log (a clean
    /// shutdown); returns the broker, closed.
    pub async fn stop(self) -> std::io::Result<Arc<Broker>> {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.nodes.closed().await;
        let broker = Arc::clone(&self.broker);
        super::background::spawn_blocking(move || broker.close())
            .await
            .map_err(std::io::Error::other)??;
        Ok(self.broker)
    }
}

/// What a start needs: the configuration, where to listen, and what to keep from the life
/// before (a restart).
pub struct StartWith {
    pub storage: Arc<dyn Storage>,
    pub config: Config,
    pub bound: Bound,
    pub endpoints: Vec<Vec<Endpoint>>,
    pub registry: Option<TcpListener>,
    /// The process's token: a life's is a child of it.
    pub cancel: CancellationToken,
    /// The clock of the life before, kept when it is a manual one.
    pub clock: Option<Arc<crate::server::clock::Clock>>,
}

pub struct Process {
    storage: Arc<dyn Storage>,
    /// As at the first start, without the seed (applied once).
    config: Config,
    /// Where each broker's listeners listen: a restart binds there again.
    listens: Vec<Vec<(Arc<Listener>, SocketAddr)>>,
    endpoints: Vec<Vec<Endpoint>>,
    registry_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    /// `None` once stopped, or when a restart failed to start; locked for a whole restart.
    life: Mutex<Option<Life>>,
    /// The brokers of the latest start (`nodes_now`), not kept alive by it: a restart waits
    /// for the stopped broker to be let go of.
    nodes: parking_lot::RwLock<std::sync::Weak<Nodes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the broker could not start again: {0}")]
    Start(std::io::Error),
}

impl Process {
    pub fn new(
        storage: Arc<dyn Storage>,
        mut config: Config,
        listens: Vec<Vec<(Arc<Listener>, SocketAddr)>>,
        endpoints: Vec<Vec<Endpoint>>,
        registry_addr: Option<SocketAddr>,
        cancel: CancellationToken,
        life: Life,
    ) -> Process {
        config.seed = None;
        Process {
            storage,
            config,
            listens,
            endpoints,
            registry_addr,
            cancel,
            nodes: parking_lot::RwLock::new(Arc::downgrade(&life.nodes)),
            life: Mutex::new(Some(life)),
        }
    }

    /// The brokers serving, without waiting for a restart under way (`RunningBroker::broker`);
    /// `None` while stopped.
    pub fn nodes_now(&self) -> Option<Arc<Nodes>> {
        self.nodes.read().upgrade()
    }

    /// The brokers serving now (waits for a restart under way); `None` when none is.
    pub async fn current(&self) -> Option<Arc<Nodes>> {
        self.life
            .lock()
            .await
            .as_ref()
            .map(|l| Arc::clone(&l.nodes))
    }

    /// Why snapshots and restores are refused here, if they are.
    pub fn unsupported(&self) -> Option<&'static str> {
        if self.config.quorum.is_some() {
            return Some("snapshots are not supported with a metadata quorum (process.roles)");
        }
        if self.config.brokers > 1 {
            return Some("snapshots are not supported with --brokers > 1");
        }
        None
    }

    /// In a quorum, has the active controller move the broker's leaderships away while it still
    /// serves (`server::broker_lifecycle`): the first step of the process's shutdown, before
    /// anything stops.
    pub async fn controlled_shutdown(&self) {
        if let Some(lifecycle) = self
            .life
            .lock()
            .await
            .as_ref()
            .and_then(|l| l.lifecycle.as_ref())
        {
            lifecycle.controlled_shutdown().await;
        }
    }

    /// Stops the broker and closes its logs (the process's shutdown).
    pub async fn stop(&self) -> std::io::Result<()> {
        match self.life.lock().await.take() {
            Some(life) => life.stop().await.map(drop),
            None => Ok(()),
        }
    }

    /// The restart onto snapshot `name` (see the module comment): answered once the broker
    /// serves again, with what the layout did.
    pub async fn restore(&self, name: &str) -> Result<Copied, RestartError> {
        if let Some(why) = self.unsupported() {
            return Err(SnapshotError::Unsupported(why.to_string()).into());
        }
        let data_dir = self.config.data_dir.clone();
        snapshot::complete(&data_dir, name)?;
        let mut life = self.life.lock().await;
        let mut clock = None;
        if let Some(old) = life.take() {
            let broker = old.stop().await.map_err(SnapshotError::Io)?;
            clock = broker.clock.is_manual().then(|| Arc::clone(&broker.clock));
            // Work of the old broker that outlived its connections (a blocking job a request
            // started) ends before its files go; its data directory lock goes with it.
            release(broker).await;
        }
        let name = name.to_string();
        let copied = super::background::spawn_blocking(move || snapshot::lay_out(&data_dir, &name))
            .await
            .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))??;
        let started = self.start_again(clock).await.map_err(RestartError::Start)?;
        *self.nodes.write() = Arc::downgrade(&started.nodes);
        *life = Some(started);
        Ok(copied)
    }

    async fn start_again(
        &self,
        clock: Option<Arc<crate::server::clock::Clock>>,
    ) -> std::io::Result<Life> {
        let mut bound = Vec::new();
        for listens in &self.listens {
            let mut mine = Vec::new();
            for (listener, addr) in listens {
                let tcp = TcpListener::bind(addr)
                    .await
                    .map_err(|e| crate::server::cannot_listen(addr, e))?;
                mine.push((Arc::clone(listener), tcp));
            }
            bound.push(mine);
        }
        let registry = match self.registry_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| crate::server::cannot_listen(addr, e))?,
            ),
            None => None,
        };
        crate::start_life(StartWith {
            storage: Arc::clone(&self.storage),
            config: self.config.clone(),
            bound,
            endpoints: self.endpoints.clone(),
            registry,
            cancel: self.cancel.clone(),
            clock,
        })
        .await
    }
}

/// Waits (a bounded while) until nothing but the caller holds the stopped broker, then drops
/// it; its data directory lock is let go in any case, so that the next broker can take it.
async fn release(broker: Arc<Broker>) {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    while Arc::strong_count(&broker) > 1 && started.elapsed() < WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let holders = Arc::strong_count(&broker) - 1;
    if holders > 0 {
        tracing::warn!(
            holders,
            "work of the stopped broker is still running; restoring anyway"
        );
    }
    broker.release_data_dir();
}
