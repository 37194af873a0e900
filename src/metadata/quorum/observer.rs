//! A broker-only process's metadata log (`process.roles=broker`): an observer of the quorum, as
//! Kafka's brokers are. It is no voter and runs no Raft node: it fetches the committed log from
//! the voters named by `controller.quorum.voters` (from the leader once it knows it, which lists
//! it among the observers in DescribeQuorum), each fetch waiting at the voter for something new,
//! so committed changes reach it at once. Its writes (CreateTopics through this broker, its
//! registration) go to a voter, which forwards them to the leader; its broker's requests to the
//! active controller (heartbeats, AlterPartition) go to the leader.
//!
//! Why not an openraft learner: a learner is pushed to (AppendEntries), so the broker would need
//! a listener of its own for the quorum, which Kafka's broker-only configuration does not have
//! (its controller.listener.names are the controllers'), and a learner is a member of the Raft
//! membership, kept in the log, whose address a restart on another port would have to change.
//! Fetching is Kafka's observer model, and needs neither.
//!
//! The fetched log is kept in memory: a restarted broker fetches it again before it opens its
//! catalog. Where it fetches from below a voter's log start (the log before it cut behind a
//! snapshot), the voter answers with its newest snapshot's id; the observer fetches that file
//! (Kafka's FetchSnapshot, in pieces), takes it in place of the log before its end (what it
//! had fetched before is dropped), and goes on fetching from there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::transport::{self, ForwardError, TcpClient};
use super::{
    committed_in_time, wait_on, MetadataEntry, NodeId, ObserverFetch, QuorumNode, QuorumRuntime,
};
use crate::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::metadata::metadata_log::{
    read_snapshot, MetadataBatch, MetadataLog, MetadataLogError, MetadataSnapshot, QuorumState,
    SnapshotId, Writer,
};
use crate::metadata::records::MetadataRecord;
use crate::security::channel::ClientChannel;

/// How long a broker's request waits for the controller's answer.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fetches brought.
struct Fetched {
    /// The snapshot fetched last (the log before its end is not kept).
    snapshot: Mutex<Option<MetadataSnapshot>>,
    /// The committed data batches, in offset order.
    batches: Mutex<Vec<MetadataBatch>>,
    /// The committed end offset fetched up to.
    end_offset: watch::Sender<i64>,
    /// The quorum as the last voter answering saw it.
    quorum: Mutex<Option<QuorumState>>,
    /// The leader and where it listens, as the last voter answering knew (`None` after a
    /// failed fetch: the next voter asked tells).
    leader: watch::Sender<Option<(i32, QuorumNode)>>,
}

impl Fetched {
    fn new() -> Fetched {
        Fetched {
            snapshot: Mutex::new(None),
            batches: Mutex::new(Vec::new()),
            end_offset: watch::channel(0).0,
            quorum: Mutex::new(None),
            leader: watch::channel(None).0,
        }
    }

    fn leader(&self) -> Option<QuorumNode> {
        self.leader.borrow().as_ref().map(|(_, node)| node.clone())
    }

    fn set_leader(&self, leader: Option<(i32, QuorumNode)>) {
        self.leader.send_if_modified(|known| {
            let changed = *known != leader;
            *known = leader;
            changed
        });
    }

    /// Returns once a voter answering names a leader other than `leader` (the quorum elected
    /// another); a failed fetch, which forgets the leader, is not enough.
    fn leader_moved_from(
        &self,
        leader: i32,
    ) -> impl std::future::Future<Output = Result<(), MetadataLogError>> + 'static {
        let mut known = self.leader.subscribe();
        async move {
            let moved = known.wait_for(|l| l.as_ref().is_some_and(|(id, _)| *id != leader));
            moved.await.map(|_| ()).map_err(|_| observer_stopped())
        }
    }

    /// The batch holding `from_offset`, and every one after it.
    fn read(&self, from_offset: i64) -> Vec<MetadataBatch> {
        let batches = self.batches.lock();
        let first = batches.partition_point(|b| b.last_offset() < from_offset);
        batches[first..].to_vec()
    }

    /// Takes a snapshot fetched from a voter in place of the log before its end.
    fn take_snapshot(&self, s: MetadataSnapshot) {
        let end = s.id.end_offset;
        self.batches.lock().retain(|b| b.base_offset >= end);
        *self.snapshot.lock() = Some(s);
        self.end_offset.send_if_modified(|e| {
            let moved = *e < end;
            *e = (*e).max(end);
            moved
        });
    }

    /// Where the log fetched starts (the snapshot's end, once one was fetched).
    fn log_start_offset(&self) -> i64 {
        self.snapshot.lock().as_ref().map_or(0, |s| s.id.end_offset)
    }

    /// Takes a voter's answer to a fetch from this end offset.
    fn take(&self, from: i64, f: ObserverFetch) {
        {
            let mut batches = self.batches.lock();
            let new = f.batches.into_iter().map(MetadataBatch::from);
            batches.extend(new.filter(|b| b.base_offset >= from));
        }
        *self.quorum.lock() = Some(f.state);
        self.set_leader(f.leader);
        if f.end_offset > from {
            self.end_offset.send_replace(f.end_offset);
        }
    }
}

