"""Download poems from several servers at once with raw read descriptors.

The first client of the Twisted introduction, ported: each socket is an
``IReadDescriptor`` registered with ``reactor.addReader``; its ``doRead`` reads until the
socket would block and returns ``CONNECTION_DONE`` at end of file, after which the
reactor calls ``connectionLost``. The reactor stops when the last poem is in.

    python -m examples.poetry_client_raw 10000 127.0.0.1:10001
"""

from __future__ import annotations

import datetime
import errno
import socket
import sys

from cluster.error import CONNECTION_DONE, CONNECTION_LOST
from cluster.interfaces import IReadDescriptor


def parse_args(argv: list[str]) -> list[tuple[str, int]]:
    addresses = []
    for addr in argv:
        host, _, port = addr.rpartition(":")
        addresses.append((host or "127.0.0.1", int(port)))
    if not addresses:
        sys.exit(f"usage: {sys.argv[0]} [HOST:]PORT ...")
    return addresses


class PoetrySocket(IReadDescriptor):
    poem = b""

    def __init__(self, task_num: int, address: tuple[str, int], reactor: object) -> None:
        self.task_num = task_num
        self.address = address
        self.reactor = reactor
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.connect(address)
        self.sock.setblocking(False)
        reactor.addReader(self)

    def fileno(self) -> int:
        try:
            return self.sock.fileno()
        except OSError:
            return -1

    def connectionLost(self, reason: object) -> None:
        self.sock.close()
        self.reactor.removeReader(self)
        for reader in self.reactor.getReaders():
            if isinstance(reader, PoetrySocket):
                return
        self.reactor.stop()  # no more poetry

    def doRead(self) -> object:
        data = b""
        while True:
            try:
                chunk = self.sock.recv(1024)
                if not chunk:
                    break
                data += chunk
            except OSError as e:
                if e.errno == errno.EWOULDBLOCK:
                    break
                return CONNECTION_LOST
        if not data:
            print(f"Task {self.task_num} finished")
            return CONNECTION_DONE
        print(f"Task {self.task_num}: got {len(data)} bytes of poetry from {self.format_addr()}")
        self.poem += data
        return None

    def logPrefix(self) -> str:
        return "poetry"

    def format_addr(self) -> str:
        host, port = self.address
        return f"{host or '127.0.0.1'}:{port}"


def main(argv: list[str] | None = None) -> list[bytes]:
    addresses = parse_args(sys.argv[1:] if argv is None else argv)
    start = datetime.datetime.now()
    from cluster.reactor import reactor

    sockets = [PoetrySocket(i + 1, addr, reactor) for i, addr in enumerate(addresses)]
    reactor.run()
    elapsed = datetime.datetime.now() - start
    for i, sock in enumerate(sockets):
        print(f"Task {i + 1}: {len(sock.poem)} bytes of poetry")
    print(f"Got {len(addresses)} poems in {elapsed}")
    return [s.poem for s in sockets]


if __name__ == "__main__":
    main()
