//! Data directories written by earlier releases open in this one with every topic, id, config,
//! record, committed offset and producer state kept, and open the same way again:
//! - gregor 28bd00d, the last main before the metadata log, kept topics as one file each under
//!   `gregor-metadata/topics/`, which start-up migrates into `__cluster_metadata-0`;
//! - gregor f72168b, the first release with the metadata log, whose records still replay.
//!
//! A fixture `fixtures/data-<commit>.tar.gz` holds `data/` (the directory that release wrote)
//! and `expected.properties` (the cluster id, topic ids and producer id it answered); it is made
//! by `fixtures/make-data.sh <commit>`, which runs the old binary and `write_fixture` below
//! against it. What was written is `CONTENT` (and the functions beside it), which both sides use.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

/// Record timestamps: 2026-01-01T00:00:00Z onwards (fixed, so that the fixture is reproducible).
const BASE_TS: i64 = 1_767_225_600_000;

struct TopicSpec {
    name: &'static str,
    partitions: i32,
    configs: &'static [(&'static str, &'static str)],
    /// Batches per partition, records per batch.
    batches: i32,
    per_batch: i32,
}

/// Segments are small in the fixture (the old broker ran with log.segment.bytes=1024), so every
/// partition of `orders` spans several. No topic deletes by time: the records' fixed timestamps
/// would otherwise be past retention whenever the test runs.
const CONTENT: &[TopicSpec] = &[
    TopicSpec {
        name: "orders",
        partitions: 3,
        configs: &[("max.message.bytes", "200000"), ("retention.ms", "-1")],
        batches: 6,
        per_batch: 4,
    },
    TopicSpec {
        name: "profiles",
        partitions: 1,
        configs: &[
            ("cleanup.policy", "compact"),
            ("compression.type", "gzip"),
            ("max.message.bytes", "65536"),
            ("min.compaction.lag.ms", "3600000"),
        ],
        batches: 5,
        per_batch: 3,
    },
    TopicSpec {
        name: "events",
        partitions: 1,
        configs: &[
            ("retention.ms", "3153600000000"),
            ("segment.ms", "86400000"),
        ],
        batches: 0,
        per_batch: 0,
    },
];

/// `events-0` holds only the idempotent producer's batches: IDEMPOTENT_BATCHES of two records.
const IDEMPOTENT_BATCHES: i32 = 3;
/// The classic group and its commits (topic, partition, offset, metadata), made by a member that
/// joined, synced, committed and left.
const GROUP: &str = "billing";
const GROUP_COMMITS: &[(&str, i32, i64, &str)] = &[
    ("orders", 0, 10, "m-0"),
    ("orders", 1, 17, "m-1"),
    ("orders", 2, 24, ""),
    ("events", 0, 4, "ev"),
];
/// A group that only ever committed (generation -1, no member), as a standalone consumer does.
const SIMPLE_GROUP: &str = "audit";
const SIMPLE_COMMIT: (&str, i32, i64, &str) = ("profiles", 0, 7, "simple");
/// Dynamic broker configs: (resource name, config, value); "1" is this broker, "" the default.
const BROKER_CONFIGS: &[(&str, &str, &str)] = &[
    ("1", "message.max.bytes", "2000000"),
    ("", "log.retention.bytes", "10737418240"),
];

fn record(topic: &str, p: i32, i: i32) -> Rec {
    let key = format!("{topic}-{p}-{i}");
    let mut r = Rec::kv(
        &key,
        noise(40 + (i as usize % 7) * 10, (p * 1000 + i) as u64),
    )
    .with_timestamp(BASE_TS + i64::from(p) * 100_000 + i64::from(i) * 1000);
    r = r.with_header("trace", Some(format!("t{i}").as_bytes()));
    if i % 3 == 0 {
        r = r.with_header("empty", None);
    }
    r
}

fn batch_records(t: &TopicSpec, p: i32, batch: i32) -> Vec<Rec> {
    (0..t.per_batch)
        .map(|j| record(t.name, p, batch * t.per_batch + j))
        .collect()
}

