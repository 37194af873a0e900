//! Cluster features (KIP-584) as a Kafka 4.4 broker shows and changes them: ApiVersions v3+
//! lists the supported and finalized features (kafka-features.sh describe reads them), and
//! UpdateFeatures refuses levels gregor does not run at with Kafka's INVALID_UPDATE_VERSION,
//! all or nothing, while the levels it is at are accepted and stored in the metadata log.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;

const INVALID_UPDATE_VERSION: i16 = 95;

type Levels = Vec<(String, i16, i16)>;

async fn features(c: &mut Client, v: i16) -> Result<(Levels, Levels, i64)> {
    let mut req = ApiVersionsRequest::default();
    if v >= 3 {
        req = req
            .with_client_software_name(s("gregor-protocol-tests"))
            .with_client_software_version(s("0.1.0"));
    }
    let r = c.request(v, req).await?;
    ensure!(r.error_code == NONE, "v{v}: {r:?}");
    let supported = r
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    let finalized = r
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    Ok((supported, finalized, r.finalized_features_epoch))
}

fn levels(l: &[(&str, i16, i16)]) -> Levels {
    l.iter().map(|(n, a, b)| (n.to_string(), *a, *b)).collect()
}

/// Finalized: metadata.version 14 (3.6-IV2), transaction.version 2 (KIP-890 part 2),
/// group.version 1 (KIP-848), share.version 1 (KIP-932) and streams.version 1 (KIP-1071), in a
/// new metadata log; a level 0 is
/// not listed. Supported: every feature Kafka 4.4 knows, a 0 minimum only from v4 on; v0-2 have
/// no features.
#[tokio::test]
async fn api_versions_shows_the_features() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let finalized = levels(&[
        ("group.version", 1, 1),
        ("metadata.version", 14, 14),
        ("share.version", 1, 1),
        ("streams.version", 1, 1),
        ("transaction.version", 2, 2),
    ]);
    for v in 0..=4 {
        let (mut supported, mut fin, epoch) = features(&mut c, v).await?;
        supported.sort();
        fin.sort();
        let (want_supported, want_finalized) = match v {
            0..=2 => (vec![], vec![]),
            3 => (levels(&[("metadata.version", 14, 14)]), finalized.clone()),
            _ => (
                levels(&[
                    ("eligible.leader.replicas.version", 0, 0),
                    ("group.version", 0, 1),
                    ("kraft.version", 0, 0),
                    ("metadata.version", 14, 14),
                    ("share.version", 0, 1),
                    ("streams.version", 0, 1),
                    ("transaction.version", 0, 2),
                ]),
                finalized.clone(),
            ),
        };
        ensure!(supported == want_supported, "v{v} supported: {supported:?}");
        ensure!(fin == want_finalized, "v{v} finalized: {fin:?}");
        ensure!(v < 3 || epoch >= 0, "v{v}: epoch {epoch}");
    }
    Ok(())
}

fn update(feature: &str, level: i16, upgrade_type: i8) -> FeatureUpdateKey {
    FeatureUpdateKey::default()
        .with_feature(s(feature))
        .with_max_version_level(level)
        .with_upgrade_type(upgrade_type)
}

fn request(updates: Vec<FeatureUpdateKey>) -> UpdateFeaturesRequest {
    UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_feature_updates(updates)
}

