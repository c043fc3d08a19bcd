"""TLS on the standard library's ``ssl``: a non-blocking ``SSLObject`` over two memory
BIOs inside the transport (no pyOpenSSL).

A TLS connection is the same transport with its reading and writing going through the
``SSLObject``: what arrives on the socket is fed to the incoming BIO and the plaintext
read out for ``dataReceived``; what the protocol writes is encrypted into the outgoing
BIO, whose bytes take the plain transport's write path (queue, backpressure and all).
``connectionMade`` comes at once, as in Twisted; writes wait for the handshake. A failed
handshake, a peer that closes in the middle of one, or one not done within
``HANDSHAKE_TIMEOUT`` closes that connection only, with a clear error (logged once per
episode). ``loseConnection`` finishes a handshake under way, sends what was written and
then close_notify (once a registered producer is gone), and closes; writes after
close_notify are dropped, as Twisted drops them. ``loseWriteConnection`` sends close_notify, then
half-closes. A peer that closes without close_notify is reported as a lost connection
(a truncation attack looks the same), its own close_notify as a clean end.

A context factory is an ``ssl.SSLContext`` or any object with Twisted's ``getContext()``.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from cluster import transport
from cluster.error import CONNECTION_DONE, ConnectionLost
from cluster.failure import Failure
from cluster.logs import Episodes
from cluster.transport import Connection

log = logging.getLogger("cluster")

HANDSHAKE_TIMEOUT = 30.0  # seconds a peer may take to finish the handshake
READ_SIZE = 65536
_failures = Episodes(log, "TLS: %s")


def contextOf(contextFactory: Any) -> ssl.SSLContext:
    """The SSLContext of a context factory (an SSLContext, or an object with
    ``getContext()``)."""
    if isinstance(contextFactory, ssl.SSLContext):
        return contextFactory
    getContext = getattr(contextFactory, "getContext", None)
    if getContext is None:
        raise TypeError(f"{contextFactory!r} is neither an ssl.SSLContext nor has "
                        f"getContext()")
    return getContext()


class TLSState:
    """One connection's TLS: its SSLObject and BIOs, and what waits for the handshake."""

    __slots__ = ("obj", "incoming", "outgoing", "done", "pending", "pendingSize", "timer",
                 "closing", "closeSent")

    def __init__(self, context: ssl.SSLContext, serverSide: bool,
                 hostname: str | None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=serverSide,
                                    server_hostname=None if serverSide else hostname)
        self.done = False
        self.pending: list[bytes] = []  # plaintext written before the handshake ended
        self.pendingSize = 0
        self.timer: Any = None
        self.closing: Any = None  # _CLOSE or _HALF_CLOSE once asked to, until close_notify
        self.closeSent = False


_CLOSE, _HALF_CLOSE = "close", "half-close"


