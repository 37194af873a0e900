//! The transaction coordinator over the wire (Kafka's TransactionCoordinator and KafkaApis'
//! handlers): FindCoordinator for transactional ids, InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions at
//! every advertised version, and the error codes of requests out of order.
//!
//! The last tests run transactions with data end to end: Produce's verification (KIP-890 part
//! 1), the markers EndTxn and WriteTxnMarkers write, and what read_committed then reads.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const TRANSACTION_ABORTABLE: i16 = 120;

async fn init_txn(
    c: &mut Client,
    v: i16,
    id: &str,
    pid_epoch: (i64, i16),
) -> Result<InitProducerIdResponse> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid_epoch.0))
        .with_producer_epoch(pid_epoch.1);
    c.request(v, req)
        .await
        .with_context(|| format!("InitProducerId v{v}"))
}

async fn state_of(c: &mut Client, id: &str) -> Result<String> {
    Ok(describe(c, id).await?.transaction_state.to_string())
}

/// Waits (without a time threshold) until the transactional id is in `state`.
async fn wait_for_state(c: &mut Client, id: &str, state: &str) -> Result<Described> {
    for _ in 0..600 {
        let d = describe(c, id).await?;
        if d.transaction_state.as_str() == state {
            return Ok(d);
        }
        sleep_ms(50).await;
    }
    bail!("{id} never reached {state}: {:?}", describe(c, id).await?)
}

