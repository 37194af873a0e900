//! Prometheus metrics: `GET /metrics` on the admin listener (`--admin-listen`), in the
//! Prometheus text format (0.0.4) through the `prometheus-client` crate's encoder. Names follow
//! Kafka's JMX metrics as the common exporters translate them, so dashboards and alerts written
//! for Kafka read them unchanged: the JMX exporter's rules for the broker's MBeans
//! (`kafka_server_brokertopicmetrics_bytesin_total{topic}`, `kafka_network_requestmetrics_*`,
//! `kafka_log_log_size`, `kafka_server_replicamanager_*`, `kafka_controller_kafkacontroller_*`)
//! and kafka-exporter's for topics and groups (`kafka_topic_partition_current_offset`,
//! `kafka_consumergroup_lag`).
//!
//! Two kinds of figure:
//! - counters the request path bumps: atomics only, no locks and no allocation (requests and
//!   their total time in fixed buckets by API key; bytes and messages per partition, summed per
//!   topic at scrape time, and for all topics in counters of their own so that deleting a topic
//!   never makes a total go back);
//! - gauges read from the broker's state when scraped: log sizes and offsets (each partition's
//!   lock taken once, briefly), partition health from the metadata image, groups, their
//!   committed offsets and lag.
//!
//! Errors by code (`kafka_network_requestmetrics_errors_total{request,error}`) are counted from
//! the error codes a response carries (`ErrorCodes`), as Kafka's RequestChannel counts
//! `response.errorCounts()`; codes other than NONE only, so a success costs nothing there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::broker::Broker;
use crate::protocol::error_codes::ErrorCodes;
use crate::protocol::errors;

/// Upper bounds (ms) of the request-time histogram's buckets; `+Inf` follows.
const TIME_BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 30000.0,
];
/// API keys are below this (Kafka 4.4's highest is in the 90s).
const API_SLOTS: usize = 128;

/// One API's requests: how many, and their total time (receipt to answer) in buckets.
#[derive(Default)]
struct RequestStats {
    count: AtomicU64,
    time_us: AtomicU64,
    /// Per bucket of TIME_BUCKETS_MS, then one for `+Inf`.
    buckets: [AtomicU64; TIME_BUCKETS_MS.len() + 1],
}

/// A partition's traffic, bumped by Produce and Fetch (Kafka's BrokerTopicMetrics per topic).
#[derive(Debug, Default)]
pub struct PartitionStats {
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub produce_requests: AtomicU64,
    pub failed_produce_requests: AtomicU64,
    pub fetch_requests: AtomicU64,
    pub failed_fetch_requests: AtomicU64,
}

impl PartitionStats {
    fn get(&self) -> [u64; 7] {
        [
            &self.bytes_in,
            &self.messages_in,
            &self.bytes_out,
            &self.produce_requests,
            &self.failed_produce_requests,
            &self.fetch_requests,
            &self.failed_fetch_requests,
        ]
        .map(|c| c.load(Relaxed))
    }
}

/// The BrokerTopicMetrics counters in `PartitionStats::get`'s order: (name, help).
const TOPIC_COUNTERS: [(&str, &str); 7] = [
    (
        "kafka_server_brokertopicmetrics_bytesin",
        "Bytes of record batches appended by producers.",
    ),
    (
        "kafka_server_brokertopicmetrics_messagesin",
        "Records appended by producers.",
    ),
    (
        "kafka_server_brokertopicmetrics_bytesout",
        "Bytes of records sent to consumers and followers.",
    ),
    (
        "kafka_server_brokertopicmetrics_totalproducerequests",
        "Partition appends asked for by Produce requests.",
    ),
    (
        "kafka_server_brokertopicmetrics_failedproducerequests",
        "Partition appends of Produce requests that failed.",
    ),
    (
        "kafka_server_brokertopicmetrics_totalfetchrequests",
        "Partition reads asked for by Fetch requests.",
    ),
    (
        "kafka_server_brokertopicmetrics_failedfetchrequests",
        "Partition reads of Fetch requests that failed.",
    ),
];

