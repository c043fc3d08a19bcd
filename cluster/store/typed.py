"""What the store's data types share: their containers, Redis's names for them, fetching
a key of one type (``-WRONGTYPE`` for another), dropping a container once it is empty,
and the plain form a container takes to travel (shard handoff) or be stored.

A hash is a ``dict``, a list a ``deque``, a set a ``set`` and a sorted set a ``ZSet``
(a dict of scores beside a ``sortedcontainers.SortedList`` of keys that sort as (score,
member) do); a string stays ``bytes``. Containers change in place, so a command that
changes one tells the keyspace (``changed``), which is what makes WATCH see it.
"""

from __future__ import annotations

import math
import random
import re
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sortedcontainers import SortedList

from cluster.store import resp
from cluster.store.keyspace import Keyspace, WrongType

WRONGTYPE = resp.error("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INTEGER = resp.error("ERR value is not an integer or out of range")
NOT_FLOAT = resp.error("ERR value is not a valid float")
SYNTAX = resp.error("ERR syntax error")
INT64 = (-(2**63), 2**63 - 1)


_DOUBLE = struct.Struct(">d")
_INVERT = bytes(range(255, -1, -1))  # each byte's bits flipped


def scoreKey(score: float) -> bytes:
    """``score`` (not -0 or NaN) as 8 bytes that sort as scores do: its IEEE bits with the
    sign bit set (>= 0) or all bits flipped (< 0), so that sorting compares bytes."""
    return _DOUBLE.pack(-score) if score >= 0 else _DOUBLE.pack(score).translate(_INVERT)


def unkey(key: bytes) -> tuple[float, bytes]:
    """The (score, member) of a ZSet's key (decoded: faster than reading ``scores``)."""
    if key[0] >= 0x80:
        return -_DOUBLE.unpack_from(key)[0], key[8:]
    return _DOUBLE.unpack(key[:8].translate(_INVERT))[0], key[8:]


class _Order(SortedList):
    """A sorted set's keys in order. Sublists of 200 to 400 keys, not sortedcontainers'
    1,000 to 2,000: a score update's removal and insertion move less memory (measured end
    to end with redis-benchmark's ZADD: about 0.5 µs less CPU per request)."""

    DEFAULT_LOAD_FACTOR = 200


class ZSet:
    """A sorted set: each member's score, and in ``order`` each member's key,
    ``scoreKey(score) + member``: bytes compare as Redis orders a sorted set (by score,
    then member), and faster than (score, member) tuples."""

    __slots__ = ("scores", "order")

    def __init__(self, scores: Iterable[tuple[bytes, float]] = ()) -> None:
        self.scores: dict[bytes, float] = {member: score + 0.0  # -0 as 0, as Redis has it
                                           for member, score in scores}
        self.order: SortedList = _Order([scoreKey(score) + member
                                         for member, score in self.scores.items()])

    def add(self, member: bytes, score: float) -> None:
        """Set ``member``'s score (not -0: callers store 0, as Redis does)."""
        self.update(member, self.scores.get(member), score)

    def update(self, member: bytes, old: float | None, score: float) -> None:
        """``add``, for a caller that has read the member's ``old`` score already."""
        order = self.order
        if old is not None:
            order.remove(scoreKey(old) + member)
        self.scores[member] = score
        order.add(scoreKey(score) + member)

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove(scoreKey(score) + member)
        return True

    def __len__(self) -> int:
        return len(self.scores)

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        return None if score is None else self.order.index(scoreKey(score) + member)


KINDS: dict[type, str] = {bytes: "string", dict: "hash", deque: "list", set: "set",
                          ZSet: "zset"}


def fetch(ks: Keyspace, key: bytes, kind: type) -> Any:
    """The container at ``key`` (None: no such key); WrongType if it holds another type."""
    value = ks.value(key)
    if value is None or type(value) is kind:
        return value
    raise WrongType(key)


def create(ks: Keyspace, key: bytes, kind: Callable[[], Any]) -> Any:
    """The container at ``key``, made empty if there is none (check the arguments first:
    an empty container must not outlive the command)."""
    value = fetch(ks, key, kind)  # type: ignore[arg-type]
    if value is None:
        value = kind()
        ks.set(key, value)
    return value


def changed(ks: Keyspace, key: bytes, value: Any) -> None:
    """``value`` (at ``key``) was changed in place: an empty one goes, as in Redis."""
    if not value:
        ks.delete(key)
    elif ks.watched:
        ks.touch(key)


NOT_POSITIVE = resp.error("ERR value is out of range, must be positive")
INVALID_CURSOR = resp.error("ERR invalid cursor")
EMPTY_SCAN = resp.array([resp.bulk(b"0"), resp.EMPTY_ARRAY])
_CURSOR = re.compile(rb"([+-]?[0-9]+)?")  # what C's strtoul reads whole (nothing: 0)


def popCount(args: list[bytes]) -> int | bytes:
    """SPOP's and ZPOPMIN/ZPOPMAX's ``key [count]``: the count (1 without one), or the
    error reply."""
    if len(args) > 3:
        return SYNTAX
    count = toInt(args[2]) if len(args) == 3 else 1
    return NOT_POSITIVE if count is None or count < 0 else count


def badCursor(cursor: bytes) -> bool:
    """HSCAN/SSCAN/ZSCAN's cursor is not one (as Redis reads it: strtoul, no spaces)."""
    return _CURSOR.fullmatch(cursor) is None or abs(int(cursor or b"0")) >= 2**64


MAX_PICKS = 1_000_000  # random picks with repeats one HRANDFIELD/SRANDMEMBER/... may ask
TOO_MANY_PICKS = resp.error(f"ERR a negative count asks for at most {MAX_PICKS} random "
                            f"picks on this store")
RANDOM_RANGE = resp.error("ERR value is out of range, value must between "
                          "-9223372036854775807 and 9223372036854775807")


def picks(items: Sequence[Any], count: int) -> list[Any] | bytes:
    """HRANDFIELD/SRANDMEMBER/ZRANDMEMBER's picks: ``count`` distinct items (all of them
    if fewer), or -``count`` with repeats; the error reply past the bound, since the
    reply's size is the client's to choose and Redis's only limit is memory."""
    if count == INT64[0]:
        return RANDOM_RANGE
    if count < 0:
        if -count > MAX_PICKS:
            return TOO_MANY_PICKS
        return random.choices(items, k=-count)
    return list(items) if count >= len(items) else random.sample(items, count)


def typeName(value: Any) -> str:
    return KINDS[type(value)]


# -- the plain form (msgpack-able: bytes, ints, floats, lists) ----------------------------

_CODES = {dict: 1, deque: 2, set: 3, ZSet: 4}


def plain(value: Any) -> Any:
    """A value as bytes (a string) or [type code, flat items] (a container)."""
    kind = type(value)
    if kind is bytes:
        return value
    if kind is dict:
        return [1, [x for pair in value.items() for x in pair]]
    if kind is ZSet:
        return [4, [x for pair in value.scores.items() for x in pair]]
    return [_CODES[kind], list(value)]


def fromPlain(obj: Any) -> Any:
    """The value ``plain`` gave (checked: TypeError for anything else)."""
    if type(obj) is bytes:
        return obj
    if type(obj) is not list or len(obj) != 2 or obj[0] not in (1, 2, 3, 4) \
            or type(obj[1]) is not list:
        raise TypeError("a stored value is bytes or [type, items]")
    code, items = obj
    pairs = code in (1, 4)
    if pairs and len(items) % 2:
        raise TypeError("a hash or sorted set's items come in pairs")
    for i, item in enumerate(items):
        ok = type(item) in (int, float) if code == 4 and i % 2 else type(item) is bytes
        if not ok:
            raise TypeError("a stored container holds bytes (and float scores)")
    if code == 1:
        return dict(zip(items[::2], items[1::2], strict=True))
    if code == 2:
        return deque(items)
    if code == 3:
        return set(items)
    return ZSet(zip(items[::2], items[1::2], strict=True))


def size(value: Any) -> int:
    """About how many bytes ``value`` holds (for sizing handoff chunks)."""
    if type(value) is bytes:
        return len(value)
    if type(value) is dict:
        return sum(len(k) + len(v) for k, v in value.items()) or 1
    if type(value) is ZSet:
        return sum(len(m) + 8 for m in value.scores) or 1
    return sum(map(len, value)) or 1


# -- numbers as Redis reads and writes them ------------------------------------------------

_INTEGER = re.compile(rb"-?[1-9][0-9]{0,19}|0")


def toInt(value: bytes) -> int | None:
    """A 64-bit integer as Redis parses one (None: not one; no sign but '-', no leading
    zero, no space)."""
    if _INTEGER.fullmatch(value) is None:
        return None
    n = int(value)
    return n if INT64[0] <= n <= INT64[1] else None


def toFloat(value: bytes, finite: bool = False) -> float | None:
    """A double as Redis parses one (``inf``, ``-inf``, ``+inf`` allowed unless
    ``finite``); None: not one (NaN is never one)."""
    if not value or value != value.strip() or b"_" in value:
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    if math.isnan(x) or (finite and math.isinf(x)):
        return None
    return x


def formatFloat(x: float) -> bytes:
    """A score as Redis 7.0 writes it (%.17g)."""
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    return b"%.17g" % x


# INCRBYFLOAT and HINCRBYFLOAT compute in C's long double (x86: 64 bits of mantissa) and
# write "%.17Lf" less its trailing zeros: done here exactly, with fractions
_LONG_DOUBLE = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,5})?")
_INFINITE = {b"inf", b"+inf", b"-inf", b"infinity", b"+infinity", b"-infinity"}
LONG_DOUBLE_MAX = Fraction(2) ** 16384  # past it, and below its smallest, is out of range


