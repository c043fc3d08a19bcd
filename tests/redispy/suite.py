"""redis-py's own tests/test_commands.py (the sync client's), from the sdist of the
installed redis-py, run against a server with redis-py's own options; each test's
outcome and the commands it sent, as the ``redispy_probe`` plugin records them.

    python -m tests.redispy.suite fetch     # download and unpack them (CI does this first)

``fetch()`` runs ``pip download --no-binary :all: --no-deps redis==VERSION`` (the sdist
ships tests/) and keeps tests/ and pyproject.toml under ``.cache/redispy-VERSION`` (the
runner puts a ``.gitignore`` of ``*`` in ``.cache``). A failed download raises: the suite
is then not run, and whoever asked for it fails.

Their tests are selected as redis-py's CI does for a standalone server (``-m "not
onlycluster and not redismod"``), less the ``replica`` tests (a replica at
localhost:6380, which is also where ``cluster run`` binds by default) and the two that
open a client on localhost:6379 (deselected: nothing but --redis-url is talked to).

The store's gateway port answers INFO with ``cluster_enabled:0`` (it is one Redis server
there; a worker's own port is a Redis Cluster node), so their conftest talks to it as
to the redis-server it is compared with.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / ".cache"
OUT = ROOT / "bench" / "out" / "redispy"
EXPECTED = HERE / "expected_pass.txt"
TARGET = "tests/test_commands.py"
# redis-py's CI, standalone: "not onlycluster and not redismod and not ssl ..." (no ssl
# test in test_commands.py); less "replica" (they need a replica at localhost:6380)
MARKS = "not onlycluster and not redismod and not replica"
DESELECT = (  # they open redis.Redis() on localhost:6379, whatever --redis-url says
    f"{TARGET}::TestRedisCommands::test_client_setinfo",
    f"{TARGET}::TestRedisCommands::test_client_setinfo_with_driver_info",
)
# what redis-py's tests/conftest.py and test_commands.py import beyond redis and pytest
# (module -> requirement); pytest-asyncio, numpy, ujson... serve other files of theirs
DEPENDENCIES = {"packaging": "packaging>=20.4"}
TEST_TIMEOUT = 10  # seconds one of their tests may take (their pyproject says 30)
COMPLETE = ".complete"


class SuiteError(RuntimeError):
    """redis-py's tests could not be fetched or run (not: some of them failed)."""


def oracle_options() -> tuple[str, ...]:
    """redis-server's options for these runs: DEBUG allowed, as redis-py's CI has it
    (redis-server 7 refuses it by default), and its files (test_bgsave's dump.rdb) in
    bench/out/redispy/redis-server rather than in the directory it was started from."""
    where = OUT / "redis-server"
    where.mkdir(parents=True, exist_ok=True)
    return ("--enable-debug-command", "yes", "--dir", str(where))


def installed_version() -> str:
    return importlib.metadata.version("redis")


