//! ACLs and authorization: CreateAcls / DescribeAcls / DeleteAcls, and what each API refuses
//! without the ACL it needs (Kafka's StandardAuthorizer and KafkaApis).
//!
//! Calibration: `authorization_matrix` runs against Apache Kafka 4.4 too
//! (`KAFKA_REFERENCE_LIBS=/work/kafka44/libs protocol-tests/calibrate-acls.sh`: a single-node
//! Kafka with the same listener, users and authorizer, the matrix pointed at it with
//! ACLS_EXTERNAL_SASL_PLAINTEXT), and passes there. What that run changed: requests carry what
//! Kafka needs to reach its authorization check (CreatePartitions and DeleteTopics a timeout,
//! SyncGroup v5 its protocol type and name, AddPartitionsToTxn v4 a transaction,
//! DescribeUserScramCredentials an empty user list rather than null, on which Kafka 4.4 throws);
//! the matrix waits where Kafka is eventually consistent (a created topic's leader, an ACL seen
//! by the broker, the coordinators' internal topics); and gregor now refuses a SyncGroup v5
//! without its protocol before authorizing it, and answers DeleteTopics of a topic one may
//! describe but not delete, or that does not exist, as ControllerApis does.

mod common;

use anyhow::{ensure, Result};
use common::*;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#;
const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

// Kafka's codes: ResourceType, PatternType, AclOperation, AclPermissionType.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TRANSACTIONAL_ID: i8 = 5;
const ANY: i8 = 1;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

const SECURITY_DISABLED: i16 = 54;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;

/// A PLAINTEXT listener (User:ANONYMOUS) and a SASL_PLAINTEXT one with PLAIN users admin (a
/// super user), alice and bob; StandardAuthorizer on.
async fn secured_broker(extra: &[(&str, &str)]) -> Result<TestBroker> {
    let mut props = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "User:admin"),
    ];
    props.extend_from_slice(extra);
    TestBroker::start_with_properties(&props).await
}

/// Where a test logs in: gregor in this process, or the Kafka a calibration run names.
trait SaslListener {
    fn sasl_plaintext(&self) -> Result<std::net::SocketAddr>;
}

impl SaslListener for TestBroker {
    fn sasl_plaintext(&self) -> Result<std::net::SocketAddr> {
        self.listener_addr("SASL_PLAINTEXT")
    }
}

/// The broker of the authorization matrix. `ACLS_EXTERNAL_SASL_PLAINTEXT=host:port` points it
/// at a running broker instead of an in-process gregor: `protocol-tests/calibrate-acls.sh`
/// starts Apache Kafka 4.4 with the settings of `secured_broker` (plus User:ANONYMOUS as a
/// super user, which Kafka's own broker-to-controller requests need) and runs the matrix there,
/// so every expected code below is Kafka's.
enum MatrixBroker {
    Gregor(Box<TestBroker>),
    External(std::net::SocketAddr),
}

impl MatrixBroker {
    async fn start() -> Result<MatrixBroker> {
        match std::env::var("ACLS_EXTERNAL_SASL_PLAINTEXT") {
            Ok(addr) => Ok(MatrixBroker::External(addr.parse()?)),
            Err(_) => Ok(MatrixBroker::Gregor(Box::new(secured_broker(&[]).await?))),
        }
    }
}

impl SaslListener for MatrixBroker {
    fn sasl_plaintext(&self) -> Result<std::net::SocketAddr> {
        match self {
            MatrixBroker::Gregor(b) => b.sasl_plaintext(),
            MatrixBroker::External(addr) => Ok(*addr),
        }
    }
}

/// A connection authenticated as `user` (password `<user>-secret`).
async fn login(b: &impl SaslListener, user: &str) -> Result<Client> {
    let mut c = Client::connect(b.sasl_plaintext()?).await?;
    let r = plain_login(&mut c, user, &format!("{user}-secret")).await?;
    ensure!(r.error_code == NONE, "{user}: {r:?}");
    Ok(c)
}

fn acl(rt: i8, name: &str, pattern: i8, principal: &str, op: i8, permission: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(permission)
}

fn allow(rt: i8, name: &str, principal: &str, op: i8) -> AclCreation {
    acl(rt, name, LITERAL, principal, op, ALLOW)
}

/// CreateAcls (v3); each creation's error code.
async fn create_acls(c: &mut Client, acls: Vec<AclCreation>) -> Result<Vec<i16>> {
    let r = c
        .request(3, CreateAclsRequest::default().with_creations(acls))
        .await?;
    Ok(r.results.iter().map(|r| r.error_code).collect())
}

/// Creates ACLs that must all succeed, and waits until the broker describes each of them
/// (Kafka applies them when its metadata image catches up with the controller, a little after
/// CreateAcls answered; DescribeAcls reads the authorizer that decides).
async fn grant(c: &mut Client, acls: Vec<AclCreation>) -> Result<()> {
    let n = acls.len();
    let codes = create_acls(c, acls.clone()).await?;
    ensure!(codes == vec![NONE; n], "CreateAcls: {codes:?}");
    for a in &acls {
        let filter = filter_all()
            .with_resource_type_filter(a.resource_type)
            .with_resource_name_filter(Some(a.resource_name.clone()))
            .with_pattern_type_filter(a.resource_pattern_type)
            .with_principal_filter(Some(a.principal.clone()))
            .with_operation(a.operation)
            .with_permission_type(a.permission_type);
        await_acls(c, filter, |n| n > 0).await?;
    }
    Ok(())
}

/// Polls DescribeAcls with `filter` until the number of matching ACLs satisfies `done`.
async fn await_acls(
    c: &mut Client,
    filter: DescribeAclsRequest,
    done: impl Fn(usize) -> bool,
) -> Result<()> {
    for _ in 0..500 {
        let r = c.request(3, filter.clone()).await?;
        ensure!(r.error_code == NONE, "DescribeAcls: {r:?}");
        if done(r.resources.iter().map(|res| res.acls.len()).sum()) {
            return Ok(());
        }
        sleep_ms(10).await;
    }
    Err(anyhow::anyhow!("the ACLs never showed: {filter:?}"))
}

