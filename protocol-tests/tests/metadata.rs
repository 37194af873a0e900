//! Metadata: which topics a request names, auto-creation, name validation and topic ids.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

fn names(m: &MetadataResponse) -> Vec<String> {
    let mut v: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn empty_null_and_named_topic_lists() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "alpha", 1).await?;
    create_topic(&mut c, "beta", 3).await?;
    // v0: an empty list means every topic.
    let m = metadata(&mut c, 0, Some(vec![]), true).await?;
    ensure!(names(&m) == ["alpha", "beta"], "v0 empty: {m:?}");
    for v in 1..=12 {
        // v1+: null means every topic, empty means none.
        let m = metadata(&mut c, v, None, false).await?;
        ensure!(names(&m) == ["alpha", "beta"], "v{v} null: {m:?}");
        ensure!(m.topics.iter().all(|t| t.error_code == NONE), "v{v}: {m:?}");
        let m = metadata(&mut c, v, Some(vec![]), false).await?;
        ensure!(m.topics.is_empty(), "v{v} empty: {m:?}");
        ensure!(m.brokers.len() == 1, "v{v}: brokers {m:?}");
        let m = metadata(&mut c, v, metadata_topics(&["beta"]), false).await?;
        ensure!(
            names(&m) == ["beta"] && m.topics[0].partitions.len() == 3,
            "v{v}: {m:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn auto_create_on() -> Result<()> {
    let b = start_broker_with(|c| {
        c.auto_create_topics_enable = true;
        c.num_partitions = 3;
    })
    .await?;
    let mut c = b.client().await?;
    // v4+ with allow_auto_topic_creation=false does not create.
    let m = metadata(&mut c, 9, metadata_topics(&["not-yet"]), false).await?;
    ensure!(
        m.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "{m:?}"
    );
    // Creation: Kafka answers LEADER_NOT_AVAILABLE while it creates; gregor may answer at once.
    let m = metadata(&mut c, 9, metadata_topics(&["not-yet"]), true).await?;
    let e = m.topics[0].error_code;
    ensure!(e == NONE || e == LEADER_NOT_AVAILABLE, "{m:?}");
    let m = metadata(&mut c, 9, metadata_topics(&["not-yet"]), false).await?;
    let t = &m.topics[0];
    ensure!(
        t.error_code == NONE && t.partitions.len() == 3,
        "num.partitions not used: {t:?}"
    );
    // v0-3 always ask for auto-creation.
    let m = metadata(&mut c, 1, metadata_topics(&["old-client"]), false).await?;
    let e = m.topics[0].error_code;
    ensure!(e == NONE || e == LEADER_NOT_AVAILABLE, "{m:?}");
    let m = metadata(&mut c, 12, metadata_topics(&["old-client"]), false).await?;
    ensure!(m.topics[0].error_code == NONE, "{m:?}");
    // The new topic takes produce.
    produce_ok(&mut c, "old-client", 2, values_batch(&["x"])).await?;
    Ok(())
}

#[tokio::test]
async fn auto_create_off() -> Result<()> {
    let b = start_broker_with(|c| c.auto_create_topics_enable = false).await?;
    let mut c = b.client().await?;
    for v in [1, 4, 9, 12] {
        let m = metadata(&mut c, v, metadata_topics(&["missing"]), true).await?;
        ensure!(m.topics.len() == 1, "v{v}: {m:?}");
        let t = &m.topics[0];
        ensure!(t.error_code == UNKNOWN_TOPIC_OR_PARTITION, "v{v}: {t:?}");
        ensure!(
            t.name.as_ref().map(|n| n.as_str()) == Some("missing"),
            "v{v}: {t:?}"
        );
        ensure!(t.partitions.is_empty(), "v{v}: {t:?}");
        if v >= 10 {
            ensure!(t.topic_id.is_nil(), "v{v}: {t:?}");
        }
    }
    let m = metadata(&mut c, 12, None, false).await?;
    ensure!(m.topics.is_empty(), "{m:?}");
    Ok(())
}

#[tokio::test]
async fn invalid_names() -> Result<()> {
    for auto in [true, false] {
        let b = start_broker_with(|c| c.auto_create_topics_enable = auto).await?;
        let mut c = b.client().await?;
        let long = "x".repeat(250);
        for bad in [
            "bad name",
            "..",
            "ünïcode",
            "slash/topic",
            "",
            long.as_str(),
        ] {
            let m = metadata(&mut c, 9, metadata_topics(&[bad]), true).await?;
            let t = &m.topics[0];
            ensure!(
                t.error_code == INVALID_TOPIC_EXCEPTION,
                "auto={auto} {bad:?}: {t:?}"
            );
        }
        let m = metadata(&mut c, 12, None, false).await?;
        ensure!(m.topics.is_empty(), "auto={auto}: {m:?}");
    }
    Ok(())
}

#[tokio::test]
async fn topic_ids_are_non_zero_distinct_and_stable_across_restarts() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "one", 1).await?;
    create_topic(&mut c, "two", 2).await?;
    let id1 = topic_id(&mut c, "one").await?;
    let id2 = topic_id(&mut c, "two").await?;
    ensure!(!id1.is_nil() && !id2.is_nil() && id1 != id2, "{id1} {id2}");
    // Metadata v10+ for all topics carries them too.
    let m = metadata(&mut c, 10, None, false).await?;
    ensure!(m.topics.iter().all(|t| !t.topic_id.is_nil()), "{m:?}");
    let cluster_id = m.cluster_id.clone();
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(
        topic_id(&mut c, "one").await? == id1,
        "changed after a clean restart"
    );
    ensure!(topic_id(&mut c, "two").await? == id2);
    b.restart_after_crash().await?;
    let mut c = b.client().await?;
    ensure!(
        topic_id(&mut c, "one").await? == id1,
        "changed after a crash"
    );
    let m = metadata(&mut c, 10, None, false).await?;
    ensure!(
        m.cluster_id == cluster_id,
        "cluster id changed: {:?} -> {:?}",
        cluster_id,
        m.cluster_id
    );
    Ok(())
}

