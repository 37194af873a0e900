//! The test control plane on the admin HTTP listener: fault rules (an error answered as Kafka
//! answers it, a connection closed before or after the request ran, a delay, a black hole), the
//! request journal, and the rule that an idle control plane changes nothing a client sees.
//!
//! Kafka has no control plane: what is calibrated is the answer a client gets, which is the one
//! Kafka's `getErrorResponse` builds for the same error (see `protocol::error_response`).

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::*;
use serde_json::{json, Value};

async fn controlled() -> Result<TestBroker> {
    TestBroker::start_with(|c| c.admin_listen = Some("127.0.0.1:0".into())).await
}

async fn arm(b: &TestBroker, rule: Value) -> Result<Value> {
    let (status, answer) = b.admin_json("POST", "/v1/faults", rule).await?;
    ensure!(status == 200, "arming: {status} {answer}");
    Ok(answer)
}

async fn faults(b: &TestBroker) -> Result<Vec<Value>> {
    let (status, answer) = b.admin_json("GET", "/v1/faults", Value::Null).await?;
    ensure!(status == 200, "{status} {answer}");
    Ok(answer["faults"].as_array().cloned().unwrap_or_default())
}

async fn journal(b: &TestBroker, query: &str) -> Result<Vec<Value>> {
    let (status, answer) = b
        .admin_json("GET", &format!("/v1/journal?{query}"), Value::Null)
        .await?;
    ensure!(status == 200, "{status} {answer}");
    Ok(answer["entries"].as_array().cloned().unwrap_or_default())
}

fn apis_of(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["api"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test]
async fn an_injected_error_answers_every_partition_then_the_rule_is_spent() -> Result<()> {
    let b = controlled().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "t", 2).await?;
    arm(
        &b,
        json!({"api": "Produce", "topic": "t", "times": 1,
               "action": "error", "error": "NOT_LEADER_OR_FOLLOWER"}),
    )
    .await?;
    let both = || {
        produce_request(
            -1,
            vec![topic_data(
                "t",
                vec![(0, values_batch(&["a"])), (1, values_batch(&["b"]))],
            )],
        )
    };
    let resp = c.request(PRODUCE_V, both()).await?;
    let answered: Vec<(i32, i16, i64)> = resp.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    ensure!(
        answered
            == [
                (0, NOT_LEADER_OR_FOLLOWER, -1),
                (1, NOT_LEADER_OR_FOLLOWER, -1)
            ],
        "{resp:?}"
    );
    // Spent: the retry goes through, and the failed attempt wrote nothing.
    let resp = c.request(PRODUCE_V, both()).await?;
    for p in &resp.responses[0].partition_responses {
        ensure!((p.error_code, p.base_offset) == (NONE, 0), "{resp:?}");
    }
    let rules = faults(&b).await?;
    ensure!(rules.len() == 1, "{rules:?}");
    ensure!(
        rules[0]["matched"] == 2 && rules[0]["fired"] == 1,
        "{rules:?}"
    );
    ensure!(rules[0]["id"] == 1 && rules[0]["error"] == "NOT_LEADER_OR_FOLLOWER");
    Ok(())
}

#[tokio::test]
async fn close_after_writes_and_loses_the_answer_close_before_writes_nothing() -> Result<()> {
    let b = controlled().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "t", 1).await?;
    arm(
        &b,
        json!({"api": "Produce", "times": 1, "action": "close_after"}),
    )
    .await?;
    let req = produce_request(-1, vec![topic_data("t", vec![(0, values_batch(&["x"]))])]);
    c.send_request(PRODUCE_V, &req).await?;
    c.expect_closed().await?;
    let mut c = b.client().await?;
    ensure!(
        fetch_all(&mut c, "t", 0).await?.len() == 1,
        "the write happened"
    );

    arm(
        &b,
        json!({"api": "Produce", "times": 1, "action": "close_before"}),
    )
    .await?;
    c.send_request(PRODUCE_V, &req).await?;
    c.expect_closed().await?;
    let mut c = b.client().await?;
    ensure!(
        fetch_all(&mut c, "t", 0).await?.len() == 1,
        "no second write"
    );
    // Both spent: the next produce is answered.
    ensure!(produce_ok(&mut c, "t", 0, values_batch(&["y"])).await? == 1);
    Ok(())
}

