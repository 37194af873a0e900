//! The registry's REST API, in Confluent's paths, JSON shapes and error codes (errors are
//! `{"error_code": 40401, "message": "..."}` with the code's first three digits as status):
//!
//! | request                                              | answer                                               |
//! |------------------------------------------------------|------------------------------------------------------|
//! | `GET /`                                              | `{}`                                                 |
//! | `GET /schemas/types`                                 | `["JSON","PROTOBUF","AVRO"]`                          |
//! | `GET /schemas` (`subjectPrefix`, `deleted`, `latestOnly`, `offset`, `limit`, `format`) | `[{"subject","version","id",...,"schema"}]` |
//! | `GET /schemas/ids/{id}` (`format`, `fetchMaxId`)     | `{"schema", "schemaType"?, "references"?, "maxId"?}`  |
//! | `GET /schemas/ids/{id}/schema`                       | the schema text                                      |
//! | `GET /schemas/ids/{id}/versions` (`deleted`)         | `[{"subject","version"}]`                            |
//! | `GET /schemas/ids/{id}/subjects` (`deleted`)         | `["subject"]`                                        |
//! | `GET /subjects` (`deleted`, `deletedOnly`, `subjectPrefix`) | `["subject"]`                                 |
//! | `POST /subjects/{s}` (`normalize`, `deleted`)        | the version holding the schema (lookup)              |
//! | `DELETE /subjects/{s}` (`permanent`)                 | `[versions deleted]`                                 |
//! | `GET /subjects/{s}/versions` (`deleted`, `deletedOnly`) | `[1,2]`                                           |
//! | `POST /subjects/{s}/versions` (`normalize`)          | `{"id"}` (register)                                  |
//! | `GET /subjects/{s}/versions/{v}` (`deleted`,`format`)| `{"subject","version","id","schemaType"?,"references"?,"schema"}` |
//! | `GET /subjects/{s}/versions/{v}/schema`              | the schema text                                      |
//! | `GET /subjects/{s}/versions/{v}/referencedby`        | `[ids]`                                              |
//! | `DELETE /subjects/{s}/versions/{v}` (`permanent`)    | the version                                          |
//! | `POST /compatibility/subjects/{s}/versions[/{v}]` (`verbose`) | `{"is_compatible", "messages"?}`            |
//! | `GET/PUT/DELETE /config[/{s}]` (`defaultToGlobal`)   | `{"compatibilityLevel"}` (PUT: `{"compatibility"}`)  |
//! | `GET/PUT/DELETE /mode[/{s}]` (`defaultToGlobal`, `force`) | `{"mode"}`                                      |
//! | `GET /v1/metadata/id`                                | `{"scope":{"path":[],"clusters":{"kafka-cluster","schema-registry-cluster"}}}` |
//! | `GET /v1/metadata/version`                           | `{"version","commitId"}`                             |
//!
//! `{v}` is a version from 1, or `latest` / `-1`. Unknown paths answer 404 and known paths with
//! another method 405, both with Confluent's (Jersey's) `error_code` body.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::schema::{CompatibilityLevel, Mode, SchemaContent, SchemaReference, SchemaType};
use super::store::SchemaVersion;
use super::{
    CompatibilityResult, Lookup, RegistryError, SchemaRegistry, SchemaRequest, VersionSpec,
};
use crate::http::{HttpLimits, HttpRequest, HttpResponse};

/// Confluent's media type (clients also accept application/json).
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// The largest request body: a schema with its references fits many times over.
const MAX_BODY_BYTES: usize = 8 << 20;
/// The most versions one `GET /schemas` answers, and how many without a `limit` (Confluent's
/// `schema.search.default.limit` and `schema.search.max.limit`).
const SCHEMAS_PAGE: i64 = 1000;
/// The registry's own cluster id in `/v1/metadata/id`: Confluent's default
/// `schema.registry.group.id` (gregor has one registry per broker, no group).
const REGISTRY_CLUSTER_ID: &str = "schema-registry";

/// Binds the registry's listener.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    crate::http::bind(addr, "schema registry").await
}

/// Serves the REST API until `cancel`.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<SchemaRegistry>,
    cancel: CancellationToken,
) {
    let limits = HttpLimits {
        max_connections: MAX_CONNECTIONS,
        max_body_bytes: MAX_BODY_BYTES,
    };
    let too_large = || error(413, 413, "Request body too large");
    crate::http::serve(listener, limits, cancel, too_large, move |req| {
        let registry = Arc::clone(&registry);
        async move {
            // Writes reach the log (and may wait on an fsync) under the registry's lock.
            crate::server::background::spawn_blocking(move || answer(&registry, &req))
                .await
                .unwrap_or_else(|_| error(500, 50001, "Error in the backend data store"))
        }
    })
    .await
}

