"""RESP2, the Redis protocol: a request parser with limits, and reply encoders.

The parser takes whatever bytes arrived and returns every complete command in them, in
order, keeping the incomplete tail for next time. Requests are arrays of bulk strings
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\na\\r\\n``) or inline commands (``GET a\\r\\n``).
Limits are enforced before anything is buffered beyond them: a bulk string longer than
``maxBulk``, a command whose arguments sum past ``maxCommand``, an array longer than
``maxArray``, an inline line longer than ``maxInline`` or a ``*``/``$`` line longer than
``MAX_HEADER`` raises ProtocolError, which the server answers and then closes.
The work is linear in the bytes received, whatever the read sizes: the parser keeps its
place between reads (the command in progress, the bulk string being filled) instead of
parsing the unconsumed bytes again, so no byte is copied or scanned more than a few times.
"""

from __future__ import annotations

MAX_BULK = 64 << 20  # 64 MiB per argument
MAX_COMMAND = 128 << 20  # bytes of arguments per command, summed
MAX_ARRAY = 1 << 20  # arguments per command
MAX_INLINE = 64 << 10  # bytes per inline command line
MAX_HEADER = 32  # bytes of a "*N" or "$N" line still waiting for its CRLF
BULK_RESERVE = 64 << 10  # a bulk string in progress gets this much room at first

_DOLLARS = 1024
_DOLLAR = tuple(b"$%d" % n for n in range(_DOLLARS))  # the header of an argument of n bytes

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NIL = b"$-1\r\n"
NIL_ARRAY = b"*-1\r\n"
EMPTY_ARRAY = b"*0\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"


class ProtocolError(Exception):
    """The client sent something that is not RESP, or is over a limit."""


