"""Commands on keys of any type: SORT and SORT_RO, COPY, DUMP and RESTORE, OBJECT, with
Redis's replies and errors. Each takes the keyspace, the request and whether the client
speaks RESP3, and returns the encoded reply.

SORT's BY and GET patterns name other keys (``weight_*``, ``data_*->field``): they are
read from this worker's keyspace, which holds them when they share the sorted key's hash
tag (``{u}list`` with ``{u}weight_*``, as Redis Cluster would need); a key that another
worker holds reads as missing. ALPHA compares bytes (Redis's strcoll under the C
locale). DUMP's payload is this store's own: a version byte, the msgpack of the value's
plain form (``typed.plain``) and a CRC-32 of both, read only by this store's RESTORE.
OBJECT ENCODING names Redis 7.0's encoding for the value as it is now (Redis keeps a
larger encoding once a value has grown, and calls a string made by APPEND, SETRANGE or
SETBIT "raw"); IDLETIME is 0, as this store does not track keys' access times.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cluster.store import blocking, resp, typed, zsets
from cluster.store.keyspace import Keyspace, WrongType
from cluster.store.typed import NOT_INTEGER, SYNTAX, ZSet

_NOT_DOUBLE = resp.error("ERR One or more scores can't be converted into double")
_SPACE = b" \t\n\r\x0b\x0c"  # C's isspace: strtod skips it before a number
_BUSY = resp.error("BUSYKEY Target key name already exists.")
_BAD_PAYLOAD = resp.error("ERR DUMP payload version or checksum are wrong")
_BAD_FORMAT = resp.error("ERR Bad data format")
_DUMP_VERSION = 1
_SHARED_INTEGERS = 10000  # Redis shares the string objects of 0..9999 (OBJECT REFCOUNT)
_SHARED_REFCOUNT = 2**31 - 1
# Redis 7.0's defaults: hash-max-listpack-entries, zset-max-listpack-entries,
# hash- and zset-max-listpack-value, set-max-intset-entries
_HASH_ENTRIES, _ZSET_ENTRIES, _LISTPACK_VALUE, _INTSET_ENTRIES = 512, 128, 64, 512
_EMBSTR_SIZE = 44
_NO_LFU = resp.error("ERR An LFU maxmemory policy is not selected, access frequency not "
                     "tracked. Please note that when switching between policies at runtime "
                     "LRU and LFU data will take some time to adjust.")
_OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]


# -- SORT --------------------------------------------------------------------------------

@dataclass
class _SortOptions:
    desc: bool = False
    alpha: bool = False
    start: int = 0
    count: int = -1
    by: bytes | None = None
    gets: list[bytes] = field(default_factory=list)
    store: bytes | None = None


def _sortOptions(args: list[bytes]) -> _SortOptions | bytes:
    """SORT's options (SORT_RO's: no STORE), or the error reply."""
    options, i = _SortOptions(), 2
    canStore = args[0].upper() == b"SORT"
    while i < len(args):
        word, left = args[i].upper(), len(args) - i - 1
        if word in (b"ASC", b"DESC"):
            options.desc = word == b"DESC"
        elif word == b"ALPHA":
            options.alpha = True
        elif word == b"LIMIT" and left >= 2:
            start, count = typed.toInt(args[i + 1]), typed.toInt(args[i + 2])
            if start is None or count is None:
                return NOT_INTEGER
            options.start, options.count = start, count
            i += 2
        elif word == b"BY" and left >= 1:
            options.by = args[i + 1]
            i += 1
        elif word == b"GET" and left >= 1:
            options.gets.append(args[i + 1])
            i += 1
        elif word == b"STORE" and left >= 1 and canStore:
            options.store = args[i + 1]
            i += 1
        else:
            return SYNTAX
        i += 1
    return options


def _sortKeys(args: list[bytes]) -> list[bytes]:
    """SORT's keys: the sorted key and its STORE destination (patterns' keys excepted)."""
    if len(args) < 2:
        raise ValueError("SORT names a key")
    options = _sortOptions(args)
    store = None if type(options) is bytes else options.store
    return [args[1]] if store is None else [args[1], store]


def _lookup(ks: Keyspace, pattern: bytes, element: bytes) -> bytes | None:
    """What a BY or GET pattern names for ``element``: ``#`` the element itself, else the
    string at the key its first ``*`` makes, or a hash's field after ``->``."""
    if pattern == b"#":
        return element
    star = pattern.find(b"*")
    if star < 0:
        return None
    arrow = pattern.find(b"->", star + 1)
    name = None
    if 0 <= arrow < len(pattern) - 2:
        pattern, name = pattern[:arrow], pattern[arrow + 2:]
    value = ks.value(pattern[:star] + element + pattern[star + 1:])
    if name is None:
        return value if type(value) is bytes else None
    return value.get(name) if type(value) is dict else None


