//! Schemas as the registry understands them (Confluent's `ParsedSchema`): a type (AVRO, JSON,
//! PROTOBUF), its text, the references it names, and what each format's parser made of it; the
//! compatibility levels and how a level picks the versions a new schema is checked against.

use std::fmt;

use serde_json::Value;

use super::{avro, json_schema, protobuf};

/// The schema formats the registry parses (`GET /schemas/types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// `schemaType` as a request or a stored value spells it; absent means AVRO (Confluent's
    /// default). Case-insensitive, as Confluent's `SchemaTypeConverter`.
    pub fn parse(name: Option<&str>) -> Option<SchemaType> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Some(SchemaType::Avro),
            Some("JSON") => Some(SchemaType::Json),
            Some("PROTOBUF") => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// A reference from a schema to another subject's version, under the name the schema uses for
/// it (an Avro full name, a JSON Schema `$ref` URL, a Protobuf import path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

impl SchemaReference {
    pub fn to_json(&self) -> Value {
        serde_json::json!({"name": self.name, "subject": self.subject, "version": self.version})
    }

    pub fn from_json(v: &Value) -> Option<SchemaReference> {
        Some(SchemaReference {
            name: v.get("name")?.as_str()?.to_string(),
            subject: v.get("subject")?.as_str()?.to_string(),
            version: i32::try_from(v.get("version")?.as_i64()?).ok()?,
        })
    }
}

/// A schema's content: what makes two registrations the same schema (and so the same id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaContent {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

impl SchemaContent {
    /// The text compared for identity: JSON formats compacted with their keys in one order (so
    /// whitespace and key order do not make a new schema), Protobuf as written, trimmed.
    pub fn identity(&self) -> (SchemaType, String, Vec<SchemaReference>) {
        let text = match self.schema_type {
            SchemaType::Avro | SchemaType::Json => serde_json::from_str::<Value>(&self.schema)
                .map_or_else(|_| self.schema.trim().to_string(), |v| v.to_string()),
            SchemaType::Protobuf => self.schema.trim().to_string(),
        };
        (self.schema_type, text, self.references.clone())
    }
}

/// A schema its format's parser accepted.
#[derive(Debug)]
pub enum ParsedSchema {
    Avro(avro::AvroSchema),
    Json(json_schema::JsonSchema),
    Protobuf(Box<protobuf::ProtobufSchema>),
}

impl ParsedSchema {
    /// Parses `text` as `schema_type`; `referenced` holds the text of each referenced schema
    /// (resolved, with their own references, by the caller), in reference order. The error is
    /// the message of Confluent's 42201.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        referenced: &[String],
    ) -> Result<ParsedSchema, String> {
        match schema_type {
            SchemaType::Avro => avro::AvroSchema::parse(text, referenced).map(ParsedSchema::Avro),
            SchemaType::Json => json_schema::JsonSchema::parse(text).map(ParsedSchema::Json),
            SchemaType::Protobuf => {
                protobuf::ProtobufSchema::parse(text).map(|p| ParsedSchema::Protobuf(Box::new(p)))
            }
        }
    }

    /// The text `normalize=true` stores: Confluent's normalized form, approximated where cheap
    /// (JSON formats compacted with sorted keys; Protobuf unchanged).
    pub fn normalized(&self, text: &str) -> String {
        match self {
            ParsedSchema::Avro(_) | ParsedSchema::Json(_) => serde_json::from_str::<Value>(text)
                .map_or_else(|_| text.to_string(), |v| v.to_string()),
            ParsedSchema::Protobuf(_) => text.to_string(),
        }
    }

    /// Why data written with `writer` cannot be read with `self` as the reader (empty: it can).
    /// Schemas of different types are never compatible.
    pub fn can_read(&self, writer: &ParsedSchema) -> Vec<String> {
        match (self, writer) {
            (ParsedSchema::Avro(r), ParsedSchema::Avro(w)) => r.can_read(w),
            (ParsedSchema::Json(r), ParsedSchema::Json(w)) => r.can_read(w),
            (ParsedSchema::Protobuf(r), ParsedSchema::Protobuf(w)) => r.can_read(w),
            _ => vec!["Incompatible because of different schema type".to_string()],
        }
    }
}

