"""The numbers a cluster process keeps for ``--metrics``: plain counters and fixed-bucket
histograms, cheap to bump in hot paths and read only when the supervisor asks (one
``["metrics", seq]`` message per process per scrape; the answer is a snapshot)."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from typing import Any

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


# what the exposition writes itself: an app may not reuse these names or labels
BUILTIN_NAMES = frozenset({
    "cluster_up", "cluster_process_cpu_seconds", "cluster_process_resident_memory_bytes",
    "cluster_process_open_fds", "cluster_process_restarts", "cluster_connections_open",
    "cluster_connections_accepted", "cluster_requests", "cluster_gateway_connections",
    "cluster_gateway_waited", "cluster_gateway_handed_off", "cluster_rpc_calls",
    "cluster_rpc_served", "cluster_rpc_errors", "cluster_rpc_messages", "cluster_rpc_items",
    "cluster_rpc_items_per_message", "cluster_rpc_latency_seconds",
    "cluster_metrics_unanswered"})
RESERVED_LABELS = frozenset({"cluster", "host", "node", "role", "le", "quantile"})
MAX_APP_SERIES = 500  # an app's series per process: a scrape's answer stays one message


class AppMetricsError(ValueError):
    """What an app's ``metrics()`` returned breaks the rules."""


def appMetrics(factory: Any, problems: Any = None) -> dict[str, Any]:
    """The app's own numbers: its factory's ``metrics()``, if it has one, checked.

    ``metrics()`` returns ``{name: value}``: a finite number, or ``[label, {label value:
    number}]`` for a family with one label. Names follow Prometheus's rules and may not
    be one of the cluster's own; a name ending in ``_total`` is a counter, any other a
    gauge; at most ``MAX_APP_SERIES`` series in all. The key ``requests`` (a number) is
    what the status page charts as requests/s. A hook that raises or breaks a rule
    gives nothing this time, and the problem goes to ``problems`` (an ``Episodes``)."""
    hook = getattr(factory, "metrics", None)
    if hook is None:
        return {}
    try:
        return _checked(hook())
    except Exception as e:
        if problems is not None:
            problems.record(f"{type(e).__name__}: {e}")
        return {}


def _checked(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise AppMetricsError(f"metrics() must return a dict, not {type(raw).__name__}")
    checked: dict[str, Any] = {}
    series = 0
    for name, value in raw.items():
        if name == "requests":
            checked[name] = _number(name, value)
            continue
        base = name[:-6] if isinstance(name, str) and name.endswith("_total") else name
        if not isinstance(name, str) or not _NAME.match(name) or not base \
                or base in BUILTIN_NAMES:
            raise AppMetricsError(f"{name!r} is not a metric name of its own")
        if isinstance(value, list | tuple) and len(value) == 2:
            label, values = value
            if not isinstance(label, str) or not _NAME.match(label) or \
                    label in RESERVED_LABELS or label.startswith("__"):
                raise AppMetricsError(f"{name}: {label!r} is not a label name of its own")
            if not isinstance(values, dict):
                raise AppMetricsError(f"{name}: the values must be a dict")
            checked[name] = [label, {str(k): _number(name, v) for k, v in values.items()}]
            series += len(values)
        else:
            checked[name] = _number(name, value)
            series += 1
        if series > MAX_APP_SERIES:
            raise AppMetricsError(f"more than {MAX_APP_SERIES} series")
    return checked


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value):
        raise AppMetricsError(f"{name}: {value!r} is not a finite number")
    return value
