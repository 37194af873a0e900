//! Group configs (Kafka's `GroupConfig`, the GROUP config resource of IncrementalAlterConfigs
//! and DescribeConfigs, stored as ConfigRecords in the metadata log): a group's own values for
//! settings the broker otherwise gives every group.
//!
//! gregor acts on `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` (KIP-848
//! groups), `streams.session.timeout.ms` and `streams.heartbeat.interval.ms` (KIP-1071 groups),
//! each within the broker's `group.<type>.min/max.*` bounds and the session longer than the
//! heartbeat interval, as Kafka validates them; and `share.auto.offset.reset` (`latest`, Kafka's
//! default, or `earliest`: where a share-partition seen for the first time starts). A member's
//! session deadline and the heartbeat interval it is told take the group's value from its next
//! heartbeat on. Kafka's other group configs are refused with INVALID_CONFIG rather than stored
//! and ignored; `by_duration:` resets are not served either.

use std::collections::BTreeMap;

use super::GroupConfig;

pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
pub const STREAMS_SESSION_TIMEOUT_MS: &str = "streams.session.timeout.ms";
pub const STREAMS_HEARTBEAT_INTERVAL_MS: &str = "streams.heartbeat.interval.ms";

/// A served group config: its name, its documentation (Kafka's), and whether it is an INT.
pub struct GroupConfigDef {
    pub name: &'static str,
    pub doc: &'static str,
    pub int: bool,
}

pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: CONSUMER_HEARTBEAT_INTERVAL_MS,
        doc: "The heartbeat interval given to the members of a consumer group.",
        int: true,
    },
    GroupConfigDef {
        name: CONSUMER_SESSION_TIMEOUT_MS,
        doc: "The timeout to detect client failures when using the consumer group protocol.",
        int: true,
    },
    GroupConfigDef {
        name: SHARE_AUTO_OFFSET_RESET,
        doc: "The strategy to initialize the share-partition start offset.",
        int: false,
    },
    GroupConfigDef {
        name: STREAMS_HEARTBEAT_INTERVAL_MS,
        doc: "The heartbeat interval given to the members.",
        int: true,
    },
    GroupConfigDef {
        name: STREAMS_SESSION_TIMEOUT_MS,
        doc: "The timeout to detect client failures when using the streams group protocol.",
        int: true,
    },
];

/// The value a group has for `name`: its own, else the broker's (what DescribeConfigs shows as
/// the default).
pub fn broker_default(cfg: &GroupConfig, name: &str) -> String {
    match name {
        CONSUMER_SESSION_TIMEOUT_MS => cfg.consumer_session_timeout_ms.to_string(),
        CONSUMER_HEARTBEAT_INTERVAL_MS => cfg.consumer_heartbeat_interval_ms.to_string(),
        STREAMS_SESSION_TIMEOUT_MS => cfg.streams.session_timeout_ms.to_string(),
        STREAMS_HEARTBEAT_INTERVAL_MS => cfg.streams.heartbeat_interval_ms.to_string(),
        _ => "latest".to_string(),
    }
}

/// A group's INT override, if it has a valid one (validated when set).
pub fn int_override(configs: &BTreeMap<String, String>, name: &str) -> Option<i32> {
    configs.get(name).and_then(|v| v.trim().parse().ok())
}

