"""The range rule's margins grow with the number of metrics a stream has (evidence/range.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.engine.evidence import range as range_rule

DAY = 86_400.0
RULE = range_rule.RangeRule(mean_margin=0.02, value_margin=0.2, halflife=0.0, warmup_s=DAY)


def seen_zero_to_one(d: int) -> range_rule.RangeState:
    """A stream of `d` metrics that has shown every value from 0 to 1 on each."""
    ones = np.ones((1, d))
    return range_rule.RangeState(0 * ones, ones, 0.5 * ones, 0.5 * ones, 0.5 * ones)


def broke(d: int, excursion: float) -> bool:
    """Whether metric 0 of a `d`-metric stream at 1 + excursion breaks its range [0, 1] while
    the others stay inside it."""
    x = np.full((1, d), 0.5)
    x[0, 0] = 1.0 + excursion
    flagged, _ = range_rule.observe(RULE, seen_zero_to_one(d), x, np.ones((1, d), bool),
                                    np.array([2 * DAY]), np.zeros((1, d), np.int8),
                                    np.array([float(d)]))
    return bool(flagged[0])


def test_a_one_metric_stream_keeps_the_margins_as_set() -> None:
    assert range_rule.margin_scale(np.array([1.0]))[0, 0] == 1.0
    assert range_rule.margin_scale(np.array([38.0]))[0, 0] == pytest.approx(
        1.0 + range_rule.MARGIN_GROWTH * math.log(38.0))


def test_the_same_excursion_breaks_the_range_of_one_metric_but_not_one_of_38() -> None:
    # 1.3 value margins: beyond the one-metric margin, within the 38-metric one (x 1.73).
    excursion = 1.3 * RULE.value_margin
    assert broke(1, excursion)
    assert not broke(38, excursion)
    # Past the wider margin the host's metric breaks it too.
    assert broke(38, 1.1 * RULE.value_margin * range_rule.margin_scale(np.array([38.0]))[0, 0])


def mean_broke(mean_margin: float, d: int) -> bool:
    """Whether a `d`-metric stream's running mean (half-life one event) moving from 1.0 halfway
    to 1.1, to 1.05, breaks the mean's range [0.5, 1.0]: by 0.1 of its width."""
    rule = range_rule.RangeRule(mean_margin, value_margin=10.0, halflife=1.0, warmup_s=DAY)
    ones = np.ones((1, d))
    state = range_rule.RangeState(0 * ones, 2 * ones, ones, 0.5 * ones, ones)
    x = np.full((1, d), 1.0)
    x[0, 0] = 1.1
    flagged, _ = range_rule.observe(rule, state, x, np.ones((1, d), bool), np.array([2 * DAY]),
                                    np.zeros((1, d), np.int8), np.array([float(d)]))
    return bool(flagged[0])


def test_the_mean_margin_grows_alike() -> None:
    # 0.1 of the width is 5 margins of 0.02: past both; 1.67 margins of 0.06: past one
    # metric's margin, short of a 38-metric stream's (x 1.73).
    assert mean_broke(0.02, 1) and mean_broke(0.02, 38)
    assert mean_broke(0.06, 1)
    assert not mean_broke(0.06, 38)
