//! The metadata quorum: Kafka's KRaft metadata log as a Raft group on openraft. Its entries are
//! batches of Kafka's metadata records and its state machine is the `MetadataImage`; it is
//! another implementation of `MetadataLog` (`RaftMetadataLog`), not a second metadata path: the
//! catalog, the replay, and the publishers stay the shared ones.
//!
//! - `log_store`: openraft's log as Kafka's `__cluster_metadata-0` (one record batch per entry,
//!   the partition leader epoch the Raft term) and its vote as Kafka's `quorum-state` file;
//! - `state_machine`: the image the committed entries replay to, and the committed end offset;
//! - `Quorum`: one node of the group (async, on any tokio runtime), over any network
//!   (`openraft::RaftNetworkFactory`: an in-memory one in the simulation test).
//!
//! - `observer`: a broker-only process's view of the log, fetched from the voters;
//! - `check_quorum`: a leader no majority hears from resigns (Kafka's check quorum).
//!
//! - `snapshots`: Kafka's checkpoint files of the image, which are openraft's snapshots too, and
//!   the log's retention behind them.
//!
//! Not yet: membership changes (the voters are fixed when the quorum is first formed).

pub mod check_quorum;
pub mod log_store;
pub mod observer;
pub mod replicas;
#[cfg(test)]
mod simulation;
pub mod snapshots;
pub mod state_machine;
pub mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, RaftNetworkFactory, SnapshotPolicy};

use self::log_store::QuorumLogStore;
use self::state_machine::{Applied, QuorumStateMachine};
use super::controller::{ControllerDuties, ControllerRequest, ControllerResponse};
use super::image::MetadataImage;
use super::metadata_log::{
    MetadataBatch, MetadataLog, MetadataLogError, MetadataSnapshot, QuorumState, ReplicaState,
    Writer,
};
use super::records::MetadataRecord;
use crate::security::channel::ClientChannel;

/// A node id of the quorum (Kafka's `node.id`).
pub type NodeId = u64;

/// A normal entry: metadata records appended together, stamped with the proposer's clock so
/// that every node's log and image agree on the batch's time. On the wire (see `transport`)
/// each record is its Kafka encoding, in base64.
///
/// `decided_on` makes the append conditional (Kafka's `RaftClient.prepareAppend` with a required
/// base offset): the records were decided on the image of the log up to that offset (the last
/// offset of its last data batch, -1 for none), and the leader's log takes them only if no data
/// batch came after it; otherwise the entry is written as a no-op (`log_store`). `None`: an
/// entry as the log holds it (taken where it was first written) or an unconditional append.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "WireEntry", into = "WireEntry")]
pub struct MetadataEntry {
    pub records: Vec<MetadataRecord>,
    pub append_time_ms: i64,
    pub decided_on: Option<i64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireEntry {
    time: i64,
    records: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_on: Option<i64>,
}

impl From<MetadataEntry> for WireEntry {
    fn from(e: MetadataEntry) -> WireEntry {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        WireEntry {
            time: e.append_time_ms,
            records: e.records.iter().map(|r| b64.encode(r.encode())).collect(),
            decided_on: e.decided_on,
        }
    }
}

impl TryFrom<WireEntry> for MetadataEntry {
    type Error = String;

    fn try_from(w: WireEntry) -> Result<MetadataEntry, String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let records = w
            .records
            .iter()
            .map(|r| {
                let bytes = b64.decode(r).map_err(|e| e.to_string())?;
                MetadataRecord::decode(&bytes).map_err(|e| e.to_string())
            })
            .collect::<Result<_, String>>()?;
        Ok(MetadataEntry {
            records,
            append_time_ms: w.time,
            decided_on: w.decided_on,
        })
    }
}

impl MetadataEntry {
    /// After the leader this write was forwarded to lost the lead before answering (see
    /// `transport::unless_leader_moves`): `Ok` to send it again to the next leader, or the
    /// error to fail with. The old leader may have appended it, and its copy may yet be
    /// committed (by a new leader whose log holds it) or not (cut from the logs).
    ///
    /// A conditional write is sent again: of its two copies, at most one is ever committed.
    /// The old one, committed, precedes the new one in every log that holds both, whose leader
    /// then takes the new one as a no-op (a data batch follows `decided_on`: `log_store`), so
    /// the write is refused as decided on a stale image and the catalog decides again on the
    /// caught-up image, which holds the old copy. The new one, committed, leaves no log room
    /// for the old (Raft's log matching: a later term's entries at or past its index). An
    /// unconditional write has no such check: sending it again could commit it twice, so it
    /// fails, saying it may be committed (as a request to Kafka's controller that times out).
    ///
    /// The same holds for a write this node proposed while it led and stopped leading before it
    /// was committed (`Written::Resigned`).
    pub fn resend_after_leader_moved(&self, leader: &QuorumNode) -> Result<(), MetadataLogError> {
        self.resend_unless_unconditional(|| {
            format!(
                "a metadata write forwarded to the leader at {leader} may or may not be \
                 committed: another node leads now and that one did not answer"
            )
        })
    }

    fn resend_unless_unconditional(
        &self,
        why: impl FnOnce() -> String,
    ) -> Result<(), MetadataLogError> {
        match self.decided_on {
            Some(_) => Ok(()),
            None => Err(MetadataLogError::Quorum(why())),
        }
    }
}

/// A committed batch as an observer fetches it (`observer`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WireBatch {
    pub base_offset: i64,
    pub epoch: i32,
    pub entry: MetadataEntry,
}

impl From<MetadataBatch> for WireBatch {
    fn from(b: MetadataBatch) -> WireBatch {
        WireBatch {
            base_offset: b.base_offset,
            epoch: b.epoch,
            entry: MetadataEntry {
                records: b.records,
                append_time_ms: b.append_time_ms,
                decided_on: None,
            },
        }
    }
}

impl From<WireBatch> for MetadataBatch {
    fn from(w: WireBatch) -> MetadataBatch {
        MetadataBatch {
            base_offset: w.base_offset,
            epoch: w.epoch,
            append_time_ms: w.entry.append_time_ms,
            records: w.entry.records,
        }
    }
}

/// A voter's answer to an observer's fetch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObserverFetch {
    /// The committed batches from the offset asked for.
    pub batches: Vec<WireBatch>,
    /// The committed end offset they reach.
    pub end_offset: i64,
    /// The quorum as the voter sees it.
    pub state: QuorumState,
    /// The leader and where it listens, when the voter knows.
    pub leader: Option<(i32, QuorumNode)>,
    /// The offset asked for is below the voter's log start: fetch this snapshot (its end
    /// offset and epoch; `fetch_snapshot`) and go on from its end (Kafka's Fetch answers with
    /// a SnapshotId likewise, and the observer sends FetchSnapshot).
    #[serde(default)]
    pub snapshot_id: Option<(i64, i32)>,
}

/// A piece of a snapshot file, as an observer fetches it (Kafka's FetchSnapshot).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotChunk {
    /// The file's bytes from the position asked for, in base64.
    pub bytes: String,
    /// The file's whole size.
    pub size: u64,
}

/// The most bytes of a snapshot one answer carries (Kafka's FetchSnapshot max bytes, as its
/// raft client asks: KafkaRaftClient.MAX_FETCH_SIZE_BYTES).
const SNAPSHOT_CHUNK_BYTES: usize = MAX_BATCH_BYTES;

/// Where a voter listens (its endpoint on the controller listener).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumNode {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for QuorumNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What a committed entry came to, as the state machine answers its proposer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// Its records are in the log and the image; the offset of the last.
    Appended(i64),
    /// It is a no-op at this offset: a conditional write decided on a stale image became one
    /// (see `log_store`), as do Raft's own entries.
    NoOp(i64),
}

