//! Streams-group records (KIP-1071) in `__consumer_offsets`, in Kafka 4.4's formats (the
//! `StreamsGroup*Key/Value` specs of its group coordinator), so that a streams group's topology,
//! members, epochs and task assignments survive a broker restart.
//!
//! Keys are non-flexible, as the other group records' (`consumer_records`): `version int16 |
//! group_id string [| member_id string]`, the version telling the record type:
//! - 17 group metadata (`StreamsGroupMetadataValue`: group epoch, metadata hash);
//! - 19 member metadata (`StreamsGroupMemberMetadataValue`: client, process, endpoint, tags);
//! - 20 target assignment metadata (`StreamsGroupTargetAssignmentMetadataValue`: its epoch);
//! - 21 target assignment of a member (`StreamsGroupTargetAssignmentMemberValue`: tasks);
//! - 22 current assignment of a member (`StreamsGroupCurrentMemberAssignmentValue`: epochs,
//!   state, tasks and tasks pending revocation);
//! - 23 topology (`StreamsGroupTopologyValue`: the subtopologies as the first member sent them).
//!
//! Values are `version int16 (0) | body`, the body flexible (compact strings and arrays, a
//! tagged-field section per struct); a null value is a tombstone. The value codecs are generated
//! from Kafka's specs (`vendor/kafka-protocol/extra/gen.py`); tagged fields gregor does not write
//! (Kafka's validated/stored topology epochs, assignment timestamps and per-task epochs) are
//! kept as unknown ones when read.

pub mod values;

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::consumer_records::{group_key, member_key, Reader};
pub use values::StreamsGroupCurrentMemberAssignmentValue as CurrentValue;
pub use values::StreamsGroupMemberMetadataValue as MemberValue;
pub use values::StreamsGroupMetadataValue as MetadataValue;
pub use values::StreamsGroupTopologyValue as TopologyValue;

pub const GROUP_METADATA_KEY: i16 = 17;
pub const MEMBER_METADATA_KEY: i16 = 19;
pub const TARGET_METADATA_KEY: i16 = 20;
pub const TARGET_MEMBER_KEY: i16 = 21;
pub const CURRENT_ASSIGNMENT_KEY: i16 = 22;
pub const TOPOLOGY_KEY: i16 = 23;

/// Tasks by subtopology id: the partitions (task numbers) of each.
pub type Tasks = BTreeMap<String, BTreeSet<i32>>;

/// Encodes a value: version 0, then the body.
pub fn value<T: Encodable>(body: &T) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    if let Err(e) = body.encode(&mut b, 0) {
        // Only a field set beyond version 0 fails, which gregor never does.
        tracing::error!(error = %e, "streams group record not encodable");
    }
    b.freeze()
}

fn decode_value<T: Decodable>(v: &[u8]) -> Option<T> {
    let (version, body) = v.split_at_checked(2)?;
    if version != [0, 0] {
        return None;
    }
    let mut buf = Bytes::copy_from_slice(body);
    let decoded = T::decode(&mut buf, 0).ok()?;
    buf.is_empty().then_some(decoded)
}

pub fn metadata_key(group: &str) -> Bytes {
    group_key(GROUP_METADATA_KEY, group)
}
pub fn topology_key(group: &str) -> Bytes {
    group_key(TOPOLOGY_KEY, group)
}
pub fn target_metadata_key(group: &str) -> Bytes {
    group_key(TARGET_METADATA_KEY, group)
}
pub fn member_metadata_key(group: &str, member: &str) -> Bytes {
    member_key(MEMBER_METADATA_KEY, group, member)
}
pub fn target_member_key(group: &str, member: &str) -> Bytes {
    member_key(TARGET_MEMBER_KEY, group, member)
}
pub fn current_assignment_key(group: &str, member: &str) -> Bytes {
    member_key(CURRENT_ASSIGNMENT_KEY, group, member)
}

pub fn target_metadata_value(epoch: i32) -> Bytes {
    use values::StreamsGroupTargetAssignmentMetadataValue as V;
    value(&V {
        assignment_epoch: epoch,
        ..V::default()
    })
}

/// Tasks as the records list them: subtopologies in id order, partitions ascending.
pub fn task_ids<T: Default>(tasks: &Tasks, make: impl Fn(StrBytes, Vec<i32>) -> T) -> Vec<T> {
    tasks
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(s, p)| {
            make(
                StrBytes::from_string(s.clone()),
                p.iter().copied().collect(),
            )
        })
        .collect()
}

/// Tasks from their listing (`task_ids`' reverse).
pub fn tasks_of<'a>(list: impl IntoIterator<Item = (&'a StrBytes, &'a [i32])>) -> Tasks {
    let mut tasks = Tasks::new();
    for (s, p) in list {
        tasks
            .entry(s.to_string())
            .or_default()
            .extend(p.iter().copied());
    }
    tasks.retain(|_, p| !p.is_empty());
    tasks
}

