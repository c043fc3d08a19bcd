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

    def send(self, frames: list[bytes]) -> None:
        """Queue one message (never blocks: the sockets have no high-water mark)."""
        sock = self.sock
        for frame in frames[:-1]:
            _send(sock, frame, _NOBLOCK | _SNDMORE)
        _send(sock, frames[-1], _NOBLOCK)
        if _get(sock, _EVENTS) & _POLLIN:
            self._scheduleDrain()  # the send may have eaten the edge for it

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
            frames = [frame.bytes]
            while frame.more:
                frame = _recv(sock, _NOBLOCK, False)
                frames.append(frame.bytes)
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


def configure(sock: zmq.Socket) -> zmq.Socket:
    """No high-water marks (a stalled peer is killed by the supervisor, which bounds the
    queue), no lingering on close."""
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    return sock
