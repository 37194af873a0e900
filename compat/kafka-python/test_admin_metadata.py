"""KafkaAdminClient topic creation, cluster and topic metadata, topic auto-creation."""

import time
import uuid
from collections import defaultdict

import pytest
from kafka import TopicPartition, errors

from clients import (LOG_APPEND_TIME, admin, check_records, consume_partition, consumer,
                     create_topic, make_record, produce_all, producer)
from compat_support import base_timestamp_ms, unique_topic


def describe(broker, topic):
    [meta] = admin(broker).describe_topics([topic])
    return meta


def check_single_node_partitions(broker, topic, count):
    [broker_id] = [b["broker_id"] for b in admin(broker).describe_cluster()["brokers"]]
    meta = describe(broker, topic)
    assert meta["error_code"] == 0
    assert sorted(p["partition_index"] for p in meta["partitions"]) == list(range(count))
    for p in meta["partitions"]:
        assert p["error_code"] == 0
        assert p["leader_id"] == broker_id
        assert p["replica_nodes"] == p["isr_nodes"] == [broker_id]


def test_create_topic_and_produce_per_partition(broker, topic):
    admin(broker).create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
    check_single_node_partitions(broker, topic, 4)

    base = base_timestamp_ms()
    p = producer(broker, compression_type="snappy")
    for partition in range(4):
        records = (make_record(i, base) for i in range(partition * 1000, partition * 1000 + 700))
        assert produce_all(p, topic, records, partition) == [(partition, i) for i in range(700)]
    p.close()
    for partition in range(4):
        records = consume_partition(broker, topic, partition, 700)
        assert all(r.partition == partition for r in records)
        check_records(records, base, first_index=partition * 1000)

    # One consumer fetching all four partitions at once.
    tps = [TopicPartition(topic, partition) for partition in range(4)]
    c = consumer(broker)
    by_partition = defaultdict(list)
    try:
        c.assign(tps)
        c.seek_to_beginning(*tps)
        deadline = time.monotonic() + 30
        while sum(map(len, by_partition.values())) < 2800 and time.monotonic() < deadline:
            for tp, records in c.poll(timeout_ms=500).items():
                by_partition[tp.partition] += records
    finally:
        c.close()
    for partition in range(4):
        check_records(by_partition[partition], base, first_index=partition * 1000)


def test_keyed_records_stick_to_a_partition(broker, topic):
    admin(broker).create_topics({topic: {"num_partitions": 3}})
    base = base_timestamp_ms()
    records = [(f"user-{i % 20}".encode(), b"v%d" % i, [], base + i) for i in range(600)]
    delivered = produce_all(producer(broker), topic, records, partition=None)

    keys_by_partition = defaultdict(set)
    for partition in range(3):
        count = sum(1 for part, _ in delivered if part == partition)
        if count:
            for r in consume_partition(broker, topic, partition, count):
                keys_by_partition[r.key].add(partition)
    assert len(keys_by_partition) == 20
    assert all(len(parts) == 1 for parts in keys_by_partition.values())
    assert len({next(iter(p)) for p in keys_by_partition.values()}) > 1


def test_create_topic_with_broker_defaults(broker, topic):
    [created] = admin(broker).create_topics([topic])["topics"]  # partitions and replication -1
    check_single_node_partitions(broker, topic, 1)
    assert (created["name"], created["error_code"]) == (topic, 0)
    assert (created["num_partitions"], created["replication_factor"]) == (1, 1)
    assert uuid.UUID(created["topic_id"]) == uuid.UUID(describe(broker, topic)["topic_id"])


def test_create_topic_success_has_null_error_message(broker, topic):
    [created] = admin(broker).create_topics([topic])["topics"]
    assert created["error_code"] == 0
    assert created["error_message"] is None


def test_create_topic_returns_its_configs(broker, topic):
    # CreateTopics v5+ answers with the new topic's effective configs (KIP-525).
    result = admin(broker).create_topics({topic: {"configs": {"retention.ms": "3600000"}}})
    [created] = result["topics"]
    configs = {name: c["value"] for name, c in (created.get("configs") or {}).items()}
    assert configs.get("retention.ms") == "3600000"
    assert configs.get("cleanup.policy") == "delete"
    assert configs.get("max.message.bytes") == "1048588"


CREATE_ERRORS = [
    ("exists", {"num_partitions": 1}, errors.TopicAlreadyExistsError),
    ("collides", {"num_partitions": 1}, errors.InvalidTopicError),  # "a.b" vs "a_b"
    ("bad-name", {"num_partitions": 1}, errors.InvalidTopicError),
    ("too-long", {"num_partitions": 1}, errors.InvalidTopicError),
    ("zero-partitions", {"num_partitions": 0}, errors.InvalidPartitionsError),
    ("replication-3", {"num_partitions": 1, "replication_factor": 3},
     errors.InvalidReplicationFactorError),
]


@pytest.mark.parametrize("case, spec, expected", CREATE_ERRORS, ids=[c[0] for c in CREATE_ERRORS])
def test_create_topic_errors(broker, topic, case, spec, expected):
    existing, name = {
        "exists": (topic, topic),
        "collides": (topic + ".x", topic + "_x"),
        "bad-name": (None, "no spaces allowed!"),
        "too-long": (None, "t" * 250),
    }.get(case, (None, topic))
    if existing:
        admin(broker).create_topics({existing: {"num_partitions": 1}})
    with pytest.raises(expected):
        admin(broker).create_topics({name: spec})
    if name != existing:
        assert name not in admin(broker).list_topics()