#[tokio::test]
async fn find_coordinator_names_this_node_for_transactional_ids() -> Result<()> {
    // KafkaApis.getCoordinator for CoordinatorType.TRANSACTION: the leader of the id's
    // __transaction_state partition, this node.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    // v0 has no key type: it always asks for a group's coordinator.
    for v in 1..=6 {
        let key = StrBytes::from_static_str("my-txn");
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![key.clone()])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(key)
        };
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        let (code, node, port) = match r.coordinators.first() {
            Some(k) if v >= 4 => (k.error_code, k.node_id.0, k.port),
            _ => (r.error_code, r.node_id.0, r.port),
        };
        ensure!(
            code == NONE && node == 1 && port == i32::from(b.addr.port()),
            "v{v}: {r:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn init_producer_id_with_a_transactional_id_every_version() -> Result<()> {
    // TransactionCoordinator.handleInitProducerId: a new id gets epoch 0, each further call
    // bumps the epoch of the same producer id; KIP-360 (v3+) bumps from the given epoch and
    // answers a retry with the same epoch.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for v in 0..=5 {
        let id = format!("init-v{v}");
        let first = init_txn(&mut c, v, &id, (-1, -1)).await?;
        ensure!(
            first.error_code == NONE && first.producer_epoch == 0,
            "v{v}: {first:?}"
        );
        let again = init_txn(&mut c, v, &id, (-1, -1)).await?;
        ensure!(
            again.error_code == NONE
                && again.producer_id == first.producer_id
                && again.producer_epoch == 1,
            "v{v}: {again:?}"
        );
        if v >= 3 {
            let pe = (again.producer_id.0, again.producer_epoch);
            let bumped = init_txn(&mut c, v, &id, pe).await?;
            ensure!(
                bumped.error_code == NONE && bumped.producer_epoch == 2,
                "v{v}: {bumped:?}"
            );
            let retry = init_txn(&mut c, v, &id, pe).await?;
            ensure!(
                retry.error_code == NONE && retry.producer_epoch == 2,
                "v{v}: {retry:?}"
            );
            // An epoch that is neither current nor last: fenced (INVALID_PRODUCER_EPOCH
            // before v4, which does not know PRODUCER_FENCED).
            let stale = init_txn(&mut c, v, &id, (pe.0, 0)).await?;
            let fenced = if v >= 4 {
                PRODUCER_FENCED
            } else {
                INVALID_PRODUCER_EPOCH
            };
            ensure!(stale.error_code == fenced, "v{v}: {stale:?}");
            // Only one of producer id and epoch: INVALID_REQUEST (KafkaApis), with or without
            // a transactional id.
            let half = init_txn(&mut c, v, &id, (pe.0, -1)).await?;
            ensure!(half.error_code == INVALID_REQUEST, "v{v}: {half:?}");
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(3);
            let half = c.request(v, req).await?;
            ensure!(half.error_code == INVALID_REQUEST, "v{v}: {half:?}");
        }
    }
    // transaction.timeout.ms above transaction.max.timeout.ms (900000), or not positive.
    for timeout in [900_001, 0] {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id("slow")))
            .with_transaction_timeout_ms(timeout)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = c.request(4, req).await?;
        ensure!(
            r.error_code == INVALID_TRANSACTION_TIMEOUT && r.producer_id.0 == -1,
            "{timeout}: {r:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn transactions_commit_and_abort_at_every_end_txn_version() -> Result<()> {
    // An open transaction (AddPartitionsToTxn, here with no partition) ends with EndTxn:
    // PrepareCommit/PrepareAbort then CompleteCommit/CompleteAbort; a retried EndTxn of the
    // same outcome is answered NONE, the other outcome INVALID_TXN_STATE.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let pe = init_transactional(&mut c, "ender").await?;
    for v in 0..=4 {
        let commit = v % 2 == 0;
        ensure!(add_partitions(&mut c, 3, "ender", pe, &[])
            .await?
            .is_empty());
        ensure!(state_of(&mut c, "ender").await? == "Ongoing");
        let code = end_txn(&mut c, v, "ender", pe, commit).await?;
        ensure!(code == NONE, "v{v}: {code}");
        let done = if commit {
            "CompleteCommit"
        } else {
            "CompleteAbort"
        };
        ensure!(state_of(&mut c, "ender").await? == done, "v{v}");
        ensure!(
            end_txn(&mut c, v, "ender", pe, commit).await? == NONE,
            "v{v} retry"
        );
        ensure!(
            end_txn(&mut c, v, "ender", pe, !commit).await? == INVALID_TXN_STATE,
            "v{v}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn add_partitions_to_txn_every_version() -> Result<()> {
    // KafkaApis.handleAddPartitionsToTxnRequest: an unknown partition fails the request
    // (UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED); v4+ batches
    // transactions and verify_only checks membership (TRANSACTION_ABORTABLE when absent).
    let (b, mut c) = broker_with_topic("data", 3).await?;
    for v in 0..=3 {
        let id = format!("add-v{v}");
        let pe = init_transactional(&mut c, &id).await?;
        let codes =
            add_partitions(&mut c, v, &id, pe, &[("data", 0), ("nope", 0), ("data", 9)]).await?;
        ensure!(
            codes
                == vec![
                    OPERATION_NOT_ATTEMPTED,
                    UNKNOWN_TOPIC_OR_PARTITION,
                    UNKNOWN_TOPIC_OR_PARTITION
                ],
            "v{v}: {codes:?}"
        );
        ensure!(
            state_of(&mut c, &id).await? == "Empty",
            "v{v}: nothing added"
        );
        // Internal topics are not the producer's to add (KafkaApis authorizes WRITE on
        // non-internal topics only).
        let internal = [("__consumer_offsets", 0), ("data", 1)];
        let codes = add_partitions(&mut c, v, &id, pe, &internal).await?;
        ensure!(
            codes == vec![TOPIC_AUTHORIZATION_FAILED, OPERATION_NOT_ATTEMPTED],
            "v{v}: {codes:?}"
        );
        let codes = add_partitions(&mut c, v, &id, pe, &[("data", 0), ("data", 2)]).await?;
        ensure!(codes == vec![NONE, NONE], "v{v}: {codes:?}");
        let d = describe(&mut c, &id).await?;
        ensure!(
            d.transaction_state.as_str() == "Ongoing"
                && d.topics.len() == 1
                && d.topics[0].partitions == vec![0, 2],
            "v{v}: {d:?}"
        );
        // Adding the same again answers at once.
        ensure!(add_partitions(&mut c, v, &id, pe, &[("data", 2)]).await? == vec![NONE]);
    }
    for v in 4..=5 {
        let id = format!("batch-v{v}");
        let pe = init_transactional(&mut c, &id).await?;
        let txn = |verify_only: bool, parts: &[(&str, i32)]| {
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(txn_id(&id))
                .with_producer_id(ProducerId(pe.0))
                .with_producer_epoch(pe.1)
                .with_verify_only(verify_only)
                .with_topics(txn_topics(parts))
        };
        let req = AddPartitionsToTxnRequest::default()
            .with_transactions(vec![txn(false, &[("data", 1)])]);
        let r = c.request(v, req).await?;
        ensure!(
            r.error_code == NONE
                && r.results_by_transaction.len() == 1
                && codes_of(&r.results_by_transaction[0].topic_results) == vec![NONE],
            "v{v}: {r:?}"
        );
        let req = AddPartitionsToTxnRequest::default()
            .with_transactions(vec![txn(true, &[("data", 1), ("data", 2)])]);
        let r = c.request(v, req).await?;
        let codes = codes_of(&r.results_by_transaction[0].topic_results);
        ensure!(codes == vec![NONE, TRANSACTION_ABORTABLE], "v{v}: {r:?}");
        let d = describe(&mut c, &id).await?;
        ensure!(
            d.topics[0].partitions == vec![1],
            "verify_only adds nothing: {d:?}"
        );
    }
    drop(b);
    Ok(())
}

#[tokio::test]
async fn add_offsets_to_txn_every_version() -> Result<()> {
    // KafkaApis.handleAddOffsetsToTxnRequest: the group's __consumer_offsets partition
    // (partitionFor(groupId), 50 partitions) joins the transaction.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for v in 0..=4 {
        let id = format!("offsets-v{v}");
        let pe = init_transactional(&mut c, &id).await?;
        ensure!(
            add_offsets(&mut c, v, &id, pe, "my-group").await? == NONE,
            "v{v}"
        );
        let d = describe(&mut c, &id).await?;
        // Java's "my-group".hashCode() is -1906497762; abs % 50 == 12.
        ensure!(
            d.transaction_state.as_str() == "Ongoing"
                && d.topics.len() == 1
                && d.topics[0].topic.as_str() == "__consumer_offsets"
                && d.topics[0].partitions == vec![12],
            "v{v}: {d:?}"
        );
        ensure!(add_offsets(&mut c, v, "unknown", pe, "g").await? == INVALID_PRODUCER_ID_MAPPING);
        let fenced = if v >= 2 {
            PRODUCER_FENCED
        } else {
            INVALID_PRODUCER_EPOCH
        };
        ensure!(
            add_offsets(&mut c, v, &id, (pe.0, pe.1 + 1), "g").await? == fenced,
            "v{v}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn out_of_order_requests_get_kafkas_error_codes() -> Result<()> {
    // TransactionCoordinator: an unknown id or another producer id is
    // INVALID_PRODUCER_ID_MAPPING, another epoch PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for
    // clients before v2), EndTxn without a transaction INVALID_TXN_STATE.
    let (b, mut c) = broker_with_topic("data", 1).await?;
    for v in 0..=4 {
        ensure!(end_txn(&mut c, v, "never", (5, 0), true).await? == INVALID_PRODUCER_ID_MAPPING);
    }
    for v in 0..=3 {
        let codes = add_partitions(&mut c, v, "never", (5, 0), &[("data", 0)]).await?;
        ensure!(
            codes == vec![INVALID_PRODUCER_ID_MAPPING],
            "v{v}: {codes:?}"
        );
    }
    let pe = init_transactional(&mut c, "ooo").await?;
    for v in 0..=4 {
        ensure!(
            end_txn(&mut c, v, "ooo", pe, true).await? == INVALID_TXN_STATE,
            "v{v}"
        );
        ensure!(
            end_txn(&mut c, v, "ooo", pe, false).await? == INVALID_TXN_STATE,
            "v{v}"
        );
        let fenced = if v >= 2 {
            PRODUCER_FENCED
        } else {
            INVALID_PRODUCER_EPOCH
        };
        ensure!(
            end_txn(&mut c, v, "ooo", (pe.0, pe.1 + 1), true).await? == fenced,
            "v{v}"
        );
        ensure!(
            end_txn(&mut c, v, "ooo", (pe.0 + 1, pe.1), true).await? == INVALID_PRODUCER_ID_MAPPING
        );
    }
    for v in 0..=3 {
        let fenced = if v >= 2 {
            PRODUCER_FENCED
        } else {
            INVALID_PRODUCER_EPOCH
        };
        let codes = add_partitions(&mut c, v, "ooo", (pe.0, pe.1 + 1), &[("data", 0)]).await?;
        ensure!(codes == vec![fenced], "v{v}: {codes:?}");
        let codes = add_partitions(&mut c, v, "ooo", (pe.0 + 1, pe.1), &[("data", 0)]).await?;
        ensure!(
            codes == vec![INVALID_PRODUCER_ID_MAPPING],
            "v{v}: {codes:?}"
        );
    }
    ensure!(state_of(&mut c, "ooo").await? == "Empty");
    // An empty transactional id is INVALID_REQUEST.
    let r = init_txn(&mut c, 4, "", (-1, -1)).await?;
    ensure!(r.error_code == INVALID_REQUEST, "{r:?}");
    drop(b);
    Ok(())
}

#[tokio::test]
async fn a_new_producer_fences_the_ongoing_transaction_of_the_previous_one() -> Result<()> {
    // prepareInitProducerIdTransit on an Ongoing transaction: the epoch is bumped and the
    // transaction aborted, the new producer gets CONCURRENT_TRANSACTIONS and, on retry, the
    // epoch bumped once more; the previous producer is fenced.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let old = init_transactional(&mut c, "zombie").await?;
    add_partitions(&mut c, 3, "zombie", old, &[]).await?;
    let r = init_txn(&mut c, 4, "zombie", (-1, -1)).await?;
    ensure!(r.error_code == CONCURRENT_TRANSACTIONS, "{r:?}");
    let d = wait_for_state(&mut c, "zombie", "CompleteAbort").await?;
    ensure!(d.producer_epoch == old.1 + 1, "{d:?}");
    let new = init_transactional(&mut c, "zombie").await?;
    ensure!(new == (old.0, old.1 + 2), "{new:?}");
    ensure!(end_txn(&mut c, 4, "zombie", old, true).await? == PRODUCER_FENCED);
    ensure!(add_partitions(&mut c, 3, "zombie", old, &[]).await? == Vec::<i16>::new());
    ensure!(
        state_of(&mut c, "zombie").await? == "Empty",
        "the zombie added nothing"
    );
    Ok(())
}

#[tokio::test]
async fn a_timed_out_transaction_is_aborted_and_its_producer_fenced() -> Result<()> {
    // TransactionCoordinator.abortTimedOutTransactions, run every
    // transaction.abort.timed.out.transaction.cleanup.interval.ms: the epoch is bumped (the
    // producer is a zombie now) and the transaction aborted.
    let b = start_broker_with(|cfg| cfg.txn.abort_timed_out_transaction_cleanup_interval_ms = 100)
        .await?;
    let mut c = b.client().await?;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id("sleepy")))
        .with_transaction_timeout_ms(1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.request(4, req).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let pe = (r.producer_id.0, r.producer_epoch);
    add_partitions(&mut c, 3, "sleepy", pe, &[]).await?;
    let d = wait_for_state(&mut c, "sleepy", "CompleteAbort").await?;
    ensure!(d.producer_epoch == pe.1 + 1, "{d:?}");
    ensure!(end_txn(&mut c, 4, "sleepy", pe, true).await? == PRODUCER_FENCED);
    Ok(())
}

#[tokio::test]
async fn describe_and_list_transactions() -> Result<()> {
    // TransactionStateManager.listTransactionStates: filters by state (unknown names echoed),
    // producer id and (v1) running time; DescribeTransactions of an unknown id is
    // TRANSACTIONAL_ID_NOT_FOUND.
    let (b, mut c) = broker_with_topic("data", 2).await?;
    let open = init_transactional(&mut c, "open").await?;
    add_partitions(&mut c, 3, "open", open, &[("data", 1), ("data", 0)]).await?;
    let idle = init_transactional(&mut c, "idle").await?;
    let d = describe(&mut c, "open").await?;
    ensure!(
        d.error_code == NONE
            && d.producer_id.0 == open.0
            && d.producer_epoch == open.1
            && d.transaction_timeout_ms == 60_000
            && d.transaction_start_time_ms > 0
            && d.topics[0].partitions == vec![0, 1],
        "{d:?}"
    );
    let d = describe(&mut c, "missing").await?;
    ensure!(d.error_code == TRANSACTIONAL_ID_NOT_FOUND, "{d:?}");
    let list = |states: &[&str], pids: &[i64], duration: i64| {
        ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|x| s(x)).collect())
            .with_producer_id_filters(pids.iter().map(|p| ProducerId(*p)).collect())
            .with_duration_filter(duration)
    };
    let ids = |r: &ListTransactionsResponse| {
        let mut v: Vec<String> = r
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.to_string())
            .collect();
        v.sort();
        v
    };
    for v in 0..=1 {
        let r = c.request(v, list(&[], &[], -1)).await?;
        ensure!(
            r.error_code == NONE && ids(&r) == vec!["idle", "open"],
            "v{v}: {r:?}"
        );
        let r = c.request(v, list(&["Ongoing", "Bogus"], &[], -1)).await?;
        ensure!(ids(&r) == vec!["open"], "v{v}: {r:?}");
        ensure!(r.unknown_state_filters == vec![s("Bogus")], "v{v}: {r:?}");
        ensure!(r.transaction_states[0].transaction_state.as_str() == "Ongoing");
        let r = c.request(v, list(&[], &[idle.0], -1)).await?;
        ensure!(ids(&r) == vec!["idle"], "v{v}: {r:?}");
    }
    // v1: only transactions running longer than the filter (an hour: none of the open one).
    let r = c.request(1, list(&["Ongoing"], &[], 3_600_000)).await?;
    ensure!(r.transaction_states.is_empty(), "{r:?}");
    let r = c.request(1, list(&["Ongoing"], &[], 0)).await;
    ensure!(r.is_ok());
    drop(b);
    Ok(())
}

