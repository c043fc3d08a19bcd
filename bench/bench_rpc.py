"""``callRemote`` between two processes against raw pyzmq, side by side.

    python -m bench.bench_rpc [--repeats 3] [--calls 20000]

Two modes, each run for both implementations in interleaved repeats (see
``bench/rpc_peer.py`` for what each side does):

- latency: one call at a time; round trip p50 and p99, CPU µs per call (both processes);
- pipelined: 100 calls in flight; calls/s and CPU µs per call. Raw pyzmq sends one
  message per call; ``cluster.rpc`` batches the calls made in one reactor iteration.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence

from bench.common import ROOT, machine, median, versions
from bench.common import cpu_seconds as cpu_of


def run_once(impl: str, mode: str, calls: int, serve: Sequence[str] = (),
             server_prefix: Sequence[str] = (), driver_prefix: Sequence[str] = ()) -> dict:
    """One run of ``bench.rpc_peer`` (``serve``: its ADDRESS and KEYS; the prefixes: the
    commands the two sides run under, such as ``ip netns exec``)."""
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as directory:
        server = subprocess.Popen([*server_prefix, sys.executable, "-m", "bench.rpc_peer",
                                   "serve", impl, directory, *serve],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            driver = subprocess.Popen(
                [*driver_prefix, sys.executable, "-m", "bench.rpc_peer", "drive", impl,
                 directory, str(server.pid), mode, str(calls)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert driver.stdout.readline().strip() == "warm"
            before = cpu_of([server.pid])
            driver.stdin.write("go\n")
            driver.stdin.flush()
            result = json.loads(driver.stdout.readline())
            result["server_cpu"] = cpu_of([server.pid]) - before
            driver.wait(timeout=30)
        finally:
            server.kill()
            server.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    started = datetime.datetime.now()
    results: dict = defaultdict(list)
    impls = ["raw", "ours"]
    for rep in range(args.repeats):
        for mode in ("latency", "pipelined"):
            for impl in impls[rep % 2:] + impls[:rep % 2]:
                calls = args.calls if mode == "latency" else args.calls * 5
                r = run_once(impl, mode, calls)
                cpu = (r["cpu"] + r["server_cpu"]) / r["calls"] * 1e6
                row = {"rate": r["calls"] / r["seconds"], "cpu": cpu, "p50": r["p50"],
                       "p99": r["p99"]}
                results[(impl, mode)].append(row)
                print(f"  {mode:9} {impl:4} {row['rate']:9.0f} calls/s {cpu:6.1f} us CPU/call"
                      f" p50 {r['p50']:6.1f} us p99 {r['p99']:6.1f} us", flush=True)

    def med(impl: str, mode: str, key: str) -> float:
        return median([row[key] for row in results[(impl, mode)]])

    print(f"\nRun {started:%Y-%m-%d %H:%M}, {machine()}; {versions('pyzmq', 'msgpack')}; "
          f"medians of {args.repeats} interleaved repeats.")
    print(f"Command: python -m bench.bench_rpc --repeats {args.repeats} --calls {args.calls}\n")
    print("| between two processes | round trip p50 µs | p99 µs | CPU µs/call "
          "| 100 in flight: calls/s | CPU µs/call |")
    print("|---|---:|---:|---:|---:|---:|")
    for impl, label in (("raw", "raw pyzmq DEALER/ROUTER, msgpack, one message per call"),
                        ("ours", "`cluster.rpc.callRemote`")):
        print(f"| {label} | {med(impl, 'latency', 'p50'):.1f} | {med(impl, 'latency', 'p99'):.1f}"
              f" | {med(impl, 'latency', 'cpu'):.1f} | {med(impl, 'pipelined', 'rate'):,.0f}"
              f" | {med(impl, 'pipelined', 'cpu'):.1f} |")
    print()
    print(f"- one at a time, ours ÷ raw: p50 "
          f"{med('ours', 'latency', 'p50') / med('raw', 'latency', 'p50'):.2f}, CPU/call "
          f"{med('ours', 'latency', 'cpu') / med('raw', 'latency', 'cpu'):.2f}")
    print(f"- 100 in flight, ours ÷ raw: calls/s "
          f"{med('ours', 'pipelined', 'rate') / med('raw', 'pipelined', 'rate'):.2f}, CPU/call "
          f"{med('ours', 'pipelined', 'cpu') / med('raw', 'pipelined', 'cpu'):.2f}")


if __name__ == "__main__":
    main()
