"""Logging for the cluster's processes: every line names the process's role and pid."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, for a log collector: ``time`` (RFC 3339,
    UTC), ``level``, ``role``, ``node``, ``pid``, ``logger``, ``message`` and ``exc`` (the
    traceback) when there is one."""

    def __init__(self, role: str, node: str) -> None:
        super().__init__()
        self.role = role
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "role": self.role, "node": self.node,
            "pid": record.process, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _logUncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    logging.getLogger("cluster").critical("uncaught exception", exc_info=(kind, value, tb))


def _logUncaughtInThread(args: Any) -> None:
    logging.getLogger("cluster").critical(
        "uncaught exception in thread %s", args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def setup(role: str, level: str | int = "INFO", fmt: str = "text",
          node: str | None = None) -> None:
    """Send the ``cluster`` logs (and the root logger's) to stderr, tagged with the
    process's ``role`` and ``node`` (its name in the cluster), as text or JSON lines."""
    node = node or role
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(role, node))
        # a crash's traceback, in any thread, and a Python warning are JSON lines too
        sys.excepthook = _logUncaught
        threading.excepthook = _logUncaughtInThread
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s [{node} %(process)d] %(levelname)s %(name)s: %(message)s"))
        sys.excepthook = sys.__excepthook__
        threading.excepthook = threading.__excepthook__
    logging.captureWarnings(True)
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