#[tokio::test]
async fn transactional_ids_survive_restarts() -> Result<()> {
    // __transaction_state is replayed at start-up: the producer id stays, the epoch goes on.
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    let first = init_transactional(&mut c, "durable").await?;
    add_partitions(&mut c, 3, "durable", first, &[]).await?;
    ensure!(end_txn(&mut c, 3, "durable", first, true).await? == NONE);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(state_of(&mut c, "durable").await? == "CompleteCommit");
    let second = init_transactional(&mut c, "durable").await?;
    ensure!(second == (first.0, first.1 + 1), "{second:?}");
    add_partitions(&mut c, 3, "durable", second, &[]).await?;
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    ensure!(state_of(&mut c, "durable").await? == "Ongoing");
    tokio::time::timeout(Duration::from_secs(60), async {
        // The open transaction of the previous producer is aborted by the next one.
        loop {
            let r = init_txn(&mut c, 4, "durable", (-1, -1)).await?;
            if r.error_code == NONE {
                ensure!(
                    r.producer_id.0 == first.0 && r.producer_epoch == second.1 + 2,
                    "{r:?}"
                );
                return Ok(());
            }
            ensure!(r.error_code == CONCURRENT_TRANSACTIONS, "{r:?}");
            sleep_ms(20).await;
        }
    })
    .await?
}

