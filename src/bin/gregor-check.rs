//! `gregor-check`: verifies the logs of a stopped broker's data directory without changing
//! anything (see `gregor::log::check` for what is asserted). Used by `scripts/torture`.
//!
//! Output, one line per partition directory, then its problems indented:
//!   partition NAME start=S end=E segments=N batches=B records=R torn_tail_bytes=T status=ok|BAD
//! With `--batches`, one line per batch:
//!   batch NAME SEGMENT_BASE POSITION SIZE BASE_OFFSET LAST_OFFSET
//! Exit status: 0 when every partition is consistent, 1 when a problem was found, 2 on an error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use gregor::log::check::{check_data_dir, CheckOptions};

/// Offline consistency check of a gregor (or Kafka) data directory: CRCs, dense offsets, indexes.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The broker's data directory (log.dirs); the broker must not be running
    data_dir: PathBuf,
    /// Accept a torn tail in the last segment of each partition (right after a crash)
    #[arg(long)]
    allow_torn_tail: bool,
    /// Print every batch
    #[arg(long)]
    batches: bool,
    /// Accept offset gaps in every partition, as compaction leaves them (compacted topics are
    /// found from their stored configs without this flag)
    #[arg(long)]
    sparse_offsets: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = CheckOptions {
        allow_torn_tail: cli.allow_torn_tail,
        list_batches: cli.batches,
        sparse_offsets: cli.sparse_offsets,
    };
    let reports = match check_data_dir(&cli.data_dir, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gregor-check: {}: {e}", cli.data_dir.display());
            return ExitCode::from(2);
        }
    };
    let mut bad = false;
    for r in &reports {
        let name = r
            .dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let status = if r.problems.is_empty() { "ok" } else { "BAD" };
        println!(
            "partition {name} start={} end={} segments={} batches={} records={} torn_tail_bytes={} status={status}",
            r.log_start_offset, r.log_end_offset, r.segments, r.batches, r.records, r.torn_tail_bytes
        );
        for p in &r.problems {
            println!("  {p}");
        }
        for b in &r.batch_list {
            println!(
                "batch {name} {} {} {} {} {}",
                b.segment_base, b.position, b.size, b.base_offset, b.last_offset
            );
        }
        bad |= !r.problems.is_empty();
    }
    if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
