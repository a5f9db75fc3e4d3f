"""The report page: one self-contained HTML file (styles, the uPlot library, the page's own
script and the downsampled series all inline, so it opens without a network).

Above the charts: a table of streams and a table of alerts (time, stream, score, severity, the
metrics ranked by their share of the surprise with expected vs actual), both sortable and
filterable. Per stream: one panel per metric on its own y-axis (actual and expected), then the
anomaly score with the alert threshold; alerts marked on the metric that caused them, label
windows shaded; drag to zoom (all panels of a stream follow), double-click to reset, hover
for values.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from detector.offline.report.load import StreamRun, corpus_labels, load_streams, read_json
from detector.offline.report.series import stream_payload, to_json

TOP_METRICS = 3  # ranked metrics shown per alert in the table (all in its tooltip)
esc = html.escape


def write_report(run_dir: Path, out: Path | None = None, labels: Path | None = None) -> Path:
    """Write RUN_DIR's report page into `out` (default RUN_DIR/report); its path.

    Without `labels`, a NAB bench run's corpus labels are used (run.json names the NAB root).
    """
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "report"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    run = read_json(run_dir / "run.json")
    labels = labels or corpus_labels(run)
    windows = read_json(Path(labels)) if labels else None
    if labels and not Path(labels).is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    streams = load_streams(run_dir, out, run, windows, labels)
    if not streams:
        raise FileNotFoundError(f"{run_dir}: no result CSV (timestamp,anomaly_score,alert,...)")
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(render(run_dir, streams, labels, read_json(run_dir / "summary.json")),
                     encoding="utf-8")
    return index


def render(run_dir: Path, streams: list[StreamRun], labels: Path | None, summary: dict) -> str:
    title = f"Report: {run_dir}"
    data = to_json({"streams": [stream_payload(s) for s in streams]})
    n_alerts = sum(int(s.alert.sum()) for s in streams)
    sections = "\n".join(_section(s) for s in streams)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_asset("uPlot.min.css")}
{_asset("report.css")}</style></head><body>
<h1>{esc(title)}</h1>
{"".join(f"<p class=note>{n}</p>" for n in _notes(labels, summary))}
<h2>Streams ({len(streams)})</h2>
<p><input type=search class=filter data-table=streams placeholder="filter streams"
 aria-label="filter streams"> <span class=shown data-table=streams></span></p>
{_streams_table(streams, labels is not None)}
<h2>Alerts ({n_alerts})</h2>
<p><input type=search class=filter data-table=alerts placeholder="filter alerts (stream, \
metric, severity)" aria-label="filter alerts"> <span class=shown data-table=alerts></span></p>
{_alerts_table(streams)}
<h2>Charts</h2>
<p class=note>Drag across a chart to zoom (every panel of the stream follows), double-click to
zoom out, hover for the values. Times are UTC.</p>
{sections}
<script type="application/json" id="report-data">{data}</script>
<script>/*! {_asset("uPlot.LICENSE")} */
{_asset("uPlot.iife.min.js")}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""


def _notes(labels: Path | None, summary: dict) -> list[str]:
    notes = ["Red markers are the alerts the engine published: the score reached the stream's "
             "alert threshold (dashed) outside the cooldown after a higher score. An alert is "
             "marked on the metric with the largest share of the stream's recent evidence "
             "(README, the alert's metrics); grey "
             "dashed lines are the values the model expected."]
    if labels:
        notes.append(f"Shaded spans are label windows from {esc(str(labels))}; a window is "
                     "caught when it holds at least one alert.")
    if "detail" in summary:
        fitted = ", ".join(f"{esc(p)} {v['score']:.1f} (threshold {v['threshold']:.4g})"
                           for p, v in summary["detail"].items())
        notes.append(f"NAB scores: {fitted}. The NAB scorer sweeps one threshold per profile "
                     "over these scores; the charts show the alert threshold instead.")
    return notes


def _cell(text: object, sort: float | str | None = None, cls: str = "") -> str:
    key = "" if sort is None else f' data-v="{esc(str(sort))}"'
    return f"<td{key}{f' class={cls}' if cls else ''}>{text}</td>"


def _streams_table(streams: list[StreamRun], labelled: bool) -> str:
    head = ["stream", "metrics", "events", "alerts", "threshold", "max score"]
    if labelled:
        head += ["windows", "caught", "missed", "alerts outside windows"]
    rows = []
    for s in streams:
        cells = [_cell(f'<a href="#{s.anchor}">{esc(s.name)}</a>', s.name),
                 _cell(len(s.metrics), len(s.metrics)), _cell(s.score.size, s.score.size),
                 _cell(int(s.alert.sum()), int(s.alert.sum())),
                 _cell(_fmt(s.threshold), s.threshold if s.threshold is not None else -1),
                 _cell(_fmt(float(s.score.max()) if s.score.size else None),
                       float(s.score.max()) if s.score.size else -1)]
        if labelled:
            if s.windows is None:
                cells += [_cell("unlabelled", -1)] * 4
            else:
                counts = (len(s.windows), s.detected, len(s.windows) - s.detected,
                          s.alerts_outside)
                cells += [_cell(c, c) for c in counts]
        rows.append(f'<tr data-stream="{s.anchor}">' + "".join(cells) + "</tr>")
    totals = ["total", "", str(sum(s.score.size for s in streams)),
              str(sum(int(s.alert.sum()) for s in streams)), "", ""]
    if labelled:
        done = [s for s in streams if s.windows is not None]
        windows = sum(len(s.windows or ()) for s in done)
        caught = sum(s.detected for s in done)
        totals += [str(windows), str(caught), str(windows - caught),
                   str(sum(s.alerts_outside for s in done))]
    return _table("streams", head, rows, totals)


def _alerts_table(streams: list[StreamRun]) -> str:
    head = ["time (UTC)", "stream", "score", "severity", "metrics (share: actual, expected)"]
    rows = []
    for s in streams:
        for r in s.alert_rows.tolist():
            ranked = s.ranked.get(r) or [(m, math.nan) for m in s.metrics[:1]]
            shown = "<br>".join(_metric(s, r, m, share) for m, share in ranked[:TOP_METRICS])
            more = len(ranked) - TOP_METRICS
            if more > 0:
                shown += f"<br><span class=more>+{more} more</span>"
            every = "; ".join(f"{m}{_share(share)}" for m, share in ranked)
            severity = s.severity(r)
            cells = [_cell(_time(s.seconds[r]), float(s.seconds[r])),
                     _cell(f'<a href="#{s.anchor}">{esc(s.name)}</a>', s.name),
                     _cell(f"{s.score[r]:.3f}", float(s.score[r])),
                     _cell(severity, severity, cls=severity),
                     f'<td title="{esc(every)}">{shown}</td>']
            rows.append(f'<tr data-stream="{s.anchor}" data-t="{float(s.seconds[r])!r}">'
                        + "".join(cells) + "</tr>")
    return _table("alerts", head, rows, None)


def _metric(s: StreamRun, row: int, metric: str, share: float) -> str:
    actual, expected = s.actual.get(metric), s.expected.get(metric)
    values = [f"{_fmt(actual[row]) if actual is not None else '?'}"]
    if expected is not None:
        values.append(f"expected {_fmt(expected[row])}")
    head = esc(metric) + _share(share)
    return f"<b>{head}</b>: {', '.join(values)}"


def _table(name: str, head: list[str], rows: list[str], totals: list[str] | None) -> str:
    th = "".join(f'<th title="sort">{esc(h)}</th>' for h in head)
    foot = ("<tfoot><tr class=total>" + "".join(f"<td>{c}</td>" for c in totals)
            + "</tr></tfoot>") if totals else ""
    return (f'<div class=table-wrap><table class=sortable id="{name}"><thead><tr>{th}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody>{foot}</table></div>')


def _section(s: StreamRun) -> str:
    alerts = int(s.alert.sum())
    facts = [f"{s.score.size} events", f"{alerts} alert{'s' * (alerts != 1)}"]
    if s.threshold is not None:
        facts.append(f"threshold {s.threshold:g}")
    if s.windows is not None:
        facts.append(f"{s.detected} of {len(s.windows)} label windows caught")
    note = f' <span class=warn>{esc(s.note)}</span>' if s.note else ""
    return (f'<section class=stream id="{s.anchor}" data-name="{esc(s.name)}">'
            f'<h3>{esc(s.name)} <small>{", ".join(facts)}</small>{note}</h3>'
            f'<div class=charts></div></section>')


def _time(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _fmt(value: float | None) -> str:
    """A value as the charts' axes write it: 4 significant digits, k/M/G from 10,000."""
    if value is None or math.isnan(value):
        return ""
    for at_least, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= at_least:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def _share(share: float) -> str:
    return "" if math.isnan(share) else f" {share:.0%}" if share >= 0.005 else " <1%"


def _asset(name: str) -> str:
    text = resources.files("detector.offline.report").joinpath(f"assets/{name}").read_text("utf-8")
    # Inline scripts and styles end at the first "</script" or "</style": none may hide in them.
    if "</script" in text.lower() or "</style" in text.lower() or (
            name.endswith("LICENSE") and "*/" in text):
        raise ValueError(f"assets/{name}: holds a closing tag and cannot be inlined")
    return text
