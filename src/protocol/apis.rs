//! The one table of supported APIs and versions. ApiVersions advertises exactly this, and
//! `handle_frame` serves exactly this; every range lies within what kafka-protocol decodes
//! (a unit test checks it).

use kafka_protocol::messages::ApiKey;

use super::emulation::Release;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: i16,
    pub max: i16,
}

impl VersionRange {
    pub fn contains(&self, v: i16) -> bool {
        self.min <= v && v <= self.max
    }
}

const fn r(min: i16, max: i16) -> VersionRange {
    VersionRange { min, max }
}

/// Kafka 4 advertises Produce from v0 (KAFKA-18659: older librdkafka disables compression
/// otherwise) but serves only v3+, closing the connection on v0-2.
pub const PRODUCE_MIN_SERVED: i16 = 3;

/// (API, versions advertised), in API key order. Produce v12+ is TV2's (KIP-890 part 2): a
/// transactional batch adds its partition to the transaction.
pub const APIS: &[(ApiKey, VersionRange)] = &[
    (ApiKey::Produce, r(0, 13)),
    (ApiKey::Fetch, r(4, 17)),
    (ApiKey::ListOffsets, r(1, 9)),
    (ApiKey::Metadata, r(0, 12)),
    (ApiKey::OffsetCommit, r(2, 9)),
    (ApiKey::OffsetFetch, r(1, 9)),
    (ApiKey::FindCoordinator, r(0, 6)),
    (ApiKey::JoinGroup, r(0, 9)),
    (ApiKey::Heartbeat, r(0, 4)),
    (ApiKey::LeaveGroup, r(0, 5)),
    (ApiKey::SyncGroup, r(0, 5)),
    (ApiKey::DescribeGroups, r(0, 6)),
    (ApiKey::ListGroups, r(0, 5)),
    (ApiKey::SaslHandshake, r(0, 1)),
    (ApiKey::ApiVersions, r(0, 4)),
    (ApiKey::CreateTopics, r(2, 7)),
    (ApiKey::DeleteTopics, r(1, 6)),
    (ApiKey::DeleteRecords, r(0, 2)),
    (ApiKey::InitProducerId, r(0, 5)),
    // Kafka 4 removed v0-1 (KIP-896); the Java consumer validates positions with it only when
    // the broker advertises v3+.
    (ApiKey::OffsetForLeaderEpoch, r(2, 4)),
    (ApiKey::AddPartitionsToTxn, r(0, 5)),
    (ApiKey::AddOffsetsToTxn, r(0, 4)),
    // v5 is KIP-890 part 2 (TV2): every end bumps the epoch, the response carries it.
    (ApiKey::EndTxn, r(0, 5)),
    // kafka-transactions.sh abort; v0 was removed in Kafka 4.
    (ApiKey::WriteTxnMarkers, r(1, 1)),
    // v5 is KIP-890 part 2 (TV2): the offsets partition joins the transaction implicitly. v6
    // (topic ids, KIP-1319) is past what kafka-protocol decodes.
    (ApiKey::TxnOffsetCommit, r(0, 5)),
    // kafka-acls.sh; SECURITY_DISABLED without an authorizer, as Kafka (v0 was removed in 4).
    (ApiKey::DescribeAcls, r(1, 3)),
    (ApiKey::CreateAcls, r(1, 3)),
    (ApiKey::DeleteAcls, r(1, 3)),
    (ApiKey::DescribeConfigs, r(1, 4)),
    (ApiKey::AlterConfigs, r(0, 2)),
    (ApiKey::DescribeLogDirs, r(1, 4)),
    (ApiKey::SaslAuthenticate, r(0, 2)),
    (ApiKey::CreatePartitions, r(0, 3)),
    (ApiKey::DeleteGroups, r(0, 2)),
    // kafka-leader-election.sh (preferred from v0, unclean from v1).
    (ApiKey::ElectLeaders, r(0, 2)),
    (ApiKey::IncrementalAlterConfigs, r(0, 1)),
    // kafka-reassign-partitions.sh; v1 is KIP-860 (allow_replication_factor_change).
    (ApiKey::AlterPartitionReassignments, r(0, 1)),
    (ApiKey::ListPartitionReassignments, r(0, 0)),
    (ApiKey::OffsetDelete, r(0, 0)),
    // kafka-configs --entity-type users/clients: client quotas (the byte rates are enforced,
    // `server::client_quotas`), then SCRAM credentials (both in the metadata log).
    (ApiKey::DescribeClientQuotas, r(0, 1)),
    (ApiKey::AlterClientQuotas, r(0, 1)),
    (ApiKey::DescribeUserScramCredentials, r(0, 0)),
    (ApiKey::AlterUserScramCredentials, r(0, 0)),
    // kafka-metadata-quorum.sh describe --status / --replication.
    (ApiKey::DescribeQuorum, r(0, 2)),
    // kafka-features.sh upgrade / downgrade (describe reads ApiVersions).
    (ApiKey::UpdateFeatures, r(0, 2)),
    (ApiKey::DescribeCluster, r(0, 2)),
    (ApiKey::DescribeProducers, r(0, 0)),
    (ApiKey::DescribeTransactions, r(0, 0)),
    (ApiKey::ListTransactions, r(0, 1)),
    (ApiKey::ConsumerGroupHeartbeat, r(0, 1)),
    (ApiKey::ConsumerGroupDescribe, r(0, 1)),
    (ApiKey::DescribeTopicPartitions, r(0, 0)),
    // KIP-932 share groups, served while share.version >= 1 (UNSUPPORTED_VERSION otherwise, as
    // Kafka 4.4). v0 was 4.0's early access; ShareFetch/ShareAcknowledge v2 (KIP-1206
    // acquire modes, KIP-1222 RENEW) are past what kafka-protocol decodes.
    (ApiKey::ShareGroupHeartbeat, r(1, 1)),
    (ApiKey::ShareGroupDescribe, r(1, 1)),
    (ApiKey::ShareFetch, r(1, 1)),
    (ApiKey::ShareAcknowledge, r(1, 1)),
    // KIP-1071 streams groups, served while streams.version >= 1 (UNSUPPORTED_VERSION otherwise,
    // as Kafka 4.4). The vendored crate has them from Kafka 4.4's specs (PATCHED.md).
    (ApiKey::StreamsGroupHeartbeat, r(0, 1)),
    (ApiKey::StreamsGroupDescribe, r(0, 1)),
    // kafka-share-groups --describe / --reset-offsets / --delete-offsets and the admin client's
    // share-group offset calls (KIP-932), served while share.version >= 1 as the other share
    // APIs. DescribeShareGroupOffsets v1 (the lag) is vendored from Kafka 4.4's spec.
    (ApiKey::DescribeShareGroupOffsets, r(0, 1)),
    (ApiKey::AlterShareGroupOffsets, r(0, 0)),
    (ApiKey::DeleteShareGroupOffsets, r(0, 0)),
];

