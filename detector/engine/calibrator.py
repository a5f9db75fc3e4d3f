"""Forecast residuals → the event's forecast surprise, against each stream's residual spread.

Each stream keeps a running variance of its own forecast residual per metric, in the metric's
compressed units (not z units, whose scale drifts while the normaliser settles). An event's
surprise is its most extreme squared standardised residual over its metrics; a stream's
metrics are strongly correlated (bytes, packets and flows move together), so they are not
multiplied as if independent. `calibration_tail` turns the surprise into a score, and
`shares` says which metric made the event unusual.
"""

from __future__ import annotations

import numpy as np

FLOAT_MAX = float(np.finfo(np.float64).max)
WINSOR = 16.0        # residuals enter the variance clipped at 4 sigma, so one spike
                     # does not blind the stream for a half-life
PRIOR_WEIGHT = 4.0   # a new stream starts as if it had seen 4 residuals as large as its own
                     # spread: cautious until it has some history


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
