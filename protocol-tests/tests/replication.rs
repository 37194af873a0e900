//! Data replication between the processes of a quorum (issue 15): three brokers, each its own
//! metadata quorum voter with its own data directory, in this test process. A partition with
//! three replicas is committed straight to the metadata log (CreateTopics still refuses a
//! replication factor above 1 across processes until acks=all waits for the ISR); its leader
//! is the image's, its followers fetch from it, and a new leader epoch fences the old leader.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::*;
use gregor::metadata::records::{ConfigRecord, MetadataRecord, PartitionRecord, RESOURCE_TOPIC};

/// Three combined broker/controller processes forming a quorum (brokers on free ports, the
/// controllers on ports picked free beforehand: the voters must name them).
async fn cluster() -> Result<Vec<TestBroker>> {
    cluster_with(&[]).await
}

/// `cluster` with more settings on every node.
async fn cluster_with(extra: &[(&str, &str)]) -> Result<Vec<TestBroker>> {
    // Three distinct free ports: the listeners are held until all three are picked.
    let held = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let controller_ports: Vec<u16> = held
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<Result<_>>()?;
    drop(held);
    let voters = (1..=3)
        .zip(&controller_ports)
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let start = |id: i32| {
        let voters = voters.clone();
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
            controller_ports[id as usize - 1]
        );
        async move {
            let node = id.to_string();
            let mut props = vec![
                ("process.roles", "broker,controller"),
                ("node.id", &node),
                ("controller.quorum.voters", &voters),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", &listeners),
                ("broker.heartbeat.interval.ms", "200"),
                ("replica.fetch.wait.max.ms", "100"),
                ("replica.fetch.backoff.ms", "100"),
            ];
            props.extend_from_slice(extra);
            TestBroker::start_with_properties(&props).await
        }
    };
    // All three run to their end (two of them form the quorum without the third), so that a
    // failed start is reported rather than dropping the others' runtimes half-way.
    let (a, b, c) = tokio::join!(start(1), start(2), start(3));
    Ok(vec![
        a.context("node 1")?,
        b.context("node 2")?,
        c.context("node 3")?,
    ])
}

/// A topic of one partition on replicas 1, 2, 3 (node 1 leading), with `configs`.
async fn create_replicated(
    node: &TestBroker,
    topic: &str,
    configs: &[(&str, &str)],
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: topic.into(),
        topic_id: id,
    }];
    records.extend(configs.iter().map(|(k, v)| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: topic.into(),
            name: k.to_string(),
            value: Some(v.to_string()),
        })
    }));
    records.push(MetadataRecord::Partition(PartitionRecord::new_in_sync(
        id,
        0,
        vec![1, 2, 3],
    )));
    commit(node, records).await?;
    Ok(id)
}

/// The ISR of partition 0 of `topic` as its leader `node` has it (committed), in both the
/// image and the partition's state, sorted; empty where they differ.
fn isr(node: &TestBroker, topic: &str) -> Vec<i32> {
    let image = node.broker().catalog.image();
    let reg = image
        .topics
        .get_by_name(topic)
        .and_then(|t| t.partitions.get(&0).cloned());
    let state = partition(node, topic).ok().and_then(|p| p.leader_isr());
    match (reg, state) {
        (Some(reg), Some((_, mut isr))) => {
            let mut committed = reg.isr;
            committed.sort();
            isr.sort();
            if committed == isr {
                isr
            } else {
                vec![]
            }
        }
        _ => vec![],
    }
}

/// One three-process cluster at a time: each is nine runtimes' worth of threads and a quorum
/// whose elections should not starve.
/// (An async lock: the guard is held across the test's awaits.)
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_cluster() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().await
}

/// Commits `records` through `broker`'s catalog (forwarded to the quorum's leader).
async fn commit(broker: &TestBroker, records: Vec<MetadataRecord>) -> Result<()> {
    let b = broker.broker();
    tokio::task::spawn_blocking(move || b.catalog.change_image(|_| (records.clone(), ())))
        .await??;
    Ok(())
}

/// Waits (polling, up to 30 s) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn partition(b: &TestBroker, topic: &str) -> Result<Arc<gregor::log::partition::Partition>> {
    let t = b.broker().catalog.get(topic).context("no topic")?;
    Ok(Arc::clone(t.partition(0).context("no partition")?))
}

