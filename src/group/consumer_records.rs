//! KIP-848 consumer-group records in `__consumer_offsets`, in Kafka's formats (the
//! `ConsumerGroup*Key/Value` message specs of Kafka's group coordinator), so that a consumer
//! group's members, epochs and assignments survive a broker restart.
//!
//! Keys are non-flexible: `version int16 | group_id string [| member_id string]` with strings as
//! int16 length + UTF-8. The key version tells the record type:
//! - 3 group metadata: value `epoch int32` (the group epoch);
//! - 5 member metadata: value `instance_id string? | rack_id string? | client_id string |
//!   client_host string | subscribed_topic_names [string] | subscribed_topic_regex string? |
//!   rebalance_timeout_ms int32 | server_assignor string?` (+ tagged classic-member metadata,
//!   never written by gregor and skipped when read);
//! - 6 target assignment metadata: value `assignment_epoch int32`;
//! - 7 target assignment of a member: value `[topic_id uuid | partitions [int32]]`;
//! - 8 current assignment of a member: value `member_epoch int32 | previous_member_epoch int32 |
//!   state int8 | assigned_partitions [topic_id | [int32]] | partitions_pending_revocation
//!   [topic_id | [int32]]`.
//!
//! Values are version 0 and flexible: strings are compact (unsigned varint length + 1, 0 for
//! null), arrays compact (varint count + 1), and every struct ends with a tagged-field section
//! (varint count, then tag, size, bytes per field). A null value is a tombstone.
//! (Key version 4, the deprecated partition metadata, is neither written nor needed.)

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::consumer::Assignment;

pub const GROUP_METADATA_KEY: i16 = 3;
pub const MEMBER_METADATA_KEY: i16 = 5;
pub const TARGET_METADATA_KEY: i16 = 6;
pub const TARGET_MEMBER_KEY: i16 = 7;
pub const CURRENT_ASSIGNMENT_KEY: i16 = 8;

/// Kafka's MemberState values.
pub const MEMBER_STATE_STABLE: i8 = 0;
pub const MEMBER_STATE_UNREVOKED_PARTITIONS: i8 = 1;
pub const MEMBER_STATE_UNRELEASED_PARTITIONS: i8 = 2;

/// A member as its member-metadata record describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredConsumerMember {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// A member's current assignment record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredCurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// One record of a KIP-848 or share group, decoded, over the group type's member-metadata and
/// current-assignment values. `None` values are tombstones.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupRecord<M, C> {
    GroupEpoch(Option<i32>),
    Member {
        member_id: String,
        value: Option<M>,
    },
    TargetEpoch(Option<i32>),
    TargetMember {
        member_id: String,
        value: Option<Assignment>,
    },
    CurrentAssignment {
        member_id: String,
        value: Option<C>,
    },
}

pub type ConsumerGroupRecord = GroupRecord<StoredConsumerMember, StoredCurrentAssignment>;

/// A group rebuilt from its records (what replay accumulates).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup<M, C> {
    pub group_epoch: i32,
    pub target_epoch: i32,
    pub members: BTreeMap<String, M>,
    pub targets: BTreeMap<String, Assignment>,
    pub current: BTreeMap<String, C>,
}

pub type StoredConsumerGroup = StoredGroup<StoredConsumerMember, StoredCurrentAssignment>;

impl<M, C> Default for StoredGroup<M, C> {
    fn default() -> Self {
        StoredGroup {
            group_epoch: 0,
            target_epoch: 0,
            members: BTreeMap::new(),
            targets: BTreeMap::new(),
            current: BTreeMap::new(),
        }
    }
}

impl<M, C> GroupRecord<M, C> {
    pub fn is_tombstone(&self) -> bool {
        match self {
            GroupRecord::GroupEpoch(v) | GroupRecord::TargetEpoch(v) => v.is_none(),
            GroupRecord::Member { value, .. } => value.is_none(),
            GroupRecord::TargetMember { value, .. } => value.is_none(),
            GroupRecord::CurrentAssignment { value, .. } => value.is_none(),
        }
    }
}

/// Puts or removes (tombstone) one member's entry.
fn put_or_remove<V>(map: &mut BTreeMap<String, V>, member_id: String, value: Option<V>) {
    match value {
        Some(v) => {
            map.insert(member_id, v);
        }
        None => {
            map.remove(&member_id);
        }
    }
}

