"""Broker restarts (clean and crash) keep the data; error cases clients must see."""

import signal
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

from clients import (DeliveryLog, admin, check_messages, consume_partition, consumer, produce_all,
                     producer)
from compat_support import base_timestamp_ms, make_record, unique_topic


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_data_survives_restart(make_broker, sig):
    broker = make_broker()
    base = base_timestamp_ms()
    topics = {unique_topic("restart-none"): "none", unique_topic("restart-zstd"): "zstd"}
    for topic, codec in topics.items():
        p = producer(broker, **{"compression.type": codec, "acks": "all",
                                "enable.idempotence": True})
        assert produce_all(p, topic, (make_record(i, base) for i in range(3000))).errors == []

    code = broker.stop(sig)
    if sig == signal.SIGTERM:
        assert broker.clean_exit(code), f"exit code {code} after SIGTERM"
    broker.start()

    for topic, codec in topics.items():
        check_messages(consume_partition(broker, topic, 0, 3000), base)
        # Appends continue at the old end, with a new idempotent producer.
        p = producer(broker, **{"compression.type": codec, "enable.idempotence": True})
        log = produce_all(p, topic, (make_record(i, base) for i in range(3000, 3500)))
        assert log.errors == [] and log.delivered[0] == (0, 3000)
        check_messages(consume_partition(broker, topic, 0, 3500), base)
    assert set(topics) <= set(admin(broker).list_topics(timeout=10).topics)


def test_message_too_large(broker, topic):
    # The client allows up to 5 MB, so the 2 MB batch reaches the broker, whose
    # message.max.bytes is 1 MiB + 12 by default: Produce answers MESSAGE_TOO_LARGE (10).
    p = producer(broker, **{"message.max.bytes": 5_000_000, "compression.type": "none"})
    log = DeliveryLog()
    p.produce(topic, b"x" * 2_000_000, partition=0, on_delivery=log)
    assert p.flush(30) == 0
    assert [e.code() for e in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]

    # The producer and the partition stay usable.
    small = produce_all(p, topic, [make_record(0, base_timestamp_ms())])
    assert small.errors == [] and small.delivered == [(0, 0)]


def test_produce_to_invalid_topic_name(broker):
    p = producer(broker, **{"message.timeout.ms": 5000})
    log = DeliveryLog()
    p.produce("bad topic name!", b"v", on_delivery=log)
    assert p.flush(30) == 0
    assert [e.code() for e in log.errors] == [KafkaError.TOPIC_EXCEPTION]
    assert "bad topic name!" not in admin(broker).list_topics(timeout=10).topics


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_idempotent_producer_continues_across_restart(make_broker, topic, sig):
    """The broker must remember the producer's sequence numbers (Kafka rebuilds them from the
    log and its snapshots), so the same producer keeps going without errors or duplicates."""
    broker = make_broker()
    base = base_timestamp_ms()
    p = producer(broker, **{"enable.idempotence": True, "message.timeout.ms": 60000})
    assert produce_all(p, topic, (make_record(i, base) for i in range(1000))).errors == []
    broker.stop(sig)
    broker.start()
    log = produce_all(p, topic, (make_record(i, base) for i in range(1000, 2000)))
    assert log.errors == []
    assert log.delivered == [(0, i) for i in range(1000, 2000)]
    check_messages(consume_partition(broker, topic, 0, 2000), base)


def test_many_segments_survive_crash(make_broker, topic):
    broker = make_broker({"log.segment.bytes": 1048576})  # Kafka's minimum segment size
    base = base_timestamp_ms()
    records = [(b"k%d" % i, b"%06d" % i * 120, [], base + i) for i in range(12_000)]  # ~9 MB
    p = producer(broker, **{"compression.type": "none", "batch.num.messages": 500})
    assert produce_all(p, topic, records).errors == []

    def check():
        messages = consume_partition(broker, topic, 0, 12_000)
        assert [m.value() for m in messages] == [r[1] for r in records]
        assert [m.offset() for m in consume_partition(broker, topic, 0, 4_321, 7_679)] == \
            list(range(7_679, 12_000))
        c = consumer(broker)
        try:
            for i in (0, 999, 5_000, 11_999):
                [tp] = c.offsets_for_times([TopicPartition(topic, 0, base + i)], timeout=10)
                assert tp.offset == i
        finally:
            c.close()

    check()
    broker.stop(signal.SIGKILL)
    broker.start()
    check()


def test_timestamp_too_far_in_the_future(broker, topic):
    # message.timestamp.after.max.ms is 1 hour by default since Kafka 4.0 (KIP-1030).
    now = int(time.time() * 1000)
    p = producer(broker, **{"compression.type": "none"})
    log = DeliveryLog()
    p.produce(topic, b"later", partition=0, timestamp=now + 30 * 60 * 1000, on_delivery=log)
    assert p.flush(30) == 0
    p.produce(topic, b"too late", partition=0, timestamp=now + 2 * 3600 * 1000, on_delivery=log)
    assert p.flush(30) == 0
    assert log.delivered == [(0, 0)]
    assert [e.code() for e in log.errors] == [KafkaError.INVALID_TIMESTAMP]


def test_record_just_under_the_size_limit(broker, topic):
    p = producer(broker, **{"compression.type": "none"})
    value = bytes(range(256)) * 3900  # 998,400 bytes: one record batch just under 1 MiB
    log = produce_all(p, topic, [(b"big", value, [("h", b"v")], base_timestamp_ms())])
    assert log.errors == [] and log.delivered == [(0, 0)]
    [m] = consume_partition(broker, topic, 0, 1)
    assert m.value() == value
