"""The store's calls from other workers (``store.*`` over ``cluster.rpc``): the commands
of every connection of one worker for the keys served here, gathered into one
``store.execMany``; the multi-key commands' parts; DBSIZE and FLUSHALL everywhere;
WATCH, EXEC and the CLUSTER commands' questions for a slot's owner. Every call is
checked (only bytes ever reach the keyspace) and waits while its slots move, or is
passed on to where they went. (The connections' side is ``cluster.store.server``.)
"""

from __future__ import annotations

from typing import Any

from cluster import rpc
from cluster.defer import Deferred, gatherFirst
from cluster.failure import Failure
from cluster.membership import FROZEN, HERE, NOBODY
from cluster.shards import SLOTS
from cluster.store import (
    blocking,
    clustercmd,
    commands,
    limits,
    resp,
    scan,
    server,
    transactions,
    typed,
)
from cluster.store.keyspace import WrongType


@rpc.expose("store.execMany")
def _execMany(requests: list[list[bytes]], resp3: list[int] = ()) -> Any:
    """Run single-key commands for other workers, in order; each reply is encoded RESP
    (a big value's as its pieces, sent without being copied whole), RESP3 for the
    requests at the positions ``resp3``. A malformed request gets an error reply of its
    own."""
    if type(requests) is not list or type(resp3) not in (list, tuple) \
            or any(type(i) is not int for i in resp3):
        raise TypeError("store.execMany takes a list of requests and a list of positions")
    out: list = [None] * len(requests)
    big = [0]  # bytes of big values among the replies: the RPC layer then sends them in
    r3 = frozenset(resp3)  # parts straight from the server.keyspace, uncopied
    done = _runFrom(requests, out, 0, big, r3)
    if isinstance(done, Deferred):
        return done.addCallback(lambda out: rpc.Large(out) if big[0] else out)
    return rpc.Large(out) if big[0] else out


def _runFrom(requests: list, out: list, start: int, big: list, r3: frozenset) -> Any:
    node = server._node()
    keyspace, crc16, keySlot = server.keyspace, server._crc16, server._keySlot
    route, slots = node.route, node.slots
    forwards: dict[Any, list[int]] = {}
    single = single2 = server._SINGLE
    for i in range(start, len(requests)):
        args = requests[i]
        if r3:
            single = commands.SINGLE_KEY3 if i in r3 else single2
        # checked, cheaply: a list of bytes naming a known command with its arity
        entry = single.get(args[0]) if type(args) is list and len(args) > 1 else None
        n = len(args) if entry is not None else 0
        if (entry is None or (n != entry[1] if entry[1] > 0 else n < -entry[1])
                or type(args[1]) is not bytes or (n > 2 and type(args[2]) is not bytes)
                or (n > 3 and any(type(a) is not bytes for a in args[3:]))):
            entry = _checkRequest(args, single)  # the slow path: lower case, or the error
            if type(entry) is bytes:
                out[i] = entry
                continue
        key = args[1]
        where = route[(crc16(key, 0) & 16383 if 123 not in key else keySlot(key)) % slots]
        if where is HERE:
            try:
                answer = out[i] = entry[0](keyspace, args)
            except WrongType:
                out[i] = typed.WRONGTYPE
                continue
            except Exception as e:  # a value no command expects: that request fails
                out[i] = resp.error(f"ERR {type(e).__name__} running {args[0]!r}")
                continue
            if type(answer) is list:
                big[0] += len(answer[1])
                if big[0] > server.MAX_BATCH_REPLY:  # one reply item must stay within its bound
                    out[i] = server._TOO_BIG
        elif where is FROZEN:  # this one and the rest wait for the move to end
            pending = _forward(requests, out, forwards, r3)
            pending.append(server._nextRoutes().addCallback(
                lambda _, i=i: _runFrom(requests, out, i, big, r3)))
            return gatherFirst(pending).addCallback(lambda _: out)
        elif where is NOBODY:
            out[i] = resp.error(server._CLUSTERDOWN)
        else:
            forwards.setdefault(where, []).append(i)
    pending = _forward(requests, out, forwards, r3)
    return gatherFirst(pending).addCallback(lambda _: out) if pending else out


