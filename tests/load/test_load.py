"""Integration load tests: a 2-worker cluster serving the default store, driven by real
clients (``cluster load``, redis-py, redis-benchmark) with every reply checked."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cluster import load
from cluster.load.workloads import valueFor
from cluster.shards import ownerOf

pytestmark = [pytest.mark.integration, pytest.mark.load, pytest.mark.timeout(180)]


@pytest.fixture
def store(run_cluster):
    return run_cluster(None, workers=2, route="round-robin", heartbeat_timeout=5)


def test_200_connections_mixed_workload_zero_errors(store):
    summary = load.run(store.address, connections=200, processes=2, requests=40000,
                       set_ratio=0.5, keyspace=2000, pipeline=2)
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["requests"] == 40000
    # half the keys live on each worker, so about half the commands crossed shards
    info = redis.Redis(port=store.port, protocol=2).info()
    assert info["remote_commands"] > 0


def test_every_value_written_by_200_redis_py_clients_reads_back(store):
    errors = []

    def client(n):
        r = redis.Redis(port=store.port, protocol=2, single_connection_client=True,
                        socket_timeout=20)
        try:
            for i in range(50):
                key = f"c{n}:k{i}"
                r.set(key, f"{n}/{i}")
            got = r.mget([f"c{n}:k{i}" for i in range(50)])
            if got != [f"{n}/{i}".encode() for i in range(50)]:
                errors.append((n, got))
        except Exception as e:  # noqa: BLE001 - every failure is a test failure
            errors.append((n, repr(e)))
        finally:
            r.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert redis.Redis(port=store.port, protocol=2).dbsize() == 200 * 50


def test_redis_benchmark_pipelined_mset_completes(store):
    out = subprocess.run(["redis-benchmark", "-p", str(store.port), "-q", "-t",
                          "set,get,mset,ping", "-n", "20000", "-P", "16", "-r", "100000"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ERR" not in out.stdout + out.stderr
    assert out.stdout.count("requests per second") >= 4


def test_a_killed_worker_drops_only_its_own_connections(store):
    """Kill worker-1 under load: its clients are cut off; clients on worker-0 stay
    connected, get CLUSTERDOWN for worker-1's keys until its replacement is up and right
    answers for worker-0's keys all along; nothing never written is ever read."""
    keys = {0: [], 1: []}
    for i in range(10_000):
        k = f"key:{i}"
        if len(keys[ownerOf(k, 2)]) < 50:
            keys[ownerOf(k, 2)].append(k)
    conns = []
    while len({n for n, _ in conns}) < 2 or len(conns) < 8:
        # no retries: a dropped connection must show, not be quietly reopened
        r = redis.Redis(port=store.port, protocol=2, single_connection_client=True,
                        socket_timeout=10, retry=Retry(NoBackoff(), 0))
        conns.append((r.info()["node"], r))
    writer = next(r for n, r in conns if n == "worker-0")
    for k in keys[0] + keys[1]:
        writer.set(k, valueFor(k.encode(), 16))

    summaries = []
    background = threading.Thread(target=lambda: summaries.append(load.run(
        store.address, connections=20, processes=1, duration=6, keyspace=2000)), daemon=True)
    background.start()
    time.sleep(1)
    victim = store.pids()["worker-1"]
    os.kill(victim, signal.SIGKILL)

    survivors = [r for n, r in conns if n == "worker-0"]
    down = 0
    deadline = time.monotonic() + 15
    while True:
        for r in survivors:
            for k in keys[0][:10]:  # worker-0's keys: right all along
                assert r.get(k) == valueFor(k.encode(), 16)
            for k in keys[1][:10]:
                try:
                    value = r.get(k)
                except redis.ResponseError as e:
                    # redis-py turns a -CLUSTERDOWN reply into ClusterDownError
                    assert isinstance(e, redis.exceptions.ClusterDownError), e
                    down += 1
                    continue
                # the replacement is up: it starts empty, or has what was written since
                assert value in (None, valueFor(k.encode(), 16))
        if store.pids().get("worker-1", victim) != victim:
            break
        assert time.monotonic() < deadline, "no replacement for worker-1"
        time.sleep(0.05)
    assert down > 0  # the dead worker's keys answered CLUSTERDOWN while it was down
    for n, r in conns:
        if n == "worker-1":  # its own clients were cut off
            with pytest.raises(redis.ConnectionError):
                r.get(keys[0][0])
    # once the replacement serves, its keys work again through the survivors
    deadline = time.monotonic() + 10
    while True:
        try:
            survivors[0].set(keys[1][0], "again")
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert survivors[0].get(keys[1][0]) == b"again"
    background.join(60)
    summary = summaries[0]
    # the load saw connection drops and CLUSTERDOWN answers, never a wrong value
    assert summary["requests"] > 0
    assert not [s for s in summary["error_samples"] if "unexpected reply" in s
                and "CLUSTERDOWN" not in s], summary["error_samples"]
    for _, r in conns:
        r.close()