/// gregor's own range for `api` (what it serves without `--emulate-kafka-version`).
pub fn supported(api: ApiKey) -> Option<VersionRange> {
    // Asked on every request: one index instead of a scan of the table.
    let key = usize::try_from(api as i16).ok()?;
    BY_KEY.get(key).copied().flatten()
}

/// The highest API key Kafka defines, and more: room for the keys a newer crate adds.
const KEYS: usize = 128;

/// `APIS` indexed by API key.
static BY_KEY: [Option<VersionRange>; KEYS] = {
    let mut table = [None; KEYS];
    let mut i = 0;
    while i < APIS.len() {
        table[APIS[i].0 as i16 as usize] = Some(APIS[i].1);
        i += 1;
    }
    table
};

/// The versions of `api` advertised and served: gregor's own range, narrowed to what the
/// emulated Kafka release advertised (`--emulate-kafka-version`, see `emulation`); `None` when
/// nothing is left.
pub fn served(api: ApiKey, emulated: Option<&Release>) -> Option<VersionRange> {
    let own = supported(api)?;
    let Some(release) = emulated else {
        return Some(own);
    };
    let theirs = release.range(api)?;
    let range = r(own.min.max(theirs.min), own.max.min(theirs.max));
    (range.min <= range.max).then_some(range)
}

