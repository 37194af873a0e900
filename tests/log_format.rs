//! `--log-format json`: every line the broker writes to stderr is one JSON object, from start-up
//! to shutdown, with the fields log shippers read (timestamp, level, target, message, and the
//! event's own fields beside them).

// A test may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let ready = v["message"] == "gregor is ready";
        seen.push(v);
        if ready {
            break;
        }
    }
    // SIGTERM: the shutdown is logged as JSON too.
    sigterm(child.id());
    for line in lines {
        let line = line.unwrap();
        seen.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
    }
    assert!(child.wait().unwrap().success());
    let ready = seen
        .iter()
        .find(|v| v["message"] == "gregor is ready")
        .unwrap();
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["target"], "gregor");
    assert_eq!(ready["data_dir"], dir.path().display().to_string());
    assert!(ready["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(seen.iter().any(|v| v["message"] == "shutting down"));
}

/// SIGTERM through kill(1), which every machine the tests run on has.
fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
