//! The effective value and source of every config of a topic or of this broker, as Kafka's
//! DescribeConfigs reports them (ConfigHelper): a topic override wins, then the broker setting
//! that is its synonym, then Kafka's default.

use std::collections::BTreeMap;

use super::{broker_config_defs, topic_config_defs, Config, ConfigDef, ConfigType};

/// Where a value comes from (DescribeConfigsResponse ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: &'static str,
    /// `None` for sensitive values and for settings without a value.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub kind: ConfigType,
    pub sensitive: bool,
    pub read_only: bool,
    /// Most specific first, as Kafka lists them.
    pub synonyms: Vec<Synonym>,
}

/// Topic configs Kafka keeps out of DescribeConfigs (internal, for tests only).
const HIDDEN_TOPIC_CONFIGS: &[&str] = &["internal.segment.bytes"];

/// The broker-level value of a topic config when the broker settings name it in another unit
/// (log.retention.hours for retention.ms, log.roll.hours for segment.ms).
fn broker_derived(config: &Config, topic_name: &str) -> Option<String> {
    let set = |k: &str| config.explicit.contains_key(k);
    match topic_name {
        "retention.ms" if set("log.retention.minutes") || set("log.retention.hours") => {
            Some(config.log.retention_ms.to_string())
        }
        "segment.ms" if set("log.roll.hours") => Some(config.log.segment_ms.to_string()),
        _ => None,
    }
}

/// Every public topic config with its effective value, for a topic with the given overrides.
pub fn describe_topic(config: &Config, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    topic_config_defs()
        .iter()
        .filter(|d| !HIDDEN_TOPIC_CONFIGS.contains(&d.name))
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push(Synonym {
                    name: d.name.into(),
                    value: Some(v.clone()),
                    source: ConfigSource::DynamicTopic,
                });
            }
            if let Some(syn) = d.synonym {
                let broker_value = config
                    .explicit
                    .get(syn)
                    .cloned()
                    .or_else(|| broker_derived(config, d.name));
                if let Some(v) = broker_value {
                    synonyms.push(Synonym {
                        name: syn.into(),
                        value: Some(v),
                        source: ConfigSource::StaticBroker,
                    });
                }
                let default = d.default.map(str::to_string);
                synonyms.push(Synonym {
                    name: syn.into(),
                    value: default,
                    source: ConfigSource::Default,
                });
            }
            entry(d, synonyms, false)
        })
        .collect()
}

/// Every broker config with its value: set explicitly (static) or Kafka's default. gregor cannot
/// change broker configs at run time, so all are read-only.
pub fn describe_broker(config: &Config) -> Vec<ConfigEntry> {
    broker_config_defs()
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = config.explicit.get(d.name) {
                synonyms.push(Synonym {
                    name: d.name.into(),
                    value: Some(v.clone()),
                    source: ConfigSource::StaticBroker,
                });
            }
            synonyms.push(Synonym {
                name: d.name.into(),
                value: d.default.map(str::to_string),
                source: ConfigSource::Default,
            });
            entry(d, synonyms, true)
        })
        .collect()
}

fn entry(d: &ConfigDef, synonyms: Vec<Synonym>, read_only: bool) -> ConfigEntry {
    let sensitive = d.kind == ConfigType::Password;
    // The first synonym is the one in force; a topic config without any falls back to its own
    // default.
    let (value, source) = match synonyms.first() {
        Some(s) => (s.value.clone(), s.source),
        None => (d.default.map(str::to_string), ConfigSource::Default),
    };
    let hide = |v: Option<String>| if sensitive { None } else { v };
    ConfigEntry {
        name: d.name,
        value: hide(value),
        source,
        kind: d.kind,
        sensitive,
        read_only,
        synonyms: synonyms
            .into_iter()
            .map(|s| Synonym {
                value: hide(s.value),
                ..s
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn config(overrides: &[&str]) -> Config {
        let src = Sources {
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Sources::default()
        };
        Config::load(&src, std::iter::empty()).unwrap()
    }

    fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
        entries.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn topic_value_precedence() {
        let c = config(&["log.retention.hours=1", "log.segment.bytes=2097152"]);
        let overrides = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        let e = describe_topic(&c, &overrides);
        let cp = find(&e, "cleanup.policy");
        assert_eq!(
            (cp.value.as_deref(), cp.source),
            (Some("compact"), ConfigSource::DynamicTopic)
        );
        assert_eq!(cp.synonyms.len(), 2);
        let sb = find(&e, "segment.bytes");
        assert_eq!(
            (sb.value.as_deref(), sb.source),
            (Some("2097152"), ConfigSource::StaticBroker)
        );
        let rm = find(&e, "retention.ms");
        assert_eq!(rm.value.as_deref(), Some("3600000"));
        let mm = find(&e, "max.message.bytes");
        assert_eq!(
            (mm.value.as_deref(), mm.source),
            (Some("1048588"), ConfigSource::Default)
        );
        assert!(e.iter().all(|x| x.name != "internal.segment.bytes"));
    }

    #[test]
    fn broker_values_and_secrets() {
        let c = config(&["num.partitions=3"]);
        let e = describe_broker(&c);
        let np = find(&e, "num.partitions");
        assert_eq!(
            (np.value.as_deref(), np.source),
            (Some("3"), ConfigSource::StaticBroker)
        );
        let pw = e.iter().find(|x| x.kind == ConfigType::Password).unwrap();
        assert!(pw.sensitive && pw.value.is_none());
    }
}
