"""The default app: a sharded in-memory key-value store speaking RESP2.

Each worker owns the keys whose shard is its own (``rpc.shardOf``). A command on a key
owned here runs at once; the commands on keys owned elsewhere, from every connection,
are gathered until the end of the reactor iteration and go, per owner, in one
``callRemote`` to ``store.execMany``, which runs them there in order and returns their
encoded replies. MGET, MSET, DEL and
EXISTS split their keys by owner and gather; DBSIZE and FLUSHALL go to every worker.
Replies keep request order: while any reply of a connection is still awaited, later ones
wait in line behind it, and everything ready goes out in one write.

A shard whose worker is down (killed, restarting) answers ``-CLUSTERDOWN`` until the
replacement is up; the replacement starts empty, since the store lives in memory.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from cluster import rpc
from cluster.defer import Deferred, gatherFirst, succeed
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.protocol import Factory, Protocol
from cluster.shards import ownerOfSlot
from cluster.store import commands, resp
from cluster.store.keyspace import Keyspace
from cluster.task import LoopingCall

SWEEP_INTERVAL = 0.1
# Replies a connection may have waiting behind one from another worker before its socket
# stops being read (a pipeline against a slow shard must not grow memory without bound)
MAX_WAITING = 10_000
RESUME_WAITING = 1_000
_SINGLE = commands.SINGLE_KEY
_NIL = resp.NIL

keyspace = Keyspace()
stats = {"connections": 0, "commands": 0, "remote": 0}


# -- what other workers call ----------------------------------------------------------------

@rpc.expose("store.execMany")
def _execMany(requests: list[list[bytes]]) -> list[bytes]:
    execute, ks = commands.execute, keyspace
    return [execute(ks, args) for args in requests]


@rpc.expose("store.mget")
def _mget(keys: list[bytes]) -> list[bytes | None]:
    return commands.mget(keyspace, keys)


@rpc.expose("store.mset")
def _mset(pairs: list[bytes]) -> None:
    commands.mset(keyspace, pairs)


@rpc.expose("store.del")
def _del(keys: list[bytes]) -> int:
    return commands.delete(keyspace, keys)


@rpc.expose("store.exists")
def _exists(keys: list[bytes]) -> int:
    return commands.exists(keyspace, keys)


@rpc.expose("store.dbsize")
def _dbsize() -> int:
    keyspace.sweep()
    return len(keyspace)


@rpc.expose("store.flushall")
def _flushall() -> None:
    keyspace.flush()


def _remoteError(failure: Failure) -> bytes:
    e = failure.value
    if isinstance(e, rpc.NodeLost):
        return resp.error(f"CLUSTERDOWN the shard's worker is not available ({e})")
    if isinstance(e, TimeoutError):
        return resp.error(f"TIMEOUT the shard's worker did not answer ({e})")
    return resp.error(f"ERR {failure.getErrorMessage()}")


def _byOwner(keys: list[bytes]) -> dict[str, list[int]]:
    """Positions of ``keys`` grouped by the node that owns each."""
    owners: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        owners.setdefault(rpc.shardOf(key), []).append(i)
    return owners


class RespStore(Protocol):
    """One client connection."""

    def connectionMade(self) -> None:
        self.parser = resp.Parser()
        self.me = rpc.nodeName()
        self.rpc = rpc._current()
        self.shardOf = self.rpc.shardOf  # bound once: it runs for every command
        self.name: bytes | None = None
        self.ready: list[bytes] = []  # replies to write, none awaited before them
        self.line: deque[list] = deque()  # once one is awaited: [reply or None] in order
        self.quitting = False
        self.writesBlocked = False  # the client is not taking our replies
        self.readingPaused = False
        self.nil = resp.NIL  # RESP3's null once the client said HELLO 3
        stats["connections"] += 1
        self.transport.registerProducer(self, True)  # a slow reader stops our reading

    def connectionLost(self, reason: Any) -> None:
        stats["connections"] -= 1

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
        wait = self.writesBlocked or len(self.line) > (
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
        try:
            requests = self.parser.feed(data)
        except resp.ProtocolError as e:
            requests, failure = [], e
        else:
            failure = None
        stats["commands"] += len(requests)
        dispatch = self.dispatch
        for args in requests:
            dispatch(args)
            if self.quitting:
                break
        if failure is not None and not self.quitting:
            self.reply(resp.error(f"ERR Protocol error: {failure}"))
            self.quitting = True
        if self.line and not self.quitting:
            if len(self.line) > MAX_WAITING:
                self._readOrNot()
            return  # an answer from another worker is awaited: write it all then, at once
        ready = self.ready
        if len(ready) == 1 and not self.quitting:  # the common case: flush(), inlined
            self.ready = []
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
            self.flush()
            if self.readingPaused:
                self._readOrNot()

    def _arrived(self, answer: bytes, slot: list) -> None:
        slot[0] = self.nil if answer == resp.NIL else answer
        self._release()

    def flush(self) -> None:
        if self.ready:
            out = self.ready
            self.ready = []
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self.quitting and not self.line:
            self.transport.loseConnection()

    # -- commands ----------------------------------------------------------------------------

    def dispatch(self, args: list[bytes]) -> None:
        name = args[0]
        single = _SINGLE.get(name)
        if single is None:
            name = name.upper()
            single = _SINGLE.get(name)
        if single is not None:
            function, arity = single
            if len(args) != arity and (arity > 0 or len(args) < -arity):
                return self.reply(_wrongArity(args[0]))
            owner = self.me if self.rpc.workers == 1 else self.shardOf(args[1])
            if owner == self.me:
                answer = function(keyspace, args)
                if self.line:
                    return self.reply(answer)
                # the common case, without reply()'s checks
                self.ready.append(self.nil if answer is _NIL else answer)
                return None
            # for another worker: gathered with every connection's until the end of this
            # reactor iteration, then sent as one call per owner
            slot: list = [None]
            self.line.append(slot)
            _gathered.add(owner, args, self, slot)
            return None
        handler = CONNECTION_COMMANDS.get(name)
        if handler is None:
            return self.reply(resp.error(
                f"ERR unknown command '{args[0].decode(errors='replace')}'"))
        method, arity = handler
        if not _arity(len(args), arity):
            return self.reply(_wrongArity(args[0]))
        self.reply(method(self, args))

    def _split(self, keys: list[bytes], local: Any, method: str, combine: Any) -> Any:
        """Run a multi-key command where each key lives: ``combine`` gets, per owner, the
        positions of its keys and its result."""
        owners = _byOwner(keys)
        if list(owners) == [self.me]:
            return combine([(owners[self.me], local(keyspace, keys))])
        parts, positions = [], []
        for node, where in owners.items():
            mine = [keys[i] for i in where]
            if node == self.me:
                parts.append(succeed(local(keyspace, mine)))
            else:
                stats["remote"] += 1
                parts.append(rpc.callRemote(node, method, mine))
            positions.append(where)
        return gatherFirst(parts).addCallback(
            lambda results: combine(list(zip(positions, results, strict=True))))

    def mget(self, args: list[bytes]) -> Any:
        keys = args[1:]

        def combine(parts: list) -> bytes:
            values: list[bytes | None] = [None] * len(keys)
            for where, got in parts:
                for i, value in zip(where, got, strict=True):
                    values[i] = value
            return resp.bulks(values, self.nil)

        return self._split(keys, commands.mget, "store.mget", combine)

    def mset(self, args: list[bytes]) -> Any:
        if len(args) % 2 == 0:
            return _wrongArity(args[0])
        keys = args[1::2]
        values = args[2::2]
        owners = _byOwner(keys)
        parts = []
        for node, where in owners.items():
            pairs = [x for i in where for x in (keys[i], values[i])]
            if node == self.me:
                commands.mset(keyspace, pairs)
            else:
                stats["remote"] += 1
                parts.append(rpc.callRemote(node, "store.mset", pairs))
        return gatherFirst(parts).addCallback(lambda _: resp.OK) if parts else resp.OK

    def delete(self, args: list[bytes]) -> Any:
        return self._split(args[1:], commands.delete, "store.del", _sumCounts)

    def exists(self, args: list[bytes]) -> Any:
        return self._split(args[1:], commands.exists, "store.exists", _sumCounts)

    def dbsize(self, args: list[bytes]) -> Any:
        return rpc.broadcast("store.dbsize").addCallback(
            lambda sizes: resp.integer(sum(sizes.values())))

    def flushall(self, args: list[bytes]) -> Any:
        return rpc.broadcast("store.flushall").addCallback(lambda _: resp.OK)

    def ping(self, args: list[bytes]) -> bytes:
        return resp.PONG if len(args) == 1 else resp.bulk(args[1])

    def echo(self, args: list[bytes]) -> bytes:
        return resp.bulk(args[1])

    def select(self, args: list[bytes]) -> bytes:
        return resp.OK if args[1] == b"0" else resp.error("ERR DB index is out of range")

    def quit(self, args: list[bytes]) -> bytes:
        self.quitting = True
        return resp.OK

    def client(self, args: list[bytes]) -> bytes:
        sub = args[1].upper()
        if sub == b"SETNAME" and len(args) == 3:
            self.name = args[2] or None
            return resp.OK
        if sub == b"GETNAME":
            return resp.bulk(self.name)
        if sub == b"SETINFO":
            return resp.OK
        return resp.error(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'")

    def command(self, args: list[bytes]) -> bytes:
        if len(args) > 1 and args[1].upper() == b"COUNT":
            return resp.integer(len(commands.SINGLE_KEY) + len(CONNECTION_COMMANDS))
        return resp.EMPTY_ARRAY  # enough for redis-cli, which only uses it for hints

    def hello(self, args: list[bytes]) -> bytes:
        # redis-py 8 opens with HELLO 3. The replies this store sends (simple strings,
        # errors, integers, bulk strings, arrays) are the same in RESP2 and RESP3 but
        # for null, so it accepts 3, answers the handshake in the version asked for and
        # from then on sends RESP3's null.
        version = args[1] if len(args) > 1 else b"2"
        if version not in (b"2", b"3"):
            return resp.error("NOPROTO unsupported protocol version")
        self.nil = resp.NULL3 if version == b"3" else resp.NIL
        fields = [(b"server", resp.bulk(b"redis")), (b"version", resp.bulk(b"7.0.0")),
                  (b"proto", resp.integer(int(version))), (b"id", resp.integer(id(self))),
                  (b"mode", resp.bulk(b"cluster-of-reactors")), (b"role", resp.bulk(b"master")),
                  (b"modules", resp.EMPTY_ARRAY)]
        body = b"".join(resp.bulk(k) + v for k, v in fields)
        return (b"%%%d\r\n" % len(fields) if version == b"3" else b"*%d\r\n" % (2 * len(fields))
                ) + body

    def config(self, args: list[bytes]) -> bytes:
        # redis-benchmark asks for CONFIG GET save / appendonly: empty, as with no
        # persistence configured
        if args[1].upper() == b"GET" and len(args) == 3:
            return resp.array([resp.bulk(args[2]), resp.bulk(b"")])
        return resp.error("ERR only CONFIG GET is supported")

    def info(self, args: list[bytes]) -> bytes:
        names = rpc.nodes()
        slots = rpc._current().slots
        shards = sum(1 for slot in range(slots) if names[ownerOfSlot(slot, len(names), slots)]
                     == self.me)
        text = (f"# Server\r\nredis_version:7.0.0\r\nredis_mode:cluster-of-reactors\r\n"
                f"process_id:{os.getpid()}\r\n"
                f"# Keyspace\r\ndb0:keys={len(keyspace)},expires={len(keyspace.expires)}\r\n"
                f"# Cluster\r\nnode:{self.me}\r\nworkers:{len(names)}\r\nshards:{shards}\r\n"
                f"connections:{stats['connections']}\r\ncommands:{stats['commands']}\r\n"
                f"remote_commands:{stats['remote']}\r\nexpired_keys:{keyspace.expired}\r\n"
                f"rpc_calls:{self.rpc.calls}\r\nrpc_served:{self.rpc.served}\r\n"
                f"rpc_messages:{self.rpc.messagesSent}\r\n")
        return resp.bulk(text.encode())


class _Gathered:
    """Single-key commands bound for other workers, from every connection, gathered over
    one reactor iteration: at its end, one ``store.execMany`` per owner carries them all,
    and the answers go back to each connection's waiting slots."""

    def __init__(self) -> None:
        self.byOwner: dict[str, tuple[list, list]] = {}  # owner -> (commands, (proto, slot))
        self.scheduled = False

    def add(self, owner: str, args: list[bytes], proto: RespStore, slot: list) -> None:
        batch = self.byOwner.get(owner)
        if batch is None:
            self.byOwner[owner] = ([args], [(proto, slot)])
        else:
            batch[0].append(args)
            batch[1].append((proto, slot))
        if not self.scheduled:
            self.scheduled = True
            rpc._current().reactor.callLater(0, self.send)

    def send(self) -> None:
        self.scheduled = False
        byOwner, self.byOwner = self.byOwner, {}
        for owner, (requests, waiting) in byOwner.items():
            stats["remote"] += len(requests)
            d = rpc.callRemote(owner, "store.execMany", requests)
            d.addCallbacks(_answered, _unanswered, callbackArgs=(waiting,),
                           errbackArgs=(waiting,))
        rpc._current().flushNow()  # this is the end of the iteration already


