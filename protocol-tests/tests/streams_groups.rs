//! Streams groups (KIP-1071) over the wire, at every advertised version of StreamsGroupHeartbeat
//! and StreamsGroupDescribe: the topology's configuration (MISSING_SOURCE_TOPICS, internal topics
//! created by the broker), tasks assigned and moved between members with revocation first,
//! membership errors with Kafka's codes (unknown member, fenced epoch, invalid requests, another
//! group type, an internal topic in the topology), offset commits of members, ListGroups type
//! `streams`, DeleteGroups, OffsetDelete (source topics kept while the group has members), the
//! group after a restart, and the feature switch (streams.version 0 answers UNSUPPORTED_VERSION).

mod common;

use std::collections::BTreeSet;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::streams_group_heartbeat_request::{
    Subtopology, TaskIds, TopicInfo, Topology,
};
use kafka_protocol::messages::*;

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;
const FENCED_MEMBER_EPOCH: i16 = 110;
const STALE_MEMBER_EPOCH: i16 = 113;
const STREAMS_INVALID_TOPOLOGY: i16 = 130;
const MISSING_SOURCE_TOPICS: i8 = 1;
const MISSING_INTERNAL_TOPICS: i8 = 3;

/// A word count: subtopology 0 reads `<app>-in` and writes the repartition topic; 1 reads it
/// and keeps a store with a changelog.
fn topology(app: &str) -> Topology {
    let rep = format!("{app}-words-repartition");
    Topology::default().with_epoch(0).with_subtopologies(vec![
        Subtopology::default()
            .with_subtopology_id(s("0"))
            .with_source_topics(vec![name(&format!("{app}-in"))])
            .with_repartition_sink_topics(vec![name(&rep)]),
        Subtopology::default()
            .with_subtopology_id(s("1"))
            .with_repartition_source_topics(vec![TopicInfo::default().with_name(name(&rep))])
            .with_state_changelog_topics(vec![TopicInfo::default()
                .with_name(name(&format!("{app}-counts-changelog")))
                .with_topic_configs(vec![streams_group_heartbeat_request::KeyValue::default()
                    .with_key(s("cleanup.policy"))
                    .with_value(s("compact"))])]),
    ])
}

fn join(app: &str, member: &str) -> StreamsGroupHeartbeatRequest {
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(app)))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(60_000)
        .with_topology(Some(topology(app)))
        .with_process_id(Some(s(&format!("process-{member}"))))
        .with_active_tasks(Some(vec![]))
        .with_standby_tasks(Some(vec![]))
        .with_warmup_tasks(Some(vec![]))
}

type Owned = BTreeSet<(String, i32)>;

fn beat(
    app: &str,
    member: &str,
    epoch: i32,
    owned: Option<&Owned>,
) -> StreamsGroupHeartbeatRequest {
    let tasks = owned.map(|o| {
        let mut v: Vec<TaskIds> = Vec::new();
        for (sub, p) in o {
            match v.iter_mut().find(|t| t.subtopology_id.as_str() == sub) {
                Some(t) => t.partitions.push(*p),
                None => v.push(
                    TaskIds::default()
                        .with_subtopology_id(s(sub))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        v
    });
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(app)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_active_tasks(tasks.clone())
        .with_standby_tasks(tasks.as_ref().map(|_| vec![]))
        .with_warmup_tasks(tasks.map(|_| vec![]))
}

fn active(r: &StreamsGroupHeartbeatResponse) -> Option<Owned> {
    r.active_tasks.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.subtopology_id.to_string(), *p))
            })
            .collect()
    })
}

fn statuses(r: &StreamsGroupHeartbeatResponse) -> Vec<i8> {
    r.status.iter().flatten().map(|s| s.status_code).collect()
}

async fn topic_partitions(c: &mut Client, topic: &str) -> Result<Option<usize>> {
    let m = metadata(c, 12, metadata_topics(&[topic]), false).await?;
    Ok(m.topics
        .first()
        .filter(|t| t.error_code == NONE)
        .map(|t| t.partitions.len()))
}

