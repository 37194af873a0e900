//! A small raw Kafka client for black-box tests, plus helpers to run a broker in a temporary
//! directory and to build and read record batches.
//!
//! Every read has a timeout, so a broker that neither answers nor closes fails the test instead of
//! hanging it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);
pub const CLIENT_ID: &str = "gregor-protocol-tests";

/// What a client talks over: TCP, or TLS over TCP.
pub trait ClientStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientStream for T {}

pub struct Client {
    stream: Box<dyn ClientStream>,
    next_correlation_id: i32,
    pub client_id: Option<String>,
    pub timeout: Duration,
}

pub async fn connect(addr: SocketAddr) -> Result<Client> {
    Client::connect(addr).await
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self::over(Box::new(stream)))
    }

    /// A client over a stream already open (a TLS stream).
    pub fn over(stream: Box<dyn ClientStream>) -> Client {
        Client {
            stream,
            next_correlation_id: 1,
            client_id: Some(CLIENT_ID.to_string()),
            timeout: READ_TIMEOUT,
        }
    }

    /// Writes `bytes` as they are: no size prefix is added.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Writes one frame: a size prefix, then `body`.
    pub async fn send_frame(&mut self, body: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(body);
        self.send_raw(&out).await
    }

    /// Reads one response frame (without its size prefix). `None` when the server closed the
    /// connection (EOF or reset) before a whole frame arrived; an error on timeout.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, read_frame_inner(&mut self.stream)).await {
            Ok(r) => r,
            Err(_) => bail!("no response and no close within {timeout:?}"),
        }
    }

    /// Reads with a short timeout: `Ok(Some)` frame, `Ok(None)` closed, `Err` nothing yet.
    pub async fn try_read_frame(&mut self, wait: Duration) -> Result<Option<Bytes>> {
        match tokio::time::timeout(wait, read_frame_inner(&mut self.stream)).await {
            Ok(r) => r,
            Err(_) => bail!("nothing within {wait:?}"),
        }
    }

    /// Asserts that the server closes the connection without sending anything more.
    pub async fn expect_closed(&mut self) -> Result<()> {
        match self.read_frame().await? {
            None => Ok(()),
            Some(f) => bail!(
                "expected the connection to close, got a {}-byte frame: {:02x?}",
                f.len(),
                &f[..f.len().min(64)]
            ),
        }
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    /// Encodes a whole request frame (size prefix included) for `req` at `version`.
    pub fn encode_request<R: Request>(
        &self,
        version: i16,
        correlation_id: i32,
        req: &R,
    ) -> Result<BytesMut> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown key {}", R::KEY))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(self.client_id.clone().map(StrBytes::from_string));
        let mut out = BytesMut::new();
        out.put_i32(0);
        header
            .encode(&mut out, api.request_header_version(version))
            .context("encode request header")?;
        req.encode(&mut out, version)
            .with_context(|| format!("encode {api:?} v{version}"))?;
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// Sends a request without waiting; returns its correlation id.
    pub async fn send_request<R: Request>(&mut self, version: i16, req: &R) -> Result<i32> {
        let id = self.next_correlation_id();
        let frame = self.encode_request(version, id, req)?;
        self.send_raw(&frame).await?;
        Ok(id)
    }

    /// Reads the response to a request sent with `send_request`, checking the correlation id and
    /// that the whole frame is consumed.
    pub async fn read_response<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown key {}", R::KEY))?;
        let frame = self
            .read_frame()
            .await?
            .ok_or_else(|| anyhow!("connection closed instead of answering {api:?} v{version}"))?;
        decode_response::<R>(frame, version, correlation_id)
    }

    /// Sends `req` at `version` and returns the decoded response.
    pub async fn request<R: Request>(&mut self, version: i16, req: R) -> Result<R::Response> {
        let id = self.send_request(version, &req).await?;
        self.read_response::<R>(version, id).await
    }
}

