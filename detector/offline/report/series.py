"""What the page draws of a stream, downsampled per pixel column, as compact JSON.

A panel's line keeps, per pixel column, each series' minimum and maximum (so a spike of one
row in 22,000 is still drawn at its height) plus every alert row; a 22,000-row stream then
costs what a 2,400-row one does. Numbers are written with the digits a chart can show.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from detector.offline.report.load import StreamRun

COLUMNS = 1_200  # pixel columns of the widest panel


def envelope_rows(y: np.ndarray, columns: int) -> np.ndarray:
    """Rows keeping each column's minimum and maximum of `y`, at most 2 * `columns`, in order.

    Rows are cut into runs of equal length (the last may be shorter); a run that is all NaN
    keeps its first row, so it stays a gap.
    """
    n = y.size
    if n <= 2 * columns:
        return np.arange(n)
    per = -(-n // columns)
    columns = -(-n // per)
    padded = np.full(columns * per, np.nan)
    padded[:n] = y
    runs = padded.reshape(columns, per)
    start = np.arange(columns) * per
    low = start + np.argmin(np.where(np.isnan(runs), np.inf, runs), axis=1)
    high = start + np.argmax(np.where(np.isnan(runs), -np.inf, runs), axis=1)
    picked = np.stack([np.minimum(low, high), np.maximum(low, high)], axis=1).ravel()
    return np.unique(np.minimum(picked, n - 1))


def envelope(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) at the rows of `envelope_rows`."""
    rows = envelope_rows(y, columns)
    return x[rows], y[rows]


def stream_payload(stream: StreamRun, columns: int = COLUMNS) -> dict:
    """The stream's panels for the page: one per metric, then the anomaly score."""
    alerts = stream.alert_rows
    top = {int(r): stream.top_metric(int(r)) for r in alerts}
    panels = []
    for metric in stream.metrics:
        actual, expected = stream.actual.get(metric), stream.expected.get(metric)
        series = [s for s in (actual, expected) if s is not None]
        rows = _rows(series, alerts, columns)
        # An alert is marked on the metric that caused it; without a ranking, on every metric.
        mine = [r for r in alerts.tolist() if top[r] in (metric, None)]
        panels.append({
            "metric": metric, "x": _numbers(stream.seconds[rows], 13),
            "y": _numbers(actual[rows], 6) if actual is not None else None,
            "e": _numbers(expected[rows], 6) if expected is not None else None,
            "marks": np.searchsorted(rows, mine).tolist(),
            "shares": [_share(stream, r, metric) for r in mine]})
    rows = _rows([stream.score], alerts, columns)
    return {
        "name": stream.name, "id": stream.anchor, "threshold": stream.threshold,
        "critical": stream.critical, "note": stream.note,
        "windows": [[float(stream.seconds[a]), float(stream.seconds[b])]
                    for a, b in stream.windows or ()],
        "panels": panels,
        "score": {"x": _numbers(stream.seconds[rows], 13), "y": _numbers(stream.score[rows], 4),
                  "marks": np.searchsorted(rows, alerts).tolist()},
    }


def _rows(series: list[np.ndarray], alerts: np.ndarray, columns: int) -> np.ndarray:
    """The rows a panel draws: each series' envelope, every alert, and the first and last
    row (so every panel of a stream spans the same time)."""
    n = series[0].size if series else 0
    ends = np.array([0, n - 1] if n else [], dtype=np.int64)
    return np.unique(np.concatenate([envelope_rows(s, columns) for s in series]
                                    + [alerts, ends]))


def _share(stream: StreamRun, row: int, metric: str) -> float | None:
    return dict(stream.ranked.get(row, [])).get(metric)


class Raw(str):
    """A JSON array already written (numbers at chart precision)."""


def _numbers(values: np.ndarray, digits: int) -> Raw:
    fmt = f"{{:.{digits}g}}".format
    return Raw("[" + ",".join("null" if math.isnan(v) else fmt(v) for v in values.tolist())
               + "]")


def to_json(payload: object) -> str:
    """JSON with the pre-written arrays spliced in, safe inside a <script> element."""
    raws: list[str] = []

    def walk(value: object) -> object:
        if isinstance(value, Raw):
            raws.append(value)
            return f"\x00{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    text = json.dumps(walk(payload), separators=(",", ":"))
    text = re.sub(r'"\\u0000(\d+)\\u0000"', lambda m: raws[int(m.group(1))], text)
    # "<" only occurs inside strings here: escaped, no "</script>" can end the element early.
    return text.replace("<", "\\u003c")
