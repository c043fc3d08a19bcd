"""BLPOP, BRPOP, BLMOVE and BRPOPLPUSH: a blocked client waits on the worker owning its
keys and is woken by a push from any connection of any worker, first come first served,
with its timeout; its later commands wait for it; a client that leaves loses nothing.
The immediate and error cases are compared with a real redis-server."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from tests.conftest import worker_port
from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = [
    ["BLPOP"], ["BLPOP", "a"], ["BLPOP", "a", "x"], ["BLPOP", "a", "-1"],
    ["BLPOP", "{t}a", "{t}b", "0.05"], ["RPUSH", "{t}b", "1", "2"],
    ["BLPOP", "{t}a", "{t}b", "0"], ["BRPOP", "{t}a", "{t}b", "1"], ["EXISTS", "{t}b"],
    ["SET", "s", "v"], ["BLPOP", "s", "1"], ["BLMOVE", "{t}a", "{t}b", "LEFT", "x", "1"],
    ["BLMOVE", "{t}a", "{t}b", "LEFT", "RIGHT", "-1"], ["BRPOPLPUSH", "{t}a", "{t}b", "x"],
    ["BLMOVE", "{t}a", "{t}b", "LEFT", "RIGHT", "0.05"], ["RPUSH", "{t}a", "x", "y"],
    ["BLMOVE", "{t}a", "{t}b", "LEFT", "RIGHT", "0"], ["BRPOPLPUSH", "{t}a", "{t}b", "0"],
    ["LRANGE", "{t}b", "0", "-1"], ["MULTI"], ["BLPOP", "{t}z", "0"], ["RPUSH", "{t}z", "1"],
    ["BLPOP", "{t}z", "0"], ["EXEC"],
]


@pytest.mark.parametrize("protocol", [2, 3])
def test_blocking_commands_answer_as_redis_when_they_need_not_wait(stores, oracle, protocol):
    ours = replies(stores[2].port, SCRIPT, protocol)
    assert_same(SCRIPT, ours, replies(oracle, SCRIPT, protocol))


def _other_worker_key(c) -> str:
    """A key owned by worker-1 (the upper half of the slots)."""
    r = redis.Redis(port=c.port, socket_timeout=10)
    key = next(f"q{i}" for i in range(1000) if r.cluster("keyslot", f"q{i}") >= 8192)
    r.close()
    return key


def _on_worker0(c, timeout: float = 30) -> redis.Redis:
    """A client through the gateway whose connection worker-0 serves (so its commands
    for worker-1's keys go between workers)."""
    for _ in range(50):
        r = redis.Redis(port=c.port, socket_timeout=timeout, single_connection_client=True)
        if r.info("cluster")["node"] == "worker-0":
            return r
        r.close()
    raise AssertionError("no connection reached worker-0")


def _raw_on_worker0(c) -> socket.socket:
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\ncluster\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\n") and b"rpc_messages" not in data:
            data += s.recv(4096)
        while not data.endswith(b"\r\n"):
            data += s.recv(4096)
        if b"node:worker-0" in data:
            return s
        s.close()
    raise AssertionError("no connection reached worker-0")


def test_a_push_on_any_worker_wakes_a_client_blocked_on_another(stores):
    c = stores[2]
    key = _other_worker_key(c)
    blocked = _on_worker0(c)
    blocked.delete(key)
    got: list = []
    t = threading.Thread(target=lambda: got.append(blocked.blpop([key], timeout=20)))
    t.start()
    time.sleep(0.3)
    assert not got
    pusher = redis.Redis(port=worker_port(c, 1), socket_timeout=10)  # worker-1's own port
    assert pusher.rpush(key, "hello") == 1  # (the length before the waiter took it)
    t.join(10)
    assert got == [(key.encode(), b"hello")]
    assert pusher.exists(key) == 0
    blocked.close()
    pusher.close()


def test_waiters_are_served_first_come_first_served_and_time_out(stores):
    c = stores[2]
    key = _other_worker_key(c)
    clients = [_on_worker0(c) for _ in range(3)]
    clients[0].delete(key)
    got: dict = {}
    threads = []
    for i, r in enumerate(clients):
        t = threading.Thread(target=lambda i=i, r=r: got.__setitem__(
            i, r.brpop([key], timeout=2 if i == 2 else 20)))
        t.start()
        threads.append(t)
        time.sleep(0.2)  # the order they block in
    pusher = redis.Redis(port=c.port, socket_timeout=10)
    pusher.rpush(key, "a", "b")
    threads[0].join(5)
    threads[1].join(5)
    assert got[0] == (key.encode(), b"b") and got[1] == (key.encode(), b"a")
    started = time.monotonic()
    threads[2].join(10)
    assert got[2] is None and time.monotonic() - started < 3  # its 2 s timeout
    for r in (*clients, pusher):
        r.close()


def test_later_commands_of_a_blocked_client_wait_for_it(stores):
    c = stores[2]
    key = _other_worker_key(c)
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.delete(key, "after")
    s = _raw_on_worker0(c)
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(key), key.encode())
              + b"*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n")
    time.sleep(0.3)
    assert r.get("after") is None  # not run while BLPOP waits
    r.lpush(key, "v")
    data = b""
    while not data.endswith(b"+OK\r\n"):
        data += s.recv(4096)
    assert data == b"*2\r\n$%d\r\n%s\r\n$1\r\nv\r\n+OK\r\n" % (len(key), key.encode())
    assert r.get("after") == b"1"
    s.close()
    r.close()


def test_a_client_that_leaves_while_blocked_takes_nothing(stores):
    c = stores[2]
    key = _other_worker_key(c)
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.delete(key)
    s = _raw_on_worker0(c)
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(key), key.encode()))
    time.sleep(0.3)
    s.close()
    time.sleep(0.3)
    assert r.rpush(key, "kept") == 1
    time.sleep(0.2)
    assert r.lrange(key, 0, -1) == [b"kept"]
    r.close()


def test_blmove_hands_on_to_a_client_blocked_on_its_destination(stores):
    c = stores[2]
    r = redis.Redis(port=c.port, socket_timeout=30)
    r.delete("{m}src", "{m}dst")
    got: list = []
    waiting = redis.Redis(port=c.port, socket_timeout=30)
    t = threading.Thread(target=lambda: got.append(waiting.blpop(["{m}dst"], timeout=20)))
    t.start()
    time.sleep(0.3)
    r.rpush("{m}src", "x")
    assert r.blmove("{m}src", "{m}dst", 5, "LEFT", "RIGHT") == b"x"
    t.join(10)
    assert got == [(b"{m}dst", b"x")] and r.exists("{m}src", "{m}dst") == 0
    waiting.close()
    r.close()


def test_a_wait_whose_client_worker_died_takes_nothing(run_cluster):
    c = run_cluster(None, workers=2)
    key = _other_worker_key(c)
    s = _raw_on_worker0(c)
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(key), key.encode()))
    time.sleep(0.3)
    pid = c.kill("worker-0")
    c.wait_until(lambda st: any(p["node"] == "worker-0" and p["pid"] not in (None, pid)
                                and p["state"] == "running" for p in st["processes"]))
    s.close()
    r = redis.Redis(port=worker_port(c, 1), socket_timeout=10)
    assert r.rpush(key, "job") == 1
    time.sleep(0.2)
    assert r.lrange(key, 0, -1) == [b"job"]  # not handed to the dead worker's client
    r.close()