#[tokio::test]
async fn a_black_hole_answers_nothing_on_that_connection_until_the_client_closes() -> Result<()> {
    let b = controlled().await?;
    arm(
        &b,
        json!({"api": "Metadata", "client_id": "hole", "action": "black_hole"}),
    )
    .await?;
    let mut c = b.client().await?;
    c.client_id = Some("hole".into());
    c.send_request(METADATA_V, &MetadataRequest::default())
        .await?;
    // Neither this request nor the next one on the connection is answered, nor is it closed.
    ensure!(c.try_read_frame(Duration::from_millis(300)).await.is_err());
    c.client_id = Some("other".into());
    c.send_request(0, &ApiVersionsRequest::default()).await?;
    ensure!(c.try_read_frame(Duration::from_millis(300)).await.is_err());
    // Other clients are served.
    let mut other = b.client().await?;
    metadata(&mut other, METADATA_V, None, false).await?;
    let entries = journal(&b, "client_id=hole").await?;
    ensure!(entries.len() == 1, "{entries:?}");
    ensure!(entries[0]["outcome"] == "black_hole", "{entries:?}");
    ensure!(entries[0]["fault"]["rule"] == 1, "{entries:?}");
    drop(c);
    // The rule stays armed until removed; then the same client is answered again.
    let (status, _) = b.admin_json("DELETE", "/v1/faults/1", Value::Null).await?;
    ensure!(status == 200);
    let (status, _) = b.admin_json("DELETE", "/v1/faults/1", Value::Null).await?;
    ensure!(status == 404);
    let mut c = b.client().await?;
    c.client_id = Some("hole".into());
    metadata(&mut c, METADATA_V, None, false).await?;
    Ok(())
}

#[tokio::test]
async fn a_delay_still_answers_and_group_rules_match_the_group_named() -> Result<()> {
    let b = controlled().await?;
    let mut c = b.client().await?;
    arm(
        &b,
        json!({"api": "ApiVersions", "times": 1, "action": "delay", "delay_ms": 20}),
    )
    .await?;
    let v = c.request(2, ApiVersionsRequest::default()).await?;
    ensure!(v.error_code == NONE);
    arm(
        &b,
        json!({"api": "FindCoordinator", "group": "g",
               "action": "error", "error": "COORDINATOR_LOAD_IN_PROGRESS"}),
    )
    .await?;
    let find = |key: &str| FindCoordinatorRequest::default().with_coordinator_keys(vec![s(key)]);
    let r = c.request(4, find("g")).await?;
    ensure!(r.coordinators[0].error_code == 14, "{r:?}");
    ensure!(r.coordinators[0].node_id.0 == -1, "{r:?}");
    let r = c.request(4, find("h")).await?;
    ensure!(r.coordinators[0].error_code == NONE, "{r:?}");
    let rules = faults(&b).await?;
    ensure!(
        rules[0]["fired"] == 1 && rules[1]["fired"] == 1,
        "{rules:?}"
    );
    // Rules the broker cannot honour are refused with a reason.
    let (status, answer) = b
        .admin_json(
            "POST",
            "/v1/faults",
            json!({"api": "DescribeConfigs", "action": "error", "error": "NOT_CONTROLLER"}),
        )
        .await?;
    ensure!(status == 400 && answer["error"].is_string(), "{answer}");
    let (status, _) = b.admin_json("DELETE", "/v1/faults", Value::Null).await?;
    ensure!(status == 200 && faults(&b).await?.is_empty());
    Ok(())
}

