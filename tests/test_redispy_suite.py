"""redis-py's own tests/test_commands.py (the sync client's, from the installed redis-py's
sdist: tests/redispy/suite.py fetches them) against a real redis-server 7 and against
the store on one worker, at once: every test in tests/redispy/expected_pass.txt passes
on both, and the list holds at least FLOOR tests. The counts go to
bench/out/redispy/pytest/summary.json and to the test's output (``-s``); what blocks the
rest: ``python -m bench.redispy_suite``. A failed download fails the test (no skip)."""

from __future__ import annotations

import json
import time

import pytest

from tests.redisoracle import redis_server
from tests.redispy import suite

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

FLOOR = 349  # tests of the expected list (raise it as the list grows)
OUT = suite.OUT / "pytest"


def test_redispy_test_commands_pass_on_the_store(run_cluster):
    started = time.monotonic()
    suite.fetch()  # raises SuiteError when the sdist cannot be had
    made_for = suite.expected_version()
    assert made_for == suite.installed_version(), (
        f"{suite.EXPECTED.name} names redis-py {made_for}'s tests, redis-py "
        f"{suite.installed_version()} is installed: pin it, or regenerate the list "
        "(python -m bench.redispy_suite --write-expected)")
    with redis_server(*suite.oracle_options()) as oracle:
        store = run_cluster(None, workers=1)
        results = suite.run_suites({"redis-server": oracle, "store": store.port},
                                   timeout=120, out=OUT)
    expected = suite.read_expected()
    summary = suite.summarize(results, expected=expected, protocol="default", workers=1,
                              wall_s=round(time.monotonic() - started, 1))
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    print(suite.render(summary))

    stray = summary["expected"]["failing_on_store"]
    assert not stray, "expected to pass on the store, but: " + "; ".join(
        f"{t.split('::', 1)[1]}: {outcome}: {results['store']['tests'].get(t, {}).get('message')}"
        for t, outcome in stray.items())
    stray = summary["expected"]["failing_on_reference"]
    assert not stray, f"in the expected list, but not passing on redis-server: {stray}"
    assert len(expected) >= FLOOR, f"{len(expected)} tests expected to pass, fewer than {FLOOR}"
