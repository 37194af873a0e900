//! Broker snapshots over the admin listener (issue 16): `POST /v1/snapshot` records the state,
//! `POST /v1/restore` brings it back exactly, whatever happened in between: log end offsets and
//! records, committed offsets, the topics, an ongoing and a committed transaction, and an
//! idempotent producer's sequence. Small segments, so that closed segments (hard links) are
//! part of it, the internal topics' too.
//!
//! Kafka has no snapshots: nothing here is calibrated against it.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::*;
use serde_json::{json, Value};

const GROUP: &str = "snap-group";
const OPEN_TXN: &str = "snap-open";
const DONE_TXN: &str = "snap-done";

/// A partition's log end offset, last stable offset, and records as (offset, value).
type Log = (i64, i64, Vec<(i64, Option<bytes::Bytes>)>);

/// What a test compares before the snapshot and after each restore.
#[derive(Debug, PartialEq)]
struct State {
    topics: Vec<String>,
    /// Partition 0 of a and b.
    logs: Vec<Log>,
    committed: Vec<i64>,
    open_txn: String,
    done_txn: String,
}

async fn state(c: &mut Client) -> Result<State> {
    let md = metadata(c, METADATA_V, None, false).await?;
    let mut topics: Vec<String> = (md.topics.iter())
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    topics.sort();
    let mut logs = Vec::new();
    let mut committed_offsets = Vec::new();
    for t in ["a", "b"] {
        let end = list_offset(c, t, 0, -1).await?;
        ensure!(end.error_code == NONE, "{t}: {end:?}");
        let stable = list_offsets_request(t, 0, -1).with_isolation_level(1);
        let stable = c.request(LIST_OFFSETS_V, stable).await?;
        let records = fetch_all(c, t, 0).await?;
        let records = records.into_iter().map(|r| (r.offset, r.value)).collect();
        logs.push((end.offset, stable.topics[0].partitions[0].offset, records));
        committed_offsets.push(committed(c, GROUP, t, 0).await?);
    }
    Ok(State {
        topics,
        logs,
        committed: committed_offsets,
        open_txn: describe(c, OPEN_TXN).await?.transaction_state.to_string(),
        done_txn: describe(c, DONE_TXN).await?.transaction_state.to_string(),
    })
}

async fn admin_ok(b: &TestBroker, method: &str, path: &str, body: Value) -> Result<Value> {
    let (status, answer) = b.admin_json(method, path, body).await?;
    ensure!(status == 200, "{method} {path}: {status} {answer}");
    Ok(answer)
}

/// Everything the snapshot must not keep.
async fn change_everything(
    c: &mut Client,
    idempotent: (i64, i16),
    open: (i64, i16),
    round: i32,
) -> Result<()> {
    produce_ok(c, "a", 0, values_batch(&["later-a"])).await?;
    produce_ok(c, "b", 0, values_batch(&["later-b"])).await?;
    let batch = idempotent_batch(&["later-idem"], idempotent.0, idempotent.1, 2);
    ensure!(produce(c, "a", 0, batch).await?.error_code == NONE);
    commit_ok(c, GROUP, "", -1, &[("a", 0, 99, ""), ("b", 0, 98, "")]).await?;
    if round == 0 {
        ensure!(end_txn(c, 3, OPEN_TXN, open, true).await? == NONE);
    }
    create_topic(c, &format!("c{round}"), 1).await?;
    let deleted = DeleteTopicsRequest::default()
        .with_topic_names(vec![name("b")])
        .with_timeout_ms(10_000);
    let deleted = c.request(4, deleted).await?;
    ensure!(deleted.responses[0].error_code == NONE, "{deleted:?}");
    Ok(())
}

/// Begins a transaction of `id` that writes one record to partition 0 of `topic`; returns the
/// producer.
async fn transaction_with_one_record(c: &mut Client, id: &str, topic: &str) -> Result<(i64, i16)> {
    let producer = init_transactional(c, id).await?;
    ensure!(add_partitions(c, 3, id, producer, &[(topic, 0)]).await? == [NONE]);
    let batch = txn_batch(&["in-transaction"], producer, 0);
    let req = produce_request(-1, vec![topic_data(topic, vec![(0, batch)])])
        .with_transactional_id(Some(txn_id(id)));
    let code = c.request(9, req).await?.responses[0].partition_responses[0].error_code;
    ensure!(code == NONE, "transactional produce: {code}");
    Ok(producer)
}

