"""`detector report`: a run directory drawn as one PNG per scored stream and one index.html.

A run directory is what `detector replay --out` or `detector bench nab --out` wrote: result CSVs
(timestamp, anomaly_score, alert, ...) and, in the folder the replay wrote them to, its manifest
(replay.json) naming each CSV's source file and the alert threshold its stream used. A figure
shows the input series over the anomaly score, the threshold (dashed), the alerts (red markers
on both) and label windows (shaded). Lines are drawn from a min/max envelope per pixel column,
so a 22,000-point stream costs what a 2,400-point one does; alert markers are never thinned.
"""

from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from detector.io.csv_replay import MANIFEST, OUTPUT_HEADER, parse_value, read_rows
from detector.nab.corpus import WINDOWS_JSON, window_rows
from detector.records import parse_ts

WIDTH_PX, HEIGHT_PX, DPI = 1200, 520, 100
MAX_SERIES = 6  # input columns drawn per stream; more would be unreadable
SECONDS_PER_DAY = 86_400.0
WINDOW_COLOUR, ALERT_COLOUR = "tab:orange", "red"


@dataclass
class StreamRun:
    """One result CSV and what the report draws from it."""

    name: str                       # path relative to the replay's output folder
    png: str                        # figure file name inside the report folder
    seconds: np.ndarray             # epoch seconds per row (unparsable: the previous row's)
    score: np.ndarray
    alert: np.ndarray               # bool per row
    threshold: float | None
    series: dict[str, np.ndarray]   # input columns; empty when the source is not available
    note: str = ""                  # why `series` is empty
    windows: tuple[tuple[int, int], ...] | None = None  # inclusive rows; None: not labelled

    @property
    def detected(self) -> int:
        """Label windows holding at least one alert."""
        return sum(bool(self.alert[left:right + 1].any()) for left, right in self.windows or ())

    @property
    def alerts_outside(self) -> int:
        inside = np.zeros(self.alert.size, dtype=bool)
        for left, right in self.windows or ():
            inside[left:right + 1] = True
        return int((self.alert & ~inside).sum())


def write_report(run_dir: Path, out: Path | None = None, labels: Path | None = None) -> Path:
    """Draw every result CSV under `run_dir` into `out` (default RUN_DIR/report); the index path.

    Without `labels`, a NAB bench run's corpus labels are used (run.json names the NAB root).
    """
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "report"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    run = _read_json(run_dir / "run.json")
    labels = labels or _corpus_labels(run)
    windows = json.loads(Path(labels).read_text()) if labels else None
    streams = load_streams(run_dir, out, run, windows, labels)
    if not streams:
        raise FileNotFoundError(f"{run_dir}: no result CSV (timestamp,anomaly_score,alert,...)")
    out.mkdir(parents=True, exist_ok=True)
    for stream in streams:
        draw(stream, out / stream.png)
    index = out / "index.html"
    index.write_text(render_index(run_dir, streams, labels, _read_json(run_dir / "summary.json")))
    return index


def load_streams(run_dir: Path, skip: Path, run: dict, labels: dict | None,
                 labels_path: Path | None) -> list[StreamRun]:
    """Every result CSV under `run_dir` (outside `skip`), with its source series and windows."""
    manifests = {m.parent: _read_json(m).get("files", {}) for m in run_dir.rglob(MANIFEST)
                 if not m.is_relative_to(skip)}
    default_threshold = run.get("engine_config", {}).get("threshold")
    streams = []
    for path in sorted(run_dir.rglob("*.csv")):
        if path.is_relative_to(skip) or not _is_result(path):
            continue
        root = next((p for p in path.parents if p in manifests), run_dir)
        name = path.relative_to(root).as_posix()
        entry = manifests.get(root, {}).get(name, {})
        png = path.relative_to(run_dir).with_suffix(".png").as_posix().replace("/", "__")
        stream = _load_stream(name, png, path, entry, default_threshold)
        if labels is not None:
            spans = _spans_for(name, labels)
            if spans is not None:
                stream.windows = _window_rows(stream, spans, labels_path)
        streams.append(stream)
    return streams


