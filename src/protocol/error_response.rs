//! A whole request answered with one error code, as Kafka's `AbstractRequest.getErrorResponse`
//! builds it: the code in every place that request type's response carries one for the request's
//! version (each topic and partition named, each group, the top-level field), with the "no value"
//! markers Kafka sets beside it (offsets -1, no node). The test control plane's injected errors
//! (`admin::faults`) are answered from here.
//!
//! Only the APIs listed in `answers_errors` are covered; a fault rule answering an error on
//! another API is refused when it is armed, so nothing advertised is half done.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use super::{encode, Reply};
use response::Splices;

use super::response;

/// The APIs whose error response this module builds.
pub const ANSWERS_ERRORS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::DeleteGroups,
    ApiKey::ConsumerGroupHeartbeat,
];

pub fn answers_errors(api: ApiKey) -> bool {
    ANSWERS_ERRORS.contains(&api)
}

/// The error response to the request `body` (the frame after its header). `None` when the body
/// does not decode (the caller closes the connection, as for any undecodable request) or the API
/// is not covered. An acks=0 Produce has no response: the connection is closed, as Kafka's
/// `sendErrorOrCloseConnection` does.
pub fn build(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: Bytes,
    code: i16,
) -> Option<Reply> {
    let a = Answer {
        version,
        correlation_id,
        body,
    };
    match api {
        ApiKey::Produce => {
            let req: ProduceRequest = a.decode()?;
            if req.acks == 0 {
                return Some(Reply::Close(format!(
                    "injected error {code} on an acks=0 produce"
                )));
            }
            a.encode(produce(req, code))
        }
        ApiKey::Fetch => a.answer(|r| fetch(r, version, code)),
        ApiKey::ListOffsets => a.answer(|r| list_offsets(r, code)),
        ApiKey::Metadata => a.answer(|r| metadata(r, code)),
        ApiKey::OffsetCommit => a.answer(|r| offset_commit(r, code)),
        ApiKey::OffsetFetch => a.answer(|r| offset_fetch(r, version, code)),
        ApiKey::FindCoordinator => a.answer(|r| find_coordinator(r, version, code)),
        ApiKey::JoinGroup => a.answer(|_: JoinGroupRequest| {
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_protocol_name(Some(StrBytes::from_static_str("")))
        }),
        ApiKey::Heartbeat => {
            a.answer(|_: HeartbeatRequest| HeartbeatResponse::default().with_error_code(code))
        }
        ApiKey::LeaveGroup => {
            a.answer(|_: LeaveGroupRequest| LeaveGroupResponse::default().with_error_code(code))
        }
        ApiKey::SyncGroup => {
            a.answer(|_: SyncGroupRequest| SyncGroupResponse::default().with_error_code(code))
        }
        ApiKey::DescribeGroups => a.answer(|r: DescribeGroupsRequest| {
            use describe_groups_response::DescribedGroup;
            let groups = r.groups.into_iter().map(|g| {
                DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(code)
            });
            DescribeGroupsResponse::default().with_groups(groups.collect())
        }),
        ApiKey::ListGroups => {
            a.answer(|_: ListGroupsRequest| ListGroupsResponse::default().with_error_code(code))
        }
        ApiKey::CreateTopics => a.answer(|r: CreateTopicsRequest| {
            use create_topics_response::CreatableTopicResult;
            let topics = r.topics.into_iter().map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            });
            CreateTopicsResponse::default().with_topics(topics.collect())
        }),
        ApiKey::DeleteTopics => a.answer(|r| delete_topics(r, code)),
        ApiKey::InitProducerId => a.answer(|_: InitProducerIdRequest| {
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }),
        ApiKey::AddPartitionsToTxn => a.answer(|r| add_partitions_to_txn(r, version, code)),
        ApiKey::AddOffsetsToTxn => a.answer(|_: AddOffsetsToTxnRequest| {
            AddOffsetsToTxnResponse::default().with_error_code(code)
        }),
        ApiKey::EndTxn => a.answer(|_: EndTxnRequest| {
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }),
        ApiKey::TxnOffsetCommit => a.answer(|r| txn_offset_commit(r, code)),
        ApiKey::DeleteGroups => a.answer(|r: DeleteGroupsRequest| {
            use delete_groups_response::DeletableGroupResult;
            let results = r.groups_names.into_iter().map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            });
            DeleteGroupsResponse::default().with_results(results.collect())
        }),
        ApiKey::ConsumerGroupHeartbeat => a.answer(|_: ConsumerGroupHeartbeatRequest| {
            ConsumerGroupHeartbeatResponse::default().with_error_code(code)
        }),
        _ => None,
    }
}

