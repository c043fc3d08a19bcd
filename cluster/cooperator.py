"""Twisted's ``Cooperator``: iterators run a step at a time, in turns, for a slice of
each reactor iteration, so long work shares the loop; a step that yields a Deferred
holds that iterator until it fires. ``cluster.task`` exports these names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from cluster.defer import Deferred
from cluster.failure import Failure

__all__ = ["Cooperator", "CooperativeTask", "SchedulerError", "SchedulerStopped",
           "TaskFinished", "TaskDone", "TaskStopped", "TaskFailed", "NotPaused"]


class SchedulerError(Exception):
    """A task or its Cooperator was used in a way its state does not allow."""


class SchedulerStopped(SchedulerError):
    """The Cooperator was stopped, ending the task (or refusing a new one)."""


class TaskFinished(SchedulerError):
    """The task is over; it cannot be paused, resumed or stopped."""


class TaskDone(TaskFinished):
    """The task's iterator was exhausted."""


class TaskStopped(TaskFinished):
    """The task was stopped."""


class TaskFailed(TaskFinished):
    """The task's iterator raised, or a Deferred it yielded failed."""


class NotPaused(SchedulerError):
    """``resume`` of a task that is not paused."""


class CooperativeTask:
    """An iterator run by a ``Cooperator``: ``whenDone()``, ``pause``, ``resume``,
    ``stop``."""

    def __init__(self, iterator: Iterator[Any], cooperator: Cooperator) -> None:
        self._iterator = iterator
        self._cooperator = cooperator
        self._waiters: list[Deferred] = []
        self._pauses = 0
        self._waitingOn: Deferred | None = None
        self._completion: TaskFinished | SchedulerStopped | None = None  # once over
        self._outcome: Any = None  # the iterator, or the Failure whenDone fails with

    def whenDone(self) -> Deferred:
        """Fires with the iterator once it is exhausted; fails with what it raised (or a
        Deferred it yielded failed with), TaskStopped if stopped, SchedulerStopped if its
        Cooperator was."""
        d = Deferred()
        if self._completion is not None:
            self._fire(d)
        else:
            self._waiters.append(d)
        return d

    def pause(self) -> None:
        """Hold the task until a matching ``resume``; pauses nest."""
        self._checkRunning()
        self._pauses += 1
        self._cooperator._retire(self)

    def resume(self) -> None:
        """Undo one ``pause``."""
        self._checkRunning()
        if self._pauses == 0:
            raise NotPaused()
        self._pauses -= 1
        if not self._pauses and self._waitingOn is None:
            self._cooperator._admit(self)

    def stop(self) -> None:
        """No more steps: ``whenDone`` fails with TaskStopped."""
        self._checkRunning()
        self._finish(TaskStopped(), Failure(TaskStopped()))

    def _checkRunning(self) -> None:
        if self._completion is not None:
            raise self._completion

    def _step(self) -> None:
        try:
            result = next(self._iterator)
        except StopIteration:
            self._finish(TaskDone(), self._iterator)
            return
        except Exception:
            self._finish(TaskFailed(), Failure())
            return
        if isinstance(result, Deferred):  # wait for it before the next step
            self._waitingOn = result
            self._cooperator._retire(self)
            result.addCallbacks(self._resumeAfter, self._failedAfter)

    def _resumeAfter(self, _: Any) -> None:
        self._waitingOn = None
        if not self._pauses and self._completion is None:
            self._cooperator._admit(self)

    def _failedAfter(self, failure: Failure) -> None:
        self._waitingOn = None
        if self._completion is None:
            self._finish(TaskFailed(), failure)

    def _finish(self, completion: TaskFinished | SchedulerStopped, outcome: Any) -> None:
        self._completion, self._outcome = completion, outcome
        self._cooperator._forget(self)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._fire(d)

    def _fire(self, d: Deferred) -> None:
        if isinstance(self._outcome, Failure):
            d.errback(self._outcome)
        else:
            d.callback(self._outcome)


class Cooperator:
    """Runs iterators one step at a time, in turns, for up to ``slice`` seconds per
    reactor iteration, so that long work never stalls the loop."""

    def __init__(self, slice: float = 0.01, clock: Any = None) -> None:
        self.slice = slice
        self.clock = clock
        self._tasks: list[CooperativeTask] = []  # those ready for a step
        self._unfinished: dict[CooperativeTask, None] = {}  # paused and waiting too
        self._call: Any = None
        self.running = True

    def cooperate(self, iterator: Iterator[Any]) -> CooperativeTask:
        """Run ``iterator`` a step at a time with the others (a stopped Cooperator ends
        it at once with SchedulerStopped)."""
        task = CooperativeTask(iter(iterator), self)
        if self.running:
            self._unfinished[task] = None
            self._admit(task)
        else:
            task._finish(SchedulerStopped(), Failure(SchedulerStopped()))
        return task

    def coiterate(self, iterator: Iterator[Any]) -> Deferred:
        """Run ``iterator``; the Deferred fires with it once it is exhausted."""
        return self.cooperate(iterator).whenDone()

    def stop(self) -> None:
        """Stop every task (their ``whenDone`` fail with SchedulerStopped) and refuse
        new ones the same way."""
        self.running = False
        if self._call is not None:
            self._call.cancel()
            self._call = None
        for task in list(self._unfinished):
            task._finish(SchedulerStopped(), Failure(SchedulerStopped()))

    def _admit(self, task: CooperativeTask) -> None:
        if task not in self._tasks:
            self._tasks.append(task)
        self._wake()

    def _retire(self, task: CooperativeTask) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def _forget(self, task: CooperativeTask) -> None:
        self._retire(task)
        self._unfinished.pop(task, None)

    def _wake(self) -> None:
        if self._call is None and self._tasks and self.running:
            if self.clock is None:
                from cluster.reactor import reactor

                self.clock = reactor
            self._call = self.clock.callLater(0, self._tick)

    def _tick(self) -> None:
        self._call = None
        deadline = time.monotonic() + self.slice
        while self._tasks and time.monotonic() < deadline:
            for task in list(self._tasks):
                if task in self._tasks:
                    task._step()
        self._wake()
