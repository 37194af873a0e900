//! CreatePartitions (key 37): grows topics, per topic, with validate_only and explicit replica
//! assignments (each new partition's replicas must be exactly this node), with Kafka's errors
//! (ReplicationControlManager.createPartitions): INVALID_PARTITIONS for a count that does not
//! grow, INVALID_REPLICA_ASSIGNMENT, UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST for duplicates.

use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::metadata::TopicAdminError;
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let dups: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut results: Vec<CreatePartitionsTopicResult> = Vec::new();
    for t in &req.topics {
        let name = t.name.to_string();
        if dups.contains(&name) {
            continue;
        }
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        // ALTER on the topic (ControllerApis.createPartitions).
        if !ctx.authorize_topic(AclOperation::Alter, &name) {
            results.push(
                r.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(None),
            );
            continue;
        }
        results.push(match grow(ctx, t, req.validate_only) {
            Ok(()) => r.with_error_message(None),
            Err((code, message)) => r
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    for name in dups {
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                    name,
                )))
                .with_error_code(errors::INVALID_REQUEST)
                .with_error_message(Some(StrBytes::from_static_str("Duplicate topic name."))),
        );
    }
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(ctx.throttle_time_ms())
}

/// CreatePartitions refuses mutations over the quota from this version (older ones are
/// throttled).
const MUTATION_QUOTA_STRICT_SINCE: i16 = 3;

fn grow(
    ctx: &RequestContext<'_>,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let catalog = &ctx.broker.catalog;
    if catalog
        .get(t.name.as_str())
        .is_some_and(|t| t.is_internal())
        && !validate_only
    {
        // Growing __consumer_offsets would move every group to another partition.
        let e = TopicAdminError::InternalTopic(t.name.to_string());
        return Err((errors::INVALID_REQUEST, e.to_string()));
    }
    let add = |validate_only: bool| {
        catalog
            .add_partitions(
                t.name.as_str(),
                t.count,
                // Checked by the catalog as Kafka's controller checks them (registered brokers,
                // no broker twice, the topic's replication factor).
                t.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                }),
                validate_only,
                ctx.broker.clock.now_ms(),
            )
            .map(|_| ())
            .map_err(|e| (errors::topic_admin_error_code(&e), e.to_string()))
    };
    // Validated first, then the partitions added are drawn on the controller mutation quota
    // (KIP-599), then added: as ReplicationControlManager.createPartitions.
    add(true)?;
    let current = catalog
        .get(t.name.as_str())
        .map_or(0, |t| t.partitions.len());
    let added = usize::try_from(t.count)
        .unwrap_or(0)
        .saturating_sub(current);
    ctx.controller_mutation(added, MUTATION_QUOTA_STRICT_SINCE)?;
    match validate_only {
        true => Ok(()),
        false => add(false),
    }
}