def _answered(answers: list[bytes], waiting: list[tuple[RespStore, list]]) -> None:
    _fill(waiting, answers)


def _unanswered(failure: Failure, waiting: list[tuple[RespStore, list]]) -> None:
    _fill(waiting, [_remoteError(failure)] * len(waiting))


def _fill(waiting: list[tuple[RespStore, list]], answers: list[bytes]) -> None:
    """Put each answer in its connection's slot, then let every connection touched write
    what is now ready."""
    touched = {}
    for (proto, slot), answer in zip(waiting, answers, strict=True):
        slot[0] = proto.nil if answer == _NIL else answer
        touched[id(proto)] = proto
    for proto in touched.values():
        proto._release()


_gathered = _Gathered()


def _sumCounts(parts: list[tuple[list[int], int]]) -> bytes:
    return resp.integer(sum(n for _, n in parts))


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
    b"DBSIZE": (RespStore.dbsize, 1), b"FLUSHALL": (RespStore.flushall, -1),
}


class StoreFactory(Factory):
    protocol = RespStore

    def startFactory(self) -> None:
        from cluster.reactor import reactor

        self._sweeper = LoopingCall(keyspace.sweep)
        self._sweeper.clock = reactor
        self._sweeper.start(SWEEP_INTERVAL, now=False)

    def stopFactory(self) -> None:
        if self._sweeper.running:
            self._sweeper.stop()


factory = StoreFactory()