/// Checks a group's whole set of overrides against the broker's bounds: Kafka's INVALID_CONFIG
/// message when one is refused.
pub fn validate(configs: &BTreeMap<String, String>, cfg: &GroupConfig) -> Result<(), String> {
    for (name, value) in configs {
        let Some(def) = GROUP_CONFIGS.iter().find(|d| d.name == name) else {
            let served: Vec<_> = GROUP_CONFIGS.iter().map(|d| d.name).collect();
            return Err(format!(
                "Unknown group config name: {name} (gregor serves only {})",
                served.join(", ")
            ));
        };
        if def.int {
            let Ok(v) = value.trim().parse::<i32>() else {
                return Err(format!(
                    "Invalid value {value} for configuration {name}: Not a number of type INT"
                ));
            };
            if v < 1 {
                return Err(format!(
                    "Invalid value {v} for configuration {name}: Value must be at least 1"
                ));
            }
        } else if !["earliest", "latest"].contains(&value.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "Invalid value {value} for configuration {name}: gregor supports earliest and latest"
            ));
        }
    }
    let bounds = [
        (
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            cfg.consumer_heartbeat_bounds,
        ),
        (CONSUMER_SESSION_TIMEOUT_MS, cfg.consumer_session_bounds),
        (STREAMS_HEARTBEAT_INTERVAL_MS, cfg.streams_heartbeat_bounds),
        (STREAMS_SESSION_TIMEOUT_MS, cfg.streams_session_bounds),
    ];
    for (name, (min, max)) in bounds {
        if let Some(v) = int_override(configs, name) {
            if v < min || v > max {
                return Err(format!(
                    "{name} must be in the range {min} to {max} inclusive."
                ));
            }
        }
    }
    let pairs = [
        (
            CONSUMER_SESSION_TIMEOUT_MS,
            cfg.consumer_session_timeout_ms,
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            cfg.consumer_heartbeat_interval_ms,
        ),
        (
            STREAMS_SESSION_TIMEOUT_MS,
            cfg.streams.session_timeout_ms,
            STREAMS_HEARTBEAT_INTERVAL_MS,
            cfg.streams.heartbeat_interval_ms,
        ),
    ];
    for (session, session_default, heartbeat, heartbeat_default) in pairs {
        let (s, h) = (
            int_override(configs, session),
            int_override(configs, heartbeat),
        );
        if s.is_none() && h.is_none() {
            continue;
        }
        let s = s.map_or(session_default, i64::from);
        let h = h.unwrap_or(heartbeat_default);
        if s <= i64::from(h) {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_served_configs_pass_within_the_brokers_bounds() {
        let cfg = GroupConfig::default();
        let ok = |p: &[(&str, &str)]| validate(&set(p), &cfg);
        assert!(ok(&[(SHARE_AUTO_OFFSET_RESET, "earliest")]).is_ok());
        assert!(ok(&[(SHARE_AUTO_OFFSET_RESET, "LATEST")]).is_ok());
        assert!(ok(&[(SHARE_AUTO_OFFSET_RESET, "by_duration:PT1H")]).is_err());
        assert!(ok(&[("share.record.lock.duration.ms", "15000")]).is_err());
        // Kafka's default bounds: sessions 45-60 s, heartbeats 5-15 s.
        assert!(ok(&[(CONSUMER_SESSION_TIMEOUT_MS, "50000")]).is_ok());
        let low = ok(&[(CONSUMER_SESSION_TIMEOUT_MS, "10000")]).unwrap_err();
        assert_eq!(
            low,
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."
        );
        assert!(ok(&[(STREAMS_HEARTBEAT_INTERVAL_MS, "20000")]).is_err());
        assert!(ok(&[(STREAMS_HEARTBEAT_INTERVAL_MS, "x")]).is_err());
        // Within wider bounds, the session must still outlast the heartbeat interval, the
        // broker's value standing in for the one not set.
        let wide = GroupConfig {
            consumer_session_bounds: (1, 100_000),
            consumer_heartbeat_bounds: (1, 100_000),
            ..GroupConfig::default()
        };
        let session_only = set(&[(CONSUMER_SESSION_TIMEOUT_MS, "5000")]);
        assert_eq!(
            validate(&session_only, &wide).unwrap_err(),
            "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
        );
        let both = set(&[
            (CONSUMER_SESSION_TIMEOUT_MS, "2000"),
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "500"),
        ]);
        assert!(validate(&both, &wide).is_ok());
    }
}
