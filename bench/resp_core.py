"""A minimal Redis-protocol server written once as a Protocol: PING, ECHO, GET, SET, MSET,
DEL.

The same parsing and command code runs on every host loop the benchmarks compare (this
project's reactor, asyncio, uvloop, Twisted): each host only adapts the names its loop
calls (``dataReceived`` or ``data_received``). Replies to everything parsed from one
chunk go out with one ``write``, in request order, so pipelining is correct and cheap.
"""

from __future__ import annotations

from typing import Any

STORE: dict[bytes, bytes] = {}

PONG = b"+PONG\r\n"
OK = b"+OK\r\n"
NIL = b"$-1\r\n"


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _ping(args: list[bytes]) -> bytes:
    return PONG if len(args) == 1 else _bulk(args[1])


def _get(args: list[bytes]) -> bytes:
    value = STORE.get(args[1])
    return NIL if value is None else b"$%d\r\n%s\r\n" % (len(value), value)


def _set(args: list[bytes]) -> bytes:
    STORE[args[1]] = args[2]
    return OK


def _mset(args: list[bytes]) -> bytes:
    for i in range(1, len(args) - 1, 2):
        STORE[args[i]] = args[i + 1]
    return OK


def _del(args: list[bytes]) -> bytes:
    return b":%d\r\n" % sum(STORE.pop(k, None) is not None for k in args[1:])


def _config(args: list[bytes]) -> bytes:
    # redis-benchmark asks for CONFIG GET save / appendonly: both empty here
    name = args[2] if len(args) > 2 else b""
    return b"*2\r\n%s$0\r\n\r\n" % _bulk(name)


COMMANDS = {
    b"PING": (_ping, 1), b"ECHO": (lambda a: _bulk(a[1]), 2), b"GET": (_get, 2),
    b"SET": (_set, 3), b"DEL": (_del, 2), b"CONFIG": (_config, 1), b"MSET": (_mset, 3),
}


def execute(args: list[bytes]) -> bytes:
    entry = COMMANDS.get(args[0]) or COMMANDS.get(args[0].upper())
    if entry is None:
        return b"-ERR unknown command '%s'\r\n" % args[0]
    func, arity = entry
    if len(args) < arity:
        return b"-ERR wrong number of arguments for '%s' command\r\n" % args[0].lower()
    return func(args)


class RespCore:
    """The shared protocol body; ``transport`` is whatever the host loop provides."""

    _buf = b""
    transport: Any = None

    def dataReceived(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        find = buf.find
        end = len(buf)
        pos = 0
        out = []
        while pos < end:
            eol = find(b"\r\n", pos)
            if eol < 0:
                break
            if buf[pos] != 42:  # an inline command: words up to CRLF
                args = buf[pos:eol].split()
                pos = eol + 2
                if args:
                    out.append(execute(args))
                continue
            count = int(buf[pos + 1:eol])
            p = eol + 2
            args = []
            for _ in range(count):
                eol = find(b"\r\n", p)
                if eol < 0:
                    break
                start = eol + 2
                stop = start + int(buf[p + 1:eol])
                if stop + 2 > end:
                    break
                args.append(buf[start:stop])
                p = stop + 2
            else:
                pos = p
                out.append(execute(args))
                continue
            break  # incomplete: wait for more
        self._buf = buf[pos:] if pos < end else b""
        if out:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])