/// A storage rule armed in the running broker slows the writes of the partition it names (a
/// slow disk): the produce is still acknowledged and read back; the other partition's writes do
/// not meet it. Gregor only: Kafka has no way to slow its disk from outside.
#[tokio::test]
async fn a_storage_rule_slows_its_partitions_writes_and_they_still_succeed() -> Result<()> {
    let b = controlled().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "slow", 2).await?;
    arm(
        &b,
        json!({"storage": "write", "topic": "slow", "partition": 0,
               "action": "delay", "delay_ms": 20}),
    )
    .await?;
    for p in [0, 1] {
        ensure!(produce_ok(&mut c, "slow", p, values_batch(&["x", "y"])).await? == 0);
    }
    ensure!(fetch_all(&mut c, "slow", 0).await?.len() == 2);
    let rules = faults(&b).await?;
    let fired = rules[0]["fired"].as_u64().unwrap_or(0);
    ensure!(fired > 0 && rules[0]["matched"] == fired, "{rules:?}");
    // A storage rule's action is a delay; a request's fields mean nothing to it.
    for bad in [
        json!({"storage": "write", "action": "close_after"}),
        json!({"storage": "write", "api": "Produce", "action": "delay", "delay_ms": 5}),
    ] {
        let (status, answer) = b.admin_json("POST", "/v1/faults", bad).await?;
        ensure!(status == 400 && answer["error"].is_string(), "{answer}");
    }
    Ok(())
}

#[tokio::test]
async fn the_journal_shows_what_a_client_sent_and_what_it_was_answered() -> Result<()> {
    let b = controlled().await?;
    let mut admin = b.client().await?;
    create_topic(&mut admin, "t", 1).await?;
    let mut c = b.client().await?;
    c.client_id = Some("journal-app".into());
    let hello = ApiVersionsRequest::default()
        .with_client_software_name(s("gregor-tests"))
        .with_client_software_version(s("1.0"));
    c.request(3, hello).await?;
    metadata(&mut c, METADATA_V, metadata_topics(&["t"]), false).await?;
    produce_ok(&mut c, "t", 0, values_batch(&["a"])).await?;
    arm(
        &b,
        json!({"api": "Produce", "client_id": "journal-app", "times": 1,
               "action": "error", "error": "NOT_LEADER_OR_FOLLOWER"}),
    )
    .await?;
    let p = produce(&mut c, "t", 0, values_batch(&["b"])).await?;
    ensure!(p.error_code == NOT_LEADER_OR_FOLLOWER);
    let absent = produce(&mut c, "nope", 0, values_batch(&["c"])).await?;
    ensure!(absent.error_code == UNKNOWN_TOPIC_OR_PARTITION);

    let entries = journal(&b, "client_id=journal-app").await?;
    ensure!(
        apis_of(&entries) == ["ApiVersions", "Metadata", "Produce", "Produce", "Produce"],
        "{entries:?}"
    );
    let first = &entries[0];
    ensure!(
        first["api_version"] == 3 && first["correlation_id"] == 1,
        "{first}"
    );
    ensure!(first["broker"] == 1 && first["peer"].is_string(), "{first}");
    for e in &entries {
        ensure!(e["client_software_name"] == "gregor-tests", "{e}");
        ensure!(e["client_software_version"] == "1.0", "{e}");
        ensure!(e["connection_id"] == first["connection_id"], "{e}");
    }
    ensure!(entries[1]["topics"] == json!([{"topic": "t", "partitions": []}]));
    let ok = &entries[2];
    ensure!(
        ok["topics"] == json!([{"topic": "t", "partitions": [0]}]),
        "{ok}"
    );
    ensure!(
        ok["error_codes"] == json!([0]) && ok["fault"].is_null(),
        "{ok}"
    );
    let injected = &entries[3];
    ensure!(
        injected["errors"] == json!(["NOT_LEADER_OR_FOLLOWER"]),
        "{injected}"
    );
    ensure!(injected["fault"]["rule"] == 1, "{injected}");
    ensure!(entries[4]["errors"] == json!(["UNKNOWN_TOPIC_OR_PARTITION"]));
    // Filters: by API and the most recent N.
    let last = journal(&b, "client_id=journal-app&api=Produce&limit=1").await?;
    ensure!(
        last.len() == 1 && last[0]["seq"] == entries[4]["seq"],
        "{last:?}"
    );
    let other = journal(&b, "api=CreateTopics").await?;
    ensure!(
        other.len() == 1 && other[0]["client_id"] == CLIENT_ID,
        "{other:?}"
    );
    let (status, _) = b.admin("GET", "/v1/journal?api=NoSuchApi").await?;
    ensure!(status == 400);
    Ok(())
}

