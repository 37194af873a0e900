"""Free loopback ports for the brokers and proxies that tests start (one picker for every script).

A port found by binding port 0 comes from the kernel's ephemeral range, and between the probe's
close and the broker's own bind any outbound connection on the machine (a client's, a download's)
may be given the same number as its local port: the broker then fails to start with "Address
already in use" (a flake seen in the replication tests while CI downloaded beside them). Below the
ephemeral range the kernel hands out no port on its own, so only another picker like this one can
draw the same number; the probe's bind refuses ports already bound. Run as a script it prints the
first of N consecutive ports (`python3 compat/ports.py N`).
"""

import random
import socket
import sys


def _below_ephemeral():
    """[low, high): the half of the port space just below the ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            start = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        start = 32768
    return max(1024, start // 2), start


def free_ports(count=1):
    """The first of `count` consecutive free loopback ports (`--brokers N` listens on them)."""
    low, high = _below_ephemeral()
    while True:
        first = random.randrange(low, high - count)
        socks = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


def free_port():
    return free_ports(1)


def distinct_free_ports(count):
    """`count` free ports, not necessarily consecutive, all different."""
    ports = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


if __name__ == "__main__":
    print(free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
