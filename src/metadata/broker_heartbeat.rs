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
//!   (`register_fenced`), so its first such heartbeat is what brings it in; what its earlier
//!   incarnation still led or was in sync for is taken from it when it registers (and, for a
//!   registration that did not, when it is unfenced), so that it leads again at a new leader
//!   epoch, and never while fenced.
//!
//! A controller that becomes active (a new Raft term) cannot know when the brokers last spoke to
//! its predecessor: every broker gets a whole session from that moment, as Kafka's new active
//! controller starts its heartbeat manager afresh. Likewise a broker that registers again (a new
//! epoch) starts a new session. The moment is the node's first liveness event in the term (a
//! heartbeat it answers, or its periodic check: `Broker::fence_expired_at` activates the
//! manager for both), so that every heartbeat the new controller answers counts.
//!
//! Sans-IO: times are the caller's `now`, the records go to the catalog. `now` is the broker
//! clock's monotonic reading (`Clock::monotonic_ms`), as Kafka's contact times are
//! `time.nanoseconds()`: a session is a duration, and a step of the wall clock must not end one.

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
    /// The broker is shutting down and asks for a controlled shutdown (Kafka's wantShutDown).
    #[serde(default)]
    pub want_shut_down: bool,
}

/// The controller's answer (Kafka's BrokerHeartbeatResponse).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatReply {
    pub error_code: i16,
    /// The broker has applied the metadata log up to its registration.
    pub is_caught_up: bool,
    pub is_fenced: bool,
    /// The broker is in controlled shutdown: its leaderships are being moved.
    #[serde(default)]
    pub in_controlled_shutdown: bool,
    /// The broker may stop now (it leads nothing, and the active brokers know it).
    #[serde(default)]
    pub should_shut_down: bool,
}

impl HeartbeatReply {
    pub fn error(code: i16) -> Self {
        HeartbeatReply {
            error_code: code,
            is_caught_up: false,
            is_fenced: true,
            in_controlled_shutdown: false,
            should_shut_down: false,
        }
    }
}

/// Where a broker stands with the active controller (Kafka's BrokerControlState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerControlState {
    Fenced,
    Unfenced,
    /// Asked to shut down while leading partitions: they move to other replicas first.
    ControlledShutdown,
    /// May stop: fenced at once (it leaves every ISR it is still in).
    ShutdownNow,
}

/// What the active controller knows beyond the image for one heartbeat: when the broker entered
/// controlled shutdown (the metadata offset of that change, kept by `BrokerHeartbeatManager`),
/// and the lowest metadata offset the active brokers have reported applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownProgress {
    pub controlled_shutdown_offset: Option<i64>,
    pub lowest_active_offset: i64,
}

impl ShutdownProgress {
    /// No controlled shutdown under way.
    pub const NONE: ShutdownProgress = ShutdownProgress {
        controlled_shutdown_offset: None,
        lowest_active_offset: i64::MAX,
    };
}

/// The broker's next state (BrokerHeartbeatManager.calculateNextBrokerState). A broker in
/// controlled shutdown may stop once it leads nothing and every active broker has applied the
/// change that moved its leaderships (so that they all answer clients with the new leaders).
fn next_state(
    image: &MetadataImage,
    hb: &BrokerHeartbeat,
    fenced: bool,
    is_caught_up: bool,
    progress: ShutdownProgress,
) -> BrokerControlState {
    use BrokerControlState::*;
    let current = match (fenced, progress.controlled_shutdown_offset) {
        (true, _) => Fenced,
        (false, Some(_)) => ControlledShutdown,
        (false, None) => Unfenced,
    };
    let leads = || election::has_leaderships(image, hb.broker_id);
    match current {
        Fenced if hb.want_shut_down => ShutdownNow,
        Fenced if is_caught_up => Unfenced,
        Unfenced if hb.want_shut_down && leads() => ControlledShutdown,
        Unfenced if hb.want_shut_down => ShutdownNow,
        ControlledShutdown if leads() => ControlledShutdown,
        ControlledShutdown => match progress.controlled_shutdown_offset {
            Some(offset) if offset <= progress.lowest_active_offset => ShutdownNow,
            _ => ControlledShutdown,
        },
        state => state,
    }
}

