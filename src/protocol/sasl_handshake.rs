//! SaslHandshake (key 17) on a listener without SASL: gregor's listeners are all PLAINTEXT, and
//! Kafka's KafkaApis answers a handshake that reaches it there (SASL listeners consume it in
//! SaslServerAuthenticator before it gets that far) with ILLEGAL_SASL_STATE and no mechanisms,
//! leaving the connection open. A SASL-configured client then fails at once with an
//! authentication error instead of waiting out its connection timeout, as it did when gregor
//! closed the connection (calibrated on Kafka 4.4: error 34, empty mechanism list, v0 and v1).

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::errors;
use super::RequestContext;

pub fn handle(_ctx: &RequestContext<'_>, _req: SaslHandshakeRequest) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(errors::ILLEGAL_SASL_STATE)
        .with_mechanisms(Vec::new())
}