/// What a route answers: JSON, a schema's raw text, or an error.
enum Reply {
    Json(Value),
    Text(String),
}

fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::json(
        status,
        CONTENT_TYPE,
        &json!({"error_code": code, "message": message}),
    )
}

/// Why a request has no handler.
enum Unrouted {
    NotFound,
    MethodNotAllowed,
}

/// Answers one request.
pub fn answer(registry: &SchemaRegistry, req: &HttpRequest) -> HttpResponse {
    match route(registry, req) {
        Ok(Ok(Reply::Json(v))) => HttpResponse::json(StatusCode::OK, CONTENT_TYPE, &v),
        Ok(Ok(Reply::Text(t))) => HttpResponse::text(StatusCode::OK, CONTENT_TYPE, t),
        Ok(Err(e)) => error(e.status(), e.code(), &e.to_string()),
        Err(Unrouted::NotFound) => error(404, 404, "HTTP 404 Not Found"),
        Err(Unrouted::MethodNotAllowed) => error(405, 405, "HTTP 405 Method Not Allowed"),
    }
}

type Handled = std::result::Result<Reply, RegistryError>;

fn route(r: &SchemaRegistry, req: &HttpRequest) -> Result<Handled, Unrouted> {
    use Method as M;
    let m = &req.method;
    let path = req.path();
    let allow = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Unrouted::MethodNotAllowed)
        }
    };
    Ok(match path.as_slice() {
        [] => {
            allow(*m == M::GET)?;
            Ok(Reply::Json(json!({})))
        }
        ["schemas", "types"] => {
            allow(*m == M::GET)?;
            let types: Vec<&str> = SchemaType::ALL.iter().map(|t| t.name()).collect();
            Ok(Reply::Json(json!(types)))
        }
        ["schemas"] => {
            allow(*m == M::GET)?;
            // Jersey answers an int parameter that does not parse with 404.
            let (Some(offset), Some(limit)) =
                (int_param(req, "offset", 0), int_param(req, "limit", -1))
            else {
                return Err(Unrouted::NotFound);
            };
            // Confluent gives the versions from `offset` up to `offset + limit`, a limit outside
            // 1..=1000 being 1000 (so a negative offset shortens the page, as it does there).
            let limit = if (1..=SCHEMAS_PAGE).contains(&limit) {
                limit
            } else {
                SCHEMAS_PAGE
            };
            let skip = offset.max(0);
            let take = (offset + limit - skip).max(0);
            let prefix = req.param("subjectPrefix").unwrap_or("");
            let format = req.param("format");
            r.schemas(
                prefix,
                req.flag("deleted"),
                req.flag("latestOnly"),
                skip as usize,
                take as usize,
            )
            .map(|vs| {
                let vs: Vec<Value> = vs.iter().map(|v| version_json(r, v, format)).collect();
                Reply::Json(json!(vs))
            })
        }
        ["schemas", "ids", id, rest @ ..] => {
            allow(*m == M::GET)?;
            let id: i32 = match id.parse() {
                Ok(id) => id,
                Err(_) => return Err(Unrouted::NotFound),
            };
            match rest {
                [] => schema_by_id(r, req, id, false),
                ["schema"] => schema_by_id(r, req, id, true),
                ["versions"] => r.id_versions(id, req.flag("deleted")).map(|vs| {
                    let vs: Vec<Value> = vs
                        .into_iter()
                        .map(|(s, v)| json!({"subject": s, "version": v}))
                        .collect();
                    Reply::Json(json!(vs))
                }),
                ["subjects"] => r.id_versions(id, req.flag("deleted")).map(|vs| {
                    let mut subjects: Vec<String> = vs.into_iter().map(|(s, _)| s).collect();
                    subjects.dedup();
                    Reply::Json(json!(subjects))
                }),
                _ => return Err(Unrouted::NotFound),
            }
        }
        ["subjects"] => {
            allow(*m == M::GET)?;
            let prefix = req.param("subjectPrefix").unwrap_or("");
            r.subjects(lookup(req), prefix)
                .map(|s| Reply::Json(json!(s)))
        }
        ["subjects", subject] => match *m {
            M::POST => schema_request(req).and_then(|body| {
                let v = r.lookup(subject, &body, req.flag("normalize"), req.flag("deleted"))?;
                Ok(Reply::Json(version_json(r, &v, req.param("format"))))
            }),
            M::DELETE => r
                .delete_subject(subject, req.flag("permanent"))
                .map(|v| Reply::Json(json!(v))),
            _ => return Err(Unrouted::MethodNotAllowed),
        },
        ["subjects", subject, "versions"] => match *m {
            M::GET => r
                .versions(subject, lookup(req))
                .map(|v| Reply::Json(json!(v))),
            M::POST => schema_request(req).and_then(|body| {
                let id = r.register(subject, body, req.flag("normalize"))?;
                Ok(Reply::Json(json!({ "id": id })))
            }),
            _ => return Err(Unrouted::MethodNotAllowed),
        },
        ["subjects", subject, "versions", version, rest @ ..] => {
            let spec = VersionSpec::parse(version);
            match (m, rest) {
                (&M::GET, []) => spec.and_then(|spec| {
                    let v = r.version(subject, spec, req.flag("deleted"))?;
                    Ok(Reply::Json(version_json(r, &v, req.param("format"))))
                }),
                (&M::GET, ["schema"]) => spec.and_then(|spec| {
                    let v = r.version(subject, spec, req.flag("deleted"))?;
                    Ok(Reply::Text(v.content.schema))
                }),
                (&M::GET, ["referencedby"]) => spec
                    .and_then(|spec| r.referenced_by(subject, spec))
                    .map(|ids| Reply::Json(json!(ids))),
                (&M::DELETE, []) => spec
                    .and_then(|spec| r.delete_version(subject, spec, req.flag("permanent")))
                    .map(|v| Reply::Json(json!(v))),
                (_, [] | ["schema"] | ["referencedby"]) => return Err(Unrouted::MethodNotAllowed),
                _ => return Err(Unrouted::NotFound),
            }
        }
        ["compatibility", "subjects", subject, "versions", rest @ ..] => {
            allow(*m == M::POST)?;
            let version = match rest {
                [] => None,
                [v] => match VersionSpec::parse(v) {
                    Ok(spec) => Some(spec),
                    Err(e) => return Ok(Err(e)),
                },
                _ => return Err(Unrouted::NotFound),
            };
            let verbose = req.flag("verbose");
            let result = match schema_request(req)
                .and_then(|b| r.check_compatibility(subject, version, &b))
            {
                // Verbose, Confluent answers a schema it cannot parse as incompatible, with
                // the parser's message, where otherwise it is 42201.
                Err(e @ RegistryError::InvalidSchema(_)) if verbose => CompatibilityResult {
                    is_compatible: false,
                    messages: vec![e.to_string()],
                },
                Err(e) => return Ok(Err(e)),
                Ok(result) => result,
            };
            let mut answer = json!({"is_compatible": result.is_compatible});
            if verbose {
                answer["messages"] = json!(result.messages);
            }
            Ok(Reply::Json(answer))
        }
        ["config", rest @ ..] => {
            let subject = match rest {
                [] => None,
                [s] => Some(*s),
                _ => return Err(Unrouted::NotFound),
            };
            match *m {
                M::GET => r
                    .config(subject, req.flag("defaultToGlobal"))
                    .map(|l| Reply::Json(json!({"compatibilityLevel": l.name()}))),
                M::PUT => body_field(req, "compatibility", CompatibilityLevel::parse)
                    .and_then(|level| level.ok_or(RegistryError::InvalidCompatibilityLevel))
                    .and_then(|level| {
                        r.set_config(subject, level)?;
                        Ok(Reply::Json(json!({"compatibility": level.name()})))
                    }),
                M::DELETE => r
                    .delete_config(subject)
                    .map(|l| Reply::Json(json!({"compatibilityLevel": l.name()}))),
                _ => return Err(Unrouted::MethodNotAllowed),
            }
        }
        ["mode", rest @ ..] => {
            let subject = match rest {
                [] => None,
                [s] => Some(*s),
                _ => return Err(Unrouted::NotFound),
            };
            match (m, subject) {
                (&M::GET, _) => r
                    .mode(subject, req.flag("defaultToGlobal"))
                    .map(|m| Reply::Json(json!({"mode": m.name()}))),
                (&M::PUT, _) => body_field(req, "mode", Mode::parse)
                    .and_then(|mode| mode.ok_or(RegistryError::InvalidMode))
                    .and_then(|mode| {
                        r.set_mode(subject, mode, req.flag("force"))?;
                        Ok(Reply::Json(json!({"mode": mode.name()})))
                    }),
                (&M::DELETE, Some(s)) => r
                    .delete_mode(s)
                    .map(|m| Reply::Json(json!({"mode": m.name()}))),
                _ => return Err(Unrouted::MethodNotAllowed),
            }
        }
        ["v1", "metadata", "id"] => {
            allow(*m == M::GET)?;
            Ok(Reply::Json(json!({"scope": {"path": [], "clusters": {
                "kafka-cluster": r.cluster_id(),
                "schema-registry-cluster": REGISTRY_CLUSTER_ID,
            }}})))
        }
        ["v1", "metadata", "version"] => {
            allow(*m == M::GET)?;
            // gregor's own version, not a Confluent Platform one; no commit id is built in, so
            // "unknown", as Confluent's (and Kafka's) AppInfoParser answers without one.
            Ok(Reply::Json(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commitId": "unknown",
            })))
        }
        ["contexts"] => {
            allow(*m == M::GET)?;
            Ok(Reply::Json(json!(["."])))
        }
        _ => return Err(Unrouted::NotFound),
    })
}

