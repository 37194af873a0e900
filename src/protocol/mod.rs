//! Kafka request handling: one frame in, at most one response frame out.
//!
//! `handle_frame` peeks the API key and version itself (kafka-protocol's header helper panics on
//! short frames), applies Kafka's version rules (ApiVersions answers any version; every other API
//! closes the connection on a version it does not serve), decodes with the vendored
//! kafka-protocol crate (whose pre-allocations are bounded by the frame), and routes to one module
//! per API. The API table in `apis.rs` drives both this routing and the ApiVersions response.

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_share_group_offsets;
pub mod api_versions;
pub mod apis;
pub mod authorized;
pub mod cluster;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_share_group_offsets;
pub mod delete_topics;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_share_group_offsets;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod emulation;
pub mod end_txn;
pub mod error_codes;
pub mod error_response;
pub mod errors;
pub mod fetch;
pub mod fetch_session;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
#[rustfmt::skip]
mod kafka_releases;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod named;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod request_time;
pub mod response;
pub mod sasl;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod scram_credentials;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod streams_group_describe;
pub mod streams_group_heartbeat;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod update_features;
mod watched;
pub mod write_txn_markers;

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::broker::Broker;
use crate::security::{Listener, ANONYMOUS};
use error_codes::{ErrorCodes, ThrottleTime};
use response::{ResponseFrame, Splices, SplicingBuf};

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this frame (size prefix included).
    Frame(ResponseFrame),
    /// Send nothing (acks=0 produce).
    Nothing,
    /// Close the connection, as Kafka does for unparseable or unsupported requests.
    Close(String),
    /// Send this frame, then close the connection (a failed SASL authentication).
    FrameThenClose(ResponseFrame, String),
    /// Answer nothing more on this connection until the client closes it (an injected fault).
    BlackHole,
}

/// The connection a request came on: which broker and listener, who the client is and where
/// it is in authenticating.
#[derive(Debug)]
pub struct Session {
    /// The broker the client connected to (`--brokers`: each has its own listeners).
    pub node_id: i32,
    pub peer: std::net::SocketAddr,
    pub listener: Arc<Listener>,
    /// `User:ANONYMOUS` until authenticated (a plaintext listener stays so), `User:<name>` after
    /// SASL, `User:<subject DN>` with a TLS client certificate.
    pub principal: Arc<str>,
    pub sasl: sasl::SaslState,
    /// Numbers this process's connections (the request journal's `connection_id`).
    pub connection_id: u64,
    /// The client software's name and version from ApiVersions v3+ (KIP-511), kept only while
    /// the request journal records.
    pub client_software: Option<(String, String)>,
    /// KIP-368: the SASL session's end (ms, the broker clock); a request other than a
    /// re-authentication's SaslHandshake at or after it closes the connection.
    pub session_expires_ms: Option<i64>,
    /// The mechanism of the completed SASL exchange: a re-authentication must use it.
    pub reauthenticate_with: Option<crate::security::SaslMechanism>,
    /// A re-authentication is under way (the principal must not change).
    pub reauthenticating: bool,
    /// When the last re-authentication began (ms): Kafka begins at most one a second.
    pub reauthentication_began_ms: Option<i64>,
    /// A client over its quota: nothing more is read from it before the broker clock's
    /// monotonic reading gets here (KIP-219; quotas are measured on that clock).
    pub throttled_until: Option<i64>,
}

impl Session {
    pub fn new(
        node_id: i32,
        peer: std::net::SocketAddr,
        listener: Arc<Listener>,
        principal: Arc<str>,
    ) -> Session {
        let sasl = if listener.sasl.is_some() {
            sasl::SaslState::Initial
        } else {
            sasl::SaslState::Complete
        };
        static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Session {
            node_id,
            peer,
            listener,
            principal,
            sasl,
            connection_id: CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            client_software: None,
            session_expires_ms: None,
            reauthenticate_with: None,
            reauthenticating: false,
            reauthentication_began_ms: None,
            throttled_until: None,
        }
    }

