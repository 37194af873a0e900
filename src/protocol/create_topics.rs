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
use crate::broker::now_ms;
use crate::config::describe::{describe_topic, ConfigEntry};
use crate::metadata::CreateTopicError;

pub fn handle(ctx: &RequestContext<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            if duplicates.contains(&name) {
                return fail(
                    result,
                    errors::INVALID_REQUEST,
                    format!(
                        "Create topics request from client contains duplicate topic name: {name}"
                    ),
                );
            }
            match create(ctx, t, req.validate_only) {
                Ok(created) => {
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
                Err((code, message)) => fail(result, code, message),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
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

fn create(
    ctx: &RequestContext<'_>,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<Created, (i16, String)> {
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
    let catalog = &ctx.broker.catalog;
    let name = t.name.as_str();
    let to_wire = |e: CreateTopicError| (errors::create_topic_error_code(&e), e.to_string());
    if validate_only {
        catalog
            .validate(name, partitions, rf, &configs)
            .map_err(to_wire)?;
        return Ok(Created {
            topic_id: uuid::Uuid::nil(),
            partitions,
            replication_factor: rf,
            configs,
        });
    }
    let topic = catalog
        .create(name, partitions, rf, configs.clone(), now_ms())
        .map_err(to_wire)?;
    Ok(Created {
        topic_id: topic.topic_id,
        partitions,
        replication_factor: rf,
        configs,
    })
}

fn fail(r: CreatableTopicResult, code: i16, message: String) -> CreatableTopicResult {
    r.with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}
