"""A pytest plugin for runs of redis-py's own tests (``-p redispy_probe``, with this
directory on PYTHONPATH): each test's outcome, the commands its clients sent, and the
ones the server answered "unknown command" (or subcommand, or "not supported"), written
as JSON to ``--probe-out`` at the end of the session.

Commands are recorded where redis-py's clients execute them (``Redis.execute_command``,
a pipeline's queued and immediate commands, ``PubSub.execute_command``), so the
connection handshake (HELLO, CLIENT SETINFO, whose errors redis-py ignores) is not
counted. A command is its name, plus the subcommand for Redis's container commands
(``CONFIG GET``, ``CLIENT LIST``...).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import redis
import redis.client

# Redis 7's commands that have subcommands (COMMAND's "container" commands)
CONTAINERS = frozenset({"ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "FUNCTION",
                        "LATENCY", "MEMORY", "MODULE", "OBJECT", "PUBSUB", "SCRIPT",
                        "SLOWLOG", "XGROUP", "XINFO"})
UNKNOWN = re.compile(r"unknown command|unknown subcommand|is not supported", re.IGNORECASE)

_current: dict[str, Any] | None = None  # the record of the test running now
_tests: dict[str, dict[str, Any]] = {}
_session: dict[str, Any] = {}


def command_name(args: tuple) -> str:
    """``("CONFIG GET", "maxmemory")`` or ``("config", "get", ...)`` -> ``"CONFIG GET"``."""
    if not args:
        return "?"
    words: list[str] = []
    for a in args[:2]:
        if isinstance(a, bytes):
            a = a.decode(errors="replace")
        words += str(a).split()
    name = words[0].upper()
    if name in CONTAINERS and len(words) > 1:
        return f"{name} {words[1].upper()}"
    return name


def _seen(args: tuple) -> str:
    name = command_name(args)
    if _current is not None and name not in _current["commands"]:
        _current["commands"].append(name)
    return name


def _errored(name: str, error: BaseException) -> None:
    if _current is None:
        return
    message = str(error)
    if UNKNOWN.search(message) and name not in _current["unknown"]:
        _current["unknown"].append(name)
    if len(_current["errors"]) < 5:
        _current["errors"].append([name, message[:200]])


def _wrap(cls: type, method: str) -> None:
    original = getattr(cls, method)

    def recorded(self, *args, **options):
        name = _seen(args)
        try:
            return original(self, *args, **options)
        except redis.ResponseError as e:
            _errored(name, e)
            raise

    recorded.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, method, recorded)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--probe-out", default=None,
                     help="where redispy_probe writes each test's outcome and commands")


def pytest_configure(config: pytest.Config) -> None:
    _wrap(redis.client.Redis, "execute_command")
    _wrap(redis.client.Pipeline, "immediate_execute_command")
    _wrap(redis.client.Pipeline, "pipeline_execute_command")
    _wrap(redis.client.PubSub, "execute_command")


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """After redis-py's conftest (its pytest_sessionstart fills REDIS_INFO)."""
    info = getattr(session.config, "REDIS_INFO", None)
    if info is None:
        return
    _session["redis_info"] = {k: info.get(k) for k in ("version", "cluster_enabled",
                                                       "resp_version", "enterprise")}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """The exception's own words (the run uses --tb=no: no traceback is formatted)."""
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    if report.failed and excinfo is not None:
        record = _tests.get(item.nodeid)
        if record is not None and not record["message"]:
            record["message"] = f"{excinfo.typename}: {excinfo.value}"[:300]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    global _current
    _current = _tests.setdefault(item.nodeid, {"outcome": "passed", "commands": [],
                                               "unknown": [], "errors": [], "message": ""})
    try:
        yield
    finally:
        _current = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record = _tests.setdefault(report.nodeid, {"outcome": "passed", "commands": [],
                                               "unknown": [], "errors": [], "message": ""})
    if report.skipped:
        if hasattr(report, "wasxfail"):
            record["outcome"] = "xfailed"
        elif record["outcome"] == "passed":
            record["outcome"] = "skipped"
    elif report.failed:
        if record["outcome"] in ("passed", "skipped"):
            record["outcome"] = "failed" if report.when == "call" else "error"
    elif report.when == "call" and hasattr(report, "wasxfail"):
        record["outcome"] = "xpassed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = session.config.getoption("--probe-out")
    if out:
        with open(out, "w") as f:
            json.dump({"exitstatus": int(exitstatus), **_session, "tests": _tests}, f,
                      indent=1, sort_keys=True)
