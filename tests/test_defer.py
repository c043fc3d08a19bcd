"""Deferred semantics, as Twisted users know them."""

from __future__ import annotations

import builtins
import gc
import logging

import pytest

from cluster import defer
from cluster.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    deferLater,
    ensureDeferred,
    fail,
    gatherResults,
    inlineCallbacks,
    maybeDeferred,
    returnValue,
    succeed,
)
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.testing import Clock


def result_of(d: Deferred):
    box = []
    d.addBoth(box.append)
    assert box, "deferred has not fired"
    return box[0]


def test_callback_return_value_feeds_next_callback():
    d = Deferred()
    d.addCallback(lambda x: x + 1).addCallback(lambda x: x * 10)
    d.callback(1)
    assert result_of(d) == 20


def test_callback_args_and_kwargs():
    d = Deferred()
    d.addCallback(lambda x, a, b=0: (x, a, b), 2, b=3)
    d.callback(1)
    assert result_of(d) == (1, 2, 3)


def test_exception_switches_to_errback_chain_and_back():
    seen = []
    d = Deferred()
    d.addCallback(lambda _: 1 / 0)
    d.addCallback(lambda _: seen.append("skipped"))
    d.addErrback(lambda f: (seen.append(f.type), "recovered")[1])
    d.addCallback(lambda x: seen.append(x))
    d.callback(None)
    assert seen == [ZeroDivisionError, "recovered"]


def test_returning_failure_switches_to_errback():
    d = Deferred()
    d.addCallback(lambda _: Failure(ValueError("no")))
    d.callback(None)
    f = result_of(d)
    assert isinstance(f, Failure) and f.check(ValueError)


def test_addCallbacks_runs_exactly_one_of_the_pair():
    calls = []
    d = Deferred()
    d.addCallbacks(lambda r: calls.append(("cb", r)), lambda f: calls.append(("eb", f)))
    d.errback(ValueError("x"))
    assert len(calls) == 1 and calls[0][0] == "eb"


def test_firing_twice_raises_already_called():
    d = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())


def test_callback_added_after_firing_runs_at_once():
    d = succeed(5)
    assert result_of(d.addCallback(lambda x: x + 1)) == 6
    assert d.called


def test_callback_with_a_deferred_is_refused():
    with pytest.raises(TypeError):
        Deferred().callback(Deferred())


def test_returned_deferred_pauses_the_outer_chain():
    inner = Deferred()
    outer = Deferred()
    seen = []
    outer.addCallback(lambda _: inner)
    outer.addCallback(seen.append)
    outer.callback(None)
    assert seen == []
    assert outer.paused
    inner.callback("inner result")
    assert seen == ["inner result"]
    assert not outer.paused


def test_returned_fired_deferred_result_is_taken_at_once():
    outer = succeed(1).addCallback(lambda _: succeed(2))
    assert result_of(outer) == 2


def test_inner_failure_flows_into_outer_errbacks():
    inner = Deferred()
    outer = succeed(None).addCallback(lambda _: inner)
    inner.errback(KeyError("k"))
    f = result_of(outer)
    assert f.check(KeyError)


def test_deep_nesting_of_waiting_deferreds_does_not_recurse():
    # d0 waits on d1, which waits on d2, ... 20000 deep; firing the bottom one
    # must carry its result all the way up without hitting the recursion limit
    depth = 20000
    deferreds = [Deferred() for _ in range(depth)]
    for outer, inner in zip(deferreds, deferreds[1:], strict=False):
        outer.addCallback(lambda _, inner=inner: inner)
    results = []
    deferreds[0].addCallback(results.append)
    for d in deferreds[:-1]:
        d.callback(None)
    assert results == []
    deferreds[-1].callback("bottom")
    assert results == ["bottom"]


