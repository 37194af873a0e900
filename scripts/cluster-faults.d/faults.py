#!/usr/bin/env python3
"""Random faults against a cluster of three nodes under load, then a history check (issue 15).

Run through scripts/cluster-faults, which builds gregor and names the Kafka jars. Three nodes,
each a combined broker and controller, talk to each other only through the proxies of
netproxy.py (the controller listener behind controller.quorum.voters, the inter-broker listener
REPLICATION behind its advertised address, one proxy per node; the controller listener behind
one proxy per ordered pair of nodes, each node's controller.quorum.voters naming the ones it
uses); clients use the PLAINTEXT listener directly.
FaultLoad.java writes the load and its history; checker.py judges the history.

Each round draws one fault with the seeded generator, among the kinds --faults names (all by
default; a group name stands for its kinds: isolate, clock):
  isolate-partition-leader  cut off the leader of a random partition of the idempotent topic
  isolate-quorum-leader     cut off the metadata quorum's leader (from the quorum-state files)
  isolate-follower          cut off a replica that does not lead that partition
  pause                     SIGSTOP a random node, SIGCONT later
  kill                      kill -9 a random node, start it again later
  clock-forward             step the wall clock of the quorum's leader or of a partition's leader
                            CLOCK_STEP_MS forward (more than the broker session and the replica
                            lag), step it back at the end
  clock-back                the same backwards
  slow-disk                 every write and fsync of a node's logs waits DISK_DELAY_MS (gregor
                            only: a storage rule armed on its admin listener; Kafka has no such
                            switch)
The clock faults use libfaketime (--faketime-lib), preloaded into every node with its own
FAKETIME_TIMESTAMP_FILE, read on every call (FAKETIME_NO_CACHE=1), CLOCK_MONOTONIC left alone
(FAKETIME_DONT_FAKE_MONOTONIC=1; and FAKETIME_FORCE_MONOTONIC_FIX=0, without which the JVM's
timed waits return at once); the file holds the node's offset ("+12", "-12", "+0"). A self-test
at the start checks that a preloaded process sees the offset. During a clock step or a slow disk
the round samples every node's Metadata (a broker missing from it was fenced), and once the
cluster has recovered compares every partition's leader epoch with the one before (a leader
moved) and the quorum's epoch (an election). For gregor a fencing or a leader move under a clock
step or a slow disk is an anomaly ("fenced-by-clock", "leader-moved-by-clock", and "-slow-disk"):
its broker sessions and its quorum's timers (openraft) are on monotonic clocks, and neither fault
takes a heartbeat away. For Kafka they are figures only: Kafka 4.4's sessions are monotonic too,
but KRaft's election timers run on the wall clock (KafkaRaftClient polls with
time.milliseconds()): a quorum leader stepped forward resigns, a voter stepped forward campaigns
and may win, and the controller failover can fence a broker and move leaders (seed 11: 3
elections in 5 forward steps, broker 2 fenced once, two partitions moved; nothing lost). How long
the producers went without an acknowledgement is a figure for both.
An isolation or a pause lasts FAULT_SESSIONS times broker.session.timeout.ms (and a random
extra second or three), and at least until the nodes on the majority side fence the faulty node
(their Metadata no longer lists it, it leads no partition and is in no ISR, as Kafka's controller
does to a broker whose heartbeats stop) or FENCE_DEADLINE_S passes: how long that took is a
figure, and so are the rounds where it did not happen (Kafka 4.4 too left a cut-off quorum
leader unfenced once), not anomalies. After the fault is healed the round waits until the cluster has
recovered: every node lists the three brokers, every node's Metadata says the same of every
partition (no split brain on metadata), every partition of both topics is led and fully in
sync, the quorum-state files agree on leader and epoch, and the idempotent producers are
acknowledged again. A round that does not get there within RECOVERY_DEADLINE_S is an anomaly
("unrecovered") and ends the run.

Prints one JSON object: broker, seed, rounds, faults by kind, sent, acked, transactions,
anomalies by kind (checker.py's and this script's), and how long fencing and recovery took.
Exit status 1 on any anomaly.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
from netproxy import Network  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "compat"))
from ports import distinct_free_ports as free_ports  # noqa: E402  (compat/ports.py)

NODES = (1, 2, 3)
FAULTS = (
    "isolate-partition-leader",
    "isolate-quorum-leader",
    "isolate-follower",
    "pause",
    "kill",
    "clock-forward",
    "clock-back",
    "slow-disk",
)
GROUPS = {
    "isolate": ("isolate-partition-leader", "isolate-quorum-leader", "isolate-follower"),
    "clock": ("clock-forward", "clock-back"),
}
CLOCK_FAULTS = GROUPS["clock"]
# Faults only gregor can take: Kafka has no switch to slow its disk from outside.
GREGOR_ONLY = ("slow-disk",)
DATA_TOPIC = "faults"
TXN_TOPIC = "faults-txn"
PARTITIONS = 3
SESSION_MS = 3000
FAULT_SESSIONS = 2
# A clock step: past broker.session.timeout.ms and replica.lag.time.max.ms, well short of the
# producers' transaction.timeout.ms (60 s), whose expiry Kafka too measures on the wall clock.
CLOCK_STEP_MS = 4 * SESSION_MS
# What a slow disk adds to each write and fsync (drawn per round).
DISK_DELAY_MS = (20, 120)
# How often a clock or disk round looks at every node's Metadata.
SAMPLE_S = 0.5
FENCE_DEADLINE_S = 30
# How long the admin listener of a node with a slow disk may take to answer (see steady_round).
SLOW_DISK_ADMIN_TIMEOUT_S = 60
RECOVERY_DEADLINE_S = 120
START_DEADLINE_S = 120
# The settings both brokers run with: short sessions so that a round takes seconds.
SETTINGS = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_MS),
    "replica.lag.time.max.ms": "5000",
    "replica.socket.timeout.ms": "5000",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Layout:
    """The ports: each node's client, controller and inter-broker listeners, and the proxies.
    The client ports are consecutive from client_base (compat/ref-kafka-cluster.sh takes the
    first; the wrapper finds them with compat/lib.sh)."""

    def __init__(self, client_base):
        base = client_base
        self.client = {n: base + n - 1 for n in NODES}
        pairs = [(n, m) for n in NODES for m in NODES if n != m]
        need = 4 * len(NODES) + len(pairs)
        p = [q for q in free_ports(need + len(NODES)) if q not in self.client.values()][:need]
        self.controller = {n: p.pop() for n in NODES}
        # gregor's admin listener (the slow disk's storage rules, the clock's reading).
        self.admin = {n: p.pop() for n in NODES}
        self.replication = {n: p.pop() for n in NODES}
        self.replication_proxy = {n: p.pop() for n in NODES}
        # One controller proxy per ordered pair of nodes: node n reaches voter m at
        # controller_proxy[(n, m)] (each node's controller.quorum.voters names its own), so the
        # proxy knows both ends without asking the kernel. The quorum's RPCs give up within a
        # fraction of a second and connect again, faster than a lookup in /proc under load.
        self.controller_proxy = {pair: p.pop() for pair in pairs}

    def properties(self, n):
        # Its own entry is its listener (no node connects to itself).
        voters = ",".join(
            f"{m}@127.0.0.1:{self.controller[m] if m == n else self.controller_proxy[(n, m)]}"
            for m in NODES
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": str(n),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.client[n]},"
            f"REPLICATION://127.0.0.1:{self.replication[n]},"
            f"CONTROLLER://127.0.0.1:{self.controller[n]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.client[n]},"
            f"REPLICATION://127.0.0.1:{self.replication_proxy[n]}",
            "inter.broker.listener.name": "REPLICATION",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
        props.update(SETTINGS)
        return props

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.client[n]}" for n in NODES)


def process_gone(pid):
    """True once pid is dead or a zombie (a Kafka node is not our child: its parent exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Clocks:
    """Each node's libfaketime offset file (FAKETIME_TIMESTAMP_FILE), and the environment that
    preloads libfaketime into a node with it; `None` lib: no clock faults, nothing preloaded."""

    def __init__(self, work, lib):
        self.lib = lib
        self.dir = os.path.join(work, "clock")
        self.offsets_ms = {n: 0 for n in NODES}
        if lib:
            os.makedirs(self.dir, exist_ok=True)
            for n in NODES:
                self.step(n, 0)

    def path(self, n):
        return os.path.join(self.dir, f"node{n}")

    def env(self, n):
        if not self.lib:
            return {}
        return faketime_env(self.lib, self.path(n))

    def step(self, n, offset_ms):
        """Node n's wall clock is offset_ms from the real one from now on (whole seconds)."""
        self.offsets_ms[n] = offset_ms
        tmp = self.path(n) + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{offset_ms // 1000:+d}\n")
        os.replace(tmp, self.path(n))


def faketime_env(lib, offset_file):
    return {
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": offset_file,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # Else libfaketime 0.9.10 on this glibc makes every timed wait of the JVM (Object.wait,
        # LockSupport.parkNanos) return at once.
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
    }


# A JVM under libfaketime: its wall clock, its monotonic clock, and how long a 300 ms timed
# wait lasts on the monotonic one (the nodes' waits are such waits).
FAKETIME_PROBE = """
public class FaketimeProbe {
    public static void main(String[] a) throws Exception {
        long wall = System.currentTimeMillis(), mono = System.nanoTime();
        Object o = new Object();
        synchronized (o) { o.wait(300); }
        System.out.println(wall + " " + mono / 1000000 + " " + (System.nanoTime() - mono) / 1000000);
    }
}
"""


def faketime_self_test(lib, work):
    """A JVM with libfaketime preloaded as the nodes are sees the offset its file names, its
    monotonic clock does not move with it, and its timed waits wait; raises otherwise (a wrong
    library path, a variable this libfaketime does not know). gregor's own reading is checked in
    each clock round (its admin listener's /v1/clock)."""
    probe = os.path.join(work, "FaketimeProbe.java")
    with open(probe, "w") as f:
        f.write(FAKETIME_PROBE)
    offsets = os.path.join(work, "faketime-self-test")
    with open(offsets, "w") as f:
        f.write("+3600\n")
    run = lambda env: subprocess.run(["java", probe], env=env, capture_output=True, text=True,
                                     timeout=120, check=True).stdout.split()
    real = run(dict(os.environ))
    faked = run(dict(os.environ, **faketime_env(lib, offsets)))
    wall_s = (int(faked[0]) - int(real[0])) / 1000
    waited_ms = int(faked[2])
    # The two JVMs start seconds apart: the wall difference is the offset plus that.
    if not (3590 < wall_s < 3660 and waited_ms >= 250):
        raise RuntimeError(f"libfaketime {lib} does not step the JVM's wall clock alone: "
                           f"{wall_s:.0f}s later than a plain JVM (expected ~3600), a 300 ms "
                           f"wait took {waited_ms} ms")
    log(f"libfaketime: a JVM preloaded with +3600 s reads the wall clock {wall_s:.0f}s ahead; "
        f"a 300 ms wait took {waited_ms} ms")


class GregorCluster:
    def __init__(self, binary, work, layout, clocks, admin):
        self.binary = binary
        self.work = work
        self.layout = layout
        self.clocks = clocks
        # The admin listener: on when a fault needs it (its storage rules, its clock reading).
        self.admin_on = admin
        self.procs = {}

    def pid(self, n):
        p = self.procs.get(n)
        return p.pid if p is not None and p.returncode is None else None

    def log_path(self, n):
        return os.path.join(self.work, f"n{n}.log")

    def quorum_state_path(self, n):
        return os.path.join(self.work, f"n{n}", "__cluster_metadata-0", "quorum-state")

    async def start(self, n):
        args = [self.binary, "--data-dir", os.path.join(self.work, f"n{n}")]
        if self.admin_on:
            args += ["--admin-listen", f"127.0.0.1:{self.layout.admin[n]}"]
        for k, v in self.layout.properties(n).items():
            args += ["--override", f"{k}={v}"]
        out = open(self.log_path(n), "ab")
        env = dict(os.environ, **self.clocks.env(n))
        self.procs[n] = await asyncio.create_subprocess_exec(
            *args, stdout=out, stderr=out, env=env
        )
        out.close()

    def admin_call(self, n, method, path, body=None, timeout=10):
        """The admin listener of node n: (status, JSON answer)."""
        data = None if body is None else json.dumps(body).encode()
        url = f"http://127.0.0.1:{self.layout.admin[n]}{path}"
        req = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    async def admin_request(self, n, method, path, body=None, timeout=10):
        return await asyncio.to_thread(self.admin_call, n, method, path, body, timeout)

    async def wall_offset_ms(self, n):
        """How far node n's wall clock is from this script's, as the broker reads it."""
        try:
            status, answer = await self.admin_request(n, "GET", "/v1/clock")
        except (OSError, ValueError):
            return None
        return answer["now_ms"] - int(time.time() * 1000) if status == 200 else None

    async def start_all(self):
        for n in NODES:
            await self.start(n)
        for n in NODES:
            ok = await wait_until(lambda n=n: self._ready(n), START_DEADLINE_S)
            if not ok:
                raise RuntimeError(f"node {n} did not start (see {self.log_path(n)})")

    def _ready(self, n):
        try:
            with open(self.log_path(n), "rb") as f:
                return b"gregor is ready" in f.read()
        except OSError:
            return False

    async def kill(self, n):
        p = self.procs.get(n)
        if p is None:
            return
        p.send_signal(signal.SIGCONT)
        p.kill()
        await p.wait()

    async def restart(self, n):
        await self.start(n)

    async def stop_all(self):
        for n in NODES:
            await self.kill(n)


class KafkaCluster:
    """Three Apache Kafka nodes through compat/ref-kafka-cluster.sh, with this layout's listeners
    and voters as per-node extra properties."""

    def __init__(self, work, layout, clocks):
        self.dir = os.path.join(work, "kafka")
        self.layout = layout
        self.clocks = clocks
        self.script = os.path.join(ROOT, "compat", "ref-kafka-cluster.sh")
        self.extra = os.path.join(work, "kafka-extra")

    def pid(self, n):
        try:
            with open(os.path.join(self.dir, f"node{n}.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return None if process_gone(pid) else pid

    def quorum_state_path(self, n):
        return os.path.join(self.dir, f"node{n}", "logs", "__cluster_metadata-0", "quorum-state")

    def log_path(self, n):
        return os.path.join(self.dir, f"node{n}.log")

    async def _script(self, *args):
        env = dict(os.environ, KAFKA_REF_EXTRA_DIR=self.extra, KAFKA_CLUSTER_DEADLINE_S="180")
        p = await asyncio.create_subprocess_exec(
            self.script, *args, env=env, stdout=asyncio.subprocess.DEVNULL
        )
        if await p.wait() != 0:
            raise RuntimeError(f"ref-kafka-cluster.sh {' '.join(args)} failed")

    async def start_all(self):
        os.makedirs(self.extra, exist_ok=True)
        for n in NODES:
            with open(os.path.join(self.extra, f"node{n}.properties"), "w") as f:
                for k, v in self.layout.properties(n).items():
                    f.write(f"{k}={v}\n")
                # Kafka's transaction coordinator would wait for three in-sync replicas of
                # __transaction_state by default; the nodes here are the same three.
                f.write("transaction.state.log.min.isr=2\n")
            # The node's environment (libfaketime), which ref-kafka-cluster.sh adds.
            with open(os.path.join(self.extra, f"node{n}.env"), "w") as f:
                for k, v in self.clocks.env(n).items():
                    f.write(f"{k}={v}\n")
        await self._script("start", self.dir, str(self.layout.client[1]))

    async def kill(self, n):
        pid = self.pid(n)
        if pid is None:
            return
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: process_gone(pid), 30)

    async def restart(self, n):
        # start-node waits until the node is back in every ISR, as the round would anyway.
        await self._script("start-node", self.dir, str(n))

    async def stop_all(self):
        await self._script("stop", self.dir)


async def wait_until(cond, deadline_s, interval=0.25):
    end = time.monotonic() + deadline_s
    while True:
        r = cond()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return r
        if time.monotonic() >= end:
            return None
        await asyncio.sleep(interval)


def _str(b, pos):
    (n,) = struct.unpack_from(">h", b, pos)
    pos += 2
    if n < 0:
        return None, pos
    return b[pos : pos + n].decode(), pos + n


def _int32s(b, pos):
    (n,) = struct.unpack_from(">i", b, pos)
    pos += 4
    out = struct.unpack_from(f">{max(n, 0)}i", b, pos)
    return tuple(sorted(out)), pos + 4 * max(n, 0)


async def metadata(port, topics, timeout=5.0):
    """Metadata v7 from the node on port:
    (brokers, {(topic, partition): (leader, isr, leader epoch)})."""

    async def ask():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            client = b"cluster-faults"
            header = struct.pack(">hhih", 3, 7, 1, len(client)) + client
            body = struct.pack(">i", len(topics))
            for t in topics:
                body += struct.pack(">h", len(t)) + t.encode()
            body += b"\x00"
            frame = header + body
            writer.write(struct.pack(">i", len(frame)) + frame)
            await writer.drain()
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            return await reader.readexactly(size)
        finally:
            writer.close()

    b = await asyncio.wait_for(ask(), timeout)
    pos = 4 + 4  # correlation id, throttle time
    (nb,) = struct.unpack_from(">i", b, pos)
    pos += 4
    brokers = []
    for _ in range(nb):
        (node,) = struct.unpack_from(">i", b, pos)
        _, pos = _str(b, pos + 4)
        pos += 4
        _, pos = _str(b, pos)
        brokers.append(node)
    _, pos = _str(b, pos)  # cluster id
    pos += 4  # controller id
    (nt,) = struct.unpack_from(">i", b, pos)
    pos += 4
    parts = {}
    for _ in range(nt):
        pos += 2
        name, pos = _str(b, pos)
        pos += 1
        (np_,) = struct.unpack_from(">i", b, pos)
        pos += 4
        for _ in range(np_):
            _, index, leader, epoch = struct.unpack_from(">hiii", b, pos)
            pos += 14
            _, pos = _int32s(b, pos)
            isr, pos = _int32s(b, pos)
            _, pos = _int32s(b, pos)  # offline replicas
            parts[(name, index)] = (leader, isr, epoch)
    return tuple(sorted(brokers)), parts


class Run:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed if args.seed is not None else random.randrange(1 << 31)
        self.rng = random.Random(self.seed)
        self.kinds = args.kinds
        self.work = tempfile.mkdtemp(prefix="cluster-faults.")
        self.layout = Layout(args.client_base)
        clock_faults = any(k in CLOCK_FAULTS for k in self.kinds)
        self.clocks = Clocks(self.work, args.faketime_lib if clock_faults else None)
        if args.broker == "kafka":
            self.cluster = KafkaCluster(self.work, self.layout, self.clocks)
        else:
            admin = clock_faults or "slow-disk" in self.kinds
            self.cluster = GregorCluster(args.gregor, self.work, self.layout, self.clocks, admin)
        self.network = Network(NODES, self.cluster.pid)
        self.faults = {k: 0 for k in self.kinds}
        # Clock and disk rounds: the steps the broker was seen to take, the delays its disk
        # made, the longest time without an acknowledgement.
        self.steps_seen = 0
        self.disk_delays = 0
        self.stalls_s = []
        # By "clock" and "slow-disk": rounds with a fencing, with a leader move, and quorum
        # elections, under those faults.
        self.steady = {}
        self.anomalies = {}
        self.fence_s = []
        self.unfenced = 0
        self.recovery_s = []
        self.load = None
        self.control = os.path.join(self.work, "control")
        os.makedirs(self.control)
        self.history = os.path.join(self.work, "history.jsonl")
        self.topics = [DATA_TOPIC, TXN_TOPIC]

    def anomaly(self, kind, detail):
        self.anomalies[kind] = self.anomalies.get(kind, 0) + 1
        log(f"ANOMALY {kind}: {detail}")

    def acked(self):
        try:
            with open(os.path.join(self.control, "progress.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    async def views(self, nodes):
        out = {}
        for n in nodes:
            try:
                out[n] = await metadata(self.layout.client[n], self.topics)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, struct.error):
                pass
        return out

    def quorum_states(self):
        states = {}
        for n in NODES:
            try:
                with open(self.cluster.quorum_state_path(n)) as f:
                    s = json.load(f)
                states[n] = (s.get("leaderId", -1), s.get("leaderEpoch", -1))
            except (OSError, ValueError):
                pass
        return states

    def quorum_leader(self):
        states = self.quorum_states()
        best = max(states.values(), key=lambda s: s[1], default=(-1, -1))
        return best[0] if best[0] in NODES else None

    async def healthy(self):
        """Every node answers alike: three brokers, every partition led and fully in sync;
        the quorum-state files agree; returns that common view."""
        views = await self.views(NODES)
        if len(views) != len(NODES):
            return None
        first = next(iter(views.values()))
        if any(v != first for v in views.values()):
            return None
        brokers, parts = first
        if brokers != NODES or len(parts) != PARTITIONS * len(self.topics):
            return None
        if any(leader not in NODES or isr != NODES for leader, isr, _ in parts.values()):
            return None
        states = set(self.quorum_states().values())
        if len(states) != 1 or next(iter(states))[0] not in NODES:
            return None
        return first

    async def fenced(self, node):
        """The majority's view no longer counts node: not listed, leads nothing, in no ISR."""
        others = [n for n in NODES if n != node]
        views = await self.views(others)
        if not views:
            return False
        for brokers, parts in views.values():
            if node in brokers:
                return False
            for leader, isr, _ in parts.values():
                if leader == node or node in isr:
                    return False
        return True

    async def start(self):
        for (n, m), port in self.layout.controller_proxy.items():
            await self.network.proxy(m, port, self.layout.controller[m], source=n)
        for n in NODES:
            await self.network.proxy(n, self.layout.replication_proxy[n], self.layout.replication[n])
        log(f"seed {self.seed}; work {self.work}; faults {','.join(self.kinds)}; "
            f"starting {self.args.broker}")
        if self.clocks.lib:
            await asyncio.to_thread(faketime_self_test, self.clocks.lib, self.work)
        await self.cluster.start_all()
        cp = os.path.join(self.args.kafka_libs, "*")
        self.load_out = open(os.path.join(self.work, "load.log"), "wb")
        self.load = await asyncio.create_subprocess_exec(
            "java", "-cp", cp, os.path.join(HERE, "FaultLoad.java"),
            self.layout.bootstrap(), self.history, self.control, str(self.seed), str(PARTITIONS),
            DATA_TOPIC, TXN_TOPIC, stdout=self.load_out, stderr=self.load_out,
        )
        if not await wait_until(lambda: self.acked().get("acked", 0) > 0, START_DEADLINE_S):
            raise RuntimeError("the load is not acknowledged (see load.log)")
        if not await wait_until(self.healthy, RECOVERY_DEADLINE_S):
            raise RuntimeError("the cluster is not healthy before the first fault")

    async def round(self, i):
        kind = self.rng.choice(self.kinds)
        # The last round ended on a healthy view, but the cluster may have moved on since: CI
        # found it unhealthy a moment after the recovery of a quorum-leader isolation (what
        # differed was not captured; the line below logs it next time). Automatic leader
        # rebalancing is off here, so it is not a preferred-leader election.
        view = await self.healthy()
        if view is None:
            log(f"round {i}: waiting for the cluster to settle: {await self.views(NODES)} "
                f"quorum {self.quorum_states()}")
            view = await wait_until(self.healthy, RECOVERY_DEADLINE_S)
        if view is None:
            self.anomaly("unrecovered", f"round {i}: not healthy before the fault: "
                         f"{await self.views(NODES)} quorum {self.quorum_states()}")
            return False
        _, parts = view
        partition = self.rng.randrange(PARTITIONS)
        leader = parts[(DATA_TOPIC, partition)][0]
        if kind == "isolate-partition-leader":
            target = leader
        elif kind == "isolate-quorum-leader":
            target = self.quorum_leader()
        elif kind == "isolate-follower":
            target = self.rng.choice([n for n in NODES if n != leader])
        elif kind in CLOCK_FAULTS:
            # The active controller's clock decides the broker sessions, a partition leader's
            # the ISR lag.
            target = self.quorum_leader() if self.rng.random() < 0.5 else leader
        else:
            target = self.rng.choice(NODES)
        hold = FAULT_SESSIONS * SESSION_MS / 1000 + self.rng.uniform(1, 3)
        if kind in CLOCK_FAULTS or kind == "slow-disk":
            return await self.steady_round(i, kind, target, hold, partition, parts)
        before = self.acked().get("acked", 0)
        log(f"round {i}: {kind} node {target} for {hold:.1f}s "
            f"(partition {partition} led by {leader}; {before} acked so far)")
        self.faults[kind] += 1
        t0 = time.monotonic()
        if kind.startswith("isolate"):
            self.network.isolate(target)
        elif kind == "pause":
            os.kill(self.cluster.pid(target), signal.SIGSTOP)
        else:
            await self.cluster.kill(target)
        if await wait_until(lambda: self.fenced(target), FENCE_DEADLINE_S):
            self.fence_s.append(round(time.monotonic() - t0, 1))
            log(f"round {i}: node {target} fenced in {self.fence_s[-1]}s")
        else:
            # A figure, not an anomaly: Kafka 4.4 itself once left a cut-off quorum leader
            # unfenced for the whole deadline (1 in 3 such rounds, seed 740977725), so this is
            # not a guarantee to hold gregor to; what the checker checks is.
            self.unfenced += 1
            log(f"round {i}: node {target} still counted after {kind} for {FENCE_DEADLINE_S}s")
        await asyncio.sleep(max(0.0, hold - (time.monotonic() - t0)))
        t1 = time.monotonic()
        if kind.startswith("isolate"):
            self.network.heal()
        elif kind == "pause":
            os.kill(self.cluster.pid(target), signal.SIGCONT)
        else:
            await self.cluster.restart(target)
        return await self.recover(i, kind, target, t1) is not None

    async def recover(self, i, kind, target, healed):
        """Once a fault is over (since `healed`, monotonic): waits until the cluster is healthy
        and the producers are acknowledged again, and returns that view; an "unrecovered"
        anomaly and None when that does not happen within RECOVERY_DEADLINE_S."""
        healed_at = self.acked().get("acked", 0)
        view = await wait_until(self.healthy, RECOVERY_DEADLINE_S)
        if view and await wait_until(
            lambda: self.acked().get("acked", 0) > healed_at, RECOVERY_DEADLINE_S
        ):
            self.recovery_s.append(round(time.monotonic() - healed, 1))
            log(f"round {i}: recovered in {self.recovery_s[-1]}s")
            return view
        views = await self.views(NODES)
        self.anomaly("unrecovered", f"round {i}: after {kind} of node {target}: {views} "
                     f"quorum {self.quorum_states()}")
        return None

    async def steady_round(self, i, kind, target, hold, partition, parts):
        """A fault that takes no heartbeat away (a clock step, a slow disk): no node may be
        fenced while it lasts (sampled), and no partition may change leaders through it (its
        leader epoch, compared once the cluster has recovered: a fencing and unfencing quicker
        than the sampling still moves leaders); then it ends and the cluster must recover."""
        leader = parts[(DATA_TOPIC, partition)][0]
        label = "clock" if kind in CLOCK_FAULTS else "slow-disk"
        seen = self.steady.setdefault(label, {"fencing_rounds": 0, "leader_move_rounds": 0,
                                              "quorum_elections": 0})
        quorum_epoch = max((e for _, e in self.quorum_states().values()), default=-1)
        before = self.acked().get("acked", 0)
        step_ms = CLOCK_STEP_MS if kind == "clock-forward" else -CLOCK_STEP_MS
        delay_ms = self.rng.randint(*DISK_DELAY_MS)
        what = f"{step_ms:+d} ms" if kind in CLOCK_FAULTS else f"{delay_ms} ms a write/fsync"
        log(f"round {i}: {kind} node {target} ({what}) for {hold:.1f}s "
            f"(partition {partition} led by {leader}; {before} acked so far)")
        self.faults[kind] += 1
        t0 = time.monotonic()
        if kind in CLOCK_FAULTS:
            self.clocks.step(target, step_ms)
            await self.check_step(target, step_ms)
        else:
            rule = {"storage": "any", "action": "delay", "delay_ms": delay_ms}
            status, answer = await self.cluster.admin_request(target, "POST", "/v1/faults", rule)
            if status != 200:
                raise RuntimeError(f"arming a slow disk on node {target}: {status} {answer}")
        fenced = await self.watch(t0 + hold)
        t1 = time.monotonic()
        if kind in CLOCK_FAULTS:
            self.clocks.step(target, 0)
        else:
            # The node's request threads are what a slow disk slows: its admin listener shares
            # them, and answered a GET after 10 s once (the rules disarmed just after).
            t = time.monotonic()
            _, answer = await self.cluster.admin_request(target, "GET", "/v1/faults",
                                                         timeout=SLOW_DISK_ADMIN_TIMEOUT_S)
            if time.monotonic() - t > 5:
                log(f"round {i}: node {target}'s admin listener answered after "
                    f"{time.monotonic() - t:.1f}s under its slow disk")
            fired = sum(r.get("fired", 0) for r in answer.get("faults", []))
            self.disk_delays += fired
            log(f"round {i}: node {target}'s disk was slow {fired} times")
            await self.cluster.admin_request(target, "DELETE", "/v1/faults",
                                             timeout=SLOW_DISK_ADMIN_TIMEOUT_S)
        if fenced:
            seen["fencing_rounds"] += 1
            self.steady_anomaly(f"fenced-by-{label}",
                                f"round {i}: {kind} of node {target}: "
                                f"broker: the nodes not listing it {fenced}")
        view = await self.recover(i, kind, target, t1)
        if view:
            moved = {
                f"{t}-{p}": f"leader {parts[(t, p)][0]}@{parts[(t, p)][2]} -> {lead}@{epoch}"
                for (t, p), (lead, _, epoch) in view[1].items()
                if (t, p) in parts and parts[(t, p)][2] != epoch
            }
            if moved:
                seen["leader_move_rounds"] += 1
                self.steady_anomaly(f"leader-moved-by-{label}",
                                    f"round {i}: {kind} of node {target}: {moved}")
        after = max((e for _, e in self.quorum_states().values()), default=-1)
        seen["quorum_elections"] += max(0, after - quorum_epoch)
        return view is not None

    def steady_anomaly(self, kind, detail):
        """An anomaly for gregor; for Kafka, whose KRaft timers run on the wall clock, what it
        does under a clock step (logged, counted in the figures)."""
        if isinstance(self.cluster, GregorCluster):
            self.anomaly(kind, detail)
        else:
            log(f"{kind} (as Kafka does): {detail}")

    async def check_step(self, node, step_ms):
        """gregor reads the stepped clock (its admin listener's /v1/clock); a step it does not
        see is an anomaly of the test itself. Kafka's JVM was checked by the self-test."""
        if not isinstance(self.cluster, GregorCluster):
            return
        seen = await wait_until(
            lambda: self._offset_near(node, step_ms), 10, interval=0.2
        )
        if seen:
            self.steps_seen += 1
        else:
            self.anomaly("clock-step-unseen", f"node {node} does not read a {step_ms} ms step")

    async def _offset_near(self, node, step_ms):
        offset = await self.cluster.wall_offset_ms(node)
        return offset is not None and abs(offset - step_ms) < 2000

    async def watch(self, until):
        """Samples every node's Metadata until `until` (monotonic): which nodes some node did
        not list (fenced), and the longest time without a new acknowledgement."""
        fenced = {}
        acked, since = self.acked().get("acked", 0), time.monotonic()
        stall = 0.0
        while time.monotonic() < until:
            for n, (brokers, _) in (await self.views(NODES)).items():
                for missing in set(NODES) - set(brokers):
                    fenced.setdefault(missing, []).append(n)
            now_acked = self.acked().get("acked", 0)
            if now_acked > acked:
                acked, since = now_acked, time.monotonic()
            stall = max(stall, time.monotonic() - since)
            await asyncio.sleep(SAMPLE_S)
        self.stalls_s.append(round(stall, 1))
        return {m: sorted(set(by)) for m, by in fenced.items()}

    async def finish(self):
        open(os.path.join(self.control, "stop"), "w").close()
        try:
            code = await asyncio.wait_for(self.load.wait(), 300)
        except asyncio.TimeoutError:
            self.load.kill()
            code = await self.load.wait()
        if code != 0:
            self.anomaly("load-failed", f"FaultLoad exited {code} (see load.log)")

    async def main(self):
        rounds_done = 0
        try:
            await self.start()
            for i in range(1, self.args.rounds + 1):
                if not await self.round(i):
                    break
                rounds_done = i
            await self.finish()
        finally:
            if self.load is not None and self.load.returncode is None:
                self.load.kill()
                await self.load.wait()
            self.network.heal()
            await self.cluster.stop_all()
            await self.network.close()
        result = checker.check_file(self.history) if os.path.exists(self.history) else None
        figures = {
            "broker": self.args.broker,
            "seed": self.seed,
            "rounds": rounds_done,
            "faults": self.faults,
        }
        anomalies = dict(self.anomalies)
        if result is not None:
            figures.update(result["figures"])
            for k, v in result["anomalies"].items():
                anomalies[k] = anomalies.get(k, 0) + v
        else:
            anomalies["no-history"] = 1
        figures["anomalies"] = anomalies
        figures["fenced_within_s"] = max(self.fence_s, default=None)
        figures["unfenced_rounds"] = self.unfenced
        figures["recovered_within_s"] = max(self.recovery_s, default=None)
        if any(k in CLOCK_FAULTS or k == "slow-disk" for k in self.kinds):
            # Rounds of clock steps and slow disks: the longest the producers went unanswered.
            figures["longest_stall_s"] = max(self.stalls_s, default=None)
        for label, seen in self.steady.items():
            figures[f"under_{label.replace('-', '_')}"] = seen
        if isinstance(self.cluster, GregorCluster) and self.clocks.lib:
            figures["clock_steps_seen"] = self.steps_seen
        if "slow-disk" in self.kinds:
            figures["slow_disk_delays"] = self.disk_delays
        figures["blackholed_connections"] = self.network.blackholed
        figures["unidentified_connections"] = self.network.unidentified
        print(json.dumps(figures, sort_keys=True))
        failed = sum(anomalies.values()) > 0
        if failed or self.args.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", choices=("gregor", "kafka"), default="gregor")
    ap.add_argument("--gregor", help="the gregor binary")
    ap.add_argument("--kafka-libs", required=True, help="Kafka 4.x jars (client, tools, broker)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--client-base", type=int, required=True,
                    help="the first of three consecutive free ports, the nodes' client listeners")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--faults", default="",
                    help="comma-separated fault kinds or groups (isolate, clock); default all")
    ap.add_argument("--faketime-lib", help="libfaketime.so.1, for the clock faults")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.kinds = fault_kinds(args.faults, args.broker, args.faketime_lib)
    sys.exit(asyncio.run(Run(args).main()))


def fault_kinds(spec, broker, faketime_lib):
    """The kinds --faults names (underscores read as hyphens; a group for its kinds), in FAULTS'
    order; by default every kind the broker can take (without clock faults when there is no
    libfaketime)."""
    names = [n.strip().replace("_", "-") for n in spec.split(",") if n.strip()]
    if not names:
        return tuple(
            k for k in FAULTS
            if (broker == "gregor" or k not in GREGOR_ONLY)
            and (faketime_lib or k not in CLOCK_FAULTS)
        )
    chosen = set()
    for n in names:
        if n not in FAULTS and n not in GROUPS:
            sys.exit(f"unknown fault kind {n} (kinds: {', '.join(FAULTS)}; groups: "
                     f"{', '.join(GROUPS)})")
        chosen.update(GROUPS.get(n, (n,)))
    if broker == "kafka" and chosen & set(GREGOR_ONLY):
        sys.exit(f"{', '.join(sorted(chosen & set(GREGOR_ONLY)))}: gregor only (Kafka has no way "
                 "to slow its disk from outside)")
    if chosen & set(CLOCK_FAULTS) and not faketime_lib:
        sys.exit("clock faults need libfaketime (--faketime-lib)")
    return tuple(k for k in FAULTS if k in chosen)


if __name__ == "__main__":
    main()