impl<M, C> StoredGroup<M, C> {
    /// Applies one record; false when the group itself was deleted (its epoch tombstoned).
    pub fn apply(&mut self, rec: GroupRecord<M, C>) -> bool {
        match rec {
            GroupRecord::GroupEpoch(None) => return false,
            GroupRecord::GroupEpoch(Some(e)) => self.group_epoch = e,
            GroupRecord::TargetEpoch(e) => self.target_epoch = e.unwrap_or(0),
            GroupRecord::Member { member_id, value } => {
                put_or_remove(&mut self.members, member_id, value)
            }
            GroupRecord::TargetMember { member_id, value } => {
                put_or_remove(&mut self.targets, member_id, value)
            }
            GroupRecord::CurrentAssignment { member_id, value } => {
                put_or_remove(&mut self.current, member_id, value)
            }
        }
        true
    }
}

pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    let n = s.len().min(i16::MAX as usize);
    b.put_i16(n as i16);
    b.put_slice(&s.as_bytes()[..n]);
}

pub(crate) fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

pub(crate) fn put_compact_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_uvarint(b, s.len() as u64 + 1);
            b.put_slice(s.as_bytes());
        }
    }
}

/// A compact array of compact strings.
pub(crate) fn put_compact_strings(b: &mut BytesMut, strings: &[String]) {
    put_uvarint(b, strings.len() as u64 + 1);
    for s in strings {
        put_compact_str(b, Some(s));
    }
}

pub(crate) fn put_topic_partitions(b: &mut BytesMut, a: &Assignment) {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in a {
        by_topic.entry(*t).or_default().push(*p);
    }
    put_uvarint(b, by_topic.len() as u64 + 1);
    for (topic_id, partitions) in by_topic {
        b.put_slice(topic_id.as_bytes());
        put_uvarint(b, partitions.len() as u64 + 1);
        for p in partitions {
            b.put_i32(p);
        }
        put_uvarint(b, 0); // no tagged fields
    }
}

pub(crate) fn value_header() -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b
}

pub(crate) fn finish(mut b: BytesMut) -> Bytes {
    put_uvarint(&mut b, 0); // no tagged fields
    b.freeze()
}

pub fn group_key(version: i16, group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version);
    put_str(&mut b, group);
    b.freeze()
}

pub fn member_key(version: i16, group: &str, member_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version);
    put_str(&mut b, group);
    put_str(&mut b, member_id);
    b.freeze()
}

/// The value of a group-metadata (epoch) or target-assignment-metadata record.
pub fn epoch_value(epoch: i32) -> Bytes {
    let mut b = value_header();
    b.put_i32(epoch);
    finish(b)
}

pub fn member_value(m: &StoredConsumerMember) -> Bytes {
    let mut b = value_header();
    put_compact_str(&mut b, m.instance_id.as_deref());
    put_compact_str(&mut b, m.rack_id.as_deref());
    put_compact_str(&mut b, Some(&m.client_id));
    put_compact_str(&mut b, Some(&m.client_host));
    put_compact_strings(&mut b, &m.subscribed_topic_names);
    put_compact_str(&mut b, m.subscribed_topic_regex.as_deref());
    b.put_i32(m.rebalance_timeout_ms);
    put_compact_str(&mut b, m.server_assignor.as_deref());
    finish(b)
}

pub fn target_member_value(a: &Assignment) -> Bytes {
    let mut b = value_header();
    put_topic_partitions(&mut b, a);
    finish(b)
}

pub fn current_assignment_value(c: &StoredCurrentAssignment) -> Bytes {
    let mut b = value_header();
    b.put_i32(c.member_epoch);
    b.put_i32(c.previous_member_epoch);
    b.put_i8(c.state);
    put_topic_partitions(&mut b, &c.assigned);
    put_topic_partitions(&mut b, &c.pending_revocation);
    finish(b)
}

/// A reader over untrusted bytes: every read is bounds-checked, counts are checked against what
/// is left before anything is allocated.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn i8(&mut self) -> Option<i8> {
        self.take(1).map(|b| b[0] as i8)
    }
    pub(crate) fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(i64::from_be_bytes(b))
    }
    pub(crate) fn uuid(&mut self) -> Option<Uuid> {
        Uuid::from_slice(self.take(16)?).ok()
    }
    /// Nothing left: a record that decoded with bytes to spare is not what it claims to be.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// A compact array's length, refused when it claims more elements than bytes remain.
    pub(crate) fn compact_len(&mut self) -> Option<Option<usize>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Some(None);
        }
        let n = usize::try_from(n - 1).ok()?;
        (n <= self.0.len()).then_some(Some(n))
    }
    pub(crate) fn compact_str(&mut self) -> Option<Option<String>> {
        match self.compact_len()? {
            None => Some(None),
            Some(n) => self
                .take(n)
                .map(|b| Some(String::from_utf8_lossy(b).into_owned())),
        }
    }
    pub(crate) fn skip_tagged(&mut self) -> Option<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.take(size)?;
        }
        Some(())
    }
    pub(crate) fn topic_partitions(&mut self) -> Option<Assignment> {
        let mut a = Assignment::new();
        for _ in 0..self.compact_len()?.unwrap_or(0) {
            let id = Uuid::from_slice(self.take(16)?).ok()?;
            for _ in 0..self.compact_len()?.unwrap_or(0) {
                a.insert((id, self.i32()?));
            }
            self.skip_tagged()?;
        }
        Some(a)
    }
    pub(crate) fn value_version(&mut self) -> Option<()> {
        (self.i16()? == 0).then_some(())
    }
    /// A compact array of (non-null) compact strings.
    pub(crate) fn compact_strings(&mut self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for _ in 0..self.compact_len()?.unwrap_or(0) {
            out.push(self.compact_str()?.unwrap_or_default());
        }
        Some(out)
    }
}

