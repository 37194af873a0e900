#!/usr/bin/env python3
"""Crash torture for gregor: kill the broker at random moments under a mixed load, damage its files
while it is stopped, restart it, and verify after every round that nothing acknowledged was lost.

Run through scripts/torture (it builds the binaries and the pinned venv). What each round asserts
is documented in README.md ("Reliability" / "Crash torture") and in check_round() below.

Load: one idempotent producer (enable.idempotence, acks=all) per codec (none, gzip, snappy, lz4,
zstd), each writing records whose value is "<producer>|<seq>|<padding derived from seq>" to random
partitions of one topic, and one consumer-group member that consumes and commits synchronously.
Transactional load in every round (TxnLoad below): transactional producers over two topics, a
consume-transform-produce loop with sendOffsetsToTransaction, and a producer that abandons its
transaction; check_transactions() verifies what read_committed and read_uncommitted see.
The recreate scenario adds compacted topics that are deleted and re-created under load while the
log cleaner runs (Churn below).
"""

import argparse
import faulthandler
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "compat"))
from ports import free_port  # noqa: E402  (compat/ports.py: one picker for every script)

TOPIC = "torture"
GROUP = "torture-group"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KILL_SCENARIOS = ["kill", "kill-twice", "kill-stopping"]
DAMAGE_SCENARIOS = ["cut", "zero", "flip", "index-delete", "index-corrupt"]
ALL_SCENARIOS = KILL_SCENARIOS + DAMAGE_SCENARIOS + ["recreate"]
# recreate: compacted topics deleted and re-created under load; their segments roll every 100 ms
# and the cleaner looks for work every 50 ms, so deletions often catch a cleaning in progress.
CHURN_TOPICS = ["churn0", "churn1"]
CHURN_PARTITIONS = 2
CHURN_KEYS = 600
CHURN_REWRITES = 3
CHURN_MIN_GENERATIONS = 3
CHURN_CONFIG = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
CLEANER_OVERRIDES = ["log.cleaner.backoff.ms=50"]
# Broker settings: small segments and a dense index so that rolls, many segments and many index
# entries are exercised; no initial rebalance delay so the group member starts at once.
BROKER_OVERRIDES = [
    "log.segment.bytes=262144",
    "log.index.interval.bytes=512",
    "group.initial.rebalance.delay.ms=0",
    "offsets.topic.num.partitions=4",
]



def group_consumer(bootstrap, group, **extra):
    """A manually committing group member that rides out the broker's restarts quickly."""
    return Consumer({
        "bootstrap.servers": bootstrap,
        "log_level": 2,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 300,
        **extra,
    })

class Failure(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def payload(name, seq):
    # The padding is a function of the sequence so that a corrupted value is detected too.
    pad = (seq * 7919) % 300
    return f"{name}|{seq}|".encode() + bytes((seq + i) % 26 + 97 for i in range(pad))


def parse_payload(value):
    name, seq, _ = value.split(b"|", 2)
    seq = int(seq)
    if value != payload(name.decode(), seq):
        raise Failure(f"record value does not match its producer and sequence: {value[:60]!r}")
    return name.decode(), seq


# ---------------------------------------------------------------------------------------------
# The broker process


class Broker:
    def __init__(self, binary, data_dir, port):
        self.binary = binary
        self.data_dir = data_dir
        self.port = port
        self.proc = None
        self.log_path = data_dir + ".log"
        self.extra_overrides = []

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.start_no_wait()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"broker exited during start-up with {self.proc.returncode}; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise Failure("broker did not open its port within 60 s")

    def start_no_wait(self):
        """Starts the broker without waiting for its port (to kill it during start-up)."""
        args = [self.binary, "--listen", self.bootstrap, "--data-dir", self.data_dir]
        for o in BROKER_OVERRIDES + TXN_BROKER_OVERRIDES + self.extra_overrides:
            args += ["--override", o]
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=out, stderr=out)
        out.close()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def kill9_while_stopping(self, delay):
        """SIGTERM, then SIGKILL `delay` seconds later: a crash in the middle of a clean shutdown.
        Returns False when the broker had already finished stopping."""
        self.proc.send_signal(signal.SIGTERM)
        time.sleep(delay)
        killed = self.proc.poll() is None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        return killed

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise Failure("broker did not stop within 60 s of SIGTERM")
        self.proc = None
        if code != 0:
            raise Failure(f"broker exited with {code} on SIGTERM; see {self.log_path}")


# ---------------------------------------------------------------------------------------------
# The offline checker (gregor-check)


def run_checker(check_bin, data_dir, torn_ok=False, batches=False):
    args = [check_bin, data_dir]
    if torn_ok:
        args.append("--allow-torn-tail")
    if batches:
        args.append("--batches")
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"gregor-check {'--allow-torn-tail ' if torn_ok else ''}failed ({r.returncode}):\n"
                      + (r.stdout + r.stderr)[-4000:])
    parts, batch_list = {}, []
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] == "partition":
            kv = dict(x.split("=", 1) for x in f[2:])
            parts[f[1]] = {k: (v if k == "status" else int(v)) for k, v in kv.items()}
        elif f and f[0] == "batch":
            batch_list.append((f[1],) + tuple(int(x) for x in f[2:]))
    return parts, batch_list


# ---------------------------------------------------------------------------------------------
# The load


class ProducerLoad(threading.Thread):
    def __init__(self, bootstrap, name, codec, partitions, rate, rng, topic=TOPIC):
        super().__init__(daemon=True)
        self.name_ = name
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.rng = random.Random(rng.random())
        self.stop_flag = threading.Event()
        self.acked = {}  # seq -> (partition, offset)
        self.failed = 0
        self.fatal = None
        self.sent = 0
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "log_level": 2,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": self.rng.choice([0, 2, 5, 20]),
            "batch.num.messages": self.rng.choice([1, 10, 100, 1000]),
            "message.timeout.ms": 120000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 300,
            "error_cb": self.on_error,
        })

    def on_error(self, err):
        if err.fatal():
            self.fatal = str(err)

    def on_delivery(self, err, msg):
        seq = int(msg.value().split(b"|", 2)[1])
        if err is None:
            self.acked[seq] = (msg.partition(), msg.offset())
        else:
            self.failed += 1

    def run(self):
        seq = 0
        start = time.time()
        while not self.stop_flag.is_set() and self.fatal is None:
            for _ in range(20):
                value = payload(self.name_, seq)
                try:
                    self.producer.produce(self.topic, value=value, key=self.name_.encode(),
                                          partition=self.rng.randrange(self.partitions),
                                          on_delivery=self.on_delivery)
                except BufferError:
                    self.producer.poll(0.05)
                    continue
                except KafkaException as e:
                    self.fatal = str(e)
                    break
                seq += 1
            self.sent = seq
            self.producer.poll(0)
            ahead = seq / self.rate - (time.time() - start)
            if ahead > 0:
                time.sleep(min(ahead, 0.2))

    def finish(self):
        """Stops producing and waits until every record is acknowledged or has failed."""
        self.stop_flag.set()
        self.join()
        left = self.producer.flush(180)
        if left:
            raise Failure(f"producer {self.name_}: {left} records neither acknowledged nor failed after 180 s")


