// The status page's script (statuspage.py inlines it): poll status.json about once a second,
// update the server-rendered table in place, and chart requests/s and CPU % per worker.
"use strict";
(() => {
  const POLL_MS = 1000;
  const TIMEOUT_MS = 3000;
  const KEEP = 60; // samples per worker in the charts
  const COLORS = ["#1f6fb4", "#d0342c", "#2a9d3a", "#8e44ad", "#e67e22", "#16a2b8",
                  "#8c564b", "#d63384"];
  const TITLES = {crash_loop: "crash loop", reload_failed: "reload failed"}; // as WARNING_TITLES
  const processes = document.querySelector("#processes tbody");
  const fields = [...document.querySelectorAll("#processes thead th")]
    .map((th) => th.dataset.field);
  const indicator = document.getElementById("indicator");
  let previous = new Map(); // "node pid" -> the last sample of that process
  const history = new Map(); // worker node -> [{rps, cpu}], oldest first
  let lastGood = null;

  // As statuspage.py's humanBytes and humanTime, so a poll doesn't reformat the table.
  function humanBytes(n) {
    for (const unit of ["B", "KiB", "MiB"]) {
      if (n < 1024) return unit === "B" ? `${n.toFixed(0)} B` : `${n.toFixed(1)} ${unit}`;
      n /= 1024;
    }
    return `${n.toFixed(1)} GiB`;
  }

  function humanTime(seconds) {
    const s = Math.floor(seconds);
    const pad = (x) => String(x).padStart(2, "0");
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  }

  // Requests/s and CPU % of one process since the last poll (undefined until two samples,
  // and when a counter went backwards).
  function rates(p, now) {
    const sample = {t: now, requests: p.requests, cpuSeconds: p.cpu_seconds};
    const before = previous.get(`${p.node} ${p.pid}`);
    const dt = before ? (now - before.t) / 1000 : 0;
    const rate = (a, b) => (typeof a === "number" && typeof b === "number" && a >= b && dt > 0
      ? (a - b) / dt : undefined);
    const cpu = before && rate(sample.cpuSeconds, before.cpuSeconds);
    return {sample, rps: before && rate(sample.requests, before.requests),
            cpu: cpu === undefined ? undefined : cpu * 100};
  }

  function cellText(field, p, r) {
    const v = field === "rps" ? r.rps : p[field];
    if (v === undefined || v === null) return ["–", ""];
    if (field === "uptime") return [humanTime(v), v];
    if (field === "rss") return [humanBytes(v), v];
    if (field === "cpu_percent" || field === "rps") return [v.toFixed(1), v];
    return [String(v), v];
  }

  function newRow(p) {
    const tr = document.createElement("tr");
    tr.dataset.node = p.node;
    tr.dataset.pid = p.pid;
    for (const field of fields) tr.insertCell().dataset.field = field;
    return tr;
  }

  function fill(tr, p, r) {
    fields.forEach((field, i) => {
      const td = tr.cells[i];
      const [text, raw] = cellText(field, p, r);
      if (td.textContent !== text) td.textContent = text;
      td.dataset.value = raw;
      if (field === "state") td.className = `state-${p.state}`;
    });
  }

  // Rows are keyed by node and pid: during a reload a worker shows twice (old and successor).
  function updateTable(doc, now) {
    const rows = new Map([...processes.rows].map((tr) => [`${tr.dataset.node} ${tr.dataset.pid}`,
                                                          tr]));
    const seen = new Map();
    const perWorker = new Map();
    doc.processes.forEach((p, i) => {
      const key = `${p.node} ${p.pid}`;
      const r = rates(p, now);
      seen.set(key, r.sample);
      const tr = rows.get(key) || newRow(p);
      rows.delete(key);
      fill(tr, p, r);
      if (processes.rows[i] !== tr) processes.insertBefore(tr, processes.rows[i] || null);
      if (p.role === "worker") {
        const w = perWorker.get(p.node) || {rps: null, cpu: null};
        if (r.rps !== undefined) w.rps = (w.rps || 0) + r.rps;
        if (r.cpu !== undefined) w.cpu = (w.cpu || 0) + r.cpu;
        perWorker.set(p.node, w);
      }
    });
    for (const tr of rows.values()) tr.remove();
    previous = seen;
    return perWorker;
  }

  function updateSummary(doc) {
    const values = {bind: doc.bind, route: doc.route, workers: doc.workers, metrics: doc.metrics,
                    operation: doc.operation || "none",
                    reload: (doc.reload && doc.reload.state) || "none",
                    orphans_reaped: doc.orphans_reaped ?? 0};
    for (const dd of document.querySelectorAll("#summary dd")) {
      dd.textContent = String(values[dd.dataset.field]);
    }
  }

  function updateWarnings(list) {
    const rows = list.map((w) => {
      const tr = document.createElement("tr");
      tr.className = "warning";
      tr.dataset.kind = w.kind;
      const cells = [TITLES[w.kind] || w.kind, w.node || "cluster", w.message];
      cells.forEach((text, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        cell.textContent = String(text ?? "");
        tr.append(cell);
      });
      return tr;
    });
    document.querySelector("#warnings tbody").replaceChildren(...rows);
    document.getElementById("warnings-section").hidden = rows.length === 0;
  }

  // Every worker in the document gets a sample each poll (null while unknown: a gap), so
  // all the series stay aligned on the same ticks.
  function record(perWorker) {
    for (const node of history.keys()) if (!perWorker.has(node)) history.delete(node);
    for (const [node, sample] of perWorker) {
      const series = history.get(node) || [];
      series.push(sample);
      if (series.length > KEEP) series.shift();
      history.set(node, series);
    }
  }

  function colorOf(node) {
    const m = /(\d+)$/.exec(node);
    return COLORS[(m ? Number(m[1]) : 0) % COLORS.length];
  }

  function niceCeil(x) {
    if (!(x > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    return [1, 2, 5, 10].find((m) => x <= m * p) * p;
  }

  function draw(canvas, key, unit) {
    const ctx = canvas.getContext("2d");
    const {width: w, height: h} = canvas;
    const pad = 6;
    const top = 18;
    let max = 0;
    for (const series of history.values()) {
      for (const s of series) if (s[key] !== null) max = Math.max(max, s[key]);
    }
    const scale = niceCeil(max);
    const y = (v) => top + (h - top - pad) * (1 - v / scale);
    ctx.clearRect(0, 0, w, h);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#e3e6ea";
    for (const f of [0, 0.5, 1]) {
      ctx.beginPath();
      ctx.moveTo(pad, Math.round(y(f * scale)) + 0.5);
      ctx.lineTo(w - pad, Math.round(y(f * scale)) + 0.5);
      ctx.stroke();
    }
    ctx.fillStyle = "#4b5560";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(`${scale >= 1000 ? `${scale / 1000}k` : scale} ${unit}`, pad, 12);
    const step = (w - 2 * pad) / (KEEP - 1);
    ctx.lineWidth = 2;
    for (const [node, series] of history) {
      ctx.strokeStyle = colorOf(node);
      ctx.beginPath();
      let pen = false;
      series.forEach((s, i) => {
        if (s[key] === null) {
          pen = false;
          return;
        }
        const px = w - pad - (series.length - 1 - i) * step;
        if (pen) ctx.lineTo(px, y(s[key]));
        else ctx.moveTo(px, y(s[key]));
        pen = true;
      });
      ctx.stroke();
    }
  }

  function updateLegend() {
    const items = [...history.keys()].map((node) => {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.style.background = colorOf(node);
      li.append(swatch, node);
      return li;
    });
    document.getElementById("legend").replaceChildren(...items);
  }

  function setLive(ok, error) {
    indicator.className = ok ? "live" : "stale";
    document.body.classList.toggle("stale", !ok);
    if (ok) {
      indicator.textContent = "live";
      indicator.title = "";
      return;
    }
    const age = lastGood === null ? ""
      : `, last update ${humanTime((Date.now() - lastGood) / 1000)} ago`;
    indicator.textContent = `stale${age}`;
    indicator.title = String(error);
  }

  async function poll() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const response = await fetch("status.json", {cache: "no-store", signal: abort.signal});
      if (!response.ok) throw new Error(`status.json: HTTP ${response.status}`);
      const doc = await response.json();
      record(updateTable(doc, performance.now()));
      updateSummary(doc);
      updateWarnings(doc.warnings || []);
      draw(document.getElementById("chart-rps"), "rps", "req/s");
      draw(document.getElementById("chart-cpu"), "cpu", "%");
      updateLegend();
      lastGood = Date.now();
      setLive(true);
    } catch (error) {
      setLive(false, error);
    } finally {
      clearTimeout(timer);
      setTimeout(poll, POLL_MS);
    }
  }

  document.getElementById("charts").hidden = false; // without the script there is nothing to draw
  poll();
})();
