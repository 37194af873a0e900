"""gregor's test control plane with real clients: an idempotent producer retries through an
injected NOT_LEADER_OR_FOLLOWER and through a Produce whose answer is lost (the connection closed
after the write), and every record is read back exactly once; the journal shows what the client
sent. Seed data (`--seed` and `POST /v1/seed`) is read back as written: topics with their configs,
records with keys, values, headers and timestamps in their partitions, committed group offsets.
With `--clock manual`, a group member that died without leaving is expired by advancing the clock
46 s; `POST /v1/reset` between 100 "tests" gives each an empty broker. With
`--emulate-kafka-version 2.8`, librdkafka sends only versions Kafka 2.8 had (the journal says).

Kafka has no control plane, so these run against gregor only. What calibrates them is that an
injected error is answered as Kafka answers that error (Kafka's getErrorResponse, see
src/protocol/error_response.rs): librdkafka's reaction here (refresh metadata and retry on
NOT_LEADER_OR_FOLLOWER; reconnect and resend the same sequence numbers when a connection drops
with a request in flight, which the broker's idempotence deduplicates) is what it does against a
Kafka broker returning that error or dropping that connection.
"""

import os
import re
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, NewTopic

from clients import admin, consume_partition, create_topic, produce_all
from compat_support import REPO_ROOT
from group_clients import Member, describe
from group_support import FAST_GROUPS, MemberProcess, wait_consumed, wait_until

HERE = Path(__file__).resolve().parent

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


# The manual clock. FAST_GROUPS: Kafka's initial rebalance delay (3 s) follows the broker's
# clock too, so with a manual clock that nobody advances a new group's first join would never
# complete.

def test_member_gone_without_leaving_is_expired_by_a_46s_clock_advance(make_broker, topic,
                                                                        capsys):
    b = make_broker(FAST_GROUPS, admin=True, args=["--clock", "manual"])
    group = topic + "-group"
    create_topic(b, topic, num_partitions=1)
    # Kafka's default session timeout, 45 s; the child heartbeats every 0.5 s until killed.
    child = MemberProcess(HERE / "group_member.py", b.bootstrap, group, topic, 45000)
    try:
        wait_until(lambda: child.assignment == {0}, 30,
                   lambda: f"the member to own partition 0: {child.assignment}; "
                           f"stderr: {child.stderr_tail()}")
        # SIGKILL, as a crashed process: no LeaveGroup, so Kafka keeps the member for its
        # session, and this broker's clock does not move by itself.
        child.kill()
    finally:
        child.close()
    members = describe(b, group).members
    assert [m.client_id for m in members] == ["child"], members

    started = time.monotonic()
    status, body = b.admin("POST", "/v1/clock/advance", {"ms": 46000})
    assert status == 200, body
    wait_until(lambda: describe(b, group).members == [], 30, "the member to expire")
    with capsys.disabled():
        print(f"\nmember expired {(time.monotonic() - started) * 1000:.0f} ms (wall) after "
              "advancing the clock 46 s")


def test_reset_between_100_tests(make_broker, capsys):
    b = make_broker(admin=True)
    a = admin(b)
    p = Producer({"bootstrap.servers": b.bootstrap, "client.id": "control-reset-producer",
                  "acks": "all", "linger.ms": 0, "message.timeout.ms": 20000})
    tests = 100
    reset_s = broker_ms = 0.0
    for i in range(tests):
        # Each "test" finds an empty broker (the internal topics, `__` names, stay), makes a
        # topic of its own and writes to it.
        left = [t for t in a.list_topics(timeout=20).topics if not t.startswith("__")]
        assert left == [], f"test {i}: topics left by the previous test: {left}"
        topic = f"reset-test-{i}"
        a.create_topics([NewTopic(topic, num_partitions=1)], operation_timeout=10)[topic] \
            .result(timeout=20)
        log = produce_all(p, topic, records(i, 1))
        assert not log.errors and log.delivered == [(0, 0)], (i, log.delivered, log.errors)

        started = time.monotonic()
        status, body = b.admin("POST", "/v1/reset")
        reset_s += time.monotonic() - started
        assert status == 200 and body["topics_deleted"] == 1 and body["not_reset"] == [], body
        broker_ms += body["took_ms"]
    left = [t for t in a.list_topics(timeout=20).topics if not t.startswith("__")]
    assert left == [], f"topics left after the last reset: {left}"
    # Shown, not asserted (no timing thresholds): the "under a second" in total.
    with capsys.disabled():
        print(f"\n{tests} resets took {reset_s * 1000:.1f} ms in total "
              f"({reset_s * 1000 / tests:.2f} ms each) as the client saw them, "
              f"{broker_ms:.1f} ms of it in the broker")


