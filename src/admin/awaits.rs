//! Await instead of sleep (`GET /v1/await?...&timeout_ms=`): blocks until a condition on the
//! broker's state holds (200) or `timeout_ms` passes (408), answering the last observed state
//! either way, so a test waits exactly as long as it must. One condition a request, by its
//! parameters:
//!
//! | parameters                                        | holds when                               |
//! |---------------------------------------------------|------------------------------------------|
//! | `group=G` [`state=S`] [`members=N`]               | G exists, in state S, with N members     |
//! | `group=G&topic=T&partition=P&committed_offset=X`  | G's committed offset of T-P is ≥ X       |
//! | `topic=T&partition=P&high_watermark=X`            | T-P's high watermark is ≥ X              |
//! | `topic=T&partition=P&last_stable_offset=X`        | T-P's last stable offset is ≥ X          |
//! | `topic=T` [`partitions=N`]                        | T exists, with N partitions              |
//!
//! States are Kafka's names (`Stable`, `Empty`, `PreparingRebalance`, ...; any case).
//! `timeout_ms` defaults to 10 s, at most MAX_TIMEOUT_MS. The condition is looked at every
//! POLL: group, offset and topic changes have no notification to wait on here, and a
//! short poll of in-memory state costs nothing a client would notice.

use std::time::Duration;

use serde_json::{json, Value};

