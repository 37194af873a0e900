//! The shared state of a running broker and its life cycle on disk: the data-directory lock, the
//! clean-shutdown marker, `meta.properties`, and opening and closing every log.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::config::dynamic::DynamicBrokerConfigs;
use crate::config::Config;
use crate::group::coordinator::GroupCoordinator;
use crate::metadata::alter_partition::{AlterPartitionRequest, AlterPartitionResponse};
use crate::metadata::broker_heartbeat::{
    BrokerHeartbeat, BrokerHeartbeatManager, BrokerHeartbeatTracker, HeartbeatReply,
};
use crate::metadata::controller::{ControllerDuties, ControllerRequest, ControllerResponse};
use crate::metadata::records::{
    BrokerEndpoint, BrokerFeature, RegisterBrokerRecord, METADATA_VERSION, METADATA_VERSION_FEATURE,
};
use crate::metadata::topic::kafka_uuid_string;
use crate::metadata::{write_atomically, Catalog};
use crate::protocol::errors;
use crate::protocol::fetch_session::FetchManager;
use crate::server::clock::Clock;
use crate::server::purgatory::Purgatory;
use crate::server::replica_manager::ReplicaManager;
use crate::txn::coordinator::{TransactionCoordinator, TxnContext};
use crate::txn::markers::{LogMarkerWriter, TxnMarkerWriter};
use crate::txn::producer_ids::{ProducerIdAllocator, ProducerIdError};

/// Kafka's name for the marker a cleanly stopped broker leaves in each log directory.
const CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";
const LOCK_FILE: &str = ".lock";

/// How clients reach this node on one listener (Metadata's broker list on that listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener's name (PLAINTEXT, SASL_SSL, ...).
    pub listener: String,
    pub security_protocol: crate::config::SecurityProtocol,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// A PLAINTEXT endpoint (tests and fuzzing).
    pub fn plaintext(host: &str, port: u16) -> Endpoint {
        Endpoint {
            listener: "PLAINTEXT".into(),
            security_protocol: crate::config::SecurityProtocol::Plaintext,
            host: host.to_string(),
            port,
        }
    }
}

pub struct Broker {
    pub config: Config,
    /// The first of the brokers this process serves (node.id); the others follow it.
    pub node_id: i32,
    pub cluster_id: String,
    /// How clients reach each broker this process serves, by node id, one endpoint per
    /// listener (registered in the metadata image at start-up, which is what requests read).
    pub endpoints: Vec<(i32, Vec<Endpoint>)>,
    pub catalog: Catalog,
    /// Broker configs changed at run time (kafka-configs --entity-type brokers --alter).
    pub dynamic: DynamicBrokerConfigs,
    pub producer_ids: ProducerIdAllocator,
    /// In a quorum of processes, the block of producer ids this broker hands out (next, end),
    /// reserved cluster-wide by a ProducerIdsRecord (Kafka's AllocateProducerIds): ids are
    /// unique across the processes, and every broker knows which were issued.
    quorum_producer_ids: Option<parking_lot::Mutex<(i64, i64)>>,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<TransactionCoordinator>,
    /// Parked requests by the partition they wait on; appends wake only that partition's.
    pub purgatory: Arc<Purgatory>,
    /// KIP-227 incremental fetch sessions.
    pub fetch_sessions: FetchManager,
    /// KIP-932 share-partitions and share sessions.
    pub shares: crate::share::manager::SharePartitionManager,
    /// What request handlers, coordinators and their timers take `now` from (tests move it).
    pub clock: Arc<Clock>,
    /// In a quorum of processes, which partitions this broker leads or follows, and what its
    /// replica fetchers fetch (see `server::replica_manager`).
    pub replicas: Option<Arc<ReplicaManager>>,
    /// The test control plane's state (fault rules, the request journal); idle unless the
    /// admin listener is on.
    pub control: crate::admin::Control,
    /// Counters for `GET /metrics` (see `metrics`).
    pub metrics: crate::metrics::BrokerMetrics,
    /// Produce and fetch byte-rate quotas and who is over them.
    pub client_quotas: crate::server::client_quotas::ClientQuotaManager,
    /// In a quorum of processes, when the active controller last heard from each broker (used
    /// while this node leads; see `metadata::broker_heartbeat`).
    liveness: Option<parking_lot::Mutex<BrokerHeartbeatManager>>,
    /// `liveness`'s tracker, which a heartbeat reaches as it arrives, without waiting for the
    /// manager.
    heartbeat_tracker: Option<Arc<BrokerHeartbeatTracker>>,
    /// The data directory's lock, held for as long as the broker is open.
    lock: File,
}

