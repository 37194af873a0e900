//! The error codes a response carries (Kafka's `AbstractResponse.errorCounts`): every
//! `error_code` field, top level and nested, each occurrence once. The metrics count them per API
//! (`kafka_network_requestmetrics_errors_total`) and the request journal lists them; both take
//! them from here, on every response, so this walks the fields and never formats or allocates.
//!
//! One line per response type: the paths from the response to each error-code field, a path
//! being the Vec fields to go through and then the code's field. A response type without an
//! implementation does not compile in `respond`, so a new API cannot be answered uncounted.

use kafka_protocol::messages::*;

pub trait ErrorCodes {
    /// Calls `f` with each error code in the response (NONE included).
    fn error_codes(&self, f: &mut dyn FnMut(i16));
}

/// Follows one path: Vec fields, then the error-code field.
macro_rules! walk {
    ($v:expr, $f:ident, $code:ident) => {
        $f($v.$code)
    };
    ($v:expr, $f:ident, $list:ident $($rest:ident)+) => {
        for x in &$v.$list {
            walk!(x, $f, $($rest)+);
        }
    };
}

macro_rules! error_codes {
    ($($t:ty => $([$($path:ident)+])*;)*) => {
        $(impl ErrorCodes for $t {
            #[allow(unused_variables)]
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                $(walk!(self, f, $($path)+);)*
            }
        })*
    };
}

