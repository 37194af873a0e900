//! The admin HTTP listener (`--admin-listen HOST:PORT`; off unless given): JSON over HTTP/1.1
//! for operators and tests, never for Kafka clients.
//!
//! | request                       | answer                                                   |
//! |-------------------------------|----------------------------------------------------------|
//! | `GET /v1/healthz`             | `{"status":"ok"}`                                        |
//! | `GET /v1/brokers`             | `{"brokers":[{"id","host","port","listen","state"}]}`    |
//! | `POST /v1/brokers/{id}/stop`  | the broker stops as in a crash (see `server::nodes`)     |
//! | `POST /v1/brokers/{id}/start` | it comes back on the same port                           |
//! | `POST /v1/faults`             | arms a fault rule (body: the rule, see `faults`)         |
//! | `GET /v1/faults`              | `{"faults":[rule with id, matched, fired]}`              |
//! | `DELETE /v1/faults[/{id}]`    | removes one rule, or all                                 |
//! | `GET /v1/journal?client_id=&api=&limit=` | `{"entries":[...]}` (see `journal`)           |
//! | `GET /v1/clock`               | `{"now_ms","mode"}` (`system` or `manual`)               |
//! | `POST /v1/clock/advance`      | body `{"ms": N}`: a manual clock moves N ms forward      |
//! | `POST /v1/reset`              | topics, groups, offsets, transactions gone (see `reset`) |
//!
//! `state` is `running` or `stopped`; stop and start answer the broker as `GET /v1/brokers`
//! shows it. Errors are `{"error": "..."}` with 400 (a malformed id), 404 (no such path or
//! broker, rule), 405 (another method on a known path), 409 (already stopped / running) or 500.
//! Routing is one `match` on the method and the path's segments (`route`): the test control
//! plane (faults, journal) and metrics extend it there. Bodies are JSON, at most
//! MAX_BODY_BYTES.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::server::nodes::{NodeError, NodeStatus, Nodes};
use crate::server::quotas::ConnectionQuotas;

pub mod faults;
pub mod journal;
pub mod reset;

/// Admin connections served at once (from one address or all); more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// The largest request body read (a fault rule is a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;

/// The test control plane's state, held by the broker: what the request path consults.
pub struct Control {
    pub faults: faults::Faults,
    pub journal: journal::Journal,
}

impl Control {
    /// Idle unless the admin listener is on: then the journal records (`--journal-size`).
    pub fn new(config: &Config) -> Control {
        Control {
            faults: faults::Faults::default(),
            journal: journal::Journal::new(config.admin_listen.is_some(), config.journal_size),
        }
    }

    /// Whether requests go through the control plane (a rule armed, or the journal on).
    pub fn watching(&self) -> bool {
        self.journal.enabled() || self.faults.armed()
    }
}

/// What a request does, from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Healthz,
    Brokers,
    StopBroker(i32),
    StartBroker(i32),
    Faults,
    ArmFault,
    /// One rule, or all.
    RemoveFaults(Option<u64>),
    Journal(journal::Query),
    Clock,
    AdvanceClock,
    Reset,
}

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    NotFound,
    MethodNotAllowed,
    BadRequest(String),
}

fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Route, Refused> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (want, route) = match segments.as_slice() {
        ["v1", "healthz"] => (Method::GET, Route::Healthz),
        ["v1", "brokers"] => (Method::GET, Route::Brokers),
        ["v1", "brokers", id, action @ ("stop" | "start")] => {
            let id = id
                .parse()
                .map_err(|_| Refused::BadRequest(format!("bad broker id '{id}'")))?;
            let route = match *action {
                "stop" => Route::StopBroker(id),
                _ => Route::StartBroker(id),
            };
            (Method::POST, route)
        }
        ["v1", "faults"] => match *method {
            Method::GET => (Method::GET, Route::Faults),
            Method::DELETE => (Method::DELETE, Route::RemoveFaults(None)),
            _ => (Method::POST, Route::ArmFault),
        },
        ["v1", "faults", id] => {
            let id = id
                .parse()
                .map_err(|_| Refused::BadRequest(format!("bad fault rule id '{id}'")))?;
            (Method::DELETE, Route::RemoveFaults(Some(id)))
        }
        ["v1", "journal"] => (Method::GET, Route::Journal(journal_query(query)?)),
        ["v1", "clock"] => (Method::GET, Route::Clock),
        ["v1", "clock", "advance"] => (Method::POST, Route::AdvanceClock),
        ["v1", "reset"] => (Method::POST, Route::Reset),
        _ => return Err(Refused::NotFound),
    };
    match *method == want {
        true => Ok(route),
        false => Err(Refused::MethodNotAllowed),
    }
}

