//! Share groups (KIP-932) over the wire, at every advertised version of ShareGroupHeartbeat,
//! ShareGroupDescribe, ShareFetch and ShareAcknowledge: membership and its errors, the type
//! filters of ListGroups, share sessions and their epochs, acquisition, acknowledgement (ACCEPT,
//! RELEASE, REJECT) and its errors, redelivery after a lock expires on the broker's clock, the
//! delivery-count limit, and the feature switch (share.version 0 answers UNSUPPORTED_VERSION);
//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets at every
//! advertised version, with their errors.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use common::*;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition as ShareFetchPartition, FetchTopic as ShareFetchTopic,
};
use kafka_protocol::messages::*;
use uuid::Uuid;

const V: i16 = 1;
const INVALID_RECORD_STATE: i16 = 121;
const SHARE_SESSION_NOT_FOUND: i16 = 122;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
const FENCED_MEMBER_EPOCH: i16 = 110;
const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_GROUP_ID: i16 = 24;
const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
const REJECT: i8 = 3;

fn beat(
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics.map(|t| t.iter().map(|n| name(n)).collect()))
}

/// The group starts at the earliest offset (the `share.auto.offset.reset` group config).
async fn earliest(c: &mut Client, group: &str) -> Result<()> {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(group))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("share.auto.offset.reset"))
                .with_config_operation(0)
                .with_value(Some(s("earliest")))]),
    ]);
    let r = c.request(1, req).await?;
    ensure!(r.responses[0].error_code == NONE, "{r:?}");
    Ok(())
}

fn fetch(
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: Vec<(i64, i64, Vec<i8>)>,
    max_wait_ms: i32,
) -> ShareFetchRequest {
    let batches = acks
        .into_iter()
        .map(|(first, last, types)| {
            AcknowledgementBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(types)
        })
        .collect();
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(500)
        .with_batch_size(500)
        .with_topics(vec![ShareFetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![ShareFetchPartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(batches)])])
}

fn acknowledge(
    group: &str,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: Vec<(i64, i64, Vec<i8>)>,
) -> ShareAcknowledgeRequest {
    let batches = acks
        .into_iter()
        .map(|(first, last, types)| {
            AckBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(types)
        })
        .collect();
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s(group))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(batches)])])
}

/// (first, last, delivery count) of every acquired range of partition 0.
fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn ack_code(r: &ShareFetchResponse) -> Option<i16> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .next()
        .map(|p| p.acknowledge_error_code)
}

