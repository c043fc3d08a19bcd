"""Fixtures of the fault suite: the figures each test measured (``FAULTS_REPORT=FILE``
collects them, one JSON line per test, for docs/RELIABILITY.md). Clusters come from the
``run_cluster`` fixture (``cluster.pytest_plugin``), which in this project fails a test whose
cluster left anything behind (``run_cluster_strict`` in tests/conftest.py)."""

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