/// `client_id=&api=&limit=` (percent-encoded as in any URL query).
fn journal_query(query: Option<&str>) -> Result<journal::Query, Refused> {
    let mut q = journal::Query::default();
    for (key, value) in query_pairs(query.unwrap_or(""))? {
        match key.as_str() {
            "client_id" => q.client_id = Some(value),
            "api" => {
                let api = faults::parse_api(&Value::String(value)).map_err(Refused::BadRequest)?;
                q.api = Some(api);
            }
            "limit" => {
                let limit = value
                    .parse()
                    .map_err(|_| Refused::BadRequest(format!("bad limit '{value}'")))?;
                q.limit = Some(limit);
            }
            other => return Err(Refused::BadRequest(format!("unknown parameter '{other}'"))),
        }
    }
    Ok(q)
}

/// A query string's `key=value` pairs, percent-decoded ('+' is a space, as forms send it).
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Refused> {
    let decode = |s: &str| -> Result<String, Refused> {
        let bad = || Refused::BadRequest(format!("bad percent-encoding in '{s}'"));
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                }
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| bad())
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

async fn handle(nodes: &Nodes, route: Route, body: Option<Value>) -> (StatusCode, Value) {
    let control = &nodes.broker().control;
    match route {
        Route::Healthz => (StatusCode::OK, json!({"status": "ok"})),
        Route::Brokers => {
            let brokers: Vec<Value> = nodes.status().await.iter().map(broker_json).collect();
            (StatusCode::OK, json!({ "brokers": brokers }))
        }
        Route::StopBroker(id) => changed(nodes, id, nodes.stop(id).await).await,
        Route::StartBroker(id) => changed(nodes, id, nodes.start(id).await).await,
        Route::Faults => (StatusCode::OK, json!({"faults": control.faults.list()})),
        Route::ArmFault => match control.faults.arm(body.unwrap_or(Value::Null)) {
            Ok(rule) => (StatusCode::OK, rule),
            Err(e) => (StatusCode::BAD_REQUEST, json!({ "error": e })),
        },
        Route::RemoveFaults(id) => match control.faults.remove(id) {
            true => (StatusCode::OK, json!({"faults": control.faults.list()})),
            false => (
                StatusCode::NOT_FOUND,
                json!({"error": format!("no fault rule {}", id.unwrap_or_default())}),
            ),
        },
        Route::Journal(q) => (
            StatusCode::OK,
            json!({"entries": control.journal.query(&q)}),
        ),
        Route::Clock => (StatusCode::OK, clock_json(&nodes.broker().clock)),
        Route::AdvanceClock => advance_clock(&nodes.broker().clock, body),
        Route::Reset => {
            let keep_topics = match body.as_ref().map(|b| b.get("keep_topics")) {
                None | Some(None) => false,
                Some(Some(Value::Bool(keep))) => *keep,
                Some(Some(_)) => {
                    let e = "keep_topics must be true or false";
                    return (StatusCode::BAD_REQUEST, json!({ "error": e }));
                }
            };
            // Deleting topics removes files and syncs the metadata log: off the async workers.
            let broker = std::sync::Arc::clone(nodes.broker());
            match tokio::task::spawn_blocking(move || reset::reset(&broker, keep_topics)).await {
                Ok(summary) => (StatusCode::OK, summary),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": e.to_string()}),
                ),
            }
        }
    }
}

fn clock_json(clock: &crate::server::clock::Clock) -> Value {
    let mode = if clock.is_manual() {
        "manual"
    } else {
        "system"
    };
    json!({"now_ms": clock.now_ms(), "mode": mode})
}

/// Only a manual clock is advanced: with the system clock the broker keeps real time, as the
/// control plane promises when no one asked for a manual clock.
fn advance_clock(clock: &crate::server::clock::Clock, body: Option<Value>) -> (StatusCode, Value) {
    if !clock.is_manual() {
        let e = "the clock is the system clock: start gregor with --clock manual to advance it";
        return (StatusCode::CONFLICT, json!({ "error": e }));
    }
    let ms = body
        .as_ref()
        .and_then(|b| b.get("ms"))
        .and_then(Value::as_i64);
    match ms {
        Some(ms) if ms >= 0 => {
            clock.advance(ms);
            (StatusCode::OK, clock_json(clock))
        }
        _ => (
            StatusCode::BAD_REQUEST,
            json!({"error": "the body must be {\"ms\": N} with N >= 0"}),
        ),
    }
}

