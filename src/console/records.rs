//! Browsing a partition's records and producing one, for the console.
//!
//! A browse reads whole batches from a starting offset (or the first record at or after a
//! timestamp, as ListOffsets finds it) up to the high watermark, the way a read_uncommitted
//! consumer sees them, decodes them with the kafka-protocol decoder and keeps at most `limit`
//! records; it reads at most MAX_READ_BYTES and shows at most MAX_SHOWN_BYTES of each key,
//! value and header, so a browse of a large partition is bounded in memory and time.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::log::batch::BatchIter;
use crate::log::partition::Partition;

/// The most records one page shows.
pub const MAX_LIMIT: usize = 500;
/// Records per page unless asked.
pub const DEFAULT_LIMIT: usize = 50;
/// The most bytes of batches one browse reads from the log.
const MAX_READ_BYTES: usize = 8 << 20;
/// The most bytes of a key, value or header value shown.
const MAX_SHOWN_BYTES: usize = 4096;

/// How keys and values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// UTF-8, invalid sequences replaced.
    #[default]
    Text,
    /// Pretty-printed when the bytes are JSON, else as text.
    Json,
    /// Hex bytes.
    Hex,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "hex" => Some(Format::Hex),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Hex => "hex",
        }
    }

    /// `bytes` as this format shows them, cut at MAX_SHOWN_BYTES (said with a trailing note).
    pub fn show(self, bytes: &[u8]) -> String {
        let cut = &bytes[..bytes.len().min(MAX_SHOWN_BYTES)];
        let mut s = match self {
            Format::Hex => cut
                .chunks(32)
                .map(|line| line.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .collect::<Vec<_>>()
                .join("\n"),
            Format::Json if cut.len() == bytes.len() => {
                match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    Ok(_) => indent_json(&String::from_utf8_lossy(bytes)),
                    Err(_) => String::from_utf8_lossy(cut).into_owned(),
                }
            }
            _ => String::from_utf8_lossy(cut).into_owned(),
        };
        if cut.len() < bytes.len() {
            s.push_str(&format!("\n… ({} bytes in all)", bytes.len()));
        }
        s
    }
}

/// Valid JSON laid out two spaces per level, its members in the order they were written (a
/// parsed map would sort them).
fn indent_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Where a browse starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The log start offset.
    Earliest,
    Offset(i64),
    /// The first record with a timestamp at or after this (ms since the epoch).
    Timestamp(i64),
}

/// One record as the console shows it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: &'static str,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A page of records.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Shown>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The offset the browse started from (after clamping to the log).
    pub from: i64,
    /// Where the next page starts, when there may be more below the high watermark.
    pub next: Option<i64>,
}

/// Reads a page of `partition` (blocking file reads: call it off the async workers).
pub fn browse(partition: &Partition, from: From, limit: usize) -> Result<Page, String> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let (log_start_offset, high_watermark) = partition.offsets();
    let start = match from {
        From::Earliest => log_start_offset,
        From::Offset(o) => o.clamp(log_start_offset, high_watermark),
        From::Timestamp(ts) => partition
            .with_log(|l| l.offset_for_timestamp(ts))
            .map_err(|e| e.to_string())?
            .map_or(high_watermark, |(_, offset)| offset),
    };
    let mut page = Page {
        records: Vec::new(),
        log_start_offset,
        high_watermark,
        from: start,
        next: None,
    };
    let (mut offset, mut read) = (start, 0usize);
    while offset < high_watermark && page.records.len() < limit && read < MAX_READ_BYTES {
        let plan = partition.plan_read(offset).map_err(|e| e.to_string())?;
        let mut bytes = plan
            .read(MAX_READ_BYTES - read, true)
            .map_err(|e| e.to_string())?;
        // Continue after the last batch read whatever its records (compaction leaves gaps).
        let after = BatchIter::new(&bytes)
            .last()
            .map_or(offset, |(_, h)| h.next_offset());
        if bytes.is_empty() || after <= offset {
            break;
        }
        read += bytes.len();
        while !bytes.is_empty() && page.records.len() < limit {
            let set = RecordBatchDecoder::decode(&mut bytes)
                .map_err(|e| format!("a batch at or after offset {offset} does not decode: {e}"))?;
            let wanted = (set.records.into_iter())
                .filter(|r| !r.control && r.offset >= offset && r.offset < high_watermark);
            for r in wanted {
                if page.records.len() == limit {
                    break;
                }
                page.records.push(shown(r));
            }
        }
        offset = match page.records.last() {
            Some(last) if page.records.len() == limit => last.offset + 1,
            _ => after,
        };
    }
    page.next = (offset < high_watermark).then_some(offset);
    Ok(page)
}

