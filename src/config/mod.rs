//! Typed broker configuration under Kafka's own names.
//!
//! Sources, later ones winning: Kafka's defaults, a `server.properties` file (`--config`),
//! `KAFKA_*` environment variables mapped as the apache/kafka container image maps them, repeated
//! `--override key=value`, and finally the dedicated flags (`--listen`, `--advertised-listener`,
//! `--data-dir`).
//!
//! Every name Kafka 4.1's broker accepts is known (`kafka_broker_configs.tsv`, generated from
//! Kafka's own ConfigDef by `scripts/gen-kafka-configs`); names gregor does not use are accepted
//! with a warning so that existing files keep working. Unknown names (typos) and values of the
//! wrong type fail start-up.

pub mod alter;
pub mod describe;
pub mod dynamic;
pub mod listeners;
pub mod properties;

pub use listeners::{ListenerConfig, SecurityProtocol};
pub use properties::parse_properties;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::log::{LogConfig, TimestampType};

const BROKER_CONFIGS: &str = include_str!("kafka_broker_configs.tsv");
const TOPIC_CONFIGS: &str = include_str!("kafka_topic_configs.tsv");

/// Prefixes under which Kafka accepts open-ended names (per-listener settings, plugin configs).
const OPEN_PREFIXES: &[&str] = &[
    "listener.name.",
    "rsm.config.",
    "rlmm.config.",
    "config.providers",
];

/// Names the apache/kafka image writes into server.properties from its own helper variables.
const IMAGE_EXTRAS: &[&str] = &[
    "jmx.port",
    "ssl.keystore.filename",
    "ssl.key.credentials",
    "ssl.keystore.credentials",
    "ssl.truststore.filename",
    "ssl.truststore.credentials",
];

/// Settings of the authorizer plugin Kafka loads (StandardAuthorizer's own), not in Kafka's
/// broker config table.
const AUTHORIZER_SETTINGS: &[&str] = &[
    crate::security::authorizer::SUPER_USERS,
    crate::security::authorizer::ALLOW_EVERYONE_IF_NO_ACL_FOUND,
];

/// `KAFKA_*` variables the image reads for the JVM, not as configuration.
const IMAGE_NON_CONFIG_ENV: &[&str] = &[
    "KAFKA_HOME",
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_JMX_HOSTNAME",
];

/// Broker settings gregor acts on; any other known name is accepted and reported as unused.
const USED: &[&str] = &[
    "advertised.listeners",
    "allow.everyone.if.no.acl.found",
    "authorizer.class.name",
    "auto.create.topics.enable",
    "auto.leader.rebalance.enable",
    "broker.heartbeat.interval.ms",
    "broker.id",
    "broker.rack",
    "broker.session.timeout.ms",
    "compression.type",
    "connections.max.idle.ms",
    "connections.max.reauth.ms",
    "controlled.shutdown.enable",
    "controller.listener.names",
    "controller.quorum.fetch.timeout.ms",
    "controller.quorum.voters",
    "default.replication.factor",
    "fetch.max.bytes",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "group.min.session.timeout.ms",
    "group.share.delivery.count.limit",
    "group.share.heartbeat.interval.ms",
    "group.share.max.size",
    "group.share.partition.max.record.locks",
    "group.share.record.lock.duration.ms",
    "group.share.session.timeout.ms",
    "group.streams.heartbeat.interval.ms",
    "group.streams.max.heartbeat.interval.ms",
    "group.streams.max.session.timeout.ms",
    "group.streams.max.size",
    "group.streams.min.heartbeat.interval.ms",
    "group.streams.min.session.timeout.ms",
    "group.streams.session.timeout.ms",
    "inter.broker.listener.name",
    "internal.metadata.log.segment.bytes",
    "listener.security.protocol.map",
    "listeners",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.enable",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleanup.policy",
    "log.dir",
    "log.dirs",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.flush.scheduler.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.hours",
    "log.roll.ms",
    "log.segment.bytes",
    "max.connection.creation.rate",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.incremental.fetch.session.cache.slots",
    "message.max.bytes",
    "metadata.log.max.record.bytes.between.snapshots",
    "metadata.log.max.snapshot.interval.ms",
    "metadata.log.segment.bytes",
    "metadata.max.retention.bytes",
    "metadata.max.retention.ms",
    "node.id",
    "num.partitions",
    "offset.metadata.max.bytes",
    "offsets.retention.check.interval.ms",
    "offsets.retention.minutes",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "process.roles",
    "producer.id.expiration.check.interval.ms",
    "producer.id.expiration.ms",
    "queued.max.request.bytes",
    "quota.window.num",
    "quota.window.size.seconds",
    "replica.fetch.backoff.ms",
    "replica.fetch.max.bytes",
    "replica.fetch.min.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.wait.max.ms",
    "replica.lag.time.max.ms",
    "replica.socket.timeout.ms",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.oauthbearer.allow.unverified.audience",
    "sasl.oauthbearer.allow.unverified.issuer",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.server.max.receive.size",
    "security.inter.broker.protocol",
    "share.coordinator.state.topic.num.partitions",
    "socket.request.max.bytes",
    "ssl.cipher.suites",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.principal.mapping.rules",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "super.users",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.max.timeout.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transactional.id.expiration.ms",
    "unclean.leader.election.enable",
];

/// Whether gregor acts on a setting: one of USED, also per listener
/// (`listener.name.<l>.ssl.client.auth`) and per listener and mechanism
/// (`listener.name.<l>.plain.sasl.jaas.config`, `...oauthbearer.sasl.server.callback.handler.class`,
/// `...<mechanism>.connections.max.reauth.ms`).
fn is_used(name: &str) -> bool {
    if USED.contains(&name) {
        return true;
    }
    let Some(rest) = name.strip_prefix("listener.name.") else {
        return false;
    };
    let Some((_, setting)) = rest.split_once('.') else {
        return false;
    };
    USED.contains(&setting)
        || setting.split_once('.').is_some_and(|(mechanism, s)| {
            matches!(
                s,
                "sasl.jaas.config"
                    | "sasl.server.callback.handler.class"
                    | "connections.max.reauth.ms"
            ) && crate::security::SaslMechanism::parse(&mechanism.to_ascii_uppercase()).is_some()
        })
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("unknown configuration '{0}' (not a Kafka broker setting; a typo?)")]
    Unknown(String),
    #[error("invalid value '{value}' for '{name}': {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Kafka's ConfigDef type of a setting, as listed in the generated tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Short,
    Int,
    Long,
    Double,
    String,
    List,
    Class,
    Password,
}

impl ConfigType {
    fn parse(s: &str) -> ConfigType {
        match s {
            "BOOLEAN" => ConfigType::Boolean,
            "SHORT" => ConfigType::Short,
            "INT" => ConfigType::Int,
            "LONG" => ConfigType::Long,
            "DOUBLE" => ConfigType::Double,
            "LIST" => ConfigType::List,
            "CLASS" => ConfigType::Class,
            "PASSWORD" => ConfigType::Password,
            _ => ConfigType::String,
        }
    }

    /// Checks that `value` parses as this type, the way Kafka's ConfigDef.parseType does.
    pub fn check(self, name: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.trim();
        let ok = match self {
            ConfigType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            ConfigType::Short => v.parse::<i16>().is_ok(),
            ConfigType::Int => v.parse::<i32>().is_ok(),
            ConfigType::Long => v.parse::<i64>().is_ok(),
            ConfigType::Double => v.parse::<f64>().is_ok(),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(
                name,
                value,
                format!("expected {self:?}").to_lowercase(),
            ))
        }
    }
}

/// One row of a generated table: a Kafka config name, its type and default.
#[derive(Debug, Clone)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's default as its docs show it; `None` when Kafka has none (null).
    pub default: Option<&'static str>,
    /// For topic configs: the broker setting that supplies the default.
    pub synonym: Option<&'static str>,
}

fn parse_table(text: &'static str) -> Vec<ConfigDef> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().unwrap_or_default();
            let kind = ConfigType::parse(f.next().unwrap_or_default());
            let default = match f.next().unwrap_or_default() {
                "" => None,
                "\"\"" => Some(""),
                d => Some(d),
            };
            let synonym = f.next().filter(|s| !s.is_empty());
            ConfigDef {
                name,
                kind,
                default,
                synonym,
            }
        })
        .collect()
}

pub fn broker_config_defs() -> &'static [ConfigDef] {
    static DEFS: std::sync::OnceLock<Vec<ConfigDef>> = std::sync::OnceLock::new();
    DEFS.get_or_init(|| parse_table(BROKER_CONFIGS))
}

pub fn topic_config_defs() -> &'static [ConfigDef] {
    static DEFS: std::sync::OnceLock<Vec<ConfigDef>> = std::sync::OnceLock::new();
    DEFS.get_or_init(|| parse_table(TOPIC_CONFIGS))
}

pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    broker_config_defs().iter().find(|d| d.name == name)
}

pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    topic_config_defs().iter().find(|d| d.name == name)
}

/// Whether `name` is a setting Kafka accepts: a broker config, an open-ended prefix, or one the
/// apache/kafka image writes.
fn known_name(name: &str) -> bool {
    broker_def(name).is_some()
        || OPEN_PREFIXES.iter().any(|p| name.starts_with(p))
        || IMAGE_EXTRAS.contains(&name)
        || AUTHORIZER_SETTINGS.contains(&name)
}

