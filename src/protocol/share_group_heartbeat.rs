//! ShareGroupHeartbeat (key 76, KIP-932): joins, stays in and leaves a share group, whose
//! members all read the partitions assigned to them cooperatively (see `group/share.rs`).
//! Served only while the `share.version` feature is finalized at 1 or more; otherwise Kafka 4.4
//! answers UNSUPPORTED_VERSION, and so does gregor.

use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::consumer_group_heartbeat::authorize_heartbeat;
use super::errors;
use super::RequestContext;
use crate::group::consumer::partitions_by_topic;
use crate::group::share::{validate_heartbeat, ShareHeartbeat, LEAVE_EPOCH};

pub fn handle(
    ctx: &RequestContext<'_>,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let error = |code: i16, msg: &str| {
        ShareGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(msg.to_string())))
    };
    if !super::share_groups_enabled(ctx) {
        return error(
            errors::UNSUPPORTED_VERSION,
            "The share group protocol is not enabled (share.version).",
        );
    }
    let subscribed = req.subscribed_topic_names.iter().flatten();
    if let Err((code, msg)) =
        authorize_heartbeat(ctx, req.group_id.as_str(), subscribed.map(|t| t.as_str()))
    {
        return error(code, msg);
    }
    let group_id = req.group_id.as_str();
    let hb = ShareHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|r| r.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
    };
    if let Err(msg) = validate_heartbeat(group_id, &hb) {
        return error(errors::INVALID_REQUEST, msg);
    }
    if let Err(code) = super::cluster::check_group_coordinator(ctx, group_id) {
        return error(code, "This is not the correct coordinator.");
    }
    let (member_id, leaving) = (hb.member_id.clone(), hb.member_epoch == LEAVE_EPOCH);
    let broker = ctx.broker;
    let r = broker
        .groups
        .share_heartbeat(&broker.catalog, group_id, hb, broker.clock.now());
    if leaving && r.error_code == errors::NONE {
        // What the member still holds is available to the others at once.
        let now = broker.clock.now_ms();
        (broker.shares).close_session(&broker.catalog, group_id, &member_id, now);
    }
    let mut resp = ShareGroupHeartbeatResponse::default()
        .with_error_code(r.error_code)
        .with_error_message(r.error_message.map(StrBytes::from_string))
        .with_member_epoch(r.member_epoch);
    if r.error_code == errors::NONE {
        resp.member_id = Some(StrBytes::from_string(r.member_id));
        resp.heartbeat_interval_ms = r.heartbeat_interval_ms;
        resp.assignment = r.assignment.map(|a| {
            let tps = partitions_by_topic(&a, |(id, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_partitions(partitions)
            });
            Assignment::default().with_topic_partitions(tps)
        });
    }
    resp
}
