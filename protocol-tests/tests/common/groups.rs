//! Classic consumer-group helpers: version-aware request builders for JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups and
//! OffsetDelete, and one-line operations on top of them.
//!
//! A JoinGroup or SyncGroup that must wait for the rest of the group blocks its connection, so
//! every member uses a connection of its own; `send_join` / `read_join` split a request so that
//! one member can wait while another acts.

use anyhow::{ensure, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

use super::*;

// Error codes of the group APIs.
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;

/// Versions used where a test is not about versions.
pub const JOIN_V: i16 = 9;
pub const SYNC_V: i16 = 5;
pub const HEARTBEAT_V: i16 = 4;
pub const LEAVE_V: i16 = 5;
pub const COMMIT_V: i16 = 9;
pub const OFFSET_FETCH_V: i16 = 9;
pub const DESCRIBE_GROUPS_V: i16 = 6;
pub const LIST_GROUPS_V: i16 = 5;
pub const DELETE_GROUPS_V: i16 = 2;
pub const OFFSET_DELETE_V: i16 = 0;

pub const CONSUMER: &str = "consumer";
pub const SESSION_MS: i32 = 10_000;

/// A broker whose groups rebalance without the initial delay.
pub async fn group_broker() -> Result<TestBroker> {
    start_broker_with(|c| c.group.initial_rebalance_delay_ms = 0).await
}

/// `group_broker` with topic `topic` of `partitions` partitions and a connected client.
pub async fn group_broker_with_topic(topic: &str, partitions: i32) -> Result<(TestBroker, Client)> {
    let b = group_broker().await?;
    let mut c = b.client().await?;
    create_topic(&mut c, topic, partitions).await?;
    Ok((b, c))
}

/// ConsumerProtocolSubscription metadata as Kafka clients send it: a 2-byte version, then the
/// struct at that version.
pub fn subscription(topics: &[&str]) -> Bytes {
    let version = 3i16;
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .with_user_data(Some(Bytes::from_static(b"ud")));
    let mut out = BytesMut::new();
    out.put_i16(version);
    sub.encode(&mut out, version).expect("encode subscription");
    out.freeze()
}

/// What a member sends in JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub group: String,
    pub member_id: String,
    pub instance: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_ms: i32,
    pub rebalance_ms: i32,
}

impl JoinSpec {
    /// A consumer of `topics` with the "range" assignor.
    pub fn consumer(group: &str, topics: &[&str]) -> JoinSpec {
        JoinSpec {
            group: group.to_string(),
            member_id: String::new(),
            instance: None,
            protocol_type: CONSUMER.to_string(),
            protocols: vec![("range".to_string(), subscription(topics))],
            session_ms: SESSION_MS,
            rebalance_ms: 20_000,
        }
    }

    pub fn member(mut self, id: &str) -> JoinSpec {
        self.member_id = id.to_string();
        self
    }

    pub fn instance(mut self, id: &str) -> JoinSpec {
        self.instance = Some(id.to_string());
        self
    }

    pub fn metadata(&self) -> Bytes {
        self.protocols[0].1.clone()
    }
}

pub fn join_request(v: i16, j: &JoinSpec) -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(&j.group)))
        .with_session_timeout_ms(j.session_ms)
        .with_member_id(s(&j.member_id))
        .with_protocol_type(s(&j.protocol_type))
        .with_protocols(
            j.protocols
                .iter()
                .map(|(n, m)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(n))
                        .with_metadata(m.clone())
                })
                .collect(),
        );
    if v >= 1 {
        req.rebalance_timeout_ms = j.rebalance_ms;
    }
    if v >= 5 {
        req.group_instance_id = j.instance.as_deref().map(s);
    }
    if v >= 8 {
        req.reason = Some(s("test"));
    }
    req
}

pub async fn join(c: &mut Client, v: i16, j: &JoinSpec) -> Result<JoinGroupResponse> {
    c.request(v, join_request(v, j)).await
}

pub async fn send_join(c: &mut Client, v: i16, j: &JoinSpec) -> Result<i32> {
    c.send_request(v, &join_request(v, j)).await
}

pub async fn read_join(c: &mut Client, v: i16, id: i32) -> Result<JoinGroupResponse> {
    c.read_response::<JoinGroupRequest>(v, id).await
}

