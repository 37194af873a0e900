//! JoinGroup (key 11): joins a classic group and waits until the rebalance's join phase ends.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::group::classic::{JoinParams, JoinResult, Reply};
use crate::security::authorizer::AclOperation;

/// From v4 a new member first gets its id with MEMBER_ID_REQUIRED (KIP-394).
const REQUIRE_MEMBER_ID_VERSION: i16 = 4;

pub async fn handle(ctx: &RequestContext<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.api_version;
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves for both.
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: v >= REQUIRE_MEMBER_ID_VERSION,
    };
    let member_id = params.member_id.clone();
    let checked = if ctx.authorize_group(AclOperation::Read, req.group_id.as_str()) {
        super::cluster::check_group_coordinator(ctx, req.group_id.as_str())
    } else {
        Err(errors::GROUP_AUTHORIZATION_FAILED)
    };
    if let Err(error_code) = checked {
        // JoinGroupRequest.getErrorResponse: no member id, no generation.
        let refused = JoinResult {
            error_code,
            generation_id: -1,
            member_id: String::new(),
            ..JoinResult::default()
        };
        return to_wire(refused, v);
    }
    let reply = ctx.broker.groups.join(
        &ctx.broker.catalog,
        req.group_id.as_str(),
        params,
        ctx.broker.clock.now(),
    );
    let result = match reply {
        Reply::Now(r) => r,
        Reply::Later(rx) => rx.await.unwrap_or(JoinResult {
            error_code: errors::UNKNOWN_MEMBER_ID,
            generation_id: -1,
            member_id,
            ..JoinResult::default()
        }),
    };
    to_wire(result, v)
}

fn to_wire(r: JoinResult, v: i16) -> JoinGroupResponse {
    let text = |s: String| StrBytes::from_string(s);
    let members = r
        .members
        .into_iter()
        .map(
            |(id, instance, metadata): (String, Option<String>, Bytes)| {
                let mut m = JoinGroupResponseMember::default()
                    .with_member_id(text(id))
                    .with_metadata(metadata);
                if v >= 5 {
                    m.group_instance_id = instance.map(text);
                }
                m
            },
        )
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error_code)
        .with_generation_id(r.generation_id)
        .with_protocol_name(Some(text(r.protocol_name.unwrap_or_default())))
        .with_leader(text(r.leader))
        .with_member_id(text(r.member_id))
        .with_members(members);
    if v >= 7 {
        resp.protocol_type = r.protocol_type.map(text);
    }
    if v >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp
}
