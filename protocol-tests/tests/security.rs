//! Listeners and authentication: the SASL gate, PLAIN and SCRAM exchanges and their failures,
//! SaslHandshake versions, SCRAM credential management, per-listener Metadata endpoints, TLS.

mod common;

use anyhow::{ensure, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use gregor::security::scram::ScramMechanism;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;

const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;
const INVALID_PLAIN: &str = "Authentication failed: Invalid username or password";
const INVALID_SCRAM: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512";

/// A broker with a PLAINTEXT and a SASL_PLAINTEXT listener (PLAIN and SCRAM-SHA-512).
async fn sasl_broker(extra: &[(&str, &str)]) -> Result<TestBroker> {
    let mut props = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            PLAIN_JAAS,
        ),
    ];
    props.extend_from_slice(extra);
    TestBroker::start_with_properties(&props).await
}

async fn metadata_ok(c: &mut Client) -> Result<MetadataResponse> {
    metadata(c, METADATA_V, Some(vec![]), false).await
}

/// Logs in as alice with PLAIN, then asks for Metadata.
async fn alice_metadata(c: &mut Client) -> Result<MetadataResponse> {
    let r = plain_login(c, "alice", "alice-secret").await?;
    ensure!(r.error_code == NONE, "{r:?}");
    metadata_ok(c).await
}

