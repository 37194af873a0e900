//! The admin HTTP listener (`--admin-listen HOST:PORT`; off unless given): JSON over HTTP/1.1
//! for operators and tests, never for Kafka clients.
//!
//! | request                       | answer                                                   |
//! |-------------------------------|----------------------------------------------------------|
//! | `GET /v1/healthz`             | `{"status":"ok"}`                                        |
//! | `GET /v1/brokers`             | `{"brokers":[{"id","host","port","listen","state"}]}`    |
//! | `POST /v1/brokers/{id}/stop`  | the broker stops as in a crash (see `server::nodes`)     |
//! | `POST /v1/brokers/{id}/start` | it comes back on the same port                           |
//!
//! `state` is `running` or `stopped`; stop and start answer the broker as `GET /v1/brokers`
//! shows it. Errors are `{"error": "..."}` with 400 (a malformed id), 404 (no such path or
//! broker), 405 (another method on a known path), 409 (already stopped / running), 413 (a body
//! over 64 KiB) or 500. The HTTP plumbing is `crate::http`'s, shared with the schema registry.
//! Routing is one `match` on the method and the path's segments (`route`): the test control
//! plane and metrics extend it there.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{HttpLimits, HttpRequest, HttpResponse};
use crate::server::nodes::{NodeError, NodeStatus, Nodes};

/// Admin connections served at once (from one address or all); more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// No admin request has a body worth reading.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a request does, from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Healthz,
    Brokers,
    StopBroker(i32),
    StartBroker(i32),
}

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    NotFound,
    MethodNotAllowed,
    BadRequest(String),
}

fn route(method: &Method, path: &str) -> Result<Route, Refused> {
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
        _ => return Err(Refused::NotFound),
    };
    match *method == want {
        true => Ok(route),
        false => Err(Refused::MethodNotAllowed),
    }
}

async fn handle(nodes: &Nodes, route: Route) -> (StatusCode, Value) {
    match route {
        Route::Healthz => (StatusCode::OK, json!({"status": "ok"})),
        Route::Brokers => {
            let brokers: Vec<Value> = nodes.status().await.iter().map(broker_json).collect();
            (StatusCode::OK, json!({ "brokers": brokers }))
        }
        Route::StopBroker(id) => changed(nodes, id, nodes.stop(id).await).await,
        Route::StartBroker(id) => changed(nodes, id, nodes.start(id).await).await,
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

fn respond(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::json(status, "application/json", &body)
}

async fn answer(nodes: &Nodes, req: HttpRequest) -> HttpResponse {
    let path = format!("/{}", req.segments.join("/"));
    let (status, body) = match route(&req.method, &path) {
        Ok(r) => handle(nodes, r).await,
        Err(Refused::NotFound) => (StatusCode::NOT_FOUND, json!({"error": "no such path"})),
        Err(Refused::MethodNotAllowed) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{} is not allowed here", req.method)}),
        ),
        Err(Refused::BadRequest(m)) => (StatusCode::BAD_REQUEST, json!({"error": m})),
    };
    respond(status, body)
}

/// Binds the admin listener.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    crate::http::bind(addr, "admin").await
}

/// Serves admin requests until `cancel`, at most MAX_CONNECTIONS connections at once.
pub async fn serve(listener: TcpListener, nodes: Arc<Nodes>, cancel: CancellationToken) {
    let limits = HttpLimits {
        max_connections: MAX_CONNECTIONS,
        max_body_bytes: MAX_BODY_BYTES,
    };
    let too_large = || {
        respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "request body too large"}),
        )
    };
    crate::http::serve(listener, limits, cancel, too_large, move |req| {
        let nodes = Arc::clone(&nodes);
        async move { answer(&nodes, req).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&Method::GET, "/v1/healthz"), Ok(Route::Healthz));
        assert_eq!(route(&Method::GET, "/v1/brokers/"), Ok(Route::Brokers));
        assert_eq!(
            route(&Method::POST, "/v1/brokers/2/stop"),
            Ok(Route::StopBroker(2))
        );
        assert_eq!(
            route(&Method::POST, "/v1/brokers/3/start"),
            Ok(Route::StartBroker(3))
        );
        assert_eq!(
            route(&Method::GET, "/v1/brokers/2/stop"),
            Err(Refused::MethodNotAllowed)
        );
        assert_eq!(
            route(&Method::POST, "/v1/healthz"),
            Err(Refused::MethodNotAllowed)
        );
        assert!(matches!(
            route(&Method::POST, "/v1/brokers/x/stop"),
            Err(Refused::BadRequest(_))
        ));
        for path in [
            "/",
            "",
            "/v1",
            "/v1/brokers/2/restart",
            "/v2/healthz",
            "/v1/brokers/2",
        ] {
            assert_eq!(route(&Method::GET, path), Err(Refused::NotFound), "{path}");
        }
    }
}
