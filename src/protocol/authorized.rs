//! What each resource supports without an authorizer, reported as authorized operations when a
//! client asks (Metadata, DescribeGroups, ConsumerGroupDescribe, DescribeCluster): bit n set for
//! AclOperation code n (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
//! CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).

const fn bits(ops: &[u8]) -> i32 {
    let mut v = 0;
    let mut i = 0;
    while i < ops.len() {
        v |= 1 << ops[i];
        i += 1;
    }
    v
}

/// AclEntry.supportedOperations(TOPIC).
pub const TOPIC_OPERATIONS: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// AclEntry.supportedOperations(CLUSTER).
pub const CLUSTER_OPERATIONS: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);
/// AclEntry.supportedOperations(GROUP): group configs (KIP-848) added DESCRIBE_CONFIGS and
/// ALTER_CONFIGS.
pub const GROUP_OPERATIONS: i32 = bits(&[3, 6, 8, 10, 11]);
