"""SCAN, KEYS and RANDOMKEY over every worker, beside a real redis-server where Redis
defines the answer (the set of keys; SCAN's order and cursors are the store's own)."""

from __future__ import annotations

import time

import pytest
import redis

from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

KEYS = [f"user:{i}" for i in range(300)] + [f"{{tag}}:{i}" for i in range(50)] + ["x?y", "a*"]


def _fill(r: redis.Redis) -> None:
    r.mset({k: "v" for k in KEYS[:-10]})
    for k in KEYS[-10:-5]:
        r.hset(k, "f", "v")
    for k in KEYS[-5:]:
        r.set(k, "v", ex=100)


@pytest.mark.parametrize("workers", [1, 2])
def test_scan_returns_every_key_once_per_walk(stores, oracle, workers):
    ours = redis.Redis(port=stores[workers].port, socket_timeout=10)
    theirs = redis.Redis(port=oracle, socket_timeout=10)
    for r in (ours, theirs):
        r.flushall()
        _fill(r)
    for kwargs in ({}, {"count": 7}, {"match": "user:1*"}, {"match": "{tag}:?"},
                   {"_type": "hash"}, {"_type": "string", "count": 1000}):
        mine = list(ours.scan_iter(**kwargs))
        assert len(mine) == len(set(mine)), kwargs  # a stable keyspace: nothing twice
        assert sorted(mine) == sorted(theirs.scan_iter(**kwargs)), kwargs
    assert sorted(ours.keys("*")) == sorted(theirs.keys("*"))
    assert ours.randomkey() in set(theirs.keys("*"))
    ours.flushall()
    assert ours.randomkey() is None and list(ours.scan_iter()) == []
    ours.close()
    theirs.close()


def test_scan_keys_randomkey_errors_and_patterns_answer_as_redis(stores, oracle):
    script = [["SET", "h[a]llo", "1"], ["SET", "hallo", "1"], ["SET", "hbllo", "1"],
              ["SET", "h*llo", "1"], ["KEYS", "h[a]llo"], ["KEYS", "h[^a]llo"],
              ["KEYS", "h[a-b]llo"], ["KEYS", "h\\*llo"], ["KEYS", "h?llo"], ["KEYS", "zz*"],
              ["KEYS"], ["SCAN"], ["SCAN", "x"], ["SCAN", "-1"], ["SCAN", "0", "COUNT", "0"],
              ["SCAN", "0", "COUNT", "x"], ["SCAN", "0", "MATCH"], ["SCAN", "0", "BOGUS", "1"],
              ["RANDOMKEY", "x"], ["SCAN", "99999999999", "COUNT", "1"]]
    unordered = frozenset({"KEYS"})
    assert_same(script, replies(stores[2].port, script), replies(oracle, script), unordered,
                skip=lambda c: c[1:2] in (["99999999999"], ["-1"]))  # cursors are ours


def test_scan_keeps_its_promise_while_keys_come_and_go(stores):
    """Keys there for the whole walk come back; keys added or deleted meanwhile may."""
    r = redis.Redis(port=stores[2].port, socket_timeout=10)
    r.flushall()
    stable = {f"s{i}".encode() for i in range(500)}
    r.mset({k: 1 for k in stable})
    seen, n, cursor = set(), 0, 0
    while True:
        cursor, batch = r.scan(cursor, count=20)
        seen.update(batch)
        r.set(f"new{n}", 1)
        r.delete(f"new{n - 3}")
        n += 1
        if cursor == 0:
            break
    assert stable <= seen
    r.close()


def test_cluster_clients_scan_each_node_for_its_own_keys(stores):
    """On a worker's own port SCAN and KEYS cover that node's slots, as on a Redis Cluster
    node: RedisCluster's scan_iter, which asks every node, sees each key once."""
    r = redis.Redis(port=stores[2].port, socket_timeout=10)
    r.flushall()
    r.mset({f"k{i}": 1 for i in range(200)})
    rc = redis.RedisCluster(host="127.0.0.1", port=stores[2].port, socket_timeout=10)
    try:
        seen = list(rc.scan_iter(count=50))
        assert sorted(seen) == sorted(f"k{i}".encode() for i in range(200))
        assert sorted(rc.keys(target_nodes=redis.RedisCluster.ALL_NODES)) == sorted(seen)
    finally:
        rc.close()
        r.close()


def test_a_pattern_of_many_stars_costs_no_more_than_its_size(stores):
    """A glob is matched without backtracking: Redis's own pattern of many stars that
    takes a backtracking matcher minutes on one key answers at once."""
    r = redis.Redis(port=stores[1].port, socket_timeout=10)
    r.flushall()
    r.set("a" * 40, 1)
    started = time.monotonic()
    assert r.keys("*a" * 12 + "*b") == []
    assert list(r.scan_iter(match="*a" * 12 + "*b")) == []
    assert r.keys("*a" * 12) == [b"a" * 40]
    assert time.monotonic() - started < 2
    r.close()
