//! Producer ids, idempotence state and transactions: the transaction coordinator
//! (`coordinator`, one `shard` per `__transaction_state` partition on the coordinator runtime),
//! its state machine (`metadata`), its records (`transaction_log`) and the way its markers
//! reach partitions (`markers`).

pub mod coordinator;
pub mod markers;
pub mod metadata;
pub mod producer_ids;
pub mod producer_state;
pub mod remote;
pub mod shard;
pub mod transaction_log;

/// Kafka's `transaction.version` feature (KIP-890 part 2), as ApiVersions v3+ shows it: the
/// levels this broker supports, and the one finalized for the cluster. A 4.x client ends its
/// transactions the TV2 way (EndTxn v5, Produce v12+ and TxnOffsetCommit v5+ adding partitions
/// implicitly) once the finalized level is 2; others go on with TV1 (EndTxn v0-4).
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
pub const TRANSACTION_VERSION_SUPPORTED: (i16, i16) = (metadata::TV_0, metadata::TV_2);
pub const FINALIZED_TRANSACTION_VERSION: i16 = metadata::TV_2;

/// The transaction coordinator's settings, under Kafka's names (transaction.*,
/// transactional.id.*).
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    /// transaction.state.log.num.partitions
    pub state_log_num_partitions: i32,
    /// transaction.max.timeout.ms: InitProducerId refuses a longer transaction.timeout.ms.
    pub max_timeout_ms: i32,
    /// transactional.id.expiration.ms: an idle transactional id is removed after this long.
    pub transactional_id_expiration_ms: i64,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// transaction.remove.expired.transaction.cleanup.interval.ms
    pub remove_expired_transaction_cleanup_interval_ms: i64,
}

impl Default for TransactionConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        TransactionConfig {
            state_log_num_partitions: 50,
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
        }
    }
}

/// A transaction marker as the transaction coordinator writes it to each partition of a
/// transaction (Kafka's WriteTxnMarkers entry, written as a control batch: EndTransactionMarker).
/// The same value travels from the coordinator (EndTxn, aborts of timed-out or fenced
/// transactions), from WriteTxnMarkers requests (kafka-transactions.sh abort), to the data
/// partitions' logs and to the group coordinator for `__consumer_offsets` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The coordinator's epoch for the transaction's `__transaction_state` partition: a marker
    /// from an older coordinator epoch than the partition has seen is fenced
    /// (TRANSACTION_COORDINATOR_FENCED).
    pub coordinator_epoch: i32,
    /// Commit (true) or abort (false).
    pub commit: bool,
}
