"""Exceptions of the reactor and transports, under Twisted's names.

``CONNECTION_DONE`` and ``CONNECTION_LOST`` are what a descriptor's ``doRead`` or
``doWrite`` returns to have the reactor drop it; the reactor wraps them in a Failure
before calling ``connectionLost``.
"""

from __future__ import annotations

import builtins


class ConnectError(Exception):
    """A connection attempt failed."""

    def __init__(self, osError: object = None, string: str = "") -> None:
        self.osError = osError
        super().__init__(string or (str(osError) if osError is not None else ""))


class ConnectionRefusedError(ConnectError, builtins.ConnectionRefusedError):
    """The peer refused the connection."""


class ConnectingCancelledError(ConnectError):
    """``stopConnecting`` was called before the connection was made."""


class DNSLookupError(ConnectError):
    """The host name could not be resolved."""


class TimeoutError(builtins.TimeoutError):
    """An operation timed out: ``addTimeout``, a connection attempt or an RPC call."""


class ConnectionClosed(Exception):
    """A connection was closed, cleanly or not."""


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly."""


class ConnectionLost(ConnectionClosed):
    """The connection was closed in a non-clean fashion."""


class ConnectionAborted(ConnectionLost):
    """The connection was closed by ``abortConnection``."""


class CannotListenError(OSError):
    """``listenTCP``/``listenUNIX`` could not bind."""

    def __init__(self, interface: str, port: object, socketError: BaseException) -> None:
        super().__init__(f"Couldn't listen on {interface or 'any'}:{port}: {socketError}.")
        self.interface = interface
        self.port = port
        self.socketError = socketError


class ReactorNotRunning(RuntimeError):
    """``stop`` was called on a reactor that is not running."""


class ReactorAlreadyRunning(RuntimeError):
    """``run`` was called on a reactor that is already running."""


class ReactorNotRestartable(RuntimeError):
    """``run`` was called on a reactor that has already stopped."""


class AlreadyCalled(ValueError):
    """The DelayedCall has already run."""


class AlreadyCancelled(ValueError):
    """The DelayedCall has already been cancelled."""


CONNECTION_DONE = ConnectionDone("Connection was closed cleanly.")
CONNECTION_LOST = ConnectionLost("Connection to the other side was lost.")
