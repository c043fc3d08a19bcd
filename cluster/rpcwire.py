"""The RPC wire format's bounds: what a message may cost to decode, and how an item too
large for one message travels in parts.

Decoding msgpack can cost far more memory than the message's size: one byte (``0x90``,
an empty array) becomes a 56-byte Python list. So a message larger than ``SCAN_ABOVE``
is first walked without building anything (``decodeCost``), and refused if decoding it
would take more than ``DECODE_FACTOR`` times its size (for items of many MiB, twice their
size plus ``DECODE_SLACK``) or nest deeper than ``MAX_DEPTH``; a smaller one costs at most
a few MiB whatever it holds. Data such as keys and values
costs a small multiple of its size and passes; floods of tiny containers do not.

An item larger than ``PART_SIZE`` (a 64 MiB value, say) is cut into ``part`` items
``["part", xid, index, count, size, bytes]``, sent in order on the same socket as any
other item and put back together by an ``Assembler`` on the other side, which bounds
what it holds (per item and in all) and forgets what a lost peer left half sent. So no
message exceeds ``MAX_FRAME``, which the ZeroMQ sockets enforce (``MAXMSGSIZE``) before
they allocate anything.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import msgpack

SCAN_ABOVE = 64 << 10  # messages up to this size decode at once: a few MiB at worst
DECODE_FACTOR = 24  # a larger one may cost at most this many times its size to decode
DECODE_SLACK = 192 << 20  # ... and a very large one at most twice its size plus this
MAX_DEPTH = 64  # containers within containers
PART_SIZE = 1 << 20  # an item larger than this travels in parts of this size
BATCH_BYTES = 4 << 20  # a batch of items leaves once it holds this much
MAX_FRAME = BATCH_BYTES + PART_SIZE + (64 << 10)  # the largest message a node sends
MAX_ITEM = 512 << 20  # one item in all (a call's arguments, a result)
MAX_ASSEMBLING = 1 << 30  # parts held at once, from every peer
ASSEMBLY_TIMEOUT = 60.0  # a part-sent item not finished by then is dropped

_U8 = struct.Struct(">B").unpack_from
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_UINT = {1: _U8, 2: _U16, 4: _U32}


class WireError(ValueError):
    """A message or part that is malformed or over a bound."""


# cost model: what CPython allocates per decoded object (64-bit), plus 8 for the pointer
# to it in its container. Cached small ints, None, True, False and b""/"" cost nothing.
_LIST, _DICT, _DICT_PAIR, _BYTES, _STR, _INT, _FLOAT, _EXT = 56, 64, 40, 33, 49, 28, 24, 96


def decodeCost(data: bytes | bytearray | memoryview, limit: int,
               maxDepth: int = MAX_DEPTH) -> int:
    """Bytes of Python objects that decoding ``data`` would allocate; raises WireError
    as soon as that passes ``limit``, or if the data is malformed or nests too deep."""
    n = len(data)
    i = 0
    total = 0
    stack: list[int] = []
    remaining = 1  # objects still to read in the innermost open container
    while True:
        if not remaining:
            if not stack:
                break
            remaining = stack.pop()
            continue
        remaining -= 1
        if i >= n:
            raise WireError("truncated message")
        b = data[i]
        total += 8
        count = -1  # set for a container: how many objects follow in it
        if b <= 0x7F:
            i += 1
        elif b >= 0xE0:
            i += 1
            total += _INT
        elif b <= 0x8F:
            count, i, total = 2 * (b & 0x0F), i + 1, total + _DICT + _DICT_PAIR * (b & 0x0F)
        elif b <= 0x9F:
            count, i, total = b & 0x0F, i + 1, total + _LIST + 8 * (b & 0x0F)
        elif b <= 0xBF:
            size = b & 0x1F
            i += 1 + size
            total += _STR + size
        elif b in (0xC0, 0xC2, 0xC3):
            i += 1
        elif b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB, 0xC7, 0xC8, 0xC9):
            width = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC7: 1, 0xC8: 2,
                     0xC9: 4}[b]
            if i + 1 + width > n:
                raise WireError("truncated message")
            size = _UINT[width](data, i + 1)[0]
            ext = b >= 0xC7 and b <= 0xC9
            i += 1 + width + size + ext
            total += (_EXT if ext else _STR if b >= 0xD9 else _BYTES) + size
        elif b in (0xCA, 0xCB):
            i += 5 if b == 0xCA else 9
            total += _FLOAT
        elif 0xCC <= b <= 0xD3:
            i += 1 + (1, 2, 4, 8)[(b - 0xCC) % 4]
            total += _INT + 8
        elif 0xD4 <= b <= 0xD8:
            i += 2 + (1, 2, 4, 8, 16)[b - 0xD4]
            total += _EXT
        elif b in (0xDC, 0xDD, 0xDE, 0xDF):
            width = 2 if b in (0xDC, 0xDE) else 4
            if i + 1 + width > n:
                raise WireError("truncated message")
            items = (_U16 if width == 2 else _U32)(data, i + 1)[0]
            i += 1 + width
            if b >= 0xDE:
                count, total = 2 * items, total + _DICT + _DICT_PAIR * items
            else:
                count, total = items, total + _LIST + 8 * items
        else:
            raise WireError(f"invalid msgpack byte {b:#x}")
        if count >= 0:
            if count > n - i:
                raise WireError("container longer than the message")
            if count:
                if len(stack) >= maxDepth:
                    raise WireError(f"nested deeper than {maxDepth}")
                stack.append(remaining)
                remaining = count
        if total > limit:
            raise WireError(f"decoding would take more than {limit} bytes")
    if i != n:
        raise WireError("truncated message" if i > n else "trailing bytes")
    return total


def decodeLimit(size: int) -> int:
    """What decoding ``size`` bytes may cost: ``DECODE_FACTOR`` times the size, but for a
    large (part-sent) item at most twice its size plus ``DECODE_SLACK``, so that even a
    512 MiB item of tiny objects cannot take gigabytes; data (bytes values) costs about
    its size and passes."""
    return min(DECODE_FACTOR * size, 2 * size + DECODE_SLACK)


def decode(payload: bytes | bytearray | memoryview) -> Any:
    """Decode one message or item within its bound (see the module docstring)."""
    if len(payload) > SCAN_ABOVE:
        decodeCost(payload, decodeLimit(len(payload)))
    try:
        return msgpack.unpackb(payload, strict_map_key=False)
    except Exception as e:
        raise WireError(f"undecodable ({e})") from None


_PIECE = PART_SIZE - 64  # a part's share of the item: with its header, within PART_SIZE


BIG_LEAF = 64 << 10  # bytes this large are referred to, not copied, by ``segments``


def segments(obj: Any, pack: Any, out: list) -> list:
    """``obj`` packed as a list of pieces whose concatenation is its msgpack encoding,
    in which every bytes value of ``BIG_LEAF`` or more is the value itself (not a copy):
    so a 64 MiB value can be sent in parts without ever being copied whole."""
    kind = type(obj)
    if kind in (bytes, bytearray, memoryview) and len(obj) >= BIG_LEAF:
        out.append(b"\xc6" + len(obj).to_bytes(4, "big"))  # bin 32
        out.append(obj)
    elif kind in (list, tuple):
        out.append(_header(len(obj), 0x90, 0xDC))
        for x in obj:
            segments(x, pack, out)
    elif kind is dict:
        out.append(_header(len(obj), 0x80, 0xDE))
        for k, v in obj.items():
            segments(k, pack, out)
            segments(v, pack, out)
    else:
        out.append(pack(obj))
    return out


def _header(n: int, fix: int, wide: int) -> bytes:
    if n < 16:
        return bytes([fix | n])
    if n < 1 << 16:
        return bytes([wide]) + n.to_bytes(2, "big")
    return bytes([wide + 1]) + n.to_bytes(4, "big")


def parts(pieces: list, xid: int, pack: Any, version: int) -> Iterator[bytes]:
    """An item (packed, as one bytes or as ``segments``) cut into messages
    ``[version, [part]]`` of at most ``PART_SIZE`` bytes, each made when asked for: one
    copy of one part's data at a time."""
    size = sum(len(p) for p in pieces)
    count = -(-size // _PIECE)
    views = [memoryview(p) for p in pieces]
    at = 0  # the piece being cut, and how far into it
    offset = 0
    for index in range(count):
        want = min(_PIECE, size - index * _PIECE)
        taken: list = []
        while want:
            view = views[at]
            take = min(want, len(view) - offset)
            taken.append(view[offset:offset + take])
            offset += take
            want -= take
            if offset == len(view):
                at, offset = at + 1, 0
        data = taken[0] if len(taken) == 1 else b"".join(taken)
        yield pack([version, [["part", xid, index, count, size, data]]])


class _Assembly:
    __slots__ = ("buf", "count", "next", "size", "started")

    def __init__(self, count: int, size: int) -> None:
        self.buf = bytearray()
        self.count = count
        self.next = 0
        self.size = size
        self.started = time.monotonic()


class Assembler:
    """Puts part-sent items back together, per source; bounded in size and time."""

    def __init__(self, maxItem: int = MAX_ITEM, maxTotal: int = MAX_ASSEMBLING,
                 timeout: float = ASSEMBLY_TIMEOUT) -> None:
        self.maxItem = maxItem
        self.maxTotal = maxTotal
        self.timeout = timeout
        self.open: dict[tuple[Any, int], _Assembly] = {}
        self.held = 0  # bytes in every open assembly

    def feed(self, source: Any, part: list) -> bytearray | None:
        """Take one ``part`` item from ``source``; the whole item once its last part is
        in, else None. Raises WireError for a part out of order or over a bound (the
        item it belonged to is dropped)."""
        try:
            _, xid, index, count, size, data = part
        except ValueError:
            raise WireError("malformed part") from None
        if not (isinstance(xid, int) and isinstance(index, int) and isinstance(count, int)
                and isinstance(size, int) and isinstance(data, bytes)):
            raise WireError("malformed part")
        key = (source, xid)
        if index == 0:
            self._expire()
            if key in self.open:
                self._drop(key)
                raise WireError("a part-sent item started twice")
            if not 0 < size <= self.maxItem or not 0 < count <= size:
                raise WireError(f"a part-sent item of {size} bytes in {count} parts "
                                f"(at most {self.maxItem} bytes)")
            if self.held + size > self.maxTotal:
                raise WireError(f"too much being assembled ({self.held} bytes held)")
            assembly = self.open[key] = _Assembly(count, size)
            self.held += size
        else:
            assembly = self.open.get(key)
            if assembly is None:
                raise WireError(f"part {index} of an item whose first part never came")
        if index != assembly.next or assembly.count != count or assembly.size != size \
                or len(assembly.buf) + len(data) > size:
            self._drop(key)
            raise WireError("a part out of order or past its item's size")
        assembly.buf += data
        assembly.next += 1
        if assembly.next < count:
            return None
        self._drop(key)
        if len(assembly.buf) != size:
            raise WireError("a part-sent item shorter than announced")
        return assembly.buf

    def forget(self, source: Any) -> None:
        """Drop what ``source`` left half sent (it is gone)."""
        for key in [k for k in self.open if k[0] is source or k[0] == source]:
            self._drop(key)

    def _drop(self, key: tuple[Any, int]) -> None:
        assembly = self.open.pop(key, None)
        if assembly is not None:
            self.held -= assembly.size

    def _expire(self) -> None:
        if not self.open:
            return
        old = time.monotonic() - self.timeout
        for key in [k for k, a in self.open.items() if a.started < old]:
            self._drop(key)
