//! SyncGroup (key 14): the leader hands out assignments; every member waits for its own.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::group::classic::{Reply, SyncResult};
use crate::group::coordinator::MemberRef;
use crate::security::authorizer::AclOperation;

pub async fn handle(ctx: &RequestContext<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    // From v5 the protocol type and name are mandatory; KafkaApis checks before authorizing.
    if ctx.api_version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
        return SyncGroupResponse::default().with_error_code(errors::INCONSISTENT_GROUP_PROTOCOL);
    }
    if !ctx.authorize_group(AclOperation::Read, req.group_id.as_str()) {
        return SyncGroupResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    if let Err(code) = super::cluster::check_group_coordinator(ctx, req.group_id.as_str()) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let who = MemberRef {
        group_id: req.group_id.as_str(),
        member_id: req.member_id.as_str(),
        instance_id: instance.as_deref(),
        generation_id: req.generation_id,
    };
    let reply = ctx.broker.groups.sync(
        &ctx.broker.catalog,
        who,
        assignments,
        ctx.broker.clock.now(),
    );
    let mut result = match reply {
        Reply::Now(r) => r,
        Reply::Later(rx) => rx.await.unwrap_or(SyncResult {
            error_code: errors::UNKNOWN_MEMBER_ID,
            ..SyncResult::default()
        }),
    };
    // Answered by the leader's SyncGroup: this answer too waits until its write is committed.
    result
        .commit
        .iter()
        .for_each(|p| crate::coordinator::commit::record(*p));
    // v5+ requests name the protocol; a mismatch with the group's is refused.
    let mismatch = |asked: &Option<StrBytes>, have: &Option<String>| {
        asked
            .as_ref()
            .is_some_and(|a| have.as_ref().is_some_and(|h| a.as_str() != h))
    };
    if result.error_code == errors::NONE
        && (mismatch(&req.protocol_type, &result.protocol_type)
            || mismatch(&req.protocol_name, &result.protocol_name))
    {
        result = SyncResult {
            error_code: errors::INCONSISTENT_GROUP_PROTOCOL,
            ..SyncResult::default()
        };
    }
    let mut resp = SyncGroupResponse::default()
        .with_error_code(result.error_code)
        .with_assignment(result.assignment);
    if ctx.api_version >= 5 {
        resp.protocol_type = result.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = result.protocol_name.map(StrBytes::from_string);
    }
    resp
}
