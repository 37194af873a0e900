//! Record-level work the produce path does only when a topic config asks for it: checking that
//! every record has a key (compacted topics) and recompressing a batch to the topic's
//! compression.type. Records are never decoded into structs and re-encoded (that would merge
//! duplicate header keys): the records area is decompressed as a whole, walked by its length
//! prefixes, and compressed again as a whole; only the header's attributes, length and CRC change.
//! `walk_records` is the one record parser for this work and for the log cleaner.

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{
    compute_crc, BatchError, BatchHeader, ATTR_COMPRESSION_MASK, HEADER_LEN, LOG_OVERHEAD,
    OFF_ATTRIBUTES, OFF_CRC, OFF_LENGTH,
};

/// The uncompressed records area of a batch, bounded as Produce bounds it (see
/// `record_validator::decompressed_limit`).
pub fn uncompressed_records(
    batch: &[u8],
    h: &BatchHeader,
    max_message_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let limit = super::record_validator::decompressed_limit(max_message_bytes);
    super::record_validator::decompress(h, &batch[HEADER_LEN..], limit)
}

/// One record of a records area: its bytes and what key checks and the log cleaner need.
pub struct RecordRef<'a> {
    /// The record's bytes, length prefix included.
    pub raw: &'a [u8],
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    /// The value; `None` for a tombstone (value length -1).
    pub value: Option<&'a [u8]>,
    pub tombstone: bool,
}

/// Walks an uncompressed records area by its length prefixes.
pub fn walk_records(mut area: &[u8]) -> Result<Vec<RecordRef<'_>>, BatchError> {
    let corrupt = || BatchError::Corrupt("malformed record");
    let mut out = Vec::new();
    while !area.is_empty() {
        let (len, used) = varint(area).ok_or_else(corrupt)?;
        let len = usize::try_from(len).map_err(|_| corrupt())?;
        let end = used.checked_add(len).ok_or_else(corrupt)?;
        let body = area.get(used..end).ok_or_else(corrupt)?;
        let mut at = 1; // attributes
        let next = |at: &mut usize| -> Result<i64, BatchError> {
            let (v, n) = varint(body.get(*at..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
            *at += n;
            Ok(v)
        };
        next(&mut at)?; // timestamp delta
        let offset_delta = next(&mut at)?;
        let key_len = next(&mut at)?;
        let key = if key_len < 0 {
            None
        } else {
            let k = usize::try_from(key_len).map_err(|_| corrupt())?;
            let key_end = at.checked_add(k).ok_or_else(corrupt)?;
            let key = body.get(at..key_end).ok_or_else(corrupt)?;
            at += k;
            Some(key)
        };
        let value_len = next(&mut at)?;
        let value = if value_len < 0 {
            None
        } else {
            let v = usize::try_from(value_len).map_err(|_| corrupt())?;
            let value_end = at.checked_add(v).ok_or_else(corrupt)?;
            Some(body.get(at..value_end).ok_or_else(corrupt)?)
        };
        out.push(RecordRef {
            raw: &area[..end],
            offset_delta,
            key,
            value,
            tombstone: value_len < 0,
        });
        area = &area[end..];
    }
    Ok(out)
}

/// The index in the batch of every record without a key (key length -1).
pub fn keyless_records(records: &[u8]) -> Result<Vec<i32>, BatchError> {
    Ok(walk_records(records)?
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect())
}

/// A zig-zag varlong: value and bytes used.
fn varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &byte) in b.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

