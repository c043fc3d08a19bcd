"""LineReceiver and Int32StringReceiver, driven through a StringTransport."""

from __future__ import annotations

import struct

from cluster.basic import Int32StringReceiver, LineReceiver
from cluster.protocol import Protocol
from cluster.testing import StringTransport


class Lines(LineReceiver):
    # never calls the base __init__, like Twisted's own examples
    def __init__(self):
        self.lines = []
        self.raw = []
        self.exceeded = []

    def lineReceived(self, line):
        self.lines.append(line)
        if line == b"RAW":
            self.setRawMode()

    def rawDataReceived(self, data):
        self.raw.append(data)
        if b"LINES" in data:
            before, _, after = data.partition(b"LINES")
            self.raw[-1] = before
            self.setLineMode(after)


def connect(proto: Protocol) -> StringTransport:
    t = StringTransport()
    proto.makeConnection(t)
    return t


def test_lines_split_across_and_within_chunks():
    p = Lines()
    connect(p)
    for chunk in [b"hel", b"lo\r\nwor", b"ld\r\n\r\na\r", b"\nb\r\n"]:
        p.dataReceived(chunk)
    assert p.lines == [b"hello", b"world", b"", b"a", b"b"]


def test_send_line_appends_delimiter():
    p = Lines()
    t = connect(p)
    p.sendLine(b"hi")
    assert t.value() == b"hi\r\n"


def test_custom_delimiter():
    class Newlines(Lines):
        delimiter = b"\n"

    p = Newlines()
    connect(p)
    p.dataReceived(b"a\nb\nc")
    assert p.lines == [b"a", b"b"]


def test_raw_mode_and_back():
    p = Lines()
    connect(p)
    p.dataReceived(b"one\r\nRAW\r\nraw bytes\r\nstill rawLINEStwo\r\nthree\r\n")
    assert p.lines == [b"one", b"RAW", b"two", b"three"]
    assert b"".join(p.raw) == b"raw bytes\r\nstill raw"


def test_line_too_long_calls_line_length_exceeded_and_drops_connection():
    p = Lines()
    p.MAX_LENGTH = 10
    t = connect(p)
    p.dataReceived(b"short\r\n" + b"x" * 11 + b"\r\nnext\r\n")
    assert p.lines == [b"short"]
    assert t.disconnecting


def test_unterminated_line_is_not_buffered_beyond_max_length():
    p = Lines()
    p.MAX_LENGTH = 100
    t = connect(p)
    for _ in range(50):
        p.dataReceived(b"y" * 7)  # 350 bytes, never a delimiter
        assert len(p._buffer) <= p.MAX_LENGTH + len(p.delimiter)
        if t.disconnecting:
            break
    assert t.disconnecting
    assert p.lines == []


def test_custom_line_length_exceeded():
    class Lenient(Lines):
        MAX_LENGTH = 5

        def lineLengthExceeded(self, line):
            self.exceeded.append(line)

    p = Lenient()
    t = connect(p)
    p.dataReceived(b"0123456789\r\nok\r\n")
    # as Twisted documents: the over-long line, then the rest of the buffer
    assert p.exceeded == [b"0123456789\r\nok\r\n"]
    assert not t.disconnecting


def test_clear_line_buffer_from_line_received_returns_the_rest_and_stops_delivery():
    class Clearing(Lines):
        def lineReceived(self, line):
            self.lines.append(line)
            self.rest = self.clearLineBuffer()

    p = Clearing()
    connect(p)
    p.dataReceived(b"foo\r\nbar\r\nbaz")
    assert p.lines == [b"foo"]  # bar is never delivered: it was handed back
    assert p.rest == b"bar\r\nbaz"
    p.dataReceived(b"quux\r\n")  # the cleared bytes are really gone
    assert p.lines == [b"foo", b"quux"] and p.rest == b""


def test_delimiter_changed_mid_chunk_splits_the_rest_by_the_new_one():
    class Switching(Lines):
        delimiter = b"\n"

        def lineReceived(self, line):
            self.lines.append(line)
            self.delimiter = b"\r\n"

    p = Switching()
    connect(p)
    p.dataReceived(b"a\nb\nc\r\n")
    assert p.lines == [b"a", b"b\nc"]  # the rest is rejoined with the old delimiter


def test_clear_line_buffer_after_a_failed_line_received_returns_only_new_data():
    class Failing(Lines):
        def lineReceived(self, line):
            if line == b"boom":
                raise ValueError(line)
            self.lines.append(line)

    p = Failing()
    connect(p)
    try:
        p.dataReceived(b"boom\r\nstale\r\n")
    except ValueError:
        pass
    assert p.clearLineBuffer() == b""  # the failed chunk's lines are not kept around


def test_line_received_stops_after_lose_connection():
    class Quitter(Lines):
        def lineReceived(self, line):
            self.lines.append(line)
            if line == b"QUIT":
                self.transport.loseConnection()

    p = Quitter()
    connect(p)
    p.dataReceived(b"a\r\nQUIT\r\nb\r\n")
    assert p.lines == [b"a", b"QUIT"]


def test_pause_producing_holds_back_lines():
    p = Lines()
    t = connect(p)
    p.pauseProducing()
    assert t.producerState == "paused"
    p.dataReceived(b"a\r\nb\r\n")
    assert p.lines == []
    p.resumeProducing()
    assert p.lines == [b"a", b"b"]


class Strings(Int32StringReceiver):
    def __init__(self):
        self.strings = []

    def stringReceived(self, string):
        self.strings.append(string)


def frame(s: bytes) -> bytes:
    return struct.pack("!I", len(s)) + s


def test_int32_strings_round_trip_in_any_chunking():
    p = Strings()
    connect(p)
    data = frame(b"hello") + frame(b"") + frame(b"x" * 1000)
    for i in range(0, len(data), 3):
        p.dataReceived(data[i:i + 3])
    assert p.strings == [b"hello", b"", b"x" * 1000]


def test_int32_send_string():
    p = Strings()
    t = connect(p)
    p.sendString(b"abc")
    assert t.value() == b"\x00\x00\x00\x03abc"


def test_int32_large_frame_in_many_pieces():
    p = Strings()
    p.MAX_LENGTH = 10_000_000
    connect(p)
    payload = bytes(range(256)) * 8192  # 2 MiB
    data = frame(payload) + frame(b"tail")
    for i in range(0, len(data), 65536):
        p.dataReceived(data[i:i + 65536])
    assert p.strings == [payload, b"tail"]


def test_int32_frame_over_limit_drops_connection_without_buffering():
    class Limited(Strings):
        MAX_LENGTH = 100

    p = Limited()
    t = connect(p)
    p.dataReceived(frame(b"ok") + struct.pack("!I", 101) + b"z" * 50)
    assert p.strings == [b"ok"]
    assert t.disconnecting
    assert len(p._unprocessed) == 0 and p._pending is None


def test_int32_custom_length_limit_exceeded():
    class Custom(Strings):
        MAX_LENGTH = 4

        def lengthLimitExceeded(self, length):
            self.strings.append(("too long", length))

    p = Custom()
    connect(p)
    p.dataReceived(struct.pack("!I", 1 << 30))
    assert p.strings == [("too long", 1 << 30)]
