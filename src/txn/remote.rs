//! The transaction requests one broker sends another in a cluster of processes: the
//! coordinator's markers to the leaders of a transaction's partitions (WriteTxnMarkers, Kafka's
//! TransactionMarkerChannelManager), and a partition leader's KIP-890 verification of a
//! transactional batch with the transaction's coordinator (AddPartitionsToTxn v4+, Kafka's
//! AddPartitionsToTxnManager). One connection per exchange, over the inter-broker listener
//! (`server::inter_broker`); Kafka keeps one channel per broker. (A SCRAM login's salted
//! password is derived once per credential, not per connection: `SaltedPasswordCache`.)

use std::future::Future;
use std::io;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, ProducerId, TopicName, TransactionalId,
    WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::TxnMarker;
use crate::broker::Broker;
use crate::protocol::errors;
use crate::server::inter_broker::BrokerConnection;

/// How long one exchange with another broker may take, connection included (TCP, TLS,
/// ApiVersions, the SASL login and the request together), before it is given up (the marker
/// retried by the coordinator's timer, the verification answered retriable).
/// Kafka's channels wait request.timeout.ms (30 s), but send markers after EndTxn is answered;
/// here EndTxn waits for them, and a broker that accepts connections before it serves (one
/// starting) must not hold a producer's EndTxn past its own request timeout.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// `exchange` on a new connection to broker `to` for `purpose` (its client id names it), the
/// connection and the exchange within [`EXCHANGE_TIMEOUT`] together.
async fn with_connection<T>(
    broker: &Broker,
    to: i32,
    purpose: &str,
    exchange: impl AsyncFnOnce(&mut BrokerConnection) -> io::Result<T>,
) -> io::Result<T> {
    within(EXCHANGE_TIMEOUT, async {
        let mut conn = connect(broker, to, purpose).await?;
        exchange(&mut conn).await
    })
    .await
}

/// `steps` within `limit` in all (each step of a connection has its own timeout, and a peer
/// answering each just in time would hold a producer's EndTxn for their sum).
async fn within<T>(limit: Duration, steps: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "the exchange timed out");
    tokio::time::timeout(limit, steps)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// A connection to broker `to` for `purpose`, each step within [`EXCHANGE_TIMEOUT`].
async fn connect(broker: &Broker, to: i32, purpose: &str) -> io::Result<BrokerConnection> {
    let socket_timeout = broker
        .replicas
        .as_ref()
        .map(|r| Duration::from_millis(r.settings.socket_timeout_ms))
        .ok_or_else(|| io::Error::other("not a cluster of processes"))?;
    let client_id = format!("broker-{}-{purpose}", broker.node_id);
    BrokerConnection::open(broker, to, socket_timeout.min(EXCHANGE_TIMEOUT), client_id).await
}

/// Partitions grouped by topic, in the order topics first appear (each request's topic list).
fn by_topic(partitions: &[(String, i32)]) -> Vec<(TopicName, Vec<i32>)> {
    let mut topics: Vec<(TopicName, Vec<i32>)> = Vec::new();
    for (topic, p) in partitions {
        match topics.iter_mut().find(|(t, _)| t.as_str() == topic) {
            Some((_, ps)) => ps.push(*p),
            None => topics.push((TopicName(StrBytes::from_string(topic.clone())), vec![*p])),
        }
    }
    topics
}

/// AddPartitionsToTxn v4-5 to the coordinator `coordinator` of `transactional_id`: one
/// transaction's partitions verified (`verify_only`, Produce before v12) or added (TV2's
/// implicit add, Produce v12+); each partition's error code, in order.
pub async fn verify_partitions(
    broker: &Broker,
    coordinator: i32,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partitions: &[(String, i32)],
    verify_only: bool,
) -> io::Result<Vec<i16>> {
    let purpose = "add-partitions-to-txn";
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(name, ps)| {
            AddPartitionsToTxnTopic::default()
                .with_name(name)
                .with_partitions(ps)
        })
        .collect();
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_verify_only(verify_only)
        .with_topics(topics);
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
    let response = with_connection(broker, coordinator, purpose, async |conn| {
        let version = conn
            .version(ApiKey::AddPartitionsToTxn, 4..=5)
            .ok_or_else(|| io::Error::other("the coordinator serves no AddPartitionsToTxn v4+"))?;
        conn.request(version, &request).await
    })
    .await?;
    if response.error_code != errors::NONE {
        return Ok(vec![response.error_code; partitions.len()]);
    }
    let answered = |topic: &str, p: i32| {
        let t = response.results_by_transaction.first()?;
        let t = t.topic_results.iter().find(|t| t.name.as_str() == topic)?;
        let r = t
            .results_by_partition
            .iter()
            .find(|r| r.partition_index == p)?;
        Some(r.partition_error_code)
    };
    Ok(partitions
        .iter()
        .map(|(t, p)| answered(t, *p).unwrap_or(errors::UNKNOWN_SERVER_ERROR))
        .collect())
}

/// WriteTxnMarkers v0-1 (the versions Kafka 4.4 speaks) to the leader `leader` for `partitions`:
/// each partition's error code, in order.
pub async fn write_markers(
    broker: &Broker,
    leader: i32,
    marker: TxnMarker,
    partitions: &[(String, i32)],
) -> io::Result<Vec<i16>> {
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(name, ps)| {
            WritableTxnMarkerTopic::default()
                .with_name(name)
                .with_partition_indexes(ps)
        })
        .collect();
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(topics)]);
    let response = with_connection(broker, leader, "txn-marker-sender", async |conn| {
        let version = conn
            .version(ApiKey::WriteTxnMarkers, 0..=1)
            .ok_or_else(|| io::Error::other("the leader serves no WriteTxnMarkers version"))?;
        conn.request(version, &request).await
    })
    .await?;
    let answered = |topic: &str, p: i32| {
        let m = response.markers.first()?;
        let t = m.topics.iter().find(|t| t.name.as_str() == topic)?;
        let r = t.partitions.iter().find(|r| r.partition_index == p)?;
        Some(r.error_code)
    };
    Ok(partitions
        .iter()
        .map(|(t, p)| answered(t, *p).unwrap_or(errors::UNKNOWN_SERVER_ERROR))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps each within their own timeout still end at the exchange's limit: a peer answering
    /// the TLS handshake, ApiVersions, the SASL login and the request each just in time does
    /// not hold the caller for their sum.
    #[tokio::test(start_paused = true)]
    async fn an_exchange_is_bounded_as_a_whole() {
        let step = EXCHANGE_TIMEOUT * 4 / 5;
        let started = tokio::time::Instant::now();
        let steps = async {
            for _ in 0..5 {
                tokio::time::timeout(EXCHANGE_TIMEOUT, tokio::time::sleep(step))
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
            }
            Ok(())
        };
        let e = within(EXCHANGE_TIMEOUT, steps).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), EXCHANGE_TIMEOUT);
    }
}
