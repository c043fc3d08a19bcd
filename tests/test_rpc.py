"""cluster.rpc between two nodes over real ZeroMQ ipc:// sockets, both on one private
reactor (the tests across real worker processes are in test_rpc_cluster.py)."""

from __future__ import annotations

import os

import msgpack
import pytest
import zmq

from cluster import rpc
from cluster.defer import Deferred, deferLater, ensureDeferred
from cluster.error import TimeoutError
from cluster.rpc import NodeLost, NoSuchMethod, RemoteError, RpcNode, expose
from cluster.rpcwire import BATCH_BYTES, MAX_FRAME


@expose
def echo(*args, **kwargs):
    return [list(args), kwargs]


@expose("t.boom")
def boom(message):
    raise ValueError(message)


@expose("t.later")
def later(value, delay):
    from cluster.rpc import _node  # the node serving this call is the installed one

    return deferLater(_node.reactor, delay, lambda: value)


@expose("t.async")
async def asyncDouble(value):
    d = Deferred()
    from cluster.rpc import _node

    _node.reactor.callLater(0, d.callback, value * 2)
    return await d


@expose("t.unserializable")
def unserializable():
    return object()


@pytest.fixture
def pair(runner, tmp_path):
    """worker-0 (installed as this process's node) and worker-1, each with its ROUTER."""
    r = runner.reactor
    a = RpcNode(r, "worker-0", str(tmp_path), workers=2).start()
    b = RpcNode(r, "worker-1", str(tmp_path), workers=2).start()
    peers = {"worker-0": [os.getpid(), a.endpoint], "worker-1": [os.getpid(), b.endpoint]}
    a.setPeers(peers)
    b.setPeers(peers)
    rpc.install(a)
    yield a, b
    rpc.install(None)
    a.close()
    b.close()


def run(runner, coro, timeout=10):
    return runner.run_until(ensureDeferred(coro), timeout)


def test_types_round_trip_exactly(runner, pair):
    a, _ = pair
    values = [b"\x00bytes\xff", "str ü", 0, -1, 2**63 - 1, -(2**63), 1.5, float("inf"),
              [1, [2, b"x"]], {"k": b"v", "n": None, 3: "int key"}, None, True]

    async def go():
        return await a.callRemote("worker-1", "echo", tuple(values), {"kw": b"yes"})

    args, kwargs = run(runner, go())
    assert args == values
    assert kwargs == {"kw": b"yes"}


def test_remote_exception_becomes_remote_error(runner, pair):
    a, _ = pair

    async def go():
        try:
            await a.callRemote("worker-1", "t.boom", ("bad thing",), {})
        except RemoteError as e:
            return e

    e = run(runner, go())
    assert type(e) is RemoteError
    assert e.remoteType == "ValueError"
    assert e.remoteMessage == "bad thing"
    assert "raise ValueError(message)" in e.remoteTraceback


def test_unknown_method_is_no_such_method(runner, pair):
    a, _ = pair

    async def go():
        try:
            await a.callRemote("worker-1", "nope", (), {})
        except NoSuchMethod as e:
            return e

    e = run(runner, go())
    assert isinstance(e, RemoteError) and "nope" in e.remoteMessage


def test_deferred_and_async_results_reply_when_they_fire(runner, pair):
    a, _ = pair

    async def go():
        return (await a.callRemote("worker-1", "t.later", ("v", 0.05), {}),
                await a.callRemote("worker-1", "t.async", (21,), {}))

    assert run(runner, go()) == ("v", 42)


def test_unserializable_result_is_a_remote_type_error(runner, pair):
    a, _ = pair

    async def go():
        try:
            await a.callRemote("worker-1", "t.unserializable", (), {})
        except RemoteError as e:
            return e

    assert run(runner, go()).remoteType == "TypeError"


def test_unserializable_arguments_fail_at_once(runner, pair):
    a, _ = pair
    d = a.callRemote("worker-1", "echo", (object(),), {})
    with pytest.raises(TypeError):
        runner.run_until(d)