struct Answer {
    version: i16,
    correlation_id: i32,
    body: Bytes,
}

impl Answer {
    fn decode<Req: Decodable>(&self) -> Option<Req> {
        Req::decode(&mut self.body.clone(), self.version).ok()
    }

    fn encode<Resp: Encodable + HeaderVersion>(&self, resp: Resp) -> Option<Reply> {
        let header_version = Resp::header_version(self.version);
        Some(encode(
            self.correlation_id,
            header_version,
            self.version,
            &resp,
            Splices::default(),
        ))
    }

    fn answer<Req: Decodable, Resp: Encodable + HeaderVersion>(
        &self,
        f: impl FnOnce(Req) -> Resp,
    ) -> Option<Reply> {
        self.encode(f(self.decode()?))
    }
}

fn produce(req: ProduceRequest, code: i16) -> ProduceResponse {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    let responses = req.topic_data.into_iter().map(|t| {
        let partitions = t.partition_data.iter().map(|p| {
            PartitionProduceResponse::default()
                .with_index(p.index)
                .with_error_code(code)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1)
        });
        TopicProduceResponse::default()
            .with_name(t.name)
            .with_topic_id(t.topic_id)
            .with_partition_responses(partitions.collect())
    });
    ProduceResponse::default().with_responses(responses.collect())
}

/// From v13 only the top-level code: the client knows it, no partitions are listed.
fn fetch(req: FetchRequest, version: i16, code: i16) -> FetchResponse {
    use fetch_response::{FetchableTopicResponse, PartitionData};
    let mut resp = FetchResponse::default()
        .with_error_code(code)
        .with_session_id(req.session_id);
    if version < 13 {
        resp.responses = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(code)
                        .with_high_watermark(-1)
                        .with_records(Some(Bytes::new()))
                });
                FetchableTopicResponse::default()
                    .with_topic(t.topic)
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions.collect())
            })
            .collect();
    }
    resp
}

fn list_offsets(req: ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let topics = req.topics.into_iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| {
            ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code)
                .with_offset(-1)
                .with_timestamp(-1)
        });
        ListOffsetsTopicResponse::default()
            .with_name(t.name)
            .with_partitions(partitions.collect())
    });
    ListOffsetsResponse::default().with_topics(topics.collect())
}

/// Each topic asked for, with the code and no partitions; no brokers (a request for all topics
/// gets an empty list).
fn metadata(req: MetadataRequest, code: i16) -> MetadataResponse {
    use metadata_response::MetadataResponseTopic;
    let topics = req.topics.unwrap_or_default().into_iter().map(|t| {
        MetadataResponseTopic::default()
            .with_name(Some(t.name.unwrap_or_default()))
            .with_topic_id(t.topic_id)
            .with_error_code(code)
    });
    MetadataResponse::default().with_topics(topics.collect())
}

fn offset_commit(req: OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let topics = req.topics.into_iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code)
        });
        OffsetCommitResponseTopic::default()
            .with_name(t.name)
            .with_topic_id(t.topic_id)
            .with_partitions(partitions.collect())
    });
    OffsetCommitResponse::default().with_topics(topics.collect())
}

/// v1 lists each partition asked for with the code; v2-7 only the top-level code; v8+ each group.
fn offset_fetch(req: OffsetFetchRequest, version: i16, code: i16) -> OffsetFetchResponse {
    use offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
    };
    let resp = OffsetFetchResponse::default().with_error_code(code);
    if version >= 8 {
        let groups = req.groups.into_iter().map(|g| {
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_error_code(code)
        });
        return resp.with_groups(groups.collect());
    }
    if version >= 2 {
        return resp;
    }
    let topics = req.topics.unwrap_or_default().into_iter().map(|t| {
        let partitions = t.partition_indexes.iter().map(|&p| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(-1)
                .with_metadata(Some(StrBytes::from_static_str("")))
                .with_error_code(code)
        });
        OffsetFetchResponseTopic::default()
            .with_name(t.name)
            .with_partitions(partitions.collect())
    });
    resp.with_topics(topics.collect())
}

