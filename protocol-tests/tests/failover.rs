//! Leader failover among the brokers of one process, driven through the admin HTTP listener:
//! a stopped broker goes away as in a crash, its partitions and coordinators move to other
//! in-sync replicas with bumped leader epochs, and clients are told so as a Kafka cluster tells
//! them (NOT_LEADER_OR_FOLLOWER with the new leader, KIP-320 epochs, NOT_COORDINATOR); a start
//! brings the broker back and, under auto.leader.rebalance.enable, its preferred leaderships.

mod common;

use anyhow::{ensure, Result};
use common::*;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;

async fn three_brokers() -> Result<TestBroker> {
    three_brokers_rebalancing(true).await
}

/// Three brokers; `auto.leader.rebalance.enable` as given.
async fn three_brokers_rebalancing(rebalance: bool) -> Result<TestBroker> {
    TestBroker::start_with(|c| {
        c.brokers = 3;
        c.default_replication_factor = 3;
        c.admin_listen = Some("127.0.0.1:0".into());
        c.elections.auto_leader_rebalance = rebalance;
    })
    .await
}

/// Three brokers with `topic`, and its partition 0 as Metadata shows it.
async fn three_brokers_with(topic: &str, partitions: i32, rf: i16) -> Result<(TestBroker, Shown)> {
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    let t = creatable(topic, partitions).with_replication_factor(rf);
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    let (_, shown) = shown(&mut c, topic, 0).await?;
    Ok((b, shown))
}

/// One partition as Metadata shows it.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    error_code: i16,
    leader: i32,
    epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline: Vec<i32>,
}

async fn shown(c: &mut Client, topic: &str, p: usize) -> Result<(Vec<i32>, Shown)> {
    let m = metadata(c, METADATA_V, metadata_topics(&[topic]), false).await?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let brokers = m.brokers.iter().map(|b| b.node_id.0).collect();
    let part = &m.topics[0].partitions[p];
    Ok((
        brokers,
        Shown {
            error_code: part.error_code,
            leader: part.leader_id.0,
            epoch: part.leader_epoch,
            replicas: ids(&part.replica_nodes),
            isr: ids(&part.isr_nodes),
            offline: ids(&part.offline_replicas),
        },
    ))
}

async fn admin_ok(b: &TestBroker, method: &str, path: &str) -> Result<String> {
    let (status, body) = b.admin(method, path).await?;
    ensure!(status == 200, "{method} {path}: {status} {body}");
    Ok(body)
}

fn fetch_at_epoch(topic: &str, epoch: i32) -> FetchRequest {
    let p = fetch_partition(0, 0, 1 << 20).with_current_leader_epoch(epoch);
    fetch_request(vec![fetch_topic(topic, vec![p])], 0, 0)
}

/// The admin listener's answers: health, the brokers with their state, 4xx JSON errors.
#[tokio::test]
async fn the_admin_listener_lists_brokers_and_refuses_bad_requests() -> Result<()> {
    let b = three_brokers().await?;
    let body = admin_ok(&b, "GET", "/v1/healthz").await?;
    ensure!(body.contains("\"status\":\"ok\""), "{body}");
    let body = admin_ok(&b, "GET", "/v1/brokers").await?;
    for (id, addr) in (1..=3).zip(&b.addrs) {
        let want = format!("\"id\":{id},\"listen\":\"{addr}\",\"port\":{}", addr.port());
        ensure!(body.contains(&want), "{want} in {body}");
    }
    ensure!(body.matches("\"state\":\"running\"").count() == 3, "{body}");
    for (method, path, want) in [
        ("POST", "/v1/brokers/9/stop", 404),
        ("POST", "/v1/brokers/x/stop", 400),
        ("POST", "/v1/brokers/2/start", 409),
        ("GET", "/v1/brokers/2/stop", 405),
        ("GET", "/v1/nothing", 404),
        ("DELETE", "/v1/healthz", 405),
    ] {
        let (status, body) = b.admin(method, path).await?;
        ensure!(
            status == want && body.starts_with("{\"error\":"),
            "{method} {path}: {status} {body}"
        );
    }
    let body = admin_ok(&b, "POST", "/v1/brokers/2/stop").await?;
    ensure!(body.contains("\"state\":\"stopped\""), "{body}");
    let (status, _) = b.admin("POST", "/v1/brokers/2/stop").await?;
    ensure!(status == 409, "a second stop: {status}");
    let body = admin_ok(&b, "POST", "/v1/brokers/2/start").await?;
    ensure!(body.contains("\"state\":\"running\""), "{body}");
    Ok(())
}

