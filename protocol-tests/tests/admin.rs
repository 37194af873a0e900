//! Topic administration beyond CreateTopics: deletion (files gone, ids gone, other topics
//! untouched, restart), partition growth and its errors, config changes that take effect at once
//! and survive a restart, DeleteRecords, and the produce-time rules those configs enforce.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const POLICY_VIOLATION: i16 = 44;

fn op(name: &str, op: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(s(name))
        .with_config_operation(op)
        .with_value(value.map(s))
}

async fn incremental(
    c: &mut Client,
    resources: Vec<(i8, &str, Vec<AlterableConfig>)>,
    validate_only: bool,
) -> Result<Vec<(i16, Option<String>)>> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .into_iter()
                .map(|(t, n, configs)| {
                    AlterConfigsResource::default()
                        .with_resource_type(t)
                        .with_resource_name(s(n))
                        .with_configs(configs)
                })
                .collect(),
        );
    let r = c.request(1, req).await?;
    Ok(r.responses
        .iter()
        .map(|x| {
            (
                x.error_code,
                x.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect())
}

#[tokio::test]
async fn delete_topic_removes_its_files_and_only_them() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "doomed", 2).await?;
    create_topic(&mut c, "doomed-1", 1).await?; // its directory doomed-1-0 looks alike
    produce_ok(&mut c, "doomed", 1, values_batch(&["x"])).await?;
    produce_ok(&mut c, "doomed-1", 0, values_batch(&["keep me"])).await?;
    let id = topic_id(&mut c, "doomed").await?;
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let r = c.request(6, req).await?;
    ensure!(
        r.responses.len() == 1 && r.responses[0].error_code == NONE,
        "{r:?}"
    );
    ensure!(
        r.responses[0].name.as_ref().map(|n| n.as_str()) == Some("doomed"),
        "{r:?}"
    );
    ensure!(!b.data_dir().join("doomed-0").exists() && !b.data_dir().join("doomed-1").exists());
    ensure!(b.data_dir().join("doomed-1-0").exists());
    // Gone by id too.
    let m = c
        .request(
            12,
            MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(id),
            ])),
        )
        .await?;
    ensure!(m.topics[0].error_code == UNKNOWN_TOPIC_ID, "{m:?}");
    // As the Java client asks: an empty name with the id.
    let kept_id = topic_id(&mut c, "doomed-1").await?;
    let m = c
        .request(
            12,
            MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(name("")))
                    .with_topic_id(kept_id),
            ])),
        )
        .await?;
    ensure!(
        m.topics[0].error_code == NONE && m.topics[0].topic_id == kept_id,
        "{m:?}"
    );
    // Deleting again, or by the old id, is an error; the other topic kept its record.
    let again = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let r = c.request(6, again).await?;
    ensure!(r.responses[0].error_code == UNKNOWN_TOPIC_ID, "{r:?}");
    b.restart_clean().await?;
    let mut c = b.client().await?;
    let m = metadata(
        &mut c,
        METADATA_V,
        metadata_topics(&["doomed", "doomed-1"]),
        false,
    )
    .await?;
    ensure!(
        m.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{m:?}"
    );
    ensure!(list_offset(&mut c, "doomed-1", 0, -1).await?.offset == 1);
    // A new topic of the old name starts empty.
    create_topic(&mut c, "doomed", 2).await?;
    ensure!(list_offset(&mut c, "doomed", 1, -1).await?.offset == 0);
    Ok(())
}

#[tokio::test]
async fn delete_topics_request_errors() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "dt-a", 1).await?;
    create_topic(&mut c, "dt-b", 1).await?;
    let id_b = topic_id(&mut c, "dt-b").await?;
    let req = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(name("dt-a"))),
        DeleteTopicState::default().with_name(Some(name("dt-a"))),
        DeleteTopicState::default(),
        DeleteTopicState::default()
            .with_name(Some(name("dt-b")))
            .with_topic_id(id_b),
        DeleteTopicState::default().with_topic_id(Uuid::from_u128(12345)),
    ]);
    let r = c.request(6, req).await?;
    let mut codes: Vec<i16> = r.responses.iter().map(|x| x.error_code).collect();
    codes.sort_unstable();
    ensure!(
        codes
            == vec![
                INVALID_REQUEST,
                INVALID_REQUEST,
                INVALID_REQUEST,
                UNKNOWN_TOPIC_ID
            ],
        "{r:?}"
    );
    // Nothing was deleted.
    let m = metadata(
        &mut c,
        METADATA_V,
        metadata_topics(&["dt-a", "dt-b"]),
        false,
    )
    .await?;
    ensure!(m.topics.iter().all(|t| t.error_code == NONE), "{m:?}");
    // Internal topics stay.
    create_topic(&mut c, "dt-c", 1).await?;
    let _ = find_coordinator_ready(&mut c).await;
    Ok(())
}

