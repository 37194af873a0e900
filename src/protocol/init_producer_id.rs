//! InitProducerId (key 22): without a transactional id, a fresh producer id with epoch 0 for
//! idempotent producers (also for KIP-360 epoch bumps of idempotent producers), as Kafka's
//! transaction coordinator does; with one, the transaction coordinator's InitProducerId (epoch
//! bump, fencing of the previous producer, KIP-360 recovery).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::errors;
use super::RequestContext;
use crate::security::authorizer::{AclOperation, ResourceType};

/// First version whose PRODUCER_FENCED older clients understand (KafkaApis maps it to
/// INVALID_PRODUCER_EPOCH below).
const PRODUCER_FENCED_VERSION: i16 = 4;

pub fn handle(ctx: &RequestContext<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // KafkaApis: WRITE on the transactional id; an idempotent producer needs IDEMPOTENT_WRITE on
    // the cluster or WRITE on some topic.
    let refused = match &req.transactional_id {
        Some(id) => (!ctx.authorize_transactional_id(AclOperation::Write, id))
            .then_some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        None => (!ctx.authorize_cluster(AclOperation::IdempotentWrite)
            && !ctx.authorize_by_resource_type(AclOperation::Write, ResourceType::Topic))
        .then_some(errors::CLUSTER_AUTHORIZATION_FAILED),
    };
    if let Some(code) = refused {
        return resp.with_error_code(code);
    }
    // Then both the producer id and the epoch (KIP-360, v3+), or neither, for idempotent
    // producers too.
    let expected = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => Ok(None),
        (-1, _) | (_, -1) => Err(errors::INVALID_REQUEST),
        (pid, epoch) => Ok(Some((pid, epoch))),
    };
    let result = expected.and_then(|expected| match &req.transactional_id {
        None => ctx.broker.next_producer_id().map(|id| (id, 0)),
        Some(id) => super::cluster::check_txn_coordinator(ctx, id).and_then(|()| {
            ctx.broker.with_txn_context(|t| {
                ctx.broker.txns.init_producer_id(
                    t,
                    id,
                    req.transaction_timeout_ms,
                    expected,
                    ctx.broker.clock.now_ms(),
                )
            })
        }),
    });
    match result {
        Ok((id, epoch)) => resp
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(code) => resp.with_error_code(errors::fenced_for_version(
            code,
            ctx.api_version,
            PRODUCER_FENCED_VERSION,
        )),
    }
}
