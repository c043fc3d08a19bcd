"""Geospatial commands (GEOADD, GEOPOS, GEODIST, GEOHASH, GEORADIUS, GEORADIUSBYMEMBER, their
_RO forms, GEOSEARCH and GEOSEARCHSTORE), with Redis 7.0's replies and errors.

A geo key is a sorted set (``typed.ZSet``) whose scores are 52-bit geohashes, as Redis
stores them: the longitude (-180..180) and the latitude (Mercator's -85.05112878..85.05112878)
each cut in 2**26 steps, their bits interleaved. A member's position is its cell's center,
decoded from its score, so GEOPOS answers the decoded position and not the one given.

A search does what Redis's does, step by step and in the same floating-point operations: it
picks a geohash precision for the radius (or the box's half diagonal), takes the center's
cell and its 8 neighbours at that precision (less those outside the bounding box), reads
each cell's members as a score range, in that order, and keeps those within the circle or
the box. Replies without ASC/DESC therefore come in Redis's order too, COUNT ANY stops where
Redis stops, and a sort breaks ties as Redis's does (a stable sort of them all, or Redis's
partial quicksort when COUNT takes fewer than were found).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace
from cluster.store.typed import NOT_FLOAT, NOT_INTEGER, SYNTAX, ZSet, scoreKey, unkey
from cluster.store.zsets import _double, _store, _zset, zadd

LON_MIN, LON_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26  # bits of each coordinate in a score
EARTH_RADIUS = 6372797.560856  # meters, as Redis's geohash_helper.c
_MERCATOR_MAX = 20037726.37
_D_R = math.pi / 180.0
_UINT64 = (1 << 64) - 1
_EVEN, _ODD = 0x5555555555555555, 0xAAAAAAAAAAAAAAAA
_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
_BASE32 = b"0123456789bcdefghjkmnpqrstuvwxyz"

_BAD_UNIT = resp.error("ERR unsupported unit provided. please use M, KM, FT, MI")
_NO_MEMBER = resp.error("ERR could not decode requested zset member")
_COUNT = resp.error("ERR COUNT must be > 0")


# -- geohashes, as Redis's geohash.c makes and reads them -------------------------------------

def _interleave(x: int, y: int) -> int:
    """The bits of ``x`` at the even positions, those of ``y`` at the odd (32 bits each)."""
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                        (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, _EVEN)):
        x = (x | x << shift) & mask
        y = (y | y << shift) & mask
    return x | y << 1


def _deinterleave(bits: int) -> tuple[int, int]:
    """The even bits of ``bits`` and its odd bits, each as a 32-bit number."""
    x, y = bits & _EVEN, bits >> 1 & _EVEN
    for shift, mask in ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F),
                        (4, 0x00FF00FF00FF00FF), (8, 0x0000FFFF0000FFFF), (16, 0xFFFFFFFF)):
        x = (x | x >> shift) & mask
        y = (y | y >> shift) & mask
    return x, y


def _encode(lon: float, lat: float, step: int, latMin: float = LAT_MIN,
            latMax: float = LAT_MAX) -> int:
    """A valid position's geohash, ``step`` bits per coordinate, its latitude taken in
    ``latMin``..``latMax`` (Redis's range, or GEOHASH's standard -90..90)."""
    scale = float(1 << step)
    latOffset = (lat - latMin) / (latMax - latMin) * scale
    lonOffset = (lon - LON_MIN) / (LON_MAX - LON_MIN) * scale
    return _interleave(int(latOffset), int(lonOffset))


def _cell(bits: int, step: int) -> tuple[float, float, float, float]:
    """The cell of a geohash: its longitudes and latitudes (min, max, min, max); a 32-bit
    coordinate + 1 wraps to 0, as in C."""
    ilat, ilon = _deinterleave(bits)
    scale = float(1 << step)
    lonScale, latScale = LON_MAX - LON_MIN, LAT_MAX - LAT_MIN
    return (LON_MIN + ilon / scale * lonScale,
            LON_MIN + ((ilon + 1) & 0xFFFFFFFF) / scale * lonScale,
            LAT_MIN + ilat / scale * latScale,
            LAT_MIN + ((ilat + 1) & 0xFFFFFFFF) / scale * latScale)


def _uint64(x: float) -> int:
    """``(uint64_t) x`` as x86-64 code converts a double (any double: -1 and 2**64 too)."""
    flip = 0
    if x >= 2.0**63:
        x, flip = x - 2.0**63, 1 << 63
    if not -2.0**63 <= x < 2.0**63:  # infinite, or out of range: the "integer indefinite"
        return (1 << 63) ^ flip
    return (int(x) & _UINT64) ^ flip


def _decode(score: float) -> tuple[float, float]:
    """The position (longitude, latitude) a score stands for: its cell's center."""
    lonMin, lonMax, latMin, latMax = _cell(_uint64(score), STEP_MAX)
    lon = min(max((lonMin + lonMax) / 2, LON_MIN), LON_MAX)
    return lon, min(max((latMin + latMax) / 2, LAT_MIN), LAT_MAX)


