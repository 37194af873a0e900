//! A view of a RecordBatch v2 (magic 2) header, its CRC, and the checks Kafka makes on produce.
//!
//! Header layout, big-endian (DefaultRecordBatch.java):
//!
//! | offset | field                | type  | in CRC |
//! |--------|----------------------|-------|--------|
//! | 0      | BaseOffset           | int64 | no     |
//! | 8      | Length               | int32 | no     |  bytes after this field
//! | 12     | PartitionLeaderEpoch | int32 | no     |
//! | 16     | Magic                | int8  | no     |
//! | 17     | CRC (CRC-32C)        | uint32| -      |  over [21, end)
//! | 21     | Attributes           | int16 | yes    |
//! | 23     | LastOffsetDelta      | int32 | yes    |
//! | 27     | BaseTimestamp        | int64 | yes    |
//! | 35     | MaxTimestamp         | int64 | yes    |
//! | 43     | ProducerId           | int64 | yes    |
//! | 51     | ProducerEpoch        | int16 | yes    |
//! | 53     | BaseSequence         | int32 | yes    |
//! | 57     | RecordCount          | int32 | yes    |
//! | 61     | Records              | bytes | yes    |
//!
//! Produce validates this header and the CRC here, then walks the records (see `records.rs`):
//! uncompressed ones in place without allocating, compressed ones through a bounded decoder.

pub const HEADER_LEN: usize = 61;
/// BaseOffset + Length: the bytes of a batch that `Length` does not count.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

pub const OFF_BASE_OFFSET: usize = 0;
pub const OFF_LENGTH: usize = 8;
pub const OFF_LEADER_EPOCH: usize = 12;
pub const OFF_MAGIC: usize = 16;
pub const OFF_CRC: usize = 17;
pub const OFF_ATTRIBUTES: usize = 21;
pub const OFF_LAST_OFFSET_DELTA: usize = 23;
pub const OFF_BASE_TIMESTAMP: usize = 27;
pub const OFF_MAX_TIMESTAMP: usize = 35;
pub const OFF_PRODUCER_ID: usize = 43;
pub const OFF_PRODUCER_EPOCH: usize = 51;
pub const OFF_BASE_SEQUENCE: usize = 53;
pub const OFF_RECORD_COUNT: usize = 57;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

pub use super::record_validator::COMPRESSION_ZSTD;
use super::record_validator::{decompressed_limit, validate_records};
use super::AppendOrigin;

/// "No timestamp" in a record batch (RecordBatch.NO_TIMESTAMP).
pub const NO_TIMESTAMP: i64 = -1;

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded fields of a batch header. Parsing copies 61 bytes into plain integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the first 61 bytes of `b`; `None` if fewer are present.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(b, OFF_BASE_OFFSET),
            length: be_i32(b, OFF_LENGTH),
            partition_leader_epoch: be_i32(b, OFF_LEADER_EPOCH),
            magic: b[OFF_MAGIC] as i8,
            crc: be_i32(b, OFF_CRC) as u32,
            attributes: be_i16(b, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(b, OFF_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(b, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(b, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(b, OFF_PRODUCER_ID),
            producer_epoch: be_i16(b, OFF_PRODUCER_EPOCH),
            base_sequence: be_i32(b, OFF_BASE_SEQUENCE),
            record_count: be_i32(b, OFF_RECORD_COUNT),
        })
    }

    /// Whole batch size on disk and on the wire (12 + Length). Negative lengths give 0.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.length).unwrap_or(0)
    }

    /// Saturating: a header read from disk or the wire may claim offsets past i64::MAX (callers
    /// that trust a header check `offsets_fit` first).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch: where the next batch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Whether every offset of the batch, and the one after it, lies in a segment starting at
    /// `segment_base`: offsets relative to it fit an index entry's 32 bits, as Kafka's
    /// LogSegment requires (its recovery stops at a batch that does not fit).
    pub fn offsets_fit(&self, segment_base: i64) -> bool {
        (self
            .base_offset
            .checked_add(i64::from(self.last_offset_delta)))
        .and_then(|last| last.checked_add(1))
        .is_some_and(|next| next.saturating_sub(segment_base) <= i64::from(i32::MAX))
    }

    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping at i32::MAX as Kafka does
    /// (DefaultRecordBatch.lastSequence); -1 for a batch without sequences (a coordinator's).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == -1 {
            return -1;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `seq + delta`, wrapping from i32::MAX to 0.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// CRC-32C over `[21, end)` of a whole batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[OFF_ATTRIBUTES..])
}

