"""Host the shared Redis-protocol Protocol (``resp_core``) on one event loop.

    python -m bench.resp_server {cluster,asyncio,uvloop,twisted} PORT [CERT KEY]

Prints ``ready`` once listening on 127.0.0.1:PORT; SIGTERM stops it. With CERT and KEY
(PEM files) the connections speak TLS, each loop with its own TLS: the standard
library's ``ssl`` for this reactor, asyncio and uvloop, pyOpenSSL for Twisted.
"""

from __future__ import annotations

import signal
import ssl
import sys

from bench.resp_core import RespCore

BACKLOG = 1024


def server_context(tls: tuple[str, str] | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls)
    return ctx


def serve_cluster(port: int, tls: tuple[str, str] | None) -> None:
    from bench.apps import resp
    from cluster.reactor import reactor

    if tls:
        reactor.listenSSL(port, resp, server_context(tls), backlog=BACKLOG,
                          interface="127.0.0.1")
    else:
        reactor.listenTCP(port, resp, backlog=BACKLOG, interface="127.0.0.1")
    reactor.callWhenRunning(print, "ready", flush=True)
    reactor.run()


def serve_asyncio(port: int, use_uvloop: bool, tls: tuple[str, str] | None) -> None:
    import asyncio

    class RespProtocol(RespCore, asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        data_received = RespCore.dataReceived

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        server = await loop.create_server(RespProtocol, "127.0.0.1", port, backlog=BACKLOG,
                                          ssl=server_context(tls))
        print("ready", flush=True)
        await stop
        server.close()

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def serve_twisted(port: int, tls: tuple[str, str] | None) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor

    class RespProtocol(RespCore, protocol.Protocol):
        pass

    factory = protocol.Factory.forProtocol(RespProtocol)
    if tls:
        from twisted.internet import ssl as tssl

        reactor.listenSSL(port, factory, tssl.DefaultOpenSSLContextFactory(tls[1], tls[0]),
                          backlog=BACKLOG, interface="127.0.0.1")
    else:
        reactor.listenTCP(port, factory, backlog=BACKLOG, interface="127.0.0.1")
    reactor.callWhenRunning(print, "ready", flush=True)
    reactor.run()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    tls = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else None
    if host == "cluster":
        serve_cluster(port, tls)
    elif host in ("asyncio", "uvloop"):
        serve_asyncio(port, host == "uvloop", tls)
    elif host == "twisted":
        serve_twisted(port, tls)
    else:
        raise SystemExit(f"unknown host loop {host!r}")


if __name__ == "__main__":
    main()
