"""Walking the keyspace: SCAN, KEYS and RANDOMKEY on one worker's keys.

SCAN's cursor is the hash slot to go on from: a call walks slots upward from it, on the
worker serving that slot, for as long as that worker serves them and until it has COUNT
keys (a slot's keys always come together), and answers the slot where the next call
begins, 0 after the last. So a key that is there for the whole walk is returned, at least
once, whichever workers come and go, as Redis promises; one added or removed meanwhile
may or may not be.
"""

from __future__ import annotations

import random
from typing import Any

from cluster.membership import HERE
from cluster.shards import SLOTS
from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace


def _filter(ks: Keyspace, keys: list[bytes], pattern: bytes | None,
            kind: bytes | None) -> list[bytes]:
    match = typed.matcher(pattern) if pattern not in (None, b"*") else None
    out = []
    for key in keys:
        if match is not None and not match(key):
            continue
        if kind is not None:
            value = ks.value(key)
            if value is None or typed.typeName(value).encode() != kind:
                continue
        out.append(key)
    return out


def walk(ks: Keyspace, route: list[Any], cursor: int, count: int, pattern: bytes | None,
         kind: bytes | None, onlyHere: bool = False) -> tuple[list[bytes], int]:
    """SCAN from slot ``cursor`` over the slots served here: (keys, next cursor). It stops
    at a slot served elsewhere (``onlyHere``: skips it, as a Redis Cluster node scans its
    own slots only)."""
    found: list[bytes] = []
    slot = cursor
    slots = len(route)
    while slot < SLOTS and len(found) < count:
        if route[slot % slots] is not HERE:
            if not onlyHere:
                break
        elif slot in ks.bySlot:
            found += _filter(ks, ks.keysOfSlot(slot), pattern, kind)
        slot += 1
    return found, 0 if slot >= SLOTS else slot


def keys(ks: Keyspace, pattern: bytes) -> list[bytes]:
    """KEYS: every live key here matching ``pattern``."""
    return _filter(ks, [k for k in list(ks.data) if ks.value(k) is not None], pattern, None)


def randomKey(ks: Keyspace) -> bytes | None:
    """A key here picked at random (a random slot, then a random key of it)."""
    while ks.bySlot:
        slot = random.choice(list(ks.bySlot))
        keys = ks.keysOfSlot(slot)
        if keys:
            return random.choice(keys)
    return None


def pattern(args: list[bytes]) -> bytes | None:
    """The MATCH pattern of SCAN's options (checked by ``typed.scanArgs``), if any."""
    for i in range(2, len(args) - 1, 2):
        if args[i].upper() == b"MATCH":
            return args[i + 1]
    return None


def reply(cursor: int, keys: list[bytes]) -> bytes:
    return b"*2\r\n%s*%d\r\n%s" % (resp.bulk(b"%d" % cursor), len(keys),
                                   b"".join(map(resp.bulk, keys)))
