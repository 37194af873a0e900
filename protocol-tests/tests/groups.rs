//! Classic consumer groups over the wire: rebalances, heartbeats, session expiry, member and
//! generation checks, static membership, batched LeaveGroup, committed offsets (and their
//! persistence), DeleteGroups and OffsetDelete, as Kafka's group coordinator behaves.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::*;
use kafka_protocol::messages::*;

const TOPIC: &str = "grouped";

/// A member of a test group, on a connection of its own.
struct Member {
    c: Client,
    spec: JoinSpec,
    id: String,
    generation: i32,
}

impl Member {
    fn instance(&self) -> Option<&str> {
        self.spec.instance.as_deref()
    }

    async fn heartbeat(&mut self) -> Result<i16> {
        let (group, id, inst) = (
            self.spec.group.clone(),
            self.id.clone(),
            self.spec.instance.clone(),
        );
        heartbeat(
            &mut self.c,
            HEARTBEAT_V,
            &group,
            &id,
            self.generation,
            inst.as_deref(),
        )
        .await
    }
}

/// Heartbeats `m` until the answer is not NONE (at most ~2 s); returns that answer.
async fn heartbeat_until_error(m: &mut Member) -> Result<i16> {
    for _ in 0..100 {
        let code = m.heartbeat().await?;
        if code != NONE {
            return Ok(code);
        }
        sleep_ms(20).await;
    }
    Ok(NONE)
}

/// Adds a member to the group of `members` (all Stable): the new member joins, the others learn
/// of the rebalance by heartbeat and rejoin, the leader assigns each member its own id as bytes.
/// Checks Kafka's rebalance: same new generation for all, one leader that alone gets the member
/// list, followers wait in SyncGroup for the leader's assignment.
async fn add_member(b: &TestBroker, members: &mut Vec<Member>, spec: JoinSpec) -> Result<()> {
    let mut c = b.client().await?;
    let id = member_id_for(&mut c, JOIN_V, &spec).await?;
    if members.is_empty() {
        let j = join(&mut c, JOIN_V, &spec.clone().member(&id)).await?;
        ensure!(
            j.error_code == NONE && j.leader == j.member_id,
            "first member: {j:?}"
        );
        let id = j.member_id.to_string();
        let r = sync(
            &mut c,
            SYNC_V,
            &spec.group,
            &id,
            j.generation_id,
            spec.instance.as_deref(),
            &[(&id, id.as_bytes())],
        )
        .await?;
        ensure!(
            r.error_code == NONE && r.assignment.as_ref() == id.as_bytes(),
            "{r:?}"
        );
        members.push(Member {
            c,
            spec,
            id,
            generation: j.generation_id,
        });
        return Ok(());
    }
    let new_req = send_join(&mut c, JOIN_V, &spec.clone().member(&id)).await?;
    let code = heartbeat_until_error(&mut members[0]).await?;
    ensure!(
        code == REBALANCE_IN_PROGRESS,
        "heartbeat while a member joins: {code}"
    );
    let old_generation = members[0].generation;
    let mut reqs = Vec::new();
    for m in members.iter_mut() {
        let spec = m.spec.clone().member(&m.id);
        reqs.push(send_join(&mut m.c, JOIN_V, &spec).await?);
    }
    let mut joins = Vec::new();
    for (m, req) in members.iter_mut().zip(reqs) {
        joins.push(read_join(&mut m.c, JOIN_V, req).await?);
    }
    let j = read_join(&mut c, JOIN_V, new_req).await?;
    ensure!(j.error_code == NONE, "new member: {j:?}");
    members.push(Member {
        c,
        spec,
        id: j.member_id.to_string(),
        generation: j.generation_id,
    });
    joins.push(j);
    let generation = old_generation + 1;
    for (m, j) in members.iter_mut().zip(&joins) {
        ensure!(
            j.error_code == NONE && j.generation_id == generation,
            "rejoin of {}: {j:?}",
            m.id
        );
        ensure!(
            j.member_id.as_str() == m.id && j.leader == joins[0].leader,
            "{j:?}"
        );
        m.generation = generation;
    }
    let leader = joins[0].leader.to_string();
    for (m, j) in members.iter().zip(&joins) {
        if m.id == leader {
            let mut listed: Vec<String> =
                j.members.iter().map(|x| x.member_id.to_string()).collect();
            let mut all: Vec<String> = members.iter().map(|x| x.id.clone()).collect();
            listed.sort();
            all.sort();
            ensure!(listed == all, "the leader's member list: {j:?}");
        } else {
            ensure!(
                j.members.is_empty(),
                "a follower got the member list: {j:?}"
            );
        }
    }
    // Followers first: they wait until the leader's SyncGroup.
    let group = members[0].spec.group.clone();
    let mut sync_reqs = Vec::new();
    for m in members.iter_mut().filter(|m| m.id != leader) {
        let req = sync_request(
            SYNC_V,
            &group,
            &m.id,
            generation,
            m.spec.instance.as_deref(),
            &[],
        );
        sync_reqs.push(Some(m.c.send_request(SYNC_V, &req).await?));
    }
    for m in members.iter_mut().filter(|m| m.id != leader) {
        ensure!(
            m.c.try_read_frame(Duration::from_millis(200))
                .await
                .is_err(),
            "a follower's SyncGroup was answered before the leader's"
        );
    }
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let assignments: Vec<(&str, &[u8])> = ids.iter().map(|i| (i.as_str(), i.as_bytes())).collect();
    let lm = members
        .iter_mut()
        .find(|m| m.id == leader)
        .context("leader is no member")?;
    let inst = lm.spec.instance.clone();
    let r = sync(
        &mut lm.c,
        SYNC_V,
        &group,
        &leader,
        generation,
        inst.as_deref(),
        &assignments,
    )
    .await?;
    ensure!(
        r.error_code == NONE && r.assignment.as_ref() == leader.as_bytes(),
        "leader sync: {r:?}"
    );
    for (m, req) in members.iter_mut().filter(|m| m.id != leader).zip(sync_reqs) {
        let r =
            m.c.read_response::<SyncGroupRequest>(SYNC_V, req.unwrap())
                .await?;
        ensure!(
            r.error_code == NONE && r.assignment.as_ref() == m.id.as_bytes(),
            "follower sync: {r:?}"
        );
    }
    Ok(())
}

