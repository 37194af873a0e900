"""Produce and consume round trips: every codec, idempotence, each acks level, mixed codecs,
concurrent producers, tailing the log end and fetch size limits."""

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka import TopicPartition

from clients import (check_records, consume_partition, consumer, create_topic, make_record,
                     produce_all, producer)
from compat_support import base_timestamp_ms

RECORDS = 10_000


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_codec_round_trip(broker, topic, codec):
    base = base_timestamp_ms()
    p = producer(broker, compression_type=None if codec == "none" else codec, acks="all",
                 enable_idempotence=False, batch_size=256 * 1024)
    offsets = produce_all(p, topic, (make_record(i, base) for i in range(RECORDS)))
    p.close()
    assert offsets == [(0, i) for i in range(RECORDS)]

    check_records(consume_partition(broker, topic, 0, RECORDS), base)


def test_idempotent_producer(broker, topic):
    base = base_timestamp_ms()
    # Two producer sessions: the second gets a new producer id and starts its sequence at 0.
    for session in range(2):
        indexes = range(session * 3000, (session + 1) * 3000)
        p = producer(broker, enable_idempotence=True, acks="all", compression_type="lz4",
                     batch_size=16 * 1024)
        offsets = produce_all(p, topic, (make_record(i, base) for i in indexes))
        p.close()
        assert offsets == [(0, i) for i in indexes]

    check_records(consume_partition(broker, topic, 0, 6000), base)


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, topic, acks):
    base = base_timestamp_ms()
    p = producer(broker, acks=acks, enable_idempotence=False, compression_type="gzip",
                 batch_size=8 * 1024)
    offsets = produce_all(p, topic, (make_record(i, base) for i in range(2000)))
    p.close()
    if acks == 0:
        assert len(offsets) == 2000  # no response: the offsets are made up by the client
    else:
        assert offsets == [(0, i) for i in range(2000)]

    check_records(consume_partition(broker, topic, 0, 2000), base)


def test_consume_while_producing(broker, topic):
    """A consumer at the log end sees records as they arrive (long-poll Fetch, high watermark)."""
    base = base_timestamp_ms()
    p = producer(broker, linger_ms=0, enable_idempotence=False)
    produce_all(p, topic, [make_record(0, base)])
    tp = TopicPartition(topic, 0)
    c = consumer(broker, fetch_max_wait_ms=200)
    records = []
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        for i in range(1, 3000):
            p.send(topic, key=b"live", value=b"%d" % i, partition=0, timestamp_ms=base + i)
            if i % 100 == 0:
                records += c.poll(timeout_ms=50).get(tp, [])
        p.flush(timeout=30)
        deadline = time.monotonic() + 30
        while len(records) < 3000 and time.monotonic() < deadline:
            records += c.poll(timeout_ms=500).get(tp, [])
    finally:
        c.close()
        p.close()
    assert [r.offset for r in records] == list(range(3000))
    assert [r.value for r in records[1:]] == [b"%d" % i for i in range(1, 3000)]


def test_fetch_smaller_than_a_batch(broker, topic):
    """A batch larger than the fetch limits still comes back whole (KIP-74): consumers progress."""
    base = base_timestamp_ms()
    p = producer(broker, linger_ms=50, batch_size=1_000_000)
    produce_all(p, topic, [(b"k%d" % i, bytes([i]) * 5000, [], base + i) for i in range(40)])
    p.close()
    records = consume_partition(broker, topic, 0, 40, fetch_max_bytes=1024,
                                max_partition_fetch_bytes=1024)
    assert [r.value for r in records] == [bytes([i]) * 5000 for i in range(40)]


def test_fetch_limit_inside_a_batch(broker, topic):
    """gregor cuts a partition's data where the fetch limit falls, as Kafka does, so responses end
    in part of a batch: the client drops it and fetches it again from there."""
    base = base_timestamp_ms()
    p = producer(broker, compression_type="lz4")
    for n in range(20):  # 20 batches of about 8 KB (uncompressed)
        produce_all(p, topic, (make_record(i, base) for i in range(n * 50, n * 50 + 50)))
    p.close()
    check_records(consume_partition(broker, topic, 0, 1000, max_partition_fetch_bytes=5001), base)
    p = producer(broker)
    for n in range(20, 40):
        produce_all(p, topic, (make_record(i, base) for i in range(n * 50, n * 50 + 50)))
    p.close()
    check_records(consume_partition(broker, topic, 0, 1000, start=1000,
                                    max_partition_fetch_bytes=25001), base, 1000, 1000)


def test_mixed_codecs_in_one_partition(broker, topic):
    base = base_timestamp_ms()
    for n, codec in enumerate(["gzip", None, "zstd", "snappy", "lz4", None]):
        p = producer(broker, compression_type=codec)
        records = (make_record(i, base) for i in range(n * 500, n * 500 + 500))
        offsets = produce_all(p, topic, records)
        p.close()
        assert offsets[0] == (0, n * 500)
    check_records(consume_partition(broker, topic, 0, 3000), base)


def test_concurrent_producers(broker, topic):
    """Four producers (idempotent or not, different codecs) write two partitions at once."""
    create_topic(broker, topic, num_partitions=2)
    base = base_timestamp_ms()

    def run(n):
        p = producer(broker, enable_idempotence=n < 2,
                     compression_type=[None, "gzip", "lz4", "zstd"][n])
        records = [(b"p%d" % n, b"%d" % i, [], base + i) for i in range(2500)]
        try:
            return produce_all(p, topic, records, partition=n % 2)
        finally:
            p.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, range(4)))
    for partition in range(2):
        values = defaultdict(list)
        for r in consume_partition(broker, topic, partition, 5000):
            values[r.key].append(r.value)
        assert sorted(values) == [b"p%d" % n for n in range(4) if n % 2 == partition]
        assert all(v == [b"%d" % i for i in range(2500)] for v in values.values())
