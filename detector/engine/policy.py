"""Alert decision: per-stream threshold (with glob overrides), warm-up, cooldown, severity."""

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


def decide(scores: np.ndarray, thresholds: np.ndarray, cooldown: np.ndarray,
           warming: np.ndarray, cooldown_events: int) -> tuple[np.ndarray, np.ndarray]:
    """(alert flags, new cooldown counters) for one event per stream."""
    alert = (scores >= thresholds) & (cooldown <= 0) & ~warming
    new_cooldown = np.where(alert, cooldown_events, np.maximum(cooldown - 1, 0))
    return alert, new_cooldown


def severity(score: float, critical_threshold: float) -> str:
    return CRITICAL if score >= critical_threshold else WARNING
