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
//! | `POST /v1/seed`               | topics, records and group offsets from a JSON document (`seed`) |
//! | `GET /v1/await?...`           | 200 once a condition holds, 408 at timeout (`awaits`)    |
//! | `POST /v1/snapshot`           | body `{"name": N}`: the broker's state recorded (`snapshot`) |
//! | `POST /v1/restore`            | body `{"name": N}`: the broker restarted onto it (`server::process`) |
//! | `GET /v1/snapshots`           | `{"snapshots":[{"name","created_ms","bytes"}]}`          |
//! | `DELETE /v1/snapshots/{name}` | removes one                                              |
//! | `GET /metrics`                | Prometheus text format (see `crate::metrics`)            |
//! | `GET /ui...`                  | the web console (HTML; see `crate::console`)             |
//!
//! `state` is `running` or `stopped`; stop and start answer the broker as `GET /v1/brokers`
//! shows it. Errors are `{"error": "..."}` with 400 (a malformed id), 404 (no such path or
//! broker, rule), 405 (another method on a known path), 409 (already stopped / running), 413 (a
//! body over MAX_BODY_BYTES) or 500.
//! With `--admin-token T` every request must carry `Authorization: Bearer T` (401 otherwise),
//! or the cookie a browser gets from the console's login form. A request that changes
//! something and names another site's page as its `Origin` is refused (403).
//! Routing is one `match` on the method and the path's segments (`route`): the test control
//! plane (faults, journal) and metrics extend it there. Bodies are JSON, at most
//! MAX_BODY_BYTES.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::Config;
use crate::http::{HttpLimits, HttpRequest, HttpResponse};
use crate::server::nodes::{NodeError, NodeStatus, Nodes};
use crate::server::process::{Process, RestartError};

pub mod awaits;
pub mod faults;
pub mod journal;
pub mod reset;
pub mod seed;
pub mod snapshot;

/// Admin connections served at once (from one address or all); more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// The largest request body read (a fault rule is a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;

/// The test control plane's state, held by the broker: what the request path consults.
pub struct Control {
    /// Shared with the broker's storage, which asks the storage rules (see `faults`).
    pub faults: Arc<faults::Faults>,
    pub journal: journal::Journal,
}

