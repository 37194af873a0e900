//! DescribeClientQuotas (key 48): the client quotas of the metadata image (set with
//! AlterClientQuotas) whose entity matches the filter, as Kafka's ClientQuotasImage.describe
//! answers: each component names an entity type and an exact name, the default, or any name
//! ("specified"); `strict` also requires the entity to have no other types. The filter is
//! checked with Kafka's errors (INVALID_REQUEST, UNSUPPORTED_VERSION for an unknown entity type).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use crate::metadata::image::{MetadataImage, QuotaEntity};

use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;

const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;

/// The filter: entity types with the name they must have (`None`: the default), and entity
/// types that must be there with any name.
type Filter = (QuotaEntity, BTreeSet<String>);

fn check_filter(req: &DescribeClientQuotasRequest) -> Result<Filter, (i16, String)> {
    let invalid = |m: String| (errors::INVALID_REQUEST, m);
    let mut seen: Vec<&str> = Vec::new();
    let (mut exact, mut specified) = (QuotaEntity::new(), BTreeSet::new());
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if seen.contains(&t) {
            return Err(invalid(format!(
                "Entity type {t} cannot appear more than once in the filter."
            )));
        }
        if !["ip", "user", "client-id"].contains(&t) {
            return Err((
                errors::UNSUPPORTED_VERSION,
                format!("Unsupported entity type {t}"),
            ));
        }
        match (c.match_type, &c._match) {
            (MATCH_TYPE_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_TYPE_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_EXACT | MATCH_TYPE_DEFAULT, name) => {
                exact.insert(t.to_string(), name.as_ref().map(|n| n.to_string()));
            }
            (MATCH_TYPE_SPECIFIED, _) => {
                specified.insert(t.to_string());
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
        seen.push(t);
    }
    if seen.contains(&"ip") && (seen.contains(&"user") || seen.contains(&"client-id")) {
        return Err(invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into()));
    }
    Ok((exact, specified))
}

fn matches(entity: &QuotaEntity, (exact, specified): &Filter, strict: bool) -> bool {
    (!strict || entity.len() == exact.len() + specified.len())
        && exact.iter().all(|(t, name)| entity.get(t) == Some(name))
        && specified.iter().all(|t| entity.contains_key(t))
}

/// Every entity matching `filter`, with its quotas.
fn entries(image: &MetadataImage, filter: &Filter, strict: bool) -> Vec<EntryData> {
    let mut by_entity: BTreeMap<&QuotaEntity, Vec<ValueData>> = BTreeMap::new();
    for ((entity, key), value) in image.client_quotas.iter() {
        if matches(entity, filter, strict) {
            by_entity.entry(entity).or_default().push(
                ValueData::default()
                    .with_key(StrBytes::from_string(key.clone()))
                    .with_value(*value),
            );
        }
    }
    (by_entity.into_iter())
        .map(|(entity, values)| {
            let entity = (entity.iter())
                .map(|(t, name)| {
                    EntityData::default()
                        .with_entity_type(StrBytes::from_string(t.clone()))
                        .with_entity_name(name.clone().map(StrBytes::from_string))
                })
                .collect();
            EntryData::default().with_entity(entity).with_values(values)
        })
        .collect()
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // DESCRIBE_CONFIGS on the cluster (KafkaApis.handleDescribeClientQuotasRequest).
    let checked = if ctx.authorize_cluster(AclOperation::DescribeConfigs) {
        check_filter(&req)
    } else {
        Err((
            errors::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".to_string(),
        ))
    };
    match checked {
        Ok(filter) => DescribeClientQuotasResponse::default()
            .with_error_message(None)
            .with_entries(Some(entries(
                &ctx.broker.catalog.image(),
                &filter,
                req.strict,
            ))),
        Err((code, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None),
    }
}