def _moved(bits: int, step: int, dx: int, dy: int) -> int:
    """The geohash of the cell ``dx`` east and ``dy`` north (each -1, 0 or 1) of ``bits``,
    wrapping around, as geohash_move_x and geohash_move_y find it."""
    shift = 64 - 2 * step
    for d, moving, other in ((dx, _ODD, _EVEN), (dy, _EVEN, _ODD)):
        if d:
            part, rest, fill = bits & moving, bits & other, other >> shift
            part = part + fill + 1 if d > 0 else (part | fill) - (fill + 1)
            bits = (part & moving >> shift) | rest
    return bits


def _distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Meters between two positions (haversine), as Redis computes them."""
    lat1r, lon1r, lat2r, lon2r = lat1 * _D_R, lon1 * _D_R, lat2 * _D_R, lon2 * _D_R
    u = math.sin((lat2r - lat1r) / 2)
    v = math.sin((lon2r - lon1r) / 2)
    a = math.sqrt(u * u + math.cos(lat1r) * math.cos(lat2r) * v * v)
    return 2.0 * EARTH_RADIUS * (math.asin(a) if a <= 1.0 else math.nan)


# -- what searches search ------------------------------------------------------------------

@dataclass(slots=True)
class _Query:
    """A GEORADIUS / GEOSEARCH request: where, what shape, and what to answer."""

    lon: float = 0.0
    lat: float = 0.0
    conversion: float = 1.0  # meters per unit
    radius: float | None = None  # in units; None: a box
    width: float = 0.0
    height: float = 0.0
    withdist: bool = False
    withhash: bool = False
    withcoord: bool = False
    sort: int = 0  # 1: ASC, -1: DESC
    count: int = 0  # 0: all
    any: bool = False
    store: bytes | None = None
    storedist: bool = False

    def within(self, lon: float, lat: float) -> float | None:
        """The distance in meters from the center to a position inside the shape (None:
        outside), as Redis tells it (NaN counts as inside)."""
        if self.radius is None:
            if (_distance(lon, lat, self.lon, lat) > self.width * self.conversion / 2
                    or _distance(lon, lat, lon, self.lat) > self.height * self.conversion / 2):
                return None
        elif _distance(self.lon, self.lat, lon, lat) > self.radius * self.conversion:
            return None
        return _distance(self.lon, self.lat, lon, lat)


class _Point(NamedTuple):
    """A member found: its distance in meters, score, name and position."""

    dist: float
    score: float
    member: bytes
    lon: float
    lat: float


def _cos(x: float) -> float:
    return math.cos(x) if math.isfinite(x) else math.nan


def _bounds(q: _Query) -> tuple[float, float, float, float]:
    """The search's bounding box: its longitudes and latitudes (min, max, min, max)."""
    half = (q.radius, q.radius) if q.radius is not None else (q.width / 2, q.height / 2)
    width, height = (q.conversion * x for x in half)
    latDelta = height / EARTH_RADIUS / _D_R
    edge = q.lat - latDelta if q.lat < 0 else q.lat + latDelta  # the wider edge
    lonDelta = width / EARTH_RADIUS / _cos(edge * _D_R) / _D_R
    return q.lon - lonDelta, q.lon + lonDelta, q.lat - latDelta, q.lat + latDelta


