"""Pub/sub for the store's clients: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH
and PUBSUB, in RESP2 and RESP3.

Each worker keeps its own connections' subscriptions. PUBLISH is a call to every
worker (``store.publish``): each delivers the message to its subscribers and answers how
many it reached, so the count PUBLISH answers is the cluster's, exact as Redis's, and
the message has been handed to every subscriber's connection when it does. Calls from
one worker to another arrive in the order they were made, so one publisher's messages
reach every subscriber in order.

A subscriber that does not read its messages is disconnected once 32 MiB wait for it
(Redis's ``client-output-buffer-limit pubsub`` default), so it cannot grow the worker's
memory without bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cluster import rpc
from cluster.store import resp, typed

log = logging.getLogger("cluster")

OUTPUT_LIMIT = 32 << 20  # bytes waiting for a subscriber before it is disconnected
# what a RESP2 connection may send while subscribed (Redis's rule)
ALLOWED = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"PING",
                     b"QUIT", b"RESET"})


def push(r3: bool, *items: bytes | int | None) -> bytes:
    """A pub/sub message: RESP3's push type, or RESP2's array."""
    out = [b">%d\r\n" % len(items) if r3 else b"*%d\r\n" % len(items)]
    for item in items:
        out.append(resp.integer(item) if type(item) is int else
                   typed.nil(r3) if item is None else resp.bulk(item))
    return b"".join(out)


class Subscriptions:
    """This worker's subscribers: by channel, and by pattern."""

    def __init__(self) -> None:
        self.channels: dict[bytes, set[Any]] = {}
        self.patterns: dict[bytes, tuple[Callable[[bytes], bool], set[Any]]] = {}

    def add(self, table: dict, name: bytes, proto: Any) -> None:
        if table is self.patterns:
            entry = table.get(name)
            if entry is None:
                entry = table[name] = (typed.matcher(name), set())
            entry[1].add(proto)
        else:
            table.setdefault(name, set()).add(proto)

    def remove(self, table: dict, name: bytes, proto: Any) -> None:
        entry = table.get(name)
        if entry is None:
            return
        members = entry[1] if table is self.patterns else entry
        members.discard(proto)
        if not members:
            del table[name]

    def deliver(self, channel: bytes, message: bytes) -> int:
        """Hand ``message`` to every subscriber of ``channel`` here; how many got it."""
        count = 0
        for proto in list(self.channels.get(channel, ())):
            proto.deliver(push(proto.r3, b"message", channel, message))
            count += 1
        for pattern, (match, protos) in list(self.patterns.items()):
            if match(channel):
                for proto in list(protos):
                    proto.deliver(push(proto.r3, b"pmessage", pattern, channel, message))
                    count += 1
        return count

    def channelNames(self, pattern: bytes | None) -> list[bytes]:
        match = typed.matcher(pattern) if pattern is not None else None
        return [c for c in self.channels if match is None or match(c)]

    def counts(self, channels: list[bytes]) -> list[int]:
        return [len(self.channels.get(c, ())) for c in channels]


subscriptions = Subscriptions()


