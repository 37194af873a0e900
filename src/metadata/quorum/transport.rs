//! The quorum's RPCs between processes, on the controller listener (`controller.listener.names`).
//!
//! Own framing, not Kafka's KRaft RPCs: Kafka's quorum is pull-based (followers Fetch from the
//! leader; Vote, BeginQuorumEpoch, EndQuorumEpoch) while openraft pushes (AppendEntries, Vote),
//! so the two do not interoperate and a Kafka controller cannot join a gregor quorum. A frame is
//! a 4-byte big-endian length and a JSON message (openraft's own serde forms; a metadata record
//! as its Kafka encoding in base64). One request at a time per connection, answered in order.
//! Besides Raft's two RPCs, a node that does not lead forwards a metadata write to the leader
//! (Kafka's brokers forward their admin writes to the active controller likewise), and an
//! observer (a broker-only process) fetches the committed log and writes through a voter.
//!
//! Secured as the controller listener's settings say (`Security`): over TLS when its protocol
//! (`listener.security.protocol.map`) is SSL, each side verifying the other as on the
//! inter-broker listener (`security::channel`, `security::tls`; `ssl.client.auth=required` for
//! mutual TLS); with an authorizer, every request needs CLUSTER_ACTION on the cluster for the
//! caller's principal (its certificate's subject, else User:ANONYMOUS), as Kafka's controllers
//! authorize the Raft and broker RPCs: the voters' and brokers' principals belong in
//! `super.users`. A refused caller's connection is closed and logged. SASL_PLAINTEXT and
//! SASL_SSL are not served here: the framing is gregor's own, with no SaslHandshake to carry an
//! exchange (start-up stops with a message saying so).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{
    MetadataEntry, NodeId, ObserverFetch, Quorum, QuorumNode, TypeConfig, OBSERVER_FETCH_WAIT,
};
use crate::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::metadata::metadata_log::MetadataLogError;
use crate::security::authorizer::{self, AclOperation, Authorizer, Requester, ResourceType};
use crate::security::channel::{ClientChannel, ClientStream};
use crate::security::tls::TlsSettings;

/// The largest frame taken: a full AppendEntries of large metadata batches fits, a length
/// from a stranger does not make us allocate gigabytes.
const MAX_FRAME: usize = 64 << 20;
/// How long a TLS handshake (either side) and a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded write waits for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than its wait at the voter an observer's fetch may take to be answered.
const FETCH_SLACK: Duration = Duration::from_secs(5);

#[derive(serde::Serialize, serde::Deserialize)]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
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
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// The offset of the write's last record once committed, or why not.
    Append(Result<i64, Refusal>),
    Controller(ControllerResponse),
    Fetch(Result<ObserverFetch, String>),
}

/// Why the leader did not commit a forwarded write.
#[derive(serde::Serialize, serde::Deserialize)]
enum Refusal {
    /// Decided on a stale image (`MetadataLogError::StaleImage`): the leader's applied end.
    Stale(i64),
    Failed(String),
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
    let mut body = vec![0; len];
    s.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_frame(
    s: &mut (impl AsyncWrite + Unpin),
    value: &impl serde::Serialize,
) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(&body).await?;
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

/// Answers the quorum's RPCs on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, quorum: Quorum, security: Security) {
    let security = Arc::new(security);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                continue;
            }
        };
        let q = quorum.clone();
        let security = Arc::clone(&security);
        tokio::spawn(async move {
            if let Err(e) = accept(stream, peer, q, &security).await {
                tracing::debug!(%peer, error = %e, "controller connection closed");
            }
        });
    }
}

/// One accepted connection: TLS's handshake first on an SSL listener, then the requests.
async fn accept(stream: TcpStream, peer: SocketAddr, q: Quorum, s: &Security) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let Some(tls) = &s.tls else {
        return answer(stream, peer, crate::security::ANONYMOUS, q, s).await;
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
        .inspect_err(
            |e| tracing::info!(%peer, error = %e, "controller listener TLS handshake failed"),
        )?;
    let certificates = stream.get_ref().1.peer_certificates();
    let Some(principal) = crate::security::tls::principal(certificates, &tls.principal_mapper)
    else {
        tracing::info!(%peer, "no ssl.principal.mapping.rules rule applies to the controller listener client's certificate");
        return Ok(());
    };
    answer(stream, peer, &principal, q, s).await
}

