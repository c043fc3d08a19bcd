"""``/metrics``: the cluster's numbers in Prometheus's text format, written by
``prometheus_client`` from one status document and the snapshots the processes sent.

Every series has the labels ``cluster``, ``host``, ``node`` and ``role`` (the
supervisor's own series carry its node, "supervisor"). While a reload runs, a node has
two processes for a moment; the series show the one serving (running, else the
newest), so no series appears twice in a scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
LABELS = ["cluster", "host", "node", "role"]
LIVE = ("running", "draining")


def render(status: dict[str, Any], snapshots: dict[str, dict[str, Any]], host: str,
           unanswered: int) -> bytes:
    """The text exposition of ``status`` (the ``cluster status --json`` document) and
    ``snapshots`` (node -> what that process answered to this scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(status, snapshots, host, unanswered))
    return generate_latest(registry)


def serving(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per node: the running one, else the newest."""
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        old = chosen.get(row["node"])
        if old is None or (row["state"] in LIVE) >= (old["state"] in LIVE):
            chosen[row["node"]] = row
    return chosen


class _Collector:
    def __init__(self, status: dict[str, Any], snapshots: dict[str, dict[str, Any]],
                 host: str, unanswered: int) -> None:
        self.status = status
        self.snapshots = snapshots
        self.host = host
        self.unanswered = unanswered

    def _labels(self, row: dict[str, Any]) -> list[str]:
        return [self.status["name"], self.host, row["node"], row["role"]]

    def collect(self) -> Iterator[Metric]:
        rows = serving(self.status["processes"])
        yield from self._processes(rows)
        yield from self._connections(rows)
        yield from self._rpc(rows)
        yield from self._app(rows)
        unanswered = GaugeMetricFamily(
            "cluster_metrics_unanswered", "Processes that did not answer this scrape in "
            "time (their own series are missing from it)", labels=LABELS)
        unanswered.add_metric(self._labels(rows["supervisor"]), self.unanswered)
        yield unanswered

    def _family(self, kind: type, name: str, doc: str, extra: tuple[str, ...] = ()) -> Any:
        return kind(name, doc, labels=[*LABELS, *extra])

    def _processes(self, rows: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        cpu = self._family(CounterMetricFamily, "cluster_process_cpu_seconds",
                           "CPU time (user and system) of the process")
        rss = self._family(GaugeMetricFamily, "cluster_process_resident_memory_bytes",
                           "Resident memory of the process")
        fds = self._family(GaugeMetricFamily, "cluster_process_open_fds",
                           "Open file descriptors of the process")
        restarts = self._family(CounterMetricFamily, "cluster_process_restarts",
                                "Times the supervisor restarted this node after it died")
        up = self._family(GaugeMetricFamily, "cluster_up",
                          "1 if the node's process is running, else 0")
        for row in rows.values():
            labels = self._labels(row)
            up.add_metric(labels, 1 if row["state"] in LIVE else 0)
            restarts.add_metric(labels, row["restarts"])
            if row["pid"]:
                cpu.add_metric(labels, row.get("cpu_seconds", 0.0))
                rss.add_metric(labels, row["rss"])
                fds.add_metric(labels, row["fds"])
        yield from (cpu, rss, fds, restarts, up)

    def _connections(self, rows: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        open_ = self._family(GaugeMetricFamily, "cluster_connections_open",
                             "Connections open in the worker")
        accepted = self._family(CounterMetricFamily, "cluster_connections_accepted",
                                "Connections the process took (the gateway: accepted)")
        requests = self._family(CounterMetricFamily, "cluster_requests",
                                "What the worker served: the app's request count, or "
                                "its reads")
        outcomes = self._family(CounterMetricFamily, "cluster_gateway_connections",
                                "Connections by routing outcome: handed to the policy's "
                                "first choice (preferred), to another worker (fallback), "
                                "or refused", ("outcome",))
        waited = self._family(CounterMetricFamily, "cluster_gateway_waited",
                              "Connections that waited for room in a worker's queue first")
        handed = self._family(CounterMetricFamily, "cluster_gateway_handed_off",
                              "Connections the gateway handed to each worker", ("worker",))
        for node, snap in self._answered(rows):
            labels = self._labels(rows[node])
            accepted.add_metric(labels, snap.get("accepted", 0))
            if rows[node]["role"] == "gateway":
                for outcome, n in sorted(snap.get("outcomes", {}).items()):
                    outcomes.add_metric([*labels, outcome], n)
                waited.add_metric(labels, snap.get("waited", 0))
                for worker, n in sorted(snap.get("handed_to", {}).items()):
                    handed.add_metric([*labels, worker], n)
            else:
                open_.add_metric(labels, snap.get("open", 0))
                requests.add_metric(labels, snap.get("requests", 0))
        yield from (open_, accepted, requests, outcomes, waited, handed)

    def _rpc(self, rows: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        calls = self._family(CounterMetricFamily, "cluster_rpc_calls", "RPC calls made")
        served = self._family(CounterMetricFamily, "cluster_rpc_served",
                              "RPC calls answered by this process")
        errors = self._family(CounterMetricFamily, "cluster_rpc_errors",
                              "RPC calls that failed, by kind", ("kind",))
        messages = self._family(CounterMetricFamily, "cluster_rpc_messages",
                                "RPC messages sent (each carries a batch of items)")
        items = self._family(CounterMetricFamily, "cluster_rpc_items",
                             "RPC items (calls, replies, notifications) sent")
        perMessage = self._family(HistogramMetricFamily, "cluster_rpc_items_per_message",
                                  "Items per RPC message sent (batching)")
        latency = self._family(HistogramMetricFamily, "cluster_rpc_latency_seconds",
                               "Round trip of RPC calls, from the call to its answer")
        for node, snap in self._answered(rows):
            rpc = snap.get("rpc")
            if not rpc:
                continue
            labels = self._labels(rows[node])
            calls.add_metric(labels, rpc["calls"])
            served.add_metric(labels, rpc["served"])
            for kind, n in sorted(rpc["errors"].items()):
                errors.add_metric([*labels, kind], n)
            messages.add_metric(labels, rpc["messages"])
            items.add_metric(labels, rpc["items"])
            _histogram(perMessage, labels, rpc["items_per_message"])
            _histogram(latency, labels, rpc["latency"])
        yield from (calls, served, errors, messages, items, perMessage, latency)

    def _app(self, rows: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        """What the app's factory reported (``metrics()``), one family per name."""
        families: dict[str, Any] = {}
        for node, snap in self._answered(rows):
            labels = self._labels(rows[node])
            for name, value in sorted((snap.get("app") or {}).items()):
                extra = (value[0],) if isinstance(value, list) else ()
                family = families.get(name)
                if family is None:
                    counter = name.endswith("_total")
                    family = families[name] = self._family(
                        CounterMetricFamily if counter else GaugeMetricFamily,
                        name[:-6] if counter else name, "Reported by the application",
                        extra)
                if isinstance(value, list):
                    for labelValue, n in sorted(value[1].items()):
                        family.add_metric([*labels, labelValue], n)
                else:
                    family.add_metric(labels, value)
        yield from families.values()

    def _answered(self, rows: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict]]:
        for node, snap in sorted(self.snapshots.items()):
            if node in rows:
                yield node, snap


def _histogram(family: HistogramMetricFamily, labels: list[str],
               snap: dict[str, Any]) -> None:
    """One histogram from a ``cluster.metrics.Histogram`` snapshot (per-bucket counts)."""
    buckets, total = [], 0
    for bound, count in zip([*snap["bounds"], float("inf")], snap["counts"], strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    family.add_metric(labels, buckets, snap["sum"])
