"""--appendonly: the store's writes survive a kill -9 of a worker (appendfsync always
loses no acknowledged write; everysec at most the last second), a whole-cluster restart,
a reload and a resize; a torn last record is cut off; a rewrite under load keeps every
key; a write that cannot be stored answers -MISCONF instead of OK."""

from __future__ import annotations

import glob
import os
import threading
import time
from pathlib import Path

import pytest
import redis

from cluster.store import aof, commands, persistence
from cluster.store.keyspace import Keyspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Writer(threading.Thread):
    """Writes key-N = N as fast as it can; remembers what was acknowledged, and when."""

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(daemon=True)
        self.port, self.prefix = port, prefix
        self.acked: dict[str, tuple[int, float]] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        r = redis.Redis(port=self.port, socket_timeout=5)
        n = 0
        while not self.stopping.is_set():
            n += 1
            key = f"{self.prefix}{n % 3000}"
            try:
                with r.pipeline(transaction=False) as p:
                    p.set(key, n)
                    p.rpush(f"l{key}", n)
                    replies = p.execute(raise_on_error=False)
            except redis.RedisError:
                time.sleep(0.01)  # (the killed worker's keys: CLUSTERDOWN until it is back)
                continue
            if replies[0] is True:
                self.acked[key] = (n, time.monotonic())
        r.close()


def _values(port: int, keys: list[str]) -> dict[str, bytes | None]:
    r = redis.Redis(port=port, socket_timeout=10)
    try:
        return dict(zip(keys, r.mget(keys), strict=True))
    finally:
        r.close()


def _kill_under_load(run_cluster, tmp_path, fsync: str):
    c = run_cluster(None, workers=2, appendonly=str(tmp_path), appendfsync=fsync)
    writers = [Writer(c.port, f"w{i}:") for i in range(3)]
    for w in writers:
        w.start()
    time.sleep(1.5)
    killedAt = time.monotonic()
    _killAndWait(c, "worker-1")
    time.sleep(0.5)
    for w in writers:
        w.stopping.set()
        w.join(10)
    return c, writers, killedAt


def _killAndWait(c, node: str) -> None:
    """kill -9 ``node``'s process; return once its replacement runs."""
    pid = c.kill(node)
    c.wait_until(lambda st: any(p["node"] == node and p["pid"] not in (None, pid)
                                and p["state"] == "running" for p in st["processes"]),
                 timeout=30)


def _lost(c, writers) -> list[tuple[str, int, float]]:
    """Acknowledged writes whose value is not there (an older or no value instead)."""
    lost = []
    for w in writers:
        keys = sorted(w.acked)
        now = _values(c.port, keys)
        for key in keys:
            n, when = w.acked[key]
            if now[key] is None or int(now[key]) < n:
                lost.append((key, n, when))
    return lost


def test_kill_9_with_appendfsync_always_loses_no_acknowledged_write(run_cluster, tmp_path):
    c, writers, _ = _kill_under_load(run_cluster, tmp_path, "always")
    assert sum(len(w.acked) for w in writers) > 1000
    assert _lost(c, writers) == []
    assert "replayed" in c.logs()


def test_kill_9_with_everysec_loses_at_most_the_last_second(run_cluster, tmp_path):
    c, writers, killedAt = _kill_under_load(run_cluster, tmp_path, "everysec")
    late = [(k, n) for k, n, when in _lost(c, writers) if when < killedAt - 1.0]
    assert late == []


def test_a_whole_cluster_restart_keeps_every_type_and_ttl(run_cluster, tmp_path):
    c = run_cluster(None, workers=2, appendonly=str(tmp_path))
    r = redis.Redis(port=c.port, socket_timeout=10, protocol=3)
    r.set("s", "v")
    r.set("t", "v", ex=1000)
    r.set("gone", "v", px=1)
    r.hset("h", mapping={"a": 1, "b": 2})
    r.rpush("l", *range(200))
    r.lpop("l")
    r.sadd("set", *range(100))
    popped = r.spop("set", 10)
    r.zadd("z", {"a": 1.5, "b": -2, "c": 1e300})
    r.zincrby("z", 0.25, "a")
    r.incrbyfloat("f", "10.5")
    r.mset({"{m}1": 1, "{m}2": 2})
    r.delete("{m}2")
    r.expire("h", 500)
    with r.pipeline(transaction=True) as p:
        p.incr("{x}n").lpush("{x}l", "a").execute()
    before = {k: (r.type(k), r.dump(k) if False else None) for k in r.keys("*")}
    state = (r.get("s"), r.hgetall("h"), r.lrange("l", 0, -1), r.smembers("set"),
             r.zrange("z", 0, -1, withscores=True), r.get("f"), r.mget("{m}1", "{m}2"),
             r.get("{x}n"), r.lrange("{x}l", 0, -1))
    ttl_t, ttl_h = r.ttl("t"), r.ttl("h")
    r.close()
    assert not c.stop()
    d = run_cluster(None, workers=2, appendonly=str(tmp_path))
    r = redis.Redis(port=d.port, socket_timeout=10, protocol=3)
    assert (r.get("s"), r.hgetall("h"), r.lrange("l", 0, -1), r.smembers("set"),
            r.zrange("z", 0, -1, withscores=True), r.get("f"), r.mget("{m}1", "{m}2"),
            r.get("{x}n"), r.lrange("{x}l", 0, -1)) == state
    assert not set(popped) & r.smembers("set") and r.scard("set") == 90
    assert abs(r.ttl("t") - ttl_t) <= 2 and abs(r.ttl("h") - ttl_h) <= 2
    assert r.exists("gone") == 0
    assert {k: (r.type(k), None) for k in r.keys("*")} == before
    r.close()


