//! Support for tests that start brokers on fixed ports (this crate's and protocol-tests').
//!
//! A port found by binding port 0 comes from the kernel's ephemeral range, and between the probe's
//! close and the broker's own bind any outbound connection on the machine (a client's, a
//! download's) may be given the same number as its local port: the broker then fails to start
//! with "Address already in use" (a flake of the replication tests while CI downloaded beside
//! them). Below the ephemeral range the kernel hands out no port on its own, so only another
//! picker like this one (or compat/ports.py, its twin for the scripts) can draw the same number,
//! and the probe's bind refuses ports already bound.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::TcpListener;

/// `count` distinct free loopback ports below the ephemeral range, for listeners whose port has
/// to be known before the broker starts (a quorum's voters).
pub fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    let (low, high) = below_ephemeral();
    let mut ports: Vec<u16> = Vec::with_capacity(count);
    // A free port is found within a few draws unless the range is nearly full.
    for _ in 0..10_000 {
        if ports.len() == count {
            return Ok(ports);
        }
        let port = low + (random() % u64::from(high - low)) as u16;
        if !ports.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port below the ephemeral range",
    ))
}

/// [low, high): the half of the port space just below the ephemeral range.
fn below_ephemeral() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&s| s > 2048)
        .unwrap_or(32768);
    ((start / 2).max(1024), start)
}

/// A random number: std's hasher keys are drawn from the OS per process and stepped per call.
fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
