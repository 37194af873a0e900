//! What a broker asks of the active controller in a quorum of processes (Kafka's broker-to-
//! controller channel): its heartbeats (`broker_heartbeat`) and its partitions' ISR changes
//! (`alter_partition`). A request goes to the quorum's leader over the controller listener
//! (`quorum::transport`), or is answered in-process where this node leads; the leader's
//! `ControllerDuties` (the broker of its process) decides, commits, and answers.

use super::alter_partition::{AlterPartitionRequest, AlterPartitionResponse};
use super::broker_heartbeat::{BrokerHeartbeat, HeartbeatReply};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerRequest {
    BrokerHeartbeat(BrokerHeartbeat),
    AlterPartition(AlterPartitionRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerResponse {
    BrokerHeartbeat(HeartbeatReply),
    AlterPartition(AlterPartitionResponse),
    /// Not answered: NOT_CONTROLLER where this node does not lead (the broker asks the leader
    /// it learns of next), UNKNOWN_SERVER_ERROR where the decision could not be committed.
    Error(i16),
}

impl ControllerResponse {
    /// The error code of the answer (NONE for a request the controller answered in full).
    pub fn error_code(&self) -> i16 {
        match self {
            ControllerResponse::BrokerHeartbeat(r) => r.error_code,
            ControllerResponse::AlterPartition(r) => r.error_code,
            ControllerResponse::Error(code) => *code,
        }
    }
}

/// What the active controller does for the brokers.
pub trait ControllerDuties: Send + Sync {
    /// Answers `request` once what it changes is committed.
    fn handle(&self, request: ControllerRequest) -> ControllerResponse;
}