def test_already_fired_inner_deferreds_deep_do_not_recurse():
    depth = 20000
    deferreds = [Deferred() for _ in range(depth)]
    for outer, inner in zip(deferreds, deferreds[1:], strict=False):
        outer.addCallback(lambda _, inner=inner: inner)
    deferreds[-1].callback("bottom")
    for d in reversed(deferreds[:-1]):
        d.callback(None)
    assert result_of(deferreds[0]) == "bottom"


def test_many_callbacks_on_one_deferred():
    d = Deferred()
    for _ in range(10000):
        d.addCallback(lambda x: x + 1)
    d.callback(0)
    assert result_of(d) == 10000


def test_callback_adding_callbacks_to_its_own_deferred():
    d = Deferred()
    seen = []

    def first(r):
        d.addCallback(lambda x: seen.append(("added", x)))
        return r + 1

    d.addCallback(first)
    d.callback(1)
    assert seen == [("added", 2)]


def test_cancel_calls_canceller_then_errbacks_cancelled():
    cancelled = []
    d = Deferred(canceller=cancelled.append)
    d.cancel()
    assert cancelled == [d]
    assert result_of(d).check(CancelledError)


def test_canceller_may_fire_the_deferred_itself():
    d = Deferred(canceller=lambda d: d.errback(ValueError("custom")))
    d.cancel()
    assert result_of(d).check(ValueError)


def test_cancel_without_canceller_suppresses_later_callback():
    d = Deferred()
    d.cancel()
    d.callback("late")  # no AlreadyCalledError: the source did not know
    assert result_of(d).check(CancelledError)


def test_cancel_after_fire_is_a_no_op():
    d = succeed(1)
    d.cancel()
    assert result_of(d) == 1


def test_cancel_reaches_the_inner_deferred_being_waited_on():
    inner = Deferred()
    outer = succeed(None).addCallback(lambda _: inner)
    outer.cancel()
    assert inner.called
    assert result_of(outer).check(CancelledError)


def test_add_timeout_fires_timeout_error():
    clock = Clock()
    d = Deferred()
    d.addTimeout(5, clock)
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.2)
    f = result_of(d)
    assert f.check(TimeoutError)
    assert isinstance(f.value, builtins.TimeoutError)
    assert defer.TimeoutError is TimeoutError


def test_add_timeout_is_cancelled_when_result_arrives():
    clock = Clock()
    d = Deferred()
    d.addTimeout(5, clock)
    d.callback("in time")
    assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert result_of(d) == "in time"


def test_add_timeout_on_timeout_cancel():
    clock = Clock()
    d = Deferred().addTimeout(1, clock, onTimeoutCancel=lambda r, t: f"gave up after {t}")
    clock.advance(1)
    assert result_of(d) == "gave up after 1"


def test_deferred_list_collects_results_in_order():
    a, b = Deferred(), Deferred()
    dl = DeferredList([a, b], consumeErrors=True)
    b.errback(ValueError("b"))
    a.callback("a")
    results = result_of(dl)
    assert results[0] == (True, "a")
    assert results[1][0] is False and results[1][1].check(ValueError)


def test_deferred_list_empty_fires_at_once():
    assert result_of(DeferredList([])) == []


def test_deferred_list_fire_on_one_callback():
    a, b = Deferred(), Deferred()
    dl = DeferredList([a, b], fireOnOneCallback=True)
    b.callback("b")
    assert result_of(dl) == ("b", 1)


def test_gather_results():
    assert result_of(gatherResults([succeed(1), succeed(2)])) == [1, 2]


def test_gather_results_first_error():
    a, b = Deferred(), Deferred()
    g = gatherResults([a, b], consumeErrors=True)
    b.errback(KeyError("b"))
    f = result_of(g)
    assert f.check(FirstError)
    assert f.value.index == 1
    assert f.value.subFailure.check(KeyError)
    a.callback(1)


def test_maybe_deferred():
    assert result_of(maybeDeferred(lambda: 3)) == 3
    assert result_of(maybeDeferred(lambda: 1 / 0)).check(ZeroDivisionError)
    d = Deferred()
    assert maybeDeferred(lambda: d) is d


