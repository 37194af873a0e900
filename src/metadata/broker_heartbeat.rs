//! Broker liveness in a quorum of processes, as Kafka's active controller keeps it
//! (`BrokerHeartbeatManager` and the heartbeat half of `ReplicationControlManager`).
//!
//! Each broker heartbeats to the active controller (the quorum's leader) every
//! `broker.heartbeat.interval.ms` with its broker epoch and the offset of the last metadata record
//! it applied. The controller:
//! - answers STALE_BROKER_EPOCH to an epoch that is not the registration's (the broker has
//!   registered again since), BROKER_ID_NOT_REGISTERED to a broker it does not know;
//! - fences a broker it has not heard from for `broker.session.timeout.ms`
//!   (`election::broker_fenced`: the broker leaves every ISR, each partition it led elects another
//!   in-sync replica or goes offline);
//! - unfences a fenced broker that heartbeats again once it has applied the metadata log up to its
//!   own registration (`election::broker_unfenced`), as Kafka's controller does once the broker's
//!   reported offset passes its RegisterBrokerRecord's. A broker registers fenced
//!   (`Catalog::register_fenced`), so its first such heartbeat is what brings it in; what its
//!   earlier incarnation still led or was in sync for is taken from it first, so that it leads
//!   again at a new leader epoch.
//!
//! A controller that becomes active (a new Raft term) cannot know when the brokers last spoke to
//! its predecessor: every broker gets a whole session from that moment, as Kafka's new active
//! controller starts its heartbeat manager afresh. Likewise a broker that registers again (a new
//! epoch) starts a new session.
//!
//! Sans-IO: times are the caller's `now` (the broker's clock), the records go to the catalog.

use std::collections::BTreeMap;

use super::election::{self, ElectionPolicy, Pending};
use super::image::{MetadataImage, ReplayError};
use super::records::MetadataRecord;
use crate::protocol::errors;

/// A broker's heartbeat (the fields of Kafka's BrokerHeartbeatRequest gregor acts on).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerHeartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The offset of the last metadata record the broker has applied.
    pub current_metadata_offset: i64,
}

/// The controller's answer (Kafka's BrokerHeartbeatResponse).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatReply {
    pub error_code: i16,
    /// The broker has applied the metadata log up to its registration.
    pub is_caught_up: bool,
    pub is_fenced: bool,
}

impl HeartbeatReply {
    pub fn error(code: i16) -> Self {
        HeartbeatReply {
            error_code: code,
            is_caught_up: false,
            is_fenced: true,
        }
    }
}

/// The heartbeat's effect on the image: the records that unfence the broker (none when it stays
/// as it is) and the answer, or the error for an unknown broker or a stale epoch.
pub fn decide(
    image: &MetadataImage,
    hb: &BrokerHeartbeat,
    policy: &ElectionPolicy,
) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ReplayError> {
    let Some(reg) = image.brokers.get(&hb.broker_id) else {
        let reply = HeartbeatReply::error(errors::BROKER_ID_NOT_REGISTERED);
        return Ok((vec![], reply));
    };
    if reg.epoch != hb.broker_epoch {
        return Ok((vec![], HeartbeatReply::error(errors::STALE_BROKER_EPOCH)));
    }
    let is_caught_up = hb.current_metadata_offset >= reg.epoch;
    let mut out = Pending::new(image);
    if reg.fenced && is_caught_up {
        // A broker registered again (restarted) may still lead or be in ISRs as its earlier
        // incarnation did: those end first, so that it leads again at a new leader epoch.
        out.push(election::broker_fenced(image, hb.broker_id, policy))?;
        let unfenced = election::broker_unfenced(&out.image, hb.broker_id, policy)?;
        out.push(unfenced)?;
    }
    let is_fenced = out
        .image
        .brokers
        .get(&hb.broker_id)
        .is_none_or(|b| b.fenced);
    let reply = HeartbeatReply {
        error_code: errors::NONE,
        is_caught_up,
        is_fenced,
    };
    Ok((out.records, reply))
}

