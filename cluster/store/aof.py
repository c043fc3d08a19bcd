"""The store's append-only file: every write a worker applies, as the commands that
redo it, in files of its own under ``--appendonly DIR``.

Records are RESP arrays, as Redis's AOF. A command is logged once it has run without an
error; one whose effect depends on when or by chance is logged as what it did (an expiry
as ``PEXPIREAT`` on the wall clock, SPOP as SREM of what it took, a woken BLPOP as the
LPOP it was). A transaction is logged between MULTI and EXEC, and only a complete one is
replayed. ``OWN time slot-ranges...`` (a record of ours) says that from there on the file
holds the keys of those hash slots: written when a worker starts, before a shard's keys
arriving by handoff, and at the head of a rewritten file. Replaying, a slot's keys come
from the file with the latest OWN of it, from that record on, so a slot that moved keeps
the keys of its last owner whatever order the files were written in.

Each file is named ``<node>.<creation time in ns>.<pid>.aof``. When a worker first
knows its routes, the slots it serves then (a first start, a restart after a crash or a
stop) are replayed from every file in the directory, oldest first, and written compactly
to a new file of its own; slots that come later by handoff (a reload's successor, TTIN)
are written when the move commits, so a move called off leaves nothing. A worker that
hands all its shards away removes its files (and its node's dead processes' files; a
live successor's stay). A last record cut short (a crash in mid-write) is cut off with
a log line, as ``redis-check-aof --fix`` would; damage before the end stops the start.

``appendfsync``: ``always`` writes and fsyncs the writes before any reply or message
acknowledging them goes out (once per reactor iteration: a group commit, as Redis);
``everysec`` writes at the end of each reactor iteration and fsyncs once a second in a
thread; ``no`` leaves the flushing to the kernel. A write that fails (disk full, I/O
error) makes later writes answer ``-MISCONF`` until writing works again, rather than
acknowledge what was not stored. BGREWRITEAOF (and growth past twice the size of the last
rewrite, from 64 MiB) rewrites the file in a forked child, as Redis does: the reactor
goes on serving, and writes made meanwhile are appended to the new file before it
replaces the old.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psutil

from cluster.shards import keySlot
from cluster.store import resp, typed
from cluster.store.keyspace import Keyspace

log = logging.getLogger("cluster")

FSYNCS = ("always", "everysec", "no")
AUTO_MIN_SIZE = 64 << 20  # no automatic rewrite below this size
ITEMS_PER_RECORD = 64  # elements per record of a rewritten container (Redis's)
RELATIVE_EXPIRY = {b"SET", b"SETEX", b"PSETEX", b"GETEX", b"EXPIRE", b"PEXPIRE", b"EXPIREAT",
             b"PEXPIREAT", b"RESTORE"}  # they set an expiry: logged with PEXPIREAT after them


def record(args: list[bytes]) -> bytes:
    """A command as a RESP array of bulk strings."""
    if len(args) == 3:  # (SET k v, HSET k f... the common case, in one format)
        a, b, c = args
        return b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(a), a, len(b), b, len(c), c)
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%s\r\n" % (len(a), a) for a in args])


def misconf(why: str) -> bytes:
    return resp.error(f"MISCONF Errors writing to the AOF file: {why}")


class AppendOnly:
    """One worker's append-only file, open for appending."""

    def __init__(self, directory: str, node: str, fsync: str, reactor: Any, ks: Keyspace,
                 slots: Callable[[], set[int]]) -> None:
        self.directory, self.node, self.fsync, self.reactor = directory, node, fsync, reactor
        self.keyspace, self.slots = ks, slots  # (what a rewrite writes)
        self.prefix = node.replace("/", "-") + "."
        self.buffer: list[bytes] = []
        self.failed: str | None = None  # the last write's error: writes are refused
        self.rewriting: tuple[int, str] | None = None  # (child pid, its temporary file)
        self.rewriteBuffer: list[bytes] | None = None  # records since the rewrite began
        self.lastRewrite = "ok"
        self.path = ""
        self.made: list[str] = []  # the files this process made (the others are not its)
        self.fd = -1
        self.size = self.baseSize = 0
        self._scheduled = False
        self._always = fsync == "always"
        self._autoPending = False
        self._syncing = False
        self._timers: list[Any] = []

    # -- files ------------------------------------------------------------------------------

    def files(self, mine: bool = False) -> list[str]:
        """The directory's AOF files, oldest first (``mine``: this node's only)."""
        names = [n for n in os.listdir(self.directory)
                 if n.endswith(".aof") and n.count(".") >= 3]
        if mine:
            names = [n for n in names if n.startswith(self.prefix)]
        return [os.path.join(self.directory, n) for n in sorted(names, key=_created)]

    def open(self, initial: Iterable[bytes] = (), dropOthersIn: float | None = None) -> None:
        """Start a new file holding ``initial`` (fsynced): from now on writes go there,
        and this process's older file goes. ``dropOthersIn``: this node's files made by
        earlier processes (dead: a crash, a stop) go that many seconds later (workers
        starting at the same time may still be reading them)."""
        self._install(path := self._newPath(), _writeFile(path + ".tmp", initial))

    def _newPath(self) -> str:
        return os.path.join(self.directory, f"{self.prefix}{time.time_ns()}.{os.getpid()}.aof")

    def _install(self, path: str, fd: int) -> None:
        """``path``.tmp (written, fsynced, open as ``fd``) becomes the current file."""
        os.rename(path + ".tmp", path)
        self._fsyncDir()
        if self.fd >= 0:
            os.close(self.fd)
        _removeAll(self.made)
        self.fd, self.path, self.made = fd, path, [path]
        self.size = self.baseSize = os.fstat(fd).st_size
        if self.fsync == "everysec" and not self._timers:
            self._timers.append(self.reactor.callLater(1.0, self._everySecond))

    def dropDeadTemporaries(self) -> None:
        """Files a dead process was writing (a rewrite killed half way) go."""
        for name in os.listdir(self.directory):
            if name.endswith(".aof.tmp") and not psutil.pid_exists(_writer(name[:-4])):
                _remove(os.path.join(self.directory, name))

    def dropOthers(self, delay: float = 0.0) -> None:
        """This node's files made by other processes go (now, or ``delay`` s later)."""
        others = [p for p in self.files(mine=True) if p not in self.made
                  and not psutil.pid_exists(_writer(p))]
        if delay:
            self._timers.append(self.reactor.callLater(delay, _removeAll, others))
        else:
            _removeAll(others)

    def _fsyncDir(self) -> None:
        dirFd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dirFd)
        finally:
            os.close(dirFd)

    def remove(self) -> None:
        """This worker holds no shard any more (they moved away): its files go, and
        those of this node's dead processes (not a live successor's)."""
        self.close()
        _removeAll(self.made + [p for p in self.files(mine=True)
                                if not psutil.pid_exists(_writer(p))])
        self.made = []

    def close(self) -> None:
        self.write()
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()

    # -- logging ----------------------------------------------------------------------------

    def log(self, args: list[bytes]) -> None:
        """Append a record (written now with ``always``, else at the iteration's end)."""
        self.append(record(args))

    def append(self, data: bytes) -> None:
        self.buffer.append(data)
        if self.rewriteBuffer is not None:
            self.rewriteBuffer.append(data)
        if not self._scheduled:  # (always: synced before anything answers, see settle)
            self._scheduled = True
            self.reactor.callLater(0, self.settle if self._always else self.write)

    def write(self) -> bool:
        """Write what is buffered; False (and ``failed`` says why) if it could not be."""
        self._scheduled = False
        if not self.buffer or self.fd < 0:
            return self.failed is None
        data = b"".join(self.buffer)
        try:
            written = _writeAll(self.fd, data)
        except OSError as e:
            self._failed(e)
            return False
        self.buffer.clear()
        self.size += written
        if self.failed is not None:
            log.warning("%s: writing the append-only file works again", self.node)
            self.failed = None
        if self.rewriting is None and self.size > max(AUTO_MIN_SIZE, 2 * self.baseSize) \
                and not self._autoPending:  # (not now: maybe inside a transaction's records)
            self._autoPending = True
            self.reactor.callLater(0, self._autoRewrite)
        return True

    def settle(self) -> bool:
        """``always``: write and fsync what is buffered, once for everything the reactor
        did since the last time (a group commit), before any reply that acknowledges it
        goes out; False if it could not be (the replies must not go)."""
        self._scheduled = False
        return self.sync() if self.buffer else self.failed is None

    def _autoRewrite(self) -> None:
        self._autoPending = False
        self.rewrite()

    def sync(self) -> bool:
        """Write and fsync what is buffered (``always``: before the write is answered);
        after a failure, the fsync is tried again even with nothing new to write."""
        self.write()
        if self.buffer or self.fd < 0:
            return False
        try:
            os.fsync(self.fd)
        except OSError as e:
            self._failed(e)
            return False
        if self.failed is not None:
            log.warning("%s: writing the append-only file works again", self.node)
            self.failed = None
        return True

    def _failed(self, e: OSError) -> None:
        if self.failed is None:
            log.error("%s: cannot write the append-only file %s: %s; writes are refused "
                      "until it works again", self.node, self.path, e.strerror or e)
        self.failed = e.strerror or str(e)

    def _everySecond(self) -> None:
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self.reactor.callLater(1.0, self._everySecond))
        if self.write() and not self._syncing and self.fd >= 0:
            from cluster.threads import deferToThread

            self._syncing = True
            fd = self.fd
            d = deferToThread(os.fsync, fd)
            d.addErrback(lambda f: self._failed(f.value) if self.fd == fd else None)
            d.addBoth(lambda _: setattr(self, "_syncing", False))

    def usable(self) -> bytes | None:
        """None if writes may go on, else the -MISCONF error they answer."""
        if self.failed is None or (self.fsync == "always" and self.sync()) or self.write():
            return None
        return misconf(self.failed)

    # -- rewriting --------------------------------------------------------------------------

    def rewrite(self) -> bool:
        """Start a background rewrite (False: one is running already)."""
        if self.rewriting is not None or self.fd < 0:
            return False
        ks, held = self.keyspace, self.slots()
        path = self._newPath()
        stamp = time.time_ns()  # (taken here: the child may run late)
        if self._always:
            self.sync()  # (what is written now must be fsynced too before it is answered)
        else:
            self.write()
        pid = os.fork()
        if pid == 0:  # the child: the keyspace as it is now, then out (no cleanup)
            code = 1
            try:
                os.close(_writeFile(path + ".tmp", dump(ks, held, stamp)))
                code = 0
            finally:
                os._exit(code)
        self.rewriting, self.rewriteBuffer = (pid, path), []
        self._timers.append(self.reactor.callLater(0.05, self._rewriteDone))
        return True

    def _rewriteDone(self) -> None:
        """The child is done: the records made since it forked go after its dump, and
        that file, renamed into place, is the file from now on."""
        pid, path = self.rewriting
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            self._timers.append(self.reactor.callLater(0.05, self._rewriteDone))
            return
        self.rewriting = None
        tail, self.rewriteBuffer = self.rewriteBuffer or [], None
        try:
            if os.waitstatus_to_exitcode(status) != 0:
                raise OSError("the child writing it failed")
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_APPEND)
            try:
                _writeAll(fd, b"".join(tail))
                os.fsync(fd)
            except OSError:
                os.close(fd)
                raise
            self._install(path, fd)
        except OSError as e:
            self.lastRewrite = "err"
            log.error("%s: the append-only file's rewrite failed: %s", self.node, e)
            _remove(path + ".tmp")
            return
        self.buffer.clear()  # (all of it was in the tail: it is in the new file)
        self.lastRewrite = "ok"
        log.info("%s: rewrote the append-only file (%d bytes)", self.node, self.size)


