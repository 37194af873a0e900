//! gregor: a Kafka-wire-compatible broker.
//!
//! Module map (see DESIGN.md):
//! - `config`: typed configuration under Kafka's names (CLI, server.properties, KAFKA_* env);
//! - `server`: the network edge (tokio): listener and connections, framing, in-order replies;
//! - `protocol`: one module per Kafka API, the API table, error-code mapping;
//! - `log`: record batches, segments, indexes, partition logs, recovery, retention;
//! - `coordinator`: the coordinator runtime (Kafka's CoordinatorRuntime) coordinators run on;
//! - `group`: the consumer-group coordinator and committed offsets;
//! - `share`: share groups (KIP-932): the state of each share-partition;
//! - `metadata`: topics, topic ids, partitions and the catalog on disk;
//! - `txn`: producer ids and idempotent-producer state;
//! - `security`: listeners' authentication: SASL mechanisms (PLAIN, SCRAM), TLS, principals;
//! - `broker`: the shared state of a running broker and its life cycle on disk;
//! - `admin`: the admin HTTP listener (health, broker stop and start), off unless asked for;
//! - `console`: the web console the admin listener serves at `/ui`;
//! - `schema_registry`: the Confluent-compatible schema registry, off unless asked for;
//! - `http`: the HTTP/JSON plumbing both listeners share;
//! - `testing`: free ports for tests that start brokers on fixed ports.
//!
//! `start` runs a broker inside the caller's tokio runtime; tests use it with port 0.

// Tests may unwrap: a panic there is a failed test, not a broker crash.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod broker;
pub mod config;
pub mod console;
pub mod coordinator;
pub mod group;
pub mod http;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod protocol;
pub mod schema_registry;
pub mod security;
pub mod server;
pub mod share;
#[doc(hidden)]
pub mod testing;
pub mod txn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use broker::{Broker, Endpoint};
pub use config::Config;

/// How often background duties (flush.ms checks) run; retention runs every
/// log.retention.check.interval.ms on top of it.
const HOUSEKEEPING_TICK: Duration = Duration::from_millis(1000);
/// How often the active controller of a quorum looks for brokers whose session expired (at
/// most; more often when broker.heartbeat.interval.ms is shorter).
const LIVENESS_CHECK: Duration = Duration::from_millis(250);
/// How often group timeouts are applied.
const GROUP_TICK: Duration = Duration::from_millis(100);
/// How often transaction markers that could not be written are tried again (Kafka's marker
/// channel requeues them for its next send).
const TXN_MARKER_RETRY: Duration = Duration::from_millis(500);

/// A broker serving on bound sockets.
pub struct RunningBroker {
    /// Where the first broker's first listener listens.
    pub local_addr: SocketAddr,
    /// Where each broker's first listener listens, in node id order (`--brokers`).
    pub local_addrs: Vec<SocketAddr>,
    /// Each broker's listeners (name, address), in node id order.
    pub listener_addrs: Vec<Vec<(String, SocketAddr)>>,
    /// Where the admin HTTP listener listens (`--admin-listen`), when it was asked for.
    pub admin_addr: Option<SocketAddr>,
    /// Where the schema registry listens (`--schema-registry-listen`), when it was asked for.
    pub schema_registry_addr: Option<SocketAddr>,
    /// The broker serving now (a restore starts another; see `server::process`).
    process: Arc<server::process::Process>,
    /// The process's: stops the admin listener and the broker.
    cancel: CancellationToken,
    /// The admin listener's.
    tasks: Vec<JoinHandle<()>>,
}

/// Opens the data directory (recovering it if needed), binds the listener and starts serving.
pub async fn start(config: Config) -> std::io::Result<RunningBroker> {
    start_on(Arc::new(log::storage::FileStorage), config).await
}