def toLongDouble(text: bytes) -> Fraction | float | None:
    """A long double as Redis reads one (strtold, no spaces): a Fraction rounded to 64
    bits of mantissa, +-inf as a float, None if it is not one or is out of range."""
    if len(text) >= 5120:  # (Redis's MAX_LONG_DOUBLE_CHARS: parsing is not linear)
        return None
    if text.lower() in _INFINITE:
        return float(text.lower().replace(b"inity", b""))
    if _LONG_DOUBLE.fullmatch(text) is None:
        if not text.lower().lstrip(b"+-").startswith(b"0x"):
            return None
        try:
            return _rounded(Fraction(float.fromhex(text.decode())))
        except ValueError:
            return None
    x = _rounded(Fraction(Decimal(text.decode())))
    return x if x == 0 or Fraction(1, 2) ** 16382 <= abs(x) < LONG_DOUBLE_MAX else None


def _rounded(x: Fraction) -> Fraction:
    """``x`` to the nearest long double (64 significant bits, ties to even)."""
    if x == 0:
        return x
    exponent = abs(x.numerator).bit_length() - x.denominator.bit_length()
    scale = Fraction(2) ** (63 - exponent)
    return Fraction(round(x * scale)) / scale


def addLongDouble(old: bytes, delta: bytes) -> bytes | tuple[str]:
    """``old`` + ``delta`` as Redis's INCRBYFLOAT writes it; a 1-tuple naming the
    operand that is not a number ('old' or 'delta') or ('inf',) for an infinite result."""
    a, b = toLongDouble(old), toLongDouble(delta)
    if a is None:
        return ("old",)
    if b is None:
        return ("delta",)
    if isinstance(a, float) or isinstance(b, float):
        return ("inf",)
    total = _rounded(a + b)
    if abs(total) >= LONG_DOUBLE_MAX:
        return ("inf",)
    hundred = round(total * 10**17)  # %.17Lf: ties to even, as printf rounds
    sign = "-" if hundred < 0 else ""
    whole, part = divmod(abs(hundred), 10**17)
    text = f"{sign}{whole}.{part:017d}".rstrip("0").rstrip(".")
    return b"0" if text == "-0" else text.encode()


