//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets` partition to the transaction,
//! so that its TxnOffsetCommits get the transaction's marker (KafkaApis.
//! handleAddOffsetsToTxnRequest). Only TV1 clients send it (a TV2 client's TxnOffsetCommit v5
//! adds the partition itself), so the transaction is TV_0 from here, as in Kafka.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::errors;
use super::RequestContext;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::security::authorizer::AclOperation;
use crate::txn::metadata::TV_0;

/// First version whose clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub fn handle(ctx: &RequestContext<'_>, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.as_str();
    // WRITE on the transactional id, then READ on the group (KafkaApis).
    let authorized = if !ctx.authorize_transactional_id(AclOperation::Write, id) {
        Err(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !ctx.authorize_group(AclOperation::Read, req.group_id.as_str()) {
        Err(errors::GROUP_AUTHORIZATION_FAILED)
    } else {
        Ok(())
    };
    let code = match authorized.and_then(|()| super::cluster::check_txn_coordinator(ctx, id)) {
        Ok(()) => add_offsets_partition(
            ctx,
            id,
            (req.producer_id.0, req.producer_epoch),
            req.group_id.as_str(),
            TV_0,
        ),
        Err(code) => code,
    };
    AddOffsetsToTxnResponse::default().with_error_code(errors::fenced_for_version(
        code,
        ctx.api_version,
        PRODUCER_FENCED_VERSION,
    ))
}

/// Adds the group's `__consumer_offsets` partition to the producer's transaction, under the
/// request's transaction version (here TV_0; TxnOffsetCommit v5's implicit add TV_2).
pub(super) fn add_offsets_partition(
    ctx: &RequestContext<'_>,
    transactional_id: &str,
    producer: (i64, i16),
    group_id: &str,
    transaction_version: i16,
) -> i16 {
    let broker = ctx.broker;
    let partition = broker.groups.partition_of(group_id);
    broker.txns.add_partitions(
        &broker.catalog,
        transactional_id,
        producer,
        &[(OFFSETS_TOPIC.to_string(), partition)],
        transaction_version,
        ctx.broker.clock.now_ms(),
    )
}