    /// A PLAINTEXT connection (tests and fuzzing).
    pub fn plaintext(node_id: i32, peer: std::net::SocketAddr) -> Session {
        let config = crate::config::ListenerConfig::plaintext("127.0.0.1", 0);
        let listener = Arc::new(Listener {
            config,
            sasl: None,
            tls: None,
        });
        Session::new(node_id, peer, listener, Arc::from(ANONYMOUS))
    }

    pub fn authenticated(&self) -> bool {
        matches!(self.sasl, sasl::SaslState::Complete)
    }
}

/// What a handler knows about the request it serves.
pub struct RequestContext<'a> {
    pub broker: &'a Arc<Broker>,
    pub api: ApiKey,
    /// The broker the request was sent to (leadership and coordinators are answered for it).
    pub node_id: i32,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    /// The peer's address as Kafka reports it ("/127.0.0.1").
    pub client_host: String,
    /// The peer's address as ACL hosts name it ("127.0.0.1").
    pub host: String,
    /// The listener the request came in on (Metadata answers its endpoints).
    pub listener: Arc<Listener>,
    pub principal: Arc<str>,
    /// The connection's number (`Session::connection_id`): share sessions end with it.
    pub connection_id: u64,
    /// While the request journal records: the error codes of the response (see `respond`).
    pub answered: Option<parking_lot::Mutex<Vec<i16>>>,
    /// Set by a handler whose client went over its quota: the connection reads nothing more
    /// for this long after the response (KIP-219; see `server::client_quotas`).
    pub throttle_ms: std::sync::atomic::AtomicI32,
    /// The time the request keeps the broker busy, and its request quota's verdict once asked
    /// (`request_throttle`).
    pub request_time: request_time::RequestTime,
}

impl<'a> RequestContext<'a> {
    /// A request the broker makes of its own handlers for an operator (the web console): no
    /// connection, the given principal, answered as broker `node_id` on its first listener.
    pub fn internal(
        broker: &'a Arc<Broker>,
        api: ApiKey,
        api_version: i16,
        node_id: i32,
        client_id: &str,
        principal: &str,
    ) -> RequestContext<'a> {
        let (host, port) = (broker.endpoints.first())
            .and_then(|(_, e)| e.first())
            .map_or(("127.0.0.1", 0), |e| (e.host.as_str(), e.port));
        RequestContext {
            broker,
            api,
            node_id,
            api_version,
            correlation_id: 0,
            // No connection: numbered 0, which no connection has (they count from 1).
            connection_id: 0,
            client_id: client_id.to_string(),
            client_host: "/127.0.0.1".into(),
            host: "127.0.0.1".into(),
            listener: Arc::new(Listener {
                config: crate::config::ListenerConfig::plaintext(host, port),
                sasl: None,
                tls: None,
            }),
            principal: Arc::from(principal),
            answered: None,
            throttle_ms: Default::default(),
            request_time: Default::default(),
        }
    }
}

