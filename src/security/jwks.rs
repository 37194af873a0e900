//! OAUTHBEARER's JWKS endpoint (`sasl.oauthbearer.jwks.endpoint.url`) over http(s), as Kafka's
//! RefreshingHttpsJwks reads it: fetched at start-up (a failure stops start-up), then again
//! every `sasl.oauthbearer.jwks.endpoint.refresh.ms` (3600000) by a thread of its own; a failed
//! refresh keeps the keys it had and is logged. An https endpoint is verified against the
//! truststore of the OAuthBearerLoginModule's JAAS options (`ssl.truststore.location`,
//! `ssl.truststore.type`, `ssl.truststore.password`, `ssl.truststore.certificates`), as
//! Kafka's JaasOptionsUtils builds its SSLSocketFactory from them; without one, against the
//! system's CA bundle (Kafka: the JVM's).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The largest JWKS document read (a JWKS is a few KB).
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Where Linux distributions keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// An http(s) JWKS endpoint and how to reach it.
#[derive(Clone)]
pub struct Endpoint {
    url: hyper::Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// The endpoint of `url`; `jaas_options` hold the truststore of an https one.
    pub fn new(url: &str, jaas_options: &BTreeMap<String, String>) -> Result<Endpoint, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(Arc::new(client_config(jaas_options)?)),
            _ => return Err("not a file://, http:// or https:// URL".into()),
        };
        if uri.host().is_none() {
            return Err("no host in the URL".into());
        }
        Ok(Endpoint { url: uri, tls })
    }

    /// The document at the endpoint, fetched on a thread of its own (so that a caller on an
    /// async runtime is not asked to block it).
    pub fn fetch_blocking(&self) -> Result<String, String> {
        let endpoint = self.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                tokio::time::timeout(FETCH_TIMEOUT, endpoint.fetch())
                    .await
                    .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
            })
        })
        .join()
        .map_err(|_| "the fetch thread failed".to_string())?
    }

    async fn fetch(&self) -> Result<String, String> {
        let host = self.url.host().unwrap_or_default();
        let port = self
            .url
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let path = self
            .url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let request = hyper::Request::get(path)
            .header(
                hyper::header::HOST,
                self.url.authority().map_or(host, |a| a.as_str()),
            )
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        match &self.tls {
            None => send(TokioIo::new(tcp), request).await,
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(
                    host.trim_matches(['[', ']']).to_string(),
                )
                .map_err(|e| format!("bad host name: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                send(TokioIo::new(tls), request).await
            }
        }
    }
}

/// One HTTP/1.1 exchange on `io`: the body of a 200 answer, at most MAX_JWKS_BYTES.
async fn send<T>(io: TokioIo<T>, request: hyper::Request<Empty<Bytes>>) -> Result<String, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    let result = match response {
        Err(e) => Err(e),
        Ok(r) if r.status() != hyper::StatusCode::OK => Err(format!("HTTP status {}", r.status())),
        Ok(r) => Limited::new(r.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))
            .and_then(|body| {
                String::from_utf8(body.to_bytes().to_vec()).map_err(|_| "not UTF-8".to_string())
            }),
    };
    driver.abort();
    result
}

/// The TLS client config of an https endpoint.
fn client_config(jaas_options: &BTreeMap<String, String>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let has_truststore = jaas_options
        .keys()
        .any(|k| k == "ssl.truststore.location" || k == "ssl.truststore.certificates");
    if has_truststore {
        let listener = crate::config::ListenerConfig::plaintext("", 0);
        let settings = super::ListenerSettings {
            listener: &listener,
            settings: jaas_options,
        };
        for cert in super::keystore::truststore(&settings).map_err(|e| e.to_string())? {
            roots
                .add(cert)
                .map_err(|e| format!("bad CA certificate: {e}"))?;
        }
    } else {
        let bundle = SYSTEM_CA_BUNDLES
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .ok_or("no truststore: set ssl.truststore.location in the OAuthBearerLoginModule's JAAS options (no system CA bundle found)")?;
        let blocks = super::keystore::pem_blocks(&bundle)?;
        for (_, der) in blocks.into_iter().filter(|(l, _)| l == "CERTIFICATE") {
            // A bundle may hold certificates webpki cannot use; the others still serve.
            let _ = roots.add(der.into());
        }
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Refreshes `keys` from `endpoint` every `every` until nothing holds them any more.
pub fn spawn_refresh<K: Send + Sync + 'static>(
    endpoint: Endpoint,
    every: Duration,
    keys: Weak<parking_lot::RwLock<K>>,
    parse: fn(&str) -> Result<K, String>,
) {
    let spawned = std::thread::Builder::new()
        .name("jwks-refresh".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(keys) = keys.upgrade() else {
                return;
            };
            match endpoint.fetch_blocking().and_then(|text| parse(&text)) {
                Ok(fresh) => *keys.write() = fresh,
                Err(e) => tracing::warn!(url = %endpoint.url, "JWKS refresh failed, keeping the keys: {e}"),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the JWKS refresh thread: {e}");
    }
}