def test_a_torn_last_record_is_cut_off(run_cluster, tmp_path):
    c = run_cluster(None, workers=1, appendonly=str(tmp_path))
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.set("a", "1")
    r.rpush("b", "x", "y")
    r.close()
    assert not c.stop()
    (path,) = glob.glob(str(tmp_path / "*.aof"))
    whole = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$5\r\nhal")  # a crash in mid-write
    d = run_cluster(None, workers=1, appendonly=str(tmp_path))
    r = redis.Redis(port=d.port, socket_timeout=10)
    assert r.get("a") == b"1" and r.lrange("b", 0, -1) == [b"x", b"y"] and r.get("c") is None
    r.close()
    assert "dropped" in d.logs() and "redis-check-aof" in d.logs()
    assert not glob.glob(path) or os.path.getsize(path) == whole


def test_a_rewrite_under_load_keeps_every_key(run_cluster, tmp_path):
    c = run_cluster(None, workers=2, appendonly=str(tmp_path))
    writers = [Writer(c.port, f"r{i}:") for i in range(2)]
    for w in writers:
        w.start()
    time.sleep(1.0)
    r = redis.Redis(port=c.port, socket_timeout=10)
    sizes = sum(os.path.getsize(p) for p in glob.glob(str(tmp_path / "*.aof")))
    assert r.bgrewriteaof()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = r.info("persistence")
        if not info["aof_rewrite_in_progress"]:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    for w in writers:
        w.stopping.set()
        w.join(10)
    assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    expected = {k: str(n).encode() for w in writers for k, (n, _) in w.acked.items()}
    assert _values(c.port, sorted(expected)) == expected
    lists = {f"l{k}": r.llen(f"l{k}") for k in expected}
    r.close()
    assert not c.stop()
    assert sum(os.path.getsize(p) for p in glob.glob(str(tmp_path / "*.aof"))) < 2 * sizes + (
        1 << 20)
    d = run_cluster(None, workers=2, appendonly=str(tmp_path))
    assert _values(d.port, sorted(expected)) == expected
    r = redis.Redis(port=d.port, socket_timeout=10)
    assert {k: r.llen(k) for k in lists} == lists
    r.close()


def test_keys_move_with_their_shard_through_reload_and_resize(run_cluster, tmp_path):
    c = run_cluster(None, workers=2, appendonly=str(tmp_path))
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.mset({f"k{i}": i for i in range(500)})
    c.reload()
    r.set("after-reload", 1)
    c.resize(3)
    r.set("after-ttin", 1)
    _killAndWait(c, "worker-2")  # its shard came by handoff: it must be in its file
    c.resize(2)
    r.close()
    assert not c.stop()
    d = run_cluster(None, workers=2, appendonly=str(tmp_path))
    r = redis.Redis(port=d.port, socket_timeout=10)
    assert r.mget([f"k{i}" for i in range(500)]) == [str(i).encode() for i in range(500)]
    assert r.get("after-reload") == b"1" and r.get("after-ttin") == b"1"
    assert r.dbsize() == 502
    r.close()
    assert len(glob.glob(str(tmp_path / "worker-2.*.aof"))) == 0  # (it left: its file too)


def test_a_write_that_cannot_be_stored_answers_misconf(tmp_path):
    """A full disk, for real: the file's descriptor points at /dev/full (ENOSPC)."""
    from cluster.reactor import Reactor

    ks = Keyspace()
    log = aof.AppendOnly(str(tmp_path), "worker-0", "always", Reactor(), ks, set)
    log.open()
    ks.aof = log
    commands.wrapWrites(persistence._logged, persistence._SELF_LOGGED)  # as begin() does
    set_ = commands.SINGLE_KEY[b"SET"][0]
    assert set_(ks, [b"SET", b"a", b"1"]) == b"+OK\r\n"
    os.close(log.fd)
    log.fd = os.open("/dev/full", os.O_WRONLY)
    set_(ks, [b"SET", b"b", b"2"])
    # the group commit before its reply fails: the server does not send the reply (it
    # drops the connection), nor any RPC message acknowledging it (rpc's beforeSend)
    assert log.settle() is False
    reply = set_(ks, [b"SET", b"c", b"3"])  # refused, not run
    assert reply.startswith(b"-MISCONF Errors writing to the AOF file: No space left")
    assert ks.get(b"c") is None
    assert commands.SINGLE_KEY[b"GET"][0](ks, [b"GET", b"a"]) == b"$1\r\n1\r\n"  # reads go on
    os.close(log.fd)
    log.fd = os.open(log.path, os.O_WRONLY | os.O_APPEND)  # the disk has room again
    assert set_(ks, [b"SET", b"d", b"4"]) == b"+OK\r\n" and log.settle()
    log.close()


