//! The quorum's RPCs between processes, on the controller listener (`controller.listener.names`).
//!
//! Own framing, not Kafka's KRaft RPCs: Kafka's quorum is pull-based (followers Fetch from the
//! leader; Vote, BeginQuorumEpoch, EndQuorumEpoch) while openraft pushes (AppendEntries, Vote),
//! so the two do not interoperate and a Kafka controller cannot join a gregor quorum. A frame is
//! a 4-byte big-endian length and a JSON message (openraft's own serde forms; a metadata record
//! as its Kafka encoding in base64). One request at a time per connection, answered in order.
//! Besides Raft's two RPCs, a node that does not lead forwards a metadata write to the leader
//! (Kafka's brokers forward their admin writes to the active controller likewise), an observer
//! (a broker-only process) fetches the committed log and writes through a voter, and a broker
//! asks the leader to describe the quorum (Kafka's brokers forward DescribeQuorum to the active
//! controller, whose raft client answers only while it leads).
//!
//! Secured as the controller listener's settings say (`Security`): over TLS when its protocol
//! (`listener.security.protocol.map`) is SSL, each side verifying the other as on the
//! inter-broker listener (`security::channel`, `security::tls`; `ssl.client.auth=required` for
//! mutual TLS); with an authorizer, every request needs CLUSTER_ACTION on the cluster for the
//! caller's principal (its certificate's subject, else User:ANONYMOUS), as Kafka's controllers
//! authorize the Raft and broker RPCs: the voters' and brokers' principals belong in
//! `super.users`. The principal is the connection's, so it is checked once it is known, before
//! any frame is read (a refused caller cannot make a voter buffer one), and again for each
//! request (an ACL removed meanwhile takes effect). A refused caller's connection is closed and
//! logged, at most one line per `REFUSAL_LOG_INTERVAL`.
//!
//! A caller whose connection fails before its first answer (refused, closed, or TLS's
//! handshake failed, which TLS 1.3 reports to a client only as it reads) treats the voter as
//! unreachable: openraft then waits before it sends again (it retries a network error at once),
//! and an observer waits likewise, for Kafka's reconnect backoff (`reconnect_backoff`).
//! SASL_PLAINTEXT and
//! SASL_SSL are not served here: the framing is gregor's own, with no SaslHandshake to carry an
//! exchange (start-up stops with a message saying so).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::log_store::QuorumLogStore;
use super::replicas::Replicas;
use super::{
    committed_in_time, not_committed_in_time, MetadataEntry, NodeId, ObserverFetch, Quorum,
    QuorumNode, SnapshotChunk, TypeConfig, Written, APPEND_TIMEOUT, OBSERVER_FETCH_WAIT,
};
use crate::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::metadata::metadata_log::{MetadataLogError, QuorumState};
use crate::security::authorizer::{self, AclOperation, Authorizer, Requester, ResourceType};
use crate::security::channel::{ClientChannel, ClientStream};
use crate::security::tls::TlsSettings;
use crate::server::accept_until;
use crate::server::quotas::ConnectionQuotas;

/// The largest frame taken: a write at Kafka's batch limit (`MAX_BATCH_BYTES`) fits several
/// times over, and an AppendEntries of many is cut to fit (`too_large`); a length from a
/// stranger does not make us allocate gigabytes.
const MAX_FRAME: usize = 64 << 20;
/// What a frame's buffer starts at, before its bytes arrive.
const FRAME_CHUNK: usize = 64 << 10;
/// How long a TLS handshake (either side) and a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded write waits for the leader's answer: as long as the leader waits for
/// it to be committed (`committed_in_time`).
const FORWARD_TIMEOUT: Duration = APPEND_TIMEOUT;
/// How much longer than its wait at the voter an observer's fetch may take to be answered.
const FETCH_SLACK: Duration = Duration::from_secs(5);
/// Kafka's reconnect.backoff.ms and reconnect.backoff.max.ms defaults: the first and the
/// longest pause before a voter that could not be reached is called again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The least time between two log lines of a voter about callers it refused.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The pauses before each next call to a voter that could not be reached (Kafka's
/// ExponentialBackoff of the reconnect settings: doubling from reconnect.backoff.ms to
/// reconnect.backoff.max.ms; without its random jitter, which spreads many clients' reconnects
/// to one broker; a quorum has a few callers).
pub fn reconnect_backoff() -> impl Iterator<Item = Duration> + Send + 'static {
    std::iter::successors(Some(RECONNECT_BACKOFF), |d| {
        Some((*d * 2).min(RECONNECT_BACKOFF_MAX))
    })
}

/// Lets one log line through per `REFUSAL_LOG_INTERVAL`, counting the ones held back: a refused
/// peer calls again and again, and must not fill the log.
#[derive(Default)]
struct LogLimiter(Mutex<(Option<Instant>, u64)>);

impl LogLimiter {
    /// Whether to log at `now`, and how many lines were held back since the last one.
    fn allow(&self, now: Instant) -> Option<u64> {
        let mut guard = self.0.lock();
        let (last, held_back) = &mut *guard;
        if last.is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_INTERVAL) {
            *held_back += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held_back))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    /// A chunk of the leader's snapshot (its checkpoint file) for a voter behind its log start.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A metadata write from a node that does not lead.
    Append(MetadataEntry),
    /// A broker's request to the active controller (see `metadata::controller`).
    Controller(ControllerRequest),
    /// An observer's fetch of the committed log (see `observer`).
    Fetch {
        observer: i32,
        from_offset: i64,
    },
    /// A metadata write from an observer: the voter forwards it to the leader if need be.
    ObserverAppend(MetadataEntry),
    /// A piece of a snapshot, for an observer behind the voter's log start.
    FetchSnapshot {
        end_offset: i64,
        epoch: i32,
        position: u64,
    },
    /// The quorum as the leader sees it (`describe_quorum`): only the leader answers.
    DescribeQuorum,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// The offset of the write's last record once committed, or why not.
    Append(Result<i64, Refusal>),
    Controller(ControllerResponse),
    Fetch(Result<ObserverFetch, String>),
    FetchSnapshot(Result<SnapshotChunk, String>),
    /// The leader's view, or, from a voter that does not lead, where the leader it knows of
    /// listens (Kafka's NOT_LEADER_OR_FOLLOWER, with the leader as a hint).
    DescribeQuorum(Result<QuorumState, Option<QuorumNode>>),
}