#[tokio::test]
async fn transaction_state_topic_is_created_as_kafka_creates_it() -> Result<()> {
    // TransactionStateManager.transactionTopicConfigs: compacted, uncompressed, 100 MiB
    // segments; transaction.state.log.num.partitions (50) partitions.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    init_transactional(&mut c, "creator").await?;
    let topic = "__transaction_state";
    ensure!(
        topic_config(&mut c, topic, "cleanup.policy")
            .await?
            .as_deref()
            == Some("compact")
    );
    ensure!(
        topic_config(&mut c, topic, "compression.type")
            .await?
            .as_deref()
            == Some("uncompressed")
    );
    ensure!(
        topic_config(&mut c, topic, "segment.bytes")
            .await?
            .as_deref()
            == Some("104857600")
    );
    let md = metadata(&mut c, METADATA_V, metadata_topics(&[topic]), false).await?;
    ensure!(
        md.topics[0].partitions.len() == 50 && md.topics[0].is_internal,
        "{md:?}"
    );
    Ok(())
}

// ----- Transactional data over the wire: Produce's verification, markers, read_committed -----

const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
/// Produce of one batch with the request's transactional id; the partition's error code.
async fn produce_txn(
    c: &mut Client,
    v: i16,
    id: Option<&str>,
    topic: &str,
    batch: Bytes,
) -> Result<i16> {
    let req = produce_request(-1, vec![topic_data(topic, vec![(0, batch)])])
        .with_transactional_id(id.map(txn_id));
    let r = c.request(v, req).await.context("Produce")?;
    Ok(r.responses[0].partition_responses[0].error_code)
}