openraft::declare_raft_types!(
    /// The quorum's types: entries of metadata records, answered with their outcome.
    pub TypeConfig:
        D = MetadataEntry,
        R = Outcome,
        NodeId = NodeId,
        Node = QuorumNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// Kafka's controller.quorum.election.timeout.ms (1 s) as the shortest election timeout; a
/// leader's heartbeat well inside it. openraft checks the election timeout on a tick of 1.5
/// heartbeats: a short heartbeat keeps the tick fine against the timeouts' random spread, so
/// that two nodes rarely stand for election on the same tick.
fn raft_config() -> Result<Arc<Config>, MetadataLogError> {
    let config = Config {
        cluster_name: "gregor".into(),
        heartbeat_interval: 100,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        // Snapshots are taken by Kafka's thresholds, and the log purged by Kafka's retention
        // (`snapshots`), not by openraft's entry counts: a voter behind is sent entries while
        // the log holds them, the snapshot below its start.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        // A snapshot goes to a voter in pieces of 1 MiB (each a frame: see `transport`), each
        // given Kafka's controller.quorum.request.timeout.ms (2 s) rather than openraft's 200 ms.
        snapshot_max_chunk_size: 1 << 20,
        install_snapshot_timeout: 2000,
        ..Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| MetadataLogError::Quorum(e.to_string()))
}

/// One node of the metadata quorum.
#[derive(Clone)]
pub struct Quorum {
    pub id: NodeId,
    pub raft: Raft<TypeConfig>,
    pub store: QuorumLogStore,
    pub applied: Arc<Applied>,
    /// A write on a node that does not lead goes to the leader over the controller listener
    /// (`transport::forward`) through this channel; without one (the simulation), it fails
    /// naming the leader.
    pub forward: Option<Arc<ClientChannel>>,
    /// What answers the brokers' requests while this node leads (the broker of this process,
    /// once it is up; see `metadata::controller`).
    pub duties: Arc<OnceLock<Weak<dyn ControllerDuties>>>,
    /// What this node heard from the other replicas while leading (DescribeQuorum): the voters'
    /// acknowledgements (recorded by the network, `transport`) and the observers' fetches.
    pub replicas: Arc<replicas::Replicas>,
}

/// How long an observer's fetch waits at a voter for something new.
pub const OBSERVER_FETCH_WAIT: Duration = Duration::from_millis(500);
/// The records one answer to an observer's fetch holds at most (beyond its first batch): well
/// inside the transport's frame limit.
const OBSERVER_FETCH_MAX_RECORDS: usize = 20_000;
/// Kafka's KafkaRaftClient.MAX_FETCH_SIZE_BYTES (its batch limit): the bytes of batches one
/// answer to an observer's fetch holds at most, beyond its first batch (which Kafka's Fetch
/// also returns whole, whatever its size).
const OBSERVER_FETCH_MAX_BYTES: usize = MAX_BATCH_BYTES;
/// The entries an observer's fetch reads from the log at a time, until its answer is full.
const OBSERVER_FETCH_READ_ENTRIES: usize = 32;
/// Kafka's KafkaRaftClient.MAX_BATCH_SIZE_BYTES: the most bytes one write's batch of metadata
/// records may take (Kafka's BatchAccumulator refuses a larger atomic append with
/// RecordBatchTooLargeException, which its controller fails the operation with). It also keeps
/// any one entry well inside the transport's frame limit, so that a follower can always be sent
/// the next entry (see `transport`).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Kafka's record batch header (DefaultRecordBatch.RECORD_BATCH_OVERHEAD).
const BATCH_HEADER_BYTES: usize = 61;
/// The most a record of a metadata batch takes beside its value: its length, attributes,
/// timestamp and offset deltas, null key, value length and header count (DefaultRecord's
/// varints at their longest).
const RECORD_OVERHEAD_BYTES: usize = 5 + 1 + 10 + 5 + 1 + 5 + 1;

/// The bytes `records` take as one Kafka record batch (uncompressed, as the log holds them), or
/// a little more: what Kafka's batch limit is measured on.
pub fn batch_bytes(records: &[MetadataRecord]) -> usize {
    let values: usize = records.iter().map(|r| r.encode().len()).sum();
    BATCH_HEADER_BYTES + values + records.len() * RECORD_OVERHEAD_BYTES
}

impl Quorum {
    /// Starts the node over its opened log; `network` reaches the other voters.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        store: QuorumLogStore,
        network: N,
    ) -> Result<Quorum, MetadataLogError> {
        let applied = Applied::new();
        if let Some((snapshot, position)) = store.take_loaded() {
            applied.load(&snapshot, position)?;
        }
        let sm = QuorumStateMachine {
            applied: Arc::clone(&applied),
            store: store.clone(),
        };
        let raft = Raft::new(id, raft_config()?, network, store.clone(), sm)
            .await
            .map_err(|e| MetadataLogError::Quorum(e.to_string()))?;
        let q = Quorum {
            id,
            raft,
            store,
            applied,
            forward: None,
            duties: Arc::new(OnceLock::new()),
            replicas: Arc::default(),
        };
        let settings = q.store.settings();
        tokio::spawn(snapshots::generate_and_clean(q.clone(), settings));
        Ok(q)
    }

    /// Forms the quorum of `voters` if this node has never been part of one (every voter is
    /// started with the same list, Kafka's `controller.quorum.voters`; a node that already
    /// holds a log or a vote keeps what it has).
    pub async fn bootstrap(
        &self,
        voters: BTreeMap<NodeId, QuorumNode>,
    ) -> Result<(), MetadataLogError> {
        if self.store.is_used() {
            return Ok(());
        }
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(MetadataLogError::Quorum(e.to_string())),
        }
    }

    /// Appends `records` as one entry and returns the offset of the last once it is committed
    /// and applied here. On a node that does not lead, the write is forwarded to the leader
    /// (with `forward`) and this node waits until it has applied it too. With `decided_on`, the
    /// append is conditional (see `MetadataEntry`): `StaleImage` once this node has applied
    /// what made it stale.
    pub async fn append(
        &self,
        records: Vec<MetadataRecord>,
        decided_on: Option<i64>,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        let entry = MetadataEntry {
            records,
            append_time_ms: now_ms,
            decided_on,
        };
        let written = loop {
            match (self.write(entry.clone()).await, &self.forward) {
                // During an election no node leads: the write waits for one (the caller bounds
                // how long), as a Kafka broker's controller channel does.
                (Err(Written::Elsewhere(None, _)), _) => {}
                (Err(Written::Elsewhere(Some(leader), Some(node))), Some(channel)) => {
                    let forwarded = transport::forward(channel, &node, entry.clone());
                    let moved = self.leader_moved_from(leader);
                    match transport::unless_leader_moves(forwarded, moved, &node).await {
                        Ok(last) => break Ok(last),
                        Err(transport::ForwardError::Stale(end)) => break Err(Written::Stale(end)),
                        // The leader this node knows is gone (the request was never sent):
                        // wait for the quorum to elect another.
                        Err(transport::ForwardError::Unreachable(_)) => {
                            self.leader_moved_from(leader).await?;
                            continue;
                        }
                        // Sent, and the leader lost the lead before it answered (cut off from
                        // the others, it answers nothing until FORWARD_TIMEOUT): sent again to
                        // the next leader, or failed, as the write allows.
                        Err(transport::ForwardError::LeaderMoved(at)) => {
                            entry.resend_after_leader_moved(&at)?;
                            continue;
                        }
                        Err(transport::ForwardError::Failed(e)) => return Err(e),
                    }
                }
                // Proposed while this node led, which stopped leading before it was committed
                // (`check_quorum`, or a higher term): sent again to the next leader, or failed,
                // as for a leader that moved while a forwarded write waited on it.
                (Err(Written::Resigned), _) => entry.resend_unless_unconditional(|| {
                    "a metadata write proposed while this node led the quorum may or may not be \
                     committed: it no longer leads"
                        .into()
                })?,
                (r, _) => break r,
            }
            let mut metrics = self.raft.metrics();
            let elected = metrics
                .wait_for(|m| m.current_leader.is_some())
                .await
                .is_ok();
            if !elected {
                return Err(stopped());
            }
        };
        // Answered once applied here too: the caller reads its write (or, refused, what came
        // before it) back from this node's log.
        let until = match &written {
            Ok(last) => last + 1,
            Err(Written::Stale(end)) => *end,
            Err(_) => 0,
        };
        let mut applied = self.applied.watch_end_offset();
        applied
            .wait_for(|&end| end >= until)
            .await
            .map_err(|_| stopped())?;
        written.map_err(Written::into_error)
    }

    /// Returns once this node no longer takes `leader` for the quorum's leader: it stood for
    /// election, voted in one, or heard from a new leader.
    async fn leader_moved_from(&self, leader: NodeId) -> Result<(), MetadataLogError> {
        let mut metrics = self.raft.metrics();
        let moved = metrics.wait_for(|m| m.current_leader != Some(leader)).await;
        moved.map(|_| ()).map_err(|_| stopped())
    }

    /// `append` on this node only (a write forwarded to it, or the active controller's own
    /// decision: never forwarded); fails where this node does not lead.
    pub async fn append_here(&self, entry: MetadataEntry) -> Result<i64, MetadataLogError> {
        self.write(entry).await.map_err(Written::into_error)
    }

    async fn write(&self, entry: MetadataEntry) -> Result<i64, Written> {
        // Kafka's batch limit, checked wherever the write is (an entry in the log could not be
        // taken back, and one too large for a message would stall any follower behind it).
        let bytes = batch_bytes(&entry.records);
        if bytes > MAX_BATCH_BYTES {
            let records = entry.records.len();
            tracing::error!(
                records,
                bytes,
                "a metadata write over the batch size limit was refused"
            );
            return Err(Written::Failed(format!(
                "a batch of {records} metadata records takes {bytes} bytes, over the \
                 {MAX_BATCH_BYTES}-byte limit of a metadata batch"
            )));
        }
        // Already applied here, a data batch after the image the write was decided on makes it
        // stale whoever leads: refused without a round of the quorum (and without leaving a
        // no-op in the log). The leader's log checks the rest (`log_store`).
        let image = self.applied.image();
        if entry
            .decided_on
            .is_some_and(|d| d < image.provenance.last_offset)
        {
            return Err(Written::Stale(self.applied.end_offset()));
        }
        // Proposed only where this node leads (as far as it knows), so that a refusal from
        // openraft after that means it stopped leading, perhaps with the entry in its log.
        let term = {
            let m = self.raft.metrics();
            let m = m.borrow();
            match m.current_leader {
                Some(leader) if leader == self.id => m.current_term,
                leader => {
                    let node = leader.and_then(|l| m.membership_config.membership().get_node(&l));
                    return Err(Written::Elsewhere(leader, node.cloned()));
                }
            }
        };
        // A leader that stops leading (`check_quorum`: cut off from the others) answers for what
        // it proposed at once, not once the write is truncated or committed by a later leader
        // (openraft keeps its caller waiting until then: up to APPEND_TIMEOUT).
        let proposed = self.raft.client_write(entry);
        let resigned = self.stops_leading(term);
        tokio::select! {
            // An answer that is there is taken first: it says what became of the write.
            biased;
            written = proposed => match written {
                Ok(r) => match r.data {
                    Outcome::Appended(last) => Ok(last),
                    Outcome::NoOp(at) => Err(Written::Stale(at + 1)),
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    Err(Written::Resigned)
                }
                Err(e) => Err(Written::Failed(e.to_string())),
            },
            () = resigned => Err(Written::Resigned),
        }
    }

    /// Returns once this node no longer leads at `term` (or stopped).
    async fn stops_leading(&self, term: u64) {
        let mut metrics = self.raft.metrics();
        let leads = |m: &openraft::RaftMetrics<NodeId, QuorumNode>| {
            m.current_leader == Some(self.id) && m.current_term == term
        };
        let _ = metrics.wait_for(|m| !leads(m)).await;
    }

    /// A broker's request, sent to the leader (the active controller): answered here when this
    /// node leads, forwarded over the controller listener when another does.
    pub async fn send_to_controller(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, MetadataLogError> {
        let m = self.raft.metrics().borrow().clone();
        let Some(leader) = m.current_leader else {
            return Err(MetadataLogError::Quorum(
                "the metadata quorum has no leader".into(),
            ));
        };
        if leader == self.id {
            return Ok(self.answer_controller_request(request).await);
        }
        let node = m
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .ok_or_else(|| MetadataLogError::Quorum(format!("no address for leader {leader}")))?;
        let Some(channel) = &self.forward else {
            return Err(MetadataLogError::Quorum(format!(
                "controller {leader} is in another process and this node does not connect to it"
            )));
        };
        transport::to_controller(channel, &node, request, timeout).await
    }

    /// A broker's request that reached this node: answered by the controller's duties when this
    /// node leads, NOT_CONTROLLER otherwise (the broker asks the leader it learns of next time).
    pub async fn answer_controller_request(
        &self,
        request: ControllerRequest,
    ) -> ControllerResponse {
        use crate::protocol::errors;
        let leads = self.raft.metrics().borrow().current_leader == Some(self.id);
        let duties = self.duties.get().and_then(Weak::upgrade);
        let (true, Some(duties)) = (leads, duties) else {
            return ControllerResponse::Error(errors::NOT_CONTROLLER);
        };
        // The duties commit to the quorum and wait for it: off this runtime's worker.
        crate::server::background::spawn_blocking(move || duties.handle(request))
            .await
            .unwrap_or(ControllerResponse::Error(errors::UNKNOWN_SERVER_ERROR))
    }

    /// The committed batches from the one holding `from_offset` on.
    pub fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError> {
        Ok(self.read_committed(from_offset)?.0)
    }

    /// `read`, with the committed end offset it reads up to.
    fn read_committed(
        &self,
        from_offset: i64,
    ) -> Result<(Vec<MetadataBatch>, i64), MetadataLogError> {
        let until = self.applied.end_offset();
        let batches = self.store.read_batches(from_offset, until)?;
        Ok((batches.into_iter().filter_map(|b| b.data).collect(), until))
    }

    /// An observer's fetch (Kafka's observers Fetch the metadata partition): the committed
    /// batches from `from_offset` on (as many as OBSERVER_FETCH_MAX_RECORDS and
    /// OBSERVER_FETCH_MAX_BYTES allow, and at least one), waiting up to `max_wait` for one when
    /// there is none, with the end offset they reach, this node's view of the quorum (its
    /// committed end offset the high watermark), and where its leader listens.
    pub async fn fetch_for_observer(
        &self,
        observer: i32,
        from_offset: i64,
        max_wait: Duration,
    ) -> Result<ObserverFetch, MetadataLogError> {
        // Below the log start: the newest snapshot is fetched first.
        if from_offset < self.store.start_offset() {
            let files = self.store.snapshot_files();
            let newest = files.ids()?.last().copied();
            if let Some(id) = newest {
                let m = self.raft.metrics().borrow().clone();
                return Ok(ObserverFetch {
                    batches: Vec::new(),
                    end_offset: from_offset,
                    state: self.quorum_state(),
                    leader: self.leader_of(&m),
                    snapshot_id: Some((id.end_offset, id.epoch)),
                });
            }
        }
        // Where the committed log ended as the fetch arrived: caught up if it fetches from there.
        let (arrived, end_on_arrival) = (std::time::Instant::now(), self.applied.end_offset());
        let mut end = self.applied.watch_end_offset();
        let _ = tokio::time::timeout(max_wait, end.wait_for(|&e| e > from_offset)).await;
        let until = self.applied.end_offset();
        let mut end_offset = until;
        let mut batches: Vec<MetadataBatch> = Vec::new();
        // A bounded answer (the frame limit), by records and by bytes as Kafka bounds a
        // metadata Fetch: the observer fetches the rest next. Read a few entries at a time, so
        // that a fetch far behind reads about what it answers, not the whole log after it.
        let (mut records, mut bytes) = (0, 0);
        let mut at = from_offset;
        'read: while at < until {
            let window = (self.store)
                .end_of_entries_from(at, OBSERVER_FETCH_READ_ENTRIES)
                .min(until);
            let read = self.store.read_batches(at, window)?;
            for batch in read.into_iter().filter_map(|b| b.data) {
                records += batch.records.len();
                bytes += batch_bytes(&batch.records);
                let full = records > OBSERVER_FETCH_MAX_RECORDS || bytes > OBSERVER_FETCH_MAX_BYTES;
                if let Some(last) = batches.last().filter(|_| full) {
                    end_offset = last.last_offset() + 1;
                    break 'read;
                }
                batches.push(batch);
            }
            at = window;
        }
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader == Some(self.id) {
            (self.replicas).observer_fetched(observer, from_offset, end_on_arrival, arrived);
        }
        Ok(ObserverFetch {
            batches: batches.into_iter().map(WireBatch::from).collect(),
            end_offset,
            state: self.quorum_state(),
            leader: self.leader_of(&m),
            snapshot_id: None,
        })
    }

    /// The leader as `m` knows it, with where it listens.
    fn leader_of(
        &self,
        m: &openraft::RaftMetrics<NodeId, QuorumNode>,
    ) -> Option<(i32, QuorumNode)> {
        let l = m.current_leader?;
        let node = m.membership_config.membership().get_node(&l)?;
        Some((l as i32, node.clone()))
    }

    /// A piece of snapshot `id` from `position` (an observer's FetchSnapshot); an error where
    /// the snapshot is gone (retention: the observer fetches again and is told a newer one).
    pub fn fetch_snapshot(
        &self,
        id: (i64, i32),
        position: u64,
    ) -> Result<SnapshotChunk, MetadataLogError> {
        use base64::Engine;
        use std::io::{Read, Seek};
        let id = crate::metadata::metadata_log::SnapshotId {
            end_offset: id.0,
            epoch: id.1,
        };
        let mut file = std::fs::File::open(self.store.snapshot_files().path(id))?;
        let size = file.metadata()?.len();
        file.seek(std::io::SeekFrom::Start(position))?;
        let mut bytes = Vec::new();
        file.take(SNAPSHOT_CHUNK_BYTES as u64)
            .read_to_end(&mut bytes)?;
        let bytes = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(SnapshotChunk { bytes, size })
    }

    /// The quorum as this node sees it (see `MetadataLog::quorum_state`): on the leader, every
    /// replica's end offset and times (itself fetched and caught up now, as Kafka's leader
    /// describes itself); elsewhere its own end offset only.
    pub fn quorum_state(&self) -> QuorumState {
        let m = self.raft.metrics().borrow().clone();
        let store = &self.store;
        // A voter no entry is known to match yet: -1, as Kafka's leader has no end offset for it.
        let end_of = |log_id: &Option<openraft::LogId<NodeId>>| {
            log_id.map_or(-1, |l| store.end_offset_after(l.index))
        };
        let now = std::time::Instant::now();
        let voters = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| match &m.replication {
                Some(_) if id == self.id => ReplicaState {
                    last_fetch_ms_ago: Some(0),
                    last_caught_up_ms_ago: Some(0),
                    ..ReplicaState::at(id as i32, store.end_offset())
                },
                Some(progress) => {
                    let end = progress.get(&id).map_or(-1, end_of);
                    self.replicas.voter(id, m.current_term, end, now)
                }
                None if id == self.id => ReplicaState::at(id as i32, store.end_offset()),
                None => ReplicaState::at(id as i32, -1),
            })
            .collect();
        let observers = match m.current_leader == Some(self.id) {
            true => self.replicas.observers(now),
            false => vec![],
        };
        QuorumState {
            leader_id: m.current_leader.map_or(-1, |l| l as i32),
            leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
            high_watermark: self.applied.end_offset(),
            voters,
            observers,
        }
    }

    /// The quorum as this node describes it to others: its view while it leads, else a refusal
    /// naming where the leader it knows listens (KafkaRaftClient answers DescribeQuorum only on
    /// the leader, NOT_LEADER_OR_FOLLOWER elsewhere).
    pub fn describe_here(&self) -> Result<QuorumState, Option<QuorumNode>> {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(leader) if leader == self.id => Ok(self.quorum_state()),
            leader => {
                Err(leader.and_then(|l| m.membership_config.membership().get_node(&l).cloned()))
            }
        }
    }

    /// The quorum as its leader sees it: this node's view while it leads, else the leader's,
    /// asked over the controller listener (see `transport::describe_quorum`) within `timeout`.
    pub async fn describe_quorum(
        &self,
        timeout: Duration,
    ) -> Result<QuorumState, MetadataLogError> {
        let leader = match self.describe_here() {
            Ok(state) => return Ok(state),
            Err(leader) => leader,
        };
        let Some(channel) = &self.forward else {
            return Err(MetadataLogError::Quorum(
                "the leader is in another process and this node does not connect to it".into(),
            ));
        };
        let m = self.raft.metrics().borrow().clone();
        let voters: Vec<QuorumNode> = (m.membership_config.membership().nodes())
            .map(|(_, node)| node.clone())
            .collect();
        transport::describe_quorum(channel, leader, &voters, timeout).await
    }

    /// The image of the committed log.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.image()
    }
}