def _steps(meters: float, lat: float) -> int:
    """The geohash precision whose cells suit a search of ``meters`` around ``lat``."""
    if meters == 0:
        return STEP_MAX
    step = 1
    while meters < _MERCATOR_MAX:
        meters *= 2
        step += 1
    step -= 2 + (lat > 66 or lat < -66) + (lat > 80 or lat < -80)
    return min(max(step, 1), STEP_MAX)


# the 8 neighbours, in the order Redis reads them: N, S, E, W, NE, NW, SE, SW (dx, dy)
_AROUND = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))
# the cells beyond each side of the center's: south, north, west, east (indexes in _boxes)
_BEYOND = ((2, 7, 8), (1, 5, 6), (4, 6, 8), (3, 5, 7))


def _boxes(q: _Query) -> list[tuple[int, int] | None]:
    """The 9 cells (geohash, step) to read: the center's and its neighbours; None for a
    neighbour left out (geohashCalculateAreasByShapeWGS84)."""
    lonMin, lonMax, latMin, latMax = _bounds(q)
    meters = q.radius if q.radius is not None else math.sqrt(
        (q.width / 2) * (q.width / 2) + (q.height / 2) * (q.height / 2))
    step = _steps(meters * q.conversion, q.lat)
    center = _encode(q.lon, q.lat, step)
    north, south, east, west = (_cell(_moved(center, step, dx, dy), step)
                                for dx, dy in _AROUND[:4])
    if step > 1 and (north[3] < latMax or south[2] > latMin or east[1] < lonMax
                     or west[0] > lonMin):
        step -= 1
        center = _encode(q.lon, q.lat, step)
    boxes: list[tuple[int, int] | None] = [(center, step)]
    boxes += [(_moved(center, step, dx, dy), step) for dx, dy in _AROUND]
    if step >= 2:
        area = _cell(center, step)
        for beyond, out in zip(_BEYOND, (area[2] < latMin, area[3] > latMax,
                                         area[0] < lonMin, area[1] > lonMax), strict=True):
            for i in beyond if out else ():
                boxes[i] = None
    return boxes


def _search(z: ZSet, q: _Query) -> list[_Point]:
    """The members within the shape, in the order Redis finds them; COUNT ANY stops there."""
    limit = q.count if q.any else 0
    points: list[_Point] = []
    boxes, last = _boxes(q), 0
    for i, box in enumerate(boxes):
        if box is None or (last and box == boxes[last]):  # read already (Redis compares a
            continue  # cell with the last one read but the center's, for huge radiuses)
        if limit and len(points) >= limit:
            break
        bits, step = box
        shift = 52 - 2 * step
        keys = z.order.irange(scoreKey(float(bits << shift)),
                              scoreKey(float(bits + 1 << shift)), (True, False))
        for score, member in map(unkey, keys):
            lon, lat = _decode(score)
            dist = q.within(lon, lat)
            if dist is not None:
                points.append(_Point(dist, score, member, lon, lat))
                if limit and len(points) >= limit:
                    break
        last = i
    return points


# -- sorting as Redis sorts: glibc's qsort (stable) or its own pqsort ------------------------

Cmp = Callable[["_Point", "_Point"], int]


def _sorted(points: list[_Point], sort: int, count: int) -> list[_Point]:
    """The first ``count`` (0: all) of ``points`` by distance, ascending (``sort`` 1) or
    descending (-1); ties as Redis leaves them."""
    if not count or count >= len(points):
        return sorted(points, key=lambda p: p.dist, reverse=sort < 0)

    def cmp(a: _Point, b: _Point) -> int:
        order = 1 if a.dist > b.dist else 0 if a.dist == b.dist else -1
        return order * sort

    out = list(points)
    _pqsort(out, 0, len(out), cmp, count - 1)
    return out[:count]


