//! The effective value and source of every config of a topic or of this broker, as Kafka's
//! DescribeConfigs reports them (ConfigHelper): a topic override wins, then the broker setting
//! that is its synonym (dynamic for this broker, dynamic cluster default, static), then Kafka's
//! default.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use super::dynamic::{is_dynamic, Layers};
use super::{broker_config_defs, topic_config_defs, Config, ConfigDef, ConfigType};

/// Where a value comes from (DescribeConfigsResponse ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// A group config override (Kafka's GROUP_CONFIG).
    DynamicGroup = 8,
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
    /// Kafka's documentation of the config (DescribeConfigs v3+ include_documentation).
    pub documentation: Option<&'static str>,
}

const BROKER_DOCS: &str = include_str!("kafka_broker_config_docs.tsv");
const TOPIC_DOCS: &str = include_str!("kafka_topic_config_docs.tsv");

fn doc_table(text: &'static str) -> HashMap<&'static str, &'static str> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, d)| !d.is_empty())
        .collect()
}

fn broker_doc(name: &str) -> Option<&'static str> {
    static DOCS: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    DOCS.get_or_init(|| doc_table(BROKER_DOCS))
        .get(name)
        .copied()
}

fn topic_doc(name: &str) -> Option<&'static str> {
    static DOCS: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    DOCS.get_or_init(|| doc_table(TOPIC_DOCS))
        .get(name)
        .copied()
}

/// Topic configs Kafka keeps out of DescribeConfigs (internal, for tests only).
const HIDDEN_TOPIC_CONFIGS: &[&str] = &["internal.segment.bytes"];

/// The broker-level values of a setting, most specific first: this broker's dynamic value, the
/// dynamic cluster default, the static setting.
fn broker_values(config: &Config, layers: &Layers, name: &str) -> Vec<Synonym> {
    let mut v = Vec::new();
    let mut push = |value: Option<&String>, source| {
        if let Some(value) = value {
            v.push(Synonym {
                name: name.to_string(),
                value: Some(value.clone()),
                source,
            });
        }
    };
    push(layers.per_broker.get(name), ConfigSource::DynamicBroker);
    push(
        layers.cluster_default.get(name),
        ConfigSource::DynamicDefaultBroker,
    );
    let effective = config
        .explicit
        .get(name)
        .cloned()
        .or_else(|| start_up_value(config, name));
    push(effective.as_ref(), ConfigSource::StaticBroker);
    v
}

/// What the broker was started with for the settings the command line can give instead of a
/// setting (`--listen`, `--advertised-listener`, `--data-dir`, the node id), so DescribeConfigs
/// reports them as Kafka reports its static configuration (STATIC_BROKER_CONFIG with the value
/// in force) rather than as unset defaults.
fn start_up_value(config: &Config, name: &str) -> Option<String> {
    let endpoint = |l: &super::ListenerConfig, (host, port): (&str, u16)| {
        format!("{}://{host}:{port}", l.name)
    };
    let list = |f: &dyn Fn(&super::ListenerConfig) -> String| {
        config.listeners.iter().map(f).collect::<Vec<_>>().join(",")
    };
    match name {
        "listeners" => Some(list(&|l| endpoint(l, (&l.host, l.port)))),
        "advertised.listeners" => Some(list(&|l| {
            let (host, port) = l
                .advertised
                .as_ref()
                .map_or((l.host.as_str(), l.port), |(h, p)| (h.as_str(), *p));
            endpoint(l, (host, port))
        })),
        "log.dirs" => Some(config.data_dir.display().to_string()),
        "node.id" | "broker.id" => Some(config.node_id.to_string()),
        _ => None,
    }
}

/// The broker-level value of a topic config when the broker settings name it in another unit
/// (log.retention.hours for retention.ms, log.roll.hours for segment.ms).
fn broker_derived(config: &Config, layers: &Layers, topic_name: &str) -> Option<Synonym> {
    let merged = layers.merged(config);
    let log = super::broker_log_config(&super::Settings(&merged)).ok()?;
    let source_of = |keys: &[&str]| {
        if keys.iter().any(|k| layers.per_broker.contains_key(*k)) {
            Some(ConfigSource::DynamicBroker)
        } else if keys.iter().any(|k| layers.cluster_default.contains_key(*k)) {
            Some(ConfigSource::DynamicDefaultBroker)
        } else if keys.iter().any(|k| config.explicit.contains_key(*k)) {
            Some(ConfigSource::StaticBroker)
        } else {
            None
        }
    };
    let (name, value, source) = match topic_name {
        "retention.ms" => (
            "log.retention.ms",
            log.retention_ms,
            source_of(&["log.retention.minutes", "log.retention.hours"])?,
        ),
        "segment.ms" => (
            "log.roll.ms",
            log.segment_ms,
            source_of(&["log.roll.hours"])?,
        ),
        _ => return None,
    };
    Some(Synonym {
        name: name.into(),
        value: Some(value.to_string()),
        source,
    })
}

/// Every public topic config with its effective value, for a topic with the given overrides.
/// The group configs gregor serves, with a group's overrides over Kafka's defaults.
pub fn describe_group(
    overrides: &BTreeMap<String, String>,
    cfg: &crate::group::GroupConfig,
) -> Vec<ConfigEntry> {
    use crate::group::group_config::{broker_default, GROUP_CONFIGS};
    GROUP_CONFIGS
        .iter()
        .map(|def| {
            let (name, doc) = (def.name, def.doc);
            let (value, source) = match overrides.get(name) {
                Some(v) => (v.clone(), ConfigSource::DynamicGroup),
                None => (broker_default(cfg, name), ConfigSource::Default),
            };
            ConfigEntry {
                name,
                value: Some(value.clone()),
                source,
                kind: match def.int {
                    true => ConfigType::Int,
                    false => ConfigType::String,
                },
                sensitive: false,
                read_only: false,
                synonyms: vec![Synonym {
                    name: name.into(),
                    value: Some(value),
                    source,
                }],
                documentation: Some(doc),
            }
        })
        .collect()
}