async fn group_of(b: &TestBroker, specs: Vec<JoinSpec>) -> Result<Vec<Member>> {
    let mut members = Vec::new();
    for spec in specs {
        add_member(b, &mut members, spec).await?;
    }
    Ok(members)
}

#[tokio::test]
async fn two_members_rebalance_to_generation_two() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "pair";
    let members = group_of(
        &b,
        vec![
            JoinSpec::consumer(g, &[TOPIC]),
            JoinSpec::consumer(g, &[TOPIC]),
        ],
    )
    .await?;
    ensure!(members.iter().all(|m| m.generation == 2), "generations");
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.group_state.as_str() == "Stable" && d.members.len() == 2,
        "{d:?}"
    );
    for dm in &d.members {
        ensure!(
            dm.member_assignment.as_ref() == dm.member_id.as_bytes(),
            "assignment: {dm:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn heartbeat_and_commits_during_a_rebalance() -> Result<()> {
    let (b, _c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "rebalancing";
    let mut ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    let mut nc = b.client().await?;
    let spec = JoinSpec::consumer(g, &[TOPIC]);
    let id = member_id_for(&mut nc, JOIN_V, &spec).await?;
    let new_req = send_join(&mut nc, JOIN_V, &spec.clone().member(&id)).await?;
    let a = &mut ms[0];
    ensure!(
        heartbeat_until_error(a).await? == REBALANCE_IN_PROGRESS,
        "heartbeat in PreparingRebalance"
    );
    // Kafka accepts commits of the current generation while preparing the rebalance...
    let codes = commit(&mut a.c, COMMIT_V, g, &a.id, 1, None, &[(TOPIC, 0, 11, "")]).await?;
    ensure!(
        codes[0].2 == NONE,
        "commit in PreparingRebalance: {codes:?}"
    );
    let ja = join(&mut a.c, JOIN_V, &a.spec.clone().member(&a.id)).await?;
    let jb = read_join(&mut nc, JOIN_V, new_req).await?;
    ensure!(
        ja.generation_id == 2 && jb.generation_id == 2,
        "{ja:?} {jb:?}"
    );
    // ...but not while waiting for the leader's assignment (CompletingRebalance).
    let codes = commit(&mut a.c, COMMIT_V, g, &a.id, 2, None, &[(TOPIC, 0, 12, "")]).await?;
    ensure!(
        codes[0].2 == REBALANCE_IN_PROGRESS,
        "commit in CompletingRebalance: {codes:?}"
    );
    let code = heartbeat(&mut nc, HEARTBEAT_V, g, &id, 2, None).await?;
    ensure!(code == NONE, "heartbeat in CompletingRebalance: {code}");
    ensure!(
        committed(&mut a.c, g, TOPIC, 0).await? == 11,
        "committed offset"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_member_and_stale_generation() -> Result<()> {
    let (b, _c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "checked";
    let mut ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    let m = &mut ms[0];
    let (id, generation) = (m.id.clone(), m.generation);
    // UNKNOWN_MEMBER_ID (25) for a member id the group does not know.
    ensure!(
        heartbeat(&mut m.c, HEARTBEAT_V, g, "ghost", generation, None).await? == UNKNOWN_MEMBER_ID,
        "heartbeat"
    );
    let r = sync(&mut m.c, SYNC_V, g, "ghost", generation, None, &[]).await?;
    ensure!(r.error_code == UNKNOWN_MEMBER_ID, "sync: {r:?}");
    let codes = commit(
        &mut m.c,
        COMMIT_V,
        g,
        "ghost",
        generation,
        None,
        &[(TOPIC, 0, 1, "")],
    )
    .await?;
    ensure!(codes[0].2 == UNKNOWN_MEMBER_ID, "commit: {codes:?}");
    let r = join(&mut m.c, JOIN_V, &m.spec.clone().member("ghost")).await?;
    ensure!(r.error_code == UNKNOWN_MEMBER_ID, "join: {r:?}");
    let r = leave(&mut m.c, LEAVE_V, g, &[("ghost", None)]).await?;
    ensure!(
        r.error_code == NONE && r.members[0].error_code == UNKNOWN_MEMBER_ID,
        "leave: {r:?}"
    );
    // ILLEGAL_GENERATION (22) for a generation other than the group's.
    for stale in [generation - 1, generation + 1] {
        ensure!(
            heartbeat(&mut m.c, HEARTBEAT_V, g, &id, stale, None).await? == ILLEGAL_GENERATION,
            "heartbeat {stale}"
        );
        let r = sync(&mut m.c, SYNC_V, g, &id, stale, None, &[]).await?;
        ensure!(r.error_code == ILLEGAL_GENERATION, "sync {stale}: {r:?}");
        let codes = commit(
            &mut m.c,
            COMMIT_V,
            g,
            &id,
            stale,
            None,
            &[(TOPIC, 0, 1, "")],
        )
        .await?;
        ensure!(
            codes[0].2 == ILLEGAL_GENERATION,
            "commit {stale}: {codes:?}"
        );
    }
    ensure!(m.heartbeat().await? == NONE, "the member itself is fine");
    ensure!(
        committed(&mut m.c, g, TOPIC, 0).await? == -1,
        "a refused commit was stored"
    );
    Ok(())
}

#[tokio::test]
async fn dead_member_is_removed_after_its_session_timeout() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "expiring";
    let short = |s: JoinSpec| JoinSpec {
        session_ms: 6000,
        ..s
    };
    let mut ms = group_of(
        &b,
        vec![
            short(JoinSpec::consumer(g, &[TOPIC])),
            short(JoinSpec::consumer(g, &[TOPIC])),
        ],
    )
    .await?;
    let dead = ms.pop().context("two members")?;
    let mut alive = ms.pop().context("two members")?;
    // The survivor heartbeats every second; the other member goes silent.
    let start = Instant::now();
    let mut code = NONE;
    while start.elapsed() < Duration::from_secs(9) {
        code = alive.heartbeat().await?;
        if code != NONE {
            break;
        }
        sleep_ms(500).await;
    }
    let after = start.elapsed();
    ensure!(
        code == REBALANCE_IN_PROGRESS,
        "survivor's heartbeat after the other's session ran out: {code}"
    );
    ensure!(
        after >= Duration::from_millis(5500),
        "the silent member was dropped after only {after:?}"
    );
    let j = join(&mut alive.c, JOIN_V, &alive.spec.clone().member(&alive.id)).await?;
    ensure!(j.error_code == NONE && j.generation_id == 3, "{j:?}");
    ensure!(
        j.leader.as_str() == alive.id && j.members.len() == 1,
        "the dead member is gone: {j:?}"
    );
    let r = sync(
        &mut alive.c,
        SYNC_V,
        g,
        &alive.id,
        3,
        None,
        &[(&alive.id, b"all")],
    )
    .await?;
    ensure!(
        r.error_code == NONE && r.assignment.as_ref() == b"all",
        "{r:?}"
    );
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.group_state.as_str() == "Stable" && d.members.len() == 1,
        "{d:?}"
    );
    ensure!(d.members[0].member_id.as_str() == alive.id, "{d:?}");
    let code = heartbeat(&mut c, HEARTBEAT_V, g, &dead.id, dead.generation, None).await?;
    ensure!(
        code == UNKNOWN_MEMBER_ID,
        "the expired member's heartbeat: {code}"
    );
    // The survivor stops too: the group ends up Empty.
    let r = leave(&mut alive.c, LEAVE_V, g, &[(&alive.id, None)]).await?;
    ensure!(r.members[0].error_code == NONE, "{r:?}");
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.group_state.as_str() == "Empty" && d.members.is_empty(),
        "{d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn join_refuses_inconsistent_protocols_and_bad_session_timeouts() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "strict";
    let _ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    // Another protocol type.
    let connect = JoinSpec {
        protocol_type: "connect".into(),
        ..JoinSpec::consumer(g, &[TOPIC])
    };
    let r = join(&mut c, JOIN_V, &connect).await?;
    ensure!(
        r.error_code == INCONSISTENT_GROUP_PROTOCOL,
        "protocol type: {r:?}"
    );
    // No protocol in common.
    let mut other = JoinSpec::consumer(g, &[TOPIC]);
    other.protocols[0].0 = "roundrobin".into();
    let r = join(&mut c, JOIN_V, &other).await?;
    ensure!(
        r.error_code == INCONSISTENT_GROUP_PROTOCOL,
        "protocol name: {r:?}"
    );
    // group.min.session.timeout.ms is 6000 and group.max.session.timeout.ms 1800000.
    for (session, want) in [
        (5999, INVALID_SESSION_TIMEOUT),
        (1_800_001, INVALID_SESSION_TIMEOUT),
        (6000, MEMBER_ID_REQUIRED),
    ] {
        let spec = JoinSpec {
            session_ms: session,
            ..JoinSpec::consumer("fresh", &[TOPIC])
        };
        let r = join(&mut c, JOIN_V, &spec).await?;
        ensure!(r.error_code == want, "session timeout {session}: {r:?}");
    }
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.members.len() == 1 && d.group_state.as_str() == "Stable",
        "refused joins changed the group: {d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn commits_from_outside_the_group() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    // A group nobody joined takes commits with generation -1 and no member id.
    let codes = commit(
        &mut c,
        COMMIT_V,
        "admin-only",
        "",
        -1,
        None,
        &[(TOPIC, 0, 7, "by admin")],
    )
    .await?;
    ensure!(codes[0].2 == NONE, "{codes:?}");
    let (_, got) = fetch_offsets(
        &mut c,
        OFFSET_FETCH_V,
        "admin-only",
        Some(&[(TOPIC, &[0, 1])]),
    )
    .await?;
    ensure!(
        got[0].offset == 7 && got[0].metadata.as_deref() == Some("by admin"),
        "{got:?}"
    );
    ensure!(
        got[1].offset == -1 && got[1].error_code == NONE,
        "uncommitted partition: {got:?}"
    );
    // A group with members refuses them.
    let g = "busy";
    let mut ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    let codes = commit(&mut c, COMMIT_V, g, "", -1, None, &[(TOPIC, 0, 7, "")]).await?;
    ensure!(codes[0].2 == UNKNOWN_MEMBER_ID, "{codes:?}");
    // Once its members left (Empty), it takes them again.
    let m = &mut ms[0];
    let r = leave(&mut m.c, LEAVE_V, g, &[(&m.id, None)]).await?;
    ensure!(r.members[0].error_code == NONE, "{r:?}");
    let codes = commit(&mut c, COMMIT_V, g, "", -1, None, &[(TOPIC, 1, 9, "")]).await?;
    ensure!(codes[0].2 == NONE, "{codes:?}");
    ensure!(committed(&mut c, g, TOPIC, 1).await? == 9, "offset");
    ensure!(committed(&mut c, g, TOPIC, 0).await? == -1, "uncommitted");
    Ok(())
}

#[tokio::test]
async fn commits_survive_clean_restart_and_crash() -> Result<()> {
    let (mut b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "durable";
    let ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    let (id, generation) = (ms[0].id.clone(), ms[0].generation);
    commit_ok(
        &mut c,
        g,
        &id,
        generation,
        &[(TOPIC, 0, 100, "first"), (TOPIC, 1, 200, "")],
    )
    .await?;
    commit_ok(&mut c, g, &id, generation, &[(TOPIC, 0, 101, "second")]).await?;
    drop(ms);
    drop(c);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    let (_, got) = fetch_offsets(&mut c, OFFSET_FETCH_V, g, Some(&[(TOPIC, &[0, 1])])).await?;
    ensure!(
        got[0].offset == 101 && got[0].metadata.as_deref() == Some("second"),
        "after clean restart: {got:?}"
    );
    ensure!(got[1].offset == 200, "after clean restart: {got:?}");
    // Generations keep counting after a restart.
    let mut ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    ensure!(
        ms[0].generation > generation,
        "generation {} after restart, was {generation}",
        ms[0].generation
    );
    let m = &mut ms[0];
    commit_ok(
        &mut m.c,
        g,
        &m.id,
        m.generation,
        &[(TOPIC, 1, 300, "pre-crash")],
    )
    .await?;
    let codes = commit(
        &mut c,
        COMMIT_V,
        "simple-durable",
        "",
        -1,
        None,
        &[(TOPIC, 0, 5, "")],
    )
    .await?;
    ensure!(codes[0].2 == NONE, "{codes:?}");
    drop(ms);
    drop(c);
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    let (_, got) = fetch_offsets(&mut c, OFFSET_FETCH_V, g, Some(&[(TOPIC, &[0, 1])])).await?;
    ensure!(
        got[0].offset == 101 && got[1].offset == 300,
        "after crash: {got:?}"
    );
    ensure!(
        got[1].metadata.as_deref() == Some("pre-crash"),
        "after crash: {got:?}"
    );
    ensure!(
        committed(&mut c, "simple-durable", TOPIC, 0).await? == 5,
        "simple group after crash"
    );
    let listed = list_groups(&mut c, LIST_GROUPS_V, &[], &[]).await?;
    ensure!(
        listed.iter().any(|l| l.group_id.as_str() == g),
        "group not listed after crash: {listed:?}"
    );
    Ok(())
}

#[tokio::test]
async fn delete_groups_only_empty_and_offsets_go_too() -> Result<()> {
    let (mut b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "doomed";
    let mut ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    commit_ok(
        &mut c,
        g,
        &ms[0].id,
        ms[0].generation,
        &[(TOPIC, 0, 50, "")],
    )
    .await?;
    let codes = commit(
        &mut c,
        COMMIT_V,
        "kept",
        "",
        -1,
        None,
        &[(TOPIC, 0, 60, "")],
    )
    .await?;
    ensure!(codes[0].2 == NONE, "{codes:?}");
    let r = c
        .request(
            DELETE_GROUPS_V,
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s(g)), GroupId(s("never-was"))]),
        )
        .await?;
    let codes: Vec<(String, i16)> = r
        .results
        .iter()
        .map(|x| (x.group_id.to_string(), x.error_code))
        .collect();
    ensure!(
        codes
            == vec![
                (g.to_string(), NON_EMPTY_GROUP),
                ("never-was".to_string(), GROUP_ID_NOT_FOUND)
            ],
        "{codes:?}"
    );
    ensure!(
        committed(&mut c, g, TOPIC, 0).await? == 50,
        "a refused delete removed offsets"
    );
    let m = &mut ms[0];
    let r = leave(&mut m.c, LEAVE_V, g, &[(&m.id, None)]).await?;
    ensure!(r.members[0].error_code == NONE, "{r:?}");
    ensure!(
        delete_group(&mut c, DELETE_GROUPS_V, g).await? == NONE,
        "delete of the empty group"
    );
    ensure!(
        committed(&mut c, g, TOPIC, 0).await? == -1,
        "offsets outlived their group"
    );
    let listed = list_groups(&mut c, LIST_GROUPS_V, &[], &[]).await?;
    ensure!(
        listed.iter().all(|l| l.group_id.as_str() != g),
        "{listed:?}"
    );
    // Still gone after a restart; the other group's offsets stay.
    drop(ms);
    drop(c);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(
        committed(&mut c, g, TOPIC, 0).await? == -1,
        "deleted offsets came back after a restart"
    );
    ensure!(
        committed(&mut c, "kept", TOPIC, 0).await? == 60,
        "another group's offsets"
    );
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.error_code == GROUP_ID_NOT_FOUND,
        "deleted group after restart: {d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn offset_delete_refuses_subscribed_topics() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    create_topic(&mut c, "elsewhere", 1).await?;
    let g = "subscriber";
    let mut ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    let (id, generation) = (ms[0].id.clone(), ms[0].generation);
    commit_ok(
        &mut c,
        g,
        &id,
        generation,
        &[
            (TOPIC, 0, 1, ""),
            (TOPIC, 1, 2, ""),
            ("elsewhere", 0, 3, ""),
        ],
    )
    .await?;
    let (code, parts) =
        delete_offsets(&mut c, OFFSET_DELETE_V, g, &[(TOPIC, 0), ("elsewhere", 0)]).await?;
    ensure!(code == NONE, "{code}");
    ensure!(
        parts
            == vec![
                (TOPIC.to_string(), 0, GROUP_SUBSCRIBED_TO_TOPIC),
                ("elsewhere".to_string(), 0, NONE)
            ],
        "{parts:?}"
    );
    ensure!(
        committed(&mut c, g, TOPIC, 0).await? == 1,
        "subscribed offset deleted"
    );
    ensure!(
        committed(&mut c, g, "elsewhere", 0).await? == -1,
        "unsubscribed offset kept"
    );
    // Once the group is empty nothing is subscribed.
    let m = &mut ms[0];
    let r = leave(&mut m.c, LEAVE_V, g, &[(&m.id, None)]).await?;
    ensure!(r.members[0].error_code == NONE, "{r:?}");
    let (code, parts) = delete_offsets(&mut c, OFFSET_DELETE_V, g, &[(TOPIC, 0)]).await?;
    ensure!(
        code == NONE && parts == vec![(TOPIC.to_string(), 0, NONE)],
        "{code} {parts:?}"
    );
    ensure!(
        committed(&mut c, g, TOPIC, 0).await? == -1,
        "offset not deleted"
    );
    ensure!(
        committed(&mut c, g, TOPIC, 1).await? == 2,
        "another partition's offset deleted"
    );
    let (code, _) = delete_offsets(&mut c, OFFSET_DELETE_V, "no-group", &[(TOPIC, 0)]).await?;
    ensure!(code == GROUP_ID_NOT_FOUND, "{code}");
    Ok(())
}

#[tokio::test]
async fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "static";
    let ms = group_of(
        &b,
        vec![
            JoinSpec::consumer(g, &[TOPIC]).instance("leader-1"),
            JoinSpec::consumer(g, &[TOPIC]).instance("follower-1"),
        ],
    )
    .await?;
    let (leader, follower) = (&ms[0], &ms[1]);
    let generation = follower.generation;
    // The follower "restarts": same group.instance.id, no member id.
    let mut fc = b.client().await?;
    let j = join(&mut fc, JOIN_V, &follower.spec.clone().member("")).await?;
    ensure!(
        j.error_code == NONE && j.generation_id == generation,
        "static rejoin: {j:?}"
    );
    let new_id = j.member_id.to_string();
    ensure!(
        !new_id.is_empty() && new_id != follower.id,
        "static rejoin keeps the old member id: {j:?}"
    );
    ensure!(
        j.leader.as_str() == leader.id && j.members.is_empty(),
        "{j:?}"
    );
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.group_state.as_str() == "Stable",
        "a static rejoin rebalanced: {d:?}"
    );
    let mut ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    ids.sort();
    let mut want = vec![leader.id.as_str(), new_id.as_str()];
    want.sort();
    ensure!(ids == want, "{d:?}");
    // The new id gets the old assignment; the leader heartbeats on undisturbed.
    let r = sync(
        &mut fc,
        SYNC_V,
        g,
        &new_id,
        generation,
        Some("follower-1"),
        &[],
    )
    .await?;
    ensure!(
        r.error_code == NONE && r.assignment.as_ref() == follower.id.as_bytes(),
        "{r:?}"
    );
    let code = heartbeat(
        &mut c,
        HEARTBEAT_V,
        g,
        &leader.id,
        generation,
        leader.instance(),
    )
    .await?;
    ensure!(code == NONE, "leader heartbeat: {code}");
    ensure!(
        heartbeat(
            &mut fc,
            HEARTBEAT_V,
            g,
            &new_id,
            generation,
            Some("follower-1")
        )
        .await?
            == NONE,
        "new id"
    );
    // The old member id is fenced.
    let code = heartbeat(
        &mut c,
        HEARTBEAT_V,
        g,
        &follower.id,
        generation,
        Some("follower-1"),
    )
    .await?;
    ensure!(
        code == FENCED_INSTANCE_ID,
        "old member id heartbeat: {code}"
    );
    let codes = commit(
        &mut c,
        COMMIT_V,
        g,
        &follower.id,
        generation,
        Some("follower-1"),
        &[(TOPIC, 0, 1, "")],
    )
    .await?;
    ensure!(
        codes[0].2 == FENCED_INSTANCE_ID,
        "old member id commit: {codes:?}"
    );
    let r = sync(
        &mut c,
        SYNC_V,
        g,
        &follower.id,
        generation,
        Some("follower-1"),
        &[],
    )
    .await?;
    ensure!(
        r.error_code == FENCED_INSTANCE_ID,
        "old member id sync: {r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn leave_group_batch_reports_each_member() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "batch-leave";
    let mut ms = group_of(
        &b,
        vec![
            JoinSpec::consumer(g, &[TOPIC]).instance("i1"),
            JoinSpec::consumer(g, &[TOPIC]).instance("i2"),
            JoinSpec::consumer(g, &[TOPIC]),
        ],
    )
    .await?;
    ensure!(ms[2].generation == 3, "three members at generation 3");
    let (a, stay) = (ms[0].id.clone(), ms[2].id.clone());
    let batch = [
        (a.as_str(), Some("i1")),
        ("impostor", Some("i2")),
        ("", Some("i2")),
        ("ghost", None),
        ("", Some("no-such-instance")),
    ];
    let r = leave(&mut c, LEAVE_V, g, &batch).await?;
    ensure!(
        r.error_code == NONE && r.members.len() == batch.len(),
        "{r:?}"
    );
    let got: Vec<(String, Option<String>, i16)> = r
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|i| i.to_string()),
                m.error_code,
            )
        })
        .collect();
    let want: Vec<(String, Option<String>, i16)> = batch
        .iter()
        .zip([
            NONE,
            FENCED_INSTANCE_ID,
            NONE,
            UNKNOWN_MEMBER_ID,
            UNKNOWN_MEMBER_ID,
        ])
        .map(|((m, i), code)| (m.to_string(), i.map(str::to_string), code))
        .collect();
    ensure!(got == want, "got  {got:?}\nwant {want:?}");
    // The one left rebalances alone.
    let m = &mut ms[2];
    ensure!(
        heartbeat_until_error(m).await? == REBALANCE_IN_PROGRESS,
        "remaining member's heartbeat"
    );
    let j = join(&mut m.c, JOIN_V, &m.spec.clone().member(&stay)).await?;
    ensure!(
        j.error_code == NONE
            && j.generation_id == 4
            && j.leader.as_str() == stay
            && j.members.len() == 1,
        "{j:?}"
    );
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.members.len() == 1 && d.members[0].member_id.as_str() == stay,
        "{d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn describe_unknown_group() -> Result<()> {
    let b = group_broker().await?;
    let mut c = b.client().await?;
    for v in 0..=DESCRIBE_GROUPS_V {
        let d = describe_group_at(&mut c, v, "unknown-group").await?;
        ensure!(
            d.group_state.as_str() == "Dead" && d.members.is_empty(),
            "v{v}: {d:?}"
        );
        ensure!(
            d.protocol_type.is_empty() && d.protocol_data.is_empty(),
            "v{v}: {d:?}"
        );
        let want = if v >= 6 { GROUP_ID_NOT_FOUND } else { NONE };
        ensure!(d.error_code == want, "v{v}: {d:?}");
    }
    Ok(())
}