/// ListOffsets LATEST of partition 0 for an isolation level (1: read_committed, the LSO).
async fn latest(c: &mut Client, topic: &str, isolation: i8) -> Result<i64> {
    let req = list_offsets_request(topic, 0, -1).with_isolation_level(isolation);
    let r = c.request(LIST_OFFSETS_V, req).await?;
    let p = &r.topics[0].partitions[0];
    ensure!(p.error_code == NONE, "ListOffsets: {p:?}");
    Ok(p.offset)
}

/// Fetch v4+ read_committed of partition 0 from offset 0: its records' batch count and the
/// aborted transactions it lists.
async fn fetch_committed(c: &mut Client, topic: &str) -> Result<(usize, Vec<(i64, i64)>)> {
    let req = fetch_request(
        vec![fetch_topic(topic, vec![fetch_partition(0, 0, 1 << 20)])],
        0,
        0,
    )
    .with_isolation_level(1);
    let r = c.request(FETCH_V, req).await?;
    let p = &r.responses[0].partitions[0];
    ensure!(p.error_code == NONE, "Fetch: {p:?}");
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    Ok((batch_count(&p.records.clone().unwrap_or_default()), aborted))
}

/// KIP-890 part 1 (ReplicaManager.appendRecordsWithTransactionVerification): a transactional
/// batch is appended only to a partition of the producer's ongoing transaction. Produce v10 and
/// older learn INVALID_TXN_STATE, v11+ TRANSACTION_ABORTABLE; a transactional batch without a
/// transactional id in the request is TRANSACTIONAL_ID_AUTHORIZATION_FAILED (KafkaApis).
#[tokio::test]
async fn a_transactional_batch_outside_its_transaction_is_refused() -> Result<()> {
    let (_b, mut c) = broker_with_topic("verify", 1).await?;
    let producer = init_transactional(&mut c, "verify-id").await?;
    let batch = || txn_batch(&["x"], producer, 0);
    for (v, want) in [(9, INVALID_TXN_STATE), (11, TRANSACTION_ABORTABLE)] {
        let code = produce_txn(&mut c, v, Some("verify-id"), "verify", batch()).await?;
        ensure!(
            code == want,
            "Produce v{v} outside the transaction: {code}, want {want}"
        );
    }
    let code = produce_txn(&mut c, 9, None, "verify", batch()).await?;
    ensure!(
        code == TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        "no transactional id: {code}"
    );
    ensure!(
        latest(&mut c, "verify", 0).await? == 0,
        "a refused batch was appended"
    );
    // Once the partition is in the transaction, the same batch is appended.
    let codes = add_partitions(&mut c, 3, "verify-id", producer, &[("verify", 0)]).await?;
    ensure!(codes == [NONE], "AddPartitionsToTxn: {codes:?}");
    let code = produce_txn(&mut c, 9, Some("verify-id"), "verify", batch()).await?;
    ensure!(code == NONE, "Produce inside the transaction: {code}");
    Ok(())
}

