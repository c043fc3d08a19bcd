"""Shards under reload and resize: one owner per slot at every instant, and the state
moves with it. Real clusters of the default store, checking clients (tests.faults.probes)
and redis-py with its default retry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from tests import ROOT
from tests.faults.probes import Counter, Resp, SplitBrain, missing, populate

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(180)]


class RedisPy(threading.Thread):
    """redis-py as shipped (its default retry on a closed connection): SET then GET of
    keys of its own; every exception and every wrong value is counted."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, socket_timeout=10)
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.requests = 0

    def run(self):
        i = 0
        while not self.stopping.is_set():
            i += 1
            key = f"py:{i % 200}"
            try:
                self.client.set(key, i)
                got = self.client.get(key)
                if got != str(i).encode():
                    self.errors.append(f"GET {key}: {got!r}, expected {i}")
                self.requests += 2
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.errors.append(repr(e))

    def stop(self):
        self.stopping.set()
        self.join(30)
        self.client.close()


def start_load(port):
    probes = [Counter(port, f"keep:{i}") for i in range(4)]
    probes += [Counter(port, f"fresh:{i}", fresh=True) for i in range(2)]
    probes.append(SplitBrain(port, "probe:split"))
    probes.append(RedisPy(port))
    for p in probes:
        p.start()
    return probes


def stop_load(probes):
    for p in probes:
        p.stop()
    for p in probes:
        if isinstance(p, Counter):
            p.verify()
    return {
        "requests": sum(p.requests for p in probes),
        "errors": [e for p in probes for e in p.errors],
        "closed_in_flight": sum(getattr(p, "closedInFlight", 0) for p in probes),
        "closed_idle_retried": sum(getattr(p, "closedIdle", 0) for p in probes),
        "stale_reads": sum(getattr(p, "stale", 0) for p in probes),
        "split_brain_reads": sum(getattr(p, "reads", 0) for p in probes),
    }


def record(figures, result, **more):
    """The load's figures (requests lost are its errors: every one is a request that
    was not answered as it should have been), and ``more``."""
    figures.update(requests=result["requests"], requests_lost=len(result["errors"]),
                   closed_in_flight=result["closed_in_flight"],
                   closed_idle_retried=result["closed_idle_retried"],
                   stale_reads=result["stale_reads"],
                   split_brain_reads=result["split_brain_reads"], **more)


KEYS = 50_000


def loaded(run_cluster):
    """A 2-worker store holding 50,000 keys and a 32 MiB value, under the checking load."""
    c = run_cluster(None, workers=2, graceful_timeout=10, heartbeat_timeout=5)
    expected = populate(c.port, KEYS)
    big = os.urandom(32 << 20)
    conn = Resp(c.port, timeout=60)
    assert conn.call("SET", "big", big) == b"OK"
    conn.close()
    expected["big"] = big
    probes = start_load(c.port)
    time.sleep(0.5)
    return c, expected, probes


def test_three_reloads_under_load_lose_nothing_and_serve_no_stale_read(run_cluster, figures):
    c, expected, probes = loaded(run_cluster)
    durations = []
    for _ in range(3):  # back to back: each starts while the last one's workers drain
        before = set(c.pids().values())
        start = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "cluster", "reload", "--name", c.name],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        durations.append(time.monotonic() - start)
        assert out.returncode == 0, out.stderr
        assert not set(c.pids().values()) & before  # every worker replaced
    time.sleep(0.5)
    result = stop_load(probes)
    lost = missing(c.port, expected)
    record(figures, result, reloads=3, keys=len(expected), keys_lost=len(lost),
           reload_seconds=[round(d, 2) for d in durations])
    assert result["errors"] == [], result["errors"][:10]
    assert result["closed_in_flight"] == 0
    assert result["stale_reads"] == 0
    assert lost == []
    assert result["requests"] > 500
    assert result["split_brain_reads"] > 50


def test_ttin_then_ttou_under_load_keeps_every_key(run_cluster, figures):
    c, expected, probes = loaded(run_cluster)
    c.proc.send_signal(signal.SIGTTIN)
    c.wait_until(lambda st: st["workers"] == 3 and st["operation"] is None, 30, "TTIN")
    after_ttin = missing(c.port, expected)
    time.sleep(0.5)
    c.proc.send_signal(signal.SIGTTOU)
    c.wait_until(lambda st: st["workers"] == 2 and st["operation"] is None
                 and sum(p["role"] == "worker" for p in st["processes"]) == 2, 30, "TTOU")
    time.sleep(0.5)
    result = stop_load(probes)
    lost = missing(c.port, expected)
    record(figures, result, keys=len(expected), keys_lost_after_ttin=len(after_ttin),
           keys_lost=len(lost))
    assert after_ttin == [] and lost == []
    assert result["errors"] == [], result["errors"][:10]
    assert result["closed_in_flight"] == 0 and result["stale_reads"] == 0


