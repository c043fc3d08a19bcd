"""Shared fixtures: a private reactor per test, and a helper to run it until a Deferred fires."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil
import pytest

from cluster import rundir
from cluster.defer import Deferred
from cluster.failure import Failure
from cluster.reactor import Reactor


class ReactorRunner:
    """Runs a private reactor until a Deferred fires (or a deadline passes)."""

    def __init__(self) -> None:
        self.reactor = Reactor()

    def run_until(self, d: Deferred, timeout: float = 10.0) -> Any:
        """Run the reactor until ``d`` fires; return its result or raise its failure."""
        r = self.reactor
        box: list = []

        def done(result: Any) -> None:
            box.append(result)
            if r.running and not r._stopping:
                r.stop()

        d.addBoth(done)
        if not box:
            deadline = r.callLater(timeout, lambda: r.stop())
            r.run(installSignalHandlers=False)
            if deadline.active():
                deadline.cancel()
        if not box:
            raise AssertionError(f"the reactor stopped before {d!r} fired (timeout {timeout}s)")
        result = box[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def close(self) -> None:
        r = self.reactor
        for selectable in r.removeAll():
            close = getattr(getattr(selectable, "socket", None), "close", None)
            if close:
                close()
        r._poller.close()
        os.close(r._waker.fileno())


@pytest.fixture
def runner():
    rr = ReactorRunner()
    yield rr
    rr.close()


@pytest.fixture
def make_cluster():
    """Start real clusters (``python -m cluster run``). At the end of the test each is
    stopped, every process it started is killed by PID if still there, and the test
    fails if any had to be, or if a cluster that was running left its run directory."""
    from tests.clusterutil import RunningCluster

    started = []

    def make(*args, **kw):
        c = RunningCluster(*args, **kw)
        started.append(c)
        return c

    yield make
    leftovers = []
    for c in started:
        pids = c.descendants() | {c.proc.pid}
        running = c.proc.poll() is None
        c.terminate()  # graceful: what it leaves behind is a finding
        deadline = time.monotonic() + 5
        alive = [p for p in pids if _alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [p for p in pids if _alive(p)]
        leftovers += [f"pid {p} of {c.name}" for p in alive]
        if running and os.path.exists(rundir.path(c.name)):
            leftovers.append(f"run directory {rundir.path(c.name)}")
        c.stop()  # then nothing survives the test, whatever happened
    assert not leftovers, leftovers


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA and the server and client certificates it signed, made for this test run."""
    from tests.certs import makeCertificates

    return makeCertificates(str(tmp_path_factory.mktemp("certs")))
