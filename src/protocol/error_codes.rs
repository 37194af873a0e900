//! The error codes a response carries (Kafka's `AbstractResponse.errorCounts`): every
//! `error_code` field, top level and nested, each occurrence once. The metrics count them per API
//! (`kafka_network_requestmetrics_errors_total`) and the request journal lists them; both take
//! them from here, on every response, so this walks the fields and never formats or allocates.
//! And its throttle time (`ThrottleTime`), which the request quota sets on any response.
//!
//! One line per response type: `@throttle_time_ms` when it has that field, then the paths from
//! the response to each error-code field, a path being the Vec fields to go through and then the
//! code's field. A response type without an implementation does not compile in `respond`, so a
//! new API cannot be answered uncounted.

use kafka_protocol::messages::*;

pub trait ErrorCodes {
    /// Calls `f` with each error code in the response (NONE included).
    fn error_codes(&self, f: &mut dyn FnMut(i16));
}

/// The response's `throttle_time_ms`, where its type has one (KIP-219: the client waits that
/// long before its next request on the connection). The request quota sets it on any response
/// (`respond`), so every type answers here too.
pub trait ThrottleTime {
    fn throttle_time_ms(&self) -> Option<i32>;
    /// Sets it; nothing for a type without the field.
    fn set_throttle_time_ms(&mut self, ms: i32);
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

/// Reads or sets the throttle time field, `@field` in a line of `error_codes!`, if any.
macro_rules! throttle_field {
    (get $v:expr,) => {
        None
    };
    (get $v:expr, $field:ident) => {
        Some($v.$field)
    };
    (set $v:expr, $ms:ident,) => {{
        let _ = ($v, $ms);
    }};
    (set $v:expr, $ms:ident, $field:ident) => {
        $v.$field = $ms
    };
}

macro_rules! error_codes {
    ($($t:ty => $(@$throttle:ident)? $([$($path:ident)+])*;)*) => {
        $(impl ErrorCodes for $t {
            #[allow(unused_variables)]
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                $(walk!(self, f, $($path)+);)*
            }
        }
        impl ThrottleTime for $t {
            fn throttle_time_ms(&self) -> Option<i32> {
                throttle_field!(get self, $($throttle)?)
            }
            fn set_throttle_time_ms(&mut self, ms: i32) {
                throttle_field!(set self, ms, $($throttle)?)
            }
        })*
    };
}

