"""Cross-process Deferreds over ZeroMQ: call a function another process exposed and get a
Deferred that fires when its reply arrives.

Every node (each worker, and the gateway) binds one ROUTER at an ipc:// endpoint in the
cluster's 0700 run directory and opens a DEALER to a peer on first use. The supervisor
announces which process serves each node (pid and endpoint) at start and after every
change; a node that dies or is replaced fails the calls pending on it with ``NodeLost``
at once, and its DEALER is dropped with whatever was still queued for it.

Wire format (msgpack, never pickle): a message is ``[VERSION, items]`` and an item is
``["call", id, method, args, kwargs]``, ``["notify", method, args, kwargs]``,
``["pub", topic, data]``, ``["ok", id, result]`` or ``["err", id, type, message,
traceback]``. Items bound for one peer within one reactor iteration travel in one message
(replies too), flushed at the end of that iteration. A message that is malformed,
truncated, oversized or of another version is counted and dropped with one log line; a
reply fires only a Deferred that is pending on the very peer it came from.

A call to the caller's own node skips the socket but not the rest: its arguments and
result still go through msgpack, and its Deferred fires in a later reactor iteration.
"""

from __future__ import annotations

import logging
import os
import traceback
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from cluster.defer import Deferred, ensureDeferred, fail, gatherFirst
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.shards import DEFAULT_SLOTS, keyBytes, ownerOfSlot
from cluster.zmqsocket import ZmqSocket, configure

log = logging.getLogger("cluster")

VERSION = 1
DEFAULT_TIMEOUT = 10.0
MAX_MESSAGE = 64 << 20

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


# -- the node --------------------------------------------------------------------------------

class _Peer:
    """One incarnation (one process) of a node: where it listens and what we await from it."""

    def __init__(self, node: str, pid: int, endpoint: str | None) -> None:
        self.node = node
        self.pid = pid
        self.endpoint = endpoint
        self.dealer: ZmqSocket | None = None
        self.lost = False


class _Call:
    __slots__ = ("deferred", "peer", "timer")

    def __init__(self, deferred: Deferred, peer: _Peer, timer: Any) -> None:
        self.deferred = deferred
        self.peer = peer
        self.timer = timer


_LOCAL = object()  # reply address of items that never left this process


