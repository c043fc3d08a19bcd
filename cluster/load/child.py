"""One load-generating process: its share of the connections, on its own reactor.

    python -m cluster.load.child SPEC_JSON

Prints JSON lines on stdout: ``{"done": n, "errors": n}`` a few times a second, then one
``{"final": true, ...}`` with the latency histogram (``cluster.load.histogram``) and a
few error samples.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cluster.load import workloads
from cluster.load.histogram import Histogram
from cluster.protocol import ClientFactory
from cluster.reactor import reactor


class Recorder:
    """Counts, budget and latencies for every connection of this process."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.issued = 0
        self.completed = 0
        self.errors = 0
        self.samples: list[str] = []
        self.hist = Histogram()
        self.stopped = False
        self.elapsed = 0.0
        self.onFinished: Any = lambda: None  # the request budget is used up

    def more(self) -> bool:
        if self.stopped or (self.budget is not None and self.issued >= self.budget):
            return False
        self.issued += 1
        return True

    def done(self, sentAt: float) -> None:
        now = reactor.seconds()
        self.completed += 1
        if self.finished():
            self.onFinished()
        self.hist.record(now - sentAt)

    def error(self, text: str) -> None:
        self.errors += 1
        if self.finished():
            self.onFinished()
        if len(self.samples) < 5:
            self.samples.append(text)

    def finished(self) -> bool:
        return self.budget is not None and self.completed + self.errors >= self.budget


class LoadFactory(ClientFactory):
    def __init__(self, protocol: type, recorder: Recorder, options: dict[str, Any],
                 connections: int) -> None:
        self.protocol = protocol
        self.recorder = recorder
        self.options = options
        self.connected: list[Any] = []
        self.alive = connections  # connecting or connected
        self.allGone: Any = lambda: None

    def buildProtocol(self, addr: Any) -> Any:
        p = self.protocol()
        p.factory, p.recorder, p.options = self, self.recorder, self.options
        self.connected.append(p)
        return p

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.recorder.error(f"connect: {reason.getErrorMessage()}")
        self._gone()

    def clientConnectionLost(self, connector: Any, reason: Any) -> None:
        if not self.recorder.stopped:
            self.recorder.error(f"connection lost: {reason.getErrorMessage()}")
        self._gone()

    def _gone(self) -> None:
        self.alive -= 1
        if self.alive <= 0:
            self.allGone()  # nothing left to wait for


def main() -> None:
    spec = json.loads(sys.argv[1])
    recorder = Recorder(spec.get("requests"))
    factory = LoadFactory(workloads.resolve(spec["workload"]), recorder, spec["options"],
                          spec["connections"])
    for _ in range(spec["connections"]):
        reactor.connectTCP(spec["host"], spec["port"], factory, timeout=10)

    def report(final: bool = False) -> None:
        line: dict[str, Any] = {"done": recorder.completed, "errors": recorder.errors}
        if final:
            line.update(final=True, hist=recorder.hist.to_dict(), samples=recorder.samples,
                        elapsed=recorder.elapsed)
        print(json.dumps(line), flush=True)

    def tick() -> None:
        report()
        if recorder.finished() or reactor.seconds() >= deadline:
            finish()
        else:
            reactor.callLater(0.25, tick)

    def finish(allGone: bool = False) -> None:
        if not recorder.stopped:
            recorder.stopped = True
            recorder.elapsed = reactor.seconds() - started
        if recorder.finished() or allGone:
            close()
        else:  # replies to requests already sent may still come
            reactor.callLater(2.0, close)

    def close() -> None:
        if closed:
            return
        closed.append(True)
        for p in factory.connected:
            if p.transport is not None:
                p.transport.abortConnection()
        report(final=True)
        reactor.stop()

    closed: list[bool] = []
    recorder.onFinished = lambda: reactor.callLater(0, finish)
    factory.allGone = lambda: reactor.callLater(0, finish, True)
    started = reactor.seconds()
    deadline = started + (spec.get("duration") or 1e9)
    reactor.callLater(0.25, tick)
    reactor.run()


if __name__ == "__main__":
    main()
