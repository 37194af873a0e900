//! A connection from this broker to another broker's inter-broker listener
//! (`inter.broker.listener.name`; Kafka's NetworkClient of the replica fetchers and of the
//! transaction marker channel): ApiVersions first, then requests one at a time, each answered
//! within `replica.socket.timeout.ms`. The one way brokers connect to each other: the replica
//! fetchers (Fetch) and the transaction coordinator's exchanges with partitions led elsewhere
//! (WriteTxnMarkers, AddPartitionsToTxn) all open a `BrokerConnection`.
//!
//! The listener's security is this broker's `security::channel::ClientChannel` (its own
//! settings of the inter-broker listener, as Kafka's brokers connect): TLS on SSL and SASL_SSL,
//! and on SASL_PLAINTEXT and SASL_SSL a SASL login after ApiVersions, as Kafka's
//! SaslClientAuthenticator runs it: SaslHandshake v1 with `sasl.mechanism.inter.broker.protocol`,
//! then SaslAuthenticate requests until the mechanism is done. A refused login fails the
//! connection (its caller logs the broker's message and tries again later). A session the other
//! broker limits (KIP-368's session_lifetime_ms) is renewed on the live connection before it
//! ends, at 85% of its lifetime (Kafka's client picks 85-95%).

use std::io;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::protocol::errors;
use crate::security::channel::{ClientStream, SaslCredentials};

/// A connection to one broker's inter-broker listener.
pub struct BrokerConnection {
    stream: ClientStream,
    /// Which broker, for messages.
    target: i32,
    next_correlation_id: i32,
    client_id: StrBytes,
    /// What the other broker serves (its ApiVersions answer).
    versions: Vec<ApiVersion>,
    /// Answers larger than this close the connection (socket.request.max.bytes).
    max_frame: usize,
    timeout: Duration,
    /// The SASL login, to renew the session with.
    sasl: Option<SaslCredentials>,
    /// When the SASL session must be renewed (KIP-368), if the other broker limits it.
    reauthenticate_at: Option<Instant>,
}

impl BrokerConnection {
    /// Connects to broker `target`'s endpoint on the inter-broker listener, learns the versions
    /// it serves (ApiVersions) and logs in on a SASL listener; each step within `timeout`.
    pub async fn open(
        broker: &Broker,
        target: i32,
        timeout: Duration,
        client_id: String,
    ) -> io::Result<BrokerConnection> {
        let channel = (broker.replicas.as_ref())
            .and_then(|r| r.channel.as_ref())
            .ok_or_else(|| io::Error::other("this process is no broker of a cluster"))?;
        let image = broker.catalog.image();
        let listener = channel.listener();
        let endpoint = image
            .brokers
            .get(&target)
            .and_then(|b| (b.endpoints.iter()).find(|e| e.name == listener))
            .ok_or_else(|| {
                io::Error::other(format!(
                    "broker {target} has no endpoint on the inter-broker listener {listener}"
                ))
            })?;
        if endpoint.security_protocol != channel.protocol().id() {
            return Err(io::Error::other(format!(
                "broker {target}'s inter-broker listener {listener} is not {} as this broker's is",
                channel.protocol().name()
            )));
        }
        let stream = channel
            .connect(&endpoint.host, endpoint.port, timeout)
            .await?;
        let mut conn = BrokerConnection {
            stream,
            target,
            next_correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
            versions: Vec::new(),
            max_frame: broker.config.socket_request_max_bytes,
            timeout,
            sasl: channel.sasl().cloned(),
            reauthenticate_at: None,
        };
        let versions: ApiVersionsResponse =
            conn.exchange(2, &ApiVersionsRequest::default()).await?;
        conn.versions = versions.api_keys;
        conn.authenticate().await?;
        Ok(conn)
    }

    /// The SASL login (SaslClientAuthenticator): SaslHandshake v1, then SaslAuthenticate until
    /// the mechanism is done; nothing on a listener without SASL.
    async fn authenticate(&mut self) -> io::Result<()> {
        let Some(sasl) = self.sasl.clone() else {
            return Ok(());
        };
        let target = self.target;
        let refused = |why: String| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "SASL {} login as {} to broker {target} failed: {why}",
                    sasl.mechanism.name(),
                    sasl.username
                ),
            )
        };
        // v1 handshakes carry the tokens in SaslAuthenticate requests (KIP-152); every broker
        // since Kafka 1.0 serves both.
        let (Some(handshake_version), Some(version)) = (
            self.version(ApiKey::SaslHandshake, 1..=1),
            self.version(ApiKey::SaslAuthenticate, 0..=2),
        ) else {
            return Err(refused(
                "it serves no SaslHandshake v1 and SaslAuthenticate".into(),
            ));
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
        let answer = self.exchange(handshake_version, &handshake).await?;
        if answer.error_code != errors::NONE {
            let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "the mechanism is not enabled there (error {}; enabled: {})",
                answer.error_code,
                enabled.join(", ")
            )));
        }
        let mut client = sasl.client().map_err(&refused)?;
        let mut token = client.evaluate(&[]).map_err(&refused)?.unwrap_or_default();
        let started = Instant::now();
        loop {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
            let answer = self.exchange(version, &request).await?;
            if answer.error_code != errors::NONE {
                let message = answer.error_message.as_deref().unwrap_or("no message");
                return Err(refused(format!("error {}: {message}", answer.error_code)));
            }
            match client.evaluate(&answer.auth_bytes).map_err(&refused)? {
                Some(next) => token = next,
                None => {
                    let lifetime = u64::try_from(answer.session_lifetime_ms).unwrap_or(0);
                    self.reauthenticate_at = (lifetime > 0)
                        .then(|| started + Duration::from_millis(lifetime / 100 * 85));
                    return Ok(());
                }
            }
        }
    }
    /// The highest version of `api` both sides speak within `ours`, if any.
    pub fn version(&self, api: ApiKey, ours: RangeInclusive<i16>) -> Option<i16> {
        let theirs = self.versions.iter().find(|k| k.api_key == api as i16)?;
        let v = theirs.max_version.min(*ours.end());
        (v >= theirs.min_version && ours.contains(&v)).then_some(v)
    }

    /// Sends `req` at `version` and reads its answer (within the connection's timeout), the SASL
    /// session renewed first when it is due.
    pub async fn request<R: Request>(&mut self, version: i16, req: &R) -> io::Result<R::Response> {
        if self
            .reauthenticate_at
            .is_some_and(|at| Instant::now() >= at)
        {
            self.authenticate().await?;
        }
        self.exchange(version, req).await
    }

    /// Sends `req` at `version` and reads its answer.
    async fn exchange<R: Request>(&mut self, version: i16, req: &R) -> io::Result<R::Response> {
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
            // TLS holds written records until flushed.
            self.stream.flush().await?;
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
