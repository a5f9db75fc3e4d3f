"""The rolling z-score baseline: |x - mean| / std over the previous 1,000 rows, max over metrics.

What a user would try first, run through the same scoring as the detector. Strictly causal: the
score of row t depends on rows t-1000 .. t only (the statistics on the rows before t, the
deviation on row t), so no later row ever changes it. Its shipped threshold is the conventional
four-sigma alarm, fixed here and never fitted to labels; the bench also sweeps it.

Conventions: sample standard deviation (ddof 1); a missing value (NaN) is left out of the
statistics and scores 0; a metric needs two earlier values before it scores. A window whose
values are all equal has std 0: the next value scores 0 if it equals them and Z_CAP if not (a
finite stand-in for infinity, so the threshold sweep stays finite).
"""

from __future__ import annotations

import numpy as np

ZSCORE_WINDOW = 1_000
ZSCORE_THRESHOLD = 4.0
Z_CAP = 1e6
MIN_HISTORY = 2


def rolling_z(values: np.ndarray, window: int = ZSCORE_WINDOW) -> np.ndarray:
    """Per row and metric, |x_t - mean| / std of the metric's previous `window` rows.

    `values` is [rows, metrics] (a 1-D series is one metric). Rows go in blocks of `window`;
    a block's values are shifted by the last one before it, which lies in the window of every
    row of the block, and each window is summed from its own rows only, so rounding stays that
    of a short sum of deviations however long the series or large its level. A window of equal
    values is found exactly.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, _ = x.shape
    if window < MIN_HISTORY:
        raise ValueError(f"window must be at least {MIN_HISTORY} rows")
    z = np.zeros(x.shape)
    if n == 0:
        return z
    valid = np.isfinite(x)
    equal_run = _equal_run(x, valid)
    for begin in range(0, n, window):
        end = min(n, begin + window)
        low = max(0, begin - window)
        shift = _last_valid(x[low:max(begin, 1)], valid[low:max(begin, 1)])
        z[begin:end] = _block(x[low:end] - shift, valid[low:end], equal_run, begin - low, low,
                              window)
    return z


def zscore(values: np.ndarray, window: int = ZSCORE_WINDOW) -> np.ndarray:
    """The baseline's anomaly score per row: the largest z over the row's metrics."""
    return rolling_z(values, window).max(axis=1)


def _last_valid(rows: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per metric, the last finite value of `rows` (0 for a metric without one)."""
    last = rows.shape[0] - 1 - np.argmax(ok[::-1], axis=0)
    return np.where(ok.any(axis=0), rows[last, np.arange(rows.shape[1])], 0.0)


def _block(seg: np.ndarray, ok: np.ndarray, equal_run: np.ndarray, first: int, low: int,
           window: int) -> np.ndarray:
    """z of the rows seg[first:] (values shifted; seg starts at file row `low`).

    Each row's window is a tail of seg[:first] plus a head of seg[first:]: summed as a suffix
    sum of the one and a prefix sum of the other, it never carries rows outside the window.
    """
    d = np.where(ok, seg, 0.0)
    okf = ok.astype(np.float64)
    rows = np.arange(first, seg.shape[0])              # positions in seg of the scored rows
    start = np.maximum(rows + low - window, 0) - low   # each row's window: seg[start:rows]
    c, t1, t2 = (_suffix(v[:first])[start] + _prefix(v[first:])[rows - first]
                 for v in (okf, d, d * d))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = t1 / c
        var = np.maximum(t2 - t1 * mean, 0.0) / (c - 1)
    # A window of equal values: the mean is that value and the variance exactly 0.
    previous = np.maximum(rows - 1, 0)
    width = np.minimum(rows + low, window)[:, None]
    flat = (rows > 0)[:, None] & (equal_run[previous + low] >= width)
    mean = np.where(flat, d[previous], mean)
    var = np.where(flat, 0.0, var)
    deviation = np.abs(d[rows] - mean)
    std = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, deviation / std, np.where(deviation > 0, Z_CAP, 0.0))
    scored = ok[rows] & (c >= MIN_HISTORY)
    return np.where(scored & np.isfinite(z), np.minimum(z, Z_CAP), 0.0)


def _prefix(v: np.ndarray) -> np.ndarray:
    """p[k] = v[:k].sum(axis=0), k = 0 .. len(v)."""
    return np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0)])


def _suffix(v: np.ndarray) -> np.ndarray:
    """s[k] = v[k:].sum(axis=0), k = 0 .. len(v), summed from the end."""
    return _prefix(v[::-1])[::-1]


def _equal_run(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row and metric, how many rows up to it in a row hold exactly its value (0 if NaN)."""
    n = x.shape[0]
    same = np.zeros(x.shape, dtype=bool)
    same[1:] = valid[1:] & valid[:-1] & (x[1:] == x[:-1])
    index = np.arange(n)[:, None]
    last_break = np.maximum.accumulate(np.where(same, 0, index), axis=0)
    return np.where(valid, index - last_break + 1, 0)
