//! The replication state of one partition, as Kafka's `Partition` and `Replica` keep it
//! (the ISR protocol of KIP-101/279/320 and the leader's bookkeeping of its followers). Sans-IO:
//! times are the caller's `now` (the broker's clock), offsets come from the log; what to send
//! (AlterPartition, a truncation) is returned for the caller to do.
//!
//! `now` is the wall reading (`Clock::now_ms`), as Kafka's Partition and ReplicaManager take
//! `time.milliseconds()` for the fetch times and lastCaughtUpTimeMs: a leader whose wall clock
//! steps forward by more than replica.lag.time.max.ms finds its lagging followers out of sync
//! (they rejoin as they catch up), one stepped back keeps them in sync for the step's length
//! (lastCaughtUpTimeMs only grows), on Kafka as here (scripts/cluster-faults' clock faults).
//!
//! On the leader (`LeaderState`):
//! - each follower's fetch records its fetch offset (its log end offset) and time
//!   (Replica.updateFetchStateOrThrow); a follower is caught up when it has fetched up to the
//!   leader's log end offset, and stays so for `replica.lag.time.max.ms` after
//!   (Replica.isCaughtUp);
//! - the high watermark is the smallest log end offset of the maximal ISR (the ISR and the
//!   replicas an AlterPartition in flight adds), the leader's included; it never goes back
//!   (Partition.maybeIncrementLeaderHW);
//! - an ISR member not caught up is a shrink candidate (Partition.getOutOfSyncReplicas); a
//!   replica outside the ISR that has fetched up to the high watermark, and past the start of
//!   the leader's epoch, may join it (Partition.isFollowerInSync);
//! - an AlterPartition is in flight at most once per partition; while it is, the maximal ISR
//!   counts the replicas it adds and not yet those it removes (PendingExpandIsr /
//!   PendingShrinkIsr: the high watermark may wait for a joining replica, never run ahead of a
//!   leaving one).
//!
//! Divergence (KIP-279, `diverging_epoch` and `truncation_offset`): a follower's fetch carries the
//! epoch of its last fetched batch; when the leader's log ends that epoch below the fetch offset
//! (or does not know the epoch), the answer names the leader's (epoch, end offset) for it and the
//! follower truncates to the point where both logs agree.

use std::collections::BTreeMap;

use crate::metadata::image::PartitionRegistration;

/// What the leader knows of one follower (Kafka's Replica state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    /// The follower's log end offset: its last fetch offset (-1: it has not fetched).
    pub log_end_offset: i64,
    /// The leader's log end offset when the follower last fetched.
    pub last_fetch_leader_log_end_offset: i64,
    pub last_fetch_time_ms: i64,
    /// The last time the follower had fetched up to the leader's log end offset.
    pub last_caught_up_time_ms: i64,
}

impl ReplicaState {
    fn new() -> Self {
        ReplicaState {
            log_end_offset: -1,
            last_fetch_leader_log_end_offset: -1,
            last_fetch_time_ms: 0,
            last_caught_up_time_ms: 0,
        }
    }

    /// Replica.updateFetchStateOrThrow: a fetch at `fetch_offset` at `now`, the leader's log
    /// ending at `leader_log_end_offset`.
    fn on_fetch(&mut self, fetch_offset: i64, now: i64, leader_log_end_offset: i64) {
        if fetch_offset >= leader_log_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(now);
        } else if fetch_offset >= self.last_fetch_leader_log_end_offset {
            // It has what the leader had at its previous fetch: caught up as of then.
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(self.last_fetch_time_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_log_end_offset = leader_log_end_offset;
        self.last_fetch_time_ms = now;
    }

    /// Replica.isCaughtUp.
    fn is_caught_up(&self, leader_log_end_offset: i64, now: i64, max_lag_ms: i64) -> bool {
        self.log_end_offset == leader_log_end_offset
            || now - self.last_caught_up_time_ms <= max_lag_ms
    }
}

/// An ISR change sent to the controller and not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingIsr {
    Expand(i32),
    Shrink(Vec<i32>),
}

