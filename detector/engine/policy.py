"""Alert decision: per-stream threshold (with glob overrides), warm-up, refractory, severity."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

import numpy as np

WARNING, CRITICAL = "warning", "critical"


def threshold_for(stream: str, default: float, overrides: Mapping[str, float]) -> float:
    """First override whose glob pattern matches the stream id, else the default."""
    for pattern, value in overrides.items():
        if fnmatchcase(stream, pattern):
            return value
    return default


def decide(scores: np.ndarray, thresholds: np.ndarray, peak: np.ndarray, age: np.ndarray,
           warming: np.ndarray, cooldown_events: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(published score, alert flag, new peak, new peak age) for one event per stream.

    One incident, one alert: for `cooldown_events` after an event, a stream's score is
    published (and can alert) only if it exceeds that event's score, so the first, earliest
    crossing of any threshold alerts and the rest of the incident stays quiet unless it
    gets distinctly worse. Unpublished scores are 0.
    """
    eligible = (age >= cooldown_events) | (scores > peak)
    published = np.where(eligible & ~warming, scores, 0.0)
    alert = (published >= thresholds) & (published > 0)
    fresh = eligible & (published > 0)
    return (published, alert, np.where(fresh, published, peak),
            np.where(fresh, 0, np.minimum(age + 1, 1 << 40)))


def severity(score: float, critical_threshold: float) -> str:
    return CRITICAL if score >= critical_threshold else WARNING
