//! CreateTopics (key 19): per-topic validation and creation, with validate_only. Replicas are
//! placed on the registered brokers (INVALID_REPLICATION_FACTOR beyond their number), or taken
//! from the request's assignments, checked as Kafka's controller checks them.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::config::describe::{describe_topic, ConfigEntry};
use crate::metadata::{
    Assignment, CreateTopicError, EXCESSIVE, EXCESSIVE_PARTITIONS, MAX_PARTITIONS_PER_BATCH,
    MAX_RECORDS_PER_USER_OP,
};
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    // CREATE on the cluster or on each topic (ControllerApis.createTopics); the others are
    // TOPIC_AUTHORIZATION_FAILED and count for nothing.
    let cluster_create = ctx.authorize_cluster(AclOperation::Create);
    let authorized: HashSet<&str> = req
        .topics
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| cluster_create || ctx.authorize_topic(AclOperation::Create, n))
        .collect();
    let unique = || {
        req.topics.iter().filter(|t| {
            !duplicates.contains(t.name.as_str()) && authorized.contains(t.name.as_str())
        })
    };
    // Kafka's controller refuses the whole request, before looking at any topic, when its topics
    // together ask for too many partitions (ReplicationControlManager.createTopics).
    if requested_partitions(unique(), ctx.broker.config.num_partitions) > MAX_PARTITIONS_PER_BATCH {
        return fail_all(&req, EXCESSIVE_PARTITIONS);
    }
    // Everything is checked before anything is created, so that the operation can be refused
    // whole, as Kafka's controller refuses one that would write too many metadata records.
    let planned: Vec<Result<Planned, (i16, String)>> = req
        .topics
        .iter()
        .map(|t| {
            if duplicates.contains(t.name.as_str()) {
                let name = t.name.as_str();
                return Err((
                    errors::INVALID_REQUEST,
                    format!(
                        "Create topics request from client contains duplicate topic name: {name}"
                    ),
                ));
            }
            if !authorized.contains(t.name.as_str()) {
                return Err((
                    errors::TOPIC_AUTHORIZATION_FAILED,
                    "Authorization failed.".to_string(),
                ));
            }
            plan(ctx, t)
        })
        .collect();
    let records: usize = planned
        .iter()
        .flatten()
        .map(Planned::metadata_records)
        .sum();
    if records > MAX_RECORDS_PER_USER_OP {
        return fail_all(&req, EXCESSIVE);
    }
    let topics = req
        .topics
        .iter()
        .zip(planned)
        .map(|(t, planned)| {
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            // The controller mutation quota (KIP-599, strict from v6) is drawn on after the
            // topic is validated and before it is created, validate_only or not, as
            // ReplicationControlManager.createTopic does.
            let planned = planned.and_then(|p| {
                let permits = usize::try_from(p.partitions).unwrap_or(0);
                ctx.controller_mutation(permits, MUTATION_QUOTA_STRICT_SINCE)
                    .map(|()| p)
            });
            let created = planned.and_then(|p| {
                if req.validate_only {
                    Ok(p.into_created(uuid::Uuid::nil()))
                } else {
                    create(ctx, t, p)
                }
            });
            match created {
                Ok(created) => succeeded(ctx, result, created),
                Err((code, message)) => fail(result, code, message),
            }
        })
        .collect();
    CreateTopicsResponse::default()
        .with_topics(topics)
        .with_throttle_time_ms(ctx.throttle_time_ms())
}

/// CreateTopics refuses mutations over the quota from this version (older ones are throttled).
const MUTATION_QUOTA_STRICT_SINCE: i16 = 6;

/// The partitions a request asks for, counted as Kafka's validateTotalNumberOfPartitions does:
/// the assignments when given, else the partition count (-1: the broker default).
fn requested_partitions<'a>(
    topics: impl Iterator<Item = &'a CreatableTopic>,
    default_partitions: i32,
) -> i64 {
    topics
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => i64::from(default_partitions),
            (0, n) => i64::from(n.max(0)),
            (n, _) => n as i64,
        })
        .sum()
}

