//! InitProducerId (key 22): a fresh producer id with epoch 0 for idempotent producers, as Kafka's
//! transaction coordinator does when no transactional id is given (also for KIP-360 epoch bumps of
//! idempotent producers). Transactional producers need a transaction coordinator, which gregor does
//! not have yet.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::errors;
use super::RequestContext;
use crate::txn::producer_ids::ProducerIdError;

pub fn handle(ctx: &RequestContext<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(errors::COORDINATOR_NOT_AVAILABLE);
    }
    match ctx.broker.producer_ids.next_id() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot hand out a producer id");
            resp.with_error_code(match e {
                ProducerIdError::Storage(_) => errors::KAFKA_STORAGE_ERROR,
                // Kafka's controller answers exhaustion with UnknownServerException.
                ProducerIdError::Exhausted => errors::UNKNOWN_SERVER_ERROR,
            })
        }
    }
}
