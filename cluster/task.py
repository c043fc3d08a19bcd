"""``LoopingCall``: call a function every N seconds, as Twisted's ``task.LoopingCall``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cluster.defer import Deferred


class LoopingCall:
    """Calls ``f(*a, **kw)`` every ``interval`` seconds on ``clock`` (the reactor unless
    set) from ``start`` until ``stop``; the Deferred ``start`` returns fires on ``stop``
    (or fails with what ``f`` raised, which also ends the loop)."""

    def __init__(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.f, self.a, self.kw = f, a, kw
        self.running = False
        self.interval: float | None = None
        self.clock: Any = None
        self._call: Any = None
        self._deferred: Deferred | None = None

    def start(self, interval: float, now: bool = True) -> Deferred:
        if self.running:
            raise RuntimeError("LoopingCall is already running")
        if self.clock is None:
            from cluster.reactor import reactor

            self.clock = reactor
        self.running = True
        self.interval = interval
        d = self._deferred = Deferred()
        if now:
            self()
        else:
            self._schedule()
        return d

    def stop(self) -> None:
        if not self.running:
            raise RuntimeError("LoopingCall is not running")
        self.running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        d, self._deferred = self._deferred, None
        d.callback(self)

    def __call__(self) -> None:
        self._call = None
        try:
            self.f(*self.a, **self.kw)
        except Exception:
            self.running = False
            d, self._deferred = self._deferred, None
            d.errback()
            return
        if self.running:
            self._schedule()

    def _schedule(self) -> None:
        self._call = self.clock.callLater(self.interval, self)
