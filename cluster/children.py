"""The supervisor's handle on each process it starts: the process, its pidfd, its channel.

Signals go through the pidfd, never ``os.kill(pid)``: a pidfd names one process for as
long as it is open, so a signal can never reach a recycled pid, nor pid 0 (the whole
process group) for a process that never started. Starting a process either succeeds
whole or leaves nothing behind (no socket, no unreaped child).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

from cluster import channel
from cluster.defer import Deferred
from cluster.error import CONNECTION_DONE
from cluster.hosts import workerNode
from cluster.process import HELD_SIGNALS

log = logging.getLogger("cluster")

def signalName(number: int) -> str:
    """``SIGTERM``, ``SIGRTMIN+3``, or ``signal 99``: any number, never an exception."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


def describeExit(returncode: int) -> str:
    """What a Popen return code means, for logs and errors."""
    if returncode < 0:
        return f"signal {signalName(-returncode)}"
    return f"exit status {returncode}"


class ChildDied(Exception):
    """A child exited before it was ready."""


class BootFailed(ChildDied):
    """A child could not load the application (the text is its traceback)."""


class Child:
    """One process the supervisor started (or is about to start)."""

    def __init__(self, role: str, index: int | None, successor: bool = False,
                 host: str | None = None) -> None:
        self.role = role
        self.index = index
        # host: this host's name when the cluster spans several (its workers' node names
        # carry it, so they are unique cluster-wide)
        self.node = "gateway" if role == "gateway" else workerNode(host, index)
        self.successor = successor  # started to take over from a running one
        self.ready: Deferred | None = Deferred() if successor else None
        self.state = "starting"
        self.started = time.monotonic()
        self.lastBeat = self.started
        self.pinging = False
        self.stats: dict[str, Any] = {}
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.channel: channel.Channel | None = None
        self.watcher: ExitWatcher | None = None
        self.handoffEnd: socket.socket | None = None  # workers: the gateway's end, our copy
        self.retiring = False  # replaced or removed: its exit is expected
        self.bootError: str | None = None
        self.killed = False
        self.rpcEndpoint: str | None = None  # where its RPC node listens, once ready
        self.remoteEndpoint: str | None = None  # where other hosts reach it (several hosts)

    @property
    def pid(self) -> int | None:
        """The process id, or None before the process exists."""
        return self.proc.pid if self.proc is not None else None

    def start(self, argv: list[str], spec: dict[str, Any], passFds: list[int], reactor: Any,
              onMessage: Callable[[Child, Any, list[int]], None],
              onExit: Callable[[Child], None]) -> None:
        """Start the process with ``spec`` (plus its end of a new control channel) and
        watch it. Raises OSError or psutil.Error, having released everything it made."""
        mine, theirs = channel.pair()
        try:
            spec = {**spec, "control_fd": theirs.fileno()}
            held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
            try:
                self.proc = subprocess.Popen(
                    [*argv, "--spec", json.dumps(spec)], pass_fds=[theirs.fileno(), *passFds])
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
            self.watcher = ExitWatcher(self, onExit)
            self.ps = psutil.Process(self.proc.pid)
            self.ps.cpu_percent()  # prime: the next call reports usage since now
        except BaseException:
            mine.close()
            self._abandon()
            raise
        finally:
            theirs.close()
        self.channel = channel.Channel(
            mine, reactor, lambda msg, fds: onMessage(self, msg, fds)).start()
        reactor.addReader(self.watcher)

    def _abandon(self) -> None:
        """Undo a start that failed half way: kill and reap the process if there is one."""
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()
        self.closeHandoff()

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process is alive; a no-op otherwise."""
        watcher = self.watcher
        if watcher is None or watcher.fd < 0:
            return
        try:
            signal.pidfd_send_signal(watcher.fd, sig)
        except ProcessLookupError:
            pass  # exited; the watcher reaps it

    def closeHandoff(self) -> None:
        if self.handoffEnd is not None:
            self.handoffEnd.close()
            self.handoffEnd = None

    def failReady(self, error: Exception) -> None:
        """It exited before it was ready: whoever waits on ``ready`` hears why."""
        ready, self.ready = self.ready, None
        if ready is not None and not ready.called:
            ready.errback(error)

    def __repr__(self) -> str:
        return f"<Child {self.node} pid={self.pid} {self.state}>"


class ExitWatcher:
    """A pidfd, readable once the child has exited (no SIGCHLD races, no polling); it is
    also what signals are sent through."""

    def __init__(self, child: Child, onExit: Callable[[Child], None]) -> None:
        self.child = child
        self.onExit = onExit
        self.fd = os.pidfd_open(child.proc.pid)

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return f"exit watcher of {self.child.node}"

    def doRead(self) -> Any:
        return CONNECTION_DONE

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def connectionLost(self, reason: Any) -> None:
        self.close()
        self.onExit(self.child)


def childArgv(role: str, node: str, name: str) -> list[str]:
    """The command line of a child: a fresh interpreter running its role's package."""
    return [sys.executable, "-m", role, node, "--name", name]
