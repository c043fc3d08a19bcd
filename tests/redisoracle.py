"""A real redis-server for the tests that compare the store with Redis (the oracle)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cluster.harness import free_port


@contextmanager
def redis_server(*options: str) -> Iterator[int]:
    """Start ``redis-server`` on a free 127.0.0.1 port with no persistence (and
    ``options``); yield its port; kill it by PID afterwards. Skips the test where Debian's
    redis-server package is not installed."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()
