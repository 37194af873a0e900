//! ShareAcknowledge (key 79, KIP-932): a share consumer acknowledges the records it acquired
//! without fetching more (its explicit `commitSync`/`commitAsync`, and its closing). The
//! acknowledgements a ShareFetch carries go through `acknowledge_partition` as well.
//!
//! The acknowledgement types of v1: ACCEPT (1) marks the records processed, for good; RELEASE (2)
//! makes them available again, to any member, counting a delivery (past
//! `group.share.delivery.count.limit` deliveries they are archived instead); REJECT (3) archives
//! them as unprocessable; GAP (0) marks offsets without a record. RENEW (4, v2, KIP-1222) is not
//! served: gregor advertises v1.

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{errors, resolve_authorized_topic, RequestContext};
use crate::security::authorizer::AclOperation;
use crate::share::manager::AcknowledgeError;
use crate::share::partition::{acknowledge_type, AcknowledgementBatch};
use crate::share::session::FINAL_EPOCH;

/// A share response that is only a top-level error.
pub(super) trait ShareErrorResponse: Default {
    fn error(code: i16, message: &'static str) -> Self;
}

macro_rules! share_error_responses {
    ($($response:ty),*) => {$(
        impl ShareErrorResponse for $response {
            fn error(code: i16, message: &'static str) -> Self {
                let message = Some(StrBytes::from_static_str(message));
                Self::default().with_error_code(code).with_error_message(message)
            }
        }
    )*};
}

share_error_responses!(
    ShareAcknowledgeResponse,
    kafka_protocol::messages::ShareFetchResponse
);

/// Group id and member id of a share request, checked as KafkaApis checks them: share groups on
/// (UNSUPPORTED_VERSION), READ on the group (GROUP_AUTHORIZATION_FAILED), then a member id
/// (INVALID_REQUEST).
pub(super) fn check_share_request<R: ShareErrorResponse>(
    ctx: &RequestContext<'_>,
    group_id: &Option<GroupId>,
    member_id: &Option<StrBytes>,
) -> Result<(String, String), R> {
    if !super::share_groups_enabled(ctx) {
        let msg = "The share group protocol is not enabled (share.version).";
        return Err(R::error(errors::UNSUPPORTED_VERSION, msg));
    }
    let group_id = group_id.as_ref().map_or("", |g| g.as_str());
    if !ctx.authorize_group(AclOperation::Read, group_id) {
        let msg = "Group authorization failed.";
        return Err(R::error(errors::GROUP_AUTHORIZATION_FAILED, msg));
    }
    match member_id.as_ref().map(|m| m.as_str()) {
        Some(m) if !m.trim().is_empty() && !group_id.is_empty() => {
            Ok((group_id.to_string(), m.to_string()))
        }
        _ => Err(R::error(
            errors::INVALID_REQUEST,
            "Invalid group or member id.",
        )),
    }
}

/// Applies one partition's acknowledgements for a member: the partition's error code and
/// message (NONE when applied). The batches are checked first as Kafka's
/// `validateAcknowledgementBatches` does: ascending and not overlapping, the types fitting the
/// range, each type known.
pub(super) fn acknowledge_partition(
    ctx: &RequestContext<'_>,
    (group_id, member_id): (&str, &str),
    (topic_id, partition): (Uuid, i32),
    batches: Vec<AcknowledgementBatch>,
) -> (i16, Option<String>) {
    let topic = match resolve_authorized_topic(ctx, "", topic_id, true, AclOperation::Read) {
        Ok(t) => t,
        Err(code) => return (code, None),
    };
    if topic.partition(partition).is_none() {
        return (errors::UNKNOWN_TOPIC_OR_PARTITION, None);
    }
    if let Err(msg) = validate_batches(&batches) {
        return (errors::INVALID_REQUEST, Some(msg.into()));
    }
    let key = (group_id.to_string(), topic_id, partition);
    let b = ctx.broker;
    match (b.shares).acknowledge(&b.catalog, &key, member_id, &batches, b.clock.now_ms()) {
        Ok(()) => (errors::NONE, None),
        Err(AcknowledgeError::Refused(e)) => (errors::share_error_code(&e), Some(e.to_string())),
        Err(AcknowledgeError::NotPersisted(code)) => (code, None),
    }
}

/// One acknowledgement batch of a ShareFetch or ShareAcknowledge request.
pub(super) fn batch(
    first_offset: i64,
    last_offset: i64,
    acknowledge_types: Vec<i8>,
) -> AcknowledgementBatch {
    AcknowledgementBatch {
        first_offset,
        last_offset,
        acknowledge_types,
    }
}

fn validate_batches(batches: &[AcknowledgementBatch]) -> Result<(), &'static str> {
    let mut previous_last = None;
    for b in batches {
        if b.first_offset > b.last_offset {
            return Err("First offset of the batch is greater than its last offset.");
        }
        if previous_last.is_some_and(|last| b.first_offset <= last) {
            return Err("First offset of a batch must be greater than the last offset of the previous batch.");
        }
        previous_last = Some(b.last_offset);
        let span = b
            .last_offset
            .checked_sub(b.first_offset)
            .map(|d| d.saturating_add(1));
        let n = b.acknowledge_types.len() as i64;
        if n == 0 || (n != 1 && Some(n) != span) {
            return Err("Invalid acknowledge type list for the batch.");
        }
        if b.acknowledge_types
            .iter()
            .any(|&t| !(acknowledge_type::GAP..=acknowledge_type::REJECT).contains(&t))
        {
            return Err("Invalid acknowledge type.");
        }
    }
    Ok(())
}

/// The current leader of a partition as the share responses report it.
pub(super) fn leader_of(ctx: &RequestContext<'_>, topic_id: Uuid, partition: i32) -> (i32, i32) {
    let image = ctx.broker.catalog.image();
    super::cluster::partition(&image, topic_id, partition)
        .map_or((-1, -1), |r| (r.leader, r.leader_epoch))
}

pub fn handle(ctx: &RequestContext<'_>, req: ShareAcknowledgeRequest) -> ShareAcknowledgeResponse {
    let (group_id, member_id) = match check_share_request(ctx, &req.group_id, &req.member_id) {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let ids = (group_id.as_str(), member_id.as_str());
    let epoch = req.share_session_epoch;
    let shares = &ctx.broker.shares;
    let (catalog, now) = (&ctx.broker.catalog, ctx.broker.clock.now_ms());
    let update = shares.with_sessions(catalog, ids, now, |s| {
        (
            s.acknowledge_session_update(&group_id, &member_id, epoch),
            None,
        )
    });
    if let Err(code) = update {
        return ShareAcknowledgeResponse::default().with_error_code(code);
    }
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let batches = (p.acknowledgement_batches.into_iter())
                        .map(|b| batch(b.first_offset, b.last_offset, b.acknowledge_types))
                        .collect();
                    let tp = (t.topic_id, p.partition_index);
                    let (code, message) = acknowledge_partition(ctx, ids, tp, batches);
                    let (leader_id, leader_epoch) = leader_of(ctx, t.topic_id, p.partition_index);
                    PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string))
                        .with_current_leader(
                            LeaderIdAndEpoch::default()
                                .with_leader_id(leader_id)
                                .with_leader_epoch(leader_epoch),
                        )
                })
                .collect();
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    if epoch == FINAL_EPOCH {
        shares.close_session(catalog, &group_id, &member_id, now);
    }
    ShareAcknowledgeResponse::default().with_responses(responses)
}
