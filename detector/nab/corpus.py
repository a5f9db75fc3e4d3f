"""The NAB corpus on disk: data files, label windows as row ranges, probation, profiles."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15
PROBATION_CAP = 750  # 15 % of 5,000 records


def probation_length(n_records: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n_records), PROBATION_CAP))


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True)
class DataFile:
    rel: str                     # "<category>/<file>.csv"
    timestamps: tuple[str, ...]  # exactly as in the file, in row order
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]  # inclusive row ranges, sorted

    @property
    def category(self) -> str:
        return self.rel.split("/", 1)[0]

    @property
    def n(self) -> int:
        return len(self.timestamps)

    @property
    def probation(self) -> int:
        return probation_length(self.n)


class NabCorpus:
    """Lazy access to a NAB root folder (data/, labels/, config/)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for needed in ("data", "labels/combined_windows.json", "config/profiles.json"):
            if not (self.root / needed).exists():
                raise FileNotFoundError(f"{self.root}: not a NAB root (no {needed})")

    @cached_property
    def files(self) -> tuple[str, ...]:
        data = self.root / "data"
        return tuple(sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.csv")))

    @cached_property
    def profiles(self) -> tuple[Profile, ...]:
        raw = json.loads((self.root / "config/profiles.json").read_text())
        order = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
        names = [n for n in order if n in raw] + [n for n in raw if n not in order]
        return tuple(Profile(n, float(raw[n]["CostMatrix"]["tpWeight"]),
                             float(raw[n]["CostMatrix"]["fpWeight"]),
                             float(raw[n]["CostMatrix"]["fnWeight"])) for n in names)

    @cached_property
    def _windows(self) -> dict[str, list[list[str]]]:
        return json.loads((self.root / "labels/combined_windows.json").read_text())

    def data_path(self, rel: str) -> Path:
        return self.root / "data" / rel

    def load(self, rel: str) -> DataFile:
        with self.data_path(rel).open(newline="") as handle:
            rows = [r for r in csv.reader(handle)][1:]
        stamps = tuple(r[0] for r in rows)
        values = np.array([float(r[1]) for r in rows])
        parsed = [datetime.fromisoformat(s) for s in stamps]
        windows = []
        for start, end in self._windows.get(rel, []):
            left = _first_row(parsed, datetime.fromisoformat(start), "left")
            right = _first_row(parsed, datetime.fromisoformat(end), "right")
            if left < 0 or right < left:
                raise ValueError(f"{rel}: window {start} .. {end} matches no records")
            windows.append((left, right))
        return DataFile(rel, stamps, values, tuple(sorted(windows)))


def _first_row(parsed: list[datetime], when: datetime, side: str) -> int:
    """The first row stamped `when`; else the nearest row inside the window."""
    for i, t in enumerate(parsed):
        if t == when:
            return i
    if side == "left":
        return next((i for i, t in enumerate(parsed) if t >= when), -1)
    return max((i for i, t in enumerate(parsed) if t <= when), default=-1)


def read_run_scores(path: Path, data: DataFile) -> np.ndarray:
    """anomaly_score column of one result CSV, checked row by row against its data file."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        try:
            ts_col, score_col = header.index("timestamp"), header.index("anomaly_score")
        except ValueError:
            raise ValueError(f"{path}: needs the columns timestamp and anomaly_score") from None
        rows = [r for r in reader if r]
    if len(rows) != data.n:
        raise ValueError(f"{path}: {len(rows)} rows, {data.rel} has {data.n}")
    scores = np.empty(data.n)
    for i, (row, stamp) in enumerate(zip(rows, data.timestamps, strict=True)):
        if row[ts_col] != stamp:
            raise ValueError(f"{path}: row {i + 2} has timestamp {row[ts_col]!r}, the data file "
                             f"{stamp!r}: rows must follow the data file's order")
        scores[i] = float(row[score_col])
    if not (np.isfinite(scores).all() and scores.min() >= 0.0 and scores.max() <= 1.0):
        raise ValueError(f"{path}: anomaly_score must be finite and within [0, 1]")
    return scores
