//! Dynamic broker configs (KIP-226): the broker-level log settings Kafka lets
//! `kafka-configs --entity-type brokers --alter` change at run time, for this node (`--entity-name
//! <id>`) or as the cluster-wide default (`--entity-default`). Precedence, as in Kafka: per-broker
//! dynamic, then cluster default, then the static settings, then Kafka's default.
//!
//! On disk: `gregor-metadata/broker-configs.properties`, Java properties text with `broker.<name>`
//! and `default.<name>` lines, written to a temporary file and renamed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::alter::AlterError;
use super::{broker_def, broker_log_config, parse_properties, Config, ConfigError, Settings};
use crate::log::LogConfig;

const FILE: &str = "gregor-metadata/broker-configs.properties";

/// Broker settings that are not topic-config synonyms but name the same values in other units.
const EXTRA_DYNAMIC: &[&str] = &[
    "log.retention.minutes",
    "log.retention.hours",
    "log.roll.hours",
    "log.roll.jitter.hours",
];

/// Whether Kafka can change this broker setting at run time and gregor applies it: the broker
/// synonyms of topic configs (DynamicLogConfig.ReconfigurableConfigs).
pub fn is_dynamic(name: &str) -> bool {
    EXTRA_DYNAMIC.contains(&name)
        || super::topic_config_defs()
            .iter()
            .any(|d| d.synonym == Some(name))
}

/// The two dynamic layers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layers {
    pub per_broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

impl Layers {
    /// Static settings overlaid with the cluster default, then this broker's values.
    pub fn merged(&self, config: &Config) -> BTreeMap<String, String> {
        let mut m = config.explicit.clone();
        m.extend(self.cluster_default.clone());
        m.extend(self.per_broker.clone());
        m
    }

    fn render(&self) -> String {
        let mut s = String::from("# gregor dynamic broker configs\n");
        for (k, v) in &self.per_broker {
            s.push_str(&format!("broker.{k}={v}\n"));
        }
        for (k, v) in &self.cluster_default {
            s.push_str(&format!("default.{k}={v}\n"));
        }
        s
    }

    fn parse(text: &str) -> Layers {
        let mut l = Layers::default();
        for (k, v) in parse_properties(text) {
            if let Some(name) = k.strip_prefix("broker.") {
                l.per_broker.insert(name.to_string(), v);
            } else if let Some(name) = k.strip_prefix("default.") {
                l.cluster_default.insert(name.to_string(), v);
            }
        }
        l
    }
}

pub struct DynamicBrokerConfigs {
    path: PathBuf,
    layers: Mutex<Layers>,
}

impl DynamicBrokerConfigs {
    /// Loads the stored layers; values that no longer validate are dropped with a warning.
    pub fn open(data_dir: &Path, config: &Config) -> io::Result<DynamicBrokerConfigs> {
        let path = data_dir.join(FILE);
        // Topics moved to the metadata log; this file's directory is no longer made for them.
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut layers = match std::fs::read_to_string(&path) {
            Ok(text) => Layers::parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Layers::default(),
            Err(e) => return Err(e),
        };
        if let Err(e) = effective_log(config, &layers) {
            tracing::warn!(error = %e, "ignoring stored dynamic broker configs");
            layers = Layers::default();
        }
        Ok(DynamicBrokerConfigs {
            path,
            layers: Mutex::new(layers),
        })
    }

    pub fn layers(&self) -> Layers {
        self.layers.lock().clone()
    }

    /// The broker-wide log defaults in force.
    pub fn log_config(&self, config: &Config) -> LogConfig {
        effective_log(config, &self.layers.lock()).unwrap_or_else(|_| config.log.clone())
    }

    /// Replaces one layer with `change(current layer)`, after Kafka's checks: every key known and
    /// dynamic, every value valid. Unless `validate_only`, the new layer is persisted and `apply`
    /// receives the new broker-wide log defaults, all under one lock so changes apply in order.
    pub fn alter(
        &self,
        config: &Config,
        cluster_default: bool,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AlterError>,
        apply: impl FnOnce(LogConfig),
    ) -> Result<(), AlterError> {
        let mut layers = self.layers.lock();
        let current = if cluster_default {
            &layers.cluster_default
        } else {
            &layers.per_broker
        };
        let next = change(current)?;
        let changed: Vec<&String> = next
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(current.keys().filter(|k| !next.contains_key(*k)))
            .collect();
        if let Some(unknown) = changed.iter().find(|k| broker_def(k).is_none()) {
            return Err(AlterError::Config(format!(
                "Unknown config name: {unknown}"
            )));
        }
        let fixed: Vec<&str> = changed
            .iter()
            .filter(|k| !is_dynamic(k))
            .map(|k| k.as_str())
            .collect();
        if !fixed.is_empty() {
            return Err(AlterError::Request(format!(
                "Cannot update these configs dynamically: Set({})",
                fixed.join(", ")
            )));
        }
        let mut candidate = layers.clone();
        if cluster_default {
            candidate.cluster_default = next;
        } else {
            candidate.per_broker = next;
        }
        let log =
            effective_log(config, &candidate).map_err(|e| AlterError::Request(e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        crate::metadata::write_atomically(&self.path, &candidate.render())
            .map_err(|e| AlterError::Request(format!("cannot store the configs: {e}")))?;
        *layers = candidate;
        apply(log);
        Ok(())
    }
}

/// Validates the merged settings the way start-up does and derives the log defaults.
fn effective_log(config: &Config, layers: &Layers) -> Result<LogConfig, ConfigError> {
    // Without dynamic values the static log config stands as built (tests and embedders may set
    // its fields directly rather than through settings).
    if layers.per_broker.is_empty() && layers.cluster_default.is_empty() {
        return Ok(config.log.clone());
    }
    let merged = layers.merged(config);
    for (k, v) in layers.per_broker.iter().chain(&layers.cluster_default) {
        if let Some(def) = broker_def(k) {
            def.kind.check(k, v)?;
        }
    }
    broker_log_config(&Settings(&merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_validate_persist_and_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("gregor-metadata")).unwrap();
        let config = Config::for_tests(dir.path().to_path_buf());
        let d = DynamicBrokerConfigs::open(dir.path(), &config).unwrap();
        let set = |k: &str, v: &str| {
            let (k, v) = (k.to_string(), v.to_string());
            move |cur: &BTreeMap<String, String>| {
                let mut m = cur.clone();
                m.insert(k, v);
                Ok(m)
            }
        };
        let mut applied = None;
        d.alter(&config, true, false, set("log.retention.ms", "5000"), |l| {
            applied = Some(l)
        })
        .unwrap();
        assert_eq!(applied.map(|l| l.retention_ms), Some(5000));
        d.alter(
            &config,
            false,
            false,
            set("log.retention.ms", "7000"),
            |_| {},
        )
        .unwrap();
        assert_eq!(d.log_config(&config).retention_ms, 7000);
        assert!(matches!(
            d.alter(&config, false, false, set("log.dirs", "/x"), |_| {}),
            Err(AlterError::Request(m)) if m.contains("Cannot update these configs dynamically")
        ));
        assert!(matches!(
            d.alter(&config, false, false, set("no.such", "1"), |_| {}),
            Err(AlterError::Config(_))
        ));
        assert!(d
            .alter(
                &config,
                false,
                false,
                set("log.segment.bytes", "many"),
                |_| {}
            )
            .is_err());
        let again = DynamicBrokerConfigs::open(dir.path(), &config).unwrap();
        assert_eq!(again.layers(), d.layers());
        assert_eq!(again.log_config(&config).retention_ms, 7000);
    }
}
