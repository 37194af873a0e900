"""Client-independent parts of the Python compat suites: the broker process, its pytest
fixtures (loaded by conftest.py as a plugin) and deterministic test records.

Every Python suite (aiokafka, confluent-kafka, kafka-python) loads it from compat/python-common
through its conftest.py.

The broker is gregor (GREGOR_BIN, default target/release/gregor of this checkout). To check the
tests themselves against Apache Kafka, set KAFKA_REFERENCE_LIBS to a directory holding the jars
of the kafka_2.13 artifact and its dependencies; a single-node KRaft broker is started instead.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


sys.path.insert(0, str(REPO_ROOT / "compat"))
from ports import free_port, free_ports  # noqa: E402,F401  (one picker for every script)


def unique_topic(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Broker:
    """One broker process on a free loopback port with a private data directory.

    `overrides` are Kafka broker config names and values (e.g. {"num.partitions": 3}).
    `brokers` > 1 serves that many brokers in the one process on consecutive ports (gregor's
    `--brokers`); `admin` turns on gregor's admin HTTP listener (`--admin-listen`, see `admin`).
    `listeners` adds listeners after the PLAINTEXT one, by name (SSL, SASL_PLAINTEXT, SASL_SSL),
    each on a free port of its own (see `listener`). `schema_registry` turns on gregor's schema
    registry (`--schema-registry-listen`) at `registry_url`; Apache Kafka has none. `seed` (a
    dict) is gregor's seed data document, applied at start-up (`--seed`). `args` are more of
    gregor's own command-line flags (e.g. ["--clock", "manual"]); Apache Kafka has none of them,
    so a broker given any refuses to start as Kafka.
    """

    def __init__(self, overrides=None, brokers=1, admin=False, listeners=(), schema_registry=False,
                 seed=None, args=()):
        self.overrides = dict(overrides or {})
        self.args = list(args)
        self.brokers = brokers
        self.listeners = {name: free_port() for name in listeners}
        self.port = free_ports(brokers)
        self.admin_port = free_port() if admin else None
        self.registry_port = free_port() if schema_registry else None
        self.data_dir = tempfile.mkdtemp(prefix="gregor-compat-")
        self.log_path = self.data_dir + ".log"
        self.seed_path = None
        if seed is not None:
            self.seed_path = self.data_dir + ".seed.json"
            Path(self.seed_path).write_text(json.dumps(seed))
        self.kafka_libs = os.environ.get("KAFKA_REFERENCE_LIBS")
        self.proc = None

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.port + i}" for i in range(self.brokers))

    @property
    def registry_url(self):
        return f"http://127.0.0.1:{self.registry_port}"

    def listener(self, name):
        """The bootstrap address of an extra listener."""
        return f"127.0.0.1:{self.listeners[name]}"

    def _listener_list(self):
        extra = "".join(f",{n}://127.0.0.1:{p}" for n, p in self.listeners.items())
        return f"PLAINTEXT://{self.bootstrap}{extra}"

    def admin(self, method, path, body=None):
        """One request to the admin HTTP listener, with `body` sent as JSON when given:
        (status, decoded JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data,
                                         method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    @property
    def name(self):
        return "Apache Kafka" if self.kafka_libs else "gregor"

    def start(self, timeout=60):
        command = self._kafka_command() if self.kafka_libs else self._gregor_command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"broker did not open port {self.port}:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig` and waits; returns the exit code (None if it was not running)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"broker ignored signal {sig} for {timeout}s")
        return proc.returncode

    def clean_exit(self, code):
        # The JVM reports death by SIGTERM as 143 even after an orderly shutdown.
        return code == 0 or (self.kafka_libs is not None and code == 143)

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            for path in (self.log_path, self.seed_path):
                if path and os.path.exists(path):
                    os.remove(path)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return ANSI_ESCAPE.sub("", "".join(f.readlines()[-lines:]))
        except OSError:
            return ""

    def _gregor_command(self):
        binary = os.environ.get("GREGOR_BIN", str(REPO_ROOT / "target/release/gregor"))
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"gregor binary not found at {binary}; build it or set GREGOR_BIN")
        command = [binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        if self.brokers > 1:
            command += ["--brokers", str(self.brokers)]
        if self.admin_port is not None:
            command += ["--admin-listen", f"127.0.0.1:{self.admin_port}"]
        if self.registry_port is not None:
            command += ["--schema-registry-listen", f"127.0.0.1:{self.registry_port}"]
        if self.seed_path is not None:
            command += ["--seed", self.seed_path]
        if self.listeners:
            command += ["--override", f"listeners={self._listener_list()}"]
        for key, value in self.overrides.items():
            command += ["--override", f"{key}={value}"]
        return command + self.args

    def _kafka_command(self):
        if self.args:
            raise RuntimeError(f"gregor's flags {self.args} have no Apache Kafka equivalent")
        props = Path(self.data_dir) / "server.properties"
        classpath = os.path.join(self.kafka_libs, "*")
        if not props.exists():
            controller = free_port()
            config = {
                "process.roles": "broker,controller",
                "node.id": 1,
                "controller.quorum.voters": f"1@127.0.0.1:{controller}",
                "listeners": f"{self._listener_list()},CONTROLLER://127.0.0.1:{controller}",
                "advertised.listeners": self._listener_list(),
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                "SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
                "log.dirs": os.path.join(self.data_dir, "logs"),
                "offsets.topic.replication.factor": 1,
                "transaction.state.log.replication.factor": 1,
                "transaction.state.log.min.isr": 1,
                **self.overrides,
            }
            props.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
            subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", "q1Sh-9_ISia_zwGINzRvyQ", "-c", str(props)],
                check=True, capture_output=True)
        return ["java", "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(props)]


# Fixtures

@pytest.fixture(scope="session")
def shared_broker():
    broker = Broker().start()
    yield broker
    broker.close()


@pytest.fixture
def broker(shared_broker):
    """The session's broker, started again if an earlier test left it dead."""
    if shared_broker.proc is not None and shared_broker.proc.poll() is not None:
        shared_broker.proc = None
    if shared_broker.proc is None:
        shared_broker.start()
    return shared_broker


@pytest.fixture
def make_broker():
    """Factory for private brokers (restarts, config overrides), closed after the test."""
    def make(overrides=None, **options):
        make.brokers.append(Broker(overrides, **options).start())
        return make.brokers[-1]

    make.brokers = []
    yield make
    for b in make.brokers:
        b.close()


@pytest.fixture
def topic(request):
    """A fresh topic name derived from the test's name."""
    return unique_topic(request.node.name.split("[")[0].replace("_", "-"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Appends the tail of each broker's log to the report of a failed test."""
    report = yield
    if report.failed and report.when == "call":
        brokers = [item.funcargs.get("broker")]
        brokers += getattr(item.funcargs.get("make_broker"), "brokers", [])
        for b in filter(None, brokers):
            report.sections.append((f"{b.name} log (tail)", b.log_tail()))
    return report


# Test records: deterministic, so a consumer can check each one from its index alone.

def make_record(i, base_timestamp_ms, null_header_values=True):
    """Record number `i`: (key, value, headers, timestamp_ms).

    Covers null and empty keys and values, empty and repeated header keys, null header values
    (unless the client cannot send them), a UTF-8 header key, binary values of varying size.
    """
    key = None if i % 97 == 13 else b"" if i % 89 == 5 else f"key-{i % 1000:04d}".encode()
    value = f"value-{i}|".encode() + bytes(range(i % 7, 256, 31)) * (i % 40)
    if i % 83 == 2:
        value = b""
    elif i % 101 == 7 and key is not None:  # a null key and value together is not useful
        value = None
    if i % 10 == 3:
        headers = []
    else:
        headers = [("seq", str(i).encode()), ("dup", b"first"), ("dup", b"second"),
                   ("empty", b""), ("schlüssel", "wert-ü".encode())]
        if i % 4 == 1 and null_header_values:
            headers.append(("null", None))
    return key, value, headers, base_timestamp_ms + 3 * i


def base_timestamp_ms():
    """A timestamp about 20 minutes ago: within Kafka's default timestamp bounds and retention."""
    return int(time.time() * 1000) - 20 * 60 * 1000