/// The heartbeat's effect on the image: the records of the broker's change of state (none when
/// it stays as it is) and the answer, or the error for an unknown broker or a stale epoch.
pub fn decide(
    image: &MetadataImage,
    hb: &BrokerHeartbeat,
    policy: &ElectionPolicy,
    progress: ShutdownProgress,
) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ReplayError> {
    use BrokerControlState::*;
    let Some(reg) = image.brokers.get(&hb.broker_id) else {
        let reply = HeartbeatReply::error(errors::BROKER_ID_NOT_REGISTERED);
        return Ok((vec![], reply));
    };
    if reg.epoch != hb.broker_epoch {
        return Ok((vec![], HeartbeatReply::error(errors::STALE_BROKER_EPOCH)));
    }
    let is_caught_up = hb.current_metadata_offset >= reg.epoch;
    let next = next_state(image, hb, reg.fenced, is_caught_up, progress);
    let mut out = Pending::new(image);
    match next {
        Unfenced if reg.fenced => {
            // A broker registered again (restarted) by a registration that left them (one
            // written before `register_fenced` did) may still lead or be in ISRs as its earlier
            // incarnation did: those end first, so that it leads again at a new leader epoch.
            out.push(election::broker_fenced(image, hb.broker_id, policy))?;
            let unfenced = election::broker_unfenced(&out.image, hb.broker_id, policy)?;
            out.push(unfenced)?;
        }
        ControlledShutdown if progress.controlled_shutdown_offset.is_none() => {
            let records = election::broker_in_controlled_shutdown(image, hb.broker_id, policy);
            out.push(records)?;
        }
        ShutdownNow => out.push(election::broker_fenced(image, hb.broker_id, policy))?,
        _ => {}
    }
    let reply = HeartbeatReply {
        error_code: errors::NONE,
        is_caught_up,
        is_fenced: matches!(next, Fenced | ShutdownNow),
        in_controlled_shutdown: next == ControlledShutdown,
        should_shut_down: next == ShutdownNow,
    };
    Ok((out.records, reply))
}

/// A broker registers with the controller (`Catalog::register_fenced`): its RegisterBrokerRecord,
/// fenced, its broker epoch the first offset of the batch on `image`. A new incarnation of a
/// registered broker first leaves every ISR it is in, and each partition it led elects another
/// in-sync replica or goes offline (`election::broker_unclean_shutdown`), so that it leads
/// again only once unfenced, at a new leader epoch. Whatever follows is the active controller's
/// to decide: the first heartbeat that shows the broker caught up unfences it (`decide`), and a
/// broker that stops heartbeating is fenced (`fence_expired`).
pub fn register_fenced(
    image: &MetadataImage,
    mut broker: super::records::RegisterBrokerRecord,
    policy: &ElectionPolicy,
) -> Vec<MetadataRecord> {
    let id = broker.broker_id;
    let mut out = match image.brokers.get(&id) {
        Some(b) if b.incarnation_id != broker.incarnation_id => {
            election::broker_unclean_shutdown(image, id, policy)
        }
        _ => vec![],
    };
    broker.broker_epoch = image.provenance.last_offset + 1;
    broker.fenced = true;
    out.push(MetadataRecord::RegisterBroker(broker));
    out
}

/// The active controller fences broker `id`, whose session expired at `epoch`
/// (`BrokerHeartbeatManager::expired`), unless it registered again or was fenced since: the
/// records (`election::broker_fenced`) and whether it does.
pub fn fence_expired(
    image: &MetadataImage,
    id: i32,
    epoch: i64,
    policy: &ElectionPolicy,
) -> (Vec<MetadataRecord>, bool) {
    let current = image.brokers.get(&id);
    if current.is_none_or(|b| b.fenced || b.epoch != epoch) {
        return (vec![], false);
    }
    (election::broker_fenced(image, id, policy), true)
}

/// What the active controller last heard from a broker, beside when (`BrokerHeartbeatTracker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contact {
    /// The broker epoch it spoke at.
    epoch: i64,
    /// The metadata offset it had applied (-1: not heard from yet).
    metadata_offset: i64,
    /// Where it entered controlled shutdown (the end of the metadata log once its leaderships
    /// were moved), while it is in it.
    controlled_shutdown_offset: Option<i64>,
}

/// When a broker was last heard from, at which broker epoch: where its session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heard {
    epoch: i64,
    at: i64,
}