class RpcNode:
    """This process's end of the RPC mesh: its ROUTER, its DEALERs, its pending calls."""

    batchLimit = 32  # items per message: beyond it a batch leaves at once

    def __init__(self, reactor: Any, node: str, directory: str, workers: int,
                 slots: int = DEFAULT_SLOTS, timeout: float = DEFAULT_TIMEOUT,
                 maxMessage: int = MAX_MESSAGE) -> None:
        self.reactor = reactor
        self.node = node
        self.workers = workers
        self.slots = slots
        self._table: list[str] | None = None  # the owner of each slot, once asked
        self.timeout = timeout
        self.maxMessage = maxMessage
        self.context = zmq.Context.instance()
        self.path = os.path.join(directory, f"rpc-{node}-{os.getpid()}.ipc")
        self.endpoint = "ipc://" + self.path
        sock = configure(self.context.socket(zmq.ROUTER))
        sock.bind(self.endpoint)
        self.router = ZmqSocket(reactor, sock, self._fromCaller)
        self.me = _Peer(node, os.getpid(), None)
        self.peers: dict[str, _Peer] = {node: self.me}
        self.pending: dict[int, _Call] = {}
        self.subscribers: dict[str, list[Callable[[str, Any], Any]]] = {}
        self.nextId = 0
        self.dropped = 0
        self.calls = 0  # calls made (all nodes)
        self.served = 0  # calls answered here
        self.messagesSent = 0
        self._outbox: dict[Any, list[bytes]] = {}  # peer, router identity or _LOCAL -> items
        self._flushCall: Any = None
        self._packer = msgpack.Packer()
        self._pack = self._packer.pack
        self._head = self._packer.pack_array_header(2) + self._pack(VERSION)

    def start(self) -> RpcNode:
        self.router.start()
        return self

    # -- membership ----------------------------------------------------------------------

    def setPeers(self, peers: dict[str, Any], workers: int | None = None) -> None:
        """The supervisor's word on who serves each node: ``{node: [pid, endpoint]}``.
        An incarnation that is gone from it (died, replaced) is lost."""
        if workers is not None and workers != self.workers:
            self.workers = workers
            self._table = None
        for node, peer in list(self.peers.items()):
            if peer is self.me:
                continue
            now = peers.get(node)
            if now is None or now[0] != peer.pid:
                self._lose(peer, f"{node} (pid {peer.pid}) is gone")
                del self.peers[node]
        for node, (pid, endpoint) in peers.items():
            if node != self.node and node not in self.peers:
                self.peers[node] = _Peer(node, pid, endpoint)

    def _lose(self, peer: _Peer, why: str) -> None:
        peer.lost = True
        self._outbox.pop(peer, None)
        for cid in sorted(cid for cid, call in self.pending.items() if call.peer is peer):
            call = self.pending.pop(cid, None)  # an errback may have cancelled it meanwhile
            if call is not None:
                self._settle(call, Failure(NodeLost(why)))
        if peer.dealer is not None:
            peer.dealer.close()
            peer.dealer = None

    def nodes(self) -> list[str]:
        return [f"worker-{i}" for i in range(self.workers)]

    def shardOf(self, key: Any) -> str:
        """The node owning ``key``: a slot table lookup (``cluster.shards`` decides)."""
        table = self._table
        if table is None:
            table = self._table = [f"worker-{ownerOfSlot(s, self.workers, self.slots)}"
                                   for s in range(self.slots)]
        return table[zlib.crc32(key if type(key) is bytes else keyBytes(key)) % self.slots]

    # -- calling -------------------------------------------------------------------------

    def callRemote(self, node: str, method: str, args: tuple, kwargs: dict,
                   timeout: float | None = None) -> Deferred:
        self.nextId += 1
        cid = self.nextId
        try:
            item = self._pack(["call", cid, method, list(args), kwargs])
        except Exception as e:
            return fail(TypeError(f"cannot serialize the arguments of {method}: {e}"))
        self.calls += 1
        peer = self.peers.get(node)
        if peer is None:  # fails in a later iteration, as a reply would; or is cancelled
            later = self.reactor.callLater(0, lambda: d.errback(NodeLost(f"{node} is not up")))
            d = Deferred(lambda _: later.cancel())
            return d
        d = Deferred(lambda _: self._cancel(cid))
        delay = self.timeout if timeout is None else timeout
        timer = self.reactor.callLater(delay, self._timedOut, cid, node, method, delay)
        self.pending[cid] = _Call(d, peer, timer)
        self._enqueue(peer if peer is not self.me else _LOCAL, item)
        return d

    def notify(self, node: str, method: str, args: tuple, kwargs: dict) -> None:
        peer = self.peers.get(node)
        if peer is None:
            log.debug("notify %s to %s dropped: the node is not up", method, node)
            return
        self._enqueue(peer if peer is not self.me else _LOCAL,
                      self._pack(["notify", method, list(args), kwargs]))

    def publish(self, topic: str, data: Any) -> None:
        item = self._pack(["pub", topic, data])
        for peer in list(self.peers.values()):
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
            call.deferred.errback(TimeoutError(f"{method} on {node}: no reply within {delay}s"))

    def _settle(self, call: _Call, result: Any) -> None:
        if call.timer.active():
            call.timer.cancel()
        if isinstance(result, Failure):
            call.deferred.errback(result)
        else:
            call.deferred.callback(result)

    # -- batching ------------------------------------------------------------------------

    def _enqueue(self, to: Any, item: bytes) -> None:
        box = self._outbox.get(to)
        if box is None:
            self._outbox[to] = [item]
            if self._flushCall is None:
                self._flushCall = self.reactor.callLater(0, self._flush)
        else:
            box.append(item)
            if len(box) >= self.batchLimit and to is not _LOCAL:
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
        for to, items in outbox.items():
            self._send(to, items)
        if local:
            self._handle(msgpack.unpackb(self._message(local), strict_map_key=False)[1],
                         _LOCAL, None)

    def _send(self, to: Any, items: list[bytes]) -> None:
        payload = self._message(items)
        self.messagesSent += 1
        if isinstance(to, _Peer):
            if to.lost:
                return
            if to.dealer is None:
                to.dealer = self._dial(to)
            to.dealer.send([payload])
        elif not self.router.closed:
            self.router.send([to, payload])

    def _message(self, items: list[bytes]) -> bytes:
        """``[VERSION, items]`` from items packed one by one (so a bad one fails alone)."""
        return self._head + self._packer.pack_array_header(len(items)) + b"".join(items)

    def _dial(self, peer: _Peer) -> ZmqSocket:
        sock = configure(self.context.socket(zmq.DEALER))
        sock.connect(peer.endpoint)
        return ZmqSocket(self.reactor, sock, lambda frames: self._fromCallee(peer, frames)).start()

    # -- receiving -----------------------------------------------------------------------

    def _decode(self, payload: bytes) -> list | None:
        if len(payload) > self.maxMessage:
            self._bad(f"oversized message ({len(payload)} bytes)")
            return None
        try:
            msg = msgpack.unpackb(payload, strict_map_key=False)
        except Exception as e:
            self._bad(f"undecodable message ({e})")
            return None
        if not (isinstance(msg, list) and len(msg) == 2 and isinstance(msg[1], list)):
            self._bad("message is not [version, items]")
            return None
        if msg[0] != VERSION:
            self._bad(f"message of version {msg[0]!r} (this node speaks {VERSION})")
            return None
        return msg[1]

    def _bad(self, why: str) -> None:
        self.dropped += 1
        log.warning("rpc %s: dropped a %s; %d dropped so far", self.node, why, self.dropped)

    def _fromCaller(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self._bad(f"message of {len(frames)} frames")
            return
        items = self._decode(frames[1])
        if items is not None:
            self._handle(items, frames[0], None)

    def _fromCallee(self, peer: _Peer, frames: list[bytes]) -> None:
        if peer.lost:
            return
        if len(frames) != 1:
            self._bad(f"reply of {len(frames)} frames")
            return
        items = self._decode(frames[0])
        if items is not None:
            self._handle(items, None, peer)

    def _handle(self, items: list, replyTo: Any, fromPeer: _Peer | None) -> None:
        """Serve calls (replying to ``replyTo``) and settle replies (from ``fromPeer``)."""
        for item in items:
            kind = item[0] if isinstance(item, list) and item else None
            try:
                if kind == "call" and replyTo is not None:
                    _, cid, method, args, kwargs = item
                    self._serve(cid, method, args, kwargs, replyTo)
                elif kind == "notify" and replyTo is not None:
                    _, method, args, kwargs = item
                    self._serve(None, method, args, kwargs, None)
                elif kind == "pub" and replyTo is not None:
                    _, topic, data = item
                    self._deliver(topic, data)
                elif kind in ("ok", "err") and (fromPeer is not None or replyTo is _LOCAL):
                    self._reply(item, fromPeer or self.me)
                else:
                    self._bad(f"item {kind!r}")
            except (TypeError, ValueError) as e:
                self._bad(f"malformed {kind!r} item ({e})")

    def _reply(self, item: list, peer: _Peer) -> None:
        if item[0] == "ok":
            _, cid, result = item
        else:
            _, cid, remoteType, message, tb = item
            if not all(isinstance(x, str) for x in (remoteType, message, tb)):
                raise ValueError("error fields must be strings")
            cls = NoSuchMethod if remoteType == "NoSuchMethod" else RemoteError
            result = Failure(cls(remoteType, message, tb))
        call = self.pending.get(cid) if isinstance(cid, int) else None
        if call is None or call.peer is not peer:
            return  # a late reply after a timeout or a cancel: dropped quietly
        del self.pending[cid]
        self._settle(call, result)

    # -- serving -------------------------------------------------------------------------

    def _serve(self, cid: int | None, method: str, args: list, kwargs: dict,
               replyTo: Any) -> None:
        if not (isinstance(method, str) and isinstance(args, list) and isinstance(kwargs, dict)
                and (not kwargs or all(isinstance(k, str) for k in kwargs))):
            raise TypeError("call needs a method name, an args list and a kwargs map")
        function = _exposed.get(method)
        if function is None:
            if cid is not None:
                self._answer(replyTo, ["err", cid, "NoSuchMethod",
                                       f"{self.node} exposes no {method!r}", ""])
            else:
                log.warning("rpc %s: notify for unknown method %r", self.node, method)
            return
        self.served += 1
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
            item = self._pack(["ok", cid, result])
        except Exception as e:
            item = self._pack(["err", cid, "TypeError",
                               f"cannot serialize the result of {method}: {e}", ""])
        self._answerPacked(replyTo, item)

    def _failed(self, cid: int | None, method: str, replyTo: Any, failure: Failure) -> None:
        if cid is None:
            log.error("rpc %s: notify %s failed:\n%s", self.node, method,
                      failure.getTraceback())
            return
        exc = failure.value
        cls = type(exc)
        name = cls.__qualname__ if cls.__module__ == "builtins" else \
            f"{cls.__module__}.{cls.__qualname__}"
        self._answer(replyTo, ["err", cid, name, str(exc), failure.getTraceback()])

    def _answer(self, replyTo: Any, item: list) -> None:
        self._answerPacked(replyTo, self._pack(item))

    def _answerPacked(self, replyTo: Any, item: bytes) -> None:
        if replyTo is _LOCAL or not self.router.closed:
            self._enqueue(replyTo, item)

    def _deliver(self, topic: str, data: Any) -> None:
        for callback in list(self.subscribers.get(topic, ())):
            try:
                callback(topic, data)
            except Exception:
                log.error("rpc %s: subscriber of %r failed:\n%s", self.node, topic,
                          traceback.format_exc())

    # -- shutting down -------------------------------------------------------------------

    def close(self) -> None:
        """Fail what is pending, close every socket, remove our endpoint."""
        for peer in list(self.peers.values()):
            if peer is not self.me:
                self._lose(peer, f"{self.node} is shutting down")
        self._lose(self.me, f"{self.node} is shutting down")
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        self.router.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


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
    node = RpcNode(reactor, spec["node"], spec["rundir"], spec["workers"], spec["slots"],
                   spec.get("rpc_timeout", DEFAULT_TIMEOUT)).start()
    install(node)
    reactor.addSystemEventTrigger("after", "shutdown", node.close)
    return node


def _current() -> RpcNode:
    if _node is None:
        raise RuntimeError("cluster.rpc is only available inside a cluster process "
                           "(a worker or the gateway started by `cluster run`)")
    return _node


def nodeName() -> str:
    """This process's node: ``"worker-0"`` … ``"worker-N-1"``, or ``"gateway"``."""
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
    """``callRemote`` on the worker that owns ``key``."""
    node = _current()
    return node.callRemote(node.shardOf(key), method, args, kwargs, timeout)


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
