//! The broker's clock drives the coordinators (Kafka's coordinator tests run on MockTime):
//! moving it forward expires what its deadlines guard at the next timer tick, with no wall-clock
//! wait, which is what a test suite against gregor (and the test control plane) relies on.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::*;

/// How long a test waits for a timer to act on the moved clock: the timers tick every 100 ms or
/// so, but the machine may be busy.
const TIMER_WAIT: Duration = Duration::from_secs(10);

async fn heartbeat_of(c: &mut Client, m: &Joined) -> Result<i16> {
    heartbeat(c, 4, "clocked-group", &m.member_id, m.generation, None).await
}

/// The group's member count, looked at without renewing anyone's session.
async fn members(c: &mut Client) -> Result<usize> {
    Ok(describe_group(c, "clocked-group").await?.members.len())
}

#[tokio::test]
async fn moving_the_clock_past_a_session_timeout_expires_the_member() -> Result<()> {
    let (b, mut c) = group_broker_with_topic("clocked", 1).await?;
    let spec = JoinSpec::consumer("clocked-group", &["clocked"]);
    let m = stable_member(&mut c, &spec, b"").await?;
    // Without the clock moving, the member stays (its session is 10 s of the broker's time).
    sleep_ms(300).await;
    ensure!(
        heartbeat_of(&mut c, &m).await? == NONE,
        "the member expired on its own"
    );
    // No heartbeat from here on: one arriving after the clock moved would renew the session.
    b.broker().clock.advance(i64::from(SESSION_MS) + 1_000);
    let deadline = Instant::now() + TIMER_WAIT;
    while Instant::now() < deadline {
        if members(&mut c).await? == 0 {
            ensure!(
                heartbeat_of(&mut c, &m).await? == UNKNOWN_MEMBER_ID,
                "the expired member is still known"
            );
            return Ok(());
        }
        sleep_ms(50).await;
    }
    bail!("the member's session did not expire")
}

/// Group sessions are deadlines on the broker's monotonic reading (Kafka's timer wheel): a
/// step of the wall clock by many session timeouts, forward or back, expires no one; the
/// monotonic reading moving past a session does. Member "early" joined a session before
/// "fresh": once the monotonic clock expires "early", the timer has run after the wall steps,
/// and "fresh" (half a session in on the monotonic clock, an hour on the wall) must be in.
#[tokio::test]
async fn stepping_the_wall_clock_expires_no_group_session() -> Result<()> {
    let (b, mut c) = group_broker_with_topic("stepped", 1).await?;
    let clock = &b.broker().clock;
    stable_member(&mut c, &JoinSpec::consumer("early", &["stepped"]), b"").await?;
    let half = i64::from(SESSION_MS) / 2;
    clock.advance(half + 1_000);
    stable_member(&mut c, &JoinSpec::consumer("fresh", &["stepped"]), b"").await?;
    clock.step_wall(3_600_000);
    clock.step_wall(-7_200_000);
    clock.advance(half);
    let deadline = Instant::now() + TIMER_WAIT;
    while Instant::now() < deadline {
        if describe_group(&mut c, "early").await?.members.is_empty() {
            let fresh = describe_group(&mut c, "fresh").await?.members.len();
            ensure!(fresh == 1, "a wall step expired a session ({fresh} left)");
            return Ok(());
        }
        sleep_ms(50).await;
    }
    bail!("the monotonic reading past the session did not expire it")
}

async fn txn_state(c: &mut Client) -> Result<String> {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("clocked-id"))]);
    let r = c.request(0, req).await?;
    Ok(r.transaction_states[0].transaction_state.to_string())
}

#[tokio::test]
async fn moving_the_clock_past_a_transaction_timeout_aborts_it() -> Result<()> {
    let (b, mut c) = broker_with_topic("clocked-txn", 1).await?;
    let id = TransactionalId(s("clocked-id"));
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(id.clone()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.request(4, init).await?;
    ensure!(r.error_code == NONE, "InitProducerId: {r:?}");
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(id)
        .with_v3_and_below_producer_id(r.producer_id)
        .with_v3_and_below_producer_epoch(r.producer_epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name("clocked-txn"))
            .with_partitions(vec![0])]);
    c.request(3, add).await?;
    ensure!(
        txn_state(&mut c).await? == "Ongoing",
        "the transaction is not open"
    );
    sleep_ms(300).await;
    ensure!(txn_state(&mut c).await? == "Ongoing", "aborted on its own");
    // Past the transaction's 60 s and the 10 s abort-check interval of the broker's time.
    b.broker().clock.advance(61_000);
    let deadline = Instant::now() + TIMER_WAIT;
    while Instant::now() < deadline {
        if txn_state(&mut c).await? == "CompleteAbort" {
            return Ok(());
        }
        sleep_ms(50).await;
    }
    bail!("the timed-out transaction was not aborted")
}
