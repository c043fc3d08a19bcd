"""Sorted set commands (ZADD, ZRANGE, ... ZUNIONSTORE), with Redis's replies and errors.

A sorted set is a ``typed.ZSet``: each member's score, and a ``SortedList`` of keys in
Redis's order (8 bytes of score that sort as it does, then the member). Ranges are found
by bisecting that list with keys that sort just before or just after the elements a
range's end names (``_end``), so a range costs O(log n + m). Each command takes the
keyspace, the request and whether the client speaks RESP3 (scores are doubles there, and
WITHSCORES pairs [member, score]), and returns the encoded reply. As Redis 7.0 does for a
small sorted set, -0 is stored as 0, and ZSCAN writes whole scores up to 2**62 as
integers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable

from sortedcontainers import SortedList

from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace, WrongType
from cluster.store.typed import NOT_FLOAT, NOT_INTEGER, SYNTAX, ZSet, changed, create, fetch

_NAN = resp.error("ERR resulting score is not a number (NaN)")
_NOT_SCORES = resp.error("ERR min or max is not a float")
_NOT_LEX = resp.error("ERR min or max not valid string range item")
_OUT_OF_RANGE = resp.error("ERR value is out of range")
_SPACE = b" \t\n\r\x0b\x0c"  # C's isspace
_INFINITIES = (math.inf, -math.inf)
_HALF_LONG = 2**62 - 1  # ZRANDMEMBER's count with WITHSCORES: at most LONG_MAX / 2
RANK, SCORE, LEX = b"RANK", b"BYSCORE", b"BYLEX"


def _zset(ks: Keyspace, key: bytes) -> ZSet | None:
    return fetch(ks, key, ZSet)


# -- numbers as Redis reads and writes them ------------------------------------------------

def _strtod(text: bytes) -> float | None:
    """C's strtod over all of ``text`` (None: it stops short): leading spaces and
    hexadecimal allowed; out of range, +-inf or 0, as strtod gives."""
    if b"_" in text or text[-1:].isspace():  # float() allows both; strtod neither
        return None
    try:
        return float(text)
    except ValueError:
        return _hex(text)


def _hex(text: bytes) -> float | None:
    """A hexadecimal double ("0x1.8p3", maybe after spaces and a sign) as strtod reads it
    (None: not one)."""
    body = text.lstrip(_SPACE)
    sign = -1.0 if body[:1] == b"-" else 1.0
    digits = body[1:] if body[:1] in (b"+", b"-") else body
    if digits[:2].lower() != b"0x":
        return None
    try:
        return sign * float.fromhex(digits.decode())
    except OverflowError:
        return sign * math.inf
    except ValueError:
        return None


def _double(text: bytes) -> float | None:
    """A score, increment or weight as Redis reads one (string2d): strtod over all of
    ``text``, no space around it, not NaN, not out of range (None: not one)."""
    if text.isdigit() and len(text) < 309:  # the commonest: too few digits to overflow
        return float(text)
    try:
        x = float(text)
    except ValueError:
        x = _hex(text)
    if x is None or x != x or b"_" in text or text[:1].isspace() or text[-1:].isspace():
        return None
    if x == 0 or x in _INFINITIES:
        lower = text.lower()
        if x:
            return x if b"inf" in lower else None  # else it overflowed
        mantissa = lower.split(b"p")[0] if b"x" in lower else lower.split(b"e")[0]
        if mantissa.strip(b"+-.0x"):
            return None  # a digit but 0 in it: it underflowed
    return x


def _scanScore(x: float) -> bytes:
    """A score as ZSCAN writes it (d2string): whole numbers within 2**62 as integers."""
    return b"%d" % x if x.is_integer() and -2**62 <= x <= 2**62 else typed.formatFloat(x)


# -- ranges: by rank, by score, by member (lex) ----------------------------------------------

class _Top:
    """Sorts after every member: a lex range's "+"."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True


