//! KIP-227 incremental fetch sessions: Kafka's `FetchManager`, `FetchSessionCache` and
//! `FetchContext` (kafka/server/FetchSession.scala), as a state machine that takes `now`.
//!
//! A client that fetches many partitions sends them all once (a full fetch, epoch 0) and the
//! broker answers with a session id; from then on it sends only what changed (its fetch offsets
//! after new data, partitions added, `forgotten_topics_data`) with the next epoch, and the broker
//! answers only partitions with something new (records, a moved high watermark or log start
//! offset, an error). How a request's session id and epoch are read (`FetchManager.newContext`):
//!
//! | epoch        | session id | context                                                        |
//! |--------------|------------|----------------------------------------------------------------|
//! | -1 (final)   | any        | sessionless full fetch; a session with that id is closed       |
//! | 0 (initial)  | any        | full fetch that opens a new session (if the cache has room); a |
//! |              |            | session with that id is closed                                 |
//! | > 0          | unknown    | FETCH_SESSION_ID_NOT_FOUND                                     |
//! | > 0          | known      | incremental if the epoch is the session's (else                |
//! |              |            | INVALID_FETCH_SESSION_EPOCH), and the session names topics the |
//! |              |            | way the request version does (else FETCH_SESSION_TOPIC_ID_ERROR)|
//!
//! The cache is Kafka's: `max.incremental.fetch.session.cache.slots` (default 1000) split over 8
//! shards, each with its own lock and its own range of session ids; a new session goes to the
//! next shard in turn and may evict, within that shard, a session unused for 120 s, else the
//! least valuable one (unprivileged before privileged, then fewer partitions) if it is worth less
//! than the newcomer and older than 120 s (`FetchSessionCacheShard.tryEvict`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::PartitionData;
use parking_lot::Mutex;
use uuid::Uuid;

use super::errors;

/// The session id of "no session" (FetchMetadata.INVALID_SESSION_ID).
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a sessionless fetch (or of a client closing its session).
pub const FINAL_EPOCH: i32 = -1;
/// Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS: how long a session is safe from eviction
/// after its creation, and how long unused before it is stale.
pub const EVICTION_MS: i64 = 120_000;
/// Kafka's NumFetchSessionCacheShards.
const NUM_SHARDS: usize = 8;
/// Session ids each shard hands out: shard n owns [max(1, n * RANGE), (n + 1) * RANGE).
const SESSION_ID_RANGE: i32 = i32::MAX / NUM_SHARDS as i32;

/// The epoch after `epoch` (FetchMetadata.nextEpoch): wraps to 1, never back to 0.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// How a partition is named in a session: by topic id from Fetch v13 on, by name before
/// (Kafka's CachedPartition equality).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(String),
}

pub type PartitionKey = (TopicKey, i32);

/// One partition as a fetch reads it: from the request, or remembered by the session (Kafka's
/// FetchRequest.PartitionData with its TopicIdPartition).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPartitionData {
    pub topic_id: Uuid,
    /// `None` for a topic id this broker does not know (answered UNKNOWN_TOPIC_ID).
    pub topic: Option<String>,
    pub partition: i32,
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub partition_max_bytes: i32,
    /// The fetcher's own log start offset (followers), kept as Kafka keeps it.
    pub log_start_offset: i64,
    pub last_fetched_epoch: i32,
}

impl FetchPartitionData {
    pub fn key(&self, by_id: bool) -> PartitionKey {
        let topic = if by_id {
            TopicKey::Id(self.topic_id)
        } else {
            TopicKey::Name(self.topic.clone().unwrap_or_default())
        };
        (topic, self.partition)
    }
}

/// The session fields of a Fetch request.
#[derive(Debug, Clone, Copy)]
pub struct FetchMetadata {
    pub version: i16,
    pub session_id: i32,
    pub epoch: i32,
    /// A follower's fetch: its session is privileged in eviction.
    pub is_from_follower: bool,
}

impl FetchMetadata {
    fn is_full(&self) -> bool {
        self.epoch == INITIAL_EPOCH || self.epoch == FINAL_EPOCH
    }

    fn uses_topic_ids(&self) -> bool {
        self.version >= super::fetch::TOPIC_ID_VERSION
    }
}