/// Kafka's AclBindingFilter.ANY (null name, principal and host match anything).
fn filter_all() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn delete_filter_all() -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// Every ACL, as (resource type, name, pattern type, principal, operation, permission).
async fn all_acls(c: &mut Client) -> Result<Vec<(i8, String, i8, String, i8, i8)>> {
    let r = c.request(3, filter_all()).await?;
    ensure!(r.error_code == NONE, "DescribeAcls: {r:?}");
    let mut out = Vec::new();
    for res in &r.resources {
        for a in &res.acls {
            out.push((
                res.resource_type,
                res.resource_name.to_string(),
                res.pattern_type,
                a.principal.to_string(),
                a.operation,
                a.permission_type,
            ));
        }
    }
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn without_an_authorizer_the_acl_apis_answer_security_disabled() -> Result<()> {
    let b = TestBroker::start_with_properties(&[]).await?;
    let mut c = b.client().await?;
    for v in 1..=3 {
        let r = c.request(v, filter_all()).await?;
        ensure!(r.error_code == SECURITY_DISABLED, "v{v}: {r:?}");
        let codes = create_acls_at(&mut c, v).await?;
        ensure!(codes == vec![SECURITY_DISABLED], "v{v}: {codes:?}");
        let r = c
            .request(
                v,
                DeleteAclsRequest::default().with_filters(vec![delete_filter_all()]),
            )
            .await?;
        ensure!(
            r.filter_results.len() == 1 && r.filter_results[0].error_code == SECURITY_DISABLED,
            "v{v}: {r:?}"
        );
    }
    // Everything is allowed, as before.
    create_topic(&mut c, "open", 1).await?;
    Ok(())
}

async fn create_acls_at(c: &mut Client, v: i16) -> Result<Vec<i16>> {
    let r = c
        .request(
            v,
            CreateAclsRequest::default().with_creations(vec![allow(TOPIC, "t", "User:a", READ)]),
        )
        .await?;
    Ok(r.results.iter().map(|r| r.error_code).collect())
}

#[tokio::test]
async fn acls_are_created_described_deleted_and_survive_a_restart() -> Result<()> {
    let mut b = secured_broker(&[]).await?;
    let mut admin = login(&b, "admin").await?;
    let mut alice = login(&b, "alice").await?;
    // Only CLUSTER ALTER may change ACLs, CLUSTER DESCRIBE list them.
    ensure!(
        create_acls(&mut alice, vec![allow(TOPIC, "t", "User:alice", READ)]).await?
            == vec![CLUSTER_AUTHORIZATION_FAILED]
    );
    let r = alice.request(3, filter_all()).await?;
    ensure!(r.error_code == CLUSTER_AUTHORIZATION_FAILED, "{r:?}");
    let r = alice
        .request(
            3,
            DeleteAclsRequest::default().with_filters(vec![delete_filter_all()]),
        )
        .await?;
    ensure!(
        r.filter_results[0].error_code == CLUSTER_AUTHORIZATION_FAILED,
        "{r:?}"
    );

    grant(
        &mut admin,
        vec![
            allow(TOPIC, "orders", "User:alice", READ),
            acl(TOPIC, "logs-", PREFIXED, "User:alice", WRITE, ALLOW),
            allow(GROUP, "*", "User:*", READ),
            allow(TRANSACTIONAL_ID, "tx", "User:bob", WRITE),
            acl(TOPIC, "orders", LITERAL, "User:bob", ALL, DENY),
            // The same ACL twice: one ACL.
            allow(TOPIC, "orders", "User:alice", READ),
            allow(CLUSTER, "kafka-cluster", "User:alice", DESCRIBE),
        ],
    )
    .await?;
    // Kafka's validation, ACL by ACL.
    let codes = create_acls(
        &mut admin,
        vec![
            allow(CLUSTER, "other-cluster", "User:alice", DESCRIBE),
            allow(TOPIC, "", "User:alice", READ),
            allow(ANY, "t", "User:alice", READ),
            acl(TOPIC, "t", MATCH, "User:alice", READ, ALLOW),
            allow(TOPIC, "t", "alice", READ),
            allow(TOPIC, "t", "User:alice", ANY),
            acl(TOPIC, "t", LITERAL, "User:alice", READ, ANY),
            allow(TOPIC, "fine", "User:alice", READ),
        ],
    )
    .await?;
    ensure!(
        codes == [vec![INVALID_REQUEST; 7], vec![NONE]].concat(),
        "{codes:?}"
    );
    let expected = vec![
        (
            TOPIC,
            "fine".to_string(),
            LITERAL,
            "User:alice".to_string(),
            READ,
            ALLOW,
        ),
        (
            TOPIC,
            "logs-".into(),
            PREFIXED,
            "User:alice".into(),
            WRITE,
            ALLOW,
        ),
        (
            TOPIC,
            "orders".into(),
            LITERAL,
            "User:alice".into(),
            READ,
            ALLOW,
        ),
        (
            TOPIC,
            "orders".into(),
            LITERAL,
            "User:bob".into(),
            ALL,
            DENY,
        ),
        (GROUP, "*".into(), LITERAL, "User:*".into(), READ, ALLOW),
        (
            CLUSTER,
            "kafka-cluster".into(),
            LITERAL,
            "User:alice".into(),
            DESCRIBE,
            ALLOW,
        ),
        (
            TRANSACTIONAL_ID,
            "tx".into(),
            LITERAL,
            "User:bob".into(),
            WRITE,
            ALLOW,
        ),
    ];
    let mut sorted = expected.clone();
    sorted.sort();
    let got = all_acls(&mut admin).await?;
    ensure!(got == sorted, "{got:?}");
    // alice may describe them now (CLUSTER DESCRIBE).
    ensure!(all_acls(&mut alice).await? == sorted);

    // Filters: MATCH finds every ACL that applies to a name (literal, prefixed, wildcard).
    let r = admin
        .request(
            3,
            filter_all()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("logs-app")))
                .with_pattern_type_filter(MATCH),
        )
        .await?;
    ensure!(
        r.resources.len() == 1 && r.resources[0].resource_name.as_str() == "logs-",
        "{r:?}"
    );
    let r = admin
        .request(3, filter_all().with_principal_filter(Some(s("User:bob"))))
        .await?;
    ensure!(r.resources.len() == 2, "{r:?}");

    // They are in the metadata log.
    b.restart_clean().await?;
    let mut admin = login(&b, "admin").await?;
    ensure!(all_acls(&mut admin).await? == sorted, "after restart");

    // DeleteAcls: each filter's matches; an unknown code in a filter is INVALID_REQUEST.
    let r = admin
        .request(
            3,
            DeleteAclsRequest::default().with_filters(vec![
                delete_filter_all()
                    .with_resource_type_filter(TOPIC)
                    .with_resource_name_filter(Some(s("orders")))
                    .with_pattern_type_filter(LITERAL),
                delete_filter_all().with_principal_filter(Some(s("User:bob"))),
                delete_filter_all().with_resource_type_filter(99),
            ]),
        )
        .await?;
    let counts: Vec<(i16, usize)> = r
        .filter_results
        .iter()
        .map(|f| (f.error_code, f.matching_acls.len()))
        .collect();
    ensure!(
        counts == vec![(NONE, 2), (NONE, 2), (INVALID_REQUEST, 0)],
        "{counts:?}"
    );
    let left: Vec<String> = all_acls(&mut admin)
        .await?
        .into_iter()
        .map(|a| a.1)
        .collect();
    ensure!(left == ["fine", "logs-", "*", "kafka-cluster"], "{left:?}");
    Ok(())
}