TOP = _Top()
_AFTER_ALL = b"\xff" * 9  # sorts after every key (+inf's starts ff f0)


def _end(text: bytes, by: bytes, high: bool) -> bytes | _Top | None:
    """One end of a score or lex range as a key that sorts just before the elements it
    names (an inclusive low end, an exclusive high end) or just after them (the others);
    None if it is not one. A score key compares with a ZSet's keys, a lex key with
    members."""
    after = (text[:1] == b"(") != high
    if by == LEX:
        if text in (b"-", b"+"):
            return b"" if text == b"-" else TOP
        if text[:1] not in (b"[", b"("):
            return None
        return text[1:] + b"\x00" if after else text[1:]
    body = text[1:] if text[:1] == b"(" else text
    value = _strtod(body) if body else 0.0  # strtod reads "" as 0, as Redis takes it
    if value is None or value != value:
        return None
    if after:  # before the next score's keys
        if value == math.inf:
            return _AFTER_ALL
        value = math.nextafter(value, math.inf)
    return typed.scoreKey(value + 0.0)  # (-0 is 0 in a sorted set)


def _ends(by: bytes, first: bytes, last: bytes) -> tuple | bytes:
    """A range's two ends as ``by`` reads them (ranks, or keys as ``_end`` makes them), or
    the error reply."""
    if by == RANK:
        ranks = typed.toInt(first), typed.toInt(last)
        return NOT_INTEGER if None in ranks else ranks
    ends = _end(first, by, False), _end(last, by, True)
    if None in ends:
        return _NOT_LEX if by == LEX else _NOT_SCORES
    return ends


def _positions(z: ZSet, by: bytes, ends: tuple, rev: bool) -> range:
    """Where the range's elements are in ``z.order``, in the reply's order."""
    order = z.order
    if by == RANK:
        n = len(order)
        start, end = (i + n if i < 0 else i for i in ends)
        start, end = max(start, 0), min(end, n - 1)
        if start > end:
            return range(0)
        return range(n - 1 - start, n - 2 - end, -1) if rev else range(start, end + 1)
    lo, hi = ends
    if by == SCORE:
        span = range(order.bisect_left(lo), order.bisect_left(hi))
    else:
        span = _lexSpan(order, lo, hi, rev)
    return span[::-1] if rev else span


def _lexSpan(order: SortedList, lo: bytes | _Top, hi: bytes | _Top, rev: bool) -> range:
    """Where the members from ``lo`` to ``hi`` are (lex ranges are meant for members of
    one score)."""
    score = order[0][:8]  # (as the keys start)
    if order[-1][:8] == score:  # one score: the members are in order
        start, stop = (order.bisect_left(_AFTER_ALL if end is TOP else score + end)
                       for end in (lo, hi))
        return range(start, stop)
    # scores differ (undefined in Redis's documentation): as Redis walks a small set,
    # from the first member >= lo (reversed: the last < hi) while members stay in range
    members = [key[8:] for key in order]
    if members[-1] < lo or not members[0] < hi:
        return range(0)
    if rev:
        last = next(i for i in range(len(members) - 1, -1, -1) if members[i] < hi)
        first = last + 1
        while first and members[first - 1] >= lo:
            first -= 1
        return range(first, last + 1)
    first = next(i for i, member in enumerate(members) if member >= lo)
    stop = first
    while stop < len(members) and members[stop] < hi:
        stop += 1
    return range(first, stop)


def _take(order: SortedList, where: range) -> list[bytes]:
    """The keys at ``where`` (ascending or descending positions), in its order."""
    if where.step > 0:
        return order[where.start:where.stop]
    return order[where.stop + 1:where.start + 1][::-1]


def _cut(z: ZSet, start: int, stop: int) -> list[bytes]:
    """Remove the elements at positions ``start`` to ``stop`` - 1; return their keys."""
    keys = z.order[start:stop]
    del z.order[start:stop]
    for key in keys:
        del z.scores[key[8:]]
    return keys


