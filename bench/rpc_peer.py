"""One side of the RPC benchmark: this project's ``callRemote`` or raw pyzmq.

    python -m bench.rpc_peer serve ours|raw DIR [ADDRESS [KEYS]]
    python -m bench.rpc_peer drive ours|raw DIR SERVER_PID latency|pipelined CALLS

Over ipc:// in DIR, or with ADDRESS over tcp:// on that address (the two sides as two
hosts, ``a`` calling ``b``), with CurveZMQ when KEYS (a directory of both hosts'
certificates) is given. The server writes its endpoint (and KEYS) into DIR.

The server prints ``ready``. The driver connects, warms up, prints ``warm``, waits for a
line on stdin (the orchestrator reads the server's CPU meanwhile), runs, and prints one
JSON line: calls, seconds, its own CPU seconds, and per-call latencies' p50/p99 in µs.

raw: a DEALER and a ROUTER, one msgpack message ``[id, method, args]`` per call and one
``[id, result]`` per reply, blocking ``recv`` (zmq's own poll): the least a Python
program can do for a round trip over ZeroMQ. ours: ``cluster.rpc`` between two nodes on
their reactors, exactly as two workers use it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import msgpack
import zmq

PAYLOAD = b"x" * 16
IN_FLIGHT = 100


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def published(directory: str, endpoint: str, keys: str | None) -> None:
    with open(os.path.join(directory, "server.json"), "w") as f:
        json.dump({"endpoint": endpoint, "keys": keys}, f)


def server_info(directory: str) -> tuple[str, str | None]:
    with open(os.path.join(directory, "server.json")) as f:
        info = json.load(f)
    return info["endpoint"], info["keys"]


def host_keys(keys: str | None, me: str):
    from cluster.curve import Keys

    return Keys.load(keys, me, ["a", "b"]) if keys else None


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def report(calls: int, seconds: float, used: float, latencies: list[float]) -> None:
    print(json.dumps({"calls": calls, "seconds": seconds, "cpu": used,
                      "p50": percentile(latencies, 0.5) * 1e6,
                      "p99": percentile(latencies, 0.99) * 1e6}), flush=True)


def handshake() -> None:
    print("warm", flush=True)
    sys.stdin.readline()


# -- raw pyzmq ---------------------------------------------------------------------------------

def serve_raw(directory: str, address: str | None, keys: str | None) -> None:
    from cluster.hosts import tcpEndpoint

    sock = zmq.Context().socket(zmq.ROUTER)
    if keys:
        host_keys(keys, "b").serve(sock)  # (no ZAP handler: libzmq admits any client key)
    sock.bind(tcpEndpoint(address, "*") if address else f"ipc://{directory}/raw.ipc")
    published(directory, sock.last_endpoint.decode(), keys)
    print("ready", flush=True)
    while True:
        identity, payload = sock.recv_multipart()
        cid, _method, args = msgpack.unpackb(payload)
        sock.send_multipart([identity, msgpack.packb([cid, args[0]])])


def drive_raw(directory: str, mode: str, calls: int) -> None:
    endpoint, keys = server_info(directory)
    sock = zmq.Context().socket(zmq.DEALER)
    if keys:
        host_keys(keys, "a").dial(sock, "b")
    sock.connect(endpoint)

    def call(cid: int) -> None:
        sock.send(msgpack.packb([cid, "bench.echo", [PAYLOAD]]))

    for i in range(1000):  # warm up
        call(i)
        msgpack.unpackb(sock.recv())
    handshake()
    latencies: list[float] = []
    start, used = time.perf_counter(), cpu()
    if mode == "latency":
        for i in range(calls):
            t = time.perf_counter()
            call(i)
            cid, result = msgpack.unpackb(sock.recv())
            assert cid == i and result == PAYLOAD
            latencies.append(time.perf_counter() - t)
    else:
        sent = 0
        for sent in range(min(IN_FLIGHT, calls)):
            call(sent)
        sent += 1
        for _ in range(calls):
            _, result = msgpack.unpackb(sock.recv())
            assert result == PAYLOAD
            if sent < calls:
                call(sent)
                sent += 1
    report(calls, time.perf_counter() - start, cpu() - used, latencies)


# -- this project ------------------------------------------------------------------------------

def node(host: str, directory: str, hosts: bool, address: str | None = None,
         keys: str | None = None):
    """worker-0 of host ``host`` (a calls b) when ``hosts``, taking calls on ``address``
    if given; else worker-0 (a) or worker-1 (b) of one host, over ipc:// only."""
    from cluster import rpc
    from cluster.hosts import HostMap, tcpEndpoint
    from cluster.reactor import reactor

    if not hosts:
        name = "worker-1" if host == "b" else "worker-0"
        return rpc.RpcNode(reactor, name, directory, workers=2).start(), reactor
    remote = tcpEndpoint(address, "*") if address else None
    return rpc.RpcNode(reactor, f"{host}/worker-0", directory, 1,
                       hostMap=HostMap([("a", 1), ("b", 1)], host),
                       keys=host_keys(keys, host), remoteAt=remote).start(), reactor


def serve_ours(directory: str, address: str | None, keys: str | None) -> None:
    from cluster import rpc

    rpc.expose("bench.echo")(lambda value: value)
    me, reactor = node("b", directory, address is not None, address, keys)
    published(directory, me.remoteEndpoint or me.endpoint, keys)
    reactor.callWhenRunning(print, "ready", flush=True)
    reactor.run()


def drive_ours(directory: str, serverPid: int, mode: str, calls: int) -> None:
    endpoint, keys = server_info(directory)
    remote = endpoint.startswith("tcp://")
    me, reactor = node("a", directory, remote, keys=keys)
    server = "b/worker-0" if remote else "worker-1"
    me.setPeers({server: [serverPid, endpoint]})
    latencies: list[float] = []
    state = {"sent": 0, "done": 0}
    clock = time.perf_counter

    def one(measure: bool) -> None:
        t = clock()
        state["sent"] += 1
        d = me.callRemote(server, "bench.echo", (PAYLOAD,), {})
        d.addCallbacks(replied, failed, callbackArgs=(t, measure))

    def failed(failure):
        print(failure.getTraceback(), file=sys.stderr)
        reactor.stop()

    def replied(result: bytes, t: float, measure: bool) -> None:
        assert result == PAYLOAD
        if measure and mode == "latency":
            latencies.append(clock() - t)
        state["done"] += 1
        if not measure:
            if state["done"] == 1000:
                reactor.callLater(0, measured)
            else:
                one(False)
        elif state["done"] == calls:
            report(calls, clock() - state["start"], cpu() - state["cpu"], latencies)
            reactor.stop()
        elif state["sent"] < calls:
            one(True)

    def measured() -> None:
        handshake()
        state.update(sent=0, done=0, start=clock(), cpu=cpu())
        for _ in range(1 if mode == "latency" else min(IN_FLIGHT, calls)):
            one(True)

    reactor.callWhenRunning(one, False)
    reactor.run()


def main() -> None:
    role, impl, directory = sys.argv[1:4]
    if role == "serve":
        address, keys = (sys.argv[4:] + [None, None])[:2]
        (serve_ours if impl == "ours" else serve_raw)(directory, address, keys)
    elif impl == "ours":
        drive_ours(directory, int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
    else:
        drive_raw(directory, sys.argv[5], int(sys.argv[6]))


if __name__ == "__main__":
    main()