/// Every topic of the request refused with POLICY_VIOLATION (CreateTopicsRequest.getErrorResponse
/// of the controller's PolicyViolationException).
fn fail_all(req: &CreateTopicsRequest, message: &str) -> CreateTopicsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            fail(result, errors::POLICY_VIOLATION, message.to_string())
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn succeeded(
    ctx: &RequestContext<'_>,
    result: CreatableTopicResult,
    created: Created,
) -> CreatableTopicResult {
    let mut r = result
        .with_num_partitions(created.partitions)
        .with_replication_factor(created.replication_factor)
        .with_error_message(None);
    if ctx.api_version >= 7 {
        r.topic_id = created.topic_id;
    }
    // KIP-525's configs only with DESCRIBE_CONFIGS on the topic.
    if ctx.api_version >= 5 && !ctx.authorize_topic(AclOperation::DescribeConfigs, r.name.as_str())
    {
        r.topic_config_error_code = errors::TOPIC_AUTHORIZATION_FAILED;
        r.configs = Some(Vec::new());
    } else if ctx.api_version >= 5 {
        // KIP-525: the new topic's effective configs, as DescribeConfigs shows them.
        let entries = describe_topic(
            &ctx.broker.config,
            &ctx.broker.dynamic.layers(),
            &created.configs,
        );
        r.configs = Some(entries.iter().map(created_config).collect());
    }
    r
}

/// A topic that passed validation, with its effective partition count, replication factor and
/// configs.
struct Planned {
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
    assignment: Assignment,
}

impl Planned {
    /// What Kafka's controller would write for it: a TopicRecord, a ConfigRecord per config and
    /// a PartitionRecord per partition.
    fn metadata_records(&self) -> usize {
        1 + self.configs.len() + usize::try_from(self.partitions).unwrap_or(0)
    }

    fn into_created(self, topic_id: uuid::Uuid) -> Created {
        Created {
            topic_id,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            configs: self.configs,
        }
    }
}

struct Created {
    topic_id: uuid::Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
}

fn created_config(e: &ConfigEntry) -> CreatableTopicConfigs {
    CreatableTopicConfigs::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(e.value.clone().map(StrBytes::from_string))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(e.sensitive)
}

/// Validates one topic of the request without creating anything.
fn plan(ctx: &RequestContext<'_>, t: &CreatableTopic) -> Result<Planned, (i16, String)> {
    let config = &ctx.broker.config;
    let (assignment, rf) = if t.assignments.is_empty() {
        let p = if t.num_partitions == -1 {
            config.num_partitions
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor == -1 {
            config.default_replication_factor
        } else {
            t.replication_factor
        };
        let assignment = Assignment::Placed {
            partitions: p,
            replication_factor: rf,
        };
        (assignment, rf)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                errors::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        // ReplicationControlManager.createTopic: partition indexes 0, 1, ... in any order.
        let mut lists = vec![None; t.assignments.len()];
        for a in &t.assignments {
            let slot = usize::try_from(a.partition_index)
                .ok()
                .and_then(|i| lists.get_mut(i))
                .filter(|s| s.is_none());
            let Some(slot) = slot else {
                return Err((
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    "partitions should be a consecutive 0-based integer sequence".into(),
                ));
            };
            *slot = Some(a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>());
        }
        let lists: Vec<Vec<i32>> = lists.into_iter().flatten().collect();
        let rf = lists.first().map_or(0, Vec::len) as i16;
        (Assignment::Manual(lists), rf)
    };
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        if let Some(v) = &c.value {
            configs.insert(c.name.to_string(), v.to_string());
        }
    }
    let (_, placed) = ctx
        .broker
        .catalog
        .validate_assigned(t.name.as_str(), &assignment, &configs)
        .map_err(to_wire)?;
    Ok(Planned {
        partitions: placed.len() as i32,
        replication_factor: rf,
        configs,
        assignment,
    })
}

fn to_wire(e: CreateTopicError) -> (i16, String) {
    (errors::create_topic_error_code(&e), e.to_string())
}

fn create(
    ctx: &RequestContext<'_>,
    t: &CreatableTopic,
    p: Planned,
) -> Result<Created, (i16, String)> {
    let topic = ctx
        .broker
        .catalog
        .create_assigned(
            t.name.as_str(),
            &p.assignment,
            p.configs.clone(),
            ctx.broker.clock.now_ms(),
        )
        .map_err(to_wire)?;
    Ok(p.into_created(topic.topic_id))
}

fn fail(r: CreatableTopicResult, code: i16, message: String) -> CreatableTopicResult {
    r.with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}
