"""New-connection-per-request load: connect, read 3 bytes, close, for SECONDS.

    python -m bench.conn_client PORT SECONDS

Prints the number of completed connections. Closes with SO_LINGER 0 (a reset), so the
client leaves no TIME_WAIT sockets behind and never runs out of ephemeral ports.
"""

from __future__ import annotations

import socket
import struct
import sys
import time


def main() -> None:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    address = ("127.0.0.1", port)
    linger = struct.pack("ii", 1, 0)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.connect(address)
        got = b""
        while len(got) < 3:
            chunk = s.recv(3 - len(got))
            if not chunk:
                break
            got += chunk
        s.close()
        if got == b"hi\n":
            done += 1
    print(done, flush=True)


if __name__ == "__main__":
    main()
