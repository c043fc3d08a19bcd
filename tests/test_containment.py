"""Errors stay with what caused them: one connection, one message, never the port or the
channel, and no fd is leaked on the way (real sockets on a private reactor)."""

from __future__ import annotations

import os
import socket

import pytest

from cluster import channel
from cluster.channel import Channel
from cluster.defer import Deferred, deferLater, ensureDeferred
from gateway.gateway import Gateway

pytestmark = pytest.mark.timeout(30)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run(runner, steps):
    """Run ``steps`` (an async function of a pause function) on the reactor, once: the
    test runner stops the reactor when they are done."""
    async def main():
        async def pause(seconds=0.1):
            await deferLater(runner.reactor, seconds, lambda: None)

        return await steps(pause)

    return runner.run_until(ensureDeferred(main()))


def test_a_channel_handler_that_raises_drops_that_message_and_its_fds_only(runner, caplog):
    a, b = channel.pair()
    seen = []

    def handler(msg, received):
        if msg == "boom":
            raise ValueError("the handler's own bug")
        seen.append(msg)
        for fd in received:
            os.close(fd)

    receiving = Channel(a, runner.reactor, handler).start()
    sending = Channel(b, runner.reactor, lambda m, f: None)
    r, w = os.pipe()
    before = fds()

    async def steps(pause):
        assert sending.send("boom", [r, w])  # two fds the handler never takes
        assert sending.send("fine")
        await pause()
        return fds(), receiving.closed

    after, closed = run(runner, steps)
    assert seen == ["fine"]  # the channel went on with the next message
    assert not closed
    assert after == before  # the received copies of r and w were closed
    assert "handler failed" in caplog.text
    for fd in (r, w):
        os.close(fd)
    sending.close()


@pytest.fixture
def gateway(runner):
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(64)
    listening.setblocking(False)
    control, supervisor = channel.pair()
    spec = {"workers": 1, "route": "round-robin", "slots": 1024, "heartbeat_interval": 0.5,
            "preamble_limit": 4096, "preamble_timeout": 5}
    gw = Gateway(runner.reactor, spec, listening, control)
    gw.control.start()
    workerEnd, gatewayEnd = channel.pair()
    gw._onControl(["slot", 0], [os.dup(gatewayEnd.fileno())])  # as the supervisor sends
    gatewayEnd.close()
    yield gw, workerEnd, listening.getsockname()[1]
    gw.port.connectionLost(None)
    gw.control.close()
    for slot in gw.slots.values():
        slot.channel.close()
    supervisor.close()
    workerEnd.close()


def test_an_error_handing_one_connection_over_closes_it_and_the_port_keeps_accepting(
        runner, gateway):
    gw, workerEnd, port = gateway
    order = gw.policy.order
    calls = []

    def failingOnce(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a routing bug")
        return order(*args)

    gw.policy.order = failingOnce

    async def steps(pause):
        await pause()
        before = fds()
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        await pause()
        second = socket.create_connection(("127.0.0.1", port), timeout=5)
        await pause()
        assert first.recv(1) == b""  # closed by the gateway: that connection only
        workerEnd.setblocking(False)
        msg, ancillary, _, _ = workerEnd.recvmsg(4096, socket.CMSG_SPACE(8))
        handed = [int.from_bytes(data[:4], "little") for _, _, data in ancillary]
        assert len(handed) == 1  # the second connection reached the worker
        os.close(handed[0])
        assert gw.port.connected and gw.handed == 1
        first.close()
        second.close()
        await pause()
        return before, fds()

    before, after = run(runner, steps)
    assert after == before  # neither the failed nor the handed fd was left open


def test_a_slot_message_carrying_extra_fds_closes_them(runner, gateway):
    gw, _, _ = gateway
    before = fds()
    extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
    workerEnd, gatewayEnd = channel.pair()
    gw._onControl(["slot", 1], [os.dup(gatewayEnd.fileno()), *extra])
    gatewayEnd.close()
    workerEnd.close()
    gw.slots.pop(1).channel.close()
    assert fds() == before


def test_a_deferred_fires_once_when_its_timeout_and_its_result_race(runner):
    d = Deferred()
    d.addTimeout(0.05, runner.reactor)
    runner.reactor.callLater(0.05, lambda: d.called or d.callback("late"))
    outcomes = []
    d.addBoth(outcomes.append)

    async def steps(pause):
        await pause(0.2)

    run(runner, steps)
    assert len(outcomes) == 1


def test_last_words_of_a_peer_that_closed_with_our_messages_unread_are_read(runner):
    """Linux reports a reset before the messages a peer sent just before it closed with
    ours unread (a child's boot error, say): the channel still hands them over."""
    a, b = channel.pair()
    seen = []
    closed = []
    receiving = Channel(a, runner.reactor, lambda msg, fds: seen.append(msg),
                        closed.append).start()
    receiving.send("never read by the peer")
    peer = Channel(b, runner.reactor, lambda m, f: None)
    assert peer.send("my last words")
    peer.sock.close()  # closes with our message unread: the reset

    async def steps(pause):
        await pause()

    run(runner, steps)
    assert seen == ["my last words"]
    assert closed  # and then the channel is over