class TLSTransport:
    """What a transport does differently once it speaks TLS (mixed into the plain
    transport classes; no state of its own but ``_tls``)."""

    __slots__ = ()

    def doRead(self) -> Any:
        try:
            data = self._recv(READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as e:
            return ConnectionLost(e)
        tls = self._tls
        if not data:
            if not tls.done:
                _failures.record(f"{self._peerText()} closed the connection during the "
                                 f"handshake")
                return ConnectionLost("closed during the TLS handshake")
            if tls.closeSent:
                return CONNECTION_DONE  # our close_notify went first; its answer is optional
            return ConnectionLost("the peer closed the connection without TLS close_notify")
        tls.incoming.write(data)
        transport.reads += 1
        if not tls.done:
            why = _handshake(self)
            if why is not None or not tls.done:
                return why
        return _readPlain(self)

    def write(self, data: bytes) -> None:
        tls = self._tls
        if not self.connected or not data or tls.closeSent:
            return
        if tls.done:
            _encrypt(self, data)
            return
        tls.pending.append(bytes(data))
        tls.pendingSize += len(data)
        if tls.pendingSize > self.maxBuffered:
            _failures.record(f"{tls.pendingSize} bytes written for {self._peerText()} "
                             f"before its handshake ended; closed")
            self.abortConnection()

    def loseConnection(self) -> None:
        """Finish the handshake if one is under way, send what was written and
        close_notify (after a registered producer is gone), then close."""
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        self._tls.closing = _CLOSE
        _closeWhenReady(self)

    def loseWriteConnection(self) -> None:
        """Send close_notify, then half-close; reading goes on until the peer closes."""
        if self.disconnected or self.disconnecting or self._tls.closing is not None:
            return
        self._tls.closing = _HALF_CLOSE
        _closeWhenReady(self)

    def unregisterProducer(self) -> None:
        super().unregisterProducer()
        if self._tls.closing is not None:
            _closeWhenReady(self)

    def doWrite(self) -> Any:
        why = super().doWrite()
        if why is CONNECTION_DONE and not self._tls.closeSent:
            return None  # a close is waiting for the handshake or the producer
        return why

    def getPeerCertificate(self) -> dict | None:
        """The peer's certificate as ``ssl.SSLObject.getpeercert()`` gives it (an empty
        dict if not verified), None without one or before the handshake."""
        tls = self._tls
        return tls.obj.getpeercert() if tls.done else None

    def connectionLost(self, reason: Any) -> None:
        tls = self._tls
        if tls is not None and tls.timer is not None and tls.timer.active():
            tls.timer.cancel()
        super().connectionLost(reason)

    def _peerText(self) -> str:
        try:
            peer = self.getPeer()
            return f"{peer.host}:{peer.port}"
        except OSError:
            return "a peer"


def _encrypt(conn: Any, data: bytes) -> None:
    try:
        conn._tls.obj.write(data)
    except ssl.SSLError as e:
        _failures.record(f"writing to {conn._peerText()}: {e}")
        conn.abortConnection()
        return
    _flush(conn)


def _closeWhenReady(conn: Any) -> None:
    """Send close_notify once the handshake is over and no producer is registered, then
    close (or half-close) the plain transport underneath."""
    tls = conn._tls
    if tls.closeSent or not tls.done or conn.producer is not None or conn.disconnected:
        return
    tls.closeSent = True
    try:
        tls.obj.unwrap()
    except (ssl.SSLWantReadError, ssl.SSLError):
        pass  # ours is sent; the peer's answer is not waited for
    _flush(conn)
    if tls.closing is _HALF_CLOSE:
        Connection.loseWriteConnection(conn)
    else:
        conn.stopReading()
        conn.startWriting()  # doWrite sends what is queued, then closes


def _flush(conn: Any) -> None:
    """Send what the SSLObject produced (handshake messages, records, alerts)."""
    out = conn._tls.outgoing.read()
    if out:
        Connection.write(conn, out)


def _handshake(conn: Any) -> Any:
    tls = conn._tls
    try:
        tls.obj.do_handshake()
    except ssl.SSLWantReadError:
        _flush(conn)
        return None
    except ssl.SSLError as e:
        _flush(conn)  # the alert, for the peer to know why
        _failures.record(f"handshake with {conn._peerText()} failed: {e}")
        return ConnectionLost(e)
    tls.done = True
    if tls.timer is not None and tls.timer.active():
        tls.timer.cancel()
    _flush(conn)
    pending, tls.pending, tls.pendingSize = tls.pending, [], 0
    for data in pending:
        _encrypt(conn, data)
    completed = getattr(conn.protocol, "handshakeCompleted", None)
    if completed is not None:
        completed()
    if tls.closing is not None:
        _closeWhenReady(conn)
    return None


def _readPlain(conn: Any) -> Any:
    obj = conn._tls.obj
    chunks = []
    why = None
    while True:
        try:
            chunk = obj.read(READ_SIZE)
        except ssl.SSLWantReadError:
            break
        except ssl.SSLError as e:
            _failures.record(f"reading from {conn._peerText()}: {e}")
            why = ConnectionLost(e)
            break
        if not chunk:  # the peer's close_notify (read raises otherwise): ours answers it
            why = CONNECTION_DONE
            if not conn._tls.closeSent:
                conn._tls.closeSent = True
                try:
                    obj.unwrap()
                except ssl.SSLError:
                    pass
            break
        chunks.append(chunk)
    _flush(conn)  # what reading made (TLS 1.3 tickets, key updates)
    if chunks:
        conn.protocol.dataReceived(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    return why


class TLSConnection(TLSTransport, Connection):
    __slots__ = ()


_tlsClasses: dict[type, type] = {Connection: TLSConnection}


def tlsClassOf(cls: type) -> type:
    """The TLS variant of a transport class (made once per class)."""
    tlsClass = _tlsClasses.get(cls)
    if tlsClass is None:
        tlsClass = _tlsClasses[cls] = type(f"TLS{cls.__name__}", (TLSTransport, cls),
                                           {"__slots__": ()})
    return tlsClass


def start(conn: Any, contextFactory: Any, serverSide: bool,
          hostname: str | None = None) -> None:
    """Make ``conn`` speak TLS from now on and begin the handshake (a client sends its
    hello at once; a server waits for one). Bytes written before went in the clear."""
    if conn._tls is not None:
        raise RuntimeError("TLS is already started on this connection")
    conn._tls = TLSState(contextOf(contextFactory), serverSide, hostname)
    conn.__class__ = tlsClassOf(type(conn))
    conn._tls.timer = conn.reactor.callLater(HANDSHAKE_TIMEOUT, _tooSlow, conn)
    why = _handshake(conn)
    if why is not None:
        conn.reactor.callLater(0, conn.connectionLost, Failure(why))


def _tooSlow(conn: Any) -> None:
    if not conn.disconnected and not conn._tls.done:
        _failures.record(f"{conn._peerText()} did not finish the handshake within "
                         f"{HANDSHAKE_TIMEOUT}s")
        conn.abortConnection()