impl Control {
    /// Idle unless the admin listener is on: then the journal records (`--journal-size`).
    pub fn new(config: &Config) -> Control {
        Control {
            faults: Arc::default(),
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
    Seed,
    Await(awaits::Await),
    Snapshot,
    Restore,
    Snapshots,
    DeleteSnapshot(String),
}

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    NotFound,
    MethodNotAllowed,
    BadRequest(String),
}

fn route(req: &HttpRequest) -> Result<Route, Refused> {
    let method = &req.method;
    let (want, route) = match req.path().as_slice() {
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
        ["v1", "journal"] => (Method::GET, Route::Journal(journal_query(&req.query)?)),
        ["v1", "clock"] => (Method::GET, Route::Clock),
        ["v1", "clock", "advance"] => (Method::POST, Route::AdvanceClock),
        ["v1", "reset"] => (Method::POST, Route::Reset),
        ["v1", "seed"] => (Method::POST, Route::Seed),
        ["v1", "snapshot"] => (Method::POST, Route::Snapshot),
        ["v1", "restore"] => (Method::POST, Route::Restore),
        ["v1", "snapshots"] => (Method::GET, Route::Snapshots),
        ["v1", "snapshots", name] => (Method::DELETE, Route::DeleteSnapshot(name.to_string())),
        ["v1", "await"] => {
            let a = awaits::parse(&req.query).map_err(Refused::BadRequest)?;
            (Method::GET, Route::Await(a))
        }
        _ => return Err(Refused::NotFound),
    };
    match *method == want {
        true => Ok(route),
        false => Err(Refused::MethodNotAllowed),
    }
}

/// `client_id=&api=&limit=` (percent-encoded as in any URL query).
fn journal_query(pairs: &[(String, String)]) -> Result<journal::Query, Refused> {
    let mut q = journal::Query::default();
    for (key, value) in pairs {
        let value = value.clone();
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

async fn handle(
    process: &Process,
    nodes: Arc<Nodes>,
    route: Route,
    body: Option<Value>,
) -> (StatusCode, Value) {
    match route {
        Route::Snapshot | Route::Restore | Route::Snapshots | Route::DeleteSnapshot(_) => {
            // Not even a restore's own request holds on to the broker it stops.
            let broker = Arc::clone(nodes.broker());
            drop(nodes);
            snapshots(process, broker, route, body).await
        }
        route => handle_live(&nodes, route, body).await,
    }
}

/// The routes served by the broker serving now.
async fn handle_live(nodes: &Nodes, route: Route, body: Option<Value>) -> (StatusCode, Value) {
    let control = &nodes.broker().control;
    match route {
        Route::Snapshot | Route::Restore | Route::Snapshots | Route::DeleteSnapshot(_) => {
            (StatusCode::NOT_FOUND, json!({"error": "no such path"}))
        }
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
        Route::Await(a) => {
            let (holds, observed) = awaits::wait(nodes.broker(), &a).await;
            let status = match holds {
                true => StatusCode::OK,
                false => StatusCode::REQUEST_TIMEOUT,
            };
            (status, json!({"holds": holds, "observed": observed}))
        }
        Route::Seed => {
            let seed = match seed::Seed::parse(&body.unwrap_or(Value::Null)) {
                Ok(seed) => seed,
                Err(e) => return (StatusCode::BAD_REQUEST, json!({ "error": e })),
            };
            match seed::apply(nodes.broker(), &seed).await {
                Ok(summary) => (StatusCode::OK, summary),
                Err(e) => (StatusCode::CONFLICT, json!({ "error": e })),
            }
        }
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
            match crate::server::background::spawn_blocking(move || {
                reset::reset(&broker, keep_topics)
            })
            .await
            {
                Ok(summary) => (StatusCode::OK, summary),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": e.to_string()}),
                ),
            }
        }
    }
}

/// The snapshot routes (see `snapshot`): capture, list and delete off the async workers (they
/// copy files), restore through the process (a restart).
async fn snapshots(
    process: &Process,
    broker: Arc<Broker>,
    route: Route,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let name = || match body
        .as_ref()
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
    {
        Some(name) => Ok(name.to_string()),
        None => Err(snapshot::SnapshotError::BadName(
            "the body must be {\"name\": \"...\"}".into(),
        )),
    };
    let unsupported =
        || snapshot::SnapshotError::Unsupported(process.unsupported().unwrap_or_default().into());
    let data_dir = broker.config.data_dir.clone();
    let b = broker;
    let answer = match route {
        Route::Snapshot if process.unsupported().is_some() => Err(unsupported()),
        Route::Snapshot => match name() {
            Ok(name) => {
                blocking(move || {
                    let now = b.clock.now_ms();
                    snapshot::capture(&b.config.data_dir, b.catalog.write_gate(), &name, now)
                })
                .await
            }
            Err(e) => Err(e),
        },
        Route::Restore => match name() {
            Ok(name) => {
                drop(b);
                let started = std::time::Instant::now();
                match process.restore(&name).await {
                    Ok(c) => Ok(json!({
                        "name": name,
                        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
                        "files": c.files,
                        "linked": c.linked,
                        "copied_bytes": c.copied_bytes,
                    })),
                    Err(RestartError::Snapshot(e)) => Err(e),
                    Err(e @ RestartError::Start(_)) => {
                        tracing::error!(error = %e, "restore failed");
                        let e = std::io::Error::other(e.to_string());
                        Err(snapshot::SnapshotError::Io(e))
                    }
                }
            }
            Err(e) => Err(e),
        },
        Route::Snapshots => blocking(move || Ok(snapshot::list(&data_dir)?)).await,
        Route::DeleteSnapshot(name) => {
            blocking(move || {
                snapshot::delete(&data_dir, &name)?;
                Ok(json!({ "deleted": name }))
            })
            .await
        }
        _ => Err(snapshot::SnapshotError::NotFound(String::new())),
    };
    match answer {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => {
            let status = match e {
                snapshot::SnapshotError::BadName(_) => StatusCode::BAD_REQUEST,
                snapshot::SnapshotError::NotFound(_) => StatusCode::NOT_FOUND,
                snapshot::SnapshotError::Unsupported(_) => StatusCode::CONFLICT,
                snapshot::SnapshotError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, json!({"error": e.to_string()}))
        }
    }
}

async fn blocking(
    f: impl FnOnce() -> Result<Value, snapshot::SnapshotError> + Send + 'static,
) -> Result<Value, snapshot::SnapshotError> {
    match crate::server::background::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(snapshot::SnapshotError::Io(std::io::Error::other(e))),
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
fn json_body(req: &HttpRequest) -> Result<Option<Value>, Refused> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&req.body)
        .map(Some)
        .map_err(|e| Refused::BadRequest(format!("the body is not JSON: {e}")))
}

/// Whether the request may be served: always without `--admin-token`, else only with
/// `Authorization: Bearer <token>`, or (a browser on the console) the token's cookie.
fn authorized(token: Option<&str>, req: &HttpRequest) -> bool {
    let Some(token) = token else {
        return true;
    };
    let bearer = req
        .header(hyper::header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = req.header(hyper::header::COOKIE).and_then(|c| {
        c.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == crate::console::TOKEN_COOKIE)
            .map(|(_, value)| value)
    });
    same_token(bearer.or(cookie).unwrap_or(""), token)
}

