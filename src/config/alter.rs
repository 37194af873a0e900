//! Changes to topic config overrides, as Kafka's IncrementalAlterConfigs (KIP-339: SET, DELETE,
//! APPEND, SUBTRACT) and legacy AlterConfigs (replace all overrides) compute them, and Kafka's
//! messages for invalid ones. Validation of the result is `topic_log_config`'s job.

use std::collections::BTreeMap;

use super::{broker_def, topic_def, ConfigDef, ConfigError, ConfigType};

/// Which config table a resource uses (for the type of APPEND/SUBTRACT keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Topic,
    Broker,
}

impl Table {
    fn def(self, name: &str) -> Option<&'static ConfigDef> {
        match self {
            Table::Topic => topic_def(name),
            Table::Broker => broker_def(name),
        }
    }
}

/// An IncrementalAlterConfigs operation (AlterConfigOp.OpType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterOp {
    pub fn from_wire(code: i8) -> Option<AlterOp> {
        match code {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }
}

/// Why a change was refused: INVALID_CONFIG (`Config`) or INVALID_REQUEST (`Request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterError {
    Config(String),
    Request(String),
}

/// Kafka's text for an invalid topic config (LogConfig.validate / ConfigException).
pub fn topic_config_message(e: &ConfigError) -> String {
    match e {
        ConfigError::Unknown(name) => format!("Unknown topic config name: {name}"),
        ConfigError::Invalid {
            name,
            value,
            reason,
        } => format!("Invalid value {value} for configuration {name}: {reason}"),
        other => other.to_string(),
    }
}

/// Applies incremental operations to a topic's overrides. Keys are unique and non-DELETE values
/// present (the caller checked); the result still needs `topic_log_config`.
pub fn apply_incremental(
    table: Table,
    current: &BTreeMap<String, String>,
    ops: &[(String, AlterOp, Option<String>)],
) -> Result<BTreeMap<String, String>, AlterError> {
    let mut next = current.clone();
    for (name, op, value) in ops {
        let value = value.clone().unwrap_or_default();
        match op {
            AlterOp::Set => {
                next.insert(name.clone(), value);
            }
            AlterOp::Delete => {
                next.remove(name);
            }
            AlterOp::Append | AlterOp::Subtract => {
                let def = table.def(name).ok_or_else(|| {
                    AlterError::Config(match table {
                        Table::Topic => format!("Unknown topic config name: {name}"),
                        Table::Broker => format!("Unknown config name: {name}"),
                    })
                })?;
                if def.kind != ConfigType::List {
                    let verb = if *op == AlterOp::Append {
                        "APPEND"
                    } else {
                        "SUBTRACT"
                    };
                    return Err(AlterError::Config(format!(
                        "Can't {verb} to key {name} because its type is not LIST."
                    )));
                }
                // The list starts from the override, else Kafka's default for the topic.
                let base = next
                    .get(name)
                    .cloned()
                    .or_else(|| def.default.map(str::to_string))
                    .unwrap_or_default();
                let mut parts: Vec<String> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                for v in value.split(',').map(str::trim) {
                    if *op == AlterOp::Append {
                        if !parts.iter().any(|p| p == v) {
                            parts.push(v.to_string());
                        }
                    } else {
                        parts.retain(|p| p != v);
                    }
                }
                next.insert(name.clone(), parts.join(","));
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(v: &[(&str, AlterOp, Option<&str>)]) -> Vec<(String, AlterOp, Option<String>)> {
        v.iter()
            .map(|(k, o, v)| (k.to_string(), *o, v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn set_delete_append_subtract() {
        let cur = BTreeMap::from([("retention.ms".to_string(), "1".to_string())]);
        let next = apply_incremental(
            Table::Topic,
            &cur,
            &ops(&[
                ("retention.ms", AlterOp::Delete, None),
                ("segment.ms", AlterOp::Set, Some("100")),
                ("cleanup.policy", AlterOp::Append, Some("compact")),
            ]),
        )
        .unwrap();
        assert_eq!(next.get("retention.ms"), None);
        assert_eq!(next["segment.ms"], "100");
        // Appended to Kafka's default "delete".
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let next = apply_incremental(
            Table::Topic,
            &next,
            &ops(&[("cleanup.policy", AlterOp::Subtract, Some("delete"))]),
        )
        .unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        assert!(matches!(
            apply_incremental(
                Table::Topic,
                &next,
                &ops(&[("retention.ms", AlterOp::Append, Some("1"))])
            ),
            Err(AlterError::Config(m)) if m.contains("because its type is not LIST")
        ));
    }
}
