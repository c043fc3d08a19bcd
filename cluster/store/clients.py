"""CLIENT LIST, INFO, ID and KILL: the store's connections, on every worker.

Each worker keeps its own connections; CLIENT LIST and CLIENT KILL ask every worker
(``store.clients``, ``store.killClients``; on a worker's own port, as a Redis Cluster
node, that worker only). A connection's id is unique in the cluster: the worker's
index in its low bits, so ids never collide between workers.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

from cluster import rpc
from cluster.store import resp, typed

WORKER_BITS = 12  # ids hold the worker's index in their low bits (4096 workers)
connections: set[Any] = set()  # this worker's (RespStore)
# a random start per process: ids of a worker's successor (reload) differ from its own
_counter = itertools.count(random.randrange(1, 1 << 20) << 10)
NO_SUCH_CLIENT = resp.error("ERR No such client")
_TYPES = (b"normal", b"pubsub", b"master", b"replica", b"slave")


def newId(node: Any) -> int:
    """A new connection's id on the worker of RPC node ``node``: its place among every
    worker of the cluster (of every host) in the low bits."""
    names = node.nodes()
    index = names.index(node.node) if node.node in names else 0
    return next(_counter) << WORKER_BITS | index % (1 << WORKER_BITS)


def flags(proto: Any) -> str:
    out = ("P" if proto.channels or proto.patterns else "") + \
        ("x" if proto.multi is not None else "") + ("b" if proto.blocked else "")
    return out or "N"


def describe(proto: Any) -> bytes:
    """One connection as a line of CLIENT LIST, with Redis's field names."""
    peer, host = proto.transport.getPeer(), proto.transport.getHost()
    now = time.monotonic()
    last = proto.lastCommand
    fields = [
        ("id", proto.id), ("addr", f"{peer.host}:{peer.port}"),
        ("laddr", f"{host.host}:{host.port}"), ("fd", proto.transport.fileno()),
        ("name", (proto.name or b"").decode(errors="replace")),
        ("age", int(now - proto.created)), ("idle", int(now - proto.active)),
        ("flags", flags(proto)), ("db", 0), ("sub", len(proto.channels)),
        ("psub", len(proto.patterns)), ("ssub", 0),
        ("multi", -1 if proto.multi is None else len(proto.multi)),
        ("omem", getattr(proto.transport, "_queued", 0)), ("events", "r"),
        ("cmd", _commandName(last)),
        ("user", "default"), ("resp", 3 if proto.r3 else 2),
    ]
    return " ".join(f"{k}={v}" for k, v in fields).encode()


_CONTAINERS = {b"client", b"config", b"cluster", b"command", b"pubsub", b"object",
               b"memory", b"script", b"function", b"xinfo", b"acl"}  # (with subcommands)


def _commandName(args: list[bytes] | None) -> str:
    """A request's command as CLIENT LIST names it (``client|list``)."""
    if not args:
        return "NULL"
    name = args[0].lower()
    if name in _CONTAINERS and len(args) > 1:
        name += b"|" + args[1].lower()
    return name.decode(errors="replace")


def _typeOf(proto: Any) -> bytes:
    return b"pubsub" if proto.channels or proto.patterns else b"normal"


def _unknownType(kind: bytes) -> bytes:
    return resp.error(f"ERR Unknown client type '{kind.decode(errors='replace')}'")


def listFilter(args: list[bytes]) -> tuple[bytes | None, set[int] | None] | bytes:
    """CLIENT LIST [TYPE type] [ID id ...]: (type, ids), or the error."""
    kind, ids, i = None, None, 2
    while i < len(args):
        option = args[i].upper()
        if option == b"TYPE" and i + 1 < len(args):
            kind = args[i + 1].lower()
            if kind not in _TYPES:
                return _unknownType(args[i + 1])
            i += 2
        elif option == b"ID" and i + 1 < len(args):
            ids = set()
            for arg in args[i + 1:]:
                n = typed.toInt(arg)
                if n is None or n <= 0:
                    return resp.error("ERR Invalid client ID")
                ids.add(n)
            i = len(args)
        else:
            return typed.SYNTAX
    return kind, ids


