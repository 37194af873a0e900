//! The `gregor` binary: parse the configuration, start the broker, stop cleanly on a signal.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use gregor::config::{Config, Sources};

/// A Kafka-wire-compatible broker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Address to listen on, HOST:PORT [default: 127.0.0.1:9092, or `listeners`]
    #[arg(long)]
    listen: Option<String>,
    /// Address Metadata gives to clients, HOST:PORT [default: the listen address]
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Data directory [default: /tmp/gregor-data, or `log.dirs`]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A Kafka server.properties file
    #[arg(long)]
    config: Option<PathBuf>,
    /// A Kafka setting, KEY=VALUE (repeatable), e.g. --override num.partitions=4
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Brokers to serve in this process (node ids from node.id on, ports consecutive from the
    /// listen port), over one copy of the data [default: 1]
    #[arg(long)]
    brokers: Option<u16>,
    /// Serve the admin HTTP API (JSON: health, broker stop/start, the test control plane) on HOST:PORT [default: off]
    #[arg(long)]
    admin_listen: Option<String>,
    /// Requests the admin API's request journal keeps (GET /v1/journal; 0: none) [default: 10000]
    #[arg(long)]
    journal_size: Option<usize>,
    /// The broker's clock for the expiries it decides itself (session, rebalance and
    /// transaction timeouts, retention): `system`, or `manual` (starts at the wall clock, moves
    /// only on POST /v1/clock/advance; needs --admin-listen) [default: system]
    #[arg(long, value_name = "system|manual")]
    clock: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on every admin API request [default: none]
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// Serve the Confluent Schema Registry REST API on HOST:PORT, schemas stored in the
    /// `_schemas` topic [default: off]
    #[arg(long)]
    schema_registry_listen: Option<String>,
    /// Advertise and serve only the API versions of this Apache Kafka release (2.8 to 4.4), to
    /// test a client against an older cluster [default: gregor's own, Kafka 4.4's]
    #[arg(long, value_name = "X.Y")]
    emulate_kafka_version: Option<String>,
    /// Seed data: topics with configs, records and committed group offsets from a JSON document
    /// (README, "Testing with gregor"), applied at start-up when the broker has no topics yet
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Log lines as `text` or as `json` objects, one per line, for log shippers; RUST_LOG
    /// filters either [default: text]
    #[arg(long, value_name = "text|json", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cli_log_json = cli.log_format == "json";
    // RUST_LOG as `level` and `target=level` directives, comma-separated; unset, empty or
    // unreadable: info.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // The fmt subscriber's own filter lets everything through: RUST_LOG's directives are the
    // filter (its default, INFO, dropped every debug line a directive asked for).
    let logs = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr);
    match cli.log_format.as_str() {
        // One JSON object per line: timestamp, level, target, and the event's fields flattened
        // beside its message, as log shippers (Vector, Fluent Bit, Loki's promtail) read them.
        "json" => logs.json().flatten_event(true).finish().with(filter).init(),
        _ => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish()
            .with(filter)
            .init(),
    }
    let sources = Sources {
        listen: cli.listen,
        advertised_listener: cli.advertised_listener,
        data_dir: cli.data_dir,
        config_file: cli.config,
        overrides: cli.overrides,
        brokers: cli.brokers,
        admin_listen: cli.admin_listen,
        journal_size: cli.journal_size,
        clock: cli.clock,
        admin_token: cli.admin_token,
        schema_registry_listen: cli.schema_registry_listen,
        emulate_kafka_version: cli.emulate_kafka_version,
        seed: cli.seed,
    };
    let config = Config::load(&sources, std::env::vars()).context("invalid configuration")?;
    for name in &config.unused {
        tracing::warn!(setting = %name, "Kafka setting accepted but not used by gregor");
    }
    // The ready line names the data directory too; a JSON stream holds only JSON lines.
    if !cli_log_json {
        eprintln!("gregor: data directory {}", config.data_dir.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Caught from before the broker says it is ready: a SIGTERM that a supervisor sends
        // right after the ready line is a clean shutdown, not the default disposition's kill.
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let running = gregor::start(config)
            .await
            .context("cannot start the broker")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down");
        running.shutdown().await.context("clean shutdown failed")
    })
}
