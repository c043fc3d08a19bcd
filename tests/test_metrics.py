"""``cluster run --metrics`` and ``--log-format json`` with real processes: the scrape
parses with prometheus_client's own parser, its numbers move as load runs and as
processes die, a stopped process does not hold a scrape, and every process logs JSON."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import cluster.load
from cluster.harness import free_port
from tests import ROOT

pytestmark = pytest.mark.integration


def fetch(address: str, path: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as r:
        return r.status, r.headers["Content-Type"], r.read()


def scrape(address: str) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, sorted labels without cluster/host): value};
    no family may appear twice and no series twice (Prometheus refuses such a scrape)."""
    status, ctype, body = fetch(address, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    samples = {}
    names = [line.split()[2] for line in body.decode().splitlines()
             if line.startswith("# TYPE ")]
    assert len(names) == len(set(names)), names
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("cluster", "host")}
            key = (s.name, *sorted(labels.items()))
            assert key not in samples, f"{key} twice in one scrape"
            samples[key] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, *sorted(labels.items()))]


@pytest.mark.timeout(90)
def test_metrics_of_the_default_store_move_with_load_and_restarts(run_cluster):
    c = run_cluster(None, workers=2, metrics="127.0.0.1:0", heartbeat_timeout=2)
    address = c.status()["metrics"]
    assert address.startswith("127.0.0.1:")
    before = scrape(address)
    for node, role in (("supervisor", "supervisor"), ("gateway", "gateway"),
                       ("worker-0", "worker"), ("worker-1", "worker")):
        assert value(before, "cluster_up", node=node, role=role) == 1
        assert value(before, "cluster_process_resident_memory_bytes", node=node,
                     role=role) > 1e6
        assert value(before, "cluster_process_open_fds", node=node, role=role) > 3
    _, _, raw = fetch(address, "/metrics")
    assert b'cluster="' + c.name.encode() + b'"' in raw

    summary = cluster.load.run(c.address, workload="resp", connections=8, requests=6000,
                               pipeline=4, processes=1, keyspace=1000)
    assert summary["errors"] == 0
    after = scrape(address)
    w = {"role": "worker"}
    gets = sum(value(after, "cluster_store_commands_total", command="GET", node=n, **w)
               for n in ("worker-0", "worker-1"))
    sets = sum(value(after, "cluster_store_commands_total", command="SET", node=n, **w)
               for n in ("worker-0", "worker-1"))
    assert gets + sets == 6000
    served = sum(value(after, "cluster_requests_total", node=n, **w) -
                 value(before, "cluster_requests_total", node=n, **w)
                 for n in ("worker-0", "worker-1"))
    assert served >= 6000
    # two workers: about half the keys live on the other one, so calls crossed over
    calls = sum(value(after, "cluster_rpc_calls_total", node=n, **w)
                for n in ("worker-0", "worker-1"))
    assert calls > 0
    remote = sum(value(after, "cluster_store_remote_commands_total", node=n, **w)
                 for n in ("worker-0", "worker-1"))
    assert remote > 500
    rtt = sum(value(after, "cluster_rpc_latency_seconds_count", node=n, **w)
              for n in ("worker-0", "worker-1"))
    assert rtt >= calls  # every call that was answered has its round trip recorded
    items = sum(value(after, "cluster_rpc_items_total", node=n, **w)
                for n in ("worker-0", "worker-1"))
    messages = sum(value(after, "cluster_rpc_messages_total", node=n, **w)
                   for n in ("worker-0", "worker-1"))
    assert items >= messages > 0
    keys = sum(value(after, "cluster_store_keys", node=n, **w) for n in ("worker-0",
                                                                          "worker-1"))
    assert 0 < keys <= 1000
    cpu = "cluster_process_cpu_seconds_total"
    assert value(after, cpu, node="worker-0", **w) > value(before, cpu, node="worker-0", **w)
    g = {"node": "gateway", "role": "gateway"}
    accepted = value(after, "cluster_connections_accepted_total", **g)
    assert accepted - value(before, "cluster_connections_accepted_total", **g) == 8
    handed = sum(value(after, "cluster_gateway_handed_off_total", worker=n, **g)
                 for n in ("worker-0", "worker-1"))
    assert handed == accepted
    assert value(after, "cluster_gateway_connections_total", outcome="preferred",
                 **g) == accepted

    victim = c.pids()["worker-1"]
    c.kill("worker-1")
    c.wait_until(lambda st: any(p["node"] == "worker-1" and p["state"] == "running"
                                and p["pid"] != victim for p in st["processes"]),
                 what="worker-1 to be replaced")
    restarted = scrape(address)
    assert value(restarted, "cluster_process_restarts_total", node="worker-1", **w) == 1
    assert value(restarted, "cluster_up", node="worker-1", **w) == 1
    # the store lives in memory: the new worker-1 counts from zero
    assert ("cluster_store_commands_total", ("command", "GET"), ("node", "worker-1"),
            ("role", "worker")) not in restarted


