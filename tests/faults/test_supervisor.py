"""The supervisor under faults: whatever its children do, it keeps a serving cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tests import ROOT
from tests.faults.faultapps import writeVersioned

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(120)]


def greet(cluster):
    client = cluster.connect()
    return client, int(client.line())


def cli(cluster, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "cluster", *args, "--name", cluster.name],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def wait_replaced(cluster, node, old_pid, timeout=15):
    return cluster.wait_until(
        lambda st: any(p["node"] == node and p["pid"] != old_pid and p["state"] == "running"
                       for p in st["processes"]), timeout, f"{node} to be replaced")


def test_a_worker_killed_by_a_real_time_signal_is_replaced(run_cluster, figures):
    c = run_cluster("tests.clusterapps:whoami")
    node, pid = sorted(c.pids().items())[0]
    rt = signal.SIGRTMIN + 3  # 37 on Linux: not a member of signal.Signals
    start = time.monotonic()
    os.kill(pid, rt)
    wait_replaced(c, node, pid)
    figures.update(signal=int(rt), replaced_after_s=round(time.monotonic() - start, 2))
    assert "signal SIGRTMIN+3" in c.logs()
    client, served_by = greet(c)
    assert served_by in c.pids().values()
    client.close()


class Prober(threading.Thread):
    """Asks the cluster for its app's version over and over, on one kept-alive connection
    and on a new connection each time; counts answers and failures."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.answers = 0
        self.failures: list[str] = []
        self.versions: set[bytes] = set()

    def ask(self, client):
        client.send(b"version\n")
        answer = client.line()
        if not answer:
            raise ConnectionError("closed by the server")
        self.versions.add(answer)
        self.answers += 1

    def run(self):
        kept, _ = greet(self.cluster)
        while not self.stop.is_set():
            try:
                self.ask(kept)
                fresh, _ = greet(self.cluster)
                self.ask(fresh)
                fresh.close()
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.failures.append(repr(e))
                time.sleep(0.05)
        kept.close()


def test_a_reload_of_a_broken_app_keeps_the_old_workers_serving(run_cluster, tmp_path,
                                                                figures):
    writeVersioned(str(tmp_path), "v1")
    c = run_cluster("versioned_app:factory", env={"PYTHONPATH": str(tmp_path)})
    before = c.pids()
    prober = Prober(c)
    prober.start()
    try:
        writeVersioned(str(tmp_path), "v2", broken=True)
        out = cli(c, "reload")
        assert out.returncode != 0
        assert "broken on purpose" in out.stderr  # the import error, for the operator
        st = c.status()
        assert st["reload"]["state"] == "failed"
        assert "broken on purpose" in st["reload"]["error"]
        assert "the last reload failed" in cli(c, "status").stdout
        assert c.pids() == before  # the old workers, still there
        time.sleep(0.5)
        # the fixed app reloads normally: the failed reload left nothing wedged
        writeVersioned(str(tmp_path), "v3")
        out = cli(c, "reload")
        assert out.returncode == 0, out.stderr
        assert c.status()["reload"]["state"] == "ok"
        after = c.pids()
        assert set(after) == set(before) and not set(after.values()) & set(before.values())
        time.sleep(0.5)
    finally:
        prober.stop.set()
        prober.join(10)
    figures.update(answers_during_both_reloads=prober.answers,
                   failed_requests=len(prober.failures),
                   broken_reload_exit_status=1, fixed_reload_exit_status=0)
    assert prober.failures == [], prober.failures[:5]
    assert prober.answers > 50
    assert prober.versions == {b"v1", b"v3"}
    assert c.proc.poll() is None


def test_children_ignore_sigint_and_never_dump_core_on_an_early_sigquit(run_cluster):
    c = run_cluster("tests.clusterapps:whoami")
    for pid in list(c.pids().values()) + list(c.pids("gateway").values()):
        ignored = _mask(pid, "SigIgn")
        assert ignored & (1 << (signal.SIGINT - 1)), f"{pid} does not ignore SIGINT"
        os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert c.pids() == c.pids() and all(psutil.pid_exists(p) for p in c.pids().values())
    assert "KeyboardInterrupt" not in c.logs()
    # SIGQUIT at the earliest moment of a new worker's life: it exits cleanly (status 0),
    # never by the signal's default action (a core dump)
    sup = psutil.Process(c.proc.pid)
    for _ in range(2):
        node, pid = sorted(c.pids().items())[0]
        known = {p.pid for p in sup.children()}
        os.kill(pid, signal.SIGKILL)
        newborn = None
        deadline = time.monotonic() + 10
        while newborn is None and time.monotonic() < deadline:
            fresh = [p.pid for p in sup.children() if p.pid not in known]
            newborn = fresh[0] if fresh else None
        assert newborn is not None
        os.kill(newborn, signal.SIGQUIT)
        wait_replaced(c, node, newborn)
    log = c.logs()
    assert "signal SIGQUIT" not in log and "core" not in log.lower()


