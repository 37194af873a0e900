//! Fault injection for tests (`POST/GET/DELETE /v1/faults`): rules that make chosen requests
//! fail the way production fails, so a client's error paths, retries and idempotence can be
//! tested against real Kafka semantics underneath.
//!
//! A rule is a JSON object; every field but `action` is optional:
//!
//! ```json
//! {"api": "Produce", "min_version": 3, "max_version": 13, "topic": "orders", "partition": 0,
//!  "group": "g", "transactional_id": "t", "client_id": "app", "broker": 1,
//!  "skip": 0, "times": 1, "probability": 0.5, "seed": 42,
//!  "action": "error", "error": "NOT_LEADER_OR_FOLLOWER"}
//! ```
//!
//! - matching: `api` by name (as Kafka spells it, any case) or key; the version range; a topic
//!   (and partition), group or transactional id the request names (`protocol::named`); the
//!   client id; the broker (node id) the request was sent to;
//! - which matching calls fire: the first `skip` pass, then at most `times` fire (unlimited when
//!   absent), each with `probability` (1 when absent) drawn from a generator seeded by `seed`
//!   (the rule's id when absent), so a run is repeatable;
//! - `action`: `error` answers the whole request with the Kafka error `error` (a name or a code)
//!   as Kafka's `getErrorResponse` would (`protocol::error_response`); `delay` answers `delay_ms`
//!   late (the request runs at once); `close_before` closes the connection without running the
//!   request; `close_after` runs it and closes instead of answering (the write happens, the
//!   answer is lost); `black_hole` never answers this request or any after it on the connection,
//!   until the client closes it.
//!
//! Rules are tried in the order they were armed; the first that fires decides. Every rule a
//! request matches counts it, up to the one that fires. With no rule armed the request path pays
//! one atomic load (`armed`).
//!
//! A storage rule (`"storage"`: `write`, `sync` or `any`) matches the writes or fsyncs of a
//! partition's segment files instead of requests (`topic` and `partition` narrow it; the other
//! matching fields are refused), with the same `skip`, `times` and `probability`; its action is
//! `delay`: the operation waits `delay_ms` on the thread that does it, then succeeds (a slow
//! disk; `log::storage::FaultyStorage` asks these rules through `StorageFaultRules`):
//!
//! ```json
//! {"storage": "any", "topic": "orders", "partition": 0, "action": "delay", "delay_ms": 50}
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use crate::log::storage::{Fault, StorageFaultRules, StorageOp};
use crate::protocol::{apis, error_response, errors, named::Named};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Error(i16),
    Delay(Duration),
    CloseBefore,
    CloseAfter,
    BlackHole,
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::Error(code) => format!("error {}", errors::name_of(*code)),
            Action::Delay(d) => format!("delay {}ms", d.as_millis()),
            Action::CloseBefore => "close_before".into(),
            Action::CloseAfter => "close_after".into(),
            Action::BlackHole => "black_hole".into(),
        }
    }
}

/// The request a rule is matched against.
pub struct Call<'a> {
    pub api: ApiKey,
    pub version: i16,
    pub client_id: &'a str,
    pub broker: i32,
    pub named: &'a Named,
}

/// A rule that fired on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub rule: u64,
    pub action: Action,
}

#[derive(Debug, Default, Clone)]
struct Match {
    api: Option<ApiKey>,
    min_version: Option<i16>,
    max_version: Option<i16>,
    topic: Option<String>,
    partition: Option<i32>,
    group: Option<String>,
    transactional_id: Option<String>,
    client_id: Option<String>,
    broker: Option<i32>,
}

impl Match {
    fn matches(&self, c: &Call<'_>) -> bool {
        let topic_ok = match (&self.topic, self.partition) {
            (None, None) => true,
            (t, p) => c.named.topics.iter().any(|(name, parts)| {
                t.as_ref().is_none_or(|t| t == name) && p.is_none_or(|p| parts.contains(&p))
            }),
        };
        self.api.is_none_or(|a| a == c.api)
            && self.min_version.is_none_or(|v| c.version >= v)
            && self.max_version.is_none_or(|v| c.version <= v)
            && topic_ok
            && self
                .group
                .as_ref()
                .is_none_or(|g| c.named.groups.contains(g))
            && (self.transactional_id.as_ref())
                .is_none_or(|t| c.named.transactional_ids.contains(t))
            && self.client_id.as_ref().is_none_or(|id| id == c.client_id)
            && self.broker.is_none_or(|b| b == c.broker)
    }
}