/// Maps an environment variable to a config name as the apache/kafka image does
/// (KafkaDockerWrapper.getServerConfigsFromEnv): drop `KAFKA_`, lowercase, `_` → `.`,
/// then `...` → `-` and `..` → `_` (so `___` means `-` and `__` means `_`).
pub fn env_to_config_name(var: &str) -> Option<String> {
    let rest = var.strip_prefix("KAFKA_")?;
    if rest.is_empty() || IMAGE_NON_CONFIG_ENV.contains(&var) {
        return None;
    }
    Some(
        rest.to_lowercase()
            .replace('_', ".")
            .replace("...", "-")
            .replace("..", "_"),
    )
}

/// Host and port of a listener: `HOST:PORT` or Kafka's `NAME://HOST:PORT` (an empty host means
/// all interfaces, as in Kafka).
pub fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The settings the command line gives (see main.rs).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub listen: Option<String>,
    pub advertised_listener: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub overrides: Vec<String>,
    /// `--brokers N`: brokers served by this process (default 1).
    pub brokers: Option<u16>,
    /// `--admin-listen HOST:PORT`: the admin HTTP listener (off unless given).
    pub admin_listen: Option<String>,
    /// `--journal-size N`: requests the request journal keeps (see `admin::journal`).
    pub journal_size: Option<usize>,
    /// `--clock system|manual` (see `server::clock`).
    pub clock: Option<String>,
    /// `--admin-token T`: the bearer token the admin listener requires.
    pub admin_token: Option<String>,
    /// `--schema-registry-listen HOST:PORT`: the schema registry's REST API (off unless given).
    pub schema_registry_listen: Option<String>,
    /// `--emulate-kafka-version X.Y`: advertise and serve only that Kafka release's API versions.
    pub emulate_kafka_version: Option<String>,
    /// `--seed FILE`: seed data (JSON, see `admin::seed`) for a broker with no topics yet.
    pub seed: Option<PathBuf>,
}

/// What a process of a quorum is (Kafka's `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRoles {
    /// `broker,controller`: a voter of the quorum and a broker.
    Combined,
    /// `broker`: a broker that learns the metadata log from the voters (an observer).
    Broker,
    /// `controller`: a voter that serves no clients and holds no partition.
    Controller,
}

impl ProcessRoles {
    pub fn is_broker(self) -> bool {
        self != ProcessRoles::Controller
    }

    pub fn is_controller(self) -> bool {
        self != ProcessRoles::Broker
    }
}

/// The metadata quorum this process belongs to (`process.roles`): see `metadata::quorum`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumSettings {
    pub roles: ProcessRoles,
    /// controller.quorum.voters: each voter's node id and controller endpoint.
    pub voters: BTreeMap<i32, (String, u16)>,
    /// Where this node's controller listener binds (the `listeners` entry named in
    /// controller.listener.names); a broker-only process has none.
    pub listen: Option<(String, u16)>,
    /// The controller listener (the first of controller.listener.names) with its security
    /// protocol: how this process serves the quorum's RPCs and reaches the voters (see
    /// `metadata::quorum::transport`).
    pub controller_listener: ListenerConfig,
    /// broker.heartbeat.interval.ms: how often this node's broker heartbeats to the active
    /// controller (see `metadata::broker_heartbeat`).
    pub broker_heartbeat_interval_ms: u64,
    /// broker.session.timeout.ms: a broker not heard from for this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// controller.quorum.fetch.timeout.ms: a leader that has not heard from a majority of the
    /// voters for 1.5 times this long resigns (Kafka's check quorum; see `metadata::quorum`).
    pub fetch_timeout_ms: u64,
    /// controlled.shutdown.enable: a stop asks the active controller to move this broker's
    /// leaderships first (see `server::broker_lifecycle`).
    pub controlled_shutdown_enable: bool,
    /// How followers fetch from their leaders (see `server::replica_fetcher`).
    pub replication: ReplicationSettings,
    /// When a voter snapshots its metadata log and what it keeps of it (see
    /// `metadata::quorum::snapshots`).
    pub metadata_log: MetadataLogSettings,
}

/// Kafka's metadata log settings (KRaftConfigs / MetadataLogConfig), with Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataLogSettings {
    /// metadata.log.max.record.bytes.between.snapshots: a snapshot once this many bytes of
    /// records were committed since the last one.
    pub max_bytes_between_snapshots: u64,
    /// metadata.log.max.snapshot.interval.ms: a snapshot once this long has passed since the
    /// last one and records were committed meanwhile (0: never by time).
    pub max_snapshot_interval_ms: u64,
    /// metadata.max.retention.bytes: the log and snapshots are cut (the oldest snapshot and the
    /// log before the next) while together larger than this (-1: never by size).
    pub retention_bytes: i64,
    /// metadata.max.retention.ms: likewise while the oldest snapshot's last record is older
    /// than this (-1: never by time).
    pub retention_ms: i64,
    /// metadata.log.segment.bytes: the metadata log's segment size (at least 8 MiB), or
    /// internal.metadata.log.segment.bytes where given (no minimum: tests).
    pub segment_bytes: u64,
}

impl Default for MetadataLogSettings {
    fn default() -> Self {
        MetadataLogSettings {
            max_bytes_between_snapshots: 20 << 20,
            max_snapshot_interval_ms: 60 * 60 * 1000,
            retention_bytes: 100 << 20,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            segment_bytes: 1 << 30,
        }
    }
}

fn metadata_log_settings(s: &Settings<'_>) -> Result<MetadataLogSettings, ConfigError> {
    let d = MetadataLogSettings::default();
    // Kafka's MetadataLogConfig: at least 8 MiB, unless the internal (testing) setting is given.
    const MIN_SEGMENT_BYTES: i32 = 8 << 20;
    let segment_bytes = match s.positive_int("metadata.log.segment.bytes")? {
        Some(v) if v < MIN_SEGMENT_BYTES => {
            let why = format!("must be at least {MIN_SEGMENT_BYTES}");
            return Err(invalid("metadata.log.segment.bytes", &v.to_string(), &why));
        }
        v => v.map_or(d.segment_bytes, |v| v as u64),
    };
    let internal = s.positive_int("internal.metadata.log.segment.bytes")?;
    let segment_bytes = internal.map_or(segment_bytes, |v| v as u64);
    let interval = "metadata.log.max.snapshot.interval.ms";
    let interval = match s.long(interval)? {
        Some(v) if v < 0 => return Err(invalid(interval, &v.to_string(), "must be at least 0")),
        v => v.map_or(d.max_snapshot_interval_ms, |v| v as u64),
    };
    Ok(MetadataLogSettings {
        max_bytes_between_snapshots: s
            .positive_long("metadata.log.max.record.bytes.between.snapshots")?
            .map_or(d.max_bytes_between_snapshots, |v| v as u64),
        max_snapshot_interval_ms: interval,
        retention_bytes: s
            .long("metadata.max.retention.bytes")?
            .unwrap_or(d.retention_bytes),
        retention_ms: s
            .long("metadata.max.retention.ms")?
            .unwrap_or(d.retention_ms),
        segment_bytes,
    })
}

