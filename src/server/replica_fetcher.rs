//! The replica fetchers (Kafka's ReplicaFetcherManager and ReplicaFetcherThread): one task per
//! leader broker this broker follows partitions of, fetching them with Fetch (v13+ by topic id,
//! v15+ with ReplicaState naming this broker and its registration epoch) over the leader's
//! inter-broker listener (`inter.broker.listener.name`), and appending what comes back with the
//! leader's offsets and epochs (`Partition::append_as_follower`), taking the leader's high
//! watermark with it. The leader records each fetch as the follower's position
//! (`protocol::fetch`), which moves its high watermark.
//!
//! `replica_fetchers` keeps one fetcher per leader the replica manager names, starting and
//! stopping them as partitions move; a fetcher reads its partitions from the replica manager
//! before each fetch, and drops an answer for a partition whose leadership changed meanwhile.
//! A partition whose fetch fails (the leader no longer leads it, a fenced or unknown epoch, a
//! storage error) waits `replica.fetch.backoff.ms` before it is fetched again; a lost connection
//! is made again after the same pause. Full fetches without a fetch session (session epoch -1).
//!
//! A log that diverged from the leader's (the leader answers DivergingEpoch, KIP-279, for the
//! epoch of the follower's last batch) is truncated to where both agree and fetched again
//! from there (`Partition::truncate_on_divergence`).
//!
//! A log that ends below the leader's log start (OFFSET_OUT_OF_RANGE) starts over there
//! (`PartitionLog::truncate_fully_and_start_at`).
//!
//! The connection is `inter_broker::BrokerConnection`, secured as the inter-broker listener
//! is (TLS, SASL); one that cannot be made (refused login, bad certificate) is logged with why
//! and tried again after the backoff.
//!
//! Not yet: an offset out of range past the leader's log end (the partition waits out the
//! backoff and asks again).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::inter_broker::BrokerConnection;
use super::replica_manager::{Followed, ReplicaManager};
use crate::broker::Broker;
use crate::config::ReplicationSettings;
use crate::log::partition::LogError;
use crate::protocol::errors;

/// The Fetch versions a fetcher speaks: 13 names topics by id, 15 carries ReplicaState.
const FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 13..=17;

