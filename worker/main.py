"""Entry point of a worker process: load the app, then serve until told to stop."""

from __future__ import annotations

import socket

from cluster import apps, child


def main(argv: list[str] | None = None) -> None:
    spec = child.setup("worker", argv)
    from cluster import rpc
    from cluster.reactor import reactor  # the process's singleton, created here

    node = rpc.startNode(reactor, spec)  # before the app: it may subscribe at import
    try:
        factory = apps.resolveFactory(apps.loadTarget(spec.get("target")))
    except BaseException:
        child.bootFailed(spec["control_fd"], f"cannot load the app {spec.get('target')!r}")
    from worker.worker import Worker

    worker = Worker(reactor, spec, factory, socket.socket(fileno=spec["handoff_fd"]),
                    socket.socket(fileno=spec["control_fd"]), node)
    try:
        worker.start()  # the factory's startFactory runs here
    except BaseException:
        child.bootFailed(spec["control_fd"], f"cannot start the app {spec.get('target')!r}")
    reactor.run(installSignalHandlers=False)  # SIGINT is the supervisor's, TERM ours