#[tokio::test]
async fn acl_requests_with_unknown_elements_close_the_connection() -> Result<()> {
    let b = secured_broker(&[]).await?;
    let mut admin = login(&b, "admin").await?;
    admin
        .send_request(3, &filter_all().with_operation(0))
        .await?;
    admin.expect_closed().await?;
    let mut admin = login(&b, "admin").await?;
    admin
        .send_request(
            3,
            &CreateAclsRequest::default().with_creations(vec![allow(0, "t", "User:a", READ)]),
        )
        .await?;
    admin.expect_closed().await?;
    assert_serves(&b).await
}

#[tokio::test]
async fn unknown_authorizers_stop_start_up() -> Result<()> {
    let r = TestBroker::start_with_properties(&[(
        "authorizer.class.name",
        "kafka.security.authorizer.AclAuthorizer",
    )])
    .await;
    ensure!(r.is_err(), "started with ZooKeeper's authorizer");
    Ok(())
}

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const MEMBER_ID_REQUIRED: i16 = 79;
const ALTER: i8 = 7;
const DELETE: i8 = 6;
const CREATE: i8 = 5;
const DESCRIBE_CONFIGS: i8 = 10;
const ALTER_CONFIGS: i8 = 11;
const IDEMPOTENT_WRITE: i8 = 12;

/// Removes every ACL of a principal.
async fn clear_acls(admin: &mut Client, principal: &str) -> Result<()> {
    let r = admin
        .request(
            3,
            DeleteAclsRequest::default().with_filters(vec![
                delete_filter_all().with_principal_filter(Some(s(principal)))
            ]),
        )
        .await?;
    ensure!(r.filter_results[0].error_code == NONE, "{r:?}");
    let filter = filter_all().with_principal_filter(Some(s(principal)));
    await_acls(admin, filter, |n| n == 0).await
}

/// Records a difference from the expected code (the matrix reports them all at the end, so a
/// calibration run lists every row where the broker differs).
fn check(mismatches: &mut Vec<String>, ok: bool, what: String) {
    if !ok {
        eprintln!("MISMATCH {what}");
        mismatches.push(what);
    }
}

/// One row of the authorization matrix, as alice: with none of her ACLs the call gets
/// `refused`; with `grants` it passes `allowed`; with a DENY added (on top of the grants) it
/// gets `refused` again.
macro_rules! row {
    ($m:expr, $b:expr, $admin:expr, $name:expr, grants: $grants:expr, deny: $deny:expr,
     refused: $refused:expr, allowed: $allowed:expr, |$c:ident| $call:expr) => {{
        clear_acls($admin, "User:alice").await?;
        let mut $c = login($b, "alice").await?;
        let without: i16 = $call;
        check(
            $m,
            without == $refused,
            format!("{} without ACLs: {without}", $name),
        );
        grant($admin, $grants).await?;
        let mut with: i16 = $call;
        // As a client would: retry while a coordinator is still loading (Kafka creates its
        // internal topics and producer id blocks on first use).
        for _ in 0..200 {
            if ![
                COORDINATOR_LOAD_IN_PROGRESS,
                COORDINATOR_NOT_AVAILABLE,
                NOT_COORDINATOR,
            ]
            .contains(&with)
            {
                break;
            }
            sleep_ms(50).await;
            with = $call;
        }
        let allowed: &dyn Fn(i16) -> bool = &$allowed;
        check(
            $m,
            allowed(with),
            format!("{} with its ACLs: {with}", $name),
        );
        let deny: AclCreation = $deny;
        grant($admin, vec![deny.with_permission_type(DENY)]).await?;
        let denied: i16 = $call;
        check(
            $m,
            denied == $refused,
            format!("{} with a DENY: {denied}", $name),
        );
        eprintln!(
            "{}: without ACLs {without}, with {with}, with a DENY {denied}",
            $name
        );
    }};
}

fn alice(rt: i8, name: &str, op: i8) -> AclCreation {
    allow(rt, name, "User:alice", op)
}

fn ok(code: i16) -> bool {
    code == NONE
}

fn metadata_code(r: &MetadataResponse) -> i16 {
    r.topics.first().map_or(-100, |t| t.error_code)
}

