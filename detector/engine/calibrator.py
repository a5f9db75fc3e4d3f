"""Forecast residuals → anomaly score in [0, 1], comparable across streams.

Each stream keeps a running variance of its own residual per metric. An event's residuals,
divided by those variances, give a mean square that is chi-square/D distributed when the
stream behaves as usual; its upper-tail probability Q (Wilson–Hilferty approximation) is
mapped to a log scale as Numenta's anomaly likelihood does: score = ln(Q) / ln(1e-10), so
Q = 1e-5 scores 0.5 and Q ≤ 1e-10 scores 1. The same threshold therefore means the same
rarity on every stream, whatever its units, level or noise.
"""

from __future__ import annotations

import numpy as np
import torch

LOG_Q_FULL = float(np.log(1e-10))
MIN_VAR = 1e-4       # residual variance floor, in normalised units: a perfect fit is not 0
WINSOR = 16.0        # residuals enter the variance clipped at 4 sigma, so one spike
                     # does not blind the stream for a half-life


def log_upper_tail(z: np.ndarray) -> np.ndarray:
    """ln Q(z) for a standard normal, accurate far into the tail."""
    return torch.special.log_ndtr(torch.from_numpy(-np.asarray(z, dtype=np.float64))).numpy()


def surprise(residual: np.ndarray, valid: np.ndarray, res_var: np.ndarray) -> np.ndarray:
    """Mean of squared residuals over valid metrics in units of each metric's own variance."""
    ratio = np.where(valid, residual * residual / np.maximum(res_var, MIN_VAR), 0.0)
    n = valid.sum(axis=1)
    return np.where(n > 0, ratio.sum(axis=1) / np.maximum(n, 1), np.nan)


def score(mean_square: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Score in [0, 1] of a chi-square/D statistic; 0 where nothing was observed."""
    d = np.maximum(n_valid, 1).astype(np.float64)
    x = np.nan_to_num(mean_square, nan=0.0)
    # Wilson–Hilferty: (X/D)^(1/3) is close to normal with mean 1 - 2/(9D), var 2/(9D).
    z = (np.cbrt(x) - (1.0 - 2.0 / (9.0 * d))) / np.sqrt(2.0 / (9.0 * d))
    s = np.clip(log_upper_tail(z) / LOG_Q_FULL, 0.0, 1.0)
    return np.where(n_valid > 0, s, 0.0)


def update(residual: np.ndarray, valid: np.ndarray, res_var: np.ndarray, count: np.ndarray,
           halflife: float) -> tuple[np.ndarray, np.ndarray]:
    """New (res_var [B, D], count [B]) after observing the residuals where valid."""
    floor = 1.0 - 0.5 ** (1.0 / halflife)
    new_count = count + valid.any(axis=1)
    alpha = np.maximum(1.0 / np.maximum(new_count, 1.0), floor)[:, None]
    sq = np.minimum(residual * residual, WINSOR * np.maximum(res_var, MIN_VAR))
    sq = np.where(new_count[:, None] <= 1, residual * residual, sq)  # nothing to clip against
    return np.where(valid, res_var + alpha * (sq - res_var), res_var), new_count
