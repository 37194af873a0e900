//! Client quotas: AlterClientQuotas and DescribeClientQuotas at every version (Kafka's checks
//! and errors, the metadata log keeping them over a restart), and the produce and fetch byte
//! rates enforced as Kafka's ClientQuotaManager does: throttle_time_ms in the answer, the
//! connection muted for that long after it, a throttled fetch answered without its data; and the
//! controller mutation rate (KIP-599) on CreateTopics, CreatePartitions and DeleteTopics; and an
//! ip's connection_creation_rate (KIP-612), enforced when connections are accepted.

mod common;

/// Kafka's THROTTLING_QUOTA_EXCEEDED (KIP-599).
const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::*;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, ApiVersionsRequest, CreateTopicsRequest, DescribeClientQuotasRequest,
};

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect()
}

fn op(key: &str, value: Option<f64>) -> OpData {
    OpData::default()
        .with_key(s(key))
        .with_value(value.unwrap_or(0.0))
        .with_remove(value.is_none())
}

fn alter(parts: &[(&str, Option<&str>)], ops: Vec<OpData>) -> AlterClientQuotasRequest {
    AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(entity(parts))
        .with_ops(ops)])
}

/// The quotas of the one entity `strict` filter (type, name) finds.
async fn quotas_of(
    c: &mut Client,
    v: i16,
    parts: &[(&str, Option<&str>)],
) -> Result<Vec<(String, f64)>> {
    let components = parts
        .iter()
        .map(|(t, n)| {
            ComponentData::default()
                .with_entity_type(s(t))
                .with_match_type(if n.is_some() { 0 } else { 1 })
                .with_match(n.map(s))
        })
        .collect();
    let req = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(true);
    let r = c.request(v, req).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let entries = r.entries.unwrap_or_default();
    ensure!(entries.len() <= 1, "{entries:?}");
    Ok(entries
        .into_iter()
        .flat_map(|e| e.values)
        .map(|q| (q.key.to_string(), q.value))
        .collect())
}