/// The leader's replication state of one partition.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The partition epoch the ISR below is of (AlterPartition sends it; the controller refuses
    /// a stale one).
    pub partition_epoch: i32,
    /// The log end offset when this leader epoch began (a follower joins the ISR only past it).
    pub leader_epoch_start_offset: i64,
    /// The committed ISR (the metadata image's).
    pub isr: Vec<i32>,
    pub pending: Option<PendingIsr>,
    /// Every replica but the leader.
    followers: BTreeMap<i32, ReplicaState>,
    high_watermark: i64,
    /// replica.lag.time.max.ms.
    pub max_lag_ms: i64,
}

impl LeaderState {
    /// This broker starts leading the partition `reg` registers (its leader, leader epoch,
    /// partition epoch, replicas and ISR) at `now`, its log ending at `log_end_offset`, the high
    /// watermark it knew `high_watermark`. Every follower gets `replica.lag.time.max.ms` from
    /// now to catch up (Partition.makeLeader resets the followers' states with the current time
    /// as their last caught-up time).
    pub fn new(
        reg: &PartitionRegistration,
        log_end_offset: i64,
        high_watermark: i64,
        max_lag_ms: i64,
        now: i64,
    ) -> Self {
        let followers = reg
            .replicas
            .iter()
            .filter(|&&r| r != reg.leader)
            .map(|&r| {
                let mut s = ReplicaState::new();
                s.last_caught_up_time_ms = now;
                (r, s)
            })
            .collect();
        LeaderState {
            leader_id: reg.leader,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            leader_epoch_start_offset: log_end_offset,
            isr: reg.isr.clone(),
            pending: None,
            followers,
            high_watermark: high_watermark.min(log_end_offset),
            max_lag_ms,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The replicas changed within this leader epoch (a reassignment starts or ends without
    /// moving the leadership; Partition.updateAssignmentAndIsr): replicas that left are no
    /// longer tracked, and new ones are, from nothing (a new Replica: it has not fetched, and
    /// being outside the ISR it only joins once it has caught up).
    pub fn update_assignment(&mut self, replicas: &[i32]) {
        self.followers
            .retain(|id, _| replicas.contains(id) && *id != self.leader_id);
        for &r in replicas.iter().filter(|&&r| r != self.leader_id) {
            self.followers.entry(r).or_insert_with(ReplicaState::new);
        }
    }

    pub fn follower(&self, id: i32) -> Option<&ReplicaState> {
        self.followers.get(&id)
    }

    /// The ISR the high watermark waits for: the committed one, with a replica being added
    /// (Kafka's maximalIsr; a shrink in flight still counts the replicas it removes).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(PendingIsr::Expand(id)) = self.pending {
            if !isr.contains(&id) {
                isr.push(id);
            }
        }
        isr
    }

    /// A follower fetched at `fetch_offset` at `now`: its state moves, and the high watermark
    /// with it; returns the new high watermark when it moved. A fetch from a broker that is not
    /// a replica is ignored (the caller answers it NOT_LEADER_OR_FOLLOWER).
    pub fn on_follower_fetch(
        &mut self,
        id: i32,
        fetch_offset: i64,
        now: i64,
        log_end_offset: i64,
    ) -> Option<i64> {
        self.followers
            .get_mut(&id)?
            .on_fetch(fetch_offset, now, log_end_offset);
        self.maybe_increment_high_watermark(log_end_offset)
    }

    /// The leader appended (its log now ends at `log_end_offset`): with an ISR of the leader
    /// alone the high watermark follows at once.
    pub fn on_leader_append(&mut self, log_end_offset: i64) -> Option<i64> {
        self.maybe_increment_high_watermark(log_end_offset)
    }

    /// Partition.maybeIncrementLeaderHW: the smallest log end offset of the maximal ISR, never
    /// below the current high watermark.
    pub fn maybe_increment_high_watermark(&mut self, log_end_offset: i64) -> Option<i64> {
        let mut hw = log_end_offset;
        for id in self.maximal_isr() {
            if id == self.leader_id {
                continue;
            }
            let leo = self.followers.get(&id).map_or(-1, |s| s.log_end_offset);
            hw = hw.min(leo);
        }
        (hw > self.high_watermark).then(|| {
            self.high_watermark = hw;
            hw
        })
    }

    /// Partition.getOutOfSyncReplicas: ISR members (the leader aside) that are not caught up at
    /// `now`; nothing while an ISR change is in flight.
    pub fn out_of_sync(&self, now: i64, log_end_offset: i64) -> Vec<i32> {
        if self.pending.is_some() {
            return vec![];
        }
        self.isr
            .iter()
            .copied()
            .filter(|&id| id != self.leader_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|s| !s.is_caught_up(log_end_offset, now, self.max_lag_ms))
            })
            .collect()
    }

    /// Partition.isFollowerInSync and the expansion check: a replica outside the ISR that has
    /// fetched up to the high watermark and into this leader's epoch may join it; nothing while
    /// an ISR change is in flight.
    pub fn may_join_isr(&self, id: i32) -> bool {
        if self.pending.is_some() || self.isr.contains(&id) {
            return false;
        }
        self.followers.get(&id).is_some_and(|s| {
            s.log_end_offset >= self.high_watermark
                && s.log_end_offset >= self.leader_epoch_start_offset
        })
    }

    /// The replicas that may join the ISR now (see `may_join_isr`).
    pub fn joinable(&self) -> impl Iterator<Item = i32> + '_ {
        self.followers
            .keys()
            .copied()
            .filter(|&id| self.may_join_isr(id))
    }

    /// The controller committed an ISR at `partition_epoch` (an AlterPartition answer, or a
    /// change in the image): the change in flight ends.
    pub fn on_isr_committed(&mut self, isr: Vec<i32>, partition_epoch: i32) {
        self.isr = isr;
        self.partition_epoch = partition_epoch;
        self.pending = None;
    }
}