#[tokio::test]
async fn the_journal_keeps_the_most_recent_journal_size_requests() -> Result<()> {
    let b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.journal_size = 3;
    })
    .await?;
    let mut c = b.client().await?;
    for _ in 0..5 {
        c.request(0, ApiVersionsRequest::default()).await?;
    }
    let entries = journal(&b, "").await?;
    let ids: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["correlation_id"].as_i64())
        .collect();
    ensure!(ids == [3, 4, 5], "{entries:?}");
    Ok(())
}

/// What a client sees of one scripted session, without what differs between two brokers by
/// design (cluster id, ports, topic ids, timestamps).
async fn scripted_session(b: &TestBroker) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    let mut c = b.client().await?;
    let versions = c.request(2, ApiVersionsRequest::default()).await?;
    seen.push(format!("{:?}", versions.api_keys));
    let created = create_topics(&mut c, CREATE_TOPICS_V, vec![creatable("t", 2)], false).await?;
    seen.push(format!(
        "{:?}",
        created.iter().map(|t| t.error_code).collect::<Vec<_>>()
    ));
    for (partition, values) in [(0, &["a", "b"][..]), (1, &["c"][..]), (0, &["d"][..])] {
        let p = produce(&mut c, "t", partition, values_batch(values)).await?;
        seen.push(format!("{} {}", p.error_code, p.base_offset));
    }
    let missing = produce(&mut c, "missing", 0, values_batch(&["x"])).await?;
    seen.push(format!("{}", missing.error_code));
    for partition in [0, 1] {
        let records = fetch_all(&mut c, "t", partition).await?;
        let values: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.value.clone()))
            .collect();
        seen.push(format!("{values:?}"));
    }
    let m = metadata(
        &mut c,
        METADATA_V,
        metadata_topics(&["t", "missing"]),
        false,
    )
    .await?;
    for t in &m.topics {
        seen.push(format!(
            "{:?} {} {}",
            t.name,
            t.error_code,
            t.partitions.len()
        ));
    }
    let offsets = list_offset(&mut c, "t", 0, -1).await?;
    seen.push(format!("{offsets:?}"));
    Ok(seen)
}

/// Issue 16's rule: with the admin listener on, no rule armed and the clock real, the broker
/// answers exactly as without it.
#[tokio::test]
async fn an_idle_control_plane_changes_nothing_a_client_sees() -> Result<()> {
    let plain = start_broker().await?;
    let controlled = controlled().await?;
    let without = scripted_session(&plain).await?;
    let with = scripted_session(&controlled).await?;
    ensure!(without == with, "without: {without:?}\nwith: {with:?}");
    ensure!(
        !journal(&controlled, "").await?.is_empty(),
        "the journal recorded"
    );
    Ok(())
}

