//! StreamsGroupHeartbeat (key 88, KIP-1071): joins, stays in and leaves a streams group, whose
//! tasks the broker assigns (see `group/streams.rs`), and creates the application's internal
//! topics (repartition and changelog) as Kafka's KafkaApis does after the coordinator asked for
//! them. Served only while the `streams.version` feature is finalized at 1 or more; otherwise
//! Kafka 4.4 answers UNSUPPORTED_VERSION, and so does gregor.

use std::collections::BTreeMap;

use kafka_protocol::messages::streams_group_heartbeat_request::{
    self as req_m, TaskIds as ReqTasks,
};
use kafka_protocol::messages::streams_group_heartbeat_response::{
    Endpoint, EndpointToPartitions, Status, TaskIds, TopicPartition,
};
use kafka_protocol::messages::{
    StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::group::streams::{
    invalid_topology, validate_heartbeat, InternalTopic, StreamsHeartbeat, MISSING_INTERNAL_TOPICS,
};
use crate::group::streams_records::{self as rec, values as t, Tasks, TopologyValue};
use crate::security::authorizer::AclOperation;

/// The feature that turns streams groups on (Kafka's StreamsVersion; level 1 serves them).
pub const STREAMS_VERSION_FEATURE: &str = "streams.version";

/// group.streams.acceptable.recovery.lag's default: what the response tells members (they use
/// it for warm-up tasks, which gregor does not assign).
const ACCEPTABLE_RECOVERY_LAG: i64 = 10_000;

/// Whether streams groups are served: `streams.version` finalized at 1 or more (KafkaApis'
/// isStreamsGroupProtocolEnabled).
pub fn streams_groups_enabled(ctx: &RequestContext<'_>) -> bool {
    let image = ctx.broker.catalog.image();
    crate::metadata::features::finalized(&image, STREAMS_VERSION_FEATURE) >= 1
}

fn error(code: i16, msg: Option<String>) -> StreamsGroupHeartbeatResponse {
    StreamsGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(msg.map(StrBytes::from_string))
}

/// KafkaApis' checks of the topology's topic names: none internal, all valid, all describable.
fn check_topology_topics(
    ctx: &RequestContext<'_>,
    topology: &req_m::Topology,
) -> Result<(), (i16, Option<String>)> {
    let mut required: Vec<&str> = Vec::new();
    for s in &topology.subtopologies {
        required.extend(s.source_topics.iter().map(|n| n.as_str()));
        required.extend(s.repartition_sink_topics.iter().map(|n| n.as_str()));
        required.extend(s.repartition_source_topics.iter().map(|r| r.name.as_str()));
        required.extend(s.state_changelog_topics.iter().map(|r| r.name.as_str()));
    }
    let mut seen = std::collections::HashSet::new();
    required.retain(|n| seen.insert(*n));
    let internal: Vec<&str> = (required.iter().copied())
        .filter(|n| crate::metadata::topic::is_internal_name(n))
        .collect();
    if !internal.is_empty() {
        let msg = format!(
            "Use of Kafka internal topics {} in a Kafka Streams topology is prohibited.",
            internal.join(",")
        );
        return Err((errors::STREAMS_INVALID_TOPOLOGY, Some(msg)));
    }
    let invalid: Vec<&str> = (required.iter().copied())
        .filter(|n| crate::metadata::topic::validate_topic_name(n).is_err())
        .collect();
    if !invalid.is_empty() {
        let msg = format!(
            "Topic names {} are not valid topic names.",
            invalid.join(",")
        );
        return Err((errors::STREAMS_INVALID_TOPOLOGY, Some(msg)));
    }
    if !required
        .iter()
        .all(|n| ctx.authorize_topic(AclOperation::Describe, n))
    {
        return Err((errors::TOPIC_AUTHORIZATION_FAILED, None));
    }
    Ok(())
}

/// The request's values as the topology record keeps it.
fn topology_value(t: &req_m::Topology) -> TopologyValue {
    let info = |i: &req_m::TopicInfo| {
        t::TopicInfo::default()
            .with_name(i.name.0.clone())
            .with_partitions(i.partitions)
            .with_replication_factor(i.replication_factor)
            .with_topic_configs(
                (i.topic_configs.iter())
                    .map(|c| {
                        t::TopicConfig::default()
                            .with_key(c.key.clone())
                            .with_value(c.value.clone())
                    })
                    .collect(),
            )
    };
    let names = |v: &[TopicName]| v.iter().map(|n| n.0.clone()).collect::<Vec<_>>();
    let subtopologies = (t.subtopologies.iter())
        .map(|s| {
            t::Subtopology::default()
                .with_subtopology_id(s.subtopology_id.clone())
                .with_source_topics(names(&s.source_topics))
                .with_source_topic_regex(s.source_topic_regex.clone())
                .with_state_changelog_topics(s.state_changelog_topics.iter().map(info).collect())
                .with_repartition_sink_topics(names(&s.repartition_sink_topics))
                .with_repartition_source_topics(
                    s.repartition_source_topics.iter().map(info).collect(),
                )
                .with_copartition_groups(
                    (s.copartition_groups.iter())
                        .map(|g| {
                            t::CopartitionGroup::default()
                                .with_source_topics(g.source_topics.clone())
                                .with_source_topic_regex(g.source_topic_regex.clone())
                                .with_repartition_source_topics(g.repartition_source_topics.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    TopologyValue {
        epoch: t.epoch,
        subtopologies,
        ..TopologyValue::default()
    }
}

fn tasks(list: Option<Vec<ReqTasks>>) -> Option<Tasks> {
    list.map(|l| {
        rec::tasks_of(
            l.iter()
                .map(|t| (&t.subtopology_id, t.partitions.as_slice())),
        )
    })
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: StreamsGroupHeartbeatRequest,
) -> StreamsGroupHeartbeatResponse {
    if !streams_groups_enabled(ctx) {
        return error(errors::UNSUPPORTED_VERSION, None);
    }
    let group_id = req.group_id.as_str().to_string();
    if !ctx.authorize_group(AclOperation::Read, &group_id) {
        return error(errors::GROUP_AUTHORIZATION_FAILED, None);
    }
    if let Some(topology) = &req.topology {
        if let Err((code, msg)) = check_topology_topics(ctx, topology) {
            return error(code, msg);
        }
    }
    let hb = StreamsHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topology: req.topology.as_ref().map(topology_value),
        owned_active: tasks(req.active_tasks),
        owned_standby: tasks(req.standby_tasks),
        owned_warmup: tasks(req.warmup_tasks),
        process_id: req.process_id.map(|s| s.to_string()),
        user_endpoint: req.user_endpoint.map(|e| (e.host.to_string(), e.port)),
        client_tags: req.client_tags.map(|tags| {
            (tags.into_iter())
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect::<BTreeMap<_, _>>()
        }),
        shutdown_application: req.shutdown_application,
        endpoint_information_epoch: req.endpoint_information_epoch,
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
    };
    if let Err(msg) = validate_heartbeat(&group_id, &hb) {
        return error(errors::INVALID_REQUEST, Some(msg));
    }
    if let Some(msg) = invalid_topology(&hb) {
        return error(errors::STREAMS_INVALID_TOPOLOGY, Some(msg));
    }
    if let Err(code) = super::cluster::check_group_coordinator(ctx, &group_id) {
        return error(code, None);
    }
    let broker = ctx.broker;
    let r = broker
        .groups
        .streams_heartbeat(&broker.catalog, &group_id, hb, broker.clock.now());
    if r.error_code != errors::NONE {
        return error(r.error_code, r.error_message);
    }
    let mut status: Vec<Status> = (r.status.iter())
        .map(|(code, detail)| {
            Status::default()
                .with_status_code(*code)
                .with_status_detail(StrBytes::from_string(detail.clone()))
        })
        .collect();
    if !r.topics_to_create.is_empty() {
        create_internal_topics(ctx, &r.topics_to_create, &mut status);
    }
    let task_ids = |t: Tasks| {
        rec::task_ids(&t, |s, p| {
            TaskIds::default().with_subtopology_id(s).with_partitions(p)
        })
    };
    let mut resp = StreamsGroupHeartbeatResponse::default()
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_task_offset_interval_ms(r.task_offset_interval_ms)
        .with_status(Some(status))
        .with_endpoint_information_epoch(r.endpoint_information_epoch);
    if ctx.api_version == 0 {
        resp.acceptable_recovery_lag_legacy = ACCEPTABLE_RECOVERY_LAG as i32;
    } else {
        resp.acceptable_recovery_lag = ACCEPTABLE_RECOVERY_LAG;
    }
    if let Some(active) = r.active_tasks {
        resp.active_tasks = Some(task_ids(active));
        resp.standby_tasks = Some(Vec::new());
        resp.warmup_tasks = Some(Vec::new());
    }
    resp.partitions_by_user_endpoint = r.partitions_by_user_endpoint.map(|list| {
        (list.into_iter())
            .map(|e| {
                EndpointToPartitions::default()
                    .with_user_endpoint(
                        Endpoint::default()
                            .with_host(StrBytes::from_string(e.endpoint.0))
                            .with_port(e.endpoint.1),
                    )
                    .with_active_partitions(
                        (e.active.into_iter())
                            .map(|(topic, partitions)| {
                                TopicPartition::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
            })
            .collect()
    });
    resp
}

/// KafkaApis after a streams heartbeat that asked for internal topics: CREATE on the cluster, or
/// on each topic, then the topics are created (a failure, or their absence, is told in the
/// MISSING_INTERNAL_TOPICS status; the next heartbeat finds them).
fn create_internal_topics(
    ctx: &RequestContext<'_>,
    topics: &[InternalTopic],
    status: &mut Vec<Status>,
) {
    let unauthorized: Vec<&str> = if ctx.authorize_cluster(AclOperation::Create) {
        Vec::new()
    } else {
        (topics.iter())
            .filter(|t| !ctx.authorize_topic(AclOperation::Create, &t.name))
            .map(|t| t.name.as_str())
            .collect()
    };
    let mut append = |detail: String| match (status.iter_mut())
        .find(|s| s.status_code == MISSING_INTERNAL_TOPICS)
    {
        Some(s) => s.status_detail = StrBytes::from_string(format!("{}{detail}", s.status_detail)),
        None => status.push(
            Status::default()
                .with_status_code(MISSING_INTERNAL_TOPICS)
                .with_status_detail(StrBytes::from_string(
                    detail.trim_start_matches("; ").to_string(),
                )),
        ),
    };
    if !unauthorized.is_empty() {
        append(format!(
            "; Unauthorized to CREATE on topics {}.",
            unauthorized.join(", ")
        ));
        return;
    }
    let broker = ctx.broker;
    let mut failed = Vec::new();
    for t in topics {
        let rf = match t.replication_factor {
            n if n > 0 => n,
            _ => broker.config.default_replication_factor,
        };
        let configs = t.configs.clone();
        let now = broker.clock.now_ms();
        match broker
            .catalog
            .create(&t.name, t.partitions, rf, configs, now)
        {
            Ok(_) => tracing::info!(topic = %t.name, partitions = t.partitions,
                "created a streams group's internal topic"),
            Err(crate::metadata::CreateTopicError::AlreadyExists(_)) => {}
            Err(e) => failed.push(format!("{} ({e})", t.name)),
        }
    }
    if !failed.is_empty() {
        let shown = failed
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = match failed.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        append(format!("; Creation failed: {shown}{more}."));
    }
}
