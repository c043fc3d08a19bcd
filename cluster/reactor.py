"""The reactor: one epoll loop per process that calls descriptors, timers and thread calls.

Some facts about epoll this module relies on:

- It is level-triggered here: a socket that stays readable is reported on every pass, so
  a descriptor may read as little as it likes per ``doRead``.
- Closing an fd removes it from the epoll set only when no other descriptor refers to
  the same open file (a ``dup``, a child process). So the reactor always unregisters a
  descriptor *before* anything closes it: it drops a descriptor whose ``doRead``/
  ``doWrite`` returned an exception first, and only then calls its ``connectionLost``,
  which is where transports close their socket.
- An fd number is reused as soon as it is closed. ``register`` can therefore meet an fd
  the set still knows (``FileExistsError``) and ``modify`` one it has forgotten
  (``FileNotFoundError``); ``_ctl`` turns one into the other instead of failing.

The hot path (readable -> ``doRead`` -> ``recv`` -> ``dataReceived`` -> ``write`` ->
``send``) is two dictionary lookups and two method calls above the system calls.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cluster import connect, ports
from cluster.defer import Deferred, DeferredList
from cluster.error import (
    CONNECTION_LOST,
    ReactorAlreadyRunning,
    ReactorNotRestartable,
    ReactorNotRunning,
)
from cluster.failure import Failure
from cluster.timers import DelayedCall, TimerQueue
from cluster.transport import startConnection

__all__ = ["Reactor", "DelayedCall", "reactor"]

log = logging.getLogger("cluster")

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_READ_EVENTS = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
_PHASES = ("before", "during", "after")


class _Waker:
    """An eventfd that ``callFromThread`` and signal handlers write to wake the loop."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def fileno(self) -> int:
        return self._fd

    def wake(self) -> None:
        try:
            os.eventfd_write(self._fd, 1)
        except OSError:
            pass  # the counter is full: the loop is awake already

    def doRead(self) -> None:
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass

    def connectionLost(self, reason: Any) -> None:
        pass

    def logPrefix(self) -> str:
        return "waker"