def _load_stream(name: str, png: str, path: Path, entry: dict,
                 default_threshold: float | None) -> StreamRun:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at = {column: header.index(column) for column in OUTPUT_HEADER[:3]}
        rows = [r for r in reader if r]
    stamps = [r[at["timestamp"]] for r in rows]
    score = np.array([float(r[at["anomaly_score"]]) for r in rows], dtype=np.float64)
    alert = np.array([r[at["alert"]] == "1" for r in rows], dtype=bool)
    stream = StreamRun(name, png, _seconds(stamps), score, alert,
                       entry.get("threshold", default_threshold), {})
    source = entry.get("source")
    if source is None:
        stream.note = f"input series unknown: {name} is not in a {MANIFEST}"
    elif not Path(source).is_file():
        stream.note = f"input series not found: {source}"
    else:
        metrics, _, inputs = read_rows(Path(source))
        if len(inputs) != len(rows):
            stream.note = f"input series skipped: {source} has {len(inputs)} rows, " \
                          f"the scores {len(rows)}"
        else:
            stream.series = {m: np.array([parse_value(r[j + 1]) if j + 1 < len(r) else math.nan
                                          for r in inputs])
                             for j, m in enumerate(metrics[:MAX_SERIES])}
    return stream


def _is_result(path: Path) -> bool:
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return set(OUTPUT_HEADER[:3]) <= {h.strip() for h in header}


def _seconds(stamps: list[str]) -> np.ndarray:
    seconds, last = np.empty(len(stamps)), 0.0
    for i, stamp in enumerate(stamps):
        ts = parse_ts(stamp)
        last = seconds[i] = last if isinstance(ts, str) else ts
    return seconds


def _spans_for(name: str, labels: dict) -> list | None:
    """The label windows of a stream: by its relative path, else by a unique file name."""
    if name in labels:
        return labels[name]
    same_file = [key for key in labels if Path(key).name == Path(name).name]
    return labels[same_file[0]] if len(same_file) == 1 else None


def _window_rows(stream: StreamRun, spans: list, labels_path: Path | None
                 ) -> tuple[tuple[int, int], ...]:
    """Row ranges by the scorer's rule (first row stamped start .. first row stamped end)."""
    edges = []
    for span in spans:
        pair = [parse_ts(edge) for edge in span]
        bad = next((p for p in pair if isinstance(p, str)), None)
        if len(pair) != 2 or bad:
            raise ValueError(f"{labels_path}: {stream.name}: window {span!r}: "
                             f"{bad or 'expected [start, end]'}")
        edges.append(tuple(_micro(np.array(pair))))
    return window_rows(_micro(stream.seconds), edges, stream.name)


def _micro(seconds: np.ndarray) -> np.ndarray:
    return np.round(seconds * 1e6).astype(np.int64).astype("datetime64[us]")