#[tokio::test]
async fn a_restore_brings_back_exactly_the_snapshots_state_and_can_be_repeated() -> Result<()> {
    let b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.log.segment_bytes = 400;
    })
    .await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "a", 1).await?;
    create_topic(&mut c, "b", 1).await?;
    for i in 0..6 {
        produce_ok(&mut c, "a", 0, values_batch(&[&format!("a{i}"), "x"])).await?;
        produce_ok(&mut c, "b", 0, values_batch(&[&format!("b{i}")])).await?;
    }
    commit_ok(&mut c, GROUP, "", -1, &[("a", 0, 5, ""), ("b", 0, 3, "")]).await?;
    // A committed transaction on a, one left open on b.
    let done = transaction_with_one_record(&mut c, DONE_TXN, "a").await?;
    ensure!(end_txn(&mut c, 3, DONE_TXN, done, true).await? == NONE);
    let open = transaction_with_one_record(&mut c, OPEN_TXN, "b").await?;
    // An idempotent producer at sequence 2 next.
    let idem = init_producer_id(&mut c).await?;
    for seq in 0..2 {
        let batch = idempotent_batch(&[&format!("idem{seq}")], idem.0, idem.1, seq);
        ensure!(produce(&mut c, "a", 0, batch).await?.error_code == NONE);
    }

    let before = state(&mut c).await?;
    ensure!(
        before.open_txn == "Ongoing" && before.done_txn == "CompleteCommit",
        "{before:?}"
    );
    ensure!(
        before.logs[1].1 < before.logs[1].0,
        "b's LSO stops at the open transaction"
    );
    let taken = admin_ok(&b, "POST", "/v1/snapshot", json!({"name": "s1"})).await?;
    ensure!(
        taken["linked"].as_u64() > Some(0),
        "closed segments are linked: {taken}"
    );
    let listed = admin_ok(&b, "GET", "/v1/snapshots", Value::Null).await?;
    ensure!(listed["snapshots"][0]["name"] == "s1", "{listed}");

    for round in 0..2 {
        change_everything(&mut c, idem, open, round).await?;
        ensure!(
            state(&mut c).await.ok().as_ref() != Some(&before),
            "round {round}: nothing changed"
        );
        let restored = admin_ok(&b, "POST", "/v1/restore", json!({"name": "s1"})).await?;
        ensure!(restored["name"] == "s1", "{restored}");
        // The connection closed with the old broker: a client reconnects, as after a restart.
        ensure!(c
            .request(METADATA_V, MetadataRequest::default())
            .await
            .is_err());
        c = b.client().await?;
        let after = state(&mut c).await?;
        ensure!(after == before, "round {round}:\n{after:?}\n!=\n{before:?}");
        // The idempotent producer goes on at the snapshot's next sequence.
        let batch = idempotent_batch(&["after"], idem.0, idem.1, 2);
        let p = produce(&mut c, "a", 0, batch).await?;
        ensure!(
            p.error_code == NONE && p.base_offset == before.logs[0].0,
            "{p:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn snapshot_names_and_errors() -> Result<()> {
    let b = TestBroker::start_with(|c| c.admin_listen = Some("127.0.0.1:0".into())).await?;
    for bad in [
        json!({}),
        json!({"name": "../x"}),
        json!({"name": ".hidden"}),
        json!({"name": ""}),
    ] {
        let (status, answer) = b.admin_json("POST", "/v1/snapshot", bad.clone()).await?;
        ensure!(
            status == 400 && answer["error"].is_string(),
            "{bad}: {status} {answer}"
        );
    }
    let (status, _) = b
        .admin_json("POST", "/v1/restore", json!({"name": "none"}))
        .await?;
    ensure!(status == 404, "restore of no snapshot: {status}");
    let (status, _) = b
        .admin_json("DELETE", "/v1/snapshots/none", Value::Null)
        .await?;
    ensure!(status == 404, "delete of no snapshot: {status}");
    admin_ok(&b, "POST", "/v1/snapshot", json!({"name": "one"})).await?;
    // A second snapshot of a name replaces the first.
    admin_ok(&b, "POST", "/v1/snapshot", json!({"name": "one"})).await?;
    let listed = admin_ok(&b, "GET", "/v1/snapshots", Value::Null).await?;
    ensure!(
        listed["snapshots"].as_array().map(Vec::len) == Some(1),
        "{listed}"
    );
    admin_ok(&b, "DELETE", "/v1/snapshots/one", Value::Null).await?;
    let listed = admin_ok(&b, "GET", "/v1/snapshots", Value::Null).await?;
    ensure!(listed["snapshots"] == json!([]), "{listed}");
    Ok(())
}

#[tokio::test]
async fn several_brokers_in_one_process_refuse_snapshots() -> Result<()> {
    let b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.brokers = 2;
    })
    .await?;
    let (status, answer) = b
        .admin_json("POST", "/v1/snapshot", json!({"name": "s"}))
        .await?;
    ensure!(status == 409, "{status} {answer}");
    Ok(())
}

/// What a load client saw: each error code it was answered, and whether its connection closed.
#[derive(Default, Debug)]
struct Seen {
    requests: u64,
    codes: std::collections::BTreeSet<i16>,
    reconnects: u64,
}