def _forward(requests: list, out: list, forwards: dict[Any, list[int]],
             r3: frozenset) -> list[Deferred]:
    """Pass requests on to the workers that serve their slots now (they moved)."""
    node = server._node()
    pending = []
    for peer, positions in forwards.items():
        def fill(answers: list, positions: list[int] = positions) -> None:
            for i, answer in zip(positions, answers, strict=True):
                out[i] = answer

        def failed(failure: Failure, positions: list[int] = positions) -> None:
            for i in positions:
                out[i] = server._remoteError(failure)

        resp3 = [n for n, i in enumerate(positions) if i in r3]
        d = node.callPeer(peer, "store.execMany", ([requests[i] for i in positions], resp3),
                          {})
        pending.append(d.addCallbacks(fill, failed))
    forwards.clear()
    return pending


def _checkRequest(args: Any, table: dict) -> bytes | tuple:
    """The command's table entry, or the error reply for a malformed request."""
    if type(args) is not list or len(args) < 2:
        return resp.error("ERR malformed request")
    for arg in args:
        if type(arg) is not bytes:
            return resp.error("ERR malformed request: arguments must be bytes")
    entry = table.get(args[0]) or table.get(args[0].upper())
    if entry is None:
        return resp.error(f"ERR unknown command '{args[0].decode(errors='replace')}'")
    if not server._arity(len(args), entry[1]):
        return server._wrongArity(args[0])
    return entry


@rpc.expose("store.mget")
def _mget(keys: list[bytes]) -> Any:
    return server._whenPlanned(keys, server._mgetPlan(keys))


@rpc.expose("store.mset")
def _mset(pairs: list[bytes]) -> Any:
    server._checkKeys(pairs)
    if len(pairs) % 2:
        raise TypeError("store.mset takes key, value pairs")
    return server._whenPlanned(pairs[::2], server._msetPlan(pairs))


@rpc.expose("store.del")
def _del(keys: list[bytes]) -> Any:
    return server._whenPlanned(keys, server._countPlan(keys, commands.delete, "store.del"))


@rpc.expose("store.exists")
def _exists(keys: list[bytes]) -> Any:
    return server._whenPlanned(keys, server._countPlan(keys, commands.exists, "store.exists"))


@rpc.expose("store.dbsize")
def _dbsize() -> int:
    server.keyspace.sweep()
    return len(server.keyspace)


@rpc.expose("store.flushall")
def _flushall() -> Any:
    node = server._node()
    if node.frozen or node.loading:  # a shard is moving out or in: flush once it is over
        return server._nextRoutes().addCallback(lambda _: _flushall())
    server.keyspace.flush()
    if server.keyspace.aof is not None:
        server.keyspace.aof.log([b"FLUSHALL"])
    return None


@rpc.expose("store.watch")
def _watch(keys: list[bytes]) -> Any:
    """WATCH for a connection on another worker: the keys' versions here (-1, which
    matches nothing, for a key no longer served here: its EXEC will not run)."""
    server._checkKeys(keys)
    plan = server._plan(keys)
    if plan is None:
        return server._nextRoutes().addCallback(lambda _: _watch(keys))
    here = set(plan.get(HERE, ()))
    return [server.keyspace.watch(k) if i in here else -1 for i, k in enumerate(keys)]


@rpc.expose("store.unwatch")
def _unwatch(keys: list[bytes]) -> None:
    server._checkKeys(keys)
    for key in keys:
        server.keyspace.unwatch(key)


@rpc.expose("store.transaction")
def _transaction(requests: list[list[bytes]], watched: list[list[Any]],
                 nil: bytes = resp.NIL) -> Any:
    """EXEC for a connection on another worker: the replies (None: a watched key
    changed; bytes: the error EXEC answers)."""
    transactions.checked(requests, watched, nil)
    keys = [k for args in requests for k in transactions.keysOf(args)]
    plan = server._plan(keys + [w[0] for w in watched]) if keys or watched else {HERE: []}
    if plan is None:  # a shard is moving: the whole transaction waits for it
        return server._nextRoutes().addCallback(lambda _: _transaction(requests, watched, nil))
    if len(plan) > 1:
        return transactions.CROSSSLOT
    where = next(iter(plan))
    if where is not HERE:  # it moved on meanwhile
        return server._node().callPeer(where, "store.transaction", (requests, watched, nil), {})
    return transactions.run(server.keyspace, requests, watched, nil)