class PubSubCommands:
    """The pub/sub side of a store connection (mixed into ``RespStore``)."""

    channels: set[bytes]
    patterns: set[bytes]
    r3: bool

    def subscribeCommand(self, args: list[bytes]) -> bytes:
        """SUBSCRIBE and PSUBSCRIBE: one confirmation per name."""
        pattern = args[0].upper() == b"PSUBSCRIBE"
        mine = self.patterns if pattern else self.channels
        table = subscriptions.patterns if pattern else subscriptions.channels
        kind = b"psubscribe" if pattern else b"subscribe"
        out = []
        for name in args[1:]:
            if name not in mine:
                mine.add(name)
                subscriptions.add(table, name, self)
            out.append(push(self.r3, kind, name, len(self.channels) + len(self.patterns)))
        self._subscribedMode()
        return b"".join(out)

    def unsubscribeCommand(self, args: list[bytes]) -> bytes:
        """UNSUBSCRIBE and PUNSUBSCRIBE: the names given, or every one."""
        pattern = args[0].upper() == b"PUNSUBSCRIBE"
        mine = self.patterns if pattern else self.channels
        table = subscriptions.patterns if pattern else subscriptions.channels
        kind = b"punsubscribe" if pattern else b"unsubscribe"
        names = args[1:] or sorted(mine)
        out = []
        for name in names:
            if name in mine:
                mine.discard(name)
                subscriptions.remove(table, name, self)
            out.append(push(self.r3, kind, name, len(self.channels) + len(self.patterns)))
        if not names:
            out.append(push(self.r3, kind, None, len(self.channels) + len(self.patterns)))
        self._subscribedMode()
        return b"".join(out)

    def _unsubscribeAll(self) -> None:
        for name in self.channels:
            subscriptions.remove(subscriptions.channels, name, self)
        for name in self.patterns:
            subscriptions.remove(subscriptions.patterns, name, self)
        self.channels, self.patterns = set(), set()

    def _subscribedMode(self) -> None:
        """A RESP2 connection with subscriptions may only send pub/sub commands (its
        replies share the stream with messages); RESP3 pushes leave it free."""
        if (self.channels or self.patterns) and not self.r3:
            self.dispatch = self._dispatchSubscribed  # type: ignore[method-assign]
        else:
            self.__dict__.pop("dispatch", None)

    def _dispatchSubscribed(self, args: list[bytes]) -> bool:
        name = args[0].upper()
        why = self.refusal(args)  # type: ignore[attr-defined]
        if why is not None:  # an unknown command, a wrong arity: said first, as Redis
            self.reply(why)  # type: ignore[attr-defined]
            return True
        if name not in ALLOWED:
            self.reply(resp.error(f"ERR Can't execute '{name.decode(errors='replace').lower()}"
                                  f"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                                  f"QUIT / RESET are allowed in this context"))
            return True
        if name == b"PING":
            self.reply(push(False, b"pong", args[1] if len(args) > 1 else b""))
            return True
        return type(self).dispatch(self, args)  # type: ignore[attr-defined]

    def deliver(self, message: bytes) -> None:
        """A message for this subscriber: after the replies before it, bounded."""
        transport = self.transport  # type: ignore[attr-defined]
        if getattr(transport, "_queued", 0) > OUTPUT_LIMIT:
            log.warning("store: a subscriber that does not read its messages is "
                        "disconnected (%d MiB waiting)", OUTPUT_LIMIT >> 20)
            self._unsubscribeAll()
            transport.abortConnection()
            return
        if self.r3:
            self.push(message)  # type: ignore[attr-defined]
            return
        self.reply(message)  # type: ignore[attr-defined]
        if not self.line:  # type: ignore[attr-defined]
            self.flush()  # type: ignore[attr-defined]


@rpc.expose("store.publish")
def _publish(channel: bytes, message: bytes) -> int:
    if type(channel) is not bytes or type(message) is not bytes:
        raise TypeError("store.publish takes a channel and a message")
    return subscriptions.deliver(channel, message)


@rpc.expose("store.pubsub")
def _pubsub(sub: bytes, args: list[bytes]) -> list:
    """PUBSUB's questions for this worker: CHANNELS [pattern] (names), NUMSUB channel...
    (counts), NUMPAT (pattern names)."""
    if type(sub) is not bytes or type(args) is not list or any(type(a) is not bytes
                                                               for a in args):
        raise TypeError("store.pubsub takes a subcommand and its arguments")
    if sub == b"CHANNELS":
        return subscriptions.channelNames(args[0] if args else None)
    if sub == b"NUMSUB":
        return subscriptions.counts(args)
    return list(subscriptions.patterns)


_PUBSUB_ARITY = {b"CHANNELS": (2, 3), b"NUMSUB": (2, None), b"NUMPAT": (2, 2)}


def pubsubCombine(sub: bytes, args: list[bytes]) -> Callable[[list], bytes]:
    """How PUBSUB's per-worker answers make its reply."""
    if sub == b"CHANNELS":
        return lambda parts: resp.array([resp.bulk(c) for c in
                                         dict.fromkeys(c for p in parts for c in p)])
    if sub == b"NUMSUB":
        def numsub(parts: list[list[int]]) -> bytes:
            totals = [sum(counts) for counts in zip(*parts, strict=True)] or [0] * len(args)
            return resp.array([x for c, n in zip(args, totals, strict=True)
                               for x in (resp.bulk(c), resp.integer(n))])

        return numsub
    return lambda parts: resp.integer(len({p for part in parts for p in part}))


def pubsubCheck(args: list[bytes]) -> bytes | None:
    """PUBSUB's error for a request it cannot answer, else None."""
    sub = args[1].upper()
    limits = _PUBSUB_ARITY.get(sub)
    if limits is None:
        return resp.error(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                          f"Try PUBSUB HELP.")
    low, high = limits
    if sub == b"CHANNELS" and len(args) > high:  # (checked by its handler, in Redis)
        return resp.error(f"ERR unknown subcommand or wrong number of arguments for "
                          f"'{args[1].decode(errors='replace')}'. Try PUBSUB HELP.")
    if len(args) < low or (high is not None and len(args) > high):
        return resp.error(f"ERR wrong number of arguments for 'pubsub|{sub.decode().lower()}'"
                          f" command")
    return None
