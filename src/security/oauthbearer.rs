//! SASL/OAUTHBEARER (RFC 7628) as Kafka's OAuthBearerSaslServer, with Kafka's two validators:
//!
//! - unsecured (Kafka's default, `OAuthBearerUnsecuredValidatorCallbackHandler`, for
//!   development): an unsigned JWS (`alg` none, empty signature); the principal is the
//!   `unsecuredValidatorPrincipalClaimName` claim (`sub`), `exp` is required, `iat` checked if
//!   present, both with `unsecuredValidatorAllowableClockSkewMs`; every scope of
//!   `unsecuredValidatorRequiredScope` must be in the `unsecuredValidatorScopeClaimName` claim.
//!   The options come from the listener's OAuthBearerLoginModule JAAS entry.
//! - JWKS (`OAuthBearerValidatorCallbackHandler` as the listener's
//!   `oauthbearer.sasl.server.callback.handler.class`): an RS256 or ES256 JWS verified with a key
//!   of `sasl.oauthbearer.jwks.endpoint.url` (a file:// URL read at start-up, or an http(s) one
//!   fetched at start-up and every `sasl.oauthbearer.jwks.endpoint.refresh.ms`: see `jwks`),
//!   `exp` and `iat` required, `nbf` checked, with `sasl.oauthbearer.clock.skew.seconds`; `iss`
//!   must be `sasl.oauthbearer.expected.issuer` and `aud` contain one of
//!   `sasl.oauthbearer.expected.audience`, both required settings as in Kafka 4.4 unless
//!   `sasl.oauthbearer.allow.unverified.issuer` / `.audience` lift the check; the principal is
//!   `sasl.oauthbearer.sub.claim.name`.
//!
//! SASL extensions (KIP-342, `key=value` pairs beside `auth` in the client's first message) are
//! accepted and not used, as Kafka's two validators mark every extension valid.
//!
//! A token that fails validation is answered, as Kafka answers it, with the error JSON as a
//! server challenge (`{"status":"invalid_token"}`, or `insufficient_scope` with the scope); the
//! client acknowledges it with a single 0x01 byte and then gets SASL_AUTHENTICATION_FAILED with
//! that JSON as the message.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Kafka's two validator classes (the newer name and the deprecated `secured` package one).
const VALIDATOR_CLASSES: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];
const UNSECURED_VALIDATOR_CLASS: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// The login module whose JAAS options configure the unsecured validator.
pub const OAUTHBEARER_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

/// How a listener validates OAUTHBEARER tokens.
#[derive(Debug, Clone)]
pub enum Validator {
    Unsecured(UnsecuredOptions),
    Jwks(JwksValidator),
}

#[derive(Debug, Clone)]
pub struct UnsecuredOptions {
    pub principal_claim: String,
    pub scope_claim: String,
    pub required_scope: Vec<String>,
    pub allowable_clock_skew_ms: i64,
}

impl Default for UnsecuredOptions {
    fn default() -> Self {
        UnsecuredOptions {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            allowable_clock_skew_ms: 0,
        }
    }
}

impl UnsecuredOptions {
    /// From the OAuthBearerLoginModule JAAS options (blank options take the defaults).
    pub fn from_jaas(options: &BTreeMap<String, String>) -> Result<UnsecuredOptions, String> {
        let opt = |k: &str| options.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut o = UnsecuredOptions::default();
        if let Some(v) = opt("unsecuredValidatorPrincipalClaimName") {
            o.principal_claim = v.into();
        }
        if let Some(v) = opt("unsecuredValidatorScopeClaimName") {
            o.scope_claim = v.into();
        }
        if let Some(v) = opt("unsecuredValidatorRequiredScope") {
            o.required_scope = v
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(Into::into)
                .collect();
        }
        if let Some(v) = opt("unsecuredValidatorAllowableClockSkewMs") {
            o.allowable_clock_skew_ms = v
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    format!("unsecuredValidatorAllowableClockSkewMs: {v} is not a non-negative int")
                })?
                .into();
        }
        Ok(o)
    }
}

