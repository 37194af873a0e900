//! Control batches: the transaction markers (Kafka's EndTransactionMarker and ControlRecordType)
//! that end a transaction in each of its partitions.
//!
//! A marker is a batch with the transactional and control attributes, the producer's id and
//! epoch, base sequence -1 (RecordBatch.NO_SEQUENCE) and one record (MemoryRecords
//! .withEndTransactionMarker):
//! key `version int16 = 0 | type int16` (ControlRecordType: 0 ABORT, 1 COMMIT),
//! value `version int16 = 0 | coordinator_epoch int32`.

use super::batch::{
    compute_crc, BatchError, BatchHeader, ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2, OFF_CRC,
};
use super::records::{uncompressed_records, walk_records};
use crate::txn::TxnMarker;

/// ControlRecordType ABORT and COMMIT.
pub const CONTROL_TYPE_ABORT: i16 = 0;
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// RecordBatch.NO_SEQUENCE: markers (and a coordinator's transactional writes) carry none.
pub const NO_SEQUENCE: i32 = -1;

/// The control record's key and value sizes (ControlRecordType.CURRENT_CONTROL_RECORD_KEY_SIZE,
/// EndTransactionMarker.CURRENT_END_TXN_MARKER_VALUE_SIZE).
const KEY_SIZE: usize = 4;
const VALUE_SIZE: usize = 6;

/// The marker batch as the log stores it (offsets are assigned at append), stamped `timestamp`.
pub fn end_txn_marker_batch(marker: &TxnMarker, timestamp: i64) -> Vec<u8> {
    let control_type = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    // The record: attributes, timestamp delta 0, offset delta 0, key, value, no headers. Every
    // varint fits one byte (zig-zag: n is written as 2n).
    let mut record = vec![0u8, 0, 0, (KEY_SIZE as u8) << 1];
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&control_type.to_be_bytes());
    record.push((VALUE_SIZE as u8) << 1);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    record.push(0);
    let length = (HEADER_LEN - LOG_OVERHEAD + 1 + record.len()) as i32;
    let mut b = Vec::with_capacity(HEADER_LEN + 1 + record.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&length.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    b.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&marker.producer_id.to_be_bytes());
    b.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    b.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    b.push((record.len() as u8) << 1);
    b.extend_from_slice(&record);
    let crc = compute_crc(&b);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The transaction marker a control batch carries (ProducerAppendInfo.append reads its first
/// record with EndTransactionMarker.deserialize); `None` for an empty control batch, which the
/// cleaner leaves once the whole transaction is gone. A control record of another type, or one
/// too short, is INVALID_RECORD as in Kafka.
pub fn parse_txn_marker(
    batch: &[u8],
    h: &BatchHeader,
    max_message_bytes: usize,
) -> Result<Option<TxnMarker>, BatchError> {
    let area = uncompressed_records(batch, h, max_message_bytes)?;
    let records = walk_records(&area)?;
    let Some(first) = records.first() else {
        return Ok(None);
    };
    let key = first
        .key
        .filter(|k| k.len() >= KEY_SIZE)
        .ok_or(BatchError::InvalidRecord("control record key is too short"))?;
    let value = first
        .value
        .filter(|v| v.len() >= VALUE_SIZE)
        .ok_or(BatchError::InvalidRecord(
            "end transaction marker value is too short",
        ))?;
    if i16::from_be_bytes([key[0], key[1]]) < 0 || i16::from_be_bytes([value[0], value[1]]) < 0 {
        return Err(BatchError::InvalidRecord("negative control record version"));
    }
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        CONTROL_TYPE_COMMIT => true,
        CONTROL_TYPE_ABORT => false,
        _ => {
            return Err(BatchError::InvalidRecord(
                "control record is not an end transaction marker",
            ))
        }
    };
    Ok(Some(TxnMarker {
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        coordinator_epoch: i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
        commit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::crc_is_valid;

    #[test]
    fn a_marker_batch_round_trips_and_decodes_as_kafka_writes_it() {
        for commit in [true, false] {
            let m = TxnMarker {
                producer_id: 42,
                producer_epoch: 3,
                coordinator_epoch: 7,
                commit,
            };
            let b = end_txn_marker_batch(&m, 1_000);
            assert!(crc_is_valid(&b));
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(parse_txn_marker(&b, &h, 1 << 20).unwrap(), Some(m));
            // The kafka-protocol decoder (as clients decode) reads the same control record.
            let mut bytes = bytes::Bytes::from(b);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
            let r = &set.records[0];
            assert!(r.control && r.transactional);
            let key = r.key.as_ref().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, u8::from(commit)]);
            assert_eq!(&r.value.as_ref().unwrap()[..], &[0, 0, 0, 0, 0, 7]);
        }
    }
}
