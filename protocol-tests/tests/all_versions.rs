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
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::DescribeGroups,
        ApiKey::ListGroups,
        ApiKey::DeleteGroups,
        ApiKey::OffsetDelete,
        ApiKey::ConsumerGroupHeartbeat,
        ApiKey::ConsumerGroupDescribe,
        ApiKey::DeleteTopics,
        ApiKey::DeleteRecords,
        ApiKey::AlterConfigs,
        ApiKey::DescribeLogDirs,
        ApiKey::CreatePartitions,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::DescribeCluster,
        ApiKey::DescribeTopicPartitions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        // Per-version tests in txn_offsets.rs.
        ApiKey::TxnOffsetCommit,
        ApiKey::DescribeProducers,
        // Per-version tests in transactions.rs.
        ApiKey::WriteTxnMarkers,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::DescribeTransactions,
        ApiKey::ListTransactions,
        // Per-version tests in leader_epochs.rs.
        ApiKey::OffsetForLeaderEpoch,
        // Per-version tests in failover.rs.
        ApiKey::ElectLeaders,
        // Per-version tests in reassignments.rs.
        ApiKey::AlterPartitionReassignments,
        ApiKey::ListPartitionReassignments,
        // Per-version tests in security.rs and client_quotas.rs.
        ApiKey::DescribeClientQuotas,
        ApiKey::AlterClientQuotas,
        ApiKey::DescribeUserScramCredentials,
        ApiKey::AlterUserScramCredentials,
        // Per-version tests in acls.rs.
        ApiKey::DescribeAcls,
        ApiKey::CreateAcls,
        ApiKey::DeleteAcls,
        // Per-version tests in features.rs.
        ApiKey::UpdateFeatures,
        ApiKey::DescribeQuorum,
        // Per-version tests in share_groups.rs.
        ApiKey::ShareGroupHeartbeat,
        ApiKey::ShareGroupDescribe,
        ApiKey::ShareFetch,
        ApiKey::ShareAcknowledge,
        ApiKey::DescribeShareGroupOffsets,
        ApiKey::AlterShareGroupOffsets,
        ApiKey::DeleteShareGroupOffsets,
        // Per-version tests in streams_groups.rs.
        ApiKey::StreamsGroupHeartbeat,
        ApiKey::StreamsGroupDescribe,
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

