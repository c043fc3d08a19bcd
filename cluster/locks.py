"""Coordination on the reactor, as Twisted's: ``DeferredLock``, ``DeferredSemaphore`` and
``DeferredQueue``. Waiting is a Deferred that fires when the turn comes; cancelling it
takes the waiter out of line. (``cluster.defer`` exports these names.)"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from cluster.defer import Deferred, maybeDeferred, succeed


class QueueOverflow(Exception):
    """``put`` on a ``DeferredQueue`` holding ``size`` objects already."""


class QueueUnderflow(Exception):
    """``get`` on a ``DeferredQueue`` with ``backlog`` getters waiting already."""


class _Primitive:
    """What a lock and a semaphore share: a line of waiters, ``run`` and ``async with``."""

    def __init__(self) -> None:
        self.waiting: deque[Deferred] = deque()

    def _wait(self) -> Deferred:
        d = Deferred(canceller=self._cancelWait)
        self.waiting.append(d)
        return d

    def _cancelWait(self, d: Deferred) -> None:
        self.waiting.remove(d)  # then cancel() fails it with CancelledError

    def acquire(self) -> Deferred:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        """Acquire, call ``f``, release once its result (or Deferred) is in; fires with
        that result."""
        def call(_: Any) -> Deferred:
            return maybeDeferred(f, *args, **kwargs).addBoth(release)

        def release(result: Any) -> Any:
            self.release()
            return result

        return self.acquire().addCallback(call)

    async def __aenter__(self) -> _Primitive:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


class DeferredLock(_Primitive):
    """A lock: ``acquire`` fires (with the lock) once it is yours; ``release`` gives it
    to the next waiter."""

    def __init__(self) -> None:
        super().__init__()
        self.locked = False

    def acquire(self) -> Deferred:
        if self.locked:
            return self._wait()
        self.locked = True
        return succeed(self)

    def release(self) -> None:
        if not self.locked:
            raise RuntimeError("release of an unlocked DeferredLock")
        if self.waiting:
            self.waiting.popleft().callback(self)  # stays locked: the next holder has it
        else:
            self.locked = False


class DeferredSemaphore(_Primitive):
    """A semaphore of ``tokens``: at most that many holders at once (``limit``)."""

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError("DeferredSemaphore needs at least one token")
        super().__init__()
        self.tokens = tokens
        self.limit = tokens

    def acquire(self) -> Deferred:
        if self.tokens:
            self.tokens -= 1
            return succeed(self)
        return self._wait()

    def release(self) -> None:
        if self.tokens >= self.limit:
            raise RuntimeError("release of a DeferredSemaphore with every token free")
        if self.waiting:
            self.waiting.popleft().callback(self)
        else:
            self.tokens += 1


class DeferredQueue:
    """A queue whose ``get`` is a Deferred: it fires with the next object ``put``. At most
    ``size`` objects wait for a getter (else ``put`` raises QueueOverflow) and at most
    ``backlog`` getters wait for an object (else ``get`` raises QueueUnderflow)."""

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        self.size = size
        self.backlog = backlog
        self.waiting: deque[Deferred] = deque()
        self.pending: deque[Any] = deque()

    def put(self, obj: Any) -> None:
        if self.waiting:
            self.waiting.popleft().callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow()

    def get(self) -> Deferred:
        if self.pending:
            return succeed(self.pending.popleft())
        if self.backlog is None or len(self.waiting) < self.backlog:
            d = Deferred(canceller=self.waiting.remove)
            self.waiting.append(d)
            return d
        raise QueueUnderflow()
