"""The default app over a real 2-worker cluster, driven by real Redis clients: redis-py
from PyPI and redis-cli / redis-benchmark from Debian's redis-tools."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import redis

from cluster.shards import ownerOf

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def store(run_cluster_module):
    """One cluster of the default store for every test of this module."""
    return run_cluster_module(None, workers=2, route="round-robin")


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(store, request):
    """redis-py speaking RESP2, and RESP3 (its default since 8: HELLO 3, RESP3 nulls)."""
    client = redis.Redis(port=store.port, socket_timeout=10, protocol=request.param)
    client.flushall()
    yield client
    client.close()


def keys_on_every_worker(n=40):
    """``n`` keys, half owned by each of the two workers."""
    keys = (f"key:{i}" for i in range(100 * n))
    on = {0: [], 1: []}
    for k in keys:
        if len(on[ownerOf(k, 2)]) < n // 2:
            on[ownerOf(k, 2)].append(k)
    return [k for pair in zip(on[0], on[1], strict=True) for k in pair]


def test_redis_cli_set_and_get(store):
    def cli(*args):
        return subprocess.run(["redis-cli", "-p", str(store.port), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    assert cli("set", "a", "1") == "OK"
    assert cli("get", "a") == "1"
    assert cli("dbsize") == "1"
    assert cli("nosuchcommand").startswith("ERR unknown command 'nosuchcommand'")


def test_redis_benchmark_completes_without_errors(store):
    out = subprocess.run(["redis-benchmark", "-p", str(store.port), "-q", "-t", "set,get",
                          "-n", "20000", "-r", "1000"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    assert "requests per second" in out.stdout and "ERR" not in out.stdout + out.stderr


def test_every_key_on_either_worker_reads_back_what_was_written(r):
    keys = keys_on_every_worker(200)
    for k in keys:
        assert r.set(k, k.upper())
    assert [r.get(k) for k in keys] == [k.upper().encode() for k in keys]
    assert r.dbsize() == len(keys)


def test_mset_mget_del_exists_across_every_shard(r):
    keys = keys_on_every_worker()
    assert r.mset({k: f"v-{k}" for k in keys})
    assert r.mget(keys + ["missing"]) == [f"v-{k}".encode() for k in keys] + [None]
    assert r.exists(*keys, "missing", keys[0]) == len(keys) + 1  # duplicates count twice
    assert r.delete(*keys[:10], "missing") == 10
    assert r.exists(*keys) == len(keys) - 10
    assert r.flushall()
    assert r.dbsize() == 0


def test_a_pipeline_of_1000_commands_answers_in_order(r):
    keys = keys_on_every_worker(500)
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, k)
        pipe.get(k)
    results = pipe.execute()
    assert results == [x for k in keys for x in (True, k.encode())]
    pipe = r.pipeline(transaction=False)
    for i, k in enumerate(keys):
        pipe.incrby(f"n:{k}", i)
        pipe.echo(k)
    assert pipe.execute() == [x for i, k in enumerate(keys) for x in (i, k.encode())]


def test_counters_strings_and_expiry_on_remote_and_local_keys(r):
    for k in keys_on_every_worker(8):
        assert r.incr(k) == 1 and r.incrby(k, 9) == 10 and r.decr(k) == 9
        assert r.decrby(k, 4) == 5
        assert r.append(k, "x") == 2 and r.strlen(k) == 2 and r.get(k) == b"5x"
        assert r.getset(k, "new") == b"5x"
        assert r.ttl(k) == -1 and r.expire(k, 100) and 99 <= r.ttl(k) <= 100
        assert 99000 <= r.pttl(k) <= 100000 and r.persist(k) and r.ttl(k) == -1
        assert r.pexpire(k, 50) and r.set(k + "x", "y", px=50)
        time.sleep(0.1)
        assert r.get(k) is None and r.exists(k + "x") == 0 and r.ttl(k) == -2
        assert r.set(k, "1", nx=True) and not r.set(k, "2", nx=True)
        assert r.set(k, "3", xx=True) and r.get(k) == b"3"
        with pytest.raises(redis.ResponseError, match="not an integer"):
            r.incr(r.getset(k, "abc") and k)


def test_binary_values_and_connection_commands(r):
    value = bytes(range(256)) * 100
    for k in keys_on_every_worker(4):
        r.set(k, value)
        assert r.get(k) == value
    assert r.ping() and r.echo(b"\x00x") == b"\x00x"
    assert r.execute_command("SELECT", 0) in (True, b"OK")
    with pytest.raises(redis.ResponseError, match="out of range"):
        r.execute_command("SELECT", 1)
    r.client_setname("me")
    assert r.client_getname() in ("me", b"me")  # redis-py decodes it under RESP2 only
    info = r.info()
    assert info["workers"] == 2 and info["shards"] == 8192 and info["node"].startswith("worker-")
    # the fields clients and exporters read, under Redis's names, and INFO by section
    assert info["arch_bits"] == 64 and info["connected_clients"] >= 1
    assert info["redis_version"] and info["cluster_enabled"] == 0  # the gateway: one server
    assert info["total_commands_processed"] > 0 and "db0" in info
    assert set(r.info("clients")) == {"connected_clients", "blocked_clients"}
    # CONFIG GET: several names and patterns; a map in RESP3, pairs in RESP2 (redis-py
    # makes a dict of either)
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly", "maxmemory*") == {
        "appendonly": "no", "maxmemory": "0", "maxmemory-policy": "noeviction"}
    assert r.config_get("nosuchsetting") == {}
    with pytest.raises(redis.ResponseError, match="not supported"):
        r.execute_command("CONFIG", "REWRITE")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("GET")


def raw(store):
    s = socket.create_connection(("127.0.0.1", store.port), timeout=10)
    return s, s.makefile("rb")


def test_inline_commands_and_quit(store):
    s, f = raw(store)
    s.sendall(b"SET inline value\r\nGET inline\r\nPING\r\nQUIT\r\n")
    assert [f.readline() for _ in range(5)] == [b"+OK\r\n", b"$5\r\n", b"value\r\n",
                                                b"+PONG\r\n", b"+OK\r\n"]
    assert f.readline() == b""  # closed after QUIT
    s.close()


def test_a_protocol_error_answers_then_closes_and_others_are_served(store, r):
    s, f = raw(store)
    s.sendall(b"*1\r\n$999999999999\r\n")
    assert f.readline().startswith(b"-ERR Protocol error: invalid bulk length")
    assert f.readline() == b""
    s.close()
    s, f = raw(store)
    s.sendall(b"x" * (70 << 10))  # an endless inline line: over the limit, closed
    assert f.readline().startswith(b"-ERR Protocol error: too big inline request")
    s.close()
    assert r.set("still", "here") and r.get("still") == b"here"