// ---------------------------------------------------------------------------------------------
// Classic consumer groups
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn join_group_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::JoinGroup)? {
        let group = format!("join-v{v}");
        // A first member: MEMBER_ID_REQUIRED from v4, an immediate member id below.
        let spec_a = JoinSpec::consumer(&group, &[TOPIC]);
        let mut a = b.client().await?;
        let ja = join_new(&mut a, v, &spec_a)
            .await
            .with_context(|| format!("JoinGroup v{v}"))?;
        let a_id = ja.member_id.to_string();
        ensure!(
            !a_id.is_empty() && ja.generation_id == 1 && ja.leader.as_str() == a_id,
            "v{v}: {ja:?}"
        );
        ensure!(
            ja.protocol_name.as_ref().map(|p| p.as_str()) == Some("range"),
            "v{v}: {ja:?}"
        );
        ensure!(
            ja.members.len() == 1 && ja.members[0].member_id.as_str() == a_id,
            "v{v}: {ja:?}"
        );
        ensure!(
            ja.members[0].metadata == spec_a.metadata(),
            "v{v}: metadata not echoed: {ja:?}"
        );
        if v >= 7 {
            ensure!(
                ja.protocol_type.as_ref().map(|p| p.as_str()) == Some(CONSUMER),
                "v{v}: {ja:?}"
            );
        }
        if v >= 9 {
            ensure!(!ja.skip_assignment, "v{v}: {ja:?}");
        }
        let sa = sync(&mut a, SYNC_V, &group, &a_id, 1, None, &[(&a_id, b"A1")]).await?;
        ensure!(
            sa.error_code == NONE && sa.assignment.as_ref() == b"A1",
            "v{v}: {sa:?}"
        );

        // A second member (static from v5, so members carry a group instance id): a rebalance.
        let mut spec_b = JoinSpec::consumer(&group, &[TOPIC, "other"]);
        if v >= 5 {
            spec_b = spec_b.instance(&format!("inst-{v}"));
        }
        let mut bc = b.client().await?;
        let b_id = member_id_for(&mut bc, v, &spec_b).await?;
        let b_req = send_join(&mut bc, v, &spec_b.clone().member(&b_id)).await?;
        // The first member learns of the rebalance by heartbeat, then rejoins.
        let mut code = NONE;
        for _ in 0..100 {
            code = heartbeat(&mut a, HEARTBEAT_V, &group, &a_id, 1, None).await?;
            if code != NONE {
                break;
            }
            sleep_ms(20).await;
        }
        ensure!(
            code == REBALANCE_IN_PROGRESS,
            "v{v}: heartbeat during rebalance: {code}"
        );
        let ja = join(&mut a, v, &spec_a.clone().member(&a_id)).await?;
        let jb = read_join(&mut bc, v, b_req).await?;
        ensure!(
            ja.error_code == NONE && jb.error_code == NONE,
            "v{v}: {ja:?} {jb:?}"
        );
        ensure!(
            ja.generation_id == 2 && jb.generation_id == 2,
            "v{v}: {ja:?} {jb:?}"
        );
        ensure!(
            ja.leader == jb.leader && ja.leader.as_str() == a_id,
            "v{v}: {ja:?} {jb:?}"
        );
        let new_b = jb.member_id.to_string();
        ensure!(!new_b.is_empty() && new_b != a_id, "v{v}: {jb:?}");
        ensure!(
            jb.members.is_empty(),
            "v{v}: a follower gets no member list: {jb:?}"
        );
        ensure!(ja.members.len() == 2, "v{v}: {ja:?}");
        let mb = ja
            .members
            .iter()
            .find(|m| m.member_id.as_str() == new_b)
            .with_context(|| format!("v{v}: {new_b} missing from {ja:?}"))?;
        ensure!(mb.metadata == spec_b.metadata(), "v{v}: {mb:?}");
        if v >= 5 {
            ensure!(
                mb.group_instance_id.as_ref().map(|i| i.to_string()) == spec_b.instance,
                "v{v}: {mb:?}"
            );
        }
        let sb_req = bc
            .send_request(
                SYNC_V,
                &sync_request(SYNC_V, &group, &new_b, 2, spec_b.instance.as_deref(), &[]),
            )
            .await?;
        let sa = sync(
            &mut a,
            SYNC_V,
            &group,
            &a_id,
            2,
            None,
            &[(&a_id, b"A2"), (&new_b, b"B2")],
        )
        .await?;
        let sb = bc.read_response::<SyncGroupRequest>(SYNC_V, sb_req).await?;
        ensure!(
            sa.assignment.as_ref() == b"A2" && sb.assignment.as_ref() == b"B2",
            "v{v}: {sa:?} {sb:?}"
        );
        let d = describe_group(&mut c, &group).await?;
        ensure!(
            d.group_state.as_str() == "Stable" && d.members.len() == 2,
            "v{v}: {d:?}"
        );
        // An error answer at the same version.
        let bad = JoinSpec {
            session_ms: 1000,
            ..JoinSpec::consumer(&group, &[TOPIC])
        };
        let r = join(&mut c, v, &bad).await?;
        ensure!(r.error_code == INVALID_SESSION_TIMEOUT, "v{v}: {r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn sync_group_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::SyncGroup)? {
        let group = format!("sync-v{v}");
        let mut spec = JoinSpec::consumer(&group, &[TOPIC]);
        if v >= 3 {
            spec = spec.instance("static-1");
        }
        let mut m = b.client().await?;
        let j = join_new(&mut m, JOIN_V, &spec).await?;
        let id = j.member_id.to_string();
        let inst = spec.instance.as_deref();
        // Wrong generation first (the group waits in CompletingRebalance meanwhile).
        let r = sync(&mut m, v, &group, &id, 7, inst, &[])
            .await
            .with_context(|| format!("SyncGroup v{v}"))?;
        ensure!(
            r.error_code == ILLEGAL_GENERATION && r.assignment.is_empty(),
            "v{v}: {r:?}"
        );
        let assignment = format!("assignment at v{v}").into_bytes();
        let r = sync(
            &mut m,
            v,
            &group,
            &id,
            j.generation_id,
            inst,
            &[(&id, &assignment)],
        )
        .await?;
        ensure!(
            r.error_code == NONE && r.assignment.as_ref() == assignment.as_slice(),
            "v{v}: {r:?}"
        );
        if v >= 5 {
            ensure!(
                r.protocol_type.as_ref().map(|x| x.as_str()) == Some(CONSUMER),
                "v{v}: {r:?}"
            );
            ensure!(
                r.protocol_name.as_ref().map(|x| x.as_str()) == Some("range"),
                "v{v}: {r:?}"
            );
        }
        // A repeated SyncGroup in the stable group gets the same assignment.
        let r = sync(&mut m, v, &group, &id, j.generation_id, inst, &[]).await?;
        ensure!(
            r.error_code == NONE && r.assignment.as_ref() == assignment.as_slice(),
            "v{v}: {r:?}"
        );
        let r = sync(&mut m, v, &group, "ghost", j.generation_id, None, &[]).await?;
        ensure!(r.error_code == UNKNOWN_MEMBER_ID, "v{v}: {r:?}");
        let d = describe_group(&mut c, &group).await?;
        ensure!(d.group_state.as_str() == "Stable", "v{v}: {d:?}");
        ensure!(
            d.members[0].member_assignment.as_ref() == assignment.as_slice(),
            "v{v}: {d:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn heartbeat_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::Heartbeat)? {
        let group = format!("hb-v{v}");
        let mut spec = JoinSpec::consumer(&group, &[TOPIC]);
        if v >= 3 {
            spec = spec.instance("hb-static");
        }
        let mut m = b.client().await?;
        let j = stable_member(&mut m, &spec, b"x").await?;
        let inst = spec.instance.as_deref();
        let hb = |id: &str, generation: i32| heartbeat_request(v, &group, id, generation, inst);
        let r = m
            .request(v, hb(&j.member_id, j.generation))
            .await
            .with_context(|| format!("Heartbeat v{v}"))?;
        ensure!(r.error_code == NONE, "v{v}: {r:?}");
        let r = m.request(v, hb(&j.member_id, j.generation + 1)).await?;
        ensure!(r.error_code == ILLEGAL_GENERATION, "v{v}: {r:?}");
        let r = m
            .request(v, heartbeat_request(v, &group, "ghost", j.generation, None))
            .await?;
        ensure!(r.error_code == UNKNOWN_MEMBER_ID, "v{v}: {r:?}");
        if v >= 3 {
            // Another member id under this static member's instance id is fenced.
            let r = m.request(v, hb("impostor", j.generation)).await?;
            ensure!(r.error_code == FENCED_INSTANCE_ID, "v{v}: {r:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn leave_group_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::LeaveGroup)? {
        let group = format!("leave-v{v}");
        let mut m = b.client().await?;
        let j = stable_member(&mut m, &JoinSpec::consumer(&group, &[TOPIC]), b"x").await?;
        if v < 3 {
            let r = leave(&mut c, v, &group, &[(&j.member_id, None)])
                .await
                .with_context(|| format!("LeaveGroup v{v}"))?;
            ensure!(r.error_code == NONE, "v{v}: {r:?}");
            let r = leave(&mut c, v, &group, &[(&j.member_id, None)]).await?;
            ensure!(r.error_code == UNKNOWN_MEMBER_ID, "v{v}: {r:?}");
        } else {
            let r = leave(&mut c, v, &group, &[(&j.member_id, None), ("ghost", None)])
                .await
                .with_context(|| format!("LeaveGroup v{v}"))?;
            ensure!(r.error_code == NONE && r.members.len() == 2, "v{v}: {r:?}");
            ensure!(
                r.members[0].member_id.as_str() == j.member_id && r.members[0].error_code == NONE,
                "v{v}: {r:?}"
            );
            ensure!(
                r.members[1].member_id.as_str() == "ghost"
                    && r.members[1].error_code == UNKNOWN_MEMBER_ID,
                "v{v}: {r:?}"
            );
        }
        let d = describe_group(&mut c, &group).await?;
        ensure!(
            d.group_state.as_str() == "Empty" && d.members.is_empty(),
            "v{v}: {d:?}"
        );
        let code = heartbeat(
            &mut m,
            HEARTBEAT_V,
            &group,
            &j.member_id,
            j.generation,
            None,
        )
        .await?;
        ensure!(
            code == UNKNOWN_MEMBER_ID,
            "v{v}: heartbeat after leaving: {code}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn offset_commit_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::OffsetCommit)? {
        let group = format!("commit-v{v}");
        let mut spec = JoinSpec::consumer(&group, &[TOPIC]);
        if v >= 7 {
            spec = spec.instance("committer");
        }
        let mut m = b.client().await?;
        let j = stable_member(&mut m, &spec, b"x").await?;
        let inst = spec.instance.as_deref();
        let meta = format!("meta-v{v}");
        let o = 100 + i64::from(v);
        let commits = [
            (TOPIC, 0, o, meta.as_str()),
            (TOPIC, 1, o + 1, ""),
            ("no-such-topic", 0, 5, ""),
        ];
        let codes = commit(
            &mut m,
            v,
            &group,
            &j.member_id,
            j.generation,
            inst,
            &commits,
        )
        .await
        .with_context(|| format!("OffsetCommit v{v}"))?;
        let want = vec![
            (TOPIC.to_string(), 0, NONE),
            (TOPIC.to_string(), 1, NONE),
            ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ];
        ensure!(codes == want, "v{v}: {codes:?}");
        let (code, got) =
            fetch_offsets(&mut c, OFFSET_FETCH_V, &group, Some(&[(TOPIC, &[0, 1])])).await?;
        ensure!(code == NONE && got.len() == 2, "v{v}: {got:?}");
        ensure!(
            got[0].offset == o && got[0].metadata.as_deref() == Some(meta.as_str()),
            "v{v}: {got:?}"
        );
        ensure!(got[1].offset == o + 1, "v{v}: {got:?}");
        let epoch = if v >= 6 { 0 } else { -1 };
        ensure!(got[0].leader_epoch == epoch, "v{v}: leader epoch: {got:?}");
        // Group-level errors apply to every partition, at the same version.
        let codes = commit(
            &mut m,
            v,
            &group,
            &j.member_id,
            j.generation + 5,
            inst,
            &commits[..2],
        )
        .await?;
        ensure!(
            codes.iter().all(|x| x.2 == ILLEGAL_GENERATION) && codes.len() == 2,
            "v{v}: {codes:?}"
        );
        let codes = commit(&mut m, v, &group, "", -1, None, &commits[..1]).await?;
        ensure!(
            codes == vec![(TOPIC.to_string(), 0, UNKNOWN_MEMBER_ID)],
            "v{v}: {codes:?}"
        );
        // A group without members takes commits from outside any generation.
        let codes = commit(
            &mut c,
            v,
            &format!("simple-v{v}"),
            "",
            -1,
            None,
            &commits[..1],
        )
        .await?;
        ensure!(
            codes == vec![(TOPIC.to_string(), 0, NONE)],
            "v{v}: {codes:?}"
        );
        ensure!(
            committed(&mut c, &format!("simple-v{v}"), TOPIC, 0).await? == o,
            "v{v}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn offset_fetch_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 3).await?;
    create_topic(&mut c, "second", 1).await?;
    let table = advertised(&mut c).await?;
    let group = "fetched";
    let mut m = b.client().await?;
    let j = stable_member(&mut m, &JoinSpec::consumer(group, &[TOPIC]), b"x").await?;
    commit_ok(
        &mut m,
        group,
        &j.member_id,
        j.generation,
        &[
            (TOPIC, 0, 42, "m0"),
            (TOPIC, 2, 7, ""),
            ("second", 0, 3, "s"),
        ],
    )
    .await?;
    for v in range_of(&table, ApiKey::OffsetFetch)? {
        let (code, got) = fetch_offsets(
            &mut c,
            v,
            group,
            Some(&[(TOPIC, &[0, 1, 2]), ("second", &[0])]),
        )
        .await
        .with_context(|| format!("OffsetFetch v{v}"))?;
        ensure!(code == NONE && got.len() == 4, "v{v}: {got:?}");
        let epoch = if v >= 5 { 0 } else { -1 };
        let row = |t: &str, p: i32, o: i64, e: i32, meta: &str| OffsetEntry {
            topic: t.to_string(),
            partition: p,
            offset: o,
            leader_epoch: e,
            metadata: Some(meta.to_string()),
            error_code: NONE,
        };
        let want = vec![
            row(TOPIC, 0, 42, epoch, "m0"),
            row(TOPIC, 1, -1, -1, ""),
            row(TOPIC, 2, 7, epoch, ""),
            row("second", 0, 3, epoch, "s"),
        ];
        ensure!(got == want, "v{v}: got {got:?}\nwant {want:?}");
        if v >= 2 {
            // All of the group's offsets (null topics).
            let (code, mut all) = fetch_offsets(&mut c, v, group, None).await?;
            all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            let offsets: Vec<(String, i32, i64)> = all
                .iter()
                .map(|x| (x.topic.clone(), x.partition, x.offset))
                .collect();
            let want = vec![
                ("second".to_string(), 0, 3),
                (TOPIC.to_string(), 0, 42),
                (TOPIC.to_string(), 2, 7),
            ];
            ensure!(code == NONE && offsets == want, "v{v}: {all:?}");
        }
        // An unknown group has nothing committed.
        let (code, got) = fetch_offsets(&mut c, v, "nobody-here", Some(&[(TOPIC, &[0])])).await?;
        ensure!(
            code == NONE && got.len() == 1 && got[0].offset == -1,
            "v{v}: {got:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn describe_groups_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DescribeGroups)? {
        let group = format!("described-v{v}");
        let spec = JoinSpec::consumer(&group, &[TOPIC]).instance(&format!("inst-{v}"));
        let mut m = b.client().await?;
        let j = stable_member(&mut m, &spec, b"assigned").await?;
        let d = describe_group_at(&mut c, v, &group)
            .await
            .with_context(|| format!("DescribeGroups v{v}"))?;
        ensure!(
            d.error_code == NONE && d.group_state.as_str() == "Stable",
            "v{v}: {d:?}"
        );
        ensure!(
            d.protocol_type.as_str() == CONSUMER && d.protocol_data.as_str() == "range",
            "v{v}: {d:?}"
        );
        ensure!(d.members.len() == 1, "v{v}: {d:?}");
        let dm = &d.members[0];
        ensure!(dm.member_id.as_str() == j.member_id, "v{v}: {dm:?}");
        ensure!(
            dm.client_id.as_str() == CLIENT_ID && dm.client_host.starts_with('/'),
            "v{v}: {dm:?}"
        );
        ensure!(dm.member_metadata == spec.metadata(), "v{v}: {dm:?}");
        ensure!(dm.member_assignment.as_ref() == b"assigned", "v{v}: {dm:?}");
        if v >= 4 {
            ensure!(
                dm.group_instance_id.as_ref().map(|i| i.to_string()) == spec.instance,
                "v{v}: {dm:?}"
            );
        }
        if v >= 3 {
            ensure!(
                d.authorized_operations != i32::MIN && d.authorized_operations & (1 << 8) != 0,
                "v{v}: {d:?}"
            );
        }
        // The same group once empty.
        let r = leave(&mut m, LEAVE_V, &group, &[("", spec.instance.as_deref())]).await?;
        ensure!(
            r.error_code == NONE && r.members.first().map(|x| x.error_code) == Some(NONE),
            "v{v}: {r:?}"
        );
        let d = describe_group_at(&mut c, v, &group).await?;
        ensure!(
            d.group_state.as_str() == "Empty" && d.members.is_empty(),
            "v{v}: {d:?}"
        );
        ensure!(d.protocol_type.as_str() == CONSUMER, "v{v}: {d:?}");
        // An unknown group: Dead, and from v6 GROUP_ID_NOT_FOUND.
        let d = describe_group_at(&mut c, v, "never-existed").await?;
        ensure!(
            d.group_state.as_str() == "Dead" && d.members.is_empty(),
            "v{v}: {d:?}"
        );
        let want = if v >= 6 { GROUP_ID_NOT_FOUND } else { NONE };
        ensure!(d.error_code == want, "v{v}: {d:?}");
    }
    Ok(())
}

#[tokio::test]
async fn list_groups_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    let mut m = b.client().await?;
    stable_member(&mut m, &JoinSpec::consumer("listed-stable", &[TOPIC]), b"x").await?;
    // A group that only holds offsets.
    let codes = commit(
        &mut c,
        COMMIT_V,
        "listed-simple",
        "",
        -1,
        None,
        &[(TOPIC, 0, 1, "")],
    )
    .await?;
    ensure!(codes[0].2 == NONE, "{codes:?}");
    for v in range_of(&table, ApiKey::ListGroups)? {
        let mut got = list_groups(&mut c, v, &[], &[])
            .await
            .with_context(|| format!("ListGroups v{v}"))?;
        got.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        ensure!(got.len() == 2, "v{v}: {got:?}");
        ensure!(
            got[0].group_id.as_str() == "listed-simple" && got[0].protocol_type.is_empty(),
            "v{v}: {got:?}"
        );
        ensure!(
            got[1].group_id.as_str() == "listed-stable"
                && got[1].protocol_type.as_str() == CONSUMER,
            "v{v}: {got:?}"
        );
        if v >= 4 {
            ensure!(
                got[0].group_state.as_str() == "Empty" && got[1].group_state.as_str() == "Stable",
                "v{v}: {got:?}"
            );
            let stable = list_groups(&mut c, v, &["Stable"], &[]).await?;
            ensure!(
                stable.len() == 1 && stable[0].group_id.as_str() == "listed-stable",
                "v{v}: {stable:?}"
            );
        }
        if v >= 5 {
            ensure!(
                got.iter().all(|g| g.group_type.as_str() == "classic"),
                "v{v}: {got:?}"
            );
            let classic = list_groups(&mut c, v, &[], &["classic"]).await?;
            ensure!(classic.len() == 2, "v{v}: {classic:?}");
            let consumer = list_groups(&mut c, v, &[], &["consumer"]).await?;
            ensure!(consumer.is_empty(), "v{v}: {consumer:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn delete_groups_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DeleteGroups)? {
        let group = format!("deleted-v{v}");
        let mut m = b.client().await?;
        let j = stable_member(&mut m, &JoinSpec::consumer(&group, &[TOPIC]), b"x").await?;
        commit_ok(
            &mut m,
            &group,
            &j.member_id,
            j.generation,
            &[(TOPIC, 0, 10, "")],
        )
        .await?;
        let code = delete_group(&mut c, v, &group)
            .await
            .with_context(|| format!("DeleteGroups v{v}"))?;
        ensure!(code == NON_EMPTY_GROUP, "v{v}: {code}");
        let code = delete_group(&mut c, v, "no-such-group").await?;
        ensure!(code == GROUP_ID_NOT_FOUND, "v{v}: {code}");
        let r = leave(&mut m, LEAVE_V, &group, &[(&j.member_id, None)]).await?;
        ensure!(r.members[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(committed(&mut c, &group, TOPIC, 0).await? == 10, "v{v}");
        let code = delete_group(&mut c, v, &group).await?;
        ensure!(code == NONE, "v{v}: {code}");
        ensure!(
            committed(&mut c, &group, TOPIC, 0).await? == -1,
            "v{v}: offsets survived the delete"
        );
        let d = describe_group(&mut c, &group).await?;
        ensure!(d.error_code == GROUP_ID_NOT_FOUND, "v{v}: {d:?}");
        let code = delete_group(&mut c, v, &group).await?;
        ensure!(code == GROUP_ID_NOT_FOUND, "v{v}: second delete: {code}");
    }
    Ok(())
}

#[tokio::test]
async fn offset_delete_every_version() -> Result<()> {
    let (b, mut c) = group_broker_with_topic(TOPIC, 2).await?;
    create_topic(&mut c, "unsubscribed", 1).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::OffsetDelete)? {
        let group = format!("offset-delete-v{v}");
        let mut m = b.client().await?;
        let j = stable_member(&mut m, &JoinSpec::consumer(&group, &[TOPIC]), b"x").await?;
        commit_ok(
            &mut m,
            &group,
            &j.member_id,
            j.generation,
            &[(TOPIC, 0, 5, ""), ("unsubscribed", 0, 6, "")],
        )
        .await?;
        let (code, parts) = delete_offsets(&mut c, v, &group, &[(TOPIC, 0), ("unsubscribed", 0)])
            .await
            .with_context(|| format!("OffsetDelete v{v}"))?;
        ensure!(code == NONE, "v{v}: {code} {parts:?}");
        let want = vec![
            (TOPIC.to_string(), 0, GROUP_SUBSCRIBED_TO_TOPIC),
            ("unsubscribed".to_string(), 0, NONE),
        ];
        ensure!(parts == want, "v{v}: {parts:?}");
        ensure!(committed(&mut c, &group, TOPIC, 0).await? == 5, "v{v}");
        ensure!(
            committed(&mut c, &group, "unsubscribed", 0).await? == -1,
            "v{v}"
        );
        let (code, _) = delete_offsets(&mut c, v, "no-such-group", &[(TOPIC, 0)]).await?;
        ensure!(code == GROUP_ID_NOT_FOUND, "v{v}: {code}");
    }
    Ok(())
}

#[tokio::test]
async fn consumer_group_heartbeat_every_version() -> Result<()> {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;
    let (b, mut c) = group_broker_with_topic("k848", 4).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::ConsumerGroupHeartbeat)? {
        let group = format!("cg-v{v}");
        let member = format!("member-v{v}");
        // v0: the broker names the member; v1+: the client does (KIP-1082).
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_member_id(StrBytes::from_string(if v >= 1 {
                member.clone()
            } else {
                String::new()
            }))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("k848"))]))
            .with_topic_partitions(Some(vec![]));
        let r = c
            .request(v, join)
            .await
            .with_context(|| format!("ConsumerGroupHeartbeat v{v}"))?;
        ensure!(r.error_code == NONE, "v{v}: {r:?}");
        ensure!(
            r.member_epoch > 0 && r.heartbeat_interval_ms > 0,
            "v{v}: {r:?}"
        );
        let id = r.member_id.clone().context("no member id")?;
        if v >= 1 {
            ensure!(
                id.as_str() == member,
                "v{v}: the client's member id must be kept: {r:?}"
            );
        }
        let assigned: Vec<i32> = r
            .assignment
            .as_ref()
            .map(|a| {
                a.topic_partitions
                    .iter()
                    .flat_map(|t| t.partitions.clone())
                    .collect()
            })
            .unwrap_or_default();
        ensure!(
            assigned.len() == 4,
            "the only member gets all 4 partitions: {r:?}"
        );
        // A steady heartbeat repeats no assignment.
        let owned = r.assignment.clone().map(|a| {
            a.topic_partitions
                .into_iter()
                .map(|t| {
                    Owned::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(t.partitions)
                })
                .collect()
        });
        let beat = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_member_id(id.clone())
            .with_member_epoch(r.member_epoch)
            .with_topic_partitions(owned);
        let r2 = c.request(v, beat).await?;
        ensure!(
            r2.error_code == NONE && r2.assignment.is_none(),
            "v{v}: {r2:?}"
        );
        // A stale epoch is fenced; leaving answers epoch -1.
        let stale = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_member_id(id.clone())
            .with_member_epoch(r.member_epoch + 10);
        ensure!(
            c.request(v, stale).await?.error_code == 110,
            "FENCED_MEMBER_EPOCH expected"
        );
        let leave = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_member_id(id)
            .with_member_epoch(-1);
        let r3 = c.request(v, leave).await?;
        ensure!(
            r3.error_code == NONE && r3.member_epoch == -1,
            "v{v}: {r3:?}"
        );
    }
    drop(b);
    Ok(())
}

#[tokio::test]
async fn consumer_group_describe_every_version() -> Result<()> {
    let (_b, mut c) = group_broker_with_topic("k848d", 2).await?;
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("cgd")))
        .with_member_id(StrBytes::from_static_str("m1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("k848d"))]))
        .with_topic_partitions(Some(vec![]));
    ensure!(c.request(1, join).await?.error_code == NONE);
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::ConsumerGroupDescribe)? {
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
            GroupId(StrBytes::from_static_str("cgd")),
            GroupId(StrBytes::from_static_str("nope")),
        ]);
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("ConsumerGroupDescribe v{v}"))?;
        ensure!(r.groups.len() == 2, "v{v}: {r:?}");
        let g = &r.groups[0];
        ensure!(
            g.error_code == NONE && g.group_state.as_str() == "Stable",
            "v{v}: {g:?}"
        );
        ensure!(
            g.members.len() == 1 && g.members[0].member_id.as_str() == "m1",
            "v{v}: {g:?}"
        );
        let parts: usize = g.members[0]
            .assignment
            .topic_partitions
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        ensure!(parts == 2, "v{v}: {g:?}");
        ensure!(
            r.groups[1].error_code == 69,
            "GROUP_ID_NOT_FOUND expected: {:?}",
            r.groups[1]
        );
    }
    // The consumer group is listed with its type (ListGroups v5).
    let listed = c.request(5, ListGroupsRequest::default()).await?;
    let cgd = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "cgd")
        .context("cgd not listed")?;
    ensure!(cgd.group_type.as_str() == "consumer", "{cgd:?}");
    Ok(())
}

