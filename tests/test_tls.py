"""TLS on the reactor (listenSSL, connectSSL, startTLS) over real loopback sockets, with
certificates made for the test run; peers are this reactor's and the standard library's
blocking ssl clients."""

from __future__ import annotations

import logging
import socket
import ssl
import threading

import pytest

from cluster import tls
from cluster.basic import LineReceiver
from cluster.defer import Deferred
from cluster.logs import Episodes
from cluster.protocol import ClientFactory, Factory, Protocol
from tests.certs import clientContext, serverContext

pytestmark = [pytest.mark.timeout(30), pytest.mark.integration]


@pytest.fixture(autouse=True)
def everyFailureLogged(monkeypatch):
    """A fresh episode log per test that writes every line (else one test's episode
    would count, not log, the next test's failures)."""
    monkeypatch.setattr(tls, "_failures", Episodes(logging.getLogger("cluster"), "TLS: %s",
                                                   interval=0))


class Echo(Protocol):
    def dataReceived(self, data):
        if data == b"bye":
            self.transport.write(b"bye")
            self.transport.loseConnection()
        else:
            self.transport.write(data)


class Peer(Protocol):
    """Client side: writes ``payload`` at once (held until the handshake is done), fires
    ``done`` with what came back and the server's certificate."""

    def __init__(self, payload, expect):
        self.payload, self.expect = payload, expect
        self.received = b""
        self.done = Deferred()

    def connectionMade(self):
        self.transport.write(self.payload)

    def dataReceived(self, data):
        self.received += data
        if len(self.received) >= self.expect and not self.done.called:
            self.done.callback((self.received, self.transport.getPeerCertificate()))


class OneFactory(ClientFactory):
    def __init__(self, protocol):
        self.p = protocol

    def buildProtocol(self, addr):
        return self.p

    def clientConnectionFailed(self, connector, reason):
        if not self.p.done.called:
            self.p.done.errback(reason)


def test_connect_ssl_to_listen_ssl_echoes_after_the_handshake(runner, certs):
    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(Echo), serverContext(certs),
                       interface="127.0.0.1")
    peer = Peer(b"hello over tls", 14)
    r.connectSSL("127.0.0.1", port.getHost().port, OneFactory(peer), clientContext(certs))
    received, cert = runner.run_until(peer.done)
    assert received == b"hello over tls"
    assert dict(x[0] for x in cert["subject"])["commonName"] == "server"


def _blocking_client(port, certs, message):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = clientContext(certs).wrap_socket(raw, server_hostname="localhost")
    conn.sendall(message)
    got = b""
    while True:
        try:
            chunk = conn.recv(4096)
        except ssl.SSLZeroReturnError:
            return got, "close_notify"
        if not chunk:
            return got, "close_notify" if conn.pending() == 0 else "eof"
        got += chunk


def test_a_standard_library_client_and_close_notify(runner, certs):
    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(Echo), serverContext(certs),
                       interface="127.0.0.1")
    out = []
    done = Deferred()
    thread = threading.Thread(target=lambda: (out.append(_blocking_client(
        port.getHost().port, certs, b"bye")), r.callFromThread(done.callback, None)))
    thread.start()
    runner.run_until(done)
    thread.join(5)
    assert out == [(b"bye", "close_notify")]  # the server's close was a TLS close


def test_a_failed_handshake_closes_that_connection_only(runner, certs, caplog):
    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(Echo), serverContext(certs),
                       interface="127.0.0.1")
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA: it rejects the server
    bad = Peer(b"x", 1)
    r.connectSSL("127.0.0.1", port.getHost().port, OneFactory(bad), untrusting)
    good = Peer(b"still fine", 10)
    r.callLater(0.2, r.connectSSL, "127.0.0.1", port.getHost().port, OneFactory(good),
                clientContext(certs))
    received, _ = runner.run_until(good.done)
    assert received == b"still fine"
    assert not bad.done.called  # it never got anything
    assert "handshake" in caplog.text and "failed" in caplog.text


