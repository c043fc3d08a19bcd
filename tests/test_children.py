"""The supervisor's handles on its children: signals never reach the wrong process."""

from __future__ import annotations

import signal

from cluster.children import Child, describeExit, signalName


def test_a_child_that_never_started_is_never_signalled():
    child = Child("worker", 0)
    assert child.pid is None
    child.signal(signal.SIGKILL)  # no process: nothing happens (never os.kill(0, ...))


def test_every_signal_number_has_a_name():
    assert signalName(signal.SIGTERM) == "SIGTERM"
    assert signalName(signal.SIGRTMIN + 3) == "SIGRTMIN+3"
    assert signalName(99) == "signal 99"
    assert describeExit(-37) == "signal SIGRTMIN+3"
    assert describeExit(3) == "exit status 3"