/// Joins until the internal topics exist: the member's answers before that carry
/// MISSING_INTERNAL_TOPICS, and the broker creates them with the source's partition count.
async fn join_ready(
    c: &mut Client,
    v: i16,
    app: &str,
    member: &str,
) -> Result<StreamsGroupHeartbeatResponse> {
    let r = c.request(v, join(app, member)).await?;
    ensure!(r.error_code == NONE, "v{v}: {r:?}");
    if statuses(&r).contains(&MISSING_INTERNAL_TOPICS) {
        // Created while answering: the next heartbeat finds them and gets the tasks.
        let r = c
            .request(v, beat(app, member, r.member_epoch, None))
            .await?;
        ensure!(
            r.error_code == NONE && statuses(&r).is_empty(),
            "v{v}: {r:?}"
        );
        return Ok(r);
    }
    Ok(r)
}

#[tokio::test]
async fn a_topology_is_configured_and_its_internal_topics_created_at_every_version() -> Result<()> {
    for v in 0..=1 {
        let app = format!("sv{v}");
        let (_b, mut c) = group_broker_with_topic(&format!("{app}-other"), 1).await?;
        // The source topic is missing: the member is told, and gets no task.
        let r = c.request(v, join(&app, "m1")).await?;
        ensure!(r.error_code == NONE && r.member_epoch == 1, "v{v}: {r:?}");
        ensure!(statuses(&r) == vec![MISSING_SOURCE_TOPICS], "v{v}: {r:?}");
        let detail = r.status.as_ref().unwrap()[0].status_detail.to_string();
        ensure!(
            detail == format!("Source topics {app}-in are missing."),
            "v{v}: {detail}"
        );
        ensure!(active(&r) == Some(Owned::new()), "v{v}: {r:?}");
        ensure!(r.heartbeat_interval_ms == 5_000, "v{v}: {r:?}");
        ensure!((v == 0) == (r.acceptable_recovery_lag == -1), "v{v}: {r:?}");
        // Once it exists, the broker creates the repartition and changelog topics, with its
        // partition count, and the tasks follow.
        create_topic(&mut c, &format!("{app}-in"), 3).await?;
        let r = c.request(v, beat(&app, "m1", 1, None)).await?;
        ensure!(statuses(&r) == vec![MISSING_INTERNAL_TOPICS], "v{v}: {r:?}");
        ensure!(!r.topology_description_required, "v{v}");
        for t in ["words-repartition", "counts-changelog"] {
            let n = topic_partitions(&mut c, &format!("{app}-{t}")).await?;
            ensure!(n == Some(3), "v{v}: {app}-{t} has {n:?} partitions");
        }
        let changelog = format!("{app}-counts-changelog");
        ensure!(
            topic_config(&mut c, &changelog, "cleanup.policy")
                .await?
                .as_deref()
                == Some("compact"),
            "v{v}: the changelog's configs come from the topology"
        );
        let r = c.request(v, beat(&app, "m1", r.member_epoch, None)).await?;
        ensure!(
            r.error_code == NONE && statuses(&r).is_empty(),
            "v{v}: {r:?}"
        );
        let tasks = active(&r).unwrap_or_default();
        ensure!(tasks.len() == 6, "v{v}: three tasks per subtopology: {r:?}");
        // StreamsGroupDescribe: the configured topology, the member and its tasks.
        let d = c
            .request(
                v,
                StreamsGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(s(&app)), GroupId(s("nope"))])
                    .with_include_authorized_operations(true),
            )
            .await?;
        let g = &d.groups[0];
        ensure!(
            g.error_code == NONE && g.group_state.as_str() == "Stable",
            "v{v}: {g:?}"
        );
        ensure!(
            g.group_epoch == r.member_epoch && g.assignment_epoch == g.group_epoch,
            "v{v}: {g:?}"
        );
        let t = g.topology.as_ref().unwrap();
        let subs = t.subtopologies.as_ref().unwrap();
        ensure!(
            subs.len() == 2 && subs[1].repartition_source_topics[0].partitions == 3,
            "v{v}: {t:?}"
        );
        ensure!(
            g.members.len() == 1 && g.members[0].assignment.active_tasks.len() == 2,
            "v{v}: {g:?}"
        );
        ensure!(
            g.members[0].process_id.as_str() == "process-m1",
            "v{v}: {g:?}"
        );
        ensure!(g.authorized_operations > 0, "v{v}: {g:?}");
        ensure!(
            (v == 1) == (g.assignor_name.as_deref() == Some("sticky")),
            "v{v}: {g:?}"
        );
        ensure!(d.groups[1].error_code == GROUP_ID_NOT_FOUND, "v{v}: {d:?}");
    }
    Ok(())
}

