"""Helpers every benchmark script shares: servers as subprocesses, CPU accounting by PID,
redis-benchmark runs, machine facts and medians."""

from __future__ import annotations

import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def server(argv: Sequence[str], ready: str = "ready", timeout: float = 20.0):
    """Start ``argv`` (a Python module's arguments) and wait for its ``ready`` line;
    yield the Popen; terminate it (by PID) on exit."""
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=raise_fd_limit)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{argv} exited before it was ready")
            if line.strip() == ready:
                break
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of the given processes."""
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def redis_benchmark(port: int, test: str, requests: int, pipeline: int, clients: int = 50,
                    keyspace: int | None = None) -> float:
    """Run redis-benchmark for one test; return its requests per second."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
           "-P", str(pipeline), "-t", test, "--csv"]
    if keyspace:
        cmd += ["-r", str(keyspace)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [ln for ln in out.splitlines() if ln.startswith('"') and not ln.startswith('"test"')]
    return float(rows[-1].split(",")[1].strip('"'))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    redis = subprocess.run(["redis-benchmark", "--version"], capture_output=True,
                           text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, {redis}")


def versions(*modules: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for m in modules:
        try:
            parts.append(f"{m} {version(m)}")
        except PackageNotFoundError:
            parts.append(f"{m} (absent)")
    return ", ".join(parts)
