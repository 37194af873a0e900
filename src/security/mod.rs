//! Authentication: who a connection is (its principal) and how it proves it, per listener.
//!
//! - `Listener`: a listener as its connections see it: name and security protocol, the SASL
//!   mechanisms it enables with their settings, and its TLS acceptor.
//! - `jaas`: Kafka's inline JAAS config (`...sasl.jaas.config`), where PLAIN's users are.
//! - `scram`: SCRAM-SHA-256/512 credentials and the server side of the exchange.
//! - `oauthbearer`: OAUTHBEARER tokens, Kafka's unsecured and JWKS validators; `jwks` fetches
//!   and refreshes a JWKS from an http(s) endpoint.
//! - `keystore`: JKS, PKCS12 and PEM keystores and truststores (`ssl.keystore.*`,
//!   `ssl.truststore.*`).
//! - `tls`: rustls server configs from Kafka's `ssl.*` settings; client certificate principals,
//!   mapped by `ssl_principal_mapper` (ssl.principal.mapping.rules); the client side's config.
//! - `channel`: this broker as a client of another broker's listener (inter-broker TLS and SASL).
//!
//! The SASL exchange itself (SaslHandshake, SaslAuthenticate and the gate before it) is in
//! `protocol::sasl`, where requests are dispatched.

pub mod authorizer;
pub mod channel;
pub mod jaas;
pub mod jwks;
pub mod keystore;
pub mod oauthbearer;
pub mod scram;
pub mod ssl_principal_mapper;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{ListenerConfig, SecurityProtocol};
use scram::ScramMechanism;

/// The principal of a connection nobody authenticated (plaintext, or TLS without a client
/// certificate): KafkaPrincipal.ANONYMOUS.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Kafka's default for sasl.server.max.receive.size: the largest frame a client may send
/// before it is authenticated.
pub const DEFAULT_SASL_SERVER_MAX_RECEIVE_SIZE: usize = 524_288;

/// A SASL mechanism gregor serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl SaslMechanism {
    pub fn parse(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            "OAUTHBEARER" => Some(SaslMechanism::OAuthBearer),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("listener {listener}: {setting}: {reason}")]
    Setting {
        listener: String,
        setting: String,
        reason: String,
    },
}

/// The SASL side of a SASL_PLAINTEXT or SASL_SSL listener.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// sasl.enabled.mechanisms (per listener: `listener.name.<l>.sasl.enabled.mechanisms`), in
    /// the order given, as the handshake lists them.
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users and passwords (the listener's PlainLoginModule `user_<name>` options).
    pub plain_users: BTreeMap<String, String>,
    /// sasl.server.max.receive.size: larger frames before authentication close the connection.
    pub max_receive_size: usize,
    /// How OAUTHBEARER tokens are validated, when it is enabled.
    pub oauthbearer: Option<oauthbearer::Validator>,
    /// connections.max.reauth.ms by mechanism name (Kafka's `listener.name.<l>.<mechanism>.`
    /// prefix first, then the listener's, then the broker's; 0: no re-authentication asked).
    pub reauth_ms_by_mechanism: BTreeMap<String, i64>,
}

impl SaslSettings {
    pub fn enabled(&self, name: &str) -> Option<SaslMechanism> {
        self.mechanisms.iter().copied().find(|m| m.name() == name)
    }

    pub fn max_reauth_ms(&self, m: SaslMechanism) -> i64 {
        self.reauth_ms_by_mechanism
            .get(m.name())
            .copied()
            .unwrap_or(0)
    }

    /// PLAIN's check, in constant time over the password (PlainServerCallbackHandler).
    pub fn plain_password_matches(&self, user: &str, password: &str) -> bool {
        self.plain_users
            .get(user)
            .is_some_and(|p| scram::constant_time_eq(p.as_bytes(), password.as_bytes()))
    }
}

/// A listener as its connections see it.
pub struct Listener {
    pub config: ListenerConfig,
    /// On SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslSettings>,
    /// On SSL and SASL_SSL.
    pub tls: Option<tls::TlsSettings>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.config.name)
            .field("protocol", &self.config.protocol)
            .finish()
    }
}

/// A listener's view of the settings: `listener.name.<l>.<name>` first, then `<name>`.
pub struct ListenerSettings<'a> {
    pub listener: &'a ListenerConfig,
    pub settings: &'a BTreeMap<String, String>,
}