def killFilter(args: list[bytes], me: Any) -> dict[str, Any] | bytes:
    """CLIENT KILL's filters (the old form ``addr`` too), or the error."""
    if len(args) == 3:
        return {"addr": args[2].decode(errors="replace"), "old": True, "skipme": False}
    if len(args) % 2:
        return typed.SYNTAX
    out: dict[str, Any] = {"skipme": True, "me": me.id}
    for i in range(2, len(args), 2):
        option, value = args[i].upper(), args[i + 1]
        if option == b"ID":
            n = typed.toInt(value)
            if n is None or n <= 0:
                return resp.error("ERR client-id should be greater than 0")
            out["id"] = n
        elif option in (b"ADDR", b"LADDR", b"USER"):
            out[option.decode().lower()] = value.decode(errors="replace")
        elif option == b"TYPE":
            if value.lower() not in _TYPES:
                return _unknownType(value)
            out["type"] = value.lower().decode()
        elif option == b"SKIPME":
            if value.lower() not in (b"yes", b"no"):
                return typed.SYNTAX
            out["skipme"] = value.lower() == b"yes"
        elif option == b"MAXAGE":
            n = typed.toInt(value)
            if n is None:
                return typed.NOT_INTEGER
            out["maxage"] = n
        else:
            return typed.SYNTAX
    return out


def _matches(proto: Any, f: dict[str, Any]) -> bool:
    peer, host = proto.transport.getPeer(), proto.transport.getHost()
    return not (
        ("id" in f and proto.id != f["id"])
        or ("addr" in f and f"{peer.host}:{peer.port}" != f["addr"])
        or ("laddr" in f and f"{host.host}:{host.port}" != f["laddr"])
        or ("user" in f and f["user"] != "default")
        or ("type" in f and _typeOf(proto).decode() != f["type"])
        or ("maxage" in f and time.monotonic() - proto.created < f["maxage"])
        or (f["skipme"] and proto.id == f.get("me")))


@rpc.expose("store.clients")
def _clients(kind: bytes | None, ids: list[int] | None) -> list[bytes]:
    """This worker's connections as CLIENT LIST lines (of ``kind``, among ``ids``)."""
    wanted = None if ids is None else set(ids)
    return [describe(p) for p in sorted(connections, key=lambda p: p.id)
            if (kind is None or _typeOf(p) == kind) and (wanted is None or p.id in wanted)]


@rpc.expose("store.killClients")
def _kill(f: dict[str, Any]) -> int:
    """Close this worker's connections that match the CLIENT KILL filters ``f``."""
    if type(f) is not dict:
        raise TypeError("store.killClients takes the filters")
    doomed = [p for p in connections if _matches(p, f)]
    for proto in doomed:  # (at once: one that does not read its replies goes too)
        proto.transport.abortConnection()
    return len(doomed)


_ARITY = {b"ID": 2, b"INFO": 2, b"GETNAME": 2, b"SETNAME": 3, b"SETINFO": 4, b"LIST": -2,
          b"KILL": -3, b"NO-EVICT": 3, b"NO-TOUCH": 3}


def command(proto: Any, args: list[bytes]) -> Any:
    """CLIENT ID, INFO, GETNAME, SETNAME, SETINFO, LIST, KILL, NO-EVICT, NO-TOUCH for
    ``proto``, the connection asking (its reply, or a Deferred of it)."""
    sub = args[1].upper()
    arity = _ARITY.get(sub)
    if arity is None:
        return resp.error(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                          f"Try CLIENT HELP.")
    if len(args) != arity if arity > 0 else len(args) < -arity:
        return resp.error(f"ERR wrong number of arguments for "
                          f"'client|{sub.decode().lower()}' command")
    if sub == b"ID":
        return resp.integer(proto.id)
    if sub == b"INFO":
        return resp.bulk(describe(proto) + b"\n")
    if sub == b"GETNAME":
        return resp.bulk(proto.name)
    if sub == b"SETNAME":
        if any(c <= 32 or c >= 127 for c in args[2]):
            return resp.error("ERR Client names cannot contain spaces, newlines or special "
                              "characters.")
        proto.name = args[2] or None
        return resp.OK
    if sub in (b"NO-EVICT", b"NO-TOUCH"):
        return resp.OK if args[2].upper() in (b"ON", b"OFF") else typed.SYNTAX
    if sub == b"SETINFO":
        return resp.OK
    if sub == b"LIST":
        wanted = listFilter(args)
        if type(wanted) is bytes:
            return wanted
        kind, ids = wanted
        return proto._everywhere("store.clients", (kind, None if ids is None else list(ids)),
                                 lambda parts: resp.bulk(b"".join(
                                     line + b"\n" for part in parts for line in part)))
    f = killFilter(args, proto)
    if type(f) is bytes:
        return f
    old = f.pop("old", False)
    return proto._everywhere("store.killClients", (f,), lambda counts: (
        (resp.OK if sum(counts) else NO_SUCH_CLIENT) if old else resp.integer(sum(counts))))