def _mask(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    raise AssertionError(field)


def test_a_failure_to_start_a_process_is_retried_and_leaks_nothing(run_cluster, figures):
    c = run_cluster("tests.clusterapps:whoami", heartbeat_timeout=5)
    sup = psutil.Process(c.proc.pid)
    time.sleep(0.5)
    fds_before = sup.num_fds()
    soft, hard = sup.rlimit(psutil.RLIMIT_NOFILE)
    node, pid = sorted(c.pids().items())[0]
    # no new fd for the supervisor (every new one would be numbered 3 or more): the next
    # start of a process fails with a real EMFILE
    sup.rlimit(psutil.RLIMIT_NOFILE, (3, hard))
    try:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while c.logs().count("could not start worker-") < 2:  # failed, and failed again
            assert time.monotonic() < deadline, c.logs()
            time.sleep(0.1)
    finally:
        sup.rlimit(psutil.RLIMIT_NOFILE, (soft, hard))
    wait_replaced(c, node, pid, timeout=20)
    assert "Too many open files" in c.logs()
    time.sleep(1.0)
    figures.update(failed_starts=c.logs().count("could not start worker-"),
                   supervisor_fds_before=fds_before, supervisor_fds_after=sup.num_fds())
    assert sup.num_fds() == fds_before  # every socketpair of the failed starts was closed
    assert not [p for p in sup.children() if p.status() == psutil.STATUS_ZOMBIE]
    client, served_by = greet(c)
    assert served_by in c.pids().values()
    client.close()


def test_reloads_and_resizes_interleaved_end_in_a_consistent_cluster(run_cluster):
    c = run_cluster("tests.clusterapps:whoami", workers=2)
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP, signal.SIGTTIN,
                signal.SIGTTOU, signal.SIGTTOU, signal.SIGTTIN):
        c.proc.send_signal(sig)
        time.sleep(0.05)

    def settled(st):
        workers = [p for p in st["processes"] if p["role"] == "worker"]
        return (st["operation"] is None and st["workers"] == 2 and len(workers) == 2
                and all(p["state"] == "running" for p in st["processes"]))

    st = c.wait_until(settled, 60, "every operation to finish")
    assert sorted(p["node"] for p in st["processes"] if p["role"] == "worker") == [
        "worker-0", "worker-1"]
    served = {greet(c)[1] for _ in range(6)}
    assert served <= set(c.pids().values())


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --pid needs root")
def test_the_supervisor_as_pid_1_starts_serves_and_reaps_orphans(run_cluster, figures):
    start = time.monotonic()
    c = run_cluster("tests.faults.faultapps:orphaner", env={}, wait=False,
                    prefix=("unshare", "--pid", "--fork", "--mount-proc", "--kill-child"))
    # the pids status reports are the namespace's own: never use them from out here
    client = None
    while client is None:
        try:
            client = c.connect(timeout=5)
            client.line()
        except OSError:
            client = None
            assert time.monotonic() - start < 5, c.logs()
            time.sleep(0.05)
    served_within = time.monotonic() - start
    assert served_within < 5
    init = psutil.Process(c.proc.pid).children()[0]  # the supervisor, PID 1 inside
    assert "cluster" in " ".join(init.cmdline())
    for _ in range(3):
        client.send(b"orphan\n")
        assert client.line() == b"started"
    time.sleep(1.5)  # the sleeps end; the supervisor reaps what is re-parented to it
    zombies = [p for p in init.children() if p.status() == psutil.STATUS_ZOMBIE]
    figures.update(serving_within_s=round(served_within, 2), orphans_made=3,
                   zombies_left=len(zombies))
    assert zombies == []
    workers = [p for p in init.children() if p.cmdline()[1:3] == ["-m", "worker"]]
    assert len(workers) == 2
    client.close()
    # unshare ignores TERM; the supervisor, as PID 1, must still hear it: a graceful stop
    init.send_signal(signal.SIGTERM)
    assert c.proc.wait(timeout=15) == 0, c.logs()
    assert "graceful stop" in c.logs()


def test_a_worker_whose_rpc_socket_stops_answering_is_replaced(run_cluster, figures):
    c = run_cluster("tests.faults.faultapps:deafrpc", heartbeat_timeout=2)
    client, pid = greet(c)
    node = next(n for n, p in c.pids().items() if p == pid)
    client.send(b"deafrpc\n")
    assert client.line() == b"deaf"
    start = time.monotonic()
    wait_replaced(c, node, pid, timeout=15)
    figures.update(heartbeat_timeout_s=2,
                   replaced_after_s=round(time.monotonic() - start, 2))
    assert time.monotonic() - start < 2 + 4  # the ping timeout, plus a tick or two
    assert "did not answer on its RPC socket" in c.logs()
    assert "sent no heartbeat" not in c.logs()  # its loop was alive all along
    client.close()
