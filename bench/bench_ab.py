"""Two revisions of this project side by side on one machine: did a change cost anything?

    python -m bench.bench_ab --old REV [--repeats 3]

The code at ``REV`` (``git archive``, into a temporary directory) and the working tree
each serve the same loads, interleaved, every server started from its own tree:
``bench/resp_server.py`` on the reactor, and ``cluster run`` (the default store) with 1
and 2 workers, driven by ``redis-benchmark -c 50 -r 100000``. It prints requests/s and
server CPU µs per request (summed over every server process) of both, and new ÷ old.
Machines are shared and noisy; run it twice to see the spread before reading a ratio.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

import psutil

from bench.common import (
    ROOT,
    cpu_seconds,
    free_port,
    machine,
    median,
    raise_fd_limit,
    redis_benchmark,
    wait_for_port,
)

PLAN = [("reactor", 1, "get", 200_000), ("reactor", 1, "set", 200_000),
        ("reactor", 16, "get", 1_000_000),
        ("cluster-1", 1, "get", 100_000), ("cluster-1", 16, "get", 500_000),
        ("cluster-2", 1, "get", 100_000), ("cluster-2", 16, "get", 500_000),
        ("cluster-2", 16, "set", 500_000)]


def start(tree: str, kind: str) -> tuple[subprocess.Popen, int, list[int]]:
    port = free_port()
    if kind == "reactor":
        argv = [sys.executable, "-m", "bench.resp_server", "cluster", str(port)]
    else:
        argv = [sys.executable, "-m", "cluster", "run", "--workers", kind[-1], "--bind",
                f"127.0.0.1:{port}", "--name", f"ab-{port}"]
    proc = subprocess.Popen(argv, cwd=tree, env={**os.environ, "PYTHONPATH": tree},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
    except OSError:
        proc.kill()
        raise
    time.sleep(1.0)  # every worker up
    pids = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    return proc, port, pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the git revision to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raise_fd_limit()
    started = datetime.datetime.now()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as old:
        archive = subprocess.run(["git", "archive", args.old], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        trees = {"old": old, "new": ROOT}
        results: dict = {}
        for rep in range(args.repeats):
            for kind in ("reactor", "cluster-1", "cluster-2"):
                for name in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                    proc, port, pids = start(trees[name], kind)
                    try:
                        for k, pipeline, test, n in PLAN:
                            if k != kind:
                                continue
                            used = cpu_seconds(pids)
                            rps = redis_benchmark(port, test, n, pipeline, keyspace=100_000)
                            used = cpu_seconds(pids) - used
                            results.setdefault((k, pipeline, test, name), []).append(
                                (rps, used / n * 1e6))
                            print(f"  {k:10} -P {pipeline:2} {test} {name}: {rps:10.0f} req/s "
                                  f"{used / n * 1e6:6.2f} us CPU/req", flush=True)
                    finally:
                        proc.terminate()
                        proc.wait()
    print(f"\nRun {started:%Y-%m-%d %H:%M}, {machine()}; old = {args.old}, new = the working "
          f"tree; medians of {args.repeats} interleaved repeats.\n")
    print("| server, test | req/s old | req/s new | µs CPU/req old | new | new ÷ old |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, pipeline, test, _ in PLAN:
        old_rows, new_rows = (results[(kind, pipeline, test, n)] for n in ("old", "new"))
        cpu_old = median([r[1] for r in old_rows])
        cpu_new = median([r[1] for r in new_rows])
        print(f"| {kind} `-P {pipeline}` {test.upper()} | "
              f"{median([r[0] for r in old_rows]):,.0f} | "
              f"{median([r[0] for r in new_rows]):,.0f} | {cpu_old:.2f} | {cpu_new:.2f} | "
              f"{cpu_new / cpu_old:.2f} |")


if __name__ == "__main__":
    main()
