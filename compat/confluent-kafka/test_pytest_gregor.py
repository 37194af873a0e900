"""testing/python/pytest_gregor.py, the pytest plugin for applications tested against gregor,
used as an application's test suite would: the `gregor` fixture gives each test an empty broker
(reset, not restarted), the control plane's methods arm faults, read the journal, seed data,
await conditions, and take and restore snapshots. gregor only (Kafka has no control plane)."""

import os
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from clients import admin, consume_partition, create_topic, produce_all
from pytest_gregor import GregorError  # loaded as a plugin by conftest.py

# The plugin looks for --gregor-bin, $GREGOR_BIN, then PATH; the suite's binary by default.
os.environ.setdefault("GREGOR_BIN", str(Path(__file__).resolve().parents[2] / "target/release/gregor"))
pytestmark = pytest.mark.skipif(bool(os.environ.get("KAFKA_REFERENCE_LIBS")),
                                reason="Kafka has no control plane")


def produce(bootstrap, topic, values, **config):
    p = Producer({"bootstrap.servers": bootstrap, **config})
    errors = []
    for v in values:
        p.produce(topic, value=v, on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors


def test_a_test_leaves_a_topic_behind(gregor):
    produce(gregor.bootstrap, "left-behind", [b"x"])
    gregor.await_(topic="left-behind", partition=0, high_watermark=1)


def test_the_next_test_starts_empty(gregor):
    c = Consumer({"bootstrap.servers": gregor.bootstrap, "group.id": "empty-check"})
    try:
        topics = [t for t in c.list_topics(timeout=30).topics if not t.startswith("__")]
        assert topics == [], topics
    finally:
        c.close()


def test_faults_and_the_journal(gregor):
    rule = gregor.fault(api="Produce", topic="faulty", times=1, action="error",
                        error="NOT_LEADER_OR_FOLLOWER")
    produce(gregor.bootstrap, "faulty", [b"a", b"b"], **{"client.id": "plugin-producer",
                                                        "enable.idempotence": True})
    assert [f["fired"] for f in gregor.faults() if f["id"] == rule["id"]] == [1]
    produced = gregor.journal(client_id="plugin-producer", api="Produce")
    assert [e["fault"]["rule"] for e in produced if e["fault"]] == [rule["id"]], produced


def test_seed_then_await_and_read(gregor):
    gregor.seed({"topics": [{"name": "seeded", "partitions": 1,
                             "records": [{"value": "one"}, {"value": "two"}]}]})
    gregor.await_(topic="seeded", partition=0, high_watermark=2)
    c = Consumer({"bootstrap.servers": gregor.bootstrap, "group.id": "plugin-reader",
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition("seeded", 0, 0)])
        values = []
        while len(values) < 2:
            m = c.poll(10)
            assert m is not None, values
            values.append(m.value())
        assert values == [b"one", b"two"]
    finally:
        c.close()
    # A condition that does not come true in time: 408 with what was observed.
    with pytest.raises(GregorError) as e:
        gregor.await_(timeout_ms=50, topic="seeded", partition=0, high_watermark=3)
    assert e.value.status == 408, e.value


SNAP_TOPIC = "snap-orders"
SNAP_GROUP = "snap-billing"


def group_consume(bootstrap, count):
    """A member of SNAP_GROUP reads `count` records from where the group stands, commits past
    them and leaves; the (offset, value) pairs it read."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": SNAP_GROUP,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([SNAP_TOPIC])
        read = []
        deadline = time.monotonic() + 60
        while len(read) < count:
            assert time.monotonic() < deadline, f"read {read} of {count} before the deadline"
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            read.append((m.offset(), m.value()))
        c.commit(offsets=[TopicPartition(SNAP_TOPIC, 0, read[-1][0] + 1)], asynchronous=False)
        return read
    finally:
        c.close()


def broker_state(gregor):
    """What a snapshot must bring back, as a client sees it: the non-internal topics, the
    records of SNAP_TOPIC's partition with its high watermark, and SNAP_GROUP's committed
    offset there."""
    topics = sorted(t for t in admin(gregor).list_topics(timeout=30).topics
                    if not t.startswith("__"))
    c = Consumer({"bootstrap.servers": gregor.bootstrap, "group.id": SNAP_GROUP,
                  "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(SNAP_TOPIC, 0)], timeout=30)[0]
        assert committed.error is None, committed.error
        _, high = c.get_watermark_offsets(TopicPartition(SNAP_TOPIC, 0), timeout=30, cached=False)
    finally:
        c.close()
    records = [(m.offset(), m.value()) for m in consume_partition(gregor, SNAP_TOPIC, 0, high)]
    return {"topics": topics, "records": records, "high_watermark": high,
            "committed": committed.offset}


def test_snapshot_and_restore_round_trip(gregor):
    create_topic(gregor, SNAP_TOPIC, num_partitions=1)
    # Connected from before the snapshot to after each restore: it must reconnect and go on.
    producer = Producer({"bootstrap.servers": gregor.bootstrap, "client.id": "snap-producer",
                         "linger.ms": 5, "message.timeout.ms": 60000})
    values = [f"v{i}".encode() for i in range(10)]
    log = produce_all(producer, SNAP_TOPIC, [(None, v, None, 0) for v in values])
    assert not log.errors and log.delivered == [(0, i) for i in range(10)], log.delivered
    assert group_consume(gregor.bootstrap, 6) == list(enumerate(values[:6]))

    taken = gregor.snapshot("before-more")
    assert taken["name"] == "before-more", taken
    assert [s["name"] for s in gregor.snapshots()] == ["before-more"]
    at_snapshot = broker_state(gregor)
    assert at_snapshot == {"topics": [SNAP_TOPIC], "records": list(enumerate(values)),
                           "high_watermark": 10, "committed": 6}, at_snapshot

    # After the snapshot: more records, the group commits further, another topic.
    log = produce_all(producer, SNAP_TOPIC, [(None, b"later", None, 0)] * 5)
    assert not log.errors, log.errors
    assert [o for o, _ in group_consume(gregor.bootstrap, 8)] == list(range(6, 14))
    client = admin(gregor)  # must outlive the future
    client.create_topics([NewTopic("snap-extra", 2)])["snap-extra"].result(timeout=30)
    changed = broker_state(gregor)
    assert (changed["topics"], changed["high_watermark"], changed["committed"]) == \
        (["snap-extra", SNAP_TOPIC], 15, 14), changed

    for restore in (1, 2):
        restored = gregor.restore("before-more")
        assert restored["name"] == "before-more", restored
        assert broker_state(gregor) == at_snapshot, f"restore {restore}"
        # A member of the group resumes at the snapshot's committed offset.
        assert group_consume(gregor.bootstrap, 4) == [(i, values[i]) for i in range(6, 10)]
        # The producer's connection was closed by the restore: it reconnects, and its next
        # record goes after the snapshot's last.
        log = produce_all(producer, SNAP_TOPIC, [(None, f"after-{restore}".encode(), None, 0)])
        assert not log.errors and log.delivered == [(0, 10)], (log.delivered, log.errors)
        assert consume_partition(gregor, SNAP_TOPIC, 0, 1, start=10)[0].value() == \
            f"after-{restore}".encode()

    producer.flush(30)
    assert gregor.delete_snapshot("before-more") == {"deleted": "before-more"}
    assert gregor.snapshots() == []
    with pytest.raises(GregorError) as e:
        gregor.restore("before-more")
    assert e.value.status == 404, e.value


def test_an_idempotent_producer_that_wrote_after_the_snapshot_fails_after_a_restore(gregor):
    """A restore undoes writes, as a Kafka broker that lost acknowledged data would: an
    idempotent producer that wrote after the snapshot has sequence numbers ahead of the
    snapshot's, and librdkafka treats the broker's OUT_OF_ORDER_SEQUENCE_NUMBER as fatal. A new
    producer goes on from the snapshot's end."""
    create_topic(gregor, "snap-idempotent", num_partitions=1)
    config = {"bootstrap.servers": gregor.bootstrap, "enable.idempotence": True, "linger.ms": 5,
              "message.timeout.ms": 30000}
    p = Producer(config)
    assert produce_all(p, "snap-idempotent", [(None, b"kept", None, 0)]).delivered == [(0, 0)]
    gregor.snapshot("idempotent")
    assert produce_all(p, "snap-idempotent", [(None, b"undone", None, 0)]).delivered == [(0, 1)]
    gregor.restore("idempotent")
    p.produce("snap-idempotent", value=b"lost", partition=0)
    # Without an error_cb, confluent-kafka raises the fatal error from flush().
    with pytest.raises(KafkaException) as raised:
        p.flush(30)
    error = raised.value.args[0]
    assert error.fatal() and error.code() == KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, error

    log = produce_all(Producer(config), "snap-idempotent", [(None, b"next", None, 0)])
    assert log.delivered == [(0, 1)], (log.delivered, log.errors)
    values = [m.value() for m in consume_partition(gregor, "snap-idempotent", 0, 2)]
    assert values == [b"kept", b"next"]
    gregor.delete_snapshot("idempotent")
