"""normalizer.count_step: one count, the smallest change a counting metric can make."""

from __future__ import annotations

import numpy as np

from detector.engine import normalizer


def test_one_count_is_log_two_from_a_mean_of_zero_and_shrinks_as_the_mean_grows() -> None:
    mean = normalizer.compress(np.array([[0.004, 50.3, 0.6]]), True)
    step = normalizer.count_step(mean, np.ones((1, 3), bool), True)
    np.testing.assert_allclose(step, [[np.log(2), np.log(52 / 51), np.log(2)]])


def test_uncompressed_a_count_step_is_one_and_a_metric_that_is_no_count_has_none() -> None:
    step = normalizer.count_step(np.array([[40.7, 3.0]]), np.array([[True, False]]), False)
    assert step.tolist() == [[1.0, 0.0]]


def test_a_fraction_marks_its_metric_as_no_count() -> None:
    x = np.array([[1.5, 2.0, 1e-12, 7.25]])
    valid = np.array([[True, True, True, False]])
    assert normalizer.fraction(x, valid).tolist() == [[True, False, False, False]]
