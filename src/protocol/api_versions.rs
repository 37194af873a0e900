//! ApiVersions (key 18): the first request on every connection. Advertises the API table.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::apis::{self, APIS};
use super::errors;
use super::RequestContext;

pub fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_list());
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
    fn software_tokens() {
        assert!(valid_software_token("apache-kafka-java"));
        assert!(valid_software_token("3.9.0"));
        assert!(valid_software_token("a"));
        assert!(!valid_software_token(""));
        assert!(!valid_software_token("-x"));
        assert!(!valid_software_token("x y"));
    }
}
