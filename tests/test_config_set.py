"""CONFIG SET on every worker, beside a real redis-server for its replies; the settings
the store acts on: ``timeout`` closes idle clients, ``maxmemory`` refuses writes with
-OOM past it; CONFIG RESETSTAT; READONLY refused on the gateway's port."""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import worker_port
from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = [
    ["CONFIG", "SET", "timeout", "x"], ["CONFIG", "SET", "timeout", "-1"],
    ["CONFIG", "SET", "timeout", "70", "maxmemory", "1kb"], ["CONFIG", "GET", "timeout"],
    ["CONFIG", "GET", "maxmemory"], ["CONFIG", "SET", "maxmemory", "0", "timeout", "0"],
    ["CONFIG", "SET", "maxmemory", "lots"], ["CONFIG", "SET", "bogus", "1"],
    ["CONFIG", "SET", "timeout"], ["CONFIG", "SET", "timeout", "1", "timeout", "2"],
    ["CONFIG", "SET", "maxmemory-policy", "bogus"], ["CONFIG", "SET", "hash-max-listpack-entries",
                                                     "64"],
    ["CONFIG", "GET", "*max-*-entries*"], ["CONFIG", "SET", "hash-max-listpack-entries", "512"],
    ["CONFIG", "RESETSTAT"], ["READONLY"],
]


def test_config_set_answers_as_redis(stores, oracle):
    assert_same(SCRIPT, replies(stores[2].port, SCRIPT), replies(oracle, SCRIPT),
                frozenset({"CONFIG"}))


def test_idle_clients_are_closed_after_timeout_but_not_subscribers(stores):
    c = stores[2]
    admin = redis.Redis(port=c.port, socket_timeout=10)
    idle = redis.Redis(port=worker_port(c, 1), socket_timeout=10, single_connection_client=True)
    sub = redis.Redis(port=worker_port(c, 0), socket_timeout=10).pubsub()
    first = idle.client_id()
    sub.subscribe("ch")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    admin.config_set("timeout", 1)
    try:
        time.sleep(3)
        assert idle.client_id() != first  # it was closed (redis-py reconnected)
        assert admin.publish("ch", "still here") == 1
        assert sub.get_message(timeout=5)["data"] == b"still here"
    finally:
        admin.config_set("timeout", 0)
    sub.close()
    idle.close()
    admin.close()


def test_writes_answer_oom_past_maxmemory_and_reads_go_on(stores):
    r = redis.Redis(port=stores[2].port, socket_timeout=10)
    r.set("k", "v")
    r.config_set("maxmemory", "1mb")  # far below any Python process
    try:
        time.sleep(0.5)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            r.set("x", "y")
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            r.rpush("l", "a")
        assert r.get("k") == b"v" and r.delete("k") == 1
    finally:
        r.config_set("maxmemory", 0)
    time.sleep(0.5)
    assert r.set("x", "y") and r.get("x") == b"y"
    r.close()


def test_config_resetstat_resets_the_counters(stores):
    r = redis.Redis(port=stores[1].port, socket_timeout=10)
    for _ in range(50):
        r.ping()
    before = r.info()["total_commands_processed"]
    r.config_resetstat()
    assert r.info()["total_commands_processed"] < before
    r.close()
