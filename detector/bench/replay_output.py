"""One replay result CSV read back for scoring: scores, the alerts raised, their rankings.

The columns are those `detector replay` writes (timestamp, anomaly_score, alert, ..., and, once
replay ranks the metrics of an alert, `metrics`); every row is checked against its data file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.bench.corpus import CorpusFile
from detector.bench.hitrate import parse_ranking
from detector.bench.nab.corpus import parse_scores, read_result_columns


@dataclass(frozen=True)
class ReplayOutput:
    """A result file's columns in data-row order."""

    scores: np.ndarray                             # anomaly_score, float64 in [0, 1]
    alerts: np.ndarray                             # bool: the alert the daemon would raise
    rankings: dict[int, tuple[str, ...]] | None    # row -> metrics, on alert rows; None if the
                                                   # file has no `metrics` column


def read_replay_output(path: Path, data: CorpusFile) -> ReplayOutput:
    """Read and check one result CSV against the data file it was replayed from."""
    cells = read_result_columns(path, data, ["anomaly_score", "alert"], optional=["metrics"])
    scores = parse_scores(path, cells["anomaly_score"])
    flags = cells["alert"]
    bad = next((i for i, text in enumerate(flags) if text not in ("0", "1")), None)
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 2} (data row {bad}): alert {flags[bad]!r} "
                         "must be 0 or 1")
    alerts = np.array([text == "1" for text in flags], dtype=bool)
    rankings = None
    if "metrics" in cells:
        rankings = {}
        for row in np.flatnonzero(alerts):
            try:
                rankings[int(row)] = parse_ranking(cells["metrics"][row])
            except ValueError as exc:
                raise ValueError(f"{path}: line {row + 2} (data row {row}): {exc}") from None
    return ReplayOutput(scores, alerts, rankings)
