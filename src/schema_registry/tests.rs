//! The registry's operations on a real broker's log: id and version assignment, deletes,
//! config and modes, and a restart replaying `_schemas`.

use std::sync::Arc;

use super::schema::SchemaType;
use super::*;
use crate::broker::Endpoint;
use crate::http::HttpRequest;
use crate::Config;
use hyper::Method;
use serde_json::{json, Value};

fn open(dir: &std::path::Path) -> SchemaRegistry {
    let config = Config::for_tests(dir.to_path_buf());
    let broker = Broker::open(config, Endpoint::plaintext("127.0.0.1", 9092)).unwrap();
    SchemaRegistry::open(Arc::new(broker)).unwrap()
}

fn avro(schema: &str) -> SchemaRequest {
    request(SchemaType::Avro, schema)
}

fn request(schema_type: SchemaType, schema: &str) -> SchemaRequest {
    SchemaRequest {
        content: SchemaContent {
            schema_type,
            schema: schema.to_string(),
            references: vec![],
        },
        id: None,
        version: None,
    }
}

fn record(fields: &str) -> SchemaRequest {
    avro(&format!(
        r#"{{"type":"record","name":"User","fields":[{fields}]}}"#
    ))
}

const A: &str = r#"{"name":"a","type":"string"}"#;
const B_DEFAULT: &str = r#"{"name":"b","type":"int","default":0}"#;
const C: &str = r#"{"name":"c","type":"int"}"#;

#[test]
fn ids_are_global_and_versions_per_subject() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let v1 = record(A);
    assert_eq!(r.register("s-value", v1.clone(), false), Ok(1));
    // The same schema again (whitespace aside): the same id, no new version.
    let spaced = avro(&v1.content.schema.replace(',', ", "));
    assert_eq!(r.register("s-value", spaced, false), Ok(1));
    assert_eq!(r.versions("s-value", false), Ok(vec![1]));
    // Under another subject: the same id, that subject's version 1.
    assert_eq!(r.register("t-value", v1.clone(), false), Ok(1));
    let v2 = record(&format!("{A},{B_DEFAULT}"));
    assert_eq!(r.register("s-value", v2.clone(), false), Ok(2));
    assert_eq!(r.versions("s-value", false), Ok(vec![1, 2]));
    let latest = r.version("s-value", VersionSpec::Latest, false).unwrap();
    assert_eq!((latest.version, latest.id), (2, 2));
    assert_eq!(
        r.id_versions(1, false),
        Ok(vec![("s-value".into(), 1), ("t-value".into(), 1)])
    );
    assert_eq!(
        r.lookup("s-value", &v2, false, false).map(|v| v.version),
        Ok(2)
    );
    assert_eq!(
        r.lookup("s-value", &record(C), false, false),
        Err(RegistryError::SchemaNotFound("Schema not found".into()))
    );
    assert_eq!(
        r.lookup("nope", &v2, false, false),
        Err(RegistryError::SubjectNotFound("nope".into()))
    );
    assert!(matches!(
        r.schema_by_id(3),
        Err(RegistryError::SchemaNotFound(_))
    ));
    assert_eq!(
        r.subjects(false, ""),
        Ok(vec!["s-value".into(), "t-value".into()])
    );
    assert_eq!(r.subjects(false, "t"), Ok(vec!["t-value".into()]));
}