impl RequestContext<'_> {
    /// The principal's name, as quotas know users ("User:alice" → "alice").
    pub fn user(&self) -> &str {
        self.principal
            .split_once(':')
            .map_or(&*self.principal, |(_, name)| name)
    }

    /// This request's client as `quota` counts it.
    pub fn quota_client(
        &self,
        quota: crate::server::client_quotas::QuotaType,
    ) -> crate::server::client_quotas::QuotaClient<'_> {
        crate::server::client_quotas::QuotaClient {
            quota,
            user: self.user(),
            client_id: &self.client_id,
        }
    }

    /// Records `bytes` against the client's `quota` and returns the throttle time (0 within it),
    /// which the connection also honours.
    pub fn record_quota(
        &self,
        quota: crate::server::client_quotas::QuotaType,
        bytes: usize,
    ) -> i32 {
        let image = self.broker.catalog.image();
        let now = self.broker.clock.now_ms();
        let quotas = &self.broker.client_quotas;
        let ms = quotas.record(&image, self.quota_client(quota), bytes as f64, now);
        self.throttle(ms);
        ms
    }

    /// Counts the time this request has kept the broker busy so far against its client's
    /// `request_percentage` quota, once (the first call decides; the response carries it), and
    /// returns the throttle time: 0 within the quota, without one, or for a request exempt from
    /// it (Kafka's sendResponseExemptThrottle: the brokers' and controllers' own requests).
    pub fn request_throttle(&self) -> i32 {
        *self.request_time.throttle.get_or_init(|| {
            let image = self.broker.catalog.image();
            if image.client_quotas.is_empty() || request_time::exempt(self.api) {
                return 0;
            }
            let percent_seconds = self.request_time.thread.nanos() as f64 * 100.0 / 1e9;
            let client = self.quota_client(crate::server::client_quotas::QuotaType::Request);
            let now = self.broker.clock.now_ms();
            let ms = (self.broker.client_quotas).record(&image, client, percent_seconds, now);
            self.throttle(ms);
            ms
        })
    }

    /// Keeps this request out of the request quota (a follower's Fetch).
    pub fn exempt_from_request_quota(&self) {
        let _ = self.request_time.throttle.set(0);
    }

    /// Mutes the connection for at least `ms` after the response (see `throttle_ms`).
    pub fn throttle(&self, ms: i32) {
        self.throttle_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The throttle time the response carries: the longest any quota asked for.
    pub fn throttle_time_ms(&self) -> i32 {
        self.throttle_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A mutation of `permits` partitions (created, added or deleted) under the client's
    /// `controller_mutation_rate` (KIP-599), strict from version `strict_since` of the request
    /// (ControllerMutationQuotaManager.newQuotaFor): THROTTLING_QUOTA_EXCEEDED when refused.
    pub fn controller_mutation(
        &self,
        permits: usize,
        strict_since: i16,
    ) -> Result<(), (i16, String)> {
        use crate::server::client_quotas::{Mutation, QuotaType};
        let image = self.broker.catalog.image();
        let now = self.broker.clock.now_ms();
        let strict = self.api_version >= strict_since;
        let client = self.quota_client(QuotaType::ControllerMutation);
        match self
            .broker
            .client_quotas
            .mutate(&image, client, permits, strict, now)
        {
            Mutation::Allowed { throttle_ms } => {
                self.throttle(throttle_ms);
                Ok(())
            }
            Mutation::Refused { throttle_ms } => {
                self.throttle(throttle_ms);
                let message = "The throttling quota has been exceeded.".to_string();
                Err((errors::THROTTLING_QUOTA_EXCEEDED, message))
            }
        }
    }
}

/// Whether share groups are served: the `share.version` feature is finalized at 1 or more (Kafka
/// 4.4 answers the share APIs with UNSUPPORTED_VERSION otherwise).
pub fn share_groups_enabled(ctx: &RequestContext<'_>) -> bool {
    let image = ctx.broker.catalog.image();
    let level = crate::metadata::features::finalized(&image, crate::share::SHARE_VERSION_FEATURE);
    crate::share::share_groups_enabled(level)
}

/// Handles one request frame (without its size prefix).
pub async fn handle_frame(broker: &Arc<Broker>, session: &mut Session, mut frame: Bytes) -> Reply {
    // The authentication gate: until a SASL connection is authenticated, only the exchange.
    if !session.authenticated() {
        if let sasl::Gate::Reply(reply) = sasl::gate(broker, session, &frame) {
            return reply;
        }
    } else if let Some(reply) = sasl::reauthentication_or_expiry(broker, session, &frame) {
        return reply;
    }
    let peer = session.peer.ip();
    // api_key, api_version and correlation_id: the least any request header has.
    if frame.len() < 8 {
        return Reply::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Reply::Close(format!("unknown API key {key}"));
    };
    let emulated = broker.config.emulate_kafka_version;
    let supported = apis::served(api, emulated).is_some_and(|r| r.contains(version));
    if api == ApiKey::ApiVersions && !supported {
        // KIP-511: answer in the v0 format with our range, so the client can retry; the body is
        // not parsed because its format is unknown.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        return encode(
            correlation_id,
            0,
            0,
            &api_versions::unsupported_version_response(emulated),
            Splices::default(),
        );
    }
    if !supported || (api == ApiKey::Produce && version < apis::PRODUCE_MIN_SERVED) {
        return Reply::Close(format!("{api:?} v{version} is not supported"));
    }
    let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Reply::Close(format!("bad {api:?} request header: {e}")),
    };
    let mut ctx = RequestContext {
        broker,
        api,
        node_id: session.node_id,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{peer}"),
        host: crate::security::authorizer::host_address(peer),
        listener: Arc::clone(&session.listener),
        principal: Arc::clone(&session.principal),
        connection_id: session.connection_id,
        answered: None,
        throttle_ms: Default::default(),
        request_time: Default::default(),
    };
    let started = std::time::Instant::now();
    let body = frame.clone();
    // The test control plane (fault rules, the request journal): one atomic load when off.
    let (reply, writes) = crate::coordinator::commit::collect(async {
        if broker.control.watching() {
            watched::serve(&mut ctx, session, api, frame).await
        } else {
            match dispatch(&ctx, api, frame).await {
                Ok(reply) => reply,
                Err(e) => Reply::Close(format!("{api:?} v{version}: {e}")),
            }
        }
    })
    .await;
    let reply = match writes.is_empty() {
        true => reply,
        false => {
            after_commit(
                broker,
                &writes,
                reply,
                (api, version, header.correlation_id),
                body,
            )
            .await
        }
    };
    broker.metrics.request(api, started.elapsed());
    // A request answered without `respond` (acks=0, a closed connection) still counts.
    ctx.request_throttle();
    let throttle_ms = ctx.throttle_ms.into_inner();
    if throttle_ms > 0 {
        session.throttled_until = Some(
            broker
                .clock
                .monotonic_ms()
                .saturating_add(i64::from(throttle_ms)),
        );
    }
    reply
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("cannot decode request: {0}")]
    Decode(String),
    #[error("cannot encode response: {0}")]
    Encode(String),
    #[error("the handler failed: {0}")]
    Handler(String),
}

