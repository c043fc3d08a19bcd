"""Channel: msgpack messages, each optionally carrying fds, over a SOCK_SEQPACKET socket.

The cluster's processes talk over these: supervisor to gateway and to each worker
(commands, heartbeats), gateway to worker (handed-over connections, load reports).
SEQPACKET keeps message boundaries, so one ``recvmsg`` is one message, and fds travel
with the message they belong to (SCM_RIGHTS). Whoever receives fds owns them: a message
that cannot be decoded has its fds closed here, so a bad message never leaks one.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from cluster.error import CONNECTION_DONE, ConnectionLost

log = logging.getLogger("cluster")

MAX_MESSAGE = 65536
MAX_FDS = 8
_TRUNCATED = socket.MSG_TRUNC | socket.MSG_CTRUNC


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected SOCK_SEQPACKET pair; both ends inheritable by children."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return a, b


class Channel:
    """One end of a SEQPACKET socket, read by the reactor: ``onMessage(msg, fds)`` per
    message, ``onClose(reason)`` once the peer is gone."""

    batch = 64  # messages read per wakeup, so one busy channel cannot starve the loop

    def __init__(self, sock: socket.socket, reactor: Any,
                 onMessage: Callable[[Any, list[int]], None],
                 onClose: Callable[[Any], None] | None = None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.reactor = reactor
        self.onMessage = onMessage
        self.onClose = onClose
        self.closed = False
        self.dropped = 0
        self._fd = sock.fileno()

    def start(self) -> Channel:
        self.reactor.addReader(self)
        return self

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return f"channel fd {self._fd}"

    def send(self, msg: Any, fds: Sequence[int] = ()) -> bool:
        """Send one message (with ``fds``); False if the peer is gone or not reading
        (its queue is full): the caller still owns the fds then."""
        if self.closed:
            return False
        data = msgpack.packb(msg)
        try:
            if fds:
                socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.send(data)
        except OSError:
            return False
        return True

    def doRead(self) -> Any:
        for _ in range(self.batch):
            try:
                data, fds, flags, _ = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
            except BlockingIOError:
                return None
            except OSError as e:
                return ConnectionLost(e)
            if not data and not fds:
                return CONNECTION_DONE
            if flags & _TRUNCATED:
                self._drop(fds, f"truncated message ({len(data)} bytes, flags {flags:#x})")
                continue
            try:
                msg = msgpack.unpackb(data)
            except Exception as e:
                self._drop(fds, f"undecodable message: {e}")
                continue
            self.onMessage(msg, fds)
        return None

    def _drop(self, fds: list[int], why: str) -> None:
        self.dropped += 1
        for fd in fds:
            os.close(fd)
        log.warning("%s: dropped a %s", self.logPrefix(), why)

    def close(self) -> None:
        """Stop reading and close the socket (no ``onClose``)."""
        if not self.closed:
            self.closed = True
            self.reactor.removeReader(self)
            self.sock.close()
            self._fd = -1

    def connectionLost(self, reason: Any) -> None:
        self.close()
        if self.onClose is not None:
            self.onClose(reason)