fn stopped() -> MetadataLogError {
    MetadataLogError::Quorum("the metadata quorum stopped".into())
}

/// Why a write was not committed here.
enum Written {
    /// Another node leads (which, and where it listens, if known): nothing was proposed here.
    Elsewhere(Option<NodeId>, Option<QuorumNode>),
    /// Proposed while this node led, which stopped leading before it was committed: it may or
    /// may not be committed (by a later leader whose log holds it).
    Resigned,
    /// Decided on a stale image; the log end offset that covers what made it so.
    Stale(i64),
    Failed(String),
}

impl Written {
    fn into_error(self) -> MetadataLogError {
        match self {
            Written::Elsewhere(_, Some(node)) => MetadataLogError::NotController(format!(
                "this node does not lead the metadata quorum; the leader is at {node}"
            )),
            Written::Elsewhere(_, None) => {
                MetadataLogError::NotController("the metadata quorum has no leader".into())
            }
            Written::Resigned => MetadataLogError::NotController(
                "this node stopped leading the metadata quorum before the write was committed \
                 (it may or may not be committed)"
                    .into(),
            ),
            Written::Stale(end) => MetadataLogError::StaleImage(end),
            Written::Failed(why) => MetadataLogError::Quorum(why),
        }
    }
}

/// How long an append waits for the quorum to commit it before giving up (Kafka's
/// request.timeout.ms), so that a caller never hangs on a quorum without a leader.
pub(super) const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broker's request waits for the controller's answer: what it changes is committed
/// first, within an election timeout or two.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(5);

