//! A built-in schema registry (`--schema-registry-listen HOST:PORT`; off unless given): the
//! REST API of Confluent's Schema Registry that the Avro, JSON Schema and Protobuf serializers
//! use, with its schemas kept in the compacted `_schemas` topic in Confluent's record layout.
//!
//! - `rest`: the routes, Confluent's JSON shapes and error codes (`RegistryError`);
//! - `store`: the state and its records (replayed at start-up, so ids and versions are stable);
//! - `schema`: schema types, references, compatibility levels, modes; `avro`, `json_schema` and
//!   `protobuf` parse each format and decide compatibility by its rules.
//!
//! The registry is a coordinator on the broker's coordinator runtime (one shard: `_schemas` has
//! one partition): an operation looks at the state, returns the records to write and its answer;
//! the runtime appends them through the log and replays them into the state, the same replay
//! that loads the topic at start-up. Writes are therefore ordered, and an answer is only given
//! once its records are in the log.

pub mod avro;
pub mod json_schema;
pub mod protobuf;
pub mod rest;
pub mod schema;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::Broker;
use crate::coordinator::runtime::{CoordinatorResult, CoordinatorRuntime};
use schema::{CompatibilityLevel, Mode, ParsedSchema, SchemaContent, SchemaReference};
use store::{RegistryRecord, RegistryState, SchemaVersion, SCHEMAS_TOPIC};

/// References are followed this deep at most (a cycle or a very long chain is refused).
const MAX_REFERENCE_DEPTH: usize = 32;

/// A registry error, with Confluent's error code and message (the HTTP status is the code's
/// first three digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(i32),
    #[error("{0}")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotConfigured(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("{0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={0},version={1}}}.")]
    ReferenceExists(String, i32),
    #[error("{0}")]
    BadRequest(String),
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's error code (`error_code` in the answer).
    pub fn code(&self) -> u32 {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => 40401,
            VersionNotFound(_) => 40402,
            SchemaNotFound(_) => 40403,
            SubjectSoftDeleted(_) => 40404,
            SubjectNotSoftDeleted(_) => 40405,
            VersionSoftDeleted(..) => 40406,
            VersionNotSoftDeleted(..) => 40407,
            SubjectCompatibilityNotConfigured(_) => 40408,
            SubjectModeNotConfigured(_) => 40409,
            Incompatible(_) => 409,
            InvalidSchema(_) => 42201,
            InvalidVersion(_) => 42202,
            InvalidCompatibilityLevel => 42203,
            InvalidMode => 42204,
            OperationNotPermitted(_) => 42205,
            ReferenceExists(..) => 42206,
            BadRequest(_) => 400,
            Store(_) => 50001,
        }
    }

    /// The HTTP status: the code's first three digits (40401 → 404), or the code itself.
    pub fn status(&self) -> u16 {
        let code = self.code();
        let status = if code >= 10_000 { code / 100 } else { code };
        u16::try_from(status).unwrap_or(500)
    }
}

type Result<T> = std::result::Result<T, RegistryError>;

/// Which version a request names: `latest` (or -1) or a number from 1 up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Exact(i32),
}

impl VersionSpec {
    pub fn parse(s: &str) -> Result<VersionSpec> {
        match s {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            _ => match s.parse::<i32>() {
                Ok(v) if v >= 1 => Ok(VersionSpec::Exact(v)),
                _ => Err(RegistryError::InvalidVersion(s.to_string())),
            },
        }
    }
}

/// Which subjects or versions a listing shows (Confluent's LookupFilter): `deleted=true` adds
/// the soft-deleted ones, `deletedOnly=true` shows those alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Live,
    WithDeleted,
    DeletedOnly,
}

impl Lookup {
    fn shows(self, deleted: bool) -> bool {
        match self {
            Lookup::Live => !deleted,
            Lookup::WithDeleted => true,
            Lookup::DeletedOnly => deleted,
        }
    }
}

/// `deleted`: with the soft-deleted ones or without.
impl From<bool> for Lookup {
    fn from(deleted: bool) -> Lookup {
        match deleted {
            true => Lookup::WithDeleted,
            false => Lookup::Live,
        }
    }
}

/// A schema sent to register, look up or check (Confluent's RegisterSchemaRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRequest {
    pub content: SchemaContent,
    /// IMPORT mode: the id and version to keep.
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// What a compatibility check answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityResult {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

