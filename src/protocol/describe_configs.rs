//! DescribeConfigs (key 32): the configs of topics and of this broker, with values, sources,
//! synonyms and types, as `kafka-topics --describe`, `kafka-configs --describe` and AdminClient
//! read them, with Kafka's documentation of each config when asked (v3+, KIP-569).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::config::describe::{
    describe_broker, describe_cluster_default, describe_topic, ConfigEntry,
};
use crate::config::ConfigType;
use crate::metadata::validate_topic_name;
use crate::security::authorizer::AclOperation;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub fn handle(ctx: &RequestContext<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let name = r.resource_name.as_str();
            let described = ctx
                .authorize_configs(AclOperation::DescribeConfigs, r.resource_type, name)
                .map_err(|code| (code, None))
                .and_then(|()| {
                    entries(ctx, r.resource_type, name).map_err(|(code, m)| (code, Some(m)))
                });
            match described {
                Ok(entries) => {
                    // Null or empty keys mean every config (ConfigHelper.describeConfigs).
                    let wanted = |e: &ConfigEntry| match &r.configuration_keys {
                        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == e.name),
                        _ => true,
                    };
                    let configs = entries
                        .iter()
                        .filter(|e| wanted(e))
                        .map(|e| {
                            to_wire(
                                e,
                                req.include_synonyms,
                                req.include_documentation,
                                ctx.api_version,
                            )
                        })
                        .collect();
                    result.with_configs(configs).with_error_message(None)
                }
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entries(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
) -> Result<Vec<ConfigEntry>, (i16, String)> {
    let broker = ctx.broker;
    match resource_type {
        RESOURCE_TOPIC => {
            validate_topic_name(name).map_err(|m| (errors::INVALID_TOPIC_EXCEPTION, m))?;
            let topic = broker.catalog.get(name).ok_or_else(|| {
                (
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist"),
                )
            })?;
            Ok(describe_topic(
                &broker.config,
                &broker.dynamic.layers(),
                &topic.configs,
            ))
        }
        // The empty name asks for the cluster-wide dynamic defaults.
        RESOURCE_BROKER if name.is_empty() => {
            Ok(describe_cluster_default(&broker.dynamic.layers()))
        }
        // Every broker of this process shares the one configuration.
        RESOURCE_BROKER if name == ctx.node_id.to_string() => {
            Ok(describe_broker(&broker.config, &broker.dynamic.layers()))
        }
        RESOURCE_BROKER => Err((
            errors::INVALID_REQUEST,
            format!(
                "Unexpected broker id, expected {} but received {name}",
                ctx.node_id
            ),
        )),
        crate::metadata::records::RESOURCE_GROUP => {
            let overrides = broker
                .catalog
                .image()
                .configs_of(crate::metadata::records::RESOURCE_GROUP, name);
            Ok(crate::config::describe::describe_group(
                &overrides,
                &broker.groups.cfg,
            ))
        }
        other => Err((
            errors::INVALID_REQUEST,
            format!("Unsupported resource type {other}"),
        )),
    }
}

pub fn config_type_code(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Short => 4,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
        ConfigType::Class => 8,
        ConfigType::Password => 9,
    }
}

fn to_wire(
    e: &ConfigEntry,
    include_synonyms: bool,
    include_documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let text = |v: &Option<String>| v.clone().map(StrBytes::from_string);
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(text(&e.value))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(e.sensitive)
        .with_documentation(None);
    if include_synonyms {
        r.synonyms = e
            .synonyms
            .iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name.clone()))
                    .with_value(text(&s.value))
                    .with_source(s.source as i8)
            })
            .collect();
    }
    if version >= 3 {
        r.config_type = config_type_code(e.kind);
        if include_documentation {
            r.documentation = e.documentation.map(StrBytes::from_static_str);
        }
    }
    r
}
