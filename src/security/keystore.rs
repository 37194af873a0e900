//! Keystores and truststores as Kafka's DefaultSslEngineFactory loads them, from the `ssl.*`
//! settings of a listener:
//!
//! - `ssl.keystore.type` / `ssl.truststore.type`: `JKS` (Kafka's default), `PKCS12` or `PEM`,
//!   case-insensitive as Java's KeyStore.getInstance is. As Java 9+ does (keystore.type.compat),
//!   a JKS or PKCS12 file is read by its content, so a PKCS12 file under the default type JKS
//!   works, as it does on Kafka.
//! - JKS and PKCS12 files: `ssl.keystore.location` with `ssl.keystore.password` (required, as
//!   Kafka requires it) and `ssl.key.password` (the key's own password, the store's when unset);
//!   `ssl.truststore.location` with `ssl.truststore.password` (optional for JKS: without it the
//!   store's integrity is not checked, as in Java).
//! - PEM: the key and certificate chain inline (`ssl.keystore.key`,
//!   `ssl.keystore.certificate.chain`) or in one file (`ssl.keystore.location`); the key is
//!   PKCS#8 (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` decrypted with `ssl.key.password`; PKCS#1
//!   and SEC1 keys are read too). CA certificates inline (`ssl.truststore.certificates`) or in a
//!   file. Kafka refuses a store password with PEM, and so does gregor.
//!
//! The JKS format (Sun's JavaKeyStore), all integers big-endian:
//!
//! ```text
//! magic u32 = 0xFEEDFEED, version u32 (1 or 2), count u32, then count entries:
//!   tag u32 (1: private key, 2: trusted certificate), alias (u16 length + modified UTF-8),
//!   creation time u64 (ms), then
//!   tag 1: protected key (u32 length + DER EncryptedPrivateKeyInfo), chain length u32,
//!          certificates;
//!   tag 2: one certificate.
//!   A certificate: (version 2 only) type (u16 length + UTF-8, "X.509"), u32 length + DER.
//! SHA-1(password as UTF-16BE, "Mighty Aphrodite", every byte before this digest): 20 bytes.
//! ```
//!
//! A protected key is Sun's KeyProtector (algorithm 1.3.6.1.4.1.42.2.17.1.1): salt (20 bytes),
//! the PKCS#8 key XORed with the stream SHA-1(password, salt), SHA-1(password, previous block),
//! ..., and SHA-1(password, key) to check the password.
//!
//! A wrong password or a corrupt store is a start-up error naming the setting, never a panic:
//! every length is checked against the bytes left before it is used.

use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use sha1::{Digest, Sha1};

use super::{ListenerSettings, SecurityError};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// A store's format, from `ssl.keystore.type` / `ssl.truststore.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Pem,
    /// JKS or PKCS12: Java reads either file under either name, by its content.
    Java,
}

impl StoreType {
    fn of(s: &ListenerSettings<'_>, setting: &str) -> Result<StoreType, SecurityError> {
        // Kafka's default for both settings is JKS.
        let name = s.get(setting).unwrap_or("JKS");
        if name.eq_ignore_ascii_case("PEM") {
            Ok(StoreType::Pem)
        } else if name.eq_ignore_ascii_case("JKS") || name.eq_ignore_ascii_case("PKCS12") {
            Ok(StoreType::Java)
        } else {
            Err(s.error(
                setting,
                format!("{name} stores are not supported: use JKS, PKCS12 or PEM"),
            ))
        }
    }
}