/// Kafka's replica fetcher and ISR settings, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationSettings {
    /// inter.broker.listener.name, else security.inter.broker.protocol's name: the listener
    /// brokers reach each other on (default the one named PLAINTEXT, else the first).
    pub inter_broker_listener: String,
    /// sasl.mechanism.inter.broker.protocol (default GSSAPI, which gregor does not speak): how
    /// this broker authenticates on a SASL inter-broker listener (see `security::channel`).
    pub sasl_mechanism_inter_broker_protocol: String,
    /// replica.lag.time.max.ms: a follower not caught up for this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// replica.fetch.wait.max.ms: how long a follower's fetch waits at the leader for data.
    pub fetch_wait_max_ms: i32,
    /// replica.fetch.min.bytes.
    pub fetch_min_bytes: i32,
    /// replica.fetch.max.bytes: per partition.
    pub fetch_max_bytes: i32,
    /// replica.fetch.response.max.bytes: per fetch.
    pub fetch_response_max_bytes: i32,
    /// replica.fetch.backoff.ms: the pause after a failed fetch.
    pub fetch_backoff_ms: u64,
    /// replica.socket.timeout.ms: how long a fetch may go unanswered before the connection is
    /// dropped.
    pub socket_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The listeners, in `listeners` order (see `listeners`); the first is the one
    /// `--listen` and `--advertised-listener` change.
    pub listeners: Vec<ListenerConfig>,
    pub data_dir: PathBuf,
    pub node_id: i32,
    /// broker.rack: registered with the broker, listed in Metadata and DescribeCluster.
    pub broker_rack: Option<String>,
    /// `process.roles=broker,controller`: this process is a voter of a metadata quorum between
    /// processes; `None`: the single node of today (the metadata log is local).
    pub quorum: Option<QuorumSettings>,
    /// Brokers this process serves (`--brokers`): node ids node.id, node.id + 1, ..., each on its
    /// own listener, the ports consecutive from the listen port (each on a free port when the
    /// listen port is 0). One copy of the data underneath (see README, "Several brokers").
    pub brokers: u16,
    /// Where the admin HTTP listener binds (`--admin-listen`; see `admin`); `None`: off.
    pub admin_listen: Option<String>,
    /// Requests the admin listener's request journal keeps (`--journal-size`; 0 turns it off).
    pub journal_size: usize,
    /// `--clock manual`: the broker's clock moves only through the admin listener's
    /// `POST /v1/clock/advance` (see `server::clock`).
    pub manual_clock: bool,
    /// The bearer token every admin request must carry (`--admin-token`); `None`: none.
    pub admin_token: Option<String>,
    /// Where the schema registry's REST API binds (`--schema-registry-listen`; see
    /// `schema_registry`); `None`: off.
    pub schema_registry_listen: Option<String>,
    /// `--emulate-kafka-version`: the Kafka release whose API versions are advertised and served
    /// (see `protocol::emulation`); `None`: gregor's own.
    pub emulate_kafka_version: Option<&'static crate::protocol::emulation::Release>,
    /// `--seed FILE`, read and checked at start-up: applied once the broker serves, if it has
    /// no topics of its own yet (see `admin::seed`).
    pub seed: Option<std::sync::Arc<crate::admin::seed::Seed>>,
    /// Leader elections: auto.leader.rebalance.enable (preferred leaders return) and the broker
    /// default of unclean.leader.election.enable (see `metadata::election`).
    pub elections: crate::metadata::election::ElectionPolicy,
    pub num_partitions: i32,
    /// Partitions of the internal topics, created on first use as Kafka does.
    pub offsets_topic_num_partitions: i32,
    pub transaction_state_log_num_partitions: i32,
    /// offsets.topic.replication.factor and transaction.state.log.replication.factor: the
    /// internal topics' replicas in a cluster of processes (in one process capped at its
    /// brokers; see `Catalog::internal_replication_factor`).
    pub offsets_topic_replication_factor: i16,
    pub transaction_state_log_replication_factor: i16,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub socket_request_max_bytes: usize,
    /// Bytes of requests being read or waiting to be handled, across connections; zero or less
    /// is unbounded (see `server::memory_pool`).
    pub queued_max_request_bytes: i64,
    pub fetch_max_bytes: usize,
    /// KIP-227 fetch sessions the broker keeps (see `protocol::fetch_session`).
    pub max_incremental_fetch_session_cache_slots: usize,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    /// Connection limits: max.connections, max.connections.per.ip (with per-address
    /// max.connections.per.ip.overrides) and connections.max.idle.ms.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_ip_overrides: std::collections::HashMap<std::net::IpAddr, usize>,
    pub connections_max_idle_ms: u64,
    /// KIP-612: max.connection.creation.rate, new connections per second the broker takes on
    /// (i32::MAX, Kafka's default: no limit), and listener.name.<l>.max.connection.creation.rate
    /// by listener name (see `server::quotas`).
    pub max_connection_creation_rate: i32,
    pub listener_max_connection_creation_rate: BTreeMap<String, i32>,
    /// The listener brokers reach each other on (inter.broker.listener.name, else
    /// security.inter.broker.protocol's, else PLAINTEXT's or the first), exempt from
    /// max.connection.creation.rate as in Kafka; `None` when the settings name none of the
    /// listeners (a single node, which has no inter-broker traffic, starts anyway).
    pub inter_broker_listener: Option<String>,
    /// quota.window.num and quota.window.size.seconds: the samples client quotas' rates are
    /// measured over (see `server::client_quotas`).
    pub quota_window_num: u32,
    pub quota_window_size_seconds: u32,
    /// log.cleaner.enable and log.cleaner.backoff.ms: whether and how often compacted logs
    /// are cleaned.
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    /// log.cleaner.dedupe.buffer.size: the most memory one cleaning's offset map may take; a
    /// log with more keys is cleaned in several passes (see `log::cleaner`).
    pub log_cleaner_dedupe_buffer_size: usize,
    /// producer.id.expiration.ms: idempotent-producer state whose last batch is older than this
    /// is forgotten, checked every producer.id.expiration.check.interval.ms (Kafka's
    /// ProducerStateManager.removeExpiredProducers).
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    /// Broker-wide defaults of every partition log.
    pub log: LogConfig,
    /// Consumer-group settings (group.*, offsets.*).
    pub group: crate::group::GroupConfig,
    /// Transaction-coordinator settings (transaction.*, transactional.id.*).
    pub txn: crate::txn::TransactionConfig,
    /// share.coordinator.state.topic.num.partitions: partitions of `__share_group_state`.
    pub share_state_partitions: i32,
    /// authorizer.class.name (StandardAuthorizer, the only one) with super.users and
    /// allow.everyone.if.no.acl.found; `None`: no authorizer, everything is allowed.
    pub authorizer: Option<crate::security::authorizer::Authorizer>,
    /// Every explicitly set setting, by Kafka name (for DescribeConfigs later).
    pub explicit: BTreeMap<String, String>,
    /// Known settings that were set but that gregor does not act on.
    pub unused: Vec<String>,
}

pub const DEFAULT_DATA_DIR: &str = "/tmp/gregor-data";

/// The roles `process.roles` names (`None` without it: a single node with its own log).
fn process_roles(s: &Settings<'_>) -> Result<Option<ProcessRoles>, ConfigError> {
    let Some(roles) = s.str("process.roles") else {
        return Ok(None);
    };
    let mut set: Vec<String> = roles
        .split(',')
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    set.sort();
    set.dedup();
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    match set.as_slice() {
        ["broker", "controller"] => Ok(Some(ProcessRoles::Combined)),
        ["broker"] => Ok(Some(ProcessRoles::Broker)),
        ["controller"] => Ok(Some(ProcessRoles::Controller)),
        _ => Err(invalid(
            "process.roles",
            &roles,
            "expected broker, controller, or broker,controller",
        )),
    }
}

/// Kafka's KRaft settings for a quorum between processes: `process.roles`, `node.id`,
/// `controller.quorum.voters` (`id@host:port,...`), and the controller listener
/// (`controller.listener.names` naming a `listeners` entry). As Kafka's KafkaConfig checks: a
/// voter's node id is one of the voters and it has a controller listener; a broker-only node's
/// is not a voter's.
fn quorum_settings(
    s: &Settings<'_>,
    node_id: i32,
    brokers: Option<u16>,
    listeners: &[ListenerConfig],
) -> Result<Option<QuorumSettings>, ConfigError> {
    let Some(roles) = process_roles(s)? else {
        return Ok(None);
    };
    if brokers.is_some_and(|n| n > 1) {
        return Err(invalid(
            "--brokers",
            &brokers.unwrap_or(1).to_string(),
            "a quorum process serves one broker",
        ));
    }
    let voters_text = s.str("controller.quorum.voters").unwrap_or_default();
    if voters_text.trim().is_empty() {
        let why = match s.str("controller.quorum.bootstrap.servers") {
            Some(_) => "controller.quorum.bootstrap.servers (a dynamic quorum, KIP-853) is not supported yet: name the voters",
            None => "a quorum needs its voters",
        };
        return Err(invalid("controller.quorum.voters", &voters_text, why));
    }
    let mut voters = BTreeMap::new();
    for v in voters_text
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let parsed = v.split_once('@').and_then(|(id, addr)| {
            let id: i32 = id.trim().parse().ok().filter(|&id| id >= 0)?;
            Some((id, parse_host_port(addr.trim())?))
        });
        let (id, addr) = parsed.ok_or_else(|| {
            invalid(
                "controller.quorum.voters",
                &voters_text,
                "expected ID@HOST:PORT,...",
            )
        })?;
        if voters.insert(id, addr).is_some() {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                format!("voter {id} appears twice"),
            ));
        }
    }
    match (roles.is_controller(), voters.contains_key(&node_id)) {
        (true, false) => {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                format!("node.id {node_id} is not one of the voters"),
            ))
        }
        (false, true) => {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                format!("node.id {node_id} of a broker-only process is a voter's"),
            ))
        }
        _ => {}
    }
    let listen = match roles.is_controller() {
        false => None,
        true => Some(
            listeners::controller_endpoint(|k| s.str(k))?.ok_or_else(|| {
                invalid(
                    "controller.listener.names",
                    &s.str("controller.listener.names").unwrap_or_default(),
                    "no listeners entry is a controller listener",
                )
            })?,
        ),
    };
    // A process without controller.listener.names (which Kafka requires) reaches the voters
    // over PLAINTEXT, as before.
    let controller_listener =
        listeners::controller_listener(|k| s.str(k))?.unwrap_or_else(|| ListenerConfig {
            name: "CONTROLLER".into(),
            ..ListenerConfig::plaintext("", 0)
        });
    Ok(Some(QuorumSettings {
        roles,
        voters,
        listen,
        controller_listener,
        broker_heartbeat_interval_ms: s
            .positive_int("broker.heartbeat.interval.ms")?
            .unwrap_or(2000) as u64,
        broker_session_timeout_ms: s
            .positive_int("broker.session.timeout.ms")?
            .unwrap_or(9000)
            .into(),
        fetch_timeout_ms: s
            .positive_int("controller.quorum.fetch.timeout.ms")?
            .unwrap_or(2000) as u64,
        controlled_shutdown_enable: s.bool("controlled.shutdown.enable")?.unwrap_or(true),
        replication: replication_settings(s, listeners)?,
        metadata_log: metadata_log_settings(s)?,
    }))
}

