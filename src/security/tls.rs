//! TLS on SSL and SASL_SSL listeners, with rustls, from Kafka's `ssl.*` settings (each also per
//! listener as `listener.name.<l>.ssl.*`):
//!
//! - the key and certificate chain from the keystore, and the CA certificates client
//!   certificates are verified against from the truststore (`keystore`: JKS, PKCS12 or PEM).
//! - `ssl.client.auth`: `none` (default), `requested` (a certificate is verified when sent),
//!   `required`.
//! - `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
//! - the client side of a listener (`client_config`, this broker connecting to another's
//!   inter-broker listener): the truststore verifies the server, whose name is checked per
//!   `ssl.endpoint.identification.algorithm`; the keystore is the client certificate.
//!
//! A client certificate's subject becomes the principal, `User:` + the distinguished name in
//! RFC 2253 form (Java's X500Principal.getName(), Kafka's default principal builder), e.g.
//! `User:CN=alice,OU=eng,O=acme`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{ListenerSettings, SecurityError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A TLS listener's acceptor.
#[derive(Clone)]
pub struct TlsSettings {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub client_auth: ClientAuth,
    /// ssl.principal.mapping.rules: a client certificate's subject to a principal name.
    pub principal_mapper: super::ssl_principal_mapper::SslPrincipalMapper,
}

fn protocol_versions(
    s: &ListenerSettings<'_>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, SecurityError> {
    let list = s.get("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3");
    let mut out = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "TLSv1.2" => out.push(&rustls::version::TLS12),
            "TLSv1.3" => out.push(&rustls::version::TLS13),
            // Versions Java knows that gregor does not serve (Java disables them by default).
            "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" => {}
            other => {
                return Err(s.error("ssl.enabled.protocols", format!("unknown protocol {other}")))
            }
        }
    }
    if out.is_empty() {
        return Err(s.error(
            "ssl.enabled.protocols",
            "no TLS version gregor serves (TLSv1.2, TLSv1.3)",
        ));
    }
    Ok(out)
}

/// The rustls suite of a Java (JSSE) cipher suite name. JSSE names TLS 1.2 suites as IANA does
/// and TLS 1.3 suites without the "13" rustls puts after TLS; rustls' own names are taken too.
fn suite_named(
    name: &str,
    suites: &[rustls::SupportedCipherSuite],
) -> Option<rustls::SupportedCipherSuite> {
    let rustls_name = match name.strip_prefix("TLS_") {
        Some(rest) if !rest.contains("_WITH_") => format!("TLS13_{rest}"),
        _ => name.to_string(),
    };
    suites.iter().copied().find(|suite| {
        suite
            .suite()
            .as_str()
            .is_some_and(|n| n == rustls_name || n == name)
    })
}

/// The suites Java 17+ (JSSE) supports that rustls does not serve (DHE and RSA key exchange,
/// CBC modes): Kafka accepts them, gregor leaves them out of a list with a warning.
const JSSE_ONLY_SUITES: &[&str] = &[
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
];

/// `ssl.cipher.suites` (Kafka's default, empty: every suite the provider has), with Java's
/// names. A name Java does not know fails the start: on Kafka it fails every connection of the
/// listener ("Unsupported CipherSuite" from the SSLEngine) while the broker runs on. Suites
/// only Java serves are left out with a warning; a list left empty fails the start.
fn cipher_suites(
    s: &ListenerSettings<'_>,
    available: &[rustls::SupportedCipherSuite],
) -> Result<Vec<rustls::SupportedCipherSuite>, SecurityError> {
    let Some(list) = s.get("ssl.cipher.suites") else {
        return Ok(available.to_vec());
    };
    let served = || {
        available
            .iter()
            .filter_map(|suite| suite.suite().as_str())
            .map(|n| n.replacen("TLS13_", "TLS_", 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match suite_named(name, available) {
            Some(suite) if !out.contains(&suite) => out.push(suite),
            Some(_) => {}
            None if JSSE_ONLY_SUITES.contains(&name) => left_out.push(name),
            None => {
                return Err(s.error(
                    "ssl.cipher.suites",
                    format!(
                        "unsupported cipher suite {name} (gregor serves {})",
                        served()
                    ),
                ))
            }
        }
    }
    if out.is_empty() && !left_out.is_empty() {
        return Err(s.error(
            "ssl.cipher.suites",
            format!(
                "none of these suites is served by gregor (rustls): {} (gregor serves {})",
                left_out.join(", "),
                served()
            ),
        ));
    }
    if !left_out.is_empty() {
        tracing::warn!(
            listener = %s.listener.name,
            "ssl.cipher.suites: {} not served by gregor (rustls), left out",
            left_out.join(", ")
        );
    }
    if out.is_empty() {
        return Ok(available.to_vec());
    }
    Ok(out)
}

/// The crypto provider of a listener: ring's, with the listener's `ssl.cipher.suites`. ring
/// rather than aws-lc-rs keeps the binary small and the build free of cmake; rustls marks it
/// deprecated only because it lacks post-quantum key exchange.
fn provider(
    s: &ListenerSettings<'_>,
) -> Result<Arc<rustls::crypto::CryptoProvider>, SecurityError> {
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = cipher_suites(s, &provider.cipher_suites)?;
    Ok(Arc::new(provider))
}

fn no_suite(s: &ListenerSettings<'_>, e: rustls::Error) -> SecurityError {
    s.error(
        "ssl.cipher.suites",
        format!("no cipher suite for the ssl.enabled.protocols: {e}"),
    )
}

/// Why a connection's TLS side did not start (`TlsSettings::accept`).
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
    /// Kafka fails such a connection too.
    #[error("no principal for the client certificate (no ssl.principal.mapping.rules rule applies, or its subject could not be read)")]
    NoPrincipal,
}

impl TlsSettings {
    /// The server side of TLS on an accepted connection, its handshake within `timeout`, and
    /// the client's principal (`principal`): what every TLS listener does first, the client
    /// listeners and the controller listener alike.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        timeout: Duration,
    ) -> Result<(tokio_rustls::server::TlsStream<S>, String), AcceptError> {
        let stream = tokio::time::timeout(timeout, self.acceptor.accept(stream))
            .await
            .map_err(|_| AcceptError::TimedOut)?
            .map_err(AcceptError::Handshake)?;
        let certificates = stream.get_ref().1.peer_certificates();
        let principal =
            principal(certificates, &self.principal_mapper).ok_or(AcceptError::NoPrincipal)?;
        Ok((stream, principal))
    }

    pub fn build(s: &ListenerSettings<'_>) -> Result<TlsSettings, SecurityError> {
        // Kafka (ChannelBuilders.create) applies ssl.client.auth to a SASL_SSL listener only
        // when it is set for that listener (`listener.name.<l>.ssl.client.auth`): SASL
        // authenticates its clients, and the broker-wide setting is meant for SSL listeners.
        let configured = match s.listener.protocol {
            crate::config::SecurityProtocol::SaslSsl => s.get_prefixed("ssl.client.auth"),
            _ => s.get("ssl.client.auth"),
        };
        let client_auth = match configured.unwrap_or("none").to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => {
                return Err(s.error(
                    "ssl.client.auth",
                    format!("{other}: expected none, requested or required"),
                ))
            }
        };
        let super::keystore::KeyStore { certs, key } = super::keystore::keystore(s)?;
        let provider = provider(s)?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&protocol_versions(s)?)
            .map_err(|e| no_suite(s, e))?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let roots = Arc::new(truststore_roots(s)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if client_auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| s.error("ssl.truststore.location", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| s.error("ssl.keystore.key", e.to_string()))?;
        let principal_mapper = match s.get("ssl.principal.mapping.rules") {
            Some(rules) => super::ssl_principal_mapper::SslPrincipalMapper::parse(rules)
                .map_err(|e| s.error("ssl.principal.mapping.rules", e))?,
            None => Default::default(),
        };
        Ok(TlsSettings {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            client_auth,
            principal_mapper,
        })
    }
}

/// The truststore's certificates as the roots a peer's certificate is verified against.
fn truststore_roots(s: &ListenerSettings<'_>) -> Result<rustls::RootCertStore, SecurityError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in super::keystore::truststore(s)? {
        roots.add(cert).map_err(|e| {
            s.error(
                "ssl.truststore.location",
                format!("bad CA certificate: {e}"),
            )
        })?;
    }
    Ok(roots)
}

/// Where Linux distributions keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The certificates a TLS client of `s` trusts: its truststore (`ssl.truststore.location` or
/// `ssl.truststore.certificates`), else the system's CA bundle (Java: the JVM's cacerts).
pub fn client_roots(s: &ListenerSettings<'_>) -> Result<rustls::RootCertStore, SecurityError> {
    if s.get("ssl.truststore.location").is_some() || s.get("ssl.truststore.certificates").is_some()
    {
        return truststore_roots(s);
    }
    let mut roots = rustls::RootCertStore::empty();
    let bundle = SYSTEM_CA_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .ok_or_else(|| {
            s.error(
                "ssl.truststore.location",
                "no truststore is set and no system CA bundle was found",
            )
        })?;
    let blocks = super::keystore::pem_blocks(&bundle).map_err(|e| {
        s.error(
            "ssl.truststore.location",
            format!("the system CA bundle: {e}"),
        )
    })?;
    for (_, der) in blocks.into_iter().filter(|(l, _)| l == "CERTIFICATE") {
        // A bundle may hold certificates webpki cannot use; the others still serve.
        let _ = roots.add(der.into());
    }
    Ok(roots)
}

/// The TLS side of a client of the listener `s` (Kafka's SslFactory in client mode, as a
/// broker's inter-broker clients configure it from the listener's settings): the server's
/// certificate verified against `client_roots`, and its name against the host connected to
/// unless `ssl.endpoint.identification.algorithm` is empty (Kafka's default, `https`, checks
/// it); `ssl.enabled.protocols` and `ssl.cipher.suites` as the listener serves them; the
/// listener's keystore, when it has one, presented to a server that asks for a certificate
/// (`ssl.client.auth` requested or required there).
pub fn client_config(s: &ListenerSettings<'_>) -> Result<rustls::ClientConfig, SecurityError> {
    let provider = provider(s)?;
    let roots = Arc::new(client_roots(s)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| s.error("ssl.truststore.location", e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&protocol_versions(s)?)
        .map_err(|e| no_suite(s, e))?;
    let setting = "ssl.endpoint.identification.algorithm";
    let builder = match s.get_raw(setting) {
        None => builder.with_webpki_verifier(verifier),
        // Java's two algorithms; for a broker's address both check its DNS or IP names.
        Some(a) if a.eq_ignore_ascii_case("https") || a.eq_ignore_ascii_case("ldaps") => {
            builder.with_webpki_verifier(verifier)
        }
        Some("") => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerName(verifier))),
        Some(other) => {
            return Err(s.error(
                setting,
                format!("{other}: expected https (the default) or an empty value"),
            ))
        }
    };
    let has_keystore = ["ssl.keystore.location", "ssl.keystore.key"]
        .iter()
        .any(|k| s.get(k).is_some());
    if !has_keystore {
        return Ok(builder.with_no_client_auth());
    }
    let super::keystore::KeyStore { certs, key } = super::keystore::keystore(s)?;
    builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| s.error("ssl.keystore.key", e.to_string()))
}

/// A server certificate verifier that checks the chain and not the name
/// (`ssl.endpoint.identification.algorithm` empty): webpki checks the name after the chain, so
/// a name mismatch is the one failure let through.
#[derive(Debug)]
struct AnyServerName(Arc<WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The principal of a TLS connection: the client certificate's subject mapped by
/// ssl.principal.mapping.rules, or ANONYMOUS without one (Kafka's DefaultKafkaPrincipalBuilder).
/// None when no rule applies to the subject: Kafka fails such a connection. None too for a
/// certificate whose subject this module cannot read (webpki verifies the chain without
/// parsing subjects): its sender is not anonymous, and taking it for ANONYMOUS would give it
/// whatever ACLs grant ANONYMOUS; Java always names the subject, so Kafka never gets here.
pub fn principal(
    peer_certificates: Option<&[CertificateDer<'_>]>,
    mapper: &super::ssl_principal_mapper::SslPrincipalMapper,
) -> Option<String> {
    let Some(certificate) = peer_certificates.and_then(|c| c.first()) else {
        return Some(super::ANONYMOUS.to_string());
    };
    let dn = subject_rfc2253(certificate.as_ref())?;
    mapper.name(&dn).map(|name| format!("User:{name}"))
}

/// A DER element: (tag, contents, rest).
pub(super) fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, r) = rest.split_at(n);
        rest = r;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// The dotted form of an OID.
fn oid_string(bytes: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() && i < bytes.len() {
                let first = (v / 40).min(2);
                parts.push(first);
                parts.push(v - first * 40);
            } else {
                parts.push(v);
            }
            v = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The keywords Java's RFC 2253 form uses; other attributes are written as OID=#hex.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_value(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, TeletexString, IA5String, VisibleString
        0x0c | 0x13 | 0x14 | 0x16 | 0x1a => Some(String::from_utf8_lossy(bytes).into_owned()),
        // BMPString: UTF-16BE
        0x1e => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// The subject of a DER certificate as RFC 2253 text (last RDN first).
pub fn subject_rfc2253(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = der(cert)?; // Certificate SEQUENCE
    let (_, tbs, _) = der(certificate)?; // TBSCertificate SEQUENCE
    let mut rest = tbs;
    let (tag, _, r) = der(rest)?;
    if tag == 0xa0 {
        rest = r; // [0] version
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        rest = der(rest)?.2;
    }
    let (_, mut rdns, _) = der(rest)?;
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let (_, mut set, r) = der(rdns)?;
        rdns = r;
        let mut attrs = Vec::new();
        while !set.is_empty() {
            let (_, atv, r) = der(set)?;
            set = r;
            let (_, oid, value_and_rest) = der(atv)?;
            let oid = oid_string(oid);
            let (vtag, value, _) = der(value_and_rest)?;
            let text = match (keyword(&oid), string_value(vtag, value)) {
                (Some(k), Some(v)) => format!("{k}={}", escape(&v)),
                _ => {
                    let whole =
                        &value_and_rest[..value_and_rest.len() - der(value_and_rest)?.2.len()];
                    let hex: String = whole.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{oid}=#{hex}")
                }
            };
            attrs.push(text);
        }
        out.push(attrs.join("+"));
    }
    out.reverse();
    Some(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::super::ssl_principal_mapper::SslPrincipalMapper;
    use super::*;

    /// Two CAs made with the openssl command line (as protocol-tests' certificates are), each
    /// signing a server certificate for localhost and 127.0.0.1: `a.pem` (with its key, a PEM
    /// keystore) by `ca-a.pem`, `b.pem` by `ca-b.pem`.
    fn two_cas(dir: &std::path::Path) {
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "openssl {args:?}: {err}");
        };
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        for n in ["a", "b"] {
            let (ca, ca_key) = (format!("ca-{n}.pem"), format!("ca-{n}.key"));
            let subject = format!("/CN=test-ca-{n}");
            #[rustfmt::skip]
            run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &ca_key,
                "-out", &ca, "-days", "2", "-subj", &subject]);
            let (key, csr, cert) = (format!("{n}.key"), format!("{n}.csr"), format!("{n}.pem"));
            #[rustfmt::skip]
            run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr,
                "-subj", "/CN=localhost"]);
            #[rustfmt::skip]
            run(&["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key,
                "-CAcreateserial", "-out", &cert, "-days", "2", "-extfile", "server.ext"]);
            let keystore = std::fs::read_to_string(dir.join(&key)).unwrap()
                + &std::fs::read_to_string(dir.join(&cert)).unwrap();
            std::fs::write(dir.join(format!("{n}-keystore.pem")), keystore).unwrap();
        }
    }

    /// A TLS handshake of the inter-broker client (`client_config` of a listener trusting
    /// `ca`, with `algorithm` as ssl.endpoint.identification.algorithm when given) connecting
    /// to `host`, with a server presenting `keystore`: the client's outcome.
    async fn handshake(
        dir: &std::path::Path,
        ca: &str,
        algorithm: Option<&str>,
        keystore: &str,
        host: &str,
    ) -> Result<(), String> {
        let path = |f: &str| dir.join(f).display().to_string();
        let (ca, keystore) = (path(ca), path(keystore));
        let mut client = vec![
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", ca.as_str()),
        ];
        client.extend(algorithm.map(|a| ("ssl.endpoint.identification.algorithm", a)));
        let server = [
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", keystore.as_str()),
        ];
        let build = |settings: &[(&str, &str)]| {
            super::super::tests::listener_and_settings("INTERNAL", "SSL", settings)
        };
        let (listener, settings) = build(&client);
        let s = ListenerSettings {
            listener: &listener,
            settings: &settings,
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&s).unwrap()));
        let (listener, settings) = build(&server);
        let s = ListenerSettings {
            listener: &listener,
            settings: &settings,
        };
        let acceptor = TlsSettings::build(&s).unwrap().acceptor;
        let (client_end, server_end) = tokio::io::duplex(64 << 10);
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
        let (client, _server) = tokio::join!(
            connector.connect(name, client_end),
            acceptor.accept(server_end)
        );
        client.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The inter-broker client's checks of the other broker's certificate (`AnyServerName`):
    /// the chain is checked whatever ssl.endpoint.identification.algorithm says, the name only
    /// with its default (https).
    #[tokio::test]
    async fn server_certificates_the_inter_broker_client_takes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        two_cas(d);
        // The right CA and name, with either algorithm.
        assert_eq!(
            handshake(d, "ca-a.pem", None, "a-keystore.pem", "localhost").await,
            Ok(())
        );
        assert_eq!(
            handshake(d, "ca-a.pem", Some(""), "a-keystore.pem", "localhost").await,
            Ok(())
        );
        // Another CA's certificate: refused, name check or not.
        for algorithm in [None, Some("")] {
            let e = handshake(d, "ca-a.pem", algorithm, "b-keystore.pem", "localhost").await;
            let e = e.unwrap_err();
            assert!(e.contains("UnknownIssuer"), "{algorithm:?}: {e}");
        }
        // A certificate for another host: refused with the default (https), taken without.
        for algorithm in [None, Some("https")] {
            let e = handshake(d, "ca-a.pem", algorithm, "a-keystore.pem", "other.example").await;
            let e = e.unwrap_err();
            assert!(e.contains("not valid for name"), "{algorithm:?}: {e}");
        }
        let any_name = handshake(d, "ca-a.pem", Some(""), "a-keystore.pem", "other.example");
        assert_eq!(any_name.await, Ok(()));
    }

    /// A certificate made with `openssl req -x509 -subj '/C=US/O=acme, inc/OU=eng/CN=alice'`.
    #[test]
    fn subject_in_rfc2253_order_and_escaping() {
        // Hand-built TBSCertificate: version, serial, sigalg, issuer, validity, subject.
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 128 {
                v.push(body.len() as u8);
            } else {
                v.push(0x81);
                v.push(body.len() as u8);
            }
            v.extend_from_slice(body);
            v
        }
        fn atv(oid: &[u8], tag: u8, value: &str) -> Vec<u8> {
            let mut body = tlv(0x06, oid);
            body.extend(tlv(tag, value.as_bytes()));
            tlv(0x31, &tlv(0x30, &body))
        }
        let mut name = Vec::new();
        name.extend(atv(&[0x55, 0x04, 0x06], 0x13, "US"));
        name.extend(atv(&[0x55, 0x04, 0x0a], 0x0c, "acme, inc"));
        name.extend(atv(&[0x55, 0x04, 0x0b], 0x0c, "eng"));
        name.extend(atv(&[0x55, 0x04, 0x03], 0x0c, "alice"));
        let subject = tlv(0x30, &name);
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[1]));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(subject);
        let cert = tlv(0x30, &tlv(0x30, &tbs));
        assert_eq!(
            subject_rfc2253(&cert).as_deref(),
            Some("CN=alice,OU=eng,O=acme\\, inc,C=US")
        );
        let der = CertificateDer::from(cert);
        assert_eq!(
            principal(Some(std::slice::from_ref(&der)), &Default::default()).as_deref(),
            Some("User:CN=alice,OU=eng,O=acme\\, inc,C=US")
        );
        // ssl.principal.mapping.rules: the CN alone, or no principal when no rule applies.
        let cn = SslPrincipalMapper::parse("RULE:^CN=([^,]*),.*$/$1/U").unwrap();
        assert_eq!(
            principal(Some(std::slice::from_ref(&der)), &cn).as_deref(),
            Some("User:ALICE")
        );
        let none = SslPrincipalMapper::parse("RULE:^O=.*$/x/").unwrap();
        assert_eq!(principal(Some(&[der]), &none), None);
        assert_eq!(
            principal(None, &Default::default()).as_deref(),
            Some("User:ANONYMOUS")
        );
        // A certificate whose subject cannot be read names no one, and is not anonymous.
        let unreadable = CertificateDer::from(tlv(0x30, &tlv(0x30, &tlv(0x02, &[1]))));
        assert_eq!(principal(Some(&[unreadable]), &Default::default()), None);
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }

    #[test]
    fn java_cipher_suite_names() {
        #[allow(deprecated)]
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        let name = |n: &str| suite_named(n, &all).and_then(|s| s.suite().as_str());
        assert_eq!(
            name("TLS_AES_256_GCM_SHA384"),
            Some("TLS13_AES_256_GCM_SHA384")
        );
        assert_eq!(
            name("TLS_CHACHA20_POLY1305_SHA256"),
            Some("TLS13_CHACHA20_POLY1305_SHA256")
        );
        assert_eq!(
            name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        );
        assert_eq!(
            name("TLS13_AES_128_GCM_SHA256"),
            Some("TLS13_AES_128_GCM_SHA256")
        );
        // Known to Java, not served by rustls (CBC, RSA key exchange), and a typo.
        assert_eq!(name("TLS_RSA_WITH_AES_128_CBC_SHA"), None);
        assert_eq!(name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265"), None);
    }
}