error_codes! {
    AddOffsetsToTxnResponse => @throttle_time_ms [error_code];
    AddPartitionsToTxnResponse => @throttle_time_ms [error_code]
        [results_by_transaction topic_results results_by_partition partition_error_code]
        [results_by_topic_v3_and_below results_by_partition partition_error_code];
    AddRaftVoterResponse => @throttle_time_ms [error_code];
    AllocateProducerIdsResponse => @throttle_time_ms [error_code];
    AlterClientQuotasResponse => @throttle_time_ms [entries error_code];
    AlterConfigsResponse => @throttle_time_ms [responses error_code];
    AlterPartitionReassignmentsResponse => @throttle_time_ms [error_code] [responses partitions error_code];
    AlterPartitionResponse => @throttle_time_ms [error_code] [topics partitions error_code];
    AlterReplicaLogDirsResponse => @throttle_time_ms [results partitions error_code];
    AlterShareGroupOffsetsResponse => @throttle_time_ms [error_code] [responses partitions error_code];
    AlterUserScramCredentialsResponse => @throttle_time_ms [results error_code];
    ApiVersionsResponse => @throttle_time_ms [error_code];
    AssignReplicasToDirsResponse => @throttle_time_ms [error_code] [directories topics partitions error_code];
    BeginQuorumEpochResponse => [error_code] [topics partitions error_code];
    BrokerHeartbeatResponse => @throttle_time_ms [error_code];
    BrokerRegistrationResponse => @throttle_time_ms [error_code];
    ConsumerGroupDescribeResponse => @throttle_time_ms [groups error_code];
    ConsumerGroupHeartbeatResponse => @throttle_time_ms [error_code];
    ControllerRegistrationResponse => @throttle_time_ms [error_code];
    CreateAclsResponse => @throttle_time_ms [results error_code];
    CreateDelegationTokenResponse => @throttle_time_ms [error_code];
    CreatePartitionsResponse => @throttle_time_ms [results error_code];
    CreateTopicsResponse => @throttle_time_ms [topics error_code];
    DeleteAclsResponse => @throttle_time_ms [filter_results error_code] [filter_results matching_acls error_code];
    DeleteGroupsResponse => @throttle_time_ms [results error_code];
    DeleteRecordsResponse => @throttle_time_ms [topics partitions error_code];
    DeleteShareGroupOffsetsResponse => @throttle_time_ms [error_code] [responses error_code];
    DeleteShareGroupStateResponse => [results partitions error_code];
    DeleteTopicsResponse => @throttle_time_ms [responses error_code];
    DescribeAclsResponse => @throttle_time_ms [error_code];
    DescribeClientQuotasResponse => @throttle_time_ms [error_code];
    DescribeClusterResponse => @throttle_time_ms [error_code];
    DescribeConfigsResponse => @throttle_time_ms [results error_code];
    DescribeDelegationTokenResponse => @throttle_time_ms [error_code];
    DescribeGroupsResponse => @throttle_time_ms [groups error_code];
    DescribeLogDirsResponse => @throttle_time_ms [error_code] [results error_code];
    DescribeProducersResponse => @throttle_time_ms [topics partitions error_code];
    DescribeQuorumResponse => [error_code] [topics partitions error_code];
    DescribeShareGroupOffsetsResponse => @throttle_time_ms [groups error_code] [groups topics partitions error_code];
    DescribeTopicPartitionsResponse => @throttle_time_ms [topics error_code];
    DescribeTransactionsResponse => @throttle_time_ms [transaction_states error_code];
    DescribeUserScramCredentialsResponse => @throttle_time_ms [error_code] [results error_code];
    ElectLeadersResponse => @throttle_time_ms [error_code] [replica_election_results partition_result error_code];
    EndQuorumEpochResponse => [error_code] [topics partitions error_code];
    EndTxnResponse => @throttle_time_ms [error_code];
    EnvelopeResponse => [error_code];
    ExpireDelegationTokenResponse => @throttle_time_ms [error_code];
    FetchResponse => @throttle_time_ms [error_code] [responses partitions error_code];
    FetchSnapshotResponse => @throttle_time_ms [error_code] [topics partitions error_code];
    FindCoordinatorResponse => @throttle_time_ms [error_code] [coordinators error_code];
    GetTelemetrySubscriptionsResponse => @throttle_time_ms [error_code];
    HeartbeatResponse => @throttle_time_ms [error_code];
    IncrementalAlterConfigsResponse => @throttle_time_ms [responses error_code];
    InitProducerIdResponse => @throttle_time_ms [error_code];
    InitializeShareGroupStateResponse => [results partitions error_code];
    JoinGroupResponse => @throttle_time_ms [error_code];
    LeaveGroupResponse => @throttle_time_ms [error_code] [members error_code];
    ListConfigResourcesResponse => @throttle_time_ms [error_code];
    ListGroupsResponse => @throttle_time_ms [error_code];
    ListOffsetsResponse => @throttle_time_ms [topics partitions error_code];
    ListPartitionReassignmentsResponse => @throttle_time_ms [error_code];
    ListTransactionsResponse => @throttle_time_ms [error_code];
    MetadataResponse => @throttle_time_ms [error_code] [topics error_code] [topics partitions error_code];
    OffsetCommitResponse => @throttle_time_ms [topics partitions error_code];
    OffsetDeleteResponse => @throttle_time_ms [error_code] [topics partitions error_code];
    OffsetFetchResponse => @throttle_time_ms [error_code] [topics partitions error_code]
        [groups error_code] [groups topics partitions error_code];
    OffsetForLeaderEpochResponse => @throttle_time_ms [topics partitions error_code];
    ProduceResponse => @throttle_time_ms [responses partition_responses error_code];
    PushTelemetryResponse => @throttle_time_ms [error_code];
    ReadShareGroupStateResponse => [results partitions error_code];
    ReadShareGroupStateSummaryResponse => [results partitions error_code];
    RemoveRaftVoterResponse => @throttle_time_ms [error_code];
    RenewDelegationTokenResponse => @throttle_time_ms [error_code];
    SaslAuthenticateResponse => [error_code];
    SaslHandshakeResponse => [error_code];
    ShareAcknowledgeResponse => @throttle_time_ms [error_code] [responses partitions error_code];
    ShareFetchResponse => @throttle_time_ms [error_code] [responses partitions error_code];
    ShareGroupDescribeResponse => @throttle_time_ms [groups error_code];
    ShareGroupHeartbeatResponse => @throttle_time_ms [error_code];
    StreamsGroupDescribeResponse => @throttle_time_ms [groups error_code];
    StreamsGroupHeartbeatResponse => @throttle_time_ms [error_code];
    SyncGroupResponse => @throttle_time_ms [error_code];
    TxnOffsetCommitResponse => @throttle_time_ms [topics partitions error_code];
    UnregisterBrokerResponse => @throttle_time_ms [error_code];
    UpdateFeaturesResponse => @throttle_time_ms [error_code] [results error_code];
    UpdateRaftVoterResponse => @throttle_time_ms [error_code];
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
