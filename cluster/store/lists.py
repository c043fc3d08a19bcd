"""List commands (LPUSH, LPOP, ... LMOVE), with Redis 7.0's replies and errors. A list is
a ``deque`` of bytes; each command takes the keyspace, the request and whether the client
speaks RESP3, and returns the encoded reply. The blocking ones (BLPOP...) are not here."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace
from cluster.store.typed import NOT_INTEGER, SYNTAX, changed, create, fetch

RANK_ZERO = resp.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from "
                       "the second ... or use negative to start from the end of the list")
# LMOVE's LEFT|RIGHT: how to take from that end, and how to put there
_ENDS = {b"LEFT": (deque.popleft, deque.appendleft), b"RIGHT": (deque.pop, deque.append)}


def _list(ks: Keyspace, key: bytes) -> deque | None:
    return fetch(ks, key, deque)


def _push(ks: Keyspace, args: list[bytes], put: Callable[[deque, Iterable[bytes]], None],
          get: Callable[[Keyspace, bytes, Any], deque | None]) -> bytes:
    """Put the elements at one end (``put``) of the list ``get`` finds or makes."""
    items = get(ks, args[1], deque)
    if items is None:
        return resp.ZERO
    put(items, args[2:])
    changed(ks, args[1], items)
    return b":%d\r\n" % len(items)


def lpush(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _push(ks, args, deque.extendleft, create)


def rpush(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _push(ks, args, deque.extend, create)


def lpushx(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _push(ks, args, deque.extendleft, fetch)


def rpushx(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _push(ks, args, deque.extend, fetch)


def _pop(ks: Keyspace, args: list[bytes], r3: bool, take: Callable[[deque], bytes]) -> bytes:
    """LPOP/RPOP key [count]: one element (a bulk string), or an array of up to count."""
    if len(args) == 2:
        items = _list(ks, args[1])
        if items is None:
            return resp.NIL
        value = take(items)
        changed(ks, args[1], items)
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if len(args) > 3:
        return resp.error(f"ERR wrong number of arguments for "
                          f"'{args[0].decode(errors='replace').lower()}' command")
    count = typed.toInt(args[2])
    if count is None or count < 0:
        return typed.NOT_POSITIVE
    items = _list(ks, args[1])
    if items is None:
        return typed.nilArray(r3)
    values = [take(items) for _ in range(min(count, len(items)))]
    if values:
        changed(ks, args[1], items)
    return resp.array([resp.bulk(v) for v in values])


def lpop(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _pop(ks, args, r3, deque.popleft)


def rpop(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _pop(ks, args, r3, deque.pop)


def llen(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return resp.integer(len(_list(ks, args[1]) or ()))


def _bounds(args: list[bytes]) -> tuple[int, int] | None:
    """LRANGE's and LTRIM's start and stop (None: not integers)."""
    start, stop = typed.toInt(args[2]), typed.toInt(args[3])
    return None if start is None or stop is None else (start, stop)


def _span(start: int, stop: int, size: int) -> tuple[int, int] | None:
    """``start`` and ``stop`` as the first and last index of a list of ``size``, Redis's
    way: negative from the end, clamped (None: nothing in range)."""
    start = max(start + size if start < 0 else start, 0)
    stop = min(stop + size if stop < 0 else stop, size - 1)
    return None if start > stop else (start, stop)


def _slice(items: deque, first: int, last: int) -> list[bytes]:
    """``items[first..last]`` (both in range), walked to from the nearer end."""
    behind = len(items) - 1 - last
    if first <= behind:
        return list(islice(items, first, last + 1))
    part = list(islice(reversed(items), behind, len(items) - first))
    part.reverse()
    return part


def lrange(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    bounds = _bounds(args)
    if bounds is None:
        return NOT_INTEGER
    items = _list(ks, args[1])
    span = None if items is None else _span(*bounds, len(items))
    if items is None or span is None:
        return resp.EMPTY_ARRAY
    return resp.array([resp.bulk(v) for v in _slice(items, *span)])


def ltrim(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    bounds = _bounds(args)
    if bounds is None:
        return NOT_INTEGER
    items = _list(ks, args[1])
    if items is None:
        return resp.OK
    span = _span(*bounds, len(items))
    if span is None:
        items.clear()
    else:
        first, last = span
        for _ in range(len(items) - 1 - last):
            items.pop()
        for _ in range(first):
            items.popleft()
    changed(ks, args[1], items)
    return resp.OK


def lindex(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    items = _list(ks, args[1])
    if items is None:
        return resp.NIL
    index = typed.toInt(args[2])
    if index is None:
        return NOT_INTEGER
    return resp.bulk(items[index] if -len(items) <= index < len(items) else None)


def lset(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    items = _list(ks, args[1])
    if items is None:
        return resp.error("ERR no such key")
    index = typed.toInt(args[2])
    if index is None:
        return NOT_INTEGER
    if not -len(items) <= index < len(items):
        return resp.error("ERR index out of range")
    items[index] = args[3]
    changed(ks, args[1], items)
    return resp.OK


def linsert(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """LINSERT key BEFORE|AFTER pivot element: the new length, or -1 (no such pivot)."""
    where = args[2].upper()
    if where not in (b"BEFORE", b"AFTER"):
        return SYNTAX
    items = _list(ks, args[1])
    if items is None:
        return resp.ZERO
    try:
        index = items.index(args[3])
    except ValueError:
        return resp.integer(-1)
    items.insert(index + (where == b"AFTER"), args[4])
    changed(ks, args[1], items)
    return resp.integer(len(items))


def lrem(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """LREM key count element: the first count (from the tail if negative; 0: all)."""
    count = typed.toInt(args[2])
    if count is None:
        return NOT_INTEGER
    items = _list(ks, args[1])
    if items is None:
        return resp.ZERO
    element, limit, removed = args[3], abs(count) or len(items), 0
    kept = []
    for value in reversed(items) if count < 0 else items:
        if removed < limit and value == element:
            removed += 1
        else:
            kept.append(value)
    if removed:
        if count < 0:
            kept.reverse()
        items.clear()
        items.extend(kept)
        changed(ks, args[1], items)
    return resp.integer(removed)


def _lposOptions(args: list[bytes]) -> tuple[int, int | None, int] | bytes:
    """LPOS's RANK, COUNT (None: not given) and MAXLEN, or the error reply."""
    rank, count, maxlen = 1, None, 0
    for i in range(3, len(args), 2):
        option = args[i].upper()
        if i + 1 == len(args) or option not in (b"RANK", b"COUNT", b"MAXLEN"):
            return SYNTAX
        n = typed.toInt(args[i + 1])
        if option == b"RANK":
            if n is None:
                return NOT_INTEGER
            if n == 0:
                return RANK_ZERO
            rank = n
        elif n is None or n < 0:
            return resp.error(f"ERR {option.decode()} can't be negative")
        elif option == b"COUNT":
            count = n
        else:
            maxlen = n
    if rank == typed.INT64[0]:  # Redis 7.0 negates it to itself: all matches, from the tail
        rank, count = -1, None if count is None else 0
    return rank, count, maxlen


