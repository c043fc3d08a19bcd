"""The worker: adopts the connections the gateway hands over and serves them with the
user's Factory on its own reactor.

fd ownership across the handoff: the gateway sends each accepted socket with
SCM_RIGHTS and closes its copy, so once a handoff message is read here the fd is ours
alone. The bytes the gateway read first (a routing preamble) travel in the same message
and reach ``dataReceived`` before the reactor ever reads the socket.

Stopping: the supervisor says ``stop`` over the control channel (a reload replaced us,
a resize removed us, the cluster stops). The worker then drains: it keeps adopting what
is still queued on its handoff socket until that socket reaches end of file (the gateway
and the supervisor both closed their ends, so nothing more can arrive), asks each open
connection's protocol to close at its next request boundary (``closeWhenIdle``, where
the protocol has it), waits for them to close, and after the graceful timeout closes
the rest. SIGTERM from anyone else (an operator stopping this one worker) asks the
supervisor for a successor first, so the shards move instead of being lost.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import ssl
import weakref
from typing import Any

from cluster import udp
from cluster.channel import Channel
from cluster.child import stopReactor
from cluster.defer import Deferred
from cluster.logs import Episodes
from cluster.metrics import appMetrics
from cluster.ports import Port
from cluster.task import LoopingCall
from cluster.transport import readCount, startConnection
from worker.shardmove import ShardMover

log = logging.getLogger("cluster")

_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)
FD_RESERVE = 64  # fds never taken by connections: ZeroMQ needs them for its peers


class Worker:
    """One worker process: handoff in, load and heartbeats out, drain on stop."""

    def __init__(self, reactor: Any, spec: dict[str, Any], factory: Any,
                 handoff: socket.socket, control: socket.socket, rpcNode: Any) -> None:
        self.reactor = reactor
        self.rpc = rpcNode
        self.spec = spec
        self.factory = factory
        self.open = 0
        self.accepted = 0
        self.draining = False
        self.stopping = False
        self.fast = False
        self.handoffOpen = True
        self.leaving = False
        self._leaveTimer: Any = None
        self.refusals = Episodes(log, "refused a connection: too few fds left (%s)", reactor)
        self.metricsProblems = Episodes(log, "the app's metrics() gave nothing: %s", reactor)
        self._countFds()
        self.connections: weakref.WeakSet = weakref.WeakSet()  # transports still open
        self._drained: Deferred | None = None
        self._recheck: Any = None
        self.handoff = Channel(handoff, reactor, self._onHandoff, self._onHandoffClosed)
        self.control = Channel(control, reactor, self._onControl, self._onControlClosed)
        self._beat = LoopingCall(self.heartbeat)

    def start(self) -> None:
        """Begin taking connections; tell the supervisor we are ready."""
        r = self.reactor
        configure = getattr(self.factory, "configure", None)
        if configure is not None:  # (the default store: its --appendonly settings)
            configure(self.spec)
        self.factory.doStart()  # as a listening port would: startFactory runs once
        r.addSystemEventTrigger("after", "shutdown", self.factory.doStop)
        self.shards = ShardMover(self.rpc, self.factory, self.control.send)
        self.udp = self._listenUDP()
        self.tls = self._tlsContext()
        self.direct = self._directPort()
        self.handoff.start()
        self.control.start()
        r.addSystemEventTrigger("before", "shutdown", self.drain)
        signal.signal(signal.SIGQUIT, lambda *_: r.callFromThread(self.stopFast))
        signal.signal(signal.SIGTERM, lambda *_: r.callFromThread(self.leave))
        self._beat.clock = r
        self._beat.start(self.spec["heartbeat_interval"])
        self.control.send(["ready", {"pid": os.getpid(), "rpc": self.rpc.endpoint,
                                     "rpc_remote": self.rpc.remoteEndpoint}])

    # -- connections -----------------------------------------------------------------------

    def _onHandoff(self, msg: Any, fds: list[int]) -> None:
        # anything that raises here leaves the fds to the channel, which closes them
        if len(fds) != 1:
            raise ValueError(f"a handoff carries one fd, not {len(fds)}")
        _, family, host, port, preread = msg
        if family not in _FAMILIES or not isinstance(preread, bytes):
            raise ValueError(f"malformed handoff header {msg!r}")
        if self._fdsRunningOut():
            os.close(fds[0])
            self.refusals.record(f"{self.open} open, fd limit {self.fdLimit}")
            return
        self.adopt(fds[0], family, (host, port), preread)

    def _directPort(self) -> Any:
        """``--worker-ports``: this worker's own listening socket (the supervisor keeps
        it, so a successor serves on the same port). Accepting only while this process
        serves its node: a successor starts, its predecessor stops, at the handover."""
        fd = self.spec.get("port_fd")
        if fd is None:
            return None
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        port = Port(sock, self.factory, self.reactor)
        port.accepted = self._acceptedDirect
        port.connected, port.paused = True, True  # resumed once we serve our node
        self.directFactory = _Direct(self.factory)
        self.rpc.workerPorts = self.spec.get("worker_ports") or None
        self.rpc.routeListeners.append(self._directOrNot)
        self.reactor.callWhenRunning(self._directOrNot)
        return port

    def _directOrNot(self) -> None:
        port = self.direct
        if port is None:
            return
        serving = self.rpc.peers.get(self.rpc.node) is self.rpc.me and not self.draining
        if serving and port.paused:
            port.resume()
        elif not serving and not port.paused:
            port.pause()

    def _acceptedDirect(self, fd: int, addr: Any) -> None:
        if self._fdsRunningOut():
            os.close(fd)
            self.refusals.record(f"{self.open} open, fd limit {self.fdLimit}")
            return
        self.adopt(fd, self.direct.socket.family, addr, b"", self.directFactory)

    def _fdsRunningOut(self) -> bool:
        """Whether one more connection would eat into the fds kept for ZeroMQ (which
        aborts the process when an accept of a peer's connection fails for want of one)."""
        inUse = self.fdsAtBeat + self.open - self.openAtBeat
        return inUse >= self.fdLimit - FD_RESERVE

    def _countFds(self) -> None:
        self.fdLimit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        try:
            self.fdsAtBeat = len(os.listdir("/proc/self/fd"))
        except OSError:
            self.fdsAtBeat = 0
        self.openAtBeat = self.open

    def adopt(self, fd: int, family: int, peer: Any, preread: bytes,
              factory: Any = None) -> None:
        """Serve a handed-over (or directly accepted) connection (the fd is ours from
        here on); ``preread`` goes to the protocol first."""
        sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)
        sock.setblocking(False)  # TCP_NODELAY came from the listening socket (see Port)
        self.accepted += 1
        transport = startConnection(self.reactor, sock, peer, factory or self.factory, self,
                                    preread, self.tls)
        if transport is not None:
            self.open += 1
            self.connections.add(transport)
            if self.draining:
                _closeWhenIdle(transport)

    def connectionLost(self, reason: Any) -> None:
        """A connection we adopted has closed (we are every transport's owner)."""
        self.open -= 1
        self._checkDrained()

    # -- reporting -------------------------------------------------------------------------

    def heartbeat(self) -> None:
        self._countFds()  # the limit may have been changed from outside (prlimit)
        stats = {"open": self.open, "accepted": self.accepted,
                 "state": "draining" if self.draining else "running",
                 "requests": self._requests(appMetrics(self.factory,
                                                       self.metricsProblems))}
        self.control.send(["hb", stats])
        self.handoff.send(["load", self.open, self.accepted])

    def metrics(self) -> dict[str, Any]:
        """This worker's numbers, for ``--metrics``: one snapshot per scrape."""
        app = appMetrics(self.factory, self.metricsProblems)
        return {"open": self.open, "accepted": self.accepted,
                "requests": self._requests(app), "rpc": self.rpc.metrics(), "app": app}

    @staticmethod
    def _requests(app: dict[str, Any]) -> int:
        """What this worker served: the app's count if it keeps one, else its reads."""
        requests = app.pop("requests", None)  # checked: a finite number, if there
        return readCount() if requests is None else int(requests)

    def _onControl(self, msg: Any, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        kind = msg[0] if msg else None
        if kind == "peers":
            self.rpc.setPeers(*msg[1:5])
        elif kind == "move":
            self.shards.move(msg[1])
        elif kind == "moveAborted":
            self.shards.aborted(msg[1])
        elif kind == "stay":  # asked to stop, but no successor could take our shards
            self.leaving = False
            if self._leaveTimer is not None and self._leaveTimer.active():
                self._leaveTimer.cancel()
        elif kind == "stop":
            self._stop()
        elif kind == "metrics":
            self.control.send(["metrics", msg[1], self.metrics()])
        elif kind == "workerPorts":  # off: no more redirections to worker ports
            self.rpc.workerPorts = msg[1] or None
        else:
            log.warning("unknown control message %r", kind)

    def _onControlClosed(self, reason: Any) -> None:
        if not self.stopping:
            log.warning("lost the supervisor; stopping")
            self._stop()

    # -- stopping --------------------------------------------------------------------------

    def _onHandoffClosed(self, reason: Any) -> None:
        self.handoffOpen = False
        self._checkDrained()

    def _tlsContext(self) -> Any:
        """``--tls-cert``/``--tls-key`` (and ``--tls-ca``): the context connections
        handed over to this worker speak TLS with; None for plain TCP."""
        cert = self.spec.get("tls_cert")
        if not cert:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, self.spec["tls_key"])
        if self.spec.get("tls_ca"):
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.spec["tls_ca"])
        return context

    def _listenUDP(self) -> Any:
        """``--udp PORT``: this worker's own socket on the port (SO_REUSEPORT), serving
        the app's ``datagramProtocol`` (a DatagramProtocol class, or the factory's
        ``buildDatagramProtocol()``)."""
        port = self.spec.get("udp")
        if port is None:
            return None
        build = getattr(self.factory, "buildDatagramProtocol", None)
        cls = getattr(self.factory, "datagramProtocol", None)
        if build is None and cls is None:
            raise TypeError("--udp needs the app's factory to have a datagramProtocol "
                            "(a DatagramProtocol class) or buildDatagramProtocol()")
        protocol = build() if build is not None else cls()
        return udp.listenUDP(self.reactor, port, protocol, self.spec.get("host", ""),
                             reusePort=True)

    def leave(self) -> None:
        """SIGTERM: this worker alone is to stop. The supervisor starts a successor, moves
        our shards to it and then tells us to stop; without a supervisor we stop now."""
        if self.stopping or self.leaving:
            return
        if self.control.closed or not self.control.send(["leaving"]):
            self._stop()
            return
        self.leaving = True
        log.info("asked to stop: waiting for a successor to take our shards")
        # should the supervisor never answer, stop anyway (our shards are lost then)
        self._leaveTimer = self.reactor.callLater(self.spec["graceful_timeout"] + 30,
                                                  self._stop)

    def drain(self) -> Deferred | None:
        """The 'before shutdown' step: finish what we have, within the graceful timeout."""
        self.stopping = True
        if self.fast:
            return None
        self.draining = True
        log.info("draining %d open connection(s)", self.open)
        if self.udp is not None:
            self.udp.stopListening()  # datagrams go to the workers still listening
        if self.direct is not None:
            # the successor accepts on our port from now on (its own copy of the socket);
            # ours goes, so a port whose worker was removed (TTOU) closes at once
            self.direct.pause()
            self.direct.socket.close()
            self.direct = None
        for transport in list(self.connections):
            _closeWhenIdle(transport)
        d = self._drained = Deferred()
        self._checkDrained()
        timeout = self.spec["graceful_timeout"]
        return d.addTimeout(timeout, self.reactor, onTimeoutCancel=self._gracefulTimeout)

    def _gracefulTimeout(self, result: Any, timeout: float) -> None:
        log.warning("graceful timeout (%ss): closing %d connection(s)", timeout, self.open)

    def _checkDrained(self) -> None:
        d = self._drained
        if d is None or d.called or self.handoffOpen or self.open > 0:
            return
        # others may still send us calls (sent before they heard we were replaced), and
        # calls we pass on to a shard's new owner must be answered before we go
        busy = self.rpc.busyFor()
        if busy > 0:
            if self._recheck is None or not self._recheck.active():
                self._recheck = self.reactor.callLater(busy, self._checkDrained)
            return
        d.callback(None)

    def stopFast(self) -> None:
        self.fast = True
        self._stop()

    def _stop(self) -> None:
        stopReactor(self.reactor)


class _Direct:
    """The app's factory for connections accepted on the worker's own port: the same
    protocols, marked ``direct`` (the default store then acts as a Redis Cluster node)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self.factory.buildProtocol(addr)
        if protocol is not None:
            protocol.direct = True
        return protocol


def _closeWhenIdle(transport: Any) -> None:
    """Ask a connection's protocol to close at its next request boundary, if it knows
    where those are; otherwise it stays open until its client closes it (or the graceful
    timeout)."""
    closeWhenIdle = getattr(transport.protocol, "closeWhenIdle", None)
    if closeWhenIdle is not None and transport.connected:
        try:
            closeWhenIdle()
        except Exception:
            log.exception("closeWhenIdle of %r failed", transport.protocol)