/// The process's counters (every broker of `--brokers N` shares them).
pub struct BrokerMetrics {
    requests: Box<[RequestStats]>,
    /// (api key, error code) → responses carrying it; NONE is not counted.
    errors: Mutex<BTreeMap<(i16, i16), u64>>,
    /// All topics' traffic, in `PartitionStats::get`'s order.
    all_topics: PartitionStats,
    /// Open connections by (broker, listener).
    connections: Mutex<BTreeMap<(i32, String), Arc<AtomicI64>>>,
    /// Connection creation throttles (KIP-612) by (broker, listener).
    accept_throttles: Mutex<BTreeMap<(i32, String), Arc<AcceptThrottles>>>,
}

/// One listener's connection creation throttles (KIP-612), bumped by its acceptor
/// (`server::quotas`). Kafka's `socket-server-metrics` show the average of the throttle times
/// given (`connection-accept-throttle-time`, `ip-connection-accept-throttle-time`); here the
/// last one given, as the client quotas' throttle-time gauges, beside counts of the connections
/// throttled.
#[derive(Debug, Default)]
pub struct AcceptThrottles {
    /// Connections the acceptor waited before taking on, for max.connection.creation.rate
    /// (broker-wide or the listener's).
    pub delayed: AtomicU64,
    pub last_delay_ms: AtomicI64,
    /// Connections accepted and closed unserved for their address's connection_creation_rate.
    pub ip_throttled: AtomicU64,
    pub last_ip_throttle_ms: AtomicI64,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            requests: (0..API_SLOTS).map(|_| RequestStats::default()).collect(),
            errors: Mutex::default(),
            all_topics: PartitionStats::default(),
            connections: Mutex::default(),
            accept_throttles: Mutex::default(),
        }
    }
}

/// Holds a connection in the open-connections gauge until dropped.
pub struct ConnectionGauge(Arc<AtomicI64>);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl BrokerMetrics {
    /// One request answered (or closed on) after `elapsed`.
    pub fn request(&self, api: ApiKey, elapsed: Duration) {
        let Some(s) = usize::try_from(api as i16)
            .ok()
            .and_then(|k| self.requests.get(k))
        else {
            return;
        };
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let ms = us as f64 / 1000.0;
        let bucket = TIME_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(TIME_BUCKETS_MS.len());
        s.count.fetch_add(1, Relaxed);
        s.time_us.fetch_add(us, Relaxed);
        s.buckets[bucket].fetch_add(1, Relaxed);
    }

    /// The error codes of one response (NONE among them is skipped).
    pub fn response_errors(&self, api: ApiKey, response: &dyn ErrorCodes) {
        let mut errors = None;
        response.error_codes(&mut |code| {
            if code != errors::NONE {
                let e = errors.get_or_insert_with(|| self.errors.lock());
                *e.entry((api as i16, code)).or_default() += 1;
            }
        });
    }

    /// A Produce append to `stats`' partition: `Some((bytes, records))` when it was written.
    pub fn produced(&self, stats: &PartitionStats, appended: Option<(u64, u64)>) {
        for s in [stats, &self.all_topics] {
            s.produce_requests.fetch_add(1, Relaxed);
            match appended {
                Some((bytes, records)) => {
                    s.bytes_in.fetch_add(bytes, Relaxed);
                    s.messages_in.fetch_add(records, Relaxed);
                }
                None => {
                    s.failed_produce_requests.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// A Fetch read of `stats`' partition: `Some(bytes)` sent, or `None` when it failed.
    pub fn fetched(&self, stats: &PartitionStats, sent: Option<u64>) {
        for s in [stats, &self.all_topics] {
            s.fetch_requests.fetch_add(1, Relaxed);
            match sent {
                Some(bytes) => s.bytes_out.fetch_add(bytes, Relaxed),
                None => s.failed_fetch_requests.fetch_add(1, Relaxed),
            };
        }
    }

    /// A connection accepted by `node`'s `listener`; it counts as open until the guard drops.
    pub fn connection_opened(&self, node: i32, listener: &str) -> ConnectionGauge {
        let gauge = Arc::clone(
            self.connections
                .lock()
                .entry((node, listener.to_string()))
                .or_default(),
        );
        gauge.fetch_add(1, Relaxed);
        ConnectionGauge(gauge)
    }

    /// The connection creation throttles of `node`'s `listener`.
    pub fn accept_throttles(&self, node: i32, listener: &str) -> Arc<AcceptThrottles> {
        let mut all = self.accept_throttles.lock();
        Arc::clone(all.entry((node, listener.to_string())).or_default())
    }
}

/// The text `GET /metrics` answers.
pub fn render(broker: &Arc<Broker>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(Arc::clone(broker))));
    let mut out = String::new();
    // Writing to a String cannot fail; a collector's own error would end the text early.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Scrape(Arc<Broker>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its samples by label set, written under one HELP/TYPE header.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, i64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: MetricType) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Labels, value: impl TryInto<i64>) {
        self.samples
            .push((labels, value.try_into().unwrap_or(i64::MAX)));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            let sample = metric.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => {
                    ConstCounter::new(value.max(&0).unsigned_abs()).encode(sample)?
                }
                _ => ConstGauge::new(*value).encode(sample)?,
            }
        }
        Ok(())
    }
}

