"""The store's string and expiry commands against a real redis-server (the oracle): the
same commands on both, the same replies (times within a second or two)."""

from __future__ import annotations

import time

import pytest
import redis

from tests.redisoracle import replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TIMED = {"TTL": 2, "PTTL": 2000, "EXPIRETIME": 2, "PEXPIRETIME": 2000}


def script(now: int) -> list[list[str]]:
    later, much = str(now + 100), str((now + 1000) * 1000)
    return [
        ["SET", "s", "v", "NX", "GET"], ["SET", "s", "w", "XX", "GET"], ["GET", "s"],
        ["SET", "s", "x", "GET"], ["SET", "s", "y", "NX"], ["SET", "s", "y", "XX", "NX"],
        ["SET", "s", "y", "EX", "0"], ["SET", "s", "y", "EX", "10", "PX", "100"],
        ["SET", "s", "y", "KEEPTTL", "EX", "5"], ["SET", "s", "y", "EX", "100"],
        ["SET", "s", "z", "KEEPTTL"], ["TTL", "s"], ["SET", "s", "z"], ["TTL", "s"],
        ["SET", "s", "q", "EXAT", later], ["EXPIRETIME", "s"], ["SET", "s", "q", "PXAT", much],
        ["PEXPIRETIME", "s"], ["SET", "s", "q", "GET", "GET"], ["SET", "s", "q", "EX", "x"],
        ["SETNX", "n", "1"], ["SETNX", "n", "2"], ["GET", "n"],
        ["SETEX", "e", "10", "v"], ["TTL", "e"], ["SETEX", "e", "0", "v"],
        ["SETEX", "e", "x", "v"], ["PSETEX", "p", "100000", "v"], ["PTTL", "p"],
        ["PSETEX", "p", "-5", "v"],
        ["GETDEL", "n"], ["GETDEL", "n"], ["EXISTS", "n"],
        ["SET", "g", "v"], ["GETEX", "g", "EX", "100"], ["TTL", "g"],
        ["GETEX", "g", "PERSIST"], ["TTL", "g"], ["GETEX", "g", "EX", "1", "PX", "5"],
        ["GETEX", "g", "PERSIST", "EX", "5"], ["GETEX", "missing", "EX", "5"],
        ["GETEX", "g", "EXAT", later], ["EXPIRETIME", "g"], ["GETEX", "g"],
        ["SET", "r", "Hello World"], ["GETRANGE", "r", "0", "4"],
        ["GETRANGE", "r", "-5", "-1"], ["GETRANGE", "r", "0", "-1"],
        ["GETRANGE", "r", "5", "1"], ["GETRANGE", "r", "-1", "-5"],
        ["GETRANGE", "r", "100", "200"], ["GETRANGE", "r", "-100", "2"],
        ["GETRANGE", "missing", "0", "-1"], ["GETRANGE", "r", "a", "1"],
        ["SETRANGE", "r", "6", "Redis"], ["GET", "r"], ["SETRANGE", "new", "5", "x"],
        ["GET", "new"], ["SETRANGE", "r", "0", ""], ["SETRANGE", "none", "3", ""],
        ["EXISTS", "none"], ["SETRANGE", "r", "-1", "x"],
        ["TYPE", "r"], ["TYPE", "missing"],
        ["EXPIRE", "r", "100", "NX"], ["EXPIRE", "r", "100", "NX"],
        ["EXPIRE", "r", "50", "GT"], ["EXPIRE", "r", "200", "GT"],
        ["EXPIRE", "r", "150", "LT"], ["EXPIRE", "r", "300", "LT"],
        ["EXPIRE", "r", "10", "XX"], ["TTL", "r"], ["EXPIRE", "nokey", "10"],
        ["EXPIRE", "r", "10", "NX", "XX"], ["EXPIRE", "r", "10", "GT", "LT"],
        ["SET", "t", "v"], ["EXPIRE", "t", "100", "XX"], ["EXPIRE", "t", "100", "GT"],
        ["EXPIRE", "t", "100", "LT"], ["TTL", "t"], ["EXPIRE", "t", "-1"], ["EXISTS", "t"],
        ["EXPIREAT", "r", str(now + 1000)], ["EXPIRETIME", "r"],
        ["PEXPIREAT", "r", much], ["PEXPIRETIME", "r"], ["EXPIRETIME", "missing"],
        ["SET", "u", "1"], ["EXPIRETIME", "u"], ["EXPIREAT", "u", "1"], ["EXISTS", "u"],
        ["PEXPIRE", "r", "5000", "LT"], ["PTTL", "r"],
        *[["SET", f"k{i}", "v"] for i in range(10)],
        ["TOUCH", *[f"k{i}" for i in range(12)]], ["UNLINK", "k0", "k1", "k0", "nokey"],
        ["EXISTS", "k0", "k1", "k2"], ["MULTI"], ["UNLINK", "k2"], ["TOUCH", "k3"],
        ["EXEC"], ["FLUSHDB", "NOW"], ["FLUSHALL", "ASYNC", "SYNC"], ["FLUSHDB", "SYNC"],
        ["EXISTS", "k4"], ["SET", "k4", "v"], ["FLUSHDB"], ["GET", "k4"],
        ["SET", "{r}a", "1", "EX", "100"], ["RENAME", "{r}a", "{r}b"], ["GET", "{r}b"],
        ["TTL", "{r}b"], ["EXISTS", "{r}a"], ["RENAME", "{r}a", "{r}b"],
        ["SET", "{r}c", "3"], ["RENAMENX", "{r}b", "{r}c"], ["RENAMENX", "{r}b", "{r}d"],
        ["RENAME", "{r}d", "{r}d"], ["RENAMENX", "{r}d", "{r}d"], ["GET", "{r}d"],
        ["MSETNX", "{m}1", "a", "{m}2", "b"], ["MSETNX", "{m}2", "x", "{m}3", "y"],
        ["MGET", "{m}1", "{m}2", "{m}3"], ["MSETNX", "{m}4"], ["MSETNX", "{m}4", "1", "{m}5"],
        ["MULTI"], ["RENAME", "{m}1", "{m}9"], ["MSETNX", "{m}7", "z"], ["EXEC"],
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_string_and_expiry_commands_answer_as_redis(run_cluster, oracle, workers):
    c = run_cluster(None, workers=workers)
    commands = script(int(time.time()))
    ours, theirs = replies(c.port, commands), replies(oracle, commands)
    for command, mine, reference in zip(commands, ours, theirs, strict=True):
        if command == ["EXEC"] and workers > 1:
            continue  # (its keys on both workers: CROSSSLOT here, as Redis Cluster)
        slack = TIMED.get(command[0])
        if slack and isinstance(reference, int) and reference >= 0:
            assert isinstance(mine, int) and abs(mine - reference) <= slack, command
        else:
            assert mine == reference, command


def test_time_is_the_unix_time(run_cluster):
    c = run_cluster(None, workers=1)
    r = redis.Redis(port=c.port, socket_timeout=10)
    seconds, micros = r.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 2 and 0 <= micros < 1_000_000
    r.close()
