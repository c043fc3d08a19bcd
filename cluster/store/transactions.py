"""MULTI/EXEC for the store: what may be queued, which keys a transaction touches, and
running one, all of it at once, on the worker that owns its keys.

A transaction runs inside one call on one reactor, so nothing else runs between its
commands: that is its atomicity. Its keys (and its watched keys) must all be served by
one worker; the server answers ``-CROSSSLOT`` otherwise and routes the rest.
"""

from __future__ import annotations

import time
from typing import Any

from cluster.store import commands, resp, typed
from cluster.store.keyspace import Keyspace, WrongType

_SINGLE = commands.SINGLE_KEY
_MULTI = commands.MULTI_KEY
# the other commands a transaction may hold: name -> arity (as SINGLE_KEY's)
_OTHERS = {b"MGET": -2, b"MSET": -3, b"DEL": -2, b"EXISTS": -2, b"UNLINK": -2,
           b"TOUCH": -2, b"PING": -1, b"ECHO": 2, b"TIME": 1,
           **{name: entry[1] for name, entry in _MULTI.items()}}
_TRANSACTION = {b"MULTI", b"EXEC", b"DISCARD", b"WATCH", b"UNWATCH"}
EXECABORT = resp.error("EXECABORT Transaction discarded because of previous errors.")
CROSSSLOT = resp.error("CROSSSLOT Keys in request don't hash to the same slot (a "
                       "transaction's keys, and the keys it watches, must be served by "
                       "one worker)")
QUEUED = b"+QUEUED\r\n"
_PAIRS = (b"MSET", b"MSETNX")  # key value key value ...


def refusal(args: list[bytes], known: bool) -> bytes | None:
    """Why ``args`` cannot be queued in a transaction (an error reply), or None.
    ``known``: the server knows the command (outside transactions)."""
    name = args[0].upper()
    entry = _SINGLE.get(name)
    arity = entry[1] if entry is not None else _OTHERS.get(name)
    if arity is None:
        if known or name in _TRANSACTION:
            return resp.error(f"ERR {name.decode(errors='replace')} is not allowed in a "
                              f"transaction on this store")
        return resp.error(f"ERR unknown command '{args[0].decode(errors='replace')}'")
    n = len(args)
    if (n != arity if arity > 0 else n < -arity) or (name in _PAIRS and n % 2 == 0):
        return resp.error(f"ERR wrong number of arguments for "
                          f"'{args[0].decode(errors='replace').lower()}' command")
    return None


def keysOf(args: list[bytes]) -> list[bytes]:
    """The keys a queued command touches."""
    name = args[0].upper()
    if name in _SINGLE:
        return [args[1]]
    entry = _MULTI.get(name)
    if entry is not None:
        finder = commands.KEYS_OF.get(name)
        if finder is not None:
            try:
                return finder(args)
            except ValueError:
                return []  # malformed: the command answers its own error where it runs
        return commands.keysAt(args, *entry[2:])
    if name == b"MSET":
        return args[1::2]
    if name in (b"MGET", b"DEL", b"EXISTS", b"UNLINK", b"TOUCH"):
        return args[1:]
    return []


def run(ks: Keyspace, requests: list[list[bytes]], watched: list[list[Any]],
        nil: bytes = resp.NIL) -> list[bytes] | None:
    """Run a transaction here, every command at once; None if a watched key changed
    since it was watched (EXEC then answers a null array). Each reply is encoded RESP,
    null as ``nil`` (the client's protocol's)."""
    for key, version in watched:
        if ks.version(key) != version:
            return None
    table = commands.SINGLE_KEY3 if nil == resp.NULL3 else _SINGLE
    waiters = ks.waiters  # clients blocked on lists wait for the end of the transaction
    if waiters is not None:
        waiters.holding += 1
    if ks.aof is not None and len(requests) > 1:
        ks.aof.log([b"MULTI"])  # (replayed whole or not at all)
    try:
        return [_execute(ks, args, nil, table) for args in requests]
    finally:
        if ks.aof is not None and len(requests) > 1:
            ks.aof.log([b"EXEC"])
        if waiters is not None:
            waiters.holding -= 1
            if waiters.ready and not waiters.holding:
                waiters.serve()


def _execute(ks: Keyspace, args: list[bytes], nil: bytes, table: dict) -> bytes:
    name = args[0].upper()
    try:
        entry = table.get(name)
        if entry is not None:
            answer = entry[0](ks, args)
            return b"".join(answer) if type(answer) is list else \
                nil if answer == resp.NIL else answer
        multi = _MULTI.get(name)
        if multi is not None:
            answer = multi[0](ks, args, nil == resp.NULL3)
            return nil if answer == resp.NIL else answer
        if name == b"MGET":
            return resp.bulks(commands.mget(ks, args[1:]), nil)
        if name == b"MSET":
            commands.mset(ks, args[1:])
            return resp.OK
        if name in (b"DEL", b"UNLINK"):
            return resp.integer(commands.delete(ks, args[1:]))
        if name in (b"EXISTS", b"TOUCH"):
            return resp.integer(commands.exists(ks, args[1:]))
        if name == b"TIME":
            return timeReply()
        if name == b"PING":
            return resp.PONG if len(args) == 1 else resp.bulk(args[1])
        return resp.bulk(args[1])  # ECHO
    except WrongType:
        return typed.WRONGTYPE
    except Exception as e:  # a value no command expects: that command fails, not EXEC
        return resp.error(f"ERR {type(e).__name__} running {args[0]!r}")


def timeReply() -> bytes:
    """TIME: the Unix time, seconds and microseconds, as two bulk strings."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return resp.array([resp.bulk(b"%d" % seconds), resp.bulk(b"%d" % micros)])


def checked(requests: Any, watched: Any, nil: Any) -> None:
    """Refuse a transaction sent by another worker that is not one (raises)."""
    if type(requests) is not list or type(watched) is not list or \
            nil not in (resp.NIL, resp.NULL3):
        raise TypeError("store.transaction takes a list of requests, of watches, and "
                        "the null to answer with")
    for args in requests:
        if type(args) is not list or not args or any(type(a) is not bytes for a in args) \
                or refusal(args, False) is not None:
            raise TypeError("store.transaction: a request that cannot be queued")
    for watch in watched:
        if type(watch) is not list or len(watch) != 2 or type(watch[0]) is not bytes \
                or type(watch[1]) is not int:
            raise TypeError("store.transaction: a watch is [key, version]")
