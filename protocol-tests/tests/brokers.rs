//! Several brokers in one process (`--brokers N`): each registered in the metadata image and
//! listening on its own port, topics' replicas placed over them as Kafka's StripedReplicaPlacer
//! places them, and clients answered as a Kafka cluster answers them.

mod common;

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use common::*;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::*;

async fn three_brokers() -> Result<TestBroker> {
    TestBroker::start_with(|c| {
        c.brokers = 3;
        c.default_replication_factor = 3;
    })
    .await
}

fn assigned(topic: &str, lists: &[&[i32]]) -> CreatableTopic {
    let assignments = lists
        .iter()
        .enumerate()
        .map(|(i, l)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(i as i32)
                .with_broker_ids(l.iter().copied().map(BrokerId).collect())
        })
        .collect();
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(assignments)
}

/// Replicas, ISR and leader per partition, as Metadata shows them.
async fn layout(c: &mut Client, topic: &str) -> Result<Vec<(Vec<i32>, Vec<i32>, i32)>> {
    let m = metadata(c, METADATA_V, metadata_topics(&[topic]), false).await?;
    let t = &m.topics[0];
    ensure!(t.error_code == NONE, "{t:?}");
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(t.partitions
        .iter()
        .map(|p| (ids(&p.replica_nodes), ids(&p.isr_nodes), p.leader_id.0))
        .collect())
}

/// Every broker advertises all three (KRaftMetadataCache's alive brokers), each with the port it
/// listens on, and names the same controller; DescribeCluster agrees; each broker describes its
/// own broker configs (Kafka's "Unexpected broker id" otherwise).
#[tokio::test]
async fn each_broker_listens_on_its_own_port_and_all_are_advertised() -> Result<()> {
    let b = three_brokers().await?;
    ensure!(b.addrs.len() == 3, "{:?}", b.addrs);
    let want: Vec<(i32, i32)> = (1..=3)
        .zip(&b.addrs)
        .map(|(id, a)| (id, i32::from(a.port())))
        .collect();
    for node in 1..=3 {
        let mut c = b.client_of(node).await?;
        let m = metadata(&mut c, METADATA_V, Some(vec![]), false).await?;
        let got: Vec<(i32, i32)> = m.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
        ensure!(got == want, "broker {node}: {m:?}");
        ensure!(m.controller_id.0 == 1, "{m:?}");
        let d = c
            .request(1, DescribeClusterRequest::default().with_endpoint_type(1))
            .await?;
        let got: Vec<(i32, i32)> = d.brokers.iter().map(|b| (b.broker_id.0, b.port)).collect();
        ensure!(got == want && d.controller_id.0 == 1, "{d:?}");
        for (asked, code) in [(node, NONE), (node % 3 + 1, INVALID_REQUEST)] {
            let r = c
                .request(
                    4,
                    DescribeConfigsRequest::default().with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s(&asked.to_string())),
                    ]),
                )
                .await?;
            ensure!(
                r.results[0].error_code == code,
                "broker {node} asked for {asked}: {r:?}"
            );
        }
    }
    Ok(())
}

/// StripedReplicaPlacer without racks: with 6 partitions of 3 replicas on 3 brokers every broker
/// leads two, every replica list names each broker once, and all replicas are in sync (one copy
/// of the data serves them). default.replication.factor applies to -1; a factor above the
/// registered brokers is INVALID_REPLICATION_FACTOR (ReplicationControlManager.createTopic).
#[tokio::test]
async fn replicas_and_leaders_are_spread_over_the_brokers() -> Result<()> {
    let b = three_brokers().await?;
    let mut c = b.client_of(2).await?;
    let t = creatable("spread", 6).with_replication_factor(-1);
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    ensure!(
        r[0].error_code == NONE && r[0].replication_factor == 3,
        "{r:?}"
    );
    let mut leaders = BTreeMap::new();
    for (replicas, isr, leader) in layout(&mut c, "spread").await? {
        let mut sorted = replicas.clone();
        sorted.sort();
        ensure!(sorted == vec![1, 2, 3], "{replicas:?}");
        ensure!(
            isr == replicas && leader == replicas[0],
            "{replicas:?} {isr:?} {leader}"
        );
        *leaders.entry(leader).or_insert(0) += 1;
    }
    ensure!(
        leaders == BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "{leaders:?}"
    );
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![creatable("rf1", 3)], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    ensure!(
        layout(&mut c, "rf1").await?.iter().all(|p| p.0.len() == 1),
        "rf 1"
    );
    let too_many = creatable("rf4", 1).with_replication_factor(4);
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![too_many], false).await?;
    ensure!(r[0].error_code == INVALID_REPLICATION_FACTOR, "{r:?}");
    Ok(())
}

/// Replica assignments given by the client are kept as given (the first replica leads) and
/// checked as ReplicationControlManager.validateManualPartitionAssignment checks them, in
/// CreateTopics and CreatePartitions (whose new partitions must have the topic's factor).
#[tokio::test]
async fn explicit_assignments_are_honoured_and_validated() -> Result<()> {
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    let r = create_topics(
        &mut c,
        CREATE_TOPICS_V,
        vec![
            assigned("manual", &[&[3, 1], &[2, 3]]),
            assigned("unknown-broker", &[&[1, 4]]),
            assigned("twice", &[&[2, 2]]),
            assigned("uneven", &[&[1, 2], &[3]]),
        ],
        false,
    )
    .await?;
    let codes: Vec<i16> = r.iter().map(|t| t.error_code).collect();
    let bad = INVALID_REPLICA_ASSIGNMENT;
    ensure!(codes == vec![NONE, bad, bad, bad], "{r:?}");
    let want = vec![(vec![3, 1], vec![3, 1], 3), (vec![2, 3], vec![2, 3], 2)];
    ensure!(layout(&mut c, "manual").await? == want, "manual");
    let grow = |lists: &[&[i32]]| {
        let assignments = lists
            .iter()
            .map(|l| {
                CreatePartitionsAssignment::default()
                    .with_broker_ids(l.iter().copied().map(BrokerId).collect())
            })
            .collect();
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("manual"))
            .with_count(2 + lists.len() as i32)
            .with_assignments(Some(assignments))])
    };
    for bad_lists in [&[&[1, 2, 3][..]][..], &[&[1, 5]], &[&[1, 1]]] {
        let r = c.request(3, grow(bad_lists)).await?;
        ensure!(r.results[0].error_code == bad, "{bad_lists:?}: {r:?}");
    }
    let r = c.request(3, grow(&[&[1, 2]])).await?;
    ensure!(r.results[0].error_code == NONE, "{r:?}");
    let grown = layout(&mut c, "manual").await?;
    ensure!(
        grown.len() == 3 && grown[2] == (vec![1, 2], vec![1, 2], 1),
        "{grown:?}"
    );
    Ok(())
}

/// The leader of a partition and a broker that does not lead it.
async fn leader_and_follower(c: &mut Client, topic: &str, p: usize) -> Result<(i32, i32)> {
    let leader = layout(c, topic).await?[p].2;
    Ok((leader, leader % 3 + 1))
}

