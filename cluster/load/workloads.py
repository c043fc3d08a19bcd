"""What a ``cluster load`` connection does: the built-in workloads, and the contract a
user's workload follows.

A workload is a Protocol class (or a ``module:attr`` naming one, or a zero-argument
callable returning one). The runner gives each instance a ``recorder`` before the
connection is made; the protocol sends requests while ``recorder.more()`` says so,
checks every reply itself, and calls ``recorder.done(sentAt)`` per correct reply (with
the ``reactor.seconds()`` it sent the request at) or ``recorder.error(text)`` per wrong
one. ``options`` is the dict of command-line options.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from cluster.protocol import Protocol
from cluster.reactor import reactor


def valueFor(key: bytes, size: int) -> bytes:
    """The one value any writer ever stores under ``key``: a GET that returns anything
    else (except nothing) read a value that was never written."""
    return (key * (size // len(key) + 1))[:size]


class RespWorkload(Protocol):
    """GET/SET over uniformly random keys, ``pipeline`` requests in flight."""

    recorder: Any
    options: dict[str, Any]

    def connectionMade(self) -> None:
        o = self.options
        self.keyspace = int(o.get("keyspace", 100_000))
        self.size = int(o.get("value_size", 16))
        self.setRatio = float(o.get("set_ratio", 0.5))
        self.pipeline = int(o.get("pipeline", 1))
        self.random = random.Random()
        self.expect: deque[tuple[bytes | None, float]] = deque()  # key of a GET, or None
        self.buf = b""
        self.send()

    def send(self) -> None:
        out = []
        now = reactor.seconds()
        rnd = self.random.random
        while len(self.expect) < self.pipeline and self.recorder.more():
            key = b"key:%d" % int(rnd() * self.keyspace)
            if rnd() < self.setRatio:
                value = valueFor(key, self.size)
                out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                           % (len(key), key, len(value), value))
                self.expect.append((None, now))
            else:
                out.append(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
                self.expect.append((key, now))
        if out:
            self.transport.write(b"".join(out))

    def dataReceived(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        while pos < end and self.expect:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            kind = buf[pos]
            if kind == 36 and buf[pos + 1] != 45:  # $n: a bulk string
                size = int(buf[pos + 1:eol])
                if eol + 2 + size + 2 > end:
                    break
                reply = buf[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
            else:
                reply = buf[pos:eol]  # +OK, -ERR ..., $-1, _
                pos = eol + 2
            self.check(reply, kind)
        self.buf = buf[pos:]
        self.send()

    def check(self, reply: bytes, kind: int) -> None:
        key, sentAt = self.expect.popleft()
        if key is None:
            ok = reply == b"+OK"
        elif kind == 36 and reply != b"$-1":
            ok = reply == valueFor(key, self.size)
        else:
            ok = reply in (b"$-1", b"_")
        if ok:
            self.recorder.done(sentAt)
        else:
            what = f"GET {key.decode()}" if key else "SET"
            self.recorder.error(f"{what}: unexpected reply {reply[:80]!r}")


class EchoWorkload(Protocol):
    """Lines of ``value_size`` bytes; each must come back unchanged."""

    recorder: Any
    options: dict[str, Any]

    def connectionMade(self) -> None:
        self.size = max(1, int(self.options.get("value_size", 16)))
        self.pipeline = int(self.options.get("pipeline", 1))
        self.sent: deque[tuple[bytes, float]] = deque()
        self.buf = b""
        self.counter = 0
        self.send()

    def send(self) -> None:
        out = []
        now = reactor.seconds()
        while len(self.sent) < self.pipeline and self.recorder.more():
            self.counter += 1
            line = (b"%d:" % self.counter).ljust(self.size, b"x")[:max(self.size, 8)] + b"\n"
            out.append(line)
            self.sent.append((line, now))
        if out:
            self.transport.write(b"".join(out))

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while self.sent and len(self.buf) >= len(self.sent[0][0]):
            line, sentAt = self.sent.popleft()
            got, self.buf = self.buf[:len(line)], self.buf[len(line):]
            if got == line:
                self.recorder.done(sentAt)
            else:
                self.recorder.error(f"echo: sent {line[:40]!r}, got {got[:40]!r}")
        self.send()


BUILTIN = {"resp": RespWorkload, "echo": EchoWorkload}


def resolve(name: str) -> type:
    """A built-in workload by name, or a user's by ``module:attr``."""
    if name in BUILTIN:
        return BUILTIN[name]
    from cluster.apps import loadTarget

    obj = loadTarget(name)
    if isinstance(obj, type):
        return obj
    if callable(obj):
        return obj()
    raise TypeError(f"{name} is neither a Protocol class nor a callable returning one")