fn decode<T: Decodable>(frame: &mut Bytes, version: i16) -> Result<T, ProtocolError> {
    T::decode(frame, version).map_err(|e| ProtocolError::Decode(e.to_string()))
}

/// A request whose coordinator writes must be committed before it is answered (see
/// `coordinator::commit`): its reply once they are, else the request answered with the error
/// (NOT_COORDINATOR: the leader moved; COORDINATOR_NOT_AVAILABLE: not committed in time), or the
/// connection closed for an API whose error response is not built here (the client retries
/// on a new connection, after finding the coordinator again).
async fn after_commit(
    broker: &Arc<Broker>,
    writes: &[crate::coordinator::commit::CommitPoint],
    reply: Reply,
    (api, version, correlation_id): (ApiKey, i16, i32),
    body: Bytes,
) -> Reply {
    use crate::coordinator::commit;
    let timeout = Duration::from_millis(commit::COMMIT_TIMEOUT_MS);
    let code = commit::committed(&broker.catalog, &broker.purgatory, writes, timeout).await;
    if code == errors::NONE {
        return reply;
    }
    error_response::build(api, version, correlation_id, body, code).unwrap_or_else(|| {
        Reply::Close(format!(
            "{api:?} v{version}: its coordinator write was not committed (error {code})"
        ))
    })
}