/// Why the leader did not commit a forwarded write.
#[derive(serde::Serialize, serde::Deserialize)]
enum Refusal {
    /// Decided on a stale image (`MetadataLogError::StaleImage`): the leader's applied end.
    Stale(i64),
    Failed(String),
    /// The voter does not lead (its sender took it for the leader): nothing was proposed.
    NotLeader,
    /// Proposed while the voter led, and it stopped leading before the write was committed
    /// (`check_quorum`): it may or may not be committed.
    Resigned,
}

impl From<MetadataLogError> for Refusal {
    fn from(e: MetadataLogError) -> Refusal {
        match e {
            MetadataLogError::StaleImage(end) => Refusal::Stale(end),
            e => Refusal::Failed(e.to_string()),
        }
    }
}

async fn read_frame(s: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other(format!("a {len}-byte quorum frame")));
    }
    // The buffer grows as the bytes arrive: a length alone (a stranger's, or a caller that
    // stalls) does not make this node hold MAX_FRAME per connection.
    let mut body = Vec::with_capacity(len.min(FRAME_CHUNK));
    let read = (&mut *s).take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(body))
}

/// A message as a frame's body.
fn encode(value: &impl serde::Serialize) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

/// Sends `body` as one frame; one over MAX_FRAME is not sent (the other side would refuse it).
async fn write_frame(s: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::other(format!(
            "a {}-byte quorum frame is over the {MAX_FRAME}-byte limit",
            body.len()
        )));
    }
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await
}

/// How this process's quorum connections are secured, from the controller listener's settings.
#[derive(Clone)]
pub struct Security {
    /// How this process reaches the voters.
    pub channel: Arc<ClientChannel>,
    /// A voter's side of TLS, on an SSL controller listener.
    pub tls: Option<TlsSettings>,
    /// With an authorizer, callers need CLUSTER_ACTION.
    pub authorizer: Option<Authorizer>,
}

impl Security {
    /// Plain TCP, every caller served (the tests' quorums).
    pub fn plaintext() -> Security {
        Security {
            channel: Arc::new(ClientChannel::plaintext("CONTROLLER")),
            tls: None,
            authorizer: None,
        }
    }

    /// Whether `principal` at `peer` may call: CLUSTER_ACTION on the cluster, by super.users or
    /// the ACLs of the image this node has applied.
    fn allows(&self, q: &Quorum, principal: &str, peer: SocketAddr) -> bool {
        let Some(a) = &self.authorizer else {
            return true;
        };
        let host = authorizer::host_address(peer.ip());
        let who = Requester {
            principal,
            host: &host,
        };
        let image = q.image();
        let cluster = authorizer::CLUSTER_NAME;
        a.authorize(
            image.acls.values(),
            who,
            AclOperation::ClusterAction,
            ResourceType::Cluster,
            cluster,
        )
    }
}

/// A voter's side of its connections: how they are secured, and its logs of failed callers.
struct Served {
    security: Security,
    refusals: LogLimiter,
    failed_handshakes: LogLimiter,
}

impl Served {
    /// Whether `principal` at `peer` may call; a refusal is logged (rate-limited).
    fn allows(&self, q: &Quorum, principal: &str, peer: SocketAddr) -> bool {
        if self.security.allows(q, principal, peer) {
            return true;
        }
        if let Some(held_back) = self.refusals.allow(Instant::now()) {
            tracing::info!(%peer, principal, held_back, "refused on the controller listener: CLUSTER_ACTION on the cluster is needed (super.users); held_back callers refused since the last such line");
        }
        false
    }
}

/// The most connections a voter's controller listener holds at once (each a task, and up to
/// MAX_FRAME of buffer while a frame arrives): its callers are the other voters (one
/// connection each), each observer's fetch, and the brief connections of forwarded writes and
/// brokers' requests to the controller, far fewer. Beyond it the listener waits for one to
/// close before accepting another, as Kafka's max.connections has its acceptor do.
const MAX_CONNECTIONS: usize = 1000;

/// Answers the quorum's RPCs on `listener` until `cancel` fires; then the listener and every
/// connection it accepted are closed, so that callers find the voter unreachable (and back
/// off) rather than answered by a stopped node. On the broker's shared accept loop
/// (`server::accept_until`): a failed accept (EMFILE) backs off instead of spinning.
pub async fn serve(
    listener: TcpListener,
    quorum: Quorum,
    security: Security,
    cancel: tokio_util::sync::CancellationToken,
) {
    let security = Arc::new(Served {
        security,
        refusals: LogLimiter::default(),
        failed_handshakes: LogLimiter::default(),
    });
    // Kafka's controllers apply max.connection.creation.rate to their listener too; this channel
    // is gregor's own (not Kafka's wire) and its callers are the cluster's nodes, so it keeps
    // only the connection bound.
    let quotas = ConnectionQuotas::new(MAX_CONNECTIONS, MAX_CONNECTIONS, HashMap::new())
        .listener("controller");
    accept_until(listener, quotas, cancel, move |stream, peer| {
        let q = quorum.clone();
        let security = Arc::clone(&security);
        async move {
            if let Err(e) = accept(stream, peer, q, &security).await {
                tracing::debug!(%peer, error = %e, "controller connection closed");
            }
        }
    })
    .await
}