/// The wall clock, for the log layer and start-up; everything that serves requests reads the
/// broker's `clock` instead.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Broker {
    /// Opens the data directory: takes its lock, recovers every log (fully verified when the last
    /// run did not shut down cleanly), and loads the catalog.
    pub fn open(config: Config, endpoint: Endpoint) -> io::Result<Broker> {
        let storage = Arc::new(crate::log::storage::FileStorage);
        Self::open_on(storage, config, vec![vec![endpoint]])
    }

    /// `open` for one broker per list of endpoints (node ids from node.id on), with every
    /// segment file going through `storage` (tests inject faults there).
    pub fn open_on(
        storage: Arc<dyn crate::log::storage::Storage>,
        config: Config,
        endpoints: Vec<Vec<Endpoint>>,
    ) -> io::Result<Broker> {
        let dir = config.data_dir.clone();
        let control = crate::admin::Control::new(&config);
        // With the control plane on, the logs' writes and fsyncs meet its storage rules (a slow
        // disk armed in a running process); without it they go straight to `storage`.
        let storage: Arc<dyn crate::log::storage::Storage> = match &config.admin_listen {
            Some(_) => {
                let rules = Arc::clone(&control.faults) as _;
                Arc::new(crate::log::storage::FaultyStorage::ruled(storage, rules))
            }
            None => storage,
        };
        fs::create_dir_all(&dir)?;
        let lock = File::create(dir.join(LOCK_FILE))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is in use by another process",
                    dir.display()
                ),
            )
        })?;
        let marker = dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        if clean {
            fs::remove_file(&marker)?;
        } else if fs::read_dir(&dir)?.count() > 1 {
            tracing::warn!(dir = %dir.display(), "previous run did not shut down cleanly: verifying logs");
        }
        // A quorum's processes share one cluster id, derived from the voters (Kafka formats
        // each node's storage with the same id).
        let shared_id = config.quorum.as_ref().map(quorum_cluster_id);
        let cluster_id = load_or_create_meta(&dir, config.node_id, shared_id)?;
        let dynamic = DynamicBrokerConfigs::open(&dir, &config)?;
        let log_config = dynamic.log_config(&config);
        let catalog = match &config.quorum {
            None => Catalog::open_node(storage, &dir, config.node_id, log_config, clean, now_ms())?,
            Some(q) => {
                let log = open_quorum(&storage, &dir, &config, q, clean)?;
                Catalog::open_with_log(
                    storage,
                    log,
                    &dir,
                    config.node_id,
                    log_config,
                    clean,
                    now_ms(),
                )?
                // A controller-only process holds no partition's data.
                .with_data_brokers(q.roles.is_broker().then_some(config.node_id))
            }
        }
        .with_default_replication_factor(config.default_replication_factor)
        .with_internal_replication_factors(
            config.offsets_topic_replication_factor,
            config.transaction_state_log_replication_factor,
        );
        // Copies of replicas removed while this process was stopped (its metadata log has
        // the reassignment's completion, its data directory still the records).
        catalog.delete_unhosted_copies();
        let endpoints: Vec<(i32, Vec<Endpoint>)> = (config.node_id..).zip(endpoints).collect();
        let rack = config.broker_rack.clone();
        let registrations: Vec<_> = endpoints.iter().map(|e| registration(e, &rack)).collect();
        match (&config.quorum, registrations.first()) {
            // A controller-only process is no broker: it never registers.
            (Some(q), _) if !q.roles.is_broker() => {}
            // One broker per process: fenced until the controller hears its first heartbeat.
            (Some(_), Some(r)) => catalog.register_fenced(r.clone(), &config.elections)?,
            _ => catalog.register_brokers(registrations, &config.elections)?,
        }
        let max_pid = catalog
            .partitions()
            .iter()
            .filter_map(|p| p.with_log(|l| l.producers().max_producer_id()))
            .max()
            .unwrap_or(-1);
        let producer_ids = ProducerIdAllocator::open(&dir, max_pid + 1)?;
        let groups = Arc::new(GroupCoordinator::new(config.group.clone()));
        let txns = Arc::new(TransactionCoordinator::new(config.txn.clone()));
        // Before the loads: the loaded members' sessions start on its monotonic reading.
        let clock = Arc::new(match config.manual_clock {
            true => Clock::manual(),
            false => Clock::system(),
        });
        if config.quorum.is_some() {
            // In a cluster of processes a shard is loaded where its partition is led, as the
            // replica manager elects this broker (below), and unloaded when it moves.
            groups.follow_leadership();
            txns.follow_leadership();
        } else {
            let loaded = groups.load(&catalog, clock.now())?;
            if loaded > 0 {
                tracing::info!(records = loaded, "loaded committed offsets and groups");
            }
            let loaded = txns.load(&catalog)?;
            if loaded > 0 {
                tracing::info!(records = loaded, "loaded transaction state");
            }
        }
        catalog.subscribe(Arc::clone(&groups) as _);
        let purgatory = Arc::new(Purgatory::new());
        catalog.subscribe(Arc::clone(&purgatory) as _);
        // Built now so that an inter-broker setting that does not work stops start-up.
        let channel = crate::security::channel::ClientChannel::inter_broker(&config)
            .map_err(io::Error::other)?;
        let replicas = config.quorum.as_ref().map(|q| {
            let replicas = Arc::new(ReplicaManager::new(
                config.node_id,
                q.replication.clone(),
                channel,
                Arc::clone(&clock),
                Arc::clone(&purgatory),
            ));
            replicas.add_coordinator(Arc::clone(&groups) as _);
            replicas.add_coordinator(Arc::clone(&txns) as _);
            // What was committed before the restart, before anything leads or follows.
            catalog.restore_high_watermarks();
            replicas.apply_image(&catalog, &catalog.image());
            catalog.subscribe(Arc::clone(&replicas) as _);
            replicas
        });
        let shares = crate::share::manager::SharePartitionManager::new(
            config.group.share_partition,
            Arc::clone(&purgatory),
            crate::share::coordinator::ShareCoordinator::new(config.share_state_partitions),
        );
        let loaded = shares.load(&catalog)?;
        if loaded > 0 {
            tracing::info!(records = loaded, "loaded share-partition state");
        }
        let client_quotas = crate::server::client_quotas::ClientQuotaManager::new(
            config.quota_window_size_seconds,
            config.quota_window_num,
        );
        let quorum_producer_ids = config
            .quorum
            .as_ref()
            .map(|_| parking_lot::Mutex::new((0, 0)));
        let liveness = (config.quorum.as_ref())
            .map(|q| BrokerHeartbeatManager::new(q.broker_session_timeout_ms));
        let heartbeat_tracker = liveness.as_ref().map(BrokerHeartbeatManager::tracker);
        let liveness = liveness.map(parking_lot::Mutex::new);
        Ok(Broker {
            groups,
            txns,
            node_id: config.node_id,
            fetch_sessions: FetchManager::new(config.max_incremental_fetch_session_cache_slots),
            shares,
            config,
            cluster_id,
            endpoints,
            catalog,
            dynamic,
            producer_ids,
            quorum_producer_ids,
            purgatory,
            clock,
            replicas,
            control,
            metrics: Default::default(),
            client_quotas,
            liveness,
            heartbeat_tracker,
            lock,
        })
    }

    /// Flushes and closes every log, then leaves the clean-shutdown marker.
    pub fn close(&self) -> io::Result<()> {
        let now = now_ms();
        let mut failed = false;
        for p in self.catalog.partitions() {
            if let Err(e) = p.with_log(|l| l.close(now)) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "could not close log");
                failed = true;
            }
        }
        if let Err(e) = self.catalog.close_metadata_log(now) {
            tracing::error!(error = %e, "could not close the metadata log");
            failed = true;
        }
        if !failed {
            self.catalog.checkpoint_recovery_points()?;
            if self.replicas.is_some() {
                self.catalog.checkpoint_high_watermarks()?;
            }
            write_atomically(&self.config.data_dir.join(CLEAN_SHUTDOWN), "")?;
        }
        Ok(())
    }

    /// Lets go of the data directory's lock after `close`, for a broker that starts on the
    /// directory in this process while something may still hold this one (a restore).
    pub fn release_data_dir(&self) {
        if let Err(e) = self.lock.unlock() {
            tracing::warn!(error = %e, "could not unlock the data directory");
        }
    }

    /// Background duties: time-based flush, retention and the recovery point checkpoint. Returns
    /// how many segments were deleted.
    pub fn housekeeping(&self, now: i64, retention: bool) -> usize {
        let mut deleted = 0;
        for p in self.catalog.partitions() {
            if let Err(e) = p.flush_in_background(now) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
            if retention {
                match p.with_log(|l| l.apply_retention(now)) {
                    Ok(n) => deleted += n,
                    Err(e) => {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                    }
                }
            }
        }
        if let Err(e) = self.catalog.checkpoint_recovery_points() {
            tracing::error!(error = %e, "could not write the recovery point checkpoint");
        }
        // Kafka every replica.high.watermark.checkpoint.interval.ms (5 s); here each tick
        // that finds one moved.
        if self.replicas.is_some() {
            if let Err(e) = self.catalog.checkpoint_high_watermarks() {
                tracing::error!(error = %e, "could not write the high watermark checkpoint");
            }
        }
        deleted
    }
}