/// The metadata log of a broker-only process (see the module comment).
pub struct ObserverMetadataLog {
    node_id: i32,
    voters: Vec<QuorumNode>,
    /// How the voters are reached (the controller listener's security).
    channel: Arc<ClientChannel>,
    fetched: Arc<Fetched>,
    cancel: CancellationToken,
    runtime: QuorumRuntime,
}

impl ObserverMetadataLog {
    /// Starts fetching from `voters`; returns once a voter has answered with a leader known and
    /// everything it had committed fetched, so that the image the broker starts from is the
    /// quorum's.
    pub fn start(
        node_id: i32,
        voters: BTreeMap<NodeId, QuorumNode>,
        channel: Arc<ClientChannel>,
    ) -> Result<ObserverMetadataLog, MetadataLogError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("metadata-observer")
            .enable_all()
            .build()?;
        let voters: Vec<QuorumNode> = voters.into_values().collect();
        let fetched = Arc::new(Fetched::new());
        let cancel = CancellationToken::new();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        crate::server::background::spawn_on(
            runtime.handle(),
            follow(
                node_id,
                voters.clone(),
                Arc::clone(&channel),
                Arc::clone(&fetched),
                ready_tx,
                cancel.clone(),
            ),
        );
        ready.recv().map_err(|_| observer_stopped())?;
        Ok(ObserverMetadataLog {
            node_id,
            voters,
            channel,
            fetched,
            cancel,
            runtime: QuorumRuntime(Some(runtime)),
        })
    }
}

/// The voters to try, `leader` first when known.
fn targets(leader: Option<&QuorumNode>, voters: &[QuorumNode]) -> Vec<QuorumNode> {
    let others = voters.iter().filter(|v| Some(*v) != leader);
    leader.into_iter().chain(others).cloned().collect()
}

fn observer_stopped() -> MetadataLogError {
    MetadataLogError::Quorum("the metadata observer stopped".into())
}

