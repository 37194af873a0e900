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

/// The largest JWKS document read (a JWKS is a few KB).
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// An http(s) JWKS endpoint and how to reach it.
#[derive(Clone)]
pub struct Endpoint {
    /// Parsed by the `http` crate the admin listener's hyper server links anyway.
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
        let connector =
            (self.tls.as_ref()).map(|c| tokio_rustls::TlsConnector::from(Arc::clone(c)));
        let stream = super::channel::connect(host, port, connector.as_ref(), FETCH_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let path = self.url.path_and_query().map_or("/", |p| p.as_str());
        let authority = self.url.authority().map_or(host, |a| a.as_str());
        // One request on a connection of its own: `Connection: close` lets a body without a
        // length end at the end of the stream.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        exchange(stream, &request).await
    }
}

/// One HTTP/1.1 GET on `io`: the body of a 200 answer, at most MAX_JWKS_BYTES. A client of
/// its own rather than hyper's: one request, read whole into a bounded buffer.
async fn exchange<T>(mut io: T, request: &str) -> Result<String, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    io.flush().await.map_err(|e| format!("HTTP: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match io.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS server that closes without close_notify: the end of the stream (a body whose
            // length was announced is still checked against it).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("HTTP: {e}")),
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD_BYTES + MAX_JWKS_BYTES {
            return Err(format!("the answer is over {MAX_JWKS_BYTES} bytes"));
        }
        if let Some(body) = response_body(&buf, n == 0)? {
            return String::from_utf8(body).map_err(|_| "not UTF-8".to_string());
        }
        if n == 0 {
            return Err("HTTP: the connection closed mid-answer".into());
        }
    }
}

