"""The store's commands on the keys this worker owns: each takes the request's
arguments and returns the encoded reply. The server decides where a command runs; these
only ever see keys that live here."""

from __future__ import annotations

from collections.abc import Callable

from cluster.store import resp
from cluster.store.keyspace import Keyspace

NOT_INTEGER = resp.error("ERR value is not an integer or out of range")
SYNTAX = resp.error("ERR syntax error")
INT64 = (-(2**63), 2**63 - 1)


def _int(value: bytes) -> int | None:
    try:
        n = int(value)
    except ValueError:
        return None
    return n if INT64[0] <= n <= INT64[1] else None


BIG_VALUE = 1 << 20  # a value this large is answered in pieces, never copied into a reply


def get(ks: Keyspace, args: list[bytes]) -> bytes | list[bytes]:
    key = args[1]
    value = ks.get(key) if key in ks.expires else ks.data.get(key)
    if value is None:
        return resp.NIL
    if len(value) < BIG_VALUE:
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return [b"$%d\r\n" % len(value), value, b"\r\n"]  # written piece by piece


def set_(ks: Keyspace, args: list[bytes]) -> bytes:
    key, value = args[1], args[2]
    ttl: float | None = None
    nx = xx = False
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option in (b"EX", b"PX") and i + 1 < len(args):
            n = _int(args[i + 1])
            if n is None:
                return NOT_INTEGER
            if n <= 0:
                return resp.error("ERR invalid expire time in 'set' command")
            ttl = n if option == b"EX" else n / 1000
            i += 2
        elif option == b"NX":
            nx, i = True, i + 1
        elif option == b"XX":
            xx, i = True, i + 1
        else:
            return SYNTAX
    if nx and xx:
        return SYNTAX
    if nx or xx:
        exists = ks.exists(key)
        if (nx and exists) or (xx and not exists):
            return resp.NIL
    ks.set(key, value, ttl)
    return resp.OK


def getset(ks: Keyspace, args: list[bytes]) -> bytes:
    old = ks.get(args[1])
    ks.set(args[1], args[2])
    return resp.bulk(old)


def incrby(ks: Keyspace, key: bytes, delta: int) -> bytes:
    old = ks.get(key)
    current = 0 if old is None else _int(old)
    if current is None:
        return NOT_INTEGER
    new = current + delta
    if not INT64[0] <= new <= INT64[1]:
        return resp.error("ERR increment or decrement would overflow")
    ttl = ks.ttl(key) if old is not None else None
    ks.set(key, b"%d" % new, ttl)
    return resp.integer(new)


def _incrCommand(sign: int, withAmount: bool) -> Callable[[Keyspace, list[bytes]], bytes]:
    def command(ks: Keyspace, args: list[bytes]) -> bytes:
        amount = _int(args[2]) if withAmount else 1
        if amount is None:
            return NOT_INTEGER
        return incrby(ks, args[1], sign * amount)

    return command


def append(ks: Keyspace, args: list[bytes]) -> bytes:
    old = ks.get(args[1])
    ttl = ks.ttl(args[1]) if old is not None else None
    new = (old or b"") + args[2]
    ks.set(args[1], new, ttl)
    return resp.integer(len(new))


def strlen(ks: Keyspace, args: list[bytes]) -> bytes:
    return resp.integer(len(ks.get(args[1]) or b""))


def _expireCommand(scale: float) -> Callable[[Keyspace, list[bytes]], bytes]:
    def command(ks: Keyspace, args: list[bytes]) -> bytes:
        n = _int(args[2])
        if n is None:
            return NOT_INTEGER
        if not ks.exists(args[1]):
            return resp.ZERO
        if n <= 0:
            ks.delete(args[1])
        else:
            ks.expireAt(args[1], ks.clock() + n * scale)
        return resp.ONE

    return command


def _ttlCommand(scale: int) -> Callable[[Keyspace, list[bytes]], bytes]:
    def command(ks: Keyspace, args: list[bytes]) -> bytes:
        if not ks.exists(args[1]):
            return resp.integer(-2)
        left = ks.ttl(args[1])
        return resp.integer(-1 if left is None else round(left * scale))

    return command


def persist(ks: Keyspace, args: list[bytes]) -> bytes:
    return resp.ONE if ks.persist(args[1]) else resp.ZERO


# name -> (function, arity: exact if positive, at least -arity if negative)
SINGLE_KEY: dict[bytes, tuple[Callable[[Keyspace, list[bytes]], bytes], int]] = {
    b"GET": (get, 2),
    b"SET": (set_, -3),
    b"GETSET": (getset, 3),
    b"INCR": (_incrCommand(1, False), 2),
    b"DECR": (_incrCommand(-1, False), 2),
    b"INCRBY": (_incrCommand(1, True), 3),
    b"DECRBY": (_incrCommand(-1, True), 3),
    b"APPEND": (append, 3),
    b"STRLEN": (strlen, 2),
    b"EXPIRE": (_expireCommand(1.0), 3),
    b"PEXPIRE": (_expireCommand(0.001), 3),
    b"TTL": (_ttlCommand(1), 2),
    b"PTTL": (_ttlCommand(1000), 2),
    b"PERSIST": (persist, 2),
}


def execute(ks: Keyspace, args: list[bytes]) -> bytes:
    """Run a single-key command here (the caller checked its name and arity)."""
    entry = SINGLE_KEY.get(args[0]) or SINGLE_KEY[args[0].upper()]
    return entry[0](ks, args)


def mget(ks: Keyspace, keys: list[bytes]) -> list[bytes | None]:
    return [ks.get(k) for k in keys]


def mset(ks: Keyspace, pairs: list[bytes]) -> None:
    for i in range(0, len(pairs), 2):
        ks.set(pairs[i], pairs[i + 1])


def delete(ks: Keyspace, keys: list[bytes]) -> int:
    return sum(1 for k in keys if ks.exists(k) and ks.delete(k))


def exists(ks: Keyspace, keys: list[bytes]) -> int:
    return sum(ks.exists(k) for k in keys)