#[tokio::test]
async fn delete_topics_every_version() -> Result<()> {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DeleteTopics)? {
        let (by_name, by_id) = (format!("del-name-v{v}"), format!("del-id-v{v}"));
        create_topic(&mut c, &by_name, 2).await?;
        create_topic(&mut c, &by_id, 1).await?;
        let id = topic_id(&mut c, &by_id).await?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(10_000);
        if v >= 6 {
            req.topics = vec![
                DeleteTopicState::default().with_name(Some(name(&by_name))),
                DeleteTopicState::default().with_topic_id(id),
                DeleteTopicState::default().with_name(Some(name("del-missing"))),
            ];
        } else {
            req.topic_names = vec![name(&by_name), name(&by_id), name("del-missing")];
        }
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        ensure!(r.responses.len() == 3, "v{v}: {r:?}");
        let code_of = |n: &str| {
            r.responses
                .iter()
                .find(|x| x.name.as_ref().map(|t| t.as_str()) == Some(n))
                .map(|x| x.error_code)
        };
        ensure!(code_of(&by_name) == Some(NONE), "v{v}: {r:?}");
        ensure!(code_of(&by_id) == Some(NONE), "v{v}: {r:?}");
        ensure!(
            code_of("del-missing") == Some(UNKNOWN_TOPIC_OR_PARTITION),
            "v{v}: {r:?}"
        );
        let m = metadata(
            &mut c,
            METADATA_V,
            metadata_topics(&[&by_name, &by_id]),
            false,
        )
        .await?;
        ensure!(
            m.topics
                .iter()
                .all(|t| t.error_code == UNKNOWN_TOPIC_OR_PARTITION),
            "v{v}: still there: {m:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn delete_records_every_version() -> Result<()> {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "trimmed", 1).await?;
    let table = advertised(&mut c).await?;
    let mut start = 0;
    for v in range_of(&table, ApiKey::DeleteRecords)? {
        produce_ok(&mut c, "trimmed", 0, values_batch(&["a", "b", "c"])).await?;
        start += 2;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("trimmed"))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(start),
                    DeleteRecordsPartition::default()
                        .with_partition_index(7)
                        .with_offset(0),
                ])]);
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        let ps = &r.topics[0].partitions;
        ensure!(
            ps[0].error_code == NONE && ps[0].low_watermark == start,
            "v{v}: {r:?}"
        );
        ensure!(
            ps[1].error_code == UNKNOWN_TOPIC_OR_PARTITION,
            "v{v}: {r:?}"
        );
        let earliest = list_offset(&mut c, "trimmed", 0, -2).await?;
        ensure!(earliest.offset == start, "v{v}: {earliest:?}");
        start += 1;
    }
    Ok(())
}

