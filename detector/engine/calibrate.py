"""The calibration pass over a batch: each event's evidence → surprise levels → a score in
[0, 1] that means the same rarity on every stream, then the stream's statistics take the event
in. Wave by wave: a stream's next event is judged by statistics that include this one.

The evidence: the forecast residual (calibrator.py), how far the values lie from the stream's
running mean (evidence/level.py), how far the metrics leave the way they move together
(evidence/relation.py) and, when on, how far their trend leaves its usual trend at that hour
(evidence/daily.py), each a level -log10 Q lowered to the stream's own tail of that evidence
(calibration_tail.py), a surprise that came at the same hour yesterday damped as a daily
habit (daily_habit.py); the event's score is that of its highest level. Residuals and
deviations count only in each metric's allowed direction (direction.py).
"""

from __future__ import annotations

import numpy as np

from detector.engine import (
    calibration_tail,
    calibrator,
    daily_habit,
    direction,
    normalizer,
    ranking,
)
from detector.engine.evidence import level as level_evidence
from detector.engine.evidence import levels as evidence_levels
from detector.engine.evidence import relation as relation_evidence
from detector.engine.observe import Observed
from detector.engine.types import EngineConfig


def calibrate(config: EngineConfig, a: dict[str, np.ndarray], bounds: list[tuple[int, int]],
              s_all: np.ndarray, obs: Observed, residual: np.ndarray, valid: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated score of every event of the waves `bounds` (before any alert rule), and
    each metric's share of the evidence of its stream's recent unusual events (ranking.py:
    which metrics made it unusual; NaN for metrics the event lacks).

    Two walks over the waves, each carrying only its own per-stream state: the first the
    residual spreads and the relation's moment (they give the textbook levels), the second
    the tails (they lower them). What depends on no state is done for all waves at once."""
    halflife = config.calibration_halflife
    # The first events are normalised against a handful of values and forecast from an
    # empty state; their residuals say nothing about the stream, so the calibration
    # history starts halfway through the warm-up.
    learn = obs.seen >= max(2 * config.window, config.warmup_events // 2)
    tail_learn = learn & (obs.seen >= calibration_tail.LEARN_AFTER)
    residual_y = residual * obs.unit
    min_var = np.maximum(normalizer.resolution(obs.mean), obs.count_sigma) ** 2
    prior_var = obs.unit ** 2
    dirs, dev = a["direction"][s_all], obs.dev
    moved = direction.allowed_move(residual_y, dev * obs.unit, dirs)
    squares = np.empty(residual.shape)
    terms = np.empty(residual.shape) if config.relation_evidence else None
    for lo, hi in bounds:
        s, v, mv, lw = s_all[lo:hi], valid[lo:hi], min_var[lo:hi], learn[lo:hi]
        res_var, res_count = a["res_var"][s], a["res_count"][s]
        squares[lo:hi] = calibrator.standardised_squares(moved[lo:hi], v, res_var, mv)
        var2, count2 = calibrator.update(residual_y[lo:hi], v, res_var, res_count, mv,
                                         prior_var[lo:hi], halflife)
        a["res_var"][s] = np.where(lw[:, None], var2, res_var)
        a["res_count"][s] = np.where(lw, count2, res_count)
        if terms is not None:
            moment = a["relation"][s]
            terms[lo:hi] = relation_evidence.terms(dev[lo:hi], v, moment)
            a["relation"][s] = relation_evidence.update(moment, dev[lo:hi], v,
                                                        obs.seen[lo:hi], lw)
    textbook = evidence_levels.textbook(calibrator.worst_of(squares), dev, valid, dirs, terms,
                                        level=config.level_evidence)
    # How a stream's metrics move together through the day is known only once it has
    # shown a few days (the range rule's warm-up): a young stream's first morning ramp
    # moves packets and bytes in a ratio it has not seen yet.
    textbook[2] = np.where(obs.age >= config.spatial_warmup_s, textbook[2], np.nan)
    pieces = [squares, direction.signed(dev, dirs) ** 2, terms]
    if config.daily_evidence:
        # Bonferroni over every metric the event carries, judged by its hour or not: a host
        # whose few metrics with a daily shape stand alone is no less likely to show one odd.
        judged = (obs.daily != 0).any(axis=1) & (obs.age >= config.spatial_warmup_s)
        day = np.where(judged, level_evidence.level(obs.daily, valid, dirs), np.nan)
        textbook = np.vstack([textbook, day[None]])
        pieces.append(direction.signed(obs.daily, dirs) ** 2)
    levels = np.empty(textbook.shape)
    for lo, hi in bounds:
        s, tb, tl, age = s_all[lo:hi], textbook[:, lo:hi], tail_learn[lo:hi], obs.age[lo:hi]
        own = evidence_levels.lowered(a, s, tb, tl, halflife, age)
        levels[:, lo:hi] = daily_habit.damp(a, s, tb, own, tl, obs.seen[lo:hi], age)
    scores = calibration_tail.score(levels.max(axis=0))
    remembered = ranking.remember(a["ranking_memory"], bounds, s_all,
                                  ranking.explain(levels, pieces, valid), scores)
    return scores, calibrator.shares(remembered)