/// True when `batch` is one whole batch whose stored CRC matches its bytes.
pub fn crc_is_valid(batch: &[u8]) -> bool {
    match BatchHeader::parse(batch) {
        Some(h) => h.total_size() == batch.len() && compute_crc(batch) == h.crc,
        None => false,
    }
}

/// Walks whole batches laid end to end in `buf` (a segment file or a slice of one), yielding each
/// batch's position in `buf` and its header. Stops at the first incomplete or nonsensical batch;
/// `valid_len` then tells where the whole batches end.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }

    /// Bytes of whole batches yielded so far.
    pub fn valid_len(&self) -> usize {
        self.pos
    }

    /// Whether what follows the whole batches is the start of one cut short (or nothing), as
    /// a fetch answer cut at its size limit ends, anywhere, even inside the header; bytes that
    /// declare a size too small for a batch, or a whole batch the iterator did not take, are
    /// not (Kafka's ByteBufferLogInputStream.nextBatch).
    pub fn rest_is_partial(&self) -> bool {
        let rest = &self.buf[self.pos..];
        if rest.len() < LOG_OVERHEAD {
            return true;
        }
        let length = be_i32(rest, OFF_LENGTH);
        length >= (HEADER_LEN - LOG_OVERHEAD) as i32
            && usize::try_from(length).is_ok_and(|l| LOG_OVERHEAD + l > rest.len())
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (usize, BatchHeader);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        let header = BatchHeader::parse(rest)?;
        let size = header.total_size();
        if header.length < (HEADER_LEN - LOG_OVERHEAD) as i32 || size > rest.len() {
            return None;
        }
        let at = self.pos;
        self.pos += size;
        Some((at, header))
    }
}

/// Why a produced batch is refused; each maps to the error code Kafka gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// CORRUPT_MESSAGE (2)
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    /// INVALID_RECORD (87)
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    /// MESSAGE_TOO_LARGE (10)
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    /// UNSUPPORTED_COMPRESSION_TYPE (76)
    #[error("zstd compression needs Produce v7 or later")]
    UnsupportedCompression,
    /// INVALID_TIMESTAMP (32)
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(&'static str),
    /// INVALID_TIMESTAMP (32) with the offending records, which Produce v8+ lists in
    /// record_errors (KIP-467).
    #[error("One or more records have been rejected due to invalid timestamp")]
    RecordTimestamps(Vec<super::record_validator::TimestampError>),
}