/// ReplicaManager: a broker that does not lead a partition answers NOT_LEADER_OR_FOLLOWER to
/// Produce, Fetch, ListOffsets, DeleteRecords and OffsetForLeaderEpoch; Produce v10+ and Fetch
/// v16+ name the current leader, its epoch and its endpoint (KIP-951). The leader appends.
#[tokio::test]
async fn partition_requests_to_a_follower_are_not_leader_or_follower() -> Result<()> {
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "lead", 3).await?;
    let t = creatable("lead3", 3).with_replication_factor(3);
    create_topics(&mut c, CREATE_TOPICS_V, vec![t], false).await?;
    for topic in ["lead", "lead3"] {
        let (leader, other) = leader_and_follower(&mut c, topic, 0).await?;
        let leader_port = i32::from(b.addrs[leader as usize - 1].port());
        let mut follower = b.client_of(other).await?;
        for v in [9, 10, 12] {
            let r = c_produce(&mut follower, v, topic).await?;
            let p = &r.responses[0].partition_responses[0];
            ensure!(
                p.error_code == NOT_LEADER_OR_FOLLOWER,
                "{topic} v{v}: {r:?}"
            );
            let told = (p.current_leader.leader_id.0, p.current_leader.leader_epoch);
            let endpoints: Vec<_> = r
                .node_endpoints
                .iter()
                .map(|n| (n.node_id.0, n.port))
                .collect();
            if v >= 10 {
                ensure!(told == (leader, 0), "{topic} v{v}: {r:?}");
                ensure!(
                    endpoints == vec![(leader, leader_port)],
                    "{topic} v{v}: {r:?}"
                );
            } else {
                ensure!(
                    told == (-1, -1) && endpoints.is_empty(),
                    "{topic} v{v}: {r:?}"
                );
            }
        }
        let mut at_leader = b.client_of(leader).await?;
        ensure!(
            produce_ok(&mut at_leader, topic, 0, values_batch(&["x"])).await? == 0,
            "{topic}"
        );

        let fetch = fetch_request(
            vec![fetch_topic(topic, vec![fetch_partition(0, 0, 1 << 20)])],
            0,
            0,
        );
        let r = follower.request(12, fetch.clone()).await?;
        ensure!(
            r.responses[0].partitions[0].error_code == NOT_LEADER_OR_FOLLOWER,
            "{r:?}"
        );
        let pd = &at_leader.request(12, fetch).await?.responses[0].partitions[0];
        ensure!(pd.error_code == NONE && pd.high_watermark == 1, "{pd:?}");
        let fetch16 = fetch_request(
            vec![fetch_topic_by_id(
                topic_id(&mut c, topic).await?,
                vec![fetch_partition(0, 0, 1 << 20)],
            )],
            0,
            0,
        );
        let r = follower.request(16, fetch16).await?;
        let pd = &r.responses[0].partitions[0];
        ensure!(pd.error_code == NOT_LEADER_OR_FOLLOWER, "{r:?}");
        ensure!(pd.current_leader.leader_id.0 == leader, "{r:?}");
        ensure!(
            r.node_endpoints.len() == 1 && r.node_endpoints[0].port == leader_port,
            "{r:?}"
        );

        let lo = follower
            .request(LIST_OFFSETS_V, list_offsets_request(topic, 0, -1))
            .await?;
        ensure!(
            lo.topics[0].partitions[0].error_code == NOT_LEADER_OR_FOLLOWER,
            "{lo:?}"
        );
        let lo = at_leader
            .request(LIST_OFFSETS_V, list_offsets_request(topic, 0, -1))
            .await?;
        ensure!(lo.topics[0].partitions[0].offset == 1, "{lo:?}");

        let dr = DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0),
                ]),
        ]);
        let r = follower.request(2, dr).await?;
        ensure!(
            r.topics[0].partitions[0].error_code == NOT_LEADER_OR_FOLLOWER,
            "{r:?}"
        );

        let ofle = offset_for_leader_epoch_request(topic, 0, -1, 0);
        let r = follower.request(4, ofle.clone()).await?;
        ensure!(
            r.topics[0].partitions[0].error_code == NOT_LEADER_OR_FOLLOWER,
            "{r:?}"
        );
        let r = at_leader.request(4, ofle).await?;
        ensure!(r.topics[0].partitions[0].end_offset == 1, "{r:?}");
    }
    Ok(())
}

async fn c_produce(c: &mut Client, v: i16, topic: &str) -> Result<ProduceResponse> {
    let req = produce_request(
        -1,
        vec![topic_data(topic, vec![(0, values_batch(&["no"]))])],
    );
    c.request(v, req).await
}

/// KafkaApis.getCoordinator: the coordinator of a group or transactional id is the leader of
/// its `__consumer_offsets` / `__transaction_state` partition, and every broker says so.
#[tokio::test]
async fn the_coordinator_is_the_leader_of_the_coordinator_partition() -> Result<()> {
    let b = three_brokers().await?;
    for (key_type, key, topic) in [
        (0, "g", "__consumer_offsets"),
        (1, "tx", "__transaction_state"),
    ] {
        let mut answers = Vec::new();
        for node in 1..=3 {
            let mut c = b.client_of(node).await?;
            let req = FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![s(key)]);
            let r = c.request(4, req).await?;
            let k = &r.coordinators[0];
            ensure!(k.error_code == NONE, "{r:?}");
            answers.push((k.node_id.0, k.port));
        }
        let mut c = b.client().await?;
        let m = metadata(&mut c, METADATA_V, metadata_topics(&[topic]), false).await?;
        let leaders: Vec<i32> = m.topics[0]
            .partitions
            .iter()
            .map(|p| p.leader_id.0)
            .collect();
        ensure!(m.topics[0].partitions[0].replica_nodes.len() == 3, "{m:?}");
        let (node, port) = answers[0];
        ensure!(answers.iter().all(|a| *a == (node, port)), "{answers:?}");
        ensure!(
            i32::from(b.addrs[node as usize - 1].port()) == port,
            "{answers:?}"
        );
        ensure!(leaders.contains(&node), "{leaders:?}");
    }
    Ok(())
}