def bulk(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    return b"$%d\r\n%s\r\n" % (len(value), value)


def integer(n: int) -> bytes:
    return b":%d\r\n" % n


def error(message: str) -> bytes:
    return b"-" + message.encode() + b"\r\n"


def simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def array(items: list[bytes]) -> bytes:
    """An array of already-encoded replies."""
    return b"*%d\r\n" % len(items) + b"".join(items)


NULL3 = b"_\r\n"  # RESP3's null, for clients that said HELLO 3


def bulks(values: list[bytes | None], nil: bytes = NIL) -> bytes:
    return array([nil if v is None else bulk(v) for v in values])


def _room(size: int, need: int, want: int) -> int:
    """The room to give a bulk string in progress that needs ``need`` bytes now and
    ``want`` in all: at least ``size`` (double the last, so growing it copies each byte
    once on average), never more than ``want``, and ``want`` at once when that is close,
    since growing a bytearray by under 1/8 over-allocates by 1/8 (CPython's rule)."""
    room = max(size, need)
    return want if 9 * room >= 8 * want else room


class Parser:
    """Incremental request parser; ``feed(data)`` returns the complete commands.

    It keeps its place between reads, so each byte received is scanned and copied a bounded
    number of times however the request is split: the command in progress (its arguments so
    far, how many are still to come, the bytes they declared), the bulk string being filled
    (a bytearray grown by doubling as its bytes arrive, up to its declared size, so that a
    header alone reserves little; turned into bytes once, so a value of N bytes peaks at 2N),
    or an incomplete ``*N``/``$N``/inline line (short, and bounded)."""

    # The state between reads, its starting values on the class so that a connection's
    # parser costs no more to make than before; each is set on the instance once it changes.
    _partial = False  # any of the state below: the next read carries on from it (set in
    # __init__ too: the hot path reads it, and an instance's own attribute reads fastest)
    _args: list[bytes] | None = None  # the arguments of the command in progress
    _left = 0  # its arguments still to come
    _total = 0  # the bytes its arguments declared so far
    _bulk: bytearray | None = None  # the bulk string in progress, and its CRLF
    _fill = 0  # bytes of it received
    _want = 0  # its declared length + 2
    _line: bytes | bytearray = b""  # an incomplete line

    def __init__(self, maxBulk: int = MAX_BULK, maxArray: int = MAX_ARRAY,
                 maxInline: int = MAX_INLINE, maxCommand: int = MAX_COMMAND) -> None:
        self.maxBulk = maxBulk
        self.maxArray = maxArray
        self.maxInline = maxInline
        self.maxCommand = maxCommand
        # larger buffers take the general path, which enforces the limits precisely
        self._wholeMax = maxBulk if maxBulk < maxCommand else maxCommand
        self._partial = False

    @property
    def midRequest(self) -> bool:
        """Part of a request has arrived and the rest has not."""
        return self._partial

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Every command completed by ``data``, in order; what is left is kept as state."""
        try:
            if not self._partial:
                if data[-2:] == b"\r\n" and data[0] == 42:
                    commands = self._whole(data)
                    if commands is not None:
                        return commands
                return self._parse(data, 0, [])
            return self._resume(data)
        except ValueError as e:  # int() of a length that is not a number
            raise ProtocolError(f"invalid length ({e})") from None

    def _whole(self, buf: bytes) -> list[list[bytes]] | None:
        """The fast path, for a buffer of whole multibulk requests and nothing else (what
        clients send almost always): one split at every CRLF, then each argument checked
        against its declared length. None if the buffer is anything else (a value with
        CRLF inside, an inline command, a partial request): the general parser decides."""
        if len(buf) > self._wholeMax:
            return None  # the general parser enforces the limits precisely
        parts = buf.split(b"\r\n")
        end = len(parts) - 1  # parts[-1] is the b"" after the final CRLF
        # one request of two or three arguments (GET k, SET k v): by far the commonest
        maxArray = self.maxArray
        i = 0
        commands = []
        dollar = _DOLLAR
        while i < end:
            head = parts[i]
            # pipelined requests of two or three arguments, without the general loop
            if head == b"*2" and i + 5 <= end:
                a, b = parts[i + 2], parts[i + 4]
                na, nb = len(a), len(b)
                if (parts[i + 1] != (dollar[na] if na < _DOLLARS else b"$%d" % na)
                        or parts[i + 3] != (dollar[nb] if nb < _DOLLARS else b"$%d" % nb)):
                    return None
                commands.append([a, b])
                i += 5
                continue
            if head == b"*3" and i + 7 <= end:
                a, b, c = parts[i + 2], parts[i + 4], parts[i + 6]
                na, nb, nc = len(a), len(b), len(c)
                if (parts[i + 1] != (dollar[na] if na < _DOLLARS else b"$%d" % na)
                        or parts[i + 3] != (dollar[nb] if nb < _DOLLARS else b"$%d" % nb)
                        or parts[i + 5] != (dollar[nc] if nc < _DOLLARS else b"$%d" % nc)):
                    return None
                commands.append([a, b, c])
                i += 7
                continue
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

    def _resume(self, data: bytes) -> list[list[bytes]]:
        """Carry on where the last read stopped: fill the bulk string in progress, or wait
        for the end of the incomplete line; then parse the rest of ``data``."""
        commands: list[list[bytes]] = []
        pos = 0
        bulk = self._bulk
        if bulk is not None:
            fill, want = self._fill, self._want
            take = min(want - fill, len(data))
            if fill + take > len(bulk):
                bulk += bytes(_room(2 * len(bulk), fill + take, want) - len(bulk))  # calloc'd
            bulk[fill:fill + take] = data if take == len(data) else memoryview(data)[:take]
            fill += take
            if fill < want:
                self._fill = fill
                return commands
            self._bulk = None
            if bulk[-2:] != b"\r\n":
                raise ProtocolError("bulk string not followed by CRLF")
            del bulk[-2:]  # shrinks in place: no copy
            args = self._args
            assert args is not None
            args.append(bytes(bulk))  # the one copy; then the bytearray goes
            del bulk
            self._left -= 1
            if not self._left:
                commands.append(args)
                self._args = None
            pos = take
        elif self._line:
            line = self._line
            if data.find(b"\r\n") < 0 and not (line[-1] == 13 and data[:1] == b"\n"):
                self._checkLine(len(line) + len(data), line[0], self._args is not None)
                line += data  # in place: a non-empty line is this parser's own bytearray
                return commands
            data = bytes(line) + data  # the line (bounded) is scanned once more, whole
            self._line = b""
        return self._parse(data, pos, commands, True)

    def _checkLine(self, size: int, first: int, inCommand: bool) -> None:
        """Refuse an incomplete line of ``size`` bytes, ``first`` its first, that is already
        too long to be one (checked before it is buffered)."""
        if inCommand:  # a "$N" line
            if size > MAX_HEADER:
                raise ProtocolError("invalid bulk length")
        elif first == 42:  # a "*N" line
            if size > MAX_HEADER:
                raise ProtocolError("invalid multibulk length")
        elif size > self.maxInline:
            raise ProtocolError("too big inline request")

    def _parse(self, buf: bytes, pos: int, commands: list[list[bytes]],
               resumed: bool = False) -> list[list[bytes]]:
        """The general parser: ``buf[pos:]`` in the state the last read left, the commands
        it completes appended to ``commands``; what is left becomes the state. ``resumed``:
        a request was left partial by an earlier read, and once it is complete, the rest goes
        through ``feed`` again if it may be whole requests, for the fast path to take it."""
        find = buf.find
        end = len(buf)
        maxBulk, maxCommand = self.maxBulk, self.maxCommand
        args, left, total = self._args, self._left, self._total
        while pos < end:
            if resumed and args is None:  # the partial request is done: whole ones next?
                resumed = False
                if buf[-2:] == b"\r\n" and buf[pos] == 42:
                    self._args, self._partial = None, False
                    return commands + self.feed(buf[pos:] if pos else buf)
            eol = find(b"\r\n", pos)
            if eol < 0:  # an incomplete line: keep it for the next read
                self._checkLine(end - pos, buf[pos], args is not None)
                self._line = bytearray(memoryview(buf)[pos:])
                break
            if args is None:  # a command starts
                if buf[pos] != 42:  # not '*': an inline command, words up to CRLF
                    if eol - pos > self.maxInline:
                        raise ProtocolError("too big inline request")
                    words = buf[pos:eol].split()
                    pos = eol + 2
                    if words:
                        commands.append(words)
                    continue
                count = int(buf[pos + 1:eol])
                if count > self.maxArray:
                    raise ProtocolError("invalid multibulk length")
                pos = eol + 2
                if count > 0:  # *0 and *-1 are skipped
                    args, left, total = [], count, 0
                continue
            if buf[pos] != 36:  # '$'
                raise ProtocolError(f"expected '$', got '{chr(buf[pos])}'")
            size = int(buf[pos + 1:eol])
            if size < 0 or size > maxBulk:
                raise ProtocolError("invalid bulk length")
            total += size
            if total > maxCommand:
                raise ProtocolError(f"too big command (arguments over {maxCommand} bytes)")
            start = eol + 2
            stop = start + size
            if stop + 2 > end:  # the value goes on in later reads: start filling it
                have = end - start
                want = size + 2
                bulk = bytearray(_room(BULK_RESERVE, 2 * have, want))
                bulk[:have] = memoryview(buf)[start:]
                self._bulk, self._fill, self._want = bulk, have, want
                pos = end
                break
            if buf[stop] != 13 or buf[stop + 1] != 10:
                raise ProtocolError("bulk string not followed by CRLF")
            args.append(buf[start:stop])
            pos = stop + 2
            left -= 1
            if not left:
                commands.append(args)
                args = None
        self._args, self._left, self._total = args, left, total
        self._partial = args is not None or pos < end
        return commands
