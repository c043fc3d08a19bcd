"""What ``--metrics`` costs under load: the default store with metrics off, and with
metrics on and ``/metrics`` scraped every second, side by side.

    python -m bench.bench_metrics [--repeats 5] [--requests 4000000] [--workers 2]

Both clusters run at once; the repeats interleave (off, on, off, on, ...), each a
``redis-benchmark -t get -P 16 -c 50`` run, and the server CPU per request is summed over
every process of the cluster (supervisor, gateway and workers: the supervisor is the one
that renders each scrape). Reports the medians and their ratio.
"""

from __future__ import annotations

import argparse
import datetime
import threading
import urllib.request

from bench.common import cluster, cpu_seconds, machine, median, redis_benchmark, versions
from cluster.harness import free_port

STORE = "cluster.store.server:factory"


class Scraper(threading.Thread):
    """Fetches /metrics every ``interval`` seconds while it runs, as Prometheus would."""

    def __init__(self, address: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url = f"http://{address}/metrics"
        self.interval = interval
        self.stopped = threading.Event()
        self.scrapes = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with urllib.request.urlopen(self.url, timeout=10) as r:
                self.bytes = len(r.read())
            self.scrapes += 1


def measure(port: int, pids: list[int], requests: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of one redis-benchmark GET run."""
    before = cpu_seconds(pids)
    rps = redis_benchmark(port, "get", requests, 16, keyspace=100_000)
    return rps, (cpu_seconds(pids) - before) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4_000_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    metricsAddress = f"127.0.0.1:{free_port()}"
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    scrapes = 0
    size = 0
    with cluster(STORE, args.workers) as (offPort, offPids), \
            cluster(STORE, args.workers, extra=["--metrics", metricsAddress]) as (onPort,
                                                                                 onPids):
        redis_benchmark(offPort, "set", 100_000, 16, keyspace=100_000)  # fill both stores
        redis_benchmark(onPort, "set", 100_000, 16, keyspace=100_000)
        for _ in range(args.repeats):
            results["off"].append(measure(offPort, offPids, args.requests))
            scraper = Scraper(metricsAddress)
            scraper.start()
            try:
                results["on"].append(measure(onPort, onPids, args.requests))
            finally:
                scraper.stopped.set()
                scraper.join()
            scrapes += scraper.scrapes
            size = scraper.bytes or size
    off = median([cpu for _, cpu in results["off"]])
    on = median([cpu for _, cpu in results["on"]])
    print(f"# bench_metrics {datetime.date.today()}: {machine()}; "
          f"{versions('prometheus_client')}")
    print(f"# redis-benchmark -t get -P 16 -c 50 -n {args.requests}, {args.workers} workers, "
          f"{args.repeats} interleaved repeats, {scrapes} scrapes of {size:,} bytes")
    print("| metrics | req/s (median) | server CPU µs/req (median) | runs (µs/req) |")
    print("|---|---|---|---|")
    for mode, median_cpu in (("off", off), ("on, scraped every 1 s", on)):
        runs = results["off" if mode == "off" else "on"]
        print(f"| {mode} | {median([r for r, _ in runs]):,.0f} | {median_cpu:.2f} | "
              f"{', '.join(f'{c:.2f}' for _, c in runs)} |")
    print(f"on ÷ off, CPU per request: {on / off:.3f}")


if __name__ == "__main__":
    main()
