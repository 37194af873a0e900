//! Resource limits over the wire: max.connections, max.connections.per.ip,
//! max.connection.creation.rate, connections.max.idle.ms, and a client that does not read its
//! responses (the broker stops reading from it instead of queueing without bound, and keeps
//! serving everyone else).

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::*;
use kafka_protocol::messages::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn api_versions_ok(c: &mut Client) -> Result<()> {
    let r = c.request(2, ApiVersionsRequest::default()).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_are_closed() -> Result<()> {
    let b = start_broker_with(|c| c.max_connections_per_ip = 2).await?;
    let mut c1 = b.client().await?;
    let mut c2 = b.client().await?;
    api_versions_ok(&mut c1).await?;
    api_versions_ok(&mut c2).await?;
    let mut c3 = b.client().await?;
    c3.send_request(2, &ApiVersionsRequest::default())
        .await
        .ok();
    c3.expect_closed()
        .await
        .context("the third connection from 127.0.0.1")?;
    drop(c1);
    // The closed connection's slot comes back once the broker notices the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = b.client().await?;
        if api_versions_ok(&mut c).await.is_ok() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no slot freed by closing a connection"
        );
        sleep_ms(50).await;
    }
    api_versions_ok(&mut c2).await
}

#[tokio::test]
async fn at_max_connections_new_ones_wait_for_a_free_slot() -> Result<()> {
    let b = start_broker_with(|c| c.max_connections = 2).await?;
    let mut c1 = b.client().await?;
    let mut c2 = b.client().await?;
    api_versions_ok(&mut c1).await?;
    api_versions_ok(&mut c2).await?;
    // The kernel completes the handshake; the broker does not take the connection yet.
    let mut c3 = b.client().await?;
    let id = c3.send_request(2, &ApiVersionsRequest::default()).await?;
    ensure!(
        c3.try_read_frame(Duration::from_millis(500)).await.is_err(),
        "a third connection was served at max.connections=2"
    );
    drop(c1);
    let r = c3.read_response::<ApiVersionsRequest>(2, id).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    api_versions_ok(&mut c2).await
}