/// A verification key of the JWKS.
#[derive(Clone)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point (0x04 || x || y).
    P256(Vec<u8>),
}

#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    key: Key,
}

#[derive(Clone)]
pub struct JwksValidator {
    /// Shared with the refresh thread of an http(s) JWKS endpoint.
    keys: Arc<RwLock<Vec<Jwk>>>,
    /// That thread, asked for a refresh now by a token whose key id the keys lack; `None` for a
    /// JWKS file, read once.
    refresher: Option<Arc<super::jwks::Refresher>>,
    /// None: `sasl.oauthbearer.allow.unverified.issuer` (the `iss` claim is not checked).
    pub expected_issuer: Option<String>,
    /// None: `sasl.oauthbearer.allow.unverified.audience` (the `aud` claim is not checked).
    pub expected_audience: Option<Vec<String>>,
    pub clock_skew_ms: i64,
    pub sub_claim: String,
    pub scope_claim: String,
}

impl std::fmt::Debug for JwksValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksValidator")
            .field("keys", &self.keys.read().len())
            .field("expected_issuer", &self.expected_issuer)
            .field("expected_audience", &self.expected_audience)
            .finish()
    }
}

/// The listener settings the validator is chosen and configured by.
pub struct ValidatorSettings<'a> {
    /// `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class`.
    pub handler_class: Option<&'a str>,
    /// The OAuthBearerLoginModule options of the listener's JAAS config.
    pub jaas_options: BTreeMap<String, String>,
    pub jwks_url: Option<&'a str>,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
    pub jwks_refresh_ms: Option<&'a str>,
    pub expected_issuer: Option<&'a str>,
    pub expected_audience: Option<&'a str>,
    pub allow_unverified_issuer: Option<&'a str>,
    pub allow_unverified_audience: Option<&'a str>,
    pub clock_skew_seconds: Option<&'a str>,
    pub sub_claim: Option<&'a str>,
    pub scope_claim: Option<&'a str>,
}

/// The keys of the JWKS at `url`: a file read once, or an http(s) endpoint fetched now and
/// refreshed every `sasl.oauthbearer.jwks.endpoint.refresh.ms` while the keys are in use.
type JwksKeys = (Arc<RwLock<Vec<Jwk>>>, Option<Arc<super::jwks::Refresher>>);

fn jwks_keys(url: &str, s: &ValidatorSettings<'_>) -> Result<JwksKeys, String> {
    let setting = |e: String| format!("sasl.oauthbearer.jwks.endpoint.url {url}: {e}");
    if let Some(path) = url.strip_prefix("file://") {
        let text = std::fs::read_to_string(path).map_err(|e| setting(e.to_string()))?;
        let keys = parse_jwks(&text).map_err(|e| format!("JWKS {url}: {e}"))?;
        return Ok((Arc::new(RwLock::new(keys)), None));
    }
    let refresh_ms = match s.jwks_refresh_ms {
        None => 3_600_000,
        Some(v) => v.parse::<u64>().ok().filter(|ms| *ms > 0).ok_or_else(|| {
            format!("sasl.oauthbearer.jwks.endpoint.refresh.ms: {v} is not a positive long")
        })?,
    };
    let endpoint = super::jwks::Endpoint::new(url, &s.jaas_options).map_err(setting)?;
    let text = endpoint.fetch_blocking().map_err(setting)?;
    let keys = Arc::new(RwLock::new(
        parse_jwks(&text).map_err(|e| format!("JWKS {url}: {e}"))?,
    ));
    let refresher = super::jwks::spawn_refresh(
        endpoint,
        std::time::Duration::from_millis(refresh_ms),
        Arc::downgrade(&keys),
        parse_jwks,
    );
    Ok((keys, Some(refresher)))
}

