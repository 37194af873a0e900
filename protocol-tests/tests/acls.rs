//! ACLs and authorization: CreateAcls / DescribeAcls / DeleteAcls, and what each API refuses
//! without the ACL it needs (Kafka's StandardAuthorizer and KafkaApis).

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

/// A connection authenticated as `user` (password `<user>-secret`).
async fn login(b: &TestBroker, user: &str) -> Result<Client> {
    let mut c = b.client_on("SASL_PLAINTEXT").await?;
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

/// Creates ACLs that must all succeed.
async fn grant(c: &mut Client, acls: Vec<AclCreation>) -> Result<()> {
    let n = acls.len();
    let codes = create_acls(c, acls).await?;
    ensure!(codes == vec![NONE; n], "CreateAcls: {codes:?}");
    Ok(())
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