/// When the active controller last heard from each broker (Kafka 4.4's BrokerHeartbeatTracker):
/// the sessions, behind a lock of their own, so that a heartbeat counts from its arrival
/// (`arrived`) rather than from its turn among the controller's liveness events. Those run one
/// at a time under the `BrokerHeartbeatManager` (see `Broker::answer_heartbeat`), and one may
/// hold it for as long as its decision takes to commit (a fencing or an unfencing on a slow
/// disk, a quorum electing a leader): the heartbeats that arrive meanwhile still count, and a
/// session check that runs late (its runtime starved) still sees them, as Kafka's request
/// handler threads record a heartbeat's contact time before it queues for the controller's
/// event thread.
///
/// Where gregor differs: a heartbeat that arrives after its broker's session ended continues
/// nothing (Kafka's tracker takes any arrival until its periodic check has removed the broker):
/// the broker was silent for longer than the session, and it is fenced first, by the check or by
/// that heartbeat's own turn (`Broker::answer_heartbeat`), which then lets it in again, whichever
/// ran first; the outcome does not depend on how late the check runs. (A jump of the
/// controller's clock past the session so fences every broker, the heartbeating one too.)
#[derive(Debug)]
pub struct BrokerHeartbeatTracker {
    session_timeout_ms: i64,
    /// By broker id; only while this node is the active controller (cleared by the manager).
    heard: parking_lot::Mutex<BTreeMap<i32, Heard>>,
}

impl BrokerHeartbeatTracker {
    fn new(session_timeout_ms: i64) -> Self {
        BrokerHeartbeatTracker {
            session_timeout_ms,
            heard: parking_lot::Mutex::default(),
        }
    }

    /// A heartbeat of broker `broker_id` at `broker_epoch` arrived at `now`: it continues the
    /// broker's session if that had not ended (see the type's comment). Nothing for a broker
    /// the manager has not started a session for (this node is not the active controller, or
    /// has not looked at the broker yet) or at another epoch: the heartbeat's turn decides.
    pub fn arrived(&self, broker_id: i32, broker_epoch: i64, now: i64) {
        let mut heard = self.heard.lock();
        if let Some(h) = heard.get_mut(&broker_id) {
            let in_session = now - h.at <= self.session_timeout_ms;
            if h.epoch == broker_epoch && now > h.at && in_session {
                h.at = now;
            }
        }
    }

    /// Broker `broker_id` was heard from at `broker_epoch` at `now` (its heartbeat's turn):
    /// its session starts again from there, or from a later arrival already recorded.
    fn heard(&self, broker_id: i32, broker_epoch: i64, now: i64) {
        let mut heard = self.heard.lock();
        let h = heard.entry(broker_id).or_insert(Heard {
            epoch: broker_epoch,
            at: now,
        });
        if h.epoch != broker_epoch || h.at < now {
            *h = Heard {
                epoch: broker_epoch,
                at: now,
            };
        }
    }

    fn clear(&self) {
        self.heard.lock().clear();
    }
}

/// When the active controller last heard from each broker, what it had applied, and which
/// brokers are in controlled shutdown (Kafka's BrokerHeartbeatManager).
#[derive(Debug)]
pub struct BrokerHeartbeatManager {
    session_timeout_ms: i64,
    /// The Raft term these contacts were heard in (`None`: this node is not active).
    term: Option<i32>,
    contacts: BTreeMap<i32, Contact>,
    /// When each broker was last heard from (shared with the heartbeats' arrival).
    tracker: std::sync::Arc<BrokerHeartbeatTracker>,
}

impl BrokerHeartbeatManager {
    pub fn new(session_timeout_ms: i64) -> Self {
        BrokerHeartbeatManager {
            session_timeout_ms,
            term: None,
            contacts: BTreeMap::new(),
            tracker: std::sync::Arc::new(BrokerHeartbeatTracker::new(session_timeout_ms)),
        }
    }

    /// Where heartbeats are recorded as they arrive, without this manager (Kafka's `tracker()`).
    pub fn tracker(&self) -> std::sync::Arc<BrokerHeartbeatTracker> {
        std::sync::Arc::clone(&self.tracker)
    }