/// A stop closes the broker's connections and listener; its partition moves to the next
/// in-sync replica with the leader epoch bumped and leaves the ISR; produce and fetch elsewhere
/// are told the new leader; records written before and after stay; a start brings the broker
/// back into the ISR and its preferred leadership back with another epoch.
#[tokio::test]
async fn a_stopped_leaders_partitions_move_and_come_back() -> Result<()> {
    let (b, before) = three_brokers_with("fo", 3, 3).await?;
    let old = before.leader;
    ensure!(
        before.epoch == 0 && before.isr == before.replicas && old == before.replicas[0],
        "{before:?}"
    );
    let mut at_old = b.client_of(old).await?;
    ensure!(produce_ok(&mut at_old, "fo", 0, values_batch(&["a"])).await? == 0);

    admin_ok(&b, "POST", &format!("/v1/brokers/{old}/stop")).await?;
    // As in a crash: the open connection is closed and nothing listens any more.
    ensure!(
        at_old
            .request(METADATA_V, MetadataRequest::default())
            .await
            .is_err(),
        "the stopped broker still answers"
    );
    ensure!(
        b.client_of(old).await.is_err(),
        "the stopped broker accepts"
    );

    let new = before.replicas[1];
    let other = before.replicas[2];
    let mut c = b.client_of(other).await?;
    let (brokers, after) = shown(&mut c, "fo", 0).await?;
    ensure!(!brokers.contains(&old) && brokers.len() == 2, "{brokers:?}");
    let want = Shown {
        error_code: NONE,
        leader: new,
        epoch: 1,
        replicas: before.replicas.clone(),
        isr: vec![new, other],
        offline: vec![old],
    };
    ensure!(after == want, "{after:?}");

    // Produce and Fetch to a follower name the new leader and its epoch (KIP-951).
    let r = c
        .request(
            12,
            produce_request(-1, vec![topic_data("fo", vec![(0, values_batch(&["no"]))])]),
        )
        .await?;
    let p = &r.responses[0].partition_responses[0];
    ensure!(p.error_code == NOT_LEADER_OR_FOLLOWER, "{r:?}");
    ensure!(
        (p.current_leader.leader_id.0, p.current_leader.leader_epoch) == (new, 1),
        "{r:?}"
    );
    ensure!(
        r.node_endpoints.len() == 1 && r.node_endpoints[0].node_id.0 == new,
        "{r:?}"
    );
    let fetch16 = fetch_request(
        vec![fetch_topic_by_id(
            topic_id(&mut c, "fo").await?,
            vec![fetch_partition(0, 0, 1 << 20)],
        )],
        0,
        0,
    );
    let r = c.request(16, fetch16).await?;
    let pd = &r.responses[0].partitions[0];
    ensure!(pd.error_code == NOT_LEADER_OR_FOLLOWER, "{r:?}");
    ensure!(
        (
            pd.current_leader.leader_id.0,
            pd.current_leader.leader_epoch
        ) == (new, 1),
        "{r:?}"
    );
    // A follower checks the epoch first (Partition.getLocalLog).
    for (epoch, code) in [
        (0, FENCED_LEADER_EPOCH),
        (2, UNKNOWN_LEADER_EPOCH),
        (1, NOT_LEADER_OR_FOLLOWER),
    ] {
        let r = c.request(FETCH_V, fetch_at_epoch("fo", epoch)).await?;
        let code_got = r.responses[0].partitions[0].error_code;
        ensure!(code_got == code, "follower, epoch {epoch}: {r:?}");
    }

    // The new leader has every record and appends in the new epoch.
    let mut at_new = b.client_of(new).await?;
    ensure!(produce_ok(&mut at_new, "fo", 0, values_batch(&["b"])).await? == 1);
    for (epoch, code) in [
        (0, FENCED_LEADER_EPOCH),
        (2, UNKNOWN_LEADER_EPOCH),
        (1, NONE),
    ] {
        let r = at_new.request(FETCH_V, fetch_at_epoch("fo", epoch)).await?;
        let pd = &r.responses[0].partitions[0];
        ensure!(pd.error_code == code, "leader, epoch {epoch}: {r:?}");
        if code == NONE {
            ensure!(pd.high_watermark == 2, "{pd:?}");
        }
        let lo = list_offsets_request("fo", 0, -1);
        let mut lo = lo;
        lo.topics[0].partitions[0].current_leader_epoch = epoch;
        let r = at_new.request(LIST_OFFSETS_V, lo).await?;
        ensure!(r.topics[0].partitions[0].error_code == code, "{r:?}");
    }
    let ends = offset_for_leader_epoch(&mut at_new, "fo", 1, &[0, 1]).await?;
    ensure!(ends == vec![(NONE, 0, 1), (NONE, 1, 2)], "{ends:?}");

    // The broker comes back: in the ISR again, and the preferred leader once more.
    let body = admin_ok(&b, "POST", &format!("/v1/brokers/{old}/start")).await?;
    ensure!(body.contains("\"state\":\"running\""), "{body}");
    let mut at_old = b.client_of(old).await?;
    let (brokers, back) = shown(&mut at_old, "fo", 0).await?;
    ensure!(brokers == vec![1, 2, 3], "{brokers:?}");
    let want = Shown {
        leader: old,
        epoch: 2,
        isr: vec![new, other, old],
        offline: vec![],
        ..want
    };
    ensure!(back == want, "{back:?}");
    ensure!(produce_ok(&mut at_old, "fo", 0, values_batch(&["c"])).await? == 2);
    let values: Vec<_> = fetch_all(&mut at_old, "fo", 0)
        .await?
        .into_iter()
        .map(|f| f.value)
        .collect();
    ensure!(values.len() == 3, "{values:?}");
    let ends = offset_for_leader_epoch(&mut at_old, "fo", 2, &[0, 1, 2]).await?;
    ensure!(
        ends == vec![(NONE, 0, 1), (NONE, 1, 2), (NONE, 2, 3)],
        "{ends:?}"
    );
    Ok(())
}