/// Binds every listener of every broker this process serves: broker i on each listener's
/// port + i (all on free ports when a listener's port is 0). Returns them with each broker's
/// endpoints.
async fn bind_listeners(
    config: &Config,
) -> std::io::Result<(server::process::Bound, Vec<Vec<Endpoint>>)> {
    let listeners = security::listeners(config).map_err(std::io::Error::other)?;
    let mut bound = Vec::new();
    let mut endpoints = Vec::new();
    for i in 0..config.brokers {
        let (mut mine, mut eps) = (Vec::new(), Vec::new());
        for l in &listeners {
            let c = &l.config;
            let port = if c.port == 0 {
                0
            } else {
                c.port
                    .checked_add(i)
                    .ok_or_else(|| std::io::Error::other("listen port out of range"))?
            };
            let host = if c.host.is_empty() {
                "0.0.0.0"
            } else {
                c.host.as_str()
            };
            let tcp = TcpListener::bind((host, port))
                .await
                .map_err(|e| server::cannot_listen(format!("{host}:{port}"), e))?;
            let local = tcp.local_addr()?;
            let (host, port) = match &c.advertised {
                Some((host, port)) => (host.clone(), port.saturating_add(i)),
                None => (advertised_host(local), local.port()),
            };
            eps.push(Endpoint {
                listener: c.name.clone(),
                security_protocol: c.protocol,
                host,
                port,
            });
            mine.push((std::sync::Arc::clone(l), tcp));
        }
        bound.push(mine);
        endpoints.push(eps);
    }
    Ok((bound, endpoints))
}