/// max.connection.creation.rate (KIP-612) throttles the acceptor, not the client: with 2 new
/// connections a second (measured over one window: quota.window.num 2, on a clock that does not
/// move unless advanced), the third waits before it is taken on, for as long as the broker's
/// clock says (Kafka's acceptor waits on its `Time`), and is then served.
#[tokio::test]
async fn over_max_connection_creation_rate_the_acceptor_waits() -> Result<()> {
    let b = start_broker_with(|c| {
        c.manual_clock = true;
        c.quota_window_num = 2;
        c.max_connection_creation_rate = 2;
    })
    .await?;
    for i in 0..2 {
        let mut c = b.client().await?;
        api_versions_ok(&mut c)
            .await
            .with_context(|| format!("connection {i}"))?;
    }
    let mut third = b.client().await?;
    let id = third
        .send_request(2, &ApiVersionsRequest::default())
        .await?;
    let throttles = b.broker().metrics.accept_throttles(1, "PLAINTEXT");
    let counted = || {
        let delayed = throttles.delayed.load(std::sync::atomic::Ordering::Relaxed);
        let last = (throttles.last_delay_ms).load(std::sync::atomic::Ordering::Relaxed);
        (delayed, last)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while counted().0 == 0 && Instant::now() < deadline {
        sleep_ms(10).await;
    }
    // The third is 3 a second, half over 2: half a window's wait.
    ensure!(counted() == (1, 500), "delayed, last ms: {:?}", counted());
    // The clock stands still: the acceptor has not taken it on (a second here, twice the wait
    // on real time).
    let r = third
        .try_read_frame(std::time::Duration::from_secs(1))
        .await;
    ensure!(r.is_err(), "served while the clock stood still: {r:?}");
    b.broker().clock.advance(500);
    let r = third
        .read_response::<ApiVersionsRequest>(2, id)
        .await
        .context("the third connection once the clock moved")?;
    ensure!(r.error_code == NONE, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn idle_connections_are_closed() -> Result<()> {
    let b = start_broker_with(|c| c.connections_max_idle_ms = 300).await?;
    let mut c = b.client().await?;
    api_versions_ok(&mut c).await?;
    c.expect_closed().await.context("an idle connection")?;
    // A busy one stays: requests closer together than the idle time.
    let mut busy = b.client().await?;
    for _ in 0..8 {
        api_versions_ok(&mut busy).await?;
        sleep_ms(100).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_client_that_does_not_read_is_not_read_either() -> Result<()> {
    let b = start_broker().await?;
    let encoder = b.client().await?;
    // 300 pipelined Metadata requests for 5,000 unknown topics each: ~30 MB up and ~45 MB of
    // answers, far more than the socket buffers on both sides hold, so the broker must stop
    // reading while the client does not read.
    const N: i32 = 300;
    let names: Vec<_> = (0..5_000)
        .map(|i| name(&format!("no-such-topic-{i:06}")))
        .collect();
    let req = MetadataRequest::default()
        .with_topics(Some(
            names
                .into_iter()
                .map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(n)))
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let mut requests = Vec::new();
    for id in 0..N {
        requests.extend_from_slice(&encoder.encode_request(12, id, &req)?);
    }
    let stream = tokio::net::TcpStream::connect(b.addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move { wr.write_all(&requests).await.map(|_| wr) });
    sleep_ms(500).await;
    ensure!(
        !writer.is_finished(),
        "the broker read every request although no answer was read"
    );
    // Meanwhile everybody else is served.
    let mut other = b.client().await?;
    api_versions_ok(&mut other).await?;
    // Reading the answers lets the rest in; they come back complete and in order.
    let reader = tokio::spawn(async move {
        let mut next = 0;
        let mut size = [0u8; 4];
        let mut frame = Vec::new();
        while next < N {
            rd.read_exact(&mut size).await?;
            frame.resize(i32::from_be_bytes(size) as usize, 0);
            rd.read_exact(&mut frame).await?;
            let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            anyhow::ensure!(id == next, "answer {id} where {next} was due");
            next += 1;
        }
        anyhow::Ok(())
    });
    tokio::time::timeout(Duration::from_secs(60), reader).await???;
    let _wr = tokio::time::timeout(Duration::from_secs(10), writer).await???;
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_after_the_idle_time() -> Result<()> {
    // Kafka's Selector closes a connection with no socket activity for connections.max.idle.ms,
    // also when a response is waiting to be sent to a client that never reads.
    let b = start_broker_with(|c| c.connections_max_idle_ms = 1000).await?;
    let encoder = b.client().await?;
    // Metadata for 5,000 unknown topics: ~100 KB up and ~150 KB of answer per request.
    let names: Vec<_> = (0..5_000)
        .map(|i| name(&format!("no-such-topic-{i:06}")))
        .collect();
    let req = MetadataRequest::default()
        .with_topics(Some(
            names
                .into_iter()
                .map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(n)))
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let mut requests = Vec::new();
    for id in 0..20 {
        requests.extend_from_slice(&encoder.encode_request(12, id, &req)?);
    }
    let stream = tokio::net::TcpStream::connect(b.addr).await?;
    let (_rd, mut wr) = stream.into_split();
    // Requests until the socket fails: the broker stops reading once its answers back up, so
    // the writes block until the broker closes the connection (then they fail).
    let writer = tokio::spawn(async move {
        loop {
            if let Err(e) = wr.write_all(&requests).await {
                return e;
            }
        }
    });
    let e = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .context("a client that never reads was not disconnected")??;
    ensure!(
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
    // Everybody else is still served.
    api_versions_ok(&mut b.client().await?).await
}

#[tokio::test]
async fn queued_request_bytes_stop_reading_until_memory_is_released() -> Result<()> {
    // Kafka's SocketServer reads requests into a MemoryPool of queued.max.request.bytes: a frame
    // takes its claimed size once its size prefix is read, and while the pool is exhausted no
    // channel reads further (Selector mutes them) until a handled request gives memory back.
    // Nothing is refused.
    let b = start_broker_with(|c| {
        c.socket_request_max_bytes = 100_000;
        c.queued_max_request_bytes = 100_000;
    })
    .await?;
    // A claims the whole pool with a frame it does not finish.
    let mut a = b.client().await?;
    a.send_raw(&100_000i32.to_be_bytes()).await?;
    a.send_raw(&[0u8; 100]).await?;
    // Until the broker has seen A's claim, probes are answered; then one is held.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut probe, id) = loop {
        ensure!(
            Instant::now() < deadline,
            "requests were still read with the pool exhausted"
        );
        let mut c = b.client().await?;
        let id = c.send_request(2, &ApiVersionsRequest::default()).await?;
        if c.try_read_frame(Duration::from_millis(300)).await.is_err() {
            break (c, id);
        }
    };
    // A's frame completes (with bytes that are no valid request: the broker closes A) and its
    // memory comes back: the held request is read and answered.
    a.send_raw(&vec![0u8; 100_000 - 100]).await?;
    a.expect_closed().await?;
    let r = probe.read_response::<ApiVersionsRequest>(2, id).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    api_versions_ok(&mut b.client().await?).await
}
