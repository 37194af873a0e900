//! What a request names: its topics (with the partitions named), groups and transactional ids.
//! The test control plane matches fault rules against it and writes it into the request journal;
//! nothing else decodes a request twice, and only while the control plane is on.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::metadata::Catalog;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Named {
    /// Each topic with the partitions named for it (empty when the request names none).
    pub topics: Vec<(String, Vec<i32>)>,
    pub groups: Vec<String>,
    pub transactional_ids: Vec<String>,
}

impl Named {
    fn topic(&mut self, name: impl ToString, partitions: impl IntoIterator<Item = i32>) {
        self.topics
            .push((name.to_string(), partitions.into_iter().collect()));
    }

    fn group(&mut self, g: impl ToString) {
        self.groups.push(g.to_string());
    }

    fn transactional_id(&mut self, id: impl ToString) {
        self.transactional_ids.push(id.to_string());
    }
}

/// A topic named by id (Produce v13, Fetch v13+, Metadata by id) is reported by its name.
fn topic_name(catalog: &Catalog, name: &str, id: uuid::Uuid) -> String {
    if name.is_empty() && !id.is_nil() {
        if let Some(t) = catalog.get_by_id(id) {
            return t.name.to_string();
        }
    }
    name.to_string()
}

fn decode<T: Decodable>(body: &Bytes, version: i16) -> Option<T> {
    T::decode(&mut body.clone(), version).ok()
}

/// What the request `body` (after its header) names; empty for an API that names nothing of
/// these or a body that does not decode (the request itself will then be refused).
pub fn named(catalog: &Catalog, api: ApiKey, version: i16, body: &Bytes) -> Named {
    let mut n = Named::default();
    collect(&mut n, catalog, api, version, body);
    n
}

