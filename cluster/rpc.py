"""Cross-process Deferreds over ZeroMQ: call a function another process exposed and get a
Deferred that fires when its reply arrives.

Every process of the cluster binds one ROUTER at an ipc:// endpoint in the cluster's 0700
run directory and opens a DEALER to a peer on first use. When the cluster spans several
hosts (``cluster.hosts``), workers and the supervisor bind a second ROUTER on tcp:// for
the other hosts, a CurveZMQ server when keys are configured (``cluster.curve``), and
dial other hosts' processes as CurveZMQ clients. A *node* (``worker-0``, ...,
``gateway``) is served by one process at a time, its *incarnation*: the supervisor
announces which process serves each node (pid and endpoint) at start and after every
change. An incarnation that dies fails the calls pending on it with ``NodeLost`` at once;
one that was replaced but still runs (a worker draining after a reload) keeps answering
what was sent to it.

Shards: a key's slot is a stable hash; a slot belongs to a node by the slot map, and
each process keeps a *route* per slot: here, another incarnation, frozen (its state is
moving: calls for it wait), or nobody (its node is down). A shard handoff freezes slots
on the old owner, moves their state, then assigns them to the new owner ahead of the
supervisor's next announcement; ``callShard`` calls carry their slot, so one that
reaches a process which no longer owns that slot is forwarded, and one for a frozen
slot waits until the move is over.

Wire format (msgpack, never pickle): a message is ``[VERSION, items]`` and an item is
``["call", id, method, args, kwargs]`` (plus the slot for ``callShard``), ``["notify",
method, args, kwargs]``, ``["pub", topic, data]``, ``["ok", id, result]``, ``["err", id,
type, message, traceback]`` or ``["part", ...]`` (a piece of an item too large for one
message, see ``cluster.rpcwire``). Items bound for one peer within one reactor iteration
travel in one message, flushed at the end of that iteration or once the batch is full.
A message or item that is malformed, truncated, over its bounds or of another version
is counted and dropped, logged once per episode; a bad item never costs its neighbours.

A call to the caller's own node skips the socket but not the rest: its arguments and
result still go through msgpack, and its Deferred fires in a later reactor iteration.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from cluster.curve import Gatekeeper, Keys
from cluster.defer import Deferred, ensureDeferred, fail, gatherFirst
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.hosts import HostMap, hostOf, localName, tcpEndpoint
from cluster.logs import Episodes
from cluster.membership import FROZEN, HERE, Membership
from cluster.membership import Peer as _Peer
from cluster.metrics import ITEMS_BOUNDS, RPC_LATENCY_BOUNDS, Histogram
from cluster.rpcwire import (
    BATCH_BYTES,
    PART_SIZE,
    Assembler,
    WireError,
    decode,
    parts,
    segments,
)
from cluster.shards import DEFAULT_SLOTS
from cluster.zmqsocket import ZmqSocket, configure, remote

log = logging.getLogger("cluster")

VERSION = 1
DEFAULT_TIMEOUT = 10.0

__all__ = [
    "expose", "callRemote", "callShard", "broadcast", "notify", "publish", "subscribe",
    "nodeName", "nodes", "shardOf", "RemoteError", "NoSuchMethod", "NodeLost",
]


class RemoteError(Exception):
    """The remote function raised: its exception's type name, message and traceback."""

    def __init__(self, remoteType: str, remoteMessage: str, remoteTraceback: str = "") -> None:
        super().__init__(f"{remoteType}: {remoteMessage}")
        self.remoteType = remoteType
        self.remoteMessage = remoteMessage
        self.remoteTraceback = remoteTraceback


class NoSuchMethod(RemoteError):
    """The remote node exposes no function by that name."""


class NodeLost(Exception):
    """The node died, was replaced, or is not up: the call's outcome is unknown."""


class Large:
    """Wraps what an exposed function returns when it holds big bytes values (a few
    MiB or more): they are sent in parts straight from where they are, never copied
    whole. (Callers say the same of their arguments with ``callPeer(..., large=True)``.)"""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


# -- exposing --------------------------------------------------------------------------------

_exposed: dict[str, Callable[..., Any]] = {}