def test_timeout_then_late_reply_is_dropped_quietly(runner, pair):
    a, _ = pair
    fired = []

    async def go():
        d = a.callRemote("worker-1", "t.later", ("slow", 0.3), {}, timeout=0.05)
        d.addBoth(lambda r: fired.append(r) or r)
        try:
            await d
        except TimeoutError:
            pass
        # let the late reply arrive; it must not fire anything again
        await deferLater(a.reactor, 0.5, lambda: None)
        return a.dropped

    assert run(runner, go()) == 0
    assert len(fired) == 1
    assert a.pending == {}


def test_default_timeout_applies(runner, pair):
    a, _ = pair
    a.timeout = 0.05

    async def go():
        try:
            await a.callRemote("worker-1", "t.later", (1, 1.0), {})
        except TimeoutError as e:
            return e

    assert isinstance(run(runner, go()), TimeoutError)


def test_node_lost_fails_pending_calls_at_once(runner, pair):
    a, b = pair

    async def go():
        d = a.callRemote("worker-1", "t.later", ("never", 5.0), {}, timeout=30)
        a.reactor.callLater(0.1, a.setPeers, {"worker-0": [os.getpid(), a.endpoint]})
        started = a.reactor.seconds()
        try:
            await d
        except NodeLost:
            return a.reactor.seconds() - started

    assert run(runner, go()) < 1.0


def test_call_to_a_node_that_is_not_up_fails_with_node_lost(runner, pair):
    a, _ = pair

    async def go():
        try:
            await a.callRemote("worker-7", "echo", (), {})
        except NodeLost as e:
            return e

    assert isinstance(run(runner, go()), NodeLost)


def test_cancelling_a_call_to_a_node_that_is_not_up_fires_it_once(runner, pair, caplog):
    a, _ = pair
    d = a.callRemote("worker-7", "echo", (), {})
    outcomes = []
    d.addBoth(outcomes.append)
    d.cancel()  # before the NodeLost of the next iteration
    run(runner, _pause(a.reactor, 0.05))  # that iteration passes: nothing fires twice
    assert len(outcomes) == 1 and type(outcomes[0].value).__name__ == "CancelledError"
    assert "AlreadyCalledError" not in caplog.text  # no second firing was even tried


async def _pause(reactor, seconds):
    await deferLater(reactor, seconds, lambda: None)


def test_a_replaced_node_fails_calls_to_the_old_one_and_serves_new_ones(runner, pair, tmp_path):
    a, b = pair

    async def go():
        old = a.callRemote("worker-1", "t.later", ("old", 5.0), {}, timeout=30)
        old.addErrback(lambda f: f.trap(NodeLost) and "lost")
        await deferLater(a.reactor, 0.05, lambda: None)
        b2 = RpcNode(a.reactor, "worker-1", str(tmp_path / "new"), workers=2).start()
        try:
            a.setPeers({"worker-0": [os.getpid(), a.endpoint],
                        "worker-1": [os.getpid() + 1, b2.endpoint]})
            return await old, await a.callRemote("worker-1", "echo", ("new",), {})
        finally:
            b2.close()

    (tmp_path / "new").mkdir()
    assert run(runner, go()) == ("lost", [["new"], {}])


def test_self_call_is_never_reentrant_and_keeps_msgpack_semantics(runner, pair):
    a, _ = pair
    order = []

    async def go():
        d = a.callRemote("worker-0", "echo", ((1, 2),), {})
        d.addCallback(lambda r: order.append("fired") or r)
        order.append("returned")
        return await d

    assert run(runner, go()) == [[[1, 2]], {}]  # the tuple came back a list, as remotely
    assert order == ["returned", "fired"]


def test_calls_within_one_iteration_share_one_message(runner, pair):
    a, b = pair
    n = a.batchLimit - 1

    async def go():
        sent = a.messagesSent
        ds = [a.callRemote("worker-1", "echo", (i,), {}) for i in range(n)]
        results = [await d for d in ds]
        return results, a.messagesSent - sent, b.messagesSent

    results, sent, replies = run(runner, go())
    assert results == [[[i], {}] for i in range(n)]
    assert sent == 1
    assert replies == 1


