"""Set commands (SADD, SREM, ... SSCAN; SINTER, SUNION, SDIFF, their STORE forms, SMOVE
and SINTERCARD over several keys), with Redis's replies and errors. A set is a Python
``set`` of bytes; each command takes the keyspace, the request and whether the client
speaks RESP3 (where Redis answers a set, SMEMBERS, SPOP with a count..., is a RESP3 set),
and returns the encoded reply.

Random picks (SPOP, SRANDMEMBER) copy the set to choose from it: O(size), where Redis's
are O(1) per member."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace
from cluster.store.typed import NOT_INTEGER, SYNTAX, changed, create, fetch


def _set(ks: Keyspace, key: bytes) -> set | None:
    return fetch(ks, key, set)


def sadd(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    s = create(ks, args[1], set)
    before = len(s)
    s.update(args[2:])
    if len(s) != before:  # (nothing added: nothing changed, for WATCH)
        changed(ks, args[1], s)
    return resp.integer(len(s) - before)


def srem(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    s = _set(ks, args[1])
    if s is None:
        return resp.ZERO
    before = len(s)
    s.difference_update(args[2:])
    if len(s) != before:
        changed(ks, args[1], s)
    return resp.integer(before - len(s))


def smembers(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return typed.members(list(_set(ks, args[1]) or ()), r3)


def sismember(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    s = _set(ks, args[1])
    return resp.ONE if s is not None and args[2] in s else resp.ZERO


def smismember(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    s = _set(ks, args[1]) or ()
    return resp.array([resp.ONE if m in s else resp.ZERO for m in args[2:]])


def scard(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return resp.integer(len(_set(ks, args[1]) or ()))


def spop(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """SPOP key [count]: with a count, a set (RESP3) of up to count members."""
    count = typed.popCount(args)
    if type(count) is bytes:
        return count
    s = _set(ks, args[1])
    if len(args) == 2:
        if s is None:
            return resp.NIL
        picked = [random.choice(tuple(s))]
    elif not s or count == 0:
        return typed.members([], r3)
    else:
        picked = list(s) if count >= len(s) else random.sample(tuple(s), count)
    s.difference_update(picked)
    changed(ks, args[1], s)
    return resp.bulk(picked[0]) if len(args) == 2 else typed.members(picked, r3)


def srandmember(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """SRANDMEMBER key [count]: distinct members, or with a negative count, -count picks
    that may repeat (an array, even in RESP3)."""
    if len(args) > 3:
        return SYNTAX
    count = typed.toInt(args[2]) if len(args) == 3 else None
    if len(args) == 3 and count is None:
        return NOT_INTEGER
    if count == typed.INT64[0]:
        return typed.RANDOM_RANGE
    s = _set(ks, args[1])
    if count is None:
        return resp.bulk(random.choice(tuple(s)) if s else None)
    if not s or count == 0:
        return resp.EMPTY_ARRAY
    picked = typed.picks(tuple(s), count)
    if type(picked) is bytes:
        return picked
    return resp.array([resp.bulk(m) for m in picked])


def _scanOptions(args: list[bytes]) -> list[bytes]:
    """SSCAN's request cut at its first TYPE option (kept alone, so that it is the syntax
    error it is in Redis, after the options before it)."""
    for i in range(3, len(args), 2):
        if args[i].upper() == b"TYPE":
            return args[:i + 1]
    return args


def sscan(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """SSCAN key cursor [MATCH pattern] [COUNT n]: the whole set in one reply (cursor 0);
    COUNT is a hint. As Redis: the cursor is checked, then the key, then the options."""
    if typed.badCursor(args[2]):
        return typed.INVALID_CURSOR
    s = _set(ks, args[1])
    if s is None:
        return typed.EMPTY_SCAN
    match, _, _, why = typed.scanArgs(_scanOptions(args), 3)
    if why is not None:
        return why
    found = [resp.bulk(m) for m in s if match is None or match(m)]
    return resp.array([resp.bulk(b"0"), resp.array(found)])


# -- over several keys ----------------------------------------------------------------------

def _sources(ks: Keyspace, keys: list[bytes]) -> list[set | None]:
    """Each key's set (None: no such key); WrongType if one holds another type."""
    return [_set(ks, k) for k in keys]


