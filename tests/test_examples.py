"""Each example runs from the command line and does its job."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POEM = os.path.join(ROOT, "examples", "poetry", "tyger.txt")


def start(*args):
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = int(re.search(r"(?:port |:)(\d+)\.?$", line.strip()).group(1))
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def poetry_servers():
    servers = [start("examples.poetry_server", "--port", "0", "--delay", "0.01",
                     "--num-bytes", str(n)) for n in (40, 70)]
    yield [port for _, port in servers]
    for proc, _ in servers:
        stop(proc)


@pytest.mark.parametrize("client", ["examples.poetry_client_raw", "examples.poetry_client"])
def test_poetry_clients_download_every_poem(poetry_servers, client):
    out = subprocess.run([sys.executable, "-m", client, *map(str, poetry_servers)], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    size = os.path.getsize(POEM)
    assert re.findall(r"Task (\d+): (\d+) bytes of poetry$", out.stdout, re.M) == [
        ("1", str(size)), ("2", str(size))]
    assert "Got 2 poems" in out.stdout


def test_poetry_client_reports_a_server_that_is_down(poetry_servers):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    out = subprocess.run([sys.executable, "-m", "examples.poetry_client", str(poetry_servers[0]),
                          str(dead)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"Failed to connect to: IPv4Address(type='TCP', host='127.0.0.1', port={dead})" \
        in out.stdout
    assert "Got 2 poems" in out.stdout


def test_echo_server():
    proc, port = start("examples.echo", "--port", "0")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"ping\n")
            assert c.recv(100) == b"ping\n"
    finally:
        stop(proc)


def test_players_keep_their_keys_on_one_shard(run_cluster):
    from cluster.harness import free_ports

    base = free_ports(2)
    c = run_cluster(None, workers=2, worker_ports=base)
    out = subprocess.run([sys.executable, "-m", "examples.players", c.address, "--players",
                          "30", "--purchases", "300"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    bought = int(out.stdout.split()[0])
    assert 0 < bought <= 300
    assert f"{base}:" in out.stdout and f"{base + 1}:" in out.stdout  # on both workers
    assert out.stdout.rstrip().endswith("disagree: 0")
