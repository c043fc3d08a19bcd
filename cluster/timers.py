"""Timed calls on a heap, shared by the reactor and the test ``Clock``.

The heap holds ``(time, seq, call)`` tuples. Cancelling or rescheduling a call does not
search the heap: it leaves the old tuple behind as dead (its ``seq`` no longer matches
the call's, or the call is cancelled), and dead tuples are skipped when they reach the
top, or swept out in one pass once they are more than half of the heap. So a cancelled
call costs nothing when its time comes, and ``seq`` keeps calls due at the same time in
the order they were scheduled.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import Any

from cluster.error import AlreadyCalled, AlreadyCancelled
from cluster.failure import Failure

log = logging.getLogger("cluster")


class DelayedCall:
    """A call scheduled by ``callLater``: ``cancel``, ``reset``, ``delay``, ``active``."""

    __slots__ = ("time", "func", "args", "kw", "cancelled", "called", "_seq", "_timers")

    def __init__(self, time: float, func: Callable[..., Any], args: tuple, kw: dict,
                 timers: TimerQueue) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.cancelled = False
        self.called = False
        self._seq = 0
        self._timers = timers

    def getTime(self) -> float:
        """When the call will run, on its clock's ``seconds()`` scale."""
        return self.time

    def _checkActive(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled(self)
        if self.called:
            raise AlreadyCalled(self)

    def cancel(self) -> None:
        """Stop the call from running. Raises AlreadyCancelled or AlreadyCalled."""
        self._checkActive()
        self.cancelled = True
        self.func = self.args = self.kw = None  # type: ignore[assignment]
        self._timers._forget()

    def reset(self, secondsFromNow: float) -> None:
        """Run the call ``secondsFromNow`` seconds from now instead."""
        self._checkActive()
        self.time = self._timers.seconds() + secondsFromNow
        self._timers._reschedule(self)

    def delay(self, secondsLater: float) -> None:
        """Push the call ``secondsLater`` seconds further out (negative: sooner)."""
        self._checkActive()
        self.time += secondsLater
        self._timers._reschedule(self)

    def active(self) -> bool:
        """True until the call has run or been cancelled."""
        return not (self.cancelled or self.called)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "called" if self.called else "pending"
        name = getattr(self.func, "__qualname__", self.func)
        return f"<DelayedCall {name} at {self.time:.6f} {state}>"


class TimerQueue:
    """The ``callLater`` machinery; subclasses supply ``seconds()``."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = 0
        self._dead = 0

    def seconds(self) -> float:
        raise NotImplementedError

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Call ``f(*args, **kw)`` after ``delay`` seconds; returns a DelayedCall."""
        call = DelayedCall(self.seconds() + delay, f, args, kw, self)
        self._push(call)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        """Every call still pending, in no particular order."""
        return [c for _, seq, c in self._heap if c._seq == seq and not c.cancelled]

    def _push(self, call: DelayedCall) -> None:
        self._seq += 1
        call._seq = self._seq
        heapq.heappush(self._heap, (call.time, self._seq, call))

    def _reschedule(self, call: DelayedCall) -> None:
        self._push(call)
        self._forget()

    def _forget(self) -> None:
        """One heap entry just went dead; sweep them all once they are half the heap."""
        self._dead += 1
        heap = self._heap
        if self._dead > 64 and self._dead * 2 > len(heap):
            heap[:] = [e for e in heap if e[2]._seq == e[1] and not e[2].cancelled]
            heapq.heapify(heap)
            self._dead = 0

    def _nextTime(self) -> float | None:
        """When the earliest live call is due, or None when there is none."""
        heap = self._heap
        while heap:
            t, seq, call = heap[0]
            if call._seq == seq and not call.cancelled:
                return t
            heapq.heappop(heap)
            self._dead -= 1
        return None

    def _runDue(self, now: float, onlyOlder: bool) -> None:
        """Run every call due at ``now``; with ``onlyOlder``, not those scheduled meanwhile."""
        heap = self._heap
        limit = self._seq if onlyOlder else None
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            t, seq, call = heap[0]
            if call._seq != seq or call.cancelled:
                pop(heap)
                self._dead -= 1
                continue
            if limit is not None and seq > limit:
                break
            pop(heap)
            call.called = True
            func, args, kw = call.func, call.args, call.kw
            call.func = call.args = call.kw = None  # type: ignore[assignment]
            try:
                func(*args, **kw)
            except Exception:
                log.error("Unhandled error in timed call %r:\n%s", func,
                          Failure().getTraceback())
