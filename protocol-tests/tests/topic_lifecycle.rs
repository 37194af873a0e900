//! A topic's life cycle on disk: a deleted topic's background work (the log cleaner, retention)
//! never lands in a topic re-created under the same name, long names are deleted too, and a
//! creation that fails leaves nothing behind.

mod common;

use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bytes::Bytes;
use common::*;
use gregor::log::storage::{FileStorage, ReadAt, SegmentFile, Storage};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

/// Holds the first read of one segment file until the test opens it, so that a cleaning can be
/// caught half-way without guessing at timing.
#[derive(Default)]
struct Gate {
    /// (a read is waiting at the gate, the gate was opened)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 || s.1 {
            return; // one read only: the first
        }
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn someone_waits(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.0)
    }

    fn open(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_all();
    }
}

/// Real files; reads of the file whose path ends with `target` (or, `at_open`, its opening) pass
/// the gate first.
struct GateStorage {
    target: String,
    gate: Arc<Gate>,
    at_open: bool,
}

struct GatedFile {
    inner: Arc<dyn SegmentFile>,
    gate: Option<Arc<Gate>>,
}

impl Storage for GateStorage {
    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let gated = path.to_string_lossy().ends_with(&self.target);
        if gated && self.at_open {
            self.gate.wait();
        }
        Ok(Arc::new(GatedFile {
            inner: FileStorage.open_segment(path, create)?,
            gate: (gated && !self.at_open).then(|| Arc::clone(&self.gate)),
        }))
    }
}

impl ReadAt for GatedFile {
    fn pread_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.wait();
        }
        self.inner.pread_exact(buf, pos)
    }
}

impl SegmentFile for GatedFile {
    fn append(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        self.inner.append(bufs)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn identity(&self) -> io::Result<(u64, u64)> {
        self.inner.identity()
    }
    fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.as_fd()
    }
}

fn keyed(pairs: &[(&str, &str)]) -> Bytes {
    let recs: Vec<Rec> = pairs
        .iter()
        .map(|(k, v)| Rec {
            key: Some(bytes_of(k)),
            value: Some(bytes_of(v)),
            headers: Vec::new(),
            timestamp: now_ms(),
        })
        .collect();
    build_batch(Compression::None, &recs, None)
}

fn compacted(topic: &str) -> create_topics_request::CreatableTopic {
    let t = with_config(creatable(topic, 1), "cleanup.policy", "compact");
    let t = with_config(t, "segment.ms", "100");
    with_config(t, "min.cleanable.dirty.ratio", "0.01")
}

async fn delete_topic(c: &mut Client, topic: &str) -> Result<()> {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(name(topic)))
        ]);
    let r = c.request(6, req).await?;
    ensure!(r.responses[0].error_code == NONE, "delete {topic}: {r:?}");
    Ok(())
}

