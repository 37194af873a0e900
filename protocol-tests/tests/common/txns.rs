//! Transaction helpers: AddPartitionsToTxn in the client form, EndTxn, and transactional
//! batches.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult;
pub use kafka_protocol::messages::describe_transactions_response::TransactionState as Described;
use kafka_protocol::messages::*;
use protocol_tests::client::*;

use super::{name, s};

pub fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

pub fn txn_topics(parts: &[(&str, i32)]) -> Vec<AddPartitionsToTxnTopic> {
    let mut out: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        match out.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(*p),
            None => out.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(name(t))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    out
}

/// AddPartitionsToTxn in the client form (v0-3): each partition's error code.
pub async fn add_partitions(
    c: &mut Client,
    v: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    parts: &[(&str, i32)],
) -> Result<Vec<i16>> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(txn_topics(parts));
    let r = c
        .request(v, req)
        .await
        .with_context(|| format!("AddPartitionsToTxn v{v}"))?;
    Ok(codes_of(&r.results_by_topic_v3_and_below))
}

pub fn codes_of(results: &[AddPartitionsToTxnTopicResult]) -> Vec<i16> {
    results
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

pub async fn end_txn(
    c: &mut Client,
    v: i16,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> Result<i16> {
    Ok(end_txn_response(c, v, id, producer, commit)
        .await?
        .error_code)
}

pub async fn end_txn_response(
    c: &mut Client,
    v: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> Result<EndTxnResponse> {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    c.request(v, req)
        .await
        .with_context(|| format!("EndTxn v{v}"))
}

/// The transactional attribute bit of a v2 batch.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;

/// A transactional producer's batch: an idempotent batch with the transactional attribute.
pub fn txn_batch(values: &[&str], (pid, epoch): (i64, i16), base_seq: i32) -> Bytes {
    let mut b = idempotent_batch(values, pid, epoch, base_seq).to_vec();
    let at = header::ATTRIBUTES;
    let attributes = i16::from_be_bytes([b[at], b[at + 1]]) | ATTR_TRANSACTIONAL;
    b[at..at + 2].copy_from_slice(&attributes.to_be_bytes());
    fix_crc(&mut b);
    Bytes::from(b)
}

/// DescribeTransactions v0 of one transactional id.
pub async fn describe(c: &mut Client, id: &str) -> Result<Described> {
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    let mut r = c.request(0, req).await?;
    ensure!(r.transaction_states.len() == 1, "{r:?}");
    Ok(r.transaction_states.remove(0))
}
