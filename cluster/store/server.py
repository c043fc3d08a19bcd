"""The default app: a sharded in-memory key-value store speaking RESP2.

Each worker serves the keys of the slots its routes say are here (``RpcNode.route``). A
command on such a key runs at once; the commands on keys served elsewhere, from every
connection, are gathered until the end of the reactor iteration and go, per owner, in
one call to ``store.execMany`` (``cluster.store.remote`` holds the calls from other
workers), which runs them there in order and returns their encoded replies. MGET, MSET,
DEL and EXISTS split their keys by owner and gather; DBSIZE and FLUSHALL go to every
worker. Replies keep request order: while any reply of a connection
is still awaited, later ones wait in line behind it, and everything ready goes out in
one write.

Shard handoff (reload, resize): while a slot's state moves, commands for it wait. A
connection holds such a command, and every later one, until the slot is served again
somewhere; an ``execMany`` batch holds its rest the same way; calls that reach a worker
which no longer serves a slot are passed on to the one that does. After any change of
routes, a connection whose replies sent under the old routes are still awaited holds its
next commands until they are in, so no command overtakes an earlier one. The state
moves through the factory's ``exportShard``/``importShard``/``forgetShard``: keys,
values and their remaining time to live.

A slot whose worker is down (killed, restarting) answers ``-CLUSTERDOWN`` until the
replacement is up; a replacement after a crash starts empty, since the store lives in
memory.
"""

from __future__ import annotations

import logging
import os
import random
import time
from binascii import crc_hqx
from collections import deque
from typing import Any

from cluster import rpc
from cluster.defer import Deferred, gatherFirst, succeed
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.membership import FROZEN, HERE, NOBODY
from cluster.protocol import Factory, Protocol
from cluster.shards import SLOTS, keySlot
from cluster.store import (
    aof,
    blocking,
    clients,
    clustercmd,
    commandinfo,
    commands,
    handoff,
    limits,
    persistence,
    pubsub,
    resp,
    scan,
    serverinfo,
    transactions,
    typed,
)
from cluster.store.keyspace import Keyspace, WrongType
from cluster.task import LoopingCall

log = logging.getLogger("cluster")
EXIT_NO_STATE = 70  # the worker cannot load its append-only files: it must not serve
SWEEP_INTERVAL = 0.1
# Replies a connection may have waiting behind one from another worker (and commands held
# while a shard moves) before its socket stops being read: a pipeline against a slow or
# moving shard must not grow memory without bound
MAX_WAITING = 10_000
RESUME_WAITING = 1_000
# a transaction runs in one go on its owner's reactor: its size is bounded, so one client
# cannot stall a worker (and everyone on it) for long
MAX_QUEUED = 100_000  # commands
MAX_QUEUED_BYTES = 64 << 20  # bytes of their arguments
BIG_VALUE = commands.BIG_VALUE  # a value this large travels and is written in pieces
LINGER = 2.0  # after the last reply of a draining connection, seconds to wait for its EOF
# big values one store.execMany may answer together (its reply is one RPC item, bounded
# by rpcwire.MAX_ITEM); past it a GET answers this error instead
MAX_BATCH_REPLY = 256 << 20
_TOO_BIG = resp.error("ERR big values asked of one worker at once pass 256 MiB; ask for "
                      "fewer at a time")
_SINGLE = commands.SINGLE_KEY
_NIL = resp.NIL
_keySlot = keySlot
_crc16 = crc_hqx  # (keySlot's CRC16; "123 not in key": no "{", so no hash tag)
_CLUSTERDOWN = "CLUSTERDOWN the shard's worker is not available"

keyspace = Keyspace()
# appendfsync always: what flushes the append-only file before replies go (None: off)
_durable: list[Any] = [None]
_syncing: set[Any] = set()  # connections whose replies wait for this iteration's fsync


def _afterSync(proto: Any) -> None:
    """Write ``proto``'s replies once the writes they acknowledge are on disk: one fsync
    at the end of the reactor iteration for every connection (a group commit)."""
    if not _syncing:
        proto.node.reactor.callLater(0, _synced)
    _syncing.add(proto)


def _synced() -> None:
    stored = _durable[0] is None or _durable[0]()
    waiting = list(_syncing)
    _syncing.clear()
    for proto in waiting:
        if not proto.transport.connected:
            continue
        try:
            if stored:
                proto.flush()
            else:
                proto.transport.abortConnection()  # not stored: not acknowledged
        except Exception:
            log.exception("store: writing replies after the fsync failed")
keyspace.waiters = waiters = blocking.Blocked(keyspace)
stats = {"connections": 0, "commands": 0, "remote": 0}


def _node() -> rpc.RpcNode:
    return rpc._current()


# -- waiting for routes to change --------------------------------------------------------------

_routeWaiters: list[Deferred] = []
_holding: set[RespStore] = set()  # connections with commands held


def _routesChanged() -> None:
    """A route listener: held calls and connections try again."""
    waiters = list(_routeWaiters)
    _routeWaiters.clear()
    for d in waiters:
        d.callback(None)
    for proto in list(_holding):
        proto._drainHeld()


def _nextRoutes() -> Deferred:
    d = Deferred()
    _routeWaiters.append(d)
    return d


def _plan(keys: list[bytes]) -> dict[Any, list[int]] | None:
    """Positions of ``keys`` grouped by where they are served (HERE or a peer); None
    while any of their slots is moving. Raises NodeLost for a slot nobody serves."""
    node = _node()
    route, slots = node.route, node.slots
    plan: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        where = route[_keySlot(key) % slots]
        if where is FROZEN:
            return None
        if where is NOBODY:
            raise rpc.NodeLost(f"no worker serves the slot of {key!r}")
        plan.setdefault(where, []).append(i)
    return plan


def _whenPlanned(keys: list[bytes], run: Any) -> Any:
    """``run(plan)`` once none of ``keys`` is moving (for calls from other workers)."""
    _checkKeys(keys)
    plan = _plan(keys)
    if plan is None:
        return _nextRoutes().addCallback(lambda _: _whenPlanned(keys, run))
    return run(plan)


