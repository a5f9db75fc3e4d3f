"""Pass 3 of a segment, calibration: each event's evidence → surprise levels → a score in
[0, 1] that means the same rarity on every stream, then the stream's statistics take the event
in. Wave by wave: a stream's next event is judged by statistics that include this one.

The evidence: the forecast residual (calibrator.py), how far the values lie from the stream's
running mean (evidence/level.py) and how far the metrics leave the way they move together
(evidence/relation.py), each a level -log10 Q lowered to the stream's own tail of that
evidence (calibration_tail.py); the event's score is that of its highest level. Residuals and
deviations count only in each metric's allowed direction (direction.py).
"""

from __future__ import annotations

import numpy as np

from detector.engine import calibration_tail, calibrator, direction, normalizer
from detector.engine.evidence import levels as evidence_levels
from detector.engine.evidence import relation as relation_evidence
from detector.engine.observe import Observed
from detector.engine.types import EngineConfig


def calibrate(config: EngineConfig, a: dict[str, np.ndarray], bounds: list[tuple[int, int]],
              s_all: np.ndarray, obs: Observed, residual: np.ndarray, valid: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated score of every event of the segment (before any alert rule), and each
    metric's share of the evidence that gave the event its score (`explain`: which metric made
    it unusual; NaN for metrics the event lacks)."""
    halflife = config.calibration_halflife
    # The first events are normalised against a handful of values and forecast from an
    # empty state; their residuals say nothing about the stream, so the calibration
    # history starts halfway through the warm-up.
    learn = obs.seen >= max(2 * config.window, config.warmup_events // 2)
    tail_learn = learn & (obs.seen >= calibration_tail.LEARN_AFTER)
    residual_y = residual * obs.unit
    min_var = normalizer.resolution(obs.mean) ** 2
    prior_var = obs.unit ** 2
    scores = np.empty(s_all.size)
    parts = np.empty(residual.shape)
    for lo, hi in bounds:
        s, r, v, mv, lw = (s_all[lo:hi], residual_y[lo:hi], valid[lo:hi], min_var[lo:hi],
                           learn[lo:hi])
        dirs, dev = a["direction"][s], obs.dev[lo:hi]
        res_var, res_count = a["res_var"][s], a["res_count"][s]
        squares = calibrator.standardised_squares(
            direction.allowed_move(r, dev * obs.unit[lo:hi], dirs), v, res_var, mv)
        worst = calibrator.worst_of(squares)
        textbook = evidence_levels.textbook(
            worst, dev, v, dirs, a["relation"][s], level=config.level_evidence,
            relation=config.relation_evidence)
        histories = [a[name][s] for name in evidence_levels.HISTORIES]
        levels = evidence_levels.calibrated(textbook, histories)
        scores[lo:hi] = calibration_tail.score(levels.max(axis=0))
        parts[lo:hi] = explain(levels, squares, dev, v, dirs, a["relation"][s])
        var2, count2 = calibrator.update(r, v, res_var, res_count, mv, prior_var[lo:hi],
                                         halflife)
        a["res_var"][s] = np.where(lw[:, None], var2, res_var)
        a["res_count"][s] = np.where(lw, count2, res_count)
        for name, level, history in zip(evidence_levels.HISTORIES, textbook, histories,
                                        strict=True):
            a[name][s] = calibration_tail.remember(history, level, tail_learn[lo:hi],
                                                   halflife)
        if config.relation_evidence:
            a["relation"][s] = relation_evidence.update(a["relation"][s], dev, v,
                                                        obs.seen[lo:hi], lw)
    return scores, calibrator.shares(parts)


def explain(levels: np.ndarray, squares: np.ndarray, dev: np.ndarray, valid: np.ndarray,
            dirs: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """Per metric, its part [B, D] of the evidence with the highest level (-1 where invalid):
    the standardised forecast residuals, the squared deviations from the running mean (level)
    or the terms of the relation's distance, in each metric's allowed direction."""
    top = np.argmax(np.nan_to_num(levels, nan=-1.0), axis=0)
    parts = squares.copy()
    rows = np.flatnonzero(top == 1)
    parts[rows] = np.where(valid[rows], direction.signed(dev[rows], dirs[rows]) ** 2, -1.0)
    rows = np.flatnonzero(top == 2)
    if rows.size:
        terms = relation_evidence.terms(dev[rows], valid[rows], moment[rows])
        parts[rows] = np.where(valid[rows], np.maximum(terms, 0.0), -1.0)
    return parts