#[tokio::test]
async fn tasks_move_to_a_new_member_once_revoked() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("mv-in", 2).await?;
    let r = join_ready(&mut c, 1, "mv", "a").await?;
    let a_all = active(&r).unwrap();
    ensure!(a_all.len() == 4, "{r:?}");
    let a_epoch = r.member_epoch;
    // b joins: its tasks are still a's, so it gets none yet.
    let b = c.request(1, join("mv", "b")).await?;
    ensure!(
        b.error_code == NONE && active(&b) == Some(Owned::new()),
        "{b:?}"
    );
    // a is told to keep two (revocation first: its epoch stays).
    let r = c.request(1, beat("mv", "a", a_epoch, Some(&a_all))).await?;
    let a_kept = active(&r).unwrap();
    ensure!(a_kept.len() == 2 && r.member_epoch == a_epoch, "{r:?}");
    // A stale epoch is fenced.
    let r2 = c.request(1, beat("mv", "a", a_epoch + 5, None)).await?;
    ensure!(r2.error_code == FENCED_MEMBER_EPOCH, "{r2:?}");
    let r = c
        .request(1, beat("mv", "a", a_epoch, Some(&a_kept)))
        .await?;
    ensure!(
        r.error_code == NONE && r.member_epoch == b.member_epoch,
        "{r:?}"
    );
    let b2 = c
        .request(1, beat("mv", "b", b.member_epoch, Some(&Owned::new())))
        .await?;
    let b_tasks = active(&b2).unwrap();
    ensure!(b_tasks.len() == 2 && b_tasks.is_disjoint(&a_kept), "{b2:?}");
    // a leaves: b gets everything.
    let left = c.request(1, beat("mv", "a", -1, None)).await?;
    ensure!(
        left.error_code == NONE && left.member_epoch == -1,
        "{left:?}"
    );
    let b3 = c
        .request(1, beat("mv", "b", b2.member_epoch, Some(&b_tasks)))
        .await?;
    ensure!(active(&b3).map(|t| t.len()) == Some(4), "{b3:?}");
    Ok(())
}