/// The fetch loop: from the leader when known, else the voters in turn; `ready` is told once
/// an answer with a leader known brought everything committed.
async fn follow(
    node_id: i32,
    voters: Vec<QuorumNode>,
    channel: Arc<ClientChannel>,
    fetched: Arc<Fetched>,
    ready: std::sync::mpsc::Sender<()>,
    cancel: CancellationToken,
) {
    let mut ready = Some(ready);
    let mut next_voter = 0;
    let mut client: Option<TcpClient> = None;
    // The pauses after failed fetches, before the next voter is asked: growing while they
    // fail (a voter refusing this broker, or all down), from the start again once one answers.
    let mut backoff = transport::reconnect_backoff();
    loop {
        let target = fetched.leader().unwrap_or_else(|| {
            next_voter = (next_voter + 1) % voters.len().max(1);
            voters.get(next_voter).cloned().unwrap_or_default()
        });
        if client.as_ref().is_none_or(|c| *c.node() != target) {
            client = Some(TcpClient::to(&channel, &target));
        }
        let Some(c) = client.as_mut() else { continue };
        let from = *fetched.end_offset.borrow();
        let answer = tokio::select! {
            _ = cancel.cancelled() => return,
            answer = c.fetch(node_id, from) => answer,
        };
        // Below the voter's log start: its snapshot first.
        let answer = match answer {
            Ok(ObserverFetch {
                snapshot_id: Some(id),
                ..
            }) => {
                let fetched_snapshot = tokio::select! {
                    _ = cancel.cancelled() => return,
                    s = c.fetch_snapshot(id) => s,
                };
                let id = SnapshotId {
                    end_offset: id.0,
                    epoch: id.1,
                };
                match fetched_snapshot
                    .and_then(|bytes| read_snapshot(&bytes, id).map_err(MetadataLogError::Quorum))
                {
                    Ok(s) => {
                        tracing::info!(voter = %target, end_offset = id.end_offset, "fetched a metadata snapshot");
                        fetched.take_snapshot(s);
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
            answer => answer,
        };
        match answer {
            Ok(f) => {
                backoff = transport::reconnect_backoff();
                // Ready once a leader is known and everything committed is here.
                let caught_up = f.leader.is_some() && f.end_offset >= f.state.high_watermark;
                fetched.take(from, f);
                if caught_up {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
            }
            Err(e) => {
                tracing::debug!(voter = %target, error = %e, "metadata fetch failed");
                // Forget the leader: the next voter in turn tells who leads now.
                fetched.set_leader(None);
                client = None;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next().unwrap_or_default()) => {}
                }
            }
        }
    }
}

impl ObserverMetadataLog {
    /// Sends the write to a voter (the leader first), which forwards it to the leader; returns
    /// the offset of its last record once it is committed and fetched here. A write decided on
    /// a stale image is refused once this observer has fetched what it missed.
    fn write(
        &self,
        records: &[MetadataRecord],
        decided_on: Option<i64>,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        if records.is_empty() {
            return Ok(*self.fetched.end_offset.borrow() - 1);
        }
        let entry = MetadataEntry {
            records: records.to_vec(),
            append_time_ms: now_ms,
            decided_on,
        };
        let (channel, fetched) = (Arc::clone(&self.channel), Arc::clone(&self.fetched));
        let voters = self.voters.clone();
        let end = self.fetched.end_offset.subscribe();
        let fetched_up_to = move |until: i64| {
            let mut end = end.clone();
            async move {
                end.wait_for(|&e| e >= until)
                    .await
                    .map(|_| ())
                    .map_err(|_| observer_stopped())
            }
        };
        let append = async move {
            'send: loop {
                let leader = fetched.leader.borrow().clone();
                let mut last_error = None;
                for target in targets(leader.as_ref().map(|(_, node)| node), &voters) {
                    let sent = transport::observer_append(&channel, &target, entry.clone());
                    // Sent to the leader: the observer may learn of the next one before that
                    // one answers (cut off, it answers nothing until FORWARD_TIMEOUT). Another
                    // voter forwards it to the leader and does the same itself.
                    let answer = match &leader {
                        Some((id, node)) if *node == target => {
                            let moved = fetched.leader_moved_from(*id);
                            transport::unless_leader_moves(sent, moved, node).await
                        }
                        _ => sent.await,
                    };
                    match answer {
                        Ok(last) => {
                            fetched_up_to(last + 1).await?;
                            return Ok(last);
                        }
                        Err(ForwardError::Stale(at)) => {
                            fetched_up_to(at).await?;
                            return Err(MetadataLogError::StaleImage(at));
                        }
                        // Not sent: another voter may take it.
                        Err(ForwardError::Unreachable(e)) => {
                            last_error = Some(MetadataLogError::Quorum(e.to_string()))
                        }
                        // Sent again through the next leader, or failed, as the write allows.
                        Err(ForwardError::LeaderMoved(at)) => {
                            entry.resend_after_leader_moved(&at)?;
                            continue 'send;
                        }
                        Err(ForwardError::Failed(e)) => return Err(e),
                    }
                }
                let none = || MetadataLogError::Quorum("no voters".into());
                return Err(last_error.unwrap_or_else(none));
            }
        };
        wait_on(&self.runtime, committed_in_time(append))?
    }
}

impl MetadataLog for ObserverMetadataLog {
    fn append(&self, records: &[MetadataRecord], now_ms: i64) -> Result<i64, MetadataLogError> {
        self.write(records, None, now_ms)
    }

    /// An observer is never the controller: its writes all go through a voter.
    fn append_decided(
        &self,
        records: &[MetadataRecord],
        decided_on: i64,
        _writer: Writer,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        self.write(records, Some(decided_on), now_ms)
    }

    fn read(&self, from_offset: i64) -> Result<Vec<MetadataBatch>, MetadataLogError> {
        Ok(self.fetched.read(from_offset))
    }

    fn latest_snapshot(&self) -> Result<Option<MetadataSnapshot>, MetadataLogError> {
        Ok(self.fetched.snapshot.lock().clone())
    }

    fn log_start_offset(&self) -> i64 {
        self.fetched.log_start_offset()
    }

    fn committed(&self) -> Option<watch::Receiver<i64>> {
        Some(self.fetched.end_offset.subscribe())
    }

    /// The quorum as the voter last fetched from sees it (the leader's view, observers
    /// included, once this node fetches from the leader).
    fn quorum_state(&self) -> Option<QuorumState> {
        let quorum = self.fetched.quorum.lock();
        let mut state = quorum.as_ref()?.clone();
        state.high_watermark = *self.fetched.end_offset.borrow();
        Some(state)
    }

    fn send_to_controller(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, MetadataLogError> {
        let leader = self.fetched.leader().ok_or_else(|| {
            MetadataLogError::Quorum("no leader of the metadata quorum is known".into())
        })?;
        let channel = Arc::clone(&self.channel);
        let send = async move {
            transport::to_controller(&channel, &leader, request, CONTROLLER_TIMEOUT).await
        };
        wait_on(&self.runtime, send)?
    }

    /// Asked of the leader this observer fetches from, else of the voters in turn.
    fn describe_quorum(&self) -> Result<Option<QuorumState>, MetadataLogError> {
        let (channel, voters) = (Arc::clone(&self.channel), self.voters.clone());
        let leader = self.fetched.leader();
        let describe = async move {
            transport::describe_quorum(&channel, leader, &voters, CONTROLLER_TIMEOUT).await
        };
        wait_on(&self.runtime, describe)?.map(Some)
    }

    fn close(&self, _now_ms: i64) -> Result<(), MetadataLogError> {
        tracing::debug!(node = self.node_id, "stopping the metadata observer");
        self.cancel.cancel();
        Ok(())
    }
}

impl Drop for ObserverMetadataLog {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::tests::samples;

    fn answer(batches: &[(i64, usize)], end_offset: i64, leader: bool) -> ObserverFetch {
        let records = samples();
        let batch = |&(base, n): &(i64, usize)| super::super::WireBatch {
            base_offset: base,
            epoch: 1,
            entry: MetadataEntry {
                records: records[..n].to_vec(),
                append_time_ms: 0,
                decided_on: None,
            },
        };
        ObserverFetch {
            batches: batches.iter().map(batch).collect(),
            end_offset,
            state: QuorumState {
                leader_id: 1,
                leader_epoch: 1,
                high_watermark: end_offset,
                voters: vec![crate::metadata::metadata_log::ReplicaState::at(
                    1, end_offset,
                )],
                observers: vec![],
            },
            leader: leader.then(|| (1, QuorumNode::default())),
            snapshot_id: None,
        }
    }

    /// The fetched batches are read back as a voter's log is (the batch holding an offset,
    /// then the rest; a control batch's offsets, 3 here, are in no batch), an answer from a
    /// voter behind changes nothing, and the committed end only moves forward.
    #[test]
    fn fetched_batches_read_back_as_the_voters_log() {
        let fetched = Fetched::new();
        fetched.take(0, answer(&[(0, 2), (2, 1)], 4, false));
        assert_eq!(*fetched.end_offset.borrow(), 4);
        assert_eq!(fetched.leader(), None);
        fetched.take(4, answer(&[(4, 2)], 6, true));
        let bases =
            |from| -> Vec<i64> { fetched.read(from).iter().map(|b| b.base_offset).collect() };
        assert_eq!(bases(0), [0, 2, 4]);
        assert_eq!(bases(1), [0, 2, 4]);
        assert_eq!(bases(3), [4]);
        assert_eq!(bases(5), [4]);
        assert!(bases(6).is_empty());
        fetched.take(6, answer(&[], 5, true));
        assert_eq!(*fetched.end_offset.borrow(), 6);
        assert_eq!(fetched.leader(), Some(QuorumNode::default()));
    }
}
