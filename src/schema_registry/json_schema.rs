//! JSON Schema: parsed as JSON and checked for the shape of the keywords compatibility reads;
//! compatible by Confluent's documented rules (its `SchemaDiff`): a reader schema is compatible
//! with a writer schema when every document the writer's schema accepts is accepted by the
//! reader's. What that means per keyword, as Confluent decides it:
//!
//! - `type`: the reader's types must include the writer's (`number` includes `integer`):
//!   otherwise TYPE_NARROWED / TYPE_CHANGED;
//! - `enum`: the reader's values must include the writer's (ENUM_ARRAY_NARROWED);
//! - bounds (`maxLength`, `minLength`, `maximum`, `minimum`, `maxItems`, `minItems`) may only
//!   widen; a new or changed `pattern` is incompatible;
//! - objects: a property added to an *open* content model (no `additionalProperties: false`) is
//!   incompatible unless its schema is empty (the writer may have put anything under that name:
//!   PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL); added to a closed one it is compatible unless
//!   required. A property removed is compatible only if the reader's model is open
//!   (PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL). A newly required property needs a default
//!   (REQUIRED_ATTRIBUTE_ADDED); closing an open model is ADDITIONAL_PROPERTIES_REMOVED;
//! - arrays: `items` compared recursively; properties compared recursively.
//!
//! `$ref`, `oneOf`/`anyOf`/`allOf` and conditionals are accepted and not compared (see FINDINGS).

use serde_json::{Map, Value};

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];
/// Deeper schemas are refused rather than walked (no unbounded recursion on input).
const MAX_DEPTH: usize = 64;

#[derive(Debug)]
pub struct JsonSchema {
    value: Value,
}

impl JsonSchema {
    pub fn parse(text: &str) -> Result<JsonSchema, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("Invalid JSON {text}: {e}"))?;
        check(&value, 0).map_err(|e| format!("Invalid schema {text}: {e}"))?;
        Ok(JsonSchema { value })
    }

    /// Why documents valid under `writer` may be invalid under this schema (empty: none).
    pub fn can_read(&self, writer: &JsonSchema) -> Vec<String> {
        let mut out = Vec::new();
        compare(&writer.value, &self.value, "#", 0, &mut out);
        out
    }
}