/// A client that keeps producing (`produce`) or fetching from the start of partition 0 of
/// `topic` until `stop`, reconnecting whenever its connection closes (a restore restarts the
/// broker). Answers are recorded, never asserted here: the test checks them against what Kafka
/// could answer.
async fn load(
    addr: std::net::SocketAddr,
    topic: &'static str,
    produce: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut client: Option<Client> = None;
    let mut next = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match Client::connect(addr).await {
                Ok(c) => client.insert(c),
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        seen.requests += 1;
        let code = if produce {
            produce_at(c, PRODUCE_V, topic, 0, values_batch(&["load", "x"]))
                .await
                .map(|p| p.error_code)
        } else {
            // Start over from the log start whenever the log is not where it was (a consumer's
            // auto.offset.reset=earliest).
            let from = match next {
                -1 => list_offset(c, topic, 0, -2).await.map(|p| p.offset),
                n => Ok(n),
            };
            match from {
                Ok(from) => fetch_one(c, topic, 0, from, 64 * 1024).await.map(|p| {
                    next = if p.error_code == NONE {
                        p.high_watermark
                    } else {
                        -1
                    };
                    p.error_code
                }),
                Err(e) => Err(e),
            }
        };
        match code {
            Ok(code) => {
                seen.codes.insert(code);
                if code != NONE {
                    // A client waits for metadata before it retries; this one just backs off.
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            Err(_) => {
                seen.reconnects += 1;
                client = None;
            }
        }
    }
    seen
}

/// Issue 16's rule for control operations under load: resets and restores while clients
/// produce and fetch end with the clients having seen only answers Kafka can give when a topic
/// is deleted or a broker restarts (or a closed connection), every produce that reconnects
/// succeeding again, and a data directory that checks clean.
#[tokio::test]
async fn resets_and_restores_under_load_leave_clients_working_and_the_logs_clean() -> Result<()> {
    let mut b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.log.segment_bytes = 2000;
    })
    .await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "a", 1).await?;
    for i in 0..20 {
        produce_ok(&mut c, "a", 0, values_batch(&[&format!("seed{i}")])).await?;
    }
    admin_ok(&b, "POST", "/v1/snapshot", json!({"name": "seeded"})).await?;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = [(true, "a"), (true, "a"), (false, "a")]
        .into_iter()
        .map(|(producing, topic)| tokio::spawn(load(b.addr, topic, producing, stop.clone())))
        .collect();
    // Restores and resets in turn, ending with a restore (whose log starts at 0 again).
    let mut base = 20;
    for round in 0..5 {
        // Wait until the load has written some more, so each operation has work to undo.
        let mut c = b.client().await?;
        let mut waited = 0;
        while list_offset(&mut c, "a", 0, -1).await?.offset <= base + 10 {
            waited += 1;
            ensure!(waited < 5000, "round {round}: the load wrote nothing");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        base = if round % 2 == 0 {
            20
        } else {
            list_offset(&mut c, "a", 0, -1).await?.offset
        };
        if round % 2 == 0 {
            admin_ok(&b, "POST", "/v1/restore", json!({"name": "seeded"})).await?;
        } else {
            admin_ok(&b, "POST", "/v1/reset", json!({"keep_topics": true})).await?;
        }
    }
    // After the last operation the producers write again.
    let mut c = b.client().await?;
    let after = list_offset(&mut c, "a", 0, -1).await?.offset;
    let mut waited = 0;
    while list_offset(&mut c, "a", 0, -1).await?.offset <= after {
        waited += 1;
        ensure!(waited < 5000, "the producers did not resume");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await?);
    }
    eprintln!("load: {seen:?}");
    // A restore restarts the broker: connections close. A reset with keep_topics empties the
    // topic: a fetch past the new end is OFFSET_OUT_OF_RANGE. Nothing else.
    let allowed = [
        NONE,
        OFFSET_OUT_OF_RANGE,
        UNKNOWN_TOPIC_OR_PARTITION,
        NOT_LEADER_OR_FOLLOWER,
    ];
    for s in &seen {
        ensure!(s.requests > 0, "{s:?}");
        ensure!(
            s.codes.iter().all(|code| allowed.contains(code)),
            "an answer Kafka would not give here: {s:?}"
        );
        ensure!(
            s.reconnects > 0,
            "two restores close every connection: {s:?}"
        );
    }
    // Every record of the log reads back, offsets dense from the log start.
    let records = fetch_all(&mut c, "a", 0).await?;
    ensure!(!records.is_empty());
    for w in records.windows(2) {
        ensure!(
            w[1].offset == w[0].offset + 1,
            "offsets not dense: {} then {}",
            w[0].offset,
            w[1].offset
        );
    }
    drop(c);
    b.shutdown().await?;
    let reports = gregor::log::check::check_data_dir(b.data_dir(), Default::default())?;
    let problems: Vec<_> = reports.iter().flat_map(|r| r.problems.clone()).collect();
    ensure!(problems.is_empty(), "gregor-check: {problems:?}");
    Ok(())
}
