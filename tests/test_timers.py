"""Timed calls: ordering, cancellation, reset and delay, on the test Clock and the reactor."""

from __future__ import annotations

import logging
import time

import pytest

from cluster.error import AlreadyCalled, AlreadyCancelled
from cluster.testing import Clock


def test_calls_run_when_due_in_time_order():
    clock = Clock()
    seen = []
    clock.callLater(3, seen.append, "c")
    clock.callLater(1, seen.append, "a")
    clock.callLater(2, seen.append, "b")
    clock.advance(1.5)
    assert seen == ["a"]
    clock.advance(10)
    assert seen == ["a", "b", "c"]


def test_same_time_calls_run_in_scheduling_order():
    clock = Clock()
    seen = []
    for i in range(50):
        clock.callLater(1, seen.append, i)
    clock.advance(1)
    assert seen == list(range(50))


def test_cancelled_call_never_runs_and_is_not_listed():
    clock = Clock()
    seen = []
    call = clock.callLater(1, seen.append, "x")
    assert call.active()
    call.cancel()
    assert not call.active()
    assert clock.getDelayedCalls() == []
    clock.advance(2)
    assert seen == []
    with pytest.raises(AlreadyCancelled):
        call.cancel()


def test_called_call_cannot_be_cancelled_or_reset():
    clock = Clock()
    call = clock.callLater(1, lambda: None)
    clock.advance(1)
    assert call.called and not call.active()
    with pytest.raises(AlreadyCalled):
        call.cancel()
    with pytest.raises(AlreadyCalled):
        call.reset(1)


def test_reset_and_delay_move_the_call():
    clock = Clock()
    seen = []
    call = clock.callLater(1, seen.append, "x")
    call.reset(5)
    assert call.getTime() == 5
    clock.advance(4)
    assert seen == []
    call.delay(2)
    assert call.getTime() == 7
    clock.advance(2.5)
    assert seen == []
    call.delay(-1)
    clock.advance(0)
    assert seen == ["x"]


def test_reset_earlier():
    clock = Clock()
    seen = []
    clock.callLater(5, seen.append, "late")
    call = clock.callLater(10, seen.append, "moved")
    call.reset(1)
    clock.advance(2)
    assert seen == ["moved"]
    assert len(clock.getDelayedCalls()) == 1


def test_many_cancelled_calls_are_swept_from_the_heap():
    clock = Clock()
    calls = [clock.callLater(100 + i, lambda: None) for i in range(1000)]
    for c in calls[:900]:
        c.cancel()
    assert len(clock._heap) < 1000  # swept, not left to rot until their time
    assert len(clock.getDelayedCalls()) == 100


def test_exception_in_call_is_logged_and_others_still_run(caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    clock = Clock()
    seen = []
    clock.callLater(1, lambda: 1 / 0)
    clock.callLater(1, seen.append, "after")
    clock.advance(1)
    assert seen == ["after"]
    assert "ZeroDivisionError" in caplog.text


def test_reactor_call_later_and_order(runner):
    r = runner.reactor
    seen = []
    from cluster.defer import Deferred

    done = Deferred()
    r.callLater(0.05, seen.append, 2)
    r.callLater(0.01, seen.append, 1)
    for i in range(3, 10):
        r.callLater(0.06, seen.append, i)
    r.callLater(0.07, done.callback, None)
    start = time.monotonic()
    runner.run_until(done)
    assert seen == list(range(1, 10))
    assert time.monotonic() - start >= 0.06


def test_reactor_call_later_zero_inside_a_call_runs_next_iteration(runner):
    r = runner.reactor
    from cluster.defer import Deferred

    seen = []
    done = Deferred()

    def first():
        seen.append("first")
        r.callLater(0, lambda: (seen.append("nested"), done.callback(None)))
        seen.append("first-end")

    r.callLater(0, first)
    runner.run_until(done)
    assert seen == ["first", "first-end", "nested"]


def test_reactor_cancelled_call_does_not_run(runner):
    r = runner.reactor
    from cluster.defer import Deferred

    seen = []
    done = Deferred()
    call = r.callLater(0.01, seen.append, "cancelled")
    call.cancel()
    r.callLater(0.03, done.callback, None)
    runner.run_until(done)
    assert seen == []
