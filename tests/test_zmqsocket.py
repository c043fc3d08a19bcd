"""ZeroMQ sockets on the reactor: the edge-triggered zmq.FD never strands a message."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import zmq

from cluster.defer import Deferred
from cluster.zmqsocket import ZmqSocket, configure
from tests import ROOT

COUNT = 100_000


def _unbounded(sock):
    """These tests queue 100k messages at once to stress the edge-triggered fd; the
    high-water mark (tested in test_rpc) would refuse them."""
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    return sock


def _pair(runner, tmp_path, onRouter, onDealer):
    ctx = zmq.Context.instance()
    endpoint = f"ipc://{tmp_path}/z.ipc"
    router = _unbounded(configure(ctx.socket(zmq.ROUTER)))
    router.bind(endpoint)
    dealer = _unbounded(configure(ctx.socket(zmq.DEALER)))
    dealer.connect(endpoint)
    r = runner.reactor
    return (ZmqSocket(r, router, onRouter).start(), ZmqSocket(r, dealer, onDealer).start())


def test_bursts_both_ways_at_once_all_arrive(runner, tmp_path):
    """Each side sends 100k messages while receiving the other's 100k; every message of
    both bursts arrives, in order."""
    got = {"router": [], "dealer": []}
    done = Deferred()
    peer: list[bytes] = []

    def check():
        if len(got["router"]) == COUNT and len(got["dealer"]) == COUNT and not done.called:
            done.callback(None)

    def onRouter(frames):
        identity, body = frames
        if not peer:
            peer.append(identity)
            runner.reactor.callLater(0, sendBurst, router, lambda i: [identity, b"%d" % i])
        got["router"].append(int(body))
        check()

    def onDealer(frames):
        got["dealer"].append(int(frames[0]))
        check()

    def sendBurst(sock, frames, start=0):
        # in slices, so the two bursts interleave with receiving on the same loop
        for i in range(start, min(start + 5000, COUNT)):
            sock.send(frames(i))
        if start + 5000 < COUNT:
            runner.reactor.callLater(0, sendBurst, sock, frames, start + 5000)

    router, dealer = _pair(runner, tmp_path, onRouter, onDealer)
    runner.reactor.callLater(0, sendBurst, dealer, lambda i: [b"%d" % i])
    runner.run_until(done, timeout=60)
    assert got["router"] == list(range(COUNT))
    assert got["dealer"] == list(range(COUNT))
    router.close()
    dealer.close()


def test_sends_inside_receive_callbacks_never_stall(runner, tmp_path):
    """Ping-pong where every reply is sent from inside the receive callback: a send that
    eats the fd's edge must not leave the next message unread."""
    rounds = 20_000
    done = Deferred()
    count = [0]

    def onRouter(frames):
        router.send(frames)  # echo from inside the callback

    def onDealer(frames):
        count[0] += 1
        if count[0] == rounds:
            done.callback(None)
        elif count[0] < rounds:
            # two in flight at a time, each sent from the callback
            dealer.send([b"x"])

    router, dealer = _pair(runner, tmp_path, onRouter, onDealer)
    dealer.send([b"x"])
    runner.reactor.callLater(0, dealer.send, [b"x"])
    runner.run_until(done, timeout=60)
    assert count[0] in (rounds, rounds + 1)  # the other one in flight may land too
    router.close()
    dealer.close()


def test_burst_from_another_process_all_arrive(runner, tmp_path):
    """A separate process (raw pyzmq) floods our ROUTER; every message arrives."""
    endpoint = f"ipc://{tmp_path}/p.ipc"
    ctx = zmq.Context.instance()
    sock = configure(ctx.socket(zmq.ROUTER))
    sock.bind(endpoint)
    got = []
    done = Deferred()

    def onRouter(frames):
        got.append(int(frames[1]))
        if len(got) == COUNT:
            done.callback(None)

    router = ZmqSocket(runner.reactor, sock, onRouter).start()
    code = textwrap.dedent(f"""
        import zmq
        s = zmq.Context().socket(zmq.DEALER)
        s.setsockopt(zmq.SNDHWM, 0)
        s.connect({endpoint!r})
        for i in range({COUNT}):
            s.send(b"%d" % i)
        s.close(linger=30000)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy())
    try:
        runner.run_until(done, timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert got == list(range(COUNT))
    router.close()


def test_a_send_that_eats_the_edge_does_not_strand_a_waiting_message(runner, tmp_path):
    """A message lands while we are not looking, then we send on the same socket (which
    makes zmq process its mailbox and clear the fd): the waiting message is still read."""
    import time

    r = runner.reactor
    arrived = Deferred()

    def onRouter(frames):
        identity = frames[0]
        r.removeReader(dealer)  # look away
        router.sock.send_multipart([identity, b"late"])
        time.sleep(0.2)  # it is now queued at the dealer, its fd readable
        dealer.send([b"y"])  # processes the mailbox: the fd is no longer readable
        r.addReader(dealer)

    def onDealer(frames):
        if frames == [b"late"] and not arrived.called:
            arrived.callback(None)

    router, dealer = _pair(runner, tmp_path, onRouter, onDealer)
    dealer.send([b"hello"])
    runner.run_until(arrived, timeout=3)
    router.close()
    dealer.close()