impl ListenerSettings<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_raw(name).filter(|v| !v.is_empty())
    }

    /// `listener.name.<l>.<name>` alone (settings Kafka reads for a listener only when set
    /// for it).
    pub fn get_prefixed(&self, name: &str) -> Option<&str> {
        let prefixed = format!("{}{name}", self.listener.config_prefix());
        (self.settings.get(&prefixed))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` is set at all, to an empty value too (`ssl.endpoint.identification.algorithm=`
    /// means something), per listener first.
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        let prefixed = format!("{}{name}", self.listener.config_prefix());
        (self.settings.get(&prefixed))
            .or_else(|| self.settings.get(name))
            .map(|v| v.trim())
    }

    pub fn error(&self, setting: &str, reason: impl Into<String>) -> SecurityError {
        SecurityError::Setting {
            listener: self.listener.name.clone(),
            setting: setting.to_string(),
            reason: reason.into(),
        }
    }

    /// The JAAS config of `mechanism` on this listener: Kafka's
    /// `listener.name.<l>.<mechanism>.sasl.jaas.config`, else `sasl.jaas.config` (which Kafka's
    /// brokers ignore with a warning; gregor takes it as the default of every listener).
    fn jaas(&self, mechanism: SaslMechanism) -> Option<(String, &str)> {
        let mech = mechanism.name().to_ascii_lowercase();
        let prefixed = format!("{}{mech}.sasl.jaas.config", self.listener.config_prefix());
        if let Some(v) = self.settings.get(&prefixed) {
            return Some((prefixed, v.as_str()));
        }
        self.get("sasl.jaas.config")
            .map(|v| ("sasl.jaas.config".to_string(), v))
    }
}

impl Listener {
    /// The listener of `config` with its security settings, checked as Kafka checks them at
    /// start-up (a SASL listener needs its mechanisms; PLAIN needs its JAAS users; TLS needs a
    /// key and certificate).
    pub fn build(
        config: &ListenerConfig,
        settings: &BTreeMap<String, String>,
    ) -> Result<Listener, SecurityError> {
        let s = ListenerSettings {
            listener: config,
            settings,
        };
        let sasl = if config.protocol.is_sasl() {
            Some(sasl_settings(&s)?)
        } else {
            None
        };
        let tls = if config.protocol.is_tls() {
            Some(tls::TlsSettings::build(&s)?)
        } else {
            None
        };
        Ok(Listener {
            config: config.clone(),
            sasl,
            tls,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.config.protocol
    }
}

/// The listener's sasl.enabled.mechanisms, in the order given. Kafka's default is GSSAPI, which
/// gregor does not serve: the setting is required.
fn enabled_mechanisms(s: &ListenerSettings<'_>) -> Result<Vec<SaslMechanism>, SecurityError> {
    let list = s.get("sasl.enabled.mechanisms").unwrap_or("GSSAPI");
    let mut mechanisms = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = SaslMechanism::parse(name).ok_or_else(|| {
            s.error(
                "sasl.enabled.mechanisms",
                format!("{name} is not supported by gregor (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"),
            )
        })?;
        if !mechanisms.contains(&m) {
            mechanisms.push(m);
        }
    }
    if mechanisms.is_empty() {
        return Err(s.error("sasl.enabled.mechanisms", "no SASL mechanism is enabled"));
    }
    Ok(mechanisms)
}

fn sasl_settings(s: &ListenerSettings<'_>) -> Result<SaslSettings, SecurityError> {
    let mechanisms = enabled_mechanisms(s)?;
    let mut plain_users = BTreeMap::new();
    if mechanisms.contains(&SaslMechanism::Plain) {
        let (name, text) = s.jaas(SaslMechanism::Plain).ok_or_else(|| {
            s.error(
                &format!("{}plain.sasl.jaas.config", s.listener.config_prefix()),
                "PLAIN is enabled but the listener has no JAAS config with its users",
            )
        })?;
        let entries = jaas::parse(text).map_err(|e| s.error(&name, e.to_string()))?;
        if !entries
            .iter()
            .any(|e| e.login_module == jaas::PLAIN_LOGIN_MODULE)
        {
            return Err(s.error(&name, format!("no {} entry", jaas::PLAIN_LOGIN_MODULE)));
        }
        plain_users = jaas::plain_users(&entries);
    }
    for m in &mechanisms {
        if let Some((name, text)) = s.jaas(*m) {
            jaas::parse(text).map_err(|e| s.error(&name, e.to_string()))?;
        }
    }
    let oauthbearer = if mechanisms.contains(&SaslMechanism::OAuthBearer) {
        Some(oauthbearer_validator(s)?)
    } else {
        None
    };
    let max_receive_size =
        match s.get("sasl.server.max.receive.size") {
            Some(v) => v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                s.error("sasl.server.max.receive.size", "expected a positive int")
            })?,
            None => DEFAULT_SASL_SERVER_MAX_RECEIVE_SIZE,
        };
    let mut reauth_ms_by_mechanism = BTreeMap::new();
    for m in &mechanisms {
        let prefixed = format!(
            "{}{}.connections.max.reauth.ms",
            s.listener.config_prefix(),
            m.name().to_ascii_lowercase()
        );
        let (name, value) = match s.settings.get(&prefixed) {
            Some(v) => (prefixed, Some(v.trim())),
            None => (
                "connections.max.reauth.ms".to_string(),
                s.get("connections.max.reauth.ms"),
            ),
        };
        if let Some(v) = value {
            let ms = v
                .parse::<i64>()
                .map_err(|_| s.error(&name, format!("{v} is not a long")))?;
            reauth_ms_by_mechanism.insert(m.name().to_string(), ms);
        }
    }
    Ok(SaslSettings {
        mechanisms,
        plain_users,
        max_receive_size,
        oauthbearer,
        reauth_ms_by_mechanism,
    })
}

/// OAUTHBEARER's validator: the listener's `oauthbearer.sasl.server.callback.handler.class`
/// picks Kafka's JWKS validator (configured by the `sasl.oauthbearer.*` settings), else the
/// unsecured one (configured by the OAuthBearerLoginModule's JAAS options).
fn oauthbearer_validator(
    s: &ListenerSettings<'_>,
) -> Result<oauthbearer::Validator, SecurityError> {
    let handler = format!(
        "{}oauthbearer.sasl.server.callback.handler.class",
        s.listener.config_prefix()
    );
    let jaas_options = match s.jaas(SaslMechanism::OAuthBearer) {
        Some((name, text)) => {
            let entries = jaas::parse(text).map_err(|e| s.error(&name, e.to_string()))?;
            entries
                .into_iter()
                .find(|e| e.login_module == oauthbearer::OAUTHBEARER_LOGIN_MODULE)
                .map(|e| e.options)
                .ok_or_else(|| {
                    s.error(
                        &name,
                        format!("no {} entry", oauthbearer::OAUTHBEARER_LOGIN_MODULE),
                    )
                })?
        }
        None => BTreeMap::new(),
    };
    let settings = oauthbearer::ValidatorSettings {
        handler_class: s
            .settings
            .get(&handler)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty()),
        jaas_options,
        jwks_url: s.get("sasl.oauthbearer.jwks.endpoint.url"),
        jwks_refresh_ms: s.get("sasl.oauthbearer.jwks.endpoint.refresh.ms"),
        expected_issuer: s.get("sasl.oauthbearer.expected.issuer"),
        expected_audience: s.get("sasl.oauthbearer.expected.audience"),
        allow_unverified_issuer: s.get("sasl.oauthbearer.allow.unverified.issuer"),
        allow_unverified_audience: s.get("sasl.oauthbearer.allow.unverified.audience"),
        clock_skew_seconds: s.get("sasl.oauthbearer.clock.skew.seconds"),
        sub_claim: s.get("sasl.oauthbearer.sub.claim.name"),
        scope_claim: s.get("sasl.oauthbearer.scope.claim.name"),
    };
    oauthbearer::Validator::build(&settings).map_err(|e| s.error(&handler, e))
}

/// Every listener of the configuration, built (see `Listener::build`).
pub fn listeners(config: &crate::Config) -> Result<Vec<Arc<Listener>>, SecurityError> {
    config
        .listeners
        .iter()
        .map(|l| Listener::build(l, &config.explicit).map(Arc::new))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Listener `name` on `protocol`, and `settings` as a configuration has them.
    pub(crate) fn listener_and_settings(
        name: &str,
        protocol: &str,
        settings: &[(&str, &str)],
    ) -> (ListenerConfig, BTreeMap<String, String>) {
        let config = ListenerConfig {
            name: name.into(),
            protocol: SecurityProtocol::parse(protocol).unwrap(),
            host: "127.0.0.1".into(),
            port: 0,
            advertised: None,
        };
        let m = (settings.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (config, m)
    }

    fn listener(protocol: &str, settings: &[(&str, &str)]) -> Result<Listener, SecurityError> {
        let (config, m) = listener_and_settings("EXTERNAL", protocol, settings);
        Listener::build(&config, &m)
    }

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;

    #[test]
    fn sasl_listener_settings() {
        let l = listener(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "GSSAPI"),
                (
                    "listener.name.external.sasl.enabled.mechanisms",
                    "PLAIN,SCRAM-SHA-512",
                ),
                ("listener.name.external.plain.sasl.jaas.config", JAAS),
            ],
        )
        .unwrap();
        let sasl = l.sasl.unwrap();
        assert_eq!(
            sasl.mechanisms,
            vec![
                SaslMechanism::Plain,
                SaslMechanism::Scram(ScramMechanism::Sha512)
            ]
        );
        assert!(sasl.plain_password_matches("alice", "alice-secret"));
        assert!(!sasl.plain_password_matches("alice", "alice-secreT"));
        assert!(!sasl.plain_password_matches("bob", "alice-secret"));
        assert_eq!(sasl.max_receive_size, DEFAULT_SASL_SERVER_MAX_RECEIVE_SIZE);
        // The unprefixed form serves as every listener's default.
        let l = listener(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "PLAIN"),
                ("sasl.jaas.config", JAAS),
            ],
        )
        .unwrap();
        assert!(l
            .sasl
            .unwrap()
            .plain_password_matches("alice", "alice-secret"));
    }

    /// Kafka applies ssl.client.auth to a SASL_SSL listener only when set for that listener.
    #[test]
    fn sasl_ssl_takes_client_auth_from_its_own_setting_only() {
        let data = format!("{}/src/security/testdata", env!("CARGO_MANIFEST_DIR"));
        let (keystore, truststore) = (format!("{data}/server.jks"), format!("{data}/trust.jks"));
        let tls = [
            ("ssl.keystore.location", keystore.as_str()),
            ("ssl.keystore.password", "store-secret"),
            ("ssl.key.password", "key-secret"),
            ("ssl.truststore.location", truststore.as_str()),
            ("ssl.truststore.password", "trust-secret"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        ];
        let client_auth = |protocol: &str, extra: (&str, &str)| {
            let mut settings = tls.to_vec();
            settings.push(extra);
            listener(protocol, &settings)
                .unwrap()
                .tls
                .unwrap()
                .client_auth
        };
        let broker_wide = ("ssl.client.auth", "required");
        assert_eq!(client_auth("SSL", broker_wide), tls::ClientAuth::Required);
        assert_eq!(client_auth("SASL_SSL", broker_wide), tls::ClientAuth::None);
        let own = ("listener.name.external.ssl.client.auth", "required");
        assert_eq!(client_auth("SASL_SSL", own), tls::ClientAuth::Required);
    }

    #[test]
    fn sasl_listener_errors() {
        // GSSAPI (Kafka's default) is not served; nor are validators gregor does not know.
        assert!(listener("SASL_PLAINTEXT", &[]).is_err());
        assert!(listener(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "OAUTHBEARER"),
                (
                    "listener.name.external.oauthbearer.sasl.server.callback.handler.class",
                    "com.example.Validator"
                )
            ]
        )
        .is_err());
        // The JWKS validator needs its JWKS.
        assert!(listener(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "OAUTHBEARER"),
                (
                    "listener.name.external.oauthbearer.sasl.server.callback.handler.class",
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
                )
            ]
        )
        .is_err());
        // Kafka's default: the unsecured validator.
        assert!(listener(
            "SASL_PLAINTEXT",
            &[("sasl.enabled.mechanisms", "OAUTHBEARER")]
        )
        .unwrap()
        .sasl
        .unwrap()
        .oauthbearer
        .is_some());
        // PLAIN without users.
        assert!(listener("SASL_PLAINTEXT", &[("sasl.enabled.mechanisms", "PLAIN")]).is_err());
        assert!(listener(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "PLAIN"),
                (
                    "listener.name.external.plain.sasl.jaas.config",
                    "x.Y required"
                )
            ]
        )
        .is_err());
        // A plaintext listener has no SASL side.
        assert!(listener("PLAINTEXT", &[]).unwrap().sasl.is_none());
    }
}
