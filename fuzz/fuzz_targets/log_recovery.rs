//! Log recovery from arbitrary segment bytes: opening a partition whose `.log` file holds anything
//! (after an unclean shutdown, or trusted after a clean one) must not panic; what survives must be
//! readable, appendable, and the same after a clean reopen.
#![no_main]

use gregor::log::partition::PartitionLog;
use gregor::log::LogConfig;
use libfuzzer_sys::fuzz_target;

/// A valid one-record batch (base offset 0, no producer, timestamp 1000).
fn one_record_batch() -> Vec<u8> {
    // attributes 0, timestamp delta 0, offset delta 0, null key, value "v", no headers
    let record = [0u8, 0, 0, 1, 2, b'v', 0];
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + 1 + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&1000i64.to_be_bytes());
    b.extend_from_slice(&1000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push((record.len() as u8) << 1); // zig-zag varint length
    b.extend_from_slice(&record);
    let crc = gregor::log::batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, segment)) = data.split_first() else {
        return;
    };
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let dir = tmp.path().join("t-0");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    // Mode bit 0: trust the files (clean shutdown); bit 1: a second segment, so a damaged first
    // one must also drop what follows it.
    let clean = mode & 1 != 0;
    let split = if mode & 2 != 0 {
        segment.len() / 2
    } else {
        segment.len()
    };
    let _ = std::fs::write(dir.join("00000000000000000000.log"), &segment[..split]);
    if split < segment.len() {
        let _ = std::fs::write(dir.join("00000000000000000100.log"), &segment[split..]);
    }
    let config = LogConfig {
        timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    };
    let Ok(mut log) = PartitionLog::open(&dir, config.clone(), clean, 1000) else {
        return;
    };
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert!(start <= end, "start {start} > end {end}");
    if !clean {
        // Everything recovery kept is readable from the start, in whole batches.
        if let Ok(plan) = log.plan_read(start) {
            let _ = plan.read(1 << 20, true);
        }
    }
    let batch = one_record_batch();
    if let Ok(info) = log.append(&batch, 9, 1000) {
        assert!(info.base_offset >= end);
        let after = log.log_end_offset();
        assert_eq!(after, info.base_offset + 1);
        if log.close(1000).is_ok() {
            drop(log);
            if !clean {
                let reopened = PartitionLog::open(&dir, config, true, 1000);
                if let Ok(r) = reopened {
                    assert_eq!(r.log_end_offset(), after);
                }
            }
        }
    }
});