#[tokio::test]
async fn the_gate_closes_on_other_requests_before_authentication() -> Result<()> {
    let b = sasl_broker(&[]).await?;
    // Metadata first.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    c.send_request(METADATA_V, &MetadataRequest::default())
        .await?;
    c.expect_closed().await?;
    // After ApiVersions, still nothing but the handshake.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    api_versions(&mut c).await?;
    c.send_request(METADATA_V, &MetadataRequest::default())
        .await?;
    c.expect_closed().await?;
    // Once the handshake chose a mechanism, only SaslAuthenticate.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    api_versions(&mut c).await?;
    ensure!(handshake(&mut c, 1, "PLAIN").await?.error_code == NONE);
    c.send_request(METADATA_V, &MetadataRequest::default())
        .await?;
    c.expect_closed().await?;
    // A SaslAuthenticate before any handshake.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    c.send_request(2, &SaslAuthenticateRequest::default())
        .await?;
    c.expect_closed().await?;
    // A frame above sasl.server.max.receive.size before authentication.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    c.send_raw(&(600_000i32).to_be_bytes()).await?;
    c.expect_closed().await?;
    // ApiVersions at a version the broker does not serve gets KIP-511's answer, and the client
    // may ask again before the handshake; a third ApiVersions closes the connection.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    // key 18, version 99, correlation id 7, null client id; a body no version defines.
    c.send_frame(&[0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff])
        .await?;
    let frame = c
        .read_frame()
        .await?
        .ok_or_else(|| anyhow::anyhow!("closed"))?;
    let r = decode_response::<ApiVersionsRequest>(frame, 0, 7)?;
    ensure!(r.error_code == UNSUPPORTED_VERSION, "{r:?}");
    api_versions(&mut c).await?;
    c.send_request(3, &ApiVersionsRequest::default()).await?;
    c.expect_closed().await?;
    // The plaintext listener is unaffected: authenticated from the start.
    let mut c = b.client_on("PLAINTEXT").await?;
    metadata_ok(&mut c).await?;
    let h = handshake(&mut c, 1, "PLAIN").await?;
    ensure!(
        h.error_code == ILLEGAL_SASL_STATE && h.mechanisms.is_empty(),
        "{h:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_authenticates_is_closed() -> Result<()> {
    let b = sasl_broker(&[("connections.max.idle.ms", "1000")]).await?;
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    api_versions(&mut c).await?;
    // Half a frame, then nothing: the exchange's deadline closes the connection.
    c.send_raw(&[0, 0]).await?;
    c.expect_closed().await
}

#[tokio::test]
async fn plain_at_every_authenticate_version() -> Result<()> {
    let b = sasl_broker(&[]).await?;
    for v in 0..=2 {
        let mut c = b.client_on("SASL_PLAINTEXT").await?;
        api_versions(&mut c).await?;
        let h = handshake(&mut c, 1, "PLAIN").await?;
        ensure!(h.error_code == NONE, "{h:?}");
        ensure!(mechanisms(&h) == ["PLAIN", "SCRAM-SHA-512"], "{h:?}");
        let r = authenticate(&mut c, v, b"\0alice\0alice-secret").await?;
        ensure!(
            r.error_code == NONE && r.error_message.is_none(),
            "v{v}: {r:?}"
        );
        ensure!(
            r.auth_bytes.is_empty() && r.session_lifetime_ms == 0,
            "v{v}: {r:?}"
        );
        // Authenticated: requests are served, and Metadata names this listener's endpoint.
        let m = metadata_ok(&mut c).await?;
        let port = b.listener_addr("SASL_PLAINTEXT")?.port();
        ensure!(
            m.brokers.len() == 1 && m.brokers[0].port == i32::from(port),
            "{m:?}"
        );
        // A second handshake now reaches the usual handler.
        let h = handshake(&mut c, 1, "PLAIN").await?;
        ensure!(h.error_code == ILLEGAL_SASL_STATE, "{h:?}");
    }
    // The handshake works without ApiVersions first, too.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    ensure!(handshake(&mut c, 1, "PLAIN").await?.error_code == NONE);
    let r = authenticate(&mut c, 1, b"admin\0admin\0admin-secret").await?;
    ensure!(r.error_code == NONE, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn plain_failures_close_the_connection_with_one_message() -> Result<()> {
    let b = sasl_broker(&[]).await?;
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        let mut c = b.client_on("SASL_PLAINTEXT").await?;
        let r = plain_login(&mut c, user, password).await?;
        ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{r:?}");
        ensure!(r.error_message.as_deref() == Some(INVALID_PLAIN), "{r:?}");
        c.expect_closed().await?;
    }
    // A malformed token.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    api_versions(&mut c).await?;
    handshake(&mut c, 1, "PLAIN").await?;
    let r = authenticate(&mut c, 2, b"alice").await?;
    ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{r:?}");
    c.expect_closed().await?;
    // A mechanism the listener does not enable.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let h = handshake(&mut c, 1, "SCRAM-SHA-256").await?;
    ensure!(h.error_code == UNSUPPORTED_SASL_MECHANISM, "{h:?}");
    ensure!(mechanisms(&h) == ["PLAIN", "SCRAM-SHA-512"], "{h:?}");
    c.expect_closed().await
}

#[tokio::test]
async fn sasl_handshake_v0_exchanges_raw_tokens() -> Result<()> {
    let b = sasl_broker(&[]).await?;
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let h = handshake(&mut c, 0, "PLAIN").await?;
    ensure!(h.error_code == NONE, "{h:?}");
    // The token alone, size-prefixed, no request header; the answer likewise (empty for PLAIN).
    c.send_frame(b"\0alice\0alice-secret").await?;
    let answer = c.read_frame().await?;
    ensure!(answer.as_deref() == Some(&b""[..]), "{answer:?}");
    metadata_ok(&mut c).await?;
    // A wrong password after a v0 handshake: closed without an answer.
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    handshake(&mut c, 0, "PLAIN").await?;
    c.send_frame(b"\0alice\0nope").await?;
    c.expect_closed().await
}

// ----- SCRAM -----

fn upsertion(
    user: &str,
    m: ScramMechanism,
    password: &str,
    iterations: i32,
) -> ScramCredentialUpsertion {
    let salt = b"a-salt-of-the-client".to_vec();
    let salted = m.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
    ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(m.type_id())
        .with_iterations(iterations)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(salted))
}

async fn alter(
    c: &mut Client,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Result<Vec<(String, i16)>> {
    let r = c
        .request(
            0,
            AlterUserScramCredentialsRequest::default()
                .with_deletions(deletions)
                .with_upsertions(upsertions),
        )
        .await?;
    Ok(r.results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect())
}

/// The client side of SCRAM (RFC 5802), with a nonce and proof that can be spoiled.
async fn scram_login(
    c: &mut Client,
    m: ScramMechanism,
    user: &str,
    password: &str,
    spoil_nonce: bool,
    spoil_proof: bool,
) -> Result<SaslAuthenticateResponse> {
    api_versions(c).await?;
    let h = handshake(c, 1, m.name()).await?;
    ensure!(h.error_code == NONE, "{h:?}");
    let bare = format!("n={user},r=clientnonce123");
    let r = authenticate(c, 2, format!("n,,{bare}").as_bytes()).await?;
    if r.error_code != NONE {
        return Ok(r);
    }
    let server_first = String::from_utf8(r.auth_bytes.to_vec())?;
    let mut nonce = "";
    let (mut salt, mut iterations) = (Vec::new(), 0);
    for attr in server_first.split(',') {
        match attr.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = B64.decode(v)?,
            ("i=", v) => iterations = v.parse()?,
            _ => {}
        }
    }
    ensure!(
        nonce.starts_with("clientnonce123") && nonce.len() > 14,
        "{server_first}"
    );
    let nonce = if spoil_nonce {
        format!("{nonce}x")
    } else {
        nonce.to_string()
    };
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{bare},{server_first},{without_proof}");
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = m.hmac(&salted, b"Client Key");
    let signature = m.hmac(&m.hash(&client_key), auth.as_bytes());
    let mut proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    if spoil_proof {
        proof[0] ^= 1;
    }
    let r = authenticate(
        c,
        2,
        format!("{without_proof},p={}", B64.encode(&proof)).as_bytes(),
    )
    .await?;
    if r.error_code == NONE {
        // The server proves it knows the credential too.
        let server_key = m.hmac(&salted, b"Server Key");
        let expected = format!("v={}", B64.encode(m.hmac(&server_key, auth.as_bytes())));
        ensure!(
            r.auth_bytes == expected.as_bytes(),
            "server signature {r:?}"
        );
    }
    Ok(r)
}

#[tokio::test]
async fn scram_users_are_managed_and_authenticate() -> Result<()> {
    let mut b = sasl_broker(&[]).await?;
    let m = ScramMechanism::Sha512;
    let mut admin = b.client_on("PLAINTEXT").await?;
    let r = alter(
        &mut admin,
        vec![],
        vec![upsertion("alice", m, "alice-scram", 8192)],
    )
    .await?;
    ensure!(r == [("alice".to_string(), NONE)], "{r:?}");

    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let r = scram_login(&mut c, m, "alice", "alice-scram", false, false).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    metadata_ok(&mut c).await?;

    // A wrong password (a bad proof), a wrong nonce, an unknown user: one message, closed.
    for (user, password, nonce, proof) in [
        ("alice", "wrong", false, false),
        ("alice", "alice-scram", true, false),
        ("alice", "alice-scram", false, true),
        ("nobody", "alice-scram", false, false),
    ] {
        let mut c = b.client_on("SASL_PLAINTEXT").await?;
        let r = scram_login(&mut c, m, user, password, nonce, proof).await?;
        ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{user} {r:?}");
        ensure!(r.error_message.as_deref() == Some(INVALID_SCRAM), "{r:?}");
        c.expect_closed().await?;
    }

    // The credential is in the metadata log: it survives a restart.
    b.restart_clean().await?;
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let r = scram_login(&mut c, m, "alice", "alice-scram", false, false).await?;
    ensure!(r.error_code == NONE, "after restart: {r:?}");

    // Deleted: the user can no longer log in.
    let mut admin = b.client_on("PLAINTEXT").await?;
    let del = ScramCredentialDeletion::default()
        .with_name(s("alice"))
        .with_mechanism(m.type_id());
    let r = alter(&mut admin, vec![del], vec![]).await?;
    ensure!(r == [("alice".to_string(), NONE)], "{r:?}");
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let r = scram_login(&mut c, m, "alice", "alice-scram", false, false).await?;
    ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn describe_and_alter_user_scram_credentials_v0() -> Result<()> {
    let b = sasl_broker(&[]).await?;
    let mut c = b.client_on("PLAINTEXT").await?;
    // v0 is every version advertised (a wider range needs its own tests here).
    let versions = api_versions(&mut c).await?;
    for key in [50, 51] {
        let k = versions.api_keys.iter().find(|k| k.api_key == key);
        ensure!(
            k.is_some_and(|k| (k.min_version, k.max_version) == (0, 0)),
            "{key}: {k:?}"
        );
    }
    let r = alter(
        &mut c,
        vec![ScramCredentialDeletion::default()
            .with_name(s("ghost"))
            .with_mechanism(1)],
        vec![
            upsertion("alice", ScramMechanism::Sha256, "a", 4096),
            upsertion("bob", ScramMechanism::Sha512, "b", 4095),
            upsertion("carol", ScramMechanism::Sha512, "c", 16385),
            upsertion("dave", ScramMechanism::Sha512, "d", 4096),
            upsertion("dave", ScramMechanism::Sha256, "d", 4096),
            upsertion("", ScramMechanism::Sha256, "e", 4096),
        ],
    )
    .await?;
    let expect = [
        ("alice", NONE),
        ("ghost", RESOURCE_NOT_FOUND),
        ("bob", UNACCEPTABLE_CREDENTIAL),
        ("carol", UNACCEPTABLE_CREDENTIAL),
        ("dave", DUPLICATE_RESOURCE),
        ("", UNACCEPTABLE_CREDENTIAL),
    ];
    for (user, code) in expect {
        ensure!(
            r.contains(&(user.to_string(), code)),
            "{user}: {code} expected in {r:?}"
        );
    }
    ensure!(r.len() == expect.len(), "{r:?}");
    alter(
        &mut c,
        vec![],
        vec![upsertion("alice", ScramMechanism::Sha512, "a", 8192)],
    )
    .await?;

    let describe = |users: Option<Vec<&str>>| {
        DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.into_iter()
                .map(|n| UserName::default().with_name(s(n)))
                .collect()
        }))
    };
    let all = c.request(0, describe(None)).await?;
    ensure!(all.error_code == NONE && all.results.len() == 1, "{all:?}");
    let infos: Vec<(i8, i32)> = all.results[0]
        .credential_infos
        .iter()
        .map(|i| (i.mechanism, i.iterations))
        .collect();
    ensure!(
        all.results[0].user.as_str() == "alice" && infos == [(1, 4096), (2, 8192)],
        "{all:?}"
    );
    let some = c
        .request(0, describe(Some(vec!["nobody", "alice", "alice"])))
        .await?;
    let codes: Vec<(&str, i16)> = some
        .results
        .iter()
        .map(|r| (r.user.as_str(), r.error_code))
        .collect();
    ensure!(
        codes
            == [
                ("nobody", RESOURCE_NOT_FOUND),
                ("alice", DUPLICATE_RESOURCE)
            ],
        "{some:?}"
    );
    Ok(())
}

