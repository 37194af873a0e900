//! AlterPartitionReassignments (key 45, KIP-455): moves partitions to new replica lists, or with
//! null replicas cancels the reassignment in progress, as Kafka's controller does
//! (`metadata::reassignment`). Each partition answers on its own: NONE once its change is
//! committed, UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (no replicas, a broker not
//! registered or named twice, a cancel that needs an unclean election),
//! NO_REASSIGNMENT_IN_PROGRESS for a cancel of none, INVALID_REPLICATION_FACTOR from v1 when the
//! request does not allow the factor to change (KIP-860); the changes of every partition are
//! committed together. Among the brokers of one process new replicas on live brokers are in sync
//! at once (one copy of the data), so their reassignments complete in the same commit; across
//! processes a new replica fetches from the leader and the reassignment completes when the
//! leader's AlterPartition adds the last one to the ISR (`metadata::alter_partition`).
//! `kafka-reassign-partitions.sh --execute/--cancel` sends it.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::metadata::election::Pending;
use crate::metadata::reassignment::{alter, settle, ReassignError};
use crate::metadata::records::MetadataRecord;
use crate::security::authorizer::AclOperation;
use crate::share::coordinator::SHARE_GROUP_STATE_TOPIC;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // ALTER on the cluster (ControllerApis): else every partition, and the request, fail.
    if !ctx.authorize_cluster(AclOperation::Alter) {
        let code = errors::CLUSTER_AUTHORIZATION_FAILED;
        let message = Some(StrBytes::from_static_str("Cluster authorization failed."));
        let responses = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        ReassignablePartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                            .with_error_message(message.clone())
                    })
                    .collect();
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(code)
            .with_error_message(message)
            .with_responses(responses);
    }
    let allow = req.allow_replication_factor_change;
    let policy = ctx.broker.config.elections;
    let mut responses = Vec::with_capacity(req.topics.len());
    let committed = ctx.broker.catalog.change_partitions(|image| {
        // Every partition's change is computed from the image the request found (the
        // controller's records are committed together, atomically).
        let mut changes = Vec::new();
        for topic in &req.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let target: Option<Vec<i32>> =
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                let elsewhere = (topic.name.as_str() == SHARE_GROUP_STATE_TOPIC)
                    .then(|| {
                        let mut target = target.iter().flatten();
                        target.find(|&&b| !ctx.broker.catalog.holds_data_of(b))
                    })
                    .flatten();
                let altered = match elsewhere {
                    // Its share-partitions call their share coordinator in this process (no
                    // Read/WriteShareGroupState between processes yet): it stays here, as
                    // placement keeps it (`Catalog::placement_brokers`).
                    Some(b) => Err(ReassignError::InvalidAssignment(format!(
                        "The manual partition assignment includes broker {b}, which runs in another process: {SHARE_GROUP_STATE_TOPIC} stays on the broker that created it."
                    ))),
                    None => alter(
                        image,
                        topic.name.as_str(),
                        p.partition_index,
                        target.as_deref(),
                        allow,
                        &policy,
                    ),
                };
                let (code, message) = match altered {
                    Ok(change) => {
                        changes.extend(change.map(MetadataRecord::PartitionChange));
                        (errors::NONE, None)
                    }
                    Err(e) => (error_code(&e), Some(StrBytes::from_string(e.to_string()))),
                };
                partitions.push(
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message),
                );
            }
            responses.push(
                ReassignableTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        let mut out = Pending::new(image);
        out.push(changes)?;
        let settled = settle(&out.image, &policy)?;
        out.push(settled)?;
        Ok(out.records)
    });
    // Kafka answers a null top-level message (the crate's default is an empty one).
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow)
        .with_error_message(None);
    if let Err(e) = committed {
        tracing::error!(error = %e, "could not commit partition reassignments");
        let code = errors::metadata_write_error_code(&e, errors::KAFKA_STORAGE_ERROR);
        return response.with_error_code(code);
    }
    response.with_responses(responses)
}

fn error_code(e: &ReassignError) -> i16 {
    match e {
        ReassignError::UnknownTopic(_) | ReassignError::UnknownPartition(..) => {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        }
        ReassignError::NoReassignmentInProgress => errors::NO_REASSIGNMENT_IN_PROGRESS,
        ReassignError::InvalidAssignment(_) => errors::INVALID_REPLICA_ASSIGNMENT,
        ReassignError::ReplicationFactorChanged(..) => errors::INVALID_REPLICATION_FACTOR,
    }
}
