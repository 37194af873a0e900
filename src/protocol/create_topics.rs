//! CreateTopics (key 19): per-topic validation and creation, with validate_only. Only a
//! replication factor of 1 can be honoured by a single node (INVALID_REPLICATION_FACTOR otherwise,
//! as on a one-broker Kafka).

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
    CreateTopicError, EXCESSIVE, EXCESSIVE_PARTITIONS, MAX_PARTITIONS_PER_BATCH,
    MAX_RECORDS_PER_USER_OP,
};

pub fn handle(ctx: &RequestContext<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let unique = || {
        req.topics
            .iter()
            .filter(|t| !duplicates.contains(t.name.as_str()))
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
    CreateTopicsResponse::default().with_topics(topics)
}

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
    if ctx.api_version >= 5 {
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
    let (partitions, rf) = if t.assignments.is_empty() {
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
        (p, rf)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                errors::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        let node = ctx.broker.node_id;
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32 || a.broker_ids.iter().any(|b| b.0 != node) {
                return Err((
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "Invalid replica assignment for partition {}",
                        a.partition_index
                    ),
                ));
            }
        }
        let rf = t
            .assignments
            .iter()
            .map(|a| a.broker_ids.len())
            .max()
            .unwrap_or(0) as i16;
        (t.assignments.len() as i32, rf)
    };
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        if let Some(v) = &c.value {
            configs.insert(c.name.to_string(), v.to_string());
        }
    }
    ctx.broker
        .catalog
        .validate(t.name.as_str(), partitions, rf, &configs)
        .map_err(to_wire)?;
    Ok(Planned {
        partitions,
        replication_factor: rf,
        configs,
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
        .create(
            t.name.as_str(),
            p.partitions,
            p.replication_factor,
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
