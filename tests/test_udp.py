"""UDP: listenUDP and DatagramProtocol over real loopback sockets, and `cluster run --udp`
spreading datagrams over the workers."""

from __future__ import annotations

import socket
import time

import pytest

from cluster.defer import Deferred
from cluster.protocol import DatagramProtocol

pytestmark = pytest.mark.timeout(30)


class Echo(DatagramProtocol):
    def __init__(self):
        self.events = []

    def startProtocol(self):
        self.events.append("start")

    def stopProtocol(self):
        self.events.append("stop")

    def datagramReceived(self, datagram, addr):
        self.events.append(("got", datagram, addr))
        self.transport.write(datagram.upper(), addr)


def test_datagrams_are_received_and_answered(runner):
    r = runner.reactor
    echo = Echo()
    port = r.listenUDP(0, echo, interface="127.0.0.1")
    host = port.getHost()
    assert host.type == "UDP" and host.host == "127.0.0.1" and host.port > 0
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    done = Deferred()
    replies = []

    def send():
        for word in (b"one", b"two", b"three"):
            client.sendto(word, ("127.0.0.1", host.port))
        r.callLater(0.1, collect)

    def collect():
        for _ in range(3):
            replies.append(client.recvfrom(100)[0])
        done.callback(None)

    r.callLater(0, send)
    runner.run_until(done)
    assert replies == [b"ONE", b"TWO", b"THREE"]
    assert echo.events[0] == "start"
    assert echo.events[1] == ("got", b"one", client.getsockname())
    port.stopListening()
    assert echo.events[-1] == "stop" and echo.transport is None
    client.close()


def test_a_connected_port_hears_connection_refused(runner):
    r = runner.reactor
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    target = closed.getsockname()
    closed.close()  # nobody listens there now: the kernel answers ICMP port unreachable
    refused = Deferred()

    class Client(DatagramProtocol):
        def startProtocol(self):
            self.transport.connect(*target)
            self.transport.write(b"anyone?")

        def connectionRefused(self):
            if not refused.called:
                refused.callback("refused")

    port = r.listenUDP(0, Client(), interface="127.0.0.1")
    r.callLater(0.1, lambda: port.write(b"again?"))  # the error surfaces on a later call
    assert runner.run_until(refused, timeout=5) == "refused"
    port.stopListening()


def test_misuse_is_refused_clearly(runner):
    r = runner.reactor
    port = r.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
    with pytest.raises(ValueError):
        port.write(b"no address")
    with pytest.raises(ValueError):
        port.write(b"x" * 70000, ("127.0.0.1", 9))  # larger than a UDP datagram
    with pytest.raises(ValueError):
        port.connect("localhost", 9)  # an IP address, as in Twisted
    port.connect("127.0.0.1", 9)
    with pytest.raises(ValueError):
        port.write(b"x", ("127.0.0.1", 10))  # connected: only to its peer
    port.stopListening()


@pytest.mark.integration
def test_cluster_udp_spreads_datagrams_over_the_workers(run_cluster):
    from cluster.harness import free_port

    udp = free_port()
    c = run_cluster("tests.clusterapps:udpwho", workers=2, udp=udp)
    pids = set(c.pids().values())
    seen = set()
    for i in range(40):  # a new source port each time: the kernel hashes by source
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(b"hello %d" % i, ("127.0.0.1", udp))
        pid, _, echoed = s.recvfrom(100)[0].partition(b":")
        assert echoed == b"hello %d" % i
        seen.add(int(pid))
        s.close()
        if seen == pids:
            break
        time.sleep(0.01)
    assert seen == pids  # every worker got its share
