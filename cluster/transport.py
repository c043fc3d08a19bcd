"""The stream transport: one connected socket, its protocol, and flow control both ways.

Write path (after asyncio's): ``write`` sends at once when nothing is queued; only what
the kernel does not take is queued (a memoryview of the unsent tail, never a copy), and
the queue goes out with one ``sendmsg`` per writable event. Backpressure: a producer
registered with ``registerProducer`` is paused when more than ``highWater`` bytes are
queued and resumed below ``lowWater``; ``pauseProducing`` on the transport stops reading
its socket, so a peer flooding a paused connection fills kernel buffers, not ours.

Closing: the reactor drops a descriptor whose ``doRead``/``doWrite`` returns an exception
and then calls ``connectionLost``, never from inside ``loseConnection`` itself, so
protocols are never re-entered while they are closing.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from itertools import islice
from typing import Any

from cluster.address import fromSocketAddress
from cluster.error import CONNECTION_DONE, ConnectionAborted, ConnectionLost
from cluster.failure import Failure
from cluster.logs import Episodes

log = logging.getLogger("cluster")

_IOV_MAX = 1024
reads = 0  # dataReceived deliveries by this process's connections: its "requests" by default


def readCount() -> int:
    """How many reads this process's stream connections have delivered."""
    return reads


class Connection:
    """A connected stream socket (TCP or Unix) driving one protocol."""

    __slots__ = (
        "socket", "protocol", "reactor", "connected", "disconnecting", "disconnected",
        "producer", "streamingProducer", "producerPaused", "_fd", "_queue", "_queued",
        "_reading", "_writing", "_peer", "_owner", "_timeoutCall", "_recv", "_send",
        "_halfClosing", "_tls",
        "__weakref__",
    )

    highWater = 65536
    lowWater = 16384
    # Bytes a connection may have queued for its peer with no producer registered (as
    # Redis's output-buffer limit): past it the peer is taken not to read, the connection
    # is closed and that is logged. With a producer, the producer is paused instead.
    maxBuffered = 64 << 20
    _serverSide = True  # accepted here; the client side (cluster.connect) says otherwise

    def __init__(self, sock: socket.socket, protocol: Any, reactor: Any, peer: Any = None) -> None:
        self.socket = sock
        self.protocol = protocol
        self.reactor = reactor
        self.connected = False
        self.disconnecting = False
        self.disconnected = False
        self.producer: Any = None
        self.streamingProducer = False
        self.producerPaused = False
        self._fd = sock.fileno()
        self._recv = sock.recv  # bound once: the hot path skips two lookups per call
        self._send = sock.send
        self._queue: deque | None = None
        self._queued = 0
        self._reading = False
        self._writing = False
        self._peer = peer
        self._owner: Any = None
        self._timeoutCall: Any = None
        self._halfClosing = False
        self._tls: Any = None  # cluster.tls's state, once startTLS (or a TLS port) began

    # -- reactor side ----------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        logPrefix = getattr(self.protocol, "logPrefix", None)
        return logPrefix() if logPrefix else self.protocol.__class__.__name__

    def startReading(self) -> None:
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)

    def stopReading(self) -> None:
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)

    def startWriting(self) -> None:
        if not self._writing:
            self._writing = True
            self.reactor.addWriter(self)

    def stopWriting(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    def doRead(self) -> Any:
        try:
            data = self._recv(65536)
        except BlockingIOError:
            return None
        except OSError as e:
            return ConnectionLost(e)
        if not data:
            return CONNECTION_DONE
        global reads
        reads += 1
        self.protocol.dataReceived(data)
        return None

    def doWrite(self) -> Any:
        queue = self._queue
        if queue:
            try:
                if len(queue) == 1:
                    sent = self.socket.send(queue[0])
                else:
                    sent = self.socket.sendmsg(
                        queue if len(queue) <= _IOV_MAX else list(islice(queue, _IOV_MAX))
                    )
            except BlockingIOError:
                return None
            except OSError as e:
                return ConnectionLost(e)
            self._queued -= sent
            while sent:
                head = queue[0]
                size = len(head)
                if sent >= size:
                    queue.popleft()
                    sent -= size
                else:
                    queue[0] = memoryview(head)[sent:]
                    break
            if queue:
                if self.producerPaused and self._queued <= self.lowWater:
                    self.producerPaused = False
                    self.producer.resumeProducing()
                return None
        self.stopWriting()
        if self._halfClosing:  # everything queued is out: the peer may read its end now
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError as e:
                return ConnectionLost(e)
        producer = self.producer
        if producer is not None and (not self.streamingProducer or self.producerPaused):
            self.producerPaused = False
            producer.resumeProducing()
            return None
        if self.disconnecting:
            return CONNECTION_DONE
        return None

    # -- ITransport ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data``: at once if nothing is queued, else after what is queued."""
        if not self.connected or not data or self._halfClosing:
            return
        if not self._queued:
            try:
                sent = self._send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # the error resurfaces in doWrite, which drops the connection
            if sent == len(data):
                if self.producer is not None and not self.streamingProducer:
                    self.startWriting()  # doWrite asks the pull producer for more
                return
            if type(data) is not bytes:
                data = bytes(memoryview(data)[sent:])  # the caller may reuse its buffer
            elif sent:
                data = memoryview(data)[sent:]
        elif type(data) is not bytes:
            data = bytes(data)  # the caller may reuse a bytearray after write returns
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(data)
        self._queued += len(data)
        if not self._writing:
            self.startWriting()
        if self._queued > self.maxBuffered and self.producer is None:
            _overflows.record(f"{self.logPrefix()}: {self._queued} bytes")
            self.abortConnection()
            return
        if (
            self.producer is not None
            and self.streamingProducer
            and not self.producerPaused
            and self._queued > self.highWater
        ):
            self.producerPaused = True
            self.producer.pauseProducing()

    def writeSequence(self, iovec: Any) -> None:
        """Write several byte strings as one."""
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        """Stop reading, send what is queued, then close."""
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        self.stopReading()
        self.startWriting()

    def loseWriteConnection(self) -> None:
        """Half-close: send what is queued, then shut the sending side down (the peer
        reads end of file); reading goes on until the peer closes."""
        if self.disconnected or self.disconnecting or self._halfClosing:
            return
        self._halfClosing = True
        self.startWriting()

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        """Speak TLS from now on (STARTTLS): what was written before went in the clear.
        ``contextFactory`` is an ``ssl.SSLContext`` or has ``getContext()``; with
        ``normal`` false the roles swap (the accepting side is the TLS client)."""
        from cluster import tls

        serverSide = self._serverSide if normal else not self._serverSide
        tls.start(self, contextFactory, serverSide, self._tlsHostname())

    def _tlsHostname(self) -> str | None:
        return None

    def getPeerCertificate(self) -> Any:
        """The peer's TLS certificate (see cluster.tls); None on a plain connection."""
        return None

    def abortConnection(self) -> None:
        """Close now, discarding anything queued; ``connectionLost`` follows shortly."""
        if self.disconnected:
            return
        self.disconnecting = True
        self.connected = False
        self.stopReading()
        self.stopWriting()
        if self._queue:
            self._queue.clear()
            self._queued = 0
        self.reactor.callLater(0, self.connectionLost, Failure(ConnectionAborted()))

    def getPeer(self) -> Any:
        """The remote address (``.host``, ``.port``)."""
        if self._peer is None:
            self._peer = self.socket.getpeername()
        return fromSocketAddress(self.socket.family, self._peer)

    def getHost(self) -> Any:
        """The local address (``.host``, ``.port``)."""
        return fromSocketAddress(self.socket.family, self.socket.getsockname())

    def getHandle(self) -> socket.socket:
        return self.socket

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))

    def getTcpNoDelay(self) -> bool:
        return bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))

    def getTcpKeepAlive(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    # -- producer / consumer ---------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Attach a producer of outgoing data; paused and resumed by the queue's level."""
        if self.producer is not None:
            raise RuntimeError(f"cannot register {producer!r}: {self.producer!r} is registered")
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.streamingProducer = bool(streaming)
        if not streaming:
            producer.resumeProducing()
        elif self._queued > self.highWater:
            self.producerPaused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        self.producer = None
        self.producerPaused = False
        if self.disconnecting and not self._queued:
            self.startWriting()  # loseConnection was waiting on the producer

    def pauseProducing(self) -> None:
        """Stop reading from the socket."""
        self.stopReading()

    def resumeProducing(self) -> None:
        """Read from the socket again."""
        if self.connected and not self.disconnecting:
            self.startReading()

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- closing ---------------------------------------------------------------------------

    def connectionLost(self, reason: Failure) -> None:
        """Release the socket and tell the protocol (and producer, and owner)."""
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        self.stopReading()
        self.stopWriting()
        self._queue = None
        self._queued = 0
        if self._timeoutCall is not None and self._timeoutCall.active():
            self._timeoutCall.cancel()
        self.socket.close()
        self._fd = -1
        producer, self.producer = self.producer, None
        if producer is not None:
            _guard(producer.stopProducing)
        protocol = self.protocol
        if protocol is not None:
            _guard(protocol.connectionLost, reason)
        if self._owner is not None:  # a Connector, or whoever counts connections
            _guard(self._owner.connectionLost, reason)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} fd={self._fd} protocol={self.protocol!r}>"


