"""cluster.task (LoopingCall, deferLater, react, coiterate/Cooperator) and the
coordination primitives of cluster.defer (DeferredLock, DeferredSemaphore,
DeferredQueue), as Twisted documents them."""

from __future__ import annotations

import pytest

from cluster import task
from cluster.defer import (
    CancelledError,
    Deferred,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
    succeed,
)
from cluster.failure import Failure
from cluster.testing import Clock

pytestmark = pytest.mark.timeout(30)


# -- LoopingCall --------------------------------------------------------------------------

def test_looping_call_keeps_its_schedule_and_stops():
    clock = Clock()
    calls = []
    loop = task.LoopingCall(lambda: calls.append(clock.seconds()))
    loop.clock = clock
    done = loop.start(1.0)
    assert calls == [0.0]  # now=True: at once
    clock.advance(0.3)
    clock.advance(0.7)
    clock.advance(1.0)
    assert calls == [0.0, 1.0, 2.0]
    loop.stop()
    assert done.called and done.result is loop
    clock.advance(5)
    assert len(calls) == 3


def test_looping_call_now_false_waits_one_interval():
    clock = Clock()
    calls = []
    loop = task.LoopingCall(calls.append, "x")
    loop.clock = clock
    loop.start(2.0, now=False)
    assert calls == []
    clock.advance(2.0)
    assert calls == ["x"]
    loop.stop()


def test_with_count_tells_how_many_intervals_passed():
    clock = Clock()
    counts = []
    loop = task.LoopingCall.withCount(counts.append)
    loop.clock = clock
    loop.start(1.0)
    clock.advance(1.0)
    clock.advance(3.5)  # the loop was busy: three intervals at once
    clock.advance(0.5)
    assert counts == [1, 1, 3, 1]
    loop.stop()


def test_a_deferred_result_holds_the_next_call_and_a_failure_ends_the_loop():
    clock = Clock()
    pending = []

    def slow():
        d = Deferred()
        pending.append(d)
        return d

    loop = task.LoopingCall(slow)
    loop.clock = clock
    done = loop.start(1.0)
    clock.advance(5)
    assert len(pending) == 1  # waiting for the first one
    pending[0].callback(None)
    clock.advance(1)
    assert len(pending) == 2
    pending[1].errback(ValueError("boom"))
    assert not loop.running
    assert done.result.check(ValueError)
    done.addErrback(lambda f: None)


@pytest.mark.parametrize("fails", [False, True])
def test_stop_while_a_call_is_pending_fires_when_it_does(fails):
    clock = Clock()
    pending = []
    loop = task.LoopingCall(lambda: pending.append(Deferred()) or pending[-1])
    loop.clock = clock
    done = loop.start(1.0)
    loop.stop()
    assert not done.called  # the call's Deferred has not fired yet
    if fails:
        pending[0].errback(ValueError("late"))
        assert done.result.check(ValueError)  # not lost
        done.addErrback(lambda f: None)
    else:
        pending[0].callback(None)
        assert done.result is loop
    clock.advance(10)
    assert len(pending) == 1


def test_reset_restarts_the_schedule_and_never_doubles_the_loop():
    clock = Clock()
    calls = []
    loop = task.LoopingCall(lambda: calls.append(clock.seconds()))
    loop.clock = clock
    loop.start(1.0)
    clock.advance(0.5)
    loop.reset()  # the next call is one interval from now
    clock.advance(0.9)
    assert calls == [0.0]
    clock.advance(0.1)
    assert calls == [0.0, 1.5]
    loop.stop()

    pending = []
    held = task.LoopingCall(lambda: pending.append(Deferred()) or pending[-1])
    held.clock = clock
    held.start(1.0)
    held.reset()  # while waiting on the call's Deferred: nothing more is scheduled
    clock.advance(5)
    assert len(pending) == 1
    pending[0].callback(None)
    clock.advance(1)
    assert len(pending) == 2  # one loop, not two
    held.stop()
    pending[1].callback(None)


def test_with_count_now_false():
    clock = Clock()
    counts = []
    loop = task.LoopingCall.withCount(counts.append)
    loop.clock = clock
    loop.start(1.0, now=False)
    assert counts == []
    clock.advance(1.0)
    clock.advance(2.0)
    assert counts == [1, 2]
    loop.stop()


def test_defer_later_is_in_task_too():
    clock = Clock()
    d = task.deferLater(clock, 2, lambda: "late")
    clock.advance(2)
    assert d.result == "late"


# -- react and coiterate ------------------------------------------------------------------

def test_react_exits_with_what_main_ended_with(runner):
    def main(reactor, value):
        return task.deferLater(reactor, 0.01, lambda: value)

    with pytest.raises(SystemExit) as exit:
        task.react(main, ["ok"], _reactor=runner.reactor)
    assert exit.value.code == 0


@pytest.mark.parametrize("error, code", [(SystemExit(3), 3), (ValueError("x"), 1)])
def test_react_exits_non_zero_on_failure(runner, error, code):
    def main(reactor):
        d = Deferred()
        reactor.callLater(0, d.errback, Failure(error))
        return d

    with pytest.raises(SystemExit) as exit:
        task.react(main, _reactor=runner.reactor)
    assert exit.value.code == code


