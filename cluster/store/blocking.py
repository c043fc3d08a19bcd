"""The blocking list commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH) on the worker that owns
their keys.

A command that finds its lists empty waits there as a Deferred (its connection's reply,
or the reply of the ``store.block`` call from the connection's worker), in line behind
the clients that blocked on the same key before it. A command that pushes onto a list
someone waits for wakes them once it is done, in the order they came, each popping as
its command would have; inside a transaction, after the EXEC. A client that goes, a
worker that drains, or a shard that moves away unblocks its waiters: they answer
``-UNBLOCKED`` (the client retries) rather than hold an element nobody will read.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from cluster.defer import Deferred
from cluster.store import lists, resp, typed
from cluster.store.keyspace import Keyspace, WrongType

NOT_FLOAT = resp.error("ERR timeout is not a float or out of range")
NEGATIVE = resp.error("ERR timeout is negative")
UNBLOCKED = "UNBLOCKED the blocking command was ended: {} (retry it)"
FOREVER = 10 * 365 * 86400.0  # a timeout of 0: the RPC carrying it waits this long
_MOVES = (b"BLMOVE", b"BRPOPLPUSH")  # (their destination may be waited for in turn)


def timeoutOf(args: list[bytes]) -> float | bytes:
    """The command's timeout in seconds (its last argument; 0: FOREVER), or the error."""
    seconds = typed.toFloat(args[-1], finite=True)
    if seconds is None:
        return NOT_FLOAT
    if seconds < 0:
        return NEGATIVE
    return seconds or FOREVER


def _pop(ks: Keyspace, args: list[bytes], r3: bool, end: str) -> bytes | None:
    """BLPOP/BRPOP at once: [key, element] off the first non-empty list, or None."""
    for key in args[1:-1]:
        items = typed.fetch(ks, key, deque)
        if items:
            value = items.popleft() if end == "LEFT" else items.pop()
            typed.changed(ks, key, items)
            if ks.aof is not None:  # (the pop it was, for the append-only file)
                ks.aof.log([b"LPOP" if end == "LEFT" else b"RPOP", key])
            return resp.array([resp.bulk(key), resp.bulk(value)])
    for key in args[1:-1]:
        typed.fetch(ks, key, deque)  # -WRONGTYPE for any key of another type
    return None


def _move(ks: Keyspace, args: list[bytes]) -> bytes | None:
    """BLMOVE/BRPOPLPUSH at once: LMOVE's reply, or None if the source is empty."""
    reply = lists.lmove(ks, args)
    if reply == resp.NIL:
        return None
    if ks.aof is not None and reply[:1] != b"-":
        ks.aof.log(args)
    return reply


def attempt(ks: Keyspace, args: list[bytes], r3: bool) -> bytes | None:
    """Run a blocking command as if it did not block: its reply, or None (it would
    wait). Raises WrongType."""
    name = args[0].upper()
    if name == b"BLPOP":
        return _pop(ks, args, r3, "LEFT")
    if name == b"BRPOP":
        return _pop(ks, args, r3, "RIGHT")
    if name == b"BRPOPLPUSH":
        return _move(ks, [b"LMOVE", args[1], args[2], b"RIGHT", b"LEFT"])
    return _move(ks, [b"LMOVE", *args[1:5]])  # BLMOVE


def syntax(args: list[bytes]) -> bytes | None:
    """The error for a malformed blocking command (before its timeout is read), or None."""
    if args[0].upper() == b"BLMOVE" and not {args[3].upper(), args[4].upper()} <= {
            b"LEFT", b"RIGHT"}:
        return typed.SYNTAX
    why = timeoutOf(args)
    return why if type(why) is bytes else None


def keysOf(args: list[bytes]) -> list[bytes]:
    name = args[0].upper()
    return args[1:-1] if name in (b"BLPOP", b"BRPOP") else args[1:3]


def nothing(args: list[bytes], r3: bool) -> bytes:
    """The reply when the timeout passes (or inside MULTI, where nothing blocks)."""
    return typed.nilArray(r3) if args[0].upper() in (b"BLPOP", b"BRPOP") else resp.NIL


