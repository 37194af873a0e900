//! Share-partition state records in `__share_group_state`, in Kafka 4.4's formats (the share
//! coordinator's `ShareSnapshot` and `ShareUpdate` message specs), so what was acknowledged
//! survives a restart.
//!
//! Keys are non-flexible: `type int16 | group_id string | topic_id uuid | partition int32`, with
//! type 0 for ShareSnapshot and 1 for ShareUpdate, the string as int16 length + UTF-8.
//!
//! Values are version 0 and flexible (`version int16` first):
//! - ShareSnapshot: `snapshot_epoch int32 | state_epoch int32 | leader_epoch int32 |
//!   start_offset int64 | create_timestamp int64 | write_timestamp int64 | state_batches
//!   [first_offset int64 | last_offset int64 | delivery_state int8 | delivery_count int16]`, the
//!   whole state of the share-partition;
//! - ShareUpdate: `snapshot_epoch int32 | leader_epoch int32 | start_offset int64 |
//!   state_batches [...]`, the ranges that changed since the snapshot it follows.
//!
//! Arrays are compact (unsigned varint count + 1), each struct ends with a tagged-field section;
//! both values may carry tag 0, `delivery_complete_count int32` (records in a terminal state, -1
//! when not counted), which gregor reads and writes as absent (-1). A null value is a tombstone.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::partition::{RecordState, StateBatch};
use crate::group::consumer_records::{finish, put_str, put_uvarint, value_header, Reader};

pub const SHARE_SNAPSHOT_KEY: i16 = 0;
pub const SHARE_UPDATE_KEY: i16 = 1;

/// The share-partition a record is about: (group id, topic id, partition).
pub type SharePartitionKey = (String, Uuid, i32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSnapshot {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub create_timestamp: i64,
    pub write_timestamp: i64,
    pub state_batches: Vec<StateBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUpdate {
    pub snapshot_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub state_batches: Vec<StateBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareStateRecord {
    /// `None`: the share-partition's state was deleted.
    Snapshot(Option<ShareSnapshot>),
    Update(Option<ShareUpdate>),
}

pub fn key(record_type: i16, (group_id, topic_id, partition): &SharePartitionKey) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(record_type);
    put_str(&mut b, group_id);
    b.put_slice(topic_id.as_bytes());
    b.put_i32(*partition);
    b.freeze()
}

fn put_batches(b: &mut BytesMut, batches: &[StateBatch]) {
    put_uvarint(b, batches.len() as u64 + 1);
    for s in batches {
        b.put_i64(s.first_offset);
        b.put_i64(s.last_offset);
        b.put_i8(s.delivery_state);
        b.put_i16(s.delivery_count);
        put_uvarint(b, 0); // no tagged fields
    }
}

pub fn snapshot_value(s: &ShareSnapshot) -> Bytes {
    let mut b = value_header();
    b.put_i32(s.snapshot_epoch);
    b.put_i32(s.state_epoch);
    b.put_i32(s.leader_epoch);
    b.put_i64(s.start_offset);
    b.put_i64(s.create_timestamp);
    b.put_i64(s.write_timestamp);
    put_batches(&mut b, &s.state_batches);
    finish(b)
}

pub fn update_value(u: &ShareUpdate) -> Bytes {
    let mut b = value_header();
    b.put_i32(u.snapshot_epoch);
    b.put_i32(u.leader_epoch);
    b.put_i64(u.start_offset);
    put_batches(&mut b, &u.state_batches);
    finish(b)
}

fn read_batches(r: &mut Reader<'_>) -> Option<Vec<StateBatch>> {
    let n = r.compact_len()?.unwrap_or(0);
    // Each batch takes 20 bytes at least: a count past that is a lie, refused before allocating.
    if n > r.0.len() / 20 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(StateBatch {
            first_offset: r.i64()?,
            last_offset: r.i64()?,
            delivery_state: r.i8()?,
            delivery_count: r.i16()?,
        });
        r.skip_tagged()?;
    }
    Some(out)
}

fn decode_snapshot(v: &[u8]) -> Option<ShareSnapshot> {
    let mut r = Reader(v);
    r.value_version()?;
    let s = ShareSnapshot {
        snapshot_epoch: r.i32()?,
        state_epoch: r.i32()?,
        leader_epoch: r.i32()?,
        start_offset: r.i64()?,
        create_timestamp: r.i64()?,
        write_timestamp: r.i64()?,
        state_batches: read_batches(&mut r)?,
    };
    r.skip_tagged()?;
    r.is_empty().then_some(s)
}

fn decode_update(v: &[u8]) -> Option<ShareUpdate> {
    let mut r = Reader(v);
    r.value_version()?;
    let u = ShareUpdate {
        snapshot_epoch: r.i32()?,
        leader_epoch: r.i32()?,
        start_offset: r.i64()?,
        state_batches: read_batches(&mut r)?,
    };
    r.skip_tagged()?;
    r.is_empty().then_some(u)
}

/// A record of `__share_group_state`; None for what is not one (or is damaged).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(SharePartitionKey, ShareStateRecord)> {
    let mut r = Reader(key);
    let record_type = r.i16()?;
    let k = (r.string()?, r.uuid()?, r.i32()?);
    if !r.is_empty() {
        return None;
    }
    let rec = match record_type {
        SHARE_SNAPSHOT_KEY => ShareStateRecord::Snapshot(match value {
            None => None,
            Some(v) => Some(decode_snapshot(v)?),
        }),
        SHARE_UPDATE_KEY => ShareStateRecord::Update(match value {
            None => None,
            Some(v) => Some(decode_update(v)?),
        }),
        _ => return None,
    };
    Some((k, rec))
}