/// A listener's own key and the certificate chain that goes with it.
pub struct KeyStore {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The keystore of the listener (Kafka's DefaultSslEngineFactory.createKeystore rules).
pub fn keystore(s: &ListenerSettings<'_>) -> Result<KeyStore, SecurityError> {
    let store_type = StoreType::of(s, "ssl.keystore.type")?;
    let location = s.get("ssl.keystore.location");
    let password = s.get("ssl.keystore.password");
    let key_password = s.get("ssl.key.password");
    let inline_key = s.get("ssl.keystore.key");
    let inline_chain = s.get("ssl.keystore.certificate.chain");
    if inline_key.is_some() || inline_chain.is_some() {
        let refusal = if store_type != StoreType::Pem {
            Some((
                "ssl.keystore.key",
                "can be specified only for PEM keystores",
            ))
        } else if inline_chain.is_none() {
            Some((
                "ssl.keystore.certificate.chain",
                "is needed with ssl.keystore.key",
            ))
        } else if inline_key.is_none() {
            Some((
                "ssl.keystore.key",
                "is needed with ssl.keystore.certificate.chain",
            ))
        } else if location.is_some() {
            Some((
                "ssl.keystore.location",
                "cannot be set together with ssl.keystore.key",
            ))
        } else if password.is_some() {
            Some((
                "ssl.keystore.password",
                "cannot be specified with PEM, only ssl.key.password may be",
            ))
        } else {
            None
        };
        if let Some((setting, reason)) = refusal {
            return Err(s.error(setting, reason));
        }
        let text = format!(
            "{}\n{}",
            inline_key.unwrap_or_default(),
            inline_chain.unwrap_or_default()
        );
        return pem_keystore(&text, key_password).map_err(|e| s.error("ssl.keystore.key", e));
    }
    let Some(path) = location else {
        return Err(s.error(
            "ssl.keystore.location",
            "a TLS listener needs a key and certificate (ssl.keystore.location, or ssl.keystore.key and ssl.keystore.certificate.chain)",
        ));
    };
    let setting = "ssl.keystore.location";
    match store_type {
        StoreType::Pem => {
            if password.is_some() {
                return Err(s.error(
                    "ssl.keystore.password",
                    "cannot be specified with PEM, only ssl.key.password may be",
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| s.error(setting, format!("cannot read {path}: {e}")))?;
            pem_keystore(&text, key_password).map_err(|e| s.error(setting, e))
        }
        StoreType::Java => {
            let Some(password) = password else {
                return Err(s.error(
                    "ssl.keystore.password",
                    "ssl.keystore.location is set, but not its password",
                ));
            };
            let bytes = read_bytes(s, setting, path)?;
            java_keystore(&bytes, password, key_password.unwrap_or(password))
                .map_err(|e| s.error(setting, format!("{path}: {e}")))
        }
    }
}

/// The CA certificates client certificates are verified against (createTruststore's rules).
pub fn truststore(s: &ListenerSettings<'_>) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let store_type = StoreType::of(s, "ssl.truststore.type")?;
    let location = s.get("ssl.truststore.location");
    let password = s.get("ssl.truststore.password");
    let (setting, certs) = match (s.get("ssl.truststore.certificates"), location) {
        (Some(_), _) if store_type != StoreType::Pem => {
            return Err(s.error(
                "ssl.truststore.certificates",
                "can be specified only for PEM truststores",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(s.error(
                "ssl.truststore.location",
                "cannot be set together with ssl.truststore.certificates",
            ))
        }
        (Some(_), None) | (None, Some(_)) if store_type == StoreType::Pem && password.is_some() => {
            return Err(s.error(
                "ssl.truststore.password",
                "cannot be specified for PEM truststores",
            ))
        }
        (Some(inline), None) => {
            let blocks = pem_blocks(inline).map_err(|e| s.error("ssl.truststore.certificates", e))?;
            ("ssl.truststore.certificates", certificates(&blocks))
        }
        (None, Some(path)) if store_type == StoreType::Pem => {
            let setting = "ssl.truststore.location";
            let text = std::fs::read_to_string(path)
                .map_err(|e| s.error(setting, format!("cannot read {path}: {e}")))?;
            let blocks = pem_blocks(&text).map_err(|e| s.error(setting, e))?;
            (setting, certificates(&blocks))
        }
        (None, Some(path)) => {
            let setting = "ssl.truststore.location";
            let bytes = read_bytes(s, setting, path)?;
            let certs = java_truststore(&bytes, password)
                .map_err(|e| s.error(setting, format!("{path}: {e}")))?;
            (setting, certs)
        }
        (None, None) => {
            return Err(s.error(
                "ssl.truststore.location",
                "ssl.client.auth needs a truststore (ssl.truststore.location or ssl.truststore.certificates)",
            ))
        }
    };
    if certs.is_empty() {
        return Err(s.error(setting, "no trusted certificate"));
    }
    Ok(certs)
}

fn read_bytes(
    s: &ListenerSettings<'_>,
    setting: &str,
    path: &str,
) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|e| s.error(setting, format!("cannot read {path}: {e}")))
}

// ---- PEM -----------------------------------------------------------------------------------

/// The PEM blocks of `text` as (label, DER bytes), read as Kafka's PemStore reads them:
/// whatever lies between the BEGIN and END lines, whitespace ignored, so a value joined from
/// continuation lines works.
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

fn pem_keystore(text: &str, key_password: Option<&str>) -> Result<KeyStore, String> {
    let blocks = pem_blocks(text)?;
    let certs = certificates(&blocks);
    if certs.is_empty() {
        return Err("no certificate".into());
    }
    let key = pem_private_key(&blocks, key_password)?;
    Ok(KeyStore { certs, key })
}

fn pem_private_key(
    blocks: &[(String, Vec<u8>)],
    key_password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, String> {
    for (label, der) in blocks {
        let key = match label.as_str() {
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.clone())),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.clone())),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.clone())),
            "ENCRYPTED PRIVATE KEY" => {
                let password =
                    key_password.ok_or("the private key is encrypted: set ssl.key.password")?;
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(decrypt_pkcs8(der, password)?))
            }
            _ => continue,
        };
        return Ok(key);
    }
    Err("no private key".into())
}

