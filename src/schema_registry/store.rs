//! The registry's state and its records in the `_schemas` topic, in the layout Confluent's
//! registry writes (one partition, `cleanup.policy=compact`; keys and values are JSON, the keys'
//! fields always in the order below so that compaction sees one key per subject/version):
//!
//! | key                                                                   | value                                                                                               |
//! |-----------------------------------------------------------------------|-----------------------------------------------------------------------------------------------------|
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}`              | `{"subject":S,"version":V,"id":I,"schemaType":T,"references":[..],"schema":"...","deleted":false}`; null: hard-deleted |
//! | `{"keytype":"CONFIG","subject":S or null,"magic":0}`                  | `{"compatibilityLevel":"FULL"}`; null: the setting removed                                           |
//! | `{"keytype":"MODE","subject":S or null,"magic":0}`                    | `{"mode":"READONLY"}`; null: removed                                                                |
//! | `{"keytype":"DELETE_SUBJECT","subject":S,"magic":0}`                  | `{"subject":S,"version":V}`: versions up to V soft-deleted                                          |
//! | `{"keytype":"CLEAR_SUBJECT","subject":S,"magic":0}`                   | `{"subject":S}`: the subject's hard-deleted versions forgotten                                      |
//! | `{"keytype":"NOOP","magic":0}`                                        | ignored                                                                                             |
//!
//! `schemaType` is left out for AVRO and `references` when empty, as Confluent leaves them out.
//! The state is rebuilt by replaying these records (the coordinator runtime's load), so ids and
//! versions are the same after a restart. Records that do not parse are skipped, as Confluent's
//! reader skips them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use serde_json::{json, Value};

use super::schema::{CompatibilityLevel, Mode, SchemaContent, SchemaReference, SchemaType};
use crate::coordinator::runtime::{CoordinatorRecord, CoordinatorShard, RecordContext};

/// The topic Confluent's registry keeps its schemas in (kafkastore.topic).
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub content: SchemaContent,
    /// Soft-deleted: hidden unless asked for (`deleted=true`), still readable by id.
    pub deleted: bool,
}

/// One record of `_schemas`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryRecord {
    /// `value` None: the version is hard-deleted (a tombstone).
    Schema {
        subject: String,
        version: i32,
        value: Option<SchemaVersion>,
    },
    /// `subject` None: the global setting; `level` None: removed.
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    Mode {
        subject: Option<String>,
        mode: Option<Mode>,
    },
    DeleteSubject {
        subject: String,
        version: i32,
    },
    ClearSubject {
        subject: String,
    },
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn subject_json(subject: &Option<String>) -> String {
    subject.as_deref().map_or("null".to_string(), quote)
}

impl RegistryRecord {
    pub fn encode(&self) -> CoordinatorRecord {
        let (key, value) = match self {
            RegistryRecord::Schema {
                subject,
                version,
                value,
            } => (
                format!(
                    r#"{{"keytype":"SCHEMA","subject":{},"version":{version},"magic":1}}"#,
                    quote(subject)
                ),
                value.as_ref().map(schema_value),
            ),
            RegistryRecord::Config { subject, level } => (
                format!(
                    r#"{{"keytype":"CONFIG","subject":{},"magic":0}}"#,
                    subject_json(subject)
                ),
                level.map(|l| json!({"compatibilityLevel": l.name()})),
            ),
            RegistryRecord::Mode { subject, mode } => (
                format!(
                    r#"{{"keytype":"MODE","subject":{},"magic":0}}"#,
                    subject_json(subject)
                ),
                mode.map(|m| json!({"mode": m.name()})),
            ),
            RegistryRecord::DeleteSubject { subject, version } => (
                format!(
                    r#"{{"keytype":"DELETE_SUBJECT","subject":{},"magic":0}}"#,
                    quote(subject)
                ),
                Some(json!({"subject": subject, "version": version})),
            ),
            RegistryRecord::ClearSubject { subject } => (
                format!(
                    r#"{{"keytype":"CLEAR_SUBJECT","subject":{},"magic":0}}"#,
                    quote(subject)
                ),
                Some(json!({ "subject": subject })),
            ),
        };
        CoordinatorRecord::new(Bytes::from(key), value.map(|v| Bytes::from(v.to_string())))
    }

    /// The record, or `None` for a NOOP or anything this registry does not understand.
    pub fn decode(record: &CoordinatorRecord) -> Option<RegistryRecord> {
        let key: Value = serde_json::from_slice(&record.key).ok()?;
        let value: Option<Value> = match &record.value {
            Some(v) => Some(serde_json::from_slice(v).ok()?),
            None => None,
        };
        let subject = key.get("subject").and_then(Value::as_str).map(String::from);
        let field = |name: &str| value.as_ref().and_then(|v| v.get(name));
        match key.get("keytype")?.as_str()? {
            "SCHEMA" => {
                let subject = subject?;
                let version = i32::try_from(key.get("version")?.as_i64()?).ok()?;
                let value = match &value {
                    None => None,
                    Some(v) => Some(decode_schema_value(&subject, version, v)?),
                };
                Some(RegistryRecord::Schema {
                    subject,
                    version,
                    value,
                })
            }
            "CONFIG" => Some(RegistryRecord::Config {
                subject,
                level: setting(
                    value.as_ref(),
                    "compatibilityLevel",
                    CompatibilityLevel::parse,
                )?,
            }),
            "MODE" => Some(RegistryRecord::Mode {
                subject,
                mode: setting(value.as_ref(), "mode", Mode::parse)?,
            }),
            "DELETE_SUBJECT" => Some(RegistryRecord::DeleteSubject {
                subject: subject?,
                version: i32::try_from(field("version")?.as_i64()?).ok()?,
            }),
            "CLEAR_SUBJECT" => Some(RegistryRecord::ClearSubject { subject: subject? }),
            _ => None,
        }
    }
}

/// A CONFIG or MODE value's setting: `Some(None)` for a tombstone (the setting removed), `None`
/// for a value that does not parse.
fn setting<T>(
    value: Option<&Value>,
    field: &str,
    parse: fn(&str) -> Option<T>,
) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(v) => Some(Some(parse(v.get(field)?.as_str()?)?)),
    }
}

/// Sets a subject's (or the global) setting, or removes it.
fn set<T>(settings: &mut BTreeMap<Option<String>, T>, subject: Option<String>, value: Option<T>) {
    match value {
        Some(v) => settings.insert(subject, v),
        None => settings.remove(&subject),
    };
}

fn schema_value(v: &SchemaVersion) -> Value {
    let mut value = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": v.content.schema,
        "deleted": v.deleted,
    });
    if v.content.schema_type != SchemaType::Avro {
        value["schemaType"] = json!(v.content.schema_type.name());
    }
    if !v.content.references.is_empty() {
        let refs: Vec<Value> = v.content.references.iter().map(|r| r.to_json()).collect();
        value["references"] = Value::Array(refs);
    }
    value
}

fn decode_schema_value(subject: &str, version: i32, v: &Value) -> Option<SchemaVersion> {
    let schema_type = SchemaType::parse(v.get("schemaType").and_then(Value::as_str))?;
    let references = match v.get("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(refs) => refs
            .as_array()?
            .iter()
            .map(SchemaReference::from_json)
            .collect::<Option<Vec<_>>>()?,
    };
    Some(SchemaVersion {
        subject: subject.to_string(),
        version,
        id: i32::try_from(v.get("id")?.as_i64()?).ok()?,
        content: SchemaContent {
            schema_type,
            schema: v.get("schema")?.as_str()?.to_string(),
            references,
        },
        deleted: v.get("deleted").and_then(Value::as_bool).unwrap_or(false),
    })
}

type Identity = (SchemaType, String, Vec<SchemaReference>);

/// Everything the registry knows, rebuilt from `_schemas` (Confluent's lookup cache).
#[derive(Debug, Default)]
pub struct RegistryState {
    pub subjects: BTreeMap<String, BTreeMap<i32, SchemaVersion>>,
    /// The subject versions that hold each id.
    by_id: BTreeMap<i32, BTreeSet<(String, i32)>>,
    /// The id each schema content has (the same content under any subject has one id).
    ids: HashMap<Identity, i32>,
    /// The largest id seen: new ids are above it.
    pub max_id: i32,
    /// Compatibility levels by subject; `None`: the global one.
    pub config: BTreeMap<Option<String>, CompatibilityLevel>,
    pub mode: BTreeMap<Option<String>, Mode>,
}

impl RegistryState {
    pub fn new() -> RegistryState {
        RegistryState::default()
    }

    pub fn apply(&mut self, record: RegistryRecord) {
        match record {
            RegistryRecord::Schema {
                subject,
                version,
                value,
            } => {
                self.remove_version(&subject, version);
                if let Some(v) = value {
                    self.max_id = self.max_id.max(v.id);
                    self.ids.insert(v.content.identity(), v.id);
                    self.by_id
                        .entry(v.id)
                        .or_default()
                        .insert((subject.clone(), version));
                    self.subjects.entry(subject).or_default().insert(version, v);
                }
            }
            RegistryRecord::Config { subject, level } => set(&mut self.config, subject, level),
            RegistryRecord::Mode { subject, mode } => set(&mut self.mode, subject, mode),
            RegistryRecord::DeleteSubject { subject, version } => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for v in versions.range_mut(..=version) {
                        v.1.deleted = true;
                    }
                }
            }
            RegistryRecord::ClearSubject { subject } => {
                let versions: Vec<i32> = self
                    .subjects
                    .get(&subject)
                    .map(|v| v.keys().copied().collect())
                    .unwrap_or_default();
                for version in versions {
                    self.remove_version(&subject, version);
                }
            }
        }
    }

    fn remove_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        let Some(old) = versions.remove(&version) else {
            return;
        };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        if let Some(holders) = self.by_id.get_mut(&old.id) {
            holders.remove(&(subject.to_string(), version));
            if holders.is_empty() {
                self.by_id.remove(&old.id);
                self.ids.remove(&old.content.identity());
            }
        }
    }

    /// The id of a content already registered anywhere.
    pub fn id_of(&self, content: &SchemaContent) -> Option<i32> {
        self.ids.get(&content.identity()).copied()
    }

    /// The subject versions holding `id`, soft-deleted ones too.
    pub fn holders(&self, id: i32) -> Vec<&SchemaVersion> {
        self.by_id
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|(s, v)| self.subjects.get(s)?.get(v))
            .collect()
    }

    /// The live (not soft-deleted) versions, every subject.
    pub fn live(&self) -> impl Iterator<Item = &SchemaVersion> {
        self.subjects
            .values()
            .flat_map(|v| v.values())
            .filter(|v| !v.deleted)
    }
}

impl CoordinatorShard for RegistryState {
    fn replay(&mut self, _at: RecordContext, record: &CoordinatorRecord) {
        if let Some(r) = RegistryRecord::decode(record) {
            self.apply(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(subject: &str, version: i32, id: i32, schema: &str) -> SchemaVersion {
        SchemaVersion {
            subject: subject.into(),
            version,
            id,
            content: SchemaContent {
                schema_type: SchemaType::Avro,
                schema: schema.into(),
                references: vec![],
            },
            deleted: false,
        }
    }

    fn schema(v: SchemaVersion) -> RegistryRecord {
        RegistryRecord::Schema {
            subject: v.subject.clone(),
            version: v.version,
            value: Some(v),
        }
    }

    #[test]
    fn records_in_confluents_layout_round_trip() {
        let mut v = version("t-value", 2, 7, r#"{"type":"string"}"#);
        v.content.schema_type = SchemaType::Protobuf;
        v.content.references = vec![SchemaReference {
            name: "other.proto".into(),
            subject: "other".into(),
            version: 1,
        }];
        let r = schema(v);
        let encoded = r.encode();
        assert_eq!(
            &encoded.key[..],
            br#"{"keytype":"SCHEMA","subject":"t-value","version":2,"magic":1}"#
        );
        let value: Value = serde_json::from_slice(encoded.value.as_ref().unwrap()).unwrap();
        assert_eq!(value["schemaType"], "PROTOBUF");
        assert_eq!(value["id"], 7);
        assert_eq!(value["deleted"], false);
        assert_eq!(RegistryRecord::decode(&encoded), Some(r));
        let global = RegistryRecord::Config {
            subject: None,
            level: Some(CompatibilityLevel::Full),
        };
        let encoded = global.encode();
        assert_eq!(
            &encoded.key[..],
            br#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            &encoded.value.clone().unwrap()[..],
            br#"{"compatibilityLevel":"FULL"}"#
        );
        assert_eq!(RegistryRecord::decode(&encoded), Some(global));
        for r in [
            RegistryRecord::Mode {
                subject: Some("s".into()),
                mode: Some(Mode::ReadOnly),
            },
            RegistryRecord::Mode {
                subject: None,
                mode: None,
            },
            RegistryRecord::DeleteSubject {
                subject: "s".into(),
                version: 3,
            },
            RegistryRecord::ClearSubject {
                subject: "s".into(),
            },
            RegistryRecord::Schema {
                subject: "s".into(),
                version: 1,
                value: None,
            },
        ] {
            assert_eq!(RegistryRecord::decode(&r.encode()), Some(r));
        }
        let noop =
            CoordinatorRecord::new(Bytes::from_static(br#"{"keytype":"NOOP","magic":0}"#), None);
        assert_eq!(RegistryRecord::decode(&noop), None);
        let junk = CoordinatorRecord::new(Bytes::from_static(b"\xff"), None);
        assert_eq!(RegistryRecord::decode(&junk), None);
    }

    #[test]
    fn replay_tracks_ids_deletes_and_clears() {
        let mut s = RegistryState::new();
        s.apply(schema(version("a", 1, 1, r#""string""#)));
        s.apply(schema(version("b", 1, 1, r#""string""#)));
        s.apply(schema(version("a", 2, 2, r#""int""#)));
        assert_eq!(s.max_id, 2);
        assert_eq!(s.holders(1).len(), 2);
        assert_eq!(
            s.id_of(&version("x", 1, 0, r#" "string" "#).content),
            Some(1)
        );
        s.apply(RegistryRecord::DeleteSubject {
            subject: "a".into(),
            version: 2,
        });
        assert_eq!(s.live().count(), 1);
        // Hard-deleting a's versions leaves id 1 with b; id 2's content is forgotten.
        for version in [1, 2] {
            s.apply(RegistryRecord::Schema {
                subject: "a".into(),
                version,
                value: None,
            });
        }
        assert!(!s.subjects.contains_key("a"));
        assert_eq!(s.holders(1).len(), 1);
        assert_eq!(s.id_of(&version("x", 1, 0, r#""int""#).content), None);
        assert_eq!(s.max_id, 2, "ids are not reused");
        s.apply(RegistryRecord::ClearSubject {
            subject: "b".into(),
        });
        assert!(s.subjects.is_empty() && s.holders(1).is_empty());
    }
}
