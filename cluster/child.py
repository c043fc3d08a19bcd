"""What every child of the supervisor (gateway, worker) does first: read its spec, tag
its logs, title itself, die with the supervisor, leave Ctrl-C to the supervisor."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import traceback
from typing import Any

import msgpack

from cluster import logs, process
from cluster.error import ReactorNotRunning
from cluster.process import HELD_SIGNALS

BOOT_ERROR = 3  # exit status of a child that could not even load the application

log = logging.getLogger("cluster")


def setup(role: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``NODE --name NAME --spec JSON``; return the spec with ``node`` added."""
    parser = argparse.ArgumentParser(prog=f"python -m {role}")
    parser.add_argument("node")
    parser.add_argument("--name", required=True)
    parser.add_argument("--spec", required=True, help="JSON from the supervisor")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    spec["node"] = args.node
    logs.setup(role, spec.get("log_level", "INFO"), spec.get("log_format", "text"), args.node)
    process.setTitle(f"cl-{args.name}-{args.node}"[:15])
    process.dieWithParent(spec["supervisor_pid"])
    # Ctrl-C reaches the whole foreground process group; the supervisor alone decides
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, lambda *_: os._exit(0))  # fast stop, unless overridden
    # the supervisor spawned us with these blocked, so none arrived before the handlers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    return spec


def bootFailed(controlFd: int, what: str) -> None:
    """Tell the supervisor the app could not be loaded (with the traceback); exit."""
    text = traceback.format_exc()
    log.error("%s:\n%s", what, text)
    try:
        sock = socket.socket(fileno=controlFd)
        sock.send(msgpack.packb(["boot_error", f"{what}:\n{text}"]))
    except OSError:
        pass
    raise SystemExit(BOOT_ERROR)


def stopReactor(reactor: Any) -> None:
    """Stop ``reactor`` unless it is stopping already (a second reason to stop, such as
    a lost supervisor during a drain, changes nothing)."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass
