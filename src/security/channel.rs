//! The client side of a listener: how this broker connects to another broker's listener (Kafka's
//! `ChannelBuilders.clientChannelBuilder`, which a broker's inter-broker clients call with the
//! inter-broker listener and `JaasContext.Type.SERVER`). Every setting is the listener's own, read
//! as Kafka reads it (`listener.name.<l>.<setting>` first, then `<setting>`):
//!
//! - TLS (SSL, SASL_SSL): `tls::client_config`: the other broker's certificate verified
//!   against the truststore and, unless `ssl.endpoint.identification.algorithm` is empty, for
//!   the host connected to (its advertised host on that listener); the listener's keystore is
//!   the certificate this broker presents when the other asks for one (`ssl.client.auth`).
//! - SASL (SASL_PLAINTEXT, SASL_SSL): `sasl.mechanism.inter.broker.protocol` (PLAIN,
//!   SCRAM-SHA-256 or SCRAM-SHA-512), which must be enabled on the listener (KafkaConfig's
//!   check), logging in as the `username` and `password` options of the listener's
//!   `listener.name.<l>.<mechanism>.sasl.jaas.config` (the same entry whose `user_<name>`
//!   options are PLAIN's users; Kafka's JaasContext.loadServerContext). The exchange runs over
//!   SaslHandshake and SaslAuthenticate in `server::inter_broker` (Kafka's
//!   SaslClientAuthenticator); the mechanisms' client steps are here and in `scram`.
//!
//! Not served: GSSAPI (Kerberos), and OAUTHBEARER as the inter-broker mechanism (Kafka's broker
//! would make itself a token with its login module).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::scram::{SaltedPasswordCache, ScramClient};
use super::{jaas, ListenerSettings, SaslMechanism, SecurityError};
use crate::config::{Config, ListenerConfig, SecurityProtocol};

/// A byte stream to another broker.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> ClientIo for T {}

/// A connection a `ClientChannel` made: TCP, or TLS over TCP.
pub type ClientStream = Box<dyn ClientIo>;

/// How to connect to a listener of another broker as a client.
pub struct ClientChannel {
    listener: String,
    protocol: SecurityProtocol,
    tls: Option<tokio_rustls::TlsConnector>,
    sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for ClientChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientChannel")
            .field("listener", &self.listener)
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// Who this broker logs in as, and with which mechanism.
#[derive(Clone)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    password: String,
    /// SCRAM's salted password, derived once for every login with this password.
    salted: Arc<SaltedPasswordCache>,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password in a log line.
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .finish()
    }
}

impl SaslCredentials {
    /// The client side of one exchange. `ClientChannel::build` takes no other mechanism than
    /// these; another is refused here too rather than answered with PLAIN's token.
    pub fn client(&self) -> Result<MechanismClient, String> {
        match self.mechanism {
            SaslMechanism::Scram(m) => {
                Ok(MechanismClient::Scram(Box::new(ScramClient::with_cache(
                    m,
                    &self.username,
                    &self.password,
                    Arc::clone(&self.salted),
                ))))
            }
            SaslMechanism::Plain => Ok(MechanismClient::Plain {
                token: Some(plain_token(&self.username, &self.password)),
            }),
            SaslMechanism::OAuthBearer => Err(format!(
                "{} has no client side in gregor's brokers",
                self.mechanism.name()
            )),
        }
    }
}

/// PLAIN's one message (RFC 4616): no authorization id, the user, the password.
fn plain_token(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// The client side of one SASL exchange.
pub enum MechanismClient {
    /// Its one message, until sent.
    Plain {
        token: Option<Vec<u8>>,
    },
    Scram(Box<ScramClient>),
}

impl MechanismClient {
    /// The next message for the server's last one (empty at first); `None` once the exchange
    /// is complete on this side.
    pub fn evaluate(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            MechanismClient::Plain { token } => Ok(token.take()),
            MechanismClient::Scram(c) => c.evaluate(challenge).map_err(|e| e.to_string()),
        }
    }
}

