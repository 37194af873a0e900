//! Share groups (KIP-932, "queues for Kafka"): the members of a share group read the same
//! partitions cooperatively, and the broker tracks, per group and partition, which records are
//! acquired by whom, acknowledged, released or rejected (`partition`, after Kafka's
//! `SharePartition`), and what each consumer's ShareFetch session holds (`session`, after
//! `ShareSessionCache`), and the share-partition state's records in `__share_group_state`
//! (`state_records`), kept by the share coordinator's shard on the coordinator runtime
//! (`coordinator`). The share group's membership is in `crate::group::share`.
//!
//! Kafka 4.4 turns share groups on with the `share.version` feature (level 1 serves share groups,
//! level 2 adds KIP-1191 dead-letter queues; a 4.4 metadata version bootstraps level 2). The
//! broker configs `group.share.enable` and `group.coordinator.rebalance.protocols=...,share` of
//! early-access releases are gone: with `share.version` 0 Kafka still lists the share APIs in
//! ApiVersions and answers each with UNSUPPORTED_VERSION.

pub mod coordinator;
pub mod manager;
pub mod partition;
pub mod session;
pub mod state_records;

/// The `share.version` feature (Kafka's `ShareVersion.FEATURE_NAME`).
pub const SHARE_VERSION_FEATURE: &str = "share.version";

/// `ShareVersion.supportsShareGroups`: share groups are served from level 1.
pub fn share_groups_enabled(share_version: i16) -> bool {
    share_version >= 1
}