/// Routes a decoded request. The match has no wildcard arm: a new API key in the crate breaks the
/// build until someone decides what gregor does with it.
async fn dispatch(
    ctx: &RequestContext<'_>,
    api: ApiKey,
    frame: Bytes,
) -> Result<Reply, ProtocolError> {
    (ctx.request_time.thread)
        .measure(dispatch_untimed(ctx, api, frame))
        .await
}

async fn dispatch_untimed(
    ctx: &RequestContext<'_>,
    api: ApiKey,
    mut frame: Bytes,
) -> Result<Reply, ProtocolError> {
    let v = ctx.api_version;
    let f = &mut frame;
    Ok(match api {
        ApiKey::ApiVersions => respond(ctx, api_versions::handle(ctx, decode(f, v)?)),
        ApiKey::Metadata => respond(ctx, metadata::handle(ctx, decode(f, v)?)),
        ApiKey::Produce => produce::serve(ctx, decode(f, v)?).await,
        ApiKey::Fetch => {
            let (resp, records) = fetch::handle(ctx, decode(f, v)?).await;
            respond_spliced(ctx, resp, records)
        }
        ApiKey::ListOffsets => respond(ctx, list_offsets::handle(ctx, decode(f, v)?)),
        ApiKey::CreateTopics => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, create_topics::handle).await?,
            )
        }
        // A fenced transaction's markers, and producer ids from the metadata quorum: off the
        // threads serving connections.
        ApiKey::InitProducerId => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, init_producer_id::handle).await?,
            )
        }
        ApiKey::FindCoordinator => respond(ctx, find_coordinator::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeConfigs => respond(ctx, describe_configs::handle(ctx, decode(f, v)?)),
        ApiKey::JoinGroup => respond(ctx, join_group::handle(ctx, decode(f, v)?).await),
        ApiKey::SyncGroup => respond(ctx, sync_group::handle(ctx, decode(f, v)?).await),
        ApiKey::Heartbeat => respond(ctx, heartbeat::handle(ctx, decode(f, v)?)),
        ApiKey::LeaveGroup => respond(ctx, leave_group::handle(ctx, decode(f, v)?)),
        ApiKey::OffsetCommit => respond(ctx, offset_commit::handle(ctx, decode(f, v)?)),
        ApiKey::OffsetFetch => respond(ctx, offset_fetch::handle(ctx, decode(f, v)?)),
        ApiKey::TxnOffsetCommit => {
            respond(ctx, txn_offset_commit::handle(ctx, decode(f, v)?).await)
        }
        ApiKey::ListGroups => respond(ctx, list_groups::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeGroups => respond(ctx, describe_groups::handle(ctx, decode(f, v)?)),
        ApiKey::DeleteGroups => respond(ctx, delete_groups::handle(ctx, decode(f, v)?)),
        ApiKey::OffsetDelete => respond(ctx, offset_delete::handle(ctx, decode(f, v)?)),
        ApiKey::ConsumerGroupHeartbeat => {
            respond(ctx, consumer_group_heartbeat::handle(ctx, decode(f, v)?))
        }
        ApiKey::ConsumerGroupDescribe => {
            respond(ctx, consumer_group_describe::handle(ctx, decode(f, v)?))
        }
        ApiKey::DeleteTopics => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, delete_topics::handle).await?,
            )
        }
        ApiKey::DeleteRecords => respond(ctx, delete_records::handle(ctx, decode(f, v)?)),
        ApiKey::OffsetForLeaderEpoch => {
            respond(ctx, offset_for_leader_epoch::handle(ctx, decode(f, v)?))
        }
        ApiKey::CreatePartitions => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, create_partitions::handle).await?,
            )
        }
        ApiKey::AlterConfigs => respond(ctx, alter_configs::handle(ctx, decode(f, v)?)),
        ApiKey::IncrementalAlterConfigs => {
            respond(ctx, incremental_alter_configs::handle(ctx, decode(f, v)?))
        }
        ApiKey::DescribeCluster => respond(ctx, describe_cluster::handle(ctx, decode(f, v)?)),
        ApiKey::ElectLeaders => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, elect_leaders::handle).await?,
            )
        }
        ApiKey::AlterPartitionReassignments => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, alter_partition_reassignments::handle).await?,
            )
        }
        ApiKey::ListPartitionReassignments => respond(
            ctx,
            list_partition_reassignments::handle(ctx, decode(f, v)?),
        ),
        ApiKey::DescribeLogDirs => respond(ctx, describe_log_dirs::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeProducers => respond(ctx, describe_producers::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeTopicPartitions => {
            respond(ctx, describe_topic_partitions::handle(ctx, decode(f, v)?))
        }
        ApiKey::SaslHandshake => respond(ctx, sasl_handshake::handle(ctx, decode(f, v)?)),
        ApiKey::SaslAuthenticate => respond(ctx, sasl_authenticate::handle(ctx, decode(f, v)?)),
        ApiKey::AddPartitionsToTxn => {
            respond(ctx, add_partitions_to_txn::handle(ctx, decode(f, v)?))
        }
        ApiKey::AddOffsetsToTxn => respond(ctx, add_offsets_to_txn::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeClientQuotas => {
            respond(ctx, describe_client_quotas::handle(ctx, decode(f, v)?))
        }
        // Appends to the metadata log (with fsync): off the threads serving connections.
        ApiKey::AlterClientQuotas => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, alter_client_quotas::handle).await?,
            )
        }
        ApiKey::DescribeUserScramCredentials => {
            respond(ctx, scram_credentials::describe(ctx, decode(f, v)?))
        }
        // Appends to the metadata log (with fsync): off the threads serving connections.
        ApiKey::AlterUserScramCredentials => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, scram_credentials::alter).await?,
            )
        }
        // Markers go to every partition of the transaction: off the threads serving connections.
        ApiKey::EndTxn => {
            let req = decode(f, v)?;
            respond(ctx, off_request_threads(ctx, req, end_txn::handle).await?)
        }
        ApiKey::DescribeTransactions => {
            respond(ctx, describe_transactions::handle(ctx, decode(f, v)?))
        }
        ApiKey::ListTransactions => respond(ctx, list_transactions::handle(ctx, decode(f, v)?)),
        ApiKey::WriteTxnMarkers => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, write_txn_markers::handle).await?,
            )
        }
        ApiKey::UpdateFeatures => respond(ctx, update_features::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeQuorum => {
            // A broker asks the quorum's leader, waiting for its answer: off the request threads.
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, describe_quorum::handle).await?,
            )
        }
        ApiKey::DescribeAcls => respond(ctx, acls::describe(ctx, decode(f, v)?)?),
        // Append to the metadata log (with fsync): off the threads serving connections.
        ApiKey::CreateAcls => {
            let req = decode(f, v)?;
            respond(ctx, off_request_threads(ctx, req, acls::create).await??)
        }
        ApiKey::ShareGroupHeartbeat => {
            respond(ctx, share_group_heartbeat::handle(ctx, decode(f, v)?))
        }
        ApiKey::ShareGroupDescribe => {
            respond(ctx, share_group_describe::handle(ctx, decode(f, v)?))
        }
        ApiKey::ShareFetch => respond(ctx, share_fetch::handle(ctx, decode(f, v)?).await),
        ApiKey::ShareAcknowledge => respond(ctx, share_acknowledge::handle(ctx, decode(f, v)?)),
        ApiKey::DescribeShareGroupOffsets => respond(
            ctx,
            describe_share_group_offsets::handle(ctx, decode(f, v)?),
        ),
        ApiKey::AlterShareGroupOffsets => {
            respond(ctx, alter_share_group_offsets::handle(ctx, decode(f, v)?))
        }
        ApiKey::DeleteShareGroupOffsets => {
            respond(ctx, delete_share_group_offsets::handle(ctx, decode(f, v)?))
        }
        // Internal topics are created on the request thread, as KafkaApis does after the
        // coordinator answered.
        ApiKey::StreamsGroupHeartbeat => {
            let req = decode(f, v)?;
            respond(
                ctx,
                off_request_threads(ctx, req, streams_group_heartbeat::handle).await?,
            )
        }
        ApiKey::StreamsGroupDescribe => {
            respond(ctx, streams_group_describe::handle(ctx, decode(f, v)?))
        }
        ApiKey::DeleteAcls => {
            let req = decode(f, v)?;
            respond(ctx, off_request_threads(ctx, req, acls::delete).await??)
        }
        ApiKey::AlterReplicaLogDirs
        | ApiKey::CreateDelegationToken
        | ApiKey::RenewDelegationToken
        | ApiKey::ExpireDelegationToken
        | ApiKey::DescribeDelegationToken
        | ApiKey::Vote
        | ApiKey::BeginQuorumEpoch
        | ApiKey::EndQuorumEpoch
        | ApiKey::AlterPartition
        | ApiKey::Envelope
        | ApiKey::FetchSnapshot
        | ApiKey::BrokerRegistration
        | ApiKey::BrokerHeartbeat
        | ApiKey::UnregisterBroker
        | ApiKey::AllocateProducerIds
        | ApiKey::ControllerRegistration
        | ApiKey::GetTelemetrySubscriptions
        | ApiKey::PushTelemetry
        | ApiKey::AssignReplicasToDirs
        | ApiKey::ListConfigResources
        | ApiKey::AddRaftVoter
        | ApiKey::RemoveRaftVoter
        | ApiKey::UpdateRaftVoter
        | ApiKey::InitializeShareGroupState
        | ApiKey::ReadShareGroupState
        | ApiKey::WriteShareGroupState
        | ApiKey::DeleteShareGroupState
        | ApiKey::ReadShareGroupStateSummary => {
            // Not in the API table, so handle_frame never gets here; close if it ever does.
            Reply::Close(format!("{api:?} is not implemented"))
        }
    })
}

