"""From a calibrated score to an alert: one chain of rules, applied in this order.

1. Warm-up: a stream that has seen fewer than `warmup_events` events scores 0 and never alerts.
2. Rule overrides: an event the evidence detectors flag (the range rule) scores 1, whatever the
   calibration says. (The result so far is the raw score.)
3. Threshold: the stream's own, DETECTOR_ALERT_THRESHOLD or the first DETECTOR_ALERT_OVERRIDES
   glob that matches its id (fixed when the stream is admitted).
4. Cooldown: one incident, one alert. For `cooldown_events` after an event, a stream's score is
   published (and can alert) only if it exceeds that event's score, so the first, earliest
   crossing alerts and the rest of the incident stays quiet unless it gets distinctly worse.
   Unpublished scores are 0.
5. Severity: `critical` from DETECTOR_ALERT_CRITICAL_THRESHOLD on, else `warning`.

The cooldown carries per-stream state from one event to the next (arena fields `peak` and
`peak_age`), so the chain walks a batch's waves in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

WARNING, CRITICAL = "warning", "critical"
AGE_LIMIT = 1 << 30  # events since the peak, held in int32; beyond any cooldown


def threshold_for(stream: str, default: float, overrides: Mapping[str, float]) -> float:
    """First override whose glob pattern matches the stream id, else the default."""
    for pattern, value in overrides.items():
        if fnmatchcase(stream, pattern):
            return value
    return default


@dataclass(frozen=True)
class Decisions:
    """Per event of a batch, in wave order."""

    raw: np.ndarray        # after warm-up and overrides
    published: np.ndarray  # after the cooldown
    alert: np.ndarray
    threshold: np.ndarray


def decide(bounds: list[tuple[int, int]], s_all: np.ndarray, calibrated: np.ndarray,
           warming: np.ndarray, flagged: np.ndarray | None, arrays: dict[str, np.ndarray],
           cooldown_events: int) -> Decisions:
    """Rules 1-4 over the waves of a batch (streams s_all, one row per event)."""
    raw = np.where(flagged, 1.0, calibrated) if flagged is not None else calibrated
    raw = np.where(warming, 0.0, raw)
    thresholds = arrays["threshold"][s_all]
    published, alert = np.empty(raw.size), np.empty(raw.size, bool)
    peak, age = arrays["peak"], arrays["peak_age"]
    for lo, hi in bounds:
        s = s_all[lo:hi]
        published[lo:hi], alert[lo:hi], peak[s], age[s] = cool_down(
            raw[lo:hi], thresholds[lo:hi], peak[s], age[s], warming[lo:hi], cooldown_events)
    return Decisions(raw, published, alert, thresholds)


def cool_down(scores: np.ndarray, thresholds: np.ndarray, peak: np.ndarray, age: np.ndarray,
              warming: np.ndarray, cooldown_events: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(published score, alert flag, new peak, new peak age) for one event per stream."""
    eligible = (age >= cooldown_events) | (scores > peak)
    published = np.where(eligible & ~warming, scores, 0.0)
    alert = (published >= thresholds) & (published > 0)
    fresh = eligible & (published > 0)
    return (published, alert, np.where(fresh, published, peak),
            np.where(fresh, 0, np.minimum(age + 1, AGE_LIMIT)))


def severity(scores: np.ndarray, alert: np.ndarray, critical_threshold: float) -> np.ndarray:
    """Rule 5: per event, "critical" / "warning" for an alert, "" otherwise."""
    return np.where(alert, np.where(scores >= critical_threshold, CRITICAL, WARNING), "")