/// Group requests sent to a broker that is not the group's coordinator answer NOT_COORDINATOR
/// (the client then asks FindCoordinator again); the coordinator serves them.
#[tokio::test]
async fn group_requests_to_another_broker_are_not_coordinator() -> Result<()> {
    const UNKNOWN_MEMBER_ID: i16 = 25;
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("grp")]);
    let coordinator = c.request(4, req).await?.coordinators[0].node_id.0;
    let other = coordinator % 3 + 1;
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(s("grp")))
        .with_member_id(s("m"))
        .with_generation_id(1);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("grp")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_member_id(s(""));
    for (node, want) in [(other, NOT_COORDINATOR), (coordinator, UNKNOWN_MEMBER_ID)] {
        let mut c = b.client_of(node).await?;
        let r = c.request(4, heartbeat.clone()).await?;
        ensure!(r.error_code == want, "broker {node}: {r:?}");
    }
    let mut c = b.client_of(other).await?;
    let r = c.request(9, join).await?;
    ensure!(
        r.error_code == NOT_COORDINATOR && r.member_id.is_empty(),
        "{r:?}"
    );
    // v5 names its protocol (without it Kafka answers INCONSISTENT_GROUP_PROTOCOL first).
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("grp")))
        .with_member_id(s("m"))
        .with_generation_id(1)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")));
    let r = c.request(5, sync).await?;
    ensure!(r.error_code == NOT_COORDINATOR, "{r:?}");
    Ok(())
}

/// Transaction requests sent to a broker that is not the transactional id's coordinator answer
/// NOT_COORDINATOR (TransactionStateManager: the partition is not owned there), so the producer
/// finds its coordinator again; the coordinator serves them. TxnOffsetCommit belongs to the
/// group's coordinator; ListTransactions lists only what the broker asked coordinates.
#[tokio::test]
async fn transaction_requests_to_another_broker_are_not_coordinator() -> Result<()> {
    const INVALID_TXN_STATE: i16 = 48;
    let b = three_brokers().await?;
    let mut c = b.client().await?;
    let find = |key_type: i8, key: &str| {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s(key)])
    };
    let coordinator = c.request(4, find(1, "tx")).await?.coordinators[0].node_id.0;
    let other = coordinator % 3 + 1;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("tx"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut off = b.client_of(other).await?;
    let r = off.request(4, init.clone()).await?;
    ensure!(r.error_code == NOT_COORDINATOR, "{r:?}");
    let mut on = b.client_of(coordinator).await?;
    let r = on.request(4, init).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let (pid, epoch) = (r.producer_id, r.producer_epoch);

    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_committed(true);
    let r = off.request(4, end.clone()).await?;
    ensure!(r.error_code == NOT_COORDINATOR, "{r:?}");
    // The coordinator answers: there is nothing to commit.
    let r = on.request(4, end).await?;
    ensure!(r.error_code == INVALID_TXN_STATE, "{r:?}");

    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s("grp")));
    let r = off.request(4, add_offsets.clone()).await?;
    ensure!(r.error_code == NOT_COORDINATOR, "{r:?}");
    let r = on.request(4, add_offsets).await?;
    ensure!(r.error_code == NONE, "{r:?}");

    create_topic(&mut c, "t", 1).await?;
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![0]),
        ]);
    let code = |r: &AddPartitionsToTxnResponse| {
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    };
    let r = off.request(3, add.clone()).await?;
    ensure!(code(&r) == NOT_COORDINATOR, "{r:?}");
    let r = on.request(3, add).await?;
    ensure!(code(&r) == NONE, "{r:?}");

    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("tx"))]);
    let r = off.request(0, describe.clone()).await?;
    ensure!(
        r.transaction_states[0].error_code == NOT_COORDINATOR,
        "{r:?}"
    );
    let r = on.request(0, describe).await?;
    ensure!(r.transaction_states[0].error_code == NONE, "{r:?}");

    let list = ListTransactionsRequest::default();
    let r = off.request(0, list.clone()).await?;
    ensure!(r.transaction_states.is_empty(), "{r:?}");
    let r = on.request(0, list).await?;
    ensure!(r.transaction_states.len() == 1, "{r:?}");

    // TxnOffsetCommit goes to the group's coordinator.
    let group_coordinator = c.request(4, find(0, "grp")).await?.coordinators[0]
        .node_id
        .0;
    let mut group_off = b.client_of(group_coordinator % 3 + 1).await?;
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_group_id(GroupId(s("grp")))
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let r = group_off.request(3, commit).await?;
    ensure!(
        r.topics[0].partitions[0].error_code == NOT_COORDINATOR,
        "{r:?}"
    );
    Ok(())
}