def _weight(text: bytes) -> float | None:
    """A numeric SORT weight as Redis reads it (strtod over all of it, spaces before it
    allowed, none after): None if it is not one, NaN or out of range."""
    return 0.0 if not text else zsets._double(text.lstrip(_SPACE))


def _elements(value: Any, reverse: bool) -> list[bytes]:
    """The elements to sort, in the value's own order (reversed for BY nosort DESC)."""
    if value is None:
        return []
    # (a sorted set's key: 8 bytes of score, then the member)
    items = [key[8:] for key in value.order] if type(value) is ZSet else list(value)
    return items[::-1] if reverse and type(value) is not set else items


def _sorted(ks: Keyspace, items: list[bytes], options: _SortOptions) -> list[bytes] | None:
    """``items`` in SORT's order; None if a weight is not a number. Numeric ties go by
    the elements' bytes; with ALPHA BY, a missing weight sorts first."""
    weights = items if options.by is None else [_lookup(ks, options.by, e) for e in items]
    keys: list[Any]
    if options.alpha:
        keys = items if options.by is None else [(w is not None, w or b"") for w in weights]
    else:
        scores = [0.0 if w is None else _weight(w) for w in weights]
        if None in scores:
            return None
        keys = list(zip(scores, items, strict=True))
    order = sorted(range(len(items)), key=keys.__getitem__, reverse=options.desc)
    return [items[i] for i in order]


def _window(size: int, start: int, count: int) -> slice:
    """LIMIT start count over ``size`` elements, as Redis clamps it."""
    start = max(start, 0)
    if start >= size:
        return slice(0, 0)
    end = size - 1 if count < 0 else min(start + count - 1, size - 1)
    return slice(start, end + 1)