/// The largest status line and headers read.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// The body of the HTTP/1.1 answer in `buf` once it is whole (None: read more), or why it is
/// refused: a status other than 200, a body over MAX_JWKS_BYTES, a malformed answer. `eof`: the
/// server has closed, which ends a body that has neither a length nor chunks.
fn response_body(buf: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD_BYTES {
            Err("HTTP: headers too long".into())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "HTTP: bad headers")?;
    let body = &buf[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.splitn(3, ' ');
    let (version, code) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !version.starts_with("HTTP/1.") {
        return Err(format!("HTTP: not an HTTP/1 answer: {status:?}"));
    }
    if code != "200" {
        return Err(format!(
            "HTTP status {}",
            status.get(version.len() + 1..).unwrap_or(code)
        ));
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("HTTP: bad header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| "HTTP: bad Content-Length")?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    if chunked {
        return dechunk(body, eof);
    }
    match length {
        Some(n) if n > MAX_JWKS_BYTES => Err(format!("the answer is over {MAX_JWKS_BYTES} bytes")),
        Some(n) if body.len() >= n => Ok(Some(body[..n].to_vec())),
        Some(_) if eof => Err("HTTP: the body is shorter than its Content-Length".into()),
        Some(_) => Ok(None),
        None if eof => Ok(Some(body.to_vec())),
        None => Ok(None),
    }
}

/// A chunked body (RFC 9112 7.1) once its last chunk is in, without its extensions and trailers.
fn dechunk(mut rest: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let incomplete = || {
        if eof {
            Err("HTTP: the connection closed mid-body".to_string())
        } else {
            Ok(None)
        }
    };
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return incomplete();
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "HTTP: bad chunk")?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| "HTTP: bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line; the body is whole either way.
            return Ok(Some(body));
        }
        if size > MAX_JWKS_BYTES - body.len().min(MAX_JWKS_BYTES) {
            return Err(format!("the answer is over {MAX_JWKS_BYTES} bytes"));
        }
        if rest.len() < size + 2 {
            return incomplete();
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("HTTP: bad chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The TLS client config of an https endpoint: its truststore from the JAAS options, else the
/// system's CA bundle.
fn client_config(jaas_options: &BTreeMap<String, String>) -> Result<rustls::ClientConfig, String> {
    let listener = crate::config::ListenerConfig::plaintext("", 0);
    let settings = super::ListenerSettings {
        listener: &listener,
        settings: jaas_options,
    };
    let roots = super::tls::client_roots(&settings).map_err(|e| e.to_string())?;
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Key ids a token named that the JWKS did not have, remembered so that each asks for at most
/// one early refresh a minute, and at most this many of them (RefreshingHttpsJwks'
/// MISSING_KEY_ID_CACHE_MAX_ENTRIES, _IN_FLIGHT_MS and _MAX_KEY_LENGTH).
const MISSING_KIDS: usize = 16;
const MISSING_KID_IN_FLIGHT: Duration = Duration::from_secs(60);
const MISSING_KID_MAX_LEN: usize = 1000;

/// The handle on a JWKS endpoint's refresh thread: an unknown key id asks it for a refresh now,
/// as Kafka's RefreshingHttpsJwks.maybeExpediteRefresh does (the token that named it is still
/// refused; a client retrying after the identity provider rotated its keys gets in).
pub struct Refresher {
    now: parking_lot::Mutex<std::sync::mpsc::Sender<()>>,
    /// Key id, and when it may ask again; oldest first.
    missing: parking_lot::Mutex<std::collections::VecDeque<(String, std::time::Instant)>>,
}

impl Refresher {
    /// Asks for a refresh now unless `kid` asked within the last minute; whether it did.
    pub fn expedite(&self, kid: &str) -> bool {
        if kid.len() > MISSING_KID_MAX_LEN {
            return false;
        }
        let now = std::time::Instant::now();
        let mut missing = self.missing.lock();
        if let Some(i) = missing.iter().position(|(k, _)| k == kid) {
            if missing[i].1 > now {
                return false;
            }
            missing.remove(i);
        }
        if missing.len() == MISSING_KIDS {
            missing.pop_front();
        }
        missing.push_back((kid.to_string(), now + MISSING_KID_IN_FLIGHT));
        // A refresh already asked for and not yet done serves this one too.
        let _ = self.now.lock().send(());
        true
    }
}

/// Refreshes `keys` from `endpoint` every `every`, and at once when the returned handle asks,
/// until nothing holds the keys or the handle any more.
pub fn spawn_refresh<K: Send + Sync + 'static>(
    endpoint: Endpoint,
    every: Duration,
    keys: Weak<parking_lot::RwLock<K>>,
    parse: fn(&str) -> Result<K, String>,
) -> Arc<Refresher> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("jwks-refresh".into())
        .spawn(move || loop {
            match rx.recv_timeout(every) {
                Ok(()) => while rx.try_recv().is_ok() {},
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
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
    Arc::new(Refresher {
        now: parking_lot::Mutex::new(tx),
        missing: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_id_asks_for_one_refresh_a_minute() {
        let endpoint = Endpoint::new("http://127.0.0.1:9/jwks.json", &BTreeMap::new()).unwrap();
        // No keys to refresh: the thread ends at its first wake-up.
        let keys: Weak<parking_lot::RwLock<()>> = Weak::new();
        let r = spawn_refresh(endpoint, Duration::from_secs(3600), keys, |_| Ok(()));
        assert!(r.expedite("k2"));
        assert!(!r.expedite("k2"), "again within a minute");
        assert!(r.expedite("k3"));
        assert!(
            !r.expedite(&"x".repeat(MISSING_KID_MAX_LEN + 1)),
            "too long to remember"
        );
        // Only the newest 16 are remembered: k2 may ask again once 16 others did.
        for i in 0..MISSING_KIDS {
            assert!(r.expedite(&format!("other-{i}")));
        }
        assert!(r.expedite("k2"));
    }

    #[test]
    fn answers_with_a_length_chunks_or_the_end_of_the_stream() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA";
        assert_eq!(response_body(ok, false).unwrap().unwrap(), b"abcd");
        assert_eq!(response_body(&ok[..20], false).unwrap(), None);
        assert!(response_body(&ok[..40], true).is_err());
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(response_body(chunked, false).unwrap().unwrap(), b"abcde");
        assert_eq!(
            response_body(&chunked[..chunked.len() - 6], false).unwrap(),
            None
        );
        assert!(response_body(&chunked[..chunked.len() - 6], true).is_err());
        let to_eof = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n{}";
        assert_eq!(response_body(to_eof, false).unwrap(), None);
        assert_eq!(response_body(to_eof, true).unwrap().unwrap(), b"{}");
    }

    #[test]
    fn refusals_are_errors_never_unbounded() {
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            response_body(missing, false).unwrap_err(),
            "HTTP status 404 Not Found"
        );
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
        assert!(response_body(huge, false).is_err());
        let huge_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n";
        assert!(response_body(huge_chunk, false).is_err());
        let overflow =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n";
        assert!(response_body(overflow, false).is_err());
        assert!(response_body(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(response_body(&vec![b'a'; MAX_HEAD_BYTES + 1], false).is_err());
        assert!(response_body(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    }
}
