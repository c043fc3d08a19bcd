"""A slow poetry server: sends a poem in small chunks with a pause between them, then
closes, so clients have something to wait for (the Twisted introduction's slowpoetry).

    python -m examples.poetry_server --port 10000 --num-bytes 30 --delay 0.1 [POEM]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cluster.protocol import Protocol, ServerFactory

DEFAULT_POEM = Path(__file__).with_name("poetry") / "tyger.txt"


class PoetryProtocol(Protocol):
    def connectionMade(self) -> None:
        self.offset = 0
        self.call = None
        self.sendChunk()

    def sendChunk(self) -> None:
        f = self.factory
        chunk = f.poem[self.offset:self.offset + f.numBytes]
        if not chunk:
            self.call = None
            self.transport.loseConnection()
            return
        self.offset += len(chunk)
        self.transport.write(chunk)
        self.call = f.clock.callLater(f.delay, self.sendChunk)

    def connectionLost(self, reason: object = None) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()


class PoetryFactory(ServerFactory):
    protocol = PoetryProtocol

    def __init__(self, poem: bytes, numBytes: int = 30, delay: float = 0.1,
                 clock: object = None) -> None:
        self.poem = poem
        self.numBytes = numBytes
        self.delay = delay
        if clock is None:
            from cluster.reactor import reactor as clock
        self.clock = clock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a poem slowly.")
    parser.add_argument("poem", nargs="?", default=str(DEFAULT_POEM))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--num-bytes", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args(argv)
    from cluster.reactor import reactor

    poem = Path(args.poem).read_bytes()
    port = reactor.listenTCP(args.port, PoetryFactory(poem, args.num_bytes, args.delay),
                             interface=args.interface)
    print(f"Serving {args.poem} on port {port.getHost().port}.", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
