//! The authentication gate of SASL_PLAINTEXT and SASL_SSL connections, and the SASL exchange
//! (Kafka's SaslServerAuthenticator, which runs before requests reach KafkaApis):
//!
//! - first request: ApiVersions (answered as usual) or SaslHandshake; after ApiVersions, only
//!   SaslHandshake. Anything else closes the connection without an answer, as Kafka does.
//! - SaslHandshake with an enabled mechanism: NONE and the enabled mechanisms; v1 goes on with
//!   SaslAuthenticate requests, v0 with raw size-prefixed tokens (no request header) as Kafka
//!   still serves for old clients. A mechanism not enabled: UNSUPPORTED_SASL_MECHANISM with the
//!   enabled ones, then the connection closes.
//! - SaslAuthenticate: the mechanism's next step. A failure answers SASL_AUTHENTICATION_FAILED
//!   (the same message for an unknown user and a wrong password) and closes the connection; the
//!   attempt is logged with the peer address. Any other request during the exchange closes the
//!   connection.
//! - Once the exchange succeeds the connection is authenticated as `User:<name>` and requests go
//!   to the usual handlers (where a further SaslHandshake or SaslAuthenticate gets
//!   ILLEGAL_SASL_STATE, as from KafkaApis).
//! - KIP-368: a session whose credential expires (OAUTHBEARER) or whose listener sets
//!   connections.max.reauth.ms has an end, told in SaslAuthenticate's session_lifetime_ms; a
//!   SaslHandshake then re-authenticates on the live connection (same mechanism and principal),
//!   and any other request after the end closes the connection.
//!
//! The frame limit before authentication is sasl.server.max.receive.size, and the whole exchange
//! must end within connections.max.idle.ms of the connection's start (`server::connection`).

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};

use super::response::ResponseFrame;
use super::{apis, encode, errors, Reply, Session};
use crate::broker::Broker;
use crate::security::oauthbearer::{OAuthBearerServer, Step as OAuthStep};
use crate::security::scram::{ScramError, ScramServer};
use crate::security::{SaslMechanism, SaslSettings};

/// Where a connection is in the exchange.
#[derive(Default)]
pub enum SaslState {
    /// Authenticated, or a listener without SASL.
    #[default]
    Complete,
    /// Nothing received yet: ApiVersions or SaslHandshake.
    Initial,
    /// ApiVersions answered: SaslHandshake only.
    HandshakeOnly,
    /// After SaslHandshake v1: SaslAuthenticate requests carry the tokens.
    Authenticate(MechanismServer),
    /// After SaslHandshake v0: raw size-prefixed tokens.
    RawTokens(MechanismServer),
    /// A re-authentication asked for another mechanism: its SaslAuthenticate fails with this.
    ReauthBadMechanism(String),
}

impl std::fmt::Debug for SaslState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SaslState::Complete => "Complete",
            SaslState::Initial => "Initial",
            SaslState::HandshakeOnly => "HandshakeOnly",
            SaslState::Authenticate(_) => "Authenticate",
            SaslState::RawTokens(_) => "RawTokens",
            SaslState::ReauthBadMechanism(_) => "ReauthBadMechanism",
        })
    }
}

/// The server side of one mechanism's exchange.
pub enum MechanismServer {
    Plain,
    Scram(Box<ScramServer>),
    OAuthBearer(OAuthBearerServer),
}

/// One step of an exchange: the token to send, and the user once it succeeded.
type Step = Result<(Vec<u8>, Option<String>), String>;

impl MechanismServer {
    fn new(m: SaslMechanism) -> MechanismServer {
        match m {
            SaslMechanism::Plain => MechanismServer::Plain,
            SaslMechanism::Scram(s) => MechanismServer::Scram(Box::new(ScramServer::new(s))),
            SaslMechanism::OAuthBearer => {
                MechanismServer::OAuthBearer(OAuthBearerServer::default())
            }
        }
    }

    /// `Err` holds the message the client gets.
    fn evaluate(&mut self, broker: &Broker, sasl: &SaslSettings, token: &[u8]) -> Step {
        match self {
            MechanismServer::Plain => plain(sasl, token).map(|user| (Vec::new(), Some(user))),
            MechanismServer::Scram(s) => {
                let mechanism = s.mechanism();
                let image = broker.catalog.image();
                s.evaluate(token, |user| image.scram_credential(user, mechanism).cloned())
                    .map_err(|e| match e {
                        // A SaslAuthenticationException in Kafka: its message reaches the client.
                        ScramError::AuthorizationId => "Authentication failed: Client requested an authorization id that is different from username".to_string(),
                        // A SaslException: one message whatever went wrong, so that nothing
                        // tells an unknown user from a wrong password.
                        _ => format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {}", mechanism.name()),
                    })
            }
            MechanismServer::OAuthBearer(s) => {
                let Some(validator) = &sasl.oauthbearer else {
                    return Err("OAUTHBEARER is not configured".into());
                };
                match s.evaluate(validator, token, broker.clock.now_ms()) {
                    OAuthStep::Done(v) => Ok((Vec::new(), Some(v.principal))),
                    OAuthStep::Challenge(json) => Ok((json.into_bytes(), None)),
                    OAuthStep::Failed(message) => Err(message),
                }
            }
        }
    }

