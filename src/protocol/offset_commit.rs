//! OffsetCommit (key 8): stores committed offsets after the group's member and generation checks;
//! group-level errors apply to every partition.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::errors;
use super::RequestContext;
use crate::group::coordinator::MemberRef;
use crate::security::authorizer::AclOperation;

/// The commits of an OffsetCommit or a TxnOffsetCommit request's topics (the two messages' topics
/// and partitions have the same fields), in request order, of the topics `$allowed` (one flag
/// per topic, see `readable_topics`) lets through.
macro_rules! offset_commits {
    ($topics:expr, $allowed:expr) => {
        $topics
            .iter()
            .zip($allowed.iter())
            .filter(|(_, allowed)| **allowed)
            .flat_map(|(t, _)| {
                t.partitions
                    .iter()
                    .map(move |p| crate::group::coordinator::OffsetCommit {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
            })
            .collect::<Vec<_>>()
    };
}
pub(super) use offset_commits;

/// Per topic, whether its offsets may be committed: with READ on it, or when the request fails
/// as a whole anyway (`request_error`, whose code then goes to every partition). The others are
/// TOPIC_AUTHORIZATION_FAILED and not committed (KafkaApis.handleOffsetCommitRequest).
pub(super) fn readable_topics<'a>(
    ctx: &RequestContext<'_>,
    names: impl Iterator<Item = &'a str>,
    request_error: bool,
) -> Vec<bool> {
    names
        .map(|n| request_error || ctx.authorize_topic(AclOperation::Read, n))
        .collect()
}

/// The code of a partition of topic `allowed` or not (see `readable_topics`).
pub(super) fn commit_code(allowed: bool, next_code: &mut impl FnMut() -> i16) -> i16 {
    if allowed {
        next_code()
    } else {
        errors::TOPIC_AUTHORIZATION_FAILED
    }
}

pub fn handle(ctx: &RequestContext<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    // READ on the group first: without it every partition fails.
    let group_refused = !ctx.authorize_group(AclOperation::Read, req.group_id.as_str());
    let allowed = readable_topics(
        ctx,
        req.topics.iter().map(|t| t.name.as_str()),
        group_refused,
    );
    let commits = offset_commits!(req.topics, allowed);
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let who = MemberRef {
        group_id: req.group_id.as_str(),
        member_id: req.member_id.as_str(),
        instance_id: instance.as_deref(),
        generation_id: req.generation_id_or_member_epoch,
    };
    let result = if group_refused {
        Err(errors::GROUP_AUTHORIZATION_FAILED)
    } else {
        super::cluster::check_group_coordinator(ctx, who.group_id).and_then(|()| {
            ctx.broker.groups.commit_offsets(
                &ctx.broker.catalog,
                who,
                commits,
                ctx.broker.clock.now_ms(),
            )
        })
    };
    let mut next_code = codes_in_request_order(result);
    let topics = req
        .topics
        .into_iter()
        .zip(allowed)
        .map(|(t, allowed)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(commit_code(allowed, &mut next_code))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// The error of each partition in request order: its own code, or the request's error for all.
pub(super) fn codes_in_request_order(result: Result<Vec<i16>, i16>) -> impl FnMut() -> i16 {
    let (mut codes, request_error) = match result {
        Ok(codes) => (codes.into_iter(), None),
        Err(code) => (Vec::new().into_iter(), Some(code)),
    };
    move || request_error.unwrap_or_else(|| codes.next().unwrap_or_default())
}
