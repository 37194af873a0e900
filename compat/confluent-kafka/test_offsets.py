"""ListOffsets (watermarks, offsets_for_times, AdminClient.list_offsets) and fetch positions."""

import time

import pytest
from confluent_kafka import OFFSET_END, KafkaError, TopicPartition
from confluent_kafka.admin import OffsetSpec

from clients import admin, consume_partition, consumer, create_topic, produce_all, producer

COUNT = 100
MAX_AT = 60  # the offset whose timestamp is out of order and the largest


def timestamps(base):
    """base + 1 s per offset, except one record far in the future of the others."""
    return [base + 500_000 if i == MAX_AT else base + 1000 * i for i in range(COUNT)]


def is_eof(msg):
    error = msg.error() if msg is not None else None
    return error is not None and error.code() == KafkaError._PARTITION_EOF


@pytest.fixture
def timed_topic(broker, topic):
    """A topic holding COUNT records over several batches; returns (topic, base timestamp)."""
    base = int(time.time() * 1000) - 3_600_000
    records = [(b"k%d" % i, b"v%d" % i, [], ts) for i, ts in enumerate(timestamps(base))]
    p = producer(broker, **{"batch.num.messages": 7, "linger.ms": 1})
    assert produce_all(p, topic, records).errors == []
    return topic, base


def test_watermarks(broker, timed_topic):
    topic, _ = timed_topic
    c = consumer(broker)
    try:
        watermarks = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        assert watermarks == (0, COUNT)
    finally:
        c.close()


def test_offsets_for_times(broker, timed_topic):
    topic, base = timed_topic
    expected = {  # target timestamp -> first offset with a timestamp >= target
        base - 10_000: 0,
        base: 0,
        base + 50_000: 50,
        base + 50_500: 51,
        base + 70_500: MAX_AT,  # not 71: offset 60's timestamp is larger and comes first
        base + 500_000: MAX_AT,
        base + 500_001: OFFSET_END,  # no such record: -1
    }
    c = consumer(broker)
    try:
        for target, offset in expected.items():
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert tp.error is None
            assert tp.offset == offset, f"timestamp base{target - base:+d}"
    finally:
        c.close()


def test_admin_list_offsets(broker, timed_topic):
    topic, base = timed_topic
    tp = TopicPartition(topic, 0)
    specs = {
        "earliest": (OffsetSpec.earliest(), 0),
        "latest": (OffsetSpec.latest(), COUNT),
        "timestamp": (OffsetSpec.for_timestamp(base + 42_000), 42),
        "max_timestamp": (OffsetSpec.max_timestamp(), MAX_AT),
    }
    client = admin(broker)
    for name, (spec, offset) in specs.items():
        info = client.list_offsets({tp: spec}, request_timeout=10)[tp].result()
        assert info.offset == offset, name
        if name == "timestamp":
            assert info.timestamp == base + 42_000
        if name == "max_timestamp":
            assert info.timestamp == base + 500_000


def test_consume_from_middle_of_batch(broker, timed_topic):
    topic, _ = timed_topic
    messages = consume_partition(broker, topic, 0, COUNT - 37, start=37)
    assert [m.offset() for m in messages] == list(range(37, COUNT))
    assert messages[0].value() == b"v37"


def test_consume_from_end_sees_only_new_records(broker, timed_topic):
    topic, base = timed_topic
    c = consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        # The partition EOF event says the fetcher has resolved OFFSET_END and reached it.
        assert is_eof(c.poll(15)), "no partition EOF at the end"
        produce_all(producer(broker), topic, [(b"new", b"after-end", [], base)])
        msg = c.poll(15)
        assert msg is not None and msg.error() is None
        assert (msg.offset(), msg.value()) == (COUNT, b"after-end")
    finally:
        c.close()


def test_offset_out_of_range(broker, timed_topic):
    topic, _ = timed_topic
    c = consumer(broker)  # auto.offset.reset=error
    try:
        c.assign([TopicPartition(topic, 0, COUNT + 50)])
        msg = c.poll(15)
        while is_eof(msg):
            msg = c.poll(15)
        assert msg is not None and msg.error() is not None
        assert msg.error().code() == KafkaError._AUTO_OFFSET_RESET, msg.error()
        assert "Offset out of range" in msg.error().str()
    finally:
        c.close()


def test_offset_out_of_range_resets_to_earliest(broker, timed_topic):
    topic, _ = timed_topic
    messages = consume_partition(broker, topic, 0, COUNT, start=COUNT + 50,
                                 **{"auto.offset.reset": "earliest"})
    assert messages[0].offset() == 0


def test_offsets_of_an_empty_partition(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    tp = TopicPartition(topic, 0)
    c = consumer(broker)
    try:
        assert c.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 0)
        [found] = c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)
        assert found.offset == OFFSET_END
    finally:
        c.close()
    client = admin(broker)
    for spec, offset in [(OffsetSpec.earliest(), 0), (OffsetSpec.latest(), 0),
                         (OffsetSpec.max_timestamp(), -1)]:
        assert client.list_offsets({tp: spec}, request_timeout=10)[tp].result().offset == offset
