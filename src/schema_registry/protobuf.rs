//! Protobuf schemas, in either form Confluent's registry accepts: `.proto` text (parsed by
//! `protox-parse`) or a base64 serialized `FileDescriptorProto` (what confluent-kafka's Python
//! `ProtobufSerializer` registers). Both become a `FileDescriptorProto`; `format=serialized`
//! answers the descriptor form, which the Python deserializer asks for.
//!
//! Compatibility follows Confluent's documented Protobuf rules (its `SchemaDiff`), compared by
//! message full name and field number: MESSAGE_REMOVED, FIELD_KIND_CHANGED (scalar ↔ named type),
//! FIELD_SCALAR_KIND_CHANGED (outside the wire-compatible groups: int32/uint32/int64/uint64/bool,
//! sint32/sint64, fixed32/sfixed32, fixed64/sfixed64, string/bytes), FIELD_NAMED_TYPE_CHANGED,
//! REQUIRED_FIELD_ADDED/REMOVED (proto2), FIELD_MOVED_TO_EXISTING_ONEOF, PACKAGE_CHANGED are
//! incompatible; fields added or removed, renamed, and messages added are compatible.

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

/// Deeper `{` nesting in `.proto` text is refused before parsing (no unbounded recursion).
const MAX_NESTING: usize = 64;

#[derive(Debug)]
pub struct ProtobufSchema {
    file: FileDescriptorProto,
}

impl ProtobufSchema {
    pub fn parse(text: &str) -> Result<ProtobufSchema, String> {
        let invalid = |e: String| format!("Invalid schema {text}: {e}");
        if nesting(text) > MAX_NESTING {
            return Err(invalid("nested too deeply".into()));
        }
        let text_error = match protox_parse::parse("schema.proto", text) {
            Ok(file) => return Ok(ProtobufSchema { file }),
            Err(e) => e.to_string(),
        };
        match descriptor(text) {
            Some(file) => Ok(ProtobufSchema { file }),
            None => Err(invalid(text_error)),
        }
    }

    /// The schema as a base64 serialized FileDescriptorProto (`format=serialized`).
    pub fn serialized(&self) -> String {
        let mut file = self.file.clone();
        file.source_code_info = None;
        base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
    }

    /// Why data written with `writer` cannot be read with this schema (empty: it can).
    pub fn can_read(&self, writer: &ProtobufSchema) -> Vec<String> {
        let mut out = Vec::new();
        if writer.file.package != self.file.package {
            out.push("PACKAGE_CHANGED".to_string());
        }
        let (old, new) = (messages(&writer.file), messages(&self.file));
        for (name, o) in &old {
            match new.get(name) {
                None => out.push(format!("MESSAGE_REMOVED #/{name}")),
                Some(n) => compare_message(name, o, n, &mut out),
            }
        }
        out
    }
}

/// A base64 FileDescriptorProto with at least a name or a message (random base64 decodes to
/// an empty descriptor surprisingly often).
fn descriptor(text: &str) -> Option<FileDescriptorProto> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    let file = FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    (file.name.is_some() || !file.message_type.is_empty()).then_some(file)
}

fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '{' => {
                depth += 1;
                max = max.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Every message of the file by full name (without the package), nested ones included.
fn messages(file: &FileDescriptorProto) -> BTreeMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        ms: &'a [DescriptorProto],
        out: &mut BTreeMap<String, &'a DescriptorProto>,
    ) {
        for m in ms {
            let name = format!("{prefix}{}", m.name());
            walk(&format!("{name}."), &m.nested_type, out);
            out.insert(name, m);
        }
    }
    let mut out = BTreeMap::new();
    walk("", &file.message_type, &mut out);
    out
}