/// The inter-broker listener's name, checked as Kafka's KafkaConfig checks it.
fn inter_broker_listener(
    s: &Settings<'_>,
    listeners: &[ListenerConfig],
) -> Result<String, ConfigError> {
    // KafkaConfig.getInterBrokerListenerNameAndSecurityProtocol: the listener named, else the
    // one named after security.inter.broker.protocol (default PLAINTEXT); not both.
    let name = match (
        s.str("inter.broker.listener.name"),
        s.str("security.inter.broker.protocol"),
    ) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "security.inter.broker.protocol",
                &s.str("security.inter.broker.protocol").unwrap_or_default(),
                "only one of inter.broker.listener.name and security.inter.broker.protocol should be set",
            ))
        }
        (Some(name), None) => name.trim().to_ascii_uppercase(),
        (None, Some(protocol)) => SecurityProtocol::parse(&protocol)
            .ok_or_else(|| {
                invalid(
                    "security.inter.broker.protocol",
                    &protocol,
                    "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                )
            })?
            .name()
            .to_string(),
        // Neither: Kafka's default is the listener named PLAINTEXT. gregor takes the first
        // listener when there is none of that name, so that a process whose only listener is
        // secured still starts (Kafka refuses it); its brokers then connect as that listener's
        // settings say.
        (None, None) => listeners
            .iter()
            .find(|l| l.name == "PLAINTEXT")
            .or(listeners.first())
            .map_or_else(|| "PLAINTEXT".to_string(), |l| l.name.clone()),
    };
    if !listeners.is_empty() && !listeners.iter().any(|l| l.name == name) {
        // KafkaConfig: the inter-broker listener must be one of the broker's listeners.
        return Err(invalid(
            "inter.broker.listener.name",
            &name,
            "must be the name of a listener in listeners",
        ));
    }
    Ok(name)
}

/// The replica fetcher's settings (see `ReplicationSettings`).
fn replication_settings(
    s: &Settings<'_>,
    listeners: &[ListenerConfig],
) -> Result<ReplicationSettings, ConfigError> {
    let inter_broker_listener = inter_broker_listener(s, listeners)?;
    let int = |name: &str, default: i32| -> Result<i32, ConfigError> {
        Ok(s.positive_int(name)?.unwrap_or(default))
    };
    Ok(ReplicationSettings {
        sasl_mechanism_inter_broker_protocol: s
            .str("sasl.mechanism.inter.broker.protocol")
            .map_or_else(|| "GSSAPI".to_string(), |m| m.trim().to_string()),
        inter_broker_listener,
        lag_time_max_ms: int("replica.lag.time.max.ms", 30_000)?.into(),
        fetch_wait_max_ms: int("replica.fetch.wait.max.ms", 500)?,
        fetch_min_bytes: int("replica.fetch.min.bytes", 1)?,
        fetch_max_bytes: int("replica.fetch.max.bytes", 1_048_576)?,
        fetch_response_max_bytes: int("replica.fetch.response.max.bytes", 10_485_760)?,
        fetch_backoff_ms: int("replica.fetch.backoff.ms", 1000)? as u64,
        socket_timeout_ms: int("replica.socket.timeout.ms", 30_000)? as u64,
    })
}

