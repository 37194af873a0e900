//! EndTxn (key 26): commits or aborts the producer's transaction (KafkaApis.handleEndTxnRequest,
//! TransactionCoordinator.handleEndTransaction). v0-4 are the original protocol (TV1): the
//! epoch stays; v5 (KIP-890's epoch bump per transaction) is not served.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::errors;
use super::RequestContext;

/// First version whose clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub fn handle(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let broker = ctx.broker;
    let code = broker.with_txn_context(|t| {
        broker.txns.end_txn(
            t,
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            ctx.broker.clock.now_ms(),
        )
    });
    // The producer id and epoch fields are v5's and keep their defaults (-1).
    EndTxnResponse::default().with_error_code(errors::fenced_for_version(
        code,
        ctx.api_version,
        PRODUCER_FENCED_VERSION,
    ))
}
