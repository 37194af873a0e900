"""kafka-python consumer-group helpers for test_groups.py: subscribed consumers polled by their
own thread, and producers that write numbered records to chosen partitions."""

import threading

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener


def group_consumer(broker, group, **config):
    """A consumer for subscribe(): heartbeats every 0.5 s so that members notice a rebalance
    quickly; commits only where a test asks for them."""
    config = {"group_id": group, "auto_offset_reset": "earliest", "enable_auto_commit": False,
              "session_timeout_ms": 10000, "heartbeat_interval_ms": 500,
              "request_timeout_ms": 30000, **config}
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, **config)


def subscribe(consumer, topic, listener=None):
    """subscribe(), then a blocking metadata fetch, before the first poll() joins the group.

    kafka-python 3.0.12's leader remembers the metadata snapshot it assigned with and rejoins
    (a whole rebalance) as soon as a later metadata update differs from it. That snapshot is
    rebuilt only by metadata updates that arrive after subscribe(): fetching metadata before
    subscribing leaves it empty, so the first leader assigns against "no topics" and rebalances
    again whenever the next update lands, at once or as late as the reconnect after a broker
    restart (the flake of test_group_survives_broker_restart). Fetching after subscribing, and
    before the first poll() sends JoinGroup, gives the leader the real partitions to assign and a
    snapshot that matches every later update."""
    consumer.subscribe([topic], listener=listener)
    assert consumer.partitions_for_topic(topic), f"no metadata for {topic}"


class Admin:
    """KafkaAdminClient as a context manager, closed (with its IO thread) on exit."""

    def __init__(self, broker):
        self.client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        self.client.close()


def produce_numbered(broker, topic, partitions, count, start=0):
    """Writes `count` records with values b"<partition>:<n>" (n from `start`) to each partition;
    returns the acknowledged (partition, offset) pairs."""
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    try:
        futures = [p.send(topic, value=b"%d:%d" % (partition, n), partition=partition)
                   for n in range(start, start + count) for partition in partitions]
        p.flush(timeout=30)
        return [(m.partition, m.offset) for m in (f.get(timeout=1) for f in futures)]
    finally:
        p.close()


class Flow:
    """Writes records round-robin to all partitions from a thread, about 500 per second, until
    stop(), which returns the acknowledged (partition, offset) pairs."""

    def __init__(self, broker, topic, partitions):
        self._producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        self._topic, self._partitions = topic, partitions
        self._futures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = 0
        while not self._stop.wait(0.002):
            partition = n % self._partitions
            self._futures.append(self._producer.send(
                self._topic, value=b"%d:%d" % (partition, n), partition=partition))
            n += 1

    def close(self):
        """Stops writing without checks (for a test's cleanup)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            try:
                self._producer.close(timeout=5)
            except Exception:  # noqa: BLE001 -- cleanup after a failure
                pass

    def stop(self):
        self._stop.set()
        self._thread.join()
        try:
            self._producer.flush(timeout=30)
            return [(m.partition, m.offset) for m in (f.get(timeout=1) for f in self._futures)]
        finally:
            self._producer.close()


class _Listener(ConsumerRebalanceListener):
    """Counts the callbacks with partitions: kafka-python may first get an empty assignment
    when the leader assigns before it has the topic's metadata, then rejoins at once."""

    def __init__(self, member):
        self.member = member

    def on_partitions_revoked(self, revoked):
        if not revoked:
            return
        self.member.revoke_calls += 1
        self.member.assignment = self.member.assignment - {tp.partition for tp in revoked}

    def on_partitions_assigned(self, assigned):
        if not assigned:
            return
        self.member.assign_calls += 1
        self.member.assignment = self.member.assignment | {tp.partition for tp in assigned}
        self.member.history.append(set(self.member.assignment))

    def on_partitions_lost(self, lost):
        self.member.lost_calls += 1
        self.member.assignment = self.member.assignment - {tp.partition for tp in lost}


POLL_MS = 5000


class Member:
    """A consumer subscribed to `topic` in `group`, polled by its own thread.

    Records the application-visible assignment (`assignment`, a set of partition numbers), how
    often each rebalance callback ran, every consumed (partition, offset) and any error.
    Auto-commit is on: kafka-python then commits what was consumed synchronously before each
    rebalance and on close, so no record is read twice by the group while nobody fails.
    """

    def __init__(self, broker, group, topic, name, **config):
        self.name = name
        self.assignment = set()
        self.assign_calls = self.revoke_calls = self.lost_calls = 0
        self.history = []  # the assignment after each on_partitions_assigned
        self.consumed = []
        self.errors = []
        self.consumer = group_consumer(broker, group, client_id=name,
                                       **{"enable_auto_commit": True, **config})
        subscribe(self.consumer, topic, _Listener(self))
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __repr__(self):
        return f"{self.name}{sorted(self.assignment)}"

    def _run(self):
        while not self._stop.is_set():
            try:
                # A poll longer than any rebalance round of these tests: kafka-python 3.0.12
                # drops a JoinGroup/SyncGroup result that completes after poll() gave up
                # waiting for it (ensure_active_group starts a new join when it finds the old
                # one done), so each poll that times out during a join risks one more
                # rebalance, or a leader that never gets its assignment. A round waits for the
                # other members' heartbeats (every 0.5 s), their commits and rejoins: over a
                # second on a busy machine. poll() returns as soon as records arrive.
                batches = self.consumer.poll(timeout_ms=POLL_MS)
            except Exception as e:  # noqa: BLE001 -- recorded, the test asserts there are none
                # Retriable errors (e.g. connection refused while the broker restarts) are the
                # client's to retry, not failures.
                if not getattr(e, "retriable", False):
                    self.errors.append(f"poll: {e!r}")
                self._stop.wait(0.2)
                continue
            for records in batches.values():
                self.consumed.extend((r.partition, r.offset) for r in records)

    def stop(self):
        """Asks the polling thread to stop after its current poll() (see close_all)."""
        self._stop.set()

    def close(self):
        """Stops polling and closes the consumer (committing and leaving the group)."""
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._thread.join()
            self.consumer.close()


def close_all(members, ignore=()):
    """Closes the members (None entries skipped). Their polls are stopped together first, so
    closing takes one poll's time, not one per member; errors of the `ignore` types are
    expected (a fenced member's last commit)."""
    members = [m for m in members if m is not None]
    for m in members:
        m.stop()
    for m in members:
        try:
            m.close()
        except ignore:
            pass


def assignments(members):
    return {m.name: set(m.assignment) for m in members}