/// The persisted state of one share-partition, as replaying its records rebuilds it (Kafka's
/// `ShareGroupOffset` in the share coordinator's shard): the last snapshot with every later
/// update laid over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupOffset {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub state_batches: Vec<StateBatch>,
}

impl ShareGroupOffset {
    pub fn from_snapshot(s: ShareSnapshot) -> ShareGroupOffset {
        ShareGroupOffset {
            snapshot_epoch: s.snapshot_epoch,
            state_epoch: s.state_epoch,
            leader_epoch: s.leader_epoch,
            start_offset: s.start_offset,
            state_batches: combine(Vec::new(), &s.state_batches, s.start_offset),
        }
    }

    /// The records at or past the start offset in a terminal state (acknowledged or archived):
    /// Kafka's `deliveryCompleteCount`, which its SharePartition keeps as it goes and writes with
    /// every state; the lag DescribeShareGroupOffsets shows is the records from the start offset
    /// to the high watermark less these.
    pub fn delivery_complete_count(&self) -> i64 {
        (self.state_batches.iter())
            .filter(|b| {
                RecordState::from_id(b.delivery_state).is_some_and(RecordState::is_terminal)
            })
            .map(|b| b.last_offset - b.first_offset.max(self.start_offset) + 1)
            .filter(|&n| n > 0)
            .sum()
    }

    /// Lays an update over the state: its start offset (-1: unchanged) and its batches win over
    /// what they overlap; batches wholly below the start offset are dropped.
    pub fn apply_update(&mut self, u: &ShareUpdate) {
        if u.start_offset >= 0 {
            self.start_offset = u.start_offset;
        }
        if u.leader_epoch >= 0 {
            self.leader_epoch = u.leader_epoch;
        }
        let current = std::mem::take(&mut self.state_batches);
        self.state_batches = combine(current, &u.state_batches, self.start_offset);
    }
}