/// EndTxn writes the markers: a committed transaction becomes visible to read_committed at once
/// (the LSO reaches the high watermark: one record and its marker), an aborted one is listed in
/// Fetch's aborted_transactions and skipped.
#[tokio::test]
async fn end_txn_writes_markers_read_committed_sees_only_commits() -> Result<()> {
    let (_b, mut c) = broker_with_topic("ended", 1).await?;
    let id = "ended-id";
    let producer = init_transactional(&mut c, id).await?;
    for (seq, commit) in [(0, true), (1, false)] {
        let codes = add_partitions(&mut c, 3, id, producer, &[("ended", 0)]).await?;
        ensure!(codes == [NONE], "AddPartitionsToTxn: {codes:?}");
        let batch = txn_batch(&["v"], producer, seq);
        let code = produce_txn(&mut c, 9, Some(id), "ended", batch).await?;
        ensure!(code == NONE, "Produce: {code}");
        ensure!(
            latest(&mut c, "ended", 1).await? == 2 * seq as i64,
            "LSO while open"
        );
        ensure!(
            end_txn(&mut c, 3, id, producer, commit).await? == NONE,
            "EndTxn"
        );
        ensure!(
            latest(&mut c, "ended", 1).await? == 2 * seq as i64 + 2,
            "the LSO did not move past the marker"
        );
    }
    let (batches, aborted) = fetch_committed(&mut c, "ended").await?;
    ensure!(
        aborted == [(producer.0, 2)],
        "aborted transactions: {aborted:?}"
    );
    // Fetch returns whole batches (the client drops the aborted one): two data batches and two
    // markers.
    ensure!(batches == 4, "batches read: {batches}");
    Ok(())
}

