//! Kafka's listener settings: `listeners` (`NAME://HOST:PORT`, comma-separated),
//! `advertised.listeners` (what Metadata tells clients, per listener name; a listener not listed
//! there is advertised as it listens), `listener.security.protocol.map` (`NAME:PROTOCOL` pairs;
//! the default maps each protocol name to itself) and `inter.broker.listener.name` (accepted,
//! checked to name a listener). Listeners named in `controller.listener.names` (and one named
//! CONTROLLER) are the KRaft controller's and not served.
//!
//! With `--brokers N`, broker i (from 0) listens on each listener's port + i (a port of 0 stays
//! 0: each broker gets free ports) and advertises each advertised port + i.

use super::{invalid, ConfigError};

/// org.apache.kafka.common.security.auth.SecurityProtocol, with its wire ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// The id RegisterBrokerRecord and the protocol carry.
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// One listener of the broker (of every broker, with `--brokers`: see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The listener name, upper case as Kafka normalises it (ListenerName.normalised).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where to bind; an empty host in `listeners` means every interface.
    pub host: String,
    pub port: u16,
    /// What Metadata answers on this listener; `None`: the bound address.
    pub advertised: Option<(String, u16)>,
}

impl ListenerConfig {
    /// The one listener of `--listen HOST:PORT` and of the default (PLAINTEXT).
    pub fn plaintext(host: &str, port: u16) -> ListenerConfig {
        ListenerConfig {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            host: host.to_string(),
            port,
            advertised: None,
        }
    }

    /// The prefix of this listener's own settings (`listener.name.sasl_ssl.`).
    pub fn config_prefix(&self) -> String {
        format!("listener.name.{}.", self.name.to_ascii_lowercase())
    }
}

/// `NAME://HOST:PORT` (IPv6 hosts in brackets; an empty host is every interface).
fn parse_endpoint(s: &str) -> Option<(String, String, u16)> {
    let (name, rest) = s.trim().split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return None;
    }
    Some((
        name.to_ascii_uppercase(),
        host.to_string(),
        port.parse().ok()?,
    ))
}

fn endpoints(setting: &str, list: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            parse_endpoint(l).ok_or_else(|| invalid(setting, list, "expected NAME://HOST:PORT"))
        })
        .collect()
}

/// `listener.security.protocol.map`; without it, Kafka's default (each protocol by its name).
fn protocol_map(map: Option<&str>) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    let name = "listener.security.protocol.map";
    let Some(map) = map else {
        return Ok(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
            .into_iter()
            .filter_map(|p| Some((p.to_string(), SecurityProtocol::parse(p)?)))
            .collect());
    };
    map.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (l, p) = e
                .split_once(':')
                .ok_or_else(|| invalid(name, map, "expected NAME:PROTOCOL pairs"))?;
            let protocol = SecurityProtocol::parse(p)
                .ok_or_else(|| invalid(name, map, format!("unknown security protocol {p}")))?;
            Ok((l.trim().to_ascii_uppercase(), protocol))
        })
        .collect()
}

