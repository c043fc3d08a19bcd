"""Listening ports (TCP and Unix): accept in bounded batches, hand each socket to a protocol.

fd exhaustion: when ``accept`` fails with EMFILE/ENFILE the pending connection stays in
the kernel's backlog and the listening socket stays readable, so retrying at once would
spin the loop. The port instead stops reading for a short backoff and logs the episode
once.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from typing import Any

from cluster.address import fromSocketAddress
from cluster.defer import Deferred, succeed
from cluster.error import CannotListenError
from cluster.failure import Failure
from cluster.transport import startConnection

log = logging.getLogger("cluster")

_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_TRANSIENT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR}


class Port:
    """A listening socket whose accepted connections are served by ``factory``'s protocols."""

    numberAccepts = 100  # the most connections accepted per wakeup, so others get a turn
    backoff = 0.1  # seconds without accepting after EMFILE/ENFILE

    def __init__(self, sock: socket.socket, factory: Any, reactor: Any) -> None:
        self.socket = sock
        self.factory = factory
        self.reactor = reactor
        self.connected = False
        self.disconnected = False
        self._fd = sock.fileno()
        self._family = sock.family
        self._address = fromSocketAddress(self._family, sock.getsockname())
        if self._family in (socket.AF_INET, socket.AF_INET6):
            # Linux copies TCP_NODELAY from the listening socket to each accepted one:
            # set once here, it saves a setsockopt per connection (here and in workers)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._exhausted = False
        self.paused = False
        self.tlsContext: Any = None  # listenSSL: accepted connections speak TLS
        self._resumeCall: Any = None

    def startListening(self) -> None:
        """Start the factory and begin accepting."""
        self.factory.doStart()
        self.connected = True
        self.reactor.addReader(self)

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return f"{self.factory.logPrefix()} (port {self._fd})"

    def doRead(self) -> Any:
        accept = self.socket._accept
        for _ in range(self.numberAccepts):
            try:
                fd, addr = accept()
            except BlockingIOError:
                return None
            except OSError as e:
                if e.errno in _EXHAUSTED:
                    self._pauseAccepting(e)
                    return None
                if e.errno in _TRANSIENT:
                    continue
                log.error("accept() failed on %s: %s", self.logPrefix(), e)
                return None
            if self._exhausted:
                self._exhausted = False
                log.warning("%s: accepting again after fd exhaustion", self.logPrefix())
            try:
                self.accepted(fd, addr)
            except Exception:  # that connection is lost (accepted closed it), not the port
                log.error("%s: error serving a connection from %s:\n%s", self.logPrefix(),
                          addr, Failure().getTraceback())
        return None

    def accepted(self, fd: int, addr: Any) -> None:
        """Serve one accepted fd, which is ours to close on any failure (the gateway
        overrides this to hand it over instead)."""
        try:
            sock = socket.socket(self._family, socket.SOCK_STREAM, 0, fd)
        except Exception:
            os.close(fd)
            raise
        sock.setblocking(False)
        startConnection(self.reactor, sock, addr, self.factory, tls=self.tlsContext)

    def _pauseAccepting(self, err: OSError) -> None:
        if not self._exhausted:
            self._exhausted = True
            log.error("%s: accept() failed with %s (%s); pausing accepts for %.2fs at a time",
                      self.logPrefix(), errno.errorcode.get(err.errno, err.errno),
                      err.strerror, self.backoff)
        self.reactor.removeReader(self)
        self._resumeCall = self.reactor.callLater(self.backoff, self._resumeAccepting)

    def _resumeAccepting(self) -> None:
        self._resumeCall = None
        if self.connected and not self.paused:
            self.reactor.addReader(self)

    def pause(self) -> None:
        """Stop accepting for now: new connections wait in the kernel's backlog."""
        self.paused = True
        self.reactor.removeReader(self)

    def resume(self) -> None:
        """Accept again after ``pause``."""
        self.paused = False
        if self.connected and self._resumeCall is None:
            self.reactor.addReader(self)

    def getHost(self) -> Any:
        """The address the port is bound to (``.port`` tells which port the kernel chose)."""
        return self._address

    def stopListening(self) -> Deferred:
        """Close the listening socket; returns a Deferred that has fired once it is closed."""
        self.connectionLost(None)
        return succeed(None)

    loseConnection = stopListening

    def connectionLost(self, reason: Failure | None) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        if self._resumeCall is not None and self._resumeCall.active():
            self._resumeCall.cancel()
        self.reactor.removeReader(self)
        path = None
        if self._family == socket.AF_UNIX:
            name = self._address.name
            if isinstance(name, str) and name and not name.startswith("\0"):
                path = name
        self.socket.close()
        self._fd = -1
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass
        self.factory.doStop()

    def __repr__(self) -> str:
        return f"<Port fd={self._fd} factory={self.factory!r}>"


def listenTCP(reactor: Any, port: int, factory: Any, backlog: int, interface: str) -> Port:
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return _listen(reactor, sock, (interface, port), factory, backlog)


def listenSSL(reactor: Any, port: int, factory: Any, contextFactory: Any, backlog: int,
              interface: str) -> Port:
    """listenTCP whose connections speak TLS (the server side of the handshake)."""
    from cluster import tls

    context = tls.contextOf(contextFactory)
    listening = listenTCP(reactor, port, factory, backlog, interface)
    listening.tlsContext = context
    return listening


def listenUNIX(reactor: Any, address: str, factory: Any, backlog: int, mode: int) -> Port:
    if not address.startswith("\0"):
        _removeStaleSocket(address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    port = _listen(reactor, sock, address, factory, backlog)
    if not address.startswith("\0"):
        os.chmod(address, mode)
    return port


def adoptStreamPort(reactor: Any, fd: int, family: int, factory: Any) -> Port:
    sock = socket.socket(family, socket.SOCK_STREAM, 0, os.dup(fd))
    sock.setblocking(False)
    port = Port(sock, factory, reactor)
    port.startListening()
    return port


def _listen(reactor: Any, sock: socket.socket, address: Any, factory: Any, backlog: int) -> Port:
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        host, port = (address if isinstance(address, tuple) else ("", address))
        raise CannotListenError(host, port, e) from e
    sock.setblocking(False)
    port = Port(sock, factory, reactor)
    port.startListening()
    return port


def _removeStaleSocket(path: str) -> None:
    """Unlink a socket file nobody listens on any more; refuse to clobber a live one."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
    else:
        raise CannotListenError(path, None, OSError(errno.EADDRINUSE, "in use"))
    finally:
        probe.close()