def score(x: float, r3: bool) -> bytes:
    """A score reply: RESP3's double, or RESP2's bulk string."""
    if r3:
        return b",%s\r\n" % formatFloat(x)
    return resp.bulk(formatFloat(x))


def pairs(items: Iterable[bytes], count: int, r3: bool) -> bytes:
    """A map of ``count`` already-encoded key, value pairs (RESP2: a flat array)."""
    return (b"%%%d\r\n" % count if r3 else b"*%d\r\n" % (2 * count)) + b"".join(items)


def members(items: list[bytes], r3: bool) -> bytes:
    """A set of bulk strings (RESP3's set type; RESP2: an array)."""
    return (b"~%d\r\n" if r3 else b"*%d\r\n") % len(items) + b"".join(map(resp.bulk, items))


def nil(r3: bool) -> bytes:
    return resp.NULL3 if r3 else resp.NIL


def nilArray(r3: bool) -> bytes:
    return resp.NULL3 if r3 else resp.NIL_ARRAY


# -- MATCH patterns (KEYS, SCAN and the type SCANs), as Redis's stringmatch ---------------

def matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """A test for Redis's glob pattern: ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]`` and
    ``\\`` escaping the next character. The parts between stars are placed leftmost, each
    found by a regular expression without repetition (C speed, no backtracking across
    stars), so a test costs about O(pattern x key) at worst, never exponential time."""
    tokens = _globTokens(pattern)
    parts: list[list[Any]] = [[]]
    for token in tokens:
        if token is None:
            parts.append([])
        else:
            parts[-1].append(token)
    regexes = [re.compile(b"".join(map(_tokenRegex, part)), re.DOTALL) for part in parts]
    sizes = [len(part) for part in parts]
    if len(parts) == 1:
        return lambda s: regexes[0].fullmatch(s) is not None
    first, last, middle = regexes[0], regexes[-1], regexes[1:-1]
    needed = sum(sizes)

    def test(s: bytes) -> bool:
        if len(s) < needed or first.match(s) is None:
            return False
        end = len(s) - sizes[-1]
        if last.fullmatch(s, end) is None:
            return False
        pos = sizes[0]
        for regex, size in zip(middle, sizes[1:-1], strict=True):
            found = regex.search(s, pos, end)
            if found is None:
                return False
            pos = found.start() + size
        return True

    return test


