"""``--appendonly``: the store's writes logged to its append-only file (``aof``), and the
keyspace made again from the files when a worker starts.

With persistence on, every write command of the command tables is wrapped: it is
refused with ``-MISCONF`` while the file cannot be written, and logged once it has run
without error (see ``aof`` for the commands logged as what they did). Writes outside the
tables (MSET, DEL, FLUSHALL, a woken BLPOP, a shard's handoff) log themselves through
``Keyspace.aof``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from cluster.membership import FROZEN, HERE
from cluster.shards import SLOTS
from cluster.store import aof, commands, serverinfo, transactions, typed
from cluster.store.keyspace import Keyspace

log = logging.getLogger("cluster")

# logged by what they did, not as sent (their effects are random, or logged where made)
# they write only with one of _STORES among their arguments
_STORING = {b"GEORADIUS", b"GEORADIUSBYMEMBER", b"SORT"}
_STORES = {b"STORE", b"STOREDIST"}
# what may put elements on a list a client blocks on (see blocking.waking)
_WAKERS = {b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX", b"LINSERT", b"LMOVE", b"RPOPLPUSH",
           b"RENAME", b"RENAMENX", b"SORT", b"COPY", b"RESTORE", b"BLMOVE", b"BRPOPLPUSH"}
DROP_OLDER_AFTER = 30.0  # seconds: workers starting together may still be replaying them
_SELF_LOGGED = {b"BLPOP", b"BRPOP", b"BLMOVE", b"BRPOPLPUSH"}


def begin(ks: Keyspace, directory: str, fsync: str, node: Any) -> None:
    """Open this worker's file (empty; ``recover`` and the handoffs fill it) and start
    logging every write."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    log_ = aof.AppendOnly(directory, node.node, fsync, node.reactor, ks,
                          lambda: {s for s in range(SLOTS) if node.route[s % node.slots]
                                   in (HERE, FROZEN)})
    log_.dropDeadTemporaries()
    log_.open()
    ks.aof = log_
    serverinfo.SETTINGS.update(appendonly="yes", appendfsync=fsync, dir=directory)
    commands.wrapWrites(_logged, _SELF_LOGGED)  # every write command logs itself


def recover(ks: Keyspace, slots: set[int], node: str) -> None:
    """``slots`` are served here now without having come by handoff (a first start, a
    restart after a crash or a stop, a predecessor or a move's receiver that died):
    their keys are replayed from the directory's files and written to this worker's.
    RuntimeError if a file is damaged (the worker must not serve without them)."""
    log_ = ks.aof
    for slot in slots:  # (anything held for them here is stale)
        for key in list(ks.bySlot.get(slot, ())):
            ks.delete(key)
    log_.write()
    files = log_.files()
    ks.aof = None  # (nothing replayed is logged again)
    try:
        records = aof.replay(files, ks, apply,
                             lambda path: os.path.basename(path).startswith(log_.prefix),
                             slots.__contains__)
    except (aof.Corrupt, ValueError) as e:
        raise RuntimeError(f"cannot start: {e} (a damaged append-only file: restore it, "
                           f"or move it away to start without it)") from e
    finally:
        ks.aof = log_
    if files:
        log.info("%s: replayed %d records of %d append-only file(s): %d keys", node,
                 records, len(files), len(ks))
    log_.append(b"".join(aof.dump(ks, slots)))


def apply(ks: Keyspace, args: list[bytes], current: Callable[[bytes], bool]) -> None:
    """Redo one record, for the keys ``current`` says it holds the latest of (replay:
    nothing is logged meanwhile)."""
    name = args[0].upper()
    if name == b"MSET":
        pairs = [x for i in range(1, len(args) - 1, 2) if current(args[i])
                 for x in args[i:i + 2]]
        commands.mset(ks, pairs)
    elif name in (b"DEL", b"UNLINK"):
        commands.delete(ks, [k for k in args[1:] if current(k)])
    elif name == b"FLUSHALL":
        for key in [k for k in ks.data if current(k)]:
            ks.delete(key)
    elif name in commands.SINGLE_KEY:
        if current(args[1]):
            commands.SINGLE_KEY[name][0](ks, args)
    elif name in commands.MULTI_KEY:
        keys = transactions.keysOf(args)
        stale = [k for k in dict.fromkeys(keys) if not current(k)]
        if len(stale) == len(set(keys)):
            return
        # keys of a slot that moved since: their state comes from a later owner's file
        kept = {k: (ks.value(k), ks.expires.get(k)) for k in stale}
        kept = {k: (None if v is None else typed.fromPlain(typed.plain(v)), d)
                for k, (v, d) in kept.items()}
        commands.MULTI_KEY[name][0](ks, args, False)
        for key, (value, deadline) in kept.items():
            ks.delete(key)
            if value is not None:
                ks.set(key, value)
                if deadline is not None:
                    ks.expireAt(key, deadline)
    else:
        raise aof.Corrupt(f"{args[0]!r} is not a command this store writes")


def _logged(function: Callable[..., Any], name: bytes) -> Callable[..., Any]:
    relative = name in aof.RELATIVE_EXPIRY  # what to log besides the command: its expiry
    storing = name in _STORING
    wakes = name in _WAKERS  # a client it wakes takes its element after it is logged
    record = aof.record

    def command(ks: Keyspace, args: list[bytes], *rest: Any, **kw: Any) -> Any:
        log_ = ks.aof
        if log_ is None:
            return function(ks, args, *rest, **kw)
        if log_.failed is not None:
            why = log_.usable()
            if why is not None:
                return why
        waiters = ks.waiters if wakes else None
        if waiters is not None:
            waiters.holding += 1
            try:
                reply = function(ks, args, *rest, **kw)
            finally:
                waiters.holding -= 1
        else:
            reply = function(ks, args, *rest, **kw)
        if type(reply) is bytes and reply[:1] != b"-" and not (
                storing and not _STORES & {a.upper() for a in args}):
            data = record(_asDone(name, args, reply) if name == b"SPOP" else args)
            if relative:
                deadline = ks.expires.get(args[1])
                if deadline is not None and ks.exists(args[1]):
                    data += aof.expiryRecord(ks, args[1], deadline)
            log_.append(data)
        if waiters is not None and waiters.ready and not waiters.holding:
            waiters.serve()
        return reply

    return command


def _asDone(name: bytes, args: list[bytes], reply: bytes) -> list[bytes]:
    """The record that redoes ``args`` as it went: SPOP as SREM of what it took."""
    if name != b"SPOP":
        return args
    return [b"SREM", args[1], *_bulks(reply)]


def _bulks(reply: bytes) -> list[bytes]:
    """The bulk strings of a reply (a bulk string, an array or a set of them)."""
    out, pos = [], 0
    while True:
        start = reply.find(b"$", pos)
        if start < 0:
            return out
        eol = reply.index(b"\r\n", start)
        length = int(reply[start + 1:eol])
        if length < 0:
            return out
        out.append(reply[eol + 2:eol + 2 + length])
        pos = eol + 4 + length


