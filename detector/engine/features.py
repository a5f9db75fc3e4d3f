"""Time-of-day and day-of-week features: what the model is told of an event's time."""

from __future__ import annotations

import math

import numpy as np

SECONDS_PER_DAY = 86_400.0


def time_features(ts: np.ndarray) -> np.ndarray:
    """sin/cos of time of day and of day of week (Monday 00:00 UTC = 0), shape [B, 4]."""
    day = np.mod(ts, SECONDS_PER_DAY) / SECONDS_PER_DAY
    week = np.mod(ts / SECONDS_PER_DAY + 3.0, 7.0) / 7.0  # 1970-01-01 was a Thursday
    tau = 2.0 * math.pi
    return np.stack((np.sin(tau * day), np.cos(tau * day),
                     np.sin(tau * week), np.cos(tau * week)), axis=1).astype(np.float32)