/// Keeps one fetcher per leader this broker follows partitions of, until `cancel`.
pub async fn replica_fetchers(broker: Arc<Broker>, cancel: CancellationToken) {
    let Some(replicas) = broker.replicas.clone() else {
        return;
    };
    let mut changed = replicas.subscribe();
    let mut running: BTreeMap<i32, (CancellationToken, tokio::task::JoinHandle<()>)> =
        BTreeMap::new();
    loop {
        let leaders = replicas.leaders();
        running.retain(|leader, (stop, task)| {
            let keep = leaders.contains(leader) && !task.is_finished();
            if !keep {
                stop.cancel();
            }
            keep
        });
        for leader in leaders {
            running.entry(leader).or_insert_with(|| {
                let stop = cancel.child_token();
                let fetch = fetch_from(Arc::clone(&broker), leader, stop.clone());
                (stop, super::background::spawn(fetch))
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            c = changed.changed() => if c.is_err() { return },
            // A fetcher that ended (its partitions went and came back) is started again.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One fetcher: fetches the partitions followed from `leader` until it has none or `cancel`.
async fn fetch_from(broker: Arc<Broker>, leader: i32, cancel: CancellationToken) {
    let Some(replicas) = broker.replicas.clone() else {
        return;
    };
    let settings = &replicas.settings;
    let backoff = Duration::from_millis(settings.fetch_backoff_ms);
    let mut connection: Option<(BrokerConnection, i16)> = None;
    // Partitions whose last fetch failed, until when they wait.
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    loop {
        let followed = replicas.followed_from(leader);
        if followed.is_empty() || cancel.is_cancelled() {
            return;
        }
        let now = Instant::now();
        delayed.retain(|k, until| *until > now && followed.contains_key(k));
        let ready: Followed = followed
            .into_iter()
            .filter(|(k, _)| !delayed.contains_key(k))
            .collect();
        if ready.is_empty() {
            let until = delayed.values().min().copied().unwrap_or(now + backoff);
            if pause_until(until, &cancel).await {
                return;
            }
            continue;
        }
        let (conn, fetch_version) = match &mut connection {
            Some(c) => c,
            None => match open(&broker, leader, settings).await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    tracing::warn!(leader, error = %e, "replica fetcher cannot reach the leader");
                    if pause_until(Instant::now() + backoff, &cancel).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let (request, sent) = fetch_request(&broker, &replicas, &ready, *fetch_version);
        let answer = tokio::select! {
            _ = cancel.cancelled() => return,
            a = conn.request(*fetch_version, &request) => a,
        };
        match answer {
            Ok(response) if response.error_code == errors::NONE => {
                for key in apply_response(&broker, &replicas, leader, &sent, response) {
                    delayed.insert(key, Instant::now() + backoff);
                }
            }
            Ok(response) => {
                tracing::warn!(
                    leader,
                    error = response.error_code,
                    "the leader refused a replica fetch"
                );
                if pause_until(Instant::now() + backoff, &cancel).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(leader, error = %e, "replica fetch failed; reconnecting");
                connection = None;
                if pause_until(Instant::now() + backoff, &cancel).await {
                    return;
                }
            }
        }
    }
}

/// Waits until `until`; true when cancelled first.
/// A connection to `leader`'s inter-broker listener, and the Fetch version to use with it.
async fn open(
    broker: &Broker,
    leader: i32,
    settings: &ReplicationSettings,
) -> io::Result<(BrokerConnection, i16)> {
    let me = broker.node_id;
    let client_id = format!("broker-{me}-fetcher-0");
    let timeout = Duration::from_millis(settings.socket_timeout_ms);
    let conn = BrokerConnection::open(broker, leader, timeout, client_id).await?;
    let version = conn
        .version(ApiKey::Fetch, FETCH_VERSIONS)
        .ok_or_else(|| io::Error::other("the leader serves no Fetch version from 13"))?;
    Ok((conn, version))
}

async fn pause_until(until: Instant, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep_until(until) => false,
    }
}

/// What a fetch asked for each partition: its topic's name and the leader epoch it named.
type Sent = BTreeMap<(Uuid, i32), (String, i32)>;

/// A follower's full fetch of `ready` at `version`, each partition from its log end, with the
/// epoch of its last batch (KIP-320) and its log start offset.
fn fetch_request(
    broker: &Broker,
    replicas: &ReplicaManager,
    ready: &Followed,
    version: i16,
) -> (FetchRequest, Sent) {
    let s = &replicas.settings;
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    let mut sent = Sent::new();
    for (&(topic_id, p), f) in ready {
        let Some(partition) = broker
            .catalog
            .get_by_id(topic_id)
            .and_then(|t| t.partition(p).cloned())
        else {
            continue;
        };
        let (leo, start, last_epoch) = partition.with_log(|l| {
            let last = l.leader_epochs().latest_epoch().unwrap_or(-1);
            (l.log_end_offset(), l.log_start_offset(), last)
        });
        topics.entry(topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(p)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(leo)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(start)
                .with_partition_max_bytes(s.fetch_max_bytes),
        );
        sent.insert((topic_id, p), (f.topic.clone(), f.leader_epoch));
    }
    let me = replicas.broker_id();
    let broker_epoch = broker
        .catalog
        .image()
        .brokers
        .get(&me)
        .map_or(-1, |b| b.epoch);
    let mut request = FetchRequest::default()
        .with_max_wait_ms(s.fetch_wait_max_ms)
        .with_min_bytes(s.fetch_min_bytes)
        .with_max_bytes(s.fetch_response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(id, ps)| FetchTopic::default().with_topic_id(id).with_partitions(ps))
                .collect(),
        );
    if version >= 15 {
        request.replica_state = ReplicaState::default()
            .with_replica_id(BrokerId(me))
            .with_replica_epoch(broker_epoch);
    } else {
        request.replica_id = BrokerId(me);
    }
    (request, sent)
}

/// Appends what the leader sent, partition by partition; returns the partitions that failed
/// (they wait out the backoff).
fn apply_response(
    broker: &Broker,
    replicas: &ReplicaManager,
    leader: i32,
    sent: &Sent,
    response: FetchResponse,
) -> Vec<(Uuid, i32)> {
    let mut failed = Vec::new();
    for t in response.responses {
        for pd in t.partitions {
            let key = (t.topic_id, pd.partition_index);
            let Some((topic, epoch)) = sent.get(&key) else {
                continue;
            };
            // Leadership moved while the fetch was out: its data is not this leader's to give.
            if !replicas.still_follows(leader, key, *epoch) {
                continue;
            }
            let Some(partition) = broker
                .catalog
                .get_by_id(t.topic_id)
                .and_then(|t| t.partition(pd.partition_index).cloned())
            else {
                continue;
            };
            if pd.error_code == errors::OFFSET_OUT_OF_RANGE {
                // Behind the leader's log start (its retention or DeleteRecords went past this
                // log's end): start over there (ReplicaFetcherThread's handleOutOfRangeError).
                // Ahead of its log end with no epoch to tell is not handled yet: the partition
                // waits out the backoff.
                let start = pd.log_start_offset;
                let moved = partition.with_log(|l| {
                    let behind = start > l.log_end_offset();
                    behind.then(|| l.truncate_fully_and_start_at(start))
                });
                match moved {
                    Some(Ok(())) => {
                        tracing::info!(
                            topic,
                            partition = pd.partition_index,
                            leader,
                            start,
                            "started over at the leader's log start"
                        );
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::error!(topic, partition = pd.partition_index, leader, error = %e, "could not start over at the leader's log start");
                    }
                    None => {}
                }
            }
            if pd.error_code != errors::NONE {
                tracing::debug!(
                    topic,
                    partition = pd.partition_index,
                    leader,
                    error = pd.error_code,
                    "replica fetch of a partition failed"
                );
                failed.push(key);
                continue;
            }
            let diverging = (pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset);
            if diverging != (-1, -1) {
                // KIP-279: cut what the leader never had, then fetch again from there.
                match partition.truncate_on_divergence(diverging) {
                    Ok(end) => {
                        tracing::info!(
                            topic,
                            partition = pd.partition_index,
                            leader,
                            end,
                            "truncated a diverging log"
                        )
                    }
                    Err(e) => {
                        tracing::error!(topic, partition = pd.partition_index, leader, error = %e, "could not truncate a diverging log");
                        failed.push(key);
                    }
                }
                continue;
            }
            let records = pd.records.unwrap_or_default();
            let now = broker.clock.now_ms();
            match partition.append_as_follower(&records, pd.high_watermark, now, *epoch) {
                Ok(_) => {}
                Err(e @ LogError::FencedLeaderEpoch { .. }) => {
                    // This broker leads the partition now (its log moved to the new epoch
                    // while the fetch was out): the answer is an older leadership's.
                    tracing::debug!(topic, partition = pd.partition_index, error = %e, "a replica fetch answer of an older leadership");
                }
                Err(e @ LogError::UnexpectedAppendOffset { .. }) => {
                    // The log moved under the fetch (a truncation): fetch again from its end.
                    tracing::debug!(topic, partition = pd.partition_index, error = %e, "a replica fetch answer no longer fits the log");
                }
                Err(e) => {
                    tracing::error!(topic, partition = pd.partition_index, leader, error = %e, "could not append what the leader sent");
                    failed.push(key);
                }
            }
        }
    }
    failed
}
