//! One client connection: size-prefixed frames in, responses out in request order.
//!
//! Requests are handled one after another, as Kafka does (it mutes a channel until its response
//! is sent), so responses are in order by construction. A client over its quota is muted after
//! its response for the throttle time (`client_quotas`). Pipelined requests already buffered are
//! handled back to back and their responses written together, which saves syscalls for producers
//! with several requests in flight. A frame whose size prefix is negative or above
//! socket.request.max.bytes closes the connection before anything of that size is allocated: the
//! buffer grows only as bytes actually arrive. Each frame holds its claimed size of the
//! queued.max.request.bytes pool (`memory_pool`) from its size prefix until it was handled.
//!
//! The stream is TCP or TLS (`Transport`). Fetch's file ranges go from the page cache to a TCP
//! socket with sendfile; under TLS they are read and written through the TLS stream. Until a
//! SASL connection is authenticated, frames are bounded by sasl.server.max.receive.size and the
//! whole exchange by connections.max.idle.ms from the connection's start (a client that never
//! finishes, or trickles bytes, is closed).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::memory_pool::{Allocation, MemoryPool};
use crate::broker::Broker;
use crate::log::segment::FileRange;
use crate::protocol::response::Chunk;
use crate::protocol::{handle_frame, Reply, Session};

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// The TCP socket itself when bytes written to it reach the client as they are (sendfile);
    /// `None` under TLS.
    fn socket(&self) -> Option<&TcpStream>;
}

impl Transport for TcpStream {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

/// Most bytes reserved ahead of arrival for one frame.
const READ_RESERVE: usize = 256 * 1024;
/// Queued response bytes that force a write even while more requests are buffered.
const WRITE_BATCH: usize = 256 * 1024;
/// Fetch may long-poll: flush earlier responses before starting one.
const FETCH_KEY: i16 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
}

/// Splits the next whole frame (without its size prefix) off `buf`, if one is there. Public for
/// the fuzz targets, which feed recorded byte streams through the same framing.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(size) = size_prefix(buf) else {
        return Ok(None);
    };
    let size = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() < 4 + size {
        buf.reserve((4 + size - buf.len()).min(READ_RESERVE));
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// The size prefix of the first frame in `buf`, once its four bytes are there.
fn size_prefix(buf: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(buf.get(..4)?.try_into().ok()?))
}

/// The pool's bytes for a frame of `size`. Responses already queued go out first when the pool
/// is exhausted, so waiting for memory delays no answer.
async fn allocate<S: Transport>(
    pool: &Arc<MemoryPool>,
    size: usize,
    stream: &mut S,
    out: &mut Vec<Chunk>,
    idle: Duration,
) -> io::Result<Allocation> {
    if let Some(a) = pool.try_allocate(size) {
        return Ok(a);
    }
    flush(stream, out, idle).await?;
    within(idle, pool.allocate(size)).await
}

/// Debugging aid that seeds the fuzz corpus with real client traffic: when GREGOR_RECORD_FRAMES
/// names a directory, each connection appends the request frames it reads (size prefixes
/// included, so a file is exactly the client's byte stream) to a file of its own there.
fn frame_recorder(peer: SocketAddr) -> Option<std::fs::File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::var_os("GREGOR_RECORD_FRAMES")?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{}-{}-{n}.bin", std::process::id(), peer.port());
    std::fs::File::create(std::path::Path::new(&dir).join(name)).ok()
}

fn record_frame(recorder: &mut Option<std::fs::File>, frame: &[u8]) {
    use std::io::Write;
    if let Some(f) = recorder {
        let size = (frame.len() as i32).to_be_bytes();
        if f.write_all(&size).and_then(|_| f.write_all(frame)).is_err() {
            *recorder = None;
        }
    }
}

fn api_key_of(frame: &[u8]) -> Option<i16> {
    (frame.len() >= 2).then(|| i16::from_be_bytes([frame[0], frame[1]]))
}

/// The largest frame the session may send now: sasl.server.max.receive.size until a SASL
/// connection is authenticated (SaslServerAuthenticator's receive), socket.request.max.bytes
/// after.
fn frame_limit(session: &Session, broker: &Broker) -> usize {
    match (&session.listener.sasl, session.authenticated()) {
        (Some(sasl), false) => sasl.max_receive_size,
        _ => broker.config.socket_request_max_bytes,
    }
}