/// The names `controller.listener.names` lists, upper case.
fn controller_names(get: &impl Fn(&str) -> Option<String>) -> Vec<String> {
    get("controller.listener.names")
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Where the controller listener binds: the first `listeners` entry that
/// `controller.listener.names` names (the quorum's RPCs; see `metadata::quorum::transport`).
pub fn controller_endpoint(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<(String, u16)>, ConfigError> {
    Ok(controller_listener(get)?
        .filter(|l| l.port != 0 || !l.host.is_empty())
        .map(|l| (l.host, l.port)))
}

/// The controller listener as its clients and server see it: the first `listeners` entry that
/// `controller.listener.names` names where this process listens on one (a voter), else the
/// first name there (what a broker-only process connects to, Kafka's RaftManager's choice; no
/// host or port); its security protocol from `listener.security.protocol.map`. A map that is
/// set must name it (KafkaConfig's check); without the map it is PLAINTEXT, as Kafka's
/// effective default map makes it (Kafka refuses that default too when a listener is named
/// after SSL or SASL_*; gregor does not look).
pub fn controller_listener(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<ListenerConfig>, ConfigError> {
    let names = controller_names(&get);
    let Some(first) = names.first() else {
        return Ok(None);
    };
    let bound = match get("listeners") {
        Some(list) => endpoints("listeners", &list)?
            .into_iter()
            .find(|(name, _, _)| names.contains(name)),
        None => None,
    };
    let (name, host, port) = bound.unwrap_or_else(|| (first.clone(), String::new(), 0));
    let set = get("listener.security.protocol.map");
    let map = protocol_map(set.as_deref())?;
    let protocol = match (map.iter().find(|(n, _)| *n == name), set) {
        (Some((_, p)), _) => *p,
        (None, None) => SecurityProtocol::Plaintext,
        (None, Some(set)) => return Err(invalid(
            "listener.security.protocol.map",
            &set,
            format!("Controller listener with name {name} defined in controller.listener.names not found in listener.security.protocol.map (an explicit security mapping for each controller listener is required if listener.security.protocol.map is non-empty)"),
        )),
    };
    Ok(Some(ListenerConfig {
        name,
        protocol,
        host,
        port,
        advertised: None,
    }))
}

/// The listeners the settings describe (see the module comment). `get` looks a setting up.
pub fn listeners(get: impl Fn(&str) -> Option<String>) -> Result<Vec<ListenerConfig>, ConfigError> {
    let map = protocol_map(get("listener.security.protocol.map").as_deref())?;
    let mut controllers = controller_names(&get);
    controllers.push("CONTROLLER".to_string());
    // Without `listeners`, Kafka's default PLAINTEXT listener (whose advertised address
    // `advertised.listeners` may still set).
    let list = get("listeners").unwrap_or_else(|| "PLAINTEXT://127.0.0.1:9092".to_string());
    let mut out: Vec<ListenerConfig> = Vec::new();
    for (name, host, port) in endpoints("listeners", &list)? {
        if controllers.contains(&name) {
            continue;
        }
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(
                "listeners",
                &list,
                format!("listener {name} appears twice"),
            ));
        }
        let protocol = map
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                invalid(
                    "listener.security.protocol.map",
                    &get("listener.security.protocol.map").unwrap_or_default(),
                    format!("no security protocol for listener {name}"),
                )
            })?;
        out.push(ListenerConfig {
            name,
            protocol,
            host,
            port,
            advertised: None,
        });
    }
    if out.is_empty() {
        return Err(invalid("listeners", &list, "no broker listener"));
    }
    if let Some(adv) = get("advertised.listeners") {
        for (name, host, port) in endpoints("advertised.listeners", &adv)? {
            let l = out.iter_mut().find(|l| l.name == name).ok_or_else(|| {
                invalid(
                    "advertised.listeners",
                    &adv,
                    format!("{name} is not in listeners"),
                )
            })?;
            l.advertised = Some((host, port));
        }
    }
    if let Some(ibl) = get("inter.broker.listener.name") {
        let ibl = ibl.trim().to_ascii_uppercase();
        if !out.iter().any(|l| l.name == ibl) {
            return Err(invalid(
                "inter.broker.listener.name",
                &ibl,
                "must be the name of a listener in listeners",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Vec<ListenerConfig>, ConfigError> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        listeners(|k| m.get(k).cloned())
    }

    #[test]
    fn default_is_plaintext_on_loopback() {
        assert_eq!(
            parse(&[]).unwrap(),
            vec![ListenerConfig::plaintext("127.0.0.1", 9092)]
        );
    }

    #[test]
    fn advertised_listeners_apply_to_the_default_listener() {
        // Kafka: without `listeners` the broker listens on PLAINTEXT and advertises what
        // `advertised.listeners` says (a broker behind a proxy or NAT).
        let l = parse(&[("advertised.listeners", "PLAINTEXT://proxy.example:9999")]).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].port, 9092);
        assert_eq!(l[0].advertised, Some(("proxy.example".to_string(), 9999)));
    }

    #[test]
    fn several_listeners_with_map_and_advertised() {
        let l = parse(&[
            (
                "listeners",
                "INTERNAL://127.0.0.1:9092, external://:9093,SASL_SSL://[::1]:9094,CONTROLLER://:9095",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            ),
            ("advertised.listeners", "EXTERNAL://kafka.example:19093"),
            ("inter.broker.listener.name", "INTERNAL"),
        ])
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[1].name, "EXTERNAL");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(l[1].host, "");
        assert_eq!(l[1].advertised, Some(("kafka.example".into(), 19093)));
        assert_eq!(l[2].host, "::1");
        assert_eq!(l[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[2].config_prefix(), "listener.name.sasl_ssl.");
    }

    /// The controller listener's protocol: the map's; PLAINTEXT without a map; a map that does
    /// not name it stops start-up (KafkaConfig: "Controller listener with name CONTROLLER
    /// defined in controller.listener.names not found in listener.security.protocol.map").
    #[test]
    fn the_controller_listener_needs_a_mapping_when_the_map_is_set() {
        let controller = |map: Option<&str>| {
            let mut m: BTreeMap<String, String> = [
                ("listeners", "INTERNAL://:9092,CONTROLLER://:9093"),
                ("controller.listener.names", "controller"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            if let Some(map) = map {
                m.insert("listener.security.protocol.map".into(), map.into());
            }
            controller_listener(|k| m.get(k).cloned())
        };
        let protocol = |map| controller(map).unwrap().unwrap().protocol;
        assert_eq!(
            protocol(Some("INTERNAL:SSL,CONTROLLER:SSL")),
            SecurityProtocol::Ssl
        );
        assert_eq!(protocol(None), SecurityProtocol::Plaintext);
        let e = controller(Some("INTERNAL:SSL")).unwrap_err().to_string();
        assert!(
            e.contains("CONTROLLER defined in controller.listener.names not found"),
            "{e}"
        );
    }

    #[test]
    fn bad_listener_settings_are_refused() {
        assert!(parse(&[("listeners", "INTERNAL://:9092")]).is_err());
        assert!(parse(&[("listeners", "PLAINTEXT://:9092,PLAINTEXT://:9093")]).is_err());
        assert!(parse(&[("listeners", "localhost:9092")]).is_err());
        assert!(parse(&[
            ("listeners", "PLAINTEXT://:9092"),
            ("advertised.listeners", "SSL://x:1")
        ])
        .is_err());
        assert!(parse(&[
            ("listeners", "PLAINTEXT://:9092"),
            ("inter.broker.listener.name", "SSL")
        ])
        .is_err());
    }
}
