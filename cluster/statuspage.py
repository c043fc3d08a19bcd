"""The supervisor's live status page (``cluster run --metrics``): one self-contained HTML
document with the process table rendered in, so it reads with scripts off; its inline
script (statuspage.js) polls ``status.json`` and updates the table and charts in place."""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

# (status row field, column heading): the table's columns; the script reads this order
# back from the heading's data-field attributes. "rps" is computed in the browser.
COLUMNS = (("node", "node"), ("role", "role"), ("pid", "PID"), ("state", "state"),
           ("uptime", "uptime"), ("restarts", "restarts"), ("connections", "conns"),
           ("requests", "requests"), ("rps", "req/s"), ("cpu_percent", "CPU %"),
           ("rss", "RSS"), ("fds", "FDs"))

WARNING_TITLES = {"crash_loop": "crash loop", "reload_failed": "reload failed"}


def _asset(name: str) -> str:
    """A file shipped next to this module (the page's CSS and script)."""
    return resources.files("cluster").joinpath(name).read_text(encoding="utf-8")


def humanBytes(n: float) -> str:
    """A size as people read it (here, in `cluster status` and in the script's humanBytes)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def humanTime(seconds: float) -> str:
    """An uptime as people read it (here, in `cluster status` and in the script's humanTime)."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _cell(field: str, row: dict[str, Any]) -> str:
    """One ``<td>`` of a process row: the formatted value, the raw one in data-value."""
    value = row.get(field)
    if field == "rps" or value is None:
        text, raw = "–", ""
    elif field == "uptime":
        text, raw = humanTime(value), value
    elif field == "rss":
        text, raw = humanBytes(value), value
    elif field == "cpu_percent":
        text, raw = f"{value:.1f}", value
    else:
        text, raw = str(value), value
    cls = f' class="state-{html.escape(str(value))}"' if field == "state" else ""
    return (f'<td data-field="{field}" data-value="{html.escape(str(raw))}"{cls}>'
            f"{html.escape(text)}</td>")


def _processRow(row: dict[str, Any]) -> str:
    """A ``<tr data-node data-pid>``: keyed by both, as a reload shows a worker twice."""
    cells = "".join(_cell(field, row) for field, _ in COLUMNS)
    return (f'<tr data-node="{html.escape(str(row.get("node", "")))}" '
            f'data-pid="{html.escape(str(row.get("pid", "")))}">{cells}</tr>')


def _warningRow(w: dict[str, Any]) -> str:
    """A crash loop or a failed reload, as one ``<tr class="warning">``."""
    kind = str(w.get("kind", ""))
    node = w.get("node")
    return (f'<tr class="warning" data-kind="{html.escape(kind)}">'
            f"<th>{html.escape(WARNING_TITLES.get(kind, kind))}</th>"
            f"<td>{html.escape(str(node)) if node else 'cluster'}</td>"
            f"<td>{html.escape(str(w.get('message', '')))}</td></tr>")


def _summary(status: dict[str, Any]) -> str:
    """The line under the title: where it listens, how it routes, what is in progress."""
    reload = status.get("reload") or {}
    items = [("bind", status.get("bind")), ("route", status.get("route")),
             ("workers", status.get("workers")), ("metrics", status.get("metrics")),
             ("operation", status.get("operation") or "none"),
             ("reload", reload.get("state") or "none"),
             ("orphans_reaped", status.get("orphans_reaped", 0))]
    return "".join(f'<div><dt>{html.escape(key.replace("_", " "))}</dt>'
                   f'<dd data-field="{key}">{html.escape(str(value))}</dd></div>'
                   for key, value in items)


def render(status: dict[str, Any]) -> bytes:
    """The complete status page (UTF-8) for a ``cluster status --json`` document."""
    name = html.escape(str(status.get("name", "")))
    heads = "".join(f'<th data-field="{f}">{html.escape(h)}</th>' for f, h in COLUMNS)
    rows = "".join(_processRow(r) for r in status.get("processes", []))
    warnings = status.get("warnings") or []
    hidden = "" if warnings else " hidden"
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="5"></noscript>
<title>cluster {name}: status</title>
<style>
{_asset("statuspage.css")}</style>
</head>
<body>
<header>
<h1>cluster <span data-field="name">{name}</span></h1>
<p id="indicator" class="snapshot">snapshot</p>
</header>
<dl id="summary">{_summary(status)}</dl>
<section id="warnings-section"{hidden}>
<h2>warnings</h2>
<table id="warnings"><tbody>{"".join(_warningRow(w) for w in warnings)}</tbody></table>
</section>
<table id="processes">
<thead><tr>{heads}</tr></thead>
<tbody>{rows}</tbody>
</table>
<noscript><p class="note">Scripts are off: this table is a snapshot, reloaded every
5 seconds.</p></noscript>
<section id="charts" hidden>
<figure><figcaption>requests/s per worker, last minute</figcaption>
<canvas id="chart-rps" width="540" height="160"></canvas></figure>
<figure><figcaption>CPU % per worker, last minute</figcaption>
<canvas id="chart-cpu" width="540" height="160"></canvas></figure>
<ul id="legend"></ul>
</section>
<script>
{_asset("statuspage.js")}</script>
</body>
</html>
"""
    return page.encode("utf-8")