/// `start`, with every segment file going through `storage` (tests inject storage faults).
pub async fn start_on(
    storage: Arc<dyn log::storage::Storage>,
    config: Config,
) -> std::io::Result<RunningBroker> {
    let (bound, endpoints) = bind_listeners(&config).await?;
    let listener_addrs = (bound.iter())
        .map(|b| {
            b.iter()
                .map(|(l, tcp)| Ok((l.config.name.clone(), tcp.local_addr()?)))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let local_addrs: Vec<SocketAddr> = listener_addrs.iter().map(|a| a[0].1).collect();
    let local_addr = match local_addrs.first() {
        Some(a) => *a,
        // A controller-only process has no broker listener: its controller listener.
        None => controller_addr(&config)?,
    };
    let admin_listener = match &config.admin_listen {
        Some(addr) => Some(admin::bind(addr).await?),
        None => None,
    };
    let registry = match &config.schema_registry_listen {
        Some(addr) => Some(schema_registry::rest::bind(addr).await?),
        None => None,
    };
    let schema_registry_addr = registry.as_ref().map(|r| r.local_addr()).transpose()?;
    let cancel = CancellationToken::new();
    let listens = (bound.iter())
        .map(|b| {
            b.iter()
                .map(|(l, tcp)| Ok((Arc::clone(l), tcp.local_addr()?)))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let at_first = server::process::StartWith {
        storage: Arc::clone(&storage),
        config: config.clone(),
        bound,
        endpoints: endpoints.clone(),
        registry,
        cancel: cancel.clone(),
        clock: None,
    };
    let life = start_life(at_first).await?;
    let process = server::process::Process::new(
        storage,
        config,
        listens,
        endpoints,
        schema_registry_addr,
        cancel.clone(),
        life,
    );
    let process = Arc::new(process);
    let mut tasks = Vec::new();
    let mut admin_addr = None;
    if let Some(listener) = admin_listener {
        admin_addr = Some(listener.local_addr()?);
        let serve = admin::serve(listener, Arc::clone(&process), cancel.clone());
        tasks.push(crate::server::background::spawn(serve));
        tracing::info!(listen = ?admin_addr, "admin listener is ready");
    }
    Ok(RunningBroker {
        local_addr,
        local_addrs,
        listener_addrs,
        admin_addr,
        schema_registry_addr,
        process,
        cancel,
        tasks,
    })
}

/// Opens the data directory and serves on the bound listeners: one life of the broker (the
/// first, or one after a restore).
pub(crate) async fn start_life(
    with: server::process::StartWith,
) -> std::io::Result<server::process::Life> {
    let server::process::StartWith {
        storage,
        config,
        bound,
        endpoints,
        registry: registry_listener,
        cancel: process_cancel,
        clock,
    } = with;
    let mut broker = Broker::open_on(storage, config, endpoints)?;
    if let Some(clock) = clock {
        broker.clock = clock;
    }
    let broker = Arc::new(broker);
    // A start that fails half-way stops what it had started.
    let cancel = process_cancel.child_token();
    let stop_on_error = cancel.clone().drop_guard();
    let mut lifecycle = None;
    let mut tasks = vec![
        crate::server::background::spawn(housekeeping(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(log_cleaner(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(group_timeouts(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(producer_expiration(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(transaction_timers(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(follow_metadata(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(server::replica_fetcher::replica_fetchers(
            Arc::clone(&broker),
            cancel.clone(),
        )),
        crate::server::background::spawn(isr_updates(Arc::clone(&broker), cancel.clone())),
        crate::server::background::spawn(coordinator_loads(Arc::clone(&broker), cancel.clone())),
    ];
    if let Some(q) = broker
        .config
        .quorum
        .as_ref()
        .filter(|q| q.roles.is_controller())
    {
        let duties: std::sync::Weak<dyn metadata::controller::ControllerDuties> =
            Arc::downgrade(&broker) as _;
        broker.catalog.serve_controller(duties);
        // The controller looks for expired sessions a few times per heartbeat interval, so a
        // broker is fenced soon after broker.session.timeout.ms.
        let b = Arc::clone(&broker);
        let every = Duration::from_millis(q.broker_heartbeat_interval_ms);
        let check_every = every.min(LIVENESS_CHECK);
        let check = periodically(
            Arc::clone(&broker),
            check_every,
            cancel.clone(),
            move |_| {
                b.fence_expired_brokers();
            },
        );
        tasks.push(crate::server::background::spawn(check));
    }
    if let Some(q) = broker
        .config
        .quorum
        .as_ref()
        .filter(|q| q.roles.is_broker())
    {
        let heartbeat_every = Duration::from_millis(q.broker_heartbeat_interval_ms);
        let shutdown_timeout = Duration::from_millis(q.broker_session_timeout_ms as u64);
        let (handle, task, mut let_in) = server::broker_lifecycle::BrokerLifecycle::start(
            Arc::clone(&broker),
            heartbeat_every,
            shutdown_timeout,
            cancel.clone(),
        );
        tasks.push(task);
        lifecycle = q.controlled_shutdown_enable.then_some(handle);
        // As Kafka's BrokerServer, clients are served once the controller has unfenced this
        // broker (its metadata caught up), so that its first answers are the cluster's.
        tracing::info!(
            node = broker.node_id,
            "waiting for the controller to unfence this broker"
        );
        if let_in.wait_for(|&unfenced| unfenced).await.is_err() {
            return Err(std::io::Error::other(
                "the broker stopped before it was unfenced",
            ));
        }
    }
    if let Some(seed) = &broker.config.seed {
        // Before the listeners open, so a client's first look finds the data; once only: a
        // restart on the same data directory must not write the records again.
        let own_topics = broker.catalog.all().iter().any(|t| !t.is_internal());
        if own_topics {
            tracing::info!("--seed not applied: the broker has topics already");
        } else {
            let summary = admin::seed::apply(&broker, seed)
                .await
                .map_err(|e| std::io::Error::other(format!("--seed: {e}")))?;
            tracing::info!(%summary, "seed data applied");
        }
    }
    let listening: Vec<Vec<SocketAddr>> = (bound.iter())
        .map(|b| {
            b.iter()
                .filter_map(|(_, tcp)| tcp.local_addr().ok())
                .collect()
        })
        .collect();
    let nodes = Arc::new(server::nodes::Nodes::serve(
        Arc::clone(&broker),
        bound,
        cancel.clone(),
    )?);
    if let Some(listener) = registry_listener {
        let schema_registry_addr = listener.local_addr()?;
        let b = Arc::clone(&broker);
        let registry = crate::server::background::spawn_blocking(move || {
            schema_registry::SchemaRegistry::open(b)
        })
        .await
        .map_err(std::io::Error::other)??;
        let serve = schema_registry::rest::serve(listener, Arc::new(registry), cancel.clone());
        tasks.push(crate::server::background::spawn(serve));
        tracing::info!(listen = ?schema_registry_addr, "schema registry is ready");
    }
    // Started: from here on the process's stop or restore stops the tasks.
    stop_on_error.disarm();
    tracing::info!(listen = ?listening, advertised = ?broker.endpoints, data_dir = %broker.config.data_dir.display(),
        cluster_id = %broker.cluster_id, "gregor is ready");
    Ok(server::process::Life {
        broker,
        nodes,
        cancel,
        tasks,
        lifecycle,
    })
}

/// Where a controller-only process's controller listener listens.
fn controller_addr(config: &Config) -> std::io::Result<SocketAddr> {
    let listen = config.quorum.as_ref().and_then(|q| q.listen.clone());
    let (host, port) = listen.ok_or_else(|| std::io::Error::other("no listener"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { &host };
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .ok_or_else(|| std::io::Error::other("the controller listener has no address"))
}

/// A wildcard bind address is not something a client can dial; advertise loopback instead.
fn advertised_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    }
}

impl RunningBroker {
    /// Where the first broker's listener `name` listens.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs
            .first()?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// The broker serving now (after a restore, the restored one); `None` while a restore
    /// restarts it.
    pub fn broker(&self) -> Option<Arc<Broker>> {
        Some(Arc::clone(self.process.nodes_now()?.broker()))
    }

    /// The brokers' listeners (stop and start them as the admin listener does).
    pub fn nodes(&self) -> Option<Arc<server::nodes::Nodes>> {
        self.process.nodes_now()
    }

    /// The process around the broker (restores; see `server::process`).
    pub fn process(&self) -> &Arc<server::process::Process> {
        &self.process
    }

    /// Stops accepting and serving, then flushes and closes every log (a clean shutdown); in a
    /// quorum, a controlled shutdown first.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.process.controlled_shutdown().await;
        self.cancel.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        self.process.stop().await
    }
}

/// Dropping a running broker without `shutdown` stops its tasks without closing the logs, as a
/// crash would (the next start recovers); the data directory lock is released once they end.
impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The group coordinator's timers alone, on the current runtime, until the returned token is
/// cancelled: the fuzz target runs them on paused time so that joins and syncs that wait for
/// other members end when their timeouts pass on the broker's clock.
pub fn spawn_group_timers(broker: Arc<Broker>) -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(group_timeouts(broker, cancel.clone()));
    cancel
}

/// Session, join and sync timeouts of consumer groups, checked often enough that a dead member
/// is noticed within a fraction of a second of its session timeout, and at once when the clock
/// is advanced.
async fn group_timeouts(broker: Arc<Broker>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(GROUP_TICK);
    let mut advanced = broker.clock.subscribe();
    // Intervals on the monotonic reading (Kafka's timers); what is compared with timestamps on
    // the wall reading.
    let mut last_expiry = broker.clock.monotonic_ms();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            _ = advanced.changed() => {}
        }
        // Deadlines on the monotonic reading, what is written on the wall one (`Now`).
        let now = broker.clock.now();
        for (group, member) in broker.groups.tick(&broker.catalog, now) {
            broker
                .shares
                .close_session(&broker.catalog, &group, &member, now.wall_ms);
        }
        broker.shares.expire_locks(&broker.catalog, now);
        let elapsed = now.monotonic_ms;
        if elapsed - last_expiry >= broker.groups.cfg.offsets_retention_check_interval_ms {
            last_expiry = elapsed;
            let removed = broker.groups.expire_offsets(&broker.catalog, now.wall_ms);
            if removed > 0 {
                tracing::info!(removed, "expired committed offsets");
            }
        }
    }
}

/// Runs `job` every `every` until `cancel`, each run off the async workers (jobs take partition
/// locks, which may be held across an fsync); also as soon as an advance of the broker's clock
/// (`--clock manual`) makes `every` pass on it (its monotonic reading: a step of the wall clock
/// does not run a job early). `job` gets the wall clock's `now`.
async fn periodically(
    broker: Arc<Broker>,
    every: Duration,
    cancel: CancellationToken,
    job: impl Fn(i64) + Clone + Send + 'static,
) {
    let mut advanced = broker.clock.subscribe();
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let mut last = broker.clock.monotonic_ms();
    let mut next = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => next = tokio::time::Instant::now() + every,
            _ = advanced.changed() => {
                if broker.clock.monotonic_ms() - last < every_ms {
                    continue;
                }
            }
        }
        last = broker.clock.monotonic_ms();
        let (job, now) = (job.clone(), broker.clock.now_ms());
        let _ = crate::server::background::spawn_blocking(move || job(now)).await;
    }
}

/// Compacts the logs of `cleanup.policy=compact` topics every log.cleaner.backoff.ms (Kafka's
/// cleaner threads sleep that long when there is nothing to clean).
async fn log_cleaner(broker: Arc<Broker>, cancel: CancellationToken) {
    if !broker.config.log_cleaner_enable {
        return;
    }
    let every = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    let b = Arc::clone(&broker);
    periodically(broker, every, cancel, move |now| {
        b.clean_logs(now);
    })
    .await;
}

/// Expires idle producer state every producer.id.expiration.check.interval.ms (Kafka's
/// PeriodicProducerExpirationCheck).
async fn producer_expiration(broker: Arc<Broker>, cancel: CancellationToken) {
    let every = Duration::from_millis(broker.config.producer_id_expiration_check_interval_ms);
    let b = Arc::clone(&broker);
    periodically(broker, every, cancel, move |now| {
        let removed = b.expire_producers(now);
        if removed > 0 {
            tracing::info!(removed, "expired idle producer ids");
        }
    })
    .await;
}

/// The transaction coordinator's timers: markers retried every TXN_MARKER_RETRY (which also
/// completes transactions found prepared at start-up), timed-out transactions aborted every
/// transaction.abort.timed.out.transaction.cleanup.interval.ms, idle transactional ids removed
/// every transaction.remove.expired.transaction.cleanup.interval.ms (those two by the broker's
/// clock, so also at once when an advance makes them due: the intervals on its monotonic
/// reading, as Kafka's scheduler, the timeouts against the wall reading, as Kafka's
/// TransactionStateManager compares `time.milliseconds()` with the transactions' timestamps).
async fn transaction_timers(broker: Arc<Broker>, cancel: CancellationToken) {
    let cfg = broker.txns.cfg.clone();
    let mut advanced = broker.clock.subscribe();
    let start = broker.clock.monotonic_ms();
    let (mut last_abort, mut last_expiry) = (start, start);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(TXN_MARKER_RETRY) => {}
            _ = advanced.changed() => {}
        }
        let (now, elapsed) = (broker.clock.now_ms(), broker.clock.monotonic_ms());
        let abort = elapsed - last_abort >= cfg.abort_timed_out_transaction_cleanup_interval_ms;
        if abort {
            last_abort = elapsed;
        }
        let expire = elapsed - last_expiry >= cfg.remove_expired_transaction_cleanup_interval_ms;
        if expire {
            last_expiry = elapsed;
        }
        let b = Arc::clone(&broker);
        let _ = crate::server::background::spawn_blocking(move || {
            b.transaction_timers(now, abort, expire)
        })
        .await;
    }
}

/// A replicated leader's ISR changes (`Broker::update_isrs`): every half
/// replica.lag.time.max.ms, as Kafka's isr-expiration task, and at once when a follower caught
/// up. Nothing outside a quorum.
async fn isr_updates(broker: Arc<Broker>, cancel: CancellationToken) {
    let Some(replicas) = broker.replicas.clone() else {
        return;
    };
    let every = Duration::from_millis((replicas.settings.lag_time_max_ms / 2).max(1) as u64);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
            _ = replicas.isr_check.notified() => {}
        }
        let b = Arc::clone(&broker);
        let _ = crate::server::background::spawn_blocking(move || b.update_isrs()).await;
    }
}

/// The coordinator shards elections scheduled (`ReplicaManager::run_coordinator_loads`), loaded
/// as soon as they are scheduled, off the metadata path (Kafka's coordinator event threads).
/// Nothing outside a quorum: there every shard is loaded at start-up.
async fn coordinator_loads(broker: Arc<Broker>, cancel: CancellationToken) {
    let Some(replicas) = broker.replicas.clone() else {
        return;
    };
    loop {
        // The start-up image's elections ran before this task: `Notify` kept their wake-up.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = replicas.loads_scheduled.notified() => {}
        }
        let (b, r) = (Arc::clone(&broker), Arc::clone(&replicas));
        let _ =
            crate::server::background::spawn_blocking(move || r.run_coordinator_loads(&b.catalog))
                .await;
    }
}

/// Where other nodes append to the metadata log (a quorum), replays and publishes what they
/// commit as it commits; nothing to do where this process is the only writer.
async fn follow_metadata(broker: Arc<Broker>, cancel: CancellationToken) {
    let Some(mut committed) = broker.catalog.committed() else {
        return;
    };
    // What was committed between the catalog's opening and this subscription is replayed
    // first; from then on, each move of the committed offset.
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = committed.changed() => if changed.is_err() { return },
            }
        }
        let b = Arc::clone(&broker);
        let caught_up =
            crate::server::background::spawn_blocking(move || b.catalog.catch_up()).await;
        if let Ok(Err(e)) = caught_up {
            tracing::error!(error = %e, "could not replay the committed metadata");
        }
    }
}

async fn housekeeping(broker: Arc<Broker>, cancel: CancellationToken) {
    let retention_every = broker.config.log_retention_check_interval_ms as i64;
    // The check's interval on the monotonic reading (Kafka's scheduler), retention itself
    // against the wall reading (record timestamps).
    let mut last_retention = broker.clock.monotonic_ms();
    let mut tick = tokio::time::interval(HOUSEKEEPING_TICK);
    let mut advanced = broker.clock.subscribe();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            _ = advanced.changed() => {}
        }
        let (now, elapsed) = (broker.clock.now_ms(), broker.clock.monotonic_ms());
        let retention = elapsed - last_retention >= retention_every;
        if retention {
            last_retention = elapsed;
        }
        let b = Arc::clone(&broker);
        let _ =
            crate::server::background::spawn_blocking(move || b.housekeeping(now, retention)).await;
    }
}
