"""A ZeroMQ socket read by the reactor through its ``zmq.FD``.

That fd is edge-triggered and signals "zmq has something to look at", not "a message is
waiting": a send can consume the edge that announced an incoming message, and a wakeup
can announce several messages at once. So this is the one place that honours the rule:
after every wakeup and after every send, read ``zmq.EVENTS`` and receive while it says
POLLIN. A wakeup reads at most ``batch`` messages so one busy socket cannot starve the
loop; if more are waiting it schedules itself again, since the fd will not fire again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from cluster.rpcwire import MAX_FRAME

log = logging.getLogger("cluster")

# plain ints: pyzmq's constants are enums, and ``int & Flag`` goes through the slow
# enum machinery on every check
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
# pyzmq's Python layer wraps these to return enums and check options on every call;
# the backend's methods do the same work without that
_get = zmq.backend.Socket.get
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv


class ZmqSocket:
    """Reactor reader for one zmq socket: ``onMessage(frames)`` per incoming message."""

    batch = 256

    def __init__(self, reactor: Any, sock: zmq.Socket,
                 onMessage: Callable[[list[bytes]], None]) -> None:
        self.reactor = reactor
        self.sock = sock
        self.onMessage = onMessage
        self.closed = False
        self._fd = sock.getsockopt(zmq.FD)
        self._drainCall: Any = None

    def start(self) -> ZmqSocket:
        self.reactor.addReader(self)
        self._scheduleDrain()  # something may have arrived before we were watching
        return self

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return f"zmq socket fd {self._fd}"

    def doRead(self) -> None:
        self._drain()

    def send(self, frames: list[bytes], track: bool = False) -> Any:
        """Queue one message; never blocks: past the high-water mark it raises zmq.Again
        (a DEALER whose peer stopped reading) or drops it (a ROUTER, as ZeroMQ does). A
        large last frame is lent to ZeroMQ rather than copied; with ``track``, the
        returned MessageTracker tells when ZeroMQ is done with it."""
        sock = self.sock
        for frame in frames[:-1]:
            _send(sock, frame, _NOBLOCK | _SNDMORE)
        last = frames[-1]
        copy = len(last) < COPY_BELOW and not track
        tracker = _send(sock, last, _NOBLOCK, copy, track)
        if _get(sock, _EVENTS) & _POLLIN:
            self._scheduleDrain()  # the send may have eaten the edge for it
        return tracker

    def _scheduleDrain(self) -> None:
        if self._drainCall is None and not self.closed:
            self._drainCall = self.reactor.callLater(0, self._drain)

    def _drain(self) -> None:
        if self._drainCall is not None:
            if self._drainCall.active():
                self._drainCall.cancel()
            self._drainCall = None
        sock = self.sock
        onMessage = self.onMessage
        for _ in range(self.batch):
            if self.closed or not _get(sock, _EVENTS) & _POLLIN:
                return
            frame = _recv(sock, _NOBLOCK, False)  # a Frame knows if more follow
            frames = [_contents(frame)]
            while frame.more:
                frame = _recv(sock, _NOBLOCK, False)
                frames.append(_contents(frame))
            try:
                onMessage(frames)
            except Exception:
                log.exception("%s: error handling a message", self.logPrefix())
        self._scheduleDrain()

    def close(self) -> None:
        """Stop reading and close the socket at once (unsent messages are dropped)."""
        if not self.closed:
            self.closed = True
            self.reactor.removeReader(self)
            if self._drainCall is not None and self._drainCall.active():
                self._drainCall.cancel()
            self._drainCall = None
            self.sock.close(linger=0)

    def connectionLost(self, reason: Any) -> None:
        self.close()


def _contents(frame: zmq.Frame) -> bytes | memoryview:
    """A frame's bytes: copied when small, a view of ZeroMQ's own buffer when large (a
    part of a big value is not copied on the way in)."""
    return frame.bytes if len(frame) < COPY_BELOW else frame.buffer


COPY_BELOW = 65536
MAX_MESSAGE = MAX_FRAME  # larger inbound messages are refused by ZeroMQ before allocation
HIGH_WATER = 10_000  # messages queued to one peer before sends fail (DEALER) or drop


def remote(sock: zmq.Socket, endpoint: str) -> zmq.Socket:
    """For ``endpoint``, tcp:// to another host: IPv6 if it is in brackets (only then:
    an IPv6 socket names IPv4 peers ``::ffff:A.B.C.D``), and a connection that went
    silent (a host gone without closing it, a new address behind its name) is noticed
    by ZMTP heartbeats and TCP keepalive and dialled again, rather than kept half-open
    for the kernel's quarter of an hour."""
    sock.ipv6 = endpoint.startswith("tcp://[")
    sock.heartbeat_ivl = 2000  # ms
    sock.heartbeat_timeout = 6000
    sock.tcp_keepalive = 1
    sock.tcp_keepalive_idle = 10  # s
    sock.tcp_keepalive_intvl = 5
    sock.tcp_keepalive_cnt = 3
    return sock


def configure(sock: zmq.Socket) -> zmq.Socket:
    """Bounded: a message over ``MAX_MESSAGE`` disconnects its sender unread, and at
    most ``HIGH_WATER`` messages wait to go to one peer. The receive side has no mark:
    with one, libzmq stopped delivering altogether once it had been reached (seen with
    ipc:// here); what a peer queues for a process that stopped reading is bounded by
    the supervisor, which kills that process when its heartbeats or pings stop. No
    lingering on close."""
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    return sock
