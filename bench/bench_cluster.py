"""The cluster against one plain reactor process and against SO_REUSEPORT, side by side.

    python -m bench.bench_cluster [--workers 1,2] [--repeats 3] [--clients 2,8]

Each part runs one plain reactor process, N plain processes sharing the port with
SO_REUSEPORT (the multi-process baseline without a gateway) and the cluster (supervisor,
gateway and N workers), for each N of ``--workers``; CPU is summed over every server
process.

(a) New connection per request (``bench.conn_client`` processes: connect, read 3 bytes,
    close): connections/s and server CPU µs per connection, with each ``--clients``.
(b) Keep-alive Redis-protocol traffic (redis-benchmark GET/SET, ``-r 100000``, ``-P 1``
    and ``-P 16``): requests/s and server CPU µs per request.

Runs unchanged on a machine with many cores: ``--workers 1,2,4,8,14``.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

from bench.common import (
    ROOT,
    cluster,
    cpu_seconds,
    free_port,
    machine,
    median,
    raise_fd_limit,
    redis_benchmark,
    servers,
)


@contextmanager
def contender(kind: str, app: str, n: int):
    """Yield (port, pids) of a running server setup."""
    if kind == "gateway":
        with cluster(f"bench.apps:{app}", n) as (port, pids):
            yield port, pids
        return
    port = free_port()
    count = 1 if kind == "plain" else n
    extra = ["--reuseport"] if kind == "reuseport" else []
    argvs = [["-m", "bench.plain_server", app, str(port), *extra] for _ in range(count)]
    with servers(argvs) as procs:
        yield port, [p.pid for p in procs]


def connection_rate(port: int, pids: list[int], clients: int, seconds: float):
    before = cpu_seconds(pids)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.conn_client", str(port),
                               str(seconds)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    done = sum(int(p.communicate()[0]) for p in procs)
    used = cpu_seconds(pids) - before
    return done / seconds, used / done * 1e6


def part_a(args, results) -> None:
    setups_ = setups(args)
    for clients in args.clients:
        for rep in range(args.repeats):
            for kind, n in setups_[rep % len(setups_):] + setups_[:rep % len(setups_)]:
                with contender(kind, "hello", n) as (port, pids):
                    time.sleep(0.3)
                    rate, cpu = connection_rate(port, pids, clients, args.seconds)
                results[("a", clients, kind, n)].append((rate, cpu))
                print(f"  (a) {clients} clients {kind:9} x{n:<2} {rate:8.0f} conn/s "
                      f"{cpu:6.1f} us CPU/conn", flush=True)


def setups(args) -> list[tuple[str, int]]:
    """One plain process; N processes sharing the port (the multi-process baseline
    without a gateway); the cluster with each N."""
    return ([("plain", 1)] + [("reuseport", n) for n in args.workers if n > 1]
            + [("gateway", n) for n in args.workers])


def part_b(args, results) -> None:
    setups_ = setups(args)
    for rep in range(args.repeats):
        order = setups_[rep % len(setups_):] + setups_[:rep % len(setups_)]
        for kind, n in order:
            with contender(kind, "resp", n) as (port, pids):
                for pipeline, requests in ((1, args.requests), (16, args.requests * 5)):
                    for test in ("get", "set"):
                        before = cpu_seconds(pids)
                        rps = redis_benchmark(port, test, requests, pipeline,
                                              keyspace=100_000)
                        used = cpu_seconds(pids) - before
                        results[("b", kind, n, pipeline, test)].append(
                            (rps, used / requests * 1e6))
                        print(f"  (b) {kind:7} x{n:<2} -P {pipeline:2} {test}: {rps:9.0f} "
                              f"req/s {used / requests * 1e6:6.2f} us CPU/req", flush=True)


def ratio(a: float, b: float) -> float:
    """a ÷ b; NaN when b is 0 (a run too short for the CPU clock to tick)."""
    return a / b if b else float("nan")


def report(args, results) -> str:
    lines = []
    if args.skip != "a":
        lines += report_a(args, results)
    if args.skip != "b":
        lines += report_b(args, results)
    return "\n".join(lines)


LABELS = {"plain": "one plain reactor process", "reuseport": "{} plain processes, SO_REUSEPORT",
          "gateway": "cluster: gateway + {} worker(s)"}


def report_a(args, results) -> list[str]:
    lines = []
    for clients in args.clients:
        def med(kind: str, n: int, clients: int = clients) -> tuple[float, float]:
            rows = results[("a", clients, kind, n)]
            return median([r for r, _ in rows]), median([c for _, c in rows])

        plain = med("plain", 1)[0]
        lines += [f"(a) new connection per request, {clients} client processes, "
                  f"{args.seconds:g} s each:", "",
                  "| server | connections/s | CPU µs/connection | conn/s ÷ plain |",
                  "|---|---:|---:|---:|"]
        for kind, n in setups(args):
            rate, cpu = med(kind, n)
            lines.append(f"| {LABELS[kind].format(n)} | {rate:,.0f} | {cpu:.1f} "
                         f"| {ratio(rate, plain):.2f} |")
        lines.append("")
    return lines


def report_b(args, results) -> list[str]:
    lines = []
    lines += ["(b) keep-alive RESP, redis-benchmark -c 50 -r 100000; CPU summed over "
              "every server process:", "",
              "| server | `-P 1` GET req/s | `-P 1` GET / SET µs CPU/req "
              "| `-P 16` GET req/s | `-P 16` GET / SET µs CPU/req |",
              "|---|---:|---|---:|---|"]
    med = {}
    for kind, w in setups(args):
        cells = [LABELS[kind].format(w)]
        for pipeline in (1, 16):
            for test in ("get", "set"):
                rows = results[("b", kind, w, pipeline, test)]
                med[(kind, w, pipeline, test)] = (median([r for r, _ in rows]),
                                                  median([c for _, c in rows]))
            cells.append(f"{med[(kind, w, pipeline, 'get')][0]:,.0f}")
            cells.append(f"{med[(kind, w, pipeline, 'get')][1]:.2f} / "
                         f"{med[(kind, w, pipeline, 'set')][1]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for w in args.workers:
        for pipeline in (1, 16):
            cpu = [ratio(med[("gateway", w, pipeline, t)][1], med[("plain", 1, pipeline, t)][1])
                   for t in ("get", "set")]
            line = (f"- {w} worker(s) `-P {pipeline}`: CPU/request ÷ plain process "
                    f"GET {cpu[0]:.2f}, SET {cpu[1]:.2f}")
            if w > 1:
                rp = [ratio(med[("gateway", w, pipeline, t)][1],
                            med[("reuseport", w, pipeline, t)][1])
                      for t in ("get", "set")]
                line += f"; ÷ {w} SO_REUSEPORT processes GET {rp[0]:.2f}, SET {rp[1]:.2f}"
            lines.append(line)
    if 1 in args.workers:
        for w in args.workers:
            if w == 1:
                continue
            for pipeline in (1, 16):
                r = [ratio(med[("gateway", w, pipeline, t)][0], med[("gateway", 1, pipeline, t)][0])
                     for t in ("get", "set")]
                lines.append(f"- requests/s, {w} workers ÷ 1 worker, `-P {pipeline}`: "
                             f"GET {r[0]:.2f}, SET {r[1]:.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", default="2,8", type=lambda s: [int(x) for x in s.split(",")],
                        help="client processes for (a): 2 as in BENCHMARKS.md; 8 keep every "
                             "server process busy")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=200_000, help="per test at -P 1")
    parser.add_argument("--skip", choices=["a", "b"], help="skip one part")
    args = parser.parse_args()
    raise_fd_limit()
    results: dict = defaultdict(list)
    started = datetime.datetime.now()
    if args.skip != "a":
        part_a(args, results)
    if args.skip != "b":
        part_b(args, results)
    print()
    print(f"Run {started:%Y-%m-%d %H:%M}, {machine()}; medians of {args.repeats} "
          f"interleaved repeats.")
    listed = ",".join(map(str, args.workers)), ",".join(map(str, args.clients))
    print(f"Command: python -m bench.bench_cluster --workers {listed[0]} "
          f"--repeats {args.repeats} --clients {listed[1]}\n")
    print(report(args, results))


if __name__ == "__main__":
    main()