pub struct SchemaRegistry {
    broker: Arc<Broker>,
    runtime: CoordinatorRuntime<RegistryState>,
}

impl SchemaRegistry {
    /// The registry, its state replayed from `_schemas` (created, compacted, if missing).
    pub fn open(broker: Arc<Broker>) -> std::io::Result<SchemaRegistry> {
        let now = broker.clock.now_ms();
        ensure_topic(&broker, now)?;
        let runtime = CoordinatorRuntime::new(SCHEMAS_TOPIC, 1, RegistryState::new);
        let replayed = runtime.load_all(&broker.catalog, |_| {})?;
        tracing::info!(records = replayed, "schema registry loaded");
        Ok(SchemaRegistry { broker, runtime })
    }

    fn read<R>(&self, f: impl FnOnce(&RegistryState) -> Result<R>) -> Result<R> {
        self.runtime
            .read(0, f)
            .unwrap_or_else(|| Err(RegistryError::Store("the registry is not loaded".into())))
    }

    /// Runs `op` on the state; the records it returns are written to `_schemas` and replayed
    /// before its answer is given.
    fn write<R>(
        &self,
        op: impl FnOnce(&RegistryState) -> Result<(Vec<RegistryRecord>, R)>,
    ) -> Result<R> {
        let now = self.broker.clock.now_ms();
        let written = self
            .runtime
            .write(&self.broker.catalog, 0, now, |state| match op(state) {
                Ok((records, answer)) => {
                    let records = records.iter().map(RegistryRecord::encode).collect();
                    CoordinatorResult::new(records, Ok(answer))
                }
                Err(e) => CoordinatorResult::response(Err(e)),
            });
        written.unwrap_or_else(|code| {
            Err(RegistryError::Store(format!(
                "writing to {SCHEMAS_TOPIC} failed with Kafka error {code}"
            )))
        })
    }

    /// The subjects starting with `prefix`; a subject counts as deleted when all its versions
    /// are soft-deleted (Confluent's `extractUniqueSubjects`).
    pub fn subjects(&self, lookup: impl Into<Lookup>, prefix: &str) -> Result<Vec<String>> {
        let lookup = lookup.into();
        self.read(|s| {
            Ok(s.subjects
                .range(prefix.to_string()..)
                .take_while(|(name, _)| name.starts_with(prefix))
                .filter(|(_, v)| lookup.shows(v.values().all(|v| v.deleted)))
                .map(|(name, _)| name.clone())
                .collect())
        })
    }

