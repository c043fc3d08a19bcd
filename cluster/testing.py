"""Test doubles: a deterministic ``Clock``, a ``StringTransport`` that records writes, and a
``MemoryReactor`` that records what was asked of it instead of touching the network."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterable
from typing import Any

from cluster.address import IPv4Address, UNIXAddress
from cluster.error import ReactorAlreadyRunning, ReactorNotRunning
from cluster.timers import DelayedCall, TimerQueue


class Clock(TimerQueue):
    """A ``callLater`` provider whose time moves only when ``advance`` is called."""

    def __init__(self) -> None:
        super().__init__()
        self.rightNow = 0.0

    def seconds(self) -> float:
        return self.rightNow

    @property
    def calls(self) -> list[DelayedCall]:
        """Pending calls, earliest first."""
        return sorted(self.getDelayedCalls(), key=lambda c: (c.time, c._seq))

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` and run every call that became due, in order
        (including calls they schedule that are already due)."""
        self.rightNow += amount
        self._runDue(self.rightNow, False)

    def pump(self, timings: Iterable[float]) -> None:
        """``advance`` by each amount in turn."""
        for amount in timings:
            self.advance(amount)


class StringTransport:
    """A transport that keeps what is written in memory (``value()``, ``clear()``)."""

    disconnecting = False
    connected = True

    def __init__(self, hostAddress: Any = None, peerAddress: Any = None) -> None:
        self.io = io.BytesIO()
        self.producer: Any = None
        self.streaming: bool | None = None
        self.producerState = "producing"
        self.aborted = False
        self.hostAddress = hostAddress or IPv4Address("TCP", "10.0.0.1", 12345)
        self.peerAddress = peerAddress or IPv4Address("TCP", "192.168.1.1", 54321)

    def value(self) -> bytes:
        """Everything written since the last ``clear()``."""
        return self.io.getvalue()

    def clear(self) -> None:
        self.io.seek(0)
        self.io.truncate()

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.io.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()

    def getPeer(self) -> Any:
        return self.peerAddress

    def getHost(self) -> Any:
        return self.hostAddress

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError("a producer is already registered")
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        if self.producer is None:
            raise RuntimeError("no producer is registered")
        self.producer = None
        self.streaming = None

    def _checkState(self) -> None:
        if self.producerState == "stopped":
            raise RuntimeError("the transport was stopped")

    def pauseProducing(self) -> None:
        self._checkState()
        self.producerState = "paused"

    def resumeProducing(self) -> None:
        self._checkState()
        self.producerState = "producing"

    def stopProducing(self) -> None:
        self.producerState = "stopped"

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass


class _FakePort:
    def __init__(self, address: Any) -> None:
        self.address = address
        self.listening = True

    def getHost(self) -> Any:
        return self.address

    def stopListening(self) -> None:
        self.listening = False


class _FakeConnector:
    def __init__(self, address: Any) -> None:
        self.address = address
        self.state = "connecting"
        self.stoppedConnecting = False

    def connect(self) -> None:
        self.state = "connecting"

    def stopConnecting(self) -> None:
        self.stoppedConnecting = True
        self.state = "disconnected"

    def disconnect(self) -> None:
        self.state = "disconnected"

    def getDestination(self) -> Any:
        return self.address


class MemoryReactor(Clock):
    """A reactor that records listen/connect/adopt requests and descriptor registrations,
    with ``Clock`` time; nothing touches the network."""

    def __init__(self) -> None:
        super().__init__()
        self.tcpServers: list[tuple] = []
        self.tcpClients: list[tuple] = []
        self.unixServers: list[tuple] = []
        self.unixClients: list[tuple] = []
        self.adoptedPorts: list[tuple] = []
        self.adoptedStreamConnections: list[tuple] = []
        self.readers: set = set()
        self.writers: set = set()
        self.triggers: dict[str, dict[str, list]] = {}
        self.whenRunningHooks: list[tuple] = []
        self.running = False
        self.hasRun = False
        self.hasStopped = False

    def run(self) -> None:
        if self.running:
            raise ReactorAlreadyRunning()
        self.running = self.hasRun = True
        for f, args, kw in self.whenRunningHooks:
            f(*args, **kw)

    def stop(self) -> None:
        if not self.running:
            raise ReactorNotRunning()
        self.running = False
        self.hasStopped = True

    def callWhenRunning(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        if self.running:
            f(*args, **kw)
        else:
            self.whenRunningHooks.append((f, args, kw))

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self.callLater(0, f, *args, **kw)

    def addSystemEventTrigger(self, phase: str, eventType: str, f: Callable[..., Any],
                              *args: Any, **kw: Any) -> tuple:
        entry = (f, args, kw)
        self.triggers.setdefault(eventType, {}).setdefault(phase, []).append(entry)
        return (eventType, phase, entry)

    def addReader(self, reader: Any) -> None:
        self.readers.add(reader)

    def addWriter(self, writer: Any) -> None:
        self.writers.add(writer)

    def removeReader(self, reader: Any) -> None:
        self.readers.discard(reader)

    def removeWriter(self, writer: Any) -> None:
        self.writers.discard(writer)

    def removeAll(self) -> list[Any]:
        everything = list(self.readers | self.writers)
        self.readers.clear()
        self.writers.clear()
        return everything

    def getReaders(self) -> list[Any]:
        return list(self.readers)

    def getWriters(self) -> list[Any]:
        return list(self.writers)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> _FakePort:
        self.tcpServers.append((port, factory, backlog, interface))
        return _FakePort(IPv4Address("TCP", interface or "0.0.0.0", port))

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> _FakeConnector:
        self.tcpClients.append((host, port, factory, timeout, bindAddress))
        connector = _FakeConnector(IPv4Address("TCP", host, port))
        factory.startedConnecting(connector)
        return connector

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666,
                   wantPID: int = 0) -> _FakePort:
        self.unixServers.append((address, factory, backlog, mode, wantPID))
        return _FakePort(UNIXAddress(address))

    def connectUNIX(self, address: str, factory: Any, timeout: float = 30,
                    checkPID: int = 0) -> _FakeConnector:
        self.unixClients.append((address, factory, timeout, checkPID))
        connector = _FakeConnector(UNIXAddress(address))
        factory.startedConnecting(connector)
        return connector

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> _FakePort:
        self.adoptedPorts.append((fileDescriptor, addressFamily, factory))
        family_address = UNIXAddress(None) if addressFamily == socket.AF_UNIX else \
            IPv4Address("TCP", "0.0.0.0", 0)
        return _FakePort(family_address)

    def adoptStreamConnection(self, fileDescriptor: int, addressFamily: int,
                              factory: Any) -> None:
        self.adoptedStreamConnections.append((fileDescriptor, addressFamily, factory))
