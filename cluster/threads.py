"""Threads beside the reactor, as Twisted's: a bounded pool for blocking calls
(``deferToThread``, ``reactor.callInThread``) and ``blockingCallFromThread`` for the
other direction.

The pool starts its threads only when work comes (up to ``maxthreads``) and is stopped
when the reactor shuts down: the threads finish their jobs and are joined, for at most
``shutdownTimeout`` seconds (a hung job does not hold the exit: the threads are daemons).
A job's result reaches the reactor through ``callFromThread``; a thread never touches
reactor state itself.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from cluster.defer import Deferred, maybeDeferred
from cluster.failure import Failure

log = logging.getLogger("cluster")

__all__ = ["ThreadPool", "deferToThread", "deferToThreadPool", "blockingCallFromThread"]

_STOP = object()


class ThreadPool:
    """At most ``maxthreads`` threads running queued jobs, started as needed."""

    shutdownTimeout = 5.0  # seconds ``stop`` waits for running jobs, in all

    def __init__(self, minthreads: int = 0, maxthreads: int = 10, name: str = "pool") -> None:
        if maxthreads < 1 or minthreads < 0 or minthreads > maxthreads:
            raise ValueError("need 0 <= minthreads <= maxthreads and maxthreads >= 1")
        self.min = minthreads
        self.max = maxthreads
        self.name = name
        self.threads: list[threading.Thread] = []
        self.started = False
        self.joined = False
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread has taken yet
        self._lock = threading.Lock()
        self._numbers = itertools.count()

    def start(self) -> None:
        """Accept work (again, after ``stop``); ``minthreads`` threads start now."""
        self.started = True
        self.joined = False
        with self._lock:
            while len(self.threads) < self.min:
                self._startThread()

    def adjustPoolsize(self, minthreads: int | None = None, maxthreads: int | None = None) -> None:
        """New bounds: threads start up to the new minimum, and those over the new
        maximum leave once their job is done."""
        minthreads = self.min if minthreads is None else minthreads
        maxthreads = self.max if maxthreads is None else maxthreads
        if maxthreads < 1 or minthreads < 0 or minthreads > maxthreads:
            raise ValueError("need 0 <= minthreads <= maxthreads and maxthreads >= 1")
        self.min, self.max = minthreads, maxthreads
        with self._lock:
            for _ in range(len(self.threads) - self.max):
                self._jobs.put(_STOP)
        if self.started:
            self.start()

    def callInThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in a pool thread; an exception it raises is logged."""
        self.callInThreadWithCallback(None, f, *args, **kwargs)

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], Any] | None,
                                 f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in a pool thread, then ``onResult(True, result)`` or
        ``onResult(False, Failure)`` in that thread."""
        if self.joined:
            raise RuntimeError("the thread pool has been stopped")
        with self._lock:
            self._jobs.put((onResult, f, args, kwargs))
            self._queued += 1
            if self.started and self._queued > self._idle and len(self.threads) < self.max:
                self._startThread()

    def stop(self) -> None:
        """Finish the queued jobs and join the threads (within ``shutdownTimeout``)."""
        self.joined = True
        with self._lock:
            threads = list(self.threads)
            for _ in threads:
                self._jobs.put(_STOP)
            # a thread still busy past the timeout takes its stop from this queue; a
            # restarted pool's threads use a fresh one
            self._jobs = queue.SimpleQueue()
            self._idle = self._queued = 0
        deadline = time.monotonic() + self.shutdownTimeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = [t.name for t in threads if t.is_alive()]
        if hung:
            log.warning("thread pool %s: %d thread(s) still busy after %.1fs; left behind",
                        self.name, len(hung), self.shutdownTimeout)

    def _startThread(self) -> None:
        thread = threading.Thread(target=self._work, args=(self._jobs,),
                                  name=f"{self.name}-{next(self._numbers)}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _work(self, jobs: queue.SimpleQueue) -> None:
        while True:
            with self._lock:
                current = jobs is self._jobs
                if current:
                    self._idle += 1
            job = jobs.get()
            with self._lock:
                if current and jobs is self._jobs:
                    self._idle -= 1
                    self._queued -= job is not _STOP
            if job is _STOP:
                break
            onResult, f, args, kwargs = job
            try:
                result = f(*args, **kwargs)
                ok = True
            except BaseException:
                result, ok = Failure(), False
            if onResult is not None:
                try:
                    onResult(ok, result)
                except Exception:
                    log.exception("thread pool %s: a result callback failed", self.name)
            elif not ok:
                log.error("thread pool %s: a job failed:\n%s", self.name,
                          result.getTraceback())
            del job, result
        with self._lock:
            self.threads.remove(threading.current_thread())


def deferToThreadPool(reactor: Any, pool: ThreadPool, f: Callable[..., Any], *args: Any,
                      **kwargs: Any) -> Deferred:
    """Run ``f`` in ``pool``; the Deferred fires in the reactor thread with its result."""
    d = Deferred()

    def onResult(ok: bool, result: Any) -> None:
        reactor.callFromThread(d.callback if ok else d.errback, result)

    pool.callInThreadWithCallback(onResult, f, *args, **kwargs)
    return d


def deferToThread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
    """Run ``f`` in the reactor's thread pool; the Deferred fires with its result."""
    from cluster.reactor import reactor

    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)


def blockingCallFromThread(reactor: Any, f: Callable[..., Any], *args: Any,
                           **kwargs: Any) -> Any:
    """From a thread other than the reactor's: run ``f`` in the reactor thread, wait for
    its result (a Deferred's, if it returns one) and return it, or raise its error."""
    answer: queue.SimpleQueue = queue.SimpleQueue()

    def call() -> None:
        maybeDeferred(f, *args, **kwargs).addBoth(answer.put)

    reactor.callFromThread(call)
    result = answer.get()
    if isinstance(result, Failure):
        result.raiseException()
    return result