def _inter(sets: list[set | None]) -> set:
    if not all(sets):
        return set()
    smallest, *others = sorted(sets, key=len)
    return smallest.intersection(*others)


def _union(sets: list[set | None]) -> set:
    return set().union(*(s for s in sets if s))


def _diff(sets: list[set | None]) -> set:
    return (sets[0] or set()).difference(*(s for s in sets[1:] if s))


def combine(ks: Keyspace, args: list[bytes], r3: bool = False, *,
            op: Callable[[list[set | None]], set], store: bool) -> bytes:
    """SINTER, SUNION, SDIFF key [key ...] (a set), and their STORE forms, destination
    first (the result's size): a STORE with an empty result deletes the destination, one
    with a result replaces it, whatever it held, without its TTL."""
    result = op(_sources(ks, args[2:] if store else args[1:]))
    if not store:
        return typed.members(list(result), r3)
    if result:
        ks.set(args[1], result)
    else:
        ks.delete(args[1])
    return resp.integer(len(result))


def smove(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    source = _set(ks, args[1])
    if source is None:
        return resp.ZERO
    target = _set(ks, args[2])  # checked even when the member is not in the source
    member = args[3]
    if member not in source or source is target:
        return resp.ONE if member in source else resp.ZERO
    source.discard(member)
    changed(ks, args[1], source)
    target = create(ks, args[2], set)
    target.add(member)
    changed(ks, args[2], target)
    return resp.ONE


def _cardKeys(args: list[bytes]) -> list[bytes]:
    """SINTERCARD numkeys key [key ...] [LIMIT n]'s keys; ValueError (Redis's error
    message) for a bad numkeys."""
    n = typed.toInt(args[1])
    if n is None or n < 1:
        raise ValueError("ERR numkeys should be greater than 0")
    if n > len(args) - 2:
        raise ValueError("ERR Number of keys can't be greater than number of args")
    return args[2:2 + n]


def sintercard(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """SINTERCARD numkeys key [key ...] [LIMIT n]: the intersection's size, at most n
    (0: no limit)."""
    try:
        keys = _cardKeys(args)
    except ValueError as e:
        return resp.error(str(e))
    limit = 0
    for i in range(2 + len(keys), len(args), 2):
        if args[i].upper() != b"LIMIT" or i + 1 == len(args):
            return SYNTAX
        limit = typed.toInt(args[i + 1])
        if limit is None or limit < 0:
            return resp.error("ERR LIMIT can't be negative")
    size = len(_inter(_sources(ks, keys)))
    return resp.integer(min(size, limit) if limit else size)


# name -> (function, arity as Redis counts it)
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"SADD": (sadd, -3), b"SREM": (srem, -3), b"SMEMBERS": (smembers, 2),
    b"SISMEMBER": (sismember, 3), b"SMISMEMBER": (smismember, -3), b"SCARD": (scard, 2),
    b"SPOP": (spop, -2), b"SRANDMEMBER": (srandmember, -2), b"SSCAN": (sscan, -3),
}
# name -> (function, arity, first key, last key, key step), as COMMAND INFO reports them
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"SINTER": (partial(combine, op=_inter, store=False), -2, 1, -1, 1),
    b"SUNION": (partial(combine, op=_union, store=False), -2, 1, -1, 1),
    b"SDIFF": (partial(combine, op=_diff, store=False), -2, 1, -1, 1),
    b"SINTERSTORE": (partial(combine, op=_inter, store=True), -3, 1, -1, 1),
    b"SUNIONSTORE": (partial(combine, op=_union, store=True), -3, 1, -1, 1),
    b"SDIFFSTORE": (partial(combine, op=_diff, store=True), -3, 1, -1, 1),
    b"SMOVE": (smove, 4, 1, 2, 1), b"SINTERCARD": (sintercard, -3, 0, 0, 0),
}
KEYS_OF: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {b"SINTERCARD": _cardKeys}
READS = {b"SMEMBERS", b"SISMEMBER", b"SMISMEMBER", b"SCARD", b"SRANDMEMBER", b"SSCAN",
         b"SINTER", b"SUNION", b"SDIFF", b"SINTERCARD"}
