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

use super::offset_commit::{codes_in_request_order, commit_code, offset_commits, readable_topics};
use super::{errors, RequestContext};
use crate::coordinator::runtime::ProducerIdAndEpoch;
use crate::group::coordinator::{MemberRef, OFFSETS_TOPIC};
use crate::security::authorizer::AclOperation;
use crate::txn::metadata::TV_2;

/// First version of TV2: the offsets partition is added to the transaction implicitly.
const ADD_PARTITION_VERSION: i16 = 5;
/// First version whose clients know TRANSACTION_ABORTABLE (KIP-890 part 1's genericError).
const ABORTABLE_VERSION: i16 = 4;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    // WRITE on the transactional id, then READ on the group, then READ on each topic
    // (KafkaApis.handleTxnOffsetCommitRequest).
    let refused =
        if !ctx.authorize_transactional_id(AclOperation::Write, req.transactional_id.as_str()) {
            Some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else if !ctx.authorize_group(AclOperation::Read, req.group_id.as_str()) {
            Some(errors::GROUP_AUTHORIZATION_FAILED)
        } else {
            None
        };
    let allowed = readable_topics(
        ctx,
        req.topics.iter().map(|t| t.name.as_str()),
        refused.is_some(),
    );
    let commits = offset_commits!(req.topics, allowed);
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
    let added = if let Some(code) = refused {
        code
    } else if let Err(code) = super::cluster::check_group_coordinator(ctx, who.group_id) {
        code
    } else if req.group_id.is_empty() {
        errors::NONE
    } else {
        verify_offsets_partition(ctx, &req).await
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
        .zip(allowed)
        .map(|(t, allowed)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(commit_code(allowed, &mut next_code))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// KIP-890 for offsets (CoordinatorRuntime.scheduleTransactionalWriteOperation verifies before
/// it writes): up to v4 the offsets are written only if the group's `__consumer_offsets`
/// partition is in the producer's ongoing transaction (AddOffsetsToTxn put it there), so a
/// zombie's late commit cannot leave offsets pending that no marker will ever resolve; v5 (TV2)
/// adds the partition itself. The coordinator's answers reach the producer as Kafka's
/// AddPartitionsToTxnManager translates them: PRODUCER_FENCED as INVALID_PRODUCER_EPOCH, and
/// TRANSACTION_ABORTABLE as INVALID_TXN_STATE below v4, whose clients do not know it.
/// In a cluster of processes the transactional id's coordinator may be another process's: it is
/// asked with AddPartitionsToTxn v4+ (verify only, or the add from v5).
async fn verify_offsets_partition(ctx: &RequestContext<'_>, req: &TxnOffsetCommitRequest) -> i16 {
    let id = req.transactional_id.as_str();
    let producer = (req.producer_id.0, req.producer_epoch);
    let code = if let Some(coordinator) = super::cluster::txn_coordinator_elsewhere(ctx, id) {
        let partition = ctx.broker.groups.partition_of(req.group_id.as_str());
        let partitions = [(OFFSETS_TOPIC.to_string(), partition)];
        let verify_only = ctx.api_version < ADD_PARTITION_VERSION;
        let asked = match coordinator {
            -1 => Err(std::io::Error::other("no coordinator")),
            c => {
                let b = ctx.broker;
                crate::txn::remote::verify_partitions(b, c, id, producer, &partitions, verify_only)
                    .await
            }
        };
        match asked {
            Ok(codes) => codes.first().copied().unwrap_or(errors::NONE),
            Err(_) => errors::COORDINATOR_NOT_AVAILABLE,
        }
    } else if ctx.api_version >= ADD_PARTITION_VERSION {
        let group = req.group_id.as_str();
        super::add_offsets_to_txn::add_offsets_partition(ctx, id, producer, group, TV_2)
    } else {
        let partition = ctx.broker.groups.partition_of(req.group_id.as_str());
        let partitions = [(OFFSETS_TOPIC.to_string(), partition)];
        match ctx
            .broker
            .txns
            .verify_partitions(id, producer.0, producer.1, &partitions)
        {
            Ok(codes) => codes.first().copied().unwrap_or(errors::NONE),
            Err(code) => code,
        }
    };
    match code {
        errors::PRODUCER_FENCED => errors::INVALID_PRODUCER_EPOCH,
        errors::TRANSACTION_ABORTABLE if ctx.api_version < ABORTABLE_VERSION => {
            errors::INVALID_TXN_STATE
        }
        other => other,
    }
}