/// `--clock manual`: the broker's clock stands at the wall clock of the start until advanced;
/// an advance ends what became due at once: the initial rebalance delay a join waits out, then
/// a 45 s session (the timers wake on the advance, no tick to wait for).
#[tokio::test]
async fn a_manual_clock_stands_still_until_advanced_and_an_advance_acts_at_once() -> Result<()> {
    let b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.manual_clock = true;
        c.group.initial_rebalance_delay_ms = 3_000;
    })
    .await?;
    let (_, clock) = b.admin_json("GET", "/v1/clock", Value::Null).await?;
    ensure!(clock["mode"] == "manual", "{clock}");
    let start = clock["now_ms"].as_i64().unwrap_or_default();
    let mut c = b.client().await?;
    create_topic(&mut c, "t", 1).await?;
    let mut spec = JoinSpec::consumer("g", &["t"]);
    spec.session_ms = 45_000;
    let id = member_id_for(&mut c, JOIN_V, &spec).await?;
    let spec = spec.member(&id);
    let join = send_join(&mut c, JOIN_V, &spec).await?;
    // The join waits for group.initial.rebalance.delay.ms of the broker's time, which stands.
    ensure!(c.try_read_frame(Duration::from_millis(300)).await.is_err());
    let (status, _) = b
        .admin_json("POST", "/v1/clock/advance", json!({"ms": 3_000}))
        .await?;
    ensure!(status == 200);
    let joined = read_join(&mut c, JOIN_V, join).await?;
    ensure!(
        joined.error_code == NONE && joined.leader.as_str() == id,
        "{joined:?}"
    );
    let synced = sync(
        &mut c,
        SYNC_V,
        "g",
        &id,
        joined.generation_id,
        None,
        &[(&id, b"")],
    )
    .await?;
    ensure!(synced.error_code == NONE, "{synced:?}");
    ensure!(describe_group(&mut c, "g").await?.members.len() == 1);

    // 46 s past the last heartbeat: the member is gone, with no wait for a timer tick beyond
    // the broker noticing (bounded by the read timeout, not slept for).
    let (_, after) = b
        .admin_json("POST", "/v1/clock/advance", json!({"ms": 46_000}))
        .await?;
    ensure!(after["now_ms"].as_i64() == Some(start + 49_000), "{after}");
    let mut gone = false;
    for _ in 0..200 {
        let g = describe_group(&mut c, "g").await?;
        if g.members.is_empty() {
            ensure!(g.group_state.as_str() == "Empty", "{g:?}");
            gone = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    ensure!(
        gone,
        "the member outlived its session on the advanced clock"
    );
    let hb = heartbeat(&mut c, 4, "g", &id, joined.generation_id, None).await?;
    ensure!(hb == UNKNOWN_MEMBER_ID, "{hb}");
    let (_, clock) = b.admin_json("GET", "/v1/clock", Value::Null).await?;
    ensure!(
        clock["now_ms"] == after["now_ms"],
        "real time moved it: {clock}"
    );
    Ok(())
}

#[tokio::test]
async fn the_system_clock_is_not_advanced_and_a_manual_one_needs_the_admin_listener() -> Result<()>
{
    let b = controlled().await?;
    let (status, answer) = b
        .admin_json("POST", "/v1/clock/advance", json!({"ms": 1}))
        .await?;
    ensure!(status == 409, "{answer}");
    let (_, clock) = b.admin_json("GET", "/v1/clock", Value::Null).await?;
    ensure!(clock["mode"] == "system", "{clock}");
    let src = gregor::config::Sources {
        clock: Some("manual".into()),
        ..Default::default()
    };
    ensure!(gregor::Config::from_settings(Default::default(), &src).is_err());
    Ok(())
}

async fn reset(b: &TestBroker, body: Value) -> Result<Value> {
    let (status, answer) = b.admin_json("POST", "/v1/reset", body).await?;
    ensure!(status == 200, "reset: {status} {answer}");
    Ok(answer)
}

async fn txn_state(c: &mut Client, id: &str) -> Result<(i16, String)> {
    let req =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let r = c.request(0, req).await?;
    let t = &r.transaction_states[0];
    Ok((t.error_code, t.transaction_state.to_string()))
}

/// `POST /v1/reset`: topics, groups, committed offsets, transactions and producer state are
/// gone, the client's connection stays and sees what Kafka gives after such removals; the data
/// directory checks clean.
#[tokio::test]
async fn reset_removes_topics_groups_offsets_and_transactions_clients_stay_connected() -> Result<()>
{
    let b = controlled().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "a", 2).await?;
    create_topic(&mut c, "b", 1).await?;
    produce_ok(&mut c, "a", 1, values_batch(&["x", "y"])).await?;
    let (pid, epoch) = init_producer_id(&mut c).await?;
    produce_ok(&mut c, "b", 0, idempotent_batch(&["i"], pid, epoch, 0)).await?;
    let mut spec = JoinSpec::consumer("g", &["a"]);
    spec.session_ms = 45_000;
    let m = stable_member(&mut c, &spec, b"").await?;
    commit_ok(&mut c, "g", &m.member_id, m.generation, &[("a", 1, 2, "")]).await?;
    let (tpid, tepoch) = init_transactional(&mut c, "tx").await?;
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
        .with_v3_and_below_producer_id(ProducerId(tpid))
        .with_v3_and_below_producer_epoch(tepoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name("a"))
                .with_partitions(vec![0]),
        ]);
    c.request(3, add).await?;
    ensure!(txn_state(&mut c, "tx").await?.1 == "Ongoing");

    let summary = reset(&b, Value::Null).await?;
    eprintln!("reset: {summary}");
    ensure!(summary["topics_deleted"] == 2, "{summary}");
    ensure!(summary["groups_deleted"] == 1, "{summary}");
    ensure!(summary["not_reset"] == json!([]), "{summary}");

    // The same connection: the topics are unknown, the group and its offsets gone, the member
    // expired, the transaction no longer open.
    let m2 = metadata(&mut c, METADATA_V, metadata_topics(&["a", "b"]), false).await?;
    for t in &m2.topics {
        ensure!(t.error_code == UNKNOWN_TOPIC_OR_PARTITION, "{t:?}");
    }
    let hb = heartbeat(&mut c, 4, "g", &m.member_id, m.generation, None).await?;
    ensure!(hb == UNKNOWN_MEMBER_ID, "{hb}");
    ensure!(list_groups(&mut c, 4, &[], &[]).await?.is_empty());
    let (code, state) = txn_state(&mut c, "tx").await?;
    ensure!(
        code == 105,
        "TRANSACTIONAL_ID_NOT_FOUND, not {code} {state}"
    );
    // A topic of the same name starts afresh, and nothing of the group's offsets comes back.
    create_topic(&mut c, "a", 2).await?;
    ensure!(produce_ok(&mut c, "a", 1, values_batch(&["z"])).await? == 0);
    ensure!(committed(&mut c, "g", "a", 1).await? == -1);
    let mut b = b;
    b.shutdown().await?;
    let reports = gregor::log::check::check_data_dir(b.data_dir(), Default::default())?;
    let problems: Vec<_> = reports.iter().flat_map(|r| r.problems.clone()).collect();
    ensure!(problems.is_empty(), "gregor-check: {problems:?}");
    Ok(())
}

