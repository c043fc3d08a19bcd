"""Shared fixtures: a private reactor per test, and a helper to run it until a Deferred fires."""

from __future__ import annotations

import os
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def run_cluster_defaults():
    """The project's clusters (the ``run_cluster`` fixture of ``cluster.pytest_plugin``)
    notice a dead child fast and give a graceful stop 5 s."""
    return {"heartbeat_timeout": 2.0, "graceful_timeout": 5.0}


@pytest.fixture(scope="session")
def run_cluster_strict():
    """A cluster whose graceful stop left a process or its run directory behind fails its
    test (the plugin removes them either way): that is a finding about the cluster."""
    return True


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA and the server and client certificates it signed, made for this test run."""
    from tests.certs import makeCertificates

    return makeCertificates(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def oracle():
    """A real redis-server (tests.redisoracle), the reference for the store's replies."""
    from tests.redisoracle import redis_server

    with redis_server() as port:
        yield port


@pytest.fixture(scope="module")
def stores(run_cluster_module):
    """The default store on one worker and on two (keys then split between them); the
    two-worker one has worker-0 on ``worker_port(c, 0)`` and worker-1 on the next."""
    from cluster.harness import free_ports

    return {1: run_cluster_module(None, workers=1),
            2: run_cluster_module(None, workers=2, worker_ports=free_ports(2))}


def worker_port(c, index: int) -> int:
    """Worker ``index``'s own port, as the cluster advertises it (CLUSTER SLOTS)."""
    import redis

    r = redis.Redis(port=c.port, socket_timeout=10)
    try:
        ranges = sorted(r.execute_command("CLUSTER", "SLOTS"))
    finally:
        r.close()
    return ranges[index][2][1]
