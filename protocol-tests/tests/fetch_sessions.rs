//! KIP-227 incremental fetch sessions over the wire, as Kafka's FetchManager answers them
//! (FetchSessionTest): full and incremental fetches, epochs, sessionless fetches with any id,
//! forgotten partitions, topic ids, the cache's size limit and eviction, and a parked incremental
//! fetch woken by an append to a partition it did not list.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::*;
use kafka_protocol::messages::fetch_request::ForgottenTopic;
use kafka_protocol::messages::*;

const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
/// The first Fetch version naming topics by id.
const FETCH_ID_V: i16 = 13;

fn in_session(mut req: FetchRequest, session_id: i32, epoch: i32) -> FetchRequest {
    req.session_id = session_id;
    req.session_epoch = epoch;
    req
}

/// (topic, partition, record batches) of every partition in a response.
fn answered(r: &FetchResponse) -> Vec<(String, i32, usize)> {
    r.responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.topic.to_string(),
                    p.partition_index,
                    batch_count(p.records.as_deref().unwrap_or_default()),
                )
            })
        })
        .collect()
}

/// An incremental fetch that changes nothing in session `id`, answered at once.
async fn incremental(c: &mut Client, version: i16, id: i32, epoch: i32) -> Result<FetchResponse> {
    c.request(version, in_session(fetch_request(vec![], 0, 0), id, epoch))
        .await
}

/// Opens a session on `topic`'s partitions 0..n, read from `offset`: (session id, response).
async fn open_session(
    c: &mut Client,
    topic: &str,
    n: i32,
    offset: i64,
) -> Result<(i32, FetchResponse)> {
    let parts = (0..n)
        .map(|p| fetch_partition(p, offset, 1 << 20))
        .collect();
    let req = in_session(fetch_request(vec![fetch_topic(topic, parts)], 0, 0), 0, 0);
    let r = c.request(FETCH_V, req).await?;
    ensure!(
        r.error_code == NONE && r.session_id != 0,
        "no session: {r:?}"
    );
    Ok((r.session_id, r))
}

#[tokio::test]
async fn incremental_fetches_carry_only_what_changed() -> Result<()> {
    let (_b, mut c) = broker_with_topic("inc", 2).await?;
    produce_ok(&mut c, "inc", 0, values_batch(&["a"])).await?;
    let (id, r) = open_session(&mut c, "inc", 2, 0).await?;
    // The full response carries every partition, with or without data.
    ensure!(
        answered(&r) == vec![("inc".into(), 0, 1), ("inc".into(), 1, 0)],
        "{r:?}"
    );
    // Epoch 1: the client moves partition 0's position past what it read; nothing new anywhere.
    let moved = vec![fetch_topic("inc", vec![fetch_partition(0, 1, 1 << 20)])];
    let r = c
        .request(FETCH_V, in_session(fetch_request(moved, 0, 0), id, 1))
        .await?;
    ensure!(r.error_code == NONE && r.session_id == id, "{r:?}");
    ensure!(r.responses.is_empty(), "nothing changed: {r:?}");
    // New records on partition 1 (read from its cached position, 0): only it is answered.
    produce_ok(&mut c, "inc", 1, values_batch(&["b", "c"])).await?;
    let r = incremental(&mut c, FETCH_V, id, 2).await?;
    ensure!(r.session_id == id, "{r:?}");
    ensure!(answered(&r) == vec![("inc".into(), 1, 1)], "{r:?}");
    ensure!(r.responses[0].partitions[0].high_watermark == 2, "{r:?}");
    // Partition 0's high watermark moved: it is answered, from the position the client sent.
    produce_ok(&mut c, "inc", 0, values_batch(&["d"])).await?;
    let moved = vec![fetch_topic("inc", vec![fetch_partition(1, 2, 1 << 20)])];
    let r = c
        .request(FETCH_V, in_session(fetch_request(moved, 0, 0), id, 3))
        .await?;
    ensure!(answered(&r) == vec![("inc".into(), 0, 1)], "{r:?}");
    let recs = decode_records(
        &r.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
    )?;
    ensure!(recs.len() == 1 && recs[0].offset == 1, "{recs:?}");
    Ok(())
}

