"""Side by side: a round trip to a thread pool and back to the event loop.

    python -m bench.bench_threads [--repeats 5] [--calls 20000]

This reactor's ``deferToThread``, Twisted's ``deferToThread`` and asyncio's (and
uvloop's) ``asyncio.to_thread``, each in its own process, interleaved over the repeats:
``--calls`` calls of a function that returns at once, one at a time (the round trip's
latency) and 16 in flight (the pool kept busy). The figures are wall µs and process CPU
µs (all threads) per call; the table gives medians and the ratios against asyncio.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from collections import defaultdict

from bench.common import ROOT, machine, median, versions

HOSTS = ["cluster", "asyncio", "uvloop", "twisted"]
CONCURRENCY = [1, 16]
WARMUP = 1000


def nothing() -> None:
    return None


def chains_on_deferreds(deferToThread, reactor, calls: int, concurrency: int) -> dict:
    """Run ``concurrency`` chains of deferToThread calls on a Twisted-style reactor."""
    timing: dict = {}
    left = [calls]
    running = [concurrency]

    def next_call(_: object = None) -> None:
        if left[0] == 0:
            running[0] -= 1
            if running[0] == 0:
                timing["wall"] = time.perf_counter() - timing["wall"]
                timing["cpu"] = time.process_time() - timing["cpu"]
                reactor.stop()
            return
        left[0] -= 1
        deferToThread(nothing).addCallback(next_call)

    def go() -> None:
        timing["wall"], timing["cpu"] = time.perf_counter(), time.process_time()
        for _ in range(concurrency):
            next_call()

    def warm(_: object = None, n: list = [WARMUP]) -> None:  # noqa: B006
        if n[0] == 0:
            go()
            return
        n[0] -= 1
        deferToThread(nothing).addCallback(warm)

    reactor.callWhenRunning(warm)
    reactor.run()
    return timing


def child_cluster(calls: int, concurrency: int) -> dict:
    from cluster.reactor import reactor
    from cluster.threads import deferToThread

    return chains_on_deferreds(deferToThread, reactor, calls, concurrency)


def child_twisted(calls: int, concurrency: int) -> dict:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.threads import deferToThread

    return chains_on_deferreds(deferToThread, reactor, calls, concurrency)


def child_asyncio(calls: int, concurrency: int, use_uvloop: bool) -> dict:
    import asyncio

    async def chain(n: int) -> None:
        for _ in range(n):
            await asyncio.to_thread(nothing)

    async def main() -> dict:
        await chain(WARMUP)
        wall, cpu = time.perf_counter(), time.process_time()
        share = [calls // concurrency + (i < calls % concurrency) for i in range(concurrency)]
        await asyncio.gather(*(chain(n) for n in share))
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

    if use_uvloop:
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def child(host: str, calls: int, concurrency: int) -> None:
    if host == "cluster":
        timing = child_cluster(calls, concurrency)
    elif host == "twisted":
        timing = child_twisted(calls, concurrency)
    else:
        timing = child_asyncio(calls, concurrency, host == "uvloop")
    print(json.dumps(timing))


def measure(host: str, calls: int, concurrency: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-m", "bench.bench_threads", "--child", host,
                          str(calls), str(concurrency)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    timing = json.loads(out.strip().splitlines()[-1])
    return timing["wall"] / calls * 1e6, timing["cpu"] / calls * 1e6


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--hosts", default=",".join(HOSTS))
    args = parser.parse_args()
    hosts = args.hosts.split(",")
    results: dict = defaultdict(list)
    started = datetime.datetime.now()
    for rep in range(args.repeats):
        order = hosts[rep % len(hosts):] + hosts[:rep % len(hosts)]
        for host in order:
            for conc in CONCURRENCY:
                wall, cpu = measure(host, args.calls, conc)
                results[(host, conc)].append((wall, cpu))
                print(f"  {host:8} {conc:2} in flight: {wall:6.1f} us wall, {cpu:6.1f} us CPU "
                      "per call", flush=True)
    lines = [f"Run {started:%Y-%m-%d %H:%M}, {machine()}; {versions('twisted', 'uvloop')}.",
             f"Medians of {args.repeats} interleaved repeats of {args.calls} calls.", "",
             "| host loop | 1 in flight: wall / CPU (µs per call) "
             "| 16 in flight: wall / CPU (µs per call) |", "|---|---|---|"]
    med = {}
    for host in hosts:
        cells = [host]
        for conc in CONCURRENCY:
            wall = median([w for w, _ in results[(host, conc)]])
            cpu = median([c for _, c in results[(host, conc)]])
            med[(host, conc)] = (wall, cpu)
            cells.append(f"{wall:.1f} / {cpu:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for peer in ("asyncio", "twisted"):
        if peer in hosts and "cluster" in hosts:
            parts = [f"{conc} in flight {med[('cluster', conc)][0] / med[(peer, conc)][0]:.2f}"
                     f" / {med[('cluster', conc)][1] / med[(peer, conc)][1]:.2f}"
                     for conc in CONCURRENCY]
            lines.append(f"- this reactor ÷ {peer} (wall / CPU): {'; '.join(parts)}")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
