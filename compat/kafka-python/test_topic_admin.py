"""kafka-python's KafkaAdminClient through topic administration: create partitions, alter and
describe topic configs (incremental), delete records, delete topics, with the errors."""

import pytest
from kafka import TopicPartition, errors
from kafka.admin import ConfigResource, ConfigResourceType

from clients import admin, consumer, create_topic, make_record, produce_all, producer
from compat_support import base_timestamp_ms


def test_partitions_configs_records_and_deletion(broker, topic):
    create_topic(broker, topic, num_partitions=2, replication_factor=1)
    a = admin(broker)
    try:
        a.create_partitions({topic: 5})
        [meta] = a.describe_topics([topic])
        assert len(meta["partitions"]) == 5
        with pytest.raises(errors.InvalidPartitionsError):
            a.create_partitions({topic: 3})  # partitions only grow

        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000"})
        a.alter_configs([resource])
        got = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                 configs={"retention.ms": None})])
        assert "3600000" in repr(got), got

        p = producer(broker)
        base = base_timestamp_ms()
        produce_all(p, topic, (make_record(i, base) for i in range(10)), 0)
        p.close()
        a.delete_records({TopicPartition(topic, 0): 4})
        c = consumer(broker)
        try:
            tp = TopicPartition(topic, 0)
            assert c.beginning_offsets([tp])[tp] == 4
        finally:
            c.close()

        a.delete_topics([topic])
        assert topic not in a.list_topics()
        with pytest.raises(errors.UnknownTopicOrPartitionError):
            a.delete_topics([topic])
    finally:
        a.close()
