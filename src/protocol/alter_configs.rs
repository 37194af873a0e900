//! AlterConfigs (key 33, legacy: a resource's overrides are replaced as a whole) and the checks it
//! shares with IncrementalAlterConfigs (key 44). Topic overrides are validated with Kafka's rules,
//! written to the topic file and applied to the live partition logs. Broker configs: the ones
//! Kafka can change at run time (the log settings, see `config::dynamic`) are persisted and
//! applied at once; any other gets Kafka's "Cannot update these configs dynamically".

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::errors;
use super::RequestContext;
use crate::config::alter::{topic_config_message, AlterError};
use crate::metadata::{validate_topic_name, TopicAdminError};
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let keys: Vec<(i8, String)> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .collect();
    let dups = duplicate_resources(&keys);
    let responses = req
        .resources
        .iter()
        .map(|r| {
            let key = (r.resource_type, r.resource_name.to_string());
            let authorized =
                ctx.authorize_configs(AclOperation::AlterConfigs, r.resource_type, &key.1);
            let outcome = if dups.contains(&key) {
                Err((errors::INVALID_REQUEST, "Duplicate resource.".to_string()))
            } else if let Err(code) = authorized {
                Err((code, String::new()))
            } else {
                let configs: Vec<(String, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                alter(ctx, r.resource_type, &key.1, &configs, req.validate_only)
            };
            // (An authorization failure carries no message, as in Kafka.)
            let (code, message) = match outcome {
                Ok(()) => (errors::NONE, None),
                Err((code, m)) if m.is_empty() => (code, None),
                Err((code, m)) => (code, Some(StrBytes::from_string(m))),
            };
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

fn alter(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    configs: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), (i16, String)> {
    check_keys(configs.iter().map(|(k, v)| (k.as_str(), v.is_some())))?;
    match resource_type {
        RESOURCE_TOPIC => {
            let next: BTreeMap<String, String> = configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect();
            set_topic(ctx, name, validate_only, |_| Ok(next.clone()))
        }
        RESOURCE_BROKER => {
            // Legacy AlterConfigs replaces the whole layer with the given settings.
            let next: BTreeMap<String, String> = configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect();
            alter_broker(ctx, name, validate_only, |_| Ok(next))
        }
        other => Err(unknown_resource(other)),
    }
}

/// Kafka's checks on one resource's keys: no duplicates, and a value for every key (the caller
/// says which keys may be null).
pub fn check_keys<'a>(
    keys: impl Iterator<Item = (&'a str, bool)> + Clone,
) -> Result<(), (i16, String)> {
    let mut seen = HashSet::new();
    if keys.clone().any(|(k, _)| !seen.insert(k)) {
        return Err((
            errors::INVALID_REQUEST,
            "Error due to duplicate config keys".into(),
        ));
    }
    let nulls: Vec<&str> = keys.filter(|(_, has)| !has).map(|(k, _)| k).collect();
    if !nulls.is_empty() {
        return Err((
            errors::INVALID_REQUEST,
            format!("Null value not supported for : {}", nulls.join(", ")),
        ));
    }
    Ok(())
}

pub fn duplicate_resources(keys: &[(i8, String)]) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    keys.iter()
        .filter(|k| !seen.insert((*k).clone()))
        .cloned()
        .collect()
}

pub fn unknown_resource(t: i8) -> (i16, String) {
    (
        errors::INVALID_REQUEST,
        format!("Unknown resource type {t}"),
    )
}

/// Validates and applies a topic's new set of overrides, computed from the current ones by
/// `change` under the catalog lock.
pub fn set_topic(
    ctx: &RequestContext<'_>,
    name: &str,
    validate_only: bool,
    mut change: impl FnMut(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AlterError>,
) -> Result<(), (i16, String)> {
    validate_topic_name(name).map_err(|m| (errors::INVALID_TOPIC_EXCEPTION, m))?;
    let change = |cur: &BTreeMap<String, String>| change(cur).map_err(TopicAdminError::Alter);
    match ctx
        .broker
        .catalog
        .update_topic_configs(name, change, validate_only)
    {
        Ok(_) => Ok(()),
        Err(TopicAdminError::UnknownTopic) => Err((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("The topic '{name}' does not exist."),
        )),
        Err(TopicAdminError::InvalidConfig(e)) => {
            Err((errors::INVALID_CONFIG, topic_config_message(&e)))
        }
        Err(TopicAdminError::Alter(e)) => Err(alter_error(e)),
        Err(e) => Err((errors::topic_admin_error_code(&e), e.to_string())),
    }
}

pub fn alter_error(e: AlterError) -> (i16, String) {
    match e {
        AlterError::Config(m) => (errors::INVALID_CONFIG, m),
        AlterError::Request(m) => (errors::INVALID_REQUEST, m),
    }
}

/// A change to this broker's dynamic configs (name = this node's id) or to the cluster-wide
/// default (empty name), as Kafka's ConfigAdminManager checks the name; `change` computes the
/// layer's new contents. Applied to every partition log at once.
pub fn alter_broker(
    ctx: &RequestContext<'_>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AlterError>,
) -> Result<(), (i16, String)> {
    if !name.is_empty() {
        let Ok(id) = name.parse::<i32>() else {
            return Err((
                errors::INVALID_REQUEST,
                format!("Node id must be an integer, but it is: {name}"),
            ));
        };
        if id != ctx.node_id {
            return Err((
                errors::INVALID_REQUEST,
                format!(
                    "Unexpected broker id, expected {}, but received {name}",
                    ctx.node_id
                ),
            ));
        }
    }
    let broker = ctx.broker;
    broker
        .dynamic
        .alter(
            &broker.config,
            name.is_empty(),
            validate_only,
            change,
            |log| broker.catalog.set_broker_log(log),
        )
        .map_err(alter_error)
}
