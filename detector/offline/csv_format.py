"""The CSV files of replay, train, evaluate, report and the corpus benches: how an input is read,
and the columns of a result.

An input is one stream: a header `timestamp,<metric>,...` then one row per event. Wherever an
input is read, `read_input` reads it by these rules:

- Header: `timestamp` (any case) then one or more named, distinct metric columns. Anything else
  is an InputFileError naming the file, as are a file without a data row, a metric column that
  never holds a number and a timestamp column that never holds a valid time.
- Rows: blank lines are skipped; every other row is kept, in file order (never sorted or
  de-duplicated), so row i of a result is row i of its input.
- Timestamp: ISO-8601 (naive means UTC) or else epoch seconds (`1700000000`, `1700000000.5`),
  within 1970..3000. A bad one is a problem of its row, which takes the previous row's time
  (rows before the first good time take that one).
- Value: a finite number. An empty, unparsable or infinite cell, or one missing from a short
  row, is NaN (scored, not learned from) and a problem of its row. Cells past the header's
  columns are ignored.

Result columns: timestamp, anomaly_score, alert, raw_score, raw_error, then expected_<metric>
per input metric (the model's forecast, in the metric's units) and, on alert rows, `metrics`:
the event's metrics ranked by their share of its surprise, as JSON [[metric, share], ...].
Reading these needs no engine (and no torch).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from detector.errors import InputFileError
from detector.records import MIN_TS, parse_ts

MOST_METRICS = 64  # the highest DETECTOR_MODEL_MAX_METRICS
OUTPUT_HEADER = ("timestamp", "anomaly_score", "alert", "raw_score", "raw_error")
EXPECTED_PREFIX = "expected_"  # then one column per input metric: the model's forecast
METRICS_COLUMN = "metrics"     # on alert rows: JSON [[metric, share], ...], largest first
MANIFEST = "replay.json"

_EPOCH_SECONDS = re.compile(r"[+-]?\d+(?:\.\d*)?")
# Naive ISO-8601 stamps, which numpy parses to the same instant as parse_stamp, all at once
_NAIVE_ISO = re.compile(r"\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?)?")
_EXACT_MICROS = 2**53


@dataclass(frozen=True)
class InputFile:
    """One input CSV read by the rules above: every data row, in file order."""

    path: Path
    metrics: tuple[str, ...]   # the column names after `timestamp`
    stamps: tuple[str, ...]    # the timestamp cells as written
    seconds: np.ndarray        # float64 epoch seconds per row (a bad stamp: see the rules)
    values: np.ndarray         # float64 [rows, metrics]; NaN where missing or unparsable
    problems: tuple[str, ...]  # "<file>:<line>: ..." per bad timestamp or incomplete row

    @property
    def n(self) -> int:
        return len(self.stamps)


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


def read_input(path: Path) -> InputFile:
    """Read one input CSV by the rules above (InputFileError naming the file if unusable)."""
    lines: list[int] = []
    stamps: list[str] = []
    cells: list[list[float]] = []
    with path.open(newline="") as handle:
        metrics, rows = _header_and_rows(path, handle)
        width = len(metrics) + 1
        for line, row in rows:
            lines.append(line)
            stamps.append(row[0])
            cells.append([parse_value(row[j]) if j < len(row) else math.nan
                          for j in range(1, width)])
    if not stamps:
        raise InputFileError(f"{path}: no data row after the header")
    values = np.array(cells, dtype=np.float64).reshape(len(stamps), len(metrics))
    seconds, bad = stamp_seconds(stamps)
    missing = np.isnan(values)
    never = [metrics[j] for j in np.flatnonzero(missing.all(axis=0))]
    if len(bad) == len(stamps) or never:
        raise _unusable(path, len(bad) < len(stamps), never)
    why = dict(bad)
    first_good = next(i for i in range(len(stamps)) if i not in why)
    problems = []
    for i in sorted({*why, *np.flatnonzero(missing.any(axis=1)).tolist()}):
        if i in why:
            instead = "the previous row's" if i > first_good else "the first valid"
            problems.append(f"{path}:{lines[i]}: {why[i]}; using {instead} timestamp")
        if missing[i].any():
            problems.append(f"{path}:{lines[i]}: missing or unparsable value; scored, not "
                            "learned from")
    return InputFile(path, tuple(metrics), tuple(stamps), seconds, values, tuple(problems))


def check_input(path: Path, max_metrics: int) -> None:
    """Fail fast, naming the file, on what would make a replay meaningless: what `read_input`
    refuses, and more metrics than the engine takes (every row would be rejected and score 0).
    Reads only as far as every column has shown a valid value."""
    with path.open(newline="") as handle:
        metrics, rows = _header_and_rows(path, handle)
        if len(metrics) > max_metrics:
            raise InputFileError(
                f"{path}:2: {len(metrics)} metrics per row, more than "
                f"DETECTOR_MODEL_MAX_METRICS={max_metrics} allows ({_widen(len(metrics))})")
        waiting = dict.fromkeys(range(len(metrics) + 1))  # column index: none valid so far
        seen = False
        for _, row in rows:
            seen = True
            for j in [j for j in waiting if j < len(row) and _valid(j, row[j])]:
                del waiting[j]
            if not waiting:
                return
    if not seen:
        raise InputFileError(f"{path}: no data row after the header")
    raise _unusable(path, 0 not in waiting, [metrics[j - 1] for j in waiting if j > 0])


def parse_value(text: str) -> float:
    """A finite float, or NaN for an empty, unparsable or infinite cell."""
    try:
        v = float(text)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def parse_stamp(text: str) -> float | str:
    """Epoch seconds of a timestamp cell (ISO-8601, else epoch seconds), or why it is bad."""
    ts = parse_ts(text)
    if isinstance(ts, str) and _EPOCH_SECONDS.fullmatch(text):
        ts = parse_ts(float(text))
    if isinstance(ts, str):
        return (f"timestamp {text[:40]!r} is neither ISO-8601 nor epoch seconds within "
                "1970..3000")
    return ts


def stamp_seconds(stamps: Sequence[str]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Epoch seconds of timestamp cells by `parse_stamp`, and (row, why) for each bad one.

    A bad stamp takes the previous row's time; bad rows before the first good one take it (and
    0.0 when there is none)."""
    fast = _naive_iso_seconds(stamps)
    if fast is not None:
        return fast, []
    parsed = [parse_stamp(s) for s in stamps]
    last = next((p for p in parsed if not isinstance(p, str)), 0.0)
    seconds = np.empty(len(parsed))
    for i, ts in enumerate(parsed):
        last = seconds[i] = last if isinstance(ts, str) else ts
    return seconds, [(i, ts) for i, ts in enumerate(parsed) if isinstance(ts, str)]