#[tokio::test]
async fn describe_client_quotas_every_version() -> Result<()> {
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let component = |t: &str, match_type: i8, m: Option<&str>| {
        ComponentData::default()
            .with_entity_type(s(t))
            .with_match_type(match_type)
            .with_match(m.map(s))
    };
    for v in 0..=1 {
        // What kafka-configs --entity-type users --entity-name alice --describe asks.
        let req = DescribeClientQuotasRequest::default()
            .with_components(vec![component("user", 0, Some("alice"))])
            .with_strict(true);
        let r = c.request(v, req).await?;
        ensure!(
            r.error_code == NONE && r.entries == Some(vec![]),
            "v{v}: {r:?}"
        );
        for (bad, code) in [
            (vec![component("user", 0, None)], INVALID_REQUEST),
            (
                vec![component("user", 2, None), component("user", 1, None)],
                INVALID_REQUEST,
            ),
            (
                vec![component("ip", 2, None), component("client-id", 2, None)],
                INVALID_REQUEST,
            ),
            (vec![component("group", 2, None)], UNSUPPORTED_VERSION),
        ] {
            let r = c
                .request(
                    v,
                    DescribeClientQuotasRequest::default().with_components(bad),
                )
                .await?;
            ensure!(r.error_code == code && r.entries.is_none(), "v{v}: {r:?}");
        }
    }
    Ok(())
}