/// `current` (sorted, disjoint) with `newer` painted over it in order, cut at `start_offset`,
/// touching equal neighbours joined (Kafka's PersisterStateBatchCombiner).
fn combine(current: Vec<StateBatch>, newer: &[StateBatch], start_offset: i64) -> Vec<StateBatch> {
    let mut out = current;
    for n in newer.iter().filter(|n| n.first_offset <= n.last_offset) {
        let mut next = Vec::with_capacity(out.len() + 2);
        for b in out {
            if b.last_offset < n.first_offset || b.first_offset > n.last_offset {
                next.push(b);
                continue;
            }
            if b.first_offset < n.first_offset {
                next.push(StateBatch {
                    last_offset: n.first_offset - 1,
                    ..b
                });
            }
            if b.last_offset > n.last_offset {
                next.push(StateBatch {
                    first_offset: n.last_offset + 1,
                    ..b
                });
            }
        }
        next.push(*n);
        next.sort_by_key(|b| b.first_offset);
        out = next;
    }
    let mut joined: Vec<StateBatch> = Vec::with_capacity(out.len());
    for mut b in out.into_iter().filter(|b| b.last_offset >= start_offset) {
        b.first_offset = b.first_offset.max(start_offset);
        match joined.last_mut() {
            Some(p)
                if p.last_offset + 1 == b.first_offset
                    && (p.delivery_state, p.delivery_count)
                        == (b.delivery_state, b.delivery_count) =>
            {
                p.last_offset = b.last_offset;
            }
            _ => joined.push(b),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp_key() -> SharePartitionKey {
        ("g".into(), Uuid::from_u128(0x0102), 3)
    }

    fn batch(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
        StateBatch {
            first_offset: first,
            last_offset: last,
            delivery_state: state,
            delivery_count: count,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn delivery_complete_count_counts_terminal_records_from_the_start_offset() {
        // 5-7 acknowledged, 8 acquired, 9-12 archived, 13 available; the start is 6.
        let state = ShareGroupOffset {
            snapshot_epoch: 0,
            state_epoch: 0,
            leader_epoch: 0,
            start_offset: 6,
            state_batches: vec![
                batch(5, 7, 2, 1),
                batch(8, 8, 1, 1),
                batch(9, 12, 4, 5),
                batch(13, 13, 0, 1),
            ],
        };
        assert_eq!(state.delivery_complete_count(), 2 + 4);
        let none = ShareGroupOffset {
            state_batches: Vec::new(),
            ..state
        };
        assert_eq!(none.delivery_complete_count(), 0);
    }

    /// The bytes Kafka 4.4's own classes write for the same records
    /// (`MessageUtil.toVersionPrefixedByteBuffer` of ShareUpdateKey and ShareUpdateValue, from
    /// kafka-share-coordinator-4.4.0.jar).
    #[test]
    fn bytes_are_kafkas() {
        let k = key(SHARE_UPDATE_KEY, &sp_key());
        assert_eq!(
            hex(&k),
            "00010001670000000000000000000000000000010200000003"
        );
        let v = update_value(&ShareUpdate {
            snapshot_epoch: 2,
            leader_epoch: 5,
            start_offset: 7,
            state_batches: vec![batch(7, 9, 2, 1)],
        });
        assert_eq!(
            hex(&v),
            "00000000000200000005000000000000000702000000000000000700000000000000090200010000"
        );
    }

    #[test]
    fn records_round_trip() {
        let snap = ShareSnapshot {
            snapshot_epoch: 1,
            state_epoch: 0,
            leader_epoch: -1,
            start_offset: 100,
            create_timestamp: 1_700_000_000_000,
            write_timestamp: 1_700_000_000_500,
            state_batches: vec![batch(100, 104, 0, 1), batch(105, 105, 4, 5)],
        };
        let k = key(SHARE_SNAPSHOT_KEY, &sp_key());
        let v = snapshot_value(&snap);
        // Kafka 4.4's ShareSnapshotValue of the same fields.
        assert_eq!(
            hex(&v),
            "00000000000100000000ffffffff00000000000000640000018bcfe568000000018bcfe569f403000000\
             0000000064000000000000006800000100000000000000006900000000000000690400050000"
        );
        assert_eq!(
            decode(&k, Some(&v)),
            Some((sp_key(), ShareStateRecord::Snapshot(Some(snap))))
        );
        assert_eq!(
            decode(&k, None),
            Some((sp_key(), ShareStateRecord::Snapshot(None)))
        );
        let upd = ShareUpdate {
            snapshot_epoch: 1,
            leader_epoch: -1,
            start_offset: 101,
            state_batches: vec![],
        };
        let k = key(SHARE_UPDATE_KEY, &sp_key());
        assert_eq!(
            decode(&k, Some(&update_value(&upd))),
            Some((sp_key(), ShareStateRecord::Update(Some(upd))))
        );
    }

    #[test]
    fn updates_lay_over_the_snapshot() {
        let mut state = ShareGroupOffset::from_snapshot(ShareSnapshot {
            snapshot_epoch: 1,
            state_epoch: 0,
            leader_epoch: 0,
            start_offset: 0,
            create_timestamp: 0,
            write_timestamp: 0,
            state_batches: vec![batch(0, 9, 1, 1)],
        });
        // 3-4 accepted, 6 released: the acquired run splits around them.
        state.apply_update(&ShareUpdate {
            snapshot_epoch: 1,
            leader_epoch: -1,
            start_offset: -1,
            state_batches: vec![batch(3, 4, 2, 1), batch(6, 6, 0, 1)],
        });
        assert_eq!(
            state.state_batches,
            vec![
                batch(0, 2, 1, 1),
                batch(3, 4, 2, 1),
                batch(5, 5, 1, 1),
                batch(6, 6, 0, 1),
                batch(7, 9, 1, 1)
            ]
        );
        // 0-2 accepted and the start offset moves: what is below it goes, equal neighbours join.
        state.apply_update(&ShareUpdate {
            snapshot_epoch: 1,
            leader_epoch: -1,
            start_offset: 5,
            state_batches: vec![batch(0, 2, 2, 1), batch(5, 5, 0, 1)],
        });
        assert_eq!(state.start_offset, 5);
        assert_eq!(
            state.state_batches,
            vec![batch(5, 6, 0, 1), batch(7, 9, 1, 1)]
        );
    }

    #[test]
    fn damaged_records_decode_to_nothing() {
        let k = key(SHARE_SNAPSHOT_KEY, &sp_key());
        let v = snapshot_value(&ShareSnapshot {
            snapshot_epoch: 0,
            state_epoch: 0,
            leader_epoch: 0,
            start_offset: 0,
            create_timestamp: 0,
            write_timestamp: 0,
            state_batches: vec![batch(0, 1, 2, 1)],
        });
        for cut in 0..v.len() {
            assert_eq!(decode(&k, Some(&v[..cut])), None, "cut at {cut}");
        }
        assert_eq!(decode(&k[..k.len() - 1], Some(&v)), None);
        let mut other = k.to_vec();
        other[1] = 9; // an unknown record type
        assert_eq!(decode(&other, Some(&v)), None);
        // A batch count far past the bytes left is refused, not allocated.
        let mut lie = v[..2 + 4 * 3 + 8 * 3].to_vec();
        lie.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(decode(&k, Some(&lie)), None);
    }
}