/// What a storage rule matches: which operations (`None`: writes and fsyncs) of which
/// partitions' segment files.
#[derive(Debug, Clone)]
struct StorageMatch {
    op: Option<StorageOp>,
    topic: Option<String>,
    partition: Option<i32>,
}

impl StorageMatch {
    fn matches(&self, op: StorageOp, topic: &str, partition: i32) -> bool {
        self.op.is_none_or(|o| o == op)
            && self.topic.as_ref().is_none_or(|t| t == topic)
            && self.partition.is_none_or(|p| p == partition)
    }
}

/// What a rule matches: requests, or storage operations.
#[derive(Debug, Clone)]
enum Target {
    Request(Match),
    Storage(StorageMatch),
}

struct Rule {
    id: u64,
    spec: Value,
    matcher: Target,
    skip: u64,
    times: Option<u64>,
    probability: f64,
    rng: u64,
    action: Action,
    matched: u64,
    fired: u64,
}

impl Rule {
    /// Counts a matching call and says whether the rule fires on it.
    fn fires(&mut self) -> bool {
        self.matched += 1;
        if self.matched <= self.skip || self.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        if self.probability < 1.0 && unit_interval(&mut self.rng) >= self.probability {
            return false;
        }
        self.fired += 1;
        true
    }

    fn to_json(&self) -> Value {
        let mut v = self.spec.clone();
        if let Value::Object(m) = &mut v {
            m.insert("id".into(), json!(self.id));
            m.insert("matched".into(), json!(self.matched));
            m.insert("fired".into(), json!(self.fired));
        }
        v
    }
}

/// splitmix64: a small, well-known generator; a rule's draws repeat for the same seed.
fn unit_interval(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Default)]
pub struct Faults {
    /// A request rule is armed.
    armed: AtomicBool,
    /// A storage rule is armed.
    storage_armed: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    rules: Vec<Rule>,
}

impl Faults {
    /// Whether any request rule is armed: the request path's one check.
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// The rule that fires on `call`, if any.
    pub fn decide(&self, call: &Call<'_>) -> Option<Fired> {
        let mut state = self.state.lock();
        let rule = state.rules.iter_mut().find_map(|r| {
            let matches = matches!(&r.matcher, Target::Request(m) if m.matches(call));
            (matches && r.fires()).then_some(r)
        })?;
        Some(Fired {
            rule: rule.id,
            action: rule.action.clone(),
        })
    }

    /// Keeps the flags the request and storage paths check in step with the rules.
    fn rearm(&self, state: &State) {
        let (mut requests, mut storage) = (false, false);
        for r in &state.rules {
            match r.matcher {
                Target::Request(_) => requests = true,
                Target::Storage(_) => storage = true,
            }
        }
        self.armed.store(requests, Ordering::Relaxed);
        self.storage_armed.store(storage, Ordering::Relaxed);
    }

    /// Arms the rule `spec` describes; its JSON (with its id) or why it is refused.
    pub fn arm(&self, spec: Value) -> Result<Value, String> {
        let Value::Object(fields) = &spec else {
            return Err("a fault rule is a JSON object".into());
        };
        let matcher = match fields.get("storage") {
            None | Some(Value::Null) => Target::Request(parse_match(fields)?),
            Some(op) => Target::Storage(parse_storage_match(op, fields)?),
        };
        let action = parse_action(fields)?;
        if let (Target::Storage(_), action) = (&matcher, &action) {
            if !matches!(action, Action::Delay(_)) {
                return Err("a storage rule's action is delay (a slow disk)".into());
            }
        }
        if let (Action::Error(_), Target::Request(matcher)) = (&action, &matcher) {
            match matcher.api {
                Some(api) if error_response::answers_errors(api) => {}
                Some(api) => {
                    return Err(format!(
                        "injecting an error answer into {api:?} is not supported (close, delay \
                         and black_hole are); errors can be answered for {:?}",
                        error_response::ANSWERS_ERRORS
                    ))
                }
                None => return Err("an error action needs an api".into()),
            }
        }
        let skip = opt_u64(fields, "skip")?.unwrap_or(0);
        let times = opt_u64(fields, "times")?;
        let probability = match fields.get("probability") {
            None | Some(Value::Null) => 1.0,
            Some(v) => match v.as_f64() {
                Some(p) if (0.0..=1.0).contains(&p) => p,
                _ => return Err("probability must be a number from 0 to 1".into()),
            },
        };
        let mut state = self.state.lock();
        state.next_id += 1;
        let id = state.next_id;
        let rule = Rule {
            id,
            spec: spec.clone(),
            matcher,
            skip,
            times,
            probability,
            rng: opt_u64(fields, "seed")?.unwrap_or(id),
            action,
            matched: 0,
            fired: 0,
        };
        let answer = rule.to_json();
        state.rules.push(rule);
        self.rearm(&state);
        Ok(answer)
    }