// ----- Listeners -----

#[tokio::test]
async fn metadata_answers_the_endpoints_of_the_listener_asked() -> Result<()> {
    let b = TestBroker::start_with_properties(&[
        ("listeners", "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0"),
        (
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        ),
        ("advertised.listeners", "EXTERNAL://kafka.example:19092"),
        ("inter.broker.listener.name", "INTERNAL"),
    ])
    .await?;
    let mut c = b.client_on("INTERNAL").await?;
    let m = metadata_ok(&mut c).await?;
    let port = i32::from(b.listener_addr("INTERNAL")?.port());
    ensure!(
        m.brokers[0].host.as_str() == "127.0.0.1" && m.brokers[0].port == port,
        "{m:?}"
    );
    let mut c = b.client_on("EXTERNAL").await?;
    let m = metadata_ok(&mut c).await?;
    ensure!(
        m.brokers[0].host.as_str() == "kafka.example" && m.brokers[0].port == 19092,
        "{m:?}"
    );
    let d = c.request(0, DescribeClusterRequest::default()).await?;
    ensure!(
        d.brokers[0].host.as_str() == "kafka.example" && d.brokers[0].port == 19092,
        "{d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn several_brokers_each_listen_on_every_listener() -> Result<()> {
    let b = TestBroker::start_with_properties_and(
        &[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            ),
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("sasl.jaas.config", PLAIN_JAAS),
        ],
        |c| c.brokers = 2,
    )
    .await?;
    ensure!(b.listener_addrs.len() == 2, "{:?}", b.listener_addrs);
    // Broker 2's SASL listener: authenticate, then Metadata lists each broker's SASL endpoint.
    let (_, sasl2) = b.listener_addrs[1]
        .iter()
        .find(|(n, _)| n == "SASL_PLAINTEXT")
        .ok_or_else(|| anyhow::anyhow!("no SASL listener on broker 2"))?;
    let mut c = connect(*sasl2).await?;
    let m = alice_metadata(&mut c).await?;
    let ports: Vec<i32> = m.brokers.iter().map(|b| b.port).collect();
    let expected: Vec<i32> = b
        .listener_addrs
        .iter()
        .map(|l| i32::from(l[1].1.port()))
        .collect();
    ensure!(ports == expected, "{m:?}");
    Ok(())
}

