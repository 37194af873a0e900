"""gregor's test control plane with real clients: an idempotent producer retries through an
injected NOT_LEADER_OR_FOLLOWER and through a Produce whose answer is lost (the connection closed
after the write), and every record is read back exactly once; the journal shows what the client
sent. Seed data (`--seed` and `POST /v1/seed`) is read back as written: topics with their configs,
records with keys, values, headers and timestamps in their partitions, committed group offsets.

Kafka has no control plane, so these run against gregor only. What calibrates them is that an
injected error is answered as Kafka answers that error (Kafka's getErrorResponse, see
src/protocol/error_response.rs): librdkafka's reaction here (refresh metadata and retry on
NOT_LEADER_OR_FOLLOWER; reconnect and resend the same sequence numbers when a connection drops
with a request in flight, which the broker's idempotence deduplicates) is what it does against a
Kafka broker returning that error or dropping that connection.
"""

import os

import pytest
from confluent_kafka import Producer

from clients import admin, consume_partition, create_topic, produce_all

pytestmark = pytest.mark.skipif(bool(os.environ.get("KAFKA_REFERENCE_LIBS")),
                                reason="Kafka has no control plane")

CLIENT_ID = "control-plane-producer"


def arm(broker, rule):
    status, body = broker.admin("POST", "/v1/faults", rule)
    assert status == 200, body
    return body


def records(first, count):
    # timestamp 0: the producer stamps the current time.
    return [(str(i).encode(), str(i).encode(), None, 0) for i in range(first, first + count)]