pub fn target_member_value(tasks: &Tasks) -> Bytes {
    use values::{StreamsGroupTargetAssignmentMemberValue, TaskIds};
    value(&StreamsGroupTargetAssignmentMemberValue {
        active_tasks: task_ids(tasks, |s, p| {
            TaskIds::default().with_subtopology_id(s).with_partitions(p)
        }),
        ..StreamsGroupTargetAssignmentMemberValue::default()
    })
}

fn target_member_tasks(v: &[u8]) -> Option<Tasks> {
    use values::StreamsGroupTargetAssignmentMemberValue;
    let v: StreamsGroupTargetAssignmentMemberValue = decode_value(v)?;
    Some(tasks_of(
        v.active_tasks
            .iter()
            .map(|t| (&t.subtopology_id, t.partitions.as_slice())),
    ))
}

/// A streams group rebuilt from its records (what replay accumulates).
#[derive(Debug, Clone, Default)]
pub struct StoredStreamsGroup {
    pub metadata: Option<MetadataValue>,
    pub topology: Option<TopologyValue>,
    pub target_epoch: i32,
    pub members: BTreeMap<String, MemberValue>,
    pub targets: BTreeMap<String, Tasks>,
    pub current: BTreeMap<String, CurrentValue>,
}

/// One streams-group record, decoded: (group, record type, member, value or tombstone).
pub struct StreamsRecord<'a> {
    pub group: String,
    pub kind: i16,
    pub member: Option<String>,
    pub value: Option<&'a [u8]>,
}

/// Decodes a key if it is a streams-group record's; `None` for other records.
pub fn decode_key<'a>(key: &[u8], value: Option<&'a [u8]>) -> Option<StreamsRecord<'a>> {
    let mut r = Reader(key);
    let kind = r.i16()?;
    let with_member = match kind {
        GROUP_METADATA_KEY | TARGET_METADATA_KEY | TOPOLOGY_KEY => false,
        MEMBER_METADATA_KEY | TARGET_MEMBER_KEY | CURRENT_ASSIGNMENT_KEY => true,
        _ => return None,
    };
    let group = r.string()?;
    let member = if with_member { Some(r.string()?) } else { None };
    r.is_empty().then_some(StreamsRecord {
        group,
        kind,
        member,
        value,
    })
}

impl StoredStreamsGroup {
    /// Applies one record; false when the group itself was deleted (its metadata tombstoned) or
    /// the value does not decode.
    pub fn apply(&mut self, rec: &StreamsRecord<'_>) -> bool {
        fn put<V>(map: &mut BTreeMap<String, V>, member: &Option<String>, v: Option<V>) {
            let Some(id) = member else { return };
            match v {
                Some(v) => map.insert(id.clone(), v),
                None => map.remove(id),
            };
        }
        let Some(v) = rec.value else {
            match rec.kind {
                GROUP_METADATA_KEY => return false,
                TOPOLOGY_KEY => self.topology = None,
                MEMBER_METADATA_KEY => put::<MemberValue>(&mut self.members, &rec.member, None),
                TARGET_MEMBER_KEY => put::<Tasks>(&mut self.targets, &rec.member, None),
                CURRENT_ASSIGNMENT_KEY => put::<CurrentValue>(&mut self.current, &rec.member, None),
                _ => {}
            }
            return true;
        };
        match rec.kind {
            GROUP_METADATA_KEY => match decode_value(v) {
                Some(m) => self.metadata = Some(m),
                None => return false,
            },
            TOPOLOGY_KEY => self.topology = decode_value(v),
            TARGET_METADATA_KEY => {
                let t: Option<values::StreamsGroupTargetAssignmentMetadataValue> = decode_value(v);
                self.target_epoch = t.map_or(0, |t| t.assignment_epoch);
            }
            MEMBER_METADATA_KEY => put(&mut self.members, &rec.member, decode_value(v)),
            TARGET_MEMBER_KEY => put(&mut self.targets, &rec.member, target_member_tasks(v)),
            CURRENT_ASSIGNMENT_KEY => put(&mut self.current, &rec.member, decode_value(v)),
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let tasks: Tasks = BTreeMap::from([
            ("0".to_string(), BTreeSet::from([0, 2])),
            ("1".to_string(), BTreeSet::from([1])),
        ]);
        let k = target_member_key("g", "m");
        let v = target_member_value(&tasks);
        let rec = decode_key(&k, Some(&v)).unwrap();
        assert_eq!((rec.group.as_str(), rec.kind), ("g", TARGET_MEMBER_KEY));
        assert_eq!(rec.member.as_deref(), Some("m"));
        let mut g = StoredStreamsGroup::default();
        assert!(g.apply(&rec));
        assert_eq!(g.targets["m"], tasks);
        // Consumer-group and offset keys are not streams records.
        assert!(decode_key(&group_key(3, "g"), None).is_none());
        // A value of another version, or with bytes to spare, does not decode.
        let mut bad = v.to_vec();
        bad.push(0);
        assert!(target_member_tasks(&bad).is_none());
        // The group's metadata tombstone deletes it.
        let tomb = decode_key(&metadata_key("g"), None).unwrap();
        assert!(!g.apply(&tomb));
    }
}
