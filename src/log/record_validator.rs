//! The records inside a produced batch, walked the way Kafka's LogValidator iterates them: every
//! record's framing, its offset delta and its timestamp, for uncompressed batches straight from
//! the request bytes and for compressed ones through a streaming decoder with a hard bound on the
//! bytes it may produce.
//!
//! Record layout (DefaultRecord.java), all lengths zig-zag varints:
//!
//! ```text
//! length | attributes int8 | timestampDelta varlong | offsetDelta varint
//!        | keyLength, key | valueLength, value | headerCount, [keyLength, key, valueLength, value]*
//! ```
//!
//! Keys, values and header bytes are skipped, never copied: the uncompressed walk allocates nothing,
//! and a compressed walk holds only the decoder's window and one read buffer. Records are never
//! decompressed anywhere else (Fetch serves the stored bytes as they are).

use std::io::{self, BufRead, BufReader, Read};

use super::batch::{BatchError, BatchHeader, TimestampBounds, NO_TIMESTAMP};

pub const COMPRESSION_NONE: i16 = 0;
pub const COMPRESSION_GZIP: i16 = 1;
pub const COMPRESSION_SNAPPY: i16 = 2;
pub const COMPRESSION_LZ4: i16 = 3;
pub const COMPRESSION_ZSTD: i16 = 4;

/// How many decompressed bytes one batch may produce, per byte of max.message.bytes. Kafka has no
/// explicit bound (its heap is the limit); gregor stops a decompression bomb here. Producers fill
/// batches by compressed size, so even very compressible data stays far below 64x.
const DECOMPRESSION_FACTOR: usize = 64;
/// The bound never drops below this, so tiny max.message.bytes settings still admit real batches.
const MIN_DECOMPRESSED_LIMIT: usize = 64 * 1024 * 1024;
/// Largest zstd window accepted (2^24 = 16 MiB): Kafka producers' levels use far less, and the
/// window is the decoder's memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// Read buffer between a decoder and the record walk.
const READ_BUFFER: usize = 16 * 1024;

/// The bound on what a batch of the topic may decompress to.
pub fn decompressed_limit(max_message_bytes: usize) -> u64 {
    max_message_bytes
        .saturating_mul(DECOMPRESSION_FACTOR)
        .max(MIN_DECOMPRESSED_LIMIT) as u64
}

/// A record whose timestamp is out of the topic's bounds: its index in the batch and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampError {
    pub batch_index: i32,
    pub timestamp: i64,
}

/// Walks the records of a batch that passed the header checks. `records` is the batch without its
/// 61-byte header. Structural faults stop the walk with INVALID_RECORD (or CORRUPT_MESSAGE when
/// the compressed payload does not decode); out-of-bounds timestamps are collected, as Kafka
/// collects record errors, and reported together as INVALID_TIMESTAMP.
///
/// Returns the largest record timestamp (NO_TIMESTAMP when no record has one): like Kafka's
/// LogValidator, the log stores this as the batch's MaxTimestamp and indexes by it, never the
/// value the producer wrote in the header, which retention and ListOffsets would otherwise trust.
pub fn validate_records(
    header: &BatchHeader,
    records: &[u8],
    timestamps: Option<TimestampBounds>,
    limit: u64,
) -> Result<i64, BatchError> {
    let check = RecordCheck { header, timestamps };
    match header.compression() {
        COMPRESSION_NONE => check.walk(&mut SliceSource { rest: records }),
        codec => check.walk(&mut ReadSource::new(decoder(codec, records, limit)?, limit)),
    }
}

/// A streaming decoder of a compressed records area.
fn decoder<'a>(
    codec: i16,
    records: &'a [u8],
    limit: u64,
) -> Result<Box<dyn Read + 'a>, BatchError> {
    Ok(match codec {
        COMPRESSION_GZIP => Box::new(flate2::bufread::MultiGzDecoder::new(records)),
        COMPRESSION_SNAPPY => Box::new(SnappyReader::new(records, limit)),
        COMPRESSION_LZ4 => Box::new(lz4::Decoder::new(records).map_err(|_| codec_error())?),
        COMPRESSION_ZSTD => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(records).map_err(|_| codec_error())?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|_| codec_error())?;
            Box::new(decoder)
        }
        _ => return Err(BatchError::Corrupt("unknown compression type")),
    })
}