/// Runs a handler whose work is creating or removing partition directories and files (thousands
/// of them for a large topic), or writing transaction markers to many partitions, on the
/// blocking pool, so that the threads serving every other
/// connection never wait for it; Kafka's request handlers leave that work to its log manager.
/// The answer still comes once the work is done, as before.
async fn off_request_threads<Req, Resp>(
    ctx: &RequestContext<'_>,
    req: Req,
    handler: fn(&RequestContext<'_>, Req) -> Resp,
) -> Result<Resp, ProtocolError>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    let broker = Arc::clone(ctx.broker);
    let (api, node_id, api_version) = (ctx.api, ctx.node_id, ctx.api_version);
    let correlation_id = ctx.correlation_id;
    let (client_id, client_host) = (ctx.client_id.clone(), ctx.client_host.clone());
    let host = ctx.host.clone();
    let (listener, principal) = (Arc::clone(&ctx.listener), Arc::clone(&ctx.principal));
    let connection_id = ctx.connection_id;
    let (resp, throttle_ms, writes) = tokio::task::spawn_blocking(move || {
        let ctx = RequestContext {
            broker: &broker,
            api,
            node_id,
            api_version,
            correlation_id,
            client_id,
            client_host,
            host,
            listener,
            principal,
            connection_id,
            answered: None,
            throttle_ms: Default::default(),
            request_time: Default::default(),
        };
        let (resp, writes) = crate::coordinator::commit::collect_sync(|| handler(&ctx, req));
        (resp, ctx.throttle_time_ms(), writes)
    })
    .await
    .map_err(|e| ProtocolError::Handler(e.to_string()))?;
    // The request's coordinator writes, made on the blocking thread, are waited for as its own.
    writes
        .into_iter()
        .for_each(crate::coordinator::commit::record);
    // A controller mutation quota's throttle mutes the client's connection too.
    ctx.throttle(throttle_ms);
    Ok(resp)
}

