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


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
        stop(proc, 10)


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """Terminate a child, then kill it if it outlives ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
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
                    keyspace: int | None = None, tls_ca: str | None = None,
                    cluster: bool = False) -> float:
    """Run redis-benchmark for one test (over TLS, verified against ``tls_ca``, when
    given; with ``cluster``, as a Redis Cluster client: ``port`` is one node's); return
    its requests per second."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
           "-P", str(pipeline), "-t", test, "--csv", *(["--cluster"] if cluster else [])]
    if keyspace:
        cmd += ["-r", str(keyspace)]
    if tls_ca:
        cmd += ["--tls", "--cacert", tls_ca]
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


@contextmanager
def cluster(target: str, workers: int, route: str | None = None, timeout: float = 30.0,
            extra: Sequence[str] = ()):
    """Run ``cluster run TARGET`` with ``workers`` workers (and ``extra`` flags); yield
    (port, pids of every cluster process); stop it and kill anything left, by PID."""
    from cluster import control

    port = free_port()
    name = f"bench-{os.getpid()}-{port}"
    argv = [sys.executable, "-m", "cluster", "run", target, "--workers", str(workers),
            "--bind", f"127.0.0.1:{port}", "--name", name, "--log-level", "WARNING"]
    if route:
        argv += ["--route", route]
    argv += extra
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=raise_fd_limit)
    pids: list[int] = [proc.pid]
    try:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"cluster {name} did not start")
            try:
                st = control.request(name, "status")
            except (control.NotRunning, OSError, ValueError):
                time.sleep(0.1)
                continue
            procs = st["processes"]
            if (sum(p["role"] == "worker" for p in procs) == workers
                    and all(p["state"] == "running" for p in procs)):
                pids = [p["pid"] for p in procs]
                break
            time.sleep(0.1)
        yield port, pids
    finally:
        stop(proc, 20)
        for pid in pids:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


@contextmanager
def servers(argvs: Sequence[Sequence[str]]):
    """Several ``server`` processes at once; yields their Popen objects."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield [stack.enter_context(server(argv)) for argv in argvs]