#[tokio::test]
async fn alter_configs_every_version() -> Result<()> {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "altered", 1).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::AlterConfigs)? {
        let value = format!("{}", 1000 + i64::from(v));
        let topic = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("altered"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s(&value)))]);
        let missing = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("no-such-topic"));
        let req = AlterConfigsRequest::default().with_resources(vec![topic, missing]);
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        ensure!(r.responses.len() == 2, "v{v}: {r:?}");
        ensure!(r.responses[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(
            r.responses[1].error_code == UNKNOWN_TOPIC_OR_PARTITION,
            "v{v}: {r:?}"
        );
        ensure!(
            topic_config(&mut c, "altered", "retention.ms")
                .await?
                .as_deref()
                == Some(&*value),
            "v{v}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn incremental_alter_configs_every_version() -> Result<()> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "incr", 1).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::IncrementalAlterConfigs)? {
        let value = format!("{}", 2000 + i64::from(v));
        let topic = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("incr"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("segment.ms"))
                .with_config_operation(0)
                .with_value(Some(s(&value)))]);
        let bad = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("incr-missing"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("segment.ms"))
                .with_config_operation(0)
                .with_value(Some(s("1")))]);
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![topic, bad]);
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        ensure!(r.responses[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(
            r.responses[1].error_code == UNKNOWN_TOPIC_OR_PARTITION,
            "v{v}: {r:?}"
        );
        ensure!(
            topic_config(&mut c, "incr", "segment.ms").await?.as_deref() == Some(&*value),
            "v{v}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn create_partitions_every_version() -> Result<()> {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "growing", 1).await?;
    let table = advertised(&mut c).await?;
    let mut count = 1;
    for v in range_of(&table, ApiKey::CreatePartitions)? {
        count += 1;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name("growing"))
                    .with_count(count)
                    .with_assignments(None),
                CreatePartitionsTopic::default()
                    .with_name(name("growing-missing"))
                    .with_count(3),
            ]);
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        ensure!(r.results[0].error_code == NONE, "v{v}: {r:?}");
        ensure!(
            r.results[1].error_code == UNKNOWN_TOPIC_OR_PARTITION,
            "v{v}: {r:?}"
        );
        let m = metadata(&mut c, METADATA_V, metadata_topics(&["growing"]), false).await?;
        ensure!(
            m.topics[0].partitions.len() == count as usize,
            "v{v}: {m:?}"
        );
        produce_ok(&mut c, "growing", count - 1, values_batch(&["new"])).await?;
    }
    Ok(())
}

