"""CONFIG SET, and the settings it changes that the store acts on: ``timeout`` (idle
clients are closed after that many seconds, as Redis does; subscribers and blocked
clients excepted) and ``maxmemory`` with the ``noeviction`` policy (past it, measured as
the worker's resident memory every 100 ms, commands that write answer ``-OOM``; reads
and deletes go on). The other settings CONFIG SET takes only tune what OBJECT ENCODING
reports. CONFIG SET applies on every worker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import psutil

from cluster.store import clients, commands, resp, serverinfo
from cluster.store.keyspace import Keyspace

OOM = resp.error("OOM command not allowed when used memory > 'maxmemory'.")
_MEMORY = re.compile(rb"(\d+)(b|k|kb|m|mb|g|gb)?", re.IGNORECASE)
_UNITS = {b"": 1, b"b": 1, b"k": 1000, b"kb": 1024, b"m": 1000**2, b"mb": 1024**2,
          b"g": 1000**3, b"gb": 1024**3}
_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
             "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction")
TUNING = ("hash-max-listpack-entries", "hash-max-listpack-value", "set-max-intset-entries",
          "zset-max-listpack-entries", "zset-max-listpack-value", "list-max-listpack-size")
SETTABLE = {"timeout", "maxmemory", "maxmemory-policy", *TUNING}
_DELETES = {b"DEL", b"UNLINK", b"GETDEL", b"HDEL", b"SREM", b"ZREM", b"LPOP", b"RPOP",
            b"SPOP", b"ZPOPMIN", b"ZPOPMAX", b"LREM", b"LTRIM", b"PERSIST", b"EXPIRE",
            b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT", b"ZREMRANGEBYSCORE", b"ZREMRANGEBYRANK",
            b"ZREMRANGEBYLEX", b"FLUSHALL", b"FLUSHDB"}  # they free memory: never refused
over = False  # the worker's memory is past maxmemory


def _failed(name: str, why: str) -> bytes:
    return resp.error(f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
                      f"{why}")


def parse(args: list[bytes]) -> dict[str, str] | bytes:
    """CONFIG SET name value [name value ...]: the new values, or the error."""
    if len(args) < 4 or len(args) % 2:
        return resp.error("ERR wrong number of arguments for 'config|set' command")
    out: dict[str, str] = {}
    for i in range(2, len(args), 2):
        name, value = args[i].decode(errors="replace").lower(), args[i + 1]
        name = serverinfo.ALIASES.get(name, name)
        if name in out:
            return _failed(name, "duplicate parameter")
        if name == "timeout" or name in TUNING:
            if not value.lstrip(b"-").isdigit() or len(value) > 20:
                return _failed(name, "argument couldn't be parsed into an integer")
            if name == "timeout" and not 0 <= int(value) <= 2**31 - 1:
                return _failed(name, "argument must be between 0 and 2147483647 inclusive")
            out[name] = str(int(value))
        elif name == "maxmemory":
            m = _MEMORY.fullmatch(value)
            if m is None:
                return _failed(name, "argument must be a memory value")
            out[name] = str(int(m[1]) * _UNITS[(m[2] or b"").lower()])
        elif name == "maxmemory-policy":
            if value.decode(errors="replace").lower() not in _POLICIES:
                return _failed(name, "argument(s) must be one of the following: "
                               + ", ".join(_POLICIES))
            if value.lower() != b"noeviction":
                return _failed(name, "this store does not evict keys: only noeviction")
            out[name] = "noeviction"
        else:
            return resp.error(f"ERR Unknown option or number of arguments for CONFIG SET "
                              f"- '{args[i].decode(errors='replace')}'")
    return out


def apply(values: dict[str, str]) -> None:
    """Take the new settings on this worker."""
    serverinfo.SETTINGS.update(values)
    if int(serverinfo.SETTINGS["maxmemory"]):
        commands.wrapWrites(_limited, _DELETES)  # (writes that may use memory: -OOM)


# -- idle clients ------------------------------------------------------------------------

def closeIdle(now: float | None = None) -> int:
    """Close the connections idle for longer than ``timeout`` (0: never)."""
    limit = int(serverinfo.SETTINGS["timeout"])
    if not limit:
        return 0
    now = time.monotonic() if now is None else now
    idle = [p for p in clients.connections if now - p.active > limit
            and not (p.channels or p.patterns or p.blocked)]
    for proto in idle:
        proto.transport.abortConnection()
    return len(idle)


# -- maxmemory -----------------------------------------------------------------------------

_process = psutil.Process()


def sampleMemory() -> None:
    """Every 100 ms: is the worker past maxmemory?"""
    global over
    limit = int(serverinfo.SETTINGS["maxmemory"])
    over = bool(limit) and _process.memory_info().rss > limit


def _limited(function: Callable[..., Any], name: bytes) -> Callable[..., Any]:
    def command(ks: Keyspace, args: list[bytes], *rest: Any, **kw: Any) -> Any:
        return OOM if over else function(ks, args, *rest, **kw)

    return command
