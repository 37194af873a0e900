//! Frame decoding and dispatch into a broker: the input is a client's byte stream (size-prefixed
//! request frames, as recorded from real clients with GREGOR_RECORD_FRAMES), split with the
//! connection's own framing and handed to `handle_frame` one frame at a time, against a broker
//! with a fresh data directory. No input may panic the broker, hang it, or make it allocate
//! without bound; every reply must be a well-formed frame.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::BytesMut;
use gregor::broker::{Broker, Endpoint};
use gregor::protocol::{handle_frame, Reply, Session};
use gregor::server::clock::Clock;
use gregor::server::connection::next_frame;
use gregor::Config;
use libfuzzer_sys::fuzz_target;

/// Frames handled per input at most: enough for create, produce, fetch and group sequences.
const MAX_FRAMES: usize = 64;
/// CreateTopics asking for more partitions than this is skipped: gregor, like Kafka's request
/// path, creates whatever count is asked for (Kafka's controller stops at 10,000 records per
/// operation), and a million partition directories is a slow input, not a bug in decoding.
const MAX_PARTITIONS_CREATED: usize = 1000;

/// True for a CreateTopics frame that would create more than MAX_PARTITIONS_CREATED partitions.
fn creates_too_many_partitions(frame: &bytes::Bytes) -> bool {
    use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, RequestHeader};
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    if frame.len() < 4 || i16::from_be_bytes([frame[0], frame[1]]) != ApiKey::CreateTopics as i16 {
        return false;
    }
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let mut body = frame.clone();
    let header_version = CreateTopicsRequest::header_version(version);
    if RequestHeader::decode(&mut body, header_version).is_err() {
        return false;
    }
    let Ok(req) = CreateTopicsRequest::decode(&mut body, version) else {
        return false;
    };
    let total: usize = req
        .topics
        .iter()
        .map(|t| {
            (t.num_partitions.max(0) as usize)
                .max(t.assignments.len())
                .max(1)
        })
        .sum();
    total > MAX_PARTITIONS_CREATED
}

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let mut config = Config::for_tests(tmp.path().to_path_buf());
    // The fuzzer's inputs are small; a small cap makes the size-limit paths reachable.
    config.socket_request_max_bytes = 1 << 20;
    let max = config.socket_request_max_bytes;
    let endpoint = Endpoint::plaintext("127.0.0.1", 9092);
    // Paused time: long polls, join delays and request timeouts elapse at once when the broker
    // has nothing else to do, so a waiting handler costs no wall time.
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    else {
        return;
    };
    let Ok(mut broker) = Broker::open(config, endpoint) else {
        return;
    };
    // The broker's clock follows the runtime's paused clock, and the group timers run on it.
    broker.clock = {
        let _runtime = rt.enter();
        std::sync::Arc::new(Clock::tokio())
    };
    let broker = std::sync::Arc::new(broker);
    let mut buf = BytesMut::from(data);
    rt.block_on(async {
        let timers = gregor::spawn_group_timers(std::sync::Arc::clone(&broker));
        handle_frames(&broker, &mut buf, max).await;
        timers.cancel();
    });
    broker.close().ok();
});

async fn handle_frames(broker: &std::sync::Arc<Broker>, buf: &mut BytesMut, max: usize) {
    for _ in 0..MAX_FRAMES {
        let frame = match next_frame(buf, max) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => return,
        };
        if creates_too_many_partitions(&frame) {
            continue;
        }
        let key = (frame.len() >= 2).then(|| i16::from_be_bytes([frame[0], frame[1]]));
        let mut session = Session::plaintext(
            broker.node_id,
            std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000),
        );
        let reply =
            tokio::time::timeout(Duration::from_secs(600), handle_frame(broker, &mut session, frame)).await;
        match reply {
            Ok(Reply::Frame(frame)) => {
                let resp = frame
                    .to_bytes()
                    .expect("a response's file ranges are readable");
                assert_eq!(resp.len(), frame.len(), "response chunks add up");
                assert!(
                    resp.len() >= 8,
                    "a response frame has a size and correlation id"
                );
                let size = i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]]);
                assert_eq!(size as usize, resp.len() - 4, "response size prefix");
            }
            Ok(Reply::Nothing) => {}
            Ok(Reply::Close(_) | Reply::FrameThenClose(..) | Reply::BlackHole) => return,
            // JoinGroup and SyncGroup wait for other members until the group timers (on the
            // paused clock) end the wait at the join delay or rebalance timeout; a fuzzed
            // rebalance timeout beyond the 600 s allowed here ends the input instead.
            // Anything else must finish (a Fetch long poll runs on the paused clock).
            Err(_) if matches!(key, Some(11) | Some(14)) => return,
            Err(_) => panic!("API {key:?}: the handler did not finish within 600 s (virtual)"),
        }
    }
}
