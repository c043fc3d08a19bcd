"""Host the shared Redis-protocol Protocol (``resp_core``) on one event loop.

    python -m bench.resp_server {cluster,asyncio,uvloop,twisted} PORT

Prints ``ready`` once listening on 127.0.0.1:PORT; SIGTERM stops it.
"""

from __future__ import annotations

import signal
import sys

from bench.resp_core import RespCore

BACKLOG = 1024


def serve_cluster(port: int) -> None:
    from bench.apps import resp
    from cluster.reactor import reactor

    reactor.listenTCP(port, resp, backlog=BACKLOG, interface="127.0.0.1")
    reactor.callWhenRunning(print, "ready", flush=True)
    reactor.run()


def serve_asyncio(port: int, use_uvloop: bool) -> None:
    import asyncio

    class RespProtocol(RespCore, asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        data_received = RespCore.dataReceived

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        server = await loop.create_server(RespProtocol, "127.0.0.1", port, backlog=BACKLOG)
        print("ready", flush=True)
        await stop
        server.close()

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def serve_twisted(port: int) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor

    class RespProtocol(RespCore, protocol.Protocol):
        pass

    reactor.listenTCP(port, protocol.Factory.forProtocol(RespProtocol), backlog=BACKLOG,
                      interface="127.0.0.1")
    reactor.callWhenRunning(print, "ready", flush=True)
    reactor.run()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    if host == "cluster":
        serve_cluster(port)
    elif host in ("asyncio", "uvloop"):
        serve_asyncio(port, host == "uvloop")
    elif host == "twisted":
        serve_twisted(port)
    else:
        raise SystemExit(f"unknown host loop {host!r}")


if __name__ == "__main__":
    main()