impl Validator {
    /// The validator Kafka's broker would use with these settings; `Err` names what is wrong.
    pub fn build(s: &ValidatorSettings<'_>) -> Result<Validator, String> {
        match s.handler_class {
            None => Ok(Validator::Unsecured(UnsecuredOptions::from_jaas(&s.jaas_options)?)),
            Some(c) if c == UNSECURED_VALIDATOR_CLASS => {
                Ok(Validator::Unsecured(UnsecuredOptions::from_jaas(&s.jaas_options)?))
            }
            Some(c) if VALIDATOR_CLASSES.contains(&c) => {
                let url = s.jwks_url.ok_or(
                    "OAuthBearerValidatorCallbackHandler needs sasl.oauthbearer.jwks.endpoint.url",
                )?;
                // Kafka 4.4's BrokerJwtValidator: both claims are checked unless the operator
                // opted out, and the start fails without what to check them against.
                let allowed = |name: &str, v: Option<&str>| match v {
                    None => Ok(false),
                    Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
                    Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
                    Some(v) => Err(format!("{name}: {v} is not a boolean")),
                };
                let expected_issuer = if allowed(
                    "sasl.oauthbearer.allow.unverified.issuer",
                    s.allow_unverified_issuer,
                )? {
                    None
                } else {
                    Some(s.expected_issuer.map(String::from).ok_or(
                        "the OAuth validator requires sasl.oauthbearer.expected.issuer (or sasl.oauthbearer.allow.unverified.issuer=true)",
                    )?)
                };
                let expected_audience = if allowed(
                    "sasl.oauthbearer.allow.unverified.audience",
                    s.allow_unverified_audience,
                )? {
                    None
                } else {
                    let list: Vec<String> = s
                        .expected_audience
                        .unwrap_or_default()
                        .split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect();
                    if list.is_empty() {
                        return Err("the OAuth validator requires sasl.oauthbearer.expected.audience (or sasl.oauthbearer.allow.unverified.audience=true)".into());
                    }
                    Some(list)
                };
                let (keys, refresher) = jwks_keys(url, s)?;
                let clock_skew_ms = match s.clock_skew_seconds {
                    None => 30_000,
                    Some(v) => {
                        v.parse::<i32>()
                            .ok()
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| {
                                format!("sasl.oauthbearer.clock.skew.seconds: {v} is not a non-negative int")
                            })? as i64
                            * 1000
                    }
                };
                Ok(Validator::Jwks(JwksValidator {
                    keys,
                    refresher,
                    expected_issuer,
                    expected_audience,
                    clock_skew_ms,
                    sub_claim: s.sub_claim.unwrap_or("sub").to_string(),
                    scope_claim: s.scope_claim.unwrap_or("scope").to_string(),
                }))
            }
            Some(c) => Err(format!(
                "{c} is not supported by gregor (OAuthBearerValidatorCallbackHandler, or none for the unsecured validator)"
            )),
        }
    }

    /// The principal name of a valid token and the token's expiry (ms since the epoch), or the
    /// error JSON the client gets.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<Validated, String> {
        match self {
            Validator::Unsecured(o) => validate_unsecured(o, token, now_ms),
            Validator::Jwks(v) => v.validate(token, now_ms).map_err(|why| {
                tracing::debug!(reason = %why, "OAUTHBEARER token refused");
                invalid_token()
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub principal: String,
    pub expires_ms: i64,
}

fn invalid_token() -> String {
    r#"{"status":"invalid_token"}"#.to_string()
}

/// A compact JWS split into its decoded header and claims, the signing input and signature.
struct Jws<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn decode_part(part: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| format!("bad base64url: {e}"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("not a JSON object".into()),
    }
}

fn split_jws(token: &str) -> Result<Jws<'_>, String> {
    if token.contains("..") {
        return Err("Malformed compact serialization contains '..'".into());
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("expected 3 parts, got {}", parts.len()));
    }
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    Ok(Jws {
        header: decode_part(parts[0])?,
        claims: decode_part(parts[1])?,
        signing_input,
        signature: URL_SAFE_NO_PAD
            .decode(parts[2])
            .map_err(|e| format!("bad signature encoding: {e}"))?,
    })
}