    /// The subject's versions `lookup` shows: 40401 where the subject has none it could show
    /// (with `DeletedOnly`, where it has no version at all: an empty list is an answer then).
    pub fn versions(&self, subject: &str, lookup: impl Into<Lookup>) -> Result<Vec<i32>> {
        let lookup = lookup.into();
        self.read(|s| {
            let exists = versions_of(s, subject, lookup != Lookup::Live)
                .next()
                .is_some();
            if !exists {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            Ok(versions_of(s, subject, true)
                .filter(|v| lookup.shows(v.deleted))
                .map(|v| v.version)
                .collect())
        })
    }

    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SchemaVersion> {
        self.read(|s| find_version(s, subject, spec, deleted).cloned())
    }

    /// The schema with id `id` (soft-deleted versions still hold it).
    pub fn schema_by_id(&self, id: i32) -> Result<SchemaContent> {
        self.read(|s| {
            s.holders(id)
                .first()
                .map(|v| v.content.clone())
                .ok_or_else(|| RegistryError::SchemaNotFound(format!("Schema {id} not found")))
        })
    }

    /// GET /schemas: the versions of the subjects starting with `prefix` (soft-deleted ones too
    /// with `deleted`; only each subject's newest with `latest_only`), by subject and version,
    /// the first `skip` left out and at most `take` given.
    pub fn schemas(
        &self,
        prefix: &str,
        deleted: bool,
        latest_only: bool,
        skip: usize,
        take: usize,
    ) -> Result<Vec<SchemaVersion>> {
        self.read(|s| {
            let matching = s
                .subjects
                .range(prefix.to_string()..)
                .take_while(|(name, _)| name.starts_with(prefix))
                .flat_map(|(_, versions)| {
                    let shown = versions.values().filter(move |v| deleted || !v.deleted);
                    let older = match latest_only {
                        true => shown.clone().count().saturating_sub(1),
                        false => 0,
                    };
                    shown.skip(older)
                });
            Ok(matching.skip(skip).take(take).cloned().collect())
        })
    }

    /// The largest id given so far (0 before the first), for `fetchMaxId`.
    pub fn max_id(&self) -> Result<i32> {
        self.read(|s| Ok(s.max_id))
    }

    /// The Kafka cluster id of the broker the registry keeps its topic on.
    pub fn cluster_id(&self) -> &str {
        &self.broker.cluster_id
    }

    /// The subject versions holding `id`.
    pub fn id_versions(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>> {
        self.read(|s| {
            let holders = s.holders(id);
            if holders.is_empty() {
                return Err(RegistryError::SchemaNotFound(format!(
                    "Schema {id} not found"
                )));
            }
            Ok(holders
                .into_iter()
                .filter(|v| deleted || !v.deleted)
                .map(|v| (v.subject.clone(), v.version))
                .collect())
        })
    }

    /// The ids of live schemas that reference `subject`'s version.
    pub fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<i32>> {
        self.read(|s| {
            let v = find_version(s, subject, spec, false)?;
            Ok(referrers(s, subject, v.version))
        })
    }

    /// POST /subjects/{s}/versions: the id of the schema, registered as the subject's next
    /// version unless the subject already has it.
    pub fn register(&self, subject: &str, req: SchemaRequest, normalize: bool) -> Result<i32> {
        self.write(|s| {
            let mode = effective_mode(s, subject);
            if mode.read_only() {
                return Err(read_only(subject));
            }
            if req.id.is_some() && mode != Mode::Import {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {subject} is not in import mode"
                )));
            }
            let parsed = parse(s, &req.content)?;
            let mut content = req.content.clone();
            if normalize {
                content.schema = parsed.normalized(&content.schema);
            }
            let identity = content.identity();
            let existing =
                versions_of(s, subject, false).find(|v| v.content.identity() == identity);
            if let Some(v) = existing {
                return Ok((Vec::new(), v.id));
            }
            if mode != Mode::Import {
                let previous: Vec<ParsedSchema> = versions_of(s, subject, false)
                    .filter_map(|v| parse(s, &v.content).ok())
                    .collect();
                let level = effective_level(s, subject);
                let messages = level.check(&parsed, &previous);
                if !messages.is_empty() {
                    return Err(incompatible(subject, level, &messages));
                }
            }
            let id = match req.id {
                Some(id) => {
                    let taken = s
                        .holders(id)
                        .into_iter()
                        .any(|v| v.content.identity() != identity);
                    if taken {
                        return Err(RegistryError::OperationNotPermitted(format!(
                            "Overwrite new schema with id {id} is not permitted."
                        )));
                    }
                    id
                }
                None => match s.id_of(&content) {
                    Some(id) => id,
                    None => s
                        .max_id
                        .checked_add(1)
                        .ok_or_else(|| RegistryError::Store("schema ids are exhausted".into()))?,
                },
            };
            let latest = s
                .subjects
                .get(subject)
                .and_then(|v| v.keys().next_back().copied())
                .unwrap_or(0);
            let version = match req.version {
                Some(v) if v >= 1 => v,
                _ => latest.checked_add(1).ok_or_else(|| {
                    RegistryError::Store("the subject's versions are exhausted".into())
                })?,
            };
            let value = SchemaVersion {
                subject: subject.to_string(),
                version,
                id,
                content,
                deleted: false,
            };
            let record = RegistryRecord::Schema {
                subject: subject.to_string(),
                version,
                value: Some(value),
            };
            Ok((vec![record], id))
        })
    }

    /// POST /subjects/{s}: the subject's version with this schema.
    pub fn lookup(
        &self,
        subject: &str,
        req: &SchemaRequest,
        normalize: bool,
        deleted: bool,
    ) -> Result<SchemaVersion> {
        self.read(|s| {
            if versions_of(s, subject, deleted).next().is_none() {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            let mut content = req.content.clone();
            if normalize {
                let parsed = parse(s, &content)?;
                content.schema = parsed.normalized(&content.schema);
            }
            let identity = content.identity();
            versions_of(s, subject, deleted)
                .filter(|v| v.content.identity() == identity)
                .last()
                .cloned()
                .ok_or_else(|| RegistryError::SchemaNotFound("Schema not found".into()))
        })
    }

    /// POST /compatibility/subjects/{s}/versions[/{v}]: `version` None checks against what the
    /// subject's level asks for; a version checks against that one version.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        req: &SchemaRequest,
    ) -> Result<CompatibilityResult> {
        self.read(|s| {
            let parsed = parse(s, &req.content)?;
            let level = effective_level(s, subject);
            let against: Vec<&SchemaVersion> = match version {
                None => versions_of(s, subject, false).collect(),
                Some(VersionSpec::Latest) => {
                    versions_of(s, subject, false).last().into_iter().collect()
                }
                // Confluent looks the version up alone: where it is missing, also because the
                // subject is, the answer is 40402 (not 40401 as for GET .../versions/{v}).
                Some(VersionSpec::Exact(n)) => vec![versions_of(s, subject, false)
                    .find(|v| v.version == n)
                    .ok_or(RegistryError::VersionNotFound(n))?],
            };
            let previous: Vec<ParsedSchema> = against
                .iter()
                .filter_map(|v| parse(s, &v.content).ok())
                .collect();
            let messages = level.check(&parsed, &previous);
            Ok(CompatibilityResult {
                is_compatible: messages.is_empty(),
                messages,
            })
        })
    }

    /// DELETE /subjects/{s}/versions/{v}: the version deleted.
    pub fn delete_version(&self, subject: &str, spec: VersionSpec, permanent: bool) -> Result<i32> {
        self.write(|s| {
            if effective_mode(s, subject).read_only() {
                return Err(read_only(subject));
            }
            // A numbered version is found soft-deleted or not (to say which it is); `latest`
            // is the latest live one, or for a hard delete the latest of all.
            let deleted = permanent || matches!(spec, VersionSpec::Exact(_));
            let v = find_version(s, subject, spec, deleted)?;
            if !referrers(s, subject, v.version).is_empty() {
                return Err(RegistryError::ReferenceExists(
                    subject.to_string(),
                    v.version,
                ));
            }
            let value = match (permanent, v.deleted) {
                (true, false) => {
                    return Err(RegistryError::VersionNotSoftDeleted(
                        subject.to_string(),
                        v.version,
                    ))
                }
                (false, true) => {
                    return Err(RegistryError::VersionSoftDeleted(
                        subject.to_string(),
                        v.version,
                    ))
                }
                (true, true) => None,
                (false, false) => Some(SchemaVersion {
                    deleted: true,
                    ..v.clone()
                }),
            };
            let record = RegistryRecord::Schema {
                subject: subject.to_string(),
                version: v.version,
                value,
            };
            Ok((vec![record], v.version))
        })
    }

    /// DELETE /subjects/{s}: the versions deleted. A soft delete also drops the subject's
    /// compatibility level and mode, as Confluent's does.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        self.write(|s| {
            if effective_mode(s, subject).read_only() {
                return Err(read_only(subject));
            }
            let all: Vec<&SchemaVersion> = versions_of(s, subject, true).collect();
            if all.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            for v in &all {
                if !referrers(s, subject, v.version).is_empty() {
                    return Err(RegistryError::ReferenceExists(
                        subject.to_string(),
                        v.version,
                    ));
                }
            }
            let live: Vec<&SchemaVersion> = all.iter().copied().filter(|v| !v.deleted).collect();
            let mut records = Vec::new();
            let deleted = if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
                }
                for v in &all {
                    records.push(RegistryRecord::Schema {
                        subject: subject.to_string(),
                        version: v.version,
                        value: None,
                    });
                }
                all.iter().map(|v| v.version).collect()
            } else {
                let Some(last) = live.last() else {
                    return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
                };
                records.push(RegistryRecord::DeleteSubject {
                    subject: subject.to_string(),
                    version: last.version,
                });
                live.iter().map(|v| v.version).collect()
            };
            let key = Some(subject.to_string());
            if s.config.contains_key(&key) {
                records.push(RegistryRecord::Config {
                    subject: key.clone(),
                    level: None,
                });
            }
            if s.mode.contains_key(&key) {
                records.push(RegistryRecord::Mode {
                    subject: key,
                    mode: None,
                });
            }
            Ok((records, deleted))
        })
    }

    /// GET /config[/{s}]: the level set there; a subject without one answers 40408 unless
    /// `default_to_global`.
    pub fn config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<CompatibilityLevel> {
        self.read(|s| match subject {
            None => Ok(global_level(s)),
            Some(name) => match s.config.get(&Some(name.to_string())) {
                Some(l) => Ok(*l),
                None if default_to_global => Ok(global_level(s)),
                None => Err(RegistryError::SubjectCompatibilityNotConfigured(
                    name.to_string(),
                )),
            },
        })
    }

    pub fn set_config(&self, subject: Option<&str>, level: CompatibilityLevel) -> Result<()> {
        self.write(|s| {
            if let Some(name) = subject {
                if effective_mode(s, name).read_only() {
                    return Err(read_only(name));
                }
            }
            let record = RegistryRecord::Config {
                subject: subject.map(String::from),
                level: Some(level),
            };
            Ok((vec![record], ()))
        })
    }

    /// DELETE /config[/{s}]: the level that was set (the global one returns to BACKWARD).
    pub fn delete_config(&self, subject: Option<&str>) -> Result<CompatibilityLevel> {
        self.write(|s| {
            let key = subject.map(String::from);
            let previous = match (subject, s.config.get(&key)) {
                (_, Some(l)) => *l,
                (None, None) => CompatibilityLevel::DEFAULT,
                (Some(name), None) => {
                    if versions_of(s, name, true).next().is_none() {
                        return Err(RegistryError::SubjectNotFound(name.to_string()));
                    }
                    return Err(RegistryError::SubjectCompatibilityNotConfigured(
                        name.to_string(),
                    ));
                }
            };
            let record = RegistryRecord::Config {
                subject: key,
                level: None,
            };
            Ok((vec![record], previous))
        })
    }

    pub fn mode(&self, subject: Option<&str>, default_to_global: bool) -> Result<Mode> {
        self.read(|s| match subject {
            None => Ok(global_mode(s)),
            Some(name) => match s.mode.get(&Some(name.to_string())) {
                Some(m) => Ok(*m),
                None if default_to_global => Ok(global_mode(s)),
                None => Err(RegistryError::SubjectModeNotConfigured(name.to_string())),
            },
        })
    }

    /// PUT /mode[/{s}]: IMPORT needs the registry (or the subject) empty unless `force`, as
    /// Confluent's (ids and versions kept by an import must not collide with existing ones).
    pub fn set_mode(&self, subject: Option<&str>, mode: Mode, force: bool) -> Result<()> {
        self.write(|s| {
            if mode == Mode::Import && !force {
                let occupied = match subject {
                    None => s.live().next().is_some(),
                    Some(name) => versions_of(s, name, false).next().is_some(),
                };
                if occupied {
                    return Err(RegistryError::OperationNotPermitted(
                        "Cannot import since found existing subjects".into(),
                    ));
                }
            }
            let record = RegistryRecord::Mode {
                subject: subject.map(String::from),
                mode: Some(mode),
            };
            Ok((vec![record], ()))
        })
    }

    /// DELETE /mode/{s}: the mode that was set.
    pub fn delete_mode(&self, subject: &str) -> Result<Mode> {
        self.write(|s| {
            let key = Some(subject.to_string());
            let Some(previous) = s.mode.get(&key).copied() else {
                return Err(RegistryError::SubjectModeNotConfigured(subject.to_string()));
            };
            let record = RegistryRecord::Mode {
                subject: key,
                mode: None,
            };
            Ok((vec![record], previous))
        })
    }

    /// The text of a schema for `format=serialized`: a Protobuf schema as a base64
    /// FileDescriptorProto; other formats (and anything that does not parse) unchanged.
    pub fn formatted(&self, content: &SchemaContent, format: Option<&str>) -> String {
        if format != Some("serialized") || content.schema_type != schema::SchemaType::Protobuf {
            return content.schema.clone();
        }
        protobuf::ProtobufSchema::parse(&content.schema)
            .map_or_else(|_| content.schema.clone(), |p| p.serialized())
    }
}