// ----- TLS -----

async fn tls_client(addr: std::net::SocketAddr, certs: &Certs, with_cert: bool) -> Result<Client> {
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(certs.roots()?);
    let config = if with_cert {
        let (chain, key) = certs.client_identity()?;
        builder.with_client_auth_cert(chain, key)?
    } else {
        builder.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Client::over(Box::new(tls)))
}

#[tokio::test]
async fn tls_listener_serves_produce_and_fetch_and_refuses_plaintext() -> Result<()> {
    let certs = Certs::make()?;
    let (keystore, ca) = (certs.server_keystore()?, certs.path("ca.pem"));
    let b = TestBroker::start_with_properties(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &ca),
        ("ssl.client.auth", "requested"),
    ])
    .await?;
    let addr = b.listener_addr("SSL")?;
    for with_cert in [false, true] {
        let mut c = tls_client(addr, &certs, with_cert).await?;
        api_versions(&mut c).await?;
        let m = metadata_ok(&mut c).await?;
        ensure!(m.brokers[0].port == i32::from(addr.port()), "{m:?}");
        let topic = format!("tls-{with_cert}");
        create_topic(&mut c, &topic, 1).await?;
        produce_ok(&mut c, &topic, 0, values_batch(&["a", "b", "c"])).await?;
        // Fetch's file bytes go through the TLS stream (no sendfile under TLS).
        let p = fetch_one(&mut c, &topic, 0, 0, 1 << 20).await?;
        let records = decode_records(
            p.records
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no records"))?,
        )?;
        ensure!(records.len() == 3, "{records:?}");
    }
    // Plaintext Kafka bytes on the TLS port: closed, the broker unaffected.
    let mut c = connect(addr).await?;
    c.send_request(3, &ApiVersionsRequest::default()).await?;
    c.expect_closed().await?;
    // A TLS hello on the plaintext port: its first bytes read as a huge frame size: closed.
    let plain = b.listener_addr("PLAINTEXT")?;
    ensure!(tls_client(plain, &certs, false).await.is_err());
    let mut c = tls_client(addr, &certs, false).await?;
    api_versions(&mut c).await?;
    let mut c = b.client_on("PLAINTEXT").await?;
    metadata_ok(&mut c).await?;
    Ok(())
}

