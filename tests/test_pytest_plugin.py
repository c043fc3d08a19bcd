"""The pytest plugin as a user has it: a user's app and tests in a directory of their own,
run by ``python -m pytest`` there with the plugin loaded from its entry point (no
conftest). After a passing test, a failing one, an interrupted one (KeyboardInterrupt,
SIGINT) and a pytest killed outright, no process any of them started is left and no run
directory either."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

APP = '''
from cluster.protocol import Factory, Protocol


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


factory = Factory.forProtocol(Echo)
'''

USER_TESTS = '''
import json
import os
import time

import psutil

import cluster.load
from cluster import rundir


def record(c):
    """Write down every process of the cluster (pid and start time), its run directory
    and its log file, for the test that runs this file."""
    pids = {c.proc.pid, *(p["pid"] for p in c.status()["processes"] if p["pid"])}
    pids |= {p.pid for p in psutil.Process(c.proc.pid).children(recursive=True)}
    started = {}
    for pid in pids:
        try:
            started[pid] = psutil.Process(pid).create_time()
        except psutil.Error:
            pass
    with open(os.environ["PLUGIN_RECORD"], "a") as f:
        f.write(json.dumps({"name": c.name, "rundir": rundir.path(c.name),
                            "log": c.logfile.name, "pids": started}) + "\\n")


def worker_nodes(st):
    return [p["node"] for p in st["processes"] if p["role"] == "worker"]


def test_load_status_kill_resize_reload(run_cluster, request):
    assert request.config.pluginmanager.has_plugin("cluster")  # by its entry point
    c = run_cluster("myapp:factory", workers=2, graceful_timeout=5)
    record(c)
    st = c.status()
    assert st["name"] == c.name and worker_nodes(st) == ["worker-0", "worker-1"]
    assert c.address == f"127.0.0.1:{c.port}"
    summary = cluster.load.run(c.address, workload="echo", connections=10, requests=2000,
                               processes=2)
    assert summary["errors"] == 0 and summary["requests"] == 2000, summary
    assert summary["requests_per_s"] > 0
    assert 0 < summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    victim = c.kill("worker-1")
    st = c.wait_until(lambda st: any(p["node"] == "worker-1" and p["pid"] != victim
                                     and p["state"] == "running" for p in st["processes"]),
                      20, "worker-1's replacement")
    assert next(p for p in st["processes"] if p["node"] == "worker-1")["restarts"] == 1
    assert not psutil.pid_exists(victim) or \\
        psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    record(c)
    assert worker_nodes(c.resize(3)) == ["worker-0", "worker-1", "worker-2"]
    record(c)
    before = set(c.pids().values())
    c.resize(2)
    c.reload()
    c.wait_ready()
    assert set(c.pids().values()).isdisjoint(before)
    record(c)
    again = cluster.load.run(c.address, workload="echo", connections=4, requests=200,
                             processes=1)
    assert again["errors"] == 0 and again["requests"] == 200
    assert "started worker-1" in c.logs()


def test_fails_on_purpose(run_cluster):
    c = run_cluster("myapp:factory", workers=1)
    record(c)
    assert len(worker_nodes(c.status())) == 2, "fails on purpose"


def test_raises_keyboard_interrupt(run_cluster):
    c = run_cluster("myapp:factory", workers=1)
    record(c)
    raise KeyboardInterrupt


def test_waits_for_a_signal(run_cluster):
    c = run_cluster("myapp:factory", workers=2)
    record(c)
    open(os.environ["PLUGIN_READY"], "w").close()
    time.sleep(120)
'''


@pytest.fixture
def user_project(tmp_path):
    """A user's directory: the app, the tests, a pytest.ini (rootdir and a timeout)."""
    (tmp_path / "myapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 90\n")
    records = tmp_path / "record.jsonl"
    started: list[subprocess.Popen] = []
    project = {"dir": tmp_path, "records": records, "ready": tmp_path / "ready",
               "started": started}
    yield project
    for proc in started:  # by PID, whatever happened
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    for rec in read_records(records):
        for pid, created in rec["pids"].items():
            p = same_process(int(pid), created)
            if p is not None:
                p.kill()
        shutil.rmtree(rec["rundir"], ignore_errors=True)
        if os.path.exists(rec["log"]):
            os.unlink(rec["log"])


def start_pytest(project, *args: str) -> subprocess.Popen:
    """``python -m pytest ARGS`` in the user's directory, the plugin from its entry point."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS")}
    env.update(PLUGIN_RECORD=str(project["records"]), PLUGIN_READY=str(project["ready"]))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "test_user.py", *args], cwd=project["dir"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    project["started"].append(proc)
    return proc


def read_records(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def same_process(pid: int, created: float) -> psutil.Process | None:
    """The process ``pid`` if it is still the one started at ``created`` and not a zombie."""
    try:
        p = psutil.Process(pid)
        if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
            return p
    except psutil.Error:
        pass
    return None


def assert_nothing_left(records: list[dict], timeout: float = 0.0,
                        logs_removed: bool = True) -> None:
    """No recorded process runs (after up to ``timeout`` s), no run directory is there."""
    assert records
    deadline = time.monotonic() + timeout
    while True:
        alive = [(rec["name"], pid) for rec in records for pid, created in rec["pids"].items()
                 if same_process(int(pid), created) is not None]
        dirs = [rec["rundir"] for rec in records if os.path.exists(rec["rundir"])]
        if (not alive and not dirs) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    assert alive == [] and dirs == []
    if logs_removed:
        assert [rec["log"] for rec in records if os.path.exists(rec["log"])] == []


def test_a_passing_and_a_failing_test_leave_nothing_behind(user_project):
    proc = start_pytest(user_project, "-k", "load_status or fails_on_purpose")
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, out  # one failed
    assert "1 failed, 1 passed" in out, out
    assert "fails on purpose" in out
    records = read_records(user_project["records"])
    assert len({r["name"] for r in records}) == 2
    failed = records[-1]["name"]  # the failing test's cluster: its log is in the report
    assert f"cluster {failed} log (call)" in out and "started worker-0" in out
    assert_nothing_left(records)


def test_a_test_raising_keyboard_interrupt_leaves_nothing_behind(user_project):
    proc = start_pytest(user_project, "-k", "raises_keyboard_interrupt")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "KeyboardInterrupt" in out, out
    assert_nothing_left(read_records(user_project["records"]))


def test_sigint_while_a_cluster_runs_leaves_nothing_behind(user_project):
    proc = start_pytest(user_project, "-k", "waits_for_a_signal")
    wait_for(user_project["ready"], proc)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "KeyboardInterrupt" in out, out
    assert_nothing_left(read_records(user_project["records"]))


def test_a_pytest_killed_outright_still_stops_its_cluster(user_project):
    """SIGKILL: no teardown runs; the supervisor's parent-death signal (SIGTERM) stops
    the cluster gracefully, which removes its run directory (the log file stays)."""
    proc = start_pytest(user_project, "-k", "waits_for_a_signal")
    wait_for(user_project["ready"], proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert_nothing_left(read_records(user_project["records"]), timeout=20,
                        logs_removed=False)


def wait_for(path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"pytest exited ({proc.returncode}):\n{proc.stdout.read()}")
        assert time.monotonic() < deadline, "the user's test did not start its cluster"
        time.sleep(0.05)