/// Every API with a topic, group, transactional id or cluster check, called as a principal
/// without the ACL it needs, with it, and with a DENY (Kafka's KafkaApis / ControllerApis).
#[tokio::test]
async fn authorization_matrix() -> Result<()> {
    use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest as Cgd;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let b = MatrixBroker::start().await?;
    let admin = &mut login(&b, "admin").await?;
    let m = &mut Vec::new();
    for t in ["t", "d1"] {
        create_topic(admin, t, 1).await?;
        await_leader(admin, t).await?;
    }
    produce_ok(admin, "t", 0, values_batch(&["v"])).await?;
    // Kafka creates __consumer_offsets and __transaction_state on the first coordinator lookup
    // and answers COORDINATOR_NOT_AVAILABLE until they are ready: look both up first.
    for key_type in [0, 1] {
        let find = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s("warm-up")]);
        let mut ready = false;
        for _ in 0..600 {
            let r = admin.request(4, find.clone()).await?;
            if r.coordinators[0].error_code == NONE {
                ready = true;
                break;
            }
            sleep_ms(50).await;
        }
        ensure!(ready, "no coordinator for key type {key_type}");
    }

    row!(m, &b, admin, "Metadata", grants: vec![alice(TOPIC, "t", DESCRIBE)],
        deny: alice(TOPIC, "t", DESCRIBE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| metadata_code(&metadata(&mut c, METADATA_V, metadata_topics(&["t"]), false).await?));
    row!(m, &b, admin, "Produce", grants: vec![alice(TOPIC, "t", WRITE)],
        deny: acl(TOPIC, "t", PREFIXED, "User:alice", WRITE, DENY),
        refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| produce(&mut c, "t", 0, values_batch(&["a"])).await?.error_code);
    row!(m, &b, admin, "Fetch", grants: vec![alice(TOPIC, "*", READ)],
        deny: alice(TOPIC, "t", READ), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| fetch_one(&mut c, "t", 0, 0, 1 << 20).await?.error_code);
    row!(m, &b, admin, "ListOffsets", grants: vec![alice(TOPIC, "t", READ)],
        deny: alice(TOPIC, "t", DESCRIBE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| list_offset(&mut c, "t", 0, -1).await?.error_code);
    row!(m, &b, admin, "OffsetForLeaderEpoch", grants: vec![alice(TOPIC, "t", DESCRIBE)],
        deny: alice(TOPIC, "t", DESCRIBE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, offset_for_leader_epoch_request("t", 0, -1, 0)).await?
            .topics[0].partitions[0].error_code);
    row!(m, &b, admin, "DescribeProducers", grants: vec![alice(TOPIC, "t", READ)],
        deny: alice(TOPIC, "t", READ), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default().with_name(name("t")).with_partition_indexes(vec![0])])).await?
            .topics[0].partitions[0].error_code);
    row!(m, &b, admin, "DescribeTopicPartitions", grants: vec![alice(TOPIC, "t", DESCRIBE)],
        deny: alice(TOPIC, "t", DESCRIBE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, DescribeTopicPartitionsRequest::default()
            .with_topics(vec![kafka_protocol::messages::describe_topic_partitions_request::TopicRequest::default().with_name(name("t"))])
            .with_response_partition_limit(10)).await?.topics[0].error_code);
    let describe_topic_configs = || {
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_configuration_keys(None)])
    };
    row!(m, &b, admin, "DescribeConfigs (topic)", grants: vec![alice(TOPIC, "t", ALTER_CONFIGS)],
        deny: alice(TOPIC, "t", DESCRIBE_CONFIGS), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, describe_topic_configs()).await?.results[0].error_code);
    let describe_broker_configs = || {
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(""))
            .with_configuration_keys(None)])
    };
    row!(m, &b, admin, "DescribeConfigs (broker)",
        grants: vec![alice(CLUSTER, "kafka-cluster", DESCRIBE_CONFIGS)],
        deny: alice(CLUSTER, "kafka-cluster", DESCRIBE_CONFIGS),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, describe_broker_configs()).await?.results[0].error_code);
    let alter_topic_configs = || {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("100000")))]),
        ])
    };
    row!(m, &b, admin, "IncrementalAlterConfigs", grants: vec![alice(TOPIC, "t", ALTER_CONFIGS)],
        deny: alice(TOPIC, "t", ALTER_CONFIGS), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, alter_topic_configs()).await?.responses[0].error_code);
    let grow = || {
        CreatePartitionsRequest::default()
            .with_validate_only(true)
            .with_timeout_ms(10_000)
            .with_topics(vec![
        kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
            .with_name(name("t")).with_count(3).with_assignments(None)])
    };
    row!(m, &b, admin, "CreatePartitions", grants: vec![alice(TOPIC, "t", ALTER)],
        deny: alice(TOPIC, "t", ALTER), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(3, grow()).await?.results[0].error_code);
    let create = || {
        CreateTopicsRequest::default()
            .with_validate_only(true)
            .with_topics(vec![creatable("c1", 1)])
    };
    row!(m, &b, admin, "CreateTopics", grants: vec![alice(TOPIC, "c1", CREATE)],
        deny: alice(TOPIC, "c1", CREATE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(CREATE_TOPICS_V, create()).await?.topics[0].error_code);
    row!(m, &b, admin, "CreateTopics (cluster)", grants: vec![alice(CLUSTER, "kafka-cluster", CREATE)],
        deny: alice(CLUSTER, "kafka-cluster", CREATE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(CREATE_TOPICS_V, create()).await?.topics[0].error_code);
    let delete_records = || {
        DeleteRecordsRequest::default().with_topics(vec![
            kafka_protocol::messages::delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                kafka_protocol::messages::delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0).with_offset(0)]),
        ])
    };
    row!(m, &b, admin, "DeleteRecords", grants: vec![alice(TOPIC, "t", DELETE)],
        deny: alice(TOPIC, "t", DELETE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(2, delete_records()).await?.topics[0].partitions[0].error_code);
    let delete_topic = || {
        DeleteTopicsRequest::default()
            .with_topic_names(vec![name("d1")])
            .with_timeout_ms(10_000)
    };
    // The DENY is on DESCRIBE: the topic is gone by then, and a topic one may describe but
    // that does not exist is UNKNOWN_TOPIC_OR_PARTITION (ControllerApis.deleteTopics).
    row!(m, &b, admin, "DeleteTopics", grants: vec![alice(TOPIC, "d1", DELETE)],
        deny: alice(TOPIC, "d1", DESCRIBE), refused: TOPIC_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(5, delete_topic()).await?.responses[0].error_code);
    // DESCRIBE without DELETE on an existing topic.
    clear_acls(admin, "User:alice").await?;
    grant(admin, vec![alice(TOPIC, "t", DESCRIBE)]).await?;
    let mut c = login(&b, "alice").await?;
    let code = c
        .request(
            5,
            DeleteTopicsRequest::default()
                .with_topic_names(vec![name("t"), name("gone")])
                .with_timeout_ms(10_000),
        )
        .await?
        .responses
        .iter()
        .map(|r| r.error_code)
        .collect::<Vec<_>>();
    check(
        m,
        code == [TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED],
        format!("DeleteTopics of t (DESCRIBE only) and gone: {code:?}"),
    );

    // Groups.
    let find = |key_type: i8, key: &str| {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s(key)])
    };
    row!(m, &b, admin, "FindCoordinator (group)", grants: vec![alice(GROUP, "g", DESCRIBE)],
        deny: alice(GROUP, "g", DESCRIBE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, find(0, "g")).await?.coordinators[0].error_code);
    let join = || {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(bytes::Bytes::new()),
            ])
    };
    row!(m, &b, admin, "JoinGroup", grants: vec![alice(GROUP, "g", READ)],
        deny: alice(GROUP, "g", READ), refused: GROUP_AUTHORIZATION_FAILED,
        allowed: |c| c == MEMBER_ID_REQUIRED,
        |c| c.request(9, join()).await?.error_code);
    let heartbeat = || {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s("m"))
            .with_generation_id(1)
    };
    row!(m, &b, admin, "Heartbeat", grants: vec![alice(GROUP, "g", READ)],
        deny: alice(GROUP, "g", READ), refused: GROUP_AUTHORIZATION_FAILED,
        allowed: |c| c != GROUP_AUTHORIZATION_FAILED,
        |c| c.request(4, heartbeat()).await?.error_code);
    let sync = || {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s("m"))
            .with_generation_id(1)
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
    };
    // From v5 a SyncGroup without its protocol type and name is refused before authorization.
    clear_acls(admin, "User:alice").await?;
    let mut c = login(&b, "alice").await?;
    let code = c
        .request(5, sync().with_protocol_type(None))
        .await?
        .error_code;
    check(
        m,
        code == INCONSISTENT_GROUP_PROTOCOL,
        format!("SyncGroup v5 without a protocol type: {code}"),
    );
    row!(m, &b, admin, "SyncGroup", grants: vec![alice(GROUP, "g", READ)],
        deny: alice(GROUP, "g", READ), refused: GROUP_AUTHORIZATION_FAILED,
        allowed: |c| c != GROUP_AUTHORIZATION_FAILED,
        |c| c.request(5, sync()).await?.error_code);
    let leave = || {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_members(vec![
                kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                    .with_member_id(s("m")),
            ])
    };
    row!(m, &b, admin, "LeaveGroup", grants: vec![alice(GROUP, "g", READ)],
        deny: alice(GROUP, "g", READ), refused: GROUP_AUTHORIZATION_FAILED,
        allowed: |c| c != GROUP_AUTHORIZATION_FAILED,
        |c| c.request(5, leave()).await?.error_code);
    let commit = |topic: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])])
    };
    row!(m, &b, admin, "OffsetCommit", grants: vec![alice(GROUP, "g", READ), alice(TOPIC, "t", READ)],
        deny: alice(GROUP, "g", READ), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(8, commit("t")).await?.topics[0].partitions[0].error_code);
    // With the group but not the topic: that topic's partitions only.
    clear_acls(admin, "User:alice").await?;
    grant(admin, vec![alice(GROUP, "g", READ)]).await?;
    let mut c = login(&b, "alice").await?;
    let code = c.request(8, commit("t")).await?.topics[0].partitions[0].error_code;
    check(
        m,
        code == TOPIC_AUTHORIZATION_FAILED,
        format!("OffsetCommit without the topic: {code}"),
    );
    let fetch_offsets = || {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(None)
    };
    row!(m, &b, admin, "OffsetFetch", grants: vec![alice(GROUP, "g", DESCRIBE)],
        deny: alice(GROUP, "g", DESCRIBE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(7, fetch_offsets()).await?.error_code);
    // All offsets of the group: only the topics alice may describe.
    let r = c.request(7, fetch_offsets()).await?;
    check(
        m,
        r.error_code == GROUP_AUTHORIZATION_FAILED,
        format!("OffsetFetch of all topics after the DENY: {r:?}"),
    );
    clear_acls(admin, "User:alice").await?;
    grant(admin, vec![alice(GROUP, "g", DESCRIBE)]).await?;
    let r = c.request(7, fetch_offsets()).await?;
    check(
        m,
        r.error_code == NONE && r.topics.is_empty(),
        format!("OffsetFetch of all topics without a topic ACL: {r:?}"),
    );
    grant(admin, vec![alice(TOPIC, "t", DESCRIBE)]).await?;
    let r = c.request(7, fetch_offsets()).await?;
    check(
        m,
        r.topics.len() == 1,
        format!("OffsetFetch of all topics with DESCRIBE on t: {r:?}"),
    );
    let describe_groups = || {
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g"))])
            .with_include_authorized_operations(true)
    };
    row!(m, &b, admin, "DescribeGroups", grants: vec![alice(GROUP, "g", DESCRIBE)],
        deny: alice(GROUP, "g", DESCRIBE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(5, describe_groups()).await?.groups[0].error_code);
    let offset_delete = || {
        OffsetDeleteRequest::default().with_group_id(GroupId(s("g")))
        .with_topics(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(name("t")).with_partitions(vec![
                kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()
                    .with_partition_index(0)])])
    };
    row!(m, &b, admin, "OffsetDelete", grants: vec![alice(GROUP, "g", DELETE), alice(TOPIC, "t", READ)],
        deny: alice(GROUP, "g", DELETE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, offset_delete()).await?.error_code);
    let delete_groups = || DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    row!(m, &b, admin, "DeleteGroups", grants: vec![alice(GROUP, "g", DELETE)],
        deny: alice(GROUP, "g", DELETE), refused: GROUP_AUTHORIZATION_FAILED,
        allowed: |c| c != GROUP_AUTHORIZATION_FAILED,
        |c| c.request(2, delete_groups()).await?.results[0].error_code);
    let cg_heartbeat = || {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("g2")))
            .with_member_id(s("alice-member-1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![name("t")]))
            .with_topic_partitions(Some(vec![]))
    };
    row!(m, &b, admin, "ConsumerGroupHeartbeat",
        grants: vec![alice(GROUP, "g2", READ), alice(TOPIC, "t", DESCRIBE)],
        deny: alice(GROUP, "g2", READ), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, cg_heartbeat()).await?.error_code);
    let cg_describe = || {
        Cgd::default()
            .with_group_ids(vec![GroupId(s("g2"))])
            .with_include_authorized_operations(true)
    };
    row!(m, &b, admin, "ConsumerGroupDescribe",
        grants: vec![alice(GROUP, "g2", DESCRIBE), alice(TOPIC, "t", DESCRIBE)],
        deny: alice(GROUP, "g2", DESCRIBE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, cg_describe()).await?.groups[0].error_code);
    // A group whose members use a topic alice may not describe is not shown to her.
    clear_acls(admin, "User:alice").await?;
    grant(admin, vec![alice(GROUP, "g2", DESCRIBE)]).await?;
    let code = c.request(0, cg_describe()).await?.groups[0].error_code;
    check(
        m,
        code == TOPIC_AUTHORIZATION_FAILED,
        format!("ConsumerGroupDescribe without the topic: {code}"),
    );

    // Share-group offsets (KIP-932): the group sg is made by the alter, empty.
    let sg_describe = || {
        DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s("sg")))
                .with_topics(Some(vec![
                    describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(name("t"))
                        .with_partitions(vec![0]),
                ])),
        ])
    };
    let sg_alter = || {
        use kafka_protocol::messages::alter_share_group_offsets_request::*;
        AlterShareGroupOffsetsRequest::default()
            .with_group_id(GroupId(s("sg")))
            .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(name("t"))
                .with_partitions(vec![
                    AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(0)
                        .with_start_offset(0),
                ])])
    };
    let sg_delete = || {
        DeleteShareGroupOffsetsRequest::default()
            .with_group_id(GroupId(s("sg")))
            .with_topics(vec![
                delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(name("t")),
            ])
    };
    row!(m, &b, admin, "AlterShareGroupOffsets", grants: vec![alice(GROUP, "sg", READ), alice(TOPIC, "t", READ)],
        deny: alice(GROUP, "sg", READ), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, sg_alter()).await?.error_code);
    row!(m, &b, admin, "DescribeShareGroupOffsets", grants: vec![alice(GROUP, "sg", DESCRIBE), alice(TOPIC, "t", DESCRIBE)],
        deny: alice(GROUP, "sg", DESCRIBE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, sg_describe()).await?.groups[0].error_code);
    row!(m, &b, admin, "DeleteShareGroupOffsets", grants: vec![alice(GROUP, "sg", DELETE), alice(TOPIC, "t", READ)],
        deny: alice(GROUP, "sg", DELETE), refused: GROUP_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, sg_delete()).await?.error_code);
    // The group's ACL without the topic's: each topic is refused on its own.
    clear_acls(admin, "User:alice").await?;
    grant(
        admin,
        vec![
            alice(GROUP, "sg", READ),
            alice(GROUP, "sg", DESCRIBE),
            alice(GROUP, "sg", DELETE),
        ],
    )
    .await?;
    let r = c.request(0, sg_alter()).await?;
    let code = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-100, |p| p.error_code);
    check(
        m,
        r.error_code == NONE && code == TOPIC_AUTHORIZATION_FAILED,
        format!("AlterShareGroupOffsets without the topic: {r:?}"),
    );
    let r = c.request(1, sg_describe()).await?;
    let code = r.groups[0]
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-100, |p| p.error_code);
    check(
        m,
        code == TOPIC_AUTHORIZATION_FAILED,
        format!("DescribeShareGroupOffsets without the topic: {r:?}"),
    );
    let r = c.request(0, sg_delete()).await?;
    let code = r.responses.first().map_or(-100, |t| t.error_code);
    check(
        m,
        r.error_code == NONE && code == TOPIC_AUTHORIZATION_FAILED,
        format!("DeleteShareGroupOffsets without the topic: {r:?}"),
    );

    // Producers and transactions.
    let init = |id: Option<&str>| {
        InitProducerIdRequest::default()
            .with_transactional_id(id.map(|i| TransactionalId(s(i))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    row!(m, &b, admin, "InitProducerId (idempotent)",
        grants: vec![alice(CLUSTER, "kafka-cluster", IDEMPOTENT_WRITE)],
        deny: alice(CLUSTER, "kafka-cluster", IDEMPOTENT_WRITE),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, init(None)).await?.error_code);
    // WRITE on some topic is enough too (authorizeByResourceType).
    row!(m, &b, admin, "InitProducerId (idempotent, topic WRITE)",
        grants: vec![acl(TOPIC, "app-", PREFIXED, "User:alice", WRITE, ALLOW)],
        deny: acl(TOPIC, "app", PREFIXED, "User:alice", WRITE, DENY),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, init(None)).await?.error_code);
    row!(m, &b, admin, "InitProducerId (transactional)", grants: vec![alice(TRANSACTIONAL_ID, "tx", WRITE)],
        deny: alice(TRANSACTIONAL_ID, "tx", WRITE), refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        allowed: ok, |c| c.request(4, init(Some("tx"))).await?.error_code);
    row!(m, &b, admin, "FindCoordinator (transaction)", grants: vec![alice(TRANSACTIONAL_ID, "tx", WRITE)],
        deny: alice(TRANSACTIONAL_ID, "tx", DESCRIBE), refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        allowed: ok, |c| c.request(4, find(1, "tx")).await?.coordinators[0].error_code);
    let add_partitions = || {
        AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
        .with_v3_and_below_producer_id(ProducerId(999)).with_v3_and_below_producer_epoch(0)
        .with_v3_and_below_topics(vec![kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
            .with_name(name("t")).with_partitions(vec![0])])
    };
    row!(m, &b, admin, "AddPartitionsToTxn",
        grants: vec![alice(TRANSACTIONAL_ID, "tx", WRITE), alice(TOPIC, "t", WRITE)],
        deny: alice(TRANSACTIONAL_ID, "tx", WRITE), refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        allowed: |c| c != TRANSACTIONAL_ID_AUTHORIZATION_FAILED && c != TOPIC_AUTHORIZATION_FAILED,
        |c| c.request(3, add_partitions()).await?.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code);
    row!(m, &b, admin, "AddOffsetsToTxn",
        grants: vec![alice(TRANSACTIONAL_ID, "tx", WRITE), alice(GROUP, "g", READ)],
        deny: alice(TRANSACTIONAL_ID, "tx", WRITE), refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        allowed: |c| c != TRANSACTIONAL_ID_AUTHORIZATION_FAILED && c != GROUP_AUTHORIZATION_FAILED,
        |c| add_offsets(&mut c, 3, "tx", (999, 0), "g").await?);
    let end = || {
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_producer_id(ProducerId(999))
            .with_producer_epoch(0)
            .with_committed(false)
    };
    row!(m, &b, admin, "EndTxn", grants: vec![alice(TRANSACTIONAL_ID, "tx", WRITE)],
        deny: alice(TRANSACTIONAL_ID, "tx", WRITE), refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        allowed: |c| c != TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        |c| c.request(3, end()).await?.error_code);
    let describe_txn = || {
        DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s("tx"))])
    };
    row!(m, &b, admin, "DescribeTransactions", grants: vec![alice(TRANSACTIONAL_ID, "tx", DESCRIBE)],
        deny: alice(TRANSACTIONAL_ID, "tx", DESCRIBE), refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        allowed: ok, |c| c.request(0, describe_txn()).await?.transaction_states[0].error_code);

    // The cluster.
    let cluster = |op| alice(CLUSTER, "kafka-cluster", op);
    row!(m, &b, admin, "ElectLeaders", grants: vec![cluster(ALTER)], deny: cluster(ALTER),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: |c| c != CLUSTER_AUTHORIZATION_FAILED,
        |c| c.request(2, ElectLeadersRequest::default().with_election_type(0)
            .with_topic_partitions(None)).await?.error_code);
    row!(m, &b, admin, "AlterPartitionReassignments", grants: vec![cluster(ALTER)], deny: cluster(ALTER),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, AlterPartitionReassignmentsRequest::default()).await?.error_code);
    row!(m, &b, admin, "ListPartitionReassignments", grants: vec![cluster(DESCRIBE)],
        deny: cluster(DESCRIBE), refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, ListPartitionReassignmentsRequest::default().with_topics(None)).await?.error_code);
    row!(m, &b, admin, "DescribeLogDirs", grants: vec![cluster(DESCRIBE)], deny: cluster(DESCRIBE),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, DescribeLogDirsRequest::default().with_topics(None)).await?.error_code);
    row!(m, &b, admin, "DescribeUserScramCredentials", grants: vec![cluster(DESCRIBE)],
        deny: cluster(DESCRIBE), refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(0, DescribeUserScramCredentialsRequest::default().with_users(Some(vec![]))).await?.error_code);
    let delete_credential = || {
        AlterUserScramCredentialsRequest::default().with_deletions(vec![
        kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion::default()
            .with_name(s("nobody")).with_mechanism(1)])
    };
    row!(m, &b, admin, "AlterUserScramCredentials", grants: vec![cluster(ALTER)], deny: cluster(ALTER),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: |c| c == RESOURCE_NOT_FOUND,
        |c| c.request(0, delete_credential()).await?.results[0].error_code);
    row!(m, &b, admin, "DescribeClientQuotas", grants: vec![cluster(DESCRIBE_CONFIGS)],
        deny: cluster(DESCRIBE_CONFIGS), refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, DescribeClientQuotasRequest::default()).await?.error_code);
    let alter_quota = || {
        use kafka_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(s("client-id"))
                .with_entity_name(Some(s("q")))])
            .with_ops(vec![OpData::default()
                .with_key(s("producer_byte_rate"))
                .with_value(1e6)])])
    };
    row!(m, &b, admin, "AlterClientQuotas", grants: vec![cluster(ALTER_CONFIGS)],
        deny: cluster(ALTER_CONFIGS), refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, alter_quota()).await?.entries[0].error_code);
    let update_features = || {
        UpdateFeaturesRequest::default().with_feature_updates(vec![
            kafka_protocol::messages::update_features_request::FeatureUpdateKey::default()
                .with_feature(s("group.version"))
                .with_max_version_level(1)
                .with_upgrade_type(1),
        ])
    };
    row!(m, &b, admin, "UpdateFeatures", grants: vec![cluster(ALTER)], deny: cluster(ALTER),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, update_features()).await?.error_code);
    let describe_quorum = || {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(s("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default()])])
    };
    row!(m, &b, admin, "DescribeQuorum", grants: vec![cluster(DESCRIBE)], deny: cluster(DESCRIBE),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(1, describe_quorum()).await?.error_code);
    // One transaction in it: Kafka answers a v4 request only once every transaction of it has
    // its result, so one without any is never answered.
    let verify = || {
        use kafka_protocol::messages::add_partitions_to_txn_request::{
            AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
        };
        AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(999))
                .with_producer_epoch(0)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![0])]),
        ])
    };
    row!(m, &b, admin, "AddPartitionsToTxn (brokers)", grants: vec![cluster(9)], deny: cluster(9),
        refused: CLUSTER_AUTHORIZATION_FAILED, allowed: ok,
        |c| c.request(4, verify()).await?.error_code);
    ensure!(m.is_empty(), "{} rows differ: {m:#?}", m.len());
    Ok(())
}

