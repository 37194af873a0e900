//! ConsumerGroupDescribe (key 69, KIP-848): members, epochs and assignments of consumer groups,
//! as `kafka-consumer-groups --describe` and AdminClient read them.

use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::authorized::GROUP_OPERATIONS;
use super::errors;
use super::RequestContext;
use crate::group::consumer;
use crate::security::authorizer::{AclOperation, ResourceType};

/// Every topic a described group's members subscribe to or are assigned.
fn topics_of(g: &DescribedGroup) -> impl Iterator<Item = &str> {
    g.members.iter().flat_map(|m| {
        let assigned = [&m.assignment, &m.target_assignment]
            .into_iter()
            .flat_map(|a| a.topic_partitions.iter().map(|t| t.topic_name.as_str()));
        m.subscribed_topic_names
            .iter()
            .map(|t| t.as_str())
            .chain(assigned)
    })
}

/// Why a KIP-848 or share group is not described: an error code and Kafka's message.
pub(super) type NotDescribed = (i16, Option<&'static str>);

/// KafkaApis' checks before a group is looked at: DESCRIBE on it, then this broker coordinating
/// it.
pub(super) fn check_group(ctx: &RequestContext<'_>, group_id: &str) -> Result<(), NotDescribed> {
    if !ctx.authorize_group(AclOperation::Describe, group_id) {
        return Err((
            errors::GROUP_AUTHORIZATION_FAILED,
            Some("Group authorization failed."),
        ));
    }
    super::cluster::check_group_coordinator(ctx, group_id).map_err(|code| (code, None))
}

/// GROUP_ID_NOT_FOUND's message for a group the describe of one group type did not find: Kafka
/// names a group of another type ("Group g is not a share group.") apart from no group at all.
pub(super) fn not_found_message(ctx: &RequestContext<'_>, group_id: &str, kind: &str) -> String {
    let groups = ctx.broker.groups.list_groups();
    match groups.iter().any(|g| g.group_id == group_id) {
        true => format!("Group {group_id} is not a {kind} group."),
        false => format!("Group {group_id} not found."),
    }
}

/// A group whose members name topics the session may not describe is not shown; with
/// `include_authorized_operations`, the session's operations on the group.
pub(super) fn check_topics<'t>(
    ctx: &RequestContext<'_>,
    group_id: &str,
    topics: impl IntoIterator<Item = &'t str>,
    include_authorized_operations: bool,
) -> Result<Option<i32>, NotDescribed> {
    if !topics
        .into_iter()
        .all(|t| ctx.authorize_topic(AclOperation::Describe, t))
    {
        return Err((
            errors::TOPIC_AUTHORIZATION_FAILED,
            Some("The group has described topic(s) that the client is not authorized to describe."),
        ));
    }
    Ok(include_authorized_operations
        .then(|| ctx.authorized_operations(GROUP_OPERATIONS, ResourceType::Group, group_id)))
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let catalog = &ctx.broker.catalog;
    let assignment = |a: consumer::Assignment| {
        let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
        for (id, p) in a {
            by_topic.entry(id).or_default().push(p);
        }
        let tps = by_topic
            .into_iter()
            .map(|(id, partitions)| {
                let name = catalog
                    .get_by_id(id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            })
            .collect();
        Assignment::default().with_topic_partitions(tps)
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let failed = |id, (code, message): NotDescribed| {
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_static_str))
            };
            if let Err(e) = check_group(ctx, id.as_str()) {
                return failed(id, e);
            }
            let found = ctx.broker.groups.with_consumer_group(id.as_str(), |g| {
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        Member::default()
                            .with_member_id(StrBytes::from_string(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(StrBytes::from_string(m.client_id.clone()))
                            .with_client_host(StrBytes::from_string(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed
                                    .iter()
                                    .map(|t| TopicName(StrBytes::from_string(t.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(
                                m.subscribed_regex.clone().map(StrBytes::from_string),
                            )
                            // KIP-1099: 1 = a member speaking the consumer protocol.
                            .with_member_type(1)
                            .with_assignment(assignment(m.current.clone()))
                            .with_target_assignment(assignment(g.target_of(&m.member_id)))
                    })
                    .collect();
                let assignor = g
                    .members
                    .values()
                    .find_map(|m| m.assignor.clone())
                    .unwrap_or_else(|| "uniform".into());
                DescribedGroup::default()
                    .with_group_state(StrBytes::from_static_str(g.state()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.target_epoch)
                    .with_assignor_name(StrBytes::from_string(assignor))
                    .with_members(members)
            });
            let mut described = found.unwrap_or_else(|| {
                DescribedGroup::default()
                    .with_error_code(errors::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Group {} not found.",
                        id.as_str()
                    ))))
            });
            described.group_id = id;
            let include = req.include_authorized_operations;
            match check_topics(
                ctx,
                described.group_id.as_str(),
                topics_of(&described),
                include,
            ) {
                Ok(ops) => {
                    described.authorized_operations = ops.unwrap_or(described.authorized_operations)
                }
                Err(e) => return failed(described.group_id, e),
            }
            described
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
