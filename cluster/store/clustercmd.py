"""The store's CLUSTER command: Redis Cluster's view of this cluster.

KEYSLOT is Redis's hash slot (``cluster.shards``); COUNTKEYSINSLOT and GETKEYSINSLOT
ask the slot's owner; MYID is a node id stable per worker index for the life of the
cluster. With worker ports (``--worker-ports``), INFO, SLOTS, SHARDS and NODES describe
every worker as a node at its own port with its range of slots, on the gateway's port
as on the workers' own, so a cluster-aware client (redis-py's RedisCluster, ``redis-cli
-c``) sends each command straight to the worker that owns its key. Without them, they
describe one node, the address the client connected to, serving all 16384 slots.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from cluster.hosts import workerIndex
from cluster.membership import FROZEN, HERE, NOBODY
from cluster.shards import SLOTS, keySlot
from cluster.store import resp
from cluster.store.keyspace import Keyspace

_SUBCOMMANDS = (b"KEYSLOT", b"COUNTKEYSINSLOT", b"GETKEYSINSLOT", b"MYID", b"INFO",
                b"SLOTS", b"NODES", b"SHARDS")
_INVALID_SLOT = resp.error("ERR Invalid or out of range slot")
CROSSSLOT = resp.error("CROSSSLOT Keys in request don't hash to the same slot")


def moved(slot: int, host: str, base: int, owner: str) -> bytes:
    """``-MOVED slot host:port`` to the worker port of node ``owner`` (worker-N)."""
    return resp.error(f"MOVED {slot} {_hostText(host)}:{base + workerIndex(owner)}")


def _hostText(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def nodeId(cluster: str, who: str) -> str:
    """A 40-hex-digit node id, the same for ``who`` (a worker, the gateway) for as long
    as the cluster ``cluster`` keeps its name."""
    return hashlib.sha1(f"{cluster}/{who}".encode()).hexdigest()


def clusterName(node: Any) -> str:
    """The cluster's name: its run directory's, where this node's socket lives."""
    return os.path.basename(os.path.dirname(node.path))


def keysInSlot(ks: Keyspace, slot: int, count: int) -> list[bytes] | int:
    """Up to ``count`` keys of ``slot`` held here, or (``count`` < 0) how many."""
    keys = ks.keysOfSlot(slot)
    return len(keys) if count < 0 else keys[:count]


def _nodes(node: Any, local: tuple[str, int], direct: bool) -> list[tuple]:
    """(first slot, last slot, host, port, id, is this connection's node) per node."""
    name = clusterName(node)
    host, port = local
    if not node.workerPorts:
        return [(0, SLOTS - 1, host, port, nodeId(name, "gateway"), True)]
    runs: list[list] = []
    for slot, owner in enumerate(node.owners):
        if runs and runs[-1][2] == owner:
            runs[-1][1] = slot
        else:
            runs.append([slot, slot, owner])
    return [(first, last, host, node.workerPorts + workerIndex(owner), nodeId(name, owner),
             direct and owner == node.node) for first, last, owner in runs]


def command(args: list[bytes], node: Any, ks: Keyspace, local: tuple[str, int],
            askOwner: Any, direct: bool = False) -> Any:
    """The reply to ``CLUSTER ...`` (bytes, a Deferred, or None to wait for a moving
    slot). ``local`` is the address the client connected to, ``direct`` whether that is
    a worker's own port; ``askOwner(peer, slot, count)`` asks another worker for its
    keys of ``slot``."""
    sub = args[1].upper()
    if sub not in _SUBCOMMANDS:
        return resp.error(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                          f"Try CLUSTER HELP.")
    rest = args[2:]
    if sub == b"KEYSLOT":
        return resp.integer(keySlot(rest[0])) if len(rest) == 1 else _arity(sub)
    if sub in (b"COUNTKEYSINSLOT", b"GETKEYSINSLOT"):
        if len(rest) != (1 if sub == b"COUNTKEYSINSLOT" else 2):
            return _arity(sub)
        slot = _number(rest[0])
        if slot is None or not 0 <= slot < SLOTS:
            return _INVALID_SLOT
        count = -1
        if sub == b"GETKEYSINSLOT":
            count = _number(rest[1])
            if count is None or count < 0:
                return resp.error("ERR Invalid number of keys")
        encode = resp.integer if count < 0 else resp.bulks
        where = node.route[slot % node.slots]
        if where is HERE:
            return encode(keysInSlot(ks, slot, count))
        if where is FROZEN:
            return None
        if where is NOBODY:
            return resp.error("CLUSTERDOWN the slot's worker is not available")
        return askOwner(where, slot, count).addCallback(encode)
    if rest:
        return _arity(sub)
    name = clusterName(node)
    if sub == b"MYID":
        return resp.bulk(nodeId(name, node.node).encode())
    nodes = _nodes(node, local, direct)
    if sub == b"SLOTS":
        return resp.array([resp.array([resp.integer(first), resp.integer(last), resp.array([
            resp.bulk(host.encode()), resp.integer(port), resp.bulk(nid.encode())])])
            for first, last, host, port, nid, _ in nodes])
    if sub == b"SHARDS":
        return resp.array([resp.array([
            resp.bulk(b"slots"), resp.array([resp.integer(first), resp.integer(last)]),
            resp.bulk(b"nodes"), resp.array([resp.array([
                resp.bulk(b"id"), resp.bulk(nid.encode()), resp.bulk(b"port"),
                resp.integer(port), resp.bulk(b"ip"), resp.bulk(host.encode()),
                resp.bulk(b"endpoint"), resp.bulk(host.encode()), resp.bulk(b"role"),
                resp.bulk(b"master"), resp.bulk(b"replication-offset"), resp.integer(0),
                resp.bulk(b"health"), resp.bulk(b"online")])])])
            for first, last, host, port, nid, _ in nodes])
    if sub == b"NODES":
        return resp.bulk("".join(
            f"{nid} {_hostText(host)}:{port}@0 {'myself,' if mine else ''}master - 0 0 "
            f"{i + 1} connected {first}-{last}\n"
            for i, (first, last, host, port, nid, mine) in enumerate(nodes)).encode())
    served = sum(1 for where in node.route if where is not NOBODY)
    state = "ok" if served == len(node.route) else "fail"
    return resp.bulk((f"cluster_state:{state}\r\ncluster_slots_assigned:{SLOTS}\r\n"
                      f"cluster_slots_ok:{SLOTS if state == 'ok' else 0}\r\n"
                      f"cluster_slots_pfail:0\r\ncluster_slots_fail:"
                      f"{0 if state == 'ok' else SLOTS}\r\n"
                      f"cluster_known_nodes:{len(nodes)}\r\ncluster_size:{len(nodes)}\r\n"
                      f"cluster_current_epoch:1\r\ncluster_my_epoch:1\r\n"
                      f"cluster_workers:{node.workers}\r\n").encode())


def _number(text: bytes) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _arity(sub: bytes) -> bytes:
    return resp.error(f"ERR wrong number of arguments for 'cluster|{sub.decode().lower()}' "
                      f"command")
