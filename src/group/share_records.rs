//! KIP-932 share-group records in `__consumer_offsets`, in Kafka 4.4's formats (the
//! `ShareGroup*Key/Value` message specs of its group coordinator), so a share group's members,
//! epochs and assignments survive a restart. The layout is the KIP-848 one (`consumer_records`)
//! under other key types:
//! - 11 group metadata: value `epoch int32 | metadata_hash int64` (gregor writes hash 0: Kafka
//!   compares it only with hashes it computed itself);
//! - 10 member metadata: value `rack_id string? | client_id string | client_host string |
//!   subscribed_topic_names [string]`;
//! - 12 target assignment metadata: value `assignment_epoch int32` (+ tag 0, the assignment
//!   timestamp, absent when 0);
//! - 13 target assignment of a member: value `[topic_id uuid | partitions [int32]]`;
//! - 14 current assignment of a member: value `member_epoch int32 | previous_member_epoch int32 |
//!   state int8 | assigned_partitions [topic_id uuid | partitions [int32]]`.
//!
//! (15, ShareGroupStatePartitionMetadata, tracks the share coordinator's initialization of each
//! share-partition's state; gregor initializes it in process and does not write it.)

use bytes::{BufMut, Bytes};

use super::consumer::Assignment;
use super::consumer_records::{
    decode_with, finish, put_compact_str, put_compact_strings, put_topic_partitions, read_value,
    value_header, GroupRecord, RecordLayout, StoredGroup,
};

/// A member as its member-metadata record describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredShareMember {
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
}

/// A member's current-assignment record (its state is always STABLE, 0: partitions are shared,
/// never revoked).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredShareCurrent {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
}

/// The key types of share-group records (Kafka's CoordinatorRecordType ids 10 to 14).
pub(crate) const LAYOUT: RecordLayout<StoredShareMember, StoredShareCurrent> = RecordLayout {
    group_metadata: 11,
    member_metadata: 10,
    target_metadata: 12,
    target_member: 13,
    current_assignment: 14,
    group_epoch: decode_group_epoch,
    member: decode_member,
    current: decode_current,
};

pub type ShareGroupRecord = GroupRecord<StoredShareMember, StoredShareCurrent>;
pub type StoredShareGroup = StoredGroup<StoredShareMember, StoredShareCurrent>;

pub fn group_metadata_value(epoch: i32) -> Bytes {
    let mut b = value_header();
    b.put_i32(epoch);
    b.put_i64(0);
    finish(b)
}

pub fn member_value(m: &StoredShareMember) -> Bytes {
    let mut b = value_header();
    put_compact_str(&mut b, m.rack_id.as_deref());
    put_compact_str(&mut b, Some(&m.client_id));
    put_compact_str(&mut b, Some(&m.client_host));
    put_compact_strings(&mut b, &m.subscribed_topic_names);
    finish(b)
}

pub fn current_assignment_value(c: &StoredShareCurrent) -> Bytes {
    let mut b = value_header();
    b.put_i32(c.member_epoch);
    b.put_i32(c.previous_member_epoch);
    b.put_i8(0);
    put_topic_partitions(&mut b, &c.assigned);
    finish(b)
}

fn decode_group_epoch(v: &[u8]) -> Option<i32> {
    read_value(v, |r| {
        let epoch = r.i32()?;
        r.i64()?; // the metadata hash
        Some(epoch)
    })
}

fn decode_member(v: &[u8]) -> Option<StoredShareMember> {
    read_value(v, |r| {
        Some(StoredShareMember {
            rack_id: r.compact_str()?,
            client_id: r.compact_str()?.unwrap_or_default(),
            client_host: r.compact_str()?.unwrap_or_default(),
            subscribed_topic_names: r.compact_strings()?,
        })
    })
}

fn decode_current(v: &[u8]) -> Option<StoredShareCurrent> {
    read_value(v, |r| {
        let member_epoch = r.i32()?;
        let previous_member_epoch = r.i32()?;
        r.i8()?; // the member state: always STABLE
        Some(StoredShareCurrent {
            member_epoch,
            previous_member_epoch,
            assigned: r.topic_partitions()?,
        })
    })
}

/// Decodes a share-group record: (group id, record); `None` for other key types or malformed
/// bytes.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, ShareGroupRecord)> {
    decode_with(&LAYOUT, key, value)
}

/// The target-assignment metadata value: Kafka's layout is the KIP-848 epoch value's.
pub fn target_metadata_value(epoch: i32) -> Bytes {
    super::consumer_records::epoch_value(epoch)
}

#[cfg(test)]
mod tests {
    use super::super::consumer_records::{check_round_trips, member_key, target_member_value};
    use super::*;
    use uuid::Uuid;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn tp(t: u128, p: i32) -> (Uuid, i32) {
        (Uuid::from_u128(t), p)
    }

    /// Bytes written by Kafka 4.4's own generated classes (kafka-group-coordinator-4.4.0.jar,
    /// `MessageUtil.toVersionPrefixedByteBuffer`) for the same records.
    #[test]
    fn bytes_are_kafkas() {
        assert_eq!(
            hex(&member_key(LAYOUT.member_metadata, "g", "m")),
            "000a00016700016d"
        );
        assert_eq!(
            hex(&group_metadata_value(3)),
            "000000000003000000000000000000"
        );
        assert_eq!(hex(&target_metadata_value(6)), "00000000000600");
        let member = StoredShareMember {
            rack_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            subscribed_topic_names: vec!["t".into()],
        };
        assert_eq!(hex(&member_value(&member)), "0000000263032f6802027400");
        let current = StoredShareCurrent {
            member_epoch: 2,
            previous_member_epoch: 1,
            assigned: [tp(1, 0)].into(),
        };
        assert_eq!(
            hex(&current_assignment_value(&current)),
            "0000000000020000000100020000000000000000000000000000000102000000000000"
        );
    }

    #[test]
    fn every_record_round_trips() {
        let member = StoredShareMember {
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
        };
        let current = StoredShareCurrent {
            member_epoch: 5,
            previous_member_epoch: 4,
            assigned: [tp(1, 0), tp(2, 3)].into(),
        };
        let target: Assignment = [tp(1, 0)].into();
        let values = [
            group_metadata_value(7),
            target_metadata_value(6),
            member_value(&member),
            target_member_value(&target),
            current_assignment_value(&current),
        ];
        check_round_trips(&LAYOUT, values, (member, target, current));
        // A KIP-848 key is not a share record.
        let kip848 = super::super::consumer_records::group_key(3, "g");
        assert_eq!(decode(&kip848, Some(&group_metadata_value(1))), None);
    }
}