/// The records area of a batch, decompressed (at most `limit` bytes) when it is compressed: for
/// the record-level work that needs the bytes themselves (key checks, recompression, the log
/// cleaner).
pub fn decompress(header: &BatchHeader, records: &[u8], limit: u64) -> Result<Vec<u8>, BatchError> {
    match header.compression() {
        COMPRESSION_NONE => Ok(records.to_vec()),
        codec => {
            let mut out = Vec::new();
            decoder(codec, records, limit)?
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::FileTooLarge => too_large(),
                    _ => codec_error(),
                })?;
            if out.len() as u64 > limit {
                return Err(too_large());
            }
            Ok(out)
        }
    }
}

fn codec_error() -> BatchError {
    // Kafka answers UNKNOWN_SERVER_ERROR here (a KafkaException "Failed to decompress record
    // stream" escapes the validator); the payload is corrupt, so gregor says so.
    BatchError::Corrupt("the compressed records do not decompress")
}

fn truncated() -> BatchError {
    // DefaultRecordBatch: "Incorrect declared batch size, premature EOF reached".
    BatchError::InvalidRecord("the records end before the batch's record count")
}

/// Where record bytes come from: the request itself or a decoder.
trait Source {
    /// The next byte, `None` at the end of the records.
    fn next_byte(&mut self) -> Result<Option<u8>, BatchError>;
    /// Skips exactly `n` bytes.
    fn skip(&mut self, n: usize) -> Result<(), BatchError>;
}

struct SliceSource<'a> {
    rest: &'a [u8],
}

impl Source for SliceSource<'_> {
    fn next_byte(&mut self) -> Result<Option<u8>, BatchError> {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), BatchError> {
        self.rest = self.rest.get(n..).ok_or_else(truncated)?;
        Ok(())
    }
}

/// A decoder behind a read buffer, counting what it produced against the bound.
struct ReadSource<R: Read> {
    inner: BufReader<R>,
    produced: u64,
    limit: u64,
}

impl<R: Read> ReadSource<R> {
    fn new(decoder: R, limit: u64) -> Self {
        ReadSource {
            inner: BufReader::with_capacity(READ_BUFFER, decoder),
            produced: 0,
            limit,
        }
    }

    fn fill(&mut self) -> Result<&[u8], BatchError> {
        match self.inner.fill_buf() {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => Err(too_large()),
            Err(_) => Err(codec_error()),
        }
    }

    fn consume(&mut self, n: usize) -> Result<(), BatchError> {
        self.inner.consume(n);
        self.produced += n as u64;
        if self.produced > self.limit {
            return Err(too_large());
        }
        Ok(())
    }
}

fn too_large() -> BatchError {
    BatchError::InvalidRecord("the records decompress to more than gregor's bound")
}

impl<R: Read> Source for ReadSource<R> {
    fn next_byte(&mut self) -> Result<Option<u8>, BatchError> {
        let Some(&b) = self.fill()?.first() else {
            return Ok(None);
        };
        self.consume(1)?;
        Ok(Some(b))
    }

    fn skip(&mut self, mut n: usize) -> Result<(), BatchError> {
        while n > 0 {
            let have = self.fill()?.len();
            if have == 0 {
                return Err(truncated());
            }
            let step = have.min(n);
            self.consume(step)?;
            n -= step;
        }
        Ok(())
    }
}

struct RecordCheck<'a> {
    header: &'a BatchHeader,
    timestamps: Option<TimestampBounds>,
}

