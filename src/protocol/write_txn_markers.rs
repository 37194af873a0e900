//! WriteTxnMarkers (key 27): writes commit or abort markers to partitions, as a transaction
//! coordinator asks a partition leader to, and as `kafka-transactions.sh abort` does for a hanging
//! transaction (KafkaApis.handleWriteTxnMarkersRequest). The markers go through the same
//! `TxnMarkerWriter` as the coordinator's own: data partitions through their logs,
//! `__consumer_offsets` partitions through the group coordinator.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::{errors, RequestContext};
use crate::security::authorizer::AclOperation;
use crate::txn::markers::TxnMarkerWriter;
use crate::txn::TxnMarker;

pub fn handle(ctx: &RequestContext<'_>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // ALTER or CLUSTER_ACTION on the cluster (KafkaApis.handleWriteTxnMarkersRequest).
    let allowed = ctx.authorize_cluster(AclOperation::Alter)
        || ctx.authorize_cluster(AclOperation::ClusterAction);
    let writer = ctx.broker.marker_writer();
    let markers = req
        .markers
        .into_iter()
        .map(|m| {
            let marker = TxnMarker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: m.coordinator_epoch,
                commit: m.transaction_result,
            };
            let partitions: Vec<(String, i32)> = m
                .topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p)))
                .collect();
            let mut codes = if allowed {
                writer.write_markers(marker, &partitions, ctx.broker.clock.now_ms())
            } else {
                vec![errors::CLUSTER_AUTHORIZATION_FAILED; partitions.len()]
            }
            .into_iter();
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(codes.next().unwrap_or_default())
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