def _writeFile(path: str, records: Iterable[bytes]) -> int:
    """A new file (0600) holding ``records``, fsynced; its descriptor, open for appending."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        for chunk in _batches(records):
            _writeAll(fd, chunk)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def _batches(records: Iterable[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    batch: list[bytes] = []
    total = 0
    for r in records:
        batch.append(r)
        total += len(r)
        if total >= size:
            yield b"".join(batch)
            batch, total = [], 0
    if batch:
        yield b"".join(batch)


def _writeAll(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def _removeAll(paths: list[str]) -> None:
    for path in paths:
        _remove(path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _created(name: str) -> int:
    """When a file (``node.<time ns>.<pid>.aof``) was made."""
    try:
        return int(name.rsplit(".", 3)[-3])
    except ValueError:
        return 0


def _writer(path: str) -> int:
    """The pid of the process that made a file."""
    try:
        return int(path.rsplit(".", 2)[-2])
    except ValueError:
        return 0


# -- the compact form ----------------------------------------------------------------------

def ownRecords(slots: Iterable[int], stamp: int | None = None) -> Iterator[bytes]:
    """OWN records for ``slots`` (ranges ``a-b``), stamped ``stamp`` (default: now)."""
    ranges = [b"%d-%d" % run for run in _runs(sorted(slots))]
    stamp = b"%d" % (time.time_ns() if stamp is None else stamp)
    for i in range(0, len(ranges), 1024):
        yield record([b"OWN", stamp, *ranges[i:i + 1024]])


def _ownedSlots(args: list[bytes]) -> Iterator[int]:
    for spec in args[2:]:
        start, _, end = spec.partition(b"-")
        first, last = int(start), int(end or start)
        if not 0 <= first <= last < 16384:
            raise Corrupt(f"an OWN record with slots {spec!r}")
        yield from range(first, last + 1)


def _runs(slots: list[int]) -> Iterator[tuple[int, int]]:
    start = prev = None
    for s in slots:
        if start is None:
            start = prev = s
        elif s == prev + 1:
            prev = s
        else:
            yield start, prev
            start = prev = s
    if start is not None:
        yield start, prev


def keyRecords(ks: Keyspace, key: bytes, value: Any) -> Iterator[bytes]:
    """The records that make ``key`` as it is (its value, then its expiry)."""
    kind = type(value)
    if kind is bytes:
        yield record([b"SET", key, value])
    else:
        if kind is dict:
            name, items = b"HSET", [x for pair in value.items() for x in pair]
            step = 2 * ITEMS_PER_RECORD
        elif kind is typed.ZSet:
            name, step = b"ZADD", 2 * ITEMS_PER_RECORD
            items = [x for m, s in value.scores.items() for x in (repr(s).encode(), m)]
        else:
            name, items, step = (b"RPUSH" if kind is deque else b"SADD"), list(value), \
                ITEMS_PER_RECORD
        for i in range(0, len(items), step):
            yield record([name, key, *items[i:i + step]])
    deadline = ks.expires.get(key)
    if deadline is not None:
        yield expiryRecord(ks, key, deadline)


def expiryRecord(ks: Keyspace, key: bytes, deadline: float) -> bytes:
    ms = int((deadline - ks.clock() + time.time()) * 1000)
    return record([b"PEXPIREAT", key, b"%d" % ms])


def dump(ks: Keyspace, slots: set[int], stamp: int | None = None) -> Iterator[bytes]:
    """The compact form of the keys of ``slots``: OWN of them, then every key."""
    yield from ownRecords(slots, stamp)
    for slot in sorted(slots):
        for key in ks.keysOfSlot(slot):
            value = ks.value(key)
            if value is not None:
                yield from keyRecords(ks, key, value)


# -- replaying -----------------------------------------------------------------------------

class Corrupt(Exception):
    """An append-only file is damaged before its end: not something to cut off."""


def replay(paths: list[str], ks: Keyspace,
           apply: Callable[[Keyspace, list[bytes], Callable[[bytes], bool]], None],
           mine: Callable[[str], bool], keep: Callable[[int], bool]) -> int:
    """Apply the records of ``paths`` that hold the latest keys of their slots (see OWN)
    among the slots to ``keep``, in order, a transaction only whole. A last record cut
    short in one of ``mine`` is cut off the file, with a log line (the others' belong to
    live workers, in mid-write maybe); damage before the end raises Corrupt. ``apply``
    gets a record and the test of the keys it may touch. Returns the records applied."""
    latest: dict[int, tuple[int, int, int]] = {}  # slot -> (stamp, file, record) of its OWN
    for i, path in enumerate(paths):
        for j, (args, _) in enumerate(_records(path)):
            if args[0] == b"OWN":
                stamp = int(args[1])
                for slot in _ownedSlots(args):
                    if keep(slot) and stamp >= latest.get(slot, (-1,))[0]:
                        latest[slot] = (stamp, i, j)
    count = 0
    at = [0, 0]  # the file and the record being replayed

    def current(key: bytes) -> bool:
        own = latest.get(keySlot(key))
        return own is not None and own[1] == at[0] and own[2] < at[1]

    for i, path in enumerate(paths):
        transaction: list[tuple[list[bytes], int]] | None = None
        end = 0
        for j, (args, after) in enumerate(_records(path)):
            end, at[:] = after, (i, j)
            name = args[0].upper()
            if name == b"MULTI":
                transaction = []
            elif name == b"EXEC" and transaction is not None:
                for queued, at[1] in transaction:
                    apply(ks, queued, current)
                transaction = None
            elif transaction is not None:
                transaction.append((args, j))
            elif name != b"OWN":
                apply(ks, args, current)
            count += 1
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            continue
        if end < size and mine(path):
            log.warning("dropped %d bytes at the end of %s (a record cut off by a "
                        "crash), as redis-check-aof --fix would", size - end, path)
            os.truncate(path, end)
    return count


def _records(path: str) -> Iterator[tuple[list[bytes], int]]:
    """Each complete record of the file and the offset after it (none if the file went
    meanwhile: another worker replaced it); Corrupt for a record that is not one, where
    more follows than a record cut short by a crash."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos, size = 0, len(m)
            while pos < size:
                parsed = _parseAt(m, pos, size)
                if parsed is None:
                    raise Corrupt(f"{path}: no record at offset {pos} of {size}")
                if parsed == _SHORT:
                    return
                args, pos = parsed
                yield args, pos