/// Before v4 one coordinator (no node); from v4 each key asked for.
fn find_coordinator(
    req: FindCoordinatorRequest,
    version: i16,
    code: i16,
) -> FindCoordinatorResponse {
    use find_coordinator_response::Coordinator;
    if version < 4 {
        return FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    let coordinators = req.coordinator_keys.into_iter().map(|key| {
        Coordinator::default()
            .with_key(key)
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    });
    FindCoordinatorResponse::default().with_coordinators(coordinators.collect())
}

fn delete_topics(req: DeleteTopicsRequest, code: i16) -> DeleteTopicsResponse {
    use delete_topics_response::DeletableTopicResult;
    let by_name = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n), uuid::Uuid::nil()));
    let by_state = req.topics.into_iter().map(|t| (t.name, t.topic_id));
    let responses = by_name.chain(by_state).map(|(name, id)| {
        DeletableTopicResult::default()
            .with_name(name)
            .with_topic_id(id)
            .with_error_code(code)
    });
    DeleteTopicsResponse::default().with_responses(responses.collect())
}

/// Before v4 each partition; from v4 (brokers' batched verification) only the top-level code.
fn add_partitions_to_txn(
    req: AddPartitionsToTxnRequest,
    version: i16,
    code: i16,
) -> AddPartitionsToTxnResponse {
    use add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };
    if version >= 4 {
        return AddPartitionsToTxnResponse::default().with_error_code(code);
    }
    let topics = req.v3_and_below_topics.into_iter().map(|t| {
        let partitions = t.partitions.iter().map(|&p| {
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(p)
                .with_partition_error_code(code)
        });
        AddPartitionsToTxnTopicResult::default()
            .with_name(t.name)
            .with_results_by_partition(partitions.collect())
    });
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics.collect())
}

