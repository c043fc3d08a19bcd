"""The supervisor (``cluster run``): spawns, watches, restarts, reloads and stops the
gateway and the workers, on its own reactor.

It owns what must outlive any child: the listening socket (a gateway restart loses no
connection waiting in the backlog), one copy of each worker's handoff socket (so a new
gateway can be given them), and the run directory with the control socket.

Read it like gunicorn's arbiter: signals become ``handle_<signal>`` calls on the loop;
``childExited`` reaps and restarts with backoff; ``tick`` kills children whose
heartbeats stopped. Reloads and resizes are *operations*, run one at a time in the
order asked: each starts its new processes as successors, waits until they are ready,
and only then hands them the work of the processes they replace. An operation that
fails (a successor that cannot load the app, or dies) stops there; the processes
already serving keep serving.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import psutil
import zmq

from cluster import channel, rundir
from cluster.child import BOOT_ERROR, stopReactor
from cluster.children import BootFailed, Child, ChildDied, childArgv, describeExit
from cluster.config import Config
from cluster.control import ControlFactory
from cluster.defer import Deferred, DeferredList, deferLater, inlineCallbacks, maybeDeferred
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.hostlink import HostLink
from cluster.hosts import HostMap, bindAddress, shortHostname, tcpEndpoint, workerNode
from cluster.monitor import Monitor
from cluster.rpc import RpcNode
from cluster.shards import moves, slotsOf

log = logging.getLogger("cluster")

QUICK_EXIT = 5.0  # a child that dies sooner than this after starting did not really start
MOVE_RETRY_AFTER = 0.5  # seconds between two attempts at a resize's move
MAX_BACKOFF = 10.0
CRASH_LOOP = 5  # quick failures in a row that count as a crash loop


def _gist(text: str) -> str:
    """An error in one line: its first, and its last (a traceback's exception) if longer."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "?"
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


class SpawnFailed(Exception):
    """A child process could not be started (fork, exec, pidfd or psutil failed)."""


class OperationRefused(Exception):
    """A reload or resize asked for while the cluster cannot run one (stopping)."""


class MoveFailed(Exception):
    """A shard handoff did not complete; the old owner serves the slots again."""


class _Move:
    """A shard handoff under way: who moves, to whom, its last sign of progress."""

    def __init__(self, source: Child, dests: list[Child]) -> None:
        self.source = source
        self.dests = dests
        self.progress = time.monotonic()
        self.done = Deferred()


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
        self.successors: dict[Any, Child] = {}  # index (None: gateway) -> starting successor
        self.restarts: dict[str, int] = {}
        self.down: dict[str, tuple[str, float, str]] = {}  # node -> role, since, why
        self.quickFailures: dict[str, int] = {}
        self.state = "starting"
        self.everRunning = False  # after the first full start, a boot error is a crash
        self.started = time.monotonic()
        self.exitCode = 0
        self.listening: socket.socket | None = None
        self.workerPorts: dict[int, socket.socket] = {}  # index -> its own listening socket
        self.workerPortBase = 0  # 0: workers take handed-over connections only
        self.operations: deque[tuple[str, Callable[[], Any], Deferred]] = deque()
        self.operation: str | None = None  # the one running now
        self.lastReload: dict[str, Any] | None = None
        self.epoch = 0  # bumped by every announcement of who serves which node
        self.moves: dict[int, _Move] = {}  # shard handoffs under way
        self.nextMove = 0
        self.orphansReaped = 0
        self.stopDeadline = 0.0
        self.ps = psutil.Process()
        self.ps.cpu_percent()
        self.rpc: RpcNode | None = None
        # several hosts: this host's name (in its workers' node names) and the link to
        # the other hosts' supervisors
        self.hostName = config.host if config.hostList else None
        self.hostMap = HostMap([(h.name, h.workers) for h in config.hostList],
                               config.host) if config.hostList else None
        self.hostLink: HostLink | None = None
        self.rpcAddress: str | None = None  # the IP address our RPC binds (several hosts)
        self._rowsMeasured: tuple[float, list] = (-1e9, [])  # for the other hosts
        self._tickDue = time.monotonic()
        self.hostLabel = config.host or shortHostname()  # status's host field
        self.monitor: Monitor | None = None
        self._tick: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.config
        self.rundir = rundir.create(cfg.name)
        try:
            self.listening = self._listen()
            if cfg.metrics:
                self.monitor = Monitor(self, cfg.metrics)
            self.controlPort = self.reactor.listenUNIX(
                rundir.controlPath(cfg.name), ControlFactory(self), mode=0o600)
            handlers = {signal.SIGTERM: self.handle_term, signal.SIGINT: self.handle_int,
                        signal.SIGQUIT: self.handle_quit, signal.SIGHUP: self.handle_hup,
                        signal.SIGTTIN: self.handle_ttin, signal.SIGTTOU: self.handle_ttou}
            if os.getpid() == 1:  # a container's init: orphans are ours to reap
                handlers[signal.SIGCHLD] = self.reapOrphans
            for sig, handler in handlers.items():
                signal.signal(sig, lambda s, f, h=handler: self.reactor.callFromThread(h))
            # its own RPC node, to ping every child's RPC socket (liveness beyond the loop)
            self.rpc = self._rpcNode()
            self.reactor.callWhenRunning(self.startAll)
            self.reactor.run(installSignalHandlers=False)
        finally:
            if self.rpc is not None:
                self.rpc.close()
            for child in self.children:
                child.signal(signal.SIGKILL)
            if self.listening is not None:
                self.listening.close()
            for sock in self.workerPorts.values():
                sock.close()
            rundir.remove(cfg.name)
        log.info("cluster %r stopped", cfg.name)
        return self.exitCode

    def _rpcNode(self) -> RpcNode:
        """Its own RPC node: to ping every child's RPC socket (liveness beyond the loop),
        and, with several hosts, on tcp:// to talk with the other hosts' supervisors."""
        cfg = self.config
        if self.hostMap is None:
            return RpcNode(self.reactor, "supervisor", self.rundir, cfg.workers, cfg.slots,
                           cfg.heartbeat_timeout).start()
        from cluster.curve import Keys

        me = next(h for h in cfg.hostList if h.name == cfg.host)
        self.rpcAddress = bindAddress(me.address)
        keys = (Keys.load(cfg.curve_keys, cfg.host, [h.name for h in cfg.hostList])
                if cfg.curve_keys else None)
        try:
            node = RpcNode(self.reactor, "supervisor", self.rundir, cfg.workers, cfg.slots,
                           cfg.heartbeat_timeout, hostMap=self.hostMap, keys=keys,
                           remoteAt=tcpEndpoint(self.rpcAddress, me.port)).start()
        except zmq.ZMQError as e:
            raise SystemExit(f"cannot listen for the other hosts on {me.address}:{me.port}: "
                             f"{e}") from e
        self.hostLink = HostLink(node, cfg.hostList, cfg.host, cfg.slots,
                                 cfg.heartbeat_timeout, cfg.heartbeat_interval,
                                 self._hostReport, self._announcePeers)
        log.info("host %s: RPC for the other hosts on %s (%s)", cfg.host,
                 node.remoteEndpoint, "CurveZMQ" if keys else "plaintext, loopback only")
        return node

    def _listen(self) -> socket.socket:
        host, port = self.config.hostPort()
        try:
            sock = self._bound(host, port)
        except OSError as e:
            raise SystemExit(f"cannot listen on {host}:{port}: {e}") from e
        self.boundPort = sock.getsockname()[1]
        base, asked = self.config.workerPortBase()
        if base:
            try:
                for index in range(self.config.workers):
                    self._workerPort(index, base)
                self.workerPortBase = base
            except (OSError, OverflowError) as e:
                for extra in self.workerPorts.values():
                    extra.close()
                self.workerPorts.clear()
                if asked:
                    sock.close()
                    raise SystemExit(f"cannot listen on the worker ports from {base}: {e}")
                log.warning("worker ports from %d are not free (%s): the workers take "
                            "connections through %s:%d only", base, e, host, self.boundPort)
        return sock

    def _bound(self, host: str, port: int) -> socket.socket:
        """A listening socket on ``host:port`` its children inherit."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(self.config.backlog)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock

    def _workerPort(self, index: int, base: int | None = None) -> socket.socket:
        """Worker ``index``'s own listening socket, kept here so that its successors
        (reload, restart) serve on it without the port ever closing."""
        sock = self.workerPorts.get(index)
        if sock is None:
            sock = self.workerPorts[index] = self._bound(
                self.config.hostPort()[0], (base or self.workerPortBase) + index)
        return sock

    def startAll(self) -> None:
        cfg = self.config
        log.info("cluster %r: %d worker(s), route %s, listening on %s:%d", cfg.name,
                 cfg.workers, cfg.route, cfg.hostPort()[0], self.boundPort)
        self._startOrRetry("gateway", None)
        for index in range(cfg.workers):
            self._startOrRetry("worker", index)
        self._scheduleTick()

    def _scheduleTick(self) -> None:
        self._tick = self.reactor.callLater(self.config.heartbeat_interval, self.tick)
        self._tickDue = time.monotonic() + self.config.heartbeat_interval

    # -- spawning --------------------------------------------------------------------------

    def _spawn(self, child: Child, spec: dict[str, Any], passFds: list[int]) -> Child:
        spec = {**self._baseSpec(), **spec}
        try:
            child.start(childArgv(child.role, child.node, self.config.name), spec, passFds,
                        self.reactor, self.onChildMessage, self.childExited)
        except (OSError, psutil.Error, subprocess.SubprocessError) as e:
            raise SpawnFailed(f"could not start {child.node}: {e}") from e
        self.children.append(child)
        self.down.pop(child.node, None)
        child.channel.send(self._peersMessage())  # who serves what, from its first moment
        log.info("started %s (pid %d)%s", child.node, child.pid,
                 " as a successor" if child.successor else "")
        return child

    def _baseSpec(self) -> dict[str, Any]:
        cfg = self.config
        return {"target": cfg.target, "route": cfg.route, "workers": cfg.workers,
                "slots": cfg.slots, "graceful_timeout": cfg.graceful_timeout,
                "heartbeat_interval": cfg.heartbeat_interval, "log_level": cfg.log_level,
                "log_format": cfg.log_format,
                "preamble_limit": cfg.preamble_limit, "preamble_timeout": cfg.preamble_timeout,
                "rpc_timeout": cfg.rpc_timeout, "rundir": self.rundir,
                "supervisor_pid": os.getpid(), "udp": cfg.udp, "host": cfg.hostPort()[0],
                "hostmap": self.hostMap.toSpec() if self.hostMap else None,
                "curve_keys": cfg.curve_keys,
                "tls_cert": cfg.tls_cert, "tls_key": cfg.tls_key, "tls_ca": cfg.tls_ca,
                "worker_ports": self.workerPortBase, "appendonly": cfg.appendonly,
                "appendfsync": cfg.appendfsync}

    def spawnGateway(self, successor: bool = False) -> Child:
        child = Child("gateway", None, successor)
        return self._spawn(child, {"listen_fd": self.listening.fileno()},
                           [self.listening.fileno()])

    def spawnWorker(self, index: int, successor: bool = False) -> Child:
        try:
            gatewayEnd, workerEnd = channel.pair()
        except OSError as e:
            raise SpawnFailed(f"could not start worker-{index}: {e}") from e
        child = Child("worker", index, successor, self.hostName)
        child.handoffEnd = gatewayEnd
        spec = {"index": index, "handoff_fd": workerEnd.fileno(), "successor": successor}
        if self.hostMap is not None:  # other hosts call it on tcp://
            spec["rpc_remote"] = self.rpcAddress
        fds = [workerEnd.fileno()]
        try:
            port = self.workerPorts.get(index)  # (kept even once worker ports are off)
            if port is None and self.workerPortBase:
                try:
                    port = self._workerPort(index)
                except (OSError, OverflowError) as e:  # taken meanwhile, or past 65535
                    self._workerPortsOff(f"worker-{index} cannot listen on port "
                                         f"{self.workerPortBase + index}: {e}")
            if port is not None:
                spec["port_fd"] = port.fileno()
                fds.append(port.fileno())
            return self._spawn(child, spec, fds)
        except SpawnFailed:
            gatewayEnd.close()
            raise
        finally:
            workerEnd.close()

    def _workerPortsOff(self, why: str) -> None:
        """A worker port could not be had (an outgoing connection's local port sits on
        it, say): rather than fail the spawn, every worker stops redirecting to worker
        ports (the ports they have keep serving, as the gateway's does), and CLUSTER
        SLOTS describes one node again, so cluster-aware clients go through the proxy."""
        log.warning("%s: worker ports are off from now on (cluster-aware clients go "
                    "through the gateway)", why)
        self.workerPortBase = 0
        for child in self.children:
            if child.role == "worker" and child.channel is not None:
                child.channel.send(["workerPorts", 0])

    def _startOrRetry(self, role: str, index: int | None) -> None:
        """Start a gateway or worker that serves as soon as it is ready (first start,
        restart); a failure to start is retried with the crash backoff."""
        if self.state == "stopping" or (role == "worker" and index >= self.config.workers):
            self._forget(self._nodeName(role, index))
            return
        try:
            if role == "gateway":
                self.spawnGateway()
            else:
                self.spawnWorker(index)
        except SpawnFailed as e:
            node = self._nodeName(role, index)
            self._scheduleRestart(role, index, node, str(e), time.monotonic())

    def _slotsOf(self, index: int) -> list[int]:
        """The slots worker ``index`` of this host owns (in the map over every host)."""
        if self.hostMap is None:
            return slotsOf(index, self.config.workers, self.config.slots)
        names = self.hostMap.names
        return slotsOf(names.index(workerNode(self.hostName, index)), len(names),
                       self.config.slots)

    def _nodeName(self, role: str, index: int | None) -> str:
        return "gateway" if role == "gateway" else workerNode(self.hostName, index)

    # -- messages from children ------------------------------------------------------------

    def onChildMessage(self, child: Child, msg: Any, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        kind = msg[0] if isinstance(msg, list) and msg else None
        if kind == "hb" and len(msg) > 1 and isinstance(msg[1], dict):
            child.lastBeat = time.monotonic()
            child.stats = msg[1]
        elif kind == "ready":
            child.lastBeat = time.monotonic()
            info = msg[1] if len(msg) > 1 and isinstance(msg[1], dict) else {}
            endpoint, remote = info.get("rpc"), info.get("rpc_remote")
            child.rpcEndpoint = endpoint if isinstance(endpoint, str) else None
            child.remoteEndpoint = remote if isinstance(remote, str) else None
            if child.state == "starting":
                child.state = "running"
                self.childReady(child)
        elif kind == "boot_error" and len(msg) > 1:
            child.bootError = str(msg[1])
        elif kind in ("moved", "moveFailed", "moving") and len(msg) > 1:
            move = self.moves.get(msg[1])
            if move is not None and move.source is child:
                if kind == "moving":
                    move.progress = time.monotonic()
                elif kind == "moved":
                    self._moveOver(msg[1], None)
                else:
                    self._moveOver(msg[1], f"{child.node}: {msg[2] if len(msg) > 2 else '?'}")
        elif kind == "leaving":
            self._leaving(child)
        elif kind == "metrics" and len(msg) > 2 and self.monitor is not None:
            self.monitor.answered(child, msg[1], msg[2])
        else:
            log.warning("%s sent an unknown message %r", child.node, kind)

    def childReady(self, child: Child) -> None:
        if self.state == "stopping":
            self._askToStop(child)
            return
        if child.successor:
            ready, child.ready = child.ready, None
            if ready is not None:
                ready.callback(child)  # the operation that started it takes it from here
            return
        self.promote(child)

    def promote(self, child: Child) -> None:
        """``child`` takes over its role: the gateway gets every worker's handoff socket;
        a worker gets its slot's connections. The process it replaces is retired."""
        child.successor = False
        if child.role == "gateway":
            self.successors.pop(None, None)
            old, self.gateway = self.gateway, child
            for index, worker in sorted(self.serving.items()):
                self._giveSlot(index, worker)
        else:
            self.successors.pop(child.index, None)
            old = self.serving.get(child.index)
            self.serving[child.index] = child
            self._giveSlot(child.index, child)
        if old is not None and old is not child:
            self.retire(old)
        self._announcePeers()
        if self.state == "starting" and self._allUp():
            self.state = "running"
            self.everRunning = True
            log.info("cluster %r ready: %d worker(s) serving on %s:%d", self.config.name,
                     len(self.serving), self.config.hostPort()[0], self.boundPort)
            self._nextOperation()

    def _announcePeers(self) -> None:
        """Tell every child which process serves each RPC node (pid, endpoint): at start,
        after every restart, replacement and exit, so callers of a lost node fail fast."""
        self.epoch += 1
        message = self._peersMessage()
        for child in self.children:
            if child.channel is not None and not child.channel.closed:
                child.channel.send(message)

    def _peersMessage(self) -> list:
        serving = [w for _, w in sorted(self.serving.items())]
        if self.gateway is not None:
            serving.append(self.gateway)
        peers = {c.node: [c.pid, c.rpcEndpoint] for c in serving
                 if c.state == "running" and c.rpcEndpoint}
        # every other live process (replaced ones finishing their work, successors not
        # yet serving): calls to them go on; only an exited process is gone
        named = {id(c) for c in serving}
        others = [[c.node, c.pid, c.rpcEndpoint] for c in self.children
                  if id(c) not in named and c.rpcEndpoint]
        if self.hostLink is not None:  # the other hosts' workers, reached on tcp://
            peers.update(self.hostLink.serving())
            others += self.hostLink.others()
        return ["peers", peers, self.config.workers, self.epoch, others]

    def _hostReport(self) -> dict[str, Any]:
        """What the other hosts hear of this one: its workers' tcp:// endpoints and its
        processes (for their ``cluster status``; measured at most once per heartbeat
        interval, however often we are asked)."""
        serving = [w for _, w in sorted(self.serving.items())]
        named = {id(c) for c in serving}
        now = time.monotonic()
        if now - self._rowsMeasured[0] >= self.config.heartbeat_interval:
            self._rowsMeasured = (now, self._rows())
        return {"serving": {c.node: [c.pid, c.remoteEndpoint] for c in serving
                            if c.state == "running" and c.remoteEndpoint},
                "others": [[c.node, c.pid, c.remoteEndpoint] for c in self.children
                           if c.role == "worker" and id(c) not in named and c.remoteEndpoint],
                "rows": self._rowsMeasured[1]}

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

    def retire(self, child: Child) -> None:
        """Stop a replaced or removed process: it finishes its open connections first."""
        child.retiring = True
        child.state = "draining" if child.role == "worker" else "stopping"
        child.closeHandoff()  # with the gateway's copy gone too, the worker sees EOF
        self._askToStop(child)

    def _askToStop(self, child: Child) -> None:
        """A graceful stop: a worker is told over its channel (SIGTERM, to a worker, is
        an operator asking for a successor); the gateway gets SIGTERM."""
        if child.role == "worker" and child.channel is not None and child.channel.send(
                ["stop"]):
            return
        child.signal(signal.SIGTERM)

    def _discard(self, child: Child) -> None:
        """Kill a successor that will not take over (its operation failed). If the process
        it was to replace died meanwhile, a plain restart takes the place."""
        if child in self.children:
            child.retiring = True
            child.state = "stopping"
            child.signal(signal.SIGKILL)
        key = child.index if child.role == "worker" else None
        if self.successors.get(key) is child:
            del self.successors[key]
        vacant = self.gateway is None if key is None else key not in self.serving
        if vacant and self.state != "stopping":
            self._startOrRetry(child.role, key)

    # -- exits and restarts ----------------------------------------------------------------

    def childExited(self, child: Child) -> None:
        rc = child.proc.wait()
        child.channel.drain()  # its last words (a boot error) may not have been read yet
        self.children.remove(child)
        if child.rpcEndpoint and self.rpc is not None:
            self.rpc.forget(child.rpcEndpoint)
        child.channel.close()
        child.closeHandoff()
        if child.role == "worker" and self.serving.get(child.index) is child:
            del self.serving[child.index]
        if self.gateway is child:
            self.gateway = None
        key = child.index if child.role == "worker" else None
        if self.successors.get(key) is child:
            del self.successors[key]
        how = describeExit(rc)
        for moveId, move in list(self.moves.items()):
            if move.source is child:
                self._moveOver(moveId, f"{child.node} (pid {child.pid}) exited ({how}) while "
                               f"moving its shards")
        self._announcePeers()
        if self.state == "stopping":
            log.info("%s (pid %d) stopped (%s)", child.node, child.pid, how)
            if not self.children:
                self._finish()
            return
        booting = child.bootError is not None or rc == BOOT_ERROR
        if child.ready is not None:  # a successor that never got ready: its operation fails
            error = (BootFailed(f"{child.node} could not load the application:\n"
                                f"{child.bootError or '(no details)'}") if booting else
                     ChildDied(f"{child.node} (pid {child.pid}) exited before it was ready "
                               f"({how})"))
            child.failReady(error)
            return
        if child.retiring:
            log.info("%s (pid %d) finished after being replaced (%s)", child.node, child.pid,
                     how)
            return
        if booting:
            if not self.everRunning:
                log.error("%s could not load the application; stopping the cluster.\n%s",
                          child.node, child.bootError or "(no details)")
                self.exitCode = BOOT_ERROR
                self.stop(fast=True)
                return
            how = f"could not load the application:\n{child.bootError or '(no details)'}"
        self._scheduleRestart(child.role, child.index, child.node, how, child.started)

    def _scheduleRestart(self, role: str, index: int | None, node: str, how: str,
                         started: float) -> None:
        self.restarts[node] = self.restarts.get(node, 0) + 1
        self.down[node] = (role, time.monotonic(), how)
        lived = time.monotonic() - started
        quick = self.quickFailures.get(node, 0) + 1 if lived < QUICK_EXIT else 0
        self.quickFailures[node] = quick
        delay = min(0.1 * (2 ** quick), MAX_BACKOFF) if quick else 0.0
        if quick >= CRASH_LOOP:
            log.error("%s is in a crash loop (%d quick exits in a row, last: %s); "
                      "next restart in %.1fs", node, quick, how, delay)
        else:
            log.warning("%s died (%s) after %.1fs; restarting in %.1fs", node, how, lived,
                        delay)
        self.reactor.callLater(delay, self._respawn, role, index)

    def _forget(self, node: str) -> None:
        """A node that is not coming back (removed by TTOU, or the cluster stops): no
        more down row or crash-loop warning for it."""
        self.down.pop(node, None)
        self.quickFailures.pop(node, None)

    def _respawn(self, role: str, index: int | None) -> None:
        taken = (self.gateway if role == "gateway" else self.serving.get(index)) is not None
        if taken or (None if role == "gateway" else index) in self.successors:
            return  # a successor or an earlier restart took the place meanwhile
        self._startOrRetry(role, index)

    def tick(self) -> None:
        """Kill children whose heartbeats stopped; escalate a stop past its deadline."""
        now = time.monotonic()
        limit = self.config.heartbeat_timeout
        stalled = now - self._tickDue
        if stalled > max(1.0, limit / 3):  # our own loop (or the whole host) stood still
            log.warning("the supervisor's loop was %.1fs late: the silence of its children "
                        "and of other hosts is counted from now", stalled)
            for child in self.children:
                child.lastBeat = max(child.lastBeat, now)
            if self.hostLink is not None:
                self.hostLink.heardAll(now)
        for child in list(self.children):
            if child.state == "starting":
                late = now - child.started > limit + 30
            else:
                late = now - child.lastBeat > limit
            if late and not child.killed:
                self._kill(child, f"sent no heartbeat for {now - child.lastBeat:.1f}s")
            elif (child.state in ("running", "draining") and child.rpcEndpoint
                  and not child.pinging and self.state != "stopping"):
                self._ping(child)
        if self.state == "stopping" and self.stopDeadline and now > self.stopDeadline:
            for child in self.children:
                log.error("%s (pid %d) outlived the graceful timeout: killing it", child.node,
                          child.pid)
                child.signal(signal.SIGKILL)
            self.stopDeadline = 0.0
        stalled = now - 3 * self.config.rpc_timeout
        for moveId, move in list(self.moves.items()):
            if move.progress < stalled:
                self._moveOver(moveId, f"{move.source.node} made no progress moving its "
                               f"shards for {3 * self.config.rpc_timeout:.0f}s")
        if self.hostLink is not None:
            self.hostLink.tick()
        if os.getpid() == 1:
            self.reapOrphans()
        self._scheduleTick()

    def _kill(self, child: Child, why: str) -> None:
        log.error("%s (pid %d) %s: killing it", child.node, child.pid, why)
        child.killed = True
        child.signal(signal.SIGKILL)

    def _ping(self, child: Child) -> None:
        """Ask the child's RPC socket for ``cluster.ping``: a process whose loop runs
        but whose RPC socket does not answer within the heartbeat timeout is killed."""
        child.pinging = True
        # a little longer than the heartbeat's: a blocked loop is told as such first
        limit = self.config.heartbeat_timeout + 2 * self.config.heartbeat_interval
        peer = self.rpc.incarnation(child.node, child.pid, child.rpcEndpoint)

        def answered(_: Any) -> None:
            child.pinging = False

        def unanswered(failure: Failure) -> None:
            child.pinging = False
            if failure.check(TimeoutError) and child in self.children and not child.killed:
                self._kill(child, f"did not answer on its RPC socket for {limit:.1f}s")

        self.rpc.callPeer(peer, "cluster.ping", (), {}, limit).addCallbacks(answered,
                                                                           unanswered)

    def reapOrphans(self) -> None:
        """As PID 1, collect the exit status of every process re-parented to us (our
        children's children whose parents died first), so none stays a zombie."""
        ours = {c.pid for c in self.children}
        try:
            orphans = [p.pid for p in self.ps.children() if p.pid not in ours]
        except psutil.Error:
            return
        for pid in orphans:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                self.orphansReaped += 1

    # -- signals and commands --------------------------------------------------------------

    def handle_term(self) -> None:
        self.stop(fast=False)

    handle_int = handle_term

    def handle_quit(self) -> None:
        self.stop(fast=True)

    def handle_hup(self) -> None:
        self.reload().addErrback(lambda f: None)  # logged by the operation

    def handle_ttin(self) -> None:
        self.grow().addErrback(self._operationFailed, "TTIN")

    def handle_ttou(self) -> None:
        self.shrink().addErrback(self._operationFailed, "TTOU")

    @staticmethod
    def _operationFailed(failure: Failure, name: str) -> None:
        log.error("%s failed; the cluster goes on as it was: %s", name,
                  failure.getErrorMessage())

    def stop(self, fast: bool = False) -> None:
        """Graceful (TERM to every child) or fast (QUIT) stop; the loop ends when the last
        child has exited, or kills what is left after the graceful timeout."""
        if self.state == "stopping" and not fast:
            return
        log.info("%s stop of cluster %r", "fast" if fast else "graceful", self.config.name)
        self.state = "stopping"
        self.stopDeadline = time.monotonic() + (1.0 if fast else self.config.graceful_timeout
                                                + 2.0)
        while self.operations:
            _, _, d = self.operations.popleft()
            d.errback(OperationRefused("the cluster is stopping"))
        for moveId in list(self.moves):
            self._moveOver(moveId, "the cluster is stopping")
        for child in self.children:
            child.failReady(OperationRefused("the cluster is stopping"))
        for child in self.children:
            child.state = "stopping"
            child.closeHandoff()
            if fast:
                child.signal(signal.SIGQUIT)
            else:
                self._askToStop(child)
        if not self.children:
            self._finish()

    def _finish(self) -> None:
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        stopReactor(self.reactor)

    # -- operations: reload, grow, shrink, one at a time --------------------------------------

    def reload(self) -> Deferred:
        """Rolling reload: each worker gets a successor, which serves before the old one
        stops taking connections; then a new gateway replaces the old one. Fires when done,
        or fails with why it stopped (the processes already serving keep serving)."""
        return self._queue("reload", self._reload)

    def grow(self) -> Deferred:
        """TTIN: one worker more."""
        return self._queue("grow", self._grow)

    def shrink(self) -> Deferred:
        """TTOU: one worker fewer (never below one)."""
        return self._queue("shrink", self._shrink)

    def _queue(self, name: str, run: Callable[[], Any]) -> Deferred:
        d = Deferred()
        if self.state == "stopping":
            d.errback(OperationRefused("the cluster is stopping"))
            return d
        if name != "reload" and self.hostMap is not None:
            d.errback(OperationRefused("with several [[hosts]] the worker counts are part of "
                                       "the configuration every host shares: change them "
                                       "there and restart the hosts"))
            return d
        self.operations.append((name, run, d))
        self._nextOperation()
        return d

    def _nextOperation(self) -> None:
        if self.operation is not None or self.state != "running" or not self.operations:
            return
        name, run, d = self.operations.popleft()
        self.operation = name
        maybeDeferred(run).addBoth(self._operationDone, name, d)

    def _operationDone(self, result: Any, name: str, d: Deferred) -> None:
        self.operation = None
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        self._nextOperation()

    @inlineCallbacks
    def _reload(self) -> Any:
        log.info("reloading: %d worker(s), then the gateway", len(self.serving))
        self.lastReload = {"state": "running", "started": time.time()}
        try:
            for index in range(self.config.workers):
                yield self._takeOver("worker", index)
            yield self._takeOver("gateway", None)
        except Exception as e:
            self.lastReload = {"state": "failed", "error": str(e), "at": time.time()}
            log.error("reload failed, the running processes keep serving: %s", e)
            raise
        self.lastReload = {"state": "ok", "at": time.time()}
        log.info("reload complete")

    @inlineCallbacks
    def _takeOver(self, role: str, index: int | None) -> Any:
        """Start a successor for the gateway or worker ``index``, wait until it is ready,
        move the shard to it, then let it take over. Fails (and discards the successor)
        if it never gets ready or the move fails while the old worker lives."""
        new = yield self._readySuccessor(role, index)
        try:
            old = self.serving.get(index) if role == "worker" else None
            if self.state == "stopping":
                raise OperationRefused("the cluster is stopping")
            if old is not None and old.state == "running" and old.rpcEndpoint:
                slots = self._slotsOf(index)
                try:
                    yield self._move(old, [(new, slots)], retiring=True)
                except MoveFailed:
                    if old in self.children or new not in self.children:
                        raise
                    # the old worker died moving its shard: lost, as in any crash; the
                    # successor takes its place all the same
        except BaseException:
            self._discard(new)
            raise
        self.promote(new)

    @inlineCallbacks
    def _readySuccessor(self, role: str, index: int | None) -> Any:
        """A successor for the gateway or worker ``index``, once it is ready; one that
        never gets ready is discarded and its failure raised."""
        new = self.spawnGateway(True) if role == "gateway" else self.spawnWorker(index, True)
        self.successors[index] = new
        try:
            yield new.ready
        except BaseException:
            self._discard(new)
            raise
        return new

    def _move(self, source: Child, plans: list[tuple[Child, list[int]]],
              retiring: bool = False) -> Deferred:
        """Have ``source`` hand the state of some of its slots to other workers; fires
        when it reports them moved, fails (MoveFailed) if it reports a failure or exits."""
        self.nextMove += 1
        move = self.moves[self.nextMove] = _Move(source, [dest for dest, _ in plans])
        # a move still unread at its deadline (its process was stopped) is refused, so it
        # can never run after the supervisor gave up on it (time.monotonic is one clock
        # for every process of a host)
        deadline = time.monotonic() + self.config.rpc_timeout
        sent = source.channel is not None and source.channel.send(
            ["move", {"id": self.nextMove, "retiring": retiring, "deadline": deadline,
                      "to": [[dest.node, dest.pid, dest.rpcEndpoint, slots]
                             for dest, slots in plans]}])
        if not sent:
            self._moveOver(self.nextMove, f"{source.node} cannot be told to move its shards")
        return move.done

    def _moveOver(self, moveId: int, failure: str | None) -> None:
        """A move ended: done, or failed (its new owners are told to drop what they took;
        the old owner kept whatever it did not hand over)."""
        move = self.moves.pop(moveId, None)
        if move is None:
            return
        if failure is None:
            move.done.callback(None)
            return
        for dest in move.dests:
            if dest in self.children and dest.channel is not None:
                dest.channel.send(["moveAborted", moveId])
        move.done.errback(MoveFailed(failure))

    def _rebalance(self, after: int, joining: Child | None = None) -> Deferred:
        """Move every slot whose owner changes when the worker count becomes ``after``,
        each old owner sending to each new one, all at once. Fires when every move is
        over; a move that failed (a process died) loses only what that process held."""
        before = self.config.workers
        workers = dict(self.serving)
        if joining is not None:
            workers[joining.index] = joining
        transfers = []
        for old, plan in moves(before, after, self.config.slots).items():
            source = workers.get(old)
            if source is None or source.state != "running" or not source.rpcEndpoint:
                continue  # nothing to move: its shard is already lost
            to = [(workers[new], slots) for new, slots in plan.items()
                  if new in workers and workers[new].rpcEndpoint]
            if to:
                transfers.append(self._moveWithRetries(source, to))
        return DeferredList(transfers)

    @inlineCallbacks
    def _moveWithRetries(self, source: Child, plans: list[tuple[Child, list[int]]]) -> Any:
        """A resize's move, asked again as long as every process in it lives: only what
        was not handed over moves again, and a process that stays stuck is killed by
        its heartbeat or ping. Only a death ends it early: what was not handed over is
        then lost, as in any crash."""
        while True:
            try:
                yield self._move(source, plans)
                return
            except MoveFailed as e:
                alive = all(c in self.children for c in (source, *(d for d, _ in plans)))
                if not alive or self.state == "stopping":
                    log.error("a shard move failed for good; what it did not hand over is "
                              "lost: %s", e)
                    return
                log.warning("a shard move failed, trying again: %s", e)
                yield deferLater(self.reactor, MOVE_RETRY_AFTER, lambda: None)

    @inlineCallbacks
    def _grow(self) -> Any:
        index = self.config.workers
        log.info("TTIN: adding worker-%d", index)
        new = yield self._readySuccessor("worker", index)
        yield self._rebalance(index + 1, joining=new)
        self.config.workers = index + 1  # the moves that were made are the new map's
        if new in self.children:
            self.promote(new)
        else:  # it died taking its shards: they are lost, and it restarts like any crash
            self.successors.pop(index, None)
            self._announcePeers()
            self._startOrRetry("worker", index)

    @inlineCallbacks
    def _shrink(self) -> Any:
        if self.config.workers <= 1:
            log.warning("TTOU ignored: the cluster is down to one worker")
            return
        index = self.config.workers - 1
        log.info("TTOU: removing worker-%d", index)
        yield self._rebalance(index)
        self.config.workers = index
        self._forget(f"worker-{index}")
        removed = self.workerPorts.pop(index, None)
        if removed is not None:
            removed.close()  # the retiring worker keeps its copy until it has drained
        worker = self.serving.pop(index, None)
        if self.gateway is not None:
            self.gateway.channel.send(["drop", index])
            self.gateway.channel.send(["workers", self.config.workers])
        if worker is not None:
            self.retire(worker)
        self._announcePeers()

    def _leaving(self, child: Child) -> None:
        """A worker got SIGTERM from someone else: give it a successor that takes over
        its shards, then stop it; if it is not serving (or we are stopping), stop it."""
        if (child.role == "worker" and self.serving.get(child.index) is child
                and self.state in ("starting", "running")):
            log.info("%s (pid %d) asked to stop: starting its successor", child.node,
                     child.pid)
            self._queue(f"replace {child.node}", lambda: self._replace(child)).addErrback(
                self._cannotLeave, child)
        else:
            self._askToStop(child)

    def _cannotLeave(self, failure: Failure, child: Child) -> None:
        """No successor could take over from a worker asked to stop: as after a failed
        reload, it keeps serving (its shards would be lost otherwise)."""
        if self.state == "stopping" or child not in self.children:
            return
        log.error("%s keeps serving: no successor could take its shards: %s", child.node,
                  failure.getErrorMessage())
        child.channel.send(["stay"])

    def _replace(self, child: Child) -> Any:
        if self.serving.get(child.index) is not child:
            self._askToStop(child)
            return None
        return self._takeOver("worker", child.index)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The layout ``cluster status --json`` prints."""
        live = {child.node for child in self.children}
        return {"name": self.config.name, "bind": f"{self.config.hostPort()[0]}:"
                f"{self.boundPort}", "route": self.config.route, "workers": self.config.workers,
                "operation": self.operation, "reload": self.lastReload,
                "orphans_reaped": self.orphansReaped, "warnings": self._warnings(live),
                "metrics": self.monitor.address if self.monitor is not None else None,
                "worker_ports": self.workerPortBase or None, "host": self.hostLabel,
                "hosts": self.hostLink.status() if self.hostLink is not None else [],
                "processes": self._rows()}

    def _rows(self) -> list[dict[str, Any]]:
        """This host's processes, as ``cluster status`` shows them."""
        now = time.monotonic()
        rows = [self._row("supervisor", "supervisor", self.ps, self.state,
                          now - self.started, 0, {})]
        live = {child.node for child in self.children}
        dead = [(role, node, since) for node, (role, since, _) in self.down.items()
                if node not in live]
        entries = [(child.role, child.index or 0, child.started, child) for child in
                   self.children]
        entries += [(role, int(node.rpartition("-")[2] or 0) if role == "worker" else 0,
                     since, node) for role, node, since in dead]
        for role, _, started, entry in sorted(entries, key=lambda e: (e[0] != "gateway",
                                                                      e[1], e[2])):
            if isinstance(entry, Child):
                rows.append(self._row(role, entry.node, entry.ps, entry.state, now - started,
                                      self.restarts.get(entry.node, 0), entry.stats))
            else:  # died, waiting for its restart
                rows.append(self._row(role, entry, None, "down", now - started,
                                      self.restarts.get(entry, 0), {}))
        for row in rows:
            row["host"] = self.hostLabel
        return rows

    def _warnings(self, live: set[str]) -> list[dict[str, Any]]:
        """What an operator should look at: crash loops, a failed reload."""
        warnings = []
        now = time.monotonic()
        for node, quick in sorted(self.quickFailures.items()):
            recent = node not in live or any(c.node == node and now - c.started < QUICK_EXIT
                                             for c in self.children)
            if quick >= CRASH_LOOP and recent:
                why = _gist(self.down.get(node, ("", 0.0, "?"))[2])
                warnings.append({"kind": "crash_loop", "node": node, "message":
                                 f"{node} is in a crash loop: {quick} quick exits in a row "
                                 f"(last: {why})"})
        if (self.lastReload or {}).get("state") == "failed":
            why = _gist(str(self.lastReload.get("error", "")))
            warnings.append({"kind": "reload_failed", "node": None, "message":
                             f"the last reload failed: {why}; the processes that were "
                             f"serving keep serving"})
        return warnings

    @staticmethod
    def _row(role: str, node: str, ps: psutil.Process | None, state: str, uptime: float,
             restarts: int, stats: dict[str, Any]) -> dict[str, Any]:
        row = {"role": role, "node": node, "pid": ps.pid if ps else 0, "state": state,
               "uptime": round(uptime, 1), "restarts": restarts,
               "connections": stats.get("open", 0), "cpu_percent": 0.0, "rss": 0, "fds": 0,
               "accepted": stats.get("accepted", 0), "requests": stats.get("requests", 0),
               "cpu_seconds": 0.0}
        if ps is not None:
            try:
                with ps.oneshot():
                    row["cpu_percent"] = ps.cpu_percent()
                    times = ps.cpu_times()
                    row["cpu_seconds"] = round(times.user + times.system, 3)
                    row["rss"] = ps.memory_info().rss
                    row["fds"] = ps.num_fds()
            except psutil.Error:
                pass
        return row
