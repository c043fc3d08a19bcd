"""The status page's HTML (cluster.statuspage.render), read back with html.parser."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

from cluster import statuspage


def row(role: str, node: str, pid: int, state: str = "running", **kw) -> dict:
    base = {"role": role, "node": node, "pid": pid, "state": state, "uptime": 75.4,
            "restarts": 0, "connections": 3, "accepted": 40, "cpu_percent": 12.5,
            "rss": 30 * 1024 * 1024, "fds": 21, "cpu_seconds": 1.25, "requests": 1234}
    return {**base, **kw}


DOC = {"name": "prod", "bind": "127.0.0.1:9000", "route": "least-connections", "workers": 2,
       "operation": "reload", "reload": {"state": "failed", "error": "ImportError: x"},
       "orphans_reaped": 1, "metrics": "127.0.0.1:9100",
       "warnings": [{"kind": "crash_loop", "node": "worker-1",
                     "message": "worker-1 is in a crash loop: 5 quick exits in a row"},
                    {"kind": "reload_failed", "node": None,
                     "message": "the last reload failed: ImportError: x"}],
       "processes": [row("supervisor", "supervisor", 100), row("gateway", "gateway", 101),
                     row("worker", "worker-0", 200, restarts=2),
                     row("worker", "worker-0", 210, state="starting", uptime=0.5),
                     row("worker", "worker-1", 0, state="down", cpu_percent=0.0, rss=0)]}


class Page(HTMLParser):
    """What a test reads back: process rows (cells by data-field), warning rows, every
    start tag's attributes, the text of script and style elements, and all visible text."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.rows: list[dict] = []  # {"node", "pid", "cells": {field: (text, data-value)}}
        self.warnings: list[dict] = []  # {"kind", "text"}
        self.tags: list[tuple[str, dict]] = []
        self.code: list[str] = []
        self.text: list[str] = []
        self._stack: list[tuple[str, dict]] = []
        self.feed(body.decode("utf-8"))
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and "data-node" in a:
            self.rows.append({"node": a["data-node"], "pid": a["data-pid"], "cells": {}})
        if tag == "tr" and "warning" in a.get("class", "").split():
            self.warnings.append({"kind": a.get("data-kind"), "text": ""})
        if tag not in ("meta", "link"):
            self._stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        tags = [t for t, _ in self._stack]
        if tags and tags[-1] in ("script", "style"):
            self.code.append(data)
            return
        self.text.append(data)
        if "tr" not in tags:
            return
        tr = next(a for t, a in reversed(self._stack) if t == "tr")
        if "data-node" in tr and tags[-1] == "td":
            td = self._stack[-1][1]
            self.rows[-1]["cells"][td["data-field"]] = (data, td["data-value"])
        elif "warning" in tr.get("class", ""):
            self.warnings[-1]["text"] += data + " "


def test_every_process_row_and_field():
    page = Page(statuspage.render(DOC))
    assert [(r["node"], r["pid"]) for r in page.rows] == [
        ("supervisor", "100"), ("gateway", "101"), ("worker-0", "200"), ("worker-0", "210"),
        ("worker-1", "0")]
    fields = [f for f, _ in statuspage.COLUMNS]
    assert all(list(r["cells"]) == fields for r in page.rows)
    w0 = page.rows[2]["cells"]
    assert w0["state"] == ("running", "running") and w0["pid"] == ("200", "200")
    assert w0["uptime"] == ("1m15s", "75.4") and w0["restarts"] == ("2", "2")
    assert w0["connections"] == ("3", "3") and w0["requests"] == ("1234", "1234")
    assert w0["cpu_percent"] == ("12.5", "12.5") and w0["rss"] == ("30.0 MiB", "31457280")
    assert w0["rps"] == ("–", "")  # a rate needs two samples: the script computes it
    assert page.rows[3]["cells"]["state"][0] == "starting"
    assert page.rows[4]["cells"]["state"][0] == "down"
    text = " ".join(page.text)
    for shown in ("prod", "127.0.0.1:9000", "least-connections", "127.0.0.1:9100", "reload",
                  "failed", "snapshot"):
        assert shown in text


def test_warning_rows():
    page = Page(statuspage.render(DOC))
    assert [w["kind"] for w in page.warnings] == ["crash_loop", "reload_failed"]
    assert "crash loop" in page.warnings[0]["text"] and "worker-1" in page.warnings[0]["text"]
    assert "ImportError: x" in page.warnings[1]["text"]
    hidden = [a for t, a in page.tags if a.get("id") == "warnings-section"][0]
    assert "hidden" not in hidden
    quiet = Page(statuspage.render({**DOC, "warnings": []}))
    assert quiet.warnings == []
    assert "hidden" in [a for t, a in quiet.tags if a.get("id") == "warnings-section"][0]


def test_hostile_text_is_escaped():
    evil = "<script>alert(1)</script>"
    doc = copy.deepcopy(DOC)
    doc["name"] = evil
    doc["route"] = '"><img src=x onerror=alert(1)>'
    doc["processes"][2]["node"] = evil
    doc["processes"][2]["state"] = '" onmouseover="alert(1)'
    doc["warnings"][1]["message"] = f"the last reload failed: {evil}"
    body = statuspage.render(doc)
    assert evil.encode() not in body and b"<img" not in body
    assert body.count(b"<script>") == 1  # the page's own
    page = Page(body)
    assert page.rows[2]["node"] == evil  # shown as text, as it was
    assert page.rows[2]["cells"]["state"][0] == '" onmouseover="alert(1)'
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    assert evil in page.warnings[1]["text"] and evil in " ".join(page.text)


def test_nothing_is_fetched_from_elsewhere():
    page = Page(statuspage.render(DOC))
    urls = [a[k] for _, a in page.tags for k in ("src", "href", "action") if a.get(k)]
    assert urls == ["data:,"]  # the favicon: none, so the browser does not ask for one
    assert not [t for t, _ in page.tags if t in ("iframe", "object", "embed", "img", "base")]
    code = "".join(page.code)
    assert not re.search(r"https?:|@import|url\(|\bimport\b", code)
    assert re.findall(r"fetch\(([^,)]*)", code) == ['"status.json"']  # relative: same origin
    assert len([t for t, _ in page.tags if t == "script"]) == 1  # inline, no src
    assert len([t for t, _ in page.tags if t == "canvas"]) == 2


def test_every_node_of_a_reload_is_a_row_of_its_own():
    doc = copy.deepcopy(DOC)
    doc["processes"] = doc["processes"][2:4]
    page = Page(statuspage.render(doc))
    assert [(r["node"], r["pid"], r["cells"]["state"][0]) for r in page.rows] == [
        ("worker-0", "200", "running"), ("worker-0", "210", "starting")]
