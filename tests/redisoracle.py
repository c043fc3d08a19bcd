"""A real redis-server for the tests that compare the store with Redis (the oracle)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from cluster.harness import free_port


@contextmanager
def redis_server(*options: str) -> Iterator[int]:
    """Start ``redis-server`` on a free 127.0.0.1 port with no persistence (and
    ``options``); yield its port; kill it by PID afterwards. Skips the test where Debian's
    redis-server package is not installed."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redis-oracle-")  # (whatever it writes goes there)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", workdir, *options],
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
        shutil.rmtree(workdir, ignore_errors=True)


def replies(port: int, commands: list[list[str]], protocol: int = 2,
            flush: bool = True) -> list:
    """Send ``commands`` one by one on one connection (after FLUSHALL when ``flush``);
    each reply as redis-py parses it in ``protocol`` (RESP3: maps as dicts, sets as
    sets, doubles as floats), an error as ('ERR', its first sentence)."""
    conn = redis.Connection(port=port, protocol=protocol, socket_timeout=10)
    out = []
    try:
        if flush:
            conn.send_command("FLUSHALL")
            conn.read_response()
        for command in commands:
            conn.send_command(*command)
            try:
                out.append(_plain(conn.read_response()))
            except redis.ResponseError as e:
                out.append(_plain(e))
    finally:
        conn.disconnect()
    return out


def _plain(reply):
    """An error (alone or inside a reply, as EXEC's) as ('ERR', its first sentence)."""
    if isinstance(reply, redis.ResponseError):
        return ("ERR", str(reply).split(".")[0])
    if isinstance(reply, list):
        return [_plain(r) for r in reply]
    return reply


def assert_same(commands: list[list[str]], ours: list, theirs: list,
                unordered: frozenset[str] = frozenset(), skip=lambda command: False) -> None:
    """Each of our replies equals Redis's; for the commands named in ``unordered``
    (members of sets, random picks...), as sorted lists."""
    for command, mine, reference in zip(commands, ours, theirs, strict=True):
        if skip(command):
            continue
        if command[0].upper() in unordered and isinstance(reference, list | set):
            assert sorted(mine, key=repr) == sorted(reference, key=repr), command
        else:
            assert mine == reference, (command, mine, reference)
