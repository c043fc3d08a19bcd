"""The default store against real redis-server and the single-process reactor server.

    python -m bench.bench_store [--repeats 3] [--requests 100000]

``redis-benchmark -t ping,set,get,mset -r 100000`` with ``-P 1`` and ``-P 16`` (50
clients) against: this cluster (``cluster run``, the default app) with 1 and 2 workers
in proxy mode (through the gateway's port) and in cluster mode (``redis-benchmark
--cluster`` on the workers' own ports; with one worker, plain redis-benchmark on its
port, since redis-benchmark refuses a cluster of one node),
``redis-server`` (no persistence), and the core issue's one-process RESP server on this
reactor (``bench/resp_server.py``, no sharding at all). Requests/s, and server CPU µs
per request summed over every server process (supervisor, gateway and workers for the
cluster). For the cluster, the share of commands whose key lived on another worker (a
``callShard``) is read from each worker's INFO. At ``-P 16`` each run is 30 times
``--requests`` (MSET 5 times): redis-benchmark ``--cluster`` measures its elapsed time in
steps of 250 ms, which a run of under a second turns into an error of up to a third.
"""

from __future__ import annotations

import argparse
import datetime
import socket
import subprocess
from collections import defaultdict
from contextlib import contextmanager

from bench.common import (
    cluster,
    cpu_seconds,
    free_port,
    machine,
    median,
    raise_fd_limit,
    redis_benchmark,
    server,
    wait_for_port,
)

TESTS = ("ping", "set", "get", "mset")


@contextmanager
def redis_server(*options: str):
    """redis-server on a free port (no persistence unless ``options`` say): (port, pids)."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=raise_fd_limit)
    try:
        wait_for_port(port, 10)
        yield port, [proc.pid]
    finally:
        proc.terminate()
        proc.wait()


@contextmanager
def contender(kind: str):
    """Start one server; yield the port the benchmark talks to, its pids, and the port
    whose connections reach every worker in turn (for INFO)."""
    if kind == "redis-server":
        with redis_server() as (port, pids):
            yield port, pids, port
    elif kind == "reactor":
        port = free_port()
        with server(["-m", "bench.resp_server", "cluster", str(port)]) as proc:
            yield port, [proc.pid], port
    elif kind.endswith("c"):  # cluster mode: the clients talk to the workers' own ports
        base = free_port()
        with cluster("cluster.store.server:factory", int(kind[-2]),
                     extra=["--worker-ports", str(base)]) as (port, pids):
            yield base, pids, port
    else:  # proxy mode: everything through the gateway's port
        with cluster("cluster.store.server:factory", int(kind[-1]),
                     extra=["--worker-ports", "0"]) as (port, pids):
            yield port, pids, port


def cross_shard(port: int) -> tuple[int, int]:
    """(commands, of which remote) summed over every worker, from INFO on connections
    until each worker has answered once."""
    seen: dict[str, tuple[int, int]] = {}
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"INFO\r\n")
            data = b""
            while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2 or b"expired" not in data:
                data += s.recv(65536)
        fields = dict(line.split(":", 1) for line in data.decode().split("\r\n") if ":" in line)
        seen[fields["node"]] = (int(fields["commands"]), int(fields["remote_commands"]))
        if len(seen) == int(fields["workers"]):
            break
    return sum(c for c, _ in seen.values()), sum(r for _, r in seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000, help="per test at -P 1")
    args = parser.parse_args()
    raise_fd_limit()
    started = datetime.datetime.now()
    kinds = ["redis-server", "reactor", "cluster-1", "cluster-2", "cluster-1c", "cluster-2c"]
    results: dict = defaultdict(list)
    shares: dict = defaultdict(list)
    for rep in range(args.repeats):
        for kind in kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]:
            with contender(kind) as (port, pids, infoPort):
                for pipeline in (1, 16):
                    for test in TESTS:
                        if kind == "cluster-1c" and test == "mset":
                            continue  # keys of several slots: CROSSSLOT, as Redis Cluster
                        # -P 16: long runs (redis-benchmark --cluster counts elapsed
                        # time in 250 ms steps: a run of under a second was off by up
                        # to a third); MSET, ten to fifty times slower, 5x
                        n = args.requests * (1 if pipeline == 1 else
                                             5 if test == "mset" else 30)
                        if kind.startswith("cluster"):
                            before = cross_shard(infoPort)
                        used = cpu_seconds(pids)
                        rps = redis_benchmark(port, test, n, pipeline, keyspace=100_000,
                                              cluster=kind == "cluster-2c")
                        used = cpu_seconds(pids) - used
                        if kind.startswith("cluster"):
                            after = cross_shard(infoPort)
                            total = after[0] - before[0]
                            shares[(kind, test)].append((after[1] - before[1]) / max(1, total))
                        results[(kind, pipeline, test)].append((rps, used / n * 1e6))
                        print(f"  {kind:12} -P {pipeline:2} {test:5} {rps:10.0f} req/s "
                              f"{used / n * 1e6:6.2f} us CPU/req", flush=True)

    def med(kind: str, pipeline: int, test: str, i: int) -> float:
        rows = results[(kind, pipeline, test)]
        return median([row[i] for row in rows]) if rows else float("nan")

    print(f"\nRun {started:%Y-%m-%d %H:%M}, {machine()}; medians of {args.repeats} "
          f"interleaved repeats.")
    print(f"Command: python -m bench.bench_store --repeats {args.repeats} "
          f"--requests {args.requests}\n")
    labels = {"redis-server": "redis-server", "reactor": "one reactor process (core issue)",
              "cluster-1": "proxy mode, 1 worker", "cluster-2": "proxy mode, 2 workers",
              "cluster-1c": "cluster mode (the worker's port), 1 worker",
              "cluster-2c": "cluster mode (`--cluster`), 2 workers"}
    for pipeline in (1, 16):
        print(f"`-P {pipeline}`: requests/s, then server CPU µs per request\n")
        print("| server | " + " | ".join(t.upper() for t in TESTS) + " | "
              + " | ".join(f"{t.upper()} µs" for t in TESTS) + " |")
        print("|---|" + "---:|" * (2 * len(TESTS)))
        for kind in kinds:
            cells = [f"{med(kind, pipeline, t, 0):,.0f}" for t in TESTS]
            cells += [f"{med(kind, pipeline, t, 1):.2f}" for t in TESTS]
            print(f"| {labels[kind]} | " + " | ".join(cells) + " |")
        print()
    for kind in ("cluster-1", "cluster-2", "cluster-1c", "cluster-2c"):
        share = ", ".join(f"{t.upper()} {median(shares[(kind, t)]):.0%}" for t in TESTS
                          if shares[(kind, t)])
        print(f"- {labels[kind]}: share of commands served by another worker: {share}")
    for kind, limit in (("cluster-1", 1.5), ("cluster-2", 2.0), ("cluster-2c", 1.4)):
        ratio = med(kind, 1, "get", 1) / med("redis-server", 1, "get", 1)
        print(f"- CPU per GET at `-P 1`, {labels[kind]} ÷ redis-server: {ratio:.2f} "
              f"(target ≤ {limit})")
    for mode, limit in (("", 1.15), ("c", 1.3)):
        for test in ("get", "set"):
            ratio = med(f"cluster-2{mode}", 16, test, 0) / med(f"cluster-1{mode}", 16, test, 0)
            print(f"- requests/s at `-P 16`, 2 workers ÷ 1 worker, {test.upper()}, "
                  f"{'cluster' if mode else 'proxy'} mode: {ratio:.2f} (target ≥ {limit})")


if __name__ == "__main__":
    main()