    /// When the credential the exchange proved expires (ms): an OAUTHBEARER token's `exp`
    /// (the CREDENTIAL_LIFETIME_MS negotiated property of Kafka's servers).
    fn credential_expires_ms(&self) -> Option<i64> {
        match self {
            MechanismServer::OAuthBearer(s) => s.expires_ms(),
            _ => None,
        }
    }

    fn mechanism(&self) -> &'static str {
        match self {
            MechanismServer::Plain => "PLAIN",
            MechanismServer::Scram(s) => s.mechanism().name(),
            MechanismServer::OAuthBearer(_) => "OAUTHBEARER",
        }
    }
}

/// SASL/PLAIN (RFC 4616) as Kafka's PlainSaslServer: `authzid NUL user NUL password`.
fn plain(sasl: &SaslSettings, token: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(token);
    let tokens: Vec<&str> = text.splitn(4, '\0').collect();
    if tokens.len() != 3 {
        return Err(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            tokens.len()
        ));
    }
    let (authzid, user, password) = (tokens[0], tokens[1], tokens[2]);
    if user.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    if !sasl.plain_password_matches(user, password) {
        return Err("Authentication failed: Invalid username or password".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username".into(),
        );
    }
    Ok(user.to_string())
}

/// What the gate decided for a frame on a connection not yet authenticated.
pub enum Gate {
    /// Handle it as usual (ApiVersions first).
    Pass,
    Reply(Reply),
}

/// The gate: called by `handle_frame` for every frame until the session is authenticated.
pub fn gate(broker: &Broker, session: &mut Session, frame: &Bytes) -> Gate {
    let Some(sasl) = session.listener.sasl.clone() else {
        session.sasl = SaslState::Complete;
        return Gate::Pass;
    };
    let peer = session.peer;
    if let SaslState::RawTokens(server) = &mut session.sasl {
        return Gate::Reply(raw_token(broker, peer, &sasl, server, frame).map_or_else(
            Reply::Close,
            |(token, user)| {
                if let Some(user) = user {
                    if let SaslState::RawTokens(server) = std::mem::take(&mut session.sasl) {
                        complete(session, &sasl, &server, &user, broker.clock.now_ms());
                    }
                }
                Reply::Frame(ResponseFrame::size_prefixed(&token))
            },
        ));
    }
    if frame.len() < 8 {
        return Gate::Reply(Reply::Close(
            "short request during SASL authentication".into(),
        ));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).ok();
    let close = |what: String| Gate::Reply(Reply::Close(what));
    match (&session.sasl, api) {
        (SaslState::Initial, Some(ApiKey::ApiVersions)) => {
            // An unsupported version gets KIP-511's answer and the client may ask again at a
            // version it then knows we serve (SaslServerAuthenticator stays in its state).
            let emulated = broker.config.emulate_kafka_version;
            if apis::served(ApiKey::ApiVersions, emulated).is_some_and(|r| r.contains(version)) {
                session.sasl = SaslState::HandshakeOnly;
            }
            Gate::Pass
        }
        (SaslState::Initial | SaslState::HandshakeOnly, Some(ApiKey::SaslHandshake)) => {
            Gate::Reply(handshake(session, &sasl, frame.clone(), version))
        }
        (
            SaslState::Authenticate(_) | SaslState::ReauthBadMechanism(_),
            Some(ApiKey::SaslAuthenticate),
        ) => Gate::Reply(authenticate(broker, session, &sasl, frame.clone(), version)),
        (SaslState::Initial | SaslState::HandshakeOnly, _) => close(format!(
            "unexpected request (key {key}) during SASL handshake"
        )),
        (_, _) => close(format!(
            "unexpected request (key {key}) during SASL authentication"
        )),
    }
}

