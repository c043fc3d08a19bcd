"""Channel: msgpack messages, each optionally carrying fds, over a SOCK_SEQPACKET socket.

The cluster's processes talk over these: supervisor to gateway and to each worker
(commands, heartbeats), gateway to worker (handed-over connections, load reports).
SEQPACKET keeps message boundaries, so one ``recvmsg`` is one message, and fds travel
with the message they belong to (SCM_RIGHTS). Whoever receives fds owns them: a message
that cannot be decoded, or whose handler raises, has its fds closed here and is dropped
(the channel goes on with the next one), so a bad message never leaks an fd. The rule
for handlers that follows: one that takes an fd must not raise after taking it.
"""

from __future__ import annotations

import array
import logging
import os
import select
import socket
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from cluster.error import CONNECTION_DONE, ConnectionLost
from cluster.logs import Episodes

log = logging.getLogger("cluster")

MAX_MESSAGE = 65536
MAX_FDS = 8
_TRUNCATED = int(socket.MSG_TRUNC | socket.MSG_CTRUNC)  # a plain int: enum & is slow
_ANCILLARY = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
_RIGHTS = (socket.SOL_SOCKET, socket.SCM_RIGHTS)


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
        self.full = False  # the last send failed only because the peer's queue is full
        self.dropped = 0
        self._fd = sock.fileno()
        self.badMessages = Episodes(log, f"channel fd {self._fd}: dropped a %s", reactor)
        self._pack = msgpack.Packer().pack  # one packer, not one per message

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
        data = self._pack(msg)
        self.full = False
        try:
            if fds:
                self.sock.sendmsg([data], [(*_RIGHTS, array.array("i", fds))])
            else:
                self.sock.send(data)
        except BlockingIOError:
            self.full = True  # the peer is alive but has not read what it has yet
            return False
        except OSError:
            return False
        return True

    def doRead(self) -> Any:
        recvmsg = self.sock.recvmsg
        for _ in range(self.batch):
            try:
                data, ancillary, flags, _ = recvmsg(MAX_MESSAGE, _ANCILLARY)
            except BlockingIOError:
                return None
            except ConnectionResetError as e:
                # the peer closed with messages of ours unread; Linux reports that before
                # the messages the peer sent us last (a boot error, say): read those first
                return self._lastWords() or ConnectionLost(e)
            except OSError as e:
                return ConnectionLost(e)
            fds = _fdsIn(ancillary)
            if not data and not fds:
                return CONNECTION_DONE
            self._deliver(data, fds, flags)
            if self.closed:
                return None  # the handler closed us
        return None

    def _deliver(self, data: bytes, fds: list[int], flags: int) -> None:
        """One message to the handler; a bad one (or one it fails on) is dropped, its fds
        closed."""
        if flags & _TRUNCATED:
            self._drop(fds, f"truncated message ({len(data)} bytes, flags {flags:#x})")
            return
        try:
            msg = msgpack.unpackb(data)
        except Exception as e:
            self._drop(fds, f"undecodable message: {e}")
            return
        try:
            self.onMessage(msg, fds)
        except Exception:
            self._drop(fds, f"message its handler failed on:\n{traceback.format_exc()}")

    def _lastWords(self) -> Any:
        """After a reset: handle what is still queued; CONNECTION_DONE at its end."""
        while not self.closed:
            try:
                data, ancillary, flags, _ = self.sock.recvmsg(MAX_MESSAGE, _ANCILLARY)
            except OSError:
                return None
            fds = _fdsIn(ancillary)
            if not data and not fds:
                return CONNECTION_DONE
            self._deliver(data, fds, flags)
        return None

    def drain(self) -> None:
        """Handle every message already waiting (the peer may be gone: what it sent
        before it went still counts)."""
        while not self.closed and self.doRead() is None:
            try:
                if not select.select([self.sock], [], [], 0)[0]:
                    return
            except (OSError, ValueError):
                return

    def _drop(self, fds: list[int], why: str) -> None:
        self.dropped += 1
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.badMessages.record(why)

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


def _fdsIn(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The fds an SCM_RIGHTS control message carried (a trailing partial int is cut off)."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if (level, kind) == _RIGHTS:
            a = array.array("i")
            a.frombytes(data[:len(data) - len(data) % a.itemsize])
            fds.extend(a)
    return fds
