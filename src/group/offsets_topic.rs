//! Kafka's record formats in the internal topic `__consumer_offsets`, so that committed offsets
//! and group deletions survive restarts (replayed at start-up) and Kafka's tools can read them.
//!
//! All fields big-endian; strings are int16 length + UTF-8 (non-flexible formats):
//! - offset commit key, version 1: `version int16 | group string | topic string | partition int32`;
//! - offset commit value, version 3: `version int16 | offset int64 | leader_epoch int32 |
//!   metadata string | commit_timestamp int64`;
//! - group metadata key, version 2: `version int16 | group string`; its value (version 3) records
//!   `protocol_type string | generation int32 | protocol string? | leader string? |
//!   current_state_timestamp int64 | members array (count int32, each: member_id, group_instance_id?,
//!   client_id, client_host strings, rebalance_timeout int32, session_timeout int32, subscription
//!   bytes, assignment bytes)`.
//!
//! A null value (tombstone) deletes the offset or the group. The partition of a group is
//! `abs(java_hash(group)) % partitions`, as in Kafka.

use bytes::{BufMut, Bytes, BytesMut};

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_KEY_VERSION: i16 = 2;
const GROUP_VALUE_VERSION: i16 = 3;

/// Java's String.hashCode over UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition that holds a group (GroupCoordinator.partitionFor).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs maps i32::MIN to 0.
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Where the record sits in `__consumer_offsets` (not part of the value; -1 until replayed):
    /// of a transactional and a plain commit of one partition, the later record wins when the
    /// transaction commits (Kafka's OffsetAndMetadata.recordOffset).
    pub record_offset: i64,
}

/// One record of the offsets topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<StoredGroup>,
    },
}

/// A group as its latest group record describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub timestamp: i64,
    pub members: Vec<StoredMember>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn offset_value(o: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_VALUE_VERSION);
    b.put_i64(o.offset);
    b.put_i32(o.leader_epoch);
    put_str(&mut b, &o.metadata);
    b.put_i64(o.commit_timestamp);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_KEY_VERSION);
    put_str(&mut b, group);
    b.freeze()
}

/// What a group record says about one member.
pub struct MemberRecord<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    pub client_id: &'a str,
    pub client_host: &'a str,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: &'a [u8],
    pub assignment: &'a [u8],
}

pub struct GroupRecord<'a> {
    pub protocol_type: &'a str,
    pub generation: i32,
    pub protocol: Option<&'a str>,
    pub leader: Option<&'a str>,
    pub timestamp: i64,
    pub members: Vec<MemberRecord<'a>>,
}

pub fn group_value(g: &GroupRecord<'_>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut b, g.protocol_type);
    b.put_i32(g.generation);
    put_opt_str(&mut b, g.protocol);
    put_opt_str(&mut b, g.leader);
    b.put_i64(g.timestamp);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut b, m.member_id);
        put_opt_str(&mut b, m.group_instance_id);
        put_str(&mut b, m.client_id);
        put_str(&mut b, m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, m.subscription);
        put_bytes(&mut b, m.assignment);
    }
    b.freeze()
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    fn opt_string(&mut self) -> Option<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        self.take(n as usize)
            .map(|b| Some(String::from_utf8_lossy(b).into_owned()))
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let n = usize::try_from(self.i32()?).ok()?;
        self.take(n).map(Bytes::copy_from_slice)
    }
}

fn decode_group(v: &[u8]) -> Option<StoredGroup> {
    let mut r = Reader(v);
    let version = r.i16()?;
    let mut g = StoredGroup {
        protocol_type: r.string()?,
        generation: r.i32()?,
        protocol: r.opt_string()?,
        leader: r.opt_string()?,
        ..StoredGroup::default()
    };
    if version >= 2 {
        g.timestamp = r.i64()?;
    }
    let count = r.i32()?;
    for _ in 0..count.max(0) {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 { r.opt_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        // v0 has no separate rebalance timeout: the session timeout serves for both.
        let rebalance_timeout_ms = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        g.members.push(StoredMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(g)
}

/// Decodes one record of the offsets topic; `None` for versions or shapes gregor does not read.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetsRecord> {
    let mut k = Reader(key);
    match k.i16()? {
        0 | 1 => {
            let (group, topic, partition) = (k.string()?, k.string()?, k.i32()?);
            let value = match value {
                None => None,
                Some(v) => {
                    let mut r = Reader(v);
                    let version = r.i16()?;
                    let offset = r.i64()?;
                    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
                    let metadata = r.string()?;
                    let commit_timestamp = r.i64()?;
                    Some(CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                        record_offset: -1,
                    })
                }
            };
            Some(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = k.string()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group(v)?),
            };
            Some(OffsetsRecord::Group { group, value })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // "hello".hashCode() == 99162322 in Java; "" is 0.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
        assert!((0..50).contains(&partition_for("my-group", 50)));
    }

    #[test]
    fn offsets_round_trip() {
        let o = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 7,
            record_offset: -1,
        };
        let r = decode(&offset_key("g", "t", 5), Some(&offset_value(&o))).unwrap();
        assert_eq!(
            r,
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(o)
            }
        );
        let tomb = decode(&offset_key("g", "t", 5), None).unwrap();
        assert!(matches!(tomb, OffsetsRecord::Offset { value: None, .. }));
        let m = MemberRecord {
            member_id: "m1",
            group_instance_id: Some("i1"),
            client_id: "c",
            client_host: "/h",
            rebalance_timeout_ms: 300,
            session_timeout_ms: 45,
            subscription: b"sub",
            assignment: b"asg",
        };
        let g = GroupRecord {
            protocol_type: "consumer",
            generation: 9,
            protocol: Some("range"),
            leader: Some("m1"),
            timestamp: 1,
            members: vec![m],
        };
        let r = decode(&group_key("g"), Some(&group_value(&g))).unwrap();
        let OffsetsRecord::Group {
            group,
            value: Some(stored),
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(
            (
                group.as_str(),
                stored.generation,
                stored.protocol.as_deref()
            ),
            ("g", 9, Some("range"))
        );
        assert_eq!(stored.members[0].group_instance_id.as_deref(), Some("i1"));
        assert_eq!(stored.members[0].assignment, Bytes::from_static(b"asg"));
        assert!(decode(&[0, 9], None).is_none());
        assert!(decode(&[0, 1, 0], None).is_none(), "truncated");
    }
}
