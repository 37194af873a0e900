"""Leader failover with three brokers in one gregor process (`--brokers 3`), driven through the
admin HTTP listener: an idempotent acks=all producer and a group consumer carry on while the
broker that leads a partition and coordinates the group is stopped (as in a crash) and started
again; every acknowledged record is read back exactly once and the committed offsets are kept.

Apache Kafka cannot calibrate this with the single reference broker compat_support starts, so
the test runs against gregor only.
"""

import os
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from clients import create_topic, producer

PER_PHASE = 300
PARTITIONS = 3
# A generous bound for each wait on a condition, so that a broken failover fails instead of
# hanging; every wait ends as soon as its condition holds.
DEADLINE_S = 90

pytestmark = pytest.mark.skipif(bool(os.environ.get("KAFKA_REFERENCE_LIBS")),
                                reason="needs three brokers; the reference Kafka is one")


class Run:
    def __init__(self, broker, topic):
        self.broker = broker
        self.topic = topic
        self.acked = set()
        self.failed = []
        self.seen = Counter()
        self.producer = producer(broker, **{"enable.idempotence": True, "acks": "all",
                                            "message.timeout.ms": 120000})
        self.consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "session.timeout.ms": 45000})
        self.consumer.subscribe([topic])

    def produce(self, first):
        """Produces records first..first+PER_PHASE, waiting for every acknowledgement."""
        def delivered(err, msg):
            if err is None:
                self.acked.add(int(msg.value()))
            else:
                self.failed.append(err)

        for i in range(first, first + PER_PHASE):
            self.producer.produce(self.topic, key=str(i).encode(), value=str(i).encode(),
                                  partition=i % PARTITIONS, on_delivery=delivered)
            self.producer.poll(0)
        assert self.producer.flush(DEADLINE_S) == 0, "records still unacknowledged"
        assert not self.failed, self.failed

    def consume_acknowledged(self):
        """Consumes in the group until every acknowledged record was seen, committing as it
        goes (synchronously, so a coordinator move cannot replay what was processed)."""
        deadline = time.monotonic() + DEADLINE_S
        while not self.acked <= set(self.seen):
            assert time.monotonic() < deadline, f"missing {sorted(self.acked - set(self.seen))[:10]}"
            msgs = self.consumer.consume(num_messages=500, timeout=0.5)
            for m in msgs:
                if m.error() is None:
                    self.seen[int(m.value())] += 1
            if any(m.error() is None for m in msgs):
                self.commit(deadline)

    def commit(self, deadline):
        while True:
            try:
                self.consumer.commit(asynchronous=False)
                return
            except KafkaException as e:
                # NOT_COORDINATOR and the like while the coordinator moves: try again.
                assert time.monotonic() < deadline, e

    def leader_of(self, partition):
        md = self.consumer.list_topics(self.topic, timeout=30)
        return md.topics[self.topic].partitions[partition].leader

    def coordinator(self):
        admin = AdminClient({"bootstrap.servers": self.broker.bootstrap})
        group = admin.describe_consumer_groups([self.topic])[self.topic].result(timeout=30)
        return group.coordinator.id


def test_produce_and_consume_through_a_stop_and_start_of_the_leader(make_broker, topic):
    b = make_broker({"default.replication.factor": 3, "group.initial.rebalance.delay.ms": 0},
                    brokers=3, admin=True)
    create_topic(b, topic, num_partitions=PARTITIONS, replication_factor=3)
    run = Run(b, topic)
    run.produce(0)
    run.consume_acknowledged()

    # The group's coordinator also leads one of the topic's partitions (three partitions of
    # three replicas spread over three brokers): stopping it moves both.
    victim = run.coordinator()
    assert victim in [run.leader_of(p) for p in range(PARTITIONS)]
    status, body = b.admin("POST", f"/v1/brokers/{victim}/stop")
    assert (status, body["state"]) == (200, "stopped"), body
    run.produce(PER_PHASE)
    run.consume_acknowledged()
    assert victim not in [run.leader_of(p) for p in range(PARTITIONS)]
    assert run.coordinator() != victim

    status, body = b.admin("POST", f"/v1/brokers/{victim}/start")
    assert (status, body["state"]) == (200, "running"), body
    run.produce(2 * PER_PHASE)
    run.consume_acknowledged()
    # auto.leader.rebalance.enable (Kafka's default): the preferred leaders are back.
    assert run.coordinator() == victim

    assert len(run.acked) == 3 * PER_PHASE
    assert set(run.seen) == run.acked
    assert [i for i, n in run.seen.items() if n != 1] == []
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    committed = {tp.partition: tp.offset for tp in run.consumer.committed(parts, timeout=30)}
    run.consumer.close()
    run.producer.flush(1)

    # The log holds each record once, and the group's offsets are at its end.
    reader = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic + "-check",
                       "enable.auto.commit": False})
    in_log = Counter()
    for p in range(PARTITIONS):
        low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        assert committed[p] == high, (p, committed, high)
        reader.assign([TopicPartition(topic, p, low)])
        got = 0
        deadline = time.monotonic() + DEADLINE_S
        while got < high - low:
            assert time.monotonic() < deadline, (p, got, low, high)
            for m in reader.consume(num_messages=1000, timeout=1.0):
                if m.error() is None:
                    in_log[int(m.value())] += 1
                    got += 1
    reader.close()
    assert in_log == Counter({i: 1 for i in run.acked})