#[tokio::test]
async fn reset_keep_topics_empties_them_and_keeps_their_ids() -> Result<()> {
    let b = controlled().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "kept", 1).await?;
    produce_ok(&mut c, "kept", 0, values_batch(&["a", "b", "c"])).await?;
    let id = topic_id(&mut c, "kept").await?;
    let summary = reset(&b, json!({"keep_topics": true})).await?;
    ensure!(
        summary["topics_emptied"] == 1 && summary["topics_deleted"] == 0,
        "{summary}"
    );
    ensure!(topic_id(&mut c, "kept").await? == id);
    let earliest = list_offset(&mut c, "kept", 0, -2).await?;
    ensure!(earliest.offset == 3, "{earliest:?}");
    ensure!(
        fetch_all(&mut c, "kept", 0).await.is_err(),
        "offset 0 is gone"
    );
    let (status, _) = b
        .admin_json("POST", "/v1/reset", json!({"keep_topics": "yes"}))
        .await?;
    ensure!(status == 400);
    Ok(())
}

#[tokio::test]
async fn with_an_admin_token_every_request_needs_it() -> Result<()> {
    let b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.admin_token = Some("s3cret".into());
    })
    .await?;
    for token in [None, Some("wrong"), Some("s3cret2"), Some("")] {
        let (status, _) = b.admin_as(token, "GET", "/v1/healthz", "").await?;
        ensure!(status == 401, "{token:?}: {status}");
        let rule = r#"{"api": "Produce", "action": "close_before"}"#;
        let (status, _) = b.admin_as(token, "POST", "/v1/faults", rule).await?;
        ensure!(status == 401, "{token:?}: {status}");
    }
    ensure!(faults(&b).await?.is_empty(), "nothing was armed");
    let (status, _) = b.admin_as(Some("s3cret"), "GET", "/v1/healthz", "").await?;
    ensure!(status == 200);
    Ok(())
}

