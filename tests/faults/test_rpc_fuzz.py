"""A worker's RPC endpoint fed garbage, truncated, huge, deeply nested and wrongly typed
messages by a raw ZeroMQ peer in the run directory (what any process of the same user
could do): the worker drops what is bad, at a cost bounded by its size, logs once per
episode, and keeps serving."""

from __future__ import annotations

import glob
import os
import random
import time

import msgpack
import pytest
import zmq

from cluster import rundir
from cluster.rpcwire import MAX_FRAME
from tests.faults.probes import Resp, peakRss, resetPeakRss

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(120)]

V = 1  # the wire version


def dealer(endpoint):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(endpoint)
    return sock


def call(sock, *items):
    """Send one message of call items; return the reply items, once all have come (a
    call passed on to the key's owner is answered in a later message)."""
    sock.send(msgpack.packb([V, list(items)]))
    replies = []
    while len(replies) < len(items):
        replies += msgpack.unpackb(sock.recv(), strict_map_key=False)[1]
    return replies


def test_a_worker_survives_rpc_fuzz_at_a_bounded_cost(run_cluster, figures):
    c = run_cluster(None, workers=2, route="round-robin")
    pids = c.pids()
    pid = pids["worker-0"]
    endpoint = "ipc://" + glob.glob(os.path.join(rundir.path(c.name),
                                                 f"rpc-worker-0-{pid}.ipc"))[0]
    raw = dealer(endpoint)
    rng = random.Random(7)
    sent = 0
    # garbage and truncated messages
    for _ in range(300):
        raw.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
        good = msgpack.packb([V, [["call", 1, "cluster.ping", [], {}]]])
        raw.send(good[:rng.randrange(1, len(good))])
        sent += 2
    # deeply nested, and a container that claims more than the message holds
    raw.send(b"\x92\x01\x91" + b"\x91" * 200_000 + b"\xc0")
    raw.send(b"\x92\x01\xdd\xff\xff\xff\xff")
    # 50,000 bad items in one message: one log line for the episode, not 50,000
    raw.send(msgpack.packb([V, [["frobnicate", i] for i in range(50_000)]]))
    sent += 3
    assert call(raw, ["call", 1, "cluster.ping", [], {}]) == [["ok", 1, pid]]  # all read
    # 4 MB of empty arrays: refused before it is decoded
    count = 4 << 20
    hostile = b"\x92\x01\xdd" + count.to_bytes(4, "big") + b"\x90" * count
    before = resetPeakRss(pid)
    raw.send(hostile)
    assert call(raw, ["call", 2, "cluster.ping", [], {}]) == [["ok", 2, pid]]
    growth = peakRss(pid) - before
    # a message past MAXMSGSIZE: ZeroMQ drops it (and this peer) before allocating it
    raw.send(b"\x00" * (MAX_FRAME + 1))
    sent += 2
    time.sleep(0.5)
    raw.close()
    # wrongly typed calls: each fails alone, as an error reply to its own call
    sock = dealer(endpoint)
    replies = call(
        sock,
        ["call", 1, "store.execMany", [[[b"SET", b"typed:int", 5], [b"SET", b"typed:ok", b"v"],
                                        "not a request", [b"GET"], [b"NOSUCH", b"k"]]], {}],
        ["call", 2, "store.mget", [[1, 2]], {}],
        ["call", 3, "store.mset", [[b"odd"]], {}],
        ["call", 4, "cluster.shard.load", [1, "junk"], {}],
        ["call", 5, "cluster.shard.abort", [1, "not slots"], {}],
        ["call", 6, "store.execMany", ["not a list"], {}],
        ["call", 7, "cluster.ping", [], {}],
    )
    sock.close()
    by_id = {r[1]: r for r in replies}
    answers = by_id[1][2]
    assert by_id[1][0] == "ok" and answers[1] == b"+OK\r\n"
    assert all(a.startswith(b"-ERR") for i, a in enumerate(answers) if i != 1)
    assert [by_id[i][0] for i in range(2, 7)] == ["err"] * 5
    assert by_id[7] == ["ok", 7, pid]
    # the store is intact and the worker serves: a wrongly typed value never got in
    conn = Resp(c.port)
    assert conn.call("GET", "typed:int") is None
    assert conn.call("GET", "typed:ok") == b"v"
    conn.close()
    assert c.pids() == pids
    log = c.logs()
    lines = [line for line in log.splitlines() if "rpc worker-0: dropped" in line]
    figures.update(bad_messages=sent, hostile_message_bytes=len(hostile),
                   rss_growth_bytes=growth, rss_growth_x=round(growth / len(hostile), 2),
                   log_lines_for_bad_input=len(lines))
    assert growth <= 2 * len(hostile)
    assert len(lines) <= 5  # once per episode with a count
