"""Daily habits: a surprise that comes back at the same hour of the day is the stream's routine.

A nightly backup, a job at 10:00, the step of a daily square wave: each is a surprise the first
time, and a stream's tail (calibration_tail) makes it a habit only once it has been seen
HABIT_COUNT times, so a surprise that comes once a day alerts on four days running. Per hour of
the day (UTC) a stream remembers, for the forecast and the level evidence, the highest surprise
of the last two days that had one in that hour. A surprise (textbook level >= MIN_LEVEL) is a
daily habit when one at most CREEP_BINS half-octave bins lower came in the same hour yesterday
or the day before: it is then damped as a habit of once a day, h = log10(the stream's events
per day), the way `calibration_tail.damped` damps any habit. The routine stops alerting on its
second day; an incident hundreds of times beyond its habit still alerts (a five-minute
stream's habit is 2.5, and a level of 700 still scores 0.7).

Measured (README, Detection quality): NAB 65.5 -> 67.4 at the shipped threshold, false alerts
188 -> 147, the same 93 windows caught; SMD and the traffic corpus raise the same alerts.

Arena fields: `recur_day` [HOURS, 2] (the day numbers, newest first, of the last two days with
a surprise in each hour; uint16, so they wrap after 179 years) and `recur_bin` [HOURS, 2,
EVIDENCES] (each evidence's highest level bin on those days; 0: none, which no surprise
matches: its bin is at least calibration_tail.FIRST_OCTAVE_BIN).
"""

from __future__ import annotations

import numpy as np

from detector.engine.calibration_tail import damped, level_bin
from detector.engine.evidence.seasonal import bucket
from detector.engine.features import SECONDS_PER_DAY

EVIDENCES = 2          # the forecast and the level, the first two of evidence/levels.HISTORIES
HOURS = 24             # the hours of a day: a routine's slot
MIN_LEVEL = 4.0        # a surprise: the textbook level that enters and is judged (1 in 10,000)
CREEP_BINS = 2         # an octave lower counts as the same surprise (as levels.CREEP)
DAYS_BACK = 2          # yesterday or the day before: one day without it does not end a routine
_DAY_WRAP = 1 << 16


def damp(arrays: dict[str, np.ndarray], slots: np.ndarray, textbook: np.ndarray,
         lowered: np.ndarray, learn: np.ndarray, seen: np.ndarray, age: np.ndarray
         ) -> np.ndarray:
    """[E, B] levels of one wave (one event per stream `slots`) with each daily habit of the
    first EVIDENCES damped; `textbook` [E, B] are the levels before the tails lowered them to
    `lowered`, `seen` and `age` each stream's events and seconds so far (the event's time is
    its stream's `first_ts` plus its age). The streams where `learn` then remember the wave's
    surprises in their hour."""
    u = np.nan_to_num(textbook[:EVIDENCES], nan=0.0)
    surprise = u >= MIN_LEVEL
    rows = np.flatnonzero(surprise.any(axis=0))
    if rows.size == 0:  # the common case: nothing to judge, nothing to remember
        return lowered
    s, u, surprise = slots[rows], u[:, rows].T, surprise[:, rows].T   # [R], [R, E'], [R, E']
    ts = arrays["first_ts"][s] + age[rows]
    day = np.floor(ts / SECONDS_PER_DAY).astype(np.int64)
    hour = bucket(ts, HOURS)
    days = arrays["recur_day"][s, hour].astype(np.int64)     # [R, 2]
    bins = arrays["recur_bin"][s, hour].astype(np.int64)     # [R, 2, E']
    ago = np.mod(day[:, None] - days, _DAY_WRAP)
    recent = (ago >= 1) & (ago <= DAYS_BACK)
    b = level_bin(u)
    hit = surprise & ((bins >= (b - CREEP_BINS)[:, None, :]) & recent[:, :, None]).any(axis=1)
    out = lowered
    if hit.any():
        out = lowered.copy()
        per_day = SECONDS_PER_DAY * seen[rows] / np.maximum(age[rows], 1.0)
        habit = np.log10(np.maximum(per_day, 10.0))[:, None]
        mine = out[:EVIDENCES, rows].T
        out[:EVIDENCES, rows] = np.where(hit, np.minimum(mine, damped(habit, u)), mine).T
    keep = learn[rows]
    _remember(arrays, s[keep], hour[keep], day[keep], days[keep], bins[keep],
              np.where(surprise, b, 0)[keep])
    return out


def _remember(arrays: dict[str, np.ndarray], s: np.ndarray, hour: np.ndarray, day: np.ndarray,
              days: np.ndarray, bins: np.ndarray, new: np.ndarray) -> None:
    """Each stream's hour takes the surprises' bins `new` [R, E'] in: the day's entry when it is
    today's, else a new entry for today, the older one moving back."""
    today = np.mod(day, _DAY_WRAP)
    fresh = days[:, 0] != today
    days = np.where(fresh[:, None], np.stack([today, days[:, 0]], axis=1), days)
    bins = np.where(fresh[:, None, None],
                    np.stack([np.zeros_like(new), bins[:, 0]], axis=1), bins)
    bins[:, 0] = np.maximum(bins[:, 0], new)
    arrays["recur_day"][s, hour] = days
    arrays["recur_bin"][s, hour] = bins
