//! Kafka's record format in the internal topic `__transaction_state` (the `TransactionLogKey` and
//! `TransactionLogValue` message specs of Kafka's transaction coordinator, and its
//! `TransactionLog.keyToBytes` / `valueToBytes`), so that transactional ids survive restarts
//! (replayed at start-up) and Kafka's tools can read the topic.
//!
//! All fields big-endian, each record prefixed by its version (int16):
//! - key, version 0 (non-flexible): `transactional_id string` (int16 length + UTF-8);
//! - value, version 0 (non-flexible; what a coordinator writes with `transaction.version` 0, read
//!   here):
//!   `producer_id int64 | producer_epoch int16 | transaction_timeout_ms int32 |
//!   transaction_status int8 | transaction_partitions array? (int32 count, -1 for null; each:
//!   topic string | partition_ids [int32]) | last_update_timestamp_ms int64 |
//!   start_timestamp_ms int64`;
//! - value, version 1 (flexible; what a coordinator writes with `transaction.version` 1+
//!   finalized, as this one: TransactionVersion.transactionLogValueVersion): the same fields with
//!   compact strings and arrays (unsigned varint length + 1, 0 for null), a tagged-field section
//!   (unsigned varint count, then each field's varint tag, varint size and bytes, in tag order)
//!   ending each partition entry (always empty) and the value; the value's tags, each written only
//!   when it is not its default, are 0 `previous_producer_id int64` (default -1), 1
//!   `next_producer_id int64` (-1), 2 `client_transaction_version int16` (0); 3
//!   `next_producer_epoch int16` (KIP-939) is read past.
//!
//! The status is Kafka's TransactionState id (see `metadata`). An Empty transaction has null
//! partitions; a null value (tombstone) removes an expired transactional id.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const KEY_VERSION: i16 = 0;
/// Kafka writes version 0 until `transaction.version` 1+ is finalized.
const VALUE_VERSION: i16 = 0;
/// What this coordinator writes (`transaction.version` 2 is finalized).
const FLEXIBLE_VALUE_VERSION: i16 = 1;

/// The partitions of one topic in a transaction (TransactionLogValue.PartitionsSchema).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions {
    pub topic: String,
    pub partition_ids: Vec<i32>,
}

/// One `__transaction_state` value, decoded (TransactionLogValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    pub transaction_status: i8,
    pub transaction_partitions: Option<Vec<TopicPartitions>>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    pub client_transaction_version: i16,
}

impl Default for TransactionLogValue {
    fn default() -> Self {
        TransactionLogValue {
            producer_id: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            transaction_timeout_ms: 0,
            transaction_status: 0,
            transaction_partitions: None,
            last_update_timestamp_ms: -1,
            start_timestamp_ms: -1,
            client_transaction_version: 0,
        }
    }
}

/// A record of the topic: the transactional id and its value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogRecord {
    pub transactional_id: String,
    pub value: Option<TransactionLogValue>,
}

/// A non-flexible string; ids and topic names are far shorter than i16::MAX.
fn put_string(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

/// The key of a transactional id's records.
pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_string(&mut b, transactional_id);
    b.freeze()
}

/// An unsigned varint (the flexible versions' lengths, counts and tags).
fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// A compact string (length + 1).
fn put_compact_string(b: &mut BytesMut, s: &str) {
    put_uvarint(b, s.len() as u64 + 1);
    b.put_slice(s.as_bytes());
}

/// The value bytes of a transaction's state, at version 1 (TransactionLog.valueToBytes with
/// `transaction.version` 2).
pub fn value(v: &TransactionLogValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(FLEXIBLE_VALUE_VERSION);
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.transaction_timeout_ms);
    b.put_i8(v.transaction_status);
    match &v.transaction_partitions {
        None => put_uvarint(&mut b, 0),
        Some(topics) => {
            put_uvarint(&mut b, topics.len() as u64 + 1);
            for t in topics {
                put_compact_string(&mut b, &t.topic);
                put_uvarint(&mut b, t.partition_ids.len() as u64 + 1);
                for p in &t.partition_ids {
                    b.put_i32(*p);
                }
                put_uvarint(&mut b, 0); // the entry's tagged fields
            }
        }
    }
    b.put_i64(v.last_update_timestamp_ms);
    b.put_i64(v.start_timestamp_ms);
    let mut tagged: Vec<(u64, Vec<u8>)> = Vec::new();
    if v.previous_producer_id != -1 {
        tagged.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
    }
    if v.next_producer_id != -1 {
        tagged.push((1, v.next_producer_id.to_be_bytes().to_vec()));
    }
    if v.client_transaction_version != 0 {
        tagged.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
    }
    put_uvarint(&mut b, tagged.len() as u64);
    for (tag, bytes) in tagged {
        put_uvarint(&mut b, tag);
        put_uvarint(&mut b, bytes.len() as u64);
        b.put_slice(&bytes);
    }
    b.freeze()
}