/// Creates `_schemas` as Confluent's KafkaStore does: one partition, compacted, replicated on
/// up to three brokers.
fn ensure_topic(broker: &Broker, now: i64) -> std::io::Result<()> {
    let catalog = &broker.catalog;
    if catalog.get(SCHEMAS_TOPIC).is_some() {
        return Ok(());
    }
    let live = catalog.brokers().values().filter(|b| !b.fenced).count();
    let replication = crate::metadata::INTERNAL_TOPIC_REPLICATION_FACTOR
        .min(i16::try_from(live).unwrap_or(i16::MAX).max(1));
    let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    match catalog.create(SCHEMAS_TOPIC, 1, replication, configs, now) {
        Ok(_) | Err(crate::metadata::CreateTopicError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(std::io::Error::other(format!(
            "cannot create {SCHEMAS_TOPIC}: {e}"
        ))),
    }
}

fn versions_of<'a>(
    s: &'a RegistryState,
    subject: &str,
    deleted: bool,
) -> impl Iterator<Item = &'a SchemaVersion> {
    s.subjects
        .get(subject)
        .into_iter()
        .flat_map(|v| v.values())
        .filter(move |v| deleted || !v.deleted)
}

fn find_version<'a>(
    s: &'a RegistryState,
    subject: &str,
    spec: VersionSpec,
    deleted: bool,
) -> Result<&'a SchemaVersion> {
    let mut versions = versions_of(s, subject, deleted).peekable();
    if versions.peek().is_none() {
        return Err(RegistryError::SubjectNotFound(subject.to_string()));
    }
    match spec {
        VersionSpec::Latest => versions.last().ok_or(RegistryError::VersionNotFound(-1)),
        VersionSpec::Exact(n) => versions
            .find(|v| v.version == n)
            .ok_or(RegistryError::VersionNotFound(n)),
    }
}