error_codes! {
    AddOffsetsToTxnResponse => [error_code];
    AddPartitionsToTxnResponse => [error_code]
        [results_by_transaction topic_results results_by_partition partition_error_code]
        [results_by_topic_v3_and_below results_by_partition partition_error_code];
    AddRaftVoterResponse => [error_code];
    AllocateProducerIdsResponse => [error_code];
    AlterClientQuotasResponse => [entries error_code];
    AlterConfigsResponse => [responses error_code];
    AlterPartitionReassignmentsResponse => [error_code] [responses partitions error_code];
    AlterPartitionResponse => [error_code] [topics partitions error_code];
    AlterReplicaLogDirsResponse => [results partitions error_code];
    AlterShareGroupOffsetsResponse => [error_code] [responses partitions error_code];
    AlterUserScramCredentialsResponse => [results error_code];
    ApiVersionsResponse => [error_code];
    AssignReplicasToDirsResponse => [error_code] [directories topics partitions error_code];
    BeginQuorumEpochResponse => [error_code] [topics partitions error_code];
    BrokerHeartbeatResponse => [error_code];
    BrokerRegistrationResponse => [error_code];
    ConsumerGroupDescribeResponse => [groups error_code];
    ConsumerGroupHeartbeatResponse => [error_code];
    ControllerRegistrationResponse => [error_code];
    CreateAclsResponse => [results error_code];
    CreateDelegationTokenResponse => [error_code];
    CreatePartitionsResponse => [results error_code];
    CreateTopicsResponse => [topics error_code];
    DeleteAclsResponse => [filter_results error_code] [filter_results matching_acls error_code];
    DeleteGroupsResponse => [results error_code];
    DeleteRecordsResponse => [topics partitions error_code];
    DeleteShareGroupOffsetsResponse => [error_code] [responses error_code];
    DeleteShareGroupStateResponse => [results partitions error_code];
    DeleteTopicsResponse => [responses error_code];
    DescribeAclsResponse => [error_code];
    DescribeClientQuotasResponse => [error_code];
    DescribeClusterResponse => [error_code];
    DescribeConfigsResponse => [results error_code];
    DescribeDelegationTokenResponse => [error_code];
    DescribeGroupsResponse => [groups error_code];
    DescribeLogDirsResponse => [error_code] [results error_code];
    DescribeProducersResponse => [topics partitions error_code];
    DescribeQuorumResponse => [error_code] [topics partitions error_code];
    DescribeShareGroupOffsetsResponse => [groups error_code] [groups topics partitions error_code];
    DescribeTopicPartitionsResponse => [topics error_code];
    DescribeTransactionsResponse => [transaction_states error_code];
    DescribeUserScramCredentialsResponse => [error_code] [results error_code];
    ElectLeadersResponse => [error_code] [replica_election_results partition_result error_code];
    EndQuorumEpochResponse => [error_code] [topics partitions error_code];
    EndTxnResponse => [error_code];
    EnvelopeResponse => [error_code];
    ExpireDelegationTokenResponse => [error_code];
    FetchResponse => [error_code] [responses partitions error_code];
    FetchSnapshotResponse => [error_code] [topics partitions error_code];
    FindCoordinatorResponse => [error_code] [coordinators error_code];
    GetTelemetrySubscriptionsResponse => [error_code];
    HeartbeatResponse => [error_code];
    IncrementalAlterConfigsResponse => [responses error_code];
    InitProducerIdResponse => [error_code];
    InitializeShareGroupStateResponse => [results partitions error_code];
    JoinGroupResponse => [error_code];
    LeaveGroupResponse => [error_code] [members error_code];
    ListConfigResourcesResponse => [error_code];
    ListGroupsResponse => [error_code];
    ListOffsetsResponse => [topics partitions error_code];
    ListPartitionReassignmentsResponse => [error_code];
    ListTransactionsResponse => [error_code];
    MetadataResponse => [error_code] [topics error_code] [topics partitions error_code];
    OffsetCommitResponse => [topics partitions error_code];
    OffsetDeleteResponse => [error_code] [topics partitions error_code];
    OffsetFetchResponse => [error_code] [topics partitions error_code]
        [groups error_code] [groups topics partitions error_code];
    OffsetForLeaderEpochResponse => [topics partitions error_code];
    ProduceResponse => [responses partition_responses error_code];
    PushTelemetryResponse => [error_code];
    ReadShareGroupStateResponse => [results partitions error_code];
    ReadShareGroupStateSummaryResponse => [results partitions error_code];
    RemoveRaftVoterResponse => [error_code];
    RenewDelegationTokenResponse => [error_code];
    SaslAuthenticateResponse => [error_code];
    SaslHandshakeResponse => [error_code];
    ShareAcknowledgeResponse => [error_code] [responses partitions error_code];
    ShareFetchResponse => [error_code] [responses partitions error_code];
    ShareGroupDescribeResponse => [groups error_code];
    ShareGroupHeartbeatResponse => [error_code];
    StreamsGroupDescribeResponse => [groups error_code];
    StreamsGroupHeartbeatResponse => [error_code];
    SyncGroupResponse => [error_code];
    TxnOffsetCommitResponse => [topics partitions error_code];
    UnregisterBrokerResponse => [error_code];
    UpdateFeaturesResponse => [error_code] [results error_code];
    UpdateRaftVoterResponse => [error_code];
    VoteResponse => [error_code] [topics partitions error_code];
    WriteShareGroupStateResponse => [results partitions error_code];
    WriteTxnMarkersResponse => [markers topics partitions error_code];
}

/// The distinct codes, sorted (what the request journal shows).
pub fn distinct(r: &dyn ErrorCodes) -> Vec<i16> {
    let mut codes = Vec::new();
    r.error_codes(&mut |c| {
        if !codes.contains(&c) {
            codes.push(c);
        }
    });
    codes.sort_unstable();
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    #[test]
    fn nested_codes_are_each_counted() {
        let partition = |code| PartitionProduceResponse::default().with_error_code(code);
        let r = ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default()
                .with_partition_responses(vec![partition(0), partition(6)]),
            TopicProduceResponse::default().with_partition_responses(vec![partition(6)]),
        ]);
        let mut seen = Vec::new();
        r.error_codes(&mut |c| seen.push(c));
        assert_eq!(seen, [0, 6, 6]);
        assert_eq!(distinct(&r), [0, 6]);
        let h = HeartbeatResponse::default().with_error_code(27);
        assert_eq!(distinct(&h), [27]);
    }
}