def _gatherPlan(plan: dict[Any, list[int]], keys: list[bytes], local: Any, method: str,
                combine: Any) -> Any:
    """Run a multi-key command where each key is served: ``combine`` gets, per place,
    the positions of its keys and its result."""
    if len(plan) == 1 and HERE in plan:
        return combine([(plan[HERE], local(keyspace, keys))])
    node = _node()
    parts, positions = [], []
    for where, positionsThere in plan.items():
        mine = [keys[i] for i in positionsThere]
        if where is HERE:
            parts.append(succeed(local(keyspace, mine)))
        else:
            stats["remote"] += 1
            parts.append(node.callPeer(where, method, (mine,), {}))
        positions.append(positionsThere)
    return gatherFirst(parts).addCallback(
        lambda results: combine(list(zip(positions, results, strict=True))))


def _mgetPlan(keys: list[bytes]) -> Any:
    def run(plan: dict[Any, list[int]]) -> Any:
        def combine(parts: list) -> list[bytes | None]:
            values: list[bytes | None] = [None] * len(keys)
            for where, got in parts:
                for i, value in zip(where, got, strict=True):
                    values[i] = value
            return values

        return _gatherPlan(plan, keys, commands.mget, "store.mget", combine)

    return run


def _msetPlan(pairs: list[bytes]) -> Any:
    keys = pairs[::2]

    def run(plan: dict[Any, list[int]]) -> Any:
        node = _node()
        parts = []
        for where, positions in plan.items():
            mine = [x for i in positions for x in (keys[i], pairs[2 * i + 1])]
            if where is HERE:
                commands.mset(keyspace, mine)
            else:
                stats["remote"] += 1
                parts.append(node.callPeer(where, "store.mset", (mine,), {}))
        return gatherFirst(parts).addCallback(lambda _: None) if parts else None

    return run


def _countPlan(keys: list[bytes], local: Any, method: str) -> Any:
    def run(plan: dict[Any, list[int]]) -> Any:
        return _gatherPlan(plan, keys, local, method,
                           lambda parts: sum(n for _, n in parts))

    return run


def _checkKeys(keys: Any) -> None:
    if type(keys) is not list or any(type(k) is not bytes for k in keys):
        raise TypeError("keys must be a list of bytes")


# -- what other workers call ----------------------------------------------------------------

def _askKeys(peer: Any, slot: int, count: int) -> Deferred:
    return _node().callPeer(peer, "store.keysInSlot", (slot, count), {})


def _remoteError(failure: Failure) -> bytes:
    e = failure.value
    if isinstance(e, rpc.NodeLost):
        return resp.error(f"{_CLUSTERDOWN} ({e})")
    if isinstance(e, TimeoutError):
        return resp.error(f"TIMEOUT the shard's worker did not answer ({e})")
    return resp.error(f"ERR {failure.getErrorMessage()}")


def _encoded(answer: Any, nil: bytes) -> bytes | list[bytes]:
    """A reply from another worker, as this connection writes it (a big value stays in
    pieces, written one after the other rather than copied into one)."""
    return nil if answer == _NIL else answer


