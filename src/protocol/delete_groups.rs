//! DeleteGroups (key 42): removes empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{errors, RequestContext};
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let now = ctx.broker.clock.now_ms();
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let checked = if ctx.authorize_group(AclOperation::Delete, id.as_str()) {
                super::cluster::check_group_coordinator(ctx, id.as_str())
            } else {
                Err(errors::GROUP_AUTHORIZATION_FAILED)
            };
            let code = match checked {
                Ok(()) => ctx.broker.delete_group(id.as_str(), now),
                Err(code) => code,
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
