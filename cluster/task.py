"""Twisted's ``twisted.internet.task`` on this reactor: ``LoopingCall`` (call a function
every N seconds), ``deferLater``, ``react`` (run a main function and exit with its
outcome) and ``coiterate`` with the ``Cooperator`` names of ``cluster.cooperator`` (run
iterators a slice at a time, so long work shares the loop)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from cluster.cooperator import (
    CooperativeTask,
    Cooperator,
    NotPaused,
    SchedulerError,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskFinished,
    TaskStopped,
)
from cluster.defer import CancelledError, Deferred, deferLater, maybeDeferred
from cluster.failure import Failure

__all__ = ["LoopingCall", "deferLater", "react", "coiterate", "Cooperator", "CooperativeTask",
           "SchedulerError", "SchedulerStopped", "TaskFinished", "TaskDone", "TaskStopped",
           "TaskFailed", "NotPaused"]


def _defaultClock() -> Any:
    from cluster.reactor import reactor

    return reactor


class LoopingCall:
    """Calls ``f(*a, **kw)`` every ``interval`` seconds on ``clock`` (the reactor unless
    set) from ``start`` until ``stop``. Calls keep to the schedule set at ``start`` (no
    drift); intervals missed while the loop was busy are skipped (``withCount`` tells
    how many). If ``f`` returns a Deferred, the next call waits for it. The Deferred
    ``start`` returns fires with the LoopingCall on ``stop``, or fails with what ``f``
    raised or its Deferred failed with, which also ends the loop."""

    def __init__(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.f, self.a, self.kw = f, a, kw
        self.running = False
        self.interval: float | None = None
        self.clock: Any = None
        self.call: Any = None  # the DelayedCall of the next run
        self._deferred: Deferred | None = None
        self._started = 0.0
        self._lastTick = 0  # the interval number of the last call
        self._count: Callable[[int], Any] | None = None

    @classmethod
    def withCount(cls, countCallable: Callable[[int], Any]) -> LoopingCall:
        """A LoopingCall that calls ``countCallable(n)``: ``n`` is the number of
        intervals since the last call (more than 1 when the loop was too busy to keep
        the schedule)."""
        self = cls(countCallable)
        self._count = countCallable
        return self

    def start(self, interval: float, now: bool = True) -> Deferred:
        """Begin: the first call at once (``now``) or after one interval."""
        if self.running:
            raise RuntimeError("LoopingCall is already running")
        if interval < 0:
            raise ValueError("interval must be >= 0")
        if self.clock is None:
            self.clock = _defaultClock()
        self.running = True
        self.interval = interval
        self._started = self.clock.seconds()
        self._lastTick = 0
        d = self._deferred = Deferred()
        if now:
            self()
        else:
            self._schedule()
        return d

    def stop(self) -> None:
        """End the loop; the Deferred ``start`` returned fires with the LoopingCall, at
        once, or when a Deferred the last call returned fires (or fails, with that)."""
        if not self.running:
            raise RuntimeError("LoopingCall is not running")
        self.running = False
        if self.call is not None:  # between calls, not waiting on one
            self.call.cancel()
            self.call = None
            d, self._deferred = self._deferred, None
            d.callback(self)

    def reset(self) -> None:
        """Start the schedule again from now (while waiting for a call's Deferred, the
        schedule goes on from when it fires)."""
        if not self.running:
            raise RuntimeError("LoopingCall is not running")
        if self.call is not None:
            self.call.cancel()
            self._started = self.clock.seconds()
            self._lastTick = 0
            self._schedule()

    def __call__(self) -> None:
        self.call = None
        if self._count is not None:
            tick = self._tickNow()
            result = maybeDeferred(self._count, max(1, tick - self._lastTick))
            self._lastTick = tick
        else:
            self._lastTick = self._tickNow()
            result = maybeDeferred(self.f, *self.a, **self.kw)
        result.addCallbacks(self._done, self._failed)

    def _tickNow(self) -> int:
        if not self.interval:
            return self._lastTick + 1
        return int((self.clock.seconds() - self._started) / self.interval + 1e-9)

    def _done(self, _: Any) -> None:
        if self.running:
            self._schedule()
        else:  # stopped while this call's Deferred was pending
            d, self._deferred = self._deferred, None
            d.callback(self)

    def _failed(self, failure: Failure) -> None:
        self.running = False
        d, self._deferred = self._deferred, None
        if d is not None:
            d.errback(failure)

    def _schedule(self) -> None:
        if not self.interval:
            self.call = self.clock.callLater(0, self)
            return
        nextTick = max(self._tickNow(), self._lastTick) + 1
        delay = self._started + nextTick * self.interval - self.clock.seconds()
        self.call = self.clock.callLater(max(0.0, delay), self)


def react(main: Callable[..., Any], argv: tuple | list = (), _reactor: Any = None) -> NoReturn:
    """Run the reactor, call ``main(reactor, *argv)`` and stop once the Deferred it
    returns fires; then exit: status 0 on success, the code of a SystemExit it failed
    with, 1 (after logging the failure) on any other error."""
    reactor = _reactor if _reactor is not None else _defaultClock()
    outcome: list = []

    def finish(result: Any) -> None:
        outcome.append(result)
        if reactor.running:
            reactor.stop()

    def begin() -> None:
        maybeDeferred(main, reactor, *argv).addBoth(finish)

    reactor.callWhenRunning(begin)
    reactor.run()
    result = outcome[0] if outcome else None
    if isinstance(result, Failure):
        if result.check(SystemExit):
            sys.exit(result.value.code)
        if not result.check(CancelledError):
            import logging

            logging.getLogger("cluster").error("main function failed:\n%s",
                                               result.getTraceback())
        sys.exit(1)
    sys.exit(0)


_cooperator = Cooperator()


def coiterate(iterator: Iterator[Any]) -> Deferred:
    """Run ``iterator`` a step at a time on the reactor, sharing the loop; the Deferred
    fires with the iterator once it is exhausted."""
    return _cooperator.coiterate(iterator)
