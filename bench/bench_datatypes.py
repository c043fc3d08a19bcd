"""The store's data-type commands and its append-only file, beside redis-server.

    python -m bench.bench_datatypes [--repeats 3] [--requests 100000]

1. ``redis-benchmark -t lpush,lpop,sadd,hset,zadd`` (its own tests, ``-r 100000``) at
   ``-P 1`` and ``-P 16`` (50 clients) against the store with one worker (through the
   gateway's port; the worker serves every key) and against redis-server (no
   persistence): requests/s and server CPU µs per request, summed over every server
   process.
2. ``redis-benchmark -t set`` at ``-P 1`` and ``-P 16`` against the store with one worker
   without persistence, with ``--appendonly`` and ``--appendfsync everysec``, and with
   ``always``; beside redis-server with ``appendonly no``, ``everysec`` and ``always``.
   The files go to a temporary directory on the same disk as /tmp.

Repeats are interleaved; medians are reported with their ratios.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from collections import defaultdict
from contextlib import contextmanager

from bench import bench_store
from bench.common import cluster, cpu_seconds, machine, median, raise_fd_limit, redis_benchmark

TYPES = ("lpush", "lpop", "sadd", "hset", "zadd")
FSYNCS = ("off", "everysec", "always")


@contextmanager
def redis_server(fsync: str):
    with tempfile.TemporaryDirectory() as d:
        aof = [] if fsync == "off" else ["--appendonly", "yes", "--appendfsync", fsync,
                                         "--dir", d]
        with bench_store.redis_server(*aof) as server:
            yield server


@contextmanager
def store(fsync: str):
    with tempfile.TemporaryDirectory() as d:
        extra = ["--worker-ports", "0"]
        if fsync != "off":
            extra += ["--appendonly", d, "--appendfsync", fsync]
        with cluster("cluster.store.server:factory", 1, extra=extra) as (port, pids):
            yield port, pids


def measure(port: int, pids: list[int], test: str, n: int, pipeline: int) -> tuple:
    used = cpu_seconds(pids)
    rps = redis_benchmark(port, test, n, pipeline, keyspace=100_000)
    return rps, (cpu_seconds(pids) - used) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000, help="per test at -P 1")
    args = parser.parse_args()
    raise_fd_limit()
    started = datetime.datetime.now()
    results: dict = defaultdict(list)
    contenders = [("redis-server", "off"), ("store", "off"), *[
        (who, fsync) for fsync in FSYNCS[1:] for who in ("redis-server", "store")]]
    for rep in range(args.repeats):
        for who, fsync in contenders[rep % 2:] + contenders[:rep % 2]:
            start = redis_server if who == "redis-server" else store
            with start(fsync) as (port, pids):
                for pipeline in (1, 16):
                    n = args.requests * (1 if pipeline == 1 else 5)
                    tests = TYPES + ("set",) if fsync == "off" else ("set",)
                    for test in tests:
                        rps, cpu = measure(port, pids, test, n // (5 if fsync == "always"
                                                                   else 1), pipeline)
                        results[(who, fsync, pipeline, test)].append((rps, cpu))
                        print(f"  {who:12} aof={fsync:8} -P {pipeline:2} {test:5} "
                              f"{rps:10.0f} req/s {cpu:6.2f} us CPU/req", flush=True)

    def med(who: str, fsync: str, pipeline: int, test: str, i: int) -> float:
        rows = results[(who, fsync, pipeline, test)]
        return median([r[i] for r in rows]) if rows else float("nan")

    print(f"\nRun {started:%Y-%m-%d %H:%M}, {machine()}; medians of {args.repeats} "
          f"interleaved repeats.")
    print(f"Command: python -m bench.bench_datatypes --repeats {args.repeats} "
          f"--requests {args.requests}\n")
    for pipeline in (1, 16):
        print(f"Data types, `-P {pipeline}`, one worker: requests/s, server CPU µs per "
              f"request, CPU ÷ redis-server's\n")
        print("| command | redis-server req/s | store req/s | redis-server µs | store µs "
              "| CPU ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        for test in TYPES:
            r, s = (med(w, "off", pipeline, test, 1) for w in ("redis-server", "store"))
            print(f"| {test.upper()} | {med('redis-server', 'off', pipeline, test, 0):,.0f} "
                  f"| {med('store', 'off', pipeline, test, 0):,.0f} | {r:.2f} | {s:.2f} "
                  f"| {s / r:.2f} |")
        print()
    for pipeline in (1, 16):
        print(f"SET with an append-only file, `-P {pipeline}`, one worker: requests/s, "
              f"server CPU µs per request\n")
        print("| appendfsync | redis-server req/s | store req/s | redis-server µs | "
              "store µs | store µs ÷ store without AOF |")
        print("|---|---:|---:|---:|---:|---:|")
        base = med("store", "off", pipeline, "set", 1)
        for fsync in FSYNCS:
            r, s = (med(w, fsync, pipeline, "set", 1) for w in ("redis-server", "store"))
            print(f"| {fsync} | {med('redis-server', fsync, pipeline, 'set', 0):,.0f} | "
                  f"{med('store', fsync, pipeline, 'set', 0):,.0f} | {r:.2f} | {s:.2f} | "
                  f"{s / base:.2f} |")
        print()
    worst = max(med("store", "off", 1, t, 1) / med("redis-server", "off", 1, t, 1)
                for t in TYPES)
    print(f"- data-type commands at `-P 1`, CPU per request ÷ redis-server's, worst: "
          f"{worst:.2f} (target ≤ 1.5)")
    ratio = med("store", "everysec", 1, "set", 1) / med("store", "off", 1, "set", 1)
    print(f"- SET with appendfsync everysec ÷ without, CPU per request at `-P 1`: "
          f"{ratio:.2f} (target ≤ 1.25)")


if __name__ == "__main__":
    main()