class GroupMember(threading.Thread):
    """Consumes the topic in a consumer group and commits synchronously; remembers, per partition,
    the highest offset whose commit the broker acknowledged."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.stop_flag = threading.Event()
        self.acked_commits = {}
        self.consumed = 0
        self.commit_errors = 0
        self.commits_acked = 0
        self.consumer = group_consumer(bootstrap, GROUP, **{"check.crcs": True})

    def run(self):
        self.consumer.subscribe([TOPIC])
        positions = {}
        last_commit = time.time()
        while not self.stop_flag.is_set():
            try:
                for m in self.consumer.consume(500, 0.2):
                    if m.error() is None:
                        positions[m.partition()] = m.offset() + 1
                        self.consumed += 1
                if positions and time.time() - last_commit > 0.3:
                    last_commit = time.time()
                    self.commit(positions)
                    positions = {}
            except KafkaException:
                self.commit_errors += 1
        if positions:
            try:
                self.commit(positions)
            except KafkaException:
                self.commit_errors += 1

    def commit(self, positions):
        offsets = [TopicPartition(TOPIC, p, o) for p, o in positions.items()]
        for tp in self.consumer.commit(offsets=offsets, asynchronous=False):
            if tp.error is None:
                self.commits_acked += 1
                prev = self.acked_commits.get(tp.partition, -1)
                self.acked_commits[tp.partition] = max(prev, tp.offset)
            else:
                self.commit_errors += 1

    def finish(self):
        self.stop_flag.set()
        self.join()
        self.consumer.close()


class Churn(threading.Thread):
    """Deletes and re-creates compacted topics while the main load runs and the log cleaner works
    on them. Each generation re-creates every churn topic, rewrites each key CHURN_REWRITES times
    (flushed between rewrites, so the last value of a key is known), checks that the new topic
    holds nothing of an earlier generation: over the wire, and in its files (values are
    uncompressed and name their generation, so a deleted partition's cleaning that landed in the
    new directory shows up as bytes of an old generation there), and ends with a burst of
    rewrites, so that the next generation's deletion finds the cleaner busy with them."""

    def __init__(self, bootstrap, data_dir):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.stop_flag = threading.Event()
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
        self.gen = 0
        self.last_rewrite = None
        self.error = None
        self.written = 0

    def run(self):
        try:
            while not self.stop_flag.is_set() or self.gen < CHURN_MIN_GENERATIONS:
                self.generation()
        except Exception as e:  # reported by finish()
            self.error = e

    def value(self, topic, key, rewrite):
        return f"{topic}|g{self.gen}|k{key}|r{rewrite}|".encode() + b"x" * (40 + key % 100)

    def recreate(self, topic):
        deadline = time.time() + 30
        if topic in self.admin.list_topics(timeout=10).topics:
            self.admin.delete_topics([topic])[topic].result(30)
        while True:
            new = NewTopic(topic, CHURN_PARTITIONS, 1, config=CHURN_CONFIG)
            try:
                self.admin.create_topics([new])[topic].result(30)
                return
            except KafkaException as e:
                # Kafka deletes asynchronously: the name may still be taken for a moment.
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS or time.time() > deadline:
                    raise Failure(f"re-creating {topic}: {e}")
                time.sleep(0.05)

    def generation(self):
        self.gen += 1
        for t in CHURN_TOPICS:
            self.recreate(t)
        producer = Producer({"bootstrap.servers": self.bootstrap, "log_level": 2, "acks": "all",
                             "linger.ms": 5, "compression.type": "none", "message.timeout.ms": 60000})
        for r in range(CHURN_REWRITES):
            self.rewrite(producer, r)
        self.verify()
        for r in range(CHURN_REWRITES, CHURN_REWRITES + 2):
            self.rewrite(producer, r)

    def rewrite(self, producer, r):
        failed = []
        for t in CHURN_TOPICS:
            for k in range(CHURN_KEYS):
                while True:
                    try:
                        producer.produce(t, key=f"k{k}".encode(), value=self.value(t, k, r),
                                         partition=k % CHURN_PARTITIONS,
                                         on_delivery=lambda err, msg: err and failed.append(str(err)))
                        break
                    except BufferError:
                        producer.poll(0.05)
        if producer.flush(60) or failed:
            raise Failure(f"churn generation {self.gen}: writes not acknowledged: {failed[:3]}")
        self.written += CHURN_KEYS * len(CHURN_TOPICS)
        self.last_rewrite = r
        time.sleep(0.11)  # segment.ms: the next rewrite rolls a segment, the cleaner has work

    def verify(self):
        """Every churn topic holds this generation only, and each key's last value is its last
        write (compaction may drop the older ones)."""
        for t in CHURN_TOPICS:
            for p in range(CHURN_PARTITIONS):
                self.check_files(t, p)
            self.check_read_back(t)

    def check_files(self, topic, partition):
        d = os.path.join(self.data_dir, f"{topic}-{partition}")
        pattern = re.compile(re.escape(topic.encode()) + rb"\|g(\d+)\|")
        for f in sorted(os.listdir(d)):
            if not f.endswith((".log", ".cleaned")):
                continue
            try:
                data = open(os.path.join(d, f), "rb").read()
            except FileNotFoundError:
                continue  # swapped or removed by the cleaner meanwhile
            gens = {int(g) for g in pattern.findall(data)}
            if gens - {self.gen}:
                raise Failure(f"{topic}-{partition}/{f} of generation {self.gen} holds records of "
                              f"generations {sorted(gens - {self.gen})}: a deleted topic's work landed there")

    def check_read_back(self, topic):
        c = Consumer({"bootstrap.servers": self.bootstrap, "log_level": 2, "group.id": "churn-reader",
                      "enable.auto.commit": False, "enable.partition.eof": True})
        try:
            marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                     for p in range(CHURN_PARTITIONS)}
            c.assign([TopicPartition(topic, p, lo) for p, (lo, hi) in marks.items() if hi > lo])
            pending = {p for p, (lo, hi) in marks.items() if hi > lo}
            last = {}
            deadline = time.time() + 60
            while pending:
                if time.time() > deadline:
                    raise Failure(f"{topic}: read-back did not reach the high watermark")
                for m in c.consume(1000, 1.0):
                    p = m.partition()
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            pending.discard(p)
                            continue
                        raise Failure(f"{topic}: read-back error: {m.error()}")
                    name, gen, key, rewrite, _ = m.value().split(b"|", 4)
                    if name.decode() != topic or gen != f"g{self.gen}".encode():
                        raise Failure(f"{topic}-{p} offset {m.offset()} of generation {self.gen} holds "
                                      f"{m.value()[:40]!r}")
                    last[key] = rewrite
                    if m.offset() + 1 >= marks[p][1]:
                        pending.discard(p)
            want = f"r{self.last_rewrite}".encode()
            wrong = sorted((k, r) for k, r in last.items() if r != want)
            if len(last) != CHURN_KEYS or wrong:
                raise Failure(f"{topic}: {len(last)} keys of {CHURN_KEYS}; {len(wrong)} not at their last "
                              f"write r{self.last_rewrite}, e.g. {wrong[:3]}")
        finally:
            c.close()

    def finish(self):
        self.stop_flag.set()
        self.join()
        if self.error is not None:
            raise self.error if isinstance(self.error, Failure) else Failure(f"churn: {self.error!r}")

    def drop_topics(self):
        for t, f in self.admin.delete_topics(CHURN_TOPICS).items():
            f.result(30)


