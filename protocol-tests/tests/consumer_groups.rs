//! KIP-848 consumer groups over the wire, beyond the per-version checks in all_versions.rs:
//! regular-expression subscriptions, membership that survives broker restarts, and OffsetDelete
//! of the topics the group does not consume.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;
use kafka_protocol::messages::*;

/// ConsumerGroupHeartbeat with the client-chosen member ids of v1 (KIP-1082).
const CGH_V: i16 = 1;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

fn beat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
}

fn partitions(r: &ConsumerGroupHeartbeatResponse) -> Option<usize> {
    r.assignment
        .as_ref()
        .map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum())
}

fn owned(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<Owned>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|t| {
                Owned::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(t.partitions.clone())
            })
            .collect()
    })
}

#[tokio::test]
async fn regex_subscription_matches_whole_names_and_follows_new_topics() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("rx-a", 2).await?;
    create_topic(&mut c, "other-rx-a", 3).await?;
    let bad = beat("rx", "bad", 0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(s("rx-(")));
    let r = c.request(CGH_V, bad).await?;
    ensure!(r.error_code == INVALID_REGULAR_EXPRESSION, "{r:?}");

    let join = beat("rx", "m", 0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(s("rx-.*")))
        .with_topic_partitions(Some(vec![]));
    let r = c.request(CGH_V, join).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    ensure!(partitions(&r) == Some(2), "only rx-a matches: {r:?}");

    create_topic(&mut c, "rx-b", 2).await?;
    let again = beat("rx", "m", r.member_epoch).with_topic_partitions(owned(&r));
    let r2 = c.request(CGH_V, again).await?;
    ensure!(r2.error_code == NONE, "{r2:?}");
    ensure!(
        r2.member_epoch > r.member_epoch,
        "a new topic moves the epoch"
    );
    ensure!(
        partitions(&r2) == Some(4),
        "rx-b joins the assignment: {r2:?}"
    );

    let described = c
        .request(
            1,
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("rx"))]),
        )
        .await?;
    let m = &described.groups[0].members[0];
    ensure!(
        m.subscribed_topic_regex.as_ref().map(|r| r.as_str()) == Some("rx-.*"),
        "{m:?}"
    );
    Ok(())
}

#[tokio::test]
async fn members_carry_on_across_clean_and_crash_restarts() -> Result<()> {
    let (mut b, mut c) = group_broker_with_topic("kept", 4).await?;
    let join = |m: &str| {
        beat("kept-group", m, 0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![name("kept")]))
            .with_topic_partitions(Some(vec![]))
    };
    let a = c.request(CGH_V, join("a")).await?;
    ensure!(a.error_code == NONE && partitions(&a) == Some(4), "{a:?}");
    // b joins; a is asked to give up half, reports it, and b gets that half.
    let b1 = c.request(CGH_V, join("b")).await?;
    let a2 = c
        .request(
            CGH_V,
            beat("kept-group", "a", a.member_epoch).with_topic_partitions(owned(&a)),
        )
        .await?;
    ensure!(partitions(&a2) == Some(2), "{a2:?}");
    let a3 = c
        .request(
            CGH_V,
            beat("kept-group", "a", a.member_epoch).with_topic_partitions(owned(&a2)),
        )
        .await?;
    let b2 = c
        .request(
            CGH_V,
            beat("kept-group", "b", b1.member_epoch).with_topic_partitions(Some(vec![])),
        )
        .await?;
    ensure!(partitions(&b2) == Some(2), "{b2:?}");
    let epochs = [(a3.member_epoch, "a"), (b2.member_epoch, "b")];

    for crash in [false, true] {
        drop(c);
        c = b.restart(crash).await?;
        for (epoch, member) in epochs {
            let r = c.request(CGH_V, beat("kept-group", member, epoch)).await?;
            ensure!(
                r.error_code == NONE && r.member_epoch == epoch,
                "{member} after restart (crash: {crash}): {r:?}"
            );
            ensure!(partitions(&r) == Some(2), "{member} keeps its half: {r:?}");
        }
    }
    Ok(())
}

/// IncrementalAlterConfigs on a group (resource type 32).
async fn alter_group(
    c: &mut Client,
    group: &str,
    configs: &[(&str, &str)],
) -> Result<(i16, String)> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(group))
            .with_configs(
                (configs.iter())
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(0)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let r = c.request(1, req).await?;
    let res = &r.responses[0];
    let message = res.error_message.as_ref().map(|m| m.to_string());
    Ok((res.error_code, message.unwrap_or_default()))
}

