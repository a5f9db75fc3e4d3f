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
FLOAT_MAX = float(np.finfo(np.float64).max)
WINSOR = 16.0        # residuals enter the variance clipped at 4 sigma, so one spike
                     # does not blind the stream for a half-life
HABIT_COUNT = 3.0    # surprises at least this large seen this often are the stream's habit
N_BINS = 40
PRIOR_WEIGHT = 4.0   # a new stream starts as if it had seen 4 residuals as large as its own
                     # spread: cautious until it has some history


def log_upper_tail(z: np.ndarray) -> np.ndarray:
    """ln Q(z) for a standard normal, accurate far into the tail."""
    return torch.special.log_ndtr(torch.from_numpy(-np.asarray(z, dtype=np.float64))).numpy()


def standardised_squares(residual: np.ndarray, valid: np.ndarray, res_var: np.ndarray,
                         min_var: np.ndarray) -> np.ndarray:
    """Per metric, the squared residual in units of that metric's own variance (never below
    min_var: a perfect fit so far does not make every wobble infinitely rare); -1 where the
    metric is not valid."""
    return np.where(valid, residual * residual / np.maximum(res_var, min_var), -1.0)


def worst_of(squares: np.ndarray) -> np.ndarray:
    """The largest of an event's standardised squares; NaN when no metric is valid."""
    worst = squares.max(axis=1)
    return np.where(worst >= 0, worst, np.nan)


def surprise(residual: np.ndarray, valid: np.ndarray, res_var: np.ndarray,
             min_var: np.ndarray) -> np.ndarray:
    """Largest squared residual over valid metrics, in units of that metric's own variance."""
    return worst_of(standardised_squares(residual, valid, res_var, min_var))


def shares(squares: np.ndarray) -> np.ndarray:
    """Each valid metric's share of its event's standardised surprise (`standardised_squares`),
    summing to 1 over the valid metrics, NaN for the others: which metric made the event
    unusual. An event without any surprise shares it equally."""
    valid = squares >= 0
    x = np.where(valid, np.minimum(squares, FLOAT_MAX), 0.0)
    top = x.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Scaled by the largest first, so no sum of huge squares overflows.
        scaled = np.where(top > 0, x / top, valid.astype(np.float64))
        out = scaled / scaled.sum(axis=1, keepdims=True)
    return np.where(valid, out, np.nan)


def score(worst_square: np.ndarray, n_valid: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Score in [0, 1] of the largest squared standardised residual of n_valid metrics.

    The normal tail says how rare the surprise would be for well-behaved residuals; the
    stream's own history of surprises (`history`, decayed counts per bin) overrides it when
    surprises this large have happened repeatedly before: a daily step the model has not
    learnt yet is then recognised as the stream's habit, not an anomaly.
    """
    # NaN (no valid metric) counts as 0, infinity as the largest float (as np.nan_to_num)
    x = np.minimum(worst_square, FLOAT_MAX)
    x = np.where(np.isnan(x), 0.0, x)
    log_q = np.log(2.0 * np.maximum(n_valid, 1)) + log_upper_tail(np.sqrt(x))
    # counts of past surprises in bins >= each bin
    at_least = np.cumsum(history[:, ::-1].astype(np.float64), axis=1)[:, ::-1]
    seen = at_least[np.arange(x.size), surprise_bin(x)]
    total = np.maximum(at_least[:, 0], 1.0)
    habitual = seen >= HABIT_COUNT
    log_q = np.where(habitual, np.maximum(log_q, np.log(np.maximum(seen, 1e-300) / total)),
                     log_q)
    s = np.clip(np.minimum(log_q, 0.0) / LOG_Q_FULL, 0.0, 1.0)  # keeps -0.0 (a score of 0)
    return np.where(n_valid > 0, s, 0.0)


def surprise_bin(worst_square: np.ndarray) -> np.ndarray:
    """Histogram bin of a squared surprise: factor-2 bins from 2^-8 to 2^31."""
    logs = np.log2(np.maximum(worst_square, 2.0 ** -9))
    return np.minimum(np.maximum(np.floor(logs).astype(np.int64) + 8, 0), N_BINS - 1)


def remember(history: np.ndarray, worst_square: np.ndarray, learn: np.ndarray,
             halflife: float) -> np.ndarray:
    """History with this event's surprise added (decayed by the calibration half-life)."""
    decay = 0.5 ** (1.0 / halflife)
    out = np.where(learn[:, None], history * decay, history)
    rows = np.flatnonzero(learn & ~np.isnan(worst_square))
    out[rows, surprise_bin(worst_square[rows])] += 1.0
    return out


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
