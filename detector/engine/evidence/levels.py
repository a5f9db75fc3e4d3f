"""One event's surprise levels, one per piece of evidence, before and after each stream's tail.

The forecast residual, the level, the relation and (when on) the daily trend each give a level
(-log10 of a textbook tail probability); each is then lowered to its stream's own experience
(`calibration_tail`, one histogram per evidence: `HISTORIES`). The event's score is that of
its highest level.
"""

from __future__ import annotations

import numpy as np

from detector.engine import calibration_tail
from detector.engine.direction import one_sided
from detector.engine.evidence import level as level_evidence
from detector.engine.evidence import relation as relation_evidence

# Arena fields, in level order; the daily evidence's only when it is on (evidence/daily.py).
HISTORIES = ("surprise_hist", "level_hist", "relation_hist", "daily_hist")
# Half-octave bins of creep each evidence's habits tolerate (calibration_tail.rarity): the
# forecast's residual spread narrows as the model learns everything but a recurring step, so
# that step's level climbs at every sighting (NAB's square wave, steps at 09:00 and 18:00:
# 14, 20, 22, 26, 31, 33, 37 ...), reaching a new bin every two to four sightings, and never
# HABIT_COUNT in one. An octave (2 bins) holds a step that climbs a bin a day; one bin let
# NAB's daily files alert for days still (false alerts, seed 0: 292 without, 201 with one
# bin, 166 with two). The level and the relation measure against the stream's running
# spread, which the model's learning does not narrow; there a tolerance makes an incident
# that recurs a habit sooner (SMD: 64.3 to 59.4 at the shipped threshold with one bin).
CREEP = np.array([[2], [0], [0], [0]])


def textbook(worst: np.ndarray, dev: np.ndarray, valid: np.ndarray, direction: np.ndarray,
             relation_terms: np.ndarray | None, *, level: bool) -> np.ndarray:
    """[3, B] levels of the forecast surprise `worst` (largest squared standardised residual),
    the deviations `dev` and their relation (its distance's terms, None when it is off); NaN
    where an evidence has nothing to say (no valid metric, or switched off)."""
    n_valid = valid.sum(axis=1)
    none = n_valid == 0
    sides = np.where(one_sided(direction, valid), 1, 2)
    out = np.full((3, worst.size), np.nan)
    out[0] = np.where(none, np.nan, calibration_tail.normal_level(worst, n_valid, sides))
    if level:
        out[1] = np.where(none, np.nan, level_evidence.level(dev, valid, direction))
    if relation_terms is not None:
        out[2] = np.where(n_valid < 2, np.nan,
                          relation_evidence.level(dev, valid, relation_terms, direction))
    return out


def lowered(arrays: dict[str, np.ndarray], slots: np.ndarray, levels: np.ndarray,
            learn: np.ndarray, halflife: float, age: np.ndarray) -> np.ndarray:
    """[E, B] levels of one wave (one event per stream `slots`; the first E evidences)
    lowered to each stream's own tail of that evidence (NaN counts as 0); the tails then take
    the levels in where `learn`, decayed by the events and by the stream's time since they
    last did (`age`: seconds since each stream's first event; arena field `tail_age`)."""
    names = HISTORIES[:levels.shape[0]]
    tails = np.stack([arrays[name][slots] for name in names])
    out = calibration_tail.rarity(levels, tails, CREEP[:len(names)])
    last = arrays["tail_age"][slots]
    tails = calibration_tail.remember(tails, levels, learn, halflife, age - last)
    arrays["tail_age"][slots] = np.where(learn, age, last)
    for name, tail in zip(names, tails, strict=True):
        arrays[name][slots] = tail
    return out
