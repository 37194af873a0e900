"""Client-independent parts of the consumer-group tests (test_groups.py of each Python suite):
a broker that completes a group's first rebalance at once, waiting, checks of assignments and of
what a group consumed, and a group member in a child process that a test can SIGKILL.

test_groups.py imports the `broker` fixture from here, which replaces compat_support's `broker`
in that module: the same session broker pattern, but with group.initial.rebalance.delay.ms=0
(Kafka's default of 3 s would dominate the run time). Tests of the default delay and of restarts
use `make_broker`.
"""

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import pytest

from compat_support import Broker

FAST_GROUPS = {"group.initial.rebalance.delay.ms": 0}


@pytest.fixture(scope="session")
def fast_group_broker():
    broker = Broker(FAST_GROUPS).start()
    yield broker
    broker.close()


@pytest.fixture
def broker(fast_group_broker):
    """The session's fast-rebalance broker, started again if an earlier test left it dead."""
    if fast_group_broker.proc is not None and fast_group_broker.proc.poll() is not None:
        fast_group_broker.proc = None
    if fast_group_broker.proc is None:
        fast_group_broker.start()
    return fast_group_broker


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls `predicate` until it returns something true and returns that; fails after
    `timeout` seconds with `what` (a string, or a function giving one, for the current state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {detail}")
        time.sleep(interval)


def is_even_split(assignments, partitions):
    """True if the member assignments ({name: set of partition numbers}) cover partitions
    0..partitions-1 exactly once, with sizes differing by at most one."""
    owned = [p for parts in assignments.values() for p in parts]
    sizes = [len(parts) for parts in assignments.values()]
    return sorted(owned) == list(range(partitions)) and max(sizes) - min(sizes) <= 1


def check_consumed_once(consumed, produced):
    """`consumed`: (partition, offset) pairs the group's members returned to the application;
    `produced`: the (partition, offset) pairs acknowledged to the producer. Every record must
    have been consumed, and none twice."""
    counts = Counter(consumed)
    twice = sorted(k for k, n in counts.items() if n > 1)
    missing = sorted(set(produced) - set(counts))
    unexpected = sorted(set(counts) - set(produced))
    assert not twice, f"{len(twice)} records consumed more than once, first {twice[:10]}"
    assert not missing, \
        f"{len(missing)} of {len(produced)} records never consumed, first {missing[:10]}"
    assert not unexpected, f"consumed records that were not produced: {unexpected[:10]}"


def wait_consumed(members, count, timeout=30):
    """Waits until the members (with `consumed` and `errors` lists) consumed `count` records in
    all, then a little longer for any duplicates to show. Stops early when a member failed."""
    total = lambda: sum(len(m.consumed) for m in members)  # noqa: E731
    errors = lambda: [e for m in members for e in m.errors]  # noqa: E731
    wait_until(lambda: total() >= count or errors(), timeout,
               lambda: f"{count} records consumed, have {total()}")
    assert not errors(), f"consumer errors: {errors()[:3]}"
    time.sleep(0.3)


def offsets_by_partition(pairs):
    """{partition: sorted offsets} of (partition, offset) pairs."""
    result = {}
    for partition, offset in pairs:
        result.setdefault(partition, []).append(offset)
    return {p: sorted(offsets) for p, offsets in result.items()}


class MemberProcess:
    """A subscribed consumer in a child process (the suite's group_member.py), so that a test can
    kill it with SIGKILL. The child prints one JSON line per assignment change,
    {"assigned": [partition, ...]}; `assignment` is the latest (None before the first)."""

    def __init__(self, script, *args):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, str(script), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.assignment = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.assignment = set(json.loads(line)["assigned"])
            except (ValueError, KeyError):
                pass

    def stderr_tail(self, chars=2000):
        self.stderr.seek(0)
        return self.stderr.read()[-chars:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.stderr.close()
