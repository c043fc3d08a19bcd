"""``cluster load``: start the load processes, show progress, merge their results.

Each process (``cluster.load.child``) opens its share of the connections; this one reads
their progress lines, draws a progress bar when stderr is a terminal, and merges the
final latency histograms into throughput, p50/p90/p99/max and the error count.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from cluster.load.child import BUCKETS_PER_E


def run(host: str, port: int, workload: str, connections: int, processes: int,
        duration: float | None, requests: int | None, options: dict[str, Any],
        progress: bool) -> dict[str, Any]:
    """Run the load; return the merged summary."""
    processes = max(1, min(processes, connections))
    procs = []
    for i in range(processes):
        share = connections // processes + (i < connections % processes)
        budget = None if requests is None else (requests // processes
                                                + (i < requests % processes))
        spec = {"host": host, "port": port, "workload": workload, "connections": share,
                "duration": duration, "requests": budget, "options": options}
        procs.append(subprocess.Popen([sys.executable, "-m", "cluster.load.child",
                                       json.dumps(spec)], stdout=subprocess.PIPE,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    try:
        finals = _follow(procs, duration, requests, progress)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return summarize(finals, connections, processes, workload)


def _follow(procs: list[subprocess.Popen], duration: float | None, requests: int | None,
            progress: bool) -> list[dict[str, Any]]:
    sel = selectors.DefaultSelector()
    latest: dict[int, dict[str, Any]] = {}
    finals: list[dict[str, Any]] = []
    for p in procs:
        os.set_blocking(p.stdout.fileno(), False)
        sel.register(p.stdout, selectors.EVENT_READ, p)
    partial: dict[int, bytes] = {}
    started = time.monotonic()
    open_ = len(procs)
    while open_:
        for key, _ in sel.select(timeout=0.5):
            p = key.data
            chunk = p.stdout.read()
            if not chunk:
                sel.unregister(p.stdout)
                open_ -= 1
                continue
            data = partial.get(p.pid, b"") + chunk
            *lines, partial[p.pid] = data.split(b"\n")
            for line in lines:
                msg = json.loads(line)
                latest[p.pid] = msg
                if msg.get("final"):
                    finals.append(msg)
        if progress:
            _bar(latest, started, duration, requests)
    if progress:
        sys.stderr.write("\n")
    if len(finals) != len(procs):
        raise RuntimeError(f"{len(procs) - len(finals)} load process(es) died")
    return finals


def _bar(latest: dict[int, dict[str, Any]], started: float, duration: float | None,
         requests: int | None) -> None:
    done = sum(m["done"] for m in latest.values())
    errors = sum(m["errors"] for m in latest.values())
    elapsed = time.monotonic() - started
    fraction = (min(1.0, elapsed / duration) if duration
                else min(1.0, (done + errors) / requests) if requests else 0.0)
    width = 30
    filled = int(fraction * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} "
                     f"{done:,} requests {rate:,.0f}/s {errors} errors ")
    sys.stderr.flush()


def summarize(finals: list[dict[str, Any]], connections: int, processes: int,
              workload: str) -> dict[str, Any]:
    hist: Counter[int] = Counter()
    for f in finals:
        hist.update({int(k): v for k, v in f["hist"].items()})
    done = sum(f["done"] for f in finals)
    errors = sum(f["errors"] for f in finals)
    elapsed = max((f["elapsed"] for f in finals), default=0.0)

    def percentile(q: float) -> float:
        target, seen = q * done, 0
        for bucket in sorted(hist):
            seen += hist[bucket]
            if seen >= target:
                return math.exp((bucket + 0.5) / BUCKETS_PER_E) / 1000  # µs -> ms
        return 0.0

    return {
        "workload": workload, "connections": connections, "processes": processes,
        "requests": done, "errors": errors, "seconds": round(elapsed, 3),
        "requests_per_second": round(done / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {"p50": round(percentile(0.5), 3), "p90": round(percentile(0.9), 3),
                       "p99": round(percentile(0.99), 3),
                       "max": round(max((f["max"] for f in finals), default=0.0) * 1000, 3)},
        "error_samples": [s for f in finals for s in f["samples"]][:10],
    }


def render(summary: dict[str, Any]) -> str:
    lat = summary["latency_ms"]
    lines = [f"{summary['workload']}: {summary['connections']} connections from "
             f"{summary['processes']} processes, {summary['seconds']:.2f} s",
             f"  requests  {summary['requests']:,} ({summary['requests_per_second']:,.0f}/s), "
             f"errors {summary['errors']}",
             f"  latency   p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  "
             f"p99 {lat['p99']:.3f} ms  max {lat['max']:.3f} ms"]
    lines += [f"  error: {s}" for s in summary["error_samples"]]
    return "\n".join(lines)
