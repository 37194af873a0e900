//! Kafka's check quorum (KafkaRaftClient.pollLeader, LeaderState's `checkQuorumTimer`): a leader
//! that has not heard from a majority of the voters for 1.5 x `controller.quorum.fetch.timeout.ms`
//! resigns, so that a leader cut off from the others stops acting as the active controller (its
//! decisions, and the writes forwarded to it, would wait for a commit that cannot come) and the
//! brokers that still take it for the controller are told NOT_CONTROLLER and go to the new one.
//!
//! openraft 0.9 keeps a leader Leader until it sees a higher term (`trigger().elect()` is ignored
//! on a Leader), but it reports how long ago a majority last acknowledged it
//! (`RaftMetrics::millis_since_quorum_ack`). The watcher here makes it step down as a higher term
//! would: the node takes a vote request of the next term naming no candidate (`Raft::vote`), a
//! vote it grants itself, as any vote of a higher term, by dropping its Leader state and following
//! with no leader known. Nothing else changes: that vote is for no one, so it helps no candidate
//! win (a voter may still vote once in that term), and the log is left as it is. Its quorum-state
//! then reads leaderId -1 at the next epoch, Kafka's Unattached state. From then on openraft's
//! `current_leader` is not this node, which is what everything deciding as the active controller
//! checks (`Quorum::answer_controller_request`, `Quorum::write`): requests to it are answered
//! NOT_CONTROLLER and the writes it had proposed and not committed fail at once (a write forwarded
//! to it so fails for its sender to send it to the next leader). It rejoins as any follower does:
//! once it hears from a leader, or wins an election, which it stands for only once it can reach a
//! majority of the voters (see below).
//!
//! Where this differs from Kafka:
//! - Kafka's resigned leader stays in its epoch (ResignedState) and tells the voters to start an
//!   election at once (EndQuorumEpoch); gregor's moves to the next term with no leader at once
//!   (there is no such message among openraft's RPCs, and a cut-off leader could not send it).
//! - Kafka's leader counts the voters' fetches; openraft's acknowledged AppendEntries
//!   (heartbeats included), which is what a follower's fetch is to Kafka's leader.
//! - Kafka's resigned leader becomes a candidate after an election timeout
//!   (KafkaRaftClient.pollResigned). gregor's does not stand for election until a majority of the
//!   voters answer it (any request on the controller listener), or it hears from a leader: cut
//!   off, it would otherwise raise its term each election timeout, and once healed that term
//!   would end the new leader's and force one more election (openraft 0.9 has no pre-vote, which
//!   spares Kafka 4's quorum that, KIP-996). cluster-faults seed 15 showed it: every recovery after
//!   a quorum-leader isolation 2 to 3 s longer, and a fencing delayed by 4 s.

use std::time::{Duration, Instant};

use openraft::raft::VoteRequest;
use openraft::{LeaderId, Raft, Vote};

use super::{transport, Quorum, TypeConfig};

/// Kafka's LeaderState.CHECK_QUORUM_TIMEOUT_FACTOR: a leader resigns after this many fetch
/// timeouts without hearing from a majority ("to tolerate some network transition time or other
/// IO time").
const CHECK_QUORUM_TIMEOUT_FACTOR: f64 = 1.5;
/// Kafka's controller.quorum.fetch.timeout.ms default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_millis(2000);
/// How soon a resignation openraft refused is tried again: it refuses a vote within the leader's
/// lease of its election (the election timeout), or when the log grew since it was read.
const RETRY: Duration = Duration::from_millis(100);
/// How long a resigned leader waits for each voter's answer, and between rounds of asking: well
/// inside the shortest election timeout, so that healed it stands for election (if no leader has
/// reached it first) about as soon as a follower would.
const PROBE: Duration = Duration::from_millis(300);

/// How long a leader goes without hearing from a majority before it resigns.
pub fn check_quorum_timeout(fetch_timeout: Duration) -> Duration {
    fetch_timeout.mul_f64(CHECK_QUORUM_TIMEOUT_FACTOR)
}