/// The broker after a stop or start, or the error.
async fn changed(nodes: &Nodes, id: i32, result: Result<(), NodeError>) -> (StatusCode, Value) {
    if let Err(e) = result {
        let status = match e {
            NodeError::Unknown(_) => StatusCode::NOT_FOUND,
            NodeError::AlreadyStopped(_) | NodeError::AlreadyRunning(_) => StatusCode::CONFLICT,
            NodeError::Bind { .. } | NodeError::Metadata(_) => {
                tracing::error!(broker = id, error = %e, "admin request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        return (status, json!({"error": e.to_string()}));
    }
    match nodes.status().await.iter().find(|n| n.id == id) {
        Some(n) => (StatusCode::OK, broker_json(n)),
        None => (
            StatusCode::NOT_FOUND,
            json!({"error": format!("no broker {id}")}),
        ),
    }
}

fn broker_json(n: &NodeStatus) -> Value {
    json!({
        "id": n.id,
        "host": n.host,
        "port": n.port,
        "listen": n.listen.to_string(),
        "state": if n.running { "running" } else { "stopped" },
    })
}

/// The request's JSON body (`None` when empty), or why it cannot be read.
async fn json_body(req: Request<Incoming>) -> Result<Option<Value>, Refused> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err(Refused::BadRequest(format!("cannot read the body: {e}"))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Refused::BadRequest(format!("the body is not JSON: {e}")))
}

async fn respond(nodes: &Nodes, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let routed = route(&method, req.uri().path(), req.uri().query());
    let routed = match routed {
        Ok(r) => json_body(req).await.map(|body| (r, body)),
        Err(e) => Err(e),
    };
    let (status, body) = match routed {
        Ok((r, body)) => handle(nodes, r, body).await,
        Err(Refused::NotFound) => (StatusCode::NOT_FOUND, json!({"error": "no such path"})),
        Err(Refused::MethodNotAllowed) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{method} is not allowed here")}),
        ),
        Err(Refused::BadRequest(m)) => (StatusCode::BAD_REQUEST, json!({"error": m})),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Binds the admin listener.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let (host, port) = crate::config::parse_host_port(addr)
        .ok_or_else(|| std::io::Error::other(format!("bad admin listen address {addr}")))?;
    TcpListener::bind((host.as_str(), port)).await
}

/// Serves admin requests until `cancel`, at most MAX_CONNECTIONS connections at once.
pub async fn serve(listener: TcpListener, nodes: Arc<Nodes>, cancel: CancellationToken) {
    let quotas = ConnectionQuotas::new(MAX_CONNECTIONS, MAX_CONNECTIONS, HashMap::new());
    crate::server::accept_until(listener, quotas, cancel, |stream, peer| {
        serve_connection(stream, peer, Arc::clone(&nodes))
    })
    .await
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, nodes: Arc<Nodes>) {
    let service = service_fn(move |req| {
        let nodes = Arc::clone(&nodes);
        async move { Ok::<_, Infallible>(respond(&nodes, req).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "admin connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&Method::GET, "/v1/healthz", None), Ok(Route::Healthz));
        assert_eq!(
            route(&Method::GET, "/v1/brokers/", None),
            Ok(Route::Brokers)
        );
        assert_eq!(
            route(&Method::POST, "/v1/brokers/2/stop", None),
            Ok(Route::StopBroker(2))
        );
        assert_eq!(
            route(&Method::POST, "/v1/brokers/3/start", None),
            Ok(Route::StartBroker(3))
        );
        assert_eq!(
            route(&Method::GET, "/v1/brokers/2/stop", None),
            Err(Refused::MethodNotAllowed)
        );
        assert_eq!(
            route(&Method::POST, "/v1/healthz", None),
            Err(Refused::MethodNotAllowed)
        );
        assert!(matches!(
            route(&Method::POST, "/v1/brokers/x/stop", None),
            Err(Refused::BadRequest(_))
        ));
        for path in [
            "/",
            "",
            "/v1",
            "/v1/brokers/2/restart",
            "/v2/healthz",
            "/v1/brokers/2",
            "/v1/faults/1/x",
        ] {
            assert_eq!(
                route(&Method::GET, path, None),
                Err(Refused::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn routes_the_control_plane() {
        assert_eq!(route(&Method::GET, "/v1/faults", None), Ok(Route::Faults));
        assert_eq!(route(&Method::GET, "/v1/clock", None), Ok(Route::Clock));
        assert_eq!(route(&Method::POST, "/v1/reset", None), Ok(Route::Reset));
        assert_eq!(
            route(&Method::POST, "/v1/clock/advance", None),
            Ok(Route::AdvanceClock)
        );
        assert_eq!(
            route(&Method::POST, "/v1/faults", None),
            Ok(Route::ArmFault)
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/faults", None),
            Ok(Route::RemoveFaults(None))
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/faults/3", None),
            Ok(Route::RemoveFaults(Some(3)))
        );
        assert_eq!(
            route(&Method::PUT, "/v1/faults", None),
            Err(Refused::MethodNotAllowed)
        );
        assert!(matches!(
            route(&Method::DELETE, "/v1/faults/x", None),
            Err(Refused::BadRequest(_))
        ));
        let Ok(Route::Journal(q)) = route(
            &Method::GET,
            "/v1/journal",
            Some("client_id=my%20app+1&api=produce&limit=5"),
        ) else {
            panic!("not the journal")
        };
        assert_eq!(q.client_id.as_deref(), Some("my app 1"));
        assert_eq!(q.api, Some(kafka_protocol::messages::ApiKey::Produce));
        assert_eq!(q.limit, Some(5));
        for bad in ["api=nope", "limit=-1", "x=1", "client_id=%zz"] {
            assert!(
                matches!(
                    route(&Method::GET, "/v1/journal", Some(bad)),
                    Err(Refused::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
