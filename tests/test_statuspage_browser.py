"""The live status page (``cluster run --metrics``) in a real browser: Debian's headless
Chromium, driven by Selenium, against a real cluster under real load."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
NODES = ["supervisor", "gateway", "worker-0", "worker-1"]

# The process table as a person reads it: each row's node and pid, and each cell's
# rendered text (innerText) and raw value, read in one step so a poll can't tear it.
READ_TABLE = """
return [...document.querySelectorAll('#processes tbody tr')].map((tr) => ({
  node: tr.dataset.node, pid: tr.dataset.pid,
  text: Object.fromEntries([...tr.cells].map((td) => [td.dataset.field, td.innerText])),
  value: Object.fromEntries([...tr.cells].map((td) => [td.dataset.field, td.dataset.value])),
}));
"""
# How many pixels of a canvas are drawn in a series' colour (the grid and labels are grey).
COLOURED_PIXELS = """
const c = document.getElementById(arguments[0]);
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
  if (d[i + 3] > 200 && hi - lo > 80) n++;
}
return n;
"""


@pytest.fixture
def chromium() -> Iterator[Callable[..., webdriver.Chrome]]:
    """Start headless Chromium sessions (1200x700); at teardown quit each, then kill by
    PID whatever of chromedriver and its browser is still there."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    drivers: list[webdriver.Chrome] = []

    def start(scripts: bool = True) -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1200,800"):
            options.add_argument(arg)
        options.binary_location = CHROMIUM
        if not scripts:
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2})
        driver = webdriver.Chrome(options=options,
                                  service=Service(executable_path=CHROMEDRIVER))
        drivers.append(driver)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1200, "height": 700, "deviceScaleFactor": 1, "mobile": False})
        return driver

    yield start
    for driver in drivers:
        service = psutil.Process(driver.service.process.pid)
        started = [service, *service.children(recursive=True)]
        try:
            driver.quit()
        except WebDriverException:
            pass
        kill(started)


def kill(procs: list[psutil.Process]) -> None:
    """SIGKILL each of ``procs`` still there (by PID: psutil checks it is the same process)."""
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def status_cluster(run_cluster: Any, target: str = "tests.clusterapps:whoami",
                   **options: Any) -> tuple[Any, str]:
    """A 2-worker cluster serving its status page; returns it and the page's URL."""
    c = run_cluster(target, workers=2, metrics="127.0.0.1:0", heartbeat_timeout=2,
                    **options)
    return c, f"http://{c.status()['metrics']}/"