def envelope(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most 2 * `columns` points keeping each column's minimum and maximum, in row order.

    Rows are cut into runs of equal length (the last may be shorter); a run that is all NaN
    stays a gap.
    """
    n = y.size
    if n <= 2 * columns:
        return x, y
    per = -(-n // columns)
    columns = -(-n // per)
    padded = np.full(columns * per, np.nan)
    padded[:n] = y
    runs = padded.reshape(columns, per)
    start = np.arange(columns) * per
    low = start + np.argmin(np.where(np.isnan(runs), np.inf, runs), axis=1)
    high = start + np.argmax(np.where(np.isnan(runs), -np.inf, runs), axis=1)
    picked = np.stack([np.minimum(low, high), np.maximum(low, high)], axis=1).ravel()
    picked = np.minimum(picked, n - 1)
    return x[picked], y[picked]


def draw(stream: StreamRun, path: Path) -> None:
    """One PNG: input series (top) and anomaly score (bottom) over dates, alerts in red."""
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    # Legends sit right of the plots, where they can never hide an alert marker.
    fig.subplots_adjust(left=0.06, right=0.85, top=0.93, bottom=0.08, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    days = stream.seconds / SECONDS_PER_DAY  # matplotlib's date unit, epoch 1970-01-01
    hit = np.flatnonzero(stream.alert)
    for k, (left, right) in enumerate(stream.windows or ()):
        for ax in (top, bottom):
            ax.axvspan(days[left], days[right], color=WINDOW_COLOUR, alpha=0.25, lw=0,
                       label="label window" if k == 0 and ax is top else None)
    for metric, values in stream.series.items():
        top.plot(*envelope(days, values, WIDTH_PX), lw=0.7, label=metric)
        top.plot(days[hit], values[hit], "o", color=ALERT_COLOUR, ms=4, mfc="none", mew=1.2)
    if not stream.series:
        top.text(0.5, 0.5, stream.note, transform=top.transAxes, ha="center", va="center",
                 color="grey")
    top.set_title(f"{stream.name}: {stream.score.size} events, {hit.size} alerts", fontsize=11)
    bottom.plot(*envelope(days, stream.score, WIDTH_PX), lw=0.7, color="tab:blue",
                label="anomaly score")
    if stream.threshold is not None:
        bottom.axhline(stream.threshold, ls="--", lw=1, color="black",
                       label=f"alert threshold {stream.threshold:g}")
    bottom.plot(days[hit], stream.score[hit], "o", color=ALERT_COLOUR, ms=4, label="alert")
    bottom.set_ylim(-0.03, 1.03)
    bottom.set_ylabel("anomaly score")
    top.set_ylabel("value")
    top.margins(x=0.005)
    locator = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in (top, bottom):
        ax.grid(alpha=0.3, lw=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.savefig(path)


def render_index(run_dir: Path, streams: list[StreamRun], labels: Path | None,
                 summary: dict) -> str:
    """The page: a summary table (one row per stream, linked to its figure), then the figures."""
    esc = html.escape
    head = ["stream", "events", "alerts", "threshold"]
    if labels:
        head += ["windows", "detected", "missed", "alerts outside windows"]
    rows = []
    for s in streams:
        cells = [f'<a href="#{esc(s.png[:-4])}">{esc(s.name)}</a>', str(s.score.size),
                 str(int(s.alert.sum())), "" if s.threshold is None else f"{s.threshold:g}"]
        if labels:
            cells += ([str(len(s.windows)), str(s.detected), str(len(s.windows) - s.detected),
                       str(s.alerts_outside)] if s.windows is not None else ["unlabelled"] * 4)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    totals = ["total", str(sum(s.score.size for s in streams)),
              str(sum(int(s.alert.sum()) for s in streams)), ""]
    if labels:
        labelled = [s for s in streams if s.windows is not None]
        windows = sum(len(s.windows or ()) for s in labelled)
        detected = sum(s.detected for s in labelled)
        totals += [str(windows), str(detected), str(windows - detected),
                   str(sum(s.alerts_outside for s in labelled))]
    rows.append("<tr class=total>" + "".join(f"<td>{c}</td>" for c in totals) + "</tr>")
    figures = "\n".join(
        f'<section id="{esc(s.png[:-4])}"><h2>{esc(s.name)}</h2>'
        f'<img src="{esc(s.png)}" width={WIDTH_PX} height={HEIGHT_PX} loading=lazy '
        f'alt="{esc(s.name)}: series, anomaly score, threshold and alerts"></section>'
        for s in streams)
    notes = ["Red markers are the alerts the engine published: the score reached the stream's "
             "alert threshold (dashed) outside the cooldown after a higher score."]
    if labels:
        notes.append(f"Shaded spans are label windows from {esc(str(labels))}; a window is "
                     "detected when it holds at least one alert.")
    if "detail" in summary:
        fitted = ", ".join(f"{esc(p)} {v['score']:.1f} (threshold {v['threshold']:.4g})"
                           for p, v in summary["detail"].items())
        notes.append(f"NAB scores: {fitted}. The NAB scorer sweeps one threshold per profile "
                     "over these scores; the figures show the alert threshold instead.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Report: {esc(str(run_dir))}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
td:not(:first-child) {{ text-align: right; }}
tr.total {{ font-weight: bold; }}
img {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Report: {esc(str(run_dir))}</h1>
{"".join(f"<p>{n}</p>" for n in notes)}
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>
{chr(10).join(rows)}
</table>
{figures}
</body></html>
"""


def _corpus_labels(run: dict) -> Path | None:
    path = Path(run["nab_root"]) / WINDOWS_JSON if "nab_root" in run else None
    return path if path and path.is_file() else None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