/// `MetadataLog` over a quorum node, for the broker's synchronous callers: the node runs on a
/// runtime of its own, and a call waits on it without blocking that runtime.
pub struct RaftMetadataLog {
    quorum: Quorum,
    runtime: QuorumRuntime,
    /// Stops serving the controller listener (`transport::serve`) when closed (dropped, the
    /// runtime it runs on stops).
    serving: tokio_util::sync::CancellationToken,
}

/// The quorum node's runtime, shut down in the background when dropped: the last reference to
/// the broker (and so to this log) may go inside an async task (a process's tasks ending as it
/// stops), where a runtime may not block to drop.
pub(super) struct QuorumRuntime(pub(super) Option<tokio::runtime::Runtime>);

impl std::ops::Deref for QuorumRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        match &self.0 {
            Some(rt) => rt,
            None => unreachable!("the runtime is taken only when dropped"),
        }
    }
}

impl Drop for QuorumRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What a voter of a quorum between processes starts from (`RaftMetadataLog::start_tcp`).
pub struct TcpVoter {
    pub id: NodeId,
    pub store: QuorumLogStore,
    /// The controller listener, where the other voters' RPCs arrive.
    pub listener: std::net::TcpListener,
    pub voters: BTreeMap<NodeId, QuorumNode>,
    pub security: transport::Security,
    /// controller.quorum.fetch.timeout.ms: a leader resigns after 1.5 of them without a majority.
    pub fetch_timeout: Duration,
}

impl RaftMetadataLog {
    /// Runs `start` (which starts the node) on a runtime of its own.
    pub fn new<F>(start: F) -> Result<RaftMetadataLog, MetadataLogError>
    where
        F: std::future::Future<Output = Result<Quorum, MetadataLogError>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("metadata-quorum")
            .enable_all()
            .build()?;
        let quorum = wait_on(&runtime, start)??;
        Ok(RaftMetadataLog {
            quorum,
            runtime: QuorumRuntime(Some(runtime)),
            serving: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// A voter of a quorum between processes: its RPCs served on `listener` (the controller
    /// listener), the other voters reached over TCP, writes forwarded to the leader. Returns
    /// once a leader is known and this node has applied what its log holds, so that the image
    /// it starts from is the quorum's (as a Kafka broker waits to catch up before serving).
    /// While it leads, it resigns after 1.5 `fetch_timeout`s without hearing from a majority
    /// (`check_quorum`).
    pub fn start_tcp(voter: TcpVoter) -> Result<RaftMetadataLog, MetadataLogError> {
        let log = RaftMetadataLog::open_tcp(voter)?;
        log.wait_ready()?;
        Ok(log)
    }

    /// `start_tcp` up to the quorum formed, not waiting for a leader.
    fn open_tcp(voter: TcpVoter) -> Result<RaftMetadataLog, MetadataLogError> {
        let TcpVoter {
            id,
            store,
            listener,
            voters,
            security,
            fetch_timeout,
        } = voter;
        listener.set_nonblocking(true)?;
        let serving = tokio_util::sync::CancellationToken::new();
        let cancel = serving.clone();
        let mut log = RaftMetadataLog::new(async move {
            let tracked = transport::Tracked {
                store: store.clone(),
                replicas: Arc::default(),
            };
            let network = transport::TcpNetwork {
                channel: Arc::clone(&security.channel),
                tracked: tracked.clone(),
            };
            let mut q = Quorum::start(id, store, network).await?;
            q.forward = Some(Arc::clone(&security.channel));
            q.replicas = tracked.replicas;
            let timeout = check_quorum::check_quorum_timeout(fetch_timeout);
            tokio::spawn(check_quorum::resign_when_cut_off(q.clone(), timeout));
            let listener = tokio::net::TcpListener::from_std(listener)?;
            crate::server::background::spawn(transport::serve(
                listener,
                q.clone(),
                security,
                cancel,
            ));
            q.bootstrap(voters).await?;
            Ok(q)
        })?;
        log.serving = serving;
        Ok(log)
    }

    /// Returns once a leader is known and this node has applied what its log holds.
    fn wait_ready(&self) -> Result<(), MetadataLogError> {
        let raft = self.quorum.raft.clone();
        let ready = async move {
            raft.wait(None)
                .metrics(
                    |m| {
                        m.current_leader.is_some()
                            && m.last_applied.map(|l| l.index) >= m.last_log_index
                    },
                    "a leader, and this node's log applied",
                )
                .await
                .map(|_| ())
                .map_err(|e| MetadataLogError::Quorum(e.to_string()))
        };
        wait_on(&self.runtime, ready)?
    }

    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// An append through `Quorum::append` (forwarded where another node leads) or, for the
    /// controller's own decisions, `Quorum::append_here`; bounded by `APPEND_TIMEOUT`.
    fn write(
        &self,
        records: &[MetadataRecord],
        decided_on: Option<i64>,
        writer: Writer,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        if records.is_empty() {
            return Ok(self.quorum.applied.end_offset() - 1);
        }
        let quorum = self.quorum.clone();
        let records = records.to_vec();
        let append = async move {
            let appended = async {
                match writer {
                    Writer::Any => quorum.append(records, decided_on, now_ms).await,
                    Writer::Controller => {
                        let entry = MetadataEntry {
                            records,
                            append_time_ms: now_ms,
                            decided_on,
                        };
                        quorum.append_here(entry).await
                    }
                }
            };
            committed_in_time(appended).await
        };
        wait_on(&self.runtime, append)?
    }
}

/// `append`, given up after APPEND_TIMEOUT (a voter's or an observer's write, and one another
/// node sent this voter: see `transport`).
pub(super) async fn committed_in_time(
    append: impl std::future::Future<Output = Result<i64, MetadataLogError>>,
) -> Result<i64, MetadataLogError> {
    tokio::time::timeout(APPEND_TIMEOUT, append)
        .await
        .unwrap_or_else(|_| Err(not_committed_in_time()))
}

pub(super) fn not_committed_in_time() -> MetadataLogError {
    MetadataLogError::Quorum("the metadata quorum did not commit the append in time".into())
}

/// Runs `f` on `runtime` and waits for it from a thread that may itself be a runtime's.
pub(super) fn wait_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, MetadataLogError> {
    let (tx, rx) = std::sync::mpsc::channel();
    crate::server::background::spawn_on(runtime.handle(), async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| stopped())
}

impl MetadataLog for RaftMetadataLog {
    fn append(&self, records: &[MetadataRecord], now_ms: i64) -> Result<i64, MetadataLogError> {
        self.write(records, None, Writer::Any, now_ms)
    }

    fn append_decided(
        &self,
        records: &[MetadataRecord],
        decided_on: i64,
        writer: Writer,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        self.write(records, Some(decided_on), writer, now_ms)
    }

    fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError> {
        self.quorum.read(from_offset)
    }

    fn latest_snapshot(&self) -> Result<Option<MetadataSnapshot>, MetadataLogError> {
        let files = self.quorum.store.snapshot_files();
        Ok(snapshots::latest(&files)?.map(|(s, _)| s))
    }

    fn log_start_offset(&self) -> i64 {
        self.quorum.store.start_offset()
    }

    fn committed(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        Some(self.quorum.applied.watch_end_offset())
    }

    fn quorum_state(&self) -> Option<QuorumState> {
        Some(self.quorum.quorum_state())
    }

    fn describe_quorum(&self) -> Result<Option<QuorumState>, MetadataLogError> {
        let quorum = self.quorum.clone();
        let describe = async move { quorum.describe_quorum(CONTROLLER_TIMEOUT).await };
        wait_on(&self.runtime, describe)?.map(Some)
    }

    fn send_to_controller(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, MetadataLogError> {
        let quorum = self.quorum.clone();
        let asked = std::time::Instant::now();
        let send = async move {
            // How long the request waited for this runtime to run it, and for the answer.
            let started = std::time::Instant::now();
            let answer = quorum.send_to_controller(request, CONTROLLER_TIMEOUT).await;
            tracing::debug!(
                queued_ms = started.duration_since(asked).as_millis() as u64,
                answered_ms = started.elapsed().as_millis() as u64,
                "a request to the controller"
            );
            answer
        };
        wait_on(&self.runtime, send)?
    }

    fn serve_controller(&self, duties: Weak<dyn ControllerDuties>) {
        let _ = self.quorum.duties.set(duties);
    }

    fn close(&self, now_ms: i64) -> Result<(), MetadataLogError> {
        let raft = self.quorum.raft.clone();
        wait_on(&self.runtime, async move { raft.shutdown().await })?
            .map_err(|e| MetadataLogError::Quorum(e.to_string()))?;
        // A stopped node answers no more: its listener and connections close (they used to
        // stay until the log was dropped, each request answered by the stopped Raft node).
        self.serving.cancel();
        self.quorum.store.close(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::FileStorage;
    use crate::metadata::alter_partition::AlterPartitionRequest;
    use crate::metadata::broker_heartbeat::BrokerHeartbeat;
    use crate::metadata::metadata_log::load_image;
    use crate::metadata::records::tests::samples;
    use crate::metadata::Catalog;
    use openraft::error::{RPCError, Unreachable};
    use openraft::network::RPCOption;
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
        VoteResponse,
    };
    use openraft::RaftNetwork;
    use std::collections::BTreeSet;
    use transport::Security;

    /// A controller whose answer tells which request it had.
    struct EchoController;

    impl ControllerDuties for EchoController {
        fn handle(&self, request: ControllerRequest) -> ControllerResponse {
            match request {
                ControllerRequest::BrokerHeartbeat(hb) => {
                    ControllerResponse::Error(hb.broker_id as i16)
                }
                ControllerRequest::AlterPartition(r) => {
                    ControllerResponse::Error(-r.partition as i16)
                }
            }
        }
    }

    /// A network where no voter takes an entry: a single voter's (there is no one to reach),
    /// or, with `votes`, one whose other voters all vote for this node, which leads and
    /// commits nothing (cut off from them).
    #[derive(Clone, Copy)]
    pub(super) struct Alone {
        pub(super) votes: bool,
    }

    fn alone<E: std::error::Error>() -> RPCError<NodeId, QuorumNode, E> {
        RPCError::Unreachable(Unreachable::new(&std::io::Error::other("a single voter")))
    }

    impl RaftNetworkFactory<TypeConfig> for Alone {
        type Network = Alone;
        async fn new_client(&mut self, _target: NodeId, _node: &QuorumNode) -> Alone {
            *self
        }
    }

    impl RaftNetwork<TypeConfig> for Alone {
        async fn append_entries(
            &mut self,
            _rpc: AppendEntriesRequest<TypeConfig>,
            _option: RPCOption,
        ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
        {
            Err(alone())
        }

        async fn install_snapshot(
            &mut self,
            _rpc: InstallSnapshotRequest<TypeConfig>,
            _option: RPCOption,
        ) -> transport::SnapshotRpc {
            Err(alone())
        }

        async fn vote(
            &mut self,
            rpc: VoteRequest<NodeId>,
            _option: RPCOption,
        ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
            match self.votes {
                true => Ok(VoteResponse::new(rpc.vote, None, true)),
                false => Err(alone()),
            }
        }
    }

    pub(super) fn start(dir: &std::path::Path) -> RaftMetadataLog {
        let store = QuorumLogStore::open(Arc::new(FileStorage), dir, false, 0).unwrap();
        RaftMetadataLog::new(async move {
            let q = Quorum::start(1, store, Alone { votes: false }).await?;
            let node = QuorumNode {
                host: "127.0.0.1".into(),
                port: 9093,
            };
            q.bootstrap(BTreeMap::from([(1, node)])).await?;
            Ok(q)
        })
        .unwrap()
    }

    /// The `MetadataLog` contract over a one-voter quorum, called from plain threads: an append
    /// returns its last offset once committed, a read gives the committed batches (Raft's own
    /// control batches left out), and a restart replays the log to the same image.
    #[test]
    fn a_single_voter_quorum_is_a_metadata_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = start(dir.path());
        let s = samples();
        let first = log.append(&s[..1], 10).unwrap();
        let second = log.append(&s[2..5], 20).unwrap();
        // Offsets 0 and 1 are the VotersRecord and the leader's LeaderChangeMessage.
        assert_eq!((first, second), (2, 5));
        let read = log.read(0).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].base_offset, 3);
        assert_eq!(read[1].records, s[2..5].to_vec());
        assert_eq!(read[1].append_time_ms, 20);
        assert!(read[1].epoch >= 1, "the batch carries the term");
        assert_eq!(log.read(4).unwrap().len(), 1);
        let image = load_image(&log).unwrap();
        assert_eq!(image, *log.quorum().image());
        log.close(0).unwrap();
        drop(log);

        let log = start(dir.path());
        // The restarted voter leads again and replays the committed log.
        let third = log.append(&s[5..6], 30).unwrap();
        assert!(third > second);
        let read = log.read(0).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(
            read[..2]
                .iter()
                .map(|b| b.records.clone())
                .collect::<Vec<_>>(),
            vec![s[..1].to_vec(), s[2..5].to_vec()]
        );
        let json =
            std::fs::read_to_string(dir.path().join("__cluster_metadata-0/quorum-state")).unwrap();
        assert!(json.contains("\"leaderId\":1"), "{json}");
        log.close(0).unwrap();
    }

    /// A config record whose value takes `bytes` bytes.
    fn big_config(bytes: usize) -> MetadataRecord {
        MetadataRecord::Config(crate::metadata::records::ConfigRecord {
            resource_type: 2,
            resource_name: "t".into(),
            name: "big".into(),
            value: Some("x".repeat(bytes)),
        })
    }

    /// `batch_bytes` is never less than the batch the log writes (Kafka's limit is on that).
    #[test]
    fn batch_bytes_covers_the_batch_written() {
        let mut records = samples();
        records.push(big_config(300_000));
        for n in [1, 2, records.len()] {
            let batch = crate::metadata::metadata_log::encode_batch(
                records[..n].iter().map(MetadataRecord::encode),
                0,
                1,
                1_700_000_000_000,
            )
            .unwrap();
            let bound = batch_bytes(&records[..n]);
            assert!(bound >= batch.len(), "{n}: {bound} < {}", batch.len());
            assert!(
                bound <= batch.len() + 30 * n,
                "{n}: {bound} far above {}",
                batch.len()
            );
        }
    }

    /// A write over Kafka's batch limit (KafkaRaftClient.MAX_BATCH_SIZE_BYTES) is refused before
    /// it enters the log, so that no entry is too large to send a follower; one at the limit is
    /// taken.
    #[test]
    fn a_write_over_the_batch_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = start(dir.path());
        // Once a write is committed, the leader's own first entries are too: the end offset
        // moves only with writes after this.
        log.append(&samples()[..1], 0).unwrap();
        let end = log.quorum().applied.end_offset();
        let over = vec![
            big_config(MAX_BATCH_BYTES / 2),
            big_config(MAX_BATCH_BYTES / 2),
        ];
        let refused = log.append(&over, 1);
        assert!(
            matches!(&refused, Err(MetadataLogError::Quorum(why)) if why.contains("limit")),
            "{refused:?}"
        );
        assert_eq!(log.quorum().applied.end_offset(), end, "nothing written");
        let at_limit = vec![big_config(MAX_BATCH_BYTES - 200)];
        assert!(batch_bytes(&at_limit) <= MAX_BATCH_BYTES);
        let taken = log.append(&at_limit, 2).unwrap();
        assert_eq!(log.read(taken).unwrap()[0].records, at_limit);
        log.close(0).unwrap();
    }

    /// An observer's fetch is bounded by bytes as Kafka's metadata Fetch is (8 MiB), not only
    /// by records: batches of few large records come over several fetches, each answer ending
    /// on a whole batch, the first batch whatever its size.
    #[test]
    fn an_observers_fetch_is_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = start(dir.path());
        let written: Vec<i64> = (0..4)
            .map(|i| log.append(&[big_config(3 << 20)], i).unwrap())
            .collect();
        let fetch = |from| {
            let q = log.quorum().clone();
            let fetched = async move { q.fetch_for_observer(9, from, Duration::ZERO).await };
            wait_on(&log.runtime, fetched).unwrap().unwrap()
        };
        let mut from = 0;
        let mut answers = Vec::new();
        while from <= written[3] {
            let f = fetch(from);
            let bytes: usize = (f.batches.iter())
                .map(|b| batch_bytes(&b.entry.records))
                .sum();
            assert!(!f.batches.is_empty() && f.end_offset > from);
            assert!(
                f.batches.len() == 1 || bytes <= OBSERVER_FETCH_MAX_BYTES,
                "{bytes} bytes"
            );
            answers.push(f.batches.iter().map(|b| b.base_offset).collect::<Vec<_>>());
            from = f.end_offset;
        }
        let bases: Vec<i64> = answers.concat();
        assert_eq!(bases, written, "every batch once, in order");
        assert_eq!(answers.len(), 2, "{answers:?}");
        // Many small batches, read a window of entries at a time: one answer holds them all,
        // as the log does, from any offset.
        let small: Vec<i64> = (0..OBSERVER_FETCH_READ_ENTRIES as i64 * 2 + 5)
            .map(|i| log.append(&samples()[..1], i).unwrap())
            .collect();
        let store = &log.quorum().store;
        assert_eq!(store.end_of_entries_from(small[0], 2), small[1] + 1);
        assert_eq!(
            store.end_of_entries_from(small[3], 1000),
            store.end_offset()
        );
        for from in [small[0], written[3], small[40]] {
            let f = fetch(from);
            let read: Vec<WireBatch> = log
                .read(from)
                .unwrap()
                .into_iter()
                .map(Into::into)
                .collect();
            assert_eq!(f.batches, read, "from {from}");
            assert_eq!(f.end_offset, log.quorum().applied.end_offset());
        }
        log.close(0).unwrap();
    }

