"""Checking clients for the fault suite: each keeps its own account of what it sent, what
was answered and what it must find in the store, so a test asserts figures (requests lost,
stale reads, keys lost) rather than "it did not crash"."""

from __future__ import annotations

import os
import socket
import threading
import time

import psutil


class Closed(Exception):
    """The server closed the connection (end of file or reset) before replying."""


class ErrorReply(Exception):
    """The server answered with a RESP error."""


class Resp:
    """A blocking RESP2 connection to 127.0.0.1: send a command, read its reply."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0  # what of buf has been read

    def call(self, *args: bytes | str | int) -> object:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        wire = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p)
                                                   for p in parts)
        try:
            self.sock.sendall(wire)
        except OSError as e:
            raise Closed(f"send: {e}") from None
        return self.reply()

    def reply(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise ErrorReply(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        if kind == b"_":
            return None
        raise AssertionError(f"not RESP: {line!r}")

    def workerPid(self) -> int:
        info = self.call("INFO").decode()
        return int(info.split("process_id:")[1].split()[0])

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._more()
        line = bytes(self.buf[self.pos:end])
        self.pos = end + 2
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            self._more()
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def _more(self) -> None:
        if self.pos:  # drop what was read (linear: each byte moves once at most)
            del self.buf[:self.pos]
            self.pos = 0
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError as e:
            raise Closed(f"reset: {e}") from None
        if not chunk:
            raise Closed("end of file")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


class Prober(threading.Thread):
    """A client thread that runs ``step`` until stopped, keeping figures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.requests = 0  # answered
        self.closedIdle = 0  # closed with a request sent but not run: safe to retry
        self.closedInFlight = 0  # closed after running a request, before its reply: lost

    def connect(self) -> Resp:
        deadline = time.monotonic() + 10
        while True:
            try:
                return Resp(self.port)
            except OSError as e:
                if time.monotonic() > deadline:
                    raise
                self.errors.append(f"connect: {e}")
                time.sleep(0.05)

    def once(self, *args: object) -> object:
        """One command on a new connection, retried (as clients do) if the connection is
        closed before it was read: a draining worker may close an idle connection."""
        for _ in range(10):
            conn = self.connect()
            try:
                return conn.call(*args)
            except Closed:
                self.closedIdle += 1
            finally:
                conn.close()
        raise AssertionError(f"{args}: closed ten times in a row")

    def run(self) -> None:
        try:
            self.setup()
            while not self.stopping.is_set():
                self.step()
        except Exception as e:  # noqa: BLE001 - a probe's own failure is a finding too
            self.errors.append(f"probe died: {e!r}")

    def setup(self) -> None:
        pass

    def step(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


class Counter(Prober):
    """INCR on a key of its own, on one kept-alive connection (or a new connection per
    request with ``fresh``). Every INCR answered must be the previous answer plus one;
    when a connection closes before a reply, the counter, read afresh, tells whether the
    request ran (lost: closed in flight) or not (closed idle, a retry is safe)."""

    def __init__(self, port: int, key: str, fresh: bool = False) -> None:
        super().__init__(port)
        self.key = key
        self.fresh = fresh
        self.acked = 0
        self.conn: Resp | None = None

    def setup(self) -> None:
        self.once("SET", self.key, 0)

    def step(self) -> None:
        if self.fresh or self.conn is None:
            if self.conn is not None:
                self.conn.close()
            self.conn = self.connect()
        try:
            value = self.conn.call("INCR", self.key)
        except Closed:
            self.conn.close()
            self.conn = None
            self._settle()
            return
        except ErrorReply as e:
            self.errors.append(f"INCR {self.key}: -{e}")
            time.sleep(0.01)
            return
        if value != self.acked + 1:
            self.errors.append(f"INCR {self.key}: {value}, expected {self.acked + 1}")
        self.acked = value
        self.requests += 1

    def _settle(self) -> None:
        now = int(self.once("GET", self.key) or 0)
        if now == self.acked:
            self.closedIdle += 1
        elif now == self.acked + 1:
            self.closedInFlight += 1
            self.acked = now
        else:
            self.errors.append(f"{self.key} is {now} after a close; acked {self.acked}")

    def verify(self) -> None:
        final = int(self.once("GET", self.key) or 0)
        if final != self.acked:
            self.errors.append(f"{self.key} ends at {final}; {self.acked} were acknowledged")


class SplitBrain(Prober):
    """Two connections on two different workers: one writes a new value, the other must
    read it back at once. A read of anything older is a stale read (two owners)."""

    def __init__(self, port: int, key: str) -> None:
        super().__init__(port)
        self.key = key
        self.n = 0
        self.stale = 0
        self.reads = 0
        self.samePid = 0  # rounds where both sides landed on one worker
        self.writer: Resp | None = None
        self.reader: Resp | None = None

    def _pair(self) -> None:
        """A writer and a reader on different workers (as far as the router allows)."""
        for _ in range(10):
            try:
                self._tryPair()
                return
            except Closed:
                self.closedIdle += 1  # a draining worker closed it: pair again
        raise AssertionError("could not pair two connections")

    def _tryPair(self) -> None:
        for conn in (self.writer, self.reader):
            if conn is not None:
                conn.close()
        self.writer = self.reader = None
        self.writer = self.connect()
        pid = self.writer.workerPid()
        for _ in range(20):
            self.reader = self.connect()
            if self.reader.workerPid() != pid:
                return
            self.reader.close()
        self.reader = self.connect()
        self.reader.workerPid()
        self.samePid += 1

    def setup(self) -> None:
        self._pair()

    def step(self) -> None:
        self.n += 1
        try:
            if self.writer.call("SET", self.key, self.n) != b"OK":
                self.errors.append("SET not OK")
            got = self.reader.call("GET", self.key)
        except (Closed, ErrorReply) as e:
            if isinstance(e, ErrorReply):
                self.errors.append(f"probe: -{e}")
            self._pair()
            return
        self.reads += 1
        self.requests += 2
        if got != str(self.n).encode():
            self.stale += 1
            self.errors.append(f"stale read: {got!r} after writing {self.n}")


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def resetPeakRss(pid: int) -> int:
    """Reset a process's peak RSS (VmHWM) to its current RSS, which is returned."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return _status(pid, "VmRSS")


def peakRss(pid: int) -> int:
    return _status(pid, "VmHWM")


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def populate(port: int, count: int, prefix: str = "data") -> dict[str, bytes]:
    """``count`` keys with values of their own, set by one pipelined connection."""
    expected = {f"{prefix}:{i}": b"v%d:%s" % (i, os.urandom(4).hex().encode())
                for i in range(count)}
    conn = Resp(port)
    try:
        items = list(expected.items())
        for start in range(0, len(items), 500):
            batch = items[start:start + 500]
            wire = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                            % (len(k), k.encode(), len(v), v) for k, v in batch)
            conn.sock.sendall(wire)
            for _ in batch:
                assert conn.reply() == b"OK"
    finally:
        conn.close()
    return expected


def missing(port: int, expected: dict[str, bytes]) -> list[str]:
    """The keys of ``expected`` not holding their value now (a batch whose connection a
    draining worker closes between requests is asked again, as clients do)."""
    keys = list(expected)
    lost: list[str] = []
    conn = Resp(port)
    try:
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            for _ in range(10):
                try:
                    got = conn.call("MGET", *batch)
                    break
                except Closed:
                    conn.close()
                    conn = Resp(port)
            else:
                raise AssertionError("MGET: closed ten times in a row")
            lost += [k for k, v in zip(batch, got, strict=True) if v != expected[k]]
        return lost
    finally:
        conn.close()