/// (log end offset, high watermark, leader epoch cache's latest epoch) of partition 0.
fn offsets(b: &TestBroker, topic: &str) -> (i64, i64, Option<i32>) {
    partition(b, topic).map_or((-1, -1, None), |p| {
        p.with_log(|l| {
            let latest = l.leader_epochs().latest_epoch();
            (l.log_end_offset(), l.high_watermark(), latest)
        })
    })
}

fn log_bytes(b: &TestBroker, topic: &str) -> Result<Vec<u8>> {
    let p = partition(b, topic)?;
    let plan = p.with_log(|l| {
        l.fetch_candidates(0, gregor::log::FetchIsolation::LogEnd)
            .and_then(|c| Ok(c.locate()?))
    })?;
    Ok(plan.read(usize::MAX, true)?.to_vec())
}

/// The image's leader makes the partition a replicated leader and the other replicas its
/// followers; the followers fetch its batches byte for byte and take its high watermark; a
/// new leader epoch moves leadership: the old leader answers NOT_LEADER_OR_FOLLOWER (and
/// FENCED_LEADER_EPOCH to a fetch naming the old epoch) and follows the new one, whose appends
/// carry the new epoch, after cutting off what it wrote that the new leader never had (KIP-279).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_replicate_the_leader_and_a_new_epoch_moves_leadership_and_truncates(
) -> Result<()> {
    let _one = one_cluster().await;
    let nodes = cluster().await?;
    let topic = "replicated";
    let id = Uuid::new_v4();
    commit(
        &nodes[0],
        vec![
            MetadataRecord::Topic {
                name: topic.into(),
                topic_id: id,
            },
            MetadataRecord::Partition(PartitionRecord::new_in_sync(id, 0, vec![1, 2, 3])),
        ],
    )
    .await?;
    for n in &nodes {
        until("every node has the partition", || {
            partition(n, topic).is_ok()
        })
        .await?;
    }
    until("node 1 leads", || {
        partition(&nodes[0], topic).is_ok_and(|p| p.is_replicated_leader())
    })
    .await?;
    for n in &nodes[1..] {
        ensure!(!partition(n, topic)?.is_replicated_leader());
    }

    let mut leader = nodes[0].client().await?;
    for i in 0..3 {
        let batch = values_batch(&[&format!("r{i}")]);
        ensure!(produce_ok(&mut leader, topic, 0, batch).await? == i);
    }
    for n in &nodes {
        until("every replica has the three records, committed", || {
            offsets(n, topic) == (3, 3, Some(0))
        })
        .await?;
    }
    let stored = log_bytes(&nodes[0], topic)?;
    for n in &nodes[1..] {
        ensure!(log_bytes(n, topic)? == stored, "a follower's log differs");
    }
    let read = fetch_all(&mut leader, topic, 0).await?;
    ensure!(read.len() == 3, "{read:?}");
    // A follower does not serve consumers.
    let mut follower = nodes[1].client().await?;
    let p = fetch_one(&mut follower, topic, 0, 0, 1 << 20).await?;
    ensure!(p.error_code == NOT_LEADER_OR_FOLLOWER, "{p:?}");

    // Node 2 leads in epoch 1.
    let mut moved = PartitionRecord::new_in_sync(id, 0, vec![1, 2, 3]);
    moved.leader = 2;
    moved.leader_epoch = 1;
    moved.partition_epoch = 1;
    commit(&nodes[0], vec![MetadataRecord::Partition(moved)]).await?;
    until("node 2 leads", || {
        partition(&nodes[1], topic).is_ok_and(|p| p.is_replicated_leader())
    })
    .await?;
    until("node 1 follows", || {
        partition(&nodes[0], topic).is_ok_and(|p| !p.is_replicated_leader())
    })
    .await?;
    let p = produce(&mut leader, topic, 0, values_batch(&["stale"])).await?;
    ensure!(p.error_code == NOT_LEADER_OR_FOLLOWER, "{p:?}");
    let mut old_epoch = fetch_partition(0, 0, 1 << 20);
    old_epoch.current_leader_epoch = 0;
    let req = fetch_request(vec![fetch_topic(topic, vec![old_epoch])], 0, 0);
    let resp = leader.request(FETCH_V, req).await?;
    let code = resp.responses[0].partitions[0].error_code;
    ensure!(code == FENCED_LEADER_EPOCH, "{resp:?}");

    // The old leader had written two batches in epoch 0 that no follower fetched (written
    // here straight into its log): the new leader's answer names where epoch 0 ended for it
    // (DivergingEpoch), and node 1 cuts them off before taking the new leader's records.
    let old = partition(&nodes[0], topic)?;
    for v in ["lost-1", "lost-2"] {
        old.append(&values_batch(&[v]), 9, now_ms())?;
    }
    ensure!(offsets(&nodes[0], topic).0 == 5);
    let mut new_leader = nodes[1].client().await?;
    ensure!(produce_ok(&mut new_leader, topic, 0, values_batch(&["r3"])).await? == 3);
    for n in &nodes {
        until(
            "every replica has the new leader's record, in epoch 1",
            || offsets(n, topic) == (4, 4, Some(1)),
        )
        .await?;
    }
    let stored = log_bytes(&nodes[1], topic)?;
    for n in [&nodes[0], &nodes[2]] {
        ensure!(log_bytes(n, topic)? == stored, "a follower's log differs");
    }
    Ok(())
}