#[test]
fn incompatible_and_invalid_schemas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", record(A), false).unwrap();
    // BACKWARD (the default): a new field without a default cannot read old data.
    let bad = record(&format!("{A},{C}"));
    let e = r.register("s", bad.clone(), false).unwrap_err();
    assert_eq!(e.code(), 409, "{e}");
    assert!(e.to_string().contains("BACKWARD"), "{e}");
    let check = r
        .check_compatibility("s", Some(VersionSpec::Latest), &bad)
        .unwrap();
    assert!(!check.is_compatible && !check.messages.is_empty());
    // NONE for the subject lets it in.
    r.set_config(Some("s"), CompatibilityLevel::None).unwrap();
    assert_eq!(r.register("s", bad, false), Ok(2));
    assert_eq!(r.config(Some("s"), false), Ok(CompatibilityLevel::None));
    assert_eq!(r.config(None, false), Ok(CompatibilityLevel::Backward));
    assert_eq!(
        r.config(Some("other"), false),
        Err(RegistryError::SubjectCompatibilityNotConfigured(
            "other".into()
        ))
    );
    assert_eq!(
        r.config(Some("other"), true),
        Ok(CompatibilityLevel::Backward)
    );
    let e = r
        .register("s", avro(r#"{"type":"record"}"#), false)
        .unwrap_err();
    assert_eq!(e.code(), 42201);
    // A different type is never compatible with the subject's history.
    r.delete_config(Some("s")).unwrap();
    let json = request(SchemaType::Json, r#"{"type":"string"}"#);
    assert_eq!(r.register("s", json, false).unwrap_err().code(), 409);
    // Nothing was written by the refusals: the next id is 3.
    assert_eq!(r.register("u", avro(r#""string""#), false), Ok(3));
}

#[test]
fn deletes_soft_then_hard() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", record(A), false).unwrap();
    r.register("s", record(&format!("{A},{B_DEFAULT}")), false)
        .unwrap();
    assert_eq!(
        r.delete_version("s", VersionSpec::Exact(1), true),
        Err(RegistryError::VersionNotSoftDeleted("s".into(), 1))
    );
    assert_eq!(r.delete_version("s", VersionSpec::Exact(1), false), Ok(1));
    assert_eq!(
        r.delete_version("s", VersionSpec::Exact(1), false),
        Err(RegistryError::VersionSoftDeleted("s".into(), 1))
    );
    assert_eq!(r.versions("s", false), Ok(vec![2]));
    assert_eq!(r.versions("s", true), Ok(vec![1, 2]));
    // A soft-deleted version still serves its id (consumers of old records need it).
    assert!(r.schema_by_id(1).is_ok());
    assert_eq!(r.delete_version("s", VersionSpec::Exact(1), true), Ok(1));
    assert_eq!(r.versions("s", true), Ok(vec![2]));
    assert_eq!(
        r.delete_subject("s", true),
        Err(RegistryError::SubjectNotSoftDeleted("s".into()))
    );
    assert_eq!(r.delete_subject("s", false), Ok(vec![2]));
    assert_eq!(
        r.delete_subject("s", false),
        Err(RegistryError::SubjectSoftDeleted("s".into()))
    );
    assert_eq!(r.subjects(false, ""), Ok(vec![]));
    assert_eq!(r.subjects(true, ""), Ok(vec!["s".to_string()]));
    assert_eq!(r.delete_subject("s", true), Ok(vec![2]));
    assert_eq!(
        r.versions("s", true),
        Err(RegistryError::SubjectNotFound("s".into()))
    );
    // Ids are not reused; versions of a hard-deleted subject start again.
    assert_eq!(r.register("s", avro(r#""int""#), false), Ok(3));
    assert_eq!(r.versions("s", false), Ok(vec![1]));
}

#[test]
fn references_resolve_and_hold_what_they_reference() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let address =
        r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#;
    assert_eq!(r.register("address", avro(address), false), Ok(1));
    let user = r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Address"}]}"#;
    let mut req = avro(user);
    assert_eq!(
        r.register("user", req.clone(), false).unwrap_err().code(),
        42201
    );
    req.content.references = vec![SchemaReference {
        name: "Address".into(),
        subject: "address".into(),
        version: 1,
    }];
    assert_eq!(r.register("user", req, false), Ok(2));
    assert_eq!(
        r.referenced_by("address", VersionSpec::Exact(1)),
        Ok(vec![2])
    );
    assert_eq!(
        r.delete_version("address", VersionSpec::Exact(1), false),
        Err(RegistryError::ReferenceExists("address".into(), 1))
    );
    assert_eq!(
        r.delete_subject("address", false),
        Err(RegistryError::ReferenceExists("address".into(), 1))
    );
}

#[test]
fn modes() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", avro(r#""string""#), false).unwrap();
    r.set_mode(Some("s"), Mode::ReadOnly, false).unwrap();
    assert_eq!(
        r.register("s", avro(r#""int""#), false).unwrap_err().code(),
        42205
    );
    assert_eq!(r.delete_subject("s", false).unwrap_err().code(), 42205);
    assert_eq!(r.mode(Some("s"), false), Ok(Mode::ReadOnly));
    assert_eq!(r.mode(None, false), Ok(Mode::ReadWrite));
    assert_eq!(r.delete_mode("s"), Ok(Mode::ReadOnly));
    assert_eq!(
        r.mode(Some("s"), false),
        Err(RegistryError::SubjectModeNotConfigured("s".into()))
    );
    // IMPORT needs an empty registry unless forced; then ids and versions are kept.
    assert_eq!(
        r.set_mode(None, Mode::Import, false).unwrap_err().code(),
        42205
    );
    let mut imported = avro(r#""long""#);
    imported.id = Some(100);
    imported.version = Some(7);
    assert_eq!(
        r.register("i", imported.clone(), false).unwrap_err().code(),
        42205
    );
    r.set_mode(None, Mode::Import, true).unwrap();
    assert_eq!(r.register("i", imported, false), Ok(100));
    assert_eq!(r.versions("i", false), Ok(vec![7]));
    let mut clash = avro(r#""double""#);
    clash.id = Some(100);
    assert_eq!(r.register("j", clash, false).unwrap_err().code(), 42205);
    r.set_mode(None, Mode::ReadWrite, false).unwrap();
    assert_eq!(r.register("k", avro(r#""float""#), false), Ok(101));
}

#[test]
fn a_restart_keeps_ids_versions_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = open(dir.path());
        r.register("s", record(A), false).unwrap();
        r.register("s", record(&format!("{A},{B_DEFAULT}")), false)
            .unwrap();
        r.register("t", avro(r#""string""#), false).unwrap();
        r.delete_version("s", VersionSpec::Exact(1), false).unwrap();
        r.set_config(None, CompatibilityLevel::Full).unwrap();
        r.set_mode(Some("t"), Mode::ReadOnly, false).unwrap();
        r.broker.close().unwrap();
    }
    let r = open(dir.path());
    assert_eq!(r.versions("s", false), Ok(vec![2]));
    assert_eq!(r.versions("s", true), Ok(vec![1, 2]));
    assert_eq!(
        r.version("t", VersionSpec::Exact(1), false).map(|v| v.id),
        Ok(3)
    );
    assert_eq!(r.config(None, false), Ok(CompatibilityLevel::Full));
    assert_eq!(r.mode(Some("t"), false), Ok(Mode::ReadOnly));
    assert_eq!(r.register("u", avro(r#""int""#), false), Ok(4));
    let topic = r.broker.catalog.get(store::SCHEMAS_TOPIC).unwrap();
    assert_eq!(
        topic.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
}

/// One request through the REST routes: the status and the JSON body.
fn call(r: &SchemaRegistry, method: Method, target: &str, body: Value) -> (u16, Value) {
    let body = match body {
        Value::Null => bytes::Bytes::new(),
        b => bytes::Bytes::from(b.to_string()),
    };
    let answer = rest::answer(r, &HttpRequest::new(method, target, body));
    (
        answer.status.as_u16(),
        serde_json::from_slice(&answer.body).unwrap(),
    )
}

fn get(r: &SchemaRegistry, target: &str) -> (u16, Value) {
    call(r, Method::GET, target, Value::Null)
}

/// `[(subject, version)]` of a GET /schemas answer.
fn listed(answer: (u16, Value)) -> Vec<(String, i64)> {
    assert_eq!(answer.0, 200, "{}", answer.1);
    let list = answer.1.as_array().unwrap().iter();
    list.map(|v| {
        (
            v["subject"].as_str().unwrap().to_string(),
            v["version"].as_i64().unwrap(),
        )
    })
    .collect()
}

fn sv(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(s, v)| (s.to_string(), *v)).collect()
}

#[test]
fn schemas_are_listed_by_subject_and_version_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s-value", record(A), false).unwrap();
    r.register("s-value", record(&format!("{A},{B_DEFAULT}")), false)
        .unwrap();
    r.register("t-value", avro(r#""int""#), false).unwrap();
    r.register("other", avro(r#""long""#), false).unwrap();
    let all = sv(&[("other", 1), ("s-value", 1), ("s-value", 2), ("t-value", 1)]);
    assert_eq!(listed(get(&r, "/schemas")), all);
    // Each entry is a version as GET /subjects/{s}/versions/{v} answers it.
    let (_, first) = get(&r, "/schemas?subjectPrefix=t");
    assert_eq!(
        first,
        json!([{"subject": "t-value", "version": 1, "id": 3, "schema": "\"int\""}])
    );
    assert_eq!(
        listed(get(&r, "/schemas?subjectPrefix=s")),
        sv(&[("s-value", 1), ("s-value", 2)])
    );
    assert_eq!(
        listed(get(&r, "/schemas?latestOnly=true")),
        sv(&[("other", 1), ("s-value", 2), ("t-value", 1)])
    );
    // Soft-deleted versions only with deleted=true; latestOnly picks among those shown.
    r.delete_version("s-value", VersionSpec::Exact(2), false)
        .unwrap();
    assert_eq!(
        listed(get(&r, "/schemas?subjectPrefix=s&latestOnly=true")),
        sv(&[("s-value", 1)])
    );
    assert_eq!(
        listed(get(
            &r,
            "/schemas?subjectPrefix=s&latestOnly=true&deleted=true"
        )),
        sv(&[("s-value", 2)])
    );
    // Pages: offset and limit; a limit outside 1..=1000 is 1000; a negative offset shortens
    // the page as Confluent's arithmetic does; a non-number is Jersey's 404.
    assert_eq!(
        listed(get(&r, "/schemas?deleted=true&offset=1&limit=2")),
        sv(&[("s-value", 1), ("s-value", 2)])
    );
    assert_eq!(listed(get(&r, "/schemas?deleted=true&limit=0")), all);
    assert_eq!(listed(get(&r, "/schemas?deleted=true&limit=-5")), all);
    assert_eq!(
        listed(get(&r, "/schemas?offset=-1&limit=2")),
        sv(&[("other", 1)])
    );
    assert_eq!(listed(get(&r, "/schemas?offset=9")), sv(&[]));
    assert_eq!(get(&r, "/schemas?offset=x").0, 404);
    assert_eq!(get(&r, "/schemas?limit=99999999999").0, 404);
    assert_eq!(call(&r, Method::DELETE, "/schemas", Value::Null).0, 405);
}

#[test]
fn compatibility_checks_answer_as_confluent() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", record(A), false).unwrap();
    let int = json!({"schema": "\"int\""});
    let check = |target: &str, body: &Value| call(&r, Method::POST, target, body.clone());
    // A version that is not there is 40402, also where the subject is not there either.
    for target in [
        "/compatibility/subjects/nope/versions/1",
        "/compatibility/subjects/s/versions/2",
    ] {
        let (status, body) = check(target, &int);
        assert_eq!(
            (status, body["error_code"].clone()),
            (404, json!(40402)),
            "{target}"
        );
    }
    // "latest" of no subject: nothing to be incompatible with.
    assert_eq!(
        check("/compatibility/subjects/nope/versions/latest", &int),
        (200, json!({"is_compatible": true}))
    );
    // A schema that does not parse: 42201, or with verbose an incompatible answer saying why.
    let broken = json!({"schema": "{\"type\":\"record\""});
    let (status, body) = check("/compatibility/subjects/s/versions/latest", &broken);
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    let (status, body) = check(
        "/compatibility/subjects/s/versions/latest?verbose=true",
        &broken,
    );
    assert_eq!((status, body["is_compatible"].clone()), (200, json!(false)));
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = check("/compatibility/subjects/s/versions?verbose=true", &broken);
    assert_eq!((status, body["is_compatible"].clone()), (200, json!(false)));
}

#[test]
fn server_metadata_and_max_id() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let (status, body) = get(&r, "/v1/metadata/id");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"scope": {"path": [], "clusters": {
            "kafka-cluster": r.cluster_id(),
            "schema-registry-cluster": "schema-registry",
        }}})
    );
    assert!(!r.cluster_id().is_empty());
    let (status, body) = get(&r, "/v1/metadata/version");
    assert_eq!(status, 200);
    assert_eq!(body["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(body["commitId"].is_string());
    r.register("s", avro(r#""int""#), false).unwrap();
    r.register("t", avro(r#""long""#), false).unwrap();
    // maxId only when asked for: the largest id given, whichever id is read.
    assert_eq!(
        get(&r, "/schemas/ids/1"),
        (200, json!({"schema": "\"int\""}))
    );
    assert_eq!(
        get(&r, "/schemas/ids/1?fetchMaxId=true"),
        (200, json!({"schema": "\"int\"", "maxId": 2}))
    );
}

#[test]
fn deleted_only_lists_what_is_soft_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", record(A), false).unwrap();
    r.register("s", record(&format!("{A},{B_DEFAULT}")), false)
        .unwrap();
    r.register("t", avro(r#""int""#), false).unwrap();
    r.register("u", avro(r#""long""#), false).unwrap();
    r.delete_version("s", VersionSpec::Exact(1), false).unwrap();
    r.delete_subject("t", false).unwrap();
    // A subject is deleted when all its versions are: s, with one live version, is not.
    assert_eq!(get(&r, "/subjects?deletedOnly=true"), (200, json!(["t"])));
    assert_eq!(
        get(&r, "/subjects?deletedOnly=true&deleted=true"),
        (200, json!(["t"]))
    );
    assert_eq!(get(&r, "/subjects"), (200, json!(["s", "u"])));
    assert_eq!(
        get(&r, "/subjects?deleted=true"),
        (200, json!(["s", "t", "u"]))
    );
    assert_eq!(
        get(&r, "/subjects/s/versions?deletedOnly=true"),
        (200, json!([1]))
    );
    assert_eq!(
        get(&r, "/subjects/t/versions?deletedOnly=true"),
        (200, json!([1]))
    );
    // A subject with nothing deleted: no versions, not "not found".
    assert_eq!(
        get(&r, "/subjects/u/versions?deletedOnly=true"),
        (200, json!([]))
    );
    for target in [
        "/subjects/t/versions",
        "/subjects/nope/versions?deletedOnly=true",
    ] {
        let (status, body) = get(&r, target);
        assert_eq!(
            (status, body["error_code"].clone()),
            (404, json!(40401)),
            "{target}"
        );
    }
}
