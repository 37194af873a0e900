"""ListOffsets (beginning/end offsets, offsets_for_times, list_partition_offsets) and fetch
positions."""

import time

import pytest
from kafka import TopicPartition, errors
from kafka.admin import OffsetSpec

from clients import admin, consume_partition, consumer, create_topic, produce_all, producer

COUNT = 100
MAX_AT = 60  # the offset whose timestamp is out of order and the largest


def timestamps(base):
    """base + 1 s per offset, except one record far in the future of the others."""
    return [base + 500_000 if i == MAX_AT else base + 1000 * i for i in range(COUNT)]


@pytest.fixture
def timed_topic(broker, topic):
    """A topic holding COUNT records over several batches; returns (topic, base timestamp)."""
    base = int(time.time() * 1000) - 3_600_000
    records = [(b"k%d" % i, b"v%d" % i, [], ts) for i, ts in enumerate(timestamps(base))]
    p = producer(broker, batch_size=100, linger_ms=1)
    produce_all(p, topic, records)
    p.close()
    return topic, base


def test_beginning_and_end_offsets(broker, timed_topic):
    tp = TopicPartition(timed_topic[0], 0)
    c = consumer(broker)
    try:
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: COUNT}
    finally:
        c.close()


def test_offsets_for_times(broker, timed_topic):
    topic, base = timed_topic
    tp = TopicPartition(topic, 0)
    expected = {  # target timestamp -> (offset, timestamp) of the first record at or after it
        base - 10_000: (0, base),
        base: (0, base),
        base + 50_000: (50, base + 50_000),
        base + 50_500: (51, base + 51_000),
        base + 70_500: (MAX_AT, base + 500_000),  # not 71: offset 60 is later and comes first
        base + 500_000: (MAX_AT, base + 500_000),
        base + 500_001: None,
    }
    c = consumer(broker)
    try:
        for target, want in expected.items():
            found = c.offsets_for_times({tp: target})[tp]
            got = None if found is None else (found.offset, found.timestamp)
            assert got == want, f"timestamp base{target - base:+d}"
    finally:
        c.close()


def test_admin_list_partition_offsets(broker, timed_topic):
    topic, base = timed_topic
    tp = TopicPartition(topic, 0)
    specs = {
        "earliest": (OffsetSpec.EARLIEST, 0, -1),
        "latest": (OffsetSpec.LATEST, COUNT, -1),
        "timestamp": (base + 42_000, 42, base + 42_000),
        "max_timestamp": (OffsetSpec.MAX_TIMESTAMP, MAX_AT, base + 500_000),
    }
    a = admin(broker)
    for name, (spec, offset, timestamp) in specs.items():
        result = a.list_partition_offsets({tp: spec})[tp]
        assert (result.offset, result.timestamp) == (offset, timestamp), name


def test_consume_from_middle_of_batch(broker, timed_topic):
    records = consume_partition(broker, timed_topic[0], 0, COUNT - 37, start=37)
    assert [r.offset for r in records] == list(range(37, COUNT))
    assert records[0].value == b"v37"


def test_consume_from_end_sees_only_new_records(broker, timed_topic):
    topic, base = timed_topic
    tp = TopicPartition(topic, 0)
    c = consumer(broker)
    try:
        c.assign([tp])
        c.seek_to_end(tp)
        assert c.position(tp) == COUNT
        p = producer(broker)
        produce_all(p, topic, [(b"new", b"after-end", [], base)])
        p.close()
        records = c.poll(timeout_ms=10000).get(tp, [])
        assert [(r.offset, r.value) for r in records] == [(COUNT, b"after-end")]
    finally:
        c.close()


def test_offset_out_of_range(broker, timed_topic):
    tp = TopicPartition(timed_topic[0], 0)
    c = consumer(broker)  # auto_offset_reset="none"
    try:
        c.assign([tp])
        c.seek(tp, COUNT + 50)
        with pytest.raises(errors.OffsetOutOfRangeError):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                c.poll(timeout_ms=500)
    finally:
        c.close()


def test_offset_out_of_range_resets_to_earliest(broker, timed_topic):
    records = consume_partition(broker, timed_topic[0], 0, COUNT, start=COUNT + 50,
                                auto_offset_reset="earliest")
    assert records[0].offset == 0


def test_offsets_of_an_empty_partition(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    tp = TopicPartition(topic, 0)
    c = consumer(broker)
    try:
        assert c.beginning_offsets([tp]) == c.end_offsets([tp]) == {tp: 0}
        assert c.offsets_for_times({tp: 0}) == {tp: None}
    finally:
        c.close()
    a = admin(broker)
    for spec, offset in [(OffsetSpec.EARLIEST, 0), (OffsetSpec.LATEST, 0),
                         (OffsetSpec.MAX_TIMESTAMP, -1)]:
        assert a.list_partition_offsets({tp: spec})[tp].offset == offset
