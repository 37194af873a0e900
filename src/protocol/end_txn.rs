//! EndTxn (key 26): commits or aborts the producer's transaction (KafkaApis.handleEndTxnRequest,
//! TransactionCoordinator.handleEndTransaction). v0-4 are the original protocol (TV1): the epoch
//! stays. v5 is KIP-890 part 2 (TV2, what a client does once `transaction.version` 2 is
//! finalized): every end bumps the epoch (at an exhausted epoch, the next producer id with epoch
//! 0), and the response carries the producer id and epoch to go on with
//! (TransactionVersion.transactionVersionForEndTxn: version > 4 is TV2).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;
use crate::txn::metadata::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TV_0, TV_2};

/// First version whose clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;
/// First version of TV2: the epoch bump, and the producer id and epoch in the response.
const TV2_VERSION: i16 = 5;

pub fn handle(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let broker = ctx.broker;
    let tv2 = ctx.api_version >= TV2_VERSION;
    let id = req.transactional_id.as_str();
    let checked = if ctx.authorize_transactional_id(AclOperation::Write, id) {
        super::cluster::check_txn_coordinator(ctx, id)
    } else {
        Err(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    };
    let result = checked.and_then(|()| {
        broker.with_txn_context(|t| {
            broker.txns.end_txn(
                t,
                req.transactional_id.as_str(),
                (req.producer_id.0, req.producer_epoch),
                req.committed,
                if tv2 { TV_2 } else { TV_0 },
                ctx.broker.clock.now_ms(),
            )
        })
    });
    let (code, (producer_id, producer_epoch)) = match result {
        Ok(producer) => (errors::NONE, producer),
        Err(code) => (code, (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)),
    };
    let resp = EndTxnResponse::default().with_error_code(errors::fenced_for_version(
        code,
        ctx.api_version,
        PRODUCER_FENCED_VERSION,
    ));
    // The producer id and epoch exist from v5 on; below they keep their defaults (-1).
    if tv2 {
        resp.with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
    } else {
        resp
    }
}