fn codec(batch: i32) -> Compression {
    ALL_CODECS[batch as usize % ALL_CODECS.len()]
}

fn idempotent_records(batch: i32) -> Vec<Rec> {
    (0..2).map(|j| record("events", 0, batch * 2 + j)).collect()
}

fn idempotent(batch: i32, pid: i64, epoch: i16) -> Bytes {
    build_batch(
        codec(batch),
        &idempotent_records(batch),
        Some((pid, epoch, batch * 2)),
    )
}

/// Every record a partition holds, in offset order.
fn partition_records(topic: &str, p: i32) -> Vec<Rec> {
    if topic == "events" {
        return (0..IDEMPOTENT_BATCHES)
            .flat_map(idempotent_records)
            .collect();
    }
    let t = CONTENT.iter().find(|t| t.name == topic).unwrap();
    (0..t.batches)
        .flat_map(|b| batch_records(t, p, b))
        .collect()
}

fn topic_configs(t: &TopicSpec) -> BTreeMap<String, String> {
    t.configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ----- What the old broker answered -----

/// The ids the old broker answered: `cluster.id`, `topic.<name>`, `producer.id`,
/// `producer.epoch`.
struct Expected(BTreeMap<String, String>);

impl Expected {
    fn get(&self, key: &str) -> Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("{key} missing from expected.properties"))
    }

    fn topic_id(&self, topic: &str) -> Result<Uuid> {
        Ok(Uuid::parse_str(self.get(&format!("topic.{topic}"))?)?)
    }

    fn producer(&self) -> Result<(i64, i16)> {
        Ok((
            self.get("producer.id")?.parse()?,
            self.get("producer.epoch")?.parse()?,
        ))
    }
}

// ----- Requests -----

/// Every config of a topic or broker whose source is `source` (1 DYNAMIC_TOPIC_CONFIG, 2
/// DYNAMIC_BROKER_CONFIG, 3 DYNAMIC_DEFAULT_BROKER_CONFIG), as DescribeConfigs answers them.
async fn configs_from(
    c: &mut Client,
    resource_type: i8,
    name: &str,
    source: i8,
) -> Result<BTreeMap<String, String>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))]);
    let r = c.request(4, req).await?;
    ensure!(
        r.results.len() == 1 && r.results[0].error_code == NONE,
        "describe {name}: {r:?}"
    );
    Ok(r.results[0]
        .configs
        .iter()
        .filter(|e| e.config_source == source)
        .map(|e| {
            let v = e.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (e.name.to_string(), v)
        })
        .collect())
}

async fn set_broker_config(c: &mut Client, resource: &str, key: &str, value: &str) -> Result<()> {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(resource))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let r = c.request(1, req).await?;
    ensure!(r.responses[0].error_code == NONE, "alter {key}: {r:?}");
    Ok(())
}

fn produced(got: &[Fetched]) -> Vec<Rec> {
    got.iter().map(Fetched::as_rec).collect()
}

// ----- Writing the fixture (with the old release) -----