impl ClientChannel {
    /// The client side of `listener`, from `settings`; SASL with `sasl_mechanism`.
    pub fn build(
        listener: &ListenerConfig,
        settings: &BTreeMap<String, String>,
        sasl_mechanism: &str,
    ) -> Result<ClientChannel, SecurityError> {
        let s = ListenerSettings { listener, settings };
        let tls = match listener.protocol.is_tls() {
            true => Some(tokio_rustls::TlsConnector::from(Arc::new(
                super::tls::client_config(&s)?,
            ))),
            false => None,
        };
        let sasl = match listener.protocol.is_sasl() {
            true => Some(sasl_credentials(&s, sasl_mechanism)?),
            false => None,
        };
        Ok(ClientChannel {
            listener: listener.name.clone(),
            protocol: listener.protocol,
            tls,
            sasl,
        })
    }

    /// A PLAINTEXT listener's client side.
    pub fn plaintext(listener: &str) -> ClientChannel {
        ClientChannel {
            listener: listener.to_string(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// The channel of a broker in a cluster of processes to the others' inter-broker listener
    /// (`inter.broker.listener.name`); `None` for a process that is no such broker. A setting
    /// that does not work stops start-up, as it stops Kafka's.
    pub fn inter_broker(config: &Config) -> Result<Option<ClientChannel>, SecurityError> {
        let Some(q) = config.quorum.as_ref().filter(|q| q.roles.is_broker()) else {
            return Ok(None);
        };
        let r = &q.replication;
        let Some(listener) = (config.listeners.iter()).find(|l| l.name == r.inter_broker_listener)
        else {
            return Ok(None);
        };
        let mechanism = &r.sasl_mechanism_inter_broker_protocol;
        Self::build(listener, &config.explicit, mechanism).map(Some)
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    pub fn sasl(&self) -> Option<&SaslCredentials> {
        self.sasl.as_ref()
    }

    /// A connection to `host:port`, TLS's handshake done, within `timeout` each.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> io::Result<ClientStream> {
        connect(host, port, self.tls.as_ref(), timeout).await
    }
}

/// A TCP connection to `host:port` (an IPv6 address bracketed or not), with TLS's client
/// handshake over it when `tls` is given (the server's certificate checked for `host`), each
/// within `timeout`: how this broker connects as a client, to another broker's listener or to
/// an OAuth provider's JWKS endpoint (`jwks`).
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&tokio_rustls::TlsConnector>,
    timeout: Duration,
) -> io::Result<ClientStream> {
    let timed_out =
        |what: &str| io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"));
    let host = host.trim_matches(['[', ']']);
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| timed_out("connect"))?
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {host}:{port}: {e}")))?;
    tcp.set_nodelay(true)?;
    let Some(connector) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::other(format!("{host} is not a host name: {e}")))?;
    let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| timed_out("TLS handshake"))?
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {host}:{port}: {e}")))?;
    Ok(Box::new(tls))
}

/// The mechanism and credentials this broker logs in to listener `s` with.
fn sasl_credentials(
    s: &ListenerSettings<'_>,
    name: &str,
) -> Result<SaslCredentials, SecurityError> {
    let setting = "sasl.mechanism.inter.broker.protocol";
    let mechanism = SaslMechanism::parse(name.trim())
        .filter(|m| *m != SaslMechanism::OAuthBearer)
        .ok_or_else(|| {
            s.error(
                setting,
                format!("{name}: gregor's brokers log in to each other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            )
        })?;
    if !super::enabled_mechanisms(s)?.contains(&mechanism) {
        return Err(s.error(
            setting,
            "must be included in sasl.enabled.mechanisms when SASL is used for inter-broker communication",
        ));
    }
    let jaas_setting = format!(
        "{}{}.sasl.jaas.config",
        s.listener.config_prefix(),
        mechanism.name().to_ascii_lowercase()
    );
    let (found, text) = s.jaas(mechanism).ok_or_else(|| {
        s.error(
            &jaas_setting,
            "not set: its username and password are how this broker logs in to the others",
        )
    })?;
    let entries = jaas::parse(text).map_err(|e| s.error(&found, e.to_string()))?;
    let option = |key: &str| entries.iter().find_map(|e| e.options.get(key).cloned());
    match (option("username"), option("password")) {
        (Some(username), Some(password)) => Ok(SaslCredentials {
            mechanism,
            username,
            password,
            salted: Arc::default(),
        }),
        _ => Err(s.error(
            &found,
            "no username and password options: they are how this broker logs in to the others",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(
        protocol: &str,
        settings: &[(&str, &str)],
        mechanism: &str,
    ) -> Result<ClientChannel, SecurityError> {
        let (listener, m) =
            super::super::tests::listener_and_settings("INTERNAL", protocol, settings);
        ClientChannel::build(&listener, &m, mechanism)
    }

    const SCRAM_JAAS: &str = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#;

    #[test]
    fn credentials_from_the_listeners_jaas_config() {
        let c = channel(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "PLAIN"),
                (
                    "listener.name.internal.sasl.enabled.mechanisms",
                    "SCRAM-SHA-512",
                ),
                (
                    "listener.name.internal.scram-sha-512.sasl.jaas.config",
                    SCRAM_JAAS,
                ),
            ],
            "SCRAM-SHA-512",
        )
        .unwrap();
        let sasl = c.sasl().unwrap();
        assert_eq!(sasl.username, "broker");
        assert_eq!(sasl.password, "broker-secret");
        assert!(!format!("{c:?}").contains("broker-secret"));
        // PLAIN's client sends its one token, then is done.
        let c = channel(
            "SASL_PLAINTEXT",
            &[
                ("sasl.enabled.mechanisms", "PLAIN"),
                (
                    "listener.name.internal.plain.sasl.jaas.config",
                    r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="pw" user_admin="pw";"#,
                ),
            ],
            "PLAIN",
        )
        .unwrap();
        let mut client = c.sasl().unwrap().client().unwrap();
        assert_eq!(client.evaluate(b"").unwrap().unwrap(), b"\0admin\0pw");
        assert_eq!(client.evaluate(b"").unwrap(), None);
        // A mechanism without a client side here is refused, not answered with PLAIN's token.
        let bearer = SaslCredentials {
            mechanism: SaslMechanism::OAuthBearer,
            ..c.sasl().unwrap().clone()
        };
        assert!(bearer.client().is_err());
        // A plaintext listener has no SASL side.
        assert!(channel("PLAINTEXT", &[], "GSSAPI")
            .unwrap()
            .sasl()
            .is_none());
    }

    #[test]
    fn settings_that_stop_start_up() {
        let scram = [
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                SCRAM_JAAS,
            ),
        ];
        // Kafka's default mechanism, GSSAPI; OAUTHBEARER; a mechanism the listener does not
        // enable; no JAAS config for it; a JAAS config without the broker's credentials.
        for (mechanism, settings) in [
            ("GSSAPI", &scram[..]),
            ("OAUTHBEARER", &scram[..]),
            ("SCRAM-SHA-256", &scram[..]),
            ("SCRAM-SHA-512", &scram[..1]),
        ] {
            assert!(
                channel("SASL_SSL", settings, mechanism).is_err(),
                "{mechanism}"
            );
        }
        let no_password = [
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker";"#,
            ),
        ];
        assert!(channel("SASL_PLAINTEXT", &no_password, "SCRAM-SHA-512").is_err());
        // TLS: Java's algorithms or none; another name stops start-up.
        let trust = format!(
            "{}/src/security/testdata/server-jks.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        for (algorithm, ok) in [("https", true), ("", true), ("HTTPS", true), ("dns", false)] {
            let c = channel(
                "SSL",
                &[
                    ("ssl.truststore.type", "PEM"),
                    ("ssl.truststore.location", &trust),
                    (
                        "listener.name.internal.ssl.endpoint.identification.algorithm",
                        algorithm,
                    ),
                ],
                "GSSAPI",
            );
            match c {
                Ok(_) => assert!(ok, "{algorithm}"),
                Err(e) => {
                    assert!(!ok, "{algorithm}: {e}");
                    assert!(e
                        .to_string()
                        .contains("ssl.endpoint.identification.algorithm"));
                }
            }
        }
    }
}
