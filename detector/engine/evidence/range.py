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

A mean can also drift: a temperature climbing over a day to beyond anything it has shown sets
a new record at every event, each by a hair, so judged against its range of the event before
it never clears a margin. So the mean is also judged against the range it had settled at,
which takes in the means seen since the last settling every `halflife` events of the stream
(`settle_every`): a mean beyond that range by `drift_margin` of its width, however smoothly it
got there, breaks it. A settled range is trusted only once the stream has spanned
`drift_warmup_s` (a week: a stream's first weekend sets lows its weekdays never reached). One
drift breaks it once: the mean must come back inside its settled range before a drift breaks
it again (a ramp that climbs for hours sets a drift record every half-life), a drift within
`AFTER_BREAK_S` of a break of the range is the same excursion settling (a level shift's next
daily peak), and a bump the mean has settled at does not break it again.

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
    drift_margin: float = 0.0  # 0 = the mean's drift is not judged
    drift_warmup_s: float = 0.0


# Margins of a stream of D metrics: x (1 + MARGIN_GROWTH ln D). Picked on the traffic corpus
# (4 metrics; the smallest value of its best plateau: 0 / 0.1 / 0.2 / 0.3 / 0.5 give 95.0 /
# 95.3 / 96.4 / 96.4 / 96.4 at the shipped threshold, 14 / 13 / 8 / 8 / 8 false alerts),
# checked on SMD (38 metrics: 64.4 / 64.9 / 64.3 / 62.9 / 63.4, false alerts 186 / 174 / 170
# / 168 / 164); NAB's one-metric files do not see it.
MARGIN_GROWTH = 0.2
AFTER_BREAK_S = 86_400.0  # a drift this soon after a break of the range is not judged


def margin_scale(n_metrics: np.ndarray) -> np.ndarray:
    """[B, 1] factor of both margins for streams of `n_metrics` [B] metrics."""
    return (1.0 + MARGIN_GROWTH * np.log(np.maximum(n_metrics, 1.0)))[:, None]


def settle_every(halflife: float) -> int:
    """Events of a stream between two settlings of its mean's range: one half-life."""
    return max(1, round(halflife))


class RangeState(NamedTuple):
    """Per stream [B, D]: the range of the values (NaN = nothing seen yet), the running mean,
    its range as of the last settling (what it is judged against), its range since, and
    whether it is out on a drift that broke that range."""

    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    mean_lo: np.ndarray
    mean_hi: np.ndarray
    recent_lo: np.ndarray
    recent_hi: np.ndarray
    drifting: np.ndarray  # bool: the mean has broken its settled range and not come back in
    broke_at: np.ndarray  # [B]: the stream's age at its last break (NaN = none yet)


def observe(rule: RangeRule, state: RangeState, x: np.ndarray, valid: np.ndarray,
            age: np.ndarray, direction: np.ndarray, n_metrics: np.ndarray, seen: np.ndarray
            ) -> tuple[np.ndarray, RangeState]:
    """(broke [B], new state): whether the event breaks a trusted range of one of its
    metrics, checked before the ranges take the event in. `age`: seconds since the stream's
    first event; `n_metrics`: how many metrics each stream has (margin_scale); `seen`: its
    events before this one (the settling's phase)."""
    trusted = (age >= rule.warmup_s)[:, None]
    scale = margin_scale(n_metrics)
    broke, lo, hi = _beyond(x, valid, state.lo, state.hi, rule.value_margin * scale,
                            direction)
    mean, mean_lo, mean_hi = state.mean, state.mean_lo, state.mean_hi
    recent_lo, recent_hi, drifting = state.recent_lo, state.recent_hi, state.drifting
    if rule.halflife > 0:
        rate = 1.0 - 0.5 ** (1.0 / rule.halflife)
        first = np.isnan(state.lo)  # nothing seen yet: the mean starts at this value
        mean = np.where(valid, np.where(first, x, mean + rate * (x - mean)), mean)
        mean_lo, mean_hi, recent_lo, recent_hi = (np.where(first, np.nan, r) for r in (
            mean_lo, mean_hi, recent_lo, recent_hi))
        # A jump: beyond the range of every mean so far (the settled one and the recent).
        jumped, _, _ = _beyond(mean, valid, np.fmin(mean_lo, recent_lo),
                               np.fmax(mean_hi, recent_hi), rule.mean_margin * scale, direction)
        drifted, _, _ = _beyond(mean, valid, mean_lo, mean_hi, rule.drift_margin * scale,
                                direction)
        recent_lo, recent_hi = _take_in(recent_lo, recent_hi, mean, valid)
        # A drift within a day of a break is the same excursion settling (a level shift's
        # next daily peak), not a new one. A stream that never broke (NaN) is calm.
        calm = ~(age - state.broke_at < AFTER_BREAK_S)
        drifted &= (rule.drift_margin > 0) & ((age >= rule.drift_warmup_s) & calm)[:, None]
        # One drift, one break: the mean breaks again only once back inside its settled range.
        out, _, _ = _beyond(mean, valid, mean_lo, mean_hi, 0.0, direction)
        broke |= jumped | (drifted & ~drifting)
        drifting = np.where(valid, (drifting & out) | drifted, drifting) & ~first
        settle = ((seen + 1) % settle_every(rule.halflife) == 0)[:, None]
        mean_lo = np.where(settle, np.fmin(mean_lo, recent_lo), mean_lo)
        mean_hi = np.where(settle, np.fmax(mean_hi, recent_hi), mean_hi)
        recent_lo, recent_hi = (np.where(settle, np.nan, r) for r in (recent_lo, recent_hi))
    verdict = (broke & trusted).any(axis=1)
    broke_at = np.where(verdict, age, state.broke_at)
    return verdict, RangeState(lo, hi, mean, mean_lo, mean_hi, recent_lo, recent_hi, drifting,
                               broke_at)


def _beyond(x: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            margin: np.ndarray | float, direction: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per metric: x beyond [lo, hi] by more than margin x (hi - lo) in an allowed direction
    (never where nothing, or one value, was seen); the range then takes the valid x in."""
    width = margin * (hi - lo)
    above = (x > hi + width) & (direction != DOWN)
    below = (x < lo - width) & (direction != UP)
    beyond = valid & (hi > lo) & (above | below)
    return (beyond, *_take_in(lo, hi, x, valid))


def _take_in(lo: np.ndarray, hi: np.ndarray, x: np.ndarray, valid: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """The range [lo, hi] widened to the valid x (NaN bounds: nothing in it yet)."""
    xv = np.where(valid, x, np.nan)
    return np.fmin(lo, xv), np.fmax(hi, xv)
