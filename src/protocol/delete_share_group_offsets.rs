//! DeleteShareGroupOffsets (key 92, KIP-932): forgets the share-partition state of topics of an
//! empty share group, as `kafka-share-groups --delete-offsets` and
//! Admin.deleteShareGroupOffsets do (Kafka's KafkaApis.handleDeleteShareGroupOffsetsRequest,
//! GroupCoordinatorShard.initiateDeleteShareGroupOffsets, then DeleteShareGroupState).
//!
//! DELETE on the group (GROUP_AUTHORIZATION_FAILED for the whole request), READ on each topic
//! (TOPIC_AUTHORIZATION_FAILED for it). The group must be a share group (GROUP_ID_NOT_FOUND)
//! without members (NON_EMPTY_GROUP), as Kafka 4.4's ShareGroup.validateDeleteGroup wants. A topic
//! the group has no share-partition state of is UNKNOWN_TOPIC_OR_PARTITION ("There is no offset
//! information to delete."); an unknown one too, with the usual message. Once deleted, a topic's
//! share-partitions start afresh at the next fetch, where `share.auto.offset.reset` says.

use std::collections::BTreeSet;

use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as ResponseTopic;
use kafka_protocol::messages::{
    DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{errors, RequestContext};
use crate::security::authorizer::AclOperation;

/// GroupMetadataManager.sharePartitionsEligibleForOffsetDeletion's message.
const NO_OFFSETS: &str = "There is no offset information to delete.";

fn failed(code: i16, message: Option<String>) -> DeleteShareGroupOffsetsResponse {
    let message = message.or_else(|| errors::message(code).map(str::to_string));
    DeleteShareGroupOffsetsResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

fn topic(
    name: TopicName,
    topic_id: Uuid,
    code: i16,
    message: Option<&'static str>,
) -> ResponseTopic {
    ResponseTopic::default()
        .with_topic_name(name)
        .with_topic_id(topic_id)
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_static_str))
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    if !super::share_groups_enabled(ctx) {
        return failed(errors::UNSUPPORTED_VERSION, None);
    }
    let group_id = req.group_id.as_str();
    if !ctx.authorize_group(AclOperation::Delete, group_id) {
        return failed(errors::GROUP_AUTHORIZATION_FAILED, None);
    }
    // Refused topics first (KafkaApis), then the deleted ones, then the others' errors
    // (GroupCoordinatorShard.completeDeleteShareGroupOffsets).
    let (mut refused, mut accepted) = (Vec::new(), Vec::new());
    for t in req.topics {
        if ctx.authorize_topic(AclOperation::Read, t.topic_name.as_str()) {
            accepted.push(t.topic_name);
        } else {
            let code = errors::TOPIC_AUTHORIZATION_FAILED;
            refused.push(topic(
                t.topic_name,
                Uuid::nil(),
                code,
                errors::message(code),
            ));
        }
    }
    let (catalog, now) = (&ctx.broker.catalog, ctx.broker.clock.now_ms());
    if let Err(code) = super::cluster::check_group_coordinator(ctx, group_id) {
        return failed(code, None);
    }
    if let Err((code, message)) =
        (ctx.broker.groups).empty_share_group(catalog, group_id, false, now)
    {
        return failed(code, Some(message));
    }
    let shares = &ctx.broker.shares;
    let (mut deleted, mut errors_after) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    for name in accepted {
        if !seen.insert(name.as_str().to_string()) {
            continue;
        }
        let Some(t) = catalog.get(name.as_str()) else {
            let code = errors::UNKNOWN_TOPIC_OR_PARTITION;
            errors_after.push(topic(name, Uuid::nil(), code, errors::message(code)));
            continue;
        };
        match shares.delete_topic_state(catalog, (group_id, t.topic_id), now) {
            Ok(true) => deleted.push(topic(name, t.topic_id, errors::NONE, None)),
            Ok(false) => {
                let code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                errors_after.push(topic(name, Uuid::nil(), code, Some(NO_OFFSETS)));
            }
            Err(code) => deleted.push(topic(name, t.topic_id, code, errors::message(code))),
        }
    }
    refused.append(&mut deleted);
    refused.append(&mut errors_after);
    DeleteShareGroupOffsetsResponse::default().with_responses(refused)
}