/// A subject's (or the registry's) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatibilityLevel {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    /// Confluent's default (schema.compatibility.level).
    pub const DEFAULT: CompatibilityLevel = CompatibilityLevel::Backward;

    pub fn parse(name: &str) -> Option<CompatibilityLevel> {
        use CompatibilityLevel::*;
        Some(match name.to_ascii_uppercase().as_str() {
            "NONE" => None,
            "BACKWARD" => Backward,
            "BACKWARD_TRANSITIVE" => BackwardTransitive,
            "FORWARD" => Forward,
            "FORWARD_TRANSITIVE" => ForwardTransitive,
            "FULL" => Full,
            "FULL_TRANSITIVE" => FullTransitive,
            _ => return Option::None,
        })
    }

    pub fn name(self) -> &'static str {
        use CompatibilityLevel::*;
        match self {
            None => "NONE",
            Backward => "BACKWARD",
            BackwardTransitive => "BACKWARD_TRANSITIVE",
            Forward => "FORWARD",
            ForwardTransitive => "FORWARD_TRANSITIVE",
            Full => "FULL",
            FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        use CompatibilityLevel::*;
        matches!(
            self,
            BackwardTransitive | ForwardTransitive | FullTransitive
        )
    }

    /// Why `new` is incompatible with `previous` (the subject's live versions, oldest first)
    /// at this level, as Confluent's CompatibilityChecker: a transitive level checks every
    /// version, another only the latest; BACKWARD means the new schema reads the old data,
    /// FORWARD the old schemas read the new data, FULL both.
    pub fn check(self, new: &ParsedSchema, previous: &[ParsedSchema]) -> Vec<String> {
        use CompatibilityLevel::*;
        if self == None {
            return Vec::new();
        }
        let against: &[ParsedSchema] = match (self.transitive(), previous.split_last()) {
            (true, _) => previous,
            (false, Some((latest, _))) => std::slice::from_ref(latest),
            (false, Option::None) => &[],
        };
        let backward = matches!(self, Backward | BackwardTransitive | Full | FullTransitive);
        let forward = matches!(self, Forward | ForwardTransitive | Full | FullTransitive);
        // Newest first, as Confluent reports the first version that fails.
        for old in against.iter().rev() {
            let mut messages = Vec::new();
            if backward {
                messages.extend(new.can_read(old));
            }
            if forward {
                messages.extend(old.can_read(new));
            }
            if !messages.is_empty() {
                return messages;
            }
        }
        Vec::new()
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The registry's or a subject's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    /// READONLY_OVERRIDE: read-only, set even on subjects that would otherwise not allow it.
    ReadOnlyOverride,
    /// Registrations keep the ids and versions they are given, unchecked (migrations).
    Import,
}

impl Mode {
    pub fn parse(name: &str) -> Option<Mode> {
        Some(match name.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "READONLY_OVERRIDE" => Mode::ReadOnlyOverride,
            "IMPORT" => Mode::Import,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    pub fn read_only(self) -> bool {
        matches!(self, Mode::ReadOnly | Mode::ReadOnlyOverride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro(text: &str) -> ParsedSchema {
        ParsedSchema::parse(SchemaType::Avro, text, &[]).unwrap()
    }

    fn record(fields: &str) -> ParsedSchema {
        avro(&format!(
            r#"{{"type":"record","name":"User","fields":[{fields}]}}"#
        ))
    }

    #[test]
    fn levels_pick_directions_and_versions() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        // v2 adds b with a default: reads v1 data; v1 reads v2 data (ignores b).
        let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        // v3 drops a (no default in v1/v2): v3 reads everything, but v1 and v2 cannot read v3.
        let v3 = record(r#"{"name":"b","type":"int","default":0}"#);
        // v4 adds c without a default: cannot read v3 data.
        let v4 = record(r#"{"name":"b","type":"int","default":0},{"name":"c","type":"int"}"#);
        use CompatibilityLevel::*;
        assert!(Backward.check(&v2, &[avro_copy(&v1)]).is_empty());
        assert!(Full.check(&v2, &[avro_copy(&v1)]).is_empty());
        assert!(Backward
            .check(&v3, &[avro_copy(&v1), avro_copy(&v2)])
            .is_empty());
        assert!(!Forward.check(&v3, &[avro_copy(&v2)]).is_empty());
        assert!(!Backward.check(&v4, &[avro_copy(&v3)]).is_empty());
        assert!(Forward.check(&v4, &[avro_copy(&v3)]).is_empty());
        assert!(None.check(&v4, &[avro_copy(&v3)]).is_empty());
        // Transitive levels look past the latest version: v3 reads v2's b, but FORWARD_TRANSITIVE
        // asks v1 to read v3's data (no a, which v1 needs).
        let history = [avro_copy(&v1), avro_copy(&v2)];
        let v2b = record(
            r#"{"name":"a","type":"string","default":""},{"name":"b","type":"int","default":0}"#,
        );
        assert!(Forward.check(&v3, &[avro_copy(&v2b)]).is_empty());
        assert!(!ForwardTransitive
            .check(&v3, &[avro_copy(&v1), avro_copy(&v2b)])
            .is_empty());
        assert!(!FullTransitive.check(&v3, &history).is_empty());
        assert!(Backward.check(&v1, &[]).is_empty());
        let json = ParsedSchema::parse(SchemaType::Json, r#"{"type":"string"}"#, &[]).unwrap();
        assert!(!Backward.check(&json, &[avro_copy(&v1)]).is_empty());
    }

    fn avro_copy(s: &ParsedSchema) -> ParsedSchema {
        match s {
            ParsedSchema::Avro(a) => avro(&a.text),
            _ => unreachable!(),
        }
    }

    #[test]
    fn names_round_trip() {
        for l in [
            "NONE",
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ] {
            assert_eq!(CompatibilityLevel::parse(l).unwrap().name(), l);
        }
        assert_eq!(
            CompatibilityLevel::parse("full").map(CompatibilityLevel::name),
            Some("FULL")
        );
        assert!(CompatibilityLevel::parse("SIDEWAYS").is_none());
        for m in ["READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"] {
            assert_eq!(Mode::parse(m).unwrap().name(), m);
        }
        assert_eq!(SchemaType::parse(None), Some(SchemaType::Avro));
        assert_eq!(
            SchemaType::parse(Some("protobuf")),
            Some(SchemaType::Protobuf)
        );
        assert_eq!(SchemaType::parse(Some("XML")), None);
    }

    #[test]
    fn identity_ignores_json_layout() {
        let a = SchemaContent {
            schema_type: SchemaType::Avro,
            schema: r#"{"type": "string"}"#.into(),
            references: vec![],
        };
        let b = SchemaContent {
            schema: r#"{"type":"string"}"#.into(),
            ..a.clone()
        };
        assert_eq!(a.identity(), b.identity());
    }
}