def test_cooperator_interleaves_iterators_and_waits_on_deferreds(runner):
    order = []
    gate = Deferred()

    def worker(name, steps, wait=None):
        for i in range(steps):
            order.append((name, i))
            if i == 1 and wait is not None:
                yield wait  # paused until it fires
            yield None

    cooperator = task.Cooperator(clock=runner.reactor)
    a = cooperator.coiterate(worker("a", 4, gate))
    b = cooperator.coiterate(worker("b", 4))
    runner.reactor.callLater(0.05, gate.callback, None)
    from cluster.defer import gatherResults

    runner.run_until(gatherResults([a, b]))
    assert order.index(("b", 0)) < order.index(("a", 2))  # b ran while a waited
    assert sorted(order) == [(n, i) for n in "ab" for i in range(4)]


def forever():
    while True:
        yield None


def test_a_stopped_task_fails_with_task_stopped_and_refuses_more(runner):
    cooperating = task.Cooperator(clock=runner.reactor).cooperate(forever())
    done = cooperating.whenDone()
    cooperating.stop()
    assert done.called and done.result.check(task.TaskStopped)
    done.addErrback(lambda f: None)
    for method in (cooperating.pause, cooperating.resume, cooperating.stop):
        with pytest.raises(task.TaskStopped):
            method()


def test_pause_nests_and_resume_of_a_running_task_is_refused():
    steps = []

    def counting():
        for _ in range(10):
            steps.append(1)
            yield None

    clock = Clock()
    cooperating = task.Cooperator(slice=0.001, clock=clock).cooperate(counting())
    with pytest.raises(task.NotPaused):
        cooperating.resume()
    cooperating.pause()
    cooperating.pause()
    clock.advance(0)
    assert steps == []
    cooperating.resume()
    clock.advance(0)
    assert steps == []  # still paused once
    cooperating.resume()
    clock.advance(0)
    assert len(steps) == 10 and cooperating.whenDone().called


def test_a_finished_task_cannot_be_paused(runner):
    cooperating = task.Cooperator(clock=runner.reactor).cooperate(iter([1, 2]))
    runner.run_until(cooperating.whenDone())
    with pytest.raises(task.TaskDone):
        cooperating.pause()


def test_stopping_the_cooperator_ends_every_task_and_refuses_new_ones(runner):
    cooperator = task.Cooperator(slice=0.001, clock=runner.reactor)
    running = cooperator.cooperate(forever())
    paused = cooperator.cooperate(forever())
    paused.pause()
    waiting = cooperator.coiterate(iter([Deferred()]))
    runner.run_until(task.deferLater(runner.reactor, 0.02, lambda: None))
    cooperator.stop()
    assert not runner.reactor.getDelayedCalls()
    later = cooperator.coiterate(forever())
    for d in (running.whenDone(), paused.whenDone(), waiting, later):
        assert d.called and d.result.check(task.SchedulerStopped)
        d.addErrback(lambda f: None)


# -- lock, semaphore, queue ----------------------------------------------------------------

def test_deferred_lock_hands_over_in_order_and_run_releases():
    lock = DeferredLock()
    first = lock.acquire()
    assert first.called and lock.locked
    second, third = lock.acquire(), lock.acquire()
    assert not second.called
    third.cancel()  # leaves the line
    assert third.result.check(CancelledError)
    third.addErrback(lambda f: None)
    lock.release()
    assert second.called and lock.locked
    lock.release()
    assert not lock.locked
    result = lock.run(lambda x: x * 2, 21)
    assert result.result == 42 and not lock.locked
    failing = lock.run(lambda: 1 / 0)
    assert failing.result.check(ZeroDivisionError) and not lock.locked
    failing.addErrback(lambda f: None)
    with pytest.raises(RuntimeError):
        lock.release()


def test_deferred_semaphore_admits_up_to_its_tokens():
    sem = DeferredSemaphore(2)
    held = [sem.acquire(), sem.acquire()]
    assert all(d.called for d in held) and sem.tokens == 0 and sem.limit == 2
    waiting = sem.acquire()
    assert not waiting.called
    sem.release()
    assert waiting.called and sem.tokens == 0
    sem.release()
    sem.release()
    assert sem.tokens == 2
    gate = Deferred()
    running = sem.run(lambda: gate)
    assert sem.tokens == 1  # held until the function's Deferred fires
    gate.callback("done")
    assert running.result == "done" and sem.tokens == 2


def test_deferred_queue_bounds_both_ways_and_cancels():
    queue = DeferredQueue(size=2, backlog=1)
    queue.put(1)
    queue.put(2)
    with pytest.raises(QueueOverflow):
        queue.put(3)
    assert queue.get().result == 1 and queue.get().result == 2
    waiting = queue.get()
    with pytest.raises(QueueUnderflow):
        queue.get()
    waiting.cancel()
    waiting.addErrback(lambda f: None)
    later = queue.get()  # the cancelled getter left the line
    queue.put("x")
    assert later.result == "x"


def test_async_with_a_lock(runner):
    from cluster.defer import ensureDeferred

    lock = DeferredLock()

    async def critical():
        async with lock:
            assert lock.locked
            return await succeed("inside")

    assert runner.run_until(ensureDeferred(critical())) == "inside"
    assert not lock.locked


def test_the_locks_module_may_be_imported_first():
    import subprocess
    import sys

    code = ("import cluster.locks\n"
            "from cluster.defer import DeferredLock, QueueOverflow\n"
            "assert DeferredLock is cluster.locks.DeferredLock\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
