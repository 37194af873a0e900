//! CreateTopics: creation with partitions and configs, validate_only, and each error.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;

async fn exists(c: &mut Client, topic: &str) -> Result<Option<usize>> {
    let m = metadata(c, METADATA_V, metadata_topics(&[topic]), false).await?;
    Ok((m.topics[0].error_code == NONE).then(|| m.topics[0].partitions.len()))
}

#[tokio::test]
async fn creates_with_partitions_and_configs() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let t = with_config(
        with_config(creatable("orders", 5), "retention.ms", "86400000"),
        "cleanup.policy",
        "delete",
    );
    let r = create_topics(&mut c, 7, vec![t], false).await?;
    ensure!(r.len() == 1, "{r:?}");
    let res = &r[0];
    ensure!(
        res.error_code == NONE && res.name.as_str() == "orders",
        "{res:?}"
    );
    ensure!(
        res.num_partitions == 5 && res.replication_factor == 1,
        "{res:?}"
    );
    ensure!(!res.topic_id.is_nil(), "{res:?}");
    ensure!(exists(&mut c, "orders").await? == Some(5));
    // Every partition takes writes.
    for p in 0..5 {
        produce_ok(&mut c, "orders", p, values_batch(&["x"])).await?;
    }
    Ok(())
}

#[tokio::test]
async fn v5_plus_results_carry_the_topic_configs() -> Result<()> {
    // Since v5 (KIP-525) Kafka answers each created topic with its configs; the Java admin client
    // builds CreateTopicsResult.config() from them.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for v in 5..=7 {
        let topic = format!("cfg-v{v}");
        let t = with_config(creatable(&topic, 1), "retention.ms", "123456");
        let r = create_topics(&mut c, v, vec![t], false).await?;
        let res = &r[0];
        ensure!(res.error_code == NONE, "v{v}: {res:?}");
        let configs = res.configs.as_ref();
        let retention = configs
            .and_then(|cs| cs.iter().find(|e| e.name.as_str() == "retention.ms"))
            .and_then(|e| e.value.as_ref().map(|v| v.to_string()));
        ensure!(
            retention.as_deref() == Some("123456"),
            "v{v}: configs {configs:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn default_partitions_and_replication_factor() -> Result<()> {
    let b = start_broker_with(|c| c.num_partitions = 4).await?;
    let mut c = b.client().await?;
    let t = creatable("defaults", -1).with_replication_factor(-1);
    let r = create_topics(&mut c, 7, vec![t], false).await?;
    ensure!(
        r[0].error_code == NONE && r[0].num_partitions == 4 && r[0].replication_factor == 1,
        "{r:?}"
    );
    ensure!(exists(&mut c, "defaults").await? == Some(4));
    // Explicit assignments to this broker.
    let node = metadata(&mut c, METADATA_V, Some(vec![]), false)
        .await?
        .brokers[0]
        .node_id;
    let mut t = creatable("assigned", -1).with_replication_factor(-1);
    t.assignments = (0..2)
        .map(|i| {
            CreatableReplicaAssignment::default()
                .with_partition_index(i)
                .with_broker_ids(vec![node])
        })
        .collect();
    let r = create_topics(&mut c, 7, vec![t], false).await?;
    ensure!(r[0].error_code == NONE && r[0].num_partitions == 2, "{r:?}");
    ensure!(exists(&mut c, "assigned").await? == Some(2));
    Ok(())
}

#[tokio::test]
async fn validate_only_creates_nothing() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let r = create_topics(&mut c, 7, vec![creatable("dry", 3)], true).await?;
    ensure!(r[0].error_code == NONE && r[0].num_partitions == 3, "{r:?}");
    ensure!(
        exists(&mut c, "dry").await?.is_none(),
        "validate_only created the topic"
    );
    // Errors are still reported.
    let r = create_topics(&mut c, 7, vec![creatable("dry", 0)], true).await?;
    ensure!(r[0].error_code == INVALID_PARTITIONS, "{r:?}");
    let r = create_topics(
        &mut c,
        7,
        vec![with_config(creatable("dry", 1), "no.such.config", "1")],
        true,
    )
    .await?;
    ensure!(r[0].error_code == INVALID_CONFIG, "{r:?}");
    // The real creation afterwards works.
    create_topic(&mut c, "dry", 3).await?;
    let r = create_topics(&mut c, 7, vec![creatable("dry", 3)], true).await?;
    ensure!(r[0].error_code == TOPIC_ALREADY_EXISTS, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn each_error_for_its_topic_only() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "taken", 1).await?;
    let topics = vec![
        creatable("taken", 1),
        creatable("zero-partitions", 0),
        creatable("negative-partitions", -5),
        creatable("rf3", 1).with_replication_factor(3),
        creatable("rf0", 1).with_replication_factor(0),
        with_config(creatable("bad-config", 1), "retention.mss", "1"),
        with_config(creatable("bad-value", 1), "retention.ms", "soon"),
        creatable("bad name", 1),
        creatable("fine", 2),
    ];
    let r = create_topics(&mut c, 7, topics, false).await?;
    let code = |n: &str| {
        r.iter()
            .find(|t| t.name.as_str() == n)
            .map(|t| t.error_code)
    };
    ensure!(code("taken") == Some(TOPIC_ALREADY_EXISTS), "{r:?}");
    ensure!(code("zero-partitions") == Some(INVALID_PARTITIONS), "{r:?}");
    ensure!(
        code("negative-partitions") == Some(INVALID_PARTITIONS),
        "{r:?}"
    );
    ensure!(code("rf3") == Some(INVALID_REPLICATION_FACTOR), "{r:?}");
    ensure!(code("rf0") == Some(INVALID_REPLICATION_FACTOR), "{r:?}");
    ensure!(code("bad-config") == Some(INVALID_CONFIG), "{r:?}");
    ensure!(code("bad-value") == Some(INVALID_CONFIG), "{r:?}");
    ensure!(code("bad name") == Some(INVALID_TOPIC_EXCEPTION), "{r:?}");
    ensure!(code("fine") == Some(NONE), "{r:?}");
    for t in r.iter().filter(|t| t.error_code != NONE) {
        ensure!(t.error_message.is_some(), "no error message: {t:?}");
    }
    for n in ["zero-partitions", "rf3", "bad-config", "bad-value"] {
        ensure!(exists(&mut c, n).await?.is_none(), "{n} was created");
    }
    ensure!(exists(&mut c, "fine").await? == Some(2));
    Ok(())
}