fn by_id(id: Uuid) -> Option<Vec<MetadataRequestTopic>> {
    Some(vec![MetadataRequestTopic::default()
        .with_topic_id(id)
        .with_name(None)])
}

#[tokio::test]
async fn lookup_by_topic_id_v12() -> Result<()> {
    let (_b, mut c) = broker_with_topic("by-id", 2).await?;
    let id = topic_id(&mut c, "by-id").await?;
    let m = metadata(&mut c, 12, by_id(id), false).await?;
    let t = &m.topics[0];
    ensure!(t.error_code == NONE && t.topic_id == id, "{t:?}");
    ensure!(
        t.name.as_ref().map(|n| n.as_str()) == Some("by-id"),
        "{t:?}"
    );
    ensure!(t.partitions.len() == 2, "{t:?}");
    let unknown = Uuid::from_u128(0xfeed_beef_0000_0000_0000_0000_0000_0001);
    let m = metadata(&mut c, 12, by_id(unknown), true).await?;
    let t = &m.topics[0];
    ensure!(
        t.error_code == UNKNOWN_TOPIC_ID && t.topic_id == unknown,
        "{t:?}"
    );
    ensure!(t.name.is_none(), "{t:?}");
    Ok(())
}

#[tokio::test]
async fn lookup_by_topic_id_before_v12_is_invalid_request() -> Result<()> {
    // KafkaApis.handleTopicMetadataRequest: "Topic IDs are not supported in requests for version
    // 10/11" and null names are refused below v12, each topic answered with INVALID_REQUEST.
    let (_b, mut c) = broker_with_topic("by-id-old", 1).await?;
    let id = topic_id(&mut c, "by-id-old").await?;
    for v in [10, 11] {
        let m = metadata(&mut c, v, by_id(id), false).await?;
        ensure!(m.topics.len() == 1, "v{v}: {m:?}");
        ensure!(m.topics[0].error_code == INVALID_REQUEST, "v{v}: {m:?}");
    }
    Ok(())
}

#[tokio::test]
async fn duplicate_and_mixed_topics_in_one_request() -> Result<()> {
    let b = start_broker_with(|c| c.auto_create_topics_enable = false).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "here", 1).await?;
    let m = metadata(
        &mut c,
        9,
        metadata_topics(&["here", "gone", "bad name"]),
        false,
    )
    .await?;
    ensure!(m.topics.len() == 3, "{m:?}");
    let code = |n: &str| {
        m.topics
            .iter()
            .find(|t| t.name.as_ref().map(|x| x.as_str()) == Some(n))
            .map(|t| t.error_code)
    };
    ensure!(code("here") == Some(NONE), "{m:?}");
    ensure!(code("gone") == Some(UNKNOWN_TOPIC_OR_PARTITION), "{m:?}");
    ensure!(code("bad name") == Some(INVALID_TOPIC_EXCEPTION), "{m:?}");
    Ok(())
}
