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
        terms = (relation_evidence.terms(dev, v, a["relation"][s])
                 if config.relation_evidence else None)
        textbook = evidence_levels.textbook(worst, dev, v, dirs, terms,
                                            level=config.level_evidence)
        # How a stream's metrics move together through the day is known only once it has
        # shown a few days (the range rule's warm-up): a young stream's first morning ramp
        # moves packets and bytes in a ratio it has not seen yet.
        textbook[2] = np.where(obs.age[lo:hi] >= config.spatial_warmup_s, textbook[2], np.nan)
        histories = [a[name][s] for name in evidence_levels.HISTORIES]
        levels = evidence_levels.calibrated(textbook, histories)
        scores[lo:hi] = calibration_tail.score(levels.max(axis=0))
        parts[lo:hi] = explain(levels, [squares, direction.signed(dev, dirs) ** 2, terms], v)
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


def explain(levels: np.ndarray, pieces: list[np.ndarray | None], valid: np.ndarray
            ) -> np.ndarray:
    """Per metric, its part [B, D] of the event's evidence (-1 where invalid): each evidence's
    per-metric pieces (the standardised forecast residuals, the squared deviations from the
    running mean in the allowed direction, the terms of the relation's distance) as shares,
    weighed by that evidence's level. Measured HitRate@150% (README, Detection quality): SMD
    0.77, traffic corpus 1.00; ranking by the forecast alone 0.81 and 0.64, by the top
    evidence alone 0.64 and 1.00."""
    weight = np.nan_to_num(np.maximum(levels, 0.0), nan=0.0)
    parts = np.zeros(valid.shape)
    for w, piece in zip(weight, pieces, strict=True):
        if piece is None:
            continue
        x = np.where(valid, np.minimum(np.maximum(piece, 0.0), 1e300), 0.0)
        total = x.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts += w[:, None] * np.where(total > 0, x / total, 0.0)
    return np.where(valid, parts, -1.0)
