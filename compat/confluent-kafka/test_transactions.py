"""Transactions through librdkafka: commit and abort read back per isolation level, the last
stable offset of an open transaction, send_offsets_to_transaction, a fenced zombie, and a
transaction the coordinator aborts after its timeout."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from clients import consumer, create_topic, producer

TIMEOUT = 30


def transactional(broker, transactional_id, **config):
    p = producer(broker, **{"transactional.id": transactional_id, **config})
    p.init_transactions(TIMEOUT)
    return p


def send(p, topic, values, partition=0):
    for value in values:
        p.produce(topic, value=value.encode(), partition=partition)
    assert p.flush(TIMEOUT) == 0


def values(kind, n):
    return [f"{kind}-{i}" for i in range(n)]


def read(broker, topic, isolation, partition=0, expected=None, timeout=TIMEOUT):
    """Every value of the partition from the beginning up to the end the consumer sees (its EOF);
    with `expected`, keeps reading until that many arrived or the timeout passed."""
    c = consumer(broker, **{"isolation.level": isolation, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is None:
                out.append(m.value().decode())
            elif m.error().code() == KafkaError._PARTITION_EOF:
                if expected is None or len(out) >= expected:
                    break
            else:
                raise AssertionError(f"consume error: {m.error()}")
        return out
    finally:
        c.close()


def high_watermark(broker, topic, isolation):
    """The partition's end as a consumer of that isolation level sees it (the LSO for
    read_committed)."""
    c = consumer(broker, **{"isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    finally:
        c.close()


def test_commit_and_abort(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    p = transactional(broker, topic + "-txn")
    for kind in ("c1", "a", "c2"):
        p.begin_transaction()
        send(p, topic, values(kind, 10))
        if kind == "a":
            p.abort_transaction(TIMEOUT)
        else:
            p.commit_transaction(TIMEOUT)
    assert read(broker, topic, "read_committed", expected=20) == values("c1", 10) + values("c2", 10)
    assert read(broker, topic, "read_uncommitted", expected=30) == \
        values("c1", 10) + values("a", 10) + values("c2", 10)
    # 30 records and one marker per transaction.
    assert high_watermark(broker, topic, "read_committed") == 33
    assert high_watermark(broker, topic, "read_uncommitted") == 33


def test_open_transaction_holds_read_committed(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    txn = transactional(broker, topic + "-txn")
    txn.begin_transaction()
    send(txn, topic, values("txn", 5))
    plain = producer(broker, **{"enable.idempotence": True})
    send(plain, topic, values("plain", 5))
    assert high_watermark(broker, topic, "read_committed") == 0
    assert high_watermark(broker, topic, "read_uncommitted") == 10
    assert read(broker, topic, "read_committed", timeout=3) == []
    txn.commit_transaction(TIMEOUT)
    assert read(broker, topic, "read_committed", expected=10) == values("txn", 5) + values("plain", 5)


def test_send_offsets_to_transaction(broker, topic):
    source, sink, group = topic, topic + "-out", topic + "-group"
    create_topic(broker, source, num_partitions=1)
    create_topic(broker, sink, num_partitions=1)
    send(producer(broker), source, values("in", 20))
    c = consumer(broker, **{"group.id": group, "isolation.level": "read_committed",
                            "auto.offset.reset": "earliest", "enable.partition.eof": False})
    p = transactional(broker, topic + "-txn")
    try:
        c.subscribe([source])
        for round_no in range(2):
            batch = []
            deadline = time.monotonic() + TIMEOUT
            while len(batch) < 10 and time.monotonic() < deadline:
                for m in c.consume(num_messages=10 - len(batch), timeout=0.5):
                    assert m.error() is None, m.error()
                    batch.append(m)
            assert len(batch) == 10
            p.begin_transaction()
            send(p, sink, ["out-" + m.value().decode()[3:] for m in batch])
            p.send_offsets_to_transaction(
                [TopicPartition(source, 0, batch[-1].offset() + 1)], c.consumer_group_metadata(), TIMEOUT)
            if round_no == 0:
                p.commit_transaction(TIMEOUT)
            else:
                p.abort_transaction(TIMEOUT)
        [committed] = c.committed([TopicPartition(source, 0)], timeout=10)
        assert committed.offset == 10, "the aborted transaction's offsets must not count"
    finally:
        c.close()
    assert read(broker, sink, "read_committed", expected=10) == values("out", 10)


def test_zombie_is_fenced(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    zombie = transactional(broker, topic + "-txn")
    zombie.begin_transaction()
    send(zombie, topic, values("zombie", 5))
    successor = transactional(broker, topic + "-txn")
    with pytest.raises(KafkaException) as fenced:
        zombie.commit_transaction(TIMEOUT)
    assert fenced.value.args[0].fatal(), fenced.value
    successor.begin_transaction()
    send(successor, topic, values("successor", 5))
    successor.commit_transaction(TIMEOUT)
    assert read(broker, topic, "read_committed", expected=5) == values("successor", 5)


def test_timed_out_transaction_is_aborted(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    stalled = transactional(broker, topic + "-txn",
                            **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000})
    stalled.begin_transaction()
    send(stalled, topic, values("stalled", 5))
    send(producer(broker), topic, ["after"])
    # The coordinator looks for timed-out transactions every
    # transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s by default).
    assert read(broker, topic, "read_committed", expected=1, timeout=60) == ["after"]
    with pytest.raises(KafkaException):
        stalled.commit_transaction(TIMEOUT)