/// How a fetch is answered (Kafka's FetchContext subclasses).
#[derive(Debug, Clone, PartialEq)]
pub enum FetchContext {
    /// The session could not be used: this error, session id 0, no partitions.
    SessionError(i16),
    /// A full fetch with no session (epoch -1, or before Fetch v7).
    Sessionless,
    /// A full fetch that creates a session from its response.
    Full {
        privileged: bool,
        uses_topic_ids: bool,
    },
    /// A fetch in session `session_id`, which is at `epoch` once this fetch is answered.
    Incremental { session_id: i32, epoch: i32 },
}

struct CachedPartition {
    request: FetchPartitionData,
    /// What the client was last told; -1 after an error, so the partition is sent again once
    /// the error is gone.
    high_watermark: i64,
    local_log_start_offset: i64,
}

impl CachedPartition {
    /// CachedPartition.maybeUpdateResponseData: whether an incremental response must carry this
    /// partition, remembering what it tells.
    fn must_respond(&mut self, pd: &PartitionData) -> bool {
        let mut must = records_len(pd) > 0
            || pd.preferred_read_replica.0 >= 0
            || pd.diverging_epoch.epoch >= 0;
        if self.high_watermark != pd.high_watermark {
            must = true;
            self.high_watermark = pd.high_watermark;
        }
        if self.local_log_start_offset != pd.log_start_offset {
            must = true;
            self.local_log_start_offset = pd.log_start_offset;
        }
        if pd.error_code != errors::NONE {
            self.high_watermark = -1;
            must = true;
        }
        must
    }
}

fn records_len(pd: &PartitionData) -> usize {
    pd.records.as_ref().map_or(0, |r| r.len())
}

struct FetchSession {
    privileged: bool,
    uses_topic_ids: bool,
    creation_ms: i64,
    last_used_ms: i64,
    epoch: i32,
    /// The size the shard's eviction sets know this session by (Kafka's cachedSize).
    cached_size: Option<usize>,
    /// In fetch order: a partition that returned records moves to the end, so partitions
    /// share a response's byte limit in turn.
    partitions: IndexMap<PartitionKey, CachedPartition>,
}

impl FetchSession {
    fn evictable_key(&self, id: i32) -> EvictableKey {
        EvictableKey {
            privileged: self.privileged,
            size: self.cached_size.unwrap_or(0),
            id,
        }
    }

    /// FetchSession.update: add the request's new partitions, update the known ones, drop the
    /// forgotten ones.
    fn update(
        &mut self,
        fetch_data: IndexMap<PartitionKey, FetchPartitionData>,
        to_forget: &[PartitionKey],
    ) {
        for (key, request) in fetch_data {
            match self.partitions.get_mut(&key) {
                Some(cached) => cached.request = request,
                None => {
                    self.partitions.insert(
                        key,
                        CachedPartition {
                            request,
                            high_watermark: -1,
                            local_log_start_offset: -1,
                        },
                    );
                }
            }
        }
        for key in to_forget {
            self.partitions.shift_remove(key);
        }
    }
}

/// Eviction order (Kafka's EvictableKey): unprivileged first, then fewer partitions, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EvictableKey {
    privileged: bool,
    size: usize,
    id: i32,
}

/// FetchSessionCacheShard.
struct Shard {
    num: usize,
    max_entries: usize,
    sessions: HashMap<i32, FetchSession>,
    /// (last used ms, id), oldest first.
    last_used: BTreeSet<(i64, i32)>,
    evictable_by_all: BTreeSet<EvictableKey>,
    evictable_by_privileged: BTreeSet<EvictableKey>,
    num_partitions: usize,
    evictions: u64,
}

impl Shard {
    fn new(num: usize, max_entries: usize) -> Shard {
        Shard {
            num,
            max_entries,
            sessions: HashMap::new(),
            last_used: BTreeSet::new(),
            evictable_by_all: BTreeSet::new(),
            evictable_by_privileged: BTreeSet::new(),
            num_partitions: 0,
            evictions: 0,
        }
    }