@rpc.expose("store.block")
def _block(args: list[bytes], r3: bool, token: list) -> Any:
    """BLPOP... for a connection on another worker: its reply, once there is one."""
    if type(args) is not list or len(args) < 3 or any(type(a) is not bytes for a in args) \
            or args[0].upper() not in (b"BLPOP", b"BRPOP", b"BLMOVE", b"BRPOPLPUSH") \
            or type(r3) is not bool or type(token) not in (list, tuple) or len(token) != 3 \
            or type(token[0]) is not str or type(token[1]) is not int \
            or type(token[2]) is not int:
        raise TypeError("store.block takes a blocking command, r3 and a token")
    keys = blocking.keysOf(args)
    server._checkKeys(keys)
    plan = server._plan(keys)
    if plan is None:
        return server._nextRoutes().addCallback(lambda _: _block(args, r3, token))
    if len(plan) > 1:
        return transactions.CROSSSLOT
    where = next(iter(plan))
    if where is not HERE:  # it moved on meanwhile
        return server._node().callPeer(where, "store.block", (args, r3, token), {},
                                       timeout=blocking.timeoutOf(args))
    return server.waiters.block(args, r3, tuple(token), server._node().reactor)


@rpc.expose("store.unblock")
def _unblock(token: list, why: str) -> None:
    if type(token) not in (list, tuple) or len(token) != 3 or type(why) is not str:
        raise TypeError("store.unblock takes a token and a reason")
    server.waiters.unblock(tuple(token), why)


@rpc.expose("store.scan")
def _scan(cursor: int, count: int, pattern: bytes | None, kind: bytes | None) -> Any:
    """SCAN for a connection on another worker, from slot ``cursor`` (passed on to its
    owner now if it moved meanwhile): [keys, next cursor]."""
    node = server._node()
    if type(cursor) is not int or type(count) is not int or not 0 <= cursor < SLOTS \
            or count < 1 or type(pattern) not in (bytes, type(None)) \
            or type(kind) not in (bytes, type(None)):
        raise TypeError("store.scan takes a slot, a count, a pattern and a type")
    where = node.route[cursor % node.slots]
    if where is FROZEN:
        return server._nextRoutes().addCallback(lambda _: _scan(cursor, count, pattern, kind))
    if where is HERE or where is NOBODY:
        return list(scan.walk(server.keyspace, node.route, cursor, count, pattern, kind))
    return node.callPeer(where, "store.scan", (cursor, count, pattern, kind), {})


@rpc.expose("store.bgrewriteaof")
def _bgrewriteaof() -> bool:
    return server.keyspace.aof is not None and server.keyspace.aof.rewrite()


@rpc.expose("store.configSet")
def _configSet(values: dict[str, str]) -> None:
    if type(values) is not dict or any(type(v) is not str for v in values.values()) \
            or not set(values) <= limits.SETTABLE:
        raise TypeError("store.configSet takes settings CONFIG SET may change")
    limits.apply(values)


@rpc.expose("store.resetStats")
def _resetStats() -> None:
    """CONFIG RESETSTAT: this worker's counters start again."""
    server.stats["commands"] = server.stats["remote"] = 0
    server.keyspace.expired = 0


@rpc.expose("store.keys")
def _keys(pattern: bytes) -> list[bytes]:
    if type(pattern) is not bytes:
        raise TypeError("store.keys takes a pattern")
    return scan.keys(server.keyspace, pattern)


@rpc.expose("store.randomkey")
def _randomkey() -> bytes | None:
    return scan.randomKey(server.keyspace)


@rpc.expose("store.keysInSlot")
def _keysInSlot(slot: int, count: int) -> Any:
    """CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT for another worker: this worker's keys of
    ``slot`` (passed on to its owner now if it moved meanwhile)."""
    if type(slot) is not int or type(count) is not int or not 0 <= slot < server._node().slots:
        raise TypeError("store.keysInSlot takes a slot number and a count")
    where = server._node().route[slot]
    if where is FROZEN:
        return server._nextRoutes().addCallback(lambda _: _keysInSlot(slot, count))
    if where is HERE or where is NOBODY:
        return clustercmd.keysInSlot(server.keyspace, slot, count)
    return server._node().callPeer(where, "store.keysInSlot", (slot, count), {})