fn txn_offset_commit(req: TxnOffsetCommitRequest, code: i16) -> TxnOffsetCommitResponse {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let topics = req.topics.into_iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| {
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code)
        });
        TxnOffsetCommitResponseTopic::default()
            .with_name(t.name)
            .with_partitions(partitions.collect())
    });
    TxnOffsetCommitResponse::default().with_topics(topics.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::apis;

    #[test]
    fn every_covered_api_is_served() {
        for api in ANSWERS_ERRORS {
            assert!(apis::supported(*api).is_some(), "{api:?}");
        }
    }

    fn frame_of(reply: Reply) -> Bytes {
        match reply {
            Reply::Frame(f) => {
                let mut out = Vec::new();
                for c in f.into_chunks() {
                    match c {
                        response::Chunk::Mem(b) => out.extend_from_slice(&b),
                        response::Chunk::File(_) => panic!("no file ranges here"),
                    }
                }
                Bytes::from(out)
            }
            other => panic!("{other:?}"),
        }
    }

    fn body<T: Encodable>(req: &T, version: i16) -> Bytes {
        let mut b = bytes::BytesMut::new();
        req.encode(&mut b, version).unwrap();
        b.freeze()
    }

    fn decoded<Resp: Decodable + HeaderVersion>(reply: Reply, version: i16) -> Resp {
        let mut f = frame_of(reply);
        let _size = bytes::Buf::get_i32(&mut f);
        ResponseHeader::decode(&mut f, Resp::header_version(version)).unwrap();
        Resp::decode(&mut f, version).unwrap()
    }

    #[test]
    fn produce_gets_the_code_on_every_partition_and_acks0_closes() {
        use produce_request::{PartitionProduceData, TopicProduceData};
        let topic = |n: &str, ps: &[i32]| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(n.into())))
                .with_partition_data(
                    ps.iter()
                        .map(|&i| PartitionProduceData::default().with_index(i))
                        .collect(),
                )
        };
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![topic("a", &[0, 1]), topic("b", &[2])]);
        let reply = build(ApiKey::Produce, 9, 7, body(&req, 9), 6).unwrap();
        let resp: ProduceResponse = decoded(reply, 9);
        let codes: Vec<(i32, i16, i64)> = resp
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .map(|p| (p.index, p.error_code, p.base_offset))
            .collect();
        assert_eq!(codes, vec![(0, 6, -1), (1, 6, -1), (2, 6, -1)]);
        let req = req.with_acks(0);
        assert!(matches!(
            build(ApiKey::Produce, 9, 7, body(&req, 9), 6),
            Some(Reply::Close(_))
        ));
    }

    #[test]
    fn fetch_lists_partitions_before_v13_only() {
        use fetch_request::{FetchPartition, FetchTopic};
        let req = FetchRequest::default().with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_topic_id(uuid::Uuid::from_u128(5))
            .with_partitions(vec![FetchPartition::default().with_partition(3)])]);
        for (v, listed) in [(12, 1), (13, 0)] {
            let resp: FetchResponse =
                decoded(build(ApiKey::Fetch, v, 1, body(&req, v), 7).unwrap(), v);
            assert_eq!(resp.error_code, 7);
            assert_eq!(resp.responses.len(), listed, "v{v}");
            if let Some(t) = resp.responses.first() {
                assert_eq!(
                    (t.partitions[0].partition_index, t.partitions[0].error_code),
                    (3, 7)
                );
                assert_eq!(t.partitions[0].high_watermark, -1);
            }
        }
    }

    #[test]
    fn offset_fetch_and_find_coordinator_by_version() {
        let req = OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g"))),
        ]);
        let resp: OffsetFetchResponse = decoded(
            build(ApiKey::OffsetFetch, 8, 1, body(&req, 8), 14).unwrap(),
            8,
        );
        assert_eq!(resp.groups[0].error_code, 14);
        let req = FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
        let resp: FindCoordinatorResponse = decoded(
            build(ApiKey::FindCoordinator, 4, 1, body(&req, 4), 15).unwrap(),
            4,
        );
        assert_eq!(resp.coordinators[0].error_code, 15);
        assert_eq!(resp.coordinators[0].node_id, BrokerId(-1));
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
        let resp: FindCoordinatorResponse = decoded(
            build(ApiKey::FindCoordinator, 3, 1, body(&req, 3), 15).unwrap(),
            3,
        );
        assert_eq!((resp.error_code, resp.node_id), (15, BrokerId(-1)));
    }

    #[test]
    fn an_undecodable_body_gets_nothing() {
        assert!(build(ApiKey::Produce, 9, 1, Bytes::from_static(&[1, 2]), 6).is_none());
        assert!(build(ApiKey::DescribeConfigs, 4, 1, Bytes::new(), 6).is_none());
    }

    /// A request of each covered API naming one topic, partition, group or key where it names
    /// any, so the error has a place to go at every version.
    fn naming_one(api: ApiKey, version: i16) -> Option<Bytes> {
        let topic = TopicName(StrBytes::from_static_str("t"));
        let group = GroupId(StrBytes::from_static_str("g"));
        Some(match api {
            ApiKey::Produce => body(
                &ProduceRequest::default()
                    .with_acks(-1)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(topic)
                        .with_partition_data(vec![Default::default()])]),
                version,
            ),
            ApiKey::Fetch => body(
                &FetchRequest::default().with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(topic)
                    .with_partitions(vec![Default::default()])]),
                version,
            ),
            ApiKey::ListOffsets => body(
                &ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![Default::default()]),
                ]),
                version,
            ),
            ApiKey::Metadata => body(
                &MetadataRequest::default().with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(topic)),
                ])),
                version,
            ),
            ApiKey::OffsetCommit => body(
                &OffsetCommitRequest::default().with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![Default::default()]),
                ]),
                version,
            ),
            ApiKey::OffsetFetch if version >= 8 => body(
                &OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group),
                ]),
                version,
            ),
            ApiKey::OffsetFetch => body(
                &OffsetFetchRequest::default().with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic)
                        .with_partition_indexes(vec![0]),
                ])),
                version,
            ),
            ApiKey::FindCoordinator if version >= 4 => body(
                &FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
                version,
            ),
            ApiKey::FindCoordinator => body(
                &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
                version,
            ),
            ApiKey::DescribeGroups => body(
                &DescribeGroupsRequest::default().with_groups(vec![group]),
                version,
            ),
            ApiKey::DeleteGroups => body(
                &DeleteGroupsRequest::default().with_groups_names(vec![group]),
                version,
            ),
            ApiKey::CreateTopics => body(
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default().with_name(topic),
                ]),
                version,
            ),
            ApiKey::DeleteTopics if version >= 6 => body(
                &DeleteTopicsRequest::default().with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(topic)),
                ]),
                version,
            ),
            ApiKey::DeleteTopics => body(
                &DeleteTopicsRequest::default().with_topic_names(vec![topic]),
                version,
            ),
            ApiKey::AddPartitionsToTxn if version < 4 => body(
                &AddPartitionsToTxnRequest::default().with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![0]),
                ]),
                version,
            ),
            ApiKey::TxnOffsetCommit => body(
                &TxnOffsetCommitRequest::default().with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![Default::default()]),
                ]),
                version,
            ),
            ApiKey::AddPartitionsToTxn => body(&AddPartitionsToTxnRequest::default(), version),
            ApiKey::JoinGroup => body(&JoinGroupRequest::default(), version),
            ApiKey::Heartbeat => body(&HeartbeatRequest::default(), version),
            ApiKey::LeaveGroup => body(&LeaveGroupRequest::default(), version),
            ApiKey::SyncGroup => body(&SyncGroupRequest::default(), version),
            ApiKey::ListGroups => body(&ListGroupsRequest::default(), version),
            ApiKey::InitProducerId => body(&InitProducerIdRequest::default(), version),
            ApiKey::AddOffsetsToTxn => body(&AddOffsetsToTxnRequest::default(), version),
            ApiKey::EndTxn => body(&EndTxnRequest::default(), version),
            ApiKey::ConsumerGroupHeartbeat => {
                body(&ConsumerGroupHeartbeatRequest::default(), version)
            }
            _ => return None,
        })
    }

    /// Every covered API at every version it is served: the answer decodes as that version's
    /// response, with the code in it.
    #[test]
    fn every_covered_api_and_version_answers_the_code() {
        for &api in ANSWERS_ERRORS {
            let range = apis::supported(api).unwrap();
            let min = match api {
                ApiKey::Produce => apis::PRODUCE_MIN_SERVED,
                _ => range.min,
            };
            for version in min..=range.max {
                let req = naming_one(api, version).unwrap_or_else(|| panic!("{api:?}"));
                let reply = build(api, version, 9, req, 14).unwrap();
                let mut f = frame_of(reply);
                let _size = bytes::Buf::get_i32(&mut f);
                let debug = decode_debug(api, version, f);
                assert!(
                    debug.contains("error_code: 14"),
                    "{api:?} v{version}: {debug}"
                );
            }
        }
    }

    /// The response frame (after the size) decoded as `api`'s response at `version`, printed.
    fn decode_debug(api: ApiKey, version: i16, mut f: Bytes) -> String {
        macro_rules! as_resp {
            ($($key:ident => $resp:ty),* $(,)?) => {
                match api {
                    $(ApiKey::$key => {
                        let hv = <$resp as HeaderVersion>::header_version(version);
                        let h = ResponseHeader::decode(&mut f, hv).unwrap();
                        assert_eq!(h.correlation_id, 9);
                        let r = <$resp>::decode(&mut f, version).unwrap();
                        assert!(f.is_empty(), "{api:?} v{version}: bytes left");
                        format!("{r:?}")
                    })*
                    other => panic!("{other:?}"),
                }
            };
        }
        as_resp!(
            Produce => ProduceResponse, Fetch => FetchResponse, ListOffsets => ListOffsetsResponse,
            Metadata => MetadataResponse, OffsetCommit => OffsetCommitResponse,
            OffsetFetch => OffsetFetchResponse, FindCoordinator => FindCoordinatorResponse,
            JoinGroup => JoinGroupResponse, Heartbeat => HeartbeatResponse,
            LeaveGroup => LeaveGroupResponse, SyncGroup => SyncGroupResponse,
            DescribeGroups => DescribeGroupsResponse, ListGroups => ListGroupsResponse,
            CreateTopics => CreateTopicsResponse, DeleteTopics => DeleteTopicsResponse,
            InitProducerId => InitProducerIdResponse,
            AddPartitionsToTxn => AddPartitionsToTxnResponse,
            AddOffsetsToTxn => AddOffsetsToTxnResponse, EndTxn => EndTxnResponse,
            TxnOffsetCommit => TxnOffsetCommitResponse, DeleteGroups => DeleteGroupsResponse,
            ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
        )
    }
}
