"""The store's set commands against a real redis-server (the oracle): the same commands
on both, the same replies, in RESP2 and RESP3, on one worker and on two."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# replies whose order Redis leaves unspecified (the script only has these where the
# members they answer are certain)
UNORDERED = frozenset({"SMEMBERS", "SINTER", "SUNION", "SDIFF", "SPOP", "SRANDMEMBER"})

SCRIPT = [
    # adding, removing, membership and size
    ["SADD", "s", "a", "b", "c"], ["SADD", "s", "c", "d", "d"], ["SADD", "s"],
    ["SCARD", "s"], ["SCARD", "nokey"], ["SCARD", "s", "extra"], ["SMEMBERS", "s"],
    ["SMEMBERS", "nokey"], ["SMEMBERS", "s", "extra"], ["SISMEMBER", "s", "a"],
    ["SISMEMBER", "s", "zz"], ["SISMEMBER", "nokey", "a"], ["SISMEMBER", "s"],
    ["SMISMEMBER", "s", "a", "zz", "d", "a"], ["SMISMEMBER", "nokey", "a"], ["SMISMEMBER", "s"],
    ["SREM", "s", "a", "zz", "a"], ["SREM", "nokey", "a"], ["SREM", "s"], ["SMEMBERS", "s"],
    ["SADD", "n", "3", "1", "2", "01"], ["SMEMBERS", "n"], ["SISMEMBER", "n", "01"],
    ["TYPE", "s"],
    # a set emptied by SREM, SPOP or SMOVE is gone (and its TTL with it)
    ["SADD", "e", "x", "y"], ["EXPIRE", "e", "100"], ["SREM", "e", "x", "y"], ["EXISTS", "e"],
    ["TYPE", "e"], ["SADD", "e", "x"], ["TTL", "e"], ["SPOP", "e"], ["EXISTS", "e"],
    ["SADD", "e", "x", "y"], ["SPOP", "e", "5"], ["EXISTS", "e"], ["SADD", "e", "x"],
    ["SPOP", "e", "1"], ["EXISTS", "e"],
    # SPOP and SRANDMEMBER where their answer is certain, and their errors
    ["SPOP", "nokey"], ["SPOP", "nokey", "2"], ["SPOP", "nokey", "0"], ["SPOP", "s", "0"],
    ["SPOP", "s", "-1"], ["SPOP", "s", "-0"], ["SPOP", "s", "x"],
    ["SPOP", "s", "9223372036854775808"], ["SPOP", "s", "1", "2"], ["SCARD", "s"],
    ["SRANDMEMBER", "nokey"], ["SRANDMEMBER", "nokey", "2"], ["SRANDMEMBER", "nokey", "-2"],
    ["SRANDMEMBER", "s", "0"], ["SRANDMEMBER", "s", "x"],
    ["SRANDMEMBER", "s", "-9223372036854775808"], ["SRANDMEMBER", "s", "9223372036854775808"],
    ["SRANDMEMBER", "s", "1", "2"], ["SRANDMEMBER", "s", "10"],
    ["SRANDMEMBER", "s", "9223372036854775807"], ["SADD", "one", "x"], ["SRANDMEMBER", "one"],
    ["SRANDMEMBER", "one", "-3"], ["SRANDMEMBER", "one", "1"], ["SPOP", "one", "3"],
    ["SPOP", "s", "3"], ["EXISTS", "s"],
    # SSCAN: the whole set at once (certain where one member matches, or the set is an
    # intset, which Redis scans whole whatever the cursor)
    ["SADD", "sc", "alpha", "beta", "gamma", "1"], ["SSCAN", "sc", "0", "MATCH", "a*"],
    ["SSCAN", "sc", "0", "MATCH", "[bx]et?"], ["SSCAN", "sc", "0", "match", "g*", "COUNT", "100"],
    ["SSCAN", "sc", "0", "MATCH", "a*", "MATCH", "b*"], ["SSCAN", "sc", "0", "MATCH", "zz*"],
    ["SSCAN", "sc", "-0", "MATCH", "1"], ["SSCAN", "sc", "+0", "MATCH", "1"],
    ["SSCAN", "sc", "", "MATCH", "1"], ["SADD", "i", "3", "1", "2"],
    ["SSCAN", "i", "18446744073709551615", "MATCH", "2"],
    ["SSCAN", "i", "-18446744073709551615", "MATCH", "2"], ["SSCAN", "nokey", "0"],
    ["SSCAN", "nokey", "0", "BOGUS", "1"], ["SSCAN", "nokey", "x"], ["SSCAN", "sc", "x"],
    ["SSCAN", "sc", "+"], ["SSCAN", "sc", " 1"], ["SSCAN", "sc", "18446744073709551616"],
    ["SSCAN", "sc", "0", "COUNT", "0"], ["SSCAN", "sc", "0", "COUNT", "x"],
    ["SSCAN", "sc", "0", "BOGUS", "1"], ["SSCAN", "sc", "0", "MATCH"], ["SSCAN", "sc"],
    ["SSCAN", "sc", "0", "TYPE", "set"], ["SSCAN", "sc", "0", "TYPE", "set", "COUNT", "x"],
    ["SSCAN", "sc", "0", "COUNT", "x", "TYPE", "set"], ["SSCAN", "sc", "0", "NOVALUES"],
    # WRONGTYPE both ways
    ["SET", "str", "v"], ["SADD", "str", "a"], ["SREM", "str", "a"], ["SMEMBERS", "str"],
    ["SISMEMBER", "str", "a"], ["SMISMEMBER", "str", "a"], ["SCARD", "str"], ["SPOP", "str"],
    ["SPOP", "str", "0"], ["SPOP", "str", "x"], ["SRANDMEMBER", "str"],
    ["SRANDMEMBER", "str", "0"], ["SRANDMEMBER", "str", "x"], ["SSCAN", "str", "0"],
    ["SSCAN", "str", "0", "BOGUS"], ["SSCAN", "str", "x"], ["GET", "str"],
    ["SADD", "m", "a"], ["TYPE", "m"], ["GET", "m"], ["APPEND", "m", "x"], ["INCR", "m"],
    ["STRLEN", "m"], ["GETDEL", "m"], ["HGET", "m", "a"], ["HSET", "m", "a", "1"],
    ["SET", "m", "x", "GET"], ["MGET", "m", "str"], ["SMEMBERS", "m"], ["SET", "m", "x"],
    ["TYPE", "m"],
    # over several keys (one hash tag: one worker)
    ["SADD", "{t}a", "a", "b", "c", "d"], ["SADD", "{t}b", "c", "d", "e"],
    ["SADD", "{t}c", "d", "x"], ["SET", "{t}str", "v"],
    ["SINTER", "{t}a", "{t}b"], ["SINTER", "{t}a", "{t}b", "{t}c"], ["SINTER", "{t}a"],
    ["SINTER", "{t}a", "{t}none"], ["SINTER", "{t}none"], ["SINTER", "{t}a", "{t}str"],
    ["SINTER", "{t}none", "{t}str"], ["SINTER", "{t}str", "{t}a"], ["SINTER"],
    ["SUNION", "{t}a", "{t}b", "{t}c"], ["SUNION", "{t}none", "{t}c"], ["SUNION", "{t}none"],
    ["SUNION", "{t}c", "{t}str"], ["SUNION", "{t}none", "{t}str"], ["SUNION"],
    ["SDIFF", "{t}a", "{t}b", "{t}c"], ["SDIFF", "{t}a", "{t}none"], ["SDIFF", "{t}none", "{t}a"],
    ["SDIFF", "{t}a", "{t}a"], ["SDIFF", "{t}a", "{t}str"], ["SDIFF", "{t}none", "{t}str"],
    ["SDIFF", "{t}str", "{t}a"], ["SDIFF"],
    ["SINTERSTORE", "{t}d", "{t}a", "{t}b"], ["SMEMBERS", "{t}d"],
    ["SINTERSTORE", "{t}d", "{t}a", "{t}none"], ["EXISTS", "{t}d"],
    ["SUNIONSTORE", "{t}d", "{t}a", "{t}b"], ["SMEMBERS", "{t}d"],
    ["SUNIONSTORE", "{t}d", "{t}none"], ["EXISTS", "{t}d"],
    ["SDIFFSTORE", "{t}d", "{t}a", "{t}b"], ["SMEMBERS", "{t}d"],
    ["SDIFFSTORE", "{t}d", "{t}a", "{t}a"], ["EXISTS", "{t}d"],
    ["SINTERSTORE", "{t}d", "{t}a", "{t}str"], ["SUNIONSTORE", "{t}d", "{t}str"],
    ["SDIFFSTORE", "{t}d", "{t}none", "{t}str"], ["SINTERSTORE", "{t}d"], ["SDIFFSTORE"],
    ["SET", "{t}s2", "v"], ["EXPIRE", "{t}s2", "100"], ["SUNIONSTORE", "{t}s2", "{t}c"],
    ["TYPE", "{t}s2"], ["TTL", "{t}s2"], ["SMEMBERS", "{t}s2"],
    ["SET", "{t}s3", "v"], ["SINTERSTORE", "{t}s3", "{t}a", "{t}none"], ["EXISTS", "{t}s3"],
    ["SADD", "{t}e", "c", "x"], ["SINTERSTORE", "{t}e", "{t}e", "{t}a"], ["SMEMBERS", "{t}e"],
    ["SMOVE", "{t}a", "{t}b", "a"], ["SMOVE", "{t}a", "{t}b", "zz"], ["SMEMBERS", "{t}b"],
    ["SMOVE", "{t}none", "{t}b", "a"], ["SMOVE", "{t}none", "{t}str", "a"],
    ["SMOVE", "{t}a", "{t}str", "zz"], ["SMOVE", "{t}a", "{t}str", "b"],
    ["SMOVE", "{t}str", "{t}a", "a"], ["SMOVE", "{t}a", "{t}a", "c"],
    ["SMOVE", "{t}a", "{t}a", "zz"], ["SMOVE", "{t}a", "{t}new", "c"], ["SMEMBERS", "{t}new"],
    ["SMOVE", "{t}new", "{t}b", "c"], ["EXISTS", "{t}new"], ["SMOVE", "{t}a", "{t}b"],
    ["SINTERCARD", "2", "{t}a", "{t}b"], ["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "1"],
    ["SINTERCARD", "2", "{t}a", "{t}b", "limit", "0"],
    ["SINTERCARD", "1", "{t}b", "LIMIT", "1", "LIMIT", "3"], ["SINTERCARD", "1", "{t}none"],
    ["SINTERCARD", "0", "{t}a"], ["SINTERCARD", "x", "{t}a"], ["SINTERCARD", "-1", "{t}a"],
    ["SINTERCARD", "3", "{t}a", "{t}b"], ["SINTERCARD", "1", "{t}a", "LIMIT"],
    ["SINTERCARD", "1", "{t}a", "LIMIT", "-1"], ["SINTERCARD", "1", "{t}a", "LIMIT", "x"],
    ["SINTERCARD", "1", "{t}a", "{t}b"], ["SINTERCARD", "1", "{t}a", "LIMIT", "1", "x"],
    ["SINTERCARD", "2", "{t}a", "{t}str"], ["SINTERCARD", "2", "{t}none", "{t}str"],
    ["SINTERCARD", "1"],
    # RENAME keeps the TTL; transactions of set commands
    ["SADD", "{t}r", "a"], ["EXPIRE", "{t}r", "100"], ["RENAME", "{t}r", "{t}r2"],
    ["SMEMBERS", "{t}r2"], ["TTL", "{t}r2"], ["EXISTS", "{t}r"],
    ["MULTI"], ["SADD", "{t}m", "a", "b"], ["SCARD", "{t}m"], ["SISMEMBER", "{t}m", "a"],
    ["SMOVE", "{t}m", "{t}n", "a"], ["SINTERCARD", "2", "{t}m", "{t}n"],
    ["SUNIONSTORE", "{t}o", "{t}m", "{t}n"], ["SMISMEMBER", "{t}o", "a", "b", "c"],
    ["SPOP", "{t}n"], ["SPOP", "{t}n"], ["SINTER", "{t}m", "{t}none"], ["SMEMBERS", "{t}m"],
    ["SSCAN", "{t}o", "0", "MATCH", "a"], ["GET", "{t}m"], ["SREM", "{t}m", "b"],
    ["EXISTS", "{t}m"], ["SDIFFSTORE", "{t}o", "{t}o", "{t}str"], ["EXEC"],
    ["MULTI"], ["SADD", "{t}q"], ["SINTER"], ["EXEC"], ["EXISTS", "{t}q"],
]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("workers", [1, 2])
def test_set_commands_answer_as_redis(stores, oracle, workers, protocol):
    ours = replies(stores[workers].port, SCRIPT, protocol)
    theirs = replies(oracle, SCRIPT, protocol)
    assert_same(SCRIPT, ours, theirs, UNORDERED)


# RESP3 tells sets from arrays, which redis-py does not: these compare the raw replies
TYPED = [
    ["SADD", "{t}s", "a", "b", "c"], ["SMEMBERS", "{t}s"], ["SMEMBERS", "{t}nokey"],
    ["SPOP", "{t}s", "0"], ["SPOP", "{t}nokey", "2"], ["SPOP", "{t}nokey"],
    ["SRANDMEMBER", "{t}s", "0"], ["SRANDMEMBER", "{t}nokey", "2"], ["SRANDMEMBER", "{t}nokey"],
    ["SINTER", "{t}s"], ["SUNION", "{t}s", "{t}nokey"], ["SDIFF", "{t}s", "{t}nokey"],
    ["SMISMEMBER", "{t}s", "a"], ["SSCAN", "{t}s", "0", "MATCH", "a"], ["SSCAN", "{t}nokey", "0"],
    ["SADD", "{t}one", "x"], ["SRANDMEMBER", "{t}one", "5"], ["SRANDMEMBER", "{t}one", "-2"],
    ["SRANDMEMBER", "{t}one"], ["SPOP", "{t}one", "1"],
    ["MULTI"], ["SMEMBERS", "{t}s"], ["SPOP", "{t}nokey"], ["SPOP", "{t}s", "5"], ["EXEC"],
]


@pytest.mark.parametrize("workers", [1, 2])
def test_resp3_sets_and_arrays_as_redis(stores, oracle, workers):
    assert raw3(stores[workers].port, TYPED) == raw3(oracle, TYPED)


def raw3(port: int, commands: list[list[str]]) -> list:
    """The replies to ``commands`` in RESP3 (after FLUSHALL), read raw: sets as ('~',
    their members sorted), arrays as ('*', items), anything else as its line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        out = []
        for command in [["HELLO", "3"], ["FLUSHALL"], *commands]:
            words = [w.encode() for w in command]
            sock.sendall(b"*%d\r\n" % len(words) +
                         b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
            out.append(_reply(stream))
        return out[2:]


def _reply(stream) -> object:
    line = stream.readline().rstrip(b"\r\n")
    kind, size = line[:1], line[1:]
    if kind == b"$" and int(size) >= 0:
        return stream.read(int(size) + 2)[:-2]
    if kind not in (b"*", b"~", b"%") or int(size) < 0:
        return line
    items = [_reply(stream) for _ in range(int(size) * (2 if kind == b"%" else 1))]
    return (kind, sorted(items, key=repr) if kind == b"~" else items)


@pytest.mark.parametrize("workers", [1, 2])
def test_random_picks_are_members_as_in_redis(stores, oracle, workers):
    for port in (stores[workers].port, oracle):  # Redis too: the checks are its behaviour
        r = redis.Redis(port=port, socket_timeout=10)
        try:
            r.flushall()
            members = {b"a", b"b", b"c", b"d", b"e"}
            r.sadd("s", *members)
            assert r.srandmember("s") in members
            two = r.srandmember("s", 2)
            assert len(set(two)) == 2 and set(two) <= members
            assert set(r.srandmember("s", 10)) == members
            repeats = r.srandmember("s", -20)
            assert len(repeats) == 20 and set(repeats) <= members
            popped = r.spop("s")
            assert popped in members and not r.sismember("s", popped)
            more = r.spop("s", 2)
            assert len(set(more)) == 2 and set(more) <= members - {popped}
            assert r.smembers("s") == members - {popped, *more}
            assert len(r.spop("s", 10)) == 2 and r.exists("s") == 0
        finally:
            r.close()


def test_set_commands_over_keys_on_two_workers_answer_crossslot(stores):
    r = redis.Redis(port=stores[2].port, socket_timeout=10)
    try:
        r.sadd("k0", "a")
        other = next(f"k{i}" for i in range(1, 100) if _crossslot(r, "SUNION", "k0", f"k{i}"))
        r.sadd(other, "a")
        for command in (["SINTER", "k0", other], ["SUNION", "k0", other],
                        ["SDIFF", "k0", other], ["SINTERSTORE", "k0", "k0", other],
                        ["SUNIONSTORE", "k0", other], ["SDIFFSTORE", other, "k0"],
                        ["SMOVE", "k0", other, "a"], ["SINTERCARD", "2", "k0", other]):
            assert _crossslot(r, *command), command
        assert r.smembers("k0") == {b"a"} and r.smembers(other) == {b"a"}
    finally:
        r.close()


def _crossslot(r: redis.Redis, *command: str) -> bool:
    """Whether ``command`` fails with an error starting with CROSSSLOT (which redis-py
    raises as ClusterCrossSlotError)."""
    try:
        r.execute_command(*command)
    except redis.exceptions.ClusterCrossSlotError:
        return True
    return False


def test_random_picks_with_repeats_are_bounded(stores):
    """A negative count sets the reply's size: past the bound it is an error, not a
    reply of billions of elements (Redis 7.0 tries, and runs out of memory)."""
    import redis as redis_py

    from cluster.store.typed import MAX_PICKS

    r = redis_py.Redis(port=stores[1].port, socket_timeout=10)
    r.sadd("bs", "a")
    r.hset("bh", "f", "v")
    r.zadd("bz", {"m": 1})
    for command in (["SRANDMEMBER", "bs"], ["HRANDFIELD", "bh"], ["ZRANDMEMBER", "bz"]):
        with pytest.raises(redis_py.ResponseError, match="at most"):
            r.execute_command(*command, -(MAX_PICKS + 1))
        assert len(r.execute_command(*command, -1000)) == 1000
    assert r.ping()
    r.close()