/// (error, epoch, end offset) of each asked epoch of partition 0.
async fn offset_for_leader_epoch(
    c: &mut Client,
    topic: &str,
    current: i32,
    epochs: &[i32],
) -> Result<Vec<(i16, i32, i64)>> {
    let mut out = Vec::new();
    for &e in epochs {
        let req = offset_for_leader_epoch_request(topic, 0, current, e);
        let r = c.request(4, req).await?;
        let p = &r.topics[0].partitions[0];
        out.push((p.error_code, p.leader_epoch, p.end_offset));
    }
    Ok(out)
}

/// A partition whose every in-sync replica is stopped is offline (leader -1,
/// LEADER_NOT_AVAILABLE), keeping its last ISR member, and comes back with that broker.
#[tokio::test]
async fn a_partition_without_live_in_sync_replicas_is_offline_until_one_returns() -> Result<()> {
    let (b, before) = three_brokers_with("solo", 1, 1).await?;
    let only = before.leader;
    let mut at = b.client_of(only).await?;
    produce_ok(&mut at, "solo", 0, values_batch(&["kept"])).await?;
    admin_ok(&b, "POST", &format!("/v1/brokers/{only}/stop")).await?;
    let mut c = b.client_of(only % 3 + 1).await?;
    let (_, offline) = shown(&mut c, "solo", 0).await?;
    ensure!(
        offline.error_code == LEADER_NOT_AVAILABLE
            && offline.leader == -1
            && offline.epoch == 1
            && offline.isr == vec![only]
            && offline.offline == vec![only],
        "{offline:?}"
    );
    admin_ok(&b, "POST", &format!("/v1/brokers/{only}/start")).await?;
    let (_, back) = shown(&mut c, "solo", 0).await?;
    ensure!(
        back.error_code == NONE && back.leader == only && back.epoch == 2,
        "{back:?}"
    );
    let mut at = b.client_of(only).await?;
    ensure!(fetch_all(&mut at, "solo", 0).await?.len() == 1);
    Ok(())
}