/// An encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt with AES-CBC or DES-EDE3-CBC, as
/// `openssl pkcs8 -topk8` writes it) decrypted to its PrivateKeyInfo.
fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
        .map_err(|e| format!("the encrypted private key cannot be read: {e}"))?;
    let document = info.decrypt(password).map_err(|_| {
        "the private key cannot be decrypted: wrong ssl.key.password, or a scheme other than PBES2"
            .to_string()
    })?;
    Ok(document.as_bytes().to_vec())
}

// ---- JKS and PKCS12 ------------------------------------------------------------------------

const JKS_MAGIC: u32 = 0xFEED_FEED;
const JCEKS_MAGIC: u32 = 0xCECE_CECE;

enum JavaStore {
    Jks,
    Pkcs12,
}

fn java_store_kind(bytes: &[u8]) -> Result<JavaStore, String> {
    let magic = bytes
        .get(..4)
        .map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
    match magic {
        Some(JKS_MAGIC) => Ok(JavaStore::Jks),
        Some(JCEKS_MAGIC) => Err("JCEKS stores are not supported: use JKS or PKCS12".into()),
        // A PKCS#12 PFX is a DER SEQUENCE.
        _ if bytes.first() == Some(&0x30) => Ok(JavaStore::Pkcs12),
        _ => Err("neither a JKS nor a PKCS12 store".into()),
    }
}

fn java_keystore(bytes: &[u8], password: &str, key_password: &str) -> Result<KeyStore, String> {
    let store = java_keystore_entries(bytes, password, key_password)?;
    if let PrivateKeyDer::Pkcs8(key) = &store.key {
        if ec_key_without_public_key(key.secret_pkcs8_der()) {
            // ring needs the public key beside the private one; Java's SunEC leaves it out.
            return Err(
                "its EC private key has no public key in it, as Java writes EC keys: \
                gregor (ring) cannot use it yet; use an RSA key, or EC keys made with openssl"
                    .into(),
            );
        }
    }
    Ok(store)
}