_SHORT = "short"  # the bytes left are the start of a record: a crash cut it short
_PARTIAL_LINE = re.compile(rb"[*$][0-9]*\r?")


def _parseAt(m: Any, pos: int, size: int) -> tuple[list[bytes], int] | str | None:
    """The record at ``pos`` and the offset after it; _SHORT if the file ends inside
    it; None if the bytes there are not a record."""
    header = _line(m, pos, size, b"*")
    if type(header) is not tuple:
        return header
    count, pos = header
    args = []
    for _ in range(count):
        head = _line(m, pos, size, b"$")
        if type(head) is not tuple:
            return head
        length, start = head
        if start + length + 2 > size:
            return _SHORT if m[start + length:size] == b"\r\n"[:max(0, size - start - length)] \
                else None
        if m[start + length:start + length + 2] != b"\r\n":
            return None
        args.append(m[start:start + length])
        pos = start + length + 2
    return (args, pos) if args else None


def _line(m: Any, pos: int, size: int, kind: bytes) -> tuple[int, int] | str | None:
    """A ``*N`` or ``$N`` line at ``pos``: (N, the offset after it), _SHORT or None."""
    if pos >= size:
        return _SHORT
    eol = m.find(b"\r\n", pos, min(size, pos + 24))
    if eol < 0:
        rest = m[pos:min(size, pos + 24)]
        return _SHORT if size - pos < 24 and _PARTIAL_LINE.fullmatch(rest) \
            and rest[:1] == kind else None
    text = m[pos:eol]
    if text[:1] != kind or not text[1:].isdigit():
        return None
    return int(text[1:]), eol + 2


