"""Small apps the cluster tests serve (``tests.clusterapps:NAME``)."""

from __future__ import annotations

import os

from cluster.basic import LineReceiver
from cluster.protocol import DatagramProtocol, Factory, Protocol


class WhoAmI(LineReceiver):
    """Greets with its worker's pid, then answers each line: ``echo X`` -> ``X``,
    ``pid`` -> the pid, ``nodelay`` -> 1 or 0 (TCP_NODELAY on the worker's socket),
    ``hang`` -> blocks the worker's loop forever."""

    delimiter = b"\n"

    def connectionMade(self):
        self.sendLine(str(os.getpid()).encode())

    def lineReceived(self, line):
        if line.startswith(b"echo "):
            self.sendLine(line[5:])
        elif line == b"pid":
            self.sendLine(str(os.getpid()).encode())
        elif line == b"nodelay":
            self.sendLine(b"%d" % self.transport.getTcpNoDelay())
        elif line == b"hang":
            while True:
                pass


whoami = Factory.forProtocol(WhoAmI)


class Recorder(Protocol):
    """Key-routed: once ``END\n`` arrives, replies ``pid:<every byte received>``."""

    def connectionMade(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data
        if self.received.endswith(b"END\n"):
            self.transport.write(b"%d:%s" % (os.getpid(), self.received))


class KeyedFactory(Factory):
    protocol = Recorder

    @staticmethod
    def routeKey(preamble: bytes):
        """``LOGIN <key>\\n`` names the key; until the newline arrives, wait."""
        line, sep, _ = preamble.partition(b"\n")
        if not sep:
            return None
        word, _, key = line.partition(b" ")
        if word != b"LOGIN" or not key:
            raise ValueError("expected LOGIN <key>")
        return key


keyed = KeyedFactory()


def make_whoami():
    """A zero-argument callable: the worker calls it once, after its reactor exists."""
    from cluster.reactor import reactor

    assert not reactor.running
    return Factory.forProtocol(WhoAmI)


class EchoCommandLoad(Protocol):
    """A user-defined ``cluster load`` workload: ``echo N`` lines against ``whoami``,
    each answer checked (the first line, the worker's greeting, is skipped)."""

    def connectionMade(self):
        self.buf = b""
        self.greeted = False
        self.n = 0
        self.sentAt = None
        self.next()

    def next(self):
        if self.recorder.more():
            self.n += 1
            from cluster.reactor import reactor

            self.sentAt = reactor.seconds()
            self.transport.write(b"echo %d\n" % self.n)

    def dataReceived(self, data):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if not self.greeted:
                self.greeted = True
                continue
            if line == b"%d" % self.n:
                self.recorder.done(self.sentAt)
            else:
                self.recorder.error(f"expected {self.n}, got {line!r}")
            self.next()


class WhoAmIDatagram(DatagramProtocol):
    """UDP: answers every datagram with ``pid:datagram``."""

    def datagramReceived(self, datagram, addr):
        self.transport.write(b"%d:%s" % (os.getpid(), datagram), addr)


class WhoAmIWithUDP(Factory):
    protocol = WhoAmI
    datagramProtocol = WhoAmIDatagram


udpwho = WhoAmIWithUDP()


class CountingFactory(Factory):
    """whoami that reports its own numbers (``metrics()``): lines served, by command;
    with ``$METRICS_BROKEN`` set, a hook whose answer breaks the rules."""

    protocol = WhoAmI

    def __init__(self) -> None:
        self.lines = 0

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        factory = self
        original = p.lineReceived

        def counted(line):
            factory.lines += 1
            original(line)

        p.lineReceived = counted
        return p

    def metrics(self):
        if os.environ.get("METRICS_BROKEN"):
            return {"requests": float("inf"), "cluster_up": 1}
        return {"requests": self.lines, "whoami_lines_total": self.lines,
                "whoami_commands_total": ["command", {"echo": self.lines}]}


counting = CountingFactory()


class CrashWhenFlagged(Factory):
    """whoami whose worker exits 0.2 s after it starts while the file ``$CRASH_FLAG``
    exists: a crash loop on demand."""

    protocol = WhoAmI

    def startFactory(self):
        flag = os.environ.get("CRASH_FLAG")
        if flag and os.path.exists(flag):
            from cluster.reactor import reactor

            reactor.callLater(0.2, os._exit, 1)


crashy = CrashWhenFlagged()
