"""TLS on the reactor (listenSSL, connectSSL, startTLS) over real loopback sockets, with
certificates made for the test run; peers are this reactor's and the standard library's
blocking ssl clients."""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time

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


def _blocking_client(port, certs, message, then=None):
    """A standard-library TLS client: sends ``message``, reads to the end and tells how
    it ended ("close_notify", or "eof" for a bare close); ``then(conn)`` runs after."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = clientContext(certs).wrap_socket(raw, server_hostname="localhost",
                                            suppress_ragged_eofs=False)
    if message:
        conn.sendall(message)
    got = b""
    while True:
        try:
            chunk = conn.recv(4096)
        except ssl.SSLEOFError:
            end = "eof"
            break
        except ssl.SSLZeroReturnError:
            end = "close_notify"
            break
        if not chunk:
            end = "close_notify"
            break
        got += chunk
    if then is not None:
        then(conn)
    conn.close()
    return got, end


def _serve_one(runner, certs, protocol, message, then=None, until=lambda: True):
    """Serve one standard-library client with ``protocol`` until it is done and
    ``until()`` holds; its (bytes, end)."""
    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(protocol), serverContext(certs),
                       interface="127.0.0.1")
    out = []
    finished = threading.Event()

    def client():
        try:
            out.append(_blocking_client(port.getHost().port, certs, message, then))
        except OSError as e:  # ssl.SSLError included: the server closed mid-handshake
            out.append((b"", type(e).__name__))
        finally:
            finished.set()

    thread = threading.Thread(target=client)
    thread.start()
    runner.run_until(polled(r, lambda: finished.is_set() and until()))
    thread.join(5)
    return out[0] if out else None


def polled(reactor, condition):
    """A Deferred that fires once ``condition()`` holds (looked at every 10 ms)."""
    done = Deferred()

    def poll():
        if condition():
            done.callback(None)
        else:
            reactor.callLater(0.01, poll)

    reactor.callLater(0, poll)
    return done


def test_a_standard_library_client_and_close_notify(runner, certs):
    assert _serve_one(runner, certs, Echo, b"bye") == (b"bye", "close_notify")


def test_lose_connection_before_the_handshake_ends_still_delivers_then_closes(runner, certs):
    class Early(Protocol):
        def connectionMade(self):
            self.transport.write(b"early")  # held until the handshake is done
            self.transport.loseConnection()
            self.transport.write(b" late")  # close_notify is not sent yet: this goes too

    assert _serve_one(runner, certs, Early, b"") == (b"early late", "close_notify")


def test_writes_after_close_notify_are_dropped(runner, certs, caplog):
    class Late(Protocol):
        def dataReceived(self, data):
            self.transport.write(data)
            self.transport.loseConnection()  # close_notify goes at once
            self.transport.write(b" dropped")

    assert _serve_one(runner, certs, Late, b"last") == (b"last", "close_notify")
    assert "TLS" not in caplog.text  # dropped quietly, not an error


def test_close_notify_waits_for_a_registered_producer(runner, certs):
    class Chunks:
        def __init__(self, transport):
            self.transport, self.left = transport, 3

        def resumeProducing(self):
            if self.left:
                self.left -= 1
                self.transport.write(b"chunk%d;" % self.left)
            else:
                self.transport.unregisterProducer()

        def stopProducing(self):
            pass

    class Producing(Protocol):
        def connectionMade(self):
            self.transport.registerProducer(Chunks(self.transport), False)
            self.transport.loseConnection()  # once the producer is done

    got, end = _serve_one(runner, certs, Producing, b"")
    assert (got, end) == (b"chunk2;chunk1;chunk0;", "close_notify")


def test_a_peer_without_close_notify_is_a_lost_connection(runner, certs):
    from cluster.error import ConnectionDone

    reasons = []

    class Recording(Echo):
        def connectionLost(self, reason):
            reasons.append(reason)

    r = runner.reactor
    port = r.listenSSL(0, Factory.forProtocol(Recording), serverContext(certs),
                       interface="127.0.0.1")

    def clients():
        for clean in (False, True):
            raw = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)
            conn = clientContext(certs).wrap_socket(raw, server_hostname="localhost")
            conn.sendall(b"x")
            conn.recv(1)
            if clean:
                conn.unwrap()  # close_notify first
            conn.close()  # close() alone sends none: the TCP end only
            while len(reasons) < (2 if clean else 1):
                time.sleep(0.01)

    thread = threading.Thread(target=clients, daemon=True)
    thread.start()
    runner.run_until(polled(r, lambda: len(reasons) == 2))
    thread.join(5)
    assert not reasons[0].check(ConnectionDone)  # a truncation is not a clean end
    assert "close_notify" in str(reasons[0].value)
    assert reasons[1].check(ConnectionDone)


def test_lose_write_connection_sends_close_notify_and_keeps_reading(runner, certs):
    heard = []

    class HalfClosing(Protocol):
        def dataReceived(self, data):
            heard.append(data)
            if data == b"half":
                self.transport.write(b"part")
                self.transport.loseWriteConnection()

    def more(conn):
        conn.sendall(b"more")  # our side may still write after the server's close_notify
        conn.unwrap()

    got = _serve_one(runner, certs, HalfClosing, b"half", then=more,
                     until=lambda: b"more" in b"".join(heard))
    assert got == (b"part", "close_notify")


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

    def helloFor(name):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.create_default_context()
        context.check_hostname = name is not None
        obj = context.wrap_bio(incoming, outgoing, server_hostname=name)
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        return outgoing.read()

    hello = helloFor("Shard-7.Example")
    assert serverName(hello) == b"shard-7.example"  # names are case-insensitive
    assert serverName(hello[:20]) is None  # more is needed
    assert serverName(helloFor(None)) == b""  # a client by IP address names none
    with pytest.raises(NotTLS):
        serverName(b"GET / HTTP/1.1\r\n")
    # garbage in any byte gives a name, "more", or NotTLS: never another exception
    rng = random.Random(9)
    for _ in range(3000):
        mangled = bytearray(hello)
        for _ in range(rng.randint(1, 4)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        cut = bytes(mangled[:rng.randrange(len(mangled) + 1)] if rng.random() < 0.3
                    else mangled)
        try:
            assert serverName(cut) is None or isinstance(serverName(cut), bytes)
        except NotTLS:
            pass


def test_start_tls_with_roles_swapped(runner, certs):
    """normal=False: the side that accepted is the TLS client (as Twisted's startTLS)."""
    r = runner.reactor
    done = Deferred()

    class Accepting(Protocol):
        def connectionMade(self):
            self.transport.startTLS(clientContext(certs), normal=False)
            self.transport.write(b"from the accepting side")

    class Connecting(Protocol):
        def connectionMade(self):
            self.transport.startTLS(serverContext(certs), normal=False)

        def dataReceived(self, data):
            done.callback((data, self.transport.getPeerCertificate()))

    port = r.listenTCP(0, Factory.forProtocol(Accepting), interface="127.0.0.1")
    r.connectTCP("127.0.0.1", port.getHost().port, ClientFactory.forProtocol(Connecting))
    data, cert = runner.run_until(done)
    assert data == b"from the accepting side"
    assert cert is None  # the TLS server asked for no client certificate


def test_plaintext_held_for_the_handshake_is_bounded(runner, certs, caplog, monkeypatch):
    from cluster.transport import Connection

    monkeypatch.setattr(Connection, "maxBuffered", 4096)
    states = []

    class Flooding(Protocol):
        def connectionMade(self):
            states.append(self.transport.getPeerCertificate())  # None: no handshake yet
            for _ in range(3):
                self.transport.write(b"x" * 2000)  # held: the handshake has not ended
            states.append(self.transport.disconnecting)

    got, end = _serve_one(runner, certs, Flooding, b"")
    assert states == [None, True]  # aborted at once, past the bound
    assert got == b"" and end != "close_notify"  # nothing of it was sent
    assert "before its handshake ended" in caplog.text