def lpos(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """LPOS key element [RANK rank] [COUNT n] [MAXLEN len]: the indexes of matches."""
    options = _lposOptions(args)
    if isinstance(options, bytes):
        return options
    rank, count, maxlen = options
    items = _list(ks, args[1])
    if items is None:
        return resp.NIL if count is None else resp.EMPTY_ARRAY
    walk = enumerate(items) if rank > 0 else \
        zip(range(len(items) - 1, -1, -1), reversed(items), strict=True)
    matches = (i for i, value in islice(walk, maxlen or None) if value == args[2])
    found = islice(matches, abs(rank) - 1, None)  # from the rank-th match
    if count is None:
        index = next(found, None)
        return resp.NIL if index is None else resp.integer(index)
    return resp.array([resp.integer(i) for i in islice(found, count or None)])


def _move(ks: Keyspace, source: bytes, destination: bytes, take: Callable[[deque], bytes],
          put: Callable[[deque, bytes], None]) -> bytes:
    """Take an element off ``source`` and put it on ``destination`` (the same: a rotation)."""
    items = _list(ks, source)
    if items is None:
        return resp.NIL
    _list(ks, destination)  # -WRONGTYPE before anything moves
    value = take(items)
    target = create(ks, destination, deque)
    put(target, value)
    changed(ks, source, items)
    changed(ks, destination, target)
    return resp.bulk(value)


def lmove(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """LMOVE source destination LEFT|RIGHT LEFT|RIGHT."""
    fromEnd, toEnd = _ENDS.get(args[3].upper()), _ENDS.get(args[4].upper())
    if fromEnd is None or toEnd is None:
        return SYNTAX
    return _move(ks, args[1], args[2], fromEnd[0], toEnd[1])


def rpoplpush(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return _move(ks, args[1], args[2], deque.pop, deque.appendleft)


# name -> (function, arity as Redis counts it)
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"LPUSH": (lpush, -3), b"RPUSH": (rpush, -3), b"LPUSHX": (lpushx, -3),
    b"RPUSHX": (rpushx, -3), b"LPOP": (lpop, -2), b"RPOP": (rpop, -2), b"LLEN": (llen, 2),
    b"LRANGE": (lrange, 4), b"LTRIM": (ltrim, 4), b"LINDEX": (lindex, 3),
    b"LSET": (lset, 4), b"LINSERT": (linsert, 5), b"LREM": (lrem, 4), b"LPOS": (lpos, -3),
}
# name -> (function, arity, first key, last key, key step)
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"LMOVE": (lmove, 5, 1, 2, 1), b"RPOPLPUSH": (rpoplpush, 3, 1, 2, 1),
}
READS = {b"LLEN", b"LRANGE", b"LINDEX", b"LPOS"}