impl Broker {
    /// Forgets idle idempotent producers in every log (producer.id.expiration.ms); returns how
    /// many were removed.
    pub fn expire_producers(&self, now: i64) -> usize {
        let expiration_ms = self.config.producer_id_expiration_ms;
        self.catalog
            .partitions()
            .iter()
            .map(|p| p.with_log(|l| l.remove_expired_producers(now, expiration_ms)))
            .sum()
    }

    /// One pass of log compaction over every compacted log that is due (see `log::cleaner`);
    /// returns how many records were removed. The rewriting runs without the partition lock.
    pub fn clean_logs(&self, now: i64) -> u64 {
        let mut removed = 0;
        for p in self.catalog.partitions() {
            let Some(plan) = p.with_log(|l| l.clean_plan(now)) else {
                continue;
            };
            let dedupe_buffer_size = self.config.log_cleaner_dedupe_buffer_size;
            let cleaned = match crate::log::cleaner::clean(&plan, dedupe_buffer_size, now, &*p) {
                Ok(c) => c,
                Err(crate::log::cleaner::CleanError::Aborted) => {
                    tracing::info!(topic = %p.topic, partition = p.index, "log cleaning aborted: the topic was deleted");
                    continue;
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log cleaning failed");
                    continue;
                }
            };
            let records: u64 = cleaned.iter().map(|c| c.records_removed).sum();
            match p.with_log(|l| l.install_cleaned(cleaned)) {
                Ok(segments) => {
                    removed += records;
                    tracing::info!(topic = %p.topic, partition = p.index, segments, records, "log cleaned");
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "swapping cleaned segments failed")
                }
            }
        }
        removed
    }
}

impl Broker {
    /// The producer ids handed out so far (`0..` this): a Produce with an id past it is
    /// UNKNOWN_PRODUCER_ID (see `AppendOrigin::Client`).
    pub fn producer_ids_issued(&self) -> i64 {
        match &self.quorum_producer_ids {
            Some(_) => self.catalog.image().next_producer_id.max(0),
            None => self.producer_ids.issued_end(),
        }
    }

