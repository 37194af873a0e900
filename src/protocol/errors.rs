//! Kafka error codes (org.apache.kafka.common.protocol.Errors) and the mapping of each module's
//! errors onto them: the one place where a gregor error becomes a wire code.

use crate::log::batch::BatchError;
use crate::log::partition::LogError;
use crate::metadata::{CreateTopicError, TopicAdminError};

pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const SECURITY_DISABLED: i16 = 54;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const POLICY_VIOLATION: i16 = 44;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
pub const PRODUCER_FENCED: i16 = 90;
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
pub const TRANSACTION_ABORTABLE: i16 = 120;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
pub const INVALID_UPDATE_VERSION: i16 = 95;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
pub const ELECTION_NOT_NEEDED: i16 = 84;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const NOT_CONTROLLER: i16 = 41;
pub const STALE_BROKER_EPOCH: i16 = 77;
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
pub const INELIGIBLE_REPLICA: i16 = 107;
pub const NEW_LEADER_ELECTED: i16 = 108;
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
/// KIP-1071 streams groups.
pub const STREAMS_INVALID_TOPOLOGY: i16 = 130;
pub const INVALID_RECORD_STATE: i16 = 121;
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
pub const SHARE_SESSION_LIMIT_REACHED: i16 = 133;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

/// Clients older than `since` know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH (KafkaApis maps it
/// for InitProducerId < v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn < v2).
/// The default message Kafka's `Errors` gives a code (what `Errors.message()` and an
/// `ApiError` built from the code alone say), for the codes answered with a message; `None` for
/// the others.
pub fn message(code: i16) -> Option<&'static str> {
    Some(match code {
        UNKNOWN_SERVER_ERROR => {
            "The server experienced an unexpected error when processing the request."
        }
        UNKNOWN_TOPIC_OR_PARTITION => "This server does not host this topic-partition.",
        COORDINATOR_NOT_AVAILABLE => "The coordinator is not available.",
        NOT_COORDINATOR => "This is not the correct coordinator.",
        INVALID_GROUP_ID => "The group id is invalid.",
        TOPIC_AUTHORIZATION_FAILED => "Topic authorization failed.",
        GROUP_AUTHORIZATION_FAILED => "Group authorization failed.",
        UNSUPPORTED_VERSION => "The version of API is not supported.",
        KAFKA_STORAGE_ERROR => "Disk error when trying to access log file on the disk.",
        NON_EMPTY_GROUP => "The group is not empty.",
        GROUP_ID_NOT_FOUND => "The group id does not exist.",
        _ => return None,
    })
}

/// A code's name as Kafka's `Errors` spells it (`NOT_LEADER_OR_FOLLOWER`), from the names
/// kafka-protocol gives them (`NotLeaderOrFollower`); `NONE` for 0, the number for a code
/// neither knows.
pub fn name_of(code: i16) -> String {
    let Some(e) = kafka_protocol::ResponseError::try_from_code(code) else {
        return "NONE".into();
    };
    if let kafka_protocol::ResponseError::Unknown(c) = e {
        return c.to_string();
    }
    let mut out = String::new();
    for (i, ch) in e.to_string().chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// The code of a Kafka error name (any case), or of a number given as text.
pub fn code_by_name(name: &str) -> Option<i16> {
    if let Ok(code) = name.parse::<i16>() {
        return Some(code);
    }
    // Kafka's codes run from -1 up, without gaps today; 200 leaves room for new ones.
    (-1..200).find(|&c| name_of(c).eq_ignore_ascii_case(name) && name_of(c) != c.to_string())
}

pub fn fenced_for_version(code: i16, version: i16, since: i16) -> i16 {
    if code == PRODUCER_FENCED && version < since {
        INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

pub fn share_error_code(e: &crate::share::partition::ShareError) -> i16 {
    use crate::share::partition::ShareError;
    match e {
        ShareError::InvalidRequest(_) => INVALID_REQUEST,
        ShareError::InvalidRecordState(_) => INVALID_RECORD_STATE,
    }
}

pub fn topic_admin_error_code(e: &TopicAdminError) -> i16 {
    match e {
        TopicAdminError::UnknownTopic => UNKNOWN_TOPIC_OR_PARTITION,
        TopicAdminError::UnknownTopicId => UNKNOWN_TOPIC_ID,
        TopicAdminError::SamePartitionCount(_) | TopicAdminError::FewerPartitions { .. } => {
            INVALID_PARTITIONS
        }
        TopicAdminError::InvalidReplicaAssignment(_) => INVALID_REPLICA_ASSIGNMENT,
        TopicAdminError::Placement(p) => placement_error_code(p),
        TopicAdminError::InternalTopic(_) => INVALID_REQUEST,
        TopicAdminError::TooManyPartitions => POLICY_VIOLATION,
        TopicAdminError::InvalidConfig(_) => INVALID_CONFIG,
        TopicAdminError::Alter(crate::config::alter::AlterError::Config(_)) => INVALID_CONFIG,
        TopicAdminError::Alter(crate::config::alter::AlterError::Request(_)) => INVALID_REQUEST,
        TopicAdminError::Storage(e) => metadata_write_error_code(e, KAFKA_STORAGE_ERROR),
    }
}

/// A metadata write that failed: REQUEST_TIMED_OUT where the metadata quorum did not commit it
/// (no leader reachable or leadership lost, or refused as decided on a stale image as many times
/// as the catalog decides again: Kafka's forwarding answers a controller that does not get to a
/// request in time so), else `otherwise` (the handler's code for a write that failed on disk).
pub fn metadata_write_error_code(e: &std::io::Error, otherwise: i16) -> i16 {
    if crate::metadata::is_uncommitted(e) {
        REQUEST_TIMED_OUT
    } else {
        otherwise
    }
}

pub fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::Corrupt(_) => CORRUPT_MESSAGE,
        BatchError::InvalidRecord(_) => INVALID_RECORD,
        BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
        BatchError::UnsupportedCompression => UNSUPPORTED_COMPRESSION_TYPE,
        BatchError::InvalidTimestamp(_) | BatchError::RecordTimestamps(_) => INVALID_TIMESTAMP,
    }
}

pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::Batch(b) => batch_error_code(b),
        LogError::InvalidProducerEpoch => INVALID_PRODUCER_EPOCH,
        LogError::OutOfOrderSequence => OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::UnknownProducerId(_) => UNKNOWN_PRODUCER_ID,
        LogError::RecordListTooLarge => RECORD_LIST_TOO_LARGE,
        LogError::OffsetOutOfRange { .. } | LogError::DeletePastHighWatermark { .. } => {
            OFFSET_OUT_OF_RANGE
        }
        LogError::DeleteNotAllowedByPolicy => POLICY_VIOLATION,
        // Only a replica fetcher appends replicated batches; it never answers a client with this.
        LogError::UnexpectedAppendOffset { .. } => UNKNOWN_SERVER_ERROR,
        LogError::NoKeyOnCompactedTopic { .. } => INVALID_RECORD,
        LogError::InvalidTxnState => INVALID_TXN_STATE,
        LogError::TransactionCoordinatorFenced => TRANSACTION_COORDINATOR_FENCED,
        LogError::FencedLeaderEpoch { .. } => FENCED_LEADER_EPOCH,
        LogError::UnknownLeaderEpoch { .. } => UNKNOWN_LEADER_EPOCH,
        LogError::Storage(_) | LogError::Offline => KAFKA_STORAGE_ERROR,
    }
}

