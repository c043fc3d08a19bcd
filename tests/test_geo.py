"""The store's geo commands against a real redis-server (the oracle): the same commands on
both, the same replies, in RESP2 and RESP3, on one worker and on two; and redis-py's geo
methods, whose parsed results must be the same on both. Searches without ASC/DESC are
compared in order too: the store reads the geohash cells in Redis's order."""

from __future__ import annotations

import pytest
import redis

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SICILY = ["13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania",
          "12.758489", "38.788135", "edge1", "17.241510", "38.788135", "edge2"]
TIES = ["10", "45", "a", "10", "45", "b", "10.001", "45", "c", "10", "45.001", "d", "9.999", "45",
        "e", "10", "44.999", "f", "10.001", "45.001", "g", "10", "45", "h"]

SCRIPT = [
    # GEOADD and its options; positions come back decoded from the 52-bit scores
    ["GEOADD", "s", *SICILY], ["GEOADD", "s", "13.361389", "38.115556", "Palermo"],
    ["GEOADD", "s", "CH", "13.3614", "38.1156", "Palermo", "1", "2", "new"],
    ["GEOADD", "s", "NX", "0", "0", "Palermo", "3", "4", "nx"],
    ["GEOADD", "s", "XX", "CH", "5", "6", "nx", "7", "8", "nope"],
    ["GEOADD", "s", "xx", "nx", "1", "2", "m"], ["GEOADD", "s", "ch", "CH", "ch"],
    ["GEOADD", "s", "1", "2", "m", "3"], ["GEOADD", "s", "x", "2", "m"],
    ["GEOADD", "s", "1", "2", "ok", "1", "y", "m"], ["GEOADD", "s", "200", "100", "m"],
    ["GEOADD", "s", "180.0001", "0", "m"], ["GEOADD", "s", "0", "85.05112879", "m"],
    ["GEOADD", "s", "inf", "0", "m"], ["GEOADD", "s", "1", "1e400", "m"],
    ["GEOADD", "s", " 1", "2", "m"], ["GEOADD", "s", "GT", "1", "2", "m"],
    ["GEOADD", "s", "1", "2"], ["GEOADD", "none", "XX", "1", "2", "m"], ["EXISTS", "none"],
    ["GEOADD", "none", "1", "x", "m"], ["EXISTS", "none"],
    ["ZRANGE", "s", "0", "-1", "WITHSCORES"],
    ["GEOADD", "edges", "180", "85.05112878", "ne", "-180", "-85.05112878", "sw", "180", "0",
     "e", "-180", "0", "w", "0", "0", "zero", "0x10", "-0", "hex", "-0", "1e-300", "tiny"],
    ["ZRANGE", "edges", "0", "-1", "WITHSCORES"],
    ["GEOPOS", "edges", "ne", "sw", "e", "w", "zero", "hex", "tiny"],
    ["GEOHASH", "edges", "ne", "sw", "e", "w", "zero", "hex", "tiny"],
    # GEOPOS, GEOHASH, GEODIST (and members whose scores no GEOADD gave)
    ["GEOPOS", "s", "Palermo", "nope", "Catania"], ["GEOPOS", "s"], ["GEOPOS", "none", "a"],
    ["GEOHASH", "s", "Palermo", "Catania", "nope", "edge1"], ["GEOHASH", "s"],
    ["GEOHASH", "none", "a", "b"],
    ["ZADD", "odd", "-1", "neg", "1e20", "huge", "0.5", "half", "inf", "top", "-inf", "bottom",
     "4503599627370496", "p52", "9.3e18", "p63", "1.8e19", "big"],
    ["GEOPOS", "odd", "neg", "huge", "half", "top", "bottom", "p52", "p63", "big"],
    ["GEOHASH", "odd", "neg", "huge", "half", "top", "bottom", "p52", "p63", "big"],
    ["GEODIST", "odd", "neg", "bottom", "km"],
    ["GEODIST", "s", "Palermo", "Catania"], ["GEODIST", "s", "Palermo", "Catania", "km"],
    ["GEODIST", "s", "Palermo", "Catania", "MI"], ["GEODIST", "s", "Palermo", "Catania", "ft"],
    ["GEODIST", "s", "Palermo", "Palermo"], ["GEODIST", "s", "Palermo", "nope"],
    ["GEODIST", "none", "a", "b"], ["GEODIST", "s", "Palermo", "Catania", "inches"],
    ["GEODIST", "none", "a", "b", "inches"], ["GEODIST", "s", "a", "b", "km", "x"],
    ["GEODIST", "s", "Palermo"], ["GEODIST", "edges", "e", "w"], ["GEODIST", "edges", "ne", "sw"],
    # GEORADIUS and GEORADIUS_RO: units, WITH*, sorting, COUNT [ANY]
    ["GEORADIUS", "s", "15", "37", "200", "km"], ["GEORADIUS", "s", "15", "37", "200", "KM", "ASC"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "WITHDIST", "WITHCOORD", "WITHHASH"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "withhash", "desc", "withdist"],
    ["GEORADIUS", "s", "15", "37", "124", "mi", "WITHDIST", "ASC", "DESC"],
    ["GEORADIUS", "s", "15", "37", "656168", "ft", "WITHCOORD"],
    ["GEORADIUS", "s", "15", "37", "200000", "m", "COUNT", "1"],
    ["GEORADIUS", "s", "15", "37", "200000", "m", "COUNT", "2", "DESC", "WITHDIST"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT", "1", "ANY"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT", "2", "ANY", "ASC", "WITHDIST"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT", "100"],
    ["GEORADIUS", "s", "15", "37", "1", "km"], ["GEORADIUS", "s", "15", "37", "0", "km"],
    ["GEORADIUS", "s", "15", "37", "inf", "km", "ASC"],
    ["GEORADIUS", "s", "0", "0", "20000", "km", "WITHDIST"],
    ["GEORADIUS", "s", "-179", "-85", "5000", "km"], ["GEORADIUS", "none", "15", "37", "1", "km"],
    ["GEORADIUS_RO", "s", "15", "37", "200", "km", "WITHDIST", "ASC"],
    ["GEORADIUS", "s", "x", "37", "200", "km"], ["GEORADIUS", "s", "15", "91", "200", "km"],
    ["GEORADIUS", "s", "15", "37", "x", "km"], ["GEORADIUS", "s", "15", "37", "-1", "km"],
    ["GEORADIUS", "s", "15", "37", "200", "parsec"], ["GEORADIUS", "s", "15", "37", "200"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT", "0"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT", "-1"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "COUNT", "x"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "ANY"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "BOGUS"],
    ["GEORADIUS", "s", "15", "37", "200", "km", "FROMMEMBER", "Palermo"],
    ["GEORADIUS_RO", "s", "15", "37", "200", "km", "STORE", "x"],
    ["GEORADIUS_RO", "s", "15", "37", "200", "km", "STOREDIST", "x"],
    ["GEORADIUS", "none", "x", "37", "200", "km"],
    # GEORADIUSBYMEMBER and GEORADIUSBYMEMBER_RO
    ["GEORADIUSBYMEMBER", "s", "Palermo", "200", "km"],
    ["GEORADIUSBYMEMBER", "s", "Palermo", "200", "km", "WITHDIST", "WITHCOORD", "ASC"],
    ["GEORADIUSBYMEMBER", "s", "Catania", "300", "km", "COUNT", "2", "WITHHASH"],
    ["GEORADIUSBYMEMBER", "s", "Catania", "300", "km", "COUNT", "1", "ANY"],
    ["GEORADIUSBYMEMBER_RO", "s", "Palermo", "200", "km", "DESC"],
    ["GEORADIUSBYMEMBER", "s", "nope", "200", "km"],
    ["GEORADIUSBYMEMBER", "s", "Palermo", "x", "km"],
    ["GEORADIUSBYMEMBER", "s", "Palermo", "200", "x"],
    ["GEORADIUSBYMEMBER", "none", "m", "x", "parsec"],
    ["GEORADIUSBYMEMBER", "none", "m", "x", "parsec", "BOGUS"],
    ["GEORADIUSBYMEMBER", "none", "m", "1", "km", "ANY"],
    # GEOSEARCH: FROMMEMBER/FROMLONLAT, BYRADIUS/BYBOX, and their errors
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "WITHDIST"],
    ["GEOSEARCH", "s", "BYBOX", "400", "400", "km", "FROMLONLAT", "15", "37", "DESC"],
    ["GEOSEARCH", "s", "frommember", "Palermo", "bybox", "200", "100", "mi", "withcoord"],
    ["GEOSEARCH", "s", "FROMMEMBER", "Palermo", "BYRADIUS", "100", "km", "WITHDIST"],
    ["GEOSEARCH", "s", "FROMMEMBER", "Palermo", "FROMMEMBER", "Catania", "BYRADIUS", "100",
     "km"], ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "0", "0", "m"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "1e9", "1", "m"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km", "COUNT", "3",
     "WITHHASH", "WITHDIST", "WITHCOORD"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "500", "km", "COUNT", "2", "ANY"],
    ["GEOSEARCH", "none", "FROMMEMBER", "x", "BYRADIUS", "1", "km"],
    ["GEOSEARCH", "s", "FROMMEMBER", "nope", "BYRADIUS", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "ASC"],
    ["GEOSEARCH", "s", "BYRADIUS", "1", "km", "ASC", "WITHDIST"],
    ["GEOSEARCH", "none", "BYRADIUS", "1", "km", "ASC", "ANY"],
    ["geosearch", "s", "FROMLONLAT", "15", "37", "WITHDIST", "DESC"],
    ["GEOSEARCH", "s", "FROMMEMBER", "Palermo", "COUNT", "1", "ANY"],
    ["GEOSEARCH", "s", "FROMMEMBER", "Palermo", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "BYBOX", "1", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "km", "BYRADIUS", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "x", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "1", "x", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "1", "-1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "parsec"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYBOX", "1", "1"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "x", "BYRADIUS", "1", "km"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "STORE", "x"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "STOREDIST"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "ANY"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "COUNT", "0"],
    ["GEOSEARCH", "s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "COUNT"],
    # ties: members at one position, sorted all (stable) or COUNT of them (Redis's pqsort)
    ["GEOADD", "t", *TIES],
    ["GEOSEARCH", "t", "FROMLONLAT", "10", "45", "BYRADIUS", "1", "km", "WITHDIST"],
    ["GEOSEARCH", "t", "FROMLONLAT", "10", "45", "BYRADIUS", "1", "km", "ASC"],
    ["GEOSEARCH", "t", "FROMLONLAT", "10", "45", "BYRADIUS", "1", "km", "DESC"],
    ["GEOSEARCH", "t", "FROMLONLAT", "10", "45", "BYRADIUS", "1", "km", "COUNT", "3"],
    ["GEOSEARCH", "t", "FROMLONLAT", "10", "45", "BYRADIUS", "1", "km", "COUNT", "5", "DESC"],
    ["GEOSEARCH", "t", "FROMLONLAT", "10.0005", "45.0005", "BYBOX", "1", "1", "km", "COUNT",
     "7", "WITHDIST"],
    ["GEOSEARCH", "t", "FROMMEMBER", "a", "BYRADIUS", "1", "km", "COUNT", "3", "ANY"],
    # STORE / STOREDIST, GEOSEARCHSTORE (hash-tagged keys: one worker)
    ["GEOADD", "{g}s", *SICILY], ["SET", "{g}str", "v"],
    ["GEORADIUS", "{g}s", "15", "37", "200", "km", "STORE", "{g}d"],
    ["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
    ["GEORADIUS", "{g}s", "15", "37", "200", "km", "STOREDIST", "{g}d", "COUNT", "1"],
    ["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
    ["GEORADIUS", "{g}s", "15", "37", "200", "km", "STOREDIST", "{g}d", "STORE", "{g}e"],
    ["ZRANGE", "{g}e", "0", "-1", "WITHSCORES"],
    ["GEORADIUSBYMEMBER", "{g}s", "Palermo", "200", "km", "STOREDIST", "{g}d", "DESC"],
    ["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
    ["GEORADIUS", "{g}s", "15", "37", "200", "km", "STORE", "{g}d", "WITHDIST"],
    ["GEORADIUS", "{g}s", "15", "37", "1", "km", "STORE", "{g}d"], ["EXISTS", "{g}d"],
    ["GEORADIUS", "{g}none", "15", "37", "1", "km", "STORE", "{g}e"], ["EXISTS", "{g}e"],
    ["GEORADIUSBYMEMBER", "{g}none", "m", "x", "y", "STORE", "{g}e"],
    ["GEORADIUS", "{g}s", "15", "37", "200", "km", "STORE"],
    ["GEORADIUS", "{g}str", "15", "37", "200", "km", "STORE", "{g}d"],
    ["SET", "{g}d", "v"], ["EXPIRE", "{g}d", "100"],
    ["GEORADIUS", "{g}s", "15", "37", "200", "km", "STORE", "{g}d"], ["TYPE", "{g}d"],
    ["TTL", "{g}d"], ["GEORADIUS", "{g}str", "x", "37", "200", "km"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"],
    ["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km",
     "STOREDIST", "COUNT", "1", "DESC"], ["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "m"],
    ["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "m"],
    ["EXISTS", "{g}d"],
    ["GEOSEARCHSTORE", "{g}d", "{g}none", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "m"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "m",
     "WITHDIST"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "m", "STORE",
     "{g}e"], ["GEOSEARCHSTORE", "{g}d", "{g}str", "FROMLONLAT", "15", "37", "BYRADIUS", "1"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "ASC", "STOREDIST"],
    ["GEOSEARCHSTORE", "{g}d", "{g}s", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km",
     "STOREDIST", "x"],
    # the wrong type, both ways
    ["SET", "str", "v"], ["GEOADD", "str", "1", "2", "m"], ["GEOADD", "str", "1", "x", "m"],
    ["GEOPOS", "str", "m"], ["GEOHASH", "str", "m"], ["GEODIST", "str", "a", "b"],
    ["GEODIST", "str", "a", "b", "parsec"], ["GEORADIUS_RO", "str", "x", "1", "1", "km"],
    ["GEORADIUSBYMEMBER_RO", "str", "m", "1", "km"],
    ["GEOSEARCH", "str", "BOGUS", "1", "2", "3", "4"],
    ["GET", "s"], ["TYPE", "s"], ["ZSCORE", "s", "Palermo"], ["ZREM", "s", "nx", "new", "ok"],
    ["ZCARD", "s"],
    # a transaction of geo commands
    ["MULTI"], ["GEOADD", "{g}m", "13.361389", "38.115556", "Palermo"],
    ["GEOPOS", "{g}m", "Palermo"], ["GEORADIUS", "{g}m", "13", "38", "100", "km", "WITHDIST"],
    ["GEOSEARCHSTORE", "{g}n", "{g}m", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "km"],
    ["GEODIST", "{g}m", "Palermo", "x"], ["GEOHASH", "{g}str", "a"], ["EXEC"],
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_geo_commands_answer_as_redis(stores, oracle, workers, protocol):
    ours = replies(stores[workers].port, SCRIPT, protocol)
    theirs = replies(oracle, SCRIPT, protocol)
    assert_same(SCRIPT, ours, theirs)


def test_a_store_key_on_another_worker_is_crossslot(stores):
    """GEORADIUS ... STORE and GEOSEARCHSTORE take their keys together: on two workers,
    keys of different workers answer -CROSSSLOT, as in Redis Cluster."""
    r = redis.Redis(port=stores[2].port, socket_timeout=10)
    try:
        r.geoadd("g0", (15, 37, "x"))
        other = next(f"g{i}" for i in range(1, 100)
                     if _crossslot(r, "GEOSEARCHSTORE", f"g{i}", "g0", "FROMMEMBER", "x",
                                   "BYRADIUS", "1", "km"))
        for command in (["GEORADIUS", "g0", "15", "37", "1", "km", "STORE", other],
                        ["GEORADIUSBYMEMBER", "g0", "x", "1", "km", "STOREDIST", other],
                        ["GEORADIUS", "g0", "15", "37", "1", "km", "STORE", "g0", "STORE",
                         other]):
            assert _crossslot(r, *command), command
        assert not r.exists(other)
        assert r.georadius("g0", 15, 37, 1, "km", store="g0") == 1
    finally:
        r.close()


def _crossslot(r: redis.Redis, *command: str) -> bool:
    """Whether ``command`` fails with an error starting with CROSSSLOT."""
    try:
        r.execute_command(*command)
    except redis.exceptions.ClusterCrossSlotError:
        return True
    return False


def _clientCalls(port: int, protocol: int) -> list:
    r = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    try:
        r.flushall()
        places = (13.361389, 38.115556, "Palermo", 15.087269, 37.502669, b"\x80Catania")
        return [r.geoadd("{t}s", places), r.geoadd("{t}s", (13.4, 38.2, "Palermo"), ch=True),
                r.geopos("{t}s", "Palermo", "nope"), r.geodist("{t}s", "Palermo", "\x80Catania"),
                r.geodist("{t}s", "Palermo", b"\x80Catania", "km"), r.geohash("{t}s", "Palermo"),
                r.georadius("{t}s", 15, 37, 200, "km", withdist=True, withcoord=True,
                            withhash=True, sort="ASC"),
                r.georadiusbymember("{t}s", "Palermo", 200, "km", count=1, any=True),
                r.geosearch("{t}s", longitude=15, latitude=37, radius=200, unit="km",
                            withdist=True, sort="DESC"),
                r.geosearch("{t}s", member="Palermo", width=400, height=400, unit="km",
                            withcoord=True),
                r.geosearchstore("{t}d", "{t}s", longitude=15, latitude=37, radius=200,
                                 unit="km", storedist=True),
                r.zrange("{t}d", 0, -1, withscores=True),
                r.georadius("{t}s", 15, 37, 200, "km", store="{t}e"), r.zcard("{t}e")]
    finally:
        r.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_parses_the_same_results(stores, oracle, protocol):
    assert _clientCalls(stores[2].port, protocol) == _clientCalls(oracle, protocol)
