"""The gateway: accepts connections and hands each socket to one worker.

The handoff is one SEQPACKET message per connection on the chosen worker's socketpair:
a msgpack header ``[connection id, family, host, port, pre-read bytes]`` and the fd
itself (SCM_RIGHTS). The gateway closes its copy only after the send succeeded; if the
worker's queue is full (a stalled worker) or its end is gone (a dead one), the same fd
is offered to the next worker in the policy's order, and with no worker left it is
closed at once. So every accepted connection reaches exactly one worker, or is closed.

Key routing reads a bounded preamble first (``preamble_limit`` bytes within
``preamble_timeout`` seconds) and asks the app's ``routeKey(preamble)`` for a key; the
preamble travels with the fd, so the worker's protocol sees every byte in order.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time
from collections import deque
from typing import Any

from cluster.channel import Channel
from cluster.child import stopReactor
from cluster.defer import Deferred
from cluster.error import CONNECTION_DONE, ConnectionLost
from cluster.hosts import HostMap
from cluster.logs import Episodes
from cluster.ports import Port
from cluster.task import LoopingCall
from gateway.routing import Slot, policy

log = logging.getLogger("cluster")


HANDED, BUSY, REFUSED = "handed", "busy", "refused"
MAX_WAITING = 256  # connections held while every worker's handoff queue is full
RETRY_AFTER = 0.002  # seconds before they are offered again
PEEK_AGAIN = 0.01  # seconds between two looks at a partial ClientHello


class HandoffPort(Port):
    """The shared listening socket, whose accepted fds go to the gateway, not a protocol."""

    def __init__(self, sock: socket.socket, gateway: Gateway) -> None:
        super().__init__(sock, _NoFactory(), gateway.reactor)
        self.accepted = gateway.accepted  # bound straight through: one call less per accept


class _NoFactory:
    """Ports start and stop a factory; the gateway's port has none to run."""

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def logPrefix(self) -> str:
        return "gateway"


def _peerShutDown(sock: socket.socket) -> bool:
    """Whether the peer closed its sending side (what peeking cannot tell while the bytes
    it sent stay unread)."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return bool(poller.poll(0))


class Preamble:
    """Reads a key-routed connection's first bytes until ``routeKey`` names a key."""

    def __init__(self, gateway: Gateway, fd: int, addr: Any) -> None:
        self.gateway = gateway
        self.sock = socket.socket(gateway.family, socket.SOCK_STREAM, 0, fd)
        self.sock.setblocking(False)
        self.addr = addr
        self.data = b""
        self.retry: Any = None
        self.timer = gateway.reactor.callLater(gateway.spec["preamble_timeout"], self.timedOut)

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return f"preamble from {self.addr}"

    def doRead(self) -> Any:
        limit = self.gateway.spec["preamble_limit"]
        peek = self.gateway.peek  # TLS: the ClientHello is looked at, left for the worker
        try:
            if peek:
                chunk = self.sock.recv(limit, socket.MSG_PEEK)
            else:
                chunk = self.sock.recv(limit - len(self.data))
        except BlockingIOError:
            return None
        except OSError as e:
            return ConnectionLost(e)
        if not chunk:
            return CONNECTION_DONE
        if peek and chunk == self.data:  # nothing new: has the peer given up?
            if _peerShutDown(self.sock):
                return ConnectionLost("closed before its ClientHello was complete")
            return self._later()
        self.data = chunk if peek else self.data + chunk
        try:
            key = self.gateway.routeKey(self.data)
        except Exception as e:
            log.warning("routeKey rejected the preamble from %s: %s", self.addr, e)
            return ConnectionLost(e)
        if key is None:
            if len(self.data) >= limit:
                log.warning("no routing key in the first %d bytes from %s: closed",
                            limit, self.addr)
                return ConnectionLost("preamble too long")
            return self._later() if peek else None
        self.finish()
        self.gateway.handoff(self.sock.detach(), self.addr, b"" if peek else self.data, key)
        return None

    def _later(self) -> None:
        """Peeked bytes stay readable: look again shortly rather than spin on them."""
        reactor = self.gateway.reactor
        reactor.removeReader(self)
        self.retry = reactor.callLater(PEEK_AGAIN, reactor.addReader, self)
        return None

    def timedOut(self) -> None:
        log.warning("no routing key from %s within %ss: closed", self.addr,
                    self.gateway.spec["preamble_timeout"])
        self.connectionLost(None)

    def finish(self) -> None:
        self.gateway.reactor.removeReader(self)
        for timer in (self.timer, self.retry):
            if timer is not None and timer.active():
                timer.cancel()
        self.gateway.preambles.discard(self)

    def connectionLost(self, reason: Any) -> None:
        self.finish()
        self.sock.close()