fn shown(r: Record) -> Shown {
    Shown {
        offset: r.offset,
        timestamp: r.timestamp,
        timestamp_type: match r.timestamp_type {
            TimestampType::Creation => "CreateTime",
            TimestampType::LogAppend => "LogAppendTime",
        },
        key: r.key,
        value: r.value,
        headers: (r.headers.into_iter())
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// One record to produce: from the console's form, or from seed data (`admin::seed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<String>,
    /// `None`: a tombstone.
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The record's CreateTime; `None`: the time it is produced.
    pub timestamp: Option<i64>,
}

/// The records as one uncompressed RecordBatch v2 without a producer id (a plain, not
/// idempotent, producer's), each stamped with its own timestamp or `now`.
pub fn batch_of(records: &[NewRecord], now: i64) -> Result<Bytes, String> {
    let records: Vec<Record> = (records.iter().enumerate())
        .map(|(i, record)| {
            let mut headers = IndexMap::new();
            for (k, v) in &record.headers {
                headers.insert(
                    StrBytes::from_string(k.clone()),
                    Some(Bytes::from(v.clone())),
                );
            }
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence stays the same;
                // the batch's base sequence is the first record's: -1, no producer id.
                sequence: i as i32 - 1,
                timestamp: record.timestamp.unwrap_or(now),
                key: record.key.clone().map(Bytes::from),
                value: record.value.clone().map(Bytes::from),
                headers,
                delete_horizon: false,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Kafka's murmur2 (Utils.murmur2), which its default partitioner hashes keys with, so a key
/// produced from the console lands where the Java client would put it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(&b) = rest.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a keyed record (BuiltInPartitioner
/// .partitionForKey: murmur2, made positive, modulo the partition count).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // Kafka's UtilsTest.testMurmur2.
        for (s, h) in [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ] {
            assert_eq!(murmur2(s.as_bytes()), h, "{s}");
        }
    }

    #[test]
    fn formats_cut_long_values_and_pretty_print_json() {
        assert_eq!(Format::Hex.show(b"\x00\xffA"), "00ff41");
        assert_eq!(Format::Json.show(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(
            Format::Json.show(br#" {"z": [1, {}], "a" : "x,\"{:" , "e":[ ]}"#),
            "{\n  \"z\": [\n    1,\n    {}\n  ],\n  \"a\": \"x,\\\"{:\",\n  \"e\": []\n}"
        );
        assert_eq!(Format::Json.show(b"not json"), "not json");
        let long = vec![b'x'; MAX_SHOWN_BYTES + 1];
        let shown = Format::Text.show(&long);
        assert!(shown.ends_with(&format!("({} bytes in all)", MAX_SHOWN_BYTES + 1)));
        assert_eq!(Format::parse("hex"), Some(Format::Hex));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn a_console_record_is_one_valid_batch() {
        let rec = NewRecord {
            key: Some("k".into()),
            value: None,
            headers: vec![("h".into(), "v".into())],
            timestamp: None,
        };
        let mut bytes = batch_of(std::slice::from_ref(&rec), 42).unwrap();
        let header = crate::log::batch::BatchHeader::parse(&bytes).unwrap();
        assert_eq!((header.producer_id, header.max_timestamp), (-1, 42));
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let r = &set.records[0];
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert!(r.value.is_none());
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn several_records_are_one_batch_with_their_own_timestamps() {
        let rec = |i: i64, ts| NewRecord {
            value: Some(format!("v{i}")),
            timestamp: ts,
            ..NewRecord::default()
        };
        let records = [rec(0, Some(7)), rec(1, None), rec(2, Some(9))];
        let mut bytes = batch_of(&records, 42).unwrap();
        let header = crate::log::batch::BatchHeader::parse(&bytes).unwrap();
        assert_eq!(header.length as usize + 12, bytes.len(), "one batch");
        assert_eq!((header.base_sequence, header.last_offset_delta), (-1, 2));
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let stamps: Vec<i64> = set.records.iter().map(|r| r.timestamp).collect();
        assert_eq!(stamps, [7, 42, 9]);
    }
}
