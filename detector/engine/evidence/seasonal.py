"""Seasonal steps: the mean step of each metric (newest minus previous compressed value) by
time-of-day bucket, added to the persistence prior once a bucket has been seen on a few days,
so a daily ramp the model has not learnt yet is expected rather than surprising."""

from __future__ import annotations

import numpy as np

from detector.engine.features import SECONDS_PER_DAY

SEASON_MIN_SEEN = 2   # a time-of-day step counts once seen on two days
SEASON_RATE = 0.2     # later days weigh in at this rate


def bucket(ts: np.ndarray, n_buckets: int) -> np.ndarray:
    """Time-of-day bucket of each timestamp."""
    return np.minimum((np.mod(ts, SECONDS_PER_DAY) / SECONDS_PER_DAY * n_buckets)
                      .astype(np.int64), n_buckets - 1)


def expected_step(arrays: dict[str, np.ndarray], s: np.ndarray, b: np.ndarray,
                  mask: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Expected step at time-of-day bucket b, in today's z units (0 without history)."""
    known = (arrays["season_n"][s, b] >= SEASON_MIN_SEEN)[:, None] & mask
    return np.where(known, arrays["season"][s, b] / unit, 0.0)


def learn_step(arrays: dict[str, np.ndarray], s: np.ndarray, b: np.ndarray, y: np.ndarray,
               valid: np.ndarray) -> None:
    """Fold this event's step (from the stream's previous value) into its bucket b; `valid`:
    the metrics with a previous value to step from."""
    step = y - arrays["last_y"][s]
    n = arrays["season_n"][s, b] + 1.0
    rate = np.maximum(1.0 / n, SEASON_RATE)[:, None]
    old = arrays["season"][s, b]
    arrays["season"][s, b] = np.where(valid, old + rate * (step - old), old)
    arrays["season_n"][s, b] = n