def _pqsort(a: list, lo: int, n: int, cmp: Cmp, last: int) -> None:
    """Redis 7.0's pqsort.c (Bentley & McIlroy's quicksort that leaves alone the parts past
    index ``last``) on ``a[lo:lo + n]``, swap for swap."""
    while True:
        if n < 7:
            _insertionSort(a, lo, n, cmp)
            return
        pm = lo + n // 2
        if n > 7:
            pl, pn = lo, lo + n - 1
            if n > 40:
                d = n // 8
                pl = _med3(a, pl, pl + d, pl + 2 * d, cmp)
                pm = _med3(a, pm - d, pm, pm + d, cmp)
                pn = _med3(a, pn - 2 * d, pn - d, pn, cmp)
            pm = _med3(a, pl, pm, pn, cmp)
        a[lo], a[pm] = a[pm], a[lo]
        pa = pb = lo + 1
        pc = pd = lo + n - 1
        while True:
            while pb <= pc and (c := cmp(a[pb], a[lo])) <= 0:
                if c == 0:
                    a[pa], a[pb] = a[pb], a[pa]
                    pa += 1
                pb += 1
            while pb <= pc and (c := cmp(a[pc], a[lo])) >= 0:
                if c == 0:
                    a[pc], a[pd] = a[pd], a[pc]
                    pd -= 1
                pc -= 1
            if pb > pc:
                break
            a[pb], a[pc] = a[pc], a[pb]
            pb += 1
            pc -= 1
        pn = lo + n
        r = min(pa - lo, pb - pa)
        _vecswap(a, lo, pb - r, r)
        r = min(pd - pc, pn - pd - 1)
        _vecswap(a, pb, pn - r, r)
        if pb - pa > 1 and lo <= last:
            _pqsort(a, lo, pb - pa, cmp, last)
        r = pd - pc
        if r <= 1 or pn - r > last:
            return
        lo, n = pn - r, r


def _med3(a: list, i: int, j: int, k: int, cmp: Cmp) -> int:
    if cmp(a[i], a[j]) < 0:
        return j if cmp(a[j], a[k]) < 0 else k if cmp(a[i], a[k]) < 0 else i
    return j if cmp(a[j], a[k]) > 0 else i if cmp(a[i], a[k]) < 0 else k


def _insertionSort(a: list, lo: int, n: int, cmp: Cmp) -> None:
    for m in range(lo + 1, lo + n):
        while m > lo and cmp(a[m - 1], a[m]) > 0:
            a[m - 1], a[m] = a[m], a[m - 1]
            m -= 1


def _vecswap(a: list, i: int, j: int, n: int) -> None:
    for k in range(n):
        a[i + k], a[j + k] = a[j + k], a[i + k]


# -- replies ------------------------------------------------------------------------------

def _coordinate(x: float, r3: bool) -> bytes:
    """A coordinate as Redis writes one (a long double, "%.17Lf" less its trailing zeros):
    a double in RESP3, a bulk string in RESP2."""
    text = (b"%.17f" % x).rstrip(b"0").rstrip(b".")
    text = b"0" if text == b"-0" else text
    return b",%s\r\n" % text if r3 else resp.bulk(text)


def _position(lon: float, lat: float, r3: bool) -> bytes:
    return b"*2\r\n" + _coordinate(lon, r3) + _coordinate(lat, r3)


def _distanceReply(x: float) -> bytes:
    """A distance as Redis writes one ("%.4f", a bulk string in RESP2 and RESP3)."""
    return resp.bulk(b"%.4f" % x)