#[tokio::test]
async fn stable_members_survive_a_restart() -> Result<()> {
    // Kafka's coordinator loads a group's members from its GroupMetadata record and resumes it
    // Stable, with fresh session timers: consumers carry on (heartbeat, commit) without rejoining.
    let (mut b, _c) = group_broker_with_topic(TOPIC, 2).await?;
    let g = "restarted";
    let ms = group_of(&b, vec![JoinSpec::consumer(g, &[TOPIC])]).await?;
    let (id, generation) = (ms[0].id.clone(), ms[0].generation);
    drop(ms);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    let d = describe_group(&mut c, g).await?;
    ensure!(
        d.group_state.as_str() == "Stable" && d.members.len() == 1,
        "after restart: {d:?}"
    );
    ensure!(
        d.members[0].member_id.as_str() == id
            && d.members[0].member_assignment.as_ref() == id.as_bytes(),
        "{d:?}"
    );
    let code = heartbeat(&mut c, HEARTBEAT_V, g, &id, generation, None).await?;
    ensure!(
        code == NONE,
        "heartbeat of a member after the restart: {code}"
    );
    let codes = commit(
        &mut c,
        COMMIT_V,
        g,
        &id,
        generation,
        None,
        &[(TOPIC, 0, 1, "")],
    )
    .await?;
    ensure!(
        codes[0].2 == NONE,
        "commit of a member after the restart: {codes:?}"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_topic_removes_its_committed_offsets_for_good() -> Result<()> {
    let (mut b, mut c) = group_broker_with_topic(TOPIC, 1).await?;
    create_topic(&mut c, "doomed", 2).await?;
    commit_ok(
        &mut c,
        "g-del",
        "",
        -1,
        &[(TOPIC, 0, 5, ""), ("doomed", 1, 7, "")],
    )
    .await?;
    let r = c
        .request(
            4,
            DeleteTopicsRequest::default()
                .with_topic_names(vec![name("doomed")])
                .with_timeout_ms(10_000),
        )
        .await?;
    ensure!(r.responses[0].error_code == NONE, "{r:?}");
    for restart in [false, true] {
        if restart {
            drop(c);
            b.restart_clean().await?;
            c = b.client().await?;
        }
        let (_, got) = fetch_offsets(&mut c, OFFSET_FETCH_V, "g-del", None).await?;
        let topics: Vec<&str> = got.iter().map(|o| o.topic.as_str()).collect();
        ensure!(topics == [TOPIC], "restart {restart}: {got:?}");
    }
    // A new topic of the same name starts with no committed offsets.
    create_topic(&mut c, "doomed", 2).await?;
    ensure!(committed(&mut c, "g-del", "doomed", 1).await? == -1);
    Ok(())
}

#[tokio::test]
async fn sync_fails_when_the_group_record_is_too_large() -> Result<()> {
    // Kafka fails the SyncGroup whose group record it cannot write: RECORD_TOO_LARGE from the
    // append becomes UNKNOWN_SERVER_ERROR (GroupMetadataManager.
    // appendGroupMetadataErrorToResponseError), the assignment is reset and the group rebalances,
    // so no member works from an assignment a restart would forget (issue 11, item 5).
    let b = start_broker_with(|c| {
        c.group.initial_rebalance_delay_ms = 0;
        c.log.max_message_bytes = 10_000;
    })
    .await?;
    let mut c = b.client().await?;
    let g = "bulky";
    let mut spec = JoinSpec::consumer(g, &[TOPIC]);
    spec.protocols[0].1 = vec![7u8; 20_000].into();
    let j = join_new(&mut c, JOIN_V, &spec).await?;
    let id = j.member_id.to_string();
    let r = sync(
        &mut c,
        SYNC_V,
        g,
        &id,
        j.generation_id,
        None,
        &[(&id, b"a")],
    )
    .await?;
    ensure!(r.error_code == UNKNOWN_SERVER_ERROR, "sync: {r:?}");
    let code = heartbeat(&mut c, HEARTBEAT_V, g, &id, j.generation_id, None).await?;
    ensure!(
        code == REBALANCE_IN_PROGRESS,
        "heartbeat after the failed sync: {code}"
    );
    // With small metadata the member rejoins and the group becomes Stable.
    let spec = JoinSpec::consumer(g, &[TOPIC]).member(&id);
    let j = join(&mut c, JOIN_V, &spec).await?;
    ensure!(
        j.error_code == NONE && j.generation_id == 2,
        "rejoin: {j:?}"
    );
    let r = sync(&mut c, SYNC_V, g, &id, 2, None, &[(&id, b"a")]).await?;
    ensure!(
        r.error_code == NONE && r.assignment.as_ref() == b"a",
        "{r:?}"
    );
    Ok(())
}