/// The ids of live versions that reference `subject`'s `version`.
fn referrers(s: &RegistryState, subject: &str, version: i32) -> Vec<i32> {
    let mut ids: Vec<i32> = s
        .live()
        .filter(|v| {
            v.content
                .references
                .iter()
                .any(|r| r.subject == subject && r.version == version)
        })
        .map(|v| v.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A subject's setting, else the global one, else `default`.
fn effective<T: Copy>(
    settings: &BTreeMap<Option<String>, T>,
    subject: Option<&str>,
    default: T,
) -> T {
    subject
        .and_then(|name| settings.get(&Some(name.to_string())))
        .or_else(|| settings.get(&None))
        .copied()
        .unwrap_or(default)
}

fn global_level(s: &RegistryState) -> CompatibilityLevel {
    effective(&s.config, None, CompatibilityLevel::DEFAULT)
}

fn effective_level(s: &RegistryState, subject: &str) -> CompatibilityLevel {
    effective(&s.config, Some(subject), CompatibilityLevel::DEFAULT)
}

fn global_mode(s: &RegistryState) -> Mode {
    effective(&s.mode, None, Mode::ReadWrite)
}

fn effective_mode(s: &RegistryState, subject: &str) -> Mode {
    effective(&s.mode, Some(subject), Mode::ReadWrite)
}

fn read_only(subject: &str) -> RegistryError {
    RegistryError::OperationNotPermitted(format!("Subject {subject} is in read-only mode"))
}

fn incompatible(subject: &str, level: CompatibilityLevel, messages: &[String]) -> RegistryError {
    RegistryError::Incompatible(format!(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}, {{compatibility: '{level}'}}]",
        messages.join(", ")
    ))
}