impl Config {
    /// Builds the configuration from all sources; `env` is the process environment.
    pub fn load(
        src: &Sources,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = &src.config_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            set.extend(parse_properties(&text));
        }
        // A shell or image sets KAFKA_* variables of its own (KAFKA_HOME, a tool's options):
        // one that names no broker setting is not a typo in gregor's configuration, so it is
        // skipped with a warning, not a refusal to start (a file or flag still fails on one).
        for (var, value) in env {
            let Some(name) = env_to_config_name(&var) else {
                continue;
            };
            if known_name(&name) {
                set.insert(name, value);
            } else {
                tracing::warn!(variable = %var, setting = %name, "ignoring an environment variable that names no broker setting");
            }
        }
        for o in &src.overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| invalid("--override", o, "expected KEY=VALUE"))?;
            set.insert(k.trim().to_string(), v.trim().to_string());
        }
        Self::from_settings(set, src)
    }

    /// Defaults for tests: a free loopback port and the given data directory.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        let src = Sources {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir),
            ..Sources::default()
        };
        // The defaults always validate: an empty settings map cannot fail.
        match Self::from_settings(BTreeMap::new(), &src) {
            Ok(c) => c,
            Err(e) => unreachable!("default config is invalid: {e}"),
        }
    }

    pub fn from_settings(
        set: BTreeMap<String, String>,
        src: &Sources,
    ) -> Result<Config, ConfigError> {
        let mut unused = Vec::new();
        for (name, value) in &set {
            match broker_def(name) {
                Some(def) => def.kind.check(name, value)?,
                None if known_name(name) => {}
                None => return Err(ConfigError::Unknown(name.clone())),
            }
            if !is_used(name) {
                unused.push(name.clone());
            }
        }
        let s = Settings(&set);
        // A controller-only process serves no clients: no broker listener.
        let controller_only = process_roles(&s)? == Some(ProcessRoles::Controller);
        let mut listeners = match controller_only {
            true => vec![],
            false => listeners::listeners(|k| s.str(k))?,
        };
        if let (Some(l), false) = (&src.listen, controller_only) {
            let (host, port) =
                parse_host_port(l).ok_or_else(|| invalid("--listen", l, "expected HOST:PORT"))?;
            listeners[0].host = host;
            listeners[0].port = port;
        }
        if let (Some(a), false) = (&src.advertised_listener, controller_only) {
            listeners[0].advertised = Some(
                parse_host_port(a)
                    .ok_or_else(|| invalid("--advertised-listener", a, "expected HOST:PORT"))?,
            );
        }
        let data_dir = match (
            &src.data_dir,
            s.str("log.dirs").or_else(|| s.str("log.dir")),
        ) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => {
                PathBuf::from(d.split(',').next().unwrap_or(DEFAULT_DATA_DIR).trim())
            }
            (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
        };
        let log = broker_log_config(&s)?;
        let socket_request_max_bytes = s
            .positive_int("socket.request.max.bytes")?
            .unwrap_or(104_857_600) as usize;
        let queued_max_request_bytes = s.long("queued.max.request.bytes")?.unwrap_or(-1);
        // Kafka refuses to start otherwise: one frame must fit in the pool.
        if queued_max_request_bytes > 0
            && (queued_max_request_bytes as u64) < socket_request_max_bytes as u64
        {
            return Err(invalid(
                "queued.max.request.bytes",
                &queued_max_request_bytes.to_string(),
                "must be larger or equal to socket.request.max.bytes",
            ));
        }
        let d = crate::group::GroupConfig::default();
        // A positive int setting, widened (the share-group settings are ints in Kafka).
        let long = |name: &str, default: i64| -> Result<i64, ConfigError> {
            Ok(s.positive_int(name)?.map_or(default, i64::from))
        };
        // group.<type>.min.<what> and group.<type>.max.<what>: the range of a group's own value.
        let bounds = |kind: &str, what: &str, d: (i32, i32)| -> Result<(i32, i32), ConfigError> {
            let min = s.positive_int(&format!("group.{kind}.min.{what}"))?;
            let max = s.positive_int(&format!("group.{kind}.max.{what}"))?;
            Ok((min.unwrap_or(d.0), max.unwrap_or(d.1)))
        };
        let group = crate::group::GroupConfig {
            min_session_timeout_ms: s
                .int("group.min.session.timeout.ms")?
                .unwrap_or(d.min_session_timeout_ms),
            max_session_timeout_ms: s
                .int("group.max.session.timeout.ms")?
                .unwrap_or(d.max_session_timeout_ms),
            initial_rebalance_delay_ms: s
                .int("group.initial.rebalance.delay.ms")?
                .map_or(d.initial_rebalance_delay_ms, |v| i64::from(v.max(0))),
            max_size: s
                .positive_int("group.max.size")?
                .map_or(d.max_size, |v| v as usize),
            offsets_topic_partitions: s
                .positive_int("offsets.topic.num.partitions")?
                .unwrap_or(d.offsets_topic_partitions),
            offset_metadata_max_bytes: s
                .int("offset.metadata.max.bytes")?
                .map_or(d.offset_metadata_max_bytes, |v| v.max(0) as usize),
            offsets_retention_ms: s
                .positive_int("offsets.retention.minutes")?
                .map_or(d.offsets_retention_ms, |m| i64::from(m) * 60_000),
            consumer_session_timeout_ms: s
                .positive_int("group.consumer.session.timeout.ms")?
                .map_or(d.consumer_session_timeout_ms, i64::from),
            consumer_heartbeat_interval_ms: s
                .positive_int("group.consumer.heartbeat.interval.ms")?
                .unwrap_or(d.consumer_heartbeat_interval_ms),
            consumer_session_bounds: bounds(
                "consumer",
                "session.timeout.ms",
                d.consumer_session_bounds,
            )?,
            consumer_heartbeat_bounds: bounds(
                "consumer",
                "heartbeat.interval.ms",
                d.consumer_heartbeat_bounds,
            )?,
            streams_session_bounds: bounds(
                "streams",
                "session.timeout.ms",
                d.streams_session_bounds,
            )?,
            streams_heartbeat_bounds: bounds(
                "streams",
                "heartbeat.interval.ms",
                d.streams_heartbeat_bounds,
            )?,
            offsets_retention_check_interval_ms: s
                .positive_long("offsets.retention.check.interval.ms")?
                .unwrap_or(d.offsets_retention_check_interval_ms),
            share: crate::group::share::ShareGroupConfig {
                session_timeout_ms: long(
                    "group.share.session.timeout.ms",
                    d.share.session_timeout_ms,
                )?,
                heartbeat_interval_ms: s
                    .positive_int("group.share.heartbeat.interval.ms")?
                    .unwrap_or(d.share.heartbeat_interval_ms),
                max_size: long("group.share.max.size", d.share.max_size as i64)? as usize,
            },
            streams: crate::group::streams::StreamsGroupConfig {
                session_timeout_ms: long(
                    "group.streams.session.timeout.ms",
                    d.streams.session_timeout_ms,
                )?,
                heartbeat_interval_ms: s
                    .positive_int("group.streams.heartbeat.interval.ms")?
                    .unwrap_or(d.streams.heartbeat_interval_ms),
                max_size: long("group.streams.max.size", d.streams.max_size as i64)? as usize,
                ..d.streams
            },
            share_partition: crate::share::partition::SharePartitionConfig {
                record_lock_duration_ms: long(
                    "group.share.record.lock.duration.ms",
                    d.share_partition.record_lock_duration_ms,
                )?,
                delivery_count_limit: long(
                    "group.share.delivery.count.limit",
                    d.share_partition.delivery_count_limit.into(),
                )?
                .min(i16::MAX.into()) as i16,
                max_record_locks: long(
                    "group.share.partition.max.record.locks",
                    d.share_partition.max_record_locks,
                )?,
            },
        };
        let t = crate::txn::TransactionConfig::default();
        let txn = crate::txn::TransactionConfig {
            state_log_num_partitions: s
                .positive_int("transaction.state.log.num.partitions")?
                .unwrap_or(t.state_log_num_partitions),
            max_timeout_ms: s
                .positive_int("transaction.max.timeout.ms")?
                .unwrap_or(t.max_timeout_ms),
            transactional_id_expiration_ms: s
                .positive_int("transactional.id.expiration.ms")?
                .map_or(t.transactional_id_expiration_ms, i64::from),
            abort_timed_out_transaction_cleanup_interval_ms: s
                .positive_int("transaction.abort.timed.out.transaction.cleanup.interval.ms")?
                .map_or(t.abort_timed_out_transaction_cleanup_interval_ms, i64::from),
            remove_expired_transaction_cleanup_interval_ms: s
                .positive_int("transaction.remove.expired.transaction.cleanup.interval.ms")?
                .map_or(t.remove_expired_transaction_cleanup_interval_ms, i64::from),
        };
        let node_id = s
            .int("node.id")?
            .or(s.int("broker.id")?.filter(|&id| id >= 0))
            .unwrap_or(1);
        let quorum = quorum_settings(&s, node_id, src.brokers, &listeners)?;
        let isr_by_leaders = quorum.is_some();
        let mut listener_max_connection_creation_rate = BTreeMap::new();
        for l in &listeners {
            let name = format!("{}max.connection.creation.rate", l.config_prefix());
            if let Some(rate) = s.non_negative_int(&name)? {
                listener_max_connection_creation_rate.insert(l.name.clone(), rate);
            }
        }
        let inter_broker_listener = match &quorum {
            Some(q) => Some(q.replication.inter_broker_listener.clone()),
            None => inter_broker_listener(&s, &listeners).ok(),
        };
        Ok(Config {
            listeners,
            data_dir,
            node_id,
            broker_rack: s.str("broker.rack").filter(|r| !r.is_empty()),
            quorum,
            brokers: match src.brokers {
                _ if controller_only => 0,
                Some(0) => return Err(invalid("--brokers", "0", "at least one broker")),
                Some(n) => n,
                None => 1,
            },
            admin_listen: match &src.admin_listen {
                Some(a) if parse_host_port(a).is_none() => {
                    return Err(invalid("--admin-listen", a, "expected HOST:PORT"))
                }
                a => a.clone(),
            },
            journal_size: src
                .journal_size
                .unwrap_or(crate::admin::journal::DEFAULT_SIZE),
            manual_clock: match src.clock.as_deref() {
                None | Some("system") => false,
                Some("manual") if src.admin_listen.is_some() => true,
                Some("manual") => {
                    return Err(invalid(
                        "--clock",
                        "manual",
                        "a manual clock moves only through the admin listener: give --admin-listen",
                    ))
                }
                Some(other) => return Err(invalid("--clock", other, "system or manual")),
            },
            admin_token: match &src.admin_token {
                Some(t)
                    if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    return Err(invalid(
                        "--admin-token",
                        "(hidden)",
                        "a non-empty token without spaces",
                    ))
                }
                t => t.clone(),
            },
            schema_registry_listen: match &src.schema_registry_listen {
                Some(a) if parse_host_port(a).is_none() => {
                    return Err(invalid("--schema-registry-listen", a, "expected HOST:PORT"))
                }
                a => a.clone(),
            },
            emulate_kafka_version: match &src.emulate_kafka_version {
                None => None,
                Some(v) => Some(crate::protocol::emulation::Release::named(v).ok_or_else(
                    || {
                        let known = crate::protocol::emulation::Release::known();
                        invalid("--emulate-kafka-version", v, format!("one of {known}"))
                    },
                )?),
            },
            seed: match &src.seed {
                None => None,
                Some(path) => {
                    let shown = path.display().to_string();
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| invalid("--seed", &shown, e.to_string()))?;
                    let json = serde_json::from_str(&text)
                        .map_err(|e| invalid("--seed", &shown, format!("not JSON: {e}")))?;
                    let seed = crate::admin::seed::Seed::parse(&json)
                        .map_err(|e| invalid("--seed", &shown, e))?;
                    Some(std::sync::Arc::new(seed))
                }
            },
            elections: crate::metadata::election::ElectionPolicy {
                auto_leader_rebalance: s.bool("auto.leader.rebalance.enable")?.unwrap_or(true),
                unclean_default: s.bool("unclean.leader.election.enable")?.unwrap_or(false),
                isr_by_leaders,
            },
            num_partitions: s.positive_int("num.partitions")?.unwrap_or(1),
            offsets_topic_num_partitions: s
                .positive_int("offsets.topic.num.partitions")?
                .unwrap_or(50),
            transaction_state_log_num_partitions: txn.state_log_num_partitions,
            offsets_topic_replication_factor: replication_factor(
                &s,
                "offsets.topic.replication.factor",
            )?,
            transaction_state_log_replication_factor: replication_factor(
                &s,
                "transaction.state.log.replication.factor",
            )?,
            default_replication_factor: s.int("default.replication.factor")?.unwrap_or(1) as i16,
            auto_create_topics_enable: s.bool("auto.create.topics.enable")?.unwrap_or(true),
            socket_request_max_bytes,
            queued_max_request_bytes,
            fetch_max_bytes: s.positive_int("fetch.max.bytes")?.unwrap_or(57_671_680) as usize,
            max_incremental_fetch_session_cache_slots: s
                .non_negative_int("max.incremental.fetch.session.cache.slots")?
                .unwrap_or(1000) as usize,
            log_retention_check_interval_ms: s
                .positive_long("log.retention.check.interval.ms")?
                .unwrap_or(300_000) as u64,
            log_flush_scheduler_interval_ms: s
                .positive_long("log.flush.scheduler.interval.ms")?
                .unwrap_or(i64::MAX) as u64,
            max_connections: s.positive_int("max.connections")?.unwrap_or(i32::MAX) as usize,
            max_connections_per_ip: s.int("max.connections.per.ip")?.unwrap_or(i32::MAX).max(0)
                as usize,
            max_connections_per_ip_overrides: per_ip_overrides(
                &s.raw("max.connections.per.ip.overrides"),
            )?,
            connections_max_idle_ms: s
                .positive_long("connections.max.idle.ms")?
                .unwrap_or(600_000) as u64,
            max_connection_creation_rate: s
                .non_negative_int("max.connection.creation.rate")?
                .unwrap_or(i32::MAX),
            listener_max_connection_creation_rate,
            inter_broker_listener,
            quota_window_num: s.positive_int("quota.window.num")?.unwrap_or(11) as u32,
            quota_window_size_seconds: s.positive_int("quota.window.size.seconds")?.unwrap_or(1)
                as u32,
            log_cleaner_enable: s.bool("log.cleaner.enable")?.unwrap_or(true),
            log_cleaner_backoff_ms: s.positive_long("log.cleaner.backoff.ms")?.unwrap_or(15_000)
                as u64,
            log_cleaner_dedupe_buffer_size: s
                .positive_long("log.cleaner.dedupe.buffer.size")?
                .map_or(134_217_728, |v| usize::try_from(v).unwrap_or(usize::MAX)),
            producer_id_expiration_ms: s
                .positive_int("producer.id.expiration.ms")?
                .map_or(86_400_000, i64::from),
            producer_id_expiration_check_interval_ms: s
                .positive_int("producer.id.expiration.check.interval.ms")?
                .map_or(600_000, |v| v as u64),
            share_state_partitions: s
                .positive_int("share.coordinator.state.topic.num.partitions")?
                .unwrap_or(crate::share::coordinator::STATE_TOPIC_PARTITIONS),
            log,
            group,
            txn,
            unused,
            authorizer: authorizer(&s)?,
            explicit: set,
        })
    }
}

/// The authorizer the settings name. Kafka 4 loads the class named, so a name that is not
/// StandardAuthorizer (including ZooKeeper's `kafka.security.authorizer.AclAuthorizer`, gone in
/// Kafka 4) stops it at start-up; gregor refuses it too rather than run without authorization.
fn authorizer(
    s: &Settings<'_>,
) -> Result<Option<crate::security::authorizer::Authorizer>, ConfigError> {
    use crate::security::authorizer::{self as a, Authorizer};
    let Some(class) = s.str("authorizer.class.name") else {
        return Ok(None);
    };
    if class != a::STANDARD_AUTHORIZER {
        return Err(invalid(
            "authorizer.class.name",
            &class,
            format!(
                "gregor's authorizer is {} (Kafka 4 has no other)",
                a::STANDARD_AUTHORIZER
            ),
        ));
    }
    Ok(Some(Authorizer::new(
        &s.raw(a::SUPER_USERS),
        s.bool(a::ALLOW_EVERYONE_IF_NO_ACL_FOUND)?.unwrap_or(false),
    )))
}