/// A NumericDate claim in ms, if present; `Err` if it is not a number.
fn date_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|s| Some((s * 1000.0) as i64))
            .ok_or_else(|| format!("the {name} claim is not a number")),
    }
}

/// The scope claim: a space-separated string or a list of strings.
fn scope(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(Into::into)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(Into::into))
            .collect(),
        _ => Vec::new(),
    }
}

fn validate_unsecured(o: &UnsecuredOptions, token: &str, now_ms: i64) -> Result<Validated, String> {
    let refuse = |why: String| {
        tracing::debug!(reason = %why, "OAUTHBEARER unsecured token refused");
        invalid_token()
    };
    let jws = split_jws(token).map_err(refuse)?;
    if jws.header.get("alg").and_then(Value::as_str) != Some("none") {
        return Err(refuse(
            "Unsecured JWS must have 'none' for an algorithm".into(),
        ));
    }
    if !jws.signature.is_empty() {
        return Err(refuse(
            "Unsecured JWS must not contain a digital signature".into(),
        ));
    }
    let exp = date_ms(&jws.claims, "exp")
        .map_err(refuse)?
        .ok_or_else(|| refuse("No expiration time in JWT".into()))?;
    let principal = match jws.claims.get(&o.principal_claim) {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        _ => {
            return Err(refuse(format!(
                "No principal name in JWT claim: {}",
                o.principal_claim
            )))
        }
    };
    let iat = date_ms(&jws.claims, "iat").map_err(refuse)?;
    let skew = o.allowable_clock_skew_ms;
    if iat.is_some_and(|iat| iat > now_ms + skew) {
        return Err(refuse(
            "The Issued At value was after the indicated time".into(),
        ));
    }
    if now_ms - skew >= exp {
        return Err(refuse("the token expired".into()));
    }
    if iat.is_some_and(|iat| exp <= iat) {
        return Err(refuse(
            "The Expiration Time was not after the Issued At time".into(),
        ));
    }
    let have = scope(&jws.claims, &o.scope_claim);
    if let Some(missing) = o.required_scope.iter().find(|s| !have.contains(s)) {
        tracing::debug!(missing = %missing, "OAUTHBEARER token lacks a required scope");
        // Kafka's message: the required scope as a Java List prints it.
        return Err(format!(
            r#"{{"status":"insufficient_scope", "scope":"[{}]"}}"#,
            o.required_scope.join(", ")
        ));
    }
    Ok(Validated {
        principal,
        expires_ms: exp,
    })
}

impl JwksValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<Validated, String> {
        let jws = split_jws(token)?;
        let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
        let kid = jws.header.get("kid").and_then(Value::as_str);
        let keys = self.keys.read();
        let mut candidates = keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .peekable();
        if let (None, Some(kid), Some(refresher)) = (candidates.peek(), kid, &self.refresher) {
            // The identity provider may have rotated its keys since the last refresh.
            if refresher.expedite(kid) {
                tracing::debug!(kid, "no JWKS key with this id: refreshing the JWKS now");
            }
        }
        let verified =
            candidates.any(|k| verify(alg, &k.key, jws.signing_input.as_bytes(), &jws.signature));
        drop(keys);
        if !verified {
            return Err(format!("no key of the JWKS verifies the {alg} signature"));
        }
        let c = &jws.claims;
        let skew = self.clock_skew_ms;
        let exp = date_ms(c, "exp")?.ok_or("no exp claim")?;
        let iat = date_ms(c, "iat")?.ok_or("no iat claim")?;
        if now_ms - skew >= exp {
            return Err("the token expired".into());
        }
        if iat > now_ms + skew {
            return Err("the token was issued in the future".into());
        }
        if date_ms(c, "nbf")?.is_some_and(|nbf| nbf > now_ms + skew) {
            return Err("the token is not valid yet (nbf)".into());
        }
        if let Some(issuer) = &self.expected_issuer {
            if c.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err("unexpected issuer".into());
            }
        }
        if let Some(expected) = &self.expected_audience {
            let audiences: Vec<&str> = match c.get("aud") {
                None => Vec::new(),
                Some(Value::String(a)) => vec![a.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                Some(_) => return Err("malformed aud claim".into()),
            };
            if !audiences.iter().any(|a| expected.iter().any(|e| e == a)) {
                return Err("unexpected audience".into());
            }
        }
        let principal = match c.get(&self.sub_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => return Err(format!("no {} claim", self.sub_claim)),
        };
        let _ = scope(c, &self.scope_claim);
        Ok(Validated {
            principal,
            expires_ms: exp,
        })
    }
}

