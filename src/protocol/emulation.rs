//! `--emulate-kafka-version X.Y` (issue 16): advertise in ApiVersions only what that Apache Kafka
//! release advertised, and serve only that, so that a client's behaviour against an older cluster
//! can be tested against gregor. A client picks each request's version from the intersection of
//! its own range and the broker's (and a 4.4 client talking to an emulated 2.8 broker sends
//! 2.8-era versions), so narrowing the table is all it takes.
//!
//! What each release advertised is generated from Kafka's own message specifications
//! (`kafka_releases.rs`, by `scripts/gen-kafka-api-versions`); gregor then advertises, per API,
//! the intersection of that release's range and its own (`apis::APIS`): an API gregor does not
//! serve stays unadvertised, and where gregor's oldest served version is newer than the
//! release's (Fetch v4 where 2.8 had v0), a client of today never notices. ApiVersions' features
//! (KIP-584) are narrowed to those the release had, so that a client does not take, say,
//! transaction.version 2 from an emulated 3.9 broker.

use kafka_protocol::messages::ApiKey;

use super::apis::VersionRange;
pub use super::kafka_releases::RELEASES;

/// One Kafka release as its broker advertised itself.
#[derive(Debug, PartialEq, Eq)]
pub struct Release {
    /// `MAJOR.MINOR`, as `--emulate-kafka-version` names it.
    pub version: &'static str,
    /// The jar whose message specifications the table was read from.
    pub from_jar: &'static str,
    /// Emulated as a KRaft broker (3.3 on, when KRaft was production-ready) or, before, as a
    /// ZooKeeper broker (their API sets differ a little: `listeners` in the specifications).
    pub kraft: bool,
    /// (API key, min version, max version), in API key order.
    pub apis: &'static [(i16, i16, i16)],
}

/// The first release with each feature gregor advertises (KIP-584 features reached ApiVersions
/// with KRaft brokers; a ZooKeeper broker advertised none by default).
const FEATURE_SINCE: &[(&str, &str)] = &[
    ("metadata.version", "3.3"),
    ("kraft.version", "3.9"),
    ("transaction.version", "4.0"),
    ("group.version", "4.0"),
    ("eligible.leader.replicas.version", "4.0"),
    ("share.version", "4.1"),
    ("streams.version", "4.1"),
];

impl Release {
    /// The release called `version` (`3.9`; a patch release such as `3.9.1` names its minor).
    pub fn named(version: &str) -> Option<&'static Release> {
        let minor = match version.match_indices('.').nth(1) {
            Some((i, _)) => &version[..i],
            None => version,
        };
        RELEASES.iter().find(|r| r.version == minor)
    }

    /// The versions of `api` this release advertised.
    pub fn range(&self, api: ApiKey) -> Option<VersionRange> {
        // Sorted by key (a unit test checks it): asked on every request while emulating.
        let key = api as i16;
        let i = self.apis.binary_search_by_key(&key, |(k, _, _)| *k).ok()?;
        let (_, min, max) = self.apis[i];
        Some(VersionRange { min, max })
    }

    /// Whether this release advertised the feature `name` in ApiVersions.
    pub fn has_feature(&self, name: &str) -> bool {
        FEATURE_SINCE
            .iter()
            .find(|(n, _)| *n == name)
            .is_some_and(|(_, since)| minor_key(self.version) >= minor_key(since))
    }

    /// The names `--emulate-kafka-version` accepts, for its error message.
    pub fn known() -> String {
        RELEASES
            .iter()
            .map(|r| r.version)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn minor_key(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::features::FEATURES;

    #[test]
    fn releases_are_named_by_their_minor() {
        assert_eq!(Release::named("2.8").unwrap().version, "2.8");
        assert_eq!(Release::named("3.9.1").unwrap().version, "3.9");
        assert!(Release::named("2.7").is_none());
        assert!(Release::named("5.0").is_none());
        assert!(Release::named("").is_none());
    }

    #[test]
    fn the_table_has_each_release_in_order_with_sorted_apis() {
        let order: Vec<_> = RELEASES.iter().map(|r| minor_key(r.version)).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(order, sorted);
        assert_eq!(RELEASES.first().unwrap().version, "2.8");
        assert_eq!(RELEASES.last().unwrap().version, "4.4");
        for r in RELEASES {
            assert!(r.apis.windows(2).all(|w| w[0].0 < w[1].0), "{}", r.version);
            assert!(
                r.apis.iter().all(|(_, min, max)| min <= max),
                "{}",
                r.version
            );
        }
    }

    #[test]
    fn known_versions_of_known_releases() {
        // Spot checks against each release's ProduceRequest.json / FetchRequest.json.
        let range = |v: &str, api| Release::named(v).unwrap().range(api).unwrap();
        assert_eq!(
            range("2.8", ApiKey::Produce),
            VersionRange { min: 0, max: 9 }
        );
        assert_eq!(
            range("2.8", ApiKey::Fetch),
            VersionRange { min: 0, max: 12 }
        );
        assert_eq!(range("3.9", ApiKey::Fetch).max, 17);
        // KAFKA-18659: 4.x advertises Produce from v0 although it serves v3+.
        assert_eq!(
            range("4.4", ApiKey::Produce),
            VersionRange { min: 0, max: 13 }
        );
        assert!(Release::named("3.6")
            .unwrap()
            .range(ApiKey::ConsumerGroupHeartbeat)
            .is_none());
        assert!(Release::named("2.8")
            .unwrap()
            .range(ApiKey::DescribeCluster)
            .is_some());
    }

    #[test]
    fn every_feature_gregor_advertises_has_a_first_release() {
        for f in FEATURES {
            assert!(
                FEATURE_SINCE.iter().any(|(n, _)| *n == f.name),
                "{} has no first release in FEATURE_SINCE",
                f.name
            );
        }
        let r39 = Release::named("3.9").unwrap();
        assert!(r39.has_feature("metadata.version"));
        assert!(!r39.has_feature("transaction.version"));
        assert!(!Release::named("3.2")
            .unwrap()
            .has_feature("metadata.version"));
    }
}
