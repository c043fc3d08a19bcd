"""Protocols (one per connection) and the Factories that build them, as in Twisted.

Defaults live on the classes, so subclasses that never call ``__init__`` work.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from cluster.error import ConnectionDone
from cluster.failure import Failure
from cluster.interfaces import IProtocol

log = logging.getLogger("cluster")

connectionDone = Failure(ConnectionDone())


class Protocol(IProtocol):
    """Your per-connection logic: override ``connectionMade``, ``dataReceived`` and
    ``connectionLost``; write replies with ``self.transport.write``."""

    factory: Any = None
    transport: Any = None
    connected = 0

    def makeConnection(self, transport: Any) -> None:
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pass

    def logPrefix(self) -> str:
        return self.__class__.__name__


class Factory:
    """Builds a Protocol per connection: set ``protocol`` to the class."""

    protocol: Any = None
    numPorts = 0
    noisy = False

    @classmethod
    def forProtocol(cls, protocol: Any, *args: Any, **kw: Any) -> Factory:
        """A factory of this class whose ``protocol`` is ``protocol``."""
        factory = cls(*args, **kw)
        factory.protocol = protocol
        return factory

    def doStart(self) -> None:
        """Called by each port or connector using this factory; runs ``startFactory`` once."""
        if not self.numPorts:
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """The reverse of ``doStart``: ``stopFactory`` runs when the last user stops."""
        if self.numPorts <= 0:
            return
        self.numPorts -= 1
        if not self.numPorts:
            self.stopFactory()

    def startFactory(self) -> None:
        pass

    def stopFactory(self) -> None:
        pass

    def buildProtocol(self, addr: Any) -> Any:
        """Make a protocol for a new connection from ``addr``; None refuses it."""
        p = self.protocol()
        p.factory = self
        return p

    def logPrefix(self) -> str:
        return self.__class__.__name__


class ServerFactory(Factory):
    """A Factory for listening ports."""


class ClientFactory(Factory):
    """A Factory for ``connectTCP``/``connectUNIX``: it hears how the attempt went."""

    def startedConnecting(self, connector: Any) -> None:
        pass

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        pass

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        pass


class ReconnectingClientFactory(ClientFactory):
    """Reconnects after a lost or failed connection, with exponential backoff and jitter,
    capped at ``maxDelay``; ``stopTrying`` ends it, ``resetDelay`` after a success."""

    maxDelay = 3600.0
    initialDelay = 1.0
    factor = 2.7182818284590451
    jitter = 0.11962656472
    delay = initialDelay
    retries = 0
    maxRetries: int | None = None
    continueTrying = 1
    connector: Any = None
    clock: Any = None
    _callID: Any = None

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: Any = None) -> None:
        """Schedule the next attempt after the current delay, then grow the delay."""
        if not self.continueTrying:
            return
        if connector is None:
            connector = self.connector
            if connector is None:
                raise ValueError("no connector to retry with")
        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            log.info("%s: abandoning %s after %d retries", self.logPrefix(), connector,
                     self.retries - 1)
            return
        self.delay = min(self.delay * self.factor, self.maxDelay)
        if self.jitter:
            self.delay = random.normalvariate(self.delay, self.delay * self.jitter)
            self.delay = max(0.0, min(self.delay, self.maxDelay))

        def reconnector() -> None:
            self._callID = None
            connector.connect()

        clock = self.clock
        if clock is None:
            from cluster.reactor import reactor as clock
        self._callID = clock.callLater(self.delay, reconnector)

    def stopTrying(self) -> None:
        """Cancel a pending retry and any connection attempt in progress; never retry."""
        if self._callID is not None:
            self._callID.cancel()
            self._callID = None
        self.continueTrying = 0
        if self.connector is not None:
            try:
                self.connector.stopConnecting()
            except Exception:
                pass  # not connecting right now: nothing to stop

    def resetDelay(self) -> None:
        """Back to the initial delay; call it once a connection succeeds."""
        self.delay = self.initialDelay
        self.retries = 0
        self._callID = None
        self.continueTrying = 1


class DatagramProtocol:
    """UDP, as Twisted's: ``datagramReceived(data, (host, port))`` per datagram; reply with
    ``self.transport.write(data, addr)`` (or ``write(data)`` once ``transport.connect``
    was called). ``startProtocol``/``stopProtocol`` when listening starts and stops;
    ``connectionRefused`` when a connected socket's peer has no listener (ICMP)."""

    transport: Any = None
    numPorts = 0
    noisy = False

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.doStart()

    def doStart(self) -> None:
        if not self.numPorts:
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        if self.numPorts <= 0:
            return
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            self.stopProtocol()

    def startProtocol(self) -> None:
        pass

    def stopProtocol(self) -> None:
        pass

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        pass

    def connectionRefused(self) -> None:
        pass

    def logPrefix(self) -> str:
        return self.__class__.__name__