#[tokio::test]
async fn duplicate_names_in_one_request() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let r = create_topics(
        &mut c,
        7,
        vec![
            creatable("twice", 1),
            creatable("once", 1),
            creatable("twice", 2),
        ],
        false,
    )
    .await?;
    let twice: Vec<_> = r.iter().filter(|t| t.name.as_str() == "twice").collect();
    ensure!(!twice.is_empty(), "{r:?}");
    ensure!(
        twice.iter().all(|t| t.error_code == INVALID_REQUEST),
        "{r:?}"
    );
    let once: Vec<_> = r.iter().filter(|t| t.name.as_str() == "once").collect();
    ensure!(once.len() == 1 && once[0].error_code == NONE, "{r:?}");
    ensure!(
        exists(&mut c, "twice").await?.is_none(),
        "a duplicated name was created"
    );
    Ok(())
}

#[tokio::test]
async fn created_topics_survive_restart_with_their_configs() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    let t = with_config(creatable("kept", 2), "max.message.bytes", "3000");
    let r = create_topics(&mut c, 7, vec![t], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(exists(&mut c, "kept").await? == Some(2));
    // The topic config still applies.
    let big = build_batch(
        kafka_protocol::records::Compression::None,
        &[Rec::value(noise(4000, 9))],
        None,
    );
    let p = produce(&mut c, "kept", 0, big).await?;
    ensure!(p.error_code == MESSAGE_TOO_LARGE, "{p:?}");
    let r = create_topics(&mut c, 7, vec![creatable("kept", 2)], false).await?;
    ensure!(r[0].error_code == TOPIC_ALREADY_EXISTS, "{r:?}");
    Ok(())
}

/// Kafka 4.x refuses a CreateTopics as a whole, every topic with POLICY_VIOLATION, when its
/// topics together ask for more than 10,000 partitions (ReplicationControlManager
/// .validateTotalNumberOfPartitions: "Excessively large number of partitions per request.") or
/// when it would write more than 10,000 metadata records, one per topic, config and partition
/// (QuorumController.MAX_RECORDS_PER_USER_OP: "Unable to perform excessively large batch
/// operation."), so one topic of 10,000 partitions is refused too; validate_only as well.
#[tokio::test]
async fn too_many_partitions_in_one_request_are_refused_whole() -> Result<()> {
    const POLICY_VIOLATION: i16 = 44;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for validate_only in [true, false] {
        let r = create_topics(
            &mut c,
            CREATE_TOPICS_V,
            vec![
                creatable("big-a", 5_000),
                creatable("small", 1),
                creatable("big-b", 5_000),
            ],
            validate_only,
        )
        .await?;
        ensure!(r.len() == 3, "{r:?}");
        for t in &r {
            ensure!(t.error_code == POLICY_VIOLATION, "{r:?}");
            ensure!(
                t.error_message.as_deref()
                    == Some("Excessively large number of partitions per request."),
                "{r:?}"
            );
        }
    }
    let r = create_topics(
        &mut c,
        CREATE_TOPICS_V,
        vec![creatable("ten-k", 10_000)],
        true,
    )
    .await?;
    ensure!(r[0].error_code == POLICY_VIOLATION, "{r:?}");
    ensure!(
        r[0].error_message.as_deref()
            == Some("Unable to perform excessively large batch operation."),
        "{r:?}"
    );
    // 9,998 partitions and one config: 10,000 records, the most one operation may write.
    let t = with_config(creatable("just-fits", 9_998), "retention.ms", "1000");
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t.clone()], true).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    let r = create_topics(
        &mut c,
        CREATE_TOPICS_V,
        vec![with_config(t, "segment.ms", "1000")],
        true,
    )
    .await?;
    ensure!(r[0].error_code == POLICY_VIOLATION, "{r:?}");
    ensure!(exists(&mut c, "small").await?.is_none());
    Ok(())
}