@pytest.mark.timeout(60)
def test_a_stopped_worker_does_not_hold_up_a_scrape(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=2, metrics="127.0.0.1:0",
                    heartbeat_timeout=30)
    address = c.status()["metrics"]
    pid = c.pids()["worker-0"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        samples = scrape(address)
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert took < 5
    assert value(samples, "cluster_metrics_unanswered", node="supervisor",
                 role="supervisor") == 1
    assert ("cluster_connections_open", ("node", "worker-1"), ("role", "worker")) in samples
    assert ("cluster_connections_open", ("node", "worker-0"), ("role", "worker")) not in samples
    # and once it runs again, it answers again
    samples = scrape(address)
    assert value(samples, "cluster_metrics_unanswered", node="supervisor",
                 role="supervisor") == 0


@pytest.mark.timeout(60)
def test_the_metrics_port_serves_the_status_document_and_refuses_garbage(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=1, metrics="127.0.0.1:0")
    address = c.status()["metrics"]
    status, ctype, body = fetch(address, "/status.json")
    doc = json.loads(body)
    assert ctype == "application/json" and doc["name"] == c.name and doc["metrics"] == address
    assert {p["node"] for p in doc["processes"]} == {"supervisor", "gateway", "worker-0"}
    status, ctype, body = fetch(address, "/")
    assert ctype.startswith("text/html") and b"worker-0" in body
    host, _, port = address.rpartition(":")
    for request, code in ((b"BREW /pot HTTP/1.1\r\n\r\n", b"405"),
                          (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"400"),
                          (b"GET /" + b"a" * 20000, b"431")):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(request)
            assert s.recv(100).split(b" ")[1] == code
    # the cluster serves on after all that
    assert fetch(address, "/metrics")[0] == 200


def test_metrics_refuses_a_bad_address():
    out = subprocess.run([sys.executable, "-m", "cluster", "run", "--metrics", "nowhere"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "metrics must be HOST:PORT" in out.stderr


@pytest.mark.timeout(60)
def test_every_process_logs_json_lines(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=2, log_format="json",
                    heartbeat_timeout=2)
    victim = c.pids()["worker-0"]
    c.kill("worker-0")  # a warning from the supervisor, then a new worker's lines
    c.wait_until(lambda st: any(p["node"] == "worker-0" and p["state"] == "running"
                                and p["pid"] != victim for p in st["processes"]),
                 what="worker-0 to come back")
    c.stop()
    entries = [json.loads(line) for line in c.logs().splitlines() if line.strip()]
    assert entries
    for entry in entries:
        assert {"time", "level", "role", "node", "pid", "logger", "message"} <= entry.keys()
    assert {e["role"] for e in entries} == {"supervisor", "gateway", "worker"}
    assert {"worker-0", "worker-1", "gateway", "supervisor"} <= {e["node"] for e in entries}
    assert any(e["level"] == "WARNING" and "worker-0 died" in e["message"]
               and e["role"] == "supervisor" for e in entries)


@pytest.mark.timeout(60)
def test_an_apps_own_metrics_reach_the_scrape(run_cluster):
    c = run_cluster("tests.clusterapps:counting", workers=1, metrics="127.0.0.1:0")
    address = c.status()["metrics"]
    client = c.connect()
    client.line()  # the greeting
    for i in range(25):
        client.send(b"echo %d\n" % i)
        assert client.line() == b"%d" % i
    client.close()
    samples = scrape(address)
    w = {"node": "worker-0", "role": "worker"}
    assert value(samples, "whoami_lines_total", **w) == 25
    assert value(samples, "whoami_commands_total", command="echo", **w) == 25
    assert value(samples, "cluster_requests_total", **w) == 25  # the app's own count
    c.wait_until(lambda st: any(p["node"] == "worker-0" and p["requests"] == 25
                                for p in st["processes"]), 5, "the heartbeat's count")


@pytest.mark.timeout(60)
def test_an_apps_broken_metrics_hook_costs_it_nothing_but_its_numbers(run_cluster):
    c = run_cluster("tests.clusterapps:counting", workers=1, metrics="127.0.0.1:0",
                    heartbeat_timeout=1.5, env={"METRICS_BROKEN": "1"})
    address = c.status()["metrics"]
    pid = c.pids()["worker-0"]
    client = c.connect()
    client.line()
    client.send(b"echo x\n")
    assert client.line() == b"x"
    time.sleep(3)  # two heartbeat timeouts: the hook is called every heartbeat
    samples = scrape(address)
    assert c.pids()["worker-0"] == pid  # never restarted
    w = {"node": "worker-0", "role": "worker"}
    assert value(samples, "cluster_up", **w) == 1
    assert value(samples, "cluster_requests_total", **w) >= 1  # its reads, instead
    assert not any(key[0] == "whoami_lines_total" for key in samples)
    logged = [line for line in c.logs().splitlines() if "metrics() gave nothing" in line]
    assert 1 <= len(logged) <= 3 and "not a finite number" in logged[0]  # once a window
    client.close()


@pytest.mark.timeout(60)
def test_expired_keys_are_counted(run_cluster):
    import redis

    c = run_cluster(None, workers=1, metrics="127.0.0.1:0")
    address = c.status()["metrics"]
    r = redis.Redis(host="127.0.0.1", port=c.port)
    for i in range(10):
        r.set(f"k{i}", "v", px=1)
    r.set("kept", "v")
    time.sleep(0.3)  # the sweeper (every 0.1 s) or a read expires them
    assert r.get("k0") is None
    samples = scrape(address)
    w = {"node": "worker-0", "role": "worker"}
    assert value(samples, "cluster_store_expired_keys_total", **w) == 10
    assert value(samples, "cluster_store_keys", **w) == 1
    r.close()


@pytest.mark.timeout(90)
def test_a_crash_loop_shows_as_a_warning_a_down_row_and_up_zero(run_cluster, tmp_path):
    flag = tmp_path / "crash"
    c = run_cluster("tests.clusterapps:crashy", workers=2, metrics="127.0.0.1:0",
                    env={"CRASH_FLAG": str(flag)})
    address = c.status()["metrics"]
    flag.write_text("crash")
    c.kill("worker-1")
    seen = {"down": False, "up0": False}

    def looping(st):
        if any(p["node"] == "worker-1" and p["state"] == "down" and p["pid"] == 0
               for p in st["processes"]):
            seen["down"] = True
            if not seen["up0"]:
                seen["up0"] = value(scrape(address), "cluster_up", node="worker-1",
                                    role="worker") == 0
        return seen["down"] and seen["up0"] and any(
            w["kind"] == "crash_loop" and w["node"] == "worker-1" for w in st["warnings"])

    st = c.wait_until(looping, 40, "a crash-loop warning for worker-1")
    warning = next(w for w in st["warnings"] if w["kind"] == "crash_loop")
    assert "quick exits in a row" in warning["message"]
    table = subprocess.run([sys.executable, "-m", "cluster", "status", "--name", c.name],
                           cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
    assert "WARNING: worker-1 is in a crash loop" in table
    assert value(scrape(address), "cluster_up", node="worker-0", role="worker") == 1
    flag.unlink()  # fixed: the next restart stays up
    c.wait_until(lambda st: any(p["node"] == "worker-1" and p["state"] == "running"
                                for p in st["processes"]), 30, "worker-1 to stay up")


@pytest.mark.timeout(90)
def test_scrapes_during_a_reload_never_show_a_series_twice(run_cluster):
    c = run_cluster(None, workers=2, metrics="127.0.0.1:0")
    address = c.status()["metrics"]
    failures: list[BaseException] = []
    scrapes = [0]
    done = threading.Event()

    def scraper():
        while not done.is_set():
            try:
                scrape(address)
                scrapes[0] += 1
            except BaseException as e:  # noqa: BLE001 - reported by the test below
                failures.append(e)
                return

    t = threading.Thread(target=scraper)
    t.start()
    try:
        c.reload()
    finally:
        done.set()
        t.join(30)
    assert failures == [] and scrapes[0] > 3


def test_a_metrics_port_in_use_is_a_clear_error_in_json_too():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "cluster", "run", "tests.clusterapps:whoami",
                              "--bind", f"127.0.0.1:{free_port()}", "--name",
                              f"taken-{port}", "--metrics", f"127.0.0.1:{port}",
                              "--log-format", "json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30)
    assert out.returncode == 1
    entries = [json.loads(line) for line in out.stderr.splitlines()]
    assert any("cannot serve metrics on" in e["message"] and e["level"] == "ERROR"
               for e in entries)
