//! ApiVersions (key 18): the first request on every connection. Advertises the API table, and
//! from v3 on the features (KIP-584): only `transaction.version`, the one feature whose levels
//! gregor implements, supported 0-2 and finalized at 2 (KIP-890 part 2), as a Kafka 4.4 broker
//! says it (DefaultApiVersionManager.apiVersionResponse).

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::apis::{self, APIS};
use super::errors;
use super::RequestContext;
use crate::txn::{
    FINALIZED_TRANSACTION_VERSION, TRANSACTION_VERSION_FEATURE, TRANSACTION_VERSION_SUPPORTED,
};

/// First version with features.
const FEATURES_VERSION: i16 = 3;
/// Below this version Kafka leaves out the supported features whose minimum is 0 (the v3
/// clients' parsers refuse a 0 minimum: ApiVersionsResponse "alterFeatureLevel0").
const FEATURE_LEVEL_0_VERSION: i16 = 4;

pub fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_list());
    if ctx.api_version >= FEATURES_VERSION {
        // The epoch of the finalized features is the metadata offset they are as of
        // (FinalizedFeatures.finalizedFeaturesEpoch); a client re-reads them when it grows.
        let epoch = ctx.broker.catalog.image().provenance.last_offset.max(0);
        add_features(&mut resp, ctx.api_version, epoch);
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
pub fn unsupported_version_response() -> ApiVersionsResponse {
    let own = apis::supported(ApiKey::ApiVersions).map(|r| {
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
fn add_features(resp: &mut ApiVersionsResponse, version: i16, finalized_epoch: i64) {
    let (min, max) = TRANSACTION_VERSION_SUPPORTED;
    let name = || StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE);
    if min != 0 || version >= FEATURE_LEVEL_0_VERSION {
        resp.supported_features = vec![SupportedFeatureKey::default()
            .with_name(name())
            .with_min_version(min)
            .with_max_version(max)];
    }
    if FINALIZED_TRANSACTION_VERSION != 0 {
        resp.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(name())
            .with_min_version_level(FINALIZED_TRANSACTION_VERSION)
            .with_max_version_level(FINALIZED_TRANSACTION_VERSION)];
    }
    resp.finalized_features_epoch = finalized_epoch;
}

fn api_list() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|(key, r)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
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
        let features = |version| {
            let mut resp = ApiVersionsResponse::default();
            add_features(&mut resp, version, 7);
            resp
        };
        let v4 = features(4);
        assert_eq!(v4.supported_features.len(), 1);
        let s = &v4.supported_features[0];
        assert_eq!(
            (s.name.as_str(), s.min_version, s.max_version),
            ("transaction.version", 0, 2)
        );
        let f = &v4.finalized_features[0];
        assert_eq!(
            (f.name.as_str(), f.min_version_level, f.max_version_level),
            ("transaction.version", 2, 2)
        );
        assert_eq!(v4.finalized_features_epoch, 7);
        let v3 = features(3);
        assert!(
            v3.supported_features.is_empty(),
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