#[tokio::test]
async fn bad_heartbeats_get_kafkas_errors() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("bad-in", 1).await?;
    let r = join_ready(&mut c, 1, "bad", "m").await?;
    // Unknown member, fenced epoch, a group that does not exist.
    let u = c.request(1, beat("bad", "ghost", 1, None)).await?;
    ensure!(u.error_code == UNKNOWN_MEMBER_ID, "{u:?}");
    let f = c
        .request(1, beat("bad", "m", r.member_epoch + 1, None))
        .await?;
    ensure!(f.error_code == FENCED_MEMBER_EPOCH, "{f:?}");
    let n = c.request(1, beat("nope", "m", 3, None)).await?;
    ensure!(n.error_code == GROUP_ID_NOT_FOUND, "{n:?}");
    // Invalid requests: no topology when joining, a topology later, an empty member id, a task
    // the topology does not have.
    let mut j = join("bad", "m2");
    j.topology = None;
    let e = c.request(1, j).await?;
    ensure!(e.error_code == INVALID_REQUEST, "{e:?}");
    ensure!(
        e.error_message.as_deref() == Some("Topology must be non-null when (re-)joining."),
        "{e:?}"
    );
    let mut late = beat("bad", "m", r.member_epoch, None);
    late.topology = Some(topology("bad"));
    ensure!(c.request(1, late).await?.error_code == INVALID_REQUEST);
    ensure!(c.request(1, join("bad", "")).await?.error_code == INVALID_REQUEST);
    let wrong: Owned = [("0".to_string(), 9)].into();
    let t = c
        .request(1, beat("bad", "m", r.member_epoch, Some(&wrong)))
        .await?;
    ensure!(t.error_code == INVALID_REQUEST, "{t:?}");
    // An internal topic in the topology.
    let mut j = join("bad2", "m");
    j.topology.as_mut().unwrap().subtopologies[0].source_topics = vec![name("__consumer_offsets")];
    let i = c.request(1, j).await?;
    ensure!(i.error_code == STREAMS_INVALID_TOPOLOGY, "{i:?}");
    // A changelog topic with a partition count, and a repartition topic no subtopology writes.
    let mut j = join("bad2", "m");
    j.topology.as_mut().unwrap().subtopologies[1].state_changelog_topics[0].partitions = 2;
    let i = c.request(1, j).await?;
    ensure!(i.error_code == STREAMS_INVALID_TOPOLOGY, "{i:?}");
    // (Its source exists: a missing source would be reported first.)
    let mut j = join("bad", "m");
    j.group_id = GroupId(s("bad3"));
    j.topology.as_mut().unwrap().subtopologies[0]
        .repartition_sink_topics
        .clear();
    let i = c.request(1, j).await?;
    ensure!(i.error_code == STREAMS_INVALID_TOPOLOGY, "{i:?}");
    // Nothing was made of those.
    ensure!(list_groups(&mut c, 5, &[], &["streams"]).await?.len() == 1);
    // A consumer group's id is not a streams group's, and the other way round.
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("cg")))
        .with_member_id(s("x"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name("bad-in")]))
        .with_topic_partitions(Some(vec![]));
    ensure!(c.request(1, cg).await?.error_code == NONE);
    let x = c.request(1, join("cg", "m")).await?;
    ensure!(x.error_code == GROUP_ID_NOT_FOUND, "{x:?}");
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("bad")))
        .with_member_id(s("x"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name("bad-in")]))
        .with_topic_partitions(Some(vec![]));
    ensure!(c.request(1, cg).await?.error_code == GROUP_ID_NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn members_commit_offsets_and_the_group_lists_restarts_and_deletes() -> Result<()> {
    let (mut b, mut c) = group_broker_with_topic("lc-in", 1).await?;
    let r = join_ready(&mut c, 1, "lc", "m").await?;
    let epoch = r.member_epoch;
    // OffsetCommit with the member's epoch; a stale one is refused.
    let ok = commit(&mut c, 9, "lc", "m", epoch, None, &[("lc-in", 0, 5, "")]).await?;
    ensure!(ok == vec![("lc-in".to_string(), 0, NONE)], "{ok:?}");
    let stale = commit(
        &mut c,
        9,
        "lc",
        "m",
        epoch - 1,
        None,
        &[("lc-in", 0, 6, "")],
    )
    .await?;
    ensure!(stale[0].2 == STALE_MEMBER_EPOCH, "{stale:?}");
    // ListGroups: type streams, filtered by it.
    let listed = list_groups(&mut c, 5, &[], &["streams"]).await?;
    ensure!(
        listed.len() == 1
            && listed[0].group_id.as_str() == "lc"
            && listed[0].group_type.as_str() == "streams"
            && listed[0].protocol_type.as_str() == "streams"
            && listed[0].group_state.as_str() == "Stable",
        "{listed:?}"
    );
    // The group, its member and the offsets survive a restart and a crash.
    for crash in [false, true] {
        drop(c);
        c = b.restart(crash).await?;
        let r = c.request(1, beat("lc", "m", epoch, None)).await?;
        ensure!(
            r.error_code == NONE && r.member_epoch == epoch,
            "crash {crash}: {r:?}"
        );
        ensure!(
            committed(&mut c, "lc", "lc-in", 0).await? == 5,
            "crash {crash}"
        );
    }
    ensure!(delete_group(&mut c, 2, "lc").await? == NON_EMPTY_GROUP);
    let left = c.request(1, beat("lc", "m", -1, None)).await?;
    ensure!(left.error_code == NONE, "{left:?}");
    ensure!(delete_group(&mut c, 2, "lc").await? == NONE);
    ensure!(list_groups(&mut c, 5, &[], &["streams"]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn streams_version_zero_turns_streams_groups_off() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("off-in", 1).await?;
    let update = UpdateFeaturesRequest::default().with_feature_updates(vec![
        update_features_request::FeatureUpdateKey::default()
            .with_feature(s("streams.version"))
            .with_max_version_level(0)
            .with_upgrade_type(2),
    ]);
    let r = c.request(1, update).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    for v in 0..=1 {
        let hb = c.request(v, join("off", "m")).await?;
        ensure!(hb.error_code == UNSUPPORTED_VERSION, "v{v}: {hb:?}");
        let d = c
            .request(
                v,
                StreamsGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("off"))]),
            )
            .await?;
        ensure!(d.groups[0].error_code == UNSUPPORTED_VERSION, "v{v}: {d:?}");
    }
    Ok(())
}