    /// A new producer id for InitProducerId, or the error Kafka answers when none can be had.
    pub fn next_producer_id(&self) -> Result<i64, i16> {
        if let Some(block) = &self.quorum_producer_ids {
            let mut block = block.lock();
            if block.0 >= block.1 {
                const BLOCK: i64 = 1000;
                let node = self.node_id;
                let reserved = self.catalog.change_image(|image| {
                    let start = image.next_producer_id.max(0);
                    let record = crate::metadata::records::ProducerIdsRecord {
                        broker_id: node,
                        broker_epoch: image.brokers.get(&node).map_or(-1, |b| b.epoch),
                        next_producer_id: start + BLOCK,
                    };
                    (
                        vec![crate::metadata::records::MetadataRecord::ProducerIds(
                            record,
                        )],
                        start,
                    )
                });
                let start = reserved.map_err(|e| {
                    tracing::error!(error = %e, "cannot reserve producer ids from the quorum");
                    crate::protocol::errors::metadata_write_error_code(
                        &e,
                        crate::protocol::errors::UNKNOWN_SERVER_ERROR,
                    )
                })?;
                *block = (start, start + BLOCK);
            }
            block.0 += 1;
            return Ok(block.0 - 1);
        }
        self.producer_ids.next_id().map_err(|e| {
            tracing::error!(error = %e, "cannot hand out a producer id");
            match e {
                ProducerIdError::Storage(_) => crate::protocol::errors::KAFKA_STORAGE_ERROR,
                // Kafka's controller answers exhaustion with UnknownServerException.
                ProducerIdError::Exhausted => crate::protocol::errors::UNKNOWN_SERVER_ERROR,
            }
        })
    }

    /// DeleteGroups of one group: a share group's share-partition state goes with it (Kafka's
    /// GroupCoordinatorService deletes it through the persister before the group).
    pub fn delete_group(&self, group_id: &str, now: i64) -> i16 {
        let share = self
            .groups
            .with_share_group(group_id, |g| g.members.is_empty());
        if share == Some(true) {
            if let Err(code) = self.shares.group_deleted(&self.catalog, group_id, now) {
                return code;
            }
        }
        self.groups.delete_group(&self.catalog, group_id, now)
    }

    /// The transaction markers this broker writes: data partitions through their logs,
    /// `__consumer_offsets` through the group coordinator; in a cluster of processes only those
    /// it leads (the WriteTxnMarkers handler's).
    pub fn marker_writer(&self) -> LogMarkerWriter<'_> {
        LogMarkerWriter {
            catalog: &self.catalog,
            groups: &self.groups,
            purgatory: &self.purgatory,
            cluster: self.replicas.as_ref().map(|_| self),
            forward: false,
        }
    }

    /// One round of the transaction coordinator's timers (see `transaction_timers` in lib.rs).
    pub fn transaction_timers(&self, now: i64, abort_timed_out: bool, expire_ids: bool) {
        self.with_txn_context(|ctx| {
            self.txns.complete_prepared(ctx, now);
            if abort_timed_out {
                self.txns.abort_timed_out(ctx, now);
            }
        });
        if expire_ids {
            let removed = self.txns.expire_transactional_ids(&self.catalog, now);
            if removed > 0 {
                tracing::info!(removed, "expired idle transactional ids");
            }
        }
    }

    /// Runs `f` with what the transaction coordinator needs from this broker.
    pub fn with_txn_context<R>(&self, f: impl FnOnce(&TxnContext<'_>) -> R) -> R {
        // The coordinator's markers reach partitions led elsewhere too: its callers run on
        // blocking threads (EndTxn's and InitProducerId's off the request threads, the timers').
        let markers = LogMarkerWriter {
            forward: true,
            ..self.marker_writer()
        };
        let new_producer_id = || self.next_producer_id();
        f(&TxnContext {
            catalog: &self.catalog,
            markers: &markers as &dyn TxnMarkerWriter,
            new_producer_id: &new_producer_id,
        })
    }
}

impl Broker {
    /// Broker `id` of this process has stopped: fenced in the metadata image, out of every ISR,
    /// its partitions led by other in-sync replicas (see `metadata::election`); the purgatory
    /// hears of the leaders that moved.
    pub fn fence_broker(&self, id: i32) -> io::Result<()> {
        self.catalog.fence_broker(id, &self.config.elections)
    }

    /// Broker `id` of this process has started again: registered, unfenced, back in the ISRs,
    /// preferred leaders restored under auto.leader.rebalance.enable.
    pub fn restart_broker(&self, id: i32) -> io::Result<()> {
        self.catalog.restart_broker(id, &self.config.elections)
    }
}

/// What a broker learned from its heartbeat (`Broker::send_heartbeat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// This node's image has the broker unfenced.
    pub unfenced: bool,
    /// The controller granted the controlled shutdown asked for.
    pub should_shut_down: bool,
}

