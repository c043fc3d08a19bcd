"""The numbers a cluster process keeps for ``--metrics``: plain counters and fixed-bucket
histograms, cheap to bump in hot paths and read only when the supervisor asks (one
``["metrics", seq]`` message per process per scrape; the answer is a snapshot)."""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from typing import Any

log = logging.getLogger("cluster")

# seconds: a local call takes tens of microseconds, a loaded one milliseconds
RPC_LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                      0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ITEMS_BOUNDS = (1, 2, 4, 8, 16, 32, 64)  # items per RPC message (batching)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")


class Histogram:
    """Counts per bucket (``value <= bound``, then one past the last bound) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.sum}


def appMetrics(factory: Any) -> dict[str, Any]:
    """The app's own numbers: its factory's ``metrics()``, if it has one, checked.

    ``metrics()`` returns ``{name: value}``: a number, or ``[label, {label value:
    number}]`` for a family with one label. Names follow Prometheus's rules; a name
    ending in ``_total`` is a counter, any other a gauge. The key ``requests`` (a
    number) is what the status page charts as requests/s."""
    hook = getattr(factory, "metrics", None)
    if hook is None:
        return {}
    try:
        raw = hook()
    except Exception:
        log.exception("the app's metrics() failed")
        return {}
    checked: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        if not isinstance(name, str) or not _NAME.match(name):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            checked[name] = value
        elif (isinstance(value, list | tuple) and len(value) == 2
              and isinstance(value[0], str) and _NAME.match(value[0])
              and isinstance(value[1], dict)):
            checked[name] = [value[0], {str(k): v for k, v in value[1].items()
                                        if isinstance(v, int | float)}]
    return checked
