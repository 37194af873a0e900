//! A broker's life with the active controller of a quorum (Kafka's BrokerLifecycleManager): its
//! heartbeats, and its controlled shutdown.
//!
//! The broker heartbeats at once (it registered fenced; this brings it in), then every
//! broker.heartbeat.interval.ms of real time (the controller's sessions are what the broker's
//! clock measures); more often while it is fenced, so that it is let in soon after the controller
//! would.
//!
//! A stop of the process (SIGTERM, `RunningBroker::shutdown`) begins a controlled shutdown when
//! `controlled.shutdown.enable` (Kafka's default, true): the next heartbeat goes at once with
//! want_shut_down; the controller moves the broker's leaderships to other in-sync replicas and
//! takes it out of the ISRs while it still serves (its clients get NOT_LEADER_OR_FOLLOWER and
//! find the new leaders), and answers should_shut_down once it leads nothing and the active
//! brokers have applied that change (`metadata::broker_heartbeat`). The heartbeats stop there (the
//! controller has fenced the broker), and the process stops serving, flushes and checkpoints.
//! Heartbeats while waiting follow Kafka's: the second 50 ms after the first, then every interval.
//!
//! The heartbeats run on a thread of their own, with a runtime of their own, as Kafka's
//! BrokerLifecycleManager has its own event thread and NodeToControllerChannelManager its own
//! network thread: never on the broker's async workers, which append produced and fetched
//! records to the logs inline (so that the hot path hands no append to another thread) and so
//! wait on the disk. On a slow disk (every write taking 100 ms) those workers were seldom free to
//! run a due heartbeat, nor its timer, and the controller fenced a broker that was only slow.
//! The heartbeat itself waits on the metadata quorum's runtime (`Catalog::send_to_controller`),
//! which keeps its own disk I/O off its workers (see `metadata::quorum::log_store`).
//!
//! The wait is bounded: Kafka waits for the grant up to its whole shutdown timeout (5 minutes);
//! gregor up to broker.session.timeout.ms, after which the controller would have fenced the
//! broker anyway, so that a broker whose controller is unreachable (the last nodes of a quorum
//! stopping) stops in bounded time, as after a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, HeartbeatOutcome};

/// How often a fenced broker heartbeats (at most; broker.heartbeat.interval.ms when shorter).
const FENCED_HEARTBEAT: Duration = Duration::from_millis(100);
/// The heartbeat after the first shutdown request comes sooner than the interval (BrokerLifecycleManager: "in the case where controlled shutdown completes
/// quickly, this will speed things up a little bit").
const FIRST_SHUTDOWN_RETRY: Duration = Duration::from_millis(50);

/// The handle the process keeps on its broker's lifecycle.
pub struct BrokerLifecycle {
    /// Set once: the broker wants to shut down.
    want_shut_down: watch::Sender<bool>,
    /// Set once: the controller granted it.
    granted: watch::Receiver<bool>,
    /// How long a controlled shutdown may wait for the grant.
    timeout: Duration,
}

impl BrokerLifecycle {
    /// Starts `broker`'s heartbeats; returns the handle, the task, and whether this node's image
    /// has the broker unfenced, as each heartbeat finds it.
    pub fn start(
        broker: Arc<Broker>,
        every: Duration,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> (
        BrokerLifecycle,
        tokio::task::JoinHandle<()>,
        watch::Receiver<bool>,
    ) {
        let (want_shut_down, wanted) = watch::channel(false);
        let (grant, granted) = watch::channel(false);
        let (unfenced, let_in) = watch::channel(false);
        let run = heartbeats(broker, every, wanted, grant, unfenced, cancel);
        let task = super::background::spawn_blocking(move || on_own_runtime(run));
        let lifecycle = BrokerLifecycle {
            want_shut_down,
            granted,
            timeout,
        };
        (lifecycle, task, let_in)
    }

    /// Asks the controller for a controlled shutdown and waits until it is granted, the
    /// heartbeats stop, or the timeout passes; returns whether it was granted.
    pub async fn controlled_shutdown(&self) -> bool {
        tracing::info!("beginning controlled shutdown");
        self.want_shut_down.send_replace(true);
        let mut granted = self.granted.clone();
        let wait = async move { granted.wait_for(|&g| g).await.is_ok() };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(granted) => granted,
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "timed out waiting for the controller to grant the controlled shutdown"
                );
                false
            }
        }
    }
}

/// Runs `run` to its end on this thread (one of the blocking pool's, so that the process's
/// runtime still awaits it) with a runtime of its own: its timers and wake-ups never wait for
/// the process's workers (see the module comment). A runtime that cannot be made ends the
/// heartbeats at once: the broker is never let in, and its start fails.
fn on_own_runtime(run: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run),
        Err(e) => tracing::error!(error = %e, "cannot run the broker's heartbeats"),
    }
}

/// The heartbeat loop (see the module comment): until `cancel`, or until a controlled shutdown
/// is granted. Each heartbeat is sent from the runtime's blocking pool: it waits for the
/// controller's answer, and may replay the metadata it lets the broker in at (`catch_up`).
async fn heartbeats(
    broker: Arc<Broker>,
    every: Duration,
    mut wanted: watch::Receiver<bool>,
    grant: watch::Sender<bool>,
    unfenced: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut answered_shutdown = false;
    // When the next heartbeat is due (the first at once).
    let mut due = Instant::now();
    loop {
        let want = *wanted.borrow_and_update();
        let b = Arc::clone(&broker);
        let sent = super::background::spawn_blocking(move || {
            let sent = Instant::now();
            (sent, b.send_heartbeat(want))
        })
        .await;
        let answered = Instant::now();
        let outcome = match sent {
            Ok((sent, outcome)) => {
                // How late the heartbeat left (its thread not run in time) and how long the
                // controller took to answer: what a session is made of.
                tracing::debug!(
                    broker = broker.node_id,
                    late_ms = sent.saturating_duration_since(due).as_millis() as u64,
                    answered_ms = answered.saturating_duration_since(sent).as_millis() as u64,
                    "heartbeat"
                );
                outcome
            }
            Err(_) => HeartbeatOutcome::default(),
        };
        unfenced.send_replace(outcome.unfenced);
        if want && outcome.should_shut_down {
            grant.send_replace(true);
            return;
        }
        let wait = match (want, outcome.unfenced) {
            (true, _) if !std::mem::replace(&mut answered_shutdown, true) => {
                every.min(FIRST_SHUTDOWN_RETRY)
            }
            (true, _) | (false, true) => every,
            (false, false) => every.min(FENCED_HEARTBEAT),
        };
        due = answered + wait;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            // A shutdown request goes at once.
            changed = wanted.changed() => {
                if changed.is_err() { return }
                due = Instant::now();
            }
        }
    }
}
