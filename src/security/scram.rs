//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's ScramSaslServer runs them:
//! the credentials (salt, iterations, stored key, server key, never the password), the
//! computations (Hi is PBKDF2 with the mechanism's HMAC), and the server side of the exchange:
//! client-first (`n,[a=authzid],n=user,r=nonce[,ext=value]*`, gs2 flag `n` only, as Kafka's
//! pattern), server-first (`r=client+server nonce,s=salt,i=iterations`), client-final
//! (`c=binding,r=nonce[,ext]*,p=proof`), server-final (`v=signature`).
//!
//! Failures carry no detail to the client (SaslServerAuthenticator answers one generic message
//! for every SaslException); the reason goes to the broker's log.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256, Sha512};

/// org.apache.kafka.clients.admin.ScramMechanism: the type ids of the admin API and of
/// UserScramCredentialRecord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

/// ScramMechanism.minIterations (both mechanisms) and ScramControlManager.MAX_ITERATIONS.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

impl ScramMechanism {
    pub fn from_type(t: i8) -> Option<ScramMechanism> {
        match t {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // Any key length is valid for HMAC, so new_from_slice cannot fail.
        match self {
            ScramMechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            ScramMechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) (RFC 5802 section 2.2), which is PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the broker keeps of a SCRAM password (Kafka's ScramCredential).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As Kafka's ScramCredentialValue: never the keys in a log line.
        f.write_str("ScramCredential([hidden])")
    }
}

impl ScramCredential {
    /// The credential of a salted password (ScramFormatter.generateCredential): what
    /// AlterUserScramCredentials stores of an upsertion.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password.as_bytes(), salt, iterations.max(1) as u32);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }
}

/// Why an exchange failed (for the broker's log only).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("invalid SCRAM client first message")]
    BadClientFirst,
    #[error("invalid SCRAM client final message")]
    BadClientFinal,
    #[error("unknown user or no {0} credential")]
    UnknownUser(&'static str),
    #[error("an authorization id different from the user name")]
    AuthorizationId,
    #[error("delegation token authentication is not supported")]
    TokenAuth,
    #[error("credential iterations below the minimum")]
    TooFewIterations,
    #[error("invalid client nonce in the final client message")]
    BadNonce,
    #[error("invalid client proof")]
    BadProof,
    #[error("unexpected message after the exchange ended")]
    Ended,
    #[error("the server asks for {0} iterations ({MIN_ITERATIONS} to {MAX_ITERATIONS} taken)")]
    Iterations(i32),
    #[error("invalid SCRAM server first message")]
    BadServerFirst,
    #[error("invalid SCRAM server final message")]
    BadServerFinal,
    #[error("the server refused the exchange: {0}")]
    ServerError(String),
    #[error("invalid server signature: the server does not know the credential")]
    BadServerSignature,
}

enum State {
    ClientFirst,
    ClientFinal {
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
    },
    Ended,
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    state: State,
}

/// A printable random nonce (Kafka sends 130 random bits in base 36; this is 128 in hex).
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a nonce from a fresh v4 uuid (also from the OS) is the fallback.
        bytes = *uuid::Uuid::new_v4().as_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `=2C` and `=3D` back to `,` and `=`; any other `=` makes the name invalid
/// (ScramFormatter.username).
fn username(sasl_name: &str) -> Option<String> {
    let s = sasl_name.replace("=2C", ",");
    if s.replace("=3D", "").contains('=') {
        return None;
    }
    Some(s.replace("=3D", "="))
}

/// A client message as text: Kafka's patterns (ScramMessages) take only characters 0x01 to
/// 0x7F in every attribute, in the client-final message (an extension's value) as in the first.
fn ascii(message: &[u8]) -> Option<&str> {
    let all_ascii = message.iter().all(|b| (0x01..=0x7f).contains(b));
    all_ascii
        .then(|| std::str::from_utf8(message).ok())
        .flatten()
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `alpha=value` attributes, as the pattern's EXTENSIONS allow.
fn extension(s: &str) -> Option<(&str, &str)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) && !v.is_empty()).then_some((k, v))
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        Self::with_nonce(mechanism, random_nonce())
    }

    /// A server whose nonce is given (tests replay RFC 7677's exchange).
    pub fn with_nonce(mechanism: ScramMechanism, server_nonce: String) -> ScramServer {
        ScramServer {
            mechanism,
            server_nonce,
            state: State::ClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// One client message in, the server's answer out; `Some(user)` once the exchange succeeded.
    /// `credential` looks a user's credential for this mechanism up.
    pub fn evaluate(
        &mut self,
        message: &[u8],
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(Vec<u8>, Option<String>), ScramError> {
        let result = match std::mem::replace(&mut self.state, State::Ended) {
            State::ClientFirst => self.client_first(message, credential).map(|m| (m, None)),
            State::ClientFinal {
                user,
                client_first_bare,
                server_first,
                nonce,
                credential,
            } => self
                .client_final(
                    message,
                    &client_first_bare,
                    &server_first,
                    &nonce,
                    &credential,
                )
                .map(|m| (m, Some(user))),
            State::Ended => Err(ScramError::Ended),
        };
        if result.is_err() {
            self.state = State::Ended;
        }
        result
    }

    fn client_first(
        &mut self,
        message: &[u8],
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        let msg = ascii(message).ok_or(ScramError::BadClientFirst)?;
        let rest = msg.strip_prefix("n,").ok_or(ScramError::BadClientFirst)?;
        let (authzid, bare) = rest.split_once(',').ok_or(ScramError::BadClientFirst)?;
        // Kafka's pattern: `a=` with a name of at least one character, or nothing.
        let authzid = match authzid {
            "" => "",
            a => (a.strip_prefix("a="))
                .filter(|a| !a.is_empty())
                .ok_or(ScramError::BadClientFirst)?,
        };
        let mut parts = bare.split(',');
        let mut first = parts.next().ok_or(ScramError::BadClientFirst)?;
        // The reserved `m=value,` (RFC 5802's mandatory extensions): Kafka's pattern takes and
        // ignores one with a value.
        if let Some(reserved) = first.strip_prefix("m=") {
            if reserved.is_empty() {
                return Err(ScramError::BadClientFirst);
            }
            first = parts.next().ok_or(ScramError::BadClientFirst)?;
        }
        let sasl_name = first.strip_prefix("n=").ok_or(ScramError::BadClientFirst)?;
        let client_nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .filter(|n| printable(n))
            .ok_or(ScramError::BadClientFirst)?;
        for ext in parts {
            let (k, v) = extension(ext).ok_or(ScramError::BadClientFirst)?;
            if k == "tokenauth" && v.eq_ignore_ascii_case("true") {
                return Err(ScramError::TokenAuth);
            }
        }
        let user = username(sasl_name)
            .filter(|u| !u.is_empty())
            .ok_or(ScramError::BadClientFirst)?;
        let credential = credential(&user).ok_or(ScramError::UnknownUser(self.mechanism.name()))?;
        let authzid = username(authzid).ok_or(ScramError::BadClientFirst)?;
        if !authzid.is_empty() && authzid != user {
            return Err(ScramError::AuthorizationId);
        }
        if credential.iterations < MIN_ITERATIONS {
            return Err(ScramError::TooFewIterations);
        }
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::ClientFinal {
            user,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok(server_first.into_bytes())
    }

    fn client_final(
        &self,
        message: &[u8],
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
        credential: &ScramCredential,
    ) -> Result<Vec<u8>, ScramError> {
        let msg = ascii(message).ok_or(ScramError::BadClientFinal)?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::BadClientFinal)?;
        let mut parts = without_proof.split(',');
        let binding = parts
            .next()
            .and_then(|c| c.strip_prefix("c="))
            .ok_or(ScramError::BadClientFinal)?;
        B64.decode(binding)
            .map_err(|_| ScramError::BadClientFinal)?;
        let client_nonce = parts
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .filter(|n| printable(n))
            .ok_or(ScramError::BadClientFinal)?;
        if parts.any(|e| extension(e).is_none()) {
            return Err(ScramError::BadClientFinal);
        }
        let proof = B64.decode(proof).map_err(|_| ScramError::BadClientFinal)?;
        // The nonce of server-first, exactly (RFC 5802; Kafka 4's ScramSaslServer compares with
        // equals, where 3.x took any nonce ending with it, as librdkafka < 2.6.1 sends).
        if client_nonce != nonce {
            return Err(ScramError::BadNonce);
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let m = self.mechanism;
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::BadProof);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(ScramError::BadProof);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The client side of one SCRAM exchange (Kafka's ScramSaslClient), as a broker logs in to
/// another: client-first (`n,,n=user,r=nonce`), then client-final from server-first, then the
/// server's signature in server-final checked, so a server that does not know the credential
/// is not believed.
pub struct ScramClient {
    mechanism: ScramMechanism,
    username: String,
    password: String,
    client_nonce: String,
    state: ClientState,
    salted: Arc<SaltedPasswordCache>,
}

/// The salted password (Hi(password, salt, i)) a client derived last, for the salt and count
/// it was derived with. A broker logs in to the others again and again (each transaction
/// marker and verification opens a connection), and PBKDF2's thousands of rounds must not run
/// on a runtime worker each time: the salt and count a server sends for a user change only
/// with that user's credential, so one entry serves until then. (Kafka's ScramSaslClient
/// derives it per login, but its brokers keep their connections.)
#[derive(Default)]
pub struct SaltedPasswordCache(Mutex<Option<SaltedPassword>>);

struct SaltedPassword {
    mechanism: ScramMechanism,
    salt: Vec<u8>,
    iterations: i32,
    salted: Arc<[u8]>,
}

impl SaltedPasswordCache {
    /// Hi(`password`, `salt`, `iterations`) from the cache when it holds that one, else derived
    /// (and kept). The cache belongs to one password: its callers' (`SaslCredentials`).
    fn get(
        &self,
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Arc<[u8]> {
        if let Some(c) = self.0.lock().as_ref() {
            if c.mechanism == mechanism && c.salt == salt && c.iterations == iterations {
                return Arc::clone(&c.salted);
            }
        }
        let salted: Arc<[u8]> = mechanism
            .salted_password(password.as_bytes(), salt, iterations.max(1) as u32)
            .into();
        *self.0.lock() = Some(SaltedPassword {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            salted: Arc::clone(&salted),
        });
        salted
    }
}

enum ClientState {
    ClientFirst,
    ServerFirst { client_first_bare: String },
    ServerFinal { server_signature: Vec<u8> },
    Ended,
}

/// `,` and `=` in a user name as SCRAM writes them (ScramFormatter.saslName).
fn sasl_name(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> ScramClient {
        Self::with_cache(mechanism, username, password, Arc::default())
    }

    /// A client that takes the salted password from `salted` when it holds the one the server
    /// asks for (see `SaltedPasswordCache`); `salted` must have served only this `password`.
    pub fn with_cache(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
        salted: Arc<SaltedPasswordCache>,
    ) -> ScramClient {
        ScramClient {
            mechanism,
            username: username.to_string(),
            password: password.to_string(),
            client_nonce: random_nonce(),
            state: ClientState::ClientFirst,
            salted,
        }
    }

    /// The client's next message for the server's last one (empty at first); `None` once the
    /// server proved itself and the exchange is complete.
    pub fn evaluate(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, ScramError> {
        let result = match std::mem::replace(&mut self.state, ClientState::Ended) {
            ClientState::ClientFirst => {
                let bare = format!("n={},r={}", sasl_name(&self.username), self.client_nonce);
                let first = format!("n,,{bare}");
                self.state = ClientState::ServerFirst {
                    client_first_bare: bare,
                };
                Ok(Some(first.into_bytes()))
            }
            ClientState::ServerFirst { client_first_bare } => {
                self.client_final(challenge, &client_first_bare).map(Some)
            }
            ClientState::ServerFinal { server_signature } => {
                Self::server_final(challenge, &server_signature).map(|()| None)
            }
            ClientState::Ended => Err(ScramError::Ended),
        };
        if result.is_err() {
            self.state = ClientState::Ended;
        }
        result
    }

    fn client_final(
        &mut self,
        server_first: &[u8],
        client_first_bare: &str,
    ) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramError::BadServerFirst)?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<i32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(ScramError::BadServerFirst);
        };
        // The server's nonce extends ours (RFC 5802; ScramSaslClient checks it too).
        if !nonce.starts_with(&self.client_nonce) || !printable(nonce) {
            return Err(ScramError::BadNonce);
        }
        // Kafka's client takes any count from the minimum up; the maximum here (the most a
        // broker stores, ScramControlManager's) keeps a hostile server from costing us
        // unbounded hashing.
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let m = self.mechanism;
        let salted = self.salted.get(m, &self.password, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        // The keys the server keeps of the password (its stored and server keys), as it
        // computes them.
        let credential = ScramCredential::from_salted_password(m, &salt, &salted, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = (client_key.iter())
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.state = ClientState::ServerFinal {
            server_signature: m.hmac(&credential.server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    fn server_final(message: &[u8], expected: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::BadServerFinal)?;
        let first = text.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let signature = (first.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramError::BadServerFinal)?;
        if !constant_time_eq(&signature, expected) {
            return Err(ScramError::BadServerSignature);
        }
        Ok(())
    }
}

/// Equality that takes as long whatever the first differing byte (MessageDigest.isEqual).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
    }

    fn server() -> ScramServer {
        ScramServer::with_nonce(ScramMechanism::Sha256, SERVER_NONCE.to_string())
    }

    #[test]
    fn rfc7677_exchange() {
        let mut s = server();
        let (first, done) = s
            .evaluate(CLIENT_FIRST.as_bytes(), |u| {
                assert_eq!(u, "user");
                Some(rfc_credential())
            })
            .unwrap();
        assert_eq!(
            (String::from_utf8(first).unwrap().as_str(), done),
            (SERVER_FIRST, None)
        );
        let (last, done) = s.evaluate(CLIENT_FINAL.as_bytes(), |_| None).unwrap();
        assert_eq!(String::from_utf8(last).unwrap(), SERVER_FINAL);
        assert_eq!(done.as_deref(), Some("user"));
        assert_eq!(s.evaluate(b"more", |_| None), Err(ScramError::Ended));
    }

    #[test]
    fn wrong_password_nonce_and_unknown_user_fail() {
        let mut s = server();
        s.evaluate(CLIENT_FIRST.as_bytes(), |_| {
            let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
            Some(ScramCredential::from_password(
                ScramMechanism::Sha256,
                "pencils",
                &salt,
                4096,
            ))
        })
        .unwrap();
        assert_eq!(
            s.evaluate(CLIENT_FINAL.as_bytes(), |_| None),
            Err(ScramError::BadProof)
        );

        // Outside Kafka's characters (an extension's value of 0x01 to 0x7F), or no proof.
        for bad in [
            CLIENT_FINAL.replace(",p=", ",ext=caf\u{e9},p="),
            CLIENT_FINAL.replace(",p=", ",p=,x="),
            CLIENT_FINAL[..CLIENT_FINAL.find(",p=").unwrap()].to_string(),
        ] {
            let mut s = server();
            s.evaluate(CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
                .unwrap();
            assert_eq!(
                s.evaluate(bad.as_bytes(), |_| None),
                Err(ScramError::BadClientFinal),
                "{bad}"
            );
        }
        let mut s = server();
        s.evaluate(CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
            .unwrap();
        let bad_nonce = CLIENT_FINAL.replace("k0,p=", "k1,p=");
        assert_eq!(
            s.evaluate(bad_nonce.as_bytes(), |_| None),
            Err(ScramError::BadNonce)
        );
        // librdkafka before 2.6.1 puts its own nonce before the combined one again.
        let mut s = server();
        s.evaluate(CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
            .unwrap();
        let repeated = CLIENT_FINAL.replace("r=", "r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            s.evaluate(repeated.as_bytes(), |_| None),
            Err(ScramError::BadNonce)
        );

        let mut s = server();
        assert_eq!(
            s.evaluate(CLIENT_FIRST.as_bytes(), |_| None),
            Err(ScramError::UnknownUser("SCRAM-SHA-256"))
        );
    }

    #[test]
    fn malformed_and_refused_first_messages() {
        for bad in [
            "y,,n=user,r=abc",
            "n,,r=abc,n=user",
            "n,,n=user",
            "n,,n=us=er,r=abc",
            "n,,n=user,r=a,b",
            "n,,n=user,r=abc,tokenauth=true",
            "n,a=other,n=user,r=abc",
            // Kafka's pattern wants a name after `a=` and a value after `m=`.
            "n,a=,n=user,r=abc",
            "n,,m=,n=user,r=abc",
            "n,,n=user,r=abc,ext=caf\u{e9}",
        ] {
            let mut s = server();
            assert!(
                s.evaluate(bad.as_bytes(), |_| Some(rfc_credential()))
                    .is_err(),
                "{bad}"
            );
        }
        // A reserved `m=` with a value is taken and ignored, as Kafka's pattern does.
        let mut s = server();
        let reserved = CLIENT_FIRST.replace("n,,", "n,,m=x,");
        assert!(s
            .evaluate(reserved.as_bytes(), |_| Some(rfc_credential()))
            .is_ok());
        let mut low = rfc_credential();
        low.iterations = 4095;
        let mut s = server();
        assert_eq!(
            s.evaluate(CLIENT_FIRST.as_bytes(), |_| Some(low)),
            Err(ScramError::TooFewIterations)
        );
    }

    /// The client side against RFC 7677's exchange, and against this module's server.
    #[test]
    fn client_exchanges() {
        let mut c = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
        c.client_nonce = "rOprNGfwEbeRWgbNEkqO".into();
        let first = c.evaluate(b"").unwrap().unwrap();
        assert_eq!(first, CLIENT_FIRST.as_bytes());
        let last = c.evaluate(SERVER_FIRST.as_bytes()).unwrap().unwrap();
        assert_eq!(String::from_utf8(last).unwrap(), CLIENT_FINAL);
        assert_eq!(c.evaluate(SERVER_FINAL.as_bytes()), Ok(None));
        assert_eq!(c.evaluate(b""), Err(ScramError::Ended));

        // A server that does not know the password cannot forge server-final.
        let mut c = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
        c.client_nonce = "rOprNGfwEbeRWgbNEkqO".into();
        c.evaluate(b"").unwrap();
        c.evaluate(SERVER_FIRST.as_bytes()).unwrap();
        let forged = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(
            c.evaluate(forged.as_bytes()),
            Err(ScramError::BadServerSignature)
        );
        // A server's error, a nonce not extending ours, too many iterations.
        let mut c = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
        c.client_nonce = "rOprNGfwEbeRWgbNEkqO".into();
        c.evaluate(b"").unwrap();
        c.evaluate(SERVER_FIRST.as_bytes()).unwrap();
        assert!(matches!(
            c.evaluate(b"e=invalid-proof"),
            Err(ScramError::ServerError(_))
        ));
        for server_first in [
            "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000",
            "r=rOprNGfwEbeRWgbNEkqOx,i=4096",
        ] {
            let mut c = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
            c.client_nonce = "rOprNGfwEbeRWgbNEkqO".into();
            c.evaluate(b"").unwrap();
            assert!(
                c.evaluate(server_first.as_bytes()).is_err(),
                "{server_first}"
            );
        }

        // Client and server of this module, SHA-512, a name SCRAM escapes.
        let m = ScramMechanism::Sha512;
        let cred = ScramCredential::from_password(m, "s3cret", b"salty", 4096);
        let mut c = ScramClient::new(m, "a,b=c", "s3cret");
        let mut s = ScramServer::new(m);
        let first = c.evaluate(b"").unwrap().unwrap();
        let (sf, _) = s
            .evaluate(&first, |u| (u == "a,b=c").then(|| cred.clone()))
            .unwrap();
        let fin = c.evaluate(&sf).unwrap().unwrap();
        let (sfin, user) = s.evaluate(&fin, |_| None).unwrap();
        assert_eq!(user.as_deref(), Some("a,b=c"));
        assert_eq!(c.evaluate(&sfin), Ok(None));
        // The wrong password: the server refuses the proof.
        let mut c = ScramClient::new(m, "a,b=c", "wrong");
        let mut s = ScramServer::new(m);
        let first = c.evaluate(b"").unwrap().unwrap();
        let (sf, _) = s.evaluate(&first, |_| Some(cred.clone())).unwrap();
        let fin = c.evaluate(&sf).unwrap().unwrap();
        assert_eq!(s.evaluate(&fin, |_| None), Err(ScramError::BadProof));
    }

    /// A client given a cache takes the salted password from it for the salt and count it was
    /// derived with, and derives (and keeps) another for a new salt: a broker's repeated logins
    /// do not each run PBKDF2.
    #[test]
    fn clients_share_the_salted_password() {
        let m = ScramMechanism::Sha256;
        let cache = Arc::new(SaltedPasswordCache::default());
        let login = |salt: &[u8]| {
            let cred = ScramCredential::from_password(m, "s3cret", salt, 4096);
            let mut c = ScramClient::with_cache(m, "broker", "s3cret", Arc::clone(&cache));
            let mut s = ScramServer::new(m);
            let first = c.evaluate(b"").unwrap().unwrap();
            let (sf, _) = s.evaluate(&first, |_| Some(cred.clone())).unwrap();
            let fin = c.evaluate(&sf).unwrap().unwrap();
            let (sfin, _) = s.evaluate(&fin, |_| None)?;
            c.evaluate(&sfin)
        };
        assert_eq!(login(b"salt-one"), Ok(None));
        // The cache is what the next login uses: spoilt, it makes the proof wrong.
        let spoilt: Arc<[u8]> = vec![0u8; 32].into();
        {
            let mut entry = cache.0.lock();
            let entry = entry.as_mut().expect("the first login's salted password");
            assert_eq!(entry.salt, b"salt-one");
            entry.salted = spoilt;
        }
        assert_eq!(login(b"salt-one"), Err(ScramError::BadProof));
        // Another salt (a new credential) is derived again, and replaces it.
        assert_eq!(login(b"salt-two"), Ok(None));
        assert_eq!(login(b"salt-two"), Ok(None));
    }

    #[test]
    fn escaped_names_and_sha512() {
        assert_eq!(username("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        // The stored key and server key of SHA-512 are 64 bytes; a SHA-512 exchange with the
        // client side computed here succeeds.
        let m = ScramMechanism::Sha512;
        let salt = b"saltsalt";
        let cred = ScramCredential::from_password(m, "secret", salt, 4096);
        assert_eq!((cred.stored_key.len(), cred.server_key.len()), (64, 64));
        let mut s = ScramServer::with_nonce(m, "srv".into());
        let first = "n,,n=alice,r=cli";
        let (sf, _) = s
            .evaluate(first.as_bytes(), |_| Some(cred.clone()))
            .unwrap();
        let sf = String::from_utf8(sf).unwrap();
        let without_proof = "c=biws,r=clisrv";
        let auth = format!("n=alice,r=cli,{sf},{without_proof}");
        let salted = m.salted_password(b"secret", salt, 4096);
        let client_key = m.hmac(&salted, b"Client Key");
        let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let fin = format!("{without_proof},p={}", B64.encode(proof));
        let (_, user) = s.evaluate(fin.as_bytes(), |_| None).unwrap();
        assert_eq!(user.as_deref(), Some("alice"));
    }
}
