//! What the leader of the quorum knows of the other replicas (Kafka's LeaderState voter and
//! observer states), for DescribeQuorum: each one's log end offset, when it last fetched, and
//! when it was last known to hold everything the leader had.
//!
//! openraft 0.9 exposes each follower's matched log id (`RaftMetrics::replication`) but not when
//! it last answered: the leader's network (`transport::TcpClient`) records each acknowledged
//! AppendEntries here, a voter's analogue of Kafka's follower Fetch. Observers fetch
//! (`Quorum::fetch_for_observer`), as Kafka's do.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::NodeId;
use crate::metadata::metadata_log::ReplicaState;

/// An observer not heard from for this long is no longer listed (Kafka's leader forgets an
/// observer after five minutes without a fetch: LeaderState.OBSERVER_SESSION_TIMEOUT_MS).
pub const OBSERVER_SESSION: Duration = Duration::from_secs(300);

/// The leader's last exchange with one replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contact {
    /// The replica's log end offset as of that exchange.
    pub end_offset: i64,
    pub fetched: Instant,
    pub caught_up: Option<Instant>,
    /// The leader's log end offset when the exchange started.
    leader_end: i64,
    /// The term it was in (a voter's): a new leader, as Kafka's new LeaderState, knows only
    /// what it heard in its own term.
    term: u64,
}

impl Contact {
    /// After `prev`, an exchange started at `sent`, when the leader's log ended at
    /// `leader_end`, and answered at `now` with the replica's log ending at `end_offset`
    /// (Kafka's ReplicaState.updateFollowerState): caught up as of `sent` if it holds all the
    /// leader had then, else as of the previous exchange if it holds all the leader had then.
    fn after(
        prev: Option<&Contact>,
        end_offset: i64,
        leader_end: i64,
        sent: Instant,
        now: Instant,
        term: u64,
    ) -> Contact {
        let prev = prev.filter(|p| p.term == term);
        let caught_up = match prev {
            _ if end_offset >= leader_end => Some(sent),
            Some(p) if p.leader_end > 0 && end_offset >= p.leader_end => Some(p.fetched),
            _ => None,
        };
        Contact {
            end_offset,
            fetched: now,
            caught_up: caught_up.max(prev.and_then(|p| p.caught_up)),
            leader_end,
            term,
        }
    }

    fn state(&self, id: i32, now: Instant) -> ReplicaState {
        let ago = |t: Instant| u64::try_from(now.saturating_duration_since(t).as_millis()).ok();
        ReplicaState {
            id,
            log_end_offset: self.end_offset,
            last_fetch_ms_ago: ago(self.fetched),
            last_caught_up_ms_ago: self.caught_up.and_then(ago),
        }
    }
}

/// The contacts of the leader with the voters and the observers.
#[derive(Debug, Default)]
pub struct Replicas {
    voters: Mutex<BTreeMap<NodeId, Contact>>,
    observers: Mutex<BTreeMap<i32, Contact>>,
}

impl Replicas {
    /// Voter `id` acknowledged, at `now`, an AppendEntries of term `term` sent at `sent` when
    /// the leader's log ended at `leader_end`: its log now ends at `end_offset`.
    pub fn voter_acknowledged(
        &self,
        id: NodeId,
        term: u64,
        end_offset: i64,
        leader_end: i64,
        sent: Instant,
    ) {
        let now = Instant::now();
        let mut voters = self.voters.lock();
        let next = Contact::after(voters.get(&id), end_offset, leader_end, sent, now, term);
        voters.insert(id, next);
    }

    /// Observer `id` fetched from `end_offset` at `now`, when the committed log ended at
    /// `leader_end` (an observer fetches the committed log only).
    pub fn observer_fetched(&self, id: i32, end_offset: i64, leader_end: i64, now: Instant) {
        let mut observers = self.observers.lock();
        let next = Contact::after(observers.get(&id), end_offset, leader_end, now, now, 0);
        observers.insert(id, next);
        observers.retain(|_, c| now.saturating_duration_since(c.fetched) < OBSERVER_SESSION);
    }

