"""The store's hash commands against a real redis-server (the oracle): the same commands
on both, the same replies, in RESP2 and RESP3, on one worker and on two."""

from __future__ import annotations

import pytest

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UNORDERED = frozenset({"HRANDFIELD"})

SCRIPT = [
    ["HSET", "h", "a", "1", "b", "2"], ["HSET", "h", "a", "3", "c", "4"], ["HGET", "h", "a"],
    ["HGET", "h", "zz"], ["HGET", "nokey", "a"], ["HMGET", "h", "a", "zz", "c"],
    ["HMGET", "nokey", "a"], ["HGETALL", "h"], ["HGETALL", "nokey"], ["HLEN", "h"],
    ["HKEYS", "h"], ["HVALS", "h"], ["HEXISTS", "h", "a"], ["HEXISTS", "h", "zz"],
    ["HSTRLEN", "h", "a"], ["HSTRLEN", "h", "zz"], ["HSETNX", "h", "a", "9"],
    ["HSETNX", "h", "d", "9"], ["HDEL", "h", "a", "zz", "a"], ["HDEL", "nokey", "a"],
    ["HINCRBY", "h", "n", "5"], ["HINCRBY", "h", "n", "-7"], ["HINCRBY", "h", "n", "x"],
    ["HINCRBY", "h", "d", "1"], ["HSET", "h", "s", "abc"], ["HINCRBY", "h", "s", "1"],
    ["HSET", "h", "big", "9223372036854775807"], ["HINCRBY", "h", "big", "1"],
    ["HINCRBYFLOAT", "h", "f", "10.5"], ["HINCRBYFLOAT", "h", "f", "0.1"],
    ["HINCRBYFLOAT", "h", "f", "-5e3"], ["HINCRBYFLOAT", "h", "s", "1"],
    ["HINCRBYFLOAT", "h", "f", "x"], ["HINCRBYFLOAT", "h", "f", "inf"], ["HGET", "h", "f"],
    ["HMSET", "m", "x", "1", "y", "2"], ["HGETALL", "m"], ["HSET", "m", "x"],
    ["HSET", "m"], ["HMGET", "m"], ["HLEN", "m", "extra"],
    ["HSCAN", "m", "0"], ["HSCAN", "m", "0", "MATCH", "x*"], ["HSCAN", "m", "0", "COUNT", "0"],
    ["HSCAN", "m", "x"], ["HSCAN", "m", "0", "BOGUS", "1"],
    ["HRANDFIELD", "nokey"], ["HRANDFIELD", "m", "5"], ["HRANDFIELD", "m", "0"],
    ["HRANDFIELD", "m", "2", "WITHVALUES"], ["HRANDFIELD", "m", "x"],
    ["SET", "str", "v"], ["HSET", "str", "a", "1"], ["HGET", "str", "a"],
    ["HGETALL", "str"], ["HLEN", "str"], ["HINCRBY", "str", "a", "1"], ["TYPE", "m"],
    ["GET", "m"], ["APPEND", "m", "x"], ["INCR", "m"], ["STRLEN", "m"], ["GETDEL", "m"],
    ["SET", "m", "x", "GET"], ["MGET", "m", "str"], ["EXISTS", "m"],
    ["HDEL", "m", "x", "y"], ["EXISTS", "m"], ["TYPE", "m"],
    ["HSET", "{t}a", "f", "1"], ["EXPIRE", "{t}a", "100"], ["RENAME", "{t}a", "{t}b"],
    ["HGETALL", "{t}b"], ["TTL", "{t}b"], ["SET", "{t}b", "plain"], ["TYPE", "{t}b"],
    ["MULTI"], ["HSET", "{t}c", "f", "1"], ["HINCRBY", "{t}c", "f", "2"],
    ["HGETALL", "{t}c"], ["GET", "{t}c"], ["EXEC"],
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_hash_commands_answer_as_redis(stores, oracle, workers, protocol):
    ours = replies(stores[workers].port, SCRIPT, protocol)
    theirs = replies(oracle, SCRIPT, protocol)
    assert_same(SCRIPT, ours, theirs, UNORDERED)
