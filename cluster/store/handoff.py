"""The store's shard state for a handoff: a moving shard's keys, values (of every type,
in ``typed.plain`` form) and remaining time to live, exported in chunks on the old
owner, imported on the new one, and forgotten where they no longer belong
(see ``worker.shardmove``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from cluster import rpc
from cluster.store import typed
from cluster.store.commands import BIG_VALUE
from cluster.store.keyspace import Keyspace

EXPORT_BYTES = 256 << 10  # a chunk of a moving shard: about this many bytes of data
EXPORT_SCAN = 20_000  # keys looked at between two chunks, so a move never stalls the loop


def exportSlots(keyspace: Keyspace, slots: set[int],
                slotOf: Callable[[bytes], int]) -> Iterator[Any]:
    """Chunks ``[key, value, ms to live or -1, ...]`` of every key in ``slots`` (frozen
    while this runs, so their keys stay put; others may come and go). A chunk holding a
    big value is wrapped in ``rpc.Large``: it travels without the value being copied."""
    keys = list(keyspace.data)
    chunk: list = []
    size = scanned = 0
    big = False
    for key in keys:
        scanned += 1
        if slotOf(key) in slots:
            value = keyspace.value(key)
            if value is not None:
                left = keyspace.ttl(key)
                chunk += (key, typed.plain(value),
                          -1 if left is None else max(1, int(left * 1000)))
                size += len(key) + typed.size(value)
                big = big or typed.size(value) >= BIG_VALUE
        if size >= EXPORT_BYTES or scanned >= EXPORT_SCAN:
            yield rpc.Large(chunk) if big else chunk
            chunk, size, scanned, big = [], 0, 0, False
    if chunk:
        yield rpc.Large(chunk) if big else chunk


def importChunk(keyspace: Keyspace, chunk: Any) -> None:
    """Take a chunk another worker exported (checked first: a bad one changes nothing)."""
    if type(chunk) is not list or len(chunk) % 3:
        raise TypeError("a shard chunk is a list of key, value, ttl triples")
    values = []
    for i in range(0, len(chunk), 3):
        key, value, ttl = chunk[i:i + 3]
        if type(key) is not bytes or type(ttl) is not int:
            raise TypeError("a shard chunk holds bytes keys, values and int ttls")
        values.append(typed.fromPlain(value))
    for i, value in zip(range(0, len(chunk), 3), values, strict=True):
        key, ttl = chunk[i], chunk[i + 2]
        keyspace.set(key, value, None if ttl < 0 else ttl / 1000)


def forgetSlots(keyspace: Keyspace, slots: set[int], slotOf: Callable[[bytes], int]) -> None:
    """Drop every key of ``slots`` (they are served elsewhere now)."""
    for key in [k for k in keyspace.data if slotOf(k) in slots]:
        keyspace.delete(key)