def test_a_full_batch_leaves_at_once_and_order_is_kept(runner, pair):
    a, b = pair
    n = a.batchLimit * 3 + 5

    async def go():
        ds = [a.callRemote("worker-1", "echo", (i,), {}) for i in range(n)]
        full = a.messagesSent  # three full batches went before the iteration ended
        results = [await d for d in ds]
        return results, full, a.messagesSent, b.messagesSent

    results, full, sent, replies = run(runner, go())
    assert results == [[[i], {}] for i in range(n)]
    assert (full, sent) == (3, 4)
    assert replies == 4


def test_a_lone_call_goes_out_at_the_end_of_its_iteration(runner, pair):
    a, b = pair

    async def go():
        d = a.callRemote("worker-1", "echo", (1,), {})
        assert a.messagesSent == 0  # not yet: batching waits for the iteration's end
        return await d

    assert run(runner, go(), timeout=2) == [[1], {}]


def test_cancel_fires_once_and_drops_the_reply(runner, pair):
    a, _ = pair

    async def go():
        d = a.callRemote("worker-1", "t.later", ("x", 0.1), {})
        d.cancel()
        try:
            await d
        except Exception as e:  # noqa: BLE001 - CancelledError, whichever module
            err = e
        await deferLater(a.reactor, 0.3, lambda: None)
        return err, a.pending, a.dropped

    err, pending, dropped = run(runner, go())
    assert type(err).__name__ == "CancelledError"
    assert pending == {} and dropped == 0


def test_notify_and_publish_reach_everyone_including_the_publisher(runner, pair):
    a, b = pair
    seen = {"a": [], "b": [], "notified": []}
    a.subscribe("room", lambda t, d: seen["a"].append(d))
    b.subscribe("room", lambda t, d: seen["b"].append(d))

    @expose("t.note")
    def note(x):
        seen["notified"].append(x)

    async def go():
        for i in range(50):
            a.publish("room", i)
        a.notify("worker-1", "t.note", ("hi",), {})
        await deferLater(a.reactor, 0.3, lambda: None)

    run(runner, go())
    assert seen["a"] == list(range(50))  # in publish order
    assert seen["b"] == list(range(50))
    assert seen["notified"] == ["hi"]


def test_malformed_messages_are_counted_and_dropped(runner, pair):
    a, b = pair
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(b.endpoint)
    bad = [
        b"\xc1garbage",  # not msgpack
        msgpack.packb([99, []]),  # wrong version
        msgpack.packb({"not": "a list"}),
        msgpack.packb([rpc.VERSION, [["call", 1, "echo"]]]),  # truncated item
        msgpack.packb([rpc.VERSION, [["ok", 1, "forged"]]]),  # a reply sent to a server
        msgpack.packb([rpc.VERSION, [["call", 2, "echo", "notalist", {}]]]),
        msgpack.packb([rpc.VERSION, [["frobnicate"]]]),
    ]
    for payload in bad:
        raw.send(payload)
    raw.send_multipart([b"two", b"frames"])
    # past MAXMSGSIZE: ZeroMQ refuses it (and drops the sender) before allocating it
    raw.send(msgpack.packb([rpc.VERSION, [["notify", "echo", [b"x" * MAX_FRAME], {}]]]))

    async def go():
        await deferLater(a.reactor, 0.3, lambda: None)
        # the node still serves after all that
        return await a.callRemote("worker-1", "echo", ("alive",), {})

    assert run(runner, go()) == [["alive"], {}]
    raw.close()
    assert b.dropped == len(bad) + 1  # the oversized one never reached the node


