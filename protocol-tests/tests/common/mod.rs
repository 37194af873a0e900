//! Request builders and one-line operations shared by the test files.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
pub use protocol_tests::client::*;

pub mod certs;
// Each test binary compiles this module; those without TLS use none of it.
#[allow(unused_imports)]
pub use certs::*;
pub mod groups;
#[allow(unused_imports)]
pub use groups::*;
pub mod txns;
#[allow(unused_imports)]
pub use txns::*;
pub mod reassignments;
pub use uuid::Uuid;

// Kafka error codes used by the tests (org.apache.kafka.common.protocol.Errors).
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_COORDINATOR: i16 = 16;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
pub const ELECTION_NOT_NEEDED: i16 = 84;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// Versions used where a test is not about versions: the newest that still name topics.
pub const PRODUCE_V: i16 = 12;
pub const FETCH_V: i16 = 12;
pub const METADATA_V: i16 = 12;
pub const LIST_OFFSETS_V: i16 = 9;
pub const CREATE_TOPICS_V: i16 = 7;

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

// ----- CreateTopics -----

pub fn creatable(topic: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

pub fn with_config(t: CreatableTopic, key: &str, value: &str) -> CreatableTopic {
    let mut t = t;
    t.configs.push(
        CreatableTopicConfig::default()
            .with_name(s(key))
            .with_value(Some(s(value))),
    );
    t
}

pub async fn create_topics(
    c: &mut Client,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Result<Vec<CreatableTopicResult>> {
    let req = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    Ok(c.request(version, req).await?.topics)
}

pub async fn create_topic(c: &mut Client, topic: &str, partitions: i32) -> Result<()> {
    let r = create_topics(
        c,
        CREATE_TOPICS_V,
        vec![creatable(topic, partitions)],
        false,
    )
    .await?;
    ensure!(
        r.len() == 1 && r[0].error_code == NONE,
        "create {topic}: {r:?}"
    );
    Ok(())
}

// ----- Produce -----

pub fn produce_request(acks: i16, topics: Vec<TopicProduceData>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(topics)
}

pub fn topic_data(topic: &str, parts: Vec<(i32, Bytes)>) -> TopicProduceData {
    TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(
            parts
                .into_iter()
                .map(|(i, b)| {
                    PartitionProduceData::default()
                        .with_index(i)
                        .with_records(Some(b))
                })
                .collect(),
        )
}

pub fn topic_data_by_id(id: Uuid, parts: Vec<(i32, Bytes)>) -> TopicProduceData {
    let mut t = topic_data("", parts);
    t.name = TopicName::default();
    t.topic_id = id;
    t
}

/// Produces one batch to one partition (acks=-1) and returns that partition's response.
pub async fn produce_at(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> Result<PartitionProduceResponse> {
    let resp = c
        .request(
            version,
            produce_request(-1, vec![topic_data(topic, vec![(partition, batch)])]),
        )
        .await?;
    ensure!(resp.responses.len() == 1, "responses: {resp:?}");
    let t = &resp.responses[0];
    ensure!(t.name.as_str() == topic, "topic name in response: {t:?}");
    ensure!(t.partition_responses.len() == 1, "partitions: {t:?}");
    let p = t.partition_responses[0].clone();
    ensure!(p.index == partition, "partition index in response: {p:?}");
    Ok(p)
}

pub async fn produce(
    c: &mut Client,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> Result<PartitionProduceResponse> {
    produce_at(c, PRODUCE_V, topic, partition, batch).await
}

/// Produces and asserts success; returns the base offset.
pub async fn produce_ok(c: &mut Client, topic: &str, partition: i32, batch: Bytes) -> Result<i64> {
    let p = produce(c, topic, partition, batch).await?;
    ensure!(
        p.error_code == NONE,
        "produce to {topic}-{partition} failed: {p:?}"
    );
    Ok(p.base_offset)
}

/// DeleteRecords (v2) of one partition below `offset`: (error, low watermark).
pub async fn delete_records(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(i16, i64)> {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset),
            ])]);
    let r = c.request(2, req).await?;
    let p = &r.topics[0].partitions[0];
    Ok((p.error_code, p.low_watermark))
}

// ----- Fetch -----

pub fn fetch_partition(partition: i32, offset: i64, max_bytes: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(max_bytes)
}

pub fn fetch_topic(topic: &str, partitions: Vec<FetchPartition>) -> FetchTopic {
    FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(partitions)
}