fn api_name(key: usize) -> Option<String> {
    let api = ApiKey::try_from(i16::try_from(key).ok()?).ok()?;
    Some(format!("{api:?}").trim_end_matches("Key").to_string())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let broker = &self.0;
        let m = &broker.metrics;
        request_metrics(m, &mut encoder)?;
        for f in traffic_families(broker)
            .into_iter()
            .chain(connection_families(m))
            .chain(partition_families(broker))
            .chain(group_families(broker))
            .chain(quota_families(broker))
        {
            f.encode(&mut encoder)?;
        }
        Ok(())
    }
}

fn request_metrics(
    m: &BrokerMetrics,
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let mut requests = Family::new(
        "kafka_network_requestmetrics_requests",
        "Requests answered (or ended by closing the connection), by API.",
        MetricType::Counter,
    );
    let served: Vec<(String, &RequestStats)> = (m.requests.iter().enumerate())
        .filter(|(_, s)| s.count.load(Relaxed) > 0)
        .filter_map(|(k, s)| Some((api_name(k)?, s)))
        .collect();
    for (name, s) in &served {
        requests.add(vec![("request", name.clone())], s.count.load(Relaxed));
    }
    requests.encode(encoder)?;
    let mut time = encoder.encode_descriptor(
        "kafka_network_requestmetrics_totaltimems",
        "Time from a request's receipt to its answer, in milliseconds, by API.",
        None,
        MetricType::Histogram,
    )?;
    for (name, s) in &served {
        let labels = vec![("request", name.clone())];
        let buckets: Vec<(f64, u64)> = (TIME_BUCKETS_MS.iter().copied())
            .chain([f64::INFINITY])
            .zip(s.buckets.iter().map(|b| b.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum_ms = s.time_us.load(Relaxed) as f64 / 1000.0;
        time.encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                sum_ms, count, &buckets, None,
            )?;
    }
    let mut errors = Family::new(
        "kafka_network_requestmetrics_errors",
        "Error codes in responses, by API and error (NONE is not counted).",
        MetricType::Counter,
    );
    for ((api, code), n) in m.errors.lock().iter() {
        let Some(request) = usize::try_from(*api).ok().and_then(api_name) else {
            continue;
        };
        let error = errors::name_of(*code);
        errors.add(vec![("request", request), ("error", error)], *n);
    }
    errors.encode(encoder)
}

/// BrokerTopicMetrics: per topic (its partitions summed) and for all topics (no label).
fn traffic_families(broker: &Broker) -> Vec<Family> {
    let mut families: Vec<Family> = TOPIC_COUNTERS
        .iter()
        .map(|(name, help)| Family::new(name, help, MetricType::Counter))
        .collect();
    for (f, v) in families.iter_mut().zip(broker.metrics.all_topics.get()) {
        f.add(Vec::new(), v);
    }
    for topic in broker.catalog.all() {
        let mut sums = [0u64; 7];
        for p in &topic.partitions {
            for (sum, v) in sums.iter_mut().zip(p.stats.get()) {
                *sum += v;
            }
        }
        for (f, v) in families.iter_mut().zip(sums) {
            f.add(vec![("topic", topic.name.clone())], v);
        }
    }
    families
}

fn connection_families(m: &BrokerMetrics) -> Vec<Family> {
    let labels = |node: &i32, listener: &String| {
        vec![("broker", node.to_string()), ("listener", listener.clone())]
    };
    let mut open = Family::new(
        "kafka_server_socket_server_metrics_connection_count",
        "Open client connections, by broker and listener.",
        MetricType::Gauge,
    );
    for ((node, listener), n) in m.connections.lock().iter() {
        open.add(labels(node, listener), n.load(Relaxed));
    }
    let mut families = vec![open];
    let throttles = m.accept_throttles.lock();
    type Figure = fn(&AcceptThrottles) -> i64;
    let figures: [(&'static str, &'static str, MetricType, Figure); 4] = [
        (
            "kafka_server_socket_server_metrics_connection_accept_throttled",
            "Connections the acceptor waited for under max.connection.creation.rate (broker-wide or the listener's).",
            MetricType::Counter,
            |t| t.delayed.load(Relaxed).try_into().unwrap_or(i64::MAX),
        ),
        (
            "kafka_server_socket_server_metrics_connection_accept_throttle_time",
            "The last wait max.connection.creation.rate gave the acceptor, ms.",
            MetricType::Gauge,
            |t| t.last_delay_ms.load(Relaxed),
        ),
        (
            "kafka_server_socket_server_metrics_ip_connection_accept_throttled",
            "Connections closed unserved for their address's connection_creation_rate quota.",
            MetricType::Counter,
            |t| t.ip_throttled.load(Relaxed).try_into().unwrap_or(i64::MAX),
        ),
        (
            "kafka_server_socket_server_metrics_ip_connection_accept_throttle_time",
            "The last throttle time an address's connection_creation_rate gave, ms.",
            MetricType::Gauge,
            |t| t.last_ip_throttle_ms.load(Relaxed),
        ),
    ];
    for (name, help, kind, figure) in figures {
        let mut family = Family::new(name, help, kind);
        for ((node, listener), t) in throttles.iter() {
            family.add(labels(node, listener), figure(t));
        }
        families.push(family);
    }
    families
}

/// Per-partition gauges, in the order `partition_families` fills them: the log's (read under its
/// lock), then health from the metadata image.
const PARTITION_GAUGES: [(&str, &str); 10] = [
    ("kafka_log_log_size", "Bytes of a partition's log on disk."),
    (
        "kafka_log_log_logstartoffset",
        "A partition's log start offset.",
    ),
    (
        "kafka_log_log_logendoffset",
        "A partition's log end offset.",
    ),
    (
        "kafka_log_log_numlogsegments",
        "Segments of a partition's log.",
    ),
    (
        "kafka_topic_partition_current_offset",
        "A partition's high watermark (kafka-exporter's current offset).",
    ),
    (
        "kafka_topic_partition_oldest_offset",
        "A partition's log start offset (kafka-exporter's oldest offset).",
    ),
    (
        "kafka_topic_partition_in_sync_replica",
        "In-sync replicas of a partition.",
    ),
    ("kafka_topic_partition_replicas", "Replicas of a partition."),
    (
        "kafka_topic_partition_leader",
        "A partition's leader (-1: none).",
    ),
    (
        "kafka_topic_partition_under_replicated_partition",
        "1 when a partition has fewer in-sync replicas than replicas.",
    ),
];

/// A gauge without labels.
fn single(name: &'static str, help: &'static str, v: impl TryInto<i64>) -> Family {
    let mut f = Family::new(name, help, MetricType::Gauge);
    f.add(Vec::new(), v);
    f
}

/// Logs (size, offsets, segments) and partition health from the metadata image.
fn partition_families(broker: &Broker) -> Vec<Family> {
    let mut gauges: Vec<Family> = (PARTITION_GAUGES.iter())
        .map(|(name, help)| Family::new(name, help, MetricType::Gauge))
        .collect();
    let mut partitions = Family::new(
        "kafka_topic_partitions",
        "Partitions of a topic.",
        MetricType::Gauge,
    );
    let (mut total, mut under_total, mut offline) = (0u64, 0u64, 0u64);
    let image = broker.catalog.image();
    for topic in broker.catalog.all() {
        let registered = image.topics.get_by_name(&topic.name);
        partitions.add(vec![("topic", topic.name.clone())], topic.partitions.len());
        for p in &topic.partitions {
            let labels = vec![
                ("topic", topic.name.clone()),
                ("partition", p.index.to_string()),
            ];
            let mut values = p.with_log(|l| {
                let start = l.log_start_offset();
                let (size, segments) = (l.size_bytes() as i64, l.segment_count() as i64);
                vec![
                    size,
                    start,
                    l.log_end_offset(),
                    segments,
                    l.high_watermark(),
                    start,
                ]
            });
            total += 1;
            if let Some(r) = registered.and_then(|t| t.partitions.get(&p.index)) {
                let is_under = r.isr.len() < r.replicas.len();
                under_total += u64::from(is_under);
                offline += u64::from(r.leader < 0);
                let (isr, replicas) = (r.isr.len() as i64, r.replicas.len() as i64);
                values.extend([isr, replicas, i64::from(r.leader), i64::from(is_under)]);
            }
            for (f, v) in gauges.iter_mut().zip(values) {
                f.add(labels.clone(), v);
            }
        }
    }
    gauges.extend([
        partitions,
        single(
            "kafka_server_replicamanager_partitioncount",
            "Partitions this process holds.",
            total,
        ),
        single(
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions with fewer in-sync replicas than replicas.",
            under_total,
        ),
        single(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader.",
            offline,
        ),
        single(
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster.",
            image.topics.len(),
        ),
        single(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1: this process runs the metadata log.",
            1,
        ),
    ]);
    gauges
}

/// Clients with a byte-rate or request quota: their rate and last throttle time (Kafka's
/// `Produce`, `Fetch` and `Request` quota metrics, `kafka.server:type=Produce,user=..,client-id=..`).
fn quota_families(broker: &Broker) -> Vec<Family> {
    use crate::server::client_quotas::QuotaType;
    let now = broker.clock.now_ms();
    let snapshot = broker.client_quotas.snapshot(now);
    let mut families = Vec::new();
    for (q, rate_name, throttle_name) in [
        (
            QuotaType::Produce,
            "kafka_server_produce_byte_rate",
            "kafka_server_produce_throttle_time",
        ),
        (
            QuotaType::Fetch,
            "kafka_server_fetch_byte_rate",
            "kafka_server_fetch_throttle_time",
        ),
        (
            QuotaType::Request,
            "kafka_server_request_request_time",
            "kafka_server_request_throttle_time",
        ),
    ] {
        let help = match q {
            QuotaType::Request => "Percent of one thread's time spent on the client's requests.",
            _ => "Bytes per second over the quota window, by client.",
        };
        let mut rate = Family::new(rate_name, help, MetricType::Gauge);
        let mut throttle = Family::new(
            throttle_name,
            "The last throttle time given, ms, by client.",
            MetricType::Gauge,
        );
        for (_, user, client, r, t) in snapshot.iter().filter(|s| s.0 == q) {
            let labels = vec![("user", user.clone()), ("client_id", client.clone())];
            rate.add(labels.clone(), r.round() as i64);
            throttle.add(labels, *t);
        }
        families.extend([rate, throttle]);
    }
    families
}

/// Groups by protocol and state, committed offsets and lag (what kafka-exporter and Burrow
/// compute: the partition's high watermark minus the committed offset, never below 0).
fn group_families(broker: &Broker) -> Vec<Family> {
    use MetricType::Gauge;
    let mut count = Family::new(
        "kafka_server_group_coordinator_metrics_group_count",
        "Groups, by protocol (classic or consumer) and state.",
        Gauge,
    );
    let mut by_kind: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for g in broker.groups.list_groups() {
        *by_kind.entry((g.group_type, g.state)).or_default() += 1;
    }
    for ((protocol, state), n) in by_kind {
        let labels = vec![
            ("protocol", protocol.to_string()),
            ("state", state.to_string()),
        ];
        count.add(labels, n);
    }
    let mut offset = Family::new(
        "kafka_consumergroup_current_offset",
        "A group's committed offset for a partition.",
        Gauge,
    );
    let mut lag = Family::new(
        "kafka_consumergroup_lag",
        "A partition's high watermark minus the group's committed offset.",
        Gauge,
    );
    for c in committed_offsets(broker) {
        let group_lag = c.lag();
        let labels = vec![
            ("consumergroup", c.group),
            ("topic", c.topic),
            ("partition", c.partition.to_string()),
        ];
        offset.add(labels.clone(), c.committed);
        if let Some(group_lag) = group_lag {
            lag.add(labels, group_lag);
        }
    }
    vec![count, offset, lag]
}

/// A group's committed offset for a partition, beside the partition's high watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// `None` when the partition is gone.
    pub high_watermark: Option<i64>,
}

