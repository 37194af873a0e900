//! SASL/OAUTHBEARER: Kafka's unsecured validator and JWKS validation, and the refusals
//! (OAuthBearerSaslServer: a bad token gets the error JSON as a challenge, then
//! SASL_AUTHENTICATION_FAILED with it once the client acknowledged it with 0x01).

mod common;

use anyhow::{ensure, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const INVALID_TOKEN: &str = r#"{"status":"invalid_token"}"#;
const JWKS_VALIDATOR: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";

fn b64(v: &str) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn now_s() -> i64 {
    now_ms() / 1000
}

fn unsecured(claims: &str) -> String {
    format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims))
}

/// An unsigned token for alice with the scope the unsecured broker requires.
fn alice_token(exp: i64) -> String {
    unsecured(&format!(r#"{{"sub":"alice","exp":{exp},"scope":"kafka"}}"#))
}

/// The client's first message (RFC 7628) as Kafka's OAuthBearerSaslClient sends it.
fn first_message(token: &str) -> Vec<u8> {
    format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
}

async fn oauth_client(b: &TestBroker) -> Result<Client> {
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    api_versions(&mut c).await?;
    let h = handshake(&mut c, 1, "OAUTHBEARER").await?;
    ensure!(h.error_code == NONE, "{h:?}");
    Ok(c)
}

/// Authenticates with `token`; the connection then serves requests. The session lasts until
/// the token expires (KIP-368: the credential's lifetime, without connections.max.reauth.ms).
async fn accepted(b: &TestBroker, token: &str, exp_s: i64) -> Result<()> {
    let mut c = oauth_client(b).await?;
    let before = now_ms();
    let r = authenticate(&mut c, 2, &first_message(token)).await?;
    ensure!(r.error_code == NONE && r.auth_bytes.is_empty(), "{r:?}");
    let lifetime = r.session_lifetime_ms;
    ensure!(
        lifetime > 0 && lifetime <= exp_s * 1000 - before,
        "session lifetime {lifetime} for a token expiring at {exp_s}"
    );
    let m = metadata(&mut c, METADATA_V, None, false).await?;
    ensure!(!m.brokers.is_empty(), "{m:?}");
    Ok(())
}

/// The token is refused as Kafka refuses it: the error JSON as a challenge, then
/// SASL_AUTHENTICATION_FAILED carrying it, and the connection closed.
async fn refused(b: &TestBroker, token: &str, json: &str) -> Result<()> {
    let mut c = oauth_client(b).await?;
    let r = authenticate(&mut c, 2, &first_message(token)).await?;
    ensure!(
        r.error_code == NONE && r.auth_bytes.as_ref() == json.as_bytes(),
        "challenge: {r:?}"
    );
    let r = authenticate(&mut c, 2, &[1]).await?;
    ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{r:?}");
    ensure!(r.error_message.as_deref() == Some(json), "{r:?}");
    c.expect_closed().await
}

async fn unsecured_broker() -> Result<TestBroker> {
    TestBroker::start_with_properties(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "OAUTHBEARER"),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope=\"kafka\";",
        ),
    ])
    .await
}