pub fn fetch_topic_by_id(id: Uuid, partitions: Vec<FetchPartition>) -> FetchTopic {
    FetchTopic::default()
        .with_topic_id(id)
        .with_partitions(partitions)
}

pub fn fetch_request(topics: Vec<FetchTopic>, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_isolation_level(0)
        .with_topics(topics)
}

/// An immediate fetch of one partition; returns that partition's data.
pub async fn fetch_one(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> Result<PartitionData> {
    let req = fetch_request(
        vec![fetch_topic(
            topic,
            vec![fetch_partition(partition, offset, partition_max_bytes)],
        )],
        0,
        0,
    );
    let resp = c.request(FETCH_V, req).await?;
    ensure!(resp.error_code == NONE, "fetch error: {resp:?}");
    ensure!(resp.responses.len() == 1, "topics: {resp:?}");
    ensure!(
        resp.responses[0].partitions.len() == 1,
        "partitions: {resp:?}"
    );
    Ok(resp.responses[0].partitions[0].clone())
}

/// Every record of a partition from `from` up to the high watermark.
pub async fn fetch_all(c: &mut Client, topic: &str, partition: i32) -> Result<Vec<Fetched>> {
    let mut out: Vec<Fetched> = Vec::new();
    let mut next = 0;
    for _ in 0..1000 {
        let p = fetch_one(c, topic, partition, next, 1024 * 1024).await?;
        ensure!(
            p.error_code == NONE,
            "fetch {topic}-{partition}@{next}: {p:?}"
        );
        let records = p.records.clone().unwrap_or_default();
        let recs = decode_records(&records)?;
        out.extend(recs.into_iter().filter(|r| r.offset >= next));
        if let Some(last) = out.last() {
            next = last.offset + 1;
        }
        if next >= p.high_watermark || records.is_empty() {
            return Ok(out);
        }
    }
    anyhow::bail!("fetch_all did not reach the high watermark")
}

// ----- Metadata -----

pub fn metadata_topics(names: &[&str]) -> Option<Vec<MetadataRequestTopic>> {
    Some(
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
            .collect(),
    )
}

pub async fn metadata(
    c: &mut Client,
    version: i16,
    topics: Option<Vec<MetadataRequestTopic>>,
    allow_auto_create: bool,
) -> Result<MetadataResponse> {
    let mut req = MetadataRequest::default().with_topics(topics);
    // The flag exists from v4; earlier versions always allow auto-creation.
    if version >= 4 {
        req.allow_auto_topic_creation = allow_auto_create;
    }
    c.request(version, req).await
}

pub async fn topic_id(c: &mut Client, topic: &str) -> Result<Uuid> {
    let m = metadata(c, METADATA_V, metadata_topics(&[topic]), false).await?;
    let t = m.topics.first().context("no topic in metadata")?;
    ensure!(t.error_code == NONE, "metadata for {topic}: {t:?}");
    Ok(t.topic_id)
}

// ----- OffsetForLeaderEpoch, ListOffsets -----

/// OffsetForLeaderEpoch of one partition, as a consumer asks it.
pub fn offset_for_leader_epoch_request(
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> OffsetForLeaderEpochRequest {
    let mut p = OffsetForLeaderPartition::default().with_partition(partition);
    (p.current_leader_epoch, p.leader_epoch) = (current_leader_epoch, leader_epoch);
    let t = OffsetForLeaderTopic::default().with_topic(name(topic));
    // A consumer's replica id (v3+).
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![t.with_partitions(vec![p])])
}

pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

pub async fn list_offset_at(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<ListOffsetsPartitionResponse> {
    let resp = c
        .request(version, list_offsets_request(topic, partition, timestamp))
        .await?;
    ensure!(resp.topics.len() == 1, "topics: {resp:?}");
    ensure!(resp.topics[0].partitions.len() == 1, "partitions: {resp:?}");
    Ok(resp.topics[0].partitions[0].clone())
}

pub async fn list_offset(
    c: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<ListOffsetsPartitionResponse> {
    list_offset_at(c, LIST_OFFSETS_V, topic, partition, timestamp).await
}

// ----- InitProducerId -----

pub async fn init_producer_id(c: &mut Client) -> Result<(i64, i16)> {
    init_producer(c, None).await
}

/// InitProducerId v4 for a transactional id (no KIP-360 fields): its producer id and epoch.
pub async fn init_transactional(c: &mut Client, id: &str) -> Result<(i64, i16)> {
    init_producer(c, Some(id)).await
}

async fn init_producer(c: &mut Client, id: Option<&str>) -> Result<(i64, i16)> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(id.map(|id| TransactionalId(s(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.request(4, req).await?;
    ensure!(r.error_code == NONE, "InitProducerId: {r:?}");
    Ok((r.producer_id.0, r.producer_epoch))
}

/// AddOffsetsToTxn at version `v`: the error code.
pub async fn add_offsets(
    c: &mut Client,
    v: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    group: &str,
) -> Result<i16> {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s(group)));
    Ok(c.request(v, req)
        .await
        .with_context(|| format!("AddOffsetsToTxn v{v}"))?
        .error_code)
}

// ----- misc -----

/// A broker with one topic `t` of `partitions` partitions and a connected client.
pub async fn broker_with_topic(topic: &str, partitions: i32) -> Result<(TestBroker, Client)> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, topic, partitions).await?;
    Ok((b, c))
}

/// Asserts that a broker still answers on a fresh connection.
pub async fn assert_serves(b: &TestBroker) -> Result<()> {
    let mut c = b.client().await?;
    let r = c
        .request(
            3,
            ApiVersionsRequest::default()
                .with_client_software_name(s("gregor-tests"))
                .with_client_software_version(s("1.0")),
        )
        .await
        .context("a new connection is not served")?;
    ensure!(r.error_code == NONE, "ApiVersions: {r:?}");
    Ok(())
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A topic's effective config value, through DescribeConfigs.
pub async fn topic_config(c: &mut Client, topic: &str, key: &str) -> Result<Option<String>> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s(key)]))]);
    let r = c.request(4, req).await?;
    let res = &r.results[0];
    ensure!(res.error_code == NONE, "describe {topic}: {res:?}");
    Ok(res
        .configs
        .first()
        .and_then(|e| e.value.as_ref().map(|v| v.to_string())))
}