/// A topic named by id (when `by_id`: Produce v13, Fetch v13+) or by name, or the error code
/// Kafka gives for an unknown one.
fn resolve_topic(
    ctx: &RequestContext<'_>,
    name: &str,
    id: uuid::Uuid,
    by_id: bool,
) -> Result<std::sync::Arc<crate::metadata::Topic>, i16> {
    let catalog = &ctx.broker.catalog;
    if by_id {
        catalog.get_by_id(id).ok_or(errors::UNKNOWN_TOPIC_ID)
    } else {
        catalog.get(name).ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)
    }
}

/// `resolve_topic` for a request that needs `op` on the topic, in KafkaApis' order: an unknown
/// topic id is UNKNOWN_TOPIC_ID, then a topic the session may not `op` (existing or not) is
/// TOPIC_AUTHORIZATION_FAILED, then an unknown name UNKNOWN_TOPIC_OR_PARTITION.
fn resolve_authorized_topic(
    ctx: &RequestContext<'_>,
    name: &str,
    id: uuid::Uuid,
    by_id: bool,
    op: crate::security::authorizer::AclOperation,
) -> Result<std::sync::Arc<crate::metadata::Topic>, i16> {
    let topic = resolve_topic(ctx, name, id, by_id);
    let name = match &topic {
        Ok(t) => t.name.as_str(),
        Err(_) if by_id => return topic,
        Err(_) => name,
    };
    if !ctx.authorize_topic(op, name) {
        return Err(errors::TOPIC_AUTHORIZATION_FAILED);
    }
    topic
}