impl RecordCheck<'_> {
    fn walk(&self, src: &mut impl Source) -> Result<i64, BatchError> {
        let mut bad_timestamps: Vec<TimestampError> = Vec::new();
        let mut max_timestamp = NO_TIMESTAMP;
        let count = self.header.record_count;
        for index in 0..count {
            let timestamp = self.record(src, index)?;
            max_timestamp = max_timestamp.max(timestamp);
            if let Some(b) = self.timestamps {
                if timestamp != NO_TIMESTAMP && out_of_bounds(timestamp, b) {
                    bad_timestamps.push(TimestampError {
                        batch_index: index,
                        timestamp,
                    });
                }
            }
        }
        if src.next_byte()?.is_some() {
            // DefaultRecordBatch: "Incorrect declared batch size, records still remaining".
            return Err(BatchError::InvalidRecord(
                "the batch holds more records than its record count",
            ));
        }
        if !bad_timestamps.is_empty() {
            return Err(BatchError::RecordTimestamps(bad_timestamps));
        }
        Ok(max_timestamp)
    }

    /// Reads one record, checks its framing and offset delta, and returns its timestamp.
    fn record(&self, src: &mut impl Source, index: i32) -> Result<i64, BatchError> {
        let Some((length, _)) = read_varint(src, 5)? else {
            return Err(truncated());
        };
        if length <= 0 {
            return Err(BatchError::InvalidRecord("a record length is not positive"));
        }
        let mut r = RecordReader {
            src,
            left: length as u64,
        };
        // attributes: unused in v2, but part of the record.
        r.take(1)?;
        r.src.next_byte()?.ok_or_else(truncated)?;
        let ts_delta = r.varint(10)?;
        let offset_delta = r.varint(5)?;
        if offset_delta != i64::from(index) {
            // Kafka rewrites a compressed batch whose inner offsets are off and stores an
            // uncompressed one as sent; gregor stores batches unchanged, so it refuses both
            // rather than serve records whose offsets collide.
            return Err(BatchError::InvalidRecord(
                "record offset deltas must run 0, 1, 2, ... in order",
            ));
        }
        let key_len = r.varint(5)?;
        r.field(key_len)?;
        let value_len = r.varint(5)?;
        r.field(value_len)?;
        let headers = r.varint(5)?;
        if headers < 0 {
            return Err(BatchError::InvalidRecord("negative record header count"));
        }
        for _ in 0..headers {
            let k = r.varint(5)?;
            if k < 0 {
                return Err(BatchError::InvalidRecord("negative header key size"));
            }
            r.field(k)?;
            let v = r.varint(5)?;
            r.field(v)?;
        }
        if r.left != 0 {
            // DefaultRecord: "Invalid record size: expected to read N bytes in record payload".
            return Err(record_size_error());
        }
        Ok(if self.header.base_timestamp == NO_TIMESTAMP {
            NO_TIMESTAMP
        } else {
            self.header.base_timestamp.wrapping_add(ts_delta)
        })
    }
}

fn record_size_error() -> BatchError {
    BatchError::InvalidRecord("a record's fields do not match its length")
}

/// Reads the fields of one record, never past the length it declared.
struct RecordReader<'s, S: Source> {
    src: &'s mut S,
    left: u64,
}

impl<S: Source> RecordReader<'_, S> {
    fn take(&mut self, n: u64) -> Result<(), BatchError> {
        self.left = self.left.checked_sub(n).ok_or_else(record_size_error)?;
        Ok(())
    }

    fn varint(&mut self, max: usize) -> Result<i64, BatchError> {
        let (v, n) = read_varint(self.src, max)?.ok_or_else(truncated)?;
        self.take(n as u64)?;
        Ok(v)
    }

    /// Skips a field of `len` bytes (negative: null, no bytes).
    fn field(&mut self, len: i64) -> Result<(), BatchError> {
        let Ok(len) = u64::try_from(len) else {
            return Ok(());
        };
        self.take(len)?;
        self.src.skip(len as usize)
    }
}

/// CreateTime bounds of one record (LogValidator.recordHasInvalidTimestamp).
fn out_of_bounds(timestamp: i64, b: TimestampBounds) -> bool {
    let diff = b.now_ms.saturating_sub(timestamp);
    diff > b.before_max_ms || diff.saturating_neg() > b.after_max_ms
}

/// A zig-zag varint of at most `max` bytes: value and bytes used; `None` at a clean end.
fn read_varint(src: &mut impl Source, max: usize) -> Result<Option<(i64, usize)>, BatchError> {
    let mut raw: u64 = 0;
    for i in 0..max {
        let Some(byte) = src.next_byte()? else {
            return if i == 0 { Ok(None) } else { Err(truncated()) };
        };
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Ok(Some((v, i + 1)));
        }
    }
    Err(BatchError::InvalidRecord("a varint is too long"))
}

/// Snappy as Kafka's producers write it: Java's xerial framing (a magic header, then blocks each
/// prefixed by its compressed size), or one raw snappy block (as librdkafka may send; xerial's
/// reader accepts both). Each block declares its decompressed size, which is checked against
/// the bound before anything is allocated.
struct SnappyReader<'a> {
    input: &'a [u8],
    framed: Option<bool>,
    block: Vec<u8>,
    pos: usize,
    budget: u64,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic plus the version and compatible-version ints.