fn verify(alg: &str, key: &Key, message: &[u8], signature: &[u8]) -> bool {
    use ring::signature as sig;
    match (alg, key) {
        ("RS256", Key::Rsa { n, e }) => sig::RsaPublicKeyComponents { n, e }
            .verify(&sig::RSA_PKCS1_2048_8192_SHA256, message, signature)
            .is_ok(),
        ("ES256", Key::P256(point)) => {
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        _ => false,
    }
}

/// The RSA and P-256 keys of a JWKS document (RFC 7517); other keys are skipped, as a
/// verifier that cannot use them would.
fn parse_jwks(text: &str) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let field = |k: &Value, name: &str| -> Result<Vec<u8>, String> {
        let v = k
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a key without {name}"))?;
        URL_SAFE_NO_PAD
            .decode(v.trim_end_matches('='))
            .map_err(|e| format!("{name}: {e}"))
    };
    let mut out = Vec::new();
    for k in keys {
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let kid = k.get("kid").and_then(Value::as_str).map(Into::into);
        let key = match k.get("kty").and_then(Value::as_str) {
            Some("RSA") => Key::Rsa {
                n: field(k, "n")?,
                e: field(k, "e")?,
            },
            Some("EC") if k.get("crv").and_then(Value::as_str) == Some("P-256") => {
                let (x, y) = (field(k, "x")?, field(k, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("a P-256 key with bad coordinates".into());
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Key::P256(point)
            }
            _ => continue,
        };
        out.push(Jwk { kid, key });
    }
    if out.is_empty() {
        return Err("no RSA or P-256 signing key".into());
    }
    Ok(out)
}

/// The client's first message (RFC 7628 section 3.1, as OAuthBearerClientInitialResponse
/// parses it): `n,[a=<authzid>],^Aauth=Bearer <token>^A[<key>=<value>^A]*^A`. Returns the
/// token and the authorization id (empty if none).
pub fn parse_initial_response(message: &[u8]) -> Result<(String, String), String> {
    let bad = || "Invalid OAUTHBEARER client first message".to_string();
    let text = std::str::from_utf8(message).map_err(|_| bad())?;
    let rest = text.strip_prefix("n,").ok_or_else(bad)?;
    let (authzid, rest) = rest.split_once(',').ok_or_else(bad)?;
    let authzid = match authzid {
        "" => "",
        a => a
            .strip_prefix("a=")
            .filter(|a| !a.is_empty())
            .ok_or_else(bad)?,
    };
    let kvpairs = rest
        .strip_prefix('\u{1}')
        .and_then(|r| r.strip_suffix('\u{1}'))
        .ok_or_else(bad)?;
    let mut auth = None;
    for pair in kvpairs.split_terminator('\u{1}') {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        let key_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic());
        let value_ok = !v.is_empty()
            && v.bytes()
                .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b));
        if !key_ok || !value_ok {
            return Err(bad());
        }
        if k == "auth" {
            auth = Some(v);
        }
    }
    if !kvpairs.is_empty() && !kvpairs.ends_with('\u{1}') {
        return Err(bad());
    }
    let auth = auth.ok_or("Invalid OAUTHBEARER client first message: 'auth' not specified")?;
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or("Invalid OAUTHBEARER client first message: invalid 'auth' format")?;
    let token = token.trim_start_matches(' ');
    let token_ok = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b));
    if !token_ok
        || scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("Invalid OAUTHBEARER client first message: invalid 'auth' format".into());
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!(
            "Invalid scheme in OAUTHBEARER client first message: {scheme}"
        ));
    }
    Ok((token.to_string(), authzid.to_string()))
}

