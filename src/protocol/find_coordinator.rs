//! FindCoordinator (key 10): the coordinator of a group (key type 0) or transactional id (key
//! type 1) is the leader of its partition of `__consumer_offsets` / `__transaction_state`
//! (KafkaApis.getCoordinator), which is created on first use as Kafka's broker creates it.
//!
//! Advertising this API also matters to librdkafka, which takes "FindCoordinator is supported" as
//! its test for LZ4 support and otherwise silently produces LZ4 batches uncompressed.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::cluster;
use super::errors;
use super::RequestContext;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::security::authorizer::AclOperation;
use crate::txn::coordinator::TRANSACTION_STATE_TOPIC;

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
    // DESCRIBE on the group or transactional id (KafkaApis.getCoordinator).
    if key_type == GROUP && !ctx.authorize_group(AclOperation::Describe, key.as_str()) {
        return unavailable(
            errors::GROUP_AUTHORIZATION_FAILED,
            "Group authorization failed.",
        );
    }
    if key_type == TRANSACTION
        && !ctx.authorize_transactional_id(AclOperation::Describe, key.as_str())
    {
        return unavailable(
            errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "Transactional Id authorization failed.",
        );
    }
    match key_type {
        GROUP | TRANSACTION => match coordinator(ctx, key_type, key.as_str()) {
            Some(n) => Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(n.id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port),
            None => unavailable(
                errors::COORDINATOR_NOT_AVAILABLE,
                "The coordinator is not available.",
            ),
        },
        _ => unavailable(errors::INVALID_REQUEST, "unknown coordinator key type"),
    }
}

/// The live leader of the key's coordinator partition, creating the internal topic if needed.
fn coordinator(ctx: &RequestContext<'_>, key_type: i8, key: &str) -> Option<cluster::Node> {
    let b = ctx.broker;
    let (topic, partition, partitions) = if key_type == GROUP {
        let n = b.config.offsets_topic_num_partitions;
        (OFFSETS_TOPIC, b.groups.partition_of(key), n)
    } else {
        let n = b.config.transaction_state_log_num_partitions;
        (TRANSACTION_STATE_TOPIC, b.txns.partition_for(key), n)
    };
    let topic = b
        .catalog
        .get_or_create(topic, partitions, b.clock.now_ms())
        .inspect_err(|e| tracing::warn!(topic, error = %e, "cannot create a coordinator topic"))
        .ok()?;
    let image = b.catalog.image();
    let leader = cluster::partition(&image, topic.topic_id, partition)?.leader;
    cluster::live_node(&image, leader, ctx.listener.name())
}
