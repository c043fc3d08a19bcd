"""Logging for the cluster's processes: every line names the process's role and pid."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


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


class Episodes:
    """Logs a recurring problem once per episode with a count, not once per occurrence:
    the first occurrence is logged at once; later ones are counted and summed up in one
    line per ``interval`` seconds while they keep coming. (With ``clock``, a reactor, the
    last summary comes on time; without, with the next occurrence.)"""

    def __init__(self, logger: logging.Logger, message: str, clock: Any = None,
                 interval: float = 5.0, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.message = message  # one %s: the occurrence's details
        self.clock = clock
        self.interval = interval
        self.level = level
        self.total = 0
        self._counted = 0  # since the last line
        self._latest = ""
        self._windowEnds: float | None = None  # None: no episode open
        self._timer: Any = None

    def record(self, detail: str = "") -> None:
        """One more occurrence."""
        self.total += 1
        now = time.monotonic()
        if self._windowEnds is not None and now >= self._windowEnds:
            self._summarize()
        if self._windowEnds is None:
            self.logger.log(self.level, self.message + " (further ones are counted)", detail)
            self._open(now)
        else:
            self._counted += 1
            self._latest = detail

    def _open(self, now: float) -> None:
        self._windowEnds = now + self.interval
        if self.clock is not None:
            self._timer = self.clock.callLater(self.interval, self._summarize)

    def _summarize(self) -> None:
        """End the window: one line for what it counted, and the episode goes on; or, if
        nothing came, the episode is over."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._counted:
            self._windowEnds = None
            return
        self.logger.log(self.level, self.message + " ... and %d more like it in %.0fs "
                        "(%d in all)", self._latest, self._counted, self.interval, self.total)
        self._counted = 0
        self._open(time.monotonic())
