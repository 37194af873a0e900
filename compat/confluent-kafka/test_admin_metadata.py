"""AdminClient topic creation, cluster and topic metadata, topic auto-creation."""

import time
from collections import defaultdict

import pytest
from confluent_kafka import (TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException,
                             TopicCollection, TopicPartition)
from confluent_kafka.admin import AclOperation, NewTopic

from clients import (DeliveryLog, admin, check_messages, consume_partition, consumer, create_topic,
                     produce_all, producer)
from compat_support import base_timestamp_ms, make_record, unique_topic

ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA"


def check_single_node_partitions(cluster, topic, count):
    [broker_id] = cluster.brokers
    meta = cluster.topics[topic]
    assert meta.error is None
    assert sorted(meta.partitions) == list(range(count))
    for p in meta.partitions.values():
        assert p.error is None
        assert (p.leader, p.replicas, p.isrs) == (broker_id, [broker_id], [broker_id])


def test_create_topic_and_produce_per_partition(broker, topic):
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    check_single_node_partitions(admin(broker).list_topics(topic, timeout=10), topic, 4)

    base = base_timestamp_ms()
    p = producer(broker, **{"compression.type": "snappy"})
    for partition in range(4):
        records = (make_record(i, base) for i in range(partition * 1000, partition * 1000 + 700))
        log = produce_all(p, topic, records, partition=partition)
        assert log.errors == []
        assert log.delivered == [(partition, i) for i in range(700)]
    for partition in range(4):
        messages = consume_partition(broker, topic, partition, 700)
        assert all(m.partition() == partition for m in messages)
        check_messages(messages, base, first_index=partition * 1000)

    # One consumer fetching all four partitions at once.
    c = consumer(broker)
    try:
        c.assign([TopicPartition(topic, partition, 0) for partition in range(4)])
        by_partition = defaultdict(list)
        deadline = time.monotonic() + 30
        while sum(map(len, by_partition.values())) < 2800 and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error() is None:
                    by_partition[m.partition()].append(m)
    finally:
        c.close()
    for partition in range(4):
        check_messages(by_partition[partition], base, first_index=partition * 1000)


def test_keyed_records_stick_to_a_partition(broker, topic):
    create_topic(broker, topic, num_partitions=3)
    base = base_timestamp_ms()
    records = [(f"user-{i % 20}".encode(), b"v%d" % i, [], base + i) for i in range(600)]
    log = produce_all(producer(broker), topic, records, partition=-1)
    assert log.errors == []

    keys_by_partition = defaultdict(set)
    for partition in range(3):
        count = sum(1 for part, _ in log.delivered if part == partition)
        if count:
            for m in consume_partition(broker, topic, partition, count):
                keys_by_partition[m.key()].add(partition)
    assert len(keys_by_partition) == 20
    assert all(len(parts) == 1 for parts in keys_by_partition.values())
    assert len({next(iter(p)) for p in keys_by_partition.values()}) > 1


def test_create_topic_with_broker_defaults(broker, topic):
    create_topic(broker, topic)  # num_partitions and replication_factor -1: num.partitions=1
    check_single_node_partitions(admin(broker).list_topics(topic, timeout=10), topic, 1)


CREATE_ERRORS = [
    ("exists", {"num_partitions": 1}, KafkaError.TOPIC_ALREADY_EXISTS),
    ("collides", {"num_partitions": 1}, KafkaError.TOPIC_EXCEPTION),  # "a.b" vs "a_b"
    ("bad-name", {"num_partitions": 1}, KafkaError.TOPIC_EXCEPTION),
    ("too-long", {"num_partitions": 1}, KafkaError.TOPIC_EXCEPTION),
    ("zero-partitions", {"num_partitions": 0}, KafkaError.INVALID_PARTITIONS),
    ("replication-3", {"num_partitions": 1, "replication_factor": 3},
     KafkaError.INVALID_REPLICATION_FACTOR),
]


@pytest.mark.parametrize("case, kwargs, expected", CREATE_ERRORS, ids=[c[0] for c in CREATE_ERRORS])
def test_create_topic_errors(broker, topic, case, kwargs, expected):
    existing, name = {
        "exists": (topic, topic),
        "collides": (topic + ".x", topic + "_x"),
        "bad-name": (None, "no spaces allowed!"),
        "too-long": (None, "t" * 250),
    }.get(case, (None, topic))
    if existing:
        create_topic(broker, existing, num_partitions=1)
    with pytest.raises(KafkaException) as excinfo:
        create_topic(broker, name, **kwargs)
    assert excinfo.value.args[0].code() == expected, excinfo.value
    if name != existing:
        assert name not in admin(broker).list_topics(timeout=10).topics