# ---------------------------------------------------------------------------------------------
# Transactions: transactional producers over several topics, a consume-transform-produce loop
# with sendOffsetsToTransaction, a producer that abandons its transaction, and the read_committed
# checks of what they left.

# Each TxnProducer transaction writes to partitions of both TXN_TOPICS; the EOS loop reads
# TXN_SRC (fed by an idempotent producer) and writes TXN_EOS_OUT plus its consumed offsets.
TXN_TOPICS = {"txn-a": 3, "txn-b": 2}
TXN_SRC = "txn-src"
TXN_EOS_OUT = "txn-eos-out"
TXN_EOS_GROUP = "txn-eos-group"
EOS_TOPICS = {TXN_SRC: 2, TXN_EOS_OUT: 2}
TXN_PRODUCERS = 2
# transaction.timeout.ms: short, so that what a crash or an abandoning producer leaves open is
# aborted by the coordinator within the round (it looks every 500 ms).
TXN_TIMEOUT_MS = 6000
ABANDONED_TXN_TIMEOUT_MS = 2000
TXN_BROKER_OVERRIDES = [
    "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    "transaction.state.log.num.partitions=4",
]
COMMITTED, ABORTED, UNKNOWN = "committed", "aborted", "unknown"
# Set while some transactional producer is inside commit_transaction: half of the kills wait for
# it, so that crashes land while commits are being flushed, prepared and marked.
COMMITTING = threading.Event()


def txn_payload(name, txn, i, count):
    """Record i of `count` of transaction `txn` of producer `name`; padding derived from them."""
    pad = (txn * 31 + i * 7) % 200
    return f"{name}|{txn}|{i}|{count}|".encode() + bytes((txn + i + j) % 26 + 65 for j in range(pad))


def parse_txn_payload(value):
    try:
        name, txn, i, count, _ = value.split(b"|", 4)
        rid = (name.decode(), int(txn), int(i), int(count))
    except ValueError:
        raise Failure(f"not a record of a transactional producer (a control record?): {value[:60]!r}")
    if value != txn_payload(*rid):
        raise Failure(f"transactional record value does not match its id: {value[:60]!r}")
    return rid


def txn_producer(bootstrap, txn_id, timeout_ms, extra=None):
    debug = os.environ.get("TORTURE_TXN_DEBUG")
    extra = (extra or {}) | ({"debug": debug, "log_level": 7} if debug else {})
    return Producer({
        "bootstrap.servers": bootstrap,
        "log_level": 2,
        "transactional.id": txn_id,
        "transaction.timeout.ms": timeout_ms,
        "linger.ms": 5,
        "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 300,
    } | extra)


def retrying(call, what, seconds=90):
    """Runs a transactional call again while it fails with a retriable error (the broker is
    restarting), as librdkafka's documentation asks."""
    deadline = time.time() + seconds
    while True:
        try:
            return call()
        except KafkaException as e:
            if not e.args[0].retriable() or time.time() > deadline:
                raise
            log(f"  {what}: {e.args[0].str()}; retrying")


class TxnRunner:
    """One transactional id's producer, replaced by a new instance (which fences the old one and
    aborts what it left open) after an error it cannot recover from. Runs one transaction at a
    time and says what became of it:
    - committed: commit_transaction returned;
    - unknown: commit was asked for but did not return (the broker may have committed it);
    - aborted: commit was never asked for, so no EndTxn(commit) was sent and nothing of the
      transaction may ever be visible, whether our abort returned or the coordinator aborted it."""

    def __init__(self, bootstrap, txn_id, timeout_ms=TXN_TIMEOUT_MS, extra=None):
        self.extra = extra or {}
        self.bootstrap = bootstrap
        self.txn_id = txn_id
        self.timeout_ms = timeout_ms
        self.producer = None
        self.instances = 0

    def ensure(self):
        if self.producer is None:
            p = txn_producer(self.bootstrap, self.txn_id, self.timeout_ms, self.extra)
            try:
                retrying(lambda: p.init_transactions(30), f"{self.txn_id} init_transactions", 120)
            except KafkaException as e:
                raise Failure(f"{self.txn_id}: init_transactions failed: {e}")
            self.producer = p
            self.instances += 1

    def replace(self):
        self.producer = None

    def run(self, body, commit):
        """Begins a transaction, runs body(producer), then commits (or aborts, commit=False)."""
        self.ensure()
        commit_asked = False
        try:
            self.producer.begin_transaction()
            body(self.producer)
            if commit:
                commit_asked = True
                COMMITTING.set()
                try:
                    retrying(lambda: self.producer.commit_transaction(30), f"{self.txn_id} commit")
                finally:
                    COMMITTING.clear()
                return COMMITTED
        except KafkaException as e:
            if not e.args[0].txn_requires_abort():
                self.replace()  # fatal (fenced, ...) or retries exhausted
                return UNKNOWN if commit_asked else ABORTED
        try:
            retrying(lambda: self.producer.abort_transaction(30), f"{self.txn_id} abort")
        except KafkaException:
            self.replace()
        return UNKNOWN if commit_asked else ABORTED


