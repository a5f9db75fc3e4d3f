/* lstm-detector report: sortable and filterable tables, and per stream one uPlot panel per
   metric above the anomaly score, drawn when the stream scrolls into view. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const byId = new Map(data.streams.map((s) => [s.id, s]));
  const drawn = new Map(); // stream id -> its uPlot panels
  const ALERT = "#d62728", ACTUAL = "#1f77b4", EXPECTED = "#7f7f7f";
  const DAY = 86400;

  function stamp(ts) { // "2026-03-02 10:15:00", UTC
    return new Date(ts * 1e3).toISOString().slice(0, 19).replace("T", " ");
  }

  function timeTicks(u, splits, axis, space, incr) {
    // ISO dates; a day or more per tick shows dates, less shows times with the date at 00:00.
    return splits.map((ts, k) => {
      const text = stamp(ts);
      if (incr >= 365 * DAY) return text.slice(0, 4);
      if (incr >= 28 * DAY) return text.slice(0, 7);
      if (incr >= DAY) return k === 0 || text.slice(5, 10) === "01-01"
        ? text.slice(0, 10) : text.slice(5, 10);
      const clock = text.slice(11, incr >= 60 ? 16 : 19);
      return k === 0 || text.slice(11) === "00:00:00" ? `${text.slice(5, 10)}\n${clock}` : clock;
    });
  }

  function fmt(v) {
    if (v == null || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return +(v / 1e9).toPrecision(3) + "G";
    if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
    if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
    return String(+v.toPrecision(4));
  }

  // ---- tables -------------------------------------------------------------------------

  function cellKey(row, col) {
    const cell = row.cells[col];
    const v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
    const n = Number(v);
    return v !== "" && !Number.isNaN(n) ? n : v.toLowerCase();
  }

  function sortBy(table, col) {
    const th = table.tHead.rows[0].cells[col];
    // Numbers sort largest first on the first click, text A to Z.
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const numeric = rows.length && typeof cellKey(rows[0], col) === "number";
    const current = th.dataset.dir || "";
    const dir = current ? (current === "asc" ? "desc" : "asc") : (numeric ? "desc" : "asc");
    const sign = dir === "asc" ? 1 : -1;
    rows.sort((a, b) => {
      const x = cellKey(a, col), y = cellKey(b, col);
      if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
    for (const other of table.tHead.rows[0].cells) delete other.dataset.dir;
    th.dataset.dir = dir;
    body.append(...rows);
  }

  function filter(input) {
    const name = input.dataset.table;
    const table = document.getElementById(name);
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every((w) => text.includes(w));
      if (!row.hidden) shown += 1;
      if (name === "streams") document.getElementById(row.dataset.stream).hidden = row.hidden;
    }
    const count = document.querySelector(`.shown[data-table="${name}"]`);
    count.textContent = `${shown} of ${table.tBodies[0].rows.length} shown`;
  }

  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((th, col) =>
      th.addEventListener("click", () => sortBy(table, col)));
  }
  for (const input of document.querySelectorAll("input.filter")) {
    input.addEventListener("input", () => filter(input));
    filter(input);
  }
  document.getElementById("alerts").tBodies[0].addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (!row) return;
    event.preventDefault();
    focus(row.dataset.stream, Number(row.dataset.t));
  });

  // ---- charts -------------------------------------------------------------------------

  function width(section) {
    return Math.max(400, Math.min(1200, section.clientWidth - 4));
  }

  function shadeWindows(u, windows) {
    if (!windows.length) return;
    const { left, top, width: w, height } = u.bbox;
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(255, 160, 40, 0.25)";
    for (const [a, b] of windows) {
      const x0 = Math.max(left, u.valToPos(a, "x", true));
      const x1 = Math.min(left + w, u.valToPos(b, "x", true));
      if (x1 >= x0) ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
    }
    ctx.restore();
  }

  function follow(u, group) {
    // Zooming one panel zooms every panel of the stream (and those drawn later).
    if (group.busy) return;
    group.busy = true;
    const { min, max } = u.scales.x;
    group.range = { min, max };
    for (const other of group) {
      if (other && other !== u && (other.scales.x.min !== min || other.scales.x.max !== max)) {
        other.setScale("x", { min, max });
      }
    }
    group.busy = false;
  }

  function options(s, group, w, h, series, yRange, timeAxis) {
    // Only the score panel, at the bottom, labels the time axis; every panel has its grid.
    const x = timeAxis ? { space: 80, values: timeTicks, size: 44 }
      : { space: 80, size: 8, values: (u, splits) => splits.map(() => ""),
          ticks: { show: false } };
    series[0] = { label: "time (UTC)", value: (u, ts) => (ts == null ? "–" : stamp(ts)) };
    return {
      width: w, height: h, series,
      // Ticks fall on UTC days and hours whatever the viewer's time zone.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: yRange } },
      axes: [x, { size: 64, values: (u, splits) => splits.map(fmt) }],
      cursor: { sync: { key: s.id }, drag: { x: true, y: false } },
      legend: { live: true },
      hooks: {
        drawClear: [(u) => shadeWindows(u, s.windows)],
        setScale: [(u, key) => { if (key === "x") follow(u, group); }],
      },
    };
  }

  function markers(n, marks, values) {
    const out = new Array(n).fill(null);
    marks.forEach((i) => { out[i] = values[i]; });
    return out;
  }

  function boundedRange(values) {
    // The y range of a metric follows the actual values; an expected value far outside them
    // (a forecast still warming up) may stretch it by half their span at most.
    const finite = values.filter((v) => v != null);
    const lo = Math.min(...finite), hi = Math.max(...finite);
    const slack = (hi - lo) / 2 || Math.abs(hi) / 2 || 1;
    return (u, min, max) => {
      const a = Math.max(min, lo - slack), b = Math.min(max, hi + slack);
      const pad = (b - a) * 0.06 || Math.abs(a) * 0.1 || 1;
      return [a - pad, b + pad];
    };
  }

  function metricPanel(s, p, group, w, holder) {
    const main = p.y || p.e;
    const series = [{}], columns = [p.x];
    if (p.y) {
      series.push({ label: p.metric, stroke: ACTUAL, width: 1.25, value: (u, v) => fmt(v) });
      columns.push(p.y);
    }
    if (p.e) {
      series.push({ label: "expected", stroke: EXPECTED, width: 1, dash: [5, 4],
                    value: (u, v) => fmt(v) });
      columns.push(p.e);
    }
    const shares = new Map(p.marks.map((i, k) => [i, p.shares[k]]));
    series.push({
      label: "alert", stroke: ALERT, width: 0, paths: () => null,
      points: { show: true, size: 9, width: 2, stroke: ALERT, fill: "rgba(214,39,40,0.3)" },
      value: (u, v, si, i) => (v == null || i == null ? "–" : shares.get(i) != null
        ? `${Math.round(shares.get(i) * 100)}% of the surprise` : fmt(v)),
    });
    columns.push(markers(p.x.length, p.marks, main));
    const range = p.y ? boundedRange(p.y) : undefined;
    const panel = new uPlot(options(s, group, w, 120, series, range, false), columns, holder);
    panel.root.classList.add("metric");
    return panel;
  }

  function scorePanel(s, group, w, holder) {
    const sc = s.score;
    const series = [{}, { label: "anomaly score", stroke: "#2c7fb8", width: 1.25,
                          value: (u, v) => (v == null ? "–" : v.toFixed(3)) }];
    const columns = [sc.x, sc.y];
    if (s.threshold != null) {
      series.push({ label: "threshold", stroke: "#000", width: 1, dash: [6, 4],
                    value: () => String(s.threshold) });
      columns.push(sc.x.map(() => s.threshold));
    }
    series.push({ label: "alert", stroke: ALERT, width: 0, paths: () => null,
                  points: { show: true, size: 8, width: 1, stroke: ALERT, fill: ALERT },
                  value: (u, v) => (v == null ? "–" : v.toFixed(3)) });
    columns.push(markers(sc.x.length, sc.marks, sc.y));
    const panel = new uPlot(options(s, group, w, 170, series, () => [-0.02, 1.05], true), columns,
                            holder);
    panel.root.classList.add("score");
    return panel;
  }

  // A stream's panels are drawn one by one as they come near the view: a stream of 38
  // metrics costs at first only the panels on screen.
  const near = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        near.unobserve(entry.target);
        entry.target.make();
      }
    }
  }, { rootMargin: "600px 0px" });

  function prepare(section) {
    const s = byId.get(section.id);
    const holder = section.querySelector(".charts");
    const group = [];
    drawn.set(section.id, group);
    const makers = s.panels.map((p) => (w, slot) => metricPanel(s, p, group, w, slot));
    makers.push((w, slot) => scorePanel(s, group, w, slot));
    makers.forEach((make, k) => {
      const slot = document.createElement("div");
      slot.className = "slot";
      slot.style.minHeight = `${k < s.panels.length ? 160 : 210}px`;
      slot.make = () => {
        if (group[k]) return;
        group.busy = true; // a new panel's own first scale is not a zoom
        group[k] = make(width(section), slot);
        group.busy = false;
        slot.style.minHeight = "";
        if (group.range) group[k].setScale("x", group.range);
      };
      holder.append(slot);
      near.observe(slot);
    });
  }

  function focus(id, t) {
    const section = document.getElementById(id);
    section.hidden = false;
    const group = drawn.get(id);
    const xs = byId.get(id).score.x;
    const first = xs[0], last = xs[xs.length - 1];
    const half = Math.max((last - first) * 0.03, 1);
    group.range = { min: Math.max(first, t - half), max: Math.min(last, t + half) };
    section.scrollIntoView({ block: "start" });
    // The panels now in view are drawn at once, zoomed; the others as they come into view.
    for (const slot of section.querySelectorAll(".slot")) {
      const box = slot.getBoundingClientRect();
      if (box.top < window.innerHeight && box.bottom > 0) slot.make();
    }
    for (const u of group) {
      if (u) u.setScale("x", group.range);
    }
  }

  for (const section of document.querySelectorAll("section.stream")) prepare(section);

  let resizing = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      for (const [id, group] of drawn) {
        const w = width(document.getElementById(id));
        for (const u of group) {
          if (u) u.setSize({ width: w, height: u.height });
        }
      }
    }, 150);
  });

  window.report = { drawn, focus, ready: true };
})();
