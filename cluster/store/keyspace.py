"""One worker's keys: values and expiry times, in memory.

Expiry is lazy (a key past its time is deleted when touched) plus a sweep that the
worker runs a few times a second: it pops due keys off a heap of deadlines for at most
``sweepBudget`` seconds per pass, so a million keys expiring at once cost many short
passes, never one long stall. Heap entries left behind by a key whose expiry changed are
skipped when they surface, and the heap is rebuilt when they outnumber live entries.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class Keyspace:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.data: dict[bytes, bytes] = {}
        self.expires: dict[bytes, float] = {}  # key -> deadline on ``clock``
        self.clock = clock
        self._heap: list[tuple[float, bytes]] = []
        self.expired = 0
        self.sweepBudget = 0.001

    # -- reading and writing ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        if key in self.expires and self._expireIfDue(key):
            return None
        return self.data.get(key)

    def exists(self, key: bytes) -> bool:
        return self.get(key) is not None

    def set(self, key: bytes, value: bytes, ttl: float | None = None) -> None:
        self.data[key] = value
        if ttl is None:
            self.expires.pop(key, None)
        else:
            self.expireAt(key, self.clock() + ttl)

    def delete(self, key: bytes) -> bool:
        self.expires.pop(key, None)
        if key in self.data:
            del self.data[key]
            return True
        return False

    def flush(self) -> None:
        self.data.clear()
        self.expires.clear()
        self._heap.clear()

    def __len__(self) -> int:
        return len(self.data)

    # -- expiry -----------------------------------------------------------------------------

    def expireAt(self, key: bytes, deadline: float) -> None:
        self.expires[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self.expires) + 1024:
            self._heap = [(d, k) for k, d in self.expires.items()]
            heapq.heapify(self._heap)

    def persist(self, key: bytes) -> bool:
        if self.get(key) is None:
            return False
        return self.expires.pop(key, None) is not None

    def ttl(self, key: bytes) -> float | None:
        """Seconds left; None without an expiry. (Check ``exists`` first.)"""
        deadline = self.expires.get(key)
        return None if deadline is None else max(0.0, deadline - self.clock())

    def _expireIfDue(self, key: bytes) -> bool:
        if self.expires[key] <= self.clock():
            del self.expires[key]
            self.data.pop(key, None)
            self.expired += 1
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
                data.pop(key, None)
                removed += 1
            if not removed % 64 and time.monotonic() > stop:
                break
        self.expired += removed
        return removed