def _naive_iso_seconds(stamps: Sequence[str]) -> np.ndarray | None:
    """Seconds of plain UTC ISO stamps (the usual case) parsed at once; None for anything else."""
    if not all(map(_NAIVE_ISO.fullmatch, stamps)):
        return None
    try:
        micros = np.array(stamps, dtype="datetime64[us]").astype(np.int64)
    except ValueError:  # e.g. 2014-02-30: parse_stamp names it
        return None
    # Below 2**53 microseconds (the year 2255) micros / 1e6 is exactly datetime's timestamp().
    if micros.size and (micros.min() < MIN_TS * 1e6 or micros.max() >= _EXACT_MICROS):
        return None
    return micros / 1e6


def _header_and_rows(path: Path, handle: TextIO
                     ) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The metric names of an input's header, and (line number, cells) of each row after it."""
    reader = csv.reader(handle)
    metrics = _metrics_of(path, next(reader, None))
    return metrics, ((reader.line_num, row) for row in reader if row)


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


def _valid(column: int, cell: str) -> bool:
    if column == 0:
        return not isinstance(parse_stamp(cell), str)
    return not math.isnan(parse_value(cell))


def _unusable(path: Path, stamps_ok: bool, without_number: list[str]) -> InputFileError:
    """The error for a file whose timestamp column or some metric columns hold no valid value."""
    if not stamps_ok:
        return InputFileError(f"{path}: no valid timestamp in column 'timestamp' (expected "
                              "ISO-8601 or epoch seconds within 1970..3000)")
    return InputFileError(f"{path}: no numeric value in column{'s' * (len(without_number) > 1)} "
                          f"{', '.join(map(repr, without_number))} (every column after "
                          "'timestamp' must be a number)")


def _widen(n_metrics: int) -> str:
    """What to do about a file of more metrics than the engine takes."""
    if n_metrics <= MOST_METRICS:
        return f"set it to {n_metrics} or more"
    return f"a stream carries at most {MOST_METRICS}: split the columns across files"