#[tokio::test]
async fn share_group_heartbeat_and_describe_every_version() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("sg-t", 2).await?;
    for v in [V] {
        let g = format!("sg-{v}");
        let first = c.request(v, beat(&g, "m1", 0, Some(&["sg-t"]))).await?;
        ensure!(
            first.error_code == NONE && first.member_epoch == 1,
            "{first:?}"
        );
        let parts: usize = (first.assignment.iter())
            .flat_map(|a| &a.topic_partitions)
            .map(|t| t.partitions.len())
            .sum();
        ensure!(
            parts == 2,
            "every partition is shared with the member: {first:?}"
        );
        let again = c.request(v, beat(&g, "m1", 1, None)).await?;
        ensure!(
            again.error_code == NONE && again.member_epoch == 1,
            "{again:?}"
        );
        // Errors, with Kafka's codes.
        let unknown = c.request(v, beat(&g, "ghost", 1, None)).await?;
        ensure!(unknown.error_code == UNKNOWN_MEMBER_ID, "{unknown:?}");
        let fenced = c.request(v, beat(&g, "m1", 7, None)).await?;
        ensure!(fenced.error_code == FENCED_MEMBER_EPOCH, "{fenced:?}");
        let no_topics = c.request(v, beat(&g, "m2", 0, None)).await?;
        ensure!(no_topics.error_code == INVALID_REQUEST, "{no_topics:?}");
        let no_member = c.request(v, beat(&g, "", 0, Some(&["sg-t"]))).await?;
        ensure!(no_member.error_code == INVALID_REQUEST, "{no_member:?}");

        let describe = |ids: Vec<&str>| {
            ShareGroupDescribeRequest::default()
                .with_group_ids(ids.into_iter().map(|g| GroupId(s(g))).collect())
        };
        let d = c
            .request(v, describe(vec![&g, "no-such-share-group"]))
            .await?;
        let (found, missing) = (&d.groups[0], &d.groups[1]);
        ensure!(
            found.error_code == NONE && found.group_state.as_str() == "Stable",
            "{found:?}"
        );
        ensure!(
            found.members.len() == 1 && found.members[0].member_id.as_str() == "m1",
            "{found:?}"
        );
        ensure!(found.assignor_name.as_str() == "simple", "{found:?}");
        ensure!(missing.error_code == GROUP_ID_NOT_FOUND, "{missing:?}");

        // ListGroups' type filter, and a share group is no classic group.
        let listed = c
            .request(
                5,
                ListGroupsRequest::default().with_types_filter(vec![s("share")]),
            )
            .await?;
        ensure!(
            listed.groups.iter().any(|l| l.group_id.as_str() == g
                && l.group_type.as_str() == "share"
                && l.protocol_type.as_str() == "share"),
            "{listed:?}"
        );
        let classic = c
            .request(
                5,
                ListGroupsRequest::default().with_types_filter(vec![s("classic")]),
            )
            .await?;
        ensure!(
            !classic.groups.iter().any(|l| l.group_id.as_str() == g),
            "{classic:?}"
        );
        let consumer_hb = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&g)))
            .with_member_id(s("c1"))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![name("sg-t")]))
            .with_topic_partitions(Some(vec![]));
        let r = c.request(1, consumer_hb).await?;
        ensure!(
            r.error_code == GROUP_ID_NOT_FOUND,
            "not a consumer group: {r:?}"
        );
        let classic = join(&mut c, 9, &JoinSpec::consumer(&g, &["sg-t"])).await?;
        ensure!(
            classic.error_code == INCONSISTENT_GROUP_PROTOCOL,
            "not a classic group: {classic:?}"
        );

        let left = c.request(v, beat(&g, "m1", -1, None)).await?;
        ensure!(
            left.error_code == NONE && left.member_epoch == -1,
            "{left:?}"
        );
        let d = c.request(v, describe(vec![&g])).await?;
        ensure!(d.groups[0].group_state.as_str() == "Empty", "{d:?}");
    }
    Ok(())
}

