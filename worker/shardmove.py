"""Moving shards between worker processes: both sides of a shard handoff (a reload's
successor taking over, a resize, a worker leaving).

The supervisor tells the old owner ``["move", {"id", "to": [[node, pid, endpoint,
slots]], "retiring", "deadline"}]``. The old owner freezes those of the slots it serves
(calls and commands for them wait), tells each new owner which slots are coming (so a
change of routes meanwhile does not make it forget what it is loading), streams their
state, chunk by chunk, from the app's ``exportShard(slots)``, which the new owner takes
with ``importShard(chunk)``; then it commits: the new owner serves the slots from that
moment, and the old one passes on whatever still reaches it (``RpcNode.assign``). It
reports ``["moving", id]`` now and then, then ``["moved", id, stats]`` or ``["moveFailed",
id, why]``. A failure before the commit calls the move off: the new owner forgets what
it loaded (told by the old owner, and again by the supervisor's ``moveAborted``), the
old one serves the slots again. A commit whose answer is lost is asked again until it is
answered or the new owner is known dead, so the slots never have two owners; a move
that arrives after its deadline (its process was stopped meanwhile) is refused, and a
new owner refuses a move of slots it already serves.

Apps that keep state per shard provide three methods on their Factory (the default store
does); an app without them moves no state, and a new owner of its shards starts empty:

- ``exportShard(slots) -> iterable of chunks`` (msgpack-able, a few MiB at most each);
- ``importShard(chunk)``: may return a Deferred;
- ``forgetShard(slots)``: drop the state of these slots. Called whenever slots stop
  being this process's own (after a committed move away, or a map change), so no stale
  copy of a shard survives to be served again later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from cluster import rpc
from cluster.defer import Deferred, DeferredList, inlineCallbacks
from cluster.error import TimeoutError
from cluster.failure import Failure
from cluster.membership import FROZEN, HERE
from cluster.rpc import RpcNode

log = logging.getLogger("cluster")

WINDOW = 4  # chunks in flight to one new owner
PROGRESS_EVERY = 1.0  # seconds between "still moving" reports to the supervisor

_mover: ShardMover | None = None  # this process's, for the calls other workers make


class ShardMover:
    """This worker's side of every shard handoff it takes part in."""

    def __init__(self, node: RpcNode, factory: Any, report: Callable[[list], Any]) -> None:
        global _mover
        self.rpc = node
        self.factory = factory
        self.report = report
        self.retiring = False  # moving everything away before exiting: nothing to forget
        self.lastReport = 0.0
        self.incoming = node.loading  # move id -> slots being loaded here (the node's own
        # record, which the store reads too)
        self._mine = self._owned()
        node.routeListeners.append(self._routesChanged)
        _mover = self

    # -- the slots this process holds the state of --------------------------------------------

    def _owned(self) -> set[int]:
        return {s for s, r in enumerate(self.rpc.route) if r is HERE or r is FROZEN}

    def _routesChanged(self) -> None:
        now = self._owned()
        lost = self._mine - now
        self._mine = now
        for loading in self.incoming.values():
            lost -= loading  # not ours yet, but what is being loaded for them stays
        if lost and not self.retiring:
            self.forget(sorted(lost))

    def forget(self, slots: list[int] | set[int]) -> None:
        hook = getattr(self.factory, "forgetShard", None)
        if hook is not None and slots:
            hook(sorted(slots))

    # -- the old owner ----------------------------------------------------------------------

    def move(self, spec: dict[str, Any]) -> None:
        """Move slots to other processes, as the supervisor asked; report the outcome.
        Only slots served here move (a slot already handed over by an earlier attempt
        is left alone), so asking again after a failure is safe."""
        moveId = spec.get("id")
        if time.monotonic() > spec.get("deadline", float("inf")):
            log.warning("a move that came too late (the supervisor gave up on it): refused")
            self.report(["moveFailed", moveId, "it came too late"])
            return
        try:
            route = self.rpc.route
            plans = [(self.rpc.incarnation(node, pid, endpoint),
                      [s for s in slots if route[s] is HERE])
                     for node, pid, endpoint, slots in spec["to"]]
        except Exception as e:
            log.error("a malformed move %r: %s", spec, e)
            self.report(["moveFailed", moveId, f"malformed move: {e}"])
            return
        self.retiring = bool(spec.get("retiring"))  # then nothing is worth forgetting
        self.rpc.freeze([s for _, slots in plans for s in slots])
        started = self.lastReport = time.monotonic()
        log.info("moving %d slot(s) to %s", sum(len(s) for _, s in plans),
                 ", ".join(f"{peer.node} (pid {peer.pid})" for peer, _ in plans))

        def done(outcomes: list) -> None:
            failures = [r for ok, r in outcomes if not ok]
            if not failures:
                seconds = time.monotonic() - started
                log.info("moved %d chunk(s) in %.3fs", sum(r for _, r in outcomes), seconds)
                self.report(["moved", moveId, {"seconds": seconds}])
                return
            self.retiring = False  # this process goes on serving what stayed
            why = failures[0].getErrorMessage()
            log.error("moving slots failed, those not handed over stay here: %s", why)
            self.report(["moveFailed", moveId, why])

        DeferredList([self._moveTo(moveId, peer, slots) for peer, slots in plans],
                     consumeErrors=True).addCallback(done)

    @inlineCallbacks
    def _moveTo(self, moveId: int, peer: Any, slots: list[int]) -> Any:
        if not slots:
            return 0
        exporter = getattr(self.factory, "exportShard", None)
        try:
            yield self.rpc.callPeer(peer, "cluster.shard.begin", (moveId, slots), {})
            chunks = iter(exporter(slots)) if exporter is not None else iter(())
            sent = yield self._stream(moveId, peer, chunks)
        except Exception:
            self.rpc.thaw(slots)
            self.rpc.callPeer(peer, "cluster.shard.abort", (moveId, slots), {}).addErrback(
                lambda _: None)
            raise
        while True:
            try:
                yield self.rpc.callPeer(peer, "cluster.shard.commit", (moveId, slots), {})
                break
            except TimeoutError:
                continue  # it may have committed: ask again (it answers, or it dies)
            except Exception:
                self.rpc.thaw(slots)  # it died, or refused: it did not commit
                raise
        self.rpc.assign(slots, peer)  # and _routesChanged forgets them here
        return sent

    def _stream(self, moveId: int, peer: Any, chunks: Iterator[Any]) -> Deferred:
        """Send every chunk with at most ``WINDOW`` unanswered; fires with the count. A
        chunk the app wraps in ``rpc.Large`` holds big values: it goes out in parts
        straight from where they are. Progress is reported to the supervisor."""
        done = Deferred()
        state = {"inFlight": 0, "sent": 0, "exhausted": False}

        def fail(failure: Failure) -> None:
            if not done.called:
                done.errback(failure)

        def acked(_: Any) -> None:
            state["inFlight"] -= 1
            now = time.monotonic()
            if now - self.lastReport > PROGRESS_EVERY:
                self.lastReport = now
                self.report(["moving", moveId])
            pump()

        def pump() -> None:
            while not done.called and not state["exhausted"] and state["inFlight"] < WINDOW:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    state["exhausted"] = True
                    break
                except Exception:
                    fail(Failure())
                    return
                large = type(chunk) is rpc.Large
                state["inFlight"] += 1
                state["sent"] += 1
                self.rpc.callPeer(peer, "cluster.shard.load",
                                  (moveId, chunk.value if large else chunk), {},
                                  large=large).addCallbacks(acked, fail)
            if state["exhausted"] and not state["inFlight"] and not done.called:
                done.callback(state["sent"])

        pump()
        return done

    # -- the new owner ------------------------------------------------------------------------

    def aborted(self, moveId: int) -> None:
        """A move into this process was called off (its old owner failed or died): what
        was loaded for it goes."""
        slots = self.rpc.loaded(moveId)
        if slots:
            self.forget(slots)


