//! Every advertised API at every advertised (and served) version: a valid request with real data
//! (existing topics, produced records) gets a decodable response with the same correlation id and
//! the expected content. This catches fields set on versions that lack them, and header-version
//! mistakes, one version at a time.

mod common;

use anyhow::{bail, ensure, Context, Result};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const TOPIC: &str = "versions";

async fn advertised(c: &mut Client) -> Result<Vec<(i16, i16, i16)>> {
    let r = c
        .request(
            3,
            ApiVersionsRequest::default()
                .with_client_software_name(s("gregor-tests"))
                .with_client_software_version(s("1")),
        )
        .await?;
    Ok(r.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect())
}

fn range_of(table: &[(i16, i16, i16)], key: ApiKey) -> Result<std::ops::RangeInclusive<i16>> {
    let (_, min, max) = table
        .iter()
        .find(|t| t.0 == key as i16)
        .with_context(|| format!("{key:?} is not advertised"))?;
    Ok(*min..=*max)
}

#[tokio::test]
async fn every_advertised_key_has_a_version_test_here() -> Result<()> {
    // When the broker starts advertising a new API, add it to the per-version tests below.
    let covered = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::InitProducerId,
        ApiKey::FindCoordinator,
        ApiKey::DescribeConfigs,
    ];
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for (key, _, _) in advertised(&mut c).await? {
        ensure!(
            covered.iter().any(|k| *k as i16 == key),
            "API key {key} is advertised but has no per-version test in all_versions.rs"
        );
    }
    Ok(())
}

#[tokio::test]
async fn api_versions_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::ApiVersions)? {
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req = req
                .with_client_software_name(s("librdkafka"))
                .with_client_software_version(s("2.3.0"));
        }
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        ensure!(
            r.error_code == NONE && r.api_keys.len() == table.len(),
            "v{v}: {r:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn produce_every_version() -> Result<()> {
    let (b, mut c) = broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    let id = topic_id(&mut c, TOPIC).await?;
    ensure!(!id.is_nil());
    let mut next = 0i64;
    for v in range_of(&table, ApiKey::Produce)? {
        if v < 3 {
            continue; // advertised but closed, see api_versions.rs
        }
        let codec = match v {
            3 => Compression::None,
            4 => Compression::Gzip,
            5 => Compression::Snappy,
            6 => Compression::Lz4,
            v if v % 2 == 1 => Compression::Zstd,
            _ => Compression::Gzip,
        };
        let recs = vec![
            Rec::kv(format!("k{v}"), format!("value at v{v}")).with_header("v", Some(b"x")),
            Rec::value("second"),
        ];
        let batch = build_batch(codec, &recs, None);
        let topic = if v >= 13 {
            topic_data_by_id(id, vec![(1, batch)])
        } else {
            topic_data(TOPIC, vec![(1, batch)])
        };
        let mut req = produce_request(-1, vec![topic]);
        req.transactional_id = None;
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("Produce v{v}"))?;
        ensure!(r.responses.len() == 1, "v{v}: {r:?}");
        let t = &r.responses[0];
        if v >= 13 {
            ensure!(t.topic_id == id, "v{v}: topic id {:?}", t.topic_id);
        } else {
            ensure!(t.name.as_str() == TOPIC, "v{v}: name {:?}", t.name);
        }
        let p = &t.partition_responses[0];
        ensure!(p.index == 1 && p.error_code == NONE, "v{v}: {p:?}");
        ensure!(
            p.base_offset == next,
            "v{v}: base offset {} != {next}",
            p.base_offset
        );
        ensure!(p.log_append_time_ms == -1, "v{v}: CreateTime topic: {p:?}");
        if v >= 5 {
            ensure!(p.log_start_offset == 0, "v{v}: {p:?}");
        }
        next += 2;
    }
    // acks=1 at the newest named version, too.
    let r = c
        .request(
            PRODUCE_V,
            produce_request(1, vec![topic_data(TOPIC, vec![(0, values_batch(&["a"]))])]),
        )
        .await?;
    ensure!(
        r.responses[0].partition_responses[0].error_code == NONE,
        "{r:?}"
    );
    let got = fetch_all(&mut c, TOPIC, 1).await?;
    ensure!(
        got.len() as i64 == next,
        "fetched {} records, produced {next}",
        got.len()
    );
    drop(b);
    Ok(())
}

async fn seeded() -> Result<(TestBroker, Client, Uuid)> {
    let (b, mut c) = broker_with_topic(TOPIC, 2).await?;
    for (i, codec) in ALL_CODECS.iter().enumerate() {
        let recs: Vec<Rec> = (0..3)
            .map(|j| {
                Rec::kv(format!("k{i}{j}"), format!("v{i}{j}"))
                    .with_timestamp(1_700_000_000_000 + (i * 10 + j) as i64)
                    .with_header("h", None)
            })
            .collect();
        produce_ok(&mut c, TOPIC, 0, build_batch(*codec, &recs, None)).await?;
    }
    let id = topic_id(&mut c, TOPIC).await?;
    Ok((b, c, id))
}