fn compare_message(
    name: &str,
    old: &DescriptorProto,
    new: &DescriptorProto,
    out: &mut Vec<String>,
) {
    let by_number = |m: &DescriptorProto| -> BTreeMap<i32, FieldDescriptorProto> {
        m.field.iter().map(|f| (f.number(), f.clone())).collect()
    };
    let (of, nf) = (by_number(old), by_number(new));
    for (number, o) in &of {
        let at = format!("#/{name}/{number}");
        let Some(n) = nf.get(number) else {
            if o.label() == Label::Required {
                out.push(format!("REQUIRED_FIELD_REMOVED {at}"));
            }
            continue;
        };
        if let Some(what) = field_change(o, n) {
            out.push(format!("{what} {at}"));
        }
        if o.oneof_index.is_none() && n.oneof_index.is_some() {
            // Moving into a oneof that already had members changes what old data means.
            let existing = n.oneof_index;
            let had = of.values().any(|f| {
                f.oneof_index.is_some()
                    && nf
                        .get(&f.number())
                        .is_some_and(|g| g.oneof_index == existing)
            });
            if had {
                out.push(format!("FIELD_MOVED_TO_EXISTING_ONEOF {at}"));
            }
        }
    }
    for (number, n) in &nf {
        if !of.contains_key(number) && n.label() == Label::Required {
            out.push(format!("REQUIRED_FIELD_ADDED #/{name}/{number}"));
        }
    }
}

/// A named field type (message or enum): `type_name` is set; text-parsed files leave `type`
/// unset for those, descriptors set it.
fn named(f: &FieldDescriptorProto) -> Option<&str> {
    f.type_name
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| t.rsplit('.').next().unwrap_or(t))
}

fn scalar_group(t: Type) -> u8 {
    use Type::*;
    match t {
        Int32 | Uint32 | Int64 | Uint64 | Bool => 1,
        Sint32 | Sint64 => 2,
        Fixed32 | Sfixed32 => 3,
        Fixed64 | Sfixed64 => 4,
        String | Bytes => 5,
        Float => 6,
        Double => 7,
        Group | Message | Enum => 8,
    }
}

fn field_change(o: &FieldDescriptorProto, n: &FieldDescriptorProto) -> Option<&'static str> {
    match (named(o), named(n)) {
        (Some(a), Some(b)) if a != b => return Some("FIELD_NAMED_TYPE_CHANGED"),
        (Some(_), None) | (None, Some(_)) => return Some("FIELD_KIND_CHANGED"),
        (None, None) if scalar_group(o.r#type()) != scalar_group(n.r#type()) => {
            return Some("FIELD_SCALAR_KIND_CHANGED")
        }
        _ => {}
    }
    let repeated = |f: &FieldDescriptorProto| f.label() == Label::Repeated;
    (repeated(o) != repeated(n)).then_some("FIELD_KIND_CHANGED")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> ProtobufSchema {
        ProtobufSchema::parse(text).unwrap()
    }

    #[test]
    fn fields_by_number() {
        let v1 = p("syntax = \"proto3\"; message User { string name = 1; int32 age = 2; }");
        let v2 = p("syntax = \"proto3\"; message User { string name = 1; int64 age = 2; string email = 3; }");
        assert!(v2.can_read(&v1).is_empty());
        assert!(v1.can_read(&v2).is_empty());
        let v3 = p("syntax = \"proto3\"; message User { string name = 1; string age = 2; }");
        let m = v3.can_read(&v1);
        assert!(m[0].starts_with("FIELD_SCALAR_KIND_CHANGED"), "{m:?}");
        let v4 = p("syntax = \"proto3\"; message User { string name = 1; Other age = 2; } message Other {}");
        assert!(v4.can_read(&v1)[0].starts_with("FIELD_KIND_CHANGED"));
        let gone = p("syntax = \"proto3\"; message Person { string name = 1; }");
        assert!(gone.can_read(&v1)[0].starts_with("MESSAGE_REMOVED"));
        let pkg =
            p("syntax = \"proto3\"; package x; message User { string name = 1; int32 age = 2; }");
        assert_eq!(pkg.can_read(&v1), ["PACKAGE_CHANGED"]);
    }

    #[test]
    fn text_and_descriptor_forms() {
        let v1 = p("syntax = \"proto3\"; package a.b; message User { string name = 1; message Inner { int32 x = 1; } }");
        let serialized = v1.serialized();
        let again = p(&serialized);
        assert_eq!(again.file.package.as_deref(), Some("a.b"));
        assert!(again.can_read(&v1).is_empty());
        assert_eq!(
            messages(&again.file).keys().collect::<Vec<_>>(),
            ["User", "User.Inner"]
        );
        assert!(ProtobufSchema::parse("message {").is_err());
        assert!(ProtobufSchema::parse("aGVsbG8=").is_err());
        assert!(ProtobufSchema::parse(&"message A {".repeat(100)).is_err());
    }
}