#[tokio::test]
async fn describe_cluster_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DescribeCluster)? {
        let mut req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        if v >= 1 {
            req.endpoint_type = 1;
        }
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        ensure!(r.error_code == NONE && r.brokers.len() == 1, "v{v}: {r:?}");
        ensure!(r.brokers[0].port == i32::from(b.addr.port()), "v{v}: {r:?}");
        ensure!(
            !r.cluster_id.is_empty() && r.controller_id == r.brokers[0].broker_id,
            "v{v}: {r:?}"
        );
        ensure!(r.cluster_authorized_operations > 0, "v{v}: {r:?}");
        if v >= 1 {
            let r = c
                .request(v, DescribeClusterRequest::default().with_endpoint_type(2))
                .await?;
            ensure!(r.error_code == 114, "v{v} controller endpoints: {r:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn describe_log_dirs_every_version() -> Result<()> {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "sized", 2).await?;
    produce_ok(&mut c, "sized", 1, values_batch(&["some bytes"])).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DescribeLogDirs)? {
        let all = c.request(v, DescribeLogDirsRequest::default()).await?;
        ensure!(
            all.results.len() == 1 && all.results[0].error_code == NONE,
            "v{v}: {all:?}"
        );
        let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(name("sized"))
                .with_partitions(vec![1]),
        ]));
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        let topics = &r.results[0].topics;
        ensure!(
            topics.len() == 1 && topics[0].partitions.len() == 1,
            "v{v}: {r:?}"
        );
        ensure!(topics[0].partitions[0].partition_size > 0, "v{v}: {r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn describe_topic_partitions_every_version() -> Result<()> {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "dtp-a", 3).await?;
    create_topic(&mut c, "dtp-b", 2).await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::DescribeTopicPartitions)? {
        let req = DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(2000)
            .with_topics(
                ["dtp-b", "dtp-a", "dtp-missing"]
                    .iter()
                    .map(|t| TopicRequest::default().with_name(name(t)))
                    .collect(),
            );
        let r = c.request(v, req).await.with_context(|| format!("v{v}"))?;
        let got: Vec<(String, i16, usize)> = r
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.len(),
                )
            })
            .collect();
        ensure!(
            got == vec![
                ("dtp-a".to_string(), NONE, 3),
                ("dtp-b".to_string(), NONE, 2),
                ("dtp-missing".to_string(), UNKNOWN_TOPIC_OR_PARTITION, 0)
            ],
            "v{v}: {got:?}"
        );
        ensure!(
            r.next_cursor.is_none() && !r.topics[0].topic_id.is_nil(),
            "v{v}: {r:?}"
        );
    }
    Ok(())
}