def test_a_forged_reply_cannot_fire_someone_elses_deferred(runner, pair, tmp_path):
    """A reply for call id N fires it only if it comes from the peer the call went to."""
    a, b = pair
    ctx = zmq.Context.instance()
    # an impostor ROUTER that a's DEALER for a fake node talks to
    impostor = ctx.socket(zmq.ROUTER)
    impostor.setsockopt(zmq.LINGER, 0)
    endpoint = f"ipc://{tmp_path}/impostor.ipc"
    impostor.bind(endpoint)
    a.setPeers({"worker-0": [os.getpid(), a.endpoint], "worker-1": [os.getpid(), b.endpoint],
                "gateway": [os.getpid(), endpoint]})

    async def go():
        real = a.callRemote("worker-1", "t.later", ("real", 0.3), {})
        a.notify("gateway", "anything", (), {})  # opens a's DEALER to the impostor
        await deferLater(a.reactor, 0.1, lambda: None)
        identity, _ = impostor.recv_multipart(zmq.NOBLOCK)
        forged = max(a.pending)  # the id of the real call
        impostor.send_multipart([identity, msgpack.packb([rpc.VERSION,
                                                           [["ok", forged, "forged"]]])])
        return await real

    assert run(runner, go()) == "real"
    impostor.close()


def test_broadcast_fires_with_every_result_or_the_first_failure_itself(runner, pair):
    async def go():
        results = await rpc.broadcast("echo", 1)
        try:
            await rpc.broadcast("t.boom", "x")
        except Exception as e:  # noqa: BLE001 - the type is what is checked
            return results, e

    results, e = run(runner, go())
    assert results == {"worker-0": [[1], {}], "worker-1": [[1], {}]}
    assert type(e) is RemoteError and e.remoteMessage == "x"  # not wrapped in FirstError


# -- bounds: parts, decoding budget, failures that stay with their item --------------------

@expose("t.size")
def size(blob):
    return len(blob)


def test_an_item_larger_than_a_message_travels_in_parts(runner, pair):
    a, b = pair
    blob = os.urandom(2 * BATCH_BYTES + 12345)  # more than two messages' worth

    async def go():
        sent = a.messagesSent
        echoed = await a.callRemote("worker-1", "echo", (blob,), {})
        return echoed, a.messagesSent - sent

    (args, _), messages = run(runner, go())
    assert args == [blob]  # byte-exact, both ways
    assert messages >= 2  # the call went as parts, in several messages (each < MAX_FRAME)
    assert a.assembler.open == {} and b.assembler.open == {}


def test_a_flood_of_tiny_containers_is_refused_before_it_is_decoded(runner, pair):
    """4 MB of empty arrays would decode into ~256 MiB of lists: it is costed first and
    dropped; this process's peak RSS grows by less than twice the message meanwhile."""
    a, b = pair
    count = 4 << 20
    hostile = msgpack.packb(rpc.VERSION).join([b"\x92", b"\xdd" + count.to_bytes(4, "big")]) \
        + b"\x90" * count  # [VERSION, [[], [], ...]]
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(b.endpoint)
    before = resetPeakRss()
    raw.send(hostile)

    async def go():
        while not b.dropped:
            await deferLater(a.reactor, 0.01, lambda: None)
        return await a.callRemote("worker-1", "echo", ("alive",), {})

    assert run(runner, go()) == [["alive"], {}]
    growth = peakRss() - before
    raw.close()
    assert b.dropped == 1
    assert growth < 2 * len(hostile), growth