// ----- Raw frames -----

/// Request header v1 (key, version, correlation id 77, null client id).
pub fn header_v1(key: i16, version: i16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&77i32.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b
}

/// Request header v2: v1 plus an empty tagged-field section.
pub fn header_v2(key: i16, version: i16) -> Vec<u8> {
    let mut b = header_v1(key, version);
    b.push(0);
    b
}

/// An unsigned varint as flexible versions write lengths and counts.
pub fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// ApiVersions v3, as a client starts.
pub async fn api_versions(c: &mut Client) -> Result<ApiVersionsResponse> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(s("gregor-tests"))
        .with_client_software_version(s("1"));
    let r = c.request(3, req).await?;
    ensure!(r.error_code == NONE, "ApiVersions error {}", r.error_code);
    Ok(r)
}

/// The versions of `key` the broker advertises, for tests that walk each of them.
pub async fn advertised_versions(
    c: &mut Client,
    key: ApiKey,
) -> Result<std::ops::RangeInclusive<i16>> {
    let r = api_versions(c).await?;
    let k = (r.api_keys.iter())
        .find(|k| k.api_key == key as i16)
        .with_context(|| format!("{key:?} is not advertised"))?;
    Ok(k.min_version..=k.max_version)
}

pub async fn handshake(
    c: &mut Client,
    version: i16,
    mechanism: &str,
) -> Result<SaslHandshakeResponse> {
    c.request(
        version,
        SaslHandshakeRequest::default().with_mechanism(s(mechanism)),
    )
    .await
}

pub async fn authenticate(
    c: &mut Client,
    version: i16,
    token: &[u8],
) -> Result<SaslAuthenticateResponse> {
    c.request(
        version,
        SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
    .await
}

pub fn mechanisms(r: &SaslHandshakeResponse) -> Vec<String> {
    r.mechanisms.iter().map(|m| m.to_string()).collect()
}

/// Authenticates with SASL PLAIN (SaslHandshake v1, SaslAuthenticate v2).
pub async fn plain_login(
    c: &mut Client,
    user: &str,
    password: &str,
) -> Result<SaslAuthenticateResponse> {
    api_versions(c).await?;
    let h = handshake(c, 1, "PLAIN").await?;
    ensure!(h.error_code == NONE, "{h:?}");
    authenticate(c, 2, format!("\0{user}\0{password}").as_bytes()).await
}