def table(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The process table the page shows now (READ_TABLE)."""
    return driver.execute_script(READ_TABLE)


def by_node(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows by node (the last one of a node that shows twice)."""
    return {r["node"]: r for r in rows}


def wait_for(driver: webdriver.Chrome, predicate: Callable[[webdriver.Chrome], Any],
             what: str, timeout: float = 10.0) -> Any:
    """Poll ``predicate(driver)`` until it is truthy; fail naming ``what`` and the table."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(predicate)
    except Exception as e:
        raise AssertionError(f"timed out waiting for {what}; the page shows {table(driver)}") \
            from e


def indicator(driver: webdriver.Chrome) -> str:
    """The live/stale/snapshot indicator's text."""
    return driver.execute_script("return document.getElementById('indicator').innerText")


def all_running(driver: webdriver.Chrome) -> bool:
    """Whether the page shows exactly the four processes, each running."""
    rows = table(driver)
    return [r["node"] for r in rows] == NODES and all(r["text"]["state"] == "running"
                                                      for r in rows)


def test_the_page_is_live_under_load(run_cluster, chromium, tmp_path):
    c, url = status_cluster(run_cluster)
    driver = chromium()
    driver.get(url)
    wait_for(driver, lambda d: indicator(d) == "live" and all_running(d), "a live table")
    first = by_node(table(driver))
    pids = {node: str(pid) for node, pid in c.pids("worker").items()}
    assert {n: first[n]["pid"] for n in pids} == pids
    assert first["supervisor"]["text"]["pid"] == str(c.proc.pid)
    load = subprocess.Popen([sys.executable, "-m", "cluster", "load", f"127.0.0.1:{c.port}",
                             "--workload", "tests.clusterapps:EchoCommandLoad", "-c", "8",
                             "-p", "1", "-d", "15", "--json"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def serving(d: webdriver.Chrome) -> bool:
            rows = by_node(table(d))
            return all(float(rows[w]["value"]["requests"]) > 0 for w in pids) and any(
                float(rows[w]["value"]["rps"] or 0) > 0 for w in pids)

        wait_for(driver, serving, "requests and requests/s of the workers above 0")
        seen = by_node(table(driver))
        wait_for(driver, lambda d: any(
            by_node(table(d))[w]["value"]["requests"] != seen[w]["value"]["requests"]
            for w in pids), "the requests counts to move")
        wait_for(driver, lambda d: d.execute_script(COLOURED_PIXELS, "chart-rps") > 200
                 and d.execute_script(COLOURED_PIXELS, "chart-cpu") > 200,
                 "lines in both charts")
        time.sleep(2)  # a few more samples, so the screenshot's lines say something
        png = driver.get_screenshot_as_png()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        (tmp_path / "status-page.png").write_bytes(png)
        if os.environ.get("UPDATE_SCREENSHOT"):  # README's picture, remade on request
            with open(os.path.join(ROOT, "docs", "status-page.png"), "wb") as f:
                f.write(png)
        legend = driver.execute_script(
            "return [...document.querySelectorAll('#legend li')].map((li) => li.innerText)")
        assert legend == ["worker-0", "worker-1"]
        assert load.wait(timeout=30) == 0
    finally:
        if load.poll() is None:
            kill([psutil.Process(load.pid), *psutil.Process(load.pid).children(recursive=True)])
            load.wait()


def test_a_killed_worker_shows_its_restart(run_cluster, chromium):
    c, url = status_cluster(run_cluster)
    driver = chromium()
    driver.get(url)
    wait_for(driver, lambda d: indicator(d) == "live" and all_running(d), "a live table")
    old = str(c.kill("worker-0", signal.SIGKILL))
    shown: list[tuple[str, str, str]] = []  # what the page showed for worker-0 since

    def restarted(d: webdriver.Chrome) -> bool:
        rows = [r for r in table(d) if r["node"] == "worker-0"]
        shown.extend((r["pid"], r["text"]["state"], r["text"]["restarts"]) for r in rows
                     if (r["pid"], r["text"]["state"], r["text"]["restarts"]) not in shown)
        return len(rows) == 1 and rows[0]["pid"] not in (old, "0") and \
            rows[0]["text"]["restarts"] == "1" and rows[0]["text"]["state"] == "running"

    wait_for(driver, restarted, "worker-0 restarted, with restarts 1", timeout=15)
    assert all(pid == old or state != "running" or restarts == "1"
               for pid, state, restarts in shown)
    assert by_node(table(driver))["worker-1"]["text"]["restarts"] == "0"


def test_a_failed_reload_shows_a_warning_row(run_cluster, chromium, tmp_path):
    (tmp_path / "pageapp.py").write_text(
        "import os\n"
        "if os.path.exists(os.path.join(os.path.dirname(__file__), 'broken')):\n"
        "    raise ImportError('pageapp: broken on purpose')\n"
        "from tests.clusterapps import whoami  # noqa: E402\n")
    c, url = status_cluster(run_cluster, "pageapp:whoami",
                            env={"PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])})
    driver = chromium()
    driver.get(url)
    wait_for(driver, lambda d: indicator(d) == "live" and all_running(d), "a live table")
    assert not driver.find_element("id", "warnings-section").is_displayed()
    (tmp_path / "broken").touch()
    with pytest.raises(RuntimeError):
        c.reload()
    read = "return [...document.querySelectorAll('tr.warning')].map((tr) => [tr.dataset.kind, " \
        "tr.innerText])"
    warnings = wait_for(driver, lambda d: d.execute_script(read), "a warning row")
    assert [kind for kind, _ in warnings] == ["reload_failed"]
    assert "the last reload failed" in warnings[0][1]
    assert driver.find_element("id", "warnings-section").is_displayed()
    assert all_running(driver)  # the old processes keep serving


def test_without_javascript_the_table_is_there(run_cluster, chromium):
    c, url = status_cluster(run_cluster)
    driver = chromium(scripts=False)
    driver.get(url)
    rows = table(driver)
    assert [r["node"] for r in rows] == NODES
    assert all(r["text"]["state"] == "running" for r in rows)
    assert by_node(rows)["worker-1"]["pid"] == str(c.pids()["worker-1"])
    time.sleep(1.5)  # the script would have polled by now, had it run
    assert indicator(driver) == "snapshot"
    assert not driver.find_element("id", "charts").is_displayed()
    assert "Scripts are off" in driver.find_element("tag name", "body").text


def test_a_failed_poll_says_stale_and_keeps_the_table(run_cluster, chromium):
    c, url = status_cluster(run_cluster)
    driver = chromium()
    driver.get(url)
    wait_for(driver, lambda d: indicator(d) == "live" and all_running(d), "a live table")
    c.stop()
    wait_for(driver, lambda d: indicator(d).startswith("stale"), "the page to say stale")
    assert [r["node"] for r in table(driver)] == NODES
