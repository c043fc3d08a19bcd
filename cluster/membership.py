"""Who serves what, as one process sees it: the incarnation (the process) serving each
node, and the route of each slot (here, another process, frozen while its state moves,
or nobody while its node is down).

The supervisor's announcements say who serves each node; a shard handoff freezes slots
on the old owner and assigns them to the new one ahead of the next announcement, which
clears the assignment once it agrees. ``cluster.rpc.RpcNode`` is a ``Membership``: it
routes calls by these routes and fails the calls pending on a lost incarnation.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from cluster.hosts import HostMap, localName, workerNodes
from cluster.shards import keyBytes, keySlot, ownerOfSlot

log = logging.getLogger("cluster")

HERE = True  # route of a slot this process serves
FROZEN = None  # route of a slot whose state is moving: calls for it wait
NOBODY = False  # route of a slot whose node is not up


class Peer:
    """One incarnation (one process) of a node: where it listens and what we await from it."""

    def __init__(self, node: str, pid: int, endpoint: str | None) -> None:
        self.node = node
        self.pid = pid
        self.endpoint = endpoint
        self.dealer: Any = None  # the RPC node's ZeroMQ socket to it, once dialled
        self.lost = False

    def __repr__(self) -> str:
        return f"<{self.node} pid {self.pid}>"


class Membership:
    """The nodes, their incarnations and the slot routes of one process."""

    def __init__(self, node: str, pid: int, endpoint: str, workers: int, slots: int,
                 successor: bool = False, hostMap: HostMap | None = None) -> None:
        self.node = node
        self.workers = workers  # of this host
        self.hostMap = hostMap  # every host's workers, when the cluster spans several
        self.slots = slots
        self.me = Peer(node, pid, endpoint)
        self.incarnations: dict[str, Peer] = {endpoint: self.me}  # by endpoint
        # who serves each node now; a successor serves its node only once announced
        self.successor = successor
        self.peers: dict[str, Peer] = {} if successor else {node: self.me}
        self.epoch = 0  # of the supervisor's last announcement
        self.frozen: set[int] = set()
        self.assigned: dict[int, Peer] = {}  # slot -> owner, ahead of the announcement
        self.loading: dict[int, set[int]] = {}  # move id -> slots coming in (not served yet)
        self.routeVersion = 0  # bumped by every change of ``route``
        self.owners: list[str] = []  # slot -> node name
        self.route: list[Any] = []  # slot -> HERE, FROZEN, NOBODY or the owner's Peer
        self.allHere = False
        self.routeListeners: list[Callable[[], Any]] = []
        self.workerPorts: int | None = None  # worker-N's own port is this + N, if set

    def incarnation(self, node: str, pid: int, endpoint: str) -> Peer:
        """The peer for the process ``pid`` listening at ``endpoint`` (one per process)."""
        peer = self.incarnations.get(endpoint)
        if peer is None or peer.pid != pid:
            if peer is not None:
                self._lose(peer, f"{peer.node} (pid {peer.pid}) is gone")
            peer = self.incarnations[endpoint] = Peer(node, pid, endpoint)
        return peer

    def setPeers(self, peers: dict[str, Any], workers: int | None = None,
                 epoch: int | None = None, others: list | None = None) -> None:
        """The supervisor's word on who serves each node: ``{node: [pid, endpoint]}``,
        the worker count, the announcement's epoch, and ``[[node, pid, endpoint]]`` of
        every other live process (replaced ones finishing their work, successors not yet
        serving). An incarnation in neither has exited: the calls pending on it fail
        with NodeLost."""
        if workers is not None:
            self.workers = workers
        if epoch is not None:
            self.epoch = epoch
        current = {node: self.incarnation(node, pid, endpoint)
                   for node, (pid, endpoint) in peers.items() if isinstance(endpoint, str)}
        if self.node not in current and self.node != "supervisor" and not self.successor:
            current[self.node] = self.me  # our own node, until someone else is named
        if current.get(self.node) is self.me:
            self.successor = False  # announced: from now on a process like any other
        alive = {id(p) for p in current.values()}
        for node, pid, endpoint in others or ():
            alive.add(id(self.incarnation(node, pid, endpoint)))
        for endpoint, peer in list(self.incarnations.items()):
            if peer is not self.me and id(peer) not in alive:
                self._lose(peer, f"{peer.node} (pid {peer.pid}) is gone")
                del self.incarnations[endpoint]
        self.peers = current
        self._rebuildRoutes()

    def forget(self, endpoint: str) -> None:
        """The process at ``endpoint`` is gone (for nodes that track processes themselves,
        such as the supervisor's)."""
        peer = self.incarnations.pop(endpoint, None)
        if peer is not None and peer is not self.me:
            self._lose(peer, f"{peer.node} (pid {peer.pid}) is gone")

    def freeze(self, slots: list[int]) -> None:
        """Their state is moving away: calls for them wait (see ``thaw``/``assign``)."""
        self.frozen.update(slots)
        self._rebuildRoutes()

    def thaw(self, slots: list[int]) -> None:
        """The move was called off: serve them again."""
        self.frozen.difference_update(slots)
        self._rebuildRoutes()

    def assign(self, slots: list[int], owner: Peer) -> None:
        """``owner`` serves ``slots`` from now on (a handoff of them is done), whatever
        the announced map says, until it says the same (or ``owner`` is gone)."""
        for slot in slots:
            self.assigned[slot] = owner
        self.frozen.difference_update(slots)
        self._rebuildRoutes()

    def loaded(self, moveId: int) -> set[int] | None:
        """A move into this process is over (committed or called off): its slots, if it
        was known; route listeners hear of it."""
        slots = self.loading.pop(moveId, None)
        if slots is not None:
            self._rebuildRoutes()
        return slots

    def workerIncarnations(self) -> list[Peer]:
        """Every live worker process known here: those serving a node, those replaced
        and finishing, and successors still loading their shards."""
        return [p for p in self.incarnations.values()
                if localName(p.node).startswith("worker-") and not p.lost]

    def _rebuildRoutes(self) -> None:
        names, slots = self.nodes(), self.slots
        owners = [names[ownerOfSlot(s, len(names), slots)] for s in range(slots)]
        assigned = self.assigned
        for slot, peer in list(assigned.items()):
            if peer.lost or self.peers.get(owners[slot]) is peer:
                del assigned[slot]  # the announced map caught up (or the owner died)
        route: list[Any] = []
        for slot, name in enumerate(owners):
            peer = assigned.get(slot) or self.peers.get(name)
            if peer is not None:
                owners[slot] = peer.node
            if slot in self.frozen:
                route.append(FROZEN)
            elif peer is None or peer.lost:
                route.append(NOBODY)
            else:
                route.append(HERE if peer is self.me else peer)
        self.owners, self.route = owners, route
        self.allHere = all(where is HERE for where in route)  # one worker: no lookups
        self.routeVersion += 1
        self._routesRebuilt()
        for listener in list(self.routeListeners):
            try:
                listener()
            except Exception:
                log.error("%s: route listener failed:\n%s", self.node,
                          traceback.format_exc())

    def _routesRebuilt(self) -> None:
        """What the node does first when routes change (serve the calls it held)."""

    def _lose(self, peer: Peer, why: str) -> None:
        """An incarnation is gone: fail what is pending on it (the node does that)."""
        peer.lost = True

    def slotOf(self, key: Any) -> int:
        return keySlot(key if type(key) is bytes else keyBytes(key)) % self.slots

    def nodes(self) -> list[str]:
        """Every worker node of the cluster, in the shard map's order."""
        if self.hostMap is not None:
            return list(self.hostMap.names)
        return workerNodes(None, self.workers)

    def shardOf(self, key: Any) -> str:
        """The node owning ``key``'s slot."""
        return self.owners[self.slotOf(key)]