/// The keywords compatibility reads must have their shapes.
fn check(v: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let o = match v {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err("a schema must be an object or a boolean".into()),
    };
    if let Some(t) = o.get("type") {
        let ok = match t {
            Value::String(s) => TYPES.contains(&s.as_str()),
            Value::Array(a) => a
                .iter()
                .all(|t| t.as_str().is_some_and(|s| TYPES.contains(&s))),
            _ => false,
        };
        if !ok {
            return Err(format!("unknown type {t}"));
        }
    }
    if let Some(p) = o.get("properties") {
        let p = p.as_object().ok_or("properties must be an object")?;
        for s in p.values() {
            check(s, depth + 1)?;
        }
    }
    if let Some(r) = o.get("required") {
        let ok = r.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err("required must be an array of strings".into());
        }
    }
    if let Some(e) = o.get("enum") {
        if !e.is_array() {
            return Err("enum must be an array".into());
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(s) = o.get(key) {
            match s {
                Value::Array(a) if key == "items" => {
                    for s in a {
                        check(s, depth + 1)?;
                    }
                }
                s => check(s, depth + 1)?,
            }
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(a) = o.get(key) {
            for s in a.as_array().ok_or(format!("{key} must be an array"))? {
                check(s, depth + 1)?;
            }
        }
    }
    for key in ["definitions", "$defs"] {
        if let Some(d) = o.get(key) {
            for s in d
                .as_object()
                .ok_or(format!("{key} must be an object"))?
                .values()
            {
                check(s, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// An empty schema (`{}` or `true`) accepts every document.
fn accepts_all(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn types(o: &Map<String, Value>) -> Option<Vec<&str>> {
    match o.get("type")? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Differences of `update` (the reader) from `original` (the writer) that make a document
/// valid under `original` invalid under `update`, each as `TYPE at path`.
fn compare(original: &Value, update: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH || accepts_all(update) || original == update {
        return;
    }
    let (o, u) = match (original, update) {
        (Value::Bool(false), _) => return,
        (Value::Object(o), Value::Object(u)) => (o, u),
        _ => {
            out.push(format!("TYPE_CHANGED at {path}"));
            return;
        }
    };
    match (types(o), types(u)) {
        (Some(ot), Some(ut)) => {
            let covered = |t: &str| ut.contains(&t) || (t == "integer" && ut.contains(&"number"));
            if !ot.iter().all(|t| covered(t)) {
                let narrowed = ot.iter().any(|t| covered(t));
                let what = if narrowed {
                    "TYPE_NARROWED"
                } else {
                    "TYPE_CHANGED"
                };
                out.push(format!("{what} at {path}"));
                return;
            }
        }
        (None, Some(_)) => out.push(format!("TYPE_NARROWED at {path}")),
        _ => {}
    }
    compare_enum(o, u, path, out);
    compare_bounds(o, u, path, out);
    compare_object(o, u, path, depth, out);
    if let (Some(oi), Some(ui)) = (o.get("items"), u.get("items")) {
        compare(oi, ui, &format!("{path}/items"), depth + 1, out);
    }
}

fn compare_enum(o: &Map<String, Value>, u: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let Some(ue) = u.get("enum").and_then(Value::as_array) else {
        return;
    };
    let widened = o
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|oe| oe.iter().all(|v| ue.contains(v)));
    if !widened {
        out.push(format!("ENUM_ARRAY_NARROWED at {path}"));
    }
}

fn compare_bounds(
    o: &Map<String, Value>,
    u: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let num = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64);
    // (keyword, true when a larger value is wider)
    let bounds = [
        ("maxLength", true),
        ("minLength", false),
        ("maximum", true),
        ("minimum", false),
        ("exclusiveMaximum", true),
        ("exclusiveMinimum", false),
        ("maxItems", true),
        ("minItems", false),
        ("maxProperties", true),
        ("minProperties", false),
    ];
    for (key, larger_is_wider) in bounds {
        let Some(new) = num(u, key) else { continue };
        let narrowed = match num(o, key) {
            None => true,
            Some(old) if larger_is_wider => new < old,
            Some(old) => new > old,
        };
        if narrowed {
            out.push(format!("{key} narrowed at {path}"));
        }
    }
    if let Some(p) = u.get("pattern") {
        if o.get("pattern") != Some(p) {
            out.push(format!("PATTERN_CHANGED at {path}"));
        }
    }
}

/// `additionalProperties: false` closes an object's content model; anything else leaves it open
/// (a schema there partially opens it, which counts as open here).
fn open(m: &Map<String, Value>) -> bool {
    m.get("additionalProperties") != Some(&Value::Bool(false))
}

fn compare_object(
    o: &Map<String, Value>,
    u: &Map<String, Value>,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    let empty = Map::new();
    let props = |m: &'_ Map<String, Value>| -> Map<String, Value> {
        m.get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone()
    };
    let required = |m: &Map<String, Value>| -> Vec<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (op, up) = (props(o), props(u));
    let (or, ur) = (required(o), required(u));
    if open(o) && !open(u) {
        out.push(format!("ADDITIONAL_PROPERTIES_REMOVED at {path}"));
    }
    for (name, schema) in &up {
        let at = format!("{path}/properties/{name}");
        match op.get(name) {
            Some(old) => compare(old, schema, &at, depth + 1, out),
            None if open(o) && !accepts_all(schema) => {
                out.push(format!("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at {at}"))
            }
            None if ur.contains(name) && schema.get("default").is_none() => out.push(format!(
                "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL at {at}"
            )),
            None => {}
        }
    }
    for name in op.keys() {
        if !up.contains_key(name) && !open(u) {
            out.push(format!(
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at {path}/properties/{name}"
            ));
        }
    }
    for name in &ur {
        let has_default = up.get(name).and_then(|s| s.get("default")).is_some();
        if !or.contains(name) && op.contains_key(name) && !has_default {
            out.push(format!(
                "REQUIRED_ATTRIBUTE_ADDED at {path}/required/{name}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> JsonSchema {
        JsonSchema::parse(text).unwrap()
    }

    fn object(props: &str, required: &str, closed: bool) -> JsonSchema {
        s(&format!(
            r#"{{"type":"object","properties":{{{props}}},"required":[{required}],"additionalProperties":{}}}"#,
            !closed
        ))
    }

    #[test]
    fn content_models() {
        let v1 = object(r#""a":{"type":"string"}"#, r#""a""#, true);
        let v2 = object(
            r#""a":{"type":"string"},"b":{"type":"integer"}"#,
            r#""a""#,
            true,
        );
        // Closed: an optional property added reads old documents; removing it does not.
        assert!(v2.can_read(&v1).is_empty());
        assert!(!v1.can_read(&v2).is_empty());
        // Open: old documents may carry any "b", so adding a typed "b" is incompatible.
        let o1 = object(r#""a":{"type":"string"}"#, r#""a""#, false);
        let o2 = object(
            r#""a":{"type":"string"},"b":{"type":"integer"}"#,
            r#""a""#,
            false,
        );
        let m = o2.can_read(&o1);
        assert!(
            m[0].starts_with("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
            "{m:?}"
        );
        assert!(o1.can_read(&o2).is_empty());
        // A new required property (closed model) without a default.
        let v3 = object(
            r#""a":{"type":"string"},"b":{"type":"integer"}"#,
            r#""a","b""#,
            true,
        );
        assert!(!v3.can_read(&v1).is_empty());
        assert!(!v3.can_read(&v2).is_empty());
        let v3d = object(
            r#""a":{"type":"string"},"b":{"type":"integer","default":1}"#,
            r#""a","b""#,
            true,
        );
        assert!(v3d.can_read(&v2).is_empty());
        // Closing an open model.
        assert!(!v1.can_read(&o1).is_empty());
        assert!(o1.can_read(&v1).is_empty());
    }

    #[test]
    fn types_enums_and_bounds() {
        let int = s(r#"{"type":"integer"}"#);
        let num = s(r#"{"type":"number"}"#);
        let st = s(r#"{"type":"string"}"#);
        assert!(num.can_read(&int).is_empty());
        assert!(!int.can_read(&num).is_empty());
        assert!(!st.can_read(&int).is_empty());
        let either = s(r#"{"type":["string","null"]}"#);
        assert!(either.can_read(&st).is_empty());
        assert!(!st.can_read(&either).is_empty());
        let e1 = s(r#"{"enum":["A","B"]}"#);
        let e2 = s(r#"{"enum":["A","B","C"]}"#);
        assert!(e2.can_read(&e1).is_empty());
        assert!(!e1.can_read(&e2).is_empty());
        let short = s(r#"{"type":"string","maxLength":5}"#);
        let long = s(r#"{"type":"string","maxLength":10}"#);
        assert!(long.can_read(&short).is_empty());
        assert!(!short.can_read(&long).is_empty());
        assert!(!short.can_read(&st).is_empty());
        assert!(s("{}").can_read(&st).is_empty());
        let items = |t: &str| s(&format!(r#"{{"type":"array","items":{{"type":"{t}"}}}}"#));
        assert!(!items("string").can_read(&items("integer")).is_empty());
    }

    #[test]
    fn invalid_schemas() {
        for bad in [
            "[1]",
            "3",
            "nope",
            r#"{"type":"strang"}"#,
            r#"{"properties":[]}"#,
            r#"{"required":"a"}"#,
            r#"{"properties":{"a":7}}"#,
        ] {
            assert!(JsonSchema::parse(bad).is_err(), "{bad}");
        }
        assert!(JsonSchema::parse("true").is_ok());
        let deep = format!(
            "{}{}",
            r#"{"items":"#.repeat(100),
            "{}".to_string() + &"}".repeat(100)
        );
        assert!(JsonSchema::parse(&deep).is_err());
    }
}
