//! Heartbeat (key 12): keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{errors, RequestContext};
use crate::group::coordinator::MemberRef;
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.authorize_group(AclOperation::Read, req.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    if let Err(code) = super::cluster::check_group_coordinator(ctx, req.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let who = MemberRef {
        group_id: req.group_id.as_str(),
        member_id: req.member_id.as_str(),
        instance_id: instance.as_deref(),
        generation_id: req.generation_id,
    };
    let code = ctx
        .broker
        .groups
        .heartbeat(&ctx.broker.catalog, who, ctx.broker.clock.now());
    HeartbeatResponse::default().with_error_code(code)
}
