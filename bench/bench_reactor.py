"""Side by side: the same Redis-protocol Protocol on this reactor, asyncio, uvloop, Twisted.

    python -m bench.bench_reactor [--repeats 3] [--idle 10000] [--tls]

For each host loop, interleaved over the repeats (A B C D, B C D A, ...): redis-benchmark
``-t ping_mbulk,set,get`` with ``-P 1`` and ``-P 16``, measuring the server process's CPU
time per request (the primary figure) and requests/s; then RSS growth per idle
connection with ``--idle`` idle connections held open. Prints a markdown table of
medians and the ratios of this reactor against asyncio and Twisted.

With ``--tls`` every connection speaks TLS (certificates made for the run by the openssl
command; redis-benchmark ``--tls``), each loop with its own TLS stack; idle connections
are not measured then. Twisted's TLS needs pyOpenSSL (``pip install pyopenssl``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import ssl
import tempfile
import time
from collections import defaultdict

import psutil

from bench.common import (
    ROOT,
    cpu_seconds,
    free_port,
    machine,
    median,
    raise_fd_limit,
    redis_benchmark,
    server,
    versions,
)

HOSTS = ["cluster", "asyncio", "uvloop", "twisted"]
TESTS = ["ping_mbulk", "set", "get"]
PIPELINES = [1, 16]


def measure_requests(host: str, requests: dict[int, int], results: dict,
                     certs: dict[str, str] | None) -> None:
    port = free_port()
    argv = ["-m", "bench.resp_server", host, str(port)]
    if certs:
        argv += [certs["server.pem"], certs["server.key"]]
    with server(argv) as proc:
        for pipeline in requests:
            for test in TESTS:
                n = requests[pipeline]
                before = cpu_seconds([proc.pid])
                rps = redis_benchmark(port, test, n, pipeline,
                                      tls_ca=certs and certs["ca.pem"])
                used = cpu_seconds([proc.pid]) - before
                results[(host, pipeline, test)].append((used / n * 1e6, rps))
                print(f"  {host:8} -P {pipeline:2} {test:10} {used / n * 1e6:6.2f} us/req "
                      f"{rps:10.0f} req/s", flush=True)


def measure_idle(host: str, count: int, results: dict) -> None:
    port = free_port()
    with server(["-m", "bench.resp_server", host, str(port)]) as proc:
        ps = psutil.Process(proc.pid)
        time.sleep(0.5)
        fds0 = ps.num_fds()
        rss0 = ps.memory_info().rss
        conns = []
        try:
            for _ in range(count):
                conns.append(socket.create_connection(("127.0.0.1", port)))
            deadline = time.monotonic() + 30
            while ps.num_fds() < fds0 + count and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            rss1 = ps.memory_info().rss
        finally:
            for c in conns:
                c.close()
        per = (rss1 - rss0) / count
        results[(host, "idle")].append(per)
        print(f"  {host:8} idle: {per:7.0f} bytes/connection", flush=True)


def table(results: dict, hosts: list[str]) -> str:
    lines = [
        "| host loop | `-P 1` ping / set / get (µs CPU/req) | GET req/s `-P 1` "
        "| `-P 16` ping / set / get (µs CPU/req) | GET req/s `-P 16` | idle conn (bytes) |",
        "|---|---|---:|---|---:|---:|",
    ]
    med = {}
    for host in hosts:
        cells = [host]
        for pipeline in PIPELINES:
            if not results[(host, pipeline, "get")]:
                cells += ["–", "–"]
                continue
            cpu = [median([c for c, _ in results[(host, pipeline, t)]]) for t in TESTS]
            for t, c in zip(TESTS, cpu, strict=True):
                med[(host, pipeline, t)] = c
            rps = median([r for _, r in results[(host, pipeline, "get")]])
            cells += [" / ".join(f"{c:.2f}" for c in cpu), f"{rps:,.0f}"]
        idle = median(results[(host, "idle")]) if results[(host, "idle")] else float("nan")
        med[(host, "idle")] = idle
        cells.append(f"{idle:,.0f}" if results[(host, "idle")] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for peer in ("asyncio", "twisted"):
        if peer not in hosts or "cluster" not in hosts:
            continue
        ratios = []
        for pipeline in PIPELINES:
            if (peer, pipeline, "get") not in med:
                continue
            r = [med[("cluster", pipeline, t)] / med[(peer, pipeline, t)] for t in TESTS]
            ratios.append(f"`-P {pipeline}` " + " / ".join(f"{x:.2f}" for x in r))
        line = f"- this reactor ÷ {peer}, CPU per request (ping / set / get): {'; '.join(ratios)}"
        if results[(peer, "idle")]:
            idle = med[("cluster", "idle")] / med[(peer, "idle")]
            line += f"; memory per idle connection: {idle:.2f}"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200_000, help="per test at -P 1")
    parser.add_argument("--requests-pipelined", type=int, default=1_000_000,
                        help="per test at -P 16")
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--hosts", default=",".join(HOSTS))
    parser.add_argument("--only-pipeline", type=int, choices=PIPELINES,
                        help="measure one pipeline depth only (for quick checks)")
    parser.add_argument("--tls", action="store_true", help="every connection speaks TLS")
    args = parser.parse_args()
    raise_fd_limit()
    certs = None
    if args.tls:
        from tests.certs import makeCertificates

        certs = makeCertificates(tempfile.mkdtemp(prefix="bench-tls-"))
        args.idle = 0
    hosts = args.hosts.split(",")
    requests = {1: args.requests, 16: args.requests_pipelined}
    if args.only_pipeline:
        requests = {args.only_pipeline: requests[args.only_pipeline]}
    results: dict = defaultdict(list)
    started = datetime.datetime.now()
    for rep in range(args.repeats):
        order = hosts[rep % len(hosts):] + hosts[:rep % len(hosts)]
        print(f"repeat {rep + 1}/{args.repeats}: {' '.join(order)}", flush=True)
        for host in order:
            measure_requests(host, requests, results, certs)
            if args.idle:
                measure_idle(host, args.idle, results)
    out = table(results, hosts)
    header = (f"Run {started:%Y-%m-%d %H:%M}, {machine()}; "
              f"{versions('twisted', 'uvloop', 'pyopenssl')}, {ssl.OPENSSL_VERSION}.\n"
              f"Medians of {args.repeats} interleaved repeats; redis-benchmark -c 50, "
              f"-n {args.requests} (-P 1) / {args.requests_pipelined} (-P 16); "
              + ("TLS (redis-benchmark --tls, RSA 2048 certificate).\n" if args.tls
                 else f"{args.idle} idle connections.\n"))
    print()
    print(header)
    print(out)
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    name = "reactor-tls.json" if args.tls else "reactor.json"
    with open(os.path.join(ROOT, "bench", "out", name), "w") as f:
        json.dump({"|".join(map(str, k)): v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
