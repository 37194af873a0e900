//! TxnOffsetCommit (key 28): a transactional producer's sendOffsetsToTransaction. The offsets
//! are written to the group's `__consumer_offsets` partition as the producer's transactional
//! batch and stay pending (invisible to OffsetFetch) until the transaction coordinator's marker
//! commits or aborts them (see `group::shard`). v3+ carries the group's member, generation and
//! instance id (KIP-447), checked as OffsetCommit's; v0-2 carry none. v5 (KIP-890, TV2: the
//! offsets partition joins the transaction implicitly) is not served.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::offset_commit::{codes_in_request_order, offset_commits};
use super::RequestContext;
use crate::coordinator::runtime::ProducerIdAndEpoch;
use crate::group::coordinator::MemberRef;

pub fn handle(ctx: &RequestContext<'_>, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let commits = offset_commits!(req.topics);
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let who = MemberRef {
        group_id: req.group_id.as_str(),
        member_id: req.member_id.as_str(),
        instance_id: instance.as_deref(),
        generation_id: req.generation_id,
    };
    let producer = ProducerIdAndEpoch {
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
    };
    let result = ctx.broker.groups.commit_transactional_offsets(
        &ctx.broker.catalog,
        who,
        producer,
        commits,
        ctx.broker.clock.now_ms(),
    );
    let mut next_code = codes_in_request_order(result);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(next_code())
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