/// Ends the share sessions a connection opened when it closes, whichever way it closes (Kafka
/// 4.1+ ties a share session to its connection), so what their members held is released.
struct ShareSessionsOf {
    broker: Arc<Broker>,
    connection_id: u64,
}

impl Drop for ShareSessionsOf {
    fn drop(&mut self) {
        let (b, now) = (&self.broker, self.broker.clock.now_ms());
        b.shares
            .connection_closed(&b.catalog, self.connection_id, now);
    }
}

pub async fn serve<S: Transport>(
    mut stream: S,
    mut session: Session,
    broker: Arc<Broker>,
    pool: Arc<MemoryPool>,
) {
    let peer: SocketAddr = session.peer;
    let _share_sessions = ShareSessionsOf {
        broker: Arc::clone(&broker),
        connection_id: session.connection_id,
    };
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    // Authentication must end by then.
    let auth_deadline = tokio::time::Instant::now() + idle;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out: Vec<Chunk> = Vec::new();
    let mut queued = 0usize;
    let mut recorder = frame_recorder(peer);
    // What the first frame in `buf` holds of queued.max.request.bytes, from the moment its size
    // is known until its request was handled (see `memory_pool`).
    let mut allocation: Option<Allocation> = None;
    loop {
        loop {
            let max = frame_limit(&session, &broker);
            let frame = match next_frame(&mut buf, max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection");
                    let _ = flush(&mut stream, &mut out, idle).await;
                    return;
                }
            };
            record_frame(&mut recorder, &frame);
            let _allocation = match allocation.take() {
                Some(a) => a,
                // It arrived whole within one read: it takes its bytes now, as every receive
                // does in Kafka.
                None => match allocate(&pool, frame.len(), &mut stream, &mut out, idle).await {
                    Ok(a) => a,
                    Err(_) => return,
                },
            };
            if api_key_of(&frame) == Some(FETCH_KEY) && !out.is_empty() {
                if flush(&mut stream, &mut out, idle).await.is_err() {
                    return;
                }
                queued = 0;
            }
            match handle_frame(&broker, &mut session, frame).await {
                Reply::Frame(resp) => {
                    queued += resp.len();
                    out.extend(resp.into_chunks());
                }
                Reply::Nothing => {}
                Reply::FrameThenClose(resp, reason) => {
                    out.extend(resp.into_chunks());
                    tracing::info!(%peer, %reason, "closing connection");
                    let _ = flush(&mut stream, &mut out, idle).await;
                    return;
                }
                Reply::Close(reason) => {
                    tracing::info!(%peer, %reason, "closing connection");
                    let _ = flush(&mut stream, &mut out, idle).await;
                    return;
                }
                Reply::BlackHole => {
                    // Earlier answers go out; from here the client's bytes are read (so its
                    // writes do not block) and nothing is answered until it closes.
                    if flush(&mut stream, &mut out, idle).await.is_ok() {
                        discard_until_closed(&mut stream).await;
                    }
                    return;
                }
            }
            if let Some(until) = session.throttled_until.take() {
                // A client over its quota (KIP-219): its response goes out now, then nothing
                // more of its requests is read or handled until the throttle time has passed.
                if flush(&mut stream, &mut out, idle).await.is_err() {
                    return;
                }
                queued = 0;
                broker.clock.sleep_until(until).await;
            }
            if queued >= WRITE_BATCH {
                if flush(&mut stream, &mut out, idle).await.is_err() {
                    return;
                }
                queued = 0;
            }
        }
        if !out.is_empty() {
            if flush(&mut stream, &mut out, idle).await.is_err() {
                return;
            }
            queued = 0;
        }
        if let (None, Some(size)) = (&allocation, size_prefix(&buf)) {
            // A frame is partly here (its size was checked by next_frame): no more of it is read
            // until the pool holds its size.
            let size = usize::try_from(size).unwrap_or(broker.config.socket_request_max_bytes);
            match allocate(&pool, size, &mut stream, &mut out, idle).await {
                Ok(a) => allocation = Some(a),
                Err(_) => return,
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        // Every response is written by now: waiting here is idle time (connections.max.idle.ms),
        // and before authentication it counts towards the exchange's deadline.
        let wait = if session.authenticated() {
            idle
        } else {
            auth_deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, stream.read_buf(&mut buf)).await {
            Err(_) if !session.authenticated() => {
                tracing::info!(%peer, listener = %session.listener.name(), "closing a connection that did not authenticate within connections.max.idle.ms");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "closing an idle connection (connections.max.idle.ms)");
                return;
            }
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                return;
            }
        }
    }
}

