"""The supervisors of a many-host cluster keep each other informed: which process serves
each of their workers (and at which tcp:// endpoint), and that they are alive.

Every heartbeat interval each supervisor calls ``cluster.host`` on every other host's
supervisor, whose answer is its report: host, incarnation, workers and their endpoints,
its processes for ``cluster status``. Only answers to our own calls are believed: the
call went to that host's configured address, and with CurveZMQ to its public key, so
only that host could have answered, whereas anyone holding some host's key could call us
claiming to be any host. A host not heard
from for the heartbeat timeout (measured here, on the monotonic clock: the hosts' clocks
need not agree) is lost: its workers leave the announcement this supervisor makes to its
children, so calls to them fail with NodeLost at once and their slots have nobody
(the default store answers -CLUSTERDOWN). A host heard from again with a new incarnation
(it restarted) serves again. Nobody takes over a lost host's slots: the map is fixed by
the configuration, so a partition cannot make two owners.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from cluster.failure import Failure
from cluster.hosts import Host, tcpEndpoint, workerNodes
from cluster.logs import Episodes
from cluster.membership import Peer
from cluster.rpc import RpcNode, expose

log = logging.getLogger("cluster")


class RemoteHost:
    """What this supervisor knows of another host."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.name = host.name
        self.nodes = set(workerNodes(host.name, host.workers))
        self.peer = Peer(f"{host.name}/supervisor", 0, tcpEndpoint(host.address, host.port))
        self.state = "unknown"  # never heard from; then "up" or "lost"
        self.incarnation: str | None = None
        self.serving: dict[str, list] = {}  # node -> [pid, endpoint]
        self.others: list[list] = []  # [node, pid, endpoint] of its other live workers
        self.rows: list[dict[str, Any]] = []  # its processes, as its status shows them
        self.lastHeard = 0.0
        self.asking = False


class HostLink:
    """This supervisor's side of the link with every other host."""

    def __init__(self, rpc: RpcNode, hosts: list[Host], me: str, slots: int,
                 timeout: float, interval: float, report: Callable[[], dict[str, Any]],
                 changed: Callable[[], None]) -> None:
        self.rpc = rpc
        self.me = me
        # the shard map's inputs, which every host must share: hosts in order, slots
        self.map = [[h.name, h.workers] for h in hosts] + [slots]
        self.timeout = timeout
        self.interval = interval
        self.incarnation = uuid.uuid4().hex  # tells a restarted host from the old one
        self.report = report  # this host's {"serving", "others", "rows"}
        self.changed = changed  # the remote workers changed: announce them
        self.remotes = {h.name: RemoteHost(h) for h in hosts if h.name != me}
        self.refused = Episodes(log, "ignored a host report: %s", rpc.reactor)
        expose("cluster.host")(self.ownReport)

    def ownReport(self) -> dict[str, Any]:
        """What another host's supervisor asks of this one."""
        return {"host": self.me, "incarnation": self.incarnation, "map": self.map,
                **self.report()}

    def tick(self) -> None:
        """Ask every host we are not already asking; declare lost the silent ones."""
        now = time.monotonic()
        for remote in self.remotes.values():
            if remote.state == "up" and now - remote.lastHeard > self.timeout:
                self._lose(remote, now)
            if not remote.asking:
                self._ask(remote)

    def _ask(self, remote: RemoteHost) -> None:
        remote.asking = True

        def done(result: Any) -> None:
            remote.asking = False
            if not isinstance(result, Failure):
                self._heard(result, remote)

        limit = max(1.0, min(self.timeout, 4 * self.interval))
        self.rpc.callPeer(remote.peer, "cluster.host", (), {}, limit).addBoth(done)

    # -- what we hear ------------------------------------------------------------------------

    def _heard(self, report: Any, asked: RemoteHost) -> None:
        remote, why = self._check(report)
        if remote is not None and remote is not asked:
            remote, why = None, f"host {asked.name} answered as {remote.name}"
        if remote is None:
            self.refused.record(why)
            return
        remote.lastHeard = time.monotonic()
        serving = {node: [int(pid), endpoint] for node, (pid, endpoint)
                   in report["serving"].items()}
        others = [[n, int(p), e] for n, p, e in report["others"]]
        joined = remote.state != "up" or remote.incarnation != report["incarnation"]
        if joined:
            log.warning("host %s is %s (incarnation %s)", remote.name,
                        "back" if remote.state == "lost" else "up", report["incarnation"][:8])
        remote.state, remote.incarnation = "up", report["incarnation"]
        remote.rows = [{**row, "host": remote.name} for row in report["rows"]
                       if isinstance(row, dict)]
        if joined or serving != remote.serving or others != remote.others:
            remote.serving, remote.others = serving, others
            self.changed()

    def _check(self, report: Any) -> tuple[RemoteHost | None, str]:
        """The host a report comes from if it is well formed and agrees with our
        configuration (else None, and why)."""
        if not isinstance(report, dict):
            return None, "not a map"
        host = report.get("host")
        remote = self.remotes.get(host) if isinstance(host, str) else None
        if remote is None:
            return None, f"from {report.get('host')!r}, not another host of [[hosts]]"
        if report.get("map") != self.map:
            return None, (f"host {remote.name} has another shard map: its [[hosts]] (name, "
                          f"workers) and slots are {report.get('map')!r}, ours {self.map!r}")
        try:
            entries = [(n, *where) for n, where in report["serving"].items()]
            entries += [tuple(entry) for entry in report["others"]]
            good = isinstance(report["incarnation"], str) and isinstance(report["rows"], list)
            good = good and all(_entry(entry, remote.nodes) for entry in entries)
        except (KeyError, TypeError, ValueError, AttributeError):
            good = False
        if not good:
            return None, f"a malformed report from host {remote.name}"
        return remote, ""

    def heardAll(self, now: float) -> None:
        """Our own loop stood still: count the other hosts' silence from ``now``."""
        for remote in self.remotes.values():
            remote.lastHeard = max(remote.lastHeard, now)

    def _lose(self, remote: RemoteHost, now: float) -> None:
        log.warning("host %s lost: no answer for %.1fs; its slots have no owner until it "
                    "returns", remote.name, now - remote.lastHeard)
        remote.state = "lost"
        remote.serving, remote.others = {}, []
        if remote.peer.dealer is not None:  # dial again: it may be back at a new address
            remote.peer.dealer.close()
            remote.peer.dealer = None
        for row in remote.rows:
            row["state"] = "lost"
        self.changed()

    # -- what we tell ------------------------------------------------------------------------

    def serving(self) -> dict[str, list]:
        """Every live host's workers: ``{node: [pid, endpoint]}``."""
        return {node: where for r in self.remotes.values() for node, where in r.serving.items()}

    def others(self) -> list[list]:
        return [entry for r in self.remotes.values() for entry in r.others]

    def status(self) -> list[dict[str, Any]]:
        """The other hosts for ``cluster status``: name, state and processes."""
        return [{"name": r.name, "rpc": f"{r.host.address}:{r.host.port}", "state": r.state,
                 "processes": r.rows} for r in self.remotes.values()]


def _entry(entry: tuple, nodes: set[str]) -> bool:
    """``(node, pid, endpoint)`` names one of the host's workers at a tcp:// endpoint."""
    if len(entry) != 3:
        return False
    node, pid, endpoint = entry
    return (node in nodes and type(pid) is int and isinstance(endpoint, str)
            and endpoint.startswith("tcp://"))
