"""``cluster run --metrics HOST:PORT``: the supervisor's window for Prometheus and people.

Serves ``/metrics`` (Prometheus text format), ``/status.json`` (the ``cluster status
--json`` document) and ``/`` (the live status page). A scrape asks every gateway and
worker for a snapshot with one small ``["metrics", seq]`` message and answers when all
have replied or ``ANSWER_WITHIN`` seconds have passed, whichever is first; no reactor
waits for it, and a process that does not answer in time is counted, not waited for.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from typing import Any

from cluster import exposition, statuspage
from cluster.config import splitHostPort
from cluster.defer import Deferred
from cluster.web import Response, WebFactory

log = logging.getLogger("cluster")

ANSWER_WITHIN = 1.0  # seconds a scrape waits for the processes' snapshots
# the page fetches nothing but status.json from here: no other origin, no external file
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
_LIVE = ("running", "draining")


class _Gathering:
    """One scrape's requests: who has yet to answer, what came, when it gives up."""

    def __init__(self) -> None:
        self.waiting: dict[Any, str] = {}  # child -> its node
        self.unreachable = 0  # asked, but its channel would not take the message
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.done = Deferred()
        self.sharers: list[Deferred] = []  # scrapes that came while this one gathered
        self.timer: Any = None


class Monitor:
    """Listens on the metrics address for the supervisor ``supervisor``."""

    def __init__(self, supervisor: Any, address: str) -> None:
        self.supervisor = supervisor
        self.reactor = supervisor.reactor
        self.host = socket.gethostname().split(".")[0]
        self.nextSeq = 0
        self.gatherings: dict[int, _Gathering] = {}
        host, port = splitHostPort(address, "metrics")
        routes = {"/metrics": self.metrics, "/status.json": self.statusJson,
                  "/": self.page, "/index.html": self.page}
        try:
            self.port = self.reactor.listenTCP(port, WebFactory(self.reactor, routes),
                                               interface=host)
        except OSError as e:
            raise SystemExit(f"cannot serve metrics on {address}: {e}") from e
        bound = self.port.getHost()
        self.address = f"[{bound.host}]:{bound.port}" if ":" in bound.host else \
            f"{bound.host}:{bound.port}"
        log.info("metrics and the status page on http://%s/", self.address)
        if not ipaddress.ip_address(bound.host).is_loopback:
            log.warning("the metrics port %s is reachable from other hosts, without "
                        "authentication: expose it only to a network you trust",
                        self.address)

    # -- the routes ------------------------------------------------------------------------

    def statusJson(self) -> Response:
        return Response(json.dumps(self.supervisor.status()).encode(), "application/json")

    def page(self) -> Response:
        return Response(statuspage.render(self.supervisor.status()), "text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_POLICY})

    def metrics(self) -> Deferred:
        def render(gathering: _Gathering) -> Response:
            body = exposition.render(self.supervisor.status(), gathering.snapshots, self.host,
                                     len(gathering.waiting) + gathering.unreachable)
            return Response(body, exposition.CONTENT_TYPE)

        return self.gather().addCallback(render)

    # -- gathering -------------------------------------------------------------------------

    def gather(self) -> Deferred:
        """Ask every live gateway and worker for its snapshot (the serving one of each
        node); fires with the gathering once all answered or the time is up. Scrapes
        that come while one is gathering share its answers: the processes are asked
        once, however many scrapers there are."""
        if self.gatherings:
            shared = Deferred()
            next(iter(self.gatherings.values())).sharers.append(shared)
            return shared
        self.nextSeq += 1
        seq = self.nextSeq
        asked: dict[str, Any] = {}
        for child in self.supervisor.children:
            if child.state in _LIVE and child.channel is not None and not child.channel.closed:
                asked[child.node] = child  # the later one of a node (a successor) wins
        gathering = _Gathering()
        for node, child in asked.items():
            if child.channel.send(["metrics", seq]):
                gathering.waiting[child] = node
            else:
                gathering.unreachable += 1
        if not gathering.waiting:
            gathering.done.callback(gathering)
            return gathering.done
        self.gatherings[seq] = gathering
        gathering.timer = self.reactor.callLater(ANSWER_WITHIN, self._finish, seq)
        return gathering.done

    def answered(self, child: Any, seq: Any, snapshot: Any) -> None:
        """A child's answer to the scrape ``seq`` (a late one is dropped)."""
        gathering = self.gatherings.get(seq) if isinstance(seq, int) else None
        if gathering is None or child not in gathering.waiting or not isinstance(snapshot,
                                                                                 dict):
            return
        gathering.snapshots[gathering.waiting.pop(child)] = snapshot
        if not gathering.waiting:
            self._finish(seq)

    def _finish(self, seq: int) -> None:
        gathering = self.gatherings.pop(seq, None)
        if gathering is None:
            return
        if gathering.timer is not None and gathering.timer.active():
            gathering.timer.cancel()
        for d in [gathering.done, *gathering.sharers]:
            d.callback(gathering)
