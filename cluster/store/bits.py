"""Bit commands on strings (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
BITFIELD_RO) and LCS, with Redis's replies and errors. A string is ``bytes``, its bits
numbered from the most significant bit of its first byte; reading past its end reads
zeros. A command that changes bits replaces the value and keeps its time to live, as
Redis does; BITOP's destination loses its own, as Redis's does. Each command takes the
keyspace, the request and whether the client speaks RESP3, and returns the encoded reply.

LCS finds the longest common subsequence with the bit-parallel form of the usual dynamic
programming (Hyyrö's): one integer per prefix of the first string holds that row of the
table, the walk back through it (which Redis's replies follow) reads its lengths by
counting set bits, and the table takes 1/32 of the memory of Redis's. Redis refuses pairs whose
table would pass 512 MiB, and so does this.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce
from typing import NamedTuple

from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace
from cluster.store.typed import NOT_INTEGER, SYNTAX

MAX_BYTES = 512 << 20  # Redis's proto-max-bulk-len: no bit offset at or past it
_BAD_OFFSET = resp.error("ERR bit offset is not an integer or out of range")
_BAD_BIT = resp.error("ERR bit is not an integer or out of range")
_BAD_TYPE = resp.error("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 "
                       "is not supported but i64 is.")
_BITOPS: dict[bytes, Callable[[int, int], int]] = {
    b"AND": operator.and_, b"OR": operator.or_, b"XOR": operator.xor}


def _offset(arg: bytes, width: int = 0) -> int | None:
    """A bit offset (BITFIELD's ``#n``: n fields of ``width`` bits), None if it is not one
    or is out of range."""
    hashed = width > 0 and arg[:1] == b"#"
    n = typed.toInt(arg[1:] if hashed else arg)
    if n is None:
        return None
    n *= width if hashed else 1
    return n if n >= 0 and n >> 3 < MAX_BYTES else None


def _grown(value: bytes | None, size: int) -> bytearray:
    """``value`` as a bytearray of at least ``size`` bytes, zeros added."""
    data = bytearray(value or b"")
    if len(data) < size:
        data.extend(bytes(size - len(data)))
    return data


def _put(ks: Keyspace, key: bytes, old: bytes | None, new: bytes) -> None:
    """Replace ``old`` (None: no key) with ``new``, keeping the key's time to live."""
    deadline = ks.expires.get(key) if old is not None else None
    ks.set(key, new)
    if deadline is not None:
        ks.expireAt(key, deadline)


def _bitsOf(value: bytes | bytearray, first: int, last: int) -> int:
    """Bits ``first``..``last`` of ``value`` (zeros past its end) as an integer."""
    lo, hi = first >> 3, (last >> 3) + 1
    chunk = value[lo:hi]
    n = int.from_bytes(chunk, "big") << 8 * (hi - lo - len(chunk))
    return (n >> (7 - (last & 7))) & ((1 << (last - first + 1)) - 1)


# -- single bits, counts and positions -------------------------------------------------------

def setbit(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    offset = _offset(args[2])
    if offset is None:
        return _BAD_OFFSET
    on = typed.toInt(args[3])
    if on not in (0, 1):
        return _BAD_BIT
    old = ks.get(args[1])
    data = _grown(old, (offset >> 3) + 1)
    mask = 0x80 >> (offset & 7)
    was = data[offset >> 3] & mask
    data[offset >> 3] ^= was ^ (mask if on else 0)
    _put(ks, args[1], old, bytes(data))
    return resp.ONE if was else resp.ZERO


def getbit(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    offset = _offset(args[2])
    if offset is None:
        return _BAD_OFFSET
    value = ks.get(args[1]) or b""
    byte = offset >> 3
    return resp.ONE if byte < len(value) and value[byte] & (0x80 >> (offset & 7)) \
        else resp.ZERO


def _unit(word: bytes) -> bool | None:
    """BIT (True) or BYTE (False), BITCOUNT's and BITPOS's unit; None: neither."""
    return {b"BIT": True, b"BYTE": False}.get(word.upper())


def _span(start: int, end: int, size: int, inBits: bool) -> tuple[int, int]:
    """The bits that Redis's range start..end of bytes (or bits) of a ``size``-byte string
    covers, negative ends counting from the end; empty when the first is past the last."""
    total = size * 8 if inBits else size
    start, end = (x + total if x < 0 else x for x in (start, end))
    start, end = max(start, 0), min(max(end, 0), total - 1)
    return (start, end) if inBits else (start * 8, end * 8 + 7)


def bitcount(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """BITCOUNT key [start end [BYTE|BIT]]."""
    value = ks.get(args[1])
    if value is None:
        return resp.ZERO
    if len(args) == 2:
        return resp.integer(int.from_bytes(value, "big").bit_count())
    if len(args) not in (4, 5):
        return SYNTAX
    start, end = typed.toInt(args[2]), typed.toInt(args[3])
    if start is None or end is None:
        return NOT_INTEGER
    inBits = _unit(args[4]) if len(args) == 5 else False
    if inBits is None:
        return SYNTAX
    first, last = _span(start, end, len(value), inBits)
    if (start < 0 and end < 0 and start > end) or first > last:
        return resp.ZERO
    return resp.integer(_bitsOf(value, first, last).bit_count())


def bitpos(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """BITPOS key bit [start [end [BYTE|BIT]]]: -1 where the range has no such bit, but a
    clear bit is found just past the string when no end is given."""
    bit = typed.toInt(args[2])
    if bit is None:
        return NOT_INTEGER
    if bit not in (0, 1):
        return resp.error("ERR The bit argument must be 1 or 0.")
    value = ks.get(args[1])
    if value is None:
        return resp.integer(-1 if bit else 0)
    if len(args) > 6:
        return SYNTAX
    first, last, endGiven = 0, 8 * len(value) - 1, len(args) > 4
    if len(args) > 3:
        start = typed.toInt(args[3])
        if start is None:
            return NOT_INTEGER
        inBits = _unit(args[5]) if len(args) == 6 else False
        if inBits is None:
            return SYNTAX
        end = typed.toInt(args[4]) if endGiven else -1
        if end is None:
            return NOT_INTEGER
        first, last = _span(start, end, len(value), inBits)
    if first > last:
        return resp.integer(-1)
    width = last - first + 1
    found = _bitsOf(value, first, last) ^ (0 if bit else (1 << width) - 1)
    if found:
        return resp.integer(first + width - found.bit_length())
    return resp.integer(-1 if bit or endGiven else last + 1)


def bitop(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """BITOP AND|OR|XOR|NOT destkey key [key ...]: shorter strings read as zero-padded;
    an empty result deletes the destination."""
    op = args[1].upper()
    if op not in _BITOPS and op != b"NOT":
        return SYNTAX
    if op == b"NOT" and len(args) != 4:
        return resp.error("ERR BITOP NOT must be called with a single source key.")
    values = [ks.get(key) or b"" for key in args[3:]]
    size = max(map(len, values))
    if not size:
        ks.delete(args[2])
        return resp.ZERO
    numbers = [int.from_bytes(v, "big") << 8 * (size - len(v)) for v in values]
    full = (1 << 8 * size) - 1
    result = numbers[0] ^ full if op == b"NOT" else reduce(_BITOPS[op], numbers)
    ks.set(args[2], result.to_bytes(size, "big"))
    return resp.integer(size)


# -- BITFIELD ------------------------------------------------------------------------------

class _Field(NamedTuple):
    """One BITFIELD operation: GET, SET or INCRBY of a field, with its overflow rule."""
    name: bytes
    signed: bool
    width: int
    offset: int
    amount: int
    overflow: bytes

    @property
    def limits(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1


def _fieldType(arg: bytes) -> tuple[bool, int] | None:
    """i<bits> (1..64) or u<bits> (1..63): (signed, bits); None if it is neither."""
    signed = arg[:1].lower() == b"i"
    width = typed.toInt(arg[1:])
    if arg[:1].lower() not in (b"i", b"u") or width is None \
            or not 1 <= width <= (64 if signed else 63):
        return None
    return signed, width


def _fields(args: list[bytes]) -> list[_Field] | bytes:
    """BITFIELD's operations, in order, or the error reply."""
    fields: list[_Field] = []
    overflow, i = b"WRAP", 2
    while i < len(args):
        word, left = args[i].upper(), len(args) - i - 1
        if word == b"OVERFLOW" and left >= 1:
            overflow = args[i + 1].upper()
            if overflow not in (b"WRAP", b"SAT", b"FAIL"):
                return resp.error("ERR Invalid OVERFLOW type specified")
            i += 2
            continue
        if not ((word == b"GET" and left >= 2) or (word in (b"SET", b"INCRBY") and left >= 3)):
            return SYNTAX
        kind = _fieldType(args[i + 1])
        if kind is None:
            return _BAD_TYPE
        offset = _offset(args[i + 2], kind[1])
        if offset is None:
            return _BAD_OFFSET
        amount = 0 if word == b"GET" else typed.toInt(args[i + 3])
        if amount is None:
            return NOT_INTEGER
        fields.append(_Field(word, *kind, offset, amount, overflow))
        i += 3 if word == b"GET" else 4
    return fields


def _read(data: bytes | bytearray, f: _Field) -> int:
    n = _bitsOf(data, f.offset, f.offset + f.width - 1)
    return n - (1 << f.width) if f.signed and n >> (f.width - 1) else n


def _write(data: bytearray, f: _Field, n: int) -> None:
    lo, hi = f.offset >> 3, ((f.offset + f.width - 1) >> 3) + 1
    shift = 8 * hi - f.offset - f.width
    mask = ((1 << f.width) - 1) << shift
    old = int.from_bytes(data[lo:hi], "big")
    data[lo:hi] = ((old & ~mask) | ((n << shift) & mask)).to_bytes(hi - lo, "big")


def _target(f: _Field, old: int) -> int | None:
    """The value a SET or INCRBY writes, after its overflow rule; None: FAIL."""
    lo, hi = f.limits
    if f.name == b"INCRBY":
        total = old + f.amount
    elif f.signed:
        total = f.amount
    else:  # an unsigned SET reads its value as C's uint64_t: a negative one overflows
        total = f.amount % 2**64
    if lo <= total <= hi:
        return total
    if f.overflow == b"FAIL":
        return None
    if f.overflow == b"SAT":
        return hi if total > hi else lo
    wrapped = total % (1 << f.width)
    return wrapped - (1 << f.width) if wrapped > hi else wrapped


def _run(data: bytearray, f: _Field, r3: bool) -> bytes:
    """One operation on ``data``: its reply."""
    old = _read(data, f)
    if f.name == b"GET":
        return resp.integer(old)
    new = _target(f, old)
    if new is None:
        return typed.nil(r3)
    _write(data, f, new)
    return resp.integer(old if f.name == b"SET" else new)


def bitfield(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset n]
    [OVERFLOW WRAP|SAT|FAIL] ... (and BITFIELD_RO, GET only). A write makes room for
    every field it writes, even one that FAIL leaves alone."""
    fields = _fields(args)
    if type(fields) is bytes:
        return fields
    writes = [f for f in fields if f.name != b"GET"]
    if writes and args[0].upper() == b"BITFIELD_RO":
        return resp.error("ERR BITFIELD_RO only supports the GET subcommand")
    old = ks.get(args[1])
    if not writes:
        return resp.array([resp.integer(_read(old or b"", f)) for f in fields])
    data = _grown(old, max(((f.offset + f.width - 1) >> 3) + 1 for f in writes))
    replies = [_run(data, f, r3) for f in fields]
    _put(ks, args[1], old, bytes(data))
    return resp.array(replies)


# -- LCS -----------------------------------------------------------------------------------

# per byte value c, a table turning a string into "1" where it holds c, else "0"
_DIGITS = [bytes(49 if x == c else 48 for x in range(256)) for c in range(256)]


def _lcsRows(a: bytes, b: bytes) -> list[int]:
    """Hyyrö's bit vectors: row i has bit j set unless LCS(a[:i], b[:j+1]) is one more
    than LCS(a[:i], b[:j]). O(len(a) * len(b) / word size), as are the masks."""
    full = (1 << len(b)) - 1
    backward = b[::-1]  # (bit j of a mask: b[j])
    masks = {c: int(backward.translate(_DIGITS[c]), 2) for c in set(a) & set(b)}
    v, rows = full, [full]
    for c in a:
        u = v & masks.get(c, 0)
        v = ((v + u) | (v - u)) & full
        rows.append(v)
    return rows


class _Row:
    """A row of ``_lcsRows`` read from right to left: its bits left of the column reached
    (each read in O(1)) and how many of them are set."""

    __slots__ = ("bits", "below")

    def __init__(self, row: int, column: int) -> None:
        row &= (1 << column) - 1
        self.bits = row.to_bytes(column // 8 + 1, "little")
        self.below = row.bit_count()

    def bit(self, column: int) -> int:
        return self.bits[column >> 3] >> (column & 7) & 1

    def left(self, column: int) -> _Row:
        """Move one column left, to ``column``."""
        self.below -= self.bit(column)
        return self


def _lcsWalk(a: bytes, b: bytes, rows: list[int]) -> tuple[bytes, list[tuple[int, ...]]]:
    """The LCS, and its runs (start and end in ``a``, in ``b``), last first, as Redis's
    walk back through the table finds them: LCS(i, j) is j less the row's set bits below
    j, kept for rows i (``here``) and i - 1 (``up``) as the walk moves."""
    i, j = len(a), len(b)
    chars: list[int] = []
    runs: list[tuple[int, ...]] = []
    run: tuple[int, ...] | None = None  # (a start, a end, b start, b end) being extended
    here = _Row(rows[i], j)
    up = _Row(rows[i - 1], j) if i else here
    while i > 0 and j > 0:
        if a[i - 1] == b[j - 1]:
            chars.append(a[i - 1])
            i, j = i - 1, j - 1
            run = (i, i, j, j) if run is None else (i, run[1], j, run[3])
            here = up.left(j)
            if i and j:
                up = _Row(rows[i - 1], j)
                continue
        elif j - up.below > (j - 1) - (here.below - here.bit(j - 1)):
            i -= 1
            here = up
            up = _Row(rows[i - 1], j) if i else here
        else:
            j -= 1
            here.left(j)
            up.left(j)
        if run is not None:
            runs.append(run)
            run = None
    return bytes(reversed(chars)), runs


def _lcsOptions(args: list[bytes]) -> tuple[set[bytes], int] | bytes:
    """LCS's flags (LEN, IDX, WITHMATCHLEN) and MINMATCHLEN, or the error reply."""
    flags: set[bytes] = set()
    least, i = 0, 3
    while i < len(args):
        word = args[i].upper()
        if word in (b"LEN", b"IDX", b"WITHMATCHLEN"):
            flags.add(word)
        elif word == b"MINMATCHLEN" and i + 1 < len(args):
            n = typed.toInt(args[i + 1])
            if n is None:
                return NOT_INTEGER
            least, i = max(n, 0), i + 1
        else:
            return SYNTAX
        i += 1
    if {b"LEN", b"IDX"} <= flags:
        return resp.error("ERR If you want both the length and indexes, please just use IDX.")
    return flags, least


def _matches(runs: list[tuple[int, ...]], least: int, withLength: bool) -> bytes:
    """IDX's matches: runs of at least ``least`` bytes, each [[a range], [b range]] and
    maybe its length."""
    out = []
    for aStart, aEnd, bStart, bEnd in runs:
        size = aEnd - aStart + 1
        if size >= least:
            ranges = [resp.array([resp.integer(aStart), resp.integer(aEnd)]),
                      resp.array([resp.integer(bStart), resp.integer(bEnd)])]
            out.append(resp.array(ranges + [resp.integer(size)] * withLength))
    return resp.array(out)


def lcs(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN] (a missing key reads as an
    empty string)."""
    values = [ks.value(args[1]), ks.value(args[2])]
    if any(v is not None and type(v) is not bytes for v in values):
        return resp.error("ERR The specified keys must contain string values")
    options = _lcsOptions(args)
    if type(options) is bytes:
        return options
    flags, least = options
    a, b = (v or b"" for v in values)
    if (len(a) + 1) * (len(b) + 1) * 4 > MAX_BYTES:
        return resp.error("ERR Insufficient memory, transient memory for LCS exceeds "
                          "proto-max-bulk-len")
    rows = _lcsRows(a, b)
    size = len(b) - rows[-1].bit_count()
    if b"LEN" in flags:
        return resp.integer(size)
    common, runs = _lcsWalk(a, b, rows)
    if b"IDX" not in flags:
        return resp.bulk(common)
    return typed.pairs([resp.bulk(b"matches"), _matches(runs, least, b"WITHMATCHLEN" in flags),
                        resp.bulk(b"len"), resp.integer(size)], 2, r3)


# name -> (function, arity as Redis counts it)
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"SETBIT": (setbit, 4), b"GETBIT": (getbit, 3), b"BITCOUNT": (bitcount, -2),
    b"BITPOS": (bitpos, -3), b"BITFIELD": (bitfield, -2), b"BITFIELD_RO": (bitfield, -2),
}
# name -> (function, arity, first key, last key, key step), as COMMAND INFO reports them
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"BITOP": (bitop, -4, 2, -1, 1), b"LCS": (lcs, -3, 1, 2, 1),
}
READS = {b"GETBIT", b"BITCOUNT", b"BITPOS", b"BITFIELD_RO", b"LCS"}
