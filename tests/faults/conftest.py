"""Fixtures of the fault suite: the figures each test measured (``FAULTS_REPORT=FILE``
collects them, one JSON line per test, for docs/RELIABILITY.md). Clusters come from the
suite-wide ``make_cluster``, which fails a test whose cluster left anything behind."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def figures(request):
    """A dict the test fills with what it measured."""
    measured: dict = {}
    yield measured
    path = os.environ.get("FAULTS_REPORT")
    if path and measured:
        with open(path, "a") as f:
            f.write(json.dumps({"test": request.node.name, **measured}) + "\n")