fn collect(n: &mut Named, catalog: &Catalog, api: ApiKey, v: i16, body: &Bytes) -> Option<()> {
    match api {
        ApiKey::Produce => {
            let r: ProduceRequest = decode(body, v)?;
            if let Some(id) = r.transactional_id {
                n.transactional_id(id.0);
            }
            for t in r.topic_data {
                let name = topic_name(catalog, &t.name, t.topic_id);
                n.topic(name, t.partition_data.iter().map(|p| p.index));
            }
        }
        ApiKey::Fetch => {
            let r: FetchRequest = decode(body, v)?;
            for t in r.topics {
                let name = topic_name(catalog, &t.topic, t.topic_id);
                n.topic(name, t.partitions.iter().map(|p| p.partition));
            }
        }
        ApiKey::ListOffsets => {
            let r: ListOffsetsRequest = decode(body, v)?;
            for t in r.topics {
                n.topic(t.name.0, t.partitions.iter().map(|p| p.partition_index));
            }
        }
        ApiKey::Metadata => {
            let r: MetadataRequest = decode(body, v)?;
            for t in r.topics.unwrap_or_default() {
                let name = t.name.map(|x| x.0.to_string()).unwrap_or_default();
                n.topic(topic_name(catalog, &name, t.topic_id), []);
            }
        }
        ApiKey::OffsetCommit => {
            let r: OffsetCommitRequest = decode(body, v)?;
            n.group(r.group_id.0);
            for t in r.topics {
                let name = topic_name(catalog, &t.name, t.topic_id);
                n.topic(name, t.partitions.iter().map(|p| p.partition_index));
            }
        }
        ApiKey::OffsetFetch => {
            let r: OffsetFetchRequest = decode(body, v)?;
            if v < 8 {
                n.group(r.group_id.0);
                for t in r.topics.unwrap_or_default() {
                    n.topic(t.name.0, t.partition_indexes);
                }
            }
            for g in r.groups {
                n.group(g.group_id.0);
                for t in g.topics.unwrap_or_default() {
                    let name = topic_name(catalog, &t.name, t.topic_id);
                    n.topic(name, t.partition_indexes);
                }
            }
        }
        ApiKey::TxnOffsetCommit => {
            let r: TxnOffsetCommitRequest = decode(body, v)?;
            n.transactional_id(r.transactional_id.0);
            n.group(r.group_id.0);
            for t in r.topics {
                n.topic(t.name.0, t.partitions.iter().map(|p| p.partition_index));
            }
        }
        ApiKey::FindCoordinator => {
            let r: FindCoordinatorRequest = decode(body, v)?;
            let keys = if v < 4 {
                vec![r.key]
            } else {
                r.coordinator_keys
            };
            for key in keys {
                // key_type 1 is TRANSACTION, 0 (and 2, share groups) a group.
                match r.key_type {
                    1 => n.transactional_id(key),
                    _ => n.group(key),
                }
            }
        }
        ApiKey::JoinGroup => n.group(decode::<JoinGroupRequest>(body, v)?.group_id.0),
        ApiKey::SyncGroup => n.group(decode::<SyncGroupRequest>(body, v)?.group_id.0),
        ApiKey::Heartbeat => n.group(decode::<HeartbeatRequest>(body, v)?.group_id.0),
        ApiKey::LeaveGroup => n.group(decode::<LeaveGroupRequest>(body, v)?.group_id.0),
        ApiKey::ConsumerGroupHeartbeat => {
            let r: ConsumerGroupHeartbeatRequest = decode(body, v)?;
            n.group(r.group_id.0);
            for t in r.subscribed_topic_names.unwrap_or_default() {
                n.topic(t.0, []);
            }
        }
        ApiKey::DescribeGroups => {
            for g in decode::<DescribeGroupsRequest>(body, v)?.groups {
                n.group(g.0);
            }
        }
        ApiKey::DeleteGroups => {
            for g in decode::<DeleteGroupsRequest>(body, v)?.groups_names {
                n.group(g.0);
            }
        }
        ApiKey::ConsumerGroupDescribe => {
            for g in decode::<ConsumerGroupDescribeRequest>(body, v)?.group_ids {
                n.group(g.0);
            }
        }
        ApiKey::OffsetDelete => {
            let r: OffsetDeleteRequest = decode(body, v)?;
            n.group(r.group_id.0);
            for t in r.topics {
                n.topic(t.name.0, t.partitions.iter().map(|p| p.partition_index));
            }
        }
        ApiKey::CreateTopics => {
            for t in decode::<CreateTopicsRequest>(body, v)?.topics {
                n.topic(t.name.0, []);
            }
        }
        ApiKey::DeleteTopics => {
            let r: DeleteTopicsRequest = decode(body, v)?;
            for t in r.topic_names {
                n.topic(t.0, []);
            }
            for t in r.topics {
                let name = t.name.map(|x| x.0.to_string()).unwrap_or_default();
                n.topic(topic_name(catalog, &name, t.topic_id), []);
            }
        }
        ApiKey::CreatePartitions => {
            for t in decode::<CreatePartitionsRequest>(body, v)?.topics {
                n.topic(t.name.0, []);
            }
        }
        ApiKey::DeleteRecords => {
            for t in decode::<DeleteRecordsRequest>(body, v)?.topics {
                n.topic(t.name.0, t.partitions.iter().map(|p| p.partition_index));
            }
        }
        ApiKey::OffsetForLeaderEpoch => {
            for t in decode::<OffsetForLeaderEpochRequest>(body, v)?.topics {
                n.topic(t.topic.0, t.partitions.iter().map(|p| p.partition));
            }
        }
        ApiKey::InitProducerId => {
            if let Some(id) = decode::<InitProducerIdRequest>(body, v)?.transactional_id {
                n.transactional_id(id.0);
            }
        }
        ApiKey::AddPartitionsToTxn => {
            let r: AddPartitionsToTxnRequest = decode(body, v)?;
            if v < 4 {
                n.transactional_id(r.v3_and_below_transactional_id.0);
                for t in r.v3_and_below_topics {
                    n.topic(t.name.0, t.partitions);
                }
            }
            for txn in r.transactions {
                n.transactional_id(txn.transactional_id.0);
                for t in txn.topics {
                    n.topic(t.name.0, t.partitions);
                }
            }
        }
        ApiKey::AddOffsetsToTxn => {
            let r: AddOffsetsToTxnRequest = decode(body, v)?;
            n.transactional_id(r.transactional_id.0);
            n.group(r.group_id.0);
        }
        ApiKey::EndTxn => n.transactional_id(decode::<EndTxnRequest>(body, v)?.transactional_id.0),
        ApiKey::DescribeTransactions => {
            for id in decode::<DescribeTransactionsRequest>(body, v)?.transactional_ids {
                n.transactional_id(id.0);
            }
        }
        ApiKey::DescribeProducers => {
            for t in decode::<DescribeProducersRequest>(body, v)?.topics {
                n.topic(t.name.0, t.partition_indexes);
            }
        }
        _ => {}
    }
    Some(())
}
