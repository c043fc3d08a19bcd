"""Outgoing connections: ``connectTCP``/``connectUNIX`` return a Connector.

A Connector owns one attempt at a time: resolve (a thread, only for host names), a
non-blocking ``connect``, completion when the socket turns writable, and the timeout.
Every outcome reaches the ClientFactory exactly once, and never from inside
``connect()`` itself: ``clientConnectionFailed`` or, once connected,
``clientConnectionLost``.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from typing import Any

from cluster.address import UNIXAddress, fromSocketAddress
from cluster.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
    TimeoutError,
)
from cluster.failure import Failure
from cluster.transport import Connection


class _Client(Connection):
    """The transport of an outgoing connection; until connected, ``doWrite`` completes the
    non-blocking connect."""

    __slots__ = ("_attempt",)
    _serverSide = False

    def _tlsHostname(self) -> str | None:
        address = self._attempt.address
        return address[0] if isinstance(address, tuple) else None

    def doWrite(self) -> Any:
        if self.connected or self.disconnecting:
            return Connection.doWrite(self)
        connector = self._attempt
        err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            connector._failed(_connectError(err))
            return None
        self.stopWriting()
        connector._connected(self)
        return None


def _connectError(err: int) -> ConnectError:
    text = f"{errno.errorcode.get(err, err)}: {os.strerror(err)}"
    if err == errno.ECONNREFUSED:
        return ConnectionRefusedError(OSError(err, "Connection refused"), text)
    return ConnectError(OSError(err, text), text)


class Connector:
    """One destination for a ClientFactory: ``connect``, ``disconnect``,
    ``stopConnecting``, ``getDestination``; ``state`` is disconnected/connecting/connected."""

    def __init__(self, reactor: Any, family: int, address: Any, factory: Any,
                 timeout: float | None, bindAddress: Any = None) -> None:
        self.reactor = reactor
        self.family = family
        self.address = address
        self.factory = factory
        self.timeout = timeout
        self.bindAddress = bindAddress
        self.state = "disconnected"
        self.transport: Any = None
        self.tlsContext: Any = None  # connectSSL: the handshake starts once connected
        self._client: _Client | None = None
        self._timeoutCall: Any = None
        self._attemptId = 0
        self._factoryStarted = False

    def connect(self) -> None:
        """Start an attempt; the factory hears how it went."""
        if self.state != "disconnected":
            raise RuntimeError(f"cannot connect in state {self.state}")
        self.state = "connecting"
        if not self._factoryStarted:
            self.factory.doStart()
            self._factoryStarted = True
        self._attemptId += 1
        attempt = self._attemptId
        if self.timeout is not None:
            self._timeoutCall = self.reactor.callLater(
                self.timeout, self._failed,
                TimeoutError(f"connecting to {self.address} timed out after {self.timeout}s"))
        self.factory.startedConnecting(self)
        if self.state != "connecting":
            return  # stopConnecting was called from startedConnecting
        if self.family == socket.AF_UNIX or _isAddress(self.address[0]):
            self.reactor.callLater(0, self._begin, attempt, self.family, self.address)
        else:
            threading.Thread(target=self._resolve, args=(attempt,), daemon=True).start()

    def _resolve(self, attempt: int) -> None:
        host, port = self.address
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        except OSError as e:
            self.reactor.callFromThread(self._failedAttempt, attempt, DNSLookupError(e, host))
            return
        self.reactor.callFromThread(self._begin, attempt, family, sockaddr)

    def _failedAttempt(self, attempt: int, err: Exception) -> None:
        if attempt == self._attemptId and self.state == "connecting":
            self._failed(err)

    def _begin(self, attempt: int, family: int, sockaddr: Any) -> None:
        if attempt != self._attemptId or self.state != "connecting":
            return
        self.family = family
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        client = _Client(sock, None, self.reactor)
        client._attempt = self
        self._client = client
        try:
            if self.bindAddress is not None:
                sock.bind(self.bindAddress)
            err = sock.connect_ex(sockaddr)
        except OSError as e:
            self._failed(ConnectError(e, str(e)))
            return
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self._failed(_connectError(err))
            return
        client.startWriting()

    def _cancelTimeout(self) -> None:
        if self._timeoutCall is not None:
            if self._timeoutCall.active():
                self._timeoutCall.cancel()
            self._timeoutCall = None

    def _connected(self, client: _Client) -> None:
        self._cancelTimeout()
        self._client = None
        sock = client.socket
        if self.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = sock.getpeername()
        else:
            peer = self.address
        self.state = "connected"
        protocol = self.factory.buildProtocol(fromSocketAddress(self.family, peer))
        if protocol is None:
            client.disconnected = True
            sock.close()
            self.state = "disconnected"
            self._stopFactoryIfIdle()
            return
        client.protocol = protocol
        client._peer = peer
        client._owner = self
        client.connected = True
        self.transport = client
        client.startReading()
        try:
            if self.tlsContext is not None:
                from cluster import tls

                tls.start(client, self.tlsContext, serverSide=False,
                          hostname=self.address[0])
            protocol.makeConnection(client)
        except Exception:
            client.connectionLost(Failure())

    def _failed(self, err: Exception) -> None:
        """End the current attempt with ``err``: close its socket, tell the factory."""
        if self.state != "connecting":
            return
        self._cancelTimeout()
        client, self._client = self._client, None
        if client is not None:
            client.stopWriting()
            client.disconnected = True
            client.socket.close()
        self.state = "disconnected"
        self.transport = None
        self.factory.clientConnectionFailed(self, Failure(err))
        self._stopFactoryIfIdle()

    def connectionLost(self, reason: Failure) -> None:
        """Called by the transport once an established connection is gone."""
        self.state = "disconnected"
        self.transport = None
        self.factory.clientConnectionLost(self, reason)
        self._stopFactoryIfIdle()

    def _stopFactoryIfIdle(self) -> None:
        if self.state == "disconnected" and self._factoryStarted:
            self.factory.doStop()
            self._factoryStarted = False

    def stopConnecting(self) -> None:
        """Abandon the attempt in progress (clientConnectionFailed with
        ConnectingCancelledError)."""
        if self.state != "connecting":
            raise RuntimeError("not connecting")
        self._failed(ConnectingCancelledError(string="stopConnecting() called"))

    def disconnect(self) -> None:
        """Stop connecting, or close the established connection."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected":
            self.transport.loseConnection()

    def getDestination(self) -> Any:
        if self.family == socket.AF_UNIX:
            return UNIXAddress(self.address)
        return fromSocketAddress(self.family, self.address)

    def __repr__(self) -> str:
        return f"<Connector {self.address} {self.state}>"


def _isAddress(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


def connectTCP(reactor: Any, host: str, port: int, factory: Any, timeout: float | None,
               bindAddress: Any, contextFactory: Any = None) -> Connector:
    """Connect to ``host:port``; with ``contextFactory``, then a TLS handshake (as a
    client, checking ``host`` if the context checks host names)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    connector = Connector(reactor, family, (host, port), factory, timeout, bindAddress)
    if contextFactory is not None:
        from cluster import tls

        connector.tlsContext = tls.contextOf(contextFactory)
    connector.connect()
    return connector


def connectUNIX(reactor: Any, address: str, factory: Any, timeout: float | None) -> Connector:
    connector = Connector(reactor, socket.AF_UNIX, address, factory, timeout)
    connector.connect()
    return connector
