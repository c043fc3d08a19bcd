"""``cluster load`` and ``cluster.load.run``: built-in and user-defined workloads, every
reply checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cluster import load
from cluster.harness import free_port
from tests import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SUMMARY_KEYS = {"requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors"}


def cluster_load(address, *args, json_output=True):
    """Run ``cluster load ADDRESS [--json] ARGS``; return its exit status and output (the
    summary, with ``--json``)."""
    out = subprocess.run([sys.executable, "-m", "cluster", "load", address,
                          *(["--json"] if json_output else []), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    return out.returncode, json.loads(out.stdout) if json_output else out.stdout + out.stderr


def test_echo_workload(run_cluster):
    c = run_cluster("examples.echo:factory", workers=2)
    code, s = cluster_load(c.address, "--workload", "echo", "-c", "20", "-p", "2", "-n",
                           "3000", "--pipeline", "4", "--value-size", "100")
    assert set(s) >= SUMMARY_KEYS  # the layout load.run returns
    assert (code, s["errors"], s["requests"]) == (0, 0, 3000)
    assert 0 < s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["requests_per_s"] > 0 and s["processes"] == 2


def test_user_workload_and_a_duration(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=2)
    s = load.run(c.address, "tests.clusterapps:EchoCommandLoad", connections=10,
                 processes=2, duration=1.5)
    assert s["errors"] == 0 and s["requests"] > 100
    assert 1.4 <= s["seconds"] <= 3


def test_wrong_replies_are_counted_as_errors(run_cluster):
    c = run_cluster("examples.echo:factory", workers=1)  # not a Redis server
    code, s = cluster_load(c.address, "--workload", "resp", "-c", "2", "-p", "1", "-n", "50",
                           "--set-ratio", "1")
    assert code == 1 and s["errors"] > 0 and s["requests"] == 0
    assert "unexpected reply" in s["error_samples"][0]


def test_no_server_ends_at_once_with_connect_errors():
    address = f"127.0.0.1:{free_port()}"
    s = load.run(address, connections=3, processes=1, requests=100)
    assert set(s) >= SUMMARY_KEYS
    assert s["errors"] == 3 and s["requests"] == 0 and s["requests_per_s"] == 0
    assert "connect" in s["error_samples"][0]
    # the command: exit status 1, the human summary
    code, text = cluster_load(address, "-c", "3", "-p", "1", "-n", "100", json_output=False)
    assert code == 1
    assert "requests  0 (0/s), errors 3" in text and "latency   p50 0.000 ms" in text
    assert "error: connect" in text


def test_a_bad_address_is_refused():
    with pytest.raises(ValueError):
        load.run("127.0.0.1", requests=1)
    code, text = cluster_load("nowhere", "-n", "1", json_output=False)
    assert code == 2 and "HOST:PORT" in text
