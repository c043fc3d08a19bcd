"""MULTI / EXEC / DISCARD / WATCH / UNWATCH in the default store: Redis's answers (a real
redis-server is the oracle), atomicity on one worker and across the RPC hop, WATCH
across connections on different workers, CROSSSLOT for keys on several workers."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from cluster.shards import ownerOf
from tests.redisoracle import redis_server as start_redis_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server: what Redis answers is the specification."""
    with start_redis_server() as port:
        yield port


@pytest.fixture(scope="module")
def one(run_cluster_module):
    return run_cluster_module(None, workers=1)


@pytest.fixture(scope="module")
def two(run_cluster_module):
    return run_cluster_module(None, workers=2, route="round-robin")


def raw_replies(port: int, commands: list[list[str]]) -> list:
    """Send ``commands`` one by one on one connection; each reply as redis-py parses it
    (an error as ('ERR', its first words))."""
    conn = redis.Connection(port=port, protocol=2, socket_timeout=10)
    out = []
    try:
        for command in commands:
            conn.send_command(*command)
            try:
                reply = conn.read_response()
            except redis.ResponseError as e:
                reply = e
            out.append([_plain(r) for r in reply] if isinstance(reply, list)
                       else _plain(reply))
    finally:
        conn.disconnect()
    return out


def _plain(reply):
    """An error as ('ERR', its first words), to compare: redis-py's exceptions do not
    compare equal."""
    if isinstance(reply, redis.ResponseError):
        return ("ERR", " ".join(str(reply).split()[:4]))
    return reply


