"""The store's sorted set commands against a real redis-server (the oracle): the same
commands on both, the same replies, in RESP2 and RESP3, on one worker and on two; and
redis-py's sorted set methods, whose parsed results must be the same on both."""

from __future__ import annotations

import pytest
import redis

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UNORDERED = frozenset({"ZRANDMEMBER"})  # (only counts that pick the whole set here)

SCRIPT = [
    # ZADD and its options
    ["ZADD", "z", "1", "a", "2", "b", "3", "c"], ["ZADD", "z", "1.5", "d", "2", "b"],
    ["ZADD", "z", "CH", "5", "a", "5", "e"], ["ZADD", "z", "NX", "9", "a", "9", "f"],
    ["ZADD", "z", "XX", "CH", "7", "a", "7", "g"], ["ZADD", "z", "GT", "CH", "1", "a", "8", "b"],
    ["ZADD", "z", "LT", "CH", "1", "a", "9", "c"], ["ZADD", "z", "XX", "GT", "10", "a"],
    ["ZADD", "z", "INCR", "2.5", "d"], ["ZADD", "z", "NX", "INCR", "1", "d"],
    ["ZADD", "z", "XX", "INCR", "1", "nope"], ["ZADD", "z", "GT", "INCR", "-1", "d"],
    ["ZADD", "z", "lt", "incr", "-1", "d"], ["ZADD", "z", "INCR", "0", "d"],
    ["ZADD", "z", "ch", "ch", "Nx", "3", "h"], ["ZADD", "z", "1", "a", "2", "a"],
    ["ZADD", "z", "NX", "XX", "1", "a"], ["ZADD", "z", "GT", "LT", "1", "a"],
    ["ZADD", "z", "GT", "NX", "1", "a"], ["ZADD", "z", "INCR", "1", "a", "2", "b"],
    ["ZADD", "z", "NX", "XX"], ["ZADD", "z", "NX", "1"], ["ZADD", "z", "1", "a", "2"],
    ["ZADD", "z", "x", "a"], ["ZADD", "z", "1", "a", "nan", "b"], ["ZADD", "z", "1e400", "a"],
    ["ZADD", "z", "1e-400", "a"], ["ZADD", "z", " 1", "a"], ["ZADD", "z", "1 ", "a"],
    ["ZADD", "z", "", "a"], ["ZADD", "z"], ["ZADD", "z", "1"],
    ["ZADD", "none", "XX", "1", "a"], ["EXISTS", "none"], ["ZADD", "none", "x", "a"],
    ["EXISTS", "none"],
    ["ZRANGE", "z", "0", "-1", "WITHSCORES"], ["ZCARD", "z"], ["ZCARD", "none"],
    # scores: inf, ties by member, odd spellings, -0, tiny and huge
    ["ZADD", "s", "inf", "top", "-inf", "bottom", "+inf", "top2", "-Infinity", "bottom2"],
    ["ZADD", "s", "0", "b", "0", "a", "0", "c", "-0", "z", "0x10", "hex", ".5", "half"],
    ["ZADD", "s", "1e-310", "tiny", "1.2345678901234568e17", "big", "0.1", "tenth"],
    ["ZADD", "s", "4611686018427387904", "p62", "9223372036854775808", "p63"],
    ["ZRANGE", "s", "0", "-1", "WITHSCORES"], ["ZSCORE", "s", "z"], ["ZSCORE", "s", "top"],
    ["ZSCORE", "s", "tenth"], ["ZSCORE", "s", "nope"], ["ZSCORE", "none", "a"],
    ["ZMSCORE", "s", "bottom", "nope", "tiny"], ["ZMSCORE", "none", "a", "b"],
    ["ZINCRBY", "s", "1", "top"], ["ZINCRBY", "s", "-inf", "top"], ["ZINCRBY", "s", "x", "a"],
    ["ZINCRBY", "s", "2.5", "new"], ["ZINCRBY", "s", "-0", "a"], ["ZINCRBY", "s", "1e400", "a"],
    ["ZSCAN", "s", "0"], ["ZSCAN", "s", "0", "MATCH", "b*"], ["ZSCAN", "s", "0", "COUNT", "2"],
    ["ZSCAN", "s", "0", "COUNT", "0"], ["ZSCAN", "s", "0", "COUNT", "x"],
    ["ZSCAN", "s", "0", "TYPE", "zset"], ["ZSCAN", "s", "x"], ["ZSCAN", "s", "-1"],
    ["ZSCAN", "s", "0", "MATCH"], ["ZSCAN", "none", "0", "BOGUS"],
    # ranks and counts
    ["ZRANK", "s", "a"], ["ZREVRANK", "s", "a"], ["ZRANK", "s", "nope"],
    ["ZREVRANK", "none", "a"], ["ZRANK", "s"], ["ZCOUNT", "s", "-inf", "+inf"],
    ["ZCOUNT", "s", "(0", "1"], ["ZCOUNT", "s", "0", "(0.5"], ["ZCOUNT", "s", "(-inf", "(inf"],
    ["ZCOUNT", "s", "1", "0"], ["ZCOUNT", "s", "", "(1"], ["ZCOUNT", "s", "(", "10"],
    ["ZCOUNT", "s", " 1", "1e400"], ["ZCOUNT", "s", "0x1p-1", "1"],
    ["ZCOUNT", "s", "x", "1"], ["ZCOUNT", "s", "1", "nan"], ["ZCOUNT", "s", "1 ", "2"],
    ["ZCOUNT", "none", "0", "1"],
    # ZRANGE and its older forms
    ["ZADD", "r", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "5", "f"],
    ["ZRANGE", "r", "0", "2"], ["ZRANGE", "r", "-2", "-1", "WITHSCORES"],
    ["ZRANGE", "r", "1", "100"], ["ZRANGE", "r", "-100", "1"], ["ZRANGE", "r", "3", "1"],
    ["ZRANGE", "r", "10", "20"], ["ZRANGE", "r", "0", "-1", "REV", "WITHSCORES"],
    ["ZRANGE", "r", "0", "9223372036854775807"], ["ZRANGE", "r", "x", "1"],
    ["ZRANGE", "r", "(1", "5", "BYSCORE"], ["ZRANGE", "r", "5", "(1", "BYSCORE", "REV"],
    ["ZRANGE", "r", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2", "WITHSCORES"],
    ["ZRANGE", "r", "+inf", "-inf", "byscore", "rev", "limit", "1", "-1"],
    ["ZRANGE", "r", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"],
    ["ZRANGE", "r", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "0"],
    ["ZRANGE", "r", "-inf", "+inf", "BYSCORE", "LIMIT", "100", "2"],
    ["ZRANGE", "r", "0", "-1", "LIMIT", "1", "2"], ["ZRANGE", "r", "0", "-1", "LIMIT", "1", "-1"],
    ["ZRANGE", "r", "0", "5", "BYSCORE", "LIMIT", "1"],
    ["ZRANGE", "r", "0", "5", "LIMIT", "x", "1"],
    ["ZRANGE", "r", "x", "5", "BYSCORE"], ["ZRANGE", "r", "[a", "(c", "BYLEX"],
    ["ZRANGE", "r", "0", "1", "BYLEX"], ["ZRANGE", "r", "-", "+", "BYLEX", "WITHSCORES"],
    ["ZRANGE", "r", "0", "1", "REV", "REV"], ["ZRANGE", "r", "0", "1", "BYSCORE", "BYLEX"],
    ["ZRANGE", "r", "0", "1", "BOGUS"], ["ZRANGE", "r", "0"], ["ZRANGE", "none", "0", "-1"],
    ["ZREVRANGE", "r", "0", "2", "WITHSCORES"], ["ZREVRANGE", "r", "-1", "-1"],
    ["ZREVRANGE", "r", "0", "1", "REV"], ["ZREVRANGE", "r", "0", "1", "LIMIT", "0", "1"],
    ["ZRANGEBYSCORE", "r", "2", "(5", "WITHSCORES"], ["ZRANGEBYSCORE", "r", "5", "2"],
    ["ZRANGEBYSCORE", "r", "-inf", "+inf", "LIMIT", "2", "3"],
    ["ZRANGEBYSCORE", "r", "0", "1", "BYLEX"], ["ZRANGEBYSCORE", "r", "0", "1", "REV"],
    ["ZREVRANGEBYSCORE", "r", "+inf", "(2", "WITHSCORES", "LIMIT", "1", "2"],
    ["ZREVRANGEBYSCORE", "r", "2", "5"], ["ZREVRANGEBYSCORE", "r", "x", "1"],
    # order at the edges: negative, tiny and infinite scores, members that prefix others
    ["ZADD", "{o}", "-1", "ab", "-1", "a", "-1", "abc", "-1", "a\x00", "-1", "", "-2", "m2",
     "-1.5", "m15", "-1e-310", "sub", "-0.0", "zero", "1e-310", "plus", "-inf", "ninf",
     "-inf", "ninf0", "inf", "pinf", "inf", "pinf0", "-1.7976931348623157e308", "min"],
    ["ZRANGE", "{o}", "0", "-1", "WITHSCORES"], ["ZREVRANGE", "{o}", "0", "-1", "WITHSCORES"],
    ["ZRANK", "{o}", ""], ["ZRANK", "{o}", "a\x00"], ["ZREVRANK", "{o}", "ab"],
    ["ZRANK", "{o}", "zero"],
    ["ZCOUNT", "{o}", "-1", "-1"], ["ZCOUNT", "{o}", "(-1", "(0"], ["ZCOUNT", "{o}", "-0", "0"],
    ["ZCOUNT", "{o}", "(-1e-310", "(1e-310"], ["ZCOUNT", "{o}", "(-4.9e-324", "(4.9e-324"],
    ["ZRANGEBYSCORE", "{o}", "-inf", "(-1", "WITHSCORES"], ["ZRANGEBYSCORE", "{o}", "(-1", "inf"],
    ["ZRANGEBYSCORE", "{o}", "(-inf", "(inf"], ["ZRANGEBYSCORE", "{o}", "inf", "inf"],
    ["ZRANGEBYSCORE", "{o}", "-inf", "-inf"], ["ZRANGEBYSCORE", "{o}", "(inf", "+inf"],
    ["ZRANGEBYSCORE", "{o}", "-inf", "(-inf"], ["ZREVRANGEBYSCORE", "{o}", "(-1", "-inf"],
    ["ZREVRANGEBYSCORE", "{o}", "inf", "(1.7976931348623157e308", "WITHSCORES"],
    ["ZRANGESTORE", "{o}2", "{o}", "(-2", "(0", "BYSCORE"],
    ["ZRANGE", "{o}2", "0", "-1", "WITHSCORES"],
    ["ZSCAN", "{o}", "0"], ["ZPOPMIN", "{o}", "3"], ["ZPOPMAX", "{o}", "3"],
    ["ZADD", "i", "inf", "b", "inf", "a", "inf", "ab", "inf", "c", "inf", ""],
    ["ZRANGEBYLEX", "i", "-", "+"], ["ZRANGEBYLEX", "i", "(a", "[b"],
    ["ZRANGEBYLEX", "i", "[ab", "+"], ["ZRANGEBYLEX", "i", "(", "(ab"],
    ["ZREVRANGEBYLEX", "i", "+", "(a"],
    ["ZLEXCOUNT", "i", "(ab", "+"], ["ZREMRANGEBYLEX", "i", "(b", "+"], ["ZRANGE", "i", "0", "-1"],
    ["ZADD", "n", "-3", "b", "-3", "a", "-3", "a\x00", "-3", "", "-3", "a\x00\x00"],
    ["ZRANGEBYLEX", "n", "(a", "[b"], ["ZRANGEBYLEX", "n", "-", "(a\x00"],
    ["ZRANGEBYLEX", "n", "[a\x00", "+"], ["ZRANGEBYLEX", "n", "(", "[a"],
    ["ZREVRANGEBYLEX", "n", "[a\x00", "-"], ["ZLEXCOUNT", "n", "[", "(a\x00\x00"],
    ["ZREMRANGEBYLEX", "n", "[a", "[a\x00"], ["ZRANGE", "n", "0", "-1"],
    # lex ranges: one score, and (undefined in Redis's documentation) several
    ["ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "aa", "0", "B"],
    ["ZRANGEBYLEX", "l", "-", "+"], ["ZRANGEBYLEX", "l", "[b", "(e"],
    ["ZRANGEBYLEX", "l", "(a", "[c", "LIMIT", "1", "2"], ["ZRANGEBYLEX", "l", "+", "-"],
    ["ZRANGEBYLEX", "l", "[", "(b"], ["ZRANGEBYLEX", "l", "b", "e"], ["ZRANGEBYLEX", "l", "", "+"],
    ["ZRANGEBYLEX", "l", "-", "+", "WITHSCORES"], ["ZREVRANGEBYLEX", "l", "+", "-"],
    ["ZREVRANGEBYLEX", "l", "(e", "[b", "LIMIT", "1", "2"], ["ZREVRANGEBYLEX", "l", "[b", "[e"],
    ["ZRANGE", "l", "[e", "(a", "BYLEX", "REV", "LIMIT", "0", "-1"],
    ["ZLEXCOUNT", "l", "-", "+"], ["ZLEXCOUNT", "l", "(a", "[c"], ["ZLEXCOUNT", "l", "[c", "[c"],
    ["ZLEXCOUNT", "l", "(c", "[c"], ["ZLEXCOUNT", "l", "a", "+"], ["ZLEXCOUNT", "none", "-", "+"],
    ["ZADD", "mixed", "5", "a", "1", "b", "3", "c", "2", "d", "4", "e", "9", "f"],
    ["ZRANGEBYLEX", "mixed", "-", "+"], ["ZRANGEBYLEX", "mixed", "[b", "[d"],
    ["ZRANGEBYLEX", "mixed", "-", "[c"], ["ZRANGEBYLEX", "mixed", "[c", "+"],
    ["ZREVRANGEBYLEX", "mixed", "[d", "-"], ["ZREVRANGEBYLEX", "mixed", "+", "[e"],
    ["ZLEXCOUNT", "mixed", "-", "[d"], ["ZREMRANGEBYLEX", "mixed", "-", "[c"],
    ["ZRANGE", "mixed", "0", "-1"],
    # removing, popping: an emptied sorted set is gone
    ["ZREM", "r", "a", "nope", "a"], ["ZREM", "none", "a"], ["ZREMRANGEBYRANK", "r", "0", "0"],
    ["ZREMRANGEBYRANK", "r", "-1", "-1"], ["ZREMRANGEBYRANK", "r", "5", "1"],
    ["ZREMRANGEBYRANK", "r", "x", "1"], ["ZREMRANGEBYSCORE", "r", "(2", "3"],
    ["ZREMRANGEBYSCORE", "r", "x", "3"], ["ZREMRANGEBYLEX", "l", "[aa", "(c"],
    ["ZREMRANGEBYLEX", "l", "x", "+"], ["ZRANGE", "r", "0", "-1", "WITHSCORES"],
    ["ZRANGE", "l", "0", "-1"], ["ZREMRANGEBYLEX", "l", "-", "+"], ["EXISTS", "l"],
    ["ZREMRANGEBYSCORE", "r", "-inf", "+inf"], ["EXISTS", "r"],
    ["ZREMRANGEBYRANK", "none", "0", "1"],
    ["ZADD", "p", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"], ["ZPOPMIN", "p"],
    ["ZPOPMAX", "p"], ["ZPOPMIN", "p", "2"], ["ZPOPMAX", "p", "1"], ["ZPOPMIN", "p", "0"],
    ["ZPOPMIN", "p", "-1"], ["ZPOPMIN", "p", "x"], ["ZPOPMIN", "p", "1", "2"],
    ["ZPOPMAX", "p", "10"], ["EXISTS", "p"], ["ZPOPMIN", "p"], ["ZPOPMAX", "none", "3"],
    ["ZADD", "q", "1", "a"], ["ZREM", "q", "a"], ["EXISTS", "q"],
    # random picks of the whole set, and their errors
    ["ZADD", "w", "1", "a", "2", "b", "3", "c"], ["ZRANDMEMBER", "none"],
    ["ZRANDMEMBER", "w", "5"], ["ZRANDMEMBER", "w", "3", "WITHSCORES"],
    ["ZRANDMEMBER", "w", "0"], ["ZRANDMEMBER", "none", "5"], ["ZRANDMEMBER", "w", "x"],
    ["ZRANDMEMBER", "w", "1", "BOGUS"], ["ZRANDMEMBER", "w", "1", "WITHSCORES", "x"],
    ["ZRANDMEMBER", "w", "-9223372036854775808"],
    ["ZRANDMEMBER", "w", "-4611686018427387904", "WITHSCORES"],
    # the wrong type, both ways
    ["SET", "str", "v"], ["ZADD", "str", "1", "a"], ["ZSCORE", "str", "a"],
    ["ZRANGE", "str", "0", "-1"], ["ZRANGE", "str", "x", "-1"], ["ZCARD", "str"],
    ["ZPOPMIN", "str", "0"], ["ZRANDMEMBER", "str", "0"], ["ZSCAN", "str", "0", "BOGUS"],
    ["ZINCRBY", "str", "x", "a"], ["ZREMRANGEBYLEX", "str", "-", "+"], ["ZMSCORE", "str", "a"],
    ["HSET", "h", "f", "v"], ["ZRANK", "h", "f"], ["ZCOUNT", "h", "0", "1"],
    ["GET", "w"], ["APPEND", "w", "x"], ["INCR", "w"], ["HGET", "w", "a"], ["TYPE", "w"],
    ["SET", "w", "plain"], ["TYPE", "w"],
    # several keys (hash-tagged: one worker): union, intersection, difference, stores
    ["ZADD", "{t}a", "1", "x", "2", "y", "3", "z"],
    ["ZADD", "{t}b", "10", "y", "20", "z", "30", "w", "0.5", "v"],
    ["ZADD", "{t}inf", "inf", "x", "-inf", "y"], ["HSET", "{t}h", "f", "v"],
    ["ZUNION", "2", "{t}a", "{t}b", "WITHSCORES"], ["ZUNION", "2", "{t}a", "{t}none"],
    ["ZUNION", "2", "{t}a", "{t}b", "WEIGHTS", "2", "0.5", "AGGREGATE", "MAX", "WITHSCORES"],
    ["ZUNION", "2", "{t}a", "{t}b", "aggregate", "min", "withscores"],
    ["ZUNION", "2", "{t}a", "{t}inf", "WEIGHTS", "0", "1", "WITHSCORES"],
    ["ZUNION", "2", "{t}inf", "{t}a", "WEIGHTS", "-1", "inf", "WITHSCORES"],
    ["ZINTER", "2", "{t}a", "{t}b", "WITHSCORES"],
    ["ZINTER", "2", "{t}a", "{t}inf", "WEIGHTS", "1", "0", "WITHSCORES"],
    ["ZINTER", "2", "{t}a", "{t}inf", "WEIGHTS", "1", "0", "AGGREGATE", "MIN", "WITHSCORES"],
    ["ZINTER", "2", "{t}a", "{t}none"], ["ZDIFF", "2", "{t}b", "{t}a", "WITHSCORES"],
    ["ZDIFF", "1", "{t}a"], ["ZINTERCARD", "2", "{t}a", "{t}b"],
    ["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "1"], ["ZINTERCARD", "1", "{t}a", "LIMIT", "-1"],
    ["ZUNIONSTORE", "{t}d", "2", "{t}a", "{t}b", "WEIGHTS", "1", "2"],
    ["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"], ["ZINTERSTORE", "{t}d", "2", "{t}a", "{t}b"],
    ["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"], ["ZDIFFSTORE", "{t}d", "2", "{t}a", "{t}b"],
    ["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"], ["ZINTERSTORE", "{t}d", "2", "{t}a", "{t}none"],
    ["EXISTS", "{t}d"], ["SET", "{t}d", "v"], ["EXPIRE", "{t}d", "100"],
    ["ZUNIONSTORE", "{t}d", "1", "{t}a"], ["TYPE", "{t}d"], ["TTL", "{t}d"],
    ["ZUNION", "0", "{t}a"], ["ZUNION", "x", "{t}a"], ["ZUNION", "3", "{t}a", "{t}b"],
    ["ZUNION", "1", "{t}a", "WEIGHTS"], ["ZUNION", "1", "{t}a", "WEIGHTS", "x"],
    ["ZUNION", "1", "{t}a", "AGGREGATE", "AVG"], ["ZDIFF", "1", "{t}a", "WEIGHTS", "1"],
    ["ZUNIONSTORE", "{t}d", "1", "{t}a", "WITHSCORES"], ["ZINTERSTORE", "{t}d", "0", "{t}a"],
    ["ZINTERCARD", "1", "{t}a", "WITHSCORES"], ["ZUNION", "2", "{t}a", "{t}h", "BOGUS"],
    ["ZINTERSTORE", "{t}d", "2", "{t}h", "{t}a"],
    ["ZRANGESTORE", "{t}d", "{t}b", "0", "1"], ["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"],
    ["ZRANGESTORE", "{t}d", "{t}b", "+inf", "(10", "BYSCORE", "REV", "LIMIT", "0", "1"],
    ["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"], ["ZRANGESTORE", "{t}d", "{t}b", "5", "9"],
    ["EXISTS", "{t}d"], ["ZRANGESTORE", "{t}d", "{t}b", "0", "-1", "WITHSCORES"],
    ["ZRANGESTORE", "{t}d", "{t}h", "0", "-1"], ["ZRANGESTORE", "{t}d", "{t}b", "0"],
    # a transaction of sorted set commands
    ["MULTI"], ["ZADD", "{t}m", "1", "a", "2", "b"], ["ZINCRBY", "{t}m", "5", "a"],
    ["ZRANGE", "{t}m", "0", "-1", "WITHSCORES"], ["ZSCORE", "{t}m", "nope"],
    ["ZPOPMIN", "{t}m"], ["ZUNIONSTORE", "{t}n", "2", "{t}m", "{t}a"], ["ZSCAN", "{t}n", "0"],
    ["ZRANGE", "{t}h", "0", "1"], ["EXEC"],
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_sorted_set_commands_answer_as_redis(stores, oracle, workers, protocol):
    ours = replies(stores[workers].port, SCRIPT, protocol)
    theirs = replies(oracle, SCRIPT, protocol)
    assert_same(SCRIPT, ours, theirs, UNORDERED)


PICKS = [["ZADD", "k", "1", "a", "2", "b", "3", "c", "4", "d"], ["ZRANDMEMBER", "k"],
         ["ZRANDMEMBER", "k", "2"], ["ZRANDMEMBER", "k", "-6"],
         ["ZRANDMEMBER", "k", "3", "WITHSCORES"], ["ZRANDMEMBER", "k", "-5", "WITHSCORES"]]


def _pairs(reply: list, protocol: int) -> list:
    """A WITHSCORES reply as [member, score] pairs (RESP2's is flat)."""
    return reply if protocol == 3 else [list(p) for p in zip(reply[::2], reply[1::2],
                                                             strict=True)]


@pytest.mark.parametrize("protocol", [2, 3])
def test_random_members_are_members(stores, oracle, protocol):
    """ZRANDMEMBER's picks, on both: as many as asked, members of the set with their
    scores, each at most once for a positive count."""
    scores = {b"a": 1.0, b"b": 2.0, b"c": 3.0, b"d": 4.0}
    for port in (stores[1].port, oracle):
        one, two, six, three, five = replies(port, PICKS, protocol)[1:]
        assert one in scores
        assert len(set(two)) == 2 and set(two) <= set(scores)
        assert len(six) == 6 and set(six) <= set(scores)
        three, five = _pairs(three, protocol), _pairs(five, protocol)
        assert len(three) == 3 and len({member for member, _ in three}) == 3
        assert len(five) == 5
        assert all(float(score) == scores[member] for member, score in three + five)


def _clientCalls(port: int, protocol: int) -> list:
    r = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    try:
        r.flushall()
        return [r.zadd("z", {"a": 1, "b": 2.5, "c": -3}), r.zadd("z", {"a": 4}, ch=True),
                r.zrange("z", 0, -1, withscores=True), r.zrange("z", 0, 0),
                r.zrevrange("z", 0, -1, withscores=True), r.zscore("z", "b"),
                r.zscore("z", "nope"), r.zincrby("z", 1.5, "b"), r.zmscore("z", ["a", "x"]),
                r.zrangebyscore("z", "(0", "+inf", withscores=True), r.zrank("z", "b"),
                r.zcard("z"), r.zpopmin("z"), r.zpopmax("z", 2), r.zpopmin("z"),
                r.exists("z"), r.zadd("y", {"m": 1}, incr=True),
                r.zunionstore("{t}u", {"{t}a": 2, "{t}b": 1}),
                r.zadd("{t}a", {"x": 1, "y": 2}), r.zadd("{t}b", {"y": 3}),
                r.zinter(["{t}a", "{t}b"], withscores=True),
                r.zunion(["{t}a", "{t}b"], withscores=True, aggregate="MAX")]
    finally:
        r.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_parses_the_same_results(stores, oracle, protocol):
    assert _clientCalls(stores[2].port, protocol) == _clientCalls(oracle, protocol)