// Kafka's PLAINTEXT listener (KafkaApis.handleSaslHandshakeRequest / handleSaslAuthenticateRequest,
// calibrated on Kafka 4.4) answers both SASL requests with ILLEGAL_SASL_STATE and keeps the
// connection open, so a client configured for SASL fails at once instead of timing out.
const ILLEGAL_SASL_STATE: i16 = 34;

#[tokio::test]
async fn sasl_handshake_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::SaslHandshake)? {
        let r = c
            .request(
                v,
                SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            )
            .await
            .with_context(|| format!("SaslHandshake v{v}"))?;
        ensure!(r.error_code == ILLEGAL_SASL_STATE, "v{v}: {r:?}");
        ensure!(r.mechanisms.is_empty(), "v{v}: {r:?}");
    }
    // The connection still serves requests, as Kafka's does.
    metadata(&mut c, METADATA_V, None, false).await?;
    Ok(())
}

#[tokio::test]
async fn sasl_authenticate_every_version() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let table = advertised(&mut c).await?;
    for v in range_of(&table, ApiKey::SaslAuthenticate)? {
        let req = SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from_static(b"\0a\0b"));
        let r = c
            .request(v, req)
            .await
            .with_context(|| format!("SaslAuthenticate v{v}"))?;
        ensure!(r.error_code == ILLEGAL_SASL_STATE, "v{v}: {r:?}");
        ensure!(
            r.error_message.as_deref()
                == Some("SaslAuthenticate request received after successful authentication"),
            "v{v}: {r:?}"
        );
        ensure!(
            r.auth_bytes.is_empty() && r.session_lifetime_ms == 0,
            "v{v}: {r:?}"
        );
    }
    metadata(&mut c, METADATA_V, None, false).await?;
    Ok(())
}