/// The member id a new member joins with: from v4 a dynamic member first learns it through
/// MEMBER_ID_REQUIRED; below v4 (and for static members) it joins with an empty one.
pub async fn member_id_for(c: &mut Client, v: i16, j: &JoinSpec) -> Result<String> {
    if v < 4 || (v >= 5 && j.instance.is_some()) {
        return Ok(j.member_id.clone());
    }
    let r = join(c, v, j).await?;
    ensure!(
        r.error_code == MEMBER_ID_REQUIRED && !r.member_id.is_empty() && r.generation_id == -1,
        "v{v}: first join of a new member: {r:?}"
    );
    Ok(r.member_id.to_string())
}

/// Joins a new member whose join completes the join phase (e.g. the first member); returns the
/// response.
pub async fn join_new(c: &mut Client, v: i16, j: &JoinSpec) -> Result<JoinGroupResponse> {
    let id = member_id_for(c, v, j).await?;
    let r = join(c, v, &j.clone().member(&id)).await?;
    ensure!(r.error_code == NONE, "v{v}: join {j:?}: {r:?}");
    if !id.is_empty() {
        ensure!(r.member_id.as_str() == id, "v{v}: member id changed: {r:?}");
    }
    Ok(r)
}

pub fn sync_request(
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    if v >= 3 {
        req.group_instance_id = instance.map(s);
    }
    if v >= 5 {
        req.protocol_type = Some(s(CONSUMER));
        req.protocol_name = Some(s("range"));
    }
    req
}

pub async fn sync(
    c: &mut Client,
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    assignments: &[(&str, &[u8])],
) -> Result<SyncGroupResponse> {
    c.request(
        v,
        sync_request(v, group, member, generation, instance, assignments),
    )
    .await
}

pub fn heartbeat_request(
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
) -> HeartbeatRequest {
    let mut req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    if v >= 3 {
        req.group_instance_id = instance.map(s);
    }
    req
}

pub async fn heartbeat(
    c: &mut Client,
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
) -> Result<i16> {
    Ok(
        c.request(v, heartbeat_request(v, group, member, generation, instance))
            .await?
            .error_code,
    )
}

/// LeaveGroup: below v3 only the first member is sent (as `member_id`).
pub fn leave_request(v: i16, group: &str, members: &[(&str, Option<&str>)]) -> LeaveGroupRequest {
    let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s(group)));
    if v >= 3 {
        req.members = members
            .iter()
            .map(|(m, i)| {
                let mut id = MemberIdentity::default()
                    .with_member_id(s(m))
                    .with_group_instance_id(i.map(s));
                if v >= 5 {
                    id.reason = Some(s("bye"));
                }
                id
            })
            .collect();
    } else {
        req.member_id = s(members[0].0);
    }
    req
}

pub async fn leave(
    c: &mut Client,
    v: i16,
    group: &str,
    members: &[(&str, Option<&str>)],
) -> Result<LeaveGroupResponse> {
    c.request(v, leave_request(v, group, members)).await
}

/// (topic, partition, offset, metadata)
pub type Commit<'a> = (&'a str, i32, i64, &'a str);

pub fn commit_request(
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    commits: &[Commit<'_>],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o, m) in commits {
        let mut part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(s(m)));
        if v >= 6 {
            part.committed_leader_epoch = 0;
        }
        match topics.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(name(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let mut req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics);
    if v >= 7 {
        req.group_instance_id = instance.map(s);
    }
    req
}

/// Every (topic, partition, error code) of an OffsetCommit response, in order.
pub fn commit_codes(r: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

pub async fn commit(
    c: &mut Client,
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    commits: &[Commit<'_>],
) -> Result<Vec<(String, i32, i16)>> {
    let r = c
        .request(
            v,
            commit_request(v, group, member, generation, instance, commits),
        )
        .await?;
    Ok(commit_codes(&r))
}

/// Commits and asserts that every partition was accepted.
pub async fn commit_ok(
    c: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    commits: &[Commit<'_>],
) -> Result<()> {
    let codes = commit(c, COMMIT_V, group, member, generation, None, commits).await?;
    ensure!(
        codes.len() == commits.len() && codes.iter().all(|x| x.2 == NONE),
        "commit: {codes:?}"
    );
    Ok(())
}

/// A committed offset as OffsetFetch reports it, whatever the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error_code: i16,
}

/// OffsetFetch of one group; `topics` `None` asks for all (v2+). Returns (group-level error,
/// partitions).
pub async fn fetch_offsets(
    c: &mut Client,
    v: i16,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Result<(i16, Vec<OffsetEntry>)> {
    if v >= 8 {
        let mut g = OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(name(t))
                            .with_partition_indexes(ps.to_vec())
                    })
                    .collect()
            }));
        if v >= 9 {
            g.member_id = None;
            g.member_epoch = -1;
        }
        let r = c
            .request(
                v,
                OffsetFetchRequest::default()
                    .with_groups(vec![g])
                    .with_require_stable(true),
            )
            .await?;
        ensure!(
            r.groups.len() == 1 && r.groups[0].group_id.as_str() == group,
            "v{v}: {r:?}"
        );
        let g = &r.groups[0];
        let parts = g
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OffsetEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.metadata.as_ref().map(|m| m.to_string()),
                    error_code: p.error_code,
                })
            })
            .collect();
        return Ok((g.error_code, parts));
    }
    let mut req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    if v >= 7 {
        req.require_stable = true;
    }
    let r = c.request(v, req).await?;
    let parts = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| OffsetEntry {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.metadata.as_ref().map(|m| m.to_string()),
                error_code: p.error_code,
            })
        })
        .collect();
    Ok((r.error_code, parts))
}