/// Writes `CONTENT` to the broker at `GREGOR_OLD_ADDR` and the ids it answered to
/// `GREGOR_OLD_EXPECTED`; `fixtures/make-data.sh` runs it against the old binary.
#[tokio::test]
#[ignore = "run by fixtures/make-data.sh against an earlier release"]
async fn write_fixture() -> Result<()> {
    let addr = std::env::var("GREGOR_OLD_ADDR").context("GREGOR_OLD_ADDR")?;
    let out = std::env::var("GREGOR_OLD_EXPECTED").context("GREGOR_OLD_EXPECTED")?;
    let mut c = Client::connect(addr.parse()?).await?;
    let mut expected = String::new();
    for t in CONTENT {
        let mut topic = creatable(t.name, t.partitions);
        for (k, v) in t.configs {
            topic = with_config(topic, k, v);
        }
        let r = create_topics(&mut c, CREATE_TOPICS_V, vec![topic], false).await?;
        ensure!(r[0].error_code == NONE, "create {}: {r:?}", t.name);
        expected += &format!("topic.{}={}\n", t.name, topic_id(&mut c, t.name).await?);
        for p in 0..t.partitions {
            for b in 0..t.batches {
                let batch = build_batch(codec(b), &batch_records(t, p, b), None);
                let at = produce_ok(&mut c, t.name, p, batch).await?;
                ensure!(
                    at == i64::from(b * t.per_batch),
                    "{}-{p} batch {b} at {at}",
                    t.name
                );
            }
        }
    }
    let (pid, epoch) = init_producer_id(&mut c).await?;
    for b in 0..IDEMPOTENT_BATCHES {
        ensure!(
            produce_ok(&mut c, "events", 0, idempotent(b, pid, epoch)).await? == i64::from(b * 2)
        );
    }
    expected += &format!("producer.id={pid}\nproducer.epoch={epoch}\n");
    let spec = JoinSpec::consumer(GROUP, &["orders", "events"]);
    let member = stable_member(&mut c, &spec, b"assignment").await?;
    commit_ok(
        &mut c,
        GROUP,
        &member.member_id,
        member.generation,
        GROUP_COMMITS,
    )
    .await?;
    let r = leave(&mut c, LEAVE_V, GROUP, &[(&member.member_id, None)]).await?;
    ensure!(r.error_code == NONE, "leave: {r:?}");
    commit_ok(&mut c, SIMPLE_GROUP, "", -1, &[SIMPLE_COMMIT]).await?;
    for (resource, key, value) in BROKER_CONFIGS {
        set_broker_config(&mut c, resource, key, value).await?;
    }
    let offsets_id = topic_id(&mut c, "__consumer_offsets").await?;
    expected += &format!("topic.__consumer_offsets={offsets_id}\n");
    let m = metadata(&mut c, METADATA_V, Some(vec![]), false).await?;
    let cluster = m.cluster_id.context("no cluster id")?;
    expected += &format!("cluster.id={cluster}\n");
    // What the old broker holds is what the test expects of the new one.
    let written = parse_expected(&expected);
    check_content(&mut c, &written).await?;
    check_duplicates(&mut c, &written).await?;
    std::fs::write(out, expected)?;
    Ok(())
}

