//! FindCoordinator (key 10): this node coordinates every group (key type 0) and every
//! transactional id (key type 1): it leads every partition of `__consumer_offsets` and
//! `__transaction_state`.
//!
//! Advertising this API also matters to librdkafka, which takes "FindCoordinator is supported" as
//! its test for LZ4 support and otherwise silently produces LZ4 batches uncompressed.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;
/// First version that takes a batch of keys (KIP-699).
const BATCHED_VERSION: i16 = 4;

pub fn handle(ctx: &RequestContext<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    if ctx.api_version >= BATCHED_VERSION {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| locate(ctx, req.key_type, key))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = locate(ctx, req.key_type, req.key);
    let mut resp = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if ctx.api_version >= 1 {
        resp.error_message = c.error_message;
    }
    resp
}

fn locate(ctx: &RequestContext<'_>, key_type: i8, key: StrBytes) -> Coordinator {
    let unavailable = |code: i16, msg: &str| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1)
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(msg.to_string())))
    };
    match key_type {
        GROUP | TRANSACTION => {
            let e = &ctx.broker.endpoint;
            Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(ctx.broker.node_id))
                .with_host(StrBytes::from_string(e.host.clone()))
                .with_port(i32::from(e.port))
        }
        _ => unavailable(errors::INVALID_REQUEST, "unknown coordinator key type"),
    }
}
