"""cluster.rpc across real worker processes started by ``cluster run``."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from cluster.shards import ownerOf

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

APP = "tests.rpcapps:factory"


def ask(client, line: str):
    """Send one command; return ("ok", value) or ("err", "Type message")."""
    client.send(line.encode() + b"\n")
    kind, _, rest = client.line().decode().partition(" ")
    return (kind, json.loads(rest)) if kind == "ok" else (kind, rest)


def on(cluster, node: str):
    """A client connection served by ``node`` (round-robin: try until it lands there)."""
    for _ in range(20):
        client = cluster.connect()
        client.send(b"HELLO x\n")
        kind, (where, _) = ask(client, "me")
        if where == node:
            return client
        client.close()
    raise AssertionError(f"no connection reached {node}")


def test_call_remote_between_workers(run_cluster):
    c = run_cluster(APP, workers=2, route="round-robin")
    pids = c.pids()
    client = on(c, "worker-0")
    assert ask(client, "call worker-1 t.whereami") == ("ok", ["worker-1", pids["worker-1"]])
    assert ask(client, "call worker-0 t.whereami") == ("ok", ["worker-0", pids["worker-0"]])
    kind, text = ask(client, "call worker-1 t.boom oops")
    assert kind == "err" and text.startswith("RemoteError KeyError")
    kind, text = ask(client, "call worker-1 no.such")
    assert kind == "err" and text.startswith("NoSuchMethod")
    client.close()


def test_call_shard_reaches_the_owner_of_each_key(run_cluster):
    c = run_cluster(APP, workers=3, route="round-robin")
    pids = c.pids()
    client = on(c, "worker-0")
    for i in range(30):
        key = f"user:{i}"
        owner = f"worker-{ownerOf(key, 3)}"
        assert ask(client, f"shard {key}") == ("ok", [owner, pids[owner]])
    client.close()


def test_broadcast_reaches_every_worker(run_cluster):
    c = run_cluster(APP, workers=3, route="round-robin")
    pids = c.pids()
    client = on(c, "worker-1")
    assert ask(client, "bcast") == ("ok", {n: [n, pid] for n, pid in pids.items()})
    client.close()


def test_publish_reaches_every_process_in_order(run_cluster):
    c = run_cluster(APP, workers=2, route="round-robin")
    a, b = on(c, "worker-0"), on(c, "worker-1")
    for i in range(200):
        assert ask(a, f"pub t m{i}") == ("ok", None)
    expected = [f"m{i}" for i in range(200)]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if ask(a, "seen t")[1] == expected and ask(b, "seen t")[1] == expected:
            break
        time.sleep(0.05)
    assert ask(a, "seen t") == ("ok", expected)  # the publisher's own process too
    assert ask(b, "seen t") == ("ok", expected)
    a.close()
    b.close()


def test_a_killed_callee_fails_pending_calls_with_node_lost_at_once(run_cluster):
    c = run_cluster(APP, workers=2, route="round-robin", rpc_timeout=60)
    victim = c.pids()["worker-1"]
    client = on(c, "worker-0")
    client.send(b"call worker-1 t.sleep 30\n")
    time.sleep(0.3)
    started = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    kind, text = client.line().decode().partition(" ")[::2]
    assert (kind, text.split(" ")[0]) == ("err", "NodeLost")
    assert time.monotonic() - started < 3  # not at the 60 s timeout
    # once the replacement is up, calls reach it
    c.wait_until(lambda st: c.pids().get("worker-1", victim) != victim
                 and all(p["state"] == "running" for p in st["processes"]), 15,
                 "the replacement")
    new = c.pids()["worker-1"]
    deadline = time.monotonic() + 5
    while ask(client, "call worker-1 t.whereami") != ("ok", ["worker-1", new]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client.close()


def test_calls_time_out_with_the_configured_default(run_cluster):
    c = run_cluster(APP, workers=2, route="round-robin", rpc_timeout=0.3)
    client = on(c, "worker-0")
    kind, text = ask(client, "call worker-1 t.sleep 5")
    assert kind == "err" and text.startswith("TimeoutError")
    # and the worker keeps serving afterwards (the late reply is dropped quietly)
    time.sleep(0.2)
    assert ask(client, "call worker-1 t.whereami")[0] == "ok"
    client.close()


def test_the_gateway_calls_workers(run_cluster):
    c = run_cluster(APP, workers=2, route="key")
    pids = c.pids()
    client = c.connect()
    client.send(b"HELLO somekey\n")
    deadline = time.monotonic() + 10
    while (got := ask(client, "seen fromgw")) == ("ok", []):
        assert time.monotonic() < deadline, "the gateway's call never arrived"
        time.sleep(0.1)
    assert got == ("ok", [["worker-0", pids["worker-0"]]])
    assert ask(client, "call gateway t.whereami")[1][0] == "gateway"
    client.close()
