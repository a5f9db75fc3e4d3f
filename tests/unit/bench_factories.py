"""Tiny labelled corpora and replay result files written to tmp_path for the bench tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

T0 = 1_772_409_600  # 2026-03-02 00:00 UTC
STEP = 300


def stamp(row: int) -> str:
    return datetime.fromtimestamp(T0 + row * STEP, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_data(path: Path, columns: Sequence[str], rows: Sequence[Sequence[float]]) -> None:
    """A data file: `timestamp` (5 minutes apart from T0) then `columns`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *columns])
        for i, row in enumerate(rows):
            writer.writerow([stamp(i), *(f"{v:g}" for v in row)])


def write_corpus(root: Path, files: dict[str, list[list[float]]], *,
                 windows: dict[str, list[tuple[int, int]]] | None = None,
                 probation: dict[str, int] | None = None,
                 root_cause: dict[str, list[dict]] | None = None,
                 columns: Sequence[str] = ("a", "b")) -> Path:
    """A corpus under `root`: `files` rel -> rows, `windows` as inclusive row ranges."""
    for rel, rows in files.items():
        write_data(root / "data" / rel, columns, rows)
    windows = windows or {}
    labels = {rel: [[stamp(a), stamp(b)] for a, b in windows.get(rel, [])]
              for rel in sorted({*files, *windows})}
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    if probation is not None:
        (root / "probation.json").write_text(json.dumps(probation))
    if root_cause is not None:
        (root / "root_cause.json").write_text(json.dumps(root_cause))
    return root


def write_replay(path: Path, n: int, scores: dict[int, float] | None = None,
                 alerts: Sequence[int] = (), rankings: dict[int, str] | None = None) -> None:
    """A replay result file of n rows in the agreed format: the `metrics` column only when
    `rankings` (row -> JSON cell) is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["timestamp", "anomaly_score", "alert", "raw_score", "raw_error"]
    if rankings is not None:
        header.append("metrics")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(n):
            score = (scores or {}).get(i, 0.0)
            row = [stamp(i), f"{score:.6f}", int(i in alerts), f"{score:.6f}", "0.1"]
            if rankings is not None:
                row.append(rankings.get(i, ""))
            writer.writerow(row)
