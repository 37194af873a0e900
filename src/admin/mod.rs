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
//! broker), 405 (another method on a known path), 409 (already stopped / running) or 500.
//! Routing is one `match` on the method and the path's segments (`route`): the test control
//! plane and metrics extend it there.

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

use crate::server::nodes::{NodeError, NodeStatus, Nodes};
use crate::server::quotas::ConnectionQuotas;

/// Admin connections served at once (from one address or all); more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

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

async fn respond(nodes: &Nodes, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match route(req.method(), req.uri().path()) {
        Ok(r) => handle(nodes, r).await,
        Err(Refused::NotFound) => (StatusCode::NOT_FOUND, json!({"error": "no such path"})),
        Err(Refused::MethodNotAllowed) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{} is not allowed here", req.method())}),
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