/// Typed lookups over the explicit settings.
struct Settings<'a>(&'a BTreeMap<String, String>);

impl Settings<'_> {
    fn raw(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }
    fn str(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
    fn long(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        self.str(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| invalid(name, &v, "expected a number"))
            })
            .transpose()
    }
    fn int(&self, name: &str) -> Result<Option<i32>, ConfigError> {
        self.long(name)?
            .map(|v| i32::try_from(v).map_err(|_| invalid(name, &v.to_string(), "out of range")))
            .transpose()
    }
    fn positive_long(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        match self.long(name)? {
            Some(v) if v <= 0 => Err(invalid(name, &v.to_string(), "must be positive")),
            v => Ok(v),
        }
    }
    fn non_negative_int(&self, name: &str) -> Result<Option<i32>, ConfigError> {
        match self.int(name)? {
            Some(v) if v < 0 => Err(invalid(name, &v.to_string(), "must be at least 0")),
            v => Ok(v),
        }
    }
    fn positive_int(&self, name: &str) -> Result<Option<i32>, ConfigError> {
        match self.int(name)? {
            Some(v) if v <= 0 => Err(invalid(name, &v.to_string(), "must be positive")),
            v => Ok(v),
        }
    }
    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.str(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(name, &v, "expected true or false")),
            })
            .transpose()
    }
}

fn timestamp_type(name: &str, v: &str) -> Result<TimestampType, ConfigError> {
    match v {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Err(invalid(name, v, "expected CreateTime or LogAppendTime")),
    }
}

/// The batch codec of a validated compression.type; `None` for `producer`.
fn compression_codec(v: &str) -> Option<i16> {
    match v {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

/// max.connections.per.ip.overrides: `address:count` pairs, comma-separated. Kafka also takes
/// host names here (resolved when a connection arrives); gregor takes IP addresses.
/// An internal topic's replication factor setting (Kafka: SHORT, at least 1; default 3).
fn replication_factor(s: &Settings<'_>, name: &str) -> Result<i16, ConfigError> {
    let value = s.positive_int(name)?.unwrap_or(3);
    i16::try_from(value).map_err(|_| invalid(name, &value.to_string(), "Value must be a short"))
}

fn per_ip_overrides(
    v: &str,
) -> Result<std::collections::HashMap<std::net::IpAddr, usize>, ConfigError> {
    let name = "max.connections.per.ip.overrides";
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (host, count) = entry
                .rsplit_once(':')
                .ok_or_else(|| invalid(name, v, "expected address:count pairs"))?;
            let ip = host
                .trim()
                .parse()
                .map_err(|_| invalid(name, v, format!("'{host}' is not an IP address")))?;
            let count = count
                .trim()
                .parse::<usize>()
                .map_err(|_| invalid(name, v, format!("'{count}' is not a count")))?;
            Ok((ip, count))
        })
        .collect()
}

/// (delete, compact) of a validated cleanup.policy list.
fn cleanup_policy(v: &str) -> (bool, bool) {
    let has = |w: &str| v.split(',').any(|p| p.trim() == w);
    (has("delete"), has("compact"))
}

/// Broker-wide log defaults; `log.retention.ms` beats `.minutes` beats `.hours`, as in Kafka.
fn broker_log_config(s: &Settings<'_>) -> Result<LogConfig, ConfigError> {
    let d = LogConfig::default();
    let retention_ms = match (
        s.long("log.retention.ms")?,
        s.long("log.retention.minutes")?,
        s.long("log.retention.hours")?,
    ) {
        (Some(ms), _, _) => ms,
        (None, Some(m), _) => m.saturating_mul(60_000),
        (None, None, Some(h)) => h.saturating_mul(3_600_000),
        (None, None, None) => d.retention_ms,
    };
    let segment_ms = match (s.long("log.roll.ms")?, s.long("log.roll.hours")?) {
        (Some(ms), _) => ms,
        (None, Some(h)) => h.saturating_mul(3_600_000),
        (None, None) => d.segment_ms,
    };
    let flush_messages = s
        .positive_long("log.flush.interval.messages")?
        .map_or(d.flush_messages, |v| v as u64);
    let flush_ms = match s.long("log.flush.interval.ms")? {
        Some(v) => v,
        None => s
            .long("log.flush.scheduler.interval.ms")?
            .unwrap_or(d.flush_ms),
    };
    Ok(LogConfig {
        segment_bytes: s
            .positive_int("log.segment.bytes")?
            .map_or(d.segment_bytes, |v| v as u64),
        segment_ms,
        index_interval_bytes: s
            .int("log.index.interval.bytes")?
            .map_or(d.index_interval_bytes, |v| v.max(0) as u64),
        segment_index_bytes: s
            .positive_int("log.index.size.max.bytes")?
            .map_or(d.segment_index_bytes, |v| v as u64),
        flush_messages,
        flush_ms,
        retention_ms,
        retention_bytes: s.long("log.retention.bytes")?.unwrap_or(d.retention_bytes),
        max_message_bytes: s
            .positive_int("message.max.bytes")?
            .map_or(d.max_message_bytes, |v| v as usize),
        timestamp_type: match s.str("log.message.timestamp.type") {
            Some(v) => timestamp_type("log.message.timestamp.type", &v)?,
            None => d.timestamp_type,
        },
        timestamp_before_max_ms: s
            .long("log.message.timestamp.before.max.ms")?
            .unwrap_or(d.timestamp_before_max_ms),
        timestamp_after_max_ms: s
            .long("log.message.timestamp.after.max.ms")?
            .unwrap_or(d.timestamp_after_max_ms),
        compression: match s.str("compression.type") {
            Some(v) => {
                check_topic_value("compression.type", &v)?;
                compression_codec(&v)
            }
            None => d.compression,
        },
        min_compaction_lag_ms: s
            .long("log.cleaner.min.compaction.lag.ms")?
            .unwrap_or(d.min_compaction_lag_ms),
        max_compaction_lag_ms: s
            .positive_long("log.cleaner.max.compaction.lag.ms")?
            .unwrap_or(d.max_compaction_lag_ms),
        delete_retention_ms: s
            .long("log.cleaner.delete.retention.ms")?
            .unwrap_or(d.delete_retention_ms),
        min_cleanable_dirty_ratio: match s.str("log.cleaner.min.cleanable.ratio") {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| invalid("log.cleaner.min.cleanable.ratio", &v, "expected 0..1"))?,
            None => d.min_cleanable_dirty_ratio,
        },
        ..match s.str("log.cleanup.policy") {
            Some(v) => {
                check_topic_value("cleanup.policy", &v)
                    .map_err(|_| invalid("log.cleanup.policy", &v, "expected compact, delete"))?;
                let (cleanup_delete, cleanup_compact) = cleanup_policy(&v);
                LogConfig {
                    cleanup_delete,
                    cleanup_compact,
                    ..d
                }
            }
            None => d,
        }
    })
}

