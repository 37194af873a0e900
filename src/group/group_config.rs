//! Group configs (Kafka's `GroupConfig`, the GROUP config resource of IncrementalAlterConfigs
//! and DescribeConfigs, stored as ConfigRecords in the metadata log). gregor acts on
//! `share.auto.offset.reset` only: where a share-partition seen for the first time starts
//! (`latest`, Kafka's default, or `earliest`). Other group configs are refused with
//! INVALID_CONFIG rather than stored and ignored; `by_duration:` resets are not served either.

use std::collections::BTreeMap;

pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";

/// The default and the documentation of the configs gregor serves.
pub const GROUP_CONFIGS: &[(&str, &str, &str)] = &[(
    SHARE_AUTO_OFFSET_RESET,
    "latest",
    "The strategy to initialize the share-partition start offset.",
)];

/// Checks a group's whole set of overrides: Kafka's INVALID_CONFIG message when one is refused.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        if !GROUP_CONFIGS.iter().any(|(n, _, _)| n == name) {
            return Err(format!(
                "Unknown group config name: {name} (gregor serves only {SHARE_AUTO_OFFSET_RESET})"
            ));
        }
        if !["earliest", "latest"].contains(&value.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "Invalid value {value} for configuration {name}: gregor supports earliest and latest"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_served_configs_pass() {
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(validate(&set(SHARE_AUTO_OFFSET_RESET, "earliest")).is_ok());
        assert!(validate(&set(SHARE_AUTO_OFFSET_RESET, "LATEST")).is_ok());
        assert!(validate(&set(SHARE_AUTO_OFFSET_RESET, "by_duration:PT1H")).is_err());
        assert!(validate(&set("share.record.lock.duration.ms", "15000")).is_err());
    }
}
