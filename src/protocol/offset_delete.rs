//! OffsetDelete (key 47): removes a group's committed offsets for topics it does not consume
//! (GROUP_SUBSCRIBED_TO_TOPIC otherwise), for classic, KIP-848 and streams groups alike.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{errors, RequestContext};
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    // DELETE on the group, then READ on each topic: the others' partitions are
    // TOPIC_AUTHORIZATION_FAILED and keep their offsets (KafkaApis.handleOffsetDeleteRequest).
    if !ctx.authorize_group(AclOperation::Delete, req.group_id.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let allowed: Vec<bool> = req
        .topics
        .iter()
        .map(|t| ctx.authorize_topic(AclOperation::Read, t.name.as_str()))
        .collect();
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&allowed)
        .filter(|(_, allowed)| **allowed)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let (group_id, now) = (req.group_id.as_str(), ctx.broker.clock.now_ms());
    let groups = &ctx.broker.groups;
    let result = super::cluster::check_group_coordinator(ctx, group_id)
        .and_then(|()| groups.delete_offsets(&ctx.broker.catalog, group_id, &partitions, now));
    let codes = match result {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .zip(allowed)
        .map(|(t, allowed)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if allowed {
                        codes.next().unwrap_or_default()
                    } else {
                        errors::TOPIC_AUTHORIZATION_FAILED
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