#[tokio::test]
async fn unsecured_tokens_are_validated_as_kafka_does() -> Result<()> {
    let b = unsecured_broker().await?;
    let t = now_s();
    accepted(
        &b,
        &unsecured(&format!(
            r#"{{"sub":"alice","iat":{t},"exp":{},"scope":"kafka other"}}"#,
            t + 60
        )),
        t + 60,
    )
    .await?;
    // Expired; no sub; issued in the future.
    for claims in [
        format!(r#"{{"sub":"alice","exp":{},"scope":"kafka"}}"#, t - 1),
        format!(r#"{{"exp":{},"scope":"kafka"}}"#, t + 60),
        format!(
            r#"{{"sub":"alice","iat":{},"exp":{},"scope":"kafka"}}"#,
            t + 30,
            t + 60
        ),
    ] {
        refused(&b, &unsecured(&claims), INVALID_TOKEN).await?;
    }
    // Without the required scope.
    let claims = format!(r#"{{"sub":"alice","exp":{},"scope":"other"}}"#, t + 60);
    refused(
        &b,
        &unsecured(&claims),
        r#"{"status":"insufficient_scope", "scope":"[kafka]"}"#,
    )
    .await?;
    assert_serves(&b).await
}

#[tokio::test]
async fn truncated_and_oversized_tokens() -> Result<()> {
    let b = unsecured_broker().await?;
    let t = now_s();
    let good = alice_token(t + 60);
    // A first message cut short: Kafka's SaslException, one generic message.
    let whole = first_message(&good);
    for cut in [whole.len() - 1, whole.len() / 2, 3, 0] {
        let mut c = oauth_client(&b).await?;
        let r = authenticate(&mut c, 2, &whole[..cut]).await?;
        ensure!(
            r.error_code == SASL_AUTHENTICATION_FAILED,
            "cut at {cut}: {r:?}"
        );
        c.expect_closed().await?;
    }
    // A token cut short is no JWS.
    refused(&b, &good[..good.len() / 2], INVALID_TOKEN).await?;
    // A large token within sasl.server.max.receive.size is just invalid.
    refused(&b, &"A".repeat(200_000), INVALID_TOKEN).await?;
    // One beyond it closes the connection unanswered, as Kafka does.
    // The broker may close while the client is still writing the frame (it reads only the size
    // prefix): a failed write is that same close.
    let mut c = oauth_client(&b).await?;
    let sent = c
        .send_request(
            2,
            &kafka_protocol::messages::SaslAuthenticateRequest::default()
                .with_auth_bytes(first_message(&"A".repeat(600_000)).into()),
        )
        .await;
    if sent.is_ok() {
        c.expect_closed().await?;
    }
    assert_serves(&b).await
}

/// A P-256 key (ES256) whose public half is in a JWKS file.
struct Issuer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    kid: &'static str,
}

impl Issuer {
    fn new() -> Result<Issuer> {
        Issuer::with_kid("k1")
    }

    fn with_kid(kid: &'static str) -> Result<Issuer> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Issuer { pair, rng, kid })
    }

    fn jwks(&self) -> String {
        let p = self.pair.public_key().as_ref();
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{}","use":"sig","alg":"ES256","x":"{}","y":"{}"}}]}}"#,
            self.kid,
            URL_SAFE_NO_PAD.encode(&p[1..33]),
            URL_SAFE_NO_PAD.encode(&p[33..65])
        )
    }

    fn sign(&self, claims: &str) -> Result<String> {
        let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, self.kid);
        let input = format!("{}.{}", b64(&header), b64(claims));
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

#[tokio::test]
async fn jwks_validated_tokens() -> Result<()> {
    let issuer = Issuer::new()?;
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks())?;
    let url = format!("file://{}", jwks.display());
    let b = jwks_broker(
        &url,
        "",
        &[("sasl.oauthbearer.expected.issuer", "https://issuer.test")],
    )
    .await?;
    let t = now_s();
    let claims = |iss: &str, aud: &str, iat: i64, exp: i64| {
        format!(r#"{{"sub":"svc","iss":"{iss}","aud":"{aud}","iat":{iat},"exp":{exp}}}"#)
    };
    let good = issuer.sign(&claims("https://issuer.test", "kafka", t, t + 600))?;
    accepted(&b, &good, t + 600).await?;
    // A bad signature: the last signature byte changed.
    let (input, sig) = good.rsplit_once('.').unwrap_or_default();
    let mut sig = URL_SAFE_NO_PAD.decode(sig)?;
    if let Some(last) = sig.last_mut() {
        *last ^= 1;
    }
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    refused(&b, &forged, INVALID_TOKEN).await?;
    // Signed by a key the JWKS does not have.
    let other = Issuer::new()?.sign(&claims("https://issuer.test", "kafka", t, t + 600))?;
    refused(&b, &other, INVALID_TOKEN).await?;
    // Expired (beyond the 30 s clock skew), for another audience, from another issuer.
    for c in [
        claims("https://issuer.test", "kafka", t - 600, t - 60),
        claims("https://issuer.test", "billing", t, t + 600),
        claims("https://other.test", "kafka", t, t + 600),
    ] {
        refused(&b, &issuer.sign(&c)?, INVALID_TOKEN).await?;
    }
    // An unsigned token is not accepted by the JWKS validator.
    refused(
        &b,
        &unsecured(&claims("https://issuer.test", "kafka", t, t + 600)),
        INVALID_TOKEN,
    )
    .await?;
    assert_serves(&b).await
}

/// KIP-368 with OAUTHBEARER: the session ends when the token expires; re-authenticating with a
/// fresh token on the live connection extends it; past its end the next request closes the
/// connection (the broker's clock moved, no wall-clock wait).
#[tokio::test]
async fn a_session_lasts_as_long_as_its_token() -> Result<()> {
    let (b, t) = (unsecured_broker().await?, now_s());
    let mut c = oauth_client(&b).await?;
    let r = authenticate(&mut c, 2, &first_message(&alice_token(t + 60))).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    b.broker().clock.advance(30_000);
    let h = handshake(&mut c, 1, "OAUTHBEARER").await?;
    ensure!(h.error_code == NONE, "{h:?}");
    let r = authenticate(&mut c, 2, &first_message(&alice_token(t + 120))).await?;
    ensure!(
        r.error_code == NONE && r.session_lifetime_ms > 60_000,
        "{r:?}"
    );
    // Past the first token's expiry the session goes on; past the second's it ends.
    b.broker().clock.advance(40_000);
    metadata(&mut c, METADATA_V, None, false).await?;
    b.broker().clock.advance(60_000);
    c.send_request(
        METADATA_V,
        &kafka_protocol::messages::MetadataRequest::default(),
    )
    .await?;
    c.expect_closed().await?;
    assert_serves(&b).await
}

/// A JWKS served over https on 127.0.0.1 by a thread with its own runtime (the broker's
/// start-up fetch waits for it), the document swappable, the requests counted.
struct JwksServer {
    port: u16,
    document: std::sync::Arc<std::sync::Mutex<String>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    fn start(certs: &Certs, document: String) -> Result<JwksServer> {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let chain = gregor::security::keystore::pem_blocks(&certs.read("server.pem")?)
            .map_err(anyhow::Error::msg)?;
        let key = gregor::security::keystore::pem_blocks(&certs.read("server.key")?)
            .map_err(anyhow::Error::msg)?;
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                chain.into_iter().map(|(_, d)| d.into()).collect(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(key[0].1.clone().into()),
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let server = JwksServer {
            port,
            document: std::sync::Arc::new(std::sync::Mutex::new(document)),
            requests: Default::default(),
        };
        let (document, requests) = (server.document.clone(), server.requests.clone());
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((tcp, _)) = listener.accept().await {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        continue;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = document.lock().map(|d| d.clone()).unwrap_or_default();
                    requests.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        });
        Ok(server)
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/jwks.json", self.port)
    }
}

/// A broker whose OAUTHBEARER tokens are checked against the JWKS at `url` (audience kafka),
/// with `jaas_options` for the login module and `extra` settings.
async fn jwks_broker(url: &str, jaas_options: &str, extra: &[(&str, &str)]) -> Result<TestBroker> {
    let jaas = format!(
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required {jaas_options};"
    );
    let mut settings = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "OAUTHBEARER"),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class",
            JWKS_VALIDATOR,
        ),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            &jaas,
        ),
        ("sasl.oauthbearer.jwks.endpoint.url", url),
        ("sasl.oauthbearer.expected.audience", "kafka"),
    ];
    settings.extend_from_slice(extra);
    TestBroker::start_with_properties(&settings).await
}

