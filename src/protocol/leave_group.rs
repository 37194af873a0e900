//! LeaveGroup (key 13): one member (v0-2) or a batch of members (v3+, KIP-345) leave.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{errors, RequestContext};
use crate::security::authorizer::AclOperation;

const BATCH_VERSION: i16 = 3;

pub fn handle(ctx: &RequestContext<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = ctx.api_version >= BATCH_VERSION;
    let members: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let (group_id, now) = (req.group_id.as_str(), ctx.broker.clock.now());
    let authorized = ctx.authorize_group(AclOperation::Read, group_id);
    let result = (if authorized {
        Ok(())
    } else {
        Err(errors::GROUP_AUTHORIZATION_FAILED)
    })
    .and_then(|()| super::cluster::check_group_coordinator(ctx, group_id))
    .and_then(|()| (ctx.broker.groups).leave(&ctx.broker.catalog, group_id, &members, now));
    match result {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(codes) if batched => {
            let members = members
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(instance.map(StrBytes::from_string))
                        .with_error_code(code)
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
        Ok(codes) => LeaveGroupResponse::default()
            .with_error_code(codes.first().copied().unwrap_or_default()),
    }
}
