"""kafka-python 3.0's transactional producer: a committed transaction is read by a
read_committed consumer, an aborted one is not (but is by read_uncommitted), and a second
producer with the same transactional id fences the first. Passes against Apache Kafka 4.4 and
gregor."""

import time

import pytest
from kafka import TopicPartition, errors

from clients import consumer, create_topic, producer


def read_all(broker, topic, isolation_level, expect):
    """The values of partition 0 as a consumer of `isolation_level` reads them, once it has
    `expect` of them (control records take offsets but are never returned)."""
    c = consumer(broker, isolation_level=isolation_level, auto_offset_reset="earliest")
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        values = []
        deadline = time.monotonic() + 30
        while len(values) < expect and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
        # Nothing more follows: one more poll returns no record.
        assert not c.poll(timeout_ms=500), values
        return values
    finally:
        c.close()


def test_commit_abort_and_fencing(broker, topic):
    create_topic(broker, topic, num_partitions=1)
    p = producer(broker, transactional_id=f"{topic}-txn")
    p.init_transactions()
    p.begin_transaction()
    for i in range(5):
        p.send(topic, b"committed-%d" % i)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic, b"aborted")
    p.flush()
    p.abort_transaction()

    committed = [b"committed-%d" % i for i in range(5)]
    assert read_all(broker, topic, "read_committed", 5) == committed
    assert read_all(broker, topic, "read_uncommitted", 6) == committed + [b"aborted"]

    # A second producer with the same id fences the first: its next transaction fails.
    zombie = p
    successor = producer(broker, transactional_id=f"{topic}-txn")
    successor.init_transactions()
    zombie.begin_transaction()
    zombie.send(topic, b"zombie")
    with pytest.raises(errors.KafkaError):
        zombie.commit_transaction()
    successor.begin_transaction()
    successor.send(topic, b"successor")
    successor.commit_transaction()
    assert read_all(broker, topic, "read_committed", 6) == committed + [b"successor"]
