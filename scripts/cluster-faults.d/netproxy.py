"""The network the cluster's nodes talk to each other over: one TCP proxy in front of each node's
controller listener and each node's inter-broker listener, on 127.0.0.1, that the fault script
controls. Every connection between nodes goes through one of them (controller.quorum.voters and
the inter-broker listener's advertised address name the proxies), so cutting a node off is a
matter of what the proxies forward; clients use another listener, not proxied, as clients of a
real partitioned cluster may still reach the isolated side.

A proxy knows the node behind its listener; one per pair of nodes (the controller listener's)
knows the connecting node too. Otherwise every node connects from 127.0.0.1, and the proxy
learns which one from the kernel when a partition needs it: the connecting
socket is the one whose local port is the peer port the proxy sees (/proc/net/tcp), and the
process holding that socket (/proc/PID/fd) is one of the nodes. Linux only, no privileges needed
(the nodes are the script's own processes).

isolate(n) blackholes every connection from or to node n in both directions: bytes are read and
dropped, nothing is answered, new connections are accepted and held without reaching their node,
as packets lost in a partition would be (the peers see timeouts, not resets). heal() closes
those connections (their streams lost bytes) so that both sides connect again.
"""

import asyncio
import os


def _socket_inodes():
    """{(local port, remote port): inode} of the ESTABLISHED TCP sockets."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) < 10 or cols[3] != "01":
                        continue
                    local = int(cols[1].rsplit(":", 1)[1], 16)
                    remote = int(cols[2].rsplit(":", 1)[1], 16)
                    out[(local, remote)] = cols[9]
        except OSError:
            continue
    return out


def _socket_owners(pids):
    """{socket inode: node} of the sockets the nodes' processes hold ({node: pid})."""
    out = {}
    for node, pid in pids.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out[link[8:-1]] = node
    return out


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

    async def proxy(self, node, listen_port, target_port, source=None):
        """Forwards connections to listen_port to node's target_port; source, if given, is the
        only node that connects there (else the connecting node is looked up when needed)."""
        server = await asyncio.start_server(
            lambda r, w: self._accept(node, listen_port, target_port, r, w, source),
            "127.0.0.1",
            listen_port,
        )
        self.servers.append(server)

    def identify(self, links):
        """Sets the source node of each link whose source is not known yet. Costs a read of the
        socket table and of the nodes' descriptors, so it runs only when a partition needs it
        (never on a healthy network's connection path: a proxy must not slow connections down,
        the quorum's RPCs time out in a fraction of a second)."""
        links = [link for link in links if link.source is None]
        if not links:
            return
        inodes = _socket_inodes()
        owners = _socket_owners({n: self.pid_of(n) for n in self.nodes if self.pid_of(n)})
        for link in links:
            inode = inodes.get((link.peer_port, link.listen_port))
            link.source = owners.get(inode)
            if link.source is None:
                # No node holds the connecting socket any more: it was closed meanwhile (a
                # quorum RPC gives up within a fraction of a second). Counted, and cut while a
                # partition lasts: a connection that cannot be placed must not cross it.
                self.unidentified += 1
                link.source = 0

    def crosses(self, link):
        """Whether link crosses the partition: from or to an isolated node, or from no node
        the proxies can name while one is isolated."""
        if not self.isolated:
            return False
        return link.target in self.isolated or link.source in self.isolated or link.source == 0

    def isolate(self, node):
        self.isolated.add(node)
        self.identify([link for link in self.links if link.target != node])
        for link in self.links:
            link.cut = link.cut or self.crosses(link)

    def heal(self):
        self.isolated.clear()
        for link in list(self.links):
            if link.cut:
                link.close()

    async def _accept(self, node, listen_port, target_port, reader, writer, source):
        link = Link(self, node, listen_port, writer)
        link.source = source
        self.links.add(link)
        try:
            if self.isolated and node not in self.isolated and link.source is None:
                await asyncio.get_running_loop().run_in_executor(None, self.identify, [link])
            link.cut = self.crosses(link)
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

    def __init__(self, network, target, listen_port, writer):
        self.network = network
        self.source = None  # the connecting node, once identified (0: not found)
        self.target = target
        self.listen_port = listen_port
        self.peer_port = writer.get_extra_info("peername")[1]
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