class TxnProducer(threading.Thread):
    """Transactions of 1-12 records over the partitions of TXN_TOPICS, a quarter aborted on
    purpose (after their records are written); remembers each transaction's record count and
    outcome."""

    def __init__(self, bootstrap, txn_id, name, rng):
        super().__init__(daemon=True)
        self.runner = TxnRunner(bootstrap, txn_id)
        self.name_ = name
        self.rng = random.Random(rng.random())
        self.stop_flag = threading.Event()
        self.txns = {}  # transaction number -> [record count, outcome]
        self.error = None

    def run(self):
        try:
            n = 0
            while not self.stop_flag.is_set():
                count = self.rng.randint(1, 12)
                commit = self.rng.random() >= 0.25
                self.txns[n] = [count, UNKNOWN]  # until decided
                self.txns[n][1] = self.runner.run(lambda p: self.produce(p, n, count, commit), commit)
                n += 1
                time.sleep(self.rng.uniform(0, 0.05))
        except Exception as e:  # reported by TxnLoad.finish()
            self.error = e

    def produce(self, producer, n, count, commit):
        for i in range(count):
            topic = self.rng.choice(sorted(TXN_TOPICS))
            partition = self.rng.randrange(TXN_TOPICS[topic])
            while True:
                try:
                    producer.produce(topic, value=txn_payload(self.name_, n, i, count), partition=partition)
                    break
                except BufferError:
                    producer.poll(0.05)
        if not commit:
            # Written before the abort, which would otherwise purge them unsent: aborted data in
            # the log for read_committed to skip.
            producer.flush(30)
        producer.poll(0)


class Abandoner(threading.Thread):
    """At a random moment, begins a transaction on a transactional id of its own, writes one
    record to every partition of TXN_TOPICS and walks away without ending it (its producer is
    kept, never closed): the coordinator must abort it after ABANDONED_TXN_TIMEOUT_MS, also when
    the broker was killed meanwhile, or the last stable offset of those partitions never moves."""

    def __init__(self, bootstrap, name, delay):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.name_ = name
        self.delay = delay
        self.count = sum(TXN_TOPICS.values())
        self.producer = None
        self.error = None

    def run(self):
        try:
            time.sleep(self.delay)
            p = txn_producer(self.bootstrap, f"torture-{self.name_}", ABANDONED_TXN_TIMEOUT_MS)
            retrying(lambda: p.init_transactions(30), f"{self.name_} init_transactions", 120)
            self.producer = p
            p.begin_transaction()
            i = 0
            for topic in sorted(TXN_TOPICS):
                for partition in range(TXN_TOPICS[topic]):
                    p.produce(topic, value=txn_payload(self.name_, 0, i, self.count), partition=partition)
                    i += 1
            p.flush(10)
        except Exception as e:
            self.error = e


class EosLoop(threading.Thread):
    """Consume-transform-produce in transactions, as a Kafka Streams thread: reads TXN_SRC as a
    member of TXN_EOS_GROUP (read_committed), writes one record per source record to TXN_EOS_OUT
    and sends the consumed offsets to the transaction (sendOffsetsToTransaction). After a
    transaction that did not commit, the consumer is replaced by a new member, which resumes from
    the group's committed offsets. Exactly once: the output holds each source record below the
    committed offset once and nothing at or above it (check_eos)."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        # librdkafka's send_offsets_to_transaction can wait forever for the group coordinator
        # when it found the broker down and sees no later change of the broker's state
        # (confluentinc/librdkafka#5456, #5511): idle connections closed by the client make one.
        self.runner = TxnRunner(bootstrap, "torture-eos", extra={"connections.max.idle.ms": 2000})
        self.consumer = None
        self.stop_flag = threading.Event()
        self.outcomes = {COMMITTED: 0, ABORTED: 0, UNKNOWN: 0}
        self.error = None

    def new_consumer(self):
        if self.consumer is not None:
            self.consumer.close()
        self.consumer = group_consumer(self.bootstrap, TXN_EOS_GROUP,
                                       **{"isolation.level": "read_committed"})
        self.consumer.subscribe([TXN_SRC])

    def run(self):
        try:
            self.new_consumer()
            while not self.stop_flag.is_set():
                msgs = [m for m in self.consumer.consume(200, 0.2) if m.error() is None]
                if not msgs:
                    continue
                outcome = self.runner.run(lambda p: self.transform(p, msgs), True)
                self.outcomes[outcome] += 1
                if outcome != COMMITTED:
                    self.new_consumer()
        except Exception as e:
            self.error = e
        finally:
            if self.consumer is not None:
                self.consumer.close()

    def transform(self, producer, msgs):
        offsets = {}
        for m in msgs:
            value = f"eos|{m.partition()}|{m.offset()}|".encode()
            while True:
                try:
                    producer.produce(TXN_EOS_OUT, value=value, partition=m.partition() % EOS_TOPICS[TXN_EOS_OUT])
                    break
                except BufferError:
                    producer.poll(0.05)
            offsets[m.partition()] = m.offset() + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(TXN_SRC, p, o) for p, o in sorted(offsets.items())],
            self.consumer.consumer_group_metadata(), 30)


class TxnLoad:
    """The transactional part of a round's load."""

    def __init__(self, bootstrap, round_no, duration, rng):
        self.producers = [TxnProducer(bootstrap, f"torture-tx{i}", f"r{round_no}-tx{i}", rng)
                          for i in range(TXN_PRODUCERS)]
        self.feeder = ProducerLoad(bootstrap, f"r{round_no}-src", "none", EOS_TOPICS[TXN_SRC], 100, rng,
                                   topic=TXN_SRC)
        self.eos = EosLoop(bootstrap)
        self.abandoner = Abandoner(bootstrap, f"r{round_no}-abandoned", rng.uniform(0, duration))

    def threads(self):
        return self.producers + [self.feeder, self.eos, self.abandoner]

    def start(self):
        for t in self.threads():
            t.start()

    def finish(self):
        """Stops the load once each thread's transaction in flight is decided."""
        for t in self.producers + [self.eos]:
            t.stop_flag.set()
        self.feeder.finish()
        if self.feeder.fatal:
            raise Failure(f"producer {self.feeder.name_} hit a fatal error: {self.feeder.fatal}")
        for t in self.producers + [self.eos, self.abandoner]:
            t.join(300)
            if t.is_alive():
                raise Failure(f"{type(t).__name__} did not finish within 300 s")
            if t.error is not None:
                raise t.error if isinstance(t.error, Failure) else Failure(f"{type(t).__name__}: {t.error!r}")

    def ledger(self):
        """(producer name, transaction number) -> (record count, outcome)."""
        out = {(p.name_, n): tuple(v) for p in self.producers for n, v in p.txns.items()}
        if self.abandoner.producer is not None:
            out[(self.abandoner.name_, 0)] = (self.abandoner.count, ABORTED)
        return out


