"""The store's commands on the keys this worker owns: each takes the request's
arguments and returns the encoded reply. The server decides where a command runs; these
only ever see keys that live here."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from cluster.store import bits, blocking, geo, hashes, keycommands, lists, resp, sets, typed, zsets
from cluster.store.keyspace import Keyspace, WrongType

NOT_INTEGER, SYNTAX, INT64 = typed.NOT_INTEGER, typed.SYNTAX, typed.INT64


def _int(value: bytes) -> int | None:
    try:
        n = int(value)
    except ValueError:
        return None
    return n if INT64[0] <= n <= INT64[1] else None


BIG_VALUE = 1 << 20  # a value this large is answered in pieces, never copied into a reply


def get(ks: Keyspace, args: list[bytes]) -> bytes | list[bytes]:
    key = args[1]
    value = ks.value(key) if key in ks.expires else ks.data.get(key)
    if value is None:
        return resp.NIL
    if type(value) is not bytes:
        raise WrongType(key)
    if len(value) < BIG_VALUE:
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return [b"$%d\r\n" % len(value), value, b"\r\n"]  # written piece by piece


def set_(ks: Keyspace, args: list[bytes]) -> bytes:
    """SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT ms|KEEPTTL], as Redis 7."""
    key, value = args[1], args[2]
    options, deadline, why = _setOptions(ks, args[3:], "set")
    if why is not None:
        return why
    old = ks.get(key) if "GET" in options else ks.value(key)  # (GET: strings only)
    reply = resp.bulk(old) if "GET" in options else resp.OK
    if ("NX" in options and old is not None) or ("XX" in options and old is None):
        return reply if "GET" in options else resp.NIL
    keep = ks.expires.get(key) if "KEEPTTL" in options and old is not None else None
    ks.set(key, value)
    if deadline is not None or keep is not None:
        ks.expireAt(key, deadline if deadline is not None else keep)
    return reply


_SET_EXPIRY = {b"EX": 1.0, b"PX": 0.001, b"EXAT": 1.0, b"PXAT": 0.001}


def _setOptions(ks: Keyspace, rest: list[bytes], command: str,
                allowed: tuple[str, ...] = ("NX", "XX", "GET", "KEEPTTL")
                ) -> tuple[set[str], float | None, bytes | None]:
    """SET's and GETEX's options: the flags, the deadline (on ``ks.clock``) or None,
    and the error reply if they do not parse."""
    flags: set[str] = set()
    deadline: float | None = None
    timed = b""  # the expiry option given (Redis lets one repeat, not two differ)
    i = 0
    while i < len(rest):
        option = rest[i].upper()
        name = option.decode(errors="replace")
        if option in _SET_EXPIRY and i + 1 < len(rest) and timed in (b"", option) \
                and "KEEPTTL" not in flags and "PERSIST" not in flags:
            n = _int(rest[i + 1])
            if n is None:
                return flags, None, NOT_INTEGER
            if n <= 0:
                return flags, None, resp.error(f"ERR invalid expire time in '{command}' "
                                               f"command")
            seconds = n * _SET_EXPIRY[option]
            deadline = ks.clock() + (seconds - time.time() if option.endswith(b"AT")
                                     else seconds)
            timed, i = option, i + 2
        elif name in allowed and not (name in ("KEEPTTL", "PERSIST") and timed):
            flags.add(name)
            i += 1
        else:
            return flags, None, SYNTAX
    if {"NX", "XX"} <= flags:
        return flags, None, SYNTAX
    return flags, deadline, None


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


def incrbyfloat(ks: Keyspace, args: list[bytes]) -> bytes:
    old = ks.get(args[1])
    new = typed.addLongDouble(old or b"0", args[2])
    if type(new) is tuple:
        return resp.error("ERR increment would produce NaN or Infinity" if new[0] == "inf"
                          else "ERR value is not a valid float")
    ttl = ks.ttl(args[1]) if old is not None else None
    ks.set(args[1], new, ttl)
    return resp.bulk(new)


def append(ks: Keyspace, args: list[bytes]) -> bytes:
    old = ks.get(args[1])
    ttl = ks.ttl(args[1]) if old is not None else None
    new = (old or b"") + args[2]
    ks.set(args[1], new, ttl)
    return resp.integer(len(new))


def strlen(ks: Keyspace, args: list[bytes]) -> bytes:
    return resp.integer(len(ks.get(args[1]) or b""))


def _expireCommand(scale: float, absolute: bool) -> Callable[[Keyspace, list[bytes]], bytes]:
    """EXPIRE/PEXPIRE (``absolute``: EXPIREAT/PEXPIREAT) key n [NX|XX|GT|LT]."""
    def command(ks: Keyspace, args: list[bytes]) -> bytes:
        n = _int(args[2])
        if n is None:
            return NOT_INTEGER
        flags = {a.upper() for a in args[3:]}
        if len(flags) != len(args) - 3 or not flags <= {b"NX", b"XX", b"GT", b"LT"}:
            return resp.error(f"ERR Unsupported option {args[-1].decode(errors='replace')}")
        if b"NX" in flags and len(flags) > 1:
            return resp.error("ERR NX and XX, GT or LT options at the same time are not "
                              "compatible")
        if {b"GT", b"LT"} <= flags:
            return resp.error("ERR GT and LT options at the same time are not compatible")
        key = args[1]
        if not ks.exists(key):
            return resp.ZERO
        seconds = n * scale
        deadline = ks.clock() + (seconds - time.time() if absolute else seconds)
        current = ks.expires.get(key)  # None: never expires
        if (b"NX" in flags and current is not None) or (b"XX" in flags and current is None) \
                or (b"GT" in flags and (current is None or deadline <= current)) \
                or (b"LT" in flags and current is not None and deadline >= current):
            return resp.ZERO
        if deadline <= ks.clock():
            ks.delete(key)
        else:
            ks.expireAt(key, deadline)
        return resp.ONE

    return command


def _expireTime(scale: int) -> Callable[[Keyspace, list[bytes]], bytes]:
    """EXPIRETIME/PEXPIRETIME: the key's deadline as Unix time (-1 none, -2 no key)."""
    def command(ks: Keyspace, args: list[bytes]) -> bytes:
        if not ks.exists(args[1]):
            return resp.integer(-2)
        left = ks.ttl(args[1])
        if left is None:
            return resp.integer(-1)
        ms = round((time.time() + left) * 1000)  # (to the ms first, as Redis keeps it)
        return resp.integer(ms if scale == 1000 else ms // 1000)

    return command


def setnx(ks: Keyspace, args: list[bytes]) -> bytes:
    if ks.exists(args[1]):
        return resp.ZERO
    ks.set(args[1], args[2])
    return resp.ONE


def _setexCommand(scale: float, name: str) -> Callable[[Keyspace, list[bytes]], bytes]:
    def command(ks: Keyspace, args: list[bytes]) -> bytes:
        n = _int(args[2])
        if n is None:
            return NOT_INTEGER
        if n <= 0:
            return resp.error(f"ERR invalid expire time in '{name}' command")
        ks.set(args[1], args[3], n * scale)
        return resp.OK

    return command


def getdel(ks: Keyspace, args: list[bytes]) -> bytes:
    value = ks.get(args[1])
    if value is not None:
        ks.delete(args[1])
    return resp.bulk(value)


def getex(ks: Keyspace, args: list[bytes]) -> bytes:
    """GETEX key [EX s|PX ms|EXAT t|PXAT ms|PERSIST]."""
    flags, deadline, why = _setOptions(ks, args[2:], "getex", ("PERSIST",))
    if why is not None:
        return why
    value = ks.get(args[1])
    if value is not None:
        if deadline is not None:
            ks.expireAt(args[1], deadline)
        elif "PERSIST" in flags:
            ks.persist(args[1])
    return resp.bulk(value)


def getrange(ks: Keyspace, args: list[bytes]) -> bytes:
    start, end = _int(args[2]), _int(args[3])
    if start is None or end is None:
        return NOT_INTEGER
    value = ks.get(args[1]) or b""
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return resp.bulk(b"")
    start = max(0, size + start if start < 0 else start)
    end = max(0, size + end if end < 0 else end)
    end = min(end, size - 1)
    return resp.bulk(b"" if start > end or size == 0 else value[start:end + 1])


MAX_STRING = 512 << 20  # Redis's proto-max-bulk-len default: the largest SETRANGE result


def setrange(ks: Keyspace, args: list[bytes]) -> bytes:
    offset = _int(args[2])
    if offset is None:
        return NOT_INTEGER
    if offset < 0:
        return resp.error("ERR offset is out of range")
    key, piece = args[1], args[3]
    old = ks.get(key)
    if not piece:
        return resp.integer(len(old or b""))
    if offset + len(piece) > MAX_STRING:
        return resp.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    value = old or b""
    if len(value) < offset:
        value += b"\x00" * (offset - len(value))
    new = value[:offset] + piece + value[offset + len(piece):]
    deadline = ks.expires.get(key) if old is not None else None
    ks.set(key, new)
    if deadline is not None:
        ks.expireAt(key, deadline)
    return resp.integer(len(new))


def type_(ks: Keyspace, args: list[bytes]) -> bytes:
    value = ks.value(args[1])
    return b"+none\r\n" if value is None else resp.simple(typed.typeName(value))


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
    b"INCRBYFLOAT": (incrbyfloat, 3),
    b"APPEND": (append, 3),
    b"STRLEN": (strlen, 2),
    b"EXPIRE": (_expireCommand(1.0, False), -3),
    b"PEXPIRE": (_expireCommand(0.001, False), -3),
    b"EXPIREAT": (_expireCommand(1.0, True), -3),
    b"PEXPIREAT": (_expireCommand(0.001, True), -3),
    b"EXPIRETIME": (_expireTime(1), 2),
    b"PEXPIRETIME": (_expireTime(1000), 2),
    b"SETNX": (setnx, 3),
    b"SETEX": (_setexCommand(1.0, "setex"), 4),
    b"PSETEX": (_setexCommand(0.001, "psetex"), 4),
    b"GETDEL": (getdel, 2),
    b"GETEX": (getex, -2),
    b"GETRANGE": (getrange, 4),
    b"SETRANGE": (setrange, 4),
    b"TYPE": (type_, 2),
    b"TTL": (_ttlCommand(1), 2),
    b"PTTL": (_ttlCommand(1000), 2),
    b"PERSIST": (persist, 2),
}