const XERIAL_HEADER: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], limit: u64) -> Self {
        SnappyReader {
            input,
            framed: None,
            block: Vec::new(),
            pos: 0,
            budget: limit,
        }
    }

    /// Decompresses the next block into `self.block`; false at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        let framed = match self.framed {
            Some(f) => f,
            None => {
                let f = self.input.starts_with(XERIAL_MAGIC);
                if f {
                    self.input = self.input.get(XERIAL_HEADER..).ok_or_else(bad_snappy)?;
                }
                self.framed = Some(f);
                f
            }
        };
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if framed {
            let len = self.input.get(..4).ok_or_else(bad_snappy)?;
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            let len = usize::try_from(len).map_err(|_| bad_snappy())?;
            let block = self.input.get(4..4 + len).ok_or_else(bad_snappy)?;
            self.input = &self.input[4 + len..];
            block
        } else {
            std::mem::take(&mut self.input)
        };
        let size = snap::raw::decompress_len(compressed).map_err(|_| bad_snappy())?;
        if size as u64 > self.budget {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "snappy block exceeds the bound",
            ));
        }
        self.budget -= size as u64;
        self.block.clear();
        self.block.resize(size, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|_| bad_snappy())?;
        self.pos = 0;
        Ok(true)
    }
}

fn bad_snappy() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "bad snappy data")
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::batch::{
        compute_crc, validate_produced, HEADER_LEN, LOG_OVERHEAD, OFF_ATTRIBUTES, OFF_CRC,
        OFF_LAST_OFFSET_DELTA, OFF_LENGTH, OFF_RECORD_COUNT,
    };

    fn compress(codec: i16, raw: &[u8]) -> Vec<u8> {
        match codec {
            COMPRESSION_GZIP => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(raw).unwrap();
                e.finish().unwrap()
            }
            COMPRESSION_SNAPPY => {
                // xerial framing, as the Java producer writes it, in two blocks.
                let mut out = XERIAL_MAGIC.to_vec();
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                let (a, b) = raw.split_at(raw.len() / 2);
                for part in [a, b] {
                    let c = snap::raw::Encoder::new().compress_vec(part).unwrap();
                    out.extend_from_slice(&(c.len() as i32).to_be_bytes());
                    out.extend_from_slice(&c);
                }
                out
            }
            COMPRESSION_LZ4 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                e.write_all(raw).unwrap();
                let (out, r) = e.finish();
                r.unwrap();
                out
            }
            COMPRESSION_ZSTD => zstd::encode_all(raw, 3).unwrap(),
            _ => raw.to_vec(),
        }
    }

    /// Re-frames `batch` with `payload` as its records area and `codec` in its attributes.
    fn with_payload(batch: &[u8], codec: i16, payload: &[u8]) -> Vec<u8> {
        let mut b = batch[..HEADER_LEN].to_vec();
        b.extend_from_slice(payload);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        b[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&codec.to_be_bytes());
        fix_crc(&mut b);
        b
    }

    fn fix_crc(b: &mut [u8]) {
        let crc = compute_crc(b);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn set_count(b: &mut [u8], count: i32) {
        b[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        b[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        fix_crc(b);
    }

    const CODECS: [i16; 4] = [
        COMPRESSION_GZIP,
        COMPRESSION_SNAPPY,
        COMPRESSION_LZ4,
        COMPRESSION_ZSTD,
    ];

    #[test]
    fn every_codec_validates_a_good_batch() {
        let plain = make_batch(&[b"a", b"bb", b"ccc"], 1000, None);
        for codec in CODECS {
            let b = with_payload(&plain, codec, &compress(codec, &plain[HEADER_LEN..]));
            assert_eq!(
                validate_produced(&b, 1 << 20, 9, None).map(|h| h.record_count),
                Ok(3),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn raw_snappy_without_framing_is_accepted() {
        let plain = make_batch(&[b"a", b"bb"], 1000, None);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&plain[HEADER_LEN..])
            .unwrap();
        let b = with_payload(&plain, COMPRESSION_SNAPPY, &raw);
        assert!(validate_produced(&b, 1 << 20, 9, None).is_ok());
    }

    #[test]
    fn garbage_payload_is_corrupt() {
        let plain = make_batch(&[b"a"], 1000, None);
        for codec in CODECS {
            let b = with_payload(&plain, codec, b"this is not compressed at all");
            assert!(
                matches!(
                    validate_produced(&b, 1 << 20, 9, None),
                    Err(BatchError::Corrupt(_)) | Err(BatchError::InvalidRecord(_))
                ),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn compressed_count_must_match_the_records() {
        let plain = make_batch(&[b"a", b"bb", b"ccc"], 1000, None);
        for codec in CODECS {
            let good = with_payload(&plain, codec, &compress(codec, &plain[HEADER_LEN..]));
            for count in [2, 4, i32::MAX] {
                let mut b = good.clone();
                set_count(&mut b, count);
                assert!(
                    matches!(
                        validate_produced(&b, 1 << 20, 9, None),
                        Err(BatchError::InvalidRecord(_))
                    ),
                    "codec {codec} count {count}"
                );
            }
        }
    }

    #[test]
    fn offset_deltas_must_run_in_order() {
        // Swap the offset deltas of two records: (0, 1) becomes (1, 0).
        let plain = make_batch(&[b"a", b"b"], 1000, None);
        let mut swapped = plain.clone();
        // record layout: len, attrs, ts delta, offset delta...
        let first = HEADER_LEN + 3;
        let second = HEADER_LEN + 1 + usize::from(plain[HEADER_LEN] >> 1) + 3;
        swapped[first] = 2; // zig-zag 1
        swapped[second] = 0;
        fix_crc(&mut swapped);
        assert!(matches!(
            validate_produced(&swapped, 1 << 20, 9, None),
            Err(BatchError::InvalidRecord(_))
        ));
        for codec in CODECS {
            let b = with_payload(&plain, codec, &compress(codec, &swapped[HEADER_LEN..]));
            assert!(
                matches!(
                    validate_produced(&b, 1 << 20, 9, None),
                    Err(BatchError::InvalidRecord(_))
                ),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn trailing_bytes_after_the_last_record_are_refused() {
        let plain = make_batch(&[b"a"], 1000, None);
        let mut area = plain[HEADER_LEN..].to_vec();
        area.extend_from_slice(&[0u8; 1 << 20]);
        for codec in CODECS {
            let b = with_payload(&plain, codec, &compress(codec, &area));
            assert!(
                matches!(
                    validate_produced(&b, 1 << 20, 9, None),
                    Err(BatchError::InvalidRecord(_))
                ),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_bound() {
        // One record whose value claims 8 MiB of zeros: well-formed, but past a 1 MiB bound.
        let value = vec![0u8; 8 << 20];
        let plain = make_batch(&[&value], 1000, None);
        for codec in CODECS {
            let payload = compress(codec, &plain[HEADER_LEN..]);
            let header = BatchHeader::parse(&with_payload(&plain, codec, &payload)).unwrap();
            assert!(payload.len() < 1 << 20, "codec {codec} compresses zeros");
            let r = validate_records(&header, &payload, None, 1 << 20);
            assert!(
                matches!(r, Err(BatchError::InvalidRecord(_))),
                "codec {codec}: {r:?}"
            );
            let ok = validate_records(&header, &payload, None, 16 << 20);
            assert!(ok.is_ok(), "codec {codec}: {ok:?}");
        }
    }

    #[test]
    fn record_framing_faults_are_invalid_record() {
        let plain = make_batch(&[b"abc"], 1000, None);
        // A record length one byte longer than its fields.
        let mut long = plain.clone();
        long[HEADER_LEN] += 2;
        fix_crc(&mut long);
        // A key length past the record.
        let mut key = plain.clone();
        key[HEADER_LEN + 4] = 0x7e;
        fix_crc(&mut key);
        for b in [long, key] {
            assert!(matches!(
                validate_produced(&b, 1 << 20, 9, None),
                Err(BatchError::InvalidRecord(_))
            ));
        }
    }

    #[test]
    fn timestamps_are_checked_per_record() {
        let plain = make_batch(&[b"a", b"b", b"c"], 1000, None);
        // Record 1 gets timestamp delta +10 h.
        let mut b = plain.clone();
        let rec_len = 1 + usize::from(plain[HEADER_LEN] >> 1);
        let ts_at = HEADER_LEN + rec_len + 2;
        assert_eq!(b[ts_at], 0);
        let bounds = TimestampBounds {
            now_ms: 1000,
            before_max_ms: i64::MAX,
            after_max_ms: 3_600_000,
        };
        // Replace the one-byte delta 0 with a one-byte delta 63 (zig-zag 126) and shift nothing:
        // 63 ms is in bounds, so use a tight bound instead.
        b[ts_at] = 126;
        fix_crc(&mut b);
        let tight = TimestampBounds {
            after_max_ms: 10,
            ..bounds
        };
        match validate_produced(&b, 1 << 20, 9, Some(tight)) {
            Err(BatchError::RecordTimestamps(bad)) => {
                assert_eq!(
                    bad,
                    vec![TimestampError {
                        batch_index: 1,
                        timestamp: 1063
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(validate_produced(&b, 1 << 20, 9, Some(bounds)).is_ok());
    }
}