/// Broker liveness across processes (a quorum; see `metadata::broker_heartbeat`).
impl Broker {
    /// Sends this broker's heartbeat to the active controller (every
    /// broker.heartbeat.interval.ms), asking for a controlled shutdown when `want_shut_down`; a
    /// refusal or a controller out of reach is logged, and the next heartbeat tries again (the
    /// controller fences this broker if none arrives in time).
    pub fn send_heartbeat(&self, want_shut_down: bool) -> HeartbeatOutcome {
        let image = self.catalog.image();
        let Some(reg) = image.brokers.get(&self.node_id) else {
            return HeartbeatOutcome::default();
        };
        let heartbeat = BrokerHeartbeat {
            broker_id: self.node_id,
            broker_epoch: reg.epoch,
            current_metadata_offset: image.provenance.last_offset,
            want_shut_down,
        };
        let request = ControllerRequest::BrokerHeartbeat(heartbeat);
        let mut should_shut_down = false;
        match self.catalog.send_to_controller(request) {
            Ok(ControllerResponse::BrokerHeartbeat(r)) if r.error_code == errors::NONE => {
                if !r.is_fenced && reg.fenced {
                    // Unfenced just now: replay that here at once, not on the next change.
                    if let Err(e) = self.catalog.catch_up() {
                        tracing::warn!(error = %e, "could not replay the committed metadata");
                    }
                }
                if r.is_fenced && !r.should_shut_down {
                    tracing::info!(
                        broker = self.node_id,
                        caught_up = r.is_caught_up,
                        "fenced by the controller"
                    );
                }
                if r.in_controlled_shutdown {
                    tracing::info!(
                        broker = self.node_id,
                        "in controlled shutdown: waiting for the controller to move its leaders"
                    );
                }
                should_shut_down = r.should_shut_down;
            }
            Ok(r) => tracing::debug!(
                broker = self.node_id,
                error = r.error_code(),
                "heartbeat refused"
            ),
            Err(e) => tracing::debug!(broker = self.node_id, error = %e, "heartbeat not answered"),
        }
        let image = self.catalog.image();
        HeartbeatOutcome {
            unfenced: image.brokers.get(&self.node_id).is_some_and(|b| !b.fenced),
            should_shut_down,
        }
    }

    /// While this node is the active controller, fences the brokers whose session expired by
    /// now; returns which. Sessions are measured on the monotonic reading of the clock, as
    /// Kafka's BrokerHeartbeatTracker measures them on `time.nanoseconds()`: a step of the wall
    /// clock (NTP, an operator) neither fences every broker nor keeps a silent one in.
    pub fn fence_expired_brokers(&self) -> Vec<i32> {
        let Some(liveness) = &self.liveness else {
            return vec![];
        };
        let now = self.clock.monotonic_ms();
        self.fence_expired_at(&mut liveness.lock(), now)
    }

    /// `fence_expired_brokers` at `now`, its caller holding the heartbeat manager: the manager
    /// follows this node's leadership (a new term starts every session afresh), then every
    /// broker whose session passed by `now` is fenced. Each of the controller's liveness events
    /// (this check, a heartbeat) runs whole under that lock, one at a time, as Kafka's
    /// controller runs its events on one thread: a heartbeat answered meanwhile cannot renew a
    /// session this check already found expired.
    fn fence_expired_at(&self, liveness: &mut BrokerHeartbeatManager, now: i64) -> Vec<i32> {
        let state = self.catalog.quorum_state();
        match state.filter(|s| s.leader_id == self.node_id) {
            Some(s) => liveness.activate(s.leader_epoch),
            None => liveness.deactivate(),
        }
        let expired = liveness.expired(&self.catalog.image(), now);
        let mut fenced = Vec::new();
        for (id, epoch) in expired {
            match self
                .catalog
                .fence_expired_broker(id, epoch, &self.config.elections)
            {
                Ok(true) => {
                    tracing::warn!(
                        broker = id,
                        "fenced: no heartbeat within broker.session.timeout.ms"
                    );
                    fenced.push(id);
                }
                Ok(false) => {}
                Err(e) => tracing::error!(broker = id, error = %e, "could not fence a broker"),
            }
        }
        fenced
    }
}

impl Broker {
    /// The ISR changes this broker's replicated leaders need (a follower not caught up for
    /// replica.lag.time.max.ms leaves, one caught up joins), each sent to the active controller
    /// as an AlterPartition and its answer given to the partition (Kafka's isr-expiration task
    /// and Partition.maybeExpandIsr; one change in flight per partition). Returns how many
    /// changes were sent.
    pub fn update_isrs(&self) -> usize {
        let mut sent = 0;
        for p in self.catalog.partitions() {
            let image = self.catalog.image();
            let eligible = |id: i32| {
                (image.brokers.get(&id)).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
            };
            let Some((leader_epoch, partition_epoch, isr)) =
                p.propose_isr_change(self.clock.now_ms(), &eligible)
            else {
                continue;
            };
            let Some(topic) = image.topics.get_by_name(&p.topic) else {
                continue;
            };
            let epoch_of = |id: i32| image.brokers.get(&id).map_or(-1, |b| b.epoch);
            let request = AlterPartitionRequest {
                broker_id: self.node_id,
                broker_epoch: epoch_of(self.node_id),
                topic_id: topic.id,
                partition: p.index,
                leader_epoch,
                partition_epoch,
                new_isr: isr.iter().map(|&id| (id, epoch_of(id))).collect(),
            };
            tracing::info!(topic = %p.topic, partition = p.index, isr = ?isr, "asking the controller to change the ISR");
            sent += 1;
            let answer = match self
                .catalog
                .send_to_controller(ControllerRequest::AlterPartition(request))
            {
                Ok(ControllerResponse::AlterPartition(a)) => a,
                Ok(other) => AlterPartitionResponse::refused(other.error_code()),
                Err(e) => {
                    tracing::debug!(error = %e, "AlterPartition not answered");
                    AlterPartitionResponse::refused(errors::REQUEST_TIMED_OUT)
                }
            };
            if answer.error_code != errors::NONE {
                tracing::info!(topic = %p.topic, partition = p.index, error = answer.error_code, "the controller refused the ISR change");
            }
            p.on_alter_partition_answer(
                answer.error_code,
                answer.leader_epoch,
                answer.isr,
                answer.partition_epoch,
            );
        }
        sent
    }

