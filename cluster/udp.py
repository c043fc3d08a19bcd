"""UDP ports: ``reactor.listenUDP(port, protocol, interface='', maxPacketSize=8192)``.

The port is the protocol's transport, as in Twisted: ``write(data, addr)``, ``connect``,
``getHost``, ``stopListening``. Reads take up to ``batch`` datagrams per wakeup. A
datagram the kernel will not take now (a full send buffer) is dropped, as UDP may; a
refused one (ICMP port unreachable, seen only on a connected socket) becomes the
protocol's ``connectionRefused``; any other error is logged once per episode.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from cluster.address import IPv4Address, IPv6Address
from cluster.defer import Deferred, succeed
from cluster.error import CannotListenError
from cluster.failure import Failure
from cluster.logs import Episodes

log = logging.getLogger("cluster")

_REFUSED = (errno.ECONNREFUSED,)
_DROPPED = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR)


class UDPPort:
    """A bound UDP socket serving one DatagramProtocol."""

    batch = 256  # datagrams read per wakeup, so a flood cannot starve the loop

    def __init__(self, reactor: Any, sock: socket.socket, protocol: Any,
                 maxPacketSize: int) -> None:
        self.reactor = reactor
        self.socket = sock
        self.protocol = protocol
        self.maxPacketSize = maxPacketSize
        self.connected = False
        self.disconnected = False
        self._connectedAddr: tuple | None = None
        self._fd = sock.fileno()
        self._family = sock.family
        self._errors = Episodes(log, f"UDP port {self.getHost().port}: %s", reactor)

    def startListening(self) -> None:
        self.connected = True
        self.reactor.addReader(self)
        self.protocol.makeConnection(self)

    # -- reactor side -----------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return self.protocol.logPrefix()

    def doRead(self) -> Any:
        recvfrom = self.socket.recvfrom
        for _ in range(self.batch):
            try:
                data, addr = recvfrom(self.maxPacketSize)
            except BlockingIOError:
                return None
            except OSError as e:
                if e.errno in _REFUSED:
                    if self._connectedAddr is not None:
                        self.protocol.connectionRefused()
                    continue
                self._errors.record(f"recvfrom failed: {e}")
                return None
            try:
                self.protocol.datagramReceived(data, addr[:2])
            except Exception:
                log.error("Unhandled error in %s.datagramReceived:\n%s", self.logPrefix(),
                          Failure().getTraceback())
        return None

    # -- the transport ----------------------------------------------------------------------

    def write(self, datagram: bytes, addr: Any = None) -> None:
        """Send one datagram: to ``addr`` (``(host, port)``), or to the connected peer."""
        if self.disconnected:
            return
        if self._connectedAddr is not None:
            if addr is not None and tuple(addr[:2]) != self._connectedAddr:
                raise ValueError("a connected UDP port writes only to its peer")
            send = self.socket.send
            args: tuple = (datagram,)
        else:
            if addr is None:
                raise ValueError("write to an unconnected UDP port needs an address")
            send = self.socket.sendto
            args = (datagram, tuple(addr[:2]))
        try:
            send(*args)
        except OSError as e:
            if e.errno in _REFUSED and self._connectedAddr is not None:
                self.protocol.connectionRefused()
            elif e.errno in _DROPPED:
                pass  # no room in the send buffer now: dropped, as UDP allows
            elif e.errno == errno.EMSGSIZE:
                raise ValueError(f"datagram of {len(datagram)} bytes is too large") from e
            else:
                self._errors.record(f"send failed: {e}")

    def writeSequence(self, seq: Any, addr: Any = None) -> None:
        self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Talk only to ``host:port`` (an IP address): ``write(data)`` goes there, and
        only its datagrams are received."""
        if self._connectedAddr is not None:
            raise RuntimeError("already connected; reconnecting is not supported")
        try:
            socket.inet_pton(self._family, host)
        except OSError:
            raise ValueError("connect needs an IP address, not a host name") from None
        self.socket.connect((host, port))
        self._connectedAddr = (host, port)

    def getHost(self) -> Any:
        host, port = self.socket.getsockname()[:2]
        cls = IPv6Address if self._family == socket.AF_INET6 else IPv4Address
        return cls("UDP", host, port)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(enabled))

    def getBroadcastAllowed(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    def stopListening(self) -> Deferred:
        """Close the socket; the protocol's ``stopProtocol`` runs."""
        self.connectionLost(None)
        return succeed(None)

    loseConnection = stopListening

    def connectionLost(self, reason: Any) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        self.reactor.removeReader(self)
        self.socket.close()
        self._fd = -1
        self.protocol.doStop()


def listenUDP(reactor: Any, port: int, protocol: Any, interface: str = "",
              maxPacketSize: int = 8192, reusePort: bool = False) -> UDPPort:
    """Bind ``interface:port`` and serve ``protocol`` (``reusePort``: several processes
    may bind the same port, the kernel spreading datagrams by source address)."""
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reusePort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
    except OSError as e:
        sock.close()
        raise CannotListenError(interface, port, e) from e
    sock.setblocking(False)
    udp = UDPPort(reactor, sock, protocol, maxPacketSize)
    udp.startListening()
    return udp
