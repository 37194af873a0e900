"""Produce and consume round trips: every codec, idempotence, each acks level, mixed codecs,
concurrent producers, tailing the log end and fetch size limits."""

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from clients import (check_messages, consume_partition, consumer, create_topic, produce_all,
                     producer)
from compat_support import base_timestamp_ms, make_record

RECORDS = 10_000


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_codec_round_trip(broker, topic, codec):
    base = base_timestamp_ms()
    p = producer(broker, **{"compression.type": codec, "acks": "all"})
    log = produce_all(p, topic, (make_record(i, base) for i in range(RECORDS)))
    assert log.errors == []
    assert log.delivered == [(0, i) for i in range(RECORDS)]

    messages = consume_partition(broker, topic, 0, RECORDS)
    check_messages(messages, base)


def test_idempotent_producer(broker, topic):
    base = base_timestamp_ms()
    config = {"enable.idempotence": True, "compression.type": "lz4", "linger.ms": 1,
              "batch.num.messages": 200}
    # Two producer sessions: the second gets a new producer id and starts its sequence at 0.
    for session in range(2):
        p = producer(broker, **config)
        records = (make_record(i, base) for i in range(session * 3000, (session + 1) * 3000))
        log = produce_all(p, topic, records)
        assert log.errors == []
        assert log.delivered == [(0, i) for i in range(session * 3000, (session + 1) * 3000)]

    check_messages(consume_partition(broker, topic, 0, 6000), base)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic, acks):
    base = base_timestamp_ms()
    p = producer(broker, **{"acks": acks, "compression.type": "gzip", "batch.num.messages": 100})
    log = produce_all(p, topic, (make_record(i, base) for i in range(2000)))
    assert log.errors == []
    if acks == "0":
        # No response, so librdkafka cannot know the offsets (reports OFFSET_INVALID).
        assert len(log.delivered) == 2000
    else:
        assert log.delivered == [(0, i) for i in range(2000)]

    check_messages(consume_partition(broker, topic, 0, 2000), base)


def test_consume_while_producing(broker, topic):
    """A consumer at the log end sees records as they arrive (long-poll Fetch, high watermark)."""
    base = base_timestamp_ms()
    produce_all(producer(broker), topic, [make_record(0, base)])
    c = consumer(broker, **{"fetch.wait.max.ms": 200})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        p = producer(broker, **{"linger.ms": 50})
        messages = []
        for i in range(1, 3000):
            p.produce(topic, partition=0, key=b"live", value=b"%d" % i, timestamp=base + i)
            if i % 100 == 0:
                p.poll(0)
                messages += [m for m in c.consume(100, timeout=0.05) if m.error() is None]
        p.flush(30)
        deadline = time.monotonic() + 30
        while len(messages) < 3000 and time.monotonic() < deadline:
            messages += [m for m in c.consume(1000, timeout=0.5) if m.error() is None]
    finally:
        c.close()
    assert [m.offset() for m in messages] == list(range(3000))
    assert [m.value() for m in messages[1:]] == [b"%d" % i for i in range(1, 3000)]


def test_fetch_smaller_than_a_batch(broker, topic):
    """A batch larger than the fetch limits still comes back whole (KIP-74): consumers progress."""
    base = base_timestamp_ms()
    p = producer(broker, **{"linger.ms": 50, "compression.type": "none"})
    log = produce_all(p, topic, [(b"k%d" % i, bytes([i]) * 5000, [], base + i) for i in range(40)])
    assert log.errors == []
    messages = consume_partition(broker, topic, 0, 40, **{
        "fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1024,
        "receive.message.max.bytes": 1_000_000})
    assert [m.value() for m in messages] == [bytes([i]) * 5000 for i in range(40)]


def test_fetch_limit_inside_a_batch(broker, topic):
    """gregor cuts a partition's data where the fetch limit falls, as Kafka does, so responses end
    in part of a batch: librdkafka drops it and fetches it again from there."""
    base = base_timestamp_ms()
    for n, codec in enumerate(["lz4", "none"]):
        p = producer(broker, **{"compression.type": codec, "linger.ms": 50})
        for b in range(20):  # batches of 50 records, about 8 KB uncompressed
            first = (n * 20 + b) * 50
            log = produce_all(p, topic, (make_record(i, base) for i in range(first, first + 50)))
            assert log.errors == []
    messages = consume_partition(broker, topic, 0, 2000, **{"max.partition.fetch.bytes": 25001})
    check_messages(messages, base)


def test_mixed_codecs_in_one_partition(broker, topic):
    base = base_timestamp_ms()
    for n, codec in enumerate(["gzip", "none", "zstd", "snappy", "lz4", "none"]):
        p = producer(broker, **{"compression.type": codec})
        log = produce_all(p, topic, (make_record(i, base) for i in range(n * 500, n * 500 + 500)))
        assert log.errors == [] and log.delivered[0] == (0, n * 500)
    check_messages(consume_partition(broker, topic, 0, 3000), base)


def test_concurrent_producers(broker, topic):
    """Four producers (idempotent or not, different codecs) write two partitions at once."""
    create_topic(broker, topic, num_partitions=2)
    base = base_timestamp_ms()

    def run(n):
        p = producer(broker, **{"enable.idempotence": n < 2,
                                "compression.type": ["none", "gzip", "lz4", "zstd"][n]})
        records = [(b"p%d" % n, b"%d" % i, [], base + i) for i in range(2500)]
        return produce_all(p, topic, records, partition=n % 2)

    with ThreadPoolExecutor(4) as pool:
        assert all(log.errors == [] for log in pool.map(run, range(4)))
    for partition in range(2):
        values = defaultdict(list)
        for m in consume_partition(broker, topic, partition, 5000):
            values[m.key()].append(m.value())
        assert sorted(values) == [b"p%d" % n for n in range(4) if n % 2 == partition]
        assert all(v == [b"%d" % i for i in range(2500)] for v in values.values())
