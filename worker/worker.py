"""The worker: adopts the connections the gateway hands over and serves them with the
user's Factory on its own reactor.

fd ownership across the handoff: the gateway sends each accepted socket with
SCM_RIGHTS and closes its copy, so once a handoff message is read here the fd is ours
alone. The bytes the gateway read first (a routing preamble) travel in the same message
and reach ``dataReceived`` before the reactor ever reads the socket.

Draining: on SIGTERM the worker keeps adopting what is still queued on its handoff
socket until that socket reaches end of file (the gateway and the supervisor both
closed their ends, so nothing more can arrive), waits for its open connections to
close, and after the graceful timeout closes the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

from cluster.channel import Channel
from cluster.defer import Deferred
from cluster.error import ReactorNotRunning
from cluster.task import LoopingCall
from cluster.transport import startConnection

log = logging.getLogger("cluster")

_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


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
        self._drained: Deferred | None = None
        self.handoff = Channel(handoff, reactor, self._onHandoff, self._onHandoffClosed)
        self.control = Channel(control, reactor, self._onControl, self._onControlClosed)
        self._beat = LoopingCall(self.heartbeat)

    def start(self) -> None:
        """Begin taking connections; tell the supervisor we are ready."""
        r = self.reactor
        self.factory.doStart()  # as a listening port would: startFactory runs once
        r.addSystemEventTrigger("after", "shutdown", self.factory.doStop)
        self.handoff.start()
        self.control.start()
        r.addSystemEventTrigger("before", "shutdown", self.drain)
        signal.signal(signal.SIGQUIT, lambda *_: r.callFromThread(self.stopFast))
        signal.signal(signal.SIGTERM, lambda *_: r.callFromThread(self._stop))
        self._beat.clock = r
        self._beat.start(self.spec["heartbeat_interval"])
        self.control.send(["ready", {"pid": os.getpid(), "rpc": self.rpc.endpoint}])

    # -- connections -----------------------------------------------------------------------

    def _onHandoff(self, msg: Any, fds: list[int]) -> None:
        # anything that raises here leaves the fds to the channel, which closes them
        if len(fds) != 1:
            raise ValueError(f"a handoff carries one fd, not {len(fds)}")
        _, family, host, port, preread = msg
        if family not in _FAMILIES or not isinstance(preread, bytes):
            raise ValueError(f"malformed handoff header {msg!r}")
        self.adopt(fds[0], family, (host, port), preread)

    def adopt(self, fd: int, family: int, peer: Any, preread: bytes) -> None:
        """Serve a handed-over connection (the fd is ours from here on); ``preread`` goes
        to the protocol first."""
        sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)
        sock.setblocking(False)  # TCP_NODELAY came from the listening socket (see Port)
        self.accepted += 1
        if startConnection(self.reactor, sock, peer, self.factory, self, preread) is not None:
            self.open += 1

    def connectionLost(self, reason: Any) -> None:
        """A connection we adopted has closed (we are every transport's owner)."""
        self.open -= 1
        self._checkDrained()

    # -- reporting -------------------------------------------------------------------------

    def heartbeat(self) -> None:
        stats = {"open": self.open, "accepted": self.accepted,
                 "state": "draining" if self.draining else "running"}
        self.control.send(["hb", stats])
        self.handoff.send(["load", self.open, self.accepted])

    def _onControl(self, msg: Any, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        if msg and msg[0] == "peers":
            self.rpc.setPeers(*msg[1:5])

    def _onControlClosed(self, reason: Any) -> None:
        if not self.stopping:
            log.warning("lost the supervisor; stopping")
            self._stop()

    # -- stopping --------------------------------------------------------------------------

    def _onHandoffClosed(self, reason: Any) -> None:
        self.handoffOpen = False
        self._checkDrained()

    def drain(self) -> Deferred | None:
        """The 'before shutdown' step: finish what we have, within the graceful timeout."""
        self.stopping = True
        if self.fast:
            return None
        self.draining = True
        log.info("draining %d open connection(s)", self.open)
        d = self._drained = Deferred()
        self._checkDrained()
        timeout = self.spec["graceful_timeout"]
        return d.addTimeout(timeout, self.reactor, onTimeoutCancel=self._gracefulTimeout)

    def _gracefulTimeout(self, result: Any, timeout: float) -> None:
        log.warning("graceful timeout (%ss): closing %d connection(s)", timeout, self.open)

    def _checkDrained(self) -> None:
        d = self._drained
        if d is not None and not d.called and not self.handoffOpen and self.open <= 0:
            d.callback(None)

    def stopFast(self) -> None:
        self.fast = True
        self._stop()

    def _stop(self) -> None:
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass  # already stopping
