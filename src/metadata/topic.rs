//! A topic: name, id, partitions and configs, and the text form of its catalog file.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use crate::log::partition::Partition;

pub struct Topic {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn is_internal(&self) -> bool {
        is_internal_name(&self.name)
    }
}

/// Kafka's internal topics, which clients may not produce to and Metadata does not auto-create.
pub fn is_internal_name(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state" || name == "__share_group_state"
}

/// '.' and '_' collide in Kafka's metric names, so topics differing only there cannot coexist
/// (Topic.hasCollision).
pub fn collides(a: &str, b: &str) -> bool {
    a != b && a.len() == b.len() && a.replace('.', "_") == b.replace('.', "_")
}

/// Kafka's text form of a Uuid: URL-safe base64 without padding (Uuid.toString).
pub fn kafka_uuid_string(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn parse_kafka_uuid(s: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// Kafka's topic name rules (org.apache.kafka.common.internals.Topic.validate).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The contents of `gregor-metadata/topics/<topic id>.properties`. Files are named by id: a
/// 249-character topic name plus a suffix would exceed the file system's name limit.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicFile {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

impl TopicFile {
    pub fn render(&self) -> String {
        let mut s = format!(
            "name={}\ntopic.id={}\npartitions={}\n",
            self.name,
            kafka_uuid_string(self.topic_id),
            self.partitions
        );
        for (k, v) in &self.configs {
            s.push_str(&format!("config.{k}={v}\n"));
        }
        s
    }

    pub fn parse(text: &str) -> Option<TopicFile> {
        let mut name = None;
        let mut topic_id = None;
        let mut partitions = None;
        let mut configs = BTreeMap::new();
        for (k, v) in crate::config::parse_properties(text) {
            match k.as_str() {
                "name" => name = Some(v),
                "topic.id" => topic_id = parse_kafka_uuid(&v),
                "partitions" => partitions = v.parse().ok().filter(|&p: &i32| p > 0),
                _ => {
                    if let Some(name) = k.strip_prefix("config.") {
                        configs.insert(name.to_string(), v);
                    }
                }
            }
        }
        Some(TopicFile {
            name: name?,
            topic_id: topic_id?,
            partitions: partitions?,
            configs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_round_trip() {
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "100".to_string());
        let f = TopicFile {
            name: "t.1".into(),
            topic_id: Uuid::new_v4(),
            partitions: 4,
            configs,
        };
        assert_eq!(TopicFile::parse(&f.render()), Some(f));
    }

    #[test]
    fn collisions() {
        assert!(collides("a.b", "a_b"));
        assert!(!collides("a.b", "a.b"));
        assert!(!collides("a.b", "a-b"));
    }

    #[test]
    fn uuid_text_form() {
        let id = Uuid::from_u128(1);
        assert_eq!(kafka_uuid_string(id), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAQ"), Some(id));
    }
}