/// When the active controller last heard from each broker.
#[derive(Debug)]
pub struct BrokerHeartbeatManager {
    session_timeout_ms: i64,
    /// The Raft term these contacts were heard in (`None`: this node is not active).
    term: Option<i32>,
    /// Each broker's last contact: the broker epoch it spoke at, and when.
    contacts: BTreeMap<i32, (i64, i64)>,
}

impl BrokerHeartbeatManager {
    pub fn new(session_timeout_ms: i64) -> Self {
        BrokerHeartbeatManager {
            session_timeout_ms,
            term: None,
            contacts: BTreeMap::new(),
        }
    }

    /// This node is the active controller in `term`: a term other than the last forgets every
    /// contact (each broker's session starts again as it is next looked at).
    pub fn activate(&mut self, term: i32) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.contacts.clear();
        }
    }

    /// This node is not the active controller: nothing it heard stays valid.
    pub fn deactivate(&mut self) {
        self.term = None;
        self.contacts.clear();
    }

    pub fn is_active(&self) -> bool {
        self.term.is_some()
    }

    /// A heartbeat from `broker_id` at `broker_epoch` arrived at `now`.
    pub fn touch(&mut self, broker_id: i32, broker_epoch: i64, now: i64) {
        if self.term.is_some() {
            self.contacts.insert(broker_id, (broker_epoch, now));
        }
    }

    /// The unfenced brokers of `image` whose session has passed at `now`, by id. A broker not
    /// heard from at its current epoch (registered since, or since this controller became
    /// active) starts a session now. Nothing expires on a controller that is not active.
    pub fn expired(&mut self, image: &MetadataImage, now: i64) -> Vec<(i32, i64)> {
        if self.term.is_none() {
            return vec![];
        }
        self.contacts.retain(|id, _| image.brokers.contains_key(id));
        let mut out = Vec::new();
        for b in image.brokers.values().filter(|b| !b.fenced) {
            let contact = self.contacts.entry(b.id).or_insert((b.epoch, now));
            if contact.0 != b.epoch {
                *contact = (b.epoch, now);
            }
            if now - contact.1 > self.session_timeout_ms {
                out.push((b.id, b.epoch));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::replay_all;
    use crate::metadata::records::{PartitionRecord, RegisterBrokerRecord};
    use std::sync::Arc;
    use uuid::Uuid;

    fn register(id: i32, epoch: i64, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord::bare(id, epoch, fenced))
    }

    const TOPIC: Uuid = Uuid::from_u128(0x70);

    /// Brokers 1 and 2 (epochs 10 and 20), and a partition on broker 2 alone that it leads.
    fn image(two_fenced: bool) -> MetadataImage {
        let records = vec![
            register(1, 10, false),
            register(2, 20, two_fenced),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: TOPIC,
            },
            MetadataRecord::Partition(PartitionRecord::new_in_sync(TOPIC, 0, vec![2])),
        ];
        replay_all(Arc::new(MetadataImage::default()), &records).unwrap()
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        replay_all(Arc::new(image.clone()), records).unwrap()
    }

    fn leader(image: &MetadataImage) -> i32 {
        image.topics.get(TOPIC).unwrap().partitions[&0].leader
    }

    fn hb(id: i32, epoch: i64, offset: i64) -> BrokerHeartbeat {
        BrokerHeartbeat {
            broker_id: id,
            broker_epoch: epoch,
            current_metadata_offset: offset,
        }
    }

    /// A session passes only without heartbeats: each heartbeat starts it again, and the broker
    /// is reported once broker.session.timeout.ms has passed since the last.
    #[test]
    fn a_broker_expires_a_session_after_its_last_heartbeat() {
        let image = image(false);
        let mut m = BrokerHeartbeatManager::new(9000);
        m.activate(1);
        assert!(m.expired(&image, 1000).is_empty(), "sessions start now");
        m.touch(1, 10, 5000);
        assert!(m.expired(&image, 10_000).is_empty());
        assert_eq!(m.expired(&image, 10_001), vec![(2, 20)]);
        assert!(m.expired(&image, 14_000).len() == 1);
        assert_eq!(m.expired(&image, 14_001), vec![(1, 10), (2, 20)]);
    }

    /// A new term forgets every contact and gives each broker a whole session; a controller
    /// that is not active fences no one; a broker registered again starts a new session.
    #[test]
    fn a_new_controller_or_a_new_registration_starts_a_new_session() {
        let image = image(false);
        let mut m = BrokerHeartbeatManager::new(9000);
        assert!(m.expired(&image, 0).is_empty());
        m.activate(1);
        assert!(m.expired(&image, 0).is_empty());
        m.activate(1);
        assert_eq!(
            m.expired(&image, 9001).len(),
            2,
            "the same term keeps its contacts"
        );
        m.activate(2);
        assert!(m.expired(&image, 9001).is_empty());
        assert_eq!(m.expired(&image, 18_002).len(), 2);
        let again = apply(&image, &[register(2, 30, false)]);
        assert_eq!(m.expired(&again, 18_003), vec![(1, 10)]);
        m.deactivate();
        m.touch(1, 10, 20_000);
        assert!(m.expired(&again, 99_999).is_empty());
    }

    /// A fenced broker is never reported again.
    #[test]
    fn a_fenced_broker_has_no_session() {
        let image = image(true);
        let mut m = BrokerHeartbeatManager::new(100);
        m.activate(1);
        m.expired(&image, 0);
        assert_eq!(m.expired(&image, 1000), vec![(1, 10)]);
    }

    /// Errors for unknown brokers and stale epochs; a live broker's heartbeat changes nothing.
    #[test]
    fn a_heartbeat_is_checked_against_the_registration() {
        let image = image(false);
        let policy = ElectionPolicy::default();
        let (records, reply) = decide(&image, &hb(3, 0, 100), &policy).unwrap();
        assert!(records.is_empty());
        assert_eq!(reply.error_code, errors::BROKER_ID_NOT_REGISTERED);
        let (_, reply) = decide(&image, &hb(1, 9, 100), &policy).unwrap();
        assert_eq!(reply.error_code, errors::STALE_BROKER_EPOCH);
        let (records, reply) = decide(&image, &hb(1, 10, 100), &policy).unwrap();
        assert!(records.is_empty());
        let live = HeartbeatReply {
            error_code: errors::NONE,
            is_caught_up: true,
            is_fenced: false,
        };
        assert_eq!(reply, live);
    }

    /// A fenced broker behind its own registration stays fenced; caught up, it is unfenced and
    /// leads again the partition that went offline with it.
    #[test]
    fn a_fenced_broker_is_unfenced_once_caught_up() {
        let policy = ElectionPolicy::default();
        let live = image(false);
        let fenced = apply(&live, &election::broker_fenced(&live, 2, &policy));
        assert!(fenced.brokers[&2].fenced);
        assert_eq!(leader(&fenced), crate::metadata::records::NO_LEADER);
        let (records, reply) = decide(&fenced, &hb(2, 20, 19), &policy).unwrap();
        assert!(records.is_empty());
        assert!(reply.is_fenced && !reply.is_caught_up);
        let (records, reply) = decide(&fenced, &hb(2, 20, 20), &policy).unwrap();
        assert!(!reply.is_fenced && reply.is_caught_up);
        let back = apply(&fenced, &records);
        assert!(!back.brokers[&2].fenced);
        assert_eq!(leader(&back), 2);
    }

    /// A broker that restarts before its session expired registers again, fenced, while the
    /// image still has it leading: once caught up it leads again, at a new leader epoch.
    #[test]
    fn a_restarted_broker_leads_again_at_a_new_epoch() {
        let policy = ElectionPolicy::default();
        let live = image(false);
        let epoch = |i: &MetadataImage| i.topics.get(TOPIC).unwrap().partitions[&0].leader_epoch;
        let again = apply(&live, &[register(2, 30, true)]);
        assert_eq!(leader(&again), 2);
        let (records, reply) = decide(&again, &hb(2, 30, 30), &policy).unwrap();
        assert!(!reply.is_fenced);
        let back = apply(&again, &records);
        assert_eq!(leader(&back), 2);
        assert!(epoch(&back) > epoch(&live), "{records:?}");
    }
}
