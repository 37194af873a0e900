//! AddPartitionsToTxn (key 24): v0-3, the producer's form, adds partitions to its transaction;
//! v4+, the brokers' batched form, adds or (verify_only, KIP-890) checks partitions of several
//! transactions (KafkaApis.handleAddPartitionsToTxnRequest). Kafka's brokers send v4+ to add a
//! partition implicitly for a TV2 producer (Produce v12+), so an add at v4+ makes the
//! transaction TV2 (TransactionVersion.transactionVersionForAddPartitionsToTxn).
//!
//! A partition that does not exist fails the whole transaction's request: it gets
//! UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED, and nothing is added. A
//! producer may not name an internal topic (v0-3): Kafka's write authorization leaves them out,
//! so they get TOPIC_AUTHORIZATION_FAILED (AddOffsetsToTxn is the way to `__consumer_offsets`).
//!
//! Authorization: a producer (v0-3) needs WRITE on the transactional id (else every partition is
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each topic (TOPIC_AUTHORIZATION_FAILED, the
//! others OPERATION_NOT_ATTEMPTED); the brokers' form needs CLUSTER_ACTION, or the request fails.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};

use super::errors;
use super::RequestContext;
use crate::metadata::is_internal_name;
use crate::security::authorizer::AclOperation;
use crate::txn::metadata::{TV_0, TV_2};

/// First version of the batched, broker-to-broker form.
const BATCHED_VERSION: i16 = 4;
/// First version whose clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

/// One transaction of the request.
struct Txn<'a> {
    id: &'a str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if ctx.api_version < BATCHED_VERSION {
        let txn = Txn {
            id: req.v3_and_below_transactional_id.as_str(),
            producer_id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
            verify_only: false,
            topics: &req.v3_and_below_topics,
        };
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(add(ctx, &txn));
    }
    if !ctx.authorize_cluster(AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let results = req
        .transactions
        .iter()
        .map(|t| {
            let txn = Txn {
                id: t.transactional_id.as_str(),
                producer_id: t.producer_id.0,
                epoch: t.producer_epoch,
                verify_only: t.verify_only,
                topics: &t.topics,
            };
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(add(ctx, &txn))
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// One transaction's partitions added (or verified): each partition's error.
fn add(ctx: &RequestContext<'_>, txn: &Txn<'_>) -> Vec<AddPartitionsToTxnTopicResult> {
    let catalog = &ctx.broker.catalog;
    let partitions: Vec<(String, i32)> = txn
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let from_client = ctx.api_version < BATCHED_VERSION;
    let unwritable: std::collections::HashSet<&str> = txn
        .topics
        .iter()
        .map(|t| t.name.as_str())
        .filter(|t| {
            from_client && (is_internal_name(t) || !ctx.authorize_topic(AclOperation::Write, t))
        })
        .collect();
    let refused = |(topic, p): &(String, i32)| {
        if unwritable.contains(topic.as_str()) {
            errors::TOPIC_AUTHORIZATION_FAILED
        } else if catalog
            .get(topic)
            .is_some_and(|t| t.partition(*p).is_some())
        {
            errors::NONE
        } else {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        }
    };
    let codes: Vec<i16> =
        if from_client && !ctx.authorize_transactional_id(AclOperation::Write, txn.id) {
            vec![errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED; partitions.len()]
        } else if partitions.iter().any(|p| refused(p) != errors::NONE) {
            partitions
                .iter()
                .map(|p| match refused(p) {
                    errors::NONE => errors::OPERATION_NOT_ATTEMPTED,
                    code => code,
                })
                .collect()
        } else if let Err(code) = super::cluster::check_txn_coordinator(ctx, txn.id) {
            vec![code; partitions.len()]
        } else if txn.verify_only {
            ctx.broker
                .txns
                .verify_partitions(txn.id, txn.producer_id, txn.epoch, &partitions)
                .unwrap_or_else(|code| vec![code; partitions.len()])
        } else {
            let transaction_version = if from_client { TV_0 } else { TV_2 };
            let code = ctx.broker.txns.add_partitions(
                catalog,
                txn.id,
                (txn.producer_id, txn.epoch),
                &partitions,
                transaction_version,
                ctx.broker.clock.now_ms(),
            );
            let code = errors::fenced_for_version(code, ctx.api_version, PRODUCER_FENCED_VERSION);
            vec![code; partitions.len()]
        };
    let mut codes = codes.into_iter();
    txn.topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(codes.next().unwrap_or_default())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(t.name.0.clone()))
                .with_results_by_partition(results)
        })
        .collect()
}
