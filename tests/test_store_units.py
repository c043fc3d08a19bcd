"""The store's parts without processes: the RESP parser and its limits, the keyspace's
expiry, and the commands on one keyspace."""

from __future__ import annotations

import re

import pytest

from cluster.store import commands, resp
from cluster.store.keyspace import Keyspace


def test_parser_splits_pipelines_and_keeps_partial_tails():
    p = resp.Parser()
    wire = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2\r\n\r\n\r\nPING\r\n"
    got = []
    for i in range(len(wire)):  # one byte at a time: every split point
        got += p.feed(wire[i:i + 1])
    assert got == [[b"GET", b"a"], [b"SET", b"b", b"\r\n"], [b"PING"]]
    assert p.feed(wire) == got


def test_values_are_binary_safe():
    value = bytes(range(256)) * 3
    p = resp.Parser()
    assert p.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(value), value)) == [
        [b"SET", b"k", value]]


@pytest.mark.parametrize("wire, message", [
    (b"*2\r\n$99999999999\r\n", "invalid bulk length"),
    (b"*9999999999\r\n", "invalid multibulk length"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*x\r\n", "invalid length"),
    (b"*1\r\n+3\r\nabc\r\n", "expected '$'"),
    (b"*1\r\n$3\r\nabcXY", "not followed by CRLF"),
])
def test_parser_rejects_bad_and_oversized_requests(wire, message):
    with pytest.raises(resp.ProtocolError, match=re.escape(message)):
        resp.Parser(maxBulk=1000, maxArray=1000).feed(wire)


def test_inline_line_limit_is_enforced_before_buffering_more():
    p = resp.Parser(maxInline=100)
    p.feed(b"x" * 100)
    with pytest.raises(resp.ProtocolError):
        p.feed(b"x" * 10)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_expiry_is_lazy_and_swept():
    clock = FakeClock()
    ks = Keyspace(clock)
    ks.set(b"a", b"1", ttl=10)
    ks.set(b"b", b"2", ttl=20)
    ks.set(b"c", b"3")
    clock.now += 15
    assert ks.get(b"a") is None  # lazily
    assert ks.sweep() == 0
    clock.now += 10
    assert ks.sweep() == 1 and b"b" not in ks.data  # by the sweep
    assert ks.get(b"c") == b"3" and len(ks) == 1


def test_sweep_stays_within_its_budget():
    clock = FakeClock()
    ks = Keyspace(clock)
    for i in range(200_000):
        ks.set(b"k%d" % i, b"v", ttl=1)
    clock.now += 2
    ks.sweepBudget = 0.0005
    first = ks.sweep()
    assert 0 < first < 200_000  # one pass does part of the work
    while ks.sweep():
        pass
    assert len(ks) == 0


def test_a_changed_expiry_leaves_no_stale_deadline_behind():
    clock = FakeClock()
    ks = Keyspace(clock)
    ks.set(b"a", b"1", ttl=1)
    ks.set(b"a", b"2", ttl=100)
    clock.now += 5
    assert ks.sweep() == 0 and ks.get(b"a") == b"2"
    ks.set(b"a", b"3")  # no expiry now
    clock.now += 500
    assert ks.sweep() == 0 and ks.get(b"a") == b"3"


def run(ks, *words):
    return commands.execute(ks, [w.encode() if isinstance(w, str) else w for w in words])


def test_set_options_and_counters():
    clock = FakeClock()
    ks = Keyspace(clock)
    assert run(ks, "SET", "k", "v", "NX") == resp.OK
    assert run(ks, "SET", "k", "w", "NX") == resp.NIL
    assert run(ks, "SET", "k", "w", "XX", "PX", "1500") == resp.OK
    assert run(ks, "PTTL", "k") == b":1500\r\n"
    assert run(ks, "SET", "nope", "x", "XX") == resp.NIL
    assert run(ks, "SET", "k", "v", "EX", "0").startswith(b"-ERR invalid expire")
    assert run(ks, "SET", "k", "v", "BOGUS") == commands.SYNTAX
    assert run(ks, "INCR", "n") == b":1\r\n"
    assert run(ks, "INCRBY", "n", "41") == b":42\r\n"
    assert run(ks, "DECRBY", "n", "2") == b":40\r\n"
    assert run(ks, "INCR", "k") == commands.NOT_INTEGER
    assert run(ks, "SET", "big", str(2**63 - 1)) == resp.OK
    assert run(ks, "INCR", "big").startswith(b"-ERR increment or decrement would overflow")
    assert run(ks, "APPEND", "s", "ab") == b":2\r\n"
    assert run(ks, "APPEND", "s", "cd") == b":4\r\n"
    assert run(ks, "STRLEN", "s") == b":4\r\n"
    assert run(ks, "GETSET", "s", "x") == resp.bulk(b"abcd")
    assert run(ks, "TTL", "s") == b":-1\r\n"
    assert run(ks, "TTL", "missing") == b":-2\r\n"
    assert run(ks, "EXPIRE", "s", "10") == resp.ONE
    assert run(ks, "PERSIST", "s") == resp.ONE
    assert run(ks, "PERSIST", "s") == resp.ZERO
    assert run(ks, "EXPIRE", "s", "-1") == resp.ONE and ks.get(b"s") is None


def test_whole_buffers_with_crlf_inside_values_parse_right():
    """The fast path splits at every CRLF; a value holding CRLF must still come out
    whole (the parser notices the length mismatch and parses the general way)."""
    tricky = b"a\r\n$1\r\nb"  # looks like RESP framing inside a value
    wire = (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(tricky), tricky)
            + b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    assert resp.Parser().feed(wire) == [[b"SET", b"k", tricky], [b"GET", b"k"]]
    many = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 50
    assert resp.Parser().feed(many) == [[b"GET", b"k"]] * 50


def test_replies_waiting_on_another_worker_are_bounded(tmp_path, monkeypatch):
    """A pipeline against a shard that does not answer stops being read once too many
    replies wait behind it, and is read again once they are answered, in order."""
    from cluster import rpc
    from cluster.reactor import Reactor
    from cluster.shards import ownerOf
    from cluster.store import server
    from cluster.testing import StringTransport

    monkeypatch.setattr(server, "MAX_WAITING", 10)
    monkeypatch.setattr(server, "RESUME_WAITING", 3)
    reactor = Reactor()
    node = rpc.RpcNode(reactor, "worker-0", str(tmp_path), workers=2)
    node.setPeers({"worker-1": [1, f"ipc://{tmp_path}/nobody.ipc"]})  # never answers
    rpc.install(node)
    try:
        key = next(k for k in (b"k%d" % i for i in range(100)) if ownerOf(k, 2) == 1)
        proto, transport = server.RespStore(), StringTransport()
        proto.makeConnection(transport)
        for _ in range(11):
            assert transport.producerState == "producing"
            proto.dataReceived(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
            server._gathered.send()  # the end of a reactor iteration: the call goes out
        assert transport.producerState == "paused" and transport.value() == b""
        for n, cid in enumerate(sorted(node.pending)):  # the answers arrive, in order
            node._settle(node.pending.pop(cid), [b"$1\r\n%d\r\n" % (n % 10)])
            if n < 7:
                assert transport.producerState == "paused"
        assert transport.producerState == "producing"
        assert transport.value() == b"".join(b"$1\r\n%d\r\n" % (n % 10) for n in range(11))
    finally:
        rpc.install(None)
        node.close()


def test_the_shard_hooks_move_keys_values_and_time_to_live(tmp_path, monkeypatch):
    """exportShard on one keyspace, importShard on another: the slots' keys, values and
    remaining TTL arrive; other slots' keys stay; a big value's chunk is marked Large;
    forgetShard drops exactly the slots given; a malformed chunk changes nothing."""
    from cluster import rpc
    from cluster.reactor import Reactor
    from cluster.store import server

    node = rpc.RpcNode(Reactor(), "worker-0", str(tmp_path), workers=1)
    rpc.install(node)
    source, dest = Keyspace(), Keyspace()
    try:
        monkeypatch.setattr(server, "keyspace", source)
        for i in range(500):
            source.set(b"k%d" % i, b"v%d" % i, 100.0 if i % 2 else None)
        source.set(b"big", b"b" * server.BIG_VALUE)
        moving = {node.slotOf(b"k%d" % i) for i in range(0, 500, 3)} | {node.slotOf(b"big")}
        chunks = list(server.factory.exportShard(sorted(moving)))
        assert any(type(c) is rpc.Large for c in chunks)
        monkeypatch.setattr(server, "keyspace", dest)
        for chunk in chunks:
            server.factory.importShard(chunk.value if type(chunk) is rpc.Large else chunk)
        moved = [k for k in source.data if node.slotOf(k) in moving]
        assert sorted(dest.data) == sorted(moved)
        for key in moved:
            assert dest.data[key] == source.data[key]
            assert (key in dest.expires) == (key in source.expires)
            if key in source.expires:
                assert abs(dest.ttl(key) - source.ttl(key)) < 1.0
        with pytest.raises(TypeError):
            server.factory.importShard([b"k", 5, -1])  # a value that is not bytes
        assert sorted(dest.data) == sorted(moved)
        monkeypatch.setattr(server, "keyspace", source)
        server.factory.forgetShard(sorted(moving))
        assert not [k for k in source.data if node.slotOf(k) in moving]
        assert len(source) == 501 - len(moved)
    finally:
        rpc.install(None)
        node.close()


def test_commands_for_a_moving_shard_wait_in_order_then_run_or_fail_with_tryagain(
        tmp_path, runner):
    from cluster import rpc
    from cluster.defer import deferLater
    from cluster.store import server
    from cluster.testing import StringTransport

    node = rpc.RpcNode(runner.reactor, "worker-0", str(tmp_path), workers=1, timeout=0.3)
    rpc.install(node)
    node.routeListeners.append(server._routesChanged)  # as the factory's start does
    try:
        proto, transport = server.RespStore(), StringTransport()
        proto.makeConnection(transport)
        slot = node.slotOf(b"k")
        node.freeze([slot])
        proto.dataReceived(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n*1\r\n$4\r\nPING\r\n")
        assert transport.value() == b""  # the SET waits, and the PING behind it
        node.thaw([slot])  # the move was called off: both run, in order
        assert transport.value() == b"+OK\r\n+PONG\r\n"
        transport.clear()
        node.freeze([slot])
        proto.dataReceived(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n")
        runner.run_until(deferLater(runner.reactor, 0.5, lambda: None))
        assert transport.value() == (b"-TRYAGAIN the key's shard is moving; try again\r\n" * 2)
    finally:
        rpc.install(None)
        node.close()


def test_every_change_to_a_watched_key_gives_it_a_new_version():
    now = [0.0]
    ks = Keyspace(clock=lambda: now[0])
    assert ks.version(b"k") is None
    v = ks.watch(b"k")
    assert ks.version(b"k") == v
    ks.get(b"k")
    ks.set(b"other", b"1")
    assert ks.version(b"k") == v  # reads and other keys change nothing

    def changes(step):
        before = ks.version(b"k")
        step()
        return ks.version(b"k") != before

    assert changes(lambda: ks.set(b"k", b"1"))
    assert changes(lambda: ks.set(b"k", b"1"))  # the same value again is a write too
    assert changes(lambda: ks.expireAt(b"k", 10.0))
    assert changes(lambda: ks.persist(b"k"))
    assert not changes(lambda: ks.persist(b"k"))  # nothing to persist: no change
    assert changes(lambda: ks.delete(b"k"))
    assert not changes(lambda: ks.delete(b"k"))
    ks.set(b"k", b"1", ttl=1.0)
    now[0] = 2.0
    assert changes(lambda: ks.get(b"k"))  # expired when touched
    ks.set(b"k", b"1", ttl=1.0)
    now[0] = 4.0
    assert changes(ks.sweep)  # expired by the sweep
    assert changes(ks.flush)
    # watchers are counted: the version lives until the last one unwatches
    ks.watch(b"k")
    ks.unwatch(b"k")
    assert ks.version(b"k") is not None
    ks.unwatch(b"k")
    assert ks.version(b"k") is None and not ks.watched
    # a new watch starts from a version no earlier watch had
    assert ks.watch(b"k") != v
