"""The apps the cluster benchmarks serve, as ``module:attr`` targets."""

from __future__ import annotations

from bench.resp_core import RespCore
from cluster.protocol import Factory, Protocol


class RespProtocol(RespCore, Protocol):
    """The shared Redis-protocol parser on this project's reactor."""


class Hello(Protocol):
    """Writes three bytes on connect; the client reads them and closes."""

    def connectionMade(self) -> None:
        self.transport.write(b"hi\n")


resp = Factory.forProtocol(RespProtocol)
hello = Factory.forProtocol(Hello)