#[tokio::test]
async fn epochs_and_unknown_sessions_are_refused_as_kafka_does() -> Result<()> {
    let (_b, mut c) = broker_with_topic("epochs", 1).await?;
    let (id, _) = open_session(&mut c, "epochs", 1, 0).await?;
    // A stale or future epoch: INVALID_FETCH_SESSION_EPOCH, no session id, no partitions; the
    // session stays at its epoch.
    for epoch in [2, 7] {
        let r = incremental(&mut c, FETCH_V, id, epoch).await?;
        ensure!(
            r.error_code == INVALID_FETCH_SESSION_EPOCH && r.session_id == 0,
            "epoch {epoch}: {r:?}"
        );
        ensure!(r.responses.is_empty(), "{r:?}");
    }
    let r = incremental(&mut c, FETCH_V, id, 1).await?;
    ensure!(r.error_code == NONE && r.session_id == id, "{r:?}");
    // An id the broker never gave out.
    let r = incremental(&mut c, FETCH_V, id.wrapping_add(7919), 1).await?;
    ensure!(
        r.error_code == FETCH_SESSION_ID_NOT_FOUND && r.session_id == 0,
        "{r:?}"
    );
    // The same session's epoch 2 replayed after it was answered: a duplicate.
    let r = incremental(&mut c, FETCH_V, id, 2).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let r = incremental(&mut c, FETCH_V, id, 2).await?;
    ensure!(r.error_code == INVALID_FETCH_SESSION_EPOCH, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn epoch_minus_one_is_a_sessionless_full_fetch_whatever_the_id() -> Result<()> {
    // kafka-go's Client.Fetch sends session id -1 (or any) with epoch -1: a plain full fetch in
    // Kafka (FetchManager.newContext), which closes a session of that id if there is one.
    let (_b, mut c) = broker_with_topic("final", 1).await?;
    produce_ok(&mut c, "final", 0, values_batch(&["x"])).await?;
    let parts = || vec![fetch_topic("final", vec![fetch_partition(0, 0, 1 << 20)])];
    for id in [-1, 12345] {
        let r = c
            .request(FETCH_V, in_session(fetch_request(parts(), 0, 0), id, -1))
            .await?;
        ensure!(r.error_code == NONE && r.session_id == 0, "id {id}: {r:?}");
        ensure!(
            answered(&r) == vec![("final".into(), 0, 1)],
            "id {id}: {r:?}"
        );
    }
    let (id, _) = open_session(&mut c, "final", 1, 0).await?;
    let r = c
        .request(FETCH_V, in_session(fetch_request(parts(), 0, 0), id, -1))
        .await?;
    ensure!(r.error_code == NONE && r.session_id == 0, "{r:?}");
    let r = incremental(&mut c, FETCH_V, id, 1).await?;
    ensure!(
        r.error_code == FETCH_SESSION_ID_NOT_FOUND,
        "the final fetch closed the session: {r:?}"
    );
    // Epoch 0 with a live id closes it and opens another.
    let (id, _) = open_session(&mut c, "final", 1, 0).await?;
    let req = in_session(fetch_request(parts(), 0, 0), id, 0);
    let r = c.request(FETCH_V, req).await?;
    ensure!(r.session_id != 0 && r.session_id != id, "{r:?}");
    let r = incremental(&mut c, FETCH_V, id, 1).await?;
    ensure!(r.error_code == FETCH_SESSION_ID_NOT_FOUND, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn forgotten_partitions_leave_the_session() -> Result<()> {
    let (_b, mut c) = broker_with_topic("forget", 2).await?;
    let (id, _) = open_session(&mut c, "forget", 2, 0).await?;
    let mut req = in_session(fetch_request(vec![], 0, 0), id, 1);
    req.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(name("forget"))
        .with_partitions(vec![1])];
    let r = c.request(FETCH_V, req).await?;
    ensure!(r.error_code == NONE && r.responses.is_empty(), "{r:?}");
    produce_ok(&mut c, "forget", 1, values_batch(&["gone"])).await?;
    produce_ok(&mut c, "forget", 0, values_batch(&["kept"])).await?;
    let r = incremental(&mut c, FETCH_V, id, 2).await?;
    ensure!(answered(&r) == vec![("forget".into(), 0, 1)], "{r:?}");
    // Forgetting the last partition closes the session; that fetch is answered sessionless.
    let mut req = in_session(fetch_request(vec![], 0, 0), id, 3);
    req.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(name("forget"))
        .with_partitions(vec![0])];
    let r = c.request(FETCH_V, req).await?;
    ensure!(r.error_code == NONE && r.session_id == 0, "{r:?}");
    let r = incremental(&mut c, FETCH_V, id, 4).await?;
    ensure!(r.error_code == FETCH_SESSION_ID_NOT_FOUND, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn sessions_by_topic_id_and_their_version_rule() -> Result<()> {
    let (_b, mut c) = broker_with_topic("ids", 1).await?;
    let id_ids = topic_id(&mut c, "ids").await?;
    let unknown = Uuid::new_v4();
    produce_ok(&mut c, "ids", 0, values_batch(&["i"])).await?;
    let req = in_session(
        fetch_request(
            vec![
                fetch_topic_by_id(id_ids, vec![fetch_partition(0, 0, 1 << 20)]),
                fetch_topic_by_id(unknown, vec![fetch_partition(0, 0, 1 << 20)]),
            ],
            0,
            0,
        ),
        0,
        0,
    );
    let r = c.request(FETCH_ID_V, req).await?;
    ensure!(r.session_id != 0, "{r:?}");
    let codes: Vec<(Uuid, i16)> = r
        .responses
        .iter()
        .map(|t| (t.topic_id, t.partitions[0].error_code))
        .collect();
    ensure!(
        codes == vec![(id_ids, NONE), (unknown, UNKNOWN_TOPIC_ID)],
        "{r:?}"
    );
    let session = r.session_id;
    // The unknown topic's error is answered again each time (an error always is); the known
    // partition only when it has news.
    let moved = vec![fetch_topic_by_id(
        id_ids,
        vec![fetch_partition(0, 1, 1 << 20)],
    )];
    let r = c
        .request(
            FETCH_ID_V,
            in_session(fetch_request(moved, 0, 0), session, 1),
        )
        .await?;
    let ids: Vec<Uuid> = r.responses.iter().map(|t| t.topic_id).collect();
    ensure!(ids == vec![unknown], "{r:?}");
    // A session by id cannot go on with a version that names topics.
    let r = incremental(&mut c, FETCH_ID_V - 1, session, 2).await?;
    ensure!(r.error_code == FETCH_SESSION_TOPIC_ID_ERROR, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn a_parked_incremental_fetch_wakes_on_its_sessions_partitions() -> Result<()> {
    let (b, mut c) = broker_with_topic("parked", 3).await?;
    let mut consumer = b.client().await?;
    let (id, _) = open_session(&mut consumer, "parked", 3, 0).await?;
    // The incremental fetch lists no partition, yet waits on all three of its session's.
    let req = in_session(fetch_request(vec![], 300_000, 1), id, 1);
    let corr = consumer.send_request(FETCH_V, &req).await?;
    for _ in 0..1000 {
        if (0..3).all(|p| b.broker().purgatory.watched("parked", p) == 1) {
            break;
        }
        sleep_ms(10).await;
    }
    for p in 0..3 {
        ensure!(
            b.broker().purgatory.watched("parked", p) == 1,
            "the fetch does not watch parked-{p}"
        );
    }
    produce_ok(&mut c, "parked", 2, values_batch(&["wake"])).await?;
    // Far below the fetch's own 300 s wait: only the append can have answered it.
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        consumer.read_response::<FetchRequest>(FETCH_V, corr),
    )
    .await
    .context("the parked incremental fetch was not woken")??;
    ensure!(r.session_id == id, "{r:?}");
    ensure!(answered(&r) == vec![("parked".into(), 2, 1)], "{r:?}");
    Ok(())
}

#[tokio::test]
async fn the_cache_is_bounded_and_evicts_stale_sessions() -> Result<()> {
    // 8 slots: one per shard. Nine full fetches go to the shards in turn; the ninth finds its
    // shard full of sessions that are neither stale nor older than 120 s, so it gets none.
    let b = start_broker_with(|c| c.max_incremental_fetch_session_cache_slots = 8).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "slots", 1).await?;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(open_session(&mut c, "slots", 1, 0).await?.0);
    }
    let parts = || vec![fetch_topic("slots", vec![fetch_partition(0, 0, 1 << 20)])];
    let r = c
        .request(FETCH_V, in_session(fetch_request(parts(), 0, 0), 0, 0))
        .await?;
    ensure!(
        r.error_code == NONE && r.session_id == 0,
        "cache full: {r:?}"
    );
    ensure!(b.broker().fetch_sessions.num_sessions() == 8);
    // Two minutes of the broker's time later, an unused session is stale: the next full fetch
    // (to shard 1, the refused one went to shard 0) evicts that shard's least recently used
    // session and takes its place.
    b.broker().clock.advance(120_001);
    let (_, _) = open_session(&mut c, "slots", 1, 0).await?;
    ensure!(b.broker().fetch_sessions.num_sessions() == 8);
    ensure!(b.broker().fetch_sessions.evictions() == 1);
    let gone = incremental(&mut c, FETCH_V, ids[1], 1).await?;
    ensure!(gone.error_code == FETCH_SESSION_ID_NOT_FOUND, "{gone:?}");
    Ok(())
}

#[tokio::test]
async fn no_slots_no_sessions() -> Result<()> {
    let b = start_broker_with(|c| c.max_incremental_fetch_session_cache_slots = 0).await?;
    let mut c = b.client().await?;
    create_topic(&mut c, "none", 1).await?;
    let parts = vec![fetch_topic("none", vec![fetch_partition(0, 0, 1 << 20)])];
    let r = c
        .request(FETCH_V, in_session(fetch_request(parts, 0, 0), 0, 0))
        .await?;
    ensure!(r.error_code == NONE && r.session_id == 0, "{r:?}");
    ensure!(r.responses.len() == 1, "{r:?}");
    Ok(())
}