    /// Three voters over TCP on loopback: they elect a leader, a write on a node that does not
    /// lead is forwarded to the leader and applied everywhere, and after the leader stops the
    /// other two elect another and take writes. A controller's decision is committed only on
    /// the leader.
    /// Three voters over TCP on loopback, each in `root/node-<id>`, once they have a leader.
    fn three_voters(root: &std::path::Path) -> Vec<RaftMetadataLog> {
        three_voters_with(root, crate::config::MetadataLogSettings::default())
    }

    /// `three_voters` with these metadata log settings.
    fn three_voters_with(
        root: &std::path::Path,
        settings: crate::config::MetadataLogSettings,
    ) -> Vec<RaftMetadataLog> {
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let voters: BTreeMap<NodeId, QuorumNode> = listeners
            .iter()
            .zip(1..)
            .map(|(l, id)| {
                let port = l.local_addr().unwrap().port();
                let host = "127.0.0.1".to_string();
                (id, QuorumNode { host, port })
            })
            .collect();
        // Started together, as three processes are: each waits for a leader.
        let starts: Vec<_> = listeners
            .into_iter()
            .zip(1..)
            .map(|(l, id)| {
                let dir = root.join(format!("node-{id}"));
                let voters = voters.clone();
                let settings = settings.clone();
                std::thread::spawn(move || {
                    let storage = Arc::new(FileStorage);
                    let store = QuorumLogStore::open_with(storage, &dir, settings, true, 0)?;
                    let fetch_timeout = check_quorum::DEFAULT_FETCH_TIMEOUT;
                    let security = Security::plaintext();
                    RaftMetadataLog::start_tcp(TcpVoter {
                        id,
                        store,
                        listener: l,
                        voters,
                        security,
                        fetch_timeout,
                    })
                })
            })
            .collect();
        starts
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    }