/// Whether a PKCS#8 key is an EC key (1.2.840.10045.2.1) whose ECPrivateKey lacks the
/// optional publicKey [1] (RFC 5915).
fn ec_key_without_public_key(pkcs8: &[u8]) -> bool {
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let der = super::tls::der;
    let Some((_, info, _)) = der(pkcs8) else {
        return false;
    };
    let Some((_, algorithm, rest)) = der(info).and_then(|(_, _, rest)| der(rest)) else {
        return false;
    };
    if der(algorithm).map(|(_, oid, _)| oid) != Some(EC_PUBLIC_KEY) {
        return false;
    }
    let Some((_, mut ec_private_key, _)) = der(rest).and_then(|(_, key, _)| der(key)) else {
        return false;
    };
    while let Some((tag, _, next)) = der(ec_private_key) {
        if tag == 0xa1 {
            return false;
        }
        ec_private_key = next;
    }
    true
}

fn java_keystore_entries(
    bytes: &[u8],
    password: &str,
    key_password: &str,
) -> Result<KeyStore, String> {
    match java_store_kind(bytes)? {
        JavaStore::Jks => {
            let store = JksStore::read(bytes, Some(password))?;
            let (protected, chain) = store
                .keys
                .first()
                .ok_or("no private key entry in the keystore")?;
            if chain.is_empty() {
                return Err("the private key entry has no certificate".into());
            }
            let key = jks_unprotect_key(protected, key_password)?;
            Ok(KeyStore {
                certs: chain.clone(),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            })
        }
        JavaStore::Pkcs12 => {
            // keytool writes PKCS12 keys under the store's password; a separate
            // ssl.key.password is tried when the store's does not open them.
            let store = p12_keystore::KeyStore::from_pkcs12(
                bytes,
                password,
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .or_else(|first| {
                if key_password == password {
                    Err(first)
                } else {
                    p12_keystore::KeyStore::from_pkcs12(
                        bytes,
                        key_password,
                        p12_keystore::Pkcs12ImportPolicy::Strict,
                    )
                }
            })
            .map_err(pkcs12_error)?;
            let (_, chain) = store
                .private_key_chain()
                .ok_or("no private key entry with its certificate in the keystore")?;
            Ok(KeyStore {
                certs: chain
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect(),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
            })
        }
    }
}

/// A truststore's trusted certificates: JKS trusted-certificate entries; in PKCS12, the
/// certificates keytool marks trusted and any other certificate not tied to a key (as
/// `openssl pkcs12 -export -nokeys` writes them).
fn java_truststore(
    bytes: &[u8],
    password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    match java_store_kind(bytes)? {
        JavaStore::Jks => Ok(JksStore::read(bytes, password)?.trusted),
        JavaStore::Pkcs12 => {
            // Java reads only unencrypted bags without a password; keytool encrypts
            // certificates, so gregor asks for the password.
            let password =
                password.ok_or("ssl.truststore.password is needed to read a PKCS12 truststore")?;
            let archive =
                p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password).map_err(pkcs12_error)?;
            Ok(archive
                .certs
                .iter()
                .filter(|c| c.trusted || c.local_key_id.is_none())
                .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
                .collect())
        }
    }
}

fn pkcs12_error(e: p12_keystore::error::Error) -> String {
    use p12_keystore::error::Error;
    match e {
        Error::MacError(_) | Error::UnpadError => {
            "keystore password was incorrect (the PKCS12 store's integrity check failed)".into()
        }
        other => format!("not a readable PKCS12 store: {other}"),
    }
}

/// The entries of a JKS file.
#[derive(Default)]
struct JksStore {
    /// Private key entries: the protected key and its certificate chain, in file order.
    keys: Vec<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    trusted: Vec<CertificateDer<'static>>,
}

/// A bounds-checked reader over a store's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("the keystore is truncated or corrupt")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<usize, String> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn len32(&mut self) -> Result<usize, String> {
        usize::try_from(self.u32()?).map_err(|_| "a length out of range".to_string())
    }

    fn certificate(&mut self, version: u32) -> Result<CertificateDer<'static>, String> {
        if version == 2 {
            let type_len = self.u16()?;
            let cert_type = self.take(type_len)?;
            if cert_type != b"X.509" {
                return Err(format!(
                    "a {} certificate: only X.509 is supported",
                    String::from_utf8_lossy(cert_type)
                ));
            }
        }
        let len = self.len32()?;
        Ok(CertificateDer::from(self.take(len)?.to_vec()))
    }
}