class Gateway:
    """Accepts on the supervisor's listening socket and routes each connection."""

    def __init__(self, reactor: Any, spec: dict[str, Any], listening: socket.socket,
                 control: socket.socket, routeKey: Any = None, rpcNode: Any = None) -> None:
        self.reactor = reactor
        self.rpc = rpcNode
        self.spec = spec
        self.routeKey = routeKey
        self.peek = bool(spec.get("tls_cert"))  # TLS: route by the SNI, peeked
        self.family = listening.family
        self._familyNumber = int(listening.family)
        self.workers = spec["workers"]
        self.policy = policy(spec["route"], spec["slots"], HostMap.fromSpec(spec.get("hostmap")))
        self.keyed = spec["route"] == "key"
        self.stallAfter = max(4 * spec["heartbeat_interval"], 1.0)
        self.slots: dict[int, Slot] = {}
        self._ordered: list[Slot] = []  # self.slots by index, rebuilt when they change
        self.preambles: set[Preamble] = set()
        self.waiting: deque[tuple] = deque()  # handoffs waiting for room in a worker's queue
        self._retry: Any = None
        self.port = HandoffPort(listening, self)
        self.control = Channel(control, reactor, self._onControl, self._onControlClosed)
        self.nextId = 0
        self.accepts = 0
        self.handed = 0
        self.refused = 0
        # how each connection ended up routed: to the policy's first choice, to another
        # worker (the first was dead, stalled or full), or refused; and how many of them
        # had to wait for room first
        self.outcomes = {"preferred": 0, "fallback": 0, "refused": 0}
        self.waited = 0
        self.handedTo: dict[int, int] = {}  # worker index -> connections handed to it
        self.stopping = False
        self.refusals = Episodes(log, "no worker could take a connection (%s): closed", reactor,
                                 level=logging.ERROR)
        self._beat = LoopingCall(self.heartbeat)

    def start(self) -> None:
        r = self.reactor
        signal.signal(signal.SIGTERM, lambda *_: r.callFromThread(self._stop))
        self.control.start()
        r.addSystemEventTrigger("before", "shutdown", self.drain)
        self._beat.clock = r
        self._beat.start(self.spec["heartbeat_interval"])
        self.control.send(["ready", {"pid": os.getpid(),
                                     "rpc": self.rpc.endpoint if self.rpc else None}])

    # -- accepting -------------------------------------------------------------------------

    def accepted(self, fd: int, addr: Any) -> None:
        """One accepted connection (the fd is ours): hand it over, or read its preamble
        first. Whatever goes wrong closes this connection only."""
        self.accepts += 1
        if not self.keyed:
            self.handoff(fd, addr, b"", None)
            return
        try:
            p = Preamble(self, fd, addr)
        except Exception:
            os.close(fd)
            raise
        self.preambles.add(p)
        self.reactor.addReader(p)

    def handoff(self, fd: int, addr: Any, preread: bytes, key: Any) -> None:
        """Send ``fd`` to the first worker that takes it. If the workers are alive but
        their queues are full (a burst), it waits here, accepting paused, and is offered
        again shortly; if no worker can take it at all, it is closed. Our copy is closed
        on every path, an exception included, unless it waits."""
        waits = False
        try:
            if self.waiting:  # earlier ones are waiting: this one goes behind them
                waits = self._wait((fd, addr, preread, key))
                return
            outcome = self._offer(fd, addr, preread, key)
            if outcome is BUSY:
                waits = self._wait((fd, addr, preread, key))
            elif outcome is REFUSED:
                self._refuse(addr)
        finally:
            if not waits:
                os.close(fd)

    def _offer(self, fd: int, addr: Any, preread: bytes, key: Any) -> Any:
        """HANDED, BUSY (every live worker's queue is full) or REFUSED (none can take it)."""
        self.nextId += 1
        host, port = (addr[0], addr[1]) if isinstance(addr, tuple) else (addr or "", 0)
        header = (self.nextId, self._familyNumber, host, port, preread)
        now = time.monotonic()
        stallAfter = self.stallAfter
        busy = False
        for tried, slot in enumerate(self.policy.order(self._ordered, addr, key,
                                                       self.workers)):
            if slot.usable(now, stallAfter):
                if slot.channel.send(header, (fd,)):
                    slot.handed()
                    self.handed += 1
                    self.outcomes["fallback" if tried else "preferred"] += 1
                    self.handedTo[slot.index] = self.handedTo.get(slot.index, 0) + 1
                    return HANDED
                busy = busy or slot.channel.full
        return BUSY if busy else REFUSED

    def _refuse(self, addr: Any) -> None:
        self.refused += 1
        self.outcomes["refused"] += 1
        self.refusals.record(f"from {addr}")

    def _wait(self, handoff: tuple) -> bool:
        """Keep a connection the workers cannot take yet; False if too many wait already."""
        if len(self.waiting) >= MAX_WAITING:
            self._refuse(handoff[1])
            return False
        self.waiting.append(handoff)
        self.waited += 1
        if self.port.connected and not self.port.paused:
            self.port.pause()
        if self._retry is None:
            self._retry = self.reactor.callLater(RETRY_AFTER, self._offerWaiting)
        return True

    def _offerWaiting(self) -> None:
        """Offer the waiting connections again, in order; accept again once none waits."""
        self._retry = None
        while self.waiting:
            fd, addr, preread, key = self.waiting[0]
            try:
                outcome = self._offer(fd, addr, preread, key)
            except Exception:  # that connection only: closed below
                log.exception("handing over a waiting connection from %s failed", addr)
                outcome = REFUSED
            if outcome is BUSY:
                self._retry = self.reactor.callLater(RETRY_AFTER, self._offerWaiting)
                return
            self.waiting.popleft()
            os.close(fd)
            if outcome is REFUSED:
                self._refuse(addr)
        if self.port.connected and not self.stopping:
            self.port.resume()

    # -- workers ---------------------------------------------------------------------------

    def _onControl(self, msg: Any, fds: list[int]) -> None:
        kind = msg[0]
        if kind == "slot" and fds:
            index = msg[1]
            if not isinstance(index, int):
                raise TypeError(f"slot index {index!r}")  # the channel closes the fds
            for extra in fds[1:]:
                os.close(extra)
            old = self.slots.pop(index, None)
            if old is not None:
                old.channel.close()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fds[0])
            slot = Slot(index, None, time.monotonic())
            slot.channel = Channel(sock, self.reactor, lambda m, f, s=slot: self._onLoad(s, m, f),
                                   lambda reason, s=slot: self._onWorkerGone(s)).start()
            self.slots[index] = slot
            self._slotsChanged()
            log.info("worker-%d: taking connections", index)
            if not self.port.connected and not self.stopping:
                # accept only once a worker can take connections: until then they wait
                # in the listening socket's backlog, which the supervisor keeps
                self.port.startListening()
        elif kind == "drop":
            slot = self.slots.pop(msg[1], None)
            if slot is not None:
                slot.channel.close()
                self._slotsChanged()
        elif kind == "workers":
            self.workers = msg[1]
        elif kind == "peers":
            if self.rpc is not None:
                self.rpc.setPeers(*msg[1:5])
        elif kind == "metrics":
            self.control.send(["metrics", msg[1], self.metrics()])
        else:
            for fd in fds:
                os.close(fd)
            log.warning("unknown control message %r", kind)

    def _onLoad(self, slot: Slot, msg: Any, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        if msg and msg[0] == "load":
            slot.reported(msg[1], msg[2], time.monotonic())

    def _slotsChanged(self) -> None:
        self._ordered = [self.slots[i] for i in sorted(self.slots)]

    def _onWorkerGone(self, slot: Slot) -> None:
        if self.slots.get(slot.index) is slot:
            del self.slots[slot.index]
            self._slotsChanged()
            if not self.stopping:
                log.warning("worker-%d went away: no more connections for it", slot.index)

    def _onControlClosed(self, reason: Any) -> None:
        if not self.stopping:
            log.warning("lost the supervisor; stopping")
            self._stop()

    def _stop(self) -> None:
        stopReactor(self.reactor)

    def heartbeat(self) -> None:
        self.control.send(["hb", {"open": len(self.preambles), "accepted": self.accepts,
                                  "handed": self.handed, "refused": self.refused}])

    def metrics(self) -> dict[str, Any]:
        """The gateway's numbers, for ``--metrics``."""
        return {"open": len(self.preambles), "accepted": self.accepts,
                "outcomes": dict(self.outcomes), "waited": self.waited,
                "waiting": len(self.waiting),
                "handed_to": {f"worker-{i}": n for i, n in self.handedTo.items()},
                "rpc": self.rpc.metrics() if self.rpc is not None else None}

    # -- stopping --------------------------------------------------------------------------

    def drain(self) -> Deferred | None:
        """Stop accepting (the supervisor keeps the listening socket), finish preambles."""
        self.stopping = True
        if self.port.connected:
            self.port.stopListening()
        while self.waiting:  # a last offer; whatever no worker takes now is closed
            fd, addr, preread, key = self.waiting.popleft()
            if self._offer(fd, addr, preread, key) is not HANDED:
                self._refuse(addr)
            os.close(fd)
        if not self.preambles:
            return None
        d = Deferred()

        def check() -> None:
            if not self.preambles and not d.called:
                d.callback(None)
            elif not d.called:
                self.reactor.callLater(0.05, check)

        check()
        return d.addTimeout(self.spec["preamble_timeout"] + 1, self.reactor,
                            onTimeoutCancel=lambda r, t: None)
