//! DescribeGroups (key 15): state, protocol and members of each group. An unknown group is
//! reported Dead (v0-5) or GROUP_ID_NOT_FOUND (v6+, KIP-1043), as Kafka does.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::authorized::GROUP_OPERATIONS;
use super::errors;
use super::RequestContext;
use crate::security::authorizer::{AclOperation, ResourceType};

pub fn handle(ctx: &RequestContext<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.api_version;
    let text = StrBytes::from_string;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut g = DescribedGroup::default().with_group_id(id.clone());
            if !ctx.authorize_group(AclOperation::Describe, id.as_str()) {
                return g.with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
            }
            if let Err(code) = super::cluster::check_group_coordinator(ctx, id.as_str()) {
                return g.with_error_code(code);
            }
            match ctx.broker.groups.describe(id.as_str()) {
                Some(d) => {
                    g.group_state = StrBytes::from_static_str(d.state);
                    g.protocol_type = text(d.protocol_type);
                    g.protocol_data = text(d.protocol);
                    g.members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default()
                                .with_member_id(text(m.member_id))
                                .with_client_id(text(m.client_id))
                                .with_client_host(text(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if v >= 4 {
                                dm.group_instance_id = m.group_instance_id.map(text);
                            }
                            dm
                        })
                        .collect();
                }
                None if v >= 6 => {
                    g.error_code = errors::GROUP_ID_NOT_FOUND;
                    g.error_message = Some(text(format!("Group {} not found.", id.as_str())));
                    g.group_state = StrBytes::from_static_str("Dead");
                }
                None => g.group_state = StrBytes::from_static_str("Dead"),
            }
            if v >= 3 && req.include_authorized_operations {
                g.authorized_operations =
                    ctx.authorized_operations(GROUP_OPERATIONS, ResourceType::Group, id.as_str());
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
