"""Entry point of the gateway process."""

from __future__ import annotations

import socket

from cluster import apps, child


def main(argv: list[str] | None = None) -> None:
    spec = child.setup("gateway", argv)
    from cluster import rpc
    from cluster.reactor import reactor

    node = rpc.startNode(reactor, spec)  # the gateway can call workers too
    routeKey = None
    if spec["route"] == "key" and spec.get("tls_cert"):
        from gateway.sni import serverName

        routeKey = serverName  # TLS: the key is the server name the client asks for
    elif spec["route"] == "key":
        try:
            routeKey = apps.routeKeyFunction(apps.loadTarget(spec.get("target")))
        except BaseException:
            child.bootFailed(spec["control_fd"], "cannot load the app's routeKey")
    from gateway.gateway import Gateway

    listening = socket.socket(fileno=spec["listen_fd"])
    listening.setblocking(False)
    gateway = Gateway(reactor, spec, listening, socket.socket(fileno=spec["control_fd"]),
                      routeKey, node)
    gateway.start()
    reactor.run(installSignalHandlers=False)  # SIGINT is the supervisor's, TERM ours