def expose(nameOrFunction: str | Callable[..., Any]) -> Any:
    """Make a function callable from other nodes: ``@expose`` registers it by its
    ``__name__``, ``@expose("name")`` by that name. Only exposed names are reachable."""
    if callable(nameOrFunction):
        _exposed[nameOrFunction.__name__] = nameOrFunction
        return nameOrFunction

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _exposed[nameOrFunction] = function
        return function

    return register


@expose("cluster.ping")
def _ping() -> int:
    """The supervisor's liveness probe: answered only if this process's RPC socket is
    read and written, not just its loop alive."""
    return os.getpid()


# -- the node --------------------------------------------------------------------------------

class _Call:
    __slots__ = ("deferred", "peer", "timer", "sent")

    def __init__(self, deferred: Deferred, peer: _Peer, timer: Any, sent: float) -> None:
        self.deferred = deferred
        self.peer = peer
        self.timer = timer
        self.sent = sent


class _Box:
    """Items bound for one destination in this iteration, and the calls among them."""

    __slots__ = ("items", "size", "cids")

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.size = 0
        self.cids: list[int] = []


class _Parts:
    """A big item going out in parts: the messages still to make, those ZeroMQ holds."""

    __slots__ = ("messages", "cids", "inFlight")

    def __init__(self, messages: Any, cids: list[int]) -> None:
        self.messages = messages
        self.cids = cids
        self.inFlight: deque = deque()


PARTS_IN_FLIGHT = 4  # part messages ZeroMQ may hold for one destination at a time


_LOCAL = object()  # reply address of items that never left this process


