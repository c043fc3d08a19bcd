"""Download poems from several servers at once with a Protocol and a ClientFactory.

The Twisted introduction's second client, ported: one ``PoetryProtocol`` per
connection collects the bytes, the ``PoetryClientFactory`` counts finished downloads
(successful or failed) and stops the reactor when all are done.

    python -m examples.poetry_client 10000 127.0.0.1:10001
"""

from __future__ import annotations

import datetime
import sys

from cluster.protocol import ClientFactory, Protocol
from examples.poetry_client_raw import parse_args


class PoetryProtocol(Protocol):
    poem = b""
    task_num = 0

    def dataReceived(self, data: bytes) -> None:
        self.poem += data
        peer = self.transport.getPeer()
        print(f"Task {self.task_num}: got {len(data)} bytes of poetry from {peer.host}:{peer.port}")

    def connectionLost(self, reason: object = None) -> None:
        self.poemReceived(self.poem)

    def poemReceived(self, poem: bytes) -> None:
        self.factory.poem_finished(self.task_num, poem)


class PoetryClientFactory(ClientFactory):
    task_num = 1
    protocol = PoetryProtocol

    def __init__(self, poetry_count: int, reactor: object) -> None:
        self.poetry_count = poetry_count
        self.reactor = reactor
        self.poems: dict[int, bytes] = {}

    def buildProtocol(self, address: object) -> Protocol:
        proto = ClientFactory.buildProtocol(self, address)
        proto.task_num = self.task_num
        self.task_num += 1
        return proto

    def poem_finished(self, task_num: int | None = None, poem: bytes | None = None) -> None:
        if task_num is not None:
            self.poems[task_num] = poem
        self.poetry_count -= 1
        if self.poetry_count == 0:
            self.report()
            self.reactor.stop()

    def report(self) -> None:
        for i in sorted(self.poems):
            print(f"Task {i}: {len(self.poems[i])} bytes of poetry")

    def clientConnectionFailed(self, connector: object, reason: object) -> None:
        print(f"Failed to connect to: {connector.getDestination()}")
        self.poem_finished()


def main(argv: list[str] | None = None) -> dict[int, bytes]:
    addresses = parse_args(sys.argv[1:] if argv is None else argv)
    start = datetime.datetime.now()
    from cluster.reactor import reactor

    factory = PoetryClientFactory(len(addresses), reactor)
    for host, port in addresses:
        reactor.connectTCP(host, port, factory)
    reactor.run()
    print(f"Got {len(addresses)} poems in {datetime.datetime.now() - start}")
    return factory.poems


if __name__ == "__main__":
    main()