fn schema_by_id(r: &SchemaRegistry, req: &HttpRequest, id: i32, raw: bool) -> Handled {
    let content = r.schema_by_id(id)?;
    let text = r.formatted(&content, req.param("format"));
    if raw {
        return Ok(Reply::Text(text));
    }
    let mut v = json!({ "schema": text });
    add_type_and_references(&mut v, &content);
    if req.flag("fetchMaxId") {
        v["maxId"] = json!(r.max_id()?);
    }
    Ok(Reply::Json(v))
}

fn version_json(r: &SchemaRegistry, v: &SchemaVersion, format: Option<&str>) -> Value {
    let mut out = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": r.formatted(&v.content, format),
    });
    add_type_and_references(&mut out, &v.content);
    out
}

/// `schemaType` only for a type other than AVRO and `references` only when there are some, as
/// Confluent's answers leave them out.
fn add_type_and_references(out: &mut Value, content: &SchemaContent) {
    if content.schema_type != SchemaType::Avro {
        out["schemaType"] = json!(content.schema_type.name());
    }
    if !content.references.is_empty() {
        let refs: Vec<Value> = content.references.iter().map(|r| r.to_json()).collect();
        out["references"] = Value::Array(refs);
    }
}

/// What `deleted` and `deletedOnly` ask a listing to show (`deletedOnly` wins where both are
/// given, as in Confluent's resources).
fn lookup(req: &HttpRequest) -> Lookup {
    match req.flag("deletedOnly") {
        true => Lookup::DeletedOnly,
        false => req.flag("deleted").into(),
    }
}

