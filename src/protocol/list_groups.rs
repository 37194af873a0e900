//! ListGroups (key 16): every group with its state and type, with the state (v4+) and type
//! (v5+) filters.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;

/// Classic-protocol groups are the only kind gregor has so far.
const GROUP_TYPE: &str = "classic";

pub fn handle(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.api_version;
    let wanted_state = |s: &str| {
        req.states_filter.is_empty()
            || req
                .states_filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(s))
    };
    let wanted_type = || {
        req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(GROUP_TYPE))
    };
    let groups = ctx
        .broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|(_, state, _)| wanted_state(state) && wanted_type())
        .map(|(id, state, protocol_type)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type));
            if v >= 4 {
                g.group_state = StrBytes::from_static_str(state);
            }
            if v >= 5 {
                g.group_type = StrBytes::from_static_str(GROUP_TYPE);
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