def _elements(items: Iterable[tuple[float, bytes]], withscores: bool, r3: bool) -> bytes:
    """Members, or members and scores: RESP3's [member, score] pairs, RESP2's flat array."""
    bulk = resp.bulk
    if not withscores:
        return resp.array([bulk(member) for _, member in items])
    if r3:
        return resp.array([b"*2\r\n" + bulk(member) + typed.score(score, True)
                           for score, member in items])
    parts = [bulk(member) + typed.score(score, False) for score, member in items]
    return b"*%d\r\n" % (2 * len(parts)) + b"".join(parts)


def _store(ks: Keyspace, key: bytes, scores: dict[bytes, float]) -> bytes:
    """Replace ``key`` by a sorted set of ``scores`` (none: delete it); its size as the
    reply."""
    if not scores:
        ks.delete(key)
        return resp.ZERO
    z = ZSet(scores.items())
    ks.set(key, z)
    return resp.integer(len(z))


# -- the commands -------------------------------------------------------------------------

_ZADD_FLAGS = frozenset({b"NX", b"XX", b"CH", b"INCR", b"GT", b"LT"})
_NX_XX = resp.error("ERR XX and NX options at the same time are not compatible")
_GT_LT_NX = resp.error("ERR GT, LT, and/or NX options at the same time are not compatible")
_INCR_ONE = resp.error("ERR INCR option supports a single increment-element pair")


def zadd(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]"""
    if len(args) == 4:  # ZADD key score member, by far the commonest: no options to read
        score = _double(args[2])
        if score is not None:
            key, member = args[1], args[3]
            z = ks.value(key) if key in ks.expires else ks.data.get(key)
            if type(z) is not ZSet:
                z = create(ks, key, ZSet)  # a new one (another type: WRONGTYPE)
            old = z.scores.get(member)
            if old == score:
                return resp.ZERO
            z.update(member, old, score + 0.0)  # -0 is stored as 0, as Redis does
            if ks.watched:  # (not empty now: what typed.changed would do)
                ks.touch(key)
            return resp.ZERO if old is not None else resp.ONE
    i, flags = 2, set()
    while i < len(args) and (word := args[i].upper()) in _ZADD_FLAGS:
        flags.add(word)
        i += 1
    count = len(args) - i
    if count % 2 or not count:
        return SYNTAX
    nx, xx, gt, lt = b"NX" in flags, b"XX" in flags, b"GT" in flags, b"LT" in flags
    incr = b"INCR" in flags
    if nx and xx:
        return _NX_XX
    if gt + lt + nx > 1:
        return _GT_LT_NX
    if incr and count > 2:
        return _INCR_ONE
    scores = list(map(_double, args[i::2]))
    if None in scores:
        return NOT_FLOAT
    z = _zset(ks, args[1])
    if z is None:
        if xx:
            return typed.nil(r3) if incr else resp.ZERO
        z = create(ks, args[1], ZSet)
    added = updated = 0
    new = None  # INCR's score, once done
    for score, member in zip(scores, args[i + 1::2], strict=True):
        old = z.scores.get(member)
        if old is None:
            if xx:
                continue
            added += 1
        else:
            if nx:
                continue
            if incr:
                score += old
                if score != score:
                    return _NAN
            if (lt and score >= old) or (gt and score <= old):
                continue
            new = score
            if score == old:
                continue
            updated += 1
        z.add(member, score + 0.0)  # -0 is stored as 0, as Redis does
        new = score
    if added or updated:
        changed(ks, args[1], z)
    if incr:
        return typed.nil(r3) if new is None else typed.score(new, r3)
    return resp.integer(added + updated if b"CH" in flags else added)


def zincrby(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZINCRBY key increment member: ZADD key INCR increment member, as in Redis."""
    return zadd(ks, [args[0], args[1], b"INCR", args[2], args[3]], r3)