/// Kafka aborts the cleaning of a partition and waits for it before renaming a deleted topic's
/// directory (LogManager.asyncDelete calls LogCleaner.abortCleaning first), and the deleted log
/// object never writes anywhere else afterwards. Here the cleaner is held half-way through a
/// partition while its topic is deleted and re-created: the records of the new topic must be the
/// only ones there, before and after a restart.
#[tokio::test]
async fn a_deleted_topics_cleaning_never_lands_in_a_recreated_topic() -> Result<()> {
    let gate = Arc::new(Gate::default());
    let storage = GateStorage {
        target: "cmp-0/00000000000000000000.log".into(),
        gate: Arc::clone(&gate),
        at_open: false,
    };
    let mut b = TestBroker::start_on(Arc::new(storage), |c| c.log_cleaner_backoff_ms = 50).await?;
    let mut c = b.client().await?;
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![compacted("cmp")], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    produce_ok(&mut c, "cmp", 0, keyed(&[("a", "old1")])).await?;
    produce_ok(&mut c, "cmp", 0, keyed(&[("a", "old2"), ("b", "old1")])).await?;
    sleep_ms(150).await; // segment.ms: the next batch rolls, the first segment becomes cleanable
    produce_ok(&mut c, "cmp", 0, keyed(&[("c", "old1")])).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gate.someone_waits() {
        ensure!(
            Instant::now() < deadline,
            "the cleaner never read the segment"
        );
        sleep_ms(10).await;
    }
    // The cleaner now waits inside its read of the old segment.
    delete_topic(&mut c, "cmp").await?;
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![compacted("cmp")], false).await?;
    ensure!(r[0].error_code == NONE, "{r:?}");
    produce_ok(&mut c, "cmp", 0, keyed(&[("new", "kept")])).await?;
    gate.open();
    // A clean shutdown waits for the cleaning pass to end.
    b.restart_clean().await?;
    let mut c = b.client().await?;
    let got = fetch_all(&mut c, "cmp", 0).await?;
    let got: Vec<(i64, Option<Bytes>)> = got.iter().map(|r| (r.offset, r.key.clone())).collect();
    ensure!(
        got == vec![(0, Some(bytes_of("new")))],
        "the re-created topic holds only its own record: {got:?}"
    );
    let left: Vec<String> = std::fs::read_dir(b.data_dir().join("cmp-0"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    ensure!(
        !left.iter().any(|f| f.ends_with(".cleaned")),
        "no rewritten segment of the old topic in the new directory: {left:?}"
    );
    Ok(())
}

/// Kafka renames a deleted partition's directory to `<topic>-<partition>.<id>-delete` with the
/// topic part cut short so that the name fits in 255 bytes (UnifiedLog.logDeleteDirName): a
/// topic with a name of the maximum length (249) is deleted, files and all, like any other.
#[tokio::test]
async fn a_topic_with_a_long_name_is_deleted_from_disk() -> Result<()> {
    let mut b = start_broker().await?;
    let mut c = b.client().await?;
    let long = "l".repeat(249);
    create_topic(&mut c, &long, 2).await?;
    produce_ok(&mut c, &long, 1, values_batch(&["x"])).await?;
    delete_topic(&mut c, &long).await?;
    let left: Vec<String> = std::fs::read_dir(b.data_dir())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lll"))
        .collect();
    ensure!(left.is_empty(), "left on disk: {left:?}");
    // The name is free again, and the new topic starts empty, also after a restart.
    create_topic(&mut c, &long, 1).await?;
    b.restart_clean().await?;
    let mut c = b.client().await?;
    ensure!(list_offset(&mut c, &long, 0, -1).await?.offset == 0);
    Ok(())
}

/// Real files, but opening a segment whose path contains one of `targets` fails with EMFILE
/// after the file was made, as when the descriptors run out between a segment and its indexes.
struct FailingOpens {
    targets: Vec<&'static str>,
}

impl Storage for FailingOpens {
    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let file = FileStorage.open_segment(path, create)?;
        let path = path.to_string_lossy();
        if self.targets.iter().any(|t| path.contains(t)) {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        Ok(file)
    }
}

fn entries_starting_with(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Kafka's controller creates a topic whole or not at all; a creation that fails half-way here
/// (the fourth partition cannot be opened) leaves no directory behind, and the strict offline
/// check passes. The same for partitions added by CreatePartitions.
#[tokio::test]
async fn a_failed_creation_leaves_nothing_behind() -> Result<()> {
    let storage = FailingOpens {
        targets: vec!["half-3/", "grow-3/"],
    };
    let mut b = TestBroker::start_on(Arc::new(storage), |_| {}).await?;
    let mut c = b.client().await?;
    let r = create_topics(&mut c, CREATE_TOPICS_V, vec![creatable("half", 6)], false).await?;
    ensure!(r[0].error_code != NONE, "{r:?}");
    let left = entries_starting_with(b.data_dir(), "half")?;
    ensure!(left.is_empty(), "left by a failed CreateTopics: {left:?}");
    create_topic(&mut c, "grow", 1).await?;
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("grow"))
            .with_count(6)]);
    let r = c.request(3, req).await?;
    ensure!(r.results[0].error_code != NONE, "{r:?}");
    let left = entries_starting_with(b.data_dir(), "grow")?;
    ensure!(
        left == vec!["grow-0".to_string()],
        "left by a failed CreatePartitions: {left:?}"
    );
    b.shutdown().await?;
    let reports = gregor::log::check::check_data_dir(b.data_dir(), Default::default())?;
    let problems: Vec<_> = reports.iter().flat_map(|r| r.problems.clone()).collect();
    ensure!(problems.is_empty(), "strict check: {problems:?}");
    Ok(())
}

/// Creating a topic's directories and files is slow for thousands of partitions; Kafka does it in
/// its log manager, never on the threads that serve requests. Here the creation is held inside
/// the opening of its first segment on a broker with a single request thread: another client is
/// still answered meanwhile, and the creation then completes and is answered as before.
#[tokio::test]
async fn directory_work_never_holds_other_clients_up() -> Result<()> {
    let gate = Arc::new(Gate::default());
    let storage = GateStorage {
        target: "slow-0/00000000000000000000.log".into(),
        gate: Arc::clone(&gate),
        at_open: true,
    };
    let dir = tempfile::tempdir()?;
    let config = gregor::Config::for_tests(dir.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let running = rt
        .spawn(gregor::start_on(Arc::new(storage), config))
        .await??;
    let addr = running.local_addr;
    let mut creator = Client::connect(addr).await?;
    let create = tokio::spawn(async move {
        create_topics(
            &mut creator,
            CREATE_TOPICS_V,
            vec![creatable("slow", 3)],
            false,
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gate.someone_waits() {
        ensure!(
            Instant::now() < deadline,
            "the creation never reached its first segment"
        );
        sleep_ms(10).await;
    }
    // The client gives up after 20 s (a deadline, not a measurement): while the creation holds
    // the request thread, the answer never comes.
    let mut other = Client::connect(addr).await?;
    let answered = metadata(
        &mut other,
        METADATA_V,
        metadata_topics(&["elsewhere"]),
        false,
    )
    .await;
    gate.open();
    let created = create.await;
    drop(running);
    rt.shutdown_background();
    ensure!(
        answered.is_ok(),
        "another client was not served during the creation: {answered:?}"
    );
    let created = created??;
    ensure!(created[0].error_code == NONE, "{created:?}");
    Ok(())
}
