"""The CSV files of replay, train and evaluate: an input is `timestamp` then numeric columns
(one file, one stream); a result is one row per input row with the columns below.

Result columns: timestamp, anomaly_score, alert, raw_score, raw_error, then expected_<metric>
per input metric (the model's forecast, in the metric's units) and, on alert rows, `metrics`:
the event's metrics ranked by their share of its surprise, as JSON [[metric, share], ...].
Reading these needs no engine (and no torch).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from detector.errors import InputFileError

OUTPUT_HEADER = ("timestamp", "anomaly_score", "alert", "raw_score", "raw_error")
EXPECTED_PREFIX = "expected_"  # then one column per input metric: the model's forecast
METRICS_COLUMN = "metrics"     # on alert rows: JSON [[metric, share], ...], largest first
MANIFEST = "replay.json"


def discover(inputs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(csv path, path relative to its INPUT) for every file or every CSV under a folder."""
    found: list[tuple[Path, Path]] = []
    for root in inputs:
        if root.is_dir():
            found += [(p, p.relative_to(root)) for p in sorted(root.rglob("*.csv"))]
        elif root.is_file():
            found.append((root, Path(root.name)))
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
    return found


def read_rows(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    """(metric names, timestamps, rows) of a CSV of `timestamp` then numeric columns."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        metrics = _metrics_of(path, next(reader, None))
        rows = [row for row in reader if row]
    return metrics, [r[0] for r in rows], rows


def _metrics_of(path: Path, header: list[str] | None) -> list[str]:
    """The metric names a header declares, or InputFileError naming what is wrong with it."""
    if not header:
        raise InputFileError(f"{path}: empty file (expected a header: timestamp,<metric>,...)")
    names = [h.strip() for h in header]
    if names[0].lower() != "timestamp":
        raise InputFileError(f"{path}: bad header: the first column must be 'timestamp', "
                             f"got {header[0]!r}")
    if len(names) < 2:
        raise InputFileError(f"{path}: bad header: no metric column after 'timestamp'")
    metrics = names[1:]
    if "" in metrics:
        raise InputFileError(f"{path}: bad header: column {metrics.index('') + 2} has no name")
    repeated = next((m for i, m in enumerate(metrics) if m in metrics[:i]), None)
    if repeated is not None:
        raise InputFileError(f"{path}: bad header: column {repeated!r} appears twice")
    return metrics


def check_input(path: Path, max_metrics: int) -> None:
    """Fail fast, naming the file, on what would make a replay meaningless: a bad header, more
    metrics than the engine takes (every row would be rejected and score 0), no data row, or
    a column that never holds a number (no event would carry every metric, which a stream's
    first event must). Reads only as far as every column has shown a number."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        metrics = _metrics_of(path, next(reader, None))
        if len(metrics) > max_metrics:
            raise InputFileError(
                f"{path}:2: {len(metrics)} metrics per row, more than "
                f"DETECTOR_MODEL_MAX_METRICS={max_metrics} allows (set it to {len(metrics)} "
                "or more)")
        waiting = dict.fromkeys(range(len(metrics)))
        rows = 0
        for row in reader:
            if not row:
                continue
            rows += 1
            for j in [j for j in waiting if j + 1 < len(row)
                      and not math.isnan(parse_value(row[j + 1]))]:
                del waiting[j]
            if not waiting:
                return
    if rows == 0:
        raise InputFileError(f"{path}: no data row after the header")
    names = [metrics[j] for j in waiting]
    raise InputFileError(f"{path}: no numeric value in column{'s' * (len(names) > 1)} "
                         f"{', '.join(map(repr, names))} (every column after 'timestamp' "
                         "must be a number)")


def parse_value(text: str) -> float:
    """A finite float, or NaN for an empty, unparsable or infinite cell."""
    try:
        v = float(text)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan
