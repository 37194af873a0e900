//! TLS on SSL and SASL_SSL listeners, with rustls, from Kafka's `ssl.*` settings (each also per
//! listener as `listener.name.<l>.ssl.*`):
//!
//! - `ssl.keystore.type=PEM`: the key and certificate chain inline
//!   (`ssl.keystore.key`, `ssl.keystore.certificate.chain`) or in one file
//!   (`ssl.keystore.location`, key and certificates together). The key is unencrypted PKCS#8
//!   (`PRIVATE KEY`; PKCS#1 and SEC1 keys are read too). JKS and PKCS12 stores are refused at
//!   start-up with a message saying so.
//! - `ssl.truststore.type=PEM`: CA certificates inline (`ssl.truststore.certificates`) or in a
//!   file (`ssl.truststore.location`), used to verify client certificates.
//! - `ssl.client.auth`: `none` (default), `requested` (a certificate is verified when sent),
//!   `required`.
//! - `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
//!
//! PEM text is read as Kafka's PemStore reads it: whatever lies between the BEGIN and END
//! lines, whitespace ignored, so a value joined from continuation lines works.
//!
//! A client certificate's subject becomes the principal, `User:` + the distinguished name in
//! RFC 2253 form (Java's X500Principal.getName(), Kafka's default principal builder), e.g.
//! `User:CN=alice,OU=eng,O=acme`.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

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

/// The PEM blocks of `text` as (label, DER bytes).
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or("a PEM BEGIN line without its dashes")?;
        let label = after[..label_end].trim().to_string();
        let body_and_more = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_and_more
            .find(&end_marker)
            .ok_or_else(|| format!("no END line for PEM {label}"))?;
        let body: String = body_and_more[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = B64
            .decode(body)
            .map_err(|e| format!("PEM {label} is not base64: {e}"))?;
        out.push((label, der));
        rest = &body_and_more[end + end_marker.len()..];
    }
    Ok(out)
}

fn certificates(blocks: &[(String, Vec<u8>)]) -> Vec<CertificateDer<'static>> {
    blocks
        .iter()
        .filter(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| CertificateDer::from(d.clone()))
        .collect()
}

fn private_key(blocks: &[(String, Vec<u8>)]) -> Result<PrivateKeyDer<'static>, String> {
    for (label, der) in blocks {
        let key =
            match label.as_str() {
                "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.clone())),
                "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.clone())),
                "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.clone())),
                "ENCRYPTED PRIVATE KEY" => return Err(
                    "encrypted private keys are not supported yet: use an unencrypted PKCS#8 key"
                        .into(),
                ),
                _ => continue,
            };
        return Ok(key);
    }
    Err("no private key".into())
}

fn read_file(s: &ListenerSettings<'_>, setting: &str, path: &str) -> Result<String, SecurityError> {
    std::fs::read_to_string(path).map_err(|e| s.error(setting, format!("cannot read {path}: {e}")))
}

fn require_pem(s: &ListenerSettings<'_>, setting: &str) -> Result<(), SecurityError> {
    match s.get(setting) {
        None => Err(s.error(
            setting,
            "gregor reads PEM stores only: set it to PEM (Kafka's default JKS is not supported)",
        )),
        Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(()),
        Some(t) => Err(s.error(
            setting,
            format!("{t} stores are not supported yet: use PEM"),
        )),
    }
}