/// The leader's side of KIP-279: a follower fetching at `fetch_offset` whose last fetched batch
/// was of `last_fetched_epoch` diverges when the leader's log ends that epoch before the fetch
/// offset, or ends an older epoch in its place. `leader_end` is the leader's
/// `LeaderEpochCache::end_offset_for(last_fetched_epoch, ..)`. Returns the (epoch, end offset) to
/// send back as DivergingEpoch, or `None` when the logs agree up to the fetch offset.
pub fn diverging_epoch(
    fetch_offset: i64,
    last_fetched_epoch: i32,
    leader_end: (i32, i64),
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = leader_end;
    (epoch < last_fetched_epoch || end_offset < fetch_offset).then_some(leader_end)
}

/// Where a follower truncates, and whether that ends its truncation (a follower that knew only
/// an older epoch asks again from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub offset: i64,
    pub completed: bool,
}

/// The follower's side (AbstractFetcherThread.getOffsetTruncationState): the leader answered
/// DivergingEpoch (or OffsetForLeaderEpoch) `(epoch, end offset)`; `local_end` is the follower's
/// own `LeaderEpochCache::end_offset_for(epoch, ..)`. The logs agree below the returned offset:
/// - the leader knows no end for the epoch: the follower's high watermark (committed data);
/// - the follower has the leader's epoch: the smaller of the two ends;
/// - it has only an older epoch: that epoch's end, not completed (it asks again with it);
/// - it knows no epoch at all: the leader's end.
///
/// Never past the follower's own log end.
pub fn truncation_offset(
    leader: (i32, i64),
    local_end: (i32, i64),
    log_end_offset: i64,
    high_watermark: i64,
) -> Truncation {
    let (leader_epoch, leader_end) = leader;
    let (local_epoch, local_end_offset) = local_end;
    let (offset, completed) = if leader_end < 0 {
        (high_watermark, true)
    } else if local_epoch < 0 || local_end_offset < 0 {
        (leader_end, true)
    } else if local_epoch != leader_epoch {
        (local_end_offset, false)
    } else {
        (leader_end.min(local_end_offset), true)
    };
    Truncation {
        offset: offset.min(log_end_offset),
        completed,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::log::leader_epoch::LeaderEpochCache;

    const LAG: i64 = 30_000;

    /// Leader 1 of replicas 1, 2, 3 with `isr`, at leader epoch 5 and partition epoch 7.
    pub(crate) fn registration(isr: Vec<i32>) -> PartitionRegistration {
        PartitionRegistration {
            replicas: vec![1, 2, 3],
            directories: vec![],
            isr,
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_recovery_state: 0,
            leader_epoch: 5,
            partition_epoch: 7,
            eligible_leader_replicas: None,
            last_known_elr: None,
        }
    }

    /// `registration`'s leader, from offset 100 at time 0.
    fn leading(isr: Vec<i32>) -> LeaderState {
        LeaderState::new(&registration(isr), 100, 100, LAG, 0)
    }

    fn leader() -> LeaderState {
        leading(vec![1, 2, 3])
    }

    /// The high watermark is the smallest log end offset of the ISR and only moves forward.
    #[test]
    fn the_high_watermark_is_the_isr_minimum() {
        let mut s = leader();
        assert_eq!(s.high_watermark(), 100);
        assert_eq!(s.on_leader_append(150), None, "followers have not fetched");
        assert_eq!(s.on_follower_fetch(2, 150, 10, 150), None);
        assert_eq!(s.on_follower_fetch(3, 120, 10, 150), Some(120));
        assert_eq!(s.on_follower_fetch(3, 150, 20, 150), Some(150));
        // A follower that comes back lower (it truncated) does not take the HW back.
        assert_eq!(s.on_follower_fetch(3, 110, 30, 150), None);
        assert_eq!(s.high_watermark(), 150);
        // A replica outside the ISR does not hold it back.
        s.on_isr_committed(vec![1, 2], 8);
        assert_eq!(s.on_leader_append(200), None);
        assert_eq!(s.on_follower_fetch(2, 200, 40, 200), Some(200));
        // The leader alone: the HW follows its appends.
        s.on_isr_committed(vec![1], 9);
        assert_eq!(s.on_leader_append(210), Some(210));
        // A fetch from a broker that is no replica changes nothing.
        assert_eq!(s.on_follower_fetch(9, 999, 50, 210), None);
        assert_eq!(s.follower(9), None);
    }

    /// A follower is out of sync once replica.lag.time.max.ms passes since it was last caught
    /// up: fetching at the leader's end, or having what the leader had at its previous fetch.
    #[test]
    fn a_follower_lagging_for_the_max_lag_is_out_of_sync() {
        let mut s = leader();
        assert!(
            s.out_of_sync(LAG, 100).is_empty(),
            "a new leader gives every follower the lag"
        );
        assert_eq!(s.out_of_sync(LAG + 1, 100), vec![2, 3]);
        s.on_follower_fetch(2, 100, 1000, 100);
        s.on_follower_fetch(3, 90, 1000, 100);
        // 3 behind ever since time 0; 2 caught up at 1000.
        assert_eq!(s.out_of_sync(LAG + 1, 150), vec![3]);
        // 3 reaches what the leader had at its last fetch (100) while the leader moved to 150:
        // caught up as of that previous fetch.
        s.on_follower_fetch(3, 100, 5000, 150);
        assert!(s.out_of_sync(LAG + 1000, 150).is_empty());
        assert_eq!(s.out_of_sync(LAG + 1001, 150), vec![2, 3]);
        // At the leader's end now: in sync whatever the time.
        s.on_follower_fetch(2, 150, 90_000, 150);
        s.on_follower_fetch(3, 150, 90_000, 150);
        assert!(s.out_of_sync(10 * LAG, 150).is_empty());
        // Nothing while an ISR change is in flight.
        s.pending = Some(PendingIsr::Shrink(vec![1]));
        assert!(s.out_of_sync(i64::MAX / 2, 160).is_empty());
    }

    /// A replica joins the ISR once it has fetched up to the high watermark and into the
    /// leader's epoch; while the expansion is in flight the HW waits for it.
    #[test]
    fn a_follower_caught_up_to_the_high_watermark_may_join() {
        let mut s = leading(vec![1, 2]);
        s.on_leader_append(150);
        s.on_follower_fetch(2, 150, 10, 150);
        assert_eq!(s.high_watermark(), 150);
        s.on_follower_fetch(3, 90, 10, 150);
        assert!(!s.may_join_isr(3), "below the epoch start and the HW");
        s.on_follower_fetch(3, 140, 20, 150);
        assert!(!s.may_join_isr(3), "below the HW");
        s.on_follower_fetch(3, 150, 30, 150);
        assert!(s.may_join_isr(3));
        assert!(!s.may_join_isr(2), "already in the ISR");
        s.pending = Some(PendingIsr::Expand(3));
        assert!(!s.may_join_isr(3));
        assert_eq!(s.maximal_isr(), vec![1, 2, 3]);
        s.on_leader_append(170);
        s.on_follower_fetch(2, 170, 40, 170);
        assert_eq!(s.high_watermark(), 150, "waits for the joining replica");
        s.on_isr_committed(vec![1, 2, 3], 8);
        assert_eq!(s.partition_epoch, 8);
        assert_eq!(s.on_follower_fetch(3, 170, 50, 170), Some(170));
    }

    /// A reassignment within the leader epoch: an added replica is tracked from nothing and
    /// joins once caught up; a removed one is no longer a follower (its fetches are refused).
    #[test]
    fn a_reassignment_adds_and_removes_followers_within_the_epoch() {
        let mut s = LeaderState::new(
            &PartitionRegistration {
                replicas: vec![1, 2],
                ..registration(vec![1, 2])
            },
            100,
            100,
            LAG,
            0,
        );
        assert_eq!(s.on_follower_fetch(3, 100, 10, 100), None);
        assert!(s.follower(3).is_none(), "not a replica yet");
        s.update_assignment(&[1, 2, 3]);
        assert_eq!(s.follower(3).map(|f| f.log_end_offset), Some(-1));
        s.on_follower_fetch(2, 100, 10, 100);
        assert!(!s.may_join_isr(3), "it has fetched nothing");
        s.on_follower_fetch(3, 100, 20, 100);
        assert!(s.may_join_isr(3));
        // Node 2 leaves: its state goes, node 3's stays; the leader is never its own follower.
        s.update_assignment(&[3, 1]);
        assert!(s.follower(2).is_none() && s.follower(1).is_none());
        assert_eq!(s.follower(3).map(|f| f.log_end_offset), Some(100));
    }

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            c.assign(epoch, start);
        }
        c
    }

    /// KIP-279 end to end on two epoch caches: the deposed leader wrote offsets 110..130 at
    /// epoch 3 that the new leader (epoch 4 from 110) never had; the follower truncates to 110
    /// and then agrees with the leader.
    #[test]
    fn a_deposed_leader_truncates_its_unreplicated_suffix() {
        let leader_log = cache(&[(1, 0), (3, 50), (4, 110)]);
        let (leader_leo, follower_leo) = (160, 130);
        let follower_log = cache(&[(1, 0), (3, 50)]);
        // It fetches at its end, its last batch of epoch 3.
        let leader_end = leader_log.end_offset_for(3, leader_leo);
        assert_eq!(leader_end, (3, 110));
        let diverging = diverging_epoch(follower_leo, 3, leader_end).unwrap();
        let local = follower_log.end_offset_for(diverging.0, follower_leo);
        let t = truncation_offset(diverging, local, follower_leo, 100);
        assert_eq!(
            t,
            Truncation {
                offset: 110,
                completed: true
            }
        );
        // After truncating to 110 it fetches at 110 with epoch 3: no divergence.
        assert_eq!(diverging_epoch(110, 3, leader_end), None);
        // A follower at the leader's epoch and behind: no divergence.
        assert_eq!(
            diverging_epoch(120, 4, leader_log.end_offset_for(4, leader_leo)),
            None
        );
        // No epoch known yet (an empty follower): nothing to check.
        assert_eq!(diverging_epoch(0, -1, (-1, -1)), None);
    }

    /// The other cases of getOffsetTruncationState; never past the follower's own end.
    #[test]
    fn truncation_takes_the_agreed_end() {
        let t = |leader, local, leo, hw| truncation_offset(leader, local, leo, hw);
        let done = |offset| Truncation {
            offset,
            completed: true,
        };
        // Only an older epoch (1, ending at 60) than the leader's 2: there first, then ask again.
        assert_eq!(
            t((2, 80), (1, 60), 90, 50),
            Truncation {
                offset: 60,
                completed: false
            }
        );
        assert_eq!(t((2, 80), (2, 95), 95, 50), done(80));
        assert_eq!(t((2, 80), (2, 70), 75, 50), done(70));
        assert_eq!(t((2, 80), (-1, -1), 95, 50), done(80));
        assert_eq!(t((-1, -1), (1, 60), 75, 50), done(50));
        assert_eq!(t((2, 500), (2, 500), 75, 50), done(75));
    }
}
