//! Seed data (issue 16): `--seed FILE` at start-up and `POST /v1/seed` create topics with their
//! configs, write records (key, value, headers, timestamps) and commit consumer-group offsets
//! from one JSON document, so that a test starts from known data without a producer of its own:
//!
//! ```json
//! {"topics": [{"name": "orders", "partitions": 3, "configs": {"retention.ms": "-1"},
//!              "records": [{"key": "k1", "value": {"id": 1}, "headers": {"source": "seed"},
//!                           "timestamp": 1700000000000, "partition": 2}]}],
//!  "groups": [{"group": "billing", "offsets": [{"topic": "orders", "partition": 2, "offset": 1}]}]}
//! ```
//!
//! Everything goes through the handlers a client's CreateTopics, Produce and OffsetCommit go
//! through (validation, configs, metrics, waking parked fetches and the journal stay in one
//! place), as the principal `User:gregor-seed` (under an authorizer it needs ACLs as any
//! client). A topic that exists is used as it is (a seed can follow `POST /v1/reset
//! {"keep_topics": true}`). A record without `partition` goes where Kafka's default partitioner
//! puts its key (murmur2), a keyless one to partition 0. A key or value that is a JSON string is
//! its UTF-8 text; any other JSON (object, array, number, boolean) is written as compact JSON
//! text; a null value is a tombstone. Offsets are committed as the admin client's
//! alterConsumerGroupOffsets does (no member, generation -1), so the group must be empty.
//! The first thing refused stops the seed with Kafka's error, and what was done before stays.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FindCoordinatorRequest, OffsetCommitRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::broker::Broker;
use crate::console::records::{batch_of, partition_for_key, NewRecord};
use crate::protocol::{errors, RequestContext};

/// The principal and client id seed requests are made as.
const PRINCIPAL: &str = "User:gregor-seed";
const CLIENT_ID: &str = "gregor-seed";
/// Records per Produce request: far below the default message.max.bytes for small records; a
/// batch over a topic's max.message.bytes is refused with Kafka's error.
const RECORDS_PER_BATCH: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    topics: Vec<SeedTopic>,
    #[serde(default)]
    groups: Vec<SeedGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedTopic {
    name: String,
    /// Default: the broker's num.partitions.
    partitions: Option<i32>,
    /// Default: the broker's default.replication.factor.
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
    #[serde(default)]
    records: Vec<SeedRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRecord {
    partition: Option<i32>,
    #[serde(default)]
    key: Value,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    timestamp: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedGroup {
    group: String,
    offsets: Vec<SeedOffset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedOffset {
    topic: String,
    partition: i32,
    offset: i64,
    metadata: Option<String>,
}

impl Seed {
    /// The document, or what is wrong with it.
    pub fn parse(json: &Value) -> Result<Seed, String> {
        // serde would take a struct from an array too.
        if !json.is_object() {
            return Err("bad seed document: not a JSON object".into());
        }
        Seed::deserialize(json).map_err(|e| format!("bad seed document: {e}"))
    }
}

/// JSON as record bytes: a string as its text, null as none, anything else as compact JSON.
fn data(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn context(broker: &Arc<Broker>, api: ApiKey, version: i16, node: i32) -> RequestContext<'_> {
    RequestContext::internal(broker, api, version, node, CLIENT_ID, PRINCIPAL)
}

fn refused(what: &str, code: i16, message: Option<&StrBytes>) -> String {
    let detail = message.map_or(String::new(), |m| format!(": {m}"));
    format!("{what}: {}{detail}", errors::name_of(code))
}

/// Applies the seed; answers what it did (`topics_created`, `records`, `offsets`) or the first
/// refusal.
pub async fn apply(broker: &Arc<Broker>, seed: &Seed) -> Result<Value, String> {
    let (mut created, mut written, mut committed) = (Vec::new(), 0usize, 0usize);
    for t in &seed.topics {
        if broker.catalog.get(&t.name).is_none() {
            create_topic(broker, t)?;
            created.push(t.name.clone());
        }
        written += produce(broker, t).await?;
    }
    for g in &seed.groups {
        committed += commit(broker, g)?;
    }
    Ok(json!({"topics_created": created, "records": written, "offsets": committed}))
}

fn create_topic(broker: &Arc<Broker>, t: &SeedTopic) -> Result<(), String> {
    let configs = (t.configs.iter())
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(t.name.clone())))
            .with_num_partitions(t.partitions.unwrap_or(-1))
            .with_replication_factor(t.replication_factor.unwrap_or(-1))
            .with_configs(configs)]);
    let ctx = context(broker, ApiKey::CreateTopics, 7, broker.node_id);
    let resp = crate::protocol::create_topics::handle(&ctx, req);
    match resp.topics.first() {
        Some(r) if r.error_code == errors::NONE => Ok(()),
        Some(r) => Err(refused(
            &format!("creating topic {}", t.name),
            r.error_code,
            r.error_message.as_ref(),
        )),
        None => Err(format!("creating topic {}: no answer", t.name)),
    }
}

