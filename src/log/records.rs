//! Record-level work the produce path does only when a topic config asks for it: checking that
//! every record has a key (compacted topics) and recompressing a batch to the topic's
//! compression.type. Records are never decoded into structs and re-encoded (that would merge
//! duplicate header keys): the records area is decompressed as a whole, walked by its length
//! prefixes, and compressed again as a whole; only the header's attributes, length and CRC change.

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

/// The index of the first record without a key (key length -1), walking length prefixes.
pub fn first_keyless_record(mut records: &[u8]) -> Result<Option<usize>, BatchError> {
    let corrupt = || BatchError::Corrupt("malformed record");
    let mut index = 0;
    while !records.is_empty() {
        let (len, used) = varint(records).ok_or_else(corrupt)?;
        let len = usize::try_from(len).map_err(|_| corrupt())?;
        let body = records.get(used..used + len).ok_or_else(corrupt)?;
        // attributes (1 byte), timestampDelta (varlong), offsetDelta (varint), keyLength (varint)
        let mut at = 1;
        for _ in 0..2 {
            let (_, n) = varint(body.get(at..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
            at += n;
        }
        let (key_len, _) = varint(body.get(at..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
        if key_len < 0 {
            return Ok(Some(index));
        }
        records = &records[used + len..];
        index += 1;
    }
    Ok(None)
}

/// A zig-zag varlong: value and bytes used.
pub(crate) fn varint(b: &[u8]) -> Option<(i64, usize)> {
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
        assert_eq!(first_keyless_record(&raw).unwrap(), Some(0));
        // A record with key "k": length, attributes, ts delta 0, offset delta 0, key len 1, key,
        // value len -1, 0 headers.
        let body = [0u8, 0, 0, 2, b'k', 1, 0];
        let mut rec = vec![(body.len() as u8) << 1];
        rec.extend_from_slice(&body);
        assert_eq!(first_keyless_record(&rec).unwrap(), None);
        assert!(first_keyless_record(&rec[..4]).is_err());
    }
}