/// One connection's requests: a bad frame closes it, and so does a caller not allowed.
async fn answer(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    peer: SocketAddr,
    principal: &str,
    q: Quorum,
    s: &Security,
) -> io::Result<()> {
    while let Some(frame) = read_frame(&mut stream).await? {
        // Checked per request, so that an ACL removed meanwhile takes effect.
        if !s.allows(&q, principal, peer) {
            tracing::info!(%peer, principal, "refused on the controller listener: CLUSTER_ACTION on the cluster is needed (super.users)");
            return Ok(());
        }
        let request: Request = serde_json::from_slice(&frame).map_err(io::Error::other)?;
        let response = match request {
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(q.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(q.raft.vote(rpc).await),
            Request::Append(entry) => {
                Response::Append(q.append_here(entry).await.map_err(Refusal::from))
            }
            Request::Controller(r) => Response::Controller(q.answer_controller_request(r).await),
            Request::Fetch {
                observer,
                from_offset,
            } => {
                let fetched = q.fetch_for_observer(observer, from_offset, OBSERVER_FETCH_WAIT);
                Response::Fetch(fetched.await.map_err(|e| e.to_string()))
            }
            Request::ObserverAppend(entry) => {
                let append = tokio::time::timeout(
                    FORWARD_TIMEOUT,
                    q.append(entry.records, entry.decided_on, entry.append_time_ms),
                );
                let appended = append.await.unwrap_or_else(|_| {
                    Err(MetadataLogError::Quorum(
                        "the write was not committed in time".into(),
                    ))
                });
                Response::Append(appended.map_err(Refusal::from))
            }
        };
        write_frame(&mut stream, &response).await?;
    }
    Ok(())
}

/// openraft's connections to the other voters, over the controller listener.
pub struct TcpNetwork(pub Arc<ClientChannel>);

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpClient;

    async fn new_client(&mut self, target: NodeId, node: &QuorumNode) -> TcpClient {
        TcpClient {
            target,
            node: node.clone(),
            conn: None,
            channel: Arc::clone(&self.0),
        }
    }
}

/// A connection to one voter, made on first use and again after any failure.
pub struct TcpClient {
    target: NodeId,
    node: QuorumNode,
    conn: Option<ClientStream>,
    channel: Arc<ClientChannel>,
}

/// How a call failed: the node could not be reached, or the exchange broke half-way.
enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, QuorumNode, E> {
        match self {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl TcpClient {
    async fn call(&mut self, request: &Request, ttl: Duration) -> Result<Response, CallError> {
        let result = tokio::time::timeout(ttl, self.exchange(request)).await;
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

    async fn exchange(&mut self, request: &Request) -> Result<Response, CallError> {
        if self.conn.is_none() {
            let (host, port) = (self.node.host.as_str(), self.node.port);
            let stream = (self.channel.connect(host, port, CONNECT_TIMEOUT).await)
                .map_err(CallError::Unreachable)?;
            self.conn = Some(stream);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(CallError::Unreachable(io::Error::other("not connected")));
        };
        write_frame(conn, request)
            .await
            .map_err(CallError::Network)?;
        let frame = read_frame(conn).await.map_err(CallError::Network)?;
        let frame = frame.ok_or_else(|| CallError::Network(io::ErrorKind::UnexpectedEof.into()))?;
        serde_json::from_slice(&frame).map_err(|e| CallError::Network(io::Error::other(e)))
    }
}

/// openraft's answer to a snapshot sent to a voter.
pub type SnapshotRpc = Result<
    InstallSnapshotResponse<NodeId>,
    RPCError<NodeId, QuorumNode, RaftError<NodeId, InstallSnapshotError>>,
>;

/// The quorum keeps its whole log and never sends snapshots (see `raft_config`): every network
/// answers one so. (The error is openraft's type, large as it is.)
#[allow(clippy::result_large_err)]
pub fn no_snapshots() -> SnapshotRpc {
    Err(RPCError::Unreachable(Unreachable::new(&io::Error::other(
        "snapshots of the metadata quorum are not supported yet",
    ))))
}

fn mismatched<E: std::error::Error>() -> RPCError<NodeId, QuorumNode, E> {
    RPCError::Network(NetworkError::new(&io::Error::other(
        "an answer to another request",
    )))
}

impl RaftNetwork<TypeConfig> for TcpClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
    {
        let request = Request::AppendEntries(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(Response::AppendEntries(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(mismatched()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> SnapshotRpc {
        no_snapshots()
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
    /// The leader could not be reached: the write was not sent.
    Unreachable(io::Error),
    /// Sent, and refused or unanswered (it may or may not be committed).
    Failed(MetadataLogError),
    /// Refused as decided on a stale image; the leader had applied its log up to this offset.
    Stale(i64),
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
        Ok(_) => Err(failed("an answer to another request".into())),
        Err(CallError::Unreachable(e)) => Err(ForwardError::Unreachable(e)),
        Err(CallError::Network(e)) => Err(failed(e.to_string())),
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
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(failed(e.to_string())),
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
        Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(failed(e.to_string())),
    }
}