/// Reads the value's fields from `b`, in either format; None when the bytes run short or lie.
struct ValueReader {
    b: Bytes,
    flexible: bool,
}

impl ValueReader {
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.b.try_get_u8().ok()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// An array or string length: int16/int32 or compact (varint n + 1); None inside for null.
    fn len(&mut self, wide: bool) -> Option<Option<usize>> {
        let n = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            i64::from(self.b.try_get_i32().ok()?)
        } else {
            i64::from(self.b.try_get_i16().ok()?)
        };
        // Every element takes at least one byte: a longer count is a lie, not an allocation.
        match usize::try_from(n) {
            Ok(n) if n <= self.b.remaining() => Some(Some(n)),
            Ok(_) => None,
            Err(_) => Some(None),
        }
    }

    fn string(&mut self) -> Option<String> {
        let n = self.len(false)??;
        String::from_utf8(self.b.split_to(n).to_vec()).ok()
    }

    /// The tagged-field section of a flexible struct: each field's tag and bytes.
    fn tagged(&mut self, mut field: impl FnMut(u64, Bytes) -> Option<()>) -> Option<()> {
        if !self.flexible {
            return Some(());
        }
        for _ in 0..self.uvarint()? {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            if size > self.b.remaining() {
                return None;
            }
            field(tag, self.b.split_to(size))?;
        }
        Some(())
    }

    fn topic(&mut self) -> Option<TopicPartitions> {
        let topic = self.string()?;
        let n = self.len(true)??;
        let partition_ids = (0..n)
            .map(|_| self.b.try_get_i32().ok())
            .collect::<Option<Vec<i32>>>()?;
        self.tagged(|_, _| Some(()))?;
        Some(TopicPartitions {
            topic,
            partition_ids,
        })
    }

    fn value(&mut self) -> Option<TransactionLogValue> {
        let mut v = TransactionLogValue {
            producer_id: self.b.try_get_i64().ok()?,
            producer_epoch: self.b.try_get_i16().ok()?,
            transaction_timeout_ms: self.b.try_get_i32().ok()?,
            transaction_status: self.b.try_get_i8().ok()?,
            transaction_partitions: match self.len(true)? {
                None => None,
                Some(n) => Some((0..n).map(|_| self.topic()).collect::<Option<Vec<_>>>()?),
            },
            last_update_timestamp_ms: self.b.try_get_i64().ok()?,
            start_timestamp_ms: self.b.try_get_i64().ok()?,
            ..TransactionLogValue::default()
        };
        self.tagged(|tag, mut bytes| {
            match tag {
                0 => v.previous_producer_id = bytes.try_get_i64().ok()?,
                1 => v.next_producer_id = bytes.try_get_i64().ok()?,
                2 => v.client_transaction_version = bytes.try_get_i16().ok()?,
                _ => {}
            }
            Some(())
        })?;
        Some(v)
    }
}