    /// Every armed rule with how often it matched and fired.
    pub fn list(&self) -> Value {
        let state = self.state.lock();
        Value::Array(state.rules.iter().map(Rule::to_json).collect())
    }

    /// Removes rule `id`, or every rule; whether anything was removed.
    pub fn remove(&self, id: Option<u64>) -> bool {
        let mut state = self.state.lock();
        let before = state.rules.len();
        match id {
            Some(id) => state.rules.retain(|r| r.id != id),
            None => state.rules.clear(),
        }
        self.rearm(&state);
        id.is_none() || state.rules.len() < before
    }
}

fn opt_str(f: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key} must be a string, not {other}")),
    }
}

fn opt_u64(f: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer, not {v}")),
    }
}

fn opt_int<T: TryFrom<i64>>(f: &Map<String, Value>, key: &str) -> Result<Option<T>, String> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} must be an integer in range, not {v}")),
    }
}

/// An API by its name as Kafka spells it (any case: `Produce`, `produce`) or its key.
pub fn parse_api(v: &Value) -> Result<ApiKey, String> {
    let found = match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|k| i16::try_from(k).ok())
            .and_then(|k| ApiKey::try_from(k).ok()),
        Value::String(s) => s
            .parse::<i16>()
            .ok()
            .and_then(|k| ApiKey::try_from(k).ok())
            .or_else(|| api_by_name(s)),
        _ => None,
    };
    found.ok_or_else(|| format!("unknown api {v}"))
}

pub fn api_by_name(name: &str) -> Option<ApiKey> {
    // Kafka's keys are below 100 today; 200 leaves room for the crate's next ones.
    (0..200)
        .filter_map(|k| ApiKey::try_from(k).ok())
        .find(|a| format!("{a:?}").eq_ignore_ascii_case(name))
}

fn parse_match(f: &Map<String, Value>) -> Result<Match, String> {
    let api = match f.get("api") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_api(v)?),
    };
    if let Some(api) = api {
        if apis::supported(api).is_none() {
            return Err(format!("{api:?} is not served by gregor"));
        }
    }
    Ok(Match {
        api,
        min_version: opt_int(f, "min_version")?,
        max_version: opt_int(f, "max_version")?,
        topic: opt_str(f, "topic")?,
        partition: opt_int(f, "partition")?,
        group: opt_str(f, "group")?,
        transactional_id: opt_str(f, "transactional_id")?,
        client_id: opt_str(f, "client_id")?,
        broker: opt_int(f, "broker")?,
    })
}

/// A storage rule's match: the operation (`write`, `sync`, `any`), `topic` and `partition`;
/// the request fields mean nothing to a storage operation and are refused.
fn parse_storage_match(op: &Value, f: &Map<String, Value>) -> Result<StorageMatch, String> {
    let op = match op.as_str() {
        Some("write") => Some(StorageOp::Write),
        Some("sync") => Some(StorageOp::Sync),
        Some("any") => None,
        _ => return Err(format!("storage must be write, sync or any, not {op}")),
    };
    let request_only = [
        "api",
        "min_version",
        "max_version",
        "group",
        "transactional_id",
        "client_id",
        "broker",
    ];
    if let Some(k) = request_only.iter().find(|k| f.contains_key(**k)) {
        return Err(format!(
            "{k} matches requests, not a storage rule's operations"
        ));
    }
    Ok(StorageMatch {
        op,
        topic: opt_str(f, "topic")?,
        partition: opt_int(f, "partition")?,
    })
}

