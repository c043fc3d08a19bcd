"""A small HTTP/1.1 server on the reactor, for the supervisor's ``--metrics`` port:
GET and HEAD of a few fixed paths, one request per connection.

Bounded like every other input: a request head is at most ``MAX_HEAD`` bytes (else 431),
must arrive within ``HEAD_TIMEOUT`` seconds (else the connection closes), at most
``MAX_CONNECTIONS`` are open at once (else 503), and anything but a well-formed GET or
HEAD gets a 4xx answer. On a loopback address, a request must name a loopback host in
its ``Host`` header (else 421), so a web page on another site cannot read it through a
DNS name rebound to 127.0.0.1. A handler returns a ``Response`` or a Deferred of one, so
gathering from other processes never blocks the loop.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from cluster.defer import maybeDeferred
from cluster.failure import Failure
from cluster.protocol import Factory, Protocol

log = logging.getLogger("cluster")

MAX_HEAD = 8192
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 64


class Response:
    """What a handler answers: a status, a content type, a body, extra headers."""

    def __init__(self, body: bytes, contentType: str = "text/plain; charset=utf-8",
                 status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.contentType = contentType
        self.status = status
        self.headers = headers or {}


Handler = Callable[[], Any]  # returns a Response, or a Deferred firing with one


class WebProtocol(Protocol):
    """Reads one request head, answers it, closes."""

    def connectionMade(self) -> None:
        self.head = b""
        self.answered = False
        self.timer = None
        self.factory.open += 1
        if self.factory.open > MAX_CONNECTIONS:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE)
            return
        self.timer = self.factory.reactor.callLater(HEAD_TIMEOUT, self._tooSlow)

    def dataReceived(self, data: bytes) -> None:
        if self.answered:
            return  # a body or a pipelined request: ignored, we close after our answer
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            end = self.head.find(b"\n\n")  # bare newlines, as some hand-typed clients send
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self._error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            return
        if end > MAX_HEAD:
            self._error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            return
        self._request(self.head[:end])

    def _request(self, head: bytes) -> None:
        line, *headers = head.split(b"\n")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._error(HTTPStatus.BAD_REQUEST)
            return
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})
            return
        if not self._hostAllowed(headers):
            self._error(HTTPStatus.MISDIRECTED_REQUEST)
            return
        handler = self.factory.routes.get(target.decode("latin-1"))
        if handler is None:
            self._error(HTTPStatus.NOT_FOUND)
            return
        self.answered = True
        self._cancelTimer()
        head = method == b"HEAD"
        maybeDeferred(handler).addCallbacks(
            lambda response: self._send(response, head),
            lambda failure: self._failed(failure, head))

    def _hostAllowed(self, headers: list[bytes]) -> bool:
        """Whether the Host header may name this server: anything on a non-loopback
        address; on a loopback one, only a loopback host (or no Host at all)."""
        try:
            if not ipaddress.ip_address(self.transport.getHost().host).is_loopback:
                return True
        except ValueError:
            return True
        for header in headers:
            name, sep, value = header.partition(b":")
            if sep and name.strip().lower() == b"host":
                host = value.strip().decode("latin-1").lower()
                host = host[1:host.find("]")] if host.startswith("[") else \
                    host.rpartition(":")[0] if ":" in host else host
                if host == "localhost":
                    return True
                try:
                    return ipaddress.ip_address(host).is_loopback
                except ValueError:
                    return False
        return True

    def _failed(self, failure: Failure, head: bool) -> None:
        log.error("the metrics page failed: %s", failure.getTraceback())
        self._send(Response(b"internal error\n", status=500), head)

    def _error(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        self.answered = True
        self._cancelTimer()
        self._send(Response(f"{status.value} {status.phrase}\n".encode(), status=status.value,
                            headers=headers), False)

    def _send(self, response: Response, headOnly: bool) -> None:
        if self.transport is None or not self.connected:
            return
        phrase = HTTPStatus(response.status).phrase
        headers = {"Content-Type": response.contentType,
                   "Content-Length": str(len(response.body)), "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff", "Connection": "close",
                   **response.headers}
        lines = [f"HTTP/1.1 {response.status} {phrase}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not headOnly:
            self.transport.write(response.body)
        self.transport.loseConnection()

    def _tooSlow(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.abortConnection()

    def _cancelTimer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def connectionLost(self, reason: Any) -> None:
        self.connected = 0
        self.factory.open -= 1
        self._cancelTimer()


class WebFactory(Factory):
    """Serves ``routes`` (path -> handler) with ``WebProtocol``."""

    protocol = WebProtocol

    def __init__(self, reactor: Any, routes: dict[str, Handler]) -> None:
        self.reactor = reactor
        self.routes = routes
        self.open = 0  # connections open now
