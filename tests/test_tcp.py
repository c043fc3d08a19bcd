"""Transports, ports and connectors over real loopback sockets."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from cluster.defer import Deferred, DeferredList
from cluster.error import (
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
    TimeoutError,
)
from cluster.protocol import ClientFactory, Factory, Protocol, ReconnectingClientFactory

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Collector(Protocol):
    """Client side: sends ``payload`` on connect, collects everything, fires ``done``."""

    def __init__(self, payload=b"", expect=None):
        self.payload = payload
        self.expect = expect
        self.received = bytearray()
        self.done = Deferred()

    def connectionMade(self):
        if self.payload:
            self.transport.write(self.payload)

    def dataReceived(self, data):
        self.received += data
        if self.expect is not None and len(self.received) >= self.expect:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.done.callback((bytes(self.received), reason))


class OneShotClientFactory(ClientFactory):
    def __init__(self, proto):
        self.proto = proto
        self.failed = Deferred()

    def buildProtocol(self, addr):
        self.proto.factory = self
        return self.proto

    def clientConnectionFailed(self, connector, reason):
        self.failed.callback([reason])
        self.proto.done.callback((b"", reason))


def listen(r, protocol_class, **kw):
    return r.listenTCP(0, Factory.forProtocol(protocol_class), interface="127.0.0.1", **kw)


def test_echo_round_trip_many_clients(runner):
    r = runner.reactor
    port = listen(r, Echo)
    clients = []
    for i in range(50):
        payload = f"client {i} ".encode() * 100
        c = Collector(payload, expect=len(payload))
        clients.append((payload, c))
        r.connectTCP("127.0.0.1", port.getHost().port, OneShotClientFactory(c))
    results = runner.run_until(DeferredList([c.done for _, c in clients]))
    for (payload, _), (ok, (received, reason)) in zip(clients, results, strict=True):
        assert ok and received == payload
        assert reason.check(ConnectionDone)


def test_large_write_is_flushed_before_lose_connection(runner):
    r = runner.reactor
    blob = os.urandom(1 << 20) * 12  # 12 MiB, far more than socket buffers hold

    class Sender(Protocol):
        def connectionMade(self):
            for i in range(0, len(blob), 1 << 20):
                self.transport.write(blob[i:i + (1 << 20)])
            self.transport.loseConnection()

    port = listen(r, Sender)
    c = Collector()
    r.connectTCP("127.0.0.1", port.getHost().port, OneShotClientFactory(c))
    received, reason = runner.run_until(c.done, timeout=30)
    assert received == blob
    assert reason.check(ConnectionDone)


def test_write_sequence_and_memoryview_and_bytearray(runner):
    r = runner.reactor

    class Sender(Protocol):
        def connectionMade(self):
            buf = bytearray(b"abc")
            self.transport.write(buf)
            buf[:] = b"XYZ"  # reuse after write must not change what is sent
            self.transport.writeSequence([b"d", b"e"])
            self.transport.write(memoryview(b"fgh")[1:])
            self.transport.loseConnection()

    port = listen(r, Sender)
    c = Collector()
    r.connectTCP("127.0.0.1", port.getHost().port, OneShotClientFactory(c))
    received, _ = runner.run_until(c.done)
    assert received == b"abcdegh"


def test_abort_connection_discards_queued_data(runner):
    r = runner.reactor
    lost = Deferred()

    class Aborter(Protocol):
        def connectionMade(self):
            self.transport.write(b"z" * (64 << 20))  # far more than the kernel takes
            self.transport.abortConnection()
            self.transport.write(b"after abort")  # ignored

        def connectionLost(self, reason):
            lost.callback([reason])

    port = listen(r, Aborter)
    sock = socket.create_connection(("127.0.0.1", port.getHost().port))
    (reason,) = runner.run_until(lost)
    assert reason.check(ConnectionAborted)
    sock.settimeout(5)
    total = 0
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        total += len(chunk)
    sock.close()
    assert total < 64 << 20


def test_tcp_nodelay_on_both_sides_by_default(runner):
    r = runner.reactor
    server_side = Deferred()
    client_side = Deferred()

    class Check(Protocol):
        def connectionMade(self):
            server_side.callback(self.transport.getTcpNoDelay())

    class ClientCheck(Protocol):
        def connectionMade(self):
            t = self.transport
            states = [t.getTcpNoDelay()]
            t.setTcpNoDelay(False)
            states.append(t.getTcpNoDelay())
            t.setTcpKeepAlive(True)
            states.append(t.getTcpKeepAlive())
            client_side.callback(states)

    port = listen(r, Check)
    r.connectTCP("127.0.0.1", port.getHost().port, ClientFactory.forProtocol(ClientCheck))
    assert runner.run_until(DeferredList([server_side, client_side])) == [
        (True, True), (True, [True, False, True])]


def test_get_peer_and_host(runner):
    r = runner.reactor
    got = Deferred()

    class Addr(Protocol):
        def connectionMade(self):
            got.callback((self.transport.getPeer(), self.transport.getHost()))

    port = listen(r, Addr)
    sock = socket.create_connection(("127.0.0.1", port.getHost().port))
    peer, host = runner.run_until(got)
    assert (peer.host, peer.port) == sock.getsockname()
    assert (host.host, host.port) == ("127.0.0.1", port.getHost().port)
    sock.close()


def test_push_producer_is_paused_and_resumed_by_the_write_buffer(runner):
    r = runner.reactor
    events = []
    finished = Deferred()

    class Producer:
        def __init__(self, transport):
            self.transport = transport
            self.paused = False
            self.sent = 0

        def pauseProducing(self):
            events.append(("pause", self.transport._queued))
            self.paused = True

        def resumeProducing(self):
            events.append(("resume", self.transport._queued))
            self.paused = False
            self.pump()

        def stopProducing(self):
            events.append(("stop", 0))

        def pump(self):
            while not self.paused and self.sent < (32 << 20):
                self.transport.write(b"p" * 65536)
                self.sent += 65536
            if self.sent >= (32 << 20) and not self.paused:
                self.transport.unregisterProducer()
                self.transport.loseConnection()

    class Server(Protocol):
        def connectionMade(self):
            self.producer = Producer(self.transport)
            self.transport.registerProducer(self.producer, True)
            self.producer.pump()

    port = listen(r, Server)
    slow = socket.create_connection(("127.0.0.1", port.getHost().port))
    slow.setblocking(False)
    received = [0]

    def drain():
        try:
            while True:
                chunk = slow.recv(1 << 16)
                if not chunk:
                    finished.callback(received[0])
                    return
                received[0] += len(chunk)
        except BlockingIOError:
            pass
        r.callLater(0.002, drain)

    r.callLater(0.2, drain)  # the peer reads nothing for a while: the buffer fills
    total = runner.run_until(finished, timeout=60)
    slow.close()
    assert total == 32 << 20
    pauses = [q for e, q in events if e == "pause"]
    resumes = [q for e, q in events if e == "resume"]
    assert pauses and resumes
    hw = 65536
    assert all(q > hw for q in pauses)
    assert all(q <= 16384 for q in resumes)
    # buffered bytes stay near the high-water mark: one write's worth above it at most
    assert max(pauses) <= hw + 65536


def test_pull_producer_is_asked_for_more_when_the_buffer_drains(runner):
    r = runner.reactor
    chunks = [os.urandom(100000) for _ in range(20)]

    class Pull:
        def __init__(self, transport):
            self.transport = transport
            self.index = 0

        def resumeProducing(self):
            if self.index == len(chunks):
                self.transport.unregisterProducer()
                self.transport.loseConnection()
                return
            self.transport.write(chunks[self.index])
            self.index += 1

        def stopProducing(self):
            pass

    class Server(Protocol):
        def connectionMade(self):
            self.transport.registerProducer(Pull(self.transport), False)

    port = listen(r, Server)
    c = Collector()
    r.connectTCP("127.0.0.1", port.getHost().port, OneShotClientFactory(c))
    received, _ = runner.run_until(c.done, timeout=30)
    assert received == b"".join(chunks)


FLOOD_SCRIPT = textwrap.dedent(
    """
    import socket, sys, time
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sock.settimeout(1.0)
    chunk = b"f" * (1 << 20)
    sent = 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
        except socket.timeout:
            break  # the paused server's kernel buffers are full
    print(sent, flush=True)
    sys.stdin.readline()
    """
)


def test_flooding_a_paused_transport_does_not_grow_memory(runner):
    """A client sends as fast as it can to a connection whose protocol paused reading:
    the server process must not buffer it (kernel windows fill instead)."""
    r = runner.reactor
    me = psutil.Process()
    state = {}
    measured = Deferred()

    class Paused(Protocol):
        received = 0

        def connectionMade(self):
            state["proto"] = self
            self.transport.pauseProducing()

        def dataReceived(self, data):
            self.received += len(data)
            if self.received >= state.get("sent", 1 << 62):
                self.transport.loseConnection()
                measured.callback(None)

    port = listen(r, Paused)
    proc = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, str(port.getHost().port), "8"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        rss_before = me.memory_info().rss

        def wait_for_client():
            line = proc.stdout.readline()  # blocks until the client's send timed out
            state["sent"] = int(line)
            state["rss_growth"] = me.memory_info().rss - rss_before
            state["received_while_paused"] = state["proto"].received
            state["proto"].transport.resumeProducing()

        r.callLater(0.3, wait_for_client)
        runner.run_until(measured, timeout=30)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    assert state["received_while_paused"] == 0
    # the client pushed what the kernel would take; none of it landed in our heap
    assert state["rss_growth"] < 8 << 20, state
    assert state["proto"].received == state["sent"]


def test_exception_in_data_received_closes_only_that_connection(runner, caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    r = runner.reactor

    class Fragile(Protocol):
        def dataReceived(self, data):
            if data.startswith(b"crash"):
                raise ValueError("protocol bug")
            self.transport.write(data)

    port = listen(r, Fragile)
    bad = socket.create_connection(("127.0.0.1", port.getHost().port))
    good = socket.create_connection(("127.0.0.1", port.getHost().port))
    bad.sendall(b"crash")
    result = Deferred()

    def check():
        good.settimeout(5)
        bad.settimeout(5)
        result.callback((good.recv(100), bad.recv(100)))

    r.callLater(0.1, good.sendall, b"still here")
    r.callLater(0.2, check)
    good_reply, bad_reply = runner.run_until(result)
    assert good_reply == b"still here"
    assert bad_reply == b""  # closed
    assert "protocol bug" in caplog.text and "Traceback" in caplog.text
    good.close()
    bad.close()


def test_exception_in_connection_made_is_logged_and_closes(runner, caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    r = runner.reactor

    class Broken(Protocol):
        def connectionMade(self):
            raise RuntimeError("cannot start")

    port = listen(r, Broken)
    sock = socket.create_connection(("127.0.0.1", port.getHost().port))
    sock.settimeout(5)
    got = Deferred()
    r.callLater(0.1, lambda: got.callback(sock.recv(10)))
    assert runner.run_until(got) == b""
    assert "cannot start" in caplog.text
    sock.close()


def test_connection_refused(runner):
    r = runner.reactor
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
    s.close()
    c = Collector()
    f = OneShotClientFactory(c)
    r.connectTCP("127.0.0.1", free_port, f)
    reason = runner.run_until(f.failed)[0]
    assert reason.check(ConnectionRefusedError)
    assert isinstance(reason.value, ConnectionRefusedError)


def test_connect_timeout(runner):
    r = runner.reactor
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = [socket.socket() for _ in range(3)]
    for s in fillers:
        s.setblocking(False)
        s.connect_ex(full.getsockname())
    time.sleep(0.05)
    c = Collector()
    f = OneShotClientFactory(c)
    start = time.monotonic()
    r.connectTCP("127.0.0.1", full.getsockname()[1], f, timeout=0.3)
    reason = runner.run_until(f.failed)[0]
    assert reason.check(TimeoutError)
    assert time.monotonic() - start >= 0.29
    for s in fillers + [full]:
        s.close()


def test_stop_connecting_and_connect_by_name(runner):
    r = runner.reactor
    c = Collector()
    f = OneShotClientFactory(c)
    connector = r.connectTCP("127.0.0.1", 9, f)
    connector.stopConnecting()
    assert runner.run_until(f.failed)[0].check(ConnectingCancelledError)

    port = listen(r, Echo)
    c2 = Collector(b"by name", expect=7)
    r2 = r.connectTCP("localhost", port.getHost().port, OneShotClientFactory(c2))
    received, _ = runner.run_until(c2.done)
    assert received == b"by name"
    assert r2.getDestination().host == "localhost"


def test_reconnecting_client_factory_connects_once_the_server_is_up(runner):
    r = runner.reactor
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    portno = s.getsockname()[1]
    s.close()
    connected = Deferred()

    class Hello(Protocol):
        def connectionMade(self):
            self.factory.resetDelay()
            self.factory.stopTrying()
            connected.callback(self.factory.retries)
            self.transport.loseConnection()

    class F(ReconnectingClientFactory):
        protocol = Hello
        initialDelay = 0.02
        maxDelay = 0.1
        failures = 0

        def clientConnectionFailed(self, connector, reason):
            self.failures += 1
            if self.failures == 2:
                r.listenTCP(portno, Factory.forProtocol(Echo), interface="127.0.0.1")
            super().clientConnectionFailed(connector, reason)

    f = F()
    f.clock = r
    r.connectTCP("127.0.0.1", portno, f)
    runner.run_until(connected)
    assert f.failures >= 2


def test_unix_sockets(runner, tmp_path):
    r = runner.reactor
    path = str(tmp_path / "echo.sock")
    port = r.listenUNIX(path, Factory.forProtocol(Echo))
    assert port.getHost().name == path
    c = Collector(b"over unix", expect=9)
    r.connectUNIX(path, OneShotClientFactory(c))
    received, _ = runner.run_until(c.done)
    assert received == b"over unix"
    port.stopListening()
    assert not os.path.exists(path)


def test_adopt_stream_connection_takes_its_own_fd(runner):
    r = runner.reactor
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    transport = r.adoptStreamConnection(accepted.fileno(), socket.AF_INET,
                                        Factory.forProtocol(Echo))
    accepted.close()  # the reactor holds its own duplicate
    assert transport.getPeer().port == client.getsockname()[1]
    client.sendall(b"adopted")
    client.settimeout(5)
    got = Deferred()
    r.callLater(0.05, lambda: got.callback(client.recv(100)))
    assert runner.run_until(got) == b"adopted"
    client.close()
    listener.close()


def test_adopt_stream_port(runner):
    r = runner.reactor
    listener = socket.create_server(("127.0.0.1", 0))
    port = r.adoptStreamPort(listener.fileno(), socket.AF_INET, Factory.forProtocol(Echo))
    address = listener.getsockname()
    listener.close()
    assert port.getHost().port == address[1]
    c = Collector(b"via adopted port", expect=16)
    r.connectTCP(*address, OneShotClientFactory(c))
    received, _ = runner.run_until(c.done)
    assert received == b"via adopted port"


EMFILE_SCRIPT = textwrap.dedent(
    """
    import logging, resource, socket, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    from cluster.protocol import Factory, Protocol
    from cluster.reactor import reactor

    class Hello(Protocol):
        def connectionMade(self):
            self.transport.write(b"hi")
            self.factory.conns.append(self.transport)

    factory = Factory.forProtocol(Hello)
    factory.conns = []
    port = reactor.listenTCP(0, factory, interface="127.0.0.1", backlog=128)
    address = port.getHost().host, port.getHost().port
    base = len(__import__("os").listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (base + 20, base + 20))
    clients = []

    def connect():
        # the client sockets of this very process use up the fd table
        for _ in range(30):
            try:
                s = socket.socket()
            except OSError:
                break
            s.setblocking(False)
            s.connect_ex(address)
            clients.append(s)

    def measure():
        cpu0 = sum(__import__("os").times()[:2])
        def report():
            cpu = sum(__import__("os").times()[:2]) - cpu0
            print(f"served {len(factory.conns)} cpu {cpu:.3f}", flush=True)
            for t in factory.conns[:10]:
                t.abortConnection()
            for s in clients[:10]:
                s.close()
            reactor.callLater(0.5, lambda: (print(f"after {len(factory.conns)}",
                                                  flush=True), reactor.stop()))
        reactor.callLater(1.0, report)

    reactor.callWhenRunning(connect)
    reactor.callLater(0.2, measure)
    reactor.run()
    """
)


def test_fd_exhaustion_pauses_accepting_instead_of_spinning():
    proc = subprocess.run([sys.executable, "-c", EMFILE_SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    served_at = next(i for i, ln in enumerate(lines) if ln.startswith("served"))
    exhausted = [ln for ln in lines[:served_at] if "pausing accepts" in ln]
    assert len(exhausted) == 1, lines  # a second of exhaustion: logged once
    served = lines[served_at]
    cpu = float(served.split()[-1])
    assert cpu < 0.5, served  # one second of EMFILE did not spin a core
    after = int(next(ln for ln in lines if ln.startswith("after")).split()[1])
    assert after > int(served.split()[1])  # fds freed: accepting resumed


def test_a_peer_that_never_reads_is_cut_off_past_the_output_cap(runner, monkeypatch, caplog):
    """No producer registered: past ``Connection.maxBuffered`` queued bytes the peer is
    taken not to read, the connection closed and that logged, so memory stays bounded."""
    from cluster.transport import Connection

    monkeypatch.setattr(Connection, "maxBuffered", 4 << 20)
    r = runner.reactor
    lost = Deferred()

    class Flooder(Protocol):
        def connectionMade(self):
            self.sent = 0
            self.more()

        def more(self):
            if self.transport.connected:
                self.transport.write(b"x" * (1 << 20))
                self.sent += 1
                r.callLater(0, self.more)

        def connectionLost(self, reason):
            lost.callback([reason, self.sent])

    port = listen(r, Flooder)
    sock = socket.create_connection(("127.0.0.1", port.getHost().port))  # never reads
    reason, sent = runner.run_until(lost)
    sock.close()
    assert reason.check(ConnectionAborted)
    assert sent <= 4 + 8  # the cap plus what the kernel's buffers took
    assert "does not read" in caplog.text