    /// The active controller's answer to a heartbeat; the broker's session starts again. A
    /// broker that enters controlled shutdown does so at the end of the metadata log as it is
    /// once its leaderships moved (Kafka: the heartbeat's batch end offset).
    ///
    /// The heartbeat counts from its arrival, recorded before it waits for its turn
    /// (`BrokerHeartbeatTracker`, as Kafka 4.4's controller records it on the request handler
    /// thread): another heartbeat's or the session check's turn may last as long as a commit on
    /// a slow disk, and the check that follows must not end the sessions of the brokers whose
    /// heartbeats arrived meanwhile.
    ///
    /// The sessions that passed by the heartbeat's arrival end first (`fence_expired_at`), the
    /// heartbeating broker's too when its own had ended before the heartbeat arrived (it then
    /// lets it in again once caught up): Kafka's controller runs its fencing check, due at a
    /// session's end, before any heartbeat queued behind it (KafkaEventQueue takes a deferred
    /// event whose time has come first). A jump of this node's clock past the session timeout
    /// so fences every broker it had not heard from within the jump, whichever comes first,
    /// this or the periodic check the jump wakes. This
    /// also makes the manager follow a new term at once, so that the heartbeats this node
    /// answers as the new controller count from the first (they were dropped until the
    /// periodic check noticed the term, and a jump before that check fenced no one).
    fn answer_heartbeat(&self, heartbeat: BrokerHeartbeat) -> HeartbeatReply {
        let Some(liveness) = &self.liveness else {
            return HeartbeatReply::error(errors::NOT_CONTROLLER);
        };
        // The session's clock (see `fence_expired_brokers`), read as the heartbeat arrives.
        let now = self.clock.monotonic_ms();
        if let Some(tracker) = &self.heartbeat_tracker {
            tracker.arrived(heartbeat.broker_id, heartbeat.broker_epoch, now);
        }
        let mut liveness = liveness.lock();
        self.fence_expired_at(&mut liveness, now);
        let (id, epoch) = (heartbeat.broker_id, heartbeat.broker_epoch);
        let progress = |image: &_| liveness.shutdown_progress(image, id, epoch);
        let reply = self
            .catalog
            .broker_heartbeat(&heartbeat, &self.config.elections, progress)
            .unwrap_or_else(|e| {
                tracing::warn!(broker = id, error = %e, "could not answer a heartbeat");
                HeartbeatReply::error(controller_error(&e))
            });
        let end = self.catalog.image().provenance.last_offset;
        liveness.answered(&heartbeat, &reply, now, end);
        if reply.error_code == errors::NONE && reply.should_shut_down {
            tracing::info!(broker = id, "controlled shutdown granted");
        }
        reply
    }
}

impl ControllerDuties for Broker {
    fn handle(&self, request: ControllerRequest) -> ControllerResponse {
        match request {
            ControllerRequest::BrokerHeartbeat(hb) => {
                ControllerResponse::BrokerHeartbeat(self.answer_heartbeat(hb))
            }
            ControllerRequest::AlterPartition(r) => {
                match self.catalog.alter_partition(&r, &self.config.elections) {
                    Ok(answer) => ControllerResponse::AlterPartition(answer),
                    Err(e) => {
                        tracing::warn!(broker = r.broker_id, error = %e, "could not alter a partition");
                        ControllerResponse::Error(controller_error(&e))
                    }
                }
            }
        }
    }
}

/// The error code of a request to the active controller that failed: NOT_CONTROLLER when this
/// node stopped leading the quorum meanwhile (`metadata::quorum::check_quorum`), so that the
/// broker asks the next leader, as Kafka's brokers do on NOT_CONTROLLER.
fn controller_error(e: &io::Error) -> i16 {
    match crate::metadata::is_not_controller(e) {
        true => errors::NOT_CONTROLLER,
        false => errors::UNKNOWN_SERVER_ERROR,
    }
}

/// The RegisterBrokerRecord a broker of this process registers with (its epoch is set when
/// committed). One endpoint per listener, broker.rack, unfenced at once (in a quorum of
/// processes, fenced until its first heartbeat: `Catalog::register_fenced`).
fn registration(
    (id, endpoints): &(i32, Vec<Endpoint>),
    rack: &Option<String>,
) -> RegisterBrokerRecord {
    RegisterBrokerRecord {
        broker_id: *id,
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::new_v4(),
        broker_epoch: 0,
        endpoints: endpoints
            .iter()
            .map(|e| BrokerEndpoint {
                name: e.listener.clone(),
                host: e.host.clone(),
                port: e.port,
                security_protocol: e.security_protocol.id(),
            })
            .collect(),
        features: vec![BrokerFeature {
            name: METADATA_VERSION_FEATURE.into(),
            min_supported_version: METADATA_VERSION,
            max_supported_version: METADATA_VERSION,
        }],
        rack: rack.clone(),
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: vec![],
    }
}