def sort(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """SORT / SORT_RO key [BY pattern] [LIMIT start count] [GET pattern ...] [ASC|DESC]
    [ALPHA] [STORE destination] (a list, set or sorted set; patterns read this worker's
    keys)."""
    options = _sortOptions(args)
    if type(options) is bytes:
        return options
    value = ks.value(args[1])
    if value is not None and type(value) not in (deque, set, ZSet):
        raise WrongType(args[1])
    dontsort = options.by is not None and b"*" not in options.by
    if dontsort and type(value) is set and options.store is not None:
        dontsort, options.alpha, options.by = False, True, None  # a stored set: in order
    items = _elements(value, dontsort and options.desc)
    if not dontsort:
        ordered = _sorted(ks, items, options)
        if ordered is None:
            return _NOT_DOUBLE
        items = ordered
    picked = items[_window(len(items), options.start, options.count)]
    values = [_lookup(ks, p, e) for e in picked for p in options.gets] if options.gets \
        else picked
    if options.store is None:
        return resp.bulks(values, typed.nil(r3))
    if values:
        ks.set(options.store, deque(b"" if v is None else v for v in values))
    else:
        ks.delete(options.store)
    return resp.integer(len(values))


# -- COPY, DUMP, RESTORE -------------------------------------------------------------------

def _clone(value: Any) -> Any:
    """A value that shares nothing mutable with ``value``."""
    return typed.fromPlain(typed.plain(value))


def _setWithDeadline(ks: Keyspace, key: bytes, value: Any, deadline: float | None) -> None:
    ks.set(key, value)
    if deadline is not None:
        ks.expireAt(key, deadline)


def copy(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """COPY source destination [DB 0] [REPLACE]: the value and its time to live (the store
    has one database: DB takes only 0)."""
    replace, i = False, 3
    while i < len(args):
        word = args[i].upper()
        if word == b"REPLACE":
            replace = True
        elif word == b"DB" and i + 1 < len(args):
            db = typed.toInt(args[i + 1])
            if db is None:
                return NOT_INTEGER
            if not -2**31 <= db < 2**31:
                return resp.error("ERR value is out of range, value must between "
                                  "-2147483648 and 2147483647")
            if db != 0:
                return resp.error("ERR DB index is out of range")
            i += 1
        else:
            return SYNTAX
        i += 1
    source, dest = args[1], args[2]
    if source == dest:
        return resp.error("ERR source and destination objects are the same")
    value = ks.value(source)
    if value is None or (not replace and ks.exists(dest)):
        return resp.ZERO
    _setWithDeadline(ks, dest, _clone(value), ks.expires.get(source))
    return resp.ONE


def _payload(value: Any) -> bytes:
    body = bytes([_DUMP_VERSION]) + msgpack.packb(typed.plain(value))
    return body + zlib.crc32(body).to_bytes(4, "little")


def _loaded(payload: bytes) -> tuple[Any, bytes | None]:
    """The value in a DUMP payload, or None and the error reply."""
    body = payload[:-4]
    if len(payload) < 5 or body[0] != _DUMP_VERSION \
            or zlib.crc32(body).to_bytes(4, "little") != payload[-4:]:
        return None, _BAD_PAYLOAD
    try:
        value = typed.fromPlain(msgpack.unpackb(body[1:]))
    except (ValueError, TypeError, msgpack.UnpackException):
        return None, _BAD_FORMAT
    empty = type(value) is not bytes and not value  # (no key holds an empty container)
    if empty or (type(value) is ZSet and any(x != x for x in value.scores.values())):
        return None, _BAD_FORMAT
    return value, None


def dump(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    value = ks.value(args[1])
    return resp.NIL if value is None else resp.bulk(_payload(value))


def _restoreOptions(args: list[bytes]) -> tuple[bool, bool] | bytes:
    """RESTORE's REPLACE and ABSTTL (IDLETIME and FREQ are checked, then ignored), or the
    error reply."""
    replace = absolute = False
    timing = None  # IDLETIME or FREQ: one of them at most
    i = 4
    while i < len(args):
        word = args[i].upper()
        if word == b"REPLACE":
            replace = True
        elif word == b"ABSTTL":
            absolute = True
        elif word in (b"IDLETIME", b"FREQ") and i + 1 < len(args) and timing in (None, word):
            n = typed.toInt(args[i + 1])
            if n is None:
                return NOT_INTEGER
            if word == b"IDLETIME" and n < 0:
                return resp.error("ERR Invalid IDLETIME value, must be >= 0")
            if word == b"FREQ" and not 0 <= n <= 255:
                return resp.error("ERR Invalid FREQ value, must be >= 0 and <= 255")
            timing = word
            i += 1
        else:
            return SYNTAX
        i += 1
    return replace, absolute


def restore(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ n]: a DUMP payload
    of this store back into a key (ttl in milliseconds, 0: none)."""
    options = _restoreOptions(args)
    if type(options) is bytes:
        return options
    replace, absolute = options
    key = args[1]
    if not replace and ks.exists(key):
        return _BUSY
    ttl = typed.toInt(args[2])
    if ttl is None:
        return NOT_INTEGER
    if ttl < 0:
        return resp.error("ERR Invalid TTL value, must be >= 0")
    value, why = _loaded(args[3])
    if why is not None:
        return why
    if replace:
        ks.delete(key)
    seconds = ttl / 1000 - (time.time() if absolute else 0.0)
    if ttl and seconds <= 0:
        return resp.OK  # already expired: nothing to make
    _setWithDeadline(ks, key, value, ks.clock() + seconds if ttl else None)
    return resp.OK


# -- OBJECT ------------------------------------------------------------------------------

def _small(items: Any, size: int, most: int) -> bool:
    """Small enough for a listpack: at most ``most`` entries, none long."""
    return size <= most and all(len(x) <= _LISTPACK_VALUE for x in items)


def _encoding(value: Any) -> bytes:
    """Redis 7.0's name for the encoding of ``value`` as it is now."""
    kind = type(value)
    if kind is bytes:
        if len(value) <= 20 and typed.toInt(value) is not None:
            return b"int"
        return b"embstr" if len(value) <= _EMBSTR_SIZE else b"raw"
    if kind is deque:
        return b"quicklist"
    if kind is set:
        ints = len(value) <= _INTSET_ENTRIES and all(typed.toInt(m) is not None for m in value)
        return b"intset" if ints else b"hashtable"
    if kind is dict:
        items = (x for pair in value.items() for x in pair)
        return b"listpack" if _small(items, len(value), _HASH_ENTRIES) else b"hashtable"
    return b"listpack" if _small(value.scores, len(value), _ZSET_ENTRIES) else b"skiplist"


def _refcount(value: Any) -> int:
    """1, or Redis's count for the shared objects of small integers."""
    n = typed.toInt(value) if type(value) is bytes else None
    return _SHARED_REFCOUNT if n is not None and 0 <= n < _SHARED_INTEGERS else 1


_OBJECT: dict[bytes, Callable[[Any], bytes]] = {
    b"ENCODING": lambda value: resp.bulk(_encoding(value)),
    b"REFCOUNT": lambda value: resp.integer(_refcount(value)),
    b"IDLETIME": lambda value: resp.ZERO,
    b"FREQ": lambda value: _NO_LFU,
}


def object_(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key, OBJECT HELP."""
    sub = args[1].upper()
    if sub != b"HELP" and sub not in _OBJECT:
        return resp.error(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                          f"Try OBJECT HELP.")
    if len(args) != (2 if sub == b"HELP" else 3):
        return resp.error(f"ERR wrong number of arguments for "
                          f"'object|{sub.decode().lower()}' command")
    if sub == b"HELP":
        return resp.array([resp.simple(line) for line in _OBJECT_HELP])
    value = ks.value(args[2])
    return resp.NIL if value is None else _OBJECT[sub](value)


# name -> (function, arity as Redis counts it); RESTORE may fill a list someone waits for
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"SORT_RO": (sort, -2), b"DUMP": (dump, 2),
    b"RESTORE": (blocking.waking(restore, lambda args: args[1:2]), -4),
}
# name -> (function, arity, first key, last key, key step), as COMMAND INFO reports them;
# SORT's keys are its key and STORE's destination (KEYS_OF), which it may fill
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"SORT": (blocking.waking(sort, lambda args: _sortKeys(args)[1:]), -2, 1, 1, 1),
    b"COPY": (blocking.waking(copy, lambda args: args[2:3]), -3, 1, 2, 1),
    b"OBJECT": (object_, -2, 0, 0, 0),
}
# (OBJECT's key is its subcommand's: Redis reports none for OBJECT itself)
KEYS_OF: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {
    b"SORT": _sortKeys, b"OBJECT": lambda args: args[2:3]}
READS = {b"SORT_RO", b"DUMP", b"OBJECT"}