def _results(points: list[_Point], q: _Query, r3: bool) -> bytes:
    """A search's reply: its members, each with what WITHDIST/WITHHASH/WITHCOORD ask."""
    extra = q.withdist + q.withhash + q.withcoord
    if not extra:
        return resp.array([resp.bulk(p.member) for p in points])
    items = []
    for p in points:
        parts = [b"*%d\r\n" % (extra + 1), resp.bulk(p.member)]
        if q.withdist:
            parts.append(_distanceReply(p.dist / q.conversion))
        if q.withhash:
            parts.append(resp.integer(int(p.score)))
        if q.withcoord:
            parts.append(_position(p.lon, p.lat, r3))
        items.append(b"".join(parts))
    return resp.array(items)


# -- reading the arguments ----------------------------------------------------------------

def _lonLat(x: bytes, y: bytes) -> tuple[float, float] | bytes:
    """A position from its two arguments, or the error reply."""
    lon, lat = _double(x), _double(y)
    if lon is None or lat is None:
        return NOT_FLOAT
    if not (LON_MIN <= lon <= LON_MAX and LAT_MIN <= lat <= LAT_MAX):
        return resp.error("ERR invalid longitude,latitude pair %f,%f" % (lon, lat))
    return lon, lat


def _unit(word: bytes) -> float | bytes:
    return _UNITS.get(word.lower(), _BAD_UNIT)


def _fromMember(q: _Query, z: ZSet, member: bytes) -> bytes | None:
    """Center the search on a member's position; None, or the error."""
    score = z.scores.get(member)
    if score is None:
        return _NO_MEMBER
    q.lon, q.lat = _decode(score)
    return None


def _fromLonLat(q: _Query, x: bytes, y: bytes) -> bytes | None:
    """Center the search on a position given; None, or the error."""
    where = _lonLat(x, y)
    if type(where) is bytes:
        return where
    q.lon, q.lat = where
    return None


def _shape(q: _Query, at: list[bytes]) -> bytes | None:
    """Set the shape from ``radius unit`` or ``width height unit``; None, or the error."""
    sizes = []
    for name, text in zip(("radius",) if len(at) == 2 else ("width", "height"), at[:-1],
                          strict=True):
        size = _double(text)
        if size is None:
            return resp.error(f"ERR need numeric {name}")
        sizes.append(size)
    if min(sizes) < 0:
        return resp.error("ERR radius cannot be negative" if len(at) == 2 else
                          "ERR height or width cannot be negative")
    conversion = _unit(at[-1])
    if type(conversion) is bytes:
        return conversion
    q.conversion = conversion
    if len(at) == 2:
        q.radius = sizes[0]
    else:
        q.width, q.height = sizes
    return None


def _searchOption(q: _Query, z: ZSet | None, word: bytes, at: list[bytes]) -> bytes | None:
    """GEOSEARCH's FROMMEMBER, FROMLONLAT, BYRADIUS or BYBOX, with its arguments ``at``."""
    if word == b"FROMMEMBER":
        return None if z is None else _fromMember(q, z, at[0])  # (no source: read on)
    if word == b"FROMLONLAT":
        return _fromLonLat(q, *at)
    return _shape(q, at)


_LONLAT, _MEMBER, _SEARCH = 0, 1, 2
# name -> (where its source key is, how it gives its center and shape, whether it stores)
_SEARCHES = {
    b"GEORADIUS": (1, _LONLAT, True), b"GEORADIUS_RO": (1, _LONLAT, False),
    b"GEORADIUSBYMEMBER": (1, _MEMBER, True), b"GEORADIUSBYMEMBER_RO": (1, _MEMBER, False),
    b"GEOSEARCH": (1, _SEARCH, False), b"GEOSEARCHSTORE": (2, _SEARCH, True),
}
_FLAGS = {b"WITHDIST": "withdist", b"WITHHASH": "withhash", b"WITHCOORD": "withcoord",
          b"ANY": "any"}


