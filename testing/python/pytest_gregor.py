"""pytest fixtures for testing against gregor (README, "Testing with gregor").

One file, the standard library only. Put this directory on `sys.path` (or copy the file) and load
it as a plugin, in a conftest.py:

    pytest_plugins = ["pytest_gregor"]

Fixtures:
    gregor_broker  one gregor for the whole session, on free loopback ports, with its admin
                   listener on; `.bootstrap` for the clients, and the control plane as methods
    gregor         the same broker, reset to empty before each test that asks for it
                   (`POST /v1/reset`, milliseconds, no restart, clients stay connected)

The binary is `--gregor-bin`, else `$GREGOR_BIN`, else `gregor` on `PATH`. More flags with
`--gregor-args="--clock manual"` or the `gregor_args` ini option. Outside pytest, `Gregor` is a
context manager:

    with Gregor(args=["--clock", "manual"]) as g:
        g.seed({"topics": [{"name": "orders", "partitions": 3}]})
        g.advance_clock(46_000)
"""

import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GregorError(RuntimeError):
    """An admin request answered with an error status: `.status` and `.body` (decoded JSON)."""

    def __init__(self, status, body):
        super().__init__(f"gregor answered {status}: {body}")
        self.status = status
        self.body = body


class Gregor:
    """A gregor process with its admin listener, and its control plane as methods."""

    def __init__(self, binary=None, args=(), start_timeout=30):
        self.binary = binary or os.environ.get("GREGOR_BIN") or shutil.which("gregor")
        if not self.binary:
            raise RuntimeError("no gregor binary: set GREGOR_BIN or put gregor on PATH")
        self.args = list(args)
        self.start_timeout = start_timeout
        self.port = _free_port()
        self.admin_port = _free_port()
        self.data_dir = None
        self.proc = None
        self.log = None

    @property
    def bootstrap(self):
        """`bootstrap.servers` for the clients."""
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.data_dir = tempfile.mkdtemp(prefix="gregor-test-")
        self.log = open(os.path.join(self.data_dir, "gregor.log"), "wb")
        command = [self.binary, "--listen", self.bootstrap,
                   "--data-dir", os.path.join(self.data_dir, "data"),
                   "--admin-listen", f"127.0.0.1:{self.admin_port}", *self.args]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gregor exited with {self.proc.returncode}: {self.log_text()}")
            try:
                if self.request("GET", "/v1/healthz").get("status") == "ok":
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gregor did not start in {self.start_timeout}s: {self.log_text()}")
            time.sleep(0.01)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self, tail=4000):
        if self.data_dir is None:
            return ""
        with open(os.path.join(self.data_dir, "gregor.log"), "rb") as f:
            return f.read()[-tail:].decode(errors="replace")

    def request(self, method, path, body=None, query=None):
        """One admin API request: the decoded JSON answer, or GregorError for a status >= 400
        (408 from `await_` included)."""
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise GregorError(e.code, json.loads(e.read() or b"null")) from None

    # The control plane (README, "Testing with gregor").

    def reset(self, keep_topics=False):
        """Back to empty: topics (or only their records), groups, offsets, transactions."""
        return self.request("POST", "/v1/reset", {"keep_topics": keep_topics})

    def seed(self, document):
        """Topics, records and committed offsets from a seed document."""
        return self.request("POST", "/v1/seed", document)

    def snapshot(self, name):
        """Records the broker's whole state as snapshot `name` (replacing one of that name)."""
        return self.request("POST", "/v1/snapshot", {"name": name})

    def restore(self, name):
        """Restarts the broker onto snapshot `name`; clients' connections close and they
        reconnect to the snapshot's state. Answers once the broker serves again."""
        return self.request("POST", "/v1/restore", {"name": name})

    def snapshots(self):
        """The snapshots kept: each one's `name`, `created_ms` and `bytes`."""
        return self.request("GET", "/v1/snapshots")["snapshots"]

    def delete_snapshot(self, name):
        return self.request("DELETE", "/v1/snapshots/" + urllib.parse.quote(name))

    def fault(self, **rule):
        """Arms a fault rule (e.g. api="Produce", action="error", error="NOT_LEADER_OR_FOLLOWER",
        times=1); answers it with its `id`."""
        return self.request("POST", "/v1/faults", rule)

    def faults(self):
        return self.request("GET", "/v1/faults")["faults"]

    def clear_faults(self):
        return self.request("DELETE", "/v1/faults")

    def clock(self):
        return self.request("GET", "/v1/clock")["now_ms"]

    def advance_clock(self, ms):
        """Moves a `--clock manual` broker's clock: timeouts it decides expire at once."""
        return self.request("POST", "/v1/clock/advance", {"ms": ms})["now_ms"]

    def journal(self, client_id=None, api=None, limit=None):
        """The requests the broker served, oldest first."""
        query = {"client_id": client_id, "api": api, "limit": limit}
        return self.request("GET", "/v1/journal", query=query)["entries"]

    def await_(self, timeout_ms=10_000, **condition):
        """Blocks until a condition holds (group="g", state="Stable", members=2; topic="t",
        partition=0, high_watermark=10; ...); GregorError 408 with the last observed state if it
        does not in time."""
        return self.request("GET", "/v1/await", query={**condition, "timeout_ms": timeout_ms})


def pytest_addoption(parser):
    parser.addoption("--gregor-bin", default=None, help="the gregor binary (default: $GREGOR_BIN or PATH)")
    parser.addoption("--gregor-args", default=None, help="more gregor flags, shell-quoted")
    parser.addini("gregor_args", "more gregor flags, shell-quoted", default="")


@pytest.fixture(scope="session")
def gregor_broker(pytestconfig):
    args = pytestconfig.getoption("--gregor-args") or pytestconfig.getini("gregor_args")
    broker = Gregor(pytestconfig.getoption("--gregor-bin"), shlex.split(args or ""))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def gregor(gregor_broker):
    """The session's gregor, reset to empty (and no fault rule armed) for this test."""
    gregor_broker.clear_faults()
    gregor_broker.reset()
    return gregor_broker