#[tokio::test]
async fn share_fetch_and_acknowledge_every_version() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("sf-t", 1).await?;
    let id = topic_id(&mut c, "sf-t").await?;
    produce_ok(&mut c, "sf-t", 0, values_batch(&["a", "b", "c"])).await?;
    for v in [V] {
        let g = format!("sf-{v}");
        earliest(&mut c, &g).await?;
        // Acknowledgements cannot open a session.
        let r = c
            .request(v, fetch(&g, "m1", 0, id, vec![(0, 0, vec![ACCEPT])], 0))
            .await?;
        ensure!(r.error_code == INVALID_REQUEST, "{r:?}");
        let r = c.request(v, fetch(&g, "m1", 0, id, vec![], 5_000)).await?;
        ensure!(r.error_code == NONE, "{r:?}");
        ensure!(acquired(&r) == vec![(0, 2, 1)], "first fetch: {r:?}");
        ensure!(r.acquisition_lock_timeout_ms == 30_000, "{r:?}");
        let records = &r.responses[0].partitions[0].records;
        ensure!(records.as_ref().is_some_and(|b| !b.is_empty()), "{r:?}");
        // Another member gets nothing while m1 holds them.
        let other = c.request(v, fetch(&g, "m2", 0, id, vec![], 0)).await?;
        ensure!(acquired(&other).is_empty(), "{other:?}");
        // Bad acknowledgements, each refused whole.
        let wrong_epoch = c
            .request(v, acknowledge(&g, "m1", 5, id, vec![(0, 0, vec![ACCEPT])]))
            .await?;
        ensure!(
            wrong_epoch.error_code == INVALID_SHARE_SESSION_EPOCH,
            "{wrong_epoch:?}"
        );
        let no_session = c
            .request(v, acknowledge(&g, "m3", 1, id, vec![(0, 0, vec![ACCEPT])]))
            .await?;
        ensure!(
            no_session.error_code == SHARE_SESSION_NOT_FOUND,
            "{no_session:?}"
        );
        let code = |r: &ShareAcknowledgeResponse| r.responses[0].partitions[0].error_code;
        let overlap = vec![(0, 1, vec![ACCEPT]), (1, 2, vec![ACCEPT])];
        let r = c.request(v, acknowledge(&g, "m1", 1, id, overlap)).await?;
        ensure!(code(&r) == INVALID_REQUEST, "overlapping batches: {r:?}");
        let r = c
            .request(v, acknowledge(&g, "m1", 2, id, vec![(5, 9, vec![ACCEPT])]))
            .await?;
        ensure!(code(&r) == INVALID_REQUEST, "never acquired: {r:?}");
        let r = c
            .request(
                v,
                acknowledge(&g, "m1", 3, id, vec![(0, 2, vec![ACCEPT, RELEASE])]),
            )
            .await?;
        ensure!(
            code(&r) == INVALID_REQUEST,
            "types that do not fit the range: {r:?}"
        );
        let r = c
            .request(v, acknowledge(&g, "m2", 1, id, vec![(0, 2, vec![ACCEPT])]))
            .await?;
        ensure!(code(&r) == INVALID_RECORD_STATE, "not m2's records: {r:?}");
        // ACCEPT a, RELEASE b, REJECT c, piggy-backed on m1's next fetch, which acquires b
        // again (its second delivery): acknowledgements are applied before the fetch.
        let acks = vec![(0, 2, vec![ACCEPT, RELEASE, REJECT])];
        let r = c.request(v, fetch(&g, "m1", 4, id, acks, 0)).await?;
        ensure!(ack_code(&r) == Some(NONE), "piggy-backed acks: {r:?}");
        ensure!(acquired(&r) == vec![(1, 1, 2)], "b again: {r:?}");
        // m1 closes its session (epoch -1) without acknowledging b: b goes to m2.
        let r = c.request(v, fetch(&g, "m1", -1, id, vec![], 0)).await?;
        ensure!(r.error_code == NONE && acquired(&r).is_empty(), "{r:?}");
        let r = c.request(v, fetch(&g, "m2", 2, id, vec![], 5_000)).await?;
        ensure!(acquired(&r) == vec![(1, 1, 3)], "b once more: {r:?}");
        // a (accepted) and c (rejected) never come back.
        let r = c
            .request(v, acknowledge(&g, "m2", 3, id, vec![(1, 1, vec![ACCEPT])]))
            .await?;
        ensure!(code(&r) == NONE, "{r:?}");
        let r = c.request(v, fetch(&g, "m2", 4, id, vec![], 0)).await?;
        ensure!(acquired(&r).is_empty(), "{r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn locks_expire_on_the_broker_clock_and_the_delivery_limit_archives() -> Result<()> {
    let (b, mut c) = group_broker_with_topic("sl-t", 1).await?;
    let id = topic_id(&mut c, "sl-t").await?;
    produce_ok(&mut c, "sl-t", 0, values_batch(&["poison"])).await?;
    let g = "sl";
    earliest(&mut c, g).await?;
    let mut epoch = 0;
    // Deliveries 1 to 5, each lock left to expire.
    for delivery in 1..=5i16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = loop {
            let r = c.request(V, fetch(g, "m", epoch, id, vec![], 200)).await?;
            epoch += 1;
            if !acquired(&r).is_empty() || Instant::now() > deadline {
                break r;
            }
        };
        ensure!(
            acquired(&r) == vec![(0, 0, delivery)],
            "delivery {delivery}: {r:?}"
        );
        b.broker().clock.advance(30_000);
    }
    // Past the limit the record is archived: a new record is the only one delivered.
    produce_ok(&mut c, "sl-t", 0, values_batch(&["next"])).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.request(V, fetch(g, "m", epoch, id, vec![], 200)).await?;
        epoch += 1;
        match acquired(&r).as_slice() {
            [] if Instant::now() < deadline => continue,
            [(1, 1, 1)] => return Ok(()),
            other => bail!("expected only offset 1: {other:?}"),
        }
    }
}

