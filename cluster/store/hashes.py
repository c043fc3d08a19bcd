"""Hash commands (HSET, HGET, ... HSCAN), with Redis's replies and errors. A hash is a
``dict`` of field to value; each command takes the keyspace, the request and whether
the client speaks RESP3 (HGETALL is a map there), and returns the encoded reply."""

from __future__ import annotations

import random
from collections.abc import Callable

from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace
from cluster.store.typed import NOT_FLOAT, NOT_INTEGER, changed, create, fetch


def _hash(ks: Keyspace, key: bytes) -> dict | None:
    return fetch(ks, key, dict)


def hset(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """HSET key field value [field value ...] (and HMSET, which answers OK)."""
    if len(args) % 2:
        return resp.error(f"ERR wrong number of arguments for "
                          f"'{args[0].decode(errors='replace').lower()}' command")
    h = create(ks, args[1], dict)
    before = len(h)
    for i in range(2, len(args), 2):
        h[args[i]] = args[i + 1]
    changed(ks, args[1], h)
    return resp.OK if args[0].upper() == b"HMSET" else resp.integer(len(h) - before)


def hsetnx(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = create(ks, args[1], dict)
    if args[2] in h:
        return resp.ZERO
    h[args[2]] = args[3]
    changed(ks, args[1], h)
    return resp.ONE


def hget(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = _hash(ks, args[1])
    return resp.bulk(None if h is None else h.get(args[2]))


def hmget(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = _hash(ks, args[1]) or {}
    return resp.bulks([h.get(f) for f in args[2:]], typed.nil(r3))


def hgetall(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = _hash(ks, args[1]) or {}
    return typed.pairs((resp.bulk(x) for pair in h.items() for x in pair), len(h), r3)


def hdel(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = _hash(ks, args[1])
    if h is None:
        return resp.ZERO
    gone = sum(h.pop(f, None) is not None for f in args[2:])
    if gone:
        changed(ks, args[1], h)
    return resp.integer(gone)


def hexists(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = _hash(ks, args[1])
    return resp.ONE if h is not None and args[2] in h else resp.ZERO


def hlen(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return resp.integer(len(_hash(ks, args[1]) or ()))


def hkeys(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return resp.array([resp.bulk(f) for f in _hash(ks, args[1]) or ()])


def hvals(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return resp.array([resp.bulk(v) for v in (_hash(ks, args[1]) or {}).values()])


def hstrlen(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    h = _hash(ks, args[1]) or {}
    return resp.integer(len(h.get(args[2], b"")))


def hincrby(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    delta = typed.toInt(args[3])
    if delta is None:
        return NOT_INTEGER
    h = _hash(ks, args[1])
    old = b"0" if h is None else h.get(args[2], b"0")
    current = typed.toInt(old)
    if current is None:
        return resp.error("ERR hash value is not an integer")
    new = current + delta
    if not typed.INT64[0] <= new <= typed.INT64[1]:
        return resp.error("ERR increment or decrement would overflow")
    h = create(ks, args[1], dict)
    h[args[2]] = b"%d" % new
    changed(ks, args[1], h)
    return resp.integer(new)


def hincrbyfloat(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    delta = typed.toLongDouble(args[3])
    if delta is None:
        return NOT_FLOAT
    if isinstance(delta, float):
        return resp.error("ERR value is NaN or Infinity")
    h = _hash(ks, args[1])
    new = typed.addLongDouble(b"0" if h is None else h.get(args[2], b"0"), args[3])
    if type(new) is tuple:
        return resp.error("ERR hash value is not a float" if new[0] == "old" else
                          "ERR increment would produce NaN or Infinity")
    h = create(ks, args[1], dict)
    h[args[2]] = new
    changed(ks, args[1], h)
    return resp.bulk(new)


def hrandfield(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """HRANDFIELD key [count [WITHVALUES]]: a negative count may repeat fields."""
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHVALUES"):
        return typed.SYNTAX
    count = typed.toInt(args[2]) if len(args) > 2 else None
    if len(args) > 2 and count is None:
        return NOT_INTEGER
    h = _hash(ks, args[1])
    if count is None:
        return resp.bulk(random.choice(list(h)) if h else None)
    if not h or count == 0:
        return resp.EMPTY_ARRAY
    picked = typed.picks(list(h), count)
    if type(picked) is bytes:
        return picked
    if len(args) < 4:
        return resp.array([resp.bulk(f) for f in picked])
    if r3:
        return resp.array([resp.array([resp.bulk(f), resp.bulk(h[f])]) for f in picked])
    return resp.array([resp.bulk(x) for f in picked for x in (f, h[f])])


def hscan(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """HSCAN key cursor [MATCH pattern] [COUNT n] [NOVALUES]: the whole hash in one reply
    (cursor 0), as Redis does for small hashes; COUNT is a hint."""
    novalues = len(args) > 3 and args[-1].upper() == b"NOVALUES"
    match, _, kind, why = typed.scanArgs(args[:-1] if novalues else args, 3)
    if why is None and (kind is not None or typed.badCursor(args[2])):
        why = typed.SYNTAX if kind is not None else typed.INVALID_CURSOR
    if why is not None:
        return why
    h = _hash(ks, args[1]) or {}
    items = [x for f, v in h.items() if match is None or match(f)
             for x in ((f,) if novalues else (f, v))]
    return resp.array([resp.bulk(b"0"), resp.array([resp.bulk(x) for x in items])])


# name -> (function, arity as Redis counts it)
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"HSET": (hset, -4), b"HMSET": (hset, -4), b"HSETNX": (hsetnx, 4),
    b"HGET": (hget, 3), b"HMGET": (hmget, -3), b"HGETALL": (hgetall, 2),
    b"HDEL": (hdel, -3), b"HEXISTS": (hexists, 3), b"HLEN": (hlen, 2),
    b"HKEYS": (hkeys, 2), b"HVALS": (hvals, 2), b"HSTRLEN": (hstrlen, 3),
    b"HINCRBY": (hincrby, 4), b"HINCRBYFLOAT": (hincrbyfloat, 4),
    b"HRANDFIELD": (hrandfield, -2), b"HSCAN": (hscan, -3),
}
READS = {b"HGET", b"HMGET", b"HGETALL", b"HEXISTS", b"HLEN", b"HKEYS", b"HVALS",
          b"HSTRLEN", b"HRANDFIELD", b"HSCAN"}
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {}  # none
