"""The RESP parser, before and after it kept its place between reads: the hot path (whole
requests in one read) and large values arriving in pieces.

    python -m bench.bench_resp_parser [--repeats 5] [--sizes 8,16,32,64] [--old-sizes 8,16]
        [--big-repeats 3]

Hot path: ns per ``feed`` of one SET, of a 16-GET pipeline, and of ``Parser().feed(SET)``
(the construction too), old and new interleaved in the same run, best of ``--repeats``.
Large values: seconds to parse one ``SET k <N MiB>`` fed in 64 KiB and in 4 KiB pieces,
the new parser for ``--sizes``, the old one (quadratic) for ``--old-sizes`` only, best of
``--big-repeats``.
"""

from __future__ import annotations

import argparse
import time
import timeit

from cluster.store import resp

SET = b"*3\r\n$3\r\nSET\r\n$10\r\nkey:000001\r\n$16\r\nxxxxxxxxxxxxxxxx\r\n"
PIPELINE = b"*2\r\n$3\r\nGET\r\n$10\r\nkey:000001\r\n" * 16


class OldParser:
    """The parser before this change (reparses the unconsumed tail on every read), verbatim."""

    def __init__(self, maxBulk: int = resp.MAX_BULK, maxArray: int = resp.MAX_ARRAY,
                 maxInline: int = resp.MAX_INLINE) -> None:
        self.maxBulk = maxBulk
        self.maxArray = maxArray
        self.maxInline = maxInline
        self._buf = b""

    def feed(self, data: bytes) -> list[list[bytes]]:
        buf = self._buf + data if self._buf else data
        try:
            if buf[-2:] == b"\r\n" and buf[0] == 42:
                commands = self._whole(buf)
                if commands is not None:
                    self._buf = b""
                    return commands
            return self._parse(buf)
        except ValueError as e:  # int() of a length that is not a number
            raise resp.ProtocolError(f"invalid length ({e})") from None

    def _whole(self, buf: bytes) -> list[list[bytes]] | None:
        """The fast path, for a buffer of whole multibulk requests and nothing else (what
        clients send almost always): one split at every CRLF, then each argument checked
        against its declared length. None if the buffer is anything else (a value with
        CRLF inside, an inline command, a partial request): the general parser decides."""
        if len(buf) > self.maxBulk:
            return None  # the general parser enforces the limits precisely
        parts = buf.split(b"\r\n")
        end = len(parts) - 1  # parts[-1] is the b"" after the final CRLF
        # one request of two or three arguments (GET k, SET k v): by far the commonest
        if end == 5 and parts[0] == b"*2":
            a, b = parts[2], parts[4]
            if parts[1] == b"$%d" % len(a) and parts[3] == b"$%d" % len(b):
                return [[a, b]]
        elif end == 7 and parts[0] == b"*3":
            a, b, c = parts[2], parts[4], parts[6]
            if (parts[1] == b"$%d" % len(a) and parts[3] == b"$%d" % len(b)
                    and parts[5] == b"$%d" % len(c)):
                return [[a, b, c]]
        maxArray = self.maxArray
        i = 0
        commands = []
        while i < end:
            head = parts[i]
            if not head or head[0] != 42:
                return None
            count = int(head[1:])
            stop = i + 1 + 2 * count
            if count > maxArray or count < 0 or stop > end:
                return None
            args = parts[i + 2:stop:2]
            for j in range(i + 1, stop, 2):
                if parts[j] != b"$%d" % len(parts[j + 1]):
                    return None  # a value with CRLF inside, or not RESP: decide slowly
            if args:
                commands.append(args)
            i = stop
        return commands

    def _parse(self, buf: bytes) -> list[list[bytes]]:
        find = buf.find
        end = len(buf)
        maxBulk, maxInline = self.maxBulk, self.maxInline
        pos = 0
        commands = []
        while pos < end:
            eol = find(b"\r\n", pos)
            if eol < 0:
                if end - pos > maxInline:
                    raise resp.ProtocolError("too big inline request")
                break
            if buf[pos] != 42:  # not '*': an inline command, words up to CRLF
                if eol - pos > maxInline:
                    raise resp.ProtocolError("too big inline request")
                args = buf[pos:eol].split()
                pos = eol + 2
                if args:
                    commands.append(args)
                continue
            count = int(buf[pos + 1:eol])
            if count > self.maxArray:
                raise resp.ProtocolError("invalid multibulk length")
            p = eol + 2
            args = []
            for _ in range(count):
                eol = find(b"\r\n", p)
                if eol < 0:
                    if end - p > 32:
                        raise resp.ProtocolError("invalid bulk length")
                    break
                if buf[p] != 36:  # '$'
                    raise resp.ProtocolError(f"expected '$', got '{chr(buf[p])}'")
                size = int(buf[p + 1:eol])
                if size < 0 or size > maxBulk:
                    raise resp.ProtocolError("invalid bulk length")
                start = eol + 2
                stop = start + size
                if stop + 2 > end:
                    break
                if buf[stop] != 13 or buf[stop + 1] != 10:
                    raise resp.ProtocolError("bulk string not followed by CRLF")
                args.append(buf[start:stop])
                p = stop + 2
            else:
                pos = p
                if args:
                    commands.append(args)
                continue
            break  # incomplete: wait for more
        self._buf = buf[pos:] if pos < end else b""
        return commands


def nsPer(fn, number: int, repeats: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e9


def hotPath(repeats: int) -> None:
    rows = []
    for name, cls in (("old", OldParser), ("new", resp.Parser)):
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


def bigValues(sizes: list[int], oldSizes: list[int], repeats: int) -> None:
    print()
    print("| parser | value | 64 KiB pieces s | 4 KiB pieces s |")
    print("|---|---|---|---|")
    for name, cls, these in (("new", resp.Parser, sizes), ("old", OldParser, oldSizes)):
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
    args = parser.parse_args()
    hotPath(args.repeats)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    oldSizes = [int(s) for s in args.old_sizes.split(",") if s]
    bigValues(sizes, oldSizes, args.big_repeats)


if __name__ == "__main__":
    main()
