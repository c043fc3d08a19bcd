"""Logging for the cluster's processes: every line names the process's role and pid."""

from __future__ import annotations

import logging
import sys


def setup(role: str, level: str | int = "INFO") -> None:
    """Send the ``cluster`` logs (and the root logger's) to stderr, tagged with ``role``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s [{role} %(process)d] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
