//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets` partition to the transaction,
//! so that its TxnOffsetCommits get the transaction's marker (KafkaApis.
//! handleAddOffsetsToTxnRequest). Only TV1 clients send it (a TV2 client's TxnOffsetCommit v5
//! adds the partition itself), so the transaction is TV_0 from here, as in Kafka.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::errors;
use super::RequestContext;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::txn::metadata::TV_0;

/// First version whose clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub fn handle(ctx: &RequestContext<'_>, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let broker = ctx.broker;
    let partition = broker.groups.partition_of(req.group_id.as_str());
    let code = broker.txns.add_partitions(
        &broker.catalog,
        req.transactional_id.as_str(),
        (req.producer_id.0, req.producer_epoch),
        &[(OFFSETS_TOPIC.to_string(), partition)],
        TV_0,
        ctx.broker.clock.now_ms(),
    );
    AddOffsetsToTxnResponse::default().with_error_code(errors::fenced_for_version(
        code,
        ctx.api_version,
        PRODUCER_FENCED_VERSION,
    ))
}
