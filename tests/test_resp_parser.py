"""The RESP parser fed in pieces: every split of a request parses as the whole does, large
values come out byte-exact, the work stays linear in the bytes received, and the limits
(per argument, per command, per header line) are enforced before the bytes are buffered."""

from __future__ import annotations

import random
import re
import statistics
import time
import tracemalloc

import pytest

from cluster.store import resp

pytestmark = pytest.mark.timeout(60)


def multibulk(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


TRICKY = b"a\r\n$1\r\nb\r\n*2\r\n"  # RESP framing inside a value
CORPUS = [
    (b"GET a\r\n", [[b"GET", b"a"]]),
    (b"  SET   k  v \r\n", [[b"SET", b"k", b"v"]]),
    (b"\r\n", []),  # an empty inline line: nothing
    (b"PING\r\n", [[b"PING"]]),
    (multibulk(b"GET", b"k"), [[b"GET", b"k"]]),
    (multibulk(b"SET", b"key:000001", b"x" * 16), [[b"SET", b"key:000001", b"x" * 16]]),
    (multibulk(b"SET", b"k", TRICKY), [[b"SET", b"k", TRICKY]]),
    (multibulk(b"SET", b"k", b"\r\n"), [[b"SET", b"k", b"\r\n"]]),
    (multibulk(b"SET", b"k", b""), [[b"SET", b"k", b""]]),
    (multibulk(b"SET", b"bin", bytes(range(256))), [[b"SET", b"bin", bytes(range(256))]]),
    (b"*0\r\n", []),
    (b"*-1\r\n", []),
    (multibulk(b"MSET", *[b"%d" % i for i in range(12)]),
     [[b"MSET", *[b"%d" % i for i in range(12)]]]),
    (multibulk(b"GET", b"k") * 16, [[b"GET", b"k"]] * 16),
]
PIPELINE = b"".join(wire for wire, _ in CORPUS)
EXPECTED = [command for _, commands in CORPUS for command in commands]


def feedPieces(parser: resp.Parser, wire: bytes, size: int) -> list[list[bytes]]:
    got = []
    for i in range(0, len(wire), size):
        got += parser.feed(wire[i:i + size])
    return got


@pytest.mark.parametrize("wire, expected", CORPUS)
def test_every_split_point_parses_as_whole(wire, expected):
    assert resp.Parser().feed(wire) == expected
    for cut in range(len(wire) + 1):
        p = resp.Parser()
        assert p.feed(wire[:cut]) + p.feed(wire[cut:]) == expected, cut
    assert feedPieces(resp.Parser(), wire, 1) == expected


def test_pipeline_split_anywhere_and_in_random_pieces():
    assert resp.Parser().feed(PIPELINE) == EXPECTED
    for cut in range(len(PIPELINE) + 1):
        p = resp.Parser()
        assert p.feed(PIPELINE[:cut]) + p.feed(PIPELINE[cut:]) == EXPECTED, cut
    for size in (1, 2, 3, 7, 64):
        assert feedPieces(resp.Parser(), PIPELINE, size) == EXPECTED, size
    rng = random.Random(7)
    for _ in range(200):
        p, got, pos = resp.Parser(), [], 0
        while pos < len(PIPELINE):
            step = rng.randint(0, 40)
            got += p.feed(PIPELINE[pos:pos + step])
            pos += step
        assert got == EXPECTED
    p = resp.Parser()  # one parser, many times over: no state leaks between commands
    for _ in range(3):
        assert feedPieces(p, PIPELINE, 5) == EXPECTED


def test_whole_requests_take_the_fast_path_and_leave_no_state():
    p = resp.Parser()
    calls = []
    whole = p._whole
    p._whole = lambda buf: calls.append(len(buf)) or whole(buf)
    wire = multibulk(b"SET", b"k", b"v") + multibulk(b"GET", b"k") * 15
    assert p.feed(multibulk(b"GET", b"k")) == [[b"GET", b"k"]]
    assert p.feed(wire) == [[b"SET", b"k", b"v"]] + [[b"GET", b"k"]] * 15
    assert calls == [len(multibulk(b"GET", b"k")), len(wire)]
    assert not p._partial
    # a read that completes a request left partial: the whole requests after it, too
    for cut in (3, 6, 12, 20):  # in the "*" line, a "$" line, an argument, the value
        calls.clear()
        assert p.feed(wire[:cut]) == []
        assert p.feed(wire[cut:]) == [[b"SET", b"k", b"v"]] + [[b"GET", b"k"]] * 15
        assert calls and calls[-1] in (len(wire), len(wire) - len(multibulk(b"SET", b"k", b"v")))
        assert not p._partial


@pytest.mark.parametrize("piece", [4 << 10, 64 << 10, 65536 + 7])
def test_large_value_in_pieces_is_byte_exact(piece):
    value = bytes(random.Random(piece).getrandbits(8) for _ in range(1 << 16)) * 128  # 8 MiB
    value = value[:-5] + b"\r\n$3\r"  # CRLF and framing near the end, too
    wire = multibulk(b"SET", b"big", value) + multibulk(b"GET", b"big")
    got = feedPieces(resp.Parser(), wire, piece)
    assert len(got) == 2 and got[1] == [b"GET", b"big"]
    assert got[0][:2] == [b"SET", b"big"] and got[0][2] == value
    assert type(got[0][2]) is bytes


def bigSetWire(size: int) -> bytes:
    return multibulk(b"SET", b"k", b"v" * size)


def readSeconds(wire: bytes, piece: int) -> list[float]:
    """The time each read of ``wire``, fed in pieces, took to parse."""
    pieces = [wire[i:i + piece] for i in range(0, len(wire), piece)]
    p = resp.Parser()
    clock = time.perf_counter
    seconds = []
    for data in pieces:
        start = clock()
        commands = p.feed(data)
        seconds.append(clock() - start)
    assert len(commands) == 1
    return seconds


@pytest.mark.parametrize("piece", [4 << 10, 64 << 10])
def test_a_read_costs_the_same_however_much_is_already_buffered(piece):
    """Linear work: the reads at the end of a 16 MiB value, 15 MiB of it buffered, cost
    what the reads at its start do; reparsing or recopying the buffer on every read (the
    quadratic way) makes them about 30 times dearer. Medians within one run, so neither
    the machine's speed, nor its caches, nor the odd slow read decide."""
    seconds = readSeconds(bigSetWire(16 << 20), piece)[1:-1]  # not the header, not the end
    n = len(seconds) // 16
    early, late = statistics.median(seconds[:n]), statistics.median(seconds[-n:])
    assert late < 4 * max(early, 1e-6), (early, late)


def test_peak_memory_of_a_large_value_is_about_twice_its_size():
    size = 16 << 20
    wire = bigSetWire(size)
    pieces = [wire[i:i + (64 << 10)] for i in range(0, len(wire), 64 << 10)]
    p = resp.Parser()
    tracemalloc.start()
    try:
        for data in pieces:
            commands = p.feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert commands[0][2] == b"v" * size
    assert peak < 2 * size + (1 << 20), peak


def test_a_header_alone_does_not_make_the_parser_reserve_its_declared_length():
    p = resp.Parser()
    assert p.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$60000000\r\nabc") == []
    assert len(p._bulk) <= resp.BULK_RESERVE


def test_command_size_limit_is_enforced_at_the_crossing_header():
    p = resp.Parser(maxBulk=1000, maxCommand=1500)
    assert p.feed(b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$995\r\n") == []  # 1000 bytes: fine
    assert p.feed(b"x" * 995 + b"\r\n") == []
    with pytest.raises(resp.ProtocolError, match="too big command"):
        p.feed(b"$501\r\n")  # 1501 bytes declared: refused before any of them arrive
    p = resp.Parser(maxBulk=1000, maxCommand=1500)  # exactly at the limit: accepted
    wire = multibulk(b"MSET", b"a", b"x" * 995, b"y" * 500)
    assert feedPieces(p, wire * 2, 333) == [[b"MSET", b"a", b"x" * 995, b"y" * 500]] * 2
    with pytest.raises(resp.ProtocolError, match="too big command"):
        resp.Parser(maxCommand=10).feed(multibulk(b"SET", b"k", b"0123456789"))  # fast path


def test_default_limits():
    assert resp.MAX_COMMAND == 128 << 20 and resp.MAX_BULK == 64 << 20
    p = resp.Parser()
    head = b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$%d\r\n" % resp.MAX_BULK
    assert p.feed(head) == []
    with pytest.raises(resp.ProtocolError, match="invalid bulk length"):
        resp.Parser().feed(b"*2\r\n$3\r\nSET\r\n$%d\r\n" % (resp.MAX_BULK + 1))


def test_split_headers():
    wire = multibulk(b"SET", b"k", b"0123456789")
    p = resp.Parser()
    pieces = [b"*", b"3\r", b"\n$3", b"\r\nSET\r\n$", b"1\r\nk\r\n$1", b"0\r", b"\n0123456789\r",
              b"\n"]
    assert b"".join(pieces) == wire
    got = [p.feed(piece) for piece in pieces]
    assert got == [[]] * 7 + [[[b"SET", b"k", b"0123456789"]]]


@pytest.mark.parametrize("start, message", [
    (b"*1\r\n$", "invalid bulk length"),
    (b"*", "invalid multibulk length"),
])
def test_a_header_line_without_crlf_is_refused_after_32_bytes(start, message):
    line = start + b"1" * (resp.MAX_HEADER - 1)  # the header line: one byte of '*' or '$'
    p = resp.Parser()
    assert p.feed(line) == []  # 32 bytes: could still be a (padded) header
    with pytest.raises(resp.ProtocolError, match=message):
        p.feed(b"1")
    with pytest.raises(resp.ProtocolError, match=message):
        resp.Parser().feed(line + b"1")
    p = resp.Parser()
    with pytest.raises(resp.ProtocolError, match=message):
        for byte in line + b"1" * 100:
            p.feed(bytes([byte]))


@pytest.mark.parametrize("wire, message", [
    (b"*2\r\n$99999999999\r\n", "invalid bulk length"),
    (b"*9999999999\r\n", "invalid multibulk length"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*x\r\n", "invalid length"),
    (b"*1\r\n$x\r\n", "invalid length"),
    (b"*1\r\n+3\r\nabc\r\n", "expected '$', got '+'"),
    (b"*1\r\n$3\r\nabcXY", "bulk string not followed by CRLF"),
    (b"*1\r\n$300\r\n" + b"z" * 300 + b"XY", "bulk string not followed by CRLF"),
])
def test_errors_are_the_same_however_the_request_is_split(wire, message):
    for piece in (len(wire), 1, 2, 5):
        p = resp.Parser(maxBulk=1000, maxArray=1000)
        with pytest.raises(resp.ProtocolError, match=re.escape(message)):
            feedPieces(p, wire, piece)


def test_inline_limit_in_pieces():
    p = resp.Parser(maxInline=100)
    for _ in range(100):
        assert p.feed(b"x") == []
    with pytest.raises(resp.ProtocolError, match="too big inline request"):
        p.feed(b"x")
    p = resp.Parser(maxInline=100)  # a long inline line fed byte by byte, then ended
    assert feedPieces(p, b"SET k " + b"v" * 90 + b"\r\n", 1) == [[b"SET", b"k", b"v" * 90]]


def test_the_fast_path_agrees_with_the_general_parser():
    """Random pipelines of two-, three- and n-argument requests (binary values, values
    holding RESP framing, lengths around the header table's 1024) parse the same whole
    (the fast path) as through the general parser."""
    # a value that hides a whole request: only its own length header tells them apart
    hidden = b"k\r\n*1\r\n$4\r\nPING"
    for args in ([b"GET", hidden], [b"SET", b"k", hidden], [b"SET", hidden, b"v"]):
        assert resp.Parser().feed(multibulk(*args) * 2) == [args] * 2
    rng = random.Random(11)
    pieces = [b"", b"\r\n", b"$3\r\n", b"*2\r\n", TRICKY, b"x", hidden]
    for _ in range(300):
        commands = []
        for _ in range(rng.randint(1, 20)):
            args = []
            for _ in range(rng.choice((2, 2, 3, 3, 1, 4, 5))):
                if rng.random() < 0.2:
                    args.append(rng.choice(pieces) * rng.randint(1, 3))
                else:
                    size = rng.choice((0, 1, 5, 16, 1023, 1024, 1025, 1100))
                    args.append(bytes(rng.randrange(256) for _ in range(size)))
            commands.append(args)
        wire = b"".join(multibulk(*args) for args in commands)
        assert resp.Parser().feed(wire) == commands
        assert resp.Parser()._parse(wire, 0, []) == commands