def list_offsets(admin, tps, isolation):
    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, isolation_level=isolation,
                                 request_timeout=30)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def wait_stable(bootstrap, topics, seconds=60):
    """Waits until the last stable offset (ListOffsets latest, read_committed) of every partition
    reaches its high watermark: with no producer running, every transaction must end (its
    producer's commit or abort, the coordinator's abort after the timeout, or the completion of a
    prepared one after a restart). Returns the high watermarks."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    deadline = time.time() + seconds
    while True:
        lso = list_offsets(admin, tps, IsolationLevel.READ_COMMITTED)
        hw = list_offsets(admin, tps, IsolationLevel.READ_UNCOMMITTED)
        behind = {tp: (lso[tp], hw[tp]) for tp in hw if lso[tp] != hw[tp]}
        if not behind:
            return hw
        if time.time() > deadline:
            raise Failure(f"last stable offset below the high watermark {seconds} s after the producers "
                          f"stopped (a hanging transaction), (lso, hw) per partition: {behind}")
        time.sleep(0.2)


def read_topics(bootstrap, topics, isolation):
    """Every record of the partitions of `topics` up to their end (the last stable offset with
    read_committed): a list of (topic, partition, offset, value)."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "log_level": 2,
        "group.id": "torture-txn-reader",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "check.crcs": True,
        # Every partition ends at its last stable offset: no reason to wait for more.
        "fetch.wait.max.ms": 20,
    })
    try:
        tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t, n in topics.items() for p in range(n)]
        c.assign(tps)
        pending = {(tp.topic, tp.partition) for tp in tps}
        out = []
        deadline = time.time() + 300
        while pending:
            if time.time() > deadline:
                raise Failure(f"{isolation} read did not reach the end of {sorted(pending)}")
            for m in c.consume(10000, 1.0):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard((m.topic(), m.partition()))
                        continue
                    raise Failure(f"{isolation} read error on {m.topic()}-{m.partition()}: {m.error()}")
                out.append((m.topic(), m.partition(), m.offset(), m.value()))
        return out
    finally:
        c.close()


def check_transactions(bootstrap, txn_ledger, stats):
    """What a round asserts of the transactional load (txn_ledger: every transaction so far):
    - the last stable offset reaches the high watermark of every transactional partition;
    - read_committed: every committed transaction's records are present exactly once, nothing of
      an aborted one is, an unknown one is all or nothing across its partitions, and nothing
      else is there;
    - read_uncommitted: only data records (a control record would not parse), including every
      record read_committed saw;
    - exactly once through sendOffsetsToTransaction (check_eos)."""
    wait_stable(bootstrap, {**TXN_TOPICS, **EOS_TOPICS})
    seen = {}
    eos_output = []
    committed_view = read_topics(bootstrap, {**TXN_TOPICS, TXN_EOS_OUT: EOS_TOPICS[TXN_EOS_OUT]},
                                 "read_committed")
    for topic, partition, offset, value in committed_view:
        if topic == TXN_EOS_OUT:
            eos_output.append(value)
            continue
        name, txn, i, count = parse_txn_payload(value)
        if (name, txn, i) in seen:
            raise Failure(f"transactional record {(name, txn, i)} seen twice: at {seen[(name, txn, i)]} "
                          f"and {(topic, partition, offset)}")
        seen[(name, txn, i)] = (topic, partition, offset)
    by_txn = {}
    for name, txn, i in seen:
        by_txn.setdefault((name, txn), set()).add(i)
    tally = {COMMITTED: 0, ABORTED: 0, UNKNOWN + " (visible)": 0, UNKNOWN + " (not visible)": 0}
    for key, (count, outcome) in txn_ledger.items():
        got = len(by_txn.pop(key, ()))
        if outcome == COMMITTED and got != count:
            raise Failure(f"committed transaction {key} shows {got} of its {count} records to read_committed")
        if outcome == ABORTED and got:
            raise Failure(f"aborted transaction {key} shows {got} of its {count} records to read_committed")
        if outcome == UNKNOWN and got not in (0, count):
            raise Failure(f"transaction {key} (outcome unknown) shows {got} of its {count} records: not atomic")
        tally[outcome if outcome != UNKNOWN else f"{UNKNOWN} ({'visible' if got else 'not visible'})"] += 1
    if by_txn:
        raise Failure(f"read_committed shows records of transactions never begun: {sorted(by_txn)[:5]}")
    uncommitted = {parse_txn_payload(v)[:3]
                   for _, _, _, v in read_topics(bootstrap, TXN_TOPICS, "read_uncommitted")}
    missing = set(seen) - uncommitted
    if missing:
        raise Failure(f"read_uncommitted misses records read_committed sees, e.g. {sorted(missing)[:3]}")
    eos = check_eos(bootstrap, eos_output)
    stats["txn_outcomes"] = tally
    stats["eos_records"] = eos
    log(f"  transactions ok: {tally}; {len(seen)} records visible to read_committed of "
        f"{len(uncommitted)} written; exactly once through {TXN_EOS_GROUP}: {eos} source records")


def check_eos(bootstrap, output):
    """Each source record below TXN_EOS_GROUP's committed offset is in the read_committed output
    (the values read from TXN_EOS_OUT) exactly once; none at or above it. Returns how many
    source records were processed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": TXN_EOS_GROUP, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "log_level": 2})
    try:
        tps = c.committed([TopicPartition(TXN_SRC, p) for p in range(EOS_TOPICS[TXN_SRC])], timeout=30)
        committed = {tp.partition: max(tp.offset, 0) for tp in tps}
    finally:
        c.close()
    got = {p: [] for p in committed}
    for value in output:
        _, p, off, _ = value.split(b"|")
        got[int(p)].append(int(off))
    for p, want in committed.items():
        offs = sorted(got[p])
        if offs != list(range(want)):
            dups = sorted({o for o in offs if offs.count(o) > 1})[:5]
            gaps = sorted(set(range(want)) - set(offs))[:5]
            extra = sorted(o for o in set(offs) if o >= want)[:5]
            raise Failure(f"{TXN_SRC}-{p}: committed offset {want} but the output holds {len(offs)} records; "
                          f"duplicated {dups}, missing {gaps}, beyond the committed offset {extra}")
    return sum(committed.values())


# ---------------------------------------------------------------------------------------------
# File damage (broker stopped)


def segment_path(data_dir, partition, base, suffix):
    return os.path.join(data_dir, f"{TOPIC}-{partition}", f"{base:020d}.{suffix}")


def recovery_points(data_dir):
    """Each TOPIC partition's recovery point in the data directory's
    recovery-point-offset-checkpoint (absent: 0). After a crash the broker verifies only the
    batches from there on, as Kafka's LogLoader does: what was flushed before is trusted."""
    points = {}
    try:
        with open(os.path.join(data_dir, "recovery-point-offset-checkpoint")) as f:
            lines = f.read().splitlines()[2:]
    except FileNotFoundError:
        return points
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and fields[0] == TOPIC:
            points[int(fields[1])] = int(fields[2])
    return points


