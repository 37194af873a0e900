//! The HTTP/1.1 + JSON plumbing the broker's HTTP listeners share (the admin listener and the
//! schema registry): binding, accepting under a connection bound, reading a request with a
//! bounded body, splitting its path and query, and answering JSON. Each listener keeps only its
//! routes and handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::quotas::ConnectionQuotas;

/// A request as the handlers see it: its body read whole (within the listener's bound), its
/// path split into percent-decoded segments, its query into decoded pairs, its headers.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    /// The path's segments after the leading `/`, percent-decoded; a trailing `/` is ignored.
    pub segments: Vec<String>,
    /// `key=value` pairs, percent-decoded, `+` read as a space (as form encoders and Jersey's
    /// query parameters do).
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpRequest {
    /// A request built from its parts (tests, and `read` below).
    pub fn new(method: Method, path_and_query: &str, body: Bytes) -> HttpRequest {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let segments = path
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .map(percent_decode)
            .collect();
        HttpRequest {
            method,
            segments,
            query: form_pairs(query),
            headers: HeaderMap::new(),
            body,
        }
    }

    /// The value of header `name`, if it is present and text.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path's segments as `&str`, for matching on a slice.
    pub fn path(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's fields when it is a form (`application/x-www-form-urlencoded`, as an HTML
    /// form posts it); empty for any other body.
    pub fn form(&self) -> Vec<(String, String)> {
        let content_type = self.header(CONTENT_TYPE).unwrap_or("");
        match content_type.starts_with("application/x-www-form-urlencoded") {
            true => form_pairs(&String::from_utf8_lossy(&self.body)),
            false => Vec::new(),
        }
    }

    /// Whether query parameter `name` is `true` (as Jersey reads a boolean: case-insensitive).
    pub fn flag(&self, name: &str) -> bool {
        self.param(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// An answer: a status, a content type, a body and any other headers.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpResponse {
    pub fn json(status: StatusCode, content_type: &'static str, body: &Value) -> HttpResponse {
        HttpResponse::text(status, content_type, body.to_string())
    }

    pub fn text(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
        HttpResponse {
            status,
            content_type,
            body: Bytes::from(body),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> HttpResponse {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// A header whose value is built at run time; one that is not a valid header value (a
    /// control character) is left out.
    pub fn with_header_string(mut self, name: HeaderName, value: &str) -> HttpResponse {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// A redirect's target.
    pub fn with_location(self, href: &str) -> HttpResponse {
        self.with_header_string(hyper::header::LOCATION, href)
    }

    fn into_hyper(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        resp
    }
}

/// `key=value&...` pairs as a query string or a form body carries them: percent-decoded, `+`
/// read as a space.
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            (decode(k), decode(v))
        })
        .collect()
}

/// `%XX` escapes decoded (and `+` left as it is: paths and Confluent's clients use `%20`);
/// a malformed escape or invalid UTF-8 is kept as written rather than refused.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Binds an HTTP listener on `addr` (HOST:PORT); `what` names it in the error.
pub async fn bind(addr: &str, what: &str) -> std::io::Result<TcpListener> {
    let (host, port) = crate::config::parse_host_port(addr)
        .ok_or_else(|| std::io::Error::other(format!("bad {what} listen address {addr}")))?;
    TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| crate::server::cannot_listen(format!("{what} {addr}"), e))
}

/// How one HTTP listener is bounded.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once (from one address or all); more wait in the listen backlog.
    pub max_connections: usize,
    /// The largest request body read; a larger one is answered `too_large` unread.
    pub max_body_bytes: usize,
}

/// Serves requests with `handler` until `cancel`. A body over the limit gets `too_large`'s
/// answer without reaching the handler.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: HttpLimits,
    cancel: CancellationToken,
    too_large: fn() -> HttpResponse,
    handler: H,
) where
    H: Fn(HttpRequest) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let handler = Arc::new(handler);
    let n = limits.max_connections;
    let quotas = ConnectionQuotas::new(n, n, HashMap::new()).listener("http");
    crate::server::accept_until(listener, quotas, cancel, move |stream, peer| {
        serve_connection(
            stream,
            peer,
            limits.max_body_bytes,
            too_large,
            Arc::clone(&handler),
        )
    })
    .await
}

async fn serve_connection<H, F>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    max_body_bytes: usize,
    too_large: fn() -> HttpResponse,
    handler: Arc<H>,
) where
    H: Fn(HttpRequest) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = Arc::clone(&handler);
        async move {
            let resp = match read(req, max_body_bytes).await {
                Some(req) => handler(req).await,
                None => too_large(),
            };
            Ok::<_, Infallible>(resp.into_hyper())
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "http connection ended");
    }
}

/// The request with its body, or `None` when the body is larger than `max_body_bytes` (or the
/// connection failed while it was read).
async fn read(req: Request<Incoming>, max_body_bytes: usize) -> Option<HttpRequest> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, max_body_bytes)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut req = HttpRequest::new(parts.method, &target, body);
    req.headers = parts.headers;
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_decodes_the_target() {
        let r = HttpRequest::new(
            Method::GET,
            "/subjects/a%2Fb%20c+d/versions/?deleted=true&x=%3D1+2&flag",
            Bytes::new(),
        );
        assert_eq!(r.path(), ["subjects", "a/b c+d", "versions"]);
        assert_eq!(r.param("x"), Some("=1 2"));
        assert_eq!(r.param("flag"), Some(""));
        assert!(r.flag("deleted") && !r.flag("flag") && !r.flag("missing"));
        assert!(HttpRequest::new(Method::GET, "/", Bytes::new())
            .path()
            .is_empty());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let mut post = HttpRequest::new(Method::POST, "/", Bytes::from("k=a+b%26c&v=&x"));
        assert!(
            post.form().is_empty(),
            "not a form without its content type"
        );
        post.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        let pairs = [("k", "a b&c"), ("v", ""), ("x", "")].map(|(k, v)| (k.into(), v.into()));
        assert_eq!(post.form(), pairs);
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