def _tokenRegex(token: Any) -> bytes:
    if token is True:
        return b"."
    if type(token) is int:
        return re.escape(bytes([token]))
    negate, members = token
    if not members:
        return b"." if negate else b"(?!)"
    return b"[" + (b"^" if negate else b"") + b"".join(
        re.escape(bytes([m])) for m in sorted(members)) + b"]"


def _globTokens(pattern: bytes) -> list[Any]:
    """The pattern as tokens: None for ``*``, True for ``?``, a byte value, or a
    (negate, set of byte values) class."""
    out: list[Any] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 42:  # *
            if not out or out[-1] is not None:
                out.append(None)
        elif c == 63:  # ?
            out.append(True)
        elif c == 92 and i + 1 < n:  # backslash
            i += 1
            out.append(pattern[i])
        elif c == 91:  # [
            i += 1
            negate = i < n and pattern[i] == 94
            i += negate
            members: set[int] = set()
            while i < n and pattern[i] != 93:
                if pattern[i] == 92 and i + 1 < n:
                    i += 1
                    members.add(pattern[i])
                elif i + 2 < n and pattern[i + 1] == 45:  # (a-] too, as Redis reads it)
                    lo, hi = sorted((pattern[i], pattern[i + 2]))
                    members.update(range(lo, hi + 1))
                    i += 2
                else:
                    members.add(pattern[i])
                i += 1
            out.append((negate, members))
        else:
            out.append(c)
        i += 1
    return out


def scanArgs(args: list[bytes], start: int) -> tuple[Callable[[bytes], bool] | None,
                                                     int, bytes | None, bytes | None]:
    """SCAN-family options from ``args[start:]``: MATCH test, COUNT, TYPE, or an error."""
    match, count, kind, i = None, 10, None, start
    while i < len(args):
        option = args[i].upper()
        if i + 1 >= len(args):
            return None, 0, None, SYNTAX
        if option == b"MATCH":
            match = matcher(args[i + 1]) if args[i + 1] != b"*" else None
        elif option == b"COUNT":
            n = toInt(args[i + 1])
            if n is None:
                return None, 0, None, NOT_INTEGER
            if n < 1:
                return None, 0, None, SYNTAX
            count = n
        elif option == b"TYPE":
            kind = args[i + 1].lower()
        else:
            return None, 0, None, SYNTAX
        i += 2
    return match, count, kind, None