# Version emulation.

def kafka_release_api_versions(release):
    """{api_key: newest version} that Kafka `release` advertised, from the table the broker's
    --emulate-kafka-version uses (src/protocol/kafka_releases.rs, generated from Kafka's message
    specifications by scripts/gen-kafka-api-versions)."""
    table = (REPO_ROOT / "src/protocol/kafka_releases.rs").read_text()
    block = re.search(r'version: "%s",(.*?)\]' % re.escape(release), table, re.S)
    assert block, f"no Kafka {release} in the emulation table"
    return {int(key): int(newest)
            for key, _, newest in re.findall(r"\((\d+), (\d+), (\d+)\)", block.group(1))}


UNSUPPORTED_VERSION = 35


def newest_versions_sent(b, workload):
    """Runs `workload` against broker `b` (its admin listener on), then {api name: (api key,
    newest version served)} from its request journal. An ApiVersions answered with
    UNSUPPORTED_VERSION is left out: a client opens each connection with its own newest
    ApiVersions and, told the broker's range (KIP-511), asks again within it."""
    workload(b)
    status, body = b.admin("GET", "/v1/journal?limit=100000")
    assert status == 200, body
    newest = {}
    for e in body["entries"]:
        if e["api"] == "ApiVersions" and UNSUPPORTED_VERSION in e["error_codes"]:
            continue
        key, version = newest.get(e["api"], (e["api_key"], -1))
        newest[e["api"]] = (key, max(version, e["api_version"]))
    return newest


def emulation_workload(b):
    """An admin client, an idempotent producer and a group consumer, each checked end to end."""
    topic, count = "emulated", 200
    create_topic(b, topic, num_partitions=1)
    a = admin(b)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert a.describe_configs([resource])[resource].result(timeout=30)["cleanup.policy"].value \
        == "delete"
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all",
                  "compression.type": "lz4", "linger.ms": 5, "message.timeout.ms": 20000})
    log = produce_all(p, topic, records(0, count))
    assert not log.errors and log.delivered == [(0, n) for n in range(count)], log.errors
    member = Member(b, topic + "-group", topic, "emulation-consumer")
    try:
        wait_consumed([member], count)
        assert sorted(member.consumed) == [(0, n) for n in range(count)]
    finally:
        member.close()  # revokes its partition, which commits what it consumed
    status, body = b.admin("GET", f"/v1/await?group={topic}-group&topic={topic}&partition=0"
                                  f"&committed_offset={count}")
    assert status == 200, body


def test_emulated_kafka_2_8_makes_librdkafka_use_2_8_versions(make_broker, capsys):
    kafka_2_8 = kafka_release_api_versions("2.8")
    emulated = newest_versions_sent(
        make_broker(FAST_GROUPS, admin=True, args=["--emulate-kafka-version", "2.8"]),
        emulation_workload)
    current = newest_versions_sent(make_broker(FAST_GROUPS, admin=True), emulation_workload)
    for api, (key, version) in emulated.items():
        assert key in kafka_2_8, f"{api} sent, which Kafka 2.8 did not have: {emulated}"
        assert version <= kafka_2_8[key], \
            f"{api} v{version} sent, Kafka 2.8 has up to v{kafka_2_8[key]}: {emulated}"
    # The emulation is what made the difference: the same client asks the unemulated broker
    # for newer versions of (at least) these.
    for api in ("Produce", "Fetch"):
        assert emulated[api][1] < current[api][1], (api, emulated, current)
    compared = {api: (v, current.get(api, (k, None))[1]) for api, (k, v) in emulated.items()}
    with capsys.disabled():
        print(f"\nnewest versions sent (emulated 2.8, unemulated): {compared}")