def test_topic_configs_apply(broker, topic):
    create_topic(broker, topic, num_partitions=1,
                 configs={"max.message.bytes": "2000", "message.timestamp.type": "LogAppendTime"})
    p = producer(broker, enable_idempotence=False)
    too_big = p.send(topic, b"x" * 5000, partition=0)
    p.flush(timeout=30)
    with pytest.raises(errors.MessageSizeTooLargeError):
        too_big.get(timeout=1)
    assert produce_all(p, topic, [(None, b"y" * 1000, [], 1_000_000)]) == [(0, 0)]
    p.close()
    # A compressed batch: the broker rewrites only the batch header (max timestamp and CRC).
    # All ten records are queued long before the linger ends, and flush() sends them as one
    # batch (with 100 ms a stall between two send() calls on a busy machine could split them).
    lz4 = producer(broker, compression_type="lz4", linger_ms=10000)
    records = [(None, b"z%d" % i, [], 1_000_000 + i) for i in range(10)]
    assert produce_all(lz4, topic, records) == [(0, i) for i in range(1, 11)]
    lz4.close()

    records = consume_partition(broker, topic, 0, 11)  # check_crcs is on by default
    assert [r.value for r in records] == [b"y" * 1000] + [b"z%d" % i for i in range(10)]
    assert {r.timestamp_type for r in records} == {LOG_APPEND_TIME}
    assert len({r.timestamp for r in records[1:]}) == 1, "one batch, one append time"
    assert all(abs(r.timestamp - time.time() * 1000) < 120_000 for r in records), \
        "LogAppendTime is the broker's clock"


@pytest.mark.parametrize("config", [{"no.such.config": "1"}, {"cleanup.policy": "bogus"},
                                    {"retention.ms": "soon"}, {"segment.bytes": "100"}],
                         ids=lambda config: "=".join(*config.items()))
def test_create_topic_invalid_config(broker, topic, config):
    with pytest.raises(errors.InvalidConfigurationError):
        create_topic(broker, topic, num_partitions=1, configs=config)
    assert topic not in admin(broker).list_topics()


def test_create_topic_validate_only(broker, topic):
    a = admin(broker)
    result = a.create_topics({topic: {"num_partitions": 2}}, validate_only=True)
    assert [t["error_code"] for t in result["topics"]] == [0]
    assert topic not in a.list_topics()


def test_describe_cluster(broker, topic):
    cluster = admin(broker).describe_cluster()
    [b] = cluster["brokers"]
    assert (b["host"], b["port"]) == ("127.0.0.1", broker.port)
    assert cluster["controller_id"] == b["broker_id"]
    assert cluster["cluster_id"]


def test_describe_topics_has_topic_id(broker, topic):
    admin(broker).create_topics({topic: {"num_partitions": 2}})
    meta = describe(broker, topic)
    assert meta["name"] == topic
    assert meta["topic_id"] is not None and uuid.UUID(meta["topic_id"]).int != 0
    assert meta["is_internal"] is False
    check_single_node_partitions(broker, topic, 2)


def test_list_topics(broker, topic):
    admin(broker).create_topics({topic: {"num_partitions": 1}})
    assert topic in admin(broker).list_topics()


def test_metadata_for_unknown_topic_does_not_create_it(broker, topic):
    meta = describe(broker, topic)  # the admin client sends allow_auto_topic_creation=false
    assert meta["error_code"] == errors.UnknownTopicOrPartitionError.errno
    assert topic not in admin(broker).list_topics()


def test_produce_auto_creates_topic(broker, topic):
    assert topic not in admin(broker).list_topics()
    base = base_timestamp_ms()
    assert produce_all(producer(broker), topic, [make_record(i, base) for i in range(10)]) == \
        [(0, i) for i in range(10)]
    check_single_node_partitions(broker, topic, 1)
    check_records(consume_partition(broker, topic, 0, 10), base)


def test_auto_create_uses_num_partitions(make_broker):
    broker = make_broker({"num.partitions": 3})
    topic = unique_topic("auto-three")
    produce_all(producer(broker), topic, [(b"k", b"v", [], base_timestamp_ms())], partition=None)
    check_single_node_partitions(broker, topic, 3)


def test_auto_create_disabled(make_broker):
    broker = make_broker({"auto.create.topics.enable": "false"})
    topic = unique_topic("no-auto")
    p = producer(broker, max_block_ms=3000)
    with pytest.raises(errors.KafkaTimeoutError):  # waits for metadata that never comes
        p.send(topic, b"v")
    p.close(timeout=5)
    assert describe(broker, topic)["error_code"] == errors.UnknownTopicOrPartitionError.errno


def test_authorized_operations_without_an_authorizer(broker, topic):
    # describe_topics asks for them; without an authorizer Kafka reports every operation allowed.
    admin(broker).create_topics({topic: {"num_partitions": 1}})
    operations = describe(broker, topic)["authorized_operations"]
    assert {"READ", "WRITE", "DESCRIBE"} <= set(operations or [])
