"""Topic administration through confluent-kafka's AdminClient: delete topics, create partitions,
describe / alter / incremental-alter configs (topics and the broker), delete records, describe
cluster, list offsets by timestamp, and the produce-time rules topic configs enforce. Each error
case checks the KafkaError code Kafka gives."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, OffsetSpec, ResourceType)

from clients import admin, consume_partition, create_topic, produce_all, producer
from compat_support import base_timestamp_ms, make_record


def error_of(future):
    """The KafkaError code a failed admin future carries; fails the test if it succeeded."""
    with pytest.raises(KafkaException) as e:
        future.result(timeout=20)
    return e.value.args[0].code()


def fill(broker, topic, count, partition=0):
    base = base_timestamp_ms()
    log = produce_all(producer(broker), topic, (make_record(i, base) for i in range(count)),
                      partition=partition)
    assert log.errors == []
    return base


def topic_configs(client, topic):
    r = ConfigResource(ResourceType.TOPIC, topic)
    return client.describe_configs([r])[r].result(timeout=20)


def test_delete_topics_removes_only_what_was_named(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=2, replication_factor=1)
    kept = topic + "-kept"
    create_topic(broker, kept, num_partitions=1, replication_factor=1)
    fill(broker, kept, 5)
    client.delete_topics([topic], operation_timeout=10)[topic].result(timeout=20)
    names = client.list_topics(timeout=10).topics
    assert topic not in names and kept in names
    assert error_of(client.delete_topics([topic])[topic]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    # The other topic kept its records; a new topic of the old name starts empty.
    assert len(consume_partition(broker, kept, 0, 5)) == 5
    create_topic(broker, topic, num_partitions=1, replication_factor=1)
    tp = TopicPartition(topic, 0)
    latest = client.list_offsets({tp: OffsetSpec.latest()})[tp].result(timeout=20)
    assert latest.offset == 0


def test_create_partitions_and_errors(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=2, replication_factor=1)
    client.create_partitions([NewPartitions(topic, 5)], validate_only=True)[topic].result(timeout=20)
    assert len(client.list_topics(topic, timeout=10).topics[topic].partitions) == 2
    client.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=20)
    assert len(client.list_topics(topic, timeout=10).topics[topic].partitions) == 4
    assert error_of(client.create_partitions([NewPartitions(topic, 3)])[topic]) == KafkaError.INVALID_PARTITIONS
    assert error_of(client.create_partitions([NewPartitions(topic, 4)])[topic]) == KafkaError.INVALID_PARTITIONS
    missing = topic + "-missing"
    assert (error_of(client.create_partitions([NewPartitions(missing, 4)])[missing])
            == KafkaError.UNKNOWN_TOPIC_OR_PART)
    fill(broker, topic, 3, partition=3)


def test_describe_configs_topic_and_broker(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1,
                 config={"retention.ms": "123456"})
    configs = topic_configs(client, topic)
    assert configs["retention.ms"].value == "123456"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    node = str(client.describe_cluster().result(timeout=20).controller.id)
    b = ConfigResource(ResourceType.BROKER, node)
    broker_configs = client.describe_configs([b])[b].result(timeout=20)
    assert broker_configs["num.partitions"].value == "1"
    missing = ConfigResource(ResourceType.TOPIC, topic + "-missing")
    assert error_of(client.describe_configs([missing])[missing]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_alter_configs(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1,
                 config={"retention.ms": "1000000"})
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    client.incremental_alter_configs([r])[r].result(timeout=20)
    configs = topic_configs(client, topic)
    assert configs["segment.ms"].value == "3600000"
    assert configs["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT)])
    client.incremental_alter_configs([r])[r].result(timeout=20)
    assert topic_configs(client, topic)["cleanup.policy"].value == "delete"


@pytest.mark.parametrize("name,value,op,code", [
    ("no.such.config", "1", AlterConfigOpType.SET, KafkaError.INVALID_CONFIG),
    ("retention.ms", "soon", AlterConfigOpType.SET, KafkaError.INVALID_CONFIG),
    ("segment.bytes", "10", AlterConfigOpType.SET, KafkaError.INVALID_CONFIG),
    ("retention.ms", "1", AlterConfigOpType.APPEND, KafkaError.INVALID_CONFIG),
])
def test_incremental_alter_configs_errors(broker, topic, name, value, op, code):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1)
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op)])
    assert error_of(client.incremental_alter_configs([r])[r]) == code
    # Nothing was changed.
    assert all(e.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
               for e in topic_configs(client, topic).values())


def test_alter_configs_unknown_topic_and_static_broker(broker, topic):
    client = admin(broker)
    missing = ConfigResource(ResourceType.TOPIC, topic + "-missing", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(client.incremental_alter_configs([missing])[missing]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    node = str(client.describe_cluster().result(timeout=20).controller.id)
    b = ConfigResource(ResourceType.BROKER, node, incremental_configs=[
        ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(client.incremental_alter_configs([b])[b]) == KafkaError.INVALID_REQUEST


def await_config(client, resource, name, wanted, timeout=15):
    """The config entry once it has the wanted value: Kafka applies dynamic broker configs
    asynchronously (through its metadata log); gregor at once."""
    deadline = time.monotonic() + timeout
    while True:
        entry = client.describe_configs([resource])[resource].result(timeout=20)[name]
        if entry.value == wanted or time.monotonic() > deadline:
            return entry
        time.sleep(0.1)


def test_dynamic_broker_config(broker, topic):
    client = admin(broker)
    node = str(client.describe_cluster().result(timeout=20).controller.id)
    big = "1099511627776"
    b = ConfigResource(ResourceType.BROKER, node, incremental_configs=[
        ConfigEntry("log.retention.bytes", big, incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([b])[b].result(timeout=20)
    r = ConfigResource(ResourceType.BROKER, node)
    try:
        entry = await_config(client, r, "log.retention.bytes", big)
        assert entry.value == big
        assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert not entry.is_read_only
        create_topic(broker, topic, num_partitions=1, replication_factor=1)
        t = ConfigResource(ResourceType.TOPIC, topic)
        assert await_config(client, t, "retention.bytes", big).value == big
    finally:
        undo = ConfigResource(ResourceType.BROKER, node, incremental_configs=[
            ConfigEntry("log.retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
        client.incremental_alter_configs([undo])[undo].result(timeout=20)
    assert await_config(client, r, "log.retention.bytes", "-1").value == "-1"


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_legacy_alter_configs_replaces_overrides(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1,
                 config={"retention.ms": "1000000"})
    r = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "7200000"})
    client.alter_configs([r])[r].result(timeout=20)
    configs = topic_configs(client, topic)
    assert configs["segment.ms"].value == "7200000"
    # AlterConfigs replaces the whole set: the earlier override is gone.
    assert configs["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    assert error_of(client.alter_configs([bad])[bad]) == KafkaError.INVALID_CONFIG
    assert topic_configs(client, topic)["segment.ms"].value == "7200000"


def test_max_message_bytes_applies_at_once(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1)
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([r])[r].result(timeout=20)
    errors = []
    p = producer(broker, **{"enable.idempotence": False, "acks": 1, "retries": 0})
    p.produce(topic, value=b"x" * 5000, partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_compacted_topic_refuses_records_without_key(broker, topic):
    create_topic(broker, topic, num_partitions=1, replication_factor=1,
                 config={"cleanup.policy": "compact"})
    results = []
    p = producer(broker, **{"enable.idempotence": False, "acks": 1, "retries": 0,
                            "compression.type": "zstd"})
    p.produce(topic, key=b"k", value=b"v", partition=0, on_delivery=lambda e, m: results.append(e))
    p.flush(20)
    p.produce(topic, value=b"no key", partition=0, on_delivery=lambda e, m: results.append(e))
    p.flush(20)
    assert results[0] is None
    assert results[1] is not None and results[1].code() == KafkaError.INVALID_RECORD


def test_delete_records(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1)
    fill(broker, topic, 10)
    tp = TopicPartition(topic, 0, 4)
    deleted = client.delete_records([tp])[tp].result(timeout=20)
    assert deleted.low_watermark == 4
    past = TopicPartition(topic, 0, 11)
    assert error_of(client.delete_records([past])[past]) == KafkaError.OFFSET_OUT_OF_RANGE
    earliest = client.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()})
    assert earliest[TopicPartition(topic, 0)].result(timeout=20).offset == 4
    messages = consume_partition(broker, topic, 0, 6)
    assert [m.offset() for m in messages] == list(range(4, 10))


def test_list_offsets_by_timestamp(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=1, replication_factor=1)
    fill(broker, topic, 5)
    tp = TopicPartition(topic, 0)
    messages = consume_partition(broker, topic, 0, 5)
    third = messages[2].timestamp()[1]
    found = client.list_offsets({tp: OffsetSpec.for_timestamp(third)})[tp].result(timeout=20)
    assert found.offset == 2
    newest = client.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=20)
    assert newest.offset == max(range(5), key=lambda i: (messages[i].timestamp()[1], -i))


def test_describe_cluster_and_topics(broker, topic):
    client = admin(broker)
    create_topic(broker, topic, num_partitions=3, replication_factor=1)
    cluster = client.describe_cluster().result(timeout=20)
    assert cluster.cluster_id
    assert len(cluster.nodes) == 1 and cluster.nodes[0].id == cluster.controller.id
    assert broker.bootstrap.endswith(f":{cluster.controller.port}")
    desc = client.describe_topics(TopicCollection([topic]))[topic].result(timeout=20)
    assert desc.name == topic and len(desc.partitions) == 3
    assert all(len(p.replicas) == 1 and len(p.isr) == 1 for p in desc.partitions)
