"""The range rule: a value, or the running mean of the values, beyond the range the stream has
had so far by more than a margin of that range (Numenta's "spatial anomaly", causal: running
min and max only). The running mean catches a sustained shift out of the usual range that no
single noisy value makes a new extreme."""

from __future__ import annotations

import numpy as np

# Arena fields (per stream, per metric): the range of the raw values so far, the running mean
# of the values and the range of that mean.
FIELDS = ("seen_min", "seen_max", "smooth", "smooth_min", "smooth_max")


def outside_range(arrays: dict[str, np.ndarray], s: np.ndarray, x: np.ndarray,
                  valid: np.ndarray, margin: float, halflife: float) -> np.ndarray:
    """Per event of the wave (streams s, values x): a valid value, or the running mean of the
    values (half-life `halflife` events), beyond its own range so far by more than `margin`.
    Checked before the ranges take the event in."""
    first = np.isnan(arrays["seen_min"][s])  # no value seen yet: the mean starts at this one
    beyond = _beyond_range(x, valid, arrays, s, "seen_min", "seen_max", margin)
    if halflife > 0:
        rate = 1.0 - 0.5 ** (1.0 / halflife)
        old = arrays["smooth"][s]
        mean = np.where(first, x, old + rate * (x - old))
        arrays["smooth"][s] = np.where(valid, mean, old)
        beyond |= _beyond_range(mean, valid, arrays, s, "smooth_min", "smooth_max", margin,
                                first)
    return beyond.any(axis=1)


def _beyond_range(x: np.ndarray, valid: np.ndarray, arrays: dict[str, np.ndarray],
                  s: np.ndarray, lo_name: str, hi_name: str, margin: float,
                  reset: np.ndarray | None = None) -> np.ndarray:
    """Per metric: x beyond [lo, hi] (NaN = nothing seen yet, or rows in `reset`) by more
    than margin x (hi - lo); the range then takes the valid values in."""
    lo, hi = arrays[lo_name][s], arrays[hi_name][s]
    if reset is not None:
        lo, hi = np.where(reset, np.nan, lo), np.where(reset, np.nan, hi)
    width = margin * (hi - lo)
    beyond = valid & (hi > lo) & ((x > hi + width) | (x < lo - width))
    xv = np.where(valid, x, np.nan)
    arrays[lo_name][s], arrays[hi_name][s] = np.fmin(lo, xv), np.fmax(hi, xv)
    return beyond
