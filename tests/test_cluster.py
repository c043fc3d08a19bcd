"""The cluster against real processes on 127.0.0.1: gateway, workers, supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psutil
import pytest

from cluster.shards import ownerOf
from tests import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]



def greet(cluster, source=None):
    """Connect; return the client and the pid of the worker that greeted it."""
    client = cluster.connect(source)
    return client, int(client.line())


def test_round_robin_alternates_between_workers(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", route="round-robin")
    workers = set(c.pids().values())
    served = []
    for _ in range(10):
        client, pid = greet(c)
        served.append(pid)
        client.close()
    assert set(served) == workers
    assert Counter(served) == Counter({pid: 5 for pid in workers})
    assert all(a != b for a, b in zip(served, served[1:], strict=False))


def test_handed_over_connections_have_tcp_nodelay(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=1)
    client, _ = greet(c)
    client.send(b"nodelay\n")
    assert client.line() == b"1"
    client.close()


def test_least_connections_spreads_held_connections(run_cluster):
    c = run_cluster("tests.clusterapps:whoami")  # least-connections is the default
    held = [greet(c) for _ in range(20)]
    counts = Counter(pid for _, pid in held)
    assert set(counts) == set(c.pids().values())
    assert max(counts.values()) - min(counts.values()) <= 4
    # close every connection on one worker: new connections go to it
    emptied = held[0][1]
    for client, pid in held:
        if pid == emptied:
            client.close()
    time.sleep(1.0)  # a load report or two
    fresh = [greet(c) for _ in range(4)]
    assert Counter(pid for _, pid in fresh)[emptied] == 4
    for client, _ in held + fresh:
        client.close()


def test_source_hash_keeps_an_address_on_one_worker(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", route="source-hash")
    by_source = {}
    for i in range(1, 13):
        source = f"127.0.0.{i}"
        pids = set()
        for _ in range(3):
            client, pid = greet(c, source)
            pids.add(pid)
            client.close()
        assert len(pids) == 1, (source, pids)
        by_source[source] = pids.pop()
    assert set(by_source.values()) == set(c.pids().values())


def test_key_routing_sends_a_key_to_its_owner_with_the_preamble_intact(run_cluster):
    c = run_cluster("tests.clusterapps:keyed", route="key")
    pids = c.pids()
    seen: dict[str, set] = {}
    for i in range(16):
        key = f"user{i}"
        for _ in range(2):
            client = c.connect()
            # the preamble arrives in pieces, with more data right behind it
            pieces = (b"LOG", f"IN {key}".encode(), b"\nfirst line\nsec", b"ond\nEND\n")
            for piece in pieces:
                client.send(piece)
                time.sleep(0.01)
            data = b""
            while not data.endswith(b"END\n"):
                chunk = client.sock.recv(4096)
                assert chunk, data
                data += chunk
            pid, _, everything = data.partition(b":")
            assert everything == b"".join(pieces)  # every byte, in order, exactly once
            seen.setdefault(key, set()).add(int(pid))
            client.close()
        owner = f"worker-{ownerOf(key, 2)}"
        assert seen[key] == {pids[owner]}, (key, seen[key], pids)
    assert {p for s in seen.values() for p in s} == set(pids.values())


def test_key_routing_closes_a_connection_without_a_key(run_cluster):
    c = run_cluster("tests.clusterapps:keyed", route="key")
    client = c.connect()
    client.send(b"HELLO there\n")
    assert client.closed_by_server()
    client.close()


def test_every_connection_reaches_exactly_one_worker(run_cluster):
    c = run_cluster("tests.clusterapps:whoami")
    total = 300
    results: list[int] = []
    lock = threading.Lock()

    def client(n):
        for _ in range(n):
            client, pid = greet(c)
            client.send(b"echo ok\n")
            assert client.line() == b"ok"
            client.close()
            with lock:
                results.append(pid)

    threads = [threading.Thread(target=client, args=(total // 6,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == total
    workers = c.pids()
    # the workers' own counts (from their heartbeats) add up to the clients' count
    st = c.wait_until(lambda st: _accepted(st, workers) == total, 10, "worker counts")
    per_worker = _accepted_by_pid(st, workers)
    assert per_worker == dict(Counter(results))


def _accepted_by_pid(st, workers):
    return {p["pid"]: p["accepted"] for p in st["processes"] if p["pid"] in workers.values()}


def _accepted(st, workers):
    return sum(_accepted_by_pid(st, workers).values())


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", route="round-robin")
    conns = [greet(c) for _ in range(4)]
    victim_node, victim = sorted(c.pids().items())[0]
    os.kill(victim, signal.SIGKILL)
    # connections on the victim are closed; the others keep working
    for client, pid in conns:
        if pid == victim:
            assert client.closed_by_server()
        else:
            client.send(b"echo still here\n")
            assert client.line() == b"still here"
    st = c.wait_until(lambda st: c.pids().get(victim_node, victim) != victim
                      and all(p["state"] == "running" for p in st["processes"]), 10,
                      "the replacement")
    row = next(p for p in st["processes"] if p["node"] == victim_node)
    assert row["restarts"] == 1
    # the replacement serves new connections
    fresh = [greet(c) for _ in range(4)]
    assert row["pid"] in {pid for _, pid in fresh}
    for client, _ in conns + fresh:
        client.close()


def test_a_worker_stuck_in_a_loop_is_killed_and_replaced(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", route="round-robin", heartbeat_timeout=1.5)
    client, pid = greet(c)
    node = next(n for n, p in c.pids().items() if p == pid)
    client.send(b"hang\n")
    start = time.monotonic()
    c.wait_until(lambda st: c.pids().get(node) not in (None, pid), 15, "the hung worker's "
                 "replacement")
    assert time.monotonic() - start < 10
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "sent no heartbeat" in c.logs()
    assert client.closed_by_server()
    client.close()


def test_sigterm_ends_everything_within_the_graceful_timeout(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", graceful_timeout=3)
    pids = [p["pid"] for p in c.status()["processes"]]
    held, _ = greet(c)  # an idle connection holds its worker until the timeout
    start = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    c.proc.wait(timeout=10)
    elapsed = time.monotonic() - start
    assert c.proc.returncode == 0, c.logs()
    assert elapsed < 3 + 2
    assert elapsed >= 2.5  # the idle connection was given its graceful timeout
    assert held.closed_by_server()
    for pid in pids:
        assert not psutil.pid_exists(pid) or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    held.close()


def test_graceful_stop_waits_for_open_connections_to_finish(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", graceful_timeout=10)
    client, _ = greet(c)
    c.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    client.send(b"echo served while draining\n")
    assert client.line() == b"served while draining"
    client.close()
    c.proc.wait(timeout=10)
    assert c.proc.returncode == 0


def test_reload_under_a_steady_stream_loses_no_request(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", graceful_timeout=10)
    before = c.pids()
    before_gateway = c.pids("gateway")["gateway"]
    stop = threading.Event()
    done = Counter()
    errors: list[str] = []

    def stream():
        persistent, _ = greet(c)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                client, _ = greet(c)
                client.send(b"echo %d\n" % i)
                assert client.line() == b"%d" % i
                client.close()
                persistent.send(b"echo p%d\n" % i)
                assert persistent.line() == b"p%d" % i
                done["ok"] += 1
            except Exception as e:  # noqa: BLE001 - every failure is the test's finding
                errors.append(repr(e))
        persistent.close()

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    subprocess.run([sys.executable, "-m", "cluster", "reload", "--name", c.name], cwd=ROOT,
                   check=True, timeout=10)

    def reloaded(st):
        running = [p for p in st["processes"] if p["state"] == "running"]
        workers = {p["node"]: p["pid"] for p in running if p["role"] == "worker"}
        gateways = [p for p in running if p["role"] == "gateway"]
        return (len(gateways) == 1 and gateways[0]["pid"] != before_gateway
                and len(workers) == 2 and all(workers[n] != before[n] for n in before))

    c.wait_until(reloaded, 30, "new processes serving")
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert errors == [], errors[:5]
    # the replaced processes exit once their last connection (the persistent ones) closed
    c.wait_until(lambda st: len(st["processes"]) == 4, 10, "the old processes to exit")
    assert set(c.pids().values()).isdisjoint(before.values())
    assert done["ok"] > 20


def test_status_json_lists_every_process_with_live_pids(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=3)
    out = subprocess.run([sys.executable, "-m", "cluster", "status", "--json", "--name",
                          c.name], cwd=ROOT, capture_output=True, text=True, check=True)
    import json

    st = json.loads(out.stdout)
    assert st["name"] == c.name
    roles = Counter(p["role"] for p in st["processes"])
    assert roles == {"supervisor": 1, "gateway": 1, "worker": 3}
    assert [p["node"] for p in st["processes"] if p["role"] == "worker"] == [
        "worker-0", "worker-1", "worker-2"]
    for p in st["processes"]:
        assert set(p) >= {"role", "node", "pid", "state", "uptime", "restarts",
                          "connections", "cpu_percent", "rss", "fds"}
        assert psutil.pid_exists(p["pid"])
        assert p["rss"] > 0 and p["fds"] > 0
    assert next(p for p in st["processes"] if p["role"] == "supervisor")["pid"] == c.proc.pid
    table = subprocess.run([sys.executable, "-m", "cluster", "status", "--name", c.name],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "worker-2" in table and "ROLE" in table


def test_two_named_clusters_run_side_by_side(run_cluster):
    a = run_cluster("tests.clusterapps:whoami", wait=False)
    b = run_cluster("tests.clusterapps:whoami", wait=False)  # both start at once
    a.wait_ready()
    b.wait_ready()
    assert set(a.pids().values()).isdisjoint(b.pids().values())
    pa = greet(a)[1]
    pb = greet(b)[1]
    assert pa in a.pids().values() and pb in b.pids().values()
    # the same name twice is refused
    dup = subprocess.run([sys.executable, "-m", "cluster", "run", "--name", a.name, "--bind",
                          "127.0.0.1:0"], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert dup.returncode != 0 and "already running" in dup.stderr


def test_an_app_that_cannot_be_imported_stops_the_cluster(run_cluster):
    c = run_cluster("tests.brokenapp:factory", wait=False)
    rc = c.proc.wait(timeout=30)
    assert rc != 0
    log = c.logs()
    assert "broken on purpose" in log
    assert log.count("started worker-0") == 1  # not respawned forever


def test_factory_callable_is_called_once_per_worker(run_cluster):
    c = run_cluster("tests.clusterapps:make_whoami")
    assert greet(c)[1] in c.pids().values()


def test_gateway_restart_loses_no_queued_connection(run_cluster):
    c = run_cluster("tests.clusterapps:whoami")
    gateway = c.pids("gateway")["gateway"]
    os.kill(gateway, signal.SIGKILL)
    # connect while no gateway runs: the supervisor's listening socket queues it
    client, pid = greet(c)
    assert pid in c.pids().values()
    assert c.pids("gateway")["gateway"] != gateway
    client.close()


def test_with_every_worker_stalled_new_connections_are_closed_at_once(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", heartbeat_timeout=30)
    workers = list(c.pids().values())
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(2.5)  # no load report for > 4 heartbeat intervals: stalled
        client = c.connect(timeout=5)
        start = time.monotonic()
        assert client.closed_by_server()
        assert time.monotonic() - start < 2
        client.close()
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while "no worker could take a connection" not in c.logs():
        assert time.monotonic() < deadline, c.logs()
        time.sleep(0.05)


def test_ttin_and_ttou_add_and_remove_workers(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", route="round-robin")
    c.proc.send_signal(signal.SIGTTIN)
    st = c.wait_until(lambda st: sum(p["role"] == "worker" and p["state"] == "running"
                                     for p in st["processes"]) == 3, 15, "a third worker")
    pids = {p["pid"] for p in st["processes"] if p["role"] == "worker"}
    # "running" is its process; it takes connections once its shards have moved to it
    served: set[int] = set()
    deadline = time.monotonic() + 10
    while served != pids and time.monotonic() < deadline:
        served |= {greet(c)[1] for _ in range(6)}
    assert served == pids
    c.proc.send_signal(signal.SIGTTOU)
    c.wait_until(lambda st: sum(p["role"] == "worker" for p in st["processes"]) == 2, 15,
                 "back to two workers")
    assert {greet(c)[1] for _ in range(6)} == set(c.pids().values())