def test_a_job_taken_by_a_woken_blpop_stays_taken_after_a_restart(run_cluster, tmp_path):
    c = run_cluster(None, workers=1, appendonly=str(tmp_path), appendfsync="always")
    waiting = redis.Redis(port=c.port, socket_timeout=20)
    got: list = []
    t = threading.Thread(target=lambda: got.append(waiting.blpop(["jobs"], timeout=15)))
    t.start()
    time.sleep(0.3)
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.lpush("jobs", "job1")  # the push, then the pop it woke: in that order in the file
    t.join(10)
    assert got == [(b"jobs", b"job1")]
    r.close()
    waiting.close()
    assert not c.stop()
    d = run_cluster(None, workers=1, appendonly=str(tmp_path))
    r = redis.Redis(port=d.port, socket_timeout=10)
    assert r.llen("jobs") == 0
    r.close()


def test_damage_before_the_end_of_a_file_stops_the_start(run_cluster, tmp_path):
    c = run_cluster(None, workers=1, appendonly=str(tmp_path))
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.mset({f"k{i}": i for i in range(100)})
    r.set("last", 1)
    r.close()
    assert not c.stop()
    (path,) = glob.glob(str(tmp_path / "*.aof"))
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] = ord("#")  # not a crash: a damaged disk, or an edit
    Path(path).write_bytes(bytes(data))
    d = run_cluster(None, workers=1, appendonly=str(tmp_path), wait=False)
    deadline = time.monotonic() + 30
    while "damaged append-only file" not in d.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "damaged append-only file" in d.logs()  # the worker will not serve ...
    assert os.path.getsize(path) == len(data)  # ... and cuts nothing off


def test_keys_of_a_worker_killed_before_its_handoff_come_from_its_file(run_cluster, tmp_path):
    """A reload whose old worker dies before handing its shard over: its successor gets
    the slots without a handoff, and reads their keys from the old worker's file."""
    c = run_cluster(None, workers=2, appendonly=str(tmp_path), appendfsync="always")
    r = redis.Redis(port=c.port, socket_timeout=10)
    r.mset({f"pre:{i}": i for i in range(400)})
    old = c.pids()["worker-0"]
    reload = threading.Thread(target=c.reload, daemon=True)
    reload.start()
    c.wait_until(lambda st: sum(p["node"] == "worker-0" for p in st["processes"]) == 2)
    os.kill(old, 9)  # the old worker-0, before it hands its shard over
    reload.join(60)
    c.wait_ready(20)
    assert r.mget([f"pre:{i}" for i in range(400)]) == [str(i).encode() for i in range(400)]
    r.mset({f"post:{i}": i for i in range(400)})
    r.close()
    assert not c.stop()
    d = run_cluster(None, workers=2, appendonly=str(tmp_path))
    r = redis.Redis(port=d.port, socket_timeout=10)
    assert r.dbsize() == 800
    r.close()


@pytest.mark.parametrize("damage", [(b"OWN", b"OWM"), (b"$3\r\nSET", b"$3\r\nSEX")])
def test_a_damaged_record_name_stops_the_start_too(run_cluster, tmp_path, damage):
    c = run_cluster(None, workers=1, appendonly=str(tmp_path))
    r = redis.Redis(port=c.port, socket_timeout=10)
    for i in range(20):
        r.set(f"k{i}", i)
    r.close()
    assert not c.stop()
    (path,) = glob.glob(str(tmp_path / "*.aof"))
    Path(path).write_bytes(Path(path).read_bytes().replace(*damage, 1))
    d = run_cluster(None, workers=1, appendonly=str(tmp_path), wait=False)
    deadline = time.monotonic() + 30
    while "damaged append-only file" not in d.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "damaged append-only file" in d.logs()
    assert glob.glob(path)  # kept, for whoever repairs it


def test_an_old_worker_killed_in_the_middle_of_its_handoff_loses_nothing(run_cluster, tmp_path):
    """The move is called off half way: the successor keeps nothing of it, is then given
    the slots without a handoff, and reads them from the dead worker's file."""
    c = run_cluster(None, workers=1, appendonly=str(tmp_path))
    r = redis.Redis(port=c.port, socket_timeout=30)
    for base in range(0, 100_000, 10_000):
        r.mset({f"k:{i}": "x" * 300 for i in range(base, base + 10_000)})
    time.sleep(1.5)  # (everysec: on disk)
    old, moves = c.pids()["worker-0"], c.logs().count("moving ")
    reload = threading.Thread(target=lambda: _quietly(c.reload), daemon=True)
    reload.start()
    deadline = time.monotonic() + 30
    while c.logs().count("moving ") == moves and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(old, 9)
    reload.join(60)
    c.wait_ready(30)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert r.dbsize() == 100_000
            break
        except (redis.RedisError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert glob.glob(str(tmp_path / "*.aof"))
    r.close()


def _quietly(f) -> None:
    try:
        f()
    except RuntimeError:
        pass  # (the reload may report the old worker's death)