/// The key and certificate chain of the listener.
fn keystore(
    s: &ListenerSettings<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SecurityError> {
    require_pem(s, "ssl.keystore.type")?;
    let (setting, text) = match (
        s.get("ssl.keystore.certificate.chain"),
        s.get("ssl.keystore.key"),
        s.get("ssl.keystore.location"),
    ) {
        (Some(chain), Some(key), _) => ("ssl.keystore.key", format!("{key}\n{chain}")),
        (_, _, Some(path)) => (
            "ssl.keystore.location",
            read_file(s, "ssl.keystore.location", path)?,
        ),
        _ => {
            return Err(s.error(
                "ssl.keystore.location",
                "a TLS listener needs a key and certificate (ssl.keystore.location, or ssl.keystore.key and ssl.keystore.certificate.chain)",
            ))
        }
    };
    let blocks = pem_blocks(&text).map_err(|e| s.error(setting, e))?;
    let certs = certificates(&blocks);
    if certs.is_empty() {
        return Err(s.error(setting, "no certificate"));
    }
    let key = private_key(&blocks).map_err(|e| s.error(setting, e))?;
    Ok((certs, key))
}

/// The CA certificates client certificates are verified against.
fn truststore(s: &ListenerSettings<'_>) -> Result<rustls::RootCertStore, SecurityError> {
    require_pem(s, "ssl.truststore.type")?;
    let (setting, text) = match (s.get("ssl.truststore.certificates"), s.get("ssl.truststore.location")) {
        (Some(inline), _) => ("ssl.truststore.certificates", inline.to_string()),
        (None, Some(path)) => (
            "ssl.truststore.location",
            read_file(s, "ssl.truststore.location", path)?,
        ),
        (None, None) => {
            return Err(s.error(
                "ssl.truststore.location",
                "ssl.client.auth needs a truststore (ssl.truststore.location or ssl.truststore.certificates)",
            ))
        }
    };
    let blocks = pem_blocks(&text).map_err(|e| s.error(setting, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&blocks) {
        roots
            .add(cert)
            .map_err(|e| s.error(setting, format!("bad CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(s.error(setting, "no certificate"));
    }
    Ok(roots)
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
            // Kafka drops versions the JVM does not offer; older ones are not offered here.
            "TLSv1" | "TLSv1.1" => {}
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

impl TlsSettings {
    pub fn build(s: &ListenerSettings<'_>) -> Result<TlsSettings, SecurityError> {
        let client_auth = match s
            .get("ssl.client.auth")
            .unwrap_or("none")
            .to_ascii_lowercase()
            .as_str()
        {
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
        let (certs, key) = keystore(s)?;
        // ring rather than aws-lc-rs keeps the binary small and the build free of cmake; rustls
        // marks it deprecated only because it lacks post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&protocol_versions(s)?)
            .map_err(|e| s.error("ssl.enabled.protocols", e.to_string()))?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let roots = Arc::new(truststore(s)?);
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

/// The principal of a TLS connection: the client certificate's subject mapped by
/// ssl.principal.mapping.rules, or ANONYMOUS without one (Kafka's DefaultKafkaPrincipalBuilder).
/// None when no rule applies to the subject: Kafka fails such a connection.
pub fn principal(
    peer_certificates: Option<&[CertificateDer<'_>]>,
    mapper: &super::ssl_principal_mapper::SslPrincipalMapper,
) -> Option<String> {
    match peer_certificates
        .and_then(|c| c.first())
        .and_then(|c| subject_rfc2253(c.as_ref()))
    {
        Some(dn) => mapper.name(&dn).map(|name| format!("User:{name}")),
        None => Some(super::ANONYMOUS.to_string()),
    }
}

/// A DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
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

    #[test]
    fn pem_joined_from_continuation_lines() {
        let text = "-----BEGIN CERTIFICATE----- AAEC AwQ= -----END CERTIFICATE----------BEGIN PRIVATE KEY-----\nBQY=\n-----END PRIVATE KEY-----";
        let b = pem_blocks(text).unwrap();
        assert_eq!(b[0], ("CERTIFICATE".to_string(), vec![0, 1, 2, 3, 4]));
        assert_eq!(b[1], ("PRIVATE KEY".to_string(), vec![5, 6]));
        assert!(private_key(&b).is_ok());
        assert!(pem_blocks("-----BEGIN CERTIFICATE----- AAEC").is_err());
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
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }
}
