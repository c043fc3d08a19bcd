"""The shard map: a key's slot is a stable hash, a slot's owner is a worker index.

``zlib.crc32`` is the same in every process and on every run (Python's ``hash()`` is
salted per process, so it must never decide where a key lives). Slots are split into
contiguous ranges, one per worker, so the map depends only on the slot count and the
worker count: every process computes the same owner, before and after restarts.
"""

from __future__ import annotations

import zlib

DEFAULT_SLOTS = 1024


def keyBytes(key: str | bytes | int) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode()


def slotOf(key: str | bytes | int, slots: int = DEFAULT_SLOTS) -> int:
    """The slot (0 … slots-1) a key lives in."""
    return zlib.crc32(keyBytes(key)) % slots


def ownerOfSlot(slot: int, workers: int, slots: int = DEFAULT_SLOTS) -> int:
    """The index of the worker that owns ``slot`` among ``workers`` workers."""
    return slot * workers // slots


def ownerOf(key: str | bytes | int, workers: int, slots: int = DEFAULT_SLOTS) -> int:
    """The index of the worker that owns ``key``."""
    return ownerOfSlot(slotOf(key, slots), workers, slots)


def slotsOf(index: int, workers: int, slots: int = DEFAULT_SLOTS) -> list[int]:
    """The slots worker ``index`` owns among ``workers`` workers."""
    return [s for s in range(slots) if ownerOfSlot(s, workers, slots) == index]


def moves(before: int, after: int, slots: int = DEFAULT_SLOTS) -> dict[int, dict[int, list[int]]]:
    """Which slots change hands when the worker count goes from ``before`` to ``after``:
    ``{old owner: {new owner: [slots]}}``."""
    out: dict[int, dict[int, list[int]]] = {}
    for s in range(slots):
        old, new = ownerOfSlot(s, before, slots), ownerOfSlot(s, after, slots)
        if old != new:
            out.setdefault(old, {}).setdefault(new, []).append(s)
    return out