impl CommittedOffset {
    /// The high watermark minus the committed offset, never below 0.
    pub fn lag(&self) -> Option<i64> {
        self.high_watermark.map(|hw| (hw - self.committed).max(0))
    }
}

/// Every group's committed offsets with their partitions' high watermarks, sorted by group,
/// topic and partition (what the metrics and the console compute lag from).
pub fn committed_offsets(broker: &Broker) -> Vec<CommittedOffset> {
    let mut hw_of: BTreeMap<(String, i32), Option<i64>> = BTreeMap::new();
    let all = broker.groups.all_committed_offsets();
    (all.into_iter())
        .map(|(group, topic, partition, committed)| {
            let high_watermark = *hw_of.entry((topic.clone(), partition)).or_insert_with(|| {
                let t = broker.catalog.get(&topic)?;
                Some(t.partition(partition)?.offsets().1)
            });
            CommittedOffset {
                group,
                topic,
                partition,
                committed,
                high_watermark,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_lands_in_its_bucket() {
        let m = BrokerMetrics::default();
        m.request(ApiKey::Produce, Duration::from_micros(700));
        m.request(ApiKey::Produce, Duration::from_secs(60));
        let s = &m.requests[0];
        assert_eq!(s.count.load(Relaxed), 2);
        assert_eq!(
            s.buckets[1].load(Relaxed),
            1,
            "0.7 ms is in the 1 ms bucket"
        );
        assert_eq!(
            s.buckets[TIME_BUCKETS_MS.len()].load(Relaxed),
            1,
            "60 s in +Inf"
        );
        assert_eq!(s.time_us.load(Relaxed), 60_000_700);
    }

    #[test]
    fn errors_skip_none_and_count_each_code() {
        let m = BrokerMetrics::default();
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let fetch = |codes: &[i16]| {
            let partitions = codes
                .iter()
                .map(|c| PartitionData::default().with_error_code(*c));
            kafka_protocol::messages::FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default().with_partitions(partitions.collect()),
            ])
        };
        m.response_errors(ApiKey::Fetch, &fetch(&[0, 0]));
        assert!(m.errors.lock().is_empty());
        m.response_errors(ApiKey::Fetch, &fetch(&[0, 3, 3, 6]));
        let e = m.errors.lock();
        assert_eq!(e.get(&(1, 3)), Some(&2));
        assert_eq!(e.get(&(1, 6)), Some(&1));
    }

    #[test]
    fn partition_and_all_topic_traffic() {
        let m = BrokerMetrics::default();
        let p = PartitionStats::default();
        m.produced(&p, Some((100, 3)));
        m.produced(&p, None);
        m.fetched(&p, Some(40));
        m.fetched(&p, None);
        assert_eq!(p.get(), [100, 3, 40, 2, 1, 2, 1]);
        assert_eq!(m.all_topics.get(), p.get());
    }

    #[test]
    fn connections_count_while_open() {
        let m = BrokerMetrics::default();
        let a = m.connection_opened(1, "PLAINTEXT");
        let b = m.connection_opened(1, "PLAINTEXT");
        let gauge =
            |m: &BrokerMetrics| m.connections.lock()[&(1, "PLAINTEXT".to_string())].load(Relaxed);
        assert_eq!(gauge(&m), 2);
        drop(a);
        assert_eq!(gauge(&m), 1);
        drop(b);
        assert_eq!(gauge(&m), 0);
    }
}