/// The batch with its records compressed by `codec` (0 none … 4 zstd) instead of the producer's;
/// producer id, epoch, sequence, timestamps and count are kept (Kafka's LogValidator does the
/// same when compression.type differs from the batch's codec).
pub fn recompress(
    batch: &[u8],
    h: &BatchHeader,
    records: &[u8],
    codec: i16,
) -> Result<Vec<u8>, BatchError> {
    let mut area = BytesMut::new();
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.extend_from_slice(records);
        Ok(())
    };
    let res = match codec {
        0 => {
            area.extend_from_slice(records);
            Ok(())
        }
        1 => Gzip::compress(&mut area, fill),
        2 => Snappy::compress(&mut area, fill),
        3 => Lz4::compress(&mut area, fill),
        4 => Zstd::compress(&mut area, fill),
        _ => return Err(BatchError::UnsupportedCompression),
    };
    res.map_err(|_| BatchError::Corrupt("the records cannot be compressed"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + area.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&area);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::Corrupt("batch too large"))?;
    out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let attrs = (h.attributes & !ATTR_COMPRESSION_MASK) | codec;
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    let crc = compute_crc(&out);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::batch::validate_produced;

    #[test]
    fn recompress_round_trips_through_every_codec() {
        let batch = make_batch(&[b"hello", b"world", b"again"], 1000, Some((5, 0, 0)));
        let h = BatchHeader::parse(&batch).unwrap();
        let raw = uncompressed_records(&batch, &h, 1 << 20).unwrap();
        for codec in [1, 2, 3, 4, 0] {
            let out = recompress(&batch, &h, &raw, codec).unwrap();
            let nh = validate_produced(&out, usize::MAX, 9, None).unwrap();
            assert_eq!(nh.compression(), codec);
            assert_eq!(
                (
                    nh.producer_id,
                    nh.base_sequence,
                    nh.record_count,
                    nh.max_timestamp
                ),
                (
                    h.producer_id,
                    h.base_sequence,
                    h.record_count,
                    h.max_timestamp
                )
            );
            assert_eq!(uncompressed_records(&out, &nh, 1 << 20).unwrap(), raw);
        }
    }

    #[test]
    fn keyless_records_are_found() {
        // make_batch writes records without keys.
        let batch = make_batch(&[b"a", b"b"], 1, None);
        let h = BatchHeader::parse(&batch).unwrap();
        let raw = uncompressed_records(&batch, &h, 1 << 20).unwrap();
        assert_eq!(keyless_records(&raw).unwrap(), vec![0, 1]);
        // A record with key "k": length, attributes, ts delta 0, offset delta 0, key len 1, key,
        // value len -1, 0 headers.
        let body = [0u8, 0, 0, 2, b'k', 1, 0];
        let mut rec = vec![(body.len() as u8) << 1];
        rec.extend_from_slice(&body);
        assert!(keyless_records(&rec).unwrap().is_empty());
        assert!(keyless_records(&rec[..4]).is_err());
    }

    /// A record: zig-zag varint helpers as Kafka writes them.
    fn zz(v: i64, out: &mut Vec<u8>) {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        while u >= 0x80 {
            out.push((u as u8) | 0x80);
            u >>= 7;
        }
        out.push(u as u8);
    }

    pub(crate) fn record(offset_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![0u8];
        zz(0, &mut body);
        zz(offset_delta, &mut body);
        match key {
            Some(k) => {
                zz(k.len() as i64, &mut body);
                body.extend_from_slice(k);
            }
            None => zz(-1, &mut body),
        }
        match value {
            Some(v) => {
                zz(v.len() as i64, &mut body);
                body.extend_from_slice(v);
            }
            None => zz(-1, &mut body),
        }
        zz(0, &mut body);
        let mut out = Vec::new();
        zz(body.len() as i64, &mut out);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn records_are_walked_with_keys_and_tombstones() {
        let mut area = record(0, Some(b"k1"), Some(b"v"));
        area.extend(record(1, None, Some(b"x")));
        area.extend(record(2, Some(b"k2"), None));
        let r = walk_records(&area).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.iter()
                .map(|r| (r.offset_delta, r.key, r.tombstone))
                .collect::<Vec<_>>(),
            vec![
                (0, Some(&b"k1"[..]), false),
                (1, None, false),
                (2, Some(&b"k2"[..]), true)
            ]
        );
        assert_eq!(r.iter().map(|r| r.raw.len()).sum::<usize>(), area.len());
        for cut in 1..area.len() {
            // A cut inside the last record is refused, never misread.
            if walk_records(&area[..cut]).is_ok() {
                let ok = walk_records(&area[..cut]).unwrap();
                assert_eq!(ok.iter().map(|r| r.raw.len()).sum::<usize>(), cut);
            }
        }
    }
}
