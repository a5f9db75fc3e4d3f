"""The range rule (evidence/range.py): its margins grow with the number of metrics a stream has,
and a running mean that climbs smoothly beyond its range breaks it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from detector.engine.evidence import range as range_rule

DAY = 86_400.0
RULE = range_rule.RangeRule(mean_margin=0.02, value_margin=0.2, halflife=0.0, warmup_s=DAY)


def seen_zero_to_one(d: int) -> range_rule.RangeState:
    """A stream of `d` metrics that has shown every value from 0 to 1 on each."""
    ones = np.ones((1, d))
    return range_rule.RangeState(0 * ones, ones, 0.5 * ones, 0.5 * ones, 0.5 * ones,
                                 np.nan * ones, np.nan * ones, ones < 0, np.array([np.nan]))


def broke(d: int, excursion: float) -> bool:
    """Whether metric 0 of a `d`-metric stream at 1 + excursion breaks its range [0, 1] while
    the others stay inside it."""
    x = np.full((1, d), 0.5)
    x[0, 0] = 1.0 + excursion
    flagged, _ = range_rule.observe(RULE, seen_zero_to_one(d), x, np.ones((1, d), bool),
                                    np.array([2 * DAY]), np.zeros((1, d), np.int8),
                                    np.array([float(d)]), np.array([1000]))
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
    state = range_rule.RangeState(0 * ones, 2 * ones, ones, 0.5 * ones, ones, np.nan * ones,
                                  np.nan * ones, ones < 0, np.array([np.nan]))
    x = np.full((1, d), 1.0)
    x[0, 0] = 1.1
    flagged, _ = range_rule.observe(rule, state, x, np.ones((1, d), bool), np.array([2 * DAY]),
                                    np.zeros((1, d), np.int8), np.array([float(d)]),
                                    np.array([1000]))
    return bool(flagged[0])


def test_the_mean_margin_grows_alike() -> None:
    # 0.1 of the width is 5 margins of 0.02: past both; 1.67 margins of 0.06: past one
    # metric's margin, short of a 38-metric stream's (x 1.73).
    assert mean_broke(0.02, 1) and mean_broke(0.02, 38)
    assert mean_broke(0.06, 1)
    assert not mean_broke(0.06, 38)


DRIFT_RULE = range_rule.RangeRule(mean_margin=0.02, value_margin=10.0, halflife=16.0,
                                  warmup_s=0.0, drift_margin=0.05, drift_warmup_s=7 * DAY)


def mean_breaks(values: np.ndarray, rule: range_rule.RangeRule = DRIFT_RULE,
                age: float = 8 * DAY) -> np.ndarray:
    """Which events of a one-metric stream's values (`age` seconds after its first event, its
    mean settled in [0.1, 0.9] by values between 0 and 1) break the mean's range, one event at
    a time."""
    state = range_rule.RangeState(*(np.array([[v]]) for v in (
        0.0, 1.0, 0.5, 0.1, 0.9, np.nan, np.nan, False)), np.array([np.nan]))
    out = []
    for i, v in enumerate(values):
        broke, state = range_rule.observe(rule, state, np.array([[v]]),
                                          np.ones((1, 1), bool), np.array([age + 300.0 * i]),
                                          np.zeros((1, 1), np.int8), np.array([1.0]),
                                          np.array([288 + i]))
        out.append(bool(broke[0]))
    return np.array(out)


def test_a_mean_that_climbs_smoothly_beyond_its_range_breaks_it() -> None:
    # 0.5 rising by 0.01 an event to 1.3: the mean passes 0.9 and sets a new record every
    # event by less than the margin (0.02 x the width of 0.8), so judged against its range
    # of the event before it never broke; against its range of the last settling it does.
    climb = np.concatenate([np.full(16, 0.5), np.linspace(0.5, 1.3, 81), np.full(40, 1.3)])
    broke = mean_breaks(climb)
    assert broke.any()
    first = int(np.argmax(broke))
    assert 16 < first < 97  # while it climbs, not before
    # Without the drift check (its margin 0), or before the stream spans its warm-up (a
    # week), the same climb breaks nothing: no single event moves the mean by the margin.
    assert not mean_breaks(climb, dataclasses.replace(DRIFT_RULE, drift_margin=0.0)).any()
    assert not mean_breaks(climb, age=5 * DAY).any()


def test_a_drift_breaks_once_until_the_mean_comes_back_inside_its_settled_range() -> None:
    # A long climb sets a drift record every half-life; it breaks the range once, not at each.
    climb = np.concatenate([np.full(16, 0.5), np.linspace(0.5, 3.0, 400)])
    assert mean_breaks(climb).sum() == 1
    # Back inside its range, the mean's next drift breaks it again.
    twice = np.concatenate([climb, np.full(300, 0.5), np.linspace(0.5, 4.0, 300)])
    assert mean_breaks(twice).sum() == 2


def test_a_drift_within_a_day_of_a_break_is_not_judged() -> None:
    # A spike beyond the values' range [0, 1] breaks it (moving the mean by 0.04); a climb of
    # the mean an hour later is the same excursion settling, and breaks nothing (its values
    # stay within the range the spike widened). The same climb alone drifts and breaks it.
    rule = dataclasses.replace(DRIFT_RULE, value_margin=0.2)
    climb = np.concatenate([np.full(16, 0.5), np.linspace(0.5, 1.3, 81), np.full(40, 1.3)])
    broke = mean_breaks(np.concatenate([[1.5], np.full(11, 0.5), climb]), rule)
    assert broke[0] and not broke[1:].any()
    assert mean_breaks(climb).any()


def test_a_mean_back_at_a_height_it_settled_at_does_not_break_again() -> None:
    # The same bump twice, a day apart: the first one breaks the mean's range, the second
    # one reaches no further than what the range settled at.
    bump = np.concatenate([np.full(16, 0.5), np.full(32, 1.4), np.full(200, 0.5)])
    broke = mean_breaks(np.concatenate([bump, bump]))
    assert broke[:bump.size].any()
    assert not broke[bump.size:].any()


def test_a_mean_inside_its_range_never_breaks_it() -> None:
    rng = np.random.default_rng(0)
    assert not mean_breaks(0.5 + 0.04 * rng.standard_normal(2000)).any()