fn parse_expected(text: &str) -> Expected {
    Expected(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

// ----- What the data directory holds -----

/// Topics, ids, partition counts, configs, records, committed offsets and broker configs as they
/// were written (read-only: safe against either release).
async fn check_content(c: &mut Client, expected: &Expected) -> Result<()> {
    let m = metadata(c, METADATA_V, None, false).await?;
    ensure!(
        m.cluster_id.as_deref() == Some(expected.get("cluster.id")?),
        "cluster id: {:?}",
        m.cluster_id
    );
    let mut names: Vec<String> = m
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    ensure!(
        names == ["events", "orders", "profiles"],
        "topics listed: {names:?}"
    );
    for t in CONTENT {
        let listed = m
            .topics
            .iter()
            .find(|x| x.name.as_ref().map(|n| n.as_str()) == Some(t.name))
            .context("topic missing")?;
        ensure!(
            listed.error_code == NONE && listed.topic_id == expected.topic_id(t.name)?,
            "{}: {listed:?}",
            t.name
        );
        ensure!(
            listed.partitions.len() == t.partitions as usize
                && listed.partitions.iter().all(|p| p.leader_id == 1),
            "{}: {listed:?}",
            t.name
        );
        let configs = configs_from(c, 2, t.name, 1).await?;
        ensure!(
            configs == topic_configs(t),
            "{} configs: {configs:?}",
            t.name
        );
        for p in 0..t.partitions {
            let want = partition_records(t.name, p);
            let got = fetch_all(c, t.name, p).await?;
            let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
            ensure!(
                offsets == (0..want.len() as i64).collect::<Vec<_>>(),
                "{}-{p} offsets: {offsets:?}",
                t.name
            );
            ensure!(produced(&got) == want, "{}-{p} records differ", t.name);
            ensure!(list_offset(c, t.name, p, -1).await?.offset == want.len() as i64);
            // The time index: the first record at or after a timestamp.
            if let Some(r) = got.get(5) {
                let found = list_offset(c, t.name, p, r.timestamp).await?;
                ensure!(found.offset == 5, "{}-{p} by time: {found:?}", t.name);
            }
        }
    }
    let offsets_id = topic_id(c, "__consumer_offsets").await?;
    ensure!(offsets_id == expected.topic_id("__consumer_offsets")?);
    let (code, offsets) = fetch_offsets(c, OFFSET_FETCH_V, GROUP, None).await?;
    let mut got: Vec<(String, i32, i64, String)> = offsets
        .iter()
        .map(|o| {
            let m = o.metadata.clone().unwrap_or_default();
            (o.topic.clone(), o.partition, o.offset, m)
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, i32, i64, String)> = GROUP_COMMITS
        .iter()
        .map(|(t, p, o, m)| (t.to_string(), *p, *o, m.to_string()))
        .collect();
    want.sort();
    ensure!(code == NONE && got == want, "{GROUP} offsets: {got:?}");
    let (t, p, o, _) = SIMPLE_COMMIT;
    ensure!(committed(c, SIMPLE_GROUP, t, p).await? == o);
    let g = describe_group(c, GROUP).await?;
    ensure!(
        g.group_state.as_str() == "Empty" && g.protocol_type.as_str() == "consumer",
        "{g:?}"
    );
    for (resource, key, value) in BROKER_CONFIGS {
        let source = if resource.is_empty() { 3 } else { 2 };
        let got = configs_from(c, 4, resource, source).await?;
        ensure!(
            got.get(*key).map(String::as_str) == Some(*value),
            "broker {resource:?} {key}: {got:?}"
        );
    }
    Ok(())
}

/// The idempotent producer's state survived: a retry of its last batch is a duplicate (the
/// original offset, nothing appended) and a gap in its sequence is out of order.
async fn check_duplicates(c: &mut Client, expected: &Expected) -> Result<()> {
    let (pid, epoch) = expected.producer()?;
    let end = i64::from(IDEMPOTENT_BATCHES * 2);
    let last = IDEMPOTENT_BATCHES - 1;
    let retry = produce_ok(c, "events", 0, idempotent(last, pid, epoch)).await?;
    ensure!(retry == end - 2, "retry of the last batch at {retry}");
    ensure!(list_offset(c, "events", 0, -1).await?.offset == end);
    let gap = idempotent(IDEMPOTENT_BATCHES + 1, pid, epoch);
    let r = produce(c, "events", 0, gap).await?;
    ensure!(r.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER, "{r:?}");
    Ok(())
}

/// The producer goes on where it stopped, and a new producer gets another id. Appends a batch:
/// run it last.
async fn check_producer_goes_on(c: &mut Client, expected: &Expected) -> Result<()> {
    let (pid, epoch) = expected.producer()?;
    let end = i64::from(IDEMPOTENT_BATCHES * 2);
    let next = produce_ok(c, "events", 0, idempotent(IDEMPOTENT_BATCHES, pid, epoch)).await?;
    ensure!(next == end, "next batch at {next}");
    // A new producer is not handed the old one's id.
    let (fresh, _) = init_producer_id(c).await?;
    ensure!(fresh != pid, "producer id {pid} handed out again");
    Ok(())
}

// ----- Unpacking the fixture -----

/// Unpacks a gzipped ustar archive (what the script writes: directories and regular files).
fn unpack(archive: &Path, into: &Path) -> Result<()> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(archive)?).read_to_end(&mut tar)?;
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &tar[at..at + 512];
        let field = |from: usize, len: usize| {
            let f = &h[from..from + len];
            let end = f.iter().position(|&b| b == 0).unwrap_or(len);
            String::from_utf8_lossy(&f[..end]).trim().to_string()
        };
        let (prefix, name) = (field(345, 155), field(0, 100));
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        ensure!(!path.split('/').any(|c| c == ".."), "unsafe path {path}");
        let size = usize::from_str_radix(&field(124, 12), 8).context("tar size")?;
        let target = into.join(&path);
        match h[156] {
            b'5' => std::fs::create_dir_all(&target)?,
            b'0' | 0 => {
                let data = tar
                    .get(at + 512..at + 512 + size)
                    .context("truncated tar")?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, data)?;
            }
            t => bail!("unexpected tar entry type {t} for {path}"),
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    Ok(())
}

/// The fixture's data directory in a temporary directory, and what the old broker answered.
fn unpack_fixture(commit: &str) -> Result<(tempfile::TempDir, Expected)> {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("data-{commit}.tar.gz"));
    let work = tempfile::tempdir()?;
    unpack(&archive, work.path())?;
    let text = std::fs::read_to_string(work.path().join("expected.properties"))?;
    let dir = tempfile::tempdir()?;
    // The broker's directory is exactly what the old release left.
    std::fs::remove_dir(dir.path())?;
    std::fs::rename(work.path().join("data"), dir.path())?;
    Ok((dir, parse_expected(&text)))
}

