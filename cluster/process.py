"""Per-process housekeeping for the cluster's children: a readable title, death with the
supervisor, and the fds they inherited."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

# Held (blocked) while the supervisor spawns a child, so the child starts with them
# blocked: a SIGQUIT or SIGINT that arrives before it has set its own handlers waits
# instead of dumping core or raising KeyboardInterrupt; ``cluster.child.setup`` releases
# them once its handlers are in place.
HELD_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT})

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
except OSError:  # not glibc/musl: titles and parent-death signals are best effort
    _libc = None


def setTitle(title: str) -> None:
    """Set the process name ``ps -o comm``/``top`` show (Linux keeps 15 bytes)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(title.encode()[:15]), 0, 0, 0)


def dieWithParent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` when the parent (the supervisor, pid ``parent``) dies;
    exit now if it already has. The pid is compared, not guessed: a supervisor running
    as PID 1 (in a container) is a live parent whose pid is 1."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
