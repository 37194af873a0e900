//! DescribeClientQuotas (key 48): gregor enforces no client quotas (produce/fetch byte rates,
//! request percentage), so no entity has any and every valid filter matches nothing. Answered
//! so that `kafka-configs --entity-type users --describe`, which asks for quotas before it
//! shows SCRAM credentials, works. The filter is checked as Kafka's ClientQuotasImage.describe
//! checks it, with its errors (INVALID_REQUEST, UNSUPPORTED_VERSION for an unknown entity type).

use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::security::authorizer::AclOperation;

const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;

fn check_filter(req: &DescribeClientQuotasRequest) -> Result<(), (i16, String)> {
    let invalid = |m: String| (errors::INVALID_REQUEST, m);
    let mut seen: Vec<&str> = Vec::new();
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if seen.contains(&t) {
            return Err(invalid(format!(
                "Entity type {t} cannot appear more than once in the filter."
            )));
        }
        if !["ip", "user", "client-id"].contains(&t) {
            return Err((
                errors::UNSUPPORTED_VERSION,
                format!("Unsupported entity type {t}"),
            ));
        }
        match (c.match_type, &c._match) {
            (MATCH_TYPE_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_TYPE_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            (MATCH_TYPE_EXACT..=MATCH_TYPE_SPECIFIED, _) => {}
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
        seen.push(t);
    }
    if seen.contains(&"ip") && (seen.contains(&"user") || seen.contains(&"client-id")) {
        return Err(invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into()));
    }
    Ok(())
}

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // DESCRIBE_CONFIGS on the cluster (KafkaApis.handleDescribeClientQuotasRequest).
    let checked = if ctx.authorize_cluster(AclOperation::DescribeConfigs) {
        check_filter(&req)
    } else {
        Err((
            errors::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".to_string(),
        ))
    };
    match checked {
        Ok(()) => DescribeClientQuotasResponse::default()
            .with_error_message(None)
            .with_entries(Some(Vec::new())),
        Err((code, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None),
    }
}