class Reactor(TimerQueue):
    """An epoll reactor. ``cluster.reactor.reactor`` is the process's one instance; tests
    may create private ones."""

    seconds = staticmethod(time.monotonic)

    def __init__(self) -> None:
        super().__init__()
        self._poller = select.epoll()
        self._readers: dict[int, Any] = {}
        self._writers: dict[int, Any] = {}
        self._threadCalls: deque = deque()
        self._triggers: dict[str, dict[str, list]] = {}
        self.running = False
        self._startedBefore = False
        self._stopping = False
        self._exit = False
        self._savedSignals: dict[int, Any] = {}
        self._waker = _Waker()
        self._internal = {self._waker.fileno()}
        self.addReader(self._waker)
        self._threadPool: Any = None
        self._threadPoolSize = 10

    # -- descriptors -----------------------------------------------------------------------

    def _ctl(self, fd: int, mask: int, known: bool) -> None:
        poller = self._poller
        if known:
            try:
                poller.modify(fd, mask)
            except FileNotFoundError:
                poller.register(fd, mask)
        else:
            try:
                poller.register(fd, mask)
            except FileExistsError:
                poller.modify(fd, mask)

    def addReader(self, reader: Any) -> None:
        """Call ``reader.doRead()`` whenever its fd is readable."""
        fd = reader.fileno()
        readers = self._readers
        if fd in readers:
            readers[fd] = reader
            return
        readers[fd] = reader
        if fd in self._writers:
            self._ctl(fd, _IN | _OUT, True)
        else:
            self._ctl(fd, _IN, False)

    def addWriter(self, writer: Any) -> None:
        """Call ``writer.doWrite()`` whenever its fd is writable."""
        fd = writer.fileno()
        writers = self._writers
        if fd in writers:
            writers[fd] = writer
            return
        writers[fd] = writer
        if fd in self._readers:
            self._ctl(fd, _IN | _OUT, True)
        else:
            self._ctl(fd, _OUT, False)

    def _remove(self, xer: Any, primary: dict, other: dict, otherMask: int) -> None:
        fd = xer.fileno()
        if primary.get(fd) is not xer:
            if fd != -1:
                return  # not registered
            # closed before it was removed: find it by identity
            for fd, obj in primary.items():  # noqa: B007
                if obj is xer:
                    break
            else:
                return
        del primary[fd]
        try:
            if fd in other:
                self._poller.modify(fd, otherMask)
            else:
                self._poller.unregister(fd)
        except OSError:
            pass  # already closed: the kernel dropped it from the set

    def removeReader(self, reader: Any) -> None:
        """Stop watching ``reader`` for readability."""
        self._remove(reader, self._readers, self._writers, _OUT)

    def removeWriter(self, writer: Any) -> None:
        """Stop watching ``writer`` for writability."""
        self._remove(writer, self._writers, self._readers, _IN)

    def getReaders(self) -> list[Any]:
        return [r for fd, r in self._readers.items() if fd not in self._internal]

    def getWriters(self) -> list[Any]:
        return [w for fd, w in self._writers.items() if fd not in self._internal]

    def removeAll(self) -> list[Any]:
        """Stop watching every (non-internal) descriptor; return them."""
        removed: dict[int, Any] = {}
        for fd, r in list(self._readers.items()):
            if fd not in self._internal:
                removed[id(r)] = r
                self.removeReader(r)
        for fd, w in list(self._writers.items()):
            if fd not in self._internal:
                removed[id(w)] = w
                self.removeWriter(w)
        return list(removed.values())

    def _disconnect(self, selectable: Any, why: Any) -> None:
        self.removeReader(selectable)
        self.removeWriter(selectable)
        failure = why if isinstance(why, Failure) else Failure(why)
        try:
            selectable.connectionLost(failure)
        except Exception:
            self._logError(selectable, Failure())

    def _logError(self, selectable: Any, failure: Failure) -> None:
        prefix = getattr(selectable, "logPrefix", None)
        name = prefix() if prefix else repr(selectable)
        log.error("Unhandled Error in %s:\n%s", name, failure.getTraceback())

    # -- the loop --------------------------------------------------------------------------

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run until ``stop()``; SIGINT/SIGTERM stop it when run in the main thread."""
        self.startRunning(installSignalHandlers)
        try:
            self.mainLoop()
        finally:
            self._restoreSignals()

    def startRunning(self, installSignalHandlers: bool = True) -> None:
        if self.running:
            raise ReactorAlreadyRunning("the reactor is already running")
        if self._startedBefore:
            raise ReactorNotRestartable("a reactor cannot be restarted once stopped")
        self._startedBefore = True
        self.running = True
        if installSignalHandlers and threading.current_thread() is threading.main_thread():
            self._installSignals()
        self.fireSystemEvent("startup")

    def mainLoop(self) -> None:
        poll = self._poller.poll
        readers = self._readers
        writers = self._writers
        heap = self._heap
        threadCalls = self._threadCalls
        monotonic = time.monotonic
        disconnect = self._disconnect
        readEvents, writeEvents = _READ_EVENTS, _WRITE_EVENTS
        while not self._exit:
            if threadCalls:
                timeout = 0.0
            elif heap:
                due = self._nextTime()
                timeout = -1.0 if due is None else max(0.0, due - monotonic())
            else:
                timeout = -1.0
            for fd, event in poll(timeout):
                if event & readEvents:
                    obj = readers.get(fd)
                    if obj is not None:
                        try:
                            why = obj.doRead()
                        except Exception:
                            why = Failure()
                            self._logError(obj, why)
                        if why is not None:
                            disconnect(obj, why)
                            continue
                if event & writeEvents:
                    obj = writers.get(fd)
                    if obj is not None:
                        try:
                            why = obj.doWrite()
                        except Exception:
                            why = Failure()
                            self._logError(obj, why)
                        if why is not None:
                            disconnect(obj, why)
            if heap:
                now = monotonic()
                if heap[0][0] <= now:
                    self._runDue(now, True)
            if threadCalls:
                self._runThreadCalls()

    def _runThreadCalls(self) -> None:
        calls = self._threadCalls
        for _ in range(len(calls)):
            f, args, kw = calls.popleft()
            try:
                f(*args, **kw)
            except Exception:
                log.error("Unhandled error in %r:\n%s", f, Failure().getTraceback())

    def stop(self) -> None:
        """Shut down: 'before shutdown' triggers (the loop waits for Deferreds they
        return), then 'during' (every connection is closed), then 'after'; then ``run``
        returns."""
        if not self.running or self._stopping:
            raise ReactorNotRunning("can't stop a reactor that isn't running")
        self._stopping = True
        self.callLater(0, self.fireSystemEvent, "shutdown")

    def _finishShutdown(self) -> None:
        for selectable in self.removeAll():
            try:
                selectable.connectionLost(Failure(CONNECTION_LOST))
            except Exception:
                self._logError(selectable, Failure())
        self.running = False
        self._exit = True

    # -- calls -----------------------------------------------------------------------------

    def callWhenRunning(self, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call ``f`` now if running, else once the reactor has started."""
        if self.running:
            f(*args, **kw)
            return None
        return self.addSystemEventTrigger("after", "startup", f, *args, **kw)

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Call ``f`` in the reactor thread soon; safe from any thread or signal handler."""
        self._threadCalls.append((f, args, kw))
        self._waker.wake()

    # -- threads ---------------------------------------------------------------------------

    def getThreadPool(self) -> Any:
        """The reactor's thread pool (a ``cluster.threads.ThreadPool``), made on first use
        and stopped, its threads joined, when the reactor shuts down."""
        if self._threadPool is None:
            from cluster.threads import ThreadPool

            self._threadPool = ThreadPool(0, self._threadPoolSize, "reactor")
            self._threadPool.start()
            self.addSystemEventTrigger("during", "shutdown", self._stopThreadPool)
        return self._threadPool

    def callInThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``f`` in the thread pool (its result is dropped; an exception logged)."""
        self.getThreadPool().callInThread(f, *args, **kw)

    def suggestThreadPoolSize(self, size: int) -> None:
        """At most ``size`` threads in the pool."""
        self._threadPoolSize = size
        if self._threadPool is not None:
            self._threadPool.adjustPoolsize(maxthreads=size)

    def _stopThreadPool(self) -> None:
        pool, self._threadPool = self._threadPool, None
        if pool is not None:
            pool.stop()

    # -- system events ---------------------------------------------------------------------

    def addSystemEventTrigger(self, phase: str, eventType: str, f: Callable[..., Any],
                              *args: Any, **kw: Any) -> tuple:
        """Run ``f`` in ``phase`` ('before', 'during', 'after') of ``eventType`` ('startup',
        'shutdown'); a 'before' trigger may return a Deferred the event waits for."""
        if phase not in _PHASES:
            raise KeyError(f"invalid phase {phase!r}")
        entry = (f, args, kw)
        self._triggers.setdefault(eventType, {}).setdefault(phase, []).append(entry)
        return (eventType, phase, entry)

    def removeSystemEventTrigger(self, triggerID: tuple) -> None:
        eventType, phase, entry = triggerID
        try:
            self._triggers[eventType][phase].remove(entry)
        except (KeyError, ValueError):
            raise ValueError(f"no such trigger: {triggerID!r}") from None

    def fireSystemEvent(self, eventType: str) -> None:
        """Run the triggers of ``eventType``, phase by phase."""
        phases = self._triggers.pop(eventType, {})
        waiting = []
        for f, args, kw in phases.get("before", ()):
            try:
                result = f(*args, **kw)
            except Exception:
                log.error("Error in 'before %s' trigger %r:\n%s", eventType, f,
                          Failure().getTraceback())
                continue
            if isinstance(result, Deferred):
                waiting.append(result.addErrback(self._logTriggerFailure, eventType))

        def rest(_: Any = None) -> None:
            for f, args, kw in phases.get("during", ()):
                self._guardTrigger(eventType, f, args, kw)
            if eventType == "shutdown":
                self._finishShutdown()
            for f, args, kw in phases.get("after", ()):
                self._guardTrigger(eventType, f, args, kw)

        if waiting:
            DeferredList(waiting).addCallback(rest)
        else:
            rest()

    def _guardTrigger(self, eventType: str, f: Callable[..., Any], args: tuple, kw: dict) -> None:
        try:
            f(*args, **kw)
        except Exception:
            log.error("Error in %s trigger %r:\n%s", eventType, f, Failure().getTraceback())

    @staticmethod
    def _logTriggerFailure(failure: Failure, eventType: str) -> None:
        log.error("Deferred of a 'before %s' trigger failed:\n%s", eventType,
                  failure.getTraceback())

    # -- signals ---------------------------------------------------------------------------

    def _installSignals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._savedSignals[sig] = signal.signal(sig, self._handleSignal)

    def _restoreSignals(self) -> None:
        for sig, handler in self._savedSignals.items():
            signal.signal(sig, handler)
        self._savedSignals.clear()

    def _handleSignal(self, signum: int, frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.callFromThread(self._stopIfRunning)

    def _stopIfRunning(self) -> None:
        if self.running and not self._stopping:
            self.stop()

    # -- connections -----------------------------------------------------------------------

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> ports.Port:
        """Listen on ``interface:port`` (port 0: the kernel picks; see ``getHost()``)."""
        return ports.listenTCP(self, port, factory, backlog, interface)

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                  interface: str = "") -> ports.Port:
        """listenTCP whose connections speak TLS; ``contextFactory`` is an
        ``ssl.SSLContext`` or has ``getContext()``."""
        return ports.listenSSL(self, port, factory, contextFactory, backlog, interface)

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any,
                   timeout: float = 30, bindAddress: Any = None) -> connect.Connector:
        """connectTCP, then TLS as the client."""
        return connect.connectTCP(self, host, port, factory, timeout, bindAddress,
                                  contextFactory)

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = 8192) -> Any:
        """Bind a UDP port and serve a DatagramProtocol; the port is its transport."""
        from cluster import udp

        return udp.listenUDP(self, port, protocol, interface, maxPacketSize)

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666,
                   wantPID: int = 0) -> ports.Port:
        """Listen on a Unix socket path (a stale socket file is replaced)."""
        return ports.listenUNIX(self, address, factory, backlog, mode)

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> connect.Connector:
        """Connect to ``host:port``; ``factory`` (a ClientFactory) hears the outcome."""
        return connect.connectTCP(self, host, port, factory, timeout, bindAddress)

    def connectUNIX(self, address: str, factory: Any, timeout: float = 30,
                    checkPID: int = 0) -> connect.Connector:
        return connect.connectUNIX(self, address, factory, timeout)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int,
                        factory: Any) -> ports.Port:
        """Accept on an already listening socket; the reactor takes its own dup of the fd."""
        return ports.adoptStreamPort(self, fileDescriptor, addressFamily, factory)

    def adoptStreamConnection(self, fileDescriptor: int, addressFamily: int,
                              factory: Any) -> Any:
        """Serve an already connected socket with a protocol from ``factory``; the reactor
        takes its own dup of the fd, so the caller may close its copy at once. Returns the
        transport (None if the factory refused)."""
        sock = socket.socket(addressFamily, socket.SOCK_STREAM, 0, os.dup(fileDescriptor))
        sock.setblocking(False)
        if addressFamily != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            peer = sock.getpeername()
        except OSError:
            peer = None
        return startConnection(self, sock, peer, factory)


reactor = Reactor()
