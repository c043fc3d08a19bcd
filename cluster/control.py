"""The supervisor's control socket (``control.sock`` in the run directory, mode 0600):
one JSON request per line, one JSON reply per line. ``cluster status``, ``stop`` and
``reload`` are its clients."""

from __future__ import annotations

import json
import socket
from typing import Any

from cluster import rundir
from cluster.basic import LineReceiver
from cluster.protocol import Factory

COMMANDS = ("status", "stop", "quit", "reload", "ttin", "ttou")


class ControlProtocol(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 4096

    def lineReceived(self, line: bytes) -> None:
        supervisor = self.factory.supervisor
        try:
            cmd = json.loads(line)["cmd"]
        except (ValueError, KeyError, TypeError):
            return self.reply({"error": "expected a JSON object with a 'cmd' key"})
        if cmd not in COMMANDS:
            return self.reply({"error": f"unknown command {cmd!r}", "commands": COMMANDS})
        if cmd == "status":
            return self.reply(supervisor.status())
        if cmd in ("stop", "quit"):
            self.reply({"ok": True})
            # this connection stays open until the supervisor exits, so a client can
            # wait for the end by reading until EOF
            supervisor.stop(fast=cmd == "quit")
            return None
        # reload, ttin, ttou: the answer comes when the operation is over
        operation = {"reload": supervisor.reload, "ttin": supervisor.grow,
                     "ttou": supervisor.shrink}[cmd]
        operation().addCallbacks(lambda _: self.reply({"ok": True}),
                                 lambda f: self.reply({"ok": False,
                                                       "error": f.getErrorMessage()}))
        return None

    def reply(self, obj: Any) -> None:
        self.sendLine(json.dumps(obj).encode())


class ControlFactory(Factory):
    protocol = ControlProtocol

    def __init__(self, supervisor: Any) -> None:
        self.supervisor = supervisor


class NotRunning(Exception):
    """No cluster of that name answers."""


def request(name: str, cmd: str, waitForExit: float = 0.0, timeout: float = 30.0) -> Any:
    """Send ``cmd`` to the cluster ``name``; return the decoded reply (waiting up to
    ``timeout`` seconds for it). With ``waitForExit`` seconds, also wait that long for the
    supervisor to close the socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(rundir.controlPath(name))
        except OSError as e:
            raise NotRunning(f"no cluster named {name!r} is running ({e.strerror})") from e
        sock.settimeout(timeout)
        sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        reply = json.loads(data)
        if waitForExit:
            sock.settimeout(waitForExit)
            try:
                while sock.recv(4096):
                    pass
            except TimeoutError:
                reply["timed_out"] = True
        return reply
    finally:
        sock.close()