# -- the new owner: what the old one calls ------------------------------------------------------

def _current() -> ShardMover:
    if _mover is None:
        raise RuntimeError("this process takes no shards")
    return _mover


def _slots(slots: Any) -> list[int]:
    if not (isinstance(slots, list) and all(type(s) is int for s in slots)):
        raise TypeError("slots must be a list of ints")
    return slots


@rpc.expose("cluster.shard.begin")
def _begin(moveId: int, slots: list[int]) -> None:
    mover = _current()
    route = mover.rpc.route
    serving = [s for s in _slots(slots) if route[s] is HERE or route[s] is FROZEN]
    if serving:  # a move that should not be: never let it touch what is served here
        raise ValueError(f"{len(serving)} of these slots are served here already")
    mover.incoming[moveId] = set(slots)
    mover.forget(slots)  # a stale copy, should one be here, must not mix with the new


@rpc.expose("cluster.shard.load")
def _load(moveId: int, chunk: Any) -> Any:
    mover = _current()
    if moveId not in mover.incoming:
        raise ValueError(f"no move {moveId!r} is coming in")
    hook = getattr(mover.factory, "importShard", None)
    if hook is None:
        raise TypeError("this app has no importShard")
    return hook(chunk)


@rpc.expose("cluster.shard.commit")
def _commit(moveId: int, slots: list[int]) -> bool:
    mover = _current()
    mover.rpc.assign(_slots(slots), mover.rpc.me)
    mover.rpc.loaded(moveId)
    return True


@rpc.expose("cluster.shard.abort")
def _abort(moveId: int, slots: list[int]) -> None:
    mover = _current()
    mover.rpc.loaded(moveId)
    mover.forget(_slots(slots))
