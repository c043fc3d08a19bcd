"""Configuration: defaults, the TOML file, flags on top; the run directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from cluster import config, rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults():
    cfg = config.load(None, {})
    assert cfg.bind == "127.0.0.1:6380"  # loopback unless the user asks otherwise
    assert cfg.route == "least-connections"
    assert cfg.name == "default"
    assert cfg.workers == len(os.sched_getaffinity(0))


def test_file_then_flags(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('workers = 4\nbind = "127.0.0.1:7000"\ngraceful-timeout = 7\n'
                 'route = "round-robin"\n')
    cfg = config.load(str(f), {"workers": 2, "bind": None})
    assert cfg.workers == 2  # the flag wins
    assert cfg.bind == "127.0.0.1:7000"  # no flag: the file
    assert cfg.graceful_timeout == 7 and cfg.route == "round-robin"


def test_example_config_in_deploy_loads():
    cfg = config.load(os.path.join(ROOT, "deploy", "cluster.toml"), {})
    assert cfg.workers == 4 and cfg.target == "examples.echo:factory"
    assert cfg.metrics == "127.0.0.1:9180" and cfg.log_format == "text"


@pytest.mark.parametrize("content, message", [
    ("wrkers = 3", "unknown setting"),
    ('route = "random"', "route must be one of"),
    ('bind = "nowhere"', "HOST:PORT"),
    ('route = "key"', "routeKey"),
    ("udp = 0", "udp must be a port number from 1"),
    ("udp = 70000", "udp must be a port number from 1"),
    ('tls-ca = "/etc/hostname"', "tls-ca needs tls-cert"),
    ('tls-cert = "/etc/hostname"', "tls-cert and tls-key go together"),
    ('metrics = "9180"', "metrics must be HOST:PORT"),
    ('metrics = "127.0.0.1:99999"', "metrics must be HOST:PORT"),
    ('log-format = "xml"', "log-format must be text or json"),
    ("worker-ports = 65535\nworkers = 2", "worker-ports must be a port number with room"),
    ("worker-ports = -1", "worker-ports must be a port number"),
])
def test_bad_settings_are_refused_clearly(tmp_path, content, message):
    f = tmp_path / "c.toml"
    f.write_text(content)
    with pytest.raises(ValueError, match=message):
        config.load(str(f), {})


def test_run_directory_is_private(monkeypatch):
    import tempfile

    short = tempfile.mkdtemp(prefix="rd-", dir="/tmp")  # pytest's tmp_path is too long
    monkeypatch.setenv("XDG_RUNTIME_DIR", short)
    p = rundir.create("unit")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(rundir.parent()).st_mode) == 0o700
    rundir.remove("unit")
    with pytest.raises(ValueError):
        rundir.path("../escape")
    os.rmdir(rundir.parent())
    os.rmdir(short)


def test_a_name_too_long_for_the_sockets_in_its_run_directory_is_refused():
    with pytest.raises(ValueError, match="too long for the Unix sockets"):
        config.Config(name="n" * 100)
    out = subprocess.run([sys.executable, "-m", "cluster", "status", "--name", "n" * 100],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "shorter --name" in out.stderr


def test_the_default_worker_ports_need_room_below_65536():
    assert config.Config(bind="127.0.0.1:6380", workers=2).workerPortBase() == (6381, False)
    assert config.Config(bind="127.0.0.1:65535", workers=2).workerPortBase() == (0, False)
    assert config.Config(bind="127.0.0.1:6380", workers=2, target="x:y").workerPortBase() \
        == (0, False)  # other apps: only when asked
    assert config.Config(bind="127.0.0.1:6380", workers=2,
                         worker_ports=7000).workerPortBase() == (7000, True)