pub fn create_topic_error_code(e: &CreateTopicError) -> i16 {
    match e {
        CreateTopicError::AlreadyExists(_) => TOPIC_ALREADY_EXISTS,
        CreateTopicError::InvalidName(_) | CreateTopicError::Collision(..) => {
            INVALID_TOPIC_EXCEPTION
        }
        CreateTopicError::InvalidPartitions => INVALID_PARTITIONS,
        CreateTopicError::MetadataTopic => INVALID_REQUEST,
        CreateTopicError::Placement(p) => placement_error_code(p),
        CreateTopicError::TooManyPartitions => POLICY_VIOLATION,
        CreateTopicError::InvalidConfig(_) => INVALID_CONFIG,
        CreateTopicError::Storage(e) => metadata_write_error_code(e, KAFKA_STORAGE_ERROR),
    }
}

pub fn placement_error_code(e: &crate::metadata::placement::PlacementError) -> i16 {
    match e {
        crate::metadata::placement::PlacementError::ReplicationFactor(_) => {
            INVALID_REPLICATION_FACTOR
        }
        crate::metadata::placement::PlacementError::Assignment(_) => INVALID_REPLICA_ASSIGNMENT,
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(name_of(NOT_LEADER_OR_FOLLOWER), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(name_of(INVALID_TOPIC_EXCEPTION), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(name_of(UNKNOWN_SERVER_ERROR), "UNKNOWN_SERVER_ERROR");
        assert_eq!(name_of(NONE), "NONE");
        assert_eq!(code_by_name("coordinator_load_in_progress"), Some(14));
        assert_eq!(code_by_name("REQUEST_TIMED_OUT"), Some(7));
        assert_eq!(code_by_name("6"), Some(6));
        assert_eq!(code_by_name("NONE"), Some(0));
        assert_eq!(code_by_name("NO_SUCH_ERROR"), None);
    }

    /// A write the quorum did not commit is retried by the client (REQUEST_TIMED_OUT, as a
    /// Kafka broker's forwarding answers), a disk failure is the handler's own code.
    #[test]
    fn uncommitted_metadata_writes_time_out() {
        use crate::metadata::metadata_log::MetadataLogError;
        let quorum = std::io::Error::other(MetadataLogError::Quorum("no leader".into()));
        let stale = std::io::Error::other(MetadataLogError::StaleImage(7));
        let resigned = std::io::Error::other(MetadataLogError::NotController("resigned".into()));
        let disk = std::io::Error::other(MetadataLogError::Io(std::io::Error::other("EIO")));
        let plain = std::io::Error::other("EIO");
        assert_eq!(
            metadata_write_error_code(&quorum, KAFKA_STORAGE_ERROR),
            REQUEST_TIMED_OUT
        );
        assert_eq!(
            metadata_write_error_code(&stale, KAFKA_STORAGE_ERROR),
            REQUEST_TIMED_OUT
        );
        assert_eq!(
            metadata_write_error_code(&resigned, KAFKA_STORAGE_ERROR),
            REQUEST_TIMED_OUT
        );
        assert_eq!(
            metadata_write_error_code(&disk, KAFKA_STORAGE_ERROR),
            KAFKA_STORAGE_ERROR
        );
        assert_eq!(
            metadata_write_error_code(&plain, UNKNOWN_SERVER_ERROR),
            UNKNOWN_SERVER_ERROR
        );
    }
}