def damage_log(rng, data_dir, kind, batch_list):
    """Cuts, zero-fills or flips a byte in a random non-empty segment of a random partition, in
    the batches a crash can have torn: those at or past the partition's recovery point (damage
    to flushed data is bit rot, which Kafka does not look for at start-up either; the consumer's
    CRC check meets it). Returns (partition, expected new log end offset), or None when every
    batch was flushed."""
    points = recovery_points(data_dir)
    by_part = {}
    for (name, seg, pos, size, base, last) in batch_list:
        if name.startswith(TOPIC + "-"):
            by_part.setdefault(int(name.rsplit("-", 1)[1]), []).append((seg, pos, size, base, last))
    unflushed = {p: [b for b in batches if b[3] >= points.get(p, 0)]
                 for p, batches in by_part.items()}
    unflushed = {p: bs for p, bs in unflushed.items() if bs}
    if not unflushed:
        return None
    partition = rng.choice(sorted(unflushed))
    batches = by_part[partition]
    # Mostly the last segment, where a crash tears logs; sometimes an older unflushed one.
    segs = sorted({b[0] for b in unflushed[partition]})
    seg = segs[-1] if rng.random() < 0.7 else rng.choice(segs)
    in_seg = [b for b in batches if b[0] == seg]
    damageable = [b for b in unflushed[partition] if b[0] == seg]
    floor = damageable[0][1]
    path = segment_path(data_dir, partition, seg, "log")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        data = f.read()
        if kind == "cut":
            at = rng.randrange(floor, size)
            f.truncate(at)
            changed = at
        elif kind == "zero" and rng.random() < 0.3:
            # Zeros past the end, as a file system may leave after a crash that grew the file
            # before its data reached the disk.
            f.seek(size)
            f.write(bytes(rng.randrange(1, 65536)))
            changed = size
        elif kind == "zero":
            at = rng.randrange(floor, size)
            f.seek(at)
            f.write(bytes(size - at))
            nonzero = [i for i in range(at, size) if data[i] != 0]
            changed = nonzero[0] if nonzero else None
        else:  # flip: a byte the CRC covers or the length field (base offset and leader epoch
            # are outside the CRC in Kafka's format, so their damage is not detectable).
            while True:
                b = rng.choice(damageable)
                rel = rng.randrange(b[2])
                if rel >= 16 or 8 <= rel < 12:
                    break
            changed = b[1] + rel
            f.seek(changed)
            f.write(bytes([data[changed] ^ rng.randrange(1, 256)]))
    # Batches wholly before the first changed byte survive; the rest of the partition goes (as in
    # Kafka's recovery, the segments after a segment with a bad tail are deleted).
    old_end = max(b[4] for b in batches) + 1
    if changed is None:
        new_end = old_end  # the zeros fell on zeros: nothing changed
        changed = size
    else:
        hit = [b for b in in_seg if b[1] + b[2] > changed]
        new_end = hit[0][3] if hit else in_seg[-1][4] + 1
    log(f"  damage {kind}: {TOPIC}-{partition} segment {seg} at byte {changed} of {size}: "
        f"log end {old_end} -> {new_end}")
    return partition, new_end


def damage_indexes(rng, data_dir, kind, clean):
    """Deletes or corrupts .index/.timeindex files, and .txnindex files that hold aborted
    transactions, of random segments of random partitions."""
    files = []
    for d in sorted(os.listdir(data_dir)):
        full = os.path.join(data_dir, d)
        if os.path.isdir(full):
            files += [os.path.join(full, f) for f in os.listdir(full) if f.endswith((".index", ".timeindex"))]
            files += [os.path.join(full, f) for f in os.listdir(full)
                      if f.endswith(".txnindex") and os.path.getsize(os.path.join(full, f))]
    chosen = rng.sample(files, max(1, min(len(files), rng.randrange(1, 8))))
    for path in chosen:
        size = os.path.getsize(path)
        entry = {".timeindex": 12, ".txnindex": 34}.get(os.path.splitext(path)[1], 8)
        if kind == "index-delete":
            os.remove(path)
            what = "deleted"
        elif clean:
            # After a clean shutdown the broker trusts its indexes, as Kafka does, after a sanity
            # check; only damage that check can see is injected: a torn last entry.
            if size < entry:
                os.remove(path)
                what = "deleted (too small to tear)"
            else:
                with open(path, "r+b") as f:
                    f.truncate(size - rng.randrange(1, entry))
                what = "torn"
        else:
            how = rng.choice(["garbage", "truncate", "zero-tail", "append-garbage"])
            with open(path, "r+b") as f:
                if how == "garbage" and size:
                    at = rng.randrange(size)
                    f.seek(at)
                    f.write(rng.randbytes(min(size - at, rng.randrange(1, 64))))
                elif how == "truncate":
                    f.truncate(rng.randrange(size + 1))
                elif how == "zero-tail" and size:
                    at = rng.randrange(size)
                    f.seek(at)
                    f.write(bytes(size - at))
                else:
                    f.seek(0, 2)
                    f.write(rng.randbytes(rng.randrange(1, 40)))
            what = how
        log(f"  damage {kind}: {os.path.relpath(path, data_dir)} {what}")


# ---------------------------------------------------------------------------------------------
# Verification