def _query(z: ZSet | None, args: list[bytes], how: int, stores: bool) -> _Query | bytes:
    """A search's arguments read as Redis's georadiusGeneric reads them, its first error
    found where Redis finds it (``z``: the source, None if there is none)."""
    q = _Query()
    why: bytes | None = None
    if how == _LONLAT:
        why, i = _fromLonLat(q, *args[2:4]) or _shape(q, args[4:6]), 6
    elif how == _MEMBER:  # (no source: its radius and unit go unread, as in Redis)
        i = 5
        why = None if z is None else _fromMember(q, z, args[2]) or _shape(q, args[3:5])
    else:
        i = 3 if stores else 2
        q.store = args[1] if stores else None
    given: set[bytes] = set()
    while why is None and i < len(args):
        word, left = args[i].upper(), len(args) - i - 1
        if word in _FLAGS:
            setattr(q, _FLAGS[word], True)
        elif word in (b"ASC", b"DESC"):
            q.sort = 1 if word == b"ASC" else -1
        elif word == b"COUNT" and left:
            count = typed.toInt(args[i + 1])
            why = NOT_INTEGER if count is None else _COUNT if count <= 0 else None
            q.count = count or 0
            i += 1
        elif word in (b"STORE", b"STOREDIST") and left and stores and how != _SEARCH:
            q.store, q.storedist = args[i + 1], word == b"STOREDIST"
            i += 1
        elif word == b"STOREDIST" and how == _SEARCH and stores:
            q.storedist = True
        elif (word in _FROM and left >= _FROM[word] and how == _SEARCH
              and _OTHER[word] not in given):
            at = args[i + 1:i + 1 + _FROM[word]]
            why = _searchOption(q, z, word, at)
            given.add(word)
            i += len(at)
        else:
            why = SYNTAX
        i += 1
    return why or _checked(q, args[0], how, given)


# options of GEOSEARCH: how many arguments they take, and the option they exclude
_FROM = {b"FROMMEMBER": 1, b"FROMLONLAT": 2, b"BYRADIUS": 2, b"BYBOX": 3}
_OTHER = {b"FROMMEMBER": b"FROMLONLAT", b"FROMLONLAT": b"FROMMEMBER", b"BYRADIUS": b"BYBOX",
          b"BYBOX": b"BYRADIUS"}