/// acks=all is answered once the ISR has the batch; a follower that stops fetching leaves the
/// ISR after replica.lag.time.max.ms (the leader's AlterPartition), and below
/// min.insync.replicas acks=all gets NOT_ENOUGH_REPLICAS; restarted, the follower catches up
/// and joins the ISR again. Each replica checkpoints its high watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waits_for_the_isr_which_shrinks_and_expands() -> Result<()> {
    let _one = one_cluster().await;
    let mut nodes = cluster_with(&[
        ("replica.lag.time.max.ms", "1000"),
        ("min.insync.replicas", "2"),
    ])
    .await?;
    let (two, three) = ("two", "three");
    create_replicated(&nodes[0], two, &[]).await?;
    create_replicated(&nodes[0], three, &[("min.insync.replicas", "3")]).await?;
    for t in [two, three] {
        until("node 1 leads", || {
            partition(&nodes[0], t).is_ok_and(|p| p.is_replicated_leader())
        })
        .await?;
    }
    let mut leader = nodes[0].client().await?;
    for i in 0..3 {
        for t in [two, three] {
            ensure!(produce_ok(&mut leader, t, 0, values_batch(&["v"])).await? == i);
            // Answered: the high watermark is past it, so a follower has it.
            let (_, hw, _) = offsets(&nodes[0], t);
            ensure!(hw == i + 1, "acks=all answered before the ISR had it: {hw}");
            ensure!(
                nodes[1..].iter().any(|n| offsets(n, t).0 > i),
                "no follower has the record"
            );
        }
    }
    // Each replica checkpoints its high watermark.
    for n in &nodes {
        let file = n.data_dir().join("replication-offset-checkpoint");
        until("the high watermarks are checkpointed", || {
            std::fs::read_to_string(&file)
                .is_ok_and(|t| t.contains("two 0 3\n") && t.contains("three 0 3\n"))
        })
        .await?;
    }

    nodes[2].crash().await;
    until("node 3 leaves the ISRs", || {
        isr(&nodes[0], two) == [1, 2] && isr(&nodes[0], three) == [1, 2]
    })
    .await?;
    ensure!(produce_ok(&mut leader, two, 0, values_batch(&["w"])).await? == 3);
    let p = produce(&mut leader, three, 0, values_batch(&["w"])).await?;
    ensure!(p.error_code == NOT_ENOUGH_REPLICAS, "{p:?}");
    ensure!(
        offsets(&nodes[0], three).0 == 3,
        "refused before the append"
    );

    nodes[2].start_again().await?;
    until("node 3 joins the ISRs again", || {
        isr(&nodes[0], two) == [1, 2, 3] && isr(&nodes[0], three) == [1, 2, 3]
    })
    .await?;
    ensure!(offsets(&nodes[2], two).0 == 4, "node 3 caught up");
    ensure!(produce_ok(&mut leader, three, 0, values_batch(&["x"])).await? == 3);
    Ok(())
}