/// The exchange succeeded: the session's principal, and its lifetime (KIP-368, as
/// SaslServerAuthenticator computes it: the credential's remaining life, capped by
/// connections.max.reauth.ms when that is set; 0 when neither applies). Returns the lifetime.
fn complete(
    session: &mut Session,
    sasl: &SaslSettings,
    server: &MechanismServer,
    user: &str,
    now_ms: i64,
) -> i64 {
    let mechanism = SaslMechanism::parse(server.mechanism());
    let max_reauth_ms = mechanism.map_or(0, |m| sasl.max_reauth_ms(m));
    let credential = server.credential_expires_ms().map(|e| (e - now_ms).max(0));
    let lifetime = match (credential, max_reauth_ms > 0) {
        (None, false) => None,
        (None, true) => Some(max_reauth_ms),
        (Some(c), false) => Some(c),
        (Some(c), true) => Some(c.min(max_reauth_ms)),
    };
    session.session_expires_ms = lifetime.map(|l| now_ms + l);
    session.principal = format!("User:{user}").into();
    session.sasl = SaslState::Complete;
    session.reauthenticating = false;
    tracing::debug!(peer = %session.peer, listener = %session.listener.name(), principal = %session.principal, ?lifetime, "authenticated");
    lifetime.unwrap_or(0)
}

/// On an authenticated SASL connection (KIP-368, KafkaChannel.maybeBeginServerReauthentication):
/// a SaslHandshake starts a re-authentication when the session has an end and none began in
/// the last second (otherwise it goes to the usual handler, ILLEGAL_SASL_STATE); any other
/// request after the session ended closes the connection, unanswered, as Kafka's SocketServer
/// does.
pub fn reauthentication_or_expiry(
    broker: &Broker,
    session: &mut Session,
    frame: &Bytes,
) -> Option<Reply> {
    let sasl = session.listener.sasl.clone()?;
    let now = broker.clock.now_ms();
    if frame.len() >= 8 && session.session_expires_ms.is_some() {
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let recent = session
            .reauthentication_began_ms
            .is_some_and(|began| now - began < 1_000);
        if key == ApiKey::SaslHandshake as i16 && session.reauthenticate_with.is_some() && !recent {
            session.reauthenticating = true;
            session.reauthentication_began_ms = Some(now);
            return Some(handshake(session, &sasl, frame.clone(), version));
        }
    }
    if session.session_expires_ms.is_some_and(|end| now >= end) {
        tracing::debug!(peer = %session.peer, principal = %session.principal, "session expired without re-authentication");
        return Some(Reply::Close(
            "the SASL session expired and the client did not re-authenticate".into(),
        ));
    }
    None
}

fn failed(session: &Session, mechanism: &str, message: &str) {
    tracing::info!(peer = %session.peer, listener = %session.listener.name(), mechanism, reason = %message, "failed authentication");
}

/// The header and body of a SASL request at a version the API table serves; `Err` closes the
/// connection.
/// (Every emulated Kafka release has the same SASL versions as gregor: see `apis` tests.)
fn parse<R: Decodable>(
    mut frame: Bytes,
    api: ApiKey,
    version: i16,
) -> Result<(RequestHeader, R), String> {
    if !apis::supported(api).is_some_and(|r| r.contains(version)) {
        return Err(format!("{api:?} v{version} is not supported"));
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| format!("bad {api:?} request header: {e}"))?;
    let body = R::decode(&mut frame, version).map_err(|e| format!("bad {api:?} request: {e}"))?;
    Ok((header, body))
}

fn handshake(session: &mut Session, sasl: &SaslSettings, frame: Bytes, version: i16) -> Reply {
    let (h, req) = match parse::<SaslHandshakeRequest>(frame, ApiKey::SaslHandshake, version) {
        Ok(p) => p,
        Err(e) => return Reply::Close(e),
    };
    let mechanisms = sasl
        .mechanisms
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let chosen = sasl.enabled(req.mechanism.as_str());
    if session.reauthenticating && chosen.is_some() && chosen != session.reauthenticate_with {
        // SaslServerAuthenticator answers the handshake and fails the SaslAuthenticate after it.
        session.sasl = SaslState::ReauthBadMechanism(format!(
            "SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}'",
            req.mechanism.as_str(),
            session.reauthenticate_with.map_or("", |m| m.name())
        ));
        let resp = SaslHandshakeResponse::default().with_mechanisms(
            sasl.mechanisms
                .iter()
                .map(|m| StrBytes::from_static_str(m.name()))
                .collect(),
        );
        let hv = <SaslHandshakeResponse as HeaderVersion>::header_version(version);
        return encode(h.correlation_id, hv, version, &resp, Default::default());
    }
    let resp = SaslHandshakeResponse::default()
        .with_error_code(if chosen.is_some() {
            errors::NONE
        } else {
            errors::UNSUPPORTED_SASL_MECHANISM
        })
        .with_mechanisms(mechanisms);
    let hv = <SaslHandshakeResponse as HeaderVersion>::header_version(version);
    let reply = encode(h.correlation_id, hv, version, &resp, Default::default());
    match chosen {
        Some(m) => {
            let server = MechanismServer::new(m);
            session.sasl = if version >= 1 {
                SaslState::Authenticate(server)
            } else {
                SaslState::RawTokens(server)
            };
            reply
        }
        None => {
            failed(session, req.mechanism.as_str(), "mechanism not enabled");
            then_close(
                reply,
                format!("unsupported SASL mechanism {}", req.mechanism.as_str()),
            )
        }
    }
}