/// Decodes a response frame (no size prefix): header at the version `R::Response` prescribes,
/// then the body; checks the correlation id and that nothing is left over.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response> {
    let hv = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, hv).context("decode response header")?;
    if header.correlation_id != correlation_id {
        bail!(
            "correlation id {} in the response, expected {correlation_id} (key {} v{version})",
            header.correlation_id,
            R::KEY
        );
    }
    let body = R::Response::decode(&mut frame, version)
        .with_context(|| format!("decode response to key {} v{version}", R::KEY))?;
    if frame.has_remaining() {
        bail!(
            "{} bytes left after the response to key {} v{version}",
            frame.remaining(),
            R::KEY
        );
    }
    Ok(body)
}

async fn read_frame_inner(stream: &mut Box<dyn ClientStream>) -> Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    if !read_exact_or_close(stream, &mut size).await? {
        return Ok(None);
    }
    let size = i32::from_be_bytes(size);
    if !(0..=512 * 1024 * 1024).contains(&size) {
        bail!("response frame size {size} is nonsensical");
    }
    let mut body = vec![0u8; size as usize];
    match read_exact_or_close(stream, &mut body).await? {
        false => Ok(None),
        true => Ok(Some(Bytes::from(body))),
    }
}

/// Fills `buf`; false if the peer closed (EOF or reset) first.
async fn read_exact_or_close(stream: &mut Box<dyn ClientStream>, buf: &mut [u8]) -> Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]).await {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        // TLS: the peer closed without close_notify.
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// A broker in a temporary directory
// ---------------------------------------------------------------------------------------------

/// A gregor broker on 127.0.0.1:0 with its data in a temporary directory.
///
/// The broker runs on a runtime of its own, so that `crash` can stop every one of its tasks at
/// once (as a killed process would) without running the clean-shutdown path, whatever the caller's
/// runtime does.
pub struct TestBroker {
    /// Where the first broker listens.
    pub addr: SocketAddr,
    /// Where each broker listens, node ids 1.. in order (`Config::brokers`).
    pub addrs: Vec<SocketAddr>,
    /// Where the admin HTTP listener listens, when `config.admin_listen` asked for one.
    pub admin_addr: Option<SocketAddr>,
    /// Each broker's listeners (name, address), node ids in order.
    pub listener_addrs: Vec<Vec<(String, SocketAddr)>>,
    pub config: gregor::Config,
    running: Option<(tokio::runtime::Runtime, gregor::RunningBroker)>,
    dir: tempfile::TempDir,
    storage: std::sync::Arc<dyn gregor::log::storage::Storage>,
}

pub async fn start_broker() -> Result<TestBroker> {
    TestBroker::start_with(|_| {}).await
}

pub async fn start_broker_with(f: impl FnOnce(&mut gregor::Config)) -> Result<TestBroker> {
    TestBroker::start_with(f).await
}

impl TestBroker {
    pub async fn start_with(f: impl FnOnce(&mut gregor::Config)) -> Result<TestBroker> {
        Self::start_on(std::sync::Arc::new(gregor::log::storage::FileStorage), f).await
    }

    /// A broker whose segment files go through `storage` (to inject storage faults).
    pub async fn start_on(
        storage: std::sync::Arc<dyn gregor::log::storage::Storage>,
        f: impl FnOnce(&mut gregor::Config),
    ) -> Result<TestBroker> {
        Self::start_in(tempfile::tempdir()?, storage, f).await
    }

    /// A broker on a data directory made beforehand (e.g. unpacked from a fixture).
    pub async fn start_in(
        dir: tempfile::TempDir,
        storage: std::sync::Arc<dyn gregor::log::storage::Storage>,
        f: impl FnOnce(&mut gregor::Config),
    ) -> Result<TestBroker> {
        let mut config = gregor::Config::for_tests(dir.path().to_path_buf());
        f(&mut config);
        Self::launch_in(dir, storage, config).await
    }

    /// A broker configured as from a server.properties with these settings (Kafka's names), on
    /// 127.0.0.1:0 unless they name `listeners` (use port 0 there too).
    pub async fn start_with_properties(props: &[(&str, &str)]) -> Result<TestBroker> {
        Self::start_with_properties_and(props, |_| {}).await
    }

    /// `start_with_properties`, then `f` changes the configuration (e.g. `brokers`).
    pub async fn start_with_properties_and(
        props: &[(&str, &str)],
        f: impl FnOnce(&mut gregor::Config),
    ) -> Result<TestBroker> {
        let dir = tempfile::tempdir()?;
        let settings: std::collections::BTreeMap<String, String> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let src = gregor::config::Sources {
            listen: (!settings.contains_key("listeners")).then(|| "127.0.0.1:0".to_string()),
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let mut config = gregor::Config::from_settings(settings, &src)?;
        f(&mut config);
        let storage = std::sync::Arc::new(gregor::log::storage::FileStorage);
        Self::launch_in(dir, storage, config).await
    }

    async fn launch_in(
        dir: tempfile::TempDir,
        storage: std::sync::Arc<dyn gregor::log::storage::Storage>,
        config: gregor::Config,
    ) -> Result<TestBroker> {
        let (rt, running) = launch(std::sync::Arc::clone(&storage), config.clone()).await?;
        Ok(TestBroker {
            addr: running.local_addr,
            addrs: running.local_addrs.clone(),
            admin_addr: running.admin_addr,
            listener_addrs: running.listener_addrs.clone(),
            config,
            running: Some((rt, running)),
            dir,
            storage,
        })
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The running broker, in this process (e.g. to move its clock); after a restore, the
    /// restored one.
    pub fn broker(&self) -> std::sync::Arc<gregor::broker::Broker> {
        let (_, running) = self.running.as_ref().expect("the broker is running");
        running.broker().expect("the broker is not restarting")
    }

    pub async fn client(&self) -> Result<Client> {
        Client::connect(self.addr).await
    }

    /// Where the first broker's listener `name` listens.
    pub fn listener_addr(&self, name: &str) -> Result<SocketAddr> {
        self.listener_addrs
            .first()
            .and_then(|l| l.iter().find(|(n, _)| n == name))
            .map(|(_, a)| *a)
            .ok_or_else(|| anyhow!("no listener {name}"))
    }

    /// A client of the first broker's listener `name` (plain TCP: no TLS).
    pub async fn client_on(&self, name: &str) -> Result<Client> {
        Client::connect(self.listener_addr(name)?).await
    }

    /// A client of broker `node_id` (node ids count from node.id, 1 by default).
    pub async fn client_of(&self, node_id: i32) -> Result<Client> {
        let first = self.config.node_id;
        let addr = usize::try_from(node_id - first)
            .ok()
            .and_then(|i| self.addrs.get(i))
            .ok_or_else(|| anyhow!("no broker {node_id}"))?;
        Client::connect(*addr).await
    }

    /// One request to the admin HTTP listener (HTTP/1.1, no body): the status code and the body.
    pub async fn admin(&self, method: &str, path: &str) -> Result<(u16, String)> {
        self.admin_with(method, path, "").await
    }

    /// One request to the admin HTTP listener with a JSON body; the status code and the JSON
    /// answer.
    pub async fn admin_json(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, answer) = self.admin_with(method, path, &body).await?;
        let json = serde_json::from_str(&answer).with_context(|| format!("not JSON: {answer}"))?;
        Ok((status, json))
    }

    /// One request to the admin HTTP listener with `body` (empty: none), with the bearer token
    /// of `config.admin_token` when it has one.
    pub async fn admin_with(&self, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
        let token = self.config.admin_token.clone();
        self.admin_as(token.as_deref(), method, path, body).await
    }

    /// `admin_with` with the given bearer token, or none.
    pub async fn admin_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String)> {
        let addr = self
            .admin_addr
            .ok_or_else(|| anyhow!("no admin listener"))?;
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("no HTTP answer: {answer:?}"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("no status in {head:?}"))?;
        Ok((status, body.to_string()))
    }

    /// Clean shutdown (flush, snapshots, clean-shutdown marker).
    pub async fn shutdown(&mut self) -> Result<()> {
        let Some((rt, running)) = self.running.take() else {
            return Ok(());
        };
        rt.spawn(running.shutdown()).await??;
        drop_runtime(rt).await;
        Ok(())
    }

    /// Stops the broker as a crash would: every task is dropped, nothing is flushed or closed.
    /// Bytes already written reach the OS, as they would when a process is killed.
    pub async fn crash(&mut self) {
        if let Some((rt, running)) = self.running.take() {
            drop(running);
            drop_runtime(rt).await;
            self.await_fixed_ports_released().await;
        }
    }

    /// Waits until the ports a start binds again (those configured, not 0) can be bound: a
    /// killed process's listeners go with it, but in this process the metadata quorum's
    /// runtime, which serves the controller listener, is shut down in the background (see
    /// `QuorumRuntime`), so its listener can outlive `crash` by a moment (a restart failed
    /// "Address already in use", 2 runs in 12 under load).
    async fn await_fixed_ports_released(&self) {
        let c = &self.config;
        let fixed = c
            .listeners
            .iter()
            .map(|l| (l.host.as_str(), l.port))
            .chain(
                c.quorum
                    .iter()
                    .flat_map(|q| q.listen.iter().map(|(h, p)| (h.as_str(), *p))),
            )
            .filter(|&(_, port)| port != 0)
            .map(|(host, port)| {
                let host = if host.is_empty() { "127.0.0.1" } else { host };
                format!("{host}:{port}")
            })
            .collect::<Vec<_>>();
        for addr in fixed {
            let Ok(addr) = addr.parse::<SocketAddr>() else {
                continue;
            };
            // Bound (with SO_REUSEADDR, as the broker binds) only while no socket listens there.
            let free = || {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.set_reuseaddr(true)?;
                socket.bind(addr)
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while free().is_err() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Starts again on the same data directory (on a new port).
    pub async fn start_again(&mut self) -> Result<()> {
        if self.running.is_some() {
            bail!("broker is still running");
        }
        let (rt, running) =
            launch(std::sync::Arc::clone(&self.storage), self.config.clone()).await?;
        self.addr = running.local_addr;
        self.addrs = running.local_addrs.clone();
        self.listener_addrs = running.listener_addrs.clone();
        self.admin_addr = running.admin_addr;
        self.running = Some((rt, running));
        Ok(())
    }

    pub async fn restart_clean(&mut self) -> Result<()> {
        self.shutdown().await?;
        self.start_again().await
    }

    pub async fn restart_after_crash(&mut self) -> Result<()> {
        self.crash().await;
        self.start_again().await
    }

    /// `restart_after_crash` or `restart_clean`, then a new client.
    pub async fn restart(&mut self, crash: bool) -> Result<Client> {
        match crash {
            true => self.restart_after_crash().await?,
            false => self.restart_clean().await?,
        }
        self.client().await
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some((rt, running)) = self.running.take() {
            drop(running);
            rt.shutdown_background();
        }
    }
}

async fn launch(
    storage: std::sync::Arc<dyn gregor::log::storage::Storage>,
    config: gregor::Config,
) -> Result<(tokio::runtime::Runtime, gregor::RunningBroker)> {
    // Threads named after the node (the first, where one process runs several brokers), so that
    // a panic, a log line or a thread listing of a multi-node test says which node it came from.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("node-{}", config.node_id))
        .enable_all()
        .build()?;
    let running = rt.spawn(gregor::start_on(storage, config)).await?;
    match running {
        Ok(r) => Ok((rt, r)),
        Err(e) => {
            drop_runtime(rt).await;
            Err(anyhow!("broker failed to start: {e}"))
        }
    }
}

/// A runtime may not be dropped inside another runtime's async context.
async fn drop_runtime(rt: tokio::runtime::Runtime) {
    let _ = tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(10))).await;
}

// ---------------------------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------------------------

pub const ALL_CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: i64,
}

impl Rec {
    pub fn value(v: impl AsRef<[u8]>) -> Rec {
        Rec {
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_ref())),
            headers: Vec::new(),
            timestamp: now_ms(),
        }
    }

    pub fn kv(k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) -> Rec {
        Rec {
            key: Some(Bytes::copy_from_slice(k.as_ref())),
            ..Rec::value(v)
        }
    }

    pub fn with_timestamp(mut self, ts: i64) -> Rec {
        self.timestamp = ts;
        self
    }

    pub fn with_header(mut self, k: &str, v: Option<&[u8]>) -> Rec {
        self.headers
            .push((k.to_string(), v.map(Bytes::copy_from_slice)));
        self
    }
}