/// One accepted connection: TLS's handshake first on an SSL listener, then the requests.
async fn accept(stream: TcpStream, peer: SocketAddr, q: Quorum, s: &Served) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let Some(tls) = &s.security.tls else {
        return answer(stream, peer, crate::security::ANONYMOUS, q, s).await;
    };
    let (stream, principal) = match tls.accept(stream, CONNECT_TIMEOUT).await {
        Ok(accepted) => accepted,
        Err(e) => {
            if let Some(held_back) = s.failed_handshakes.allow(Instant::now()) {
                tracing::info!(%peer, error = %e, held_back, "controller listener TLS connection refused; held_back more since the last such line");
            }
            return Ok(());
        }
    };
    answer(stream, peer, &principal, q, s).await
}

/// One connection's requests: a bad frame closes it, and so does a caller not allowed.
async fn answer(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    peer: SocketAddr,
    principal: &str,
    q: Quorum,
    s: &Served,
) -> io::Result<()> {
    // The connection's principal is known: a caller not allowed is closed before it sends a
    // frame, which this voter would otherwise read (up to MAX_FRAME) first.
    if !s.allows(&q, principal, peer) {
        return Ok(());
    }
    while let Some(frame) = read_frame(&mut stream).await? {
        // Checked per request too, so that an ACL removed meanwhile takes effect.
        if !s.allows(&q, principal, peer) {
            return Ok(());
        }
        let request: Request = serde_json::from_slice(&frame).map_err(io::Error::other)?;
        let response = respond(&q, request).await;
        write_frame(&mut stream, &encode(&response)?).await?;
    }
    Ok(())
}

/// This voter's answer to one request.
async fn respond(q: &Quorum, request: Request) -> Response {
    match request {
        Request::AppendEntries(rpc) => Response::AppendEntries(q.raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(q.raft.vote(rpc).await),
        Request::InstallSnapshot(rpc) => {
            Response::InstallSnapshot(q.raft.install_snapshot(rpc).await)
        }
        Request::Append(entry) => Response::Append(take_forwarded(q, entry).await),
        Request::Controller(r) => Response::Controller(q.answer_controller_request(r).await),
        Request::Fetch {
            observer,
            from_offset,
        } => {
            let fetched = q.fetch_for_observer(observer, from_offset, OBSERVER_FETCH_WAIT);
            Response::Fetch(fetched.await.map_err(|e| e.to_string()))
        }
        Request::ObserverAppend(entry) => {
            let append = q.append(entry.records, entry.decided_on, entry.append_time_ms);
            Response::Append(committed_in_time(append).await.map_err(Refusal::from))
        }
        Request::DescribeQuorum => Response::DescribeQuorum(q.describe_here()),
        Request::FetchSnapshot {
            end_offset,
            epoch,
            position,
        } => {
            // A read of up to a piece from the disk: off the quorum's async workers, as its writes.
            let chunk =
                super::log_store::blocking_io(|| q.fetch_snapshot((end_offset, epoch), position));
            Response::FetchSnapshot(chunk.map_err(|e| e.to_string()))
        }
    }
}

/// A write another node forwarded to this one as the leader. It waits no longer here than its
/// caller does (`send_write`): a voter that cannot commit it (a leader cut off from the others,
/// until it resigns) does not keep the task for ever. A voter that does not lead says so, and one
/// that stops leading before the write is committed says that, for the sender to send it to the
/// next leader (`ForwardError`).
async fn take_forwarded(q: &Quorum, entry: MetadataEntry) -> Result<i64, Refusal> {
    match tokio::time::timeout(APPEND_TIMEOUT, q.write(entry)).await {
        Ok(Ok(last)) => Ok(last),
        Ok(Err(Written::Elsewhere(..))) => Err(Refusal::NotLeader),
        Ok(Err(Written::Resigned)) => Err(Refusal::Resigned),
        Ok(Err(refused)) => Err(Refusal::from(refused.into_error())),
        Err(_) => Err(Refusal::from(not_committed_in_time())),
    }
}

/// openraft's connections to the other voters, over the controller listener.
pub struct TcpNetwork {
    pub channel: Arc<ClientChannel>,
    /// Where the voters' acknowledgements are recorded, with the log they are measured on.
    pub tracked: Tracked,
}

/// The leader's log, and what it heard from the voters (`replicas`).
#[derive(Clone)]
pub struct Tracked {
    pub store: QuorumLogStore,
    pub replicas: Arc<Replicas>,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpClient;

    async fn new_client(&mut self, target: NodeId, node: &QuorumNode) -> TcpClient {
        TcpClient {
            target,
            node: node.clone(),
            conn: None,
            channel: Arc::clone(&self.channel),
            tracked: Some(self.tracked.clone()),
        }
    }
}

/// A connection to one voter, made on first use and again after any failure.
pub struct TcpClient {
    target: NodeId,
    node: QuorumNode,
    conn: Option<Connection>,
    channel: Arc<ClientChannel>,
    /// openraft's clients (the leader's) record each acknowledged AppendEntries there.
    tracked: Option<Tracked>,
}

struct Connection {
    stream: ClientStream,
    /// Whether the voter has answered on it.
    answered: bool,
}

/// How a call failed.
enum CallError {
    /// No connection could be made: nothing was sent.
    Unreachable(io::Error),
    /// A new connection failed before its first answer: the voter refused the caller (its
    /// authorizer closes the connection), or TLS's handshake failed on the voter's side. The
    /// request may have been received.
    Refused(io::Error),
    /// The exchange broke on a connection the voter had answered on.
    Network(io::Error),
    /// The voter's answer is not one this node reads (not gregor's quorum, or another version
    /// of it): asked again at once, it would answer the same.
    Garbled(io::Error),
}

impl CallError {
    /// openraft waits before it calls an unreachable node again, and retries at once after
    /// a network error: a refusing voter, and one whose answers cannot be read, are
    /// unreachable to it.
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, QuorumNode, E> {
        match self {
            CallError::Unreachable(e) | CallError::Refused(e) | CallError::Garbled(e) => {
                unreachable(e)
            }
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn into_io(self) -> io::Error {
        match self {
            CallError::Unreachable(e)
            | CallError::Refused(e)
            | CallError::Network(e)
            | CallError::Garbled(e) => e,
        }
    }
}

impl TcpClient {
    async fn call(&mut self, request: &Request, ttl: Duration) -> Result<Response, CallError> {
        let body = encode(request).map_err(CallError::Network)?;
        self.send(&body, ttl).await
    }

    /// `call` with the request already encoded (as a frame's body).
    async fn send(&mut self, body: &[u8], ttl: Duration) -> Result<Response, CallError> {
        let result = tokio::time::timeout(ttl, self.exchange(body)).await;
        let result = result.unwrap_or_else(|_| {
            Err(CallError::Network(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer in time",
            )))
        });
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, body: &[u8]) -> Result<Response, CallError> {
        if self.conn.is_none() {
            let (host, port) = (self.node.host.as_str(), self.node.port);
            let stream = (self.channel.connect(host, port, CONNECT_TIMEOUT).await)
                .map_err(CallError::Unreachable)?;
            self.conn = Some(Connection {
                stream,
                answered: false,
            });
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(CallError::Unreachable(io::Error::other("not connected")));
        };
        let failed: fn(io::Error) -> CallError = match conn.answered {
            true => CallError::Network,
            false => CallError::Refused,
        };
        write_frame(&mut conn.stream, body).await.map_err(failed)?;
        let frame = read_frame(&mut conn.stream).await.map_err(failed)?;
        let frame = frame.ok_or_else(|| failed(io::ErrorKind::UnexpectedEof.into()))?;
        conn.answered = true;
        serde_json::from_slice(&frame).map_err(|e| CallError::Garbled(io::Error::other(e)))
    }
}

/// openraft's answer to a snapshot sent to a voter.
pub type SnapshotRpc = Result<
    InstallSnapshotResponse<NodeId>,
    RPCError<NodeId, QuorumNode, RaftError<NodeId, InstallSnapshotError>>,
>;

/// A voter that openraft waits on before calling again (its `backoff`).
fn unreachable<E: std::error::Error>(e: io::Error) -> RPCError<NodeId, QuorumNode, E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

/// An answer of the wrong kind: garbled, as an undecodable one (`CallError::Garbled`).
fn mismatched<E: std::error::Error>() -> RPCError<NodeId, QuorumNode, E> {
    CallError::Garbled(io::Error::other("an answer to another request")).into_rpc()
}

/// An AppendEntries of `entries` that came to `bytes`, over the frame limit the voter takes.
/// More than one entry: openraft is told to send fewer (`PayloadTooLarge`, with a hint in
/// proportion to the limit, and always fewer than were sent, so that it comes down to a single
/// entry at worst; it retries at once). A single entry always fits (`Quorum::write` bounds a
/// write to Kafka's batch limit, well inside the frame's): one that does not is an entry
/// written before that bound, which no message can carry. Reported as an error, and the voter
/// as unreachable (openraft backs off, rather than retrying at once, for ever).
fn too_large<E: std::error::Error>(
    target: NodeId,
    entries: usize,
    bytes: usize,
) -> RPCError<NodeId, QuorumNode, E> {
    if entries > 1 {
        let fitting = (entries as u64 * MAX_FRAME as u64 / bytes as u64).max(1);
        let hint = fitting.min(entries as u64 - 1);
        tracing::debug!(
            target,
            entries,
            bytes,
            hint,
            "AppendEntries over the frame limit: sending fewer entries"
        );
        return RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint));
    }
    let e = io::Error::other(format!(
        "a metadata log entry takes {bytes} bytes to send, over the {MAX_FRAME}-byte frame limit: voter {target} cannot be sent it"
    ));
    tracing::error!(target, bytes, "{e}");
    unreachable(e)
}