/// WriteTxnMarkers v1 (kafka-transactions.sh abort): an abort marker for an open transaction
/// ends it on that partition; a partition that does not exist answers
/// UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn write_txn_markers_ends_a_transaction_on_its_partitions() -> Result<()> {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    let (_b, mut c) = broker_with_topic("markers", 1).await?;
    let producer = init_transactional(&mut c, "markers-id").await?;
    let codes = add_partitions(&mut c, 3, "markers-id", producer, &[("markers", 0)]).await?;
    ensure!(codes == [NONE], "AddPartitionsToTxn: {codes:?}");
    let code = produce_txn(
        &mut c,
        9,
        Some("markers-id"),
        "markers",
        txn_batch(&["v"], producer, 0),
    )
    .await?;
    ensure!(code == NONE, "Produce: {code}");
    ensure!(
        latest(&mut c, "markers", 1).await? == 0,
        "LSO of the open transaction"
    );
    let topic = |t: &str| {
        WritableTxnMarkerTopic::default()
            .with_name(name(t))
            .with_partition_indexes(vec![0])
    };
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_transaction_result(false)
        .with_coordinator_epoch(0)
        .with_topics(vec![topic("markers"), topic("no-such-topic")])]);
    let r = c.request(1, req).await.context("WriteTxnMarkers v1")?;
    let codes: Vec<(String, i16)> = r.markers[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.error_code))
        })
        .collect();
    ensure!(
        codes
            == [
                ("markers".to_string(), NONE),
                ("no-such-topic".to_string(), UNKNOWN_TOPIC_OR_PARTITION)
            ],
        "WriteTxnMarkers: {codes:?}"
    );
    ensure!(
        latest(&mut c, "markers", 1).await? == 2,
        "the abort marker did not end it"
    );
    let (_, aborted) = fetch_committed(&mut c, "markers").await?;
    ensure!(
        aborted == [(producer.0, 0)],
        "aborted transactions: {aborted:?}"
    );
    Ok(())
}

// ----- KIP-890 part 2 (transaction.version 2): what a Kafka 4.x client does once it is finalized -----

