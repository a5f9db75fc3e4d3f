"""The daily evidence (detector/engine/evidence/daily.py): a stream's trend against its usual
trend at that hour. A daily pattern moved by hours deviates; the same pattern at 80 % (a
weekend, multiplicative, so an offset after log compression) deviates only while the slow mean
catches up; an hour is trusted from the third day it is seen on; and the state is there only
when the evidence is on."""

from __future__ import annotations

import numpy as np
import pytest

from detector.engine.arena import ArenaShape, StreamArena, row_bytes
from detector.engine.evidence import daily

STEP_S = 300.0
PER_DAY = int(86_400 / STEP_S)


def _day_shape(hours: np.ndarray) -> np.ndarray:
    """A busy day in log units: quiet at night, a plateau from 8:00 to 18:00."""
    return 1.0 / (1.0 + np.exp(-(hours - 8.0) * 2.0)) - 1.0 / (1.0 + np.exp(-(hours - 18.0) * 2.0))


def _run(values: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Feed one stream of one metric through trend and deviation; its deviations, in order."""
    arena = StreamArena(ArenaShape(8, 4, 1, daily=True), capacity=1, max_streams=1)
    a, s = arena.arrays, np.array([0])
    valid = np.ones((1, 1), bool)
    out = np.empty(values.size)
    for i, (y, t) in enumerate(zip(values, ts, strict=True)):
        tt = np.array([t])
        tr = daily.trend(a, s, tt, np.array([[y]]), valid, np.array([[i == 0]]))
        out[i] = daily.deviation(a, s, tt, tr, valid)[0, 0]
    return out


@pytest.fixture(scope="module")
def week() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    days = 7
    ts = np.arange(days * PER_DAY) * STEP_S
    hours = np.mod(ts, 86_400.0) / 3_600.0
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.02, ts.size)
    base = 10.0 + _day_shape(hours) + noise
    return ts, hours, base


def test_an_hour_is_trusted_from_the_third_day_it_is_seen_on(week) -> None:
    ts, _, base = week
    dev = _run(base, ts)

    assert np.all(dev[:2 * PER_DAY] == 0.0)
    # On the third day, every hour's first event still counts as unseen.
    assert np.count_nonzero(dev[2 * PER_DAY:3 * PER_DAY]) == PER_DAY - 24
    assert np.count_nonzero(dev[3 * PER_DAY:4 * PER_DAY]) == PER_DAY


def test_the_usual_day_stays_within_a_few_deviations(week) -> None:
    ts, _, base = week
    dev = _run(base, ts)

    assert np.abs(dev[4 * PER_DAY:]).max() < 5.0


def test_an_evening_decline_three_hours_late_deviates(week) -> None:
    ts, hours, base = week
    moved = base.copy()
    late = slice(6 * PER_DAY, 7 * PER_DAY)
    moved[late] = base[late] - _day_shape(hours[late]) + _day_shape(np.where(
        hours[late] >= 12.0, hours[late] - 3.0, hours[late]))

    usual, shifted = _run(base, ts), _run(moved, ts)

    evening = late.start + np.flatnonzero((hours[late] >= 17.5) & (hours[late] < 21.0))
    assert np.abs(shifted[evening]).max() > 10.0
    assert np.abs(usual[evening]).max() < 5.0


def test_a_metric_without_a_daily_shape_is_never_judged_by_its_hours(week) -> None:
    ts, _, _ = week
    rng = np.random.default_rng(5)
    level = 10.0 + np.cumsum(rng.normal(0.0, 0.01, ts.size)) + rng.normal(0.0, 0.05, ts.size)

    dev = _run(level, ts)

    # While only a few hours are trusted, a random walk's few days can pass for a shape: on
    # the first trusted day, now and then; once the day is known, never.
    assert np.count_nonzero(dev[2 * PER_DAY:3 * PER_DAY]) < PER_DAY // 4
    assert np.all(dev[3 * PER_DAY:] == 0.0)


def test_a_weekend_at_80_percent_is_no_new_shape(week) -> None:
    ts, _, base = week
    weekend = base.copy()
    weekend[5 * PER_DAY:] += np.log(0.8)  # log-compressed values: a factor is an offset

    dev = _run(weekend, ts)

    # The trend sees the step into the weekend while the slow mean catches up (a time
    # constant of two hours), as it sees any level shift; then nothing.
    assert np.abs(dev[5 * PER_DAY:5 * PER_DAY + 12]).max() > 5.0
    assert np.abs(dev[5 * PER_DAY + 8 * 12:]).max() < 5.0


def test_the_state_is_there_only_when_the_evidence_is_on() -> None:
    off, on = ArenaShape(32, 8, 8), ArenaShape(32, 8, 8, daily=True)

    arena = StreamArena(off, capacity=2, max_streams=2)

    assert row_bytes(on) - row_bytes(off) == 200 * 8 + 484
    # Off, the layout is the one before the evidence existed: checkpoints stay readable.
    assert not [name for name in arena.arrays if name.startswith(("daily_", "trend_"))]