/// Compared in constant time.
fn same_token(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request that changes something came from a page of this listener, or from no page
/// at all (curl, a test's HTTP client): a browser names the page's origin in `Origin` on every
/// cross-origin POST, so another site cannot make a developer's browser reset the broker or
/// produce through the console (cross-site request forgery).
fn same_origin(req: &HttpRequest) -> bool {
    if matches!(req.method, Method::GET | Method::HEAD) {
        return true;
    }
    let Some(origin) = req.header(hyper::header::ORIGIN) else {
        return true;
    };
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    origin_host.is_some() && origin_host == req.header(hyper::header::HOST)
}

/// `POST /ui/login`: the form's token, kept by the browser in an HttpOnly cookie when right.
fn login(token: Option<&str>, req: &HttpRequest) -> HttpResponse {
    let form = req.form();
    let given = form
        .iter()
        .find(|(k, _)| k == "token")
        .map_or("", |(_, v)| v);
    match token {
        Some(token) if !same_token(given, token) => HttpResponse::text(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            crate::console::login_page(Some("Wrong token.")),
        ),
        _ => {
            let cookie = format!(
                "{}={given}; Path=/; HttpOnly; SameSite=Strict",
                crate::console::TOKEN_COOKIE
            );
            HttpResponse::text(
                StatusCode::SEE_OTHER,
                "text/html; charset=utf-8",
                String::new(),
            )
            .with_location("/ui")
            .with_header_string(hyper::header::SET_COOKIE, &cookie)
        }
    }
}

fn answer(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::json(status, "application/json", body)
}

async fn respond(process: &Process, req: HttpRequest) -> HttpResponse {
    // A request during a restore waits for the restored broker.
    let Some(nodes) = process.current().await else {
        let body = json!({"error": "the broker is not running (a restore failed: see the log)"});
        return answer(StatusCode::SERVICE_UNAVAILABLE, &body);
    };
    if !same_origin(&req) {
        let body = json!({"error": "a request from another site's page (Origin) is refused"});
        return answer(StatusCode::FORBIDDEN, &body);
    }
    let token = nodes.broker().config.admin_token.as_deref();
    let path = req.path();
    let console = path.first() == Some(&"ui");
    if console && path == ["ui", "login"] && req.method == Method::POST {
        return login(token, &req);
    }
    if !authorized(token, &req) {
        if console {
            let page = crate::console::login_page(None);
            return HttpResponse::text(StatusCode::UNAUTHORIZED, "text/html; charset=utf-8", page);
        }
        let body = json!({"error": "missing or wrong bearer token (--admin-token)"});
        return answer(StatusCode::UNAUTHORIZED, &body)
            .with_header(hyper::header::WWW_AUTHENTICATE, "Bearer");
    }
    if console {
        return crate::console::respond(&nodes, req).await;
    }
    if req.method == Method::GET && req.segments.is_empty() {
        return HttpResponse::text(StatusCode::SEE_OTHER, "text/plain", String::new())
            .with_location("/ui");
    }
    if req.method == Method::GET && req.path() == ["metrics"] {
        let text = crate::metrics::render(nodes.broker());
        return HttpResponse::text(StatusCode::OK, crate::metrics::CONTENT_TYPE, text);
    }
    let routed = route(&req).and_then(|r| Ok((r, json_body(&req)?)));
    let (status, body) = match routed {
        Ok((r, body)) => handle(process, nodes, r, body).await,
        Err(Refused::NotFound) => (StatusCode::NOT_FOUND, json!({"error": "no such path"})),
        Err(Refused::MethodNotAllowed) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{} is not allowed here", req.method)}),
        ),
        Err(Refused::BadRequest(m)) => (StatusCode::BAD_REQUEST, json!({"error": m})),
    };
    answer(status, &body)
}

/// Binds the admin listener.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    crate::http::bind(addr, "admin").await
}