#[tokio::test]
async fn a_groups_own_session_timeout_and_heartbeat_interval_apply() -> Result<()> {
    // Wider bounds than Kafka's defaults (45-60 s sessions), as a test suite would set them.
    let b = start_broker_with(|c| {
        c.group.initial_rebalance_delay_ms = 0;
        c.group.consumer_session_bounds = (500, 60_000);
        c.group.consumer_heartbeat_bounds = (100, 15_000);
    })
    .await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "gcfg", 2).await?;
    // Out of the broker's bounds, or not longer than the heartbeat: INVALID_CONFIG (40).
    let (code, message) =
        alter_group(&mut c, "g", &[("consumer.session.timeout.ms", "100")]).await?;
    ensure!(code == 40, "{code} {message}");
    ensure!(
        message == "consumer.session.timeout.ms must be in the range 500 to 60000 inclusive.",
        "{message}"
    );
    let (code, message) =
        alter_group(&mut c, "g", &[("consumer.session.timeout.ms", "1000")]).await?;
    ensure!(
        code == 40,
        "the broker's 5 s heartbeat is longer: {code} {message}"
    );
    let settings = [
        ("consumer.session.timeout.ms", "1500"),
        ("consumer.heartbeat.interval.ms", "200"),
    ];
    let (code, message) = alter_group(&mut c, "g", &settings).await?;
    ensure!(code == NONE, "{code} {message}");
    // DescribeConfigs shows them as the group's, the others at the broker's values.
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s("g")),
    ]);
    let r = c.request(4, describe).await?;
    let entries = &r.results[0].configs;
    let entry = |n: &str| entries.iter().find(|e| e.name.as_str() == n);
    let session = entry("consumer.session.timeout.ms").ok_or_else(|| anyhow::anyhow!("{r:?}"))?;
    ensure!(
        session.value.as_deref() == Some("1500") && session.config_source == 8,
        "{session:?}"
    );
    let streams = entry("streams.session.timeout.ms").ok_or_else(|| anyhow::anyhow!("{r:?}"))?;
    ensure!(
        streams.value.as_deref() == Some("45000") && streams.config_source == 5,
        "{streams:?}"
    );
    // A member is told the group's heartbeat interval.
    let join = beat("g", "m", 0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name("gcfg")]))
        .with_topic_partitions(Some(vec![]));
    let r = c.request(CGH_V, join).await?;
    ensure!(
        r.error_code == NONE && r.heartbeat_interval_ms == 200,
        "{r:?}"
    );
    // It stops heartbeating: gone after the group's 1.5 s, long before the broker's 45 s.
    let started = std::time::Instant::now();
    loop {
        let d = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]);
        let r = c.request(0, d).await?;
        if r.groups[0].members.is_empty() {
            break;
        }
        ensure!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the member outlived the group's session timeout: {r:?}"
        );
        sleep_ms(100).await;
    }
    Ok(())
}

#[tokio::test]
async fn offset_delete_keeps_what_the_members_subscribe_to_at_every_version() -> Result<()> {
    // Kafka 4.4's deleteOffsets on a KIP-848 group: topics a member names or its regex matched
    // are GROUP_SUBSCRIBED_TO_TOPIC; other offsets go (a partition without one is NONE too);
    // once the group is empty nothing is subscribed.
    let (_b, mut c) = group_broker_with_topic("od-named", 1).await?;
    create_topic(&mut c, "od-rx-a", 1).await?;
    create_topic(&mut c, "od-other", 2).await?;
    for v in advertised_versions(&mut c, ApiKey::OffsetDelete).await? {
        let g = format!("od-v{v}");
        let named = beat(&g, "named", 0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![name("od-named")]))
            .with_topic_partitions(Some(vec![]));
        let r = c.request(CGH_V, named).await?;
        ensure!(r.error_code == NONE, "v{v}: {r:?}");
        let rx = beat(&g, "rx", 0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_regex(Some(s("od-rx-.*")))
            .with_topic_partitions(Some(vec![]));
        let r = c.request(CGH_V, rx).await?;
        ensure!(r.error_code == NONE, "v{v}: {r:?}");
        let commits = [
            ("od-named", 0, 1, ""),
            ("od-rx-a", 0, 2, ""),
            ("od-other", 0, 3, ""),
        ];
        commit_ok(&mut c, &g, "rx", r.member_epoch, &commits).await?;
        let asked = [
            ("od-named", 0),
            ("od-rx-a", 0),
            ("od-other", 0),
            ("od-other", 1),
            ("od-missing", 0),
        ];
        let (code, parts) = delete_offsets(&mut c, v, &g, &asked).await?;
        let codes: Vec<i16> = parts.iter().map(|p| p.2).collect();
        ensure!(code == NONE, "v{v}: {code}");
        ensure!(
            codes
                == [
                    GROUP_SUBSCRIBED_TO_TOPIC,
                    GROUP_SUBSCRIBED_TO_TOPIC,
                    NONE,
                    NONE,
                    UNKNOWN_TOPIC_OR_PARTITION
                ],
            "v{v}: {parts:?}"
        );
        ensure!(committed(&mut c, &g, "od-named", 0).await? == 1, "v{v}");
        ensure!(committed(&mut c, &g, "od-rx-a", 0).await? == 2, "v{v}");
        ensure!(committed(&mut c, &g, "od-other", 0).await? == -1, "v{v}");
        for m in ["named", "rx"] {
            let r = c.request(CGH_V, beat(&g, m, -1)).await?;
            ensure!(r.error_code == NONE, "v{v}: {r:?}");
        }
        let (code, parts) = delete_offsets(&mut c, v, &g, &asked[..2]).await?;
        ensure!(
            code == NONE && parts.iter().all(|p| p.2 == NONE),
            "v{v}: empty group: {code} {parts:?}"
        );
        ensure!(committed(&mut c, &g, "od-named", 0).await? == -1, "v{v}");
        ensure!(committed(&mut c, &g, "od-rx-a", 0).await? == -1, "v{v}");
    }
    Ok(())
}
