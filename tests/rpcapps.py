"""An app for the RPC tests across real worker processes (``tests.rpcapps:factory``).

Each line a client sends is a command the worker carries out with ``cluster.rpc``:

    call NODE METHOD [ARG]   callRemote; answers ``ok <json>`` or ``err <Type> <message>``
    shard KEY                callShard(KEY, "t.whereami"); answers ``ok [node, pid]``
    bcast                    broadcast("t.whereami"); answers ``ok {node: [node, pid]}``
    pub TOPIC TEXT           publish; answers ``ok null`` at once
    seen TOPIC               what this worker's subscriber got on TOPIC, in order
    me                       ``ok [node, pid]`` of the worker serving this connection

A first line ``HELLO KEY`` is ignored (it is there for key routing). In the gateway
(which imports the app only with ``--route key``), the app calls worker-0 as soon as it
is up and publishes the answer on ``fromgw``.
"""

from __future__ import annotations

import json
import os

from cluster import rpc
from cluster.basic import LineReceiver
from cluster.defer import deferLater
from cluster.protocol import Factory
from cluster.reactor import reactor

seen: dict[str, list] = {}


def _record(topic, data):
    seen.setdefault(topic, []).append(data)


for _topic in ("t", "fromgw"):
    rpc.subscribe(_topic, _record)


@rpc.expose("t.whereami")
def whereami():
    return [rpc.nodeName(), os.getpid()]


@rpc.expose("t.sleep")
def sleep(seconds):
    return deferLater(reactor, float(seconds), lambda: "woke")


@rpc.expose("t.boom")
def boom(text="boom"):
    raise KeyError(text)


class Commands(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        words = line.decode().split(" ")
        cmd, args = words[0], words[1:]
        if cmd == "HELLO":
            return
        if cmd == "call":
            node, method, *rest = args
            d = rpc.callRemote(node, method, *rest)
        elif cmd == "shard":
            d = rpc.callShard(args[0], "t.whereami")
        elif cmd == "bcast":
            d = rpc.broadcast("t.whereami")
        elif cmd == "pub":
            rpc.publish(args[0], " ".join(args[1:]))
            return self.answer(None)
        elif cmd == "seen":
            return self.answer(seen.get(args[0], []))
        elif cmd == "me":
            return self.answer(whereami())
        else:
            return self.sendLine(b"err Unknown " + cmd.encode())
        d.addCallbacks(self.answer, self.failed)

    def answer(self, result):
        self.sendLine(b"ok " + json.dumps(result).encode())

    def failed(self, failure):
        self.sendLine(f"err {type(failure.value).__name__} {failure.value}".encode())


class CommandFactory(Factory):
    protocol = Commands

    @staticmethod
    def routeKey(preamble: bytes):
        line, sep, _ = preamble.partition(b"\n")
        return line.split(b" ", 1)[1] if sep and line.startswith(b"HELLO ") else None


factory = CommandFactory()


def _callFromGateway():
    d = rpc.callRemote("worker-0", "t.whereami")
    d.addCallbacks(lambda result: rpc.publish("fromgw", result),
                   lambda failure: reactor.callLater(0.2, _callFromGateway))


if rpc.nodeName() == "gateway":
    reactor.callWhenRunning(_callFromGateway)