fn parse_action(f: &Map<String, Value>) -> Result<Action, String> {
    let action = opt_str(f, "action")?.ok_or("a fault rule needs an action")?;
    Ok(match action.as_str() {
        "error" => {
            let code = match f.get("error") {
                Some(Value::String(s)) => errors::code_by_name(s),
                Some(Value::Number(n)) => n.as_i64().and_then(|c| i16::try_from(c).ok()),
                _ => None,
            };
            match code {
                Some(c) if c != errors::NONE => Action::Error(c),
                _ => return Err("error needs a Kafka error name or code (not NONE)".into()),
            }
        }
        "delay" => {
            let ms = opt_u64(f, "delay_ms")?.ok_or("delay needs delay_ms")?;
            Action::Delay(Duration::from_millis(ms))
        }
        "close_before" => Action::CloseBefore,
        "close_after" => Action::CloseAfter,
        "black_hole" => Action::BlackHole,
        other => {
            return Err(format!(
                "unknown action {other} (error, delay, close_before, close_after, black_hole)"
            ))
        }
    })
}

impl StorageFaultRules for Faults {
    /// The delay of the first storage rule that fires on `op` on `topic`-`partition`; with no
    /// storage rule armed, one atomic load.
    fn fault(&self, op: StorageOp, topic: &str, partition: i32) -> Fault {
        if !StorageFaultRules::armed(self) {
            return Fault::None;
        }
        let mut state = self.state.lock();
        let fired = state.rules.iter_mut().find_map(|r| {
            let matches =
                matches!(&r.matcher, Target::Storage(m) if m.matches(op, topic, partition));
            (matches && r.fires()).then(|| r.action.clone())
        });
        match fired {
            Some(Action::Delay(d)) => Fault::Delay(d),
            _ => Fault::None,
        }
    }