#[tokio::test]
async fn fetch_every_version() -> Result<()> {
    let (_b, mut c, id) = seeded().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::Fetch)? {
        let parts = vec![
            fetch_partition(0, 4, 1 << 20),
            fetch_partition(1, 0, 1 << 20),
        ];
        let topic = if v >= 13 {
            fetch_topic_by_id(id, parts)
        } else {
            fetch_topic(TOPIC, parts)
        };
        let mut req = fetch_request(vec![topic], 100, 1);
        // Exercise both isolation levels (aborted_transactions is non-null for read_committed).
        req.isolation_level = (v % 2) as i8;
        if v >= 7 {
            req.session_id = 0;
            req.session_epoch = -1;
        }
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("Fetch v{v}"))?;
        ensure!(
            r.error_code == NONE && r.responses.len() == 1,
            "v{v}: {r:?}"
        );
        let t = &r.responses[0];
        if v >= 13 {
            ensure!(t.topic_id == id, "v{v}: topic id {:?}", t.topic_id);
        } else {
            ensure!(t.topic.as_str() == TOPIC, "v{v}: topic {:?}", t.topic);
        }
        ensure!(t.partitions.len() == 2, "v{v}: {t:?}");
        let p0 = &t.partitions[0];
        ensure!(
            p0.partition_index == 0 && p0.error_code == NONE,
            "v{v}: {p0:?}"
        );
        ensure!(
            p0.high_watermark == 15 && p0.last_stable_offset == 15,
            "v{v}: {p0:?}"
        );
        if v >= 5 {
            ensure!(p0.log_start_offset == 0, "v{v}: {p0:?}");
        }
        if v >= 11 {
            ensure!(p0.preferred_read_replica.0 == -1, "v{v}: {p0:?}");
        }
        let recs = decode_records(&p0.records.clone().unwrap_or_default())?;
        // Offset 4 lies in the second batch (offsets 3..=5): served from its start.
        ensure!(recs.first().map(|r| r.offset) == Some(3), "v{v}: {recs:?}");
        ensure!(recs.last().map(|r| r.offset) == Some(14), "v{v}");
        let p1 = &t.partitions[1];
        ensure!(
            p1.partition_index == 1 && p1.error_code == NONE,
            "v{v}: {p1:?}"
        );
        ensure!(p1.high_watermark == 0, "v{v}: {p1:?}");
        ensure!(
            p1.records.as_ref().is_none_or(|r| r.is_empty()),
            "v{v}: {p1:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn list_offsets_every_version() -> Result<()> {
    let (_b, mut c, _) = seeded().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::ListOffsets)? {
        let mut cases = vec![(-1i64, 15i64, -1i64), (-2, 0, -1)];
        // By timestamp: the record with timestamp base+21 is offset 7 (batch 2, record 1).
        cases.push((1_700_000_000_021, 7, 1_700_000_000_021));
        if v >= 7 {
            cases.push((-3, 14, 1_700_000_000_042));
        }
        for (ts, offset, timestamp) in cases {
            let mut req = list_offsets_request(TOPIC, 0, ts);
            if v >= 2 {
                req.isolation_level = 1;
            }
            if v >= 4 {
                req.topics[0].partitions[0].current_leader_epoch = -1;
            }
            let r = c
                .request(v, req)
                .await
                .with_context(|| format!("ListOffsets v{v} ts {ts}"))?;
            let t = &r.topics[0];
            ensure!(t.name.as_str() == TOPIC, "v{v}: {t:?}");
            let p = &t.partitions[0];
            ensure!(p.error_code == NONE, "v{v} ts {ts}: {p:?}");
            ensure!(
                (p.offset, p.timestamp) == (offset, timestamp),
                "v{v} ts {ts}: got ({}, {}), want ({offset}, {timestamp})",
                p.offset,
                p.timestamp
            );
            if v >= 4 {
                ensure!(p.leader_epoch >= 0, "v{v}: {p:?}");
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn metadata_every_version() -> Result<()> {
    let (b, mut c, id) = seeded().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::Metadata)? {
        let mut req = MetadataRequest::default().with_topics(metadata_topics(&[TOPIC]));
        if v >= 4 {
            req.allow_auto_topic_creation = false;
        }
        if (8..=10).contains(&v) {
            req.include_cluster_authorized_operations = false;
        }
        if v >= 8 {
            req.include_topic_authorized_operations = false;
        }
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("Metadata v{v}"))?;
        ensure!(r.brokers.len() == 1, "v{v}: {r:?}");
        let broker = &r.brokers[0];
        ensure!(broker.port == i32::from(b.addr.port()), "v{v}: {broker:?}");
        if v >= 1 {
            ensure!(r.controller_id == broker.node_id, "v{v}: {r:?}");
        }
        if v >= 2 {
            ensure!(
                r.cluster_id.as_ref().is_some_and(|c| !c.is_empty()),
                "v{v}: {r:?}"
            );
        }
        ensure!(r.topics.len() == 1, "v{v}: {r:?}");
        let t = &r.topics[0];
        ensure!(t.error_code == NONE, "v{v}: {t:?}");
        ensure!(
            t.name.as_ref().map(|n| n.as_str()) == Some(TOPIC),
            "v{v}: {t:?}"
        );
        ensure!(t.partitions.len() == 2, "v{v}: {t:?}");
        if v >= 10 {
            ensure!(t.topic_id == id, "v{v}: {t:?}");
        }
        for (i, p) in t.partitions.iter().enumerate() {
            ensure!(
                p.partition_index == i as i32 && p.error_code == NONE,
                "v{v}: {p:?}"
            );
            ensure!(p.leader_id == broker.node_id, "v{v}: {p:?}");
            ensure!(p.replica_nodes == vec![broker.node_id], "v{v}: {p:?}");
            ensure!(p.isr_nodes == vec![broker.node_id], "v{v}: {p:?}");
            if v >= 7 {
                ensure!(p.leader_epoch >= 0, "v{v}: {p:?}");
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn create_topics_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::CreateTopics)? {
        let topic = format!("created-v{v}");
        let t = with_config(creatable(&topic, 3), "retention.ms", "3600000");
        let r = create_topics(&mut c, v, vec![t], false)
            .await
            .with_context(|| format!("CreateTopics v{v}"))?;
        ensure!(r.len() == 1, "v{v}: {r:?}");
        let res = &r[0];
        ensure!(
            res.name.as_str() == topic && res.error_code == NONE,
            "v{v}: {res:?}"
        );
        if v >= 5 {
            ensure!(
                res.num_partitions == 3 && res.replication_factor == 1,
                "v{v}: {res:?}"
            );
        }
        if v >= 7 {
            ensure!(!res.topic_id.is_nil(), "v{v}: {res:?}");
            ensure!(res.topic_id == topic_id(&mut c, &topic).await?, "v{v}");
        }
        // And an error result at the same version (error_message is v1+).
        let r = create_topics(&mut c, v, vec![creatable(&topic, 3)], false).await?;
        ensure!(r[0].error_code == TOPIC_ALREADY_EXISTS, "v{v}: {r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn init_producer_id_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    let mut seen = Vec::new();
    for v in range_of(&table, ApiKey::InitProducerId)? {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("InitProducerId v{v}"))?;
        ensure!(r.error_code == NONE, "v{v}: {r:?}");
        ensure!(r.producer_id.0 >= 0 && r.producer_epoch == 0, "v{v}: {r:?}");
        if seen.contains(&r.producer_id.0) {
            bail!("v{v}: producer id {} handed out twice", r.producer_id.0);
        }
        seen.push(r.producer_id.0);
    }
    Ok(())
}

#[tokio::test]
async fn find_coordinator_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::FindCoordinator)? {
        let key = StrBytes::from_static_str("my-group");
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![key.clone()])
        } else {
            FindCoordinatorRequest::default().with_key(key.clone())
        };
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("FindCoordinator v{v}"))?;
        // The group coordinator is this node, at the address clients were given.
        let (code, node, port) = if v >= 4 {
            ensure!(r.coordinators.len() == 1, "v{v}: {r:?}");
            let k = &r.coordinators[0];
            ensure!(k.key == key, "v{v}: {r:?}");
            (k.error_code, k.node_id.0, k.port)
        } else {
            (r.error_code, r.node_id.0, r.port)
        };
        ensure!(
            code == NONE && node == 1 && port == i32::from(b.addr.port()),
            "v{v}: {r:?}"
        );
    }
    // Transaction coordinators do not exist yet: an error, not a coordinator that cannot serve.
    let r = c
        .request(
            3,
            FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(StrBytes::from_static_str("tx")),
        )
        .await?;
    ensure!(
        r.error_code == 15,
        "COORDINATOR_NOT_AVAILABLE expected: {r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn describe_configs_every_version() -> Result<()> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "described", 1).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DescribeConfigs)? {
        let topic = DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("described"));
        let broker = DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("num.partitions")]));
        let missing = DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("no-such-topic"));
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![topic, broker, missing])
            .with_include_synonyms(v >= 1);
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("DescribeConfigs v{v}"))?;
        ensure!(r.results.len() == 3, "v{v}: {r:?}");
        let t = &r.results[0];
        ensure!(t.error_code == NONE, "v{v}: {t:?}");
        let cp = t
            .configs
            .iter()
            .find(|e| e.name.as_str() == "cleanup.policy")
            .with_context(|| format!("v{v}: no cleanup.policy"))?;
        ensure!(
            cp.value.as_ref().map(|x| x.as_str()) == Some("delete"),
            "v{v}: {cp:?}"
        );
        ensure!(cp.config_source == 5, "DEFAULT_CONFIG expected: {cp:?}");
        let np = &r.results[1].configs;
        ensure!(
            np.len() == 1 && np[0].name.as_str() == "num.partitions",
            "v{v}: {np:?}"
        );
        ensure!(r.results[2].error_code == 3, "v{v}: {:?}", r.results[2]);
    }
    Ok(())
}