def test_fail_and_succeed():
    assert result_of(fail(ValueError("v"))).check(ValueError)
    assert result_of(succeed("s")) == "s"


def test_defer_later():
    clock = Clock()
    d = deferLater(clock, 2, lambda a, b: a + b, 1, b=2)
    clock.advance(1)
    assert not d.called
    clock.advance(1)
    assert result_of(d) == 3


def test_defer_later_cancel_cancels_the_call():
    clock = Clock()
    called = []
    d = deferLater(clock, 2, called.append, 1)
    d.cancel()
    clock.advance(5)
    assert called == []
    assert result_of(d).check(CancelledError)


def test_inline_callbacks_waits_and_returns():
    waiting = Deferred()

    @inlineCallbacks
    def work(x):
        a = yield succeed(x)
        b = yield waiting
        returnValue(a + b)

    d = work(1)
    assert not d.called
    waiting.callback(10)
    assert result_of(d) == 11


def test_inline_callbacks_plain_return_and_exceptions():
    @inlineCallbacks
    def work():
        try:
            yield fail(ValueError("inner"))
        except ValueError as e:
            return f"caught {e}"

    assert result_of(work()) == "caught inner"

    @inlineCallbacks
    def broken():
        yield succeed(None)
        raise KeyError("out")

    assert result_of(broken()).check(KeyError)


def test_inline_callbacks_many_synchronous_yields_do_not_recurse():
    @inlineCallbacks
    def work():
        total = 0
        for i in range(20000):
            total += yield succeed(i)
        return total

    assert result_of(work()) == sum(range(20000))


def test_inline_callbacks_cancel_cancels_what_it_waits_on():
    inner = Deferred()

    @inlineCallbacks
    def work():
        yield inner

    d = work()
    d.cancel()
    assert inner.called
    assert result_of(d).check(CancelledError)


def test_ensure_deferred_runs_async_def_and_await():
    waiting = Deferred()

    async def work(x):
        a = await succeed(x)
        b = await waiting
        return a + b

    d = ensureDeferred(work(2))
    assert not d.called
    waiting.callback(3)
    assert result_of(d) == 5


def test_await_failed_deferred_raises():
    async def work():
        try:
            await fail(KeyError("k"))
        except KeyError:
            return "caught"

    assert result_of(ensureDeferred(work())) == "caught"


def test_ensure_deferred_passes_deferreds_through_and_rejects_others():
    d = Deferred()
    assert ensureDeferred(d) is d
    with pytest.raises(TypeError):
        ensureDeferred(42)


