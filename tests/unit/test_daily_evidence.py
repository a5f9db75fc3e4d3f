"""The daily evidence (detector/engine/evidence/daily.py): a stream's trend against its usual
trend at that hour. A daily pattern moved by hours deviates, and once moved for good, not again
every day after; the same pattern at 80 % (a weekend, multiplicative, so an offset after log
compression) deviates only while the slow mean catches up; one outage hour does not make its
hour look noisy; an hour is trusted from the third day it is seen on; and the state is there
only when the evidence is on."""

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


def _feed(values: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Feed one stream of one metric through trend and deviation: its deviations, in order, and
    the arena's arrays after the last."""
    arena = StreamArena(ArenaShape(8, 4, 1, daily=True), capacity=1, max_streams=1)
    a, s = arena.arrays, np.array([0])
    valid = np.ones((1, 1), bool)
    out = np.empty(values.size)
    for i, (y, t) in enumerate(zip(values, ts, strict=True)):
        tt = np.array([t])
        tr, dt = daily.trend(a, s, tt, np.array([[y]]), valid, np.array([[i == 0]]))
        out[i] = daily.deviation(a, s, tt, tr, dt, valid)[0, 0]
    return out, a


def _run(values: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return _feed(values, ts)[0]


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


def test_a_pattern_moved_for_good_deviates_the_day_it_moves_not_every_day_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    days = 8
    ts = np.arange(days * PER_DAY) * STEP_S
    hours = np.mod(ts, 86_400.0) / 3_600.0
    base = 10.0 + _day_shape(hours) + np.random.default_rng(3).normal(0.0, 0.02, ts.size)
    moved = base.copy()
    later = slice(5 * PER_DAY + 12 * 12, None)  # from noon of day 5 on, the evening 3 h late
    moved[later] = base[later] - _day_shape(hours[later]) + _day_shape(np.where(
        hours[later] >= 12.0, hours[later] - 3.0, hours[later]))

    def worst(dev: np.ndarray, day: int) -> float:
        return float(np.abs(dev[day * PER_DAY:(day + 1) * PER_DAY]).max())

    dev = _run(moved, ts)
    # Without the recent deviations' memory, the hours learn the new evening only at
    # 1 / days a day, and the day after the move deviates almost as much again.
    monkeypatch.setattr(daily, "RECENT_S", np.inf)
    forgetful = _run(moved, ts)

    assert worst(dev, 5) > 10.0
    assert worst(dev, 6) < 5.0
    assert worst(forgetful, 6) > 10.0


def test_one_outage_hour_does_not_make_its_hour_look_noisy_for_a_week(
        week, monkeypatch: pytest.MonkeyPatch) -> None:
    ts, _, base = week
    ts, base = ts[:5 * PER_DAY], base[:5 * PER_DAY]
    outage = base.copy()
    outage[4 * PER_DAY + 10 * 12:4 * PER_DAY + 11 * 12] -= 5.0  # day 4, 10:00 to 11:00

    def spread(values: np.ndarray) -> float:
        return float(np.sqrt(_feed(values, ts)[1]["daily_var"][0, 10, 0]))

    usual, clipped = spread(base), spread(outage)
    monkeypatch.setattr(daily, "CLIP_UNITS", np.inf)
    unclipped = spread(outage)

    assert clipped < 3.0 * usual
    assert unclipped > 10.0 * usual


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

    assert row_bytes(on) - row_bytes(off) == 204 * 8 + 484
    # Off, the layout is the one before the evidence existed: checkpoints stay readable.
    assert not [name for name in arena.arrays if name.startswith(("daily_", "trend_"))]
