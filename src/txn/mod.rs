//! Producer ids, idempotence state and transactions.

pub mod producer_ids;
pub mod producer_state;

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
