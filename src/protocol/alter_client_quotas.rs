//! AlterClientQuotas (key 49): sets and removes client quotas (`kafka-configs --alter
//! --entity-type users/clients --add-config producer_byte_rate=...`), as Kafka's
//! ClientQuotaControlManager does: each entry is checked on its own (entity types user,
//! client-id and ip, no duplicates, no empty names, ip never with the others; known keys, values
//! above 0, whole numbers for the integral ones, no key twice) and its changes become
//! ClientQuotaRecords in the metadata log, only for values that change. ALTER_CONFIGS on the
//! cluster is needed.
//!
//! gregor enforces every key Kafka knows: the byte rates, the request percentage and the
//! controller mutation rate (`server::client_quotas`), and an ip's `connection_creation_rate`
//! when connections are accepted (`server::quotas`, KIP-612). An ip entity names an IP address;
//! Kafka also takes a host name there (InetAddress.getByName), which gregor refuses as not an
//! address rather than resolve names on the request path.

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::metadata::image::{MetadataImage, QuotaEntity};
use crate::metadata::records::{ClientQuotaRecord, MetadataRecord};
use crate::security::authorizer::AclOperation;
use crate::server::client_quotas::{
    CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
};

/// How a quota key's value is typed in Kafka's QuotaConfig.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Long,
    Int,
    Double,
}

/// The keys Kafka accepts for users and client ids (QuotaConfig.userAndClientQuotaConfigs) and
/// for ips (ipConfigs).
const USER_AND_CLIENT_KEYS: [(&str, Kind); 4] = [
    (PRODUCER_BYTE_RATE, Kind::Long),
    (CONSUMER_BYTE_RATE, Kind::Long),
    (REQUEST_PERCENTAGE, Kind::Double),
    (CONTROLLER_MUTATION_RATE, Kind::Double),
];
const IP_KEYS: [(&str, Kind); 1] = [(CONNECTION_CREATION_RATE, Kind::Int)];

type Outcome = Result<(), (i16, String)>;

fn invalid(message: String) -> (i16, String) {
    (errors::INVALID_REQUEST, message)
}

/// The entity's types and names, checked (ClientQuotaControlManager.validateEntity).
fn entity_of(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<QuotaEntity, (i16, String)> {
    if entry.entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    let mut entity = QuotaEntity::new();
    for e in &entry.entity {
        let t = e.entity_type.as_str();
        if entity.contains_key(t) {
            return Err(invalid(format!(
                "Invalid client quota entity, duplicate entity entry {t}"
            )));
        }
        if !["user", "client-id", "ip"].contains(&t) {
            return Err(invalid(format!("Unhandled client quota entity type: {t}")));
        }
        if e.entity_name.as_ref().is_some_and(|n| n.is_empty()) {
            return Err(invalid(format!("Empty {t} not supported")));
        }
        entity.insert(t.to_string(), e.entity_name.as_ref().map(|n| n.to_string()));
    }
    Ok(entity)
}

/// The keys the entity may have (configKeysForEntityType).
fn keys_for(entity: &QuotaEntity) -> Result<&'static [(&'static str, Kind)], (i16, String)> {
    let Some(ip) = entity.get("ip") else {
        return Ok(&USER_AND_CLIENT_KEYS);
    };
    if entity.len() > 1 {
        return Err(invalid(
            "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"
                .into(),
        ));
    }
    match ip {
        // Kafka's message; gregor also refuses host names (see the module comment).
        Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => Err(invalid(format!(
            "{ip} is not a valid IP or resolvable host. gregor takes IP addresses only."
        ))),
        _ => Ok(&IP_KEYS),
    }
}

/// A value for `key`, checked as ClientQuotaControlManager.validateQuotaKeyValue checks it: above
/// 0 (and a number: Kafka would store NaN), within its type's range, and whole unless a double.
fn check_value(key: &str, kind: Kind, value: f64) -> Result<(), (i16, String)> {
    if value <= 0.0 || value.is_nan() {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let too_large = match kind {
        Kind::Double => return Ok(()),
        Kind::Int => (value > f64::from(i32::MAX)).then_some("an INT"),
        Kind::Long => (value > i64::MAX as f64).then_some("a LONG"),
    };
    if let Some(kind) = too_large {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for {kind}."
        )));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(invalid(format!("{key} cannot be a fractional value.")));
    }
    Ok(())
}

/// The records one entry makes, or why it is refused.
fn alter_entity(
    image: &MetadataImage,
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<MetadataRecord>, (i16, String)> {
    let entity = entity_of(entry)?;
    let mut seen: Vec<&str> = Vec::new();
    for op in &entry.ops {
        if seen.contains(&op.key.as_str()) {
            return Err(invalid(format!(
                "Duplicate quota key {} not updating quota for this entity",
                op.key.as_str()
            )));
        }
        seen.push(op.key.as_str());
    }
    let keys = keys_for(&entity)?;
    let mut records = Vec::new();
    for op in &entry.ops {
        let key = op.key.to_string();
        let current = image.client_quotas.get(&(entity.clone(), key.clone()));
        let record = |value: f64, remove: bool| {
            MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: entity.iter().map(|(t, n)| (t.clone(), n.clone())).collect(),
                key: key.clone(),
                value,
                remove,
            })
        };
        if op.remove {
            if current.is_some() {
                records.push(record(0.0, true));
            }
            continue;
        }
        let Some((_, kind)) = keys.iter().find(|(k, _)| *k == key) else {
            return Err(invalid(format!("Invalid configuration key {key}")));
        };
        check_value(&key, *kind, op.value)?;
        if current != Some(&op.value) {
            records.push(record(op.value, false));
        }
    }
    Ok(records)
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let outcomes: Vec<Outcome> = if !ctx.authorize_cluster(AclOperation::AlterConfigs) {
        let refused = || {
            Err((
                errors::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.".into(),
            ))
        };
        req.entries.iter().map(|_| refused()).collect()
    } else {
        let committed = ctx.broker.catalog.change_image(|image| {
            let mut records = Vec::new();
            let outcomes: Vec<Outcome> = (req.entries.iter())
                .map(|entry| alter_entity(image, entry).map(|r| records.extend(r)))
                .collect();
            if req.validate_only {
                records.clear();
            }
            (records, outcomes)
        });
        match committed {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "cannot commit client quotas");
                let code = errors::metadata_write_error_code(&e, errors::UNKNOWN_SERVER_ERROR);
                let failed = || Err((code, e.to_string()));
                req.entries.iter().map(|_| failed()).collect()
            }
        }
    };
    let entries = (req.entries.iter().zip(outcomes))
        .map(|(entry, outcome)| {
            let (code, message) = match outcome {
                Ok(()) => (errors::NONE, None),
                Err((code, m)) => (code, Some(StrBytes::from_string(m))),
            };
            let entity = (entry.entity.iter())
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(entity)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