/// The group coordinator follows the leader of the group's `__consumer_offsets` partition: when
/// its broker stops, FindCoordinator names the new leader, which serves the same group (one copy
/// of the state underneath); when it comes back and takes its leadership back, every group API of
/// the interim coordinator answers NOT_COORDINATOR and only the coordinator lists the group.
#[tokio::test]
async fn the_group_coordinator_moves_with_its_partition() -> Result<()> {
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "gt", 1).await?;
    let (first, _) = find_group_coordinator(&mut c).await?;
    let mut at_first = b.client_of(first).await?;
    let spec = JoinSpec::consumer("grp", &["gt"]);
    let m = stable_member(&mut at_first, &spec, b"a").await?;
    commit_ok(
        &mut at_first,
        "grp",
        &m.member_id,
        m.generation,
        &[("gt", 0, 5, "")],
    )
    .await?;

    admin_ok(&b, "POST", &format!("/v1/brokers/{first}/stop")).await?;
    let mut c = b.client_of(first % 3 + 1).await?;
    let (second, port) = find_group_coordinator(&mut c).await?;
    ensure!(
        second != first,
        "the coordinator stayed on the stopped broker"
    );
    ensure!(
        i32::from(b.addrs[second as usize - 1].port()) == port,
        "{second} {port}"
    );
    let mut at_second = b.client_of(second).await?;
    ensure!(
        hb(&mut at_second, &m).await? == NONE,
        "the group moved with its state"
    );
    ensure!(committed(&mut at_second, "grp", "gt", 0).await? == 5);
    let mut at_third = b.client_of(6 - first - second).await?;
    ensure!(hb(&mut at_third, &m).await? == NOT_COORDINATOR);

    admin_ok(&b, "POST", &format!("/v1/brokers/{first}/start")).await?;
    let (back, _) = find_group_coordinator(&mut at_third).await?;
    ensure!(back == first, "the preferred leader returns: {back}");
    ensure!(hb(&mut at_second, &m).await? == NOT_COORDINATOR);
    let mut at_first = b.client_of(first).await?;
    ensure!(hb(&mut at_first, &m).await? == NONE);
    let commits = [("gt", 0, 6, "")];
    let codes = commit(
        &mut at_second,
        COMMIT_V,
        "grp",
        &m.member_id,
        m.generation,
        None,
        &commits,
    )
    .await?;
    ensure!(
        codes == vec![("gt".to_string(), 0, NOT_COORDINATOR)],
        "{codes:?}"
    );
    for v in [1, 5, 8] {
        let (code, parts) = fetch_offsets(&mut at_second, v, "grp", Some(&[("gt", &[0])])).await?;
        let code = if v < 2 { parts[0].error_code } else { code };
        ensure!(
            code == NOT_COORDINATOR,
            "OffsetFetch v{v}: {code} {parts:?}"
        );
    }
    let d = describe_group(&mut at_second, "grp").await?;
    ensure!(d.error_code == NOT_COORDINATOR, "{d:?}");
    let r = leave(&mut at_second, LEAVE_V, "grp", &[(&m.member_id, None)]).await?;
    ensure!(r.error_code == NOT_COORDINATOR, "{r:?}");
    let listed = |gs: Vec<ListedGroup>| gs.iter().any(|g| g.group_id.as_str() == "grp");
    ensure!(!listed(
        list_groups(&mut at_second, LIST_GROUPS_V, &[], &[]).await?
    ));
    ensure!(listed(
        list_groups(&mut at_first, LIST_GROUPS_V, &[], &[]).await?
    ));
    ensure!(committed(&mut at_first, "grp", "gt", 0).await? == 5);
    Ok(())
}

async fn hb(c: &mut Client, m: &Joined) -> Result<i16> {
    heartbeat(c, HEARTBEAT_V, "grp", &m.member_id, m.generation, None).await
}

/// The coordinator of group "grp": (node id, port).
async fn find_group_coordinator(c: &mut Client) -> Result<(i32, i32)> {
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("grp")]);
    let r = c.request(4, req).await?;
    let k = &r.coordinators[0];
    ensure!(k.error_code == NONE, "{r:?}");
    Ok((k.node_id.0, k.port))
}

/// ElectLeaders of some partitions (None: all) at version `v`: (topic, partition, error) of
/// each result.
async fn elect(
    c: &mut Client,
    v: i16,
    election_type: i8,
    asked: Option<&[(&str, &[i32])]>,
) -> Result<Vec<(String, i32, i16)>> {
    let topic_partitions = asked.map(|a| {
        a.iter()
            .map(|(t, ps)| {
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(name(t))
                    .with_partitions(ps.to_vec())
            })
            .collect()
    });
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(30_000);
    let r = c.request(v, req).await?;
    ensure!(r.error_code == NONE, "v{v}: {r:?}");
    Ok(r.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.to_string(), p.partition_id, p.error_code))
        })
        .collect())
}

/// Stops and starts `broker` (without auto.leader.rebalance.enable its leaderships stay moved).
async fn bounce(b: &TestBroker, broker: i32) -> Result<()> {
    admin_ok(b, "POST", &format!("/v1/brokers/{broker}/stop")).await?;
    admin_ok(b, "POST", &format!("/v1/brokers/{broker}/start")).await?;
    Ok(())
}