/// `GET /v1/await`: answers as soon as the condition holds while the client makes it so
/// (concurrently), and 408 with what it saw when it does not hold in time.
#[tokio::test]
async fn await_answers_when_the_condition_holds_or_408_with_what_it_saw() -> Result<()> {
    let b = TestBroker::start_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".into());
        c.group.initial_rebalance_delay_ms = 0;
    })
    .await?;
    let mut c = b.client().await?;
    let (status, answer) = b
        .admin_json("GET", "/v1/await?topic=w&timeout_ms=20", Value::Null)
        .await?;
    ensure!(
        status == 408 && answer["observed"]["exists"] == false,
        "{answer}"
    );

    let (waited, created) = tokio::join!(
        b.admin_json("GET", "/v1/await?topic=w&partitions=2", Value::Null),
        create_topic(&mut c, "w", 2)
    );
    created?;
    let (status, answer) = waited?;
    ensure!(
        status == 200 && answer["observed"]["partitions"] == 2,
        "{answer}"
    );

    let (waited, produced) = tokio::join!(
        b.admin_json(
            "GET",
            "/v1/await?topic=w&partition=1&high_watermark=2",
            Value::Null
        ),
        produce_ok(&mut c, "w", 1, values_batch(&["a", "b"]))
    );
    produced?;
    let (status, answer) = waited?;
    ensure!(
        status == 200 && answer["observed"]["high_watermark"] == 2,
        "{answer}"
    );
    let (status, answer) = b
        .admin_json(
            "GET",
            "/v1/await?topic=w&partition=1&last_stable_offset=2&timeout_ms=0",
            Value::Null,
        )
        .await?;
    ensure!(status == 200, "{answer}");

    let spec = JoinSpec::consumer("wg", &["w"]);
    let (waited, joined) = tokio::join!(
        b.admin_json(
            "GET",
            "/v1/await?group=wg&state=stable&members=1",
            Value::Null
        ),
        stable_member(&mut c, &spec, b"")
    );
    let m = joined?;
    let (status, answer) = waited?;
    ensure!(
        status == 200 && answer["observed"]["state"] == "Stable",
        "{answer}"
    );

    let (waited, committed) = tokio::join!(
        b.admin_json(
            "GET",
            "/v1/await?group=wg&topic=w&partition=1&committed_offset=2",
            Value::Null
        ),
        commit_ok(&mut c, "wg", &m.member_id, m.generation, &[("w", 1, 2, "")])
    );
    committed?;
    let (status, answer) = waited?;
    ensure!(
        status == 200 && answer["observed"]["committed_offset"] == 2,
        "{answer}"
    );
    let (status, answer) = b
        .admin_json(
            "GET",
            "/v1/await?group=wg&members=2&timeout_ms=20",
            Value::Null,
        )
        .await?;
    ensure!(
        status == 408 && answer["observed"]["members"] == 1,
        "{answer}"
    );
    let (status, _) = b.admin("GET", "/v1/await?state=Stable").await?;
    ensure!(status == 400);
    Ok(())
}