/// Makes sure __consumer_offsets exists (the group coordinator creates it on first use).
async fn find_coordinator_ready(c: &mut Client) -> Result<()> {
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("g")]);
    c.request(4, req).await?;
    let r = c
        .request(
            5,
            DeleteTopicsRequest::default().with_topic_names(vec![name("__consumer_offsets")]),
        )
        .await?;
    ensure!(r.responses[0].error_code != NONE, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn create_partitions_errors_leave_the_topic_alone() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "cp", 3).await?;
    let grow = |n: &str, count: i32, assignments: Option<Vec<Vec<i32>>>| {
        CreatePartitionsTopic::default()
            .with_name(name(n))
            .with_count(count)
            .with_assignments(assignments.map(|a| {
                a.into_iter()
                    .map(|ids| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                    })
                    .collect()
            }))
    };
    let node = metadata(&mut c, METADATA_V, Some(vec![]), false)
        .await?
        .brokers[0]
        .node_id
        .0;
    let cases = vec![
        (grow("cp", 2, None), INVALID_PARTITIONS),
        (grow("cp", 3, None), INVALID_PARTITIONS),
        (
            grow("cp", 5, Some(vec![vec![node]])),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            grow("cp", 4, Some(vec![vec![node + 1]])),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (grow("cp-missing", 4, None), UNKNOWN_TOPIC_OR_PARTITION),
        // Kafka's controller refuses more than 10000 records in one operation.
        (grow("cp", i32::MAX, None), POLICY_VIOLATION),
    ];
    for (t, want) in cases {
        let r = c
            .request(
                3,
                CreatePartitionsRequest::default().with_topics(vec![t.clone()]),
            )
            .await?;
        ensure!(r.results[0].error_code == want, "{t:?}: {r:?}");
        ensure!(r.results[0].error_message.is_some(), "{r:?}");
    }
    let r = create_topics(
        &mut c,
        CREATE_TOPICS_V,
        vec![creatable("cp-huge", 1_000_000)],
        false,
    )
    .await?;
    ensure!(r[0].error_code == POLICY_VIOLATION, "{r:?}");
    // validate_only changes nothing; a valid assignment grows the topic.
    let r = c
        .request(
            3,
            CreatePartitionsRequest::default()
                .with_validate_only(true)
                .with_topics(vec![grow("cp", 6, None)]),
        )
        .await?;
    ensure!(r.results[0].error_code == NONE, "{r:?}");
    let parts = |m: &MetadataResponse| m.topics[0].partitions.len();
    ensure!(parts(&metadata(&mut c, METADATA_V, metadata_topics(&["cp"]), false).await?) == 3);
    let r = c
        .request(
            3,
            CreatePartitionsRequest::default().with_topics(vec![grow(
                "cp",
                5,
                Some(vec![vec![node], vec![node]]),
            )]),
        )
        .await?;
    ensure!(r.results[0].error_code == NONE, "{r:?}");
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    ensure!(parts(&metadata(&mut c, METADATA_V, metadata_topics(&["cp"]), false).await?) == 5);
    produce_ok(&mut c, "cp", 4, values_batch(&["new partition"])).await?;
    Ok(())
}