_overflows = Episodes(log, "closed a connection whose peer does not read (%s queued past "
                      "Connection.maxBuffered)")


def _guard(f: Any, *args: Any) -> None:
    """Call user code while closing; log what it raises instead of stopping the close."""
    try:
        f(*args)
    except Exception:
        log.error("Unhandled error in %r:\n%s", f, Failure().getTraceback())


def startConnection(reactor: Any, sock: socket.socket, peer: Any, factory: Any,
                    owner: Any = None, preread: bytes = b"", tls: Any = None) -> Any:
    """Serve an accepted or adopted socket with a protocol from ``factory``.

    ``owner``, if given, hears ``connectionLost`` after the protocol; ``preread`` (bytes
    someone read from the socket before handing it over) reaches ``dataReceived`` before
    anything read from the socket. Returns the transport, or None when the factory
    refused the connection or its code raised (logged, socket closed).
    """
    try:
        protocol = factory.buildProtocol(fromSocketAddress(sock.family, peer))
    except Exception:
        log.error("Unhandled error in %r.buildProtocol:\n%s", factory, Failure().getTraceback())
        protocol = None
    if protocol is None:
        sock.close()
        return None
    transport = Connection(sock, protocol, reactor, peer)
    transport.connected = True
    transport.startReading()
    if tls is not None:  # a TLS server: the handshake waits for the client's hello
        from cluster import tls as tlsModule

        tlsModule.start(transport, tls, serverSide=True)
    try:
        protocol.makeConnection(transport)
        if preread and transport.connected:
            protocol.dataReceived(preread)
    except Exception:
        failure = Failure()
        log.error("Unhandled error in %r:\n%s", protocol, failure.getTraceback())
        transport.connectionLost(failure)
        return None
    transport._owner = owner  # told of the close only once the connection was up
    return transport