class RespStore(pubsub.PubSubCommands, Protocol):
    """One client connection."""

    direct = False  # accepted on the worker's own port: a Redis Cluster node there

    def connectionMade(self) -> None:
        self.parser = resp.Parser()
        self.node = _node()
        self.name: bytes | None = None
        self.ready: list[bytes] = []  # replies to write, none awaited before them
        self.line: deque[list] = deque()  # once one is awaited: [reply or None] in order
        self.held: deque[list[bytes]] = deque()  # commands waiting for a shard to move
        self.sentVersion = 0  # the routes under which the last remote command was sent
        self._heldTimer: Any = None
        self.quitting = False
        self.commands = 0  # read so far
        self.closeIdle = False  # the worker is draining: close at a request boundary
        self.finished = False  # half-closed after the last reply: the rest is discarded
        self._linger: Any = None
        self.writesBlocked = False  # the client is not taking our replies
        self.readingPaused = False
        self.nil = resp.NIL  # RESP3's null once the client said HELLO 3
        self.single = _SINGLE  # the single-key commands, as this protocol answers them
        self.r3 = False  # the client said HELLO 3
        self.channels: set[bytes] = set()  # SUBSCRIBE's
        self.patterns: set[bytes] = set()  # PSUBSCRIBE's
        self.blocked: tuple | None = None  # (owner, token) of a BLPOP... that waits
        self.pushes: list[bytes] = []  # RESP3 pushes waiting for an fsync (see push)
        self.id = clients.newId(self.node)  # CLIENT ID
        self.created = self.active = time.monotonic()
        self.lastCommand: list[bytes] | None = None
        clients.connections.add(self)
        self.multi: list[list[bytes]] | None = None  # commands queued since MULTI
        self.multiFailed = False  # one could not be queued: EXEC answers EXECABORT
        self.queuedBytes = 0
        self.watching: list[list[Any]] = []  # [key, version] pairs (WATCH) ...
        self.watchWhere: Any = None  # ... all of them served there (HERE or a peer)
        self.watchPending: Deferred | None = None  # WATCH's versions, on their way
        stats["connections"] += 1
        self.transport.registerProducer(self, True)  # a slow reader stops our reading

    def connectionLost(self, reason: Any) -> None:
        stats["connections"] -= 1
        clients.connections.discard(self)
        self._unblock("the client is gone")
        self._unsubscribeAll()
        self._unwatch()
        self._released()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()

    # Reading stops while the client is not reading replies (the transport pauses us, as
    # a producer) or while too many replies wait on other workers; it resumes when
    # neither holds.
    def pauseProducing(self) -> None:
        self.writesBlocked = True
        self._readOrNot()

    def resumeProducing(self) -> None:
        self.writesBlocked = False
        self._readOrNot()

    def _readOrNot(self) -> None:
        wait = self.writesBlocked or len(self.line) + len(self.held) > (
            RESUME_WAITING if self.readingPaused else MAX_WAITING)
        if wait != self.readingPaused:
            self.readingPaused = wait
            if wait:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        if self.finished:
            return  # sent after our last reply: never run, the client retries elsewhere
        try:
            requests = self.parser.feed(data)
        except resp.ProtocolError as e:
            requests, failure = [], e
        else:
            failure = None
        stats["commands"] += len(requests)
        self.commands += len(requests)
        if requests:  # (for CLIENT LIST)
            self.lastCommand, self.active = requests[-1], time.monotonic()
        dispatch, held = self.dispatch, self.held
        for args in requests:
            if held or not dispatch(args):
                self._hold(args)
            if self.quitting:
                break
        if failure is not None and not self.quitting:
            self.reply(resp.error(f"ERR Protocol error: {failure}"))
            self.quitting = True
        if held and len(self.line) + len(held) > MAX_WAITING:
            self._readOrNot()
        if self.line and not self.quitting:
            if len(self.line) > MAX_WAITING:
                self._readOrNot()
            return  # an answer from another worker is awaited: write it all then, at once
        ready = self.ready
        if (len(ready) == 1 and type(ready[0]) is bytes and not self.quitting
                and not self.closeIdle):
            if _durable[0] is not None and keyspace.aof.buffer:
                _afterSync(self)  # (appendfsync always: after the iteration's fsync)
                return
            self.ready = []  # the common case: flush(), inlined
            self.transport.write(ready[0])
        else:
            self.flush()

    # -- replies in order --------------------------------------------------------------------

    def reply(self, answer: bytes | Deferred) -> None:
        if isinstance(answer, Deferred):
            slot: list = [None]
            self.line.append(slot)
            answer.addErrback(_remoteError)
            answer.addCallback(self._arrived, slot)
            return
        if answer == resp.NIL:
            answer = self.nil
        if self.line:
            self.line.append([answer])
        else:
            self.ready.append(answer)

    def _release(self) -> None:
        line = self.line
        if line and line[0][0] is not None:
            while line and line[0][0] is not None:
                self.ready.append(line.popleft()[0])
            if self.held:
                self._drainHeld()  # may run held commands; flushes
                return
            self.flush()
            if self.readingPaused:
                self._readOrNot()

    def _arrived(self, answer: bytes, slot: list) -> None:
        slot[0] = _encoded(answer, self.nil)
        self._release()

    def _hold(self, args: list[bytes]) -> None:
        """Keep a command that cannot run yet, and every later one, in order; they wait
        at most the RPC timeout."""
        if not self.held:
            _holding.add(self)
            if self.blocked is None:  # (behind a blocked command, they wait for it)
                self._heldTimer = self.node.reactor.callLater(self.node.timeout,
                                                              self._heldTooLong)
        self.held.append(args)

    def _released(self) -> None:
        _holding.discard(self)
        if self._heldTimer is not None and self._heldTimer.active():
            self._heldTimer.cancel()
        self._heldTimer = None

    def _heldTooLong(self) -> None:
        """A shard took too long to move: what still waits fails (Redis Cluster's
        TRYAGAIN, which clients retry), in order, rather than wait without end."""
        self._heldTimer = None
        held = self.held
        while held:
            held.popleft()
            self.reply(resp.error("TRYAGAIN the key's shard is moving; try again"))
        self._released()
        if not self.line:
            self.flush()
        if self.readingPaused:
            self._readOrNot()

    def _drainHeld(self) -> None:
        """Run the held commands that can run now, in order; write what is ready."""
        held = self.held
        while held and not self.quitting and self.dispatch(held[0]):
            held.popleft()
        if not held:
            self._released()
        self.flush()  # what is ready precedes anything still awaited
        if self.readingPaused:
            self._readOrNot()

    def push(self, message: bytes) -> None:
        """A RESP3 push (out of band: not behind replies still awaited), once what it
        may announce is stored (appendfsync always)."""
        if _durable[0] is not None and keyspace.aof.buffer:
            self.pushes.append(message)
            _afterSync(self)
        else:
            self.transport.write(message)

    def flush(self) -> None:
        if self.pushes or self.ready:
            if _durable[0] is not None and keyspace.aof.buffer:
                _afterSync(self)  # (appendfsync always: after the iteration's fsync)
                return
            pushes, self.pushes = self.pushes, []
            for message in pushes:
                self.transport.write(message)
        if self.ready:
            out = self.ready
            self.ready = []
            if len(out) == 1 and type(out[0]) is bytes:
                self.transport.write(out[0])
            elif any(type(reply) is list for reply in out):  # a big value among them
                for reply in out:
                    for piece in reply if type(reply) is list else (reply,):
                        self.transport.write(piece)
            else:
                self.transport.write(b"".join(out))
        if self.quitting and not self.line:
            self.transport.loseConnection()
        elif self.closeIdle:
            self._closeIfIdle()

    # -- draining ----------------------------------------------------------------------------

    def closeWhenIdle(self) -> None:
        """The worker is draining: close once everything read has been answered (at once
        if nothing is in flight), so no request is ever cut off half way."""
        self.closeIdle = True
        self._unblock("the worker is restarting")
        self._closeIfIdle()

    def _closeIfIdle(self) -> None:
        if (self.finished or self.line or self.held or self.ready
                or self.parser.midRequest or not self.transport.connected):
            return
        if not self.commands and self._linger is None:
            # a connection that has not sent anything yet (handed over as the drain
            # began) gets its first request served, or LINGER seconds to send it
            from cluster.reactor import reactor

            self._linger = reactor.callLater(LINGER, self._closeUnused)
            return
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        # half-close after the last reply: the client reads it, then end of file; what it
        # sent meanwhile is discarded unrun (its retry goes to another worker), and the
        # socket stays open until the client closes, so no reset can overtake the reply
        self.finished = True
        self.transport.loseWriteConnection()
        from cluster.reactor import reactor

        self._linger = reactor.callLater(LINGER, self.transport.loseConnection)

    def _closeUnused(self) -> None:
        self._linger = None
        self.commands = max(self.commands, 1)  # never used: the boundary is now
        self._closeIfIdle()

    # -- commands ----------------------------------------------------------------------------

    def dispatch(self, args: list[bytes]) -> bool:
        """Run or route one command. False if it must wait (its shard is moving, or replies
        sent under older routes are still awaited): the caller holds it for later."""
        node = self.node
        if self.line and self.sentVersion != node.routeVersion:
            return False
        if self.multi is not None and args[0].upper() not in _NOT_QUEUED:
            return self._queue(args)
        name = args[0]
        single = self.single.get(name)
        if single is None:
            name = name.upper()
            single = self.single.get(name)
        if single is not None:
            function, arity = single
            if len(args) != arity and (arity > 0 or len(args) < -arity):
                self.reply(_wrongArity(args[0]))
                return True
            if node.allHere:
                where = HERE
            else:  # the key's hash slot, inlined for keys without a hash tag
                key = args[1]
                where = node.route[(_crc16(key, 0) & 16383 if 123 not in key
                                    else _keySlot(key)) % node.slots]
            if where is FROZEN:
                return False
            if where is NOBODY:
                self.reply(resp.error(_CLUSTERDOWN))
                return True
            _byName[name] += 1
            if where is HERE:
                try:
                    answer = function(keyspace, args)
                except WrongType:
                    answer = typed.WRONGTYPE
                if self.line:
                    self.reply(answer)
                else:  # the common case, without reply()'s checks
                    self.ready.append(self.nil if answer is _NIL else answer)
                return True
            if self.direct and node.workerPorts and where.node != node.node:
                # a Redis Cluster node: the client goes to the owner (not to our
                # successor, which serves this port next: that one is passed on)
                self.reply(self._moved(_keySlot(args[1]) % node.slots, where))
                return True
            # for another worker: gathered with every connection's until the end of this
            # reactor iteration, then sent as one call per owner
            slot: list = [None]
            self.line.append(slot)
            self.sentVersion = node.routeVersion
            _gathered.add(where, args, self, slot)
            return True
        if _gathered.byOwner:
            # commands for other workers gathered before this one go first: what this
            # one sends (a multi-key call, EXEC, FLUSHALL...) must not overtake them
            _gathered.send()
        handler = CONNECTION_COMMANDS.get(name)
        if handler is None:
            self.reply(resp.error(f"ERR unknown command '{args[0].decode(errors='replace')}'"))
            return True
        method, arity = handler
        if keyspace.aof is not None and name in _LOGGED_WRITES:
            why = keyspace.aof.usable()  # (the file cannot be written: -MISCONF)
            if why is not None:
                self.reply(why)
                return True
        if not _arity(len(args), arity):
            if self.multi is not None:  # EXEC, WATCH... inside MULTI, as Redis
                self.multiFailed = True
                if name == b"EXEC":
                    self.multi = None
                    self._unwatch()
                    self.reply(resp.error("EXECABORT Transaction discarded because of: "
                                          + _wrongArity(args[0])[5:-2].decode()))
                    return True
            self.reply(_wrongArity(args[0]))
            return True
        try:
            answer = method(self, args)
        except rpc.NodeLost as e:
            answer = resp.error(f"{_CLUSTERDOWN} ({e})")
        if answer is None:
            return False  # a key's shard is moving
        _byName[name] += 1
        if isinstance(answer, Deferred):
            # (after FLUSHALL or a blocking command, a version no routes have: what
            # follows waits for it)
            self.sentVersion = -1 if name in _BARRIERS else node.routeVersion
        self.reply(answer)
        return True

    def refusal(self, args: list[bytes]) -> bytes | None:
        """The error for an unknown command or a wrong number of arguments, else None."""
        entry = self.single.get(args[0].upper()) or CONNECTION_COMMANDS.get(args[0].upper())
        if entry is None:
            return resp.error(f"ERR unknown command '{args[0].decode(errors='replace')}'")
        return None if _arity(len(args), entry[1]) else _wrongArity(args[0])

    def _redirect(self, keys: list[bytes]) -> bytes | None:
        """On a worker's own port, as a Redis Cluster node: the error for keys of several
        slots (-CROSSSLOT) or of a slot another node serves (-MOVED); None to go on."""
        node = self.node
        if not self.direct or not keys or not node.workerPorts:
            return None
        slots = {_keySlot(k) % node.slots for k in keys}
        if len(slots) > 1:
            return clustercmd.CROSSSLOT
        slot = slots.pop()
        where = node.route[slot]
        if where is HERE or where is FROZEN or where is NOBODY or where.node == node.node:
            return None
        return self._moved(slot, where)

    def _route(self, keys: list[bytes]) -> Any:
        """Where ``keys`` are served (``_plan``), or the error to answer on a worker's
        own port (``_redirect``), or None while one of their slots moves."""
        redirect = self._redirect(keys)
        return redirect if redirect is not None else _plan(keys)

    def _moved(self, slot: int, where: Any) -> bytes:
        here = self.transport.getHost()
        return clustercmd.moved(slot, here.host, self.node.workerPorts, where.node)

    def mget(self, args: list[bytes]) -> Any:
        keys = args[1:]
        plan = self._route(keys)
        if type(plan) is not dict:
            return plan  # an error to answer, or None: wait for a move to end
        values = _mgetPlan(keys)(plan)
        encode = lambda values: resp.bulks(values, self.nil)  # noqa: E731
        return values.addCallback(encode) if isinstance(values, Deferred) else encode(values)

    def mset(self, args: list[bytes]) -> Any:
        if len(args) % 2 == 0:
            return _wrongArity(args[0])
        pairs = args[1:]
        plan = self._route(pairs[::2])
        if type(plan) is not dict:
            return plan
        done = _msetPlan(pairs)(plan)
        return done.addCallback(lambda _: resp.OK) if isinstance(done, Deferred) else resp.OK

    def delete(self, args: list[bytes]) -> Any:
        return self._count(args[1:], commands.delete, "store.del")

    def exists(self, args: list[bytes]) -> Any:
        return self._count(args[1:], commands.exists, "store.exists")

    def _count(self, keys: list[bytes], local: Any, method: str) -> Any:
        plan = self._route(keys)
        if type(plan) is not dict:
            return plan  # an error to answer, or None: wait for a move to end
        n = _countPlan(keys, local, method)(plan)
        return n.addCallback(resp.integer) if isinstance(n, Deferred) else resp.integer(n)

    def scan(self, args: list[bytes]) -> Any:
        """SCAN cursor [MATCH pattern] [COUNT n] [TYPE type], over every worker (on a
        worker's own port: over its slots only, as a Redis Cluster node)."""
        cursor = typed.toInt(args[1])  # (negative: past the end, as strtoull reads it)
        if cursor is None:
            return resp.error("ERR invalid cursor")
        _, count, kind, why = typed.scanArgs(args, 2)
        if why is not None:
            return why
        if not 0 <= cursor < SLOTS:
            return scan.reply(0, [])
        node, pattern = self.node, scan.pattern(args)
        if self.direct and node.workerPorts:
            return scan.reply(*reversed(scan.walk(keyspace, node.route, cursor, count,
                                                  pattern, kind, onlyHere=True)))
        where = node.route[cursor % node.slots]
        if where is FROZEN:
            return None
        if where is NOBODY:
            return resp.error(_CLUSTERDOWN)
        if where is HERE:
            return scan.reply(*reversed(scan.walk(keyspace, node.route, cursor, count,
                                                  pattern, kind)))
        return node.callPeer(where, "store.scan", (cursor, count, pattern, kind), {}
                             ).addCallback(lambda found: scan.reply(found[1], found[0]))

    def keys(self, args: list[bytes]) -> Any:
        """KEYS pattern: every worker's (a worker's own port: its own, as Redis Cluster)."""
        return self._everywhere("store.keys", (args[1],), lambda parts: resp.array(
            [resp.bulk(k) for k in dict.fromkeys(k for part in parts for k in part)]))

    def randomkey(self, args: list[bytes]) -> Any:
        return self._everywhere("store.randomkey", (), lambda picks: resp.bulk(
            random.choice([k for k in picks if k is not None] or [None])))

    def _everywhere(self, method: str, call: tuple, combine: Any,
                    cluster: bool = False) -> Any:
        """``combine`` the answers of ``method`` from every worker (from this one only
        on its own port, as a Redis Cluster node, unless ``cluster``)."""
        node = self.node
        if self.direct and node.workerPorts and not cluster:
            return combine([rpc._exposed[method](*call)])
        return self._allWorkers(method, call, combine)

    def _allWorkers(self, method: str, call: tuple, combine: Any) -> Any:
        """``method`` on every worker process, or -CLUSTERDOWN if a worker node (of any
        host) is not up: a partial answer (or a FLUSHALL that a returning worker's file
        would undo) is worse than none."""
        node = self.node
        down = next((n for n in node.nodes() if (p := node.peers.get(n)) is None or p.lost),
                    None)
        if down is not None:
            return resp.error(f"{_CLUSTERDOWN} ({down} is not up)")
        return gatherFirst([node.callPeer(peer, method, call, {})
                            for peer in node.workerIncarnations()]).addCallback(combine)

    def bgrewriteaof(self, args: list[bytes]) -> Any:
        """BGREWRITEAOF: every worker rewrites its append-only file in the background."""
        if keyspace.aof is None:
            return resp.error("ERR the append-only file is off (cluster run --appendonly "
                              "DIR turns it on)")
        return self._everywhere("store.bgrewriteaof", (), lambda _: resp.simple(
            "Background append only file rewriting started"), cluster=True)

    def dbsize(self, args: list[bytes]) -> Any:
        return rpc.broadcast("store.dbsize").addCallback(
            lambda sizes: resp.integer(sum(sizes.values())))

    def flushall(self, args: list[bytes]) -> Any:
        """FLUSHALL and FLUSHDB [ASYNC|SYNC] (one database here): every worker process,
        those taking over a moving shard too, flushes once no shard moves in or out of
        it, so nothing written before survives; it answers once all have."""
        if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
            return resp.error("ERR syntax error")
        return self._allWorkers("store.flushall", (), lambda _: resp.OK)

    # -- transactions (see cluster.store.transactions) ---------------------------------------

    def _queue(self, args: list[bytes]) -> bool:
        why = transactions.refusal(args, args[0].upper() in CONNECTION_COMMANDS)
        if why is None and self.multi and (
                len(self.multi) >= MAX_QUEUED or self.queuedBytes > MAX_QUEUED_BYTES):
            why = resp.error(f"ERR a transaction holds at most {MAX_QUEUED} commands and "
                             f"{MAX_QUEUED_BYTES >> 20} MiB of arguments on this store")
        if why is not None:
            self.multiFailed = True
            self.reply(why)
        else:
            self.multi.append(args)
            self.queuedBytes += sum(map(len, args))
            self.reply(transactions.QUEUED)
        return True

    def multiCommand(self, args: list[bytes]) -> bytes:
        if self.multi is not None:
            return resp.error("ERR MULTI calls can not be nested")
        self.multi, self.multiFailed, self.queuedBytes = [], False, 0
        return resp.OK

    def discard(self, args: list[bytes]) -> bytes:
        if self.multi is None:
            return resp.error("ERR DISCARD without MULTI")
        self.multi = None
        self._unwatch()
        return resp.OK

    def execCommand(self, args: list[bytes]) -> Any:
        if self.multi is None:
            return resp.error("ERR EXEC without MULTI")
        if self.watchPending is not None:
            return None  # WATCH's versions are not in yet: EXEC waits for them
        queued, watched = self.multi, self.watching
        if self.multiFailed:
            self.multi = None
            self._unwatch()
            return transactions.EXECABORT
        keys = [k for a in queued for k in transactions.keysOf(a)] + [w[0] for w in watched]
        redirect = self._redirect(keys)
        if redirect is not None:
            self.multi = None
            self._unwatch()
            return redirect
        try:
            plan = _plan(keys) if keys else {HERE: []}
        except rpc.NodeLost:
            self.multi = None
            self._unwatch()
            raise
        if plan is None:
            return None  # a shard is moving: EXEC waits for the move to end
        self.multi = None
        where = next(iter(plan))
        if len(plan) > 1:
            answer: Any = transactions.CROSSSLOT
        elif where is HERE:
            answer = self._execReply(transactions.run(keyspace, queued, watched, self.nil))
        else:
            stats["remote"] += 1
            answer = self.node.callPeer(where, "store.transaction",
                                        (queued, watched, self.nil), {}).addCallback(
                self._execReply)
        self._unwatch()  # after the run: a remote one gets its call before the unwatch
        return answer

    def _execReply(self, replies: list[bytes] | bytes | None) -> bytes:
        if replies is None:  # a watched key changed
            return resp.NULL3 if self.nil == resp.NULL3 else resp.NIL_ARRAY
        if type(replies) is bytes:
            return replies
        return b"*%d\r\n%s" % (len(replies), b"".join(replies))

    def watch(self, args: list[bytes]) -> Any:
        if self.multi is not None:
            return resp.error("ERR WATCH inside MULTI is not allowed")
        if self.watchPending is not None:
            return None  # the last WATCH's versions first
        keys = args[1:]
        plan = self._route(keys)
        if type(plan) is not dict:
            return plan  # an error to answer, or None: wait for a move to end
        places = set(plan) | ({self.watchWhere} if self.watching else set())
        if len(places) > 1:
            return transactions.CROSSSLOT
        where = self.watchWhere = next(iter(plan))
        if where is HERE:
            self.watching += [[k, keyspace.watch(k)] for k in keys]
            return resp.OK
        entries = [[k, -1] for k in keys]  # until the versions come: matches nothing
        self.watching += entries

        def got(versions: list[int]) -> bytes:
            for entry, version in zip(entries, versions, strict=True):
                entry[1] = version  # (still in self.watching, unless UNWATCH came first)
            return resp.OK

        def over(result: Any) -> Any:
            self.watchPending = None
            return result

        self.watchPending = self.node.callPeer(where, "store.watch", (keys,), {})
        return self.watchPending.addCallback(got).addBoth(over)

    def unwatchCommand(self, args: list[bytes]) -> bytes:
        self._unwatch()
        return resp.OK

    def _unwatch(self) -> None:
        if not self.watching:
            return
        keys = [w[0] for w in self.watching]
        if self.watchWhere is HERE:
            for key in keys:
                keyspace.unwatch(key)
        else:
            self.node.callPeer(self.watchWhere, "store.unwatch", (keys,), {}).addErrback(
                lambda _: None)  # a lost owner forgot them anyway
        self.watching, self.watchWhere = [], None

    def atomic(self, args: list[bytes]) -> Any:
        """RENAME, SMOVE, LMOVE... (``commands.MULTI_KEY``): commands over several keys
        that must apply at once, so their keys must be on one worker (else -CROSSSLOT);
        run as a transaction of one command there."""
        keys = transactions.keysOf(args)
        plan = self._route(keys) if keys else {HERE: []}  # (none: malformed, fails here)
        if type(plan) is not dict:
            return plan  # an error to answer, or None: wait for a move to end
        if len(plan) > 1:
            return transactions.CROSSSLOT
        where = next(iter(plan))
        if where is HERE:
            return transactions.run(keyspace, [args], [], self.nil)[0]
        stats["remote"] += 1
        return self.node.callPeer(where, "store.transaction", ([args], [], self.nil),
                                  {}).addCallback(
            lambda replies: replies[0] if type(replies) is list else replies)

    def block(self, args: list[bytes]) -> Any:
        """BLPOP, BRPOP, BLMOVE, BRPOPLPUSH: run where their keys are (all on one worker,
        else -CROSSSLOT), waiting there if their lists are empty; later commands of this
        connection wait for it, as in Redis."""
        why = blocking.syntax(args)
        if why is not None:
            return why
        keys = blocking.keysOf(args)
        plan = self._route(keys)
        if type(plan) is not dict:
            return plan  # an error to answer, or None: wait for a move to end
        if len(plan) > 1:
            return transactions.CROSSSLOT
        where, node = next(iter(plan)), self.node
        token = (node.node, os.getpid(), waiters.token())
        if where is HERE:
            answer = waiters.block(args, self.r3, token, node.reactor)
        else:
            answer = node.callPeer(where, "store.block", (args, self.r3, token), {},
                                   timeout=blocking.timeoutOf(args) + node.timeout)
        if isinstance(answer, Deferred):
            self.blocked = (where, token)
            answer.addBoth(self._blockEnded)
        return answer

    def _blockEnded(self, result: Any) -> Any:
        self.blocked = None
        if self.held and self._heldTimer is None:
            self._heldTimer = self.node.reactor.callLater(self.node.timeout, self._heldTooLong)
        return result

    def _unblock(self, why: str) -> None:
        """End this connection's blocked command, where it waits."""
        if self.blocked is None:
            return
        where, token = self.blocked
        if where is HERE:
            waiters.unblock(token, why)
        else:
            self.node.callPeer(where, "store.unblock", (token, why), {}).addErrback(
                lambda _: None)  # a lost owner ended it anyway

    def time(self, args: list[bytes]) -> bytes:
        return transactions.timeReply()

    def ping(self, args: list[bytes]) -> bytes:
        return resp.PONG if len(args) == 1 else resp.bulk(args[1])

    def echo(self, args: list[bytes]) -> bytes:
        return resp.bulk(args[1])

    def select(self, args: list[bytes]) -> bytes:
        return resp.OK if args[1] == b"0" else resp.error("ERR DB index is out of range")

    def quit(self, args: list[bytes]) -> bytes:
        self.quitting = True
        return resp.OK

    def client(self, args: list[bytes]) -> Any:
        return clients.command(self, args)

    def command(self, args: list[bytes]) -> bytes:
        return commandinfo.command(args, self.nil)

    def hello(self, args: list[bytes]) -> bytes:
        # redis-py 8 opens with HELLO 3. The replies this store sends (simple strings,
        # errors, integers, bulk strings, arrays) are the same in RESP2 and RESP3 but
        # for null, so it accepts 3, answers the handshake in the version asked for and
        # from then on sends RESP3's null.
        version = args[1] if len(args) > 1 else b"2"
        if version not in (b"2", b"3"):
            return resp.error("NOPROTO unsupported protocol version")
        self._protocol(version == b"3")
        fields = [(b"server", resp.bulk(b"redis")), (b"version", resp.bulk(b"7.0.0")),
                  (b"proto", resp.integer(int(version))), (b"id", resp.integer(id(self))),
                  (b"mode", resp.bulk(b"cluster-of-reactors")), (b"role", resp.bulk(b"master")),
                  (b"modules", resp.EMPTY_ARRAY)]
        body = b"".join(resp.bulk(k) + v for k, v in fields)
        return (b"%%%d\r\n" % len(fields) if version == b"3" else b"*%d\r\n" % (2 * len(fields))
                ) + body

    def _protocol(self, r3: bool) -> None:
        self.r3 = r3
        self.nil = resp.NULL3 if r3 else resp.NIL
        self.single = commands.SINGLE_KEY3 if r3 else _SINGLE
        self._subscribedMode()

    def reset(self, args: list[bytes]) -> bytes:
        """RESET: the connection as new (no transaction, watch, subscription; RESP2)."""
        self.multi = None
        self._unwatch()
        self._unsubscribeAll()
        self._protocol(False)
        self.name = None
        return b"+RESET\r\n"

    def publish(self, args: list[bytes]) -> Any:
        """PUBLISH channel message: delivered by every worker; how many received it."""
        return self._everywhere("store.publish", (args[1], args[2]),
                                lambda counts: resp.integer(sum(counts)), cluster=True)

    def pubsubCommand(self, args: list[bytes]) -> Any:
        why = pubsub.pubsubCheck(args)
        if why is not None:
            return why
        sub = args[1].upper()
        return self._everywhere("store.pubsub", (sub, args[2:]),
                                pubsub.pubsubCombine(sub, args[2:]), cluster=True)

    def config(self, args: list[bytes]) -> Any:
        sub = args[1].upper()
        if sub == b"SET":
            values = limits.parse(args)
            if type(values) is bytes:
                return values
            return self._everywhere("store.configSet", (values,), lambda _: resp.OK,
                                    cluster=True)
        if sub == b"RESETSTAT":
            return self._everywhere("store.resetStats", (), lambda _: resp.OK, cluster=True)
        return serverinfo.config(args, self.nil == resp.NULL3)

    def clusterCommand(self, args: list[bytes]) -> Any:
        here = self.transport.getHost()
        return clustercmd.command(args, self.node, keyspace, (here.host, here.port),
                                  _askKeys, self.direct)

    def okay(self, args: list[bytes]) -> bytes:
        """READONLY, READWRITE, ASKING: accepted on a worker's own port, a Redis Cluster
        node (no replicas here; a slot being moved waits for its move instead of asking
        elsewhere); refused on the gateway's, one Redis server, as Redis refuses them."""
        if not (self.direct and self.node.workerPorts):
            return resp.error("ERR This instance has cluster support disabled")
        return resp.OK

    def info(self, args: list[bytes]) -> bytes:
        return serverinfo.info(args, self.node, keyspace, stats,
                               self.transport.getHost().port,
                               self.direct and bool(self.node.workerPorts))