    /// Whether a storage rule is armed (the request rules have their own flag, `Faults::armed`).
    fn armed(&self) -> bool {
        self.storage_armed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(api: ApiKey, version: i16, named: &'a Named) -> Call<'a> {
        Call {
            api,
            version,
            client_id: "app",
            broker: 1,
            named,
        }
    }

    fn produce_to(topic: &str, partition: i32) -> Named {
        Named {
            topics: vec![(topic.into(), vec![partition])],
            ..Named::default()
        }
    }

    #[test]
    fn nothing_is_armed_until_a_rule_is_and_after_all_are_removed() {
        let f = Faults::default();
        assert!(!f.armed());
        let r = f
            .arm(json!({"api": "produce", "action": "close_after"}))
            .unwrap();
        assert!(f.armed());
        assert_eq!(r["id"], 1);
        assert!(!f.remove(Some(7)));
        assert!(f.remove(Some(1)));
        assert!(!f.armed());
    }

    #[test]
    fn matches_api_version_topic_partition_and_client() {
        let f = Faults::default();
        f.arm(
            json!({"api": 0, "min_version": 9, "topic": "a", "partition": 1,
                     "client_id": "app", "action": "error", "error": "NOT_LEADER_OR_FOLLOWER"}),
        )
        .unwrap();
        let a1 = produce_to("a", 1);
        let a0 = produce_to("a", 0);
        assert_eq!(f.decide(&call(ApiKey::Produce, 8, &a1)), None);
        assert_eq!(f.decide(&call(ApiKey::Produce, 9, &a0)), None);
        assert_eq!(f.decide(&call(ApiKey::Fetch, 12, &a1)), None);
        let fired = f.decide(&call(ApiKey::Produce, 9, &a1)).unwrap();
        assert_eq!(fired.action, Action::Error(errors::NOT_LEADER_OR_FOLLOWER));
        let mut other = call(ApiKey::Produce, 9, &a1);
        other.client_id = "other";
        assert_eq!(f.decide(&other), None);
        assert_eq!(f.list()[0]["fired"], 1);
    }

    #[test]
    fn skip_then_times() {
        let f = Faults::default();
        f.arm(json!({"api": "Metadata", "skip": 2, "times": 2, "action": "close_before"}))
            .unwrap();
        let n = Named::default();
        let fired: Vec<bool> = (0..6)
            .map(|_| f.decide(&call(ApiKey::Metadata, 12, &n)).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, true, false, false]);
        assert_eq!(f.list()[0]["matched"], 6);
        assert_eq!(f.list()[0]["fired"], 2);
    }

    #[test]
    fn a_seeded_probability_repeats() {
        let draws = |seed: u64| {
            let f = Faults::default();
            f.arm(json!({"probability": 0.5, "seed": seed, "action": "black_hole"}))
                .unwrap();
            let n = Named::default();
            (0..64)
                .map(|_| f.decide(&call(ApiKey::Fetch, 12, &n)).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let fired = draws(7).iter().filter(|b| **b).count();
        assert!((10..54).contains(&fired), "{fired}");
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let f = Faults::default();
        for bad in [
            json!([]),
            json!({"api": "Produce"}),
            json!({"api": "NoSuchApi", "action": "close_before"}),
            json!({"action": "error", "error": "NOT_LEADER_OR_FOLLOWER"}),
            json!({"api": "DescribeConfigs", "action": "error", "error": "NOT_CONTROLLER"}),
            json!({"api": "Produce", "action": "error", "error": "NO_SUCH_ERROR"}),
            json!({"api": "Produce", "action": "error", "error": "NONE"}),
            json!({"api": "Produce", "action": "delay"}),
            json!({"api": "Produce", "action": "explode"}),
            json!({"api": "Produce", "probability": 2, "action": "close_after"}),
            json!({"api": "Produce", "partition": "x", "action": "close_after"}),
            json!({"api": "Vote", "action": "close_after"}),
        ] {
            assert!(f.arm(bad.clone()).is_err(), "{bad}");
        }
        assert!(!f.armed());
        // A code works as well as a name.
        f.arm(json!({"api": "Produce", "action": "error", "error": 6}))
            .unwrap();
    }

    /// A storage rule delays the writes or fsyncs of the partitions it names, never a request;
    /// a request rule never meets a storage operation.
    #[test]
    fn a_storage_rule_slows_its_partitions_operations_only() {
        let f = Faults::default();
        let delay = Fault::Delay(Duration::from_millis(30));
        assert!(!StorageFaultRules::armed(&f), "the storage path's one load");
        f.arm(
            json!({"storage": "write", "topic": "t", "partition": 1, "times": 2,
                     "action": "delay", "delay_ms": 30}),
        )
        .unwrap();
        assert!(!f.armed(), "the request path is not watched for it");
        assert!(StorageFaultRules::armed(&f));
        assert_eq!(
            f.decide(&call(ApiKey::Produce, 9, &produce_to("t", 1))),
            None
        );
        assert_eq!(f.fault(StorageOp::Sync, "t", 1), Fault::None);
        assert_eq!(f.fault(StorageOp::Write, "t", 0), Fault::None);
        assert_eq!(f.fault(StorageOp::Write, "u", 1), Fault::None);
        assert_eq!(f.fault(StorageOp::Write, "t", 1), delay);
        assert_eq!(f.fault(StorageOp::Write, "t", 1), delay);
        assert_eq!(f.fault(StorageOp::Write, "t", 1), Fault::None, "times: 2");
        let rule = &f.list()[0];
        assert_eq!((&rule["matched"], &rule["fired"]), (&json!(3), &json!(2)));
        f.arm(json!({"storage": "any", "action": "delay", "delay_ms": 5}))
            .unwrap();
        let any = Fault::Delay(Duration::from_millis(5));
        assert_eq!(f.fault(StorageOp::Sync, "x", 7), any);
        f.arm(json!({"api": "Produce", "action": "close_after"}))
            .unwrap();
        assert!(f.armed());
        assert_eq!(
            f.fault(StorageOp::Write, "x", 7),
            any,
            "a request rule is not asked"
        );
        assert!(f.remove(Some(2)));
        assert_eq!(f.fault(StorageOp::Sync, "x", 7), Fault::None);
        for bad in [
            json!({"storage": "read", "action": "delay", "delay_ms": 5}),
            json!({"storage": "any", "action": "close_after"}),
            json!({"storage": "any", "action": "error", "error": "KAFKA_STORAGE_ERROR"}),
            json!({"storage": "any", "api": "Produce", "action": "delay", "delay_ms": 5}),
            json!({"storage": "any", "client_id": "app", "action": "delay", "delay_ms": 5}),
        ] {
            assert!(f.arm(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_rule_that_fires_decides() {
        let f = Faults::default();
        f.arm(json!({"group": "g", "times": 1, "action": "close_before"}))
            .unwrap();
        f.arm(json!({"group": "g", "action": "delay", "delay_ms": 5}))
            .unwrap();
        let g = Named {
            groups: vec!["g".into()],
            ..Named::default()
        };
        let first = f.decide(&call(ApiKey::Heartbeat, 4, &g)).unwrap();
        let second = f.decide(&call(ApiKey::Heartbeat, 4, &g)).unwrap();
        assert_eq!((first.rule, second.rule), (1, 2));
        assert_eq!(second.action, Action::Delay(Duration::from_millis(5)));
        assert_eq!(
            f.decide(&call(ApiKey::Heartbeat, 4, &Named::default())),
            None
        );
    }
}
