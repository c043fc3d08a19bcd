"""``cluster load``: start the load processes, show progress, merge their results.

Each process (``cluster.load.child``) opens its share of the connections; this one reads
their progress lines, draws a progress bar when stderr is a terminal, and merges the
final latency histograms into throughput, p50/p90/p99/max and the error count.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from typing import Any

from cluster.config import splitHostPort
from cluster.load.histogram import Histogram, merge


def run(address: str, workload: str = "resp", connections: int = 50,
        requests: int | None = None, duration: float | None = None, pipeline: int = 1,
        processes: int | None = None, progress: bool = False,
        **options: Any) -> dict[str, Any]:
    """Load ``address`` (HOST:PORT) from ``processes`` processes (default: one per core, at
    most one per connection) until ``requests`` replies or ``duration`` seconds (10 s when
    neither is given); return the merged summary, the dict ``cluster load --json`` prints.
    ``options`` go to the workload (resp: keyspace, value_size, set_ratio)."""
    host, port = splitHostPort(address, "address")
    if connections < 1:
        raise ValueError(f"connections must be at least 1, not {connections}")
    if duration is None and requests is None:
        duration = 10.0
    processes = max(1, min(processes or os.cpu_count() or 1, connections))
    options = {**options, "pipeline": pipeline}
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
            p.stdout.close()
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
    """Merge the load processes' final reports: their histograms add up bucket by bucket,
    so the percentiles are those of every request, not an average of percentiles."""
    hist = merge(Histogram.from_dict(f["hist"]) for f in finals)
    done = sum(f["done"] for f in finals)
    errors = sum(f["errors"] for f in finals)
    elapsed = max((f["elapsed"] for f in finals), default=0.0)

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "requests_per_s": round(done / elapsed, 1) if elapsed else 0.0,
        "p50_ms": ms(hist.percentile(0.5)), "p90_ms": ms(hist.percentile(0.9)),
        "p99_ms": ms(hist.percentile(0.99)), "max_ms": ms(hist.max), "errors": errors,
        "requests": done, "seconds": round(elapsed, 3), "workload": workload,
        "connections": connections, "processes": processes,
        "error_samples": [s for f in finals for s in f["samples"]][:10],
    }


def render(summary: dict[str, Any]) -> str:
    """The human-readable summary ``cluster load`` prints."""
    s = summary
    lines = [f"{s['workload']}: {s['connections']} connections from {s['processes']} "
             f"processes, {s['seconds']:.2f} s",
             f"  requests  {s['requests']:,} ({s['requests_per_s']:,.0f}/s), "
             f"errors {s['errors']}",
             f"  latency   p50 {s['p50_ms']:.3f} ms  p90 {s['p90_ms']:.3f} ms  "
             f"p99 {s['p99_ms']:.3f} ms  max {s['max_ms']:.3f} ms"]
    lines += [f"  error: {e}" for e in s["error_samples"]]
    return "\n".join(lines)
