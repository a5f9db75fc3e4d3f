"""The NAB corpus on disk: data files, label windows as row ranges, probation lengths, profiles.

A NAB root holds `data/<category>/<file>.csv` (columns `timestamp,value`, read by the input
rules of detector.offline.csv_format), `labels/combined_windows.json` (inclusive `[start, end]`
timestamps per file) and `config/profiles.json` (cost-matrix weights per scoring profile).
Everything here works in **file row order**: rows are never sorted or de-duplicated, and a
window is the row range from the first row stamped `start` to the first row stamped `end`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.bench.nab.profiles import PROFILES_JSON, Profile, load_profiles
from detector.offline.csv_format import parse_stamp, read_input

PROBATION_PERCENT = 0.15
PROBATION_CAP = 750  # 15 % of 5,000 records
WINDOWS_JSON = "labels/combined_windows.json"

Rows = tuple[tuple[int, int], ...]


def probation_length(n_records: int) -> int:
    """Leading rows never scored: min(floor(0.15 * n), 750)."""
    return int(min(math.floor(PROBATION_PERCENT * n_records), PROBATION_CAP))


@dataclass(frozen=True)
class DataFile:
    """One NAB stream in row order, with its label windows as inclusive row ranges."""

    rel: str                     # "<category>/<file>.csv"
    timestamps: tuple[str, ...]  # exactly as in the file, in row order
    values: np.ndarray           # float64, in row order
    windows: Rows                # inclusive (left, right) row ranges, sorted

    @property
    def category(self) -> str:
        return self.rel.split("/", 1)[0]

    @property
    def n(self) -> int:
        return len(self.timestamps)

    @property
    def probation(self) -> int:
        return probation_length(self.n)


def list_data_files(root: Path) -> tuple[str, ...]:
    """Relative names ("realKnownCause/nyc_taxi.csv") of every data file, sorted."""
    data = Path(root) / "data"
    return tuple(sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.csv")))


def load_windows(root: Path) -> dict[str, list[tuple[str, str]]]:
    """Label windows per file as (start, end) timestamp strings, from combined_windows.json."""
    raw = json.loads((Path(root) / WINDOWS_JSON).read_text())
    return {rel: [(str(a), str(b)) for a, b in spans] for rel, spans in raw.items()}


def window_rows(seconds: np.ndarray, spans: Iterable[Sequence[str]], rel: str = "") -> Rows:
    """Inclusive row ranges of label windows over a file's rows, sorted: the one rule of the
    scorer, the corpus benches, `evaluate` and the report.

    `seconds` are the rows' epoch seconds in file order (as detector.offline.csv_format reads an
    input); each window is `[start, end]`, two timestamps read by the same rules. Each edge is
    the first row carrying exactly that time (to the microsecond). An edge that matches no row
    (never the case for NAB's labels) snaps inwards: the first row at or after `start`, the
    last row at or before `end`. A window matching no row, a bad edge and overlapping windows
    are errors (ValueError naming `rel`).
    """
    spans = list(spans)
    if not spans:
        return ()
    micros = _micros(np.asarray(seconds, dtype=np.float64))
    rows = []
    for span in spans:
        start, end = _edges(span, rel)
        left = _edge_row(micros, start, "left")
        right = _edge_row(micros, end, "right")
        if left < 0 or right < left:
            raise ValueError(f"{rel}: window {span[0]} .. {span[1]} matches no records")
        rows.append((left, right))
    rows.sort()
    for (_, end1), (start2, _) in zip(rows, rows[1:], strict=False):
        if start2 <= end1:
            raise ValueError(f"{rel}: overlapping windows at rows {start2}..{end1}")
    return tuple(rows)


def _edges(span: Sequence[str], rel: str) -> tuple[int, int]:
    """A window's [start, end] in epoch microseconds."""
    if isinstance(span, str) or len(span) != 2:
        raise ValueError(f"{rel}: window {span!r}: expected [start, end]")
    edges = [parse_stamp(str(edge)) for edge in span]
    bad = next((e for e in edges if isinstance(e, str)), None)
    if bad is not None:
        raise ValueError(f"{rel}: window {span!r}: {bad}")
    start, end = _micros(np.array(edges, dtype=np.float64)).tolist()
    return start, end


def _micros(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds as whole microseconds, so equal times compare equal."""
    return np.round(seconds * 1e6).astype(np.int64)


def _edge_row(stamps: np.ndarray, when: int, side: str) -> int:
    exact = np.flatnonzero(stamps == when)
    if exact.size:
        return int(exact[0])
    near = np.flatnonzero(stamps >= when if side == "left" else stamps <= when)
    if not near.size:
        return -1
    return int(near[0] if side == "left" else near[-1])


class NabCorpus:
    """A NAB root folder (data/, labels/, config/); data files are loaded once, on demand."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for needed in ("data", WINDOWS_JSON, PROFILES_JSON):
            if not (self.root / needed).exists():
                raise FileNotFoundError(f"{self.root}: not a NAB root (no {needed})")
        self.files: tuple[str, ...] = list_data_files(self.root)
        self.profile_map: dict[str, Profile] = load_profiles(self.root)
        self.profiles: tuple[Profile, ...] = tuple(self.profile_map.values())
        self.label_windows: dict[str, list[tuple[str, str]]] = load_windows(self.root)
        self._cache: dict[str, DataFile] = {}

    def data_path(self, rel: str) -> Path:
        return self.root / "data" / rel

    def probation(self, rel: str) -> int:
        return self.load(rel).probation

    def load(self, rel: str) -> DataFile:
        """The data file `rel` with its windows as row ranges (cached)."""
        if rel not in self._cache:
            if rel not in self.files:
                raise KeyError(f"{rel}: not a data file of {self.root}")
            source = read_input(self.data_path(rel))
            if source.metrics != ("value",):
                raise ValueError(f"{source.path}: columns {source.metrics!r}, expected "
                                 "timestamp,value")
            rows = window_rows(source.seconds, self.label_windows.get(rel, []), rel)
            self._cache[rel] = DataFile(rel, source.stamps, source.values[:, 0], rows)
        return self._cache[rel]


def read_result_columns(path: Path, data: DataFile, columns: Sequence[str],
                        optional: Sequence[str] = ()) -> dict[str, list[str]]:
    """Cells of `columns` (and of those `optional` ones the file has) of one result CSV, as
    text in row order, checked row by row against its data file.

    The file needs a `timestamp` column and every one of `columns` (others are ignored), one row
    per data row with the timestamp copied unchanged. Data files are duck-typed: anything with
    `rel`, `n` and `timestamps` serves.
    """
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [c for c in ("timestamp", *columns) if c not in header]
        if missing:
            raise ValueError(f"{path}: needs the columns timestamp and {', '.join(columns)}, "
                             f"has {header!r}")
        rows = [r for r in reader if r]
    if len(rows) != data.n:
        raise ValueError(f"{path}: {len(rows)} rows, but the data file {data.rel} has {data.n}")
    wanted = [*columns, *(c for c in optional if c in header)]
    index = {c: header.index(c) for c in ("timestamp", *wanted)}
    width = max(index[c] for c in ("timestamp", *columns)) + 1
    ts_col = index["timestamp"]
    for i, (row, stamp) in enumerate(zip(rows, data.timestamps, strict=True)):
        where = f"{path}: line {i + 2} (data row {i})"
        if len(row) < width:
            raise ValueError(f"{where}: {len(row)} columns, expected at least {width}")
        if row[ts_col] != stamp:
            raise ValueError(f"{where}: timestamp {row[ts_col]!r}, but {data.rel} has {stamp!r}; "
                             "rows must copy the data file's timestamps in its row order")
    return {c: [row[index[c]] if index[c] < len(row) else "" for row in rows] for c in wanted}


def read_run_scores(path: Path, data: DataFile) -> np.ndarray:
    """`anomaly_score` of one result CSV, checked row by row against its data file.

    The file needs the columns `timestamp` and `anomaly_score` (others are ignored), one row per
    data row with the timestamp copied unchanged, and finite scores in [0, 1].
    """
    return parse_scores(path, read_result_columns(path, data, ["anomaly_score"])["anomaly_score"])


def parse_scores(path: Path, cells: Sequence[str]) -> np.ndarray:
    """`anomaly_score` cells of a result file as float64; each must be finite, within [0, 1]."""
    scores = np.empty(len(cells), dtype=np.float64)
    for i, text in enumerate(cells):
        try:
            scores[i] = float(text)
        except ValueError:
            raise ValueError(f"{path}: line {i + 2} (data row {i}): anomaly_score {text!r} "
                             "is not a number") from None
    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0.0) | (scores > 1.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{path}: line {i + 2} (data row {i}): anomaly_score {scores[i]!r} "
                         "must be finite and within [0, 1]")
    return scores