/// A response, then the connection closes.
fn then_close(reply: Reply, reason: String) -> Reply {
    match reply {
        Reply::Frame(f) => Reply::FrameThenClose(f, reason),
        other => other,
    }
}

fn authenticate(
    broker: &Broker,
    session: &mut Session,
    sasl: &SaslSettings,
    frame: Bytes,
    version: i16,
) -> Reply {
    let parsed = parse::<SaslAuthenticateRequest>(frame, ApiKey::SaslAuthenticate, version);
    let (h, req) = match parsed {
        Ok(p) => p,
        Err(e) => return Reply::Close(e),
    };
    let hv = <SaslAuthenticateResponse as HeaderVersion>::header_version(version);
    if let SaslState::ReauthBadMechanism(message) = &session.sasl {
        let message = message.clone();
        failed(session, "", &message);
        let resp = SaslAuthenticateResponse::default()
            .with_error_code(errors::SASL_AUTHENTICATION_FAILED)
            .with_error_message(Some(StrBytes::from_string(message.clone())));
        return then_close(
            encode(h.correlation_id, hv, version, &resp, Default::default()),
            message,
        );
    }
    let SaslState::Authenticate(server) = &mut session.sasl else {
        return Reply::Close("SaslAuthenticate outside the exchange".into());
    };
    let mechanism = server.mechanism();
    let mut outcome = server.evaluate(broker, sasl, &req.auth_bytes);
    if let Ok((_, Some(user))) = &outcome {
        let principal = format!("User:{user}");
        if session.reauthenticating && *session.principal != *principal {
            outcome = Err(format!(
                "Cannot change principals during re-authentication from User.{}: User.{user}",
                session
                    .principal
                    .strip_prefix("User:")
                    .unwrap_or(&session.principal)
            ));
        }
    }
    match outcome {
        Ok((token, user)) => {
            let mut lifetime = 0;
            if let Some(user) = user {
                if let SaslState::Authenticate(server) = std::mem::take(&mut session.sasl) {
                    lifetime = complete(session, sasl, &server, &user, broker.clock.now_ms());
                }
                session.reauthenticate_with = SaslMechanism::parse(mechanism);
            }
            let resp = SaslAuthenticateResponse::default()
                .with_error_message(None)
                .with_auth_bytes(Bytes::from(token))
                .with_session_lifetime_ms(lifetime);
            encode(h.correlation_id, hv, version, &resp, Default::default())
        }
        Err(message) => {
            failed(session, mechanism, &message);
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(errors::SASL_AUTHENTICATION_FAILED)
                .with_error_message(Some(StrBytes::from_string(message.clone())));
            then_close(
                encode(h.correlation_id, hv, version, &resp, Default::default()),
                message,
            )
        }
    }
}

/// One raw token after a v0 handshake; a failure closes the connection without an answer.
fn raw_token(
    broker: &Broker,
    peer: std::net::SocketAddr,
    sasl: &SaslSettings,
    server: &mut MechanismServer,
    token: &Bytes,
) -> Result<(Vec<u8>, Option<String>), String> {
    server.evaluate(broker, sasl, token).map_err(|message| {
        tracing::info!(%peer, reason = %message, "failed authentication (SaslHandshake v0)");
        message
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings() -> SaslSettings {
        SaslSettings {
            mechanisms: vec![SaslMechanism::Plain],
            plain_users: BTreeMap::from([("alice".to_string(), "secret".to_string())]),
            max_receive_size: 1024,
            oauthbearer: None,
            reauth_ms_by_mechanism: BTreeMap::new(),
        }
    }

    #[test]
    fn plain_tokens() {
        let s = settings();
        assert_eq!(plain(&s, b"\0alice\0secret").as_deref(), Ok("alice"));
        assert_eq!(plain(&s, b"alice\0alice\0secret").as_deref(), Ok("alice"));
        let invalid = Err("Authentication failed: Invalid username or password".to_string());
        assert_eq!(plain(&s, b"\0alice\0wrong"), invalid);
        assert_eq!(plain(&s, b"\0bob\0secret"), invalid);
        assert!(plain(&s, b"\0alice\0secret\0x")
            .unwrap_err()
            .contains("expected 3 tokens, got 4"));
        assert!(plain(&s, b"alice").unwrap_err().contains("got 1"));
        assert!(plain(&s, b"\0\0secret")
            .unwrap_err()
            .contains("username not specified"));
        assert!(plain(&s, b"\0alice\0")
            .unwrap_err()
            .contains("password not specified"));
        assert!(plain(&s, b"bob\0alice\0secret")
            .unwrap_err()
            .contains("authorization id"));
    }
}