#[tokio::test]
async fn configs_change_live_and_persist() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "live", 1).await?;
    let big = values_batch(&[&"x".repeat(2000)]);
    produce_ok(&mut c, "live", 0, big.clone()).await?;
    let r = incremental(
        &mut c,
        vec![(2, "live", vec![op("max.message.bytes", 0, Some("1000"))])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    ensure!(produce(&mut c, "live", 0, big.clone()).await?.error_code == MESSAGE_TOO_LARGE);
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(
        topic_config(&mut c, "live", "max.message.bytes")
            .await?
            .as_deref()
            == Some("1000")
    );
    ensure!(produce(&mut c, "live", 0, big.clone()).await?.error_code == MESSAGE_TOO_LARGE);
    // DELETE restores the default.
    let r = incremental(
        &mut c,
        vec![(2, "live", vec![op("max.message.bytes", 1, None)])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    produce_ok(&mut c, "live", 0, big).await?;
    ensure!(
        topic_config(&mut c, "live", "max.message.bytes")
            .await?
            .as_deref()
            == Some("1048588")
    );
    Ok(())
}

#[tokio::test]
async fn config_change_errors() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "ce", 1).await?;
    let cases: Vec<(i8, &str, Vec<AlterableConfig>, i16, &str)> = vec![
        (
            2,
            "ce",
            vec![op("retention.mss", 0, Some("1"))],
            INVALID_CONFIG,
            "Unknown topic config name: retention.mss",
        ),
        (
            2,
            "ce",
            vec![op("segment.bytes", 0, Some("10"))],
            INVALID_CONFIG,
            "segment.bytes",
        ),
        (
            2,
            "ce",
            vec![op("retention.ms", 0, Some("soon"))],
            INVALID_CONFIG,
            "retention.ms",
        ),
        (
            2,
            "ce",
            vec![op("retention.ms", 2, Some("1"))],
            INVALID_CONFIG,
            "because its type is not LIST",
        ),
        (
            2,
            "ce",
            vec![op("retention.ms", 0, None)],
            INVALID_REQUEST,
            "Null value",
        ),
        (
            2,
            "ce",
            vec![
                op("retention.ms", 0, Some("1")),
                op("retention.ms", 1, None),
            ],
            INVALID_REQUEST,
            "duplicate config keys",
        ),
        (
            2,
            "ce",
            vec![op("retention.ms", 9, Some("1"))],
            INVALID_REQUEST,
            "Unknown operations type",
        ),
        (
            2,
            "ce-missing",
            vec![op("retention.ms", 0, Some("1"))],
            UNKNOWN_TOPIC_OR_PARTITION,
            "does not exist",
        ),
        (
            4,
            "1",
            vec![op("log.dirs", 0, Some("/x"))],
            INVALID_REQUEST,
            "Cannot update these configs dynamically",
        ),
        (
            4,
            "77",
            vec![op("num.partitions", 0, Some("2"))],
            INVALID_REQUEST,
            "Unexpected broker id",
        ),
        (
            4,
            "1",
            vec![op("no.such.broker.config", 0, Some("2"))],
            INVALID_CONFIG,
            "Unknown config name",
        ),
        (16, "x", vec![], INVALID_REQUEST, "Unknown resource type"),
    ];
    for (t, n, configs, want, text) in cases {
        let r = incremental(&mut c, vec![(t, n, configs.clone())], false).await?;
        ensure!(r[0].0 == want, "{n} {configs:?}: {r:?}");
        ensure!(
            r[0].1.as_deref().unwrap_or("").contains(text),
            "{n} {configs:?}: {r:?}"
        );
    }
    // One bad resource does not stop the good one; a repeated resource fails both copies.
    let r = incremental(
        &mut c,
        vec![
            (2, "ce", vec![op("retention.ms", 0, Some("5000"))]),
            (2, "ce-missing", vec![op("retention.ms", 0, Some("5000"))]),
        ],
        false,
    )
    .await?;
    ensure!(
        r[0].0 == NONE && r[1].0 == UNKNOWN_TOPIC_OR_PARTITION,
        "{r:?}"
    );
    let r = incremental(
        &mut c,
        vec![
            (2, "ce", vec![op("retention.ms", 0, Some("6000"))]),
            (2, "ce", vec![op("retention.ms", 0, Some("7000"))]),
        ],
        false,
    )
    .await?;
    ensure!(r.iter().all(|x| x.0 == INVALID_REQUEST), "{r:?}");
    // validate_only changes nothing.
    let r = incremental(
        &mut c,
        vec![(2, "ce", vec![op("retention.ms", 0, Some("9"))])],
        true,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    ensure!(topic_config(&mut c, "ce", "retention.ms").await?.as_deref() == Some("5000"));
    // APPEND / SUBTRACT on the list config.
    let r = incremental(
        &mut c,
        vec![(2, "ce", vec![op("cleanup.policy", 2, Some("compact"))])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    ensure!(
        topic_config(&mut c, "ce", "cleanup.policy")
            .await?
            .as_deref()
            == Some("delete,compact")
    );
    let r = incremental(
        &mut c,
        vec![(2, "ce", vec![op("cleanup.policy", 3, Some("delete"))])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    ensure!(
        topic_config(&mut c, "ce", "cleanup.policy")
            .await?
            .as_deref()
            == Some("compact")
    );
    Ok(())
}

#[tokio::test]
async fn compacted_topics_need_keys_and_refuse_delete_records() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let t = with_config(creatable("compacted", 1), "cleanup.policy", "compact");
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let keyless = build_batch(codec, &[Rec::kv("k", "v"), Rec::value("no key")], None);
        let p = produce(&mut c, "compacted", 0, keyless).await?;
        ensure!(p.error_code == INVALID_RECORD, "{codec:?}: {p:?}");
        ensure!(
            p.error_message
                .as_ref()
                .is_some_and(|m| m.contains("Compacted topic cannot accept message without key")),
            "{p:?}"
        );
        // KIP-467: the keyless record is named, so a producer fails only it.
        let named: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        ensure!(named == [1], "{codec:?}: {p:?}");
        ensure!(
            p.record_errors[0].batch_index_error_message.as_deref()
                == Some("Compacted topic cannot accept message without key in topic partition compacted-0."),
            "{p:?}"
        );
        let keyed = build_batch(codec, &[Rec::kv("k", "v"), Rec::kv("k2", "v")], None);
        produce_ok(&mut c, "compacted", 0, keyed).await?;
    }
    ensure!(delete_records(&mut c, "compacted", 0, 1).await?.0 == POLICY_VIOLATION);
    Ok(())
}

#[tokio::test]
async fn compression_type_recompresses_on_produce() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let t = with_config(creatable("recompressed", 1), "compression.type", "zstd");
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    let recs = vec![
        Rec::kv("k", "v".repeat(100))
            .with_header("h1", Some(b"1"))
            .with_header("h2", Some(b"2")),
        Rec::value("second"),
    ];
    produce_ok(
        &mut c,
        "recompressed",
        0,
        build_batch(Compression::Gzip, &recs, None),
    )
    .await?;
    produce_ok(
        &mut c,
        "recompressed",
        0,
        build_batch(Compression::None, &recs, None),
    )
    .await?;
    let p = fetch_one(&mut c, "recompressed", 0, 0, 1 << 20).await?;
    let bytes = p.records.clone().unwrap_or_default();
    let mut codecs = Vec::new();
    let mut at = 0;
    while at + 61 <= bytes.len() {
        codecs.push(i16::from_be_bytes([bytes[at + 21], bytes[at + 22]]) & 7);
        at += 12 + i32_at(&bytes, at + 8) as usize;
    }
    ensure!(codecs == vec![4, 4], "stored codecs {codecs:?}");
    let got = decode_records(&bytes)?;
    ensure!(got.len() == 4, "{got:?}");
    ensure!(got[0].as_rec().value == recs[0].value && got[3].as_rec().value == recs[1].value);
    Ok(())
}

#[tokio::test]
async fn delete_records_moves_the_start_and_survives_restart() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "dr", 2).await?;
    for i in 0..5 {
        produce_ok(
            &mut c,
            "dr",
            0,
            build_batch(
                Compression::None,
                &[Rec::value(format!("v{i}")).with_timestamp(1000 + i)],
                None,
            ),
        )
        .await?;
    }
    ensure!(delete_records(&mut c, "dr", 0, 6).await? == (OFFSET_OUT_OF_RANGE, -1));
    ensure!(delete_records(&mut c, "dr", 0, 3).await? == (NONE, 3));
    ensure!(delete_records(&mut c, "dr", 5, 0).await?.0 == UNKNOWN_TOPIC_OR_PARTITION);
    ensure!(delete_records(&mut c, "dr-missing", 0, 0).await?.0 == UNKNOWN_TOPIC_OR_PARTITION);
    ensure!(fetch_one(&mut c, "dr", 0, 2, 1 << 20).await?.error_code == OFFSET_OUT_OF_RANGE);
    let p = fetch_one(&mut c, "dr", 0, 3, 1 << 20).await?;
    ensure!(p.error_code == NONE && p.log_start_offset == 3, "{p:?}");
    // ListOffsets: earliest and by timestamp honour the new start.
    ensure!(list_offset(&mut c, "dr", 0, -2).await?.offset == 3);
    ensure!(list_offset(&mut c, "dr", 0, 0).await?.offset == 3);
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    ensure!(list_offset(&mut c, "dr", 0, -2).await?.offset == 3);
    ensure!(delete_records(&mut c, "dr", 0, -1).await? == (NONE, 5));
    ensure!(list_offset(&mut c, "dr", 0, -2).await?.offset == 5);
    // The other partition was not touched.
    ensure!(list_offset(&mut c, "dr", 1, -2).await?.offset == 0);
    Ok(())
}

#[tokio::test]
async fn describe_topic_partitions_pages_with_a_cursor() -> Result<()> {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "page-a", 3).await?;
    create_topic(&mut c, "page-b", 2).await?;
    let mut cursor: Option<Cursor> = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let req = DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(2)
            .with_cursor(cursor.clone())
            .with_topics(vec![
                TopicRequest::default().with_name(name("page-a")),
                TopicRequest::default().with_name(name("page-b")),
            ]);
        let r = c.request(0, req).await?;
        for t in &r.topics {
            for p in &t.partitions {
                seen.push((
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    p.partition_index,
                ));
            }
        }
        match r.next_cursor {
            Some(next) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(next.topic_name)
                        .with_partition_index(next.partition_index),
                )
            }
            None => break,
        }
    }
    let want: Vec<(String, i32)> = [
        ("page-a", 0),
        ("page-a", 1),
        ("page-a", 2),
        ("page-b", 0),
        ("page-b", 1),
    ]
    .iter()
    .map(|(t, p)| (t.to_string(), *p))
    .collect();
    ensure!(seen == want, "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn dynamic_broker_configs_apply_to_every_topic_and_persist() -> Result<()> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "dyn-plain", 1).await?;
    let t = with_config(creatable("dyn-own", 1), "max.message.bytes", "100000");
    ensure!(create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?[0].error_code == NONE);
    let big = values_batch(&[&"x".repeat(3000)]);
    produce_ok(&mut c, "dyn-plain", 0, big.clone()).await?;
    // The cluster default, then this broker's value, which wins.
    let r = incremental(
        &mut c,
        vec![(4, "", vec![op("message.max.bytes", 0, Some("50000"))])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    let r = incremental(
        &mut c,
        vec![(4, "1", vec![op("message.max.bytes", 0, Some("2000"))])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    ensure!(
        produce(&mut c, "dyn-plain", 0, big.clone())
            .await?
            .error_code
            == MESSAGE_TOO_LARGE
    );
    // A topic override still beats the broker setting.
    produce_ok(&mut c, "dyn-own", 0, big.clone()).await?;
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(
        produce(&mut c, "dyn-plain", 0, big.clone())
            .await?
            .error_code
            == MESSAGE_TOO_LARGE
    );
    let describe = |name: &str| {
        DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s(name))
                .with_configuration_keys(Some(vec![s("message.max.bytes")]))])
    };
    let r = c.request(4, describe("1")).await?;
    let e = &r.results[0].configs[0];
    ensure!(
        e.value.as_deref() == Some("2000") && e.config_source == 2 && !e.read_only,
        "{e:?}"
    );
    ensure!(e.synonyms.len() == 3, "{e:?}");
    let r = c.request(4, describe("")).await?;
    let e = &r.results[0].configs;
    ensure!(
        e.len() == 1 && e[0].value.as_deref() == Some("50000") && e[0].config_source == 3,
        "{e:?}"
    );
    // DELETE falls back to the cluster default.
    let r = incremental(
        &mut c,
        vec![(4, "1", vec![op("message.max.bytes", 1, None)])],
        false,
    )
    .await?;
    ensure!(r[0].0 == NONE, "{r:?}");
    produce_ok(&mut c, "dyn-plain", 0, big).await?;
    let r = incremental(
        &mut c,
        vec![(4, "1", vec![op("message.max.bytes", 0, Some("x"))])],
        false,
    )
    .await?;
    ensure!(r[0].0 != NONE, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn describe_configs_documentation_only_when_asked() -> Result<()> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "documented", 1).await?;
    for (t, n, key) in [
        (2, "documented", "retention.ms"),
        (4, "1", "num.partitions"),
    ] {
        for asked in [false, true] {
            let req = DescribeConfigsRequest::default()
                .with_include_documentation(asked)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(t)
                    .with_resource_name(s(n))
                    .with_configuration_keys(Some(vec![s(key)]))]);
            let r = c.request(4, req).await?;
            let e = &r.results[0].configs[0];
            ensure!(
                e.documentation.is_some() == asked,
                "{key} asked={asked}: {e:?}"
            );
        }
    }
    Ok(())
}