def zrem(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    z = _zset(ks, args[1])
    if z is None:
        return resp.ZERO
    gone = sum(z.remove(member) for member in args[2:])
    if gone:
        changed(ks, args[1], z)
    return resp.integer(gone)


def zscore(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    z = _zset(ks, args[1])
    score = None if z is None else z.scores.get(args[2])
    return typed.nil(r3) if score is None else typed.score(score, r3)


def zmscore(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    z = _zset(ks, args[1])
    scores = {} if z is None else z.scores
    nil = typed.nil(r3)
    return resp.array([nil if (score := scores.get(member)) is None
                       else typed.score(score, r3) for member in args[2:]])


def zcard(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    return resp.integer(len(_zset(ks, args[1]) or ()))


def zrank(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZRANK / ZREVRANK key member."""
    z = _zset(ks, args[1])
    rank = None if z is None else z.rank(args[2])
    if rank is None:
        return typed.nil(r3)
    return resp.integer(len(z) - 1 - rank if args[0].upper() == b"ZREVRANK" else rank)


def zcount(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZCOUNT key min max / ZLEXCOUNT key min max."""
    by = LEX if args[0].upper() == b"ZLEXCOUNT" else SCORE
    ends = _ends(by, args[2], args[3])
    if type(ends) is bytes:
        return ends
    z = _zset(ks, args[1])
    return resp.integer(0 if z is None else len(_positions(z, by, ends, False)))


# name -> (where its source key is, how it ranges, reversed; None: as its options say)
_RANGES: dict[bytes, tuple[int, bytes | None, bool | None]] = {
    b"ZRANGE": (1, None, None), b"ZRANGESTORE": (2, None, None),
    b"ZREVRANGE": (1, RANK, True), b"ZRANGEBYSCORE": (1, SCORE, False),
    b"ZREVRANGEBYSCORE": (1, SCORE, True), b"ZRANGEBYLEX": (1, LEX, False),
    b"ZREVRANGEBYLEX": (1, LEX, True),
}


def zrange(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES], its
    older forms (ZREVRANGE, Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX) and ZRANGESTORE dst src
    ..., their options read as Redis reads them."""
    at, by, rev = _RANGES[args[0].upper()]
    store = at == 2
    withscores, offset, count = False, 0, -1
    i = at + 3
    while i < len(args):
        word = args[i].upper()
        if word == b"WITHSCORES" and not store:
            withscores = True
        elif word == b"LIMIT" and i + 2 < len(args):
            offset, count = typed.toInt(args[i + 1]), typed.toInt(args[i + 2])
            if offset is None or count is None:
                return NOT_INTEGER
            i += 2
        elif word == b"REV" and rev is None:
            rev = True
        elif word in (SCORE, LEX) and by is None:
            by = word
        else:
            return SYNTAX
        i += 1
    by = by or RANK
    if count != -1 and by == RANK:
        return resp.error("ERR syntax error, LIMIT is only supported in combination with "
                          "either BYSCORE or BYLEX")
    if withscores and by == LEX:
        return resp.error("ERR syntax error, WITHSCORES not supported in combination with "
                          "BYLEX")
    first, last = args[at + 1], args[at + 2]
    if rev and by != RANK:
        first, last = last, first  # given as max, min
    ends = _ends(by, first, last)
    if type(ends) is bytes:
        return ends
    z = _zset(ks, args[at])
    where = range(0) if z is None else _positions(z, by, ends, bool(rev))
    if by != RANK:
        where = range(0) if offset < 0 else where[offset:offset + count if count >= 0 else None]
    keys = [] if z is None else _take(z.order, where)
    if not (withscores or store):  # (no scores to decode)
        return resp.array([resp.bulk(key[8:]) for key in keys])
    items = list(map(typed.unkey, keys))
    if store:
        return _store(ks, args[1], {member: score for score, member in items})
    return _elements(items, True, r3)


_REMOVE_BY = {b"ZREMRANGEBYRANK": RANK, b"ZREMRANGEBYSCORE": SCORE, b"ZREMRANGEBYLEX": LEX}


def zremrange(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max."""
    by = _REMOVE_BY[args[0].upper()]
    ends = _ends(by, args[2], args[3])
    if type(ends) is bytes:
        return ends
    z = _zset(ks, args[1])
    if z is None:
        return resp.ZERO
    where = _positions(z, by, ends, False)
    if where:
        _cut(z, where.start, where.stop)
        changed(ks, args[1], z)
    return resp.integer(len(where))


def zpop(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZPOPMIN / ZPOPMAX key [count]: with a count, RESP3 pairs [member, score]."""
    count = typed.popCount(args)
    if type(count) is bytes:
        return count
    z = _zset(ks, args[1])
    if z is None or not count:
        return resp.EMPTY_ARRAY
    n, size = min(count, len(z)), len(z)
    keys = _cut(z, 0, n) if args[0].upper() == b"ZPOPMIN" else _cut(z, size - n, size)[::-1]
    items = list(map(typed.unkey, keys))
    changed(ks, args[1], z)
    if len(args) == 3:
        return _elements(items, True, r3)
    score, member = items[0]
    return b"*2\r\n" + resp.bulk(member) + typed.score(score, r3)


def zrandmember(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZRANDMEMBER key [count [WITHSCORES]]: a negative count may repeat members."""
    if len(args) == 2:
        z = _zset(ks, args[1])
        return typed.nil(r3) if z is None else \
            resp.bulk(z.order[random.randrange(len(z))][8:])
    count = typed.toInt(args[2])
    if count is None:
        return NOT_INTEGER
    if count == typed.INT64[0]:
        return typed.RANDOM_RANGE
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHSCORES"):
        return SYNTAX
    if len(args) == 4 and abs(count) > _HALF_LONG:
        return _OUT_OF_RANGE
    z = _zset(ks, args[1])
    if z is None or count == 0:
        return resp.EMPTY_ARRAY
    picked = typed.picks(z.order, count)
    if type(picked) is bytes:
        return picked
    return _elements(map(typed.unkey, picked), len(args) == 4, r3)


def zscan(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZSCAN key cursor [MATCH pattern] [COUNT n]: the whole set in one reply (cursor 0), as
    Redis answers for a small one; COUNT is a hint."""
    if typed.badCursor(args[2]):
        return typed.INVALID_CURSOR
    z = _zset(ks, args[1])
    if z is None:
        return typed.EMPTY_SCAN
    match, _, kind, why = typed.scanArgs(args, 3)
    if why is not None or kind is not None:
        return why or SYNTAX
    items = [x for score, member in map(typed.unkey, z.order) if match is None or match(member)
             for x in (resp.bulk(member), resp.bulk(_scanScore(score)))]
    return resp.array([resp.bulk(b"0"), resp.array(items)])


# -- union, intersection and difference -----------------------------------------------------

_Sources = list[tuple[dict[bytes, float], float]]  # each source's scores, and its weight


def _sum(total: float, value: float) -> float:
    total += value
    return 0.0 if total != total else total  # inf + -inf: 0, as Redis has it


_AGGREGATES: dict[bytes, Callable[[float, float], float]] = {
    b"SUM": _sum, b"MIN": lambda old, value: value if value < old else old,
    b"MAX": lambda old, value: value if value > old else old,
}


def _bySize(sources: _Sources) -> _Sources:
    return sorted(sources, key=lambda source: len(source[0]))  # smallest first, as Redis


def _union(sources: _Sources, aggregate: Callable[[float, float], float]) -> dict:
    out: dict[bytes, float] = {}
    for scores, weight in _bySize(sources):
        for member, score in scores.items():
            value = weight * score
            if value != value:
                value = 0.0
            old = out.get(member)
            out[member] = value if old is None else aggregate(old, value)
    return out


def _inter(sources: _Sources, aggregate: Callable[[float, float], float]) -> dict:
    (first, weight), *rest = _bySize(sources)
    out = {}
    for member, score in first.items():
        value = weight * score
        if value != value:
            value = 0.0
        for scores, otherWeight in rest:
            other = scores.get(member)
            if other is None:
                break
            value = aggregate(value, other * otherWeight)  # NaN here: as Redis aggregates it
        else:
            out[member] = value
    return out


def _diff(sources: _Sources, aggregate: Callable[[float, float], float]) -> dict:
    (first, _), *rest = sources
    return {member: score for member, score in first.items()
            if not any(member in scores for scores, _ in rest)}


_WEIGHED = frozenset({b"WEIGHTS", b"AGGREGATE"})
_WITHSCORES = frozenset({b"WITHSCORES"})
# name -> (how it combines its sources, whether it stores the result, its options)
_SETOPS = {b"ZUNION": (_union, False, _WEIGHED | _WITHSCORES),
           b"ZINTER": (_inter, False, _WEIGHED | _WITHSCORES),
           b"ZDIFF": (_diff, False, _WITHSCORES),
           b"ZINTERCARD": (_inter, False, frozenset({b"LIMIT"})),
           b"ZUNIONSTORE": (_union, True, _WEIGHED), b"ZINTERSTORE": (_inter, True, _WEIGHED),
           b"ZDIFFSTORE": (_diff, True, frozenset())}


def _source(ks: Keyspace, key: bytes) -> dict[bytes, float]:
    """A sorted set's scores, or a set's members scoring 1 (no key: none); WrongType for
    another type."""
    value = ks.value(key)
    if type(value) is ZSet:
        return value.scores
    if type(value) is set:
        return dict.fromkeys(value, 1.0)
    if value is None:
        return {}
    raise WrongType(key)


def _setopOptions(rest: list[bytes], n: int, allowed: frozenset[bytes]) -> tuple | bytes:
    """WEIGHTS, AGGREGATE, WITHSCORES and LIMIT (those ``allowed``) from ``rest``, as
    (weights, aggregate, withscores, limit), or the error reply."""
    weights, aggregate, withscores, limit = [1.0] * n, _sum, False, 0
    i = 0
    while i < len(rest):
        word, left = rest[i].upper(), len(rest) - i
        if word not in allowed:
            return SYNTAX
        if word == b"WEIGHTS" and left > n:
            weights = [_double(w) for w in rest[i + 1:i + 1 + n]]
            if None in weights:
                return resp.error("ERR weight value is not a float")
            i += n + 1
        elif word == b"AGGREGATE" and left >= 2:
            aggregate = _AGGREGATES.get(rest[i + 1].upper())
            if aggregate is None:
                return SYNTAX
            i += 2
        elif word == b"WITHSCORES":
            withscores = True
            i += 1
        elif word == b"LIMIT" and left >= 2:
            limit = typed.toInt(rest[i + 1])
            if limit is None or limit < 0:
                return resp.error("ERR LIMIT can't be negative")
            i += 2
        else:
            return SYNTAX
    return weights, aggregate, withscores, limit


def zsetop(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """ZUNION, ZINTER, ZDIFF numkeys key... [options] (ZINTERCARD: their count) and
    ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE destination numkeys key... [options]; sets count
    as sorted sets whose scores are 1."""
    name = args[0].upper()
    combine, store, allowed = _SETOPS[name]
    at = 2 if store else 1
    n = typed.toInt(args[at])
    if n is None:
        return NOT_INTEGER
    if n < 1:
        return resp.error(f"ERR at least 1 input key is needed for '{name.decode().lower()}' "
                          f"command")
    if n > len(args) - at - 1:
        return SYNTAX
    scores = [_source(ks, key) for key in args[at + 1:at + 1 + n]]
    options = _setopOptions(args[at + 1 + n:], n, allowed)
    if type(options) is bytes:
        return options
    weights, aggregate, withscores, limit = options
    result = combine(list(zip(scores, weights, strict=True)), aggregate)
    if name == b"ZINTERCARD":
        return resp.integer(min(len(result), limit or len(result)))
    if store:
        return _store(ks, args[1], result)
    return _elements(sorted((score, member) for member, score in result.items()),
                     withscores, r3)


def _keysAfterCount(at: int) -> Callable[[list[bytes]], list[bytes]]:
    """The keys of a command whose keys follow a count at ``at`` (and whose destination is
    before it, when ``at`` is 2); ValueError for a count that is not one of them."""
    def keys(args: list[bytes]) -> list[bytes]:
        n = typed.toInt(args[at]) if len(args) > at else None
        if n is None or not 0 < n <= len(args) - at - 1:
            raise ValueError("numkeys does not count the keys that follow it")
        return args[1:at] + args[at + 1:at + 1 + n]

    return keys


# name -> (function, arity as Redis counts it)
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"ZADD": (zadd, -4), b"ZINCRBY": (zincrby, 4), b"ZREM": (zrem, -3),
    b"ZSCORE": (zscore, 3), b"ZMSCORE": (zmscore, -3), b"ZCARD": (zcard, 2),
    b"ZRANK": (zrank, 3), b"ZREVRANK": (zrank, 3), b"ZCOUNT": (zcount, 4),
    b"ZLEXCOUNT": (zcount, 4), b"ZRANGE": (zrange, -4), b"ZREVRANGE": (zrange, -4),
    b"ZRANGEBYSCORE": (zrange, -4), b"ZREVRANGEBYSCORE": (zrange, -4),
    b"ZRANGEBYLEX": (zrange, -4), b"ZREVRANGEBYLEX": (zrange, -4),
    b"ZREMRANGEBYRANK": (zremrange, 4), b"ZREMRANGEBYSCORE": (zremrange, 4),
    b"ZREMRANGEBYLEX": (zremrange, 4), b"ZPOPMIN": (zpop, -2), b"ZPOPMAX": (zpop, -2),
    b"ZRANDMEMBER": (zrandmember, -2), b"ZSCAN": (zscan, -3),
}
# name -> (function, arity, first key, last key, key step), as Redis's COMMAND reports them
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"ZRANGESTORE": (zrange, -5, 1, 2, 1),
    b"ZUNIONSTORE": (zsetop, -4, 1, 1, 1), b"ZINTERSTORE": (zsetop, -4, 1, 1, 1),
    b"ZDIFFSTORE": (zsetop, -4, 1, 1, 1), b"ZUNION": (zsetop, -3, 0, 0, 0),
    b"ZINTER": (zsetop, -3, 0, 0, 0), b"ZDIFF": (zsetop, -3, 0, 0, 0),
    b"ZINTERCARD": (zsetop, -3, 0, 0, 0),
}
KEYS_OF: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {
    **{name: _keysAfterCount(2) for name in (b"ZUNIONSTORE", b"ZINTERSTORE", b"ZDIFFSTORE")},
    **{name: _keysAfterCount(1) for name in (b"ZUNION", b"ZINTER", b"ZDIFF", b"ZINTERCARD")},
}
READS = {b"ZSCORE", b"ZMSCORE", b"ZCARD", b"ZRANK", b"ZREVRANK", b"ZCOUNT", b"ZLEXCOUNT",
         b"ZRANGE", b"ZREVRANGE", b"ZRANGEBYSCORE", b"ZREVRANGEBYSCORE", b"ZRANGEBYLEX",
         b"ZREVRANGEBYLEX", b"ZRANDMEMBER", b"ZSCAN", b"ZUNION", b"ZINTER", b"ZDIFF",
         b"ZINTERCARD"}
