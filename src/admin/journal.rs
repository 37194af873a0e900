//! The request journal (`GET /v1/journal?client_id=&api=&limit=`): the most recent requests
//! every broker of this process served, in a bounded ring (`--journal-size`, default 10000), so a
//! test can assert what its application actually sent. It records only while the admin listener
//! is on; otherwise `enabled` is false and the request path never looks further.
//!
//! Each entry: the broker clock's time, the broker (node id), the connection (an id for this
//! process's life, the peer), the client id and client software (name and version from the
//! connection's ApiVersions, KIP-511), the API and version, the correlation id, the topics (with
//! partitions), groups and transactional ids the request named, the error codes answered (every
//! `error_code` in the response, see `protocol::error_codes`), what happened (`answered`, `no_answer` for an acks=0 produce,
//! `closed`, `black_hole`) and the fault rule that fired, if any.

use std::collections::VecDeque;
use std::net::SocketAddr;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::protocol::{errors, named::Named};

/// Entries kept when `--journal-size` is not given.
pub const DEFAULT_SIZE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Entry {
    pub time_ms: i64,
    pub broker: i32,
    pub connection_id: u64,
    pub peer: SocketAddr,
    pub client_id: String,
    pub client_software: Option<(String, String)>,
    pub api: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub named: Named,
    pub error_codes: Vec<i16>,
    pub outcome: &'static str,
    pub fault: Option<(u64, String)>,
}

impl Entry {
    fn to_json(&self, seq: u64) -> Value {
        let topics: Vec<Value> = (self.named.topics.iter())
            .map(|(t, p)| json!({"topic": t, "partitions": p}))
            .collect();
        let (software, software_version) = match &self.client_software {
            Some((n, v)) => (Some(n.as_str()), Some(v.as_str())),
            None => (None, None),
        };
        let names: Vec<String> = self
            .error_codes
            .iter()
            .map(|c| errors::name_of(*c))
            .collect();
        json!({
            "seq": seq,
            "time_ms": self.time_ms,
            "broker": self.broker,
            "connection_id": self.connection_id,
            "peer": self.peer.to_string(),
            "client_id": self.client_id,
            "client_software_name": software,
            "client_software_version": software_version,
            "api": format!("{:?}", self.api),
            "api_key": self.api as i16,
            "api_version": self.api_version,
            "correlation_id": self.correlation_id,
            "topics": topics,
            "groups": self.named.groups,
            "transactional_ids": self.named.transactional_ids,
            "error_codes": self.error_codes,
            "errors": names,
            "outcome": self.outcome,
            "fault": self.fault.as_ref().map(|(id, a)| json!({"rule": id, "action": a})),
        })
    }
}

pub struct Journal {
    enabled: bool,
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    /// Sequence number of the next entry (entries count from 1 over the process's life).
    next: u64,
    entries: VecDeque<(u64, Entry)>,
}

/// Which entries `GET /v1/journal` returns.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pub client_id: Option<String>,
    pub api: Option<ApiKey>,
    /// The most recent this many of those that match (all kept when absent).
    pub limit: Option<usize>,
}

impl Journal {
    /// A journal that records when `enabled`, keeping the last `capacity` entries.
    pub fn new(enabled: bool, capacity: usize) -> Journal {
        Journal {
            enabled: enabled && capacity > 0,
            capacity,
            ring: Mutex::new(Ring::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn record(&self, entry: Entry) {
        if !self.enabled {
            return;
        }
        let mut ring = self.ring.lock();
        ring.next += 1;
        let seq = ring.next;
        if ring.entries.len() >= self.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back((seq, entry));
    }

    /// The matching entries, oldest first.
    pub fn query(&self, q: &Query) -> Vec<Value> {
        let ring = self.ring.lock();
        let matching = ring.entries.iter().filter(|(_, e)| {
            q.client_id.as_ref().is_none_or(|c| *c == e.client_id)
                && q.api.is_none_or(|a| a == e.api)
        });
        let mut out: Vec<Value> = matching
            .rev()
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|(seq, e)| e.to_json(*seq))
            .collect();
        out.reverse();
        out
    }

    /// Forgets every entry (sequence numbers go on).
    pub fn clear(&self) {
        self.ring.lock().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(client_id: &str, api: ApiKey) -> Entry {
        Entry {
            time_ms: 1,
            broker: 1,
            connection_id: 1,
            peer: "127.0.0.1:5".parse().unwrap(),
            client_id: client_id.into(),
            client_software: None,
            api,
            api_version: 0,
            correlation_id: 0,
            named: Named::default(),
            error_codes: vec![],
            outcome: "answered",
            fault: None,
        }
    }

    #[test]
    fn a_bounded_ring_filtered_by_client_and_api() {
        let j = Journal::new(true, 3);
        for (c, a) in [
            ("a", ApiKey::Metadata),
            ("a", ApiKey::Produce),
            ("b", ApiKey::Produce),
            ("a", ApiKey::Produce),
        ] {
            j.record(entry(c, a));
        }
        let all = j.query(&Query::default());
        let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [2, 3, 4], "the oldest went");
        let q = Query {
            client_id: Some("a".into()),
            api: Some(ApiKey::Produce),
            limit: Some(1),
        };
        let last = j.query(&q);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0]["seq"], 4);
        assert_eq!(last[0]["api"], "Produce");
        j.clear();
        assert!(j.query(&Query::default()).is_empty());
    }

    #[test]
    fn off_records_nothing() {
        let j = Journal::new(false, 10);
        j.record(entry("a", ApiKey::Metadata));
        assert!(j.query(&Query::default()).is_empty());
    }
}
