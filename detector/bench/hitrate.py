"""HitRate@P%: how well an alert's metric ranking names the metrics labelled as the cause.

For an alert inside a labelled incident whose causing metrics are L, the alert's HitRate@P% is
the share of L found among the top floor(P/100 * |L|) metrics of its ranking; the corpus value
is the mean over every such alert (OmniAnomaly's interpretation score, as in SMD's README).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from detector.bench.corpus import CorpusFile, RootCause

PERCENTS = (100, 150)
NO_RANKING = "n/a (no ranking in replay output)"
NO_ROOT_CAUSE = "n/a (no root_cause.json)"


def hit_rate(ranking: Sequence[str], labelled: Sequence[str], percent: int) -> float:
    """Share of `labelled` among the first floor(percent/100 * |labelled|) names of `ranking`."""
    wanted = set(labelled)
    if not wanted:
        raise ValueError("an incident without labelled metrics has no HitRate")
    top = set(ranking[:percent * len(wanted) // 100])
    return len(top & wanted) / len(wanted)


def parse_ranking(cell: str) -> tuple[str, ...]:
    """Metric names of a replay `metrics` cell (JSON [[name, share], ...]), highest share first.

    An empty cell is an empty ranking.
    """
    if not cell.strip():
        return ()
    entries = json.loads(cell)
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in entries):
        raise ValueError(f"metrics cell {cell[:80]!r}: expected [[name, share], ...]")
    order = sorted(range(len(entries)), key=lambda i: -float(entries[i][1]))  # stable on ties
    return tuple(entries[i][0] for i in order)


def ranked_alerts(alerts: np.ndarray, causes: Iterable[RootCause],
                  ranking_of: Mapping[int, Sequence[str]]) -> list[tuple[Sequence[str], RootCause]]:
    """(ranking, cause) of every alert row inside a root-cause incident's rows."""
    rows = np.flatnonzero(alerts)
    out = []
    for cause in causes:
        for row in rows[(rows >= cause.first) & (rows <= cause.last)]:
            out.append((ranking_of.get(int(row), ()), cause))
    return out


def corpus_hit_rate(pairs: Iterable[tuple[Sequence[str], RootCause]],
                    percents: Sequence[int] = PERCENTS) -> dict:
    """{"alerts": k, "hitrate@100": mean, ...} over the (ranking, cause) pairs; means are None
    when no alert fell inside a labelled incident."""
    pairs = list(pairs)
    out: dict = {"alerts": len(pairs)}
    for percent in percents:
        values = [hit_rate(ranking, cause.metrics, percent) for ranking, cause in pairs]
        out[f"hitrate@{percent}"] = float(np.mean(values)) if values else None
    return out


class RankedAlerts(Protocol):
    """What HitRate needs of a replay output: its alert rows and their rankings."""

    alerts: np.ndarray
    rankings: Mapping[int, Sequence[str]] | None


def replay_hit_rate(has_root_causes: bool, files: Sequence[CorpusFile],
                    outputs: Iterable[RankedAlerts]) -> dict | str:
    """corpus_hit_rate of the replay's alerts (outputs in the order of `files`), or why not."""
    if not has_root_causes:
        return NO_ROOT_CAUSE
    outputs = list(outputs)
    if any(o.rankings is None for o in outputs):
        return NO_RANKING
    return corpus_hit_rate(pair for f, o in zip(files, outputs, strict=True)
                           for pair in ranked_alerts(o.alerts, f.root_causes, o.rankings or {}))