/// A broker whose JWKS is at an http(s) `url`, refreshed every `refresh_ms`; tokens' issuers are
/// not checked unless `allow_unverified_issuer` is "false" (Kafka 4.4 then requires
/// sasl.oauthbearer.expected.issuer, unset here).
async fn https_jwks_broker(
    url: &str,
    jaas_options: &str,
    refresh_ms: &str,
    allow_unverified_issuer: &str,
) -> Result<TestBroker> {
    jwks_broker(
        url,
        jaas_options,
        &[
            ("sasl.oauthbearer.jwks.endpoint.refresh.ms", refresh_ms),
            (
                "sasl.oauthbearer.allow.unverified.issuer",
                allow_unverified_issuer,
            ),
        ],
    )
    .await
}

/// The JAAS options that make the login module trust the test CA (the JWKS server's).
fn truststore_options(certs: &Certs) -> String {
    format!(
        "ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{}\"",
        certs.path("ca.pem")
    )
}

/// Claims of a token for `svc`, audience kafka, issued at `t` (seconds), valid 10 minutes.
fn svc_claims(t: i64) -> String {
    format!(
        r#"{{"sub":"svc","aud":"kafka","iat":{t},"exp":{}}}"#,
        t + 600
    )
}

/// A token naming a key id the JWKS lacks makes the broker fetch the JWKS at once, as Kafka's
/// RefreshingHttpsJwks.maybeExpediteRefresh does, not an hour later: that token is refused, a
/// retry after the fetch is accepted. The same unknown id does not fetch again within a minute.
#[tokio::test]
async fn an_unknown_key_id_refreshes_the_jwks_at_once() -> Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let certs = Certs::make()?;
    let (old, rotated) = (Issuer::with_kid("k1")?, Issuer::with_kid("k2")?);
    let server = JwksServer::start(&certs, old.jwks())?;
    let truststore = truststore_options(&certs);
    // Refreshed every hour: only an expedited fetch can take up the rotated key in this test.
    let b = https_jwks_broker(&server.url(), &truststore, "3600000", "true").await?;
    let t = now_s();
    let claims = svc_claims(t);
    accepted(&b, &old.sign(&claims)?, t + 600).await?;
    let fetched = server.requests.load(SeqCst);

    *server
        .document
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))? = rotated.jwks();
    let token = rotated.sign(&claims)?;
    refused(&b, &token, INVALID_TOKEN).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.requests.load(SeqCst) == fetched {
        ensure!(
            std::time::Instant::now() < deadline,
            "no expedited JWKS fetch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The fetch may still be on its way into the keys: retry as a client would.
    loop {
        let mut c = oauth_client(&b).await?;
        let r = authenticate(&mut c, 2, &first_message(&token)).await?;
        // A refusal is a challenge first (the error JSON), an acceptance an empty answer.
        if r.error_code == NONE && r.auth_bytes.is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the rotated key was not taken up: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // k1 is gone now; asking for it again fetches once, and not again within the minute.
    let before = server.requests.load(SeqCst);
    refused(&b, &old.sign(&claims)?, INVALID_TOKEN).await?;
    while server.requests.load(SeqCst) == before {
        ensure!(std::time::Instant::now() < deadline, "no fetch for k1");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = server.requests.load(SeqCst);
    refused(&b, &old.sign(&claims)?, INVALID_TOKEN).await?;
    accepted(&b, &token, t + 600).await?;
    ensure!(
        server.requests.load(SeqCst) == after,
        "a second fetch within the minute"
    );
    Ok(())
}

/// The JWKS from an https endpoint, verified with the truststore of the login module's JAAS
/// options, fetched at start-up and refreshed: a rotated key is taken up, the old one then
/// refused. A client's SASL extensions (KIP-342) are accepted, as Kafka's validator accepts
/// them. An endpoint that cannot be reached, or not verified, stops start-up.
#[tokio::test]
async fn jwks_from_an_https_endpoint_refreshed() -> Result<()> {
    let certs = Certs::make()?;
    let (old, new) = (Issuer::new()?, Issuer::new()?);
    let server = JwksServer::start(&certs, old.jwks())?;
    let truststore = truststore_options(&certs);
    let b = https_jwks_broker(&server.url(), &truststore, "100", "true").await?;
    let t = now_s();
    let claims = svc_claims(t);
    let (old_token, new_token) = (old.sign(&claims)?, new.sign(&claims)?);
    accepted(&b, &old_token, t + 600).await?;
    // Extensions beside auth (traceId here) are accepted and not used.
    let mut c = oauth_client(&b).await?;
    let with_extension = format!("n,,\u{1}traceId=abc-1\u{1}auth=Bearer {old_token}\u{1}\u{1}");
    let r = authenticate(&mut c, 2, with_extension.as_bytes()).await?;
    ensure!(r.error_code == NONE && r.auth_bytes.is_empty(), "{r:?}");

    // The identity provider rotates its key; a refresh (every 100 ms here) takes it up.
    let fetched = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    *server
        .document
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))? = new.jwks();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.requests.load(std::sync::atomic::Ordering::SeqCst) < fetched + 2 {
        ensure!(
            std::time::Instant::now() < deadline,
            "no refresh of the JWKS"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    accepted(&b, &new_token, t + 600).await?;
    refused(&b, &old_token, INVALID_TOKEN).await?;
    drop(b);

    // Start-up fails on an endpoint nobody serves, and on one the truststore does not vouch
    // for (no JAAS truststore: the system's CAs do not know the test CA).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let nobody = format!("https://127.0.0.1:{closed}/jwks.json");
    // And without an expected issuer, unless unverified issuers are allowed (Kafka 4.4).
    for (url, options, allow, why) in [
        (
            nobody.as_str(),
            truststore.as_str(),
            "true",
            "cannot connect",
        ),
        (server.url().as_str(), "", "true", "TLS"),
        (
            server.url().as_str(),
            truststore.as_str(),
            "false",
            "requires sasl.oauthbearer.expected.issuer",
        ),
    ] {
        let refused = https_jwks_broker(url, options, "3600000", allow).await;
        let message = format!(
            "{:#}",
            refused
                .err()
                .ok_or_else(|| anyhow::anyhow!("{url} started"))?
        );
        ensure!(message.contains(why), "{message}");
    }
    Ok(())
}