impl JksStore {
    /// Reads a JKS file, checking its integrity digest when a password is given.
    fn read(bytes: &[u8], password: Option<&str>) -> Result<JksStore, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.u32()? != JKS_MAGIC {
            return Err("not a JKS store".into());
        }
        let version = r.u32()?;
        if version != 1 && version != 2 {
            return Err(format!("JKS version {version} is not supported"));
        }
        let count = r.u32()?;
        let mut store = JksStore::default();
        for _ in 0..count {
            let tag = r.u32()?;
            let alias_len = r.u16()?;
            r.take(alias_len)?;
            r.take(8)?; // creation time
            match tag {
                1 => {
                    let len = r.len32()?;
                    let protected = r.take(len)?.to_vec();
                    let chain_len = r.u32()?;
                    let mut chain = Vec::new();
                    for _ in 0..chain_len {
                        chain.push(r.certificate(version)?);
                    }
                    store.keys.push((protected, chain));
                }
                2 => store.trusted.push(r.certificate(version)?),
                other => return Err(format!("a JKS entry of unknown kind {other}")),
            }
        }
        let body_end = r.at;
        let digest = r.take(20)?;
        if let Some(password) = password {
            let mut sha = Sha1::new();
            sha.update(utf16_be(password));
            sha.update(b"Mighty Aphrodite");
            sha.update(&bytes[..body_end]);
            if sha.finalize().as_slice() != digest {
                return Err(
                    "keystore password was incorrect (the JKS store's integrity check failed)"
                        .into(),
                );
            }
        }
        Ok(store)
    }
}

/// A password as Java hands it to the JKS digests: each UTF-16 unit, high byte first.
fn utf16_be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// The JKS KeyProtector's algorithm identifier, 1.3.6.1.4.1.42.2.17.1.1, as DER contents.
const KEY_PROTECTOR_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];

