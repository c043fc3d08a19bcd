"""pytest plugin (entry point ``pytest11``, loaded wherever reactor-cluster is installed):
real clusters of your app for your tests, with nothing left running afterwards.

    def test_my_app(run_cluster):
        c = run_cluster("myapp:factory", workers=2, route="key")
        summary = cluster.load.run(c.address, workload="echo", requests=1000)
        assert summary["errors"] == 0

``run_cluster(target=None, workers=2, **options)`` starts ``python -m cluster run TARGET``
on a free 127.0.0.1 port under a unique ``--name``, from pytest's rootdir (``cwd=`` to
change), and returns once every process runs (``wait=False``: at once). Options are the
long flags of ``cluster run`` (``graceful_timeout=5`` -> ``--graceful-timeout 5``; True:
the bare flag; None or False: left out), plus ``env``, ``prefix``, ``extra`` (raw argv)
and ``name``. The handle is a ``cluster.harness.RunningCluster``. At teardown, even after
a failure or a Ctrl-C, each cluster is stopped gracefully, every process it ever had is
killed by PID, its run directory and log file are removed; a failed test's report shows
the end of each cluster's log.

``run_cluster_module`` is the same for a module-scoped fixture (one cluster for many
tests). Override ``run_cluster_defaults`` (a dict of options) or ``run_cluster_strict``
(True: a cluster whose graceful stop left a process or its run directory behind fails
the test) in a conftest.py; both are session-scoped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cluster.harness import Clusters, RunningCluster

__all__ = ["RunningCluster", "run_cluster", "run_cluster_defaults", "run_cluster_module",
           "run_cluster_strict"]


@pytest.fixture(scope="session")
def run_cluster_defaults() -> dict[str, Any]:
    """Options every ``run_cluster`` call gets unless it says otherwise."""
    return {}


@pytest.fixture(scope="session")
def run_cluster_strict() -> bool:
    """Whether leftovers of a graceful stop fail the test (they are removed either way)."""
    return False


def _clusters(request: pytest.FixtureRequest, defaults: dict[str, Any],
              strict: bool) -> Iterator[Clusters]:
    clusters = Clusters(cwd=str(request.config.rootpath), defaults=defaults)
    try:
        yield clusters
    finally:
        leftovers = clusters.close()
    if strict and leftovers:
        raise AssertionError(f"the graceful stop left behind: {leftovers}")


@pytest.fixture
def run_cluster(request: pytest.FixtureRequest, run_cluster_defaults: dict[str, Any],
                run_cluster_strict: bool) -> Iterator[Clusters]:
    """A callable that starts a cluster for this test: ``run_cluster(target, workers,
    **options) -> RunningCluster``; all are stopped and cleaned up after it."""
    yield from _clusters(request, run_cluster_defaults, run_cluster_strict)


@pytest.fixture(scope="module")
def run_cluster_module(request: pytest.FixtureRequest, run_cluster_defaults: dict[str, Any],
                       run_cluster_strict: bool) -> Iterator[Clusters]:
    """``run_cluster`` for module-scoped fixtures: the clusters live until the module ends."""
    yield from _clusters(request, run_cluster_defaults, run_cluster_strict)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failed test's report gets the end of the log of each cluster it used."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for value in (getattr(item, "funcargs", None) or {}).values():
        if isinstance(value, Clusters):
            for c in value.started:
                report.sections.append((f"cluster {c.name} log ({report.when})",
                                        c.log_tail()))
