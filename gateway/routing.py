"""Routing policies: which worker slot a new connection goes to.

Each policy returns the slots to try in order; the gateway hands the connection to the
first one that takes it, so a dead or stalled worker is skipped and nothing is queued
for it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

from cluster.hosts import HostMap, workerIndex
from cluster.shards import ownerOf


class Slot:
    """The gateway's view of one worker: its handoff channel and its reported load."""

    def __init__(self, index: int, channel: Any, now: float) -> None:
        self.index = index
        self.channel = channel
        self.sent = 0  # connections handed to it
        self.reportedOpen = 0
        self.reportedAccepted = 0
        self.lastReport = now
        self.load = 0  # open connections: the last report plus those handed over since

    def handed(self) -> None:
        """One more connection went to this worker."""
        self.sent += 1
        if self.sent > self.reportedAccepted:
            self.load += 1

    def reported(self, open_: int, accepted: int, now: float) -> None:
        """The worker's own count of open and accepted connections arrived."""
        self.reportedOpen, self.reportedAccepted, self.lastReport = open_, accepted, now
        self.load = open_ + max(0, self.sent - accepted)

    def usable(self, now: float, stallAfter: float) -> bool:
        return not self.channel.closed and now - self.lastReport < stallAfter


_LOAD = attrgetter("load")


def _rotate(slots: list[Slot], start: int) -> list[Slot]:
    if not slots:
        return slots
    start %= len(slots)
    return slots[start:] + slots[:start]


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def order(self, slots: list[Slot], peer: Any, key: Any, workers: int) -> list[Slot]:
        self._next += 1
        return _rotate(slots, self._next - 1)


class LeastConnections:
    def __init__(self) -> None:
        self._tiebreak = 0

    def order(self, slots: list[Slot], peer: Any, key: Any, workers: int) -> Iterator[Slot]:
        # the least loaded first, then the rest as fallbacks; rotating first makes equal
        # loads take turns instead of all going to slot 0
        self._tiebreak += 1
        rotated = _rotate(slots, self._tiebreak)
        if not rotated:
            return
        best = min(rotated, key=_LOAD)
        yield best
        for slot in rotated:
            if slot is not best:
                yield slot


class SourceHash:
    def order(self, slots: list[Slot], peer: Any, key: Any, workers: int) -> list[Slot]:
        host = peer[0] if isinstance(peer, tuple) else str(peer)
        return _rotate(slots, zlib.crc32(str(host).encode()))


class KeyOwner:
    def __init__(self, slotsCount: int, hostMap: HostMap | None = None) -> None:
        self.slotsCount = slotsCount
        self.hostMap = hostMap  # several hosts: the map is over all their workers

    def order(self, slots: list[Slot], peer: Any, key: Any, workers: int) -> list[Slot]:
        owner: int | None = ownerOf(key, workers, self.slotsCount)
        if self.hostMap is not None:  # this host's worker owning it, if one does
            names = self.hostMap.names
            host, _, local = names[ownerOf(key, len(names), self.slotsCount)].partition("/")
            owner = workerIndex(local) if host == self.hostMap.me else None
        first = [s for s in slots if s.index == owner]
        return first + [s for s in slots if s.index != owner]


def policy(name: str, slotsCount: int, hostMap: HostMap | None = None) -> Any:
    factories: dict[str, Callable[[], Any]] = {
        "round-robin": RoundRobin,
        "least-connections": LeastConnections,
        "source-hash": SourceHash,
        "key": lambda: KeyOwner(slotsCount, hostMap),
    }
    return factories[name]()