def rename(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """RENAME / RENAMENX: the value, of any type, and its time to live move to the new
    name."""
    source, dest = args[1], args[2]
    onlyNew = args[0].upper() == b"RENAMENX"
    value = ks.value(source)
    if value is None:
        return resp.error("ERR no such key")
    if onlyNew and ks.exists(dest):
        return resp.ZERO
    if source != dest:
        deadline = ks.expires.get(source)
        ks.delete(source)
        ks.set(dest, value)
        if deadline is not None:
            ks.expireAt(dest, deadline)
    return resp.ONE if onlyNew else resp.OK


def msetnx(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    if len(args) % 2 == 0:
        return resp.error("ERR wrong number of arguments for 'msetnx' command")
    if any(ks.exists(k) for k in args[1::2]):
        return resp.ZERO
    mset(ks, args[1:])
    return resp.ONE


def mget(ks: Keyspace, keys: list[bytes]) -> list[bytes | None]:
    """MGET: a key holding another type than a string reads as none, as in Redis."""
    return [v if type(v := ks.value(k)) is bytes else None for k in keys]


def mset(ks: Keyspace, pairs: list[bytes]) -> None:
    for i in range(0, len(pairs), 2):
        ks.set(pairs[i], pairs[i + 1])
    if ks.aof is not None:
        ks.aof.log([b"MSET", *pairs])


def delete(ks: Keyspace, keys: list[bytes]) -> int:
    gone = [k for k in keys if ks.exists(k) and ks.delete(k)]
    if gone and ks.aof is not None:
        ks.aof.log([b"DEL", *gone])
    return len(gone)


def exists(ks: Keyspace, keys: list[bytes]) -> int:
    return sum(ks.exists(k) for k in keys)


# The data types' commands (cluster.store.hashes, ...): each takes (keyspace, request,
# r3) where r3 says the client speaks RESP3; the RESP2 table calls them as they are.
_TYPES = (hashes, lists, sets, zsets, geo, bits, keycommands)
for _module in _TYPES:
    SINGLE_KEY.update(_module.COMMANDS)
# commands that may put elements on a list a client blocks on (BLPOP...) wake it
for _name in (b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX", b"LINSERT"):
    _entry = SINGLE_KEY[_name]
    SINGLE_KEY[_name] = (blocking.waking(_entry[0], lambda args: args[1:2]), _entry[1])
# the table for RESP3 connections: the same commands, told so
SINGLE_KEY3 = {**SINGLE_KEY, **{name: (partial(SINGLE_KEY[name][0], r3=True), entry[1])
                                 for module in _TYPES for name, entry in module.COMMANDS.items()}}

# Commands over several keys that must apply at once (their keys on one worker, else
# -CROSSSLOT): name -> (function(keyspace, request, r3), arity, first key, last key
# (negative: from the end), key step)
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"RENAME": (rename, 3, 1, 2, 1), b"RENAMENX": (rename, 3, 1, 2, 1),
    b"MSETNX": (msetnx, -3, 1, -1, 2),
}
for _module in _TYPES:
    MULTI_KEY.update(_module.MULTI_KEY)
MULTI_KEY.update({  # inside MULTI (see server.RespStore.block for the blocking ones)
    b"BLPOP": (blocking.inTransaction, -3, 1, -2, 1),
    b"BRPOP": (blocking.inTransaction, -3, 1, -2, 1),
    b"BLMOVE": (blocking.inTransaction, 6, 1, 2, 1),
    b"BRPOPLPUSH": (blocking.inTransaction, 4, 1, 2, 1)})
for _name in (b"RENAME", b"RENAMENX", b"LMOVE", b"RPOPLPUSH", b"BLMOVE", b"BRPOPLPUSH"):
    _entry = MULTI_KEY[_name]  # (their destination may be a list someone waits for)
    MULTI_KEY[_name] = (blocking.waking(_entry[0], lambda args: args[2:3]), *_entry[1:])
# where a MULTI_KEY command's keys cannot be told by position (ZUNIONSTORE's numkeys...):
# name -> function(request) -> its keys (may raise ValueError for a malformed request)
KEYS_OF: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {
    name: finder for module in _TYPES for name, finder in getattr(module, "KEYS_OF", {}).items()}
READS = frozenset({b"GET", b"STRLEN", b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME",
                   b"GETRANGE", b"TYPE"}.union(*(m.READS for m in _TYPES)))


_wrappedBy: set[Any] = set()  # the wraps applied (each once per process)


def wrapWrites(wrap: Callable[[Callable[..., Any], bytes], Callable[..., Any]],
               skip: frozenset[bytes] | set[bytes] = frozenset()) -> None:
    """Replace every write command of the tables (all but READS and ``skip``) with
    ``wrap(function, name)``: what --appendonly and maxmemory put around writes. A wrap
    already applied is not applied again."""
    if wrap in _wrappedBy:
        return
    _wrappedBy.add(wrap)
    for table in (SINGLE_KEY, SINGLE_KEY3):
        for name, (function, arity) in list(table.items()):
            if name not in READS and name not in skip:
                table[name] = (wrap(function, name), arity)
    for name, entry in list(MULTI_KEY.items()):
        if name not in READS and name not in skip:
            MULTI_KEY[name] = (wrap(entry[0], name), *entry[1:])


def keysAt(args: list[bytes], first: int, last: int, step: int) -> list[bytes]:
    """The keys of a request whose keys are at ``first``..``last`` every ``step``."""
    end = len(args) + last if last < 0 else last
    return args[first:end + 1:step]


def execute(ks: Keyspace, args: list[bytes]) -> bytes:
    """Run a single-key command here (the caller checked its name and arity)."""
    entry = SINGLE_KEY.get(args[0]) or SINGLE_KEY[args[0].upper()]
    try:
        return entry[0](ks, args)
    except WrongType:
        return typed.WRONGTYPE
