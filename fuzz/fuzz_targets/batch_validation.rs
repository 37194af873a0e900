//! Record batch validation on the produce path: `validate_produced` must never panic or allocate
//! without bound, whatever the bytes, and what it accepts must be a whole batch with a valid CRC.
#![no_main]

use gregor::log::batch::{crc_is_valid, validate_produced, BatchIter, TimestampBounds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the produce version and whether timestamps are bounded, so one input
    // also covers zstd's version rule and the CreateTime checks.
    let Some((&mode, batch)) = data.split_first() else {
        return;
    };
    let version = 3 + i16::from(mode & 0x0f) % 11;
    let bounds = (mode & 0x10 != 0).then_some(TimestampBounds {
        now_ms: 1_700_000_000_000,
        before_max_ms: i64::MAX,
        after_max_ms: 3_600_000,
    });
    if let Ok(h) = validate_produced(batch, 1_048_588, version, bounds) {
        assert_eq!(h.total_size(), batch.len());
        assert!(crc_is_valid(batch));
        assert_eq!(h.base_offset, 0);
        assert!(h.record_count > 0);
    }
    // The log scanner's view of the same bytes must stay inside them.
    let mut it = BatchIter::new(batch);
    for (at, h) in it.by_ref() {
        assert!(at + h.total_size() <= batch.len());
    }
    assert!(it.valid_len() <= batch.len());
});
