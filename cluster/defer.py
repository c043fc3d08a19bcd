"""Deferred: a result that is not there yet, with a chain of callbacks and errbacks.

The hard part is chaining. When a callback returns another Deferred, the outer chain
pauses until the inner one fires, and the inner result then flows on down the outer
chain. Doing that by recursion would overflow the stack on long chains (a Deferred that
waits on a Deferred that waits on ... thousands deep). ``_runCallbacks`` therefore keeps
an explicit stack of Deferreds: the inner Deferred's last callback is a ``_CONTINUE``
marker naming the outer one; meeting it, the loop hands the result over and pushes the
outer Deferred instead of calling into it.

Unhandled errors: when a chain ends on a Failure, the Failure is parked in a small
``_DebugInfo`` object whose ``__del__`` logs "Unhandled error in Deferred" if nobody
adds an errback before the Deferred is garbage-collected. Deferreds that succeed never
allocate one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from functools import wraps
from typing import Any

from cluster.error import TimeoutError
from cluster.failure import Failure

_LOCKS = ("DeferredLock", "DeferredSemaphore", "DeferredQueue", "QueueOverflow",
          "QueueUnderflow")  # defined in cluster.locks, which builds on this module
__all__ = [
    "Deferred", "succeed", "fail", "maybeDeferred", "DeferredList", "gatherResults",
    "inlineCallbacks", "returnValue", "ensureDeferred", "deferLater", "AlreadyCalledError",
    "CancelledError", "FirstError", "TimeoutError",
    *_LOCKS,
]

log = logging.getLogger("cluster")


class AlreadyCalledError(Exception):
    """A Deferred was fired twice."""


class CancelledError(Exception):
    """A Deferred was cancelled."""


class FirstError(Exception):
    """The first failure of a ``gatherResults`` or ``DeferredList(fireOnOneErrback=True)``."""

    def __init__(self, failure: Failure, index: int) -> None:
        super().__init__(failure, index)
        self.subFailure = failure
        self.index = index

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure!r}]"

    def __eq__(self, other: object) -> bool:
        """Equal by ``(subFailure, index)``, as Twisted's; a tuple compares the same way."""
        if isinstance(other, FirstError):
            return (self.subFailure, self.index) == (other.subFailure, other.index)
        if isinstance(other, tuple):
            return (self.subFailure, self.index) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((id(self.subFailure), self.index))


class _DebugInfo:
    """Holds the Failure a chain ended on; logs it if still unhandled when collected."""

    __slots__ = ("failResult",)

    def __init__(self) -> None:
        self.failResult: Failure | None = None

    def __del__(self) -> None:
        if self.failResult is not None:
            log.error("Unhandled error in Deferred:\n%s", self.failResult.getTraceback())


def passthru(arg: Any) -> Any:
    return arg


def _CONTINUE(result: Any) -> Any:  # marker only: never called
    raise AssertionError("_CONTINUE is a marker")


_NO_RESULT = object()


