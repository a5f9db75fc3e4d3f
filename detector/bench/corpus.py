"""A labelled corpus in NAB's layout: data files, windows, scored rows, profiles, root causes.

A corpus root holds `data/**/<file>.csv` (`timestamp` then one or more numeric columns, read
as replay reads them: detector.offline.csv_format; one file is one stream) and
`labels/combined_windows.json` (inclusive `[start, end]` timestamps per file), and optionally:

- `probation.json`: {file: rows} of unlabelled history at the head of each file. Those rows are
  replayed (the detector learns from every row, in order) but never scored. Missing: 0.
- `root_cause.json`: {file: [{"rows": [first, last], "metrics": [...]}, ...]}, the metrics
  behind each labelled incident, rows counted from the start of the file.
- `config/profiles.json`: scoring profiles in NAB's format; missing: NAB's three.

Under NAB's rules (`nab_rules=True`) the probation is NAB's instead: the first
min(floor(0.15 n), 750) rows of each file, and the detector is told it as its warm-up.
Rows are never sorted or de-duplicated; every row index is a file row index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from detector.bench.nab.corpus import (
    WINDOWS_JSON,
    Rows,
    load_windows,
    probation_length,
    window_rows,
)
from detector.bench.nab.profiles import Profile, corpus_profiles
from detector.offline.csv_format import read_input

PROBATION_JSON = "probation.json"
ROOT_CAUSE_JSON = "root_cause.json"
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RootCause:
    """The metrics a labelled incident was caused by, over inclusive file rows."""

    first: int
    last: int
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class CorpusFile:
    """One stream of the corpus in row order, with what scoring needs to know about it."""

    rel: str                       # path under data/, e.g. "smd/machine-1-6.csv"
    timestamps: tuple[str, ...]    # exactly as in the file
    metrics: tuple[str, ...]       # column names after `timestamp`
    values: np.ndarray             # float64 [rows, metrics]; NaN where missing or unparsable
    seconds: np.ndarray            # epoch seconds per row (detector.offline.csv_format's rules)
    windows: Rows                  # inclusive row ranges, sorted
    probation: int                 # leading rows never scored
    root_causes: tuple[RootCause, ...] = ()

    @property
    def category(self) -> str:
        """The first folder under data/ (NAB's category); "" for a file directly in data/."""
        return self.rel.split("/", 1)[0] if "/" in self.rel else ""

    @property
    def n(self) -> int:
        return len(self.timestamps)

    @property
    def scored_rows(self) -> int:
        return max(0, self.n - self.probation)

    @property
    def scored_days(self) -> float:
        """Days the scored rows span: first to last scored stamp, plus one median step."""
        if self.scored_rows == 0:
            return 0.0
        seconds = self.seconds[self.probation:] - self.seconds[self.probation]
        step = float(np.median(np.diff(seconds))) if seconds.size > 1 else 0.0
        return (float(seconds[-1]) + step) / SECONDS_PER_DAY


class Corpus:
    """A corpus root folder; files are read on demand by `load`."""

    def __init__(self, root: Path, *, nab_rules: bool = False) -> None:
        self.root = Path(root)
        self.nab_rules = nab_rules
        for needed in ("data", WINDOWS_JSON):
            if not (self.root / needed).exists():
                raise FileNotFoundError(f"{self.root}: not a corpus root (no {needed})")
        data = self.root / "data"
        self.files: tuple[str, ...] = tuple(sorted(
            p.relative_to(data).as_posix() for p in data.rglob("*.csv")))
        if not self.files:
            raise FileNotFoundError(f"{data}: no CSV file")
        self.label_windows = load_windows(self.root)
        self.probations: dict[str, int] = _read_json_map(self.root / PROBATION_JSON)
        self.root_causes: dict[str, tuple[RootCause, ...]] = {
            rel: tuple(RootCause(int(c["rows"][0]), int(c["rows"][1]),
                                 tuple(str(m) for m in c["metrics"])) for c in causes)
            for rel, causes in _read_json_map(self.root / ROOT_CAUSE_JSON).items()}
        self.has_root_causes = (self.root / ROOT_CAUSE_JSON).is_file()
        self.profiles: tuple[Profile, ...] = corpus_profiles(self.root)
        for source, keys in (("labels", self.label_windows), ("probation.json", self.probations),
                             ("root_cause.json", self.root_causes)):
            if nab_rules and source == "labels":  # NAB's labels cover the whole corpus, and
                continue                          # a copy of some categories keeps them whole
            unknown = sorted(set(keys) - set(self.files))
            if unknown:
                raise ValueError(f"{self.root}: {source} names files not under data/: "
                                 f"{unknown[:3]}")

    def data_path(self, rel: str) -> Path:
        return self.root / "data" / rel

    def load(self, rel: str) -> CorpusFile:
        """The file `rel` with its windows as row ranges and its probation applied."""
        if rel not in self.files:
            raise KeyError(f"{rel}: not a data file of {self.root}")
        source = read_input(self.data_path(rel))
        stamps = source.stamps
        windows = window_rows(source.seconds, self.label_windows.get(rel, []), rel)
        if self.nab_rules:
            probation = probation_length(len(stamps))
        else:
            probation = int(self.probations.get(rel, 0))
            if not 0 <= probation <= len(stamps):
                raise ValueError(f"{rel}: probation {probation} outside 0..{len(stamps)} rows")
            if windows and windows[0][0] < probation:
                raise ValueError(f"{rel}: a label window starts at row {windows[0][0]}, inside "
                                 f"the unlabelled history of {probation} rows")
        return CorpusFile(rel, stamps, source.metrics, source.values, source.seconds, windows,
                          probation, self.root_causes.get(rel, ()))


def select(files: tuple[str, ...], patterns: list[str] | None) -> list[str]:
    """Files whose category or relative path matches a pattern (all files without patterns)."""
    if not patterns:
        return list(files)
    chosen = [rel for rel in files if any(
        rel.split("/", 1)[0] == p or fnmatch(rel, p) or fnmatch(rel, p + ".csv")
        for p in patterns)]
    if not chosen:
        raise ValueError(f"no corpus file matches {patterns}")
    return chosen


def _read_json_map(path: Path) -> dict:
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by file")
    return raw