/// Producer fields of a batch: (producer id, epoch, base sequence).
pub type ProducerFields = (i64, i16, i32);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One v2 batch (base offset 0) holding `recs`, built with kafka-protocol's RecordBatchEncoder.
pub fn build_batch(
    compression: Compression,
    recs: &[Rec],
    producer: Option<ProducerFields>,
) -> Bytes {
    assert!(!recs.is_empty(), "a batch needs at least one record");
    let (pid, epoch, base_seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = IndexMap::new();
            for (k, v) in &r.headers {
                headers.insert(StrBytes::from_string(k.clone()), v.clone());
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence is constant and
                // derives the base sequence from the first record; -1 stays -1 for
                // non-idempotent batches.
                sequence: base_seq.wrapping_add(i as i32),
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    let bytes = buf.freeze();
    assert_eq!(
        batch_count(&bytes),
        1,
        "the encoder split the records into several batches"
    );
    bytes
}

/// A batch of uncompressed values.
pub fn values_batch(values: &[&str]) -> Bytes {
    let recs: Vec<Rec> = values.iter().map(Rec::value).collect();
    build_batch(Compression::None, &recs, None)
}

pub fn idempotent_batch(values: &[&str], pid: i64, epoch: i16, base_seq: i32) -> Bytes {
    let recs: Vec<Rec> = values.iter().map(Rec::value).collect();
    build_batch(Compression::None, &recs, Some((pid, epoch, base_seq)))
}

/// Offsets of the v2 batch header fields (record-batch-v2.md §1).
pub mod header {
    pub const BASE_OFFSET: usize = 0;
    pub const LENGTH: usize = 8;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
    pub const LEN: usize = 61;
}

/// Recomputes the CRC-32C of a single batch after its covered bytes were edited.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[header::ATTRIBUTES..]);
    batch[header::CRC..header::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

pub fn put_i32_at(batch: &mut [u8], at: usize, v: i32) {
    batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub fn put_i64_at(batch: &mut [u8], at: usize, v: i64) {
    batch[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

pub fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Header fields of one stored/fetched batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub record_count: i32,
    pub size: usize,
}

impl BatchInfo {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

/// The whole batches in `records`, as a client sees them: a partial trailing batch (Kafka may
/// cut the last batch at the byte limit) is ignored.
pub fn batches(records: &[u8]) -> Vec<BatchInfo> {
    let mut out = Vec::new();
    let mut at = 0;
    while records.len() - at >= header::LEN {
        let b = &records[at..];
        let length = i32_at(b, header::LENGTH);
        if length < 0 {
            break;
        }
        let size = 12 + length as usize;
        if size > b.len() {
            break;
        }
        out.push(BatchInfo {
            base_offset: i64_at(b, header::BASE_OFFSET),
            last_offset_delta: i32_at(b, header::LAST_OFFSET_DELTA),
            record_count: i32_at(b, header::RECORD_COUNT),
            size,
        });
        at += size;
    }
    out
}

pub fn batch_count(records: &[u8]) -> usize {
    batches(records).len()
}

/// A record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Fetched {
    /// The produced form of this record, for comparisons.
    pub fn as_rec(&self) -> Rec {
        Rec {
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
            timestamp: self.timestamp,
        }
    }
}

/// Decodes every whole batch in `records` (CRC-checked by the decoder) into records, as a
/// consumer sees them: in a LogAppendTime batch every record carries the batch's MaxTimestamp.
pub fn decode_records(records: &Bytes) -> Result<Vec<Fetched>> {
    let mut out = Vec::new();
    let mut at = 0;
    for info in batches(records) {
        let raw = records.slice(at..at + info.size);
        at += info.size;
        let attributes = i16::from_be_bytes([raw[header::ATTRIBUTES], raw[header::ATTRIBUTES + 1]]);
        let append_time = (attributes & 0x08 != 0).then(|| i64_at(&raw, header::MAX_TIMESTAMP));
        let mut buf = raw.clone();
        let set = RecordBatchDecoder::decode(&mut buf)
            .with_context(|| format!("decode fetched batch at offset {}", info.base_offset))?;
        for r in set.records {
            out.push(Fetched {
                offset: r.offset,
                timestamp: append_time.unwrap_or(r.timestamp),
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    Ok(out)
}

pub fn bytes_of(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Pseudo-random bytes that do not compress, from a fixed seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
