"""A run directory read back for the report: per result CSV, the scores, alerts, expected
values and ranked metrics it holds, the input series of its source file and its label windows.

A run directory is what `detector replay --out` or `detector bench nab --out` wrote: result CSVs
(timestamp, anomaly_score, alert, ...) and, in the folder the replay wrote them to, its manifest
(replay.json) naming each CSV's source file and the thresholds its stream used. Result CSVs of
earlier versions (without expected_<metric> and metrics columns) load with less detail.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.bench.nab.corpus import WINDOWS_JSON, window_rows
from detector.errors import InputFileError
from detector.offline.csv_format import (
    EXPECTED_PREFIX,
    MANIFEST,
    METRICS_COLUMN,
    OUTPUT_HEADER,
    parse_value,
    read_input,
    stamp_seconds,
)

REQUIRED = OUTPUT_HEADER[:3]  # timestamp, anomaly_score, alert


@dataclass
class StreamRun:
    """One result CSV and what the report shows of it."""

    name: str                       # path relative to the replay's output folder
    anchor: str                     # id of its section in the page
    seconds: np.ndarray             # epoch seconds per row, read as the replay read them
    score: np.ndarray
    alert: np.ndarray               # bool per row
    threshold: float | None
    critical: float | None          # severity is critical from this score on
    metrics: list[str]              # input columns, in the source file's order
    actual: dict[str, np.ndarray]   # input series; empty when the source is not available
    expected: dict[str, np.ndarray]  # the model's forecast; empty for older result CSVs
    ranked: dict[int, list[tuple[str, float]]] = field(default_factory=dict)  # alert row ->
    note: str = ""                  # why `actual` is empty
    windows: tuple[tuple[int, int], ...] | None = None  # inclusive rows; None: not labelled

    @property
    def alert_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alert)

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

    def severity(self, row: int) -> str:
        if self.critical is None:
            return ""
        return "critical" if self.score[row] >= self.critical else "warning"

    def top_metric(self, row: int) -> str | None:
        """The metric that made alert `row` unusual: its ranking's first, or the only one."""
        if row in self.ranked and self.ranked[row]:
            return self.ranked[row][0][0]
        return self.metrics[0] if len(self.metrics) == 1 else None


def load_streams(run_dir: Path, skip: Path, run: dict, labels: dict | None,
                 labels_path: Path | None) -> list[StreamRun]:
    """Every result CSV under `run_dir` (outside `skip`), with its source series and windows."""
    manifests = {m.parent: read_json(m).get("files", {}) for m in run_dir.rglob(MANIFEST)
                 if not m.is_relative_to(skip)}
    engine = run.get("engine_config", {})
    defaults = (engine.get("threshold"), engine.get("critical_threshold"))
    streams = []
    for path in sorted(run_dir.rglob("*.csv")):
        if path.is_relative_to(skip) or not _is_result(path):
            continue
        root = next((p for p in path.parents if p in manifests), run_dir)
        name = path.relative_to(root).as_posix()
        entry = manifests.get(root, {}).get(name, {})
        stream = load_stream(name, f"s{len(streams)}", path, entry, defaults)
        if labels is not None:
            spans = _spans_for(name, labels)
            if spans is not None:
                stream.windows = _window_rows(stream, spans, labels_path)
        streams.append(stream)
    return streams


def load_stream(name: str, anchor: str, path: Path, entry: dict,
                defaults: tuple[float | None, float | None]) -> StreamRun:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r]
    at = {column: header.index(column) for column in REQUIRED}
    columns = list(zip(*rows, strict=False)) if rows else [()] * len(header)
    stamps = list(columns[at["timestamp"]])
    score = floats(columns[at["anomaly_score"]])
    alert = np.array([v == "1" for v in columns[at["alert"]]], dtype=bool)
    expected = {h.removeprefix(EXPECTED_PREFIX): floats(columns[j])
                for j, h in enumerate(header) if h.startswith(EXPECTED_PREFIX)}
    ranked = {}
    if METRICS_COLUMN in header:
        cells = columns[header.index(METRICS_COLUMN)]
        ranked = {int(i): [(str(m), float(s)) for m, s in json.loads(cells[i])]
                  for i in np.flatnonzero(alert) if cells[i]}
    stream = StreamRun(name, anchor, stamp_seconds(stamps)[0], score, alert,
                       entry.get("threshold", defaults[0]),
                       entry.get("critical_threshold", defaults[1]), list(expected), {},
                       expected, ranked)
    _attach_source(stream, entry.get("source"), len(rows))
    return stream


def _attach_source(stream: StreamRun, source: str | None, n_rows: int) -> None:
    """The input series from the replay's source file, when it is there and still matches."""
    if source is None:
        stream.note = f"input series unknown: {stream.name} is not in a {MANIFEST}"
        return
    if not Path(source).is_file():
        stream.note = f"input series not found: {source}"
        return
    try:
        inputs = read_input(Path(source))
    except InputFileError as exc:
        stream.note = f"input series unreadable: {exc}"
        return
    if inputs.n != n_rows:
        stream.note = (f"input series skipped: {source} has {inputs.n} rows, the scores "
                       f"{n_rows}")
        return
    stream.metrics = list(inputs.metrics)
    stream.actual = {m: inputs.values[:, j] for j, m in enumerate(inputs.metrics)}


def floats(cells: tuple[str, ...] | list[str]) -> np.ndarray:
    """Cells as floats; empty, unparsable or infinite cells are NaN."""
    try:
        out = np.array(cells, dtype=np.float64)
    except ValueError:  # an empty or unparsable cell somewhere: cell by cell
        out = np.array([parse_value(c) for c in cells], dtype=np.float64)
    out[~np.isfinite(out)] = math.nan
    return out


def _is_result(path: Path) -> bool:
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return set(REQUIRED) <= {h.strip() for h in header}


def _spans_for(name: str, labels: dict) -> list | None:
    """The label windows of a stream: by its relative path, else by a unique file name."""
    if name in labels:
        return labels[name]
    same_file = [key for key in labels if Path(key).name == Path(name).name]
    return labels[same_file[0]] if len(same_file) == 1 else None


def _window_rows(stream: StreamRun, spans: list, labels_path: Path | None
                 ) -> tuple[tuple[int, int], ...]:
    """Row ranges by the scorer's rule (first row stamped start .. first row stamped end)."""
    try:
        return window_rows(stream.seconds, spans, stream.name)
    except ValueError as exc:
        raise ValueError(f"{labels_path}: {exc}") from None


def corpus_labels(run: dict) -> Path | None:
    """A NAB bench run's corpus labels (run.json names the NAB root)."""
    path = Path(run["nab_root"]) / WINDOWS_JSON if "nab_root" in run else None
    return path if path and path.is_file() else None


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
