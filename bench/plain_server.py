"""One plain reactor process serving a ``bench.apps`` app (the cluster's baseline).

    python -m bench.plain_server APP PORT [--reuseport]

With ``--reuseport`` several of these share the port (SO_REUSEPORT), the kernel
spreading connections between them. Prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import socket

from bench import apps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=["resp", "hello"])
    parser.add_argument("port", type=int)
    parser.add_argument("--reuseport", action="store_true")
    args = parser.parse_args()
    from cluster.reactor import reactor

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, getattr(apps, args.app))
    sock.close()
    reactor.callWhenRunning(print, "ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