/// Serves admin requests until `cancel`, at most MAX_CONNECTIONS connections at once.
pub async fn serve(listener: TcpListener, process: Arc<Process>, cancel: CancellationToken) {
    let limits = HttpLimits {
        max_connections: MAX_CONNECTIONS,
        max_body_bytes: MAX_BODY_BYTES,
    };
    let too_large = || {
        let e = format!("the body is larger than {MAX_BODY_BYTES} bytes");
        answer(StatusCode::PAYLOAD_TOO_LARGE, &json!({ "error": e }))
    };
    crate::http::serve(listener, limits, cancel, too_large, move |req| {
        let process = Arc::clone(&process);
        async move { respond(&process, req).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, target: &str) -> HttpRequest {
        HttpRequest::new(method, target, bytes::Bytes::new())
    }

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&get(Method::GET, "/v1/healthz")), Ok(Route::Healthz));
        assert_eq!(route(&get(Method::GET, "/v1/brokers/")), Ok(Route::Brokers));
        assert_eq!(
            route(&get(Method::POST, "/v1/brokers/2/stop")),
            Ok(Route::StopBroker(2))
        );
        assert_eq!(
            route(&get(Method::POST, "/v1/brokers/3/start")),
            Ok(Route::StartBroker(3))
        );
        assert_eq!(
            route(&get(Method::GET, "/v1/brokers/2/stop")),
            Err(Refused::MethodNotAllowed)
        );
        assert_eq!(
            route(&get(Method::POST, "/v1/healthz")),
            Err(Refused::MethodNotAllowed)
        );
        assert!(matches!(
            route(&get(Method::POST, "/v1/brokers/x/stop")),
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
                route(&get(Method::GET, path)),
                Err(Refused::NotFound),
                "{path}"
            );
        }
    }

    fn with(mut req: HttpRequest, name: hyper::header::HeaderName, value: &str) -> HttpRequest {
        req.headers.insert(name, value.parse().unwrap());
        req
    }

    #[test]
    fn the_token_comes_as_a_bearer_or_the_consoles_cookie() {
        use hyper::header::{AUTHORIZATION, COOKIE};
        let req = || get(Method::GET, "/ui");
        assert!(authorized(None, &req()));
        assert!(!authorized(Some("s3cret"), &req()));
        assert!(authorized(
            Some("s3cret"),
            &with(req(), AUTHORIZATION, "Bearer s3cret")
        ));
        assert!(!authorized(
            Some("s3cret"),
            &with(req(), AUTHORIZATION, "Bearer s3cre")
        ));
        let cookie = "a=1; gregor_admin_token=s3cret; b=2";
        assert!(authorized(Some("s3cret"), &with(req(), COOKIE, cookie)));
        let wrong = "gregor_admin_token=nope; other=s3cret";
        assert!(!authorized(Some("s3cret"), &with(req(), COOKIE, wrong)));
    }

    #[test]
    fn changes_from_another_sites_page_are_refused() {
        use hyper::header::{HOST, ORIGIN};
        let post = || with(get(Method::POST, "/v1/reset"), HOST, "127.0.0.1:9644");
        assert!(same_origin(&post()), "no Origin: not a browser page");
        assert!(same_origin(&with(post(), ORIGIN, "http://127.0.0.1:9644")));
        assert!(!same_origin(&with(post(), ORIGIN, "http://evil.example")));
        assert!(!same_origin(&with(post(), ORIGIN, "null")));
        let read = with(get(Method::GET, "/ui"), ORIGIN, "http://evil.example");
        assert!(same_origin(&read), "reads change nothing");
    }

    #[test]
    fn routes_the_control_plane() {
        assert_eq!(route(&get(Method::GET, "/v1/faults")), Ok(Route::Faults));
        assert_eq!(route(&get(Method::GET, "/v1/clock")), Ok(Route::Clock));
        assert_eq!(route(&get(Method::POST, "/v1/reset")), Ok(Route::Reset));
        assert_eq!(
            route(&get(Method::POST, "/v1/clock/advance")),
            Ok(Route::AdvanceClock)
        );
        assert_eq!(route(&get(Method::POST, "/v1/faults")), Ok(Route::ArmFault));
        assert_eq!(
            route(&get(Method::DELETE, "/v1/faults")),
            Ok(Route::RemoveFaults(None))
        );
        assert_eq!(
            route(&get(Method::DELETE, "/v1/faults/3")),
            Ok(Route::RemoveFaults(Some(3)))
        );
        assert_eq!(
            route(&get(Method::PUT, "/v1/faults")),
            Err(Refused::MethodNotAllowed)
        );
        assert!(matches!(
            route(&get(Method::DELETE, "/v1/faults/x")),
            Err(Refused::BadRequest(_))
        ));
        let Ok(Route::Journal(q)) = route(&get(
            Method::GET,
            "/v1/journal?client_id=my%20app+1&api=produce&limit=5",
        )) else {
            panic!("not the journal")
        };
        assert_eq!(q.client_id.as_deref(), Some("my app 1"));
        assert_eq!(q.api, Some(kafka_protocol::messages::ApiKey::Produce));
        assert_eq!(q.limit, Some(5));
        for bad in ["api=nope", "limit=-1", "x=1"] {
            assert!(
                matches!(
                    route(&get(Method::GET, &format!("/v1/journal?{bad}"))),
                    Err(Refused::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
