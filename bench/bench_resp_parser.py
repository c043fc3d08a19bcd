"""The RESP parser, before and after it kept its place between reads: the hot path (whole
requests in one read) and large values arriving in pieces.

    python -m bench.bench_resp_parser [--repeats 5] [--sizes 8,16,32,64] [--old-sizes 8,16]
        [--big-repeats 3] [--old REV]

Hot path: ns per ``feed`` of one SET, of a 16-GET pipeline, and of ``Parser().feed(SET)``
(the construction too), old and new interleaved in the same run, best of ``--repeats``.
Large values: seconds to parse one ``SET k <N MiB>`` fed in 64 KiB and in 4 KiB pieces,
the new parser for ``--sizes``, the old one (quadratic) for ``--old-sizes`` only, best of
``--big-repeats``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import timeit
import types

from bench.common import ROOT
from cluster.store import resp

SET = b"*3\r\n$3\r\nSET\r\n$10\r\nkey:000001\r\n$16\r\nxxxxxxxxxxxxxxxx\r\n"
PIPELINE = b"*2\r\n$3\r\nGET\r\n$10\r\nkey:000001\r\n" * 16


def oldParser(revision: str) -> type:
    """The Parser class of ``cluster/store/resp.py`` at a git revision (before this change
    by default: it reparsed the unconsumed tail on every read)."""
    source = subprocess.run(["git", "show", f"{revision}:cluster/store/resp.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("resp_old")
    exec(compile(source, f"{revision}:cluster/store/resp.py", "exec"), module.__dict__)
    return module.Parser


def nsPer(fn, number: int, repeats: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e9


def hotPath(repeats: int, old: type) -> None:
    rows = []
    for name, cls in (("old", old), ("new", resp.Parser)):
        p = cls()
        assert p.feed(SET) == [[b"SET", b"key:000001", b"x" * 16]]
        assert p.feed(PIPELINE) == [[b"GET", b"key:000001"]] * 16
        rows.append((name, p, cls))
    best: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(repeats):  # interleaved, each a best of 5
        for name, p, cls in rows if r % 2 == 0 else rows[::-1]:
            best[name].append((nsPer(lambda p=p: p.feed(SET), 200_000, 5),
                               nsPer(lambda p=p: p.feed(PIPELINE), 20_000, 5),
                               nsPer(lambda cls=cls: cls().feed(SET), 200_000, 5)))
    print("| parser | feed(SET) ns | feed(16 x GET) ns | Parser().feed(SET) ns |")
    print("|---|---|---|---|")
    for name in ("old", "new"):
        cols = [min(run[i] for run in best[name]) for i in range(3)]
        print(f"| {name} | " + " | ".join(f"{c:.0f}" for c in cols) + " |")
    o = [min(run[i] for run in best["old"]) for i in range(3)]
    n = [min(run[i] for run in best["new"]) for i in range(3)]
    print("| new/old | " + " | ".join(f"{b / a:.3f}" for a, b in zip(o, n, strict=True)) + " |")


def bigValue(cls, size: int, piece: int, repeats: int) -> float:
    """Best of ``repeats``: the first run in a process also pays for the heap's first
    page faults."""
    value = b"v" * size
    wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (size, value)
    pieces = [wire[i:i + piece] for i in range(0, len(wire), piece)]
    del wire
    best = float("inf")
    for _ in range(repeats):
        p = cls()
        start = time.perf_counter()
        for data in pieces:
            commands = p.feed(data)
        best = min(best, time.perf_counter() - start)
        assert len(commands) == 1 and commands[0][2] == value
        del commands
    return best


def bigValues(sizes: list[int], oldSizes: list[int], repeats: int, old: type) -> None:
    print()
    print("| parser | value | 64 KiB pieces s | 4 KiB pieces s |")
    print("|---|---|---|---|")
    for name, cls, these in (("new", resp.Parser, sizes), ("old", old, oldSizes)):
        for mib in these:
            t64 = bigValue(cls, mib << 20, 64 << 10, repeats)
            t4 = bigValue(cls, mib << 20, 4 << 10, repeats)
            print(f"| {name} | {mib} MiB | {t64:.3f} | {t4:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="8,16,32,64", help="MiB, the new parser")
    parser.add_argument("--old-sizes", default="8,16", help="MiB, the old parser (slow)")
    parser.add_argument("--big-repeats", type=int, default=3, help="best of, per large value")
    parser.add_argument("--old", default="753160c", help="the revision whose parser is "
                        "\"old\" (default: the last before the linear parser)")
    args = parser.parse_args()
    old = oldParser(args.old)
    hotPath(args.repeats, old)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    oldSizes = [int(s) for s in args.old_sizes.split(",") if s]
    bigValues(sizes, oldSizes, args.big_repeats, old)


if __name__ == "__main__":
    main()
