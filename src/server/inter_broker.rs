//! A connection from this broker to another broker's inter-broker listener
//! (`inter.broker.listener.name`; Kafka's NetworkClient of the replica fetchers and of the
//! transaction marker channel): ApiVersions first, then requests one at a time, each answered
//! within `replica.socket.timeout.ms`. Used by the replica fetchers (Fetch) and the transaction
//! coordinator's markers to partitions led elsewhere (WriteTxnMarkers).
//!
//! PLAINTEXT only yet: a broker whose inter-broker endpoint uses TLS or SASL cannot be reached.

use std::io;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker::Broker;
use crate::config::{ReplicationSettings, SecurityProtocol};

/// A connection to one broker's inter-broker listener.
pub struct BrokerConnection {
    stream: TcpStream,
    next_correlation_id: i32,
    client_id: StrBytes,
    /// What the other broker serves (its ApiVersions answer).
    versions: Vec<ApiVersion>,
    /// Answers larger than this close the connection (socket.request.max.bytes).
    max_frame: usize,
    timeout: Duration,
}

impl BrokerConnection {
    /// Connects to broker `target`'s endpoint on the inter-broker listener and learns the
    /// versions it serves (ApiVersions).
    pub async fn open(
        broker: &Broker,
        target: i32,
        settings: &ReplicationSettings,
        client_id: String,
    ) -> io::Result<BrokerConnection> {
        let image = broker.catalog.image();
        let endpoint = image
            .brokers
            .get(&target)
            .and_then(|b| (b.endpoints.iter()).find(|e| e.name == settings.inter_broker_listener))
            .ok_or_else(|| {
                io::Error::other(format!(
                    "broker {target} has no endpoint on the inter-broker listener {}",
                    settings.inter_broker_listener
                ))
            })?;
        if endpoint.security_protocol != SecurityProtocol::Plaintext.id() {
            return Err(io::Error::other(format!(
                "the inter-broker listener {} is not PLAINTEXT: brokers speak PLAINTEXT to each other only yet",
                settings.inter_broker_listener
            )));
        }
        let timeout = Duration::from_millis(settings.socket_timeout_ms);
        let addr = (endpoint.host.as_str(), endpoint.port);
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut conn = BrokerConnection {
            stream,
            next_correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
            versions: Vec::new(),
            max_frame: broker.config.socket_request_max_bytes,
            timeout,
        };
        let versions: ApiVersionsResponse = conn.request(2, &ApiVersionsRequest::default()).await?;
        conn.versions = versions.api_keys;
        Ok(conn)
    }

    /// The highest version of `api` both sides speak within `ours`, if any.
    pub fn version(&self, api: ApiKey, ours: RangeInclusive<i16>) -> Option<i16> {
        let theirs = self.versions.iter().find(|k| k.api_key == api as i16)?;
        let v = theirs.max_version.min(*ours.end());
        (v >= theirs.min_version && ours.contains(&v)).then_some(v)
    }

    /// Sends `req` at `version` and reads its answer (within replica.socket.timeout.ms).
    pub async fn request<R: Request>(&mut self, version: i16, req: &R) -> io::Result<R::Response> {
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