class _Gathered:
    """Single-key commands bound for other workers, from every connection, gathered over
    one reactor iteration: at its end, one ``store.execMany`` per owner carries them all,
    and the answers go back to each connection's waiting slots."""

    def __init__(self) -> None:
        # peer -> (commands, (proto, slot), positions of those from RESP3 connections)
        self.byOwner: dict[Any, tuple[list, list, list]] = {}
        self.large: set = set()  # owners whose batch holds a big value
        self.scheduled = False

    def add(self, owner: Any, args: list[bytes], proto: RespStore, slot: list) -> None:
        if len(args[-1]) >= BIG_VALUE:
            self.large.add(owner)
        batch = self.byOwner.get(owner)
        if batch is None:
            batch = self.byOwner[owner] = ([args], [(proto, slot)], [])
        else:
            batch[0].append(args)
            batch[1].append((proto, slot))
        if proto.nil is not _NIL:
            batch[2].append(len(batch[0]) - 1)
        if not self.scheduled:
            self.scheduled = True
            _node().reactor.callLater(0, self.send)

    def send(self) -> None:
        self.scheduled = False
        byOwner, self.byOwner = self.byOwner, {}
        large, self.large = self.large, set()
        node = _node()
        for owner, (requests, waiting, resp3) in byOwner.items():
            stats["remote"] += len(requests)
            d = node.callPeer(owner, "store.execMany", (requests, resp3) if resp3 else
                              (requests,), {}, large=owner in large)
            d.addCallbacks(_answered, _unanswered, callbackArgs=(waiting,),
                           errbackArgs=(waiting,))
        node.flushNow()  # this is the end of the iteration already


