//! ConsumerGroupHeartbeat (key 68, KIP-848): joins, stays in, reconciles with and leaves a
//! consumer group whose assignment the broker computes (see `group/consumer.rs`).

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::group::consumer::{self, HeartbeatParams};
use crate::security::authorizer::AclOperation;

/// From v1 the client generates its member id (KIP-1082).
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

/// A group heartbeat's authorization (KIP-848 and share groups), as KafkaApis checks it: READ on
/// the group, then DESCRIBE on every topic subscribed by name.
pub(super) fn authorize_heartbeat<'t>(
    ctx: &RequestContext<'_>,
    group_id: &str,
    subscribed: impl IntoIterator<Item = &'t str>,
) -> Result<(), (i16, &'static str)> {
    if !ctx.authorize_group(AclOperation::Read, group_id) {
        return Err((
            errors::GROUP_AUTHORIZATION_FAILED,
            "Group authorization failed.",
        ));
    }
    if !subscribed
        .into_iter()
        .all(|t| ctx.authorize_topic(AclOperation::Describe, t))
    {
        return Err((
            errors::TOPIC_AUTHORIZATION_FAILED,
            "Topic authorization failed.",
        ));
    }
    Ok(())
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let groups = &ctx.broker.groups;
    let interval =
        (groups.consumer_cfg_of(&ctx.broker.catalog, req.group_id.as_str())).heartbeat_interval_ms;
    let error = |code: i16, msg: &str| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(msg.to_string())))
            .with_member_epoch(-1)
    };
    let subscribed = req.subscribed_topic_names.iter().flatten();
    if let Err((code, msg)) =
        authorize_heartbeat(ctx, req.group_id.as_str(), subscribed.map(|t| t.as_str()))
    {
        return error(code, msg);
    }
    if ctx.api_version >= CLIENT_MEMBER_ID_VERSION && req.member_id.is_empty() {
        return error(errors::INVALID_REQUEST, "MemberId can't be empty.");
    }
    if let Err(code) = super::cluster::check_group_coordinator(ctx, req.group_id.as_str()) {
        return error(code, "This is not the correct coordinator.");
    }
    let params = HeartbeatParams {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|i| i.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: req.server_assignor.map(|a| a.to_string()),
        owned: req.topic_partitions.map(|tps| {
            tps.iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                .collect()
        }),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
    };
    let r = ctx.broker.groups.consumer_heartbeat(
        &ctx.broker.catalog,
        req.group_id.as_str(),
        params,
        ctx.broker.clock.now(),
    );
    let mut resp = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error_code)
        .with_error_message(r.error_message.map(StrBytes::from_string))
        .with_member_id(Some(StrBytes::from_string(r.member_id)))
        .with_member_epoch(r.member_epoch);
    if r.error_code == errors::NONE {
        resp.heartbeat_interval_ms = interval;
        resp.assignment = r.assignment.map(to_wire);
    }
    resp
}

fn to_wire(a: consumer::Assignment) -> Assignment {
    let tps = consumer::partitions_by_topic(&a, |(id, partitions)| {
        TopicPartitions::default()
            .with_topic_id(id)
            .with_partitions(partitions)
    });
    Assignment::default().with_topic_partitions(tps)
}
