//! ShareGroupDescribe (key 77, KIP-932): members, epochs and assignments of share groups, as
//! `kafka-share-groups --describe --members` and AdminClient.describeShareGroups read them.

use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::consumer_group_describe::{check_group, check_topics, not_found_message};
use super::errors;
use super::RequestContext;
use crate::group::consumer::{partitions_by_topic, Assignment as Partitions};
use crate::group::share::ShareGroup;

/// Kafka 4.4's share-group assignor's name (`SimpleAssignor`).
const ASSIGNOR: &str = "simple";

pub fn handle(
    ctx: &RequestContext<'_>,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let failed = |id, code: i16, msg: Option<String>| {
        DescribedGroup::default()
            .with_group_id(id)
            .with_error_code(code)
            .with_error_message(msg.map(StrBytes::from_string))
    };
    let enabled = super::share_groups_enabled(ctx);
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            if !enabled {
                let msg = "Share groups are not enabled.".to_string();
                return failed(id, errors::UNSUPPORTED_VERSION, Some(msg));
            }
            if let Err((code, msg)) = check_group(ctx, id.as_str()) {
                return failed(id, code, msg.map(str::to_string));
            }
            let found = (ctx.broker.groups).with_share_group(id.as_str(), |g| describe(ctx, g));
            let Some(mut described) = found else {
                let msg = not_found_message(ctx, id.as_str(), "share");
                return failed(id, errors::GROUP_ID_NOT_FOUND, Some(msg));
            };
            described.group_id = id;
            let topics = described.members.iter().flat_map(|m| {
                let assigned = m
                    .assignment
                    .topic_partitions
                    .iter()
                    .map(|t| t.topic_name.as_str());
                m.subscribed_topic_names
                    .iter()
                    .map(|t| t.as_str())
                    .chain(assigned)
            });
            let include = req.include_authorized_operations;
            match check_topics(ctx, described.group_id.as_str(), topics, include) {
                Ok(ops) => {
                    described.authorized_operations = ops.unwrap_or(described.authorized_operations)
                }
                Err((code, msg)) => {
                    return failed(described.group_id, code, msg.map(str::to_string))
                }
            }
            described
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

fn describe(ctx: &RequestContext<'_>, g: &ShareGroup) -> DescribedGroup {
    let members = g
        .members
        .values()
        .map(|m| {
            Member::default()
                .with_member_id(StrBytes::from_string(m.member_id.clone()))
                .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                .with_member_epoch(m.member_epoch)
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()))
                .with_subscribed_topic_names(
                    (m.subscribed_topic_names.iter())
                        .map(|t| TopicName(StrBytes::from_string(t.clone())))
                        .collect(),
                )
                .with_assignment(assignment(ctx, &m.assignment))
        })
        .collect();
    DescribedGroup::default()
        .with_group_state(StrBytes::from_static_str(g.state()))
        .with_group_epoch(g.group_epoch)
        .with_assignment_epoch(g.assignment_epoch)
        .with_assignor_name(StrBytes::from_static_str(ASSIGNOR))
        .with_members(members)
}

fn assignment(ctx: &RequestContext<'_>, a: &Partitions) -> Assignment {
    let tps = partitions_by_topic(a, |(id, partitions)| {
        let name = (ctx.broker.catalog.get_by_id(id))
            .map(|t| t.name.clone())
            .unwrap_or_default();
        TopicPartitions::default()
            .with_topic_id(id)
            .with_topic_name(TopicName(StrBytes::from_string(name)))
            .with_partitions(partitions)
    });
    Assignment::default().with_topic_partitions(tps)
}
