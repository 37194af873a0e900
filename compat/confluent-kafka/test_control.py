"""gregor's test control plane (the admin listener's /v1/faults and /v1/journal) with a real
idempotent producer: it retries through an injected NOT_LEADER_OR_FOLLOWER and through a Produce
whose answer is lost (the connection closed after the write), and every record is read back
exactly once; the journal shows what the client sent.

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

from clients import consume_partition, create_topic, produce_all

pytestmark = pytest.mark.skipif(bool(os.environ.get("KAFKA_REFERENCE_LIBS")),
                                reason="Kafka has no control plane")

CLIENT_ID = "control-plane-producer"


def arm(broker, rule):
    status, body = broker.admin("POST", "/v1/faults", rule)
    assert status == 200, body
    return body


def records(first, count):
    return [(str(i).encode(), str(i).encode(), None, None) for i in range(first, first + count)]


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
