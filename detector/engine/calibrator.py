"""Forecast residuals → anomaly score in [0, 1], comparable across streams.

Each stream keeps a running variance of its own forecast residual per metric, in the
metric's compressed units (not z units, whose scale drifts while the normaliser settles).
An event's most extreme standardised residual r (over its metrics) has, when the stream
behaves as usual, a two-sided normal tail probability; times the number of metrics
(Bonferroni) this gives Q, the chance of an event at least this unusual. A stream's metrics
are strongly correlated (bytes, packets and flows move together), so Q is not multiplied
across them as if they were independent.
Q is mapped to a log scale as Numenta's anomaly likelihood does: score = ln(Q) / ln(1e-10), so
Q = 1e-5 scores 0.5 and Q <= 1e-10 scores 1. The same threshold therefore means the same
rarity on every stream, whatever its units, level or noise.
"""

from __future__ import annotations

import numpy as np
import torch

LOG_Q_FULL = float(np.log(1e-10))
WINSOR = 16.0        # residuals enter the variance clipped at 4 sigma, so one spike
                     # does not blind the stream for a half-life
PRIOR_WEIGHT = 4.0   # a new stream starts as if it had seen 4 residuals as large as its own
                     # spread: cautious until it has some history


def log_upper_tail(z: np.ndarray) -> np.ndarray:
    """ln Q(z) for a standard normal, accurate far into the tail."""
    return torch.special.log_ndtr(torch.from_numpy(-np.asarray(z, dtype=np.float64))).numpy()


def surprise(residual: np.ndarray, valid: np.ndarray, res_var: np.ndarray,
             min_var: np.ndarray) -> np.ndarray:
    """Largest squared residual over valid metrics, in units of that metric's own variance
    (never below min_var: a perfect fit so far does not make every wobble infinitely rare)."""
    ratio = np.where(valid, residual * residual / np.maximum(res_var, min_var), -1.0)
    worst = ratio.max(axis=1)
    return np.where(worst >= 0, worst, np.nan)


def score(worst_square: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Score in [0, 1] of the largest squared standardised residual of n_valid metrics."""
    r = np.sqrt(np.nan_to_num(worst_square, nan=0.0))
    log_q = np.log(2.0 * np.maximum(n_valid, 1)) + log_upper_tail(r)
    s = np.clip(np.minimum(log_q, 0.0) / LOG_Q_FULL, 0.0, 1.0)
    return np.where(n_valid > 0, s, 0.0)


def update(residual: np.ndarray, valid: np.ndarray, res_var: np.ndarray, count: np.ndarray,
           min_var: np.ndarray, prior_var: np.ndarray, halflife: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """New (res_var [B, D], count [B]) after observing the residuals where valid;
    `prior_var` is what a stream without history is assumed to have."""
    floor = 1.0 - 0.5 ** (1.0 / halflife)
    new_count = count + valid.any(axis=1)
    alpha = np.maximum(1.0 / (new_count + PRIOR_WEIGHT), floor)[:, None]
    current = np.where(count[:, None] > 0, res_var, prior_var)
    sq = np.minimum(residual * residual, WINSOR * np.maximum(current, min_var))
    return np.where(valid, current + alpha * (sq - current), res_var), new_count
