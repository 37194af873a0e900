//! DeleteRecords (key 21): moves each partition's log start offset (its low watermark) up to the
//! given offset, -1 meaning the high watermark. Whole segments below it are deleted; Fetch and
//! ListOffsets no longer serve the records; the new start survives a restart. Errors per
//! partition: OFFSET_OUT_OF_RANGE past the high watermark, POLICY_VIOLATION on a topic whose
//! cleanup.policy lacks `delete`, UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::cluster;
use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let image = ctx.broker.catalog.image();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.catalog.get(t.name.as_str());
            // DELETE on the topic, before anything else (KafkaApis.handleDeleteRecordsRequest).
            let denied = !ctx.authorize_topic(AclOperation::Delete, t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if denied {
                        return r.with_error_code(errors::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let part = match cluster::led_partition(ctx, &image, topic.as_ref(), p.partition_index, cluster::NO_LEADER_EPOCH) {
                        Ok(part) => part,
                        Err(code) => return r.with_error_code(code),
                    };
                    match part.with_log(|l| l.delete_records(p.offset)) {
                        Ok(low) => r.with_low_watermark(low),
                        Err(e) => {
                            tracing::debug!(topic = %t.name.as_str(), partition = p.partition_index, error = %e, "delete records refused");
                            r.with_error_code(errors::log_error_code(&e))
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