/// The server side of one OAUTHBEARER exchange.
#[derive(Default)]
pub struct OAuthBearerServer {
    /// The error JSON sent as a challenge; the client's 0x01 that acknowledges it ends the
    /// exchange with this message.
    error: Option<String>,
    /// The accepted token's expiry (ms).
    expires_ms: Option<i64>,
}

/// What one client message leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Authenticated.
    Done(Validated),
    /// The error JSON, as a challenge.
    Challenge(String),
    /// SASL_AUTHENTICATION_FAILED with this message.
    Failed(String),
}

impl OAuthBearerServer {
    pub fn evaluate(&mut self, validator: &Validator, message: &[u8], now_ms: i64) -> Step {
        if message == [1u8] {
            if let Some(e) = self.error.take() {
                return Step::Failed(e);
            }
        }
        self.error = None;
        let (token, authzid) = match parse_initial_response(message) {
            Ok(t) => t,
            // A SaslException in Kafka: the generic message reaches the client.
            Err(_) => {
                return Step::Failed(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER"
                        .into(),
                )
            }
        };
        match validator.validate(&token, now_ms) {
            Err(json) => {
                self.error = Some(json.clone());
                Step::Challenge(json)
            }
            Ok(v) if !authzid.is_empty() && authzid != v.principal => Step::Failed(format!(
                "Authentication failed: Client requested an authorization id ({authzid}) that is different from the token's principal name ({})",
                v.principal
            )),
            Ok(v) => {
                self.expires_ms = Some(v.expires_ms);
                Step::Done(v)
            }
        }
    }