async fn discard_until_closed<S: Transport>(stream: &mut S) {
    let mut sink = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

/// Writes every queued response, in order. A client that takes nothing for `idle`
/// (connections.max.idle.ms) gets an error, so the connection closes: Kafka's Selector counts
/// only socket activity, and a channel whose response waits on a full socket has none. This
/// also lets go of the segment files the queued responses hold open.
async fn flush<S: Transport>(
    stream: &mut S,
    out: &mut Vec<Chunk>,
    idle: Duration,
) -> io::Result<()> {
    let mut rest = &out[..];
    while !rest.is_empty() {
        // Bytes in memory up to the next file range go out in one writev (pipelined producers'
        // acks together); file ranges go straight from the page cache.
        let mem = rest
            .iter()
            .position(|c| matches!(c, Chunk::File(_)))
            .unwrap_or(rest.len());
        if mem > 0 {
            write_all_vectored(stream, &rest[..mem], idle).await?;
            rest = &rest[mem..];
        } else if let Some(Chunk::File(range)) = rest.first() {
            match stream.socket() {
                Some(socket) => send_file(socket, range, idle).await?,
                // TLS: the bytes go through the stream, which encrypts them.
                None => {
                    let bytes = range.read()?;
                    write_all_vectored(stream, &[Chunk::Mem(bytes)], idle).await?
                }
            }
            rest = &rest[1..];
        }
    }
    out.clear();
    // TLS holds written bytes until flushed; TCP writes through.
    within(idle, stream.flush()).await??;
    Ok(())
}

async fn write_all_vectored<S: Transport>(
    stream: &mut S,
    chunks: &[Chunk],
    idle: Duration,
) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Mem(b) => Some(io::IoSlice::new(b)),
            Chunk::File(_) => None,
        })
        .collect();
    let mut pending = &mut slices[..];
    while !pending.is_empty() {
        let n = within(idle, stream.write_vectored(pending)).await??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut pending, n);
    }
    Ok(())
}

/// One wait of a connection, failed with `TimedOut` when nothing happens for `idle`
/// (connections.max.idle.ms).
async fn within<F: Future>(idle: Duration, wait: F) -> io::Result<F::Output> {
    tokio::time::timeout(idle, wait).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "no activity for connections.max.idle.ms",
        )
    })
}

/// Largest piece handed to one sendfile call; the loop continues as the socket drains.
const SENDFILE_MAX: usize = 1 << 20;

/// Sends a segment file range with sendfile(2): the kernel moves the bytes from the page cache to
/// the socket, gregor never copies them. A range without a descriptor is read and written.
async fn send_file(stream: &TcpStream, range: &FileRange, idle: Duration) -> io::Result<()> {
    let Some(fd) = range.fd() else {
        let bytes = range.read()?;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            within(idle, stream.writable()).await??;
            match stream.try_write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    };
    let mut offset = range.position();
    let end = offset + range.len() as u64;
    while offset < end {
        let want = usize::try_from(end - offset).map_or(SENDFILE_MAX, |n| n.min(SENDFILE_MAX));
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, fd, Some(&mut offset), want).map_err(io::Error::from)
        });
        match sent {
            // The file is shorter than when the fetch was planned: the frame cannot be completed.
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                within(idle, stream.writable()).await??
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_limits() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(b"abcde");
        assert_eq!(
            next_frame(&mut b, 100).unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(&b[..], b"de");
        let mut b = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(matches!(
            next_frame(&mut b, 100),
            Err(FrameError::Negative(-1))
        ));
        let mut b = BytesMut::from(&(101i32).to_be_bytes()[..]);
        assert!(matches!(
            next_frame(&mut b, 100),
            Err(FrameError::TooLarge { .. })
        ));
        // A large but allowed claim reserves only a bounded amount.
        let mut b = BytesMut::from(&(100_000_000i32).to_be_bytes()[..]);
        assert!(next_frame(&mut b, 104_857_600).unwrap().is_none());
        assert!(b.capacity() <= READ_RESERVE + 64);
    }
}