    /// Voter `id` as the leader of term `term` knows it: its times when heard from in that
    /// term, with `end_offset` (from openraft's replication progress).
    pub fn voter(&self, id: NodeId, term: u64, end_offset: i64, now: Instant) -> ReplicaState {
        let voters = self.voters.lock();
        match voters.get(&id).filter(|c| c.term == term) {
            Some(c) => ReplicaState {
                log_end_offset: end_offset,
                ..c.state(id as i32, now)
            },
            None => ReplicaState::at(id as i32, end_offset),
        }
    }

    /// The observers heard from within OBSERVER_SESSION, by id.
    pub fn observers(&self, now: Instant) -> Vec<ReplicaState> {
        let observers = self.observers.lock();
        (observers.iter())
            .filter(|(_, c)| now.saturating_duration_since(c.fetched) < OBSERVER_SESSION)
            .map(|(&id, c)| c.state(id, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's rules for lastCaughtUpTimestamp: caught up at an exchange that found the
    /// replica holding all the leader had; at the previous exchange's time when it holds what
    /// the leader had then; never moving back; a new term starts afresh.
    #[test]
    fn caught_up_times_follow_kafkas_rules() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let r = Replicas::default();
        // Behind at first: fetched, never caught up.
        r.voter_acknowledged(2, 1, 5, 10, t0);
        let s = r.voter(2, 1, 5, at(0).max(Instant::now()));
        assert_eq!(s.log_end_offset, 5);
        assert!(s.last_fetch_ms_ago.is_some());
        assert_eq!(s.last_caught_up_ms_ago, None);
        let c = |prev: Option<&Contact>, end, leader_end, sent, term| {
            Contact::after(prev, end, leader_end, at(sent), at(sent + 1), term)
        };
        let first = c(None, 5, 10, 0, 1);
        assert_eq!(first.caught_up, None);
        // Holds what the leader had at the previous exchange: caught up as of then.
        let second = c(Some(&first), 10, 20, 100, 1);
        assert_eq!(second.caught_up, Some(first.fetched));
        // Holds everything: caught up as of this exchange.
        let third = c(Some(&second), 20, 20, 200, 1);
        assert_eq!(third.caught_up, Some(at(200)));
        // Holds what the leader had at the previous exchange, not all it has now: caught up
        // as of the previous exchange.
        let fourth = c(Some(&third), 20, 30, 300, 1);
        assert_eq!(fourth.caught_up, Some(third.fetched));
        // Behind what the leader had then too: the last caught-up time stays.
        let fifth = c(Some(&fourth), 25, 40, 400, 1);
        assert_eq!(fifth.caught_up, Some(third.fetched));
        // A new term: what came before is forgotten.
        let sixth = c(Some(&fifth), 25, 40, 500, 2);
        assert_eq!(sixth.caught_up, None);
        let ages = fifth.state(2, at(1000));
        assert_eq!(ages.last_fetch_ms_ago, Some(599));
        assert_eq!(ages.last_caught_up_ms_ago, Some(799));
        assert_eq!(
            r.voter(3, 1, -1, Instant::now()),
            ReplicaState::at(3, -1),
            "never heard from"
        );
        assert_eq!(r.voter(2, 2, 5, Instant::now()).last_fetch_ms_ago, None);
    }

    /// Observers are listed by id while they fetch within the session, then forgotten.
    #[test]
    fn observers_are_forgotten_after_the_session() {
        let r = Replicas::default();
        let t0 = Instant::now();
        r.observer_fetched(5, 7, 7, t0);
        r.observer_fetched(4, 3, 7, t0);
        let ids: Vec<(i32, i64)> = (r.observers(t0).iter())
            .map(|o| (o.id, o.log_end_offset))
            .collect();
        assert_eq!(ids, [(4, 3), (5, 7)]);
        assert_eq!(r.observers(t0)[1].last_caught_up_ms_ago, Some(0));
        assert_eq!(r.observers(t0)[0].last_caught_up_ms_ago, None);
        assert!(r.observers(t0 + OBSERVER_SESSION).is_empty());
    }
}
