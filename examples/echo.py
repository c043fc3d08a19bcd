"""An echo server: every byte a client sends comes back.

Standalone:      python -m examples.echo --port 8000
On the cluster:  cluster run examples.echo:factory --workers 2
"""

from __future__ import annotations

import argparse

from cluster.protocol import Factory, Protocol


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


factory = Factory.forProtocol(Echo)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)
    from cluster.reactor import reactor

    port = reactor.listenTCP(args.port, factory, interface=args.interface)
    print(f"Echo server on port {port.getHost().port}.", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
