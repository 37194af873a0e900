//! Instant reset (`POST /v1/reset`, body `{"keep_topics": true}` optional): the broker back to
//! empty without a restart, between the tests of a suite. Each step goes through the path Kafka
//! itself takes for that kind of removal, so connected clients see errors Kafka could give them:
//!
//! 1. transactions: every ongoing one is aborted as a timed-out one is (the producer is fenced:
//!    INVALID_PRODUCER_EPOCH / PRODUCER_FENCED on its next call), then idle transactional ids
//!    are removed as on transactional.id.expiration.ms;
//! 2. groups: every member is expired as on a session timeout (UNKNOWN_MEMBER_ID, rejoin), then
//!    every group is deleted with its committed offsets (a consumer resumes at
//!    auto.offset.reset);
//! 3. topics: every topic but the internal ones is deleted as by DeleteTopics
//!    (UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID); with `keep_topics` each partition is
//!    emptied instead as by DeleteRecords to its high watermark (a consumer's position below it
//!    is OFFSET_OUT_OF_RANGE), configs and ids kept;
//! 4. producer ids: all idempotence state is expired as by producer.id.expiration.ms.
//!
//! The expiries run with a `now` beyond any timeout a client can set (an `int` of
//! milliseconds), not by moving the broker's clock. A client acting in between can come back
//! (a member rejoining creates its group again); the answer counts what was removed and lists
//! what could not be (e.g. a compacted topic refuses DeleteRecords, as in Kafka).

use serde_json::{json, Value};

use crate::broker::Broker;
use crate::protocol::errors;

pub fn reset(broker: &Broker, keep_topics: bool) -> Value {
    let started = std::time::Instant::now();
    let clock = broker.clock.now();
    let now = clock.wall_ms;
    // Twice that: what the first expiries left (an aborted transaction, a member whose join
    // the first tick completed) is itself past every timeout then.
    let beyond_any_timeout = now.saturating_add(i64::from(i32::MAX));
    let beyond_that = beyond_any_timeout.saturating_add(i64::from(i32::MAX));
    let mut failures = Vec::new();

    broker.transaction_timers(beyond_any_timeout, true, false);
    // The aborts' markers are written by now (or retried by the marker timer): the ids go.
    broker.transaction_timers(beyond_that, false, true);

    let beyond = i64::from(i32::MAX);
    for at in [clock.later(beyond), clock.later(beyond.saturating_mul(2))] {
        for (group, member) in broker.groups.tick(&broker.catalog, at) {
            broker
                .shares
                .close_session(&broker.catalog, &group, &member, now);
        }
    }
    let mut groups_deleted = 0;
    for g in broker.groups.list_groups() {
        match broker.delete_group(&g.group_id, now) {
            errors::NONE => groups_deleted += 1,
            code => failures.push(format!("group {}: {}", g.group_id, errors::name_of(code))),
        }
    }

    let topics: Vec<_> = (broker.catalog.all().into_iter())
        .filter(|t| !t.is_internal())
        .collect();
    let mut deleted = Vec::new();
    let mut emptied = 0;
    for t in &topics {
        if keep_topics {
            for p in &t.partitions {
                match p.with_log(|l| l.delete_records(-1)) {
                    Ok(_) => {}
                    Err(e) => failures.push(format!("{}-{}: {e}", t.name, p.index)),
                }
            }
            emptied += 1;
        } else {
            match broker.catalog.delete(&t.name) {
                Ok(_) => deleted.push(t.name.to_string()),
                Err(e) => failures.push(format!("topic {}: {e}", t.name)),
            }
        }
    }
    // Offsets of the deleted topics: the group coordinator removes them as a publisher of the
    // committed metadata (log::manager), as for DeleteTopics.
    let producers_expired = broker.expire_producers(beyond_that);
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        topics = deleted.len(),
        emptied,
        groups = groups_deleted,
        producers_expired,
        took_ms,
        "reset"
    );
    json!({
        "topics_deleted": deleted.len(),
        "topics_emptied": emptied,
        "groups_deleted": groups_deleted,
        "producers_expired": producers_expired,
        "not_reset": failures,
        "took_ms": took_ms,
    })
}