    /// Settings that snapshot after every write and keep only the newest snapshot and the log
    /// after it, in small segments.
    fn snapshot_often() -> crate::config::MetadataLogSettings {
        crate::config::MetadataLogSettings {
            max_bytes_between_snapshots: 1,
            max_snapshot_interval_ms: 0,
            retention_bytes: 0,
            retention_ms: -1,
            segment_bytes: 1024,
        }
    }

    /// Waits until every voter's log starts past `offset` (their snapshots cut it there).
    fn wait_log_start_past(logs: &[&RaftMetadataLog], offset: i64) {
        for l in logs {
            let store = &l.quorum().store;
            let deadline = std::time::Instant::now() + TEST_WAIT;
            while store.start_offset() <= offset {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the log of node {} still starts at or before {offset}",
                    l.quorum().id
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// A voter cut off while the other two snapshot and cut their logs past its end is sent
    /// the leader's snapshot over the controller listener (install_snapshot, its checkpoint
    /// file in pieces) once it is reachable again, and goes on from its end to the leader's
    /// image.
    #[test]
    fn a_voter_behind_the_log_start_is_sent_the_snapshot_over_tcp() {
        let root = tempfile::tempdir().unwrap();
        let ProxiedQuorum {
            proxies,
            leader,
            follower,
            other,
            ..
        } = proxied_quorum_with(root.path(), 4, snapshot_often());
        let f = follower.quorum().id;
        proxies.set(pairs_of(f, 1..=3));
        let behind = follower.quorum().store.end_offset();
        let mut last = 0;
        for n in 0..30u128 {
            let topic = MetadataRecord::Topic {
                name: format!("t{n}"),
                topic_id: uuid::Uuid::from_u128(n + 1),
            };
            last = leader.append(&[topic], n as i64).unwrap();
        }
        wait_log_start_past(&[&leader, &other], behind);
        proxies.set([]);
        wait_applied(&follower, last + 1);
        let start = follower.quorum().store.start_offset();
        assert!(
            start > behind,
            "its log starts at the snapshot's end: {start}"
        );
        assert_eq!(*follower.quorum().image(), *leader.quorum().image());
        for l in [leader, follower, other] {
            l.close(0).unwrap();
        }
    }

    /// KRaft's observers behind the log start: voters that snapshot after every write and
    /// keep only the log after their newest snapshot; an observer started after them (fetching
    /// from offset 0, below every voter's log start) is told the newest snapshot, fetches it
    /// (FetchSnapshot), and goes on from its end: its catalog's image is the voters', and it
    /// follows what is committed next.
    #[test]
    fn an_observer_behind_the_log_start_fetches_the_snapshot() {
        let root = tempfile::tempdir().unwrap();
        let logs = three_voters_with(root.path(), snapshot_often());
        let topic = |n: u128| MetadataRecord::Topic {
            name: format!("t{n}"),
            topic_id: uuid::Uuid::from_u128(n + 1),
        };
        let mut last = 0;
        for n in 0..30 {
            last = logs[0].append(&[topic(n)], n as i64).unwrap();
        }
        for l in &logs {
            wait_applied(l, last + 1);
        }
        wait_log_start_past(&logs.iter().collect::<Vec<_>>(), 0);
        let m = logs[0].quorum().raft.metrics().borrow().clone();
        let voters: BTreeMap<NodeId, QuorumNode> = (m.membership_config.membership().nodes())
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        let channel = Arc::clone(&Security::plaintext().channel);
        let observer = observer::ObserverMetadataLog::start(4, voters, channel).unwrap();
        assert!(observer.log_start_offset() > 0, "it took a snapshot");
        assert!(observer.latest_snapshot().unwrap().is_some());
        let observed = catalog_over(Box::new(observer), root.path(), 4);
        let voter_image = logs[0].quorum().image();
        let image = observed.image();
        assert!(image.provenance.last_offset >= last);
        for n in 0..30 {
            let name = format!("t{n}");
            assert!(image.topics.get_by_name(&name).is_some(), "{name}");
        }
        assert_eq!(image.topics, voter_image.topics);
        // It follows what comes next from the log.
        let next = logs[1].append(&[topic(30)], 30).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut committed = observed.committed().unwrap();
        rt.block_on(committed.wait_for(|&e| e > next)).unwrap();
        observed.catch_up().unwrap();
        assert!(observed.image().topics.get_by_name("t30").is_some());
        observed.close_metadata_log(0).unwrap();
        for l in logs {
            l.close(0).unwrap();
        }
    }

    #[test]
    fn three_voters_over_tcp_forward_writes_and_fail_over() {
        let root = tempfile::tempdir().unwrap();
        let mut logs = three_voters(root.path());
        let leader_of = |l: &RaftMetadataLog| l.quorum().raft.metrics().borrow().current_leader;
        let leader = leader_of(&logs[0]).unwrap();
        let s = samples();
        let follower = logs.iter().find(|l| l.quorum().id != leader).unwrap();
        let last = follower.append(&s[..1], 5).unwrap();
        assert!(follower.quorum().applied.end_offset() > last);
        for l in &logs {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let mut end = l.quorum().applied.watch_end_offset();
            rt.block_on(end.wait_for(|&e| e > last)).unwrap();
            assert_eq!(l.read(0).unwrap().last().unwrap().records, s[..1].to_vec());
        }
        // A controller's decision is never forwarded: a node that no longer leads (cut off, it
        // decided on what it had) fails instead of overriding what the new leader decided
        // (issue 15: a deposed controller's fencing reached the new leader and elected a
        // replica outside the ISR). The leader commits its own.
        let refused = follower.append_decided(&s[1..2], last, Writer::Controller, 5);
        assert!(refused.is_err(), "{refused:?}");
        let leading = logs.iter().find(|l| l.quorum().id == leader).unwrap();
        let decided = leading
            .append_decided(&s[1..2], last, Writer::Controller, 5)
            .unwrap();
        assert!(decided > last);
        let batches = leading.read(0).unwrap();
        assert_eq!(
            batches
                .iter()
                .filter(|b| b.records == s[1..2].to_vec())
                .count(),
            1,
            "only the leader's own decision is in the log"
        );
        // A broker's request on a follower goes to the leader, whose controller answers it;
        // NOT_CONTROLLER until the leader's duties are served.
        let hb = ControllerRequest::BrokerHeartbeat(BrokerHeartbeat {
            broker_id: 7,
            broker_epoch: 3,
            current_metadata_offset: last,
            want_shut_down: false,
        });
        let reply = follower.send_to_controller(hb.clone()).unwrap();
        assert_eq!(reply.error_code(), crate::protocol::errors::NOT_CONTROLLER);
        let duties: Arc<dyn ControllerDuties> = Arc::new(EchoController);
        leading.serve_controller(Arc::downgrade(&duties));
        let reply = follower.send_to_controller(hb.clone()).unwrap();
        assert_eq!(reply, ControllerResponse::Error(7));
        assert_eq!(leading.send_to_controller(hb.clone()).unwrap(), reply);
        let alter = ControllerRequest::AlterPartition(AlterPartitionRequest {
            broker_id: 1,
            broker_epoch: 1,
            topic_id: uuid::Uuid::from_u128(1),
            partition: 5,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![(1, -1)],
        });
        let reply = follower.send_to_controller(alter).unwrap();
        assert_eq!(reply, ControllerResponse::Error(-5));
        // The leader stops: the other two elect one of them and go on.
        let at = logs.iter().position(|l| l.quorum().id == leader).unwrap();
        logs.remove(at).close(0).unwrap();
        let mut next = None;
        while next.is_none() {
            let m = logs[0].quorum().raft.metrics();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut m = m;
            next = rt
                .block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(1), m.changed()).await;
                    m.borrow().current_leader
                })
                .filter(|&l| l != leader);
        }
        let again = logs[1].append(&s[2..5], 6).unwrap();
        assert!(again > last);
        for l in logs {
            l.close(0).unwrap();
        }
    }

    /// How long a test waits for a quorum to get somewhere before it fails (not hangs).
    const TEST_WAIT: Duration = Duration::from_secs(60);

