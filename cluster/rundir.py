"""The run directory of a named cluster: its control socket and ZeroMQ endpoints.

One directory per name under a per-user parent, both mode 0700, so only the user who
started the cluster can talk to it. ``$XDG_RUNTIME_DIR`` is used when set, else /tmp.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat


def parent() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"reactor-cluster-{os.getuid()}")


# A Unix socket path holds at most 107 bytes; the longest one inside the directory is an
# RPC endpoint, "rpc-worker-NNN-PPPPPPP.ipc".
ENDPOINT_ROOM = 32
MAX_SOCKET_PATH = 107


def path(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid cluster name {name!r}")
    p = os.path.join(parent(), name)
    if len(p.encode()) + 1 + ENDPOINT_ROOM > MAX_SOCKET_PATH:
        raise ValueError(f"the run directory {p} is too long for the Unix sockets inside it "
                         f"(at most {MAX_SOCKET_PATH - 1 - ENDPOINT_ROOM} bytes): use a "
                         f"shorter --name or XDG_RUNTIME_DIR")
    return p


def controlPath(name: str) -> str:
    return os.path.join(path(name), "control.sock")


def _private_dir(p: str) -> None:
    os.makedirs(p, mode=0o700, exist_ok=True)
    st = os.lstat(p)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RuntimeError(f"{p} is not a directory owned by this user")
    os.chmod(p, 0o700)


def isLive(name: str) -> bool:
    """True when a supervisor answers on this name's control socket."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(controlPath(name))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def create(name: str) -> str:
    """Make (or reclaim from a dead cluster) the run directory; refuse a live one."""
    _private_dir(parent())
    p = path(name)
    if os.path.exists(p):
        if isLive(name):
            raise RuntimeError(f"a cluster named {name!r} is already running ({p})")
        shutil.rmtree(p)
    _private_dir(p)
    return p


def remove(name: str) -> None:
    shutil.rmtree(path(name), ignore_errors=True)