/// Every API with the versions `served` gives it, in API key order: ApiVersions' table.
pub fn advertised(emulated: Option<&Release>) -> impl Iterator<Item = (ApiKey, VersionRange)> + '_ {
    APIS.iter()
        .filter_map(move |(api, _)| served(*api, emulated).map(|range| (*api, range)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    fn decodable(api: ApiKey) -> VersionRange {
        let v = match api {
            ApiKey::Produce => ProduceRequest::VERSIONS,
            ApiKey::Fetch => FetchRequest::VERSIONS,
            ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
            ApiKey::Metadata => MetadataRequest::VERSIONS,
            ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
            ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
            ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
            ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
            ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
            ApiKey::DescribeAcls => DescribeAclsRequest::VERSIONS,
            ApiKey::CreateAcls => CreateAclsRequest::VERSIONS,
            ApiKey::DeleteAcls => DeleteAclsRequest::VERSIONS,
            ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
            ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
            ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
            ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
            ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
            ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
            ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
            ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
            ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
            ApiKey::OffsetDelete => OffsetDeleteRequest::VERSIONS,
            ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::VERSIONS,
            ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::VERSIONS,
            ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
            ApiKey::DeleteRecords => DeleteRecordsRequest::VERSIONS,
            ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::VERSIONS,
            ApiKey::AlterConfigs => AlterConfigsRequest::VERSIONS,
            ApiKey::DescribeLogDirs => DescribeLogDirsRequest::VERSIONS,
            ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
            ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::VERSIONS,
            ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
            ApiKey::UpdateFeatures => UpdateFeaturesRequest::VERSIONS,
            ApiKey::DescribeQuorum => DescribeQuorumRequest::VERSIONS,
            ApiKey::ElectLeaders => ElectLeadersRequest::VERSIONS,
            ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::VERSIONS,
            ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::VERSIONS,
            ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::VERSIONS,
            ApiKey::SaslHandshake => SaslHandshakeRequest::VERSIONS,
            ApiKey::SaslAuthenticate => SaslAuthenticateRequest::VERSIONS,
            ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::VERSIONS,
            ApiKey::DescribeProducers => DescribeProducersRequest::VERSIONS,
            ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::VERSIONS,
            ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::VERSIONS,
            ApiKey::EndTxn => EndTxnRequest::VERSIONS,
            ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::VERSIONS,
            ApiKey::DescribeTransactions => DescribeTransactionsRequest::VERSIONS,
            ApiKey::ListTransactions => ListTransactionsRequest::VERSIONS,
            ApiKey::DescribeClientQuotas => DescribeClientQuotasRequest::VERSIONS,
            ApiKey::AlterClientQuotas => AlterClientQuotasRequest::VERSIONS,
            ApiKey::DescribeUserScramCredentials => DescribeUserScramCredentialsRequest::VERSIONS,
            ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::VERSIONS,
            ApiKey::ShareGroupHeartbeat => ShareGroupHeartbeatRequest::VERSIONS,
            ApiKey::ShareGroupDescribe => ShareGroupDescribeRequest::VERSIONS,
            ApiKey::ShareFetch => ShareFetchRequest::VERSIONS,
            ApiKey::ShareAcknowledge => ShareAcknowledgeRequest::VERSIONS,
            ApiKey::StreamsGroupHeartbeat => StreamsGroupHeartbeatRequest::VERSIONS,
            ApiKey::StreamsGroupDescribe => StreamsGroupDescribeRequest::VERSIONS,
            ApiKey::DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest::VERSIONS,
            ApiKey::AlterShareGroupOffsets => AlterShareGroupOffsetsRequest::VERSIONS,
            ApiKey::DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest::VERSIONS,
            other => panic!("{other:?} advertised but not checked here"),
        };
        r(v.min, v.max)
    }

    #[test]
    fn advertised_is_within_decodable() {
        for (api, range) in APIS {
            let d = decodable(*api);
            let min = if *api == ApiKey::Produce {
                PRODUCE_MIN_SERVED
            } else {
                range.min
            };
            assert!(
                min >= d.min && range.max <= d.max,
                "{api:?} {range:?} vs {d:?}"
            );
        }
    }

    #[test]
    fn emulation_narrows_to_the_release_and_keeps_produce_v0_advertised() {
        let r28 = Release::named("2.8").unwrap();
        // 2.8: Produce 0-9, Fetch 0-12 (gregor: Fetch from v4), no ConsumerGroupHeartbeat.
        assert_eq!(served(ApiKey::Produce, Some(r28)), Some(r(0, 9)));
        assert_eq!(served(ApiKey::Fetch, Some(r28)), Some(r(4, 12)));
        assert_eq!(served(ApiKey::ConsumerGroupHeartbeat, Some(r28)), None);
        assert!(advertised(Some(r28)).all(|(api, _)| r28.range(api).is_some()));
        // Emulating 4.4 changes nothing gregor advertises today but what 4.4 lacks.
        let r44 = Release::named("4.4").unwrap();
        for (api, own) in APIS {
            let theirs = r44
                .range(*api)
                .expect("Kafka 4.4 has every API gregor serves");
            assert_eq!(
                served(*api, Some(r44)).unwrap().max,
                own.max.min(theirs.max)
            );
        }
        assert_eq!(advertised(None).count(), APIS.len());
    }

    #[test]
    fn sasl_versions_are_the_same_in_every_release() {
        // The SASL exchange checks versions before the broker's settings are at hand.
        for release in super::super::emulation::RELEASES {
            for api in [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate] {
                assert_eq!(
                    served(api, Some(release)),
                    supported(api),
                    "{}",
                    release.version
                );
            }
        }
    }

    #[test]
    fn table_is_sorted_and_unique() {
        let keys: Vec<i16> = APIS.iter().map(|(k, _)| *k as i16).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(keys, sorted);
    }
}
