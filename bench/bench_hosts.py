"""Between hosts: ``cluster.rpc`` across two network namespaces with CurveZMQ, beside raw
pyzmq over tcp:// (with and without Curve) and beside two processes of one host (ipc://);
and the default store's GET for keys the other host owns. Needs root (``ip netns``).

    python -m bench.bench_hosts [--repeats 3] [--calls 20000] [--requests 100000]

1. RPC (``bench/rpc_peer.py``, the caller in namespace a, the callee in b, over a veth):
   one call at a time (round trip p50/p99, CPU µs per call of both processes) and 100
   calls in flight (calls/s, CPU µs per call). Raw pyzmq sends one message per call and
   has no ZAP handler; ``cluster.rpc`` batches the calls of one reactor iteration and
   checks each connecting key (once, at the handshake).
2. The store: two hosts of one worker each (CurveZMQ), redis-benchmark in namespace a
   against a's gateway, ``GET {tag}:<random>`` with a tag host b owns and with one host a
   owns, at ``-P 1``; beside redis-server in namespace a. CPU µs per request summed over
   every process of both hosts.

Repeats are interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

from bench.bench_rpc import run_once
from bench.common import ROOT, cpu_seconds, machine, median, versions
from cluster import curve, netns
from cluster.harness import RunningCluster
from cluster.hosts import HostMap
from cluster.shards import ownerOf

RPC_KINDS = [  # (label, implementation, where, Curve)
    ("raw pyzmq, tcp:// between namespaces", "raw", "tcp", False),
    ("raw pyzmq, tcp:// + Curve between namespaces", "raw", "tcp", True),
    ("`cluster.rpc`, tcp:// between namespaces", "ours", "tcp", False),
    ("`cluster.rpc`, tcp:// + Curve between namespaces (hosts)", "ours", "tcp", True),
    ("`cluster.rpc`, ipc:// within one host", "ours", "ipc", False),
]


def rpc_once(spaces: dict, keys: str, impl: str, where: str, secure: bool, mode: str,
             calls: int) -> dict:
    if where == "ipc":
        return run_once(impl, mode, calls)
    a, b = spaces["a"], spaces["b"]
    return run_once(impl, mode, calls, [b.address, *([keys] if secure else [])], b.prefix,
                    a.prefix)


def tag_of(host: str) -> str:
    """A hash tag whose slot host ``host`` owns (two hosts of one worker each)."""
    names = HostMap([("a", 1), ("b", 1)], "a").names
    return next(f"t{i}" for i in range(100) if names[ownerOf(f"t{i}", 2)] == f"{host}/worker-0")


def get_benchmark(space, host: str, port: int, tag: str, requests: int) -> float:
    out = subprocess.run([*space.prefix, "redis-benchmark", "-h", host, "-p",
                          str(port), "-n", str(requests), "-c", "50", "-P", "1", "-r",
                          "100000", "--csv", "GET", f"{{{tag}}}:__rand_int__"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [ln for ln in out.splitlines() if ln.startswith('"') and not ln.startswith('"test"')]
    return float(rows[-1].split(",")[1].strip('"'))


@contextmanager
def two_hosts(spaces: dict, keys: str, directory: str):
    """Hosts a and b of one worker each; yields ({name: RunningCluster}, every pid).
    (redis-server, by contrast, listens on the namespace's 127.0.0.1: off loopback its
    protected mode refuses clients.)"""
    lines = ["workers = 1", f'curve-keys = "{keys}"']
    for name, ns in spaces.items():
        lines += ["[[hosts]]", f'name = "{name}"', f'rpc = "{ns.address}:7000"']
    path = f"{directory}/cluster.toml"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    hosts = {}
    try:
        for name, ns in spaces.items():
            hosts[name] = RunningCluster(None, None, prefix=ns.prefix, cwd=ROOT, config=path,
                                         host=name, bind=f"{ns.address}:6380",
                                         log_level="WARNING")
        for h in hosts.values():
            h.wait_until(lambda st: all(o["state"] == "up" and len(o["processes"]) == 3
                                        for o in st["hosts"])
                         and len(st["processes"]) == 3
                         and all(p["state"] == "running" for p in st["processes"]), 60)
        pids = [p["pid"] for h in hosts.values() for p in h.status()["processes"]]
        yield hosts, pids
    finally:
        for h in hosts.values():
            h.close()


@contextmanager
def redis_in(space):
    proc = subprocess.Popen([*space.prefix, "redis-server", "--port", "6390", "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            ping = [*space.prefix, "redis-cli", "-p", "6390", "ping"]
            if subprocess.run(ping, capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    started = datetime.datetime.now()
    rpc: dict = defaultdict(list)
    store: dict = defaultdict(list)
    with netns.pair() as spaces, tempfile.TemporaryDirectory() as directory:
        keys = f"{directory}/keys"
        for name in spaces:
            curve.generate(keys, name)
        for rep in range(args.repeats):
            kinds = RPC_KINDS[rep % 2:] + RPC_KINDS[:rep % 2]
            for mode in ("latency", "pipelined"):
                for label, impl, where, secure in kinds:
                    calls = args.calls if mode == "latency" else args.calls * 5
                    r = rpc_once(spaces, keys, impl, where, secure, mode, calls)
                    row = {"rate": r["calls"] / r["seconds"],
                           "cpu": (r["cpu"] + r["server_cpu"]) / r["calls"] * 1e6,
                           "p50": r["p50"], "p99": r["p99"]}
                    rpc[(label, mode)].append(row)
                    print(f"  {mode:9} {label:58} {row['rate']:9.0f} calls/s "
                          f"{row['cpu']:6.1f} us CPU p50 {row['p50']:6.1f} us", flush=True)
            with redis_in(spaces["a"]) as pid:
                for tag in (tag_of("a"), tag_of("b")):
                    used = cpu_seconds([pid])
                    rps = get_benchmark(spaces["a"], "127.0.0.1", 6390, tag, args.requests)
                    store[("redis-server", "")].append(
                        (rps, (cpu_seconds([pid]) - used) / args.requests * 1e6))
            with two_hosts(spaces, keys, directory) as (hosts, pids):
                for owner in ("a", "b"):
                    used = cpu_seconds(pids)
                    rps = get_benchmark(spaces["a"], spaces["a"].address, 6380, tag_of(owner),
                                        args.requests)
                    cpu = (cpu_seconds(pids) - used) / args.requests * 1e6
                    store[("store", owner)].append((rps, cpu))
                    print(f"  store GET, keys on host {owner}: {rps:9.0f} req/s "
                          f"{cpu:6.1f} us CPU/req", flush=True)

    def med(key: tuple, field: str) -> float:
        return median([row[field] for row in rpc[key]])

    print(f"\nRun {started:%Y-%m-%d %H:%M}, {machine()}; {versions('pyzmq', 'msgpack')}; "
          f"medians of {args.repeats} interleaved repeats.")
    print(f"Command: python -m bench.bench_hosts --repeats {args.repeats} --calls "
          f"{args.calls} --requests {args.requests}\n")
    print("| RPC | round trip p50 µs | p99 µs | CPU µs/call | 100 in flight: calls/s "
          "| CPU µs/call |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, *_ in RPC_KINDS:
        print(f"| {label} | {med((label, 'latency'), 'p50'):.1f} | "
              f"{med((label, 'latency'), 'p99'):.1f} | {med((label, 'latency'), 'cpu'):.1f} | "
              f"{med((label, 'pipelined'), 'rate'):,.0f} | "
              f"{med((label, 'pipelined'), 'cpu'):.1f} |")
    raw, ours = RPC_KINDS[1][0], RPC_KINDS[3][0]
    p50 = med((ours, "latency"), "p50") / med((raw, "latency"), "p50")
    rate = med((ours, "pipelined"), "rate") / med((raw, "pipelined"), "rate")
    print(f"\n- across hosts with Curve, ours ÷ raw pyzmq with Curve: p50 {p50:.2f} "
          f"(target ≤ 1.3); 100 in flight, calls/s {rate:.2f} (target ≥ 1.5)")
    for name, plain, secure in (("raw pyzmq", 0, 1), ("cluster.rpc", 2, 3)):
        p, s = RPC_KINDS[plain][0], RPC_KINDS[secure][0]
        print(f"- Curve's extra CPU per call, {name}: one at a time "
              f"{med((s, 'latency'), 'cpu') - med((p, 'latency'), 'cpu'):+.1f} µs, "
              f"100 in flight {med((s, 'pipelined'), 'cpu') - med((p, 'pipelined'), 'cpu'):+.1f}"
              f" µs")
    print("\nThe store's GET at `-P 1` from namespace a (50 clients): requests/s, CPU µs per "
          "request (every process of both hosts; redis-server: its own)\n")
    print("| server | req/s | CPU µs/req |")
    print("|---|---:|---:|")
    for key, label in ((("redis-server", ""), "redis-server (in a, on its 127.0.0.1)"),
                       (("store", "a"), "store, two hosts: keys on host a (local)"),
                       (("store", "b"), "store, two hosts: keys on host b (the other host)")):
        rows = store[key]
        print(f"| {label} | {median([r[0] for r in rows]):,.0f} | "
              f"{median([r[1] for r in rows]):.2f} |")


if __name__ == "__main__":
    main()