/// ElectLeaders as Kafka's controller answers it, at every advertised version: a preferred
/// election moves a partition back to its first replica (v0 knows no other kind), answers
/// ELECTION_NOT_NEEDED where it leads already (left out when every partition is asked for),
/// PREFERRED_LEADER_NOT_AVAILABLE when it cannot lead, UNKNOWN_TOPIC_OR_PARTITION for what does
/// not exist; an unclean election (v1+) lets a live replica outside the ISR lead an offline
/// partition and answers ELIGIBLE_LEADERS_NOT_AVAILABLE when there is none.
#[tokio::test]
async fn elect_leaders_every_version() -> Result<()> {
    let b = three_brokers_rebalancing(false).await?;
    let mut c = b.client().await?;
    let t = creatable("el", 2).with_replication_factor(3);
    create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    let (_, p0) = shown(&mut c, "el", 0).await?;
    let (_, p1) = shown(&mut c, "el", 1).await?;
    let preferred = p0.replicas[0];
    let other = *p1.replicas.iter().find(|&&r| r != preferred).unwrap_or(&0);
    let r = c.request(3, ApiVersionsRequest::default()).await?;
    let k = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ElectLeaders as i16);
    ensure!(
        k.map(|k| (k.min_version, k.max_version)) == Some((0, 2)),
        "{r:?}"
    );
    for v in 0..=2 {
        bounce(&b, preferred).await?;
        let mut c = b.client_of(other).await?;
        let (_, moved) = shown(&mut c, "el", 0).await?;
        ensure!(moved.leader != preferred, "v{v}: {moved:?}");
        let asked: &[(&str, &[i32])] = &[("el", &[0, 9]), ("nope", &[0])];
        let got = elect(&mut c, v, 0, Some(asked)).await?;
        let want = vec![
            ("el".to_string(), 0, NONE),
            ("el".to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
            ("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ];
        ensure!(got == want, "v{v}: {got:?}");
        let (_, back) = shown(&mut c, "el", 0).await?;
        ensure!(
            back.leader == preferred && back.epoch == moved.epoch + 1,
            "v{v}: {back:?}"
        );
        let got = elect(&mut c, v, 0, Some(&[("el", &[0])])).await?;
        ensure!(
            got == vec![("el".to_string(), 0, ELECTION_NOT_NEEDED)],
            "v{v}: {got:?}"
        );
        // Every partition: those that need no election are left out.
        bounce(&b, preferred).await?;
        let got = elect(&mut c, v, 0, None).await?;
        let el: Vec<_> = got.iter().filter(|r| r.0 == "el").collect();
        ensure!(el == vec![&("el".to_string(), 0, NONE)], "v{v}: {got:?}");
    }

    // Unclean elections (v1+): broker `a` stops, then `bb`; `bb` comes back outside the ISR.
    // The third broker, never stopped, is asked.
    let (a, bb) = (preferred, other);
    let mut c = b.client_of(6 - a - bb).await?;
    for v in 1..=2 {
        let topic = format!("uncl{v}");
        let t = creatable(&topic, -1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                create_topics_request::CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(a), BrokerId(bb)]),
            ]);
        let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
        ensure!(r[0].error_code == NONE, "{r:?}");
        admin_ok(&b, "POST", &format!("/v1/brokers/{bb}/stop")).await?;
        admin_ok(&b, "POST", &format!("/v1/brokers/{a}/stop")).await?;
        let asked: &[(&str, &[i32])] = &[(&topic, &[0])];
        let got = elect(&mut c, v, 1, Some(asked)).await?;
        ensure!(
            got == vec![(topic.clone(), 0, ELIGIBLE_LEADERS_NOT_AVAILABLE)],
            "v{v}: {got:?}"
        );
        let got = elect(&mut c, v, 0, Some(asked)).await?;
        ensure!(
            got == vec![(topic.clone(), 0, PREFERRED_LEADER_NOT_AVAILABLE)],
            "v{v}: {got:?}"
        );
        admin_ok(&b, "POST", &format!("/v1/brokers/{bb}/start")).await?;
        let (_, offline) = shown(&mut c, &topic, 0).await?;
        ensure!(
            offline.leader == -1 && offline.isr == vec![a],
            "v{v}: {offline:?}"
        );
        let got = elect(&mut c, v, 1, Some(asked)).await?;
        ensure!(got == vec![(topic.clone(), 0, NONE)], "v{v}: {got:?}");
        let (_, led) = shown(&mut c, &topic, 0).await?;
        ensure!(led.leader == bb && led.isr == vec![bb], "v{v}: {led:?}");
        let got = elect(&mut c, v, 1, Some(asked)).await?;
        ensure!(
            got == vec![(topic.clone(), 0, ELECTION_NOT_NEEDED)],
            "v{v}: {got:?}"
        );
        admin_ok(&b, "POST", &format!("/v1/brokers/{a}/start")).await?;
    }
    Ok(())
}