#[tokio::test]
async fn update_features_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for v in 0..=2 {
        let at = |u: FeatureUpdateKey| {
            if v == 0 {
                // v0 says allow_downgrade instead of an upgrade type.
                let down = u.upgrade_type == 2;
                u.with_upgrade_type(1).with_allow_downgrade(down)
            } else {
                u
            }
        };
        // The levels gregor is at: accepted, with per-feature results up to v1.
        let ok = request(vec![
            at(update("group.version", 1, 1)),
            at(update("share.version", 1, 1)),
        ]);
        let r = c.request(v, ok).await?;
        ensure!(
            r.error_code == NONE && r.error_message.is_none(),
            "v{v}: {r:?}"
        );
        let results: Vec<(String, i16)> = r
            .results
            .iter()
            .map(|x| (x.feature.to_string(), x.error_code))
            .collect();
        let want = if v <= 1 {
            vec![
                ("group.version".into(), NONE),
                ("share.version".into(), NONE),
            ]
        } else {
            vec![]
        };
        ensure!(results == want, "v{v}: {r:?}");
        // One level gregor does not implement fails the whole request, with Kafka's message.
        let bad = request(vec![
            at(update("group.version", 1, 1)),
            at(update("eligible.leader.replicas.version", 1, 1)),
        ]);
        let r = c.request(v, bad).await?;
        ensure!(
            r.error_code == INVALID_UPDATE_VERSION && r.results.is_empty(),
            "v{v}: {r:?}"
        );
        let msg = r.error_message.as_deref().unwrap_or_default().to_string();
        ensure!(
            msg == "The update failed for all features since the following feature had an \
                    error: Invalid update version 1 for feature eligible.leader.replicas.version. \
                    Local controller 1 does not support this feature.",
            "v{v}: {msg}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn refused_updates_change_nothing_and_name_the_reason() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let (_, before, epoch_before) = features(&mut c, 4).await?;
    for (u, why) in [
        (
            update("transaction.version", 1, 2),
            "Local controller 1 only supports versions 2-2",
        ),
        (
            update("metadata.version", 27, 1),
            "Local controller 1 only supports versions 14-14",
        ),
        (
            update("group.version", 0, 1),
            "Local controller 1 only supports versions 1-1",
        ),
        (
            update("group.version", -1, 1),
            "A feature version cannot be less than 0.",
        ),
        (
            update("group.version", 1, 0),
            "The controller does not support the given upgrade type.",
        ),
        (
            update("no.such.feature", 1, 1),
            "Local controller 1 does not support this feature.",
        ),
    ] {
        let req = request(vec![u.clone()]);
        let r = c.request(1, req).await?;
        let msg = r.error_message.as_deref().unwrap_or_default().to_string();
        ensure!(
            r.error_code == INVALID_UPDATE_VERSION && msg.ends_with(why),
            "{u:?}: {r:?}"
        );
    }
    let (_, after, epoch_after) = features(&mut c, 4).await?;
    ensure!(before == after && epoch_before == epoch_after, "{after:?}");
    Ok(())
}

/// An accepted update is a FeatureLevelRecord in the metadata log: the finalized epoch (the
/// metadata offset) moves; validate_only writes nothing.
#[tokio::test]
async fn accepted_updates_are_written_to_the_metadata_log() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let (_, _, epoch) = features(&mut c, 4).await?;
    let req = |validate_only| {
        request(vec![update("transaction.version", 2, 1)]).with_validate_only(validate_only)
    };
    let r = c.request(1, req(true)).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    ensure!(features(&mut c, 4).await?.2 == epoch, "validate_only wrote");
    let r = c.request(1, req(false)).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let (_, finalized, later) = features(&mut c, 4).await?;
    ensure!(later > epoch, "epoch {epoch} -> {later}");
    ensure!(
        finalized.contains(&("transaction.version".into(), 2, 2)),
        "{finalized:?}"
    );
    Ok(())
}

fn describe_quorum(topic: &str, partition: i32) -> DescribeQuorumRequest {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(name(topic))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])])
}

/// kafka-metadata-quorum describe: the first node is the only voter and the leader of the
/// metadata log, at its end offset; the other brokers of the process are observers.
#[tokio::test]
async fn describe_quorum_every_version() -> Result<()> {
    let b = start_broker_with(|c| c.brokers = 3).await?;
    let mut c = b.client().await?;
    for v in 0..=2 {
        let r = c
            .request(v, describe_quorum("__cluster_metadata", 0))
            .await?;
        ensure!(r.error_code == NONE && r.topics.len() == 1, "v{v}: {r:?}");
        let p = &r.topics[0].partitions[0];
        ensure!(p.error_code == NONE && p.leader_id.0 == 1, "v{v}: {p:?}");
        ensure!(p.high_watermark > 0, "v{v}: {p:?}");
        let voters: Vec<(i32, i64)> = p
            .current_voters
            .iter()
            .map(|r| (r.replica_id.0, r.log_end_offset))
            .collect();
        ensure!(voters == [(1, p.high_watermark)], "v{v}: {p:?}");
        let observers: Vec<i32> = p.observers.iter().map(|r| r.replica_id.0).collect();
        ensure!(observers == [2, 3], "v{v}: {p:?}");
        let ts = p.current_voters[0].last_caught_up_timestamp;
        ensure!(if v >= 1 { ts > 0 } else { ts == -1 }, "v{v}: {p:?}");
        // Only the metadata partition has a quorum.
        for (topic, partition) in [("__cluster_metadata", 1), ("other", 0)] {
            let r = c.request(v, describe_quorum(topic, partition)).await?;
            ensure!(
                r.error_code == UNKNOWN_TOPIC_OR_PARTITION && r.topics.is_empty(),
                "v{v} {topic}-{partition}: {r:?}"
            );
        }
    }
    Ok(())
}
