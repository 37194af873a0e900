"""The network the cluster's nodes talk to each other over: one TCP proxy in front of each node's
controller listener and each node's inter-broker listener, on 127.0.0.1, that the fault script
controls. Every connection between nodes goes through one of them (controller.quorum.voters and
the inter-broker listener's advertised address name the proxies), so cutting a node off is a
matter of what the proxies forward; clients use another listener, not proxied, as clients of a
real partitioned cluster may still reach the isolated side.

A proxy knows the node behind its listener, not the node that connected: every node connects
from 127.0.0.1. It learns that one from the kernel: the connecting socket is the one whose local
port is the peer port the proxy sees (/proc/net/tcp), and the process holding that socket
(/proc/PID/fd) is one of the nodes. Linux only, no privileges needed (the nodes are our children).

isolate(n) blackholes every connection from or to node n in both directions: bytes are read and
dropped, nothing is answered, new connections are accepted and held without reaching their node,
as packets lost in a partition would be (the peers see timeouts, not resets). heal() closes
those connections (their streams lost bytes) so that both sides connect again.
"""

import asyncio
import os


def _socket_inode(local_port, remote_port):
    """The inode of the ESTABLISHED TCP socket from local_port to remote_port, or None."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) < 10 or cols[3] != "01":
                        continue
                    if int(cols[1].rsplit(":", 1)[1], 16) != local_port:
                        continue
                    if int(cols[2].rsplit(":", 1)[1], 16) != remote_port:
                        continue
                    return cols[9]
        except OSError:
            continue
    return None


def _holds_socket(pid, inode):
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


class Network:
    """The proxies of a cluster and the partition they enforce."""

    def __init__(self, nodes, pid_of):
        # pid_of(node) -> the node's current process id (it changes when a node restarts).
        self.nodes = list(nodes)
        self.pid_of = pid_of
        self.isolated = set()
        self.links = set()
        self.servers = []
        self.unidentified = 0
        self.blackholed = 0

    async def proxy(self, node, listen_port, target_port):
        """Forwards connections to listen_port to node's target_port."""
        server = await asyncio.start_server(
            lambda r, w: self._accept(node, listen_port, target_port, r, w),
            "127.0.0.1",
            listen_port,
        )
        self.servers.append(server)

    def source_of(self, peer_port, listen_port, nodes):
        inode = _socket_inode(peer_port, listen_port)
        if inode is None:
            return None
        for n in nodes:
            pid = self.pid_of(n)
            if pid and _holds_socket(pid, inode):
                return n
        return None

    def isolate(self, node):
        self.isolated.add(node)
        for link in self.links:
            if node in (link.source, link.target):
                link.cut = True

    def heal(self):
        self.isolated.clear()
        for link in list(self.links):
            if link.cut:
                link.close()

    async def _accept(self, node, listen_port, target_port, reader, writer):
        peer_port = writer.get_extra_info("peername")[1]
        source = self.source_of(peer_port, listen_port, self.nodes)
        if source is None:
            # The connecting process was not found (it may have died meanwhile): such a link
            # is cut only by isolating its target. Counted, so a run shows if this happens.
            self.unidentified += 1
        link = Link(self, source, node, writer)
        self.links.add(link)
        link.cut = bool({source, node} & self.isolated)
        try:
            if link.cut:
                await link.blackhole(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                return
            link.upstream = up_writer
            await asyncio.gather(
                link.pump(reader, up_writer), link.pump(up_reader, writer), return_exceptions=True
            )
        finally:
            link.close()

    async def close(self):
        for s in self.servers:
            s.close()
        for link in list(self.links):
            link.close()


class Link:
    """One proxied connection."""

    def __init__(self, network, source, target, writer):
        self.network = network
        self.source = source
        self.target = target
        self.downstream = writer
        self.upstream = None
        self.cut = False
        self.counted = False

    async def pump(self, reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if self.cut:
                self._count()
                continue
            writer.write(data)
            await writer.drain()
        self.close()

    async def blackhole(self, reader):
        self._count()
        while await reader.read(65536):
            pass

    def _count(self):
        if not self.counted:
            self.counted = True
            self.network.blackholed += 1

    def close(self):
        self.network.links.discard(self)
        for w in (self.downstream, self.upstream):
            if w is not None and not w.is_closing():
                w.close()
