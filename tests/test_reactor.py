"""The reactor's own semantics: run/stop, triggers, threads, signals, raw descriptors."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from cluster.defer import Deferred, deferLater
from cluster.error import (
    CONNECTION_DONE,
    ConnectionDone,
    ReactorAlreadyRunning,
    ReactorNotRestartable,
    ReactorNotRunning,
)
from cluster.interfaces import IReadDescriptor
from cluster.reactor import Reactor, reactor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_singleton_is_a_reactor():
    assert isinstance(reactor, Reactor)
    from cluster.reactor import reactor as again

    assert again is reactor


def test_run_twice_raises(runner):
    r = runner.reactor
    caught = Deferred()

    def nested():
        try:
            r.run(installSignalHandlers=False)
        except ReactorAlreadyRunning as e:
            caught.callback(e)

    r.callWhenRunning(nested)
    assert isinstance(runner.run_until(caught), ReactorAlreadyRunning)


def test_cannot_restart_and_cannot_stop_when_stopped(runner):
    r = runner.reactor
    with pytest.raises(ReactorNotRunning):
        r.stop()
    r.callWhenRunning(r.stop)
    r.run(installSignalHandlers=False)
    assert not r.running
    with pytest.raises(ReactorNotRestartable):
        r.run(installSignalHandlers=False)
    with pytest.raises(ReactorNotRunning):
        r.stop()


def test_call_when_running_after_start_runs_now(runner):
    r = runner.reactor
    seen = []
    done = Deferred()

    def started():
        seen.append(r.running)
        r.callWhenRunning(seen.append, "immediate")
        done.callback(None)

    r.callWhenRunning(started)
    runner.run_until(done)
    assert seen == [True, "immediate"]


def test_shutdown_waits_for_before_trigger_deferreds():
    r = Reactor()
    order = []

    def before():
        order.append("before")
        return deferLater(r, 0.1, order.append, "deferred fired")

    r.addSystemEventTrigger("before", "shutdown", before)
    r.addSystemEventTrigger("during", "shutdown", order.append, "during")
    r.addSystemEventTrigger("after", "shutdown", order.append, "after")
    r.callWhenRunning(r.stop)
    start = time.monotonic()
    r.run(installSignalHandlers=False)
    assert time.monotonic() - start >= 0.09
    assert order == ["before", "deferred fired", "during", "after"]


def test_remove_system_event_trigger(runner):
    r = runner.reactor
    seen = []
    tid = r.addSystemEventTrigger("before", "shutdown", seen.append, "x")
    r.removeSystemEventTrigger(tid)
    r.callWhenRunning(r.stop)
    r.run(installSignalHandlers=False)
    assert seen == []


def test_stop_closes_open_connections(runner):
    r = runner.reactor
    from cluster.protocol import Factory, Protocol

    lost = []

    class P(Protocol):
        def connectionLost(self, reason):
            lost.append(reason)

    port = r.listenTCP(0, Factory.forProtocol(P), interface="127.0.0.1")
    c = socket.create_connection(("127.0.0.1", port.getHost().port))
    r.callLater(0.1, r.stop)
    r.run(installSignalHandlers=False)
    c.close()
    assert len(lost) == 1


def test_call_from_thread_wakes_the_loop_and_keeps_order(runner):
    r = runner.reactor
    done = Deferred()
    seen: dict[int, list] = {}
    nthreads, ncalls = 8, 500
    finished = []

    def record(tid, i):
        assert threading.current_thread() is threading.main_thread()
        seen.setdefault(tid, []).append(i)
        if i == ncalls - 1:
            finished.append(tid)
            if len(finished) == nthreads:
                done.callback(time.monotonic())

    def worker(tid):
        time.sleep(0.05)
        for i in range(ncalls):
            r.callFromThread(record, tid, i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    r.callWhenRunning(lambda: [t.start() for t in threads])
    start = time.monotonic()
    # nothing else is scheduled: without a wakeup the loop would sleep until the
    # 10 s deadline of run_until
    end = runner.run_until(done, timeout=10)
    for t in threads:
        t.join()
    assert all(seen[t] == list(range(ncalls)) for t in range(nthreads))
    assert end - start < 5


class Pipe(IReadDescriptor):
    """Implements only some of the interface's methods, as the seed's clients do."""

    def __init__(self, reactor, fd):
        self.reactor = reactor
        self.fd = fd
        self.data = b""
        self.lost = []

    def fileno(self):
        return self.fd

    def doRead(self):
        chunk = os.read(self.fd, 4096)
        if not chunk:
            return CONNECTION_DONE
        self.data += chunk
        return None

    def connectionLost(self, reason):
        self.lost.append(reason)
        os.close(self.fd)
        self.fd = -1
        self.reactor.removeReader(self)  # after close, as the seed does: must be harmless


def test_raw_descriptor_connection_done(runner):
    r = runner.reactor
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    p = Pipe(r, rfd)
    r.addReader(p)
    assert p in r.getReaders()
    done = Deferred()
    r.callLater(0.01, os.write, wfd, b"hello")
    r.callLater(0.05, os.close, wfd)
    r.callLater(0.1, done.callback, None)
    runner.run_until(done)
    assert p.data == b"hello"
    assert len(p.lost) == 1 and p.lost[0].check(ConnectionDone)
    assert p not in r.getReaders()


def test_exception_in_do_read_is_logged_and_drops_only_that_descriptor(runner, caplog):
    caplog.set_level(logging.ERROR, logger="cluster")
    r = runner.reactor

    class Broken(Pipe):
        def doRead(self):
            os.read(self.fd, 4096)
            raise RuntimeError("bug in user code")

    b_r, b_w = os.pipe()
    g_r, g_w = os.pipe()
    broken, good = Broken(r, b_r), Pipe(r, g_r)
    r.addReader(broken)
    r.addReader(good)
    done = Deferred()
    r.callLater(0.01, os.write, b_w, b"x")
    r.callLater(0.05, os.write, g_w, b"still served")
    r.callLater(0.1, lambda: done.callback(list(good.lost)))
    good_lost_while_running = runner.run_until(done)
    assert broken.lost and broken.lost[0].check(RuntimeError)
    assert good.data == b"still served" and good_lost_while_running == []
    assert "bug in user code" in caplog.text and "Traceback" in caplog.text
    os.close(b_w)
    os.close(g_w)


def test_remove_all_and_get_writers(runner):
    r = runner.reactor
    a, b = socket.socketpair()

    class W(Pipe):
        def doWrite(self):
            return None

    w = W(r, a.fileno())
    r.addWriter(w)
    r.addReader(w)
    assert r.getWriters() == [w]
    removed = r.removeAll()
    assert removed == [w]
    assert r.getReaders() == [] and r.getWriters() == []
    a.close()
    b.close()


SIGNAL_SCRIPT = textwrap.dedent(
    """
    import sys
    from cluster.defer import deferLater
    from cluster.reactor import reactor

    def before():
        print("before shutdown", flush=True)
        return deferLater(reactor, 0.2, print, "drained", flush=True)

    reactor.addSystemEventTrigger("before", "shutdown", before)
    reactor.callWhenRunning(print, "running", flush=True)
    reactor.run()
    print("exited cleanly", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_reactor_cleanly(sig):
    proc = subprocess.Popen([sys.executable, "-c", SIGNAL_SCRIPT], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.split("\n")[:3] == ["before shutdown", "drained", "exited cleanly"]