/// The TLS version and cipher suite a handshake with `versions` settles on.
async fn tls_negotiated(
    addr: std::net::SocketAddr,
    certs: &Certs,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(rustls::ProtocolVersion, rustls::CipherSuite)> {
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(certs.roots()?)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .ok_or_else(|| anyhow::anyhow!("no version"))?;
    let suite = session
        .negotiated_cipher_suite()
        .ok_or_else(|| anyhow::anyhow!("no suite"))?
        .suite();
    Ok((version, suite))
}

/// ssl.enabled.protocols and ssl.cipher.suites with Java's names; a suite gregor does not serve
/// fails the start.
#[tokio::test]
async fn tls_cipher_suites_and_protocols() -> Result<()> {
    let certs = Certs::make()?;
    let keystore = certs.server_keystore()?;
    let settings = |suites: &'static str, protocols: &'static str| {
        vec![
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0".to_string(),
            ),
            ("ssl.keystore.type", "PEM".to_string()),
            ("ssl.keystore.location", keystore.clone()),
            ("ssl.cipher.suites", suites.to_string()),
            ("ssl.enabled.protocols", protocols.to_string()),
        ]
    };
    let start = |pairs: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        TestBroker::start_with_properties(&pairs).await
    };
    use rustls::{CipherSuite, ProtocolVersion};
    // A suite only Java serves is left out of the list.
    let b = start(settings(
        "TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLSv1.2",
    ))
    .await?;
    let addr = b.listener_addr("SSL")?;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];
    ensure!(
        tls_negotiated(addr, &certs, &all).await?
            == (
                ProtocolVersion::TLSv1_2,
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            )
    );
    ensure!(
        tls_negotiated(addr, &certs, &[&rustls::version::TLS13])
            .await
            .is_err(),
        "a TLS 1.3 client on a TLSv1.2 listener"
    );
    drop(b);
    let b = start(settings("TLS_AES_256_GCM_SHA384", "TLSv1.2,TLSv1.3")).await?;
    let addr = b.listener_addr("SSL")?;
    ensure!(
        tls_negotiated(addr, &certs, &all).await?
            == (
                ProtocolVersion::TLSv1_3,
                CipherSuite::TLS13_AES_256_GCM_SHA384
            )
    );
    drop(b);
    for (suites, protocols, why) in [
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265",
            "TLSv1.2",
            "unsupported cipher suite",
        ),
        (
            "TLS_RSA_WITH_AES_128_CBC_SHA",
            "TLSv1.2",
            "none of these suites is served",
        ),
        (
            "TLS_AES_128_GCM_SHA256",
            "TLSv1.2",
            "no cipher suite for the ssl.enabled.protocols",
        ),
        ("", "TLSv1.4", "unknown protocol"),
    ] {
        let refused = start(settings(suites, protocols)).await;
        let message = format!(
            "{:#}",
            refused
                .err()
                .ok_or_else(|| anyhow::anyhow!("{suites} started"))?
        );
        ensure!(message.contains(why), "{message}");
    }
    Ok(())
}