/// Timestamp bounds for CreateTime topics (message.timestamp.before/after.max.ms).
#[derive(Debug, Clone, Copy)]
pub struct TimestampBounds {
    pub now_ms: i64,
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

/// The per-batch checks of Kafka's produce path that need only the header and the CRC, in Kafka's
/// order (ProduceRequest.validateRecords, UnifiedLog.analyzeAndValidateRecords,
/// LogValidator.validateBatch). `records` is the whole `records` field of one partition. The
/// returned header carries the MaxTimestamp recomputed from the records, not the producer's.
pub fn validate_produced(
    records: &[u8],
    max_message_bytes: usize,
    produce_version: i16,
    timestamps: Option<TimestampBounds>,
) -> Result<BatchHeader, BatchError> {
    let client = AppendOrigin::Client {
        producer_ids_issued: i64::MAX,
        verification_guard: crate::txn::producer_state::VerificationGuard::SENTINEL,
    };
    validate_batch(
        records,
        max_message_bytes,
        produce_version,
        timestamps,
        client,
    )
}

/// `validate_produced` for a batch from `origin`: the checks LogValidator.validateBatch makes
/// only of client batches (no control batch, an idempotent batch has a sequence) are skipped for
/// the broker's own coordinators, which write markers and transactional offset commits without
/// sequences. A client's transactional batch is verified against its transaction by Produce
/// before it gets here (KIP-890 part 1).
pub fn validate_batch(
    records: &[u8],
    max_message_bytes: usize,
    produce_version: i16,
    timestamps: Option<TimestampBounds>,
    origin: AppendOrigin,
) -> Result<BatchHeader, BatchError> {
    let client = matches!(origin, AppendOrigin::Client { .. });
    let header = BatchHeader::parse(records).ok_or(BatchError::InvalidRecord(
        "a produce request must contain exactly one record batch",
    ))?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::InvalidRecord(
            "Produce v3+ accepts only magic 2 record batches",
        ));
    }
    if header.length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::Corrupt("batch length is below the header size"));
    }
    if header.total_size() != records.len() {
        return Err(BatchError::InvalidRecord(
            "a produce request must contain exactly one record batch",
        ));
    }
    if header.compression() > COMPRESSION_ZSTD {
        return Err(BatchError::Corrupt("unknown compression type"));
    }
    if header.compression() == COMPRESSION_ZSTD && produce_version < 7 {
        return Err(BatchError::UnsupportedCompression);
    }
    if header.base_offset != 0 {
        return Err(BatchError::InvalidRecord(
            "the base offset of a produced batch must be 0",
        ));
    }
    if records.len() > max_message_bytes {
        return Err(BatchError::TooLarge {
            size: records.len(),
            max: max_message_bytes,
        });
    }
    if compute_crc(records) != header.crc {
        return Err(BatchError::Corrupt("CRC-32C mismatch"));
    }
    if header.record_count <= 0
        || i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count)
    {
        return Err(BatchError::InvalidRecord("inconsistent batch offset range"));
    }
    if client && header.is_control() {
        return Err(BatchError::InvalidRecord(
            "clients may not send control batches",
        ));
    }
    if client && header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::InvalidRecord(
            "an idempotent batch needs a base sequence",
        ));
    }
    if header.is_log_append_time() {
        return Err(BatchError::InvalidTimestamp(
            "clients may not set the LogAppendTime attribute",
        ));
    }
    // Kafka's record iteration (LogValidator): framing, count, offsets and timestamps.
    let max_timestamp = validate_records(
        &header,
        &records[HEADER_LEN..],
        timestamps,
        decompressed_limit(max_message_bytes),
    )?;
    // The batch as the log will store it: MaxTimestamp recomputed from the records
    // (`assign_offsets` writes it into the header when the producer's value differs).
    Ok(BatchHeader {
        max_timestamp,
        ..header
    })
}

/// The MaxTimestamp a batch is stored with (Kafka's RecordBatch.setMaxTimestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTimestamp {
    /// CreateTime: the largest record timestamp, as `validate_produced` recomputed it.
    CreateTime(i64),
    /// LogAppendTime: the broker's append time, with the timestamp-type attribute set.
    LogAppendTime(i64),
}

