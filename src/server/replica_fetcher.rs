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
//! Not yet: TLS and SASL on the inter-broker listener (a fetcher whose leader's inter-broker
//! endpoint is not PLAINTEXT logs it and fetches nothing), and an offset out of range past the
//! leader's log end (the partition waits out the backoff and asks again).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::replica_manager::{Followed, ReplicaManager};
use crate::broker::Broker;
use crate::config::{ReplicationSettings, SecurityProtocol};
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
                (stop, tokio::spawn(fetch))
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
    let mut connection: Option<LeaderConnection> = None;
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
        let conn = match &mut connection {
            Some(c) => c,
            None => match LeaderConnection::open(&broker, leader, settings).await {
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
        let (request, sent) = fetch_request(&broker, &replicas, &ready, conn.fetch_version);
        let answer = tokio::select! {
            _ = cancel.cancelled() => return,
            a = conn.request(conn.fetch_version, &request) => a,
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
            match partition.append_as_follower(&records, pd.high_watermark, now) {
                Ok(_) => {}
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

/// A connection to a leader's inter-broker listener.
struct LeaderConnection {
    stream: TcpStream,
    next_correlation_id: i32,
    client_id: StrBytes,
    fetch_version: i16,
    /// Answers larger than this close the connection (socket.request.max.bytes).
    max_frame: usize,
    timeout: Duration,
}

impl LeaderConnection {
    /// Connects to `leader`'s endpoint on the inter-broker listener and learns the Fetch
    /// version to use (ApiVersions).
    async fn open(
        broker: &Broker,
        leader: i32,
        settings: &ReplicationSettings,
    ) -> io::Result<LeaderConnection> {
        let image = broker.catalog.image();
        let endpoint = image
            .brokers
            .get(&leader)
            .and_then(|b| (b.endpoints.iter()).find(|e| e.name == settings.inter_broker_listener))
            .ok_or_else(|| {
                io::Error::other(format!(
                    "broker {leader} has no endpoint on the inter-broker listener {}",
                    settings.inter_broker_listener
                ))
            })?;
        if endpoint.security_protocol != SecurityProtocol::Plaintext.id() {
            return Err(io::Error::other(format!(
                "the inter-broker listener {} is not PLAINTEXT: replica fetchers speak PLAINTEXT only yet",
                settings.inter_broker_listener
            )));
        }
        let timeout = Duration::from_millis(settings.socket_timeout_ms);
        let addr = (endpoint.host.as_str(), endpoint.port);
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let me = broker.node_id;
        let mut conn = LeaderConnection {
            stream,
            next_correlation_id: 0,
            client_id: StrBytes::from_string(format!("broker-{me}-fetcher-0")),
            fetch_version: 0,
            max_frame: broker.config.socket_request_max_bytes,
            timeout,
        };
        let versions: ApiVersionsResponse = conn.request(2, &ApiVersionsRequest::default()).await?;
        let theirs = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .map(|k| k.min_version..=k.max_version);
        conn.fetch_version = theirs
            .map(|r| (*r.end()).min(*FETCH_VERSIONS.end()))
            .filter(|v| FETCH_VERSIONS.contains(v))
            .ok_or_else(|| io::Error::other("the leader serves no Fetch version from 13"))?;
        Ok(conn)
    }

    /// Sends `req` at `version` and reads its answer (within replica.socket.timeout.ms).
    async fn request<R: Request>(&mut self, version: i16, req: &R) -> io::Result<R::Response> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let key = ApiKey::try_from(R::KEY).map_err(|_| io::Error::other("unknown API key"))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut out = BytesMut::new();
        out.put_i32(0);
        header
            .encode(&mut out, key.request_header_version(version))
            .map_err(io::Error::other)?;
        req.encode(&mut out, version).map_err(io::Error::other)?;
        let len = i32::try_from(out.len() - 4).map_err(io::Error::other)?;
        out[..4].copy_from_slice(&len.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&out).await?;
            let size = self.stream.read_i32().await?;
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= self.max_frame)
                .ok_or_else(|| io::Error::other(format!("answer of {size} bytes")))?;
            let mut frame = vec![0; size];
            self.stream.read_exact(&mut frame).await?;
            Ok::<_, io::Error>(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))??;
        let hv = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, hv).map_err(io::Error::other)?;
        if header.correlation_id != correlation_id {
            return Err(io::Error::other("answer to another request"));
        }
        let response = R::Response::decode(&mut frame, version).map_err(io::Error::other)?;
        if frame.has_remaining() {
            return Err(io::Error::other("bytes after the answer"));
        }
        Ok(response)
    }
}
