//! DeleteTopics (key 20): by name (v1-5 `topic_names`, v6 `topics[].name`) or by topic id (v6,
//! KIP-516), with Kafka's per-topic errors for duplicates, unknown names and ids (as
//! ControllerApis.deleteTopics). Each deletion is a committed RemoveTopicRecord; the log manager
//! and the group coordinator (its committed offsets) react to it as publishers of the metadata.

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;

/// Errors.TOPIC_AUTHORIZATION_FAILED's message, which ApiError carries by default.
const TAF: &str = "Topic authorization failed.";

pub fn handle(ctx: &RequestContext<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let catalog = &ctx.broker.catalog;
    let mut results = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut ids: Vec<Uuid> = Vec::new();
    for n in &req.topic_names {
        names.push(n.to_string());
    }
    for t in &req.topics {
        match (&t.name, t.topic_id.is_nil()) {
            (None, true) => results.push(result(
                None,
                Uuid::nil(),
                errors::INVALID_REQUEST,
                Some("Neither topic name nor id were specified."),
            )),
            (None, false) => ids.push(t.topic_id),
            (Some(n), true) => names.push(n.to_string()),
            (Some(n), false) => results.push(result(
                Some(n.to_string()),
                t.topic_id,
                errors::INVALID_REQUEST,
                Some("You may not specify both topic name and topic id."),
            )),
        }
    }
    let dup_names = duplicates(&names);
    let dup_ids = duplicates(&ids);
    for n in &dup_names {
        results.push(result(
            Some(n.clone()),
            Uuid::nil(),
            errors::INVALID_REQUEST,
            Some("Duplicate topic name."),
        ));
    }
    for id in &dup_ids {
        results.push(result(
            None,
            *id,
            errors::INVALID_REQUEST,
            Some("Duplicate topic id."),
        ));
    }
    // Resolve everything to (id, name) first, so a name and an id of the same topic are caught.
    let mut targets: HashMap<Uuid, String> = HashMap::new();
    for id in ids.iter().filter(|i| !dup_ids.contains(i)) {
        match catalog.name_of(*id) {
            // DESCRIBE, then DELETE (ControllerApis.deleteTopics): a topic named by an id the
            // session may not describe is not named back.
            Ok(name) if !ctx.authorize_topic(AclOperation::Describe, &name) => results.push(
                result(None, *id, errors::TOPIC_AUTHORIZATION_FAILED, Some(TAF)),
            ),
            Ok(name) if !ctx.authorize_topic(AclOperation::Delete, &name) => results.push(result(
                Some(name),
                *id,
                errors::TOPIC_AUTHORIZATION_FAILED,
                Some(TAF),
            )),
            Ok(name) => {
                targets.insert(*id, name);
            }
            Err(e) => results.push(result(
                None,
                *id,
                errors::topic_admin_error_code(&e),
                Some(&e.to_string()),
            )),
        }
    }
    let mut names_seen = HashSet::new();
    for n in names.iter().filter(|n| !dup_names.contains(*n)) {
        if !names_seen.insert(n.clone()) {
            continue;
        }
        // ControllerApis.deleteTopics: whether the topic exists is not told without DESCRIBE on
        // it; an existing one needs DELETE.
        let refused = || {
            result(
                Some(n.clone()),
                Uuid::nil(),
                errors::TOPIC_AUTHORIZATION_FAILED,
                Some(TAF),
            )
        };
        if !ctx.authorize_topic(AclOperation::Describe, n) {
            results.push(refused());
            continue;
        }
        match catalog.get(n) {
            None => results.push(result(
                Some(n.clone()),
                Uuid::nil(),
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                Some("This server does not host this topic-partition."),
            )),
            Some(_) if !ctx.authorize_topic(AclOperation::Delete, n) => results.push(refused()),
            Some(t) if targets.contains_key(&t.topic_id) => {
                targets.remove(&t.topic_id);
                results.push(result(
                    Some(n.clone()),
                    t.topic_id,
                    errors::INVALID_REQUEST,
                    Some("The provided topic name maps to an ID that was already supplied."),
                ));
            }
            Some(t) => {
                targets.insert(t.topic_id, n.clone());
            }
        }
    }
    for (id, name) in targets {
        // Its partitions are drawn on the controller mutation quota (KIP-599, strict from v5)
        // before it is deleted, as ReplicationControlManager.deleteTopic does.
        let partitions = catalog.get(&name).map_or(0, |t| t.partitions.len());
        if let Err((code, message)) =
            ctx.controller_mutation(partitions, MUTATION_QUOTA_STRICT_SINCE)
        {
            results.push(result(Some(name), id, code, Some(&message)));
            continue;
        }
        match catalog.delete(&name) {
            Ok(_) => results.push(result(Some(name), id, errors::NONE, None)),
            Err(e) => results.push(result(
                Some(name),
                id,
                errors::topic_admin_error_code(&e),
                Some(&e.to_string()),
            )),
        }
    }
    finish(results, ctx.api_version).with_throttle_time_ms(ctx.throttle_time_ms())
}

/// DeleteTopics refuses mutations over the quota from this version (older ones are throttled).
const MUTATION_QUOTA_STRICT_SINCE: i16 = 5;

fn duplicates<T: std::hash::Hash + Eq + Clone>(items: &[T]) -> HashSet<T> {
    let mut seen = HashSet::new();
    items
        .iter()
        .filter(|i| !seen.insert((*i).clone()))
        .cloned()
        .collect()
}

fn result(
    name: Option<String>,
    id: Uuid,
    code: i16,
    message: Option<&str>,
) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_error_code(code)
        .with_error_message(message.map(|m| StrBytes::from_string(m.to_string())))
}

/// Drops the fields a version lacks: topic ids and a null name exist from v6, error messages
/// from v5.
fn finish(results: Vec<DeletableTopicResult>, v: i16) -> DeleteTopicsResponse {
    let responses = results
        .into_iter()
        .map(|mut r| {
            if v < 6 {
                r.topic_id = Uuid::nil();
                if r.name.is_none() {
                    r.name = Some(TopicName::default());
                }
            }
            if v < 5 {
                r.error_message = None;
            }
            r
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
