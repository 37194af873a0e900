//! Cluster features (KIP-584, Kafka's `Feature` and `FeatureControlManager`): the levels this
//! broker supports, as ApiVersions v3+ advertises them, and the finalized levels, which live in
//! the metadata log as FeatureLevelRecords (a new log starts with each feature's bootstrap level,
//! as `kafka-storage format` writes them) and which UpdateFeatures (key 57) changes.
//!
//! Each feature is advertised with the range Kafka 4.4 gives it wherever gregor serves every
//! level of it to clients, and otherwise with the levels gregor implements; UpdateFeatures
//! accepts only the levels gregor can run at (`settable`), refusing others with Kafka's
//! INVALID_UPDATE_VERSION and its message ("Local controller N only supports versions a-b", "...
//! does not support this feature"). `kafka-features.sh describe` reads all of this through
//! ApiVersions.

use super::image::MetadataImage;
use super::records::{MetadataRecord, METADATA_VERSION, METADATA_VERSION_FEATURE};
use crate::txn::{TRANSACTION_VERSION_FEATURE, TRANSACTION_VERSION_SUPPORTED};

/// One feature gregor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSpec {
    pub name: &'static str,
    /// Advertised in ApiVersions' supported features.
    pub supported: (i16, i16),
    /// The levels UpdateFeatures may finalize: what gregor behaves as at run time.
    pub settable: (i16, i16),
    /// Finalized in a new metadata log (0: not finalized).
    pub bootstrap: i16,
}

/// The features, in the order Kafka lists them (Feature.PRODUCTION_FEATURES after
/// metadata.version).
pub const FEATURES: &[FeatureSpec] = &[
    // Records are written at 3.6-IV2 (see records::METADATA_VERSION) and no other level.
    FeatureSpec {
        name: METADATA_VERSION_FEATURE,
        supported: (METADATA_VERSION, METADATA_VERSION),
        settable: (METADATA_VERSION, METADATA_VERSION),
        bootstrap: METADATA_VERSION,
    },
    // A static quorum of this process's own node (KIP-853's dynamic quorum is level 1).
    not_implemented("kraft.version"),
    // Clients of every level are served (EndTxn v0-5); the coordinator's own aborts follow
    // TV2, so 2 is the level it runs at.
    FeatureSpec {
        name: TRANSACTION_VERSION_FEATURE,
        supported: TRANSACTION_VERSION_SUPPORTED,
        settable: (
            crate::txn::FINALIZED_TRANSACTION_VERSION,
            crate::txn::FINALIZED_TRANSACTION_VERSION,
        ),
        bootstrap: crate::txn::FINALIZED_TRANSACTION_VERSION,
    },
    // Level 1: KIP-848 consumer groups (ConsumerGroupHeartbeat), always on in gregor.
    FeatureSpec {
        name: "group.version",
        supported: (0, 1),
        settable: (1, 1),
        bootstrap: 1,
    },
    // KIP-966 eligible leader replicas: not implemented.
    not_implemented("eligible.leader.replicas.version"),
    // KIP-932 share groups. Kafka 4.4 supports 0-2 (1: share groups, 2: KIP-1191 dead-letter
    // queues) and bootstraps 2 with a 4.4 metadata version; gregor serves share groups without
    // dead-letter topics, so it bootstraps 1 (an older log is upgraded to it at start-up), and 0
    // turns them off (the share APIs then answer UNSUPPORTED_VERSION, as Kafka's do).
    FeatureSpec {
        name: crate::share::SHARE_VERSION_FEATURE,
        supported: (0, 1),
        settable: (0, 1),
        bootstrap: 1,
    },
    // KIP-1071 streams groups (StreamsGroupHeartbeat, StreamsGroupDescribe): level 1 serves
    // them, as Kafka 4.4 does from its 4.2 metadata version on; 0 turns them off (the streams
    // APIs then answer UNSUPPORTED_VERSION, as Kafka's do).
    FeatureSpec {
        name: crate::protocol::streams_group_heartbeat::STREAMS_VERSION_FEATURE,
        supported: (0, 1),
        settable: (0, 1),
        bootstrap: 1,
    },
];

/// A feature Kafka 4.4 has and gregor does not: supported at level 0 only, never finalized.
const fn not_implemented(name: &'static str) -> FeatureSpec {
    FeatureSpec {
        name,
        supported: (0, 0),
        settable: (0, 0),
        bootstrap: 0,
    }
}

pub fn spec(name: &str) -> Option<&'static FeatureSpec> {
    FEATURES.iter().find(|f| f.name == name)
}

/// The finalized level of a feature (0 when it has none).
pub fn finalized(image: &MetadataImage, name: &str) -> i16 {
    image.features.get(name).copied().unwrap_or(0)
}

/// FeatureLevelRecords for the features a metadata log has not finalized yet but should be at:
/// a new log's bootstrap, and an older log's upgrade (it finalized metadata.version only, while
/// gregor already behaved at the other levels).
pub fn bootstrap_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    FEATURES
        .iter()
        .filter(|f| f.bootstrap != 0 && !image.features.contains_key(f.name))
        .map(|f| MetadataRecord::FeatureLevel {
            name: f.name.to_string(),
            feature_level: f.bootstrap,
        })
        .collect()
}