pub fn describe_topic(
    config: &Config,
    layers: &Layers,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
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
                let direct = broker_values(config, layers, syn);
                if direct.is_empty() {
                    synonyms.extend(broker_derived(config, layers, d.name));
                } else {
                    synonyms.extend(direct);
                }
                // Kafka lists the broker setting's own default, and only when it has one
                // (log.retention.ms has none: its default comes from log.retention.hours).
                if let Some(default) = super::broker_def(syn).and_then(|b| b.default) {
                    synonyms.push(Synonym {
                        name: syn.into(),
                        value: Some(default.to_string()),
                        source: ConfigSource::Default,
                    });
                }
            }
            entry(d, synonyms, false, topic_doc(d.name))
        })
        .collect()
}

/// Every broker config with its value: dynamic, static or Kafka's default. Only the dynamic ones
/// (see `config::dynamic`) are not read-only.
pub fn describe_broker(config: &Config, layers: &Layers) -> Vec<ConfigEntry> {
    broker_config_defs()
        .iter()
        .map(|d| {
            let mut synonyms = broker_values(config, layers, d.name);
            synonyms.push(Synonym {
                name: d.name.into(),
                value: d.default.map(str::to_string),
                source: ConfigSource::Default,
            });
            entry(d, synonyms, !is_dynamic(d.name), broker_doc(d.name))
        })
        .collect()
}

/// The cluster-wide dynamic defaults that are set (the broker resource with the empty name).
pub fn describe_cluster_default(layers: &Layers) -> Vec<ConfigEntry> {
    broker_config_defs()
        .iter()
        .filter_map(|d| {
            let v = layers.cluster_default.get(d.name)?;
            let synonyms = vec![Synonym {
                name: d.name.into(),
                value: Some(v.clone()),
                source: ConfigSource::DynamicDefaultBroker,
            }];
            Some(entry(d, synonyms, false, broker_doc(d.name)))
        })
        .collect()
}

fn entry(
    d: &ConfigDef,
    synonyms: Vec<Synonym>,
    read_only: bool,
    documentation: Option<&'static str>,
) -> ConfigEntry {
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
        documentation,
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
        let e = describe_topic(&c, &Layers::default(), &overrides);
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
        assert!(cp.documentation.is_some_and(|d| d.contains("compact")));
    }

    #[test]
    fn the_command_lines_settings_are_static_broker_configs() {
        let src = Sources {
            listen: Some("127.0.0.1:19092".into()),
            advertised_listener: Some("kafka.example:9999".into()),
            data_dir: Some("/var/lib/gregor".into()),
            ..Sources::default()
        };
        let c = Config::load(&src, std::iter::empty()).unwrap();
        let e = describe_broker(&c, &Layers::default());
        for (name, want) in [
            ("listeners", "PLAINTEXT://127.0.0.1:19092"),
            ("advertised.listeners", "PLAINTEXT://kafka.example:9999"),
            ("log.dirs", "/var/lib/gregor"),
            ("node.id", &c.node_id.to_string()),
            ("broker.id", &c.node_id.to_string()),
        ] {
            let entry = find(&e, name);
            assert_eq!(
                (entry.value.as_deref(), entry.source),
                (Some(want), ConfigSource::StaticBroker),
                "{name}"
            );
        }
        // A setting given in Kafka's own name wins over what it would be derived from.
        let c = config(&["log.dirs=/data/a"]);
        let e = describe_broker(&c, &Layers::default());
        assert_eq!(find(&e, "log.dirs").value.as_deref(), Some("/data/a"));
    }

    #[test]
    fn broker_values_and_secrets() {
        let c = config(&["num.partitions=3"]);
        let e = describe_broker(&c, &Layers::default());
        let np = find(&e, "num.partitions");
        assert_eq!(
            (np.value.as_deref(), np.source),
            (Some("3"), ConfigSource::StaticBroker)
        );
        let pw = e.iter().find(|x| x.kind == ConfigType::Password).unwrap();
        assert!(pw.sensitive && pw.value.is_none());
        assert!(np.read_only);
        // Dynamic values win and are reported with their source, most specific first.
        let layers = Layers {
            per_broker: BTreeMap::from([("log.retention.ms".into(), "7".into())]),
            cluster_default: BTreeMap::from([("log.retention.ms".into(), "8".into())]),
        };
        let e = describe_broker(&c, &layers);
        let rm = find(&e, "log.retention.ms");
        assert_eq!(
            (
                rm.value.as_deref(),
                rm.source,
                rm.read_only,
                rm.synonyms.len()
            ),
            (Some("7"), ConfigSource::DynamicBroker, false, 3)
        );
        let t = describe_topic(&c, &layers, &BTreeMap::new());
        let tr = find(&t, "retention.ms");
        assert_eq!(
            (tr.value.as_deref(), tr.source),
            (Some("7"), ConfigSource::DynamicBroker)
        );
        let d = describe_cluster_default(&layers);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].source, ConfigSource::DynamicDefaultBroker);
    }
}