def test_garbage_silence_and_a_close_mid_handshake_each_get_a_clear_end(runner, certs,
                                                                      caplog, monkeypatch):
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT", 0.3)
    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(Echo), serverContext(certs),
                       interface="127.0.0.1")
    number = port.getHost().port
    garbage = socket.create_connection(("127.0.0.1", number))
    garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS
    silent = socket.create_connection(("127.0.0.1", number))  # sends nothing
    quitter = socket.create_connection(("127.0.0.1", number))
    quitter.sendall(b"\x16\x03\x01\x00\x40\x01")  # the start of a hello, then gone
    quitter.close()
    ends = {}

    def check():
        for name, s in (("garbage", garbage), ("silent", silent)):
            s.settimeout(0)
            try:
                ends[name] = s.recv(4096)
            except BlockingIOError:
                ends[name] = "open"
            except ConnectionResetError:
                ends[name] = b""
        done.callback(None)

    done = Deferred()
    r.callLater(0.8, check)
    runner.run_until(done)
    assert ends["silent"] == b""  # closed once the handshake timeout passed
    assert ends["garbage"] != "open"  # answered with an alert, or closed
    text = caplog.text
    assert "did not finish the handshake" in text
    assert "closed the connection during the handshake" in text
    for s in (garbage, silent):
        s.close()


class StartTLSServer(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        if line == b"STARTTLS":
            self.sendLine(b"GO")  # in the clear, before the switch
            self.transport.startTLS(self.factory.ctx)
        else:
            self.sendLine(b"secure:" + line)


class StartTLSClient(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self):
        self.lines = []
        self.sendLine(b"STARTTLS")

    def lineReceived(self, line):
        self.lines.append(line)
        if line == b"GO":
            self.transport.startTLS(self.factory.ctx)
            self.sendLine(b"after")
        else:
            self.factory.done.callback((self.lines, self.transport.getPeerCertificate()))


def test_start_tls_switches_an_open_connection(runner, certs):
    r = runner.reactor
    server = Factory.forProtocol(StartTLSServer)
    server.ctx = serverContext(certs)
    port = r.listenTCP(0, server, interface="127.0.0.1")
    client = ClientFactory.forProtocol(StartTLSClient)
    client.ctx = clientContext(certs)
    client.done = Deferred()
    r.connectTCP("127.0.0.1", port.getHost().port, client)
    lines, cert = runner.run_until(client.done)
    assert lines == [b"GO", b"secure:after"]
    assert cert is not None and cert["subject"]


def test_a_client_certificate_reaches_the_server(runner, certs):
    r = runner.reactor
    seen = Deferred()

    class Who(Protocol):
        def dataReceived(self, data):
            if not seen.called:
                seen.callback(self.transport.getPeerCertificate())
            self.transport.write(data)

    port = r.listenSSL(0, Factory.forProtocol(Who), serverContext(certs, requireClient=True),
                       interface="127.0.0.1")
    peer = Peer(b"me", 2)
    r.connectSSL("127.0.0.1", port.getHost().port, OneFactory(peer),
                 clientContext(certs, withCertificate=True))
    cert = runner.run_until(seen)
    assert dict(x[0] for x in cert["subject"])["commonName"] == "client"


def test_a_context_factory_with_get_context_is_accepted(runner, certs):
    class Twistedish:
        def getContext(self):
            return serverContext(certs)

    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(Echo), Twistedish(), interface="127.0.0.1")
    peer = Peer(b"ok", 2)
    r.connectSSL("127.0.0.1", port.getHost().port, OneFactory(peer), clientContext(certs))
    assert runner.run_until(peer.done)[0] == b"ok"
    with pytest.raises(TypeError):
        r.listenSSL(0, Factory.forProtocol(Echo), object())


def test_the_server_name_is_read_from_a_real_client_hello():
    """gateway.sni parses what the standard library's client sends, incomplete or not."""
    from gateway.sni import NotTLS, serverName

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    obj = context.wrap_bio(incoming, outgoing, server_hostname="shard-7.example")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert serverName(hello) == b"shard-7.example"
    assert serverName(hello[:20]) is None  # more is needed
    with pytest.raises(NotTLS):
        serverName(b"GET / HTTP/1.1\r\n")