/// The header of a produced batch rewritten for the log: base offset and leader epoch (outside the
/// CRC) and, when `max_timestamp` differs from the header's, the MaxTimestamp and timestamp-type
/// attribute with a new CRC (as DefaultRecordBatch.setMaxTimestamp: no CRC work when nothing
/// changes). `None` keeps the header's timestamps. The record bytes after the header are untouched
/// and never copied.
pub fn assign_offsets(
    batch: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    max_timestamp: Option<MaxTimestamp>,
) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&batch[..HEADER_LEN]);
    header[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    header[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    let Some(stamp) = max_timestamp else {
        return header;
    };
    let attrs = be_i16(&header, OFF_ATTRIBUTES);
    let (attrs, max) = match stamp {
        MaxTimestamp::CreateTime(max) => (attrs & !ATTR_LOG_APPEND_TIME, max),
        MaxTimestamp::LogAppendTime(now) => (attrs | ATTR_LOG_APPEND_TIME, now),
    };
    if attrs == be_i16(&header, OFF_ATTRIBUTES) && max == be_i64(&header, OFF_MAX_TIMESTAMP) {
        return header;
    }
    header[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    header[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max.to_be_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&header[OFF_ATTRIBUTES..]),
        &batch[HEADER_LEN..],
    );
    header[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    header
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn offsets_past_i64_max_never_overflow() {
        let h = |base: i64, delta: i32| {
            let mut b = vec![0u8; HEADER_LEN];
            b[..8].copy_from_slice(&base.to_be_bytes());
            b[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4]
                .copy_from_slice(&delta.to_be_bytes());
            BatchHeader::parse(&b).expect("a header")
        };
        // The fuzzer's log_recovery input (fuzz/seeds/log_recovery/offsets-past-i64-max).
        let past = h(0x7fff_ffff_ffff_fff8, 0x0808_0808);
        assert_eq!(past.last_offset(), i64::MAX);
        assert_eq!(past.next_offset(), i64::MAX);
        assert!(!past.offsets_fit(0));
        assert!(
            !h(i64::MAX, 0).offsets_fit(i64::MAX),
            "its next offset overflows"
        );
        assert!(h(100, 9).offsets_fit(100));
        assert!(
            !h(0, i32::MAX).offsets_fit(0),
            "the offset after it is past 32 bits"
        );
        assert!(h(0, i32::MAX - 1).offsets_fit(0));
    }
    use super::*;

    /// Builds a valid uncompressed batch with `count` records carrying the given values.
    pub fn make_batch(
        values: &[&[u8]],
        base_timestamp: i64,
        producer: Option<(i64, i16, i32)>,
    ) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut body = Vec::new();
            body.push(0u8); // attributes
            put_varint(&mut body, 0); // timestamp delta
            put_varint(&mut body, i as i64); // offset delta
            put_varint(&mut body, -1); // null key
            put_varint(&mut body, v.len() as i64);
            body.extend_from_slice(v);
            put_varint(&mut body, 0); // headers
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(values.len() as i32 - 1).to_be_bytes());
        b.extend_from_slice(&base_timestamp.to_be_bytes());
        b.extend_from_slice(&base_timestamp.to_be_bytes());
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&(values.len() as i32).to_be_bytes());
        b.extend_from_slice(&records);
        let crc = compute_crc(&b);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// `make_batch` with the transactional attribute: a transactional producer's batch.
    pub fn make_txn_batch(
        values: &[&[u8]],
        base_timestamp: i64,
        producer: (i64, i16, i32),
    ) -> Vec<u8> {
        let mut b = make_batch(values, base_timestamp, Some(producer));
        b[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&ATTR_TRANSACTIONAL.to_be_bytes());
        let crc = compute_crc(&b);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    #[test]
    fn valid_batch_passes_and_parses() {
        let b = make_batch(&[b"a", b"bb", b"ccc"], 1000, None);
        let h = validate_produced(&b, 1 << 20, 9, None).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_size(), b.len());
        assert!(crc_is_valid(&b));
    }

    #[test]
    fn each_header_fault_gets_kafkas_error() {
        let good = make_batch(&[b"x"], 1000, None);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            validate_produced(&bad_crc, 1 << 20, 9, None),
            Err(BatchError::Corrupt(_))
        ));

        let mut magic = good.clone();
        magic[OFF_MAGIC] = 1;
        assert!(matches!(
            validate_produced(&magic, 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));

        let mut base = good.clone();
        base[7] = 5;
        assert!(matches!(
            validate_produced(&base, 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));

        assert!(matches!(
            validate_produced(&good, 10, 9, None),
            Err(BatchError::TooLarge { .. })
        ));
        assert!(matches!(
            validate_produced(&good[..good.len() - 1], 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));
        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert!(matches!(
            validate_produced(&two, 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));
    }

    #[test]
    fn count_mismatch_is_invalid_record() {
        let mut b = make_batch(&[b"x", b"y"], 1000, None);
        b[OFF_RECORD_COUNT + 3] = 7;
        let crc = compute_crc(&b);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produced(&b, 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));
    }

    #[test]
    fn records_must_match_the_count() {
        let b = make_batch(&[b"x", b"y", b"z"], 1000, None);
        // Claim more records than there are, with a consistent header and CRC.
        let mut bad = b.clone();
        bad[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        bad[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let crc = compute_crc(&bad);
        bad[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produced(&bad, 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));
    }

    #[test]
    fn future_timestamp_is_rejected() {
        let b = make_batch(&[b"x"], 10_000_000, None);
        let bounds = TimestampBounds {
            now_ms: 1_000,
            before_max_ms: i64::MAX,
            after_max_ms: 3_600_000,
        };
        match validate_produced(&b, 1 << 20, 9, Some(bounds)) {
            Err(BatchError::RecordTimestamps(bad)) => {
                assert_eq!(bad.len(), 1);
                assert_eq!(bad[0].batch_index, 0);
                assert_eq!(bad[0].timestamp, 10_000_000);
            }
            other => panic!("expected INVALID_TIMESTAMP, got {other:?}"),
        }
        let ok = TimestampBounds {
            now_ms: 9_000_000,
            ..bounds
        };
        assert!(validate_produced(&b, 1 << 20, 9, Some(ok)).is_ok());
    }

    #[test]
    fn assign_offsets_keeps_crc_valid() {
        let b = make_batch(&[b"x", b"y"], 1000, None);
        let h = assign_offsets(&b, 42, 0, None);
        let mut out = h.to_vec();
        out.extend_from_slice(&b[HEADER_LEN..]);
        assert!(crc_is_valid(&out));
        assert_eq!(BatchHeader::parse(&out).unwrap().base_offset, 42);

        let h = assign_offsets(&b, 7, 0, Some(MaxTimestamp::LogAppendTime(5555)));
        let mut out = h.to_vec();
        out.extend_from_slice(&b[HEADER_LEN..]);
        assert!(crc_is_valid(&out));
        let p = BatchHeader::parse(&out).unwrap();
        assert!(p.is_log_append_time());
        assert_eq!(p.max_timestamp, 5555);
    }

    #[test]
    fn max_timestamp_is_recomputed_from_the_records() {
        // Kafka's LogValidator computes the batch's max timestamp from its records and rewrites
        // the header (and CRC) when the producer's value differs (issue 11, item 2).
        let mut b = make_batch(&[b"x", b"y"], 1_000, None);
        for claimed in [0, i64::MAX, -1] {
            b[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&claimed.to_be_bytes());
            let crc = compute_crc(&b);
            b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
            let h = validate_produced(&b, 1 << 20, 9, None).unwrap();
            assert_eq!(h.max_timestamp, 1_000, "claimed {claimed}");
            let header = assign_offsets(&b, 0, 0, Some(MaxTimestamp::CreateTime(h.max_timestamp)));
            let mut out = header.to_vec();
            out.extend_from_slice(&b[HEADER_LEN..]);
            assert!(crc_is_valid(&out));
            assert_eq!(BatchHeader::parse(&out).unwrap().max_timestamp, 1_000);
        }
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
    }

    #[test]
    fn iter_stops_at_torn_tail() {
        let a = make_batch(&[b"x"], 1, None);
        let mut buf = a.clone();
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&a[..20]);
        let mut it = BatchIter::new(&buf);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(it.valid_len(), a.len() * 2);
    }
}