impl RaftNetwork<TypeConfig> for TcpClient {
    /// After an unreachable voter (see `CallError::into_rpc`): Kafka's reconnect backoff, not
    /// openraft's default of 500 ms each time.
    fn backoff(&self) -> Backoff {
        Backoff::new(reconnect_backoff())
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
    {
        let entries = rpc.entries.len();
        // What the voter holds once it acknowledges: up to the last entry sent, else the one
        // before them; and what the leader held as it sent them.
        let term = rpc.vote.leader_id().get_term();
        let last_sent = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let sent = Instant::now();
        let leader_end = self.tracked.as_ref().map(|t| t.store.end_offset());
        let body = encode(&Request::AppendEntries(rpc))
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if body.len() > MAX_FRAME {
            return Err(too_large(self.target, entries, body.len()));
        }
        match self.send(&body, option.hard_ttl()).await {
            Ok(Response::AppendEntries(r)) => {
                let matched = match &r {
                    Ok(AppendEntriesResponse::Success) => Some(last_sent),
                    Ok(AppendEntriesResponse::PartialSuccess(m)) => Some(*m),
                    _ => None,
                };
                if let (Some(t), Some(matched), Some(leader_end)) =
                    (&self.tracked, matched, leader_end)
                {
                    let end = matched.map_or(0, |l| t.store.end_offset_after(l.index));
                    (t.replicas).voter_acknowledged(self.target, term, end, leader_end, sent);
                }
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(mismatched()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    /// A chunk of the snapshot (openraft cuts it at `snapshot_max_chunk_size`, well inside
    /// the frame limit).
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> SnapshotRpc {
        match self
            .call(&Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::InstallSnapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(mismatched()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await {
            Ok(Response::Vote(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(mismatched()),
            Err(e) => Err(e.into_rpc()),
        }
    }
}

/// Why a forwarded write failed.
pub enum ForwardError {
    /// The leader could not be reached, or it does not lead: the write was not taken.
    Unreachable(io::Error),
    /// Sent, and refused or unanswered (it may or may not be committed).
    Failed(MetadataLogError),
    /// Refused as decided on a stale image; the leader had applied its log up to this offset.
    Stale(i64),
    /// Sent to the leader at this address, which lost the lead before it answered
    /// (`unless_leader_moves`): it may or may not be committed.
    LeaderMoved(QuorumNode),
}

/// `forwarded` (a write sent to the leader at `node`) unless `moved` comes first: the caller
/// learning that `node` no longer leads. A leader cut off from the others (its connections
/// black-holed: connected, never answered) keeps the write until FORWARD_TIMEOUT, though the
/// others elect a new leader within an election timeout or two; whoever waits on the write
/// (the catalog, which holds its lock meanwhile, so that its image follows no committed change)
/// must not wait out the old one. Kafka's NodeToControllerChannelManager likewise sends its
/// queued requests to the new controller once it learns of it.
pub async fn unless_leader_moves(
    forwarded: impl std::future::Future<Output = Result<i64, ForwardError>>,
    moved: impl std::future::Future<Output = Result<(), MetadataLogError>>,
    node: &QuorumNode,
) -> Result<i64, ForwardError> {
    tokio::select! {
        // An answer that is there is taken first: it says what became of the write.
        biased;
        answer = forwarded => answer,
        moved = moved => Err(match moved {
            Ok(()) => {
                tracing::info!(leader = %node, "the leader a metadata write was sent to lost the lead before it answered");
                ForwardError::LeaderMoved(node.clone())
            }
            Err(e) => ForwardError::Failed(e),
        }),
    }
}

/// Sends a metadata write to the leader at `node` and returns the offset of its last record
/// once the leader has committed it.
pub async fn forward(
    channel: &Arc<ClientChannel>,
    node: &QuorumNode,
    entry: MetadataEntry,
) -> Result<i64, ForwardError> {
    let what = format!("forwarding to the leader at {node}");
    send_write(channel, node, Request::Append(entry), &what).await
}

/// An observer's metadata write, sent to the voter at `node` (which forwards it to the leader):
/// the offset of its last record once committed.
pub async fn observer_append(
    channel: &Arc<ClientChannel>,
    node: &QuorumNode,
    entry: MetadataEntry,
) -> Result<i64, ForwardError> {
    let what = format!("writing through the voter at {node}");
    send_write(channel, node, Request::ObserverAppend(entry), &what).await
}

async fn send_write(
    channel: &Arc<ClientChannel>,
    node: &QuorumNode,
    request: Request,
    what: &str,
) -> Result<i64, ForwardError> {
    let failed =
        |why: String| ForwardError::Failed(MetadataLogError::Quorum(format!("{what}: {why}")));
    match TcpClient::to(channel, node)
        .call(&request, FORWARD_TIMEOUT)
        .await
    {
        Ok(Response::Append(Ok(last))) => Ok(last),
        Ok(Response::Append(Err(Refusal::Stale(end)))) => Err(ForwardError::Stale(end)),
        Ok(Response::Append(Err(Refusal::Failed(why)))) => Err(failed(why)),
        Ok(Response::Append(Err(Refusal::NotLeader))) => Err(ForwardError::Unreachable(
            io::Error::other(format!("{what}: it does not lead the metadata quorum")),
        )),
        Ok(Response::Append(Err(Refusal::Resigned))) => {
            Err(ForwardError::LeaderMoved(node.clone()))
        }
        Ok(_) => Err(failed("an answer to another request".into())),
        Err(CallError::Unreachable(e)) => Err(ForwardError::Unreachable(e)),
        // Perhaps received: not for another voter to take.
        Err(e @ (CallError::Refused(_) | CallError::Network(_) | CallError::Garbled(_))) => {
            Err(failed(e.into_io().to_string()))
        }
    }
}

impl TcpClient {
    /// A connection to the voter at `node`, made on first use (an observer's).
    pub fn to(channel: &Arc<ClientChannel>, node: &QuorumNode) -> TcpClient {
        TcpClient {
            target: 0,
            node: node.clone(),
            conn: None,
            channel: Arc::clone(channel),
            tracked: None,
        }
    }

    /// Where this client connects.
    pub fn node(&self) -> &QuorumNode {
        &self.node
    }

    /// An observer's fetch from this voter (see `Quorum::fetch_for_observer`).
    pub async fn fetch(
        &mut self,
        observer: i32,
        from_offset: i64,
    ) -> Result<ObserverFetch, MetadataLogError> {
        let node = self.node.clone();
        let failed = |why: String| MetadataLogError::Quorum(format!("fetching from {node}: {why}"));
        let request = Request::Fetch {
            observer,
            from_offset,
        };
        match self.call(&request, OBSERVER_FETCH_WAIT + FETCH_SLACK).await {
            Ok(Response::Fetch(r)) => r.map_err(failed),
            Ok(_) => Err(failed("an answer to another request".into())),
            Err(e) => Err(failed(e.into_io().to_string())),
        }
    }
}

impl TcpClient {
    /// An observer's FetchSnapshot: snapshot `id` from this voter, piece by piece.
    pub async fn fetch_snapshot(&mut self, id: (i64, i32)) -> Result<Vec<u8>, MetadataLogError> {
        use base64::Engine;
        let node = self.node.clone();
        let failed = |why: String| {
            MetadataLogError::Quorum(format!("fetching a snapshot from {node}: {why}"))
        };
        let mut bytes = Vec::new();
        loop {
            let request = Request::FetchSnapshot {
                end_offset: id.0,
                epoch: id.1,
                position: bytes.len() as u64,
            };
            let chunk = match self.call(&request, OBSERVER_FETCH_WAIT + FETCH_SLACK).await {
                Ok(Response::FetchSnapshot(r)) => r.map_err(failed)?,
                Ok(_) => return Err(failed("an answer to another request".into())),
                Err(e) => return Err(failed(e.into_io().to_string())),
            };
            let piece = base64::engine::general_purpose::STANDARD.decode(&chunk.bytes);
            let piece = piece.map_err(|e| failed(e.to_string()))?;
            if piece.is_empty() && (bytes.len() as u64) < chunk.size {
                return Err(failed("the snapshot ended early".into()));
            }
            bytes.extend_from_slice(&piece);
            if bytes.len() as u64 >= chunk.size {
                return Ok(bytes);
            }
        }
    }
}

/// Sends a broker's request to the controller at `node` (the quorum's leader) and returns its
/// answer.
pub async fn to_controller(
    channel: &Arc<ClientChannel>,
    node: &QuorumNode,
    request: ControllerRequest,
    timeout: Duration,
) -> Result<ControllerResponse, MetadataLogError> {
    let failed = |why: String| {
        MetadataLogError::Quorum(format!("request to the controller at {node}: {why}"))
    };
    let mut client = TcpClient::to(channel, node);
    match client.call(&Request::Controller(request), timeout).await {
        Ok(Response::Controller(reply)) => Ok(reply),
        Ok(_) => Err(failed("an answer to another request".into())),
        Err(e) => Err(failed(e.into_io().to_string())),
    }
}

/// Whether the voter at `node` answers within `timeout` (a resigned leader asking whether it can
/// reach a majority again: `check_quorum`). Any answer counts, so DescribeQuorum, which every
/// voter answers at once, leader or not.
pub async fn answers(channel: &Arc<ClientChannel>, node: &QuorumNode, timeout: Duration) -> bool {
    let mut client = TcpClient::to(channel, node);
    client.call(&Request::DescribeQuorum, timeout).await.is_ok()
}

/// The quorum as its leader sees it, asked of `leader` (the leader the caller knows) first, then
/// of `voters` in turn, each refusal that names a leader followed (Kafka's brokers send
/// DescribeQuorum to the active controller they know, and to the next one they learn of), with
/// Kafka's reconnect backoff between voters that failed: given up after `timeout`.
pub async fn describe_quorum(
    channel: &Arc<ClientChannel>,
    leader: Option<QuorumNode>,
    voters: &[QuorumNode],
    timeout: Duration,
) -> Result<QuorumState, MetadataLogError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = reconnect_backoff();
    let mut next = leader;
    let mut turn = voters.iter().cycle();
    let mut last_error = String::from("no voter to ask");
    let mut redirected = false;
    while let Some(target) = next.take().or_else(|| turn.next().cloned()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let mut client = TcpClient::to(channel, &target);
        match client.call(&Request::DescribeQuorum, left).await {
            Ok(Response::DescribeQuorum(Ok(state))) => return Ok(state),
            // Not the leader: ask the one it names, at once unless that is a refusal after a
            // refusal (leadership moving on): then after a pause, as after a failure.
            Ok(Response::DescribeQuorum(Err(Some(leader)))) => {
                last_error = format!("{target} does not lead; {leader} does");
                let pause = redirected || leader == target;
                next = Some(leader);
                redirected = true;
                if !pause {
                    continue;
                }
            }
            Ok(Response::DescribeQuorum(Err(None))) => {
                last_error = format!("{target} does not lead and knows no leader");
                redirected = false;
            }
            Ok(_) => {
                last_error = format!("{target}: an answer to another request");
                redirected = false;
            }
            Err(e) => {
                last_error = format!("{target}: {}", e.into_io());
                redirected = false;
            }
        }
        let pause = backoff.next().unwrap_or(RECONNECT_BACKOFF_MAX);
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
    }
    Err(MetadataLogError::Quorum(format!(
        "no leader of the metadata quorum answered in {timeout:?}: {last_error}"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::{batch_bytes, wait_on, MAX_BATCH_BYTES};
    use super::*;

    /// Kafka's reconnect backoff: 50 ms doubling up to 1 s; openraft takes it for a voter it
    /// could not reach.
    #[test]
    fn the_reconnect_backoff_doubles_up_to_its_maximum() {
        let ms: Vec<u128> = reconnect_backoff().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000]);
        let client = TcpClient::to(&Security::plaintext().channel, &QuorumNode::default());
        let raft: Vec<Duration> = client.backoff().take(7).collect();
        assert_eq!(raft, reconnect_backoff().take(7).collect::<Vec<_>>());
    }

    /// A metadata entry of one config record with a value of `bytes` bytes.
    fn big_entry(index: u64, bytes: usize) -> openraft::Entry<TypeConfig> {
        let record = crate::metadata::records::ConfigRecord {
            resource_type: 2,
            resource_name: "t".into(),
            name: "big".into(),
            value: Some("x".repeat(bytes)),
        };
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
            payload: openraft::EntryPayload::Normal(MetadataEntry {
                records: vec![crate::metadata::records::MetadataRecord::Config(record)],
                append_time_ms: 0,
                decided_on: None,
            }),
        }
    }

    fn append_entries(
        entries: Vec<openraft::Entry<TypeConfig>>,
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Default::default(),
            prev_log_id: None,
            entries,
            leader_commit: None,
        }
    }

    /// An AppendEntries over the frame limit the voter takes is not sent: openraft is told to
    /// send fewer entries (PayloadTooLarge), fewer each time, until they fit. A single entry
    /// at Kafka's batch limit (the most a write may take) fits alone; one over the frame limit
    /// (which no write makes now) fails as unreachable, so that openraft backs off instead of
    /// retrying it at once for ever.
    #[tokio::test]
    async fn an_append_entries_over_the_frame_limit_is_sent_as_fewer_entries() {
        // No voter listens there: a request that were sent would fail as unreachable.
        let node = QuorumNode {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let mut client = TcpClient::to(&Security::plaintext().channel, &node);
        let option = RPCOption::new(FORWARD_TIMEOUT);
        let mut entries: Vec<_> = (0..5).map(|i| big_entry(i, 16 << 20)).collect();
        let mut hints = Vec::new();
        loop {
            let rpc = append_entries(entries.clone());
            match client.append_entries(rpc, option.clone()).await {
                Err(RPCError::PayloadTooLarge(e)) => {
                    let hint = e.entries_hint() as usize;
                    assert!(hint < entries.len(), "{hint} of {}", entries.len());
                    hints.push(hint);
                    entries.truncate(hint);
                }
                Err(RPCError::Unreachable(_)) => break,
                other => panic!("{:?}", other.map(|_| ())),
            }
        }
        assert!(!hints.is_empty(), "a 5-entry request of 80 MiB was sent");
        let sent = encode(&Request::AppendEntries(append_entries(entries))).unwrap();
        assert!(sent.len() <= MAX_FRAME, "{} bytes", sent.len());

        let at_limit = big_entry(0, MAX_BATCH_BYTES - 200);
        let openraft::EntryPayload::Normal(e) = &at_limit.payload else {
            unreachable!()
        };
        let bytes = batch_bytes(&e.records);
        assert!(
            bytes <= MAX_BATCH_BYTES && bytes > MAX_BATCH_BYTES - 400,
            "{bytes}"
        );
        let alone = encode(&Request::AppendEntries(append_entries(vec![at_limit]))).unwrap();
        assert!(alone.len() <= MAX_FRAME / 4, "{} bytes", alone.len());

        let oversized = append_entries(vec![big_entry(0, MAX_FRAME)]);
        let sent = client.append_entries(oversized, option).await;
        assert!(matches!(sent, Err(RPCError::Unreachable(_))));
    }

    /// Voter 1 of three, the others unreachable; they all vote for it if `votes` (it leads and
    /// commits nothing, cut off from them).
    async fn voter_of_three(dir: &std::path::Path, votes: bool) -> Quorum {
        let store = super::super::log_store::QuorumLogStore::open(
            Arc::new(crate::log::storage::FileStorage),
            dir,
            false,
            0,
        )
        .unwrap();
        let network = super::super::tests::Alone { votes };
        let q = Quorum::start(1, store, network).await.unwrap();
        let voters = (1..=3).map(|id| (id, QuorumNode::default())).collect();
        q.bootstrap(voters).await.unwrap();
        q
    }

    fn sample_entry() -> MetadataEntry {
        MetadataEntry {
            records: crate::metadata::records::tests::samples()[..1].to_vec(),
            append_time_ms: 0,
            decided_on: None,
        }
    }

    /// A write forwarded to a voter that cannot commit it (a leader cut off from the others)
    /// is answered once the caller's wait is over, as an observer's write is, not waited on
    /// for ever (on the paused clock: the hour only ends a hang, the failure).
    #[tokio::test(start_paused = true)]
    async fn a_forwarded_write_is_waited_on_no_longer_than_its_caller_waits() {
        let dir = tempfile::tempdir().unwrap();
        let q = voter_of_three(dir.path(), true).await;
        let leads = q.raft.wait(Some(Duration::from_secs(3600)));
        leads
            .metrics(|m| m.current_leader == Some(1), "leads")
            .await
            .unwrap();
        for request in [
            Request::Append(sample_entry()),
            Request::ObserverAppend(sample_entry()),
        ] {
            let started = tokio::time::Instant::now();
            let answer = tokio::time::timeout(Duration::from_secs(3600), respond(&q, request));
            let answer = answer.await.expect("the voter still waits");
            assert!(
                matches!(answer, Response::Append(Err(Refusal::Failed(_)))),
                "committed by a leader alone"
            );
            assert!(
                started.elapsed() <= FORWARD_TIMEOUT,
                "waited past the caller"
            );
        }
        q.raft.shutdown().await.unwrap();
    }

    /// A write forwarded to a voter that does not lead (its sender took it for the leader: a
    /// leader that resigned, `check_quorum`) is refused as such at once, without being
    /// proposed, so that its sender sends it again once it knows the leader
    /// (`ForwardError::Unreachable`), whatever the write. Before, it failed at the sender.
    #[tokio::test(start_paused = true)]
    async fn a_write_forwarded_to_a_voter_that_does_not_lead_is_refused_unproposed() {
        let dir = tempfile::tempdir().unwrap();
        let q = voter_of_three(dir.path(), false).await;
        let end = q.store.end_offset();
        let answer = tokio::time::timeout(
            Duration::from_secs(3600),
            respond(&q, Request::Append(sample_entry())),
        );
        let answer = answer.await.expect("the voter still waits");
        assert!(
            matches!(answer, Response::Append(Err(Refusal::NotLeader))),
            "not refused as not leading"
        );
        assert_eq!(q.store.end_offset(), end, "nothing proposed");
        q.raft.shutdown().await.unwrap();
    }

    /// A voter whose answers cannot be read (undecodable, or an answer to another request)
    /// is unreachable to openraft, which backs off before calling it again, as it does a voter
    /// that refuses; a network error is not (openraft retries it at once).
    #[tokio::test]
    async fn a_voter_answering_garbage_is_backed_off_from() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wrong = encode(&Response::Fetch(Err("not a vote".into()))).unwrap();
        tokio::spawn(async move {
            for answer in [b"{not json".to_vec(), wrong] {
                let (mut s, _) = listener.accept().await?;
                read_frame(&mut s).await?;
                write_frame(&mut s, &answer).await?;
            }
            io::Result::Ok(())
        });
        let node = QuorumNode {
            host: "127.0.0.1".into(),
            port,
        };
        let mut client = TcpClient::to(&Security::plaintext().channel, &node);
        for _ in 0..2 {
            let vote = VoteRequest::new(Default::default(), None);
            let answer = client.vote(vote, RPCOption::new(FORWARD_TIMEOUT)).await;
            assert!(
                matches!(answer, Err(RPCError::Unreachable(_))),
                "{answer:?}"
            );
        }
    }

    /// One refusal line per REFUSAL_LOG_INTERVAL, telling how many were held back.
    #[test]
    fn refusals_are_logged_at_most_once_an_interval() {
        let log = LogLimiter::default();
        let t = Instant::now();
        assert_eq!(log.allow(t), Some(0));
        assert_eq!(log.allow(t + Duration::from_secs(1)), None);
        assert_eq!(log.allow(t + REFUSAL_LOG_INTERVAL / 2), None);
        assert_eq!(log.allow(t + REFUSAL_LOG_INTERVAL), Some(2));
        assert_eq!(log.allow(t + REFUSAL_LOG_INTERVAL), None);
    }

    /// A frame is read whole whatever the pieces it arrives in; one cut short, or announcing
    /// more than MAX_FRAME, is an error (and closes the connection), not a wait or a buffer.
    #[tokio::test]
    async fn frames_are_read_whole_and_bounded() {
        let body = vec![7u8; 3 * FRAME_CHUNK + 5];
        let mut wire = (body.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        let (mut writer, mut reader) = tokio::io::duplex(1000);
        let sent = wire.clone();
        tokio::spawn(async move { writer.write_all(&sent).await });
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(body));
        assert_eq!(
            read_frame(&mut reader).await.unwrap(),
            None,
            "closed between frames"
        );
        let short = &wire[..wire.len() - 1];
        let err = read_frame(&mut &short[..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(read_frame(&mut &huge[..]).await.is_err());
    }

    /// Serving stops when told (the voter's log closed): the listener closes, and so does a
    /// connection it had accepted, so that callers find the stopped voter unreachable.
    #[test]
    fn a_voter_that_stops_serving_closes_its_listener_and_connections() {
        let dir = tempfile::tempdir().unwrap();
        let log = super::super::tests::start(dir.path());
        let q = log.quorum().clone();
        let served = async move {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let port = listener.local_addr()?.port();
            let cancel = tokio_util::sync::CancellationToken::new();
            let serving = tokio::spawn(serve(listener, q, Security::plaintext(), cancel.clone()));
            let node = QuorumNode {
                host: "127.0.0.1".into(),
                port,
            };
            let channel = Arc::clone(&Security::plaintext().channel);
            let mut client = TcpClient::to(&channel, &node);
            let fetch = Request::Fetch {
                observer: 9,
                from_offset: 0,
            };
            let answered = matches!(
                client.call(&fetch, FORWARD_TIMEOUT).await,
                Ok(Response::Fetch(Ok(_)))
            );
            let mut idle = TcpStream::connect(("127.0.0.1", port)).await?;
            cancel.cancel();
            let _ = serving.await;
            // The timeout only ends a hang (the failure).
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(60), idle.read(&mut byte)).await;
            let closed = matches!(read, Ok(Ok(0) | Err(_)));
            let refused = TcpStream::connect(("127.0.0.1", port)).await.is_err();
            io::Result::Ok((answered, closed, refused))
        };
        let (answered, closed, refused) = wait_on(&log.runtime, served).unwrap().unwrap();
        assert!(answered, "served before");
        assert!(closed, "an accepted connection stayed open");
        assert!(refused, "the listener still accepts");
    }

    /// A voter with an authorizer closes a caller it refuses before reading a frame (a caller
    /// that sends nothing sees the connection end), and the caller takes such a voter for
    /// unreachable, which openraft waits on before calling again; a caller allowed is served.
    #[test]
    fn a_refused_caller_is_closed_at_once_and_finds_the_voter_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let log = super::super::tests::start(dir.path());
        let q = log.quorum().clone();
        let served = async move {
            let mut ports = Vec::new();
            for super_users in ["User:CN=voter", "User:ANONYMOUS"] {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                ports.push(listener.local_addr()?.port());
                let security = Security {
                    authorizer: Some(Authorizer::new(super_users, false)),
                    ..Security::plaintext()
                };
                let cancel = tokio_util::sync::CancellationToken::new();
                tokio::spawn(serve(listener, q.clone(), security, cancel));
            }
            let node = |port| QuorumNode {
                host: "127.0.0.1".into(),
                port,
            };
            // Refused: closed without a frame read (the timeout only ends a hang, the failure).
            let mut raw = TcpStream::connect(("127.0.0.1", ports[0])).await?;
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(60), raw.read(&mut byte)).await;
            let closed = matches!(read, Ok(Ok(0) | Err(_)));
            let channel = Arc::clone(&Security::plaintext().channel);
            let fetch = Request::Fetch {
                observer: 9,
                from_offset: 0,
            };
            let mut refused = TcpClient::to(&channel, &node(ports[0]));
            let refused = refused.call(&fetch, FORWARD_TIMEOUT).await;
            let vote = VoteRequest::new(Default::default(), None);
            let option = RPCOption::new(FORWARD_TIMEOUT);
            let mut raft = TcpClient::to(&channel, &node(ports[0]));
            let raft_vote = raft.vote(vote, option).await;
            let mut allowed = TcpClient::to(&channel, &node(ports[1]));
            let allowed = allowed.call(&fetch, FORWARD_TIMEOUT).await;
            io::Result::Ok((closed, refused, raft_vote, allowed))
        };
        let (closed, refused, raft_vote, allowed) = wait_on(&log.runtime, served).unwrap().unwrap();
        assert!(closed, "the voter waited for the refused caller's frame");
        assert!(matches!(refused, Err(CallError::Refused(_))));
        assert!(matches!(raft_vote, Err(RPCError::Unreachable(_))));
        assert!(matches!(allowed, Ok(Response::Fetch(Ok(_)))));
    }
}
