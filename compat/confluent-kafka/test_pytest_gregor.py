"""testing/python/pytest_gregor.py, the pytest plugin for applications tested against gregor,
used as an application's test suite would: the `gregor` fixture gives each test an empty broker
(reset, not restarted), the control plane's methods arm faults, read the journal, seed data and
await conditions. gregor only (Kafka has no control plane)."""

import os
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

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