    /// The accepted token's expiry: the session lifetime's bound (KIP-368).
    pub fn expires_ms(&self) -> Option<i64> {
        self.expires_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn unsecured(claims: &str) -> String {
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims))
    }

    fn first_message(token: &str) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn client_first_messages() {
        assert_eq!(
            parse_initial_response(&first_message("a.b.c")).unwrap(),
            ("a.b.c".into(), "".into())
        );
        let m = b"n,a=alice,\x01host=h\x01auth=bearer x.y.\x01port=1\x01\x01";
        assert_eq!(
            parse_initial_response(m).unwrap(),
            ("x.y.".into(), "alice".into())
        );
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,\x01auth=Bearer a.b.c\x01",
            b"y,,\x01auth=Bearer a.b.c\x01\x01",
            b"n,,\x01\x01",
            b"n,,\x01auth=Basic a.b.c\x01\x01",
            b"n,,\x01auth=Bearer a b\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x011=x\x01auth=Bearer a\x01\x01",
        ] {
            assert!(parse_initial_response(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsecured_tokens() {
        let v = Validator::Unsecured(UnsecuredOptions::default());
        let ok = unsecured(r#"{"sub":"alice","exp":1700000100,"iat":1699999990}"#);
        assert_eq!(
            v.validate(&ok, NOW).unwrap(),
            Validated {
                principal: "alice".into(),
                expires_ms: 1_700_000_100_000
            }
        );
        let invalid = r#"{"status":"invalid_token"}"#;
        for bad in [
            unsecured(r#"{"sub":"alice","exp":1699999999}"#),
            unsecured(r#"{"sub":"alice"}"#),
            unsecured(r#"{"exp":1700000100}"#),
            unsecured(r#"{"sub":"alice","exp":1700000100,"iat":1700000050}"#),
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"none"}"#),
                b64(r#"{"sub":"a","exp":1700000100}"#)
            ),
            format!(
                "{}.{}.",
                b64(r#"{"alg":"RS256"}"#),
                b64(r#"{"sub":"a","exp":1700000100}"#)
            ),
            "a..b".into(),
            "not-a-jws".into(),
        ] {
            assert_eq!(v.validate(&bad, NOW).unwrap_err(), invalid, "{bad}");
        }
        let v = Validator::Unsecured(UnsecuredOptions {
            required_scope: vec!["test".into(), "kafka".into()],
            ..Default::default()
        });
        let scoped = unsecured(r#"{"sub":"a","exp":1700000100,"scope":"kafka test"}"#);
        assert!(v.validate(&scoped, NOW).is_ok());
        let unscoped = unsecured(r#"{"sub":"a","exp":1700000100,"scope":["kafka"]}"#);
        assert_eq!(
            v.validate(&unscoped, NOW).unwrap_err(),
            r#"{"status":"insufficient_scope", "scope":"[test, kafka]"}"#
        );
    }

    #[test]
    fn the_exchange() {
        let v = Validator::Unsecured(UnsecuredOptions::default());
        let mut s = OAuthBearerServer::default();
        let expired = unsecured(r#"{"sub":"alice","exp":1}"#);
        let json = r#"{"status":"invalid_token"}"#.to_string();
        assert_eq!(
            s.evaluate(&v, &first_message(&expired), NOW),
            Step::Challenge(json.clone())
        );
        assert_eq!(s.evaluate(&v, &[1], NOW), Step::Failed(json));
        let ok = unsecured(r#"{"sub":"alice","exp":1700000100}"#);
        let mut s = OAuthBearerServer::default();
        assert!(matches!(
            s.evaluate(&v, &first_message(&ok), NOW),
            Step::Done(_)
        ));
        let mut s = OAuthBearerServer::default();
        let m = format!("n,a=bob,\u{1}auth=Bearer {ok}\u{1}\u{1}");
        assert!(matches!(s.evaluate(&v, m.as_bytes(), NOW), Step::Failed(_)));
        assert!(matches!(s.evaluate(&v, b"garbage", NOW), Step::Failed(_)));
    }

    /// An ES256 key and token made with ring, checked against a JWKS of its public key.
    #[test]
    fn jwks_es256() {
        use ring::rand::SystemRandom;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","x":"{}","y":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65])
        );
        let v = JwksValidator {
            keys: Arc::new(RwLock::new(parse_jwks(&jwks).unwrap())),
            refresher: None,
            expected_issuer: Some("https://issuer".into()),
            expected_audience: Some(vec!["kafka".into()]),
            clock_skew_ms: 30_000,
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
        };
        let sign = |header: &str, claims: &str| {
            let input = format!("{}.{}", b64(header), b64(claims));
            let sig = pair.sign(&rng, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        };
        let header = r#"{"alg":"ES256","kid":"k1"}"#;
        let good = r#"{"sub":"svc","iss":"https://issuer","aud":["kafka"],"exp":1700000100,"iat":1700000000}"#;
        assert_eq!(
            v.validate(&sign(header, good), NOW).unwrap().principal,
            "svc"
        );
        // A bad signature, an expired token, another audience or issuer, a missing iat, an
        // unknown kid.
        // The signature's last character may carry only padding bits (a lenient decoder
        // ignores them, and ECDSA signatures are random): change one inside it instead.
        let mut tampered = sign(header, good).into_bytes();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(v.validate(&tampered, NOW).is_err());
        for claims in [
            r#"{"sub":"svc","iss":"https://issuer","aud":"kafka","exp":1699999000,"iat":1699990000}"#,
            r#"{"sub":"svc","iss":"https://issuer","aud":"other","exp":1700000100,"iat":1700000000}"#,
            r#"{"sub":"svc","iss":"https://other","aud":"kafka","exp":1700000100,"iat":1700000000}"#,
            r#"{"sub":"svc","iss":"https://issuer","aud":"kafka","exp":1700000100}"#,
            r#"{"iss":"https://issuer","aud":"kafka","exp":1700000100,"iat":1700000000}"#,
        ] {
            assert!(v.validate(&sign(header, claims), NOW).is_err(), "{claims}");
        }
        assert!(v
            .validate(&sign(r#"{"alg":"ES256","kid":"k2"}"#, good), NOW)
            .is_err());
        assert!(v.validate(&sign(r#"{"alg":"none"}"#, good), NOW).is_err());
    }
}
