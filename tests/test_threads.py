"""cluster.threads: deferToThread, callInThread, the reactor's pool (lazy, bounded,
joined at shutdown) and blockingCallFromThread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from cluster.defer import DeferredList, deferLater, ensureDeferred
from cluster.threads import ThreadPool, blockingCallFromThread, deferToThreadPool
from tests import ROOT

pytestmark = pytest.mark.timeout(30)


def test_defer_to_thread_fires_in_the_reactor_thread_with_the_result(runner):
    r = runner.reactor
    where = []

    def blocking(x):
        where.append(threading.current_thread())
        time.sleep(0.05)
        return x * 2

    d = deferToThreadPool(r, r.getThreadPool(), blocking, 21)
    fired_in = []
    d.addCallback(lambda v: fired_in.append(threading.current_thread()) or v)
    assert runner.run_until(d) == 42
    assert where[0] is not threading.main_thread()
    assert fired_in == [threading.main_thread()]  # delivered by callFromThread


def test_a_failing_job_fails_its_deferred(runner):
    r = runner.reactor
    d = deferToThreadPool(r, r.getThreadPool(), lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        runner.run_until(d)


def test_the_pool_is_lazy_bounded_and_suggestible(runner):
    r = runner.reactor
    assert r._threadPool is None  # nothing started before first use
    r.suggestThreadPoolSize(3)
    pool = r.getThreadPool()
    assert pool.max == 3 and pool.threads == []
    gate = threading.Event()
    busy = []

    def job(i):
        busy.append(threading.active_count())
        gate.wait(5)
        return i

    ds = [deferToThreadPool(r, pool, job, i) for i in range(8)]
    r.callLater(0.2, gate.set)
    results = runner.run_until(DeferredList(ds))
    assert [v for _, v in results] == list(range(8))
    assert len(pool.threads) <= 3  # never more than the bound


def test_the_pool_is_stopped_at_shutdown_and_a_hung_job_does_not_hold_it(runner):
    r = runner.reactor
    pool = r.getThreadPool()
    pool.shutdownTimeout = 0.3
    hang = threading.Event()
    r.callInThread(hang.wait, 30)  # never finishes by itself
    start = time.monotonic()
    runner.run_until(deferLater(r, 0.05, lambda: None))  # then the runner stops the reactor
    assert time.monotonic() - start < 2
    assert pool.joined and r._threadPool is None
    hang.set()


def test_call_in_thread_logs_a_failure(runner, caplog):
    r = runner.reactor
    done = threading.Event()

    def bad():
        try:
            raise ValueError("job bug")
        finally:
            done.set()

    r.callInThread(bad)
    runner.run_until(deferLater(r, 0.2, lambda: None))
    assert done.is_set() and "job bug" in caplog.text


def test_blocking_call_from_thread_waits_for_a_deferred_and_raises_its_error(runner):
    r = runner.reactor
    outcomes = []

    def inThread():
        outcomes.append(blockingCallFromThread(r, deferLater, r, 0.05, lambda: "late"))
        try:
            blockingCallFromThread(r, lambda: 1 / 0)
        except ZeroDivisionError:
            outcomes.append("raised")

    async def main():
        from cluster.threads import deferToThreadPool as run

        await run(r, r.getThreadPool(), inThread)

    runner.run_until(ensureDeferred(main()))
    assert outcomes == ["late", "raised"]


def test_defer_to_thread_on_the_process_reactor_and_exit():
    """The module function on the process's own reactor; the process exits promptly."""
    code = textwrap.dedent("""
        from cluster.reactor import reactor
        from cluster.threads import deferToThread
        results = []
        def done(value):
            results.append(value)
            reactor.stop()
        deferToThread(sum, [1, 2, 3]).addCallback(done)
        reactor.run()
        print(results)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=20)
    assert out.stdout.strip() == "[6]", out.stderr


def test_a_pool_refuses_work_once_stopped():
    pool = ThreadPool(0, 2)
    pool.start()
    pool.stop()
    with pytest.raises(RuntimeError):
        pool.callInThread(print)


def test_a_burst_gets_as_many_threads_as_jobs_up_to_the_bound():
    pool = ThreadPool(1, 3)
    pool.start()
    time.sleep(0.05)  # the one thread is idle when the burst comes
    meet = threading.Barrier(3, timeout=5)
    met = []
    for _ in range(3):
        pool.callInThread(lambda: met.append(meet.wait()))
    deadline = time.monotonic() + 5
    while len(met) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.stop()
    assert sorted(met) == [0, 1, 2]  # three jobs ran at once: the pool grew to three
    assert len({t.name for t in threading.enumerate() if t.name.startswith("pool-")}) <= 3


def test_shrinking_the_pool_and_restarting_after_a_hung_job():
    pool = ThreadPool(3, 3)
    pool.shutdownTimeout = 0.2
    pool.start()
    pool.adjustPoolsize(0, 1)  # two threads leave
    deadline = time.monotonic() + 5
    while len(pool.threads) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pool.threads) == 1
    release = threading.Event()
    pool.callInThread(release.wait, 5)
    pool.stop()  # the job hangs past the timeout: its thread is left behind
    pool.start()
    done = threading.Event()
    release.set()  # the old thread finishes and takes the stop meant for it
    time.sleep(0.1)
    pool.callInThread(done.set)
    assert done.wait(5)  # the restarted pool still runs jobs
    assert len({t.name for t in pool.threads}) == len(pool.threads)  # names are unique
    pool.stop()