/// Parses a schema with its references resolved (their texts, depth first, each once).
fn parse(s: &RegistryState, content: &SchemaContent) -> Result<ParsedSchema> {
    let mut texts = Vec::new();
    let mut seen = Vec::new();
    resolve(s, &content.references, 0, &mut seen, &mut texts)?;
    ParsedSchema::parse(content.schema_type, &content.schema, &texts)
        .map_err(RegistryError::InvalidSchema)
}

fn resolve(
    s: &RegistryState,
    refs: &[SchemaReference],
    depth: usize,
    seen: &mut Vec<(String, i32)>,
    texts: &mut Vec<String>,
) -> Result<()> {
    if depth > MAX_REFERENCE_DEPTH {
        return Err(RegistryError::InvalidSchema(
            "references are nested too deeply".into(),
        ));
    }
    for r in refs {
        let key = (r.subject.clone(), r.version);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let spec = if r.version == -1 {
            VersionSpec::Latest
        } else {
            VersionSpec::Exact(r.version)
        };
        let v = find_version(s, &r.subject, spec, false).map_err(|_| {
            RegistryError::InvalidSchema(format!(
                "Invalid schema: reference {} (subject {}, version {}) not found",
                r.name, r.subject, r.version
            ))
        })?;
        resolve(s, &v.content.references, depth + 1, seen, texts)?;
        texts.push(v.content.schema.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
