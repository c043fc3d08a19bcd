"""``cluster load``: built-in and user-defined workloads, every reply checked."""

from __future__ import annotations

import pytest

from tests.clusterutil import cluster_load

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_echo_workload(make_cluster):
    c = make_cluster("examples.echo:factory", workers=2)
    c.wait_ready()
    code, s = cluster_load(c.port, "--workload", "echo", "-c", "20", "-p", "2", "-n", "3000",
                   "--pipeline", "4", "--value-size", "100")
    assert (code, s["errors"], s["requests"]) == (0, 0, 3000)
    lat = s["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] * 1.05


def test_user_workload_and_a_duration(make_cluster):
    c = make_cluster(workers=2)
    c.wait_ready()
    code, s = cluster_load(c.port, "--workload", "tests.clusterapps:EchoCommandLoad", "-c", "10",
                   "-p", "2", "-d", "1.5")
    assert code == 0 and s["errors"] == 0 and s["requests"] > 100
    assert 1.4 <= s["seconds"] <= 3


def test_wrong_replies_are_counted_as_errors(make_cluster):
    c = make_cluster("examples.echo:factory", workers=1)  # not a Redis server
    c.wait_ready()
    code, s = cluster_load(c.port, "--workload", "resp", "-c", "2", "-p", "1", "-n", "50",
                   "--set-ratio", "1")
    assert code == 1 and s["errors"] > 0 and s["requests"] == 0
    assert "unexpected reply" in s["error_samples"][0]


def test_no_server_ends_at_once_with_connect_errors():
    from tests.clusterutil import free_port

    code, s = cluster_load(free_port(), "-c", "3", "-p", "1", "-n", "100")
    assert code == 1 and s["errors"] == 3 and s["requests"] == 0
    assert "connect" in s["error_samples"][0]
