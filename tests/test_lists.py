"""The store's list commands against a real redis-server (the oracle): the same commands
on both, the same replies, in RESP2 and RESP3, on one worker and on two."""

from __future__ import annotations

import pytest
import redis

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MIN = "-9223372036854775808"

SCRIPT = [
    # pushes, lengths, ranges
    ["RPUSH", "l", "a", "b", "c"], ["LPUSH", "l", "x", "y"], ["RPUSH", "l", "a", "b"],
    ["LRANGE", "l", "0", "-1"], ["LLEN", "l"], ["LLEN", "nokey"],
    ["LRANGE", "l", "1", "2"], ["LRANGE", "l", "-3", "-1"], ["LRANGE", "l", "-100", "100"],
    ["LRANGE", "l", "5", "6"], ["LRANGE", "l", "4", "2"], ["LRANGE", "l", "7", "9"],
    ["LRANGE", "l", "-1", "-2"], ["LRANGE", "nokey", "0", "-1"], ["LRANGE", "l", "x", "1"],
    ["LRANGE", "l", "0", "1.5"], ["LRANGE", "nokey", "0", "x"],
    ["LRANGE", "l", "0", "9223372036854775808"], ["LRANGE", "l", "0"],
    ["LPUSHX", "l", "p", "q"], ["RPUSHX", "l", "r"], ["LPUSHX", "nokey", "a"],
    ["RPUSHX", "nokey", "a"], ["EXISTS", "nokey"], ["LPUSH", "l"], ["RPUSHX", "l"],
    ["LRANGE", "l", "0", "-1"],
    # LINDEX, LSET, LINSERT
    ["LINDEX", "l", "0"], ["LINDEX", "l", "-1"], ["LINDEX", "l", "9"], ["LINDEX", "l", "10"],
    ["LINDEX", "l", "-11"], ["LINDEX", "l", "x"], ["LINDEX", "nokey", "x"],
    ["LINDEX", "nokey", "0"], ["LINDEX", "l"],
    ["LSET", "l", "0", "first"], ["LSET", "l", "-1", "last"], ["LSET", "l", "10", "v"],
    ["LSET", "l", "-11", "v"], ["LSET", "l", "x", "v"], ["LSET", "nokey", "0", "v"],
    ["LSET", "nokey", "x", "v"], ["LSET", "l", "0"], ["LRANGE", "l", "0", "-1"],
    ["LINSERT", "l", "BEFORE", "a", "A"], ["LINSERT", "l", "after", "a", "A2"],
    ["LINSERT", "l", "AFTER", "last", "end"], ["LINSERT", "l", "before", "zz", "v"],
    ["LINSERT", "l", "middle", "a", "v"], ["LINSERT", "nokey", "BEFORE", "a", "v"],
    ["LINSERT", "nokey", "middle", "a", "v"], ["EXISTS", "nokey"],
    ["LINSERT", "l", "BEFORE", "a"], ["LRANGE", "l", "0", "-1"],
    # LPOS
    ["DEL", "p"], ["RPUSH", "p", "a", "b", "c", "a", "b", "a", "c"], ["LPOS", "p", "a"],
    ["LPOS", "p", "c"], ["LPOS", "p", "zz"], ["LPOS", "nokey", "a"],
    ["LPOS", "nokey", "a", "COUNT", "1"], ["LPOS", "p", "zz", "COUNT", "2"],
    ["LPOS", "p", "a", "RANK", "2"], ["LPOS", "p", "a", "RANK", "-1"],
    ["LPOS", "p", "a", "RANK", "-3"], ["LPOS", "p", "a", "RANK", "4"],
    ["LPOS", "p", "a", "COUNT", "0"], ["LPOS", "p", "a", "COUNT", "2"],
    ["LPOS", "p", "a", "rank", "-1", "count", "2"], ["LPOS", "p", "a", "RANK", "2", "COUNT", "0"],
    ["LPOS", "p", "a", "MAXLEN", "4"], ["LPOS", "p", "a", "RANK", "2", "MAXLEN", "3"],
    ["LPOS", "p", "a", "COUNT", "0", "MAXLEN", "4"],
    ["LPOS", "p", "c", "RANK", "-1", "MAXLEN", "1"],
    ["LPOS", "p", "a", "RANK", "-2", "COUNT", "0", "MAXLEN", "3"],
    ["LPOS", "p", "a", "RANK", "9223372036854775807"], ["LPOS", "p", "a", "RANK", MIN],
    ["LPOS", "p", "a", "RANK", MIN, "COUNT", "1"], ["LPOS", "p", "a", "RANK", MIN, "MAXLEN", "2"],
    ["LPOS", "p", "a", "COUNT", "9223372036854775807", "MAXLEN", "9223372036854775807"],
    ["LPOS", "p", "a", "RANK", "0"], ["LPOS", "p", "a", "RANK", "x"],
    ["LPOS", "p", "a", "RANK", "9223372036854775808"], ["LPOS", "p", "a", "COUNT", "-1"],
    ["LPOS", "p", "a", "COUNT", "x"], ["LPOS", "p", "a", "MAXLEN", "-1"],
    ["LPOS", "p", "a", "MAXLEN", "x"], ["LPOS", "p", "a", "RANK"], ["LPOS", "p", "a", "BOGUS", "1"],
    ["LPOS", "nokey", "a", "RANK", "0"], ["LPOS", "p"],
    # LREM
    ["LREM", "p", "2", "a"], ["LRANGE", "p", "0", "-1"], ["RPUSH", "p", "a", "b", "a"],
    ["LREM", "p", "-2", "a"], ["LRANGE", "p", "0", "-1"], ["LREM", "p", "0", "b"],
    ["LRANGE", "p", "0", "-1"], ["LREM", "p", "1", "zz"], ["LREM", "nokey", "1", "a"],
    ["LREM", "p", "x", "a"], ["LREM", "nokey", "x", "a"], ["LREM", "p", "1"],
    ["LREM", "p", "0", "c"], ["LREM", "p", "-5", "a"], ["EXISTS", "p"], ["TYPE", "p"],
    # LTRIM
    ["RPUSH", "t", "0", "1", "2", "3", "4", "5", "6"], ["LTRIM", "t", "1", "-2"],
    ["LRANGE", "t", "0", "-1"], ["LTRIM", "t", "-100", "100"], ["LRANGE", "t", "0", "-1"],
    ["LTRIM", "t", "3", "3"], ["LRANGE", "t", "0", "-1"], ["LTRIM", "t", "x", "1"],
    ["LTRIM", "nokey", "0", "1"], ["LTRIM", "nokey", "x", "1"], ["LTRIM", "t", "0"],
    ["LTRIM", "t", "1", "0"], ["EXISTS", "t"], ["TYPE", "t"],
    ["RPUSH", "t", "a", "b"], ["LTRIM", "t", "5", "10"], ["EXISTS", "t"],
    # LPOP, RPOP
    ["RPUSH", "q", "a", "b", "c", "d", "e"], ["LPOP", "q"], ["RPOP", "q"],
    ["LPOP", "q", "1"], ["RPOP", "q", "0"], ["LPOP", "q", "0"], ["LPOP", "q", "-1"],
    ["RPOP", "q", "x"], ["LPOP", "q", "1", "2"], ["RPOP", "q", "1", "2"], ["LPOP", "q", "01"],
    ["LPOP", "nokey"], ["RPOP", "nokey"], ["LPOP", "nokey", "0"], ["RPOP", "nokey", "2"],
    ["LPOP", "nokey", "-1"], ["LPOP"], ["RPOP", "q", "10"], ["EXISTS", "q"], ["TYPE", "q"],
    ["RPUSH", "q", "a"], ["RPOP", "q"], ["EXISTS", "q"],
    # LMOVE, RPOPLPUSH (hash-tagged: both keys on one worker)
    ["RPUSH", "{t}a", "1", "2", "3"], ["LMOVE", "{t}a", "{t}b", "LEFT", "RIGHT"],
    ["LMOVE", "{t}a", "{t}b", "right", "left"], ["LMOVE", "{t}a", "{t}b", "LEFT", "LEFT"],
    ["LRANGE", "{t}b", "0", "-1"], ["EXISTS", "{t}a"], ["LMOVE", "{t}a", "{t}b", "LEFT", "LEFT"],
    ["LMOVE", "{t}b", "{t}b", "LEFT", "RIGHT"], ["LMOVE", "{t}b", "{t}b", "RIGHT", "LEFT"],
    ["LMOVE", "{t}b", "{t}b", "LEFT", "LEFT"], ["LRANGE", "{t}b", "0", "-1"],
    ["LMOVE", "{t}b", "{t}a", "MIDDLE", "LEFT"], ["LMOVE", "{t}b", "{t}a", "LEFT", "UP"],
    ["LMOVE", "{t}b", "{t}a", "LEFT"], ["RPOPLPUSH", "{t}b", "{t}a"],
    ["RPOPLPUSH", "{t}b", "{t}b"], ["LRANGE", "{t}b", "0", "-1"], ["LRANGE", "{t}a", "0", "-1"],
    ["RPOPLPUSH", "{t}c", "{t}a"], ["RPOPLPUSH", "{t}a"], ["RPUSH", "{t}d", "only"],
    ["LMOVE", "{t}d", "{t}d", "RIGHT", "LEFT"], ["LRANGE", "{t}d", "0", "-1"],
    ["SET", "{t}s", "v"], ["LMOVE", "{t}a", "{t}s", "LEFT", "LEFT"], ["LRANGE", "{t}a", "0", "-1"],
    ["LMOVE", "{t}s", "{t}a", "LEFT", "LEFT"], ["RPOPLPUSH", "{t}s", "{t}a"],
    ["RPOPLPUSH", "{t}c", "{t}s"], ["RPOPLPUSH", "{t}a", "{t}e"], ["RPOPLPUSH", "{t}e", "{t}f"],
    ["EXISTS", "{t}e"], ["LRANGE", "{t}f", "0", "-1"],
    # the wrong type, both ways
    ["SET", "str", "v"], ["LPUSH", "str", "a"], ["RPUSH", "str", "a"], ["LPUSHX", "str", "a"],
    ["RPUSHX", "str", "a"], ["LPOP", "str"], ["RPOP", "str", "0"], ["LLEN", "str"],
    ["LRANGE", "str", "0", "-1"], ["LRANGE", "str", "x", "1"], ["LINDEX", "str", "0"],
    ["LSET", "str", "0", "v"], ["LINSERT", "str", "BEFORE", "a", "b"],
    ["LINSERT", "str", "middle", "a", "b"], ["LREM", "str", "0", "a"], ["LTRIM", "str", "0", "1"],
    ["LPOS", "str", "a"], ["LPOS", "str", "a", "RANK", "0"], ["GET", "str"],
    ["RPUSH", "m", "a", "b"], ["TYPE", "m"], ["GET", "m"], ["APPEND", "m", "x"], ["INCR", "m"],
    ["STRLEN", "m"], ["GETDEL", "m"], ["HGET", "m", "a"], ["SET", "m", "x", "GET"],
    ["MGET", "m", "str"], ["LRANGE", "m", "0", "-1"], ["SET", "m", "x"], ["TYPE", "m"],
    # RENAME keeps the TTL; a transaction of list commands
    ["RPUSH", "{t}g", "a", "b"], ["EXPIRE", "{t}g", "100"], ["RENAME", "{t}g", "{t}h"],
    ["LRANGE", "{t}h", "0", "-1"], ["TTL", "{t}h"], ["EXISTS", "{t}g"],
    ["MULTI"], ["RPUSH", "{t}i", "a", "b", "c"], ["LPOP", "{t}i"], ["LPOP", "{t}i", "5"],
    ["LPOP", "{t}i", "5"], ["RPOP", "{t}i"], ["LPOS", "{t}i", "a"], ["LINDEX", "{t}i", "0"],
    ["LPUSH", "{t}i", "x"], ["LMOVE", "{t}i", "{t}j", "LEFT", "RIGHT"],
    ["LRANGE", "{t}j", "0", "-1"], ["GET", "{t}j"], ["LSET", "{t}i", "0", "v"], ["EXEC"],
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_list_commands_answer_as_redis(stores, oracle, workers, protocol):
    ours = replies(stores[workers].port, SCRIPT, protocol)
    theirs = replies(oracle, SCRIPT, protocol)
    assert_same(SCRIPT, ours, theirs)


def test_a_client_uses_lists(stores):
    r = redis.Redis(port=stores[2].port, protocol=3, socket_timeout=10)
    try:
        assert r.rpush("queue", "a", "b", "c") == 3
        assert r.lpush("queue", "z") == 4
        assert r.lrange("queue", 0, -1) == [b"z", b"a", b"b", b"c"]
        assert r.lpop("queue") == b"z"
        assert r.rpop("queue", 2) == [b"c", b"b"]
        assert r.lpos("queue", "a") == 0
        assert r.lpop("missing") is None
        assert r.lpop("missing", 2) is None
        r.rpush("{q}src", "1", "2")
        assert r.lmove("{q}src", "{q}dst", "LEFT", "RIGHT") == b"1"
        assert r.rpoplpush("{q}src", "{q}dst") == b"2"
        assert r.lrange("{q}dst", 0, -1) == [b"2", b"1"]
        assert r.exists("{q}src") == 0
        assert r.type("{q}dst") == b"list"
    finally:
        r.close()
