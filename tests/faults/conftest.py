"""Fixtures of the fault suite: clusters that must leave nothing behind, and the figures
each test measured (``FAULTS_REPORT=FILE`` collects them, one JSON line per test, for
docs/RELIABILITY.md)."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest

from cluster import rundir


@pytest.fixture
def make_cluster():
    """Real clusters; after the test every process each one started must be gone (killed
    by PID if need be, and then reported) and its run directory removed."""
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
        graceful = c.proc.poll() is None
        c.stop()
        deadline = time.monotonic() + 5
        alive = [p for p in pids if _alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [p for p in pids if _alive(p)]
        leftovers += [f"pid {p} of {c.name}" for p in alive]
        if graceful and os.path.exists(rundir.path(c.name)):
            leftovers.append(f"run directory {rundir.path(c.name)}")
    assert not leftovers, leftovers


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def figures(request):
    """A dict the test fills with what it measured."""
    measured: dict = {}
    yield measured
    path = os.environ.get("FAULTS_REPORT")
    if path and measured:
        with open(path, "a") as f:
            f.write(json.dumps({"test": request.node.name, **measured}) + "\n")