/// Query parameter `name` as an integer, `default` when absent, `None` when it does not parse.
fn int_param(req: &HttpRequest, name: &str, default: i64) -> Option<i64> {
    match req.param(name) {
        None => Some(default),
        Some(v) => v.parse::<i32>().ok().map(i64::from),
    }
}

fn body(req: &HttpRequest) -> Result<Value, RegistryError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| RegistryError::BadRequest(format!("Unrecognized request body: {e}")))
}

/// A body's string field `name` as `parse` reads it (`None`: missing or not understood).
fn body_field<T>(
    req: &HttpRequest,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, RegistryError> {
    Ok(body(req)?.get(name).and_then(Value::as_str).and_then(parse))
}

/// A register / lookup / compatibility body: `schema` (required), `schemaType`, `references`,
/// and for IMPORT mode `id` and `version`. Unknown fields (`metadata`, `ruleSet`) are ignored.
fn schema_request(req: &HttpRequest) -> Result<SchemaRequest, RegistryError> {
    let b = body(req)?;
    let schema = match b.get("schema") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(RegistryError::InvalidSchema("Empty schema".into())),
    };
    let type_name = b.get("schemaType").and_then(Value::as_str);
    let schema_type = SchemaType::parse(type_name).ok_or_else(|| {
        RegistryError::InvalidSchema(format!(
            "Invalid schema type {}",
            type_name.unwrap_or_default()
        ))
    })?;
    let references = match b.get("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(refs)) => refs
            .iter()
            .map(|r| {
                SchemaReference::from_json(r).ok_or_else(|| {
                    RegistryError::InvalidSchema(format!("Invalid schema reference {r}"))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(RegistryError::InvalidSchema(format!(
                "Invalid schema references {other}"
            )))
        }
    };
    let int = |name: &str| {
        b.get(name)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .filter(|v| *v > 0)
    };
    Ok(SchemaRequest {
        content: SchemaContent {
            schema_type,
            schema,
            references,
        },
        id: int("id"),
        version: int("version"),
    })
}