def _answered(answers: list[bytes], waiting: list[tuple[RespStore, list]]) -> None:
    _fill(waiting, answers)


def _unanswered(failure: Failure, waiting: list[tuple[RespStore, list]]) -> None:
    _fill(waiting, [_remoteError(failure)] * len(waiting))


def _fill(waiting: list[tuple[RespStore, list]], answers: list[bytes]) -> None:
    """Put each answer in its connection's slot, then let every connection touched write
    what is now ready."""
    touched = {}
    for (proto, slot), answer in zip(waiting, answers, strict=True):
        slot[0] = _encoded(answer, proto.nil)
        touched[id(proto)] = proto
    for proto in touched.values():
        proto._release()


_gathered = _Gathered()


def _arity(count: int, arity: int) -> bool:
    return count == arity if arity > 0 else count >= -arity


def _wrongArity(name: bytes) -> bytes:
    return resp.error(f"ERR wrong number of arguments for "
                      f"'{name.decode(errors='replace').lower()}' command")


CONNECTION_COMMANDS: dict[bytes, tuple[Any, int]] = {
    b"PING": (RespStore.ping, -1), b"ECHO": (RespStore.echo, 2),
    b"SELECT": (RespStore.select, 2), b"QUIT": (RespStore.quit, 1),
    b"CLIENT": (RespStore.client, -2), b"COMMAND": (RespStore.command, -1),
    b"CONFIG": (RespStore.config, -2), b"INFO": (RespStore.info, -1),
    b"HELLO": (RespStore.hello, -1),
    b"MGET": (RespStore.mget, -2), b"MSET": (RespStore.mset, -3),
    b"DEL": (RespStore.delete, -2), b"EXISTS": (RespStore.exists, -2),
    b"UNLINK": (RespStore.delete, -2), b"TOUCH": (RespStore.exists, -2),
    b"TIME": (RespStore.time, 1),
    b"DBSIZE": (RespStore.dbsize, 1), b"SCAN": (RespStore.scan, -2),
    b"KEYS": (RespStore.keys, 2), b"RANDOMKEY": (RespStore.randomkey, 1),
    b"BGREWRITEAOF": (RespStore.bgrewriteaof, 1),
    b"FLUSHALL": (RespStore.flushall, -1), b"RESET": (RespStore.reset, 1),
    b"SUBSCRIBE": (RespStore.subscribeCommand, -2),
    b"PSUBSCRIBE": (RespStore.subscribeCommand, -2),
    b"UNSUBSCRIBE": (RespStore.unsubscribeCommand, -1),
    b"PUNSUBSCRIBE": (RespStore.unsubscribeCommand, -1),
    b"PUBLISH": (RespStore.publish, 3), b"PUBSUB": (RespStore.pubsubCommand, -2),
    b"FLUSHDB": (RespStore.flushall, -1),
    b"MULTI": (RespStore.multiCommand, 1), b"EXEC": (RespStore.execCommand, 1),
    b"DISCARD": (RespStore.discard, 1), b"WATCH": (RespStore.watch, -2),
    b"UNWATCH": (RespStore.unwatchCommand, 1), b"CLUSTER": (RespStore.clusterCommand, -2),
    b"READONLY": (RespStore.okay, 1), b"READWRITE": (RespStore.okay, 1),
    b"ASKING": (RespStore.okay, 1),
    **{name: (RespStore.atomic, entry[1]) for name, entry in commands.MULTI_KEY.items()},
    b"BLPOP": (RespStore.block, -3), b"BRPOP": (RespStore.block, -3),
    b"BLMOVE": (RespStore.block, 6), b"BRPOPLPUSH": (RespStore.block, 4),
}
# writes outside the command tables: refused while the append-only file cannot be written
_LOGGED_WRITES = frozenset({b"MSET", b"DEL", b"UNLINK", b"FLUSHALL", b"FLUSHDB", b"EXEC",
                            *commands.MULTI_KEY})
