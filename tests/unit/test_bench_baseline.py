"""The rolling z-score baseline: the textbook formula, strictly causal, exact on flat windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.bench.baseline import Z_CAP, rolling_z, zscore


def brute_force(x: np.ndarray, window: int) -> np.ndarray:
    """|x_t - mean| / std(ddof=1) of the previous `window` finite values, row by row."""
    z = np.zeros(x.shape)
    for t in range(x.shape[0]):
        for j in range(x.shape[1]):
            past = x[max(0, t - window):t, j]
            past = past[np.isfinite(past)]
            if past.size < 2 or not np.isfinite(x[t, j]):
                continue
            std, deviation = past.std(ddof=1), abs(x[t, j] - past.mean())
            z[t, j] = deviation / std if std > 0 else (Z_CAP if deviation > 0 else 0.0)
    return z


def test_rolling_z_equals_the_formula_over_the_previous_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5e6, 2e3, (900, 3))  # large offset: block sums must not lose the spread
    x[100:500, 1] = 3.0
    x[600, 1] = np.nan
    x[:, 2] = np.round(x[:, 2] / 1e3)
    np.testing.assert_allclose(rolling_z(x, 200), brute_force(x, 200), rtol=1e-9, atol=1e-9)


def test_flat_window_scores_zero_while_flat_and_the_cap_when_it_moves() -> None:
    x = np.r_[np.arange(10.0), np.full(30, 0.1 + 0.2), [0.31]][:, None]
    z = rolling_z(x, 10)[:, 0]
    assert np.all(z[20:40] == 0.0)  # windows of equal values, std exactly 0
    assert z[40] == Z_CAP


def test_first_rows_and_missing_values_score_zero() -> None:
    x = np.array([[1.0], [50.0], [2.0], [np.nan], [3.0]])
    z = rolling_z(x, 100)[:, 0]
    assert z[0] == z[1] == 0.0 and z[3] == 0.0  # fewer than two earlier values; missing
    assert z[2] == pytest.approx(abs(2.0 - 25.5) / np.std([1.0, 50.0], ddof=1))


def test_zscore_is_the_largest_metric_z_and_accepts_one_metric() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (300, 2))
    x[250, 1] = 9.0
    assert np.array_equal(zscore(x, 50), rolling_z(x, 50).max(axis=1))
    assert zscore(x[:, 0], 50).shape == (300,) and zscore(x, 50)[250] > 7


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 60), st.integers(1, 399))
def test_a_future_value_never_changes_an_earlier_score(seed: int, window: int, cut: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(100, 5, (400, 2))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.integers(0, 400, 20), 0] = 100.0
    future = x.copy()
    future[cut:] = rng.normal(-1e9, 1e7, future[cut:].shape)
    np.testing.assert_array_equal(rolling_z(x, window)[:cut], rolling_z(future, window)[:cut])
    np.testing.assert_array_equal(rolling_z(x[:cut], window), rolling_z(x, window)[:cut])


def test_window_too_short_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        rolling_z(np.zeros((5, 1)), 1)