/// Watches node `quorum` while it runs: each time it leads, makes it resign once no majority has
/// acknowledged it for `timeout`, and keeps it from standing for election until it can reach a
/// majority again.
pub async fn resign_when_cut_off(quorum: Quorum, timeout: Duration) {
    let (raft, id) = (&quorum.raft, quorum.id);
    let mut metrics = raft.metrics();
    // The terms from which a leadership is new (not one it resigned, still in stale metrics).
    let mut from_term = 0;
    loop {
        let leading = metrics
            .wait_for(|m| m.current_leader == Some(id) && m.current_term >= from_term)
            .await;
        let Ok(term) = leading.map(|m| m.current_term) else {
            return;
        };
        // A leader no majority has acknowledged yet (cut off as it was elected) counts from
        // when it was seen leading.
        let since = Instant::now();
        loop {
            // The metrics stop changing once the node stops: so does this watch.
            if metrics.has_changed().is_err() {
                return;
            }
            let silent = {
                let m = metrics.borrow_and_update();
                if m.current_leader != Some(id) || m.current_term != term {
                    break;
                }
                (m.millis_since_quorum_ack).map_or_else(|| since.elapsed(), Duration::from_millis)
            };
            if silent < timeout {
                tokio::time::sleep(timeout - silent).await;
                continue;
            }
            // Elections off first, so that openraft's tick cannot make it a candidate between
            // the resignation and the wait below.
            raft.runtime_config().elect(false);
            if !resign(raft, term).await {
                raft.runtime_config().elect(true);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            tracing::warn!(
                term,
                silent_ms = silent.as_millis() as u64,
                "no majority of the metadata quorum heard from in the check-quorum timeout: this \
                 node no longer leads it (nor is the active controller)"
            );
            from_term = term + 1;
            rejoinable(&quorum, term).await;
            raft.runtime_config().elect(true);
            break;
        }
    }
}

/// Returns once this leader, resigned from `term`, may stand for election again: it knows a leader
/// of a later term (one reached it), or a majority of the voters (itself counted) answer it and
/// no leader reaches it within an election timeout after that, or it stopped. (openraft's election
/// timer ran while it was cut off: it stands as soon as elections are on, and the leader the
/// others elected may take a second to call it again after its backoff.)
async fn rejoinable(quorum: &Quorum, term: u64) {
    let mut metrics = quorum.raft.metrics();
    let leader_known =
        |m: &openraft::RaftMetrics<_, _>| m.current_leader.is_some() && m.current_term > term;
    loop {
        let voters: Vec<_> = {
            let m = metrics.borrow_and_update();
            if leader_known(&m) {
                return;
            }
            let membership = m.membership_config.membership();
            let others = membership.voter_ids().filter(|&v| v != quorum.id);
            others
                .filter_map(|v| membership.get_node(&v).cloned())
                .collect()
        };
        if metrics.has_changed().is_err() {
            return;
        }
        // The others and this one.
        let all = voters.len() + 1;
        let majority = all / 2 + 1;
        let answered = match &quorum.forward {
            Some(channel) => {
                let mut asked = tokio::task::JoinSet::new();
                for voter in voters {
                    let channel = std::sync::Arc::clone(channel);
                    asked.spawn(async move { transport::answers(&channel, &voter, PROBE).await });
                }
                1 + asked.join_all().await.into_iter().filter(|&a| a).count()
            }
            // No network of its own (a test's): nothing to ask.
            None => return,
        };
        if answered >= majority {
            let election_timeout = Duration::from_millis(quorum.raft.config().election_timeout_max);
            let _ = tokio::time::timeout(election_timeout, metrics.wait_for(leader_known)).await;
            return;
        }
        let _ = tokio::time::timeout(PROBE, metrics.changed()).await;
    }
}

/// Steps the leader at `term` down, as a vote of the next term for no one does: whether openraft
/// took it.
async fn resign(raft: &Raft<TypeConfig>, term: u64) -> bool {
    // The vote request's log must be at least this node's for openraft to take it.
    let last_log_id = raft.data_metrics().borrow().last_log;
    let next = Vote {
        leader_id: LeaderId {
            term: term + 1,
            voted_for: None,
        },
        committed: false,
    };
    match raft.vote(VoteRequest::new(next, last_log_id)).await {
        Ok(answer) => answer.vote_granted,
        Err(_) => false,
    }
}