/// CreateTopics places a replicated topic (replication factor above 1) on every process's
/// broker, each partition in sync on all of them and led by one; more replicas than brokers is
/// INVALID_REPLICATION_FACTOR; a topic of one replica stays on the broker that created it.
/// acks=all to the leader is answered once its ISR has the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_places_replicated_topics_across_the_processes() -> Result<()> {
    let _one = one_cluster().await;
    let nodes = cluster().await?;
    let mut c = nodes[1].client().await?;
    let topics = vec![
        creatable("spread", 3).with_replication_factor(3),
        creatable("too-many", 1).with_replication_factor(4),
        creatable("single", 2),
    ];
    let created = create_topics(&mut c, CREATE_TOPICS_V, topics, false).await?;
    let codes: Vec<i16> = created.iter().map(|t| t.error_code).collect();
    ensure!(
        codes == [NONE, INVALID_REPLICATION_FACTOR, NONE],
        "{created:?}"
    );
    let image = nodes[1].broker().catalog.image();
    let spread = image.topics.get_by_name("spread").context("spread")?;
    let mut leaders = Vec::new();
    for reg in spread.partitions.values() {
        let mut replicas = reg.replicas.clone();
        replicas.sort();
        ensure!(replicas == [1, 2, 3] && reg.isr.len() == 3, "{reg:?}");
        leaders.push(reg.leader);
    }
    let single = image.topics.get_by_name("single").context("single")?;
    ensure!(single.partitions.values().all(|r| r.replicas == [2]));

    // Every partition's leader answers acks=all once its ISR (all three) has the batch.
    for (p, leader) in leaders.iter().enumerate() {
        let node = &nodes[*leader as usize - 1];
        until("the leader leads", || {
            partition_n(node, "spread", p as i32).is_ok_and(|x| x.is_replicated_leader())
        })
        .await?;
        let mut c = node.client().await?;
        ensure!(produce_ok(&mut c, "spread", p as i32, values_batch(&["v"])).await? == 0);
        let have = nodes
            .iter()
            .filter(|n| {
                partition_n(n, "spread", p as i32)
                    .is_ok_and(|x| x.with_log(|l| l.log_end_offset()) == 1)
            })
            .count();
        ensure!(have == 3, "acks=all answered before the ISR had the batch");
    }
    Ok(())
}

fn partition_n(
    b: &TestBroker,
    topic: &str,
    p: i32,
) -> Result<Arc<gregor::log::partition::Partition>> {
    let t = b.broker().catalog.get(topic).context("no topic")?;
    Ok(Arc::clone(t.partition(p).context("no partition")?))
}

/// Issue 15: a metadata write through any process is decided on the latest committed image.
/// CreateTopics of one name through the three processes at once: one NONE, the others
/// TOPIC_ALREADY_EXISTS, and every process's Metadata names the same topic id; InitProducerId
/// through the three at once (each reserving its first block of producer ids from the metadata
/// log) never hands out one producer id twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_different_processes_are_decided_once() -> Result<()> {
    let _one = one_cluster().await;
    let nodes = cluster().await?;
    let mut clients = Vec::new();
    for n in &nodes {
        clients.push(n.client().await?);
    }
    for name in ["race-a", "race-b", "race-c"] {
        let [a, b, c] = &mut clients[..] else {
            unreachable!()
        };
        let create = |c| async move {
            let topic = vec![creatable(name, 2).with_replication_factor(3)];
            let r = create_topics(c, CREATE_TOPICS_V, topic, false).await?;
            ensure!(r.len() == 1, "{r:?}");
            Ok(r[0].error_code)
        };
        let (x, y, z) = tokio::join!(create(a), create(b), create(c));
        let mut codes = vec![x?, y?, z?];
        codes.sort();
        ensure!(
            codes == [NONE, TOPIC_ALREADY_EXISTS, TOPIC_ALREADY_EXISTS],
            "{name}: {codes:?}"
        );
        let mut ids = Vec::new();
        for c in clients.iter_mut() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let id = loop {
                let m = metadata(c, METADATA_V, metadata_topics(&[name]), false).await?;
                let t = m.topics.first().context("no topic in metadata")?;
                if t.error_code == NONE {
                    break t.topic_id;
                }
                ensure!(tokio::time::Instant::now() < deadline, "{name}: {t:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            ids.push(id);
        }
        ensure!(ids.iter().all(|&i| i == ids[0]), "{name}: {ids:?}");
    }
    let mut pids = Vec::new();
    for _ in 0..3 {
        let [a, b, c] = &mut clients[..] else {
            unreachable!()
        };
        let (x, y, z) = tokio::join!(
            init_producer_id(a),
            init_producer_id(b),
            init_producer_id(c)
        );
        pids.extend([x?.0, y?.0, z?.0]);
    }
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    ensure!(
        distinct.len() == pids.len(),
        "producer ids handed out twice: {pids:?}"
    );
    Ok(())
}
