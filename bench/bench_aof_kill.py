"""kill -9 of a worker under a write load, with an append-only file: how many of the
acknowledged writes are there after it restarts.

    python -m bench.bench_aof_kill [--seconds 3] [--writers 4]

Two workers, ``--appendonly`` with ``always`` then ``everysec``; writer threads (redis-py)
SET distinct keys as fast as they can, each remembering what was acknowledged and when;
worker-1 is killed with SIGKILL mid-load and restarted by the supervisor; then every
acknowledged key is read back. Reported: writes acknowledged, lost, and (everysec) how
long before the kill the last lost one was acknowledged.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import threading
import time

import redis

from bench.common import machine
from cluster.harness import RunningCluster


def writer(port: int, prefix: str, acked: dict, stop: threading.Event) -> None:
    r = redis.Redis(port=port, socket_timeout=5)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            if r.set(f"{prefix}{n}", n):
                acked[f"{prefix}{n}"] = time.monotonic()
        except redis.RedisError:
            time.sleep(0.01)  # (the killed worker's keys: CLUSTERDOWN until it is back)
    r.close()


def run(fsync: str, seconds: float, writers: int) -> tuple[int, int, float | None]:
    with tempfile.TemporaryDirectory() as d, RunningCluster(
            None, 2, appendonly=d, appendfsync=fsync, heartbeat_timeout=2) as c:
        c.wait_ready()
        acked: dict[str, float] = {}
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(c.port, f"w{i}:", acked, stop))
                   for i in range(writers)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        killedAt = time.monotonic()
        pid = c.kill("worker-1")
        c.wait_until(lambda st: any(p["node"] == "worker-1" and p["pid"] not in (None, pid)
                                    and p["state"] == "running" for p in st["processes"]))
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
        r = redis.Redis(port=c.port, socket_timeout=10)
        keys = sorted(acked)
        lost = [k for k, v in zip(keys, r.mget(keys), strict=True) if v is None]
        r.close()
        late = max((killedAt - acked[k] for k in lost), default=None)
        return len(acked), len(lost), late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    started = datetime.datetime.now()
    rows = [(fsync, *run(fsync, args.seconds, args.writers)) for fsync in ("always",
                                                                            "everysec")]
    print(f"Run {started:%Y-%m-%d %H:%M}, {machine()}")
    print(f"Command: python -m bench.bench_aof_kill --seconds {args.seconds} "
          f"--writers {args.writers}\n")
    print("| appendfsync | writes acknowledged | lost after kill -9 | lost, acknowledged "
          "at most this long before the kill |")
    print("|---|---:|---:|---:|")
    for fsync, acked, lost, late in rows:
        print(f"| {fsync} | {acked:,} | {lost} | "
              f"{'-' if late is None else f'{late:.3f} s'} |")


if __name__ == "__main__":
    main()