def _checked(q: _Query, name: bytes, how: int, given: set[bytes]) -> _Query | bytes:
    """``q``, or the error Redis answers for the options it was given together (or not)."""
    command = name.decode(errors="replace")
    if q.store is not None and (q.withdist or q.withhash or q.withcoord):
        what = "GEOSEARCHSTORE" if how == _SEARCH else "STORE option in GEORADIUS"
        return resp.error(f"ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD "
                          f"options")
    if how == _SEARCH and not given & {b"FROMMEMBER", b"FROMLONLAT"}:
        return resp.error(f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for "
                          f"{command}")
    if how == _SEARCH and not given & {b"BYRADIUS", b"BYBOX"}:
        return resp.error(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {command}")
    if q.any and not q.count:
        return resp.error("ERR the ANY argument requires COUNT argument")
    return q


# -- the commands -------------------------------------------------------------------------

def _scores(ks: Keyspace, key: bytes) -> dict[bytes, float]:
    z = _zset(ks, key)
    return {} if z is None else z.scores


def geoadd(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD of their geohashes."""
    i = 2
    while i < len(args) and args[i].upper() in (b"NX", b"XX", b"CH"):
        i += 1
    flags = {word.upper() for word in args[2:i]}
    if (len(args) - i) % 3 or {b"NX", b"XX"} <= flags:
        return SYNTAX
    pairs = []
    for j in range(i, len(args), 3):
        where = _lonLat(args[j], args[j + 1])
        if type(where) is bytes:
            return where
        pairs += [b"%d" % _encode(*where, STEP_MAX), args[j + 2]]
    return zadd(ks, [b"ZADD", args[1], *args[2:i], *pairs], r3)


def geopos(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """GEOPOS key member [...]: each member's position (null if it has none)."""
    scores = _scores(ks, args[1])
    nil = typed.nilArray(r3)
    return resp.array([nil if (score := scores.get(member)) is None
                       else _position(*_decode(score), r3) for member in args[2:]])


def geodist(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """GEODIST key member member [M|KM|FT|MI]."""
    if len(args) > 5:
        return SYNTAX
    conversion = _unit(args[4]) if len(args) == 5 else 1.0
    if type(conversion) is bytes:
        return conversion
    scores = _scores(ks, args[1])
    if args[2] not in scores or args[3] not in scores:
        return typed.nil(r3)
    meters = _distance(*_decode(scores[args[2]]), *_decode(scores[args[3]]))
    return _distanceReply(meters / conversion)


def geohash(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """GEOHASH key member [...]: each position as the standard 11-character geohash (its
    latitude in -90..90, not Redis's internal range)."""
    scores = _scores(ks, args[1])
    out = []
    for member in args[2:]:
        score = scores.get(member)
        if score is None:
            out.append(typed.nil(r3))
            continue
        bits = _encode(*_decode(score), STEP_MAX, -90.0, 90.0)
        text = bytes(_BASE32[bits >> 52 - 5 * (i + 1) & 0x1F] for i in range(10)) + b"0"
        out.append(resp.bulk(text))
    return resp.array(out)


def geosearch(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """GEORADIUS[_RO] key lon lat radius unit, GEORADIUSBYMEMBER[_RO] key member radius
    unit, GEOSEARCH key FROM... BY..., GEOSEARCHSTORE dst src FROM... BY..., and their
    options (WITH..., ASC|DESC, COUNT n [ANY], STORE|STOREDIST)."""
    at, how, stores = _SEARCHES[args[0].upper()]
    z = _zset(ks, args[at])
    q = _query(z, args, how, stores)
    if type(q) is bytes:
        return q
    if z is None:
        return resp.EMPTY_ARRAY if q.store is None else _store(ks, q.store, {})
    if q.count and not q.sort and not q.any:
        q.sort = 1  # the nearest COUNT
    points = _search(z, q)
    if q.sort:
        points = _sorted(points, q.sort, q.count)
    points = points[:q.count or None]
    if q.store is None:
        return _results(points, q, r3)
    return _store(ks, q.store, {p.member: p.dist / q.conversion if q.storedist else p.score
                                for p in points})


def _radiusKeys(args: list[bytes]) -> list[bytes]:
    """GEORADIUS[BYMEMBER]'s keys: its source, and the key after its last STORE or
    STOREDIST (as Redis's georadiusGetKeys finds them)."""
    dest, i = [], 5
    while i < len(args) - 1:
        if args[i].upper() in (b"STORE", b"STOREDIST"):
            dest = [args[i + 1]]
            i += 1
        i += 1
    return args[1:2] + dest


# name -> (function, arity as Redis counts it)
COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {
    b"GEOADD": (geoadd, -5), b"GEOPOS": (geopos, -2), b"GEODIST": (geodist, -4),
    b"GEOHASH": (geohash, -2), b"GEORADIUS_RO": (geosearch, -6),
    b"GEORADIUSBYMEMBER_RO": (geosearch, -5), b"GEOSEARCH": (geosearch, -7),
}
# name -> (function, arity, first key, last key, key step), as Redis's COMMAND reports them
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {
    b"GEORADIUS": (geosearch, -6, 1, 1, 1), b"GEORADIUSBYMEMBER": (geosearch, -5, 1, 1, 1),
    b"GEOSEARCHSTORE": (geosearch, -8, 1, 2, 1),
}
KEYS_OF: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {
    b"GEORADIUS": _radiusKeys, b"GEORADIUSBYMEMBER": _radiusKeys,
}
READS = {b"GEOPOS", b"GEODIST", b"GEOHASH", b"GEORADIUS_RO", b"GEORADIUSBYMEMBER_RO",
         b"GEOSEARCH"}