SCRIPTS = {
    "queued then run": [["DEL", "k"], ["MULTI"], ["SET", "k", "1"], ["INCR", "k"],
                        ["GET", "k"], ["EXEC"], ["GET", "k"]],
    "a runtime error fails alone": [["SET", "s", "x"], ["MULTI"], ["INCR", "s"],
                                    ["SET", "t", "2"], ["EXEC"], ["GET", "t"]],
    "wrong arity aborts": [["DEL", "w"], ["MULTI"], ["SET", "w", "1"], ["GET"], ["EXEC"],
                           ["GET", "w"]],
    "nested, watch inside, without": [["EXEC"], ["DISCARD"], ["MULTI"], ["MULTI"],
                                      ["WATCH", "x"], ["SET", "n", "1"], ["EXEC"]],
    "discard drops the queue": [["DEL", "d"], ["MULTI"], ["SET", "d", "1"], ["DISCARD"],
                                ["GET", "d"]],
    "watch, own change aborts": [["SET", "a", "1"], ["WATCH", "a"], ["SET", "a", "2"],
                                 ["MULTI"], ["SET", "a", "3"], ["EXEC"], ["GET", "a"]],
    "watch, untouched runs": [["SET", "b", "1"], ["WATCH", "b"], ["MULTI"], ["INCR", "b"],
                              ["EXEC"]],
    "unwatch forgets": [["SET", "u", "1"], ["WATCH", "u"], ["SET", "u", "2"], ["UNWATCH"],
                        ["MULTI"], ["SET", "u", "3"], ["EXEC"], ["GET", "u"]],
    "exec unwatches": [["SET", "e", "1"], ["WATCH", "e"], ["MULTI"], ["EXEC"],
                       ["SET", "e", "2"], ["MULTI"], ["GET", "e"], ["EXEC"]],
    "expire and persist touch": [["SET", "p", "1"], ["WATCH", "p"], ["EXPIRE", "p", "100"],
                                 ["MULTI"], ["GET", "p"], ["EXEC"], ["WATCH", "p"],
                                 ["PERSIST", "p"], ["MULTI"], ["GET", "p"], ["EXEC"]],
    "a watched key that expires": [["SET", "x1", "1", "PX", "50"], ["WATCH", "x1"],
                                   ["PING"], ["MULTI"], ["GET", "x1"], ["EXEC"]],
    "multi-key commands": [["MULTI"], ["MSET", "m1", "1", "m2", "2"], ["MGET", "m1", "m2",
                                                                       "m3"],
                           ["EXISTS", "m1", "m3"], ["DEL", "m1", "m2"], ["PING"],
                           ["ECHO", "hi"], ["EXEC"]],
    "empty transaction": [["MULTI"], ["EXEC"]],
    "exec with arguments discards": [["MULTI"], ["SET", "ea", "1"], ["EXEC", "x"],
                                     ["EXEC"], ["GET", "ea"]],
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_replies_match_redis(one, redis_server, name):
    script = SCRIPTS[name]
    if name == "a watched key that expires":
        def run(port):
            first = raw_replies(port, script[:3])
            time.sleep(0.1)
            return first + raw_replies(port, [["WATCH", "x1"], *script[3:]])[1:]
        ours, theirs = run(one.port), run(redis_server)
    else:
        ours, theirs = raw_replies(one.port, script), raw_replies(redis_server, script)
    assert ours == theirs


def test_unknown_command_in_multi_aborts_and_nothing_queued_ever_runs(one):
    # the failure this fixes: commands after a MULTI the store did not know ran at once
    assert raw_replies(one.port, [["DEL", "z"], ["MULTI"], ["SET", "z", "1"],
                                  ["NOSUCHCOMMAND"], ["EXEC"], ["GET", "z"]]) == [
        0, b"OK", b"QUEUED", ("ERR", "unknown command 'NOSUCHCOMMAND'"),
        ("ERR", "Transaction discarded because of"), None]
    r = redis.Redis(port=one.port)
    p = r.pipeline(transaction=True)
    p.set("z", "1")
    p.execute_command("NOSUCHCOMMAND")
    with pytest.raises(redis.ResponseError):
        p.execute()
    assert r.get("z") is None
    r.close()


def keys_of(worker: int, n: int, prefix: str = "k") -> list[str]:
    keys = (f"{prefix}:{i}" for i in range(1000))
    return [k for k in keys if ownerOf(k, 2) == worker][:n]


def pid_of(r: redis.Redis) -> int:
    return int(r.info("server")["process_id"])


def clients_on_each_worker(two) -> tuple[redis.Redis, redis.Redis]:
    """Two single-connection clients, served by different workers (round-robin)."""
    clients = []
    while True:
        r = redis.Redis(port=two.port, single_connection_client=True, socket_timeout=10)
        if not clients or pid_of(r) != pid_of(clients[0]):
            clients.append(r)
        else:
            r.close()
        if len(clients) == 2:
            return clients[0], clients[1]


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_transaction_runs_on_the_worker_that_owns_its_keys(two, protocol):
    a, b = clients_on_each_worker(two)
    a.flushall()
    for worker in (0, 1):  # one of them is the client's own worker, the other remote
        keys = keys_of(worker, 3)
        r = redis.Redis(port=two.port, protocol=protocol, socket_timeout=10)
        p = r.pipeline(transaction=True)
        p.mset({keys[0]: 1, keys[1]: 2})
        p.incr(keys[0])
        p.mget(keys)
        p.get(keys[2])
        p.delete(keys[1])
        assert p.execute() == [True, 2, [b"2", b"2", None], None, 1]
        r.close()
    a.close()
    b.close()


def test_keys_on_two_workers_answer_crossslot_and_run_nothing(two):
    r = redis.Redis(port=two.port, socket_timeout=10)
    k0, k1 = keys_of(0, 1)[0], keys_of(1, 1)[0]
    r.delete(k0, k1)
    p = r.pipeline(transaction=True)
    p.set(k0, 1)
    p.set(k1, 1)
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        p.execute()
    assert r.exists(k0, k1) == 0
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        r.execute_command("WATCH", k0, k1)
    r.set(k0, "v")
    for command in (["RENAME", k0, k1], ["RENAMENX", k0, k1], ["MSETNX", k0, "1", k1, "2"]):
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            r.execute_command(*command)
    assert r.get(k0) == b"v" and r.exists(k1) == 0
    r.close()


@pytest.mark.parametrize("owner", ["the watcher's worker", "the other worker"])
def test_watch_sees_a_change_from_a_connection_on_another_worker(two, owner):
    a, b = clients_on_each_worker(two)
    index = {pid: int(node.rpartition("-")[2]) for node, pid in two.pids().items()}
    mine = index[pid_of(a)]
    key = keys_of(mine if owner == "the watcher's worker" else 1 - mine, 1, "w")[0]
    a.set(key, "1")
    for attempt in ("changed", "untouched"):
        with a.pipeline() as p:
            p.watch(key)
            value = int(p.get(key))
            if attempt == "changed":
                b.incr(key)  # another connection, on the other worker
            p.multi()
            p.set(key, value + 10)
            if attempt == "changed":
                with pytest.raises(redis.WatchError):
                    p.execute()
            else:
                assert p.execute() == [True]
    assert int(a.get(key)) == 12
    a.close()
    b.close()


def test_transactions_are_never_interleaved_with_other_clients(two):
    """Each transaction's INCR and GET see no other client's write between them, on
    the connection's own worker and across the RPC hop alike."""
    key = keys_of(1, 1, "atomic")[0]
    redis.Redis(port=two.port).delete(key)
    errors: list[str] = []

    def transactional():
        # one command per write, with pauses: other clients' INCRs arrive in between,
        # and only the queue keeps them out of the transaction
        conn = redis.Connection(port=two.port, socket_timeout=10)
        for _ in range(100):
            for command in (["MULTI"], ["INCR", key], ["INCRBY", key, "1000"],
                            ["GET", key]):
                conn.send_command(*command)
                conn.read_response()
                time.sleep(0.001)
            conn.send_command("EXEC")
            first, second, got = conn.read_response()
            if second != first + 1000 or int(got) != second:
                errors.append(f"{first} {second} {got}")
        conn.disconnect()

    def plain():
        r = redis.Redis(port=two.port, socket_timeout=10)
        for _ in range(1000):
            r.incr(key)
        r.close()

    def guarded(f):
        def run():
            try:
                f()
            except Exception as e:  # noqa: BLE001 - reported by the assert below
                errors.append(repr(e))
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (transactional, transactional,
                                                              plain, plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert int(redis.Redis(port=two.port).get(key)) == 2 * 100 * 1001 + 2 * 1000


def raw_pipeline(port: int, commands: list[list[str]], conn=None) -> list:
    """Send ``commands`` in one write on one connection; their replies, in order."""
    own = conn is None
    conn = conn or redis.Connection(port=port, protocol=2, socket_timeout=30)
    conn.send_packed_command(conn.pack_commands(commands))
    out = []
    for _ in commands:
        try:
            out.append(conn.read_response())
        except redis.ResponseError as e:
            out.append(("ERR", str(e)))
    if own:
        conn.disconnect()
    return out


def connection_on_other_worker(two, key: str) -> redis.Connection:
    """A connection served by the worker that does not own ``key``."""
    owner = ownerOf(key, 2)
    index = {pid: int(node.rpartition("-")[2]) for node, pid in two.pids().items()}
    while True:
        conn = redis.Connection(port=two.port, protocol=2, socket_timeout=30)
        conn.send_command("INFO", "server")
        info = conn.read_response().decode()
        pid = int(next(line.split(":")[1] for line in info.split("\r\n")
                       if line.startswith("process_id")))
        if index[pid] != owner:
            return conn
        conn.disconnect()


@pytest.mark.parametrize("round_", range(10))
def test_pipelined_commands_keep_their_order_across_workers(two, round_):
    key = keys_of(1, 1, f"order{round_}")[0]
    conn = connection_on_other_worker(two, key)
    try:
        assert raw_pipeline(two.port, [["SET", key, "v"], ["DEL", key], ["GET", key]],
                            conn) == [b"OK", 1, None]
        assert raw_pipeline(two.port, [["SET", key, "v1"], ["MULTI"], ["GET", key],
                                       ["EXEC"]], conn) == [b"OK", b"OK", b"QUEUED", [b"v1"]]
        assert raw_pipeline(two.port, [["SET", key, "v2"], ["MGET", key, key]],
                            conn) == [b"OK", [b"v2", b"v2"]]
        assert raw_pipeline(two.port, [["SET", key, "v3"], ["FLUSHALL"], ["SET", key, "v4"],
                                       ["GET", key]], conn) == [b"OK", b"OK", b"OK", b"v4"]
        assert raw_pipeline(two.port, [["GET", key]], conn) == [b"v4"]  # nothing flushed it
        assert raw_pipeline(two.port, [["WATCH", key], ["UNWATCH"]], conn) == [b"OK", b"OK"]
    finally:
        conn.disconnect()


def test_watching_many_keys_on_another_worker_is_quick_and_costs_no_worker(two):
    keys = [f"{{wide}}:{i}" for i in range(50_000)]
    conn = connection_on_other_worker(two, keys[0])
    pids = two.pids()
    try:
        started = time.monotonic()
        assert raw_pipeline(two.port, [["WATCH", *keys], ["MULTI"], ["SET", keys[0], "x"],
                                       ["EXEC"]], conn) == [b"OK", b"OK", b"QUEUED", [b"OK"]]
        assert time.monotonic() - started < 5
    finally:
        conn.disconnect()
    assert two.pids() == pids


def test_a_transaction_is_bounded(one):
    from cluster.store.server import MAX_QUEUED

    commands = [["MULTI"], *[["INCR", "bounded"]] * (MAX_QUEUED + 1), ["EXEC"]]
    replies = raw_pipeline(one.port, commands)
    assert replies[MAX_QUEUED] == b"QUEUED"
    assert replies[MAX_QUEUED + 1][0] == "ERR" and "at most" in replies[MAX_QUEUED + 1][1]
    assert replies[-1][0] == "ERR" and "EXECABORT" in replies[-1][1] or \
        "discarded" in replies[-1][1]
    assert raw_pipeline(one.port, [["GET", "bounded"]]) == [None]  # nothing ran