    /// A random unused id in this shard's range (random, as Kafka's, so that a client cannot
    /// guess another's session).
    fn new_session_id(&self) -> i32 {
        let low = (self.num as i32 * SESSION_ID_RANGE).max(1);
        let span = ((self.num as i32 + 1) * SESSION_ID_RANGE - low) as u32;
        let mut n = 0u32;
        loop {
            // getrandom fails only without an OS source; counting up is then still unique.
            n = getrandom::u32().unwrap_or(n.wrapping_add(1));
            let id = low + (n % span) as i32;
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn maybe_create_session(
        &mut self,
        now: i64,
        privileged: bool,
        uses_topic_ids: bool,
        partitions: IndexMap<PartitionKey, CachedPartition>,
    ) -> i32 {
        let room = self.sessions.len() < self.max_entries
            || self.try_evict(
                privileged,
                EvictableKey {
                    privileged,
                    size: partitions.len(),
                    id: 0,
                },
                now,
            );
        if !room {
            return INVALID_SESSION_ID;
        }
        let id = self.new_session_id();
        self.sessions.insert(
            id,
            FetchSession {
                privileged,
                uses_topic_ids,
                creation_ms: now,
                last_used_ms: now,
                epoch: next_epoch(INITIAL_EPOCH),
                cached_size: None,
                partitions,
            },
        );
        self.last_used.insert((now, id));
        self.touch(id, now);
        id
    }

    /// FetchSessionCacheShard.tryEvict: a stale session first, else the least valuable one if
    /// the newcomer is worth more.
    fn try_evict(&mut self, privileged: bool, key: EvictableKey, now: i64) -> bool {
        let Some(&(last_used_ms, id)) = self.last_used.first() else {
            return false;
        };
        let victim = if now - last_used_ms > EVICTION_MS {
            id
        } else {
            let set = if privileged {
                &self.evictable_by_privileged
            } else {
                &self.evictable_by_all
            };
            match set.first() {
                Some(first) if key >= *first => first.id,
                _ => return false,
            }
        };
        self.remove(victim);
        self.evictions += 1;
        true
    }

    fn remove(&mut self, id: i32) -> Option<FetchSession> {
        let session = self.sessions.remove(&id)?;
        self.last_used.remove(&(session.last_used_ms, id));
        let key = session.evictable_key(id);
        self.evictable_by_all.remove(&key);
        self.evictable_by_privileged.remove(&key);
        self.num_partitions -= session.cached_size.unwrap_or(0);
        Some(session)
    }

    /// FetchSessionCacheShard.touch: the session was used at `now`; re-file it in the last-used
    /// and eviction sets with its current size.
    fn touch(&mut self, id: i32, now: i64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        self.last_used.remove(&(s.last_used_ms, id));
        s.last_used_ms = now;
        self.last_used.insert((now, id));
        if let Some(old) = s.cached_size {
            let old_key = s.evictable_key(id);
            self.evictable_by_all.remove(&old_key);
            self.evictable_by_privileged.remove(&old_key);
            self.num_partitions -= old;
        }
        s.cached_size = Some(s.partitions.len());
        let key = s.evictable_key(id);
        let old_enough = now - s.creation_ms > EVICTION_MS;
        if !s.privileged || old_enough {
            self.evictable_by_privileged.insert(key);
        }
        if old_enough {
            self.evictable_by_all.insert(key);
        }
        self.num_partitions += s.partitions.len();
    }
}

/// The broker's fetch sessions (Kafka's FetchManager over its FetchSessionCache).
pub struct FetchManager {
    shards: Vec<Mutex<Shard>>,
    next_shard: AtomicUsize,
}

impl FetchManager {
    /// `max_slots`: max.incremental.fetch.session.cache.slots, divided equally among the shards
    /// as Kafka divides it (fewer than 8 slots: no sessions).
    pub fn new(max_slots: usize) -> FetchManager {
        FetchManager {
            shards: (0..NUM_SHARDS)
                .map(|n| Mutex::new(Shard::new(n, max_slots / NUM_SHARDS)))
                .collect(),
            next_shard: AtomicUsize::new(0),
        }
    }

    /// The shard that owns `session_id`, if any could.
    fn shard(&self, session_id: i32) -> Option<&Mutex<Shard>> {
        usize::try_from(session_id / SESSION_ID_RANGE)
            .ok()
            .and_then(|n| self.shards.get(n))
    }

    /// FetchManager.newContext: how to answer the request, and the partitions to read (the
    /// request's for a full fetch, the whole session's for an incremental one, in its order).
    /// `topic_name` resolves topic ids a session learned before their topic was known.
    pub fn new_context(
        &self,
        meta: FetchMetadata,
        fetch_data: IndexMap<PartitionKey, FetchPartitionData>,
        to_forget: &[PartitionKey],
        topic_name: impl Fn(Uuid) -> Option<String>,
        now: i64,
    ) -> (FetchContext, Vec<FetchPartitionData>) {
        if meta.is_full() {
            if meta.session_id != INVALID_SESSION_ID {
                // Any session named by a full fetch is closed.
                if let Some(shard) = self.shard(meta.session_id) {
                    shard.lock().remove(meta.session_id);
                }
            }
            let context = if meta.epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full {
                    privileged: meta.is_from_follower,
                    uses_topic_ids: meta.uses_topic_ids(),
                }
            };
            return (context, fetch_data.into_values().collect());
        }
        let error = |code| (FetchContext::SessionError(code), Vec::new());
        let Some(shard) = self.shard(meta.session_id) else {
            return error(errors::FETCH_SESSION_ID_NOT_FOUND);
        };
        let mut shard = shard.lock();
        let Some(session) = shard.sessions.get_mut(&meta.session_id) else {
            return error(errors::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != meta.epoch {
            return error(errors::INVALID_FETCH_SESSION_EPOCH);
        }
        if session.uses_topic_ids != meta.uses_topic_ids() {
            return error(errors::FETCH_SESSION_TOPIC_ID_ERROR);
        }
        session.update(fetch_data.clone(), to_forget);
        if session.partitions.is_empty() {
            // Nothing left to fetch: the session closes and this fetch is sessionless.
            shard.remove(meta.session_id);
            return (
                FetchContext::Sessionless,
                fetch_data.into_values().collect(),
            );
        }
        session.epoch = next_epoch(session.epoch);
        let epoch = session.epoch;
        let partitions = session
            .partitions
            .values_mut()
            .map(|p| {
                if session.uses_topic_ids && p.request.topic.is_none() {
                    p.request.topic = topic_name(p.request.topic_id);
                }
                p.request.clone()
            })
            .collect();
        shard.touch(meta.session_id, now);
        (
            FetchContext::Incremental {
                session_id: meta.session_id,
                epoch,
            },
            partitions,
        )
    }

    /// FetchContext.updateAndGenerateResponseData: the response's error and session id, and the
    /// partitions it carries. A full fetch opens its session here (from what it answered); an
    /// incremental one keeps only the partitions with news and remembers what it told.
    pub fn update_and_generate(
        &self,
        context: &FetchContext,
        now: i64,
        mut partitions: Vec<(FetchPartitionData, PartitionData)>,
    ) -> (i16, i32, Vec<(FetchPartitionData, PartitionData)>) {
        match *context {
            FetchContext::SessionError(code) => (code, INVALID_SESSION_ID, Vec::new()),
            FetchContext::Sessionless => (errors::NONE, INVALID_SESSION_ID, partitions),
            FetchContext::Full {
                privileged,
                uses_topic_ids,
            } => {
                let cached = partitions
                    .iter()
                    .map(|(request, pd)| {
                        let key = request.key(uses_topic_ids);
                        let cached = CachedPartition {
                            request: request.clone(),
                            high_watermark: pd.high_watermark,
                            local_log_start_offset: pd.log_start_offset,
                        };
                        (key, cached)
                    })
                    .collect();
                let n = self.next_shard.fetch_add(1, Ordering::Relaxed) % NUM_SHARDS;
                let id = self.shards[n].lock().maybe_create_session(
                    now,
                    privileged,
                    uses_topic_ids,
                    cached,
                );
                (errors::NONE, id, partitions)
            }
            FetchContext::Incremental { session_id, epoch } => {
                let Some(shard) = self.shard(session_id) else {
                    return (errors::NONE, session_id, partitions);
                };
                let mut shard = shard.lock();
                let Some(session) = shard.sessions.get_mut(&session_id) else {
                    // Closed or evicted meanwhile: answer in full; the next incremental fetch
                    // learns that the session is gone.
                    return (errors::NONE, session_id, partitions);
                };
                if session.epoch != epoch {
                    // Another fetch of this session came in meanwhile (a duplicate request).
                    return (errors::INVALID_FETCH_SESSION_EPOCH, session_id, Vec::new());
                }
                let by_id = session.uses_topic_ids;
                partitions.retain(|(request, pd)| {
                    let key = request.key(by_id);
                    let Some(index) = session.partitions.get_index_of(&key) else {
                        return true;
                    };
                    let must = session.partitions[index].must_respond(pd);
                    if must && records_len(pd) > 0 {
                        // To the back of the line (Kafka removes and re-adds it).
                        let last = session.partitions.len() - 1;
                        session.partitions.move_index(index, last);
                    }
                    must
                });
                (errors::NONE, session_id, partitions)
            }
        }
    }

    /// Sessions in the cache (Kafka's NumIncrementalFetchSessions).
    pub fn num_sessions(&self) -> usize {
        self.shards.iter().map(|s| s.lock().sessions.len()).sum()
    }

    /// Partitions the sessions hold (NumIncrementalFetchPartitionsCached).
    pub fn num_partitions_cached(&self) -> usize {
        self.shards.iter().map(|s| s.lock().num_partitions).sum()
    }

    /// Sessions evicted to make room (IncrementalFetchSessionEvictionsPerSec, as a count).
    pub fn evictions(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().evictions).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn part(topic: &str, partition: i32) -> FetchPartitionData {
        FetchPartitionData {
            topic_id: Uuid::nil(),
            topic: Some(topic.into()),
            partition,
            fetch_offset: 0,
            current_leader_epoch: -1,
            partition_max_bytes: 1 << 20,
            log_start_offset: -1,
            last_fetched_epoch: -1,
        }
    }

    fn data(parts: &[FetchPartitionData]) -> IndexMap<PartitionKey, FetchPartitionData> {
        parts.iter().map(|p| (p.key(false), p.clone())).collect()
    }

    fn meta(session_id: i32, epoch: i32, follower: bool) -> FetchMetadata {
        FetchMetadata {
            version: 12,
            session_id,
            epoch,
            is_from_follower: follower,
        }
    }

    fn answer(
        p: &FetchPartitionData,
        hw: i64,
        records: usize,
    ) -> (FetchPartitionData, PartitionData) {
        let pd = PartitionData::default()
            .with_partition_index(p.partition)
            .with_high_watermark(hw)
            .with_records(Some(Bytes::from(vec![0u8; records])));
        (p.clone(), pd)
    }

    /// A full fetch of `n` partitions at `now`: the new session's id (0: none).
    fn open(m: &FetchManager, n: i32, follower: bool, now: i64) -> i32 {
        let parts: Vec<_> = (0..n).map(|i| part("t", i)).collect();
        let (ctx, targets) = m.new_context(meta(0, 0, follower), data(&parts), &[], |_| None, now);
        let answers = targets.iter().map(|p| answer(p, 0, 0)).collect();
        m.update_and_generate(&ctx, now, answers).1
    }

    #[test]
    fn epochs_wrap_to_one_and_final_stays_final() {
        assert_eq!(next_epoch(INITIAL_EPOCH), 1);
        assert_eq!(next_epoch(41), 42);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(FINAL_EPOCH), FINAL_EPOCH);
    }

    #[test]
    fn ids_outside_every_shard_are_unknown_not_a_panic() {
        let m = FetchManager::new(1000);
        for id in [i32::MAX, i32::MIN, -1, SESSION_ID_RANGE * 8] {
            let (ctx, _) = m.new_context(meta(id, 5, false), IndexMap::new(), &[], |_| None, 0);
            assert_eq!(
                ctx,
                FetchContext::SessionError(errors::FETCH_SESSION_ID_NOT_FOUND)
            );
            // A full fetch naming it closes nothing and still works.
            let (ctx, _) = m.new_context(
                meta(id, FINAL_EPOCH, false),
                IndexMap::new(),
                &[],
                |_| None,
                0,
            );
            assert_eq!(ctx, FetchContext::Sessionless);
        }
    }

    #[test]
    fn each_shard_hands_out_ids_from_its_own_range() {
        let m = FetchManager::new(16);
        for n in 0..16 {
            let id = open(&m, 1, false, 0);
            let shard = (n % NUM_SHARDS) as i32;
            assert!(id >= (shard * SESSION_ID_RANGE).max(1) && id < (shard + 1) * SESSION_ID_RANGE);
        }
        assert_eq!(
            open(&m, 1, false, 0),
            INVALID_SESSION_ID,
            "every shard is full"
        );
    }

    fn cached(n: usize) -> IndexMap<PartitionKey, CachedPartition> {
        (0..n as i32)
            .map(|i| {
                let request = part("t", i);
                let c = CachedPartition {
                    request: request.clone(),
                    high_watermark: 0,
                    local_log_start_offset: 0,
                };
                (request.key(false), c)
            })
            .collect()
    }

    // FetchSessionTest.testPrivilegedSessionHandling and testSessionCacheEviction analogues: in
    // a full shard, a newcomer evicts a stale session (unused for 120 s); else a privileged one
    // evicts any unprivileged session; else one older than 120 s if the newcomer has more
    // partitions.
    #[test]
    fn eviction_follows_kafkas_order() {
        // (now, privileged, partitions) of a newcomer: whether it got a session.
        let mut shard = Shard::new(0, 1);
        let mut create =
            |now, privileged, n| shard.maybe_create_session(now, privileged, false, cached(n));
        let young = create(0, false, 2);
        assert_ne!(young, INVALID_SESSION_ID);
        // Too young for an unprivileged newcomer, however large.
        assert_eq!(create(60_000, false, 9), INVALID_SESSION_ID);
        // A privileged newcomer evicts it.
        let privileged = create(60_000, true, 1);
        assert_ne!(privileged, INVALID_SESSION_ID);
        // An unprivileged one cannot evict a privileged session before it is 120 s old.
        assert_eq!(create(100_000, false, 9), INVALID_SESSION_ID);
        assert!(!shard.sessions.contains_key(&young));
        assert_eq!(shard.evictions, 1);

        let mut shard = Shard::new(0, 1);
        let old = shard.maybe_create_session(0, false, false, cached(2));
        shard.touch(old, 150_000);
        let mut create = |now, n| shard.maybe_create_session(now, false, false, cached(n));
        // Older than 120 s but not stale (used at 150 s): only a newcomer with more partitions
        // evicts it.
        assert_eq!(create(200_000, 1), INVALID_SESSION_ID);
        assert_ne!(create(200_000, 3), INVALID_SESSION_ID);
        // A stale session goes whatever the newcomer.
        assert_ne!(create(320_001, 0), INVALID_SESSION_ID);
        assert!(!shard.sessions.contains_key(&old));
        assert_eq!((shard.evictions, shard.sessions.len()), (2, 1));
        assert_eq!(shard.num_partitions, 0);
    }

    #[test]
    fn a_partition_that_returned_records_goes_to_the_back() {
        let m = FetchManager::new(1000);
        let id = open(&m, 3, false, 0);
        let (ctx, targets) = m.new_context(meta(id, 1, false), IndexMap::new(), &[], |_| None, 1);
        let order: Vec<i32> = targets.iter().map(|p| p.partition).collect();
        assert_eq!(order, [0, 1, 2]);
        // Partition 0 returns records, 1 an unchanged high watermark, 2 a new one.
        let answers = vec![
            answer(&targets[0], 5, 10),
            answer(&targets[1], 0, 0),
            answer(&targets[2], 7, 0),
        ];
        let (code, sid, kept) = m.update_and_generate(&ctx, 1, answers);
        assert_eq!((code, sid), (errors::NONE, id));
        let kept: Vec<i32> = kept.iter().map(|(p, _)| p.partition).collect();
        assert_eq!(kept, [0, 2]);
        let (_, targets) = m.new_context(meta(id, 2, false), IndexMap::new(), &[], |_| None, 2);
        let order: Vec<i32> = targets.iter().map(|p| p.partition).collect();
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(m.num_partitions_cached(), 3);
    }

    #[test]
    fn an_error_is_answered_until_it_clears_and_once_after() {
        let m = FetchManager::new(1000);
        let id = open(&m, 1, false, 0);
        let mut epoch = 1;
        let mut fetch = |pd: PartitionData| {
            let (ctx, targets) =
                m.new_context(meta(id, epoch, false), IndexMap::new(), &[], |_| None, 0);
            epoch += 1;
            let (_, _, kept) = m.update_and_generate(&ctx, 0, vec![(targets[0].clone(), pd)]);
            kept.len()
        };
        let err = PartitionData::default()
            .with_error_code(6)
            .with_high_watermark(-1);
        let ok = PartitionData::default().with_high_watermark(0);
        assert_eq!(fetch(ok.clone()), 0);
        assert_eq!(fetch(err.clone()), 1);
        assert_eq!(fetch(err), 1);
        assert_eq!(fetch(ok.clone()), 1, "the partition is back");
        assert_eq!(fetch(ok), 0);
    }
}