#[tokio::test]
async fn tls_client_auth_required_and_inline_pem() -> Result<()> {
    let certs = Certs::make()?;
    let (key, chain, ca) = (
        certs.read("server.key")?,
        certs.read("server.pem")?,
        certs.read("ca.pem")?,
    );
    // Inline PEM values, joined into single lines as continuation lines would make them.
    let one_line = |s: &str| s.replace('\n', " ");
    let (key, chain, ca) = (one_line(&key), one_line(&chain), one_line(&ca));
    let jaas = PLAIN_JAAS.to_string();
    let b = TestBroker::start_with_properties(&[
        ("listeners", "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.key", &key),
        ("ssl.keystore.certificate.chain", &chain),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.certificates", &ca),
        ("listener.name.ssl.ssl.client.auth", "required"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", &jaas),
    ])
    .await?;
    let ssl = b.listener_addr("SSL")?;
    let mut c = tls_client(ssl, &certs, true).await?;
    api_versions(&mut c).await?;
    // Without a certificate the handshake fails (rustls reports it on the first read or write).
    let refused = match tls_client(ssl, &certs, false).await {
        Err(_) => true,
        Ok(mut c) => c.request(3, ApiVersionsRequest::default()).await.is_err(),
    };
    ensure!(refused, "a client without a certificate was served");
    // SASL over TLS: the gate and PLAIN as on SASL_PLAINTEXT.
    let sasl_ssl = b.listener_addr("SASL_SSL")?;
    let mut c = tls_client(sasl_ssl, &certs, false).await?;
    c.send_request(METADATA_V, &MetadataRequest::default())
        .await?;
    c.expect_closed().await?;
    let mut c = tls_client(sasl_ssl, &certs, false).await?;
    let m = alice_metadata(&mut c).await?;
    ensure!(m.brokers[0].port == i32::from(sasl_ssl.port()), "{m:?}");
    Ok(())
}

/// KIP-368: with connections.max.reauth.ms the session has a lifetime; the client may
/// re-authenticate on the live connection (same principal, same mechanism); a request after the
/// session ended closes the connection, unanswered (SaslServerAuthenticator, SocketServer).
#[tokio::test]
async fn reauthentication_and_expired_sessions() -> Result<()> {
    const PLAIN_JAAS_BOB: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";"#;
    let b = sasl_broker(&[
        ("connections.max.reauth.ms", "60000"),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            PLAIN_JAAS_BOB,
        ),
    ])
    .await?;
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let r = plain_login(&mut c, "alice", "alice-secret").await?;
    ensure!(
        r.error_code == NONE && r.session_lifetime_ms == 60_000,
        "{r:?}"
    );
    // Re-authentication before the end, then after it: the connection goes on.
    for advance in [30_000, 61_000] {
        b.broker().clock.advance(advance);
        let h = handshake(&mut c, 1, "PLAIN").await?;
        ensure!(h.error_code == NONE, "{h:?}");
        let r = authenticate(&mut c, 2, b"\0alice\0alice-secret").await?;
        ensure!(
            r.error_code == NONE && r.session_lifetime_ms == 60_000,
            "{r:?}"
        );
        metadata_ok(&mut c).await?;
    }
    // Not re-authenticated in time: the next request closes the connection.
    b.broker().clock.advance(60_000);
    c.send_request(
        METADATA_V,
        &MetadataRequest::default().with_topics(Some(vec![])),
    )
    .await?;
    c.expect_closed().await?;

    // Another principal, or another mechanism: refused, and closed.
    let (mut c, r) = reauthenticate(&b, "PLAIN", b"\0bob\0bob-secret").await?;
    ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{r:?}");
    ensure!(
        r.error_message.as_deref()
            == Some("Cannot change principals during re-authentication from User.alice: User.bob"),
        "{r:?}"
    );
    c.expect_closed().await?;
    let (mut c, r) = reauthenticate(&b, "SCRAM-SHA-512", b"n,,n=alice,r=abc").await?;
    ensure!(r.error_code == SASL_AUTHENTICATION_FAILED, "{r:?}");
    c.expect_closed().await?;

    // At most one re-authentication a second: a second handshake within it is a request like
    // any other (ILLEGAL_SASL_STATE).
    let (mut c, r) = reauthenticate(&b, "PLAIN", b"\0alice\0alice-secret").await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let h = handshake(&mut c, 1, "PLAIN").await?;
    ensure!(h.error_code == ILLEGAL_SASL_STATE, "{h:?}");
    assert_serves(&b).await
}