def inTransaction(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
    """A blocking command inside MULTI/EXEC: it does not block, as in Redis."""
    why = syntax(args)
    if why is not None:
        return why
    reply = attempt(ks, args, r3)
    return nothing(args, r3) if reply is None else reply


class Waiter:
    __slots__ = ("args", "r3", "deferred", "timer", "token")

    def __init__(self, args: list[bytes], r3: bool, token: Any) -> None:
        self.args, self.r3, self.token = args, r3, token
        self.deferred = Deferred()
        self.timer: Any = None


class Blocked:
    """The clients waiting on this worker's lists, by key and by token."""

    def __init__(self, ks: Keyspace) -> None:
        self.ks = ks
        self.byKey: dict[bytes, deque[Waiter]] = {}
        self.byToken: dict[Any, Waiter] = {}
        self.ready: list[bytes] = []  # keys pushed onto while someone waits for them
        self.holding = 0  # a transaction runs: wake nobody until its end
        self._tokens = itertools.count()

    def token(self) -> int:
        return next(self._tokens)

    def block(self, args: list[bytes], r3: bool, token: Any, reactor: Any) -> bytes | Deferred:
        """Run the command, or make it wait (its timeout counted from now)."""
        why = syntax(args)
        if why is not None:
            return why
        try:
            reply = attempt(self.ks, args, r3)
        except WrongType:
            return typed.WRONGTYPE
        if reply is not None:
            if args[0].upper() in _MOVES and self.byKey:
                self.pushed(args[2:3])
            return reply
        waiter = Waiter(args, r3, token)
        for key in keysOf(args):
            self.byKey.setdefault(key, deque()).append(waiter)
        self.byToken[token] = waiter
        timeout = timeoutOf(args)
        if timeout < FOREVER:
            waiter.timer = reactor.callLater(timeout, self._end, waiter, nothing(args, r3))
        return waiter.deferred

    def _end(self, waiter: Waiter, reply: bytes) -> None:
        self.byToken.pop(waiter.token, None)
        for key in keysOf(waiter.args):
            line = self.byKey.get(key)
            if line is not None:
                try:
                    line.remove(waiter)
                except ValueError:
                    pass
                if not line:
                    del self.byKey[key]
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.deferred.callback(reply)

    def unblock(self, token: Any, why: str) -> None:
        """The client is gone or its worker drains: its command ends with -UNBLOCKED."""
        waiter = self.byToken.get(token)
        if waiter is not None:
            self._end(waiter, resp.error(UNBLOCKED.format(why)))

    def unblockAll(self, why: str, keep: Callable[[bytes], bool] = lambda key: False) -> None:
        """End every wait on a key not ``keep`` (a shard moved away, the worker stops)."""
        for waiter in list(self.byToken.values()):
            if not all(keep(k) for k in keysOf(waiter.args)):
                self._end(waiter, resp.error(UNBLOCKED.format(why)))

    def forgetGone(self, alive: Callable[[tuple[str, int]], bool]) -> None:
        """End the waits of clients whose worker process is gone (their token names its
        node and pid): nobody would read what they took."""
        for waiter in list(self.byToken.values()):
            if not alive((waiter.token[0], waiter.token[1])):
                self._end(waiter, resp.error(UNBLOCKED.format("its client's worker is gone")))

    def pushed(self, keys: list[bytes]) -> None:
        """``keys`` were written: wake who waits for them (now, or after the transaction)."""
        self.ready += [k for k in keys if k in self.byKey]
        if self.ready and not self.holding:
            self.serve()

    def serve(self) -> None:
        """Wake waiters of the ready keys, first come first served, while their lists
        hold elements (a BLMOVE may make its destination ready in turn)."""
        ks = self.ks
        while self.ready:
            key = self.ready.pop(0)
            line = self.byKey.get(key)
            while line and _filled(ks, key):
                waiter = line[0]
                try:
                    reply = attempt(ks, waiter.args, waiter.r3)
                except WrongType:
                    reply = typed.WRONGTYPE
                if reply is None:  # (it found another key of its own empty too)
                    break
                self._end(waiter, reply)
                if waiter.args[0].upper() in _MOVES and waiter.args[2] in self.byKey:
                    self.ready.append(waiter.args[2])
                line = self.byKey.get(key)


def _filled(ks: Keyspace, key: bytes) -> bool:
    value = ks.value(key)
    return type(value) is deque and len(value) > 0


def waking(function: Callable[..., bytes],
           keys: Callable[[list[bytes]], list[bytes]]) -> Callable[..., bytes]:
    """``function`` (a command that may put elements on lists), then the wake-up of
    whoever waits for its keys (``Keyspace.waiters``, a ``Blocked``)."""
    def command(ks: Keyspace, args: list[bytes], r3: bool = False) -> bytes:
        reply = function(ks, args, r3)
        waiters = ks.waiters
        if waiters is not None and waiters.byKey:
            waiters.pushed(keys(args))
        return reply

    return command