/// Writes the topic's records, a batch per partition and chunk, in document order within each
/// partition; answers how many.
async fn produce(broker: &Arc<Broker>, t: &SeedTopic) -> Result<usize, String> {
    if t.records.is_empty() {
        return Ok(0);
    }
    let partitions = broker
        .catalog
        .get(&t.name)
        .map_or(0, |topic| topic.partitions.len() as i32);
    let mut by_partition: BTreeMap<i32, Vec<NewRecord>> = BTreeMap::new();
    for (i, r) in t.records.iter().enumerate() {
        let key = data(&r.key);
        let partition = match (r.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k.as_bytes(), partitions),
            (None, None) => 0,
        };
        if !(0..partitions).contains(&partition) {
            let e = format!("{} record {i}: no partition {partition}", t.name);
            return Err(format!("{e} (the topic has {partitions})"));
        }
        let headers = (r.headers.iter())
            .map(|(k, v)| (k.clone(), data(v).unwrap_or_default()))
            .collect();
        by_partition.entry(partition).or_default().push(NewRecord {
            key,
            value: data(&r.value),
            headers,
            timestamp: r.timestamp,
        });
    }
    let image = broker.catalog.image();
    let mut written = 0;
    for (partition, records) in by_partition {
        let leader = (image.topics.get_by_name(&t.name))
            .and_then(|topic| topic.partitions.get(&partition).map(|r| r.leader))
            .unwrap_or(broker.node_id);
        for chunk in records.chunks(RECORDS_PER_BATCH) {
            let batch = batch_of(chunk, broker.clock.now_ms())?;
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])]);
            let ctx = context(broker, ApiKey::Produce, 11, leader);
            let resp = crate::protocol::produce::handle(&ctx, req).await;
            let answer = (resp.responses.first()).and_then(|r| r.partition_responses.first());
            match answer {
                Some(p) if p.error_code == errors::NONE => written += chunk.len(),
                Some(p) => {
                    let what = format!("writing to {}-{partition}", t.name);
                    return Err(refused(&what, p.error_code, p.error_message.as_ref()));
                }
                None => return Err(format!("writing to {}-{partition}: no answer", t.name)),
            }
        }
    }
    Ok(written)
}

/// Commits the group's offsets at its coordinator, as an admin client does for an empty group.
fn commit(broker: &Arc<Broker>, g: &SeedGroup) -> Result<usize, String> {
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_string(g.group.clone())]);
    let ctx = context(broker, ApiKey::FindCoordinator, 4, broker.node_id);
    let found = crate::protocol::find_coordinator::handle(&ctx, find);
    let coordinator = match found.coordinators.first() {
        Some(c) if c.error_code == errors::NONE => *c.node_id,
        Some(c) => {
            let what = format!("finding group {}'s coordinator", g.group);
            return Err(refused(&what, c.error_code, c.error_message.as_ref()));
        }
        None => {
            return Err(format!(
                "finding group {}'s coordinator: no answer",
                g.group
            ))
        }
    };
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for o in &g.offsets {
        topics.entry(o.topic.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(o.partition)
                .with_committed_offset(o.offset)
                .with_committed_metadata(o.metadata.clone().map(StrBytes::from_string)),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(StrBytes::from_string(g.group.clone()).into())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let ctx = context(broker, ApiKey::OffsetCommit, 8, coordinator);
    let resp = crate::protocol::offset_commit::handle(&ctx, req);
    let mut committed = 0;
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != errors::NONE {
                let what = format!(
                    "committing {}'s offset of {}-{}",
                    g.group,
                    t.name.as_str(),
                    p.partition_index
                );
                return Err(refused(&what, p.error_code, None));
            }
            committed += 1;
        }
    }
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_checked_before_anything_is_done() {
        let ok = json!({"topics": [{"name": "t", "records": [{"key": "k", "value": {"a": 1}}]}],
                        "groups": [{"group": "g", "offsets": [{"topic": "t", "partition": 0, "offset": 1}]}]});
        let seed = Seed::parse(&ok).unwrap();
        assert_eq!(seed.topics[0].records[0].value, json!({"a": 1}));
        // A misspelt field is refused rather than ignored.
        let e = Seed::parse(&json!({"topics": [{"name": "t", "partitons": 3}]})).unwrap_err();
        assert!(e.contains("partitons"), "{e}");
        assert!(Seed::parse(&json!({"groups": [{"group": "g"}]})).is_err());
        assert!(Seed::parse(&json!([])).is_err());
        assert!(Seed::parse(&json!({})).unwrap().topics.is_empty());
    }

    #[test]
    fn json_data_is_text() {
        assert_eq!(data(&json!("x")), Some("x".to_string()));
        assert_eq!(
            data(&json!({"a": [1, true]})),
            Some(r#"{"a":[1,true]}"#.to_string())
        );
        assert_eq!(data(&json!(7)), Some("7".to_string()));
        assert_eq!(data(&Value::Null), None);
    }
}