class Deferred:
    """A callback chain fired once with a result (``callback``) or a Failure (``errback``)."""

    __slots__ = (
        "callbacks", "called", "paused", "result", "_canceller", "_runningCallbacks",
        "_chainedTo", "_suppressAlreadyCalled", "_debugInfo", "__weakref__",
    )

    def __init__(self, canceller: Callable[[Deferred], None] | None = None) -> None:
        self.callbacks: list = []
        self.called = False
        self.paused = 0
        self._canceller = canceller
        self._runningCallbacks = False
        self._chainedTo: Deferred | None = None
        self._suppressAlreadyCalled = False
        self._debugInfo: _DebugInfo | None = None

    # -- building the chain ---------------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Callable[..., Any] | None = None,
        callbackArgs: tuple | None = None,
        callbackKeywords: dict | None = None,
        errbackArgs: tuple | None = None,
        errbackKeywords: dict | None = None,
    ) -> Deferred:
        """Add a callback and an errback at the same position in the chain; return self.
        ``None`` for any of the arguments means none (as in Twisted)."""
        if errback is None:
            errback = passthru
        self.callbacks.append(
            ((callback, callbackArgs or (), callbackKeywords),
             (errback, errbackArgs or (), errbackKeywords))
        )
        if self.called:
            self._runCallbacks()
        return self

    def addCallback(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred:
        """Add a callback run with the result (and ``args``) when this fires successfully."""
        self.callbacks.append(((callback, args, kw), (passthru, (), None)))
        if self.called:
            self._runCallbacks()
        return self

    def addErrback(self, errback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred:
        """Add an errback run with the Failure when this fires with an error."""
        self.callbacks.append(((passthru, (), None), (errback, args, kw)))
        if self.called:
            self._runCallbacks()
        return self

    def addBoth(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred:
        """Add one function as both callback and errback."""
        item = (callback, args, kw)
        self.callbacks.append((item, item))
        if self.called:
            self._runCallbacks()
        return self

    def chainDeferred(self, d: Deferred) -> Deferred:
        """Fire ``d`` with whatever this Deferred's chain produces at this point."""
        d._chainedTo = self
        return self.addCallbacks(d.callback, d.errback)

    def addTimeout(
        self,
        timeout: float,
        clock: Any,
        onTimeoutCancel: Callable[[Any, float], Any] | None = None,
    ) -> Deferred:
        """Cancel this Deferred after ``timeout`` seconds on ``clock``; it then fails with
        ``TimeoutError`` (or whatever ``onTimeoutCancel(result, timeout)`` returns)."""
        timedOut = [False]

        def timeItOut() -> None:
            timedOut[0] = True
            self.cancel()

        delayedCall = clock.callLater(timeout, timeItOut)

        def convertCancelled(result: Any) -> Any:
            if timedOut[0]:
                if onTimeoutCancel is not None:
                    return onTimeoutCancel(result, timeout)
                if isinstance(result, Failure) and result.check(CancelledError):
                    return Failure(TimeoutError(f"Deferred timed out after {timeout} seconds"))
            return result

        def cancelTimeout(result: Any) -> Any:
            if delayedCall.active():
                delayedCall.cancel()
            return result

        self.addBoth(convertCancelled)
        self.addBoth(cancelTimeout)
        return self

    # -- firing ---------------------------------------------------------------------------

    def callback(self, result: Any = None) -> None:
        """Fire the chain with a successful result. Raises AlreadyCalledError if fired."""
        if isinstance(result, Deferred):
            raise TypeError("callback() cannot be given a Deferred")
        self._startRunCallbacks(result)

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire the chain with a Failure (an exception is wrapped; None takes the current one)."""
        if fail is None:
            fail = Failure()
        elif not isinstance(fail, Failure):
            fail = Failure(fail)
        self._startRunCallbacks(fail)

    def pause(self) -> None:
        """Stop running callbacks until ``unpause``."""
        self.paused += 1

    def unpause(self) -> None:
        """Resume running callbacks once every ``pause`` is matched."""
        self.paused -= 1
        if self.paused:
            return
        if self.called:
            self._runCallbacks()

    def cancel(self) -> None:
        """Cancel: call the canceller, then errback with CancelledError unless it fired.

        Cancelling a Deferred that is waiting on an inner Deferred cancels the inner one.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                canceller(self)
            else:
                # whoever would have fired us later must not get AlreadyCalledError
                self._suppressAlreadyCalled = True
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            self.result.cancel()

    def _startRunCallbacks(self, result: Any) -> None:
        if self.called:
            if self._suppressAlreadyCalled:
                self._suppressAlreadyCalled = False
                return
            raise AlreadyCalledError(f"{self!r} was already fired")
        self.called = True
        self.result = result
        self._canceller = None  # fired: nothing to cancel, and no cycle through it
        self._runCallbacks()

    def _runCallbacks(self) -> None:
        if self._runningCallbacks:
            return  # a callback added callbacks to its own Deferred; the loop below runs them
        chain = [self]
        while chain:
            current = chain[-1]
            if current.paused:
                return
            finished = True
            current._chainedTo = None
            callbacks = current.callbacks
            while callbacks:
                item = callbacks.pop(0)
                fn, args, kw = item[1] if isinstance(current.result, Failure) else item[0]
                if fn is _CONTINUE:
                    chainee = args[0]
                    chainee.result = current.result
                    current.result = None
                    if current._debugInfo is not None:
                        current._debugInfo.failResult = None
                    chainee.paused -= 1
                    chain.append(chainee)
                    finished = False
                    break
                try:
                    current._runningCallbacks = True
                    try:
                        if kw:
                            current.result = fn(current.result, *args, **kw)
                        else:
                            current.result = fn(current.result, *args)
                    finally:
                        current._runningCallbacks = False
                except BaseException:
                    current.result = Failure()
                else:
                    inner = current.result
                    if isinstance(inner, Deferred):
                        if inner is current:
                            current.result = Failure(
                                TypeError("a callback returned the Deferred it belongs to"))
                            continue
                        innerResult = getattr(inner, "result", _NO_RESULT)
                        if (
                            innerResult is _NO_RESULT
                            or isinstance(innerResult, Deferred)
                            or inner.paused
                        ):
                            current.paused += 1
                            current._chainedTo = inner
                            cont = (_CONTINUE, (current,), None)
                            inner.callbacks.append((cont, cont))
                            break
                        inner.result = None
                        if inner._debugInfo is not None:
                            inner._debugInfo.failResult = None
                        current.result = innerResult
            if finished:
                result = current.result
                if isinstance(result, Failure):
                    result.cleanFailure()
                    if current._debugInfo is None:
                        current._debugInfo = _DebugInfo()
                    current._debugInfo.failResult = result
                elif current._debugInfo is not None:
                    current._debugInfo.failResult = None
                chain.pop()

    # -- awaiting -------------------------------------------------------------------------

    def __await__(self) -> Generator[Deferred, Any, Any]:
        """``await d`` inside a coroutine driven by ``ensureDeferred``."""
        result = yield self
        return result

    __iter__ = __await__

    def __repr__(self) -> str:
        state = f"result: {getattr(self, 'result', None)!r}" if self.called else "waiting"
        return f"<Deferred at 0x{id(self):x} {state}>"


def succeed(result: Any = None) -> Deferred:
    """A Deferred that has already fired with ``result``."""
    d = Deferred()
    d.callback(result)
    return d


def fail(result: Failure | BaseException | None = None) -> Deferred:
    """A Deferred that has already failed with ``result``."""
    d = Deferred()
    d.errback(result)
    return d


def maybeDeferred(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred:
    """Call ``f`` and wrap whatever it returns or raises in a Deferred."""
    try:
        result = f(*args, **kw)
    except BaseException:
        return fail(Failure())
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if isinstance(result, Coroutine):
        return ensureDeferred(result)
    return succeed(result)


class DeferredList(Deferred):
    """Fires with ``[(success, result), ...]`` once every Deferred in the list has fired."""

    __slots__ = ("_deferredList", "resultList", "finishedCount", "fireOnOneCallback",
                 "fireOnOneErrback", "consumeErrors")

    def __init__(
        self,
        deferredList: Iterable[Deferred],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        self._deferredList = list(deferredList)
        self.resultList: list = [None] * len(self._deferredList)
        super().__init__(canceller=_cancelDeferredList)
        self.finishedCount = 0
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        if not self._deferredList and not fireOnOneCallback:
            self.callback(self.resultList)
        for index, d in enumerate(self._deferredList):
            d.addCallbacks(
                self._cbDeferred, self._cbDeferred,
                callbackArgs=(index, True), errbackArgs=(index, False),
            )

    def _cbDeferred(self, result: Any, index: int, succeeded: bool) -> Any:
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded and self.fireOnOneCallback:
                self.callback((result, index))
            elif not succeeded and self.fireOnOneErrback:
                self.errback(Failure(FirstError(result, index)))
            elif self.finishedCount == len(self.resultList):
                self.callback(self.resultList)
        if not succeeded and self.consumeErrors:
            return None
        return result


def _cancelDeferredList(dl: Deferred) -> None:
    """Cancel every Deferred of the list; one whose canceller raises is logged, and the
    others are cancelled all the same."""
    for d in dl._deferredList:  # type: ignore[attr-defined]
        try:
            d.cancel()
        except Exception:
            log.error("Exception raised from user supplied canceller:\n%s",
                      Failure().getTraceback())


def gatherResults(deferredList: Iterable[Deferred], consumeErrors: bool = False) -> Deferred:
    """Fires with the list of results, or fails with FirstError on the first failure."""
    dl = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    return dl.addCallback(lambda results: [r for _, r in results])


def gatherFirst(deferredList: Iterable[Deferred]) -> Deferred:
    """``gatherResults`` that fails with the first failure itself (not wrapped in
    FirstError), the others consumed: for callers that relay the error as it came."""
    d = gatherResults(deferredList, consumeErrors=True)
    return d.addErrback(lambda f: f.value.subFailure if f.check(FirstError) else f)


def deferLater(clock: Any, delay: float, callable: Callable[..., Any] | None = None,
               *args: Any, **kw: Any) -> Deferred:
    """A Deferred that fires with ``callable(*args, **kw)`` after ``delay`` seconds."""

    def cancel(_: Deferred) -> None:
        delayedCall.cancel()

    d = Deferred(cancel)
    if callable is not None:
        d.addCallback(lambda _: callable(*args, **kw))
    delayedCall = clock.callLater(delay, d.callback, None)
    return d


# -- generators and coroutines --------------------------------------------------------------


class _DefGen_Return(BaseException):  # noqa: N801 - Twisted's name
    def __init__(self, value: Any) -> None:
        self.value = value


def returnValue(val: Any) -> None:
    """Return ``val`` from an ``inlineCallbacks`` generator (a plain ``return`` also works)."""
    raise _DefGen_Return(val)


class _Driver:
    """Runs a generator or coroutine that yields Deferreds, feeding each result back in.

    A Deferred that has already fired is consumed in the same loop iteration, so a long
    run of synchronous results never recurses.
    """

    __slots__ = ("gen", "deferred", "waiting", "current")

    def __init__(self, gen: Any) -> None:
        self.gen = gen
        self.deferred = Deferred(self._cancel)
        self.waiting: list | None = None
        self.current: Deferred | None = None

    def _cancel(self, outer: Deferred) -> None:
        """Cancel what the body waits on and let the body decide, as Twisted does: the
        outer Deferred then fires once, with whatever the body finally returns or raises
        (CancelledError if it does not catch it), never first with CancelledError and
        again later."""
        current = self.current
        if current is None:
            return  # not waiting on anything: Deferred.cancel fails it with CancelledError
        unfinished = self.deferred = Deferred()
        # the outer chain waits on ``unfinished``: an errback ahead of every callback
        # swaps the marker failure for it
        outer.callbacks.insert(0, ((passthru, (), None), (lambda _: unfinished, (), None)))
        outer.errback(Failure(CancelledError()))
        current.cancel()

    def _resume(self, result: Any, waiting: list) -> None:
        if waiting[0]:
            waiting[0] = False
            waiting[1] = result
        else:
            self.step(result)

    def step(self, result: Any = None) -> None:
        gen = self.gen
        while True:
            self.current = None
            try:
                if isinstance(result, Failure):
                    result = result.throwExceptionIntoGenerator(gen)
                else:
                    result = gen.send(result)
            except StopIteration as e:
                self.deferred.callback(e.value)
                return
            except _DefGen_Return as e:
                self.deferred.callback(e.value)
                return
            except BaseException:
                self.deferred.errback(Failure())
                return
            if isinstance(result, Deferred):
                waiting = [True, None]
                self.current = result
                result.addBoth(self._resume, waiting)
                if waiting[0]:
                    waiting[0] = False
                    return
                result = waiting[1]


def inlineCallbacks(f: Callable[..., Generator]) -> Callable[..., Deferred]:
    """Decorate a generator function: each ``yield d`` waits for ``d``; returns a Deferred."""

    @wraps(f)
    def unwind(*args: Any, **kw: Any) -> Deferred:
        try:
            gen = f(*args, **kw)
        except _DefGen_Return as e:
            return succeed(e.value)
        except BaseException:
            return fail(Failure())
        if not isinstance(gen, Generator):
            raise TypeError(f"inlineCallbacks requires a generator function; got {gen!r}")
        driver = _Driver(gen)
        driver.step()
        return driver.deferred

    return unwind


def ensureDeferred(coro: Awaitable[Any] | Deferred) -> Deferred:
    """Run a coroutine (``async def``) and return a Deferred of its result."""
    if isinstance(coro, Deferred):
        return coro
    if not isinstance(coro, Coroutine | Generator):
        raise TypeError(f"ensureDeferred needs a coroutine or a Deferred, not {coro!r}")
    driver = _Driver(coro)
    driver.step()
    return driver.deferred


def __getattr__(name: str) -> Any:
    """Twisted's coordination primitives by their names here too; they live in
    ``cluster.locks``, built on this module, so they are fetched on first use (importing
    either module first works)."""
    if name in _LOCKS:
        from cluster import locks

        return getattr(locks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
