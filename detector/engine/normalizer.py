"""Per-stream online normalisation of metric values, vectorised over slots.

Values are optionally log-compressed (traffic counters are multiplicative), then z-scored
against an exponentially weighted running mean and variance whose half-life is in events.
Early on the weight is 1/n, so the first events give an exact running mean.
"""

from __future__ import annotations

import numpy as np

Z_CLIP = 20.0


def compress(values: np.ndarray, log_transform: bool) -> np.ndarray:
    if not log_transform:
        return values
    return np.sign(values) * np.log1p(np.abs(values))


def decompress(values: np.ndarray, log_transform: bool) -> np.ndarray:
    if not log_transform:
        return values
    return np.sign(values) * np.expm1(np.minimum(np.abs(values), 700.0))


def resolution(mean: np.ndarray) -> np.ndarray:
    """The smallest change that counts, relative to the level: a flat line's rounding noise
    must not turn into alarms."""
    return 1e-3 * (1.0 + np.abs(mean))


COUNT_RESOLUTION = 0.5  # a count is known to half a count: one count is at most 2 sigma


def fraction(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Where a valid raw value is not a whole number: its metric is no count."""
    return valid & (np.abs(x - np.round(x)) >= 1e-9)


def count_step(mean: np.ndarray, counting: np.ndarray, log_transform: bool) -> np.ndarray:
    """Per metric, the compressed size of one count at the running mean (compressed) where
    `counting` (every value the metric has shown is a whole number: crashes, errors,
    requests), else 0. A crash counter that sits at 0 and shows a 1 a few times a day has a
    running spread of nearly nothing, so in sigmas its routine 1 would be thousands; one
    count is the smallest change such a metric can make (from a mean of 0: log 2)."""
    low = np.floor(np.abs(decompress(mean, log_transform)))
    step = compress(low + 1.0, log_transform) - compress(low, log_transform)
    return np.where(counting, step, 0.0)


def scale(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """One z unit, in compressed-value units."""
    return np.sqrt(np.maximum(var, 0.0)) + resolution(mean)


def normalise(y: np.ndarray, valid: np.ndarray, mean: np.ndarray, unit: np.ndarray,
              count: np.ndarray) -> np.ndarray:
    """z-scores of compressed values y [B, D], `unit` = scale(mean, var); 0 where invalid or
    never seen."""
    return np.where(valid & (count > 0), np.clip((y - mean) / unit, -Z_CLIP, Z_CLIP), 0.0)


def denormalise(z: np.ndarray, mean: np.ndarray, unit: np.ndarray) -> np.ndarray:
    return mean + z * unit


def update(y: np.ndarray, valid: np.ndarray, mean: np.ndarray, var: np.ndarray,
           count: np.ndarray, halflife: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New (mean, var, count) after observing y where valid."""
    floor = 1.0 - 0.5 ** (1.0 / halflife)
    new_count = count + valid
    alpha = np.where(valid, np.maximum(1.0 / np.maximum(new_count, 1.0), floor), 0.0)
    delta = np.where(valid, y - mean, 0.0)
    new_mean = mean + alpha * delta
    new_var = (1.0 - alpha) * (var + alpha * delta * delta)
    return new_mean, new_var, new_count
