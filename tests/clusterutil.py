"""Run a real cluster (``python -m cluster run``) for a test and clean it up by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import psutil

from cluster import control

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_load(port: int, *args: str) -> tuple[int, dict]:
    """Run ``cluster load 127.0.0.1:PORT --json ARGS``; return its exit status and summary."""
    import json

    out = subprocess.run([sys.executable, "-m", "cluster", "load", f"127.0.0.1:{port}",
                          "--json", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    return out.returncode, json.loads(out.stdout)


class RunningCluster:
    def __init__(self, target: str | None = "tests.clusterapps:whoami", workers: int = 2,
                 route: str | None = None, extra: tuple = (), name: str | None = None,
                 heartbeat_timeout: float = 2.0, graceful_timeout: float = 5.0,
                 env: dict[str, str] | None = None, prefix: tuple = ()) -> None:
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.workers = workers
        argv = [*prefix, sys.executable, "-m", "cluster", "run"]
        if target:
            argv.append(target)
        argv += ["--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
                 "--name", self.name, "--heartbeat-timeout", str(heartbeat_timeout),
                 "--graceful-timeout", str(graceful_timeout), *extra]
        if route:
            argv += ["--route", route]
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="cluster-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self.logfile,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, **env} if env else None)
        self.seen_pids: set[int] = {self.proc.pid}

    # -- inspection ------------------------------------------------------------------------

    def status(self) -> dict:
        st = control.request(self.name, "status")
        self.seen_pids.update(p["pid"] for p in st["processes"])
        return st

    def wait_until(self, predicate, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cluster exited ({self.proc.returncode}):\n{self.log()}")
            try:
                last = self.status()
            except (control.NotRunning, OSError, ValueError):
                time.sleep(0.05)
                continue
            if predicate(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status {last}\n{self.log()}")

    def wait_ready(self, timeout: float = 20.0) -> dict:
        def ready(st):
            procs = st["processes"]
            workers = [p for p in procs if p["role"] == "worker"]
            return (len(workers) == self.workers and len(procs) == self.workers + 2
                    and all(p["state"] == "running" for p in procs))

        return self.wait_until(ready, timeout, "the cluster to be ready")

    def pids(self, role: str = "worker") -> dict[str, int]:
        return {p["node"]: p["pid"] for p in self.status()["processes"] if p["role"] == role}

    def log(self) -> str:
        with open(self.logfile.name, errors="replace") as f:
            return f.read()

    # -- clients ---------------------------------------------------------------------------

    def connect(self, source: str | None = None, timeout: float = 10.0) -> Client:
        sock = socket.socket()
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", self.port))
        return Client(sock)

    # -- cleanup ---------------------------------------------------------------------------

    def descendants(self) -> set[int]:
        try:
            return {c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.Error:
            return set()

    def terminate(self, timeout: float = 15.0) -> bool:
        """A graceful stop (SIGTERM to the supervisor); True if it exited in time."""
        self.seen_pids |= self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully, then kill (by PID) whatever is left of what it started."""
        if not self.terminate(timeout):
            self.proc.kill()
            self.proc.wait()
        for pid in self.seen_pids:
            try:
                p = psutil.Process(pid)
                if p.cmdline() and "python" in p.cmdline()[0]:
                    p.kill()
            except psutil.Error:
                pass
        self.logfile.close()
        os.unlink(self.logfile.name)


class Client:
    """A blocking line-oriented client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.f = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next line without its newline (b"" once the server closed)."""
        return self.f.readline().rstrip(b"\n")

    def closed_by_server(self) -> bool:
        return self.f.readline() == b""

    def close(self) -> None:
        self.f.close()  # the socket's fd stays open while its makefile() is open
        self.sock.close()