/// A version-0 flexible value: its fields as `fields` reads them, then its tagged fields.
pub(crate) fn read_value<T>(
    v: &[u8],
    fields: impl FnOnce(&mut Reader<'_>) -> Option<T>,
) -> Option<T> {
    let mut r = Reader(v);
    r.value_version()?;
    let value = fields(&mut r)?;
    r.skip_tagged()?;
    Some(value)
}

fn decode_member(v: &[u8]) -> Option<StoredConsumerMember> {
    let mut r = Reader(v);
    r.value_version()?;
    let instance_id = r.compact_str()?;
    let rack_id = r.compact_str()?;
    let client_id = r.compact_str()?.unwrap_or_default();
    let client_host = r.compact_str()?.unwrap_or_default();
    let subscribed_topic_names = r.compact_strings()?;
    let m = StoredConsumerMember {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex: r.compact_str()?,
        rebalance_timeout_ms: r.i32()?,
        server_assignor: r.compact_str()?,
    };
    r.skip_tagged()?;
    Some(m)
}

fn decode_epoch(v: &[u8]) -> Option<i32> {
    let mut r = Reader(v);
    r.value_version()?;
    let epoch = r.i32()?;
    r.skip_tagged()?;
    Some(epoch)
}

fn decode_current(v: &[u8]) -> Option<StoredCurrentAssignment> {
    let mut r = Reader(v);
    r.value_version()?;
    let c = StoredCurrentAssignment {
        member_epoch: r.i32()?,
        previous_member_epoch: r.i32()?,
        state: r.i8()?,
        assigned: r.topic_partitions()?,
        pending_revocation: r.topic_partitions()?,
    };
    r.skip_tagged()?;
    Some(c)
}

fn decode_target(v: &[u8]) -> Option<Assignment> {
    let mut r = Reader(v);
    r.value_version()?;
    let a = r.topic_partitions()?;
    r.skip_tagged()?;
    Some(a)
}

/// How one group type lays out its records: the key type of each, and the decoders of the
/// values that differ between types.
pub(crate) struct RecordLayout<M, C> {
    pub group_metadata: i16,
    pub member_metadata: i16,
    pub target_metadata: i16,
    pub target_member: i16,
    pub current_assignment: i16,
    pub group_epoch: fn(&[u8]) -> Option<i32>,
    pub member: fn(&[u8]) -> Option<M>,
    pub current: fn(&[u8]) -> Option<C>,
}

const CONSUMER_LAYOUT: RecordLayout<StoredConsumerMember, StoredCurrentAssignment> = RecordLayout {
    group_metadata: GROUP_METADATA_KEY,
    member_metadata: MEMBER_METADATA_KEY,
    target_metadata: TARGET_METADATA_KEY,
    target_member: TARGET_MEMBER_KEY,
    current_assignment: CURRENT_ASSIGNMENT_KEY,
    group_epoch: decode_epoch,
    member: decode_member,
    current: decode_current,
};

/// Decodes a group record of the given layout: (group id, record); `None` for other key types
/// or malformed bytes.
pub(crate) fn decode_with<M, C>(
    layout: &RecordLayout<M, C>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Option<(String, GroupRecord<M, C>)> {
    fn opt<T>(value: Option<&[u8]>, f: fn(&[u8]) -> Option<T>) -> Option<Option<T>> {
        match value {
            Some(v) => Some(Some(f(v)?)),
            None => Some(None),
        }
    }
    let mut k = Reader(key);
    let version = k.i16()?;
    let group = k.string()?;
    let rec = if version == layout.group_metadata {
        GroupRecord::GroupEpoch(opt(value, layout.group_epoch)?)
    } else if version == layout.target_metadata {
        GroupRecord::TargetEpoch(opt(value, decode_epoch)?)
    } else if version == layout.member_metadata {
        GroupRecord::Member {
            member_id: k.string()?,
            value: opt(value, layout.member)?,
        }
    } else if version == layout.target_member {
        GroupRecord::TargetMember {
            member_id: k.string()?,
            value: opt(value, decode_target)?,
        }
    } else if version == layout.current_assignment {
        GroupRecord::CurrentAssignment {
            member_id: k.string()?,
            value: opt(value, layout.current)?,
        }
    } else {
        return None;
    };
    Some((group, rec))
}

/// Decodes a consumer-group record: (group id, record); `None` for other key versions or
/// malformed bytes.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, ConsumerGroupRecord)> {
    decode_with(&CONSUMER_LAYOUT, key, value)
}

/// Checks that each of a group type's five records, written by its writers (`values`: group
/// epoch 7, target epoch 6, member, target, current), decodes to what was
/// written, and that every truncation is refused, never misread or panicking.
#[cfg(test)]
pub(crate) fn check_round_trips<M, C>(
    layout: &RecordLayout<M, C>,
    values: [Bytes; 5],
    (member, target, current): (M, Assignment, C),
) where
    M: std::fmt::Debug + PartialEq,
    C: std::fmt::Debug + PartialEq,
{
    let m = |id: &str| id.to_string();
    let wants = [
        GroupRecord::GroupEpoch(Some(7)),
        GroupRecord::TargetEpoch(Some(6)),
        GroupRecord::Member {
            member_id: m("m"),
            value: Some(member),
        },
        GroupRecord::TargetMember {
            member_id: m("m"),
            value: Some(target),
        },
        GroupRecord::CurrentAssignment {
            member_id: m("m"),
            value: Some(current),
        },
    ];
    let decode = |k: &[u8], v: Option<&[u8]>| decode_with(layout, k, v);
    let keys = [
        layout.group_metadata,
        layout.target_metadata,
        layout.member_metadata,
        layout.target_member,
        layout.current_assignment,
    ];
    for ((k, value), want) in keys.into_iter().zip(values).zip(wants) {
        let key = if k == keys[0] || k == keys[1] {
            group_key(k, "g")
        } else {
            member_key(k, "g", "m")
        };
        assert_eq!(decode(&key, Some(&value)), Some(("g".into(), want)));
        assert!(decode(&key, None).is_some_and(|(_, r)| r.is_tombstone()));
        for cut in 0..value.len() {
            assert_eq!(decode(&key, Some(&value[..cut])), None, "cut at {cut}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: u128, p: i32) -> (Uuid, i32) {
        (Uuid::from_u128(t), p)
    }

    #[test]
    fn every_record_round_trips() {
        let member = StoredConsumerMember {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: Some("t.*".into()),
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("range".into()),
        };
        let target: Assignment = [tp(1, 0), tp(1, 2), tp(2, 1)].into();
        let current = StoredCurrentAssignment {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: MEMBER_STATE_UNREVOKED_PARTITIONS,
            assigned: [tp(1, 0)].into(),
            pending_revocation: [tp(2, 3)].into(),
        };
        let values = [
            epoch_value(7),
            epoch_value(6),
            member_value(&member),
            target_member_value(&target),
            current_assignment_value(&current),
        ];
        check_round_trips(&CONSUMER_LAYOUT, values, (member, target, current));
        let tomb = decode(&member_key(TARGET_MEMBER_KEY, "g", "m"), None);
        assert_eq!(
            tomb,
            Some((
                "g".into(),
                ConsumerGroupRecord::TargetMember {
                    member_id: "m".into(),
                    value: None
                }
            ))
        );
    }

    #[test]
    fn hostile_counts_are_refused() {
        // A target assignment claiming 2^28 topics in a 10-byte value.
        let mut v = BytesMut::new();
        v.put_i16(0);
        put_uvarint(&mut v, 1 << 28);
        v.put_slice(&[0; 6]);
        assert_eq!(decode_target(&v), None);
    }

    #[test]
    fn replay_applies_upserts_and_tombstones() {
        let mut g = StoredConsumerGroup::default();
        assert!(g.apply(ConsumerGroupRecord::GroupEpoch(Some(3))));
        g.apply(ConsumerGroupRecord::Member {
            member_id: "m".into(),
            value: Some(StoredConsumerMember::default()),
        });
        g.apply(ConsumerGroupRecord::Member {
            member_id: "m".into(),
            value: None,
        });
        assert!(g.members.is_empty());
        assert_eq!(g.group_epoch, 3);
        assert!(!g.apply(ConsumerGroupRecord::GroupEpoch(None)));
    }
}