class Ledger:
    """Everything acknowledged so far: record id -> (partition, offset), and what was lost on
    purpose (records at or after an injected damage point)."""

    def __init__(self, partitions):
        self.partitions = partitions
        self.acked = {}
        self.lost_by_damage = set()
        self.commits = {}  # partition -> highest acknowledged committed offset
        self.txns = {}  # (transactional producer, transaction number) -> (record count, outcome)
        # Partitions whose end moved back through injected damage, until the group commits there
        # again: their committed offset may lie beyond the new end.
        self.damaged = set()

    def add_round(self, producers, member):
        for p in producers:
            for seq, where in p.acked.items():
                self.acked[(p.name_, seq)] = where
        for part, off in member.acked_commits.items():
            self.commits[part] = max(self.commits.get(part, -1), off)
            # A commit acknowledged after the damage is again a valid offset of the new log.
            self.damaged.discard(part)

    def truncate(self, partition, new_end):
        gone = [k for k, (p, o) in self.acked.items() if p == partition and o >= new_end]
        for k in gone:
            del self.acked[k]
            self.lost_by_damage.add(k)
        self.commits.pop(partition, None)
        self.damaged.add(partition)
        return len(gone)


def read_everything(bootstrap, partitions):
    """Reads every partition from its start to its high watermark; returns
    ({partition: (low, high)}, {record id: (partition, offset)}); fails on gaps and duplicates."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "log_level": 2,
        "group.id": "torture-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "check.crcs": True,
        "fetch.message.max.bytes": 4 * 1024 * 1024,
    })
    try:
        marks = {}
        for p in range(partitions):
            marks[p] = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)
        c.assign([TopicPartition(TOPIC, p, lo) for p, (lo, hi) in marks.items() if hi > lo])
        expect = {p: lo for p, (lo, hi) in marks.items()}
        pending = {p for p, (lo, hi) in marks.items() if hi > lo}
        seen = {}
        deadline = time.time() + 600
        while pending:
            if time.time() > deadline:
                raise Failure(f"read-back did not reach the high watermark of partitions {sorted(pending)}")
            for m in c.consume(10000, 1.0):
                p = m.partition()
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if expect[p] >= marks[p][1]:
                            pending.discard(p)
                        continue
                    raise Failure(f"read-back error on partition {p}: {m.error()}")
                off = m.offset()
                if off != expect[p]:
                    raise Failure(f"partition {p}: offset {off} follows {expect[p] - 1} (offsets not dense)")
                expect[p] = off + 1
                rid = parse_payload(m.value())
                if rid in seen:
                    raise Failure(f"record {rid} is stored twice: at {seen[rid]} and {(p, off)}")
                seen[rid] = (p, off)
                if expect[p] >= marks[p][1]:
                    pending.discard(p)
        return marks, seen
    finally:
        c.close()


def committed_offsets(bootstrap, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                  "log_level": 2})
    try:
        tps = c.committed([TopicPartition(TOPIC, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        c.close()


def check_round(broker, ledger):
    """What a round asserts through a client (the index check is gregor-check's):
    - offsets of every partition are dense from its log start (0) to its high watermark;
    - no record is stored twice (acknowledged or not), every value matches its producer and sequence;
    - every acknowledged record not lost to injected damage is present at the offset its
      acknowledgement gave; no record lost to injected damage is present;
    - each partition's committed offset is >= the highest commit the broker acknowledged and
      <= the high watermark (partitions damaged in this round are exempt: their end moved back)."""
    marks, seen = read_everything(broker.bootstrap, ledger.partitions)
    for p, (lo, hi) in marks.items():
        if lo != 0:
            raise Failure(f"partition {p}: log start offset {lo}, expected 0 (no retention)")
    for rid, where in ledger.acked.items():
        got = seen.get(rid)
        if got != where:
            raise Failure(f"acknowledged record {rid} at {where} is {'missing' if got is None else f'at {got}'}")
    back = ledger.lost_by_damage.intersection(seen)
    if back:
        raise Failure(f"{len(back)} records lost to injected damage are present again, e.g. {next(iter(back))}")
    committed = committed_offsets(broker.bootstrap, ledger.partitions)
    for p, want in ledger.commits.items():
        got = committed.get(p, -1)
        if got < want:
            raise Failure(f"partition {p}: committed offset {got} < acknowledged commit {want}")
    for p, got in committed.items():
        if p not in ledger.damaged and got > marks[p][1]:
            raise Failure(f"partition {p}: committed offset {got} > high watermark {marks[p][1]}")
    return marks, seen


# ---------------------------------------------------------------------------------------------
# Rounds


def crash_check(args, broker, stats, what):
    """Right after a kill, before recovery: every file must be consistent up to a torn tail."""
    parts, _ = run_checker(args.check_bin, broker.data_dir, torn_ok=True)
    torn = sum(p["torn_tail_bytes"] for p in parts.values())
    stats["torn_tail_bytes"] += torn
    log(f"  {what}; logs consistent at the crash (torn tail bytes: {torn})")


def run_round(n, scenario, args, rng, broker, ledger, stats):
    expected_end = None
    log(f"round {n}: {scenario}")
    broker.extra_overrides = CLEANER_OVERRIDES if scenario == "recreate" else []
    broker.start()
    producers = [ProducerLoad(broker.bootstrap, f"r{n}-{codec}", codec, args.partitions, args.rate, rng)
                 for codec in CODECS]
    member = GroupMember(broker.bootstrap)
    member.start()
    for p in producers:
        p.start()
    txn = TxnLoad(broker.bootstrap, n, args.duration, rng)
    txn.start()
    churn = None
    if scenario == "recreate":
        churn = Churn(broker.bootstrap, broker.data_dir)
        churn.start()
    if scenario in KILL_SCENARIOS:
        time.sleep(rng.uniform(0.3, args.duration))
        if rng.random() < 0.5 and COMMITTING.wait(2):
            time.sleep(rng.uniform(0, 0.005))
            log("  the kill comes while a transaction commits")
        if scenario == "kill-stopping":
            delay = rng.uniform(0, 0.03)
            if broker.kill9_while_stopping(delay):
                stats["kills"] += 1
                crash_check(args, broker, stats, f"SIGKILL {delay * 1000:.0f} ms into a clean shutdown")
            else:
                crash_check(args, broker, stats, f"clean shutdown finished within {delay * 1000:.0f} ms")
        else:
            broker.kill9()
            stats["kills"] += 1
            crash_check(args, broker, stats, "SIGKILL under load")
        time.sleep(rng.uniform(0, 1.0))
        if scenario == "kill-twice":
            # Kill again during start-up and recovery.
            broker.start_no_wait()
            time.sleep(rng.uniform(0, 0.05))
            broker.kill9()
            stats["kills"] += 1
            crash_check(args, broker, stats, "SIGKILL during start-up")
        broker.start()
        # A producer that starts after the crash gets a new producer id while the older ones
        # keep theirs: ids must not be handed out twice across a crash.
        late = ProducerLoad(broker.bootstrap, f"r{n}-late", rng.choice(CODECS), args.partitions, args.rate, rng)
        late.start()
        producers.append(late)
        time.sleep(rng.uniform(1.0, 3.0))
    else:
        time.sleep(args.duration)
    if churn is not None:
        churn.finish()
        log(f"  {churn.gen} generations of {len(CHURN_TOPICS)} compacted topics deleted and re-created "
            f"under load, {churn.written} records written")
    for p in producers:
        p.finish()
    txn.finish()
    for count, outcome in txn.ledger().values():
        stats[f"txn_{outcome}"] += 1
    stats["eos_txn_committed"] += txn.eos.outcomes[COMMITTED]
    ledger.txns.update(txn.ledger())
    member.finish()
    ledger.add_round(producers, member)
    for p in producers:
        stats["sent"] += p.sent
        stats["acked"] += len(p.acked)
        stats["failed"] += p.failed
        if p.fatal:
            # An idempotent producer only fails fatally when the broker answers a sequence it
            # should have accepted (OUT_OF_ORDER_SEQUENCE, UNKNOWN_PRODUCER_ID): lost producer state.
            stats["fatal"] += 1
            raise Failure(f"producer {p.name_} hit a fatal error: {p.fatal}")
    stats["commits_acked"] += member.commits_acked
    if scenario in DAMAGE_SCENARIOS:
        # Index damage also after a clean stop, when the broker trusts (and so must vet) its indexes.
        clean = (scenario == "index-delete" and rng.random() < 0.5) or (
            scenario == "index-corrupt" and rng.random() < 0.3)
        if clean:
            broker.stop()
        else:
            broker.kill9()
            stats["kills"] += 1
        _, batch_list = run_checker(args.check_bin, broker.data_dir, torn_ok=True, batches=True)
        log(f"  broker {'stopped cleanly' if clean else 'killed'}; injecting {scenario}")
        if scenario in ("cut", "zero", "flip"):
            expected_end = damage_log(rng, broker.data_dir, scenario, batch_list)
            if expected_end is None:
                log("  every batch was flushed before the kill: nothing a crash could tear")
            else:
                partition, new_end = expected_end
                stats["lost_by_damage"] += ledger.truncate(partition, new_end)
        else:
            damage_indexes(rng, broker.data_dir, scenario, clean)
        stats["damages"] += 1
        if rng.random() < 0.5:
            # Kill the recovery of the damage itself half of the time.
            broker.start_no_wait()
            time.sleep(rng.uniform(0, 0.03))
            broker.kill9()
            stats["kills"] += 1
            log("  SIGKILL during the recovery of the damage")
        broker.start()
    if churn is not None:
        # The files after a clean stop are what a deleted topic's late work would have damaged.
        broker.stop()
        run_checker(args.check_bin, broker.data_dir)
        broker.start()
        churn.verify()
        churn.drop_topics()
        log("  after a restart the last generation is intact; churn topics deleted")
        stats["recreations"] += churn.gen * len(CHURN_TOPICS)
    check_transactions(broker.bootstrap, ledger.txns, stats)
    marks, seen = check_round(broker, ledger)
    if scenario in ("cut", "zero", "flip") and expected_end is not None:
        partition, new_end = expected_end
        if marks[partition][1] != new_end:
            raise Failure(f"partition {partition}: log end {marks[partition][1]} after damage, expected {new_end}")
    broker.stop()
    parts, _ = run_checker(args.check_bin, broker.data_dir)
    doomed = [d for d in os.listdir(broker.data_dir) if d.endswith("-delete")]
    if doomed:
        raise Failure(f"directories of deleted partitions left after a clean stop: {doomed[:5]}")
    for p, (lo, hi) in marks.items():
        got = parts.get(f"{TOPIC}-{p}", {}).get("end", 0)
        if got != hi:
            raise Failure(f"gregor-check sees log end {got} for partition {p}, the broker served {hi}")
    stats["rounds"] += 1
    stats["records_verified"] = len(seen)
    log(f"  ok: {len(seen)} records stored, {len(ledger.acked)} acknowledged and verified, "
        f"committed offsets intact, {sum(x['segments'] for x in parts.values())} segments checked")


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs {model}, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of load per round before the kill or damage")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help=f"comma-separated, rounds cycle through them: {','.join(ALL_SCENARIOS)}")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rate", type=int, default=400, help="records per second per producer")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--check-bin", required=True)
    args = ap.parse_args()
    # `kill -USR1 <pid>` prints every thread's stack (a hang).
    faulthandler.register(signal.SIGUSR1)
    scenarios = [s for s in args.scenarios.split(",") if s]
    bad = [s for s in scenarios if s not in ALL_SCENARIOS]
    if bad or not scenarios:
        ap.error(f"unknown scenarios {bad}; known: {ALL_SCENARIOS}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    log(f"crash torture: seed {seed}, {args.rounds} rounds, scenarios {','.join(scenarios)}, "
        f"{args.duration} s of load per round; {machine()}")
    work = tempfile.mkdtemp(prefix="gregor-torture.")
    broker = Broker(args.bin, os.path.join(work, "data"), free_port())
    ledger = Ledger(args.partitions)
    stats = dict(rounds=0, kills=0, damages=0, sent=0, acked=0, failed=0, fatal=0, lost_by_damage=0,
                 torn_tail_bytes=0, commits_acked=0, records_verified=0, recreations=0,
                 txn_committed=0, txn_aborted=0, txn_unknown=0, eos_txn_committed=0)
    started = time.time()
    ok = False
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 2})
        topics = [NewTopic(TOPIC, args.partitions, 1)]
        topics += [NewTopic(t, n, 1) for t, n in {**TXN_TOPICS, **EOS_TOPICS}.items()]
        for f in admin.create_topics(topics).values():
            f.result(30)
        broker.stop()
        for n in range(1, args.rounds + 1):
            run_round(n, scenarios[(n - 1) % len(scenarios)], args, rng, broker, ledger, stats)
        ok = True
    except Failure as e:
        log(f"FAILED: {e}")
        log(f"seed {seed}; data directory and broker log kept in {work}")
    finally:
        if broker.proc is not None:
            broker.kill9()
        stats["seconds"] = round(time.time() - started)
        stats["seed"] = seed
        stats["machine"] = machine()
        log("summary " + json.dumps(stats))
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif ok:
            log(f"data directory kept in {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
