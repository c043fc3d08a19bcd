"""The supervisor (``cluster run``): spawns, watches, restarts, reloads and stops the
gateway and the workers, on its own reactor.

It owns what must outlive any child: the listening socket (a gateway restart loses no
connection waiting in the backlog), one copy of each worker's handoff socket (so a new
gateway can be given them), and the run directory with the control socket.

Read it like gunicorn's arbiter: signals become ``handle_<signal>`` calls on the loop;
``spawnWorker``/``spawnGateway`` start fresh interpreters; ``childExited`` reaps and
restarts with backoff; ``tick`` kills children whose heartbeats stopped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import psutil

from cluster import channel, rundir
from cluster.child import BOOT_ERROR
from cluster.config import Config
from cluster.control import ControlFactory
from cluster.error import CONNECTION_DONE, ReactorNotRunning

log = logging.getLogger("cluster")

QUICK_EXIT = 5.0  # a child that dies sooner than this after starting did not really start
MAX_BACKOFF = 10.0
CRASH_LOOP = 5  # quick failures in a row that count as a crash loop


class Child:
    """One process the supervisor started."""

    def __init__(self, role: str, index: int | None) -> None:
        self.role = role
        self.index = index
        self.node = "gateway" if role == "gateway" else f"worker-{index}"
        self.state = "starting"
        self.started = time.monotonic()
        self.lastBeat = self.started
        self.stats: dict[str, Any] = {}
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.channel: channel.Channel | None = None
        self.watcher: ExitWatcher | None = None
        self.handoffEnd: socket.socket | None = None  # workers: the gateway's end, our copy
        self.retiring = False  # replaced or removed: its exit is expected
        self.bootError: str | None = None
        self.onReady: Any = None
        self.killed = False
        self.rpcEndpoint: str | None = None  # where its RPC node listens, once ready

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def closeHandoff(self) -> None:
        if self.handoffEnd is not None:
            self.handoffEnd.close()
            self.handoffEnd = None


class ExitWatcher:
    """A pidfd: readable once the child has exited (no SIGCHLD races, no polling)."""

    def __init__(self, child: Child, supervisor: Supervisor) -> None:
        self.child = child
        self.supervisor = supervisor
        self.fd = os.pidfd_open(child.pid)

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return f"exit watcher of {self.child.node}"

    def doRead(self) -> Any:
        return CONNECTION_DONE

    def connectionLost(self, reason: Any) -> None:
        os.close(self.fd)
        self.fd = -1
        self.supervisor.childExited(self.child)


class Supervisor:
    """Runs one named cluster until it is stopped; ``run()`` returns the exit status."""

    def __init__(self, config: Config, reactor: Any = None) -> None:
        if reactor is None:
            from cluster.reactor import reactor
        self.reactor = reactor
        self.config = config
        self.children: list[Child] = []
        self.serving: dict[int, Child] = {}  # the worker that takes slot i's connections
        self.gateway: Child | None = None
        self.restarts: dict[str, int] = {}
        self.quickFailures: dict[str, int] = {}
        self.state = "starting"
        self.started = time.monotonic()
        self.exitCode = 0
        self.listening: socket.socket | None = None
        self.reloadQueue: list[int] = []
        self.stopDeadline = 0.0
        self.ps = psutil.Process()
        self.ps.cpu_percent()
        self._tick: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.config
        self.rundir = rundir.create(cfg.name)
        try:
            self.listening = self._listen()
            self.controlPort = self.reactor.listenUNIX(
                rundir.controlPath(cfg.name), ControlFactory(self), mode=0o600)
            for sig, handler in ((signal.SIGTERM, self.handle_term),
                                 (signal.SIGINT, self.handle_int),
                                 (signal.SIGQUIT, self.handle_quit),
                                 (signal.SIGHUP, self.handle_hup),
                                 (signal.SIGTTIN, self.handle_ttin),
                                 (signal.SIGTTOU, self.handle_ttou)):
                signal.signal(sig, lambda s, f, h=handler: self.reactor.callFromThread(h))
            self.reactor.callWhenRunning(self.startAll)
            self.reactor.run(installSignalHandlers=False)
        finally:
            for child in self.children:
                child.signal(signal.SIGKILL)
            if self.listening is not None:
                self.listening.close()
            rundir.remove(cfg.name)
        log.info("cluster %r stopped", cfg.name)
        return self.exitCode

    def _listen(self) -> socket.socket:
        host, port = self.config.hostPort()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise SystemExit(f"cannot listen on {host}:{port}: {e}") from e
        sock.listen(self.config.backlog)
        sock.set_inheritable(True)
        self.boundPort = sock.getsockname()[1]
        return sock

    def startAll(self) -> None:
        cfg = self.config
        log.info("cluster %r: %d worker(s), route %s, listening on %s:%d", cfg.name,
                 cfg.workers, cfg.route, cfg.hostPort()[0], self.boundPort)
        self.spawnGateway()
        for index in range(cfg.workers):
            self.spawnWorker(index)
        self._scheduleTick()

    def _scheduleTick(self) -> None:
        self._tick = self.reactor.callLater(self.config.heartbeat_interval, self.tick)

    # -- spawning --------------------------------------------------------------------------

    def _spawn(self, child: Child, spec: dict[str, Any], passFds: list[int]) -> Child:
        mine, theirs = channel.pair()
        spec = {**self._baseSpec(), **spec, "control_fd": theirs.fileno()}
        argv = [sys.executable, "-m", child.role, child.node, "--name", self.config.name,
                "--spec", json.dumps(spec)]
        child.proc = subprocess.Popen(argv, pass_fds=[theirs.fileno(), *passFds])
        theirs.close()
        child.ps = psutil.Process(child.pid)
        child.ps.cpu_percent()  # prime: the next call reports usage since now
        child.channel = channel.Channel(
            mine, self.reactor, lambda msg, fds: self.onChildMessage(child, msg, fds)).start()
        child.watcher = ExitWatcher(child, self)
        self.reactor.addReader(child.watcher)
        self.children.append(child)
        log.info("started %s (pid %d)", child.node, child.pid)
        return child

    def _baseSpec(self) -> dict[str, Any]:
        cfg = self.config
        return {"target": cfg.target, "route": cfg.route, "workers": cfg.workers,
                "slots": cfg.slots, "graceful_timeout": cfg.graceful_timeout,
                "heartbeat_interval": cfg.heartbeat_interval, "log_level": cfg.log_level,
                "preamble_limit": cfg.preamble_limit, "preamble_timeout": cfg.preamble_timeout,
                "rpc_timeout": cfg.rpc_timeout, "rundir": self.rundir}

    def spawnGateway(self, onReady: Any = None) -> Child:
        child = Child("gateway", None)
        child.onReady = onReady
        self._spawn(child, {"listen_fd": self.listening.fileno()}, [self.listening.fileno()])
        return child

    def spawnWorker(self, index: int, onReady: Any = None) -> Child:
        gatewayEnd, workerEnd = channel.pair()
        child = Child("worker", index)
        child.handoffEnd = gatewayEnd
        child.onReady = onReady
        try:
            self._spawn(child, {"index": index, "handoff_fd": workerEnd.fileno()},
                        [workerEnd.fileno()])
        finally:
            workerEnd.close()
        return child

    # -- messages from children ------------------------------------------------------------

    def onChildMessage(self, child: Child, msg: Any, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        kind = msg[0] if isinstance(msg, list) and msg else None
        if kind == "hb":
            child.lastBeat = time.monotonic()
            child.stats = msg[1]
        elif kind == "ready":
            child.lastBeat = time.monotonic()
            child.rpcEndpoint = msg[1].get("rpc") if isinstance(msg[1], dict) else None
            if child.state == "starting":
                child.state = "running"
                self.childReady(child)
        elif kind == "boot_error":
            child.bootError = msg[1]
        else:
            log.warning("%s sent an unknown message %r", child.node, kind)

    def childReady(self, child: Child) -> None:
        if self.state == "stopping":
            child.signal(signal.SIGTERM)
            return
        if child.role == "gateway":
            old, self.gateway = self.gateway, child
            for index, worker in sorted(self.serving.items()):
                self._giveSlot(index, worker)
            if old is not None:
                old.retiring = True
                old.state = "stopping"
                old.signal(signal.SIGTERM)
        else:
            old = self.serving.get(child.index)
            self.serving[child.index] = child
            if self.gateway is not None:
                self._giveSlot(child.index, child)
            if old is not None and old is not child:
                self.retire(old)
        self._announcePeers()
        if self.state == "starting" and self._allUp():
            self.state = "running"
            log.info("cluster %r ready: %d worker(s) serving on %s:%d", self.config.name,
                     len(self.serving), self.config.hostPort()[0], self.boundPort)
        if child.onReady is not None:
            onReady, child.onReady = child.onReady, None
            onReady()

    def _announcePeers(self) -> None:
        """Tell every child which process serves each RPC node (pid, endpoint): at start,
        after every restart, replacement and exit, so callers of a lost node fail fast."""
        serving = [w for _, w in sorted(self.serving.items())]
        if self.gateway is not None:
            serving.append(self.gateway)
        peers = {c.node: [c.pid, c.rpcEndpoint] for c in serving
                 if c.state == "running" and c.rpcEndpoint}
        for child in self.children:
            if child.channel is not None and not child.channel.closed:
                child.channel.send(["peers", peers, self.config.workers])

    def _allUp(self) -> bool:
        return (self.gateway is not None and self.gateway.state == "running"
                and len(self.serving) == self.config.workers
                and all(w.state == "running" for w in self.serving.values()))

    def _giveSlot(self, index: int, worker: Child) -> None:
        gw = self.gateway
        if gw is None or gw.channel is None or worker.handoffEnd is None:
            return
        if worker.state != "running":
            return
        gw.channel.send(["workers", self.config.workers])
        gw.channel.send(["slot", index], [worker.handoffEnd.fileno()])

    def retire(self, worker: Child) -> None:
        """Stop a replaced or removed worker: it finishes its open connections first."""
        worker.retiring = True
        worker.state = "draining"
        worker.closeHandoff()  # with the gateway's copy gone too, the worker sees EOF
        worker.signal(signal.SIGTERM)

    # -- exits and restarts ----------------------------------------------------------------

    def childExited(self, child: Child) -> None:
        rc = child.proc.wait()
        self.children.remove(child)
        child.channel.close()
        child.closeHandoff()
        if self.serving.get(child.index) is child and child.role == "worker":
            del self.serving[child.index]
        if self.gateway is child:
            self.gateway = None
        how = f"exit status {rc}" if rc >= 0 else f"signal {signal.Signals(-rc).name}"
        self._announcePeers()
        if self.state == "stopping":
            log.info("%s (pid %d) stopped (%s)", child.node, child.pid, how)
            if not self.children:
                self._finish()
            return
        if child.bootError is not None or rc == BOOT_ERROR:
            log.error("%s could not load the application; stopping the cluster.\n%s",
                      child.node, child.bootError or "(no details)")
            self.exitCode = BOOT_ERROR
            self.stop(fast=True)
            return
        if child.retiring:
            log.info("%s (pid %d) finished after being replaced (%s)", child.node, child.pid,
                     how)
            return
        self._restart(child, how)

    def _restart(self, child: Child, how: str) -> None:
        key = child.node
        self.restarts[key] = self.restarts.get(key, 0) + 1
        lived = time.monotonic() - child.started
        quick = self.quickFailures.get(key, 0) + 1 if lived < QUICK_EXIT else 0
        self.quickFailures[key] = quick
        delay = min(0.1 * (2 ** quick), MAX_BACKOFF) if quick else 0.0
        if quick >= CRASH_LOOP:
            log.error("%s is in a crash loop (%d quick exits in a row, last: %s); "
                      "next restart in %.1fs", key, quick, how, delay)
        else:
            log.warning("%s (pid %d) died (%s) after %.1fs; restarting in %.1fs", key,
                        child.pid, how, lived, delay)
        if child.role == "gateway":
            self.reactor.callLater(delay, self._respawn, self.spawnGateway)
        elif child.index < self.config.workers:
            self.reactor.callLater(delay, self._respawn, self.spawnWorker, child.index)

    def _respawn(self, spawn: Any, *args: Any) -> None:
        if self.state != "stopping":
            spawn(*args)

    def tick(self) -> None:
        """Kill children whose heartbeats stopped; escalate a stop past its deadline."""
        now = time.monotonic()
        limit = self.config.heartbeat_timeout
        for child in list(self.children):
            if child.state == "starting":
                late = now - child.started > limit + 30
            else:
                late = now - child.lastBeat > limit
            if late and not child.killed:
                log.error("%s (pid %d) sent no heartbeat for %.1fs: killing it", child.node,
                          child.pid, now - child.lastBeat)
                child.killed = True
                child.signal(signal.SIGKILL)
        if self.state == "stopping" and self.stopDeadline and now > self.stopDeadline:
            for child in self.children:
                log.error("%s (pid %d) outlived the graceful timeout: killing it", child.node,
                          child.pid)
                child.signal(signal.SIGKILL)
            self.stopDeadline = 0.0
        self._scheduleTick()

    # -- signals and commands --------------------------------------------------------------

    def handle_term(self) -> None:
        self.stop(fast=False)

    handle_int = handle_term

    def handle_quit(self) -> None:
        self.stop(fast=True)

    def handle_hup(self) -> None:
        self.reload()

    def handle_ttin(self) -> None:
        if self.state != "running":
            return
        self.config.workers += 1
        index = self.config.workers - 1
        log.info("TTIN: adding worker-%d", index)
        self.spawnWorker(index)

    def handle_ttou(self) -> None:
        if self.state != "running" or self.config.workers <= 1:
            return
        self.config.workers -= 1
        index = self.config.workers
        log.info("TTOU: removing worker-%d", index)
        worker = self.serving.pop(index, None)
        if self.gateway is not None:
            self.gateway.channel.send(["drop", index])
            self.gateway.channel.send(["workers", self.config.workers])
        if worker is not None:
            self.retire(worker)
        self._announcePeers()

    def stop(self, fast: bool = False) -> None:
        """Graceful (TERM to every child) or fast (QUIT) stop; the loop ends when the last
        child has exited, or kills what is left after the graceful timeout."""
        if self.state == "stopping" and not fast:
            return
        log.info("%s stop of cluster %r", "fast" if fast else "graceful", self.config.name)
        self.state = "stopping"
        self.stopDeadline = time.monotonic() + (1.0 if fast else self.config.graceful_timeout
                                                + 2.0)
        for child in self.children:
            child.state = "stopping"
            child.closeHandoff()
            child.signal(signal.SIGQUIT if fast else signal.SIGTERM)
        if not self.children:
            self._finish()

    def _finish(self) -> None:
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass

    def reload(self) -> None:
        """Rolling reload: each slot gets a new worker, which serves before the old one
        stops taking connections; then a new gateway replaces the old one."""
        if self.state != "running" or self.reloadQueue:
            return
        log.info("reloading: %d worker(s), then the gateway", len(self.serving))
        self.reloadQueue = sorted(self.serving)
        self._reloadNext()

    def _reloadNext(self) -> None:
        if self.state == "stopping":
            self.reloadQueue = []
            return
        if self.reloadQueue:
            index = self.reloadQueue.pop(0)
            self.spawnWorker(index, onReady=self._reloadNext)
        else:
            self.spawnGateway(onReady=lambda: log.info("reload complete"))

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The layout ``cluster status --json`` prints."""
        now = time.monotonic()
        rows = [self._row("supervisor", "supervisor", self.ps, self.state,
                          now - self.started, 0, {})]
        for child in sorted(self.children, key=lambda c: (c.role != "gateway",
                                                          c.index or 0, c.started)):
            rows.append(self._row(child.role, child.node, child.ps, child.state,
                                  now - child.started, self.restarts.get(child.node, 0),
                                  child.stats))
        return {"name": self.config.name, "bind": f"{self.config.hostPort()[0]}:"
                f"{self.boundPort}", "route": self.config.route, "processes": rows}

    @staticmethod
    def _row(role: str, node: str, ps: psutil.Process | None, state: str, uptime: float,
             restarts: int, stats: dict[str, Any]) -> dict[str, Any]:
        row = {"role": role, "node": node, "pid": ps.pid if ps else 0, "state": state,
               "uptime": round(uptime, 1), "restarts": restarts,
               "connections": stats.get("open", 0), "cpu_percent": 0.0, "rss": 0, "fds": 0,
               "accepted": stats.get("accepted", 0)}
        if ps is not None:
            try:
                with ps.oneshot():
                    row["cpu_percent"] = ps.cpu_percent()
                    row["rss"] = ps.memory_info().rss
                    row["fds"] = ps.num_fds()
            except psutil.Error:
                pass
        return row
