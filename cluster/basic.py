"""Framing protocols: lines (``LineReceiver``) and length-prefixed strings
(``Int32StringReceiver``).

Both enforce ``MAX_LENGTH`` in the parser, where bad input first arrives: an over-long
line or frame is reported (default: drop the connection) and never buffered beyond the
limit. Defaults live on the classes, so subclasses that skip ``__init__`` work.
"""

from __future__ import annotations

import struct
from typing import Any

from cluster.protocol import Protocol


class _PauseableMixin:
    """Pausing the protocol pauses its transport and holds back parsed messages."""

    paused = False
    transport: Any

    def pauseProducing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        if self.transport is not None:
            self.transport.resumeProducing()
        self.dataReceived(b"")  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.stopProducing()


class LineReceiver(Protocol, _PauseableMixin):
    """Calls ``lineReceived`` once per line ending in ``delimiter``; in raw mode
    (``setRawMode``) passes bytes to ``rawDataReceived`` instead."""

    line_mode = 1
    _buffer = b""
    _busyReceiving = False
    _lines: list[bytes] | None = None  # while delivering: the chunk's lines, split by
    _splitBy = b""  # this delimiter, the index of the next one, and the partial line after
    _next = 0
    _tail = b""
    delimiter = b"\r\n"
    MAX_LENGTH = 16384

    def clearLineBuffer(self) -> bytes:
        """Drop and return whatever is buffered, delimiters included; called from
        ``lineReceived``, that is the rest of the data after the current line, and no
        further line of it is delivered (as Twisted does)."""
        b = self._rest() + self._buffer
        self._buffer = b""
        self._lines = None
        return b

    def _rest(self) -> bytes:
        """The lines after the one being delivered, and the partial line after them,
        joined by the delimiter they were split on."""
        if self._lines is None:
            return b""
        return self._splitBy.join([*self._lines[self._next:], self._tail])

    def dataReceived(self, data: bytes) -> Any:
        if self._busyReceiving:
            # called from inside lineReceived (setLineMode with extra data): queue it
            self._buffer += data
            return None
        self._busyReceiving = True
        try:
            self._buffer += data
            while self._buffer and not self.paused:
                if not self.line_mode:
                    data, self._buffer = self._buffer, b""
                    why = self.rawDataReceived(data)
                    if why:
                        return why
                    continue
                delimiter = self.delimiter
                lines = self._buffer.split(delimiter)
                rest = lines.pop()
                self._buffer = b""
                self._lines, self._splitBy, self._tail = lines, delimiter, rest
                for i, line in enumerate(lines):
                    self._next = i + 1
                    if len(line) > self.MAX_LENGTH:
                        exceeded = line + delimiter + self._rest() + self._buffer
                        self._buffer = b""
                        self._lines = None
                        return self.lineLengthExceeded(exceeded)
                    why = self.lineReceived(line)
                    if self._lines is None:  # lineReceived cleared the buffer
                        if why:
                            return why
                        break
                    transport = self.transport
                    if (
                        why
                        or (transport is not None and transport.disconnecting)
                        or self.paused
                        or not self.line_mode
                        or self.delimiter != delimiter
                    ):
                        self._buffer = self._rest() + self._buffer
                        self._lines = None
                        if why or (transport is not None and transport.disconnecting):
                            return why
                        break
                else:
                    self._lines = None
                    if self._buffer:  # more arrived while we were delivering
                        self._buffer = rest + self._buffer
                        continue
                    if len(rest) >= self.MAX_LENGTH + len(delimiter):
                        return self.lineLengthExceeded(rest)
                    self._buffer = rest
                    return None
            return None
        finally:
            self._busyReceiving = False
            self._lines = None

    def setLineMode(self, extra: bytes = b"") -> Any:
        """Back to line mode; ``extra`` is parsed as if it had just arrived."""
        self.line_mode = 1
        if extra:
            return self.dataReceived(extra)
        return None

    def setRawMode(self) -> None:
        """Deliver further bytes to ``rawDataReceived`` unsplit."""
        self.line_mode = 0

    def rawDataReceived(self, data: bytes) -> Any:
        raise NotImplementedError

    def lineReceived(self, line: bytes) -> Any:
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Any:
        """Write ``line`` followed by the delimiter."""
        return self.transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """A line (or an unterminated run of bytes) exceeded MAX_LENGTH: drop the connection."""
        return self.transport.loseConnection()


class Int32StringReceiver(Protocol, _PauseableMixin):
    """Strings framed by a 4-byte big-endian length: ``stringReceived`` / ``sendString``."""

    structFormat = "!I"
    prefixLength = 4
    MAX_LENGTH = 99999
    _unprocessed = b""
    _pending: list[bytes] | None = None  # chunks of one large frame still arriving
    _pendingLen = 0
    _needed = 0

    def stringReceived(self, string: bytes) -> None:
        raise NotImplementedError

    def lengthLimitExceeded(self, length: int) -> None:
        """A frame announced more than MAX_LENGTH bytes: drop the connection."""
        self.transport.loseConnection()

    def sendString(self, string: bytes) -> None:
        """Write ``string`` with its length prefix."""
        if len(string) >= 2 ** (8 * self.prefixLength):
            raise ValueError(f"string too long to frame: {len(string)} bytes")
        self.transport.write(struct.pack(self.structFormat, len(string)) + string)

    def dataReceived(self, data: bytes) -> None:
        if self._pending is not None:
            self._pending.append(data)
            self._pendingLen += len(data)
            if self._pendingLen < self._needed:
                return
            data = b"".join(self._pending)
            self._pending = None
        elif self._unprocessed:
            data = self._unprocessed + data
        self._unprocessed = b""
        fmt = self.structFormat
        prefix = self.prefixLength
        size = len(data)
        offset = 0
        needed = 0
        while size - offset >= prefix and not self.paused:
            (length,) = struct.unpack_from(fmt, data, offset)
            if length > self.MAX_LENGTH:
                self.lengthLimitExceeded(length)
                return
            end = offset + prefix + length
            if end > size:
                needed = end - offset
                break
            start = offset + prefix
            offset = end
            self.stringReceived(data[start:end])
        rest = data[offset:] if offset else data
        if needed > 65536:
            # a large frame arrives in pieces: collect them, join once when complete
            self._pending = [rest]
            self._pendingLen = len(rest)
            self._needed = needed
        else:
            self._unprocessed = rest
