//! Consumer groups: the classic protocol's group state machine (`classic`), the KIP-848 one
//! (`consumer`), the KIP-932 share group's (`share`), the KIP-1071 streams group's (`streams`), the shard of one `__consumer_offsets`
//! partition with its groups, offsets and replay (`shard`), the coordinator that routes requests to shards on the coordinator runtime
//! (`coordinator`), and Kafka's record formats in `__consumer_offsets` (`offsets_topic`,
//! `consumer_records`, `share_records`, `streams_records`).

pub mod classic;
pub mod consumer;
pub mod consumer_records;
pub mod coordinator;
pub mod group_config;
pub mod offsets_topic;
pub mod shard;
pub mod share;
pub mod share_records;
pub mod streams;
pub mod streams_records;

/// The members of a KIP-848 or share group whose session deadline passed by `now`, by id.
pub fn expired_members<M>(
    members: &indexmap::IndexMap<String, M>,
    now: i64,
    deadline_ms: impl Fn(&M) -> i64,
) -> Vec<String> {
    members
        .iter()
        .filter(|(_, m)| deadline_ms(m) <= now)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The group settings, under Kafka's names (group.*, offsets.*).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i64,
    pub max_size: usize,
    pub offsets_topic_partitions: i32,
    pub offset_metadata_max_bytes: usize,
    /// offsets.retention.minutes, in ms: committed offsets of an empty group expire this long
    /// after they were committed.
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    /// group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms (KIP-848).
    pub consumer_session_timeout_ms: i64,
    pub consumer_heartbeat_interval_ms: i32,
    /// group.consumer.min/max.session.timeout.ms and .heartbeat.interval.ms: the range a
    /// group's own `consumer.*` config may take (`group_config`).
    pub consumer_session_bounds: (i32, i32),
    pub consumer_heartbeat_bounds: (i32, i32),
    /// The same for streams groups (group.streams.min/max.*).
    pub streams_session_bounds: (i32, i32),
    pub streams_heartbeat_bounds: (i32, i32),
    /// group.share.session.timeout.ms, group.share.heartbeat.interval.ms, group.share.max.size.
    pub share: share::ShareGroupConfig,
    /// group.streams.session.timeout.ms, group.streams.heartbeat.interval.ms,
    /// group.streams.max.size (KIP-1071).
    pub streams: streams::StreamsGroupConfig,
    /// group.share.record.lock.duration.ms, group.share.delivery.count.limit and
    /// group.share.partition.max.record.locks: each share-partition's limits.
    pub share_partition: crate::share::partition::SharePartitionConfig,
}

impl Default for GroupConfig {
    /// Kafka 4.1's defaults.
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_topic_partitions: 50,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_session_bounds: (45_000, 60_000),
            consumer_heartbeat_bounds: (5_000, 15_000),
            streams_session_bounds: (45_000, 60_000),
            streams_heartbeat_bounds: (5_000, 15_000),
            share: share::ShareGroupConfig::default(),
            streams: streams::StreamsGroupConfig::default(),
            share_partition: crate::share::partition::SharePartitionConfig::default(),
        }
    }
}