def resetPeakRss(pid="self"):
    """Reset the peak RSS (VmHWM) of a process to its current RSS; return that."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return _status(pid, "VmRSS")


def peakRss(pid="self"):
    return _status(pid, "VmHWM")


def _status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def test_deep_nesting_and_bad_parts_are_dropped_alone(runner, pair):
    a, b = pair
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(b.endpoint)
    deep = b"\x92\x01\x91" + b"\x91" * 100_000 + b"\xc0"  # [1, [[[[...]]]]]
    raw.send(deep)
    raw.send(b"\x92\x01\x91" + b"\xdd\xff\xff\xff\xff")  # claims 4G items it does not have
    raw.send(msgpack.packb([rpc.VERSION, [["part", 1, 3, 4, 100, b"x"]]]))  # no first part
    raw.send(msgpack.packb([rpc.VERSION, [["part", 2, 0, 2, 1 << 40, b"x"]]]))  # too big

    async def go():
        while b.dropped < 4:
            await deferLater(a.reactor, 0.01, lambda: None)
        return await a.callRemote("worker-1", "echo", ("alive",), {})

    assert run(runner, go()) == [["alive"], {}]
    raw.close()
    assert b.dropped == 4 and b.assembler.held == 0


def test_a_bad_item_costs_only_itself_not_its_batch(runner, pair):
    a, b = pair
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(b.endpoint)
    raw.send(msgpack.packb([rpc.VERSION, [
        ["call", 1, "echo", ["first"], {}],
        ["call", 2, "echo", "not a list", {}],
        ["call", 3],
        ["call", 4, "echo", ["last"], {}],
    ]]))

    async def go():
        while True:
            try:
                return raw.recv(zmq.NOBLOCK)
            except zmq.Again:
                await deferLater(a.reactor, 0.01, lambda: None)

    reply = msgpack.unpackb(run(runner, go()))
    raw.close()
    assert [item[:3] for item in reply[1]] == [["ok", 1, [["first"], {}]],
                                               ["ok", 4, [["last"], {}]]]
    assert b.dropped == 2


def test_a_message_that_cannot_be_sent_fails_its_calls_and_nothing_else(runner, pair,
                                                                        tmp_path, monkeypatch):
    """A peer that stops taking messages (its queue at the high-water mark): the calls in
    the message that could not go fail at once; calls to others go out as usual."""
    from cluster import zmqsocket

    a, _ = pair
    monkeypatch.setattr(zmqsocket, "HIGH_WATER", 2)
    deaf = f"ipc://{tmp_path}/deaf.ipc"  # nobody listens: messages only queue
    a.setPeers({"worker-0": [os.getpid(), a.endpoint], "worker-1": [os.getpid(), b_ep(pair)],
                "worker-2": [os.getpid(), deaf]})

    async def go():
        outcomes = []
        for i in range(4):  # one message per iteration
            d = a.callRemote("worker-2", "echo", (i,), {}, timeout=30)
            d.addErrback(lambda f: type(f.value).__name__)
            outcomes.append(d)
            await deferLater(a.reactor, 0.01, lambda: None)
        fine = await a.callRemote("worker-1", "echo", ("fine",), {})
        return [o.result for o in outcomes if o.called], fine

    failed, fine = run(runner, go())
    assert failed == ["NodeLost", "NodeLost"]  # the third and fourth: the queue was full
    assert fine == [["fine"], {}]


def b_ep(pair):
    return pair[1].endpoint


# -- shards: frozen slots wait, moved slots are forwarded ------------------------------------

def test_a_call_for_a_frozen_slot_waits_and_reaches_the_new_owner(runner, pair):
    a, b = pair
    key = next(k for k in (f"k{i}" for i in range(1000)) if a.shardOf(k) == "worker-0")
    slot = a.slotOf(key)

    def served():
        return a.served, b.served

    async def go():
        before = served()
        await b.callShard(key, "echo", (key,), {})
        assert served() == (before[0] + 1, before[1])  # worker-0 owns it
        a.freeze([slot])
        waiting = b.callShard(key, "echo", (key,), {})
        await deferLater(a.reactor, 0.1, lambda: None)
        assert not waiting.called  # held by worker-0 while the slot is frozen
        # the handoff is done: worker-1 owns the slot, worker-0 passes calls on to it
        b.assign([slot], b.me)
        a.assign([slot], a.peers["worker-1"])
        before = served()
        assert await waiting == [[key], {}]
        await b.callShard(key, "echo", (key,), {})
        return [x - y for x, y in zip(served(), before, strict=True)], a.shardOf(key)

    assert run(runner, go()) == ([0, 2], "worker-1")  # both served by the new owner