/// Waits until the topic has a leader in the broker's metadata (Kafka's broker learns of a
/// topic from the controller a little after CreateTopics answered).
async fn await_leader(c: &mut Client, topic: &str) -> Result<()> {
    for _ in 0..500 {
        let r = metadata(c, METADATA_V, metadata_topics(&[topic]), false).await?;
        if r.topics.first().is_some_and(|t| {
            t.error_code == NONE && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
        }) {
            return Ok(());
        }
        sleep_ms(10).await;
    }
    Err(anyhow::anyhow!("{topic} never got a leader"))
}

/// Listings show only what the session may describe; KIP-430 authorized operations are its own;
/// super users pass every check.
#[tokio::test]
async fn listings_authorized_operations_and_super_users() -> Result<()> {
    let b = secured_broker(&[]).await?;
    let admin = &mut login(&b, "admin").await?;
    for t in ["a-1", "a-2", "b-1"] {
        create_topic(admin, t, 1).await?;
    }
    grant(
        admin,
        vec![
            acl(TOPIC, "a-", PREFIXED, "User:alice", READ, ALLOW),
            allow(GROUP, "ga", "User:alice", DESCRIBE),
            allow(TRANSACTIONAL_ID, "txa", "User:alice", WRITE),
        ],
    )
    .await?;
    // Metadata for all topics: alice sees a-1 and a-2, with READ and DESCRIBE (bits 3 and 8).
    let mut c = login(&b, "alice").await?;
    let m = c
        .request(
            METADATA_V,
            MetadataRequest::default()
                .with_topics(None)
                .with_include_topic_authorized_operations(true),
        )
        .await?;
    let mut seen: Vec<(String, i32)> = m
        .topics
        .iter()
        .map(|t| {
            let n = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (n, t.topic_authorized_operations)
        })
        .collect();
    seen.sort();
    let ops = (1 << 3) | (1 << 8);
    ensure!(
        seen == vec![("a-1".to_string(), ops), ("a-2".to_string(), ops)],
        "{seen:?}"
    );
    // Auto-creation of a topic alice may describe but not create is refused.
    let m = metadata(&mut c, METADATA_V, metadata_topics(&["a-new"]), true).await?;
    ensure!(metadata_code(&m) == TOPIC_AUTHORIZATION_FAILED, "{m:?}");
    // DescribeCluster: no cluster operations without DESCRIBE on it.
    let r = c
        .request(
            1,
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )
        .await?;
    ensure!(r.cluster_authorized_operations == 0, "{r:?}");
    // ListGroups and ListTransactions: only alice's.
    for g in ["ga", "gb"] {
        use kafka_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(g)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name("a-1"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(0)])]);
        let r = admin.request(8, commit).await?;
        ensure!(r.topics[0].partitions[0].error_code == NONE, "{r:?}");
    }
    let r = c.request(5, ListGroupsRequest::default()).await?;
    let groups: Vec<&str> = r.groups.iter().map(|g| g.group_id.as_str()).collect();
    let all = admin.request(5, ListGroupsRequest::default()).await?;
    ensure!(
        groups == ["ga"] && all.groups.len() >= 2,
        "{groups:?} {all:?}"
    );
    init_transactional(admin, "txa").await?;
    init_transactional(admin, "txb").await?;
    let r = c.request(1, ListTransactionsRequest::default()).await?;
    let ids: Vec<&str> = r
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.as_str())
        .collect();
    ensure!(ids == ["txa"], "{ids:?}");
    // The super user's operations are all of them, with or without ACLs.
    let r = admin
        .request(
            1,
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )
        .await?;
    ensure!(
        r.cluster_authorized_operations == 0b1_1111_1010_0000,
        "{r:?}"
    );
    // An anonymous plaintext client with no ACLs sees nothing and may do nothing.
    let mut anon = b.client_on("PLAINTEXT").await?;
    let m = metadata(&mut anon, METADATA_V, None, false).await?;
    ensure!(m.topics.is_empty(), "{m:?}");
    let p = produce(&mut anon, "a-1", 0, values_batch(&["x"])).await?;
    ensure!(p.error_code == TOPIC_AUTHORIZATION_FAILED, "{p:?}");
    Ok(())
}

/// allow.everyone.if.no.acl.found: a resource no ACL names is open; one with ACLs is not.
#[tokio::test]
async fn allow_everyone_if_no_acl_found() -> Result<()> {
    let b = secured_broker(&[("allow.everyone.if.no.acl.found", "true")]).await?;
    let admin = &mut login(&b, "admin").await?;
    create_topic(admin, "open", 1).await?;
    create_topic(admin, "closed", 1).await?;
    grant(admin, vec![allow(TOPIC, "closed", "User:bob", WRITE)]).await?;
    let mut alice = login(&b, "alice").await?;
    let p = produce(&mut alice, "open", 0, values_batch(&["x"])).await?;
    ensure!(p.error_code == NONE, "{p:?}");
    let p = produce(&mut alice, "closed", 0, values_batch(&["x"])).await?;
    ensure!(p.error_code == TOPIC_AUTHORIZATION_FAILED, "{p:?}");
    let mut bob = login(&b, "bob").await?;
    let p = produce(&mut bob, "closed", 0, values_batch(&["x"])).await?;
    ensure!(p.error_code == NONE, "{p:?}");
    Ok(())
}