def test_topic_configs_apply(broker, topic):
    create_topic(broker, topic, num_partitions=1,
                 config={"max.message.bytes": "2000", "message.timestamp.type": "LogAppendTime"})
    p = producer(broker, **{"compression.type": "none"})
    log = DeliveryLog()
    p.produce(topic, b"x" * 5000, partition=0, on_delivery=log)
    assert p.flush(30) == 0
    p.produce(topic, b"y" * 1000, partition=0, timestamp=1_000_000, on_delivery=log)
    assert p.flush(30) == 0
    assert [e.code() for e in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert log.delivered == [(0, 0)]
    # A compressed batch: the broker rewrites only the batch header (max timestamp and CRC).
    # All ten records are queued long before the linger ends, and flush() sends them as one
    # batch: with 100 ms a busy machine once let the linger end between two produce() calls,
    # and two batches got two append times (flake hunt).
    lz4 = producer(broker, **{"compression.type": "lz4", "linger.ms": 10000})
    log = produce_all(lz4, topic, [(None, b"z%d" % i, [], 1_000_000 + i) for i in range(10)])
    assert log.errors == [] and log.delivered == [(0, i) for i in range(1, 11)]

    messages = consume_partition(broker, topic, 0, 11)  # the consumer checks CRCs
    assert [m.value() for m in messages] == [b"y" * 1000] + [b"z%d" % i for i in range(10)]
    timestamps = [m.timestamp() for m in messages]
    assert {kind for kind, _ in timestamps} == {TIMESTAMP_LOG_APPEND_TIME}
    assert len({ts for _, ts in timestamps[1:]}) == 1, "one batch, one append time"
    assert all(abs(ts - time.time() * 1000) < 120_000 for _, ts in timestamps), \
        "LogAppendTime is the broker's clock"


@pytest.mark.parametrize("config", [{"no.such.config": "1"}, {"cleanup.policy": "bogus"},
                                    {"retention.ms": "soon"}, {"segment.bytes": "100"}],
                         ids=lambda config: "=".join(*config.items()))
def test_create_topic_invalid_config(broker, topic, config):
    with pytest.raises(KafkaException) as excinfo:
        create_topic(broker, topic, num_partitions=1, config=config)
    assert excinfo.value.args[0].code() == KafkaError.INVALID_CONFIG, excinfo.value
    assert topic not in admin(broker).list_topics(timeout=10).topics


def test_create_topic_validate_only(broker, topic):
    a = admin(broker)
    a.create_topics([NewTopic(topic, num_partitions=2)], validate_only=True)[topic].result(20)
    assert topic not in a.list_topics(timeout=10).topics


def test_cluster_metadata(broker, topic):
    create_topic(broker, topic, num_partitions=2)
    cluster = admin(broker).list_topics(timeout=10)
    [broker_meta] = cluster.brokers.values()
    assert (broker_meta.host, broker_meta.port) == ("127.0.0.1", broker.port)
    assert cluster.cluster_id
    assert cluster.controller_id == broker_meta.id
    check_single_node_partitions(cluster, topic, 2)


def test_describe_cluster(broker):
    client = admin(broker)
    description = client.describe_cluster(request_timeout=10).result()
    [node] = description.nodes
    assert (node.host, node.port) == ("127.0.0.1", broker.port)
    assert description.controller.id == node.id
    assert description.cluster_id


def test_describe_topics_has_topic_id(broker, topic):
    create_topic(broker, topic, num_partitions=2)
    client = admin(broker)
    futures = client.describe_topics(TopicCollection([topic]), request_timeout=10)
    description = futures[topic].result()
    assert description.name == topic
    assert description.topic_id is not None and str(description.topic_id) != ZERO_UUID
    assert [p.id for p in description.partitions] == [0, 1]
    for p in description.partitions:
        assert p.leader is not None and p.leader.port == broker.port
        assert [n.id for n in p.replicas] == [p.leader.id] == [n.id for n in p.isr]


def test_produce_auto_creates_topic(broker, topic):
    assert topic not in admin(broker).list_topics(timeout=10).topics
    base = base_timestamp_ms()
    log = produce_all(producer(broker), topic, [make_record(i, base) for i in range(10)])
    assert log.errors == []
    check_single_node_partitions(admin(broker).list_topics(topic, timeout=10), topic, 1)
    check_messages(consume_partition(broker, topic, 0, 10), base)


def test_auto_create_uses_num_partitions(make_broker):
    broker = make_broker({"num.partitions": 3})
    topic = unique_topic("auto-three")
    log = produce_all(producer(broker), topic, [(b"k", b"v", [], base_timestamp_ms())],
                      partition=-1)
    assert log.errors == []
    check_single_node_partitions(admin(broker).list_topics(topic, timeout=10), topic, 3)


def test_auto_create_disabled(make_broker):
    broker = make_broker({"auto.create.topics.enable": "false"})
    topic = unique_topic("no-auto")
    p = producer(broker, **{"message.timeout.ms": 3000})
    log = DeliveryLog()
    p.produce(topic, b"v", on_delivery=log)
    assert p.flush(15) == 0
    # librdkafka keeps waiting for the topic to appear until message.timeout.ms.
    assert [e.code() for e in log.errors] == [KafkaError._MSG_TIMED_OUT]
    meta = p.list_topics(topic, timeout=10).topics[topic]
    assert meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic not in admin(broker).list_topics(timeout=10).topics


def test_consumer_metadata_does_not_create_topic(broker, topic):
    c = consumer(broker)  # librdkafka consumers default to allow.auto.create.topics=false
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
    finally:
        c.close()
    assert meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic not in admin(broker).list_topics(timeout=10).topics


def test_authorized_operations_without_an_authorizer(broker, topic):
    # Without an authorizer Kafka reports every operation as allowed when they are asked for.
    create_topic(broker, topic, num_partitions=1)
    client = admin(broker)
    futures = client.describe_topics(TopicCollection([topic]), request_timeout=10,
                                     include_authorized_operations=True)
    operations = futures[topic].result().authorized_operations
    assert operations is not None
    assert {AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE} <= set(operations)
    cluster = client.describe_cluster(request_timeout=10, include_authorized_operations=True)
    assert AclOperation.IDEMPOTENT_WRITE in (cluster.result().authorized_operations or [])
