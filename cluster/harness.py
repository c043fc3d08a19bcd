"""Run a real cluster (``python -m cluster run``) from a test, and leave nothing behind.

``RunningCluster`` starts one on a free 127.0.0.1 port under a unique name and is the
test's handle on it (status, kill, reload, resize, logs, clients); ``stop()`` stops it
gracefully, then kills by PID every process it ever saw and removes its run directory.
``Clusters`` starts several and stops them all; the pytest plugin
(``cluster.pytest_plugin``) is a thin fixture around it.
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from cluster import control, process, rundir

LOG_TAIL = 20_000  # characters of the log a failure report shows


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(n: int, host: str = "127.0.0.1") -> int:
    """The first of ``n`` consecutive ports free on ``host`` right now (for
    ``worker_ports``: worker N listens on the first + N)."""
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randint(20000, 60000 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                socks.append(s)
                s.bind((host, base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def option_flags(options: dict[str, Any]) -> list[str]:
    """``cluster run`` flags for keyword options: ``route="key"`` -> ``--route key``,
    ``graceful_timeout=5`` -> ``--graceful-timeout 5``, True -> the bare flag, None and
    False -> nothing, a list or tuple -> the flag once per item."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list | tuple):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


_LIVE: weakref.WeakSet[RunningCluster] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort when the test process exits with clusters still up (an interrupted
    session that skipped its teardown): kill them by PID."""
    for c in list(_LIVE):
        c.kill_all()


class RunningCluster:
    """One ``python -m cluster run`` started for a test, and the test's handle on it.

    ``options`` become ``cluster run`` flags (see ``option_flags``); ``extra`` is raw argv
    appended after them, ``prefix`` a command the cluster runs under (``unshare ...``,
    ``prlimit ...``), ``env`` entries added to this process's environment, ``cwd`` the
    directory TARGET is imported from. The supervisor gets SIGTERM if the thread that
    started it dies (Linux's parent-death signal), so a test process killed outright
    still stops its clusters; its children already exit with their supervisor.
    """

    def __init__(self, target: str | None = None, workers: int | None = 2, *,
                 name: str | None = None, cwd: str | None = None,
                 env: dict[str, str] | None = None, prefix: Iterable[str] = (),
                 extra: Iterable[str] = (), **options: Any) -> None:
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
        self.target = target
        self.workers = workers
        bind = options.pop("bind", None)
        if bind is None:
            self.host, self._port = "127.0.0.1", free_port()
            bind = f"{self.host}:{self._port}"
        else:
            host, _, port = str(bind).rpartition(":")
            self.host, self._port = host.strip("[]") or "127.0.0.1", int(port)
        self.options = options
        argv = [*prefix, sys.executable, "-m", "cluster", "run"]
        if target:
            argv.append(target)
        if workers is not None:
            argv += ["--workers", str(workers)]
        argv += ["--bind", bind, "--name", self.name, *option_flags(options), *extra]
        self.argv = argv
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix=f"cluster-{self.name}-", suffix=".log", delete=False)
        self._log_text: str | None = None  # the log, once its file is gone
        self._seen: dict[int, psutil.Process] = {}
        self._stopped: list[str] | None = None
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self.logfile,
            stderr=subprocess.STDOUT, env={**os.environ, **env} if env is not None else None,
            start_new_session=True,  # a Ctrl-C reaches the test process, which stops it
            preexec_fn=functools.partial(process.dieWithParent, os.getpid(), signal.SIGTERM))
        self._track(self.proc.pid)
        _LIVE.add(self)

    # -- where it is -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port it serves on (asked of the cluster when bound to port 0)."""
        if not self._port:
            self._port = int(self.status()["bind"].rpartition(":")[2])
        return self._port

    @property
    def address(self) -> str:
        """``HOST:PORT``, as ``cluster.load.run`` and ``cluster load`` take it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def metrics_address(self) -> str | None:
        """``HOST:PORT`` of its ``--metrics`` server (None without one), as status shows it."""
        return self.status().get("metrics") or None

    # -- inspection ------------------------------------------------------------------------

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        """The ``cluster status --json`` document, from the control socket."""
        st = control.request(self.name, "status", timeout=timeout)
        for row in st["processes"]:
            if row["pid"] and row["pid"] not in self._seen:
                self._track(row["pid"], verify=True)
        return st

    def wait_until(self, predicate: Callable[[dict[str, Any]], Any], timeout: float = 20.0,
                   what: str = "condition") -> dict[str, Any]:
        """Poll ``status()`` until ``predicate(status)`` holds; return that status. Fails
        (AssertionError, with the log) on timeout or if the supervisor exits."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cluster {self.name} exited ({self.proc.returncode}):"
                                     f"\n{self.log_tail()}")
            try:
                last = self.status()
            except (control.NotRunning, OSError, ValueError):
                time.sleep(0.05)
                continue
            if predicate(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status {last}\n"
                             f"{self.log_tail()}")

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the gateway and every worker run; return the status."""
        def ready(st: dict[str, Any]) -> bool:
            procs = st["processes"]
            want = st["workers"] if self.workers is None else self.workers
            workers = [p for p in procs if p["role"] == "worker"]
            return (len(workers) == want and len(procs) == want + 2
                    and all(p["state"] == "running" for p in procs))

        st = self.wait_until(ready, timeout, "the cluster to be ready")
        self._track_descendants()
        return st

    def pids(self, role: str = "worker") -> dict[str, int]:
        """``{node: pid}`` of the processes of ``role`` (worker, gateway, supervisor); a
        node that died and waits for its restart (state ``down``) has none."""
        return {p["node"]: p["pid"] for p in self.status()["processes"]
                if p["role"] == role and p["pid"]}

    def logs(self) -> str:
        """Everything the cluster's processes wrote so far (stdout and stderr)."""
        if self._log_text is not None:
            return self._log_text
        with open(self.logfile.name, errors="replace") as f:
            return f.read()

    def log_tail(self, limit: int = LOG_TAIL) -> str:
        """The end of ``logs()``, for a failure message."""
        try:
            text = self.logs()
        except OSError as e:
            return f"(no log: {e})"
        return text if len(text) <= limit else "...\n" + text[-limit:]

    # -- acting on it ----------------------------------------------------------------------

    def kill(self, node: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the process serving ``node`` (``worker-0``, ``gateway``,
        ``supervisor``); return its pid."""
        pid = next((p["pid"] for p in self.status()["processes"] if p["node"] == node), None)
        if not pid:
            raise KeyError(f"no process serves {node!r} in cluster {self.name}")
        self._track_descendants()
        os.kill(pid, sig)
        return pid

    def reload(self, timeout: float = 120.0) -> dict[str, Any]:
        """A rolling reload (as ``cluster reload``); fails (RuntimeError) if it did."""
        reply = control.request(self.name, "reload", timeout=timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"reload of cluster {self.name} failed: "
                               f"{reply.get('error', reply)}")
        self._track_descendants()
        return reply

    def resize(self, n: int, timeout: float = 60.0) -> dict[str, Any]:
        """Grow or shrink to ``n`` workers (the control socket's ttin/ttou, one at a time);
        return the status once exactly ``n`` workers run."""
        if n < 1:
            raise ValueError(f"a cluster needs at least one worker, not {n}")
        deadline = time.monotonic() + timeout
        current = self.status()["workers"]
        while current != n:
            cmd = "ttin" if current < n else "ttou"
            reply = control.request(self.name, cmd,
                                    timeout=max(1.0, deadline - time.monotonic()))
            if not reply.get("ok"):
                raise RuntimeError(f"{cmd} of cluster {self.name} failed: "
                                   f"{reply.get('error', reply)}")
            current += 1 if cmd == "ttin" else -1
            self._track_descendants()
        self.workers = n

        def resized(st: dict[str, Any]) -> bool:
            workers = [p for p in st["processes"] if p["role"] == "worker"]
            return (st["operation"] is None and len(workers) == n
                    and all(p["state"] == "running" for p in st["processes"]))

        return self.wait_until(resized, max(1.0, deadline - time.monotonic()),
                               f"{n} running workers")

    # -- clients ---------------------------------------------------------------------------

    def connect(self, source: str | None = None, timeout: float = 10.0) -> Client:
        """A blocking client connection (from ``source`` if given)."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.settimeout(timeout)
        try:
            if source:
                sock.bind((source, 0))
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        return Client(sock)

    # -- cleanup ---------------------------------------------------------------------------

    def _track(self, pid: int, verify: bool = False) -> None:
        """Remember ``pid`` (as a psutil handle, which knows its start time, so a reused
        pid is never killed); with ``verify``, only if it descends from the supervisor
        (pids from status are another namespace's under ``unshare --pid``)."""
        try:
            p = psutil.Process(pid)
            if verify and pid != self.proc.pid and self.proc.pid not in {
                    a.pid for a in p.parents()}:
                return
        except psutil.Error:
            return
        self._seen[pid] = p

    def _track_descendants(self) -> None:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return
        for p in children:
            self._seen.setdefault(p.pid, p)

    @property
    def seen_pids(self) -> set[int]:
        """Every pid of this cluster seen so far: what ``stop()`` kills if still there."""
        return set(self._seen)

    def alive(self) -> list[psutil.Process]:
        """The processes it started that still run."""
        self._track_descendants()
        return [p for p in self._seen.values() if _alive(p)]

    def stop(self, timeout: float = 15.0) -> list[str]:
        """Stop gracefully (SIGTERM to the supervisor, up to ``timeout`` s), then kill by
        PID whatever it started that is still there and remove its run directory if left;
        return what had to be killed or removed (empty after a clean stop)."""
        if self._stopped is not None:
            return self._stopped
        leftovers: list[str] = []
        running = self.proc.poll() is None
        try:
            self._track_descendants()
            if running:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    leftovers.append(f"supervisor {self.proc.pid} still running {timeout}s "
                                     f"after SIGTERM")
            deadline = time.monotonic() + 5  # the children exit with their supervisor
            alive = self.alive()
            while alive and time.monotonic() < deadline and self.proc.poll() is not None:
                time.sleep(0.05)
                alive = self.alive()
            leftovers += [f"pid {p.pid} of {self.name}" for p in alive]
        finally:
            self.kill_all()
        path = rundir.path(self.name)
        if os.path.exists(path) and not rundir.isLive(self.name):
            if running:
                leftovers.append(f"run directory {path}")
            shutil.rmtree(path, ignore_errors=True)
        self._stopped = leftovers
        _LIVE.discard(self)
        return leftovers

    def kill_all(self) -> None:
        """SIGKILL, by PID, every process of this cluster still there; reap the supervisor."""
        self._track_descendants()
        victims = [p for p in self._seen.values() if _alive(p)]
        for p in victims:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(victims, timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> list[str]:
        """``stop()``, then delete the log file (``logs()`` still answers, from memory)."""
        try:
            return self.stop()
        finally:
            if self._log_text is None:
                try:
                    self._log_text = self.logs()
                except OSError:
                    self._log_text = ""
                self.logfile.close()
                try:
                    os.unlink(self.logfile.name)
                except OSError:
                    pass

    def __enter__(self) -> RunningCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunningCluster {self.name} {self.host}:{self._port} pid {self.proc.pid}>"


class Clusters:
    """Starts clusters (call it like ``RunningCluster``, plus ``wait``) and stops them all
    on ``close()``: what the ``run_cluster`` fixture is."""

    def __init__(self, cwd: str | None = None, defaults: dict[str, Any] | None = None,
                 ready_timeout: float = 30.0) -> None:
        self.cwd = cwd
        self.defaults = dict(defaults or {})
        self.ready_timeout = ready_timeout
        self.started: list[RunningCluster] = []

    def __call__(self, target: str | None = None, workers: int | None = 2, *,
                 wait: bool = True, **options: Any) -> RunningCluster:
        """Start a cluster of ``target`` (None: the default store); unless ``wait`` is
        False, return once every process runs."""
        options = {**self.defaults, **options}
        options.setdefault("cwd", self.cwd)
        c = RunningCluster(target, workers, **options)
        self.started.append(c)
        if wait:
            c.wait_ready(self.ready_timeout)
        return c

    def close(self) -> list[str]:
        """Stop every cluster started (even when interrupted: each is killed by PID); return
        what the graceful stops left behind."""
        leftovers: list[str] = []
        try:
            for c in self.started:
                leftovers += c.close()
        finally:
            for c in self.started:
                c.kill_all()
        return leftovers

    def __enter__(self) -> Clusters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A blocking line-oriented client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.f = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next line without its newline (b"" once the server closed)."""
        return self.f.readline().rstrip(b"\n")

    def closed_by_server(self) -> bool:
        """True if the server closed the connection (the next read is EOF)."""
        return self.f.readline() == b""

    def close(self) -> None:
        """Close the connection."""
        self.f.close()  # the socket's fd stays open while its makefile() is open
        self.sock.close()
