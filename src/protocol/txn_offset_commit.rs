//! TxnOffsetCommit (key 28): a transactional producer's sendOffsetsToTransaction. The offsets
//! are written to the group's `__consumer_offsets` partition as the producer's transactional
//! batch and stay pending (invisible to OffsetFetch) until the transaction coordinator's marker
//! commits or aborts them (see `group::shard`). v3+ carries the group's member, generation and
//! instance id (KIP-447), checked as OffsetCommit's; v0-2 carry none. v5 is KIP-890 part 2
//! (TV2): the producer sends no AddOffsetsToTxn, the group's offsets partition joins its
//! transaction here, through the transaction coordinator's add with its epoch checks
//! (AddPartitionsToTxnManager.txnOffsetCommitRequestVersionToTransactionSupportedOperation:
//! ADD_PARTITION above v4), before the offsets are written.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::offset_commit::{codes_in_request_order, offset_commits};
use super::{errors, RequestContext};
use crate::coordinator::runtime::ProducerIdAndEpoch;
use crate::group::coordinator::MemberRef;
use crate::txn::metadata::TV_2;

/// First version of TV2: the offsets partition is added to the transaction implicitly.
const ADD_PARTITION_VERSION: i16 = 5;

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
    let now = ctx.broker.clock.now_ms();
    let added = if let Err(code) = super::cluster::check_group_coordinator(ctx, who.group_id) {
        code
    } else if ctx.api_version >= ADD_PARTITION_VERSION && !req.group_id.is_empty() {
        add_offsets_partition(ctx, &req)
    } else {
        errors::NONE
    };
    let result = match added {
        errors::NONE => ctx.broker.groups.commit_transactional_offsets(
            &ctx.broker.catalog,
            who,
            producer,
            commits,
            now,
        ),
        code => Err(code),
    };
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

/// Adds the group's `__consumer_offsets` partition to the producer's transaction (TV2); the
/// coordinator's PRODUCER_FENCED reaches the producer as INVALID_PRODUCER_EPOCH, as Kafka's
/// AddPartitionsToTxnManager translates it.
fn add_offsets_partition(ctx: &RequestContext<'_>, req: &TxnOffsetCommitRequest) -> i16 {
    let code = super::add_offsets_to_txn::add_offsets_partition(
        ctx,
        req.transactional_id.as_str(),
        (req.producer_id.0, req.producer_epoch),
        req.group_id.as_str(),
        TV_2,
    );
    match code {
        errors::PRODUCER_FENCED => errors::INVALID_PRODUCER_EPOCH,
        other => other,
    }
}