/// FeatureUpdate.UpgradeType codes.
pub const UPGRADE: i8 = 1;
pub const SAFE_DOWNGRADE: i8 = 2;
pub const UNSAFE_DOWNGRADE: i8 = 3;

/// One requested change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureUpdate {
    pub feature: String,
    pub level: i16,
    pub upgrade_type: i8,
}

/// FeatureControlManager.updateFeatures: the records to commit, or the first update's error
/// message (INVALID_UPDATE_VERSION); all or nothing.
pub fn update(
    image: &MetadataImage,
    node_id: i32,
    updates: &[FeatureUpdate],
) -> Result<Vec<MetadataRecord>, String> {
    updates
        .iter()
        .map(|u| {
            check(image, node_id, u)
                .map(|()| MetadataRecord::FeatureLevel {
                    name: u.feature.clone(),
                    feature_level: u.level,
                })
                .map_err(|why| {
                    format!(
                        "Invalid update version {} for feature {}. {why}",
                        u.level, u.feature
                    )
                })
        })
        .collect()
}

fn check(image: &MetadataImage, node_id: i32, u: &FeatureUpdate) -> Result<(), String> {
    if !(UPGRADE..=UNSAFE_DOWNGRADE).contains(&u.upgrade_type) {
        return Err("The controller does not support the given upgrade type.".into());
    }
    if u.level < 0 {
        return Err("A feature version cannot be less than 0.".into());
    }
    // An unknown feature is supported at level 0 only (QuorumFeatures.DISABLED).
    let (min, max) = spec(&u.feature).map_or((0, 0), |f| f.settable);
    if !(min..=max).contains(&u.level) {
        let who = format!("Local controller {node_id}");
        return Err(if max == 0 {
            format!("{who} does not support this feature.")
        } else {
            format!("{who} only supports versions {min}-{max}")
        });
    }
    let current = finalized(image, &u.feature);
    if u.level < current && u.upgrade_type == UPGRADE {
        return Err(
            "Can't downgrade the version of this feature without setting the upgrade \
                    type to either safe or unsafe downgrade."
                .into(),
        );
    }
    if u.level > current && u.upgrade_type != UPGRADE {
        return Err("Can't downgrade to a newer version.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new log's image: its bootstrap levels finalized.
    fn image() -> MetadataImage {
        let mut image = MetadataImage::empty();
        let levels = bootstrap_records(&image)
            .into_iter()
            .filter_map(|r| match r {
                MetadataRecord::FeatureLevel {
                    name,
                    feature_level,
                } => Some((name, feature_level)),
                _ => None,
            });
        image.features = std::sync::Arc::new(levels.collect());
        image
    }

    fn upd(feature: &str, level: i16, upgrade_type: i8) -> FeatureUpdate {
        FeatureUpdate {
            feature: feature.into(),
            level,
            upgrade_type,
        }
    }

    #[test]
    fn a_new_log_finalizes_what_gregor_runs_at() {
        let image = image();
        assert_eq!(finalized(&image, "metadata.version"), 14);
        assert_eq!(finalized(&image, "transaction.version"), 2);
        assert_eq!(finalized(&image, "group.version"), 1);
        assert_eq!(finalized(&image, "share.version"), 1);
        assert!(bootstrap_records(&image).is_empty());
        for f in FEATURES {
            assert!(
                f.supported.0 <= f.settable.0 && f.settable.1 <= f.supported.1,
                "{f:?}"
            );
            assert!(
                (f.settable.0..=f.settable.1).contains(&f.bootstrap),
                "{f:?}"
            );
        }
    }

    #[test]
    fn updates_are_refused_as_kafkas_controller_refuses_them() {
        let image = image();
        let err = |u| update(&image, 1, &[u]).unwrap_err();
        assert_eq!(
            err(upd("eligible.leader.replicas.version", 1, UPGRADE)),
            "Invalid update version 1 for feature eligible.leader.replicas.version. Local \
             controller 1 does not support this feature."
        );
        assert_eq!(
            err(upd("transaction.version", 1, SAFE_DOWNGRADE)),
            "Invalid update version 1 for feature transaction.version. Local controller 1 only \
             supports versions 2-2"
        );
        assert!(err(upd("group.version", -1, UPGRADE)).contains("cannot be less than 0"));
        assert!(err(upd("group.version", 1, 0)).contains("upgrade type"));
        assert!(err(upd("no.such.feature", 3, UPGRADE)).contains("does not support this feature"));
        // The levels gregor is at are accepted (a no-op), also all together; one refusal fails all.
        let ok = [
            upd("group.version", 1, UPGRADE),
            upd("share.version", 0, SAFE_DOWNGRADE),
        ];
        assert_eq!(update(&image, 1, &ok).map(|r| r.len()), Ok(2));
        let mixed = [
            upd("group.version", 1, UPGRADE),
            upd("share.version", 2, UPGRADE),
        ];
        assert!(update(&image, 1, &mixed).is_err());
    }
}
