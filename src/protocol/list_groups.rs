//! ListGroups (key 16): every group with its state and type, with the state (v4+) and type
//! (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.api_version;
    let matches = |filter: &[StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(value))
    };
    // Every group with DESCRIBE on the cluster, else those the session may DESCRIBE.
    let all = ctx.authorize_cluster(AclOperation::Describe);
    let groups = ctx
        .broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| {
            matches(&req.states_filter, g.state) && matches(&req.types_filter, g.group_type)
        })
        // Each broker lists the groups it coordinates (GroupCoordinatorService.listGroups asks
        // its own shards); admin clients ask every broker.
        .filter(|g| super::cluster::check_group_coordinator(ctx, &g.group_id).is_ok())
        .filter(|g| all || ctx.authorize_group(AclOperation::Describe, &g.group_id))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if v >= 4 {
                listed.group_state = StrBytes::from_static_str(g.state);
            }
            if v >= 5 {
                listed.group_type = StrBytes::from_static_str(g.group_type);
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