    /// This node is the active controller in `term`: a term other than the last forgets every
    /// contact (each broker's session starts again as it is next looked at; a broker that was
    /// in controlled shutdown enters it again on its next heartbeat, as with Kafka's new
    /// active controller).
    pub fn activate(&mut self, term: i32) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.contacts.clear();
            self.tracker.clear();
        }
    }

    /// This node is not the active controller: nothing it heard stays valid.
    pub fn deactivate(&mut self) {
        self.term = None;
        self.contacts.clear();
        self.tracker.clear();
    }

    pub fn is_active(&self) -> bool {
        self.term.is_some()
    }

    /// A heartbeat from `broker_id` at `broker_epoch` arrived at `now`, the broker having
    /// applied the metadata log up to `metadata_offset`. A broker fenced by it leaves
    /// controlled shutdown (BrokerHeartbeatManager.touch).
    pub fn touch(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        now: i64,
        metadata_offset: i64,
        fenced: bool,
    ) {
        if self.term.is_none() {
            return;
        }
        let contact = self.contacts.entry(broker_id).or_insert(Contact {
            epoch: broker_epoch,
            metadata_offset,
            controlled_shutdown_offset: None,
        });
        if contact.epoch != broker_epoch || fenced {
            contact.controlled_shutdown_offset = None;
        }
        contact.epoch = broker_epoch;
        contact.metadata_offset = metadata_offset;
        self.tracker.heard(broker_id, broker_epoch, now);
    }

    /// The active controller answered `heartbeat` with `reply` (committed) at `now`, the
    /// metadata log then ending at `end_offset`: an answered broker's session starts again, and
    /// one that entered controlled shutdown did so at `end_offset` (Kafka: the heartbeat's batch
    /// end offset, once its leaderships moved).
    pub fn answered(
        &mut self,
        heartbeat: &BrokerHeartbeat,
        reply: &HeartbeatReply,
        now: i64,
        end_offset: i64,
    ) {
        if reply.error_code != errors::NONE {
            return;
        }
        let (id, epoch) = (heartbeat.broker_id, heartbeat.broker_epoch);
        let offset = heartbeat.current_metadata_offset;
        self.touch(id, epoch, now, offset, reply.is_fenced);
        if reply.in_controlled_shutdown {
            self.enter_controlled_shutdown(id, epoch, end_offset);
        }
    }

    /// Broker `broker_id` (at `broker_epoch`) is in controlled shutdown from `offset` on (kept
    /// from its first such heartbeat; maybeUpdateControlledShutdownOffset).
    pub fn enter_controlled_shutdown(&mut self, broker_id: i32, broker_epoch: i64, offset: i64) {
        if let Some(c) = self.contacts.get_mut(&broker_id) {
            if c.epoch == broker_epoch && c.controlled_shutdown_offset.is_none() {
                c.controlled_shutdown_offset = Some(offset);
            }
        }
    }

    /// What `decide` needs to know of broker `broker_id`'s controlled shutdown at
    /// `broker_epoch`: where it began, and the lowest metadata offset the active brokers
    /// (unfenced in `image`, not shutting down, heard from at their current epoch in this term)
    /// applied (i64::MAX when there is none).
    pub fn shutdown_progress(
        &self,
        image: &MetadataImage,
        broker_id: i32,
        broker_epoch: i64,
    ) -> ShutdownProgress {
        let controlled_shutdown_offset = self
            .contacts
            .get(&broker_id)
            .filter(|c| c.epoch == broker_epoch)
            .and_then(|c| c.controlled_shutdown_offset);
        let lowest_active_offset =
            self.contacts
                .iter()
                .filter(|(id, c)| {
                    let active = image.brokers.get(id).is_some_and(|b| {
                        !b.fenced && !b.in_controlled_shutdown && b.epoch == c.epoch
                    });
                    active && c.metadata_offset >= 0 && c.controlled_shutdown_offset.is_none()
                })
                .map(|(_, c)| c.metadata_offset)
                .min()
                .unwrap_or(i64::MAX);
        ShutdownProgress {
            controlled_shutdown_offset,
            lowest_active_offset,
        }
    }

    /// The unfenced brokers of `image` whose session has passed at `now`, by id. A broker not
    /// heard from at its current epoch (registered since, or since this controller became
    /// active) starts a session now. Nothing expires on a controller that is not active.
    /// Heartbeats count from their arrival (`BrokerHeartbeatTracker::arrived`), answered or not.
    pub fn expired(&mut self, image: &MetadataImage, now: i64) -> Vec<(i32, i64)> {
        if self.term.is_none() {
            return vec![];
        }
        self.contacts.retain(|id, _| image.brokers.contains_key(id));
        let mut heard = self.tracker.heard.lock();
        heard.retain(|id, _| image.brokers.contains_key(id));
        let mut out = Vec::new();
        for b in image.brokers.values().filter(|b| !b.fenced) {
            let fresh = Heard {
                epoch: b.epoch,
                at: now,
            };
            let h = heard.entry(b.id).or_insert(fresh);
            if h.epoch != b.epoch {
                *h = fresh;
            }
            if now - h.at > self.session_timeout_ms {
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
            want_shut_down: false,
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
        m.touch(1, 10, 5000, 0, false);
        assert!(m.expired(&image, 10_000).is_empty());
        assert_eq!(m.expired(&image, 10_001), vec![(2, 20)]);
        assert!(m.expired(&image, 14_000).len() == 1);
        assert_eq!(m.expired(&image, 14_001), vec![(1, 10), (2, 20)]);
    }

    /// A heartbeat counts from its arrival, before its turn (the manager busy with another
    /// liveness event): a check that runs late does not end the session it continued. One that
    /// arrives after its session ended, or at another epoch, continues nothing; its turn, at its
    /// arrival time, moves no session back. Nothing is recorded while the controller is not
    /// active.
    #[test]
    fn a_heartbeat_counts_from_its_arrival() {
        let image = image(false);
        let mut m = BrokerHeartbeatManager::new(9000);
        let tracker = m.tracker();
        tracker.arrived(1, 10, 0);
        m.activate(1);
        assert!(m.expired(&image, 0).is_empty(), "sessions start now");
        tracker.arrived(1, 10, 8000);
        assert_eq!(m.expired(&image, 12_000), vec![(2, 20)], "a late check");
        tracker.arrived(2, 20, 12_500);
        assert_eq!(
            m.expired(&image, 12_600),
            vec![(2, 20)],
            "after its session"
        );
        tracker.arrived(1, 9, 16_000);
        m.touch(1, 10, 7000, 0, false);
        assert_eq!(m.expired(&image, 17_000), vec![(2, 20)]);
        assert_eq!(m.expired(&image, 17_001), vec![(1, 10), (2, 20)]);
        m.deactivate();
        m.activate(2);
        tracker.arrived(1, 10, 20_000);
        assert!(
            m.expired(&image, 20_001).is_empty(),
            "a new term's sessions"
        );
        assert_eq!(
            m.expired(&image, 29_002).len(),
            2,
            "nothing kept from before"
        );
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
        m.touch(1, 10, 20_000, 0, false);
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
        let (records, reply) =
            decide(&image, &hb(3, 0, 100), &policy, ShutdownProgress::NONE).unwrap();
        assert!(records.is_empty());
        assert_eq!(reply.error_code, errors::BROKER_ID_NOT_REGISTERED);
        let (_, reply) = decide(&image, &hb(1, 9, 100), &policy, ShutdownProgress::NONE).unwrap();
        assert_eq!(reply.error_code, errors::STALE_BROKER_EPOCH);
        let (records, reply) =
            decide(&image, &hb(1, 10, 100), &policy, ShutdownProgress::NONE).unwrap();
        assert!(records.is_empty());
        let live = HeartbeatReply {
            error_code: errors::NONE,
            is_caught_up: true,
            is_fenced: false,
            in_controlled_shutdown: false,
            should_shut_down: false,
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
        let (records, reply) =
            decide(&fenced, &hb(2, 20, 19), &policy, ShutdownProgress::NONE).unwrap();
        assert!(records.is_empty());
        assert!(reply.is_fenced && !reply.is_caught_up);
        let (records, reply) =
            decide(&fenced, &hb(2, 20, 20), &policy, ShutdownProgress::NONE).unwrap();
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
        let (records, reply) =
            decide(&again, &hb(2, 30, 30), &policy, ShutdownProgress::NONE).unwrap();
        assert!(!reply.is_fenced);
        let back = apply(&again, &records);
        assert_eq!(leader(&back), 2);
        assert!(epoch(&back) > epoch(&live), "{records:?}");
    }

    /// A new incarnation of a broker that leads (restarted before its session expired)
    /// registers fenced and, in the same batch, leaves every ISR: the partitions it led move to
    /// the next in-sync replica or go offline (Kafka's handleBrokerUncleanShutdown). Its first
    /// heartbeat caught up unfences it: it leads its offline partition again at a new epoch,
    /// and rejoins the other's ISR only through that partition's leader.
    #[test]
    fn a_new_incarnation_leads_nothing_until_unfenced() {
        use crate::metadata::election::tests::image_of;
        use crate::metadata::records::NO_LEADER;
        let policy = ElectionPolicy {
            isr_by_leaders: true,
            ..ElectionPolicy::default()
        };
        let before = image_of(&[1, 2, 3], &[], TOPIC, &[&[2, 1, 3], &[2]]);
        let mut again = before.brokers[&2].to_record();
        again.incarnation_id = Uuid::from_u128(0x2222);
        let registered = apply(&before, &register_fenced(&before, again.clone(), &policy));
        let b = registered.brokers[&2].clone();
        assert!(b.fenced);
        assert_eq!(b.epoch, before.provenance.last_offset + 1);
        assert_eq!(
            layout(&registered, TOPIC),
            vec![(1, vec![1, 3], 1), (NO_LEADER, vec![2], 1)]
        );
        // The same incarnation registering again has nothing more to end.
        assert_eq!(register_fenced(&registered, again, &policy).len(), 1);
        let heartbeat = hb(2, b.epoch, b.epoch);
        let (records, reply) =
            decide(&registered, &heartbeat, &policy, ShutdownProgress::NONE).unwrap();
        assert!(!reply.is_fenced);
        assert_eq!(
            layout(&apply(&registered, &records), TOPIC),
            vec![(1, vec![1, 3], 1), (2, vec![2], 2)]
        );
    }

    fn shutting_down(id: i32, epoch: i64, offset: i64) -> BrokerHeartbeat {
        BrokerHeartbeat {
            want_shut_down: true,
            ..hb(id, epoch, offset)
        }
    }

    /// (leader, ISR, leader epoch) of each partition of topic `id`.
    fn layout(image: &MetadataImage, id: Uuid) -> Vec<(i32, Vec<i32>, i32)> {
        let t = image.topics.get(id).unwrap();
        (t.partitions.values())
            .map(|r| (r.leader, r.isr.clone(), r.leader_epoch))
            .collect()
    }

    /// The active controller's side of a controlled shutdown, on a manual clock: broker 1 asks
    /// to shut down while it leads; it enters controlled shutdown, its leaderships move to
    /// other in-sync replicas at a new leader epoch and it leaves the ISRs (a partition whose
    /// only ISR member it is loses its leader and keeps it in the ISR, as Kafka's
    /// generateLeaderAndIsrUpdates does); it may stop only once the active brokers have
    /// applied that change, and is then fenced.
    #[test]
    fn a_broker_in_controlled_shutdown_leads_nothing_and_stops_once_the_others_know() {
        use crate::metadata::election::tests::image_of;
        use crate::metadata::records::NO_LEADER;
        let policy = ElectionPolicy {
            isr_by_leaders: true,
            ..ElectionPolicy::default()
        };
        let before = image_of(&[1, 2, 3], &[], TOPIC, &[&[1, 2, 3], &[2, 1, 3], &[1]]);
        let mut m = BrokerHeartbeatManager::new(9000);
        m.activate(1);
        for (id, now) in [(1, 0), (2, 10), (3, 20)] {
            m.touch(id, 0, now, 5, false);
        }
        let progress = m.shutdown_progress(&before, 1, 0);
        assert_eq!(progress.controlled_shutdown_offset, None);
        let (records, reply) = decide(&before, &shutting_down(1, 0, 5), &policy, progress).unwrap();
        assert!(reply.in_controlled_shutdown && !reply.should_shut_down && !reply.is_fenced);
        let moved = apply(&before, &records);
        assert!(moved.brokers[&1].in_controlled_shutdown && !moved.brokers[&1].fenced);
        assert!(!election::has_leaderships(&moved, 1));
        assert_eq!(
            layout(&moved, TOPIC),
            vec![
                (2, vec![2, 3], 1),
                (2, vec![2, 3], 0),
                (NO_LEADER, vec![1], 1),
            ]
        );
        // The change ends at offset 9 of the metadata log; brokers 2 and 3 reported 5.
        m.touch(1, 0, 100, 5, reply.is_fenced);
        m.enter_controlled_shutdown(1, 0, 9);
        m.enter_controlled_shutdown(1, 0, 12);
        let progress = m.shutdown_progress(&moved, 1, 0);
        assert_eq!(
            progress,
            ShutdownProgress {
                controlled_shutdown_offset: Some(9),
                lowest_active_offset: 5,
            }
        );
        let (records, reply) = decide(&moved, &shutting_down(1, 0, 9), &policy, progress).unwrap();
        assert!(records.is_empty());
        assert!(reply.in_controlled_shutdown && !reply.should_shut_down);
        // Broker 2 applied it, broker 3 not yet; then both have.
        m.touch(2, 0, 200, 9, false);
        let progress = m.shutdown_progress(&moved, 1, 0);
        assert_eq!(progress.lowest_active_offset, 5);
        m.touch(3, 0, 300, 10, false);
        let progress = m.shutdown_progress(&moved, 1, 0);
        assert_eq!(progress.lowest_active_offset, 9);
        let (records, reply) = decide(&moved, &shutting_down(1, 0, 9), &policy, progress).unwrap();
        assert!(reply.should_shut_down && reply.is_fenced && !reply.in_controlled_shutdown);
        let stopped = apply(&moved, &records);
        assert!(stopped.brokers[&1].fenced);
        assert_eq!(layout(&stopped, TOPIC), layout(&moved, TOPIC));
        m.touch(1, 0, 400, 9, reply.is_fenced);
        assert_eq!(
            m.shutdown_progress(&stopped, 1, 0)
                .controlled_shutdown_offset,
            None
        );
    }

    /// A broker that leads nothing, or is fenced, may stop at once (SHUTDOWN_NOW): fenced, out
    /// of the ISRs it is in. A broker that does not ask stays as it is.
    #[test]
    fn a_broker_that_leads_nothing_shuts_down_at_once() {
        use crate::metadata::election::tests::image_of;
        let policy = ElectionPolicy::default();
        let before = image_of(&[1, 2, 3], &[3], TOPIC, &[&[1, 2]]);
        let none = ShutdownProgress::NONE;
        let (records, reply) = decide(&before, &shutting_down(2, 0, 5), &policy, none).unwrap();
        assert!(reply.should_shut_down && reply.is_fenced);
        let after = apply(&before, &records);
        assert!(after.brokers[&2].fenced);
        assert_eq!(layout(&after, TOPIC), vec![(1, vec![1], 0)]);
        let (_, reply) = decide(&before, &shutting_down(3, 0, 5), &policy, none).unwrap();
        assert!(reply.should_shut_down && reply.is_fenced);
        let (records, reply) = decide(&before, &hb(1, 0, 5), &policy, none).unwrap();
        assert!(records.is_empty() && !reply.should_shut_down && !reply.in_controlled_shutdown);
    }

    /// A controller that becomes active forgets where controlled shutdowns began: a broker in
    /// controlled shutdown that leads nothing any more is let go on its next heartbeat, as by
    /// Kafka's new active controller (its state starts from UNFENCED).
    #[test]
    fn a_new_controller_lets_a_broker_in_controlled_shutdown_go() {
        use crate::metadata::election::tests::image_of;
        let policy = ElectionPolicy::default();
        let before = image_of(&[1, 2], &[], TOPIC, &[&[1, 2]]);
        let none = ShutdownProgress::NONE;
        let (records, reply) = decide(&before, &shutting_down(1, 0, 5), &policy, none).unwrap();
        assert!(reply.in_controlled_shutdown);
        let moved = apply(&before, &records);
        let mut m = BrokerHeartbeatManager::new(9000);
        m.activate(2);
        m.touch(2, 0, 0, 1, false);
        let progress = m.shutdown_progress(&moved, 1, 0);
        assert_eq!(progress.controlled_shutdown_offset, None);
        let (records, reply) = decide(&moved, &shutting_down(1, 0, 5), &policy, progress).unwrap();
        assert!(reply.should_shut_down);
        assert!(apply(&moved, &records).brokers[&1].fenced);
    }
}
