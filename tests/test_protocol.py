"""Factories, ReconnectingClientFactory and the test doubles."""

from __future__ import annotations

import pytest

from cluster.error import ConnectionRefusedError
from cluster.failure import Failure
from cluster.protocol import ClientFactory, Factory, Protocol, ReconnectingClientFactory
from cluster.testing import MemoryReactor, StringTransport


class Hello(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello")


def test_factory_builds_protocols_with_factory_set():
    f = Factory.forProtocol(Hello)
    p = f.buildProtocol(None)
    assert isinstance(p, Hello) and p.factory is f
    t = StringTransport()
    p.makeConnection(t)
    assert p.connected and p.transport is t
    assert t.value() == b"hello"


def test_factory_start_stop_counts_ports():
    events = []

    class F(Factory):
        def startFactory(self):
            events.append("start")

        def stopFactory(self):
            events.append("stop")

    f = F()
    f.doStart()
    f.doStart()
    f.doStop()
    assert events == ["start"]
    f.doStop()
    assert events == ["start", "stop"]


class FakeConnector:
    def __init__(self):
        self.connects = 0
        self.stopped = False

    def connect(self):
        self.connects += 1

    def stopConnecting(self):
        self.stopped = True


def refused():
    return Failure(ConnectionRefusedError(string="refused"))


def test_reconnecting_factory_backs_off_exponentially_with_cap():
    clock = MemoryReactor()
    f = ReconnectingClientFactory()
    f.clock = clock
    f.jitter = 0
    f.maxDelay = 30
    c = FakeConnector()
    delays = []
    for _ in range(8):
        f.clientConnectionFailed(c, refused())
        (call,) = clock.getDelayedCalls()
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert c.connects == 8
    assert delays[0] == pytest.approx(f.initialDelay * f.factor)
    assert all(b >= a - 1e-9 for a, b in zip(delays, delays[1:], strict=False))
    assert max(delays) == pytest.approx(30)
    assert delays[-1] == pytest.approx(30)


def test_reconnecting_factory_jitter_varies_delays():
    clock = MemoryReactor()
    f = ReconnectingClientFactory()
    f.clock = clock
    c = FakeConnector()
    delays = set()
    for _ in range(5):
        f.resetDelay()
        f.clientConnectionLost(c, refused())
        (call,) = clock.getDelayedCalls()
        delays.add(round(call.getTime() - clock.seconds(), 9))
        call.cancel()
    assert len(delays) > 1


def test_reconnecting_factory_stop_trying():
    clock = MemoryReactor()
    f = ReconnectingClientFactory()
    f.clock = clock
    c = FakeConnector()
    f.clientConnectionFailed(c, refused())
    assert len(clock.getDelayedCalls()) == 1
    f.stopTrying()
    assert clock.getDelayedCalls() == []
    assert c.stopped
    f.clientConnectionLost(c, refused())
    clock.advance(10000)
    assert c.connects == 0


def test_reconnecting_factory_max_retries():
    clock = MemoryReactor()
    f = ReconnectingClientFactory()
    f.clock = clock
    f.maxRetries = 2
    c = FakeConnector()
    for _ in range(5):
        f.clientConnectionFailed(c, refused())
        clock.advance(f.maxDelay)
    assert c.connects == 2


def test_memory_reactor_records_requests():
    r = MemoryReactor()
    f = ClientFactory.forProtocol(Hello)
    r.connectTCP("127.0.0.1", 1234, f, timeout=5)
    r.listenTCP(0, Factory.forProtocol(Hello), interface="127.0.0.1")
    assert r.tcpClients[0][:2] == ("127.0.0.1", 1234)
    assert r.tcpServers[0][3] == "127.0.0.1"
    seen = []
    r.callWhenRunning(seen.append, "running")
    r.run()
    assert seen == ["running"] and r.hasRun
    r.stop()
    assert r.hasStopped


def test_string_transport_producer_state():
    t = StringTransport()
    t.pauseProducing()
    assert t.producerState == "paused"
    t.resumeProducing()
    t.stopProducing()
    with pytest.raises(RuntimeError):
        t.resumeProducing()
    t.write(b"a")
    t.writeSequence([b"b", b"c"])
    assert t.value() == b"abc"
    t.clear()
    assert t.value() == b""
    with pytest.raises(TypeError):
        t.write("text")