/// The topic records of the metadata log (read with the broker stopped).
fn topic_records(data_dir: &Path) -> Result<Vec<(String, Uuid)>> {
    use gregor::metadata::metadata_log::{LocalMetadataLog, MetadataLog};
    use gregor::metadata::records::MetadataRecord;
    let storage = Arc::new(gregor::log::storage::FileStorage);
    let log = LocalMetadataLog::open(storage, data_dir, true, 0)?;
    Ok(log
        .read(0)?
        .into_iter()
        .flat_map(|b| b.records)
        .filter_map(|r| match r {
            MetadataRecord::Topic { name, topic_id } => Some((name, topic_id)),
            _ => None,
        })
        .collect())
}

/// Opens the fixture of `commit` (whose topics are files to migrate, or already metadata
/// records), checks it, stops, checks the metadata log, and opens it once more.
async fn opens_with_everything_kept(commit: &str, topic_files_to_migrate: usize) -> Result<()> {
    let (dir, expected) = unpack_fixture(commit)?;
    let topic_files = dir.path().join("gregor-metadata/topics");
    let files = std::fs::read_dir(&topic_files).map_or(0, |d| d.count());
    ensure!(
        files == topic_files_to_migrate,
        "the fixture's topic files: {files}"
    );
    ensure!(dir.path().join("__cluster_metadata-0").exists() == (files == 0));
    let storage = Arc::new(gregor::log::storage::FileStorage);
    let mut b = TestBroker::start_in(dir, storage, |_| {}).await?;
    let mut c = b.client().await?;
    check_content(&mut c, &expected).await?;
    check_duplicates(&mut c, &expected).await?;
    b.shutdown().await?;
    // Migrated: the topics are records of the metadata log, each once, and their files are gone.
    let data = b.data_dir().to_path_buf();
    let mut migrated = topic_records(&data)?;
    migrated.sort();
    let mut want = vec![(
        "__consumer_offsets".to_string(),
        expected.topic_id("__consumer_offsets")?,
    )];
    for t in CONTENT {
        want.push((t.name.to_string(), expected.topic_id(t.name)?));
    }
    want.sort();
    ensure!(migrated == want, "topic records: {migrated:?}");
    let left = std::fs::read_dir(&topic_files).map_or(0, |d| d.count());
    ensure!(left == 0, "topic files left: {left}");
    // Opened again, the migrated directory holds the same, and nothing migrates twice.
    b.start_again().await?;
    let mut c = b.client().await?;
    check_content(&mut c, &expected).await?;
    check_duplicates(&mut c, &expected).await?;
    check_producer_goes_on(&mut c, &expected).await?;
    b.shutdown().await?;
    let mut again = topic_records(&data)?;
    again.sort();
    ensure!(again == want, "topic records after a restart: {again:?}");
    Ok(())
}

#[tokio::test]
async fn a_data_directory_with_topic_files_migrates_with_everything_kept() -> Result<()> {
    opens_with_everything_kept("28bd00d", 4).await
}

#[tokio::test]
async fn a_data_directory_of_the_first_metadata_log_release_opens_with_everything_kept(
) -> Result<()> {
    opens_with_everything_kept("f72168b", 0).await
}
