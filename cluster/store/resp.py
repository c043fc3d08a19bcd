"""RESP2, the Redis protocol: a request parser with limits, and reply encoders.

The parser takes whatever bytes arrived and returns every complete command in them, in
order, keeping the incomplete tail for next time. Requests are arrays of bulk strings
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\na\\r\\n``) or inline commands (``GET a\\r\\n``).
Limits are enforced before anything is buffered beyond them: a bulk string longer than
``maxBulk``, an array longer than ``maxArray`` or an inline line longer than
``maxInline`` raises ProtocolError, which the server answers and then closes.
"""

from __future__ import annotations

MAX_BULK = 64 << 20  # 64 MiB per argument
MAX_ARRAY = 1 << 20  # arguments per command
MAX_INLINE = 64 << 10  # bytes per inline command line

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


class Parser:
    """Incremental request parser; ``feed(data)`` returns the complete commands."""

    def __init__(self, maxBulk: int = MAX_BULK, maxArray: int = MAX_ARRAY,
                 maxInline: int = MAX_INLINE) -> None:
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
            raise ProtocolError(f"invalid length ({e})") from None

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
                    raise ProtocolError("too big inline request")
                break
            if buf[pos] != 42:  # not '*': an inline command, words up to CRLF
                if eol - pos > maxInline:
                    raise ProtocolError("too big inline request")
                args = buf[pos:eol].split()
                pos = eol + 2
                if args:
                    commands.append(args)
                continue
            count = int(buf[pos + 1:eol])
            if count > self.maxArray:
                raise ProtocolError("invalid multibulk length")
            p = eol + 2
            args = []
            for _ in range(count):
                eol = find(b"\r\n", p)
                if eol < 0:
                    if end - p > 32:
                        raise ProtocolError("invalid bulk length")
                    break
                if buf[p] != 36:  # '$'
                    raise ProtocolError(f"expected '$', got '{chr(buf[p])}'")
                size = int(buf[p + 1:eol])
                if size < 0 or size > maxBulk:
                    raise ProtocolError("invalid bulk length")
                start = eol + 2
                stop = start + size
                if stop + 2 > end:
                    break
                if buf[stop] != 13 or buf[stop + 1] != 10:
                    raise ProtocolError("bulk string not followed by CRLF")
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