fn describe_offsets(
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> DescribeShareGroupOffsetsRequest {
    let topics = topics.map(|ts| {
        ts.iter()
            .map(|(t, ps)| {
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(name(t))
                    .with_partitions(ps.to_vec())
            })
            .collect()
    });
    DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(topics),
    ])
}

/// (topic, partition, start offset, lag, error) of the only group described.
fn described(r: &DescribeShareGroupOffsetsResponse) -> Vec<(String, i32, i64, i64, i16)> {
    (r.groups.iter())
        .flat_map(|g| &g.topics)
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let topic = t.topic_name.to_string();
                (
                    topic,
                    p.partition_index,
                    p.start_offset,
                    p.lag,
                    p.error_code,
                )
            })
        })
        .collect()
}

fn alter_offsets(group: &str, topics: &[(&str, &[(i32, i64)])]) -> AlterShareGroupOffsetsRequest {
    let topics = (topics.iter())
        .map(|(t, ps)| {
            let partitions = (ps.iter())
                .map(|&(p, o)| {
                    AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(p)
                        .with_start_offset(o)
                })
                .collect();
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(name(t))
                .with_partitions(partitions)
        })
        .collect();
    AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics)
}

/// (topic, partition, error) of an alter's answer.
fn altered(r: &AlterShareGroupOffsetsResponse) -> Vec<(String, i32, i16)> {
    (r.responses.iter())
        .flat_map(|t| {
            (t.partitions.iter())
                .map(|p| (t.topic_name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

fn delete_offsets_of(group: &str, topics: &[&str]) -> DeleteShareGroupOffsetsRequest {
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(
            (topics.iter())
                .map(|t| DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(name(t)))
                .collect(),
        )
}

/// Where share-partitions start and how far they lag (DescribeShareGroupOffsets v0 and v1);
/// an alter moves them and a delete forgets them, only while the group has no member; the
/// errors Kafka 4.4 gives.
#[tokio::test]
async fn share_group_offsets_every_version() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("sgo-t", 2).await?;
    create_topic(&mut c, "sgo-u", 1).await?;
    let id = topic_id(&mut c, "sgo-t").await?;
    let g = "sgo";
    earliest(&mut c, g).await?;
    let hb = c.request(V, beat(g, "m1", 0, Some(&["sgo-t"]))).await?;
    ensure!(hb.error_code == NONE, "{hb:?}");
    produce_ok(
        &mut c,
        "sgo-t",
        0,
        values_batch(&["a", "b", "c", "d", "e", "f"]),
    )
    .await?;
    let r = c.request(V, fetch(g, "m1", 0, id, vec![], 5_000)).await?;
    ensure!(acquired(&r) == vec![(0, 5, 1)], "{r:?}");
    // 0 and 2 accepted: the start is 1 (still acquired), 2 is done, so 1 and 3-5 are the lag.
    let acks = vec![(0, 0, vec![ACCEPT]), (2, 2, vec![ACCEPT])];
    let r = c.request(V, acknowledge(g, "m1", 1, id, acks)).await?;
    ensure!(r.responses[0].partitions[0].error_code == NONE, "{r:?}");
    for v in [0, 1] {
        let lag = |l: i64| if v >= 1 { l } else { -1 };
        // Every share-partition with a state (partition 1 was never fetched).
        let r = c.request(v, describe_offsets(g, None)).await?;
        ensure!(r.groups[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(
            described(&r) == vec![("sgo-t".into(), 0, 1, lag(4), NONE)],
            "v{v}: {r:?}"
        );
        ensure!(r.groups[0].topics[0].topic_id == id, "v{v}: {r:?}");
        // Listed: a partition without a state, and an unknown topic after the known ones.
        let listed: &[(&str, &[i32])] = &[("nope", &[0]), ("sgo-t", &[0, 1])];
        let r = c.request(v, describe_offsets(g, Some(listed))).await?;
        let want = vec![
            ("sgo-t".into(), 0, 1, lag(4), NONE),
            ("sgo-t".into(), 1, -1, -1, NONE),
            ("nope".into(), 0, -1, -1, NONE),
        ];
        ensure!(described(&r) == want, "v{v}: {r:?}");
        ensure!(r.groups[0].topics[1].topic_id == Uuid::nil(), "v{v}: {r:?}");
        // No such group: nothing, without an error.
        let r = c.request(v, describe_offsets("sgo-none", None)).await?;
        ensure!(
            r.groups[0].error_code == NONE && r.groups[0].topics.is_empty(),
            "v{v}: {r:?}"
        );
    }
    // A member is in the group: neither alter nor delete.
    let r = c
        .request(0, alter_offsets(g, &[("sgo-t", &[(0, 0)])]))
        .await?;
    ensure!(
        r.error_code == NON_EMPTY_GROUP && r.responses.is_empty(),
        "{r:?}"
    );
    ensure!(
        r.error_message.as_deref() == Some("The group is not empty."),
        "{r:?}"
    );
    let r = c.request(0, delete_offsets_of(g, &["sgo-t"])).await?;
    ensure!(r.error_code == NON_EMPTY_GROUP, "{r:?}");
    let left = c.request(V, beat(g, "m1", -1, None)).await?;
    ensure!(left.error_code == NONE, "{left:?}");
    // Alter: partition 0 starts at 4; partition 5 and topic nope do not exist.
    let req = alter_offsets(g, &[("nope", &[(0, 0)]), ("sgo-t", &[(0, 4), (5, 0)])]);
    let r = c.request(0, req).await?;
    let want = vec![
        ("nope".into(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ("sgo-t".into(), 0, NONE),
        ("sgo-t".into(), 5, UNKNOWN_TOPIC_OR_PARTITION),
    ];
    ensure!(r.error_code == NONE && altered(&r) == want, "{r:?}");
    let r = c.request(1, describe_offsets(g, None)).await?;
    ensure!(
        described(&r) == vec![("sgo-t".into(), 0, 4, 2, NONE)],
        "{r:?}"
    );
    // The next member gets 4 and 5, delivered afresh (it never joins: the group stays empty).
    let r = c.request(V, fetch(g, "m2", 0, id, vec![], 5_000)).await?;
    ensure!(acquired(&r) == vec![(4, 5, 1)], "{r:?}");
    // Delete: sgo-t's state goes; sgo-u has none, nope does not exist.
    let r = c
        .request(0, delete_offsets_of(g, &["nope", "sgo-u", "sgo-t"]))
        .await?;
    let results: Vec<(String, i16, Option<String>)> = (r.responses.iter())
        .map(|t| {
            (
                t.topic_name.to_string(),
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    let want = vec![
        ("sgo-t".into(), NONE, None),
        (
            "nope".into(),
            UNKNOWN_TOPIC_OR_PARTITION,
            Some("This server does not host this topic-partition.".into()),
        ),
        (
            "sgo-u".into(),
            UNKNOWN_TOPIC_OR_PARTITION,
            Some("There is no offset information to delete.".into()),
        ),
    ];
    ensure!(r.error_code == NONE && results == want, "{r:?}");
    let r = c.request(1, describe_offsets(g, None)).await?;
    ensure!(described(&r).is_empty(), "{r:?}");
    // The next fetch starts over where share.auto.offset.reset says: the earliest offset.
    let r = c.request(V, fetch(g, "m3", 0, id, vec![], 5_000)).await?;
    ensure!(acquired(&r) == vec![(0, 5, 1)], "{r:?}");

    // Group errors: none at all, another type, an empty id. Alter makes a missing one, empty.
    let r = c
        .request(0, delete_offsets_of("sgo-none", &["sgo-t"]))
        .await?;
    ensure!(r.error_code == GROUP_ID_NOT_FOUND, "{r:?}");
    ensure!(
        r.error_message.as_deref() == Some("Group sgo-none not found."),
        "{r:?}"
    );
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("sgo-consumer")))
        .with_member_id(s("c1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name("sgo-u")]))
        .with_topic_partitions(Some(vec![]));
    let r = c.request(0, cg).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    for req in [alter_offsets("sgo-consumer", &[("sgo-t", &[(0, 0)])])] {
        let r = c.request(0, req).await?;
        ensure!(r.error_code == GROUP_ID_NOT_FOUND, "{r:?}");
        ensure!(
            r.error_message.as_deref() == Some("Group sgo-consumer is not a share group."),
            "{r:?}"
        );
    }
    let r = c
        .request(0, delete_offsets_of("sgo-consumer", &["sgo-t"]))
        .await?;
    ensure!(r.error_code == GROUP_ID_NOT_FOUND, "{r:?}");
    let r = c
        .request(0, alter_offsets("", &[("sgo-t", &[(0, 0)])]))
        .await?;
    ensure!(r.error_code == INVALID_GROUP_ID, "{r:?}");
    let r = c
        .request(0, alter_offsets("sgo-new", &[("sgo-t", &[(1, 0)])]))
        .await?;
    ensure!(
        r.error_code == NONE && altered(&r) == vec![("sgo-t".into(), 1, NONE)],
        "{r:?}"
    );
    let d = c
        .request(
            V,
            ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("sgo-new"))]),
        )
        .await?;
    ensure!(
        d.groups[0].error_code == NONE && d.groups[0].group_state.as_str() == "Empty",
        "{d:?}"
    );
    let r = c.request(1, describe_offsets("sgo-new", None)).await?;
    ensure!(
        described(&r) == vec![("sgo-t".into(), 1, 0, 0, NONE)],
        "{r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn share_version_zero_turns_share_groups_off() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("so-t", 1).await?;
    let update = UpdateFeaturesRequest::default().with_feature_updates(vec![
        update_features_request::FeatureUpdateKey::default()
            .with_feature(s("share.version"))
            .with_max_version_level(0)
            .with_upgrade_type(2),
    ]);
    let r = c.request(1, update).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let hb = c.request(V, beat("so", "m", 0, Some(&["so-t"]))).await?;
    ensure!(hb.error_code == UNSUPPORTED_VERSION, "{hb:?}");
    let id = topic_id(&mut c, "so-t").await?;
    let f = c.request(V, fetch("so", "m", 0, id, vec![], 0)).await?;
    ensure!(f.error_code == UNSUPPORTED_VERSION, "{f:?}");
    let a = c.request(V, acknowledge("so", "m", 1, id, vec![])).await?;
    ensure!(a.error_code == UNSUPPORTED_VERSION, "{a:?}");
    let d = c.request(1, describe_offsets("so", None)).await?;
    ensure!(d.groups[0].error_code == UNSUPPORTED_VERSION, "{d:?}");
    let r = c
        .request(0, alter_offsets("so", &[("so-t", &[(0, 0)])]))
        .await?;
    ensure!(r.error_code == UNSUPPORTED_VERSION, "{r:?}");
    let r = c.request(0, delete_offsets_of("so", &["so-t"])).await?;
    ensure!(r.error_code == UNSUPPORTED_VERSION, "{r:?}");
    // Still advertised, as Kafka 4.4 advertises them.
    let versions = api_versions(&mut c).await?;
    ensure!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ShareFetch as i16),
        "{versions:?}"
    );
    Ok(())
}

/// Acknowledged records are not delivered again after a restart, clean or after a crash;
/// records acquired but not acknowledged become available again; the share group's membership
/// comes back, and share sessions do not (SHARE_SESSION_NOT_FOUND: the client opens a new one).
#[tokio::test]
async fn share_state_survives_clean_and_crash_restarts() -> Result<()> {
    let (mut b, mut c) = group_broker_with_topic("sr-t", 1).await?;
    let id = topic_id(&mut c, "sr-t").await?;
    let g = "sr";
    earliest(&mut c, g).await?;
    let hb = c.request(V, beat(g, "m1", 0, Some(&["sr-t"]))).await?;
    ensure!(hb.error_code == NONE, "{hb:?}");
    produce_ok(
        &mut c,
        "sr-t",
        0,
        values_batch(&["a", "b", "c", "d", "e", "f"]),
    )
    .await?;
    let r = c.request(V, fetch(g, "m1", 0, id, vec![], 5_000)).await?;
    ensure!(acquired(&r) == vec![(0, 5, 1)], "{r:?}");
    let acks = vec![(0, 1, vec![ACCEPT, REJECT])];
    let r = c.request(V, acknowledge(g, "m1", 1, id, acks)).await?;
    ensure!(r.responses[0].partitions[0].error_code == NONE, "{r:?}");
    // 2-5 stay acquired by m1 through the restarts; each restart makes them available again,
    // and the member that takes them accepts 2 and keeps the rest.
    for (next, crash) in [(2, false), (3, true)] {
        drop(c);
        c = b.restart(crash).await?;
        let hb = c.request(V, beat(g, "m1", 1, None)).await?;
        ensure!(
            hb.error_code == NONE,
            "membership after restart (crash: {crash}): {hb:?}"
        );
        let r = c.request(V, fetch(g, "m1", 2, id, vec![], 0)).await?;
        ensure!(r.error_code == SHARE_SESSION_NOT_FOUND, "{r:?}");
        let r = c.request(V, fetch(g, "m1", 0, id, vec![], 5_000)).await?;
        ensure!(
            acquired(&r).first().map(|a| (a.0, a.1)) == Some((next, 5)),
            "after restart (crash: {crash}): {r:?}"
        );
        let r = c
            .request(
                V,
                acknowledge(g, "m1", 1, id, vec![(next, next, vec![ACCEPT])]),
            )
            .await?;
        ensure!(r.responses[0].partitions[0].error_code == NONE, "{r:?}");
    }
    // DeleteGroups: refused while m1 is a member; once it left, the group and its share-partition
    // state go, and the group starts over from the earliest offset.
    ensure!(
        delete_group(&mut c, 2, g).await? == NON_EMPTY_GROUP,
        "m1 is a member"
    );
    let left = c.request(V, beat(g, "m1", -1, None)).await?;
    ensure!(left.error_code == NONE, "{left:?}");
    ensure!(
        delete_group(&mut c, 2, g).await? == NONE,
        "the empty share group is deleted"
    );
    let d = c
        .request(
            V,
            ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(g))]),
        )
        .await?;
    ensure!(d.groups[0].error_code == GROUP_ID_NOT_FOUND, "{d:?}");
    earliest(&mut c, g).await?;
    let r = c.request(V, fetch(g, "m3", 0, id, vec![], 5_000)).await?;
    ensure!(
        acquired(&r) == vec![(0, 5, 1)],
        "a new start after the deletion: {r:?}"
    );
    Ok(())
}