/// Decodes a record of the topic; `None` for a key of another version or bytes that do not
/// decode (a newer broker's record type is skipped, as Kafka's UnknownKey).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<TransactionLogRecord> {
    let mut k = ValueReader {
        b: Bytes::copy_from_slice(key),
        flexible: false,
    };
    if k.b.try_get_i16().ok()? != KEY_VERSION {
        return None;
    }
    let transactional_id = k.string()?;
    let value = match value {
        None => None,
        Some(v) => {
            let mut b = Bytes::copy_from_slice(v);
            let version = b.try_get_i16().ok()?;
            if !(VALUE_VERSION..=FLEXIBLE_VALUE_VERSION).contains(&version) {
                return None;
            }
            let flexible = version >= FLEXIBLE_VALUE_VERSION;
            Some(ValueReader { b, flexible }.value()?)
        }
    };
    Some(TransactionLogRecord {
        transactional_id,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TransactionLogValue {
        TransactionLogValue {
            producer_id: 7,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            transaction_status: 1,
            transaction_partitions: Some(vec![TopicPartitions {
                topic: "t".into(),
                partition_ids: vec![0, 2],
            }]),
            last_update_timestamp_ms: 1_000,
            start_timestamp_ms: 900,
            ..TransactionLogValue::default()
        }
    }

    #[test]
    fn version_0_values_are_read() {
        // TransactionLog.keyToBytes, and valueToBytes at version 0 (transaction.version 0),
        // field by field.
        assert_eq!(&key("tx")[..], &[0, 0, 0, 2, b't', b'x']);
        let mut bytes = vec![0, 0]; // version
        bytes.extend(7i64.to_be_bytes());
        bytes.extend(3i16.to_be_bytes());
        bytes.extend(60_000i32.to_be_bytes());
        bytes.push(1);
        bytes.extend(1i32.to_be_bytes()); // one topic
        bytes.extend([0, 1, b't']);
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(0i32.to_be_bytes());
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(1_000i64.to_be_bytes());
        bytes.extend(900i64.to_be_bytes());
        let r = decode(&key("tx"), Some(&bytes)).unwrap();
        assert_eq!(r.transactional_id, "tx");
        assert_eq!(r.value, Some(sample()));
        assert_eq!(decode(&key("tx"), None).unwrap().value, None);
    }

    #[test]
    fn version_1_bytes_are_kafkas() {
        // valueToBytes with transaction.version 2: version 1, compact fields, and the tagged
        // fields that differ from their defaults, in tag order.
        let v = TransactionLogValue {
            previous_producer_id: 6,
            next_producer_id: -1,
            client_transaction_version: 2,
            ..sample()
        };
        let bytes = value(&v);
        let mut expected = vec![0, 1]; // version
        expected.extend(7i64.to_be_bytes());
        expected.extend(3i16.to_be_bytes());
        expected.extend(60_000i32.to_be_bytes());
        expected.push(1);
        expected.push(2); // one topic (compact: n + 1)
        expected.extend([2, b't']);
        expected.push(3); // two partitions
        expected.extend(0i32.to_be_bytes());
        expected.extend(2i32.to_be_bytes());
        expected.push(0); // the topic's tagged fields
        expected.extend(1_000i64.to_be_bytes());
        expected.extend(900i64.to_be_bytes());
        expected.push(2); // two tagged fields: 0 and 2 (next_producer_id is its default)
        expected.extend([0, 8]);
        expected.extend(6i64.to_be_bytes());
        expected.extend([2, 2]);
        expected.extend(2i16.to_be_bytes());
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(decode(&key("tx"), Some(&bytes)).unwrap().value, Some(v));
        // An Empty transaction's null partitions, and no tagged field at all.
        let empty = TransactionLogValue {
            transaction_partitions: None,
            ..sample()
        };
        let bytes = value(&empty);
        assert_eq!(bytes[2 + 8 + 2 + 4 + 1], 0, "null partitions");
        assert_eq!(*bytes.last().unwrap(), 0, "no tagged fields");
        assert_eq!(decode(&key("tx"), Some(&bytes)).unwrap().value, Some(empty));
    }

    #[test]
    fn flexible_values_of_newer_coordinators_are_read() {
        // Version 1 (a TV2 coordinator's), with its tagged fields.
        let mut b = vec![0, 1];
        b.extend(7i64.to_be_bytes());
        b.extend(3i16.to_be_bytes());
        b.extend(60_000i32.to_be_bytes());
        b.push(4);
        b.push(2); // one topic (compact: n + 1)
        b.extend([2, b't']);
        b.extend([2]); // one partition
        b.extend(5i32.to_be_bytes());
        b.push(0); // topic's tagged fields
        b.extend(1_000i64.to_be_bytes());
        b.extend(900i64.to_be_bytes());
        b.push(2); // two tagged fields
        b.extend([1, 8]);
        b.extend(42i64.to_be_bytes());
        b.extend([9, 1, 0xff]); // an unknown tag is skipped
        let v = decode(&key("tx"), Some(&b)).unwrap().value.unwrap();
        assert_eq!(v.next_producer_id, 42);
        assert_eq!(v.transaction_status, 4);
        assert_eq!(v.transaction_partitions.unwrap()[0].partition_ids, vec![5]);
    }

    #[test]
    fn garbage_is_skipped_not_a_panic() {
        assert!(decode(&[0, 9, 0, 1, b'x'], None).is_none());
        assert!(decode(&key("tx"), Some(&[0, 0, 1])).is_none());
        assert!(decode(&key("tx"), Some(&[0, 7])).is_none());
        let mut huge = vec![0, 0];
        huge.extend([0; 15]);
        huge.extend(i32::MAX.to_be_bytes());
        assert!(decode(&key("tx"), Some(&huge)).is_none());
    }
}