/// Encodes a response with the header version its type prescribes for the request's version.
///
/// The response is taken by value: the request quota's throttle is set on it in place. (With a
/// reference it was cloned for that, and every response type's deep `Clone` was linked into the
/// binary for a rare path: README, "A small binary".)
fn respond<T: Encodable + HeaderVersion + ErrorCodes + ThrottleTime>(
    ctx: &RequestContext<'_>,
    body: T,
) -> Reply {
    respond_spliced(ctx, body, Splices::default())
}

/// `respond`, with the records fields in `records` sent from their files (see `response`).
/// Its error codes are counted for the metrics, and noted for the request journal while it
/// records.
fn respond_spliced<T: Encodable + HeaderVersion + ErrorCodes + ThrottleTime>(
    ctx: &RequestContext<'_>,
    mut body: T,
    records: Splices,
) -> Reply {
    ctx.broker.metrics.response_errors(ctx.api, &body);
    if let Some(answered) = &ctx.answered {
        *answered.lock() = error_codes::distinct(&body);
    }
    // The request quota's throttle, when longer than the one the handler set (Kafka answers the
    // longer of a request's throttles).
    let request_throttle = ctx.request_throttle();
    if body
        .throttle_time_ms()
        .is_some_and(|t| t < request_throttle)
    {
        body.set_throttle_time_ms(request_throttle);
    }
    encode(
        ctx.correlation_id,
        T::header_version(ctx.api_version),
        ctx.api_version,
        &body,
        records,
    )
}

fn encode<T: Encodable>(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &T,
    records: Splices,
) -> Reply {
    let size = body.compute_size(version).unwrap_or(256) + 16;
    let mut out = SplicingBuf::new(size, records);
    out.put_i32(0); // size, set by finish
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut out, header_version)
        .and_then(|_| body.encode(&mut out, version))
        .map_err(|e| e.to_string())
        .and_then(|_| out.finish());
    match encoded {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => {
            // A response we cannot encode is a bug of ours; the client gets a closed connection.
            tracing::error!(error = %e, version, "failed to encode a response");
            Reply::Close(ProtocolError::Encode(e).to_string())
        }
    }
}
