//! ElectLeaders (key 43, KIP-460): a preferred (election type 0, v0's only kind) or unclean (1)
//! leader election for the partitions named, or for every partition when the list is null, as
//! Kafka's controller runs it (ReplicationControlManager.electLeaders): each partition answers
//! NONE once its new leader is committed, ELECTION_NOT_NEEDED when the leader is already the
//! preferred one (preferred) or any leader exists (unclean), PREFERRED_LEADER_NOT_AVAILABLE /
//! ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica may lead, UNKNOWN_TOPIC_OR_PARTITION when it
//! does not exist. Asked for every partition, those not needing an election are left out.
//! `kafka-leader-election.sh` sends it.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::metadata::election::{elect_leader, ElectError, Election, Pending};
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    // ALTER on the cluster: else the request's error and each partition named gets it
    // (ElectLeadersRequest.getErrorResponse).
    if !ctx.authorize_cluster(AclOperation::Alter) {
        let code = errors::CLUSTER_AUTHORIZATION_FAILED;
        let results = req
            .topic_partitions
            .iter()
            .flatten()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionResult::default()
                            .with_partition_id(*p)
                            .with_error_code(code)
                            .with_error_message(None)
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic.clone())
                    .with_partition_result(partitions)
            })
            .collect();
        return ElectLeadersResponse::default()
            .with_error_code(code)
            .with_replica_election_results(results);
    }
    let election = match req.election_type {
        0 => Election::Preferred,
        1 => Election::Unclean,
        _ => return ElectLeadersResponse::default().with_error_code(errors::INVALID_REQUEST),
    };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    let committed = ctx.broker.catalog.change_partitions(|image| {
        let asked: Vec<(String, Vec<i32>, bool)> = match &req.topic_partitions {
            None => image
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.partitions.keys().copied().collect(), true))
                .collect(),
            Some(tps) => tps
                .iter()
                .map(|t| (t.topic.to_string(), t.partitions.clone(), false))
                .collect(),
        };
        let mut out = Pending::new(image);
        for (topic, partitions, all) in asked {
            let mut partition_result = Vec::new();
            for p in partitions {
                let elected = elect_leader(&out.image, &topic, p, election);
                let code = match &elected {
                    Ok(_) => errors::NONE,
                    Err(ElectError::NotNeeded) if all => continue,
                    Err(e) => elect_error_code(e),
                };
                let message = elected
                    .as_ref()
                    .err()
                    .map(|e| StrBytes::from_string(e.to_string()));
                if let Ok(change) = elected {
                    out.push(vec![
                        crate::metadata::records::MetadataRecord::PartitionChange(change),
                    ])?;
                }
                partition_result.push(
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message(message),
                );
            }
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(partition_result),
            );
        }
        Ok(out.records)
    });
    if let Err(e) = committed {
        tracing::error!(error = %e, "could not commit leader elections");
        let code = errors::metadata_write_error_code(&e, errors::KAFKA_STORAGE_ERROR);
        return ElectLeadersResponse::default().with_error_code(code);
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

fn elect_error_code(e: &ElectError) -> i16 {
    match e {
        ElectError::UnknownTopic(_) | ElectError::UnknownPartition(..) => {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        }
        ElectError::NotNeeded => errors::ELECTION_NOT_NEEDED,
        ElectError::PreferredNotAvailable => errors::PREFERRED_LEADER_NOT_AVAILABLE,
        ElectError::EligibleNotAvailable => errors::ELIGIBLE_LEADERS_NOT_AVAILABLE,
    }
}