use crate::broker::Broker;

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 300_000;
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Group {
        group: String,
        state: Option<String>,
        members: Option<usize>,
    },
    Committed {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
    },
    HighWatermark {
        topic: String,
        partition: i32,
        offset: i64,
    },
    LastStableOffset {
        topic: String,
        partition: i32,
        offset: i64,
    },
    Topic {
        topic: String,
        partitions: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Await {
    pub condition: Condition,
    pub timeout: Duration,
}

/// The condition and timeout a query string names, or why it names none.
pub fn parse(pairs: &[(String, String)]) -> Result<Await, String> {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let num = |k: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{k} must be an integer, not '{v}'"))
            })
            .transpose()
    };
    let count = |k: &str| -> Result<Option<usize>, String> {
        get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{k} must be a count, not '{v}'"))
            })
            .transpose()
    };
    let known = [
        "group",
        "state",
        "members",
        "topic",
        "partition",
        "partitions",
        "committed_offset",
        "high_watermark",
        "last_stable_offset",
        "timeout_ms",
    ];
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(format!("unknown parameter '{k}'"));
    }
    let timeout_ms = match num("timeout_ms")? {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) if t >= 0 => (t as u64).min(MAX_TIMEOUT_MS),
        Some(_) => return Err("timeout_ms must be >= 0".into()),
    };
    let partition = || -> Result<i32, String> {
        let p = num("partition")?.ok_or("this condition needs a partition")?;
        i32::try_from(p).map_err(|_| "partition out of range".to_string())
    };
    let topic = get("topic");
    let condition = match (get("group"), topic) {
        (Some(group), Some(topic)) => Condition::Committed {
            group,
            topic,
            partition: partition()?,
            offset: num("committed_offset")?.ok_or("group and topic need committed_offset")?,
        },
        (Some(group), None) => Condition::Group {
            group,
            state: get("state"),
            members: count("members")?,
        },
        (None, Some(topic)) => match (num("high_watermark")?, num("last_stable_offset")?) {
            (Some(offset), None) => Condition::HighWatermark {
                topic,
                partition: partition()?,
                offset,
            },
            (None, Some(offset)) => Condition::LastStableOffset {
                topic,
                partition: partition()?,
                offset,
            },
            (None, None) => Condition::Topic {
                topic,
                partitions: count("partitions")?,
            },
            (Some(_), Some(_)) => return Err("one of high_watermark, last_stable_offset".into()),
        },
        (None, None) => return Err("name a group or a topic".into()),
    };
    Ok(Await {
        condition,
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// Whether the condition holds now, and what was observed.
fn observe(broker: &Broker, c: &Condition) -> (bool, Value) {
    match c {
        Condition::Group {
            group,
            state,
            members,
        } => match broker.groups.describe(group) {
            None => (false, json!({"group": group, "exists": false})),
            Some(d) => {
                let holds = state
                    .as_ref()
                    .is_none_or(|s| s.eq_ignore_ascii_case(d.state))
                    && members.is_none_or(|n| n == d.members.len());
                let observed = json!({"group": group, "exists": true, "state": d.state,
                                      "members": d.members.len()});
                (holds, observed)
            }
        },
        Condition::Committed {
            group,
            topic,
            partition,
            offset,
        } => {
            let wanted = Some(vec![(topic.clone(), vec![*partition])]);
            // A shard still loading has nothing to show yet: the await keeps waiting.
            let fetched = (broker.groups.fetch_offsets(group, wanted, false)).unwrap_or_default();
            let committed = fetched
                .iter()
                .find_map(|(_, _, r)| r.as_ref().ok().cloned().flatten())
                .map_or(-1, |c| c.offset);
            let observed = json!({"group": group, "topic": topic, "partition": partition,
                                  "committed_offset": committed});
            (committed >= *offset, observed)
        }
        Condition::HighWatermark {
            topic,
            partition,
            offset,
        } => partition_offset(broker, topic, *partition, *offset, "high_watermark", |p| {
            p.with_log(|l| l.high_watermark())
        }),
        Condition::LastStableOffset {
            topic,
            partition,
            offset,
        } => partition_offset(
            broker,
            topic,
            *partition,
            *offset,
            "last_stable_offset",
            |p| p.last_stable_offset(),
        ),
        Condition::Topic { topic, partitions } => match broker.catalog.get(topic) {
            None => (false, json!({"topic": topic, "exists": false})),
            Some(t) => {
                let n = t.partitions.len();
                let observed = json!({"topic": topic, "exists": true, "partitions": n});
                (partitions.is_none_or(|want| want == n), observed)
            }
        },
    }
}

fn partition_offset(
    broker: &Broker,
    topic: &str,
    partition: i32,
    want: i64,
    what: &str,
    read: impl Fn(&crate::log::partition::Partition) -> i64,
) -> (bool, Value) {
    let found = broker.catalog.get(topic).and_then(|t| {
        let p = usize::try_from(partition).ok()?;
        t.partitions.get(p).map(|p| read(p))
    });
    match found {
        None => (
            false,
            json!({"topic": topic, "partition": partition, "exists": false}),
        ),
        Some(at) => (
            at >= want,
            json!({"topic": topic, "partition": partition, "exists": true, what: at}),
        ),
    }
}

/// Waits for the condition: (true, observed) when it held within the timeout.
pub async fn wait(broker: &Broker, a: &Await) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + a.timeout;
    loop {
        let (holds, observed) = observe(broker, &a.condition);
        if holds || tokio::time::Instant::now() >= deadline {
            return (holds, observed);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn parses_each_condition() {
        let a = parse(&q("group=g&state=Stable&members=2&timeout_ms=500")).unwrap();
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(
            a.condition,
            Condition::Group {
                group: "g".into(),
                state: Some("Stable".into()),
                members: Some(2)
            }
        );
        let a = parse(&q("group=g&topic=t&partition=1&committed_offset=5")).unwrap();
        assert!(matches!(
            a.condition,
            Condition::Committed {
                partition: 1,
                offset: 5,
                ..
            }
        ));
        let a = parse(&q("topic=t&partition=0&high_watermark=3")).unwrap();
        assert!(matches!(
            a.condition,
            Condition::HighWatermark { offset: 3, .. }
        ));
        let a = parse(&q("topic=t&partition=0&last_stable_offset=3")).unwrap();
        assert!(matches!(
            a.condition,
            Condition::LastStableOffset { offset: 3, .. }
        ));
        let a = parse(&q("topic=t&partitions=4")).unwrap();
        assert_eq!(a.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert!(matches!(
            a.condition,
            Condition::Topic {
                partitions: Some(4),
                ..
            }
        ));
        let a = parse(&q("topic=t&timeout_ms=99999999")).unwrap();
        assert_eq!(a.timeout, Duration::from_millis(MAX_TIMEOUT_MS));
    }

    #[test]
    fn refuses_what_names_no_condition() {
        for bad in [
            "",
            "state=Stable",
            "group=g&members=x",
            "group=g&topic=t&partition=0",
            "topic=t&high_watermark=1",
            "topic=t&partition=0&high_watermark=1&last_stable_offset=1",
            "topic=t&timeout_ms=-1",
            "topic=t&color=red",
        ] {
            assert!(parse(&q(bad)).is_err(), "{bad}");
        }
    }
}
