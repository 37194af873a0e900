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
///
/// In a cluster of processes only the partitions this broker leads are written here; the others
/// go to their leaders as one WriteTxnMarkers per leader (Kafka's TransactionMarkerChannelManager)
/// when `forward` is set, which only the transaction coordinator's own writer is, on a blocking
/// thread (it waits for the answers there). Otherwise (the WriteTxnMarkers handler) a partition
/// led elsewhere answers NOT_LEADER_OR_FOLLOWER, which its sender retries.
pub struct LogMarkerWriter<'a> {
    pub catalog: &'a Catalog,
    pub groups: &'a GroupCoordinator,
    pub purgatory: &'a Purgatory,
    /// In a cluster of processes, this broker: which partitions it leads, and how it reaches
    /// the others' leaders.
    pub cluster: Option<&'a crate::broker::Broker>,
    /// Whether markers to partitions led elsewhere are sent to their leaders.
    pub forward: bool,
}

impl LogMarkerWriter<'_> {
    /// The leader of a partition when it is not this broker (a cluster of processes), -1 when
    /// it has none; `None` when it is written here.
    fn leader_elsewhere(&self, topic: &str, partition: i32) -> Option<i32> {
        let broker = self.cluster?;
        let t = self.catalog.get(topic)?;
        let image = self.catalog.image();
        let reg = crate::protocol::cluster::partition(&image, t.topic_id, partition)?;
        (reg.leader != broker.node_id).then_some(reg.leader)
    }

    /// Sends the marker to each leader of `remote` (leader → (index, topic, partition)) and
    /// puts each partition's answer into `codes`; a leader that cannot be reached leaves
    /// NOT_LEADER_OR_FOLLOWER (retried later).
    fn forward_markers(
        &self,
        marker: TxnMarker,
        remote: std::collections::BTreeMap<i32, Vec<(usize, String, i32)>>,
        codes: &mut [i16],
    ) {
        let (Some(broker), Ok(handle)) = (self.cluster, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        for (leader, parts) in remote {
            let targets: Vec<(String, i32)> =
                parts.iter().map(|(_, t, p)| (t.clone(), *p)).collect();
            // A blocking thread of the runtime (EndTxn's, the timers'): see `forward`.
            let answer = handle.block_on(super::remote::write_markers(
                broker, leader, marker, &targets,
            ));
            match answer {
                Ok(answered) => {
                    for ((i, _, _), code) in parts.iter().zip(answered) {
                        codes[*i] = code;
                    }
                }
                Err(e) => {
                    tracing::debug!(leader, error = %e, "transaction markers not sent; retrying later")
                }
            }
        }
    }

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
        let mut codes = vec![errors::NOT_LEADER_OR_FOLLOWER; partitions.len()];
        let mut remote: std::collections::BTreeMap<i32, Vec<(usize, String, i32)>> =
            Default::default();
        for (i, (topic, partition)) in partitions.iter().enumerate() {
            match self.leader_elsewhere(topic, *partition) {
                Some(leader) if leader >= 0 && self.forward => {
                    remote
                        .entry(leader)
                        .or_default()
                        .push((i, topic.clone(), *partition));
                }
                // No leader now, or not ours to forward: the sender retries.
                Some(_) => {}
                None => {
                    codes[i] = self.write_one(marker, topic, *partition, now_ms);
                    if codes[i] == errors::NONE {
                        self.purgatory.check_and_complete(topic, *partition);
                    }
                }
            }
        }
        if !remote.is_empty() {
            self.forward_markers(marker, remote, &mut codes);
        }
        codes
    }
}