def test_ttin_while_another_process_exits_keeps_every_key(run_cluster, figures):
    """A process that exits during a resize (here the gateway, killed as the newcomer
    takes its slots) must not cost the moving shards anything."""
    c = run_cluster(None, workers=2, graceful_timeout=10, heartbeat_timeout=5)
    expected = populate(c.port, KEYS)
    gateway = c.pids("gateway")["gateway"]
    c.proc.send_signal(signal.SIGTTIN)
    c.wait_until(lambda st: any(p["node"] == "worker-2" for p in st["processes"]), 20,
                 "the newcomer")
    os.kill(gateway, signal.SIGKILL)
    st = c.wait_until(lambda st: st["workers"] == 3 and st["operation"] is None
                      and all(p["state"] == "running" for p in st["processes"]), 30,
                      "the resize")
    lost = missing(c.port, expected)
    figures.update(keys=len(expected), keys_lost=len(lost), workers=st["workers"])
    assert lost == []


def test_a_worker_asked_to_stop_hands_its_shard_to_its_successor(run_cluster, figures):
    c = run_cluster(None, workers=2, graceful_timeout=10, heartbeat_timeout=5)
    expected = populate(c.port, 2000)
    node, pid = sorted(c.pids().items())[0]
    import os

    os.kill(pid, signal.SIGTERM)  # an operator stopping this one worker
    c.wait_until(lambda st: any(p["node"] == node and p["pid"] != pid
                                and p["state"] == "running" for p in st["processes"])
                 and st["operation"] is None, 20, "the successor")
    lost = missing(c.port, expected)
    figures.update(keys=len(expected), keys_lost=len(lost))
    assert lost == []
    assert "asked to stop: starting its successor" in c.logs()


def test_flushall_during_a_move_leaves_nothing_behind(run_cluster, figures):
    c = run_cluster(None, workers=2, graceful_timeout=10, heartbeat_timeout=5)
    expected = populate(c.port, 200_000)
    reload = subprocess.Popen([sys.executable, "-m", "cluster", "reload", "--name", c.name],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while "moving" not in c.logs():  # the first shard is on its way
        assert time.monotonic() < deadline
        time.sleep(0.005)
    conn = Resp(c.port, timeout=60)
    assert conn.call("FLUSHALL") == b"OK"
    right_after = len(expected) - len(missing(c.port, expected))
    assert reload.wait(60) == 0, reload.stderr.read()
    after_reload = len(expected) - len(missing(c.port, expected))
    conn.close()  # its worker may have drained since: ask on a new connection
    conn = Resp(c.port)
    size = conn.call("DBSIZE")
    conn.close()
    figures.update(keys=len(expected), left_after_flushall=right_after,
                   left_after_reload=after_reload, dbsize=size)
    assert right_after == 0 and after_reload == 0 and size == 0


def test_a_resize_whose_newcomer_stalls_keeps_every_key(run_cluster, figures):
    """The newcomer stops (SIGSTOP) longer than an RPC timeout but less than the
    heartbeat timeout: the moves to it fail and are asked again until it answers; no key
    is lost (it used to be forgotten by its old owner once the map changed)."""
    c = run_cluster(None, workers=2, heartbeat_timeout=20, rpc_timeout=1)
    expected = populate(c.port, 50_000)
    c.proc.send_signal(signal.SIGTTIN)
    deadline = time.monotonic() + 20
    while "moving" not in c.logs():
        assert time.monotonic() < deadline
        time.sleep(0.002)
    newcomer = c.pids().get("worker-2")
    os.kill(newcomer, signal.SIGSTOP)
    time.sleep(4)
    os.kill(newcomer, signal.SIGCONT)
    st = c.wait_until(lambda st: st["workers"] == 3 and st["operation"] is None
                      and all(p["state"] == "running" for p in st["processes"]), 30,
                      "the resize")
    lost = missing(c.port, expected)
    figures.update(keys=len(expected), stalled_s=4, keys_lost=len(lost),
                   retries=c.logs().count("trying again"), workers=st["workers"])
    assert lost == []
    assert c.pids()["worker-2"] == newcomer  # nobody died
