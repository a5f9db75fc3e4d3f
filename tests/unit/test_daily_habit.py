"""Daily habits (detector/engine/daily_habit.py): a surprise back at the same hour is damped."""

from __future__ import annotations

import math

import numpy as np

from detector.engine import daily_habit
from detector.engine.calibration_tail import LEVEL_AT_ONE

DAY, HOUR = 86_400.0, 3_600.0
T0 = 1_772_409_600.0 + 10 * HOUR      # 10:00 UTC
ALERT = 0.7 * LEVEL_AT_ONE
PER_DAY = 288                         # a five-minute stream


class Stream:
    """One stream's daily-habit fields, stepped one event at a time."""

    def __init__(self, streams: int = 1) -> None:
        self.arrays = {
            "recur_day": np.zeros((streams, daily_habit.HOURS, 2), np.uint16),
            "recur_bin": np.zeros((streams, daily_habit.HOURS, 2, daily_habit.EVIDENCES),
                                  np.uint8),
            "first_ts": np.full(streams, T0 - 10 * DAY),
        }

    def step(self, ts: float, forecast: float, level: float = 0.0, *, learn: bool = True,
             lowered: float | None = None) -> np.ndarray:
        """The event's forecast and level evidence after damping (the tails left them at
        `lowered`, by default at their textbook levels)."""
        textbook = np.array([[forecast], [level], [np.nan], [np.nan]])
        own = textbook.copy() if lowered is None else np.full_like(textbook, lowered)
        age = ts - self.arrays["first_ts"][0]
        seen = np.array([age / DAY * PER_DAY])
        return daily_habit.damp(self.arrays, np.array([0]), textbook, own, np.array([learn]),
                                seen, np.array([age]))[:2, 0]


def test_a_surprise_back_at_the_same_hour_next_day_is_damped_to_a_habit_of_once_a_day() -> None:
    stream = Stream()
    assert stream.step(T0, 40.0)[0] == 40.0               # the first time: as the tails say
    second = stream.step(T0 + DAY + 5 * 60, 45.0)[0]      # the next day, same hour
    habit = math.log10(PER_DAY)
    assert second == habit + math.log10(45.0 / habit)
    assert second < ALERT


def test_an_incident_far_beyond_its_daily_habit_still_alerts() -> None:
    stream = Stream()
    stream.step(T0, 400.0)
    assert stream.step(T0 + DAY, 700.0)[0] > 0.99 * ALERT  # within an octave, but 700 is
    assert stream.step(T0 + 2 * DAY, 1_300.0)[0] > ALERT   # hundreds of times its habit


def test_a_surprise_at_another_hour_or_an_octave_higher_is_not_a_habit() -> None:
    stream = Stream()
    stream.step(T0, 20.0)
    assert stream.step(T0 + DAY + HOUR, 20.0)[0] == 20.0   # 11:00, not 10:00
    assert stream.step(T0 + DAY, 50.0)[0] == 50.0          # beyond an octave above 20


def test_a_surprise_lower_than_yesterdays_is_damped() -> None:
    stream = Stream()
    stream.step(T0, 50.0)
    assert stream.step(T0 + DAY, 8.0)[0] < ALERT


def test_an_incident_within_one_hour_of_one_day_is_never_its_own_habit() -> None:
    stream = Stream()
    for minute in range(0, 60, 5):
        assert stream.step(T0 + minute * 60, 30.0)[0] == 30.0


def test_the_second_surprise_of_the_hour_the_next_day_is_damped_too() -> None:
    stream = Stream()
    stream.step(T0, 30.0)
    assert stream.step(T0 + DAY, 30.0)[0] < ALERT
    assert stream.step(T0 + DAY + 10 * 60, 30.0)[0] < ALERT  # yesterday's entry is kept


def test_a_routine_survives_one_day_without_it_but_not_two() -> None:
    stream = Stream()
    stream.step(T0, 30.0)
    assert stream.step(T0 + 2 * DAY, 30.0)[0] < ALERT
    other = Stream()
    other.step(T0, 30.0)
    assert other.step(T0 + 3 * DAY, 30.0)[0] == 30.0


def test_each_evidence_has_its_own_habit() -> None:
    stream = Stream()
    stream.step(T0, 30.0, 1.0)                        # a forecast surprise only
    forecast, level = stream.step(T0 + DAY, 30.0, 30.0)
    assert forecast < ALERT and level == 30.0


def test_a_stream_not_learning_remembers_nothing() -> None:
    stream = Stream()
    stream.step(T0, 30.0, learn=False)
    assert stream.step(T0 + DAY, 30.0)[0] == 30.0


def test_damping_never_raises_what_the_tails_lowered() -> None:
    stream = Stream()
    stream.step(T0, 30.0)
    assert stream.step(T0 + DAY, 30.0, lowered=1.5)[0] == 1.5


def test_small_levels_are_neither_judged_nor_remembered() -> None:
    stream = Stream()
    stream.step(T0, 3.9)
    assert stream.step(T0 + DAY, 3.9)[0] == 3.9
    assert not stream.arrays["recur_bin"].any()