class RpcNode(Membership):
    """This process's end of the RPC mesh: its ROUTER, its DEALERs, its pending calls;
    and (``Membership``) its view of who serves each node and slot."""

    batchLimit = 32  # items per message: beyond it a batch leaves at once

    def __init__(self, reactor: Any, node: str, directory: str, workers: int,
                 slots: int = DEFAULT_SLOTS, timeout: float = DEFAULT_TIMEOUT,
                 successor: bool = False, hostMap: HostMap | None = None,
                 keys: Keys | None = None, remoteAt: str | None = None) -> None:
        """``remoteAt``: also take calls from other hosts on this tcp:// endpoint
        (``tcp://ADDRESS:*`` for a port of the system's choosing), with ``keys`` (if any)
        as a CurveZMQ server."""
        self.reactor = reactor
        self.timeout = timeout
        self.context = zmq.Context.instance()
        # (the run directory is this host's own)
        self.path = os.path.join(directory, f"rpc-{localName(node)}-{os.getpid()}.ipc")
        self.endpoint = "ipc://" + self.path
        sock = configure(self.context.socket(zmq.ROUTER))
        sock.bind(self.endpoint)
        self.router = ZmqSocket(reactor, sock, self._fromCaller)
        self.keys = keys
        self.gatekeeper = Gatekeeper(reactor, self.context, keys) if keys and remoteAt else None
        self.remoteRouter: ZmqSocket | None = None
        self.remoteEndpoint: str | None = None  # where other hosts reach this process
        if remoteAt is not None:
            sock = remote(configure(self.context.socket(zmq.ROUTER)), remoteAt)
            if keys is not None:
                keys.serve(sock)
            sock.bind(remoteAt)
            self.remoteEndpoint = sock.last_endpoint.decode()
            self.remoteRouter = ZmqSocket(
                reactor, sock, lambda frames: self._fromCaller(frames, self.remoteRouter))
        Membership.__init__(self, node, os.getpid(), self.endpoint, workers, slots, successor,
                            hostMap)
        self._heldCalls: list[tuple] = []  # callShard calls for frozen slots
        self.pending: dict[int, _Call] = {}
        self.subscribers: dict[str, list[Callable[[str, Any], Any]]] = {}
        self.assembler = Assembler()
        self.nextId = 0
        self.nextPart = 0
        self.dropped = 0
        self.calls = 0  # calls made (all nodes)
        self.served = 0  # calls answered here
        self.messagesSent = 0
        self.itemsSent = 0
        self.errors: dict[str, int] = {"RemoteError": 0, "TimeoutError": 0, "NodeLost": 0}
        self.latency = Histogram(RPC_LATENCY_BOUNDS)  # of every call that was sent
        self.itemsPerMessage = Histogram(ITEMS_BOUNDS)
        self.lastServed = 0.0  # when a call last arrived (monotonic)
        # called before any message goes out; False: it must not (the default store's
        # appendfsync always: what the message acknowledges is not on disk)
        self.beforeSend: Callable[[], bool] | None = None
        self.badMessages = Episodes(log, f"rpc {node}: dropped a %s", reactor)
        self.sendFailures = Episodes(log, f"rpc {node}: could not send %s", reactor)
        self.notifyFailures = Episodes(log, f"rpc {node}: a notify failed: %s", reactor,
                                       level=logging.ERROR)
        # peer, router identity, (remote router, identity) or _LOCAL -> items
        self._outbox: dict[Any, _Box] = {}
        self._streams: dict[Any, deque] = {}  # destination -> big items, boxes behind them
        self._flushCall: Any = None
        self._packer = msgpack.Packer()
        self._pack = self._packer.pack
        self._head = self._packer.pack_array_header(2) + self._pack(VERSION)
        self._rebuildRoutes()

    def start(self) -> RpcNode:
        self.router.start()
        if self.remoteRouter is not None:
            self.remoteRouter.start()
        return self

    def _routesRebuilt(self) -> None:
        held, self._heldCalls = self._heldCalls, []
        for args in held:
            self._serve(*args)

    def _lose(self, peer: _Peer, why: str) -> None:
        peer.lost = True
        self._outbox.pop(peer, None)
        self._streams.pop(peer, None)
        self.assembler.forget(peer)
        for cid in sorted(cid for cid, call in self.pending.items() if call.peer is peer):
            call = self.pending.pop(cid, None)  # an errback may have cancelled it meanwhile
            if call is not None:
                self._settle(call, Failure(NodeLost(why)))
        if peer.dealer is not None:
            peer.dealer.close()
            peer.dealer = None
        if any(r is peer for r in self.route):
            self._rebuildRoutes()

    # -- calling -------------------------------------------------------------------------

    def callRemote(self, node: str, method: str, args: tuple, kwargs: dict,
                   timeout: float | None = None) -> Deferred:
        return self.callPeer(self.peers.get(node), method, args, kwargs, timeout, node=node)

    def callShard(self, key: Any, method: str, args: tuple, kwargs: dict,
                  timeout: float | None = None) -> Deferred:
        slot = self.slotOf(key)
        route = self.route[slot]
        peer = self.me if route is HERE or route is FROZEN else route or None
        return self.callPeer(peer, method, args, kwargs, timeout, slot, self.owners[slot])

    def callPeer(self, peer: _Peer | None, method: str, args: Any, kwargs: dict,
                 timeout: float | None = None, slot: int | None = None,
                 node: str | None = None, large: bool = False) -> Deferred:
        """Call ``method`` on one incarnation (None: its node is not up). ``large``: the
        arguments hold big bytes values, to be sent without being copied whole."""
        self.nextId += 1
        cid = self.nextId
        try:
            call = ["call", cid, method, list(args), kwargs]
            if slot is not None:
                call.append(slot)
            item = self._packItem(call, large and peer is not self.me)
        except Exception as e:
            return fail(TypeError(f"cannot serialize the arguments of {method}: {e}"))
        self.calls += 1
        if peer is None or peer.lost:  # fails in a later iteration, as a reply would
            why = NodeLost(f"{node or (peer and peer.node)} is not up")
            self.errors["NodeLost"] += 1
            later = self.reactor.callLater(0, lambda: d.errback(why))
            d = Deferred(lambda _: later.cancel())
            return d
        d = Deferred(lambda _: self._cancel(cid))
        delay = self.timeout if timeout is None else timeout
        timer = self.reactor.callLater(delay, self._timedOut, cid, peer.node, method, delay)
        self.pending[cid] = _Call(d, peer, timer, timer.time - delay)
        self._enqueue(peer if peer is not self.me else _LOCAL, item, cid)
        return d

    def notify(self, node: str, method: str, args: tuple, kwargs: dict) -> None:
        peer = self.peers.get(node)
        if peer is None or peer.lost:
            log.debug("notify %s to %s dropped: the node is not up", method, node)
            return
        self._enqueue(peer if peer is not self.me else _LOCAL,
                      self._pack(["notify", method, list(args), kwargs]))

    def publish(self, topic: str, data: Any) -> None:
        item = self._pack(["pub", topic, data])
        for peer in set(self.peers.values()):
            if not peer.lost:
                self._enqueue(peer if peer is not self.me else _LOCAL, item)

    def subscribe(self, topic: str, callback: Callable[[str, Any], Any]) -> None:
        self.subscribers.setdefault(topic, []).append(callback)

    def unsubscribe(self, topic: str, callback: Callable[[str, Any], Any]) -> None:
        callbacks = self.subscribers.get(topic, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self.subscribers.pop(topic, None)

    def _cancel(self, cid: int) -> None:
        call = self.pending.pop(cid, None)
        if call is not None and call.timer.active():
            call.timer.cancel()

    def _timedOut(self, cid: int, node: str, method: str, delay: float) -> None:
        call = self.pending.pop(cid, None)
        if call is not None:
            self.errors["TimeoutError"] += 1
            self.latency.observe(delay)
            call.deferred.errback(TimeoutError(f"{method} on {node}: no reply within {delay}s"))

    def _settle(self, call: _Call, result: Any) -> None:
        if call.timer.active():
            call.timer.cancel()
        self.latency.observe(self.reactor.seconds() - call.sent)
        if isinstance(result, Failure):
            kind = ("NodeLost" if isinstance(result.value, NodeLost) else
                    "TimeoutError" if isinstance(result.value, TimeoutError) else
                    "RemoteError")
            self.errors[kind] += 1
            call.deferred.errback(result)
        else:
            call.deferred.callback(result)

    # -- batching ------------------------------------------------------------------------

    def _packItem(self, item: list, large: bool) -> bytes | list:
        """An item packed: one bytes, or (``large``) segments that refer to its big values."""
        if large:
            pieces = segments(item, msgpack.packb, [])
            return pieces if sum(len(p) for p in pieces) > PART_SIZE else b"".join(pieces)
        return self._pack(item)

    def _enqueue(self, to: Any, item: bytes | list, cid: int | None = None) -> None:
        if type(item) is list or (len(item) > PART_SIZE and to is not _LOCAL):
            self._sendParts(to, item, cid)
            return
        box = self._outbox.get(to)
        if box is None:
            box = self._outbox[to] = _Box()
            if self._flushCall is None:
                self._flushCall = self.reactor.callLater(0, self._flush)
        box.items.append(item)
        box.size += len(item)
        if cid is not None:
            box.cids.append(cid)
        if (len(box.items) >= self.batchLimit or box.size >= BATCH_BYTES) and to is not _LOCAL:
            # a full batch goes at once: the peer starts on it while we make the next
            del self._outbox[to]
            self._send(to, box)

    def flushNow(self) -> None:
        """Send what is queued now instead of at the end of this reactor iteration (for
        callers that gather their own calls until the end of the iteration)."""
        if self._flushCall is not None:
            if self._flushCall.active():
                self._flushCall.cancel()
            self._flush()

    def _flush(self) -> None:
        """End of the iteration: one message per destination with everything for it."""
        self._flushCall = None
        outbox, self._outbox = self._outbox, {}
        local = outbox.pop(_LOCAL, None)
        for to, box in outbox.items():
            self._send(to, box)
        if local:
            self._handle(msgpack.unpackb(self._message(local.items, False),
                                         strict_map_key=False)[1],
                         _LOCAL, None)

    def _send(self, to: Any, box: _Box) -> None:
        stream = self._streams.get(to)
        if stream is not None:
            stream.append(box)  # behind a big item still going out in parts
        else:
            self._sendMessage(to, self._message(box.items), box.cids)

    def _sendMessage(self, to: Any, payload: bytes, cids: list[int],
                     track: bool = False) -> Any:
        """One message to one destination (the send's tracker, or True); if it cannot
        be sent, the calls in it (``cids``) fail with NodeLost, nothing else does, and
        the answer is None."""
        self.messagesSent += 1
        if self.beforeSend is not None and not self.beforeSend():
            self.sendFailures.record("a message held back: what it answers is not stored")
            for cid in cids:
                call = self.pending.pop(cid, None)
                if call is not None:
                    self._settle(call, Failure(NodeLost("this node cannot store its writes")))
            return None
        try:
            if isinstance(to, _Peer):
                if to.lost:
                    return None  # _lose failed its calls already
                if to.dealer is None:
                    to.dealer = self._dial(to)
                return to.dealer.send([payload], track) or True
            router = self.router
            if type(to) is tuple:  # a caller on another host
                router, to = to
            if not router.closed:
                return router.send([to, payload], track) or True
            return None
        except zmq.ZMQError as e:
            where = to.node if isinstance(to, _Peer) else "a caller"
            self.sendFailures.record(f"a message to {where}: {e}")
            for cid in cids:
                call = self.pending.pop(cid, None)
                if call is not None:
                    self._settle(call, Failure(NodeLost(f"could not send to {where}: {e}")))
            return None

    def _sendParts(self, to: Any, item: bytes | list, cid: int | None) -> None:
        """Send an item too large for one message as parts, after whatever was queued
        for ``to`` before it. The parts go out paced: at most ``PARTS_IN_FLIGHT`` of them
        held by ZeroMQ at a time, each made only as it goes, so a big item costs its
        size once more, not twice; what is queued for ``to`` meanwhile waits behind it,
        so order holds."""
        box = self._outbox.pop(to, None)
        stream = self._streams.get(to)
        if stream is None:
            if box is not None:
                self._send(to, box)
            stream = self._streams[to] = deque()
        elif box is not None:
            stream.append(box)
        self.nextPart += 1
        pieces = item if type(item) is list else [item]
        stream.append(_Parts(parts(pieces, self.nextPart, msgpack.packb, VERSION),
                             [] if cid is None else [cid]))
        self._pump(to)

    def _pump(self, to: Any) -> None:
        stream = self._streams.get(to)
        while stream:
            work = stream[0]
            if isinstance(work, _Box):
                stream.popleft()
                self._sendMessage(to, self._message(work.items), work.cids)
                continue
            inFlight = work.inFlight
            while inFlight and inFlight[0].done:
                inFlight.popleft()
            if len(inFlight) >= PARTS_IN_FLIGHT:
                self.reactor.callLater(0.001, self._pump, to)  # ZeroMQ is still sending
                return
            message = next(work.messages, None)
            tracker = None if message is None else self._sendMessage(to, message, work.cids,
                                                                     track=True)
            if tracker is None:  # all sent, or sending failed (its call has failed)
                stream.popleft()
            else:
                inFlight.append(tracker)
        self._streams.pop(to, None)

    def _message(self, items: list[bytes], outgoing: bool = True) -> bytes:
        """``[VERSION, items]`` from items packed one by one (so a bad one fails alone)."""
        if outgoing:
            self.itemsSent += len(items)
            self.itemsPerMessage.observe(len(items))
        return self._head + self._packer.pack_array_header(len(items)) + b"".join(items)

    def _dial(self, peer: _Peer) -> ZmqSocket:
        sock = configure(self.context.socket(zmq.DEALER))
        try:
            if peer.endpoint.startswith("tcp://"):
                remote(sock, peer.endpoint)
                if self.keys is not None:
                    self.keys.dial(sock, hostOf(peer.node) or "")
            sock.connect(peer.endpoint)
        except (KeyError, zmq.ZMQError) as e:
            sock.close(linger=0)
            raise zmq.ZMQError(msg=f"cannot dial {peer.node} at {peer.endpoint}: "
                               f"{e!r}") from e
        return ZmqSocket(self.reactor, sock, lambda frames: self._fromCallee(peer, frames)).start()

    # -- receiving -----------------------------------------------------------------------

    def _decode(self, payload: Any) -> list | None:
        try:
            msg = decode(payload)
        except WireError as e:
            self._bad(f"message ({e})")
            return None
        if not (isinstance(msg, list) and len(msg) == 2 and isinstance(msg[1], list)):
            self._bad("message that is not [version, items]")
            return None
        if msg[0] != VERSION:
            self._bad(f"message of version {msg[0]!r} (this node speaks {VERSION})")
            return None
        return msg[1]

    def _bad(self, why: str) -> None:
        self.dropped += 1
        self.badMessages.record(why)

    def _fromCaller(self, frames: list[Any], via: ZmqSocket | None = None) -> None:
        """Calls that came in on our ROUTER (``via``: the one other hosts call)."""
        if len(frames) != 2:
            self._bad(f"message of {len(frames)} frames")
            return
        items = self._decode(frames[1])
        if items is not None:
            caller = bytes(frames[0])
            self._handle(items, caller if via is None else (via, caller), None)

    def _fromCallee(self, peer: _Peer, frames: list[Any]) -> None:
        if peer.lost:
            return
        if len(frames) != 1:
            self._bad(f"reply of {len(frames)} frames")
            return
        items = self._decode(frames[0])
        if items is not None:
            self._handle(items, None, peer)

    def _handle(self, items: list, replyTo: Any, fromPeer: _Peer | None) -> None:
        """Serve calls (replying to ``replyTo``) and settle replies (from ``fromPeer``);
        an item that is bad, or whose handling fails, is dropped alone."""
        for item in items:
            kind = item[0] if type(item) is list and item else None
            try:
                if kind == "call" and replyTo is not None:
                    if len(item) == 6:
                        _, cid, method, args, kwargs, slot = item
                        if not isinstance(slot, int) or not 0 <= slot < self.slots:
                            raise ValueError(f"slot {slot!r}")
                    else:
                        (_, cid, method, args, kwargs), slot = item, None
                    self._serve(cid, method, args, kwargs, replyTo, slot)
                elif kind == "notify" and replyTo is not None:
                    _, method, args, kwargs = item
                    self._serve(None, method, args, kwargs, None, None)
                elif kind == "pub" and replyTo is not None:
                    _, topic, data = item
                    self._deliver(topic, data)
                elif kind in ("ok", "err") and (fromPeer is not None or replyTo is _LOCAL):
                    self._reply(item, fromPeer or self.me)
                elif kind == "part" and replyTo is not _LOCAL:
                    whole = self._assembled(replyTo if fromPeer is None else fromPeer, item)
                    if whole is not None:
                        self._handle([whole], replyTo, fromPeer)
                else:
                    self._bad(f"item {kind!r}")
            except (WireError, TypeError, ValueError) as e:
                self._bad(f"malformed {kind!r} item ({e})")
            except Exception:
                self._bad(f"{kind!r} item whose handling failed:\n{traceback.format_exc()}")

    def _assembled(self, source: Any, part: list) -> Any:
        """The item, decoded, once ``part`` completes it (its buffer freed right away)."""
        buffer = self.assembler.feed(source, part)
        return None if buffer is None else decode(buffer)

    def _reply(self, item: list, peer: _Peer) -> None:
        if item[0] == "ok":
            _, cid, result = item
        else:
            _, cid, remoteType, message, tb = item
            if not all(isinstance(x, str) for x in (remoteType, message, tb)):
                raise ValueError("error fields must be strings")
            result = Failure(_remoteException(remoteType, message, tb))
        call = self.pending.get(cid) if isinstance(cid, int) else None
        if call is None or call.peer is not peer:
            return  # a late reply after a timeout or a cancel: dropped quietly
        del self.pending[cid]
        self._settle(call, result)

    # -- serving -------------------------------------------------------------------------

    def _serve(self, cid: int | None, method: str, args: list, kwargs: dict,
               replyTo: Any, slot: int | None) -> None:
        if not (isinstance(method, str) and isinstance(args, list) and isinstance(kwargs, dict)
                and (not kwargs or all(isinstance(k, str) for k in kwargs))):
            raise TypeError("call needs a method name, an args list and a kwargs map")
        if slot is not None:
            route = self.route[slot]
            if route is FROZEN:  # its state is moving: wait until it is somewhere
                self._heldCalls.append((cid, method, args, kwargs, replyTo, slot))
                return
            if route is not HERE:  # it moved on: pass the call to whoever has it now
                peer = route or None
                d = self.callPeer(peer, method, args, kwargs, None, slot, self.owners[slot])
                d.addCallbacks(lambda r: self._succeeded(cid, method, replyTo, r),
                               lambda f: self._failed(cid, method, replyTo, f))
                return
        function = _exposed.get(method)
        if function is None:
            if cid is not None:
                self._answer(replyTo, ["err", cid, "NoSuchMethod",
                                       f"{self.node} exposes no {method!r}", ""])
            else:
                self._bad(f"notify for unknown method {method!r}")
            return
        self.served += 1
        self.lastServed = time.monotonic()
        try:
            result = function(*args, **kwargs)
        except Exception:
            self._failed(cid, method, replyTo, Failure())
            return
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            result = ensureDeferred(result)
        if isinstance(result, Deferred):
            result.addCallbacks(lambda r: self._succeeded(cid, method, replyTo, r),
                                lambda f: self._failed(cid, method, replyTo, f))
        else:
            self._succeeded(cid, method, replyTo, result)

    def _succeeded(self, cid: int | None, method: str, replyTo: Any, result: Any) -> None:
        if cid is None:
            return
        try:
            if type(result) is Large:
                item = self._packItem(["ok", cid, result.value], replyTo is not _LOCAL)
            else:
                item = self._pack(["ok", cid, result])
        except Exception as e:
            item = self._pack(["err", cid, "TypeError",
                               f"cannot serialize the result of {method}: {e}", ""])
        self._answerPacked(replyTo, item)

    def _failed(self, cid: int | None, method: str, replyTo: Any, failure: Failure) -> None:
        if cid is None:  # nobody to tell: logged once per episode (the first in full)
            self.notifyFailures.record(f"{method}: {failure.getTraceback()}")
            return
        exc = failure.value
        if isinstance(exc, RemoteError):  # relayed (a forwarded call): passed on as it came
            self._answer(replyTo, ["err", cid, exc.remoteType, exc.remoteMessage,
                                   exc.remoteTraceback])
            return
        cls = type(exc)
        if cls in (NodeLost, TimeoutError):
            name = cls.__name__
        elif cls.__module__ == "builtins":
            name = cls.__qualname__
        else:
            name = f"{cls.__module__}.{cls.__qualname__}"
        self._answer(replyTo, ["err", cid, name, str(exc), failure.getTraceback()])

    def _answer(self, replyTo: Any, item: list) -> None:
        self._answerPacked(replyTo, self._pack(item))

    def _answerPacked(self, replyTo: Any, item: bytes | list) -> None:
        router = replyTo[0] if type(replyTo) is tuple else self.router
        if replyTo is _LOCAL or not router.closed:
            self._enqueue(replyTo, item)

    def _deliver(self, topic: str, data: Any) -> None:
        for callback in list(self.subscribers.get(topic, ())):
            try:
                callback(topic, data)
            except Exception:
                log.error("rpc %s: subscriber of %r failed:\n%s", self.node, topic,
                          traceback.format_exc())

    # -- shutting down -------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """This node's RPC numbers, for ``--metrics``."""
        return {"calls": self.calls, "served": self.served, "errors": dict(self.errors),
                "messages": self.messagesSent, "items": self.itemsSent,
                "latency": self.latency.snapshot(),
                "items_per_message": self.itemsPerMessage.snapshot()}

    def busyFor(self, quiet: float = 0.5) -> float:
        """Seconds to wait before this node can go without cutting a call off: while calls
        it made (or passes on) are unanswered, or until ``quiet`` seconds have passed
        since a call last arrived. 0 when it may go now."""
        if self.pending or self._heldCalls:
            return quiet
        return max(0.0, self.lastServed + quiet - time.monotonic())

    def close(self) -> None:
        """Fail what is pending, close every socket, remove our endpoint."""
        for peer in list(self.incarnations.values()):
            if peer is not self.me:
                self._lose(peer, f"{self.node} is shutting down")
        self._lose(self.me, f"{self.node} is shutting down")
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        self.router.close()
        if self.remoteRouter is not None:
            self.remoteRouter.close()
        if self.gatekeeper is not None:
            self.gatekeeper.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _remoteException(remoteType: str, message: str, tb: str) -> Exception:
    """What a caller sees for an ``err`` item: the same exception for errors about the
    mesh itself (a forwarded call that met a lost node or a timeout), else RemoteError."""
    if remoteType == "NoSuchMethod":
        return NoSuchMethod(remoteType, message, tb)
    if remoteType == "NodeLost":
        return NodeLost(message)
    if remoteType == "TimeoutError":
        return TimeoutError(message)
    return RemoteError(remoteType, message, tb)


# -- the process's node and the public functions ----------------------------------------------

_node: RpcNode | None = None


def install(node: RpcNode | None) -> RpcNode | None:
    """Make ``node`` the one the module functions use (the worker and gateway do this)."""
    global _node
    _node = node
    return node


def startNode(reactor: Any, spec: dict[str, Any]) -> RpcNode:
    """Bind this cluster process's node (from the supervisor's spec), make it the one the
    module functions use, and close it when the reactor shuts down."""
    hostMap = HostMap.fromSpec(spec.get("hostmap"))
    keys = None
    if hostMap is not None and spec.get("curve_keys"):
        keys = Keys.load(spec["curve_keys"], hostMap.me, [h for h, _ in hostMap.hosts])
    address = spec.get("rpc_remote")  # where other hosts reach this host's workers
    node = RpcNode(reactor, spec["node"], spec["rundir"], spec["workers"], spec["slots"],
                   spec.get("rpc_timeout", DEFAULT_TIMEOUT), bool(spec.get("successor")),
                   hostMap, keys, tcpEndpoint(address, "*") if address else None).start()
    install(node)
    reactor.addSystemEventTrigger("after", "shutdown", node.close)
    return node


def _current() -> RpcNode:
    if _node is None:
        raise RuntimeError("cluster.rpc is only available inside a cluster process "
                           "(a worker or the gateway started by `cluster run`)")
    return _node


def nodeName() -> str:
    """This process's node: ``"worker-0"`` … ``"worker-N-1"`` (``"HOST/worker-N"`` when
    the cluster spans several hosts), or ``"gateway"``."""
    return _current().node


def nodes() -> list[str]:
    """The worker node names, in order."""
    return _current().nodes()


def shardOf(key: Any) -> str:
    """The worker node that owns ``key``'s shard."""
    return _current().shardOf(key)


def callRemote(node: str, method: str, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> Deferred:
    """Call ``method`` exposed on ``node``; the Deferred fires once with its result, or
    fails with RemoteError, NoSuchMethod, TimeoutError or NodeLost."""
    return _current().callRemote(node, method, args, kwargs, timeout)


def callShard(key: Any, method: str, *args: Any, timeout: float | None = None,
              **kwargs: Any) -> Deferred:
    """``callRemote`` on the worker that owns ``key``; during a shard handoff the call
    waits for the move and then reaches the new owner."""
    return _current().callShard(key, method, args, kwargs, timeout)


def broadcast(method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Deferred:
    """Call ``method`` on every worker; fires with ``{node: result}``, or with the first
    failure (the others are consumed)."""
    node = _current()
    names = node.nodes()
    calls = [node.callRemote(name, method, args, kwargs, timeout) for name in names]
    return gatherFirst(calls).addCallback(lambda results: dict(zip(names, results,
                                                                   strict=True)))


def notify(node: str, method: str, *args: Any, **kwargs: Any) -> None:
    """Call ``method`` on ``node`` without waiting for, or getting, a reply."""
    _current().notify(node, method, args, kwargs)


def publish(topic: str, data: Any) -> None:
    """Send ``data`` to every subscriber of ``topic`` in every process, this one included."""
    _current().publish(topic, data)


def subscribe(topic: str, callback: Callable[[str, Any], Any]) -> None:
    """Call ``callback(topic, data)`` for everything published on ``topic``."""
    _current().subscribe(topic, callback)


def unsubscribe(topic: str, callback: Callable[[str, Any], Any]) -> None:
    """Undo ``subscribe``."""
    _current().unsubscribe(topic, callback)