/// The PKCS#8 key inside a JKS private key entry.
fn jks_unprotect_key(protected: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let corrupt = || "the keystore's private key entry is corrupt".to_string();
    // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
    let (_, info, _) = super::tls::der(protected).ok_or_else(corrupt)?;
    let (_, algorithm, rest) = super::tls::der(info).ok_or_else(corrupt)?;
    let (_, oid, _) = super::tls::der(algorithm).ok_or_else(corrupt)?;
    if oid != KEY_PROTECTOR_OID {
        return Err("the private key is protected by an algorithm other than JKS's".into());
    }
    let (tag, data, _) = super::tls::der(rest).ok_or_else(corrupt)?;
    if tag != 0x04 || data.len() < 40 {
        return Err(corrupt());
    }
    let (salt, rest) = data.split_at(20);
    let (encrypted, check) = rest.split_at(rest.len() - 20);
    let password = utf16_be(password);
    let mut key = Vec::with_capacity(encrypted.len());
    let mut block: Vec<u8> = salt.to_vec();
    for chunk in encrypted.chunks(20) {
        let mut sha = Sha1::new();
        sha.update(&password);
        sha.update(&block);
        block = sha.finalize().to_vec();
        key.extend(chunk.iter().zip(&block).map(|(c, k)| c ^ k));
    }
    let mut sha = Sha1::new();
    sha.update(&password);
    sha.update(&key);
    if sha.finalize().as_slice() != check {
        return Err(
            "the private key cannot be recovered: wrong ssl.key.password (or ssl.keystore.password)"
                .into(),
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenerConfig;
    use std::collections::BTreeMap;

    /// Stores made with keytool (JDK 17) and openssl: see testdata/README.md.
    fn testdata(name: &str) -> String {
        format!(
            "{}/src/security/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn bytes(name: &str) -> Vec<u8> {
        std::fs::read(testdata(name)).unwrap()
    }

    fn pem_cert(name: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(testdata(name)).unwrap();
        pem_blocks(&text).unwrap().remove(0).1
    }

    /// The key matches the certificate: rustls builds a server config from them.
    fn usable(store: KeyStore) -> Vec<u8> {
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let leaf = store.certs[0].to_vec();
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(store.certs, store.key)
            .unwrap();
        leaf
    }

    fn with_settings<T>(pairs: &[(&str, &str)], f: impl FnOnce(&ListenerSettings<'_>) -> T) -> T {
        let listener = ListenerConfig {
            name: "SSL".into(),
            protocol: crate::config::SecurityProtocol::Ssl,
            host: "127.0.0.1".into(),
            port: 0,
            advertised: None,
        };
        let settings: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.replace("$DATA", &testdata(""))))
            .collect();
        f(&ListenerSettings {
            listener: &listener,
            settings: &settings,
        })
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        with_settings(pairs, |s| match keystore(s) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        })
    }

    #[test]
    fn jks_keystore_with_its_own_key_password() {
        let store = java_keystore(&bytes("server.jks"), "store-secret", "key-secret").unwrap();
        assert_eq!(store.certs.len(), 1);
        assert_eq!(usable(store), pem_cert("server-jks.pem"));
        let wrong_key = java_keystore(&bytes("server.jks"), "store-secret", "store-secret");
        assert!(wrong_key.err().unwrap().contains("ssl.key.password"));
        let wrong_store = java_keystore(&bytes("server.jks"), "nope", "key-secret");
        assert!(wrong_store
            .err()
            .unwrap()
            .contains("password was incorrect"));
    }

    #[test]
    fn pkcs12_keystores_from_keytool_and_legacy_openssl() {
        let store = java_keystore(&bytes("server.p12"), "store-secret", "store-secret").unwrap();
        assert_eq!(usable(store), pem_cert("server-p12.pem"));
        // PBE-SHA1-3DES keys and RC2-40 certificates (openssl pkcs12 -export -legacy).
        let legacy = java_keystore(&bytes("legacy.p12"), "store-secret", "store-secret").unwrap();
        assert_eq!(usable(legacy), pem_cert("legacy.pem"));
        let wrong = java_keystore(&bytes("server.p12"), "nope", "nope");
        assert!(wrong.err().unwrap().contains("password was incorrect"));
        // keytool's EC keys carry no public key, which ring needs: a clear refusal.
        let ec = java_keystore(&bytes("server-ec.p12"), "store-secret", "store-secret");
        assert!(ec.err().unwrap().contains("as Java writes EC keys"));
    }

    #[test]
    fn truststores() {
        let jks = java_truststore(&bytes("trust.jks"), Some("trust-secret")).unwrap();
        assert_eq!(jks, vec![CertificateDer::from(pem_cert("server-jks.pem"))]);
        // Without a password a JKS store is read without its integrity check, as in Java.
        assert_eq!(java_truststore(&bytes("trust.jks"), None).unwrap(), jks);
        assert!(java_truststore(&bytes("trust.jks"), Some("nope")).is_err());
        let p12 = java_truststore(&bytes("trust.p12"), Some("trust-secret")).unwrap();
        assert_eq!(p12, vec![CertificateDer::from(pem_cert("server-p12.pem"))]);
        assert!(java_truststore(&bytes("trust.p12"), None).is_err());
        assert!(java_truststore(&bytes("trust.p12"), Some("nope")).is_err());
        // A keystore has no trusted certificate entry.
        assert!(java_truststore(&bytes("server.jks"), Some("store-secret"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn corrupt_stores_are_errors_not_panics() {
        for name in ["server.jks", "server.p12", "trust.jks", "legacy.p12"] {
            let good = bytes(name);
            for cut in [0, 3, 4, 11, 20, good.len() / 2, good.len() - 1] {
                assert!(java_keystore(&good[..cut], "store-secret", "key-secret").is_err());
                let _ = java_truststore(&good[..cut], Some("trust-secret"));
            }
            // Bytes flipped here and there (each try derives keys: a sample, not all): never a
            // panic.
            for i in (0..good.len()).step_by(good.len() / 12) {
                let mut bad = good.clone();
                bad[i] ^= 0x5a;
                let _ = java_keystore(&bad, "store-secret", "key-secret");
                let _ = java_truststore(&bad, Some("trust-secret"));
            }
        }
        // A huge length is refused before anything is allocated.
        let mut huge = JKS_MAGIC.to_be_bytes().to_vec();
        huge.extend([0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, b'a']);
        huge.extend([0; 8]);
        huge.extend([0, 5]);
        huge.extend(b"X.509");
        huge.extend([0xff; 4]);
        assert!(java_truststore(&huge, None)
            .unwrap_err()
            .contains("truncated"));
        assert!(java_keystore(b"\xce\xce\xce\xce", "x", "x")
            .err()
            .unwrap()
            .contains("JCEKS"));
    }

    #[test]
    fn encrypted_pem_key() {
        let text = std::fs::read_to_string(testdata("encrypted-keystore.pem")).unwrap();
        let store = pem_keystore(&text, Some("key-secret")).unwrap();
        assert_eq!(usable(store), pem_cert("legacy.pem"));
        assert!(pem_keystore(&text, None)
            .err()
            .unwrap()
            .contains("set ssl.key.password"));
        assert!(pem_keystore(&text, Some("nope"))
            .err()
            .unwrap()
            .contains("wrong ssl.key.password"));
    }

    /// Kafka's DefaultSslEngineFactory rules on the settings, and JKS as the default type.
    #[test]
    fn settings() {
        let jks = [
            ("ssl.keystore.location", "$DATA/server.jks"),
            ("ssl.keystore.password", "store-secret"),
            ("ssl.key.password", "key-secret"),
        ];
        assert_eq!(error(&jks), "ok");
        // A PKCS12 file under the type JKS (keystore.type.compat), and the other way round.
        assert_eq!(
            error(&[
                ("ssl.keystore.type", "JKS"),
                ("ssl.keystore.location", "$DATA/server.p12"),
                ("ssl.keystore.password", "store-secret"),
            ]),
            "ok"
        );
        assert_eq!(
            error(&[
                ("ssl.keystore.type", "pkcs12"),
                (
                    "listener.name.ssl.ssl.keystore.location",
                    "$DATA/server.jks"
                ),
                ("ssl.keystore.password", "store-secret"),
                ("ssl.key.password", "key-secret"),
            ]),
            "ok"
        );
        assert!(error(&jks[..1]).contains("ssl.keystore.password: ssl.keystore.location is set"));
        assert!(error(&[("ssl.keystore.type", "BCFKS")]).contains("BCFKS stores are not supported"));
        assert!(error(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "$DATA/encrypted-keystore.pem"),
            ("ssl.keystore.password", "key-secret"),
        ])
        .contains("cannot be specified with PEM"));
        assert_eq!(
            error(&[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", "$DATA/encrypted-keystore.pem"),
                ("ssl.key.password", "key-secret"),
            ]),
            "ok"
        );
        assert!(error(&[
            ("ssl.keystore.location", "$DATA/server.jks"),
            ("ssl.keystore.password", "wrong"),
        ])
        .contains("password was incorrect"));
        assert!(error(&[
            ("ssl.keystore.location", "$DATA/missing.jks"),
            ("ssl.keystore.password", "x"),
        ])
        .contains("cannot read"));
        let trust = |pairs: &[(&str, &str)]| {
            with_settings(pairs, |s| {
                truststore(s).map(|c| c.len()).map_err(|e| e.to_string())
            })
        };
        assert_eq!(
            trust(&[("ssl.truststore.location", "$DATA/trust.jks")]),
            Ok(1)
        );
        assert_eq!(
            trust(&[
                ("ssl.truststore.type", "PKCS12"),
                ("ssl.truststore.location", "$DATA/trust.p12"),
                ("ssl.truststore.password", "trust-secret"),
            ]),
            Ok(1)
        );
        assert!(trust(&[
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "$DATA/legacy.pem"),
            ("ssl.truststore.password", "x"),
        ])
        .unwrap_err()
        .contains("cannot be specified for PEM"));
    }
}
