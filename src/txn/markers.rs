//! Writing transaction markers (Kafka's TransactionMarkerChannelManager and the receiving side,
//! KafkaApis.handleWriteTxnMarkersRequest): the one way a commit or abort marker reaches a
//! partition, used by EndTxn, by the aborts of fenced and timed-out transactions, and by the
//! WriteTxnMarkers API.
//!
//! The coordinator calls the writer without holding any shard lock of its own: writing a marker
//! to a `__consumer_offsets` partition goes through the group coordinator's locks, and a writer
//! must be free to call back into anything but this coordinator's shard under lock.

use super::TxnMarker;
use crate::group::coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use crate::metadata::Catalog;
use crate::protocol::errors;
use crate::server::purgatory::Purgatory;

/// Writes one marker to partitions; Kafka's error code for each partition, in the given order.
pub trait TxnMarkerWriter: Send + Sync {
    fn write_markers(
        &self,
        marker: TxnMarker,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Vec<i16>;
}

/// What the coordinator does with a partition after a marker write answered `code`
/// (TransactionMarkerRequestCompletionHandler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// The partition has its marker, or needs none.
    Done,
    /// Try again later.
    Retry,
}

/// Kafka's handling of each error: written, or a partition whose log cannot hold markers
/// (UNSUPPORTED_FOR_MESSAGE_FORMAT, UNSUPPORTED_VERSION: the producer could not have written
/// there either) needs nothing more; a producer or coordinator epoch that moved on
/// (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED) means this marker is moot; a partition
/// whose topic was deleted needs none; everything else (no leader, storage errors, an unknown
/// partition of a topic that still exists) is retried.
pub fn outcome(code: i16, topic_exists: bool) -> MarkerOutcome {
    match code {
        errors::NONE
        | errors::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | errors::UNSUPPORTED_VERSION
        | errors::INVALID_PRODUCER_EPOCH
        | errors::TRANSACTION_COORDINATOR_FENCED => MarkerOutcome::Done,
        errors::UNKNOWN_TOPIC_OR_PARTITION if !topic_exists => MarkerOutcome::Done,
        _ => MarkerOutcome::Retry,
    }
}

/// The broker's writer: data partitions through their logs, `__consumer_offsets` partitions
/// through the group coordinator (which materializes or drops the transaction's pending
/// offsets), as Kafka's handleWriteTxnMarkersRequest does with the new group coordinator. Parked
/// fetches of each partition are woken afterwards: a marker moves the last stable offset, which
/// is what read_committed fetches wait on.
pub struct LogMarkerWriter<'a> {
    pub catalog: &'a Catalog,
    pub groups: &'a GroupCoordinator,
    pub purgatory: &'a Purgatory,
}

impl LogMarkerWriter<'_> {
    fn write_one(&self, marker: TxnMarker, topic: &str, partition: i32, now_ms: i64) -> i16 {
        if topic == OFFSETS_TOPIC {
            return match self
                .groups
                .complete_transaction(self.catalog, partition, marker, now_ms)
            {
                Ok(()) => errors::NONE,
                // KafkaApis.handleWriteTxnMarkersRequest: a group coordinator that does not
                // serve the partition (now) is a leader that moved, which the sender retries.
                Err(
                    errors::COORDINATOR_NOT_AVAILABLE
                    | errors::COORDINATOR_LOAD_IN_PROGRESS
                    | errors::NOT_COORDINATOR,
                ) => errors::NOT_LEADER_OR_FOLLOWER,
                Err(code) => code,
            };
        }
        let Some(log) = self
            .catalog
            .get(topic)
            .and_then(|t| t.partition(partition).cloned())
        else {
            return errors::UNKNOWN_TOPIC_OR_PARTITION;
        };
        match log.append_txn_marker(&marker, now_ms) {
            Ok(_) => errors::NONE,
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "transaction marker not written");
                errors::log_error_code(&e)
            }
        }
    }
}

impl TxnMarkerWriter for LogMarkerWriter<'_> {
    fn write_markers(
        &self,
        marker: TxnMarker,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Vec<i16> {
        partitions
            .iter()
            .map(|(topic, partition)| {
                let code = self.write_one(marker, topic, *partition, now_ms);
                if code == errors::NONE {
                    self.purgatory.check_and_complete(topic, *partition);
                }
                code
            })
            .collect()
    }
}
