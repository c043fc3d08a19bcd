"""One worker's keys: values and expiry times, in memory.

A value is ``bytes`` (a string) or one of the containers of ``cluster.store.typed`` (a
hash, list, set or sorted set). ``get`` is for string commands: it raises WrongType for
a key holding another type, which the server answers with Redis's ``-WRONGTYPE``.

Expiry is lazy (a key past its time is deleted when touched) plus a sweep that the
worker runs a few times a second: it pops due keys off a heap of deadlines for at most
``sweepBudget`` seconds per pass, so a million keys expiring at once cost many short
passes, never one long stall. Heap entries left behind by a key whose expiry changed are
skipped when they surface, and the heap is rebuilt when they outnumber live entries.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

from cluster.shards import keySlot

# versions of watched keys (WATCH): unique across processes, so a version read from one
# owner never matches one from another (a key whose shard moved counts as changed)
_versions = itertools.count(random.getrandbits(48) << 12)


class WrongType(Exception):
    """A command for one type met a key holding another."""


class Keyspace:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.data: dict[bytes, Any] = {}  # bytes, or a container (cluster.store.typed)
        self.expires: dict[bytes, float] = {}  # key -> deadline on ``clock``
        self.clock = clock
        self._heap: list[tuple[float, bytes]] = []
        self.expired = 0
        self.sweepBudget = 0.001
        self.watched: dict[bytes, list[int]] = {}  # key -> [version, watchers]
        # Redis's hash slot -> its keys here (SCAN, KEYS by slot, CLUSTER GETKEYSINSLOT)
        self.bySlot: dict[int, set[bytes]] = {}
        self.waiters: Any = None  # clients blocked on lists here (blocking.Blocked)
        self.aof: Any = None  # the append-only file, with --appendonly (aof.AppendOnly)

    # -- reading and writing ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """A string's value (None: no such key); WrongType for another type."""
        if key in self.expires and self._expireIfDue(key):
            return None
        value = self.data.get(key)
        if value is None or type(value) is bytes:
            return value
        raise WrongType(key)

    def value(self, key: bytes) -> Any:
        """The value of any type (None: no such key)."""
        if key in self.expires and self._expireIfDue(key):
            return None
        return self.data.get(key)

    def exists(self, key: bytes) -> bool:
        return self.value(key) is not None

    def set(self, key: bytes, value: Any, ttl: float | None = None) -> None:
        if self.watched:
            self.touch(key)
        data = self.data
        if key not in data:
            self._added(key)
        data[key] = value
        if ttl is None:
            self.expires.pop(key, None)
        else:
            self.expireAt(key, self.clock() + ttl)

    def delete(self, key: bytes) -> bool:
        self.expires.pop(key, None)
        if key in self.data:
            del self.data[key]
            self._removed(key)
            if self.watched:
                self.touch(key)
            return True
        return False

    def flush(self) -> None:
        self.data.clear()
        self.expires.clear()
        self._heap.clear()
        self.bySlot.clear()
        for key in self.watched:
            self.touch(key)

    # -- WATCH -------------------------------------------------------------------------------

    def watch(self, key: bytes) -> int:
        """Start watching ``key``; its version now (any change gives it a new one)."""
        entry = self.watched.get(key)
        if entry is None:
            entry = self.watched[key] = [next(_versions), 0]
        entry[1] += 1
        return entry[0]

    def unwatch(self, key: bytes) -> None:
        entry = self.watched.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.watched[key]

    def version(self, key: bytes) -> int | None:
        """The version of a watched key (None: nobody watches it here)."""
        entry = self.watched.get(key)
        return None if entry is None else entry[0]

    def touch(self, key: bytes) -> None:
        """``key`` changed: a transaction that watched it will not run."""
        entry = self.watched.get(key)
        if entry is not None:
            entry[0] = next(_versions)

    def __len__(self) -> int:
        return len(self.data)

    # -- keys by slot ------------------------------------------------------------------------

    def _added(self, key: bytes) -> None:
        keys = self.bySlot.get(slot := keySlot(key))
        if keys is None:
            self.bySlot[slot] = {key}
        else:
            keys.add(key)

    def _removed(self, key: bytes) -> None:
        keys = self.bySlot[slot := keySlot(key)]
        keys.discard(key)
        if not keys:
            del self.bySlot[slot]

    def keysOfSlot(self, slot: int) -> list[bytes]:
        """The live keys of Redis's hash slot ``slot`` held here."""
        return [k for k in list(self.bySlot.get(slot, ())) if self.value(k) is not None]

    # -- expiry -----------------------------------------------------------------------------

    def expireAt(self, key: bytes, deadline: float) -> None:
        if self.watched:
            self.touch(key)
        self.expires[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self.expires) + 1024:
            self._heap = [(d, k) for k, d in self.expires.items()]
            heapq.heapify(self._heap)

    def persist(self, key: bytes) -> bool:
        if self.value(key) is None:
            return False
        if self.expires.pop(key, None) is None:
            return False
        if self.watched:
            self.touch(key)
        return True

    def ttl(self, key: bytes) -> float | None:
        """Seconds left; None without an expiry. (Check ``exists`` first.)"""
        deadline = self.expires.get(key)
        return None if deadline is None else max(0.0, deadline - self.clock())

    def _expireIfDue(self, key: bytes) -> bool:
        if self.expires[key] <= self.clock():
            del self.expires[key]
            if self.data.pop(key, None) is not None:
                self._removed(key)
            self.expired += 1
            if self.watched:
                self.touch(key)
            return True
        return False

    def sweep(self) -> int:
        """Delete due keys for at most ``sweepBudget`` seconds; return how many."""
        heap, expires, data = self._heap, self.expires, self.data
        now = self.clock()
        stop = time.monotonic() + self.sweepBudget
        removed = 0
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if expires.get(key) == deadline:
                del expires[key]
                if data.pop(key, None) is not None:
                    self._removed(key)
                removed += 1
                if self.watched:
                    self.touch(key)
            if not removed % 64 and time.monotonic() > stop:
                break
        self.expired += removed
        return removed