#[tokio::test]
async fn quotas_are_set_described_and_removed_at_every_version() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    let client = [("client-id", Some("c1"))];
    let default_user = [("user", None)];
    for v in 0..=1 {
        let r = c
            .request(
                v,
                alter(&client, vec![op("producer_byte_rate", Some(1024.0))])
                    .with_validate_only(true),
            )
            .await?;
        ensure!(r.entries[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(
            quotas_of(&mut c, v, &client).await?.is_empty(),
            "v{v}: validate_only stored it"
        );
        let r = c
            .request(
                v,
                alter(
                    &client,
                    vec![
                        op("producer_byte_rate", Some(1024.0)),
                        op("consumer_byte_rate", Some(2048.0)),
                    ],
                ),
            )
            .await?;
        ensure!(r.entries[0].error_code == NONE, "v{v}: {r:?}");
        let r = c
            .request(
                v,
                alter(&default_user, vec![op("producer_byte_rate", Some(4096.0))]),
            )
            .await?;
        ensure!(r.entries[0].error_code == NONE, "v{v}: {r:?}");
        let mut got = quotas_of(&mut c, v, &client).await?;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        ensure!(
            got == [
                ("consumer_byte_rate".to_string(), 2048.0),
                ("producer_byte_rate".to_string(), 1024.0)
            ],
            "v{v}: {got:?}"
        );
        ensure!(
            quotas_of(&mut c, v, &default_user).await?
                == [("producer_byte_rate".to_string(), 4096.0)],
            "v{v}"
        );
        // Removing one key, then a key that is not set (no error, nothing changes).
        let r = c
            .request(
                v,
                alter(
                    &client,
                    vec![op("consumer_byte_rate", None), op("no_such_rate", None)],
                ),
            )
            .await?;
        ensure!(r.entries[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(
            quotas_of(&mut c, v, &client).await? == [("producer_byte_rate".to_string(), 1024.0)],
            "v{v}"
        );
        for (parts, ops, what) in [
            (
                &client[..],
                vec![op("no_such_rate", Some(1.0))],
                "unknown key",
            ),
            (
                &client[..],
                vec![op("producer_byte_rate", Some(0.0))],
                "zero",
            ),
            (
                &client[..],
                vec![op("producer_byte_rate", Some(-1.0))],
                "negative",
            ),
            (
                &client[..],
                vec![op("producer_byte_rate", Some(1.5))],
                "fractional",
            ),
            (
                &client[..],
                vec![
                    op("producer_byte_rate", Some(1.0)),
                    op("producer_byte_rate", Some(2.0)),
                ],
                "a key twice",
            ),
            (
                &[][..],
                vec![op("producer_byte_rate", Some(1.0))],
                "no entity",
            ),
            (
                &[("group", Some("g"))][..],
                vec![op("producer_byte_rate", Some(1.0))],
                "entity type",
            ),
            (
                &[("user", Some(""))][..],
                vec![op("producer_byte_rate", Some(1.0))],
                "empty name",
            ),
            (
                &[("ip", Some("127.0.0.1")), ("user", Some("u"))][..],
                vec![op("connection_creation_rate", Some(1.0))],
                "ip with user",
            ),
        ] {
            let r = c.request(v, alter(parts, ops)).await?;
            ensure!(
                r.entries[0].error_code == INVALID_REQUEST,
                "v{v} {what}: {r:?}"
            );
        }
        // Clean up for the next version.
        c.request(v, alter(&client, vec![op("producer_byte_rate", None)]))
            .await?;
        c.request(
            v,
            alter(&default_user, vec![op("producer_byte_rate", None)]),
        )
        .await?;
        ensure!(quotas_of(&mut c, v, &client).await?.is_empty(), "v{v}");
    }
    // Quotas are in the metadata log: they survive a restart.
    c.request(
        1,
        alter(&client, vec![op("consumer_byte_rate", Some(5000.0))]),
    )
    .await?;
    drop(c);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(quotas_of(&mut c, 1, &client).await? == [("consumer_byte_rate".to_string(), 5000.0)]);
    Ok(())
}

/// An ip entity's connection_creation_rate: set, described and removed for a named address and
/// for the default ip entity, and refused with Kafka's checks (an address, a whole number within
/// an INT, only this key on an ip entity and only on ip entities).
#[tokio::test]
async fn ip_quotas_are_set_described_checked_and_removed() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let rate = "connection_creation_rate";
    for v in 0..=1 {
        for parts in [&[("ip", Some("192.0.2.7"))][..], &[("ip", None)]] {
            let r = c
                .request(v, alter(parts, vec![op(rate, Some(50.0))]))
                .await?;
            ensure!(r.entries[0].error_code == NONE, "v{v} {parts:?}: {r:?}");
            let got = quotas_of(&mut c, v, parts).await?;
            ensure!(got == [(rate.to_string(), 50.0)], "v{v} {parts:?}: {got:?}");
            let r = c.request(v, alter(parts, vec![op(rate, None)])).await?;
            ensure!(r.entries[0].error_code == NONE, "v{v} {parts:?}: {r:?}");
            ensure!(
                quotas_of(&mut c, v, parts).await?.is_empty(),
                "v{v} {parts:?}"
            );
        }
        let ip = [("ip", Some("192.0.2.7"))];
        for (parts, ops, what) in [
            (
                &[("ip", Some("not-an-ip"))][..],
                vec![op(rate, Some(5.0))],
                "a name",
            ),
            (&ip[..], vec![op(rate, Some(1.5))], "fractional"),
            (&ip[..], vec![op(rate, Some(3e9))], "beyond an INT"),
            (&ip[..], vec![op(rate, Some(0.0))], "zero"),
            (
                &ip[..],
                vec![op("producer_byte_rate", Some(5.0))],
                "a client key",
            ),
            (
                &[("user", Some("u"))][..],
                vec![op(rate, Some(5.0))],
                "on a user",
            ),
        ] {
            let r = c.request(v, alter(parts, ops)).await?;
            ensure!(
                r.entries[0].error_code == INVALID_REQUEST,
                "v{v} {what}: {r:?}"
            );
        }
    }
    Ok(())
}

/// KIP-612: 127.0.0.1 limited to 3 new connections per second (measured over one window:
/// quota.window.num 2). Three connections within the window are served; the fourth and fifth are
/// accepted but never answered, and closed once their throttle time has passed on the broker's
/// clock; once the window has passed (the clock moved), a new connection is served again.
/// Connections already open are never touched.
#[tokio::test]
async fn an_ip_over_its_connection_creation_rate_is_closed_until_the_window_passes() -> Result<()> {
    let b = start_broker_with(|c| {
        c.manual_clock = true;
        c.quota_window_num = 2;
    })
    .await?;
    let mut admin = b.client().await?;
    let localhost = [("ip", Some("127.0.0.1"))];
    let rate = "connection_creation_rate";
    let r = admin
        .request(1, alter(&localhost, vec![op(rate, Some(3.0))]))
        .await?;
    ensure!(r.entries[0].error_code == NONE, "{r:?}");
    let served = |mut c: Client| async move {
        let r = c.request(2, ApiVersionsRequest::default()).await?;
        ensure!(r.error_code == NONE, "{r:?}");
        anyhow::Ok(c)
    };
    let mut open = Vec::new();
    for i in 0..3 {
        open.push(
            served(b.client().await?)
                .await
                .context(format!("connection {i}"))?,
        );
    }
    // The kernel accepts them and the broker holds them without reading. A throttled
    // connection is taken back from the rate: the fifth is throttled as the fourth (not
    // longer), still within the window.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = b.client().await?;
        c.send_request(2, &ApiVersionsRequest::default()).await.ok();
        held.push(c);
    }
    let counted = b.broker().metrics.accept_throttles(1, "PLAINTEXT");
    let throttled = || {
        counted
            .ip_throttled
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while throttled() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(
        throttled() == 2,
        "{} connections counted as throttled",
        throttled()
    );
    for c in open.iter_mut() {
        c.request(2, ApiVersionsRequest::default()).await?;
    }
    // Their throttle is measured on the broker's clock (Kafka's acceptor waits on its `Time`):
    // standing still, it holds them unanswered (for a second here, three times their throttle
    // time, which on real time would have closed them); moved past it, they are closed.
    for c in held.iter_mut() {
        let r = c.try_read_frame(Duration::from_millis(1_000)).await;
        ensure!(
            r.is_err(),
            "answered or closed while the clock stood still: {r:?}"
        );
    }
    b.broker().clock.advance(2_000);
    for (i, c) in held.iter_mut().enumerate() {
        c.expect_closed()
            .await
            .context(format!("throttled connection {i} after the clock moved"))?;
    }
    open.push(
        served(b.client().await?)
            .await
            .context("after the window")?,
    );
    // Without the quota, nothing is throttled.
    let r = admin
        .request(1, alter(&localhost, vec![op(rate, None)]))
        .await?;
    ensure!(r.entries[0].error_code == NONE, "{r:?}");
    for i in 0..10 {
        served(b.client().await?)
            .await
            .context(format!("unlimited {i}"))?;
    }
    Ok(())
}

/// A Produce of one record with `value` to partition 0 of `topic`.
fn produce_one(topic: &str, value: &str) -> kafka_protocol::messages::ProduceRequest {
    produce_request(
        -1,
        vec![topic_data(topic, vec![(0, values_batch(&[value]))])],
    )
}

#[tokio::test]
async fn a_producer_over_its_quota_is_throttled_and_muted() -> Result<()> {
    let (b, mut c) = broker_with_topic("quota-produce", 1).await?;
    let client_id = c.client_id.clone().unwrap_or_default();
    let r = c
        .request(
            1,
            alter(
                &[("client-id", Some(&client_id))],
                vec![op("producer_byte_rate", Some(1000.0))],
            ),
        )
        .await?;
    ensure!(r.entries[0].error_code == NONE, "{r:?}");
    // Another client id, without a quota, is never throttled.
    let mut other = b.client().await?;
    other.client_id = Some("unlimited".into());
    let big = "x".repeat(20_000);
    let r = other
        .request(PRODUCE_V, produce_one("quota-produce", &big))
        .await?;
    ensure!(r.throttle_time_ms == 0, "{r:?}");
    // 5 kB is within 1000 B/s over the 10 s the rate is measured over at first.
    let small = "x".repeat(5_000);
    let r = c
        .request(PRODUCE_V, produce_one("quota-produce", &small))
        .await?;
    ensure!(r.throttle_time_ms == 0, "{r:?}");
    // 5.5 kB more: over 10 s that is about 1060 B/s, so about 600 ms of throttle.
    let more = "x".repeat(5_500);
    let r = c
        .request(PRODUCE_V, produce_one("quota-produce", &more))
        .await?;
    let throttle = r.throttle_time_ms;
    ensure!((100..3_000).contains(&throttle), "{r:?}");
    ensure!(
        r.responses[0].partition_responses[0].error_code == NONE,
        "{r:?}"
    );
    // The connection reads nothing more until the throttle time has passed (KIP-219).
    let asked = Instant::now();
    c.request(3, ApiVersionsRequest::default()).await?;
    let waited = asked.elapsed();
    ensure!(
        waited >= Duration::from_millis(throttle as u64 - 50),
        "answered after {waited:?}, throttled for {throttle} ms"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_over_its_request_percentage_is_throttled_one_window_at_most() -> Result<()> {
    let (b, mut c) = broker_with_topic("quota-requests", 1).await?;
    let client_id = c.client_id.clone().unwrap_or_default();
    // A thousandth of a percent of one thread: 0.1 ms of the broker's time per 10 s window,
    // which a few requests use up.
    let r = c
        .request(
            1,
            alter(
                &[("client-id", Some(&client_id))],
                vec![op("request_percentage", Some(0.001))],
            ),
        )
        .await?;
    ensure!(r.entries[0].error_code == NONE, "{r:?}");
    let describe = quotas_of(&mut c, 1, &[("client-id", Some(&client_id))]).await?;
    ensure!(
        describe.contains(&("request_percentage".to_string(), 0.001)),
        "{describe:?}"
    );
    let metadata = || {
        kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
                Some(kafka_protocol::messages::TopicName("quota-requests".into())),
            ),
        ]))
    };
    let mut throttle = 0;
    for _ in 0..10_000 {
        let r = c.request(METADATA_V, metadata()).await?;
        ensure!(r.topics[0].error_code == NONE, "{r:?}");
        throttle = r.throttle_time_ms;
        if throttle > 0 {
            break;
        }
    }
    // Kafka's request quota throttles for one quota window (1 s) at most.
    ensure!(
        (1..=1000).contains(&throttle),
        "10,000 requests over the quota, throttle time {throttle}"
    );
    // The connection reads nothing more until the throttle time has passed (KIP-219).
    let asked = Instant::now();
    c.request(3, ApiVersionsRequest::default()).await?;
    ensure!(asked.elapsed() >= Duration::from_millis(throttle as u64 / 2));
    // Another client id, without a quota, is never throttled.
    let mut other = b.client().await?;
    other.client_id = Some("unlimited".into());
    for _ in 0..100 {
        let r = other.request(METADATA_V, metadata()).await?;
        ensure!(r.throttle_time_ms == 0, "{r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_consumer_over_its_quota_gets_no_data_until_it_may() -> Result<()> {
    let (b, mut c) = broker_with_topic("quota-fetch", 1).await?;
    let big = "y".repeat(30_000);
    produce_ok(&mut c, "quota-fetch", 0, values_batch(&[&big])).await?;
    let mut consumer = b.client().await?;
    consumer.client_id = Some("slow-reader".into());
    let r = c
        .request(
            1,
            alter(
                &[("client-id", Some("slow-reader"))],
                vec![op("consumer_byte_rate", Some(1000.0))],
            ),
        )
        .await?;
    ensure!(r.entries[0].error_code == NONE, "{r:?}");
    // 30 kB over 10 s is 3000 B/s, three times the quota: the answer carries no data.
    let req = fetch_request(
        vec![fetch_topic(
            "quota-fetch",
            vec![fetch_partition(0, 0, 1 << 20)],
        )],
        0,
        0,
    );
    let r = consumer.request(FETCH_V, req.clone()).await?;
    ensure!(r.throttle_time_ms > 0 && r.responses.is_empty(), "{r:?}");
    // Its bytes were taken back; another client id reads the data at once.
    let p = fetch_one(&mut c, "quota-fetch", 0, 0, 1 << 20).await?;
    ensure!(
        p.records.as_ref().is_some_and(|r| r.len() > 30_000),
        "{p:?}"
    );
    Ok(())
}

#[tokio::test]
async fn partition_mutations_over_the_quota_are_refused_or_throttled() -> Result<()> {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::{CreatePartitionsRequest, DeleteTopicsRequest, TopicName};
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let client_id = c.client_id.clone().unwrap_or_default();
    // One partition per second; with quota.window.num 11 of 1 s, a burst of 10.
    let r = c
        .request(
            1,
            alter(
                &[("client-id", Some(&client_id))],
                vec![op("controller_mutation_rate", Some(1.0))],
            ),
        )
        .await?;
    ensure!(r.entries[0].error_code == NONE, "{r:?}");
    // Strict (v6+): the burst, then one topic that overdraws it, both created without throttle;
    // the next is refused while the bucket is below zero, for the 5 s it needs to refill.
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            creatable("mut-a", 10),
            creatable("mut-b", 5),
            creatable("mut-c", 1),
        ])
        .with_timeout_ms(10_000);
    let r = c.request(7, req).await?;
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    ensure!(codes == [NONE, NONE, THROTTLING_QUOTA_EXCEEDED], "{r:?}");
    ensure!((4_000..=5_000).contains(&r.throttle_time_ms), "{r:?}");
    // The same client id on a new connection (the first one is muted for those seconds).
    let mut c2 = b.client().await?;
    c2.client_id = Some(client_id.clone());
    // Growing and deleting are refused the same way while the bucket is empty.
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("mut-b")))
            .with_count(6)
            .with_assignments(None)])
        .with_timeout_ms(10_000);
    let r = c2.request(3, grow).await?;
    ensure!(
        r.results[0].error_code == THROTTLING_QUOTA_EXCEEDED,
        "{r:?}"
    );
    ensure!(r.throttle_time_ms > 3_000, "{r:?}");
    let mut c3 = b.client().await?;
    c3.client_id = Some(client_id.clone());
    let delete = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(s("mut-a"))))
        ])
        .with_timeout_ms(10_000);
    let r = c3.request(6, delete).await?;
    ensure!(
        r.responses[0].error_code == THROTTLING_QUOTA_EXCEEDED,
        "{r:?}"
    );
    // Permissive (CreateTopics v5): created, and throttled for the overdraft it adds.
    let mut c4 = b.client().await?;
    c4.client_id = Some(client_id.clone());
    let r = create_topics(&mut c4, 5, vec![creatable("mut-d", 2)], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    // Another client id, without a quota, is neither refused nor throttled.
    let mut other = b.client().await?;
    other.client_id = Some("no-quota".into());
    let req = CreateTopicsRequest::default()
        .with_topics(vec![creatable("mut-e", 50)])
        .with_timeout_ms(10_000);
    let r = other.request(7, req).await?;
    ensure!(
        r.topics[0].error_code == NONE && r.throttle_time_ms == 0,
        "{r:?}"
    );
    // What exists: the refused topic only was never created.
    let names = ["mut-a", "mut-b", "mut-c", "mut-d"];
    let check = names.iter().map(|n| creatable(n, 1)).collect();
    let r = create_topics(&mut other, 7, check, true).await?;
    let codes: Vec<i16> = r.iter().map(|t| t.error_code).collect();
    let expected = [
        TOPIC_ALREADY_EXISTS,
        TOPIC_ALREADY_EXISTS,
        NONE,
        TOPIC_ALREADY_EXISTS,
    ];
    ensure!(codes == expected, "{r:?}");
    Ok(())
}
