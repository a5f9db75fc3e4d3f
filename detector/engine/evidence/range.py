"""Range evidence: a value, or its running mean, beyond everything the stream has shown.

Operators (and NAB's labellers) take a new extreme for an incident: a spike above every peak so
far, a sustained shift below every trough. The rule checks each event against the range of the
values seen before it, and the running mean of the values (half-life `halflife` events) against
the range of that mean, which catches a sustained shift that no single noisy value makes a new
extreme. A single value must clear its range by `value_margin` of the range's width, the mean
by `mean_margin`: traffic whose noise sets a new record at a daily peak now and then must not
alert on it, a level that leaves the usual band should. A range is only trusted once the
stream has spanned `warmup_s` seconds (a few daily cycles: a young stream's first busy
afternoon is no incident), and only breaks in a metric's allowed direction count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from detector.engine.direction import DOWN, UP


@dataclass(frozen=True)
class RangeRule:
    mean_margin: float      # 0 = the rule is off
    value_margin: float
    halflife: float         # of the running mean; 0 = single values only
    warmup_s: float


class RangeState(NamedTuple):
    """Per stream [B, D]: the range of the values (NaN = nothing seen yet), the running mean
    and its range."""

    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    mean_lo: np.ndarray
    mean_hi: np.ndarray


def observe(rule: RangeRule, state: RangeState, x: np.ndarray, valid: np.ndarray,
            age: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, RangeState]:
    """(broke [B], new state): whether the event breaks a trusted range of one of its
    metrics, checked before the ranges take the event in. `age`: seconds since the stream's
    first event."""
    trusted = (age >= rule.warmup_s)[:, None]
    broke, lo, hi = _beyond(x, valid, state.lo, state.hi, rule.value_margin, direction)
    mean, mean_lo, mean_hi = state.mean, state.mean_lo, state.mean_hi
    if rule.halflife > 0:
        rate = 1.0 - 0.5 ** (1.0 / rule.halflife)
        first = np.isnan(state.lo)  # nothing seen yet: the mean starts at this value
        mean = np.where(valid, np.where(first, x, mean + rate * (x - mean)), mean)
        mean_broke, mean_lo, mean_hi = _beyond(mean, valid, np.where(first, np.nan, mean_lo),
                                               np.where(first, np.nan, mean_hi),
                                               rule.mean_margin, direction)
        broke |= mean_broke
    return (broke & trusted).any(axis=1), RangeState(lo, hi, mean, mean_lo, mean_hi)


def _beyond(x: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float,
            direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per metric: x beyond [lo, hi] by more than margin x (hi - lo) in an allowed direction
    (never where nothing, or one value, was seen); the range then takes the valid x in."""
    width = margin * (hi - lo)
    above = (x > hi + width) & (direction != DOWN)
    below = (x < lo - width) & (direction != UP)
    beyond = valid & (hi > lo) & (above | below)
    xv = np.where(valid, x, np.nan)
    return beyond, np.fmin(lo, xv), np.fmax(hi, xv)