def fetch(version: str | None = None) -> Path:
    """The directory holding redis-py ``version``'s tests/ (the installed version's by
    default), downloaded and unpacked on first use; raises SuiteError if it cannot."""
    version = version or installed_version()
    dest = CACHE / f"redispy-{version}"
    if (dest / COMPLETE).is_file() and (dest / TARGET).is_file():
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    ignore = CACHE / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# downloads of tests/redispy/suite.py, never committed\n*\n")
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".fetch-") as tmp:
        argv = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                "--disable-pip-version-check", "-q", "-d", tmp, f"redis=={version}"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired as e:
            raise SuiteError(f"{' '.join(argv)} took over 600 s") from e
        if done.returncode:
            raise SuiteError(f"could not fetch redis-py {version}'s tests: {' '.join(argv)} "
                             f"exited {done.returncode}:\n{done.stderr[-3000:]}")
        sdists = sorted(Path(tmp).glob("redis-*.tar.gz"))
        if not sdists:
            raise SuiteError(f"{' '.join(argv)} left no sdist in {tmp}: "
                             f"{sorted(p.name for p in Path(tmp).iterdir())}")
        top = sdists[0].name[:-len(".tar.gz")]
        with tarfile.open(sdists[0]) as tar:
            members = [m for m in tar.getmembers()
                       if m.name.startswith(f"{top}/tests/") or m.name == f"{top}/pyproject.toml"]
            tar.extractall(tmp, members=members, filter="data")
        staged = Path(tmp) / top
        if not (staged / TARGET).is_file():
            raise SuiteError(f"{sdists[0].name} has no {TARGET}")
        (staged / COMPLETE).write_text(f"{sdists[0].name}\n")
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def ensure_dependencies() -> list[str]:
    """Install (pip, into this interpreter's environment) what their conftest imports and
    is missing here; the requirements installed."""
    missing = [req for module, req in DEPENDENCIES.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", *missing], check=True, timeout=600)
    return missing


def _write_ini(dest: Path) -> Path:
    """A pytest.ini beside their tests/: their markers (from their pyproject.toml), a
    per-test timeout; not their asyncio, logging or warning settings."""
    try:
        with open(dest / "pyproject.toml", "rb") as f:
            markers = tomllib.load(f)["tool"]["pytest"]["ini_options"].get("markers", [])
    except (OSError, KeyError):  # older sdists kept them in tox.ini
        markers = []
    names = sorted({m.split(":")[0].strip() for m in markers}
                   | {"onlycluster", "onlynoncluster", "redismod", "replica", "ssl"})
    ini = dest / "pytest.ini"
    text = ("[pytest]\n# written by tests/redispy/suite.py for runs of redis-py's tests\n"
            "markers =\n" + "".join(f"    {n}\n" for n in names) + f"timeout = {TEST_TIMEOUT}\n")
    if not ini.exists() or ini.read_text() != text:
        ini.write_text(text)
    return ini


def server_facts(port: int) -> dict[str, Any]:
    """What redis-py's conftest will see of the server at 127.0.0.1:``port``."""
    client = redis.Redis(host="127.0.0.1", port=port, protocol=2, socket_timeout=10)
    try:
        info = client.info("server")
        facts = {"redis_version": info.get("redis_version"),
                 "cluster_enabled": bool(client.info("cluster").get("cluster_enabled"))}
        try:
            facts["commands"] = sorted(
                (c.decode() if isinstance(c, bytes) else str(c)).upper()
                for c in client.command_list())
        except redis.ResponseError:
            facts["commands"] = None
        return facts
    finally:
        client.close()


class SuiteRun:
    """One run of their test_commands.py (a subprocess) against 127.0.0.1:``port``."""

    def __init__(self, label: str, port: int, *, protocol: str | None = None,
                 out: Path = OUT, dest: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.label = label
        self.dest = dest or fetch()
        out.mkdir(parents=True, exist_ok=True)
        self.probe = out / f"{label}.json"
        self.log = out / f"{label}.log"
        if self.probe.exists():
            self.probe.unlink()
        self.facts = server_facts(port)
        url = f"redis://127.0.0.1:{port}/0"
        argv = [sys.executable, "-m", "pytest", "-c", str(_write_ini(self.dest)),
                "-p", "no:cacheprovider", "-p", "no:cluster", "-p", "redispy_probe",
                f"--probe-out={self.probe}", "-q", "--tb=no", "-m", MARKS,
                f"--redis-url={url}", f"--redis-mod-url={url}"]
        argv += [f"--deselect={d}" for d in DESELECT]
        if protocol:
            argv.append(f"--protocol={protocol}")
        self.argv = [*argv, *extra, TARGET]
        env = {k: v for k, v in os.environ.items()  # not the calling pytest's own options
               if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(HERE), *filter(None, [env.get("PYTHONPATH")])])
        self.started = time.monotonic()
        self.wall_s: float | None = None
        with open(self.log, "wb") as log:
            # --tb=no: under redis-py's tracemalloc a long traceback takes ~1.4 s a failure
            self.proc = subprocess.Popen(self.argv, cwd=self.dest, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)

    def done(self) -> bool:
        """Whether the run has ended (and when: ``wall_s``)."""
        if self.proc.poll() is None:
            return False
        if self.wall_s is None:
            self.wall_s = round(time.monotonic() - self.started, 1)
        return True

    def result(self) -> dict[str, Any]:
        """The probe's record of an ended run (SuiteError if it did not run through)."""
        rc = self.proc.returncode
        if rc not in (0, 1) or not self.probe.exists():
            raise SuiteError(f"{self.label}: pytest exited {rc}; {' '.join(self.argv)}\n"
                             f"log: {self.log}\n{self._tail()}")
        record = json.loads(self.probe.read_text())
        record.update(label=self.label, wall_s=self.wall_s, facts=self.facts)
        return record

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _tail(self, limit: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-limit:] if self.log.exists() else ""


def run_suites(ports: dict[str, int], timeout: float = 600, **options: Any) -> dict[str, Any]:
    """Their tests against each server at once (label -> port): label -> record."""
    fetch()
    ensure_dependencies()
    runs: list[SuiteRun] = []
    try:
        for label, port in ports.items():
            runs.append(SuiteRun(label, port, **options))
        deadline = time.monotonic() + timeout
        while not all([r.done() for r in runs]):
            if time.monotonic() > deadline:
                late = [r for r in runs if not r.done()]
                raise SuiteError(f"redis-py's tests ran over {timeout} s against "
                                 f"{[r.label for r in late]}; logs: {[str(r.log) for r in late]}"
                                 f"\n{late[0]._tail()}")
            time.sleep(0.1)
        return {r.label: r.result() for r in runs}
    finally:
        for r in runs:
            r.kill()


def passed(record: dict[str, Any]) -> set[str]:
    return {t for t, r in record["tests"].items() if r["outcome"] == "passed"}


def compare(reference: dict[str, Any], store: dict[str, Any]) -> dict[str, Any]:
    """The counts, and why each test that passes on the reference fails on the store:
    blocked by the first command it uses that the store lacks (answered "unknown
    command/subcommand" or "not supported" anywhere in the run, or absent from its
    COMMAND LIST), else failing with commands the store has."""
    ref_pass, store_pass = passed(reference), passed(store)
    missing: set[str] = set()
    for r in store["tests"].values():
        missing.update(r["unknown"])
    listed = store["facts"].get("commands")
    if listed is not None:
        listed_set = set(listed)
        for r in reference["tests"].values():
            missing.update(c for c in r["commands"] if c.split()[0] not in listed_set)
    blocked: dict[str, list[str]] = {}
    failing: dict[str, dict[str, Any]] = {}
    for test in sorted(ref_pass - store_pass):
        gaps = [c for c in reference["tests"][test]["commands"] if c in missing]
        if gaps:
            blocked.setdefault(gaps[0], []).append(test)
            continue
        mine = store["tests"].get(test, {})
        failing[test] = {"outcome": mine.get("outcome", "not run"),
                         "message": mine.get("message", ""),
                         "first_error": (mine.get("errors") or [None])[0]}
    ranked = sorted(blocked.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {
        "reference": _side(reference), "store": _side(store),
        "passed_on_both": len(ref_pass & store_pass),
        "missing_commands": {c: len(tests) for c, tests in ranked},
        "blocked": dict(ranked),
        "failing_with_implemented_commands": failing,
        "passed_only_on_store": sorted(store_pass - ref_pass),
    }


def _side(record: dict[str, Any]) -> dict[str, Any]:
    outcomes = Counter(r["outcome"] for r in record["tests"].values())
    facts = {k: v for k, v in record["facts"].items() if k != "commands"}
    return {"passed": outcomes["passed"], "outcomes": dict(sorted(outcomes.items())),
            "wall_s": record["wall_s"], "server": facts}


def summarize(results: dict[str, Any], reference: str = "redis-server",
              store: str = "store", expected: list[str] | None = None,
              **about: Any) -> dict[str, Any]:
    """compare() of the two runs, plus how the expected list fares on each."""
    summary = {"redis_py": installed_version(), "file": TARGET, "selection": MARKS,
               **about, **compare(results[reference], results[store])}
    if expected is not None:
        on_store, on_ref = passed(results[store]), passed(results[reference])
        summary["expected"] = {
            "count": len(expected),
            "failing_on_store": {t: results[store]["tests"].get(t, {}).get("outcome", "not run")
                                 for t in expected if t not in on_store},
            "failing_on_reference": {
                t: results[reference]["tests"].get(t, {}).get("outcome", "not run")
                for t in expected if t not in on_ref},
        }
    return summary


def render(summary: dict[str, Any], top: int = 15, details: bool = False) -> str:
    """The counts and the store's gaps, for people."""
    ref, mine = summary["reference"], summary["store"]
    lines = [
        f"redis-py {summary['redis_py']} {summary['file']} ({summary['selection']}), "
        + ", ".join(f"{k}={v}" for k, v in summary.items()
                    if k in ("protocol", "workers", "mode")),
        f"  pass on redis-server {ref['server'].get('redis_version')}: {ref['passed']} "
        f"{ref['outcomes']} in {ref['wall_s']} s",
        f"  pass on the store: {mine['passed']} {mine['outcomes']} in {mine['wall_s']} s",
        f"  pass on both: {summary['passed_on_both']}",
    ]
    if "expected" in summary:
        e = summary["expected"]
        lines.append(f"  expected list: {e['count']} tests; failing on the store: "
                     f"{len(e['failing_on_store'])}; failing on redis-server: "
                     f"{len(e['failing_on_reference'])}")
    missing = summary["missing_commands"]
    lines.append(f"  tests passing on redis-server, blocked on the store by a missing command "
                 f"(the first each uses): {sum(missing.values())}, {len(missing)} commands")
    for command, n in list(missing.items())[:None if details else top]:
        lines.append(f"    {n:4d}  {command}")
        if details:
            lines += [f"            {t}" for t in summary["blocked"][command]]
    if not details and len(missing) > top:
        lines.append(f"    ...   {len(missing) - top} more commands")
    failing = summary["failing_with_implemented_commands"]
    lines.append(f"  tests passing on redis-server, failing on the store with commands it "
                 f"has: {len(failing)}")
    for test, why in failing.items():
        first = why["first_error"]
        message = " ".join(why["message"].split())[:150]
        lines.append(f"    {test.split('::', 1)[1]}: {why['outcome']}: {message}"
                     + (f" [first error: {first[0]}: {first[1][:80]}]" if first else ""))
    if summary["passed_only_on_store"]:
        lines.append(f"  passing on the store only: {len(summary['passed_only_on_store'])}")
    return "\n".join(lines)


def expected_version(path: Path = EXPECTED) -> str | None:
    """The redis-py version whose tests the expected list names (its first line)."""
    lines = path.read_text().splitlines()[:1] if path.exists() else []
    words = lines[0].split() if lines else []
    return words[2][:-2] if len(words) > 2 and words[1] == "redis-py" else None


def read_expected(path: Path = EXPECTED) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def write_expected(tests: set[str], path: Path = EXPECTED) -> None:
    header = (f"# redis-py {installed_version()}'s {TARGET} tests that pass on redis-server "
              "and on the store\n# (tests/test_redispy_suite.py holds the store to them).\n"
              "# Regenerate: .venv/bin/python -m bench.redispy_suite --write-expected\n")
    path.write_text(header + "".join(f"{t}\n" for t in sorted(tests)))


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.redispy.suite fetch")
    where = fetch()
    print(f"redis-py {installed_version()}'s tests in {where}; installed: "
          f"{ensure_dependencies() or 'nothing missing'}")