# what follows one of these waits for its reply
_BARRIERS = frozenset({b"FLUSHALL", b"FLUSHDB", b"BLPOP", b"BRPOP", b"BLMOVE", b"BRPOPLPUSH"})
# what runs at once inside MULTI (with Redis's answers), rather than being queued
_NOT_QUEUED = frozenset({b"EXEC", b"DISCARD", b"MULTI", b"WATCH", b"QUIT"})


# commands run, by name (counted once each, not again when a held one runs at last)
_byName = dict.fromkeys([*commands.SINGLE_KEY, *CONNECTION_COMMANDS], 0)


class StoreFactory(Factory):
    protocol = RespStore
    settings: dict[str, Any] = {}  # the cluster's (--appendonly...), from configure
    _cleared: set[int] = set()  # slots coming in by handoff whose old keys here are gone
    _everOwned = False  # this process has served slots (so it may hand them all away)
    _persisting = False  # --appendonly, until the first routes start it
    _owned: set[int] = set()  # slots whose keys this worker's append-only file holds

    def configure(self, spec: dict[str, Any]) -> None:
        """The worker's settings, before startFactory."""
        self.settings = spec

    def metrics(self) -> dict[str, Any]:
        """For ``--metrics`` and the status page (see ``cluster.metrics.appMetrics``)."""
        return {"requests": stats["commands"],
                "cluster_store_commands_total": ["command", {
                    name.decode(): n for name, n in _byName.items() if n}],
                "cluster_store_remote_commands_total": stats["remote"],
                "cluster_store_keys": len(keyspace),
                "cluster_store_expired_keys_total": keyspace.expired}

    def startFactory(self) -> None:
        from cluster.reactor import reactor

        self._sweeper = LoopingCall(keyspace.sweep)
        self._sweeper.clock = reactor
        self._sweeper.start(SWEEP_INTERVAL, now=False)
        self._limits = [LoopingCall(limits.closeIdle), LoopingCall(limits.sampleMemory)]
        for loop, interval in zip(self._limits, (1.0, 0.1), strict=True):
            loop.clock = reactor
            loop.start(interval, now=False)
        node = _node()
        node.routeListeners.append(_routesChanged)
        node.routeListeners.append(self._routesChanged)
        self._persisting = bool(self.settings.get("appendonly"))  # (at the first routes)

    def _routesChanged(self) -> None:
        node = _node()
        if waiters.byToken:  # (a worker died: its clients' waits here end)
            # (node, pid): pids repeat across hosts (and in every container)
            alive = {(p.node, p.pid) for p in node.incarnations.values() if not p.lost}
            waiters.forgetGone(alive.__contains__)
        if self._persisting and node.route:
            self._persisting = False
            persistence.begin(keyspace, self.settings["appendonly"],
                              self.settings.get("appendfsync", "everysec"), node)
            if keyspace.aof.fsync == "always":  # replies and messages wait for the fsync
                _durable[0] = node.beforeSend = keyspace.aof.settle
        loading = set().union(*node.loading.values())
        self._cleared &= loading
        if keyspace.aof is None:
            return
        # the slots served here (or moving away): their keys must be in this file
        held = {s for s, where in enumerate(node.route) if where is HERE or where is FROZEN}
        new = held - self._owned
        self._owned = held
        self._everOwned = self._everOwned or bool(held)
        if not new:
            return
        # a move committing here makes its slots HERE while they still count as loading
        # (a move called off stops loading first): those came by handoff
        viaHandoff = new & loading
        raw = lambda slots: {s for s in range(SLOTS) if s % node.slots in slots}  # noqa: E731
        if viaHandoff:  # a handoff into this worker committed: its file holds them now
            keyspace.aof.append(b"".join(aof.dump(keyspace, raw(viaHandoff))))
            keyspace.aof.sync()  # (on disk before the old owner removes its file)
        if new - viaHandoff:  # served here without a handoff: from the files
            try:
                persistence.recover(keyspace, raw(new - viaHandoff), node.node)
            except Exception as e:  # never serve without what was stored
                log.critical("%s: %s", node.node, e)
                os._exit(EXIT_NO_STATE)
            keyspace.aof.dropOthers(persistence.DROP_OLDER_AFTER)
        if not loading and not node.successor:
            keyspace.aof.dropOthers(persistence.DROP_OLDER_AFTER)

    def stopFactory(self) -> None:
        for loop in (self._sweeper, *self._limits):
            if loop.running:
                loop.stop()
        waiters.unblockAll("the worker is stopping")
        if keyspace.aof is not None:
            keyspace.aof.close()

    # the state hooks shard handoffs use (see worker.shardmove)
    def exportShard(self, slots: list[int]) -> Any:
        return handoff.exportSlots(keyspace, set(slots), _node().slotOf)

    def importShard(self, chunk: Any) -> None:
        node = _node()
        incoming = set().union(*node.loading.values()) - self._cleared
        if incoming:  # what this worker held of them before is stale: it goes first
            self._cleared = self._cleared | incoming
            for slot in [s for s in range(SLOTS) if s % node.slots in incoming]:
                for key in list(keyspace.bySlot.get(slot, ())):
                    keyspace.delete(key)
        handoff.importChunk(keyspace, chunk)  # (logged once the move commits)

    def forgetShard(self, slots: list[int]) -> None:
        node = _node()
        moved, slotOf = set(slots), node.slotOf
        waiters.unblockAll("its key's shard moved", keep=lambda key: slotOf(key) not in moved)
        handoff.forgetSlots(keyspace, moved, slotOf)
        # (their keys in the append-only file are no one's now: others OWN them); a
        # process that never served any (a successor whose move was called off) keeps
        # everything: the files may be all there is of them
        if keyspace.aof is not None and self._everOwned and not node.loading \
                and not node.successor and not any(where is HERE or where is FROZEN
                                                   for where in node.route):
            keyspace.aof.remove()  # every shard moved away: its state lives elsewhere
            keyspace.aof = _durable[0] = node.beforeSend = None


factory = StoreFactory()

from cluster.store import remote  # noqa: E402,F401 - registers the store.* calls (it uses this module)