/// The committed offset of one partition (-1 when none), at the default version.
pub async fn committed(c: &mut Client, group: &str, topic: &str, partition: i32) -> Result<i64> {
    let (code, parts) =
        fetch_offsets(c, OFFSET_FETCH_V, group, Some(&[(topic, &[partition])])).await?;
    ensure!(
        code == NONE && parts.len() == 1 && parts[0].error_code == NONE,
        "fetch offsets: {parts:?}"
    );
    Ok(parts[0].offset)
}

pub async fn describe_group_at(c: &mut Client, v: i16, group: &str) -> Result<DescribedGroup> {
    let mut req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    if v >= 3 {
        req.include_authorized_operations = true;
    }
    let r = c.request(v, req).await?;
    ensure!(
        r.groups.len() == 1 && r.groups[0].group_id.as_str() == group,
        "v{v}: {r:?}"
    );
    Ok(r.groups[0].clone())
}

pub async fn describe_group(c: &mut Client, group: &str) -> Result<DescribedGroup> {
    describe_group_at(c, DESCRIBE_GROUPS_V, group).await
}

pub async fn list_groups(
    c: &mut Client,
    v: i16,
    states: &[&str],
    types: &[&str],
) -> Result<Vec<ListedGroup>> {
    let mut req = ListGroupsRequest::default();
    if v >= 4 {
        req.states_filter = states.iter().map(|x| s(x)).collect();
    }
    if v >= 5 {
        req.types_filter = types.iter().map(|x| s(x)).collect();
    }
    let r = c.request(v, req).await?;
    ensure!(r.error_code == NONE, "v{v}: {r:?}");
    Ok(r.groups)
}

/// DeleteGroups of one group: its error code.
pub async fn delete_group(c: &mut Client, v: i16, group: &str) -> Result<i16> {
    let r = c
        .request(
            v,
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
        )
        .await?;
    ensure!(
        r.results.len() == 1 && r.results[0].group_id.as_str() == group,
        "v{v}: {r:?}"
    );
    Ok(r.results[0].error_code)
}

/// OffsetDelete: (group-level error, [(topic, partition, error)]).
pub async fn delete_offsets(
    c: &mut Client,
    v: i16,
    group: &str,
    parts: &[(&str, i32)],
) -> Result<(i16, Vec<(String, i32, i16)>)> {
    let mut topics: Vec<OffsetDeleteRequestTopic> = Vec::new();
    for (t, p) in parts {
        let part = OffsetDeleteRequestPartition::default().with_partition_index(*p);
        match topics.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetDeleteRequestTopic::default()
                    .with_name(name(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let r = c
        .request(
            v,
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(topics),
        )
        .await?;
    let codes = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    Ok((r.error_code, codes))
}

/// One member in a stable group: joined (at JOIN_V) and synced with `assignment`.
#[derive(Debug, Clone)]
pub struct Joined {
    pub member_id: String,
    pub generation: i32,
}

/// Makes a one-member group Stable: join, then sync with `assignment`.
pub async fn stable_member(c: &mut Client, spec: &JoinSpec, assignment: &[u8]) -> Result<Joined> {
    let j = join_new(c, JOIN_V, spec).await?;
    ensure!(j.leader == j.member_id, "sole member must lead: {j:?}");
    let id = j.member_id.to_string();
    let r = sync(
        c,
        SYNC_V,
        &spec.group,
        &id,
        j.generation_id,
        spec.instance.as_deref(),
        &[(&id, assignment)],
    )
    .await?;
    ensure!(
        r.error_code == NONE && r.assignment.as_ref() == assignment,
        "sync: {r:?}"
    );
    Ok(Joined {
        member_id: id,
        generation: j.generation_id,
    })
}