/// A new connection logged in as alice (PLAIN), then re-authenticating with `mechanism` and
/// `token`.
async fn reauthenticate(
    b: &TestBroker,
    mechanism: &str,
    token: &[u8],
) -> Result<(Client, SaslAuthenticateResponse)> {
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    plain_login(&mut c, "alice", "alice-secret").await?;
    let h = handshake(&mut c, 1, mechanism).await?;
    ensure!(h.error_code == NONE, "{h:?}");
    let r = authenticate(&mut c, 2, token).await?;
    Ok((c, r))
}

/// Without connections.max.reauth.ms a session does not end (lifetime 0).
#[tokio::test]
async fn sessions_without_a_lifetime_do_not_expire() -> Result<()> {
    let b = sasl_broker(&[]).await?;
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
    let r = plain_login(&mut c, "alice", "alice-secret").await?;
    ensure!(r.error_code == NONE && r.session_lifetime_ms == 0, "{r:?}");
    b.broker().clock.advance(365 * 24 * 3_600_000);
    metadata_ok(&mut c).await?;
    Ok(())
}

/// ssl.principal.mapping.rules (KIP-371): the client certificate's subject
/// (`CN=alice,OU=eng,O=acme`) becomes the name the first applicable rule makes of it; a subject
/// no rule applies to gets no principal and its connection is closed; bad rules stop start-up.
#[tokio::test]
async fn ssl_principal_mapping_rules() -> Result<()> {
    let certs = Certs::make()?;
    let (keystore, ca) = (certs.server_keystore()?, certs.path("ca.pem"));
    let start = |rules: &str| {
        let props: Vec<(String, String)> = [
            ("listeners", "SSL://127.0.0.1:0"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", keystore.as_str()),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", ca.as_str()),
            ("ssl.client.auth", "required"),
            ("ssl.principal.mapping.rules", rules),
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("super.users", "User:ALICE@ENG"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        async move {
            let props: Vec<(&str, &str)> = props
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            TestBroker::start_with_properties(&props).await
        }
    };
    let describe_acls = || {
        DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
    };
    // Mapped to the super user: DescribeAcls is allowed.
    let b = start("RULE:^CN=([^,]*),OU=([^,]*),.*$/$1@$2/U, DEFAULT").await?;
    let mut c = tls_client(b.listener_addr("SSL")?, &certs, true).await?;
    let r = c.request(3, describe_acls()).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    // DEFAULT: the whole subject, not a super user.
    let b = start("RULE:^CN=bob,.*$/bob/,DEFAULT").await?;
    let mut c = tls_client(b.listener_addr("SSL")?, &certs, true).await?;
    let r = c.request(3, describe_acls()).await?;
    ensure!(r.error_code == 31, "{r:?}");
    // No rule applies: the connection is closed.
    let b = start("RULE:^O=.*$/x/").await?;
    let refused = match tls_client(b.listener_addr("SSL")?, &certs, true).await {
        Err(_) => true,
        Ok(mut c) => c.request(3, describe_acls()).await.is_err(),
    };
    ensure!(refused, "a certificate no rule maps was served");
    ensure!(
        start("RULE:^CN=(.*)$/$1/X").await.is_err(),
        "started with an invalid rule"
    );
    Ok(())
}
