"""Pub/sub for the store's clients, beside a real redis-server: the same subscription
replies, messages and counts, in RESP2 and RESP3; messages published on one worker
reach subscribers on every worker, in order; a subscriber that stops reading is cut off
at its bound while everyone else goes on."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from tests.conftest import worker_port
from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _messages(port: int, protocol: int) -> list:
    """A subscriber's and a publisher's view of one pub/sub session."""
    sub = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    pub = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    p = sub.pubsub()
    seen: list = []

    def drain(n: int) -> None:
        for _ in range(n):
            message = p.get_message(timeout=5)
            assert message is not None
            seen.append(message)

    p.subscribe("news", "sport")
    p.psubscribe("n*", "x[yz]")
    drain(4)
    seen.append(pub.publish("news", "hello"))  # two receivers: news and n*
    seen.append(pub.publish("xy", "pattern only"))
    seen.append(pub.publish("nobody", "n* only"))
    seen.append(pub.publish("other", "no one"))
    drain(4)
    seen.append(sorted(pub.pubsub_channels()))
    seen.append(sorted(pub.pubsub_channels("s*")))
    seen.append(pub.pubsub_numsub("news", "other"))
    seen.append(pub.pubsub_numpat())
    p.unsubscribe("sport")
    p.punsubscribe()
    drain(3)
    p.unsubscribe()
    drain(1)
    seen.append(pub.publish("news", "gone"))
    p.close()
    sub.close()
    pub.close()
    return seen


@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub_answers_as_redis(stores, oracle, protocol):
    assert _messages(stores[2].port, protocol) == _messages(oracle, protocol)


def test_subscribed_connections_are_limited_as_in_redis(stores, oracle):
    script = [["SUBSCRIBE", "a"], ["GET", "x"], ["PING"], ["PING", "hi"], ["PUBLISH", "a"],
              ["UNSUBSCRIBE", "a"], ["GET", "x"], ["UNSUBSCRIBE"], ["PUNSUBSCRIBE"],
              ["PUBSUB"], ["PUBSUB", "BOGUS"], ["PUBSUB", "NUMPAT", "x"],
              ["PUBSUB", "CHANNELS", "a", "b"], ["PUBSUB", "NUMSUB"], ["SUBSCRIBE"],
              ["SUBSCRIBE", "b"], ["RESET"], ["GET", "x"]]
    assert_same(script, replies(stores[2].port, script), replies(oracle, script))
    # RESP3: any command goes on a subscribed connection; replies and pushes, byte for byte
    resp3 = [["SUBSCRIBE", "b"], ["SET", "x", "1"], ["GET", "x"], ["PING"],
             ["UNSUBSCRIBE"], ["GET", "x"]]
    assert _raw(stores[2].port, resp3) == _raw(oracle, resp3)


def _raw(port: int, commands: list[list[str]]) -> bytes:
    """What a RESP3 connection reads back for ``commands`` (after HELLO 3's answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
    time.sleep(0.3)
    s.recv(1 << 16)
    s.sendall(b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode())
                                                     for a in c) for c in commands))
    out = b""
    s.settimeout(0.5)
    try:
        while chunk := s.recv(1 << 16):
            out += chunk
    except TimeoutError:
        pass
    s.close()
    return out


def test_messages_reach_every_worker_in_order(stores):
    c = stores[2]
    ports = [worker_port(c, 0), worker_port(c, 1)]  # a subscriber on each worker
    subs = [redis.Redis(port=p, socket_timeout=10).pubsub() for p in ports]
    for p in subs:
        p.subscribe("feed")
        assert p.get_message(timeout=5)["type"] == "subscribe"
    pub = redis.Redis(port=ports[0], socket_timeout=10)
    counts = [pub.publish("feed", str(i)) for i in range(300)]
    assert counts == [2] * 300
    with pub.pipeline(transaction=False) as pipe:
        for i in range(300, 1300):
            pipe.publish("feed", str(i))
        assert pipe.execute() == [2] * 1000
    for p in subs:
        got = [p.get_message(timeout=5)["data"] for _ in range(1300)]
        assert got == [str(i).encode() for i in range(1300)]
        p.close()
    pub.close()


def test_a_subscriber_that_stops_reading_is_cut_off_and_no_one_else_is(stores):
    c = stores[2]
    stuck = socket.create_connection(("127.0.0.1", worker_port(c, 0)))
    stuck.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nbulk\r\n")
    time.sleep(0.2)
    reader = redis.Redis(port=worker_port(c, 1), socket_timeout=10).pubsub()
    reader.subscribe("bulk")
    assert reader.get_message(timeout=5)["type"] == "subscribe"
    pub = redis.Redis(port=c.port, socket_timeout=10)
    big = b"x" * (1 << 20)
    counts = []
    for i in range(48):  # 48 MiB: past the 32 MiB bound for the one that never reads
        counts.append(pub.publish("bulk", big))
        message = reader.get_message(timeout=5)
        assert message["data"] == big, i
    assert counts[0] == 2 and counts[-1] == 1  # the stuck one was dropped on the way
    stuck.settimeout(10)  # what the kernel still holds for it, then the end
    closed = False
    try:
        while not closed:
            closed = stuck.recv(1 << 20) == b""
    except ConnectionResetError:
        closed = True
    assert closed
    stuck.close()
    reader.close()
    assert pub.publish("bulk", "after") == 0 and pub.ping()
    pub.close()


def test_a_pathological_pattern_costs_no_more_than_its_size(stores):
    c = stores[2]
    p = redis.Redis(port=c.port, socket_timeout=10).pubsub()
    p.psubscribe("*" + "?" * 5000 + "b*")
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    pub = redis.Redis(port=c.port, socket_timeout=10)
    started = time.monotonic()
    for _ in range(5):
        assert pub.publish("a" * 10000, "x") == 0
    assert time.monotonic() - started < 2
    p.close()
    pub.close()
