//! SaslAuthenticate (key 36) on a listener without SASL: Kafka's KafkaApis treats it as coming
//! after authentication has already finished (a PLAINTEXT connection is authenticated from the
//! start), answering ILLEGAL_SASL_STATE with this message and keeping the connection open
//! (calibrated on Kafka 4.4, v0-2: no auth bytes, session lifetime 0).

use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;

const ALREADY_AUTHENTICATED: &str =
    "SaslAuthenticate request received after successful authentication";

pub fn handle(
    _ctx: &RequestContext<'_>,
    _req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(errors::ILLEGAL_SASL_STATE)
        .with_error_message(Some(StrBytes::from_static_str(ALREADY_AUTHENTICATED)))
}