def test_unhandled_error_logged_on_garbage_collection(caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    d = Deferred()
    d.errback(RuntimeError("nobody handled me"))
    del d
    gc.collect()
    assert "Unhandled error in Deferred" in caplog.text
    assert "nobody handled me" in caplog.text


def test_handled_error_not_logged(caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    d = Deferred()
    d.errback(RuntimeError("handled"))
    d.addErrback(lambda f: None)
    del d
    gc.collect()
    assert "Unhandled error" not in caplog.text


def test_error_handed_to_outer_deferred_is_logged_once_not_twice(caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    inner = Deferred()
    outer = succeed(None).addCallback(lambda _, d=inner: d)
    inner.errback(RuntimeError("moved"))
    outer.addErrback(lambda f: None)
    del inner, outer
    gc.collect()
    assert "Unhandled error" not in caplog.text


def test_pause_and_unpause():
    d = Deferred()
    seen = []
    d.addCallback(seen.append)
    d.pause()
    d.callback(1)
    assert seen == []
    d.unpause()
    assert seen == [1]


def test_failure_api():
    try:
        raise ValueError("boom")
    except ValueError:
        f = Failure()
    assert f.type is ValueError
    assert f.getErrorMessage() == "boom"
    assert "ValueError: boom" in f.getTraceback()
    assert "test_failure_api" in f.getTraceback()
    assert f.check(KeyError, ValueError) is ValueError
    assert f.check(KeyError) is None
    assert f.trap(ValueError) is ValueError
    with pytest.raises(ValueError):
        f.trap(KeyError)
    with pytest.raises(ValueError, match="boom"):
        f.raiseException()
    f.cleanFailure()
    assert "test_failure_api" in f.getTraceback()


def test_cancel_of_a_body_that_catches_cancelled_error_fires_once_with_its_result():
    first, second = Deferred(), Deferred()

    @inlineCallbacks
    def work():
        try:
            yield first
        except CancelledError:
            value = yield second  # goes on after the cancel
            return f"recovered with {value}"

    d = work()
    seen = []
    d.addBoth(seen.append)
    d.cancel()
    assert first.called and seen == []  # not failed at once: the body is still running
    second.callback(7)
    assert seen == ["recovered with 7"]  # once, with what the body returned


def test_cancel_of_a_coroutine_that_catches_and_raises_fires_once_with_its_error():
    waiting = Deferred()

    async def work():
        try:
            await waiting
        except CancelledError:
            raise ValueError("cleaned up, then failed") from None

    d = ensureDeferred(work())
    d.cancel()
    assert result_of(d).check(ValueError)
    with pytest.raises(AlreadyCalledError):
        d.callback(None)  # it did fire, exactly once


# -- as Twisted does, where ported code notices ----------------------------------------------

def test_add_callbacks_takes_none_for_no_extra_arguments():
    seen = []
    d = Deferred()
    d.addCallbacks(lambda r: seen.append(r), lambda f: seen.append(f), callbackArgs=None,
                   callbackKeywords=None, errbackArgs=None, errbackKeywords=None)
    d.callback("value")
    assert seen == ["value"]
    e = Deferred()
    e.addCallbacks(lambda r: r, lambda f: seen.append(f.value), None, None, None, None)
    e.errback(ValueError("x"))
    assert isinstance(seen[-1], ValueError)


def test_a_canceller_that_raises_is_logged_and_the_others_are_still_cancelled(caplog):
    def bad(d):
        raise RuntimeError("canceller bug")

    first, second, third = Deferred(bad), Deferred(), Deferred()
    dl = DeferredList([first, second, third], consumeErrors=True)
    dl.addErrback(lambda f: None)  # the first never fires: the list is cancelled itself
    dl.cancel()
    assert second.called and third.called  # cancelled despite the first's canceller
    assert "canceller bug" in caplog.text
    gathered = gatherResults([Deferred(bad), Deferred()], consumeErrors=True)
    gathered.addErrback(lambda f: None)
    gathered.cancel()
    assert "canceller bug" in caplog.text


def test_a_fired_deferred_drops_its_canceller_so_a_cycle_frees_by_refcount():
    import weakref

    class Holder:
        def cancel(self, d):
            pass

    gc.disable()
    try:
        holder = Holder()
        d = Deferred(holder.cancel)  # canceller -> holder, holder -> d: a cycle
        holder.d = d
        gone = weakref.ref(d)
        d.callback(None)
        del d, holder
        assert gone() is None  # freed without the cyclic GC
    finally:
        gc.enable()


def test_coroutine_and_inline_callbacks_deferreds_are_freed_once_fired_without_gc():
    import weakref

    gc.disable()
    try:
        box = {"waiting": Deferred()}

        async def work():
            return await box["waiting"]

        @inlineCallbacks
        def inline():
            value = yield box["waiting"]
            return value

        refs = [weakref.ref(ensureDeferred(work())), weakref.ref(inline())]
        box.pop("waiting").callback(1)
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


def test_first_error_compares_by_its_sub_failure_and_index():
    failure = Failure(ValueError("x"))
    assert FirstError(failure, 1) == FirstError(failure, 1)
    assert FirstError(failure, 1) != FirstError(failure, 2)
    assert FirstError(failure, 1) != FirstError(Failure(ValueError("x")), 1)
    assert FirstError(failure, 1) == (failure, 1)
