"""Broker restarts (clean and crash) keep the data; error cases clients must see."""

import signal
import time

import pytest
from kafka import TopicPartition, errors

from clients import (admin, check_records, consume_partition, consumer, make_record, produce_all,
                     producer)
from compat_support import base_timestamp_ms, unique_topic


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_data_survives_restart(make_broker, sig):
    broker = make_broker()
    base = base_timestamp_ms()
    topics = {unique_topic("restart-none"): None, unique_topic("restart-zstd"): "zstd"}
    for topic, codec in topics.items():
        p = producer(broker, compression_type=codec, acks="all", enable_idempotence=True)
        produce_all(p, topic, (make_record(i, base) for i in range(3000)))
        p.close()

    code = broker.stop(sig)
    if sig == signal.SIGTERM:
        assert broker.clean_exit(code), f"exit code {code} after SIGTERM"
    broker.start()

    for topic, codec in topics.items():
        check_records(consume_partition(broker, topic, 0, 3000), base)
        # Appends continue at the old end, with a new idempotent producer.
        p = producer(broker, compression_type=codec, enable_idempotence=True)
        offsets = produce_all(p, topic, (make_record(i, base) for i in range(3000, 3500)))
        p.close()
        assert offsets == [(0, i) for i in range(3000, 3500)]
        check_records(consume_partition(broker, topic, 0, 3500), base)
    assert set(topics) <= set(admin(broker).list_topics())


def test_message_too_large(broker, topic):
    # The client allows up to 5 MB, so the 2 MB batch reaches the broker, whose
    # message.max.bytes is 1 MiB + 12 by default: Produce answers MESSAGE_TOO_LARGE (10).
    p = producer(broker, max_request_size=5_000_000, enable_idempotence=False)
    future = p.send(topic, b"x" * 2_000_000, partition=0)
    p.flush(timeout=30)
    with pytest.raises(errors.MessageSizeTooLargeError):
        future.get(timeout=1)

    # The producer and the partition stay usable.
    assert produce_all(p, topic, [make_record(0, base_timestamp_ms())]) == [(0, 0)]
    p.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_idempotent_producer_continues_across_restart(make_broker, topic, sig):
    """The broker must remember the producer's sequence numbers (Kafka rebuilds them from the
    log and its snapshots), so the same producer keeps going without errors or duplicates."""
    broker = make_broker()
    base = base_timestamp_ms()
    p = producer(broker, enable_idempotence=True, delivery_timeout_ms=60000)
    assert produce_all(p, topic, (make_record(i, base) for i in range(1000)))[-1] == (0, 999)
    broker.stop(sig)
    broker.start()
    offsets = produce_all(p, topic, (make_record(i, base) for i in range(1000, 2000)))
    p.close()
    assert offsets == [(0, i) for i in range(1000, 2000)]
    check_records(consume_partition(broker, topic, 0, 2000), base)


def test_many_segments_survive_crash(make_broker, topic):
    broker = make_broker({"log.segment.bytes": 1048576})  # Kafka's minimum segment size
    base = base_timestamp_ms()
    records = [(b"k%d" % i, b"%06d" % i * 120, [], base + i) for i in range(12_000)]  # ~9 MB
    p = producer(broker, enable_idempotence=False, batch_size=64 * 1024)
    produce_all(p, topic, records)
    p.close()

    def check():
        values = [r.value for r in consume_partition(broker, topic, 0, 12_000)]
        assert values == [r[1] for r in records]
        assert [r.offset for r in consume_partition(broker, topic, 0, 4_321, 7_679)] == \
            list(range(7_679, 12_000))
        c = consumer(broker)
        try:
            tp = TopicPartition(topic, 0)
            for i in (0, 999, 5_000, 11_999):
                assert c.offsets_for_times({tp: base + i})[tp].offset == i
        finally:
            c.close()

    check()
    broker.stop(signal.SIGKILL)
    broker.start()
    check()


def test_timestamp_too_far_in_the_future(broker, topic):
    # message.timestamp.after.max.ms is 1 hour by default since Kafka 4.0 (KIP-1030).
    now = int(time.time() * 1000)
    p = producer(broker, enable_idempotence=False)
    assert produce_all(p, topic, [(None, b"later", [], now + 30 * 60 * 1000)]) == [(0, 0)]
    future = p.send(topic, b"too late", partition=0, timestamp_ms=now + 2 * 3600 * 1000)
    p.flush(timeout=30)
    with pytest.raises(errors.InvalidTimestampError):
        future.get(timeout=1)
    p.close()


def test_record_just_under_the_size_limit(broker, topic):
    p = producer(broker)
    value = bytes(range(256)) * 3900  # 998,400 bytes: one record batch just under 1 MiB
    assert produce_all(p, topic, [(b"big", value, [("h", b"v")], base_timestamp_ms())]) == [(0, 0)]
    p.close()
    [r] = consume_partition(broker, topic, 0, 1)
    assert r.value == value