#[tokio::test]
async fn offset_delete_keeps_the_source_topics_at_every_version() -> Result<()> {
    // Kafka 4.4's StreamsGroup.isSubscribedToTopic: while the group has members, its source and
    // repartition source topics are GROUP_SUBSCRIBED_TO_TOPIC; the changelog's and other
    // topics' offsets go; once the group is empty, all of them may.
    let (_b, mut c) = group_broker_with_topic("od-other", 1).await?;
    for v in advertised_versions(&mut c, ApiKey::OffsetDelete).await? {
        let app = format!("od{v}");
        let (input, rep, log) = (
            format!("{app}-in"),
            format!("{app}-words-repartition"),
            format!("{app}-counts-changelog"),
        );
        create_topic(&mut c, &input, 1).await?;
        let r = join_ready(&mut c, 1, &app, "m").await?;
        let commits = [
            (input.as_str(), 0, 1, ""),
            (rep.as_str(), 0, 2, ""),
            (log.as_str(), 0, 3, ""),
            ("od-other", 0, 4, ""),
        ];
        commit_ok(&mut c, &app, "m", r.member_epoch, &commits).await?;
        let asked = [
            (input.as_str(), 0),
            (rep.as_str(), 0),
            (log.as_str(), 0),
            ("od-other", 0),
        ];
        let (code, parts) = delete_offsets(&mut c, v, &app, &asked).await?;
        let codes: Vec<i16> = parts.iter().map(|p| p.2).collect();
        let kept = GROUP_SUBSCRIBED_TO_TOPIC;
        ensure!(
            code == NONE && codes == [kept, kept, NONE, NONE],
            "v{v}: {code} {parts:?}"
        );
        ensure!(committed(&mut c, &app, &input, 0).await? == 1, "v{v}");
        ensure!(committed(&mut c, &app, &rep, 0).await? == 2, "v{v}");
        ensure!(committed(&mut c, &app, &log, 0).await? == -1, "v{v}");
        ensure!(committed(&mut c, &app, "od-other", 0).await? == -1, "v{v}");
        let left = c.request(1, beat(&app, "m", -1, None)).await?;
        ensure!(left.error_code == NONE, "v{v}: {left:?}");
        let (code, parts) = delete_offsets(&mut c, v, &app, &asked[..2]).await?;
        ensure!(
            code == NONE && parts.iter().all(|p| p.2 == NONE),
            "v{v}: empty group: {code} {parts:?}"
        );
        ensure!(committed(&mut c, &app, &input, 0).await? == -1, "v{v}");
        ensure!(committed(&mut c, &app, &rep, 0).await? == -1, "v{v}");
    }
    Ok(())
}