/// Validates topic-level configs (CreateTopics) and overlays them on the broker's log defaults.
/// Kafka's value rules for topic configs (the validators of LogConfig's ConfigDef): a range for
/// numbers, a set of words for enumerations. Types are checked before this.
fn check_topic_value(name: &str, v: &str) -> Result<(), ConfigError> {
    let at_least = |min: f64| -> Result<(), ConfigError> {
        let n: f64 = v
            .parse()
            .map_err(|_| invalid(name, v, "expected a number"))?;
        if n < min {
            return Err(invalid(name, v, format!("Value must be at least {min}")));
        }
        Ok(())
    };
    let between = |min: f64, max: f64| -> Result<(), ConfigError> {
        let n: f64 = v
            .parse()
            .map_err(|_| invalid(name, v, "expected a number"))?;
        if n < min || n > max {
            return Err(invalid(
                name,
                v,
                format!("Value must be no less than {min} and no more than {max}"),
            ));
        }
        Ok(())
    };
    let one_of = |words: &[&str]| -> Result<(), ConfigError> {
        if words.contains(&v) {
            Ok(())
        } else {
            Err(invalid(
                name,
                v,
                format!("String must be one of: {}", words.join(", ")),
            ))
        }
    };
    match name {
        "cleanup.policy" => {
            let all_known = v
                .split(',')
                .map(str::trim)
                .all(|p| p == "compact" || p == "delete");
            if v.trim().is_empty() || !all_known {
                return Err(invalid(name, v, "String must be one of: compact, delete"));
            }
            Ok(())
        }
        "compression.type" => {
            one_of(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"])
        }
        "message.timestamp.type" => one_of(&["CreateTime", "LogAppendTime"]),
        "segment.bytes" => at_least(1_048_576.0),
        "segment.index.bytes" => at_least(4.0),
        "segment.ms" | "flush.messages" | "max.compaction.lag.ms" | "min.insync.replicas" => {
            at_least(1.0)
        }
        "retention.ms" | "local.retention.ms" => at_least(-2.0),
        "segment.jitter.ms"
        | "flush.ms"
        | "index.interval.bytes"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "file.delete.delay.ms"
        | "max.message.bytes"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms" => at_least(0.0),
        "min.cleanable.dirty.ratio" => between(0.0, 1.0),
        "compression.gzip.level" => between(-1.0, 9.0),
        "compression.lz4.level" => between(1.0, 17.0),
        "compression.zstd.level" => between(-131_072.0, 22.0),
        _ => Ok(()),
    }
}

/// Validates topic-level configs (CreateTopics) and overlays them on the broker's log defaults.
/// Unknown names and bad values get INVALID_CONFIG with this error's text.
pub fn topic_log_config(
    base: &LogConfig,
    topic: &BTreeMap<String, String>,
) -> Result<LogConfig, ConfigError> {
    let mut c = base.clone();
    for (name, value) in topic {
        let def = topic_def(name).ok_or_else(|| ConfigError::Unknown(name.clone()))?;
        def.kind.check(name, value)?;
        let v = value.trim();
        check_topic_value(name, v)?;
        // Past the checks above every numeric value parses.
        let num = || v.parse::<i64>().unwrap_or_default();
        match name.as_str() {
            "segment.bytes" => c.segment_bytes = num() as u64,
            "segment.ms" => c.segment_ms = num(),
            "index.interval.bytes" => c.index_interval_bytes = num() as u64,
            "segment.index.bytes" => c.segment_index_bytes = num() as u64,
            "flush.messages" => c.flush_messages = num() as u64,
            "flush.ms" => c.flush_ms = num(),
            "retention.ms" => c.retention_ms = num(),
            "retention.bytes" => c.retention_bytes = num(),
            "max.message.bytes" => c.max_message_bytes = num() as usize,
            "message.timestamp.type" => c.timestamp_type = timestamp_type(name, v)?,
            "message.timestamp.before.max.ms" => c.timestamp_before_max_ms = num(),
            "message.timestamp.after.max.ms" => c.timestamp_after_max_ms = num(),
            "cleanup.policy" => (c.cleanup_delete, c.cleanup_compact) = cleanup_policy(v),
            "compression.type" => c.compression = compression_codec(v),
            "min.compaction.lag.ms" => c.min_compaction_lag_ms = num(),
            "max.compaction.lag.ms" => c.max_compaction_lag_ms = num(),
            "delete.retention.ms" => c.delete_retention_ms = num(),
            "min.cleanable.dirty.ratio" => {
                c.min_cleanable_dirty_ratio = v.parse().unwrap_or(c.min_cleanable_dirty_ratio)
            }
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::election::ElectionPolicy;

    fn load(overrides: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let src = Sources {
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Sources::default()
        };
        Config::load(
            &src,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_match_kafka() {
        let c = load(&[], &[]).unwrap();
        assert_eq!(
            c.listeners,
            vec![ListenerConfig::plaintext("127.0.0.1", 9092)]
        );
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.queued_max_request_bytes, -1);
        assert_eq!(c.log, LogConfig::default());
    }

    /// KRaft's settings make a voter of a quorum between processes (combined mode only); without
    /// process.roles there is none, as before.
    #[test]
    fn kraft_settings_make_a_quorum_voter() {
        assert_eq!(load(&[], &[]).unwrap().quorum, None);
        let base = [
            "process.roles=broker,controller",
            "node.id=2",
            "controller.quorum.voters=1@h1:9093,2@127.0.0.1:9095,3@h3:9093",
            "controller.listener.names=CONTROLLER",
            "listeners=PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
        ];
        let c = load(&base, &[]).unwrap();
        let q = c.quorum.unwrap();
        assert_eq!(q.listen, Some(("127.0.0.1".to_string(), 9095)));
        assert_eq!(q.roles, ProcessRoles::Combined);
        assert_eq!(q.voters.len(), 3);
        assert_eq!(q.voters[&1], ("h1".to_string(), 9093));
        assert_eq!(
            c.listeners,
            vec![ListenerConfig::plaintext("127.0.0.1", 9094)]
        );
        assert!(!c.unused.contains(&"process.roles".to_string()));
        // Broker liveness: Kafka's defaults, or the settings (broker.rack for the registration).
        assert_eq!(
            (q.broker_heartbeat_interval_ms, q.broker_session_timeout_ms),
            (2000, 9000)
        );
        assert_eq!(c.broker_rack, None);
        assert!(q.controlled_shutdown_enable);
        assert_eq!(q.fetch_timeout_ms, 2000, "Kafka's default");
        let liveness = [
            "broker.heartbeat.interval.ms=500",
            "broker.session.timeout.ms=3000",
            "controller.quorum.fetch.timeout.ms=500",
            "broker.rack=r1",
            "controlled.shutdown.enable=false",
        ];
        let c = load(&[&base[..], &liveness[..]].concat(), &[]).unwrap();
        assert!(c.unused.is_empty(), "{:?}", c.unused);
        assert_eq!(c.broker_rack.as_deref(), Some("r1"));
        let q = c.quorum.unwrap();
        assert_eq!(
            (q.broker_heartbeat_interval_ms, q.broker_session_timeout_ms),
            (500, 3000)
        );
        assert!(!q.controlled_shutdown_enable);
        assert_eq!(q.fetch_timeout_ms, 500);
        assert_eq!(
            load(&base, &[]).unwrap().quorum.unwrap().metadata_log,
            MetadataLogSettings::default(),
            "Kafka's defaults"
        );
        let snapshots = [
            "metadata.log.max.record.bytes.between.snapshots=1000",
            "metadata.log.max.snapshot.interval.ms=0",
            "metadata.max.retention.bytes=-1",
            "metadata.max.retention.ms=60000",
            "internal.metadata.log.segment.bytes=4096",
        ];
        let c = load(&[&base[..], &snapshots[..]].concat(), &[]).unwrap();
        assert!(c.unused.is_empty(), "{:?}", c.unused);
        let m = c.quorum.unwrap().metadata_log;
        assert_eq!(
            (m.max_bytes_between_snapshots, m.max_snapshot_interval_ms),
            (1000, 0)
        );
        assert_eq!((m.retention_bytes, m.retention_ms), (-1, 60000));
        assert_eq!(m.segment_bytes, 4096);
        let small = ["metadata.log.segment.bytes=4096"];
        assert!(load(&[&base[..], &small[..]].concat(), &[]).is_err());
        let with = |change: &str| {
            let key = change.split('=').next().unwrap();
            let mut o: Vec<&str> = base
                .iter()
                .copied()
                .filter(|b| !b.starts_with(key))
                .collect();
            o.push(change);
            load(&o, &[])
        };
        for bad in [
            "process.roles=broker",
            "process.roles=observer",
            "node.id=4",
            "controller.quorum.voters=",
            "controller.quorum.voters=1@h1:9093,1@h2:9093",
            "controller.quorum.voters=x@h1:9093",
            "controller.listener.names=OTHER",
        ] {
            assert!(with(bad).is_err(), "{bad} is refused");
        }
        assert!(load(&[&base[..], &["controller.quorum.voters="]].concat(), &[]).is_err());
    }

    /// KIP-612's connection creation rates: broker-wide and per listener (Kafka's INT, at least
    /// 0, Int.MaxValue by default), and the inter-broker listener they exempt.
    #[test]
    fn connection_creation_rates() {
        let c = load(&[], &[]).unwrap();
        assert_eq!(c.max_connection_creation_rate, i32::MAX);
        assert!(c.listener_max_connection_creation_rate.is_empty());
        assert_eq!(c.inter_broker_listener.as_deref(), Some("PLAINTEXT"));
        let c = load(
            &[
                "listeners=PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9094",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
                "inter.broker.listener.name=INTERNAL",
                "max.connection.creation.rate=0",
                "listener.name.plaintext.max.connection.creation.rate=20",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.max_connection_creation_rate, 0);
        let per_listener: Vec<_> = c
            .listener_max_connection_creation_rate
            .into_iter()
            .collect();
        assert_eq!(per_listener, [("PLAINTEXT".to_string(), 20)]);
        assert_eq!(c.inter_broker_listener.as_deref(), Some("INTERNAL"));
        assert!(c.unused.is_empty(), "{:?}", c.unused);
        for bad in [
            "max.connection.creation.rate=-1",
            "max.connection.creation.rate=many",
            "listener.name.plaintext.max.connection.creation.rate=-5",
        ] {
            assert!(load(&[bad], &[]).is_err(), "{bad} is refused");
        }
    }

    /// The inter-broker listener as KafkaConfig picks it: inter.broker.listener.name, else the
    /// listener named by security.inter.broker.protocol (default PLAINTEXT); never both.
    #[test]
    fn the_inter_broker_listener_and_mechanism() {
        let base = [
            "process.roles=broker,controller",
            "node.id=1",
            "controller.quorum.voters=1@127.0.0.1:9095",
            "controller.listener.names=CONTROLLER",
            "listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093,INTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,INTERNAL:SSL,CONTROLLER:PLAINTEXT",
        ];
        let replication = |extra: &[&str]| {
            load(&[&base[..], extra].concat(), &[]).map(|c| c.quorum.unwrap().replication)
        };
        let r = replication(&[]).unwrap();
        assert_eq!(r.inter_broker_listener, "PLAINTEXT");
        assert_eq!(r.sasl_mechanism_inter_broker_protocol, "GSSAPI");
        let r = replication(&[
            "security.inter.broker.protocol=SASL_SSL",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        ])
        .unwrap();
        assert_eq!(r.inter_broker_listener, "SASL_SSL");
        assert_eq!(r.sasl_mechanism_inter_broker_protocol, "SCRAM-SHA-512");
        let c = load(
            &[
                &base[..],
                &[
                    "inter.broker.listener.name=internal",
                    "ssl.endpoint.identification.algorithm=",
                ],
            ]
            .concat(),
            &[],
        )
        .unwrap();
        assert_eq!(
            c.quorum.unwrap().replication.inter_broker_listener,
            "INTERNAL"
        );
        assert!(c.unused.is_empty(), "{:?}", c.unused);
        for bad in [
            &[
                "inter.broker.listener.name=INTERNAL",
                "security.inter.broker.protocol=SSL",
            ][..],
            &["security.inter.broker.protocol=SASL_PLAINTEXT"],
            &["security.inter.broker.protocol=TLS"],
            &["inter.broker.listener.name=OTHER"],
        ] {
            assert!(replication(bad).is_err(), "{bad:?} is refused");
        }
    }

    /// process.roles=broker: an observer of the voters, never one of them, with no controller
    /// listener of its own; process.roles=controller: a voter with no broker listener.
    #[test]
    fn broker_only_and_controller_only_roles() {
        let voters = "controller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093";
        let broker = [
            "process.roles=broker",
            "node.id=4",
            voters,
            "controller.listener.names=CONTROLLER",
            "listeners=PLAINTEXT://127.0.0.1:9092",
        ];
        let c = load(&broker, &[]).unwrap();
        let q = c.quorum.unwrap();
        assert_eq!((q.roles, q.listen), (ProcessRoles::Broker, None));
        assert_eq!(c.brokers, 1);
        let voter_id = [&broker[..], &["node.id=2"]].concat();
        assert!(
            load(&voter_id, &[]).is_err(),
            "a broker-only node is no voter"
        );
        let controller = [
            "process.roles=controller",
            "node.id=2",
            voters,
            "controller.listener.names=CONTROLLER",
            "listeners=CONTROLLER://127.0.0.1:9093",
        ];
        let c = load(&controller, &[]).unwrap();
        let q = c.quorum.unwrap();
        assert_eq!(q.roles, ProcessRoles::Controller);
        assert_eq!(q.listen, Some(("127.0.0.1".to_string(), 9093)));
        assert!(c.listeners.is_empty() && c.brokers == 0);
        let not_voter = [&controller[..], &["node.id=4"]].concat();
        assert!(load(&not_voter, &[]).is_err(), "a controller is a voter");
    }

    /// Elections follow Kafka's defaults (auto.leader.rebalance.enable true, unclean elections
    /// off) and their settings; the admin listener is off unless an address is given.
    #[test]
    fn election_settings_and_the_admin_listener() {
        let c = load(&[], &[]).unwrap();
        assert_eq!(c.elections, ElectionPolicy::default());
        assert!(c.elections.auto_leader_rebalance && !c.elections.unclean_default);
        assert_eq!(c.admin_listen, None);
        let settings = [
            "auto.leader.rebalance.enable=false",
            "unclean.leader.election.enable=true",
        ];
        let c = load(&settings, &[]).unwrap();
        assert!(!c.elections.auto_leader_rebalance && c.elections.unclean_default);
        assert!(c.unused.is_empty(), "{:?}", c.unused);
        let with_admin = |a: &str| {
            let src = Sources {
                admin_listen: Some(a.to_string()),
                ..Sources::default()
            };
            Config::load(&src, std::iter::empty())
        };
        assert_eq!(
            with_admin("127.0.0.1:9100")
                .unwrap()
                .admin_listen
                .as_deref(),
            Some("127.0.0.1:9100")
        );
        assert!(matches!(
            with_admin("nowhere"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    // KafkaConfig: "queued.max.request.bytes must be larger or equal to socket.request.max.bytes".
    #[test]
    fn the_request_pool_holds_at_least_one_frame() {
        let small = load(&["queued.max.request.bytes=1000"], &[]);
        assert!(
            matches!(small, Err(ConfigError::Invalid { .. })),
            "{small:?}"
        );
        let c = load(
            &[
                "queued.max.request.bytes=1000",
                "socket.request.max.bytes=1000",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.queued_max_request_bytes, 1000);
        assert_eq!(
            load(&["queued.max.request.bytes=0"], &[])
                .unwrap()
                .queued_max_request_bytes,
            0
        );
    }

    #[test]
    fn tables_have_kafkas_entries() {
        let d = broker_def("log.segment.bytes").unwrap();
        assert_eq!((d.kind, d.default), (ConfigType::Int, Some("1073741824")));
        let t = topic_def("retention.ms").unwrap();
        assert_eq!(t.synonym, Some("log.retention.ms"));
        assert!(broker_config_defs().len() > 300);
    }

    #[test]
    fn authorizer_settings() {
        assert_eq!(load(&[], &[]).unwrap().authorizer, None);
        let c = load(
            &[
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:admin;User:CN=broker",
                "allow.everyone.if.no.acl.found=true",
            ],
            &[],
        )
        .unwrap();
        let a = c.authorizer.unwrap();
        assert!(a.allow_everyone_if_no_acl_found);
        assert!(a.super_users.contains("User:CN=broker"));
        assert!(c.unused.is_empty(), "{:?}", c.unused);
        // Kafka 4 refuses to start with ZooKeeper's authorizer, or any class it cannot load.
        assert!(matches!(
            load(
                &["authorizer.class.name=kafka.security.authorizer.AclAuthorizer"],
                &[]
            ),
            Err(ConfigError::Invalid { .. })
        ));
        // An empty class name is no authorizer, as in Kafka.
        assert_eq!(
            load(&["authorizer.class.name="], &[]).unwrap().authorizer,
            None
        );
    }

    #[test]
    fn overrides_env_and_errors() {
        let c = load(
            &["num.partitions=4", "log.retention.hours=1"],
            &[("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")],
        )
        .unwrap();
        assert_eq!(c.num_partitions, 4);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.log.retention_ms, 3_600_000);
        assert!(matches!(
            load(&["num.partitons=4"], &[]),
            Err(ConfigError::Unknown(_))
        ));
        assert!(matches!(
            load(&["num.partitions=four"], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            load(&["auto.create.topics.enable=yes"], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        // Known but unused settings are accepted and reported.
        let c = load(
            &[
                "num.network.threads=3",
                "listener.name.internal.ssl.keymanager.algorithm=x",
                "listener.name.internal.ssl.keystore.location=/x",
                "listener.name.internal.scram-sha-512.sasl.jaas.config=x",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.unused,
            vec![
                "listener.name.internal.ssl.keymanager.algorithm".to_string(),
                "num.network.threads".to_string()
            ]
        );
        // JVM variables of the image are not configs.
        assert!(load(&[], &[("KAFKA_HEAP_OPTS", "-Xmx1G")]).is_ok());
    }

    /// Variables a shell or the Kafka scripts set do not stop start-up; an unknown name in a
    /// flag (or a file) is still a typo.
    #[test]
    fn unknown_environment_names_are_skipped_not_fatal() {
        let env = [
            ("KAFKA_HOME", "/opt/kafka"),
            ("KAFKA_OPTS", "-Dx=y"),
            ("KAFKA_CLUSTER_ID", "abc"),
            ("KAFKA_NUM_PARTITIONS", "3"),
        ];
        let c = load(&[], &env).unwrap();
        assert_eq!(c.num_partitions, 3, "a known name still applies");
        assert!(matches!(
            load(&["cluster.id=abc"], &[]),
            Err(ConfigError::Unknown(n)) if n == "cluster.id"
        ));
        assert!(matches!(
            load(&[], &[("KAFKA_NUM_PARTITIONS", "many")]),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn env_names_map_like_the_kafka_image() {
        assert_eq!(
            env_to_config_name("KAFKA_ADVERTISED_LISTENERS").as_deref(),
            Some("advertised.listeners")
        );
        assert_eq!(
            env_to_config_name("KAFKA_ABC__DEF").as_deref(),
            Some("abc_def")
        );
        assert_eq!(
            env_to_config_name("KAFKA_ABC___DEF").as_deref(),
            Some("abc-def")
        );
        assert_eq!(env_to_config_name("KAFKA_OPTS"), None);
        assert_eq!(env_to_config_name("KAFKA_HOME"), None);
        assert_eq!(env_to_config_name("PATH"), None);
    }

    #[test]
    fn listeners_from_kafka_syntax() {
        let c = load(
            &[
                "listeners=PLAINTEXT://:9093,CONTROLLER://:9094",
                "advertised.listeners=PLAINTEXT://kafka:19092",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(
            (c.listeners[0].host.as_str(), c.listeners[0].port),
            ("", 9093)
        );
        assert_eq!(
            c.listeners[0].advertised,
            Some(("kafka".to_string(), 19092))
        );
    }

    #[test]
    fn properties_file_syntax() {
        let p = parse_properties("# c\n! c\nnum.partitions = 3\nlog.dirs: /x\n\n");
        assert_eq!(
            p,
            vec![
                ("num.partitions".into(), "3".into()),
                ("log.dirs".into(), "/x".into())
            ]
        );
    }

    #[test]
    fn topic_overrides() {
        let base = LogConfig::default();
        let mut m = BTreeMap::new();
        m.insert("retention.ms".to_string(), "1000".to_string());
        m.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let c = topic_log_config(&base, &m).unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        m.insert("retention.msx".to_string(), "1".to_string());
        assert!(topic_log_config(&base, &m).is_err());
        for (k, bad) in [
            ("cleanup.policy", "sometimes"),
            ("min.insync.replicas", "0"),
            ("segment.bytes", "1000"),
        ] {
            let m = BTreeMap::from([(k.to_string(), bad.to_string())]);
            assert!(
                matches!(
                    topic_log_config(&base, &m),
                    Err(ConfigError::Invalid { .. })
                ),
                "{k}={bad}"
            );
        }
        let m = BTreeMap::from([("cleanup.policy".to_string(), "compact,delete".to_string())]);
        assert!(topic_log_config(&base, &m).is_ok());
    }
}
