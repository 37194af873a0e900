"""librdkafka over SASL_SSL with SCRAM-SHA-512: the user created with AdminClient's
AlterUserScramCredentials on the PLAINTEXT listener, then produce, consume in a group and
administer over SASL_SSL (PEM certificates made with openssl, the server's for 127.0.0.1), and
wrong credentials refused; over SSL with a client certificate the broker requires (mutual TLS),
its principal mapped to User:alice, whose ACL lets it produce; ACLs on SASL_PLAINTEXT."""

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
    # A client certificate from the same CA (X.509 v3: with extensions; gregor's verifier, webpki,
    # refuses the v1 certificates `openssl x509 -req` makes without them, FINDINGS.md), and one
    # from a CA the broker does not trust.
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/O=gregor-compat/OU=tests/CN=alice")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.ext")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "stranger.key",
            "-out", "stranger.pem", "-days", "2", "-subj", "/CN=alice")
    return d


def secured(broker, certs, password):
    return {"bootstrap.servers": broker.listener("SASL_SSL"), "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": password,
            "ssl.ca.location": str(certs / "ca.pem")}


def consume_in_group(config, topic, count):
    """The values a consumer in the group TOPIC-group reads from the start (at most count, within
    30 s); its offsets committed."""
    c = Consumer({**config, "group.id": f"{topic}-group", "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        values = []
        deadline = time.monotonic() + 30
        while len(values) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value())
        if values:
            c.commit(asynchronous=False)
        return values
    finally:
        c.close()


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
    assert consume_in_group(config, topic, 100) == [f"v{i}".encode() for i in range(100)]

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



def produce(config, topic, count, timeout_ms=10000):
    """Produces count records: the delivery results (offsets, or KafkaErrors) and the errors
    error_cb reported."""
    delivered, errors = [], []
    p = Producer({**config, "message.timeout.ms": timeout_ms, "error_cb": errors.append})
    for i in range(count):
        p.produce(topic, value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: delivered.append(err or msg.offset()))
    p.flush(timeout_ms / 1000 + 10)
    return delivered, errors


def test_mutual_tls(make_broker, certs, topic):
    """SSL with ssl.client.auth=required: a client certificate signed by the truststore's CA is
    served as User:alice (ssl.principal.mapping.rules), refused until an ACL lets her write and
    read; a client without a certificate, or with one from another CA, fails the handshake."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    broker = make_broker({
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.ssl.ssl.principal.mapping.rules": "RULE:^CN=([^,]*),OU=tests,.*$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
    }, listeners=["SSL"])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    tls = {"bootstrap.servers": broker.listener("SSL"), "security.protocol": "SSL",
           "ssl.ca.location": str(certs / "ca.pem")}
    alice = {**tls, "ssl.certificate.location": str(certs / "client.pem"),
             "ssl.key.location": str(certs / "client.key")}

    [refused], _ = produce(alice, topic, 1)
    assert isinstance(refused, KafkaError), refused
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused

    def allow(resource_type, name, operation):
        binding = AclBinding(resource_type, name, ResourcePatternType.LITERAL, "User:alice", "*",
                             operation, AclPermissionType.ALLOW)
        for f in admin.create_acls([binding]).values():
            f.result(timeout=20)

    allow(ResourceType.TOPIC, topic, AclOperation.WRITE)
    # ACLs reach every broker through the metadata log (at once on gregor).
    deadline = time.monotonic() + 20
    while True:
        delivered, _ = produce(alice, topic, 10)
        if all(isinstance(d, int) for d in delivered) or time.monotonic() > deadline:
            break
    assert len(delivered) == 10 and all(isinstance(d, int) for d in delivered), delivered

    allow(ResourceType.TOPIC, topic, AclOperation.READ)
    allow(ResourceType.GROUP, f"{topic}-group", AclOperation.READ)
    assert consume_in_group(alice, topic, 10) == [f"v{i}".encode() for i in range(10)]

    # No certificate, or one the truststore does not vouch for: the handshake fails and nothing
    # is delivered.
    stranger = {**tls, "ssl.certificate.location": str(certs / "stranger.pem"),
                "ssl.key.location": str(certs / "stranger.key")}
    for bad in (tls, stranger):
        delivered, errors = produce(bad, topic, 1, timeout_ms=5000)
        assert len(delivered) == 1 and isinstance(delivered[0], KafkaError), delivered
        assert any(e.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
                   for e in errors), errors
