//! ApiVersions (key 18): the first request on every connection. Advertises the API table, and
//! from v3 on the features (KIP-584): every feature of `metadata::features` with the levels
//! gregor supports, and those the metadata log finalized (transaction.version 2, KIP-890 part 2;
//! group.version 1, ...), as a Kafka 4.4 broker says them
//! (DefaultApiVersionManager.apiVersionResponse). `kafka-features.sh describe` reads these.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::apis;
use super::emulation::Release;
use super::errors;
use super::RequestContext;
use crate::metadata::features::FEATURES;
use crate::metadata::image::MetadataImage;

/// First version with features.
const FEATURES_VERSION: i16 = 3;
/// Below this version Kafka leaves out the supported features whose minimum is 0 (the v3
/// clients' parsers refuse a 0 minimum: ApiVersionsResponse "alterFeatureLevel0").
const FEATURE_LEVEL_0_VERSION: i16 = 4;

pub fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    let emulated = ctx.broker.config.emulate_kafka_version;
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_list(emulated));
    if ctx.api_version >= FEATURES_VERSION {
        // The epoch of the finalized features is the metadata offset they are as of
        // (FinalizedFeatures.finalizedFeaturesEpoch); a client re-reads them when it grows.
        add_features(
            &mut resp,
            ctx.api_version,
            &ctx.broker.catalog.image(),
            emulated,
        );
    }
    // v3+ requests name the client software; Kafka rejects names outside its pattern.
    if ctx.api_version >= 3
        && !(valid_software_token(req.client_software_name.as_str())
            && valid_software_token(req.client_software_version.as_str()))
    {
        resp.error_code = errors::INVALID_REQUEST;
    }
    resp
}

/// The answer to an ApiVersions request at a version we do not know (KIP-511): v0 body,
/// UNSUPPORTED_VERSION, and only ApiVersions' own range, so the client retries within it.
pub fn unsupported_version_response(emulated: Option<&Release>) -> ApiVersionsResponse {
    let own = apis::served(ApiKey::ApiVersions, emulated).map(|r| {
        ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(r.min)
            .with_max_version(r.max)
    });
    ApiVersionsResponse::default()
        .with_error_code(errors::UNSUPPORTED_VERSION)
        .with_api_keys(own.into_iter().collect())
}

/// The supported and finalized features (ApiVersionsResponse.Builder.build): a supported
/// feature with minimum 0 only from v4 on; a finalized level as min = max = level, none for 0.
/// Their epoch is the metadata offset they are as of (FinalizedFeatures.finalizedFeaturesEpoch):
/// a client re-reads them when it grows. An emulated release advertises only the features it
/// had.
fn add_features(
    resp: &mut ApiVersionsResponse,
    version: i16,
    image: &MetadataImage,
    emulated: Option<&Release>,
) {
    let had = |name: &str| emulated.is_none_or(|r| r.has_feature(name));
    resp.supported_features = FEATURES
        .iter()
        .filter(|f| had(f.name))
        .filter(|f| f.supported.0 != 0 || version >= FEATURE_LEVEL_0_VERSION)
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.supported.0)
                .with_max_version(f.supported.1)
        })
        .collect();
    resp.finalized_features = image
        .features
        .iter()
        .filter(|(name, &level)| level != 0 && had(name))
        .map(|(name, &level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    resp.finalized_features_epoch = image.provenance.last_offset.max(0);
}

fn api_list(emulated: Option<&Release>) -> Vec<ApiVersion> {
    apis::advertised(emulated)
        .map(|(key, r)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` (ApiVersionsRequest.isValid).
fn valid_software_token(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            edge(f) && edge(l) && b.iter().all(|&c| edge(c) || c == b'-' || c == b'.')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_kafka_4_4s() {
        let mut image = MetadataImage::empty();
        image.provenance.last_offset = 7;
        image.features = std::sync::Arc::new(
            [("metadata.version", 14), ("transaction.version", 2)]
                .map(|(n, l)| (n.to_string(), l))
                .into(),
        );
        let features = |version| {
            let mut resp = ApiVersionsResponse::default();
            add_features(&mut resp, version, &image, None);
            resp
        };
        let v4 = features(4);
        let supported: Vec<_> = v4
            .supported_features
            .iter()
            .map(|s| (s.name.as_str(), s.min_version, s.max_version))
            .collect();
        assert_eq!(supported.len(), FEATURES.len());
        assert!(supported.contains(&("transaction.version", 0, 2)));
        assert!(supported.contains(&("metadata.version", 14, 14)));
        assert!(supported.contains(&("share.version", 0, 1)));
        let finalized: Vec<_> = v4
            .finalized_features
            .iter()
            .map(|f| (f.name.as_str(), f.min_version_level, f.max_version_level))
            .collect();
        assert_eq!(
            finalized,
            [("metadata.version", 14, 14), ("transaction.version", 2, 2)]
        );
        assert_eq!(v4.finalized_features_epoch, 7);
        let v3 = features(3);
        let names: Vec<_> = v3
            .supported_features
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["metadata.version"],
            "a 0 minimum is left out below v4"
        );
        assert_eq!(v3.finalized_features, v4.finalized_features);
    }

    #[test]
    fn software_tokens() {
        assert!(valid_software_token("apache-kafka-java"));
        assert!(valid_software_token("3.9.0"));
        assert!(valid_software_token("a"));
        assert!(!valid_software_token(""));
        assert!(!valid_software_token("-x"));
        assert!(!valid_software_token("x y"));
    }
}
