"""confluent-kafka consumer-group helpers for test_groups.py: subscribed consumers polled by
their own thread, and producers that write numbered records to chosen partitions."""

import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient


def group_config(broker, group, **config):
    """A subscribing consumer's config: heartbeats every 0.5 s so that members notice a
    rebalance quickly; commits only where a test asks for them. A None value removes a key."""
    config = {"bootstrap.servers": broker.bootstrap, "group.id": group,
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
              "enable.partition.eof": False, "check.crcs": True, **config}
    return {key: value for key, value in config.items() if value is not None}


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def describe(broker, group, **kwargs):
    """The AdminClient's ConsumerGroupDescription of `group`."""
    client = admin(broker)  # must outlive the future
    futures = client.describe_consumer_groups([group], request_timeout=20, **kwargs)
    return futures[group].result(timeout=30)


def produce_numbered(broker, topic, partitions, count, start=0):
    """Writes `count` records with values b"<partition>:<n>" (n from `start`) to each partition;
    returns the acknowledged (partition, offset) pairs."""
    delivered, errors = [], []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or (msg.partition(), msg.offset()))

    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                  "message.timeout.ms": 20000})
    for n in range(start, start + count):
        for partition in partitions:
            p.produce(topic, value=b"%d:%d" % (partition, n), partition=partition,
                      on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0 and errors == [], f"produce failed: {errors[:3]}"
    return delivered


class Flow:
    """Writes records round-robin to all partitions from a thread, about 500 per second, until
    stop(), which returns the acknowledged (partition, offset) pairs."""

    def __init__(self, broker, topic, partitions):
        self.delivered, self.errors = [], []
        self._producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                                   "message.timeout.ms": 20000})
        self._topic, self._partitions = topic, partitions
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_delivery(self, err, msg):
        if err:
            self.errors.append(err)
        else:
            self.delivered.append((msg.partition(), msg.offset()))

    def _run(self):
        n = 0
        while not self._stop.is_set():
            partition = n % self._partitions
            self._producer.produce(self._topic, value=b"%d:%d" % (partition, n),
                                   partition=partition, on_delivery=self._on_delivery)
            self._producer.poll(0.002)
            n += 1

    def close(self):
        """Stops writing without checks (for a test's cleanup)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            try:
                self._producer.flush(5)
            except Exception:  # noqa: BLE001 -- cleanup after a failure
                pass

    def stop(self):
        self._stop.set()
        self._thread.join()
        assert self._producer.flush(30) == 0 and self.errors == [], \
            f"produce failed: {self.errors[:3]}"
        return list(self.delivered)


class Member:
    """A consumer subscribed to `topic` in `group`, polled by its own thread.

    Records the application-visible assignment (`assignment`, a set of partition numbers), how
    often each rebalance callback ran, every consumed (partition, offset) and any error. With
    `commit_on_revoke`, it commits what it consumed (synchronously) before giving partitions up,
    so that no record is read twice by the group while nobody fails.
    """

    def __init__(self, broker, group, topic, name, commit_on_revoke=True, **config):
        self.name = name
        self.assignment = set()
        self.assign_calls = self.revoke_calls = self.lost_calls = 0
        self.consumed = []
        self.errors = []
        self._commit_on_revoke = commit_on_revoke
        self.consumer = Consumer(group_config(broker, group, **{"client.id": name, **config}))
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __repr__(self):
        return f"{self.name}{sorted(self.assignment)}"

    def _on_assign(self, consumer, partitions):
        self.assign_calls += 1
        self.assignment = self.assignment | {tp.partition for tp in partitions}

    def _on_revoke(self, consumer, partitions):
        self.revoke_calls += 1
        if self._commit_on_revoke:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                if e.args[0].code() != KafkaError._NO_OFFSET:
                    self.errors.append(f"commit on revoke: {e}")
        self.assignment = self.assignment - {tp.partition for tp in partitions}

    def _on_lost(self, consumer, partitions):
        self.lost_calls += 1
        self.assignment = self.assignment - {tp.partition for tp in partitions}

    def _run(self):
        while not self._stop.is_set():
            try:
                messages = self.consumer.consume(num_messages=500, timeout=0.1)
            except KafkaException as e:
                self.errors.append(f"consume: {e}")
                continue
            for m in messages:
                if m.error() is None:
                    self.consumed.append((m.partition(), m.offset()))
                else:
                    self.errors.append(f"consume: {m.error()}")

    def close(self):
        """Stops polling and closes the consumer (revoking, committing and leaving the group)."""
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._thread.join()
            self.consumer.close()


def assignments(members):
    return {m.name: set(m.assignment) for m in members}
