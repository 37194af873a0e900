//! IncrementalAlterConfigs (key 44, KIP-339): SET, DELETE, APPEND and SUBTRACT on a topic's
//! overrides, validated as a whole and applied live; per-resource errors as Kafka gives them
//! (ConfigAdminManager.preprocess, ConfigurationControlManager).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::alter_configs::{
    alter_broker, check_keys, duplicate_resources, set_topic, unknown_resource,
};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::errors;
use super::RequestContext;
use crate::config::alter::{apply_incremental, AlterOp, Table};
use crate::metadata::records::RESOURCE_GROUP;
use crate::security::authorizer::AclOperation;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
            let name = r.resource_name.to_string();
            let outcome = if dups.contains(&(r.resource_type, name.clone())) {
                Err((
                    errors::INVALID_REQUEST,
                    "Each resource must appear at most once.".to_string(),
                ))
            } else if let Err(code) =
                ctx.authorize_configs(AclOperation::AlterConfigs, r.resource_type, &name)
            {
                Err((code, String::new()))
            } else {
                alter(ctx, r, &name, req.validate_only)
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter(
    ctx: &RequestContext<'_>,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    name: &str,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    // DELETE needs no value; every other operation does.
    check_keys(r.configs.iter().map(|c| {
        (
            c.name.as_str(),
            c.value.is_some() || c.config_operation == 1,
        )
    }))?;
    let mut ops = Vec::with_capacity(r.configs.len());
    for c in &r.configs {
        let op = AlterOp::from_wire(c.config_operation).ok_or_else(|| {
            (
                errors::INVALID_REQUEST,
                format!("Unknown operations type {}", c.config_operation),
            )
        })?;
        ops.push((
            c.name.to_string(),
            op,
            c.value.as_ref().map(|v| v.to_string()),
        ));
    }
    match r.resource_type {
        RESOURCE_TOPIC => set_topic(ctx, name, validate_only, |current| {
            apply_incremental(Table::Topic, current, &ops)
        }),
        RESOURCE_BROKER => alter_broker(ctx, name, validate_only, |current| {
            apply_incremental(Table::Broker, current, &ops)
        }),
        RESOURCE_GROUP => alter_group(ctx, name, validate_only, &ops),
        other => Err(unknown_resource(other)),
    }
}

/// A group's configs (`share.auto.offset.reset`): SET and DELETE; the values are not lists.
fn alter_group(
    ctx: &RequestContext<'_>,
    name: &str,
    validate_only: bool,
    ops: &[(String, AlterOp, Option<String>)],
) -> Result<(), (i16, String)> {
    let change = |current: &std::collections::BTreeMap<String, String>| {
        let mut next = current.clone();
        for (key, op, value) in ops {
            match op {
                AlterOp::Set => {
                    next.insert(key.clone(), value.clone().unwrap_or_default());
                }
                AlterOp::Delete => {
                    next.remove(key);
                }
                AlterOp::Append | AlterOp::Subtract => {
                    return Err(format!(
                        "Config value append is not allowed for config key: {key}"
                    ));
                }
            }
        }
        crate::group::group_config::validate(&next, &ctx.broker.groups.cfg)?;
        Ok(next)
    };
    match ctx
        .broker
        .catalog
        .update_group_configs(name, change, validate_only)
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err((errors::INVALID_CONFIG, message)),
        Err(e) => Err((
            errors::metadata_write_error_code(&e, errors::UNKNOWN_SERVER_ERROR),
            e.to_string(),
        )),
    }
}