/// Reads `meta.properties` for the cluster id, or writes a new one (Kafka's format).
/// The cluster id of a quorum: from its voters, so that every process derives the same one.
fn quorum_cluster_id(q: &crate::config::QuorumSettings) -> String {
    use sha2::Digest;
    let text: Vec<String> = q
        .voters
        .iter()
        .map(|(id, (host, port))| format!("{id}@{host}:{port}"))
        .collect();
    let digest = sha2::Sha256::digest(text.join(",").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    kafka_uuid_string(Uuid::from_bytes(bytes))
}

/// Starts this node's part in the metadata quorum: a voter (its log in the data directory, its
/// RPCs on the controller listener; see `RaftMetadataLog::start_tcp`), or for a broker-only
/// process an observer fetching from the voters (`quorum::observer`). Returns once it knows a
/// leader.
fn open_quorum(
    storage: &Arc<dyn crate::log::storage::Storage>,
    dir: &Path,
    config: &Config,
    q: &crate::config::QuorumSettings,
    clean: bool,
) -> io::Result<Box<dyn crate::metadata::metadata_log::MetadataLog>> {
    use crate::metadata::quorum::observer::ObserverMetadataLog;
    use crate::metadata::quorum::{
        log_store::QuorumLogStore, QuorumNode, RaftMetadataLog, TcpVoter,
    };
    let node_id = config.node_id;
    let security = quorum_security(config, q)?;
    let voters = q
        .voters
        .iter()
        .map(|(&id, (host, port))| {
            let node = QuorumNode {
                host: host.clone(),
                port: *port,
            };
            (id as u64, node)
        })
        .collect();
    let Some((host, port)) = &q.listen else {
        tracing::info!(node = node_id, "observing the metadata quorum");
        let log = ObserverMetadataLog::start(node_id, voters, security.channel)
            .map_err(io::Error::other)?;
        tracing::info!(node = node_id, "the metadata quorum has a leader");
        return Ok(Box::new(log));
    };
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let listener = std::net::TcpListener::bind((host, *port))
        .map_err(|e| crate::server::cannot_listen(format!("{host}:{port}"), e))?;
    let settings = q.metadata_log.clone();
    let store = QuorumLogStore::open_with(Arc::clone(storage), dir, settings, clean, now_ms())
        .map_err(io::Error::other)?;
    tracing::info!(node = node_id, listen = %format!("{host}:{port}"), "joining the metadata quorum");
    let fetch_timeout = std::time::Duration::from_millis(q.fetch_timeout_ms);
    let log = RaftMetadataLog::start_tcp(TcpVoter {
        id: node_id as u64,
        store,
        listener,
        voters,
        security,
        fetch_timeout,
    })
    .map_err(io::Error::other)?;
    tracing::info!(node = node_id, "the metadata quorum has a leader");
    Ok(Box::new(log))
}

/// How the quorum's connections are secured, from the controller listener's settings (see
/// `metadata::quorum::transport`): its client side for every process, its TLS side for a voter,
/// and the authorizer's check of callers.
fn quorum_security(
    config: &Config,
    q: &crate::config::QuorumSettings,
) -> io::Result<crate::metadata::quorum::transport::Security> {
    use crate::security::{channel::ClientChannel, tls::TlsSettings, ListenerSettings};
    let listener = &q.controller_listener;
    if listener.protocol.is_sasl() {
        return Err(io::Error::other(format!(
            "controller listener {}: {} is not served by gregor's quorum transport (its own framing carries no SASL exchange): use SSL (with listener.name.{}.ssl.client.auth=required for mutual TLS) or PLAINTEXT",
            listener.name,
            listener.protocol.name(),
            listener.name.to_ascii_lowercase()
        )));
    }
    // No SASL, so no mechanism.
    let channel =
        ClientChannel::build(listener, &config.explicit, "GSSAPI").map_err(io::Error::other)?;
    let tls = match q.roles.is_controller() && listener.protocol.is_tls() {
        true => {
            let s = ListenerSettings {
                listener,
                settings: &config.explicit,
            };
            Some(TlsSettings::build(&s).map_err(io::Error::other)?)
        }
        false => None,
    };
    Ok(crate::metadata::quorum::transport::Security {
        channel: Arc::new(channel),
        tls,
        authorizer: config.authorizer.clone(),
    })
}

fn load_or_create_meta(dir: &Path, node_id: i32, shared_id: Option<String>) -> io::Result<String> {
    let path = dir.join("meta.properties");
    if let Ok(text) = fs::read_to_string(&path) {
        if let Some((_, id)) = crate::config::parse_properties(&text)
            .into_iter()
            .find(|(k, _)| k == "cluster.id")
        {
            return Ok(id);
        }
    }
    let cluster_id = shared_id.unwrap_or_else(|| kafka_uuid_string(Uuid::new_v4()));
    let directory_id = kafka_uuid_string(Uuid::new_v4());
    let text = format!("#Written by gregor\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\ndirectory.id={directory_id}\n");
    write_atomically(&path, &text)?;
    Ok(cluster_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;
    use std::collections::BTreeMap;

    const SESSION_MS: i64 = 3000;

    /// A combined broker and controller, the single voter of its quorum, with a manual clock.
    fn single_voter(dir: &Path) -> Broker {
        let port = crate::testing::free_ports(1).unwrap()[0];
        let set: BTreeMap<String, String> = [
            ("process.roles", "broker,controller".to_string()),
            ("node.id", "1".into()),
            ("controller.quorum.voters", format!("1@127.0.0.1:{port}")),
            (
                "listeners",
                format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
            ),
            ("controller.listener.names", "CONTROLLER".into()),
            ("broker.session.timeout.ms", SESSION_MS.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let src = Sources {
            data_dir: Some(dir.to_path_buf()),
            ..Sources::default()
        };
        let mut config = Config::from_settings(set, &src).unwrap();
        config.manual_clock = true;
        let storage = Arc::new(crate::log::storage::FileStorage);
        let endpoint = Endpoint::plaintext("127.0.0.1", 9092);
        Broker::open_on(storage, config, vec![vec![endpoint]]).unwrap()
    }

    fn heartbeat(b: &Broker) -> HeartbeatReply {
        let epoch = b.catalog.image().brokers[&1].epoch;
        let hb = BrokerHeartbeat {
            broker_id: 1,
            broker_epoch: epoch,
            current_metadata_offset: b.catalog.image().provenance.last_offset,
            want_shut_down: false,
        };
        match b.handle(ControllerRequest::BrokerHeartbeat(hb)) {
            ControllerResponse::BrokerHeartbeat(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// The controller's broker sessions are durations on the monotonic reading: a step of the
    /// wall clock by more than broker.session.timeout.ms, either way, fences no one (Kafka's
    /// BrokerHeartbeatTracker uses `time.nanoseconds()`); the session still passes as time does.
    #[test]
    fn a_wall_clock_step_does_not_end_a_broker_session() {
        let dir = tempfile::tempdir().unwrap();
        let b = single_voter(dir.path());
        let reply = heartbeat(&b);
        assert!(!reply.is_fenced, "{reply:?}");
        assert!(b.fence_expired_brokers().is_empty());
        b.clock.step_wall(10 * SESSION_MS);
        assert!(b.fence_expired_brokers().is_empty(), "a step forward");
        assert!(!b.catalog.image().brokers[&1].fenced);
        b.clock.step_wall(-20 * SESSION_MS);
        assert!(b.fence_expired_brokers().is_empty(), "a step back");
        // A heartbeat after the step back starts the session again at the monotonic now.
        assert!(!heartbeat(&b).is_fenced);
        b.clock.advance(SESSION_MS);
        assert!(
            b.fence_expired_brokers().is_empty(),
            "the session is not over yet"
        );
        b.clock.advance(1);
        assert_eq!(b.fence_expired_brokers(), vec![1], "its session passed");
        assert!(b.catalog.image().brokers[&1].fenced);
    }

    /// A jump of the controller's clock past broker.session.timeout.ms (`advance`) right after
    /// the heartbeat that let the broker in: the check the jump wakes fences it, as Kafka's
    /// controller fences a broker not heard from within a gap of its clock. (The heartbeat
    /// used to be dropped until a first periodic check noticed this node leads, and that check
    /// started the session afresh at the jumped time: no one was fenced.)
    #[test]
    fn a_clock_jump_fences_a_broker_heard_from_only_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = single_voter(dir.path());
        assert!(!heartbeat(&b).is_fenced);
        b.clock.advance(SESSION_MS + 1);
        assert_eq!(b.fence_expired_brokers(), vec![1]);
        assert!(b.catalog.image().brokers[&1].fenced);
    }

    /// A heartbeat that arrives after the session passed (before any check ran) finds the
    /// broker fenced first, as Kafka's due fencing check runs before the heartbeat queued
    /// behind it; being caught up, the same heartbeat lets it in again. A heartbeat within the
    /// session fences nothing.
    #[test]
    fn a_heartbeat_after_the_session_passed_is_answered_after_the_fencing() {
        let dir = tempfile::tempdir().unwrap();
        let b = single_voter(dir.path());
        assert!(!heartbeat(&b).is_fenced);
        let fenced = |b: &Broker| {
            let end = b.catalog.image().provenance.last_offset;
            let fenced = b.catalog.image().brokers[&1].fenced;
            (end, fenced)
        };
        b.clock.advance(SESSION_MS);
        let (end, _) = fenced(&b);
        assert!(!heartbeat(&b).is_fenced);
        assert_eq!(
            fenced(&b),
            (end, false),
            "within the session: nothing written"
        );
        b.clock.advance(SESSION_MS + 1);
        let reply = heartbeat(&b);
        assert!(!reply.is_fenced && reply.is_caught_up, "{reply:?}");
        let (after, is_fenced) = fenced(&b);
        assert!(!is_fenced);
        assert!(after > end, "fenced and let in again: {end} -> {after}");
        assert!(
            b.fence_expired_brokers().is_empty(),
            "the heartbeat renewed it"
        );
    }
}
