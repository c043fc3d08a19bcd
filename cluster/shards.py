"""The shard map: a key's slot is Redis Cluster's hash slot, a slot's owner is a worker
index.

A key's slot is CRC16 (XMODEM, ``binascii.crc_hqx`` from 0) of the key modulo 16384,
exactly as Redis computes it, or of its hash tag: the part between the first ``{`` and
the next ``}``, when that part is not empty, so ``{user1}:name`` and ``{user1}:mail``
share a slot (and a worker). It is the same in every process and on every run
(Python's ``hash()`` is salted per process, so it must never decide where a key lives).
Slots are split into contiguous ranges, one per worker, so the map depends only on the
worker count: every process computes the same owner, before and after restarts.
"""

from __future__ import annotations

from binascii import crc_hqx

SLOTS = 16384  # Redis Cluster's
_BRACE = ord("{")
DEFAULT_SLOTS = SLOTS


def keyBytes(key: str | bytes | int) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode()


def keySlot(key: bytes) -> int:
    """Redis's hash slot of ``key`` (bytes): CRC16 of the key or of its hash tag."""
    if _BRACE in key:  # (an int: memchr, ten times faster than looking for b"{")
        start = key.find(b"{")
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc_hqx(key, 0) & 16383


def slotOf(key: str | bytes | int, slots: int = DEFAULT_SLOTS) -> int:
    """The slot (0 … slots-1) a key lives in (Redis's hash slot with 16384 slots)."""
    return keySlot(keyBytes(key)) % slots


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
