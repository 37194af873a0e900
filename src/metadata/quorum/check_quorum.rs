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
//! once it hears from a leader, or wins an election.
//!
//! Where this differs from Kafka:
//! - Kafka's resigned leader stays in its epoch (ResignedState) and tells the voters to start an
//!   election at once (EndQuorumEpoch); gregor's moves to the next term with no leader at once
//!   (there is no such message among openraft's RPCs, and a cut-off leader could not send it).
//! - Kafka's leader counts the voters' fetches; openraft's acknowledged AppendEntries
//!   (heartbeats included), which is what a follower's fetch is to Kafka's leader.
//! - Like Kafka's resigned leader, which becomes a candidate after an election timeout
//!   (KafkaRaftClient.pollResigned), it then stands for election, again each timeout while it is
//!   cut off, raising its term; once healed, that term ends the new leader's and an election
//!   follows (openraft 0.9 has no pre-vote).

use std::time::{Duration, Instant};

use openraft::raft::VoteRequest;
use openraft::{LeaderId, Raft, Vote};

use super::{NodeId, TypeConfig};

/// Kafka's LeaderState.CHECK_QUORUM_TIMEOUT_FACTOR: a leader resigns after this many fetch
/// timeouts without hearing from a majority ("to tolerate some network transition time or other
/// IO time").
const CHECK_QUORUM_TIMEOUT_FACTOR: f64 = 1.5;
/// Kafka's controller.quorum.fetch.timeout.ms default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_millis(2000);
/// How soon a resignation openraft refused is tried again: it refuses a vote within the leader's
/// lease of its election (the election timeout), or when the log grew since it was read.
const RETRY: Duration = Duration::from_millis(100);

/// How long a leader goes without hearing from a majority before it resigns.
pub fn check_quorum_timeout(fetch_timeout: Duration) -> Duration {
    fetch_timeout.mul_f64(CHECK_QUORUM_TIMEOUT_FACTOR)
}

/// Watches node `id` of `raft` while it runs: each time it leads, makes it resign once no majority
/// has acknowledged it for `timeout`.
pub async fn resign_when_cut_off(raft: Raft<TypeConfig>, id: NodeId, timeout: Duration) {
    let mut metrics = raft.metrics();
    loop {
        let leading = metrics.wait_for(|m| m.current_leader == Some(id)).await;
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
            if resign(&raft, term).await {
                tracing::warn!(
                    term,
                    silent_ms = silent.as_millis() as u64,
                    "no majority of the metadata quorum heard from in the check-quorum timeout: \
                     this node no longer leads it (nor is the active controller)"
                );
            } else {
                tokio::time::sleep(RETRY).await;
            }
        }
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
