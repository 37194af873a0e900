//! Storage: record batches in a segmented log on local disk, in Kafka's on-disk layout.
//!
//! - `batch`: the RecordBatch v2 header view, CRC and produce-time checks;
//! - `control`: control batches, the transaction markers (EndTransactionMarker);
//! - `index`: the sparse `.index` and `.timeindex` files and the `.txnindex` of aborted
//!   transactions;
//! - `segment`: one `.log` file with its indexes, scanning and reading;
//! - `record_validator`: every record of a produced batch walked as Kafka's LogValidator does,
//!   compressed ones through bounded streaming decoders;
//! - `records`: record-level checks and recompression, only where a topic config needs them;
//! - `partition`: a partition's log (append, read, recovery, retention, flush);
//! - `leader_epoch`: the leader epoch cache (`leader-epoch-checkpoint`) OffsetForLeaderEpoch
//!   answers from;
//! - `replication`: a partition's replication state (the leader's view of its followers, the
//!   high watermark, ISR shrink and expand candidates, KIP-279 divergence and truncation);
//! - `checkpoint`: Kafka's text format of checkpoint files;
//! - `manager`: the log manager, which makes, opens and deletes partition logs as the metadata
//!   image changes;
//! - `cleaner`: log compaction for `cleanup.policy=compact`;
//! - `open_files`: the bounded cache of open segment files (descriptors come back);
//! - `storage`: the trait segment files are opened and written through (faults injected in tests);
//! - `check`: the offline, read-only consistency check of logs and indexes (`gregor-check`).

pub mod batch;
pub mod check;
pub mod checkpoint;
pub mod cleaner;
pub mod control;
pub mod index;
pub mod leader_epoch;
pub mod manager;
pub mod open_files;
pub mod partition;
pub mod record_validator;
pub mod records;
pub mod replication;
pub mod segment;
pub mod storage;

use crate::txn::producer_state::VerificationGuard;

/// Who an append comes from (Kafka's AppendOrigin): client batches get the producer-state
/// checks that internal writes of the broker's own coordinators do not need. (Kafka's
/// REPLICATION comes with replication.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A Produce request. Its producer id must be one the broker handed out: below
    /// `producer_ids_issued` (see `txn::producer_ids`). A transactional batch that starts a
    /// transaction in the partition carries the guard of its verification (see
    /// `txn::producer_state`; SENTINEL otherwise).
    Client {
        producer_ids_issued: i64,
        verification_guard: VerificationGuard,
    },
    /// The broker's own records: `__consumer_offsets`, transactional offset commits, transaction
    /// markers. May write control batches and transactional batches without sequences; the
    /// producer epoch is checked, sequences are not (ProducerAppendInfo.maybeValidateDataBatch).
    Coordinator,
    /// The metadata quorum's own batches (Kafka's RAFT_LEADER): its control batches are Raft's
    /// (LeaderChange, Voters), not transaction markers, and are stored as written.
    RaftLeader,
}

#[cfg(test)]
impl AppendOrigin {
    /// A Produce request's origin in tests: every producer id counts as handed out.
    pub const TEST_CLIENT: AppendOrigin = AppendOrigin::Client {
        producer_ids_issued: i64::MAX,
        verification_guard: VerificationGuard::SENTINEL,
    };
}

/// How far a read may go (Kafka's FetchIsolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchIsolation {
    /// read_uncommitted consumers: up to the high watermark, control batches included.
    HighWatermark,
    /// read_committed consumers (isolation_level 1): up to the last stable offset.
    TxnCommitted,
    /// A follower replicating the partition: everything the leader has (LOG_END).
    LogEnd,
}

/// How record timestamps are set (message.timestamp.type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// The effective settings of one partition log: broker defaults overlaid with topic configs.
/// Field names follow the topic-level config names (segment.bytes → `segment_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    /// segment.index.bytes: the most an offset or time index may hold; a full one rolls the
    /// segment (Kafka's LogSegment.shouldRoll), which bounds the index entries kept in memory.
    pub segment_index_bytes: u64,
    pub flush_messages: u64,
    pub flush_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// cleanup.policy contains `delete`: retention applies and DeleteRecords is allowed.
    pub cleanup_delete: bool,
    /// cleanup.policy contains `compact`: every produced record needs a key.
    pub cleanup_compact: bool,
    /// compression.type as a batch codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd); `None` is
    /// `producer`, which keeps the client's codec.
    pub compression: Option<i16>,
    /// Compaction (see `cleaner`): min/max.compaction.lag.ms, delete.retention.ms and
    /// min.cleanable.dirty.ratio.
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    /// Kafka 4.1's defaults.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: i64::MAX as u64,
            flush_ms: i64::MAX,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            cleanup_delete: true,
            cleanup_compact: false,
            compression: None,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}
