"""librdkafka over SASL_SSL with SCRAM-SHA-512: the user created with AdminClient's
AlterUserScramCredentials on the PLAINTEXT listener, then produce, consume in a group and
administer over SASL_SSL (PEM certificates made with openssl, the server's for 127.0.0.1), and
wrong credentials refused."""

import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=gregor-compat-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    (d / "server-keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return d


def secured(broker, certs, password):
    return {"bootstrap.servers": broker.listener("SASL_SSL"), "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": password,
            "ssl.ca.location": str(certs / "ca.pem")}


def test_sasl_ssl_scram_sha_512(make_broker, certs, topic):
    broker = make_broker({
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": SCRAM_LOGIN,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
    }, listeners=["SASL_SSL"])
    plain = AdminClient({"bootstrap.servers": broker.bootstrap})
    upsert = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"alice-scram")
    for f in plain.alter_user_scram_credentials([upsert]).values():
        f.result(timeout=20)
    # The credential reaches every broker through the metadata log (at once on gregor).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        described = plain.describe_user_scram_credentials(["alice"])["alice"].result(timeout=20)
        if described.scram_credential_infos:
            break
        time.sleep(0.2)
    [info] = described.scram_credential_infos
    assert (info.mechanism, info.iterations) == (ScramMechanism.SCRAM_SHA_512, 8192)

    config = secured(broker, certs, "alice-scram")
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    p = Producer({**config, "message.timeout.ms": 20000})
    delivered = []
    for i in range(100):
        p.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode(),
                  on_delivery=lambda err, msg: delivered.append(err or msg.offset()))
    assert p.flush(30) == 0
    assert delivered == list(range(100))
    c = Consumer({**config, "group.id": f"{topic}-group", "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        values = []
        deadline = time.monotonic() + 30
        while len(values) < 100 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value())
        assert values == [f"v{i}".encode() for i in range(100)]
        c.commit(asynchronous=False)
    finally:
        c.close()

    # Wrong password: librdkafka reports an authentication error (through error_cb, on poll).
    errors = []
    bad = Producer({**secured(broker, certs, "wrong"), "error_cb": errors.append})
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        bad.poll(0.2)
    assert [e.code() for e in errors[:1]] == [KafkaError._AUTHENTICATION], errors


PLAIN_USERS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
               'user_alice="alice-secret";')


def test_acls_refuse_then_allow_a_producer(make_broker, topic):
    """StandardAuthorizer: alice's produce is refused with TOPIC_AUTHORIZATION_FAILED until an
    ACL (created with AdminClient over the PLAINTEXT listener, whose ANONYMOUS principal is a
    super user here) allows her to write."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    broker = make_broker({
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_USERS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
    }, listeners=["SASL_PLAINTEXT"])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    alice = {"bootstrap.servers": broker.listener("SASL_PLAINTEXT"),
             "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
             "sasl.username": "alice", "sasl.password": "alice-secret"}

    def produce_one():
        results = []
        p = Producer({**alice, "message.timeout.ms": 10000})
        p.produce(topic, value=b"v", on_delivery=lambda err, msg: results.append(err))
        p.flush(20)
        return results

    [err] = produce_one()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    write = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    for f in admin.create_acls([write]).values():
        f.result(timeout=20)
    # ACLs reach every broker through the metadata log (at once on gregor).
    deadline = time.monotonic() + 20
    while True:
        results = produce_one()
        if results == [None] or time.monotonic() > deadline:
            break
    assert results == [None], results