def test_idempotent_producer_retries_through_injected_faults_without_duplicates(make_broker,
                                                                                 topic):
    b = make_broker(admin=True)
    create_topic(b, topic, num_partitions=1)
    p = Producer({"bootstrap.servers": b.bootstrap, "client.id": CLIENT_ID,
                  "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 60000})

    # Two NOT_LEADER_OR_FOLLOWER answers: librdkafka refreshes its metadata and retries.
    not_leader = arm(b, {"api": "Produce", "topic": topic, "times": 2,
                         "action": "error", "error": "NOT_LEADER_OR_FOLLOWER"})
    log = produce_all(p, topic, records(0, 50))
    assert not log.errors, log.errors

    # The write happens, the answer is lost: librdkafka reconnects and resends the batch with the
    # same producer id and sequence, which the broker answers as a duplicate without appending.
    lost = arm(b, {"api": "Produce", "topic": topic, "times": 1, "action": "close_after"})
    log = produce_all(p, topic, records(50, 50))
    assert not log.errors, log.errors

    status, body = b.admin("GET", "/v1/faults")
    assert status == 200, body
    fired = {r["id"]: r["fired"] for r in body["faults"]}
    assert fired == {not_leader["id"]: 2, lost["id"]: 1}, body

    # Exactly once: the 100 records at offsets 0-99 and nothing more.
    messages = consume_partition(b, topic, 0, 100)
    assert [int(m.value()) for m in messages] == list(range(100))
    assert [m.offset() for m in messages] == list(range(100))

    # The journal shows what the producer sent, and the answers it got.
    status, body = b.admin("GET", f"/v1/journal?client_id={CLIENT_ID}")
    assert status == 200, body
    entries = body["entries"]
    apis = [e["api"] for e in entries]
    for api in ("ApiVersions", "Metadata", "InitProducerId", "Produce"):
        assert api in apis, apis
    hello = next(e for e in entries if e["api"] == "ApiVersions" and e["api_version"] >= 3)
    assert hello["client_software_name"], hello
    produced = [e for e in entries if e["api"] == "Produce"]
    assert all(t["topic"] == topic for e in produced for t in e["topics"]), produced
    injected = [e for e in produced if e["fault"]]
    assert [e["fault"]["rule"] for e in injected] == [not_leader["id"]] * 2 + [lost["id"]]
    assert injected[0]["errors"] == ["NOT_LEADER_OR_FOLLOWER"], injected[0]
    assert injected[2]["outcome"] == "closed", injected[2]
    p.flush(10)


SEED_TOPIC = "seeded-orders"
SEED = {
    "topics": [{
        "name": SEED_TOPIC, "partitions": 3, "configs": {"retention.ms": "-1"},
        "records": [
            {"partition": 1, "key": "k0", "value": "first", "headers": {"source": "seed"},
             "timestamp": 1700000000000},
            {"partition": 1, "key": "k1", "value": {"id": 1, "tags": ["a"]},
             "timestamp": 1700000000001},
            {"partition": 1, "key": "k2", "value": None, "timestamp": 1700000000002},
            # No partition: where librdkafka's murmur2_random partitioner puts key "k5" (0 of 3).
            {"key": "k5", "value": "hashed"},
        ],
    }],
    "groups": [{"group": "seeded-billing",
                "offsets": [{"topic": SEED_TOPIC, "partition": 1, "offset": 2,
                             "metadata": "from the seed"}]}],
}


def check_seeded(b):
    """What SEED says is there, as confluent-kafka reads it."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import ConfigResource

    a = admin(b)
    md = a.list_topics(SEED_TOPIC, timeout=30).topics[SEED_TOPIC]
    assert len(md.partitions) == 3
    resource = ConfigResource(ConfigResource.Type.TOPIC, SEED_TOPIC)
    configs = a.describe_configs([resource])[resource].result(timeout=30)
    assert configs["retention.ms"].value == "-1"

    messages = consume_partition(b, SEED_TOPIC, 1, 3)
    assert [(m.key(), m.value(), m.offset()) for m in messages] == [
        (b"k0", b"first", 0), (b"k1", b'{"id":1,"tags":["a"]}', 1), (b"k2", None, 2)]
    assert messages[0].headers() == [("source", b"seed")]
    assert [m.timestamp()[1] for m in messages] == [1700000000000, 1700000000001, 1700000000002]

    # The keyed record without a partition is where librdkafka's default partitioner
    # (murmur2_random, the Java client's) puts "k5" among 3 partitions.
    p = Producer({"bootstrap.servers": b.bootstrap, "partitioner": "murmur2_random"})
    delivered = []
    p.produce(SEED_TOPIC, key=b"k5", value=b"probe", on_delivery=lambda e, m: delivered.append(m))
    p.flush(30)
    hashed = delivered[0].partition()
    assert [m.value() for m in consume_partition(b, SEED_TOPIC, hashed, 2)] == [b"hashed", b"probe"]

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "seeded-billing"})
    try:
        committed = c.committed([TopicPartition(SEED_TOPIC, 1)], timeout=30)
        assert committed[0].offset == 2 and committed[0].metadata == "from the seed", committed
    finally:
        c.close()


def test_seed_at_start_up_then_a_restart_does_not_seed_again(make_broker):
    b = make_broker(seed=SEED)
    check_seeded(b)
    # Not again on the same data directory: partition 1 still ends at offset 3.
    b.stop()
    b.start()
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "seed-watermarks"})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(SEED_TOPIC, 1), timeout=30)
        assert (low, high) == (0, 3)
    finally:
        c.close()


def test_seed_through_the_admin_listener_after_a_reset(make_broker):
    b = make_broker(admin=True)
    status, body = b.admin("POST", "/v1/seed", SEED)
    assert status == 200, body
    assert body == {"topics_created": [SEED_TOPIC], "records": 4, "offsets": 1}, body
    check_seeded(b)
    # A document that names a partition the topic lacks is refused with what is wrong, and a
    # misspelt field is refused rather than ignored.
    status, body = b.admin("POST", "/v1/seed", {"topics": [
        {"name": SEED_TOPIC, "records": [{"partition": 7, "value": "x"}]}]})
    assert status == 409 and "no partition 7" in body["error"], body
    status, body = b.admin("POST", "/v1/seed", {"topics": [{"name": "t", "partitons": 2}]})
    assert status == 400 and "partitons" in body["error"], body
    # Between tests: reset, then seed again.
    status, body = b.admin("POST", "/v1/reset")
    assert status == 200, body
    status, body = b.admin("POST", "/v1/seed", SEED)
    assert status == 200 and body["records"] == 4, body
    check_seeded(b)
