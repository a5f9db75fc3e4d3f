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

A host of many metrics sets some record more often than a stream of one: how far the largest
of D metrics' excursions reaches grows like ln D for tails no heavier than exponential, so
both margins grow by that much, `MARGIN_GROWTH` x ln D of themselves (`margin_scale`); a
one-metric stream keeps them as they are.
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


# Margins of a stream of D metrics: x (1 + MARGIN_GROWTH ln D). Picked on the traffic corpus
# (4 metrics; the smallest value of its best plateau: 0 / 0.1 / 0.2 / 0.3 / 0.5 give 95.0 /
# 95.3 / 96.4 / 96.4 / 96.4 at the shipped threshold, 14 / 13 / 8 / 8 / 8 false alerts),
# checked on SMD (38 metrics: 64.4 / 64.9 / 64.3 / 62.9 / 63.4, false alerts 186 / 174 / 170
# / 168 / 164); NAB's one-metric files do not see it.
MARGIN_GROWTH = 0.2


def margin_scale(n_metrics: np.ndarray) -> np.ndarray:
    """[B, 1] factor of both margins for streams of `n_metrics` [B] metrics."""
    return (1.0 + MARGIN_GROWTH * np.log(np.maximum(n_metrics, 1.0)))[:, None]


class RangeState(NamedTuple):
    """Per stream [B, D]: the range of the values (NaN = nothing seen yet), the running mean
    and its range."""

    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    mean_lo: np.ndarray
    mean_hi: np.ndarray


def observe(rule: RangeRule, state: RangeState, x: np.ndarray, valid: np.ndarray,
            age: np.ndarray, direction: np.ndarray, n_metrics: np.ndarray
            ) -> tuple[np.ndarray, RangeState]:
    """(broke [B], new state): whether the event breaks a trusted range of one of its
    metrics, checked before the ranges take the event in. `age`: seconds since the stream's
    first event; `n_metrics`: how many metrics each stream has (margin_scale)."""
    trusted = (age >= rule.warmup_s)[:, None]
    scale = margin_scale(n_metrics)
    broke, lo, hi = _beyond(x, valid, state.lo, state.hi, rule.value_margin * scale,
                            direction)
    mean, mean_lo, mean_hi = state.mean, state.mean_lo, state.mean_hi
    if rule.halflife > 0:
        rate = 1.0 - 0.5 ** (1.0 / rule.halflife)
        first = np.isnan(state.lo)  # nothing seen yet: the mean starts at this value
        mean = np.where(valid, np.where(first, x, mean + rate * (x - mean)), mean)
        mean_broke, mean_lo, mean_hi = _beyond(mean, valid, np.where(first, np.nan, mean_lo),
                                               np.where(first, np.nan, mean_hi),
                                               rule.mean_margin * scale, direction)
        broke |= mean_broke
    return (broke & trusted).any(axis=1), RangeState(lo, hi, mean, mean_lo, mean_hi)


def _beyond(x: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            margin: np.ndarray, direction: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per metric: x beyond [lo, hi] by more than margin x (hi - lo) in an allowed direction
    (never where nothing, or one value, was seen); the range then takes the valid x in."""
    width = margin * (hi - lo)
    above = (x > hi + width) & (direction != DOWN)
    below = (x < lo - width) & (direction != UP)
    beyond = valid & (hi > lo) & (above | below)
    xv = np.where(valid, x, np.nan)
    return beyond, np.fmin(lo, xv), np.fmax(hi, xv)