/// EndTxn v5: (error, producer id, producer epoch).
async fn end_v5(
    c: &mut Client,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> Result<(i16, i64, i16)> {
    let r = end_txn_response(c, 5, id, producer, commit).await?;
    Ok((r.error_code, r.producer_id.0, r.producer_epoch))
}

/// The partitions DescribeTransactions shows in the transaction.
async fn partitions_of(c: &mut Client, id: &str) -> Result<Vec<(String, i32)>> {
    Ok(describe(c, id)
        .await?
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
        .collect())
}

/// Produce v12+ (TV2): a transactional batch adds its partition to the producer's transaction
/// (the coordinator's add, with its epoch checks) where v11 refuses it; a fenced epoch is
/// INVALID_PRODUCER_EPOCH and appends nothing.
#[tokio::test]
async fn produce_v12_adds_the_partition_to_the_transaction() -> Result<()> {
    let (_b, mut c) = broker_with_topic("implicit", 1).await?;
    let id = "implicit-id";
    let producer = init_transactional(&mut c, id).await?;
    let batch = |producer, seq| txn_batch(&["x"], producer, seq);
    let code = produce_txn(&mut c, 11, Some(id), "implicit", batch(producer, 0)).await?;
    ensure!(code == TRANSACTION_ABORTABLE, "Produce v11: {code}");
    ensure!(state_of(&mut c, id).await? == "Empty");
    let zombie = (producer.0, producer.1 + 1);
    let code = produce_txn(&mut c, 12, Some(id), "implicit", batch(zombie, 0)).await?;
    ensure!(
        code == INVALID_PRODUCER_EPOCH,
        "Produce v12, fenced: {code}"
    );
    let code = produce_txn(
        &mut c,
        12,
        Some("no-such-id"),
        "implicit",
        batch(producer, 0),
    )
    .await?;
    ensure!(
        code == INVALID_PRODUCER_ID_MAPPING,
        "Produce v12, unknown id: {code}"
    );
    ensure!(
        latest(&mut c, "implicit", 0).await? == 0,
        "a refused batch was appended"
    );
    for seq in 0..2 {
        let code = produce_txn(&mut c, 12, Some(id), "implicit", batch(producer, seq)).await?;
        ensure!(code == NONE, "Produce v12 #{seq}: {code}");
    }
    ensure!(state_of(&mut c, id).await? == "Ongoing");
    ensure!(partitions_of(&mut c, id).await? == [("implicit".to_string(), 0)]);
    ensure!(
        latest(&mut c, "implicit", 1).await? == 0,
        "LSO of the open transaction"
    );
    Ok(())
}

/// EndTxn v5 (TV2): every end bumps the epoch, the markers carry the bumped one, and the
/// response names the producer id and epoch to go on with; a retry (the epoch before the bump)
/// gets the same answer; the next transaction runs at the new epoch from sequence 0; an abort
/// with nothing open still bumps, a commit of nothing is INVALID_TXN_STATE.
#[tokio::test]
async fn end_txn_v5_bumps_the_epoch_on_every_end() -> Result<()> {
    let (_b, mut c) = broker_with_topic("bumped", 1).await?;
    let id = "bumped-id";
    let (pid, e0) = init_transactional(&mut c, id).await?;
    /// Produce v12 of one transactional batch of `id` at `epoch` from `seq`.
    async fn produce(c: &mut Client, (pid, epoch): (i64, i16), seq: i32) -> Result<i16> {
        let batch = txn_batch(&["v"], (pid, epoch), seq);
        produce_txn(c, 12, Some("bumped-id"), "bumped", batch).await
    }
    ensure!(produce(&mut c, (pid, e0), 0).await? == NONE);
    ensure!(end_v5(&mut c, id, (pid, e0), true).await? == (NONE, pid, e0 + 1));
    ensure!(
        latest(&mut c, "bumped", 1).await? == 2,
        "LSO past the commit marker"
    );
    ensure!(state_of(&mut c, id).await? == "CompleteCommit");
    // A retry of that commit; the other outcome with the old epoch is not a retry.
    ensure!(end_v5(&mut c, id, (pid, e0), true).await? == (NONE, pid, e0 + 1));
    let refused = end_v5(&mut c, id, (pid, e0), false).await?;
    ensure!(refused == (INVALID_TXN_STATE, -1, -1), "{refused:?}");
    // The zombie's batch at the old epoch is fenced; the next transaction starts at seq 0.
    ensure!(produce(&mut c, (pid, e0), 1).await? == INVALID_PRODUCER_EPOCH);
    ensure!(produce(&mut c, (pid, e0 + 1), 0).await? == NONE);
    ensure!(end_v5(&mut c, id, (pid, e0 + 1), false).await? == (NONE, pid, e0 + 2));
    let (_, aborted) = fetch_committed(&mut c, "bumped").await?;
    ensure!(aborted == [(pid, 2)], "aborted transactions: {aborted:?}");
    // Nothing open: an abort bumps, a commit is refused.
    ensure!(end_v5(&mut c, id, (pid, e0 + 2), false).await? == (NONE, pid, e0 + 3));
    let refused = end_v5(&mut c, id, (pid, e0 + 3), true).await?;
    ensure!(refused == (INVALID_TXN_STATE, -1, -1), "{refused:?}");
    // A TV1 end (v4) of a TV2 producer keeps the epoch, strictly.
    ensure!(produce(&mut c, (pid, e0 + 3), 0).await? == NONE);
    ensure!(end_txn(&mut c, 4, id, (pid, e0 + 2), true).await? == PRODUCER_FENCED);
    ensure!(end_txn(&mut c, 4, id, (pid, e0 + 3), true).await? == NONE);
    ensure!(describe(&mut c, id).await?.producer_epoch == e0 + 3);
    Ok(())
}

/// TxnOffsetCommit v5 (TV2): the group's offsets partition joins the transaction without
/// AddOffsetsToTxn; the offsets stay pending until EndTxn v5 commits them. A fenced epoch is
/// INVALID_PRODUCER_EPOCH, as Kafka's AddPartitionsToTxnManager answers.
#[tokio::test]
async fn txn_offset_commit_v5_adds_the_offsets_partition() -> Result<()> {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let (_b, mut c) = group_broker_with_topic("consumed", 1).await?;
    let id = "offsets-id";
    let producer = init_transactional(&mut c, id).await?;
    let commit = |producer: (i64, i16)| {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id(id))
            .with_group_id(GroupId(s("tv2-group")))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(name("consumed"))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)])])
    };
    let code_of = |r: TxnOffsetCommitResponse| r.topics[0].partitions[0].error_code;
    let fenced = code_of(c.request(5, commit((producer.0, producer.1 + 1))).await?);
    ensure!(fenced == INVALID_PRODUCER_EPOCH, "fenced: {fenced}");
    ensure!(state_of(&mut c, id).await? == "Empty");
    let code = code_of(c.request(5, commit(producer)).await?);
    ensure!(code == NONE, "TxnOffsetCommit v5: {code}");
    let parts = partitions_of(&mut c, id).await?;
    ensure!(
        parts.len() == 1 && parts[0].0 == "__consumer_offsets",
        "transaction partitions: {parts:?}"
    );
    // Pending: a stable fetch is asked to come back (UNSTABLE_OFFSET_COMMIT).
    let wanted: &[(&str, &[i32])] = &[("consumed", &[0])];
    let (_, parts) = fetch_offsets(&mut c, OFFSET_FETCH_V, "tv2-group", Some(wanted)).await?;
    ensure!(parts[0].error_code == 88, "pending: {parts:?}");
    let ended = end_v5(&mut c, id, producer, true).await?;
    ensure!(ended == (NONE, producer.0, producer.1 + 1), "{ended:?}");
    ensure!(committed(&mut c, "tv2-group", "consumed", 0).await? == 42);
    Ok(())
}
