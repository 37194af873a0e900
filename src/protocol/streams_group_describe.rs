//! StreamsGroupDescribe (key 89, KIP-1071): topology, members, epochs and task assignments of
//! streams groups, as `kafka-streams-groups --describe` and AdminClient.describeStreamsGroups
//! read them.

use kafka_protocol::messages::streams_group_describe_response::{
    Assignment, DescribedGroup, Endpoint, KeyValue, Member, Subtopology, TaskIds, TopicInfo,
    Topology,
};
use kafka_protocol::messages::{
    StreamsGroupDescribeRequest, StreamsGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::consumer_group_describe::{check_group, check_topics, not_found_message};
use super::errors;
use super::streams_group_heartbeat::streams_groups_enabled;
use super::RequestContext;
use crate::group::streams::StreamsGroup;
use crate::group::streams_records::{self as rec, Tasks};

/// Kafka 4.4's default streams task assignor's name.
const ASSIGNOR: &str = "sticky";
/// TopologyDescriptionStatus NOT_STORED: no description plugin, nothing stored (v1).
const TOPOLOGY_DESCRIPTION_NOT_STORED: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: StreamsGroupDescribeRequest,
) -> StreamsGroupDescribeResponse {
    let failed = |id, code: i16, msg: Option<String>| {
        DescribedGroup::default()
            .with_group_id(id)
            .with_error_code(code)
            .with_error_message(msg.map(StrBytes::from_string))
    };
    let enabled = streams_groups_enabled(ctx);
    let v1 = ctx.api_version >= 1;
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            if !enabled {
                return failed(id, errors::UNSUPPORTED_VERSION, None);
            }
            if let Err((code, msg)) = check_group(ctx, id.as_str()) {
                return failed(id, code, msg.map(str::to_string));
            }
            let found = (ctx.broker.groups).with_streams_group(id.as_str(), describe);
            let Some(mut described) = found else {
                let msg = not_found_message(ctx, id.as_str(), "streams");
                return failed(id, errors::GROUP_ID_NOT_FOUND, Some(msg));
            };
            described.group_id = id;
            let topology = described
                .topology
                .iter()
                .flat_map(|t| t.subtopologies.iter().flatten());
            let topics: Vec<&str> = topology
                .flat_map(|s| {
                    (s.source_topics.iter().map(|t| t.as_str()))
                        .chain(s.repartition_sink_topics.iter().map(|t| t.as_str()))
                        .chain(s.state_changelog_topics.iter().map(|t| t.name.as_str()))
                        .chain(s.repartition_source_topics.iter().map(|t| t.name.as_str()))
                })
                .collect();
            let include = req.include_authorized_operations;
            match check_topics(ctx, described.group_id.as_str(), topics, include) {
                Ok(ops) => {
                    described.authorized_operations = ops.unwrap_or(described.authorized_operations)
                }
                Err((code, msg)) => {
                    return failed(described.group_id, code, msg.map(str::to_string))
                }
            }
            if v1 {
                described.assignor_name = Some(s(ASSIGNOR));
                if req.include_topology_description {
                    described.topology_description_status = TOPOLOGY_DESCRIPTION_NOT_STORED;
                }
            }
            described
        })
        .collect();
    StreamsGroupDescribeResponse::default().with_groups(groups)
}

fn task_ids(t: &Tasks) -> Vec<TaskIds> {
    rec::task_ids(t, |id, p| {
        TaskIds::default()
            .with_subtopology_id(id)
            .with_partitions(p)
    })
}

fn topic_info(name: &str, partitions: i32, configs: &[(String, String)]) -> TopicInfo {
    TopicInfo::default()
        .with_name(TopicName(s(name)))
        .with_partitions(partitions)
        .with_topic_configs(
            (configs.iter())
                .map(|(k, v)| KeyValue::default().with_key(s(k)).with_value(s(v)))
                .collect(),
        )
}

/// StreamsGroup.asDescribedGroup: the configured topology when it is ready (partition counts
/// resolved), the topology as the members sent it otherwise.
fn describe(g: &StreamsGroup) -> DescribedGroup {
    let topology = g.topology.as_ref().map(|t| {
        let ready = g.configured.as_ref().filter(|c| c.is_ready());
        let subs = ready.and_then(|c| c.subtopologies.as_ref());
        let names = |v: &[StrBytes]| v.iter().map(|n| TopicName(n.clone())).collect::<Vec<_>>();
        let infos = |v: &[rec::values::TopicInfo], resolved: Option<&Vec<(String, i32)>>| {
            (v.iter())
                .map(|i| {
                    let partitions = (resolved.into_iter().flatten())
                        .find(|(n, _)| n.as_str() == i.name.as_str())
                        .map_or(i.partitions, |(_, p)| *p);
                    let configs: Vec<(String, String)> = (i.topic_configs.iter())
                        .map(|c| (c.key.to_string(), c.value.to_string()))
                        .collect();
                    topic_info(&i.name, partitions, &configs)
                        .with_replication_factor(i.replication_factor)
                })
                .collect::<Vec<_>>()
        };
        let subtopologies = (t.subtopologies.iter())
            .map(|st| {
                let c = subs.and_then(|m| m.get(st.subtopology_id.as_str()));
                Subtopology::default()
                    .with_subtopology_id(st.subtopology_id.clone())
                    .with_source_topics(names(&st.source_topics))
                    .with_repartition_sink_topics(names(&st.repartition_sink_topics))
                    .with_state_changelog_topics(infos(
                        &st.state_changelog_topics,
                        c.map(|c| &c.changelog_topics),
                    ))
                    .with_repartition_source_topics(infos(
                        &st.repartition_source_topics,
                        c.map(|c| &c.repartition_source_topics),
                    ))
            })
            .collect();
        Topology::default()
            .with_epoch(t.epoch)
            .with_subtopologies(Some(subtopologies))
    });
    let empty = Tasks::new();
    let members = (g.members.values())
        .map(|m| {
            let target = g.target.get(&m.member_id).unwrap_or(&empty);
            Member::default()
                .with_member_id(s(&m.member_id))
                .with_member_epoch(m.member_epoch)
                .with_instance_id(m.instance_id.as_deref().map(s))
                .with_rack_id(m.rack_id.as_deref().map(s))
                .with_client_id(s(&m.client_id))
                .with_client_host(s(&m.client_host))
                .with_topology_epoch(m.topology_epoch)
                .with_process_id(s(&m.process_id))
                .with_user_endpoint(
                    m.user_endpoint
                        .as_ref()
                        .map(|(h, p)| Endpoint::default().with_host(s(h)).with_port(*p)),
                )
                .with_client_tags(
                    (m.client_tags.iter())
                        .map(|(k, v)| KeyValue::default().with_key(s(k)).with_value(s(v)))
                        .collect(),
                )
                .with_assignment(Assignment::default().with_active_tasks(task_ids(&m.assigned)))
                .with_target_assignment(Assignment::default().with_active_tasks(task_ids(target)))
        })
        .collect();
    DescribedGroup::default()
        .with_group_state(StrBytes::from_static_str(g.state()))
        .with_group_epoch(g.group_epoch)
        .with_assignment_epoch(g.assignment_epoch)
        .with_topology(topology)
        .with_members(members)
}