    fn wait_applied(log: &RaftMetadataLog, end: i64) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut applied = log.quorum().applied.watch_end_offset();
        let waited = rt.block_on(async {
            tokio::time::timeout(TEST_WAIT, applied.wait_for(|&e| e >= end)).await
        });
        assert!(
            waited.is_ok_and(|w| w.is_ok()),
            "node {} did not apply up to {end}",
            log.quorum().id
        );
    }

    /// Issue 15: writes decided on one image through two nodes at once (one forwarded to the
    /// leader, one the leader's own): exactly one commits, the other is refused as decided on
    /// a stale image (on whichever node comes second), and only the winner's records are in
    /// the log. An append decided on the image the log has is taken.
    #[test]
    fn conflicting_writes_decided_on_one_image_commit_once() {
        let root = tempfile::tempdir().unwrap();
        let logs = three_voters(root.path());
        let leader = logs[0].quorum().raft.metrics().borrow().current_leader;
        let leading = logs.iter().find(|l| Some(l.quorum().id) == leader).unwrap();
        let follower = logs.iter().find(|l| Some(l.quorum().id) != leader).unwrap();
        let s = samples();
        let base = follower.append(&s[..1], 5).unwrap();
        for l in &logs {
            wait_applied(l, base + 1);
        }
        let image = follower.quorum().image().provenance.last_offset;
        assert_eq!(image, base);
        for round in 0..5i64 {
            let on = leading.quorum().image().provenance.last_offset;
            let (a, b) = std::thread::scope(|scope| {
                let a = scope.spawn(|| follower.append_decided(&s[1..2], on, Writer::Any, round));
                let b = scope.spawn(|| leading.append_decided(&s[2..3], on, Writer::Any, round));
                (a.join().unwrap(), b.join().unwrap())
            });
            let won: Vec<i64> = [&a, &b]
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .copied()
                .collect();
            assert_eq!(won.len(), 1, "round {round}: {a:?} {b:?}");
            let lost = [a, b].into_iter().find_map(Result::err).unwrap();
            let MetadataLogError::StaleImage(end) = lost else {
                panic!("round {round}: refused with {lost}");
            };
            assert!(end > won[0], "the refusal covers the winner");
            for l in &logs {
                wait_applied(l, end);
                assert_eq!(l.quorum().image().provenance.last_offset, won[0]);
            }
        }
        // Every data batch after the base is one round's winner: the losers left nothing.
        let batches = leading.read(base + 1).unwrap();
        assert_eq!(batches.len(), 5, "{batches:?}");
        // Decided on an image the log has moved past: refused, with nothing written.
        let end = leading.quorum().applied.end_offset();
        let stale = follower.append_decided(&s[1..2], base, Writer::Any, 9);
        assert!(
            matches!(stale, Err(MetadataLogError::StaleImage(_))),
            "{stale:?}"
        );
        assert_eq!(leading.quorum().applied.end_offset(), end);
        for l in logs {
            l.close(0).unwrap();
        }
    }

    /// Issue 15 through the catalog: a catalog that has not caught up (the other node's write
    /// is committed, not yet replayed here) decides on its stale image; the quorum refuses it,
    /// and the catalog catches up and decides again: the second creation of a topic is
    /// TOPIC_ALREADY_EXISTS whichever node comes second, both images hold one topic id, and
    /// producer-id blocks reserved through each node never overlap.
    #[test]
    fn a_catalog_deciding_on_a_stale_image_decides_again() {
        use crate::metadata::CreateTopicError;

        let root = tempfile::tempdir().unwrap();
        let mut logs = three_voters(root.path());
        let leader = logs[0]
            .quorum()
            .raft
            .metrics()
            .borrow()
            .current_leader
            .unwrap();
        let mut take = |leads: bool| {
            let at = logs
                .iter()
                .position(|l| (l.quorum().id == leader) == leads)
                .unwrap();
            let log = logs.remove(at);
            let id = log.quorum().id;
            catalog_over(Box::new(log), root.path(), id as i32)
        };
        let (leading, following) = (take(true), take(false));
        let end = |c: &Catalog| *c.committed().unwrap().borrow();
        let wait_for = |c: &Catalog, until: i64| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let mut committed = c.committed().unwrap();
            rt.block_on(committed.wait_for(|&e| e >= until)).unwrap();
        };
        // Neither catalog follows the log by itself here (a process's `follow_metadata` task
        // does): each decides on what it last replayed.
        for (first, second, name) in [(&leading, &following, "t"), (&following, &leading, "u")] {
            let created = first.create(name, 2, 1, Default::default(), 0).unwrap();
            wait_for(second, end(first));
            assert!(
                second.image().topics.get_by_name(name).is_none(),
                "still stale"
            );
            let again = second.create(name, 2, 1, Default::default(), 0);
            assert!(
                matches!(again, Err(CreateTopicError::AlreadyExists(_))),
                "{name}: {:?}",
                again.err()
            );
            let id_there = second.image().topics.get_by_name(name).map(|t| t.id);
            assert_eq!(id_there, Some(created.topic_id), "{name}");
        }
        let reserve = |c: &Catalog| reserve_producer_ids(c).unwrap();
        let mut starts = vec![reserve(&leading)];
        wait_for(&following, end(&leading));
        starts.push(reserve(&following));
        wait_for(&leading, end(&following));
        starts.push(reserve(&leading));
        assert_eq!(starts, [0, 1000, 2000], "blocks never overlap");
        wait_for(&following, end(&leading));
        following.catch_up().unwrap();
        leading.catch_up().unwrap();
        assert_eq!(following.image().topics, leading.image().topics);
        leading.close_metadata_log(0).unwrap();
        following.close_metadata_log(0).unwrap();
        for l in logs {
            l.close(0).unwrap();
        }
    }

    /// A catalog over `log`, its data in `root/node-<id>`.
    fn catalog_over(log: Box<dyn MetadataLog>, root: &std::path::Path, id: i32) -> Catalog {
        let dir = root.join(format!("node-{id}"));
        let config = crate::log::LogConfig::default();
        Catalog::open_with_log(Arc::new(FileStorage), log, &dir, id, config, true, 0).unwrap()
    }

    /// Reserves a block of 1000 producer ids through `c` (as `Broker::next_producer_id` does,
    /// decided on its image): the block's first id.
    fn reserve_producer_ids(c: &Catalog) -> std::io::Result<i64> {
        c.change_image(|image| {
            let start = image.next_producer_id.max(0);
            let record = crate::metadata::records::ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: -1,
                next_producer_id: start + 1000,
            };
            (vec![MetadataRecord::ProducerIds(record)], start)
        })
    }

    /// A connection between two nodes: (from, to).
    type Pair = (NodeId, NodeId);

    /// TCP proxies between nodes, as scripts/cluster-faults puts them: one per ordered pair,
    /// each node's list of voters naming its own. A pair cut black-holes its connections
    /// (accepted, bytes dropped, nothing answered), and healing closes those it held.
    struct Proxies {
        net: tokio::runtime::Runtime,
        cut: tokio::sync::watch::Sender<BTreeSet<Pair>>,
        /// Per pair, the connections it accepted while cut.
        held: parking_lot::Mutex<BTreeMap<Pair, tokio::sync::watch::Sender<usize>>>,
    }

    impl Proxies {
        fn new(cut: impl IntoIterator<Item = Pair>) -> Proxies {
            let net = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let cut = tokio::sync::watch::channel(cut.into_iter().collect()).0;
            let held = Default::default();
            Proxies { net, cut, held }
        }

        /// Where `pair.0` reaches `pair.1`, which listens at `upstream`.
        fn route(&self, pair: Pair, upstream: std::net::SocketAddr) -> QuorumNode {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            listener.set_nonblocking(true).unwrap();
            let held = tokio::sync::watch::channel(0).0;
            let (counted, cut) = (held.clone(), self.cut.subscribe());
            self.held.lock().insert(pair, held);
            self.net.spawn(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((client, _)) = listener.accept().await {
                    if cut.borrow().contains(&pair) {
                        counted.send_modify(|n| *n += 1);
                    }
                    tokio::spawn(pipe(client, upstream, pair, cut.clone()));
                }
            });
            let host = "127.0.0.1".to_string();
            QuorumNode { host, port }
        }

        fn set(&self, cut: impl IntoIterator<Item = Pair>) {
            self.cut.send_replace(cut.into_iter().collect());
        }

        /// Returns once `pair` has held `n` connections.
        fn wait_held(&self, pair: Pair, n: usize) {
            let mut held = self.held.lock()[&pair].subscribe();
            self.net.block_on(held.wait_for(|&h| h >= n)).unwrap();
        }
    }

    /// Every connection between `node` and `others`, both ways.
    fn pairs_of(node: NodeId, others: impl IntoIterator<Item = NodeId>) -> Vec<Pair> {
        let others = others.into_iter().filter(|&o| o != node);
        others.flat_map(|o| [(node, o), (o, node)]).collect()
    }

    /// One proxied connection: carried while its pair is not cut; while it is, black-holed;
    /// healed, closed.
    async fn pipe(
        mut client: tokio::net::TcpStream,
        upstream: std::net::SocketAddr,
        pair: Pair,
        mut cut: tokio::sync::watch::Receiver<BTreeSet<Pair>>,
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut server, mut held) = (None::<tokio::net::TcpStream>, false);
        let (mut up, mut down) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
        loop {
            let black_holed = cut.borrow_and_update().contains(&pair);
            match (black_holed, held) {
                (true, _) => held = true,
                (false, true) => return Ok(()),
                (false, false) if server.is_none() => {
                    server = Some(tokio::net::TcpStream::connect(upstream).await?);
                }
                (false, false) => {}
            }
            tokio::select! {
                changed = cut.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                read = client.read(&mut up) => match (read?, server.as_mut()) {
                    (0, _) => return Ok(()),
                    (n, Some(s)) if !black_holed => s.write_all(&up[..n]).await?,
                    _ => {}
                },
                read = async {
                    match server.as_mut() {
                        Some(s) => s.read(&mut down).await,
                        None => std::future::pending().await,
                    }
                } => match read? {
                    0 => return Ok(()),
                    n if !black_holed => client.write_all(&down[..n]).await?,
                    _ => {}
                },
            }
        }
    }

    /// Three voters (ids 1 to 3, in `root/node-<id>`) whose connections go through proxies (see
    /// `Proxies`), once they have a leader, and where the observer `observer` reaches each voter
    /// through its own proxies.
    struct ProxiedQuorum {
        proxies: Proxies,
        leader: RaftMetadataLog,
        /// The voter after the leader, and the other one.
        follower: RaftMetadataLog,
        other: RaftMetadataLog,
        observing: BTreeMap<NodeId, QuorumNode>,
    }

    fn proxied_quorum(root: &std::path::Path, observer: NodeId) -> ProxiedQuorum {
        let settings = crate::config::MetadataLogSettings::default();
        proxied_quorum_with(root, observer, settings)
    }

    /// `proxied_quorum` with these metadata log settings.
    fn proxied_quorum_with(
        root: &std::path::Path,
        observer: NodeId,
        settings: crate::config::MetadataLogSettings,
    ) -> ProxiedQuorum {
        // Cut until every voter has formed the quorum on its own list of voters (one that
        // heard from another first would take that one's list, and its proxies).
        let voters = 1..=3;
        let proxies = Proxies::new(voters.clone().flat_map(|v| pairs_of(v, 1..=3)));
        let listeners: BTreeMap<NodeId, std::net::TcpListener> = voters
            .clone()
            .map(|id| (id, std::net::TcpListener::bind("127.0.0.1:0").unwrap()))
            .collect();
        let at: BTreeMap<NodeId, std::net::SocketAddr> = (listeners.iter())
            .map(|(&id, l)| (id, l.local_addr().unwrap()))
            .collect();
        // An observer (a broker-only process) reaches the voters through proxies too. A voter
        // never connects to itself: its own entry is where it tells observers it listens.
        let observing: BTreeMap<NodeId, QuorumNode> = (voters.clone())
            .map(|id| (id, proxies.route((observer, id), at[&id])))
            .collect();
        let route = |from: NodeId| -> BTreeMap<NodeId, QuorumNode> {
            let to = |id| match id == from {
                true => observing[&id].clone(),
                false => proxies.route((from, id), at[&id]),
            };
            voters.clone().map(|id| (id, to(id))).collect()
        };
        let mut logs: Vec<RaftMetadataLog> = listeners
            .into_iter()
            .map(|(id, l)| {
                let dir = root.join(format!("node-{id}"));
                let (storage, settings) = (Arc::new(FileStorage), settings.clone());
                let store = QuorumLogStore::open_with(storage, &dir, settings, true, 0).unwrap();
                let (security, fetch) =
                    (Security::plaintext(), check_quorum::DEFAULT_FETCH_TIMEOUT);
                RaftMetadataLog::open_tcp(TcpVoter {
                    id,
                    store,
                    listener: l,
                    voters: route(id),
                    security,
                    fetch_timeout: fetch,
                })
                .unwrap()
            })
            .collect();
        proxies.set([]);
        for l in &logs {
            l.wait_ready().unwrap();
        }
        let leader = logs[0].quorum().raft.metrics().borrow().current_leader;
        let leader = leader.unwrap();
        let take = |logs: &mut Vec<RaftMetadataLog>, id: NodeId| {
            let at = logs.iter().position(|l| l.quorum().id == id).unwrap();
            logs.remove(at)
        };
        let follower = take(&mut logs, leader % 3 + 1);
        let other = take(&mut logs, (leader + 1) % 3 + 1);
        let old_leader = take(&mut logs, leader);
        ProxiedQuorum {
            proxies,
            leader: old_leader,
            follower,
            other,
            observing,
        }
    }

    /// Returns once `log`'s node knows a leader other than `old`.
    fn wait_for_leader_other_than(log: &RaftMetadataLog, old: NodeId) {
        let raft = log.quorum().raft.clone();
        let elected = async move {
            let new_leader = move |m: &openraft::RaftMetrics<NodeId, QuorumNode>| {
                m.current_leader.is_some_and(|l| l != old)
            };
            raft.wait(None).metrics(new_leader, "a new leader").await
        };
        wait_on(&log.runtime, elected).unwrap().unwrap();
    }

    /// cluster-faults seed 357146050: a write forwarded to a quorum leader cut off from the
    /// others (its connections black-holed) was waited on for FORWARD_TIMEOUT (30 s), and the
    /// catalog that made it, whose lock it held, followed nothing the new leader committed
    /// meanwhile. A write sent to a leader that loses the lead now goes to the next one once
    /// the sender learns of it: producer-id blocks reserved through a follower's catalog and
    /// an observer's are committed while the old leader is still cut off, the follower's
    /// catalog then follows the new leader's writes, and neither block is committed twice. An
    /// unconditional write fails instead, saying it may be committed.
    #[test]
    fn a_write_forwarded_to_a_cut_off_leader_goes_on_to_the_next_one() {
        let root = tempfile::tempdir().unwrap();
        let observer: NodeId = 4;
        let ProxiedQuorum {
            proxies,
            leader: old_leader,
            follower,
            other,
            observing,
        } = proxied_quorum(root.path(), observer);
        let leader = old_leader.quorum().id;
        let f = follower.quorum().id;
        let channel = Arc::clone(&Security::plaintext().channel);
        let observer_log =
            observer::ObserverMetadataLog::start(observer as i32, observing.clone(), channel);
        let observed = catalog_over(
            Box::new(observer_log.unwrap()),
            root.path(),
            observer as i32,
        );
        let (quorum, runtime) = (follower.quorum().clone(), follower.runtime.handle().clone());
        let following = catalog_over(Box::new(follower), root.path(), f as i32);
        let s = samples();

        // The leader's answers to the follower are black-holed first (the follower still hears
        // from it and knows no other leader), so that its writes are sent there for certain.
        proxies.set([(f, leader), (observer, leader)]);
        std::thread::scope(|scope| {
            let reserved = scope.spawn(|| reserve_producer_ids(&following));
            let unconditional =
                scope.spawn(|| runtime.block_on(quorum.append(s[1..2].to_vec(), None, 7)));
            let observers = scope.spawn(|| reserve_producer_ids(&observed));
            proxies.wait_held((f, leader), 2);
            // Then the leader is cut off from everyone: the other two elect a new one.
            proxies.set(pairs_of(leader, 1..=observer));
            wait_for_leader_other_than(&other, leader);
            let written = other.append(&s[2..3], 8).unwrap();
            // The follower's catalog follows it (its lock free again), the old leader still
            // cut off.
            following.catch_up().unwrap();
            let image = following.image();
            assert!(image.provenance.last_offset >= written, "{image:?}");
            let unconditional = unconditional.join().unwrap();
            let Err(MetadataLogError::Quorum(why)) = &unconditional else {
                panic!("{unconditional:?}");
            };
            assert!(why.contains("may or may not be committed"), "{why}");
            let blocks = [reserved.join().unwrap(), observers.join().unwrap()];
            let [a, b] = blocks.map(Result::unwrap);
            assert!(a.abs_diff(b) >= 1000, "blocks {a} and {b} overlap");
        });

        // Healed: the old leader takes the new one's log, where each block is reserved once.
        proxies.set([]);
        wait_applied(&old_leader, other.quorum().applied.end_offset());
        let reserved = |log: &RaftMetadataLog| -> usize {
            let batches = log.read(0).unwrap();
            let records = batches.iter().flat_map(|b| &b.records);
            records
                .filter(|r| matches!(r, MetadataRecord::ProducerIds(_)))
                .count()
        };
        assert_eq!(reserved(&other), 2);
        assert_eq!(reserved(&old_leader), 2);
        following.close_metadata_log(0).unwrap();
        observed.close_metadata_log(0).unwrap();
        for l in [old_leader, other] {
            l.close(0).unwrap();
        }
    }

    /// Issue 15, Kafka's check quorum (`check_quorum`): a leader cut off from the others (its
    /// connections black-holed, as scripts/cluster-faults' isolate-quorum-leader does) resigns
    /// once no majority has acknowledged it for 1.5 fetch timeouts, instead of acting as the
    /// active controller until it sees a higher term. A decision of its own, waiting to be
    /// committed as it is cut off, fails as NotController well before APPEND_TIMEOUT (it waited
    /// all of it before); while still cut off, it knows no leader at a later term and answers a
    /// broker's request NOT_CONTROLLER at once; the other two elect a leader and take writes.
    /// Healed, it follows the new leader: its decision, never committed, is gone from its log,
    /// which is the new leader's, and a write through it is committed.
    #[test]
    fn a_leader_cut_off_from_the_others_resigns() {
        let root = tempfile::tempdir().unwrap();
        let ProxiedQuorum {
            proxies,
            leader: old_leader,
            follower,
            other,
            ..
        } = proxied_quorum(root.path(), 4);
        let leader = old_leader.quorum().id;
        let term = old_leader.quorum().raft.metrics().borrow().current_term;
        let s = samples();
        let base = follower.append(&s[..1], 1).unwrap();
        wait_applied(&old_leader, base + 1);
        let duties: Arc<dyn ControllerDuties> = Arc::new(EchoController);
        old_leader.serve_controller(Arc::downgrade(&duties));
        let heartbeat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeat {
            broker_id: 7,
            broker_epoch: 3,
            current_metadata_offset: base,
            want_shut_down: false,
        });
        let ask = |request: ControllerRequest| {
            let q = old_leader.quorum().clone();
            let answer = async move { q.answer_controller_request(request).await };
            wait_on(&old_leader.runtime, answer).unwrap()
        };
        assert_eq!(
            ask(heartbeat.clone()),
            ControllerResponse::Error(7),
            "it leads"
        );

        proxies.set(pairs_of(leader, 1..=3));
        let started = std::time::Instant::now();
        let decided = old_leader.append_decided(&s[1..2], base, Writer::Controller, 2);
        let waited = started.elapsed();
        assert!(
            matches!(&decided, Err(MetadataLogError::NotController(_))),
            "{decided:?}"
        );
        // Generous: the resignation comes after 3 s here; the old leader waited 30 s.
        assert!(waited < APPEND_TIMEOUT / 2, "failed after {waited:?}");
        let m = old_leader.quorum().raft.metrics().borrow().clone();
        assert!(m.current_term > term, "{m:?}");
        assert_ne!(m.current_leader, Some(leader), "{m:?}");
        assert_eq!(
            ask(heartbeat).error_code(),
            crate::protocol::errors::NOT_CONTROLLER
        );
        // The other two elect a leader and go on.
        wait_for_leader_other_than(&follower, leader);
        let written = follower.append(&s[2..3], 3).unwrap();
        let m = old_leader.quorum().raft.metrics().borrow().clone();
        assert_eq!(m.current_leader, None, "cut off, it knows no leader: {m:?}");
        // Cut off, it does not stand for election (each would raise its term, and once healed
        // end the new leader's): over two election timeouts, which is all it would take.
        let raft = old_leader.quorum().raft.clone();
        let campaigns = async move {
            let mut m = raft.metrics();
            let raised = m.wait_for(|m| m.current_term > term + 1);
            let raised = tokio::time::timeout(Duration::from_secs(4), raised).await;
            raised.is_ok()
        };
        assert!(!wait_on(&old_leader.runtime, campaigns).unwrap());
        let elected = follower.quorum().raft.metrics().borrow().clone();

        proxies.set([]);
        wait_applied(&old_leader, written + 1);
        let through_old = old_leader.append(&s[3..4], 4).unwrap();
        // Healed, it followed the new leader, which leads on in its term.
        let m = follower.quorum().raft.metrics().borrow().clone();
        assert_eq!(
            (m.current_leader, m.current_term),
            (elected.current_leader, elected.current_term)
        );
        wait_applied(&other, through_old + 1);
        let log = other.read(0).unwrap();
        assert_eq!(old_leader.read(0).unwrap(), log);
        let decision = log.iter().filter(|b| b.records == s[1..2].to_vec());
        assert_eq!(
            decision.count(),
            0,
            "the cut-off leader's decision was never committed"
        );
        for l in [old_leader, follower, other] {
            l.close(0).unwrap();
        }
    }
}
